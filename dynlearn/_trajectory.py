"""The `Trajectory`: what every flow and every optimiser returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._misc import tree_index


class Trajectory(eqx.Module):
    """A training trajectory θ(t) sampled at times `ts`.

    **Fields:**

    - `ts`: save times, shape `(n,)`. For discrete optimisers $t_k = k·$`lr` (or the
      optimiser's own time map), so flows and optimisers share one time axis.
    - `params`: the parameters at each save time, a pytree of the same structure as the
      initial parameters whose array leaves have a leading axis of length `n`; `None`
      if the run was made with `save_params=False`.
    - `loss`: Φ(θ(t)), shape `(n,)`.
    - `observables`: `{name: array with leading axis n}`; always includes
      `"grad_norm"`, plus whatever was requested.
    - `final_params`: the parameters at the end of the run (always stored, so a run
      can be resumed from it).
    - `stats`: a dict of run statistics: for flows `num_steps`,
      `num_accepted_steps`, `num_rejected_steps`, `num_vf_evals`,
      `num_gradient_evals`, `num_hvps`; for optimisers `num_gradient_evals`; always
      `compile_time` and `run_time` in seconds, and the method's description.
    """

    ts: jax.Array
    params: Any
    loss: jax.Array
    observables: dict[str, Any]
    final_params: Any
    stats: dict[str, Any] = eqx.field(static=True)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def at(self, i: int) -> Any:
        """The parameters at save index `i`, `-n <= i < n` (negative indices count from
        the end), i.e. at time `ts[i]`. For an ensemble (leaves of shape `(M, n, ...)`)
        this is the ensemble at that time, with leaves of shape `(M, ...)`."""
        if self.params is None:
            raise ValueError(
                "This trajectory was saved with save_params=False; only final_params "
                "is stored. Rerun with save_params=True to index the saved parameters."
            )
        if isinstance(i, bool | np.bool_) or not isinstance(i, int | np.integer):
            raise TypeError(
                f"Trajectory.at takes an integer save index, got {i!r} (of type "
                f"{type(i).__name__}); for a time t use "
                "traj.at(int(np.argmin(np.abs(traj.ts - t))))."
            )
        n = len(self)
        if not -n <= i < n:
            raise IndexError(
                f"save index {i} is out of range for a trajectory of {n} saves: use "
                f"-{n} <= i < {n} (save times ts[0] = {float(self.ts[0]):g} to "
                f"ts[-1] = {float(self.ts[-1]):g})."
            )
        if jnp.ndim(self.loss) == 2:  # an ensemble: (paths, time, ...)
            return jtu.tree_map(lambda leaf: leaf[:, i], self.params)
        return tree_index(self.params, int(i))

    def save(self, path: str | Path) -> Path:
        """Write the trajectory to `path` (a `.npz` file; the suffix is added).

        Array leaves of `params` and `final_params` are stored in flattening order;
        `stats` as JSON. Load with [`dynlearn.Trajectory.load`][] and a template of the
        parameters (e.g. the initial parameters), as `equinox` serialisation does.
        """
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "ts": np.asarray(self.ts),
            "loss": np.asarray(self.loss),
        }
        for name, val in self.observables.items():
            for i, leaf in enumerate(jtu.tree_leaves(val)):
                arrays[f"obs/{name}/{i}"] = np.asarray(leaf)
        if self.params is not None:
            leaves = jtu.tree_leaves(eqx.filter(self.params, eqx.is_array))
            for i, leaf in enumerate(leaves):
                arrays[f"params/{i}"] = np.asarray(leaf)
        for i, leaf in enumerate(
            jtu.tree_leaves(eqx.filter(self.final_params, eqx.is_array))
        ):
            arrays[f"final/{i}"] = np.asarray(leaf)
        meta = {
            "format": "dynlearn.Trajectory/1",
            "stats": self.stats,
            "observables": {
                k: len(jtu.tree_leaves(v)) for k, v in self.observables.items()
            },
            "has_params": self.params is not None,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, like: Any) -> Trajectory:
        """Read a trajectory written by [`dynlearn.Trajectory.save`][].

        `like` is any parameter pytree with the structure of the saved parameters (for
        example the initial parameters); its array values are ignored.
        """
        path = Path(path).with_suffix(".npz")
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
        if meta.get("format") != "dynlearn.Trajectory/1":
            raise ValueError(f"{path} is not a dynlearn trajectory file.")
        dyn, static = eqx.partition(like, eqx.is_array)
        treedef = jtu.tree_structure(dyn)
        n_leaves = treedef.num_leaves

        def rebuild(prefix):
            leaves = [jnp.asarray(data[f"{prefix}/{i}"]) for i in range(n_leaves)]
            if f"{prefix}/{n_leaves}" in data or (
                n_leaves and f"{prefix}/{n_leaves - 1}" not in data
            ):
                raise ValueError(
                    f"{path}: the saved parameters do not match the structure of `like`."
                )
            return eqx.combine(jtu.tree_unflatten(treedef, leaves), static)

        params = rebuild("params") if meta["has_params"] else None
        observables = {}
        for name, n in meta["observables"].items():
            vals = [jnp.asarray(data[f"obs/{name}/{i}"]) for i in range(n)]
            observables[name] = vals[0] if n == 1 else vals
        return cls(
            ts=jnp.asarray(data["ts"]),
            params=params,
            loss=jnp.asarray(data["loss"]),
            observables=observables,
            final_params=rebuild("final"),
            stats=meta["stats"],
        )
