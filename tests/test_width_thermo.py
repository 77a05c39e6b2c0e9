"""Langevin dynamics and ensemble thermodynamics against the exactly solvable
quadratic loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import width


A = jnp.diag(jnp.array([1.0, 2.0, 4.0]))
LAM = np.array([1.0, 2.0, 4.0])


def loss(p):
    return 0.5 * p["x"] @ A @ p["x"]


def test_quadratic_equilibrium_closed_forms():
    t = 0.3
    exact = width.quadratic_equilibrium(A, t)
    np.testing.assert_allclose(exact.energy, 3 * t / 2, rtol=1e-15)  # equipartition
    np.testing.assert_allclose(exact.complexity, -0.5 * np.log(8.0), rtol=1e-14)
    np.testing.assert_allclose(
        exact.entropy_thermal, 1.5 * (1 + np.log(2 * np.pi * t)), rtol=1e-14
    )
    np.testing.assert_allclose(
        exact.free_energy, exact.energy - t * exact.entropy, rtol=1e-14
    )
    # F = −T log Z with Z = (2πT)^{P/2} det(A)^{−1/2} (notes §1.10).
    log_z = 1.5 * np.log(2 * np.pi * t) - 0.5 * np.log(8.0)
    np.testing.assert_allclose(exact.free_energy, -t * log_z, rtol=1e-14)
    # The Euler–Maruyama law tends to the Gibbs law as dt → 0, at O(dt).
    err = [
        abs(width.quadratic_equilibrium(A, t, dt=h).energy - exact.energy)
        for h in (1e-2, 1e-3)
    ]
    slope, _ = dl.fit_slope([1e-2, 1e-3], err)
    assert abs(slope - 1) < 0.02


def test_langevin_second_law_and_stationary_law():
    """One ensemble of 3000 Euler–Maruyama paths (T = 0.2, dt = 0.05), started
    broader than equilibrium (var 4 > T/λ).

    Transient: the exact EM covariance Σ_{k+1} = (1 − λh)² Σ_k + 2Th decreases
    monotonically, so S(t) and F(t) − F_∞ = T·KL(p_t‖p_∞) decrease (Vanchurin's
    dS/dt ≤ 0); the ensemble entropy follows the exact curve within 4 SE
    (SE(S) = ½√(Σ_i 2/M) for the log-variances).
    Equilibrium (t = 12, slowest relaxation e^{−2t}): the stationary law of the EM
    chain is known exactly, Σ = 2T/(λ(2 − λdt)); variances, U, S, C, the
    equipartition and the configurational temperature agree within 4 SE.
    """
    t, dt, m = 0.2, 0.05, 3000
    key0, key1 = jax.random.split(jax.random.key(1))
    x0 = 2.0 * jax.random.normal(key0, (m, 3))
    ts = jnp.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 12.0])
    traj = width.langevin(
        loss, {"x": x0}, t, 12.0, key=jax.random.split(key1, m), dt=dt, ts=ts
    )
    steps = np.round(np.asarray(ts) / dt).astype(int)
    var = np.full(3, 4.0)
    exact_s = []
    for k in range(steps[-1] + 1):
        if k in steps:
            exact_s.append(0.5 * np.sum(np.log(2 * np.pi * np.e * var)))
        var = (1 - LAM * dt) ** 2 * var + 2 * t * dt
    est = [
        width.thermodynamics(traj.params["x"][:, i], traj.loss[:, i], t)
        for i in range(len(ts))
    ]
    s = np.array([e.entropy for e in est])
    f = np.array([e.free_energy for e in est])
    se_s = 0.5 * np.sqrt(6 / m)
    np.testing.assert_array_less(np.abs(s - exact_s), 4 * se_s)
    assert np.all(np.diff(s[:-1]) < 0) and np.all(np.diff(f[:-1]) < 0)

    x = np.asarray(traj.params["x"][:, -1])
    losses = np.asarray(traj.loss[:, -1])
    exact = width.quadratic_equilibrium(A, t, dt=dt)
    var = 2 * t / (LAM * (2 - LAM * dt))
    np.testing.assert_array_less(np.abs(x.var(0) - var), 4 * var * np.sqrt(2 / m))
    assert abs(losses.mean() - exact.energy) < 4 * losses.std() / np.sqrt(m)
    assert abs(est[-1].entropy - exact.entropy) < 4 * se_s
    assert abs(est[-1].complexity - exact.complexity) < 4 * se_s
    assert abs(est[-1].temperature - exact.temperature) < (
        4 * 2 / 3 * losses.std() / np.sqrt(m)
    )
    # Configurational temperature ⟨‖∇Φ‖²⟩/⟨tr∇²Φ⟩: for the EM law it is
    # Σ_i λ_i² var_i / Σ_i λ_i (= T in continuous time); 4 SE of the numerator.
    t_conf = width.configurational_temperature(loss, {"x": traj.params["x"][:, -1]})
    g2 = (x * LAM) ** 2 @ np.ones(3)
    exact_conf = np.sum(LAM**2 * var) / LAM.sum()
    assert abs(t_conf - exact_conf) < 4 * g2.std() / np.sqrt(m) / LAM.sum()
    # The continuous-time value differs by the O(dt) Euler–Maruyama bias only.
    assert abs(exact.energy - 1.5 * t) < 0.1 * 1.5 * t


def test_zero_temperature_is_gradient_descent():
    # T = 0: Euler–Maruyama is exactly GD with lr = dt (same arithmetic, 1e-13).
    p0 = {"x": jnp.array([1.0, -2.0, 0.5])}
    traj = width.langevin(
        loss, p0, 0.0, 1.0, key=jax.random.key(0), dt=0.1, num_saves=11
    )
    gd = dl.gradient_descent(loss, p0, 0.1, 10)
    np.testing.assert_allclose(traj.params["x"], gd.params["x"], atol=1e-13)


def test_bad_input():
    p0 = {"x": jnp.zeros(3)}
    with pytest.raises(ValueError, match="temperature"):
        width.langevin(loss, p0, -1.0, 1.0, key=jax.random.key(0), dt=0.1)
    with pytest.raises(TypeError, match="PRNG key"):
        width.langevin(loss, p0, 1.0, 1.0, key=None, dt=0.1)
    with pytest.raises(ValueError, match="need M > P"):
        width.thermodynamics(jnp.ones((3, 3)), jnp.ones(3), 1.0)
    with pytest.raises(ValueError, match="no stationary law"):
        width.quadratic_equilibrium(A, 1.0, dt=0.6)
    with pytest.raises(ValueError, match="positive definite"):
        width.quadratic_equilibrium(-A, 1.0)


def test_unstable_step_raises_at_the_first_bad_time():
    """Φ = λθ²/2 with dt = 0.6 > 2/λ (λ = 4): Euler–Maruyama multiplies θ by
    1 − λdt = −1.4 per step, so |θ_k| = |θ_0|·1.4^k first exceeds the threshold 1e8
    at the k computed below (53 for θ_0 = 2, 55 for θ_0 = 1). T = 0 is exact; in an
    ensemble at T = 1e-6 the noise (< 1e-2 relative to θ at every step) cannot move
    the crossing, which is that of the path started at θ_0 = 2."""
    lam, dt = 4.0, 0.6

    def first_bad(theta0):
        k, th = 0, theta0
        while abs(th) <= 1e8:
            th, k = th - dt * lam * th, k + 1
        return k

    phi = lambda th: 0.5 * lam * jnp.sum(th**2)  # noqa: E731
    k1 = first_bad(1.0)
    with pytest.raises(dl.DivergenceError, match="divergence_threshold") as info:
        width.langevin(
            phi, jnp.ones(1), 0.0, 60.0, key=jax.random.key(0), dt=dt, num_saves=201
        )
    e = info.value
    assert k1 == 55 and e.step == k1
    np.testing.assert_allclose(e.t, k1 * dt, rtol=1e-12)
    part = e.trajectory  # the saves (every 0.3) up to the last good step, k1 − 1
    np.testing.assert_allclose(part.ts[-1], (k1 - 1) * dt, rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(part.loss)))
    assert float(jnp.max(jnp.abs(part.params))) <= 1e8

    x0 = jnp.array([[1.0], [2.0], [-1.0]])
    k2 = first_bad(2.0)
    with pytest.raises(dl.DivergenceError) as info:
        width.langevin(
            phi, x0, 1e-6, 60.0, key=jax.random.split(jax.random.key(1), 3), dt=dt
        )
    assert k2 == 53 and info.value.step == k2
    np.testing.assert_allclose(info.value.t, k2 * dt, rtol=1e-12)
    assert info.value.trajectory.loss.shape[0] == 3  # the ensemble axis is kept


def test_resume_is_bit_exact(tmp_path):
    """An ensemble (per-path θ(0)) run to t = 1, written, read back and resumed to
    t = 2 equals the uninterrupted run bit for bit: the Brownian increments depend on
    the key and the step's times only."""
    keys = jax.random.split(jax.random.key(3), 4)
    x0 = jax.random.normal(jax.random.key(4), (4, 3))
    kw = dict(dt=0.05)
    ts = np.linspace(0.0, 2.0, 11)  # the same save times in both runs
    straight = width.langevin(loss, {"x": x0}, 0.3, 2.0, key=keys, ts=ts, **kw)
    first = width.langevin(loss, {"x": x0}, 0.3, 1.0, key=keys, ts=ts[:6], **kw)
    path = first.save(tmp_path / "langevin_t1.npz")
    back = dl.Trajectory.load(path, like={"x": jnp.zeros(3)})
    more = width.langevin(
        loss, {"x": x0}, 0.3, 2.0, key=None, ts=ts[5:], resume=back, **kw
    )
    np.testing.assert_array_equal(more.final_params["x"], straight.final_params["x"])
    np.testing.assert_array_equal(more.params["x"][:, 1:], straight.params["x"][:, 6:])
    np.testing.assert_array_equal(more.loss[:, 1:], straight.loss[:, 6:])
    assert not np.array_equal(straight.params["x"][:, 5], straight.params["x"][:, 10])
    with pytest.raises(ValueError, match="dt"):
        width.langevin(loss, {"x": x0}, 0.3, 2.0, key=keys, dt=0.3, resume=back)


def test_step_budget_is_checked_first():
    p0 = {"x": jnp.zeros(3)}
    with pytest.raises(ValueError, match="max_steps = 100"):
        width.langevin(
            loss, p0, 1.0, 1.0, key=jax.random.key(0), dt=1e-3, max_steps=100
        )
    with pytest.raises(ValueError, match="max_steps"):
        width.langevin(loss, p0, 1.0, 1.0, key=jax.random.key(0), dt=0.1, max_steps=0)
