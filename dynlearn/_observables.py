"""Observables of a training trajectory: loss, gradient norm, sharpness, distances.

Observables are pure functions of the parameters (given the loss), so the same object
serves as a `diffrax.SaveAt(fn=...)` callback inside a gradient-flow solve, as a read-out
inside the `lax.scan` of a discrete optimiser, and as a post-hoc analysis function.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree

from ._misc import tree_norm


def _array_loss(loss_fn: Callable, params: Any) -> tuple[Callable, Any]:
    """Φ as a function of the floating-point arrays of `params` alone, and those
    arrays: everything else in the pytree (activation functions, integer fields, ...)
    is held fixed, as `equinox.filter_grad` does."""
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    return (lambda d: loss_fn(eqx.combine(d, static))), dynamic


def hvp(loss_fn: Callable, params: Any, v: Any) -> Any:
    """Hessian-vector product $∇^2Φ(θ)\\,v$ by forward-over-reverse differentiation.

    Derivatives are taken with respect to the floating-point arrays of `params` (any
    Equinox module works); `v` has the structure of `params` (its non-array leaves
    are ignored) and so has the result, with `None` at the non-array leaves. Costs
    about two gradient evaluations and never forms the Hessian.
    """
    phi, dynamic = _array_loss(loss_fn, params)
    v = eqx.filter(v, eqx.is_inexact_array)
    return jax.jvp(jax.grad(phi), (dynamic,), (v,))[1]


def top_hessian_eigenvalue(
    loss_fn: Callable,
    params: Any,
    *,
    method: Literal["lanczos", "power"] = "lanczos",
    num_iters: int = 20,
    key: Any = None,
) -> jax.Array:
    """The sharpness $λ_{max}(∇^2Φ(θ))$, the largest Hessian eigenvalue.

    Matrix-free: uses only Hessian-vector products, `num_iters` of them.

    - `method="lanczos"` (default): Lanczos with full reorthogonalisation; returns the
      largest Ritz value of the `num_iters × num_iters` tridiagonal matrix, which
      converges to the largest *algebraic* eigenvalue much faster than power iteration.
    - `method="power"`: power iteration with a Rayleigh quotient. Converges to the
      eigenvalue of largest *magnitude*, which is the sharpness near a minimum.

    `key` seeds the start vector (default `jax.random.key(0)`, so the result is
    deterministic). Reference: Cohen et al. 2021 (arXiv:2103.00065) use Lanczos for
    the same quantity.
    """
    phi, dynamic = _array_loss(loss_fn, params)
    flat, unravel = ravel_pytree(dynamic)
    n = flat.shape[0]
    k = int(min(num_iters, n))
    if k < 1:
        raise ValueError("num_iters must be >= 1.")
    key = jr.key(0) if key is None else key
    v0 = jr.normal(key, (n,), flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    grad_flat = lambda x: ravel_pytree(jax.grad(phi)(unravel(x)))[0]

    def matvec(v):
        return jax.jvp(grad_flat, (flat,), (v,))[1]

    if method == "power":

        def body(_, v):
            w = matvec(v)
            return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(w.dtype).tiny)

        # Unlike Lanczos, power iteration is not exact after n steps: no cap at n.
        v = jax.lax.fori_loop(0, num_iters - 1, body, v0)
        return jnp.vdot(v, matvec(v))
    if method != "lanczos":
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}.")

    def lanczos_step(j, carry):
        Q, alpha, beta = carry
        q = Q[j]
        w = matvec(q)
        a = jnp.vdot(q, w)
        # full reorthogonalisation (twice is enough) against all previous vectors
        mask = (jnp.arange(k) <= j)[:, None]
        Qm = jnp.where(mask, Q, 0.0)
        w = w - Qm.T @ (Qm @ w)
        w = w - Qm.T @ (Qm @ w)
        b = jnp.linalg.norm(w)
        q_next = w / jnp.maximum(b, jnp.finfo(w.dtype).tiny)
        Q = jnp.where(j + 1 < k, Q.at[(j + 1) % k].set(q_next), Q)
        return Q, alpha.at[j].set(a), beta.at[j].set(b)

    Q0 = jnp.zeros((k, n), flat.dtype).at[0].set(v0)
    zeros = jnp.zeros((k,), flat.dtype)
    _, alpha, beta = jax.lax.fori_loop(0, k, lanczos_step, (Q0, zeros, zeros))
    # An invariant subspace found early (beta ≈ 0) leaves later Ritz values exact too.
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    return jnp.linalg.eigvalsh(T)[-1]


class AbstractObservable(eqx.Module):
    """A quantity evaluated along a trajectory: `obs(loss_fn, params) -> Array`."""

    @abc.abstractmethod
    def __call__(self, loss_fn: Callable, params: Any) -> Any:
        """Evaluate the observable at `params` for the loss `loss_fn`."""


class Loss(AbstractObservable):
    """The loss Φ(θ) itself."""

    def __call__(self, loss_fn, params):
        return loss_fn(params)


class GradNorm(AbstractObservable):
    """The gradient norm ‖∇Φ(θ)‖ (Euclidean, over all floating-point parameters)."""

    def __call__(self, loss_fn, params):
        return tree_norm(eqx.filter_grad(loss_fn)(params))


class Sharpness(AbstractObservable):
    """The sharpness λ_max(∇²Φ(θ)); see [`dynlearn.top_hessian_eigenvalue`][]."""

    method: str = eqx.field(static=True, default="lanczos")
    num_iters: int = eqx.field(static=True, default=20)

    def __call__(self, loss_fn, params):
        return top_hessian_eigenvalue(
            loss_fn, params, method=self.method, num_iters=self.num_iters
        )


class FunctionObservable(AbstractObservable):
    """Wraps a plain callable `fn(params) -> Array` that does not need the loss."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, loss_fn, params):
        del loss_fn
        return self.fn(params)


def as_observables(
    observables: Mapping[str, AbstractObservable | Callable] | None,
) -> dict[str, AbstractObservable]:
    """Normalise a user mapping `name -> observable or fn(params)` (and check names)."""
    out: dict[str, AbstractObservable] = {"grad_norm": GradNorm()}
    if observables is not None and not isinstance(observables, Mapping):
        raise TypeError(
            "observables must be a mapping {name: observable}, e.g. "
            f"{{'sharpness': dynlearn.Sharpness()}}, got {type(observables).__name__}."
        )
    for name, obs in (observables or {}).items():
        if not isinstance(name, str) or name in ("loss", "ts", "params"):
            raise ValueError(
                f"observable name {name!r} is reserved or not a string; choose another."
            )
        if isinstance(obs, AbstractObservable):
            out[name] = obs
        elif callable(obs):
            out[name] = FunctionObservable(obs)
        else:
            raise TypeError(
                f"observable {name!r} must be an AbstractObservable or a callable "
                f"fn(params) -> array, got {type(obs)}."
            )
    return out


def evaluate_observables(
    loss_fn: Callable, params: Any, observables: Mapping[str, AbstractObservable]
) -> tuple[jax.Array, dict[str, Any]]:
    """(Φ(θ), {name: obs(θ)}) at one point, for use inside jit."""
    return loss_fn(params), {k: o(loss_fn, params) for k, o in observables.items()}


def trajectory_distance(
    a: Any, b: Any, *, atol: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """‖θ_a(t) − θ_b(t)‖ at the times the two trajectories share.

    `a` and `b` are [`dynlearn.Trajectory`][] objects saved with parameters. Times are
    matched to within `atol·max(1, |t|)`; e.g. a gradient flow saved at
    `ts = lr·k` matches GD's time stamps exactly.

    **Returns:** `(ts, distance)` as NumPy arrays.
    """
    if a.params is None or b.params is None:
        raise ValueError(
            "Both trajectories must store parameters (save_params=True) to compute a "
            "distance between them."
        )
    ta, tb = np.asarray(a.ts), np.asarray(b.ts)
    idx_b = np.searchsorted(tb, ta)
    idx_b = np.clip(idx_b, 0, len(tb) - 1)
    left = np.clip(idx_b - 1, 0, len(tb) - 1)
    pick = np.where(np.abs(tb[left] - ta) < np.abs(tb[idx_b] - ta), left, idx_b)
    ok = np.abs(tb[pick] - ta) <= atol * np.maximum(1.0, np.abs(ta))
    if not ok.any():
        raise ValueError(
            "The two trajectories share no save times. Save the flow at the optimiser's "
            "time stamps, e.g. gradient_flow(..., ts=gd.ts)."
        )
    ia, ib = np.nonzero(ok)[0], pick[ok]
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])
    fa = flat(eqx.filter(a.params, eqx.is_inexact_array))
    fb = flat(eqx.filter(b.params, eqx.is_inexact_array))
    dist = jnp.linalg.norm(fa[ia] - fb[ib], axis=-1)
    return ta[ia], np.asarray(dist)
