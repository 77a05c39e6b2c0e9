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

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._engine import AbstractStepper, iterate
from .._observables import AbstractObservable
from .._trajectory import Trajectory
from ._echo import check_eta
from ._hamiltonian import as_state, check_time_reversal, is_traced
from ._integrators import evolve
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


def _echo_pass(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    x: jax.Array,
    y: jax.Array,
    eta: Any,
    cost: Cost,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One sample's echo, as [`dynlearn.echo.echo`][] computes it (evolve, kick,
    time-reverse, evolve, time-reverse; no time-reversal check): the learning field's
    displacement `(Δθ, Δp_θ)` and the sample's loss L(θ), read off the forward
    evolution that the echo makes anyway."""
    h = machine.hamiltonian
    state = as_state(h, machine.initial_state(x, theta))

    def run(s):
        return evolve(
            h, s, machine.t1, machine.num_steps, integrator=machine.integrator
        )

    def sample_cost(s):
        return cost(machine.output(s), y)

    forward = run(state)
    kicked = h.kick(forward, sample_cost, eta)
    q, p = machine.learning_field(h.time_reverse(run(h.time_reverse(kicked))))
    return q - theta, p, sample_cost(forward)


def _mean_echo(machine, theta, x, y, eta, cost):
    dq, dp, loss = jax.vmap(lambda a, b: _echo_pass(machine, theta, a, b, eta, cost))(
        x, y
    )
    return jnp.mean(dq, axis=0), jnp.mean(dp, axis=0), jnp.mean(loss)


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
    dq, dp, _ = _mean_echo(machine, theta, x, y, eta, cost)
    return dq, dp


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


def _sub_steps(variant: str) -> int:
    return 2 if variant == "averaged" else 1


class HEBStepper(AbstractStepper):
    """One HEB iteration ([`dynlearn.echo.heb_step`][]) as a dynamics for
    [`dynlearn.iterate`][]: the minibatch `(x, y)` drawn by the engine is echoed,
    and the decay step moves θ. Only forward evolutions: the loss Φ(θ_k) on the
    batch is read off the first echo's forward pass, and the recorded direction norm
    is that of the gradient estimate $-Δθ/(\\text{lr}·\\text{sub-steps})$.

    `eta` and `m` are traced (a new value reuses the compiled program); one step is
    the flow time `kick_scale`·η/m per sub-step.
    """

    machine: AbstractEchoMachine
    eta: Any
    m: Any
    variant: str = eqx.field(static=True, default="averaged")
    cost: Cost = eqx.field(static=True, default=squared_error)
    max_kick: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_variant(self.variant)

    def init(self, params):
        return None

    def update(self, params, state, batch, loss, *, key):
        x, y = batch
        dq, dp, value = _mean_echo(self.machine, params, x, y, self.eta, self.cost)
        new = decay(params, dq, dp, self.m, self.max_kick)
        if self.variant == "averaged":
            dq, dp, _ = _mean_echo(self.machine, new, x, y, -self.eta, self.cost)
            new = decay(new, dq, dp, -self.m, self.max_kick)
        gnorm = jnp.linalg.norm(new - params) / self.time_per_step()
        return new, state, value, gnorm

    def time_per_step(self):
        lr = learning_rate(self.machine, self.eta, self.m)
        return lr * _sub_steps(self.variant)

    def describe(self):
        return f"heb-{self.variant}"


class EchoSGDStepper(AbstractStepper):
    """The exact-gradient counterpart of `dynlearn.echo.HEBStepper`
    ([`dynlearn.echo.sgd_step`][]): θ ← θ − lr∇L on the engine's minibatch
    (`jax.grad` through the stored trajectory), twice for `"averaged"`, with the
    same soft kick cutoff. `lr` is traced."""

    lr: Any
    variant: str = eqx.field(static=True, default="averaged")
    max_kick: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_variant(self.variant)

    def init(self, params):
        return None

    def update(self, params, state, batch, loss, *, key):
        value, grad = jax.value_and_grad(loss)(params)
        new = params + _soft_clip(-self.lr * grad, self.max_kick)
        if self.variant == "averaged":
            new = new + _soft_clip(-self.lr * jax.grad(loss)(new), self.max_kick)
        return new, state, value, jnp.linalg.norm(grad)

    def time_per_step(self):
        return self.lr * _sub_steps(self.variant)

    def describe(self):
        return f"sgd-{self.variant}"


class _BatchLoss:
    """Φ(θ; batch) = [`dynlearn.echo.batch_loss`][] on a minibatch `(x, y)`, as the
    engine's (static) loss function. Two of them are equal, with equal hashes, when
    they hold the same machine object and cost, so repeated runs on one machine (new
    data, new η or m) reuse the compiled program."""

    __slots__ = ("cost", "machine")

    def __init__(self, machine: AbstractEchoMachine, cost: Cost):
        self.machine, self.cost = machine, cost

    def __call__(self, theta, batch):
        return batch_loss(self.machine, theta, batch[0], batch[1], self.cost)

    def __eq__(self, other):
        return (
            type(other) is _BatchLoss
            and other.machine is self.machine
            and other.cost == self.cost
        )

    def __hash__(self):
        return hash((id(self.machine), self.cost))


class _Outputs(AbstractObservable):
    """The machine's predictions on every input of the data set."""

    machine: AbstractEchoMachine
    xs: jax.Array

    def __call__(self, loss_fn, params):
        del loss_fn
        return jax.vmap(self.machine.predict, in_axes=(0, None))(self.xs, params)


def train(
    machine: AbstractEchoMachine,
    theta: jax.Array,
    xs: jax.Array,
    ys: jax.Array,
    *,
    num_steps: int,
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
    """Train θ on the data set (`xs`, `ys`, leading sample axis) for `num_steps`
    iterations, each on a minibatch drawn with replacement (`batch_size=1`: the
    authors' per-sample training).

    `method="heb"` runs `dynlearn.echo.HEBStepper` (the steps of
    [`heb_step`][dynlearn.echo.heb_step]); `method="sgd"` runs
    `dynlearn.echo.EchoSGDStepper` (those of [`sgd_step`][dynlearn.echo.sgd_step])
    with the same learning rate (`kick_scale`·η/m) and the same variant. Both run on
    [`dynlearn.iterate`][], which draws the minibatch of step k from `key` and k
    alone ([`dynlearn.minibatch_indices`][]), so the two methods with the same `key`
    see the same sample sequence and their trajectories can be compared point by
    point.

    **Returns** a [`dynlearn.Trajectory`][]: `ts` = gradient-flow time (iteration ×
    learning rate × sub-steps), `params` θ at every `save_every`-th iteration (and the
    start), `loss` = mean loss over the whole data set, `observables["outputs"]` = the
    predictions on all samples (and `"grad_norm"`, the norm of the exact gradient of
    that loss, from `jax.grad`), `stats` with the run's settings and timings.
    """
    _check_variant(variant)
    if method not in ("heb", "sgd"):
        raise ValueError(f"Unknown method {method!r}; use 'heb' or 'sgd'.")
    for name, v in (
        ("num_steps", num_steps),
        ("batch_size", batch_size),
        ("save_every", save_every),
    ):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
    if not (np.isfinite(eta) and eta > 0 and np.isfinite(m) and m > 0):
        raise ValueError(
            f"`eta` (error-kick strength) and `m` (effective mass) must be positive "
            f"and finite, got eta={eta!r}, m={m!r}."
        )
    if num_steps % save_every:
        raise ValueError(
            f"`num_steps` ({num_steps}) must be a multiple of `save_every` ({save_every})."
        )
    n = xs.shape[0]
    if ys.shape[0] != n:
        raise ValueError(f"xs and ys have {n} and {ys.shape[0]} samples.")
    if key is None:
        raise TypeError(
            "echo.train draws a minibatch at every iteration: pass a PRNG key, "
            "key=jax.random.key(0) (the same key gives HEB and SGD the same samples)."
        )
    if not is_traced(theta):
        check_time_reversal(machine.hamiltonian, machine.initial_state(xs[0], theta))
    lr = learning_rate(machine, eta, m)
    if method == "heb":
        stepper = HEBStepper(
            machine,
            jnp.asarray(float(eta)),
            jnp.asarray(float(m)),
            variant=variant,
            cost=cost,
            max_kick=max_kick,
        )
    else:
        stepper = EchoSGDStepper(
            jnp.asarray(float(lr)), variant=variant, max_kick=max_kick
        )
    traj = iterate(
        _BatchLoss(machine, cost),
        theta,
        stepper,
        num_steps,
        data=(xs, ys),
        batch_size=batch_size,
        replacement=True,
        key=key,
        save_every=save_every,
        observables={"outputs": _Outputs(machine, xs)},
    )
    sub = _sub_steps(variant)
    stats = traj.info | {
        "eta": eta,
        "m": m,
        "learning_rate": lr,
        "batch_size": batch_size,
        "forward_evolutions_per_step": (2 * sub if method == "heb" else sub),
    }
    return Trajectory(
        ts=traj.ts,
        params=traj.params,
        loss=traj.loss,
        observables=traj.observables,
        final_params=traj.final_params,
        stats=stats,
        state=traj.state,
        result=traj.result,
        counts=traj.counts,
    )
