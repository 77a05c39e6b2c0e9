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
likelihood equation is u(K) = ⟨e⟩). Iso et al.'s own thermometer, a classifier
trained on configurations labelled by their temperature, is
[`dynlearn.rg.train_thermometer`][].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax.typing import ArrayLike

from .._engine import Optax, iterate
from .._misc import check_integer
from .._network import MLP
from .._trajectory import Trajectory
from ._exact import torus_log_partition
from ._rbm import RBM, _checkpoint_step


def rbm_flow(rbm: RBM, v0: ArrayLike, num_steps: int, *, key: jax.Array) -> jax.Array:
    """Iterate the RBM flow v → h → v′ of Iso, Shiba & Yokoo (arXiv:1801.07172, Sec. III).

    One step draws $h \\sim p_λ(h|v)$, then $v' \\sim p_λ(v|h)$, both as **samples**
    (±1 spins, or 0/1 bits for a `units="bernoulli"` RBM), for every chain
    independently. With samples the step is the block
    Gibbs kernel of the RBM, whose stationary distribution is exactly the model's
    visible marginal $p_λ(v) ∝ e^{−H^{RBM}(v)}$, and every $v^{(n)}$ is a genuine spin
    configuration that an Ising thermometer can read. Replacing the visible step by
    the mean $E[v|h] = \\tanh(a + Wh)$ would give continuous "configurations", no longer
    Ising spins, and a map with no stationary distribution in general. (Veiga &
    Vicente's code samples both layers too.)

    **Arguments:**

    - `rbm`: a [`dynlearn.rg.RBM`][] (±1 spins for Ising configurations; 0/1 units
      work too).
    - `key`: PRNG key.
    - `v0`: starting configurations in the RBM's units, shape (N, n_v) (or (n_v,) for
      one chain).
    - `num_steps`: number of v → h → v′ steps, an integer ≥ 0.

    **Returns:** the configurations at every step, shape (steps + 1, N, n_v) in the
    RBM's dtype; index 0 is `v0` (for a 1-D `v0`: shape (steps + 1, n_v)).
    """
    check_integer("num_steps", num_steps, 0)
    v0 = jnp.asarray(v0)
    single = v0.ndim == 1
    if v0.ndim not in (1, 2) or v0.shape[-1] != rbm.n_visible:
        raise ValueError(
            f"v0 must have shape (N, {rbm.n_visible}) (one row per chain, as many "
            f"columns as the RBM has visible units), got {v0.shape}."
        )
    spins = rbm.units == "spin"
    if not isinstance(v0, jax.core.Tracer) and not bool(
        jnp.all(jnp.abs(v0) == 1) if spins else jnp.all((v0 == 0) | (v0 == 1))
    ):
        raise ValueError(
            "v0 must hold ±1 spins (the RBM's unit convention); convert {0,1} bits "
            "with v = 2x − 1."
            if spins
            else "v0 must hold 0/1 bits (this RBM has units='bernoulli'); convert ±1 "
            "spins with x = (s + 1) / 2."
        )
    v0 = v0.astype(rbm.weight.dtype)
    batch = v0[None] if single else v0
    out = batch[None] if num_steps == 0 else _flow(rbm, key, batch, int(num_steps))
    return out[:, 0] if single else out


@jax.jit(static_argnames="steps")
def _flow(rbm, key, v0, steps):
    # the conditionals of the whole batch at once (one uniform draw per layer instead
    # of one key per chain: much cheaper to compile)
    def step(v, k):
        kh, kv = jr.split(k)
        v = rbm.sample_visible(rbm.sample_hidden(v, key=kh), key=kv).astype(v0.dtype)
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


# --------------------------------------------------------------------------------------
# Classifier thermometer (Iso, Shiba & Yokoo 2018, Sec. III)


class ClassifierThermometer(eqx.Module):
    """A neural-network thermometer for ±1 spin configurations: a classifier over a
    fixed set of temperatures (Iso, Shiba & Yokoo, arXiv:1801.07172, Sec. III), made by
    [`dynlearn.rg.train_thermometer`][].

    The network $f$ ([`dynlearn.MLP`][], L² spins in, one logit per class out) is
    symmetrised under the global flip of the Ising model,

    $$p(c|s) = \\tfrac12\\,[\\operatorname{softmax} f(s) +
    \\operatorname{softmax} f(−s)]_c,$$

    so $p(c|s) = p(c|−s)$ exactly (to the last bit: the combination is symmetric in
    its two terms). The **reading** of a configuration is the probability-weighted
    mean temperature $\\hat T(s) = \\sum_c p(c|s)\\,T_c$: a continuous read-out that
    interpolates between the training temperatures and can never leave
    $[\\min T_c, \\max T_c]$ (the argmax class would only give the nearest training
    temperature; Iso et al. show the class probabilities themselves, see
    `probabilities`). Where the classifier is unsure, the mean is pulled towards the
    middle of the classes, so the reading is a calibrated thermometer only after
    comparison with its readings of held-out data at known T.

    Fields: `network` (the MLP, the only trained part), `classes` (the class
    temperatures $T_c$, increasing, a static tuple of floats, so that an optimiser
    over the module's arrays never moves them; `temperatures` is the same as an
    array in the network's dtype), `n_sites` (L², static).

    Calls take configurations of shape (..., L, L) or (..., L²), ±1 (any real
    values are accepted, e.g. RBM means, but the network was only trained on spins).
    """

    network: MLP
    classes: tuple[float, ...] = eqx.field(static=True)
    n_sites: int = eqx.field(static=True)

    @property
    def temperatures(self) -> jax.Array:
        """The class temperatures $T_c$ as an array in the network's dtype."""
        dtype = jax.tree.leaves(eqx.filter(self.network, eqx.is_inexact_array))[0].dtype
        return jnp.asarray(self.classes, dtype)

    def _flat(self, configurations) -> jax.Array:
        x = jnp.asarray(configurations, self.temperatures.dtype)
        n = self.n_sites
        if x.ndim >= 1 and x.shape[-1] == n:
            return x
        if x.ndim >= 2 and x.shape[-1] * x.shape[-2] == n:
            return x.reshape(x.shape[:-2] + (n,))
        raise ValueError(
            f"configurations must have shape (..., {n}) or (..., L, L) with "
            f"L² = {n} (the size the thermometer was trained on), got {x.shape}."
        )

    def log_probabilities(self, configurations: ArrayLike) -> jax.Array:
        """ln p(c|s) for every class c, shape (..., n_classes) (flip-symmetrised)."""
        x = self._flat(configurations)
        flat = x.reshape(-1, self.n_sites)
        out = _symmetric_log_probs(self.network, flat)
        return out.reshape(x.shape[:-1] + (out.shape[-1],))

    def probabilities(self, configurations: ArrayLike) -> jax.Array:
        """p(c|s), shape (..., n_classes); column c belongs to `temperatures[c]`."""
        return jnp.exp(self.log_probabilities(configurations))

    def __call__(self, configurations: ArrayLike) -> jax.Array:
        """The read temperature $\\sum_c p(c|s) T_c$ of each configuration, shape
        (...) for configurations (..., L, L) or (..., L²)."""
        return self.probabilities(configurations) @ self.temperatures


@eqx.filter_jit
def _symmetric_log_probs(net, x):
    """ln ½[softmax f(s) + softmax f(−s)] for a batch x (B, n)."""
    a = jax.nn.log_softmax(jax.vmap(net)(x), axis=-1)
    b = jax.nn.log_softmax(jax.vmap(net)(-x), axis=-1)
    return jnp.logaddexp(a, b) - jnp.log(2.0).astype(a.dtype)


def train_thermometer(
    configurations: ArrayLike,
    temperatures: ArrayLike,
    *,
    key: jax.Array,
    width: int = 64,
    depth: int = 1,
    activation: str | Callable = "relu",
    num_steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    observables: Mapping[str, Any] | None = None,
    save_every: int | None = None,
    resume: Trajectory | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Train a temperature classifier on labelled Ising configurations, the
    thermometer of Iso, Shiba & Yokoo (arXiv:1801.07172, Sec. III).

    The classes are the distinct values of `temperatures`, in increasing order. The
    network is a [`dynlearn.MLP`][] `L² → width (× depth) → n_classes`; its
    flip-symmetrised class probabilities (see [`dynlearn.rg.ClassifierThermometer`][])
    are fitted by minimising the cross-entropy $Φ = −\\langle \\ln p(c_i|s_i)\\rangle$
    over minibatches of `batch_size` configurations drawn uniformly with replacement,
    `num_steps` optimizer steps on [`dynlearn.iterate`][] with
    [`dynlearn.Optax`][]`(optimizer)`. Because the model is symmetric by
    construction, no flipped copies of the data are needed.

    **Arguments:**

    - `configurations`: ±1 spins, shape (N, L, L) or (N, L²).
    - `temperatures`: the temperature of each configuration, shape (N,), at least two
      distinct positive values.
    - `key`: PRNG key (keyword-only; network initialisation and minibatches).
    - `width`, `depth`, `activation`: the MLP's hidden width, number of hidden layers
      and activation. The default ReLU has an even part, relu(x) + relu(−x) = |x|,
      so flip-invariant features such as |m| are one layer away. An odd activation
      (tanh) with the MLP's zero initial biases makes f odd, f(−s) = −f(s), and then
      the symmetrised probabilities start exactly uniform for two classes: training
      begins at a saddle and, on 8×8 Ising data, can stay near it for the whole
      run, depending on the seed.
    - `num_steps`, `batch_size`: optimizer steps (the step count at the end of the run,
      as in [`dynlearn.iterate`][]) and minibatch size.
    - `learning_rate`: for the default optimizer `optax.adam(learning_rate)`.
    - `optimizer`: any optax optimizer (then `learning_rate` is unused).
    - `observables`, `save_every` (default: the start and the end of the run),
      `resume` (continue a run bit for bit from its trajectory, or from
      [`dynlearn.Trajectory.load`][] with `like=` a thermometer of the same shape)
      and `progress`: as in [`dynlearn.iterate`][].

    **Returns:** a [`dynlearn.Trajectory`][] at `ts` = step count, whose
    `final_params` is the trained [`dynlearn.rg.ClassifierThermometer`][] (in the
    default float dtype) and whose `loss` is the cross-entropy Φ on all N
    configurations at the saves.

    !!! example
        ```python
        th = train_thermometer(spins, T_labels, key=key, num_steps=1000).final_params
        T_read = th(spins_new)            # (N,) read temperatures
        p = th.probabilities(spins_new)   # (N, n_classes), columns th.temperatures
        ```
    """
    x = np.asarray(configurations)
    t = np.asarray(temperatures, float)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[1] != x.shape[2]):
        raise ValueError(
            "configurations must have shape (N, L, L) or (N, L²), one configuration "
            f"per row, got {x.shape}."
        )
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"temperatures must have one entry per configuration: got {t.shape} "
            f"temperatures for {x.shape[0]} configurations."
        )
    if not np.all(np.abs(x) == 1):
        raise ValueError(
            "configurations must be ±1 spins; convert {0, 1} bits with s = 2x − 1."
        )
    if not np.all(np.isfinite(t) & (t > 0)):
        raise ValueError("temperatures must be finite and positive.")
    classes, labels = np.unique(t, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"Need configurations at >= 2 distinct temperatures to train a "
            f"classifier, got only T = {classes.tolist()}."
        )
    for name, v in (
        ("num_steps", num_steps),
        ("batch_size", batch_size),
        ("width", width),
    ):
        check_integer(name, v)
    check_integer("depth", depth, 0)
    if optimizer is None and not (0 < learning_rate < np.inf):
        raise ValueError(
            f"learning_rate must be finite and > 0, got {learning_rate!r}."
        )
    dtype = jnp.asarray(1.0).dtype
    n = int(np.prod(x.shape[1:]))
    data = jnp.asarray(x.reshape(len(x), n), dtype)
    k_init, k_fit = jr.split(key)
    net = MLP(n, len(classes), width, depth, activation, key=k_init)
    th = ClassifierThermometer(net, tuple(float(c) for c in classes), n)
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    if save_every is None:
        k0 = 0 if resume is None else _checkpoint_step(resume)
        save_every = max(int(num_steps) - k0, 1)
    return iterate(
        _cross_entropy,
        th,
        Optax(optimizer),
        int(num_steps),
        data=(data, jnp.asarray(labels, jnp.int32)),
        batch_size=batch_size,
        replacement=True,
        key=k_fit,
        save_every=save_every,
        observables=observables,
        resume=resume,
        progress=progress,
        method="train_thermometer[optax]",
    )


def _cross_entropy(th: ClassifierThermometer, batch) -> jax.Array:
    """−⟨ln p(c_i|s_i)⟩ over a batch `(s, c)` of configurations and class indices."""
    x, y = batch
    logp = _symmetric_log_probs(th.network, x)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
