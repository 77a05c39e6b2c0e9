"""`gradient_flow` against closed forms, exact evaluation counts and clear failures."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import quadratic

import dynlearn as dl


def test_quadratic_matches_matrix_exponential():
    loss, p0, flat, exact, *_ = quadratic(d=20, cond=100.0)
    t1 = 5.0
    ts = np.linspace(0.0, t1, 11)
    traj = dl.gradient_flow(loss, p0, t1, ts=ts, rtol=1e-10, atol=1e-12)
    got = np.asarray(jax.vmap(flat)(traj.params))
    want = np.stack([exact(t) for t in ts])
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    # Required: ≤ 1e-8 relative at rtol=1e-10 (measured: ~2e-11).
    assert rel.max() <= 1e-8
    np.testing.assert_allclose(traj.ts, ts)
    np.testing.assert_allclose(
        traj.loss,
        [loss(jax.tree.map(lambda a: a[i], traj.params)) for i in range(len(ts))],
    )
    assert traj.stats["num_gradient_evals"] == traj.stats["num_vf_evals"] > 0


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8", "bosh3"])
def test_error_shrinks_with_tolerance(solver):
    loss, p0, flat, exact, *_ = quadratic(d=8, cond=50.0)
    errs = []
    for rtol in (1e-4, 1e-7, 1e-10):
        traj = dl.gradient_flow(
            loss, p0, 3.0, solver=solver, rtol=rtol, atol=rtol, num_saves=2
        )
        want = exact(3.0)
        errs.append(
            np.linalg.norm(flat(traj.final_params) - want) / np.linalg.norm(want)
        )
    # Each factor-1000 tightening must gain at least a factor 30 in accuracy.
    assert errs[1] < errs[0] / 30 and errs[2] < errs[1] / 30, errs


class _CountedFlow(dl.GradientFlow):
    """Gradient flow whose every vector-field evaluation bumps a host counter."""

    def vector_field(self, loss_fn, t, state):
        jax.debug.callback(_COUNT.bump)
        return super().vector_field(loss_fn, t, state)


class _Counter:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1


_COUNT = _Counter()


@pytest.mark.parametrize(
    "solver, rtol",
    [
        ("tsit5", 1e-8),
        ("dopri5", 1e-3),
        ("dopri8", 1e-9),
        ("heun", 1e-5),
        ("kvaerno5", 1e-6),
    ],
)
def test_evaluation_count_is_exact(solver, rtol):
    # A stiff-ish quadratic plus a large initial step forces rejected steps, which is
    # where naive counts (stages × steps) go wrong for FSAL solvers.
    loss, p0, *_ = quadratic(d=6, cond=1e3, scale=50.0)
    _COUNT.n = 0
    traj = dl.gradient_flow(
        loss,
        p0,
        2.0,
        flow=_CountedFlow(),
        solver=solver,
        rtol=rtol,
        atol=rtol,
        dt0=0.5,
        check_stiffness=False,
    )
    jax.effects_barrier()
    assert traj.stats["num_vf_evals"] == _COUNT.n
    if solver in ("dopri5", "tsit5"):
        assert traj.stats["num_rejected_steps"] > 0


def test_euler_solver_is_gradient_descent():
    loss, p0, flat, *_ = quadratic(d=10, cond=10.0)
    lr, steps = 0.05, 40
    gd = dl.gradient_descent(loss, p0, lr, steps)
    ode = dl.gradient_flow(loss, p0, lr * steps, solver="euler", dt0=lr, ts=gd.ts)
    np.testing.assert_allclose(
        jax.vmap(flat)(ode.params), jax.vmap(flat)(gd.params), rtol=0, atol=1e-13
    )
    assert ode.stats["num_gradient_evals"] == steps


def test_accepts_equinox_module_and_observables():
    X = jnp.linspace(-1, 1, 16)[:, None]
    Y = jnp.sin(3 * X[:, 0])
    net = dl.MLP(1, "scalar", 8, 1, key=jax.random.key(0))
    loss = lambda m: 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2)
    traj = dl.gradient_flow(
        loss,
        net,
        5.0,
        num_saves=6,
        observables={
            "sharpness": dl.Sharpness(),
            "w0": lambda m: m.layers[0].weight.sum(),
        },
    )
    assert isinstance(traj.final_params, dl.MLP)
    assert traj.observables["sharpness"].shape == (6,)
    assert traj.observables["w0"].shape == (6,)
    assert np.all(np.diff(traj.loss) <= 0)  # gradient flow never increases the loss
    # grad_norm is recorded and agrees with a direct evaluation at the end point.
    g = jax.grad(loss)(traj.final_params)
    gn = np.sqrt(
        sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(eqx.filter(g, eqx.is_array)))
    )
    np.testing.assert_allclose(traj.observables["grad_norm"][-1], gn, rtol=1e-10)


# ---------------------------------------------------------------------------------
# Bad input and failures.


def _scalar_loss(p):
    return jnp.sum(p["w"] ** 2)


def test_non_scalar_loss():
    with pytest.raises(TypeError, match=r"must return a scalar.*shape \(3,\)"):
        dl.gradient_flow(lambda p: p["w"] ** 2, {"w": jnp.ones(3)}, 1.0)


def test_non_float_leaves():
    with pytest.raises(TypeError, match=r"\['n'\]|n.*int"):
        dl.gradient_flow(
            lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones(3), "n": jnp.arange(3)}, 1.0
        )


def test_unknown_solver_lists_choices():
    with pytest.raises(ValueError, match="tsit5"):
        dl.gradient_flow(_scalar_loss, {"w": jnp.ones(3)}, 1.0, solver="rk45")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_nonpositive_learning_rate(bad):
    with pytest.raises(ValueError, match="lr"):
        dl.gradient_descent(_scalar_loss, {"w": jnp.ones(3)}, bad, 10)
    with pytest.raises(ValueError, match="lr"):
        dl.ModifiedGradientFlow(bad)


def test_bad_time_span():
    with pytest.raises(ValueError, match="t1"):
        dl.gradient_flow(_scalar_loss, {"w": jnp.ones(3)}, -1.0)


def test_fixed_step_solver_needs_dt0():
    with pytest.raises(ValueError, match="dt0"):
        dl.gradient_flow(_scalar_loss, {"w": jnp.ones(3)}, 1.0, solver="euler")


def test_finite_time_blowup_stops_early_and_reports_time():
    # Φ = −θ⁴/4 gives θ' = θ³, θ(t) = 1/sqrt(1 − 2t): blow-up at t* = 1/2.
    loss = lambda p: -0.25 * jnp.sum(p**4)
    with pytest.raises(dl.NonFiniteError, match=r"t = 0\.(5|49)") as info:
        dl.gradient_flow(loss, jnp.ones(()), 10.0)
    partial = info.value.trajectory
    assert partial.ts[-1] <= partial.stats["t_final"]
    assert 0.49 < partial.stats["t_final"] < 0.51  # the numerical blow-up time
    assert np.all(np.isfinite(partial.loss))


def test_nan_mid_solve_stops_early_and_reports_time():
    # Φ = sqrt(θ): θ' = −1/(2 sqrt θ) reaches 0 at t* = 4/3, after which Φ is NaN.
    loss = lambda p: jnp.sqrt(p)
    with pytest.raises(dl.NonFiniteError, match=r"t = 1\.33") as info:
        dl.gradient_flow(loss, jnp.ones(()), 100.0, max_steps=10_000)
    assert 1.3 < info.value.trajectory.stats["t_final"] <= 4 / 3 + 1e-9


def test_max_steps_is_reported():
    loss, p0, *_ = quadratic(d=4, cond=10.0)
    with pytest.raises(RuntimeError, match="max_steps=5"):
        dl.gradient_flow(loss, p0, 100.0, max_steps=5)


def test_loose_tolerance_warns_stiffness():
    # Sharpness 400 with Tsit5 at a loose tolerance on a long horizon: the controller
    # rides the stability limit and the answer is not gradient flow's.
    H = jnp.diag(jnp.array([400.0, 1e-2]))
    loss = lambda p: 0.5 * p @ (H @ p)
    with pytest.warns(dl.StiffnessWarning, match="stab"):
        dl.gradient_flow(loss, jnp.array([1.0, 1.0]), 200.0, rtol=1e-3, atol=1e-3)


def test_tight_tolerance_does_not_warn(recwarn):
    H = jnp.diag(jnp.array([4.0, 1.0]))
    loss = lambda p: 0.5 * p @ (H @ p)
    dl.gradient_flow(loss, jnp.array([1.0, 1.0]), 3.0, rtol=1e-8)
    assert not [w for w in recwarn if issubclass(w.category, dl.StiffnessWarning)]


def test_explicit_diffrax_solver_and_controller():
    loss, p0, flat, exact, *_ = quadratic(d=6, cond=10.0)
    traj = dl.gradient_flow(
        loss,
        p0,
        1.0,
        solver=dfx.Dopri8(),
        stepsize_controller=dfx.PIDController(rtol=1e-11, atol=1e-11),
        num_saves=2,
    )
    np.testing.assert_allclose(flat(traj.final_params), exact(1.0), rtol=1e-9)


_NAN_LOSS = lambda p: jnp.log(-1.0) + jnp.sum(p**2)  # NaN, with a finite gradient
_NAN_GRAD = lambda p: jnp.sum(jnp.sqrt(p))  # NaN and a NaN gradient at p < 0


@pytest.mark.parametrize(("solver", "dt0"), [("tsit5", None), ("euler", 0.1)])
def test_nan_loss_is_named_for_adaptive_and_fixed_step_solvers(solver, dt0):
    with pytest.raises(
        dl.NonFiniteError,
        match=r"loss became non-finite \(NaN/inf\) at t = 0 \(the initial parameters\)",
    ):
        dl.gradient_flow(_NAN_LOSS, jnp.ones(2), 1.0, solver=solver, dt0=dt0)


def test_nan_gradient_is_named_not_a_collapsed_step():
    # Adaptive: every step is rejected; the message names the non-finite loss and
    # gradient at t0, not a "finite-time blow-up".
    with pytest.raises(
        dl.NonFiniteError,
        match=r"loss and its gradient are non-finite \(NaN/inf\) at t = 0 \(the "
        r"initial parameters; t1 = 1\)",
    ):
        dl.gradient_flow(_NAN_GRAD, -jnp.ones(2), 1.0)
    # Fixed step: the first step makes the parameters NaN, and the cause is named.
    with pytest.raises(dl.NonFiniteError) as info:
        dl.gradient_flow(_NAN_GRAD, -jnp.ones(2), 1.0, solver="euler", dt0=0.1)
    msg = str(info.value)
    assert "non-finite (NaN/inf) at t = 0.1 (step 1 of dt0 = 0.1; t1 = 1)" in msg
    assert "loss was already non-finite at t = 0 (the initial parameters)" in msg
