"""The RBM resampling flow (Iso, Shiba & Yokoo 2018) and an exact energy thermometer.

Iso, Shiba & Yokoo ("Scale-invariant feature extraction of neural network and
renormalization group flow", Phys. Rev. E 97, 053304 (2018), arXiv:1801.07172) train
one RBM on 2D Ising configurations drawn at many temperatures and iterate its two
conditionals, v⁽⁰⁾ → h⁽¹⁾ → v⁽¹⁾ → h⁽²⁾ → …, the "RBM flow". A thermometer then reads
the temperature of v⁽ⁿ⁾; they find it approaches T_c from both sides, the opposite of
an RG flow. Veiga & Vicente (arXiv:2006.10176) showed that where the flow ends depends
on the training set and need not be T_c (notes §4).

Here the flow is plain block Gibbs sampling of the RBM, so it converges to the RBM's
own visible marginal p_λ(v) whatever the start: its "fixed point" is the stationary
distribution of the learned model. The thermometer is the exact one of the model family
the data came from: the temperature whose finite-torus equilibrium energy (Kaufman
1949) equals the measured mean energy — the maximum-likelihood temperature of a set of
configurations under the Ising Boltzmann family (an exponential family in K, whose
likelihood equation is u(K) = ⟨e⟩).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.typing import ArrayLike

from ._exact import torus_log_partition
from ._rbm import RBM


def rbm_flow(rbm: RBM, key: jax.Array, v0: ArrayLike, steps: int) -> jax.Array:
    """Iterate the RBM flow v → h → v′ of Iso, Shiba & Yokoo (arXiv:1801.07172, Sec. III).

    One step draws $h \\sim p_λ(h|v)$, then $v' \\sim p_λ(v|h)$, both as **samples**
    (±1 spins), for every chain independently. With samples the step is the block
    Gibbs kernel of the RBM, whose stationary distribution is exactly the model's
    visible marginal $p_λ(v) ∝ e^{−H^{RBM}(v)}$, and every $v^{(n)}$ is a genuine spin
    configuration that an Ising thermometer can read. Replacing the visible step by
    the mean $E[v|h] = \\tanh(a + Wh)$ would give continuous "configurations", no longer
    Ising spins, and a map with no stationary distribution in general. (Veiga &
    Vicente's code samples both layers too.)

    **Arguments:**

    - `rbm`: a ±1 [`dynlearn.rg.RBM`][].
    - `key`: PRNG key.
    - `v0`: starting configurations, ±1, shape (N, n_v) (or (n_v,) for one chain).
    - `steps`: number of v → h → v′ steps, an integer ≥ 0.

    **Returns:** the configurations at every step, shape (steps + 1, N, n_v) in the
    RBM's dtype; index 0 is `v0` (for a 1-D `v0`: shape (steps + 1, n_v)).
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}.")
    v0 = jnp.asarray(v0)
    single = v0.ndim == 1
    if v0.ndim not in (1, 2) or v0.shape[-1] != rbm.n_visible:
        raise ValueError(
            f"v0 must have shape (N, {rbm.n_visible}) (one row per chain, as many "
            f"columns as the RBM has visible units), got {v0.shape}."
        )
    if not isinstance(v0, jax.core.Tracer) and not bool(jnp.all(jnp.abs(v0) == 1)):
        raise ValueError(
            "v0 must hold ±1 spins (the RBM's unit convention); convert {0,1} bits "
            "with v = 2x − 1."
        )
    v0 = v0.astype(rbm.weight.dtype)
    batch = v0[None] if single else v0
    out = batch[None] if steps == 0 else _flow(rbm, key, batch, int(steps))
    return out[:, 0] if single else out


@jax.jit(static_argnames="steps")
def _flow(rbm, key, v0, steps):
    # p(h_j = +1 | v) = σ(2(b + Wᵀv)_j), p(v_i = +1 | h) = σ(2(a + Wh)_i), as in
    # RBM.sample_hidden / sample_visible, for the whole batch at once (one uniform
    # draw per layer instead of one key per chain: much cheaper to compile).
    def step(v, k):
        kh, kv = jr.split(k)
        ph = jax.nn.sigmoid(2 * (rbm.hidden_bias + v @ rbm.weight))
        h = jnp.where(jr.uniform(kh, ph.shape, ph.dtype) < ph, 1.0, -1.0)
        pv = jax.nn.sigmoid(2 * (rbm.visible_bias + h.astype(v.dtype) @ rbm.weight.T))
        v = jnp.where(jr.uniform(kv, pv.shape, pv.dtype) < pv, 1.0, -1.0)
        v = v.astype(v0.dtype)
        return v, v

    _, vs = jax.lax.scan(step, v0, jr.split(key, steps))
    return jnp.concatenate([v0[None], vs], axis=0)


def energy_thermometer(
    L: int,
    *,
    t_min: float = 0.25,
    t_max: float = 100.0,
    outside: Literal["nan", "clip"] = "nan",
    grid_size: int = 4097,
) -> Callable[[ArrayLike], np.ndarray]:
    """A thermometer for the 2D Ising model on an L×L torus: the map e ↦ T that
    inverts the exact finite-torus energy per spin u(T) = [`dynlearn.rg.torus_energy`][]
    (K = 1/T; Kaufman 1949, via its exact ln Z).

    u(T) increases strictly from −2 (T → 0) to 0 (T → ∞), since du/dT is the specific
    heat c > 0. Given a *mean* energy per spin ē of a set of configurations, T(ē) is
    the maximum-likelihood temperature of that set under the Ising family (the
    likelihood equation of an exponential family in K is u(K) = ē). Applied to a
    single configuration it returns the temperature at which that energy is the
    average.

    **Method.** u and du/d ln T = T·c are tabulated exactly (from `jax.grad` of
    [`dynlearn.rg.torus_log_partition`][]) on `grid_size` points uniform in ln T over
    [`t_min`, `t_max`]; u(ln T) is the cubic Hermite interpolant of that table, and
    each reading solves Hermite(ln T) = e by Newton's method inside the bracketing
    grid cell. The interpolation error is O(h⁴) in the cell width h: for the default
    grid, T is exact to ~1e-10 for 0.5 ≤ T ≤ 20 (the tests demand 1e-8). The table
    costs one compilation per L (a few seconds); readings are vectorised NumPy and
    take any array shape.

    **Range.** Energies outside [u(t_min), u(t_max)] have no temperature in the
    bracket — in particular ē = −2 (all spins aligned, reached below t_min ≈ 0.25 to
    float64 precision: u + 2 ≈ 4e^{−8/T}), ē ≥ 0, or anything below −2. With
    `outside="nan"` (default) they read NaN, with `outside="clip"` they read `t_min`
    or `t_max`. Below T ≈ 0.5 the reading is ill-conditioned (u is flat to ~1e-7), so
    low-temperature readings are only as good as the energy's last digits.

    **Arguments:** `L` (the torus side, ≥ 2), `t_min`, `t_max` (0 < t_min < t_max),
    `outside`, `grid_size` (≥ 16).

    **Returns:** a function of an array of energies per spin, returning a NumPy array
    of temperatures of the same shape.
    """
    if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 2:
        raise ValueError(f"L must be an integer >= 2, got {L!r}.")
    if not (0 < t_min < t_max < np.inf):
        raise ValueError(
            f"Need 0 < t_min < t_max < inf for the temperature bracket, got "
            f"t_min = {t_min}, t_max = {t_max}."
        )
    if outside not in ("nan", "clip"):
        raise ValueError(f"outside must be 'nan' or 'clip', got {outside!r}.")
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 16:
        raise ValueError(f"grid_size must be an integer >= 16, got {grid_size!r}.")
    x = np.linspace(np.log(t_min), np.log(t_max), grid_size)
    with jax.enable_x64(True):
        u, du = (np.asarray(a, float) for a in _energy_table(jnp.asarray(x), int(L)))
    if not np.all(np.diff(u) > 0):
        raise ValueError(
            f"The tabulated u(T) is not strictly increasing on [{t_min}, {t_max}] "
            "(round-off where u is flat); raise t_min."
        )

    def thermometer(e: ArrayLike) -> np.ndarray:
        e = np.asarray(e, float)
        i = np.clip(np.searchsorted(u, e) - 1, 0, grid_size - 2)
        h = x[i + 1] - x[i]
        y0, y1, m0, m1 = u[i], u[i + 1], du[i] * h, du[i + 1] * h
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip((e - y0) / (y1 - y0), 0.0, 1.0)
            for _ in range(8):  # Newton on the cell's cubic; converges in ~3
                t2, t3 = t * t, t * t * t
                p = (
                    (2 * t3 - 3 * t2 + 1) * y0
                    + (t3 - 2 * t2 + t) * m0
                    + (3 * t2 - 2 * t3) * y1
                    + (t3 - t2) * m1
                )
                dp = (
                    (6 * t2 - 6 * t) * (y0 - y1)
                    + (3 * t2 - 4 * t + 1) * m0
                    + (3 * t2 - 2 * t) * m1
                )
                t = np.clip(t - (p - e) / dp, 0.0, 1.0)
        T = np.exp(x[i] + t * h)
        low, high = e < u[0], e > u[-1]
        if outside == "nan":
            return np.where(low | high | np.isnan(e), np.nan, T)
        return np.where(low, t_min, np.where(high, t_max, T))

    return thermometer


@jax.jit(static_argnames="L")
def _energy_table(x, L):
    """u and du/d ln T = K ∂²ln Z/∂K² / N at T = e^x, exact (one compile per L)."""

    def one(x):
        K = jnp.exp(-x)
        d1, d2 = jax.jvp(
            jax.grad(lambda k: torus_log_partition(k, L, L)), (K,), (jnp.ones_like(K),)
        )
        return -d1 / (L * L), K * d2 / (L * L)

    return jax.vmap(one)(x)
