"""dynlearn: learning as a dynamical system."""

import importlib.metadata

from . import echo as echo, resnet as resnet, rg as rg, stiff as stiff, width as width
from ._analysis import fit_slope as fit_slope
from ._data import (
    linear_regression as linear_regression,
    sine_regression as sine_regression,
    two_moons as two_moons,
)
from ._discrete import gradient_descent as gradient_descent, sgd as sgd
from ._engine import (
    AbstractGradientStepper as AbstractGradientStepper,
    AbstractStepper as AbstractStepper,
    DivergenceError as DivergenceError,
    EngineState as EngineState,
    GradientDescent as GradientDescent,
    MemoryWarning as MemoryWarning,
    Optax as Optax,
    iterate as iterate,
    minibatch_indices as minibatch_indices,
)
from ._estimate import Estimate as Estimate
from ._flows import (
    AbstractFlow as AbstractFlow,
    GradientFlow as GradientFlow,
    HeavyBall as HeavyBall,
    HeavyBallFlow as HeavyBallFlow,
    ModifiedGradientFlow as ModifiedGradientFlow,
)
from ._gradient_flow import (
    StiffnessWarning as StiffnessWarning,
    gradient_flow as gradient_flow,
)
from ._misc import (
    NonFiniteError as NonFiniteError,
    PrecisionWarning as PrecisionWarning,
    ravel_params as ravel_params,
    show_progress as show_progress,
)
from ._network import ACTIVATIONS as ACTIVATIONS, MLP as MLP, Affine as Affine
from ._observables import (
    AbstractObservable as AbstractObservable,
    GradNorm as GradNorm,
    Loss as Loss,
    Sharpness as Sharpness,
    hvp as hvp,
    top_hessian_eigenvalue as top_hessian_eigenvalue,
    trajectory_distance as trajectory_distance,
)
from ._results import RESULTS as RESULTS
from ._sde import per_example_losses as per_example_losses, sgd_sde as sgd_sde
from ._solvers import SOLVERS as SOLVERS, stability_limit as stability_limit
from ._trajectory import Trajectory as Trajectory


try:
    __version__ = importlib.metadata.version("dynlearn")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"


__all__ = [
    "ACTIVATIONS",
    "AbstractFlow",
    "AbstractObservable",
    "AbstractGradientStepper",
    "AbstractStepper",
    "DivergenceError",
    "EngineState",
    "Estimate",
    "GradientDescent",
    "MemoryWarning",
    "Optax",
    "RESULTS",
    "iterate",
    "Affine",
    "GradNorm",
    "GradientFlow",
    "HeavyBall",
    "HeavyBallFlow",
    "Loss",
    "MLP",
    "ModifiedGradientFlow",
    "NonFiniteError",
    "PrecisionWarning",
    "SOLVERS",
    "Sharpness",
    "StiffnessWarning",
    "Trajectory",
    "fit_slope",
    "gradient_descent",
    "gradient_flow",
    "hvp",
    "linear_regression",
    "minibatch_indices",
    "per_example_losses",
    "ravel_params",
    "sgd",
    "sgd_sde",
    "show_progress",
    "sine_regression",
    "stability_limit",
    "top_hessian_eigenvalue",
    "trajectory_distance",
    "two_moons",
    "__version__",
    "echo",
    "resnet",
    "rg",
    "stiff",
    "width",
]
