"""Restricted Boltzmann machines with ±1 (spin) or 0/1 (Bernoulli) units, exact
enumeration, the pseudo-likelihood, training rules (CD-k, persistent CD, the exact
gradient) as steppers of `dynlearn.iterate`, and the variational-RG quantities of
Mehta & Schwab (arXiv:1410.3831).

Convention (the notes' code convention; MS14 Eq. 10 has the opposite overall sign):
E(v, h) = −(a·v + b·h + vᵀWh), p(v, h) = e^{−E}/Z_λ, with v ∈ S^{n_v}, h ∈ S^{n_h} and
S = {−1, +1} (`units="spin"`, the default) or S = {0, 1} (`units="bernoulli"`).
Marginal Hamiltonians: H^RBM(v) = −a·v − Σ_j φ(b_j + (Wᵀv)_j) and
H^RBM(h) = −b·h − Σ_i φ(a_i + (Wh)_i), with φ(x) = ln Σ_{s∈S} e^{xs}, i.e.
φ(x) = ln 2cosh x (spins) or ln(1 + eˣ) (Bernoulli).

The two conventions describe the same family of distributions: with s = 2v − 1 (and
t = 2h − 1), −E_spin(s, t) = −E_bernoulli(v, h) + c for the parameters of
[`dynlearn.rg.RBM.to_units`][], so ln Z changes by the constant c
([`dynlearn.rg.RBM.log_partition_offset`][]) and p(v) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._engine import AbstractStepper, iterate
from .._misc import check_integer, tree_norm
from .._trajectory import SavedState, Trajectory


_UNITS = ("spin", "bernoulli")


def _check_units(units) -> None:
    if units not in _UNITS:
        raise ValueError(
            f"units must be 'spin' (±1 units) or 'bernoulli' (0/1 units), got {units!r}."
        )


def all_spin_states(n: int, units: Literal["spin", "bernoulli"] = "spin") -> jax.Array:
    """All 2^n configurations of n units, shape (2^n, n) (n ≤ 24): ±1 spins for
    `units="spin"`, 0/1 bits for `units="bernoulli"`. Row k is the binary expansion of
    k (most significant unit first, −1 ↔ 0), so row k of the two conventions are the
    same state under s = 2v − 1."""
    _check_units(units)
    if not 0 < n <= 24:
        raise ValueError(f"Enumeration needs 1 <= n <= 24 spins, got {n}.")
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, ::-1]) & 1
    return jnp.asarray(2.0 * bits - 1.0 if units == "spin" else 1.0 * bits)


def _log2cosh(x):
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2 * a))


# Per-unit helpers for a unit with weight e^{x s}, s ∈ S (the units are static, so these
# branch in Python):
def _log_sum(units, x):
    """φ(x) = ln Σ_{s∈S} e^{x s}: ln 2cosh x (spin) or softplus x = ln(1 + eˣ)."""
    return _log2cosh(x) if units == "spin" else jax.nn.softplus(x)


def _mean(units, x):
    """E[s] = φ′(x): tanh x (spin) or σ(x) (Bernoulli)."""
    return jnp.tanh(x) if units == "spin" else jax.nn.sigmoid(x)


def _prob_on(units, x):
    """p(s = +1) = σ(2x) (spin) or p(s = 1) = σ(x) (Bernoulli)."""
    return jax.nn.sigmoid(2 * x if units == "spin" else x)


def _off(units) -> float:
    """The unit's other value: −1 (spin) or 0 (Bernoulli)."""
    return -1.0 if units == "spin" else 0.0


class RBM(eqx.Module):
    """A restricted Boltzmann machine, E(v, h) = −(a·v + b·h + vᵀWh), with ±1 or 0/1
    units.

    Fields: `weight` W of shape (n_v, n_h), `visible_bias` a, `hidden_bias` b, and the
    static `units`: `"spin"` (v, h ∈ {±1}, the default; the convention of Mehta &
    Schwab and of Ising spins) or `"bernoulli"` (v, h ∈ {0, 1}, as in Hinton's RBMs).
    Both layers use the same units. The energy is the same formula in both conventions;
    the conditionals are p(h_j = +1 | v) = σ(2x_j) (spin) or p(h_j = 1 | v) = σ(x_j)
    (Bernoulli), x = b + Wᵀv, and likewise for v given h. Convert exactly between the
    conventions with [`dynlearn.rg.RBM.to_units`][].
    The methods act on one configuration (`jax.vmap` them over batches); the
    conditionals `hidden_mean`, `visible_mean`, `sample_hidden` and `sample_visible`
    also take a batch (..., n) directly, one uniform draw for the whole batch.
    """

    weight: jax.Array
    visible_bias: jax.Array
    hidden_bias: jax.Array
    units: Literal["spin", "bernoulli"] = eqx.field(static=True, default="spin")

    def __check_init__(self):
        _check_units(self.units)
        nv, nh = self.weight.shape
        if self.visible_bias.shape != (nv,) or self.hidden_bias.shape != (nh,):
            raise ValueError(
                f"Bias shapes {self.visible_bias.shape}, {self.hidden_bias.shape} do "
                f"not match weight shape {self.weight.shape}."
            )

    @classmethod
    def random(
        cls,
        key,
        n_visible: int,
        n_hidden: int,
        scale: float = 0.1,
        units: Literal["spin", "bernoulli"] = "spin",
    ) -> RBM:
        """W_ij ~ N(0, scale²), zero biases, with the given `units`."""
        return cls(
            scale * jr.normal(key, (n_visible, n_hidden)),
            jnp.zeros(n_visible),
            jnp.zeros(n_hidden),
            units,
        )

    @classmethod
    def chain_decimation(cls, n: int, K: float) -> RBM:
        """The exact b = 2 decimation of a periodic chain of n (even) spins at coupling
        K as an RBM (MS14 Fig. 2): visible = odd sites, hidden = even sites, W = K on
        chain bonds. Its joint distribution is the chain's Boltzmann distribution, and
        its hidden Hamiltonian is the decimated chain at K′ = ½ ln cosh 2K."""
        if n % 2 or n < 4:
            raise ValueError(f"n must be even and >= 4, got {n}.")
        m = n // 2
        W = np.zeros((m, m))
        for j in range(m):  # odd site 2j+1 couples to even sites 2j and 2j+2
            W[j, j] += K
            W[j, (j + 1) % m] += K
        return cls(jnp.asarray(W), jnp.zeros(m), jnp.zeros(m))  # ±1 (Ising) spins

    @classmethod
    def ising_bonds(cls, rows: int, cols: int, K: float) -> RBM:
        """The 2D Ising model on a `rows × cols` torus at coupling K ≥ 0 as an RBM with
        one hidden unit per nearest-neighbour bond (the notes' §2.1).

        Hidden unit (i, j) couples the bond's two spins with weight
        w = ½ arccosh(e^{2K}); biases are zero. Since
        Σ_{h=±1} e^{w h (v_i + v_j)} = 2cosh(w(v_i + v_j)) = 2 e^{K} e^{K v_i v_j}
        (cosh 2w = e^{2K}), the visible marginal is exactly the Ising Boltzmann
        distribution: H^RBM(v) = −K Σ_<ij> v_i v_j − N_b (ln 2 + K), and
        ln Z_RBM = ln Z_Ising(K) + N_b (ln 2 + K) with N_b = 2·rows·cols hidden units.

        Visible unit r·cols + c is site (r, c) (row-major). Hidden unit s couples site
        s to its upper neighbour (periodic), hidden unit N + s to its left neighbour, as
        `np.roll` does in [`dynlearn.rg.enumerate_torus`][]: for rows = 2 (cols = 2)
        the two vertical (horizontal) bonds of a pair of sites are both kept, so those
        pairs couple with 2K, consistently with `enumerate_torus` and
        [`dynlearn.rg.torus_log_partition`][]. A ferromagnet only: the construction
        needs K ≥ 0.
        """
        for name, n in (("rows", rows), ("cols", cols)):
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {n!r}.")
        K = float(K)
        if not np.isfinite(K) or K < 0:
            raise ValueError(
                f"ising_bonds needs a finite ferromagnetic coupling K >= 0, got {K} "
                "(a bond hidden unit can only produce e^{K v_i v_j} with K >= 0)."
            )
        n = rows * cols
        site = np.arange(n).reshape(rows, cols)
        first = np.concatenate([site.ravel(), site.ravel()])
        second = np.concatenate(
            [np.roll(site, 1, 0).ravel(), np.roll(site, 1, 1).ravel()]
        )
        # w = ½ arccosh(e^{2K}) = K + ½ ln(1 + √(1 − e^{−4K})), stable for all K ≥ 0
        w = K + 0.5 * np.log1p(np.sqrt(-np.expm1(-4.0 * K)))
        W = np.zeros((n, 2 * n))
        W[first, np.arange(2 * n)] += w
        W[second, np.arange(2 * n)] += w
        return cls(jnp.asarray(W), jnp.zeros(n), jnp.zeros(2 * n))  # ±1 spins

    @property
    def n_visible(self) -> int:
        return self.weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[1]

    def to_units(self, units: Literal["spin", "bernoulli"]) -> RBM:
        """The RBM in the other unit convention with the same joint distribution under
        s = 2v − 1, t = 2h − 1 (spin states s, t; Bernoulli states v, h).

        Substituting into −E_spin = a·s + b·t + sᵀWt gives
        −E_spin(s, t) = −E_bernoulli(v, h) + c with the Bernoulli parameters

        W′ = 4W,  a′ = 2a − 2W𝟙,  b′ = 2b − 2Wᵀ𝟙,  c = 𝟙ᵀW𝟙 − 𝟙·a − 𝟙·b,

        and inversely W = W′/4, a = a′/2 + W′𝟙/4, b = b′/2 + W′ᵀ𝟙/4. Hence
        p(v, h) and every marginal probability are unchanged, while Hamiltonians and
        ln Z shift by a constant: see [`dynlearn.rg.RBM.log_partition_offset`][].
        Returns `self` if it already has these units.
        """
        _check_units(units)
        if units == self.units:
            return self
        W, a, b = self.weight, self.visible_bias, self.hidden_bias
        if units == "bernoulli":
            return RBM(
                4 * W, 2 * a - 2 * W.sum(1), 2 * b - 2 * W.sum(0), units="bernoulli"
            )
        return RBM(W / 4, a / 2 + W.sum(1) / 4, b / 2 + W.sum(0) / 4, units="spin")

    def log_partition_offset(self, units: Literal["spin", "bernoulli"]) -> jax.Array:
        """ln Z of this RBM minus ln Z of `self.to_units(units)` (0 for the same units).

        From spin to Bernoulli it is c = Σ_ij W_ij − Σ_i a_i − Σ_j b_j (spin
        parameters); from Bernoulli to spin it is −c = Σ_ij W′_ij/4 + Σ_i a′_i/2 +
        Σ_j b′_j/2 (Bernoulli parameters). The marginal Hamiltonians shift alike: with
        `r2 = self.to_units(units)` and x′ the state x in r2's convention,
        H_self(x) = H_r2(x′) − offset, so ln p(v) = −H(v) − ln Z agrees in both
        conventions (log-likelihoods are comparable across conventions).
        """
        _check_units(units)
        if units == self.units:
            return jnp.zeros((), self.weight.dtype)
        W, a, b = self.weight, self.visible_bias, self.hidden_bias
        if self.units == "spin":
            return jnp.sum(W) - jnp.sum(a) - jnp.sum(b)
        return jnp.sum(W) / 4 + jnp.sum(a) / 2 + jnp.sum(b) / 2

    def energy(self, v, h) -> jax.Array:
        return -(self.visible_bias @ v + self.hidden_bias @ h + v @ self.weight @ h)

    def visible_hamiltonian(self, v) -> jax.Array:
        """H^RBM(v) = −ln Σ_h e^{−E(v,h)} = −a·v − Σ_j φ(b_j + (Wᵀv)_j), φ(x) =
        ln 2cosh x (spin) or ln(1 + eˣ) (Bernoulli): the free energy of v."""
        return -self.visible_bias @ v - jnp.sum(
            _log_sum(self.units, self.hidden_bias + v @ self.weight)
        )

    def hidden_hamiltonian(self, h) -> jax.Array:
        """H^RBM(h) = −ln Σ_v e^{−E(v,h)}: MS14's coarse-grained Hamiltonian H^RG
        (Eq. 21)."""
        return -self.hidden_bias @ h - jnp.sum(
            _log_sum(self.units, self.visible_bias + self.weight @ h)
        )

    def log_partition(self) -> jax.Array:
        """ln Z_λ, exact, by enumerating the smaller layer (≤ 24 units) in the RBM's
        units."""
        if self.n_hidden <= self.n_visible:
            hs = all_spin_states(self.n_hidden, self.units)
            return jax.nn.logsumexp(-jax.vmap(self.hidden_hamiltonian)(hs))
        vs = all_spin_states(self.n_visible, self.units)
        return jax.nn.logsumexp(-jax.vmap(self.visible_hamiltonian)(vs))

    def hidden_mean(self, v) -> jax.Array:
        """E[h | v]: tanh(b + Wᵀv) (spin) or σ(b + Wᵀv) (Bernoulli)."""
        return _mean(self.units, self.hidden_bias + v @ self.weight)

    def visible_mean(self, h) -> jax.Array:
        """E[v | h]: tanh(a + Wh) (spin) or σ(a + Wh) (Bernoulli)."""
        return _mean(self.units, self.visible_bias + h @ self.weight.T)

    def sample_hidden(self, v, *, key) -> jax.Array:
        """h ~ p(h | v): p(h_j = +1 | v) = σ(2x_j) (spin; else −1) or
        p(h_j = 1 | v) = σ(x_j) (Bernoulli; else 0), x = b + Wᵀv; in v's float
        dtype (uniforms drawn in the same dtype)."""
        return self._sample(key, self.hidden_bias + v @ self.weight)

    def sample_visible(self, h, *, key) -> jax.Array:
        """v ~ p(v | h), as `sample_hidden` with x = a + Wh."""
        return self._sample(key, self.visible_bias + h @ self.weight.T)

    def _sample(self, key, x):
        p = _prob_on(self.units, x)
        return jnp.where(jr.uniform(key, p.shape, p.dtype) < p, 1.0, _off(self.units))

    def gibbs(self, v, k: int = 1, *, key) -> jax.Array:
        """k steps of block Gibbs sampling v → h → v."""

        def step(v, key):
            kh, kv = jr.split(key)
            return self.sample_visible(self.sample_hidden(v, key=kh), key=kv), None

        return jax.lax.scan(step, v, jr.split(key, k))[0]


def exact_nll(rbm: RBM, data) -> jax.Array:
    """Mean negative log-likelihood −⟨ln p_λ(v)⟩_data, exact (small RBMs)."""
    return jnp.mean(jax.vmap(rbm.visible_hamiltonian)(data)) + rbm.log_partition()


def exact_kl(rbm: RBM, log_p) -> jax.Array:
    """KL(P ‖ p_λ) for a target distribution given by `log_p` over
    `all_spin_states(n_visible, rbm.units)` (normalised log-probabilities; the state
    order is the same for both unit conventions)."""
    vs = all_spin_states(rbm.n_visible, rbm.units)
    log_q = -jax.vmap(rbm.visible_hamiltonian)(vs) - rbm.log_partition()
    p = jnp.exp(log_p)
    return jnp.sum(p * (log_p - log_q))


def cd_gradient(rbm: RBM, batch, negatives) -> RBM:
    """Contrastive-divergence estimate of ∇_λ NLL (a pytree like `rbm`):
    ⟨∂E/∂λ⟩_data − ⟨∂E/∂λ⟩_model, with the data phase using E[h|v] exactly and the
    model phase estimated from `negatives` (visible samples from Gibbs chains; CD-k
    starts them at the batch, persistent CD keeps them between steps). Both are in the
    RBM's units; E[h|v] is `rbm.hidden_mean` (tanh or σ)."""

    def stats(v):
        # ⟨v hᵀ⟩, ⟨v⟩, ⟨h⟩ over the batch as one matrix product (no per-sample
        # outer products: O(n_v n_h) memory, not O(B n_v n_h)).
        h = jax.vmap(rbm.hidden_mean)(v)
        return RBM(v.T @ h / v.shape[0], jnp.mean(v, 0), jnp.mean(h, 0), rbm.units)

    return jax.tree.map(lambda p, n: -(p - n), stats(batch), stats(negatives))


# --------------------------------------------------------------------------------------
# Pseudo-likelihood


def _flip(units, v):
    """δ = v′ − v for the flip of every unit: −2v (spins) or 1 − 2v (bits)."""
    return -2.0 * v if units == "spin" else 1.0 - 2.0 * v


def _site_gaps(rbm: RBM, v) -> jax.Array:
    """H(v) − H(v⁽ⁱ⁾) for every site i of one configuration v, shape (n_v,), with
    v⁽ⁱ⁾ the configuration with unit i flipped: a_i δ_i + Σ_j [φ(x_j + δ_i W_ij) −
    φ(x_j)], x = b + Wᵀv, in O(n_v n_h)."""
    x = rbm.hidden_bias + v @ rbm.weight
    d = _flip(rbm.units, v)
    shifted = _log_sum(rbm.units, x[None, :] + d[:, None] * rbm.weight)
    return rbm.visible_bias * d + jnp.sum(shifted - _log_sum(rbm.units, x), axis=1)


# elements of the (configurations × sites × hidden units) array evaluated at once
_CHUNK_ELEMENTS = 2**22


def _pseudo_nll(rbm: RBM, data) -> jax.Array:
    """The exact mean negative pseudo-log-likelihood, no input checks."""
    per_config = jax.checkpoint(lambda r, v: jnp.sum(jax.nn.softplus(_site_gaps(r, v))))
    chunk = max(
        1, min(data.shape[0], _CHUNK_ELEMENTS // (rbm.n_visible * rbm.n_hidden))
    )
    terms = jax.lax.map(lambda v: per_config(rbm, v), data, batch_size=chunk)
    return jnp.mean(terms)


def _pseudo_nll_estimate(rbm: RBM, data, key) -> jax.Array:
    """n_v · ln(1 + e^{H(v) − H(v⁽ˢ⁾)}) at one uniform random site s per
    configuration, averaged: an unbiased estimate of `_pseudo_nll(rbm, data)` at the
    cost of the hidden activations (one matrix product) and O(n_h) per
    configuration."""
    sites = jr.randint(key, (data.shape[0],), 0, rbm.n_visible)
    x = rbm.hidden_bias + data @ rbm.weight
    d = _flip(rbm.units, jnp.take_along_axis(data, sites[:, None], axis=1)[:, 0])
    shifted = _log_sum(rbm.units, x + d[:, None] * rbm.weight[sites])
    gaps = rbm.visible_bias[sites] * d + jnp.sum(
        shifted - _log_sum(rbm.units, x), axis=1
    )
    return rbm.n_visible * jnp.mean(jax.nn.softplus(gaps))


def pseudo_nll(rbm: RBM, data, *, key: jax.Array | None = None) -> jax.Array:
    """The mean negative log pseudo-likelihood of `data` (Besag 1975), in nats per
    configuration:

    $$\\mathrm{PNLL}(λ) = -\\frac1N \\sum_{n=1}^N \\sum_{i=1}^{n_v}
    \\ln p_λ(v^n_i \\mid v^n_{−i}),$$

    summed over the visible sites i and averaged over the configurations $v^n$ (the
    rows of `data`, shape (N, n_v) or (n_v,), in the RBM's units). It is exact and
    deterministic and needs no partition function: with $v^{(i)}$ the configuration
    with unit i flipped, $p(v_i | v_{−i}) = 1/(1 + e^{H(v) − H(v^{(i)})})$, so each
    term is $\\ln(1 + e^{H(v) − H(v^{(i)})})$ with the free energy
    $H = $ [`visible_hamiltonian`][dynlearn.rg.RBM.visible_hamiltonian], and all
    n_v flips of one configuration together cost O(n_v n_h) (n_v n_h evaluations of
    φ). The sum over sites puts it on the scale of [`dynlearn.rg.exact_nll`][]: both
    are n_v ln 2 for the zero RBM and equal for independent units, and, with many
    samples from a member of the model family, both are minimised at its parameters
    (maximum pseudo-likelihood is a consistent estimator). This is the loss recorded
    by [`dynlearn.rg.train_rbm`][] for the contrastive-divergence rules. Large data
    sets are evaluated in chunks (bounded memory, also under `jax.grad`).

    With `key`, one site $s_n$ per configuration is drawn uniformly and
    $n_v \\ln(1 + e^{H(v^n) − H(v^{n,(s_n)})})$ is averaged instead: an unbiased
    estimate of the same quantity at O(n_h) per configuration beyond the hidden
    activations (the convention of scikit-learn's `BernoulliRBM.score_samples`).
    """
    data = jnp.asarray(data, rbm.weight.dtype)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or data.shape[1] != rbm.n_visible:
        raise ValueError(
            f"data must have shape (N, {rbm.n_visible}) or ({rbm.n_visible},), got "
            f"{data.shape}."
        )
    if data.shape[0] == 0:
        raise ValueError("data is empty: pseudo_nll needs at least one configuration.")
    if key is None:
        return _pseudo_nll(rbm, data)
    return _pseudo_nll_estimate(rbm, data, key)


# --------------------------------------------------------------------------------------
# Training rules: steppers of dynlearn.iterate


# one optimiser object: repeated calls with the default reuse the compiled program
_DEFAULT_OPTIMIZER = optax.sgd(0.05)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(
            f"k must be a positive integer number of Gibbs steps, got {k!r} (k = 0 "
            "would start the negative phase at the data: a zero gradient)."
        )
    return int(k)


def _check_penalty(name: str, v) -> None:
    if isinstance(v, jax.core.Tracer):
        return
    if np.ndim(v) != 0 or not (0 <= float(v) < np.inf):
        raise ValueError(
            f"The weight penalty {name} must be finite and >= 0, got {v!r} (a "
            "negative penalty rewards large weights and training diverges)."
        )


def _check_optimizer(optimizer) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation such as "
            f"optax.sgd(0.05), got {type(optimizer).__name__}."
        )


def _penalised(rbm: RBM, grad: RBM, l1, l2) -> RBM:
    """grad + ∇(l2‖W‖²/2 + l1‖W‖₁) (MS14 used L1; the biases are not penalised)."""
    W = rbm.weight
    return eqx.tree_at(
        lambda g: g.weight, grad, grad.weight + l2 * W + l1 * jnp.sign(W)
    )


def _gibbs_batch(rbm: RBM, key, v, k: int) -> jax.Array:
    """k block Gibbs steps v → h → v of a whole batch of chains (one uniform draw
    per layer and step for the batch)."""

    def step(v, key):
        kh, kv = jr.split(key)
        return rbm.sample_visible(rbm.sample_hidden(v, key=kh), key=kv).astype(
            v.dtype
        ), None

    return jax.lax.scan(step, v, jr.split(key, k))[0]


def _descend(optimizer, rbm: RBM, opt_state, grad: RBM):
    updates, opt_state = optimizer.update(grad, opt_state, rbm)
    return optax.apply_updates(rbm, updates), opt_state


class _AbstractRule(AbstractStepper):
    """Shared parts of the RBM training rules: an optax optimiser applied to a
    (penalised) estimate of ∇ NLL, one step per unit of time."""

    def __check_init__(self):  # every rule's fields, checked once for all
        _check_optimizer(self.optimizer)
        if hasattr(self, "k"):
            _check_k(self.k)
        _check_penalty("l1", self.l1)
        _check_penalty("l2", self.l2)

    def time_per_step(self):
        return 1.0


class ContrastiveDivergence(_AbstractRule):
    """CD-k (Hinton 2002) as a stepper of [`dynlearn.iterate`][]: the negatives are
    k block Gibbs steps v → h → v started at the step's minibatch, the gradient
    estimate is [`dynlearn.rg.cd_gradient`][] plus the weight penalties
    l2·‖W‖²/2 + l1·‖W‖₁ (MS14 used L1 = 2×10⁻⁴), and `optimizer` (any optax
    optimiser, default `optax.sgd(0.05)`; its state is the stepper state) applies it.

    `l1` and `l2` are traced (a new value reuses the compiled program); `k` and the
    optimiser are part of the program. One step is one unit of time, so `traj.ts`
    counts optimiser steps. `update` returns, as Φ on the batch, an unbiased
    one-site estimate of its pseudo-NLL ([`dynlearn.rg.pseudo_nll`][] with a key:
    the exact value would cost more than the step itself), and as direction norm the
    norm of the penalised gradient estimate.
    """

    optimizer: optax.GradientTransformation = eqx.field(
        static=True, default=_DEFAULT_OPTIMIZER
    )
    k: int = eqx.field(static=True, default=1)
    l1: Any = eqx.field(default=0.0, converter=jnp.asarray)
    l2: Any = eqx.field(default=0.0, converter=jnp.asarray)
    needs_key: ClassVar[bool] = True

    def init(self, params):
        return self.optimizer.init(params)

    def update(self, params, state, batch, loss, *, key):
        k_gibbs, k_value = jr.split(key)
        negatives = _gibbs_batch(params, k_gibbs, batch, self.k)
        g = _penalised(params, cd_gradient(params, batch, negatives), self.l1, self.l2)
        new, state = _descend(self.optimizer, params, state, g)
        return new, state, _pseudo_nll_estimate(params, batch, k_value), tree_norm(g)

    def describe(self):
        return f"cd-{self.k}"


class PersistentContrastiveDivergence(_AbstractRule):
    """Persistent CD (Tieleman 2008) as a stepper of [`dynlearn.iterate`][]: the
    negatives are `num_chains` Markov chains carried from step to step, each step
    advancing them by k block Gibbs steps; otherwise as
    [`dynlearn.rg.ContrastiveDivergence`][].

    `chains` holds the chains' initial states, shape (num_chains, n_v) in the RBM's
    units (draw them from the data with
    [`from_data`][dynlearn.rg.PersistentContrastiveDivergence.from_data]). The
    current chains are part of the stepper state (with the optimiser state), so a
    resumed run continues them exactly. `chains`, `l1` and `l2` are traced.
    """

    chains: Any
    optimizer: optax.GradientTransformation = eqx.field(
        static=True, default=_DEFAULT_OPTIMIZER
    )
    k: int = eqx.field(static=True, default=1)
    l1: Any = eqx.field(default=0.0, converter=jnp.asarray)
    l2: Any = eqx.field(default=0.0, converter=jnp.asarray)
    needs_key: ClassVar[bool] = True

    def __check_init__(self):
        if jnp.ndim(self.chains) != 2 or jnp.shape(self.chains)[0] < 1:
            raise ValueError(
                "chains must be the chains' initial states, shape (num_chains >= 1, "
                f"n_visible), got shape {jnp.shape(self.chains)}."
            )

    @classmethod
    def from_data(
        cls,
        key: jax.Array,
        data,
        num_chains: int,
        *,
        optimizer: optax.GradientTransformation = _DEFAULT_OPTIMIZER,
        k: int = 1,
        l1: Any = 0.0,
        l2: Any = 0.0,
    ) -> PersistentContrastiveDivergence:
        """The rule with `num_chains` chains started at rows of `data` drawn uniformly
        with replacement by `key`."""
        check_integer("num_chains", num_chains)
        data = jnp.asarray(data)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(
                f"data must have shape (N >= 1, n_visible), got {data.shape}."
            )
        chains = data[jr.randint(key, (int(num_chains),), 0, data.shape[0])]
        return cls(chains, optimizer=optimizer, k=k, l1=l1, l2=l2)

    @property
    def num_chains(self) -> int:
        return jnp.shape(self.chains)[0]

    def init(self, params):
        chains = jnp.asarray(self.chains, params.weight.dtype)
        return self.optimizer.init(params), chains

    def update(self, params, state, batch, loss, *, key):
        opt_state, chains = state
        k_gibbs, k_value = jr.split(key)
        chains = _gibbs_batch(params, k_gibbs, chains, self.k)
        g = _penalised(params, cd_gradient(params, batch, chains), self.l1, self.l2)
        new, opt_state = _descend(self.optimizer, params, opt_state, g)
        value = _pseudo_nll_estimate(params, batch, k_value)
        return new, (opt_state, chains), value, tree_norm(g)

    def describe(self):
        return f"pcd-{self.k}"


class ExactGradient(_AbstractRule):
    """The exact gradient of the mean negative log-likelihood on the minibatch,
    ∇ [`exact_nll`][dynlearn.rg.exact_nll] by enumeration of the smaller layer
    (tiny RBMs: ≤ 24 units in one layer), plus the weight penalties, applied by
    `optimizer`. Draws no random numbers of its own (the engine still draws the
    minibatches). `update` returns the exact NLL of the batch and the norm of the
    penalised gradient.
    """

    optimizer: optax.GradientTransformation = eqx.field(
        static=True, default=_DEFAULT_OPTIMIZER
    )
    l1: Any = eqx.field(default=0.0, converter=jnp.asarray)
    l2: Any = eqx.field(default=0.0, converter=jnp.asarray)
    needs_key: ClassVar[bool] = False

    def init(self, params):
        return self.optimizer.init(params)

    def update(self, params, state, batch, loss, *, key):
        value, g = jax.value_and_grad(exact_nll)(params, batch)
        g = _penalised(params, g, self.l1, self.l2)
        new, state = _descend(self.optimizer, params, state, g)
        return new, state, value, tree_norm(g)

    def describe(self):
        return "exact"


def _checkpoint_step(resume: Any) -> int:
    """The step count at the end of a run's trajectory `resume` (from memory or
    [`dynlearn.Trajectory.load`][]), read from its final state."""
    state = getattr(resume, "state", None)
    if state is None:
        raise ValueError(
            "resume: this trajectory holds no final state to resume (pass a "
            "trajectory returned by a training function, or one loaded from its "
            "checkpoint file)."
        )
    if isinstance(state, SavedState):
        step = state.leaves.get(".step")
        if step is None:
            raise ValueError("resume: this checkpoint holds no step count.")
    else:
        step = getattr(state, "step", None)
        if step is None:
            raise ValueError("resume: this trajectory's state has no step count.")
    return int(np.max(np.asarray(step)))


def _check_data(rbm: RBM, data) -> jax.Array:
    data = jnp.asarray(data, rbm.weight.dtype)  # chains carry the RBM dtype
    if data.ndim != 2 or data.shape[1] != rbm.n_visible:
        raise ValueError(
            f"data must have shape (N, {rbm.n_visible}), got {data.shape}."
        )
    _check_values(rbm, data, "data")
    if data.shape[0] == 0:
        raise ValueError("data is empty: train_rbm needs at least one configuration.")
    return data


def _check_values(rbm: RBM, x, name: str) -> None:
    if isinstance(x, jax.core.Tracer):
        return
    if rbm.units == "spin" and not bool(jnp.all(jnp.abs(x) == 1)):
        raise ValueError(
            f"{name} must be ±1 spins (this RBM's unit convention, units='spin'); 0/1 "
            "data convert with 2 * x - 1, or train rbm.to_units('bernoulli')."
        )
    if rbm.units == "bernoulli" and not bool(jnp.all((x == 0) | (x == 1))):
        raise ValueError(
            f"{name} must be 0/1 bits (this RBM's unit convention, units='bernoulli'); "
            "±1 spins s convert with (s + 1) / 2, or train rbm.to_units('spin')."
        )


def _check_rule(rule) -> AbstractStepper:
    if rule is None:
        return ContrastiveDivergence()
    if not isinstance(rule, AbstractStepper):
        raise TypeError(
            "rule must be a training rule such as dynlearn.rg.ContrastiveDivergence() "
            "(CD-k), dynlearn.rg.PersistentContrastiveDivergence.from_data(key, data, "
            "num_chains) (PCD) or dynlearn.rg.ExactGradient() (or any "
            f"dynlearn.AbstractStepper), got {rule!r}."
        )
    return rule


def _pseudo_nll_loss(rbm: RBM, data) -> jax.Array:
    return _pseudo_nll(rbm, data)


def train_rbm(
    rbm: RBM,
    data,
    *,
    key: jax.Array,
    num_steps: int,
    batch_size: int,
    rule: AbstractStepper | None = None,
    observables: Mapping[str, Any] | None = None,
    save_every: int | None = None,
    save_params: bool = True,
    save_grad_norm: bool = False,
    resume: Trajectory | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Train an RBM on `data` (shape (N, n_v)) in its units (±1 spins for
    `rbm.units == "spin"`, 0/1 bits for `"bernoulli"`) by a training `rule`, on
    [`dynlearn.iterate`][]:

    - [`dynlearn.rg.ContrastiveDivergence`][] (the default, CD-1 with
      `optax.sgd(0.05)`): negatives are k Gibbs steps from the batch (Hinton 2002);
    - [`dynlearn.rg.PersistentContrastiveDivergence`][]: persistent chains carried
      across steps in the stepper state (Tieleman 2008);
    - [`dynlearn.rg.ExactGradient`][]: the exact log-likelihood gradient
      (enumeration; tiny RBMs only);
    - or any [`dynlearn.AbstractStepper`][], e.g. [`dynlearn.Optax`][] for gradient
      descent on the pseudo-likelihood itself.

    Each step draws a minibatch of `batch_size` configurations uniformly with
    replacement, from `key` and the step index alone
    ([`dynlearn.minibatch_indices`][]).

    **Arguments:** `key` (keyword-only), `num_steps` (the step count at the end of the
    run: a resumed run continues to it), `batch_size`, `rule`, `observables`
    (`{name: fn(rbm) -> array}` or [`dynlearn.AbstractObservable`][]s, e.g.
    `{"nll": lambda r: exact_nll(r, held_out)}`), `save_every` (default: one save
    at the start and one at the end), `save_params`, `save_grad_norm`, `resume` (a
    trajectory of an earlier run of the same problem, from memory or
    [`dynlearn.Trajectory.load`][] with `like=rbm`: the run continues bit for bit,
    persistent chains and optimiser state included) and `progress` as in
    [`dynlearn.iterate`][].

    **Returns:** a [`dynlearn.Trajectory`][] at `ts` = step count: `final_params` is
    the trained RBM, `loss` is Φ on the whole data set at the saves, the mean negative
    pseudo-log-likelihood [`dynlearn.rg.pseudo_nll`][] (for `ExactGradient`: the
    exact mean NLL [`dynlearn.rg.exact_nll`][], the quantity it descends), and,
    with `save_grad_norm=True`, `observables["grad_norm"]` is ‖∇Φ‖ on all the data
    (off by default: it costs about nine evaluations of Φ per save).
    """
    data = _check_data(rbm, data)
    check_integer("num_steps", num_steps)
    check_integer("batch_size", batch_size)
    rule = _check_rule(rule)
    if isinstance(rule, PersistentContrastiveDivergence):
        chains = rule.chains
        if jnp.shape(chains)[1] != rbm.n_visible:
            raise ValueError(
                f"The PCD chains have {jnp.shape(chains)[1]} units but the RBM has "
                f"{rbm.n_visible} visible units."
            )
        _check_values(rbm, chains, "chains")
    if save_every is None:
        k0 = 0 if resume is None else _checkpoint_step(resume)
        save_every = max(num_steps - k0, 1)
    loss = exact_nll if isinstance(rule, ExactGradient) else _pseudo_nll_loss
    return iterate(
        loss,
        rbm,
        rule,
        num_steps,
        data=data,
        batch_size=batch_size,
        replacement=True,
        key=key,
        save_every=save_every,
        observables=observables,
        save_params=save_params,
        save_grad_norm=save_grad_norm,
        resume=resume,
        progress=progress,
        method=f"train_rbm[{rule.describe()}]",
    )


def trace_condition(rbm: RBM, data_hamiltonian: Callable, v) -> jax.Array:
    """ln Tr_h e^{T(v,h)} with MS14's T = −E + H(v) (Eq. 18): by Eq. 22 this is
    H(v) − H^RBM(v). The RG step is exact iff it vanishes for every v (up to a
    constant absorbed in E). MS14 use ±1 spins; the identity holds for 0/1 units too,
    with the trace over h ∈ {0, 1}^{n_h} and `v`, `data_hamiltonian` in the RBM's
    units."""
    return data_hamiltonian(v) - rbm.visible_hamiltonian(v)


def free_energy_gap(rbm: RBM, data_hamiltonian: Callable) -> jax.Array:
    """ΔF = F^h_λ − F^v = ln Z − ln Z_λ (MS14 Eq. 8; with Eq. 18, F^h = −ln Z_λ).
    Only a normalisation mismatch: ⟨Tr_h e^T⟩_P = e^{−ΔF} (see the notes' errata).
    `data_hamiltonian` takes states in the RBM's units (summed over by enumeration)."""
    vs = all_spin_states(rbm.n_visible, rbm.units)
    log_z = jax.nn.logsumexp(-jax.vmap(data_hamiltonian)(vs))
    return log_z - rbm.log_partition()


def walsh_coefficients(
    fn: Callable,
    n: int,
    subsets,
    units: Literal["spin", "bernoulli"] = "spin",
) -> jax.Array:
    """c_S = 2^{−n} Σ_h f(h) Π_{j∈S} h_j for each index tuple S in `subsets`: the
    couplings of f written as Σ_S c_S Π_{j∈S} h_j (a coarse Hamiltonian's couplings).

    The expansion is always in ±1 spins h. With `units="bernoulli"`, `fn` takes 0/1
    states (e.g. a Bernoulli RBM's `hidden_hamiltonian`) and is evaluated at
    (h + 1)/2, so c_S are the Ising couplings of the same function written in the spins
    h = 2x − 1."""
    _check_units(units)
    hs = all_spin_states(n)
    f = jax.vmap(fn)(hs if units == "spin" else (hs + 1) / 2)
    return jnp.stack([jnp.mean(f * jnp.prod(hs[:, list(S)], axis=1)) for S in subsets])
