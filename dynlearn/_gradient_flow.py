"""`gradient_flow`: integrate a training flow with any diffrax solver."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import LossFn, Params
from ._engine import _is_traced
from ._flows import AbstractFlow, GradientFlow
from ._misc import (
    DEFAULT_RTOL,
    UNDEFINED_LOSS,
    NonFiniteError,
    check_bool,
    check_divergence_threshold,
    check_integer,
    check_nonempty_leaves,
    check_positive,
    check_real,
    check_tolerances,
    checked_loss,
    first_nonfinite_save,
    floats_to_arrays,
    precision_floor,
    progress_enabled,
    raise_nonfinite_loss,
    split_params,
    timed,
    tree_all_finite,
    tree_max_abs,
)
from ._observables import (
    AbstractObservable,
    as_observables,
    evaluate_observables,
)
from ._results import RESULTS, result_item
from ._solvers import (
    CountingController,
    evals_per_attempt,
    resolve_solver,
    solver_name,
    stability_limit,
)
from ._stiffness import (
    StiffnessWarning as StiffnessWarning,
    _auto_solver,
    _no_forward_mode,
    _stiffness_check,
)
from ._trajectory import SavedState, Trajectory, check_state_kind, restore_state
from ._work import WorkCountingController, WorkTrackingSolver, work_counts


def check_times(t0: float, t1: float, ts: Any, num_saves: int) -> np.ndarray:
    """Validate the time interval and return the save times as a NumPy array."""
    t0_, t1_ = check_real("t0", t0), check_real("t1", t1)
    if not (math.isfinite(t0_) and math.isfinite(t1_)):
        raise ValueError(f"t0 and t1 must be finite, got t0={t0!r}, t1={t1!r}.")
    if not t1_ > t0_:
        raise ValueError(f"Need t1 > t0 (forward time), got t0={t0!r}, t1={t1!r}.")
    if ts is None:
        check_integer("num_saves", num_saves, 2)
        return np.linspace(t0_, t1_, num_saves)
    try:
        ts = np.asarray(ts, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"ts must be a 1-D array of save times (numbers), got {ts!r}."
        ) from None
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("ts must be a non-empty 1-D array of save times.")
    if not np.all(np.isfinite(ts)):
        raise ValueError("ts must be finite save times; it contains NaN or inf.")
    if np.any(np.diff(ts) < 0):
        raise ValueError("ts must be non-decreasing.")
    span = float(t1) - float(t0)
    if ts[0] < t0 - 1e-12 * span or ts[-1] > t1 + 1e-12 * span:
        raise ValueError(
            f"save times ts must lie in [t0, t1] = [{t0}, {t1}], got "
            f"[{ts[0]}, {ts[-1]}]."
        )
    return np.clip(ts, t0, t1)


def gradient_flow(
    loss_fn: LossFn,
    params: Params,
    t1: float,
    *,
    flow: AbstractFlow | None = None,
    solver: str | dfx.AbstractSolver = "tsit5",
    rtol: float | None = None,
    atol: float = 1e-8,
    t0: float = 0.0,
    dt0: float | None = None,
    ts: Any = None,
    num_saves: int = 101,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    max_steps: int = 100_000,
    divergence_threshold: float = 1e8,
    progress_meter: dfx.AbstractProgressMeter | None = None,
    check_stiffness: bool = True,
    args: Any = None,
    adjoint: dfx.AbstractAdjoint | None = None,
    resume: Trajectory | None = None,
    throw: bool = True,
) -> Trajectory:
    """Integrate a training flow, by default gradient flow $\\dot θ = -∇Φ(θ)$.

    **Arguments:**

    - `loss_fn`: Φ, maps a parameter pytree (dict, tuple, `eqx.Module`, ...) to a real
      scalar.
    - `params`: the initial parameters θ(t0). Every array leaf must be floating point.
    - `t1`: final time. Time is in the units of the flow: GD with learning rate η takes
      one step per η units of time.
    - `flow`: the vector field, a [`dynlearn.AbstractFlow`][]; default
      [`dynlearn.GradientFlow`][]. Also [`dynlearn.ModifiedGradientFlow`][] and
      [`dynlearn.HeavyBallFlow`][].
    - `solver`: any diffrax solver instance, or a name from `dynlearn.SOLVERS`
      (`"tsit5"` default, `"dopri5"`, `"dopri8"`, `"euler"`, `"kvaerno5"`, ...).
      Explicit, implicit and fixed-step solvers are accepted. `"auto"` estimates
      λ_max(θ0) and picks whichever of Tsit5 and `dynlearn.stiff.RKC2` a cost model
      predicts to be cheaper for λ_max·(t1 − t0) at the requested rtol (the model
      is in the guide "Stiff gradient flows").
    - `rtol`, `atol`: tolerances of the default `diffrax.PIDController`, applied
      elementwise to the parameters. Ignored if `stepsize_controller` is given.
      Default rtol: 1e-6, or 100 eps of the parameters' dtype where that is larger
      (1.2e-5 in float32). An rtol below 100 eps is raised to 100 eps with a
      `PrecisionWarning` (as `scipy.integrate.solve_ivp` does): round-off cannot
      resolve it, and the solve would take far more steps and end less accurate.
      The effective values are `stats["rtol"]`, `stats["atol"]`. The solve runs in
      the parameters' dtype, times included.
    - `t0`, `dt0`: start time and initial (or, for solvers without an error estimate
      such as Euler, fixed) step.
    - `ts`: save times in [t0, t1]; default `num_saves` evenly spaced times.
    - `stepsize_controller`: any diffrax step-size controller, overriding rtol/atol.
    - `observables`: `{name: observable}` evaluated at every save time, each an
      [`dynlearn.AbstractObservable`][] (e.g. [`dynlearn.Sharpness`][]) or a callable
      `fn(params) -> array`. Loss and gradient norm are always recorded.
    - `save_params`: store θ at every save time (set `False` for large models).
    - `max_steps`: step budget of the solve.
    - `divergence_threshold`: stop if any parameter exceeds this in magnitude.
    - `progress_meter`: a diffrax progress meter, e.g. `diffrax.TqdmProgressMeter()`
      for long runs. `None` means none, or tqdm's after
      [`dynlearn.show_progress`][].
    - `check_stiffness`: after an adaptive explicit solve of gradient flow, compare the
      accepted steps with the solver's stability limit at the final sharpness and warn
      ([`dynlearn.StiffnessWarning`][]) if the tolerance was too loose for the result
      to be gradient flow. Runs only in eager calls.
    - `args`: the data of the loss, passed as `loss_fn(params, args)`; new data of
      the same shapes reuse the compiled program (a closure over the data would be a
      new program).
    - `adjoint`: how `jax.grad` differentiates through the solve, any
      `diffrax.AbstractAdjoint` (default `diffrax.RecursiveCheckpointAdjoint()`).
    - `resume`: a trajectory of an earlier solve of the same flow (or
      [`dynlearn.Trajectory.load`][] of one): continue from its final time and state
      to `t1`. `t0` is then the checkpoint's time; the result agrees with the
      uninterrupted solve to the solver's tolerance.
    - `throw`: raise on failure (eagerly: the errors below; under `jax.jit`: an
      Equinox runtime error). With `throw=False` the solve returns with
      `traj.result` (a [`dynlearn.RESULTS`][] item) set.

    The solve is one compiled program per problem structure: calls with the same
    `loss_fn` object and shapes reuse it (`stats["num_compilations"]`), and it works
    under `jax.jit`, `jax.vmap` and `jax.grad` (with respect to the initial
    parameters, `args` and float hyperparameters of the flow).

    **Returns:** a [`dynlearn.Trajectory`][] whose `stats` include the exact number of
    vector-field evaluations, gradient evaluations and Hessian-vector products.

    **Raises:** `NonFiniteError` if the state becomes non-finite or diverges, if the
    loss or its gradient is non-finite (the message names which, and the time; the
    partial trajectory is attached as `error.trajectory`); `RuntimeError` if the step
    budget is used up.

    !!! example
        ```python
        traj = dynlearn.gradient_flow(loss, params, t1=100.0, rtol=1e-7,
                                      observables={"sharpness": dynlearn.Sharpness()})
        traj.loss[-1], traj.stats["num_gradient_evals"]
        ```
    """
    check_bool("throw", throw)
    resume_state = None
    if resume is not None:
        resume_state = _flow_resume_state(resume)
        t0 = float(resume_state.t)
        if ts is None:
            ts = np.linspace(t0, float(t1), num_saves)
    ts_np = check_times(t0, t1, ts, num_saves)
    check_integer("max_steps", max_steps)
    if adjoint is not None and not isinstance(adjoint, dfx.AbstractAdjoint):
        raise TypeError(
            "adjoint must be a diffrax adjoint instance, e.g. "
            f"diffrax.RecursiveCheckpointAdjoint(), got {adjoint!r}."
        )
    rtol_given = rtol
    rtol, atol = check_tolerances(rtol, atol)
    if dt0 is not None:
        check_positive("dt0", dt0)
    threshold = check_divergence_threshold(divergence_threshold)
    if progress_meter is not None and not isinstance(
        progress_meter, dfx.AbstractProgressMeter
    ):
        raise TypeError(
            "progress_meter must be a diffrax progress meter instance, e.g. "
            f"diffrax.TqdmProgressMeter() or diffrax.TextProgressMeter(), got "
            f"{progress_meter!r}."
        )
    if progress_meter is None:
        progress_meter = (
            dfx.TqdmProgressMeter() if progress_enabled(None) else dfx.NoProgressMeter()
        )
    check_bool("save_params", save_params)
    check_bool("check_stiffness", check_stiffness)
    if stepsize_controller is not None and not isinstance(
        stepsize_controller, dfx.AbstractStepSizeController
    ):
        raise TypeError(
            "stepsize_controller must be a diffrax step-size controller instance, "
            f"e.g. diffrax.PIDController(rtol=1e-6, atol=1e-8), got "
            f"{stepsize_controller!r}."
        )
    flow = GradientFlow() if flow is None else flow
    if not isinstance(flow, AbstractFlow):
        raise TypeError(f"flow must be a dynlearn.AbstractFlow, got {type(flow)}.")
    auto = isinstance(solver, str) and solver.lower() == "auto"
    if not auto:
        solver = resolve_solver(solver)
    dynamic, static = split_params(params)
    check_nonempty_leaves(dynamic)
    checked_loss(loss_fn, params, *(() if args is None else (args,)))
    loss = _Loss(loss_fn, args)
    loss_fn = loss  # Φ(params), with the data as a traced argument
    # The solve runs in the state's dtype, times included (diffrax would otherwise
    # promote float32 parameters to float64 times when x64 is on).
    state_dtype = jnp.result_type(*jax.tree_util.tree_leaves(dynamic))
    phi = _OnArrays(loss, static)
    traced = _is_traced((dynamic, args))
    if auto and traced:
        raise ValueError(
            'solver="auto" measures λ_max(θ0) eagerly and cannot run under jax.jit '
            'or jax.vmap: name the solver (e.g. solver="tsit5").'
        )
    if auto:
        horizon = float(t1) - float(t0)
        auto_rtol = DEFAULT_RTOL if rtol is None else rtol
        solver = _auto_solver(phi, dynamic, horizon, flow, auto_rtol)
    obs = as_observables(observables)
    adaptive = isinstance(solver, dfx.AbstractAdaptiveSolver)
    tolerances_used = stepsize_controller is None and adaptive
    tolerances_used |= isinstance(solver, dfx.AbstractImplicitSolver) and not (
        isinstance(stepsize_controller, dfx.AbstractAdaptiveStepSizeController)
    )
    requested = (rtol, atol)
    if tolerances_used:
        rtol, atol = precision_floor(rtol, atol, rtol_given, dynamic, state_dtype)
    elif rtol is None:
        rtol = DEFAULT_RTOL

    if stepsize_controller is None:
        if adaptive:
            # A minimum step (relative to the horizon) turns a collapsing step size —
            # the signature of a non-finite loss or a finite-time blow-up — into an
            # immediate, reportable failure instead of max_steps rejected steps.
            stepsize_controller = dfx.PIDController(
                rtol=rtol, atol=atol, dtmin=1e-12 * (t1 - t0), force_dtmin=False
            )
        else:
            if dt0 is None:
                raise ValueError(
                    f"{solver_name(solver)} has no error estimate, so it runs with a "
                    "fixed step: pass dt0=... (e.g. the learning rate of the GD run "
                    "you compare with)."
                )
            stepsize_controller = dfx.ConstantStepSize()
    if isinstance(solver, dfx.AbstractImplicitSolver) and not isinstance(
        stepsize_controller, dfx.AbstractAdaptiveStepSizeController
    ):
        solver = eqx.tree_at(
            lambda s: (s.root_finder.rtol, s.root_finder.atol),
            solver,
            (rtol, atol),
            is_leaf=lambda x: x is None,
        )
    if dt0 is None and not adaptive:
        raise ValueError("A fixed-step solve needs dt0.")

    static_count = evals_per_attempt(solver)
    # Solvers with a data-dependent cost may count their own evaluations exactly in
    # their state (e.g. dynlearn.stiff.RKC2: stages and Jacobian-vector products).
    own_count = bool(getattr(solver, "counts_own_evaluations", False))
    if own_count:
        # The solver counts its work; a controller wrapper adds up every attempt's
        # (rejected ones included) and the budget-limited rejections (see _work.py).
        controller = WorkCountingController(stepsize_controller)
        counter = None
    elif static_count is not None:
        controller = CountingController(stepsize_controller, *static_count)
        counter = None
    else:
        # Data-dependent cost (Newton iterations of an implicit solver): count calls.
        controller = stepsize_controller
        counter = _CallCounter()
    want_steps = (
        check_stiffness and adaptive and isinstance(flow, GradientFlow) and not traced
    )
    problem = _Problem(
        loss_fn=loss,
        static=static,
        flow=floats_to_arrays(flow),
        solver=floats_to_arrays(solver),
        controller=floats_to_arrays(controller),
        observables=obs,
        save_params=save_params,
        want_steps=want_steps,
        count_in_controller=static_count is not None or own_count,
        count_in_solver=own_count,
        counter=counter,
        max_steps=max_steps,
        adjoint=dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
        progress_meter=progress_meter,
    )
    y0 = flow.init(dynamic)
    if resume_state is not None:
        y0 = restore_state(resume_state.y, y0, f"gradient_flow[{type(flow).__name__}]")
    f = lambda *a: float(a[0]) if a[0] is not None else None
    as_time = lambda x: jnp.asarray(x, dtype=state_dtype)
    solve_args = (
        problem,
        y0,
        as_time(f(t0)),
        as_time(f(t1)),
        None if dt0 is None else as_time(f(dt0)),
        as_time(ts_np),
        jnp.asarray(threshold),
    )
    before = _NUM_TRACES[0]
    if traced:
        return _traced_result(_solve(*solve_args), flow, static, problem, throw)
    try:
        out, compile_time, run_time = timed(_solve, *solve_args)
    except (TypeError, ValueError) as e:
        # Raised while tracing/compiling, before any step is taken.
        if _no_forward_mode(e) and getattr(solver, "uses_hvp", False):
            raise ValueError(
                f"{solver_name(solver)} needs Hessian-vector products of the loss "
                "(forward-mode derivatives of its gradient), and JAX cannot form them: "
                f"{str(e).splitlines()[0]} This happens when the loss uses "
                "jax.custom_vjp with a backward pass JAX cannot differentiate, "
                "jax.pure_callback or other operations without a forward-mode rule. "
                "Give them a JVP rule (jax.custom_jvp), or use an explicit solver such "
                "as diffrax.Tsit5()."
            ) from e
        raise
    if counter is not None:
        jax.effects_barrier()
    host = jax.device_get(out.host)
    t_end, n_valid, result = float(host["t_end"]), int(host["n_valid"]), host["code"]
    p_saved, loss_saved, obs_saved = out.saved
    if n_valid < len(ts_np):  # a stopped solve: its remaining saves are inf
        p_saved, loss_saved, obs_saved = jax.tree_util.tree_map(
            lambda a: a[:n_valid], (p_saved, loss_saved, obs_saved)
        )
    final_y, final_dyn = out.final_y, out.final_dyn
    sstate, cstate = out.solver_state, out.controller_state
    own = solver.evaluation_counts(sstate) if own_count else {}
    if own_count:
        own.update(work_counts(sstate, cstate))
        n_vf = own.pop("num_vf_evals")
    else:
        n_vf = int(host["num_vf_evals"]) if counter is None else counter.count
    grads_per, hvps_per = flow.cost()
    # A Jacobian-vector product of the gradient-flow field is one HVP.
    n_jvp = own.pop("num_jvps", 0)
    stats: dict[str, Any] = {
        "method": f"gradient_flow[{type(flow).__name__}, {solver_name(solver)}]",
        "solver": solver_name(solver),
        "flow": type(flow).__name__,
        "rtol": float(rtol) if tolerances_used else None,
        "atol": float(atol) if tolerances_used else None,
        **(
            {"requested_rtol": requested[0], "requested_atol": requested[1]}
            if tolerances_used
            and requested[0] is not None
            and requested != (rtol, atol)
            else {}
        ),
        "dtype": jnp.dtype(state_dtype).name,
        "t0": float(t0),
        "t1": float(t1),
        "t_final": t_end,
        **{k: int(host[k]) for k in _STEP_COUNTS},
        "num_vf_evals": n_vf,
        "num_gradient_evals": n_vf * grads_per,
        "num_hvps": n_vf * hvps_per + (n_jvp if isinstance(flow, GradientFlow) else 0),
        **({"num_jvps": n_jvp, **own} if own_count else {}),
        "compile_time": compile_time,
        "run_time": run_time,
        "num_compilations": _NUM_TRACES[0] - before,
        "stability_limit": stability_limit(solver),
    }
    traj = Trajectory(
        ts=jnp.asarray(ts_np[:n_valid], state_dtype),
        params=None if not save_params else eqx.combine(p_saved, static),
        loss=loss_saved,
        observables=obs_saved,
        final_params=eqx.combine(final_dyn, static),
        stats=stats,
        state=FlowState(t=out.host["t_end"], y=final_y),
        result=result_item(host["result"]),
    )
    if not throw:
        return traj

    result = int(result)
    fixed_step = isinstance(stepsize_controller, dfx.ConstantStepSize)

    def when(t: float, horizon: bool = False) -> str:
        """`t = …`, with the step number of a fixed-step solve (and t1)."""
        notes = []
        if t == float(t0):
            notes.append("the initial parameters")
        elif fixed_step and dt0 is not None:
            k = int(round((t - float(t0)) / float(dt0)))
            notes.append(f"step {k} of dt0 = {float(dt0):g}")
        if horizon:
            notes.append(f"t1 = {float(t1):g}")
        return f"t = {t:.6g}" + (f" ({'; '.join(notes)})" if notes else "")

    j_bad = first_nonfinite_save(traj.loss)
    first_bad_loss = None if j_bad is None else float(traj.ts[j_bad])
    if result == int(dfx.RESULTS.event_occurred._value):
        bad = not bool(tree_all_finite(final_dyn))
        if bad and first_bad_loss is not None:
            cause = (
                f" The loss was already non-finite at {when(first_bad_loss)}, so its "
                f"gradient carried NaN/inf into the parameters. {UNDEFINED_LOSS}."
            )
        elif bad:
            cause = (
                " The loss was finite at every save before, so the flow overflowed: "
                + (
                    f"lower dt0 (a fixed step needs dt0·λ_max below the solver's "
                    f"stability limit {stats['stability_limit']:.3g}), "
                    if fixed_step
                    else ""
                )
                + "check the loss for overflow, lower the time scale, or use float64."
            )
        else:
            cause = " Check the loss for overflow or lower the time scale."
        what = (
            "became non-finite (NaN/inf)"
            if bad
            else (
                f"exceeded divergence_threshold={divergence_threshold:g} in magnitude"
            )
        )
        err = NonFiniteError(
            f"The flow diverged: the parameters {what} at {when(t_end, True)}; the "
            f"solve was stopped there.{cause} The "
            "trajectory up to that time is attached as error.trajectory."
        )
        err.trajectory = traj
        raise err
    if result == int(dfx.RESULTS.dt_min_reached._value):
        loss_end = float(phi(final_dyn))
        grad_ok = bool(tree_all_finite(jax.grad(phi)(final_dyn)))
        if not (math.isfinite(loss_end) and grad_ok):
            which = (
                "loss and its gradient are"
                if not (math.isfinite(loss_end) or grad_ok)
                else ("loss is" if grad_ok else "gradient of the loss is")
            )
            msg = (
                f"The {which} non-finite (NaN/inf) at {when(t_end, True)}, where the "
                "parameters are still finite: the solver "
                "rejected every step from there until the step size collapsed. "
                f"{UNDEFINED_LOSS}."
            )
        else:
            msg = (
                f"The solver's step size collapsed at {when(t_end, True)}, where the "
                f"loss ({loss_end:.6g}) and its gradient "
                "are finite: the flow blows up in finite time there (or the tolerance "
                "is beyond the arithmetic's precision). Shorten t1 or check the loss."
            )
        err = NonFiniteError(
            msg + " The trajectory up to that time is attached as error.trajectory."
        )
        err.trajectory = traj
        raise err
    if result == int(dfx.RESULTS.max_steps_reached._value):
        err = RuntimeError(
            f"The solver used all max_steps={max_steps} steps and stopped at "
            f"t = {t_end:.6g} of t1 = {t1:g}. Increase max_steps, loosen rtol, or the "
            "flow is stiff (see stats['stability_limit'] and the Sharpness observable)."
        )
        err.trajectory = traj
        raise err
    if result != int(dfx.RESULTS.successful._value):
        raise RuntimeError(
            f"diffrax solve failed: {dfx.RESULTS[result]} at t = {t_end}."
        )
    if first_bad_loss is not None:
        raise_nonfinite_loss(
            traj,
            f"The loss became non-finite (NaN/inf) at {when(first_bad_loss)}, the "
            "first save where it is (its gradient is finite there)",
        )

    if want_steps:
        _stiffness_check(phi, final_dyn, out.steps, t0, rtol, solver, stats)
    return traj


class _Loss(eqx.Module):
    """Φ(params): `loss_fn(params)`, or `loss_fn(params, args)` with the data `args`
    traced, so that new data of the same shapes reuse the compiled solve."""

    loss_fn: Callable = eqx.field(static=True)
    args: Any

    def __call__(self, params):
        if self.args is None:
            return self.loss_fn(params)
        return self.loss_fn(params, self.args)


class _OnArrays(eqx.Module):
    """Φ as a function of the floating-point arrays alone (a Module, so that compiled
    helpers such as the stiffness check are cached per loss function)."""

    loss: _Loss
    static: Any

    def __call__(self, dyn):
        return self.loss(eqx.combine(dyn, self.static))


class FlowState(eqx.Module):
    """The state of a flow at the end of a solve: the time and the ODE state (the
    parameters, and the momenta of a second-order flow)."""

    t: Any
    y: Any


def _flow_resume_state(resume: Any) -> Any:
    state = resume.state if isinstance(resume, Trajectory) else resume
    if state is not None:
        check_state_kind(
            state, FlowState, "gradient_flow", "Resume a gradient_flow trajectory."
        )
    if isinstance(state, SavedState):
        leaves = state.leaves
        if ".t" not in leaves:
            raise ValueError("resume: this checkpoint was not written by a flow.")
        y = SavedState({k[2:]: v for k, v in leaves.items() if k.startswith(".y")})
        y = SavedState({(k or "()"): v for k, v in y.leaves.items()})
        return FlowState(t=leaves[".t"], y=y)
    if not isinstance(state, FlowState):
        raise ValueError(
            "resume: this trajectory does not end in a flow state (it was made by "
            "a discrete optimiser, or cannot be resumed); resume a gradient_flow "
            "trajectory."
        )
    return state


def _flow_result(code: Any, final_dyn: Any, loss: Any) -> Any:
    """The `RESULTS` code of a solve from diffrax's result code (traceable)."""
    R, D = RESULTS, dfx.RESULTS
    loss_ok = jnp.all(jnp.isfinite(loss))
    return jnp.select(
        [
            code == D.successful._value,
            code == D.event_occurred._value,
            code == D.dt_min_reached._value,
            code == D.max_steps_reached._value,
        ],
        [
            jnp.where(loss_ok, R.successful._value, R.nonfinite_loss._value),
            jnp.where(
                tree_all_finite(final_dyn),
                R.diverged._value,
                R.nonfinite_params._value,
            ),
            R.dt_collapsed._value,
            R.max_steps_reached._value,
        ],
        R.solver_failed._value,
    ).astype(jnp.int32)


def _traced_result(out, flow, static, problem, throw) -> Trajectory:
    """The trajectory of a solve traced by `jax.jit`/`vmap`/`grad`: every array as
    diffrax returns it (saves after an early stop are `inf`), the counts as arrays,
    and the status in `result` (or an Equinox runtime error if `throw`)."""
    p_saved, loss_saved, obs_saved = out.saved
    final_y, final_dyn, code = out.final_y, out.final_dyn, out.host["result"]
    if throw:
        final_dyn = eqx.error_if(
            final_dyn,
            code != RESULTS.successful._value,
            "gradient_flow: the solve failed (the flow diverged, the loss became "
            "non-finite, the step size collapsed or max_steps was used up). Call "
            "with throw=False and read trajectory.result to see which.",
        )
    counts = {k: out.host[k] for k in _STEP_COUNTS}
    if problem.count_in_controller and not problem.count_in_solver:
        grads_per, _ = flow.cost()
        counts["num_vf_evals"] = out.host["num_vf_evals"]
        counts["num_gradient_evals"] = out.host["num_vf_evals"] * grads_per
    return Trajectory(
        ts=out.ts,
        params=eqx.combine(p_saved, static) if problem.save_params else None,
        loss=loss_saved,
        observables=obs_saved,
        final_params=eqx.combine(final_dyn, static),
        stats={"method": f"gradient_flow[{type(flow).__name__}]"},
        state=FlowState(t=out.host["t_end"], y=final_y),
        result=result_item(code),
        counts=counts,
    )


class _CallCounter:
    """Host-side count of vector-field calls, for solvers whose cost per step is data
    dependent (implicit solvers). Hashed by identity, so each solve compiles anew."""

    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1


class _Problem(eqx.Module):
    """Everything about a solve except the numbers that may change between calls, so
    that repeated solves of one problem (e.g. a sweep over tolerances or learning
    rates) reuse the compiled program."""

    loss_fn: _Loss
    static: Any
    flow: AbstractFlow
    solver: dfx.AbstractSolver
    controller: dfx.AbstractStepSizeController
    observables: dict
    save_params: bool = eqx.field(static=True)
    want_steps: bool = eqx.field(static=True)
    count_in_controller: bool = eqx.field(static=True)
    count_in_solver: bool = eqx.field(static=True)
    counter: Any = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: dfx.AbstractAdjoint
    progress_meter: dfx.AbstractProgressMeter


_NUM_TRACES = [0]  # how many times `_solve` has been traced, i.e. compiled


@eqx.filter_jit
def _solve(problem: _Problem, y0, t0, t1, dt0, ts, divergence_threshold):
    _NUM_TRACES[0] += 1
    flow, static, counter = problem.flow, problem.static, problem.counter

    def phi(dyn):
        return problem.loss_fn(eqx.combine(dyn, static))

    def vector_field(t, y, args):
        if counter is not None:
            jax.debug.callback(counter.increment)
        return flow.vector_field(phi, t, y)

    def save_fn(t, y, args):
        dyn = flow.params(y)
        loss, values = evaluate_observables(
            problem.loss_fn, eqx.combine(dyn, static), problem.observables
        )
        return (dyn if problem.save_params else None), loss, values

    def diverged(t, y, args, **kwargs):
        return jnp.logical_not(tree_all_finite(y)) | (
            tree_max_abs(y) > divergence_threshold
        )

    term, solver = dfx.ODETerm(vector_field), problem.solver
    if problem.count_in_solver:
        # Carry w = (evaluations, JVPs) beside the state so that the work of rejected
        # attempts reaches the controller (see dynlearn/_work.py).
        solver = WorkTrackingSolver(solver, term)
        term = dfx.ODETerm(
            lambda t, yw, args: (vector_field(t, yw[0], args), jnp.zeros_like(yw[1]))
        )
        y0 = (y0, jnp.zeros(2, jnp.result_type(*jax.tree_util.tree_leaves(y0))))
        strip = lambda fn: lambda t, yw, args, **kw: fn(t, yw[0], args, **kw)
    else:
        strip = lambda fn: fn

    subs = [
        dfx.SubSaveAt(ts=ts, fn=strip(save_fn)),
        dfx.SubSaveAt(t1=True, fn=strip(lambda t, y, args: y)),
    ]
    if problem.want_steps:
        steps_fn = lambda t, y, args: (t, phi(flow.params(y)))
        subs.append(dfx.SubSaveAt(steps=True, fn=strip(steps_fn)))
    sol = dfx.diffeqsolve(
        term,
        solver,
        t0,
        t1,
        dt0,
        y0,
        saveat=dfx.SaveAt(
            subs=subs,
            controller_state=problem.count_in_controller,
            solver_state=problem.count_in_solver,
        ),
        stepsize_controller=problem.controller,
        event=dfx.Event(strip(diverged)),
        max_steps=problem.max_steps,
        adjoint=problem.adjoint,
        throw=False,
        progress_meter=problem.progress_meter,
    )
    final_y = jax.tree_util.tree_map(lambda a: a[0], sol.ys[1])
    final_dyn = flow.params(final_y)
    code = sol.result._value
    host = {  # the scalars the caller reads on the host, fetched in one transfer
        "t_end": sol.ts[1][0],
        "n_valid": jnp.sum(jnp.isfinite(sol.ts[0])),
        "code": code,
        "result": _flow_result(code, final_dyn, sol.ys[0][1]),
        **{k: sol.stats[k] for k in _STEP_COUNTS},
    }
    if problem.count_in_controller and not problem.count_in_solver:
        host["num_vf_evals"] = sol.controller_state[1]
    return _SolveOut(
        ts=sol.ts[0],
        saved=sol.ys[0],
        steps=sol.ys[2] if problem.want_steps else None,
        final_y=final_y,
        final_dyn=final_dyn,
        host=host,
        controller_state=sol.controller_state,
        solver_state=sol.solver_state,
    )


_STEP_COUNTS = ("num_steps", "num_accepted_steps", "num_rejected_steps")


class _SolveOut(eqx.Module):
    """What a compiled solve returns: the saves, the final state and the scalars
    (time reached, status, step counts) that the eager caller reads."""

    ts: Any
    saved: Any
    steps: Any
    final_y: Any
    final_dyn: Any
    host: dict
    controller_state: Any
    solver_state: Any
