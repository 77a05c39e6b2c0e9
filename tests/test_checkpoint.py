"""Checkpoints: `Trajectory.save` / `Trajectory.load` and `resume=`.

The file is written atomically (an overwrite killed with SIGKILL midway leaves the
previous checkpoint intact), under exactly the name given, with equal bytes for equal
runs; a file that does not fit the template, or is corrupt, is refused with a
`ValueError` that names the problem. A run saved, read back from disk and resumed
equals the uninterrupted run bit for bit (GD, Adam, minibatch SGD with Adam, heavy
ball, an ensemble, the stochastic modified equation), and to the solver's tolerance
for an adaptive gradient-flow solve. A checkpoint resumed with another optimiser is
refused.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import dynlearn as dl


# ----------------------------------------------------------------------------------
# problems and helpers


def _mse(net, data):
    """Least squares of a scalar-output network on `data = (X, Y)`."""
    x, y = data
    return 0.5 * jnp.mean((jax.vmap(net)(x) - y) ** 2)


def _fit_problem(seed=0, n=16):
    """A tanh network with 2 inputs, one hidden layer of width 6, and data of a smooth
    target: a nonlinear least-squares fit."""
    k1, k2 = jr.split(jr.key(seed))
    X = jr.normal(k1, (n, 2))
    Y = jnp.sin(2 * X[:, 0]) * X[:, 1]
    net = dl.MLP(2, "scalar", width=6, depth=1, activation="tanh", key=k2)
    return net, (X, Y)


NET, DATA = _fit_problem()


def _leaves(tree):
    return [np.asarray(x) for x in jtu.tree_leaves(tree)]


def _assert_tree_equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb):
        assert x.shape == y.shape and x.dtype == y.dtype
        assert np.array_equal(x, y), np.max(np.abs(x - y))


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(_leaves(a), _leaves(b)))


def _from_disk(traj, path, like):
    """Save `traj`, read it back; the state must come back as raw saved leaves, so
    that the resume below goes through the restoring path."""
    written = traj.save(path)
    back = dl.Trajectory.load(written, like)
    assert back.state is not None and not isinstance(back.state, type(traj.state))
    return back


def _assert_resumed_equals_straight(straight, first, resumed, k0, axis=0):
    """`resumed` continues `first` from its save index `k0` (for `axis=1`, an
    ensemble with the path axis first): it equals `straight` bit for bit."""
    _assert_tree_equal(resumed.final_params, straight.final_params)
    cut = (lambda a: a[k0:]) if axis == 0 else (lambda a: a[:, k0:])
    head = (lambda a: a[:k0]) if axis == 0 else (lambda a: a[:, :k0])
    assert np.array_equal(resumed.loss, cut(straight.loss))
    assert np.array_equal(
        resumed.observables["grad_norm"], cut(straight.observables["grad_norm"])
    )
    assert np.array_equal(resumed.ts, straight.ts[k0:])
    _assert_tree_equal(resumed.params, jtu.tree_map(cut, straight.params))
    # the first part is the straight run's beginning, too
    assert np.array_equal(head(first.loss), head(straight.loss))
    _assert_tree_equal(first.final_params, straight.at(k0))


def _quad(p):
    """Φ = ½ Σ λ_i θ_i² with λ = (0.5, 1, 2) on `a` and 1 on `b`."""
    return 0.5 * jnp.sum(jnp.asarray([0.5, 1.0, 2.0]) * p["a"] ** 2) + 0.5 * jnp.sum(
        p["b"] ** 2
    )


W0 = {"a": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray([[0.5, 1.0], [0.0, 2.0]])}
# one Adam stepper for the whole file: its runs of equal length share one compilation
ADAM = dl.Optax(optax.adam(1e-2), dt=1e-2)


def _linear(w, batch):
    """Linear least squares, the mean over the examples of `batch = (X, Y)`."""
    x, y = batch
    return 0.5 * jnp.mean((x @ w - y) ** 2)


W_LIN = jnp.asarray([0.5, -1.0])


# ----------------------------------------------------------------------------------
# the file: atomic, named as given, reproducible, checked on reading

# Overwrites ckpt.npz in `folder` with another trajectory, but stalls halfway through
# the write: the first half of the bytes are written and synced, then the file
# `writing` announces the stall, and the process sleeps (to be killed).
_STALLED_WRITER = textwrap.dedent(
    """
    import io, os, sys, time
    from pathlib import Path

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import dynlearn as dl
    import dynlearn._trajectory as trajectory_module

    folder = Path(sys.argv[1])
    real_write = trajectory_module._write_npz


    def stalled_write(f, arrays):
        buffer = io.BytesIO()
        real_write(buffer, arrays)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        (folder / "writing").touch()
        time.sleep(60)
        f.write(data[len(data) // 2 :])


    trajectory_module._write_npz = stalled_write
    # another trajectory of the same model: 3 saves of other values
    params = {"a": jnp.full((3, 3), 7.0), "b": jnp.full((3, 2, 2), -7.0)}
    other = dl.Trajectory(
        ts=jnp.arange(3.0),
        params=params,
        loss=jnp.asarray([3.0, 2.0, 1.0]),
        observables={"grad_norm": jnp.ones(3)},
        final_params={"a": params["a"][-1], "b": params["b"][-1]},
    )
    other.save(folder / "ckpt.npz")
    (folder / "finished").touch()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_overwrite_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    first = dl.gradient_descent(_quad, W0, 0.1, 4)
    path = first.save(tmp_path / "ckpt.npz")
    before = path.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(_STALLED_WRITER)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(dl.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([repo, env.get("PYTHONPATH", "")])
    err_path = tmp_path / "writer.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120.0
        while not (tmp_path / "writing").exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"the writer exited ({proc.returncode}) before stalling:\n"
                    + err_path.read_text()
                )
            if time.monotonic() > deadline:
                pytest.fail("the writer did not reach the stalled write in 120 s")
            time.sleep(0.01)
        # the overwrite is under way: half of the new file is on disk, beside ckpt.npz
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.npz.")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "finished").exists()
    # the previous checkpoint is untouched, and only it is named ckpt.npz
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt")) == [
        "ckpt.npz"
    ]
    back = dl.Trajectory.load(path, W0)
    assert np.array_equal(back.ts, first.ts)
    assert np.array_equal(back.loss, first.loss)
    _assert_tree_equal(back.params, first.params)
    _assert_tree_equal(back.final_params, first.final_params)
    # the half-written temporary file is not a checkpoint
    with pytest.raises(ValueError, match="corrupt"):
        dl.Trajectory.load(partial[0], W0)


def test_names_are_used_as_given(tmp_path):
    a = dl.gradient_descent(_quad, W0, 0.1, 4)
    b = dl.gradient_descent(_quad, W0, 0.2, 4)
    pa = a.save(tmp_path / "ckpt_t5.0")
    pb = b.save(str(tmp_path / "ckpt_t5.5"))
    assert (pa, pb) == (tmp_path / "ckpt_t5.0", tmp_path / "ckpt_t5.5")
    assert sorted(os.listdir(tmp_path)) == ["ckpt_t5.0", "ckpt_t5.5"]
    assert not np.array_equal(a.loss, b.loss)
    for p, t in ((pa, a), (pb, b)):
        assert np.array_equal(dl.Trajectory.load(p, W0).loss, t.loss)
    # a name without suffix gets .npz, on saving and on loading
    pc = a.save(tmp_path / "run")
    assert pc == tmp_path / "run.npz"
    assert sorted(os.listdir(tmp_path)) == ["ckpt_t5.0", "ckpt_t5.5", "run.npz"]
    assert np.array_equal(dl.Trajectory.load(tmp_path / "run", W0).loss, a.loss)


def _adam_sgd(optimizer, seed):
    return dl.sgd(
        _mse, NET, DATA, 1e-2, 8, batch_size=4, key=jr.key(seed), optimizer=optimizer
    )


def test_equal_runs_write_equal_bytes(tmp_path):
    # each run compiles its own program (a new optimiser object is a new program);
    # the runs' wall-clock timings differ, and are not written
    one, two = _adam_sgd(optax.adam(1e-2), 1), _adam_sgd(optax.adam(1e-2), 1)
    assert (one.stats["compile_time"], one.stats["run_time"]) != (
        two.stats["compile_time"],
        two.stats["run_time"],
    )
    p1, p2 = one.save(tmp_path / "one.npz"), two.save(tmp_path / "two.npz")
    assert p1.read_bytes() == p2.read_bytes()
    # the file holds the optimiser state and the key of the minibatch draws
    leaves = dl.Trajectory.load(p1, NET).state.leaves
    assert ".key" in leaves and any("nu" in name for name in leaves)


def test_a_run_reusing_the_compiled_program_writes_the_same_bytes(tmp_path):
    opt = optax.adam(1e-2)
    p1 = _adam_sgd(opt, 1).save(tmp_path / "one.npz")
    p2 = _adam_sgd(opt, 1).save(tmp_path / "two.npz")
    assert p1.read_bytes() == p2.read_bytes()


def test_load_refuses_a_template_of_another_model(tmp_path):
    path = dl.gradient_descent(_mse, NET, 0.1, 16, args=DATA).save(tmp_path / "net")
    key = jr.key(11)
    wider = dl.MLP(2, "scalar", width=7, depth=1, key=key)
    with pytest.raises(ValueError, match=r"layers\[0\]\.weight has shape \(6, 2\)"):
        dl.Trajectory.load(path, wider)
    with pytest.raises(ValueError, match="4 leaves in the file against 6 in like"):
        dl.Trajectory.load(path, dl.MLP(2, "scalar", width=6, depth=2, key=key))
    with pytest.raises(ValueError, match="4 leaves in the file against 2 in like"):
        dl.Trajectory.load(path, dl.MLP(2, "scalar", width=6, depth=0, key=key))
    single = dl.MLP(2, "scalar", width=6, depth=1, dtype=jnp.float32, key=key)
    with pytest.raises(ValueError, match="dtype float64 in the file.*dtype float32"):
        dl.Trajectory.load(path, single)
    # the right template of other values is accepted (values are ignored)
    dl.Trajectory.load(path, dl.MLP(2, "scalar", width=6, depth=1, key=key))

    path = dl.gradient_descent(_quad, W0, 0.1, 4).save(tmp_path / "dict")
    ac = {"a": W0["a"], "c": W0["b"]}
    with pytest.raises(ValueError, match=r"\['b'\] \(file\) against \['c'\] \(like\)"):
        dl.Trajectory.load(path, ac)


def test_load_refuses_a_truncated_or_garbage_file(tmp_path):
    path = dl.gradient_descent(_quad, W0, 0.1, 4).save(tmp_path / "good.npz")
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        dl.Trajectory.load(cut, W0)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(len(data)))
    with pytest.raises(ValueError, match="corrupt"):
        dl.Trajectory.load(junk, W0)
    with pytest.raises(FileNotFoundError):
        dl.Trajectory.load(tmp_path / "absent.npz", W0)
    dl.Trajectory.load(path, W0)  # the file itself is fine


# ----------------------------------------------------------------------------------
# resume = the straight run, bit for bit


def test_gradient_descent_resumed_from_disk_equals_straight_run(tmp_path):
    run = lambda steps, resume=None: dl.gradient_descent(
        _mse, NET, 0.1, steps, args=DATA, resume=resume
    )
    straight, first = run(40), run(16)
    resumed = run(40, _from_disk(first, tmp_path / "gd", NET))
    _assert_resumed_equals_straight(straight, first, resumed, 16)
    assert resumed.stats["steps"] == 40
    assert resumed.stats["num_gradient_evals"] == 24
    assert float(straight.loss[-1]) < 0.9 * float(straight.loss[0])


def test_adam_resumed_from_disk_equals_straight_run(tmp_path):
    run = lambda steps, resume=None: dl.iterate(
        _mse, NET, ADAM, steps, args=DATA, resume=resume
    )
    straight, first = run(40), run(20)
    back = _from_disk(first, tmp_path / "adam", NET)
    # the moments are part of the checkpoint
    assert any("mu" in name for name in back.state.leaves)
    resumed = run(40, back)
    _assert_resumed_equals_straight(straight, first, resumed, 20)
    np.testing.assert_allclose(resumed.ts, 1e-2 * np.arange(20, 41), rtol=1e-15)


def test_minibatch_adam_sgd_resumed_from_disk_equals_straight_run(tmp_path):
    opt = optax.adam(1e-2)
    key = jr.key(7)

    def run(steps, resume=None, key=key):
        return dl.sgd(
            _mse, NET, DATA, 1e-2, steps, batch_size=4, key=key, optimizer=opt,
            resume=resume,
        )  # fmt: skip

    straight, first = run(40), run(20)
    back = _from_disk(first, tmp_path / "sgd", NET)
    # without a key, the checkpoint's key continues the draws
    resumed = run(40, back, key=None)
    _assert_resumed_equals_straight(straight, first, resumed, 20)
    # an explicitly passed key must be the checkpoint's
    _assert_tree_equal(run(40, back, key=key).final_params, straight.final_params)
    with pytest.raises(ValueError, match="key differs"):
        run(40, back, key=jr.key(8))


def test_heavy_ball_resume_restores_the_velocity(tmp_path):
    opt = optax.sgd(0.05, momentum=0.9)
    run = lambda params, steps, resume=None: dl.gradient_descent(
        _mse, params, 0.05, steps, optimizer=opt, args=DATA, resume=resume
    )
    straight, first = run(NET, 40), run(NET, 20)
    back = _from_disk(first, tmp_path / "hb", NET)
    (velocity,) = [v for k, v in back.state.leaves.items() if "trace" in k][:1]
    assert float(jnp.max(jnp.abs(velocity))) > 0
    resumed = run(NET, 40, back)
    _assert_resumed_equals_straight(straight, first, resumed, 20)
    # starting again from the parameters alone loses the velocity: another path
    restarted = run(first.final_params, 20)
    assert _max_diff(restarted.final_params, straight.final_params) > 1e-4


def test_ensemble_minibatch_resumed_from_disk_equals_straight_run(tmp_path):
    # momentum (a state per path) and epochs of 4 batches without replacement
    stepper = dl.Optax(optax.sgd(0.05, momentum=0.9), dt=0.05)
    keys = jr.split(jr.key(3), 4)

    def run(steps, resume=None, key=keys):
        return dl.iterate(
            _mse, NET, stepper, steps, data=DATA, batch_size=4, replacement=False,
            key=key, resume=resume,
        )  # fmt: skip

    straight, first = run(44), run(22)  # 22: in the middle of an epoch
    assert straight.loss.shape == (4, 45)
    assert len(set(np.asarray(straight.loss[:, -1]).tolist())) == 4  # 4 paths
    back = _from_disk(first, tmp_path / "ensemble", NET)
    assert back.final_params.layers[0].weight.shape == (4, 6, 2)
    resumed = run(44, back)
    _assert_resumed_equals_straight(straight, first, resumed, 22, axis=1)


def test_ensemble_resumed_without_keys_takes_the_checkpoint_keys(tmp_path):
    stepper = dl.GradientDescent(0.05)
    keys = jr.split(jr.key(3), 4)
    run = lambda steps, resume=None, key=keys: dl.iterate(
        _mse, NET, stepper, steps, data=DATA, batch_size=4, key=key, resume=resume
    )
    first = run(4)
    resumed = run(12, _from_disk(first, tmp_path / "ensemble", NET), key=None)
    _assert_tree_equal(resumed.final_params, run(12).final_params)


def test_sgd_sde_resumed_from_disk_equals_straight_run(tmp_path):
    # a linear least-squares fit; dt = 1/64 and save times k/16: the step grids of
    # the runs agree exactly
    def run(t1, num_saves, resume=None, key=jr.key(5)):
        return dl.sgd_sde(
            _linear, W_LIN, DATA, 1 / 16, t1, batch_size=4, key=key, dt=1 / 64,
            num_saves=num_saves, resume=resume,
        )  # fmt: skip

    straight, first = run(1.0, 17), run(0.5, 9)
    back = _from_disk(first, tmp_path / "sde", W_LIN)
    resumed = run(1.0, 9, back, key=None)  # the checkpoint's Brownian key
    _assert_tree_equal(resumed.final_params, straight.final_params)
    _assert_tree_equal(first.final_params, straight.at(8))
    assert np.array_equal(resumed.ts, straight.ts[8:])
    assert np.array_equal(resumed.loss, straight.loss[8:])
    assert np.array_equal(
        resumed.observables["grad_norm"], straight.observables["grad_norm"][8:]
    )
    _assert_tree_equal(resumed.params, jtu.tree_map(lambda a: a[8:], straight.params))
    # the noise matters: another Brownian path ends elsewhere
    other = run(1.0, 17, key=jr.key(6))
    assert _max_diff(other.final_params, straight.final_params) > 1e-3


def test_gradient_flow_resumed_from_disk_matches_straight_solve(tmp_path):
    lam = {"a": jnp.asarray([0.5, 1.0]), "b": jnp.asarray([[2.0, 3.0], [0.25, 1.5]])}
    theta0 = {
        "a": jnp.asarray([1.0, -0.5]),
        "b": jnp.asarray([[0.3, 2.0], [-1.0, 1.0]]),
    }

    def loss(p):
        return sum(0.5 * jnp.sum(lam[k] * p[k] ** 2) for k in p)

    # 11 saves in every solve: t = 0, 0.1, ..., 1 straight; 0, 0.05, ..., 0.5, then
    # 0.5, 0.55, ..., 1 resumed
    def solve(t1, resume=None):
        return dl.gradient_flow(
            loss, theta0, t1, solver=diffrax.Tsit5(), rtol=1e-9, atol=1e-9,
            num_saves=11, resume=resume, check_stiffness=False,
        )  # fmt: skip

    straight, first = solve(1.0), solve(0.5)
    back = _from_disk(first, tmp_path / "flow", theta0)
    resumed = solve(1.0, back)
    np.testing.assert_allclose(resumed.ts, np.linspace(0.5, 1.0, 11), rtol=1e-15)
    exact = lambda t: {k: theta0[k] * jnp.exp(-lam[k] * t) for k in theta0}
    for k in theta0:
        np.testing.assert_allclose(
            resumed.final_params[k], straight.final_params[k], rtol=0, atol=1e-7
        )
        np.testing.assert_allclose(
            resumed.final_params[k], exact(1.0)[k], rtol=0, atol=1e-7
        )
        np.testing.assert_allclose(
            first.final_params[k], exact(0.5)[k], rtol=0, atol=1e-7
        )
    # the resumed saves are the flow at times 0.5, 0.6, ..., 1.0
    exact_loss = [float(loss(exact(t))) for t in np.linspace(0.5, 1.0, 11)]
    np.testing.assert_allclose(resumed.loss, exact_loss, rtol=1e-7)
    np.testing.assert_allclose(resumed.loss[::2], straight.loss[5:], rtol=1e-7)


# ----------------------------------------------------------------------------------
# resume with other dynamics is refused


@pytest.mark.parametrize("from_disk", [False, True])
@pytest.mark.parametrize(
    "other, what",
    [
        (dl.GradientDescent(1e-2), "gradient_descent"),
        (dl.Optax(optax.sgd(1e-2, momentum=0.9), dt=1e-2), "optax"),
    ],
    ids=["gd", "momentum"],
)
def test_resume_with_another_optimiser_is_refused(tmp_path, from_disk, other, what):
    first = dl.iterate(_mse, NET, ADAM, 20, args=DATA)
    ckpt = (
        dl.Trajectory.load(first.save(tmp_path / "adam"), NET) if from_disk else first
    )
    if not from_disk:
        message = rf"the state of this trajectory does not belong to {what}"
    elif what == "optax":  # the same stepper type, another optimiser state
        message = (
            rf"resume \({what}\): the saved leaves do not match the template.*"
            r"different structure \(a different model, depth or optimiser\)"
        )
    else:
        message = rf"written by optax, but this run is {what}"
    with pytest.raises(ValueError, match=message):
        dl.iterate(_mse, NET, other, 10, args=DATA, resume=ckpt)


def _linear_flow(t1, resume=None):
    return dl.gradient_flow(
        _linear, W_LIN, t1, args=DATA, num_saves=2, check_stiffness=False,
        resume=resume,
    )  # fmt: skip


def test_resume_across_discrete_runs_and_flows_is_refused(tmp_path):
    gd = dl.gradient_descent(_quad, W0, 0.1, 4)
    flow = _linear_flow(0.5)
    gd_disk = dl.Trajectory.load(gd.save(tmp_path / "gd"), W0)
    flow_disk = dl.Trajectory.load(flow.save(tmp_path / "flow"), W_LIN)
    for ckpt in (gd, gd_disk):
        with pytest.raises(ValueError, match="flow"):
            dl.gradient_flow(_quad, W0, 1.0, resume=ckpt)
    for ckpt, message in (
        (flow, "ends in a FlowState state.*gradient_descent resumes only its own"),
        (flow_disk, "ends in a FlowState state, written by another dynamics"),
    ):
        with pytest.raises(ValueError, match=message):
            dl.gradient_descent(_linear, W_LIN, 0.1, 6, args=DATA, resume=ckpt)


def test_gradient_flow_refuses_an_sgd_sde_checkpoint_read_from_disk(tmp_path):
    sde = dl.sgd_sde(
        _linear, W_LIN, DATA, 1 / 16, 0.5, batch_size=4, key=jr.key(5), dt=1 / 64,
        num_saves=9,
    )  # fmt: skip
    with pytest.raises(ValueError, match="flow"):  # as the trajectory in memory is
        _linear_flow(1.0, resume=sde)
    back = dl.Trajectory.load(sde.save(tmp_path / "sde"), W_LIN)
    with pytest.raises(ValueError, match="flow"):
        _linear_flow(1.0, resume=back)


def test_a_gradient_descent_checkpoint_does_not_resume_plain_sgd(tmp_path):
    # both steppers have a state without arrays: only the recorded method tells them
    # apart once the trajectory has been through a file
    gd = dl.iterate(_mse, NET, dl.GradientDescent(1e-2), 4, args=DATA)
    back = dl.Trajectory.load(gd.save(tmp_path / "gd"), NET)
    sgd = dl.Optax(optax.sgd(1e-2), dt=1e-2)
    with pytest.raises(ValueError, match="written by gradient_descent.*optax"):
        dl.iterate(_mse, NET, sgd, 8, args=DATA, resume=back)
    resumed = dl.iterate(_mse, NET, dl.GradientDescent(1e-2), 8, args=DATA, resume=back)
    straight = dl.iterate(_mse, NET, dl.GradientDescent(1e-2), 8, args=DATA)
    _assert_tree_equal(resumed.final_params, straight.final_params)
