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
QUICK = {"batch": 64, "dim": 32, "width": 32, "inverse_depths": [16, 64, 256]}

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
        for b in BACKPROPS
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
    for name, (scheme, fld) in schemes.items():
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

    fig, axes = plotting.figure(2, width=5.6, height=4.3)
    ax = axes[0, 0]
    slopes = {}
    Ns = config["memory_depths"]
    for i, (b, label) in enumerate(BACKPROPS.items()):
        slopes[b] = plotting.loglog_slope(
            ax, Ns, memory[b], label=label, color=plotting.PALETTE[i], marker="os^"[i]
        )
    ax.set_xticks(Ns, [str(n) for n in Ns])
    ax.minorticks_off()
    ax.set(
        xlabel="depth N",
        ylabel="XLA temporary memory of the gradient [MiB]",
        title=f"memory of ∇loss, Hamiltonian net, batch {config['batch']}×{d}",
    )
    ax.legend(loc="upper left")

    ax = axes[0, 1]
    Ni = config["inverse_depths"]
    for i, (name, errs) in enumerate(inverse.items()):
        scheme_idx, is64 = i // 2, name.endswith("float64")
        e = np.array(errs)
        e = np.where(np.isfinite(e), np.maximum(e, 1e-17), np.nan)
        ax.loglog(
            Ni,
            e,
            marker="os^D"[scheme_idx],
            ls="-" if is64 else "--",
            color=plotting.PALETTE[scheme_idx],
            label=name,
        )
    for eps, label in (
        (np.finfo(np.float32).eps, "f32 ε"),
        (np.finfo(float).eps, "f64 ε"),
    ):
        ax.axhline(eps, color="0.5", lw=0.8, ls=":")
        ax.annotate(label, (Ni[-1], eps * 2.5), fontsize=8, color="0.4", ha="right")
    ax.set_xticks(Ni, [str(n) for n in Ni])
    ax.minorticks_off()
    ax.set(
        xlabel=f"depth N (step h = {h:g}, T = N·h)",
        ylabel="‖invert(forward(x)) − x‖ / ‖x‖",
        title="inverse error (solid float64, dashed float32)",
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left")
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
