r"""Depth-dependent residual vector field $f(x, θ(t))$, $t \in [0, T]$."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree


BASES = ("piecewise", "hat", "legendre")

# Relative tolerance (in units of one piece) used to locate the piece of a time that
# sits on a piece boundary up to round-off (diffrax accumulates t_n = t_{n-1} + h).
_PIECE_EPS = 1e-8


def _legendre(s: Array, n: int) -> Array:
    """P_0(s), …, P_{n-1}(s) by Bonnet's recurrence."""
    ps = [jnp.ones_like(s), s]
    for i in range(1, n - 1):
        ps.append(((2 * i + 1) * s * ps[i] - i * ps[i - 1]) / (i + 1))
    return jnp.stack(ps[:n])


def _declared_sizes(layer) -> tuple[int, int] | None:
    """`(in, out)` of a layer that declares them (`in_size`/`out_size` integer
    attributes as on `dynlearn.MLP`, or the `(out, in)` weight of an affine map);
    None when the sizes can only be inferred from an input."""
    n_in, n_out = getattr(layer, "in_size", None), getattr(layer, "out_size", None)
    if isinstance(n_in, int | str) and isinstance(n_out, int | str):
        return n_in, n_out
    weight = getattr(layer, "weight", None)
    if hasattr(layer, "bias") and getattr(weight, "ndim", 0) == 2:
        return int(weight.shape[1]), int(weight.shape[0])
    return None


class ResidualField(eqx.Module):
    r"""A residual vector field $f(x, θ(t))$ on the depth interval $[0, T]$.

    `layers` is one layer module (any `eqx.Module` with `layer(x) -> dx`, e.g.
    [`dynlearn.MLP`][] or [`dynlearn.resnet.HamiltonianLayer`][]) whose array leaves
    carry an extra leading axis of length $P$: the weights $θ_1 … θ_P$. They define
    $θ(t)$ through `basis`:

    - `"piecewise"`: $θ(t) = θ_{j}$ for $t \in [jT/P, (j+1)T/P)$ — a plain ResNet of
      $P$ layers when discretised with depth $N = P$.
    - `"hat"`: piecewise-linear interpolation of nodes $θ_j$ at $t_j = jT/(P-1)$
      (Meganet's prolongation; continuous in $t$, with kinks at the nodes, so schemes
      of order > 1 keep their order only when the nodes lie on step boundaries).
    - `"legendre"`: $Θ(t) = \sum_i P_i(2t/T - 1)\,θ_i$ with Legendre polynomials:
      smooth in depth, so depth $N$ and parameter count $P$ are decoupled
      (Haber & Ruthotto 2017; Queiruga et al. 2020).

    Build it with [`dynlearn.resnet.ResidualField.init`][] or from stacked layers.
    """

    layers: PyTree
    T: float = eqx.field(static=True)
    basis: str = eqx.field(static=True)
    num_pieces: int = eqx.field(static=True)

    def __init__(
        self,
        layers: PyTree,
        T: float = 1.0,
        basis: Literal["piecewise", "hat", "legendre"] = "piecewise",
    ):
        if basis not in BASES:
            raise ValueError(f"Unknown basis {basis!r}; use one of {BASES}.")
        if isinstance(T, bool) or not (np.ndim(T) == 0 and 0 < float(T) < np.inf):
            raise ValueError(
                f"The depth horizon T must be positive and finite, got {T!r}."
            )
        leaves = jax.tree.leaves(eqx.filter(layers, eqx.is_array))
        if not leaves:
            raise ValueError("`layers` has no array leaves (weights).")
        sizes = {leaf.shape[0] if leaf.ndim else 0 for leaf in leaves}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(
                "Every array leaf of `layers` needs the same leading (stacking) axis; "
                "build them with eqx.filter_vmap(make_layer)(keys) or "
                "ResidualField.init."
            )
        self.num_pieces = sizes.pop()
        if basis == "hat" and self.num_pieces < 2:
            raise ValueError("The 'hat' basis needs at least 2 nodes.")
        one = jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, layers)
        io = _declared_sizes(one)
        if io is not None and (io[0] != io[1] or "scalar" in io):
            raise ValueError(
                f"A residual layer must map R^d to R^d (the step adds h f(x) to x), "
                f"but this {type(one).__name__} maps in_size={io[0]!r} to "
                f"out_size={io[1]!r}. Use a square layer (in_size = out_size = d), "
                "and lift inputs of another size to d with a linear map first (as "
                "dynlearn.resnet.Classifier does)."
            )
        self.layers = layers
        self.T = float(T)
        self.basis = basis

    @classmethod
    def init(
        cls,
        make_layer: Callable[[PRNGKeyArray], eqx.Module],
        num: int,
        *,
        T: float = 1.0,
        basis: Literal["piecewise", "hat", "legendre"] = "piecewise",
        key: PRNGKeyArray,
        coefficient_decay: float = 0.0,
    ) -> ResidualField:
        r"""`num` independent layers `make_layer(key_i)` stacked along a new axis.

        `coefficient_decay` $α$ scales the $i$-th weight set by $(i+1)^{-α}$ (useful
        for `"legendre"`: $α > 0$ makes $Θ(t)$ a convergent, smooth expansion).
        """
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(
                f"`num` (the number of weight sets θ_i) must be a positive integer, "
                f"got {num!r}."
            )
        layers = eqx.filter_vmap(make_layer)(jr.split(key, num))
        if coefficient_decay:
            scale = (jnp.arange(num) + 1.0) ** (-coefficient_decay)

            def _scale(a):
                return a * scale.reshape((num,) + (1,) * (a.ndim - 1)).astype(a.dtype)

            layers = jax.tree.map(_scale, layers)
        return cls(layers, T, basis)

    # ----------------------------------------------------------------- evaluation
    def _piece(self, t: Array) -> Array:
        """Index j of the piece [jT/P, (j+1)T/P) containing t (round-off tolerant)."""
        P = self.num_pieces
        j = jnp.floor(jnp.asarray(t) * (P / self.T) + _PIECE_EPS)
        return jnp.clip(j, 0, P - 1).astype(int)

    def weights(self, t: Array, t_ref: Array | None = None) -> Array:
        """The basis weights $p_i(t)$, shape `(P,)`, so that $θ(t) = Σ_i p_i θ_i$.

        For `"piecewise"` the piece is chosen by `t_ref` (default `t`): schemes pass
        the midpoint of their step, so every stage of a step sees the same layer.
        """
        P, T = self.num_pieces, self.T
        t = jnp.asarray(t)
        dtype = jax.tree.leaves(eqx.filter(self.layers, eqx.is_array))[0].dtype
        if self.basis == "piecewise":
            return jax.nn.one_hot(
                self._piece(t if t_ref is None else t_ref), P, dtype=dtype
            )
        if self.basis == "hat":
            u = t * ((P - 1) / T)
            return jnp.maximum(0.0, 1.0 - jnp.abs(u - jnp.arange(P))).astype(dtype)
        return _legendre(2.0 * t / T - 1.0, P).astype(dtype)

    def layer(self, t: Array, t_ref: Array | None = None) -> eqx.Module:
        r"""The layer module with weights $θ(t)$ (a gather for `"piecewise"`)."""
        if self.basis == "piecewise":
            j = self._piece(t if t_ref is None else t_ref)
            return jax.tree.map(lambda a: a[j] if eqx.is_array(a) else a, self.layers)
        p = self.weights(t)
        return jax.tree.map(
            lambda a: jnp.tensordot(p, a, axes=1) if eqx.is_array(a) else a,
            self.layers,
        )

    def __call__(self, t: Array, x: Array, t_ref: Array | None = None) -> Array:
        r"""$f(x, θ(t))$ for one state `x` of shape `(d,)` or a batch `(B, d)` (the
        weights $θ(t)$ are formed once and shared by the batch)."""
        layer = self.layer(t, t_ref)
        return layer(x) if jnp.ndim(x) == 1 else jax.vmap(layer)(x)

    def node_values(self) -> PyTree:
        """θ(t) sampled where it is defined by its nodes (stacked, leading axis)."""
        if self.basis in ("piecewise", "hat"):
            return self.layers
        m = 4 * self.num_pieces
        ts = (jnp.arange(m) + 0.5) * (self.T / m)
        return eqx.filter_vmap(self.layer)(ts)

    def smoothness_penalty(self) -> Array:
        r"""$\sum_j \lVert θ_{j+1} - θ_j \rVert^2 / Δ$, a discrete $\int \lVert
        \dot θ\rVert^2 dt$ over the nodes of $θ(t)$ (spacing $Δ$): Chang et al.'s
        weight-smoothness regulariser with the $1/h$ scaling that keeps it
        depth-independent."""
        nodes = eqx.filter(self.node_values(), eqx.is_array)
        leaves = jax.tree.leaves(nodes)
        m = leaves[0].shape[0]
        if m < 2:
            return jnp.zeros((), leaves[0].dtype)
        delta = self.T / (m - 1 if self.basis == "hat" else m)
        return sum(jnp.sum((a[1:] - a[:-1]) ** 2) for a in leaves) / delta
