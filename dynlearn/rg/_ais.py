"""Annealed importance sampling (AIS) of the partition function of an RBM with ±1 or
0/1 units.

Neal, "Annealed importance sampling", Stat. Comput. 11, 125 (2001); Salakhutdinov &
Murray, "On the quantitative analysis of deep belief networks", ICML 2008, Sec. 4.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._misc import check_integer
from ._rbm import RBM, _log_sum, _off, _prob_on


class AISEstimate(NamedTuple):
    """Result of [`dynlearn.rg.ais_log_partition`][]: the estimate `mean` of ln Z with
    its standard error `stderr` (as in [`dynlearn.Estimate`][]), the effective sample size
    (Σw)²/Σw² of the importance weights, the per-chain log weights ln w (so that
    ln Z ≈ `log_z_base` + ln mean w), and the exact ln Z of the base distribution."""

    mean: jax.Array
    stderr: jax.Array
    effective_sample_size: jax.Array
    log_weights: jax.Array
    log_z_base: jax.Array


def ais_log_partition(
    rbm: RBM,
    *,
    key: jax.Array,
    num_chains: int = 256,
    num_betas: int = 1000,
    betas=None,
    base_visible_bias=None,
    gibbs_steps: int = 1,
) -> AISEstimate:
    """Estimate ln Z of an RBM, E(v, h) = −(a·v + b·h + vᵀWh), by annealed importance
    sampling (Neal 2001; Salakhutdinov & Murray 2008, Sec. 4), in the RBM's units
    (v, h ∈ {±1} for `units="spin"`, {0, 1} for `"bernoulli"`).

    The intermediate distributions are the visible marginals of the RBMs with energy
    E_β = −[(1−β) a₀·v + β(a·v + b·h + vᵀWh)], i.e. the geometric path between the joint
    distributions of the base (W = 0, b = 0, visible biases a₀) and of the target, with
    the hidden units summed analytically:

    $\\ln f_β(v) = [a + (1−β)(a₀ − a)]·v + \\sum_j φ(β(b_j + (W^T v)_j))$,

    with φ(x) = ln 2cosh x (spin) or ln(1 + eˣ) (Bernoulli). The base
    f₀(v) = 2^{n_h} e^{a₀·v} (independent units, p(v_i = +1) = σ(2a₀_i) or
    p(v_i = 1) = σ(a₀_i)) is sampled exactly and has ln Z₀ = Σ_i φ(a₀_i) + n_h ln 2
    (φ(0) = ln 2 in both conventions). Each of `num_chains` independent chains starts
    from an exact base sample v₀ and, for k = 1, …, K−1, accumulates
    ln f_{β_k}(v_{k−1}) − ln f_{β_{k−1}}(v_{k−1}) and moves v by `gibbs_steps` block Gibbs
    steps v → h → v of the RBM at β_k (which leave p_{β_k} invariant); the last term,
    k = K, needs no move. Then E[w] = Z/Z₀ exactly for any schedule, and

    $\\ln \\hat Z = \\ln Z_0 + \\ln \\frac{1}{M}\\sum_m w_m$,

    whose standard error is estimated by the delta method, std(w)/(√M · mean w). The
    estimate of ln Z is consistent but biased low by ≈ error²/2 (Jensen); the effective
    sample size (Σw)²/Σw² warns when a few chains dominate (then the error bar is
    unreliable too: anneal more slowly).

    **Arguments:**

    - `rbm`: the RBM.
    - `key`: PRNG key.
    - `num_chains`: M ≥ 2 independent annealing chains (vmapped).
    - `num_betas`: K + 1 ≥ 2 inverse temperatures, equally spaced on [0, 1] (2 means
      plain importance sampling from the base, no annealing). Ignored if `betas` is
      given.
    - `betas`: an explicit schedule, non-decreasing, from exactly 0 to exactly 1.
    - `base_visible_bias`: a₀, the base distribution's visible biases (default: the
      target's a, so that a base with W = 0 is exact and has zero variance).
    - `gibbs_steps`: block Gibbs steps per intermediate distribution.

    **Returns:** an [`dynlearn.rg.AISEstimate`][] (JAX scalars; `mean ± stderr` is ln Z).
    """
    if not isinstance(rbm, RBM):
        raise ValueError(f"rbm must be a dynlearn.rg.RBM, got {type(rbm).__name__}.")
    num_chains = check_integer("num_chains", num_chains, 2)
    gibbs_steps = check_integer("gibbs_steps", gibbs_steps, 1)
    dtype = rbm.weight.dtype
    if betas is None:
        num_betas = check_integer("num_betas", num_betas, 2)
        betas = jnp.linspace(0.0, 1.0, num_betas, dtype=dtype)
    else:
        b = np.asarray(betas, float)
        if b.ndim != 1 or b.size < 2 or not np.all(np.isfinite(b)):
            raise ValueError(
                f"betas must be a finite 1-D schedule of length >= 2, got shape "
                f"{b.shape}."
            )
        if b[0] != 0.0 or b[-1] != 1.0 or np.any(np.diff(b) < 0):
            raise ValueError(
                "betas must be non-decreasing from exactly 0 to exactly 1, got "
                f"{b[0]} … {b[-1]}; e.g. use np.linspace(0, 1, n)."
            )
        betas = jnp.asarray(b, dtype)
    if base_visible_bias is None:
        a0 = rbm.visible_bias
    else:
        a0 = jnp.asarray(base_visible_bias, dtype)
        if a0.shape != rbm.visible_bias.shape:
            raise ValueError(
                f"base_visible_bias must have shape {rbm.visible_bias.shape}, got "
                f"{a0.shape}."
            )
    return _ais(rbm, key, betas, a0, num_chains=num_chains, gibbs_steps=gibbs_steps)


@jax.jit(static_argnames=("num_chains", "gibbs_steps"))
def _ais(rbm, key, betas, a0, *, num_chains, gibbs_steps):
    # All chains advance together as a (num_chains, n) batch with one random draw per
    # intermediate distribution (rather than vmapping per-chain keys): same algorithm,
    # but XLA compiles far fewer copies of the PRNG.
    W, a, b, units = rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.units
    nv, nh = W.shape
    da = a0 - a  # zero for the default base: the visible field is then exactly a

    def field(beta):
        return a + (1 - beta) * da

    def log_ratio(b0, b1, v):
        # ln f_{b1}(v) − ln f_{b0}(v), with the v-independent and v-dependent parts
        # kept apart (for W = 0 and a₀ = a all chains then get bit-identical weights)
        x = b + v @ W
        hidden = jnp.sum(_log_sum(units, b1 * x) - _log_sum(units, b0 * x), axis=-1)
        return (b0 - b1) * (v @ da) + hidden

    def spins(u, x):
        # p(s = +1) = σ(2x) (spin) or p(s = 1) = σ(x) (Bernoulli) for the weight e^{x s}
        return jnp.where(u < _prob_on(units, x), 1.0, _off(units)).astype(x.dtype)

    def step(carry, xs):
        v, lw = carry
        b_prev, b_now, k = xs
        lw = lw + log_ratio(b_prev, b_now, v)

        def gibbs(v, u):  # v → h → v at b_now
            h = spins(u[:, :nh], b_now * (b + v @ W))
            return spins(u[:, nh:], field(b_now) + b_now * (h @ W.T)), None

        u = jr.uniform(k, (gibbs_steps, num_chains, nh + nv), W.dtype)
        return (jax.lax.scan(gibbs, v, u)[0], lw), None

    k0, krun = jr.split(key)
    v0 = spins(jr.uniform(k0, (num_chains, nv), W.dtype), a0)
    xs = (betas[:-2], betas[1:-1], jr.split(krun, betas.shape[0] - 2))
    carry = (v0, jnp.zeros(num_chains, W.dtype))
    v, lw = jax.lax.scan(step, carry, xs)[0]
    lw = lw + log_ratio(betas[-2], betas[-1], v)

    log_z0 = jnp.sum(_log_sum(units, a0)) + nh * jnp.log(jnp.asarray(2.0, W.dtype))
    w = jnp.exp(lw - jnp.max(lw))
    mean_w = jnp.mean(w)
    error = jnp.std(w, ddof=1) / (jnp.sqrt(num_chains) * mean_w)
    ess = jnp.sum(w) ** 2 / jnp.sum(w**2)
    log_z = log_z0 + jax.nn.logsumexp(lw) - jnp.log(num_chains)
    return AISEstimate(log_z, error, ess, lw, log_z0)
