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


def stiff_quadratic(kappa: float, n: int = 12):
    """Φ(w) = ½(w−w*)ᵀH(w−w*), H = Q diag(λ) Qᵀ with λ ∈ [1/κ, 1]·10 (sharpness 10),
    on a plain array; returns (loss, exact flow (t, w0) ↦ w(t), w0 = 0)."""
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (n, n)))
    lam = 10.0 * jnp.logspace(-np.log10(kappa), 0.0, n)
    h = (q * lam) @ q.T
    star = jnp.linspace(-1.0, 1.0, n)
    loss = lambda w: 0.5 * (w - star) @ h @ (w - star)
    exact = lambda t, w0: star + (q * jnp.exp(-lam * t)) @ q.T @ (w0 - star)
    return loss, exact, jnp.zeros(n)
