"""Fixed-step integrators for Hamiltonian systems, and the diagnostics that decide
whether an echo can reproduce the gradient exactly (reversibility, symplecticity).

An echo reproduces `jax.grad` of the *discretised* loss exactly (up to O(η) or O(η²))
iff the one-step map $M_h$ is symplectic and symmetric, $\\mathcal T M_h \\mathcal T =
M_h^{-1}$ (López-Pastor & Marquardt, PRX 13, 031020 (2023); Pourcel & Ernoult,
arXiv:2506.05259, Thm 3.2). [`Strang`][dynlearn.echo.Strang] and
[`ImplicitMidpoint`][dynlearn.echo.ImplicitMidpoint] have both properties;
[`RK4`][dynlearn.echo.RK4] has neither and is provided as the control experiment.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._misc import NonFiniteError, tree_all_finite
from ._hamiltonian import (
    AbstractHamiltonian,
    State,
    as_state,
    from_real,
    is_traced,
    to_real,
)


def _axpy(a, x, y):
    return jtu.tree_map(lambda u, v: a * u + v, x, y)


class AbstractIntegrator(eqx.Module):
    """One step $x_{n+1} = M_h(x_n)$ of a fixed-step integrator."""

    @abc.abstractmethod
    def step(self, hamiltonian: AbstractHamiltonian, state: State, dt: Any) -> State:
        """Advance `state` by `dt`."""


class Strang(AbstractIntegrator):
    """The Hamiltonian's own symmetric Strang splitting into exactly solvable flows
    (`hamiltonian.split_step`): leapfrog/Störmer–Verlet for
    [`SeparableHamiltonian`][dynlearn.echo.SeparableHamiltonian], the split-step scheme
    of the authors' code for [`KerrLatticeHamiltonian`][dynlearn.echo.KerrLatticeHamiltonian].
    Second order, symplectic, exactly time-reversible."""

    def step(self, hamiltonian: AbstractHamiltonian, state: State, dt: Any) -> State:
        return hamiltonian.split_step(state, dt)


class ImplicitMidpoint(AbstractIntegrator):
    """Implicit midpoint rule $x_{n+1} = x_n + h f((x_n + x_{n+1})/2)$: symmetric and
    symplectic for every H (Hairer, Lubich & Wanner, *Geometric Numerical Integration*,
    Thm VI.3.5). The implicit equation is solved by fixed-point iteration until the
    update is below `rtol` relative to the state (default: 10 ε of the dtype), at most
    `max_iters` times; reversibility holds to that tolerance. The iteration converges
    for $h·\\mathrm{Lip}(f) < 1$; a step that does not converge returns NaN, so
    [`evolve`][dynlearn.echo.evolve] reports when it happened. Reverse-mode autodiff
    cannot pass the solve's `while_loop`: use `jax.jacfwd` for ground truths."""

    rtol: float | None = None
    max_iters: int = 100

    def step(self, hamiltonian: AbstractHamiltonian, state: State, dt: Any) -> State:
        f = hamiltonian.vector_field

        def update(x1):
            mid = jtu.tree_map(lambda a, b: 0.5 * (a + b), state, x1)
            return _axpy(dt, f(mid), state)

        def size(x):
            return jnp.sqrt(sum(jnp.sum(jnp.abs(v) ** 2) for v in jtu.tree_leaves(x)))

        dtype = jnp.result_type(*jtu.tree_leaves(state))
        rtol = 10 * jnp.finfo(dtype).eps if self.rtol is None else self.rtol
        tol = rtol * (1.0 + size(state))

        def cond(carry):
            i, _, change = carry
            return (i < self.max_iters) & (change > tol)

        def body(carry):
            i, x1, _ = carry
            new = update(x1)
            change = size(jtu.tree_map(jnp.subtract, new, x1))
            return i + 1, new, change

        x0 = update(state)
        _, x1, change = jax.lax.while_loop(cond, body, (0, x0, jnp.inf))
        return jtu.tree_map(lambda v: jnp.where(change <= tol, v, jnp.nan), x1)


class RK4(AbstractIntegrator):
    """Classical explicit Runge–Kutta 4: accurate (order 4) but neither symplectic nor
    time-reversible. Provided to show why echoes need reversibility: the one-sided
    echo error then grows like (reversal error)/η."""

    def step(self, hamiltonian: AbstractHamiltonian, state: State, dt: Any) -> State:
        f = hamiltonian.vector_field
        k1 = f(state)
        k2 = f(_axpy(0.5 * dt, k1, state))
        k3 = f(_axpy(0.5 * dt, k2, state))
        k4 = f(_axpy(dt, k3, state))
        incr = jtu.tree_map(
            lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4
        )
        return _axpy(dt, incr, state)


def default_integrator(hamiltonian: AbstractHamiltonian) -> AbstractIntegrator:
    """`Strang()` if the Hamiltonian has an exact splitting, else `ImplicitMidpoint()`."""
    return Strang() if hamiltonian.has_split_step() else ImplicitMidpoint()


def _check_steps(t1: Any, num_steps: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    if not is_traced(t1) and not (np.ndim(t1) == 0 and 0 < float(t1) < np.inf):
        raise ValueError(
            f"`t1` (the evolution time) must be positive and finite, got {t1!r}."
        )


def _raise_if_nonfinite(first_bad: Any, dt: Any, state: State) -> State:
    msg = "The state became non-finite during the evolution."
    if is_traced(first_bad) or is_traced(dt):
        return eqx.error_if(
            state, first_bad >= 0, msg + " (Run outside jit for the time.)"
        )
    k = int(first_bad)
    if k >= 0:
        raise NonFiniteError(
            f"{msg} First non-finite state after step {k} at t = {k * float(dt):g} "
            "(time since the start of this evolution). Reduce the step size or the "
            "initial amplitude."
        )
    return state


def evolve(
    hamiltonian: AbstractHamiltonian,
    state: State,
    t1: Any,
    num_steps: int,
    *,
    integrator: AbstractIntegrator | None = None,
) -> State:
    """Evolve `state` for a time `t1` with `num_steps` equal steps (`lax.scan`).

    Works on one state; use `jax.vmap` for a batch. Raises
    [`dynlearn.NonFiniteError`][] naming the time at which the state first became
    non-finite (inside `jit` an `equinox` runtime error without the time).
    """
    _check_steps(t1, num_steps)
    state = as_state(hamiltonian, state)
    integrator = default_integrator(hamiltonian) if integrator is None else integrator
    x, first_bad = _evolve(hamiltonian, state, t1, num_steps, integrator)
    return _raise_if_nonfinite(first_bad, t1 / num_steps, x)


@eqx.filter_jit
def _evolve(hamiltonian, state, t1, num_steps, integrator):
    """The scan of `evolve`, compiled once per Hamiltonian structure, step count and
    integrator (eager calls reuse it); also returns the first non-finite step."""
    dt = t1 / num_steps

    def body(carry, k):
        x, first_bad = carry
        x = integrator.step(hamiltonian, x, dt)
        bad = (first_bad < 0) & ~tree_all_finite(x)
        return (x, jnp.where(bad, k + 1, first_bad)), None

    (x, first_bad), _ = jax.lax.scan(
        body, (state, jnp.array(-1)), jnp.arange(num_steps)
    )
    return x, first_bad


def evolve_path(
    hamiltonian: AbstractHamiltonian,
    state: State,
    t1: Any,
    num_steps: int,
    *,
    save_every: int = 1,
    integrator: AbstractIntegrator | None = None,
) -> tuple[jax.Array, State]:
    """Like [`dynlearn.echo.evolve`][] but **returns** `(ts, states)`: the state at
    `t = 0, save_every·dt, …, t1` stacked along a leading axis (`num_steps` must be a
    multiple of `save_every`)."""
    _check_steps(t1, num_steps)
    state = as_state(hamiltonian, state)
    if (
        isinstance(save_every, bool)
        or not isinstance(save_every, int)
        or save_every < 1
    ):
        raise ValueError(f"`save_every` must be a positive int, got {save_every!r}.")
    if num_steps % save_every:
        raise ValueError(
            f"`num_steps` ({num_steps}) must be a multiple of `save_every` "
            f"({save_every})."
        )
    integrator = default_integrator(hamiltonian) if integrator is None else integrator
    dt = t1 / num_steps

    def inner(x, _):
        return integrator.step(hamiltonian, x, dt), None

    def outer(x, _):
        x, _ = jax.lax.scan(inner, x, None, length=save_every)
        return x, x

    _, xs = jax.lax.scan(outer, state, None, length=num_steps // save_every)
    xs = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), state, xs)
    if not is_traced(xs) and not bool(tree_all_finite(xs)):
        finite = jax.vmap(tree_all_finite)(xs)
        k = int(jnp.argmin(finite))
        raise NonFiniteError(
            f"The state became non-finite during the evolution, first seen at the "
            f"save point t = {k * save_every * float(dt):g}."
        )
    ts = jnp.arange(num_steps // save_every + 1) * (save_every * dt)
    return ts, xs


def reversal_error(
    hamiltonian: AbstractHamiltonian,
    state: State,
    t1: Any,
    num_steps: int,
    *,
    integrator: AbstractIntegrator | None = None,
) -> jax.Array:
    """$‖\\mathcal T M \\mathcal T M x - x‖ / ‖x‖$: evolve, reverse, evolve, reverse.
    Zero (to round-off) for a symmetric integrator of a time-reversal-invariant H."""
    state = as_state(hamiltonian, state)

    def run(x):
        return evolve(hamiltonian, x, t1, num_steps, integrator=integrator)

    back = hamiltonian.time_reverse(run(hamiltonian.time_reverse(run(state))))
    x0, x1 = to_real(hamiltonian, state), to_real(hamiltonian, back)
    return jnp.linalg.norm(x1 - x0) / jnp.linalg.norm(x0)


def symplecticity_error(
    hamiltonian: AbstractHamiltonian,
    state: State,
    t1: Any,
    num_steps: int,
    *,
    integrator: AbstractIntegrator | None = None,
) -> jax.Array:
    """$\\max|D^TJD - J|$ for the Jacobian D of the time-`t1` map at `state`, in real
    coordinates `[q, p]` (`jax.jacfwd`; complex form: `[Re Φ, Im Φ]`)."""
    state = as_state(hamiltonian, state)
    x0 = to_real(hamiltonian, state)

    def flow(x):
        s = evolve(
            hamiltonian,
            from_real(hamiltonian, x, state),
            t1,
            num_steps,
            integrator=integrator,
        )
        return to_real(hamiltonian, s)

    d = jax.jacfwd(flow)(x0)
    n = x0.size // 2
    eye = jnp.eye(n, dtype=x0.dtype)
    zero = jnp.zeros_like(eye)
    j = jnp.block([[zero, eye], [-eye, zero]])
    return jnp.max(jnp.abs(d.T @ j @ d - j))


def energy_error(
    hamiltonian: AbstractHamiltonian,
    state: State,
    t1: Any,
    num_steps: int,
    *,
    integrator: AbstractIntegrator | None = None,
) -> jax.Array:
    """$\\max_n |H(x_n) - H(x_0)| / |H(x_0)|$ over all steps of the evolution. For a
    symplectic integrator of order r it stays bounded and scales as $h^r$."""
    _, xs = evolve_path(hamiltonian, state, t1, num_steps, integrator=integrator)
    hs = jax.vmap(hamiltonian.energy)(xs)
    return jnp.max(jnp.abs(hs - hs[0])) / jnp.abs(hs[0])
