"""Hamiltonian echo backpropagation (HEB) training, beside exact-gradient SGD.

One HEB step (López-Pastor & Marquardt, PRX 13, 031020 (2023); authors' code
`cavity_array/HEB.py`): prepare Ψ(−T) = x, Θ(−T) = θ; echo with error kick η; the
learning field returns with momentum $Δp_θ = -cη∂L/∂θ$ and displacement
$Δθ = cη∂L/∂p_θ$ (c = `kick_scale`: 1 canonical, ½ complex form); a decay step with
effective mass m converts momentum into displacement and damps it:

$$θ ← θ + Δθ + Δp_θ/m = θ - \\frac{cη}{m}∂_θL + cη∂_{p_θ}L.$$

The second term is a bias of relative size $m|∂_{p_θ}L|/|∂_θL|$. The *averaged* variant
(echo +η, decay m, echo −η, decay −m) cancels it and equals two SGD sub-steps of
learning rate cη/m.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._discrete import minibatch_indices
from .._trajectory import Trajectory
from ._echo import check_eta, echo
from ._hamiltonian import check_time_reversal, is_traced
from ._machines import AbstractEchoMachine, squared_error


Cost = Callable[[jax.Array, jax.Array], Any]
_VARIANTS = ("simple", "averaged")


def _check_variant(variant: str) -> None:
    if variant not in _VARIANTS:
        raise ValueError(f"Unknown HEB variant {variant!r}; use one of {_VARIANTS}.")


def _soft_clip(kick: jax.Array, max_kick: float | None) -> jax.Array:
    if max_kick is None:
        return kick
    return kick / jnp.sqrt(1.0 + (kick / max_kick) ** 2)


def learning_rate(machine: AbstractEchoMachine, eta: float, m: float) -> float:
    """The SGD learning rate one HEB decay step implements: `kick_scale`·η/m."""
    return machine.hamiltonian.kick_scale * eta / m


def echo_displacement(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    eta: Any,
    cost: Cost = squared_error,
) -> tuple[jax.Array, jax.Array]:
    """Echo a batch (`x`, `y` with a leading sample axis; `vmap`-ed) and **return**
    the learning field's mean displacement `(Δθ, Δp_θ)`. `eta` is finite and nonzero
    (negative: the reversed echo of averaged HEB)."""
    check_eta(eta, signed=True)

    def one(xi, yi):
        s0 = machine.initial_state(xi, theta)
        se = echo(
            machine.hamiltonian,
            s0,
            lambda s: cost(machine.output(s), yi),
            eta,
            machine.t1,
            machine.num_steps,
            integrator=machine.integrator,
            check=False,
        )
        q, p = machine.learning_field(se)
        return q - theta, p

    dq, dp = jax.vmap(one)(x, y)
    return jnp.mean(dq, axis=0), jnp.mean(dp, axis=0)


def decay(
    theta: jax.Array,
    dq: jax.Array,
    dp: jax.Array,
    m: Any,
    max_kick: float | None = None,
) -> jax.Array:
    """The decay (friction) step on the learning field: θ ← θ + Δθ + Δp/m, p ← 0.
    `max_kick` applies the authors' soft cutoff $k/\\sqrt{1 + k^2/k_{max}^2}$ to
    k = Δp/m (their code uses 0.1)."""
    return theta + dq + _soft_clip(dp / m, max_kick)


def heb_step(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    *,
    eta: float,
    m: float,
    variant: Literal["simple", "averaged"] = "averaged",
    cost: Cost = squared_error,
    max_kick: float | None = None,
) -> jax.Array:
    """One HEB iteration on a batch (`x`, `y` with a leading sample axis).

    `"simple"`: echo(+η), decay(m). `"averaged"`: echo(+η), decay(m), echo(−η),
    decay(−m) (the authors' `HEB_step_av`). **Returns** the new θ. Only forward
    evolutions are used: no trajectory is stored and no derivative of the dynamics
    is taken (the cost's derivative at the output is the injected error signal).
    `eta` and `m` must be positive and finite.
    """
    _check_variant(variant)
    check_eta(eta, signed=False)
    check_eta(m, signed=False, name="m", what="the effective mass of the decay step")
    dq, dp = echo_displacement(machine, theta, x, y, eta, cost)
    theta = decay(theta, dq, dp, m, max_kick)
    if variant == "averaged":
        dq, dp = echo_displacement(machine, theta, x, y, -eta, cost)
        theta = decay(theta, dq, dp, -m, max_kick)
    return theta


def batch_loss(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    cost: Cost = squared_error,
) -> jax.Array:
    """The mean discretised loss over a batch."""
    return jnp.mean(jax.vmap(lambda a, b: machine.loss(theta, a, b, cost))(x, y))


def sgd_step(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    *,
    lr: float,
    variant: Literal["simple", "averaged"] = "averaged",
    cost: Cost = squared_error,
    max_kick: float | None = None,
) -> jax.Array:
    """The exact-gradient counterpart of [`heb_step`][dynlearn.echo.heb_step]:
    θ ← θ − lr∇L (`jax.grad` through the stored trajectory), twice for
    `"averaged"` (second sub-step with the sign of the cutoff mirrored, as in HEB)."""
    _check_variant(variant)
    grad = jax.grad(batch_loss, argnums=1)
    theta = theta + _soft_clip(-lr * grad(machine, theta, x, y, cost), max_kick)
    if variant == "averaged":
        theta = theta + _soft_clip(-lr * grad(machine, theta, x, y, cost), max_kick)
    return theta


def decay_bias(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    m: float,
    cost: Cost = squared_error,
) -> jax.Array:
    """The predicted relative bias of simple HEB, $m|∂L/∂p_θ| / |∂L/∂θ|$, for one
    sample (`jax.grad` of the loss w.r.t. the learning field's initial position and
    momentum)."""
    zero = jnp.zeros_like(theta)
    gq, gp = jax.grad(machine.loss, argnums=(0, 4))(theta, x, y, cost, zero)
    return m * jnp.linalg.norm(gp) / jnp.linalg.norm(gq)


def train(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    xs: jax.Array,
    ys: jax.Array,
    *,
    steps: int,
    eta: float,
    m: float,
    key: Any,
    method: Literal["heb", "sgd"] = "heb",
    variant: Literal["simple", "averaged"] = "averaged",
    batch_size: int = 1,
    cost: Cost = squared_error,
    max_kick: float | None = None,
    save_every: int = 1,
) -> Trajectory:
    """Train θ on the data set (`xs`, `ys`, leading sample axis) for `steps`
    iterations, each on a minibatch drawn with replacement (`batch_size=1`: the
    authors' per-sample training).

    `method="heb"` uses [`heb_step`][dynlearn.echo.heb_step]; `method="sgd"` uses
    [`sgd_step`][dynlearn.echo.sgd_step] with the same learning rate
    (`kick_scale`·η/m), the same variant and the same sample sequence (same `key`), so
    the two trajectories can be compared point by point.

    **Returns** a [`dynlearn.Trajectory`][]: `ts` = gradient-flow time (iteration ×
    learning rate × sub-steps), `params` θ at every `save_every`-th iteration (and the
    start), `loss` = mean loss over the whole data set, `observables["outputs"]` = the
    predictions on all samples, `stats` with the run's settings and timings.
    """
    _check_variant(variant)
    if method not in ("heb", "sgd"):
        raise ValueError(f"Unknown method {method!r}; use 'heb' or 'sgd'.")
    for name, v in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("save_every", save_every),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
    if not (np.isfinite(eta) and eta > 0 and np.isfinite(m) and m > 0):
        raise ValueError(
            f"`eta` (error-kick strength) and `m` (effective mass) must be positive "
            f"and finite, got eta={eta!r}, m={m!r}."
        )
    if steps % save_every:
        raise ValueError(
            f"`steps` ({steps}) must be a multiple of `save_every` ({save_every})."
        )
    n = xs.shape[0]
    if ys.shape[0] != n:
        raise ValueError(f"xs and ys have {n} and {ys.shape[0]} samples.")
    if not is_traced(theta):
        check_time_reversal(machine.hamiltonian, machine.initial_state(xs[0], theta))
    lr = learning_rate(machine, eta, m)

    def update(th, k):
        idx = minibatch_indices(key, k, n, batch_size, True)
        xb, yb = xs[idx], ys[idx]
        if method == "heb":
            th = heb_step(
                machine,
                th,
                xb,
                yb,
                eta=eta,
                m=m,
                variant=variant,
                cost=cost,
                max_kick=max_kick,
            )
        else:
            th = sgd_step(
                machine,
                th,
                xb,
                yb,
                lr=lr,
                variant=variant,
                cost=cost,
                max_kick=max_kick,
            )
        return th, None

    def record(th):
        preds = jax.vmap(machine.predict, in_axes=(0, None))(xs, th)
        loss = jnp.mean(jax.vmap(cost)(preds, ys))
        return th, loss, preds

    def chunk(th, c):
        th, _ = jax.lax.scan(update, th, c * save_every + jnp.arange(save_every))
        return th, record(th)

    @jax.jit
    def run(th):
        first = record(th)
        th, rest = jax.lax.scan(chunk, th, jnp.arange(steps // save_every))
        cat = jax.tree_util.tree_map(
            lambda a, b: jnp.concatenate([a[None], b]), first, rest
        )
        return th, cat

    t0 = time.perf_counter()
    compiled = run.lower(theta).compile()
    t1 = time.perf_counter()
    final, (thetas, losses, preds) = compiled(theta)
    jax.block_until_ready(final)
    t2 = time.perf_counter()
    sub = 2 if variant == "averaged" else 1
    its = jnp.arange(steps // save_every + 1) * save_every
    stats = {
        "method": f"{method}-{variant}",
        "eta": eta,
        "m": m,
        "learning_rate": lr,
        "steps": steps,
        "batch_size": batch_size,
        "forward_evolutions_per_step": (2 * sub if method == "heb" else sub),
        "compile_time": t1 - t0,
        "run_time": t2 - t1,
    }
    return Trajectory(
        ts=its * lr * sub,
        params=thetas,
        loss=losses,
        observables={"outputs": preds},
        final_params=final,
        stats=stats,
    )
