r"""The empirical neural tangent kernel of a finite network.

$$Θ_{ab}(x, z) = \sum_p \frac{∂f_a(x)}{∂θ_p}\,\frac{∂f_b(z)}{∂θ_p}
= J(x)\,J(z)^T,$$

summed over every floating-point leaf of the parameter pytree (Jacot, Gabriel &
Hongler 2018, arXiv:1806.07572, eq. (4)). Two implementations (Novak,
Sohl-Dickstein & Schoenholz 2022, "Fast finite width neural tangent kernel",
arXiv:2206.08720):

* `"jacobian"` — Jacobian contraction: per-example Jacobians by reverse mode, then a
  contraction over parameters. Works for any network; cost
  $O(n_1 n_2 O^2 P)$ for the contraction.
* `"ntvp"` — NTK-vector products: column $(j, b)$ is $J(x)\,[J(z_j)^T e_b]$, one
  vector-Jacobian and one Jacobian-vector product per column; never stores a
  Jacobian (memory $O(P)$), any network.
* `"structured"` — for [`dynlearn.MLP`][] only. Each affine layer
  $y = s_w W a + s_b b$ contributes
  $\bigl[s_w^2\, a(x)\!\cdot\! a(z) + s_b^2\bigr]\; δ(x)\, δ(z)^T$ where
  $δ = ∂f/∂y$ is the back-propagated cotangent at the layer's output (the
  "structured derivatives" rule for dense layers, Novak et al. 2022 §4). The
  Jacobian with respect to the weights is never formed: cost
  $O(n_1 n_2 \sum_l (n_{l-1} + O^2 n_l))$ instead of $O(n_1 n_2 O^2 \sum_l n_{l-1}
  n_l)$.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike

from .._misc import split_params
from .._network import MLP


_IMPLEMENTATIONS = ("jacobian", "structured", "ntvp", "auto")


def _as_inputs(x: ArrayLike, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError(
            f"`{name}` must be a batch of inputs with a leading batch axis, got a "
            "scalar. For scalar-input networks pass an array of shape (n,)."
        )
    return x


def _check_pair(x1: Array, x2: Array) -> None:
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"Input dimensions do not match: x1 has per-example shape {x1.shape[1:]} "
            f"but x2 has {x2.shape[1:]}. Both must be batches of the network's input."
        )


def _model_fn(fn: Callable, params: Any) -> tuple[Callable, Any, Any]:
    """Return `(f(dynamic, x), dynamic, static)` for `fn(x)` or `fn(params, x)`."""
    if params is None:
        model = fn
        dynamic, static = split_params(model)

        def f(p, x):
            return eqx.combine(p, static)(x)

        return f, dynamic, static
    dynamic, static = split_params(params)

    def f(p, x):
        return fn(eqx.combine(p, static), x)

    return f, dynamic, static


def _pad_blocks(x: Array, block: int) -> tuple[Array, int]:
    n = x.shape[0]
    nb = -(-n // block)
    pad = nb * block - n
    if pad:
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
    return x.reshape(nb, block, *x.shape[1:]), n


def _blocked(kernel_block: Callable, x1: Array, x2: Array, block_size: int | None):
    """Evaluate `kernel_block(x1_block, x2_block) -> (b1, b2, ...)` block by block."""
    if block_size is None or (block_size >= x1.shape[0] and block_size >= x2.shape[0]):
        return kernel_block(x1, x2)
    b1, n1 = _pad_blocks(x1, block_size)
    b2, n2 = _pad_blocks(x2, block_size)

    def row(xa):
        return jax.lax.map(lambda xb: kernel_block(xa, xb), b2)

    out = jax.lax.map(row, b1)  # (nb1, nb2, B, B, ...)
    out = jnp.moveaxis(out, 2, 1)  # (nb1, B, nb2, B, ...)
    s = out.shape
    out = out.reshape(s[0] * s[1], s[2] * s[3], *s[4:])
    return out[:n1, :n2]


def _finish(theta: Array, out_shape: tuple[int, ...], trace: bool) -> Array:
    """(n1, n2, O, O) -> the documented output layout."""
    if trace:
        return jnp.trace(theta, axis1=2, axis2=3) / theta.shape[2]
    if out_shape == ():
        return theta[:, :, 0, 0]
    return theta


def _jacobian_block(f: Callable, dynamic: Any) -> Callable:
    def jac(x):
        return jax.jacrev(lambda p: jnp.ravel(f(p, x)))(dynamic)

    def block(xa, xb):
        ja = jax.vmap(jac)(xa)
        jb = ja if xb is xa else jax.vmap(jac)(xb)

        def contract(a, b):
            a = a.reshape(a.shape[0], a.shape[1], -1)
            b = b.reshape(b.shape[0], b.shape[1], -1)
            return jnp.einsum("iap,jbp->ijab", a, b)

        parts = jtu.tree_leaves(jtu.tree_map(contract, ja, jb))
        return sum(parts[1:], parts[0])

    return block


def _ntvp_block(f: Callable, dynamic: Any) -> Callable:
    """NTK-vector products: column (j, b) of Θ is J(x_a)·[J(x_j)ᵀ e_b], one VJP and
    one batched JVP per column, computed sequentially (memory O(P), no Jacobian)."""

    def block(xa, xb):
        def fa(p):
            return jax.vmap(lambda x: jnp.ravel(f(p, x)))(xa)

        def fb(p):
            return jax.vmap(lambda x: jnp.ravel(f(p, x)))(xb)

        out_b, vjp = jax.vjp(fb, dynamic)
        nb, o = out_b.shape

        def column(e):
            (v,) = vjp(e)
            return jax.jvp(fa, (dynamic,), (v,))[1]  # (na, O)

        basis = jnp.eye(nb * o, dtype=out_b.dtype).reshape(nb * o, nb, o)
        cols = jax.lax.map(column, basis).reshape(nb, o, xa.shape[0], o)
        return jnp.transpose(cols, (2, 0, 3, 1))  # (na, nb, O_a, O_b)

    return block


def _mlp_taps(net: MLP, x: Array, taps: tuple[Array, ...]):
    """Forward pass of `net` adding `taps[l]` to layer l's affine output.

    Returns the flattened output and the inputs `a_l` of every affine layer."""
    if net.in_size == "scalar":
        x = jnp.reshape(x, (1,))
    inputs = []
    for layer, tap in zip(net.layers[:-1], taps[:-1]):
        inputs.append(x)
        x = net.activation(layer(x) + tap)
    inputs.append(x)
    x = net.final_activation(net.layers[-1](x) + taps[-1])
    return jnp.ravel(x), tuple(inputs)


def _structured_block(net: MLP) -> Callable:
    zeros = tuple(
        jnp.zeros(layer.weight.shape[0], layer.weight.dtype) for layer in net.layers
    )
    scales = [
        (
            layer.weight_scale**2,
            0.0 if layer.bias is None else layer.bias_scale**2,
        )
        for layer in net.layers
    ]

    def per_example(x):
        # δ_l = ∂f/∂(layer-l output), one reverse pass per output component; the
        # layer inputs a_l come out of the same forward pass.
        deltas, inputs = jax.jacrev(lambda t: _mlp_taps(net, x, t), has_aux=True)(zeros)
        return inputs, deltas

    def block(xa, xb):
        ia, da = jax.vmap(per_example)(xa)
        ib, db = (ia, da) if xb is xa else jax.vmap(per_example)(xb)
        theta = 0.0
        for (sw2, sb2), a1, a2, d1, d2 in zip(scales, ia, ib, da, db):
            gram = sw2 * (a1 @ a2.T) + sb2  # (n1, n2)
            dd = jnp.einsum("iak,jbk->ijab", d1, d2)  # (n1, n2, O, O)
            theta = theta + gram[:, :, None, None] * dd
        return theta

    return block


def empirical_ntk(
    fn: Callable,
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    params: Any = None,
    implementation: Literal["auto", "jacobian", "structured", "ntvp"] = "auto",
    trace: bool = False,
    block_size: int | None = None,
) -> Array:
    """The empirical NTK $Θ_{ab}(x, z) = ∇_θ f_a(x) · ∇_θ f_b(z)$ of a finite network.

    **Arguments:**

    - `fn`: either a callable pytree acting on one unbatched input (e.g. a
      [`dynlearn.MLP`][] or any `equinox.Module`), whose floating-point array leaves
      are the parameters; or, with `params` given, a function `fn(params, x)`.
    - `x1`, `x2`: batches of inputs (leading batch axis). `x2=None` means `x1`.
    - `params`: the parameter pytree when `fn` is `fn(params, x)`.
    - `implementation`: `"jacobian"` (Jacobian contraction, any network),
      `"structured"` (dense-layer structured derivatives, [`dynlearn.MLP`][] only;
      much faster for wide networks), `"ntvp"` (NTK-vector products, any network:
      one VJP and one JVP per kernel column, memory O(P) instead of O(n·O·P); slower
      in time) or `"auto"` (structured for an MLP, else Jacobian).
    - `trace`: return the output-averaged kernel $\\frac1O\\sum_a Θ_{aa}$.
    - `block_size`: compute the kernel in blocks of this many inputs from each side
      (bounds memory to `block_size` per-example Jacobians per side).

    **Returns:** shape `(n1, n2)` for scalar outputs or `trace=True`, else
    `(n1, n2, O, O)` with the network outputs flattened to length `O`.
    """
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(
            f"Unknown implementation {implementation!r}; use one of {_IMPLEMENTATIONS}."
        )
    if block_size is not None and (not isinstance(block_size, int) or block_size <= 0):
        raise ValueError(f"`block_size` must be a positive int, got {block_size!r}.")
    x1 = _as_inputs(x1, "x1")
    same = x2 is None
    x2 = x1 if same else _as_inputs(x2, "x2")
    _check_pair(x1, x2)
    is_mlp = params is None and isinstance(fn, MLP)
    if implementation == "auto":
        implementation = "structured" if is_mlp else "jacobian"
    if implementation == "structured" and not is_mlp:
        raise ValueError(
            "implementation='structured' needs a dynlearn.MLP passed as `fn` (with "
            "params=None); use implementation='jacobian' for other networks."
        )
    return _ntk_jit(
        fn, params, x1, None if same else x2, implementation, trace, block_size
    )


@eqx.filter_jit
def _ntk_jit(fn, params, x1, x2, implementation, trace, block_size):
    if implementation == "structured":
        block = _structured_block(fn)
    elif implementation == "ntvp":
        f, dynamic, _ = _model_fn(fn, params)
        block = _ntvp_block(f, dynamic)
    else:
        f, dynamic, _ = _model_fn(fn, params)
        block = _jacobian_block(f, dynamic)
    out_shape = jax.eval_shape(
        lambda x: fn(x) if params is None else fn(params, x), x1[0]
    ).shape
    kernel = _blocked(block, x1, x1 if x2 is None else x2, block_size)
    return _finish(kernel, out_shape, trace)


def kernel_distance(a: ArrayLike, b: ArrayLike) -> Array:
    """Relative Frobenius distance $\\|Θ_a - Θ_b\\|_F / \\|Θ_b\\|_F$ between kernels."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Kernel shapes differ: {a.shape} vs {b.shape}.")
    return jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel())


def ntk_along_trajectory(
    params_path: Any,
    x: ArrayLike,
    *,
    fn: Callable | None = None,
    implementation: Literal["auto", "jacobian", "structured"] = "auto",
    trace: bool = False,
) -> Array:
    """The empirical NTK on inputs `x` at every saved point of a trajectory.

    `params_path` is `traj.params` of a [`dynlearn.Trajectory`][]: the network (or
    parameter pytree) with a leading time axis on every array leaf. If the network
    itself was trained, leave `fn=None`; if a parameter pytree was trained with a
    function `fn(params, x)`, pass `fn`.

    **Returns:** shape `(num_times, n, n[, O, O])`. The kernel movement is
    `kernel_distance(out[i], out[0])`.
    """
    if params_path is None:
        raise ValueError(
            "The trajectory has no saved parameters; rerun with save_params=True."
        )
    x = _as_inputs(x, "x")
    dynamic, static = eqx.partition(params_path, eqx.is_inexact_array)

    def one(p):
        p = eqx.combine(p, static)
        if fn is None:
            return empirical_ntk(p, x, implementation=implementation, trace=trace)
        return empirical_ntk(
            fn, x, params=p, implementation=implementation, trace=trace
        )

    return jax.lax.map(one, dynamic)
