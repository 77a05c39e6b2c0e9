"""Work–precision benchmark: diffrax solvers vs scipy's solve_ivp vs GD on one gradient flow.

The same flow θ' = −∇Φ(θ) of a tanh MLP on y = sin(x·w) (float64) is integrated to T
by several diffrax solvers over a sweep of tolerances, by
`scipy.integrate.solve_ivp` (RK45, on the flattened parameters, with a jitted gradient
called from Python at every stage), and approximated by GD at several learning rates.
For each run: wall time (compiled code, best of `repeats`), gradient evaluations, and
the relative error of θ(T) against a Dopri8 reference at rtol = 1e-12, all in one process.

Two problem sizes: the notes' toy (3-16-1, 81 parameters, N = 32), where per-call
Python overhead dominates solve_ivp, and a 3-32-32-1 MLP (1217 parameters, N = 64),
where the gradient itself costs more. Plots, one row per problem: error vs gradient
evaluations and error vs wall time. Metrics: every run, the wall-time ratio
RK45/Tsit5 at `target_error` (cheapest run of each that reaches it), and Tsit5's time
per gradient evaluation relative to a bare jitted gradient call and to one GD step
inside `lax.scan`.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from matplotlib import ticker
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting


# Its results are wall-time ratios: `dynlearn run all` runs it with no other
# scenario beside it.
RUN_ALONE = True

CONFIG = {
    "seed": 0,
    # (width, depth, n_data) of each problem; inputs are 3-dimensional
    "problems": [[16, 1, 32], [32, 2, 64]],
    "t1": 20.0,
    "rtols": [1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8],
    "solvers": ["tsit5", "dopri5", "dopri8", "bosh3"],
    "gd_lrs": [0.2, 0.1, 0.05, 0.025, 0.0125],
    "target_error": 1e-5,
    "repeats": 5,
}
HELP = {
    "seed": "PRNG seed of the data and the initial network",
    "problems": "[width, depth, n_data] of each MLP problem (3-dimensional inputs)",
    "t1": "time horizon T of the gradient flow",
    "rtols": "tolerances swept (rtol = atol) for diffrax solvers and scipy RK45",
    "solvers": "diffrax solver names (dynlearn.SOLVERS) benchmarked",
    "gd_lrs": "GD learning rates (GD approximates θ(T) with T/lr steps)",
    "target_error": "relative error of θ(T) at which RK45 and Tsit5 are compared",
    "repeats": "timed repeats of every run (the best is kept)",
}
QUICK = {
    "problems": [[16, 1, 32]],
    "rtols": [1e-4, 1e-5, 1e-6, 1e-7],
    "solvers": ["tsit5", "dopri8"],
    "gd_lrs": [0.1, 0.05, 0.025],
    "repeats": 2,
}
SMOKE = {
    "problems": [[4, 1, 8]],
    "t1": 2.0,
    "rtols": [1e-4, 1e-6],
    "solvers": ["tsit5"],
    "gd_lrs": [0.1],
    "repeats": 1,
}


def headline(metrics: dict) -> tuple[str, None]:
    """The wall-time ratio scipy RK45 / diffrax Tsit5 at the target error (a
    benchmark: nothing is asserted)."""
    parts = []
    for name, r in metrics["problems"].items():
        ratio = r["wall_ratio_rk45_over_tsit5"]
        value = f"{ratio:.1f}×" if ratio is not None else "not reached by both"
        parts.append(f"{value} at {name}")
    target = next(iter(metrics["problems"].values()))["target_error"]
    return f"RK45/Tsit5 wall time at rel. error {target:g}: " + ", ".join(parts), None


def run(config: dict, out: Path) -> dict:
    n = len(config["problems"])
    fig, axes = plotting.figure(2, n, width=5.0, height=4.3)
    results = {}
    for i, (width, depth, n_data) in enumerate(config["problems"]):
        print(f"solver_benchmark: problem {i + 1}/{n} (width {width}, depth {depth})")
        res = _benchmark(config, width, depth, n_data, axes[i])
        results[f"P={res['n_params']}"] = res
    # one legend for the figure: every panel shows the same methods
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=4
    )
    plotting.save(fig, out / "solver_benchmark.png")
    return {
        "problems": results,
        "wall_ratio_rk45_over_tsit5": {
            k: r["wall_ratio_rk45_over_tsit5"] for k, r in results.items()
        },
        "tsit5_time_per_grad_over_bare_jit": {
            k: r["tsit5_time_per_grad_over_bare_jit_median"] for k, r in results.items()
        },
    }


def _benchmark(config: dict, width: int, depth: int, n_data: int, axes) -> dict:
    kdata, knet = jax.random.split(jax.random.key(config["seed"]))
    X, Y = dl.sine_regression(n=n_data, d=3, key=kdata)
    net = dl.MLP(3, "scalar", width, depth, "tanh", key=knet)

    def loss(model):
        return 0.5 * jnp.mean((jax.vmap(model)(X) - Y) ** 2)

    t1, reps = config["t1"], config["repeats"]
    flat0, unravel = jax.flatten_util.ravel_pytree(net)
    n_params = int(flat0.size)
    ref = dl.gradient_flow(
        loss,
        net,
        t1,
        solver="dopri8",
        rtol=1e-12,
        atol=1e-12,
        num_saves=2,
        check_stiffness=False,
    )
    ref_vec = np.asarray(dl.ravel_params(ref.final_params))

    def rel_err(vec):
        return float(
            np.linalg.norm(np.asarray(vec) - ref_vec) / np.linalg.norm(ref_vec)
        )

    rows = []
    sweep = [(name, rtol) for name in config["solvers"] for rtol in config["rtols"]]
    for name, rtol in tqdm(sweep, desc="solver_benchmark: diffrax solvers"):
        times = []
        for _ in range(reps):  # the first call compiles; run_time excludes that
            tr = dl.gradient_flow(
                loss,
                net,
                t1,
                solver=name,
                rtol=rtol,
                atol=rtol,
                num_saves=2,
                check_stiffness=False,
            )
            times.append(tr.stats["run_time"])
        rows.append(
            {
                "method": f"diffrax {name}",
                "tol": rtol,
                "wall_s": min(times),
                "grad_evals": tr.stats["num_gradient_evals"],
                "steps": tr.stats["num_steps"],
                "rel_err": rel_err(dl.ravel_params(tr.final_params)),
            }
        )

    grad_flat = jax.jit(lambda v: jax.grad(lambda w: loss(unravel(w)))(v))
    grad_flat(flat0).block_until_ready()

    def rhs(t, y):
        return -np.asarray(grad_flat(y))

    for rtol in tqdm(config["rtols"], desc="solver_benchmark: scipy RK45"):
        times = []
        for _ in range(reps):
            tic = time.perf_counter()
            sol = scipy.integrate.solve_ivp(
                rhs, (0.0, t1), np.asarray(flat0), method="RK45", rtol=rtol, atol=rtol
            )
            times.append(time.perf_counter() - tic)
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed at rtol={rtol}: {sol.message}")
        rows.append(
            {
                "method": "scipy RK45",
                "tol": rtol,
                "wall_s": min(times),
                "grad_evals": int(sol.nfev),
                "steps": int(sol.t.size - 1),
                "rel_err": rel_err(sol.y[:, -1]),
            }
        )

    for lr in tqdm(config["gd_lrs"], desc="solver_benchmark: GD"):
        steps = int(round(t1 / lr))
        times = []
        for _ in range(reps):
            gd = dl.gradient_descent(
                loss, net, lr, steps, save_every=steps, save_params=False
            )
            times.append(gd.stats["run_time"])
        rows.append(
            {
                "method": "GD",
                "tol": lr,
                "wall_s": min(times),
                "grad_evals": steps,
                "steps": steps,
                "rel_err": rel_err(dl.ravel_params(gd.final_params)),
            }
        )

    # Bare jitted gradient: the floor for any method's cost per evaluation.
    n_calls = 200
    best = np.inf
    for _ in range(reps):
        tic = time.perf_counter()
        for _ in range(n_calls):
            g = grad_flat(flat0)
        g.block_until_ready()
        best = min(best, (time.perf_counter() - tic) / n_calls)
    t_grad = best

    target = config["target_error"]

    def cheapest(method):
        ok = [r for r in rows if r["method"] == method and r["rel_err"] <= target]
        return min(ok, key=lambda r: r["wall_s"]) if ok else None

    tsit, rk45 = cheapest("diffrax tsit5"), cheapest("scipy RK45")
    tsit_rows = [r for r in rows if r["method"] == "diffrax tsit5"]
    per_grad = [r["wall_s"] / r["grad_evals"] for r in tsit_rows]
    gd_step = min(r["wall_s"] / r["grad_evals"] for r in rows if r["method"] == "GD")

    methods = list(dict.fromkeys(r["method"] for r in rows))
    markers = dict(zip(methods, "osD^vx*+"))
    for i, m in enumerate(methods):
        rs = [r for r in rows if r["method"] == m]
        style = dict(
            marker=markers[m],
            color=plotting.PALETTE[i % 8],
            label=m,
            ls="--" if m == "GD" else "-",
        )
        axes[0].loglog(
            [r["grad_evals"] for r in rs], [r["rel_err"] for r in rs], **style
        )
        axes[1].loglog([r["wall_s"] for r in rs], [r["rel_err"] for r in rs], **style)
    for ax, xl in zip(axes, ("gradient evaluations", "wall time (s, compiled code)")):
        ax.axhline(target, color="0.5", ls=":", lw=1)
        ax.set(xlabel=xl, ylabel="relative error of θ(T)")
        plotting.log_ticks(ax)
    # the time axis in ms, labelled at 1, 2, 5 × 10^k (it spans one to two decades)
    axes[1].xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[1].xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x * 1e3:g}"))
    axes[1].xaxis.set_minor_formatter(ticker.NullFormatter())
    axes[1].set_xlabel("wall time (ms, compiled code)")
    axes[0].set_title(f"{n_params} parameters, T = {t1:g}: error vs gradients")
    ratio = rk45["wall_s"] / tsit["wall_s"] if tsit and rk45 else float("nan")
    axes[1].set_title(f"RK45/Tsit5 wall time at {target:g}: {ratio:.1f}×")

    return {
        "n_params": n_params,
        "reference_steps": ref.stats["num_steps"],
        "bare_grad_time_s": t_grad,
        "gd_step_time_s": gd_step,
        "tsit5_time_per_grad_over_bare_jit": [t / t_grad for t in per_grad],
        "tsit5_time_per_grad_over_bare_jit_median": float(np.median(per_grad) / t_grad),
        "tsit5_time_per_grad_over_gd_step_median": float(np.median(per_grad) / gd_step),
        "target_error": target,
        "tsit5_at_target": tsit,
        "rk45_at_target": rk45,
        "wall_ratio_rk45_over_tsit5": (
            rk45["wall_s"] / tsit["wall_s"] if tsit and rk45 else None
        ),
        "grad_ratio_rk45_over_tsit5": (
            rk45["grad_evals"] / tsit["grad_evals"] if tsit and rk45 else None
        ),
        "runs": rows,
    }


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
