"""Hamiltonian echo backpropagation: self-learning Hamiltonian machines.

López-Pastor & Marquardt, "Self-learning machines based on Hamiltonian echo
backpropagation", Phys. Rev. X 13, 031020 (2023), arXiv:2103.04992.
"""

from ._echo import echo as echo, echo_gradient as echo_gradient
from ._hamiltonian import (
    AbstractHamiltonian as AbstractHamiltonian,
    CanonicalHamiltonian as CanonicalHamiltonian,
    SeparableHamiltonian as SeparableHamiltonian,
    WirtingerHamiltonian as WirtingerHamiltonian,
    check_time_reversal as check_time_reversal,
    from_real as from_real,
    state_gradient as state_gradient,
    to_real as to_real,
)
from ._heb import (
    EchoSGDStepper as EchoSGDStepper,
    HEBStepper as HEBStepper,
    batch_loss as batch_loss,
    decay as decay,
    decay_bias as decay_bias,
    echo_displacement as echo_displacement,
    heb_step as heb_step,
    learning_rate as learning_rate,
    sgd_step as sgd_step,
    train as train,
)
from ._integrators import (
    RK4 as RK4,
    AbstractIntegrator as AbstractIntegrator,
    ImplicitMidpoint as ImplicitMidpoint,
    Strang as Strang,
    energy_error as energy_error,
    evolve as evolve,
    evolve_path as evolve_path,
    reversal_error as reversal_error,
    symplecticity_error as symplecticity_error,
)
from ._machines import (
    AbstractEchoMachine as AbstractEchoMachine,
    DuffingNetwork as DuffingNetwork,
    DuffingPotential as DuffingPotential,
    KerrLattice as KerrLattice,
    KerrLatticeHamiltonian as KerrLatticeHamiltonian,
    squared_error as squared_error,
)
from ._rhel import rhel_gradient as rhel_gradient


__all__ = [
    "AbstractEchoMachine",
    "AbstractHamiltonian",
    "AbstractIntegrator",
    "CanonicalHamiltonian",
    "DuffingNetwork",
    "DuffingPotential",
    "EchoSGDStepper",
    "HEBStepper",
    "ImplicitMidpoint",
    "KerrLattice",
    "KerrLatticeHamiltonian",
    "RK4",
    "SeparableHamiltonian",
    "Strang",
    "WirtingerHamiltonian",
    "batch_loss",
    "check_time_reversal",
    "decay",
    "decay_bias",
    "echo",
    "echo_displacement",
    "echo_gradient",
    "energy_error",
    "evolve",
    "evolve_path",
    "from_real",
    "heb_step",
    "learning_rate",
    "reversal_error",
    "rhel_gradient",
    "sgd_step",
    "squared_error",
    "state_gradient",
    "symplecticity_error",
    "to_real",
    "train",
]
