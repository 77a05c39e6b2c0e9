"""A network of Duffing oscillators learns a noisy-XOR classification by echo backpropagation.

Fifteen coupled Duffing oscillators (2 input, 1 output, 12 learning oscillators; random
symmetric linear couplings, quartic on-site nonlinearity λ = 2, T = 10, 500 leapfrog
steps) form a physical classifier: the input point is written into the input positions,
the class is the sign of the output position after time T (targets ±½). The trainable
parameters are the initial positions of the learning oscillators. Training is per-sample
averaged Hamiltonian echo backpropagation (López-Pastor & Marquardt, PRX 13, 031020
(2023)): forward evolution, output error kick η, momentum reversal, echo, decay step with
effective mass m (learning rate η/m). Exact-gradient SGD (jax.grad through the same
leapfrog trajectory, same samples and learning rate) runs beside it. Set
`coupling=mlp` to add a `dynlearn.MLP` coupling potential V_c(q) between all oscillators.

Plots: training loss, train/test accuracy vs iteration (HEB and SGD); the trained
machine's decision map with the data; the HEB–SGD parameter distance. Metrics: the
accuracies and the distance.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn import echo, plotting


CONFIG = {
    "seed": 0,
    "n_train": 32,
    "n_test": 128,
    "noise": 0.25,
    "n_learn": 12,
    "lam": 2.0,
    "t1": 10.0,
    "num_steps": 500,
    "steps": 6000,
    "eta": 1e-4,
    "learning_rate": 0.05,
    "save_every": 200,
    "coupling": "random",
    "grid": 41,
}
HELP = {
    "seed": "PRNG seed of the data, the couplings, θ₀ and the sample order",
    "n_train": "number of noisy-XOR training points",
    "n_test": "number of noisy-XOR test points",
    "noise": "standard deviation of the Gaussian noise around the corners (±1, ±1)",
    "n_learn": "number of learning oscillators (their initial positions are θ)",
    "lam": "quartic on-site nonlinearity λ of every oscillator",
    "t1": "evolution time T of one forward pass",
    "num_steps": "leapfrog steps over [0, T]",
    "steps": "training iterations (one sample each)",
    "eta": "error-kick strength η of the echo",
    "learning_rate": "learning rate η/m (sets the effective mass m)",
    "save_every": "iterations between recorded losses and parameters",
    "coupling": "'random' symmetric linear couplings, or 'mlp' for an MLP potential",
    "grid": "points per side of the decision map",
}
QUICK = {"steps": 1500, "save_every": 100, "grid": 25}
SMOKE = {
    "n_train": 8,
    "n_test": 16,
    "num_steps": 50,
    "steps": 20,
    "save_every": 5,
    "grid": 5,
}


def headline(metrics: dict) -> tuple[str, bool]:
    """Test accuracy of the HEB-trained oscillators and its agreement with the
    exact-gradient SGD run."""
    heb, sgd = metrics["accuracy_test_heb"], metrics["accuracy_test_sgd"]
    held = bool(heb >= 0.75 and abs(heb - sgd) <= 0.03)
    text = (
        f"HEB test accuracy {metrics['accuracy_test_initial']:.2f} → {heb:.3f} "
        f"(expected ≥ 0.75, chance 0.5), exact-gradient SGD {sgd:.3f} "
        "(expected within 0.03 of HEB)"
    )
    return text, held


def noisy_xor(key, n, noise):
    """Points around the four corners (±1, ±1), label = sign(x₁x₂)."""
    kc, kn = jax.random.split(key)
    corners = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    x = corners[jax.random.randint(kc, (n,), 0, 4)]
    x = x + noise * jax.random.normal(kn, (n, 2))
    return x, jnp.sign(x[:, 0] * x[:, 1])


def run(config: dict, out: Path) -> dict:
    key = jax.random.key(config["seed"])
    kd, kt, km, kc, kth, ks = jax.random.split(key, 6)
    xtr, ltr = noisy_xor(kd, config["n_train"], config["noise"])
    xte, lte = noisy_xor(kt, config["n_test"], config["noise"])
    ytr = 0.5 * ltr[:, None]
    n = 3 + config["n_learn"]
    if config["coupling"] == "mlp":
        coupling = dl.MLP(n, "scalar", 16, 1, "tanh", key=kc)
    elif config["coupling"] == "random":
        coupling = None
    else:
        raise ValueError(
            f"coupling must be 'random' or 'mlp', got {config['coupling']!r}"
        )
    mac = echo.DuffingNetwork(
        2,
        1,
        config["n_learn"],
        lam=config["lam"],
        t1=config["t1"],
        num_steps=config["num_steps"],
        coupling=coupling,
        key=km,
    )
    th0 = 0.5 * jax.random.normal(kth, (config["n_learn"],))
    eta = config["eta"]
    m = eta / config["learning_rate"]
    kw = dict(
        num_steps=config["steps"],
        eta=eta,
        m=m,
        key=ks,
        variant="averaged",
        save_every=config["save_every"],
    )
    print(f"echo_oscillators: HEB training, {config['steps']} iterations")
    heb = echo.train(mac, th0, xtr, ytr, method="heb", **kw)
    print("echo_oscillators: exact-gradient SGD (jax.grad through the same dynamics)")
    sgd = echo.train(mac, th0, xtr, ytr, method="sgd", **kw)

    predict = jax.jit(jax.vmap(jax.vmap(mac.predict, (0, None)), (None, 0)))

    def accuracy(thetas, x, labels):
        return np.asarray(jnp.mean(jnp.sign(predict(x, thetas)[..., 0]) == labels, -1))

    its = np.arange(len(heb)) * config["save_every"]
    acc = {
        (name, split): accuracy(tr.params, x, lab)
        for name, tr in (("heb", heb), ("sgd", sgd))
        for split, x, lab in (("train", xtr, ltr), ("test", xte, lte))
    }
    dist = np.linalg.norm(np.asarray(heb.params - sgd.params), axis=1)

    c = plotting.PALETTE
    fig, axes = plotting.figure(2, 2, width=5.4, height=4.0)
    ax = axes[0, 0]
    # HEB a broad pale line, SGD thin with open markers on top of it: the two agree
    # to within the line width, so both must stay visible
    ax.semilogy(
        its, heb.loss, "-", color=c[0], lw=5, alpha=0.45, label="HEB (averaged)"
    )
    ax.semilogy(
        its,
        sgd.loss,
        "--",
        color=c[1],
        lw=1.4,
        marker="o",
        ms=4,
        mfc="none",
        label="exact-gradient SGD",
    )
    ax.set(
        xlabel="training iteration",
        ylabel="mean squared error (train)",
        title=f"Duffing network, learning rate η/m = {config['learning_rate']:g}",
    )
    plotting.log_ticks(ax, "y")
    ax.legend(loc="upper right")

    ax = axes[0, 1]
    for (name, split), a in acc.items():
        color = c[0] if split == "train" else c[2]
        if name == "heb":
            style = dict(ls="-", lw=5, alpha=0.45)
        else:
            style = dict(ls="--", lw=1.4, marker="o", ms=4, mfc="none")
        ax.plot(its, 100 * a, color=color, label=f"{name.upper()}, {split}", **style)
    ax.axhline(50, color="0.5", lw=0.8)
    ax.annotate("chance", (its[-1], 50), va="bottom", ha="right", color="0.4")
    ax.set(
        xlabel="training iteration",
        ylabel="accuracy [%]",
        ylim=(0, 102),
        title="accuracy (SGD dashed ○, HEB broad)",
    )
    ax.legend(loc="lower right", ncol=2)

    ax = axes[1, 0]
    g = np.linspace(-1.8, 1.8, config["grid"])
    gx, gy = np.meshgrid(g, g)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], -1))
    z = np.asarray(predict(pts, heb.final_params[None])[0, :, 0]).reshape(gx.shape)
    lim = float(np.max(np.abs(z)))
    im = ax.pcolormesh(gx, gy, z, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
    fig.colorbar(im, ax=ax, label="output position q_out(T)")
    for lab, mk in ((1.0, "o"), (-1.0, "s")):
        sel = np.asarray(lte) == lab
        ax.scatter(
            np.asarray(xte)[sel, 0],
            np.asarray(xte)[sel, 1],
            marker=mk,
            s=14,
            facecolor="none",
            edgecolor="k",
            lw=0.7,
            label=f"test, class {lab:+.0f}",
        )
    ax.set(xlabel="input x₁", ylabel="input x₂", title="HEB-trained machine")
    plotting.legend_outside(ax, ncol=2)

    ax = axes[1, 1]
    ax.semilogy(its[1:], dist[1:], "-", color=c[2])
    travel = float(jnp.linalg.norm(sgd.final_params - th0))
    ax.set(
        xlabel="training iteration",
        ylabel="‖θ_HEB − θ_SGD‖",
        title=f"HEB vs SGD (SGD moved θ by {travel:.2f})",
    )
    plotting.log_ticks(ax, "y")
    plotting.save(fig, out / "echo_oscillators.png")

    return {
        "accuracy_train_heb": float(acc["heb", "train"][-1]),
        "accuracy_test_heb": float(acc["heb", "test"][-1]),
        "accuracy_train_sgd": float(acc["sgd", "train"][-1]),
        "accuracy_test_sgd": float(acc["sgd", "test"][-1]),
        "accuracy_test_initial": float(acc["heb", "test"][0]),
        "loss_initial": float(heb.loss[0]),
        "loss_final_heb": float(heb.loss[-1]),
        "loss_final_sgd": float(sgd.loss[-1]),
        "max_param_distance": float(dist.max()),
        "param_travel_sgd": travel,
        "heb_run_time_s": heb.stats["run_time"],
        "sgd_run_time_s": sgd.stats["run_time"],
    }


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
