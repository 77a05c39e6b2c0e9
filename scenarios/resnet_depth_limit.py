"""Depth-N residual networks converge to their ODE: error vs N, one line per scheme.

One residual field f(x, Θ(t)) (a tanh MLP layer whose weights are a Legendre expansion
in depth, so Θ is smooth) is discretised with every scheme of `dynlearn.resnet` at depths
N = 16 … 512 (step h = T/N), and the network output x_N is compared with the solution of
the scheme's continuum limit, solved by Tsit5 at rtol = atol = 1e-13: ẋ = f for the
one-step and midpoint schemes (E 2017; Haber & Ruthotto 2017; Chang et al. 2018),
ẍ = f with ẋ(0) = 0 for the leapfrog network, (1 + k) ẋ = f for LM-ResNet (Lu et al.
2018), ẋ = f for the momentum ResNet with fixed γ (Sander et al. 2021) and for
Chang et al.'s Hamiltonian network on its two-half field.

Plots: log-log error vs N with fitted orders (expected 1 Euler, 2 Heun, 4 RK4,
2 midpoint / reversible Heun / leapfrog, 1 LM / momentum / Hamiltonian) and the depth
trajectory of one coordinate for Euler networks of growing depth against the ODE.
Metrics: the fitted orders and errors.
"""

from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, resnet as rn


CONFIG = {
    "seed": 0,
    "dim": 4,
    "width": 8,
    "num_basis": 3,
    "T": 1.0,
    "depths": [16, 32, 64, 128, 256, 512],
    "lm_k": -0.3,
    "momentum_gamma": 0.5,
    "ref_tol": 1e-13,
}
HELP = {
    "seed": "PRNG seed of the residual fields and the input",
    "dim": "state dimension d of the network",
    "width": "hidden width of each residual layer's MLP",
    "num_basis": "number of Legendre modes of the weights Θ(t) in depth",
    "T": "depth horizon T (step h = T/N)",
    "depths": "network depths N compared with the continuum limit",
    "lm_k": "the LM-ResNet coefficient k (limit (1 + k) ẋ = f)",
    "momentum_gamma": "the momentum ResNet's fixed γ",
    "ref_tol": "rtol = atol of the Tsit5 reference solves of the limits",
}
QUICK = {"depths": [16, 32, 64]}
SMOKE = {"depths": [4, 8, 16], "ref_tol": 1e-10}

ORDER_TOLERANCE = 0.3
"""How far a fitted convergence order may sit from the scheme's order."""


def headline(metrics: dict) -> tuple[str, bool]:
    """Worst deviation of the fitted orders from the schemes' orders."""
    dev = {
        name: abs(p - metrics["expected_orders"][name])
        for name, p in metrics["orders"].items()
    }
    worst = max(dev, key=lambda n: dev[n] if np.isfinite(dev[n]) else np.inf)
    held = all(np.isfinite(d) and d <= ORDER_TOLERANCE for d in dev.values())
    text = (
        f"{len(dev)} schemes converge at their orders: worst {worst} fitted "
        f"{metrics['orders'][worst]:.2f} vs {metrics['expected_orders'][worst]} "
        f"(expected ± {ORDER_TOLERANCE:g})"
    )
    return text, held


def _fit_range(errs, Ns, floor=1e-12):
    """Fit only points above the round-off floor (RK4 reaches it at large N)."""
    keep = np.asarray(errs) > floor
    return np.asarray(Ns)[keep], np.asarray(errs)[keep]


def run(config: dict, out: Path) -> dict:
    key = jr.key(config["seed"])
    kf, kh, ky = jr.split(key, 3)
    d, T, Ns = config["dim"], config["T"], config["depths"]
    field = rn.ResidualField.init(
        lambda k: dl.MLP(d, d, config["width"], 1, "tanh", key=k),
        config["num_basis"],
        T=T,
        basis="legendre",
        key=kf,
        coefficient_decay=1.0,
    )
    ham_field = rn.ResidualField.init(
        lambda k: rn.HamiltonianLayer(d, config["width"], key=k),
        config["num_basis"],
        T=T,
        basis="legendre",
        key=kh,
        coefficient_decay=1.0,
    )
    y0 = jr.normal(ky, (d,))
    tol = config["ref_tol"]
    cases = {
        "Euler (ResNet)": (rn.Euler(), field),
        "Heun": (rn.Heun(), field),
        "RK4": (rn.RK4(), field),
        "Midpoint": (rn.Midpoint(), field),
        "Reversible Heun": (rn.ReversibleHeun(), field),
        f"Momentum γ={config['momentum_gamma']:g}": (
            rn.Momentum(config["momentum_gamma"]),
            field,
        ),
        "Leapfrog (ẍ = f)": (rn.Leapfrog(), field),
        f"LM-ResNet k={config['lm_k']:g}": (rn.LMResNet(config["lm_k"]), field),
        "Hamiltonian": (rn.Hamiltonian(), ham_field),
    }
    results = {}
    for name, (scheme, fld) in tqdm(cases.items(), desc="resnet_depth_limit: schemes"):
        ref = rn.neural_ode(fld, y0, scheme=scheme, rtol=tol, atol=tol)
        errs = [
            float(jnp.linalg.norm(rn.discretise(fld, y0, scheme, N).y1 - ref))
            for N in Ns
        ]
        results[name] = {"scheme": scheme, "errors": errs, "expected": scheme.order}

    fig, axes = plotting.figure(3, width=4.0, height=5.6)
    metrics: dict = {
        "orders": {},
        "orders_last_pair": {},
        "expected_orders": {},
        "errors": {},
        "depths": Ns,
    }
    groups = [list(results)[:6], list(results)[6:]]
    titles = [
        "first-order ODE ẋ = f(x, Θ(t))",
        "scheme-specific limits",
    ]
    for ax, names, title in zip(axes[0, :2], groups, titles):
        for i, name in enumerate(names):
            r = results[name]
            x, e = _fit_range(r["errors"], Ns)
            p = plotting.loglog_slope(
                ax,
                x,
                e,
                label=f"{name} [{r['expected']}]",
                color=plotting.PALETTE[i],
                marker="os^vD<"[i],
            )
            metrics["orders"][name] = -p
            metrics["orders_last_pair"][name] = float(
                np.log2(r["errors"][-2] / r["errors"][-1])
            )
            metrics["expected_orders"][name] = r["expected"]
            metrics["errors"][name] = r["errors"]
        ax.set(
            xlabel="depth N (step h = T/N)",
            ylabel="‖x_N − x(T)‖",
            title=title,
        )
        plotting.log_ticks(ax, "y")
        ax.set_xticks(Ns, [str(N) for N in Ns])
        ax.set_xticks([], minor=True)
        plotting.legend_outside(
            ax, ncol=1, title="scheme [expected order] (fitted slope)", fontsize=9
        )

    ax = axes[0, 2]
    ts = jnp.linspace(0.0, T, 201)
    exact = rn.neural_ode(field, y0, rtol=tol, atol=tol, ts=ts)
    ax.plot(ts, exact[:, 0], "k-", lw=2.4, label="ODE solution (Tsit5)")
    for i, N in enumerate([2, 4, 8, 32]):
        sol = rn.discretise(field, y0, "euler", N, trajectory=True)
        ax.plot(
            sol.ts,
            sol.ys[:, 0],
            "o-",
            ms=3.5,
            lw=1,
            color=plotting.PALETTE[i + 1],
            label=f"Euler ResNet, N = {N}",
        )
    ax.set(
        xlabel="depth t = n·h",
        ylabel="first coordinate of x",
        title="layer states approach the ODE",
    )
    plotting.legend_outside(ax, ncol=1)
    plotting.save(fig, out / "resnet_depth_limit.png")
    return metrics


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
