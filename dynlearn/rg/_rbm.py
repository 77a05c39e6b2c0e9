"""Restricted Boltzmann machines with ±1 units, exact enumeration, contrastive
divergence, and the variational-RG quantities of Mehta & Schwab (arXiv:1410.3831).

Convention (the notes' code convention; MS14 Eq. 10 has the opposite overall sign):
E(v, h) = −(a·v + b·h + vᵀWh), p(v, h) = e^{−E}/Z_λ, v ∈ {±1}^{n_v}, h ∈ {±1}^{n_h}.
Marginal Hamiltonians: H^RBM(v) = −a·v − Σ_j ln 2cosh(b_j + (Wᵀv)_j) and
H^RBM(h) = −b·h − Σ_i ln 2cosh(a_i + (Wh)_i).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax


def all_spin_states(n: int) -> jax.Array:
    """All 2^n configurations of n ±1 spins, shape (2^n, n) (n ≤ 24)."""
    if not 0 < n <= 24:
        raise ValueError(f"Enumeration needs 1 <= n <= 24 spins, got {n}.")
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, ::-1]) & 1
    return jnp.asarray(2.0 * bits - 1.0)


def _log2cosh(x):
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2 * a))


class RBM(eqx.Module):
    """A ±1 restricted Boltzmann machine, E(v, h) = −(a·v + b·h + vᵀWh).

    Fields: `weight` W of shape (n_v, n_h), `visible_bias` a, `hidden_bias` b.
    All methods act on one configuration; `jax.vmap` them over batches.
    """

    weight: jax.Array
    visible_bias: jax.Array
    hidden_bias: jax.Array

    def __check_init__(self):
        nv, nh = self.weight.shape
        if self.visible_bias.shape != (nv,) or self.hidden_bias.shape != (nh,):
            raise ValueError(
                f"Bias shapes {self.visible_bias.shape}, {self.hidden_bias.shape} do "
                f"not match weight shape {self.weight.shape}."
            )

    @classmethod
    def random(cls, key, n_visible: int, n_hidden: int, scale: float = 0.1) -> RBM:
        """W_ij ~ N(0, scale²), zero biases."""
        return cls(
            scale * jr.normal(key, (n_visible, n_hidden)),
            jnp.zeros(n_visible),
            jnp.zeros(n_hidden),
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
        return cls(jnp.asarray(W), jnp.zeros(m), jnp.zeros(m))

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
        return cls(jnp.asarray(W), jnp.zeros(n), jnp.zeros(2 * n))

    @property
    def n_visible(self) -> int:
        return self.weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[1]

    def energy(self, v, h) -> jax.Array:
        return -(self.visible_bias @ v + self.hidden_bias @ h + v @ self.weight @ h)

    def visible_hamiltonian(self, v) -> jax.Array:
        """H^RBM(v) = −ln Σ_h e^{−E(v,h)}."""
        return -self.visible_bias @ v - jnp.sum(
            _log2cosh(self.hidden_bias + v @ self.weight)
        )

    def hidden_hamiltonian(self, h) -> jax.Array:
        """H^RBM(h) = −ln Σ_v e^{−E(v,h)}: MS14's coarse-grained Hamiltonian H^RG
        (Eq. 21)."""
        return -self.hidden_bias @ h - jnp.sum(
            _log2cosh(self.visible_bias + self.weight @ h)
        )

    def log_partition(self) -> jax.Array:
        """ln Z_λ, exact, by enumerating the smaller layer (≤ 24 units)."""
        if self.n_hidden <= self.n_visible:
            hs = all_spin_states(self.n_hidden)
            return jax.nn.logsumexp(-jax.vmap(self.hidden_hamiltonian)(hs))
        vs = all_spin_states(self.n_visible)
        return jax.nn.logsumexp(-jax.vmap(self.visible_hamiltonian)(vs))

    def hidden_mean(self, v) -> jax.Array:
        """E[h | v] = tanh(b + Wᵀv)."""
        return jnp.tanh(self.hidden_bias + v @ self.weight)

    def sample_hidden(self, key, v) -> jax.Array:
        """h ~ p(h | v): p(h_j = +1 | v) = σ(2(b_j + (Wᵀv)_j))."""
        p = jax.nn.sigmoid(2 * (self.hidden_bias + v @ self.weight))
        return jnp.where(jr.uniform(key, p.shape) < p, 1.0, -1.0)

    def sample_visible(self, key, h) -> jax.Array:
        """v ~ p(v | h)."""
        p = jax.nn.sigmoid(2 * (self.visible_bias + self.weight @ h))
        return jnp.where(jr.uniform(key, p.shape) < p, 1.0, -1.0)

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
    `all_spin_states(n_visible)` (normalised log-probabilities)."""
    vs = all_spin_states(rbm.n_visible)
    log_q = -jax.vmap(rbm.visible_hamiltonian)(vs) - rbm.log_partition()
    p = jnp.exp(log_p)
    return jnp.sum(p * (log_p - log_q))


def cd_gradient(rbm: RBM, batch, negatives) -> RBM:
    """Contrastive-divergence estimate of ∇_λ NLL (a pytree like `rbm`):
    ⟨∂E/∂λ⟩_data − ⟨∂E/∂λ⟩_model, with the data phase using E[h|v] exactly and the
    model phase estimated from `negatives` (visible samples from Gibbs chains; CD-k
    starts them at the batch, persistent CD keeps them between steps)."""

    def stats(v):
        # ⟨v hᵀ⟩, ⟨v⟩, ⟨h⟩ over the batch as one matrix product (no per-sample
        # outer products: O(n_v n_h) memory, not O(B n_v n_h)).
        h = jax.vmap(rbm.hidden_mean)(v)
        return RBM(v.T @ h / v.shape[0], jnp.mean(v, 0), jnp.mean(h, 0))

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
    """Train an RBM on ±1 `data` (shape (N, n_v)) by `method`:

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
    if not isinstance(data, jax.core.Tracer) and not bool(jnp.all(jnp.abs(data) == 1)):
        raise ValueError(
            "data must be ±1 spins (this RBM's unit convention); 0/1 data convert "
            "with 2 * x - 1."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
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
        return RBM(l2 * W + l1 * jnp.sign(W), 0 * r.visible_bias, 0 * r.hidden_bias)

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
    constant absorbed in E)."""
    return data_hamiltonian(v) - rbm.visible_hamiltonian(v)


def free_energy_gap(rbm: RBM, data_hamiltonian: Callable) -> jax.Array:
    """ΔF = F^h_λ − F^v = ln Z − ln Z_λ (MS14 Eq. 8; with Eq. 18, F^h = −ln Z_λ).
    Only a normalisation mismatch: ⟨Tr_h e^T⟩_P = e^{−ΔF} (see the notes' errata)."""
    vs = all_spin_states(rbm.n_visible)
    log_z = jax.nn.logsumexp(-jax.vmap(data_hamiltonian)(vs))
    return log_z - rbm.log_partition()


def walsh_coefficients(fn: Callable, n: int, subsets) -> jax.Array:
    """c_S = 2^{−n} Σ_h f(h) Π_{j∈S} h_j for each index tuple S in `subsets`: the
    couplings of f written as Σ_S c_S Π_{j∈S} h_j (a coarse Hamiltonian's couplings)."""
    hs = all_spin_states(n)
    f = jax.vmap(fn)(hs)
    return jnp.stack([jnp.mean(f * jnp.prod(hs[:, list(S)], axis=1)) for S in subsets])
