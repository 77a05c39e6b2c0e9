"""Ising physics for renormalization-group studies: exact results and Monte Carlo.

Exact finite-torus results (Kaufman 1949), Onsager's infinite-lattice results, the 1D
chain and its exact decimation, and JAX samplers (checkerboard Metropolis, Wolff,
Swendsen–Wang) with error bars, and ±1 restricted Boltzmann machines with the
variational-RG quantities of Mehta & Schwab (arXiv:1410.3831).
"""

from ._exact import (
    K_C as K_C,
    T_C as T_C,
    chain_correlation as chain_correlation,
    chain_correlation_length as chain_correlation_length,
    chain_log_partition as chain_log_partition,
    decimate_chain as decimate_chain,
    enumerate_torus as enumerate_torus,
    onsager_energy as onsager_energy,
    onsager_magnetization as onsager_magnetization,
    torus_energy as torus_energy,
    torus_log_partition as torus_log_partition,
    torus_specific_heat as torus_specific_heat,
)
from ._ising import (
    SAMPLERS as SAMPLERS,
    Estimate as Estimate,
    IsingSamples as IsingSamples,
    binder_cumulant as binder_cumulant,
    chain_estimate as chain_estimate,
    energy_per_spin as energy_per_spin,
    integrated_autocorrelation_time as integrated_autocorrelation_time,
    magnetization as magnetization,
    metropolis_sweep as metropolis_sweep,
    sample_ising as sample_ising,
    swendsen_wang_update as swendsen_wang_update,
    wolff_update as wolff_update,
)
from ._rbm import (
    RBM as RBM,
    all_spin_states as all_spin_states,
    cd_gradient as cd_gradient,
    exact_kl as exact_kl,
    exact_nll as exact_nll,
    free_energy_gap as free_energy_gap,
    trace_condition as trace_condition,
    train_rbm as train_rbm,
    walsh_coefficients as walsh_coefficients,
)


__all__ = [
    "RBM",
    "all_spin_states",
    "cd_gradient",
    "exact_kl",
    "exact_nll",
    "free_energy_gap",
    "trace_condition",
    "train_rbm",
    "walsh_coefficients",
    "K_C",
    "SAMPLERS",
    "T_C",
    "Estimate",
    "IsingSamples",
    "binder_cumulant",
    "chain_correlation",
    "chain_correlation_length",
    "chain_estimate",
    "chain_log_partition",
    "decimate_chain",
    "energy_per_spin",
    "enumerate_torus",
    "integrated_autocorrelation_time",
    "magnetization",
    "metropolis_sweep",
    "onsager_energy",
    "onsager_magnetization",
    "sample_ising",
    "swendsen_wang_update",
    "torus_energy",
    "torus_log_partition",
    "torus_specific_heat",
    "wolff_update",
]
