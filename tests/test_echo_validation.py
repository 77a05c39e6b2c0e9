"""Input validation of dynlearn.echo: the state layout, the kick strength η, and the
time-reversal check, which must also hold when the Hamiltonian is traced under jit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from dynlearn import echo


Q = jnp.array([1.0, 0.5])
P = jnp.array([0.2, -0.1])
OSC = echo.SeparableHamiltonian(lambda q: 0.5 * jnp.sum(q**2))


def cost(s):
    return jnp.sum(s[0] ** 2)


# Raised when the compiled computation runs: jax.jit reports it as a JaxRuntimeError
# carrying the message, eqx.filter_jit as an EquinoxRuntimeError.
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def coupled(c):
    """½p² + ½q² + c·q·p: time-reversal invariant only for c = 0."""
    return echo.CanonicalHamiltonian(
        lambda q, p: jnp.sum(0.5 * p**2 + 0.5 * q**2 + c * q * p)
    )


@pytest.mark.parametrize("eta", [0.0, -1e-3, float("nan"), float("inf")])
def test_echo_gradient_rejects_bad_eta(eta):
    # Before: eta = 0 gave NaN gradients, a negative eta a silently sign-flipped kick.
    with pytest.raises(ValueError, match="`eta`.*positive, finite"):
        echo.echo_gradient(OSC, (Q, P), cost, eta, 1.0, 10)


def test_echo_accepts_signed_eta_but_not_zero():
    # The -η echo is part of averaged HEB, so echo() takes either sign.
    out = echo.echo(OSC, (Q, P), cost, -1e-3, 1.0, 10)
    assert out[0].shape == Q.shape
    with pytest.raises(ValueError, match="nonzero"):
        echo.echo(OSC, (Q, P), cost, 0.0, 1.0, 10)
    with pytest.raises(ValueError, match="`eps`"):
        echo.rhel_gradient(lambda th: OSC, 1.0, (Q, P), cost, 0.0, 1.0, 10)


@pytest.mark.parametrize(
    ("state", "phrase"),
    [
        (jnp.concatenate([Q, P]), "from_real"),  # flat [q, p]: was "too many values"
        (jnp.stack([Q, P]), "not split automatically"),  # (2, n): was split silently
        ((Q, P[:1]), "q of shape (2,) and p of shape (1,)"),  # was a reshape error
        ((Q, P, P), "tuple of 3"),
    ],
)
def test_canonical_state_layout_is_validated(state, phrase):
    for call in (
        lambda: echo.echo(OSC, state, cost, 1e-3, 1.0, 10),
        lambda: echo.evolve(OSC, state, 1.0, 10),
        lambda: echo.check_time_reversal(OSC, state),
        lambda: echo.to_real(OSC, state),
    ):
        with pytest.raises(ValueError, match="tuple \\(q, p\\)") as info:
            call()
        assert phrase in str(info.value)


def test_complex_state_for_canonical_hamiltonian_names_the_complex_form():
    # Before: "The state must be floating point, got dtype complex128."
    with pytest.raises(TypeError, match="WirtingerHamiltonian") as info:
        echo.echo(coupled(0.0), (Q + 0j, P + 0j), cost, 1e-3, 1.0, 10)
    assert "CanonicalHamiltonian is a canonical Hamiltonian" in str(info.value)
    w = echo.WirtingerHamiltonian(lambda z: jnp.sum(jnp.abs(z) ** 2))
    with pytest.raises(ValueError, match="q \\+ 1j \\* p"):
        echo.evolve(w, (Q, P), 1.0, 10)
    with pytest.raises(ValueError, match="shape \\(4,\\)"):
        echo.from_real(OSC, jnp.ones(3), (Q, P))


def test_time_reversal_is_checked_under_jit_with_a_traced_coupling():
    # Before: with c traced the eager check could not run and the echo was silently
    # computed for a Hamiltonian that breaks H(q, -p) = H(q, p).
    @jax.jit
    def run(c):
        return echo.echo(coupled(c), (Q, P), cost, 1e-3, 1.0, 10)

    with pytest.raises(RUNTIME_ERRORS, match=r"H\(q, -p\) = H\(q, p\)"):
        jax.block_until_ready(run(0.3))
    ok = run(0.0)  # invariant: passes under jit, same compiled function
    ref = echo.echo(coupled(0.0), (Q, P), cost, 1e-3, 1.0, 10)
    assert jnp.allclose(ok[0], ref[0]) and jnp.allclose(ok[1], ref[1])
    # the eager check is unchanged (ValueError before any compute)
    with pytest.raises(ValueError, match="not time-reversal invariant"):
        echo.echo(coupled(0.3), (Q, P), cost, 1e-3, 1.0, 10)
    # check=False skips it under jit too
    out = jax.jit(
        lambda c: echo.echo(coupled(c), (Q, P), cost, 1e-3, 1.0, 10, check=False)
    )(0.3)
    assert jnp.all(jnp.isfinite(out[0]))


def test_time_reversal_under_jit_catches_a_state_at_rest():
    # The q·p term vanishes at p = 0 (machines start at rest); the in-graph check
    # also tests one perturbed state, so it still fires. echo_gradient and
    # rhel_gradient use the same check.
    rest = (Q, jnp.zeros_like(P))
    grad = eqx.filter_jit(
        lambda c: echo.echo_gradient(coupled(c), rest, cost, 1e-3, 1.0, 10)
    )
    with pytest.raises(eqx.EquinoxRuntimeError, match="not time-reversal invariant"):
        jax.block_until_ready(grad(jnp.asarray(0.3)))
