"""Gradients w.r.t. constants inside H by the echo's ε-contrast (the static-parameter
extension of HEB: Pourcel & Ernoult, "Learning long range dependencies through time
reversal symmetry breaking" (RHEL), arXiv:2506.05259, eq. (7) and App. A.1.4).

Promote a constant θ of $V_θ(q)$ to a coordinate of infinite mass. Its conjugate
momentum obeys $\\dot π_θ = -∂_θV_θ(q)$ and leapfrog of the extended system is still
symmetric and symplectic, so the echo identity gives $Δπ_θ = -η∂L/∂θ + O(η^2)$. Only
the echo part depends on η, hence with the trapezoid sum along the echo trajectory
$A(ε) = \\sum_k \\tfrac h2[∂_θV(q^e_k(ε)) + ∂_θV(q^e_{k+1}(ε))]$ (exactly the θ-kicks
of leapfrog)

$$\\frac{dL}{dθ} = -\\frac{A(+ε) - A(-ε)}{2ε} + O(ε^2).$$
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._echo import check_eta
from ._hamiltonian import SeparableHamiltonian, State, as_state, ensure_time_reversal
from ._integrators import _check_steps, evolve


def rhel_gradient(
    make_hamiltonian: Callable[[Any], SeparableHamiltonian],
    theta: Any,
    state: State,
    cost: Callable[[State], Any],
    eps: float,
    t1: Any,
    num_steps: int,
) -> Any:
    """$dL/dθ$ for parameters θ that live inside the potential as constants, from one
    forward evolution and two echoes (nudge ±`eps` at the final time), where
    $L(θ) = C(M_θ(x))$ with leapfrog $M_θ$.

    **Arguments:**

    - `make_hamiltonian`: `θ -> SeparableHamiltonian`; θ (any pytree) may enter the
      potential only (the masses must not depend on θ).
    - `theta`, `state` (canonical `(q, p)`), `cost` (of the final state), `eps`,
      `t1`, `num_steps`.

    **Returns** the gradient, a pytree like θ; error O(ε²) against `jax.grad` of the
    discretised loss. Memory does not grow with `num_steps`. `eps` must be positive
    and finite; time-reversal invariance is checked as in [`dynlearn.echo.echo`][]
    (eagerly, or inside `jit` when θ is traced).
    """
    _check_steps(t1, num_steps)
    check_eta(eps, signed=False, name="eps")
    ham = make_hamiltonian(theta)
    if not isinstance(ham, SeparableHamiltonian):
        raise TypeError(
            "rhel_gradient needs `make_hamiltonian` to return a SeparableHamiltonian "
            f"(leapfrog), got {type(ham).__name__}."
        )
    state = ensure_time_reversal(ham, as_state(ham, state))
    dt = t1 / num_steps

    def dv_dtheta(q):
        return jax.grad(lambda th: make_hamiltonian(th).potential(q))(theta)

    def echo_sum(kicked):
        def body(carry, _):
            x, acc, g_prev = carry
            x = ham.split_step(x, dt)
            g = dv_dtheta(x[0])
            acc = jtu.tree_map(lambda a, u, v: a + 0.5 * dt * (u + v), acc, g_prev, g)
            return (x, acc, g), None

        x0 = ham.time_reverse(kicked)
        g0 = dv_dtheta(x0[0])
        zero = jtu.tree_map(jnp.zeros_like, g0)
        (_, acc, _), _ = jax.lax.scan(body, (x0, zero, g0), None, length=num_steps)
        return acc

    final = evolve(ham, state, t1, num_steps)
    eps = jnp.asarray(eps)
    both = jax.vmap(lambda e: echo_sum(ham.kick(final, cost, e)))(
        jnp.stack([eps, -eps])
    )
    return jtu.tree_map(lambda a: -(a[0] - a[1]) / (2 * eps), both)
