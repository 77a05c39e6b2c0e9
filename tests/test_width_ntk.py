"""Empirical NTK: every implementation against explicit flattened Jacobians."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import width


@eqx.filter_jit
def explicit_ntk(fn, params, x1, x2):
    """Θ from explicit (n, O, P) Jacobians of the ravelled parameters (forward mode,
    so independent of the reverse-mode code under test)."""
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(dynamic)

    def f(v, x):
        return jnp.ravel(fn(eqx.combine(unravel(v), static), x))

    j1 = jax.vmap(lambda x: jax.jacfwd(f)(flat, x))(x1)
    j2 = jax.vmap(lambda x: jax.jacfwd(f)(flat, x))(x2)
    return jnp.einsum("iap,jbp->ijab", j1, j2)


def call(model, x):
    return model(x)


# Both parameterisations and both output kinds, in two cases (each case compiles).
@pytest.mark.parametrize("parameterization,out", [("standard", "scalar"), ("ntk", 3)])
def test_mlp_matches_explicit_jacobians(parameterization, out):
    net = dl.MLP(
        4,
        out,
        12,
        2,
        "tanh",
        parameterization=parameterization,
        sigma_b=0.5,
        key=jax.random.key(0),
    )
    x1 = jax.random.normal(jax.random.key(1), (6, 4))
    x2 = jax.random.normal(jax.random.key(2), (5, 4))
    ref = explicit_ntk(call, net, x1, x2)
    ref = ref[:, :, 0, 0] if out == "scalar" else ref
    scale = np.abs(ref).max()
    # float64 round-off of sums over ~250 parameters: measured 7e-15 absolute.
    for impl in ("jacobian", "structured", "ntvp"):
        got = width.empirical_ntk(net, x1, x2, implementation=impl)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * scale)


def test_structured_handles_scalar_input_no_bias_and_final_activation():
    net = dl.MLP(
        "scalar",
        2,
        10,
        3,
        "relu",
        use_bias=False,
        final_activation="tanh",
        parameterization="ntk",
        key=jax.random.key(3),
    )
    x = jnp.linspace(-1.5, 2.0, 7)
    ref = explicit_ntk(call, net, x, x)
    got = width.empirical_ntk(net, x, implementation="structured")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_pure_function_with_pytree_params():
    """A non-MLP model given as fn(params, x) with dict/tuple parameters."""

    def fn(p, x):
        h = jnp.sin(p["w"] @ x + p["b"][0])
        return jnp.stack([p["v"] @ h, jnp.sum(h**2) * p["b"][1]])

    k = jax.random.split(jax.random.key(4), 3)
    params = {
        "w": jax.random.normal(k[0], (7, 3)),
        "v": jax.random.normal(k[1], (7,)),
        "b": (jnp.asarray(0.3), jnp.asarray(-0.7)),
    }
    x1 = jax.random.normal(k[2], (5, 3))
    ref = explicit_ntk(fn, params, x1, x1)
    got = width.empirical_ntk(fn, x1, params=params)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    got = width.empirical_ntk(fn, x1, params=params, implementation="ntvp")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    # Symmetric positive semi-definite as a Gram matrix (n·O × n·O).
    g = np.asarray(got).transpose(0, 2, 1, 3).reshape(10, 10)
    np.testing.assert_allclose(g, g.T, atol=1e-13 * np.abs(g).max())
    assert np.linalg.eigvalsh(g).min() > -1e-12 * np.abs(g).max()


@pytest.mark.parametrize("impl", ["jacobian", "structured", "ntvp"])
def test_blocked_equals_unblocked_and_trace(impl):
    net = dl.MLP(3, 2, 8, 1, "erf", key=jax.random.key(5))
    x1 = jax.random.normal(jax.random.key(6), (7, 3))
    x2 = jax.random.normal(jax.random.key(7), (4, 3))
    full = width.empirical_ntk(net, x1, x2, implementation=impl)
    # block 3 divides neither 7 nor 4: exercises the padding.
    blocked = width.empirical_ntk(net, x1, x2, implementation=impl, block_size=3)
    np.testing.assert_allclose(blocked, full, rtol=0, atol=1e-13 * np.abs(full).max())
    tr = width.empirical_ntk(net, x1, x2, implementation=impl, trace=True)
    np.testing.assert_allclose(
        tr, (full[:, :, 0, 0] + full[:, :, 1, 1]) / 2, atol=1e-13
    )


def test_ntk_along_trajectory_and_kernel_distance():
    x = jax.random.normal(jax.random.key(0), (6, 2))
    nets = [
        dl.MLP(
            2, "scalar", 16, 1, "tanh", parameterization="ntk", key=jax.random.key(i)
        )
        for i in range(3)
    ]
    # A parameter path with a leading time axis, as in Trajectory.params.
    path = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    ks = width.ntk_along_trajectory(path, x)
    assert ks.shape == (3, 6, 6)
    for i in (0, 2):
        ref = width.empirical_ntk(nets[i], x, implementation="jacobian")
        np.testing.assert_allclose(ks[i], ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    d = width.kernel_distance(ks[2], ks[0])
    ref = np.linalg.norm(ks[2] - ks[0]) / np.linalg.norm(ks[0])
    np.testing.assert_allclose(d, ref, rtol=1e-13)


def test_bad_input():
    net = dl.MLP(3, "scalar", 4, 1, key=jax.random.key(0))
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="Input dimensions do not match"):
        width.empirical_ntk(net, x, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="Unknown implementation"):
        width.empirical_ntk(net, x, implementation="fast")
    with pytest.raises(ValueError, match="needs a dynlearn.MLP"):
        width.empirical_ntk(
            lambda p, x: p @ x, x, params=jnp.ones(3), implementation="structured"
        )
    with pytest.raises(ValueError, match="block_size"):
        width.empirical_ntk(net, x, block_size=-1)
    with pytest.raises(ValueError, match="Kernel shapes differ"):
        width.kernel_distance(jnp.ones((2, 2)), jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="save_params=True"):
        width.ntk_along_trajectory(None, x)
