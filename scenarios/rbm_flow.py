"""RBM flow of Iso et al. read by energy and classifier thermometers: its end depends on the training data.

The RBM flow of Iso, Shiba & Yokoo (arXiv:1801.07172) read by an exact energy
thermometer and by a classifier thermometer, and the Veiga–Vicente caveat
(arXiv:2006.10176): the flow's end depends on the data.

Protocol (Iso et al.): sample the 2D Ising model on an L×L torus at temperatures
spanning T_c, train ONE RBM on the mixture of all temperatures, then iterate its
conditionals v → h → v′ ([`dynlearn.rg.rbm_flow`][]) from configurations at low T,
near T_c and at high T (and from the all-up and random states, T = 0 and ∞, as Veiga &
Vicente do). After every step, the temperature of the configurations is read with
[`dynlearn.rg.energy_thermometer`][]: the T whose exact finite-torus energy u(T)
(Kaufman) equals the mean energy per spin (the maximum-likelihood temperature under
the Ising family) and with Iso et al.'s own kind of thermometer,
[`dynlearn.rg.train_thermometer`][]: a classifier (one-hidden-layer MLP, softmax over
the training temperatures, symmetrised under s → −s) trained on the same training
configurations, labelled by their temperature; its reading is the probability-weighted
mean temperature Σ_c p(c|v) T_c, and the class probabilities along the flow are shown
as Iso et al. do. The classifier can only answer with the training temperatures: its
reading is bounded by [min T, max T] and, on configurations unlike the data (the flow
of an RBM trained elsewhere), it extrapolates blindly; the energy thermometer needs no
training and is exact for Ising configurations, but reads only one statistic.

The flow is block Gibbs sampling of the RBM, so wherever it starts it relaxes to the
RBM's own visible marginal p_λ(v): the "fixed point" is a property of the trained model,
not of the Ising critical point. Iso et al. saw it near T_c; Veiga & Vicente found that
it moves with the training set. A second (and third) RBM trained only on temperatures
above (below) T_c tests this.

Samples: checkerboard Metropolis from a cold start with a random global sign per chain,
`updates_per_sample` sweeps apart; training: CD-1, SGD with momentum, small L2 penalty,
n_h = n_v (as Veiga & Vicente). Sampling, training and flows run in float32.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from tqdm.auto import tqdm

from dynlearn import plotting, rg


CONFIG = {
    "seed": 0,
    "L": 16,
    "temperatures": [1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 4.0, 5.0, 6.0],
    "num_chains": 40,
    "samples_per_chain": 30,
    "updates_per_sample": 10,
    "thermalization": 300,
    "start_fraction": 0.25,  # chains per T kept out of training, used as flow starts
    "hidden_ratio": 1.0,
    "steps": 6000,
    "batch_size": 100,
    "learning_rate": 0.01,
    "momentum": 0.9,
    "l2": 1e-4,
    # label: [T_lo, T_hi], the temperatures (of the list above) each RBM is trained on
    "training_sets": {
        "1.5 ≤ T ≤ 3.5 (Iso et al.)": [1.5, 3.5],
        "T ≥ 4 only": [4.0, 6.0],
        "T ≤ 2 only": [1.5, 2.0],
    },
    # a fixed point is claimed only if the starts' end temperatures agree to this
    # fraction of their mean
    "converged_rel_spread": 0.05,
    "flow_starts": [1.5, 2.25, 3.5],
    "flow_steps": 200,
    "flow_chains": 400,
    "tail_fraction": 0.5,  # fraction of the last flow steps averaged for the fixed point
    "example_steps": [0, 1, 2, 5, 10, 25, 50, 100, 200],
    # classifier thermometer (rg.train_thermometer), trained on the training chains
    # with AdamW (decoupled weight decay: the MLP overfits the few hundred
    # configurations per class otherwise; held-out cross-entropy 2.3 → 1.9 at L = 8)
    "thermometer": {
        "width": 64,
        "steps": 3000,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 1.0,
    },
}
HELP = {
    "seed": "PRNG seed of sampling, training and flows",
    "L": "linear size of the L×L Ising torus (visible layer: L² spins)",
    "temperatures": "temperatures T (J = k_B = 1) of the Monte Carlo data",
    "num_chains": "Metropolis chains per temperature",
    "samples_per_chain": "configurations stored per chain",
    "updates_per_sample": "Metropolis sweeps between stored configurations",
    "thermalization": "sweeps discarded at the start of every chain",
    "start_fraction": "fraction of chains per T kept out of training (flow starts)",
    "hidden_ratio": "hidden units per visible unit, n_h / n_v",
    "steps": "CD-1 steps per RBM",
    "batch_size": "CD-1 minibatch size",
    "learning_rate": "SGD learning rate",
    "momentum": "SGD momentum",
    "l2": "L2 penalty on the weights",
    "training_sets": "label → [T_lo, T_hi]: the temperatures each RBM is trained on",
    "converged_rel_spread": "a common end is claimed if the starts agree to this fraction",
    "flow_starts": "start temperatures of the flows (among `temperatures`)",
    "flow_steps": "steps v → h → v′ of every flow",
    "flow_chains": "configurations flowed per start",
    "tail_fraction": "fraction of the last flow steps averaged for the end point",
    "example_steps": "flow steps drawn in the configuration figure",
    "thermometer": "classifier thermometer: MLP width, steps, batch_size, lr, weight_decay",
}
QUICK = {
    "L": 8,
    "num_chains": 16,
    "samples_per_chain": 25,
    "thermalization": 100,
    "steps": 800,
    "flow_steps": 100,
    "flow_chains": 200,
    "example_steps": [0, 1, 2, 5, 10, 25, 50, 100],
    "thermometer": {
        "width": 64,
        "steps": 1500,
        "batch_size": 128,
        "lr": 2e-3,
        "weight_decay": 1.0,
    },
}
SMOKE = {
    "L": 4,
    "temperatures": [1.5, 2.0, 2.25, 3.5, 4.0, 6.0],
    "num_chains": 8,
    "samples_per_chain": 5,
    "thermalization": 20,
    "steps": 20,
    "batch_size": 16,
    "flow_steps": 4,
    "flow_chains": 8,
    "example_steps": [0, 1, 2, 4],
    "thermometer": {
        "width": 8,
        "steps": 20,
        "batch_size": 16,
        "lr": 2e-3,
        "weight_decay": 1.0,
    },
}


def _sample(key, L, temperatures, num_chains, samples, every, therm):
    """Configurations (n_T, chains, samples, L, L) as int8: checkerboard Metropolis
    (`rg.sample_ising`) from a cold start, then a random global sign per chain (the
    model is Z₂-symmetric, so this is a cold start with a random sign)."""
    k_run, k_sign = jr.split(key)

    def at(key, K):
        return rg.sample_ising(
            L,
            K,
            sampler="metropolis",
            num_chains=num_chains,
            num_measurements=samples,
            updates_per_measurement=every,
            thermalization=therm,
            start="cold",
            keep_configurations=True,
            key=key,
        ).configurations

    K = 1.0 / jnp.asarray(temperatures, jnp.float32)
    configs = jax.vmap(at)(jr.split(k_run, len(temperatures)), K)
    sign = jr.rademacher(k_sign, (len(temperatures), num_chains, 1, 1, 1), jnp.int8)
    return configs * sign


def _energy(v, L):
    """Energy per spin of flattened configurations v (..., L·L)."""
    return rg.lattice_observables(v.reshape(v.shape[:-1] + (L, L))).energy


def run(config: dict, out: Path) -> dict:
    L = config["L"]
    n_v = L * L
    temps = np.asarray(config["temperatures"], float)
    T_c = rg.T_C
    key = jr.key(config["seed"])
    k_sample, k_train, k_start, k_flow = jr.split(key, 4)
    k_thermo = jr.fold_in(key, 7)
    for t0 in config["flow_starts"]:
        if not np.any(np.isclose(temps, t0)):
            raise ValueError(f"flow start T = {t0} is not one of the temperatures.")

    with jax.enable_x64(False):
        print(f"  sampling {len(temps)} temperatures", flush=True)
        t0 = time.perf_counter()
        configs = _sample(
            k_sample,
            L,
            temps,
            config["num_chains"],
            config["samples_per_chain"],
            config["updates_per_sample"],
            config["thermalization"],
        ).block_until_ready()
        t_sample = time.perf_counter() - t0
        n_start = max(2, int(round(config["start_fraction"] * config["num_chains"])))
        train = configs[:, n_start:].reshape(len(temps), -1, n_v).astype(jnp.float32)
        held = configs[:, :n_start].reshape(len(temps), -1, n_v).astype(jnp.float32)

        subsets = {
            label: (temps >= lo - 1e-9) & (temps <= hi + 1e-9)
            for label, (lo, hi) in config["training_sets"].items()
        }
        for label, mask in subsets.items():
            if not mask.any():
                raise ValueError(f"training set {label!r} holds none of {temps}.")
        rbms, t_train = {}, {}
        n_h = int(round(config["hidden_ratio"] * n_v))
        sets = list(config["training_sets"])
        for i, label in enumerate(tqdm(sets, desc="training RBMs", leave=False)):
            data = train[subsets[label]].reshape(-1, n_v)
            k_init, k_fit = jr.split(jr.fold_in(k_train, i))
            rbm = rg.RBM.random(k_init, n_v, n_h, 0.01)
            rbm = jax.tree.map(lambda a: a.astype(jnp.float32), rbm)
            t0 = time.perf_counter()
            rbm = rg.train_rbm(
                rbm,
                data,
                key=k_fit,
                num_steps=config["steps"],
                batch_size=config["batch_size"],
                rule=rg.ContrastiveDivergence(
                    optax.sgd(config["learning_rate"], momentum=config["momentum"]),
                    l2=config["l2"],
                ),
            ).final_params
            jax.block_until_ready(rbm)
            t_train[label] = time.perf_counter() - t0
            rbms[label] = rbm

        # flow starts: held-out configurations at the chosen temperatures, plus the
        # all-up state (T = 0) and random spins (T = ∞)
        n_fc = config["flow_chains"]
        starts = {}
        for j, t in enumerate(config["flow_starts"]):
            pool = held[int(np.argmin(np.abs(temps - t)))]
            idx = jr.randint(jr.fold_in(k_start, j), (n_fc,), 0, pool.shape[0])
            starts[f"T₀ = {t:g}"] = pool[idx]
        starts["T₀ = 0 (all up)"] = jnp.ones((n_fc, n_v), jnp.float32)
        starts["T₀ = ∞ (random)"] = jnp.where(
            jr.bernoulli(jr.fold_in(k_start, 99), 0.5, (n_fc, n_v)), 1.0, -1.0
        ).astype(jnp.float32)

        print("  RBM flows and the classifier thermometer", flush=True)
        t0 = time.perf_counter()
        flows = {
            (r, s): np.asarray(
                rg.rbm_flow(
                    rbms[r], v, config["flow_steps"], key=jr.fold_in(k_flow, 17 * i + j)
                )
            )
            for i, r in enumerate(rbms)
            for j, (s, v) in enumerate(starts.items())
        }
        t_flow = time.perf_counter() - t0

        # classifier thermometer on the RBMs' training chains, all temperatures;
        # held-out accuracy on the chains kept out (the flow starts' pool)
        tc = config["thermometer"]
        t0 = time.perf_counter()
        classifier = rg.train_thermometer(
            train.reshape(-1, n_v),
            np.repeat(temps, train.shape[1]),
            key=k_thermo,
            width=tc["width"],
            num_steps=tc["steps"],
            batch_size=tc["batch_size"],
            optimizer=optax.adamw(tc["lr"], weight_decay=tc["weight_decay"]),
        ).final_params
        p_held = np.asarray(classifier.probabilities(held))  # (n_T, n_held, n_T)
        T_cls_held = p_held @ temps
        t_classifier = time.perf_counter() - t0
        predicted = p_held.argmax(-1)
        truth = np.arange(len(temps))[:, None]
        accuracy = float(np.mean(predicted == truth))
        accuracy_1 = float(np.mean(np.abs(predicted - truth) <= 1))
        cross_entropy = float(
            -np.mean(np.log(np.take_along_axis(p_held, truth[..., None], -1)))
        )
        probs = {k: np.asarray(classifier.probabilities(v)) for k, v in flows.items()}

    # ---- read-outs ------------------------------------------------------------------
    thermo = rg.energy_thermometer(L, t_min=0.5, t_max=50.0)
    e_data = np.asarray(_energy(configs.reshape(len(temps), -1, n_v), L))
    m_data = np.abs(configs.reshape(len(temps), -1, n_v).astype(float).mean(-1))
    T_read_data = thermo(e_data.mean(1))

    def readout(vs, p):
        e = np.asarray(_energy(vs, L), float)  # (steps + 1, chains)
        tc = p @ temps  # classifier reading per chain (steps + 1, chains)
        m = np.abs(vs.mean(-1))
        e_mean, e_err = e.mean(1), e.std(1, ddof=1) / np.sqrt(e.shape[1])
        T = thermo(e_mean)
        T_lo, T_hi = thermo(e_mean - e_err), thermo(e_mean + e_err)
        return {
            "T": T,
            "T_err": 0.5 * (T_hi - T_lo),
            "abs_m": m.mean(1),
            "abs_m_err": m.std(1, ddof=1) / np.sqrt(m.shape[1]),
            "e": e_mean,
            "e_chains": e,
            "T_cls": tc.mean(1),
            "T_cls_err": tc.std(1, ddof=1) / np.sqrt(tc.shape[1]),
            "p_cls": p.mean(1),  # mean class probabilities (steps + 1, n_T)
        }

    reads = {k: readout(v, probs[k]) for k, v in flows.items()}
    n_tail = max(1, int(config["tail_fraction"] * config["flow_steps"]))
    fixed = {}
    for r in rbms:
        tails_e = np.concatenate(
            [reads[(r, s)]["e_chains"][-n_tail:].ravel() for s in starts]
        )
        tails_m = np.concatenate(
            [np.abs(flows[(r, s)][-n_tail:].mean(-1)).ravel() for s in starts]
        )
        # fixed point: all starts pooled over the last n_tail steps; spread of the
        # per-start tail temperatures as an honest error (they are correlated within
        # a start)
        per_start = [float(np.nanmean(reads[(r, s)]["T"][-n_tail:])) for s in starts]
        cls_start = [float(np.mean(reads[(r, s)]["T_cls"][-n_tail:])) for s in starts]
        m_start = [float(np.mean(reads[(r, s)]["abs_m"][-n_tail:])) for s in starts]
        fixed[r] = {
            "T": float(thermo(tails_e.mean())),
            "T_spread_over_starts": [min(per_start), max(per_start)],
            "converged": bool(
                max(per_start) - min(per_start)
                < config["converged_rel_spread"] * np.mean(per_start)
            ),
            "T_per_start": dict(zip(starts, per_start)),
            "abs_m_per_start": dict(zip(starts, m_start)),
            # equilibrium ⟨|m|⟩ of the Monte Carlo data at the thermometer reading:
            # equal to the flow's ⟨|m|⟩ if its configurations look like Ising ones
            "data_abs_m_at_T_per_start": dict(
                zip(starts, np.interp(per_start, temps, m_data.mean(1)).tolist())
            ),
            "abs_m": float(tails_m.mean()),
            "energy": float(tails_e.mean()),
            # the classifier's reading of the same tails (pooled and per start)
            "T_classifier": float(np.mean(cls_start)),
            "T_classifier_per_start": dict(zip(starts, cls_start)),
            # last flow step only, both thermometers (means over the chains)
            "T_final_step_energy": {s: float(reads[(r, s)]["T"][-1]) for s in starts},
            "T_final_step_classifier": {
                s: float(reads[(r, s)]["T_cls"][-1]) for s in starts
            },
        }

    # ---- figure 1: T(step) and |m|(step) for each RBM --------------------------------
    steps = np.arange(config["flow_steps"] + 1)
    nr = len(rbms)
    fig, axes = plotting.figure(nr, 2, width=min(4.6, 12.0 / nr), height=3.8)
    colours = dict(zip(starts, plotting.PALETTE))
    for col, r in enumerate(rbms):
        ax_t, ax_m = axes[0, col], axes[1, col]
        which = subsets[r]
        lo, hi = temps[which].min(), temps[which].max()
        ax_t.axhspan(lo, hi, color="0.85", alpha=0.6, lw=0, label="training T range")
        ax_t.axhline(T_c, color="k", ls="--", lw=1.2, label="T_c (L = ∞)")
        for s in starts:
            d = reads[(r, s)]
            ax_t.plot(steps, d["T"], "-", color=colours[s], label=s)
            ax_t.fill_between(
                steps,
                d["T"] - d["T_err"],
                d["T"] + d["T_err"],
                color=colours[s],
                alpha=0.25,
                lw=0,
            )
            ax_t.plot(steps, d["T_cls"], "--", color=colours[s], lw=1.3)
            ax_m.plot(steps, d["abs_m"], "-", color=colours[s], label=s)
        ax_t.set(
            ylim=(0.9, max(temps) + 0.6),
            xlabel="flow step n",
            ylabel="temperature read-out",
            title=f"RBM trained on {r}",
        )
        ax_t.text(
            0.03,
            0.03,
            f"common end T* = {fixed[r]['T']:.2f}"
            if fixed[r]["converged"]
            else "no common end: T = {:.2f} … {:.2f}".format(
                *fixed[r]["T_spread_over_starts"]
            ),
            transform=ax_t.transAxes,
            fontsize=10,
        )
        if fixed[r]["converged"]:
            # equilibrium ⟨|m|⟩ of the data at the fixed-point temperature
            m_eq = np.interp(fixed[r]["T"], temps, m_data.mean(1))
            ax_m.axhline(m_eq, color="0.3", ls=":", lw=1.2, label="data ⟨|m|⟩ at T*")
        ax_m.axhline(
            np.interp(T_c, temps, m_data.mean(1)),
            color="k",
            ls="--",
            lw=1.0,
            label="data ⟨|m|⟩ at T_c",
        )
        ax_m.set(xlabel="flow step n", ylabel="⟨|m|⟩", ylim=(0, 1.02))
        if col == 0:
            ax_t.plot([], [], "-", color="0.3", label="energy T(⟨e⟩)")
            ax_t.plot([], [], "--", color="0.3", lw=1.3, label="classifier ⟨Σ p_c T_c⟩")
    # one legend for the whole figure, under the panels (off the data)
    entries: dict = {}
    for ax in (axes[0, 0], axes[1, 0]):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    fig.legend(
        list(entries.values()),
        list(entries.keys()),
        loc="outside lower center",
        ncol=5,
        fontsize=9,
    )
    fig.suptitle(
        f"RBM flow v → h → v′, {L}×{L} torus: energy thermometer (solid, ±1 s.e.), "
        "classifier (dashed)"
    )
    plotting.save(fig, out / "rbm_flow_temperature.png")

    # ---- figure 2: example configurations along two flows -----------------------------
    ex = [n for n in config["example_steps"] if n <= config["flow_steps"]]
    first = next(iter(rbms))
    rows = [(first, f"T₀ = {config['flow_starts'][0]:g}"), (first, "T₀ = ∞ (random)")]
    fig, axes = plotting.figure(
        len(ex), len(rows), width=min(1.9, 12.0 / len(ex)), height=2.1
    )
    for i, (r, s) in enumerate(rows):
        d = reads[(r, s)]
        for j, n in enumerate(ex):
            ax = axes[i, j]
            plotting.spins(ax, flows[(r, s)][n, 0], L)
            T_n = d["T"][n]
            label = f"T_E {T_n:.2f}" if np.isfinite(T_n) else "T_E off scale"
            label += f"\nT_NN {d['T_cls'][n]:.2f}"
            ax.set_title(f"n = {n}", fontsize=10)
            ax.set_xlabel(label, fontsize=10)
        axes[i, 0].set_ylabel(s, fontsize=10)
    fig.suptitle(
        f"One chain of the flow (RBM trained on {first}); readings over {n_fc} chains",
        fontsize=11,
    )
    plotting.save(fig, out / "rbm_flow_configurations.png")

    # ---- figure 3: the classifier thermometer -----------------------------------------
    ncol = 1 + len(starts)
    fig, axes = plotting.figure(3, (ncol + 2) // 3, width=4.0, height=3.8)
    axes = axes.ravel()
    ax = axes[0]
    lim = (temps.min() - 0.3, temps.max() + 0.3)
    ax.plot(lim, lim, ":", color="0.4", lw=1.2, label="read = true")
    ax.errorbar(
        temps,
        T_cls_held.mean(1),
        T_cls_held.std(1, ddof=1),
        fmt="o-",
        color=plotting.PALETTE[0],
        capsize=3,
        label="classifier, per config (mean ± sd)",
    )
    e_held = np.asarray(_energy(held, L), float)  # (n_T, n_held)
    T_read_held = thermo(e_held.mean(1))
    # baseline classifier from the energy alone: the class whose exact u(T_c) is
    # nearest to the configuration's energy per spin
    with jax.enable_x64(True):
        u_c = np.asarray(
            jax.vmap(lambda T: rg.torus_energy(1.0 / T, L, L))(jnp.asarray(temps))
        )
    nearest = np.abs(e_held[..., None] - u_c).argmin(-1)
    accuracy_energy = float(np.mean(nearest == np.arange(len(temps))[:, None]))
    ax.plot(
        temps,
        T_read_held,
        "s--",
        color=plotting.PALETTE[1],
        label="energy thermometer, T(⟨e⟩) per T",
    )
    ax.axvline(T_c, color="k", ls="--", lw=1.0)
    ax.set(
        xlim=lim,
        ylim=lim,
        xlabel="true T of the Monte Carlo data",
        ylabel="read T",
        title=f"held-out data: accuracy {accuracy:.2f} (±1 class {accuracy_1:.2f})",
    )
    ax.legend(fontsize=9, loc="upper left")
    edges = np.concatenate(
        [[temps[0] - 0.5 * (temps[1] - temps[0])], 0.5 * (temps[1:] + temps[:-1])]
    )
    edges = np.append(edges, temps[-1] + 0.5 * (temps[-1] - temps[-2]))
    p_max = max(float(reads[(first, s)]["p_cls"].max()) for s in starts)
    for ax, s in zip(axes[1:], starts):
        d = reads[(first, s)]
        im = ax.pcolormesh(
            np.append(steps, steps[-1] + 1) - 0.5,
            edges,
            d["p_cls"].T,
            cmap="viridis",
            vmin=0,
            vmax=p_max,
            shading="flat",
        )
        ax.plot(steps, d["T_cls"], "-", color="w", lw=1.2, label="Σ p_c T_c")
        ax.axhline(T_c, color="w", ls="--", lw=1.0, label="critical T (L = ∞)")
        ax.set(
            xlabel="flow step n",
            ylabel="class temperature",
            title=f"{s}: ⟨p(T_c | v⁽ⁿ⁾)⟩",
            ylim=(edges[0], edges[-1]),
        )
        ax.grid(False)
        ax.legend(fontsize=9, loc="upper right")
    for ax in axes[1 + len(starts) :]:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes[1:]), shrink=0.6, label="mean class probability")
    fig.suptitle(
        f"Classifier thermometer ({L}×{L}, MLP width {tc['width']}, flip-symmetric) "
        f"reading the flow of the RBM trained on {first}"
    )
    plotting.save(fig, out / "rbm_flow_classifier.png")

    def per_step(r, s, name):
        return [float(x) for x in reads[(r, s)][name]]

    return {
        "L": L,
        "T_c": T_c,
        "num_training_samples": {
            r: int(train[subsets[r]].reshape(-1, n_v).shape[0]) for r in rbms
        },
        "sampling_s": t_sample,
        "training_s": t_train,
        "flow_s": t_flow,
        "classifier_thermometer": {
            "training_and_held_out_s": t_classifier,
            "num_training_samples": int(train.shape[0] * train.shape[1]),
            "classes_T": temps.tolist(),
            "held_out_accuracy": accuracy,
            "held_out_accuracy_within_one_class": accuracy_1,
            "held_out_cross_entropy": cross_entropy,
            "chance_cross_entropy_ln_n_classes": float(np.log(len(temps))),
            # reference: nearest exact u(T_c) to each configuration's energy
            "held_out_accuracy_energy_nearest_class": accuracy_energy,
            "held_out_mean_read_T": T_cls_held.mean(1).tolist(),
            "held_out_sd_read_T": T_cls_held.std(1, ddof=1).tolist(),
            "held_out_energy_thermometer_T": T_read_held.tolist(),
        },
        "final_T": {
            r: {
                s: {
                    "energy": float(reads[(r, s)]["T"][-1]),
                    "classifier": float(reads[(r, s)]["T_cls"][-1]),
                }
                for s in starts
            }
            for r in rbms
        },
        "thermometer_check_data": {
            "T_true": temps.tolist(),
            "T_read": [float(x) for x in T_read_data],
        },
        "data_abs_m": m_data.mean(1).tolist(),
        "training_ranges": {r: list(config["training_sets"][r]) for r in rbms},
        "fixed_point": fixed,
        "T_per_step": {f"{r} | {s}": per_step(r, s, "T") for r, s in reads},
        "abs_m_per_step": {f"{r} | {s}": per_step(r, s, "abs_m") for r, s in reads},
        "T_classifier_per_step": {
            f"{r} | {s}": per_step(r, s, "T_cls") for r, s in reads
        },
    }


def headline(metrics: dict) -> tuple[str, bool | None]:
    """The energy thermometer reads the Monte Carlo data right, and the flow's end
    moves with the training data (Veiga & Vicente)."""
    check = metrics["thermometer_check_data"]
    err = max(
        abs(r / t - 1)
        for t, r in zip(check["T_true"], check["T_read"])
        if np.isfinite(r)
    )
    ends = {k: v["T"] for k, v in metrics["fixed_point"].items()}
    mid = {k: float(np.mean(v)) for k, v in metrics["training_ranges"].items()}
    hot, cold = max(mid, key=mid.get), min(mid, key=mid.get)
    return (
        "flow end T* = "
        + ", ".join(f"{v:.2f} [{k}]" for k, v in ends.items())
        + f"; expected T* of the hottest-trained RBM > coldest ({ends[hot]:.2f} vs "
        f"{ends[cold]:.2f}); energy thermometer on the data within {100 * err:.1f}% "
        "(expected < 10%)",
        bool(ends[hot] > ends[cold] and err < 0.10),
    )


if __name__ == "__main__":
    from dynlearn._cli import run_script

    raise SystemExit(run_script(__file__))
