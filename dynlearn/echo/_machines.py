"""Physical learning machines: an evaluation field Ψ (inputs written in, outputs read
out) and a learning field Θ whose *initial positions* are the trainable parameters
(initial momenta zero), evolved under one time-reversal-invariant Hamiltonian
(López-Pastor & Marquardt, PRX 13, 031020 (2023), Sec. II)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._hamiltonian import (
    AbstractHamiltonian,
    SeparableHamiltonian,
    State,
    _WirtingerOps,
)
from ._integrators import AbstractIntegrator, evolve


def squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """$C = \\sum_j |\\hat y_j - y_j|^2$ (no ½, as in the authors' code); complex
    predictions allowed."""
    return jnp.sum(jnp.abs(prediction - target) ** 2)


class AbstractEchoMachine(eqx.Module):
    """A Hamiltonian learning machine: Hamiltonian, horizon `t1`, `num_steps`
    integration steps, integrator (`None`: the Hamiltonian's default), and the maps
    between (input, parameters) and phase-space states."""

    hamiltonian: eqx.AbstractVar[AbstractHamiltonian]
    t1: eqx.AbstractVar[float]
    num_steps: eqx.AbstractVar[int]
    integrator: eqx.AbstractVar[AbstractIntegrator | None]

    @abc.abstractmethod
    def initial_state(
        self, x: jax.Array, theta: jax.Array, theta_momentum: jax.Array | None = None
    ) -> State:
        """Ψ(−T) from input `x`; Θ(−T) with positions `theta` and momenta
        `theta_momentum` (default 0)."""

    @abc.abstractmethod
    def output(self, state: State) -> jax.Array:
        """The read-out part of Ψ at the final time."""

    @abc.abstractmethod
    def learning_field(self, state: State) -> tuple[jax.Array, jax.Array]:
        """`(positions, momenta)` of the learning field Θ, each shaped like θ."""

    def evolve(self, state: State) -> State:
        """The forward pass: evolve `state` for `t1`."""
        return evolve(
            self.hamiltonian, state, self.t1, self.num_steps, integrator=self.integrator
        )

    def predict(self, x: jax.Array, theta: jax.Array) -> jax.Array:
        """The machine's output for one input `x` (vmap for a batch)."""
        return self.output(self.evolve(self.initial_state(x, theta)))

    def loss(
        self,
        theta: jax.Array,
        x: jax.Array,
        y: jax.Array,
        cost: Callable[[jax.Array, jax.Array], Any] = squared_error,
        theta_momentum: jax.Array | None = None,
    ) -> jax.Array:
        """The discretised loss $L(θ) = C(\\mathrm{output}(M(x, θ)), y)$ of one
        sample: what `jax.grad` differentiates and HEB estimates."""
        state = self.initial_state(x, theta, theta_momentum)
        return cost(self.output(self.evolve(state)), y)


class DuffingPotential(eqx.Module):
    """$V(q) = \\sum_i(ω_i^2q_i^2/2 + λq_i^4/4) + \\frac12 q^TKq + V_c(q)$: Duffing
    (quartic) oscillators with linear couplings K and an optional coupling potential
    $V_c$ (e.g. a `dynlearn.MLP` with scalar output)."""

    omega2: jax.Array
    lam: float
    coupling_matrix: jax.Array
    coupling: Callable[[jax.Array], jax.Array] | None

    def __call__(self, q: jax.Array) -> jax.Array:
        v = 0.5 * jnp.sum(self.omega2 * q**2) + 0.25 * self.lam * jnp.sum(q**4)
        v = v + 0.5 * q @ self.coupling_matrix @ q
        if self.coupling is not None:
            v = v + self.coupling(q)
        return v


class DuffingNetwork(AbstractEchoMachine):
    """A network of coupled Duffing oscillators in real canonical coordinates.

    Coordinates `q = [inputs (n_in), outputs (n_out), learning field (n_learn)]`; the
    input is written into the input positions, the prediction is the output positions
    at time `t1`, the parameters are the learning-field positions at time 0.
    $H = \\sum p_i^2/2m_i + V(q)$ with [`DuffingPotential`][dynlearn.echo.DuffingPotential]:
    $K = (A + A^T)/(2\\sqrt n)$ with $A_{ij} \\sim N(0, 1)$ and zero diagonal (the
    construction of the project notes' reference system), $ω_i^2 = 1 + u_i/2$ with
    $u_i \\sim U(0, 1)$.
    Integrated by leapfrog (exactly reversible).

    **Arguments:** `n_in`, `n_out`, `n_learn`; `lam` (quartic strength λ); `t1`;
    `num_steps`; `coupling`: an extra coupling potential $V_c(q)$ of all n positions
    (e.g. `dl.MLP(n, "scalar", 16, 1, key=...)`; it depends on q only, so
    time-reversal invariance is automatic); `coupling_strength` scales K (0 removes
    it); `learning_mass` (mass of the learning oscillators); `key`.
    """

    hamiltonian: SeparableHamiltonian
    t1: float
    num_steps: int
    integrator: AbstractIntegrator | None
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_learn: int = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_learn: int,
        *,
        lam: float = 2.0,
        t1: float = 10.0,
        num_steps: int = 500,
        coupling: Callable[[jax.Array], jax.Array] | None = None,
        coupling_strength: float = 1.0,
        learning_mass: float = 1.0,
        integrator: AbstractIntegrator | None = None,
        key: Any,
    ):
        for name, v in (("n_in", n_in), ("n_out", n_out), ("n_learn", n_learn)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
        n = n_in + n_out + n_learn
        k1, k2 = jr.split(key)
        a = jr.normal(k1, (n, n))
        k = 0.5 * (a + a.T) / jnp.sqrt(n)
        k = coupling_strength * (k - jnp.diag(jnp.diag(k)))
        omega2 = 1.0 + 0.5 * jr.uniform(k2, (n,))
        mass = jnp.concatenate(
            [jnp.ones(n_in + n_out), learning_mass * jnp.ones(n_learn)]
        )
        pot = DuffingPotential(omega2, lam, k, coupling)
        self.hamiltonian = SeparableHamiltonian(pot, mass)
        self.t1, self.num_steps, self.integrator = t1, num_steps, integrator
        self.n_in, self.n_out, self.n_learn = n_in, n_out, n_learn

    def initial_state(self, x, theta, theta_momentum=None):
        x = jnp.asarray(x)
        if x.shape != (self.n_in,) or theta.shape != (self.n_learn,):
            raise ValueError(
                f"Expected an input of shape ({self.n_in},) and θ of shape "
                f"({self.n_learn},), got {x.shape} and {theta.shape} (vmap over "
                "samples for a batch)."
            )
        dtype = jnp.result_type(x, theta, float)
        q = jnp.concatenate([x, jnp.zeros(self.n_out), theta]).astype(dtype)
        pt = jnp.zeros_like(theta) if theta_momentum is None else theta_momentum
        p = jnp.concatenate([jnp.zeros(self.n_in + self.n_out), pt]).astype(dtype)
        return (q, p)

    def output(self, state):
        q, _ = state
        return q[self.n_in : self.n_in + self.n_out]

    def learning_field(self, state):
        q, p = state
        s = self.n_in + self.n_out
        return q[s:], p[s:]


class KerrLatticeHamiltonian(_WirtingerOps):
    """The authors' Kerr-cavity array (López-Pastor & Marquardt, Fig. 8; code
    `cavity_array/eqs_motion.py`), in complex form with state `[Ψ (n_psi), Θ (W²)]`:

    $$H = Θ^†H_hΘ + \\frac g2\\sum_{\\rm all}|Φ|^4
        + 2κ\\sum_j\\mathrm{Re}(Ψ_j^*Θ_{\\mathrm{port}(j)}) + \\sum_j ω_j|Ψ_j|^2,$$

    with $H_h$ the real nearest-neighbour hopping matrix (amplitude J) of the W×W open
    lattice, so $Θ^†H_hΘ = 2J\\sum_{⟨ij⟩}\\mathrm{Re}(Θ_i^*Θ_j)$. Its `split_step` is the
    authors' Strang scheme: hopping(dt/2) · Kerr(dt/2) · ω(dt/2) · beam splitter(dt) ·
    ω(dt/2) · Kerr(dt/2) · hopping(dt/2), each piece solved exactly.
    """

    hopping_matrix: jax.Array
    hopping_eigvals: jax.Array
    hopping_eigvecs: jax.Array
    g: float
    kappa: float
    omega: jax.Array
    ports: tuple[int, ...] = eqx.field(static=True)

    def energy(self, state):
        n = len(self.ports)
        psi, th = state[:n], state[n:]
        e = jnp.real(jnp.vdot(th, self.hopping_matrix @ th))
        e = e + 0.5 * self.g * jnp.sum(jnp.abs(state) ** 4)
        e = e + 2 * self.kappa * jnp.sum(
            jnp.real(jnp.conj(psi) * th[jnp.array(self.ports)])
        )
        return e + jnp.sum(self.omega * jnp.abs(psi) ** 2)

    def split_step(self, state, dt):
        n, ports = len(self.ports), jnp.array(self.ports)
        v = self.hopping_eigvecs
        u_half = (v * jnp.exp(-0.5j * dt * self.hopping_eigvals)) @ v.T

        def kerr(z):
            return z * jnp.exp(-0.5j * dt * self.g * jnp.abs(z) ** 2)

        rot = jnp.exp(-0.5j * dt * self.omega)
        psi, th = state[:n], u_half @ state[n:]
        psi, th = kerr(psi), kerr(th)
        psi, tp = psi * rot, th[ports]
        c, s = jnp.cos(self.kappa * dt), jnp.sin(self.kappa * dt)
        psi, tp = c * psi - 1j * s * tp, c * tp - 1j * s * psi
        th = th.at[ports].set(tp)
        psi = psi * rot
        psi, th = kerr(psi), kerr(th)
        return jnp.concatenate([psi, u_half @ th])


class KerrLattice(AbstractEchoMachine):
    """The authors' XOR machine: a W×W lattice of Kerr cavities (learning field Θ,
    W² complex modes) and a row Ψ of 4 cavities, Ψ_j coupled by a beam splitter κ to
    corner j of the lattice. Inputs are written into Ψ[inputs], the output is
    Ψ[output] at time `t1`; θ = Re Θ(0) (Im Θ(0) = 0).

    Defaults are the authors' settings (`cavity_array/XOR_optimization.ipynb`):
    g = −2, J = 10, κ = 0.3, ω = 0, T = 20, 500 Strang steps, W = 4, inputs Ψ₀, Ψ₁,
    output Ψ₃.
    """

    hamiltonian: KerrLatticeHamiltonian
    t1: float
    num_steps: int
    integrator: AbstractIntegrator | None
    inputs: tuple[int, ...] = eqx.field(static=True)
    output_index: int = eqx.field(static=True)

    def __init__(
        self,
        width: int = 4,
        *,
        g: float = -2.0,
        hopping: float = 10.0,
        kappa: float = 0.3,
        omega: Any = None,
        t1: float = 20.0,
        num_steps: int = 500,
        inputs: tuple[int, ...] = (0, 1),
        output_index: int = 3,
        integrator: AbstractIntegrator | None = None,
    ):
        if not isinstance(width, int) or width < 2:
            raise ValueError(f"`width` must be an int >= 2, got {width!r}.")
        w = width
        h = np.zeros((w * w, w * w))
        for x in range(w):
            for y in range(w):
                if x + 1 < w:
                    h[w * x + y, w * (x + 1) + y] = hopping
                if y + 1 < w:
                    h[w * x + y, w * x + y + 1] = hopping
        h = h + h.T
        evals, evecs = np.linalg.eigh(h)
        ports = (0, w - 1, w * (w - 1), w * w - 1)
        omega = jnp.zeros(4) if omega is None else jnp.asarray(omega, float)
        if omega.shape != (4,):
            raise ValueError(f"`omega` must have shape (4,), got {omega.shape}.")
        if not set(inputs) | {output_index} <= set(range(4)):
            raise ValueError("`inputs` and `output_index` must index Ψ (0..3).")
        self.hamiltonian = KerrLatticeHamiltonian(
            jnp.asarray(h),
            jnp.asarray(evals),
            jnp.asarray(evecs),
            g,
            kappa,
            omega,
            ports,
        )
        self.t1, self.num_steps, self.integrator = t1, num_steps, integrator
        self.inputs, self.output_index = tuple(inputs), output_index

    @property
    def num_params(self) -> int:
        return self.hamiltonian.hopping_matrix.shape[0]

    def initial_state(self, x, theta, theta_momentum=None):
        x = jnp.asarray(x)
        if x.shape != (len(self.inputs),) or theta.shape != (self.num_params,):
            raise ValueError(
                f"Expected an input of shape ({len(self.inputs)},) and θ of shape "
                f"({self.num_params},), got {x.shape} and {theta.shape}."
            )
        ctype = jnp.result_type(x, theta, 1j)
        psi = jnp.zeros(4, ctype).at[jnp.array(self.inputs)].set(x)
        pt = jnp.zeros_like(theta) if theta_momentum is None else theta_momentum
        return jnp.concatenate([psi, (theta + 1j * pt).astype(ctype)])

    def output(self, state):
        return state[self.output_index : self.output_index + 1]

    def learning_field(self, state):
        th = state[4:]
        return jnp.real(th), jnp.imag(th)
