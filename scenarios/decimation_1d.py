"""Exact 1D decimation vs an RBM that implements it, and 'noisy' decimation kernels.

Mehta & Schwab (arXiv:1410.3831, Fig. 2): on a periodic Ising chain the RBM with
visible = odd sites, hidden = even sites and W = K on chain bonds *is* the chain's
Boltzmann distribution, and its hidden Hamiltonian H^RBM(h) is the decimated chain with
tanh K′ = tanh²K. We read K′ off H^RBM(h) by its Walsh (Fourier) coefficients, iterate
the stack, and compare with the exact flow; the correlation length ξ = −1/ln tanh K
halves at every step.

Second panel: a 'noisy decimation' kernel p(h_j | v_2j) ∝ e^{K_d h_j v_2j} satisfies
the exact-RG trace condition Tr_h e^T = 1 for every K_d, yet only for K_d → ∞ is the
coarse Hamiltonian the nearest-neighbour chain at K′: finite K_d generates longer-range
couplings (notes §2.4). "Exact" in MS14's sense is not the same as RG-useful.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynlearn import plotting, rg


CONFIG = {
    "starts": [0.5, 1.0, 2.0],
    "steps": 5,
    "chain_length": 12,
    "noisy_K": 0.8,
    "noisy_Kd": [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
}
QUICK = {"steps": 4}
HELP = {
    "starts": "initial couplings K₀ (J/k_BT) of the decimation flows",
    "steps": "number of decimation (b = 2) RG steps per flow",
    "chain_length": "number of spins of the periodic chain (even; 2ⁿ states enumerated)",
    "noisy_K": "chain coupling K for the noisy-decimation kernels",
    "noisy_Kd": "noisy-decimation kernel strengths K_d (log axis)",
}
SMOKE = {
    "starts": [0.5, 2.0],
    "steps": 2,
    "chain_length": 8,
    "noisy_Kd": [0.5, 2.0, 8.0],
}


def _coarse_couplings(H_coarse, m):
    nn = [(j, (j + 1) % m) for j in range(m)]
    nnn = [(j, (j + 2) % m) for j in range(m)]
    c = rg.walsh_coefficients(H_coarse, m, nn + nnn + [(0, 1, 2, 3)])
    # H = −Σ K_S Π h: couplings are minus the Walsh coefficients
    return -float(c[0]), -float(c[m]), -float(c[-1]), np.asarray(c)


def run(config: dict, out: Path) -> dict:
    n = config["chain_length"]
    m = n // 2
    fig, axes = plotting.figure(3, width=4.0)
    ax_k, ax_xi, ax_n = axes[0]
    metrics: dict = {"flows": {}}
    for i, K0 in enumerate(config["starts"]):
        c = plotting.PALETTE[i]
        exact, rbm_flow = [K0], [K0]
        for _ in range(config["steps"]):
            exact.append(float(rg.decimate_chain(exact[-1])))
            r = rg.RBM.chain_decimation(n, rbm_flow[-1])
            k_nn, _, _, _ = _coarse_couplings(r.hidden_hamiltonian, m)
            rbm_flow.append(k_nn)
        steps = np.arange(len(exact))
        ax_k.semilogy(steps, exact, "-", color=c, label=f"exact, K₀ = {K0:g}")
        ax_k.semilogy(
            steps,
            rbm_flow,
            "o",
            color=c,
            ms=6,
            mfc="none",
            label="RBM stack" if i == 0 else None,
        )
        xi = np.asarray(rg.chain_correlation_length(jnp.array(rbm_flow)))
        ax_xi.semilogy(steps, xi, "o-", color=c, label=f"K₀ = {K0:g}")
        ax_xi.semilogy(steps, xi[0] * 0.5**steps, ":", color="0.4", lw=1)
        metrics["flows"][str(K0)] = {
            "exact": exact,
            "rbm": rbm_flow,
            "max_abs_diff": float(np.max(np.abs(np.array(exact) - np.array(rbm_flow)))),
            "xi": xi.tolist(),
            "xi_ratio": (xi[1:] / xi[:-1]).tolist(),
        }
    ax_k.set(
        xlabel="RG step n",
        ylabel="coupling $K_n$",
        title="decimation flow tanh K′ = tanh²K",
    )
    ax_k.legend(fontsize=9, loc="lower left")
    for ax in (ax_k, ax_xi):
        ax.set_xticks(np.arange(config["steps"] + 1))
    ax_xi.set(
        xlabel="RG step n",
        ylabel=r"correlation length $\xi_n$ (lattice units)",
        title="ξ halves at every step",
    )
    ax_xi.plot([], [], ":", color="0.4", lw=1, label="ξ₀/2ⁿ")
    ax_xi.legend(fontsize=9, loc="upper right")

    # Noisy decimation on a chain of n spins at coupling K.
    K = config["noisy_K"]
    vs = rg.all_spin_states(n)
    Hv = -K * jnp.sum(vs * jnp.roll(vs, 1, axis=1), axis=1)
    even = vs[:, 0::2]
    rows = []
    for Kd in config["noisy_Kd"]:
        log_kernel_norm = m * jnp.log(2 * jnp.cosh(Kd))

        def H_rg(h, Kd=Kd, log_kernel_norm=log_kernel_norm):
            # e^{−H^RG(h)} = Tr_v e^{T(v,h) − H(v)}, T = K_d Σ h_j v_2j − ln norm
            return -jax.nn.logsumexp(Kd * even @ h - log_kernel_norm - Hv)

        k1, k2, k4, _ = _coarse_couplings(H_rg, m)
        rows.append({"K_d": Kd, "K_nn": k1, "K_nnn": k2, "K_4": k4})
    kd = np.array([r["K_d"] for r in rows])
    ax_n.plot(kd, [r["K_nn"] for r in rows], "o-", label="nearest neighbour K₁")
    ax_n.plot(kd, [r["K_nnn"] for r in rows], "s-", label="next-nearest K₂")
    ax_n.plot(kd, [r["K_4"] for r in rows], "^-", label="4-spin K₄")
    k_prime = float(rg.decimate_chain(K))
    ax_n.axhline(
        k_prime, color="k", ls=":", lw=1.2, label=f"exact decimation K′ = {k_prime:.4f}"
    )
    ax_n.set(
        xscale="log",
        xlabel="kernel strength $K_d$",
        ylabel=r"coupling of $H^{\rm RG}(h)$",
        title=f"noisy decimation kernels at K = {K:g}",
        ylim=(-0.03 * k_prime, 1.8 * k_prime),
    )
    ax_n.set_xticks(kd, [f"{x:g}" for x in kd])
    ax_n.minorticks_off()
    ax_n.legend(fontsize=9, loc="upper left", ncol=1)
    plotting.save(fig, out / "decimation_1d.png")
    metrics["noisy_decimation"] = rows
    metrics["exact_K_prime"] = k_prime
    return metrics


def headline(metrics: dict) -> tuple[str, bool | None]:
    """The RBM stack reproduces exact decimation, and ξ halves at every step."""
    flows = metrics["flows"].values()
    diff = max(f["max_abs_diff"] for f in flows)
    ratio_err = max(abs(r - 0.5) for f in flows for r in f["xi_ratio"])
    return (
        f"RBM stack vs exact decimation: max |ΔK| = {diff:.1e} (expected < 1e-10); "
        f"ξ ratio per step 1/2 within {ratio_err:.1e} (expected < 1e-6)",
        bool(diff < 1e-10 and ratio_err < 1e-6),
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
