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


@functools.partial(jax.jit, static_argnames=("m", "n"))
def _kaufman(K, m: int, n: int) -> tuple[jax.Array, jax.Array]:
    """(ln Z, condition number of Kaufman's four-term sum) on the m × n torus; see
    [`dynlearn.rg.torus_log_partition`][]."""
    K = jnp.asarray(K, dtype=float)
    s = jnp.sinh(2 * K)
    ls = np.arange(2 * n)
    theta = np.pi * ls / n
    safe = (ls != 0) & (ls != n)  # l with |q_l| < p_l for every real K
    sin2, cos2 = np.sin(theta / 2) ** 2, np.cos(theta / 2) ** 2
    disc = ((1 - s) ** 2 + 2 * s * sin2) * ((1 + s) ** 2 - 2 * s * cos2)
    disc = jnp.where(safe, disc, 1.0)  # placeholder at l = 0, n (handled below)
    p2 = 2 * (1 + s * s - s * np.cos(theta)) + 2 * jnp.sqrt(disc)
    ratio_m = (2 * s / p2) ** m  # (q_l/p_l)^m, |q_l/p_l| < 1
    log_pm = 0.5 * m * jnp.log(p2)
    odd = jnp.asarray(safe & (ls % 2 == 1))
    even = jnp.asarray(safe & (ls % 2 == 0))

    def log_prod(mask, sign):
        terms = log_pm + jnp.log1p(sign * jnp.where(mask, ratio_m, 0.0))
        return jnp.sum(jnp.where(mask, terms, 0.0))

    def special(p, q):
        # p^m ± q^m = e^{m M} [(p e^{−M})^m ± (q e^{−M})^m], M = ln max(|p|, |q|)
        big = jnp.maximum(jnp.abs(p), jnp.abs(q))
        a, b = (p / big) ** m, (q / big) ** m
        return m * jnp.log(big), a + b, a - b

    e2 = jnp.exp(2 * K)
    em2 = jnp.exp(-2 * K)
    l0, plus0, minus0 = special(e2 - 1, 1 + em2)  # l = 0 (even set)
    ln_, plus_n, minus_n = special(e2 + 1, 1 - em2)  # l = n
    # the four products ∏_l (p^m ± q^m) over odd / even l as (log of the safe part,
    # linear factor of l = 0 and l = n)
    n_odd = n % 2 == 1
    logs, lins = [], []
    for parity_mask, has_n in ((odd, n_odd), (even, not n_odd)):
        for sign in (1.0, -1.0):
            log_part = log_prod(parity_mask, sign)
            lin = jnp.ones_like(K)
            if parity_mask is even:
                log_part = log_part + l0
                lin = lin * (plus0 if sign > 0 else minus0)
            if has_n:
                log_part = log_part + ln_
                lin = lin * (plus_n if sign > 0 else minus_n)
            logs.append(log_part)
            lins.append(lin)
    logs = jnp.stack(logs)
    top = jnp.max(logs)
    terms = jnp.exp(logs - top) * jnp.stack(lins)
    rel = jnp.sum(terms)
    # condition number Σ|terms| / Z of the four-term sum: ~1 without frustration,
    # ∝ e^{2|K|·(bonds of the frustrating seam)} for an odd side and K < 0
    cancellation = jnp.sum(jnp.abs(terms)) / rel
    return jnp.log(0.5) + top + jnp.log(rel), cancellation


_MAX_CANCELLATION = 1e3
"""Largest condition number Σ|Z_i|/Z of Kaufman's sum accepted: ln Z loses ≈ 1e-15 × it."""


def _torus_size(rows, cols) -> tuple[int, int]:
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 2:
            raise ValueError(f"The torus needs integer {name} >= 2, got {v!r}.")
    return int(rows), int(cols)


def _checked(value, cancellation, K, m, n):
    """NaN where Kaufman's sum has cancelled catastrophically; a ValueError instead
    when K is concrete (only frustrated tori, an odd side and K < 0, get there)."""
    bad = cancellation > _MAX_CANCELLATION
    if not isinstance(bad, jax.core.Tracer) and bool(bad):
        raise ValueError(
            f"The {m}×{n} torus at K = {float(K):.6g} is a frustrated antiferromagnet "
            "(an odd side with K < 0): Kaufman's four terms cancel to one part in "
            f"{float(cancellation):.2g} there, so the exact formula has lost its "
            "digits. Use rg.enumerate_torus (up to 20 spins), a smaller |K|, or a "
            "torus with even sides (bipartite: Z(−K) = Z(K))."
        )
    return jnp.where(bad, jnp.nan, value)


def torus_log_partition(K, rows: int, cols: int) -> jax.Array:
    """ln Z of the Ising model on a `rows × cols` periodic lattice (Kaufman 1949;
    Ferdinand & Fisher 1969, Phys. Rev. 185, 832, Eqs. 2.1–2.5), for any real K:
    ferromagnet (K > 0), infinite temperature (K = 0, ln Z = N ln 2) and
    antiferromagnet (K < 0, frustrated when a side is odd).

    Kaufman's $Z = \\tfrac12 (2\\sinh 2K)^{mn/2} \\sum_{i=1}^4 Z_i$ with
    $Z_{1,2} = \\prod_{r=0}^{n-1} 2\\{\\cosh,\\sinh\\}(m γ_{2r+1}/2)$,
    $Z_{3,4}$ the same with $γ_{2r}$, $\\cosh γ_l = \\cosh 2K \\coth 2K − \\cos(πl/n)$ and
    the signed $γ_0 = 2K + \\ln\\tanh K$, is evaluated as
    $Z = \\tfrac12 \\sum_{\\pm,\\ \\text{parity}} \\prod_l (p_l^m \\pm q_l^m)$ with
    $p_l = (2\\sinh 2K\\, e^{γ_l})^{1/2}$, $q_l = (2\\sinh 2K\\, e^{-γ_l})^{1/2}$,
    $p_l q_l = 2\\sinh 2K$. In these variables every factor is a real-analytic function
    of K on the whole real line, so the formula continues from K > 0 to K ≤ 0 (Z is an
    entire function of K):
    $p_0 = e^{2K} − 1$, $q_0 = 1 + e^{−2K}$; $p_n = e^{2K} + 1$, $q_n = 1 − e^{−2K}$; and
    for the other l, $p_l^2 = 2(1 + s^2 − s\\cos θ_l) + 2\\sqrt{D_l} > 0$ with $s = \\sinh 2K$,
    $θ_l = πl/n$, $D_l = [(1 − s)^2 + 2s\\sin^2\\tfrac{θ_l}{2}]
    [(1 + s)^2 − 2s\\cos^2\\tfrac{θ_l}{2}] > 0$, and $q_l = 2s/p_l$ (negative for K < 0).
    Computed in log space with signs, the factors that can vanish (l = 0 at K = K_c,
    l = n at K = −K_c) kept linear, so it neither overflows nor loses the cancellation
    near ±K_c; exact to round-off for any size, and differentiable in K (`jax.grad`
    gives energies, also at K = 0 and ±K_c). On even×even tori Z(−K) = Z(K) (flip one
    sublattice).

    **Frustration.** With an odd side and K < 0 the ground state is frustrated and Z
    is exponentially smaller than Kaufman's individual terms, which then cancel (by
    ~e^{2|K|·(number of bonds across the torus)}). Up to a cancellation of 1e3
    (≈ 1e-15 × it lost in ln Z, measured; e.g. 3×3 at K = −0.6, 25) the result is
    returned; beyond it a ValueError names the alternative
    ([`dynlearn.rg.enumerate_torus`][]), or, under a transformation such as `jax.jit`
    where K is traced, the result is NaN. K is a scalar.
    """
    m, n = _torus_size(rows, cols)
    value, cancellation = _kaufman(K, m, n)
    return _checked(value, cancellation, K, m, n)


@functools.partial(jax.jit, static_argnames=("m", "n", "order"))
def _derivative(K, m: int, n: int, order: int):
    """(∂^order ln Z/∂K^order, cancellation) for order 1 or 2."""
    d1 = jax.grad(lambda k: _kaufman(k, m, n), has_aux=True)
    if order == 1:
        return d1(K)
    (_, cancellation), (d2, _) = jax.jvp(d1, (K,), (jnp.ones_like(K),))
    return d2, cancellation


def torus_energy(K, rows: int, cols: int) -> jax.Array:
    """Exact energy per spin u = −(1/N) ∂ln Z/∂K on the finite torus, for any real K
    (u(0) = 0); differentiable. Frustrated tori as in
    [`dynlearn.rg.torus_log_partition`][]."""
    m, n = _torus_size(rows, cols)
    d1, cancellation = _derivative(jnp.asarray(K, float), m, n, 1)
    return _checked(-d1 / (m * n), cancellation, K, m, n)


def torus_specific_heat(K, rows: int, cols: int) -> jax.Array:
    """Exact specific heat per spin c = (K²/N) ∂²ln Z/∂K² on the finite torus, for any
    real K (c(0) = 0); differentiable. Frustrated tori as in
    [`dynlearn.rg.torus_log_partition`][]."""
    m, n = _torus_size(rows, cols)
    K = jnp.asarray(K, float)
    d2, cancellation = _derivative(K, m, n, 2)
    return _checked(K * K * d2 / (m * n), cancellation, K, m, n)


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
