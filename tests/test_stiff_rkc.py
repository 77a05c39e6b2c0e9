"""RKC2: stability boundary, closed-form quadratics, order, MLP vs Tsit5, bad input."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import stiff_quadratic

import dynlearn as dl
from dynlearn.stiff import RKC2, ROS2K, stability_boundary


def _quadratic(kappa, n=12):
    """The shared stiff quadratic with a dict pytree of parameters."""
    loss, exact, w0 = stiff_quadratic(kappa, n)
    return lambda p: loss(p["w"]), exact, w0


def test_stability_boundary_matches_asymptote():
    # β(s) = (1+w0) T_s''/T_s' with ε = 2/13 tends to 0.653 s² (Verwer et al. 2004).
    betas = np.array([float(stability_boundary(s)) for s in (10, 50, 200)])
    ratio = betas / (0.653 * np.array([10, 50, 200]) ** 2)
    assert np.all(np.abs(ratio - 1) < 0.01), ratio  # measured 0.9906, 1.0002, 1.0000
    # And the polynomial is really stable there: |R(-β)| ≤ 1 on [-β, 0] for s = 10,
    # checked by applying one fixed RKC step to y' = -λy on a grid of λh.
    lams = jnp.linspace(0.0, 0.99 * betas[0], 200)
    term = dfx.ODETerm(lambda t, y, a: -lams * y)
    # ρ = max λ is found by the power iteration; safety 1 keeps s = 10 at h = 1.
    solver = RKC2(safety=1.0, power_iterations=50)
    st = solver.init(term, 0.0, 1.0, jnp.ones_like(lams), None)
    y1, *_ = solver.step(term, 0.0, 1.0, jnp.ones_like(lams), None, st, False)
    assert float(jnp.max(jnp.abs(y1))) <= 1.0 + 1e-12


@pytest.mark.parametrize("kappa", [1e2, 1e4, 1e6])
def test_quadratic_matches_closed_form(kappa):
    loss, exact, w0 = _quadratic(kappa)
    rtol = 1e-6
    t1 = 50.0
    tr = dl.gradient_flow(
        loss, {"w": w0}, t1, solver=RKC2(), rtol=rtol, atol=1e-8, num_saves=6
    )
    for t, w in zip(tr.ts, tr.params["w"]):
        err = float(jnp.max(jnp.abs(w - exact(t, w0))))
        # The controller bounds the local error per step by ~rtol; the global error
        # accumulates over the steps. Measured max over saves (‖θ0−θ*‖∞ = 1):
        # 5.9e-6, 1.6e-5, 4.5e-6 for κ = 1e2, 1e4, 1e6; bound 30·rtol (2× margin).
        assert err < 30 * rtol, (t, err)
    assert tr.stats["num_budget_rejections"] == 0


def test_order_two():
    # Fixed steps: global error ∝ h², slope 2 in log-log. (Modes with hλ well inside
    # the stability interval decay only by the damped Chebyshev factor |R| ≈ 0.95,
    # not by e^{-hλ}: RKC is stable, not L-stable, so the order test keeps hλ ≤ 1.)
    lam = jnp.array([1.0, 3.0, 10.0])
    term = dfx.ODETerm(lambda t, y, a: -lam * y)
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    errs = []
    for h in hs:
        sol = dfx.diffeqsolve(
            term,
            RKC2(),
            0.0,
            4.0,
            float(h),
            jnp.ones(3),
            stepsize_controller=dfx.ConstantStepSize(),
        )
        errs.append(float(jnp.max(jnp.abs(sol.ys[-1] - jnp.exp(-lam * 4.0)))))
    slope, _ = dl.fit_slope(hs, np.array(errs))
    assert abs(slope - 2.0) < 0.15, (slope, errs)  # measured 2.0x


@pytest.mark.slow
def test_mlp_matches_tight_tsit5_and_is_cheaper():
    key = jax.random.key(0)
    x = jax.random.normal(key, (24, 1))
    y = jnp.sin(3 * x[:, 0])
    m = dl.MLP(1, "scalar", 12, 2, key=jax.random.key(1))
    loss = lambda p: jnp.mean((jax.vmap(p)(x) - y) ** 2)
    t1 = 100.0
    kw = dict(save_params=False, check_stiffness=False)
    ref = dl.gradient_flow(loss, m, t1, rtol=1e-11, atol=1e-13, **kw)
    tr = dl.gradient_flow(loss, m, t1, solver=RKC2(), rtol=1e-7, atol=1e-9, **kw)
    pr = dl.ravel_params(ref.final_params)
    rel = float(jnp.linalg.norm(dl.ravel_params(tr.final_params) - pr))
    rel /= float(jnp.linalg.norm(pr))
    assert rel < 1e-5, rel  # measured ~1e-6 at rtol 1e-7
    tsit = dl.gradient_flow(loss, m, t1, rtol=1e-7, atol=1e-9, **kw)
    assert tr.stats["num_vf_evals"] < tsit.stats["num_vf_evals"] / 2
    assert tr.stats["num_hvps"] > 0 and tr.stats["max_stages_used"] >= 2


def test_counts_exact_without_rejections():
    # ConstantStepSize never rejects: cost = 1 (init f) + power(init) + per step
    # (s + power_iterations), with s = 1 + ⌊√(1 + 1.54 h ρ safety)⌋ ≥ 2.
    lam = jnp.array([0.5, 80.0])
    term = dfx.ODETerm(lambda t, y, a: -lam * y)
    solver = RKC2(power_iterations=3, safety=1.0)
    sol = dfx.diffeqsolve(
        term,
        solver,
        0.0,
        1.0,
        0.1,
        jnp.ones(2),
        stepsize_controller=dfx.ConstantStepSize(),
        saveat=dfx.SaveAt(t1=True, solver_state=True),
    )
    c = RKC2.evaluation_counts(sol.solver_state)
    n = int(sol.stats["num_steps"])
    assert n == 10
    # ρ = 80 exactly after warm start on a diagonal matrix; hρ = 8 → s = 4.
    assert c["max_stages_used"] == 4
    assert c["num_vf_evals"] == 1 + 4 * n
    assert c["num_jvps"] == 12 + 3 * n


def test_stage_limit_is_reported_not_accepted():
    lam = jnp.array([1e3])
    term = dfx.ODETerm(lambda t, y, a: -lam * y)
    sol = dfx.diffeqsolve(
        term,
        RKC2(max_stages=3),
        0.0,
        1.0,
        0.5,
        jnp.ones(1),
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
        saveat=dfx.SaveAt(t1=True, solver_state=True),
    )
    assert float(jnp.abs(sol.ys[-1, 0])) < 1e-6  # stable: steps shrank to fit s ≤ 3
    assert int(sol.solver_state.max_stages_used) <= 3
    # Through gradient_flow the rejections are counted (dt0 = 0.5 needs s ≈ 29).
    tr = dl.gradient_flow(
        lambda w: 500.0 * jnp.sum(w**2),
        jnp.ones(1),
        1.0,
        solver=RKC2(max_stages=3),
        dt0=0.5,
        rtol=1e-6,
        atol=1e-8,
    )
    assert tr.stats["num_budget_rejections"] >= 1
    assert tr.stats["max_stages_used"] <= 3
    np.testing.assert_allclose(tr.final_params, jnp.exp(-1000.0), atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="max_stages"):
        RKC2(max_stages=1)
    with pytest.raises(ValueError, match="power_iterations"):
        RKC2(power_iterations=0)
    with pytest.raises(ValueError, match="safety"):
        RKC2(safety=0.5)


@pytest.mark.parametrize("solver", [RKC2(), ROS2K()], ids=["RKC2", "ROS2K"])
def test_loss_without_hvp_is_a_clear_error(solver):
    """A loss whose gradient comes from outside JAX (a custom VJP computed by a host
    callback, as for an external simulator) has no forward-mode derivative, so no
    HVP: the stiff solvers must say so at compile time, before any integration."""

    def host_grad(w):
        return jax.pure_callback(
            lambda a: 4 * np.asarray(a) ** 3, jax.ShapeDtypeStruct(w.shape, w.dtype), w
        )

    @jax.custom_vjp
    def quartic(w):
        return jnp.sum(w**4)

    quartic.defvjp(lambda w: (quartic(w), w), lambda w, g: (g * host_grad(w),))
    loss = lambda p: quartic(p["w"])
    params = {"w": jnp.ones(3)}
    name = type(solver).__name__
    with pytest.raises(ValueError, match=rf"{name} needs Hessian-vector.*custom_vjp"):
        dl.gradient_flow(loss, params, 1.0, solver=solver)
    # Explicit solvers work (the sharpness diagnostic is skipped), and "auto" picks one.
    tr = dl.gradient_flow(loss, params, 1.0, solver=dfx.Tsit5())
    np.testing.assert_allclose(tr.final_params["w"], 1 / 3, rtol=1e-5)  # 1/√(1+8t)
    assert np.isnan(tr.stats["final_sharpness"])
    assert dl.gradient_flow(loss, params, 1.0, solver="auto").stats["solver"] == "Tsit5"


def test_auto_and_gradient_flow_counts():
    loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p**2)
    w0 = jnp.ones(2)
    # λ_max T = 100·100 ≫ 200 → RKC2; 100·1 < 200 → Tsit5.
    tr = dl.gradient_flow(loss, w0, 100.0, solver="auto", rtol=1e-8, atol=1e-10)
    assert tr.stats["solver"] == "RKC2"
    assert dl.gradient_flow(loss, w0, 1.0, solver="auto").stats["solver"] == "Tsit5"
    exact = jnp.exp(-jnp.array([1.0, 100.0]) * 100.0)
    assert float(jnp.max(jnp.abs(tr.final_params - exact))) < 1e-7  # measured ~1e-9
    # The HVP count is the number of power-iteration JVPs: 4 at init + 1 per
    # attempted step (accepted or rejected; num_steps counts both).
    s = tr.stats
    assert s["num_steps"] == s["num_accepted_steps"] + s["num_rejected_steps"]
    assert s["num_hvps"] == s["num_jvps"] == 4 + s["num_steps"]
    # Every attempt has s ≥ 2 stages (f evaluations), plus f(θ0) at init.
    assert s["num_gradient_evals"] == s["num_vf_evals"] >= 1 + 2 * s["num_steps"]
    with pytest.raises(ValueError, match="auto"):
        dl.gradient_flow(loss, w0, 1.0, solver="rkc")


def test_counts_include_rejected_attempts():
    """Gradients + HVPs reported by gradient_flow, rejected attempts included, equal a
    host counter inside the loss (each gradient or HVP evaluates the loss once).
    The few evaluations outside the solve (input check, saved losses) are measured
    with Tsit5, whose count diffrax-independent tests already pin down."""
    calls = [0]

    def bump(*_):
        calls[0] += 1

    lam = jnp.logspace(0, 3, 12)

    def loss(w):
        jax.debug.callback(bump)
        return 0.5 * jnp.sum(lam * w**2) + 0.1 * jnp.sum(w**4)

    kw = dict(rtol=1e-6, atol=1e-8, check_stiffness=False, num_saves=2)
    counted = {}
    for name, solver, dt0 in (
        ("tsit5", "tsit5", 1e-3),
        # dt0 = 1 needs ~50 substeps of ≤ 6 stages: budget rejections at first.
        ("rkc2", RKC2(max_stages=6, max_substeps=4), 1.0),
    ):
        calls[0] = 0
        tr = dl.gradient_flow(loss, jnp.ones(12), 2.0, solver=solver, dt0=dt0, **kw)
        jax.effects_barrier()
        counted[name] = (calls[0], tr.stats)
    overhead = counted["tsit5"][0] - counted["tsit5"][1]["num_vf_evals"]
    calls_rkc, st = counted["rkc2"]
    assert st["num_rejected_steps"] > 0 and st["num_budget_rejections"] > 0
    assert calls_rkc - overhead == st["num_vf_evals"] + st["num_jvps"]


def _wide_quadratic(n=12):
    """Rotated quadratic with eigenvalues 1 … 1e5 and minimum at linspace(-1, 1)."""
    lam = jnp.logspace(0.0, 5.0, n)
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (n, n)))
    star = jnp.linspace(-1.0, 1.0, n)
    h = (q * lam) @ q.T
    loss = lambda w: 0.5 * (w - star) @ h @ (w - star)
    exact = lambda t, w0: star + (q * jnp.exp(-lam * t)) @ q.T @ (w0 - star)
    return loss, exact, jnp.zeros(n)


@pytest.mark.parametrize("max_stages", [None, 150, 250, 400])
def test_stage_budget_never_breaks_a_solve(max_stages):
    """A larger stage budget must not break a solve, and the budget sets the
    substep instead of costing rejected attempts. (Formerly a step over budget was
    computed with the capped stage count far outside its stability interval; the
    candidate overflowed, the controller got inf/inf and proposed a NaN step: with
    max_stages = 250 the solve sat at t ≈ 26 until max_steps. At the default budget
    560 of 1783 attempts, 31%, were budget rejections.)"""
    loss, exact, w0 = _wide_quadratic()
    rtol = 1e-6
    solver = RKC2() if max_stages is None else RKC2(max_stages=max_stages)
    kw = dict(rtol=rtol, atol=1e-8, num_saves=4, check_stiffness=False)
    tr = dl.gradient_flow(loss, w0, 30.0, solver=solver, **kw)
    assert tr.stats["t_final"] == 30.0
    err = max(
        float(jnp.max(jnp.abs(w - exact(t, w0)))) for t, w in zip(tr.ts, tr.params)
    )
    # Measured 1.5e-7 … 7.5e-7 (‖θ0 − θ*‖∞ = 1); the usual 30·rtol bound.
    assert err < 30 * rtol, err
    s = tr.stats
    assert s["max_stages_used"] <= (200 if max_stages is None else max_stages)
    assert s["num_budget_rejections"] < 0.05 * s["num_steps"], s  # measured 0
