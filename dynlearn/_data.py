"""Small synthetic data sets made from PRNG keys (nothing is ever downloaded).

Every set is drawn in float64 and rounded to JAX's default float, so that one key gives
the same data (rounded) in float32 as in float64 (see `dynlearn.MLP` for the one
exception, inside `jax.jit` with x64 off).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray

from ._misc import check_integer, check_key, check_nonnegative, draw_in_float64


def _checked(name: str, key, n, noise, d=None) -> None:
    check_key("key", key)
    check_integer(f"{name}: n (the number of examples)", n, 1)
    if d is not None:
        check_integer(f"{name}: d (the input dimension)", d, 1)
    check_nonnegative(f"{name}: noise", noise)


def sine_regression(
    n: int = 32, d: int = 3, noise: float = 0.0, *, key: PRNGKeyArray
) -> tuple[jax.Array, jax.Array]:
    """Inputs $x \\sim N(0, I_d)$, targets $y = \\sin(x · w)$ with $w = (1, -2, 0.5, …)$.

    The regression task of the gradient-flow notes (§8: "MLP toy"). Returns
    `(X, Y)` with shapes `(n, d)` and `(n,)`.
    """
    _checked("sine_regression", key, n, noise, d)

    def draw(dtype):
        kx, kn = jr.split(key)
        X = jr.normal(kx, (n, d), dtype)
        w = jnp.resize(jnp.array([1.0, -2.0, 0.5], dtype), (d,))
        Y = jnp.sin(X @ w) + noise * jr.normal(kn, (n,), dtype)
        return X, Y

    return draw_in_float64(draw, jnp.asarray(1.0).dtype, key)


def two_moons(
    n: int = 200, noise: float = 0.1, *, key: PRNGKeyArray
) -> tuple[jax.Array, jax.Array]:
    """The two-moons classification set: `X` of shape `(n, 2)`, labels ±1 of shape
    `(n,)`."""
    _checked("two_moons", key, n, noise)

    def draw(dtype):
        kt, kn, kl = jr.split(key, 3)
        labels = jnp.where(jr.uniform(kl, (n,), dtype) < 0.5, 1.0, -1.0).astype(dtype)
        t = jnp.pi * jr.uniform(kt, (n,), dtype)
        upper = jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
        lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], -1)
        X = jnp.where(labels[:, None] > 0, upper, lower) + noise * jr.normal(
            kn, (n, 2), dtype
        )
        return X, labels

    return draw_in_float64(draw, jnp.asarray(1.0).dtype, key)


def linear_regression(
    n: int = 64, d: int = 5, noise: float = 0.5, *, key: PRNGKeyArray
) -> tuple[jax.Array, jax.Array]:
    """$y = x·w^* + ε$ with $x, w^* \\sim N(0, I)$ and $ε \\sim N(0, \\text{noise}^2)$:
    the SGD-vs-SDE setting of the notes (V20). Returns `(X, Y)`."""
    _checked("linear_regression", key, n, noise, d)

    def draw(dtype):
        kx, kw, kn = jr.split(key, 3)
        X = jr.normal(kx, (n, d), dtype)
        w = jr.normal(kw, (d,), dtype)
        return X, X @ w + noise * jr.normal(kn, (n,), dtype)

    return draw_in_float64(draw, jnp.asarray(1.0).dtype, key)
