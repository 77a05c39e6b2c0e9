"""Engine overheads: batched sweeps, compile-once calls, SDE and flow cost against bare JAX and diffrax.

A benchmark, not a test (nothing is asserted): every number is a ratio of two wall
times measured in this process (or in fresh child processes for the cold start), on
the MLP of `solver_benchmark` (a tanh `dynlearn.MLP` learning y = sin(x·w), float64):

- **sweep**: `n_lrs` GD runs of `sweep_steps` steps at different learning rates, as
  one `jax.jit(jax.vmap(...))` call of `dynlearn.gradient_descent`, against as many
  eager calls that each compile anew (each gets a new loss closure, as a program
  that bakes its hyperparameters in would), end to end, compilation included (quick
  mode runs 8 of the eager calls and scales their time to `n_lrs`);
- **second call**: an eager `gradient_descent` call with a new learning rate, as a
  fraction of the first call's wall time (which compiles);
- **SDE of SGD**: `dynlearn.sgd_sde` (Euler–Maruyama, dt = lr) per path step over
  `dynlearn.sgd` per step, same loss, batch size and learning rate, warm calls;
- **flow**: the default `dynlearn.gradient_flow` (Tsit5, PID controller, 101 saves of
  loss and gradient norm, stiffness check) against a bare jitted
  `diffrax.diffeqsolve` of the same vector field −∇Φ with the same solver,
  controller, tolerances and saves, warm calls; also without the stiffness check,
  and the compiled solve alone (`stats["run_time"]`);
- **save every step**: `gradient_descent` with `save_every=1` over `scan_steps`
  steps against a hand-written `jax.lax.scan` that stores the same parameters, loss
  and gradient norm at every step;
- **cold start**: a fresh Python process from `import dynlearn` to the first
  `gradient_flow` result, against one from `import diffrax, equinox` to the first
  `diffeqsolve` result (the same `equinox.nn.MLP` problem in both), with JAX's
  persistent compilation cache off in the children.

JAX's persistent compilation cache is switched off in this process for the duration
of the benchmark (it would turn recompilations into file reads) and restored after.
Warm timings are the best of `repeats` calls. Plot: the measured ratio of every
comparison on a log axis with its target. Metrics: every raw time, every ratio, its
target and whether it was met.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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
    "n_lrs": 32,
    "eager_timed": 32,
    "lr_range": [0.01, 0.2],
    "sweep_steps": 1000,
    "sweep_save_every": 10,
    "sgd_steps": 2000,
    "batch_size": 8,
    "lr": 0.05,
    "t1": 20.0,
    "scan_steps": 10_000,
    "repeats": 5,
    "cold_repeats": 2,
}
HELP = {
    "seed": "PRNG seed of the data and the initial network",
    "problems": "[width, depth, n_data] of each tanh MLP problem (3-dimensional inputs)",
    "n_lrs": "learning rates of the sweep (one batched call vs this many eager calls)",
    "eager_timed": "eager calls of the sweep actually run (the rest are extrapolated)",
    "lr_range": "smallest and largest learning rate of the sweep (log-spaced)",
    "sweep_steps": "GD steps of every run of the sweep and of the second-call timing",
    "sweep_save_every": "save interval of the sweep runs",
    "sgd_steps": "SGD steps (and Euler–Maruyama steps of the SDE, dt = lr)",
    "batch_size": "minibatch size of SGD and of its SDE",
    "lr": "learning rate of SGD, of its SDE and of the save-every-step GD run",
    "t1": "time horizon of the gradient-flow solves",
    "scan_steps": "GD steps of the save-every-step comparison",
    "repeats": "timed repeats of every warm measurement (the best is kept)",
    "cold_repeats": "fresh processes per cold-start measurement (the best is kept)",
}
QUICK = {
    "problems": [[16, 1, 32]],
    "eager_timed": 8,
    "sgd_steps": 1000,
    "scan_steps": 3000,
    "repeats": 3,
    "cold_repeats": 1,
}
SMOKE = {
    "problems": [[4, 1, 8]],
    "n_lrs": 4,
    "eager_timed": 2,
    "sweep_steps": 20,
    "sgd_steps": 20,
    "batch_size": 4,
    "t1": 1.0,
    "scan_steps": 50,
    "repeats": 1,
}

# (key, plot label, target, direction): ">=" a speed-up to reach, "<=" a cost ratio
# to stay under
BENCHMARKS = [
    (
        "sweep",
        "learning-rate sweep: recompiling\ncalls ÷ one batched call (speed-up)",
        10.0,
        ">=",
    ),
    ("second_call", "second run, new learning rate:\ntime ÷ first run's", 0.05, "<="),
    ("sde_vs_sgd", "SDE of SGD ÷ SGD,\ntime per step", 5.0, "<="),
    (
        "flow_vs_diffrax",
        "gradient flow ÷ bare diffrax\nsolve of the same flow",
        1.1,
        "<=",
    ),
    (
        "flow_vs_diffrax_no_stiffness_check",
        "the same, without the\nstiffness check",
        1.1,
        "<=",
    ),
    (
        "flow_vs_diffrax_compiled_solve",
        "the same, compiled solve\nalone (no Python around it)",
        1.1,
        "<=",
    ),
    (
        "save_every_step_vs_scan",
        "GD saving every step ÷\nhand-written scan",
        1.3,
        "<=",
    ),
    (
        "cold_start",
        "fresh process to first flow\nresult: dynlearn ÷ diffrax",
        1.3,
        "<=",
    ),
]
# the comparisons the headline counts (the others are shown for comparison)
HEADLINE_KEYS = (
    "sweep",
    "second_call",
    "sde_vs_sgd",
    "flow_vs_diffrax",
    "save_every_step_vs_scan",
    "cold_start",
)


def headline(metrics: dict) -> tuple[str, None]:
    """Targets met, and each headline ratio, on the first problem (a benchmark:
    nothing is asserted)."""
    name, res = next(iter(metrics["problems"].items()))
    b = res["benchmarks"]
    met = sum(b[k]["met"] for k in HEADLINE_KEYS)
    parts = [
        f"sweep {b['sweep']['ratio']:.1f}× (≥ 10×)",
        f"2nd call {100 * b['second_call']['ratio']:.1f}% (≤ 5%)",
        f"SDE/SGD {b['sde_vs_sgd']['ratio']:.2f}× (≤ 5×)",
        f"flow/diffrax {b['flow_vs_diffrax']['ratio']:.2f}× (≤ 1.1×)",
        f"save-every-step/scan {b['save_every_step_vs_scan']['ratio']:.2f}× (≤ 1.3×)",
        f"cold start {b['cold_start']['ratio']:.2f}× (≤ 1.3×)",
    ]
    text = f"{met} of {len(HEADLINE_KEYS)} targets met at {name}: " + ", ".join(parts)
    return text, None


@contextlib.contextmanager
def _persistent_cache_off():
    """Switch JAX's persistent compilation cache off (and back on after), so that a
    recompilation is a compilation, not a file read."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    was = bool(jax.config.jax_enable_compilation_cache)
    jax.config.update("jax_enable_compilation_cache", False)
    cc.reset_cache()
    try:
        yield was
    finally:
        jax.config.update("jax_enable_compilation_cache", was)
        cc.reset_cache()


def run(config: dict, out: Path) -> dict:
    results = {}
    with _persistent_cache_off() as cache_was_on:
        for width, depth, n_data in config["problems"]:
            res = _benchmark(config, width, depth, n_data)
            results[f"P={res['n_params']}"] = res
    _plot(results, out / "engine_benchmark.png")
    first = next(iter(results.values()))["benchmarks"]
    return {
        "problems": results,
        "ratios": {k: r["ratio"] for k, r in first.items()},
        "targets_met": int(sum(first[k]["met"] for k in HEADLINE_KEYS)),
        "targets_total": len(HEADLINE_KEYS),
        "persistent_cache_was_on": cache_was_on,
        "persistent_cache_during_benchmark": False,
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
    }


def _best(fn, repeats: int):
    """Best wall time of `repeats` calls of `fn` (blocked on), the last output, and
    every output."""
    best, outs = np.inf, []
    for _ in range(repeats):
        tic = time.perf_counter()
        outs.append(jax.block_until_ready(fn()))
        best = min(best, time.perf_counter() - tic)
    return best, outs[-1], outs


def _wall(fn):
    tic = time.perf_counter()
    res = jax.block_until_ready(fn())
    return time.perf_counter() - tic, res


def _entry(key: str, ratio: float, **raw) -> dict:
    _, _, target, direction = next(b for b in BENCHMARKS if b[0] == key)
    met = ratio >= target if direction == ">=" else ratio <= target
    return {
        "ratio": float(ratio),
        "target": target,
        "direction": direction,
        "met": bool(met),
        **raw,
    }


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree_util.tree_leaves(tree)))


def _benchmark(config: dict, width: int, depth: int, n_data: int) -> dict:
    kdata, knet = jax.random.split(jax.random.key(config["seed"]))
    X, Y = dl.sine_regression(n=n_data, d=3, key=kdata)
    net = dl.MLP(3, "scalar", width, depth, "tanh", key=knet)
    n_params = int(dl.ravel_params(net).size)

    def loss(model):
        return 0.5 * jnp.mean((jax.vmap(model)(X) - Y) ** 2)

    def batch_loss(model, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((jax.vmap(model)(xb) - yb) ** 2)

    reps = config["repeats"]
    parts = ["sweep", "second call", "SDE vs SGD", "flow", "save every step", "cold"]
    bar = tqdm(parts, desc=f"engine_benchmark: {n_params} parameters")
    it = iter(bar)
    # JAX's one-time start-up (backend, first dispatches) is paid here, by neither
    # side of any comparison
    dl.gradient_descent(lambda p: loss(p), net, 0.1, 10)
    bench: dict = {}

    # sweep: one batched call vs n_lrs eager calls that each compile
    next(it)
    steps, se = config["sweep_steps"], config["sweep_save_every"]
    lrs = np.geomspace(*config["lr_range"], config["n_lrs"])
    t_batched, batched = _wall(
        lambda: jax.jit(
            jax.vmap(
                lambda lr: dl.gradient_descent(loss, net, lr, steps, save_every=se)
            )
        )(jnp.asarray(lrs))
    )
    # the eager calls: each a new closure, so a new program, compiled anew; the
    # first `eager_timed` of them are run and their mean stands for the others
    timed = min(config["eager_timed"], len(lrs))
    t_timed, n_comp, diff = 0.0, 0, 0.0
    for i, lr in enumerate(lrs[:timed]):
        w, tr = _wall(
            lambda i=i, lr=lr: dl.gradient_descent(
                lambda p, i=i: loss(p), net, float(lr), steps, save_every=se
            )
        )
        t_timed += w
        n_comp += tr.stats["num_compilations"]
        diff = max(diff, float(np.max(np.abs(tr.loss - batched.loss[i]))))
    t_eager = t_timed * len(lrs) / timed
    bench["sweep"] = _entry(
        "sweep",
        t_eager / t_batched,
        n_runs=len(lrs),
        steps=steps,
        batched_wall_s=t_batched,
        eager_wall_s=t_eager,
        eager_calls_run=timed,
        eager_extrapolated=timed < len(lrs),
        eager_wall_s_of_calls_run=t_timed,
        eager_num_compilations_of_calls_run=n_comp,
        max_loss_difference=diff,
    )

    # second call with a new learning rate vs the first (compiling) one
    next(it)
    fresh = lambda p: loss(p)  # a loss function no call has compiled yet
    w1, tr1 = _wall(lambda: dl.gradient_descent(fresh, net, 0.1, steps, save_every=se))
    w2, tr2 = _wall(lambda: dl.gradient_descent(fresh, net, 0.05, steps, save_every=se))
    bench["second_call"] = _entry(
        "second_call",
        w2 / w1,
        first_wall_s=w1,
        second_wall_s=w2,
        first_num_compilations=tr1.stats["num_compilations"],
        second_num_compilations=tr2.stats["num_compilations"],
        first_compile_time_s=tr1.stats["compile_time"],
        second_compile_time_s=tr2.stats["compile_time"],
    )

    # sgd_sde per path step vs sgd per step (warm)
    next(it)
    lr, k, bs = config["lr"], config["sgd_steps"], config["batch_size"]
    sgd_every = max(1, k // 100)
    if k % sgd_every:
        raise ValueError(f"sgd_steps={k} must be a multiple of {sgd_every}.")
    key = jax.random.key(config["seed"] + 1)
    run_sgd = lambda: dl.sgd(
        batch_loss, net, (X, Y), lr, k, batch_size=bs, key=key, save_every=sgd_every
    )
    run_sde = lambda: dl.sgd_sde(
        batch_loss,
        net,
        (X, Y),
        lr,
        lr * k,
        batch_size=bs,
        key=key,
        dt=lr,
        num_saves=k // sgd_every + 1,
    )
    run_sgd(), run_sde()  # compile
    t_sgd, *_ = _best(run_sgd, reps)
    t_sde, sde, _ = _best(run_sde, reps)
    sde_steps = sde.stats["num_steps"]
    bench["sde_vs_sgd"] = _entry(
        "sde_vs_sgd",
        (t_sde / sde_steps) / (t_sgd / k),
        sgd_wall_s=t_sgd,
        sde_wall_s=t_sde,
        sgd_steps=k,
        sde_steps=sde_steps,
        sgd_time_per_step_s=t_sgd / k,
        sde_time_per_step_s=t_sde / sde_steps,
    )

    # default gradient_flow vs a bare diffeqsolve of the same flow (warm)
    next(it)
    t1 = config["t1"]
    flow = lambda **kw: dl.gradient_flow(loss, net, t1, **kw)
    flow()
    t_flow, tr_flow, outs = _best(flow, reps)
    runs = [tr.stats["run_time"] for tr in outs]
    flow(check_stiffness=False)
    t_nocheck, tr_nocheck, _ = _best(lambda: flow(check_stiffness=False), reps)
    rtol, atol = tr_flow.stats["rtol"], tr_flow.stats["atol"]
    dyn, static = eqx.partition(net, eqx.is_inexact_array)
    phi = lambda d: loss(eqx.combine(d, static))
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(dyn))
    ts = jnp.linspace(0.0, t1, 101, dtype=dtype)

    def vector_field(t, y, args):
        return jax.tree_util.tree_map(jnp.negative, jax.grad(phi)(y))

    def save(t, y, args):
        value, grad = jax.value_and_grad(phi)(y)
        return y, value, _tree_norm(grad)

    @jax.jit
    def bare(y0):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(vector_field),
            dfx.Tsit5(),
            jnp.asarray(0.0, dtype),
            jnp.asarray(t1, dtype),
            None,
            y0,
            saveat=dfx.SaveAt(ts=ts, fn=save),
            stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
            max_steps=100_000,
        )
        return sol.ys, sol.stats["num_steps"]

    bare(dyn)
    t_bare, (ys, bare_steps), _ = _best(lambda: bare(dyn), reps)
    flow_raw = dict(
        flow_wall_s=t_flow,
        flow_no_stiffness_check_wall_s=t_nocheck,
        flow_compiled_solve_s=min(runs),
        bare_diffrax_wall_s=t_bare,
        repeated_call_num_compilations=tr_flow.stats["num_compilations"],
        flow_num_steps=tr_flow.stats["num_steps"],
        bare_num_steps=int(bare_steps),
        max_loss_difference=float(np.max(np.abs(tr_flow.loss - ys[1]))),
        rtol=rtol,
        atol=atol,
    )
    bench["flow_vs_diffrax"] = _entry("flow_vs_diffrax", t_flow / t_bare, **flow_raw)
    bench["flow_vs_diffrax_no_stiffness_check"] = _entry(
        "flow_vs_diffrax_no_stiffness_check",
        t_nocheck / t_bare,
        repeated_call_num_compilations=tr_nocheck.stats["num_compilations"],
    )
    bench["flow_vs_diffrax_compiled_solve"] = _entry(
        "flow_vs_diffrax_compiled_solve", min(runs) / t_bare
    )

    # gradient_descent saving every step vs a hand-written scan (warm)
    next(it)
    n = config["scan_steps"]
    run_gd = lambda: dl.gradient_descent(loss, net, lr, n, save_every=1)
    run_gd()

    @jax.jit
    def scan(y0):
        def step(y, _):
            value, grad = jax.value_and_grad(phi)(y)
            new = jax.tree_util.tree_map(lambda a, g: a - lr * g, y, grad)
            return new, (y, value, _tree_norm(grad))

        return jax.lax.scan(step, y0, None, length=n)

    scan(dyn)
    t_gd, gd, _ = _best(run_gd, reps)
    t_scan, (_, (_, scan_loss, _)), _ = _best(lambda: scan(dyn), reps)
    bench["save_every_step_vs_scan"] = _entry(
        "save_every_step_vs_scan",
        t_gd / t_scan,
        steps=n,
        gd_wall_s=t_gd,
        gd_compiled_run_s=gd.stats["run_time"],
        scan_wall_s=t_scan,
        max_loss_difference=float(np.max(np.abs(gd.loss[:-1] - scan_loss))),
    )

    # cold start: fresh processes, no persistent compilation cache
    next(it)
    t_cold_dl, out_dl = _cold(_COLD_DYNLEARN, config, width, depth, n_data)
    t_cold_bare, out_bare = _cold(_COLD_DIFFRAX, config, width, depth, n_data)
    bench["cold_start"] = _entry(
        "cold_start",
        t_cold_dl / t_cold_bare,
        dynlearn_process_s=t_cold_dl,
        diffrax_process_s=t_cold_bare,
        final_loss_dynlearn=out_dl,
        final_loss_diffrax=out_bare,
    )
    bar.close()
    return {
        "n_params": n_params,
        "width": width,
        "depth": depth,
        "n_data": n_data,
        "benchmarks": bench,
    }


# The child processes of the cold start. Both build the same problem from scratch,
# an equinox MLP (not dynlearn's, so that the diffrax child never imports dynlearn).
_COLD_COMMON = """
import jax
jax.config.update("jax_enable_x64", {x64})
jax.config.update("jax_enable_compilation_cache", False)
import jax.numpy as jnp
import equinox as eqx
kx, knet = jax.random.split(jax.random.key({seed}))
X = jax.random.normal(kx, ({n_data}, 3))
Y = jnp.sin(X @ jnp.array([1.0, -2.0, 0.5]))
net = eqx.nn.MLP(3, "scalar", {width}, {depth}, activation=jnp.tanh, key=knet)
"""
_COLD_DYNLEARN = """
import dynlearn as dl
def loss(m):
    return 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2)
print(float(dl.gradient_flow(loss, net, {t1}).loss[-1]))
"""
_COLD_DIFFRAX = """
import diffrax as dfx
dyn, static = eqx.partition(net, eqx.is_inexact_array)
def phi(d):
    m = eqx.combine(d, static)
    return 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2)
def vf(t, y, args):
    return jax.tree_util.tree_map(jnp.negative, jax.grad(phi)(y))
def save(t, y, args):
    v, g = jax.value_and_grad(phi)(y)
    return y, v, jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree_util.tree_leaves(g)))
@jax.jit
def solve(y0):
    return dfx.diffeqsolve(
        dfx.ODETerm(vf), dfx.Tsit5(), 0.0, {t1}, None, y0,
        saveat=dfx.SaveAt(ts=jnp.linspace(0.0, {t1}, 101), fn=save),
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
        max_steps=100_000,
    ).ys
print(float(solve(dyn)[1][-1]))
"""


def _cold(body: str, config: dict, width: int, depth: int, n_data: int):
    """Best wall time of `cold_repeats` fresh processes running `body`, and the
    final loss the child printed."""
    fields = dict(
        x64=bool(jax.config.jax_enable_x64),
        seed=config["seed"],
        n_data=n_data,
        width=width,
        depth=depth,
        t1=float(config["t1"]),
    )
    code = (_COLD_COMMON + body).format(**fields)
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    best, value = np.inf, None
    for _ in range(config["cold_repeats"]):
        tic = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - tic
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start child failed:\n{proc.stderr[-2000:]}")
        best, value = min(best, wall), float(proc.stdout.split()[-1])
    return best, value


def _plot(results: dict, path: Path) -> None:
    from matplotlib.lines import Line2D

    rows = BENCHMARKS[::-1]  # first benchmark on top
    fig, axes = plotting.figure(1, 1, width=9.0, height=0.62 * len(rows) + 1.9)
    ax = axes[0, 0]
    ratios = [
        r["benchmarks"][k]["ratio"] for r in results.values() for k, *_ in BENCHMARKS
    ]
    targets = [t for _, _, t, _ in BENCHMARKS]
    lo = min(min(ratios), min(targets)) / 2.5
    hi = max(max(ratios), max(targets)) * 4.0
    markers = "osD^"
    met_color, missed_color = plotting.PALETTE[0], plotting.PALETTE[1]
    n = len(results)
    for y, (key, _, target, direction) in enumerate(rows):
        # the side of the target where it is met, shaded
        good_end = hi if direction == ">=" else lo
        ax.plot(
            [target, good_end],
            [y, y],
            color=plotting.PALETTE[2],
            alpha=0.18,
            lw=11,
            solid_capstyle="butt",
            zorder=1,
        )
        ax.plot([target], [y], marker="|", ms=20, mew=2.2, color="0.35", zorder=2)
        for j, res in enumerate(results.values()):
            b = res["benchmarks"][key]
            dy = 0.0 if n == 1 else 0.28 * (j - (n - 1) / 2)
            color = met_color if b["met"] else missed_color
            ax.plot(
                [b["ratio"]],
                [y + dy],
                marker=markers[j % 4],
                ms=8,
                mew=1.8,
                color=color,
                mfc=color if b["met"] else "white",
                ls="none",
                zorder=3,
            )
            if key == "second_call":
                value = f"{100 * b['ratio']:.1f}%"
            else:
                value = f"{b['ratio']:.2g}×"
            ax.annotate(
                value,
                (b["ratio"], y + dy),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
                color=color,
            )
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [label for _, label, _, _ in rows])
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(axis="y", visible=False)
    plotting.log_ticks(ax, "x")
    ax.set_xlabel("measured ratio of wall times (log scale)")
    ax.set_title("dynlearn engine overheads on this machine")
    handles = [
        Line2D([], [], color="0.35", marker="|", ms=14, mew=2.2, ls="none"),
        Line2D([], [], color=plotting.PALETTE[2], alpha=0.3, lw=8),
        Line2D([], [], color=met_color, marker="o", ms=7, ls="none"),
        Line2D([], [], color=missed_color, mfc="white", marker="o", ms=7, ls="none"),
    ]
    labels = ["target", "target met on this side", "met", "missed"]
    if n > 1:
        for j, res in enumerate(results.values()):
            handles.append(
                Line2D([], [], color="0.3", marker=markers[j % 4], ms=7, ls="none")
            )
            labels.append(f"{res['n_params']} parameters")
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(len(handles), 4),
        frameon=False,
    )
    plotting.save(fig, path)


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
