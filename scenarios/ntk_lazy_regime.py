"""Lazy training: wide networks follow their linearised closed form; NTK speed benchmark.

A two-layer tanh MLP in the NTK parameterisation learns y = sin(Σx) (d = 5, 20
training and 10 test points, loss ½·mean). For each width we integrate the gradient
flow with Tsit5 and overlay the closed-form linearised prediction
f_t = f_0 − Θ Θ⁻¹(I − e^{−Θt/N})(f_0 − y) built from the empirical NTK at
initialisation (Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019,
arXiv:1902.06720). Measured scalings (notes gradient_flow.md §4: −1.13 train,
−0.97 test, −1.05 NTK change, −0.52 weights): the function gap and the kernel movement
fall as 1/width (Dyer & Gur-Ari 2020), the relative weight change as 1/√width, and
the initial kernel's distance to the analytic infinite-width NTK as 1/√width
(fluctuations).

Benchmark: empirical NTK of a 3-hidden-layer width-512 MLP on 256 inputs by plain
Jacobian contraction (blocked) and by structured derivatives (Novak et al. 2022,
arXiv:2206.08720): wall time and XLA temporary memory of each.

Plots: f_t vs f_lin over time at the smallest and largest width; gaps vs width
(log-log, fitted slopes); kernel/weight movement vs width; benchmark wall time and
memory of each method (log scale).
"""

import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.ticker
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, width


CONFIG = {
    "seed": 0,
    "d": 5,
    "n_train": 20,
    "n_test": 10,
    "widths": [64, 256, 1024, 4096],
    "seeds": 3,
    "t1": 20.0,
    "rtol": 1e-8,
    "bench_width": 512,
    "bench_depth": 3,
    "bench_inputs": 256,
    "bench_block": 64,
    "bench_ntvp": False,  # NTK-vector products: ~1e11 flops at this size on a CPU
}
QUICK = {
    "widths": [64, 256, 1024],
    "seeds": 1,
    "rtol": 1e-6,
    "bench_width": 128,
    "bench_inputs": 32,
    "bench_block": 16,
    "bench_ntvp": False,
}
HELP = {
    "seed": "PRNG seed of data and networks",
    "d": "input dimension of the regression task y = sin(Σx)",
    "n_train": "number of training points",
    "n_test": "number of test points",
    "widths": "hidden widths n of the two-layer tanh MLPs (≥ 3 for fitted slopes)",
    "seeds": "initialisations per width (the scaling metrics are averaged)",
    "t1": "final time of the gradient flow",
    "rtol": "relative tolerance of the Tsit5 integration (atol = rtol/100)",
    "bench_width": "hidden width of the benchmarked MLP",
    "bench_depth": "hidden layers of the benchmarked MLP",
    "bench_inputs": "number of inputs: the empirical NTK is bench_inputs²",
    "bench_block": "block size of the blocked Jacobian contraction",
    "bench_ntvp": "also time NTK-vector products (~1e11 flops at full size on a CPU)",
}
SMOKE = {
    "n_train": 8,
    "n_test": 4,
    "widths": [16, 32],
    "t1": 2.0,
    "bench_width": 16,
    "bench_depth": 2,
    "bench_inputs": 8,
    "bench_block": 4,
    "bench_ntvp": True,
}
METHODS = {
    "jacobian": "Jacobian\ncontraction",
    "ntvp": "NTK-vector\nproducts",
    "structured": "structured\nderivatives",
}


def _outputs(params_path, x):
    dyn, static = eqx.partition(params_path, eqx.is_inexact_array)
    return jax.lax.map(lambda p: jax.vmap(eqx.combine(p, static))(x), dyn)


def _one_width(w, x, y, xt, ts, config, key, k_inf):
    d = config["d"]
    net = dl.MLP(d, "scalar", w, 1, "tanh", parameterization="ntk", key=key)

    def loss(m):
        return 0.5 * jnp.mean((jax.vmap(m)(x) - y) ** 2)

    # (the stiffness diagnostic is off: it costs a second compilation per width, and
    # at these tolerances the solve is far inside the explicit stability limit)
    traj = dl.gradient_flow(
        loss,
        net,
        config["t1"],
        ts=ts,
        rtol=config["rtol"],
        atol=config["rtol"] * 1e-2,
        check_stiffness=False,
    )
    f_train, f_test = _outputs(traj.params, x), _outputs(traj.params, xt)
    k0 = width.empirical_ntk(net, x)
    lin_train, lin_test = width.linearized_mse(
        k0,
        y,
        jax.vmap(net)(x),
        ts,
        ntk_test_train=width.empirical_ntk(net, xt, x),
        f0_test=jax.vmap(net)(xt),
    )
    k1 = width.empirical_ntk(traj.at(-1), x)
    p0, p1 = dl.ravel_params(net), dl.ravel_params(traj.final_params)
    return {
        "gap_train": float(jnp.max(jnp.abs(f_train - lin_train))),
        "gap_test": float(jnp.max(jnp.abs(f_test - lin_test))),
        "ntk_change": float(width.kernel_distance(k1, k0)),
        "weight_change": float(jnp.linalg.norm(p1 - p0) / jnp.linalg.norm(p0)),
        "ntk0_vs_infinite": float(width.kernel_distance(k0, k_inf)),
        "final_loss": float(traj.loss[-1]),
    }, (np.asarray(f_test[:, 0]), np.asarray(lin_test[:, 0]))


def _bench(config):
    n, depth, w = config["bench_inputs"], config["bench_depth"], config["bench_width"]
    net = dl.MLP(
        32, "scalar", w, depth, "relu", parameterization="ntk", key=jax.random.key(1)
    )
    x = jax.random.normal(jax.random.key(2), (n, 32))
    out = {"num_params": int(dl.ravel_params(net).size), "inputs": n}
    ref = None
    methods = [("jacobian", config["bench_block"]), ("structured", None)]
    if config["bench_ntvp"]:
        methods.insert(1, ("ntvp", None))
    for impl, block in methods:
        dyn, static = eqx.partition(net, eqx.is_array)

        def f(d, x, impl=impl, block=block):
            m = eqx.combine(d, static)
            return width.empirical_ntk(m, x, implementation=impl, block_size=block)

        compiled = jax.jit(f).lower(dyn, x).compile()
        try:
            temp = int(compiled.memory_analysis().temp_size_in_bytes)
        except Exception:  # not every backend reports it
            temp = -1
        jax.block_until_ready(compiled(dyn, x))  # warm
        times = []
        for _ in range(3):
            tic = time.perf_counter()
            k = jax.block_until_ready(compiled(dyn, x))
            times.append(time.perf_counter() - tic)
        out[impl] = {"seconds": min(times), "temp_bytes": temp}
        if ref is None:
            ref = k
        else:
            out[f"max_rel_difference_{impl}"] = float(
                jnp.max(jnp.abs(k - ref)) / jnp.max(jnp.abs(ref))
            )
    out["speedup"] = out["jacobian"]["seconds"] / out["structured"]["seconds"]
    return out


def run(config: dict, out: Path) -> dict:
    kd, kt, kn = jax.random.split(jax.random.key(config["seed"]), 3)
    d = config["d"]
    x, y = dl.sine_regression(n=config["n_train"], d=d, key=kd)
    xt, _ = dl.sine_regression(n=config["n_test"], d=d, key=kt)
    ts = jnp.linspace(0.0, config["t1"], 41)
    widths = list(config["widths"])
    rows, curves = [], {}
    seed_keys = jax.random.split(kn, config["seeds"])
    k_inf = width.infinite_width_kernels(x, depth=1, activation="tanh").ntk
    for w in tqdm(widths, desc="widths (gradient flow + NTK)", leave=False):
        per_seed = []
        for i, k in enumerate(seed_keys):
            row, curve = _one_width(w, x, y, xt, ts, config, k, k_inf)
            per_seed.append(row)
            if i == 0:
                curves[w] = curve
        # mean over seeds (notes gradient_flow.md §4 average 3 seeds)
        rows.append(
            {
                "width": w,
                **{k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]},
            }
        )

    fig, axes = plotting.figure(3, width=4.0, height=4.4)
    ax = axes[0, 0]
    for i, w in enumerate((widths[0], widths[-1])):
        gf, lin = curves[w]
        c = plotting.PALETTE[i]
        ax.plot(ts, gf, "-", color=c, label=f"gradient flow, width {w}")
        ax.plot(ts, lin, "--", color=c, label=f"linearised closed form, width {w}")
    ax.set(
        xlabel="time t", ylabel="f_t(x_test,0)", title="one test output during training"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9)
    ax = axes[0, 1]
    metrics: dict = {}
    for key, label in (("gap_train", "train"), ("gap_test", "test")):
        metrics[f"slope_{key}"] = plotting.loglog_slope(
            ax, widths, [r[key] for r in rows], label=f"sup_t |f − f_lin|, {label}"
        )
    plotting.reference_slope(ax, widths[0], rows[0]["gap_train"] / 3, -1.0)
    ax.set(
        xlabel="width n",
        ylabel="max over t and points",
        title=f"distance to linear ({config['seeds']} seed(s) averaged)",
    )
    plotting.log_ticks(ax, "y")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9)
    ax = axes[0, 2]
    for key, label in (
        ("ntk_change", "‖Θ_T − Θ_0‖/‖Θ_0‖"),
        ("weight_change", "‖θ_T − θ_0‖/‖θ_0‖"),
        ("ntk0_vs_infinite", "‖Θ_0 − Θ_∞‖/‖Θ_∞‖"),
    ):
        metrics[f"slope_{key}"] = plotting.loglog_slope(
            ax, widths, [r[key] for r in rows], label=label
        )
    ax.set(xlabel="width n", ylabel="relative change", title="lazy training")
    plotting.log_ticks(ax, "y")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9)
    plotting.save(fig, out / "ntk_lazy_regime.png")

    print("  empirical-NTK benchmark", flush=True)
    bench = _bench(config)
    fig, axes = plotting.figure(2, width=4.6, height=4.0)
    names = [n for n in METHODS if n in bench]
    pos = np.arange(len(names))
    panels = (
        (axes[0, 0], [bench[n]["seconds"] for n in names], "wall time (s)", "s"),
        (
            axes[0, 1],
            [bench[n]["temp_bytes"] / 2**20 for n in names],
            "XLA temporary memory (MiB)",
            "MiB",
        ),
    )
    for ax, vals, ylabel, unit in panels:
        vals = np.asarray(vals, float)
        ok = vals > 0  # a backend without memory analysis reports −1
        ax.plot(pos[ok], vals[ok], "o", ms=9, color=plotting.PALETTE[0])
        for i in pos[ok]:
            ax.annotate(
                f"{vals[i]:.3g} {unit}",
                (i, vals[i]),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize=10,
            )
        ax.set_yscale("log")
        if ok.any():
            lo, hi = vals[ok].min(), vals[ok].max()
            ax.set_ylim(lo / 4, hi * 6)
        ax.set_xticks(pos, [METHODS[n] for n in names])
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_ylabel(ylabel)
    axes[0, 0].set_title(
        f"NTK of {bench['num_params']:,} params on {bench['inputs']} inputs: "
        f"{bench['speedup']:.1f}× faster",
        fontsize=11,
    )
    axes[0, 1].set_title("XLA temporary memory")
    plotting.save(fig, out / "ntk_benchmark.png")
    metrics.update(rows=rows, benchmark=bench, device=str(jax.devices()[0]))
    return metrics


def headline(metrics: dict) -> tuple[str, bool | None]:
    """Lazy-training scalings with width: function gap and kernel movement ∝ 1/n,
    relative weight change ∝ 1/√n."""
    g, k, w = (
        metrics["slope_gap_train"],
        metrics["slope_ntk_change"],
        metrics["slope_weight_change"],
    )
    return (
        f"sup|f − f_lin| ∝ n^{g:.2f}, ‖ΔΘ‖ ∝ n^{k:.2f} (expected −1 ± 0.3), ‖Δθ‖ ∝ "
        f"n^{w:.2f} (expected −0.5 ± 0.2); structured NTK "
        f"{metrics['benchmark']['speedup']:.1f}× the Jacobian contraction",
        bool(abs(g + 1) < 0.3 and abs(k + 1) < 0.3 and abs(w + 0.5) < 0.2),
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
