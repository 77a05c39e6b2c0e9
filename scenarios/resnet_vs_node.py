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
QUICK = {"n_points": 400, "steps": 300, "lr": 2e-2, "node_rtol": 1e-3, "grid": 60}


def _classifier(body, d, key):
    return rn.Classifier(2, d, 2, body, key=key)


def run(config: dict, out: Path) -> dict:
    kd, ks, kf, kc = jr.split(jr.key(config["seed"]), 4)
    X, y = rn.spirals(kd, config["n_points"], noise=config["noise"])
    Xtr, ytr, Xte, yte = rn.split(ks, X, y)
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
    for name, make in specs.items():
        for alpha in (0.0, config["smoothness_weight"]):
            label = f"{name}, α = {alpha:g}"
            m = _classifier(make(), d, kc)
            m, hist = rn.train_classifier(
                m,
                Xtr,
                ytr,
                steps=config["steps"],
                optimizer=opt,
                smoothness_weight=alpha,
            )
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
    node, hist = rn.train_classifier(
        node, Xtr, ytr, steps=config["steps"], optimizer=opt
    )
    models[node_label], histories[node_label] = node, hist
    metrics[node_label] = {
        "train_accuracy": float(rn.accuracy(node, Xtr, ytr)),
        "test_accuracy": float(rn.accuracy(node, Xte, yte)),
    }

    # ------------------------------------------------------------------ plots
    fig, axes = plotting.figure(3, 2, width=4.6, height=4.1)
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
            title=f"{label.split(',')[0]}: spirals, test acc {acc:.3f}",
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
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    for i, (label, hist) in enumerate(histories.items()):
        ax.semilogy(np.asarray(hist["loss"]), color=colors[label], label=label)
    ax.set(
        xlabel="Adam step",
        ylabel="training loss (incl. penalty)",
        title="training",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    labels = list(metrics)[1:]
    tr = [metrics[k]["train_accuracy"] for k in labels]
    te = [metrics[k]["test_accuracy"] for k in labels]
    pos = np.arange(len(labels))
    ax.barh(pos + 0.2, tr, 0.4, color=plotting.PALETTE[0], label="train")
    ax.barh(pos - 0.2, te, 0.4, color=plotting.PALETTE[1], label="test")
    ax.set_yticks(pos, [k.replace(" (Euler)", "") for k in labels], fontsize=8)
    ax.set(xlabel="accuracy", xlim=(0.5, 1.0), title="accuracy at the trained depth")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    plotting.save(fig, out / "resnet_vs_node.png")
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
