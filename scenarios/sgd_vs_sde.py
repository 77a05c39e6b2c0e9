"""SGD vs its stochastic modified equation: mean and spread of the loss over many seeds.

Li, Tai & E (2017, arXiv:1511.06251): minibatch SGD with step η and batch size B is,
to weak order 1, the SDE dθ = −∇Φ dt + sqrt(η Σ(θ)/B) dW, with Σ the per-example
gradient covariance and t = kη. The SDE is integrated by `dynlearn.sgd_sde` (Euler–
Maruyama on a virtual Brownian tree, matrix-free diffusion); SGD by `dynlearn.sgd`;
both as ensembles of independent seeds (vmapped).

Setup (notes V20): linear regression N = 64, P = 5, B = 4, η = 0.1, T = 4. The noise
raises the expected loss above the deterministic path: E[Φ_SGD] − Φ_GD and
E[Φ_SDE] − Φ_GF agree (the notes: 0.1575 − 0.1411 vs 0.1613 − 0.1470). Plots: mean ±
one standard deviation of Φ over seeds vs time for SGD and the SDE with GD and GF,
and the two noise-induced excesses with their standard errors.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn import plotting


CONFIG = {
    "seed": 0,
    "n_data": 64,
    "dim": 5,
    "noise": 0.5,
    "batch_size": 4,
    "lr": 0.1,
    "t1": 4.0,
    "num_seeds": 4000,
}
HELP = {
    "seed": "PRNG seed of the data, the minibatches and the Brownian paths",
    "n_data": "number of linear-regression examples N",
    "dim": "number of regression weights P",
    "noise": "standard deviation of the label noise",
    "batch_size": "minibatch size B of SGD (sets the SDE's diffusion η Σ/B)",
    "lr": "SGD learning rate η (time step; t = k·η)",
    "t1": "time horizon T",
    "num_seeds": "independent SGD runs and SDE paths averaged over",
}
QUICK = {"num_seeds": 400}
SMOKE = {"num_seeds": 16, "t1": 1.0}


def headline(metrics: dict) -> tuple[str, bool]:
    """The noise-induced excess loss of SGD over GD against the SDE's over the flow."""
    a, b = metrics["excess_sgd_minus_gd"], metrics["excess_sde_minus_gf"]
    se = metrics["final_standard_error"]
    ratio = a / b if b else float("inf")
    held = a > 3 * se["SGD"] and b > 3 * se["SDE"] and bool(abs(ratio - 1) <= 0.3)
    text = (
        f"excess loss at T: SGD−GD {a:.4f} ± {se['SGD']:.4f}, SDE−GF {b:.4f} ± "
        f"{se['SDE']:.4f}, ratio {ratio:.2f} (expected > 3 s.e. and 1 ± 0.3, "
        "weak order 1 in η)"
    )
    return text, held


def run(config: dict, out: Path) -> dict:
    kdata, ksgd, ksde = jax.random.split(jax.random.key(config["seed"]), 3)
    X, Y = dl.linear_regression(
        n=config["n_data"], d=config["dim"], noise=config["noise"], key=kdata
    )
    w0 = jnp.zeros(config["dim"])

    def batch_loss(w, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((xb @ w - yb) ** 2)

    full = lambda w: batch_loss(w, (X, Y))
    lr, t1, b, m = config["lr"], config["t1"], config["batch_size"], config["num_seeds"]
    steps = int(round(t1 / lr))
    print(f"sgd_vs_sde: GD, flow, {m} SGD runs and {m} SDE paths")
    gd = dl.gradient_descent(full, w0, lr, steps)
    gf = dl.gradient_flow(full, w0, t1, ts=gd.ts, rtol=1e-10, atol=1e-12)
    sgd = dl.sgd(
        batch_loss,
        w0,
        (X, Y),
        lr,
        steps,
        batch_size=b,
        key=jax.random.split(ksgd, m),
        save_params=False,
    )
    sde = dl.sgd_sde(
        batch_loss,
        w0,
        (X, Y),
        lr,
        t1,
        batch_size=b,
        ts=gd.ts,
        key=jax.random.split(ksde, m),
        save_params=False,
    )

    fig, axes = plotting.figure(2)
    ax, ax2 = axes[0]
    t = np.asarray(gd.ts)
    stats = {}
    for name, traj, c in (
        ("SGD", sgd, plotting.PALETTE[1]),
        ("SDE", sde, plotting.PALETTE[0]),
    ):
        L = np.asarray(traj.loss)
        mean, std = L.mean(0), L.std(0)
        stats[name] = (mean, L.std(0, ddof=1) / np.sqrt(m))
        style = dict(marker="o", ms=3, ls="none") if name == "SGD" else dict(ls="-")
        ax.plot(t, mean, color=c, label=f"{name}: mean over {m} seeds", **style)
        ax.fill_between(t, mean - std, mean + std, color=c, alpha=0.15, lw=0)
    ax.plot(t, gd.loss, "s", color=plotting.PALETTE[2], ms=3, label="GD")
    ax.plot(t, gf.loss, "k-", lw=1.2, label="gradient flow")
    ax.set(
        yscale="log",
        xlabel="time t = k·η",
        ylabel="loss Φ",
        title=f"η = {lr:g}, B = {b}: mean ± 1 s.d. over seeds",
    )
    plotting.log_ticks(ax, "y")
    ax.legend(loc="upper right")

    ex_sgd = stats["SGD"][0] - np.asarray(gd.loss)
    ex_sde = stats["SDE"][0] - np.asarray(gf.loss)
    for ex, se, name, c in (
        (ex_sgd, stats["SGD"][1], "E[Φ_SGD] − Φ_GD", plotting.PALETTE[1]),
        (ex_sde, stats["SDE"][1], "E[Φ_SDE] − Φ_GF", plotting.PALETTE[0]),
    ):
        ax2.plot(t, ex, color=c, label=name)
        ax2.fill_between(t, ex - 2 * se, ex + 2 * se, color=c, alpha=0.2, lw=0)
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set(
        xlabel="time t = k·η",
        ylabel="noise-induced excess loss",
        title="SGD noise vs SDE noise (bands: ±2 s.e.)",
    )
    ax2.legend(loc="upper right")
    plotting.save(fig, out / "sgd_vs_sde.png")

    diff = ex_sgd[-1] - ex_sde[-1]
    diff_se = float(np.hypot(stats["SGD"][1][-1], stats["SDE"][1][-1]))
    return {
        "final_mean_loss": {
            "SGD": float(stats["SGD"][0][-1]),
            "SDE": float(stats["SDE"][0][-1]),
            "GD": float(gd.loss[-1]),
            "GF": float(gf.loss[-1]),
        },
        "final_standard_error": {
            "SGD": float(stats["SGD"][1][-1]),
            "SDE": float(stats["SDE"][1][-1]),
        },
        "excess_sgd_minus_gd": float(ex_sgd[-1]),
        "excess_sde_minus_gf": float(ex_sde[-1]),
        "excess_difference": float(diff),
        "excess_difference_standard_error": diff_se,
        "sde_steps": sde.stats["num_steps"],
    }


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
