"""Exact work accounting for solvers whose cost per step depends on the data.

Solvers such as `dynlearn.stiff.RKC2` (stage count from the sharpness) and
`dynlearn.stiff.ROS2K` (Krylov iterations) count their vector-field evaluations and
Jacobian-vector products in their solver state. diffrax restores the solver state
after a rejected step, so those counts cover accepted steps only. To count every
attempt, the solve carries one extra leaf `w = (evaluations, JVPs)` beside the state:
`WorkTrackingSolver` writes each attempt's cost into the candidate `w`, and
`WorkCountingController`, whose state diffrax never rolls back, adds
`w_candidate − w` on every attempt before handing the stripped state to the real
controller. Both live only inside `gradient_flow`'s solve. w has the state's floating
dtype (diffrax promotes state leaves to floats), so in float32 runs the counts are
exact up to 2^24 ≈ 1.7e7 evaluations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import diffrax as dfx
import jax.numpy as jnp
import jax.tree_util as jtu


def _counts(state) -> Any:
    return jnp.stack([state.num_vf, state.num_jvp])


class _AugmentedInterpolation(dfx.AbstractLocalInterpolation):
    """Dense output of `(y, w)`: the inner solver's interpolation for y; w is
    bookkeeping and is reported at its start value."""

    t0: Any
    t1: Any
    inner: dfx.AbstractLocalInterpolation
    w0: Any

    def evaluate(self, t0, t1=None, left=True):
        y = self.inner.evaluate(t0, t1, left)
        return y, (jnp.zeros_like(self.w0) if t1 is not None else self.w0)


class WorkTrackingSolver(dfx.AbstractAdaptiveSolver):
    """Runs `inner` on y and writes the attempt's (evaluations, JVPs) into w.

    `inner_term` is the term on y alone; the term diffrax passes (on `(y, w)`) is
    only used by diffrax's own checks. `inner`'s state must have integer fields
    `num_vf` and `num_jvp`."""

    inner: dfx.AbstractAdaptiveSolver
    inner_term: dfx.AbstractTerm

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar = _AugmentedInterpolation

    def order(self, terms):
        return self.inner.order(self.inner_term)

    def error_order(self, terms):
        return self.inner.error_order(self.inner_term)

    def init(self, terms, t0, t1, y0, args):
        return self.inner.init(self.inner_term, t0, t1, y0[0], args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y, w = y0
        y1, err, dense, state, result = self.inner.step(
            self.inner_term, t0, t1, y, args, solver_state, made_jump
        )
        cost = (_counts(state) - _counts(solver_state)).astype(w.dtype)
        interp = self.inner.interpolation_cls(t0=t0, t1=t1, **dense)
        dense_info = dict(inner=interp, w0=w)
        return (y1, w + cost), (err, jnp.zeros_like(w)), dense_info, state, result

    def func(self, terms, t0, y0, args):
        return self.inner.func(self.inner_term, t0, y0[0], args), jnp.zeros_like(y0[1])


class WorkCountingController(dfx.AbstractStepSizeController):
    """Wraps a step-size controller on the `(y, w)` state of a
    [`WorkTrackingSolver`][]: strips w before calling `inner`, and keeps (never rolled
    back) the work of all attempts, of accepted attempts, and the number of attempts
    rejected with an infinite error estimate (an exhausted stage or Krylov budget)."""

    inner: dfx.AbstractStepSizeController

    def wrap(self, direction):
        return WorkCountingController(self.inner.wrap(direction))

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        y, w = y0

        def inner_func(terms_, t, y_, args_):
            return func(terms_, t, (y_, jnp.zeros_like(w)), args_)[0]

        tnext, inner_state = self.inner.init(
            terms, t0, t1, y, dt0, args, inner_func, error_order
        )
        zero = jnp.zeros_like(w)
        return tnext, (inner_state, zero, zero, jnp.zeros((), w.dtype))

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        inner_state, work, accepted, limited = controller_state
        out = self.inner.adapt_step_size(
            t0, t1, y0[0], y1_candidate[0], args, y_error[0], error_order, inner_state
        )
        keep, next_t0, next_t1, made_jump, inner_state, result = out
        keep = jnp.asarray(keep, bool)
        cost = y1_candidate[1] - y0[1]
        leaves = [jnp.any(jnp.isinf(e)) for e in jtu.tree_leaves(y_error[0])]
        hit = jnp.any(jnp.stack(leaves)) if leaves else jnp.array(False)
        state = (
            inner_state,
            work + cost,
            accepted + jnp.where(keep, cost, 0),
            limited + jnp.where(hit, 1, 0),
        )
        return keep, next_t0, next_t1, made_jump, state, result


def work_counts(final_solver_state, final_controller_state) -> dict[str, int]:
    """Total (evaluations, JVPs) of a solve, rejected attempts included: the work
    done before the first step (the solver's `init`, = final state − accepted work)
    plus the work of every attempt; and the budget-limited rejections."""
    _, work, accepted, limited = final_controller_state
    init = _counts(final_solver_state) - jnp.round(accepted).astype(int)
    total = init + jnp.round(work).astype(int)
    return dict(
        num_vf_evals=int(total[0]),
        num_jvps=int(total[1]),
        num_budget_rejections=int(limited),
    )
