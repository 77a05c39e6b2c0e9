r"""Discretisation schemes: each turns $\dot x = f(x, θ(t))$ into a residual network.

A scheme is an `eqx.Module` with a state (one vector, or a pair for multistep and
momentum schemes) and the methods

- `init(field, t0, h, y0) -> state`, `step(field, t, h, state, n) -> state`,
  `output(state) -> y` (what the next layer / classifier sees);
- `inverse_step(field, t, h, state, n)` (reversible schemes only): the state before the
  step that started at `t`;
- `limit(field) -> (vector_field, lift, readout)`: the ODE $\dot u = $
  `vector_field(t, u)`, $u(0) = $ `lift(y0)`, whose solution (read out by `readout`)
  the depth-N network converges to as N → ∞;
- `amplification(z)`: the largest root modulus of the scheme on the test equation
  $\dot x = λx$, $z = hλ$ (stable where ≤ 1);
- `diffrax_solver()`: the diffrax solver that implements the same recurrence, or None.

Every stage of one step evaluates $θ$ with `t_ref = t + h/2`, so with piecewise-constant
weights a step never straddles two layers.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._layers import HamiltonianLayer


def _ref(t, h):
    return t + 0.5 * h


def _halves(x):
    m = x.shape[-1] // 2
    return x[..., :m], x[..., m:]


def _batched(fn, x):
    """fn on one state (d,) or on a batch (B, d)."""
    return fn(x) if x.ndim == 1 else jax.vmap(fn)(x)


def _roots_max_abs(c1, c0):
    """max |ζ| over the roots of ζ² + c1 ζ + c0 = 0 (elementwise, complex)."""
    disc = jnp.sqrt(c1 * c1 - 4 * c0 + 0j)
    return jnp.maximum(jnp.abs((-c1 + disc) / 2), jnp.abs((-c1 - disc) / 2))


class AbstractScheme(eqx.Module):
    """Base class of the discretisation schemes (see the module docstring)."""

    order: ClassVar[int]
    reversible: ClassVar[bool] = False
    name: ClassVar[str]

    def init(self, field, t0, h, y0):
        return y0

    def output(self, state) -> Array:
        return state

    @abc.abstractmethod
    def step(self, field, t, h, state, n):
        """One layer: the state after the residual block of layer `n` at depth-time
        `t` with step `h`."""

    def inverse_step(self, field, t, h, state, n):
        raise ValueError(
            f"The {self.name} scheme is not reversible; use one of Midpoint, "
            "Leapfrog, Hamiltonian, ReversibleHeun or Momentum."
        )

    def limit(self, field):
        return (lambda t, u: field(t, u)), (lambda y0: y0), (lambda u: u)

    @abc.abstractmethod
    def amplification(self, z: Array) -> Array:
        """The scheme's stability function ζ(z) on the test equation u' = λu, z = hλ
        (|ζ| ≤ 1: the layer does not amplify that mode)."""

    def diffrax_solver(self) -> dfx.AbstractSolver | None:
        return None

    def check(self, field, y0, depth: int) -> None:
        """Raise a clear error if the scheme cannot be used with this input."""


class Euler(AbstractScheme):
    r"""Forward Euler $x_{n+1} = x_n + h f(x_n, θ_n)$: the plain ResNet (E 2017;
    Haber & Ruthotto 2017). Order 1; stable for $|1 + z| \le 1$."""

    order: ClassVar[int] = 1
    name: ClassVar[str] = "Euler (ResNet)"

    def step(self, field, t, h, state, n):
        return state + h * field(t, state, _ref(t, h))

    def amplification(self, z):
        return jnp.abs(1 + z)

    def diffrax_solver(self):
        return dfx.Euler()


class Heun(AbstractScheme):
    r"""Heun's method (RK2 network): $k_1 = f(x_n, t_n)$,
    $k_2 = f(x_n + h k_1, t_n + h)$, $x_{n+1} = x_n + \tfrac h2 (k_1 + k_2)$."""

    order: ClassVar[int] = 2
    name: ClassVar[str] = "Heun"

    def step(self, field, t, h, x, n):
        r = _ref(t, h)
        k1 = field(t, x, r)
        k2 = field(t + h, x + h * k1, r)
        return x + (0.5 * h) * (k1 + k2)

    def amplification(self, z):
        return jnp.abs(1 + z + z**2 / 2)

    def diffrax_solver(self):
        return dfx.Heun()


class RK4(AbstractScheme):
    """The classical fourth-order Runge–Kutta network (Meganet `ResNNrk4`)."""

    order: ClassVar[int] = 4
    name: ClassVar[str] = "RK4"

    def step(self, field, t, h, x, n):
        r = _ref(t, h)
        k1 = field(t, x, r)
        k2 = field(t + 0.5 * h, x + (0.5 * h) * k1, r)
        k3 = field(t + 0.5 * h, x + (0.5 * h) * k2, r)
        k4 = field(t + h, x + h * k3, r)
        return x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)

    def amplification(self, z):
        return jnp.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)


class Midpoint(AbstractScheme):
    r"""Chang et al.'s midpoint network (explicit two-step midpoint rule):
    $x_{n+1} = x_{n-1} + 2h f(x_n, θ_n)$, started by one Euler step.

    State: the pair $(x_{n-1}, x_n)$; the Euler start is encoded exactly by
    $x_{-1} = x_0 - h f(x_0)$. Reversible: $x_{n-1} = x_{n+1} - 2h f(x_n)$. Order 2;
    stable only on the segment $z \in (-i, i)$. Same recurrence as
    `diffrax.LeapfrogMidpoint`.
    """

    order: ClassVar[int] = 2
    reversible: ClassVar[bool] = True
    name: ClassVar[str] = "Midpoint"

    def init(self, field, t0, h, y0):
        return (y0 - h * field(t0, y0, _ref(t0, h)), y0)

    def output(self, state):
        return state[1]

    def step(self, field, t, h, state, n):
        prev, x = state
        return (x, prev + (2 * h) * field(t, x, _ref(t, h)))

    def inverse_step(self, field, t, h, state, n):
        x, nxt = state
        return (nxt - (2 * h) * field(t, x, _ref(t, h)), x)

    def amplification(self, z):
        return _roots_max_abs(-2 * z, -1.0)

    def diffrax_solver(self):
        return dfx.LeapfrogMidpoint()


class Leapfrog(AbstractScheme):
    r"""The leapfrog network for the second-order ODE $\ddot x = f(x, θ(t))$
    (Haber & Ruthotto 2017; Chang et al. 2018):
    $x_{n+1} = 2x_n - x_{n-1} + h^2 f(x_n, θ_n)$.

    `start="rest"` (default) starts from $\dot x(0) = 0$, i.e.
    $x_1 = x_0 + \tfrac{h^2}{2} f(x_0)$ (order 2 to the ODE with $\dot x(0)=0$);
    `start="zero"` uses Meganet's $x_{-1} = 0$ (no continuum limit). Reversible:
    $x_{n-1} = 2x_n - x_{n+1} + h^2 f(x_n)$. With $z = h^2 λ$ for
    $\ddot x = λx$, stable for $z \in [-4, 0]$.
    """

    start: str = eqx.field(static=True, default="rest")
    order: ClassVar[int] = 2
    reversible: ClassVar[bool] = True
    name: ClassVar[str] = "Leapfrog"

    def __check_init__(self):
        if self.start not in ("rest", "zero"):
            raise ValueError(
                f"Leapfrog start must be 'rest' or 'zero', got {self.start!r}."
            )

    def init(self, field, t0, h, y0):
        if self.start == "zero":
            return (jnp.zeros_like(y0), y0)
        return (y0 + (0.5 * h * h) * field(t0, y0, _ref(t0, h)), y0)

    def output(self, state):
        return state[1]

    def step(self, field, t, h, state, n):
        prev, x = state
        return (x, 2 * x - prev + (h * h) * field(t, x, _ref(t, h)))

    def inverse_step(self, field, t, h, state, n):
        x, nxt = state
        return (2 * x - nxt + (h * h) * field(t, x, _ref(t, h)), x)

    def limit(self, field):
        if self.start != "rest":
            raise ValueError("Leapfrog(start='zero') has no continuum limit.")

        def vf(t, u):
            x, v = u
            return (v, field(t, x))

        return vf, (lambda y0: (y0, jnp.zeros_like(y0))), (lambda u: u[0])

    def amplification(self, z):
        return _roots_max_abs(-(2 + z), 1.0)


class Hamiltonian(AbstractScheme):
    r"""Chang et al.'s Hamiltonian reversible network (symplectic Euler / Verlet),
    state $x = (y, z)$ and a [`dynlearn.resnet.HamiltonianLayer`][]:

    $$y_{n+1} = y_n + h K_1^\top σ(K_1 z_n + b_1),\quad
      z_{n+1} = z_n - h K_2^\top σ(K_2 y_{n+1} + b_2).$$

    Exact inverse by running the two updates backwards. Same recurrence as
    `diffrax.SemiImplicitEuler` with terms $(f_y, f_z)$. Order 1. On
    $\dot y = a z, \dot z = -b y$ the roots solve $ζ^2 - (2 + z^2)ζ + 1 = 0$ with
    $z = hλ$, $λ = \pm i\sqrt{ab}$: stable for $z \in [-2i, 2i]$.
    """

    order: ClassVar[int] = 1
    reversible: ClassVar[bool] = True
    name: ClassVar[str] = "Hamiltonian"

    def check(self, field, y0, depth):
        layer = field.layer(0.0)
        if not isinstance(layer, HamiltonianLayer):
            raise TypeError(
                "The Hamiltonian scheme needs a field built from "
                f"dynlearn.resnet.HamiltonianLayer, got {type(layer).__name__}."
            )
        if y0.shape[-1] % 2:
            raise ValueError(
                "The Hamiltonian network splits the state into two halves (y, z), so "
                f"its dimension must be even; got shape {y0.shape}."
            )

    def step(self, field, t, h, x, n):
        layer = field.layer(t, _ref(t, h))
        y, z = _halves(x)
        y = y + h * _batched(layer.f_y, z)
        z = z + h * _batched(layer.f_z, y)
        return jnp.concatenate([y, z], axis=-1)

    def inverse_step(self, field, t, h, x, n):
        layer = field.layer(t, _ref(t, h))
        y, z = _halves(x)
        z = z - h * _batched(layer.f_z, y)
        y = y - h * _batched(layer.f_y, z)
        return jnp.concatenate([y, z], axis=-1)

    def amplification(self, z):
        return _roots_max_abs(-(2 + z * z), 1.0)

    def diffrax_solver(self):
        return dfx.SemiImplicitEuler()


class ReversibleHeun(AbstractScheme):
    r"""The reversible Heun method (Kidger et al. 2021, arXiv:2105.13493), state
    $(x, \hat x)$, $\hat x_0 = x_0$:
    $\hat x_{n+1} = 2x_n - \hat x_n + h f(\hat x_n, t_n)$,
    $x_{n+1} = x_n + \tfrac h2 (f(\hat x_n, t_n) + f(\hat x_{n+1}, t_{n+1}))$.
    Algebraically reversible, order 2; `diffrax.ReversibleHeun`. Use with weights that
    are continuous in depth (it evaluates θ at both ends of a step)."""

    order: ClassVar[int] = 2
    reversible: ClassVar[bool] = True
    name: ClassVar[str] = "ReversibleHeun"

    def init(self, field, t0, h, y0):
        return (y0, y0)

    def output(self, state):
        return state[0]

    def step(self, field, t, h, state, n):
        x, xh = state
        f0 = field(t, xh, _ref(t, h))
        xh1 = 2 * x - xh + h * f0
        f1 = field(t + h, xh1, _ref(t, h))
        return (x + (0.5 * h) * (f0 + f1), xh1)

    def inverse_step(self, field, t, h, state, n):
        x1, xh1 = state
        f1 = field(t + h, xh1, _ref(t, h))
        xh = 2 * x1 - xh1 - h * f1
        f0 = field(t, xh, _ref(t, h))
        return (x1 - (0.5 * h) * (f0 + f1), xh)

    def amplification(self, z):
        # On f = λx: (x, x̂) -> ((1+z)x + z²/2 x̂, 2x + (z-1)x̂); trace 2z, det -1,
        # the same characteristic polynomial as the midpoint rule.
        return _roots_max_abs(-2 * z, -1.0)

    def diffrax_solver(self):
        return dfx.ReversibleHeun()


class LMResNet(AbstractScheme):
    r"""The linear-multistep LM-ResNet of Lu et al. (2018, arXiv:1710.10121, eq. 4):

    $$u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + h f(u_n, θ_n),$$

    started by a plain ResNet step ($u_{-1} = u_0$). `k` is a scalar or one value per
    layer (shape `(depth,)`), trainable; it is stored as $κ = \operatorname{artanh} k$
    so that training keeps $|k| < 1$, the zero-stability condition (characteristic
    polynomial $(ζ - 1)(ζ + k)$). For constant $k$ the network converges at order 1
    to $(1 + k)\dot u = f(u)$.
    """

    kappa: Array
    order: ClassVar[int] = 1
    name: ClassVar[str] = "LM-ResNet"

    def __init__(self, k=0.0):
        k_np = np.asarray(k, dtype=float)
        if k_np.ndim > 1 or not np.all(np.isfinite(k_np)) or np.any(np.abs(k_np) >= 1):
            raise ValueError(
                "LM-ResNet needs |k| < 1 (zero-stability: the characteristic "
                f"polynomial (ζ-1)(ζ+k) has a root -k); got k = {k!r}."
            )
        self.kappa = jnp.arctanh(jnp.asarray(k, dtype=jnp.asarray(1.0).dtype))

    @property
    def k(self) -> Array:
        return jnp.tanh(self.kappa)

    def check(self, field, y0, depth):
        if self.kappa.ndim == 1 and self.kappa.shape[0] != depth:
            raise ValueError(
                f"LM-ResNet has {self.kappa.shape[0]} per-layer k values but depth "
                f"{depth}; pass a scalar k or one k per layer."
            )

    def init(self, field, t0, h, y0):
        return (y0, y0)

    def output(self, state):
        return state[1]

    def step(self, field, t, h, state, n):
        prev, u = state
        k = self.k if self.kappa.ndim == 0 else self.k[n]
        return (u, (1 - k) * u + k * prev + h * field(t, u, _ref(t, h)))

    def limit(self, field):
        if self.kappa.ndim:
            raise ValueError("The continuum limit is defined for a scalar k only.")
        k = self.k
        return (lambda t, u: field(t, u) / (1 + k)), (lambda y0: y0), (lambda u: u)

    def amplification(self, z):
        k = self.k if self.kappa.ndim == 0 else self.k[0]
        return _roots_max_abs(-(1 - k + z), -k)


class Momentum(AbstractScheme):
    r"""The momentum ResNet of Sander et al. (2021, arXiv:2102.07870, eq. 2), with
    step $h$: $v_{n+1} = γ v_n + (1 - γ) f(x_n, θ_n)$, $x_{n+1} = x_n + h v_{n+1}$,
    $v_0 = 0$ (γ = 0 is the plain ResNet). For fixed γ it converges at order 1 to
    $\dot x = f$. Reversible in exact arithmetic:
    $x_n = x_{n+1} - h v_{n+1}$, $v_n = (v_{n+1} - (1-γ) f(x_n))/γ$ — the division
    by γ amplifies round-off by $γ^{-N}$, so reversible backprop is only usable for
    shallow nets or γ near 1.
    """

    gamma: float = eqx.field(static=True, default=0.9)
    order: ClassVar[int] = 1
    reversible: ClassVar[bool] = True
    name: ClassVar[str] = "Momentum"

    def __check_init__(self):
        if not 0 < self.gamma < 1:
            raise ValueError(f"Momentum needs 0 < gamma < 1, got {self.gamma!r}.")

    def init(self, field, t0, h, y0):
        return (y0, jnp.zeros_like(y0))

    def output(self, state):
        return state[0]

    def step(self, field, t, h, state, n):
        x, v = state
        v = self.gamma * v + (1 - self.gamma) * field(t, x, _ref(t, h))
        return (x + h * v, v)

    def inverse_step(self, field, t, h, state, n):
        x1, v1 = state
        x = x1 - h * v1
        v = (v1 - (1 - self.gamma) * field(t, x, _ref(t, h))) / self.gamma
        return (x, v)

    def amplification(self, z):
        # v' = γv + (1-γ)λx, x' = x + h v' : characteristic ζ² - (1 + γ + (1-γ)z)ζ + γ.
        g = self.gamma
        return _roots_max_abs(-(1 + g + (1 - g) * z), g)


SCHEMES: dict[str, type[AbstractScheme]] = {
    "euler": Euler,
    "resnet": Euler,
    "heun": Heun,
    "rk4": RK4,
    "midpoint": Midpoint,
    "leapfrog": Leapfrog,
    "hamiltonian": Hamiltonian,
    "reversible_heun": ReversibleHeun,
    "lm": LMResNet,
    "momentum": Momentum,
}
"""Scheme classes by name (each constructed with default arguments)."""


def get_scheme(scheme: str | AbstractScheme) -> AbstractScheme:
    """Resolve a scheme given by name (see `SCHEMES`) or as a scheme object."""
    if isinstance(scheme, AbstractScheme):
        return scheme
    try:
        return SCHEMES[scheme]()
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown scheme {scheme!r}. Use one of {sorted(SCHEMES)} or a scheme "
            "object such as dynlearn.resnet.LMResNet(k=-0.1)."
        ) from None
