"""Random-network ensembles vs the analytic NNGP kernel, and the NNGP posterior.

We sample 10⁴ MLPs (vmap over keys, chunked) on a 1-D input grid and compare the
empirical output covariance with the analytic NNGP kernel of
`width.infinite_width_kernels` (Neal 1996; Lee et al. 2018, arXiv:1711.00165;
Matthews et al. 2018, arXiv:1804.11271), with batch-means error bars. For one hidden
layer the two agree at every width (notes thermo_nnft.md §2.4); for two hidden layers
the covariance has an O(1/N) correction. Then we train only the readout layer of every
network to convergence on five points (min-norm least squares in closed form): by
Lee et al. 2019 (arXiv:1902.06720, §2.3.1) the trained ensemble's mean and variance
tend to the NNGP posterior.

Plots: covariance slices with error bars vs the kernel; z-scores; trained ensemble
vs NNGP posterior mean ± 2σ. Metrics: max |z|, networks per second of the sampler.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import dynlearn as dl
from dynlearn import plotting, width


CONFIG = {
    "seed": 0,
    "activation": "erf",
    "sigma_w": 1.5,
    "sigma_b": 0.5,
    "num_networks": 10_000,
    "cases": [[1, 8], [1, 256], [2, 8]],
    "grid": 21,
    "train_x": [-1.6, -0.9, -0.1, 0.6, 1.4],
    "posterior_width": 512,
    "posterior_networks": 4000,
}
QUICK = {"num_networks": 4000, "grid": 11, "posterior_networks": 500}
HELP = {
    "seed": "PRNG seed of the network ensembles",
    "activation": "hidden-layer activation of every MLP",
    "sigma_w": "weight standard deviation σ_w (NTK parameterisation)",
    "sigma_b": "bias standard deviation σ_b",
    "num_networks": "random networks per (depth, width) case",
    "cases": "[hidden layers, width] of each ensemble compared with the NNGP kernel",
    "grid": "input points on [−2, 2] where the ensembles are evaluated (odd: x = 0 on it)",
    "train_x": "training inputs of the readout-trained ensemble (targets sin 2x)",
    "posterior_width": "hidden width of the readout-trained networks",
    "posterior_networks": "number of readout-trained networks",
}
SMOKE = {
    "num_networks": 256,
    "cases": [[1, 8], [2, 8]],
    "grid": 5,
    "posterior_width": 16,
    "posterior_networks": 64,
}
FINE = 241  # points of the grid on which the analytic curves are drawn


def _make(config, width_, depth):
    def make(key):
        return dl.MLP(
            "scalar",
            "scalar",
            width_,
            depth,
            config["activation"],
            sigma_w=config["sigma_w"],
            sigma_b=config["sigma_b"],
            parameterization="ntk",
            key=key,
        )

    return make


def run(config: dict, out: Path) -> dict:
    key = jax.random.key(config["seed"])
    xs = jnp.linspace(-2.0, 2.0, config["grid"])
    xf = jnp.linspace(-2.0, 2.0, FINE)
    kw = dict(
        activation=config["activation"],
        sigma_w=config["sigma_w"],
        sigma_b=config["sigma_b"],
    )
    m = config["num_networks"]
    fig, axes = plotting.figure(3, width=4.0, height=4.5)
    metrics: dict = {"max_abs_z": {}}
    i0 = config["grid"] // 2  # covariance with x = 0
    cases = [tuple(c) for c in config["cases"]]
    for j, (depth, n) in enumerate(tqdm(cases, desc="ensembles", leave=False)):
        k_inf = width.infinite_width_kernels(xs, depth=depth, **kw).nngp
        if j == 0 or depth != cases[j - 1][0]:
            k_fine = width.infinite_width_kernels(
                xs[i0 : i0 + 1], xf, depth=depth, **kw
            )
            axes[0, 0].plot(
                np.asarray(xf),
                np.asarray(k_fine.nngp[0]),
                "k-" if depth == 1 else "k--",
                lw=1.2,
                label=f"NNGP kernel, depth {depth}",
            )
        key, sub = jax.random.split(key)
        make = _make(config, n, depth)

        def outputs(net):
            return jax.vmap(net)(xs)

        tic = time.perf_counter()
        f = jax.block_until_ready(width.sample_ensemble(make, outputs, m, key=sub))
        elapsed = time.perf_counter() - tic
        g2 = width.with_error_bars(lambda s: width.correlator(s, 2), f)
        z = np.asarray((g2.mean - k_inf) / g2.stderr)
        metrics["max_abs_z"][f"depth{depth}_width{n}"] = float(np.abs(z).max())
        if j == 1:  # sampler throughput, compiled and including compilation
            tic = time.perf_counter()
            jax.block_until_ready(width.sample_ensemble(make, outputs, m, key=sub))
            metrics["networks_per_second"] = m / (time.perf_counter() - tic)
            metrics["networks_per_second_incl_compile"] = m / elapsed
            metrics["throughput_network"] = f"depth {depth}, width {n}"
        c = plotting.PALETTE[j]
        marker = "o" if depth == 1 else "s"
        axes[0, 0].errorbar(
            np.asarray(xs),
            np.asarray(g2.mean[i0]),
            yerr=2 * np.asarray(g2.stderr[i0]),
            fmt=marker,
            ms=4,
            color=c,
            label=f"ensemble, depth {depth}, width {n}",
        )
        axes[0, 1].plot(
            np.asarray(xs),
            z[i0],
            marker + "-",
            color=c,
            ms=4,
            label=f"depth {depth}, width {n}",
        )
    axes[0, 0].set(
        xlabel="x",
        ylabel="E[f(0) f(x)]",
        title=f"{m:,} {config['activation']} networks (±2 SE)",
    )
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9)
    axes[0, 0].legend(ncol=1, **below)
    axes[0, 1].axhspan(-3, 3, color="0.9", zorder=0)
    axes[0, 1].set(
        xlabel="x",
        ylabel="(ensemble − kernel) / SE",
        title="z-scores of E[f(0)f(x)] (band ±3)",
    )
    axes[0, 1].legend(ncol=1, **below)

    # Readout-only training to convergence vs the NNGP posterior.
    print("  readout-trained ensemble vs the NNGP posterior", flush=True)
    xtr = jnp.asarray(config["train_x"])
    ytr = jnp.sin(2 * xtr)
    n = config["posterior_width"]
    make = _make(config, n, 1)

    def trained(net):
        # Gradient flow on the readout only (NTK parameterisation) converges to
        # f_∞ = f_0 + C(x,X) C(X,X)⁻¹ (y − f_0(X)), C = readout kernel = its NTK.
        c_all = width.readout_covariance(net, jnp.concatenate([xs, xtr]))
        g = xs.shape[0]
        f0 = jax.vmap(net)(jnp.concatenate([xs, xtr]))
        coef = jnp.linalg.solve(c_all[g:, g:], ytr - f0[g:])
        return f0[:g] + c_all[:g, g:] @ coef

    key, sub = jax.random.split(key)
    ens = width.sample_ensemble(make, trained, config["posterior_networks"], key=sub)
    kern = lambda a, b: width.infinite_width_kernels(a, b, depth=1, **kw).nngp  # noqa: E731
    post = width.gp_posterior(kern(xtr, xtr), ytr, kern(xs, xtr), kern(xs, xs))
    sd = np.sqrt(np.clip(np.diag(np.asarray(post.cov)), 0, None))
    # the same posterior on the fine grid, for the drawn curves
    post_f = width.gp_posterior(kern(xtr, xtr), ytr, kern(xf, xtr), kern(xf, xf))
    sd_f = np.sqrt(np.clip(np.diag(np.asarray(post_f.cov)), 0, None))
    ax = axes[0, 2]
    ax.fill_between(
        np.asarray(xf),
        post_f.mean - 2 * sd_f,
        post_f.mean + 2 * sd_f,
        color="0.85",
        label="NNGP posterior ± 2σ",
    )
    ax.plot(xf, post_f.mean, "k-", label="NNGP posterior mean")
    ens_mean, ens_sd = np.asarray(ens.mean(0)), np.asarray(ens.std(0))
    ax.errorbar(
        np.asarray(xs),
        ens_mean,
        yerr=2 * ens_sd,
        fmt="o",
        ms=3,
        color=plotting.PALETTE[1],
        label=f"readout-trained nets, width {n}: mean ± 2 sd",
    )
    ax.plot(xtr, ytr, "k*", ms=10, label="training data")
    ax.set(xlabel="x", ylabel="f(x)", title="trained ensemble vs NNGP posterior")
    ax.legend(ncol=1, **below)
    plotting.save(fig, out / "nngp_vs_ensemble.png")
    metrics.update(
        posterior_max_mean_diff=float(np.abs(ens_mean - post.mean).max()),
        posterior_max_sd_diff=float(np.abs(ens_sd - sd).max()),
        posterior_max_sd=float(sd.max()),
    )
    return metrics


def headline(metrics: dict) -> tuple[str, bool | None]:
    """One-hidden-layer ensembles match the NNGP kernel; readout-trained ensembles
    match the NNGP posterior."""
    z1 = max(v for k, v in metrics["max_abs_z"].items() if k.startswith("depth1_"))
    sd = metrics["posterior_max_sd"]
    dm = metrics["posterior_max_mean_diff"] / sd
    ds = metrics["posterior_max_sd_diff"] / sd
    return (
        f"1-layer ensembles vs NNGP kernel: max |z| = {z1:.1f} over the grid (expected"
        f" < 4.5); trained ensemble vs NNGP posterior: mean within {dm:.2f} σ_max, sd "
        f"within {ds:.2f} σ_max (expected < 0.25)",
        bool(z1 < 4.5 and dm < 0.25 and ds < 0.25),
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
