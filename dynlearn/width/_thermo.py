r"""Thermodynamics of learning: Langevin training and ensemble thermodynamics.

Langevin dynamics on the loss Φ at temperature T,

$$dθ = -∇Φ(θ)\,dt + \sqrt{2T}\,dW_t,$$

has the Gibbs stationary density $p_∞ ∝ e^{-Φ/T}$; Vanchurin (2021,
arXiv:2004.09280, "Toward a theory of machine learning", §§5–7) describes learning
by the canonical ensemble's thermodynamic quantities. We estimate them from an
ensemble of M parameter vectors (M Langevin paths at one time):

* energy $U = \langle Φ \rangle$;
* entropy $S = \tfrac12\log\det(2πe\,\hatΣ)$ of the Gaussian fit (exact for a
  Gaussian ensemble, an upper bound otherwise), $\hatΣ$ the sample covariance;
* thermodynamic (temperature) part $S_0(T) = \tfrac P2(1 + \log 2πT)$ and complexity
  $C = S - S_0$, the split $S = S_0(T) + C$ of Vanchurin's factorisation
  $Z = ζ(T)\,Σ(\text{parameters, data})$;
* free energy $F = U - TS$;
* equipartition temperature $T_{eq} = 2\langle Φ - Φ_{min}\rangle/P$.

For the quadratic loss $Φ = \tfrac12 θ^TAθ$ everything is exact:
$U = PT/2$, $S = \tfrac P2(1 + \log 2πT) - \tfrac12\log\det A$, so
$C = -\tfrac12\log\det A$ (notes §1.10), see [`dynlearn.width.quadratic_equilibrium`][].

"Second law": under Fokker–Planck dynamics $F(t) - F_∞ = T\,\mathrm{KL}(p_t\|p_∞)$
decreases monotonically; started from an ensemble broader than equilibrium the
entropy S(t) decreases to its equilibrium value (Vanchurin's dS/dt ≤ 0, eq. (7.6)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._discrete import num_paths
from .._flows import GradientFlow
from .._gradient_flow import check_times
from .._misc import (
    check_bool,
    check_divergence_threshold,
    check_integer,
    check_nonempty_leaves,
    check_positive,
    checked_loss,
    progress_enabled,
    split_params,
)
from .._observables import AbstractObservable, as_observables
from .._sde import (
    _sde_resume,
    _SDEProblem,
    run_sde,
    step_grid,
)
from .._trajectory import Trajectory, restore_state


def langevin(
    loss_fn: Callable[[Any], Any],
    params: Any,
    temperature: float,
    t1: float,
    *,
    key: PRNGKeyArray,
    dt: float,
    ts: ArrayLike | None = None,
    num_saves: int = 101,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e8,
    resume: Trajectory | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Integrate $dθ = -∇Φ\\,dt + \\sqrt{2T}\\,dW$ with Euler–Maruyama (diffrax), on
    the machinery of [`dynlearn.sgd_sde`][] with the constant isotropic diffusion
    $\\sqrt{2T}\\,I$.

    **Arguments:**

    - `loss_fn`, `params`: Φ and θ(0) as in [`dynlearn.gradient_flow`][]. With a
      batch of keys, `params` may carry a leading ensemble axis (see `key`).
    - `temperature`: T ≥ 0 (T = 0 is gradient descent with lr = dt). It is traced:
      a new temperature reuses the compiled program.
    - `t1`, `ts`, `num_saves`, `observables`, `save_params`: as
      [`dynlearn.gradient_flow`][].
    - `key`: a PRNG key, or a batch of M keys for an ensemble of M paths (vmapped; the
      arrays in the returned trajectory then have a leading path axis). If `params`
      already has a leading axis of length M on every leaf, each path starts from its
      own θ(0); otherwise all paths start from `params`.
    - `dt`: the fixed step, on the grid $t_j = j·dt$ (the last step ends at `t1`).
      Euler–Maruyama's stationary law is biased at O(dt): compare with
      `quadratic_equilibrium(A, T, dt=dt)` for the exact discrete one. It is stable
      only for $dt·λ_{max}(∇^2Φ) < 2$.
    - `max_steps`: the step budget; a run that needs more steps than this (t1/dt) is
      refused before it starts.
    - `divergence_threshold`: stop when a parameter exceeds it in magnitude or
      becomes non-finite, and raise a [`dynlearn.DivergenceError`][] with `.t`,
      `.step` (the first bad time and its step) and the trajectory up to that time.
    - `resume`: a trajectory of an earlier run (or a loaded checkpoint) with the same
      `dt` and key: continue from its final time to `t1`, bit for bit equal to the
      uninterrupted run. `key` may then be omitted.
    - `progress`: show a progress meter (diffrax's tqdm meter); `None` means the
      default of [`dynlearn.show_progress`][] (off).

    The Brownian increment of the step $[t_j, t_{j+1}]$ is drawn from the key and the
    two times alone (`diffrax.UnsafeBrownianPath`), so a resumed run draws exactly the
    noise of the straight one.

    **Returns:** a [`dynlearn.Trajectory`][] (`loss` = Φ at the save times,
    `observables["grad_norm"]` = ‖∇Φ‖) whose `state` resumes the run.
    """
    check_positive("dt", dt)
    if not (
        np.ndim(temperature) == 0 and np.isfinite(temperature) and temperature >= 0
    ):
        raise ValueError(f"`temperature` must be finite and >= 0, got {temperature}.")
    check_bool("save_params", save_params)
    progress = progress_enabled(progress)
    check_integer("max_steps", max_steps)
    thr = check_divergence_threshold(divergence_threshold)
    t_start, y_resume = 0.0, None
    if resume is not None:
        t_start, y_resume, saved_key = _sde_resume(resume)
        key = saved_key if key is None else key
        if ts is None:
            ts = np.linspace(t_start, float(t1), num_saves)
    else:
        check_positive("t1", t1)
    if key is None:
        raise TypeError(
            "langevin needs a PRNG key for the Brownian motion: "
            "key=jax.random.key(0), or jax.random.split(key, M) for an ensemble of M "
            "paths."
        )
    ts_np = check_times(t_start, t1, ts, num_saves)
    j0, n_steps = step_grid("langevin", t_start, t1, dt, max_steps, resume is not None)
    m = num_paths(key)
    dynamic, static = split_params(params)
    check_nonempty_leaves(dynamic)
    leaves = jtu.tree_leaves(dynamic)
    per_path = m is not None and all(
        leaf.ndim >= 1 and leaf.shape[0] == m for leaf in leaves
    )
    one = jtu.tree_map(lambda a: a[0], dynamic) if per_path else dynamic
    checked_loss(loss_fn, eqx.combine(one, static))
    if y_resume is not None:
        template = one if m is None else jax.vmap(lambda _: one)(jnp.arange(m))
        dynamic = restore_state(y_resume, template, "langevin")
    dtype = jtu.tree_leaves(dynamic)[0].dtype
    problem = _SDEProblem(
        loss_fn=loss_fn,
        static=static,
        flow=GradientFlow(),
        solver=dfx.Euler(),
        observables=as_observables(observables),
        scale=jnp.asarray(jnp.sqrt(2.0 * jnp.asarray(temperature)), dtype),
        n=0,
        save_params=save_params,
        progress=progress,
        ensemble=m is not None,
        resumed_ensemble=m is not None and (per_path or y_resume is not None),
        takes_data=False,
        isotropic=True,
    )
    return run_sde(
        problem, dynamic, key, None, t1=t1, dt=dt, j0=j0, n_steps=n_steps, ts=ts_np,
        threshold=thr, num_paths=m,
        method=f"langevin[T={float(temperature):g}, Euler-Maruyama]", name="langevin",
        remedy="Euler–Maruyama is unstable for dt·λ_max(∇²Φ) > 2: reduce dt, or "
        "check the loss for overflow.",
    )  # fmt: skip


class Thermodynamics(NamedTuple):
    """Thermodynamic state of an ensemble (scalars; see the module docstring)."""

    energy: Array
    entropy: Array
    entropy_thermal: Array
    complexity: Array
    free_energy: Array
    temperature: Array


def _flat_ensemble(samples: Any) -> Array:
    leaves = jtu.tree_leaves(eqx.filter(samples, eqx.is_inexact_array))
    if not leaves:
        raise ValueError("`samples` has no floating-point array leaves.")
    m = leaves[0].shape[0] if leaves[0].ndim else 0
    if any(leaf.ndim == 0 or leaf.shape[0] != m for leaf in leaves):
        raise ValueError(
            "`samples` must be an ensemble: every leaf needs the same leading axis "
            "(the M ensemble members), e.g. traj.at(i) of an ensemble langevin run."
        )
    return jnp.concatenate([leaf.reshape(m, -1) for leaf in leaves], axis=1)


def thermodynamics(
    samples: Any,
    losses: ArrayLike,
    temperature: float,
    *,
    loss_min: float = 0.0,
) -> Thermodynamics:
    """Estimate U, S, S₀, C, F and the equipartition temperature of an ensemble.

    **Arguments:**

    - `samples`: parameter pytree with a leading axis of M ensemble members (M > P,
      the number of parameters, for a non-singular covariance).
    - `losses`: Φ of each member, shape `(M,)`.
    - `temperature`: the bath temperature T used for S₀(T) and F = U − TS.
    - `loss_min`: Φ_min for the equipartition estimate $T_{eq} = 2\\langle Φ -
      Φ_{min}\\rangle/P$ (exact for a quadratic loss at equilibrium).
    """
    x = _flat_ensemble(samples)
    m, p = x.shape
    losses = jnp.asarray(losses)
    if losses.shape != (m,):
        raise ValueError(f"`losses` must have shape ({m},), got {losses.shape}.")
    if m <= p + 1:
        raise ValueError(
            f"An ensemble of M = {m} members cannot resolve the covariance of P = {p} "
            f"parameters: need M > P + 1 (ideally M ≫ P)."
        )
    check_positive("temperature", temperature)
    cov = jnp.cov(x, rowvar=False).reshape(p, p)
    _, logdet = jnp.linalg.slogdet(2 * jnp.pi * jnp.e * cov)
    entropy = 0.5 * logdet
    s0 = 0.5 * p * (1.0 + jnp.log(2 * jnp.pi * temperature))
    energy = jnp.mean(losses)
    return Thermodynamics(
        energy=energy,
        entropy=entropy,
        entropy_thermal=s0,
        complexity=entropy - s0,
        free_energy=energy - temperature * entropy,
        temperature=2.0 * (energy - loss_min) / p,
    )


def quadratic_equilibrium(
    hessian: ArrayLike, temperature: float, *, dt: float | None = None
) -> Thermodynamics:
    """Exact equilibrium thermodynamics of Langevin dynamics on Φ = ½ θᵀAθ.

    Continuous time (`dt=None`): the Gibbs density N(0, T A⁻¹), so
    $U = PT/2$, $S = \\tfrac P2(1 + \\log 2πT) - \\tfrac12\\log\\det A$,
    $C = -\\tfrac12\\log\\det A$ (notes §1.10). With `dt`, the exact stationary law
    of the Euler–Maruyama chain $θ_{k+1} = (I - hA)θ_k + \\sqrt{2Th}\\,ξ_k$:
    $Σ = 2T\\,[A(2I - hA)]^{-1}$ (needs $h\\,λ_{max} < 2$), $U = \\tfrac12\\mathrm{tr}
    (AΣ)$, $S = \\tfrac12\\log\\det(2πeΣ)$. `temperature` in the result is the
    equipartition value $2U/P$.
    """
    a = jnp.asarray(hessian, dtype=jnp.result_type(float))
    p = a.shape[0]
    if a.shape != (p, p):
        raise ValueError(f"`hessian` must be square, got {a.shape}.")
    check_positive("temperature", temperature)
    lam = jnp.linalg.eigvalsh(0.5 * (a + a.T))
    if not bool(jnp.all(lam > 0)):
        raise ValueError("`hessian` must be symmetric positive definite.")
    if dt is None:
        var = temperature / lam
    else:
        check_positive("dt", dt)
        if not float(dt * lam.max()) < 2:
            raise ValueError(
                f"Euler–Maruyama has no stationary law for dt·λ_max = "
                f"{float(dt * lam.max()):.3g} >= 2; reduce dt."
            )
        var = 2 * temperature / (lam * (2 - dt * lam))
    energy = 0.5 * jnp.sum(lam * var)
    entropy = 0.5 * jnp.sum(jnp.log(2 * jnp.pi * jnp.e * var))
    s0 = 0.5 * p * (1.0 + jnp.log(2 * jnp.pi * temperature))
    return Thermodynamics(
        energy=energy,
        entropy=entropy,
        entropy_thermal=s0,
        complexity=entropy - s0,
        free_energy=energy - temperature * entropy,
        temperature=2 * energy / p,
    )


def configurational_temperature(loss_fn: Callable[[Any], Any], samples: Any) -> Array:
    """Configurational temperature $T_{conf} = \\langle\\|∇Φ\\|^2\\rangle /
    \\langle \\mathrm{tr}\\,∇^2Φ\\rangle$ of an ensemble of parameters.

    For the Gibbs density $p ∝ e^{-Φ/T}$ integration by parts gives
    $\\langle\\|∇Φ\\|^2\\rangle = T\\langle\\mathrm{tr}\\,∇^2Φ\\rangle$ for *any* Φ (Rugh
    1997, Phys. Rev. Lett. 78, 772), so unlike equipartition it needs neither Φ_min
    nor a quadratic loss: it measures the temperature of SGD or Langevin ensembles.
    `samples` is a parameter pytree (`loss_fn`'s argument) with a leading ensemble
    axis M; the Hessian trace is exact (P Hessian-vector products per member, so
    meant for P up to a few thousand).
    """
    dynamic, static = eqx.partition(samples, eqx.is_inexact_array)
    leaves = jtu.tree_leaves(dynamic)
    if not leaves or any(leaf.ndim == 0 for leaf in leaves):
        raise ValueError("`samples` needs a leading ensemble axis on every leaf.")
    one = jtu.tree_map(lambda a: a[0], dynamic)
    flat0, unravel = jax.flatten_util.ravel_pytree(one)

    def phi(v):
        return loss_fn(eqx.combine(unravel(v), static))

    def member(d):
        v, _ = jax.flatten_util.ravel_pytree(d)
        g = jax.grad(phi)(v)
        eye = jnp.eye(v.size, dtype=v.dtype)
        hvp = jax.vmap(lambda e: jax.jvp(jax.grad(phi), (v,), (e,))[1] @ e)(eye)
        return g @ g, jnp.sum(hvp)

    g2, tr = jax.jit(lambda d: jax.lax.map(member, d))(dynamic)
    return jnp.mean(g2) / jnp.mean(tr)
