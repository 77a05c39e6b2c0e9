"""Hamiltonians in real canonical form H(q, p) and in complex (Wirtinger) form H(Φ, Φ*).

Two state layouts are used throughout `dynlearn.echo`:

- **canonical**: a tuple `(q, p)` of real arrays of equal shape; equations of motion
  $\\dot q = ∂H/∂p$, $\\dot p = -∂H/∂q$, i.e. $\\dot x = J∇H$ with
  $J = \\begin{pmatrix}0 & I\\\\ -I & 0\\end{pmatrix}$; time reversal $p → -p$;
- **complex**: one complex array Φ; equations of motion $i\\dot Φ = ∂H/∂Φ^*$ with the
  Wirtinger derivative $∂/∂Φ^* = ½(∂/∂\\mathrm{Re}Φ + i∂/∂\\mathrm{Im}Φ)$; time reversal
  $Φ → Φ^*$ (phase conjugation). Writing $Φ = q + ip$ this is canonical dynamics with
  Hamiltonian $H/2$ (the convention of López-Pastor & Marquardt's code).

Every public function of `dynlearn.echo` that takes a state validates it against the
Hamiltonian's layout first: a canonical state must be a `tuple` (or `list`) of exactly
two real floating arrays of equal shape (one stacked `(2, n)` or flat `[q, p]` array is
refused rather than guessed at); a complex-form state must be one array (a real array
is read as Φ with Im Φ = 0).

Gradients of a real function $f$ of a state are returned in the same layout:
`(∂f/∂q, ∂f/∂p)` for canonical states and $∂f/∂\\mathrm{Re}Φ + i∂f/∂\\mathrm{Im}Φ$ for
complex ones (see [`dynlearn.echo.state_gradient`][]).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np


State = Any
"""A phase-space state: `(q, p)` (canonical) or a complex array Φ (Wirtinger form)."""


def is_traced(tree: Any) -> bool:
    """True if any leaf of `tree` is a JAX tracer (we are inside jit/vmap/grad)."""
    return any(isinstance(x, jax.core.Tracer) for x in jtu.tree_leaves(tree))


def _describe(state: Any) -> str:
    if isinstance(state, tuple | list):
        return f"a {type(state).__name__} of {len(state)} entries"
    if hasattr(state, "shape") and hasattr(state, "dtype"):
        return f"one array of shape {tuple(state.shape)} and dtype {state.dtype}"
    return f"a {type(state).__name__}"


def as_state(hamiltonian: AbstractHamiltonian, state: Any) -> State:
    """Validate `state` against the layout of `hamiltonian` and **return** it in
    canonical form: a tuple `(q, p)` of equal-shaped real floating arrays, or one
    complex array Φ (a real array is promoted to complex). Raises `ValueError` for a
    wrong structure or shape and `TypeError` for a wrong dtype, naming the expected
    layout. Works on tracers (only shapes and dtypes are inspected)."""
    name = type(hamiltonian).__name__
    if hamiltonian.complex_form:
        if isinstance(state, tuple | list):
            raise ValueError(
                f"{name} is in complex (Wirtinger) form: its state is one complex "
                f"array Φ = q + ip, got {_describe(state)}. Pass q + 1j * p, or use "
                "a canonical Hamiltonian (CanonicalHamiltonian, SeparableHamiltonian) "
                "for a real (q, p) state."
            )
        phi = jnp.asarray(state)
        if jnp.issubdtype(phi.dtype, jnp.complexfloating):
            return phi
        if jnp.issubdtype(phi.dtype, jnp.floating):
            return phi.astype(jnp.result_type(phi.dtype, jnp.complex64))
        raise TypeError(
            f"{name} needs a complex (or real floating) state Φ, got dtype {phi.dtype}."
        )
    layout = (
        f"{name} is a canonical Hamiltonian: its state is a tuple (q, p) of two real "
        "floating arrays of equal shape"
    )
    if not isinstance(state, tuple | list):
        shape = tuple(np.shape(state)) if hasattr(state, "shape") else None
        hint = ""
        if shape is not None and len(shape) >= 2 and shape[0] == 2:
            hint = (
                " A stacked array is not split automatically; if its rows are q and "
                "p, pass (x[0], x[1])."
            )
        elif shape is not None and len(shape) == 1 and shape[0] % 2 == 0:
            hint = (
                " A flat vector [q, p] converts with "
                "dynlearn.echo.from_real(hamiltonian, x, like=(q, p))."
            )
        raise ValueError(f"{layout}, got {_describe(state)}.{hint}")
    if len(state) != 2:
        raise ValueError(f"{layout}, got {_describe(state)}.")
    q, p = (jnp.asarray(v) for v in state)
    if q.shape != p.shape:
        raise ValueError(
            f"{layout}; got q of shape {q.shape} and p of shape {p.shape}. Every "
            "coordinate needs its conjugate momentum."
        )
    for v in (q, p):
        if jnp.issubdtype(v.dtype, jnp.complexfloating):
            raise TypeError(
                f"{layout}, got dtype {v.dtype}. Complex-amplitude states need the "
                "complex (Wirtinger) form: dynlearn.echo.WirtingerHamiltonian (or a "
                "subclass such as KerrLatticeHamiltonian) with one complex array Φ."
            )
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise TypeError(
                f"{layout}, got dtype {v.dtype}; convert with jnp.asarray(x, float)."
            )
    return (q, p)


def _real_gradient(f: Callable[[jax.Array], jax.Array], z: jax.Array) -> jax.Array:
    """∂f/∂Re z + i ∂f/∂Im z for a real scalar function f of a complex array z."""
    gr, gi = jax.grad(lambda re, im: jnp.real(f(re + 1j * im)), argnums=(0, 1))(
        jnp.real(z), jnp.imag(z)
    )
    return gr + 1j * gi


class AbstractHamiltonian(eqx.Module):
    """A time-reversal-invariant Hamiltonian system.

    Subclasses define [`energy`][dynlearn.echo.AbstractHamiltonian.energy] and the
    layout-specific operations below; a subclass may also provide `split_step`, an
    exact symmetric splitting used by [`dynlearn.echo.Strang`][].
    """

    complex_form: ClassVar[bool]
    """Whether states are complex arrays (Wirtinger form) or `(q, p)` tuples."""
    kick_scale: ClassVar[float]
    """Momentum change per unit η per unit gradient in the echo: 1 (canonical), ½
    (complex form, since Φ = q + ip is canonical for H/2)."""

    @abc.abstractmethod
    def energy(self, state: State) -> jax.Array:
        """The value H of the Hamiltonian at `state` (a real scalar)."""

    @abc.abstractmethod
    def vector_field(self, state: State) -> State:
        """dΦ/dt at `state`."""

    @abc.abstractmethod
    def time_reverse(self, state: State) -> State:
        """The time-reversal operation: $p → -p$ or $Φ → Φ^*$."""

    @abc.abstractmethod
    def kick(self, state: State, cost: Callable[[State], Any], eta: Any) -> State:
        """Error injection: the state after evolving under the Hamiltonian `eta·cost`
        for unit time, to first order in η (canonical: $x + ηJ∇C$; complex:
        $Φ - iη∂C/∂Φ^*$)."""

    @abc.abstractmethod
    def gradient_from_displacement(self, delta: State) -> State:
        """Invert the echo identity $δ = ηJ∇L$ (per unit η): return ∇L from δ."""

    def split_step(self, state: State, dt: Any) -> State:
        """One step of a symmetric, exactly solvable splitting (optional)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no exact splitting; use "
            "`integrator=dynlearn.echo.ImplicitMidpoint()` (symmetric and symplectic "
            "for any H)."
        )

    def has_split_step(self) -> bool:
        return type(self).split_step is not AbstractHamiltonian.split_step


class _CanonicalOps(AbstractHamiltonian):
    complex_form: ClassVar[bool] = False
    kick_scale: ClassVar[float] = 1.0

    def time_reverse(self, state: State) -> State:
        q, p = state
        return (q, -p)

    def kick(self, state: State, cost: Callable[[State], Any], eta: Any) -> State:
        q, p = state
        gq, gp = jax.grad(lambda s: jnp.real(cost(s)))((q, p))
        return (q + eta * gp, p - eta * gq)

    def gradient_from_displacement(self, delta: State) -> State:
        dq, dp = delta
        return (-dp, dq)


class CanonicalHamiltonian(_CanonicalOps):
    """A user-defined Hamiltonian H(q, p) in real canonical coordinates.

    **Arguments:**

    - `fn`: `fn(q, p) -> scalar`, with `q` and `p` real arrays of equal shape. It must
      be time-reversal invariant, $H(q, -p) = H(q, p)$ (checked by
      [`dynlearn.echo.check_time_reversal`][] before an echo).

    Integrate it with [`dynlearn.echo.ImplicitMidpoint`][] (symmetric and symplectic
    for any H); for $H = \\sum p^2/2m + V(q)$ prefer
    [`dynlearn.echo.SeparableHamiltonian`][] and the explicit leapfrog.
    """

    fn: Callable[[jax.Array, jax.Array], jax.Array]

    def energy(self, state: State) -> jax.Array:
        q, p = state
        return self.fn(q, p)

    def vector_field(self, state: State) -> State:
        gq, gp = jax.grad(lambda s: self.fn(*s))(tuple(state))
        return (gp, -gq)


class SeparableHamiltonian(_CanonicalOps):
    """$H(q, p) = \\sum_i p_i^2 / 2m_i + V(q)$, integrated by leapfrog
    (Störmer–Verlet kick–drift–kick, the Strang splitting of the kinetic and potential
    flows), which is explicit, symplectic and exactly time-reversible.

    **Arguments:**

    - `potential`: `V(q) -> scalar` (any callable, e.g. an `eqx.Module` or a
      `dynlearn.MLP` with scalar output).
    - `mass`: a positive scalar or an array broadcastable to `q`.
    """

    potential: Callable[[jax.Array], jax.Array]
    mass: Any = 1.0

    def energy(self, state: State) -> jax.Array:
        q, p = state
        return 0.5 * jnp.sum(p**2 / self.mass) + self.potential(q)

    def vector_field(self, state: State) -> State:
        q, p = state
        return (p / self.mass, -jax.grad(self.potential)(q))

    def split_step(self, state: State, dt: Any) -> State:
        q, p = state
        grad_v = jax.grad(self.potential)
        p = p - 0.5 * dt * grad_v(q)
        q = q + dt * p / self.mass
        p = p - 0.5 * dt * grad_v(q)
        return (q, p)


class _WirtingerOps(AbstractHamiltonian):
    complex_form: ClassVar[bool] = True
    kick_scale: ClassVar[float] = 0.5

    def vector_field(self, state: State) -> State:
        return -0.5j * _real_gradient(self.energy, state)

    def time_reverse(self, state: State) -> State:
        return jnp.conj(state)

    def kick(self, state: State, cost: Callable[[State], Any], eta: Any) -> State:
        return state - 0.5j * eta * _real_gradient(cost, state)

    def gradient_from_displacement(self, delta: State) -> State:
        return 2j * delta


class WirtingerHamiltonian(_WirtingerOps):
    """A user-defined real Hamiltonian $H(Φ, Φ^*)$ of a complex field Φ, with
    $i\\dot Φ = ∂H/∂Φ^*$ (optics/cavity convention of López-Pastor & Marquardt,
    PRX 13, 031020 (2023)).

    **Arguments:**

    - `fn`: `fn(phi) -> real scalar`. Time-reversal invariance means
      $H(Φ^*) = H(Φ)$ (real hoppings, no synthetic gauge fields).

    Integrate it with [`dynlearn.echo.ImplicitMidpoint`][] or give a subclass an exact
    `split_step` (as [`dynlearn.echo.KerrLatticeHamiltonian`][] does).
    """

    fn: Callable[[jax.Array], jax.Array]

    def energy(self, state: State) -> jax.Array:
        return jnp.real(self.fn(state))


def state_gradient(
    hamiltonian: AbstractHamiltonian, fn: Callable[[State], Any], state: State
) -> State:
    """∇f of a real function of the state, in the state's layout: `(∂f/∂q, ∂f/∂p)`
    (canonical) or $∂f/∂\\mathrm{Re}Φ + i∂f/∂\\mathrm{Im}Φ$ (complex form). This is
    `jax.grad` used as the ground truth for echo gradients."""
    state = as_state(hamiltonian, state)
    if hamiltonian.complex_form:
        return _real_gradient(fn, state)
    return jax.grad(lambda s: jnp.real(fn(s)))(state)


def to_real(hamiltonian: AbstractHamiltonian, state: State) -> jax.Array:
    """The state as one real vector `[q, p]` (complex form: `[Re Φ, Im Φ]`)."""
    state = as_state(hamiltonian, state)
    if hamiltonian.complex_form:
        return jnp.concatenate([jnp.real(state).ravel(), jnp.imag(state).ravel()])
    q, p = state
    return jnp.concatenate([q.ravel(), p.ravel()])


def from_real(hamiltonian: AbstractHamiltonian, x: jax.Array, like: State) -> State:
    """Inverse of [`dynlearn.echo.to_real`][]; `like` (a state of the Hamiltonian's
    layout) gives the shapes, and `x` must be a vector of twice its size."""
    like = as_state(hamiltonian, like)
    n = like.size if hamiltonian.complex_form else like[0].size
    x = jnp.asarray(x)
    if x.shape != (2 * n,):
        raise ValueError(
            f"from_real needs a real vector of shape ({2 * n},) (the [q, p] layout of "
            f"`like`), got shape {x.shape}."
        )
    if hamiltonian.complex_form:
        return (x[:n] + 1j * x[n:]).reshape(like.shape)
    q, _ = like
    return (x[:n].reshape(q.shape), x[n:].reshape(q.shape))


_TR_MESSAGE = (
    "The Hamiltonian is not time-reversal invariant: H(q, -p) != H(q, p){detail}. "
    "Echo backpropagation needs H(q, -p) = H(q, p) (complex form: H(conj(phi)) = "
    "H(phi)); remove terms odd in the momenta (magnetic/Coriolis terms, complex "
    "hoppings, gyrators)."
)


def _default_rtol(dtype: Any) -> float:
    return 1e4 * float(jnp.finfo(dtype).eps)


def _violations(
    hamiltonian: AbstractHamiltonian, state: State, key: Any, num_samples: int
) -> jax.Array:
    """Relative violations |H(x) - H(Tx)| / (1 + |H(x)|) at `state` and at
    `num_samples` unit-normal perturbations of it (jit-compatible)."""
    x = to_real(hamiltonian, state)
    noise = jr.normal(key, (num_samples, x.size), x.dtype)
    samples = jnp.concatenate([x[None], x[None] + noise])

    def violation(xs):
        s = from_real(hamiltonian, xs, state)
        h = hamiltonian.energy(s)
        hr = hamiltonian.energy(hamiltonian.time_reverse(s))
        return jnp.abs(h - hr) / (1.0 + jnp.abs(h))

    return jax.vmap(violation)(samples)


def check_time_reversal(
    hamiltonian: AbstractHamiltonian,
    state: State,
    *,
    key: Any = None,
    num_samples: int = 4,
    rtol: float | None = None,
) -> float:
    """Check $H(\\mathcal T x) = H(x)$ on `state` and on `num_samples` random states
    near it (unit normal perturbations), and raise `ValueError` if it fails.
    Inside `jit` it runs at trace time when the Hamiltonian and state are concrete, and
    returns NaN when they are traced (the echo functions then check inside the
    compiled graph instead, see [`dynlearn.echo.echo`][]). `rtol` defaults to 10⁴ ε of
    the state's dtype (2e-12 in float64), far below any genuine violation.

    HEB (and every echo in this module) relies on time-reversal invariance: only then
    does "reverse momenta, evolve forward" undo the evolution. **Returns** the largest
    relative violation found.
    """
    state = as_state(hamiltonian, state)
    x = to_real(hamiltonian, state)
    rtol = _default_rtol(x.dtype) if rtol is None else rtol
    try:
        with jax.ensure_compile_time_eval():
            key = jr.key(0) if key is None else key
            worst = float(jnp.max(_violations(hamiltonian, state, key, num_samples)))
    except jax.errors.ConcretizationTypeError:
        return float("nan")  # the Hamiltonian depends on traced values: not checkable
    if not worst <= rtol:
        raise ValueError(
            _TR_MESSAGE.format(detail=f" (relative violation {worst:.2e} > {rtol:g})")
        )
    return worst


def ensure_time_reversal(hamiltonian: AbstractHamiltonian, state: State) -> State:
    """Check time-reversal invariance wherever it can be checked and **return**
    `state` (use the returned value: under `jit` the check is attached to it).

    With concrete values this is [`dynlearn.echo.check_time_reversal`][] (a
    `ValueError` before any compute). When the Hamiltonian or the state is traced
    (a coupling passed as a `jit` argument, `vmap`, `grad`) the same test runs inside
    the compiled graph on `state` and one fixed perturbation of it (four evaluations
    of H), and a violation raises `equinox.EquinoxRuntimeError` with the same message
    when the computation runs."""
    state = as_state(hamiltonian, state)
    if not is_traced((hamiltonian, state)):
        if not np.isnan(check_time_reversal(hamiltonian, state)):
            return state
    x_dtype = to_real(hamiltonian, state).dtype
    worst = jnp.max(_violations(hamiltonian, state, jr.key(0), 1))
    msg = _TR_MESSAGE.format(
        detail=(
            f" (relative violation above {_default_rtol(x_dtype):.1e}, checked inside "
            "jit on the state and one perturbation of it; check=False skips this)"
        )
    )
    return eqx.error_if(state, ~(worst <= _default_rtol(x_dtype)), msg)
