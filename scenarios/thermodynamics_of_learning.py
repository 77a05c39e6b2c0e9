"""Thermodynamics of learning: entropy, free energy and temperature of Langevin and SGD ensembles.

Vanchurin (2021, arXiv:2004.09280) describes learning with a canonical ensemble: the
total entropy splits as S = S₀(T) + C (thermodynamic entropy plus complexity), it
decreases during learning until equilibrium (second law, eq. 7.6), and loss increments
track entropy increments (first law, eq. 7.11). We make this concrete with ensembles
of M parameter vectors trained by Langevin dynamics dθ = −∇Φ dt + √(2T) dW
(Euler–Maruyama in diffrax) and by minibatch SGD:

1. Quadratic loss (exactly solvable, notes thermo_nnft.md §1.10): the ensemble
   entropy S(t), energy U(t) and free energy F(t) against the exact Euler–Maruyama
   curves, and the equilibrium values U = PT/2, C = −½ log det A.
2. A tanh network on a regression task, ensemble started from random initialisations
   (σ_b = 0.5, so that every parameter has a spread):
   F(t) decreases (the second law at fixed bath temperature); the Gaussian-fit
   entropy S(t) is drawn beside it and need not decrease (in quick mode it grows, by
   ~4.6 nats, as the ensemble spreads from its initialisation while the loss falls);
   temperature estimated by the configurational estimator ⟨‖∇Φ‖²⟩/⟨tr ∇²Φ⟩ (exact for a Gibbs ensemble) approaches the bath T.
3. First law along the network run: ΔU against T ΔS between checkpoints.
4. SGD ensemble: its configurational temperature vs learning rate (an effective
   temperature ∝ η/B, Mandt, Hoffman & Blei 2017, arXiv:1704.04289).

Entropies are Gaussian-fit entropies ½ log det(2πe Σ̂) of the parameter ensemble
(exact for the quadratic case, an upper bound otherwise).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.ticker
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, width


CONFIG = {
    "seed": 0,
    "ensemble": 2000,
    "quad_eigs": [0.5, 1.0, 2.0, 4.0],
    "quad_T": 0.2,
    "quad_init_std": 2.0,
    "quad_t1": 8.0,
    "quad_ensemble": 4000,
    "dt": 0.02,
    "net_width": 6,
    "net_data": 16,
    "net_T": 0.002,
    "net_t1": 40.0,
    "sgd_lrs": [0.05, 0.1, 0.2],
    "sgd_batch": 4,
    "sgd_steps": 2000,
}
HELP = {
    "seed": "PRNG seed of data, initialisations and noise",
    "ensemble": "number M of networks in the tanh-net Langevin and SGD ensembles",
    "quad_eigs": "eigenvalues of the quadratic loss Φ = ½ θᵀAθ (A diagonal)",
    "quad_T": "bath temperature T of the quadratic-loss Langevin run",
    "quad_init_std": "standard deviation of the initial quadratic-loss ensemble",
    "quad_t1": "final time of the quadratic-loss Langevin run",
    "quad_ensemble": "number of parameter vectors in the quadratic-loss ensemble",
    "dt": "Euler–Maruyama time step of both Langevin runs",
    "net_width": "hidden width of the tanh network (one hidden layer, 2-D input)",
    "net_data": "number of sine-regression training points",
    "net_T": "bath temperature T of the network Langevin run",
    "net_t1": "final time of the network Langevin run",
    "sgd_lrs": "SGD learning rates η of the SGD ensembles (≥ 3 for a fitted slope)",
    "sgd_batch": "SGD minibatch size B",
    "sgd_steps": "SGD steps per learning rate",
}
QUICK = {
    "ensemble": 400,
    "quad_ensemble": 2000,
    "net_t1": 20.0,
    "sgd_steps": 800,
    "sgd_lrs": [0.05, 0.1, 0.2],
}
SMOKE = {
    "ensemble": 64,
    "quad_ensemble": 256,
    "quad_t1": 2.0,
    "net_t1": 2.0,
    "sgd_steps": 50,
}


def _thermo_path(samples_path, losses_path, temperature, **kw):
    n = losses_path.shape[1]
    out = [
        width.thermodynamics(
            jax.tree.map(lambda a: a[:, i], samples_path),
            losses_path[:, i],
            temperature,
            **kw,
        )
        for i in range(n)
    ]
    return {k: np.array([float(getattr(o, k)) for o in out]) for k in out[0]._fields}


def _label_log_axis(axis, values) -> None:
    """Label a log axis at the given values (a short log range has too few decades
    for matplotlib's default major ticks)."""
    axis.set_ticks(list(values), [f"{v:g}" for v in values])
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def run(config: dict, out: Path) -> dict:
    key = jax.random.key(config["seed"])
    m, dt = config["ensemble"], config["dt"]
    metrics: dict = {}
    fig, axes = plotting.figure(2, 2, width=5.4, height=4.0)

    # 1. Quadratic loss.
    print("  quadratic loss: Langevin ensemble vs exact Euler–Maruyama", flush=True)
    lam = np.asarray(config["quad_eigs"], float)
    a = jnp.diag(jnp.asarray(lam))
    t_q = config["quad_T"]

    def quad(p):
        return 0.5 * p @ a @ p

    key, k0, k1 = jax.random.split(key, 3)
    mq = config["quad_ensemble"]
    x0 = config["quad_init_std"] * jax.random.normal(k0, (mq, lam.size))
    ts = jnp.linspace(0.0, config["quad_t1"], 21)
    traj = width.langevin(
        quad, x0, t_q, config["quad_t1"], key=jax.random.split(k1, mq), dt=dt, ts=ts
    )
    th = _thermo_path(traj.params, traj.loss, t_q)
    var = np.full(lam.size, config["quad_init_std"] ** 2)
    k_save = np.round(np.asarray(ts) / dt).astype(int)
    s_all, u_all = [], []  # the exact curves at every Euler–Maruyama step
    for k in range(k_save[-1] + 1):
        s_all.append(0.5 * np.sum(np.log(2 * np.pi * np.e * var)))
        u_all.append(0.5 * np.sum(lam * var))
        var = (1 - lam * dt) ** 2 * var + 2 * t_q * dt
    s_all, u_all = np.array(s_all), np.array(u_all)
    t_all = dt * np.arange(s_all.size)
    exact_s, exact_u = s_all[k_save], u_all[k_save]
    eq = width.quadratic_equilibrium(a, t_q, dt=dt)
    ax = axes[0, 0]
    ax.plot(ts, th["entropy"], "o", ms=4, label="S, ensemble (Gaussian fit)")
    ax.plot(t_all, s_all, "-", color=plotting.PALETTE[0], label="S, exact")
    ax.plot(ts, th["free_energy"], "s", ms=4, label="F = U − TS, ensemble")
    ax.plot(
        t_all, u_all - t_q * s_all, "-", color=plotting.PALETTE[1], label="F, exact"
    )
    ax.axhline(float(eq.entropy), color="0.5", ls=":", label="equilibrium S, F")
    ax.axhline(float(eq.free_energy), color="0.5", ls=":")
    ax.set(
        xlabel="time t",
        ylabel="entropy / free energy (nats)",
        title=f"quadratic loss, P = {lam.size}, T = {t_q:g}",
    )
    ax.legend(fontsize=9, ncol=2, loc="upper right")
    ax.margins(y=0.35)
    metrics["quadratic"] = {
        "max_abs_entropy_error": float(np.max(np.abs(th["entropy"] - exact_s))),
        "entropy_stderr": float(0.5 * np.sqrt(2 * lam.size / mq)),
        "final_energy": float(th["energy"][-1]),
        "final_energy_exact_curve": float(exact_u[-1]),
        "energy_stderr": float(np.std(np.asarray(traj.loss[:, -1])) / np.sqrt(mq)),
        "exact_energy_EM": float(eq.energy),
        "exact_energy_continuous": float(lam.size * t_q / 2),
        "final_complexity": float(th["complexity"][-1]),
        "exact_complexity_EM": float(eq.complexity),
        "exact_complexity_continuous": float(-0.5 * np.sum(np.log(lam))),
        "exact_entropy_monotone": bool(np.all(np.diff(exact_s) < 0)),
        "entropy_decrease_first_half": bool(
            np.all(np.diff(th["entropy"][: len(ts) // 2]) < 0)
        ),
    }

    # 2./3. A small tanh network trained by Langevin from random initialisations.
    print("  tanh network: Langevin ensemble", flush=True)
    key, kd, kn, kl = jax.random.split(key, 4)
    x, y = dl.sine_regression(n=config["net_data"], d=2, key=kd)
    nets = jax.vmap(
        lambda k: dl.MLP(
            2, "scalar", config["net_width"], 1, "tanh", sigma_b=0.5, key=k
        )
    )(jax.random.split(kn, m))

    def net_loss(net):
        return 0.5 * jnp.mean((jax.vmap(net)(x) - y) ** 2)

    p_net = dl.ravel_params(jax.tree.map(lambda a: a[0], nets)).size
    t_n = config["net_T"]
    ts_n = jnp.linspace(0.0, config["net_t1"], 21)
    traj = width.langevin(
        net_loss,
        nets,
        t_n,
        config["net_t1"],
        key=jax.random.split(kl, m),
        dt=dt,
        ts=ts_n,
    )
    th_n = _thermo_path(traj.params, traj.loss, t_n)
    idx = np.arange(0, len(ts_n), 4)
    t_conf = [
        float(
            width.configurational_temperature(
                net_loss, jax.tree.map(lambda a: a[:, i], traj.params)
            )
        )
        for i in idx
    ]
    ax = axes[0, 1]
    ax.plot(ts_n, th_n["entropy"] - th_n["entropy"][0], "o-", ms=4, label="S(t) − S(0)")
    ax.plot(
        ts_n,
        (th_n["free_energy"] - th_n["free_energy"][0]),
        "s-",
        ms=4,
        label="F(t) − F(0)",
    )
    ax.set(
        xlabel="time t",
        ylabel="nats",
        title=f"tanh net (P = {p_net}), Langevin T = {t_n:g}",
    )
    ax.legend(fontsize=9, loc="center left")
    ax2 = ax.twinx()
    ax2.semilogy(
        ts_n[idx], t_conf, "^", color=plotting.PALETTE[2], label="T_conf (right axis)"
    )
    ax2.axhline(t_n, color=plotting.PALETTE[2], ls=":", lw=1, label="bath T")
    ax2.set_ylabel("configurational temperature")
    ax2.legend(fontsize=9, loc="upper right")
    ax2.grid(False)

    # First law between checkpoints: |ΔU| and T|ΔS| on a log scale (T ΔS is orders
    # of magnitude below ΔU while the loss still falls; filled: decrease, open:
    # increase).
    du = np.diff(th_n["energy"])
    tds = t_n * np.diff(th_n["entropy"])
    t_mid = 0.5 * (np.asarray(ts_n[1:]) + np.asarray(ts_n[:-1]))
    ax = axes[1, 0]
    for vals, lab, mk, c in (
        (du, "|ΔU|, energy change", "o", plotting.PALETTE[0]),
        (tds, "T |ΔS|, heat at the bath T", "s", plotting.PALETTE[1]),
    ):
        mag = np.abs(vals)
        neg = vals < 0
        ax.semilogy(t_mid, mag, "-", color=c, lw=1, alpha=0.6)
        ax.semilogy(t_mid[neg], mag[neg], mk, color=c, ms=5, label=f"{lab}")
        ax.semilogy(t_mid[~neg], mag[~neg], mk, color=c, ms=5, mfc="none")
    ax.set(
        xlabel="time t (checkpoint interval midpoint)",
        ylabel="change per interval (nats)",
        title="first law along training: ΔU ≠ T ΔS (filled: decrease)",
    )
    ax.legend(fontsize=9, loc="upper right")
    ax.margins(y=0.3)
    metrics["network"] = {
        "entropy_change": float(th_n["entropy"][-1] - th_n["entropy"][0]),
        "free_energy_change": float(th_n["free_energy"][-1] - th_n["free_energy"][0]),
        "entropy_monotone": bool(np.all(np.diff(th_n["entropy"]) < 0)),
        "configurational_temperature": t_conf,
        "bath_temperature": t_n,
        "final_mean_loss": float(th_n["energy"][-1]),
    }

    # 4. SGD ensembles from the trained Langevin endpoint of one network.
    start = jax.tree.map(lambda a: a[0], traj.final_params)
    data = (x, y)

    def batch_loss(net, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((jax.vmap(net)(xb) - yb) ** 2)

    lrs = list(config["sgd_lrs"])
    t_sgd = []
    print(f"  SGD ensembles at {len(lrs)} learning rates", flush=True)
    for lr in tqdm(lrs, desc="SGD ensembles", leave=False):
        key, ks = jax.random.split(key)
        run_ = dl.sgd(
            batch_loss,
            start,
            data,
            lr,
            config["sgd_steps"],
            batch_size=config["sgd_batch"],
            key=jax.random.split(ks, m),
            save_every=config["sgd_steps"],
        )
        t_sgd.append(
            float(width.configurational_temperature(net_loss, run_.final_params))
        )
    ax = axes[1, 1]
    if len(lrs) >= 3:  # a power law is fitted through three points or more
        slope = plotting.loglog_slope(ax, lrs, t_sgd, label="SGD ensemble T_conf")
    else:
        ax.loglog(lrs, t_sgd, "o", label="SGD ensemble T_conf")
        slope = float("nan")
    ax.set(
        xlabel="learning rate η",
        ylabel="configurational temperature",
        title=f"SGD temperature (batch {config['sgd_batch']} of {x.shape[0]})",
    )
    _label_log_axis(ax.xaxis, lrs)
    plotting.log_ticks(ax, "y")
    ax.legend(fontsize=9, loc="upper left")
    plotting.save(fig, out / "thermodynamics_of_learning.png")
    metrics["sgd"] = {"lrs": lrs, "temperature": t_sgd, "slope_vs_lr": slope}
    return metrics


def headline(metrics: dict) -> tuple[str, bool | None]:
    """Quadratic-loss entropy S(t) against the exact Euler–Maruyama curve, and the SGD
    temperature's power law in the learning rate (Mandt et al.: T ∝ η)."""
    q = metrics["quadratic"]
    z = q["max_abs_entropy_error"] / q["entropy_stderr"]
    slope = metrics["sgd"]["slope_vs_lr"]
    slope_ok = bool(np.isfinite(slope) and abs(slope - 1.0) < 0.3)
    return (
        f"quadratic S(t) within {z:.1f} SE of exact (expected < 4); SGD T_conf ∝ "
        f"η^{slope:.2f} (expected exponent 1 ± 0.3)",
        bool(z < 4.0) and slope_ok,
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
