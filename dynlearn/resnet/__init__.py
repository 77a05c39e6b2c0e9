"""Residual networks as discretisations of ODEs in depth.

A ResNet $x_{n+1} = x_n + h f(x_n, θ_n)$ is a forward-Euler step of
$\\dot x = f(x, θ(t))$ (E 2017; Haber & Ruthotto 2017; Lu et al. 2018; Chang et al.
2018). Define the field once ([`ResidualField`][dynlearn.resnet.ResidualField]),
discretise it with any scheme and depth ([`discretise`][dynlearn.resnet.discretise]) or
solve it as a neural ODE ([`neural_ode`][dynlearn.resnet.neural_ode]).
"""

from ._field import BASES as BASES, ResidualField as ResidualField
from ._layers import (
    AntisymmetricLayer as AntisymmetricLayer,
    HamiltonianLayer as HamiltonianLayer,
    SymmetricLayer as SymmetricLayer,
)
from ._models import (
    Classifier as Classifier,
    NeuralODE as NeuralODE,
    ResNet as ResNet,
)
from ._schemes import (
    RK4 as RK4,
    SCHEMES as SCHEMES,
    AbstractScheme as AbstractScheme,
    Euler as Euler,
    Hamiltonian as Hamiltonian,
    Heun as Heun,
    Leapfrog as Leapfrog,
    LMResNet as LMResNet,
    Midpoint as Midpoint,
    Momentum as Momentum,
    ReversibleHeun as ReversibleHeun,
)
from ._solve import (
    BACKPROP as BACKPROP,
    DepthSolution as DepthSolution,
    diffrax_discretise as diffrax_discretise,
    discretise as discretise,
    invert as invert,
    neural_ode as neural_ode,
)
from ._stability import jacobian_spectrum as jacobian_spectrum
from ._train import (
    accuracy as accuracy,
    circles as circles,
    digits as digits,
    moons as moons,
    smoothness as smoothness,
    spirals as spirals,
    split as split,
    train_classifier as train_classifier,
)


__all__ = [
    "BACKPROP",
    "BASES",
    "RK4",
    "SCHEMES",
    "AbstractScheme",
    "AntisymmetricLayer",
    "Classifier",
    "DepthSolution",
    "Euler",
    "Hamiltonian",
    "HamiltonianLayer",
    "Heun",
    "LMResNet",
    "Leapfrog",
    "Midpoint",
    "Momentum",
    "NeuralODE",
    "ResNet",
    "ResidualField",
    "ReversibleHeun",
    "SymmetricLayer",
    "accuracy",
    "circles",
    "diffrax_discretise",
    "digits",
    "discretise",
    "invert",
    "jacobian_spectrum",
    "moons",
    "neural_ode",
    "smoothness",
    "spirals",
    "split",
    "train_classifier",
]
