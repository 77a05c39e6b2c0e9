"""Exact Ising results: the finite torus (Kaufman 1949), the infinite square lattice
(Onsager 1944, Yang 1952) and the 1D chain, as differentiable JAX functions.

Conventions: H = −Σ_<ij> s_i s_j with s = ±1 and J = 1, k_B = 1, coupling K = J/T.
Energies and specific heats are per spin: u = −(1/N) ∂ln Z/∂K,
c = (K²/N) ∂²ln Z/∂K².
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special


K_C = 0.5 * math.log(1.0 + math.sqrt(2.0))
"""Critical coupling of the square lattice, ½ ln(1 + √2) = 0.44068679350977147."""
T_C = 1.0 / K_C
"""Critical temperature 2/ln(1 + √2) = 2.269185314213022."""


def _log_2cosh(x):
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2.0 * a))


def _log_abs_2sinh(x):
    a = jnp.abs(x)
    return a + jnp.log(-jnp.expm1(-2.0 * a))


@functools.partial(jax.jit, static_argnames=("rows", "cols"))
def torus_log_partition(K, rows: int, cols: int) -> jax.Array:
    """ln Z of the Ising model on a `rows × cols` periodic lattice (Kaufman 1949;
    Ferdinand & Fisher 1969, Phys. Rev. 185, 832, Eqs. 2.1–2.5).

    $Z = \\tfrac12 (2\\sinh 2K)^{mn/2} \\sum_{i=1}^4 Z_i$ with
    $Z_{1,2} = \\prod_{r=0}^{n-1} 2\\{\\cosh,\\sinh\\}(m γ_{2r+1}/2)$,
    $Z_{3,4}$ the same with $γ_{2r}$, $\\cosh γ_l = \\cosh 2K \\coth 2K − \\cos(πl/n)$ and
    the signed $γ_0 = 2K + \\ln\\tanh K$ (so $Z_4 < 0$ above $T_c$). Computed in log space
    with signs, so it neither overflows nor loses the cancellation near $T_c$; exact to
    round-off for any size, and differentiable in K (`jax.grad` gives energies).
    """
    m, n = int(rows), int(cols)
    if m < 2 or n < 2:
        raise ValueError(f"The torus needs rows, cols >= 2, got {rows}×{cols}.")
    K = jnp.asarray(K, dtype=float)
    c2, s2 = jnp.cosh(2 * K), jnp.sinh(2 * K)
    ls = jnp.arange(2 * n)
    arg = c2 * c2 / s2 - jnp.cos(jnp.pi * ls / n)
    gam = jnp.arccosh(jnp.where(ls == 0, 2.0, arg))  # placeholder at l = 0
    gam = jnp.where(ls == 0, 2 * K + jnp.log(jnp.tanh(K)), gam)
    odd, even = gam[1::2], gam[0::2]
    l1 = jnp.sum(_log_2cosh(m * odd / 2))
    l2 = jnp.sum(_log_abs_2sinh(m * odd / 2))  # γ_odd > 0: Z_2 > 0
    l3 = jnp.sum(_log_2cosh(m * even / 2))
    # Z_4 = 2 sinh(x)·P with x = mγ_0/2, which vanishes at K_c. Written as
    # e^{c+x} − e^{c−x} (c = ln P − M) it stays smooth through x = 0, so jax.grad
    # gives the exact energy and specific heat at K_c too.
    log_p4 = jnp.sum(_log_abs_2sinh(m * even[1:] / 2))
    x = m * even[0] / 2
    big = jnp.maximum(jnp.maximum(l1, l2), l3)
    c = log_p4 - big
    rel = (
        jnp.exp(l1 - big)
        + jnp.exp(l2 - big)
        + jnp.exp(l3 - big)
        + jnp.exp(c + x)
        - jnp.exp(c - x)
    )
    return jnp.log(0.5) + 0.5 * m * n * jnp.log(2 * s2) + big + jnp.log(rel)


@functools.partial(jax.jit, static_argnames=("rows", "cols"))
def torus_energy(K, rows: int, cols: int) -> jax.Array:
    """Exact energy per spin u = −(1/N) ∂ln Z/∂K on the finite torus."""
    return -jax.grad(torus_log_partition)(jnp.asarray(K, float), rows, cols) / (
        rows * cols
    )


@functools.partial(jax.jit, static_argnames=("rows", "cols"))
def torus_specific_heat(K, rows: int, cols: int) -> jax.Array:
    """Exact specific heat per spin c = (K²/N) ∂²ln Z/∂K² on the finite torus."""
    K = jnp.asarray(K, float)
    d2 = jax.grad(jax.grad(torus_log_partition))(K, rows, cols)
    return K * K * d2 / (rows * cols)


def onsager_energy(K) -> np.ndarray:
    """Energy per spin of the infinite square lattice (Onsager 1944):
    $u = −\\coth 2K\\,[1 + \\tfrac{2}{π}(2\\tanh^2 2K − 1)\\,\\mathbf K(κ)]$,
    $κ = 2\\sinh 2K/\\cosh^2 2K$. u(K_c) = −√2."""
    K = np.asarray(K, float)
    kappa = 2 * np.sinh(2 * K) / np.cosh(2 * K) ** 2
    ell = scipy.special.ellipk(np.minimum(kappa**2, 1.0))
    term = (2 * np.tanh(2 * K) ** 2 - 1) * ell
    term = np.where(np.isclose(K, K_C, rtol=0, atol=1e-15), 0.0, term)
    return -1 / np.tanh(2 * K) * (1 + 2 / np.pi * term)


def onsager_magnetization(K) -> np.ndarray:
    """Spontaneous magnetisation (Onsager–Yang): $[1 − \\sinh^{-4} 2K]^{1/8}$ for
    K > K_c, 0 otherwise."""
    K = np.asarray(K, float)
    inner = 1 - np.sinh(2 * K) ** -4.0
    return np.where(K > K_C, np.abs(inner) ** 0.125, 0.0)


def enumerate_torus(K, rows: int, cols: int) -> dict[str, float]:
    """Brute-force averages over all 2^(rows·cols) states (rows·cols ≤ 20): ln Z and the
    exact ⟨e⟩, ⟨|m|⟩, ⟨m²⟩, ⟨m⁴⟩ per spin. The independent reference of the tests."""
    n = rows * cols
    if n > 20:
        raise ValueError(f"Enumeration of 2^{n} states is too large; use ≤ 20 spins.")
    states = np.array(list(itertools.product((-1, 1), repeat=n)), float).reshape(
        -1, rows, cols
    )
    bonds = (states * np.roll(states, 1, 1)).sum((1, 2)) + (
        states * np.roll(states, 1, 2)
    ).sum((1, 2))
    mag = states.sum((1, 2)) / n
    logw = K * bonds
    logz = scipy.special.logsumexp(logw)
    p = np.exp(logw - logz)
    return {
        "log_z": float(logz),
        "energy": float(-(p * bonds).sum() / n),
        "abs_m": float((p * np.abs(mag)).sum()),
        "m2": float((p * mag**2).sum()),
        "m4": float((p * mag**4).sum()),
    }


def chain_log_partition(K, n: int) -> jax.Array:
    """ln Z of the periodic 1D chain: $Z_N = (2\\cosh K)^N + (2\\sinh K)^N$."""
    n = int(n)
    if n < 1:
        raise ValueError(f"The chain needs n >= 1 spins, got {n}.")
    K = jnp.asarray(K, float)
    # (2 sinh K)^N is negative for K < 0 and odd N: add it with its sign,
    # ln Z = N ln 2cosh K + ln(1 ± tanh^N |K|), which is finite for every K.
    sign = jnp.where((K < 0) & (n % 2 == 1), -1.0, 1.0)
    return n * _log_2cosh(K) + jnp.log1p(sign * jnp.abs(jnp.tanh(K)) ** n)


def chain_correlation(K, n: int, r) -> jax.Array:
    """⟨s_0 s_r⟩ on the periodic chain of n spins: $(t^r + t^{n−r})/(1 + t^n)$, t = tanh K."""
    t = jnp.tanh(jnp.asarray(K, float))
    r = jnp.asarray(r)
    return (t**r + t ** (n - r)) / (1 + t**n)


def decimate_chain(K) -> jax.Array:
    """One exact b = 2 decimation of the 1D chain: tanh K′ = tanh²K, i.e.
    K′ = ½ ln cosh 2K (Kadanoff; Nelson & Fisher 1975)."""
    return 0.5 * jnp.log(jnp.cosh(2 * jnp.asarray(K, float)))


def chain_correlation_length(K) -> jax.Array:
    """ξ = −1/ln tanh K of the infinite chain (in lattice spacings); halves under
    [`dynlearn.rg.decimate_chain`][]."""
    return -1.0 / jnp.log(jnp.tanh(jnp.asarray(K, float)))
