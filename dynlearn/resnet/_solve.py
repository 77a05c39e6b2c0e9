r"""The one entry point `discretise` (depth-N network), its inverse, the matching
diffrax solve, and the continuous-depth neural ODE."""

from __future__ import annotations

from typing import Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._field import ResidualField
from ._schemes import AbstractScheme, Euler, Hamiltonian, get_scheme


BACKPROP = ("autodiff", "checkpoint", "reversible")


class DepthSolution(eqx.Module):
    """What [`dynlearn.resnet.discretise`][] returns.

    - `y1`: the network output $x_N$ (what the next layer sees).
    - `state`: the final scheme state (a pair for two-step and momentum schemes); pass
      it to [`dynlearn.resnet.invert`][].
    - `ts`, `ys`: depths $t_n = nh$ and outputs $x_n$ for $n = 0…N$ if
      `trajectory=True`, else None.
    """

    y1: Array
    state: PyTree
    ts: Array | None = None
    ys: Array | None = None


def _check_depth(depth) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(
            f"`depth` (number of layers N, step h = T/N) must be an integer >= 1, got "
            f"{depth!r}."
        )


def _check_state(y0, batch_ok: bool = False) -> None:
    if jnp.ndim(y0) == 1 or (batch_ok and jnp.ndim(y0) == 2):
        return
    shapes = "(d,) or a batch (B, d)" if batch_ok else "(d,); for a batch use jax.vmap"
    raise ValueError(
        f"Expected one state of shape {shapes}, got shape {jnp.shape(y0)}."
    )


def _check_square(field, t, y) -> None:
    """Raise a `ValueError` unless the field maps a state of `y`'s shape to the same
    shape (shape inference only, nothing is computed)."""
    out = jax.eval_shape(lambda u: field(t, u), y)
    if jax.tree.structure(out) != jax.tree.structure(y) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(y))
    ):
        shape_out = jax.tree.map(lambda a: a.shape, out)
        raise ValueError(
            f"A residual layer must map R^d to R^d (the step adds h f(x) to x), but "
            f"this field maps a state of shape {jnp.shape(y)} to {shape_out}. Use a "
            "square layer (in_size = out_size = d), and lift inputs of another size "
            "to d with a linear map first (as dynlearn.resnet.Classifier does)."
        )


def _check_positive(name: str, value, what: str) -> None:
    if isinstance(value, bool) or not (
        np.ndim(value) == 0 and np.isreal(value) and 0 < float(value) < np.inf
    ):
        raise ValueError(
            f"`{name}` ({what}) must be positive and finite, got {value!r}."
        )


def check_solver_options(rtol, atol, dt0, max_steps) -> None:
    """Validate the step-control options of a neural ODE solve."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(
            f"`max_steps` (the solver's step budget) must be a positive integer, got "
            f"{max_steps!r}."
        )
    _check_positive("rtol", rtol, "relative tolerance")
    _check_positive("atol", atol, "absolute tolerance")
    if dt0 is not None:
        _check_positive("dt0", dt0, "initial/constant step in depth")


def _scan(field, scheme, state, ts, h, *, checkpoint=False, trajectory=False):
    ns = jnp.arange(ts.shape[0])

    def body(s, xs):
        t, n = xs
        s = scheme.step(field, t, h, s, n)
        return s, (scheme.output(s) if trajectory else None)

    if checkpoint:
        body = jax.checkpoint(body)
    return jax.lax.scan(body, state, (ts, ns))


def _zeros_if_none(g, like):
    return jax.tree.map(
        lambda gi, x: jnp.zeros_like(x) if gi is None else gi,
        g,
        like,
        is_leaf=lambda v: v is None,
    )


@eqx.filter_custom_vjp
def _reversible_scan(vjp_arg, scheme, ts, h):
    field, state0 = vjp_arg
    return _scan(field, scheme, state0, ts, h)[0]


@_reversible_scan.def_fwd
def _reversible_fwd(perturbed, vjp_arg, scheme, ts, h):
    out = _reversible_scan.fn(vjp_arg, scheme, ts, h)
    return out, out  # residual: the final state only (no activations)


@_reversible_scan.def_bwd
def _reversible_bwd(state1, grad_obj, perturbed, vjp_arg, scheme, ts, h):
    field, _ = vjp_arg
    params, static = eqx.partition(field, eqx.is_inexact_array)
    g_state = _zeros_if_none(grad_obj, state1)
    g_params = jax.tree.map(jnp.zeros_like, params)

    def body(carry, xs):
        state, g_s, g_p = carry
        t, n = xs
        prev = scheme.inverse_step(field, t, h, state, n)  # recompute layer input

        def step(p, s):
            return scheme.step(eqx.combine(p, static), t, h, s, n)

        _, vjp = jax.vjp(step, params, prev)
        dp, ds = vjp(g_s)
        return (prev, ds, jax.tree.map(jnp.add, g_p, dp)), None

    ns = jnp.arange(ts.shape[0])
    (_, g_state0, g_params), _ = jax.lax.scan(
        body, (state1, g_state, g_params), (ts, ns), reverse=True
    )
    p_field, p_state = perturbed
    g_field = jax.tree.map(
        lambda g, p: g if p else None, g_params, p_field, is_leaf=lambda v: v is None
    )
    g_state0 = jax.tree.map(lambda g, p: g if p else None, g_state0, p_state)
    return g_field, g_state0


def discretise(
    field: ResidualField,
    y0: Array,
    scheme: str | AbstractScheme = "euler",
    depth: int = 16,
    *,
    backprop: Literal["autodiff", "checkpoint", "reversible"] = "autodiff",
    trajectory: bool = False,
) -> DepthSolution:
    r"""Run the depth-`depth` residual network obtained by discretising
    $\dot x = f(x, θ(t))$, $t \in [0, T]$, with `scheme` and step $h = T/N$.

    **Arguments:**

    - `field`: a [`dynlearn.resnet.ResidualField`][] ($T$ is `field.T`).
    - `y0`: one input state of shape `(d,)`, or a batch `(B, d)` (the weights are
      then formed once per layer and, with `backprop="reversible"`, the weight
      cotangents are accumulated over the batch inside the custom VJP: memory
      $O(B d + |θ|)$, whereas `jax.vmap` over single states materialises per-example
      weight cotangents, $O(B |θ|)$).
    - `scheme`: a scheme object ([`dynlearn.resnet.Euler`][], `Heun`, `RK4`,
      `Midpoint`, `Leapfrog`, `Hamiltonian`, `ReversibleHeun`, `LMResNet`,
      `Momentum`) or its name (see `dynlearn.resnet.SCHEMES`).
    - `depth`: the number of layers $N \ge 1$.
    - `backprop`: how reverse-mode AD gets the activations: `"autodiff"` stores all
      $N$ of them, `"checkpoint"` stores the layer inputs and recomputes each layer
      (`jax.checkpoint`), `"reversible"` stores only the output and recomputes every
      layer input with the scheme's exact inverse (custom VJP; memory flat in $N$;
      reversible schemes only).
    - `trajectory`: also return every layer's output.

    **Returns:** a [`dynlearn.resnet.DepthSolution`][].
    """
    scheme = get_scheme(scheme)
    _check_depth(depth)
    y0 = jnp.asarray(y0)
    _check_state(y0, batch_ok=True)
    if not isinstance(field, ResidualField):
        raise TypeError(
            f"`field` must be a dynlearn.resnet.ResidualField, got {type(field)}."
        )
    if backprop not in BACKPROP:
        raise ValueError(f"Unknown backprop {backprop!r}; use one of {BACKPROP}.")
    if backprop == "reversible" and not scheme.reversible:
        raise ValueError(
            f"backprop='reversible' needs a reversible scheme; {scheme.name} is not. "
            "Use Midpoint, Leapfrog, Hamiltonian, ReversibleHeun or Momentum, or "
            "backprop='checkpoint'."
        )
    if backprop == "reversible" and trajectory:
        raise ValueError("trajectory=True stores every layer; use backprop='autodiff'.")
    scheme.check(field, y0, depth)
    return _discretise(field, y0, scheme, depth, backprop, trajectory)


@eqx.filter_jit
def _discretise(field, y0, scheme, depth, backprop, trajectory):
    h = field.T / depth
    ts = jnp.arange(depth, dtype=y0.dtype) * h
    _check_square(field, ts[0], y0)  # at trace time only
    state0 = scheme.init(field, ts[0], h, y0)
    if backprop == "reversible":
        state = _reversible_scan((field, state0), scheme, ts, h)
        return DepthSolution(scheme.output(state), state)
    state, ys = _scan(
        field,
        scheme,
        state0,
        ts,
        h,
        checkpoint=backprop == "checkpoint",
        trajectory=trajectory,
    )
    if not trajectory:
        return DepthSolution(scheme.output(state), state)
    all_ts = jnp.arange(depth + 1, dtype=y0.dtype) * h
    ys = jnp.concatenate([y0[None], ys])
    return DepthSolution(scheme.output(state), state, all_ts, ys)


def invert(
    field: ResidualField,
    state: PyTree,
    scheme: str | AbstractScheme,
    depth: int,
) -> PyTree:
    """Run a reversible network backwards: from the final scheme state
    (`discretise(...).state`) to the initial one, by the scheme's exact inverse
    step. **Returns** the initial scheme state (for one-step schemes the input `y0`;
    for pairs `scheme.output(...)` gives `y0`)."""
    scheme = get_scheme(scheme)
    _check_depth(depth)
    if not scheme.reversible:
        raise ValueError(f"The {scheme.name} scheme is not reversible.")
    return _invert(field, state, scheme, depth)


@eqx.filter_jit
def _invert(field, state, scheme, depth):
    h = field.T / depth
    ts = jnp.arange(depth, dtype=jax.tree.leaves(state)[0].dtype) * h
    ns = jnp.arange(depth)

    def body(s, xs):
        t, n = xs
        return scheme.inverse_step(field, t, h, s, n), None

    return jax.lax.scan(body, state, (ts, ns), reverse=True)[0]


def diffrax_discretise(
    field: ResidualField,
    y0: Array,
    scheme: str | AbstractScheme,
    depth: int,
) -> Array:
    r"""The depth-N network computed by `diffrax.diffeqsolve` with the solver that
    implements `scheme` (Euler → `diffrax.Euler`, Heun → `diffrax.Heun`, Midpoint →
    `diffrax.LeapfrogMidpoint`, Hamiltonian → `diffrax.SemiImplicitEuler` with terms
    $(f_y, f_z)$, ReversibleHeun → `diffrax.ReversibleHeun`) at constant step
    $h = T/N$. Used to cross-check the hand-written recurrences. **Returns** $x_N$."""
    scheme = get_scheme(scheme)
    _check_depth(depth)
    _check_state(y0)
    solver = scheme.diffrax_solver()
    if solver is None:
        raise ValueError(f"diffrax has no solver matching the {scheme.name} scheme.")
    scheme.check(field, y0, depth)
    h = field.T / depth
    if isinstance(scheme, Hamiltonian):
        m = y0.shape[0] // 2
        terms = (
            dfx.ODETerm(lambda t, z, args: field.layer(t).f_y(z)),
            dfx.ODETerm(lambda t, y, args: field.layer(t).f_z(y)),
        )
        start = (y0[:m], y0[m:])
    else:
        terms = dfx.ODETerm(lambda t, y, args: field(t, y))
        start = y0
    sol = dfx.diffeqsolve(terms, solver, 0.0, field.T, h, start, max_steps=depth + 1)
    ys = jax.tree.map(lambda a: a[-1], sol.ys)
    return jnp.concatenate(ys) if isinstance(scheme, Hamiltonian) else ys


def neural_ode(
    field: ResidualField,
    y0: Array,
    *,
    solver: dfx.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: float | None = None,
    adjoint: dfx.AbstractAdjoint | None = None,
    scheme: str | AbstractScheme | None = None,
    ts: Array | None = None,
    max_steps: int = 4096,
) -> Array:
    r"""The continuous-depth model: solve $\dot x = f(x, θ(t))$ on $[0, T]$ with any
    diffrax solver and adjoint (Chen et al. 2018, arXiv:1806.07366).

    **Arguments:**

    - `solver`: a diffrax solver (default `diffrax.Tsit5()`); adaptive solvers use a
      `PIDController(rtol, atol)`, others a constant step `dt0` (required).
    - `adjoint`: any `diffrax.AbstractAdjoint` (default
      `RecursiveCheckpointAdjoint()`, discretise-then-optimise; `BacksolveAdjoint()`
      is the O(1)-memory continuous adjoint).
    - `scheme`: if given, solve the ODE that this scheme's depth-N network converges
      to as N → ∞ (e.g. $\ddot x = f$ with $\dot x(0) = 0$ for `Leapfrog`,
      $(1+k)\dot x = f$ for `LMResNet`); default $\dot x = f$.
    - `ts`: if given, return $x(t)$ at these depths (shape `(len(ts), d)`).
    - `max_steps`: the step budget. A solve that exhausts it raises `RuntimeError`
      naming the depth reached (inside `jit`/`grad`/`vmap`, an equinox runtime
      error with the same advice, when the computation runs).

    **Returns:** $x(T)$ (or $x$ at `ts`).
    """
    _check_state(y0)
    check_solver_options(rtol, atol, dt0, max_steps)
    solver = dfx.Tsit5() if solver is None else solver
    adjoint = dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    scheme = Euler() if scheme is None else get_scheme(scheme)
    _, lift, readout = scheme.limit(field)

    def term(t, u, args):
        # The field and scheme travel as `args` so that every adjoint (including
        # BacksolveAdjoint) sees the parameters as explicit inputs.
        fld, sch = args
        return sch.limit(fld)[0](t, u)

    if isinstance(solver, dfx.AbstractAdaptiveSolver) and dt0 is None:
        controller = dfx.PIDController(rtol=rtol, atol=atol)
    else:
        if dt0 is None:
            raise ValueError(
                f"{type(solver).__name__} is not adaptive: pass a step `dt0`."
            )
        controller = dfx.ConstantStepSize()
    saveat = dfx.SaveAt(t1=True) if ts is None else dfx.SaveAt(ts=ts)
    y0 = jnp.asarray(y0)
    _check_square(field, 0.0, y0)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(term),
        solver,
        0.0,
        field.T,
        dt0,
        lift(y0),
        args=(field, scheme),
        stepsize_controller=controller,
        adjoint=adjoint,
        saveat=saveat,
        max_steps=max_steps,
        throw=False,
    )
    ys = _raise_if_failed(sol, readout(sol.ys), max_steps, field.T, ts is None)
    return ys[-1] if ts is None else ys


def _raise_if_failed(sol, ys, max_steps: int, T: float, at_end: bool):
    """Turn a failed diffrax solve into a clear error (eagerly when the result is
    concrete, else an equinox runtime error attached to `ys`)."""
    advice = (
        "Increase max_steps, loosen rtol/atol, or, if the field is stiff, use an "
        "implicit solver such as diffrax.Kvaerno5()."
    )
    hit = sol.result == dfx.RESULTS.max_steps_reached
    if isinstance(hit, jax.core.Tracer):
        ys = eqx.error_if(
            ys,
            hit,
            f"The neural ODE solver used all max_steps={max_steps} steps before "
            f"reaching depth T = {T:g} (call outside jit to see the depth reached). "
            + advice,
        )
        return sol.result.error_if(ys, sol.result != dfx.RESULTS.successful)
    if bool(hit):
        saved = np.asarray(sol.ts)
        finite = saved[np.isfinite(saved)]
        reached = (
            f"stopped at depth t = {float(saved[-1]):.6g}"
            if at_end
            else "stopped after the saved depth "
            f"t = {float(finite[-1]) if finite.size else 0.0:.6g}"
        )
        raise RuntimeError(
            f"The neural ODE solver used all max_steps={max_steps} steps and "
            f"{reached} of T = {T:g}. " + advice
        )
    if bool(sol.result != dfx.RESULTS.successful):
        raise RuntimeError(f"The neural ODE solve failed: {sol.result}.")
    return ys
