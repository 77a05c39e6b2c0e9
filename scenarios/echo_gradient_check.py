"""Echo gradients vs jax.grad: O(η) one-sided, O(η²) symmetric, and why reversibility matters.

A network of 15 Duffing oscillators (2 inputs, 1 output, 12 learning oscillators; the
reference system of López-Pastor & Marquardt's HEB, PRX 13, 031020 (2023), as set up in
the project notes) evolves for T = 10. We inject an error kick η at the output,
time-reverse, echo back and compare the displacement (echo(x) − x)/η with ηJ∇L from
`jax.grad` of the same discretised loss. With leapfrog (symmetric, symplectic) the
relative error falls exactly as η (one-sided) and η² (symmetric ±η) down to the
round-off floor ε·κ/η. With RK4 at a coarse step the echo does not retrace: the
one-sided error grows like (reversal error)/η as η shrinks and the symmetric one
plateaus.

Plots: (1) relative error vs η for both estimators and both integrators, with slope-1/2
reference lines and the round-off floor; (2) ∂L/∂θ read from the learning field's
momentum kick vs jax.grad; (3) the cost of one echo step vs jax.grad through the stored
trajectory vs a checkpointed adjoint: wall time and compiled temporary memory against
the number of integration steps (HEB memory does not grow with the number of steps).
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynlearn import echo, plotting


CONFIG = {
    "seed": 1,
    "t1": 10.0,
    "num_steps": 500,
    "rk4_steps": 100,
    "etas": [10.0**k for k in np.arange(-1.0, -8.5, -0.5)],
    "bench_steps": [500, 1000, 2000, 5000],
    "bench_repeats": 5,
}
HELP = {
    "seed": "PRNG seed of the Duffing network's couplings",
    "t1": "evolution time T of the forward pass",
    "num_steps": "leapfrog (Strang) steps over [0, T]",
    "rk4_steps": "RK4 steps over [0, T] (the non-reversible comparison)",
    "etas": "error-kick strengths η swept",
    "bench_steps": "integration steps N of the time and memory benchmark",
    "bench_repeats": "timed repeats in the benchmark (the best is kept)",
}
QUICK = {
    "etas": [10.0**k for k in range(-1, -9, -1)],
    "bench_steps": [500, 5000],
    "bench_repeats": 2,
}
SMOKE = {
    "num_steps": 50,
    "rk4_steps": 20,
    "t1": 2.0,
    "etas": [1e-2, 1e-3, 1e-4, 1e-5, 1e-6],
    "bench_steps": [50, 100],
    "bench_repeats": 1,
}


def headline(metrics: dict) -> tuple[str, bool]:
    """Fitted orders in η of the leapfrog echo gradient's error, one-sided and
    symmetric."""
    s1, s2 = metrics["slope_one_sided"], metrics["slope_symmetric"]
    held = bool(abs(s1 - 1) <= 0.1 and abs(s2 - 2) <= 0.2)
    text = (
        f"echo-gradient error ∝ η^{s1:.2f} one-sided, η^{s2:.2f} symmetric "
        "(expected 1 ± 0.1 and 2 ± 0.2)"
    )
    return text, held


def _setup(config):
    mac = echo.DuffingNetwork(
        2,
        1,
        12,
        t1=config["t1"],
        num_steps=config["num_steps"],
        key=jax.random.PRNGKey(config["seed"]),
    )
    theta = 0.5 * jnp.asarray(np.random.default_rng(1).normal(size=12))
    s0 = mac.initial_state(jnp.array([1.0, -1.0]), theta)
    y = jnp.array([-0.5])
    return mac, theta, s0, lambda s: echo.squared_error(mac.output(s), y)


def _errors(h, s0, cost, t1, steps, etas, integrator=None):
    loss = lambda s: cost(echo.evolve(h, s, t1, steps, integrator=integrator))
    exact = echo.to_real(h, echo.state_gradient(h, loss, s0))

    @jax.jit
    @jax.vmap
    def errs(eta):
        out = []
        for sym in (False, True):
            g = echo.echo_gradient(
                h,
                s0,
                cost,
                eta,
                t1,
                steps,
                symmetric=sym,
                integrator=integrator,
                check=False,
            )
            d = echo.to_real(h, g) - exact
            out.append(jnp.linalg.norm(d) / jnp.linalg.norm(exact))
        return jnp.stack(out)

    e = np.asarray(errs(jnp.asarray(etas)))
    return e[:, 0], e[:, 1]


def _benchmark(mac, s0, cost, steps_list, repeats):
    """Wall time and compiled temporary memory of: one echo (HEB: two forward
    evolutions), jax.grad through the stored trajectory, and a checkpointed adjoint
    (√N segments, each rematerialised in the backward pass)."""
    h, integ = mac.hamiltonian, echo.Strang()
    rows = []
    for n in steps_list:
        dt = mac.t1 / n
        step = lambda x, _: (integ.step(h, x, dt), None)

        def plain(x):
            return jax.lax.scan(step, x, None, length=n)[0]

        seg = int(np.sqrt(n))
        while n % seg:
            seg -= 1

        def checkpointed(x):
            @jax.checkpoint
            def segment(x, _):
                return jax.lax.scan(step, x, None, length=seg)[0], None

            return jax.lax.scan(segment, x, None, length=n // seg)[0]

        def heb(x):
            xe = h.kick(plain(x), cost, 1e-4)
            return h.time_reverse(plain(h.time_reverse(xe)))

        fns = {
            "heb_echo": heb,
            "grad_stored": jax.grad(lambda x: cost(plain(x))),
            "grad_checkpointed": jax.grad(lambda x: cost(checkpointed(x))),
        }
        row = {"num_steps": n}
        for name, f in fns.items():
            compiled = jax.jit(f).lower(s0).compile()
            mem = compiled.memory_analysis()
            jax.block_until_ready(compiled(s0))
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                jax.block_until_ready(compiled(s0))
                times.append(time.perf_counter() - t)
            row[f"{name}_time_s"] = min(times)  # best of `repeats` (shared CPU)
            row[f"{name}_temp_bytes"] = (
                int(mem.temp_size_in_bytes) if mem is not None else None
            )
        rows.append(row)
    return rows


def run(config: dict, out: Path) -> dict:
    mac, theta, s0, cost = _setup(config)
    h, t1 = mac.hamiltonian, config["t1"]
    etas = np.asarray(config["etas"], float)
    print("echo_gradient_check: echo vs jax.grad over η (leapfrog, RK4)")
    lf_one, lf_sym = _errors(h, s0, cost, t1, config["num_steps"], etas)
    rk4 = echo.RK4()
    rk_one, rk_sym = _errors(h, s0, cost, t1, config["rk4_steps"], etas, rk4)
    rev_lf = float(echo.reversal_error(h, s0, t1, config["num_steps"]))
    rev_rk = float(echo.reversal_error(h, s0, t1, config["rk4_steps"], integrator=rk4))

    # gradient w.r.t. the parameters from the learning field's momentum kick
    n_q = 15
    g_echo = echo.echo_gradient(h, s0, cost, 1e-4, t1, config["num_steps"])[0][3:n_q]
    g_exact = jax.grad(
        lambda th: mac.loss(th, jnp.array([1.0, -1.0]), jnp.array([-0.5]))
    )(theta)
    err_theta = float(jnp.linalg.norm(g_echo - g_exact) / jnp.linalg.norm(g_exact))

    print("echo_gradient_check: time and memory benchmark")
    bench = _benchmark(mac, s0, cost, config["bench_steps"], config["bench_repeats"])

    fig, axes = plotting.figure(2, 2, width=5.6, height=4.2)
    ax = axes[0, 0]
    c = plotting.PALETTE
    ok1 = (etas >= 1e-6) & (etas <= 1e-2)
    ok2 = (etas >= 1e-4) & (etas <= 1e-2)
    s1 = plotting.loglog_slope(
        ax, etas[ok1], lf_one[ok1], label="leapfrog, one-sided", color=c[0]
    )
    s2 = plotting.loglog_slope(
        ax, etas[ok2], lf_sym[ok2], label="leapfrog, symmetric ±η", color=c[1]
    )
    ax.loglog(etas, lf_one, "o", color=c[0], mfc="none")
    ax.loglog(etas, lf_sym, "s", color=c[1], mfc="none")
    ax.loglog(
        etas,
        rk_one,
        "^--",
        color=c[2],
        label=f"RK4 h = {t1 / config['rk4_steps']:g}, one-sided",
    )
    ax.loglog(etas, rk_sym, "v--", color=c[3], label="RK4, symmetric")
    eps = np.finfo(np.float64).eps
    ax.loglog(etas, 1e2 * eps / etas, ":", color="0.5", label="round-off floor 100ε/η")
    ax.set(
        xlabel="error-kick strength η",
        ylabel="relative error of echo gradient",
        title="echo vs jax.grad (float64)",
    )
    ax.invert_xaxis()
    plotting.log_ticks(ax)
    plotting.legend_outside(ax, ncol=2, fontsize=9)

    ax = axes[0, 1]
    ax.plot(g_exact, g_echo, "o", color=c[0], label=f"rel. error {err_theta:.1e}")
    lim = float(jnp.max(jnp.abs(g_exact))) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1, label="y = x")
    ax.set(
        xlabel="∂L/∂θ from jax.grad",
        ylabel="−(momentum kick)/η  (symmetric, η = 1e-4)",
        title="parameter gradient from the echo",
    )
    ax.legend(loc="upper left")

    ns = np.array([r["num_steps"] for r in bench])
    labels = {
        "heb_echo": "HEB echo (2 forward passes)",
        "grad_stored": "jax.grad, stored trajectory",
        "grad_checkpointed": "jax.grad, √N checkpoints",
    }
    ax, axm = axes[1, 0], axes[1, 1]
    for i, (k, lab) in enumerate(labels.items()):
        ax.loglog(
            ns, [r[f"{k}_time_s"] * 1e3 for r in bench], "o-", color=c[i], label=lab
        )
        mem = [r[f"{k}_temp_bytes"] for r in bench]
        if None not in mem:
            axm.loglog(ns, np.maximum(mem, 1) / 1e3, "s-", color=c[i], label=lab)
    for a in (ax, axm):
        a.set_xticks(ns, [str(n) for n in ns], minor=False)
        a.set_xticks([], minor=True)
        a.set_xlabel("integration steps N")
        plotting.log_ticks(a, "y")
        a.legend(loc="upper left")
    ax.set(
        ylabel="wall time per gradient [ms] (best of runs)",
        title=f"time per gradient ({jax.default_backend().upper()})",
    )
    axm.set(
        ylabel="compiled temporary memory [kB]",
        title="memory per gradient (XLA memory analysis)",
    )
    plotting.save(fig, out / "echo_gradient_check.png")

    return {
        "etas": etas.tolist(),
        "leapfrog_one_sided": lf_one.tolist(),
        "leapfrog_symmetric": lf_sym.tolist(),
        "rk4_one_sided": rk_one.tolist(),
        "rk4_symmetric": rk_sym.tolist(),
        "slope_one_sided": s1,
        "slope_symmetric": s2,
        "reversal_error_leapfrog": rev_lf,
        "reversal_error_rk4": rev_rk,
        "symplecticity_error_leapfrog": float(
            echo.symplecticity_error(h, s0, t1, config["num_steps"])
        ),
        "theta_gradient_rel_error_eta_1e-4": err_theta,
        "benchmark": bench,
    }


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
