"""The stochastic modified equation and SGD against Ornstein–Uhlenbeck closed forms.

Per-example losses ℓ_i(θ) = ½(θ − x_i)² give Φ = ½(θ − x̄)² + const (curvature λ = 1)
and a constant gradient covariance Σ = Var(x). SGD with batch size B (with
replacement) and the SDE dθ = −(θ − x̄)dt + sqrt(lr·Σ/B) dW are then linear, and
their stationary variances are known in closed form:

- Euler–Maruyama with step dt on the SDE: s²/(λ(2 − λ dt)) with s² = lr·Σ/B,
- SGD itself: lr·Σ/(B·λ(2 − lr·λ)) (an AR(1) recursion),

both → lr·Σ/(2Bλ) as the steps shrink (Li, Tai & E 2017).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl


X = jnp.asarray(np.random.default_rng(3).normal(size=10))
VAR = float(jnp.var(X))
LOSS = lambda theta, xb: 0.5 * jnp.mean((theta - xb) ** 2)


def _stationary_moments(samples, burn):
    """Mean and variance over paths and post-burn-in times, with standard errors from
    the spread of the (independent) per-path estimates."""
    s = np.asarray(samples)[:, burn:]
    m = s.mean()
    per_path_mean = s.mean(axis=1)
    per_path_var = ((s - m) ** 2).mean(axis=1)
    n = s.shape[0]
    return (
        m,
        per_path_mean.std() / np.sqrt(n),
        per_path_var.mean(),
        per_path_var.std() / np.sqrt(n),
    )


def test_sde_stationary_variance_matches_ou():
    lr, b, dt = 0.2, 1, 0.05
    ts = np.linspace(0.0, 30.0, 61)
    traj = dl.sgd_sde(
        LOSS,
        jnp.asarray(2.0),
        X,
        lr,
        30.0,
        batch_size=b,
        dt=dt,
        ts=ts,
        key=jax.random.split(jax.random.key(0), 800),
    )
    assert traj.params.shape == (800, 61)
    m, sm, v, sv = _stationary_moments(traj.params, burn=20)  # t ≥ 10 ≫ 1/λ
    s2 = lr * VAR / b
    exact = s2 / (2 - dt)
    assert abs(m - float(jnp.mean(X))) < 4 * sm
    assert abs(v - exact) < 4 * sv, (v, exact, sv)
    # The discriminating power is real: the SGD variance differs by ~10 σ here.
    assert abs(lr * VAR / (b * (2 - lr)) - exact) > 4 * sv


def test_sgd_stationary_variance_matches_ar1():
    lr, b = 0.2, 1
    traj = dl.sgd(
        LOSS,
        jnp.asarray(2.0),
        X,
        lr,
        150,
        batch_size=b,
        save_every=5,
        key=jax.random.split(jax.random.key(1), 800),
    )
    m, sm, v, sv = _stationary_moments(traj.params, burn=10)  # t ≥ 10
    exact = lr * VAR / (b * (2 - lr))
    assert abs(m - float(jnp.mean(X))) < 4 * sm
    assert abs(v - exact) < 4 * sv, (v, exact, sv)


def test_sde_without_noise_limit_is_gradient_flow():
    # batch_size = N without replacement: zero gradient noise, so the SDE is the ODE.
    traj = dl.sgd_sde(
        LOSS,
        jnp.asarray(2.0),
        X,
        0.1,
        2.0,
        batch_size=10,
        replacement=False,
        dt=1e-3,
        num_saves=3,
        key=jax.random.key(0),
    )
    xbar = float(jnp.mean(X))
    exact = xbar + (2.0 - xbar) * np.exp(-2.0)
    # Euler with dt = 1e-3 has global error ≈ t·e^{-t}·dt/2·|θ0 − x̄|.
    assert abs(float(traj.final_params) - exact) < 2e-3 * abs(2.0 - xbar)


def test_full_batch_without_replacement_has_no_noise_even_for_one_example():
    # B = N without replacement is the full batch: the noise factor (N−B)/(B(N−1)) is
    # 0 (it was 0/0 for N = 1). Two Brownian paths then give one deterministic
    # path, Φ = ½(θ − x)²: θ(t) = x + (θ0 − x)e^{−t}, up to Euler's O(dt).
    data = jnp.asarray([0.5])
    traj = dl.sgd_sde(
        LOSS,
        jnp.asarray(2.0),
        data,
        0.1,
        1.0,
        batch_size=1,
        replacement=False,
        key=jax.random.split(jax.random.key(0), 2),
        num_saves=2,
    )
    final = np.asarray(traj.final_params)
    assert final[0] == final[1]
    np.testing.assert_allclose(final[0], 0.5 + 1.5 * np.exp(-1.0), rtol=2e-2)


def test_divergence_stops_at_the_first_bad_step_and_keeps_the_good_saves():
    """Identical examples make the gradient noise vanish, so Euler–Maruyama is the
    recursion θ ← (1 − λ dt) θ: at λ dt = 2.4 it first exceeds 10⁸ at step k, known
    exactly. The partial trajectory ends at step k − 1, the last good iterate."""
    lam, dt = 4.0, 0.6
    k, th = 0, 1.0
    while abs(th) <= 1e8:
        th, k = th * (1 - lam * dt), k + 1
    loss = lambda theta, xb: 0.5 * lam * jnp.mean((theta - xb) ** 2)  # noqa: E731
    with pytest.raises(dl.DivergenceError, match="divergence_threshold") as info:
        dl.sgd_sde(
            loss, jnp.ones(()), jnp.zeros(4), 0.1, 60.0, batch_size=2,
            key=jax.random.key(0), dt=dt, num_saves=201,
        )  # fmt: skip
    e = info.value
    assert k == 55 and e.step == k
    np.testing.assert_allclose(e.t, k * dt, rtol=1e-12)
    part = e.trajectory  # saves every 0.3, up to the last good step
    np.testing.assert_allclose(part.ts[-1], (k - 1) * dt, rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(part.loss)))
    assert float(jnp.max(jnp.abs(part.params))) <= 1e8
    np.testing.assert_allclose(part.params[-1], (1 - lam * dt) ** (k - 1), rtol=1e-12)
