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
import matplotlib.patches
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
HELP = {
    "seed": "PRNG seed of the random layer weights and the input",
    "dim": "state dimension d of every layer",
    "depth": "number of layers N (step h = T/N)",
    "T": "depth horizon T",
    "damping": "damping γ of the damped antisymmetric layer",
    "sigma_w": "standard deviation scale of the random weights",
    "grid": "points per side of the complex grid on which regions are drawn",
}
QUICK = {"grid": 201}
SMOKE = {"grid": 61, "dim": 4, "depth": 8}

_UNSTABLE = ("tanh layer σ(Kx+b)", "antisymmetric σ((K−Kᵀ)x+b)")


def headline(metrics: dict) -> tuple[str, bool]:
    """Largest per-layer amplification: above 1 for the generic and the undamped
    antisymmetric layer under Euler, at most 1 for the Hamiltonian net under Verlet."""
    amp = metrics["max_amplification"]
    ham = next(v for k, v in amp.items() if k.startswith("Hamiltonian"))
    unstable = {k: amp[k] for k in _UNSTABLE if k in amp}
    held = all(v > 1 for v in unstable.values()) and ham <= 1 + 1e-9
    text = (
        "max per-layer |ζ(hλ)|: "
        + ", ".join(f"{k.split(' ')[0]} {v:.4f}" for k, v in unstable.items())
        + f" (expected > 1), Hamiltonian/Verlet {ham:.6f} (expected ≤ 1)"
    )
    return text, held


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
    fig, axes = plotting.figure(2, 2, width=5.2, height=4.9)
    region_schemes = {
        "Euler (ResNet)": rn.Euler(),
        "Heun": rn.Heun(),
        "RK4": rn.RK4(),
    }
    markers = "os^D"
    metrics: dict = {"max_amplification": {}, "max_abs_real_hlambda": {}}
    one_step = list(spectra)[:3]
    # the zoom window: a square around the one-step spectra, with a margin
    zs = np.concatenate([spectra[n].ravel() for n in one_step])
    r = 1.3 * float(np.max(np.abs(zs)))
    zre = np.linspace(-r, r, g)
    zim = np.linspace(-r, r, g)
    Zz = zre[None, :] + 1j * zim[:, None]

    for ax, (xs, ys, ZZ), title in (
        (axes[0, 0], (re, im, Z), f"one-step schemes, h = {T / N:g}"),
        (axes[0, 1], (zre, zim, Zz), "zoom on the spectra (box at left)"),
    ):
        for i, (name, scheme) in enumerate(region_schemes.items()):
            amp = np.asarray(scheme.amplification(jnp.asarray(ZZ)))
            ax.contour(xs, ys, amp, levels=[1.0], colors=[plotting.PALETTE[4 + i]])
            ax.plot([], [], color=plotting.PALETTE[4 + i], label=f"{name} region")
        ax.contourf(
            xs,
            ys,
            np.asarray(rn.Euler().amplification(jnp.asarray(ZZ))),
            levels=[0, 1],
            colors=[plotting.PALETTE[4]],
            alpha=0.15,
        )
        for i, name in enumerate(one_step):
            z = spectra[name].ravel()
            ax.scatter(
                z.real,
                z.imag,
                s=9 if ax is axes[0, 0] else 16,
                marker=markers[i],
                color=plotting.PALETTE[i],
                label=name,
                alpha=0.7,
            )
        ax.axhline(0, color="0.5", lw=0.6)
        ax.axvline(0, color="0.5", lw=0.6)
        ax.set(xlabel="Re hλ", ylabel="Im hλ", title=title, aspect="equal")
    axes[0, 0].set(xlim=(-3.1, 0.9), ylim=(-3.1, 3.1))
    axes[0, 0].add_patch(
        matplotlib.patches.Rectangle(
            (-r, -r), 2 * r, 2 * r, fill=False, ls="--", lw=1.0, color="k"
        )
    )
    axes[0, 1].set(xlim=(-r, r), ylim=(-r, r))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].legend(
        handles[:3], labels[:3], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1
    )
    axes[0, 1].legend(
        handles[3:], labels[3:], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1
    )

    ax = axes[1, 0]
    # The reversible regions are segments of the imaginary axis and these spectra are
    # purely imaginary, so plot Im hλ against the layer's depth with the segments as
    # horizontal bands (max |Re hλ| is in the metrics).
    t_layer = (np.arange(N) + 0.5) * T / N
    seg = {"Hamiltonian/Verlet: [−2i, 2i]": 2.0, "Midpoint: (−i, i)": 1.0}
    for i, (label, r) in enumerate(seg.items()):
        ax.axhspan(-r, r, alpha=0.18, color=plotting.PALETTE[6 - i], lw=0, label=label)
    for name, marker, color, size in (
        ("Hamiltonian Kᵀσ(K·)", "D", plotting.PALETTE[3], 14),
        ("antisymmetric σ((K−Kᵀ)x+b)", "s", plotting.PALETTE[1], 9),
    ):
        z = spectra[name]
        ax.scatter(
            np.repeat(t_layer, z.shape[1]),
            z.imag.ravel(),
            s=size,
            marker=marker,
            color=color,
            alpha=0.7,
            label=f"{name} (max |Re hλ| {np.abs(z.real).max():.0e})",
        )
    ax.set(
        xlabel="depth t of the layer",
        ylabel="Im hλ",
        title="reversible schemes: segments of the imaginary axis",
        ylim=(-2.4, 2.4),
    )
    plotting.legend_outside(ax, ncol=1, bbox_to_anchor=(0.5, -0.16))

    ax = axes[1, 1]
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
    plotting.legend_outside(ax, ncol=1, bbox_to_anchor=(0.5, -0.16))
    plotting.save(fig, out / "stability_regions.png")
    metrics["h"] = T / N
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
