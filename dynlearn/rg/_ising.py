"""Monte Carlo sampling of the 2D Ising model in JAX: checkerboard Metropolis, Wolff
and Swendsen–Wang cluster updates, with measurement after a fixed number of updates.

Conventions: spins ±1 on an L×L periodic lattice, H = −Σ_<ij> s_i s_j, coupling
K = J/T. Observables per spin: e = H/N, m = Σ s_i/N.

All samplers are pure functions of an explicit PRNG key, jit-compiled and
`vmap`-able over chains and couplings, with no Python loop on the hot path.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np


Sampler = Literal["metropolis", "wolff", "swendsen_wang"]
SAMPLERS = ("metropolis", "wolff", "swendsen_wang")


def _neighbour_sum(s):
    return (
        jnp.roll(s, 1, 0) + jnp.roll(s, -1, 0) + jnp.roll(s, 1, 1) + jnp.roll(s, -1, 1)
    )


def energy_per_spin(s) -> jax.Array:
    """e = −(1/N) Σ_<ij> s_i s_j on the periodic lattice (each bond once)."""
    return -jnp.mean(s * (jnp.roll(s, 1, 0) + jnp.roll(s, 1, 1)))


def magnetization(s) -> jax.Array:
    """m = (1/N) Σ_i s_i."""
    return jnp.mean(s)


def metropolis_sweep(key, s, K):
    """One checkerboard Metropolis sweep: every site of one sublattice, then the other,
    each flipped with probability min(1, e^{−2K s_i h_i}) (h_i: neighbour sum)."""
    L = s.shape[0]
    parity = (jnp.arange(L)[:, None] + jnp.arange(s.shape[1])[None, :]) % 2
    # Each site is visited once per sweep, so one uniform per site serves both
    # half-sweeps (random numbers dominate the cost on a CPU). s_i h_i ∈ {−4, …, 4}:
    # flips with s_i h_i ≤ 0 are always accepted, the others with e^{−4K} or e^{−8K}.
    u = jr.uniform(key, s.shape, s.dtype)
    K = jnp.asarray(K, s.dtype)
    p2, p4 = jnp.exp(-4.0 * K), jnp.exp(-8.0 * K)
    for colour in (0, 1):
        sh = s * _neighbour_sum(s)
        accept = (sh <= 0) | (u < jnp.where(sh < 3, p2, p4))
        s = jnp.where((parity == colour) & accept, -s, s)
    return s


def _grow(key, s, seed_mask, p_add, max_iters):
    """Grow a Fortuin–Kasteleyn cluster from `seed_mask`: each bond between a newly
    added site and an equal, not-yet-clustered neighbour is activated once, with
    probability p_add (a breadth-first sweep, all frontier sites in parallel)."""

    def cond(c):
        i, cluster, frontier, key = c
        return jnp.any(frontier) & (i < max_iters)

    def body(c):
        i, cluster, frontier, key = c
        key, *ks = jr.split(key, 5)
        new = jnp.zeros_like(cluster)
        for k, (shift, axis) in zip(ks, ((1, 0), (-1, 0), (1, 1), (-1, 1))):
            from_nb = jnp.roll(frontier, shift, axis)
            same = jnp.roll(s, shift, axis) == s
            bond = jr.uniform(k, s.shape, s.dtype) < p_add
            new = new | (from_nb & same & bond)
        new = new & ~cluster
        return i + 1, cluster | new, new, key

    init = (0, seed_mask, seed_mask, key)
    return jax.lax.while_loop(cond, body, init)[1]


def wolff_update(key, s, K):
    """One Wolff single-cluster update (Wolff 1989): grow a cluster from a random seed
    with bond probability 1 − e^{−2K} and flip it."""
    kseed, kgrow = jr.split(key)
    idx = jr.randint(kseed, (), 0, s.size)
    seed = jnp.zeros(s.size, bool).at[idx].set(True).reshape(s.shape)
    cluster = _grow(kgrow, s, seed, 1.0 - jnp.exp(-2.0 * K), s.size + 1)
    return jnp.where(cluster, -s, s)


def swendsen_wang_update(key, s, K):
    """One Swendsen–Wang update (1987): activate every satisfied bond with probability
    1 − e^{−2K}, label connected clusters (minimum-label propagation) and flip each
    with probability 1/2."""
    kb, kf = jr.split(key)
    p = 1.0 - jnp.exp(-2.0 * K)
    b0, b1 = jr.uniform(kb, (2,) + s.shape, s.dtype) < p
    bond_down = b0 & (s == jnp.roll(s, -1, 0))  # bond (i, j)–(i+1, j)
    bond_right = b1 & (s == jnp.roll(s, -1, 1))  # bond (i, j)–(i, j+1)
    n = s.size
    labels0 = jnp.arange(n).reshape(s.shape)
    big = n

    def relax(lab):
        cand = jnp.stack(
            [
                lab,
                jnp.where(bond_down, jnp.roll(lab, -1, 0), big),
                jnp.where(jnp.roll(bond_down, 1, 0), jnp.roll(lab, 1, 0), big),
                jnp.where(bond_right, jnp.roll(lab, -1, 1), big),
                jnp.where(jnp.roll(bond_right, 1, 1), jnp.roll(lab, 1, 1), big),
            ]
        )
        new = jnp.min(cand, axis=0)
        # pointer jumping: adopt the label of your label's site
        return new.ravel()[new.ravel()].reshape(s.shape)

    def cond(c):
        lab, prev = c
        return jnp.any(lab != prev)

    def body(c):
        lab, _ = c
        return relax(lab), lab

    labels = jax.lax.while_loop(cond, body, (relax(labels0), labels0))[0]
    flip = jr.bernoulli(kf, 0.5, (n,))[labels]
    return jnp.where(flip, -s, s)


_UPDATES = {
    "metropolis": metropolis_sweep,
    "wolff": wolff_update,
    "swendsen_wang": swendsen_wang_update,
}


class IsingSamples(NamedTuple):
    """Measurements of [`dynlearn.rg.sample_ising`][]: arrays of shape
    `(num_chains, num_measurements)`, and the final configurations."""

    energy: jax.Array
    magnetization: jax.Array
    spins: jax.Array


def sample_ising(
    key,
    L: int,
    K: float,
    *,
    sampler: Sampler = "wolff",
    num_chains: int = 8,
    num_measurements: int = 1000,
    updates_per_measurement: int = 1,
    thermalization: int = 500,
    start: Literal["hot", "cold"] = "hot",
) -> IsingSamples:
    """Sample the 2D Ising model on an L×L torus at coupling K.

    Runs `num_chains` independent chains (vmapped); after `thermalization` updates,
    measures e and m every `updates_per_measurement` updates (a *fixed* number: a
    stopping rule that depends on the state, such as "after N flipped spins", biases
    cluster-algorithm estimates). One update is a Metropolis sweep, one Wolff cluster
    flip, or one Swendsen–Wang sweep. Jit-compiled; vmap over K for temperature scans.
    """
    if sampler not in _UPDATES:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    for name, v in (
        ("L", L),
        ("num_chains", num_chains),
        ("num_measurements", num_measurements),
        ("updates_per_measurement", updates_per_measurement),
    ):
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if L < 2:
        raise ValueError(f"L must be >= 2, got {L}.")
    if not isinstance(thermalization, int | np.integer) or thermalization < 0:
        raise ValueError(
            f"thermalization must be a non-negative integer, got {thermalization!r}."
        )
    if not isinstance(K, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(K))):
        raise ValueError(f"The coupling K = J/(k_B T) must be finite, got {K!r}.")
    if start not in ("hot", "cold"):
        raise ValueError(f"start must be 'hot' or 'cold', got {start!r}.")
    return _sample(
        key,
        jnp.asarray(K, float),
        L=int(L),
        sampler=sampler,
        num_chains=int(num_chains),
        num_measurements=int(num_measurements),
        every=int(updates_per_measurement),
        therm=int(thermalization),
        cold=start == "cold",
    )


@jax.jit(
    static_argnames=(
        "L",
        "sampler",
        "num_chains",
        "num_measurements",
        "every",
        "therm",
        "cold",
    )
)
def _sample(key, K, *, L, sampler, num_chains, num_measurements, every, therm, cold):
    update = _UPDATES[sampler]
    dtype = K.dtype

    def chain(key):
        kinit, ktherm, krun = jr.split(key, 3)
        if cold:
            s = jnp.ones((L, L), dtype)
        else:
            s = jnp.where(jr.bernoulli(kinit, 0.5, (L, L)), 1.0, -1.0).astype(dtype)

        def step(s, k):
            return update(k, s, K), None

        s, _ = jax.lax.scan(step, s, jr.split(ktherm, therm)) if therm else (s, None)

        def measure(s, k):
            s, _ = jax.lax.scan(step, s, jr.split(k, every))
            return s, (energy_per_spin(s), magnetization(s))

        s, (e, m) = jax.lax.scan(measure, s, jr.split(krun, num_measurements))
        return e, m, s

    e, m, s = jax.vmap(chain)(jr.split(key, num_chains))
    return IsingSamples(e, m, s)


class Estimate(NamedTuple):
    """A Monte Carlo estimate: `mean ± error` (one standard error)."""

    mean: float
    error: float


def chain_estimate(x) -> Estimate:
    """Mean over chains and measurements of `x` (shape `(chains, measurements)`), with
    the standard error from the spread of the independent chain means (which accounts
    for autocorrelation within a chain). Needs at least 2 chains."""
    x = np.asarray(x, float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(
            f"Expected shape (num_chains >= 2, num_measurements), got {x.shape}."
        )
    means = x.mean(axis=1)
    return Estimate(float(means.mean()), float(means.std(ddof=1) / np.sqrt(len(means))))


def integrated_autocorrelation_time(x, window: float = 5.0) -> float:
    """τ_int = ½ + Σ_{t≥1} ρ(t) of a time series (or chains × time, averaged), with
    Sokal's automatic window: the smallest W with W ≥ `window`·τ_int(W)."""
    x = np.atleast_2d(np.asarray(x, float))
    x = x - x.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, 2 * n, axis=1)
    acf = np.fft.irfft(f * np.conj(f), axis=1)[:, :n].mean(axis=0)
    if acf[0] == 0:
        return 0.5
    rho = acf / acf[0]
    tau = 0.5 + np.cumsum(rho[1:])
    for w in range(1, n - 1):
        if w >= window * tau[w - 1]:
            return float(tau[w - 1])
    return float(tau[-1])


def binder_cumulant(m) -> Estimate:
    """U₄ = 1 − ⟨m⁴⟩/(3⟨m²⟩²) with a jackknife error over chains (m: chains × meas.)."""
    m = np.asarray(m, float)
    m2, m4 = (m**2).mean(axis=1), (m**4).mean(axis=1)
    u = lambda a, b: 1 - b.mean() / (3 * a.mean() ** 2)
    n = len(m2)
    jack = np.array([u(np.delete(m2, i), np.delete(m4, i)) for i in range(n)])
    return Estimate(float(u(m2, m4)), float(np.sqrt((n - 1) * jack.var())))
