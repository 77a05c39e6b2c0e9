"""Edge of stability: GD's sharpness rises to 2/lr and stays there; gradient flow's does not.

Cohen, Kaur, Li, Kolter & Talwalkar (ICLR 2021, arXiv:2103.00065): under full-batch GD
with step η the top Hessian eigenvalue (sharpness) rises ("progressive sharpening")
until it reaches 2/η, the stability limit of GD on a quadratic, and then hovers there
while the loss keeps decreasing non-monotonically. Gradient flow has no such limit: its
sharpness keeps rising, and GD leaves the flow's path when the flow's sharpness crosses
2/η.

Setup (notes §3, V15): a 3-16-1 tanh MLP (81 parameters) on y = sin(x·w), N = 32,
float64. GD at each lr; gradient flow with Tsit5 saved at GD's time stamps; sharpness
by Lanczos at every save. Plots: sharpness vs t with the 2/η lines, loss vs t, and
‖θ_GD(kη) − θ_GF(kη)‖ with the time the flow's sharpness crosses 2/η.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import transforms
from matplotlib.lines import Line2D
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting


CONFIG = {
    "seed": 0,
    "n_data": 32,
    "width": 16,
    "t1": 1000.0,
    "lrs": [0.15, 0.25, 0.4],
    "num_saves": 201,
    "rtol": 1e-8,
}
HELP = {
    "seed": "PRNG seed of the data and the initial network",
    "n_data": "number of training points of y = sin(x·w)",
    "width": "hidden width of the 3-width-1 tanh MLP",
    "t1": "time horizon T (GD with step η runs T/η steps)",
    "lrs": "GD learning rates η (each has its stability limit 2/η)",
    "num_saves": "about how many saves (with a Lanczos sharpness) per GD run",
    "rtol": "rtol = atol of the Tsit5 gradient-flow solve",
}
QUICK = {"t1": 200.0, "lrs": [0.3, 0.4], "num_saves": 41}
SMOKE = {"t1": 40.0, "lrs": [0.4], "num_saves": 11, "rtol": 1e-6}


def headline(metrics: dict) -> tuple[str, bool]:
    """GD's late-time sharpness over 2/η for every run whose flow crosses 2/η, and the
    flow's final sharpness above every such ceiling."""
    runs = metrics["runs"]
    edge = {lr: r for lr, r in runs.items() if r["at_edge_of_stability"]}
    if not edge:
        return "no run reached 2/η: the flow never crossed a GD stability limit", False
    ratios = {
        lr: r["gd_sharpness_tail_mean"] / r["two_over_lr"] for lr, r in edge.items()
    }
    ceiling = max(r["two_over_lr"] for r in edge.values())
    flow = metrics["flow_sharpness_final"]
    held = all(abs(q - 1) <= 0.1 for q in ratios.values()) and flow > 1.1 * ceiling
    text = (
        "GD sharpness / (2/η) late in the run: "
        + ", ".join(f"{q:.3f} (η = {lr})" for lr, q in ratios.items())
        + f" (expected 1 ± 0.1); flow's sharpness {flow:.2f} > 1.1 × {ceiling:.3g}"
    )
    return text, held


def run(config: dict, out: Path) -> dict:
    kdata, knet = jax.random.split(jax.random.key(config["seed"]))
    X, Y = dl.sine_regression(n=config["n_data"], d=3, key=kdata)
    net = dl.MLP(3, "scalar", config["width"], 1, "tanh", key=knet)

    def loss(model):
        return 0.5 * jnp.mean((jax.vmap(model)(X) - Y) ** 2)

    t1, n_save = config["t1"], config["num_saves"]
    obs = {"sharpness": dl.Sharpness()}
    runs = {}
    for lr in tqdm(sorted(config["lrs"]), desc="edge_of_stability: GD runs"):
        steps = int(round(t1 / lr))
        target = steps / (n_save - 1)  # save_every must divide steps
        every = min(
            (d for d in range(1, steps + 1) if steps % d == 0),
            key=lambda d: abs(d - target),
        )
        gd = dl.gradient_descent(
            loss, net, lr, steps, save_every=every, observables=obs
        )
        runs[lr] = gd
    # One flow, saved at the union of the GD time stamps so every distance is exact.
    ts = np.unique(np.concatenate([np.asarray(r.ts) for r in runs.values()]))
    ts = ts[ts <= t1]
    print(f"edge_of_stability: gradient flow with sharpness at {ts.size} times")
    flow = dl.gradient_flow(
        loss, net, t1, ts=ts, rtol=config["rtol"], atol=config["rtol"], observables=obs
    )

    fig, axes = plotting.figure(3, width=4.0, height=4.0)
    ax_s, ax_l, ax_d = axes[0]
    ax_s.plot(
        flow.ts, flow.observables["sharpness"], "k-", lw=2.2, label="gradient flow"
    )
    ax_l.semilogy(flow.ts, flow.loss, "k-", lw=2.2, label="gradient flow")
    metrics: dict = {
        "flow_sharpness_final": float(flow.observables["sharpness"][-1]),
        "flow_num_gradient_evals": flow.stats["num_gradient_evals"],
        "runs": {},
    }
    for i, (lr, gd) in enumerate(runs.items()):
        c = plotting.PALETTE[i]
        s_gd = np.asarray(gd.observables["sharpness"])
        ax_s.plot(gd.ts, s_gd, color=c, label=f"GD, η = {lr:g}")
        ax_s.axhline(2 / lr, color=c, ls=":", lw=1.2)
        ax_l.semilogy(gd.ts, gd.loss, color=c, lw=1.0, label=f"GD, η = {lr:g}")
        t_d, dist = dl.trajectory_distance(gd, flow)
        ax_d.semilogy(t_d[1:], dist[1:], color=c, label=f"η = {lr:g}")
        s_flow = np.asarray(flow.observables["sharpness"])
        crossed = np.nonzero(s_flow > 2 / lr)[0]
        t_cross = float(flow.ts[crossed[0]]) if len(crossed) else None
        if t_cross is not None:
            ax_d.axvline(t_cross, color=c, ls=":", lw=1.2)
        # EoS: average GD sharpness over the last fifth of the run vs 2/η.
        tail = s_gd[int(0.8 * len(s_gd)) :]
        before = dist[(t_d > 0) & (t_d <= (t_cross if t_cross else t1))]
        metrics["runs"][str(lr)] = {
            "two_over_lr": 2 / lr,
            "gd_sharpness_final": float(s_gd[-1]),
            "gd_sharpness_tail_mean": float(tail.mean()),
            "gd_sharpness_rel_dev_from_2_over_lr": float(
                abs(tail.mean() - 2 / lr) / (2 / lr)
            ),
            "at_edge_of_stability": bool(t_cross is not None),
            "flow_crosses_2_over_lr_at": t_cross,
            "distance_max_before_crossing": float(before.max())
            if len(before)
            else None,
            "distance_final": float(dist[-1]),
            "gd_final_loss": float(gd.loss[-1]),
        }
    ax_s.set(
        xlabel="time t = k·η",
        ylabel="sharpness λ_max(∇²Φ)",
        title="progressive sharpening and the 2/η ceiling",
    )
    # y-range from the data; the 2/η ceilings are labelled at the right edge of the
    # axes, and those above the data get an arrow at the top edge instead.
    s_all = np.concatenate(
        [np.asarray(flow.observables["sharpness"])]
        + [np.asarray(gd.observables["sharpness"]) for gd in runs.values()]
    )
    lo, hi = float(s_all.min()), float(s_all.max())
    pad = 0.06 * (hi - lo)
    ax_s.set_ylim(lo - pad, hi + 2 * pad)
    top = hi + 2 * pad
    edge = transforms.blended_transform_factory(ax_s.transAxes, ax_s.transData)
    for i, lr in enumerate(runs):
        c = plotting.PALETTE[i]
        inside = 2 / lr <= top  # a threshold above the data: marked at the top edge
        ax_s.annotate(
            f"2/η = {2 / lr:.3g}" + ("" if inside else " ↑"),
            (1.01, 2 / lr if inside else top),
            xycoords=edge,
            color=c,
            va="center" if inside else "top",
            ha="left",
            fontsize=9,
            annotation_clip=False,
        )
    ax_s.legend(loc="upper left")
    ax_l.set(xlabel="time t = k·η", ylabel="loss Φ", title="loss")
    plotting.log_ticks(ax_l, "y")
    ax_l.legend(loc="lower left")
    ax_d.set(
        xlabel="time t = k·η",
        ylabel="‖θ_GD(t) − θ_GF(t)‖",
        title="GD leaves the flow at λ_max = 2/η",
    )
    plotting.log_ticks(ax_d, "y")
    handles = ax_d.get_legend_handles_labels()[0] + [
        Line2D([], [], color="0.3", ls=":", lw=1.2, label="λ_max(GF) = 2/η")
    ]
    plotting.legend_outside(ax_d, handles=handles, ncol=2)
    plotting.save(fig, out / "edge_of_stability.png")
    metrics["flow_final_loss"] = float(flow.loss[-1])
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
