"""The `Trajectory`: what every flow and every optimiser returns, and its checkpoint
file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np

from ._misc import tree_index
from ._results import RESULTS, result_item


FORMAT = "dynlearn.Trajectory/2"
# Entries of `stats` that depend on the process rather than the run (wall-clock
# timings; whether this call compiled or reused a program) are not written to
# checkpoint files, so that equal runs write equal bytes.
_TIMINGS = ("compile_time", "run_time", "num_compilations")


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
    - `final_params`: the parameters at the end of the run.
    - `state`: the complete state of the dynamics at the end of the run (time, step,
      optimiser state, PRNG key, momenta, sampler chains, ...): pass the trajectory
      as `resume=` to continue the run exactly where it stopped. `None` for a
      trajectory that cannot be resumed.
    - `result`: the status code of the run as an integer array, one of
      [`dynlearn.RESULTS`][] (`0` is success). Eager calls raise on failure instead,
      so it matters under `jax.jit` or `jax.vmap` with `throw=False`.
    - `stats`: run statistics (see each entry point): counts of steps and of gradient
      evaluations, the method's description; in eager calls also `compile_time`,
      `run_time` (seconds) and `num_compilations`. Counts are Python numbers in eager
      calls and arrays when the call is traced (under `jax.jit`, `jax.vmap`,
      `jax.grad`).

    A trajectory is a pytree: under `jax.vmap` every array gains a leading batch
    axis.
    """

    ts: jax.Array
    params: Any
    loss: jax.Array
    observables: dict[str, Any]
    final_params: Any
    state: Any
    result: Any
    counts: dict[str, Any]
    info: dict[str, Any] = eqx.field(static=True)

    def __init__(
        self,
        ts: Any,
        params: Any,
        loss: Any,
        observables: dict[str, Any],
        final_params: Any,
        stats: Mapping[str, Any] | None = None,
        *,
        state: Any = None,
        result: Any = None,
        counts: Mapping[str, Any] | None = None,
    ):
        self.ts = ts
        self.params = params
        self.loss = loss
        self.observables = dict(observables)
        self.final_params = final_params
        self.state = state
        self.result = RESULTS.successful if result is None else result
        self.counts = dict(counts or {})
        self.info = stats if isinstance(stats, dict) else dict(stats or {})

    @property
    def stats(self) -> dict[str, Any]:
        """`info` and `counts` in one dict; concrete 0-d counts as Python numbers."""
        out = dict(self.info)
        for k, v in self.counts.items():
            if isinstance(v, jax.core.Tracer) or np.ndim(v) != 0:
                out[k] = v
            else:
                v = np.asarray(v)
                out[k] = int(v) if np.issubdtype(v.dtype, np.integer) else float(v)
        return out

    def __len__(self) -> int:
        return int(self.ts.shape[-1])

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
        """Write the trajectory, its final state included, to the file `path`.

        The name is used exactly as given (`.npz` is appended only when the name has
        no suffix at all, so `"ckpt_t5.5"` and `"ckpt_t5.0"` are two files). The write
        is atomic: the data go to a temporary file in the same folder, which then
        replaces `path` (`os.replace`), so an interrupted write leaves the previous
        file intact. Equal trajectories give equal bytes: wall-clock timings are not
        written.

        Read it back with [`dynlearn.Trajectory.load`][] and a template of the
        parameters, as `equinox` serialisation does.
        """
        path = _checkpoint_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"ts": _host(self.ts), "loss": _host(self.loss)}
        arrays["result"] = _host(getattr(self.result, "_value", self.result))
        meta: dict[str, Any] = {
            "format": FORMAT,
            "stats": {k: v for k, v in self.info.items() if k not in _TIMINGS},
            "counts": {},
            "has_params": self.params is not None,
        }
        for k, v in self.counts.items():
            arrays[f"counts/{k}"] = _host(v)
            meta["counts"][k] = True
        meta["observables"] = _put(arrays, "obs", self.observables)
        if self.params is not None:
            _put(arrays, "params", eqx.filter(self.params, eqx.is_array))
        meta["final"] = _put(
            arrays, "final", eqx.filter(self.final_params, eqx.is_array)
        )
        meta["state"] = (
            None if self.state is None else _put(arrays, "state", self.state)
        )
        meta["state_kind"] = None if self.state is None else type(self.state).__name__
        arrays["meta"] = np.frombuffer(
            json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8
        )
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                _write_npz(f, arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, like: Any) -> Trajectory:
        """Read a trajectory written by [`dynlearn.Trajectory.save`][].

        `like` is a parameter pytree of the saved structure (for example the initial
        parameters; its array values are ignored). The file stores the arrays under
        their pytree paths: the paths, shapes and dtypes of `like`'s arrays must match
        it, and the first mismatch is named in a `ValueError`. Non-array fields
        (activation functions, sizes) are not stored; they are taken from `like`.
        The final state comes back as saved, and is checked against the dynamics when
        the trajectory is passed as `resume=`.
        """
        path = _checkpoint_path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            meta = json.loads(bytes(data.pop("meta")).decode())
        except FileNotFoundError:
            raise
        except Exception as e:
            raise ValueError(
                f"{path} is not a readable dynlearn trajectory file ({type(e).__name__}:"
                f" {e}). It may be truncated or corrupt: load an earlier checkpoint."
            ) from None
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a dynlearn trajectory file of format {FORMAT} (found "
                f"{meta.get('format')!r})."
            )
        template = eqx.filter(like, eqx.is_array)
        _, static = eqx.partition(like, eqx.is_array)
        # a batch of runs (an ensemble, or a vmapped call) has leading axes in front
        lead = tuple(data["loss"].shape[:-1])
        n = int(data["ts"].shape[-1])

        def shaped(extra):
            return jtu.tree_map(
                lambda a: jax.ShapeDtypeStruct((*extra, *np.shape(a)), a.dtype),
                template,
            )

        final = eqx.combine(
            _take_like(
                data, "final", shaped(lead), meta["final"], path, "final_params"
            ),
            static,
        )
        params = None
        if meta["has_params"]:
            params = eqx.combine(
                _take_like(
                    data, "params", shaped((*lead, n)), meta["final"], path, "params"
                ),
                static,
            )
        state = None
        if meta["state"] is not None:
            state = SavedState(
                _take_raw(data, "state", meta["state"]).leaves,
                kind=meta.get("state_kind"),
            )
        return cls(
            ts=jnp.asarray(data["ts"]),
            params=params,
            loss=jnp.asarray(data["loss"]),
            observables=_take_raw(data, "obs", meta["observables"]),
            final_params=final,
            stats=meta["stats"],
            state=state,
            result=result_item(data["result"]),
            counts={k: jnp.asarray(data[f"counts/{k}"]) for k in meta["counts"]},
        )


class SavedState(eqx.Module):
    """A dynamics state read from a checkpoint: its array leaves under their pytree
    paths, before the dynamics that resumes it restores its structure (and checks it:
    see [`dynlearn.Trajectory.load`][])."""

    leaves: dict[str, Any]
    kind: str | None = eqx.field(static=True, default=None)


def check_state_kind(state: Any, kind: type, what: str, remedy: str) -> None:
    """Raise if `state` (a live state or a [`SavedState`][]) is not a `kind` state:
    a checkpoint of one dynamics must not resume another."""
    got = state.kind if isinstance(state, SavedState) else type(state).__name__
    if got is not None and got != kind.__name__:
        raise ValueError(
            f"resume: this trajectory ends in a {got} state, written by another "
            f"dynamics; {what} resumes only its own runs ({kind.__name__}). {remedy}"
        )


def restore_state(saved: Any, template: Any, what: str) -> Any:
    """`saved` (a state, or a [`SavedState`][] from a file) in the structure of
    `template`, checked leaf by leaf; `what` names the run in errors."""
    if not isinstance(saved, SavedState):
        got, want = jtu.tree_structure(saved), jtu.tree_structure(template)
        if got != want:
            raise ValueError(
                f"resume: the state of this trajectory does not belong to {what}: its "
                f"tree structure is {got}, {what} needs {want}. Resume a run with the "
                "dynamics, optimiser and parameter structure that wrote it."
            )
        _check_leaves(dict(_flat(saved)), dict(_flat(template)), f"resume ({what})")
        return saved
    flat = _flat(template)
    _check_leaves(saved.leaves, dict(flat), f"resume ({what})")
    leaves = []
    for name, t in flat:
        a = saved.leaves[name]
        if _is_key(t):
            a = jr.wrap_key_data(jnp.asarray(a), impl=jr.key_impl(t))
        leaves.append(jnp.asarray(a))
    return jtu.tree_unflatten(jtu.tree_structure(template), leaves)


# ----------------------------------------------------------------------------------
# helpers


def _checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + ".npz")


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _host(x: Any) -> np.ndarray:
    if _is_key(x):
        x = jr.key_data(x)
    return np.asarray(x)


def _flat(tree: Any) -> list[tuple[str, Any]]:
    leaves = jtu.tree_flatten_with_path(tree)[0]
    return [(jtu.keystr(p) or "()", leaf) for p, leaf in leaves]


def _put(arrays: dict, prefix: str, tree: Any) -> list[str]:
    names = []
    for name, leaf in _flat(tree):
        arrays[f"{prefix}/{name}"] = _host(leaf)
        names.append(name)
    return names


def _take_raw(data: dict, prefix: str, names: list[str]) -> Any:
    if prefix == "obs":
        out: dict[str, Any] = {}
        for name in names:  # "['grad_norm']" → grad_norm
            out[name[2:-2] if name.startswith("['") else name] = jnp.asarray(
                data[f"{prefix}/{name}"]
            )
        return out
    return SavedState({n: jnp.asarray(data[f"{prefix}/{n}"]) for n in names})


def _shape_dtype(x: Any) -> tuple[tuple[int, ...], str]:
    if _is_key(x):
        return tuple(x.shape) + tuple(jr.key_data(x).shape[len(x.shape) :]), "uint32"
    return tuple(np.shape(x)), np.dtype(x.dtype).name


def _check_leaves(saved: Mapping[str, Any], want: Mapping[str, Any], where: str):
    missing = [n for n in want if n not in saved]
    extra = [n for n in saved if n not in want]
    if missing or extra:
        raise ValueError(
            f"{where}: the saved leaves do not match the template: "
            + (f"missing {missing[:3]}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected {extra[:3]}" if extra else "")
            + ". The file was written for a different structure (a different model, "
            "depth or optimiser)."
        )
    for name, t in want.items():
        a = saved[name]
        (ws, wd), (gs, gd) = _shape_dtype(t), _shape_dtype(a)
        if gs != ws or gd != wd:
            raise ValueError(
                f"{where}: leaf {name} has shape {gs} and dtype {gd} in the file, but "
                f"the template has shape {ws} and dtype {wd}. The file was written for "
                "a different model (width, depth or precision)."
            )


def _take_like(
    data: dict, prefix: str, template: Any, names: list[str], path: Path, what: str
) -> Any:
    flat = _flat(template)
    saved = {n: data[f"{prefix}/{n}"] for n in names if f"{prefix}/{n}" in data}
    if [n for n, _ in flat] != names:
        got = names
        want = [n for n, _ in flat]
        first = next(
            (f"{g} (file) against {w} (like)" for g, w in zip(got, want) if g != w),
            f"{len(got)} leaves in the file against {len(want)} in like",
        )
        raise ValueError(
            f"{path}: {what} in the file do not have the structure of `like`: first "
            f"difference {first}. Pass a template of the model that wrote the file."
        )
    _check_leaves(saved, dict(flat), f"{path}: {what}")
    return jtu.tree_unflatten(
        jtu.tree_structure(template), [jnp.asarray(saved[n]) for n, _ in flat]
    )


def _write_npz(f: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed `.npz` (a zip of `.npy` members) with fixed member timestamps,
    so that equal arrays give equal bytes."""
    import zipfile

    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(
                    member, np.asarray(arrays[name]), allow_pickle=False
                )
