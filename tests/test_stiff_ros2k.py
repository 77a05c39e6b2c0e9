"""ROS2K (Rosenbrock–Krylov): closed-form quadratics, order 2, L-stability, MLP vs
Tsit5, exact evaluation counts, Krylov budget, bad input."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import stiff_quadratic

import dynlearn as dl
from dynlearn.stiff import ROS2K


jax.config.update("jax_enable_x64", True)

GAMMA = 1.0 + 2.0**-0.5


@pytest.mark.parametrize("kappa", [1e2, 1e4, 1e6])
def test_quadratic_matches_closed_form(kappa):
    loss, exact, w0 = stiff_quadratic(kappa)
    rtol = 1e-4
    tr = dl.gradient_flow(loss, w0, 50.0, solver=ROS2K(), rtol=rtol, atol=1e-6)
    for t, w in zip(tr.ts, tr.params):
        err = float(jnp.max(jnp.abs(w - exact(t, w0))))
        # ‖θ0−θ*‖∞ = 1. The global error is proportional to the tolerance:
        # measured max over saves 1.1e-4, 1.3e-4, 7.3e-5 for κ = 1e2, 1e4, 1e6
        # (and 1.2e-6 at rtol 1e-6, κ = 1e2); bound 4·rtol.
        assert err < 4 * rtol, (kappa, t, err)
    assert tr.stats["num_budget_rejections"] == 0


def test_order_two_and_stability_function():
    # Fixed steps on y' = -λy: global error ∝ h² (slope 2 in log-log) ...
    lam = jnp.array([1.0, 3.0, 10.0])
    term = dfx.ODETerm(lambda t, y, a: -lam * y)
    hs = np.array([0.04, 0.02, 0.01, 0.005])
    errs = []
    for h in hs:
        sol = dfx.diffeqsolve(
            term,
            ROS2K(krylov_tol=1e-12),
            0.0,
            2.0,
            float(h),
            jnp.ones(3),
            stepsize_controller=dfx.ConstantStepSize(),
        )
        errs.append(float(jnp.max(jnp.abs(sol.ys[-1] - jnp.exp(-lam * 2.0)))))
    slope, _ = dl.fit_slope(hs, np.array(errs))
    assert abs(slope - 2.0) < 0.1, (slope, errs)
    # ... one step multiplies each mode by R(z), z = -hλ, the L-stable ROS2 function
    # (1 + (1-2γ)z + (γ²-2γ+½)z²)/(1-γz)², R(-∞) = 0: stiff modes die in one step.
    lam = jnp.array([1e-3, 1.0, 10.0, 1e3, 1e8])
    term = dfx.ODETerm(lambda t, y, a: -lam * y)
    solver = ROS2K(krylov_tol=1e-13)
    st = solver.init(term, 0.0, 1.0, jnp.ones(5), None)
    y1, *_ = solver.step(term, 0.0, 1.0, jnp.ones(5), None, st, False)
    z = -lam
    r = (1 + (1 - 2 * GAMMA) * z + (GAMMA**2 - 2 * GAMMA + 0.5) * z**2) / (
        1 - GAMMA * z
    ) ** 2
    np.testing.assert_allclose(y1, r, rtol=1e-10, atol=1e-13)
    assert abs(float(y1[-1])) < 1e-8


@pytest.mark.slow
def test_mlp_matches_tight_tsit5():
    x = jax.random.normal(jax.random.key(0), (24, 1))
    y = jnp.sin(3 * x[:, 0])
    m = dl.MLP(1, "scalar", 12, 2, key=jax.random.key(1))
    loss = lambda p: jnp.mean((jax.vmap(p)(x) - y) ** 2)
    kw = dict(save_params=False, check_stiffness=False)
    ref = dl.gradient_flow(loss, m, 50.0, rtol=1e-11, atol=1e-13, **kw)
    tr = dl.gradient_flow(loss, m, 50.0, solver=ROS2K(), rtol=1e-4, atol=1e-6, **kw)
    pr = dl.ravel_params(ref.final_params)
    rel = float(jnp.linalg.norm(dl.ravel_params(tr.final_params) - pr))
    rel /= float(jnp.linalg.norm(pr))
    assert rel < 1e-4, rel  # measured 1.4e-6
    assert tr.stats["num_hvps"] > 0 and tr.stats["max_krylov_iterations"] >= 1


def test_counts_equal_an_independent_counter():
    """Vector-field evaluations and JVPs counted by host callbacks inside the field
    and inside its JVP rule equal the solver's own counts."""
    calls = {"vf": 0, "jvp": 0}

    def bump(name):
        def f(*_):
            calls[name] += 1

        return f

    lam = jnp.array([0.5, 3.0, 80.0])

    @jax.custom_jvp
    def field(y):
        jax.debug.callback(bump("vf"))
        return -lam * y

    @field.defjvp
    def _(primals, tangents):
        (y,), (ty,) = primals, tangents
        jax.debug.callback(bump("jvp"), ty)
        return field(y), -lam * ty

    sol = dfx.diffeqsolve(
        dfx.ODETerm(lambda t, y, a: field(y)),
        ROS2K(),
        0.0,
        1.0,
        0.1,
        jnp.ones(3),
        stepsize_controller=dfx.ConstantStepSize(),
        saveat=dfx.SaveAt(t1=True, solver_state=True),
    )
    jax.effects_barrier()
    counts = ROS2K.evaluation_counts(sol.solver_state)
    assert counts["num_vf_evals"] == calls["vf"] == 2 * 10
    assert counts["num_jvps"] == calls["jvp"] > 2 * 10


def test_krylov_budget_is_reported_not_accepted():
    # Ten distinct curvatures: CG needs up to 11 iterations for (I + γhH)k = f unless
    # γh·λ_max is small, so with a budget of 4 the large steps are rejected (and
    # counted) and shrunk until 4 iterations suffice.
    lam = jnp.logspace(0, 2, 10)
    loss = lambda w: 0.5 * jnp.sum(lam * w**2)
    tr = dl.gradient_flow(
        loss,
        jnp.ones(10),
        0.5,
        solver=ROS2K(max_krylov_steps=4),
        dt0=0.1,
        rtol=1e-4,
        atol=1e-6,
    )
    assert tr.stats["num_budget_rejections"] >= 1
    assert tr.stats["max_krylov_iterations"] <= 4
    np.testing.assert_allclose(tr.final_params, jnp.exp(-lam * 0.5), atol=1e-4)
    unlimited = dl.gradient_flow(loss, jnp.ones(10), 0.5, solver=ROS2K(), dt0=0.1)
    assert unlimited.stats["num_budget_rejections"] == 0


def test_bad_input():
    with pytest.raises(ValueError, match="krylov_tol"):
        ROS2K(krylov_tol=0.0)
    with pytest.raises(ValueError, match="max_krylov_steps"):
        ROS2K(max_krylov_steps=0)
