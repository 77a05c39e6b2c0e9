"""Annealed importance sampling of ln Z against exact enumeration and Kaufman, and the
one-hidden-unit-per-bond RBM of the 2D Ising model against brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import rg


def _rbm(weight_scale, seed=0, nv=10, nh=6):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return rg.RBM(
        weight_scale * jax.random.normal(k1, (nv, nh)),
        0.3 * jax.random.normal(k2, (nv,)),
        0.3 * jax.random.normal(k3, (nh,)),
    )


@pytest.fixture(scope="module")
def annealed():
    r = _rbm(0.7)
    return r, rg.ais_log_partition(r, key=jax.random.key(1))


def test_ais_matches_enumeration(annealed):
    r, est = annealed
    exact = float(r.log_partition())
    dev = float(est.mean) - exact
    assert 0 < float(est.stderr) < 0.02
    assert abs(dev) < 3 * float(est.stderr)
    assert abs(dev) < 0.05
    assert float(est.effective_sample_size) > 0.8 * 256
    assert est.log_weights.shape == (256,)
    # the base (W = 0, b = 0, the target's visible biases) has an exact ln Z
    base = rg.RBM(0 * r.weight, r.visible_bias, 0 * r.hidden_bias)
    np.testing.assert_allclose(est.log_z_base, base.log_partition(), rtol=1e-14)


def test_ais_without_annealing_is_unbiased_but_noisier(annealed):
    # Two betas = plain importance sampling from the base: E[w] = Z/Z₀ still.
    r, est = annealed
    plain = rg.ais_log_partition(r, num_chains=2048, num_betas=2, key=jax.random.key(2))
    dev = float(plain.mean) - float(r.log_partition())
    assert abs(dev) < 3 * float(plain.stderr)
    # 8× more chains, still a larger error and a much smaller effective sample size
    assert float(plain.stderr) > 2 * float(est.stderr)
    assert float(plain.effective_sample_size) / 2048 < 0.5


def test_ais_zero_weights_is_exact_with_zero_variance():
    r = _rbm(0.0, seed=3)
    est = rg.ais_log_partition(r, key=jax.random.key(4))
    np.testing.assert_allclose(est.mean, r.log_partition(), rtol=1e-13)
    assert float(est.stderr) == 0.0
    assert float(est.effective_sample_size) == pytest.approx(256, rel=1e-13)


def test_ais_bad_input():
    r = _rbm(0.5)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_chains"):
        rg.ais_log_partition(r, num_chains=1, key=key)
    with pytest.raises(ValueError, match="num_betas"):
        rg.ais_log_partition(r, num_betas=1, key=key)
    with pytest.raises(ValueError, match="exactly 0 to exactly 1"):
        rg.ais_log_partition(r, betas=[0.0, 0.7, 0.5, 1.0], key=key)
    with pytest.raises(ValueError, match="exactly 0 to exactly 1"):
        rg.ais_log_partition(r, betas=[0.1, 1.0], key=key)
    with pytest.raises(ValueError, match="base_visible_bias"):
        rg.ais_log_partition(r, base_visible_bias=jnp.zeros(3), key=key)


def _bond_sum(states, rows, cols):
    s = states.reshape(-1, rows, cols)
    return (s * np.roll(s, 1, 1)).sum((1, 2)) + (s * np.roll(s, 1, 2)).sum((1, 2))


@pytest.mark.parametrize("rows, cols", [(3, 3), (3, 4), (2, 3)])
@pytest.mark.parametrize("K", [0.1, rg.K_C, 1.0])
def test_bond_rbm_is_the_ising_model(rows, cols, K):
    # ln 2cosh(w(v_i + v_j)) = ln 2 + K + K v_i v_j, so with N_b = 2·rows·cols bonds
    # H^RBM(v) = −K Σ v_i v_j − N_b (ln 2 + K) for every v.
    r = rg.RBM.ising_bonds(rows, cols, K)
    n_b = 2 * rows * cols
    assert r.weight.shape == (rows * cols, n_b)
    vs = rg.all_spin_states(rows * cols)
    diff = jax.vmap(r.visible_hamiltonian)(vs) + K * _bond_sum(
        np.asarray(vs), rows, cols
    )
    np.testing.assert_allclose(diff, -n_b * (np.log(2) + K), rtol=0, atol=1e-12)
    exact = rg.enumerate_torus(K, rows, cols)["log_z"]
    np.testing.assert_allclose(
        r.log_partition() - n_b * (np.log(2) + K), exact, rtol=1e-13
    )


def test_bond_rbm_weight_and_errors():
    for K in (0.0, 1e-9, 0.3, 8.0):
        w = rg.RBM.ising_bonds(2, 2, K).weight.max()
        np.testing.assert_allclose(np.cosh(2 * w), np.exp(2 * K), rtol=1e-14)
    with pytest.raises(ValueError, match="ferromagnetic"):
        rg.RBM.ising_bonds(3, 3, -0.1)
    with pytest.raises(ValueError, match="rows must be an integer >= 2"):
        rg.RBM.ising_bonds(1, 3, 0.3)


def test_ais_on_the_4x4_bond_rbm_matches_kaufman():
    K = rg.K_C
    r = rg.RBM.ising_bonds(4, 4, K)
    est = rg.ais_log_partition(r, key=jax.random.key(0))
    exact = float(rg.torus_log_partition(K, 4, 4)) + 32 * (np.log(2) + K)
    dev = float(est.mean) - exact
    assert 0 < float(est.stderr) < 0.03
    assert abs(dev) < 3 * float(est.stderr)
    assert abs(dev) < 0.05
