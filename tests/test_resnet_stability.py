"""Stability functions of the schemes and layer-Jacobian spectra."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import resnet as rn


_MLP = dl.MLP(2, 2, 1, 0, "linear", use_bias=False, key=jr.key(0))


def linear_field(ab):
    """f(x) = A x, A = [[a, -b], [b, a]] (eigenvalues a ± ib): one layer, T = 1."""
    a, b = ab
    A = jnp.stack([jnp.stack([a, -b]), jnp.stack([b, a])])[None]
    return rn.ResidualField(eqx.tree_at(lambda m: m.layers[0].weight, _MLP, A))


def step_matrices(scheme, make_field, params, h):
    """For a linear field the scheme's one-step map is linear: its Jacobian w.r.t. the
    (flattened) state, by autodiff of `scheme.step` itself; one compile per scheme
    (vmapped over the field parameters)."""

    def one(p):
        field = make_field(p)
        state = scheme.init(field, 0.0, h, jnp.ones(2))
        flat, unravel = jax.flatten_util.ravel_pytree(state)

        def step(v):
            new = scheme.step(field, 0.0, h, unravel(v), 0)
            return jax.flatten_util.ravel_pytree(new)[0]

        return jax.jacfwd(step)(flat)

    return np.asarray(jax.jit(jax.vmap(one))(params))


ZS = np.array([(-1.9, 0.3), (0.1, 0.8), (0.0, 0.6)])  # real, complex, imaginary z


@pytest.mark.parametrize(
    "scheme",
    [
        rn.Euler(),
        rn.Heun(),
        rn.RK4(),
        rn.Midpoint(),
        rn.ReversibleHeun(),
        rn.LMResNet(-0.4),
        rn.Momentum(0.6),
    ],
    ids=lambda s: s.name,
)
def test_amplification_is_spectral_radius_of_the_step(scheme):
    # Independent of the closed-form stability polynomials: spectral radius of the
    # implemented step on ẋ = λx (as a 2-D real system), z = hλ. Round-off only.
    h = 0.5
    Ms = step_matrices(scheme, linear_field, jnp.asarray(ZS / h), h)
    for (a, b), M in zip(ZS, Ms):
        rho = np.max(np.abs(np.linalg.eigvals(M)))
        np.testing.assert_allclose(
            float(scheme.amplification(complex(a, b))), rho, rtol=1e-10
        )


def test_hamiltonian_and_leapfrog_amplification():
    # Hamiltonian net on ẏ = a z, ż = -b y (1+1-D linear halves, a = k1², b = k2²):
    # λ = ±i k1 k2, stable for h k1 k2 <= 2. Scales inside and outside that range.
    h = 0.3
    layer = rn.HamiltonianLayer(2, 1, "linear", key=jr.key(0))

    def make(k):
        lay = eqx.tree_at(lambda m: m.f_y.affine.weight, layer, k[0].reshape(1, 1))
        lay = eqx.tree_at(lambda m: m.f_z.affine.weight, lay, k[1].reshape(1, 1))
        return rn.ResidualField(jax.tree.map(lambda x: x[None], lay))

    ks = jnp.array([[1.7, 2.1], [3.0, 2.1], [5.0, 2.0]])  # h k1 k2 = 1.07, 1.89, 3.0
    for k, M in zip(ks, step_matrices(rn.Hamiltonian(), make, ks, h)):
        rho = np.max(np.abs(np.linalg.eigvals(M)))
        z = 1j * h * float(k[0] * k[1])
        amp = float(rn.Hamiltonian().amplification(z))
        np.testing.assert_allclose(amp, rho, rtol=1e-10)
        assert (amp > 1 + 1e-6) == (abs(z) > 2)
    # Leapfrog on ẍ = λx (λ < 0): stable iff h²λ ∈ [-4, 0].
    lf = rn.Leapfrog()
    assert float(lf.amplification(-3.9)) == pytest.approx(1.0, abs=1e-12)
    assert float(lf.amplification(-4.2)) > 1.2


def test_jacobian_spectrum_of_hamiltonian_and_antisymmetric_nets():
    d, N = 6, 8
    x0 = jr.normal(jr.key(1), (d,))
    ham = rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(d, 5, key=k), N, T=2.0, key=jr.key(2)
    )
    ts, z = rn.jacobian_spectrum(ham, x0, "hamiltonian", N)
    assert z.shape == (N, d) and ts.shape == (N,)
    assert float(jnp.max(jnp.abs(z.real))) <= 1e-10  # purely imaginary (Chang et al.)
    assert float(jnp.max(jnp.abs(z.imag))) > 0.05  # ... and not trivially zero
    # Control: a generic tanh MLP layer has eigenvalues well off the imaginary axis.
    mlp = dl.MLP(d, d, 12, 1, "tanh", sigma_w=1.5, key=jr.key(7))
    eig = np.linalg.eigvals(np.asarray(jax.jit(jax.jacfwd(mlp))(x0)))
    assert np.max(np.abs(eig.real)) > 0.05
    # Antisymmetric + damping γ: at x = 0, b = 0 the Jacobian is W - Wᵀ - γI, so
    # Re(hλ) = -hγ exactly for every eigenvalue.
    gamma = 0.4
    anti = rn.ResidualField.init(
        lambda k: rn.AntisymmetricLayer(d, damping=gamma, key=k), N, key=jr.key(3)
    )
    _, z = rn.jacobian_spectrum(anti, jnp.zeros(d), "euler", N)
    np.testing.assert_allclose(np.asarray(z.real), -gamma / N, atol=1e-12)
