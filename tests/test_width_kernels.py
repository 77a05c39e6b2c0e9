"""Analytic NNGP/NTK recursions: published values, quadrature vs closed forms,
Monte Carlo ensembles of dl.MLP, and the GP posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import dynlearn as dl
from dynlearn import width


def test_relu_orthogonal_inputs_one_over_pi():
    # notes §2.4: He init (σ_w² = 2), unit orthogonal inputs, one hidden layer.
    k = width.infinite_width_kernels(
        jnp.eye(2), depth=1, activation="relu", sigma_w=2**0.5
    )
    np.testing.assert_allclose(k.nngp, [[1, 1 / np.pi], [1 / np.pi, 1]], atol=1e-15)


def test_deep_relu_correlations_from_notes():
    # notes §2.4: correlation after ℓ = 1..6 hidden layers at criticality (6 digits).
    table = [0.31831, 0.49373, 0.60483, 0.68095, 0.73595, 0.77723]
    for depth, rho in enumerate(table, start=1):
        k = width.infinite_width_kernels(
            jnp.eye(2), depth=depth, activation="relu", sigma_w=2**0.5
        )
        np.testing.assert_allclose(k.nngp[0, 0], 1.0, atol=1e-14)  # K* fixed point
        assert abs(k.nngp[0, 1] - rho) < 5e-6


def test_erf_values_from_notes():
    # notes §2.4, HMS convention σ_w = σ_b = 1, d = 1; values quoted to 5 decimals.
    x = jnp.array([1.0, -1.0, 0.2, 0.6, -1.0, -0.6])
    k = width.infinite_width_kernels(
        x, depth=1, activation="erf", sigma_w=1.0, sigma_b=1.0
    ).nngp
    got = [k[0, 0], k[0, 1], k[2, 3], k[4, 5]]
    np.testing.assert_allclose(got, [1.59033, 1.00000, 1.46038, 1.53223], atol=1e-5)
    np.testing.assert_allclose(k[0, 0] - 1, 2 / np.pi * np.arcsin(0.8), atol=1e-15)


def test_linear_network_closed_form():
    # Linear net, σ_w = 1, σ_b = 0: K = x·x'/d at every layer and each of the L + 1
    # layers contributes K to the NTK, so Θ = (L + 1) K exactly.
    x = jax.random.normal(jax.random.key(0), (5, 3))
    k0 = x @ x.T / 3
    for depth in (0, 1, 4):
        k = width.infinite_width_kernels(x, depth=depth, activation="linear")
        np.testing.assert_allclose(k.nngp, k0, atol=1e-14)
        np.testing.assert_allclose(k.ntk, (depth + 1) * k0, atol=1e-13)


def test_quadrature_agrees_with_closed_forms():
    x = jax.random.normal(jax.random.key(1), (5, 2))
    z = jax.random.normal(jax.random.key(2), (3, 2))
    kw = dict(depth=3, sigma_w=1.4, sigma_b=0.3)
    c = width.infinite_width_kernels(x, z, activation="erf", **kw)
    q = width.infinite_width_kernels(x, z, activation="erf", method="quadrature", **kw)
    # erf is smooth: 128² Gauss–Hermite nodes (default), measured errors 2.6e-10
    # (NNGP) and 2.0e-9 (NTK); 256 nodes reach 1e-15, so this is the rule's error.
    np.testing.assert_allclose(q.nngp, c.nngp, atol=2e-9)
    np.testing.assert_allclose(q.ntk, c.ntk, atol=2e-8)
    # relu has a kink: the rule converges only algebraically (its NTK, with the step
    # φ', worse still: ~3% at 128 nodes, which is why relu uses the closed form).
    # NNGP measured 0.3% relative at 128 nodes; assert < 1%.
    c = width.infinite_width_kernels(x, z, activation="relu", **kw)
    q = width.infinite_width_kernels(x, z, activation="relu", method="quadrature", **kw)
    assert np.abs(q.nngp / c.nngp - 1).max() < 1e-2


def test_tanh_quadrature_vs_scipy():
    # Diagonal: K¹(x,x) = σ_b² + σ_w² E[tanh(z)²], z ~ N(0, K⁰); independent 1-D
    # adaptive quadrature (scipy.integrate.quad, tolerance 1e-12).
    x = jnp.array([[0.7, -1.1]])
    k0 = 0.25 + 2.0 * float(x[0] @ x[0]) / 2
    k = width.infinite_width_kernels(
        x, depth=1, activation="tanh", sigma_w=2**0.5, sigma_b=0.5
    )
    dens = lambda z: np.exp(-(z**2) / (2 * k0)) / np.sqrt(2 * np.pi * k0)  # noqa: E731
    e2 = scipy.integrate.quad(
        lambda z: np.tanh(z) ** 2 * dens(z), -np.inf, np.inf, epsabs=1e-13
    )[0]
    ed = scipy.integrate.quad(
        lambda z: (1 - np.tanh(z) ** 2) ** 2 * dens(z), -np.inf, np.inf, epsabs=1e-13
    )[0]
    # 128-node rule: measured error 8.7e-10 (tanh is analytic only in a strip, so
    # Gauss–Hermite converges sub-exponentially; 256 nodes give 3e-14).
    np.testing.assert_allclose(k.nngp[0, 0], 0.25 + 2.0 * e2, atol=5e-9)
    np.testing.assert_allclose(k.ntk[0, 0], 0.25 + 2.0 * e2 + 2.0 * ed * k0, atol=5e-9)


def test_ensemble_covariance_matches_nngp():
    # 10⁴ single-hidden-layer relu networks (width 32): for one hidden layer the
    # output covariance equals the NNGP kernel at every width (notes §2.4), so the
    # deviation is pure sampling error: every entry within 3 batch-means SEs.
    xs = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, -0.8]])
    f = width.sample_ensemble(
        lambda k: dl.MLP(
            2,
            "scalar",
            32,
            1,
            "relu",
            sigma_w=2**0.5,
            sigma_b=0.4,
            parameterization="ntk",
            key=k,
        ),
        lambda net: jax.vmap(net)(xs),
        10_000,
        chunk_size=2500,
        key=jax.random.key(5),
    )
    g2 = width.with_error_bars(lambda s: width.correlator(s, 2), f, num_chunks=20)
    k = width.infinite_width_kernels(
        xs, depth=1, activation="relu", sigma_w=2**0.5, sigma_b=0.4
    ).nngp
    z = np.abs(np.asarray(g2.mean - k) / np.asarray(g2.stderr))
    assert z.max() < 3.0, z


def test_mean_empirical_ntk_equals_analytic_one_hidden_layer():
    # For one hidden layer E[Θ̂] = Θ_∞ exactly at any width (each hidden unit
    # contributes an iid term), so the ensemble mean of the empirical NTK of 2000
    # width-8 networks agrees within 4 SEs.
    xs = jnp.array([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]])
    kw = dict(sigma_w=1.3, sigma_b=0.5)
    thetas = width.sample_ensemble(
        lambda k: dl.MLP(2, "scalar", 8, 1, "erf", parameterization="ntk", key=k, **kw),
        lambda net: width.empirical_ntk(net, xs),
        2000,
        key=jax.random.key(0),
    )
    est = width.with_error_bars(lambda t: jnp.mean(t, axis=0), thetas)
    ntk = width.infinite_width_kernels(xs, depth=1, activation="erf", **kw).ntk
    z = np.abs(np.asarray(est.mean - ntk) / np.asarray(est.stderr))
    assert z.max() < 4.0, z


def test_gp_posterior_against_dense_formula():
    x = jax.random.normal(jax.random.key(3), (6, 2))
    xt = jax.random.normal(jax.random.key(4), (4, 2))
    y = jnp.sin(x[:, 0])
    k = np.asarray(
        width.infinite_width_kernels(
            jnp.concatenate([x, xt]),
            depth=2,
            activation="erf",
            sigma_w=1.5,
            sigma_b=0.2,
        ).nngp
    )
    kxx, ksx, kss = k[:6, :6], k[6:, :6], k[6:, 6:]
    post = width.gp_posterior(kxx, y, ksx, kss, noise=1e-3)
    inv = np.linalg.inv(kxx + 1e-3 * np.eye(6))
    np.testing.assert_allclose(post.mean, ksx @ inv @ np.asarray(y), atol=1e-10)
    np.testing.assert_allclose(post.cov, kss - ksx @ inv @ ksx.T, atol=1e-10)
    # Noise-free interpolation: mean = y and zero variance at the training inputs.
    post = width.gp_posterior(kxx, y, kxx, kxx)
    np.testing.assert_allclose(post.mean, y, atol=1e-9)
    np.testing.assert_allclose(np.diag(post.cov), 0, atol=1e-9)


def _diagonal_recursion(x, depth, dphi2, phi2, sw2=1.0, sb2=0.0):
    """NNGP and NTK at x = x′ in float64 NumPy: K ← σ_b² + σ_w² E[φ²],
    Θ ← K + σ_w² E[φ'²] Θ, the expectations given as functions of the variance."""
    k = sb2 + sw2 * np.sum(np.asarray(x) ** 2, axis=1) / x.shape[1]
    ntk = k.copy()
    for _ in range(depth):
        k, ntk = sb2 + sw2 * phi2(k), sb2 + sw2 * phi2(k) + sw2 * dphi2(k) * ntk
    return k, ntk


@pytest.mark.parametrize("depth", [1, 3])
def test_relu_ntk_diagonal_is_exact(depth):
    # At θ = 0: E[relu(u)²] = k/2 and E[relu'(u)²] = 1/2. A last-bit difference of
    # x·x and |x|² used to give θ ~ 1e-8 and a relative error ~1e-9 on the diagonal.
    x = np.random.default_rng(3).normal(size=(12, 7))
    kw = dict(depth=depth, sigma_w=1.3, sigma_b=0.2)
    want_k, want_ntk = _diagonal_recursion(
        x, depth, lambda k: 0.5 + 0 * k, lambda k: k / 2, 1.3**2, 0.2**2
    )
    for got in (
        width.infinite_width_kernels(x, **kw),
        width.infinite_width_kernels(x, np.array(x), **kw),
    ):
        np.testing.assert_allclose(np.diag(got.ntk), want_ntk, rtol=1e-14, atol=0)
        np.testing.assert_allclose(np.diag(got.nngp), want_k, rtol=1e-14, atol=0)
        assert np.all(
            np.abs(got.ntk) <= np.sqrt(np.outer(want_ntk, want_ntk)) * (1 + 1e-14)
        )


def test_erf_and_quadrature_ntk_diagonals_are_exact():
    x = np.random.default_rng(4).normal(size=(6, 5))
    # erf (Williams 1997) at θ = 0: E[φ²] = (2/π) arcsin(2k/(1+2k)),
    # E[φ'²] = (4/π)/√(1 + 4k)
    want = _diagonal_recursion(
        x,
        2,
        lambda k: 4 / np.pi / np.sqrt(1 + 4 * k),
        lambda k: 2 / np.pi * np.arcsin(2 * k / (1 + 2 * k)),
    )
    got = width.infinite_width_kernels(x, depth=2, activation="erf")
    np.testing.assert_allclose(np.diag(got.ntk), want[1], rtol=1e-14, atol=0)
    # tanh by quadrature: at ρ = 1 the tensor rule is the 1-D Gauss–Hermite rule
    z, w = np.polynomial.hermite_e.hermegauss(32)
    w = w / w.sum()
    want = _diagonal_recursion(
        x,
        2,
        lambda k: (w * np.cosh(np.sqrt(k)[:, None] * z) ** -4).sum(1),
        lambda k: (w * np.tanh(np.sqrt(k)[:, None] * z) ** 2).sum(1),
    )
    got = width.infinite_width_kernels(x, depth=2, activation="tanh", num_nodes=32)
    np.testing.assert_allclose(np.diag(got.ntk), want[1], rtol=1e-13, atol=0)


def test_bad_input():
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=r"Closed forms exist for .*quadrature"):
        width.infinite_width_kernels(x, depth=1, activation="swish")
    with pytest.raises(
        ValueError, match="No closed form for activation 'tanh'.*method='quadrature'"
    ):
        width.infinite_width_kernels(
            x, depth=1, activation="tanh", method="closed_form"
        )
    with pytest.raises(ValueError, match="Input dimensions do not match"):
        width.infinite_width_kernels(x, jnp.ones((2, 4)), depth=1)
    with pytest.raises(ValueError, match="non-finite"):
        width.infinite_width_kernels(x.at[0, 0].set(jnp.nan), depth=1)
    with pytest.raises(ValueError, match="depth"):
        width.infinite_width_kernels(x, depth=-1)
    with pytest.raises(ValueError, match="not positive definite"):
        width.gp_posterior(
            jnp.ones((2, 2)), jnp.ones(2), jnp.ones((1, 2)), jnp.ones((1, 1))
        )
