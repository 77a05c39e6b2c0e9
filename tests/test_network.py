"""The shared network: architecture, parameterisations, batching, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl


def test_forward_is_the_documented_composition():
    net = dl.MLP(3, 2, 4, 2, "tanh", key=jax.random.key(0))
    assert [layer.weight.shape for layer in net.layers] == [(4, 3), (4, 4), (2, 4)]
    x = jnp.array([0.3, -1.0, 2.0])
    h = x
    for layer in net.layers[:-1]:
        h = jnp.tanh(layer.weight @ h + layer.bias)
    np.testing.assert_allclose(
        net(x), net.layers[-1].weight @ h + net.layers[-1].bias, rtol=1e-14
    )


def test_ntk_parameterisation_scales_in_forward_pass():
    n_in, sw, sb = 50, 1.7, 0.3
    net = dl.MLP(
        n_in,
        "scalar",
        4,
        0,
        "linear",
        parameterization="ntk",
        sigma_w=sw,
        sigma_b=sb,
        key=jax.random.key(1),
    )
    W, b = net.layers[0].weight, net.layers[0].bias
    x = jnp.linspace(-1, 1, n_in)
    # Parameters are N(0, 1); the forward pass carries σ_w/√n_in and σ_b.
    np.testing.assert_allclose(
        net(x), (sw / np.sqrt(n_in)) * (W @ x)[0] + sb * b[0], rtol=1e-12
    )


def test_standard_init_variance():
    net = eqx.filter_vmap(lambda k: dl.MLP(400, 1, 4, 0, sigma_w=2.0, key=k))(
        jax.random.split(jax.random.key(0), 50)
    )
    w = np.asarray(net.layers[0].weight)
    # W ~ N(0, σ_w²/n_in): 20000 samples, relative SE of the variance ≈ 1%.
    np.testing.assert_allclose(w.var(), 4.0 / 400, rtol=0.05)


def test_vmap_over_inputs_and_keys():
    nets = eqx.filter_vmap(lambda k: dl.MLP(2, 3, 8, 1, "relu", key=k))(
        jax.random.split(jax.random.key(2), 7)
    )
    xs = jnp.ones((5, 2))
    out = eqx.filter_vmap(lambda m: jax.vmap(m)(xs))(nets)
    assert out.shape == (7, 5, 3)
    assert len(np.unique(np.asarray(out[:, 0, 0]))) == 7


@pytest.mark.parametrize("act", ["tanh", "relu", "erf", "gelu", "linear", jnp.sin])
def test_activations(act):
    net = dl.MLP("scalar", "scalar", 3, 1, act, key=jax.random.key(0))
    assert net(jnp.asarray(0.5)).shape == ()


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        dl.MLP(2, 1, 4, 1, "swishy", key=jax.random.key(0))
    with pytest.raises(ValueError, match="parameterization"):
        dl.MLP(2, 1, 4, 1, parameterization="mup", key=jax.random.key(0))
    with pytest.raises(ValueError, match="width"):
        dl.MLP(2, 1, 0, 1, key=jax.random.key(0))
    net = dl.MLP(3, 1, 4, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        net(jnp.ones(4))
