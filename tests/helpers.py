"""Shared fixtures for the core tests: problems with closed-form gradient flows."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg


def spd_matrix(d: int, cond: float, seed: int = 0) -> np.ndarray:
    """A random SPD matrix with eigenvalues log-spaced in [1/cond, 1]... scaled to [1, cond]/cond·λmax."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    eig = np.logspace(0, np.log10(cond), d) / cond
    return (q * eig) @ q.T


def quadratic(d: int = 20, cond: float = 100.0, scale: float = 2.0, seed: int = 0):
    """Φ(θ) = ½(θ−θ*)ᵀH(θ−θ*) with a dict pytree of parameters, and its exact flow."""
    H = scale * spd_matrix(d, cond, seed)
    rng = np.random.default_rng(seed + 1)
    theta_star = rng.normal(size=d)
    theta0 = rng.normal(size=d)
    split = d // 2

    def flat(p):
        return jnp.concatenate([p["a"], p["b"].ravel()])

    def loss(p):
        r = flat(p) - theta_star
        return 0.5 * r @ (H @ r)

    params0 = {"a": jnp.asarray(theta0[:split]), "b": jnp.asarray(theta0[split:])}

    def exact(t):
        return theta_star + scipy.linalg.expm(-H * t) @ (theta0 - theta_star)

    return loss, params0, flat, exact, H, theta0, theta_star


def tree_flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])
