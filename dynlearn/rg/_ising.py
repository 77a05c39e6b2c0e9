"""Monte Carlo sampling of the 2D (and 1D) Ising model in JAX: checkerboard Metropolis,
Wolff and Swendsen–Wang cluster updates, with measurement after a fixed number of
updates.

Conventions: spins ±1 on an L×L periodic lattice (or a ring of L sites: a 1-D array),
H = −Σ_<ij> s_i s_j, coupling K = J/T. Observables per spin: e = H/N, m = Σ s_i/N.
Every function acts on the lattice's own dimension, 1 or 2 (the array's ndim).

All samplers are pure functions of an explicit PRNG key, jit-compiled and
`vmap`-able over chains and couplings, with no Python loop on the hot path.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._estimate import Estimate
from .._misc import check_integer


Sampler = Literal["metropolis", "wolff", "swendsen_wang"]
SAMPLERS = ("metropolis", "wolff", "swendsen_wang")


_DIRECTIONS = {1: ((1, 0), (-1, 0)), 2: ((1, 0), (-1, 0), (1, 1), (-1, 1))}


def energy_per_spin(s) -> jax.Array:
    """e = −(1/N) Σ_<ij> s_i s_j on the periodic lattice or ring (each bond once)."""
    return -jnp.mean(s * sum(jnp.roll(s, 1, axis) for axis in range(s.ndim)))


def magnetization(s) -> jax.Array:
    """m = (1/N) Σ_i s_i."""
    return jnp.mean(s)


def _mix32(x):
    """A bijective 32-bit avalanche mixer ("lowbias32", C. Wellons' hash-prospector:
    xor-shift/multiply rounds with measured avalanche bias ≈ 0.17)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _counter_bits(key, shape):
    """32 random bits per entry of `shape` from a keyed counter-based generator.

    Two rounds of [`_mix32`][] over the counter 0, 1, …, keyed by 64 bits drawn from
    `key` with `jax.random` (threefry), i.e. u_n = mix(mix(n + k₀) ⊕ k₁): one fresh
    key per call, so outputs for different calls are independent as far as the keys
    are. A non-cryptographic generator in the spirit of counter-based RNGs (Salmon et
    al., SC'11): 0.63 ns per word against 8.3 ns for `jax.random.bits` (threefry) on
    this project's 2-core CPU (`ising_benchmark`); the generator's own statistics and
    the Metropolis physics (enumeration, Kaufman) are tested.
    """
    k = jr.bits(key, (2,), jnp.uint32)
    n = jnp.arange(int(np.prod(shape)), dtype=jnp.uint32).reshape(shape)
    return _mix32(_mix32(n + k[0]) ^ k[1])


def _acceptance(K):
    """(sign of K as int8, 32-bit thresholds t₂, t₄) for checkerboard Metropolis.

    With x = sign(K)·s_i h_i ∈ {−4, −2, 0, 2, 4}, a flip has probability
    min(1, e^{−2K s_i h_i}) = 1 for x ≤ 0 and e^{−2|K|x} for x = 2, 4; it is accepted iff
    x ≤ 0 or bits < t_x, t_x = ⌊e^{−2|K|x} 2³²⌋, so with uniform 32-bit words the
    probability is exact to 2⁻³² beyond the float rounding of the exponential. K = 0
    gives x = 0: every flip is accepted (on the ring, x = 0 flips get ½ instead; see
    `_half_sweep_1d`)."""
    K = jnp.asarray(K)
    p = jnp.exp(-2.0 * jnp.abs(K) * jnp.array([2.0, 4.0], K.dtype))
    t = jnp.where(p < 1.0, jnp.floor(p * 2.0**32), 0.0).astype(jnp.uint32)
    return jnp.sign(K).astype(jnp.int8), t[0], t[1]


def _checkerboard_split(s):
    """(black, white) sublattices of an L×L' lattice (L, L' even) as (L, L'/2) arrays:
    black[i, c] = s[i, 2c + i mod 2], white[i, c] = s[i, 2c + 1 − i mod 2]; of a ring,
    the even and the odd sites."""
    if s.ndim == 1:
        return s[0::2], s[1::2]
    pairs = s.reshape(s.shape[0], s.shape[1] // 2, 2)
    odd = (jnp.arange(s.shape[0]) % 2 == 1)[:, None]
    return (
        jnp.where(odd, pairs[..., 1], pairs[..., 0]),
        jnp.where(odd, pairs[..., 0], pairs[..., 1]),
    )


def _checkerboard_merge(black, white):
    if black.ndim == 1:
        return jnp.stack([black, white], axis=-1).reshape(-1)
    odd = (jnp.arange(black.shape[0]) % 2 == 1)[:, None]
    pairs = jnp.stack(
        [jnp.where(odd, white, black), jnp.where(odd, black, white)], axis=-1
    )
    return pairs.reshape(black.shape[0], 2 * black.shape[1])


def _half_sweep_1d(S, O, bits, acceptance, black):
    """Ring: black[i] = s[2i] has neighbours white[i − 1], white[i]; white[i] = s[2i+1]
    has black[i], black[i + 1]. Zero-energy moves (x = 0) are accepted with
    probability ½, which keeps detailed balance (a(ΔE)/a(−ΔE) = e^{−ΔE} holds for any
    a(0)); with a(0) = 1 the sublattice update moves every domain wall
    deterministically, two sites per sweep, and the ring hardly mixes."""
    sign, t2, _ = acceptance
    x = sign * S * (O + jnp.roll(O, 1 if black else -1))
    accept = (x < 0) | (bits < jnp.where(x == 0, jnp.uint32(1 << 31), t2))
    return jnp.where(accept, -S, S)


def _half_sweep(S, O, bits, acceptance, black):
    """Metropolis update of every site of one colour (S) given the other (O)."""
    if S.ndim == 1:
        return _half_sweep_1d(S, O, bits, acceptance, black)
    sign, t2, t4 = acceptance
    odd = (jnp.arange(S.shape[0]) % 2 == 1)[:, None]
    # the horizontal neighbours of S[i, c] are O[i, c] and O[i, c ± 1], the sign set
    # by the row parity and the colour (see _checkerboard_split)
    left, right = jnp.roll(O, 1, 1), jnp.roll(O, -1, 1)
    side = jnp.where(odd, right, left) if black else jnp.where(odd, left, right)
    x = sign * S * (jnp.roll(O, 1, 0) + jnp.roll(O, -1, 0) + O + side)
    accept = (x <= 0) | (bits < jnp.where(x > 2, t4, t2))
    return jnp.where(accept, -S, S)


def metropolis_sweep(
    s, K, num_sweeps: int = 1, rng: Literal["counter", "jax"] = "counter", *, key
) -> jax.Array:
    """`num_sweeps` checkerboard Metropolis sweeps of one L×L' periodic lattice (or one
    ring of L sites, for a 1-D `s`).

    Each sweep updates every site of one sublattice, then the other, flipping s_i
    with probability min(1, e^{−2K s_i h_i}) (h_i: neighbour sum; any sign of K). The
    lattice is held as two int8 sublattice arrays inside the sweeps (half the work of
    a masked update); L and L' must be even, or the periodic lattice is not bipartite
    (in 1D, the even and odd sites of a ring of even length; there zero-energy flips
    are accepted with probability ½ instead of 1, see `_half_sweep_1d`).
    (In 2D at K = 0 every flip is accepted and a sweep maps s to −s: Metropolis does
    not mix at infinite temperature, where a random configuration is an exact sample.)

    Random numbers: one 32-bit word per site and sweep, compared with integer
    thresholds. `rng="counter"` (default) draws them from a keyed counter-based
    generator seeded by `key` (two rounds of a 32-bit avalanche mixer; several times
    faster than threefry on a CPU, where random numbers dominate the cost);
    `rng="jax"` uses `jax.random.bits` (threefry, or the key's implementation).
    Returns the lattice in the dtype of `s`.
    """
    s = jnp.asarray(s)
    if s.ndim not in (1, 2) or any(n % 2 for n in s.shape):
        raise ValueError(
            "Checkerboard Metropolis needs a ring or an L×L' lattice with even sides (an "
            f"odd periodic lattice is not bipartite); got shape {s.shape}. Use "
            "sampler='wolff' or 'swendsen_wang' for odd sizes."
        )
    if rng not in ("counter", "jax"):
        raise ValueError(f"rng must be 'counter' or 'jax', got {rng!r}.")
    check_integer("num_sweeps", num_sweeps)
    draw = _counter_bits if rng == "counter" else partial(jr.bits, dtype=jnp.uint32)
    K = jnp.asarray(K, jnp.result_type(float, s.dtype))
    acceptance = _acceptance(K)
    half_shape = (2,) + s.shape[:-1] + (s.shape[-1] // 2,)

    def sweep(bw, k):
        b, w = bw
        bits = draw(k, half_shape)
        b = _half_sweep(b, w, bits[0], acceptance, black=True)
        w = _half_sweep(w, b, bits[1], acceptance, black=False)
        return (b, w), None

    bw = _checkerboard_split(s.astype(jnp.int8))
    keys = jr.split(key, num_sweeps) if num_sweeps > 1 else key[None]
    b, w = jax.lax.scan(sweep, bw, keys)[0]
    return _checkerboard_merge(b, w).astype(s.dtype)


def _grow(key, s, seed_mask, p_add, max_iters):
    """Grow a Fortuin–Kasteleyn cluster from `seed_mask`: each bond between a newly
    added site and an equal, not-yet-clustered neighbour is activated once, with
    probability p_add (a breadth-first sweep, all frontier sites in parallel)."""

    def cond(c):
        i, cluster, frontier, key = c
        return jnp.any(frontier) & (i < max_iters)

    def body(c):
        i, cluster, frontier, key = c
        directions = _DIRECTIONS[s.ndim]
        key, *ks = jr.split(key, len(directions) + 1)
        new = jnp.zeros_like(cluster)
        for k, (shift, axis) in zip(ks, directions):
            from_nb = jnp.roll(frontier, shift, axis)
            same = jnp.roll(s, shift, axis) == s
            bond = jr.uniform(k, s.shape, s.dtype) < p_add
            new = new | (from_nb & same & bond)
        new = new & ~cluster
        return i + 1, cluster | new, new, key

    init = (0, seed_mask, seed_mask, key)
    return jax.lax.while_loop(cond, body, init)[1]


def wolff_update(s, K, *, key):
    """One Wolff single-cluster update (Wolff 1989): grow a cluster from a random seed
    with bond probability 1 − e^{−2K} and flip it."""
    kseed, kgrow = jr.split(key)
    idx = jr.randint(kseed, (), 0, s.size)
    seed = jnp.zeros(s.size, bool).at[idx].set(True).reshape(s.shape)
    cluster = _grow(kgrow, s, seed, 1.0 - jnp.exp(-2.0 * K), s.size + 1)
    return jnp.where(cluster, -s, s)


def swendsen_wang_update(s, K, *, key):
    """One Swendsen–Wang update (1987): activate every satisfied bond with probability
    1 − e^{−2K}, label connected clusters (minimum-label propagation) and flip each
    with probability 1/2."""
    kb, kf = jr.split(key)
    p = 1.0 - jnp.exp(-2.0 * K)
    active = jr.uniform(kb, (s.ndim,) + s.shape, s.dtype) < p
    # bonds[a]: the bond from each site to its + neighbour along axis a
    bonds = [active[a] & (s == jnp.roll(s, -1, a)) for a in range(s.ndim)]
    n = s.size
    labels0 = jnp.arange(n).reshape(s.shape)
    big = n

    def relax(lab):
        cand = [lab]
        for a, bond in enumerate(bonds):
            cand.append(jnp.where(bond, jnp.roll(lab, -1, a), big))
            cand.append(jnp.where(jnp.roll(bond, 1, a), jnp.roll(lab, 1, a), big))
        new = jnp.min(jnp.stack(cand), axis=0)
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
    """Measurements of [`dynlearn.rg.sample_ising`][]: `energy` and `magnetization`
    per spin, arrays of shape `(num_chains, num_measurements)`; `spins`, the final
    configurations `(num_chains, L, L)`; and `configurations`, every measured
    configuration `(num_chains, num_measurements, L, L)` as int8 (only with
    `keep_configurations=True`, else None). On a ring (`dimension=1`) the lattice
    axes (L, L) are one axis (L,)."""

    energy: jax.Array
    magnetization: jax.Array
    spins: jax.Array
    configurations: jax.Array | None = None


def sample_ising(
    L: int,
    K: float,
    *,
    key,
    sampler: Sampler = "wolff",
    num_chains: int = 8,
    num_measurements: int = 1000,
    updates_per_measurement: int = 1,
    thermalization: int = 500,
    start: Literal["hot", "cold"] = "hot",
    keep_configurations: bool = False,
    dimension: Literal[1, 2] = 2,
) -> IsingSamples:
    """Sample the 2D Ising model on an L×L torus (or, with `dimension=1`, the ring of L
    spins) at coupling K.

    Runs `num_chains` independent chains (vmapped); after `thermalization` updates,
    measures e and m every `updates_per_measurement` updates (a *fixed* number: a
    stopping rule that depends on the state, such as "after N flipped spins", biases
    cluster-algorithm estimates). One update is a Metropolis sweep, one Wolff cluster
    flip, or one Swendsen–Wang sweep. Jit-compiled; vmap over K for temperature scans.
    `start="cold"` starts every chain from all spins up, `"hot"` from random spins.
    With `keep_configurations=True` every measured configuration is returned too
    (int8; num_chains·num_measurements·L^d bytes), e.g. as RBM training data. For
    `dimension=1` the configuration arrays have one lattice axis (L,) instead of (L, L).

    Metropolis (any sign of K) needs an even L; the cluster algorithms (any L ≥ 2)
    need a ferromagnet, K ≥ 0.
    """
    if sampler not in _UPDATES:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    for name, v in (
        ("L", L),
        ("num_chains", num_chains),
        ("num_measurements", num_measurements),
        ("updates_per_measurement", updates_per_measurement),
    ):
        check_integer(name, v)
    if L < 2:
        raise ValueError(f"L must be >= 2, got {L}.")
    if dimension not in (1, 2):
        raise ValueError(
            f"dimension must be 1 (a ring) or 2 (a torus), got {dimension!r}."
        )
    if sampler == "metropolis" and L % 2:
        raise ValueError(
            f"Checkerboard Metropolis needs an even L (got L = {L}): an odd periodic "
            "lattice is not bipartite. Use sampler='wolff' or 'swendsen_wang'."
        )
    check_integer("thermalization", thermalization, 0)
    if not isinstance(K, jax.core.Tracer):
        if not np.all(np.isfinite(np.asarray(K))):
            raise ValueError(f"The coupling K = J/(k_B T) must be finite, got {K!r}.")
        if sampler != "metropolis" and np.any(np.asarray(K) < 0):
            raise ValueError(
                f"The {sampler} cluster algorithm needs a ferromagnet, K >= 0; got "
                f"K = {K!r}. Use sampler='metropolis' for K < 0."
            )
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
        keep=bool(keep_configurations),
        dim=int(dimension),
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
        "keep",
        "dim",
    )
)
def _sample(
    key, K, *, L, sampler, num_chains, num_measurements, every, therm, cold, keep, dim
):
    update = _UPDATES[sampler]
    dtype = K.dtype

    def advance(s, key, n):
        """n updates of one chain."""
        if sampler == "metropolis":  # sweeps fused: the sublattices stay split
            return metropolis_sweep(s, K, num_sweeps=n, key=key)
        return jax.lax.scan(
            lambda s, k: (update(s, K, key=k), None), s, jr.split(key, n)
        )[0]

    def chain(key):
        kinit, ktherm, krun = jr.split(key, 3)
        if cold:
            s = jnp.ones((L,) * dim, dtype)
        else:
            s = jnp.where(jr.bernoulli(kinit, 0.5, (L,) * dim), 1.0, -1.0).astype(dtype)
        if therm:
            s = advance(s, ktherm, therm)

        def measure(s, k):
            s = advance(s, k, every)
            out = (energy_per_spin(s), magnetization(s))
            return s, out + ((s.astype(jnp.int8),) if keep else ())

        s, out = jax.lax.scan(measure, s, jr.split(krun, num_measurements))
        return *out, s

    e, m, *configs, s = jax.vmap(chain)(jr.split(key, num_chains))
    return IsingSamples(e, m, s, configs[0] if keep else None)


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
