"""Integrators of dynlearn.echo: exact reversibility, symplecticity, energy drift,
consistency of the Kerr split step with its Hamiltonian, and input checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import dynlearn as dl
from dynlearn import echo


T, STEPS = 5.0, 250  # h = 0.02


@pytest.fixture(scope="module")
def duffing():
    mac = echo.DuffingNetwork(2, 1, 6, t1=T, num_steps=STEPS, key=jax.random.key(1))
    theta = 0.5 * jnp.asarray(np.random.default_rng(1).normal(size=6))
    return mac, mac.initial_state(jnp.array([1.0, -1.0]), theta)


def nonseparable():
    """H = ½p²(1 + q²/2) + ½q² + q⁴/4: not separable, but even in p."""
    h = echo.CanonicalHamiltonian(
        lambda q, p: jnp.sum(0.5 * p**2 * (1 + 0.5 * q**2) + 0.5 * q**2 + 0.25 * q**4)
    )
    state = (jnp.array([0.7, -0.3, 1.1]), jnp.array([0.2, 0.5, -0.4]))
    return h, state


def test_leapfrog_reversal_and_symplecticity(duffing):
    mac, s0 = duffing
    h = mac.hamiltonian
    # Leapfrog is exactly symmetric: only round-off remains (measured 1.4e-15 / 3.1e-15,
    # against 1e-12 required).
    assert echo.reversal_error(h, s0, T, STEPS) <= 1e-12
    assert echo.symplecticity_error(h, s0, T, STEPS) <= 1e-12
    # RK4 is neither (measured: reversal 2.6e-8 at h = 0.02, symplecticity 1.1e-4 at h = 0.1):
    # the diagnostics can fail.
    assert echo.reversal_error(h, s0, T, STEPS, integrator=echo.RK4()) > 1e-10
    assert echo.symplecticity_error(h, s0, T, 50, integrator=echo.RK4()) > 1e-8


def test_implicit_midpoint_on_nonseparable_hamiltonian():
    h, s0 = nonseparable()
    im = echo.ImplicitMidpoint()
    # The fixed-point solve runs to 1e-15 relative: reversal/symplecticity are at
    # round-off (measured 2.4e-15 and 1.6e-15).
    assert echo.reversal_error(h, s0, 2.0, 100, integrator=im) <= 1e-12
    assert echo.symplecticity_error(h, s0, 2.0, 100, integrator=im) <= 1e-12
    # h·Lip(f) ≫ 1: the fixed-point solve diverges; reported, not silently wrong
    with pytest.raises(dl.NonFiniteError, match="after step 1 "):
        echo.evolve(h, s0, 20.0, 10, integrator=im)
    with pytest.raises(NotImplementedError, match="ImplicitMidpoint"):
        echo.evolve(h, s0, 1.0, 10, integrator=echo.Strang())


@pytest.mark.parametrize("which", ["leapfrog", "midpoint"])
def test_energy_drift_is_second_order(duffing, which):
    if which == "leapfrog":
        mac, s0 = duffing
        h, integ = mac.hamiltonian, None
    else:
        h, s0 = nonseparable()
        integ = echo.ImplicitMidpoint()
    steps = np.array([50, 100, 200])
    errs = [
        float(echo.energy_error(h, s0, 2.0, int(n), integrator=integ)) for n in steps
    ]
    slope, _ = dl.fit_slope(2.0 / steps, errs)
    # Both methods are order 2: max |ΔH| ∝ h² (leapfrog: 1.16e-3, 2.89e-4, 7.22e-5).
    assert abs(slope - 2.0) < 0.1, (slope, errs)


def test_kerr_split_step_solves_its_hamiltonian():
    """The exact Strang pieces must integrate i dΦ/dt = ∂H/∂Φ* of `energy`: compare
    with the implicit midpoint rule of the same H (independent: it only uses the
    Wirtinger gradient of `energy`). Both are O(h²) accurate, so their gap falls 4× per
    halving of h."""
    mac = echo.KerrLattice(t1=0.5, num_steps=25)
    h = mac.hamiltonian
    th = jax.random.uniform(jax.random.key(0), (16,))
    s0 = mac.initial_state(jnp.array([0.6, -0.6]), th / jnp.linalg.norm(th))
    gaps = []
    for n in (25, 50):
        a = echo.evolve(h, s0, 0.5, n)
        b = echo.evolve(h, s0, 0.5, n, integrator=echo.ImplicitMidpoint())
        gaps.append(float(jnp.linalg.norm(a - b)))
    slope, _ = dl.fit_slope([1, 0.5], gaps)
    assert abs(slope - 2.0) < 0.15, (slope, gaps)  # measured 0.448 → 0.118: 1.92
    # exact reversibility and symplecticity of the complex split step
    assert echo.reversal_error(h, s0, 0.5, 25) <= 1e-12  # measured 4.7e-14
    assert echo.symplecticity_error(h, s0, 0.5, 25) <= 1e-12  # measured 7.8e-14


def test_time_reversal_violation_is_rejected():
    h = echo.CanonicalHamiltonian(
        lambda q, p: jnp.sum(0.5 * p**2 + 0.5 * q**2 + 0.3 * q * p)
    )
    s0 = (jnp.array([1.0, 0.5]), jnp.array([0.2, -0.1]))
    with pytest.raises(ValueError, match="not time-reversal invariant"):
        echo.check_time_reversal(h, s0)
    with pytest.raises(ValueError, match="not time-reversal invariant"):
        echo.echo(h, s0, lambda s: jnp.sum(s[0] ** 2), 1e-3, 1.0, 10)
    w = echo.WirtingerHamiltonian(
        lambda z: jnp.sum(jnp.abs(z) ** 2 + jnp.imag(z) * 0.5)
    )
    with pytest.raises(ValueError, match="H\\(conj\\(phi\\)\\) = H\\(phi\\)"):
        echo.check_time_reversal(w, jnp.array([1.0 + 0.5j, 0.3j]))
    ok, s_ok = nonseparable()
    assert echo.check_time_reversal(ok, s_ok) < 1e-15  # even in p: exact


def test_nonfinite_state_reports_time():
    # V = -q⁴ from rest at q0 = 3: q reaches ∞ at
    # t* = ∫_3^∞ dq / √(2(q⁴ - 81)) = 0.309; leapfrog (h = 0.01) overflows shortly after.
    h = echo.SeparableHamiltonian(lambda q: -jnp.sum(q**4))
    s0 = (jnp.array([3.0]), jnp.array([0.0]))
    t_star = scipy.integrate.quad(lambda q: 1 / np.sqrt(2 * (q**4 - 81)), 3, np.inf)[0]
    with pytest.raises(dl.NonFiniteError, match=r"at t = ") as err:
        echo.evolve(h, s0, 2.0, 200)
    t_reported = float(re.search(r"at t = ([0-9.]+)", str(err.value)).group(1))
    assert t_star <= t_reported <= t_star + 0.1, (t_star, t_reported)  # 0.309, 0.36
    with pytest.raises(dl.NonFiniteError, match="t = "):
        echo.evolve_path(h, s0, 2.0, 200, save_every=10)


def test_bad_arguments(duffing):
    mac, s0 = duffing
    with pytest.raises(ValueError, match="num_steps"):
        echo.evolve(mac.hamiltonian, s0, 1.0, 0)
    with pytest.raises(ValueError, match="must be positive"):
        echo.evolve(mac.hamiltonian, s0, -1.0, 10)
    with pytest.raises(ValueError, match="multiple of `save_every`"):
        echo.evolve_path(mac.hamiltonian, s0, 1.0, 10, save_every=3)
    with pytest.raises(ValueError, match="shape"):
        mac.initial_state(jnp.ones(3), jnp.zeros(6))
    with pytest.raises(ValueError, match="positive int"):
        echo.DuffingNetwork(0, 1, 3, key=jax.random.key(0))
