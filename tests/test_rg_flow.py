"""The RBM flow (Iso, Shiba & Yokoo 2018) and the exact energy thermometer."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import rg


def test_thermometer_inverts_the_exact_torus_energy():
    L = 4
    th = rg.energy_thermometer(L)
    Ts = np.linspace(0.6, 8.0, 75)
    e = np.asarray(jax.vmap(lambda T: rg.torus_energy(1.0 / T, L, L))(jnp.asarray(Ts)))
    np.testing.assert_allclose(th(e), Ts, rtol=0, atol=1e-8)
    # independent reference: brute-force enumeration of the 2^16 states
    for K in (0.25, rg.K_C, 0.6):
        e_enum = rg.enumerate_torus(K, L, L)["energy"]
        np.testing.assert_allclose(th(e_enum), 1.0 / K, rtol=0, atol=1e-8)
    # shapes are kept; outside the bracket: NaN, or the bracket ends when clipping
    assert th(e.reshape(5, 15)).shape == (5, 15)
    assert np.all(np.isnan(th(np.array([-2.0, 0.0, 0.3, -2.5]))))
    clip = rg.energy_thermometer(L, t_min=0.5, t_max=50.0, outside="clip")
    np.testing.assert_array_equal(clip(np.array([-2.0, 0.0])), [0.5, 50.0])


def test_thermometer_rejects_bad_input():
    with pytest.raises(ValueError, match="L must be"):
        rg.energy_thermometer(1)
    with pytest.raises(ValueError, match="t_min < t_max"):
        rg.energy_thermometer(4, t_min=3.0, t_max=2.0)
    with pytest.raises(ValueError, match="outside"):
        rg.energy_thermometer(4, outside="raise")


def _torus_3x3(K):
    """All 512 states of the 3×3 torus (row-major, as RBM.ising_bonds), their bond
    sums and Boltzmann probabilities."""
    s = np.array(list(itertools.product((-1.0, 1.0), repeat=9))).reshape(-1, 3, 3)
    bonds = (s * np.roll(s, 1, 1) + s * np.roll(s, 1, 2)).sum((1, 2))
    p = np.exp(K * bonds - np.max(K * bonds))
    return s.reshape(-1, 9), bonds, p / p.sum()


def _check_energy_distribution(bonds_sample, bonds, p):
    """Each energy level's frequency within 4σ (binomial) of its exact probability."""
    n = len(bonds_sample)
    for b in np.unique(bonds):
        q = p[bonds == b].sum()
        f = np.mean(bonds_sample == b)
        assert abs(f - q) < 4 * np.sqrt(q * (1 - q) / n) + 1e-12, (b, f, q)


def test_rbm_flow_leaves_and_reaches_the_visible_marginal():
    # RBM.ising_bonds(3, 3, K): its visible marginal is the 3×3 Ising model at K, so
    # the Gibbs kernel v → h → v' preserves it and converges to it from any start.
    K, n, steps = 0.4, 20000, 30
    rbm = rg.RBM.ising_bonds(3, 3, K)
    states, bonds, p = _torus_3x3(K)
    # Chains [0, n) start from exact samples, chains [n, 2n) from the all-up state.
    v0 = np.concatenate(
        [states[np.random.default_rng(0).choice(len(p), n, p=p)], np.ones((n, 9))]
    )
    vs = rg.rbm_flow(rbm, v0, steps, key=jax.random.key(0))
    assert vs.shape == (steps + 1, 2 * n, 9)
    np.testing.assert_array_equal(vs[0], v0)
    assert np.all(np.abs(np.asarray(vs)) == 1)
    s = np.asarray(vs[-1]).reshape(-1, 3, 3)
    final_bonds = (s * np.roll(s, 1, 1) + s * np.roll(s, 1, 2)).sum((1, 2))
    # exact samples stay exact (and the chains did move) ...
    assert np.mean(np.all(vs[-1, :n] == vs[0, :n], axis=1)) < 0.5
    _check_energy_distribution(final_bonds[:n], bonds, p)
    # ... and from the all-up state (energy −2 per spin) the flow relaxes to them
    _check_energy_distribution(final_bonds[n:], bonds, p)


def test_rbm_flow_single_chain_and_zero_steps():
    rbm = rg.RBM.ising_bonds(2, 2, 0.3)
    v = np.array([1.0, -1.0, 1.0, 1.0])
    out = rg.rbm_flow(rbm, v, 3, key=jax.random.key(1))
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[0], v)
    np.testing.assert_array_equal(
        rg.rbm_flow(rbm, v[None], 0, key=jax.random.key(1)), v[None, None]
    )


def test_rbm_flow_with_bernoulli_units_is_the_same_chain():
    # to_units("bernoulli") gives conditionals σ(x′) = σ(2x) for the same states under
    # v = (s + 1)/2, so with the same key the 0/1 flow is the ±1 flow, bit for bit.
    rbm = rg.RBM.random(jax.random.key(2), 9, 6, 0.5)
    s0 = np.sign(np.random.default_rng(1).normal(size=(50, 9)))
    spins = rg.rbm_flow(rbm, s0, 5, key=jax.random.key(3))
    bits = rg.rbm_flow(
        rbm.to_units("bernoulli"), (s0 + 1) / 2, 5, key=jax.random.key(3)
    )
    np.testing.assert_array_equal(bits, (spins + 1) / 2)
    with pytest.raises(ValueError, match="0/1 bits"):
        rg.rbm_flow(rbm.to_units("bernoulli"), s0, 5, key=jax.random.key(3))


def test_rbm_flow_rejects_bad_input():
    rbm = rg.RBM.ising_bonds(2, 2, 0.3)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="steps must be"):
        rg.rbm_flow(rbm, np.ones((3, 4)), -1, key=key)
    with pytest.raises(ValueError, match="steps must be"):
        rg.rbm_flow(rbm, np.ones((3, 4)), 2.0, key=key)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        rg.rbm_flow(rbm, np.ones((3, 5)), 2, key=key)
    with pytest.raises(ValueError, match="±1"):
        rg.rbm_flow(rbm, np.zeros((3, 4)), 2, key=key)


# ---- classifier thermometer -----------------------------------------------------------

_L = 8
_T_CLASSES = (1.5, 2.25, 3.0, 5.0)


@pytest.fixture(scope="module")
def ising_8x8():
    """300 independent 8×8 configurations per temperature (300 Metropolis chains, 200
    sweeps from a cold start; the sign of m is irrelevant to a flip-symmetric
    thermometer), float32."""
    with jax.enable_x64(False):
        return {
            T: np.asarray(
                rg.sample_ising(
                    _L,
                    1.0 / T,
                    sampler="metropolis",
                    num_chains=300,
                    num_measurements=1,
                    thermalization=200,
                    start="cold",
                    key=jax.random.key(i),
                ).spins
            )
            for i, T in enumerate(_T_CLASSES)
        }


def _split(data, temps, n_train=200):
    train = np.concatenate([data[T][:n_train] for T in temps])
    test = np.concatenate([data[T][n_train:] for T in temps])
    return (
        train,
        np.repeat(temps, n_train),
        test,
        np.repeat(temps, len(data[temps[0]]) - n_train),
    )


def test_classifier_thermometer_reads_two_temperatures(ising_8x8):
    temps = (1.5, 5.0)
    x, t, x_test, t_test = _split(ising_8x8, temps)
    with jax.enable_x64(False):
        th = rg.train_thermometer(
            x, t, key=jax.random.key(5), width=32, num_steps=500, learning_rate=3e-3
        ).final_params
        p = np.asarray(th.probabilities(x_test))
        T_read = np.asarray(th(x_test))
        T_flip = np.asarray(th(-x_test))
        T_flat = np.asarray(th(x_test.reshape(len(x_test), -1)))
        T_one = float(th(x_test[0]))
        with pytest.raises(ValueError, match=r"\(\.\.\., 64\)"):
            th(np.ones((3, 5, 5)))
    np.testing.assert_array_equal(th.temperatures, temps)
    assert p.shape == (len(x_test), 2)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    # held-out accuracy, and the read-out T = Σ_c p_c T_c near the true T
    accuracy = np.mean(np.asarray(temps)[p.argmax(1)] == t_test)
    assert accuracy >= 0.95, accuracy
    for T in temps:
        assert abs(T_read[t_test == T].mean() - T) < 0.25, (T, T_read[t_test == T])
    np.testing.assert_allclose(T_read, p @ np.asarray(temps), rtol=1e-6)
    # Z₂: the read-out is invariant under a global flip (exactly, by construction)
    np.testing.assert_allclose(T_flip, T_read, rtol=0, atol=1e-6)
    # (N, L, L), (N, L²) and one unbatched configuration give the same reading
    np.testing.assert_array_equal(T_flat, T_read)
    np.testing.assert_allclose(T_one, T_read[0], rtol=1e-6)


def test_classifier_thermometer_is_monotone_in_temperature(ising_8x8):
    x, t, x_test, t_test = _split(ising_8x8, _T_CLASSES)
    with jax.enable_x64(False):
        th = rg.train_thermometer(
            x, t, key=jax.random.key(6), width=32, num_steps=500, learning_rate=3e-3
        ).final_params
        T_read = np.asarray(th(x_test))
    means = [T_read[t_test == T].mean() for T in _T_CLASSES]
    assert np.all(np.diff(means) > 0), means
    assert np.all(
        (T_read >= min(_T_CLASSES) - 1e-5) & (T_read <= max(_T_CLASSES) + 1e-5)
    )


def test_train_thermometer_rejects_bad_input():
    key = jax.random.key(0)
    s = np.ones((4, 4, 4))
    with pytest.raises(ValueError, match="one entry per configuration"):
        rg.train_thermometer(s, [1.0, 2.0, 1.0], key=key)
    with pytest.raises(ValueError, match=">= 2 distinct"):
        rg.train_thermometer(s, [2.0] * 4, key=key)
    with pytest.raises(ValueError, match="±1"):
        rg.train_thermometer(np.zeros((4, 16)), [1.0, 2.0, 1.0, 2.0], key=key)
    with pytest.raises(ValueError, match=r"\(N, L, L\)"):
        rg.train_thermometer(np.ones((4, 2, 8)), [1.0, 2.0, 1.0, 2.0], key=key)
    with pytest.raises(ValueError, match="positive"):
        rg.train_thermometer(s, [1.0, -2.0, 1.0, 2.0], key=key)
    with pytest.raises(ValueError, match="steps"):
        rg.train_thermometer(s, [1.0, 2.0, 1.0, 2.0], num_steps=0, key=key)
