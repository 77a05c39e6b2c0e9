"""Small pytree utilities and the input checks shared by every entry point."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


def check_integer(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int, or a ValueError naming `name` if it is not an integer (bools
    excluded) of at least `minimum`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or (value < minimum)
    ):
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return int(value)


class NonFiniteError(FloatingPointError):
    """Raised when a flow or an optimiser produces non-finite values or diverges."""


def tree_dot(a: Any, b: Any) -> jax.Array:
    """Euclidean inner product ⟨a, b⟩ of two pytrees with the same structure."""
    leaves = [jnp.vdot(x, y) for x, y in zip(jtu.tree_leaves(a), jtu.tree_leaves(b))]
    return sum(leaves, jnp.zeros((), jnp.result_type(*jtu.tree_leaves(a))))


def tree_norm(a: Any) -> jax.Array:
    """Euclidean norm ‖a‖ of a pytree, treated as one flat vector."""
    return jnp.sqrt(tree_dot(a, a))


def tree_axpy(alpha: Any, x: Any, y: Any) -> Any:
    """α·x + y, leafwise."""
    return jtu.tree_map(lambda u, v: alpha * u + v, x, y)


def tree_scale(alpha: Any, x: Any) -> Any:
    """α·x, leafwise."""
    return jtu.tree_map(lambda u: alpha * u, x)


def tree_all_finite(x: Any) -> jax.Array:
    """True iff every entry of every leaf is finite."""
    leaves = jtu.tree_leaves(x)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def tree_max_abs(x: Any) -> jax.Array:
    """max |x_i| over all entries of all leaves."""
    leaves = jtu.tree_leaves(x)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))


def tree_index(x: Any, i: int | slice) -> Any:
    """Index the leading (time) axis of every leaf."""
    return jtu.tree_map(lambda leaf: leaf[i], x)


def _describe(path: tuple) -> str:
    return "params" + jtu.keystr(path) if path else "params"


def split_params(params: Any) -> tuple[Any, Any]:
    """Split `params` into its trainable floating-point arrays and everything else.

    Every array-like leaf must be a real floating-point array. Integer, boolean and
    complex leaves are rejected with an error that names the offending leaf, because
    a gradient flow over them is undefined. Non-array leaves (functions, strings,
    `None`) are treated as static, as `equinox.partition` does.

    **Returns:** `(dynamic, static)` such that `eqx.combine(dynamic, static)`
    rebuilds `params`.
    """
    flat, _ = jtu.tree_flatten_with_path(params)
    if not flat:
        raise ValueError("`params` is an empty pytree: there is nothing to train.")
    n_float = 0
    for path, leaf in flat:
        if isinstance(leaf, bool | np.bool_) or (
            isinstance(leaf, int | np.integer) and not isinstance(leaf, bool)
        ):
            raise TypeError(
                f"{_describe(path)} is the Python/NumPy integer or bool {leaf!r}; "
                "gradient-based training needs floating-point parameters. Use a "
                "float (e.g. 1.0) or move it out of the parameter pytree."
            )
        if isinstance(leaf, float):
            raise TypeError(
                f"{_describe(path)} is a Python float ({leaf!r}); wrap it as an array, "
                "e.g. jnp.asarray(1.0), so that it can be differentiated and saved."
            )
        if isinstance(leaf, jax.Array | np.ndarray) or hasattr(leaf, "dtype"):
            dtype = jnp.asarray(leaf).dtype
            if jnp.issubdtype(dtype, jnp.complexfloating):
                raise TypeError(
                    f"{_describe(path)} has complex dtype {dtype}; split it into real "
                    "and imaginary parts (two real arrays) before training."
                )
            if not jnp.issubdtype(dtype, jnp.floating):
                raise TypeError(
                    f"{_describe(path)} has dtype {dtype}, but gradient-based training "
                    "needs floating-point parameters. Cast it with .astype(float) or "
                    "make it a static field (eqx.field(static=True))."
                )
            n_float += 1
    if n_float == 0:
        raise ValueError(
            "`params` has no floating-point array leaves: there is nothing to train."
        )
    return eqx.partition(params, eqx.is_inexact_array)


def checked_loss(loss_fn: Callable, params: Any) -> Callable[[Any], jax.Array]:
    """Validate `loss_fn` on `params` by abstract evaluation and return Φ(dynamic).

    The returned function maps the dynamic (floating-point) part of `params` to the
    scalar loss. Raises a `TypeError` that names the problem if `loss_fn` does not
    return a real scalar.
    """
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)

    def phi(dyn):
        return loss_fn(eqx.combine(dyn, static))

    try:
        out = jax.eval_shape(phi, dynamic)
    except Exception as e:  # re-raise with context, keeping the original
        raise type(e)(f"calling loss_fn(params) failed: {e}") from e
    if not hasattr(out, "shape") or isinstance(out, tuple | list | dict):
        raise TypeError(
            f"loss_fn must return a real scalar array, but it returned {type(out)}. "
            "If it returns (loss, aux), wrap it: lambda p: loss_fn(p)[0]."
        )
    if out.shape != ():
        raise TypeError(
            f"loss_fn must return a scalar, but it returned shape {out.shape}. "
            "Reduce over the batch, e.g. with jnp.mean(...)."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"loss_fn must return a real floating-point scalar, got dtype {out.dtype}."
        )
    return phi


def check_positive(name: str, value: Any) -> None:
    """Raise a ValueError unless `value` is a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number, got {value!r}.") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")


def default_float() -> Any:
    """The default floating dtype (float64 when jax_enable_x64 is on)."""
    return jnp.zeros(()).dtype if jax.config.jax_enable_x64 else jnp.float32


def ravel_params(params: Any) -> jax.Array:
    """All floating-point array leaves of `params` concatenated into one flat vector
    (the order of `jax.tree_util.tree_leaves`). Useful for distances and projections."""
    from jax.flatten_util import ravel_pytree

    return ravel_pytree(eqx.filter(params, eqx.is_inexact_array))[0]


_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = [0.0]


def _on_duration_event(event: str, duration: float, **kwargs) -> None:
    if event in _COMPILE_EVENTS:
        _compile_seconds[0] += duration


jax.monitoring.register_event_duration_secs_listener(_on_duration_event)


def timed(fn: Callable, *args: Any) -> tuple[Any, float, float]:
    """Call `fn(*args)`, block on the result, and split the wall time into the part
    JAX spent tracing/compiling (from its monitoring events) and the rest.

    **Returns:** `(output, compile_seconds, run_seconds)`.
    """
    import time

    before = _compile_seconds[0]
    tic = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    wall = time.perf_counter() - tic
    compile_time = _compile_seconds[0] - before
    return out, compile_time, max(wall - compile_time, 0.0)


def floats_to_arrays(tree: Any) -> Any:
    """Turn Python float leaves into 0-d arrays, so that `eqx.filter_jit` traces them
    instead of recompiling for every new value (learning rates, tolerances)."""
    return jtu.tree_map(lambda x: jnp.asarray(x) if isinstance(x, float) else x, tree)
