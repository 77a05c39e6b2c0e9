"""Restricted Boltzmann machines with ±1 (spin) or 0/1 (Bernoulli) units, exact
enumeration, contrastive divergence, and the variational-RG quantities of Mehta &
Schwab (arXiv:1410.3831).

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

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._misc import check_integer


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

    def sample_hidden(self, key, v) -> jax.Array:
        """h ~ p(h | v): p(h_j = +1 | v) = σ(2x_j) (spin; else −1) or
        p(h_j = 1 | v) = σ(x_j) (Bernoulli; else 0), x = b + Wᵀv; in v's float
        dtype (uniforms drawn in the same dtype)."""
        return self._sample(key, self.hidden_bias + v @ self.weight)

    def sample_visible(self, key, h) -> jax.Array:
        """v ~ p(v | h), as `sample_hidden` with x = a + Wh."""
        return self._sample(key, self.visible_bias + h @ self.weight.T)

    def _sample(self, key, x):
        p = _prob_on(self.units, x)
        return jnp.where(jr.uniform(key, p.shape, p.dtype) < p, 1.0, _off(self.units))

    def gibbs(self, key, v, k: int = 1) -> jax.Array:
        """k steps of block Gibbs sampling v → h → v."""

        def step(v, key):
            kh, kv = jr.split(key)
            return self.sample_visible(kv, self.sample_hidden(kh, v)), None

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


def train_rbm(
    rbm: RBM,
    data,
    key,
    *,
    steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None = None,
    method: str = "cd",
    k: int = 1,
    num_chains: int | None = None,
    l2: float = 0.0,
    l1: float = 0.0,
    monitor: Callable[[RBM], Any] | None = None,
    monitor_every: int = 100,
) -> tuple[RBM, Any]:
    """Train an RBM on `data` (shape (N, n_v)) in its units (±1 spins for
    `rbm.units == "spin"`, 0/1 bits for `"bernoulli"`) by `method`:

    - `"cd"`: CD-k (Hinton 2002): negatives are k Gibbs steps from the batch;
    - `"pcd"`: persistent CD (Tieleman 2008): `num_chains` chains carried across steps;
    - `"exact"`: the exact log-likelihood gradient (enumeration; tiny RBMs only).

    Weight penalties `l2`·‖W‖²/2 and `l1`·‖W‖₁ (MS14 used L1). Runs under `lax.scan`;
    returns the trained RBM and `monitor(rbm)` evaluated every `monitor_every` steps
    (stacked), e.g. `lambda r: exact_nll(r, data)`.
    """
    if method not in ("cd", "pcd", "exact"):
        raise ValueError(f"method must be 'cd', 'pcd' or 'exact', got {method!r}.")
    data = jnp.asarray(data, rbm.weight.dtype)  # chains carry the RBM dtype
    if data.ndim != 2 or data.shape[1] != rbm.n_visible:
        raise ValueError(
            f"data must have shape (N, {rbm.n_visible}), got {data.shape}."
        )
    if not isinstance(data, jax.core.Tracer):
        if rbm.units == "spin" and not bool(jnp.all(jnp.abs(data) == 1)):
            raise ValueError(
                "data must be ±1 spins (this RBM's unit convention, units='spin'); 0/1 "
                "data convert with 2 * x - 1, or train rbm.to_units('bernoulli')."
            )
        if rbm.units == "bernoulli" and not bool(jnp.all((data == 0) | (data == 1))):
            raise ValueError(
                "data must be 0/1 bits (this RBM's unit convention, units='bernoulli'); "
                "±1 spins s convert with (s + 1) / 2, or train rbm.to_units('spin')."
            )
    if data.shape[0] == 0:
        raise ValueError("data is empty: train_rbm needs at least one configuration.")
    check_integer("steps", steps)
    check_integer("batch_size", batch_size)
    if num_chains is not None:
        check_integer("num_chains", num_chains)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(
            f"k must be a positive integer number of Gibbs steps, got {k!r} (k = 0 "
            "would start the negative phase at the data: a zero gradient)."
        )
    for name, v in (("l2", l2), ("l1", l1)):
        if isinstance(v, jax.core.Tracer):
            continue
        if not (0 <= float(v) < np.inf):
            raise ValueError(
                f"The weight penalty {name} must be finite and >= 0, got {v!r} (a "
                "negative penalty rewards large weights and training diverges)."
            )
    check_integer("monitor_every", monitor_every)
    if monitor_every < 1 or steps % monitor_every:
        raise ValueError(
            f"steps ({steps}) must be a multiple of monitor_every ({monitor_every} "
            ">= 1); round steps to a multiple or change monitor_every."
        )
    optimizer = optax.sgd(0.05) if optimizer is None else optimizer
    n_chains = batch_size if num_chains is None else num_chains
    key, kc = jr.split(key)
    chains0 = data[jr.randint(kc, (n_chains,), 0, data.shape[0])]

    def penalty_grad(r):
        W = r.weight
        return RBM(
            l2 * W + l1 * jnp.sign(W), 0 * r.visible_bias, 0 * r.hidden_bias, r.units
        )

    def step(carry, key):
        r, opt_state, chains = carry
        kb, kg = jr.split(key)
        batch = data[jr.randint(kb, (batch_size,), 0, data.shape[0])]
        if method == "exact":
            g = jax.grad(exact_nll)(r, batch)
        else:
            start = batch if method == "cd" else chains
            keys = jr.split(kg, start.shape[0])
            chains = jax.vmap(lambda kk, v: r.gibbs(kk, v, k))(keys, start)
            g = cd_gradient(r, batch, chains)
        g = jax.tree.map(jnp.add, g, penalty_grad(r))
        updates, opt_state = optimizer.update(g, opt_state, r)
        return (optax.apply_updates(r, updates), opt_state, chains), None

    def block(carry, key):
        carry, _ = jax.lax.scan(step, carry, jr.split(key, monitor_every))
        out = monitor(carry[0]) if monitor is not None else jnp.zeros(())
        return carry, out

    @jax.jit
    def run(rbm, key):
        carry = (rbm, optimizer.init(rbm), chains0)
        carry, hist = jax.lax.scan(block, carry, jr.split(key, steps // monitor_every))
        return carry[0], hist

    return run(rbm, key)


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
