"""Stiff-aware solvers for gradient flow: a Runge–Kutta–Chebyshev method
whose stage count follows the sharpness, and a matrix-free Rosenbrock–Krylov method."""

from ._rkc import RKC2 as RKC2, stability_boundary as stability_boundary
from ._rosenbrock import (
    ROS2K as ROS2K,
    QuadraticHermiteInterpolation as QuadraticHermiteInterpolation,
)


__all__ = [
    "RKC2",
    "ROS2K",
    "QuadraticHermiteInterpolation",
    "stability_boundary",
]
