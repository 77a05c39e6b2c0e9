"""Discrete optimisers against exact iterates and against their continuous limits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import quadratic, tree_flat

import dynlearn as dl


def test_gd_is_exact_matrix_power():
    loss, p0, flat, _, H, theta0, theta_star = quadratic(d=12, cond=30.0)
    lr, steps = 0.3, 25
    traj = dl.gradient_descent(loss, p0, lr, steps)
    A = np.eye(len(theta0)) - lr * H
    for k in (0, 1, 7, steps):
        want = theta_star + np.linalg.matrix_power(A, k) @ (theta0 - theta_star)
        got = np.asarray(flat(traj.at(k)))
        # Round-off only: k matrix-vector products in float64.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * (1 + k))
    np.testing.assert_allclose(traj.ts, lr * np.arange(steps + 1))


def _small_mlp_problem(seed=0):
    kx, kn = jax.random.split(jax.random.key(seed))
    X, Y = dl.sine_regression(n=16, d=2, key=kx)
    net = dl.MLP(2, "scalar", 6, 1, "tanh", key=kn)
    return net, lambda m: 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2)


@pytest.mark.slow
def test_gd_converges_to_flow_order_1_and_to_modified_flow_order_2():
    net, loss = _small_mlp_problem()
    t1 = 2.0
    lrs = np.array([0.1, 0.05, 0.025, 0.0125])
    kw = dict(solver="dopri8", rtol=1e-12, atol=1e-12, num_saves=2)
    ref = tree_flat(dl.gradient_flow(loss, net, t1, **kw).final_params)
    e_flow, e_mod = [], []
    for lr in lrs:
        gd = tree_flat(
            dl.gradient_descent(loss, net, lr, int(round(t1 / lr))).final_params
        )
        mod = dl.gradient_flow(loss, net, t1, flow=dl.ModifiedGradientFlow(lr), **kw)
        e_flow.append(np.linalg.norm(gd - ref))
        e_mod.append(np.linalg.norm(gd - tree_flat(mod.final_params)))
    s_flow, _ = dl.fit_slope(lrs, e_flow)
    s_mod, _ = dl.fit_slope(lrs, e_mod)
    # Theory: 1 and 2 (Barrett & Dherin 2021). Measured: ~1.0 and ~2.0.
    assert 0.9 <= s_flow <= 1.1, (s_flow, e_flow)
    assert 1.85 <= s_mod <= 2.15, (s_mod, e_mod)
    assert all(m < f for m, f in zip(e_mod, e_flow))


def test_second_order_modified_flow_order_3():
    net, loss = _small_mlp_problem(seed=1)
    t1 = 1.0
    lrs = np.array([0.1, 0.05, 0.025, 0.0125])
    kw = dict(solver="dopri8", rtol=1e-13, atol=1e-13, num_saves=2)
    errs = []
    for lr in lrs:
        gd = tree_flat(
            dl.gradient_descent(loss, net, lr, int(round(t1 / lr))).final_params
        )
        mod = dl.gradient_flow(
            loss, net, t1, flow=dl.ModifiedGradientFlow(lr, order=2), **kw
        )
        errs.append(np.linalg.norm(gd - tree_flat(mod.final_params)))
    slope, _ = dl.fit_slope(lrs, errs)
    assert 2.8 <= slope <= 3.2, (slope, errs)


def test_modified_flow_vector_field_matches_its_definition():
    # order 1: −∇(Φ + lr/4 ‖∇Φ‖²) = −g − (lr/2) H g
    net, loss = _small_mlp_problem()
    lr = 0.1
    dyn = net
    g = jax.grad(loss)(dyn)
    hg = dl.hvp(loss, dyn, g)
    vf = dl.ModifiedGradientFlow(lr).vector_field(loss, 0.0, dyn)
    want = jax.tree.map(lambda a, b: -a - lr / 2 * b, g, hg)
    np.testing.assert_allclose(tree_flat(vf), tree_flat(want), rtol=1e-12, atol=1e-14)
    direct = jax.grad(
        lambda p: (
            loss(p)
            + lr / 4 * sum(jnp.sum(x**2) for x in jax.tree.leaves(jax.grad(loss)(p)))
        )
    )(dyn)
    np.testing.assert_allclose(
        tree_flat(vf), -tree_flat(direct), rtol=1e-12, atol=1e-14
    )


def _linear_net_problem():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(20, 4)))
    Y = X @ jnp.asarray(rng.normal(size=(4, 3)))
    p0 = {
        "W1": jnp.asarray(0.5 * rng.normal(size=(5, 4))),
        "W2": jnp.asarray(0.5 * rng.normal(size=(3, 5))),
    }
    loss = lambda p: (
        0.5 * jnp.mean(jnp.sum((X @ p["W1"].T @ p["W2"].T - Y) ** 2, axis=1))
    )
    imbalance = lambda p: p["W1"] @ p["W1"].T - p["W2"].T @ p["W2"]
    return loss, p0, imbalance


def test_balancedness_conserved_by_flow_and_drifts_O_lr_under_gd():
    # d/dt (W1 W1ᵀ − W2ᵀ W2) = 0 under gradient flow (Du, Hu & Lee 2018).
    loss, p0, imb = _linear_net_problem()
    D0 = np.asarray(imb(p0))
    flow = dl.gradient_flow(loss, p0, 5.0, rtol=1e-10, atol=1e-12, num_saves=6)
    drift = max(np.abs(np.asarray(imb(flow.at(i))) - D0).max() for i in range(6))
    assert drift < 1e-8, drift
    assert flow.loss[-1] < 0.1 * flow.loss[0]  # it actually trained
    lrs = np.array([0.04, 0.02, 0.01, 0.005])
    drifts = []
    for lr in lrs:
        gd = dl.gradient_descent(loss, p0, lr, int(round(5.0 / lr)), save_params=False)
        drifts.append(np.abs(np.asarray(imb(gd.final_params)) - D0).max())
    slope, _ = dl.fit_slope(lrs, drifts)
    assert 0.9 <= slope <= 1.1, (slope, drifts)  # one O(lr²) kick per step, T/lr steps


def test_heavy_ball_converges_to_its_ode_order_half_in_lr():
    net, loss = _small_mlp_problem()
    friction, t1 = 2.0, 2.0
    ref = dl.gradient_flow(
        loss,
        net,
        t1,
        flow=dl.HeavyBallFlow(friction),
        solver="dopri8",
        rtol=1e-12,
        atol=1e-12,
        num_saves=2,
    )
    lrs = np.array([0.05, 0.025, 0.0125, 0.00625]) ** 2  # √lr divides t1
    errs = []
    for lr in lrs:
        hb = dl.HeavyBall.from_friction(lr, friction)
        np.testing.assert_allclose(hb.friction, friction)
        steps = int(round(t1 / hb.time_per_step))
        run = dl.gradient_descent(
            loss,
            net,
            hb.lr,
            steps,
            optimizer=hb.optimizer(),
            time_per_step=hb.time_per_step,
            save_params=False,
        )
        np.testing.assert_allclose(run.ts[-1], t1)
        errs.append(
            np.linalg.norm(tree_flat(run.final_params) - tree_flat(ref.final_params))
        )
    slope, _ = dl.fit_slope(np.sqrt(lrs), errs)
    # Symplectic-Euler step of size √lr: first order in √lr (Kovachki & Stuart 2021).
    assert 0.9 <= slope <= 1.1, (slope, errs)


def test_optax_optimizer_is_used():
    loss, p0, *_ = quadratic(d=6, cond=10.0)
    a = dl.gradient_descent(loss, p0, 0.1, 30, optimizer=optax.adam(0.1))
    # Reference: a plain optax loop.
    opt = optax.adam(0.1)
    p, s = p0, opt.init(p0)
    for _ in range(30):
        u, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(tree_flat(a.final_params), tree_flat(p), rtol=1e-12)


def test_full_batch_sgd_is_gd_and_ensembles_have_a_sample_axis():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(8, 3)))
    y = jnp.asarray(rng.normal(size=8))
    p0 = {"w": jnp.zeros(3)}
    batch_loss = lambda p, b: 0.5 * jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
    gd = dl.gradient_descent(lambda p: batch_loss(p, (X, y)), p0, 0.1, 20)
    sgd = dl.sgd(
        batch_loss,
        p0,
        (X, y),
        0.1,
        20,
        batch_size=8,
        key=jax.random.key(0),
        replacement=False,
    )
    np.testing.assert_allclose(
        tree_flat(sgd.final_params), tree_flat(gd.final_params), rtol=1e-12
    )
    ens = dl.sgd(
        batch_loss,
        p0,
        (X, y),
        0.1,
        20,
        batch_size=2,
        key=jax.random.split(jax.random.key(1), 5),
    )
    assert ens.loss.shape == (5, 21)
    assert ens.params["w"].shape == (5, 21, 3)
    assert len(np.unique(np.asarray(ens.loss[:, -1]))) == 5  # independent paths


def test_gd_divergence_is_reported_with_time():
    H = jnp.diag(jnp.array([10.0, 1.0]))
    loss = lambda p: 0.5 * p @ (H @ p) * jnp.exp(jnp.sum(p**2) / 100)
    with pytest.raises(dl.NonFiniteError, match=r"t = "):
        dl.gradient_descent(loss, jnp.array([1.0, 1.0]), 0.5, 2000)


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_step_counts(steps):
    with pytest.raises(ValueError, match="steps"):
        dl.gradient_descent(lambda p: jnp.sum(p**2), jnp.ones(2), 0.1, steps)


@pytest.mark.parametrize("save_every", [1, 64])
def test_gd_divergence_names_the_exact_first_bad_step(save_every):
    # Φ = 3θ²/2 at lr = 1 > 2/λ = 2/3: θ_k = (−2)^k exactly. |θ_k| = 2^k first exceeds
    # the default divergence_threshold 1e8 at k = 27 (2^26 = 6.7e7, 2^27 = 1.3e8),
    # however sparse the saves.
    with pytest.raises(dl.DivergenceError) as info:
        dl.gradient_descent(
            lambda p: 1.5 * p**2, jnp.ones(()), 1.0, 2048, save_every=save_every
        )
    err = info.value
    assert (err.step, err.t) == (27, 27.0)
    assert err.result == dl.RESULTS.diverged
    msg = str(err)
    assert "exceeded divergence_threshold=1e+08 in magnitude at step 27" in msg, msg
    assert "last finite iterate is step 26 (t = 26)" in msg, msg
    saved = np.asarray(err.trajectory.params)
    assert np.all(np.abs(saved) <= 2.0**26) and saved[-1] == (-2.0) ** (
        26 // save_every * save_every
    )


@pytest.mark.parametrize("save_every", [1, 64])
def test_gd_overflow_stops_at_the_first_non_finite_loss(save_every):
    # With the threshold off, Φ_k = 1.5·4^k overflows float64 first at k = 512
    # (1.5·2^1022 is finite, 1.5·2^1024 is not), while θ_512 = 2^512 is finite.
    with pytest.raises(dl.DivergenceError) as info:
        dl.gradient_descent(
            lambda p: 1.5 * p**2,
            jnp.ones(()),
            1.0,
            2048,
            save_every=save_every,
            divergence_threshold=float("inf"),
        )
    err = info.value
    assert (err.step, err.result) == (512, dl.RESULTS.nonfinite_loss)
    assert "loss became non-finite (NaN/inf) at step 512 (t = 512)" in str(err)
    assert np.all(np.isfinite(np.asarray(err.trajectory.params)))


def test_gd_far_beyond_the_stability_limit_raises_at_the_first_bad_step():
    # Φ = λθ²/2, lr = 10·2/λ: θ_k = (1 − 20)^k = (−19)^k, which first exceeds 1e8 in
    # magnitude at k = 7 (19^6 = 4.7e7, 19^7 = 8.9e8).
    lam = 4.0
    with pytest.raises(dl.DivergenceError) as info:
        dl.gradient_descent(lambda p: 0.5 * lam * p**2, jnp.ones(()), 20 / lam, 100)
    assert (info.value.step, info.value.t) == (7, 35.0)
    np.testing.assert_array_equal(
        np.asarray(info.value.trajectory.params), (-19.0) ** np.arange(7)
    )


def test_gd_throw_false_returns_the_status():
    traj = dl.gradient_descent(
        lambda p: 0.5 * 4.0 * p**2, jnp.ones(()), 5.0, 100, throw=False
    )
    assert traj.result == dl.RESULTS.diverged
    assert traj.stats["num_gradient_evals"] == 7
    assert len(traj) == 7


def test_gd_nan_loss_is_reported_from_step_zero():
    # log(−1) is NaN while the gradient 2w is finite: the parameters stay finite.
    loss = lambda p: jnp.log(-1.0) + jnp.sum(p**2)
    with pytest.raises(
        dl.NonFiniteError, match=r"loss became non-finite.*step 0, t = 0"
    ):
        dl.gradient_descent(loss, jnp.ones(2), 0.1, 4)
