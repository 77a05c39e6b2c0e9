"""Models, data and training of residual networks / neural ODEs."""

import importlib.util

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import dynlearn as dl
from dynlearn import resnet as rn


def test_train_resnet_classifier_on_moons():
    # Two moons (noise 0.1), Euler ResNet of 8 layers: a separable problem that any
    # small ResNet fits; measured train/test accuracy 1.0/1.0 after 150 Adam steps.
    X, y = rn.moons(300, noise=0.1, key=jr.key(0))
    Xtr, ytr, Xte, yte = rn.split(X, y, key=jr.key(1))
    d, N = 4, 8
    field = rn.ResidualField.init(
        lambda k: dl.MLP(d, d, 8, 0, final_activation="tanh", key=k),
        N,
        T=2.0,
        key=jr.key(2),
    )
    model = rn.Classifier(
        2, d, 2, rn.ResNet(field, rn.LMResNet(jnp.zeros(N)), N), key=jr.key(3)
    )
    acc0 = float(rn.accuracy(model, Xte, yte))
    smooth0 = float(rn.smoothness(model))
    traj = rn.train_classifier(
        model,
        Xtr,
        ytr,
        num_steps=150,
        optimizer=optax.adam(3e-2),
        smoothness_weight=0.1,
    )
    model = traj.final_params
    # The weight-smoothness regulariser is active: Σ‖θ_{j+1}-θ_j‖²/Δ fell
    # (measured by a factor ~10).
    assert float(rn.smoothness(model)) < 0.5 * smooth0
    assert traj.loss.shape == (151,) and traj.loss[-1] < 0.2 * traj.loss[0]
    np.testing.assert_array_equal(traj.ts, np.arange(151))
    assert float(traj.observables["train_accuracy"][-1]) >= 0.97
    assert float(rn.accuracy(model, Xte, yte)) >= 0.95 > acc0
    # LM-ResNet's learnable k_n moved and stayed inside the zero-stable range.
    k = model.body.scheme.k
    assert float(jnp.max(jnp.abs(k))) > 1e-3 and float(jnp.max(jnp.abs(k))) < 1
    # Depth refinement keeps θ(t): at 2N the logits move by O(h) only.
    fine = eqx.tree_at(lambda m: m.body, model, model.body.refine(2))
    assert fine.body.depth == 2 * N and fine.body.scheme.k.shape == (2 * N,)


def _small_problem():
    X, y = rn.moons(40, noise=0.1, key=jr.key(0))
    field = rn.ResidualField.init(
        lambda k: dl.MLP(3, 3, 4, 0, final_activation="tanh", key=k),
        3,
        key=jr.key(1),
    )
    return rn.Classifier(2, 3, 2, rn.ResNet(field, "euler", 3), key=jr.key(2)), X, y


def test_train_classifier_records_the_objective_and_accuracy():
    """The recorded loss is the full objective CE + α·smoothness and the accuracy
    that of the saved model, both recomputed here from their definitions; the run
    equals a hand-written optax loop (same Adam arithmetic, 1e-13)."""
    model, X, y = _small_problem()
    opt, alpha = optax.adam(1e-2), 0.3
    traj = rn.train_classifier(
        model, X, y, num_steps=20, optimizer=opt, smoothness_weight=alpha, save_every=5
    )
    assert traj.loss.shape == (5,) and traj.stats["steps"] == 20

    def objective(m):
        logits = jax.vmap(m)(X)
        logp = jax.nn.log_softmax(logits)
        ce = -jnp.mean(logp[jnp.arange(len(y)), y])
        return ce + alpha * rn.smoothness(m)

    p, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(p)

    @jax.jit
    def adam_step(p, state):
        g = jax.grad(lambda q: objective(eqx.combine(q, static)))(p)
        upd, state = opt.update(g, state, p)
        return optax.apply_updates(p, upd), state

    for k in range(21):
        m = eqx.combine(p, static)
        if k % 5 == 0:
            np.testing.assert_allclose(traj.loss[k // 5], objective(m), rtol=1e-13)
            logits = np.asarray(jax.vmap(m)(X))
            acc = np.mean(np.argmax(logits, -1) == np.asarray(y))
            assert float(traj.observables["train_accuracy"][k // 5]) == float(acc)
        if k == 20:
            break
        p, state = adam_step(p, state)
    final = eqx.filter(traj.final_params, eqx.is_inexact_array)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_train_classifier_new_data_reuse_the_program_and_resume(tmp_path):
    model, X, y = _small_problem()
    opt = optax.adam(1e-2)
    straight = rn.train_classifier(model, X, y, num_steps=12, optimizer=opt)
    # new data of the same shapes, and a new α: no recompilation
    X2, y2 = rn.moons(40, noise=0.1, key=jr.key(5))
    other = rn.train_classifier(
        model, X2, y2, num_steps=12, optimizer=opt, smoothness_weight=0.5
    )
    assert other.stats["num_compilations"] == 0
    assert not np.allclose(other.loss, straight.loss)
    # 5 steps, written and read back, resumed to 12: bit for bit the straight run
    path = rn.train_classifier(model, X, y, num_steps=5, optimizer=opt).save(
        tmp_path / "classifier_5.npz"
    )
    more = rn.train_classifier(
        model, X, y, num_steps=12, optimizer=opt, resume=dl.Trajectory.load(path, model)
    )
    for a, b in zip(
        jax.tree.leaves(eqx.filter(more.final_params, eqx.is_array)),
        jax.tree.leaves(eqx.filter(straight.final_params, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(more.loss, straight.loss[5:])


def test_smoothness_penalty_matches_definition():
    field = rn.ResidualField.init(
        lambda k: dl.MLP(3, 3, 4, 0, key=k), 5, T=2.0, key=jr.key(0)
    )
    leaves = [np.asarray(a) for a in jax.tree.leaves(field.layers)]
    manual = sum(np.sum(np.diff(a, axis=0) ** 2) for a in leaves) / (2.0 / 5)
    np.testing.assert_allclose(float(field.smoothness_penalty()), manual, rtol=1e-13)
    model = rn.Classifier(2, 3, 2, rn.ResNet(field, "euler", 5), key=jr.key(1))
    np.testing.assert_allclose(float(rn.smoothness(model)), manual, rtol=1e-13)


def test_datasets():
    X, y = rn.circles(400, noise=0.0, factor=0.4, key=jr.key(0))
    r = jnp.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(r[y == 1], 0.4, atol=1e-12)
    X, y = rn.spirals(400, noise=0.0, key=jr.key(1))
    assert X.shape == (400, 2) and set(np.unique(y)) == {0, 1}
    assert float(jnp.max(jnp.linalg.norm(X, axis=1))) <= 1.0
    # The second spiral is the first rotated by π: same radius distribution.
    assert abs(float(jnp.mean(y)) - 0.5) < 0.1  # 5 binomial std at n = 400
    Xtr, ytr, Xte, yte = rn.split(X, y, 0.25, key=jr.key(2))
    assert Xtr.shape == (300, 2) and Xte.shape == (100, 2)
    with pytest.raises(ValueError, match="factor"):
        rn.circles(10, factor=1.5, key=jr.key(0))


def test_digits_from_the_installed_package():
    pytest.importorskip("sklearn")
    X, y = rn.digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert sorted(np.unique(np.asarray(y)).tolist()) == list(range(10))


@pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is not None, reason="sklearn is installed"
)
def test_digits_without_sklearn_is_a_clear_error():
    with pytest.raises(ImportError, match="scikit-learn"):
        rn.digits()


def test_train_bad_input():
    model = rn.Classifier(
        2,
        2,
        2,
        rn.ResNet(
            rn.ResidualField.init(
                lambda k: dl.MLP(2, 2, 2, 0, key=k), 2, key=jr.key(0)
            ),
            "euler",
            2,
        ),
        key=jr.key(1),
    )
    with pytest.raises(ValueError, match="steps"):
        rn.train_classifier(model, jnp.ones((4, 2)), jnp.zeros(4, int), num_steps=0)
    with pytest.raises(ValueError, match="labels y of shape"):
        rn.train_classifier(model, jnp.ones((4, 2)), jnp.zeros(3, int), num_steps=1)
    with pytest.raises(ValueError, match="factor"):
        model.body.refine(0)
