"""The discrete engine (`dl.iterate` and its wrappers) and the transformable solves:
vmap, jit and grad against eager runs and closed forms, compilation reuse, any Equinox
model, divergence reporting, optax line-search optimisers and custom steppers."""

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest
from helpers import tree_flat

import dynlearn as dl


# ----------------------------------------------------------------------------------
# problems


def _quadratic(d=4, seed=0):
    """Φ(θ) = ½ θᵀHθ with H = Q diag(λ) Qᵀ, λ in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = np.linspace(0.5, 2.0, d)
    H = (q * lam) @ q.T
    Hj = jnp.asarray(H)
    theta0 = rng.normal(size=d)

    def loss(p):
        return 0.5 * p @ (Hj @ p)

    return loss, jnp.asarray(theta0), q, lam


_QUAD = _quadratic()


def _tanh_problem(seed=0):
    """A small tanh regression on a dict of arrays: a nonlinear loss with data."""
    k1, k2, k3, k4 = jr.split(jr.key(seed), 4)
    X = jr.normal(k1, (8, 2))
    Y = jnp.sin(X[:, 0]) - 0.5 * X[:, 1]
    params = {"w": 0.8 * jr.normal(k2, (2, 3)), "v": 0.8 * jr.normal(k3, (3,))}

    def loss(p, data):
        x, y = data
        return 0.5 * jnp.mean((jnp.tanh(x @ p["w"]) @ p["v"] - y) ** 2)

    return loss, params, (X, Y), k4


def _tanh_loss_closed(p):
    loss, _, data, _ = _TANH
    return loss(p, data)


_TANH = _tanh_problem()


def _assert_tree_close(a, b, atol, rtol=0.0):
    np.testing.assert_allclose(tree_flat(a), tree_flat(b), rtol=rtol, atol=atol)


def _assert_tree_equal(a, b):
    la, lb = jtu.tree_leaves(a), jtu.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------------
# 1. vmap over learning rates


def test_vmap_over_learning_rates_equals_eager_calls_and_closed_form():
    loss, theta0, q, lam = _QUAD
    steps = 20
    lrs = jnp.linspace(0.05, 0.9, 16)
    batched = jax.vmap(lambda lr: dl.gradient_descent(loss, theta0, lr, steps))(lrs)
    assert batched.final_params.shape == (16, 4)
    assert batched.loss.shape == (16, steps + 1)
    c0 = q.T @ np.asarray(theta0)
    for i, lr in enumerate(np.asarray(lrs)):
        eager = dl.gradient_descent(loss, theta0, float(lr), steps)
        np.testing.assert_allclose(
            batched.final_params[i], eager.final_params, rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(batched.loss[i], eager.loss, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batched.ts[i], lr * np.arange(steps + 1), rtol=1e-15)
        # per eigen-direction: (Qᵀθ_k)_i = (1 - ηλ_i)^k (Qᵀθ_0)_i
        for k in (0, 1, 5, steps):
            want = (1 - lr * lam) ** k * c0
            got = q.T @ np.asarray(batched.params[i, k])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        want_loss = 0.5 * np.sum(lam * ((1 - lr * lam) ** steps * c0) ** 2)
        np.testing.assert_allclose(batched.loss[i, -1], want_loss, rtol=1e-12)


# ----------------------------------------------------------------------------------
# 2. compilation reuse


def test_new_values_do_not_recompile():
    loss, theta0, _, _ = _QUAD
    dl.gradient_descent(loss, theta0, 0.1, 10)
    second = dl.gradient_descent(loss, theta0, 0.37, 10)
    assert second.stats["num_compilations"] == 0
    np.testing.assert_allclose(second.ts[-1], 3.7, rtol=1e-15)

    kw = dict(rtol=1e-8, atol=1e-10, num_saves=3)
    dl.gradient_flow(loss, theta0, 1.0, **kw)
    flow2 = dl.gradient_flow(loss, 2.0 * theta0, 1.0, **kw)
    assert flow2.stats["num_compilations"] == 0
    # the flow is linear in θ0, so the second solve is twice the first at t = 0
    np.testing.assert_allclose(flow2.params[0], 2.0 * theta0, rtol=0, atol=0)


def test_new_args_data_do_not_recompile():
    loss, params, (X, Y), key = _TANH
    X2 = jr.normal(key, X.shape)
    Y2 = jnp.cos(X2[:, 1])
    dl.gradient_descent(loss, params, 0.1, 5, args=(X, Y))
    gd2 = dl.gradient_descent(loss, params, 0.1, 5, args=(X2, Y2))
    assert gd2.stats["num_compilations"] == 0
    # the new data are used: the same run with the data closed over
    closed = dl.gradient_descent(lambda p: loss(p, (X2, Y2)), params, 0.1, 5)
    np.testing.assert_allclose(gd2.loss, closed.loss, rtol=1e-13)
    _assert_tree_close(gd2.final_params, closed.final_params, atol=1e-13)

    kw = dict(rtol=1e-8, atol=1e-10, num_saves=3)
    dl.gradient_flow(loss, params, 0.5, args=(X, Y), **kw)
    f2 = dl.gradient_flow(loss, params, 0.5, args=(X2, Y2), **kw)
    assert f2.stats["num_compilations"] == 0
    fc = dl.gradient_flow(lambda p: loss(p, (X2, Y2)), params, 0.5, **kw)
    np.testing.assert_allclose(f2.loss, fc.loss, rtol=1e-12)


# ----------------------------------------------------------------------------------
# 3. jit and grad


def test_jit_of_gradient_flow_equals_eager():
    _, params, _, _ = _TANH
    kw = dict(rtol=1e-10, atol=1e-12, num_saves=4)

    @jax.jit
    def solve(p):
        traj = dl.gradient_flow(_tanh_loss_closed, p, 1.0, **kw)
        return traj.final_params, traj.loss

    fin, losses = solve(params)
    eager = dl.gradient_flow(_tanh_loss_closed, params, 1.0, **kw)
    _assert_tree_close(fin, eager.final_params, atol=1e-12)
    np.testing.assert_allclose(losses, eager.loss, rtol=0, atol=1e-12)
    assert float(losses[-1]) < 0.5 * float(losses[0])  # it moved


@pytest.mark.parametrize(
    "adjoint",
    [diffrax.RecursiveCheckpointAdjoint(), diffrax.DirectAdjoint()],
    ids=["recursive_checkpoint", "direct"],
)
@pytest.mark.slow
def test_grad_of_flow_final_loss_matches_finite_difference(adjoint):
    _, params, _, _ = _TANH
    kw = dict(rtol=1e-10, atol=1e-12, num_saves=2, check_stiffness=False)

    def final_loss(x, adj):
        p = {"w": params["w"].at[0, 1].set(x), "v": params["v"]}
        traj = dl.gradient_flow(_tanh_loss_closed, p, 1.0, adjoint=adj, **kw)
        return _tanh_loss_closed(traj.final_params)

    x0 = float(params["w"][0, 1])
    g = float(jax.grad(final_loss)(jnp.asarray(x0), adjoint))
    f = lambda x: float(final_loss(jnp.asarray(x), None))
    h = 1e-3  # fourth-order central difference
    fd = (-f(x0 + 2 * h) + 8 * f(x0 + h) - 8 * f(x0 - h) + f(x0 - 2 * h)) / (12 * h)
    assert abs(g) > 1e-3  # not a trivially zero derivative
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_grad_of_gd_final_loss_wrt_lr_closed_form():
    loss, theta0, q, lam = _QUAD
    steps = 15
    c0 = q.T @ np.asarray(theta0)

    def final_loss(lr):
        return dl.gradient_descent(loss, theta0, lr, steps).loss[-1]

    for lr in (0.1, 0.6):
        g = float(jax.grad(final_loss)(jnp.asarray(lr)))
        # L(η) = ½ Σ λ c² (1-ηλ)^{2k}  ⇒  L'(η) = -k Σ λ² c² (1-ηλ)^{2k-1}
        want = -steps * np.sum(lam**2 * c0**2 * (1 - lr * lam) ** (2 * steps - 1))
        np.testing.assert_allclose(g, want, rtol=1e-10)


# ----------------------------------------------------------------------------------
# 4. any Equinox model


def _copy_into_dl_mlp(enet, key):
    net = dl.MLP(2, 1, 8, 2, "tanh", parameterization="standard", key=key)
    assert [(lay.weight_scale, lay.bias_scale) for lay in net.layers] == [
        (1.0, 1.0)
    ] * 3
    return eqx.tree_at(
        lambda m: [x for lay in m.layers for x in (lay.weight, lay.bias)],
        net,
        [x for lay in enet.layers for x in (lay.weight, lay.bias)],
    )


def _mse(model, data):
    x, y = data
    return 0.5 * jnp.mean((jax.vmap(model)(x)[:, 0] - y) ** 2)


@pytest.mark.slow
def test_equinox_mlp_matches_dl_mlp_in_every_entry_point(tmp_path):
    k1, k2, k3, k4 = jr.split(jr.key(3), 4)
    enet = eqx.nn.MLP(2, 1, 8, 2, activation=jnp.tanh, key=k1)
    dnet = _copy_into_dl_mlp(enet, k2)
    X = jr.normal(k3, (16, 2))
    Y = jnp.sin(2 * X[:, 0]) * X[:, 1]
    data = (X, Y)
    np.testing.assert_allclose(jax.vmap(enet)(X), jax.vmap(dnet)(X), rtol=0, atol=1e-12)
    loss = lambda m: _mse(m, data)

    obs = {"sharpness": dl.Sharpness()}
    runs = {}
    for name, net in (("eqx", enet), ("dl", dnet)):
        runs[name] = (
            dl.gradient_flow(
                loss, net, 0.5, rtol=1e-10, atol=1e-12, num_saves=3, observables=obs
            ),
            dl.gradient_descent(loss, net, 0.1, 10, observables=obs),
            dl.sgd(_mse, net, data, 0.1, 10, batch_size=4, key=k4),
        )
    for te, td in zip(runs["eqx"], runs["dl"]):
        assert isinstance(te, dl.Trajectory)
        np.testing.assert_allclose(te.loss, td.loss, rtol=0, atol=1e-10)
        np.testing.assert_allclose(
            te.observables["grad_norm"], td.observables["grad_norm"], atol=1e-10
        )
        assert isinstance(te.final_params, eqx.nn.MLP)
        wb = lambda m: [x for lay in m.layers for x in (lay.weight, lay.bias)]
        _assert_tree_close(wb(te.final_params), wb(td.final_params), atol=1e-10)
        assert float(te.loss[-1]) < float(te.loss[0])
    for i in (0, 1):
        se = runs["eqx"][i].observables["sharpness"]
        sd = runs["dl"][i].observables["sharpness"]
        assert np.all(np.asarray(se) > 0)
        np.testing.assert_allclose(se, sd, rtol=1e-10)

    # the exact top Hessian eigenvalue of the eqx model at θ0, from the dense Hessian
    dyn, static = eqx.partition(enet, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(dyn)
    hess = jax.hessian(lambda v: loss(eqx.combine(unravel(v), static)))(flat)
    np.testing.assert_allclose(
        runs["eqx"][1].observables["sharpness"][0],
        np.linalg.eigvalsh(np.asarray(hess))[-1],
        rtol=1e-8,
    )

    # save / load with the eqx model as template
    gd = runs["eqx"][1]
    path = gd.save(tmp_path / "eqx_gd")
    back = dl.Trajectory.load(path, like=enet)
    assert isinstance(back.final_params, eqx.nn.MLP)
    _assert_tree_equal(back.final_params, gd.final_params)
    _assert_tree_equal(back.params, gd.params)
    assert np.array_equal(back.loss, gd.loss)
    assert np.array_equal(back.observables["sharpness"], gd.observables["sharpness"])
    np.testing.assert_allclose(
        jax.vmap(back.final_params)(X), jax.vmap(gd.final_params)(X), rtol=0, atol=0
    )
    more = dl.gradient_descent(loss, enet, 0.1, 20, resume=back)
    straight = dl.gradient_descent(loss, enet, 0.1, 20)
    _assert_tree_equal(more.final_params, straight.final_params)


class _ConvNet(eqx.Module):
    conv: eqx.nn.Conv2d
    readout: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jr.split(key)
        self.conv = eqx.nn.Conv2d(1, 2, 3, key=k1)
        self.readout = eqx.nn.Linear(2 * 4 * 4, "scalar", key=k2)

    def __call__(self, x):  # x: (1, 6, 6)
        return self.readout(jnp.tanh(self.conv(x)).ravel())


def _assert_decreasing(traj, slack=0.0):
    losses = np.asarray(traj.loss)
    assert np.all(np.isfinite(losses))
    assert np.all(np.diff(losses) <= slack), losses
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.slow
def test_conv_net_and_dict_model():
    k1, k2, k3 = jr.split(jr.key(5), 3)
    imgs = jr.normal(k1, (8, 1, 6, 6))
    targets = jnp.mean(imgs[:, 0, 2:4, 2:4], axis=(1, 2))
    net = _ConvNet(k2)
    conv_loss = lambda m: 0.5 * jnp.mean((jax.vmap(m)(imgs) - targets) ** 2)
    _assert_decreasing(dl.gradient_descent(conv_loss, net, 0.05, 20))
    flow = dl.gradient_flow(conv_loss, net, 2.0, rtol=1e-8, atol=1e-10, num_saves=5)
    _assert_decreasing(flow)
    assert isinstance(flow.final_params, _ConvNet)

    X = jr.normal(k3, (12, 3))
    Y = X @ jnp.array([1.0, -2.0, 0.5]) + 0.3
    dict_loss = lambda p: 0.5 * jnp.mean((X @ p["w"] + p["b"] - Y) ** 2)
    p0 = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    _assert_decreasing(dl.gradient_descent(dict_loss, p0, 0.1, 20))
    f = dl.gradient_flow(dict_loss, p0, 2.0, rtol=1e-8, atol=1e-10, num_saves=5)
    _assert_decreasing(f)
    assert set(f.final_params) == {"w", "b"}


# ----------------------------------------------------------------------------------
# 5. divergence


_LAM = 4.0
_LR = 10 * 2 / _LAM  # θ_{k+1} = (1 - ηλ) θ_k = -19 θ_k


def _scalar_quad(p):
    return 0.5 * _LAM * jnp.sum(p**2)


def test_divergence_error_step_and_time():
    p0 = jnp.array([1.0])
    with pytest.raises(dl.DivergenceError) as info:
        dl.gradient_descent(_scalar_quad, p0, _LR, 20)
    err = info.value
    assert isinstance(err, dl.NonFiniteError)
    # 19^6 < 1e8 < 19^7
    assert err.step == 7
    assert err.t == 7 * _LR
    assert bool(err.result == dl.RESULTS.diverged)
    assert "step 7" in str(err) and "t = 35" in str(err)
    part = err.trajectory
    assert len(part) == 7
    assert np.array_equal(np.asarray(part.params)[:, 0], (-19.0) ** np.arange(7))
    assert float(part.final_params[0]) == (-19.0) ** 6

    traj = dl.gradient_descent(_scalar_quad, p0, _LR, 20, throw=False)
    assert bool(traj.result == dl.RESULTS.diverged)
    assert int(traj.state.step) == 6
    assert len(traj) == 7


def test_nonfinite_loss_at_step_zero():
    with pytest.raises(dl.DivergenceError) as info:
        dl.gradient_descent(
            lambda p: jnp.log(-1.0) + jnp.sum(p**2), jnp.ones(2), 0.1, 5
        )
    assert info.value.step == 0
    assert info.value.t == 0.0
    assert bool(info.value.result == dl.RESULTS.nonfinite_loss)
    assert "step 0" in str(info.value)


def test_divergence_under_jit():
    p0 = jnp.array([1.0])

    @jax.jit
    def run(lr):
        t = dl.gradient_descent(_scalar_quad, p0, lr, 20, throw=False)
        return t.result._value, t.state.step, t.final_params

    code, step, fin = run(_LR)
    assert int(code) == int(dl.RESULTS.diverged._value)
    assert int(step) == 6
    assert float(fin[0]) == (-19.0) ** 6
    code, step, _ = run(0.1)
    assert int(code) == int(dl.RESULTS.successful._value) and int(step) == 20

    @jax.jit
    def run_throw(lr):
        return dl.gradient_descent(_scalar_quad, p0, lr, 20).final_params

    np.testing.assert_allclose(run_throw(0.1), (1 - 0.1 * _LAM) ** 20, rtol=1e-13)
    with pytest.raises(Exception, match="throw=False"):
        jax.block_until_ready(run_throw(_LR))


def test_sgd_ensemble_divergence_names_the_paths():
    data = jnp.linspace(1.0, 2.0, 8)[:, None]  # per-example curvature a_i

    def loss(p, batch):
        return 0.5 * jnp.mean(batch[:, 0]) * jnp.sum(p**2)

    keys = jr.split(jr.key(0), 4)
    p0 = jnp.array([1.0])
    with pytest.raises(dl.DivergenceError, match="of the 4 paths"):
        dl.sgd(loss, p0, data, 30.0, 20, batch_size=2, key=keys)
    traj = dl.sgd(loss, p0, data, 30.0, 20, batch_size=2, key=keys, throw=False)
    assert traj.result._value.shape == (4,)
    assert np.all(np.asarray(traj.result == dl.RESULTS.diverged))
    ok = dl.sgd(loss, p0, data, 0.1, 20, batch_size=2, key=keys)
    assert ok.loss.shape == (4, 21)
    assert bool(jnp.all(ok.result == dl.RESULTS.successful))


# ----------------------------------------------------------------------------------
# 6. optax line-search optimisers


def test_lbfgs_reaches_quadratic_minimum():
    rng = np.random.default_rng(7)
    d = 5
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    H = jnp.asarray((q * np.linspace(1.0, 10.0, d)) @ q.T)
    b = jnp.asarray(rng.normal(size=d))
    star = np.linalg.solve(np.asarray(H), np.asarray(b))
    loss = lambda p: 0.5 * p @ (H @ p) - b @ p
    traj = dl.gradient_descent(loss, jnp.zeros(d), 1.0, 14, optimizer=optax.lbfgs())
    err = np.linalg.norm(np.asarray(traj.params) - star, axis=1)
    assert err[0] > 0.1
    assert err[-1] < 1e-10, err
    assert traj.stats["method"] == "optax"


# ----------------------------------------------------------------------------------
# 7. steppers


class _Nesterov(dl.AbstractGradientStepper):
    """v ← μv + g, θ ← θ − η(g + μv) (the optax form of Nesterov momentum)."""

    lr: Any
    mu: Any

    def init(self, params):
        return jtu.tree_map(jnp.zeros_like, params)

    def step(self, params, state, value, grad, value_fn):
        v = jtu.tree_map(lambda vi, g: self.mu * vi + g, state, grad)
        new = jtu.tree_map(
            lambda p, g, vi: p - self.lr * (g + self.mu * vi), params, grad, v
        )
        return new, v

    def time_per_step(self):
        return self.lr


def test_custom_stepper_matches_hand_written_loop_bit_for_bit():
    _, params, _, _ = _TANH
    lr, mu, steps = 0.2, 0.9, 12
    traj = dl.iterate(_tanh_loss_closed, params, _Nesterov(lr, mu), steps)
    assert isinstance(traj, dl.Trajectory)
    assert isinstance(traj.state, dl.EngineState)
    assert int(traj.state.step) == steps
    assert traj.stats["method"] == "_Nesterov"

    vg = jax.jit(jax.value_and_grad(_tanh_loss_closed))

    @jax.jit
    def hand_step(p, v, g):
        v = jtu.tree_map(lambda vi, gi: mu * vi + gi, v, g)
        return jtu.tree_map(lambda pi, gi, vi: pi - lr * (gi + mu * vi), p, g, v), v

    p, v = params, jtu.tree_map(jnp.zeros_like, params)
    losses = []
    for k in range(steps):
        _assert_tree_equal(jtu.tree_map(lambda a: a[k], traj.params), p)
        value, g = vg(p)
        losses.append(value)
        p, v = hand_step(p, v, g)
    _assert_tree_equal(traj.final_params, p)
    _assert_tree_equal(traj.state.stepper_state, v)
    assert np.array_equal(np.asarray(traj.loss[:-1]), np.asarray(losses))
    np.testing.assert_allclose(traj.ts, lr * np.arange(steps + 1), rtol=1e-15)


def test_every_stepper_returns_a_trajectory():
    loss, theta0, _, _ = _QUAD
    data = jnp.ones((4, 1))
    batch_loss = lambda p, batch: loss(p) * jnp.mean(batch)
    runs = [
        dl.gradient_descent(loss, theta0, 0.1, 4),
        dl.gradient_descent(loss, theta0, 0.1, 4, optimizer=optax.adam(0.1)),
        dl.sgd(batch_loss, theta0, data, 0.1, 4, batch_size=2, key=jr.key(0)),
        dl.iterate(loss, theta0, dl.GradientDescent(0.1), 4),
        dl.iterate(loss, theta0, dl.Optax(optax.sgd(0.1, momentum=0.5)), 4),
        dl.iterate(loss, theta0, _Nesterov(0.1, 0.5), 4),
    ]
    for traj in runs:
        assert isinstance(traj, dl.Trajectory)
        assert isinstance(traj.state, dl.EngineState)
        assert len(traj) == 5
        assert bool(traj.result == dl.RESULTS.successful)
        assert float(traj.loss[-1]) < float(traj.loss[0])
    # GD as a stepper and as the wrapper are one computation
    _assert_tree_equal(runs[0].params, runs[3].params)
    with pytest.raises(TypeError, match="AbstractStepper"):
        dl.iterate(loss, theta0, optax.sgd(0.1), 4)


def test_progress_meter_follows_the_default_and_tells_where_a_run_stopped(capsys):
    quad = lambda w: 0.5 * jnp.sum(w**2)  # noqa: E731
    w0 = jnp.ones(3)
    dl.iterate(quad, w0, dl.GradientDescent(0.1), 20, save_every=5)
    assert "step" not in capsys.readouterr().err  # off by default
    try:
        dl.show_progress(True)
        dl.iterate(quad, w0, dl.GradientDescent(0.1), 20, save_every=5)
        assert "20/20" in capsys.readouterr().err
        dl.iterate(quad, w0, dl.GradientDescent(0.1), 20, progress=False)
        assert "step" not in capsys.readouterr().err  # an explicit choice wins
        # GD at lr = 3 on λ = 1 multiplies w by −2 each step: w passes 1e8 in magnitude
        # at step 27 of 40; the meter stops at the last good step and says so
        traj = dl.iterate(
            quad, w0, dl.GradientDescent(3.0), 40, save_every=1, throw=False
        )
        err = capsys.readouterr().err
        assert traj.result == dl.RESULTS.diverged
        assert "26/40" in err.split("\r")[-1] and "stopped" in err
    finally:
        dl.show_progress(False)
    with pytest.raises(TypeError, match="True or False"):
        dl.show_progress("yes")


@pytest.mark.parametrize("save_every", [1, 4])
def test_a_stopped_run_under_vmap_freezes_at_its_last_good_iterate(save_every):
    # GD on Φ = ½λw² multiplies w by 1 − ηλ per step. At η = 3 (factor −2) |w|
    # first exceeds 1e8 at step 27; the saves after the stop repeat the last good
    # iterate w_26 = 2^26 and its loss, and the step counter stays at 26.
    lam = 1.0
    quad = lambda w: 0.5 * lam * jnp.sum(w**2)  # noqa: E731

    def run(lr):
        traj = dl.iterate(
            quad, jnp.ones(()), dl.GradientDescent(lr), 40, save_every=save_every,
            throw=False,
        )  # fmt: skip
        return traj.params, traj.loss, traj.result._value, traj.state.step

    params, loss, result, step = jax.vmap(run)(jnp.asarray([0.5, 3.0]))
    assert int(result[0]) == int(dl.RESULTS.successful._value)
    assert int(result[1]) == int(dl.RESULTS.diverged._value)
    assert int(step[1]) == 26
    good = 2.0**26
    after = np.arange(params.shape[1]) * save_every > 26
    np.testing.assert_array_equal(np.abs(params[1][after]), good)
    np.testing.assert_array_equal(loss[1][after], 0.5 * good**2)
    before = ~after
    k = np.arange(params.shape[1])[before] * save_every
    np.testing.assert_array_equal(params[1][before], (-2.0) ** k)


def test_minibatch_saves_without_the_gradient_norm_keep_the_same_path():
    # the saved full-data loss does not depend on whether ‖∇Φ‖ is recorded too
    X = jnp.linspace(-1.0, 1.0, 16)
    loss = lambda w, xb: 0.5 * jnp.mean((w - xb) ** 2)  # noqa: E731

    def run(save_grad_norm):
        return dl.iterate(
            loss, jnp.asarray(0.3), dl.GradientDescent(0.1), 20, data=X,
            batch_size=4, key=jr.key(0), save_every=5, save_grad_norm=save_grad_norm,
        )  # fmt: skip

    with_norm, without = run(True), run(False)
    assert "grad_norm" not in without.observables
    np.testing.assert_array_equal(without.loss, with_norm.loss)
    np.testing.assert_array_equal(without.params, with_norm.params)
    # ∇Φ(w) = w − mean(X) on the full data set
    np.testing.assert_allclose(
        with_norm.observables["grad_norm"], np.abs(with_norm.params - jnp.mean(X))
    )
