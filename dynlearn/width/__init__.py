"""Large-width theory: empirical and analytic NTK/NNGP, linearised training, ensembles
of random networks (finite-width field theory) and the thermodynamics of learning."""

from ._ensemble import (
    connected_four_point as connected_four_point,
    connected_four_point_from_covariance as connected_four_point_from_covariance,
    correlator as correlator,
    finite_width_recursion as finite_width_recursion,
    kurtosis as kurtosis,
    kurtosis_from_covariance as kurtosis_from_covariance,
    quartic_coupling as quartic_coupling,
    readout_covariance as readout_covariance,
    relu_kurtosis_exact as relu_kurtosis_exact,
    sample_ensemble as sample_ensemble,
    single_layer_four_point as single_layer_four_point,
    with_error_bars as with_error_bars,
)
from ._kernels import (
    CLOSED_FORMS as CLOSED_FORMS,
    Kernels as Kernels,
    gaussian_expectation as gaussian_expectation,
    infinite_width_kernels as infinite_width_kernels,
)
from ._linearized import (
    GPPosterior as GPPosterior,
    NonPSDKernelWarning as NonPSDKernelWarning,
    gp_posterior as gp_posterior,
    linearized_mse as linearized_mse,
)
from ._ntk import (
    empirical_ntk as empirical_ntk,
    kernel_distance as kernel_distance,
    ntk_along_trajectory as ntk_along_trajectory,
)
from ._thermo import (
    Thermodynamics as Thermodynamics,
    configurational_temperature as configurational_temperature,
    langevin as langevin,
    quadratic_equilibrium as quadratic_equilibrium,
    thermodynamics as thermodynamics,
)


__all__ = [
    "CLOSED_FORMS",
    "configurational_temperature",
    "connected_four_point",
    "connected_four_point_from_covariance",
    "correlator",
    "empirical_ntk",
    "finite_width_recursion",
    "gaussian_expectation",
    "gp_posterior",
    "GPPosterior",
    "infinite_width_kernels",
    "kernel_distance",
    "Kernels",
    "kurtosis",
    "kurtosis_from_covariance",
    "langevin",
    "linearized_mse",
    "NonPSDKernelWarning",
    "ntk_along_trajectory",
    "quadratic_equilibrium",
    "quartic_coupling",
    "readout_covariance",
    "relu_kurtosis_exact",
    "sample_ensemble",
    "single_layer_four_point",
    "Thermodynamics",
    "thermodynamics",
    "with_error_bars",
]
