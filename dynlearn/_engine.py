"""The engine of discrete training dynamics: one pure, compiled `lax.scan` that every
stepper (GD, momentum, any optax optimiser, minibatch SGD, ...) runs on.

The numerical part, `_scan_run`, is a pure function of arrays: it works under
`jax.jit`, `jax.vmap` and `jax.grad`, and it is compiled once per problem *structure*
(loss function, stepper type, shapes, number of saves), so calls that differ only in
values (learning rate, initial parameters, keys, data passed as `args`) reuse the
compiled program. The eager wrapper around it, [`dynlearn.iterate`][], validates the
input, raises readable errors that carry the step and time of the first bad iterate,
and reports timings, compilations and counts.
"""

from __future__ import annotations

import abc
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax

from ._misc import (
    UNDEFINED_LOSS,
    NonFiniteError,
    check_bool,
    check_divergence_threshold,
    check_integer,
    check_real,
    checked_loss,
    progress_enabled,
    split_params,
    tree_all_finite,
    tree_max_abs,
    tree_norm,
)
from ._observables import AbstractObservable, as_observables
from ._results import RESULTS, result_item as _result_item
from ._trajectory import SavedState, Trajectory, check_state_kind, restore_state


class MemoryWarning(UserWarning):
    """The saves requested would take a large part of this machine's memory."""


class DivergenceError(NonFiniteError):
    """A run stopped because its iterate or loss became non-finite or too large.

    **Attributes:** `step` (the first bad step, or `None` for a flow), `t` (its time),
    `result` (a [`dynlearn.RESULTS`][] item) and `trajectory` (the run up to the last
    good iterate).
    """

    def __init__(
        self,
        message: str,
        *,
        step: int | None,
        t: float,
        result: Any,
        trajectory: Trajectory,
    ):
        super().__init__(message)
        self.step, self.t, self.result, self.trajectory = step, t, result, trajectory


# ----------------------------------------------------------------------------------
# steppers


class AbstractStepper(eqx.Module):
    """One step of a discrete training dynamics, $θ_{k+1} = S(θ_k, s_k; B_k, ξ_k)$,
    with stepper state $s_k$, the step's minibatch $B_k$ and randomness $ξ_k$.

    A stepper is a strategy object: its floating-point fields (learning rates,
    momenta) are traced, so a sweep over them reuses one compiled program and can be
    `jax.vmap`-ed. Most dynamics are functions of Φ and ∇Φ: subclass
    [`dynlearn.AbstractGradientStepper`][] and write `step`. A dynamics whose update
    is not (contrastive divergence, a physical learning machine, Langevin steps)
    subclasses this class and implements:

    - `init(params) -> state`: the stepper's own state (an optax state, persistent
      Markov chains; `None`), from the floating-point part of the parameters;
    - `update(params, state, batch, loss, *, key) -> (params, state, value,
      grad_norm)`: one step from the model `params` (the whole pytree), given the
      step's minibatch `batch` (the full data set, or the `args`, in full-batch runs),
      `loss`, Φ on that batch as a function of the model, and `key`, a PRNG key that
      depends only on the run's key and the step index (`None` when the run has no
      key). It returns the new model and state, Φ(θ_k) on the batch, and the norm of
      the step's descent direction (recorded as `grad_norm` in full-batch runs);
    - `time_per_step()`: the flow time of one step (the learning rate for GD), which
      puts the iterates on the time axis of the matching flow.

    Set the class variable `needs_key = True` if `update` draws random numbers: the
    engine then asks for a `key`.
    """

    needs_key: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, params: Any) -> Any:
        """The stepper state for the floating-point parameters `params`."""

    @abc.abstractmethod
    def update(
        self, params: Any, state: Any, batch: Any, loss: Callable, *, key: Any
    ) -> tuple[Any, Any, Any, Any]:
        """One step: the new model and state, Φ(θ_k) and the step's direction norm."""

    @abc.abstractmethod
    def time_per_step(self) -> Any:
        """Flow time per step."""

    def describe(self) -> str:
        """A short name for `stats["method"]`."""
        return type(self).__name__


class AbstractGradientStepper(AbstractStepper):
    """A stepper that is a function of Φ(θ_k) and ∇Φ(θ_k) (gradient descent, any
    optax optimiser). Subclasses implement `init`, `time_per_step` and

    - `step(params, state, value, grad, value_fn) -> (params, state)`: one step,
      given Φ(θ_k) = `value`, ∇Φ(θ_k) = `grad` (on the step's minibatch, if any) and
      `value_fn`, the loss as a function of the parameters (for line searches).
      `params`, `grad` and the returned parameters are the floating-point part of the
      model (the non-array fields of an Equinox module are held fixed).
    """

    @abc.abstractmethod
    def step(
        self, params: Any, state: Any, value: Any, grad: Any, value_fn: Callable
    ) -> tuple[Any, Any]:
        """One step: the new parameters and stepper state."""

    def update(self, params, state, batch, loss, *, key):
        dynamic, static = eqx.partition(params, eqx.is_inexact_array)
        value_fn = lambda d: loss(eqx.combine(d, static))
        value, grad = jax.value_and_grad(value_fn)(dynamic)
        new, state = self.step(dynamic, state, value, grad, value_fn)
        return eqx.combine(new, static), state, value, tree_norm(grad)


class GradientDescent(AbstractGradientStepper):
    """$θ_{k+1} = θ_k - η∇Φ(θ_k)$, the forward-Euler step of gradient flow, at
    $t_k = kη$. `lr` is traced: a new learning rate does not recompile."""

    lr: Any

    def init(self, params):
        return None

    def step(self, params, state, value, grad, value_fn):
        return jtu.tree_map(lambda p, g: p - self.lr * g, params, grad), state

    def time_per_step(self):
        return self.lr

    def describe(self):
        return "gradient_descent"


class Optax(AbstractGradientStepper):
    """Any `optax.GradientTransformation` as a stepper, including those that need the
    loss (`optax.lbfgs`, line searches: `value`, `grad` and `value_fn` are passed).

    The optimiser's functions are part of the program: a new optimiser object
    compiles anew. To sweep a hyperparameter with one compilation, or to `vmap` over
    it, build the optimiser inside the function you transform, or use
    `optax.inject_hyperparams`.
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    dt: Any = 1.0

    def init(self, params):
        return self.optimizer.init(params)

    def step(self, params, state, value, grad, value_fn):
        opt = optax.with_extra_args_support(self.optimizer)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=value_fn
        )
        return optax.apply_updates(params, updates), state

    def time_per_step(self):
        return self.dt

    def describe(self):
        return "optax"


# ----------------------------------------------------------------------------------
# the pure core


class EngineState(eqx.Module):
    """The complete state of a discrete run between two steps: enough to resume it
    bit for bit."""

    step: Any  # int, the number of steps taken so far
    params: Any  # the floating-point part of the parameters
    stepper_state: Any
    key: Any  # the PRNG key of the minibatch draws (None for full batch)


class _Batching(eqx.Module):
    n: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    replacement: bool = eqx.field(static=True)


class _Problem(eqx.Module):
    loss_fn: Callable = eqx.field(static=True)
    takes_data: bool = eqx.field(static=True)
    static: Any
    stepper: AbstractStepper
    observables: dict
    batching: _Batching | None
    n_saves: int = eqx.field(static=True)
    save_every: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)
    save_grad_norm: bool = eqx.field(static=True)
    progress: bool = eqx.field(static=True)


_NUM_TRACES = [0]  # how many times the core has been traced, i.e. compiled


def minibatch_indices(
    k: Any, n: int, batch_size: int, replacement: bool, *, key: Any
) -> jax.Array:
    """Indices of the minibatch of step `k`: uniform with replacement, or a fresh
    random permutation per epoch (without replacement, `n` divisible by batch size).
    Depends on the step only through `fold_in(key, k)`, so a resumed run draws the
    batches of the straight run."""
    if replacement:
        return jr.randint(jr.fold_in(key, k), (batch_size,), 0, n)
    per_epoch = n // batch_size
    epoch, j = k // per_epoch, k % per_epoch
    perm = jr.permutation(jr.fold_in(key, epoch), n)
    return jax.lax.dynamic_slice(perm, (j * batch_size,), (batch_size,))


def _select(pred, a, b):
    return jtu.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _run_one(problem: _Problem, state: EngineState, data: Any, threshold: Any):
    """One path: `n_saves · save_every` steps from `state`, saving every
    `save_every`. Returns the final state, the saves, the status and first bad step."""
    static, stepper, batching = problem.static, problem.stepper, problem.batching
    se = problem.save_every

    def loss_on(dyn, batch):
        full = eqx.combine(dyn, static)
        return (
            problem.loss_fn(full, batch)
            if problem.takes_data
            else problem.loss_fn(full)
        )

    def model_loss(model, batch):
        return (
            problem.loss_fn(model, batch)
            if problem.takes_data
            else problem.loss_fn(model)
        )

    full_loss = lambda p: (
        problem.loss_fn(p, data) if problem.takes_data else problem.loss_fn(p)
    )

    def readout(dyn, value, gnorm):
        """Saved quantities at θ; `value`, `gnorm` are the full-batch Φ, ‖∇Φ‖ when
        the step computed them already (full batch), else `None`."""
        full = eqx.combine(dyn, static)
        obs = dict(problem.observables)
        if value is None and not problem.save_grad_norm:
            value = loss_on(dyn, data)
        elif value is None:
            value, gnorm = jax.value_and_grad(lambda d: loss_on(d, data))(dyn)
            gnorm = tree_norm(gnorm)
        obs.pop("grad_norm")
        values = {"grad_norm": gnorm} if problem.save_grad_norm else {}
        values.update({k: o(full_loss, full) for k, o in obs.items()})
        return (dyn if problem.save_params else None), value, values

    def step(carry, _):
        st, status, bad = carry
        k = st.step
        if batching is None:
            batch = data
        else:
            idx = minibatch_indices(
                k, batching.n, batching.batch_size, batching.replacement, key=st.key
            )
            batch = jtu.tree_map(lambda x: x[idx], data)

        skey = None if st.key is None else jr.fold_in(jr.fold_in(st.key, k), 1)
        model, sst, value, gnorm = stepper.update(
            eqx.combine(st.params, static),
            st.stepper_state,
            batch,
            lambda m: model_loss(m, batch),
            key=skey,
        )
        new = eqx.filter(model, eqx.is_inexact_array)
        ok = status == RESULTS.successful._value
        code = jnp.where(
            ~jnp.isfinite(value),
            RESULTS.nonfinite_loss._value,
            jnp.where(
                ~tree_all_finite(new),
                RESULTS.nonfinite_params._value,
                jnp.where(
                    tree_max_abs(new) > threshold,
                    RESULTS.diverged._value,
                    RESULTS.successful._value,
                ),
            ),
        ).astype(jnp.int32)
        # a bad loss is a property of θ_k, bad parameters of θ_{k+1}
        at = jnp.where(code == RESULTS.nonfinite_loss._value, k, k + 1)
        newly = ok & (code != RESULTS.successful._value)
        bad = jnp.where(newly, at, bad)
        status = jnp.where(ok, code, status)
        keep = ok & ~newly
        st = EngineState(
            step=jnp.where(keep, k + 1, k),
            params=_select(keep, new, st.params),
            stepper_state=_select(keep, sst, st.stepper_state),
            key=st.key,
        )
        return (st, status, bad), (value, gnorm)

    def steps(carry):
        if se == 1:
            carry, (value, gnorm) = step(carry, None)
            return carry, (value[None], gnorm[None])
        return jax.lax.scan(step, carry, None, length=se)

    def skip(carry):
        """A stopped run's chunk: no steps. In a full-batch run the save reads Φ and
        ‖∇Φ‖ at the frozen parameters from here; a minibatch save evaluates them."""
        shapes = jax.eval_shape(steps, carry)[1]
        if batching is None:
            value, grad = jax.value_and_grad(lambda d: loss_on(d, data))(
                carry[0].params
            )
            values = (value, tree_norm(grad))
        else:
            values = (0, 0)
        return carry, tuple(
            jnp.full(x.shape, v, x.dtype) for x, v in zip(shapes, values)
        )

    def chunk(carry, _):
        dyn0 = carry[0].params
        running = carry[1] == RESULTS.successful._value
        if se == 1:  # a step's cost: no branch, a stopped run's steps are masked
            carry, (values, gnorms) = steps(carry)
        else:  # a stopped run skips its remaining chunks
            carry, (values, gnorms) = jax.lax.cond(running, steps, skip, carry)
        if batching is None:  # the first step's Φ and ‖∇Φ‖ are those at the save
            saved = readout(dyn0, values[0], gnorms[0])
        else:
            saved = readout(dyn0, None, None)
        if problem.progress:
            jax.debug.callback(_progress_update, carry[0].step, carry[1])
        return carry, saved

    carry = (state, jnp.asarray(0, jnp.int32), jnp.asarray(-1, state.step.dtype))
    carry, saved = jax.lax.scan(chunk, carry, None, length=problem.n_saves)
    last = readout(carry[0].params, None, None)
    saved = jtu.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), saved, last)
    return carry, saved


@eqx.filter_jit
def _scan_run(problem: _Problem, state: EngineState, data: Any, threshold: Any):
    _NUM_TRACES[0] += 1
    run = lambda st: _run_one(problem, st, data, threshold)
    if jnp.ndim(state.step) == 1:  # an ensemble: one path per key, all batched
        run = jax.vmap(run)
    return run(state)


# ----------------------------------------------------------------------------------
# progress meter (host side)

_BAR: list[Any] = [None]


def _progress_update(step, status):
    bar = _BAR[0]
    if bar is not None:
        step = int(np.max(np.asarray(step)))
        bar.update(step - bar.n)
        if np.any(np.asarray(status) != 0):
            bar.set_postfix_str("stopped")


# ----------------------------------------------------------------------------------
# the public entry point


def _is_traced(x: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(x))


def _check_rate(name: str, value: Any) -> Any:
    """A positive finite float (checked when concrete), as an array for tracing."""
    if _is_traced(value):
        return value
    v = check_real(name, value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    # a weakly typed array: traced (no recompilation for a new value), and it does
    # not promote float32 parameters
    return value if isinstance(value, jax.Array) else jnp.asarray(v)


def num_paths(key: Any) -> int | None:
    """`None` for one PRNG key (or no key), M for a batch of M keys (an ensemble)."""
    if key is None:
        return None
    if not isinstance(key, jax.Array):
        key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        shape = key.shape
    elif key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        shape = key.shape[:-1]
    else:
        raise TypeError(
            "key must be a PRNG key (jax.random.key(0)) or a batch of keys "
            "(jax.random.split(key, M)) for an ensemble of M paths."
        )
    if len(shape) == 0:
        return None
    if len(shape) == 1:
        return int(shape[0])
    raise ValueError(f"key must be one key or a 1-D batch of keys, got shape {shape}.")


def _typed_key(key: Any) -> Any:
    if key is None or jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jr.wrap_key_data(jnp.asarray(key))


def save_bytes(template: Any, n_saves: int, n_paths: int) -> int:
    """Bytes of `n_saves` copies of every array leaf of `template`, for `n_paths`."""
    leaves = [x for x in jtu.tree_leaves(template) if hasattr(x, "dtype")]
    per = sum(int(np.prod(np.shape(x))) * jnp.dtype(x.dtype).itemsize for x in leaves)
    return per * n_saves * n_paths


def warn_if_large(nbytes: int, remedy: str) -> None:
    """Warn before allocating save buffers above 25% of physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if nbytes > 0.25 * total:
        warnings.warn(
            f"The saves of this run need {nbytes / 2**30:.2f} GiB, "
            f"{100 * nbytes / total:.0f}% of this machine's memory "
            f"({total / 2**30:.1f} GiB). {remedy}",
            MemoryWarning,
            stacklevel=3,
        )


def iterate(
    loss_fn: Callable,
    params: Any,
    stepper: AbstractStepper,
    num_steps: int,
    *,
    args: Any = None,
    data: Any = None,
    batch_size: int | None = None,
    replacement: bool = True,
    key: Any = None,
    save_every: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    save_grad_norm: bool = True,
    resume: Trajectory | None = None,
    divergence_threshold: float = 1e8,
    throw: bool = True,
    progress: bool | None = None,
    method: str | None = None,
) -> Trajectory:
    """Run a discrete training dynamics: `num_steps` steps of `stepper` in one compiled
    `jax.lax.scan`, saving every `save_every` steps.

    **Arguments:**

    - `loss_fn`: Φ. Called as `loss_fn(params)`, or `loss_fn(params, args)` if `args`
      is given, or `loss_fn(params, batch)` for minibatch training (`data` given).
    - `params`: the initial parameters, any pytree (`eqx.nn` modules included);
      derivatives are taken with respect to its floating-point arrays.
    - `stepper`: the dynamics, an [`dynlearn.AbstractStepper`][] (e.g.
      [`dynlearn.GradientDescent`][], [`dynlearn.Optax`][]).
    - `num_steps`: the step count *at the end of the run*: a fresh run takes `num_steps`
      steps; a resumed one continues to step `num_steps`.
    - `args`: data of a full-batch loss, passed as an argument so that new data of
      the same shapes reuse the compiled program.
    - `data`, `batch_size`, `replacement`, `key`: minibatch training. Each step draws
      `batch_size` examples of `data` (a pytree with a common leading axis N) with
      `key`, by [`dynlearn.minibatch_indices`][]. A batch of M keys runs M
      independent paths (an ensemble, vmapped). The trajectory records the
      full-batch loss `loss_fn(params, data)`.
    - `save_every`: save every `save_every` steps; the steps to take must be a
      multiple of it.
    - `observables`, `save_params`: as [`dynlearn.gradient_flow`][].
    - `save_grad_norm`: record ‖∇Φ‖ of the full data set at every save as
      `observables["grad_norm"]`. A full-batch step computes it anyway; a minibatch
      save computes it only for this (a gradient of Φ on all the data, several
      times the cost of Φ), so `False` makes large minibatch runs cheaper.
    - `resume`: a trajectory of an earlier run of the same problem (from memory or
      [`dynlearn.Trajectory.load`][]): continue from its final state (step,
      parameters, optimiser state, key). The result equals the uninterrupted run
      bit for bit.
    - `divergence_threshold`: stop when any parameter exceeds it in magnitude. A
      non-finite loss or parameter always stops the run.
    - `throw`: on a stopped run, raise (eagerly: a [`dynlearn.DivergenceError`][]
      with `.step`, `.t` and the partial trajectory; under `jax.jit`: an Equinox
      runtime error). With `throw=False` the run returns, with `traj.result` set.
    - `progress`: show a progress meter (tqdm), updated at every save; `None`
      means the default of [`dynlearn.show_progress`][] (off).

    **Returns:** a [`dynlearn.Trajectory`][] at times $t_k = k·$`time_per_step`.
    `stats`: `num_gradient_evals` (the steps'), `num_save_evals` (evaluations of
    Φ and ∇Φ, or of Φ alone with `save_grad_norm=False`, made only for saves: one,
    at the last iterate, for a full-batch run, whose steps evaluate them at every
    other saved iterate anyway), `num_steps`, and eagerly `compile_time`,
    `run_time` and `num_compilations`.
    """
    if not isinstance(stepper, AbstractStepper):
        raise TypeError(
            f"stepper must be a dynlearn.AbstractStepper (e.g. "
            f"dynlearn.GradientDescent(lr=0.1)), got {stepper!r}."
        )
    check_integer("num_steps", num_steps)
    check_integer("save_every", save_every)
    check_bool("save_params", save_params)
    check_bool("save_grad_norm", save_grad_norm)
    check_bool("throw", throw)
    progress = progress_enabled(progress)
    if not _is_traced(divergence_threshold):
        check_divergence_threshold(divergence_threshold)
    method = stepper.describe() if method is None else method
    dynamic, static = split_params(params)
    minibatch = data is not None
    if minibatch and args is not None:
        raise ValueError("Pass data (minibatch training) or args, not both.")
    if key is None and resume is not None and (minibatch or stepper.needs_key):
        key = _saved_key(resume)  # the checkpoint's key continues its draws
    n_paths = num_paths(key)
    if minibatch:
        n = _check_data(data)
        batch_size = _check_batch_size(batch_size, n, replacement)
        if not replacement and n % batch_size:
            raise ValueError(
                f"Sampling without replacement needs N={n} divisible by batch_size "
                f"(got batch_size={batch_size}): choose a divisor of N or "
                "replacement=True."
            )
        batching = _Batching(n, batch_size, bool(replacement))
        checked_loss(loss_fn, params, data)
        payload = data
    else:
        batching = None
        if n_paths is not None and not stepper.needs_key:
            raise ValueError(
                "A batch of keys runs an ensemble of minibatch runs: pass data= and "
                "batch_size=, or one key."
            )
        payload = args
        if args is None:
            checked_loss(loss_fn, params)
        else:
            checked_loss(loss_fn, params, args)
    if stepper.needs_key and key is None:
        raise ValueError(
            f"{method} draws random numbers at every step: pass key=jax.random.key(0) "
            "(or a batch of keys for an ensemble of independent runs)."
        )
    key = _typed_key(key)

    fresh = EngineState(
        step=jnp.asarray(0, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32),
        params=dynamic,
        stepper_state=stepper.init(dynamic),
        key=key,
    )
    if n_paths is not None:
        fresh = eqx.tree_at(
            lambda s: s.step, fresh, jnp.zeros(n_paths, fresh.step.dtype)
        )
        fresh = eqx.tree_at(
            lambda s: (s.params, s.stepper_state),
            fresh,
            jax.vmap(lambda _: (dynamic, stepper.init(dynamic)))(jnp.arange(n_paths)),
        )
    if resume is not None:
        state = _resume_state(resume, fresh, method, key)
        k0 = int(np.max(np.asarray(state.step))) if not _is_traced(state.step) else None
        if k0 is None:
            raise ValueError("resume= needs a concrete checkpoint, not a traced one.")
        if np.any(np.asarray(state.step) != k0):
            raise ValueError(
                "resume: the paths of this ensemble checkpoint stopped at different "
                "steps; resume each path from its own checkpoint."
            )
    else:
        state, k0 = fresh, 0
    todo = num_steps - k0
    if todo <= 0:
        raise ValueError(
            f"resume: the checkpoint is at step {k0}; num_steps={num_steps} is the step to run "
            f"to and must be larger (e.g. num_steps={k0 + save_every * 100})."
        )
    if todo % save_every:
        raise ValueError(
            f"num_steps={num_steps} must be a multiple of save_every={save_every} "
            + (f"steps after the checkpoint's step {k0} " if k0 else "")
            + "so that the last iterate is saved."
        )
    n_saves = todo // save_every
    obs = as_observables(observables)
    warn_if_large(
        save_bytes(dynamic if save_params else (), n_saves + 1, n_paths or 1),
        "Pass save_params=False (only the final parameters are kept) or a larger "
        "save_every.",
    )
    problem = _Problem(
        loss_fn=loss_fn,
        takes_data=minibatch or args is not None,
        static=static,
        stepper=stepper,
        observables=obs,
        batching=batching,
        n_saves=n_saves,
        save_every=save_every,
        save_params=save_params,
        save_grad_norm=save_grad_norm,
        progress=progress,
    )
    threshold = jnp.asarray(divergence_threshold)
    traced = _is_traced((dynamic, stepper, payload, threshold, state))

    before = _NUM_TRACES[0]
    tic = time.perf_counter()
    from ._misc import _compile_seconds

    c0 = _compile_seconds[0]
    if progress and not traced:
        from tqdm.auto import tqdm

        _BAR[0] = tqdm(total=todo, desc=method, unit="step")
    try:
        (final, status, bad), saved = _scan_run(problem, state, payload, threshold)
        if not traced:
            jax.block_until_ready((final, saved))
    finally:
        if _BAR[0] is not None:
            _BAR[0].close()
            _BAR[0] = None
    wall = time.perf_counter() - tic
    compile_time = _compile_seconds[0] - c0
    traced = traced or _is_traced(final)

    tau = stepper.time_per_step()
    ks = k0 + save_every * jnp.arange(n_saves + 1)
    ts = ks * tau
    p_saved, loss_saved, obs_saved = saved
    paths = 1 if n_paths is None else n_paths
    info = {"method": method, "num_paths": paths, "steps": int(num_steps)}
    if not traced:
        info["time_per_step"] = float(tau)
    counts = {
        # the steps taken, and the gradient of a step that was stopped
        "num_gradient_evals": jnp.sum(final.step - k0 + (status != 0)),
        "num_save_evals": jnp.asarray(
            (n_saves + 1 if minibatch else 1) * paths, jnp.int32
        ),
    }

    n_valid = n_saves + 1

    def build(cut=None):
        c = (lambda x: x) if cut is None else cut
        return Trajectory(
            ts=ts if cut is None else ts[:n_valid],
            params=None if not save_params else eqx.combine(c(p_saved), static),
            loss=c(loss_saved),
            observables=c(obs_saved),
            final_params=eqx.combine(final.params, static),
            stats=info,
            state=final,
            result=_result_item(status),
            counts=counts,
        )

    if traced:
        traj = build()
        if throw:
            traj = eqx.tree_at(
                lambda t: t.final_params,
                traj,
                eqx.error_if(
                    traj.final_params,
                    jnp.any(status != 0),
                    f"{method}: the run stopped early: the loss or the parameters "
                    "became non-finite, or the parameters exceeded "
                    "divergence_threshold. Call with throw=False and read "
                    "trajectory.result and trajectory.state.step to see where.",
                ),
            )
        return traj

    info["compile_time"] = compile_time
    info["run_time"] = max(wall - compile_time, 0.0)
    info["num_compilations"] = _NUM_TRACES[0] - before
    status_np, bad_np = (
        np.atleast_1d(np.asarray(status)),
        np.atleast_1d(np.asarray(bad)),
    )
    if not np.any(status_np):
        return build()
    # the first bad step over all paths, and the saves before it
    worst = int(np.argmin(np.where(status_np != 0, bad_np, np.iinfo(np.int64).max)))
    code, k_bad = int(status_np[worst]), int(bad_np[worst])
    loss_case = code == RESULTS.nonfinite_loss._value
    last_ok = k_bad if loss_case else k_bad - 1
    n_valid = (last_ok - k0) // save_every + 1
    if n_paths is None:
        cut = lambda x: jtu.tree_map(lambda a: a[:n_valid], x)
    else:
        cut = lambda x: jtu.tree_map(lambda a: a[:, :n_valid], x)
    traj = build(cut)
    if not throw:
        return traj
    tau_f = float(tau)
    n_bad = int(np.sum(status_np != 0))
    where = f" (first of {n_bad} of the {n_paths} paths)" if n_paths is not None else ""
    if loss_case:
        at = (
            "at the initial parameters (step 0, t = 0)"
            if k_bad == 0
            else f"at step {k_bad} (t = {k_bad * tau_f:.6g})"
        )
        msg = (
            f"{method}: the loss became non-finite (NaN/inf) {at}{where}, although "
            f"the parameters stayed finite. {UNDEFINED_LOSS}."
        )
    else:
        what = (
            "became non-finite (NaN/inf)"
            if code == RESULTS.nonfinite_params._value
            else f"exceeded divergence_threshold={float(divergence_threshold):g} in "
            "magnitude"
        )
        msg = (
            f"{method}: the parameters {what} at step {k_bad} (t = "
            f"{k_bad * tau_f:.6g}){where}; the last finite iterate is step "
            f"{k_bad - 1} (t = {(k_bad - 1) * tau_f:.6g}). The learning rate is "
            "probably beyond the stability limit 2/λ_max, or the loss or its gradient "
            "overflows."
        )
    raise DivergenceError(
        msg + " The trajectory up to the last good iterate is attached as "
        "error.trajectory (error.step, error.t: the first bad step and its time).",
        step=k_bad,
        t=k_bad * tau_f,
        result=_result_item(jnp.asarray(code)),
        trajectory=traj,
    )


def _resume_state(resume: Any, fresh: EngineState, method: str, key: Any) -> Any:
    saved = resume.state if isinstance(resume, Trajectory) else resume
    if saved is None:
        raise ValueError(
            "resume: this trajectory has no final state (it was made by a dynamics "
            "that cannot be resumed, or by an older version of dynlearn)."
        )
    check_state_kind(saved, EngineState, method, "Resume a discrete training run.")
    if isinstance(saved, SavedState) and isinstance(resume, Trajectory):
        wrote = resume.info.get("method")
        if wrote is not None and wrote != method:
            raise ValueError(
                f"resume: this checkpoint was written by {wrote}, but this run is "
                f"{method}; resume with the stepper that wrote it."
            )
    state = restore_state(saved, fresh, method)
    if key is not None and fresh.key is not None:
        same = np.array_equal(
            np.asarray(jr.key_data(state.key)), np.asarray(jr.key_data(fresh.key))
        )
        if not same:
            raise ValueError(
                "resume: key differs from the key of the run being resumed; pass the "
                "same key (or key=None to use the checkpoint's)."
            )
    return state


def _saved_key(resume: Any) -> Any:
    """The PRNG key stored in a checkpoint's state."""
    state = getattr(resume, "state", None)
    if state is None:
        raise ValueError("resume: this trajectory holds no final state to resume.")
    if isinstance(state, SavedState):
        raw = state.leaves.get(".key")
        if raw is None:
            raise ValueError("resume: this checkpoint holds no PRNG key.")
        return jr.wrap_key_data(raw)
    return state.key


def _check_data(data: Any) -> int:
    leaves = jtu.tree_leaves(data)
    if not leaves:
        raise ValueError("data is empty: pass a pytree of arrays, e.g. (X, Y).")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            "Every leaf of `data` must have the same leading (example) axis; got "
            f"leading sizes {sorted(sizes)}."
        )
    n = sizes.pop()
    if n == 0:
        raise ValueError(
            "data has no examples (its leading axis has size N = 0): the loss, a mean "
            "over examples, would be NaN. Pass at least one example."
        )
    return n


def _check_batch_size(batch_size: Any, n: int, replacement: Any) -> int:
    check_bool("replacement", replacement)
    if (
        isinstance(batch_size, bool | np.bool_)
        or not isinstance(batch_size, int | np.integer)
        or not 1 <= batch_size <= n
    ):
        raise ValueError(
            f"batch_size must be an integer in [1, N] = [1, {n}] (N is the number of "
            f"examples in data), got {batch_size!r}."
        )
    return int(batch_size)
