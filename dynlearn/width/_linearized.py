r"""Closed-form training of linearised networks and the NNGP posterior.

Gradient flow on $Φ = \frac{1}{2N}\sum_{i=1}^N \|f(x_i) - y_i\|^2$ (`"mean"`, the
convention of [`dynlearn.gradient_flow`][] scenarios) or $\frac12\sum_i\|f(x_i) -
y_i\|^2$ (`"sum"`) of the linearised network $f^{lin}_t = f_0 + J_0(θ_t - θ_0)$ is
solved exactly (Lee et al. 2019, arXiv:1902.06720, eqs. (9)–(11)):

$$f_t(X) = Y + e^{-Θt/N}\,(f_0(X) - Y),\qquad
f_t(x) = f_0(x) - Θ(x, X)\,Θ^{-1}\bigl(I - e^{-Θt/N}\bigr)(f_0(X) - Y),$$

with $Θ = Θ(X, X)$ the NTK on the training set (drop the $1/N$ for `"sum"`). We use
the eigendecomposition $Θ = V\,\mathrm{diag}(λ)\,V^T$ and
$Θ^{-1}(I - e^{-Θs}) = V\,\mathrm{diag}\bigl(-\mathrm{expm1}(-λ s)/λ\bigr)V^T$, which
is finite for λ → 0 (limit $s$): no inverse of a singular kernel is ever formed.
"""

from __future__ import annotations

import warnings
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


class NonPSDKernelWarning(UserWarning):
    """The kernel given to [`dynlearn.width.linearized_mse`][] has negative eigenvalues
    beyond round-off; they are treated as zero (no growth along them)."""


def _check_psd(lam: Array, n: int) -> None:
    """Warn when the most negative eigenvalue of a symmetric kernel is below
    −max(100·n·ε, √ε)·λ_max: an NTK (a Gram matrix J Jᵀ) is PSD, and eigh of a PSD
    matrix errs by ~n·ε·λ_max, so anything larger means a wrong kernel."""
    if isinstance(lam, jax.core.Tracer) or lam.size == 0:
        return
    lam = np.asarray(lam)
    eps = float(np.finfo(lam.dtype).eps)
    top = float(np.max(np.abs(lam)))
    low = float(np.min(lam))
    if top > 0 and low < -max(100 * n * eps, np.sqrt(eps)) * top:
        warnings.warn(
            f"ntk_train is not positive semi-definite: its most negative eigenvalue is "
            f"{low:.3g} = {low / top:.3g} × the largest, far beyond round-off. An NTK "
            "is a Gram matrix and has no negative eigenvalues, so this kernel is wrong "
            "(non-symmetric, mixed inputs or a bug upstream); the negative modes are "
            "treated as zero (frozen, not growing).",
            NonPSDKernelWarning,
            stacklevel=3,
        )


def _square(k: Array, name: str) -> tuple[Array, int, int]:
    """(n, n) or (n, n, O, O) -> ((nO, nO), n, O)."""
    if k.ndim == 2 and k.shape[0] == k.shape[1]:
        return k, k.shape[0], 1
    if k.ndim == 4 and k.shape[0] == k.shape[1] and k.shape[2] == k.shape[3]:
        n, o = k.shape[0], k.shape[2]
        return jnp.transpose(k, (0, 2, 1, 3)).reshape(n * o, n * o), n, o
    raise ValueError(f"`{name}` must have shape (n, n) or (n, n, O, O), got {k.shape}.")


def _phi(lam: Array, s: ArrayLike) -> Array:
    """-expm1(-λ s)/λ, with the λ → 0 limit s."""
    lam = jnp.maximum(lam, 0.0)  # round-off negatives of a PSD kernel
    safe = jnp.where(lam > 0, lam, 1.0)
    return jnp.where(lam > 0, -jnp.expm1(-lam * s) / safe, s)


def linearized_mse(
    ntk_train: ArrayLike,
    y_train: ArrayLike,
    f0_train: ArrayLike,
    ts: ArrayLike,
    *,
    ntk_test_train: ArrayLike | None = None,
    f0_test: ArrayLike | None = None,
    normalization: Literal["mean", "sum"] = "mean",
) -> tuple[Array, Array | None]:
    """Outputs of the linearised network under gradient flow on the MSE loss.

    **Arguments:**

    - `ntk_train`: Θ(X, X), shape `(n, n)` or `(n, n, O, O)` (as returned by
      [`dynlearn.width.empirical_ntk`][]).
    - `y_train`, `f0_train`: targets and initial outputs, shape `(n,)` or `(n, O)`.
    - `ts`: times, shape `(T,)` (or a scalar).
    - `ntk_test_train`: Θ(x, X), shape `(m, n)` or `(m, n, O, O)`; `f0_test`: initial
      test outputs `(m,)` or `(m, O)`.
    - `normalization`: `"mean"` for Φ = ½·mean over examples of ‖f − y‖² (the
      kernel is divided by n), `"sum"` for Φ = ½ Σ‖f − y‖².

    **Returns:** `(f_train(ts), f_test(ts))` with a leading time axis (`f_test` is
    `None` without test data).

    Negative eigenvalues of Θ at round-off level (a PSD kernel with null directions)
    are treated as zero; beyond round-off (below −max(100·nO·ε, √ε)·λ_max) a
    `dynlearn.width.NonPSDKernelWarning` says so, since the kernel is then wrong.
    """
    k, n, o = _square(jnp.asarray(ntk_train), "ntk_train")
    y = jnp.asarray(y_train)
    f0 = jnp.asarray(f0_train)
    if y.shape != f0.shape or y.size != n * o or y.shape[0] != n:
        raise ValueError(
            f"`y_train` {y.shape} and `f0_train` {f0.shape} must both have shape "
            f"({n},) or ({n}, {o}) to match the kernel."
        )
    if normalization not in ("mean", "sum"):
        raise ValueError(
            f"normalization must be 'mean' or 'sum', not {normalization!r}."
        )
    scale = 1.0 / n if normalization == "mean" else 1.0
    ts = jnp.asarray(ts, dtype=k.dtype)
    scalar_t = ts.ndim == 0
    ts = jnp.atleast_1d(ts)
    lam, v = jnp.linalg.eigh(0.5 * (k + k.T))
    _check_psd(lam, n * o)
    r0 = v.T @ (f0 - y).ravel()  # residual in the eigenbasis
    decay = jnp.exp(-jnp.maximum(lam, 0.0)[None, :] * scale * ts[:, None])
    f_train = y.ravel() + (decay * r0) @ v.T
    f_train = f_train.reshape(ts.shape + y.shape)
    f_test = None
    if ntk_test_train is not None:
        if f0_test is None:
            raise ValueError("`f0_test` is needed together with `ntk_test_train`.")
        kt = jnp.asarray(ntk_test_train)
        if kt.ndim == 4:
            m = kt.shape[0]
            kt = jnp.transpose(kt, (0, 2, 1, 3)).reshape(m * o, n * o)
        if kt.ndim != 2 or kt.shape[1] != n * o:
            raise ValueError(
                f"`ntk_test_train` must have shape (m, {n}) or (m, {n}, {o}, {o}), "
                f"got {jnp.shape(ntk_test_train)}."
            )
        g0 = jnp.asarray(f0_test)
        if g0.size != kt.shape[0]:
            raise ValueError(
                f"`f0_test` has {g0.size} entries but the kernel has {kt.shape[0]} rows."
            )
        # Θ(x,X)Θ⁻¹(I − e^{−Θ s}) r0 = Θ(x,X) V diag(−expm1(−λ s)/λ) Vᵀ r0, s = t·scale
        coef = _phi(lam[None, :], scale * ts[:, None]) * r0
        f_test = g0.ravel() - (coef @ v.T) @ kt.T
        f_test = f_test.reshape(ts.shape + g0.shape)
    if scalar_t:
        f_train = f_train[0]
        f_test = None if f_test is None else f_test[0]
    return f_train, f_test


class GPPosterior(NamedTuple):
    """Posterior mean `(m,)` and covariance `(m, m)` of a Gaussian process."""

    mean: Array
    cov: Array


def gp_posterior(
    k_train: ArrayLike,
    y_train: ArrayLike,
    k_test_train: ArrayLike,
    k_test: ArrayLike,
    *,
    noise: float = 0.0,
) -> GPPosterior:
    """Exact GP regression with kernel K (e.g. the NNGP of
    [`dynlearn.width.infinite_width_kernels`][]) and Gaussian noise variance `noise`:

    $$μ = K_{*X}(K_{XX} + σ^2 I)^{-1}y,\\qquad
    Σ = K_{**} - K_{*X}(K_{XX} + σ^2 I)^{-1}K_{X*}$$

    (Rasmussen & Williams 2006, eqs. (2.22)–(2.24); Lee et al. 2018,
    arXiv:1711.00165, eqs. (7)–(8)). Solved by Cholesky; `noise=0` needs a
    positive-definite `k_train`.
    """
    k = jnp.asarray(k_train)
    y = jnp.asarray(y_train)
    ks = jnp.asarray(k_test_train)
    kss = jnp.asarray(k_test)
    n = k.shape[0]
    if k.shape != (n, n) or y.shape != (n,) or ks.shape[1:] != (n,):
        raise ValueError(
            f"Shapes do not match: k_train {k.shape}, y_train {y.shape}, "
            f"k_test_train {ks.shape}; need (n, n), (n,), (m, n)."
        )
    if not 0 <= noise < np.inf:
        raise ValueError(f"`noise` must be finite and >= 0, got {noise}.")
    chol = jnp.linalg.cholesky(k + noise * jnp.eye(n, dtype=k.dtype))
    if not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError(
            "k_train (+ noise·I) is not positive definite; pass noise > 0 (e.g. 1e-8 "
            "times its trace) or remove duplicate inputs."
        )
    alpha = jnp.linalg.solve(chol.T, jnp.linalg.solve(chol, y))
    w = jnp.linalg.solve(chol, ks.T)
    return GPPosterior(mean=ks @ alpha, cov=kss - w.T @ w)
