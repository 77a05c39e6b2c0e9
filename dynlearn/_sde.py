"""The stochastic modified equation of minibatch SGD (Li, Tai & E 2017).

$$dθ = -∇\\tilde Φ(θ)\\,dt + \\sqrt{η\\,Σ_B(θ)}\\,dW_t,$$

with $\\tilde Φ = Φ$ (order 1) or $Φ + \\tfrac η4\\|∇Φ\\|^2$ (order 2), $t = kη$, and
$Σ_B$ the covariance of one minibatch gradient: $Σ/B$ for batches drawn with
replacement, $Σ(N-B)/(B(N-1))$ without (zero for the full batch B = N), where $Σ = \\frac1N\\sum_i (∇ℓ_i - ∇Φ)(∇ℓ_i -
∇Φ)^T$ is the per-example gradient covariance. References: Li, Tai & E, ICML 2017
(arXiv:1511.06251), JMLR 20 (2019) (arXiv:1811.01558).

The diffusion is matrix-free: with $G$ the N×P matrix of rows $(∇ℓ_i - ∇Φ)/\\sqrt N$,
$Σ = G^TG$ and the noise is $\\sqrt{η/B}\\,G^T dW$ with an N-dimensional Brownian motion
W. $G^Tw = ∇_θ\\sum_i (w_i - \\bar w)ℓ_i(θ)/\\sqrt N$ is one vector-Jacobian product, so
neither Σ (P×P) nor G is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np

from ._custom_types import Params
from ._discrete import _check_batch_size, _check_data, num_paths
from ._engine import DivergenceError
from ._flows import GradientFlow, ModifiedGradientFlow
from ._gradient_flow import check_times
from ._misc import (
    UNDEFINED_LOSS,
    NonFiniteError,
    check_bool,
    check_divergence_threshold,
    check_integer,
    check_nonempty_leaves,
    check_positive,
    checked_loss,
    progress_enabled,
    split_params,
    timed,
    tree_all_finite,
    tree_max_abs,
)
from ._observables import AbstractObservable, as_observables, evaluate_observables
from ._results import RESULTS, result_item
from ._trajectory import SavedState, Trajectory, check_state_kind, restore_state


def per_example_losses(loss_fn: Callable, params: Any, data: Any) -> jax.Array:
    """ℓ_i(θ) = `loss_fn(params, batch_i)` for every example i (batches of size one)."""
    return jax.vmap(lambda ex: loss_fn(params, jtu.tree_map(lambda x: x[None], ex)))(
        data
    )


def sgd_sde(
    loss_fn: Callable[[Params, Any], Any],
    params: Params,
    data: Any,
    lr: float,
    t1: float,
    *,
    batch_size: int,
    key: Any = None,
    dt: float | None = None,
    order: int = 1,
    replacement: bool = True,
    solver: dfx.AbstractSolver | None = None,
    ts: Any = None,
    num_saves: int = 101,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e8,
    resume: Trajectory | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Integrate the stochastic modified equation of minibatch SGD as a diffrax SDE.

    **Arguments:**

    - `loss_fn(params, batch)`, `params`, `data`, `lr`, `batch_size`, `replacement`:
      as [`dynlearn.sgd`][]; `loss_fn` must be the *mean* over the batch.
    - `t1`: final time ($t = kη$: `t1 = lr·steps` matches `steps` SGD steps).
    - `key`: PRNG key of the Brownian motion (a `diffrax.VirtualBrownianTree`), or a
      batch of M keys for an ensemble of M paths (vmapped; arrays in the returned
      trajectory then carry a leading sample axis).
    - `dt`: fixed step (default `lr/4`).
    - `order`: 1 (drift −∇Φ) or 2 (drift −∇(Φ + η/4‖∇Φ‖²), weak order 2).
    - `solver`: default `diffrax.Euler()` (Euler–Maruyama; Itô).
    - `ts`, `num_saves`, `observables`, `save_params`: as [`dynlearn.gradient_flow`][].
    - `max_steps`: the step budget; a run that needs more steps than this (t1/dt) is
      refused before it starts.
    - `divergence_threshold`: stop (and raise, naming the time) when a parameter
      exceeds it in magnitude or becomes non-finite.
    - `resume`: a trajectory of an earlier run (or a loaded checkpoint) with the same
      `dt` and key: continue from its final time to `t1`, bit for bit equal to the
      uninterrupted run. `key` may then be omitted.
    - `progress`: show a progress meter (diffrax's tqdm meter); `None` means the
      default of [`dynlearn.show_progress`][] (off).

    The Brownian increments of the step [t_j, t_{j+1}] are drawn from the key and the
    two times alone (`diffrax.UnsafeBrownianPath`), on the fixed grid t_j = j·dt: a
    resumed run draws exactly the noise of the straight one.
    """
    check_positive("lr", lr)
    t_start, y_resume = 0.0, None
    if resume is not None:
        t_start, y_resume, saved_key = _sde_resume(resume)
        key = saved_key if key is None else key
        if ts is None:
            ts = np.linspace(t_start, float(t1), num_saves)
    ts_np = check_times(t_start, t1, ts, num_saves)
    n = _check_data(data)
    batch_size = _check_batch_size(batch_size, n, replacement)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    dt = lr / 4 if dt is None else dt
    check_positive("dt", dt)
    check_bool("save_params", save_params)
    progress = progress_enabled(progress)
    check_integer("max_steps", max_steps)
    thr = check_divergence_threshold(divergence_threshold)
    j0, n_steps = step_grid(
        "sgd_sde", t_start, t1, dt, max_steps, resume is not None, "dt (default lr/4)"
    )
    if key is None:
        raise TypeError(
            "sgd_sde needs a PRNG key for the Brownian motion: key=jax.random.key(0), "
            "or jax.random.split(key, M) for an ensemble of M paths."
        )
    n_paths = num_paths(key)
    solver = dfx.Euler() if solver is None else solver
    if not isinstance(solver, dfx.AbstractSolver):
        raise TypeError(
            f"solver must be a diffrax solver instance such as diffrax.Euler(), got "
            f"{solver!r}."
        )
    checked_loss(loss_fn, params, data)
    dynamic, static = split_params(params)
    check_nonempty_leaves(dynamic)
    flow = GradientFlow() if order == 1 else ModifiedGradientFlow(jnp.asarray(lr))
    if replacement:
        factor = 1 / batch_size
    elif batch_size == n:  # the full batch every step: no noise (also N = 1)
        factor = 0.0
    else:
        factor = (n - batch_size) / (batch_size * (n - 1))
    dtype = jtu.tree_leaves(dynamic)[0].dtype
    problem = _SDEProblem(
        loss_fn=loss_fn,
        static=static,
        flow=flow,
        solver=solver,
        observables=as_observables(observables),
        scale=jnp.asarray(math.sqrt(lr * factor / n), dtype),
        n=n,
        save_params=save_params,
        progress=progress,
        ensemble=n_paths is not None,
        resumed_ensemble=y_resume is not None and n_paths is not None,
    )
    if y_resume is not None:
        template = (
            dynamic
            if n_paths is None
            else jax.vmap(lambda _: dynamic)(jnp.arange(n_paths))
        )
        dynamic = restore_state(y_resume, template, "sgd_sde")
    return run_sde(
        problem, dynamic, key, data, t1=t1, dt=dt, j0=j0, n_steps=n_steps, ts=ts_np,
        threshold=thr, num_paths=n_paths,
        method=f"sgd_sde[order={order}, {type(solver).__name__}]", name="sgd_sde",
        remedy="Reduce dt or lr, or check the loss for overflow.",
    )  # fmt: skip


def run_sde(
    problem: _SDEProblem,
    y0: Any,
    key: Any,
    data: Any,
    *,
    t1: float,
    dt: float,
    j0: int,
    n_steps: int,
    ts: np.ndarray,
    threshold: float,
    num_paths: int | None,
    method: str,
    name: str,
    remedy: str,
) -> Trajectory:
    """Run the compiled fixed-step SDE solve on the grid t_j = j·dt, j = j0 …
    j0 + n_steps (the last step clipped to `t1`), saving at `ts`, for one path or
    an ensemble of `num_paths`. Returns its [`dynlearn.Trajectory`][], whose state
    resumes the run; raises as `check_sde_run` does for a diverged run or a
    non-finite loss (`name` and `remedy` word the error)."""
    dtype = jtu.tree_leaves(y0)[0].dtype
    grid = np.minimum(dt * np.arange(j0, j0 + n_steps + 1), float(t1))
    grid[-1] = float(t1)
    out, compile_time, run_time = timed(
        _sde_solve,
        problem,
        y0,
        key,
        data,
        jnp.asarray(grid, dtype),
        jnp.asarray(ts, dtype),
        jnp.asarray(threshold, dtype),
    )
    ((p_saved, loss_saved, obs_saved), final), num_steps = out
    t_final, final = jtu.tree_map(
        lambda a: a[0] if num_paths is None else a[:, 0], final
    )
    static = problem.static
    traj = Trajectory(
        ts=jnp.asarray(ts),
        params=eqx.combine(p_saved, static) if problem.save_params else None,
        loss=loss_saved,
        observables=obs_saved,
        final_params=eqx.combine(final, static),
        stats={
            "method": method,
            "num_paths": 1 if num_paths is None else num_paths,
            "num_steps": int(np.max(np.asarray(num_steps))),
            "dt": float(dt),
            "compile_time": compile_time,
            "run_time": run_time,
        },
        state=SDEState(t=t_final, y=final, key=key),
    )
    return check_sde_run(
        traj, final, t_final, loss_saved, t1=t1, dt=dt, grid=grid, j0=j0,
        thr=threshold, ensemble=num_paths is not None, name=name, remedy=remedy,
    )  # fmt: skip


def step_grid(
    name: str,
    t_start: float,
    t1: float,
    dt: float,
    max_steps: int,
    resumed: bool,
    dt_hint: str = "dt",
) -> tuple[int, int]:
    """The fixed-step grid t_j = j·dt of an SDE run from `t_start` to `t1`: the first
    index j0 and the number of steps. A resumed run must start on the grid of the
    run that wrote the checkpoint, and the steps must fit in `max_steps`; each is a
    ValueError naming the remedy."""
    j0 = int(round(t_start / dt))
    if resumed and abs(j0 * dt - t_start) > 1e-9 * max(1.0, t_start):
        raise ValueError(
            f"resume: the checkpoint's time {t_start:g} is not on the grid j·dt of "
            f"dt = {dt:g}; resume with the dt of the run that wrote it."
        )
    n_steps = int(math.ceil((float(t1) - j0 * dt) / dt - 1e-9))
    if n_steps > max_steps:
        raise ValueError(
            f"{name}: t1 = {t1:g} at dt = {dt:g} needs {n_steps} steps, more than "
            f"max_steps = {max_steps}. Raise {dt_hint} or max_steps, or shorten t1."
        )
    return j0, n_steps


def check_sde_run(
    traj: Trajectory,
    final: Any,
    t_final: Any,
    loss_saved: Any,
    *,
    t1: float,
    dt: float,
    grid: np.ndarray,
    j0: int,
    thr: float,
    ensemble: bool,
    name: str,
    remedy: str,
) -> Trajectory:
    """`traj` if the fixed-step SDE run reached `t1` with a finite loss; else raise
    a [`dynlearn.DivergenceError`][] (the run stopped at `t_final`) with the saves
    up to the last good iterate, or a `NonFiniteError` for a non-finite loss."""
    t_end = float(np.min(np.asarray(t_final)))
    if t_end < float(t1) - 1e-9 * max(1.0, abs(float(t1))):
        # keep the saves up to the last good iterate, the grid time before t_end
        # (saves between it and t_end interpolate towards the bad iterate)
        step = int(round(t_end / dt))
        t_good = float(grid[max(step - j0 - 1, 0)])
        valid = np.asarray(traj.ts) <= t_good + 1e-12 * max(1.0, abs(t_good))
        cut = (lambda a: a[:, valid]) if ensemble else (lambda a: a[valid])
        traj = eqx.tree_at(
            lambda t: (t.ts, t.loss, t.observables, t.params),
            traj,
            (
                traj.ts[valid],
                cut(traj.loss),
                jtu.tree_map(cut, traj.observables),
                None if traj.params is None else jtu.tree_map(cut, traj.params),
            ),
            is_leaf=lambda x: x is None,
        )
        bad = not bool(tree_all_finite(final))
        what = (
            "became non-finite (NaN/inf)"
            if bad
            else f"exceeded divergence_threshold={thr:g} in magnitude"
        )
        raise DivergenceError(
            f"{name}: the parameters {what} at t = {t_end:.6g} (step {step} of "
            f"dt = {dt:g}); the solve was stopped there. {remedy} The trajectory up "
            "to that time is attached as error.trajectory.",
            step=step,
            t=t_end,
            result=result_item(
                RESULTS.nonfinite_params._value if bad else RESULTS.diverged._value
            ),
            trajectory=traj,
        )
    if not bool(jnp.all(jnp.isfinite(loss_saved))):
        err = NonFiniteError(
            f"{name}: the loss became non-finite at finite parameters. "
            f"{UNDEFINED_LOSS}. The trajectory is attached as error.trajectory."
        )
        err.trajectory = traj
        raise err
    return traj


class _SDEProblem(eqx.Module):
    loss_fn: Callable = eqx.field(static=True)
    static: Any
    flow: Any
    solver: dfx.AbstractSolver
    observables: dict
    scale: Any
    n: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)
    progress: bool = eqx.field(static=True)
    ensemble: bool = eqx.field(static=True)
    resumed_ensemble: bool = eqx.field(static=True)  # y0 carries the path axis
    # Φ(params) without data (`data` is None), as in Langevin dynamics
    takes_data: bool = eqx.field(static=True, default=True)
    # the constant diffusion `scale`·I on the parameters, driven by a Brownian
    # motion of the parameters' shape (Langevin: scale = √(2T)), instead of the
    # minibatch noise √(η/B)·Gᵀ dW
    isotropic: bool = eqx.field(static=True, default=False)


@eqx.filter_jit
def _sde_solve(problem: _SDEProblem, y0, key, data, grid, ts, threshold):
    """Euler–Maruyama (or the given solver) on the grid, one compiled program per
    problem structure: new data, keys, learning rates or initial points reuse it."""
    static, n, loss_fn = problem.static, problem.n, problem.loss_fn
    full_loss = (lambda p: loss_fn(p, data)) if problem.takes_data else loss_fn
    phi = lambda d: full_loss(eqx.combine(d, static))
    dtype = grid.dtype

    def drift(t, y, args):
        return problem.flow.vector_field(phi, t, y)

    def diffusion(t, y, args):
        def gt_w(w):
            w = w - jnp.mean(w)
            weighted = lambda d: jnp.dot(
                w, per_example_losses(loss_fn, eqx.combine(d, static), data)
            )
            return jtu.tree_map(lambda g: problem.scale * g, jax.grad(weighted)(y))

        return lx.FunctionLinearOperator(gt_w, jax.ShapeDtypeStruct((n,), dtype))

    def isotropic_diffusion(t, y, args):
        return lx.FunctionLinearOperator(
            lambda w: jtu.tree_map(lambda x: problem.scale * x, w), _shapes(y)
        )

    def save_fn(t, y, args):
        loss, values = evaluate_observables(
            full_loss, eqx.combine(y, static), problem.observables
        )
        return (y if problem.save_params else None), loss, values

    def diverged(t, y, args, **kwargs):
        return jnp.logical_not(tree_all_finite(y)) | (tree_max_abs(y) > threshold)

    def run(y0, key):
        if problem.isotropic:
            bm = dfx.UnsafeBrownianPath(shape=_shapes(y0), key=key)
            noise = dfx.ControlTerm(isotropic_diffusion, bm)
        else:
            bm = dfx.UnsafeBrownianPath(shape=(n,), key=key)
            noise = dfx.ControlTerm(diffusion, bm)
        terms = dfx.MultiTerm(dfx.ODETerm(drift), noise)
        sol = dfx.diffeqsolve(
            terms,
            problem.solver,
            grid[0],
            grid[-1],
            None,
            y0,
            saveat=dfx.SaveAt(
                subs=[
                    dfx.SubSaveAt(ts=ts, fn=save_fn),
                    dfx.SubSaveAt(t1=True, fn=lambda t, y, args: (t, y)),
                ]
            ),
            stepsize_controller=dfx.StepTo(ts=grid),
            adjoint=dfx.ForwardMode(),
            event=dfx.Event(diverged),
            max_steps=grid.shape[0],
            throw=False,
            progress_meter=dfx.TqdmProgressMeter()
            if problem.progress
            else dfx.NoProgressMeter(),
        )
        return sol.ys, sol.stats["num_steps"]

    if problem.ensemble:
        run = jax.vmap(run, in_axes=(0 if problem.resumed_ensemble else None, 0))
    return run(y0, key)


def _shapes(tree: Any) -> Any:
    return jtu.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


class SDEState(eqx.Module):
    """The state of an SDE run: time, parameters and the Brownian key."""

    t: Any
    y: Any
    key: Any


def _sde_resume(resume: Any) -> tuple[float, Any, Any]:
    state = resume.state if isinstance(resume, Trajectory) else resume
    if state is not None:
        check_state_kind(
            state, SDEState, "this SDE", "Resume a trajectory of the same SDE."
        )
    if isinstance(state, SavedState):
        leaves = state.leaves
        if ".t" not in leaves or ".key" not in leaves:
            raise ValueError("resume: this checkpoint was not written by sgd_sde.")
        y = SavedState(
            {(k[2:] or "()"): v for k, v in leaves.items() if k.startswith(".y")}
        )
        key = jax.random.wrap_key_data(jnp.asarray(leaves[".key"]))
        return float(np.max(np.asarray(leaves[".t"]))), y, key
    if not isinstance(state, SDEState):
        raise ValueError(
            "resume: this trajectory was not made by sgd_sde; resume an sgd_sde run."
        )
    return float(np.max(np.asarray(state.t))), state.y, state.key
