"""Real-space coarse-graining of Ising configurations, and stacked RBMs as a learned
coarse-graining (Mehta & Schwab, arXiv:1410.3831, Sec. IV and Fig. 3).

Two ways to coarse-grain ±1 spins on an L×L torus:

- **Kadanoff block spins** (Kadanoff 1966; majority rule as in Niemeijer & van Leeuwen
  1976): one coarse spin per b×b block, the sign of the block sum; ties (possible for
  even b) broken by a fair coin. Decimation keeps one spin per block.
- **A deep belief network**: RBMs trained greedily, each on the sampled hidden spins of
  the layer below (MS14 1600 → 400 → 100 → 25 at K = 0.408). The map v → h is a
  stochastic kernel p(h|v), a normalised conditional, so Tr_h p(h|v) = 1 and it is an
  exact RG step in MS14's sense (Eq. 9) for any weights; whether it is *local* and
  *block-spin-like* is what the receptive fields and the observables measure.

Hidden units of an RBM have no position. [`dynlearn.rg.receptive_fields`][] (MS14
App. B: products of weight matrices) gives each one an image on the fine lattice;
[`dynlearn.rg.receptive_centre`][] / [`dynlearn.rg.receptive_radius`][] summarise it,
and [`dynlearn.rg.HiddenLayout`][] places the units on a coarse lattice so that the
same observables (magnetisation, nearest-neighbour correlation, energy, second-moment
correlation length) can be compared with block spins layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.typing import ArrayLike

from .._engine import AbstractStepper
from .._estimate import Estimate
from .._misc import check_integer
from .._trajectory import Trajectory
from ._ising import energy_per_spin, magnetization
from ._rbm import (
    RBM,
    ContrastiveDivergence,
    PersistentContrastiveDivergence,
    _checkpoint_step,
    train_rbm,
)


# --------------------------------------------------------------------------------------
# Input checks


def _check_lattice(configs, b: int | None = None, name: str = "configs") -> jax.Array:
    configs = jnp.asarray(configs)
    if configs.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., L, L) (spins on an L×L lattice), got "
            f"{configs.shape}."
        )
    if b is not None:
        if isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 2:
            raise ValueError(f"The block size b must be an integer >= 2, got {b!r}.")
        rows, cols = configs.shape[-2:]
        if rows % b or cols % b:
            raise ValueError(
                f"The lattice {rows}×{cols} is not divisible into {b}×{b} blocks; "
                f"choose b dividing both sides (or crop the lattice)."
            )
    if not isinstance(configs, jax.core.Tracer) and configs.size:
        x = np.asarray(configs)
        if not np.all((x == 1) | (x == -1)):
            bad = x[(x != 1) & (x != -1)].ravel()[:3]
            raise ValueError(
                f"{name} must hold Ising spins ±1, found e.g. {bad.tolist()}; convert "
                "{0,1} bits with s = 2x − 1."
            )
    return configs


def _float(x) -> jax.Array:
    """As the default float dtype (float64 under x64), for consistent promotion."""
    return jnp.asarray(x).astype(jnp.result_type(float))


# --------------------------------------------------------------------------------------
# Block-spin maps


def majority_rule(configs: ArrayLike, b: int = 2, *, key: jax.Array) -> jax.Array:
    """Majority-rule block spins: $S_B = \\operatorname{sign}\\sum_{i \\in B} s_i$ on
    each b×b block, ties ($\\sum = 0$, even b) broken by a fair coin drawn from `key`.

    Block $(p, q)$ holds the fine sites with rows $pb \\ldots pb + b - 1$ and columns
    $qb \\ldots qb + b - 1$. Equivalently the β → ∞ limit of the RBM-form conditional
    $p(S_B|s) = σ(2β S_B \\sum_{i∈B} s_i)$, a normalised kernel (exact RG in the sense
    of MS14 Eq. 9).

    **Arguments:** `key` (PRNG key for ties); `configs` of shape (..., L₁, L₂) with
    entries ±1, both sides divisible by b; `b` ≥ 2.

    **Returns:** the coarse spins, shape (..., L₁/b, L₂/b), same dtype as `configs`.

    !!! example
        `majority_rule(jnp.ones((8, 8)), key=jr.key(0))` is `jnp.ones((4, 4))`.
    """
    configs = _check_lattice(configs, b)
    return _majority(key, configs, int(b))


@jax.jit(static_argnums=2)
def _majority(key, configs, b):
    *batch, rows, cols = configs.shape
    acc = jnp.int32 if jnp.issubdtype(configs.dtype, jnp.integer) else None
    blocks = configs.reshape(*batch, rows // b, b, cols // b, b)
    sums = blocks.sum(axis=(-3, -1), dtype=acc)  # int8 spins: no overflow for big b
    coin = jnp.where(jr.bernoulli(key, 0.5, sums.shape), 1, -1)
    return jnp.where(sums == 0, coin, jnp.sign(sums)).astype(configs.dtype)


def decimate(configs: ArrayLike, b: int = 2) -> jax.Array:
    """Decimation: keep the spin at the top-left corner $(pb, qb)$ of each b×b block.

    **Arguments:** `configs` of shape (..., L₁, L₂) with entries ±1, both sides
    divisible by b; `b` ≥ 2. **Returns:** shape (..., L₁/b, L₂/b).
    """
    configs = _check_lattice(configs, b)
    return configs[..., ::b, ::b]


# --------------------------------------------------------------------------------------
# Observables of (coarse) configurations


class LatticeObservables(NamedTuple):
    """Per-configuration observables; each field has the batch shape of the input."""

    magnetization: jax.Array
    """m = (1/N) Σ_i s_i."""
    nn_correlation: jax.Array
    """⟨s_i s_{i+x̂}⟩, averaged over sites and the two lattice directions."""
    energy: jax.Array
    """e = −(1/N) Σ_<ij> s_i s_j = −2 · nn_correlation (J = 1)."""


def nearest_neighbour_correlation(configs: ArrayLike) -> jax.Array:
    """$\\tfrac12 \\langle s_i s_{i+\\hat x} + s_i s_{i+\\hat y}\\rangle_i$ on the torus,
    per configuration: shape (...,) for `configs` of shape (..., L₁, L₂)."""
    return _nn_correlation(_float(_check_lattice(configs)))


@jax.jit
def _nn_correlation(s):
    right = jnp.mean(s * jnp.roll(s, -1, axis=-1), axis=(-2, -1))
    down = jnp.mean(s * jnp.roll(s, -1, axis=-2), axis=(-2, -1))
    return 0.5 * (right + down)


def lattice_observables(configs: ArrayLike) -> LatticeObservables:
    """Magnetisation, nearest-neighbour correlation and energy per spin of each
    configuration in a batch (..., L₁, L₂) of ±1 spins on a torus.

    The energy and magnetisation are [`dynlearn.rg.energy_per_spin`][] and
    [`dynlearn.rg.magnetization`][] (vmapped), so the conventions are those of the
    samplers: H = −Σ_<ij> s_i s_j with each bond counted once.
    """
    return _observables(_float(_check_lattice(configs)))


@jax.jit
def _observables(s):
    batch, lattice = s.shape[:-2], s.shape[-2:]
    flat = s.reshape((-1,) + lattice)
    e = jax.vmap(energy_per_spin)(flat).reshape(batch)
    m = jax.vmap(magnetization)(flat).reshape(batch)
    return LatticeObservables(m, _nn_correlation(s), e)


def structure_factors(configs: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """$S(0)$ and $S(k_{\\min})$ of each configuration, $S(k) = |\\sum_x s_x
    e^{-ik\\cdot x}|^2 / N$, with $S(k_{\\min}) = \\tfrac12[S(2π/L, 0) + S(0, 2π/L)]$
    (averaged over the two smallest non-zero momenta of the L×L torus).

    $\\langle S(0)\\rangle = χ = N\\langle m^2\\rangle$ (no subtraction: at zero field
    ⟨m⟩ = 0 on a finite torus). Shapes (...,) each, for `configs` (..., L, L).
    """
    s = _float(_check_lattice(configs))
    rows, cols = s.shape[-2:]
    if rows != cols:
        raise ValueError(f"Structure factors need a square lattice, got {rows}×{cols}.")
    return _structure_factors(s)


@jax.jit
def _structure_factors(s):
    L = s.shape[-1]
    phase = jnp.exp(-2j * jnp.pi * jnp.arange(L) / L)
    n = L * L
    s0 = jnp.sum(s, axis=(-2, -1)) ** 2 / n
    sx = jnp.abs(jnp.sum(s, axis=-2) @ phase) ** 2 / n  # k along the column index
    sy = jnp.abs(jnp.sum(s, axis=-1) @ phase) ** 2 / n  # k along the row index
    return s0, 0.5 * (sx + sy)


def _xi_from_moments(chi, f, L):
    ratio = chi / f - 1.0
    safe = jnp.where(ratio > 0, ratio, 1.0)
    return jnp.where(ratio > 0, jnp.sqrt(safe), jnp.nan) / (2 * jnp.sin(jnp.pi / L))


def second_moment_correlation_length(configs: ArrayLike) -> jax.Array:
    """Second-moment correlation length of an ensemble of L×L configurations
    (Cooper, Freedman & Preston, Nucl. Phys. B 210, 210 (1982)):

    $ξ_2 = \\frac{1}{2\\sin(π/L)} \\sqrt{\\frac{χ}{F} - 1}$, $χ = \\langle S(0)\\rangle$,
    $F = \\langle S(k_{\\min})\\rangle$ (see [`dynlearn.rg.structure_factors`][]),

    the averages taken over *all* leading axes of `configs` (shape (..., L, L)). In
    lattice units of the lattice given. For a free-field (Ornstein–Zernike) propagator
    $1/(\\hat k^2 + ξ^{-2})$ it is exactly ξ; for the 2D Ising model it is within a few
    per cent of the exponential correlation length. NaN when χ ≤ F (no resolvable
    correlation, e.g. independent spins at small sample size).
    """
    s0, f = structure_factors(configs)
    return _xi_from_moments(jnp.mean(s0), jnp.mean(f), jnp.shape(configs)[-1])


def correlation_length_estimate(
    configs: ArrayLike, *, num_groups: int | None = None
) -> Estimate:
    """ξ₂ ([`dynlearn.rg.second_moment_correlation_length`][]) with a jackknife error
    bar over independent groups (chains, or batches of one long run).

    **Arguments:** `configs` of shape (groups, samples, L, L): groups are independent
    (e.g. Markov chains; the spread between groups accounts for autocorrelation within
    a group); or shape (N, L, L) together with `num_groups`, splitting the N samples
    into that many contiguous batches (N divisible by `num_groups`).

    **Returns:** `Estimate(ξ₂ of all samples, jackknife standard error)`; the error is
    NaN when a leave-one-out ξ₂ is not defined.
    """
    configs = _check_lattice(configs)
    if num_groups is not None:
        if configs.ndim != 3:
            raise ValueError(
                "num_groups splits a flat batch: configs must have shape (N, L, L), "
                f"got {configs.shape}."
            )
        if num_groups < 2 or configs.shape[0] % num_groups:
            raise ValueError(
                f"num_groups = {num_groups} must be >= 2 and divide N = "
                f"{configs.shape[0]}."
            )
        configs = configs.reshape((num_groups, -1) + configs.shape[1:])
    if configs.ndim != 4 or configs.shape[0] < 2:
        raise ValueError(
            "configs must have shape (groups >= 2, samples, L, L), or (N, L, L) with "
            f"num_groups; got {configs.shape}."
        )
    L = configs.shape[-1]
    s0, f = structure_factors(configs)
    s0 = np.asarray(s0, float).mean(axis=1)
    f = np.asarray(f, float).mean(axis=1)
    g = len(s0)
    xi = float(_xi_from_moments(s0.mean(), f.mean(), L))
    loo_s0 = (s0.sum() - s0) / (g - 1)
    loo_f = (f.sum() - f) / (g - 1)
    jack = np.asarray(_xi_from_moments(loo_s0, loo_f, L))
    err = float(np.sqrt((g - 1) * np.mean((jack - jack.mean()) ** 2)))
    return Estimate(xi, err)


# --------------------------------------------------------------------------------------
# Stacked RBMs (a deep belief network)


def _check_stack(rbms: Sequence[RBM]) -> None:
    if len(rbms) == 0:
        raise ValueError("The RBM stack is empty; pass at least one RBM.")
    for i, (lo, hi) in enumerate(zip(rbms, rbms[1:])):
        if lo.n_hidden != hi.n_visible:
            raise ValueError(
                f"Layer {i} has {lo.n_hidden} hidden units but layer {i + 1} has "
                f"{hi.n_visible} visible units; each RBM must read the hidden layer "
                "of the one below."
            )


def train_dbn(
    data: ArrayLike,
    hidden_sizes: Sequence[int],
    *,
    key: jax.Array,
    num_steps: int | Sequence[int],
    batch_size: int,
    rule: AbstractStepper
    | Callable[[jax.Array, jax.Array], AbstractStepper]
    | None = None,
    init_scale: float = 0.1,
    save_every: int | None = None,
    resume: Sequence[Trajectory] | None = None,
    progress: bool | None = None,
) -> list[Trajectory]:
    """Greedy layer-wise training of stacked ±1 RBMs (a deep belief network; Hinton,
    Osindero & Teh 2006), the architecture of Mehta & Schwab (arXiv:1410.3831, Fig. 3:
    1600 → 400 → 100 → 25, CD-1, L1 penalty 2×10⁻⁴).

    Layer l is [`dynlearn.rg.RBM.random`][] (W ~ N(0, `init_scale`²), zero biases)
    trained by [`dynlearn.rg.train_rbm`][] on the representation of layer l − 1. That
    representation is one **sample** $h \\sim p(h|v)$ per data point, ±1 spins — an RG
    map v → h must produce spins, so the next layer sees coarse configurations (Hinton's
    code instead feeds the probabilities E[h|v]).

    **Arguments:**

    - `data`: ±1 visible configurations, shape (N, n_v).
    - `hidden_sizes`: the hidden-layer widths, bottom to top.
    - `key`: PRNG key (keyword-only).
    - `num_steps`: training steps per layer, one int or one per layer.
    - `batch_size`: the minibatch size of every layer.
    - `rule`: the training rule of every layer (default
      [`dynlearn.rg.ContrastiveDivergence`][]`()`, CD-1 with `optax.sgd(0.05)`).
      Persistent chains must live on each layer's own input, so for a
      [`dynlearn.rg.PersistentContrastiveDivergence`][] rule only its number of
      chains is used: layer l draws that many chains from its input (uniformly, with
      replacement), keeping the rule's optimiser, k and penalties. For full control
      pass a factory `rule(key, x) -> rule`, called once per layer with a fresh key
      and the layer's input x, e.g.
      `functools.partial(PersistentContrastiveDivergence.from_data, num_chains=100)`.
    - `init_scale`: standard deviation of the initial weights.
    - `save_every`: as in `train_rbm`, for every layer (default: the start and the end
      of each layer's run).
    - `resume`: the trajectories of an earlier run of the same stack, bottom first (a
      prefix of the layers is enough; loaded ones with
      [`dynlearn.Trajectory.load`][] and `like=` an RBM of the layer's shape). A
      layer whose trajectory reached its `num_steps` is kept as it is, an unfinished one
      is continued, the layers above are trained afresh: the result equals the
      uninterrupted run bit for bit.
    - `progress`: a progress meter per layer.

    **Returns:** one [`dynlearn.Trajectory`][] per layer, bottom first (see
    [`dynlearn.rg.train_rbm`][]); the trained RBM of layer l is
    `trajs[l].final_params`, with `weight` of shape (n_l, n_{l+1}).

    !!! example
        ```python
        trajs = train_dbn(v, [400, 100, 25], key=key, num_steps=2000, batch_size=100,
                          rule=ContrastiveDivergence(l1=2e-4))
        rbms = [t.final_params for t in trajs]
        ```
    """
    data = jnp.asarray(data)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (N >= 1, n_visible), got {data.shape}.")
    _check_lattice(data[:, :, None], name="data")
    sizes = list(hidden_sizes)
    if not sizes or any(
        isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1
        for n in sizes
    ):
        raise ValueError(f"hidden_sizes must be positive integers, got {hidden_sizes}.")
    sizes = [int(n) for n in sizes]
    per_layer = (
        [num_steps] * len(sizes)
        if isinstance(num_steps, int | np.integer)
        else list(num_steps)
    )
    for s in per_layer:
        check_integer("num_steps", s)
    per_layer = [int(s) for s in per_layer]
    check_integer("batch_size", batch_size)
    if rule is None:
        rule = ContrastiveDivergence()
    if not (isinstance(rule, AbstractStepper) or callable(rule)):
        raise TypeError(
            "rule must be a training rule such as dynlearn.rg.ContrastiveDivergence(), "
            f"or a factory rule(key, x) -> rule, got {rule!r}."
        )
    if not (0 <= float(init_scale) < np.inf):
        raise ValueError(f"init_scale must be finite and >= 0, got {init_scale!r}.")
    if len(per_layer) != len(sizes):
        raise ValueError(
            f"steps has {len(per_layer)} entries for {len(sizes)} layers; pass one "
            "int or one per layer."
        )
    resume = [] if resume is None else list(resume)
    if len(resume) > len(sizes):
        raise ValueError(
            f"resume holds {len(resume)} trajectories for a stack of {len(sizes)} "
            "layers."
        )
    x = _float(data)
    trajs = []
    for layer, (n_hidden, n_steps) in enumerate(zip(sizes, per_layer)):
        key, k_init, k_train, k_sample = jr.split(key, 4)
        rbm = RBM.random(k_init, x.shape[1], n_hidden, init_scale)
        rbm = jax.tree.map(lambda a: a.astype(x.dtype), rbm)
        earlier = resume[layer] if layer < len(resume) else None
        if earlier is not None and _checkpoint_step(earlier) == n_steps:
            traj = earlier  # this layer is done
        else:
            traj = train_rbm(
                rbm,
                x,
                key=k_train,
                num_steps=n_steps,
                batch_size=batch_size,
                rule=_layer_rule(rule, jr.fold_in(k_init, 1), x),
                save_every=save_every,
                resume=earlier,
                progress=progress,
            )
        trajs.append(traj)
        x = _sample_hidden(traj.final_params, k_sample, x)
    return trajs


def _layer_rule(rule, key, x) -> AbstractStepper:
    """The rule of one layer: PCD chains drawn from the layer's input `x`."""
    if isinstance(rule, PersistentContrastiveDivergence):
        chains = x[jr.randint(key, (rule.num_chains,), 0, x.shape[0])]
        return eqx.tree_at(lambda r: r.chains, rule, chains)
    if isinstance(rule, AbstractStepper):
        return rule
    return rule(key, x)


@jax.jit
def _sample_hidden(rbm, key, v):
    keys = jr.split(key, v.shape[0])
    return jax.vmap(lambda k, x: rbm.sample_hidden(x, key=k))(keys, v).astype(v.dtype)


def coarse_grain(
    rbms: Sequence[RBM], v: ArrayLike, *, key: jax.Array
) -> list[jax.Array]:
    """Map visible configurations up the stack by sampling: $h^{(1)} \\sim
    p_1(h|v)$, $h^{(2)} \\sim p_2(h|h^{(1)})$, … (the DBN's approximate posterior, the
    'aggregate posterior' coarse-graining of the notes §1.3).

    **Arguments:** the RBMs bottom first; `key`; `v` of shape (..., n_v), ±1.

    **Returns:** a list with one array per layer, shapes (..., n_1), (..., n_2), …
    """
    _check_stack(rbms)
    v = _float(v)
    if v.ndim < 1 or v.shape[-1] != rbms[0].n_visible:
        raise ValueError(
            f"v must have shape (..., {rbms[0].n_visible}) for this stack, got "
            f"{v.shape}."
        )
    _check_lattice(v[..., None], name="v")
    batch = v.shape[:-1]
    x = v.reshape(-1, v.shape[-1])
    out = []
    for rbm, k in zip(rbms, jr.split(key, len(rbms))):
        x = _sample_hidden(rbm, k, x)
        out.append(x.reshape(batch + (x.shape[-1],)))
    return out


# --------------------------------------------------------------------------------------
# Receptive fields


def receptive_fields(rbms: Sequence[RBM], L: int) -> jax.Array:
    """Effective receptive fields of the top layer of a stack (MS14 App. B):
    $r^{(1)} = W^{(1)}$, $r^{(l)} = r^{(l-1)} W^{(l)}$, the product of the weight
    matrices, one L×L image per top-layer unit.

    **Arguments:** the RBMs bottom first (pass `rbms[:l]` for layer l); `L` with
    `rbms[0].n_visible == L*L` (row-major sites).

    **Returns:** shape (n_top, L, L); image j is column j of $W^{(1)} \\cdots W^{(l)}$.
    """
    _check_stack(rbms)
    if rbms[0].n_visible != L * L:
        raise ValueError(
            f"The bottom RBM has {rbms[0].n_visible} visible units, not L² = {L * L}."
        )
    r = rbms[0].weight
    for rbm in rbms[1:]:
        r = r @ rbm.weight
    return r.T.reshape(-1, L, L)


def receptive_centre(images: ArrayLike, power: float = 1.0) -> jax.Array:
    """Centre of each image on the torus, by circular means with weights
    $w = |r|^{p}$ (p = `power`), per axis:

    $c_x = \\frac{L}{2π} \\arg \\sum_x w_x e^{2πi x/L}$.

    **Arguments:** `images` of shape (..., L₁, L₂); `power` p > 0. **Returns:** shape
    (..., 2), the (row, column) centres in [0, L). A weight spread uniformly around an
    axis has no circular mean; the centre is then 0 along that axis.
    """
    w = _weights(images, power)
    return _centre(w)


def _weights(images, power):
    w = _float(images)
    if w.ndim < 2:
        raise ValueError(f"images must have shape (..., L1, L2), got {w.shape}.")
    if not power > 0:
        raise ValueError(f"power must be positive, got {power!r}.")
    return jnp.abs(w) ** power


@jax.jit
def _centre(w):
    rows, cols = w.shape[-2:]
    out = []
    for axis, n in ((-2, rows), (-1, cols)):
        marginal = jnp.sum(w, axis=-1 if axis == -2 else -2)
        theta = 2 * jnp.pi * jnp.arange(n) / n
        z = marginal @ jnp.exp(1j * theta)
        out.append(jnp.mod(jnp.angle(z) * n / (2 * jnp.pi), n))
    return jnp.stack(out, axis=-1)


def receptive_radius(images: ArrayLike, power: float = 1.0) -> jax.Array:
    """RMS radius of each receptive field on the torus (notes §3, metric 1):

    $R = \\sqrt{\\sum_x w_x\\, d(x, c)^2 / \\sum_x w_x}$, $w = |r|^{p}$,

    with c the circular-mean centre ([`dynlearn.rg.receptive_centre`][], same
    weights) and d the periodic (minimum-image) distance. p = 1 (default) is the
    |weight|-weighted radius of the notes; a diffuse background of small weights far
    from the centre inflates it, and p = 2 (weights r², the field's "energy")
    emphasises the core. A uniform s×s block has $R = \\sqrt{(s^2-1)/6}$ for any p; an
    isotropic Gaussian blob $e^{-|x|^2/2σ^2}$ (σ ≪ L) has $R = \\sqrt{2/p}\\, σ$. A
    field spread uniformly over an L×L torus has $R ≈ L/\\sqrt 6$.

    **Arguments:** `images` of shape (..., L₁, L₂); `power` p > 0. **Returns:** shape
    (...,).
    """
    return _radius(_weights(images, power))


@jax.jit
def _radius(w):
    centre = _centre(w)
    rows, cols = w.shape[-2:]

    def sq_offset(n, c):
        d = jnp.arange(n) - c[..., None]
        return (jnp.mod(d + n / 2, n) - n / 2) ** 2

    dr = sq_offset(rows, centre[..., 0])[..., :, None]
    dc = sq_offset(cols, centre[..., 1])[..., None, :]
    total = jnp.sum(w, axis=(-2, -1))
    return jnp.sqrt(jnp.sum(w * (dr + dc), axis=(-2, -1)) / total)


def locality_index(
    images: ArrayLike, mass: float = 0.9, power: float = 1.0
) -> jax.Array:
    """Locality index of each receptive field (notes §3, metric 1): the fraction of the
    lattice covered by the smallest disc, around the field's centre, that holds a
    fraction `mass` of its total weight $w = |r|^{p}$.

    With c the circular-mean centre ([`dynlearn.rg.receptive_centre`][], same
    weights) and d the periodic distance to it, the disc radius is the smallest
    ρ = d(x, c) with $\\sum_{d(y,c) ≤ ρ} w_y ≥ \\text{mass} \\sum_y w_y$ (all sites at
    one distance enter together), and the index is #{x : d(x, c) ≤ ρ}/N. A single
    site gives 1/N, an s×s block about s²/N, a field spread over the whole torus about
    `mass` (slightly more on a discrete lattice). p = 1 (default) is the notes'
    |weight| mass, in which a faint background spread over many sites can outweigh a
    strong local core; p = 2 (the field's "energy") weighs the core.

    **Arguments:** `images` of shape (..., L₁, L₂); `mass` in (0, 1]; `power` p > 0.
    **Returns:** shape (...,).
    """
    w = _weights(images, power)
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}.")
    return _locality(w, jnp.asarray(mass, w.dtype))


@jax.jit
def _locality(w, mass):
    rows, cols = w.shape[-2:]
    centre = _centre(w)

    def offset(n, c):
        d = jnp.arange(n) - c[..., None]
        return jnp.mod(d + n / 2, n) - n / 2

    dr = offset(rows, centre[..., 0])[..., :, None]
    dc = offset(cols, centre[..., 1])[..., None, :]
    batch = w.shape[:-2]
    d2 = (dr**2 + dc**2).reshape(batch + (rows * cols,))
    w = w.reshape(batch + (rows * cols,))

    def one(d2, w):
        order = jnp.argsort(d2)
        d_sorted, cum = d2[order], jnp.cumsum(w[order])
        # mass inside the closed disc through each site: up to the last site at the
        # same distance (distances within 1e-9 count as equal)
        last = jnp.searchsorted(d_sorted, d_sorted + 1e-9, side="right") - 1
        inside = cum[last] >= mass * cum[-1] * (1 - 1e-12)
        rho2 = jnp.min(jnp.where(inside, d_sorted, jnp.inf))
        return jnp.sum(d_sorted <= rho2 + 1e-9) / d2.shape[-1]

    f = one
    for _ in batch:
        f = jax.vmap(f)
    return f(d2, w)


def fitted_radius(images: ArrayLike, num_widths: int = 64) -> jax.Array:
    """Radius of each receptive field from a least-squares fit of a periodic Gaussian
    blob on a constant background, $r(x) ≈ A\\, e^{-d(x,c)^2/2σ^2} + B$.

    The centre c is [`dynlearn.rg.receptive_centre`][] with weights r²; for each σ on
    a log grid from 0.25 to L/2 (`num_widths` points) the amplitudes (A, B) are solved
    in closed form, the σ with the smallest residual is refined by a parabola in ln σ,
    and the blob's RMS radius $\\sqrt 2\\, σ$ is returned (same scale as
    [`dynlearn.rg.receptive_radius`][] for a Gaussian with weights |r|). Unlike the
    RMS radius, it is insensitive to a diffuse low-amplitude background spread over
    the lattice, which dominates weighted moments of learned fields on a large torus.

    **Arguments:** `images` of shape (n, L₁, L₂). **Returns:** shape (n,).
    """
    r = _float(images)
    if r.ndim != 3:
        raise ValueError(f"images must have shape (n, L1, L2), got {r.shape}.")
    if num_widths < 3:
        raise ValueError(f"num_widths must be >= 3, got {num_widths}.")
    return _fit_radius(r, int(num_widths))


@jax.jit(static_argnums=1)
def _fit_radius(r, num_widths):
    rows, cols = r.shape[-2:]
    centres = _centre(r**2)
    u = jnp.linspace(jnp.log(0.25), jnp.log(min(rows, cols) / 2), num_widths)
    sig2 = jnp.exp(2 * u)

    def one(args):
        img, c = args

        def sq_offset(n, c):
            d = jnp.arange(n) - c
            return (jnp.mod(d + n / 2, n) - n / 2) ** 2

        d2 = sq_offset(rows, c[0])[:, None] + sq_offset(cols, c[1])[None, :]
        g = jnp.exp(-d2[None] / (2 * sig2[:, None, None]))  # (S, L1, L2)
        n = rows * cols
        sg, sgg = g.sum((1, 2)), (g * g).sum((1, 2))
        srg, sr, srr = (g * img).sum((1, 2)), img.sum(), (img * img).sum()
        det = sgg * n - sg**2
        a = (n * srg - sg * sr) / det
        b = (sgg * sr - sg * srg) / det
        res = srr - a * srg - b * sr
        k = jnp.clip(jnp.argmin(res), 1, num_widths - 2)
        lo, mid, hi = res[k - 1], res[k], res[k + 1]
        curv = lo - 2 * mid + hi
        h = u[1] - u[0]
        shift = jnp.where(curv > 0, 0.5 * h * (lo - hi) / curv, 0.0)
        return jnp.sqrt(2.0) * jnp.exp(u[k] + jnp.clip(shift, -h, h))

    return jax.lax.map(one, (r, centres))


class HiddenLayout(eqx.Module):
    """Positions of n = side² hidden units on a coarse side×side lattice, and their
    signs: `layout(h)` maps hidden spins (..., n) to coarse configurations
    (..., side, side), `out[..., a // side, a % side] = signs[order[a]] h[order[a]]`.

    Build it with [`dynlearn.rg.HiddenLayout.from_fields`][].
    """

    order: jax.Array
    signs: jax.Array
    side: int = eqx.field(static=True)

    def __call__(self, h: ArrayLike) -> jax.Array:
        h = jnp.asarray(h)
        if h.shape[-1] != self.side**2:
            raise ValueError(
                f"h must have shape (..., {self.side**2}) for this layout, got "
                f"{h.shape}."
            )
        out = (h * self.signs.astype(h.dtype))[..., self.order]
        return out.reshape(h.shape[:-1] + (self.side, self.side))

    @classmethod
    def from_fields(cls, fields: ArrayLike, power: float = 2.0) -> HiddenLayout:
        """Place each hidden unit on the coarse site nearest its receptive-field centre.

        `fields`: (n, L, L) receptive fields ([`dynlearn.rg.receptive_fields`][]) with
        n = side² and side dividing L; centres from
        [`dynlearn.rg.receptive_centre`][] with weights |r|^`power`. Coarse site (p, q) sits at the centre of the
        fine b×b block (b = L/side) that majority rule maps to it, i.e. at
        ((p + ½)b − ½, (q + ½)b − ½). The one-to-one assignment minimising the total
        squared periodic distance between unit centres and sites is found with the
        Hungarian algorithm (`scipy.optimize.linear_sum_assignment`).

        Signs fix the gauge h_j → −h_j, W_{·j} → −W_{·j} (which leaves an RBM with
        b_j → −b_j unchanged): unit j is flipped if its field sums to a negative
        number, so every placed unit responds like a block spin to a positive
        magnetisation.
        """
        fields = np.asarray(fields, float)
        if fields.ndim != 3 or fields.shape[1] != fields.shape[2]:
            raise ValueError(f"fields must have shape (n, L, L), got {fields.shape}.")
        n, L = fields.shape[0], fields.shape[1]
        side = int(round(np.sqrt(n)))
        if side * side != n or L % side:
            raise ValueError(
                f"{n} hidden units cannot tile the {L}×{L} lattice: need n = side² "
                "with side dividing L."
            )
        b = L // side
        centres = np.asarray(receptive_centre(fields, power))
        site = (np.arange(side) + 0.5) * b - 0.5
        pr, pc = np.meshgrid(site, site, indexing="ij")

        def d2(a, p):
            d = np.abs(a[:, None] - p.ravel()[None, :]) % L
            return np.minimum(d, L - d) ** 2

        cost = d2(centres[:, 0], pr) + d2(centres[:, 1], pc)  # (unit, site)
        import scipy.optimize  # only here: keeps `import dynlearn` light

        units, sites = scipy.optimize.linear_sum_assignment(cost)
        order = np.empty(n, int)
        order[sites] = units
        signs = np.where(fields.sum(axis=(1, 2)) < 0, -1.0, 1.0)
        return cls(jnp.asarray(order), jnp.asarray(signs), side)
