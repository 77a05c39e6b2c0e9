"""Ensembles of random networks: correlators, connected 4-point functions, kurtosis
and their exact finite-width values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import width


def relu_covariances(n, depth, num, seed, sigma_w=1.0):
    x = jnp.array([[1.0]])
    return width.sample_ensemble(
        lambda k: dl.MLP(1, "scalar", n, depth, "relu", sigma_w=sigma_w, key=k),
        lambda net: width.readout_covariance(net, x),
        num,
        chunk_size=num,
        key=jax.random.key(seed),
    )


def test_single_layer_relu_four_point_is_exactly_one_over_width():
    # notes §4.1: one hidden relu layer, σ_w = 1, σ_b = 0, x = 1: G_c = 3.75/N and
    # κ = 15/N exactly. Hidden units are iid, so the first N units of a width-512
    # network form an exact width-N network: one ensemble of 2·10⁴ networks gives
    # the conditional variances C_N = Σ_{j≤N} relu(z_j)²/N for every N (nested, so
    # the per-N estimates are correlated; each error bar is still valid).
    widths = np.array([8, 32, 128, 512])
    x = jnp.array([1.0])

    def cond_var(net):
        h2 = jnp.cumsum(net.activation(net.layers[0](x)) ** 2)
        return h2[widths - 1] / widths

    c = width.sample_ensemble(
        lambda k: dl.MLP(1, "scalar", 512, 1, "relu", key=k),
        cond_var,
        20_000,
        key=jax.random.key(0),
    )
    # readout_covariance of the full network is the N = 512 column.
    full = width.readout_covariance(
        dl.MLP(1, "scalar", 512, 1, "relu", key=jax.random.key(3)), x[None]
    )
    ref = cond_var(dl.MLP(1, "scalar", 512, 1, "relu", key=jax.random.key(3)))[-1]
    np.testing.assert_allclose(full[0, 0], ref, rtol=1e-13)
    both = width.with_error_bars(
        lambda v: jnp.stack(
            [3 * jnp.var(v, axis=0), width.kurtosis_from_covariance(v)]
        ),
        c,
    )
    g4, kappa = both.mean[0], both.mean[1]
    for i, n in enumerate(widths):
        exact_k, exact_g4, exact_kappa = width.single_layer_four_point(
            "relu", int(n), k0=1.0
        )
        assert (exact_k, exact_g4 * n, exact_kappa * n) == (0.5, 3.75, 15.0)
        # Heavy-tailed at N = 8 (measured up to 2.5 SE off there): 4 SE bound.
        assert abs(g4[i] - exact_g4) < 4 * both.stderr[0, i]
        assert abs(kappa[i] - exact_kappa) < 4 * both.stderr[1, i]
    slope, _ = dl.fit_slope(widths, g4)
    assert abs(slope + 1) < 0.1, slope  # −1 ± 0.1 over N = 8..512
    slope, _ = dl.fit_slope(widths, kappa)
    assert abs(slope + 1) < 0.1, slope


def test_deep_relu_kurtosis_exact():
    # notes §3.3: critical relu, n = 64, L = 4: κ = 3[(1 + 5/n)^L − 1] = 1.0532.
    assert abs(width.relu_kurtosis_exact(64, 4) - 1.0532) < 1e-4
    # Monte Carlo at n = 32, L = 4 (cheaper): exact 2.3619; the leading-order PDLT
    # value 15L/n = 1.875 must be excluded by the error bar.
    cov = relu_covariances(32, 4, 10_000, 0, sigma_w=2**0.5)
    kap = width.with_error_bars(lambda c: width.kurtosis_from_covariance(c)[0], cov)
    assert abs(kap.mean - width.relu_kurtosis_exact(32, 4)) < 4 * kap.stderr
    assert abs(kap.mean - 15 * 4 / 32) > 4 * kap.stderr


def test_finite_width_recursion():
    # notes §3.3: tanh at criticality (C_W = 1, C_b = 0), K⁽¹⁾ = 1, n = 64, 16 hidden
    # layers: recursion κ = 0.470, K = 0.0325 (4 and 3 digits quoted).
    k, v, kappa = width.finite_width_recursion("tanh", 16, 64, k0=1.0)
    assert abs(k - 0.0325) < 5e-5 and abs(kappa - 0.470) < 5e-4
    # relu, C_W = 2: K stays at K⁽¹⁾ and V grows by 5K² per layer, so κ = 15L/n,
    # the first-order expansion of the exact 3[(1 + 5/n)^L − 1].
    for depth in (1, 4):
        k, v, kappa = width.finite_width_recursion(
            "relu", depth, 64, k0=0.7, sigma_w=2**0.5
        )
        np.testing.assert_allclose(
            [k, v, kappa], [0.7, 5 * depth * 0.49, 15 * depth / 64], rtol=1e-6
        )
    # One hidden layer: the recursion is exact, G_c = 3V/n = single_layer_four_point.
    k, v, kappa = width.finite_width_recursion("erf", 1, 10, k0=2.0, sigma_b=1.0)
    k1, g4, kappa1 = width.single_layer_four_point("erf", 10, k0=2.0, sigma_b=1.0)
    np.testing.assert_allclose([k, 3 * v / 10, kappa], [k1, g4, kappa1], rtol=1e-10)


def test_erf_single_layer_values_from_notes():
    # notes §4.1: erf, σ_w = σ_b = 1, x = 1 (k0 = 2): N·G_c = 0.3998, N·κ = 0.1581,
    # K = 1.59033.
    k, g4, kappa = width.single_layer_four_point(
        "erf", 10, k0=2.0, sigma_w=1.0, sigma_b=1.0
    )
    np.testing.assert_allclose(
        [k, 10 * g4, 10 * kappa], [1.59033, 0.3998, 0.1581], atol=1e-4
    )
    x = jnp.array([[1.0]])
    cov = width.sample_ensemble(
        lambda key: dl.MLP(1, "scalar", 10, 1, "erf", sigma_b=1.0, key=key),
        lambda net: width.readout_covariance(net, x),
        20_000,
        key=jax.random.key(1),
    )
    est = width.with_error_bars(
        lambda c: width.connected_four_point_from_covariance(c)[0, 0, 0, 0], cov
    )
    assert abs(est.mean - g4) < 4 * est.stderr


def test_raw_estimators_on_known_distributions():
    rng = np.random.default_rng(0)
    m = 200_000
    # A Gaussian scale mixture f = √V·g (V ~ Gamma(4, 1/4), E V = 1, Var V = 1/4):
    # conditionally Gaussian, so G_c = 3 Var(V) = 0.75 and κ = 0.75 at one point;
    # Gaussian samples (V = 1) have G_c = 0.
    v = rng.gamma(4.0, 0.25, size=(m, 1))
    f = np.sqrt(v) * rng.normal(size=(m, 1))
    est = width.with_error_bars(lambda s: width.connected_four_point(s)[0, 0, 0, 0], f)
    assert abs(est.mean - 0.75) < 4 * est.stderr
    kap = width.with_error_bars(lambda s: width.kurtosis(s)[0], f)
    assert abs(kap.mean - 0.75) < 4 * kap.stderr
    g = rng.normal(size=(m, 2)) @ np.array([[1.0, 0.5], [0.0, 0.8]])
    est = width.with_error_bars(width.connected_four_point, g)
    assert np.all(np.abs(est.mean) < 4 * est.stderr)
    # Correlators against explicit sums (exact up to round-off).
    s = rng.normal(size=(50, 3))
    g3 = width.correlator(s, 3)
    np.testing.assert_allclose(
        g3[0, 1, 2], np.mean(s[:, 0] * s[:, 1] * s[:, 2]), atol=1e-15
    )
    np.testing.assert_allclose(width.correlator(s, 2), s.T @ s / 50, atol=1e-14)


def test_rao_blackwell_matches_raw_on_same_networks():
    # Both estimators on the same 2·10⁴ two-input networks (width 4, where G_c is
    # large): agree within the raw estimator's error bar (4 SE).
    xs = jnp.array([[1.0, 0.0], [0.6, 0.8]])
    make = lambda k: dl.MLP(2, "scalar", 4, 1, "relu", sigma_b=0.3, key=k)  # noqa: E731
    out = width.sample_ensemble(
        make,
        lambda net: (jax.vmap(net)(xs), width.readout_covariance(net, xs)),
        20_000,
        key=jax.random.key(2),
    )
    raw = width.with_error_bars(width.connected_four_point, out[0])
    rb = width.connected_four_point_from_covariance(out[1])
    assert np.all(np.abs(rb - raw.mean) < 4 * raw.stderr)


def test_quartic_coupling_inverts_tree_level_relation():
    # Build G_c = −λ ∫ Π K(y, x_i) dy for a known λ on an asymmetric kernel and
    # recover λ for every input tuple.
    y = np.linspace(-3, 3, 61)
    w = np.full(61, y[1] - y[0])
    xs = np.array([-0.5, 0.1, 0.9])
    k = np.exp(-((y[:, None] - xs[None, :]) ** 2)) * (1 + 0.2 * xs[None, :])
    integral = np.einsum("g,ga,gb,gc,gd->abcd", w, k, k, k, k)
    lam = width.quartic_coupling(-0.37 * integral, k, w)
    np.testing.assert_allclose(lam, 0.37, rtol=1e-13)


def test_bad_input():
    s = jnp.ones((30, 2))
    with pytest.raises(ValueError, match="too small for error bars"):
        width.with_error_bars(lambda a: jnp.mean(a, 0), s, num_chunks=10)
    rng = np.random.default_rng(0)
    s = rng.normal(size=(1000, 1))
    with pytest.raises(
        ValueError,
        match=r"too small for the requested error bar.*"
        r"Use about M = \d+",
    ):
        width.with_error_bars(lambda a: jnp.var(a), s, max_stderr=1e-4)
    with pytest.raises(ValueError, match=r"shape \(M, P\)"):
        width.correlator(jnp.ones((2, 2, 2)), 2)
    with pytest.raises(ValueError, match=r"\(M, P, P\)"):
        width.connected_four_point_from_covariance(jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="positive int"):
        width.sample_ensemble(lambda k: k, lambda k: k, 0, key=jax.random.key(0))
