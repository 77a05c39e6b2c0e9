"""Stability regions of the residual schemes with the layer-Jacobian spectra h·λ on top.

A depth-N network x_{n+1} = Φ_h(x_n) is stable (small input perturbations neither
explode nor die out) when every h·λ of the layer Jacobian ∂f/∂x lies in the scheme's
stability region {z : max|ζ(z)| ≤ 1} (Haber & Ruthotto 2017, arXiv:1705.03341;
Chang et al. 2018). Regions are computed from `scheme.amplification(z)` (checked in the
tests against the spectral radius of the implemented step): the Euler disk |1 + z| ≤ 1,
the larger Heun and RK4 regions, and the segment z ∈ (−i, i) of the midpoint network
([−2i, 2i] for the Hamiltonian/Verlet network).

Spectra shown (random weights, N layers on [0, T]): a generic tanh layer σ(Kx + b)
(eigenvalues with positive real part: unstable for every scheme), the antisymmetric
layer σ((K − Kᵀ)x + b) (on the imaginary axis: outside the Euler disk) and with damping
γ (pulled into the disk when h(γ² + ω²) ≤ 2γ), and Chang et al.'s Hamiltonian layer
(purely imaginary, inside the Verlet segment). Last panel: the largest per-layer
amplification vs depth.
"""

from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import dynlearn as dl
from dynlearn import plotting, resnet as rn


CONFIG = {
    "seed": 0,
    "dim": 16,
    "depth": 32,
    "T": 8.0,
    "damping": 0.5,
    "sigma_w": 1.0,
    "grid": 401,
}
QUICK = {"grid": 201}


def run(config: dict, out: Path) -> dict:
    d, N, T = config["dim"], config["depth"], config["T"]
    k1, k2, k3, k4, kx = jr.split(jr.key(config["seed"]), 5)
    sw = config["sigma_w"]
    nets = {
        "tanh layer σ(Kx+b)": rn.ResidualField.init(
            lambda k: dl.MLP(d, d, 1, 0, final_activation="tanh", sigma_w=sw, key=k),
            N,
            T=T,
            key=k1,
        ),
        "antisymmetric σ((K−Kᵀ)x+b)": rn.ResidualField.init(
            lambda k: rn.AntisymmetricLayer(d, sigma_w=sw, key=k), N, T=T, key=k2
        ),
        f"antisymmetric, damping γ={config['damping']:g}": rn.ResidualField.init(
            lambda k: rn.AntisymmetricLayer(
                d, damping=config["damping"], sigma_w=sw, key=k
            ),
            N,
            T=T,
            key=k2,
        ),
        "Hamiltonian Kᵀσ(K·)": rn.ResidualField.init(
            lambda k: rn.HamiltonianLayer(d, d, sigma_w=sw, key=k), N, T=T, key=k4
        ),
    }
    x0 = jr.normal(kx, (d,))
    spectra = {}
    for name, field in nets.items():
        scheme = "hamiltonian" if name.startswith("Hamiltonian") else "euler"
        spectra[name] = np.asarray(rn.jacobian_spectrum(field, x0, scheme, N)[1])

    g = config["grid"]
    re = np.linspace(-3.2, 1.0, g)
    im = np.linspace(-3.2, 3.2, g)
    Z = re[None, :] + 1j * im[:, None]
    fig, axes = plotting.figure(3, width=4.9, height=4.6)
    region_schemes = {
        "Euler (ResNet)": rn.Euler(),
        "Heun": rn.Heun(),
        "RK4": rn.RK4(),
    }
    markers = "os^D"
    metrics: dict = {"max_amplification": {}, "max_abs_real_hlambda": {}}

    ax = axes[0, 0]
    for i, (name, scheme) in enumerate(region_schemes.items()):
        amp = np.asarray(scheme.amplification(jnp.asarray(Z)))
        ax.contour(re, im, amp, levels=[1.0], colors=[plotting.PALETTE[4 + i]])
        ax.plot([], [], color=plotting.PALETTE[4 + i], label=f"{name} region")
    ax.contourf(
        re,
        im,
        np.asarray(rn.Euler().amplification(jnp.asarray(Z))),
        levels=[0, 1],
        colors=[plotting.PALETTE[4]],
        alpha=0.15,
    )
    for i, name in enumerate(list(spectra)[:3]):
        z = spectra[name].ravel()
        ax.scatter(
            z.real,
            z.imag,
            s=9,
            marker=markers[i],
            color=plotting.PALETTE[i],
            label=name,
            alpha=0.7,
        )
    ax.axhline(0, color="0.5", lw=0.6)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set(
        xlabel="Re hλ",
        ylabel="Im hλ",
        title=f"one-step schemes, h = {T / N:g}",
        aspect="equal",
        xlim=(-2.3, 0.7),
        ylim=(-1.9, 1.9),
    )
    ax.legend(fontsize=6.5, loc="upper left", framealpha=0.8, frameon=True)

    ax = axes[0, 1]
    seg = {"Midpoint: (−i, i)": 1.0, "Hamiltonian/Verlet: [−2i, 2i]": 2.0}
    for i, (label, r) in enumerate(seg.items()):
        ax.plot(
            [0, 0],
            [-r, r],
            lw=10 - 5 * i,
            alpha=0.35,
            color=plotting.PALETTE[5 + i],
            solid_capstyle="butt",
            label=label,
        )
    name = "Hamiltonian Kᵀσ(K·)"
    z = spectra[name].ravel()
    ax.scatter(z.real, z.imag, s=12, marker="D", color=plotting.PALETTE[3], label=name)
    name = "antisymmetric σ((K−Kᵀ)x+b)"
    z = spectra[name].ravel()
    ax.scatter(
        z.real,
        z.imag,
        s=9,
        marker="s",
        color=plotting.PALETTE[1],
        alpha=0.6,
        label=name,
    )
    ax.set(
        xlabel="Re hλ",
        ylabel="Im hλ",
        title="reversible schemes (regions on the imaginary axis)",
        xlim=(-1.6, 1.6),
        ylim=(im[0], im[-1]),
        aspect="equal",
    )
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[0, 2]
    for i, (name, z) in enumerate(spectra.items()):
        scheme = rn.Hamiltonian() if name.startswith("Hamiltonian") else rn.Euler()
        amp = np.asarray(scheme.amplification(jnp.asarray(z))).max(axis=1)
        ts = (np.arange(N) + 0.5) * T / N
        ax.plot(
            ts,
            amp,
            marker=markers[i],
            ms=3.5,
            color=plotting.PALETTE[i],
            label=f"{name} ({scheme.name})",
        )
        metrics["max_amplification"][name] = float(amp.max())
        metrics["max_abs_real_hlambda"][name] = float(np.abs(z.real).max())
    ax.axhline(1.0, color="k", lw=1, ls=":")
    ax.set(
        xlabel="depth t of the layer",
        ylabel="max over eigenvalues of |ζ(hλ)|",
        title="per-layer amplification (> 1: unstable)",
    )
    ax.legend(fontsize=7)
    plotting.save(fig, out / "stability_regions.png")
    metrics["h"] = T / N
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
