"""The echo step and the echo gradient (López-Pastor & Marquardt, PRX 13, 031020
(2023), the "echo identity").

With $M$ the time-T map, $\\mathcal T$ time reversal and $C$ a cost of the final state,

$$\\mathrm{echo}_η(x) = \\mathcal T M \\mathcal T\\,(M(x) + ηJ∇C) = x + ηJ∇_x(C∘M) + O(η^2),$$

because time-reversal invariance gives $\\mathcal T M\\mathcal T = M^{-1}$ and
symplecticity gives $DM^{-1}J = J\\,DM^T$. The identity holds exactly for the discrete
map of a symmetric symplectic integrator, so the echo reproduces `jax.grad` of the
discretised loss with relative error O(η) (one-sided) or O(η²) (symmetric ±η).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._hamiltonian import (
    AbstractHamiltonian,
    State,
    as_state,
    ensure_time_reversal,
    is_traced,
)
from ._integrators import AbstractIntegrator, evolve


def check_eta(
    eta: Any,
    *,
    signed: bool,
    name: str = "eta",
    what: str = "the strength of the error kick injected at the final time",
) -> None:
    """Raise `ValueError` unless a concrete `eta` (the echo nudge strength) is a finite
    real scalar, nonzero (`signed=True`: either sign, as in the −η echo of averaged
    HEB) or positive (`signed=False`). Traced values are not checked."""
    if is_traced(eta):
        return
    arr = np.asarray(eta)
    ok = arr.ndim == 0 and np.isrealobj(arr) and np.isfinite(arr)
    ok = ok and (arr != 0 if signed else arr > 0)
    if not ok:
        need = (
            "a finite, nonzero real scalar" if signed else "a positive, finite scalar"
        )
        raise ValueError(
            f"`{name}` ({what}) must be {need}, got {eta!r}."
            + (
                " Use a small value such as 1e-3: the echo is linear in it only for "
                "small kicks."
                if name in ("eta", "eps")
                else ""
            )
        )


def echo(
    hamiltonian: AbstractHamiltonian,
    state: State,
    cost: Callable[[State], Any],
    eta: Any,
    t1: Any,
    num_steps: int,
    *,
    integrator: AbstractIntegrator | None = None,
    check: bool = True,
) -> State:
    """One echo: evolve for `t1`, inject the error kick of strength `eta` from
    `cost(final_state)`, time-reverse, evolve for `t1` again, time-reverse.

    **Returns** the echoed state $x + ηJ∇(C∘M)(x) + O(η^2)$ (canonical) or
    $Φ - iη∂(C∘M)/∂Φ^* + O(η^2)$ (complex form). Costs two forward evolutions; memory
    does not grow with `num_steps`.

    `state` is a tuple `(q, p)` of equal-shaped real arrays for a canonical
    Hamiltonian, one complex array Φ for the complex form (validated). `eta` must be
    finite and nonzero; a negative η is the reversed nudge (averaged HEB).

    With `check=True` (default) the Hamiltonian's time-reversal invariance
    $H(q, -p) = H(q, p)$ is checked first: eagerly (`ValueError`) when the values are
    concrete, and inside the compiled graph (`equinox.EquinoxRuntimeError`, four
    evaluations of H) when they are traced, e.g. a coupling passed to a `jit`-ted
    function.
    """
    state = as_state(hamiltonian, state)
    check_eta(eta, signed=True)
    if check:
        state = ensure_time_reversal(hamiltonian, state)

    def run(x):
        return evolve(hamiltonian, x, t1, num_steps, integrator=integrator)

    kicked = hamiltonian.kick(run(state), cost, eta)
    return hamiltonian.time_reverse(run(hamiltonian.time_reverse(kicked)))


def echo_gradient(
    hamiltonian: AbstractHamiltonian,
    state: State,
    cost: Callable[[State], Any],
    eta: Any,
    t1: Any,
    num_steps: int,
    *,
    symmetric: bool = True,
    integrator: AbstractIntegrator | None = None,
    check: bool = True,
) -> State:
    """The gradient of $L = C∘M$ at `state` read out of echoes, in the state layout of
    [`dynlearn.echo.state_gradient`][] (which computes the same with `jax.grad`).

    One-sided: $δ = (\\mathrm{echo}_η(x) - x)/η$, relative error O(η). Symmetric:
    $δ = (\\mathrm{echo}_η(x) - \\mathrm{echo}_{-η}(x))/2η$ (two echoes, `vmap`-ed),
    relative error O(η²); it also cancels the O(reversal error/η) bias of a
    non-reversible integrator. Round-off sets a floor ≈ ε_mach·‖DM‖/η.

    `eta` must be positive and finite (`ValueError`: η = 0 would divide by zero). The
    state and `check` are as in [`dynlearn.echo.echo`][] (the time-reversal check,
    eager or inside `jit`, is done once here).
    """
    state = as_state(hamiltonian, state)
    check_eta(eta, signed=False)
    if check:
        state = ensure_time_reversal(hamiltonian, state)

    def one(e):
        return echo(
            hamiltonian,
            state,
            cost,
            e,
            t1,
            num_steps,
            integrator=integrator,
            check=False,
        )

    if symmetric:
        eta = jnp.asarray(eta)
        both = jax.vmap(one)(jnp.stack([eta, -eta]))
        delta = jtu.tree_map(lambda b: (b[0] - b[1]) / (2 * eta), both)
    else:
        delta = jtu.tree_map(lambda a, b: (a - b) / eta, one(eta), state)
    return hamiltonian.gradient_from_displacement(delta)
