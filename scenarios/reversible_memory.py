"""Reversible backprop: gradient memory flat in depth; inversion error in f32/f64.

A Hamiltonian reversible network (Chang et al. 2018, arXiv:1709.03698) with weights
Θ(t) shared across depth (hat basis, fixed parameter count) is differentiated three
ways: plain reverse-mode autodiff through the `lax.scan` (stores every activation),
`jax.checkpoint` per layer (stores the layer inputs only), and the custom VJP of
`dynlearn.resnet` that stores only the output and recomputes each layer input with
the exact inverse (Gomez et al. 2017; Chang et al. 2018). Memory is XLA's temporary
buffer size of the compiled gradient (`compiled.memory_analysis()`), so nothing has
to run at depth 1024.

Second panel: how exact the algebraic inverse is in floating point — the relative
reconstruction error ‖invert(forward(x)) − x‖/‖x‖ vs depth at fixed step h for the
Hamiltonian, midpoint (antisymmetric layer), leapfrog (ẍ = −Kᵀσ(Kx + b)) and momentum
networks in float32 and float64 (the
momentum network divides by γ in every inverse step, so its error grows like γ^-N;
Sander et al. 2021 use exact fixed-point arithmetic for that reason).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from matplotlib import transforms
from matplotlib.lines import Line2D
from tqdm.auto import tqdm

from dynlearn import plotting, resnet as rn


CONFIG = {
    "seed": 0,
    "batch": 128,
    "dim": 64,
    "width": 64,
    "memory_depths": [16, 64, 256, 1024],
    "inverse_depths": [16, 64, 256, 1024],
    "h": 0.1,
    "momentum_gamma": 0.9,
}
HELP = {
    "seed": "PRNG seed of the fields and the inputs",
    "batch": "batch size B of the memory measurement",
    "dim": "state dimension d of the memory measurement's Hamiltonian net",
    "width": "width of each Hamiltonian layer Kᵀσ(K·) (rows of K)",
    "memory_depths": "depths N at which the gradient's temporary memory is measured",
    "inverse_depths": "depths N of the inversion-error measurement",
    "h": "fixed layer step h of the inversion-error measurement (T = N·h)",
    "momentum_gamma": "the momentum network's γ (its inverse divides by γ)",
}
QUICK = {
    "batch": 64,
    "dim": 32,
    "width": 32,
    "memory_depths": [16, 64, 256],
    "inverse_depths": [16, 256],  # every (scheme, dtype, depth) compiles anew
}
SMOKE = {
    "batch": 4,
    "dim": 4,
    "width": 4,
    "memory_depths": [4, 8, 16],
    "inverse_depths": [4, 16],
}


def headline(metrics: dict) -> tuple[str, bool]:
    """Memory slope of the reversible gradient vs plain autodiff's, and agreement of
    the two gradients."""
    s = metrics["memory_loglog_slopes"]
    err = metrics["grad_rel_err_reversible_vs_autodiff"]
    rev, ad = s["reversible"], s["autodiff"]
    held = bool(abs(rev) <= 0.1 and ad >= 0.8 and err <= 1e-8)
    text = (
        f"gradient memory ∝ N^{rev:.2f} reversible vs N^{ad:.2f} autodiff (expected "
        f"|slope| ≤ 0.1 vs ≥ 0.8); gradients agree to {err:.1e} (expected ≤ 1e-8)"
    )
    return text, held


BACKPROPS = {
    "autodiff": "plain autodiff (stores N activations)",
    "checkpoint": "jax.checkpoint per layer",
    "reversible": "reversible custom VJP",
}


def _temp_mib(field, xs, backprop, depth):
    # The batch goes through discretise as one (B, d) state, so the reversible VJP
    # accumulates weight cotangents over the batch (no per-example gradients).
    def loss(fld):
        y = rn.discretise(fld, xs, "hamiltonian", depth, backprop=backprop).y1
        return jnp.sum(y**2)

    compiled = jax.jit(jax.grad(loss)).lower(field).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:  # some backends do not report it
        return float("nan")
    return analysis.temp_size_in_bytes / 2**20


def _cast(tree, dtype):
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def run(config: dict, out: Path) -> dict:
    kf, kx, km = jr.split(jr.key(config["seed"]), 3)
    d, w = config["dim"], config["width"]
    field = rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(d, w, key=k), 2, basis="hat", key=kf
    )
    xs = jr.normal(kx, (config["batch"], d))
    memory = {
        b: [_temp_mib(field, xs, b, n) for n in config["memory_depths"]]
        for b in tqdm(BACKPROPS, desc="reversible_memory: compile gradients")
    }

    # Gradient agreement at the largest memory depth (float64).
    n_max = config["memory_depths"][-1]

    def loss(fld, b):
        y = rn.discretise(fld, xs[:8], "hamiltonian", n_max, backprop=b).y1
        return jnp.sum(jnp.tanh(y))

    grads = {
        b: jnp.concatenate(
            [g.ravel() for g in jax.tree.leaves(jax.grad(loss)(field, b))]
        )
        for b in ("autodiff", "reversible")
    }
    grad_rel_err = float(
        jnp.linalg.norm(grads["reversible"] - grads["autodiff"])
        / jnp.linalg.norm(grads["autodiff"])
    )

    # Inversion error vs depth at fixed step h (T = N h).
    h = config["h"]
    small = rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(8, 8, key=k), 2, basis="hat", key=km
    )
    generic = rn.ResidualField.init(
        lambda k: rn.AntisymmetricLayer(8, key=k), 2, basis="hat", key=km
    )
    second_order = rn.ResidualField.init(
        lambda k: rn.SymmetricLayer(8, 8, sign=-1.0, key=k), 2, basis="hat", key=km
    )
    x0 = jr.normal(kx, (8,))
    schemes = {
        "Hamiltonian": (rn.Hamiltonian(), small),
        "Midpoint": (rn.Midpoint(), generic),
        "Leapfrog": (rn.Leapfrog(), second_order),
        f"Momentum γ={config['momentum_gamma']:g}": (
            rn.Momentum(config["momentum_gamma"]),
            generic,
        ),
    }
    inverse = {}
    for name, (scheme, fld) in tqdm(
        schemes.items(), desc="reversible_memory: inversion errors"
    ):
        for dtype in (jnp.float32, jnp.float64):
            errs = []
            for n in config["inverse_depths"]:
                f = _cast(rn.ResidualField(fld.layers, T=n * h, basis="hat"), dtype)
                x = x0.astype(dtype)
                sol = rn.discretise(f, x, scheme, n)
                back = scheme.output(rn.invert(f, sol.state, scheme, n))
                err = jnp.linalg.norm(back - x) / jnp.linalg.norm(x)
                errs.append(float(err) if jnp.isfinite(err) else float("inf"))
            inverse[f"{name} {jnp.dtype(dtype).name}"] = errs

    fig, axes = plotting.figure(2, width=5.6, height=4.8)
    ax = axes[0, 0]
    slopes = {}
    Ns = config["memory_depths"]
    for i, (b, label) in enumerate(BACKPROPS.items()):
        slopes[b] = plotting.loglog_slope(
            ax, Ns, memory[b], label=label, color=plotting.PALETTE[i], marker="os^"[i]
        )
    ax.set_xticks(Ns, [str(n) for n in Ns])
    ax.set_xticks([], minor=True)
    ax.set(
        xlabel="depth N",
        ylabel="XLA temporary memory of the gradient [MiB]",
        title=f"memory of ∇loss, Hamiltonian net, batch {config['batch']}×{d}",
    )
    plotting.log_ticks(ax, "y")
    plotting.legend_outside(ax, ncol=1)

    ax = axes[0, 1]
    Ni = config["inverse_depths"]
    for i, (name, errs) in enumerate(inverse.items()):
        scheme_idx, is64 = i // 2, name.endswith("float64")
        e = np.array(errs)
        e = np.where(np.isfinite(e), np.maximum(e, 1e-17), np.nan)
        color = plotting.PALETTE[scheme_idx]
        ax.loglog(
            Ni,
            e,
            marker="os^D"[scheme_idx],
            ms=6,
            ls="-" if is64 else "--",
            lw=1.8 if is64 else 1.4,
            color=color,
            mfc=color if is64 else "white",
        )
    for eps, label in (
        (np.finfo(np.float32).eps, "f32 ε"),
        (np.finfo(float).eps, "f64 ε"),
    ):
        ax.axhline(eps, color="0.5", lw=0.8, ls=":")
        ax.annotate(
            label,
            (1.01, eps),
            xycoords=transforms.blended_transform_factory(ax.transAxes, ax.transData),
            fontsize=9,
            color="0.4",
            ha="left",
            va="center",
            annotation_clip=False,
        )
    ax.set_xticks(Ni, [str(n) for n in Ni])
    ax.set_xticks([], minor=True)
    ax.set(
        xlabel=f"depth N (step h = {h:g}, T = N·h)",
        ylabel="‖invert(forward(x)) − x‖ / ‖x‖",
        title="reconstruction error of the exact inverse",
    )
    plotting.log_ticks(ax, "y")
    # colour and marker: the scheme; line and fill: the precision
    handles = [
        Line2D([], [], color=plotting.PALETTE[k], marker="os^D"[k], ls="-", label=n)
        for k, n in enumerate(schemes)
    ] + [
        Line2D([], [], color="k", marker="o", ls="-", label="float64 (solid, filled)"),
        Line2D(
            [],
            [],
            color="k",
            marker="o",
            mfc="white",
            ls="--",
            label="float32 (dashed, open)",
        ),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2)
    plotting.save(fig, out / "reversible_memory.png")
    return {
        "memory_depths": Ns,
        "temp_memory_mib": memory,
        "memory_loglog_slopes": slopes,
        "memory_ratio_last_first": {b: memory[b][-1] / memory[b][0] for b in memory},
        "grad_rel_err_reversible_vs_autodiff": grad_rel_err,
        "inverse_depths": Ni,
        "inverse_rel_error": inverse,
    }


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
