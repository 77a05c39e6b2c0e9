"""Small synthetic data sets made from PRNG keys (nothing is ever downloaded)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray


def sine_regression(
    key: PRNGKeyArray, n: int = 32, d: int = 3, noise: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """Inputs $x \\sim N(0, I_d)$, targets $y = \\sin(x · w)$ with $w = (1, -2, 0.5, …)$.

    The regression task of the gradient-flow notes (§8: "MLP toy"). Returns
    `(X, Y)` with shapes `(n, d)` and `(n,)`.
    """
    kx, kn = jr.split(key)
    X = jr.normal(kx, (n, d))
    w = jnp.resize(jnp.array([1.0, -2.0, 0.5]), (d,))
    Y = jnp.sin(X @ w) + noise * jr.normal(kn, (n,))
    return X, Y


def two_moons(
    key: PRNGKeyArray, n: int = 200, noise: float = 0.1
) -> tuple[jax.Array, jax.Array]:
    """The two-moons classification set: `X` of shape `(n, 2)`, labels ±1 of shape
    `(n,)`."""
    kt, kn, kl = jr.split(key, 3)
    labels = jnp.where(jr.uniform(kl, (n,)) < 0.5, 1.0, -1.0)
    t = jnp.pi * jr.uniform(kt, (n,))
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
    lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], -1)
    X = jnp.where(labels[:, None] > 0, upper, lower) + noise * jr.normal(kn, (n, 2))
    return X, labels


def linear_regression(
    key: PRNGKeyArray, n: int = 64, d: int = 5, noise: float = 0.5
) -> tuple[jax.Array, jax.Array]:
    """$y = x·w^* + ε$ with $x, w^* \\sim N(0, I)$ and $ε \\sim N(0, \\text{noise}^2)$:
    the SGD-vs-SDE setting of the notes (V20). Returns `(X, Y)`."""
    kx, kw, kn = jr.split(key, 3)
    X = jr.normal(kx, (n, d))
    w = jr.normal(kw, (d,))
    return X, X @ w + noise * jr.normal(kn, (n,))
