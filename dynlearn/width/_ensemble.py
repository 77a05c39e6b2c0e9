r"""Ensembles of random networks: correlators, connected 4-point functions, kurtosis.

An ensemble of M networks at initialisation defines a distribution over functions;
its n-point functions are $G^{(n)}(x_1,\dots,x_n) = \mathbb E[f(x_1)\cdots f(x_n)]$.
As the width N → ∞ the distribution becomes Gaussian (a free field, with two-point
function the NNGP kernel); at finite width the connected 4-point function

$$G^{(4)}_c = G^{(4)} - \bigl(G^{(2)}_{12}G^{(2)}_{34} + G^{(2)}_{13}G^{(2)}_{24}
+ G^{(2)}_{14}G^{(2)}_{23}\bigr)$$

is $O(1/N)$: an interaction (Halverson, Maiti & Stoner 2021, arXiv:2008.08601;
Roberts, Yaida & Hanin 2022, arXiv:2106.10165, ch. 4).

**Rao–Blackwellisation.** Given the last hidden layer $h$, the output of an MLP is
Gaussian with covariance $C(x,x') = σ_w^2\,h(x)\!\cdot\!h(x')/N + σ_b^2$ (the readout
layer is still random). Hence $G^{(2)} = \mathbb E[C]$ and
$G^{(4)}_c = \mathrm{Cov}(C_{12}, C_{34}) + \mathrm{Cov}(C_{13}, C_{24})
+ \mathrm{Cov}(C_{14}, C_{23})$, which has far lower variance than raw fourth moments
(see [`dynlearn.width.readout_covariance`][]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._estimate import Estimate
from .._network import MLP, get_activation


# ---------------------------------------------------------------------------------
# Sampling


def sample_ensemble(
    make: Callable[[PRNGKeyArray], Any],
    fn: Callable[[Any], Any],
    num_samples: int,
    *,
    key: PRNGKeyArray,
    chunk_size: int = 1024,
) -> Any:
    """Draw `num_samples` networks `make(key_i)` and return `fn(network_i)` stacked.

    Networks are built and evaluated `chunk_size` at a time (a `vmap` inside a
    `lax.map`), so memory is bounded by one chunk of networks; only the outputs of
    `fn` are kept. Example: `sample_ensemble(lambda k: dl.MLP(..., key=k),
    lambda net: jax.vmap(net)(xs), 10_000, key=key)` gives outputs of shape
    `(10_000, len(xs))`.
    """
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}.")
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
    chunk = min(chunk_size, num_samples)
    nchunks = -(-num_samples // chunk)
    keys = jr.split(key, nchunks * chunk).reshape(nchunks, chunk)
    return _sample_jit(make, fn, keys, num_samples)


@eqx.filter_jit
def _sample_jit(make, fn, keys, num):
    # `make` and `fn` are static (hashed by identity): calling again with the same
    # functions and shapes reuses the compiled program.
    out = jax.lax.map(jax.vmap(lambda k: fn(make(k))), keys)
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:num], out)


def readout_covariance(net: MLP, x: ArrayLike) -> Array:
    """Covariance of the outputs of `net` on inputs `x` given its last hidden layer.

    $C(x, x') = σ_w^2\\,h(x)\\cdot h(x')/N + σ_b^2$ (bias term only if the network
    has biases): the readout weights are independent $N(0, σ_w^2/N)$ in either
    parameterisation of [`dynlearn.MLP`][]. The ensemble mean of C is the two-point
    function; its fluctuations give the connected 4-point function. Only for a
    linear readout (`final_activation="linear"`) and one output unit's covariance
    (all output units share it). **Returns** `(n, n)`.
    """
    if not isinstance(net, MLP):
        raise TypeError("readout_covariance needs a dynlearn.MLP.")
    x = jnp.asarray(x)

    def hidden(xi):
        if net.in_size == "scalar":
            xi = jnp.reshape(xi, (1,))
        for layer in net.layers[:-1]:
            xi = net.activation(layer(xi))
        return xi

    h = jax.vmap(hidden)(x)
    fan_in = h.shape[1]
    cov = (net.sigma_w**2 / fan_in) * (h @ h.T)
    if net.layers[-1].bias is not None:
        cov = cov + net.sigma_b**2
    return cov


# ---------------------------------------------------------------------------------
# Estimators


def _samples(samples: ArrayLike, minimum: int = 1) -> Array:
    s = jnp.asarray(samples)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(
            f"`samples` must have shape (M, P) (M networks, P input points), got "
            f"{s.shape}. Flatten multi-output networks first."
        )
    _enough(s.shape[0], minimum)
    return s


def _enough(m: int, minimum: int) -> None:
    if m < minimum:
        raise ValueError(
            f"The ensemble has M = {m} networks; this estimator needs at least "
            f"{minimum} (a spread needs two draws). Sample more networks."
        )


_LETTERS = "abcdefghij"


def correlator(samples: ArrayLike, order: int) -> Array:
    """The n-point function $G^{(n)}_{i_1\\dots i_n} = \\frac1M\\sum_k f_k(x_{i_1})
    \\cdots f_k(x_{i_n})$ from samples of shape `(M, P)`; returns `(P,)*order`."""
    s = _samples(samples)
    if not isinstance(order, int) or not 1 <= order <= len(_LETTERS):
        raise ValueError(f"`order` must be an int in [1, {len(_LETTERS)}].")
    idx = _LETTERS[:order]
    expr = ",".join("m" + c for c in idx) + "->" + idx
    return jnp.einsum(expr, *([s] * order)) / s.shape[0]


def _wick(g2: Array) -> Array:
    return (
        jnp.einsum("ab,cd->abcd", g2, g2)
        + jnp.einsum("ac,bd->abcd", g2, g2)
        + jnp.einsum("ad,bc->abcd", g2, g2)
    )


def connected_four_point(samples: ArrayLike) -> Array:
    """The connected 4-point function (fourth joint cumulant) from output samples.

    Samples `(M, P)` are centred first, then
    $G_c = \\mathbb E[c_1c_2c_3c_4] - \\sum_{\\text{3 pairings}} \\mathbb E[c c]\\,
    \\mathbb E[c c]$. Returns `(P, P, P, P)`."""
    s = _samples(samples, 2)
    c = s - jnp.mean(s, axis=0)
    return correlator(c, 4) - _wick(correlator(c, 2))


def _covariances(cov: ArrayLike) -> Array:
    c = jnp.asarray(cov)
    if c.ndim != 3 or c.shape[1] != c.shape[2]:
        raise ValueError(
            f"`cov` must be per-network covariances of shape (M, P, P), got {c.shape}."
        )
    return c


def connected_four_point_from_covariance(cov: ArrayLike) -> Array:
    """Rao–Blackwellised connected 4-point function from per-network conditional
    covariances `(M, P, P)` (e.g. [`dynlearn.width.readout_covariance`][]):
    $\\mathrm{Cov}(C_{12}, C_{34}) + \\mathrm{Cov}(C_{13}, C_{24}) +
    \\mathrm{Cov}(C_{14}, C_{23})$. Returns `(P, P, P, P)`."""
    c = _covariances(cov)
    _enough(c.shape[0], 2)
    d = c - jnp.mean(c, axis=0)
    m = c.shape[0]
    cc = jnp.einsum("mab,mcd->abcd", d, d) / m
    return cc + jnp.transpose(cc, (0, 2, 1, 3)) + jnp.transpose(cc, (0, 3, 1, 2))


def kurtosis(samples: ArrayLike) -> Array:
    """Excess kurtosis $\\mathbb E[c^4]/\\mathbb E[c^2]^2 - 3$ of the output at each
    input point, from samples `(M, P)`; returns `(P,)`."""
    s = _samples(samples, 2)
    c = s - jnp.mean(s, axis=0)
    return jnp.mean(c**4, axis=0) / jnp.mean(c**2, axis=0) ** 2 - 3.0


def kurtosis_from_covariance(cov: ArrayLike) -> Array:
    """Rao–Blackwellised excess kurtosis $3\\,\\mathrm{Var}(C_{ii})/\\mathbb
    E[C_{ii}]^2$ at each input point from conditional covariances `(M, P, P)` (or
    variances `(M, P)`)."""
    c = jnp.asarray(cov)
    v = jnp.diagonal(c, axis1=1, axis2=2) if c.ndim == 3 else c
    if v.ndim != 2:
        raise ValueError(f"`cov` must be (M, P, P) or (M, P), got {c.shape}.")
    _enough(v.shape[0], 2)
    return 3.0 * jnp.var(v, axis=0) / jnp.mean(v, axis=0) ** 2


def with_error_bars(
    estimator: Callable[[Array], Array],
    samples: ArrayLike,
    *,
    num_chunks: int = 10,
    max_stderr: float | None = None,
) -> Estimate:
    """Apply `estimator` to `samples` (leading axis = networks) with an error bar.

    Returns a [`dynlearn.Estimate`][]: `mean` is the estimator on all M samples,
    `stderr` the batch-means standard error
    $\\mathrm{std}(\\hat θ_1,\\dots,\\hat θ_k)/\\sqrt{k}$ over
    k = `num_chunks` disjoint chunks (the estimator is applied to each chunk of M/k
    samples; HMS 2021 use k = 10). With `max_stderr`, raise if the largest standard
    error exceeds it, saying how many networks are needed (the error falls as
    $1/\\sqrt M$).
    """
    s = jnp.asarray(samples)
    m = s.shape[0]
    if not isinstance(num_chunks, int) or num_chunks < 2:
        raise ValueError(f"`num_chunks` must be an int >= 2, got {num_chunks!r}.")
    if m < 4 * num_chunks:
        raise ValueError(
            f"An ensemble of M = {m} networks is too small for error bars from "
            f"{num_chunks} chunks: need at least {4 * num_chunks} (>= 4 per chunk); "
            "sample more networks or lower num_chunks."
        )
    per = m // num_chunks
    value = estimator(s)
    chunks = s[: per * num_chunks].reshape(num_chunks, per, *s.shape[1:])
    parts = jax.lax.map(estimator, chunks)
    stderr = jnp.std(parts, axis=0, ddof=1) / math.sqrt(num_chunks)
    if max_stderr is not None:
        worst = float(jnp.max(stderr))
        if not worst <= max_stderr:
            need = int(math.ceil(m * (worst / max_stderr) ** 2))
            raise ValueError(
                f"The ensemble of M = {m} networks is too small for the requested "
                f"error bar: standard error {worst:.3g} > max_stderr = "
                f"{max_stderr:.3g}. Use about M = {need} networks (error ∝ 1/√M)."
            )
    return Estimate(mean=value, stderr=stderr)


# ---------------------------------------------------------------------------------
# Exact finite-width results


def relu_kurtosis_exact(width: int, depth: int) -> float:
    """Exact excess kurtosis of a zero-bias relu MLP's output for a single input:
    $3[(1 + 5/N)^L - 1]$ with L = `depth` hidden layers of width N (notes §3.2:
    $\\mathbb E[M^2]/\\mathbb E[M]^2 = 1 + 5/N$ per layer; Hanin & Nica 2019,
    arXiv:1812.05994). To first order $15L/N$ (Roberts, Yaida & Hanin 2022, §5)."""
    if width <= 0 or depth < 0:
        raise ValueError("Need width > 0 and depth >= 0.")
    return 3.0 * ((1.0 + 5.0 / width) ** depth - 1.0)


def _gauss_moments(phi: Callable, k: float, num_nodes: int = 200):
    z, w = np.polynomial.hermite_e.hermegauss(num_nodes)
    w = w / w.sum()
    v = np.asarray(phi(jnp.asarray(math.sqrt(k) * z)), dtype=float)
    return float(w @ v**2), float(w @ v**4)


def single_layer_four_point(
    activation: str | Callable,
    width: int,
    *,
    k0: float,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
) -> tuple[float, float, float]:
    """Exact two-point function, connected 4-point function and excess kurtosis at a
    single input of a one-hidden-layer network of width N:

    $$K = σ_b^2 + σ_w^2\\,\\mathbb E[φ(z)^2],\\quad
    G^{(4)}_c = \\frac{3σ_w^4}{N}\\,\\mathrm{Var}[φ(z)^2],\\quad κ = G^{(4)}_c/K^2,$$

    with $z \\sim N(0, k_0)$ the first-layer preactivation, $k_0 = σ_b^2 + σ_w^2
    \\|x\\|^2/d$ (notes §4.1; exact at every N for one hidden layer). Expectations by
    200-node Gauss–Hermite quadrature (exact for polynomial φ; for relu the kink
    limits it to ~1e-4 relative). **Returns** `(K, G_c, κ)`."""
    if width <= 0 or k0 <= 0:
        raise ValueError("Need width > 0 and k0 > 0.")
    phi = get_activation(activation)
    if activation == "relu":  # exact half-normal moments
        m2, m4 = k0 / 2, 3 * k0**2 / 2
    else:
        m2, m4 = _gauss_moments(phi, k0)
    k = sigma_b**2 + sigma_w**2 * m2
    g4 = 3 * sigma_w**4 * (m4 - m2**2) / width
    return k, g4, g4 / k**2


def quartic_coupling(g4c: ArrayLike, k_grid: ArrayLike, weights: ArrayLike) -> Array:
    """Leading local quartic coupling of the field theory from the connected 4-point
    function (Halverson, Maiti & Stoner 2021, arXiv:2008.08601, §4):

    for $S = S_{GP} + \\frac{λ}{4!}\\int d^dy\\, f(y)^4$, tree level gives
    $G^{(4)}_c(x_1..x_4) = -λ\\int d^dy\\,\\prod_i K(y, x_i)$, so
    $λ(x_1..x_4) = -G^{(4)}_c / \\int\\prod_i K(y, x_i)$ (one estimate per input
    tuple; a constant λ means a local quartic action describes the ensemble).

    **Arguments:** `g4c` `(P, P, P, P)`; `k_grid` `(G, P)` = K(y_g, x_i) on G
    integration points; `weights` `(G,)` their quadrature weights (e.g. trapezoid on
    $[-Λ, Λ]$: the integral and hence λ depend on the cutoff Λ).
    """
    g4c, kg, w = (jnp.asarray(a) for a in (g4c, k_grid, weights))
    p = kg.shape[1] if kg.ndim == 2 else -1
    if g4c.shape != (p,) * 4 or w.shape != kg.shape[:1]:
        raise ValueError(
            f"Shapes do not match: g4c {g4c.shape}, k_grid {kg.shape}, weights "
            f"{w.shape}; need (P,P,P,P), (G,P), (G,)."
        )
    integral = jnp.einsum("g,ga,gb,gc,gd->abcd", w, kg, kg, kg, kg)
    return -g4c / integral


def finite_width_recursion(
    activation: str | Callable,
    depth: int,
    width: int,
    *,
    k0: float,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    num_nodes: int = 200,
) -> tuple[float, float, float]:
    """Leading-order finite-width recursion for a single input (Roberts, Yaida &
    Hanin 2022, arXiv:2106.10165, ch. 4–5; notes §3.2), with $C_W = σ_w^2$,
    $C_b = σ_b^2$:

    $$K^{(l+1)} = C_b + C_W\\langle φ^2\\rangle_{K^{(l)}},\\quad
    V^{(l+1)} = C_W^2\\bigl[\\langle φ^4\\rangle - \\langle φ^2\\rangle^2\\bigr]
    + χ_\\parallel^2 V^{(l)},\\quad
    χ_\\parallel = \\frac{C_W}{2K^2}\\langle φ^2 (z^2 - K)\\rangle_K,$$

    from $K^{(1)} = k_0$, $V^{(1)} = 0$ (first-layer preactivations), for `depth`
    hidden layers of equal `width` n. **Returns** `(K, V, κ)` of the output with
    $κ = 3V/(nK^2)$ the excess kurtosis to O(1/n). Gaussian averages by
    `num_nodes`-point Gauss–Hermite quadrature.
    """
    if not isinstance(depth, int) or depth < 0 or width <= 0 or k0 <= 0:
        raise ValueError("Need an int depth >= 0, width > 0 and k0 > 0.")
    phi = get_activation(activation)
    z, w = np.polynomial.hermite_e.hermegauss(num_nodes)
    z, w = jnp.asarray(z), jnp.asarray(w / w.sum())
    cw, cb = sigma_w**2, sigma_b**2
    k, v = jnp.asarray(float(k0)), jnp.asarray(0.0)
    for _ in range(depth):
        s2 = phi(jnp.sqrt(k) * z) ** 2
        m2, m4 = w @ s2, w @ s2**2
        chi = cw / (2 * k**2) * (w @ (s2 * k * (z**2 - 1)))
        v = cw**2 * (m4 - m2**2) + chi**2 * v
        k = cb + cw * m2
    return float(k), float(v), float(3 * v / (width * k**2))
