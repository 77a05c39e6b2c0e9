"""Second-order Runge–Kutta–Chebyshev (RKC) solver with a per-step stage count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._misc import tree_norm


_EPS_DAMPING = 2.0 / 13.0  # damping ε = 2/13 (RKC code), β(s) ≈ 0.653 s²


def _cheb(w, n):
    """T_n(w), T_n'(w), T_n''(w) by the three-term recurrence (n ≥ 1, dynamic)."""
    one, zero = jnp.ones_like(w), jnp.zeros_like(w)

    def body(_, c):
        t0, t1, d0, d1, e0, e1 = c  # T_{j-1}, T_j and derivatives
        t2 = 2 * w * t1 - t0
        d2 = 2 * t1 + 2 * w * d1 - d0
        e2 = 4 * d1 + 2 * w * e1 - e0
        return t1, t2, d1, d2, e1, e2

    c = lax.fori_loop(1, n, body, (one, w, zero, one, zero, zero))
    return c[1], c[3], c[5]


def stability_boundary(num_stages: int | jax.Array) -> jax.Array:
    """Real-axis stability boundary β(s) of the damped RKC2 polynomial:
    the step is stable on $\\dot y = -λy$ iff $hλ ≤ β(s)$. With ε = 2/13,
    $β(s) = (1 + w_0) T_s''(w_0)/T_s'(w_0) ≈ 0.653 s^2$ (Verwer, Hundsdorfer &
    Sommeijer 2004, J. Comput. Phys. 201)."""
    s = jnp.asarray(num_stages)
    w0 = 1.0 + _EPS_DAMPING / s**2
    _, d, e = _cheb(jnp.asarray(w0, float), s)
    return (1 + w0) * e / d


class _State(eqx.Module):
    f0: Any  # vector field at the current point (FSAL)
    v: Any  # warm start of the power iteration (unit norm)
    rho: jax.Array  # current spectral-radius estimate of ∂f/∂y
    num_vf: jax.Array  # vector-field evaluations so far
    num_jvp: jax.Array  # Jacobian-vector products (HVPs for gradient flow) so far
    max_stages_used: jax.Array


class RKC2(dfx.AbstractAdaptiveSolver):
    """Damped second-order Runge–Kutta–Chebyshev method (RKC, Sommeijer, Shampine &
    Verwer 1997; Verwer, Hundsdorfer & Sommeijer 2004, J. Comput. Phys. 201, sec. 2).

    An $s$-stage explicit method whose stability interval on the negative real axis,
    $[-β(s), 0]$ with $β(s) ≈ 0.653\\,s^2$, grows as the square of the stage count.
    The stage count is chosen each step as the smallest $s ≥ 2$ with
    $h\\,ρ\\,\\text{safety} ≤ β(s)$, where $ρ$ is the spectral radius of the Jacobian
    $∂f/∂y$ (for gradient flow, $-∇^2Φ$: the sharpness), estimated by
    `power_iterations` warm-started power iterations of Jacobian-vector products
    (`jax.jvp` of the vector field; Hessian-vector products for gradient flow).
    A step of size $h$ thus costs $≈ \\sqrt{hρ/0.65}$ evaluations instead of
    explicit RK's $≈ hρ/0.6$ (Tsit5), so the cost per unit time grows as
    $\\sqrt{ρ}$ rather than $ρ$.

    The symmetric Jacobian of gradient flow has a real spectrum, exactly the
    regime RKC is built for.

    Error estimate (RKC code, Sommeijer et al. 1997):
    $\\text{err} = \\tfrac{1}{15}[12(y_n - y_{n+1}) + 6h(f_n + f_{n+1})]$, an
    $O(h^3)$ estimate of the local error, for diffrax's `PIDController`.
    Dense output is cubic Hermite.

    Cost per step: $s$ vector-field evaluations (first-same-as-last) plus
    `power_iterations` Jacobian-vector products, counted exactly in the solver
    state (see `evaluation_counts`).

    **Arguments:**

    - `max_stages`: cap on $s$, i.e. on the gradients one RKC step may cost. A step
      $h$ longer than the budget's stability interval,
      $hρ\\,\\text{safety} > β(s_{max})$, is not attempted with too few stages: it is
      split into $m = ⌈hρ\\,\\text{safety}/β(s_{max})⌉$ equal substeps that the
      budget covers, each with its own power-iteration estimate of ρ (so the cost
      per unit time is then capped at $≈ 1.84ρ/s_{max}$ gradients). The error
      estimate of the step is the sum of the substeps' |error estimates|.
    - `max_substeps`: cap on $m$. A step needing more substeps is rejected before
      any stage is computed (candidate $y_0$, infinite error estimate, on which
      diffrax's controllers shrink the step by their largest factor);
      `gradient_flow` reports how often that happened
      (`stats["num_budget_rejections"]`).
    - `power_iterations`: JVPs per step for the spectral-radius estimate.
    - `safety`: factor on the estimated $ρ$ (the power iteration approaches $ρ$
      from below).
    """

    max_stages: int = eqx.field(static=True, default=200)
    max_substeps: int = eqx.field(static=True, default=100)
    power_iterations: int = eqx.field(static=True, default=1)
    safety: float = eqx.field(static=True, default=1.2)

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.AbstractLocalInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation.from_k
    )
    counts_own_evaluations: ClassVar[bool] = True
    uses_hvp: ClassVar[bool] = True  # JVPs of the vector field: HVPs of the loss

    def __check_init__(self):
        for name, low in (
            ("max_stages", 2),
            ("max_substeps", 1),
            ("power_iterations", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        safety = self.safety
        if (
            isinstance(safety, bool)
            or not isinstance(safety, (int, float))
            or not 1.0 <= safety < float("inf")
        ):
            raise ValueError(
                "safety must be a finite number >= 1 (a factor on the estimated "
                f"spectral radius; default 1.2), got {safety!r}."
            )

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def _power(self, terms, t, y, args, v, num):
        """`num` power iterations on v ↦ (∂f/∂y) v; returns (ρ estimate, v)."""
        fn = lambda z: terms.vf(t, z, args)

        def body(_, c):
            v, _ = c
            jv = jax.jvp(fn, (y,), (v,))[1]
            n = tree_norm(jv)
            # A zero Jacobian (constant loss) leaves v as is and ρ = 0.
            safe = jnp.where(n > 0, n, 1.0)
            return jtu.tree_map(lambda a: a / safe, jv), n

        v, rho = lax.fori_loop(0, num, body, (v, jnp.zeros((), tree_norm(v).dtype)))
        return rho, v

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        leaves = jtu.tree_leaves(y0)
        key = jax.random.key(0)
        keys = jax.random.split(key, len(leaves))
        v = jtu.tree_unflatten(
            jtu.tree_structure(y0),
            [
                jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
                for k, x in zip(keys, leaves)
            ],
        )
        v = jtu.tree_map(lambda a: a / tree_norm(v), v)
        # Converge the first estimate a little more than later (warm-started) ones.
        n0 = 4 * self.power_iterations
        rho, v = self._power(terms, t0, y0, args, v, n0)
        i = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
        return _State(
            f0=f0,
            v=v,
            rho=rho,
            num_vf=jnp.array(1, i),
            num_jvp=jnp.array(n0, i),
            max_stages_used=jnp.array(0, i),
        )

    def _budget_step(self, rho):
        """Longest substep whose stage count stays within `max_stages` at spectral
        radius ρ: the stage rule below gives s ≤ s_max iff h ρ safety <
        (s_max² − 1)/1.54 (a margin of 1e-9 absorbs rounding). ∞ for ρ = 0."""
        hr_max = (self.max_stages**2 - 1) / 1.54 * (1 - 1e-9)
        rs = rho * self.safety
        return jnp.where(rs > 0, hr_max / jnp.where(rs > 0, rs, 1.0), jnp.inf)

    def _substep(self, terms, t, h, y0, f0, rho, args):
        """One RKC2 step of size h from (t, y0), f0 = f(t, y0), with the smallest
        stage count s ≥ 2 that is stable at spectral radius ρ (capped at
        `max_stages`; callers keep h within `_budget_step`). Returns
        (y1, f(t + h, y1), error estimate, s)."""
        # Smallest s with h ρ safety ≤ β(s) ≈ 0.653 s² (1.54 ≈ 1/0.65, RKC code).
        hr = h * rho * self.safety
        s_need = 1 + jnp.floor(jnp.sqrt(1.0 + 1.54 * hr)).astype(int)
        s = jnp.clip(s_need, 2, self.max_stages)

        w0 = 1.0 + _EPS_DAMPING / s.astype(hr.dtype) ** 2
        _, ds, es = _cheb(w0, s)
        w1 = ds / es
        b = lambda t, d, e: e / d**2  # b_j = T_j''/T_j'^2 (j ≥ 2)
        b2 = b(*_cheb(w0, 2))
        b_first = b2  # b_0 = b_1 = b_2
        # Stage 1
        mu1t = b_first * w1
        axpy = lambda a, x, y: jtu.tree_map(lambda xi, yi: a * xi + yi, x, y)
        y1 = axpy(mu1t * h, f0, y0)
        a_first = 1.0 - b_first * w0  # a_1 = 1 - b_1 T_1(w0)

        def body(j, c):
            yjm1, yjm2, tjm1, tjm2, djm1, djm2, ejm1, ejm2, bjm1, bjm2, ajm1, cjm1 = c
            tj = 2 * w0 * tjm1 - tjm2
            dj = 2 * tjm1 + 2 * w0 * djm1 - djm2
            ej = 4 * djm1 + 2 * w0 * ejm1 - ejm2
            bj = ej / dj**2
            mu = 2 * bj * w0 / bjm1
            nu = -bj / bjm2
            mut = 2 * bj * w1 / bjm1
            gam = -ajm1 * mut
            fj = terms.vf(t + cjm1 * h, yjm1, args)
            yj = jtu.tree_map(
                lambda y0_, a1, a2, fa, f0_: (
                    (1 - mu - nu) * y0_
                    + mu * a1
                    + nu * a2
                    + mut * h * fa
                    + gam * h * f0_
                ),
                y0,
                yjm1,
                yjm2,
                fj,
                f0,
            )
            aj = 1.0 - bj * tj
            cj = w1 * ej / dj  # stage time c_j = w1 T_j''/T_j'
            return yj, yjm1, tj, tjm1, dj, djm1, ej, ejm1, bj, bjm1, aj, cj

        one = jnp.ones_like(w0)
        zero = jnp.zeros_like(w0)
        init = (y1, y0, w0, one, one, zero, zero, zero, b_first, b_first, a_first, mu1t)
        out = lax.fori_loop(2, s + 1, body, init)
        ys = out[0]
        f1 = terms.vf(t + h, ys, args)
        err = jtu.tree_map(
            lambda a, b_, fa, fb: (12 * (a - b_) + 6 * h * (fa + fb)) / 15,
            y0,
            ys,
            f0,
            f1,
        )
        return ys, f1, err, s

    def step(self, terms, t0, t1, y0, args, solver_state: _State, made_jump):
        st = solver_state
        h = t1 - t0  # diffrax hands solvers forward time (h ≥ 0)
        f0 = lax.cond(
            made_jump,
            lambda: terms.vf(t0, y0, args),
            lambda: st.f0,
        )
        num_vf = st.num_vf + jnp.where(made_jump, 1, 0)
        p = self.power_iterations
        rho, v = self._power(terms, t0, y0, args, st.v, p)
        num_jvp = st.num_jvp + p
        # A step longer than the stage budget's stability interval is split into
        # equal substeps that the budget covers, each with its own sharpness
        # estimate. Only a step needing more than max_substeps of them is
        # rejected, before any stage is computed: y1 = y0 and an infinite error,
        # on which diffrax's controllers shrink the step by their largest factor.
        over = jnp.ceil(h / self._budget_step(rho)) > self.max_substeps
        zero_err = jtu.tree_map(jnp.zeros_like, y0)
        i = st.num_vf.dtype

        def cond(c):
            r, k = c[0], c[-1]
            return (r > 0) & (k < self.max_substeps)

        def body(c):
            r, y, f, v, rho, err, nvf, njvp, smax, k = c
            hb = self._budget_step(rho)
            hs = r / jnp.maximum(jnp.ceil(r / hb), 1.0)  # equal substeps, each ≤ hb
            hs = jnp.where(jnp.isnan(hs), r, hs)  # NaN ρ: one step, NaN state
            y, f, e, s = self._substep(terms, t1 - r, hs, y, f, rho, args)
            err = jtu.tree_map(lambda a, b_: a + jnp.abs(b_), err, e)
            r = jnp.where(hs == r, jnp.zeros_like(r), r - hs)

            def power(_):
                rho_, v_ = self._power(terms, t1 - r, y, args, v, p)
                return rho_, v_, njvp + p

            rho, v, njvp = lax.cond(r > 0, power, lambda _: (rho, v, njvp), None)
            return r, y, f, v, rho, err, nvf + s, njvp, jnp.maximum(smax, s), k + 1

        r0 = jnp.where(over, jnp.zeros_like(h), h)
        init = (r0, y0, f0, v, rho, zero_err, num_vf, num_jvp, st.max_stages_used)
        init = init + (jnp.array(0, i),)
        r, ys, f1, v, rho, err, num_vf, num_jvp, smax, _ = lax.while_loop(
            cond, body, init
        )
        # A sharpness that grew during the step beyond max_substeps intervals.
        reject = over | (r > 0)
        ys = jtu.tree_map(lambda a, b_: jnp.where(reject, a, b_), y0, ys)
        f1 = jtu.tree_map(lambda a, b_: jnp.where(reject, a, b_), f0, f1)
        err = jtu.tree_map(lambda e: jnp.where(reject, jnp.inf, e), err)
        dense_info = dict(
            y0=y0,
            y1=ys,
            k=jtu.tree_map(lambda a, b_: jnp.stack([h * a, h * b_]), f0, f1),
        )
        new_state = _State(
            f0=f1,
            v=v,
            rho=rho,
            num_vf=num_vf,
            num_jvp=num_jvp,
            max_stages_used=smax,
        )
        return ys, err, dense_info, new_state, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    @staticmethod
    def evaluation_counts(solver_state: _State) -> dict[str, int]:
        """Cost of a solve from its final solver state: vector-field evaluations,
        Jacobian-vector products (HVPs) and the largest stage count used, over the
        accepted steps (diffrax restores the solver state after a rejected step).
        Steps rejected for needing more than `max_substeps` substeps of at most
        `max_stages` stages are counted by `gradient_flow`'s controller as
        `stats["num_budget_rejections"]`."""
        return dict(
            num_vf_evals=int(solver_state.num_vf),
            num_jvps=int(solver_state.num_jvp),
            max_stages_used=int(solver_state.max_stages_used),
        )
