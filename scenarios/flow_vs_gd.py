"""Gradient flow vs gradient descent: one time axis, O(lr) and O(lr²) convergence.

A small tanh MLP learns y = sin(x·w) (data made in code). We integrate the gradient
flow θ' = −∇Φ with Tsit5 at tight tolerance and run GD at several learning rates,
stamping GD's k-th iterate at t = k·lr. Backward error analysis (Barrett & Dherin 2021,
arXiv:2009.11162) says GD is O(lr) away from the flow on a fixed horizon but O(lr²) from
the modified flow θ' = −∇(Φ + lr/4 ‖∇Φ‖²) (and O(lr³) from the second-order one).

Plots: loss vs time for the flow and every GD run; the loss gap |Φ_GD − Φ_GF| along
time; the global error at T vs lr on log-log axes with fitted slopes. Metrics: the
slopes and the errors.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting


CONFIG = {
    "seed": 0,
    "n_data": 32,
    "width": 16,
    "t1": 20.0,
    "lrs": [0.4, 0.2, 0.1, 0.05, 0.025],
    "rtol": 1e-11,
    "second_order": True,
}
HELP = {
    "seed": "PRNG seed of the data and the initial network",
    "n_data": "number of training points of y = sin(x·w)",
    "width": "hidden width of the 3-width-1 tanh MLP",
    "t1": "time horizon T of the comparison (GD runs T/lr steps)",
    "lrs": "GD learning rates (the time step of each GD run)",
    "rtol": "rtol = atol of the Dopri8 solves of the (modified) flows",
    "second_order": "also compare with the second-order modified flow (O(lr³))",
}
QUICK = {"t1": 5.0, "lrs": [0.2, 0.1, 0.05], "rtol": 1e-9, "second_order": False}
SMOKE = {"t1": 1.0, "lrs": [0.2, 0.1, 0.05], "rtol": 1e-7, "second_order": True}

_EXPECTED = {"flow": 1.0, "modified_1": 2.0, "modified_2": 3.0}


def headline(metrics: dict) -> tuple[str, bool]:
    """Fitted orders of GD's global error against the flow and the modified flows."""
    parts, expect, held = [], [], True
    for key, expected in _EXPECTED.items():
        p = metrics.get(f"slope_{key}")
        if p is None:
            continue
        parts.append(f"{key.replace('_', ' ')} {p:.2f}")
        expect.append(f"{expected:g}")
        held = held and bool(abs(p - expected) <= 0.15)
    text = "GD error slopes vs lr: " + ", ".join(parts)
    return text + f" (expected {', '.join(expect)} ± 0.15)", held


def run(config: dict, out: Path) -> dict:
    kdata, knet = jax.random.split(jax.random.key(config["seed"]))
    X, Y = dl.sine_regression(n=config["n_data"], d=3, key=kdata)
    net = dl.MLP(3, "scalar", config["width"], 1, "tanh", key=knet)

    def loss(model):
        return 0.5 * jnp.mean((jax.vmap(model)(X) - Y) ** 2)

    t1, rtol = config["t1"], config["rtol"]
    lrs = sorted(config["lrs"], reverse=True)
    flow_kw = dict(rtol=rtol, atol=rtol, solver="dopri8", num_saves=2)
    # Saved on the finest GD grid, which contains every coarser one.
    fine_ts = np.linspace(0.0, t1, int(round(t1 / lrs[-1])) + 1)
    print("flow_vs_gd: gradient flow (Dopri8) on the finest GD time grid")
    flow = dl.gradient_flow(loss, net, t1, **{**flow_kw, "ts": fine_ts})

    def final_vec(traj):
        return dl.ravel_params(traj.final_params)

    rows = []
    gd_runs = {}
    for lr in tqdm(lrs, desc="flow_vs_gd: GD + modified flows per lr"):
        steps = int(round(t1 / lr))
        gd = dl.gradient_descent(loss, net, lr, steps)
        gd_runs[lr] = gd
        mod1 = dl.gradient_flow(
            loss, net, t1, flow=dl.ModifiedGradientFlow(lr), **flow_kw
        )
        row = {
            "lr": lr,
            "err_flow": float(np.linalg.norm(final_vec(gd) - final_vec(flow))),
            "err_modified_1": float(np.linalg.norm(final_vec(gd) - final_vec(mod1))),
        }
        if config["second_order"]:
            mod2 = dl.gradient_flow(
                loss, net, t1, flow=dl.ModifiedGradientFlow(lr, order=2), **flow_kw
            )
            row["err_modified_2"] = float(
                np.linalg.norm(final_vec(gd) - final_vec(mod2))
            )
        rows.append(row)

    lr_arr = np.array([r["lr"] for r in rows])
    fig, axes = plotting.figure(3, width=4.0, height=3.9)
    ax = axes[0, 0]
    ax.semilogy(flow.ts, flow.loss, "k-", lw=2.2, label="gradient flow (Dopri8)")
    for lr, gd in gd_runs.items():
        ax.semilogy(gd.ts, gd.loss, "o", ms=2.5, alpha=0.8, label=f"GD, lr = {lr:g}")
    ax.set(
        xlabel="time t (GD: t = k·lr)", ylabel="loss Φ", title="loss on one time axis"
    )
    plotting.log_ticks(ax)
    ax.legend(loc="upper right")
    ax = axes[0, 1]
    for lr, gd in gd_runs.items():
        idx = np.searchsorted(np.asarray(flow.ts), np.asarray(gd.ts) - 1e-9)
        gap = np.abs(np.asarray(gd.loss) - np.asarray(flow.loss)[idx])
        ax.semilogy(gd.ts[1:], gap[1:], label=f"lr = {lr:g}")
    ax.set(
        xlabel="time t", ylabel="|Φ_GD(t) − Φ_GF(t)|", title="loss gap: halves with lr"
    )
    plotting.log_ticks(ax, "y")
    ax.legend(loc="lower right")
    ax = axes[0, 2]
    metrics: dict = {}
    labels = {
        "err_flow": "GD vs gradient flow",
        "err_modified_1": "GD vs modified flow (1st order)",
        "err_modified_2": "GD vs modified flow (2nd order)",
    }
    for key, label in labels.items():
        if key in rows[0]:
            errs = np.array([r[key] for r in rows])
            metrics[f"slope_{key[4:]}"] = plotting.loglog_slope(
                ax, lr_arr, errs, label=label
            )
    ax.set(
        xlabel="learning rate lr",
        ylabel=f"‖θ_GD − θ(T)‖ at T = {t1:g}",
        title="global error at fixed time",
    )
    plotting.log_ticks(ax, "y")
    ax.set_xticks(lr_arr, [f"{x:g}" for x in lr_arr])
    ax.set_xticks([], minor=True)
    plotting.legend_outside(ax, ncol=1)
    plotting.save(fig, out / "flow_vs_gd.png")
    metrics.update(
        rows=rows,
        flow_final_loss=float(flow.loss[-1]),
        flow_num_gradient_evals=flow.stats["num_gradient_evals"],
    )
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
