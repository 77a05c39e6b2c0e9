"""Solver look-up, stability limits, and exact counting of vector-field evaluations."""

from __future__ import annotations

import functools as ft
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import numpy as np


SOLVERS: dict[str, type[dfx.AbstractSolver]] = {
    "euler": dfx.Euler,
    "heun": dfx.Heun,
    "midpoint": dfx.Midpoint,
    "ralston": dfx.Ralston,
    "bosh3": dfx.Bosh3,
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "dopri8": dfx.Dopri8,
    "implicit_euler": dfx.ImplicitEuler,
    "kvaerno3": dfx.Kvaerno3,
    "kvaerno4": dfx.Kvaerno4,
    "kvaerno5": dfx.Kvaerno5,
}
"""Solvers that can be named by string; any `diffrax.AbstractSolver` instance works too."""


def resolve_solver(solver: str | dfx.AbstractSolver) -> dfx.AbstractSolver:
    """A diffrax solver from a name in `SOLVERS` or an instance (returned unchanged)."""
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    if isinstance(solver, type) and issubclass(solver, dfx.AbstractSolver):
        raise TypeError(
            f"Pass a solver instance, e.g. {solver.__name__}(), not a class."
        )
    if isinstance(solver, str):
        key = solver.lower().replace("-", "_")
        if key in SOLVERS:
            return SOLVERS[key]()
    raise ValueError(
        f"Unknown solver {solver!r}. Use one of {sorted(SOLVERS)}, 'auto' "
        "(gradient_flow only: Tsit5 or dynlearn.stiff.RKC2 by stiffness), or pass any "
        "diffrax solver instance, e.g. diffrax.Tsit5()."
    )


def solver_name(solver: dfx.AbstractSolver) -> str:
    return type(solver).__name__


@ft.cache
def _erk_stability_limit(solver_type: type) -> float:
    tab = solver_type().tableau
    s = tab.num_stages
    A = np.zeros((s, s))
    for i, row in enumerate(tab.a_lower):
        A[i + 1, : len(row)] = np.asarray(row)
    b = np.asarray(tab.b_sol)
    one = np.ones(s)

    def amp(x):  # |R(-x)|, R(z) = 1 + z bᵀ(I - zA)⁻¹ 1
        z = -x
        return abs(1 + z * b @ np.linalg.solve(np.eye(s) - z * A, one))

    xs = np.linspace(1e-6, 20.0, 200_001)
    vals = np.array([amp(x) for x in xs[::100]])
    bad = np.nonzero(vals > 1 + 1e-12)[0]
    if len(bad) == 0:
        return float("inf")
    lo, hi = xs[::100][bad[0] - 1], xs[::100][bad[0]]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if amp(mid) <= 1 + 1e-12 else (lo, mid)
    return float(lo)


def stability_limit(solver: dfx.AbstractSolver) -> float:
    """Real-axis stability boundary $c$: the method is stable on $\\dot y = -λy$ iff
    $λ\\,dt ≤ c$. Computed from the Butcher tableau via
    $R(z) = 1 + z b^T(I - zA)^{-1}\\mathbf 1$ (Tsit5: 3.507, Dopri5: 3.307, RK4:
    2.785, Euler/GD: 2). `inf` for implicit A-stable methods; `nan` if unknown."""
    if isinstance(solver, dfx.Euler):
        return 2.0
    if isinstance(solver, dfx.AbstractImplicitSolver):
        return float("inf")
    if isinstance(solver, dfx.AbstractERK):
        return _erk_stability_limit(type(solver))
    return float("nan")


def evals_per_attempt(solver: dfx.AbstractSolver) -> tuple[int, bool] | None:
    """(new vector-field evaluations per step attempt, FSAL?) for solvers whose cost
    is static; `None` where it is data dependent (implicit solvers)."""
    if isinstance(solver, dfx.Euler):
        return 1, False
    if isinstance(solver, dfx.AbstractERK):
        tab = solver.tableau
        return tab.num_stages - int(tab.fsal), bool(tab.fsal)
    return None


class CountingController(dfx.AbstractStepSizeController):
    """Wraps a step-size controller and counts vector-field evaluations exactly.

    diffrax reports steps but not function evaluations. For explicit Runge–Kutta
    methods each attempted step costs `s − fsal` evaluations, plus one more when the
    first stage must be (re)computed: on every attempt until the first step is
    accepted and after a jump. Those attempts are tracked here, inside the solve, so
    the count is exact with no host callback.
    """

    inner: dfx.AbstractStepSizeController
    per_attempt: int = eqx.field(static=True)
    fsal: bool = eqx.field(static=True)

    def wrap(self, direction):
        return CountingController(
            self.inner.wrap(direction), self.per_attempt, self.fsal
        )

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, inner_state = self.inner.init(
            terms, t0, t1, y0, dt0, args, func, error_order
        )
        # (inner state, evaluations so far, first step pending, jump pending)
        state = (
            inner_state,
            jnp.array(0, jnp.int64 if _x64() else jnp.int32),
            jnp.array(True),
            jnp.array(False),
        )
        return tnext, state

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        inner_state, count, first, jump = controller_state
        keep, next_t0, next_t1, made_jump, inner_state, result = (
            self.inner.adapt_step_size(
                t0, t1, y0, y1_candidate, args, y_error, error_order, inner_state
            )
        )
        # Constant-step controllers return Python bools; `~True` would be -2.
        keep, made_jump = jnp.asarray(keep, bool), jnp.asarray(made_jump, bool)
        extra = jnp.where(self.fsal & (first | jump), 1, 0)
        count = count + self.per_attempt + extra
        first = first & ~keep
        jump = jnp.where(keep, made_jump, jump)
        return (
            keep,
            next_t0,
            next_t1,
            made_jump,
            (inner_state, count, first, jump),
            result,
        )


def _x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def controller_eval_count(final_controller_state: Any) -> Any:
    return final_controller_state[1]
