"""ResNet vs Hamiltonian net vs neural ODE on two spirals; accuracy under depth refinement.

Three classifiers share one recipe (linear lift to dimension d → residual body →
linear readout, full-batch Adam on softmax cross-entropy, data made in code): an Euler
ResNet and Chang et al.'s Hamiltonian reversible network (N layers, T fixed,
piecewise-constant weights) and a neural ODE (Chen et al. 2018) whose weights Θ(t) are
linearly interpolated between a few nodes, solved by an adaptive diffrax solver.

After training, each discrete network is refined N → 2N → 8N keeping θ(t) (every
layer repeated with step h/2, h/8): if the trained net is close to an ODE
discretisation its test accuracy survives (Cohen et al. 2021; Sander et al. 2022).
With Chang et al.'s weight-smoothness penalty α Σ‖θ_{j+1} − θ_j‖²/h switched on, the
weights become smooth in depth and refinement becomes harmless.

Plots: decision boundaries with the test points; test accuracy vs refinement factor
(with and without the penalty); training loss curves. Metrics: train/test accuracy of
every model, test accuracy at N, 2N, 8N.
"""

from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, resnet as rn


CONFIG = {
    "seed": 0,
    "n_points": 1000,
    "noise": 0.2,
    "dim": 8,
    "width": 16,
    "depth": 16,
    "T": 3.0,
    "steps": 1500,
    "lr": 1e-2,
    "node_nodes": 4,
    "node_rtol": 1e-4,
    "smoothness_weight": 1e-2,
    "refine": [1, 2, 8],
    "grid": 120,
}
HELP = {
    "seed": "PRNG seed of the data, the split and the initial networks",
    "n_points": "number of two-spiral points (train and test together)",
    "noise": "standard deviation of the noise added to the spiral points",
    "dim": "dimension d of the lifted state the residual body acts on",
    "width": "hidden width of each residual layer",
    "depth": "number of layers N of the discrete networks at training",
    "T": "depth horizon T of every body (step h = T/N)",
    "steps": "full-batch Adam steps of each training run",
    "lr": "Adam learning rate",
    "node_nodes": "number of hat-function nodes of the neural ODE's weights Θ(t)",
    "node_rtol": "rtol of the neural ODE's Tsit5 solve (atol = rtol/100)",
    "smoothness_weight": "α of the weight-smoothness penalty α Σ‖θ_{j+1} − θ_j‖²/h",
    "refine": "refinement factors f (depth N → fN keeping θ(t))",
    "grid": "points per side of the decision-boundary grid",
}
QUICK = {"n_points": 400, "steps": 300, "lr": 2e-2, "node_rtol": 1e-3, "grid": 60}
SMOKE = {"n_points": 64, "steps": 5, "depth": 4, "refine": [1, 2], "grid": 8}

REFINE_TOLERANCE = 0.03
"""How much test accuracy a smooth-in-depth (α > 0) network may lose on refinement."""


def headline(metrics: dict) -> tuple[str, bool]:
    """Test accuracy lost by the penalised (α > 0) discrete networks under the largest
    depth refinement."""
    factors = metrics["refine"]
    drops = {
        label.split(",")[0]: m["test_accuracy_refined"][0]
        - m["test_accuracy_refined"][-1]
        for label, m in metrics.items()
        if isinstance(m, dict)
        and "test_accuracy_refined" in m
        and not label.endswith("α = 0")
    }
    held = all(d <= REFINE_TOLERANCE for d in drops.values())
    text = (
        f"test accuracy lost at N → {factors[-1]}N with the smoothness penalty: "
        + ", ".join(f"{k} {d:+.3f}" for k, d in drops.items())
        + f" (expected ≤ {REFINE_TOLERANCE:g})"
    )
    return text, held


def _classifier(body, d, key):
    return rn.Classifier(2, d, 2, body, key=key)


def run(config: dict, out: Path) -> dict:
    kd, ks, kf, kc = jr.split(jr.key(config["seed"]), 4)
    X, y = rn.spirals(config["n_points"], noise=config["noise"], key=kd)
    Xtr, ytr, Xte, yte = rn.split(X, y, key=ks)
    d, w, N, T = config["dim"], config["width"], config["depth"], config["T"]
    opt = optax.adam(config["lr"])

    def resnet_field(key):
        return rn.ResidualField.init(
            lambda k: dl.MLP(d, d, w, 0, final_activation="tanh", key=k),
            N,
            T=T,
            key=key,
        )

    def hamiltonian_field(key):
        return rn.ResidualField.init(
            lambda k: rn.HamiltonianLayer(d, w, key=k), N, T=T, key=key
        )

    specs = {
        "ResNet (Euler)": lambda: rn.ResNet(resnet_field(kf), "euler", N),
        "Hamiltonian": lambda: rn.ResNet(hamiltonian_field(kf), "hamiltonian", N),
    }
    models, histories, metrics = {}, {}, {"refine": config["refine"]}
    runs = [(n, a) for n in specs for a in (0.0, config["smoothness_weight"])]
    for name, alpha in tqdm(runs, desc="resnet_vs_node: discrete networks"):
        make = specs[name]
        label = f"{name}, α = {alpha:g}"
        m = _classifier(make(), d, kc)
        hist = rn.train_classifier(
            m,
            Xtr,
            ytr,
            num_steps=config["steps"],
            optimizer=opt,
            smoothness_weight=alpha,
        )
        m = hist.final_params
        models[label], histories[label] = m, hist
        refined = [
            float(
                rn.accuracy(
                    eqx.tree_at(lambda mm: mm.body, m, m.body.refine(f)), Xte, yte
                )
            )
            for f in config["refine"]
        ]
        metrics[label] = {
            "train_accuracy": float(rn.accuracy(m, Xtr, ytr)),
            "test_accuracy": refined[0],
            "test_accuracy_refined": refined,
        }

    node_field = rn.ResidualField.init(
        lambda k: dl.MLP(d, d, w, 0, final_activation="tanh", key=k),
        config["node_nodes"],
        T=T,
        basis="hat",
        key=kf,
    )
    node_label = "Neural ODE (Tsit5)"
    print("resnet_vs_node: training the neural ODE")
    node = _classifier(
        rn.NeuralODE(
            node_field,
            dfx.Tsit5(),
            rtol=config["node_rtol"],
            atol=config["node_rtol"] * 1e-2,
        ),
        d,
        kc,
    )
    hist = rn.train_classifier(node, Xtr, ytr, num_steps=config["steps"], optimizer=opt)
    node = hist.final_params
    models[node_label], histories[node_label] = node, hist
    metrics[node_label] = {
        "train_accuracy": float(rn.accuracy(node, Xtr, ytr)),
        "test_accuracy": float(rn.accuracy(node, Xte, yte)),
    }

    # ------------------------------------------------------------------ plots
    fig, axes = plotting.figure(3, 2, width=4.0, height=4.2)
    g = config["grid"]
    lim = 1.35
    u = jnp.linspace(-lim, lim, g)
    grid = jnp.stack(jnp.meshgrid(u, u), -1).reshape(-1, 2)
    shown = ["ResNet (Euler), α = 0", "Hamiltonian, α = 0", node_label]
    for ax, label in zip(axes[0], shown):
        logits = jax.vmap(models[label])(grid)
        p1 = jax.nn.softmax(logits, -1)[:, 1].reshape(g, g)
        ax.contourf(u, u, p1, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(u, u, p1, levels=[0.5], colors="k", linewidths=1.2)
        Xn, yn = np.asarray(Xte), np.asarray(yte)
        for c, col in ((0, plotting.PALETTE[0]), (1, plotting.PALETTE[1])):
            ax.scatter(*Xn[yn == c].T, s=7, color=col, edgecolor="none")
        acc = metrics[label]["test_accuracy"]
        ax.set(
            xlabel="x₁",
            ylabel="x₂",
            title=f"{label.split(',')[0]}: test acc. {acc:.3f}",
            aspect="equal",
            xlim=(-lim, lim),
            ylim=(-lim, lim),
        )

    colors = {k: plotting.PALETTE[i] for i, k in enumerate(histories)}
    ax = axes[1, 0]
    factors = config["refine"]
    for i, (label, m) in enumerate(metrics.items()):
        if not isinstance(m, dict) or "test_accuracy_refined" not in m:
            continue
        ax.plot(
            factors,
            m["test_accuracy_refined"],
            marker="os^D"[i % 4],
            ls="-" if label.endswith("α = 0") else "--",
            color=colors[label],
            label=label,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(factors, [f"{f}N" if f > 1 else "N" for f in factors])
    ax.minorticks_off()
    ax.set(
        xlabel=f"depth after refinement (trained at N = {N})",
        ylabel="test accuracy",
        title="depth refinement: θ(t) kept, h → h/f",
    )
    plotting.legend_outside(ax, ncol=1)

    ax = axes[1, 1]
    for i, (label, hist) in enumerate(histories.items()):
        ax.semilogy(
            np.asarray(hist.ts), np.asarray(hist.loss), color=colors[label], label=label
        )
    ax.set(
        xlabel="Adam step",
        ylabel="training loss (incl. penalty)",
        title="training",
    )
    plotting.log_ticks(ax, "y")
    plotting.legend_outside(ax, ncol=1)

    ax = axes[1, 2]
    labels = list(metrics)[1:]
    tr = [metrics[k]["train_accuracy"] for k in labels]
    te = [metrics[k]["test_accuracy"] for k in labels]
    pos = np.arange(len(labels))[::-1]
    # dots, not bars: the axis starts just below the lowest accuracy so that the
    # differences between the models are visible
    ax.plot(tr, pos, "o", ms=8, color=plotting.PALETTE[0], label="train")
    ax.plot(
        te, pos, "s", ms=7, mfc="none", mew=1.6, color=plotting.PALETTE[1], label="test"
    )
    ax.set_yticks(pos, [k.replace(" (Euler)", "") for k in labels], fontsize=9)
    lo = max(0.0, np.floor((min(tr + te) - 0.02) * 50) / 50)
    ax.set(
        xlabel=f"accuracy (axis from {lo:g})",
        xlim=(lo, 1.01),  # a margin so that dots at accuracy 1 are not clipped
        ylim=(pos.min() - 0.6, pos.max() + 0.6),
        title="accuracy at the trained depth",
    )
    plotting.legend_outside(ax, ncol=2, bbox_to_anchor=(0.5, -0.16))
    plotting.save(fig, out / "resnet_vs_node.png")
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
