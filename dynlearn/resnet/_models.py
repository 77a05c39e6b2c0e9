"""Trainable models: the depth-N network, the neural ODE, and a classifier around
either."""

from __future__ import annotations

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._network import MLP, Affine
from ._field import ResidualField
from ._schemes import AbstractScheme, LMResNet, get_scheme
from ._solve import (
    BACKPROP,
    _check_depth,
    check_solver_options,
    discretise,
    neural_ode,
)


class ResNet(eqx.Module):
    """The depth-`depth` network of `field` discretised by `scheme` (a callable
    `eqx.Module` on one state; see [`dynlearn.resnet.discretise`][]).

    [`dynlearn.resnet.ResNet.refine`][] keeps $θ(t)$ and multiplies the depth.
    """

    field: ResidualField
    scheme: AbstractScheme
    depth: int = eqx.field(static=True)
    backprop: str = eqx.field(static=True)

    def __init__(
        self,
        field: ResidualField,
        scheme: str | AbstractScheme = "euler",
        depth: int = 16,
        *,
        backprop: str = "autodiff",
    ):
        _check_depth(depth)
        if backprop not in BACKPROP:
            raise ValueError(f"Unknown backprop {backprop!r}; use one of {BACKPROP}.")
        self.field = field
        self.scheme = get_scheme(scheme)
        self.depth = depth
        self.backprop = backprop

    def __call__(self, x: Array) -> Array:
        return discretise(
            self.field, x, self.scheme, self.depth, backprop=self.backprop
        ).y1

    def refine(self, factor: int) -> ResNet:
        r"""The same $θ(t)$ and horizon $T$ at depth `factor · depth` (step
        $h/\text{factor}$). Piecewise-constant weights are repeated, `"hat"` weights
        linearly interpolated, smooth bases re-sampled (Cohen et al. 2021, Sander et
        al. 2022: the output and accuracy survive iff the net is close to its ODE).
        Per-layer LM-ResNet coefficients $k_n$ are repeated."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"`factor` must be an integer >= 1, got {factor!r}.")
        scheme = self.scheme
        if isinstance(scheme, LMResNet) and scheme.kappa.ndim == 1:
            scheme = eqx.tree_at(
                lambda s: s.kappa, scheme, jnp.repeat(scheme.kappa, factor)
            )
        return ResNet(self.field, scheme, self.depth * factor, backprop=self.backprop)


class NeuralODE(eqx.Module):
    """The continuous-depth model $x(T)$ of $\\dot x = f(x, θ(t))$, solved with any
    diffrax solver and adjoint (see [`dynlearn.resnet.neural_ode`][])."""

    field: ResidualField
    solver: dfx.AbstractSolver
    adjoint: dfx.AbstractAdjoint
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        field: ResidualField,
        solver: dfx.AbstractSolver | None = None,
        *,
        adjoint: dfx.AbstractAdjoint | None = None,
        rtol: float = 1e-4,
        atol: float = 1e-6,
        dt0: float | None = None,
        max_steps: int = 4096,
    ):
        check_solver_options(rtol, atol, dt0, max_steps)
        self.field = field
        self.solver = dfx.Tsit5() if solver is None else solver
        self.adjoint = dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        self.rtol, self.atol, self.dt0 = float(rtol), float(atol), dt0
        self.max_steps = max_steps

    def __call__(self, x: Array) -> Array:
        return neural_ode(
            self.field,
            x,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            dt0=self.dt0,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
        )


class Classifier(eqx.Module):
    r"""logits $= R\,\mathrm{body}(L x)$: a linear lift $L$ to the state dimension, the
    residual body (a [`dynlearn.resnet.ResNet`][], [`dynlearn.resnet.NeuralODE`][] or
    any module on one state), and a linear readout $R$ to `num_classes` logits. Acts
    on one unbatched input."""

    lift: Affine
    body: Callable
    readout: Affine

    def __init__(
        self, in_size: int, dim: int, num_classes: int, body, *, key: PRNGKeyArray
    ):
        k1, k2 = jr.split(key)
        self.lift = MLP(in_size, dim, 1, 0, key=k1).layers[0]
        self.body = body
        self.readout = MLP(dim, num_classes, 1, 0, key=k2).layers[0]
        # Shape inference only: the body must act on states of dimension `dim`.
        try:
            out = eqx.filter_eval_shape(body, jnp.zeros(dim))
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"The Classifier's body must map a state of shape ({dim},) (`dim`) to "
                f"the same shape; calling it on one failed: {e}"
            ) from e
        if getattr(out, "shape", None) != (dim,):
            raise ValueError(
                f"The Classifier's body must map a state of shape ({dim},) (`dim`) to "
                f"the same shape, got output shape {getattr(out, 'shape', out)}."
            )

    def __call__(self, x: Array) -> Array:
        return self.readout(self.body(self.lift(x)))
