"""Bad input across the library: each case must raise the named exception type with a
message that names the problem (and, where there is one, the fix), before any compute
is wasted.

A case is `(id, thunk, exception type, phrase)`: calling `thunk()` must raise
`exception type` and the message must contain `phrase` (case-insensitive).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl


def _key(seed: int = 0):
    return jax.random.key(seed)


# --- core: networks, data, gradient flows, discrete optimizers, SDEs, trajectories ---
_nan, _inf = float("nan"), float("inf")
_sq = lambda p: jnp.sum(p**2)
_w = jnp.ones(3)
_xy = (jnp.ones((4, 2)), jnp.ones(4))
_batch_loss = lambda p, b: jnp.mean((b[0] @ p - b[1]) ** 2)
_p2 = jnp.ones(2)


def _gf(**kw):
    return lambda: dl.gradient_flow(_sq, kw.pop("params", _w), kw.pop("t1", 1.0), **kw)


def _sgd(data=_xy, **kw):
    kw = {"batch_size": 2, "key": _key(), **kw}
    return lambda: dl.sgd(_batch_loss, _p2, data, 0.1, 4, **kw)


def _sde(data=_xy, **kw):
    kw = {"batch_size": 2, "key": _key(), **kw}
    return lambda: dl.sgd_sde(_batch_loss, _p2, data, 0.1, kw.pop("t1", 1.0), **kw)


def _traj():
    return dl.Trajectory(
        ts=jnp.linspace(0.0, 1.0, 11),
        params={"w": jnp.zeros((11, 2))},
        loss=jnp.zeros(11),
        observables={},
        final_params={"w": jnp.zeros(2)},
        stats={},
    )


CORE_CASES = [
    # networks
    (
        "mlp-sigma-w-nan",
        lambda: dl.MLP(2, 1, 4, 1, sigma_w=_nan, key=_key()),
        ValueError,
        "sigma_w",
    ),
    (
        "mlp-sigma-b-inf",
        lambda: dl.MLP(2, 1, 4, 1, sigma_b=_inf, key=_key()),
        ValueError,
        "sigma_b",
    ),
    (
        "mlp-sigma-b-negative",
        lambda: dl.MLP(2, 1, 4, 1, sigma_b=-1.0, key=_key()),
        ValueError,
        "sigma_b",
    ),
    (
        "mlp-width-bool",
        lambda: dl.MLP(2, 1, True, 1, key=_key()),
        ValueError,
        "width must be a positive integer",
    ),
    (
        "mlp-depth-negative",
        lambda: dl.MLP(2, 1, 4, -1, key=_key()),
        ValueError,
        "depth must be a non-negative integer",
    ),
    (
        "mlp-in-size-bool",
        lambda: dl.MLP(True, 1, 4, 1, key=_key()),
        ValueError,
        "in_size",
    ),
    (
        "mlp-key-none",
        lambda: dl.MLP(2, 1, 4, 1, key=None),
        TypeError,
        "jax.random.key(seed)",
    ),
    (
        "mlp-key-int",
        lambda: dl.MLP(2, 1, 4, 1, key=0),
        TypeError,
        "jax.random.key(seed)",
    ),
    (
        "mlp-key-batch",
        lambda: dl.MLP(2, 1, 4, 1, key=jax.random.split(_key(), 3)),
        TypeError,
        "filter_vmap",
    ),
    (
        "mlp-dtype-int",
        lambda: dl.MLP(2, 1, 4, 1, dtype=jnp.int32, key=_key()),
        TypeError,
        "floating-point dtype",
    ),
    # data sets
    (
        "sine-n-negative",
        lambda: dl.sine_regression(n=-3, key=_key()),
        ValueError,
        "n (the number of examples) must be a positive integer",
    ),
    (
        "sine-n-zero",
        lambda: dl.sine_regression(n=0, key=_key()),
        ValueError,
        "number of examples",
    ),
    (
        "sine-d-float",
        lambda: dl.sine_regression(d=2.5, key=_key()),
        ValueError,
        "d (the input dimension)",
    ),
    (
        "moons-noise-nan",
        lambda: dl.two_moons(noise=_nan, key=_key()),
        ValueError,
        "noise",
    ),
    (
        "linreg-noise-negative",
        lambda: dl.linear_regression(noise=-0.1, key=_key()),
        ValueError,
        "noise",
    ),
    ("data-key-int", lambda: dl.linear_regression(key=0), TypeError, "PRNG key"),
    # trajectories
    (
        "traj-at-past-the-end",
        lambda: _traj().at(100),
        IndexError,
        "out of range for a trajectory of 11 saves",
    ),
    ("traj-at-before-the-start", lambda: _traj().at(-12), IndexError, "-11 <= i < 11"),
    ("traj-at-time", lambda: _traj().at(0.5), TypeError, "integer save index"),
    # gradient flow
    (
        "gf-empty-leaf",
        _gf(params={"w": _w, "e": jnp.zeros((0,))}),
        ValueError,
        "params['e'] is an empty array",
    ),
    ("gf-t1-string", _gf(t1="2.0"), TypeError, "`t1` must be a real number"),
    ("gf-euler-dt0-zero", _gf(solver="euler", dt0=0.0), ValueError, "dt0"),
    ("gf-euler-dt0-negative", _gf(solver="euler", dt0=-0.1), ValueError, "dt0"),
    (
        "gf-progress-meter-string",
        _gf(progress_meter="tqdm"),
        TypeError,
        "diffrax.TqdmProgressMeter()",
    ),
    (
        "gf-divergence-threshold-nan",
        _gf(divergence_threshold=_nan),
        ValueError,
        "divergence_threshold",
    ),
    ("gf-rtol-nan", _gf(rtol=_nan), ValueError, "`rtol` must be a finite number"),
    ("gf-rtol-negative", _gf(rtol=-1e-6), ValueError, "`rtol` must be"),
    ("gf-atol-inf", _gf(atol=_inf), ValueError, "`atol` must be"),
    ("gf-atol-string", _gf(atol="1e-8"), TypeError, "`atol` must be a real number"),
    ("gf-tolerances-both-zero", _gf(rtol=0.0, atol=0.0), ValueError, "both 0"),
    ("gf-max-steps-bool", _gf(max_steps=True), ValueError, "max_steps"),
    ("gf-num-saves-one", _gf(num_saves=1), ValueError, "num_saves"),
    ("gf-ts-nan", _gf(ts=[0.0, _nan, 1.0]), ValueError, "NaN"),
    ("gf-save-params-string", _gf(save_params="no"), TypeError, "save_params"),
    (
        "gf-controller-string",
        _gf(stepsize_controller="pid"),
        TypeError,
        "step-size controller",
    ),
    (
        "gf-observables-list",
        _gf(observables=[dl.Sharpness()]),
        TypeError,
        "observables must be a mapping",
    ),
    # gradient descent
    (
        "gd-lr-string",
        lambda: dl.gradient_descent(_sq, _w, "0.1", 10),
        TypeError,
        "`lr` must be a real number",
    ),
    (
        "gd-lr-inf",
        lambda: dl.gradient_descent(_sq, _w, _inf, 10),
        ValueError,
        "`lr` must be a finite number > 0",
    ),
    (
        "gd-steps-bool",
        lambda: dl.gradient_descent(_sq, _w, 0.1, True),
        ValueError,
        "steps must be a positive integer",
    ),
    (
        "gd-save-every-zero",
        lambda: dl.gradient_descent(_sq, _w, 0.1, 10, save_every=0),
        ValueError,
        "save_every",
    ),
    (
        "gd-steps-not-a-multiple",
        lambda: dl.gradient_descent(_sq, _w, 0.1, 10, save_every=3),
        ValueError,
        "multiple of save_every",
    ),
    (
        "gd-time-per-step-negative",
        lambda: dl.gradient_descent(_sq, _w, 0.1, 10, time_per_step=-1.0),
        ValueError,
        "time_per_step",
    ),
    # minibatch SGD
    (
        "sgd-empty-data",
        _sgd(data=(jnp.ones((0, 2)), jnp.ones(0))),
        ValueError,
        "no examples",
    ),
    ("sgd-batch-size-zero", _sgd(batch_size=0), ValueError, "batch_size"),
    ("sgd-batch-size-bool", _sgd(batch_size=True), ValueError, "batch_size"),
    (
        "sgd-batch-larger-than-data",
        _sgd(batch_size=5, replacement=False),
        ValueError,
        "[1, 4]",
    ),
    (
        "sgd-not-divisible",
        _sgd(batch_size=3, replacement=False),
        ValueError,
        "divisible",
    ),
    ("sgd-key-none", _sgd(key=None), TypeError, "PRNG key"),
    ("sgd-replacement-string", _sgd(replacement="no"), TypeError, "replacement"),
    (
        "sgd-lr-zero",
        lambda: dl.sgd(_batch_loss, _p2, _xy, 0.0, 4, batch_size=2, key=_key()),
        ValueError,
        "lr",
    ),
    # the stochastic modified equation
    (
        "sde-empty-data",
        _sde(data=(jnp.ones((0, 2)), jnp.ones(0))),
        ValueError,
        "no examples",
    ),
    ("sde-dt-zero", _sde(dt=0.0), ValueError, "`dt` must be"),
    ("sde-t1-zero", _sde(t1=0.0), ValueError, "t1 > t0"),
    ("sde-batch-larger-than-data", _sde(batch_size=5), ValueError, "batch_size"),
    (
        "sde-keys-2d",
        _sde(key=jax.random.split(_key(), (2, 2))),
        ValueError,
        "1-D batch of keys",
    ),
    ("sde-key-int", _sde(key=0), TypeError, "PRNG key"),
    ("sde-order-bool", _sde(order=True), ValueError, "order must be 1 or 2"),
    ("sde-solver-string", _sde(solver="euler"), TypeError, "diffrax solver"),
]
# --- end core ---

# --- stiff solvers and the automatic solver choice ---
_rkc2 = lambda **kw: dl.stiff.RKC2(**kw)
_ros2k = lambda **kw: dl.stiff.ROS2K(**kw)
_flow = lambda solver: dl.gradient_flow(
    lambda w: jnp.sum(w**2), jnp.ones(2), 1.0, solver=solver
)
STIFF_CASES = [
    ("rkc2-max-stages-1", lambda: _rkc2(max_stages=1), ValueError, "max_stages"),
    ("rkc2-max-stages-float", lambda: _rkc2(max_stages=50.0), ValueError, "integer"),
    ("rkc2-max-stages-bool", lambda: _rkc2(max_stages=True), ValueError, "max_stages"),
    ("rkc2-max-substeps-0", lambda: _rkc2(max_substeps=0), ValueError, "max_substeps"),
    (
        "rkc2-power-iterations-0",
        lambda: _rkc2(power_iterations=0),
        ValueError,
        "power_iterations",
    ),
    ("rkc2-safety-below-1", lambda: _rkc2(safety=0.5), ValueError, "safety"),
    ("rkc2-safety-negative", lambda: _rkc2(safety=-1.2), ValueError, ">= 1"),
    ("rkc2-safety-nan", lambda: _rkc2(safety=float("nan")), ValueError, "safety"),
    ("rkc2-safety-inf", lambda: _rkc2(safety=float("inf")), ValueError, "finite"),
    ("rkc2-safety-string", lambda: _rkc2(safety="1.2"), ValueError, "safety"),
    ("ros2k-krylov-tol-0", lambda: _ros2k(krylov_tol=0.0), ValueError, "krylov_tol"),
    ("ros2k-krylov-tol-1", lambda: _ros2k(krylov_tol=1.0), ValueError, "(0, 1)"),
    ("ros2k-krylov-tol-str", lambda: _ros2k(krylov_tol="1e-4"), ValueError, "krylov"),
    (
        "ros2k-max-krylov-0",
        lambda: _ros2k(max_krylov_steps=0),
        ValueError,
        "max_krylov_steps",
    ),
    (
        "ros2k-max-krylov-float",
        lambda: _ros2k(max_krylov_steps=20.5),
        ValueError,
        "integer",
    ),
    ("flow-solver-nonsense", lambda: _flow("nonsense"), ValueError, "'tsit5'"),
    ("flow-solver-names-auto", lambda: _flow("rkc"), ValueError, "'auto'"),
    ("flow-solver-class", lambda: _flow(_rkc2().__class__), TypeError, "instance"),
]
# --- end stiff ---


# --- rg and width ---
def _rbm():
    return dl.rg.RBM(jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros(2))


_SPINS = jnp.ones((8, 4))


def _train(**kw):
    args = dict(num_steps=10, batch_size=4)
    args.update(kw)
    return lambda: dl.rg.train_rbm(_rbm(), _SPINS, key=_key(), **args)


def _cd(**kw):
    return lambda: dl.rg.train_rbm(
        _rbm(),
        _SPINS,
        key=_key(),
        num_steps=10,
        batch_size=4,
        rule=dl.rg.ContrastiveDivergence(**kw),
    )


PHYSICS_CASES = [
    ("rbm-batch-size-0", _train(batch_size=0), ValueError, "batch_size"),
    (
        "rbm-num-chains-0",
        lambda: dl.rg.PersistentContrastiveDivergence.from_data(_key(), _SPINS, 0),
        ValueError,
        "num_chains",
    ),
    ("rbm-k-0", _cd(k=0), ValueError, "k must be a positive integer"),
    ("rbm-k-negative", _cd(k=-1), ValueError, "Gibbs steps"),
    ("rbm-l2-negative", _cd(l2=-0.1), ValueError, "l2 must be finite and >= 0"),
    ("rbm-l1-nan", _cd(l1=float("nan")), ValueError, "l1 must be finite"),
    ("rbm-steps-0", _train(num_steps=0), ValueError, "num_steps must be a positive"),
    ("rbm-rule", _train(rule="gibbs"), TypeError, "rule must be a training rule"),
    (
        "rbm-bit-data",
        lambda: dl.rg.train_rbm(
            _rbm(), jnp.zeros((8, 4)), key=_key(), num_steps=10, batch_size=4
        ),
        ValueError,
        "±1 spins",
    ),
    (
        "rbm-empty-data",
        lambda: dl.rg.train_rbm(
            _rbm(), jnp.ones((0, 4)), key=_key(), num_steps=10, batch_size=4
        ),
        ValueError,
        "data is empty",
    ),
    (
        "dbn-batch-size-0",
        lambda: dl.rg.train_dbn(_SPINS, [2], key=_key(), num_steps=10, batch_size=0),
        ValueError,
        "batch_size",
    ),
    (
        "dbn-fractional-width",
        lambda: dl.rg.train_dbn(_SPINS, [2.5], key=_key(), num_steps=10, batch_size=4),
        ValueError,
        "hidden_sizes must be positive integers",
    ),
    (
        "dbn-negative-l1",
        lambda: dl.rg.train_dbn(
            _SPINS,
            [2],
            key=_key(),
            num_steps=10,
            batch_size=4,
            rule=dl.rg.ContrastiveDivergence(l1=-1.0),
        ),
        ValueError,
        "l1 must be finite and >= 0",
    ),
    (
        "dbn-rule",
        lambda: dl.rg.train_dbn(
            _SPINS, [2], key=_key(), num_steps=10, batch_size=4, rule="pcd"
        ),
        TypeError,
        "rule must be a training rule",
    ),
    (
        "ising-metropolis-odd-L",
        lambda: dl.rg.sample_ising(5, 0.3, sampler="metropolis", key=_key()),
        ValueError,
        "even L",
    ),
    (
        "ising-wolff-antiferromagnet",
        lambda: dl.rg.sample_ising(5, -0.3, sampler="wolff", key=_key()),
        ValueError,
        "ferromagnet",
    ),
    (
        "ising-L-1",
        lambda: dl.rg.sample_ising(1, 0.3, key=_key()),
        ValueError,
        "L must be",
    ),
    (
        "ising-L-float",
        lambda: dl.rg.sample_ising(4.0, 0.3, key=_key()),
        ValueError,
        "L must be a positive integer",
    ),
    (
        "ising-no-chains",
        lambda: dl.rg.sample_ising(4, 0.3, num_chains=0, key=_key()),
        ValueError,
        "num_chains",
    ),
    (
        "metropolis-odd-lattice",
        lambda: dl.rg.metropolis_sweep(jnp.ones((5, 5)), 0.3, key=_key()),
        ValueError,
        "not bipartite",
    ),
    (
        "ais-one-chain",
        lambda: dl.rg.ais_log_partition(_rbm(), num_chains=1, key=_key()),
        ValueError,
        "num_chains",
    ),
    (
        "ais-schedule",
        lambda: dl.rg.ais_log_partition(_rbm(), betas=[0.0, 0.5], key=_key()),
        ValueError,
        "exactly 1",
    ),
    (
        "torus-1-row",
        lambda: dl.rg.torus_log_partition(0.3, 1, 4),
        ValueError,
        "rows >= 2",
    ),
    (
        "torus-frustrated",
        lambda: dl.rg.torus_log_partition(-1.5, 3, 3),
        ValueError,
        "frustrated antiferromagnet",
    ),
    (
        "thermometer-learning-rate",
        lambda: dl.rg.train_thermometer(
            jnp.ones((4, 2, 2)),
            jnp.array([1.0, 1.0, 2.0, 2.0]),
            key=_key(),
            learning_rate=0.0,
        ),
        ValueError,
        "learning_rate",
    ),
    (
        "thermometer-one-temperature",
        lambda: dl.rg.train_thermometer(jnp.ones((4, 2, 2)), jnp.ones(4), key=_key()),
        ValueError,
        "distinct temperatures",
    ),
    (
        "kernel-input-dims",
        lambda: dl.width.infinite_width_kernels(
            jnp.ones((3, 2)), jnp.ones((3, 4)), depth=1
        ),
        ValueError,
        "input dimensions do not match",
    ),
    (
        "kernel-activation",
        lambda: dl.width.infinite_width_kernels(
            jnp.ones((3, 2)), depth=1, activation="swish"
        ),
        ValueError,
        "unsupported activation",
    ),
    (
        "kernel-closed-form-tanh",
        lambda: dl.width.infinite_width_kernels(
            jnp.ones((3, 2)), depth=1, activation="tanh", method="closed_form"
        ),
        ValueError,
        "no closed form",
    ),
    (
        "kernel-infinite-sigma",
        lambda: dl.width.infinite_width_kernels(
            jnp.ones((3, 2)), depth=1, sigma_w=float("inf")
        ),
        ValueError,
        "finite sigma_w",
    ),
    (
        "kernel-depth",
        lambda: dl.width.infinite_width_kernels(jnp.ones((3, 2)), depth=1.5),
        ValueError,
        "depth",
    ),
    (
        "error-bars-small-ensemble",
        lambda: dl.width.with_error_bars(dl.width.kurtosis, jnp.ones((10, 2))),
        ValueError,
        "too small",
    ),
    (
        "kurtosis-one-network",
        lambda: dl.width.kurtosis(jnp.ones((1, 3))),
        ValueError,
        "at least 2",
    ),
    (
        "four-point-one-network",
        lambda: dl.width.connected_four_point_from_covariance(jnp.ones((1, 2, 2))),
        ValueError,
        "at least 2",
    ),
    (
        "gp-nan-noise",
        lambda: dl.width.gp_posterior(
            jnp.eye(2),
            jnp.ones(2),
            jnp.ones((1, 2)),
            jnp.ones((1, 1)),
            noise=float("nan"),
        ),
        ValueError,
        "noise` must be finite",
    ),
    (
        "linearized-shapes",
        lambda: dl.width.linearized_mse(jnp.eye(3), jnp.ones(4), jnp.ones(4), 1.0),
        ValueError,
        "y_train",
    ),
]
# --- end rg and width ---

# --- echo and resnet ---
_EQ, _EP = jnp.array([1.0, 0.5]), jnp.array([0.2, -0.1])
_OSC = dl.echo.SeparableHamiltonian(lambda q: 0.5 * jnp.sum(q**2))
_WIRT = dl.echo.WirtingerHamiltonian(lambda z: jnp.sum(jnp.abs(z) ** 2))
_QP = dl.echo.CanonicalHamiltonian(
    lambda q, p: jnp.sum(0.5 * p**2 + 0.5 * q**2 + 0.3 * q * p)
)


def _ecost(s):
    return jnp.sum(s[0] ** 2)


def _rfield(d=3, out=None, T=1.0):
    return dl.resnet.ResidualField.init(
        lambda k: dl.MLP(d, d if out is None else out, 4, 1, key=k), 2, T=T, key=_key()
    )


def _rmodel(dim=3):
    body = dl.resnet.ResNet(_rfield(3), "euler", 2)
    return dl.resnet.Classifier(2, dim, 2, body, key=_key(1))


MACHINE_CASES = [
    (
        "echo-gradient-eta-zero",
        lambda: dl.echo.echo_gradient(_OSC, (_EQ, _EP), _ecost, 0.0, 1.0, 10),
        ValueError,
        "`eta` (the strength of the error kick",
    ),
    (
        "echo-gradient-eta-negative",
        lambda: dl.echo.echo_gradient(_OSC, (_EQ, _EP), _ecost, -1e-3, 1.0, 10),
        ValueError,
        "positive, finite",
    ),
    (
        "echo-eta-nan",
        lambda: dl.echo.echo(_OSC, (_EQ, _EP), _ecost, float("nan"), 1.0, 10),
        ValueError,
        "finite, nonzero",
    ),
    (
        "echo-flat-qp-state",
        lambda: dl.echo.evolve(_OSC, jnp.concatenate([_EQ, _EP]), 1.0, 10),
        ValueError,
        "a flat vector [q, p] converts with dynlearn.echo.from_real",
    ),
    (
        "echo-stacked-2n-state",
        lambda: dl.echo.to_real(_OSC, jnp.stack([_EQ, _EP])),
        ValueError,
        "not split automatically",
    ),
    (
        "echo-q-p-shape-mismatch",
        lambda: dl.echo.check_time_reversal(_OSC, (_EQ, _EP[:1])),
        ValueError,
        "q of shape (2,) and p of shape (1,)",
    ),
    (
        "echo-complex-state-canonical",
        lambda: dl.echo.echo(_QP, (_EQ + 0j, _EP + 0j), _ecost, 1e-3, 1.0, 10),
        TypeError,
        "complex-amplitude states need the complex (wirtinger) form",
    ),
    (
        "echo-tuple-state-wirtinger",
        lambda: dl.echo.evolve(_WIRT, (_EQ, _EP), 1.0, 10),
        ValueError,
        "pass q + 1j * p",
    ),
    (
        "echo-integer-state",
        lambda: dl.echo.evolve(_OSC, (jnp.arange(2), jnp.arange(2)), 1.0, 10),
        TypeError,
        "jnp.asarray(x, float)",
    ),
    (
        "echo-from-real-size",
        lambda: dl.echo.from_real(_OSC, jnp.ones(3), (_EQ, _EP)),
        ValueError,
        "from_real needs a real vector of shape (4,)",
    ),
    (
        "echo-t1-infinite",
        lambda: dl.echo.evolve(_OSC, (_EQ, _EP), float("inf"), 10),
        ValueError,
        "`t1` (the evolution time) must be positive and finite",
    ),
    (
        "echo-num-steps-bool",
        lambda: dl.echo.evolve(_OSC, (_EQ, _EP), 1.0, True),
        ValueError,
        "`num_steps` must be a positive int",
    ),
    (
        "echo-save-every-zero",
        lambda: dl.echo.evolve_path(_OSC, (_EQ, _EP), 1.0, 10, save_every=0),
        ValueError,
        "`save_every` must be a positive int",
    ),
    (
        "echo-not-time-reversal-invariant",
        lambda: dl.echo.echo(_QP, (_EQ, _EP), _ecost, 1e-3, 1.0, 10),
        ValueError,
        "H(q, -p) = H(q, p)",
    ),
    (
        "echo-rhel-eps-zero",
        lambda: dl.echo.rhel_gradient(
            lambda th: _OSC, 1.0, (_EQ, _EP), _ecost, 0.0, 1.0, 10
        ),
        ValueError,
        "`eps`",
    ),
    (
        "echo-heb-step-mass-zero",
        lambda: dl.echo.heb_step(
            dl.echo.DuffingNetwork(1, 1, 1, key=_key()),
            jnp.zeros(1),
            jnp.zeros((1, 1)),
            jnp.zeros((1, 1)),
            eta=1e-3,
            m=0.0,
        ),
        ValueError,
        "`m` (the effective mass of the decay step)",
    ),
    (
        "resnet-non-square-layer",
        lambda: _rfield(3, out=4),
        ValueError,
        "but this MLP maps in_size=3 to out_size=4",
    ),
    (
        "resnet-horizon-infinite",
        lambda: _rfield(T=float("inf")),
        ValueError,
        "depth horizon T must be positive and finite",
    ),
    (
        "resnet-neural-ode-max-steps-reached",
        lambda: dl.resnet.neural_ode(_rfield(), jnp.ones(3), max_steps=2),
        RuntimeError,
        "used all max_steps=2 steps and stopped at depth t = ",
    ),
    (
        "resnet-neural-ode-max-steps-zero",
        lambda: dl.resnet.neural_ode(_rfield(), jnp.ones(3), max_steps=0),
        ValueError,
        "`max_steps` (the solver's step budget) must be a positive integer",
    ),
    (
        "resnet-neural-ode-negative-rtol",
        lambda: dl.resnet.NeuralODE(_rfield(), rtol=-1e-3),
        ValueError,
        "`rtol` (relative tolerance) must be positive",
    ),
    (
        "resnet-neural-ode-negative-dt0",
        lambda: dl.resnet.neural_ode(
            _rfield(), jnp.ones(3), solver=dl.resnet.Euler().diffrax_solver(), dt0=-0.1
        ),
        ValueError,
        "`dt0`",
    ),
    (
        "resnet-jacobian-spectrum-batch",
        lambda: dl.resnet.jacobian_spectrum(_rfield(), jnp.ones((2, 3)), "euler", 2),
        ValueError,
        "for a batch use jax.vmap",
    ),
    (
        "resnet-moons-n-zero",
        lambda: dl.resnet.moons(0, key=_key()),
        ValueError,
        "moons: `n` (the number of examples) must be a positive integer",
    ),
    (
        "resnet-circles-negative-noise",
        lambda: dl.resnet.circles(10, noise=-0.1, key=_key()),
        ValueError,
        "circles: `noise`",
    ),
    (
        "resnet-spirals-negative-n",
        lambda: dl.resnet.spirals(-1, key=_key()),
        ValueError,
        "spirals: `n`",
    ),
    (
        "resnet-spirals-zero-turns",
        lambda: dl.resnet.spirals(10, turns=0.0, key=_key()),
        ValueError,
        "`turns`",
    ),
    (
        "resnet-split-sample-mismatch",
        lambda: dl.resnet.split(jnp.ones((4, 2)), jnp.zeros(3), key=_key()),
        ValueError,
        "same number of examples",
    ),
    (
        "resnet-classifier-body-dim",
        lambda: _rmodel(dim=5),
        ValueError,
        "body must map a state of shape (5,)",
    ),
    (
        "resnet-train-label-out-of-range",
        lambda: dl.resnet.train_classifier(
            _rmodel(), jnp.ones((3, 2)), jnp.array([0, 1, 2]), num_steps=1
        ),
        ValueError,
        "labels must lie in 0..1",
    ),
    (
        "resnet-train-float-labels",
        lambda: dl.resnet.train_classifier(
            _rmodel(), jnp.ones((3, 2)), jnp.zeros(3), num_steps=1
        ),
        TypeError,
        "integer class indices",
    ),
    (
        "resnet-train-negative-smoothness",
        lambda: dl.resnet.train_classifier(
            _rmodel(),
            jnp.ones((3, 2)),
            jnp.zeros(3, int),
            num_steps=1,
            smoothness_weight=-1.0,
        ),
        ValueError,
        "`smoothness_weight` must be finite and >= 0",
    ),
]
# --- end echo and resnet ---

CASES = CORE_CASES + STIFF_CASES + PHYSICS_CASES + MACHINE_CASES


def test_the_table_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize(
    ("thunk", "error", "phrase"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_a_clear_error(thunk, error, phrase):
    with pytest.raises(error) as info:
        thunk()
    assert phrase.lower() in str(info.value).lower(), str(info.value)


# Silence "unused" lints for helpers the sections use.
_ = (jnp, np, dl)
