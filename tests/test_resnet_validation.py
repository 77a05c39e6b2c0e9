"""Input validation of dynlearn.resnet: the neural ODE's step budget, non-square
layers, and the data/training entry points."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import dynlearn as dl
from dynlearn import resnet as rn


D = 3


@pytest.fixture(scope="module")
def field():
    return rn.ResidualField.init(
        lambda k: dl.MLP(D, D, 4, 1, "tanh", key=k), 2, key=jr.key(0)
    )


def test_neural_ode_max_steps_is_a_clear_error(field):
    # Before: diffrax's EquinoxRuntimeError with a long in-jit traceback.
    y0 = jnp.ones(D)
    with pytest.raises(RuntimeError, match="max_steps=2") as info:
        rn.neural_ode(field, y0, rtol=1e-10, atol=1e-10, max_steps=2)
    msg = str(info.value)
    assert "stopped at depth t = " in msg and "of T = 1" in msg
    assert "Increase max_steps" in msg and "implicit solver" in msg
    t_reached = float(msg.split("depth t = ")[1].split(" ")[0])
    assert 0 < t_reached < 1
    # Inside jit the same advice comes as an equinox runtime error.
    run = eqx.filter_jit(lambda y: rn.neural_ode(field, y, max_steps=2))
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps=2 steps"):
        jax.block_until_ready(run(y0))
    # A sufficient budget still solves (and matches the default).
    ok = rn.neural_ode(field, y0, max_steps=64)
    assert jnp.allclose(ok, rn.neural_ode(field, y0))


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        (dict(max_steps=0), "`max_steps`"),  # was "Must have at least one checkpoint"
        (dict(rtol=-1.0), "`rtol`"),  # was accepted
        (dict(solver=dfx.Euler(), dt0=-0.1), "`dt0`"),  # was an EquinoxTracetimeError
    ],
)
def test_neural_ode_solver_options(field, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        rn.neural_ode(field, jnp.ones(D), **kwargs)
    if "solver" not in kwargs:
        with pytest.raises(ValueError, match=phrase):
            rn.NeuralODE(field, **kwargs)


def test_non_square_layer_is_rejected():
    # Before: "add got incompatible shapes for broadcasting: (3,), (4,)" at call time.
    with pytest.raises(ValueError, match="in_size=3 to out_size=4"):
        rn.ResidualField.init(lambda k: dl.MLP(3, 4, 8, 1, key=k), 2, key=jr.key(0))

    class Wide(eqx.Module):  # a layer that declares no sizes
        w: jax.Array

        def __call__(self, x):
            return self.w @ x

    f = rn.ResidualField(Wide(jnp.ones((2, 4, 3))))
    with pytest.raises(ValueError, match="must map R\\^d to R\\^d"):
        rn.discretise(f, jnp.ones(3), "euler", 2)
    with pytest.raises(ValueError, match="shape \\(3,\\) to \\(4,\\)"):
        rn.neural_ode(f, jnp.ones(3))


def test_dataset_and_split_arguments():
    # n < 0, n = 0 and noise < 0 are refused by name, and so are X and y of
    # different lengths (which indexing would otherwise clamp silently).
    for make in (rn.moons, rn.circles, rn.spirals):
        with pytest.raises(ValueError, match="`n`"):
            make(-2, key=jr.key(0))
        with pytest.raises(ValueError, match="`noise`"):
            make(10, noise=-0.1, key=jr.key(0))
    with pytest.raises(ValueError, match="same number of examples"):
        rn.split(jnp.ones((4, 2)), jnp.zeros(3), key=jr.key(0))
    X, y = rn.circles(8, key=jr.key(0))  # a valid call
    assert X.shape == (8, 2) and y.shape == (8,)


def test_train_classifier_labels_and_options(field):
    model = rn.Classifier(2, D, 2, rn.ResNet(field, "euler", 2), key=jr.key(1))
    X = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        rn.train_classifier(model, X, jnp.array([0, 1, 2, 0]), num_steps=1)
    with pytest.raises(TypeError, match="integer class indices"):
        rn.train_classifier(model, X, jnp.zeros(4), num_steps=1)
    with pytest.raises(ValueError, match="smoothness_weight"):
        rn.train_classifier(
            model, X, jnp.zeros(4, int), num_steps=1, smoothness_weight=-1.0
        )
    with pytest.raises(ValueError, match="shape \\(5,\\)"):
        rn.Classifier(2, 5, 2, rn.ResNet(field, "euler", 2), key=jr.key(1))
