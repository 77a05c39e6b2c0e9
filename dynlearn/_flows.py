"""Vector fields whose solutions are (models of) training dynamics.

A flow turns a loss Φ into an ODE $\\dot y = F(t, y)$ on a state $y$ that contains the
parameters. [`dynlearn.gradient_flow`][] integrates any of them with any diffrax solver.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu
import optax

from ._misc import check_positive


class AbstractFlow(eqx.Module):
    """A continuous-time model of training: state, vector field, and cost.

    Subclasses define the state (`init`, `params`), the vector field, and the cost of
    one evaluation of the vector field in gradient evaluations and Hessian-vector
    products, so that a solve can report its exact cost.
    """

    @abc.abstractmethod
    def cost(self) -> tuple[int, int]:
        """(gradient evaluations, Hessian-vector products) per vector-field call."""

    @abc.abstractmethod
    def init(self, params: Any) -> Any:
        """The initial ODE state for parameters `params`."""

    @abc.abstractmethod
    def params(self, state: Any) -> Any:
        """The parameters contained in an ODE state."""

    @abc.abstractmethod
    def vector_field(self, loss_fn: Callable, t: Any, state: Any) -> Any:
        """$F(t, y)$ for the loss `loss_fn` (a function of the parameters)."""


class GradientFlow(AbstractFlow):
    """Gradient flow $\\dot θ = -∇Φ(θ)$. One gradient per evaluation.

    GD with learning rate η is its forward-Euler discretisation at times $t_k = kη$.
    """

    def cost(self):
        return (1, 0)

    def init(self, params):
        return params

    def params(self, state):
        return state

    def vector_field(self, loss_fn, t, state):
        return jtu.tree_map(lambda g: -g, jax.grad(loss_fn)(state))


class ModifiedGradientFlow(AbstractFlow):
    """The modified (backward-error) flow that GD with step `lr` follows.

    Order 1 (Barrett & Dherin 2021, arXiv:2009.11162, "implicit gradient
    regularisation"):

    $$\\dot θ = -∇\\big(Φ + \\tfrac{h}{4}\\|∇Φ\\|^2\\big) = -g - \\tfrac{h}{2} H g,$$

    with $g = ∇Φ$, $H = ∇^2Φ$, $h$ = `lr`. GD stays within $O(h^2)$ of it on a fixed
    time interval (against $O(h)$ for plain gradient flow).

    Order 2 adds the next term of the modified equation of explicit Euler
    (Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §IX.1):
    $-h^2\\big(\\tfrac13 H^2 g + \\tfrac1{12}∇^3Φ[g, g]\\big)$, giving $O(h^3)$.

    Cost per evaluation: one gradient and one HVP (order 1); one gradient, two HVPs
    and one third-derivative contraction (order 2, counted as a third HVP).
    """

    lr: float
    order: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_positive("lr", self.lr)
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order!r}.")

    def cost(self):
        return (1, 1 if self.order == 1 else 3)

    def init(self, params):
        return params

    def params(self, state):
        return state

    def vector_field(self, loss_fn, t, state):
        grad = jax.grad(loss_fn)
        h = self.lr

        def hvp_at(p, v):
            return jax.jvp(grad, (p,), (v,))[1]

        g = grad(state)
        Hg = hvp_at(state, g)
        if self.order == 1:
            return jtu.tree_map(lambda a, b: -a - 0.5 * h * b, g, Hg)
        HHg = hvp_at(state, Hg)
        # ∇³Φ[g, g] = d/dε H(θ + εg) g at fixed g
        D3gg = jax.jvp(lambda p: hvp_at(p, g), (state,), (g,))[1]
        return jtu.tree_map(
            lambda a, b, c, d: -a - 0.5 * h * b - h**2 * (c / 3 + d / 12),
            g,
            Hg,
            HHg,
            D3gg,
        )


class HeavyBallFlow(AbstractFlow):
    """The heavy-ball ODE $\\ddot θ + γ\\dot θ + ∇Φ(θ) = 0$ with θ(0)=θ₀, θ'(0)=0.

    Written as a first-order system on the state `(θ, v)`: $\\dot θ = v$,
    $\\dot v = -γ v - ∇Φ(θ)$. [`dynlearn.HeavyBall`][] maps heavy-ball GD with
    learning rate η and momentum β onto it: γ = (1−β)/√η, time per step √η
    (Polyak 1964; Kovachki & Stuart 2021, arXiv:1906.04285).
    """

    friction: float

    def __check_init__(self):
        if not float(self.friction) >= 0:
            raise ValueError(f"friction must be >= 0, got {self.friction!r}.")

    def cost(self):
        return (1, 0)

    def init(self, params):
        return (params, jtu.tree_map(lambda x: 0 * x, params))

    def params(self, state):
        return state[0]

    def vector_field(self, loss_fn, t, state):
        theta, v = state
        g = jax.grad(loss_fn)(theta)
        dv = jtu.tree_map(lambda vi, gi: -self.friction * vi - gi, v, g)
        return (v, dv)


class HeavyBall(eqx.Module):
    """Heavy-ball momentum as a matched pair: an optax optimiser and its ODE.

    The optimiser is $u_{k+1} = βu_k − η∇Φ(θ_k)$, $θ_{k+1} = θ_k + u_{k+1}$
    (`optax.sgd(η, momentum=β)`). With $V = u/\\sqrt η$ it is a symplectic-Euler step of
    size $\\sqrt η$ of the [`dynlearn.HeavyBallFlow`][] with friction
    $γ = (1-β)/\\sqrt η$. At fixed γ the iterates at $t_k = k\\sqrt η$ converge to the
    ODE solution with error $O(\\sqrt η)$ as η → 0.

    !!! example
        ```python
        hb = dynlearn.HeavyBall(lr=1e-3, beta=0.97)
        disc = dynlearn.gradient_descent(loss, p0, hb.lr, 5000,
                                         optimizer=hb.optimizer(),
                                         time_per_step=hb.time_per_step)
        cont = dynlearn.gradient_flow(loss, p0, disc.ts[-1], flow=hb.flow())
        ```
    """

    lr: float
    beta: float

    def __check_init__(self):
        check_positive("lr", self.lr)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta!r}.")

    @classmethod
    def from_friction(cls, lr: float, friction: float) -> HeavyBall:
        """The pair with learning rate `lr` whose ODE has friction γ = `friction`."""
        return cls(lr=lr, beta=1.0 - friction * math.sqrt(lr))

    @property
    def friction(self) -> float:
        """γ = (1 − β)/√η."""
        return (1.0 - self.beta) / math.sqrt(self.lr)

    @property
    def time_per_step(self) -> float:
        """ODE time per optimiser step, √η."""
        return math.sqrt(self.lr)

    def optimizer(self) -> optax.GradientTransformation:
        """`optax.sgd(lr, momentum=beta)`."""
        return optax.sgd(self.lr, momentum=self.beta)

    def flow(self) -> HeavyBallFlow:
        """The matching [`dynlearn.HeavyBallFlow`][]."""
        return HeavyBallFlow(self.friction)
