r"""Infinite-width NNGP and NTK kernels of [`dynlearn.MLP`][].

For an MLP with `depth` hidden layers, activation φ, weight variance $σ_w^2/n_{in}$
and bias variance $σ_b^2$ (either parameterisation of [`dynlearn.MLP`][]):

$$K^{(0)}(x, x') = σ_b^2 + σ_w^2\,\frac{x\cdot x'}{d_{in}},\qquad
K^{(l+1)} = σ_b^2 + σ_w^2\,\mathbb E_{(u,v)\sim N(0, Σ^{(l)})}[φ(u)φ(v)],$$

$$Θ^{(0)} = K^{(0)},\qquad
Θ^{(l+1)} = K^{(l+1)} + σ_w^2\,\dot K^{(l)}\,Θ^{(l)},\qquad
\dot K^{(l)} = \mathbb E[φ'(u)φ'(v)],$$

where $Σ^{(l)}$ is the 2×2 covariance of $(K^{(l)}(x,x), K^{(l)}(x,x'), K^{(l)}(x',x'))$
(Neal 1996; Lee et al. 2018, arXiv:1711.00165, eq. (4); Jacot et al. 2018,
arXiv:1806.07572, Thm. 1). The output kernels are $K^{(L)}$, $Θ^{(L)}$ for `depth`
$= L$. The NTK is the one of the NTK parameterisation (the standard one has no finite
infinite-width NTK).

Closed forms of the Gaussian expectation: relu (arc-cosine kernel of order 1, Cho &
Saul 2009), erf (Williams 1997), linear. Any other activation (a name in
`dynlearn.ACTIVATIONS` or a callable) uses a tensor-product Gauss–Hermite rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._network import ACTIVATIONS, get_activation


CLOSED_FORMS = ("relu", "erf", "linear")
"""Activations whose NNGP/NTK expectations have a closed form."""


class Kernels(NamedTuple):
    """Infinite-width kernels between two batches of inputs, each `(n1, n2)`."""

    nngp: Array
    ntk: Array


# ---------------------------------------------------------------------------------
# Gaussian expectations E[φ(u)φ(v)] and E[φ'(u)φ'(v)] for (u, v) ~ N(0, [[k11, k12],
# [k12, k22]]), elementwise over broadcast arrays.


def _relu(k11, k22, k12):
    # Arc-cosine kernel of order 1 in the correlation ρ = k12/√(k11 k22), clamped to
    # [−1, 1]: √(k·k) = k exactly in IEEE arithmetic, so a pair with k11 = k22 = k12
    # (the x = x′ diagonal) gets ρ = 1 and θ = 0 exactly. (From k11 k22 − k12² directly,
    # a last-bit difference gives θ ~ √ε ~ 1e-8 and a derivative kernel wrong by θ/π.)
    norm = jnp.sqrt(k11 * k22)
    pos = norm > 0
    rho = jnp.clip(jnp.where(pos, k12 / jnp.where(pos, norm, 1.0), 1.0), -1.0, 1.0)
    sin = jnp.sqrt((1 - rho) * (1 + rho))
    theta = jnp.arctan2(sin, rho)
    e = norm * (sin + (jnp.pi - theta) * rho) / (2 * jnp.pi)
    edot = (jnp.pi - theta) / (2 * jnp.pi)
    return e, edot


def _erf(k11, k22, k12):
    a = (1 + 2 * k11) * (1 + 2 * k22)
    e = (2 / jnp.pi) * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(a), -1.0, 1.0))
    edot = (4 / jnp.pi) / jnp.sqrt(a - 4 * k12**2)
    return e, edot


def _linear(k11, k22, k12):
    return k12, jnp.ones_like(k12)


_CLOSED = {"relu": _relu, "erf": _erf, "linear": _linear}


@functools.lru_cache(maxsize=32)
def _quadrature(phi: Callable, num_nodes: int) -> Callable:
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    weights = weights / weights.sum()  # E over a standard normal
    dphi = jax.vmap(jax.grad(lambda s: phi(s)))

    def dphi_nd(u):
        return dphi(u.ravel()).reshape(u.shape)

    def expect(k11, k22, k12):
        # u = √k11 ξ1, v = √k22 (ρ ξ1 + √(1-ρ²) ξ2); a scan over the ξ1 nodes keeps
        # memory at (entries × num_nodes) instead of (entries × num_nodes²).
        s1, s2 = jnp.sqrt(k11), jnp.sqrt(k22)
        rho = jnp.clip(k12 / (s1 * s2), -1.0, 1.0)
        c = jnp.sqrt(1 - rho**2)
        z2 = jnp.asarray(nodes)
        w2 = jnp.asarray(weights)

        def step(acc, node):
            z1, w1 = node
            u = s1 * z1
            v = s2[..., None] * (rho[..., None] * z1 + c[..., None] * z2)
            e = phi(u) * jnp.sum(w2 * phi(v), axis=-1)
            edot = dphi_nd(u) * jnp.sum(w2 * dphi_nd(v), axis=-1)
            return (acc[0] + w1 * e, acc[1] + w1 * edot), None

        zero = jnp.zeros(jnp.broadcast_shapes(k11.shape, k22.shape, k12.shape))
        (e, edot), _ = jax.lax.scan(
            step, (zero, zero), (jnp.asarray(nodes), jnp.asarray(weights))
        )
        return e, edot

    return expect


def _expectation(activation: str | Callable, method: str, num_nodes: int) -> Callable:
    if method not in ("auto", "closed_form", "quadrature"):
        raise ValueError(
            f"Unknown method {method!r}; use 'auto', 'closed_form' or 'quadrature'."
        )
    is_name = isinstance(activation, str)
    if is_name and activation not in ACTIVATIONS:
        raise ValueError(
            f"Unsupported activation {activation!r} for the analytic kernel. Closed "
            f"forms exist for {list(CLOSED_FORMS)}; every other named activation "
            f"({sorted(set(ACTIVATIONS) - set(CLOSED_FORMS))}) or any callable uses "
            "Gauss–Hermite quadrature (method='quadrature')."
        )
    if method == "closed_form" and not (is_name and activation in CLOSED_FORMS):
        raise ValueError(
            f"No closed form for activation {activation!r}: closed forms exist only "
            f"for {list(CLOSED_FORMS)}. Use method='quadrature' (Gauss–Hermite), which "
            "works for any activation."
        )
    if method != "quadrature" and is_name and activation in CLOSED_FORMS:
        return _CLOSED[activation]
    if not isinstance(num_nodes, int) or num_nodes < 2:
        raise ValueError(f"`num_nodes` must be an int >= 2, got {num_nodes!r}.")
    return _quadrature(get_activation(activation), num_nodes)


def _inputs(x: ArrayLike, name: str) -> Array:
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim == 1:
        x = x[:, None]  # a batch of scalar inputs
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must have shape (n, d) (or (n,) for scalar inputs), got "
            f"{x.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"`{name}` contains non-finite values.")
    return x


def infinite_width_kernels(
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    depth: int,
    activation: str | Callable = "relu",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    method: Literal["auto", "closed_form", "quadrature"] = "auto",
    num_nodes: int = 128,
) -> Kernels:
    """Analytic infinite-width NNGP kernel and NTK of [`dynlearn.MLP`][].

    **Arguments:**

    - `x1`, `x2`: inputs of shape `(n, d)` (or `(n,)` for scalar inputs);
      `x2=None` means `x1`.
    - `depth`: number of hidden layers, as in [`dynlearn.MLP`][] (`depth=0` is a
      linear model).
    - `activation`, `sigma_w`, `sigma_b`: as in [`dynlearn.MLP`][]. Closed forms for
      `"relu"`, `"erf"`, `"linear"`; anything else (e.g. `"tanh"` or a callable) is
      integrated by Gauss–Hermite quadrature with `num_nodes`² nodes (128²:
      ~1e-9 absolute error for tanh/erf at O(1) variances; kinks such as relu's
      converge only algebraically).
    - `method`: `"auto"` (closed form where one exists), `"closed_form"` or
      `"quadrature"`.

    **Returns:** [`dynlearn.width.Kernels`][] `(nngp, ntk)`, each `(n1, n2)`: the
    covariance $\\mathbb E[f(x)f(x')]$ of one output of the random network, and the
    NTK $Θ(x, x')$ of one output in the NTK parameterisation (equal to
    `empirical_ntk(net, ...)` as the width → ∞).

    **Coincident inputs.** For x = x′ the angle between the two inputs is 0 and the
    relu kernels take their θ = 0 closed forms ($\\mathbb E[φ'^2] = 1/2$). With
    `x2=None` (or `x2` equal to `x1`) the diagonal is computed as exactly that pair, so
    it is exact to round-off; the relu correlation is clamped to [−1, 1] everywhere.
    Between *different* batches a repeated input still carries the √ε ≈ 1e-8 angle
    that a last-bit difference of x·x′ and |x|² implies.
    """
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"`depth` must be a non-negative int, got {depth!r}.")
    if not (0 < sigma_w < np.inf and 0 <= sigma_b < np.inf):
        raise ValueError(
            f"Need finite sigma_w > 0 and sigma_b >= 0, got sigma_w = {sigma_w!r}, "
            f"sigma_b = {sigma_b!r}."
        )
    expect = _expectation(activation, method, num_nodes)
    x1 = _inputs(x1, "x1")
    x2 = x1 if x2 is None else _inputs(x2, "x2")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(
            f"Input dimensions do not match: x1 has d = {x1.shape[1]}, x2 has d = "
            f"{x2.shape[1]}; both batches must have the network's input size."
        )
    symmetric = x2 is x1 or (x1.shape == x2.shape and bool(jnp.array_equal(x1, x2)))
    return _recursion(
        expect, x1, x2, depth, float(sigma_w) ** 2, float(sigma_b) ** 2, symmetric
    )


@eqx.filter_jit
def _recursion(expect, x1, x2, depth, sw2, sb2, symmetric) -> Kernels:
    d = x1.shape[1]
    k11 = sb2 + sw2 * jnp.sum(x1**2, axis=1) / d
    k22 = sb2 + sw2 * jnp.sum(x2**2, axis=1) / d
    k12 = sb2 + sw2 * (x1 @ x2.T) / d

    def same_diagonal(k12, k11):
        # x2 = x1: the diagonal pairs are one input twice, so k12_ii is k11_i itself
        # (a matrix product and a sum of squares differ in the last bit)
        if not symmetric:
            return k12
        i = jnp.arange(k11.shape[0])
        return k12.at[i, i].set(k11)

    k12 = same_diagonal(k12, k11)
    ntk = k12
    for _ in range(depth):
        e12, edot = expect(k11[:, None], k22[None, :], k12)
        e11, edot11 = expect(k11, k11, k11)
        e22, _ = expect(k22, k22, k22)
        if symmetric:
            i = jnp.arange(k11.shape[0])
            edot = edot.at[i, i].set(edot11)
        new12 = same_diagonal(sb2 + sw2 * e12, sb2 + sw2 * e11)
        ntk = new12 + sw2 * edot * ntk
        k11, k22, k12 = sb2 + sw2 * e11, sb2 + sw2 * e22, new12
    return Kernels(nngp=k12, ntk=ntk)


def gaussian_expectation(
    activation: str | Callable,
    k11: ArrayLike,
    k22: ArrayLike,
    k12: ArrayLike,
    *,
    method: Literal["auto", "closed_form", "quadrature"] = "auto",
    num_nodes: int = 128,
) -> tuple[Array, Array]:
    """$(\\mathbb E[φ(u)φ(v)],\\ \\mathbb E[φ'(u)φ'(v)])$ for
    $(u, v) \\sim N(0, [[k_{11}, k_{12}], [k_{12}, k_{22}]])$, elementwise."""
    expect = _expectation(activation, method, num_nodes)
    k11, k22, k12 = (
        jnp.asarray(a, dtype=jnp.result_type(float)) for a in (k11, k22, k12)
    )
    k11, k22, k12 = jnp.broadcast_arrays(k11, k22, k12)
    return expect(k11, k22, k12)
