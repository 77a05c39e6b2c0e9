"""The echo identity echo_η(x) − x = ηJ∇(C∘M) + O(η²), checked against jax.grad of
the same discretised loss (López-Pastor & Marquardt, PRX 13, 031020 (2023))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import echo


ETAS = jnp.array([1e-2, 1e-3, 1e-4, 1e-5])


def relative_errors(hamiltonian, s0, cost, t1, steps, integrator=None):
    """Relative L2 error of the one-sided and symmetric echo gradients of the whole
    state, one jit for all η (vmap), against jax.grad through the same integrator."""
    loss = lambda s: cost(echo.evolve(hamiltonian, s, t1, steps, integrator=integrator))
    exact = echo.to_real(hamiltonian, echo.state_gradient(hamiltonian, loss, s0))

    @jax.jit
    def errs(eta):
        out = []
        for sym in (False, True):
            g = echo.echo_gradient(
                hamiltonian,
                s0,
                cost,
                eta,
                t1,
                steps,
                symmetric=sym,
                integrator=integrator,
                check=False,
            )
            d = echo.to_real(hamiltonian, g) - exact
            out.append(jnp.linalg.norm(d) / jnp.linalg.norm(exact))
        return jnp.stack(out)

    e = np.asarray(jax.vmap(errs)(ETAS))
    return e[:, 0], e[:, 1]


def duffing_setup(coupling=None):
    kc, kn = jax.random.split(jax.random.key(1))
    mac = echo.DuffingNetwork(2, 1, 6, t1=5.0, num_steps=250, coupling=coupling, key=kc)
    theta = 0.5 * jnp.asarray(np.random.default_rng(1).normal(size=6))
    s0 = mac.initial_state(jnp.array([1.0, -1.0]), theta)
    y = jnp.array([-0.5])
    return mac, s0, lambda s: echo.squared_error(mac.output(s), y)


def check_orders(one, sym):
    # One-sided: error ∝ η, so 10× per decade (required: 10 ± 20% between 1e-2 and 1e-5).
    r1 = one[:-1] / one[1:]
    assert np.all(np.abs(r1 / 10 - 1) < 0.2), one
    # Symmetric: ∝ η², 100× per decade between 1e-2 and 1e-4 (below, round-off).
    r2 = sym[:2] / sym[1:3]
    assert np.all(np.abs(r2 / 100 - 1) < 0.2), sym


def test_echo_gradient_duffing_leapfrog():
    mac, s0, cost = duffing_setup()
    one, sym = relative_errors(mac.hamiltonian, s0, cost, mac.t1, mac.num_steps)
    # measured: one-sided 2.41e-2, 2.45e-3, 2.45e-4, 2.45e-5;
    # symmetric 8.58e-4, 8.58e-6, 8.58e-8, 9.3e-10 (round-off floor at 1e-5)
    check_orders(one, sym)
    assert sym[1] <= 1e-5  # η = 1e-3


def test_echo_gradient_with_mlp_coupling():
    """Couplings given by a dl.MLP potential V_c(q): still exact (only q-dependent)."""
    net = dl.MLP(9, "scalar", 8, 1, "tanh", key=jax.random.key(3))
    mac, s0, cost = duffing_setup(coupling=net)
    assert echo.check_time_reversal(mac.hamiltonian, s0) < 1e-14
    one, sym = relative_errors(mac.hamiltonian, s0, cost, mac.t1, mac.num_steps)
    # measured: one-sided 1.64e-2 … 1.64e-5; symmetric 3.36e-4, 3.36e-6, 3.36e-8, 3.5e-10
    check_orders(one, sym)
    assert sym[1] <= 1e-5


def test_echo_gradient_kerr_lattice_wirtinger():
    """Complex form: the echo returns Φ − iη∂L/∂Φ*; compare ∂L/∂ReΦ + i∂L/∂ImΦ."""
    mac = echo.KerrLattice(t1=5.0, num_steps=125)  # authors' dt = 0.04, shorter T
    th = jax.random.uniform(jax.random.key(0), (16,))
    amp = 0.832
    s0 = mac.initial_state(jnp.array([amp, -amp]), th / jnp.linalg.norm(th))
    y = jnp.array([-amp / 2])
    cost = lambda s: echo.squared_error(mac.output(s), y)
    one, sym = relative_errors(mac.hamiltonian, s0, cost, mac.t1, mac.num_steps)
    # measured: one-sided 6.58e-3, 6.65e-4, 6.66e-5, 6.67e-6;
    # symmetric 8.50e-5, 8.50e-7, 8.47e-9, 5.9e-10
    check_orders(one, sym)
    assert sym[1] <= 1e-5


def test_echo_gradient_nonseparable_implicit_midpoint():
    """Any H(q, p) with the implicit midpoint rule (reversible to its 1e-15 solve)."""
    h = echo.CanonicalHamiltonian(
        lambda q, p: jnp.sum(0.5 * p**2 * (1 + 0.5 * q**2) + 0.5 * q**2 + 0.25 * q**4)
    )
    s0 = (jnp.array([0.7, -0.3, 1.1]), jnp.zeros(3))
    cost = lambda s: (s[0][0] - 0.3) ** 2
    im = echo.ImplicitMidpoint()
    # jax.grad cannot differentiate the while-loop solve; use forward mode as truth
    loss = lambda x: cost(
        echo.evolve(h, echo.from_real(h, x, s0), 2.0, 40, integrator=im)
    )
    exact = jax.jacfwd(loss)(echo.to_real(h, s0))
    g = echo.echo_gradient(h, s0, cost, 1e-3, 2.0, 40, integrator=im)
    err = jnp.linalg.norm(echo.to_real(h, g) - exact) / jnp.linalg.norm(exact)
    assert err < 1e-5, err  # symmetric echo at η = 1e-3: measured 1.8e-6


def test_nonreversible_integrator_breaks_the_echo():
    """RK4 at a coarse step: the echo does not retrace, so the one-sided estimate picks
    up reversal_error/η and gets WORSE as η shrinks; the symmetric one plateaus."""
    mac, s0, cost = duffing_setup()
    rk4, steps = echo.RK4(), 50  # h = 0.1
    one, sym = relative_errors(mac.hamiltonian, s0, cost, mac.t1, steps, integrator=rk4)
    # measured: one-sided 2e-2, 6e-2, 0.63, 6.3 (∝ 1/η); symmetric stuck at 7.7e-5
    assert np.all(np.diff(one) > 0) and one[-1] > 100 * one[0], one
    assert sym[-1] > 1e-6, sym  # no convergence to the exact gradient
    # the leapfrog echo at the same coarse step is exact (reversibility, not accuracy)
    one_lf, _ = relative_errors(mac.hamiltonian, s0, cost, mac.t1, steps)
    assert one_lf[-1] < 1e-4, one_lf  # measured 2.46e-5 (= c·η)


def test_rhel_gradient_of_constants_inside_h():
    """Static parameters (stiffnesses k_i and a coupling scale c inside V) from the
    ε-contrast of two echoes (RHEL, arXiv:2506.05259 eq. 7) vs jax.grad: O(ε²)."""
    n = 5
    a = 0.3 * np.random.default_rng(0).normal(size=(n, n))
    coupling = jnp.asarray(0.5 * (a + a.T))

    def make(th):
        return echo.SeparableHamiltonian(
            lambda q: (
                0.5 * jnp.sum(th["k"] * q**2)
                + 0.25 * jnp.sum(q**4)
                + 0.5 * q @ (th["c"] * coupling) @ q
            )
        )

    th = {"k": 1.0 + 0.5 * jnp.arange(n) / n, "c": jnp.array(1.0)}
    s0 = (jnp.asarray(np.random.default_rng(2).normal(size=n)), jnp.zeros(n))
    cost = lambda s: (s[0][0] - 0.3) ** 2 + (s[0][1] + 0.2) ** 2
    exact = jax.grad(lambda t: cost(echo.evolve(make(t), s0, 4.0, 200)))(th)
    flat = lambda g: jnp.concatenate([g["k"], g["c"][None]])
    rhel = jax.jit(
        jax.vmap(lambda e: flat(echo.rhel_gradient(make, th, s0, cost, e, 4.0, 200)))
    )
    errs = np.asarray(
        jnp.linalg.norm(rhel(jnp.array([1e-2, 1e-3])) - flat(exact), axis=1)
        / jnp.linalg.norm(flat(exact))
    )
    # ∝ ε²: measured 1.96e-5, 1.96e-7 (ε = 1e-2, 1e-3)
    assert abs(errs[0] / errs[1] / 100 - 1) < 0.2, errs
    assert errs[1] < 1e-5, errs
    with pytest.raises(TypeError, match="SeparableHamiltonian"):
        echo.rhel_gradient(
            lambda t: echo.CanonicalHamiltonian(lambda q, p: jnp.sum(p**2 + q**2)),
            th,
            s0,
            cost,
            1e-3,
            1.0,
            10,
        )
