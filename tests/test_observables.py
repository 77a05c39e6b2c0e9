"""Observables against dense linear algebra; Trajectory persistence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import quadratic, tree_flat

import dynlearn as dl


def _mlp_loss(seed=0):
    kx, kn = jax.random.split(jax.random.key(seed))
    X, Y = dl.sine_regression(n=12, d=2, key=kx)
    net = dl.MLP(2, "scalar", 5, 1, "tanh", key=kn)
    return net, lambda m: 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2)


def _dense_hessian(loss, params):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return np.asarray(jax.hessian(lambda f: loss(unravel(f)))(flat))


def test_hvp_matches_dense_hessian():
    net, loss = _mlp_loss()
    H = _dense_hessian(loss, net)
    v = jax.tree.map(
        lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), net
    )
    np.testing.assert_allclose(
        tree_flat(dl.hvp(loss, net, v)), H @ tree_flat(v), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("method, iters", [("lanczos", 30), ("power", 400)])
def test_sharpness_matches_eigvalsh(method, iters):
    net, loss = _mlp_loss()
    lam = np.linalg.eigvalsh(_dense_hessian(loss, net))
    got = float(dl.top_hessian_eigenvalue(loss, net, method=method, num_iters=iters))
    if method == "lanczos":
        # Lanczos finds the largest algebraic eigenvalue; 30 of the 21 dims is exact.
        np.testing.assert_allclose(got, lam[-1], rtol=1e-9)
    else:
        # Power iteration finds the eigenvalue of largest magnitude; the Rayleigh
        # quotient's error decays like (|λ₂|/|λ₁|)^(2k).
        mags = np.sort(np.abs(lam))
        target = lam[np.argmax(np.abs(lam))]
        bound = 10 * (mags[-2] / mags[-1]) ** (2 * iters) + 1e-12
        assert abs(got - target) / abs(target) <= bound, (got, target, bound)


def test_sharpness_observable_on_quadratic():
    loss, p0, _, _, H, *_ = quadratic(d=10, cond=100.0, scale=3.0)
    traj = dl.gradient_flow(
        loss, p0, 1.0, num_saves=3, observables={"sharp": dl.Sharpness()}
    )
    np.testing.assert_allclose(
        traj.observables["sharp"], np.linalg.eigvalsh(H)[-1], rtol=1e-9
    )


def test_trajectory_distance_at_matched_times():
    loss, p0, flat, *_ = quadratic(d=6, cond=10.0)
    gd = dl.gradient_descent(loss, p0, 0.1, 20)
    flow = dl.gradient_flow(loss, p0, 2.0, ts=gd.ts, rtol=1e-10, atol=1e-12)
    ts, dist = dl.trajectory_distance(gd, flow)
    np.testing.assert_allclose(ts, gd.ts)
    want = np.linalg.norm(
        np.asarray(jax.vmap(flat)(gd.params)) - np.asarray(jax.vmap(flat)(flow.params)),
        axis=1,
    )
    np.testing.assert_allclose(dist, want, rtol=1e-12, atol=1e-15)
    assert dist[0] == 0.0 and dist[-1] > 0
    other = dl.gradient_descent(
        loss, p0, 0.3, 3
    )  # times 0, 0.3, 0.6, 0.9: shares only t=0... and 0.6? no
    ts2, _ = dl.trajectory_distance(gd, other)
    np.testing.assert_allclose(ts2, [0.0, 0.3, 0.6, 0.9], atol=1e-12)
    with pytest.raises(ValueError, match="save_params"):
        dl.trajectory_distance(
            gd, dl.gradient_descent(loss, p0, 0.1, 5, save_params=False)
        )


def test_trajectory_save_load_roundtrip(tmp_path):
    net, loss = _mlp_loss()
    traj = dl.gradient_flow(
        loss, net, 1.0, num_saves=5, observables={"sharpness": dl.Sharpness()}
    )
    path = traj.save(tmp_path / "run")
    back = dl.Trajectory.load(path, like=net)
    assert isinstance(back.final_params, dl.MLP)
    np.testing.assert_array_equal(back.ts, traj.ts)
    np.testing.assert_array_equal(back.loss, traj.loss)
    np.testing.assert_array_equal(tree_flat(back.params), tree_flat(traj.params))
    np.testing.assert_array_equal(
        tree_flat(back.final_params), tree_flat(traj.final_params)
    )
    np.testing.assert_array_equal(
        back.observables["sharpness"], traj.observables["sharpness"]
    )
    assert back.stats["num_gradient_evals"] == traj.stats["num_gradient_evals"]
    # The restored model is callable: a run can resume from it.
    assert float(loss(back.final_params)) == float(traj.loss[-1])


def _toy_trajectory(paths=None):
    n = 11
    shape = (n,) if paths is None else (paths, n)
    vals = jnp.arange(np.prod(shape), dtype=float).reshape(shape)
    return dl.Trajectory(
        ts=jnp.linspace(0.0, 1.0, n),
        params={"w": vals[..., None] * jnp.ones(2)},
        loss=vals,
        observables={},
        final_params={"w": jnp.ones(2)},
        stats={},
    )


def test_trajectory_at_checks_the_index_range():
    traj = _toy_trajectory()
    np.testing.assert_array_equal(traj.at(-1)["w"], [10.0, 10.0])
    np.testing.assert_array_equal(traj.at(-11)["w"], [0.0, 0.0])
    for bad in (11, 100, -12):
        with pytest.raises(IndexError, match=r"11 saves: use -11 <= i < 11"):
            traj.at(bad)
    with pytest.raises(TypeError, match="integer save index"):
        traj.at(0.5)


def test_trajectory_at_of_an_ensemble_indexes_time():
    traj = _toy_trajectory(paths=3)  # leaves (paths, time, ...)
    got = traj.at(2)["w"]
    assert got.shape == (3, 2)
    np.testing.assert_array_equal(got[:, 0], [2.0, 13.0, 24.0])
    with pytest.raises(IndexError, match="11 saves"):
        traj.at(11)
