"""Finite-width field theory: the connected 4-point function, kurtosis and quartic coupling.

At infinite width a random-network ensemble is a Gaussian (free) field; at width N
the connected 4-point function G_c is O(1/N), an interaction (Halverson, Maiti &
Stoner 2021, arXiv:2008.08601; Roberts, Yaida & Hanin 2022, arXiv:2106.10165). We
estimate G_c from ensembles of `dl.MLP` with the Rao–Blackwellised estimator (output
Gaussian given the last hidden layer; notes thermo_nnft.md §3.3) and batch-means
error bars, and compare with exact results:

* one hidden layer: G_c = 3σ_w⁴ Var[φ(z)²]/N exactly (relu, x = 1: 3.75/N, κ = 15/N;
  erf, σ_w = σ_b = 1: 0.3998/N);
* deep relu at criticality (σ_w² = 2): κ = 3[(1 + 5/n)^L − 1] exactly, vs the
  leading-order PDLT 15L/n (valid for L/n ≪ 1); deep tanh at criticality
  (σ_w² = 1) vs the leading-order PDLT recursion for K and V;
* the leading quartic coupling λ of a local φ⁴ action, −G_c / ∫Π K (tree level, HMS
  §4), extracted per input tuple from erf networks: N·λ is width-independent.

Plots: G_c vs N (log-log, slopes, exact lines); κ vs depth at fixed width; N·λ vs N.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, width


CONFIG = {
    "seed": 0,
    "num_networks": 20_000,
    "widths": [8, 16, 32, 64, 128, 256, 512],
    "depth_width": 32,
    "depths": [1, 2, 4, 8, 16],
    "coupling_inputs": [-1.0, -0.2, 0.6, 1.0],
    "cutoff": 10.0,
}
QUICK = {
    "num_networks": 10_000,
    "widths": [8, 64, 512],
    "depths": [1, 4],
}
HELP = {
    "seed": "PRNG seed of the network ensembles",
    "num_networks": "random networks per ensemble (error bars: 10 batch means)",
    "widths": "hidden widths N of the one-hidden-layer ensembles (≥ 3 for a slope)",
    "depth_width": "hidden width n of the deep ensembles (κ vs depth)",
    "depths": "numbers of hidden layers L of the deep ensembles at criticality",
    "coupling_inputs": "inputs x of the erf networks for the quartic coupling λ",
    "cutoff": "cutoff Λ of the integration grid [−Λ, Λ] for the coupling λ",
}
SMOKE = {"num_networks": 200, "widths": [8, 16], "depths": [1, 2]}


def _g4_kappa_estimator(c):
    return jnp.stack(
        [
            width.connected_four_point_from_covariance(c)[0, 0, 0, 0],
            width.kurtosis_from_covariance(c)[0],
        ]
    )


# compiled once per ensemble shape (every single-input ensemble shares one program)
_g4_and_kappa_jit = jax.jit(
    functools.partial(width.with_error_bars, _g4_kappa_estimator)
)


def _lambda_stats(c, k_grid, wts):
    lam = width.quartic_coupling(
        width.connected_four_point_from_covariance(c), k_grid, wts
    )
    return jnp.stack([jnp.mean(lam), jnp.std(lam)])


@jax.jit
def _lambda_with_error_bars(cov, k_grid, wts):
    return width.with_error_bars(lambda c: _lambda_stats(c, k_grid, wts), cov)


def _covariances(key, xs, num, **mlp):
    return width.sample_ensemble(
        lambda k: dl.MLP("scalar", "scalar", key=k, **mlp),
        lambda net: width.readout_covariance(net, xs),
        num,
        chunk_size=min(num, 5000),
        key=key,
    )


def _g4_and_kappa(cov):
    return _g4_and_kappa_jit(cov)


def run(config: dict, out: Path) -> dict:
    key = jax.random.key(config["seed"])
    m = config["num_networks"]
    x1 = jnp.array([1.0])
    widths = np.array(config["widths"])
    nets = {
        "relu": dict(activation="relu", sigma_w=1.0, sigma_b=0.0),
        "erf": dict(activation="erf", sigma_w=1.0, sigma_b=1.0),
    }
    # erf ensembles are sampled once on the coupling inputs plus x = 1 and reused
    # for the single-point panel and the coupling panel.
    xs_c = [float(v) for v in config["coupling_inputs"]]
    xs_erf = jnp.asarray(xs_c + ([] if 1.0 in xs_c else [1.0]))
    i_one = [float(v) for v in xs_erf].index(1.0)
    erf_covs = {}
    fig, axes = plotting.figure(3, width=4.0, height=5.2)
    ax = axes[0, 0]
    metrics: dict = {"single_layer": {}}
    print("  one hidden layer: G_c vs width", flush=True)
    for i, (name, kw) in enumerate(nets.items()):
        k0 = kw["sigma_b"] ** 2 + kw["sigma_w"] ** 2
        exact = width.single_layer_four_point(
            kw["activation"], 1, k0=k0, sigma_w=kw["sigma_w"], sigma_b=kw["sigma_b"]
        )[1]
        vals, errs = [], []
        for n in tqdm(widths, desc=f"{name} widths", leave=False):
            key, sub = jax.random.split(key)
            if name == "erf":
                erf_covs[int(n)] = _covariances(
                    sub, xs_erf, m, width=int(n), depth=1, **kw
                )
                cov = erf_covs[int(n)][:, i_one : i_one + 1, i_one : i_one + 1]
            else:
                cov = _covariances(sub, x1, m, width=int(n), depth=1, **kw)
            est = _g4_and_kappa(cov)
            vals.append(float(est.mean[0]))
            errs.append(float(est.stderr[0]))
        c = plotting.PALETTE[i]
        ax.errorbar(widths, vals, yerr=2 * np.array(errs), fmt="none", color=c)
        slope = plotting.loglog_slope(ax, widths, vals, label=f"{name}", color=c)
        ax.loglog(widths, exact / widths, ":", color=c, label=f"exact {exact:.4g}/N")
        metrics["single_layer"][name] = {
            "slope": slope,
            "N_times_Gc": [float(v * n) for v, n in zip(vals, widths)],
            "N_times_Gc_stderr": [float(e * n) for e, n in zip(errs, widths)],
            "exact_N_times_Gc": exact,
        }
    ax.set(
        xlabel="width N",
        ylabel="connected 4-pt G_c(x,x,x,x)",
        title=f"one hidden layer, x = 1 ({m:,} nets)",
    )
    plotting.log_ticks(ax)
    ax.legend(fontsize=9, loc="upper right")

    # Depth at criticality: relu σ_w² = 2 (exact formula) and tanh σ_w² = 1 (PDLT
    # recursion), zero bias, K⁽¹⁾ = 1.
    n = config["depth_width"]
    depths = np.array(config["depths"])
    ax = axes[0, 1]
    ls = np.linspace(depths.min(), depths.max(), 100)
    metrics["depth"] = {"width": n, "depths": depths.tolist()}
    for i, (act, sw) in enumerate((("relu", 2**0.5), ("tanh", 1.0))):
        kap, kap_err = [], []
        for depth in tqdm(depths, desc=f"{act} depths", leave=False):
            key, sub = jax.random.split(key)
            cov = _covariances(
                sub,
                x1 * (1 / sw),
                m,
                width=n,
                depth=int(depth),
                activation=act,
                sigma_w=sw,
                sigma_b=0.0,
            )
            est = _g4_and_kappa(cov)
            kap.append(float(est.mean[1]))
            kap_err.append(float(est.stderr[1]))
        c = plotting.PALETTE[i]
        ax.errorbar(
            depths,
            kap,
            yerr=2 * np.array(kap_err),
            fmt="o",
            ms=5,
            color=c,
            label=f"{act} ensemble, width {n} (±2 SE)",
        )
        if act == "relu":
            exact = [width.relu_kurtosis_exact(n, int(d)) for d in depths]
            ax.plot(
                ls,
                [width.relu_kurtosis_exact(n, float(v)) for v in ls],
                "-",
                color=c,
                label="relu exact 3[(1+5/n)^L − 1]",
            )
            ax.plot(ls, 15 * ls / n, "--", color=c, label="relu leading order 15L/n")
        else:
            exact = [
                width.finite_width_recursion(act, int(d), n, k0=1.0)[2] for d in depths
            ]
            # the recursion is defined layer by layer: drawn at every integer L
            all_l = np.arange(1, int(depths.max()) + 1)
            ax.plot(
                all_l,
                [
                    width.finite_width_recursion(act, int(d), n, k0=1.0)[2]
                    for d in all_l
                ],
                ".-",
                color=c,
                ms=3,
                label="tanh PDLT recursion (every L)",
            )
        metrics["depth"][act] = {
            "kurtosis": kap,
            "kurtosis_stderr": kap_err,
            "theory": exact,
            "max_abs_z": float(
                np.max(np.abs(np.array(kap) - exact) / np.array(kap_err))
            ),
        }
    ax.set(
        xlabel="hidden layers L",
        ylabel="excess kurtosis κ of f(x)",
        title="depth at criticality (K⁽¹⁾ = 1)",
        yscale="log",
    )
    plotting.log_ticks(ax)
    ax.set_xticks(np.arange(1, int(depths.max()) + 1))
    plotting.legend_outside(ax, ncol=1, fontsize=9)

    # Quartic coupling from erf networks on several inputs.
    xs = jnp.asarray(xs_c)
    lam_cut = config["cutoff"]
    ygrid = jnp.linspace(-lam_cut, lam_cut, 801)
    wts = (
        jnp.full(ygrid.shape, ygrid[1] - ygrid[0]).at[jnp.array([0, -1])].multiply(0.5)
    )
    k_grid = width.infinite_width_kernels(
        ygrid, xs, depth=1, activation="erf", sigma_w=1.0, sigma_b=1.0
    ).nngp
    means, errs, spreads = [], [], []
    nc = len(xs_c)
    for n_ in widths:
        cov = erf_covs[int(n_)][:, :nc, :nc]
        est = _lambda_with_error_bars(cov, k_grid, wts)
        means.append(float(est.mean[0]))
        errs.append(float(est.stderr[0]))
        spreads.append(float(est.mean[1]))
    ax = axes[0, 2]
    nl = np.array(means) * widths
    ax.errorbar(
        widths,
        nl,
        yerr=2 * np.array(errs) * widths,
        fmt="o",
        ms=5,
        label=f"N·λ, mean over {nc**4} input tuples (±2 SE)",
    )
    ax.fill_between(
        widths,
        nl - np.array(spreads) * widths,
        nl + np.array(spreads) * widths,
        alpha=0.2,
        label="± spread over tuples",
    )
    ax.set_xscale("log")
    ax.set(
        xlabel="width N",
        ylabel="N · λ",
        title=f"quartic coupling, erf, Λ = {lam_cut:g}",
    )
    plotting.log_ticks(ax)
    plotting.legend_outside(ax, ncol=1, fontsize=9)
    plotting.save(fig, out / "finite_width_field_theory.png")
    metrics["coupling"] = {
        "widths": widths.tolist(),
        "lambda_mean": means,
        "lambda_stderr": errs,
        "lambda_spread_over_tuples": spreads,
        "slope_lambda_vs_N": dl.fit_slope(widths, np.abs(means))[0],
    }
    return metrics


def headline(metrics: dict) -> tuple[str, bool | None]:
    """G_c ∝ 1/N at one hidden layer, at the exact amplitude; relu κ(L) exact."""
    single = metrics["single_layer"]
    slopes = [v["slope"] for v in single.values()]
    z = max(
        abs(g - v["exact_N_times_Gc"]) / e
        for v in single.values()
        for g, e in zip(v["N_times_Gc"], v["N_times_Gc_stderr"])
    )
    z_relu = metrics["depth"]["relu"]["max_abs_z"]
    return (
        "1-layer G_c ∝ N^("
        + ", ".join(f"{s:.2f}" for s in slopes)
        + f") (expected −1 ± 0.1), N·G_c within {z:.1f} SE of exact; deep relu κ "
        f"within {z_relu:.1f} SE of 3[(1+5/n)^L − 1] (expected < 3.5)",
        bool(all(abs(s + 1) < 0.1 for s in slopes) and z < 3.5 and z_relu < 3.5),
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
