"""The stochastic modified equation of minibatch SGD (Li, Tai & E 2017).

$$dθ = -∇\\tilde Φ(θ)\\,dt + \\sqrt{η\\,Σ_B(θ)}\\,dW_t,$$

with $\\tilde Φ = Φ$ (order 1) or $Φ + \\tfrac η4\\|∇Φ\\|^2$ (order 2), $t = kη$, and
$Σ_B$ the covariance of one minibatch gradient: $Σ/B$ for batches drawn with
replacement, $Σ(N-B)/(B(N-1))$ without (zero for the full batch B = N), where $Σ = \\frac1N\\sum_i (∇ℓ_i - ∇Φ)(∇ℓ_i -
∇Φ)^T$ is the per-example gradient covariance. References: Li, Tai & E, ICML 2017
(arXiv:1511.06251), JMLR 20 (2019) (arXiv:1811.01558).

The diffusion is matrix-free: with $G$ the N×P matrix of rows $(∇ℓ_i - ∇Φ)/\\sqrt N$,
$Σ = G^TG$ and the noise is $\\sqrt{η/B}\\,G^T dW$ with an N-dimensional Brownian motion
W. $G^Tw = ∇_θ\\sum_i (w_i - \\bar w)ℓ_i(θ)/\\sqrt N$ is one vector-Jacobian product, so
neither Σ (P×P) nor G is ever formed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np

from ._custom_types import Params
from ._discrete import _check_batch_size, _check_data, num_paths
from ._flows import GradientFlow, ModifiedGradientFlow
from ._gradient_flow import check_times
from ._misc import (
    NonFiniteError,
    check_bool,
    check_nonempty_leaves,
    check_positive,
    checked_loss,
    split_params,
)
from ._observables import AbstractObservable, as_observables, evaluate_observables
from ._trajectory import Trajectory


def per_example_losses(loss_fn: Callable, params: Any, data: Any) -> jax.Array:
    """ℓ_i(θ) = `loss_fn(params, batch_i)` for every example i (batches of size one)."""
    return jax.vmap(lambda ex: loss_fn(params, jtu.tree_map(lambda x: x[None], ex)))(
        data
    )


def sgd_sde(
    loss_fn: Callable[[Params, Any], Any],
    params: Params,
    data: Any,
    lr: float,
    t1: float,
    *,
    batch_size: int,
    key: Any,
    dt: float | None = None,
    order: int = 1,
    replacement: bool = True,
    solver: dfx.AbstractSolver | None = None,
    ts: Any = None,
    num_saves: int = 101,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    save_params: bool = True,
) -> Trajectory:
    """Integrate the stochastic modified equation of minibatch SGD as a diffrax SDE.

    **Arguments:**

    - `loss_fn(params, batch)`, `params`, `data`, `lr`, `batch_size`, `replacement`:
      as [`dynlearn.sgd`][]; `loss_fn` must be the *mean* over the batch.
    - `t1`: final time ($t = kη$: `t1 = lr·steps` matches `steps` SGD steps).
    - `key`: PRNG key of the Brownian motion (a `diffrax.VirtualBrownianTree`), or a
      batch of M keys for an ensemble of M paths (vmapped; arrays in the returned
      trajectory then carry a leading sample axis).
    - `dt`: fixed step (default `lr/4`).
    - `order`: 1 (drift −∇Φ) or 2 (drift −∇(Φ + η/4‖∇Φ‖²), weak order 2).
    - `solver`: default `diffrax.Euler()` (Euler–Maruyama; Itô).
    - `ts`, `num_saves`, `observables`, `save_params`: as [`dynlearn.gradient_flow`][].
    """
    check_positive("lr", lr)
    ts_np = check_times(0.0, t1, ts, num_saves)
    n = _check_data(data)
    batch_size = _check_batch_size(batch_size, n, replacement)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    dt = lr / 4 if dt is None else dt
    check_positive("dt", dt)
    check_bool("save_params", save_params)
    if key is None:
        raise TypeError(
            "sgd_sde needs a PRNG key for the Brownian motion: key=jax.random.key(0), "
            "or jax.random.split(key, M) for an ensemble of M paths."
        )
    n_paths = num_paths(key)
    solver = dfx.Euler() if solver is None else solver
    if not isinstance(solver, dfx.AbstractSolver):
        raise TypeError(
            f"solver must be a diffrax solver instance such as diffrax.Euler(), got "
            f"{solver!r}."
        )
    full_loss = lambda p: loss_fn(p, data)
    checked_loss(full_loss, params)
    dynamic, static = split_params(params)
    check_nonempty_leaves(dynamic)
    phi = lambda d: full_loss(eqx.combine(d, static))
    obs = as_observables(observables)
    flow = GradientFlow() if order == 1 else ModifiedGradientFlow(lr)
    if replacement:
        factor = 1 / batch_size
    elif batch_size == n:  # the full batch every step: no noise (also N = 1)
        factor = 0.0
    else:
        factor = (n - batch_size) / (batch_size * (n - 1))
    scale = math.sqrt(lr * factor / n)
    dtype = jtu.tree_leaves(dynamic)[0].dtype

    def drift(t, y, args):
        return flow.vector_field(phi, t, y)

    def diffusion(t, y, args):
        def gt_w(w):
            w = w - jnp.mean(w)
            weighted = lambda d: jnp.dot(
                w, per_example_losses(loss_fn, eqx.combine(d, static), data)
            )
            return jtu.tree_map(lambda g: scale * g, jax.grad(weighted)(y))

        return lx.FunctionLinearOperator(gt_w, jax.ShapeDtypeStruct((n,), dtype))

    def save_fn(t, y, args):
        full = eqx.combine(y, static)
        loss, values = evaluate_observables(full_loss, full, obs)
        return (y if save_params else None), loss, values

    def run(y0, key):
        bm = dfx.VirtualBrownianTree(0.0, t1, tol=dt / 2, shape=(n,), key=key)
        terms = dfx.MultiTerm(dfx.ODETerm(drift), dfx.ControlTerm(diffusion, bm))
        sol = dfx.diffeqsolve(
            terms,
            solver,
            0.0,
            t1,
            dt,
            y0,
            saveat=dfx.SaveAt(
                subs=[
                    dfx.SubSaveAt(ts=ts_np, fn=save_fn),
                    dfx.SubSaveAt(t1=True, fn=lambda t, y, args: y),
                ]
            ),
            max_steps=int(math.ceil(t1 / dt)) + 16,
        )
        return sol.ys, sol.stats["num_steps"]

    if n_paths is not None:
        run = jax.vmap(run, in_axes=(None, 0))
    tic = time.perf_counter()
    compiled = jax.jit(run).lower(dynamic, key).compile()
    compile_time = time.perf_counter() - tic
    tic = time.perf_counter()
    ((p_saved, loss_saved, obs_saved), final), num_steps = jax.block_until_ready(
        compiled(dynamic, key)
    )
    final = jtu.tree_map(lambda a: a[0] if n_paths is None else a[:, 0], final)
    run_time = time.perf_counter() - tic
    num_steps = int(np.max(np.asarray(num_steps)))
    m = 1 if n_paths is None else n_paths
    traj = Trajectory(
        ts=jnp.asarray(ts_np),
        params=eqx.combine(p_saved, static) if save_params else None,
        loss=loss_saved,
        observables=obs_saved,
        final_params=eqx.combine(final, static),
        stats={
            "method": f"sgd_sde[order={order}, {type(solver).__name__}]",
            "num_paths": m,
            "num_steps": num_steps,
            "dt": float(dt),
            "compile_time": compile_time,
            "run_time": run_time,
        },
    )
    if not bool(jnp.all(jnp.isfinite(loss_saved))):
        err = NonFiniteError(
            "sgd_sde: the SDE solution became non-finite; reduce dt or lr, or check "
            "the loss for overflow. The trajectory is attached as error.trajectory."
        )
        err.trajectory = traj
        raise err
    return traj
