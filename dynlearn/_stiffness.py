"""Stiffness of a gradient flow: the automatic solver choice (`solver="auto"`) and
the check that an explicit solve was faithful (`StiffnessWarning`)."""

from __future__ import annotations

import math
import warnings

import diffrax as dfx
import equinox as eqx
import numpy as np

from ._flows import GradientFlow
from ._observables import top_hessian_eigenvalue
from ._solvers import solver_name
from .stiff import RKC2


class StiffnessWarning(UserWarning):
    """The solver's steps were beyond its stability limit: the solution is not a
    faithful gradient flow (tighten the tolerance or use an implicit solver)."""


def _no_forward_mode(e: Exception) -> bool:
    """Whether JAX failed because some operation has no forward-mode (JVP) rule, the
    error a Hessian-vector product of a custom_vjp/pure_callback loss raises."""
    return "forward-mode" in str(e) or "support JVP" in str(e)


@eqx.filter_jit
def _lambda_max(phi, dyn, num_iters):
    # compiled once per loss function (pass Φ as an equinox Module, not a closure)
    return top_hessian_eigenvalue(phi, dyn, num_iters=num_iters)


def _sharpness_or_nan(phi, dyn, num_iters: int) -> float:
    """λ_max of the Hessian by HVP power iteration, or NaN when the loss has no HVP
    (e.g. a gradient computed by a host callback)."""
    try:
        return float(_lambda_max(phi, dyn, num_iters))
    except (TypeError, ValueError) as e:
        if not _no_forward_mode(e):
            raise
        return float("nan")


# Cost model of `solver="auto"`, in gradient-equivalent evaluations (gradients +
# 2·HVPs) over a horizon T at relative tolerance rtol, with x = λ_max·T. Calibrated
# by least squares on gradient flow of rotated quadratics (sharpness 10, spectra
# log-spaced over κ = 1e2 … 1e5, n = 8 and 30, ‖θ0 − θ*‖∞ = 1, atol = 1e-8) for
# x = 20 … 1e4 and rtol = 1e-3 … 1e-8 (68 solves of each). Tsit5's fit is within
# ±27% of the measured costs, RKC2's within ±60% (its step count depends on how the
# spectrum below λ_max is spread, which λ_max does not tell); choosing by them cost
# at most 1.36× the cheaper solver there (n = 30, κ = 1e5, x = 250, rtol = 1e-4:
# RKC2 823 against Tsit5 607), and 1.09× on the grid of tests/test_stiffness.py.
_TSIT5_STEPS_PER_LIMIT = 1 / 0.79  # attempts per stability-limited step dt = c/λ_max
_TSIT5_ACCURACY = 4.5  # gradients of the accuracy-limited transient, × rtol^(-1/5)
_RKC2_STEPS = (6.4, 0.234, 0.14)  # steps n = 6.4 · rtol^(-0.234) · x^0.14
_RKC2_PER_STEP = 3.5  # s ≥ 2 stages + one HVP (= 2 gradients) per step, fitted
_RKC2_STAGES = 0.40  # Σ_steps s ≈ 0.40 √(x n): the stages follow √(λ h) per step


def auto_costs(sharpness: float, horizon: float, rtol: float) -> dict[str, float]:
    """Predicted cost of a gradient-flow solve with Tsit5 and with
    [`dynlearn.stiff.RKC2`][], in gradient-equivalent evaluations (gradients plus
    2·Hessian-vector products, the count of `docs/stiff.md`), from the sharpness
    λ_max at θ0, the horizon T and the relative tolerance; `x = λ_max·T`:

    - Tsit5 is stability limited: $λ_{max}\\,dt ≤ c = 3.507$, 6 gradients a step
      (FSAL), 1/0.79 attempts per limit-sized step (rejections and controller
      safety near the limit), plus the accuracy-limited transient:
      $C_{Tsit5} = 6x/(0.79\\,c) + 4.5\\,\\text{rtol}^{-1/5}$.
    - RKC2 is accuracy limited: $n = 6.4\\,\\text{rtol}^{-0.234}x^{0.14}$ steps, each
      with at least 2 stages and one HVP, and stages growing as $\\sqrt{λ_{max} h}$:
      $C_{RKC2} = 3.5\\,n + 0.40\\sqrt{x\\,n}$.

    The constants are fitted on rotated quadratics (sharpness 10, κ = 1e2 … 1e5,
    x = 20 … 1e4, rtol = 1e-3 … 1e-8), where the choice cost at most 1.36× the
    cheaper solver; near the crossover the two costs differ by less than the
    model's error on other problems. See `docs/stiff.md`."""
    x = abs(float(sharpness)) * float(horizon)
    rtol = float(rtol)
    tsit = 6.0 * x * _TSIT5_STEPS_PER_LIMIT / 3.507 + _TSIT5_ACCURACY * rtol**-0.2
    a, q, r = _RKC2_STEPS
    n = a * rtol**-q * max(x, 1.0) ** r
    rkc = _RKC2_PER_STEP * n + _RKC2_STAGES * math.sqrt(x * n)
    return {"Tsit5": tsit, "RKC2": rkc}


def _auto_solver(phi, dynamic, horizon, flow, rtol) -> dfx.AbstractSolver:
    """The cheaper of Tsit5 and `dynlearn.stiff.RKC2` by `auto_costs` at the
    sharpness λ_max(θ0) (10 HVP power iterations) and the requested rtol. Tsit5 for
    other flows and for losses without HVPs (RKC2 needs them)."""
    if not isinstance(flow, GradientFlow):
        return dfx.Tsit5()
    lam = _sharpness_or_nan(phi, dynamic, 10)
    if not math.isfinite(lam):
        return dfx.Tsit5()
    costs = auto_costs(lam, horizon, rtol)
    return RKC2() if costs["RKC2"] < costs["Tsit5"] else dfx.Tsit5()


def _stiffness_check(phi, final_dyn, steps, t0, rtol, solver, stats) -> None:
    """Gradient flow never increases the loss (dΦ/dt = −‖∇Φ‖² ≤ 0). An explicit
    solver whose tolerance is too loose for the stiffness rides its stability limit
    along the sharpest directions with tolerance-sized oscillations, which make the
    loss go up between accepted steps. Warn when

    - the accepted steps' loss rises (each counted only above the round-off of the
      loss values on that step, 1000·eps·max(|Φ_i|, |Φ_{i+1}|): relative to the
      current |Φ|, so a loss with a nonzero minimum Φ_min contributes nothing below
      ~eps·|Φ_min|) undo more than a fraction `rtol` of the descent,
      Σ rises > rtol · Σ drops; or
    - the late steps' median dt·λ_max (final sharpness) exceeds 1.5 c, c the
      solver's real-axis stability limit.

    A faithful solve near its stability limit also has rises, from oscillations of
    the stiff modes at the tolerance's level (e.g. Tsit5 at rtol 1e-6 on a stiff
    quadratic near its minimum: rises of 1e-12 with Φ0 = 5), but they undo only a
    fraction ~1e-9 of the descent; at rtol = atol = 1e-3 on sharpness 400 they undo
    17%."""
    step_ts, step_loss = (np.asarray(a) for a in steps)
    ok = np.isfinite(step_ts)
    step_ts, step_loss = step_ts[ok], step_loss[ok]
    if step_ts.size < 3:
        return
    c = stats["stability_limit"]
    dts = np.diff(np.concatenate([[t0], step_ts]))
    # NaN without HVPs: the loss-increase check below still runs.
    lam = _sharpness_or_nan(phi, final_dyn, 20)
    tail = dts[-max(4, dts.size // 4) :][:-1]  # the last step is clipped to t1
    ratio = float(np.median(tail) * lam / c) if (lam > 0 and tail.size) else 0.0
    ratio = float("nan") if np.isnan(lam) else ratio
    loss = step_loss.astype(float)
    change = np.diff(loss)
    scale = np.maximum(np.abs(loss[:-1]), np.abs(loss[1:]))
    floor = 1e3 * np.finfo(step_loss.dtype).eps * scale
    bad = change > floor
    rises = float(change[bad].sum())
    drops = float(-change[change < 0].sum())
    undone = rises / drops if drops > 0 else (math.inf if rises > 0 else 0.0)
    stats["final_sharpness"] = lam
    stats["dt_sharpness_over_limit"] = ratio
    stats["num_loss_increases"] = int(bad.sum())
    stats["loss_rise_fraction"] = undone
    if undone > rtol or ratio > 1.5:
        first = float(step_ts[1:][bad][0]) if bad.any() else float("nan")
        warnings.warn(
            f"{solver_name(solver)} at rtol={rtol:g} did not follow gradient flow: "
            f"the loss increased on {int(bad.sum())} accepted steps (first at t ≈ "
            f"{first:.4g}), undoing a fraction {undone:.3g} of its descent, which "
            f"gradient flow never does. Its steps reached dt·λ_max ≈ {ratio * c:.3g} "
            f"against the stability limit c = {c:.3g} (final sharpness λ_max = "
            f"{lam:.3g}). Tighten rtol/atol, or use a stiff solver "
            "(dynlearn.stiff.RKC2, or solver='auto') for long, stiff horizons.",
            StiffnessWarning,
            stacklevel=3,
        )
