"""ROS2: a matrix-free, L-stable, second-order Rosenbrock method whose linear systems
are solved by a Krylov method (lineax) on Jacobian-vector products."""

from __future__ import annotations

from typing import ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
from jaxtyping import ArrayLike, PyTree

from .._misc import tree_norm


_GAMMA = 1.0 + 2.0**-0.5  # γ = 1 + 1/√2: L-stable ROS2 (Verwer et al. 1999)


class QuadraticHermiteInterpolation(dfx.AbstractLocalInterpolation):
    r"""Dense output on one step: the quadratic through $y_0$, $y_1$ with slope $f_0$
    at $t_0$, $y(t_0 + θh) = y_0 + θhf_0 + θ^2(y_1 - y_0 - hf_0)$. Local error
    $O(h^3)$, consistent with a second-order method, and no extra evaluations."""

    t0: ArrayLike
    t1: ArrayLike
    y0: PyTree
    y1: PyTree
    hf0: PyTree

    def _at(self, t):
        th = (t - self.t0) / (self.t1 - self.t0)
        return jtu.tree_map(
            lambda a, b, d: a + th * d + th**2 * (b - a - d), self.y0, self.y1, self.hf0
        )

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is None:
            return self._at(t0)
        return jtu.tree_map(lambda b, a: b - a, self._at(t1), self._at(t0))


class _State(eqx.Module):
    num_vf: jax.Array  # vector-field evaluations (accepted steps)
    num_jvp: jax.Array  # Jacobian-vector products (accepted steps)
    max_krylov: jax.Array  # most Krylov iterations in one linear solve


class ROS2K(dfx.AbstractAdaptiveSolver):
    r"""Two-stage Rosenbrock method ROS2 (Verwer, Spee, Blom & Hundsdorfer 1999,
    SIAM J. Sci. Comput. 20, 1456, Eq. 2.5) with Krylov linear solves:

    $$(I - γhJ)k_1 = f(y_n), \qquad (I - γhJ)k_2 = f(y_n + hk_1) - 2k_1,$$
    $$y_{n+1} = y_n + \tfrac32 h k_1 + \tfrac12 h k_2, \qquad γ = 1 + 1/\sqrt2,$$

    with $J = ∂f/∂y$ at $y_n$ (for gradient flow $J = -∇^2Φ$, so the matrix is
    $I + γh∇^2Φ$). Second order for *any* $J$ (it is a W-method: with $J = 0$ it is
    Heun's method) and L-stable: the stability function
    $R(z) = [1 + (1-2γ)z + (γ^2 - 2γ + \tfrac12)z^2]/(1-γz)^2$ satisfies $|R| ≤ 1$
    on the left half-plane and $R(-∞) = 0$ — stiff modes are damped in one step,
    whatever $hλ_{\max}$.

    Nothing is ever a matrix: $J$ enters through `jax.linearize` of the vector field
    at $y_n$ (Hessian-vector products for gradient flow), and each system is solved
    by `linear_solver` (default conjugate gradients, valid because $I + γh∇^2Φ$ is
    symmetric, and positive definite wherever $λ_{\min}(∇^2Φ) > -1/(γh)$). It is
    meant for fields with a symmetric Jacobian: gradient flows and modified gradient
    flows (use `diffrax.Kvaerno5` or an explicit solver otherwise). A solve that does not converge within
    its budget rejects the step (infinite error estimate) so the controller shrinks
    it; `gradient_flow` reports these as `stats["num_budget_rejections"]`.

    Error estimate: the embedded first-order solution $\hat y = y_n + hk_1$ gives
    $y_{n+1} - \hat y = \tfrac h2 (k_1 + k_2) = O(h^2)$, for diffrax's
    `PIDController`. Dense output: [`QuadraticHermiteInterpolation`][dynlearn.stiff.QuadraticHermiteInterpolation]
    (local error $O(h^3)$, no extra evaluations).
    Assumes an autonomous field (gradient flows are): a time-dependent $f$ loses
    the $∂f/∂t$ correction and its order.

    **Arguments:**

    - `krylov_tol`: relative residual $\|r\|_2/\|b\|_2$ at which a linear solve stops.
    - `max_krylov_steps`: iteration budget of one conjugate-gradient solve
      (`lineax.CG`, applied to the system scaled to a unit right-hand side).
    """

    krylov_tol: float = eqx.field(static=True, default=1e-4)
    max_krylov_steps: int = eqx.field(static=True, default=200)

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar = QuadraticHermiteInterpolation
    counts_own_evaluations: ClassVar[bool] = True
    uses_hvp: ClassVar[bool] = True

    def __check_init__(self):
        tol = self.krylov_tol
        if (
            isinstance(tol, bool)
            or not isinstance(tol, (int, float))
            or not 0.0 < tol < 1.0
        ):
            raise ValueError(
                "krylov_tol must be a number in (0, 1) (a relative residual, default "
                f"1e-4), got {tol!r}."
            )
        steps = self.max_krylov_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(
                f"max_krylov_steps must be an integer >= 1, got {steps!r}."
            )

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 2

    def _solver(self) -> lx.AbstractLinearSolver:
        # stabilise_every=None: exactly one operator application per iteration
        # (plus one for the initial residual), so the HVP count is exact.
        return lx.CG(
            rtol=0.0,
            atol=self.krylov_tol,
            norm=tree_norm,
            max_steps=self.max_krylov_steps,
            stabilise_every=None,
        )

    def init(self, terms, t0, t1, y0, args):
        i = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
        z = jnp.array(0, i)
        return _State(num_vf=z, num_jvp=z, max_krylov=z)

    def step(self, terms, t0, t1, y0, args, solver_state: _State, made_jump):
        del made_jump
        st = solver_state
        h = t1 - t0
        f0, jvp = jax.linearize(lambda y: terms.vf(t0, y, args), y0)
        gh = _GAMMA * h
        solver = self._solver()
        tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
        operator = lx.FunctionLinearOperator(
            lambda v: jtu.tree_map(lambda a, b: a - gh * b, v, jvp(v)),
            jax.eval_shape(lambda: y0),
            tags=tags,
        )

        def solve(rhs):
            # Scale to a unit right-hand side so krylov_tol is a relative residual.
            norm = tree_norm(rhs)
            safe = jnp.where(norm > 0, norm, 1.0)
            sol = lx.linear_solve(
                operator,
                jtu.tree_map(lambda a: a / safe, rhs),
                solver,
                throw=False,
            )
            k = jtu.tree_map(lambda a: a * safe, sol.value)
            return k, sol.result == lx.RESULTS.successful, sol.stats["num_steps"]

        k1, ok1, n1 = solve(f0)
        f1 = terms.vf(t0 + h, jtu.tree_map(lambda a, k: a + h * k, y0, k1), args)
        k2, ok2, n2 = solve(jtu.tree_map(lambda f, k: f - 2 * k, f1, k1))
        y1 = jtu.tree_map(lambda a, p, q: a + 1.5 * h * p + 0.5 * h * q, y0, k1, k2)
        ok = ok1 & ok2
        err = jtu.tree_map(
            lambda p, q: jnp.where(ok, 0.5 * h * (p + q), jnp.inf), k1, k2
        )
        # CG applies the operator once for the initial residual, then once per
        # iteration; each application is one JVP of the field (one HVP).
        new_state = _State(
            num_vf=st.num_vf + 2,
            num_jvp=st.num_jvp + n1 + n2 + 2,
            max_krylov=jnp.maximum(st.max_krylov, jnp.maximum(n1, n2)),
        )
        dense_info = dict(y0=y0, y1=y1, hf0=jtu.tree_map(lambda f: h * f, f0))
        return y1, err, dense_info, new_state, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    @staticmethod
    def evaluation_counts(solver_state: _State) -> dict[str, int]:
        """Cost of a solve from its final solver state, over the accepted steps
        (diffrax restores the solver state after a rejected step): vector-field
        evaluations (two per step: the linearisation point and the second stage),
        Jacobian-vector products (one per Krylov iteration and one per initial
        residual) and the most Krylov iterations any linear solve needed."""
        return dict(
            num_vf_evals=int(solver_state.num_vf),
            num_jvps=int(solver_state.num_jvp),
            max_krylov_iterations=int(solver_state.max_krylov),
        )
