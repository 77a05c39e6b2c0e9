"""Discrete optimisers (GD, heavy ball, any optax transform, minibatch SGD) under
`jax.lax.scan`, with time stamps on the same axis as the flows."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax

from ._custom_types import LossFn, Params
from ._misc import (
    NonFiniteError,
    check_bool,
    check_integer,
    check_positive,
    checked_loss,
    first_nonfinite_save,
    raise_nonfinite_loss,
    split_params,
    tree_all_finite,
)
from ._observables import AbstractObservable, as_observables, evaluate_observables
from ._trajectory import Trajectory


def _check_steps(steps: Any, save_every: Any) -> None:
    check_integer("steps", steps)
    check_integer("save_every", save_every)
    if steps % save_every != 0:
        raise ValueError(
            f"steps={steps} must be a multiple of save_every={save_every}, so that the "
            "last iterate is saved."
        )


def _run_optimizer(
    grad_fn: Callable[[Any, Any, Any], Any],
    loss_fn: Callable,
    params: Any,
    optimizer: optax.GradientTransformation,
    steps: int,
    time_per_step: float,
    save_every: int,
    observables: Mapping[str, AbstractObservable | Callable] | None,
    save_params: bool,
    key: Any,
    method: str,
) -> Trajectory:
    """Shared driver: θ_{k+1} = θ_k + update(grad_fn(θ_k, k, key_k)), in a nested scan
    (outer: save points, inner: `save_every` steps), stopping the bookkeeping at the
    first non-finite iterate."""
    _check_steps(steps, save_every)
    dynamic, static = split_params(params)
    obs = as_observables(observables)
    n_saves = steps // save_every

    def one_step(carry, k, key):
        dyn, opt_state, ok, first_bad = carry
        g = grad_fn(dyn, k, key)
        updates, opt_state_new = optimizer.update(g, opt_state, dyn)
        dyn_new = optax.apply_updates(dyn, updates)
        finite = tree_all_finite(dyn_new)
        # freeze at the last finite iterate so that the failure time is exact
        keep = ok & finite
        dyn = jtu.tree_map(lambda a, b: jnp.where(keep, a, b), dyn_new, dyn)
        opt_state = jtu.tree_map(
            lambda a, b: jnp.where(keep, a, b), opt_state_new, opt_state
        )
        # θ_{k+1} is the first non-finite iterate: remember k + 1, exactly, however
        # sparse the saves are
        first_bad = jnp.where(ok & ~finite, k + 1, first_bad)
        return (dyn, opt_state, keep, first_bad), None

    def readout(dyn):
        full = eqx.combine(dyn, static)
        loss, values = evaluate_observables(loss_fn, full, obs)
        return (dyn if save_params else None), loss, values

    def chunk_with(key):
        def chunk(carry, i):
            ks = i * save_every + jnp.arange(save_every)
            carry, _ = jax.lax.scan(lambda c, k: one_step(c, k, key), carry, ks)
            return carry, (readout(carry[0]), carry[2])

        return chunk

    def run(dyn0, key):
        opt_state = optimizer.init(dyn0)
        carry = (dyn0, opt_state, jnp.array(True), jnp.array(-1))
        first = readout(dyn0)
        carry, (saved, oks) = jax.lax.scan(chunk_with(key), carry, jnp.arange(n_saves))
        saved = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, saved)
        return carry[0], saved, oks, carry[3]

    n_paths = num_paths(key)
    if n_paths is not None:  # an ensemble: one path per key, vmapped
        run = jax.vmap(run, in_axes=(None, 0))
    tic = time.perf_counter()
    compiled = jax.jit(run).lower(dynamic, key).compile()
    compile_time = time.perf_counter() - tic
    tic = time.perf_counter()
    final_dyn, saved, oks, first_bad = jax.block_until_ready(compiled(dynamic, key))
    run_time = time.perf_counter() - tic
    first_bad = np.atleast_1d(np.asarray(first_bad))
    n_bad_paths = int(np.sum(first_bad >= 0))
    first_bad = int(first_bad[first_bad >= 0].min()) if n_bad_paths else None
    if n_paths is not None:
        oks = np.all(np.asarray(oks), axis=0)

    ts = np.arange(n_saves + 1) * save_every * time_per_step
    p_saved, loss_saved, obs_saved = saved
    oks = np.asarray(oks)
    n_valid = n_saves + 1 if oks.all() else int(np.argmin(oks)) + 1
    if n_paths is None:
        cut = lambda x: jtu.tree_map(lambda a: a[:n_valid], x)
    else:
        cut = lambda x: jtu.tree_map(lambda a: a[:, :n_valid], x)
    stats = {
        "method": method,
        "num_paths": 1 if n_paths is None else n_paths,
        "num_gradient_evals": int(steps if oks.all() else (n_valid * save_every))
        * (1 if n_paths is None else n_paths),
        "steps": int(steps),
        "time_per_step": float(time_per_step),
        "compile_time": compile_time,
        "run_time": run_time,
    }
    traj = Trajectory(
        ts=jnp.asarray(ts[:n_valid]),
        params=None if not save_params else eqx.combine(cut(p_saved), static),
        loss=cut(loss_saved),
        observables=cut(obs_saved),
        final_params=eqx.combine(final_dyn, static),
        stats=stats,
    )
    if first_bad is not None:
        paths = (
            f" (first of {n_bad_paths} of the {n_paths} paths)"
            if n_paths is not None
            else ""
        )
        err = NonFiniteError(
            f"{method}: the parameters became non-finite (NaN/inf) at step "
            f"{first_bad} (t = {first_bad * time_per_step:.6g}){paths}; the last "
            f"finite iterate is step {first_bad - 1} (t = "
            f"{(first_bad - 1) * time_per_step:.6g}). The learning rate is probably "
            "beyond the stability limit 2/λ_max, or the loss or its gradient "
            "overflows. The trajectory up to the last finite iterate is attached as "
            "error.trajectory."
        )
        err.trajectory = traj
        raise err
    _check_finite_loss(method, traj, save_every)
    return traj


def _check_finite_loss(method: str, traj: Trajectory, save_every: int) -> None:
    """Raise a NonFiniteError if a recorded loss is NaN/inf while the parameters are
    finite (a loss that is undefined at θ, e.g. the log of a negative number, whose
    gradient may still be finite)."""
    j = first_nonfinite_save(traj.loss)
    if j is None:
        return
    where = (
        "at the initial parameters (step 0, t = 0)"
        if j == 0
        else f"at step {j * save_every} (t = {float(traj.ts[j]):.6g}), the first "
        "recorded non-finite value"
    )
    raise_nonfinite_loss(
        traj, f"{method}: the loss became non-finite (NaN/inf) {where}"
    )


def gradient_descent(
    loss_fn: LossFn,
    params: Params,
    lr: float,
    steps: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    time_per_step: float | None = None,
    save_every: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
) -> Trajectory:
    """Full-batch gradient descent $θ_{k+1} = θ_k - η∇Φ(θ_k)$, or any optax optimiser.

    Runs `steps` steps under `jax.lax.scan` and records the iterates at
    $t_k = k·$`time_per_step` (default: `lr`), which puts GD on the time axis of
    [`dynlearn.gradient_flow`][]: GD is the forward-Euler discretisation of gradient
    flow with step `lr`.

    **Arguments:**

    - `loss_fn`, `params`: as for [`dynlearn.gradient_flow`][].
    - `lr`: learning rate η > 0 (also the time per step unless `time_per_step` is set).
    - `steps`: number of steps.
    - `optimizer`: any `optax.GradientTransformation`; default `optax.sgd(lr)`. For
      heavy-ball momentum use [`dynlearn.HeavyBall`][], which pairs
      `optax.sgd(lr, momentum=β)` with its ODE and time map.
    - `time_per_step`: flow time per step (momentum: √η; see `HeavyBall`).
    - `save_every`: record every `save_every` steps (`steps` must be a multiple).
    - `observables`, `save_params`: as for [`dynlearn.gradient_flow`][].

    **Raises:** `NonFiniteError` if an iterate becomes non-finite, naming the time.
    """
    check_positive("lr", lr)
    if time_per_step is not None:
        check_positive("time_per_step", time_per_step)
    _check_steps(steps, save_every)
    check_bool("save_params", save_params)
    phi = checked_loss(loss_fn, params)
    grad = jax.grad(phi)
    opt = optax.sgd(lr) if optimizer is None else optimizer
    if not isinstance(opt, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(opt)}."
        )
    return _run_optimizer(
        lambda dyn, k, key: grad(dyn),
        loss_fn,
        params,
        opt,
        steps,
        lr if time_per_step is None else time_per_step,
        save_every,
        observables,
        save_params,
        None,
        "gradient_descent" if optimizer is None else "optax",
    )


def num_paths(key: Any) -> int | None:
    """`None` for one PRNG key (or no key), M for a batch of M keys (an ensemble)."""
    if key is None:
        return None
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
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


def minibatch_indices(
    key: Any, k: Any, n: int, batch_size: int, replacement: bool
) -> jax.Array:
    """Indices of the minibatch of step `k`: uniform with replacement, or a fresh
    random permutation per epoch (without replacement, `n` divisible by batch size)."""
    if replacement:
        return jr.randint(jr.fold_in(key, k), (batch_size,), 0, n)
    per_epoch = n // batch_size
    epoch, j = k // per_epoch, k % per_epoch
    perm = jr.permutation(jr.fold_in(key, epoch), n)
    return jax.lax.dynamic_slice(perm, (j * batch_size,), (batch_size,))


def sgd(
    loss_fn: Callable[[Params, Any], Any],
    params: Params,
    data: Any,
    lr: float,
    steps: int,
    *,
    batch_size: int,
    key: Any,
    replacement: bool = True,
    optimizer: optax.GradientTransformation | None = None,
    save_every: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
) -> Trajectory:
    """Minibatch SGD $θ_{k+1} = θ_k - η∇Φ_{B_k}(θ_k)$ at times $t_k = kη$.

    **Arguments:**

    - `loss_fn(params, batch)`: the loss on a batch; `batch` has the structure of
      `data` with a leading axis of size `batch_size`. The full-batch loss
      `loss_fn(params, data)` is what the trajectory records.
    - `data`: a pytree of arrays with a common leading example axis of size N.
    - `lr`, `steps`: learning rate and number of steps.
    - `batch_size`: B ≤ N.
    - `key`: PRNG key for the minibatch draws, or a batch of M keys
      (`jax.random.split(key, M)`) to run an ensemble of M independent SGD runs at
      once (vmapped); `loss`, `params` and `observables` then carry a leading sample
      axis of size M in front of the time axis.
    - `replacement`: draw each batch uniformly with replacement (default; the setting
      of the stochastic modified equation with Σ/B), or shuffle once per epoch.
    - others as [`dynlearn.gradient_descent`][].
    """
    check_positive("lr", lr)
    _check_steps(steps, save_every)
    check_bool("save_params", save_params)
    n = _check_data(data)
    batch_size = _check_batch_size(batch_size, n, replacement)
    if not replacement and n % batch_size:
        raise ValueError(
            f"Sampling without replacement needs N={n} divisible by batch_size "
            f"(got batch_size={batch_size}): choose a divisor of N or "
            "replacement=True."
        )
    if key is None:
        raise TypeError(
            "sgd needs a PRNG key for the minibatch draws: key=jax.random.key(0), or "
            "jax.random.split(key, M) for an ensemble of M runs."
        )
    num_paths(key)  # checks the key
    full_loss = lambda p: loss_fn(p, data)
    checked_loss(full_loss, params)
    _, static = eqx.partition(params, eqx.is_inexact_array)

    def batch_grad(dyn, k, key):
        idx = minibatch_indices(key, k, n, batch_size, replacement)
        batch = jtu.tree_map(lambda x: x[idx], data)
        return jax.grad(lambda d: loss_fn(eqx.combine(d, static), batch))(dyn)

    opt = optax.sgd(lr) if optimizer is None else optimizer
    if not isinstance(opt, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(opt)}."
        )
    return _run_optimizer(
        batch_grad,
        full_loss,
        params,
        opt,
        steps,
        lr,
        save_every,
        observables,
        save_params,
        key,
        "sgd",
    )
