"""Residual networks as ODE discretisations: orders, diffrax agreement, inverses."""

import functools

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import dynlearn as dl
from dynlearn import resnet as rn


D = 4


def smooth_field(d=D, P=3, T=1.0, key=0):
    """MLP layer with Legendre weights Θ(t) = Σ_i P_i(2t/T-1) θ_i: smooth in depth."""
    return rn.ResidualField.init(
        lambda k: dl.MLP(d, d, 8, 1, "tanh", key=k),
        P,
        T=T,
        basis="legendre",
        key=jr.key(key),
        coefficient_decay=1.0,
    )


def hamiltonian_field(d=D, P=3, basis="legendre", key=2):
    return rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(d, 6, key=k), P, basis=basis, key=jr.key(key)
    )


@pytest.fixture(scope="module")
def y0():
    return jr.normal(jr.key(1), (D,))


def _order(field, y0, scheme, Ns, ref):
    """Fitted convergence order -slope of log ‖x_N - x(T)‖ vs log N."""
    errs = [
        float(jnp.linalg.norm(rn.discretise(field, y0, scheme, N).y1 - ref)) for N in Ns
    ]
    return -dl.fit_slope(Ns, errs)[0], errs


@pytest.fixture(scope="module")
def smooth_ref(y0):
    """x(T) of ẋ = f(x, Θ(t)) by Tsit5 at rtol = atol = 1e-13 (error ~1e-13, far below
    the smallest network error in these tests, RK4 at N=32: ~1e-8)."""
    field = smooth_field()
    return field, rn.neural_ode(field, y0, rtol=1e-13, atol=1e-13)


# The required tolerance: fitted order within ±0.1 of the theory. Measured orders
# are printed by the resnet_depth_limit scenario (all within 0.04).
FIRST_ORDER_LIMIT = [
    ("euler", [16, 32, 64]),
    ("heun", [16, 32, 64]),
    ("rk4", [8, 16, 32]),
    ("midpoint", [16, 32, 64]),
    ("reversible_heun", [16, 32, 64]),
    # Momentum's O(h) lag of v behind f has a large O(h²) correction at small N.
    (rn.Momentum(0.5), [128, 256, 512]),
]


@pytest.mark.parametrize(
    "scheme,Ns", FIRST_ORDER_LIMIT, ids=[str(c[0])[:8] for c in FIRST_ORDER_LIMIT]
)
def test_convergence_order_to_ode(scheme, Ns, y0, smooth_ref):
    field, ref = smooth_ref
    s = rn.SCHEMES[scheme]() if isinstance(scheme, str) else scheme
    order, errs = _order(field, y0, s, Ns, ref)
    assert abs(order - s.order) <= 0.1, (order, errs)


@pytest.mark.parametrize("scheme", [rn.Leapfrog(), rn.LMResNet(-0.3)], ids=str)
def test_convergence_order_to_scheme_limit(scheme, y0):
    # Leapfrog -> ẍ = f, ẋ(0) = 0 (order 2); LM-ResNet with constant k ->
    # (1 + k) ẋ = f (order 1, Lu et al. 2018). (The Hamiltonian network equals
    # diffrax.SemiImplicitEuler to round-off, below; its order 1 is shown by the
    # resnet_depth_limit scenario.)
    field = smooth_field()
    ref = rn.neural_ode(field, y0, scheme=scheme, rtol=1e-13, atol=1e-13)
    order, errs = _order(field, y0, scheme, [16, 32, 64], ref)
    assert abs(order - scheme.order) <= 0.1, (order, errs)


DIFFRAX_CASES = [
    (s, b)
    for s in ("euler", "heun", "midpoint", "reversible_heun", "hamiltonian")
    for b in ("legendre", "piecewise")
    # With piecewise-constant θ our multi-stage steps keep θ_n for the whole step,
    # while diffrax's Heun / reversible Heun evaluate θ(t_n + h) = θ_{n+1}.
    # Hamiltonian: per-layer weights (Chang et al.'s network) only.
    if (b == "legendre") != (s == "hamiltonian") or s == "euler"
]


@pytest.mark.parametrize("scheme,basis", DIFFRAX_CASES)
def test_agrees_with_diffrax_solver(scheme, basis, y0):
    # Same recurrence, so only round-off separates them: measured <= 4.4e-16.
    N = 12
    if scheme == "hamiltonian":
        field = hamiltonian_field(P=N if basis == "piecewise" else 3, basis=basis)
    elif basis == "piecewise":
        field = rn.ResidualField.init(
            lambda k: dl.MLP(D, D, 8, 1, "tanh", key=k), N, key=jr.key(3)
        )
    else:
        field = smooth_field()
    ours = rn.discretise(field, y0, scheme, N).y1
    if scheme == "euler" and basis == "legendre":
        # Also the continuous-depth model: NeuralODE(Euler, dt0 = T/N) is the ResNet.
        theirs = rn.NeuralODE(field, dfx.Euler(), dt0=field.T / N)(y0)
    else:
        theirs = rn.diffrax_discretise(field, y0, scheme, N)
    assert float(jnp.max(jnp.abs(ours - theirs))) <= 1e-12


def test_euler_is_the_plain_resnet(y0):
    # Independent loop over the N = P layers: x <- x + h * layer_n(x).
    N, T = 6, 2.0
    field = rn.ResidualField.init(
        lambda k: dl.MLP(D, D, 5, 1, "relu", key=k), N, T=T, key=jr.key(4)
    )
    layers = [jax.tree.map(lambda a, n=n: a[n], field.layers) for n in range(N)]

    @functools.partial(jax.jit, static_argnums=1)
    def manual(x, repeat):  # repeat = 2: every layer twice with h/2
        for layer in layers:
            for _ in range(repeat):
                x = x + (T / (N * repeat)) * layer(x)
        return x

    x = manual(y0, 1)
    sol = rn.discretise(field, y0, "euler", N, trajectory=True)
    assert float(jnp.max(jnp.abs(sol.y1 - x))) <= 1e-14
    assert sol.ys.shape == (N + 1, D) and jnp.allclose(sol.ts[-1], T)
    # Piecewise weights refined N -> 2N repeat every layer with h/2.
    sol2 = rn.discretise(field, y0, "euler", 2 * N)

    x2 = manual(y0, 2)
    assert float(jnp.max(jnp.abs(sol2.y1 - x2))) <= 1e-14


@pytest.mark.parametrize(
    "scheme,N",
    [
        ("hamiltonian", 200),
        ("midpoint", 200),
        ("leapfrog", 200),
        ("reversible_heun", 200),
        (rn.Momentum(0.9), 20),
    ],
    ids=str,
)
def test_inverse_recovers_input(scheme, N, y0):
    # Exact algebraic inverses: measured ~1e-16 relative in float64 (Momentum divides
    # by γ each layer, so its error grows like γ^-N; N=20 keeps it at round-off).
    field = hamiltonian_field() if scheme == "hamiltonian" else smooth_field()
    s = rn.SCHEMES[scheme]() if isinstance(scheme, str) else scheme
    sol = rn.discretise(field, y0, s, N)
    back = s.output(rn.invert(field, sol.state, s, N))
    rel = float(jnp.linalg.norm(back - y0) / jnp.linalg.norm(y0))
    assert rel <= 1e-12, rel


@pytest.mark.parametrize(
    "scheme", ["hamiltonian", "midpoint", "leapfrog", "reversible_heun"]
)
def test_reversible_backprop_equals_autodiff(scheme, y0):
    # Gradient w.r.t. all weights and the input; measured ~3e-16 relative.
    field = hamiltonian_field() if scheme == "hamiltonian" else smooth_field()
    target = jnp.arange(D, dtype=y0.dtype)

    def loss(args, backprop):
        fld, x0 = args
        out = rn.discretise(fld, x0, scheme, 40, backprop=backprop).y1
        return jnp.sum(jnp.sin(out - target))

    # jax.checkpoint is checked once (it is scheme-independent).
    kinds = rn.BACKPROP if scheme == "midpoint" else ("autodiff", "reversible")
    if scheme == "hamiltonian":  # a batch of states through the same custom VJP
        x0 = jnp.stack([y0, -y0, 2 * y0])
        out = rn.discretise(field, x0, scheme, 40).y1
        single = jax.vmap(lambda x: rn.discretise(field, x, scheme, 40).y1)(x0)
        assert float(jnp.max(jnp.abs(out - single))) <= 1e-14
    else:
        x0 = y0
    g = {b: jax.jit(jax.grad(loss), static_argnums=1)((field, x0), b) for b in kinds}
    ref = dl.ravel_params(g["autodiff"])
    for b in kinds[1:]:
        err = jnp.linalg.norm(dl.ravel_params(g[b]) - ref) / jnp.linalg.norm(ref)
        assert float(err) <= 1e-10, (b, float(err))


def _temp_bytes(backprop, depth, batch=64, d=32):
    field = rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(d, d, key=k), 2, basis="hat", key=jr.key(0)
    )
    xs = jr.normal(jr.key(1), (batch, d))

    def loss(fld):  # batched states: weight cotangents accumulate in the VJP
        out = rn.discretise(fld, xs, "hamiltonian", depth, backprop=backprop).y1
        return jnp.sum(out**2)

    compiled = jax.jit(jax.grad(loss)).lower(field).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_reversible_memory_flat_in_depth():
    # Required thresholds: reversible grows < 2x from N=16 to 512, plain autodiff >= 10x
    # (it stores N activations of batch·d floats: measured ratio ~30).
    rev = [_temp_bytes("reversible", n) for n in (16, 512)]
    plain = [_temp_bytes("autodiff", n) for n in (16, 512)]
    assert rev[1] < 2 * rev[0], rev
    assert plain[1] >= 10 * plain[0], plain


def test_neural_ode_backsolve_adjoint_gradient(y0):
    # The continuous adjoint (BacksolveAdjoint, optimise-then-discretise) against an
    # independent gradient: autodiff through the RK4 network at N = 64, whose
    # O(h⁴) error is ~1e-9 here. Solver tolerances 1e-10 -> measured ~4e-10 rel.
    field = smooth_field()

    def node_loss(fld):
        out = rn.neural_ode(
            fld, y0, rtol=1e-10, atol=1e-10, adjoint=dfx.BacksolveAdjoint()
        )
        return jnp.sum(out**2)

    def net_loss(fld):
        return jnp.sum(rn.discretise(fld, y0, "rk4", 64).y1 ** 2)

    back = dl.ravel_params(jax.grad(node_loss)(field))
    ref = dl.ravel_params(jax.grad(net_loss)(field))
    err = float(jnp.linalg.norm(back - ref) / jnp.linalg.norm(ref))
    assert err <= 1e-7, err


def test_bad_input_errors(y0):
    field = smooth_field()
    with pytest.raises(ValueError, match="Unknown scheme"):
        rn.discretise(field, y0, "adams", 4)
    with pytest.raises(ValueError, match="integer >= 1"):
        rn.discretise(field, y0, "euler", 0)
    with pytest.raises(ValueError, match="must be even"):
        rn.HamiltonianLayer(5, 4, key=jr.key(0))
    hf = hamiltonian_field()
    with pytest.raises(ValueError, match="even"):
        rn.discretise(hf, jnp.ones(5), "hamiltonian", 4)
    with pytest.raises(TypeError, match="HamiltonianLayer"):
        rn.discretise(field, y0, "hamiltonian", 4)
    for k in (1.0, -1.0, 1.5, [0.1, 1.2]):
        with pytest.raises(ValueError, match=r"\|k\| < 1"):
            rn.LMResNet(k)
    with pytest.raises(ValueError, match="per-layer k"):
        rn.discretise(field, y0, rn.LMResNet(jnp.zeros(3)), 4)
    with pytest.raises(ValueError, match="needs a reversible scheme"):
        rn.discretise(field, y0, "euler", 4, backprop="reversible")
    with pytest.raises(ValueError, match="Unknown basis"):
        rn.ResidualField(field.layers, basis="spline")
    with pytest.raises(ValueError, match="shape \\(d,\\)"):
        rn.discretise(field, jnp.ones((2, 3, D)), "euler", 4)
    with pytest.raises(ValueError, match="not adaptive"):
        rn.neural_ode(field, y0, solver=dfx.Euler())
