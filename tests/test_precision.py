"""Floating-point precision: float32 runs are the float64 experiment rounded, and
tolerances below what the state's dtype resolves are raised with a warning."""

import os
import subprocess
import sys
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn._misc import PrecisionWarning


def _leaves(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


@pytest.mark.parametrize(
    "kw", [{}, {"parameterization": "ntk", "sigma_b": 0.3}, {"sigma_b": 0.5}]
)
def test_float32_network_is_the_float64_network_rounded(kw):
    key = jax.random.key(1)
    n64 = dl.MLP(3, 2, 8, 2, key=key, **kw)
    n32 = dl.MLP(3, 2, 8, 2, key=key, dtype=jnp.float32, **kw)
    for a, b in zip(_leaves(n64), _leaves(n32), strict=True):
        assert a.dtype == jnp.float64 and b.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(np.float32))
    # The same holds for an ensemble built with filter_vmap.
    keys = jax.random.split(key, 3)
    e64 = eqx.filter_vmap(lambda k: dl.MLP(3, 2, 4, 1, key=k, **kw))(keys)
    e32 = eqx.filter_vmap(lambda k: dl.MLP(3, 2, 4, 1, key=k, dtype=jnp.float32, **kw))(
        keys
    )
    for a, b in zip(_leaves(e64), _leaves(e32), strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(np.float32))


def test_float64_network_is_the_plain_float64_draw():
    # The float64 path is exactly jax.random.normal in float64 (scenario metrics of
    # float64 runs must not move).
    key = jax.random.key(4)
    net = dl.MLP(5, 3, 6, 0, sigma_w=2.0, sigma_b=0.5, key=key)
    wkey, bkey = jax.random.split(jax.random.split(key, 1)[0])
    w = jax.random.normal(wkey, (3, 5), jnp.float64) * (2.0 / np.sqrt(5))
    b = jax.random.normal(bkey, (3,), jnp.float64) * 0.5
    np.testing.assert_array_equal(net.layers[0].weight, w)
    np.testing.assert_array_equal(net.layers[0].bias, b)


def test_x64_off_draws_are_the_float64_draws_rounded(tmp_path):
    # `dynlearn run --float32` turns x64 off. The network and the data sets of one
    # seed must still be the float64 ones, rounded to float32.
    script = (
        "import jax, numpy as np, dynlearn as dl\n"
        "k = jax.random.key(1)\n"
        "net = dl.MLP(3, 2, 8, 1, sigma_b=0.5, key=k)\n"
        "out = {f'net{i}': np.asarray(a) for i, a in "
        "enumerate(jax.tree_util.tree_leaves(net))}\n"
        "for name in ('sine_regression', 'two_moons', 'linear_regression'):\n"
        "    X, Y = getattr(dl, name)(n=9, key=k)\n"
        "    out[name + 'X'], out[name + 'Y'] = np.asarray(X), np.asarray(Y)\n"
        f"np.savez({str(tmp_path / 'x32.npz')!r}, **out)\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    got = np.load(tmp_path / "x32.npz")
    k = jax.random.key(1)
    want = {
        f"net{i}": np.asarray(a)
        for i, a in enumerate(
            jax.tree_util.tree_leaves(dl.MLP(3, 2, 8, 1, sigma_b=0.5, key=k))
        )
    }
    for name in ("sine_regression", "two_moons", "linear_regression"):
        X, Y = getattr(dl, name)(n=9, key=k)
        want[name + "X"], want[name + "Y"] = np.asarray(X), np.asarray(Y)
    assert sorted(got.files) == sorted(want)
    for name, w in want.items():
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], w.astype(np.float32), err_msg=name)


def _quadratic_loss(p):
    return 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * (p - 1.0) ** 2)


def test_tolerance_below_float32_precision_warns_and_is_raised():
    p32 = jnp.zeros(3, jnp.float32)
    with pytest.warns(PrecisionWarning, match=r"float32.*1\.19e-05.*jax_enable_x64"):
        traj = dl.gradient_flow(_quadratic_loss, p32, 2.0, rtol=1e-12, num_saves=2)
    eps = float(jnp.finfo(jnp.float32).eps)
    assert traj.stats["rtol"] == pytest.approx(100 * eps)
    assert traj.stats["requested_rtol"] == 1e-12
    assert traj.stats["dtype"] == "float32"
    # The solve runs in float32 (times too), not silently in float64.
    assert traj.final_params.dtype == jnp.float32
    # Raised to 100 eps the solve is cheap and accurate to ~1e-5:
    # θ(t) = 1 − e^{−λt}.
    exact = 1.0 - np.exp(-np.arange(1.0, 4.0) * 2.0)
    np.testing.assert_allclose(traj.final_params, exact, rtol=2e-4)
    assert traj.stats["num_steps"] < 40


def test_default_tolerance_is_silent_in_float32_and_unchanged_in_float64():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        t32 = dl.gradient_flow(
            _quadratic_loss, jnp.zeros(3, jnp.float32), 1.0, num_saves=2
        )
        t64 = dl.gradient_flow(_quadratic_loss, jnp.zeros(3), 1.0, num_saves=2)
    assert t32.stats["rtol"] == pytest.approx(100 * float(jnp.finfo(jnp.float32).eps))
    assert t64.stats["rtol"] == 1e-6 and "requested_rtol" not in t64.stats
    assert t64.final_params.dtype == jnp.float64


def test_float64_tolerance_below_its_precision_warns_too():
    with pytest.warns(PrecisionWarning, match="float64"):
        traj = dl.gradient_flow(_quadratic_loss, jnp.zeros(3), 1.0, rtol=1e-16)
    assert traj.stats["rtol"] == pytest.approx(100 * np.finfo(np.float64).eps)


def test_pure_absolute_control_below_precision_warns():
    with pytest.warns(PrecisionWarning, match="atol"):
        traj = dl.gradient_flow(
            _quadratic_loss,
            jnp.full(3, 4.0, jnp.float32),
            1.0,
            rtol=0.0,
            atol=1e-9,
            num_saves=2,
        )
    assert traj.stats["atol"] == pytest.approx(
        100 * float(jnp.finfo(jnp.float32).eps) * 4.0
    )
