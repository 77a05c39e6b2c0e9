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
