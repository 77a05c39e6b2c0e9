"""Exact Ising references against brute force and published values; samplers against
exact enumeration and Kaufman's finite-lattice energy."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import rg


@pytest.mark.parametrize("rows, cols", [(3, 4), (4, 3), (4, 4), (2, 5)])
@pytest.mark.parametrize("K", [0.2, rg.K_C, 0.6])
def test_kaufman_matches_enumeration(rows, cols, K):
    exact = rg.enumerate_torus(K, rows, cols)
    np.testing.assert_allclose(
        rg.torus_log_partition(K, rows, cols), exact["log_z"], rtol=1e-13
    )
    np.testing.assert_allclose(
        rg.torus_energy(K, rows, cols), exact["energy"], rtol=1e-12
    )


def test_kaufman_published_values():
    # rbm_rg notes §5.2 (verified there by transfer matrices and brute force).
    np.testing.assert_allclose(
        rg.torus_log_partition(rg.K_C, 4, 4), 15.521915458755284, rtol=1e-14
    )
    np.testing.assert_allclose(
        rg.torus_energy(0.408, 40, 40), -1.1518211508, atol=1e-10
    )
    np.testing.assert_allclose(
        rg.torus_specific_heat(0.408, 40, 40), 0.9946704747, atol=1e-10
    )
    # Exactly at K_c, where the γ₀ factor vanishes:
    np.testing.assert_allclose(rg.torus_energy(rg.K_C, 16, 16), -1.4530649, atol=1e-7)
    np.testing.assert_allclose(
        rg.torus_specific_heat(rg.K_C, 16, 16), 1.4987050, atol=1e-7
    )
    np.testing.assert_allclose(
        rg.torus_specific_heat(rg.K_C, 64, 64), 2.1922114, atol=1e-7
    )
    assert np.isfinite(rg.torus_log_partition(0.2, 1000, 1000))  # no overflow


def test_specific_heat_is_the_energy_fluctuation():
    # c = K² N (⟨e²⟩ − ⟨e⟩²), by enumeration of the 4×4 torus.
    K = 0.35
    states = np.array(list(itertools.product((-1, 1), repeat=16)), float).reshape(
        -1, 4, 4
    )
    bonds = (states * np.roll(states, 1, 1)).sum((1, 2)) + (
        states * np.roll(states, 1, 2)
    ).sum((1, 2))
    w = np.exp(K * bonds - np.max(K * bonds))
    w /= w.sum()
    e = -bonds / 16
    c = K**2 * 16 * ((w * e**2).sum() - (w * e).sum() ** 2)
    np.testing.assert_allclose(rg.torus_specific_heat(K, 4, 4), c, rtol=1e-11)


def _bond_moments(K, rows, cols):
    """(ln Z, ⟨e⟩, c, Var(bonds)) by enumeration; c = K² N Var(e) per spin."""
    n = rows * cols
    states = np.array(list(itertools.product((-1, 1), repeat=n)), float).reshape(
        -1, rows, cols
    )
    bonds = (states * np.roll(states, 1, 1)).sum((1, 2)) + (
        states * np.roll(states, 1, 2)
    ).sum((1, 2))
    logw = K * bonds
    w = np.exp(logw - logw.max())
    log_z = np.log(w.sum()) + logw.max()
    w /= w.sum()
    e = -bonds / n
    var = (w * e**2).sum() - (w * e).sum() ** 2
    return log_z, (w * e).sum(), K**2 * n * var, n**2 * var


@pytest.mark.parametrize("rows, cols", [(4, 4), (2, 4), (3, 4)])
def test_kaufman_at_infinite_temperature_and_antiferromagnet(rows, cols):
    # Kaufman's formula continued to K <= 0: K = 0 (ln Z = N ln 2, u = c = 0, and a
    # finite second derivative: Var(bonds)), the antiferromagnet on even tori
    # (Z(−K) = Z(K) by the sublattice flip) and on a frustrated odd torus (3×4).
    for K in (0.0, -0.3, 0.3):
        log_z, u, c, _ = _bond_moments(K, rows, cols)
        np.testing.assert_allclose(
            rg.torus_log_partition(K, rows, cols), log_z, rtol=1e-13, atol=0
        )
        np.testing.assert_allclose(rg.torus_energy(K, rows, cols), u, atol=1e-12)
        np.testing.assert_allclose(
            rg.torus_specific_heat(K, rows, cols), c, rtol=1e-11, atol=1e-13
        )
    n = rows * cols
    assert float(rg.torus_log_partition(0.0, rows, cols)) == pytest.approx(
        n * np.log(2), rel=1e-15
    )
    assert float(rg.torus_energy(0.0, rows, cols)) == 0.0
    assert float(rg.torus_specific_heat(0.0, rows, cols)) == 0.0
    d2 = jax.grad(jax.grad(lambda k: rg.torus_log_partition(k, rows, cols)))(0.0)
    np.testing.assert_allclose(d2, _bond_moments(0.0, rows, cols)[3], rtol=1e-12)
    if rows % 2 == 0 and cols % 2 == 0:
        for K in (0.2, rg.K_C, 1.0):
            np.testing.assert_allclose(
                rg.torus_log_partition(-K, rows, cols),
                rg.torus_log_partition(K, rows, cols),
                rtol=1e-14,
            )
            np.testing.assert_allclose(
                rg.torus_energy(-K, rows, cols),
                -rg.torus_energy(K, rows, cols),
                rtol=1e-12,
            )


def test_kaufman_refuses_a_strongly_frustrated_torus():
    # 3×3 at K = −0.6: the four terms cancel by ~25, still exact to 1e-13.
    log_z, u, _, _ = _bond_moments(-0.6, 3, 3)
    np.testing.assert_allclose(rg.torus_log_partition(-0.6, 3, 3), log_z, rtol=1e-13)
    np.testing.assert_allclose(rg.torus_energy(-0.6, 3, 3), u, atol=1e-12)
    # at K = −1.5 they cancel by ~1e6 and the formula would lose 1e-9 in ln Z
    for fn in (rg.torus_log_partition, rg.torus_energy, rg.torus_specific_heat):
        with pytest.raises(ValueError, match="frustrated antiferromagnet"):
            fn(-1.5, 3, 3)
    # under a transformation it cannot raise: NaN, not a wrong number
    assert np.isnan(jax.jit(lambda k: rg.torus_log_partition(k, 3, 3))(-1.5))


def test_onsager_limits():
    np.testing.assert_allclose(rg.K_C, 0.44068679350977147, rtol=1e-15)
    np.testing.assert_allclose(rg.onsager_energy(rg.K_C), -np.sqrt(2), rtol=1e-12)
    np.testing.assert_allclose(rg.onsager_energy(0.5), -1.74556, atol=1e-5)
    np.testing.assert_allclose(rg.onsager_magnetization(0.5), 0.91132, atol=1e-5)
    assert rg.onsager_magnetization(0.4) == 0.0
    # The finite torus converges to the infinite lattice away from T_c.
    np.testing.assert_allclose(
        rg.torus_energy(1 / 3.0, 64, 64), rg.onsager_energy(1 / 3.0), atol=1e-7
    )


def test_chain_exact_results():
    K, n = 0.8, 16
    np.testing.assert_allclose(
        rg.chain_correlation(K, n, jnp.array([1, 2, 4, 8])),
        [0.6652382, 0.4435520, 0.2014947, 0.0755000],
        atol=1e-7,
    )
    states = np.array(list(itertools.product((-1, 1), repeat=10)), float)
    logz = np.log(np.exp(0.7 * (states * np.roll(states, 1, 1)).sum(1)).sum())
    np.testing.assert_allclose(rg.chain_log_partition(0.7, 10), logz, rtol=1e-13)
    # antiferromagnetic coupling on an odd ring: (2 sinh K)^N < 0 (frustration)
    for K, n in [(-0.7, 9), (-0.7, 10), (0.0, 7)]:
        states = np.array(list(itertools.product((-1, 1), repeat=n)), float)
        logz = np.log(np.exp(K * (states * np.roll(states, 1, 1)).sum(1)).sum())
        np.testing.assert_allclose(rg.chain_log_partition(K, n), logz, rtol=1e-13)
    Ks = [1.0]
    for _ in range(3):
        Ks.append(float(rg.decimate_chain(Ks[-1])))
    np.testing.assert_allclose(
        Ks[1:], [0.6625013737, 0.3500611389, 0.1136720675], atol=1e-10
    )
    xi = rg.chain_correlation_length(jnp.array(Ks))
    np.testing.assert_allclose(xi[1:] / xi[:-1], 0.5, rtol=1e-12)  # ξ halves exactly


@pytest.mark.parametrize("sampler", rg.SAMPLERS)
def test_samplers_reproduce_exact_enumeration(sampler):
    # 4×4 at K = 0.4: exact ⟨e⟩, ⟨|m|⟩, ⟨m²⟩ by enumerating 65536 states.
    exact = rg.enumerate_torus(0.4, 4, 4)
    r = rg.sample_ising(
        4,
        0.4,
        sampler=sampler,
        num_chains=16,
        num_measurements=1500,
        thermalization=100,
        key=jax.random.key(1),
    )
    for est, want in (
        (rg.chain_estimate(r.energy), exact["energy"]),
        (rg.chain_estimate(np.abs(r.magnetization)), exact["abs_m"]),
        (rg.chain_estimate(r.magnetization**2), exact["m2"]),
    ):
        assert abs(est.mean - want) < 4 * est.stderr, (sampler, est, want)
        assert est.stderr < 0.01  # the check has power


@pytest.mark.parametrize(
    "sampler, K", [("wolff", rg.K_C), ("swendsen_wang", 0.3), ("metropolis", 0.5)]
)
def test_energy_matches_kaufman_on_8x8(sampler, K):
    r = rg.sample_ising(
        8,
        K,
        sampler=sampler,
        num_chains=16,
        num_measurements=600,
        thermalization=200,
        key=jax.random.key(2),
    )
    est = rg.chain_estimate(r.energy)
    want = float(rg.torus_energy(K, 8, 8))
    assert abs(est.mean - want) < 4 * est.stderr, (est, want)
    assert est.stderr < 0.01


def test_autocorrelation_time_of_ar1():
    # x_t = φ x_{t-1} + noise: τ_int = (1 + φ) / (2 (1 − φ)) = 9.5 for φ = 0.9.
    rng = np.random.default_rng(0)
    phi, n = 0.9, 20000
    x = np.zeros((8, n))
    noise = rng.normal(size=(8, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    tau = rg.integrated_autocorrelation_time(x)
    assert abs(tau - 9.5) < 0.1 * 9.5, tau


def test_binder_cumulant_limits():
    rng = np.random.default_rng(0)
    gauss = rg.binder_cumulant(rng.normal(size=(20, 5000)))
    assert abs(gauss.mean) < 4 * gauss.stderr + 1e-3  # Gaussian: U₄ = 0
    ordered = rg.binder_cumulant(np.sign(rng.normal(size=(10, 100))))
    np.testing.assert_allclose(ordered.mean, 2 / 3, rtol=1e-12)  # m = ±1: U₄ = 2/3


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown sampler 'heatbath'"):
        rg.sample_ising(4, 0.4, sampler="heatbath", key=jax.random.key(0))
    with pytest.raises(ValueError, match="L must be"):
        rg.sample_ising(1, 0.4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_chains"):
        rg.sample_ising(4, 0.4, num_chains=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="thermalization must be a non-negative"):
        rg.sample_ising(4, 0.4, thermalization=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="must be finite"):
        rg.sample_ising(4, float("inf"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="n >= 1"):
        rg.chain_log_partition(0.5, 0)
    with pytest.raises(ValueError, match="too large"):
        rg.enumerate_torus(0.4, 5, 5)
    with pytest.raises(ValueError, match="num_chains >= 2"):
        rg.chain_estimate(np.zeros((1, 10)))


def test_counter_generator_statistics():
    # 2^20 words of the Metropolis counter-based generator: each bit fair, the top
    # byte uniform, no correlation between neighbouring counters or between keys.
    from dynlearn.rg._ising import _counter_bits

    n = 1 << 20
    a = np.asarray(_counter_bits(jax.random.key(0), (n,)))
    b = np.asarray(_counter_bits(jax.random.key(1), (n,)))
    bits = (a[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    z = (bits.mean(0) - 0.5) / np.sqrt(0.25 / n)
    assert np.all(np.abs(z) < 5), z  # 32 bits, Bonferroni-safe
    counts = np.bincount(a >> 24, minlength=256)
    chi2 = np.sum((counts - n / 256) ** 2 / (n / 256))
    assert 160 < chi2 < 360, chi2  # 255 dof: mean 255, sd 22.6
    u, v = a / 2.0**32 - 0.5, b / 2.0**32 - 0.5
    for x, y in ((u[:-1], u[1:]), (u[:-64], u[64:]), (u, v)):
        r = np.corrcoef(x, y)[0, 1]
        assert abs(r) < 5 / np.sqrt(n), r
    assert len(np.unique(a)) == n  # a bijection of the counter within one call


@pytest.mark.parametrize("rng", ["counter", "jax"])
def test_metropolis_antiferromagnet_and_random_generators(rng):
    # On the bipartite 4×4 torus, s_i → (−1)^{i+j} s_i maps K to −K, so
    # ⟨e⟩(−K) = −⟨e⟩(K); exact values by enumeration. Both generators.
    K, L, chains, n = 0.4, 4, 16, 1500
    exact = rg.enumerate_torus(K, L, L)["energy"]
    keys = jax.random.split(jax.random.key(3), chains)

    def chain(key, K):
        def measure(s, k):
            s = rg.metropolis_sweep(s, K, num_sweeps=2, rng=rng, key=k)
            return s, rg.energy_per_spin(s)

        s0 = jnp.ones((L, L))
        s0 = rg.metropolis_sweep(s0, K, num_sweeps=100, rng=rng, key=key)
        return jax.lax.scan(measure, s0, jax.random.split(key, n))[1]

    for sign in (1.0, -1.0):
        e = jax.jit(jax.vmap(chain, (0, None)))(keys, sign * K)
        est = rg.chain_estimate(e)
        assert abs(est.mean - sign * exact) < 4 * est.stderr, (sign, est, exact)
        assert est.stderr < 0.01


def test_metropolis_bad_input():
    with pytest.raises(ValueError, match="even"):
        rg.metropolis_sweep(jnp.ones((5, 5)), 0.4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="even L"):
        rg.sample_ising(5, 0.4, sampler="metropolis", key=jax.random.key(0))
    with pytest.raises(ValueError, match="rng must be"):
        rg.metropolis_sweep(jnp.ones((4, 4)), 0.4, rng="pcg", key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_sweeps"):
        rg.metropolis_sweep(jnp.ones((4, 4)), 0.4, num_sweeps=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dimension must be"):
        rg.sample_ising(4, 0.4, dimension=3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs a ferromagnet"):
        rg.sample_ising(4, -0.4, sampler="wolff", key=jax.random.key(0))


def test_sample_ising_keeps_the_measured_configurations():
    r = rg.sample_ising(
        6,
        0.3,
        sampler="metropolis",
        num_chains=3,
        num_measurements=5,
        thermalization=2,
        keep_configurations=True,
        key=jax.random.key(4),
    )
    assert r.configurations.shape == (3, 5, 6, 6)
    assert r.configurations.dtype == jnp.int8
    c = np.asarray(r.configurations, float)
    e = jax.vmap(jax.vmap(rg.energy_per_spin))(jnp.asarray(c))
    np.testing.assert_allclose(e, r.energy, atol=1e-12)
    np.testing.assert_allclose(c.mean((2, 3)), r.magnetization, atol=1e-12)
    np.testing.assert_array_equal(c[:, -1], r.spins)


@pytest.mark.parametrize("sampler", rg.SAMPLERS)
def test_samplers_on_the_ring_reproduce_the_exact_chain(sampler):
    # Ring of 16 spins at K = 0.8: e = −(1/N) d ln Z/dK, Z = (2 cosh K)^N + (2 sinh K)^N,
    # and ⟨m²⟩ = (1/N) Σ_r ⟨s_0 s_r⟩ with ⟨s_0 s_r⟩ = (t^r + t^{N−r})/(1 + t^N).
    K, n = 0.8, 16
    e_exact = -float(jax.grad(rg.chain_log_partition)(K, n)) / n
    m2_exact = float(jnp.sum(rg.chain_correlation(K, n, jnp.arange(n)))) / n
    r = rg.sample_ising(
        n,
        K,
        sampler=sampler,
        num_chains=16,
        num_measurements=1500,
        thermalization=100,
        dimension=1,
        key=jax.random.key(5),
    )
    assert r.spins.shape == (16, n)
    for est, want in (
        (rg.chain_estimate(r.energy), e_exact),
        (rg.chain_estimate(r.magnetization**2), m2_exact),
    ):
        assert abs(est.mean - want) < 4 * est.stderr, (sampler, est, want)
        assert est.stderr < 0.01


def test_binder_cumulants_of_two_sizes_cross_near_the_critical_temperature():
    # U₄(T) for L = 8 and 16 (Metropolis, vmapped over T): the curves cross, by
    # linear interpolation of U₈ − U₁₆ between neighbouring temperatures, within 2%
    # of T_c = 2/ln(1 + √2) (Binder 1981).
    Ts = np.array([2.18, 2.24, 2.3, 2.36])
    U, dU = {}, {}
    for L in (8, 16):
        r = jax.vmap(
            lambda K: (
                rg.sample_ising(
                    L,
                    K,
                    sampler="metropolis",
                    num_chains=16,
                    num_measurements=2000,
                    updates_per_measurement=5,
                    thermalization=1000,
                    key=jax.random.key(L),
                ).magnetization
            )
        )(jnp.asarray(1.0 / Ts))
        est = [rg.binder_cumulant(m) for m in np.asarray(r)]
        U[L] = np.array([e.mean for e in est])
        dU[L] = np.array([e.stderr for e in est])
    assert np.all(dU[8] < 0.01) and np.all(dU[16] < 0.01), (dU[8], dU[16])
    diff = U[8] - U[16]
    assert diff[0] < 0 < diff[-1], diff  # below T_c the larger lattice is more ordered
    i = int(np.nonzero(np.diff(np.sign(diff)))[0][0])
    t_cross = Ts[i] - diff[i] * (Ts[i + 1] - Ts[i]) / (diff[i + 1] - diff[i])
    assert abs(t_cross - rg.T_C) < 0.02 * rg.T_C, (t_cross, U)


def test_energy_matches_kaufman_on_16x16_within_3_standard_errors():
    # L = 16 at K = 0.3, K_c and 0.5 (Metropolis, vmapped over K, cold start so that
    # no chain is caught in a striped state at K = 0.5).
    Ks = jnp.array([0.3, rg.K_C, 0.5])
    e = jax.vmap(
        lambda K: (
            rg.sample_ising(
                16,
                K,
                sampler="metropolis",
                num_chains=16,
                num_measurements=2000,
                updates_per_measurement=2,
                thermalization=1000,
                start="cold",
                key=jax.random.key(6),
            ).energy
        )
    )(Ks)
    for K, e_K in zip(Ks, np.asarray(e)):
        est = rg.chain_estimate(e_K)
        want = float(rg.torus_energy(K, 16, 16))
        assert abs(est.mean - want) < 3 * est.stderr, (float(K), est, want)
        assert est.stderr < 0.005
