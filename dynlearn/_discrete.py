"""Discrete optimisers (GD, heavy ball, any optax transform, minibatch SGD) under
`jax.lax.scan`, with time stamps on the same axis as the flows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optax

from ._custom_types import LossFn, Params
from ._engine import (
    AbstractStepper,
    GradientDescent,
    Optax,
    _check_batch_size as _check_batch_size,
    _check_data as _check_data,
    _check_rate,
    iterate,
    minibatch_indices as minibatch_indices,
    num_paths as num_paths,
)
from ._observables import AbstractObservable
from ._trajectory import Trajectory


def _stepper(lr, optimizer, time_per_step=None) -> AbstractStepper:
    """The step rule of `gradient_descent` and `sgd`: plain GD at `lr`, or the optax
    `optimizer`; its time per step is `lr` unless `time_per_step` is given."""
    if optimizer is None:
        if time_per_step is None:
            return GradientDescent(lr=lr)
        return Optax(optax.sgd(lr), dt=time_per_step)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer)}."
        )
    return Optax(optimizer, dt=lr if time_per_step is None else time_per_step)


def gradient_descent(
    loss_fn: LossFn,
    params: Params,
    lr: float,
    num_steps: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    time_per_step: float | None = None,
    save_every: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    args: Any = None,
    resume: Trajectory | None = None,
    divergence_threshold: float = 1e8,
    throw: bool = True,
    progress: bool | None = None,
) -> Trajectory:
    """Full-batch gradient descent $θ_{k+1} = θ_k - η∇Φ(θ_k)$, or any optax optimiser.

    Runs `num_steps` steps under `jax.lax.scan` and records the iterates at
    $t_k = k·$`time_per_step` (default: `lr`), which puts GD on the time axis of
    [`dynlearn.gradient_flow`][]: GD is the forward-Euler discretisation of gradient
    flow with step `lr`.

    **Arguments:**

    - `loss_fn`, `params`: as for [`dynlearn.gradient_flow`][].
    - `lr`: learning rate η > 0 (also the time per step unless `time_per_step` is set).
    - `num_steps`: number of steps.
    - `optimizer`: any `optax.GradientTransformation`; default `optax.sgd(lr)`. For
      heavy-ball momentum use [`dynlearn.HeavyBall`][], which pairs
      `optax.sgd(lr, momentum=β)` with its ODE and time map.
    - `time_per_step`: flow time per step (momentum: √η; see `HeavyBall`).
    - `save_every`: record every `save_every` steps (`num_steps` must be a multiple).
    - `observables`, `save_params`: as for [`dynlearn.gradient_flow`][].
    - `args`: the data of the loss, passed as `loss_fn(params, args)`; new data of
      the same shapes reuse the compiled program (a closure over the data would be a
      new program).
    - `resume`, `divergence_threshold`, `throw`, `progress`: as
      [`dynlearn.iterate`][]; `num_steps` is then the step to run to.

    Runs on [`dynlearn.iterate`][]: a new learning rate reuses the compiled program,
    and the call works under `jax.jit`, `jax.vmap` (e.g. over learning rates) and
    `jax.grad`.

    **Raises:** [`dynlearn.DivergenceError`][] (a `NonFiniteError`) at the first
    step whose loss is non-finite or whose iterate is non-finite or exceeds
    `divergence_threshold`, with `.step`, `.t` and the partial trajectory.
    """
    lr = _check_rate("lr", lr)
    if time_per_step is not None:
        time_per_step = _check_rate("time_per_step", time_per_step)
    return iterate(
        loss_fn,
        params,
        _stepper(lr, optimizer, time_per_step),
        num_steps,
        args=args,
        save_every=save_every,
        observables=observables,
        save_params=save_params,
        resume=resume,
        divergence_threshold=divergence_threshold,
        throw=throw,
        progress=progress,
    )


def sgd(
    loss_fn: Callable[[Params, Any], Any],
    params: Params,
    data: Any,
    lr: float,
    num_steps: int,
    *,
    batch_size: int,
    key: Any = None,
    replacement: bool = True,
    optimizer: optax.GradientTransformation | None = None,
    save_every: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    resume: Trajectory | None = None,
    divergence_threshold: float = 1e8,
    throw: bool = True,
    progress: bool | None = None,
) -> Trajectory:
    """Minibatch SGD $θ_{k+1} = θ_k - η∇Φ_{B_k}(θ_k)$ at times $t_k = kη$.

    **Arguments:**

    - `loss_fn(params, batch)`: the loss on a batch; `batch` has the structure of
      `data` with a leading axis of size `batch_size`. The full-batch loss
      `loss_fn(params, data)` is what the trajectory records.
    - `data`: a pytree of arrays with a common leading example axis of size N.
    - `lr`, `num_steps`: learning rate and number of steps.
    - `batch_size`: B ≤ N.
    - `key`: PRNG key for the minibatch draws, or a batch of M keys
      (`jax.random.split(key, M)`) to run an ensemble of M independent SGD runs at
      once (vmapped); `loss`, `params` and `observables` then carry a leading sample
      axis of size M in front of the time axis.
    - `replacement`: draw each batch uniformly with replacement (default; the setting
      of the stochastic modified equation with Σ/B), or shuffle once per epoch.
    - others as [`dynlearn.gradient_descent`][]. With `resume=`, `key` may be
      omitted (the checkpoint's key continues its draws).
    """
    lr = _check_rate("lr", lr)
    if key is None and resume is None:
        raise TypeError(
            "sgd needs a PRNG key for the minibatch draws: key=jax.random.key(0), or "
            "jax.random.split(key, M) for an ensemble of M runs."
        )
    return iterate(
        loss_fn,
        params,
        _stepper(lr, optimizer),
        num_steps,
        data=data,
        batch_size=batch_size,
        replacement=replacement,
        key=key,
        save_every=save_every,
        observables=observables,
        save_params=save_params,
        resume=resume,
        divergence_threshold=divergence_threshold,
        throw=throw,
        progress=progress,
        method="sgd",
    )
