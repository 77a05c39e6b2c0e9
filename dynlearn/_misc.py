"""Small pytree utilities and the input checks shared by every entry point."""

from __future__ import annotations

import math
import warnings
import weakref
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


def check_bool(name: str, value: Any) -> bool:
    """`value` as a bool, or a TypeError naming `name` unless it is True or False."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


_PROGRESS = {"default": False}


def show_progress(enabled: bool = True) -> None:
    """Make every training loop show a progress meter by default (the meaning of
    `progress=None`, the default of [`dynlearn.iterate`][], [`dynlearn.gradient_flow`][],
    [`dynlearn.sgd_sde`][] and the modules' training functions). An explicit
    `progress=True` or `False` in a call wins. `dynlearn run` switches it on when its
    output is a terminal."""
    _PROGRESS["default"] = check_bool("enabled", enabled)


def progress_enabled(progress: Any) -> bool:
    """`progress` as a bool: `None` means the default set by `show_progress`."""
    if progress is None:
        return _PROGRESS["default"]
    return check_bool("progress", progress)


class NonFiniteError(FloatingPointError):
    """Raised when a flow or an optimiser produces non-finite values or diverges."""


UNDEFINED_LOSS = (
    "The loss is undefined there (a log or sqrt of a negative number, a division by "
    "zero, or an overflow): fix the loss function"
)
"""The remedy stated whenever a loss is non-finite while its parameters are finite."""


def first_nonfinite_save(loss: Any) -> int | None:
    """Index of the first save whose loss is NaN/inf, or None; for an ensemble
    (losses of shape `(paths, saves)`) the first save at which any path is."""
    bad = ~np.isfinite(np.asarray(loss))
    if bad.ndim == 2:
        bad = bad.any(axis=0)
    return int(np.argmax(bad)) if bad.any() else None


def raise_nonfinite_loss(trajectory: Any, where: str) -> None:
    """Raise the `NonFiniteError` of a loss that became non-finite `where` (a phrase
    that starts with the loss, e.g. "the loss became non-finite (NaN/inf) at t = 0")
    while the parameters stayed finite, with the trajectory attached."""
    err = NonFiniteError(
        f"{where}, although the parameters stayed finite. {UNDEFINED_LOSS}. The "
        "trajectory is attached as error.trajectory."
    )
    err.trajectory = trajectory
    raise err


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


def check_nonempty_leaves(dynamic: Any) -> None:
    """Raise a ValueError naming the first array leaf of `dynamic` that has no entries
    (size 0): a flow over it is empty, and its max-norm divergence check is
    undefined."""
    for path, leaf in jtu.tree_flatten_with_path(dynamic)[0]:
        if hasattr(leaf, "shape") and np.size(leaf) == 0:
            raise ValueError(
                f"{_describe(path)} is an empty array (shape {tuple(leaf.shape)}): "
                "there is nothing to train in it. Remove it from the parameters or "
                "make it a static field (eqx.field(static=True))."
            )


_VALIDATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(tree: Any) -> tuple:
    leaves, treedef = jtu.tree_flatten(tree)
    return treedef, tuple(
        (np.shape(x), str(x.dtype)) if hasattr(x, "dtype") else ("static", x)
        for x in leaves
    )


def checked_loss(
    loss_fn: Callable, params: Any, *extra: Any
) -> Callable[[Any], jax.Array]:
    """Validate `loss_fn` on `params` by abstract evaluation and return Φ(dynamic).

    The returned function maps the dynamic (floating-point) part of `params` to the
    scalar loss `loss_fn(params, *extra)`. Raises a `TypeError` that names the
    problem if `loss_fn` does not return a real scalar. A loss already validated on
    arguments of the same structure, shapes and dtypes is not traced again (the
    check would cost a trace of Φ on every call).
    """
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)

    def phi(dyn):
        return loss_fn(eqx.combine(dyn, static), *extra)

    try:
        sig = _signature((params, extra))
        hash(sig)
        done = _VALIDATED.setdefault(loss_fn, set())
    except TypeError:  # unhashable static fields, or a loss that takes no weakref
        sig, done = None, set()
    if sig is not None and sig in done:
        return phi
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
    if sig is not None:
        done.add(sig)
    return phi


def check_real(name: str, value: Any) -> float:
    """`value` as a Python float, or a TypeError naming `name` unless it is a real
    number: a Python/NumPy int or float or a 0-d real array. Strings and bools are
    rejected (`float("0.1")` would silently accept the former, `True == 1` the
    latter)."""
    ok = isinstance(value, int | float | np.integer | np.floating) or (
        hasattr(value, "dtype")
        and np.shape(value) == ()
        and (
            jnp.issubdtype(value.dtype, jnp.integer)
            or jnp.issubdtype(value.dtype, jnp.floating)
        )
    )
    if isinstance(value, bool | np.bool_) or not ok:
        raise TypeError(
            f"`{name}` must be a real number, got {value!r} "
            f"(of type {type(value).__name__})."
        )
    try:
        return float(value)
    except (TypeError, ValueError):  # e.g. a traced value inside jax.jit
        raise TypeError(
            f"`{name}` must be a concrete number, got {value!r}; pass it as a Python "
            "float, not a value traced by jax.jit."
        ) from None


def check_divergence_threshold(value: Any) -> float:
    """The divergence guard's threshold on max |θ| as a float > 0, or a ValueError
    (NaN would switch the guard off silently; `float('inf')` turns it off on
    purpose, and non-finite values always stop a run)."""
    thr = check_real("divergence_threshold", value)
    if not thr > 0:
        raise ValueError(
            "divergence_threshold must be a number > 0 (float('inf') turns the guard "
            "off; non-finite values always stop the run), got "
            f"{value!r}."
        )
    return thr


def check_positive(name: str, value: Any) -> None:
    """Raise a TypeError unless `value` is a real number (see `check_real`) and a
    ValueError unless it is finite and > 0."""
    v = check_real(name, value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")


def check_nonnegative(name: str, value: Any) -> float:
    """`value` as a float, or an error unless it is a finite real number >= 0."""
    v = check_real(name, value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


def check_key(name: str, key: Any) -> None:
    """Raise a TypeError unless `key` is one PRNG key: a typed key array of shape `()`
    (`jax.random.key(seed)`) or a legacy raw key of shape `(2,)` and dtype uint32
    (`jax.random.PRNGKey(seed)`)."""
    hint = (
        f"`{name}` must be a PRNG key made with jax.random.key(seed) (split it with "
        "jax.random.split for several draws)"
    )
    dtype = getattr(key, "dtype", None)
    if dtype is None or isinstance(key, bool | int | float):
        raise TypeError(f"{hint}, got {key!r} (of type {type(key).__name__}).")
    shape = np.shape(key)
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise TypeError(
                f"{hint}; got a batch of keys of shape {shape}. For an ensemble use "
                "eqx.filter_vmap over the keys."
            )
        return
    if dtype == jnp.uint32 and shape == (2,):
        return
    raise TypeError(f"{hint}, got an array of dtype {dtype} and shape {shape}.")


class PrecisionWarning(UserWarning):
    """A tolerance was below what the floating-point type of the state can resolve,
    and was raised to 100 eps of that type (as `scipy.integrate.solve_ivp` does)."""


DEFAULT_RTOL = 1e-6
"""The relative tolerance of `gradient_flow` when none is given (in float64; at
least 100 eps of the state's dtype otherwise, 1.2e-5 in float32)."""


def check_tolerances(rtol: Any, atol: Any) -> tuple[float | None, float]:
    """Validate the tolerances of an adaptive solve: real, finite, >= 0 and not both
    zero. `rtol=None` (the default) stays `None` until `precision_floor` resolves it."""
    out = []
    for name, v in (("rtol", rtol), ("atol", atol)):
        if v is None and name == "rtol":
            out.append(None)
            continue
        x = check_real(name, v)
        if not (math.isfinite(x) and x >= 0):
            raise ValueError(
                f"`{name}` must be a finite number >= 0, got {v!r}; typical values "
                "are rtol=1e-6, atol=1e-8."
            )
        out.append(x)
    if out[0] == 0 and out[1] == 0:
        raise ValueError(
            "rtol and atol are both 0: the step-size controller would demand an exact "
            "solution and shrink the step without end. Give a tolerance > 0, e.g. "
            "rtol=1e-6, atol=1e-8."
        )
    return out[0], out[1]


def precision_floor(
    rtol: float | None, atol: float, rtol_given: Any, dynamic: Any, dtype: Any
) -> tuple[float, float]:
    """The tolerances an adaptive solve in `dtype` can meet.

    A relative tolerance below ~100 eps of the state's dtype asks the error estimate
    (a difference of stage sums, itself in error by a few eps·|θ|) for digits the
    arithmetic does not have: the controller then shrinks the step far beyond what
    the solution needs and the result gets *less* accurate. As
    `scipy.integrate.solve_ivp` does, such an `rtol` is raised to 100 eps with a
    `PrecisionWarning`; with pure absolute control (`rtol = 0`) `atol` is raised to
    100 eps·max|θ0|. The default `rtol=None` is `DEFAULT_RTOL`, or 100 eps where that
    is larger, silently.
    """
    floor = 100.0 * float(jnp.finfo(dtype).eps)
    if rtol is None:
        return max(DEFAULT_RTOL, floor), atol
    remedy = (
        f"raise it to >= 100 eps = {floor:.3g}, or run in float64 with "
        'jax.config.update("jax_enable_x64", True) and float64 parameters'
    )
    if 0 < rtol < floor:
        warnings.warn(
            f"rtol={rtol_given!r} is below 100 eps = {floor:.3g} of the state's dtype "
            f"{jnp.dtype(dtype).name} (eps = {jnp.finfo(dtype).eps:.3g}), which "
            "round-off cannot resolve: the solve would take far more steps and end "
            f"less accurate. Using rtol={floor:.3g} instead; to silence this, "
            f"{remedy}.",
            PrecisionWarning,
            stacklevel=3,
        )
        return floor, atol
    if rtol == 0:
        scale = float(tree_max_abs(dynamic))
        afloor = floor * scale
        if math.isfinite(scale) and atol < afloor:
            warnings.warn(
                f"atol={atol:g} with rtol=0 is below 100 eps·max|θ0| = {afloor:.3g} "
                f"for the state's dtype {jnp.dtype(dtype).name} (eps = "
                f"{jnp.finfo(dtype).eps:.3g}), which round-off cannot resolve. Using "
                f"atol={afloor:.3g} instead; to silence this, raise atol, give an "
                'rtol > 0, or run in float64 with jax.config.update("jax_enable_x64", '
                "True) and float64 parameters.",
                PrecisionWarning,
                stacklevel=3,
            )
            return rtol, afloor
    return rtol, atol


def _under_jit(x: Any) -> bool:
    """Whether `x` is being traced into a compiled program (as opposed to being a
    concrete array, or only batched by an eager `jax.vmap`)."""
    try:  # eager vmap wraps concrete values: unwrap them
        from jax._src.interpreters.batching import BatchTracer
    except ImportError:  # then treat every tracer as compiled (the safe side)
        BatchTracer = ()

    for leaf in jtu.tree_leaves(x):
        while BatchTracer and isinstance(leaf, BatchTracer):
            leaf = leaf.val
        if isinstance(leaf, jax.core.Tracer):
            return True
    return False


def draw_in_float64(fn: Callable[[Any], Any], dtype: Any, key: Any) -> Any:
    """Run the random draw `fn(wide)` in float64 and cast its floating-point leaves to
    `dtype`, so that a float32 draw is the float64 draw of the same key rounded to
    float32: float32 and float64 runs of one seed are the same experiment.

    `fn` must draw with the dtype it is given. With float64 requested (x64 on) this
    is exactly `fn(float64)`. With x64 off the draw runs inside a local
    `jax.enable_x64` context, except while `key` is traced by `jax.jit`, where
    64-bit draws cannot be compiled: there `fn(dtype)` draws in `dtype` directly.
    """
    dtype = jnp.dtype(dtype)
    wide = jnp.dtype(jnp.float64)
    if not jnp.issubdtype(dtype, jnp.floating) or dtype == wide:
        return fn(dtype)

    def cast(tree):
        return jtu.tree_map(
            lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree
        )

    if jax.config.jax_enable_x64:
        return cast(fn(wide))
    if _under_jit(key):
        return fn(dtype)
    with jax.enable_x64(True):
        return cast(fn(wide))


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
