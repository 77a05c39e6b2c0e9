"""The `dynlearn` command line: list, explain, run, show and compare scenarios.

    dynlearn list
    dynlearn run NAME|all [--quick | --smoke] [--out DIR] [--set KEY=VALUE ...]
    dynlearn run NAME --help          # every config key: type, default, meaning
    dynlearn show DIR
    dynlearn compare DIR1 DIR2 [--rtol R]

A scenario is a plain Python file `scenarios/NAME.py` that defines

- a module docstring whose first line is the one-line description,
- `CONFIG`: every parameter with its default (the full, published-size experiment),
- `HELP`: a one-line meaning for every key of `CONFIG`,
- `QUICK`: overrides used with `--quick`; `SMOKE`: overrides applied on top of `QUICK`
  with `--smoke` (the smallest configuration that exercises every code path),
- `run(config: dict, out: pathlib.Path) -> dict`: does the work, writes plots into
  `out`, and returns the metrics,
- `headline(metrics: dict) -> tuple[str, bool | None]`: the scenario's claim stated
  from its metrics, and whether it held (`None` for benchmarks that assert nothing),
- optionally `RUN_ALONE = True`: its results are wall-time ratios, so `run all`
  gives it the machine to itself.

The scenarios ship inside the wheel (as `dynlearn/_scenarios/`); an editable install
uses the checkout's `scenarios/`; `--scenarios DIR` or `$DYNLEARN_SCENARIOS` override
both.

Results of `run NAME --out DIR` land in `DIR/NAME/`: the plots and `metrics.json`
(strict JSON: NaN and infinities are `null`; with the configuration, the headline and
the provenance: dynlearn and JAX versions, git commit, UTC time, device). A run is
written to a hidden sibling folder and renamed over `DIR/NAME/` only when it is
complete, so no stale file of an earlier run survives. A failed run leaves
`DIR/NAME/FAILED` (the error and its traceback) and no `metrics.json`.

`run all` runs `--jobs` scenarios at a time (default: one per CPU core, at most 4),
each in its own process; a scenario's output is printed as one block when it ends.
`RUN_ALONE` scenarios run last, one at a time. `--jobs 1` runs them one after another
in this process.

Exit status: 0 success, 1 a scenario failed, 2 a usage error (caught before any
scenario starts), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.metadata
import importlib.resources
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any


#: Default relative tolerance of `dynlearn compare`: a run repeated on the same
#: machine reproduces its metrics to round-off, far below this; a change of a
#: physical result shows far above it. Timings always differ (they are reported too).
COMPARE_RTOL = 1e-6


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# ----------------------------------------------------------------------------------
# Finding and loading scenarios


def _packaged_scenarios() -> Path | None:
    """The `dynlearn/_scenarios/` folder the wheel ships, if this is a wheel install."""
    try:
        res = importlib.resources.files("dynlearn").joinpath("_scenarios")
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        return None
    if not res.is_dir():
        return None
    return Path(str(res))


def _checkout_scenarios() -> Path | None:
    """The `scenarios/` folder of the source checkout this package is imported from
    (an editable install, or a run from the source tree)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "scenarios").is_dir():
        return root / "scenarios"
    return None


def scenarios_dir(explicit: str | None = None) -> Path:
    """Where the scenario scripts live: `--scenarios DIR`, else `$DYNLEARN_SCENARIOS`,
    else the `scenarios/` of the source checkout dynlearn is imported from (an
    editable install), else the scenarios shipped in the installed wheel."""
    if explicit or os.environ.get("DYNLEARN_SCENARIOS"):
        where = "--scenarios" if explicit else "$DYNLEARN_SCENARIOS"
        c = Path(explicit or os.environ["DYNLEARN_SCENARIOS"]).expanduser()
        if not c.is_dir():
            raise CLIError(f"{where} {c}: no such folder.")
        if not available(c):
            raise CLIError(f"{where} {c}: the folder holds no scenario (*.py) file.")
        return c
    for c in (_checkout_scenarios(), _packaged_scenarios()):
        if c is not None and available(c):
            return c
    raise CLIError(
        "Could not find the scenarios folder: this dynlearn install ships none "
        "(build the wheel with hatchling from the source tree, or install it "
        "editable with `pip install -e .`), or pass --scenarios DIR, or set "
        "DYNLEARN_SCENARIOS."
    )


def available(directory: Path) -> dict[str, Path]:
    """The scenario scripts of a folder, by name (files starting `_` are helpers)."""
    return {
        p.stem: p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")
    }


def load_scenario(path: Path) -> ModuleType:
    """Import a scenario script and check the names the CLI relies on."""
    spec = importlib.util.spec_from_file_location(
        f"dynlearn_scenario_{path.stem}", path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for attr in ("CONFIG", "run"):
        if not hasattr(module, attr):
            raise CLIError(f"Scenario {path} does not define `{attr}`.")
    for attr in ("QUICK", "SMOKE"):
        extra = set(getattr(module, attr, {})) - set(module.CONFIG)
        if extra:
            raise CLIError(
                f"Scenario {path}: {attr} keys {sorted(extra)} are not in CONFIG."
            )
    return module


def describe(module: ModuleType) -> str:
    """The one-line description: the first line of the scenario's docstring."""
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def describe_file(path: Path) -> str:
    """The first docstring line of a scenario file, read without importing it."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, ValueError):
        return "(unreadable)"
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


# ----------------------------------------------------------------------------------
# Configurations and typed --set values


def _compact(x: Any) -> str:
    try:
        return json.dumps(x, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(x)


def type_name(default: Any) -> str:
    """The type `--set` expects for a parameter, from its default."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list | tuple):
        elem = _element_kind(default)
        return f"list[{elem}]" if elem else "list"
    if isinstance(default, dict):
        return "dict"
    if default is None:
        return "any"
    return type(default).__name__


def _element_kind(seq: list | tuple) -> str | None:
    kinds = {type_name(v) for v in seq}
    if kinds == {"int", "float"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 else None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _scalar(kind: str, text: str) -> Any:
    """Parse one scalar of the given kind; ValueError when it is not one."""
    t = text.strip()
    if kind == "bool":
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ValueError(text)
    if kind == "int":
        try:
            return int(t)
        except ValueError:
            f = float(t)  # 1e4 is an int too
            if f.is_integer():
                return int(f)
            raise
    if kind == "float":
        return float(t)
    if kind == "str":
        return text
    raise ValueError(text)


def _check_element(kind: str, value: Any) -> Any:
    """An element of a parsed JSON list, checked against (and cast to) its kind."""
    if (
        kind == "float"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind.startswith("list") and isinstance(value, list):
        return value
    if kind == "dict" and isinstance(value, dict):
        return value
    raise ValueError(value)


def parse_value(key: str, text: str, default: Any) -> Any:
    """Parse a `--set KEY=VALUE` value to the type of the parameter's default.

    Scalars take their usual spelling (`true`/`false` for booleans; an int parameter
    accepts `1e4`). A list takes JSON (`lrs=[0.1,0.2]`) or a comma list
    (`lrs=0.1,0.2`); each element is checked against the default's elements. A single
    scalar for a list parameter is rejected (write `lrs=[0.1]`). A dict takes a JSON
    object; one entry of a dict parameter is set with `KEY.SUBKEY=VALUE`.
    """
    kind = type_name(default)
    shown = f"(default {_compact(default)})"
    try:
        if isinstance(default, list | tuple):
            elem = _element_kind(default) if default else None
            t = text.strip()
            if t.startswith("["):
                value = json.loads(t)
                if not isinstance(value, list):
                    raise ValueError(text)
                if elem:
                    value = [_check_element(elem, v) for v in value]
            elif "," in t:
                parts = [p for p in t.split(",")]
                if elem:
                    value = [_scalar(elem, p) for p in parts]
                else:
                    value = [_json_or_str(p) for p in parts]
            else:
                example = f"[{t}]" if t else "[...]"
                two = ",".join(_compact(v) for v in list(default)[:2]) or "a,b"
                raise CLIError(
                    f"--set {key}={text}: {key} is a {kind} {shown}; write "
                    f"{key}={example} (JSON) or {key}={two} (a comma list)."
                )
            return type(default)(value)
        if isinstance(default, dict):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError(text)
            return value
        if default is None:
            return _json_or_str(text)
        return _scalar(kind, text)
    except (ValueError, TypeError, json.JSONDecodeError):
        hint = {
            "bool": "true or false",
            "int": "an integer, e.g. 100",
            "float": "a number, e.g. 0.1",
            "dict": f"a JSON object, or one entry as {key}.NAME=VALUE",
        }.get(kind, f"JSON, e.g. {key}=[0.1,0.2], or a comma list {key}=0.1,0.2")
        raise CLIError(
            f"--set {key}={text}: cannot read {text!r} as {kind} {shown}; expected "
            f"{hint}."
        ) from None


def _json_or_str(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def preset_overrides(module: ModuleType, quick: bool, smoke: bool) -> dict:
    """QUICK (with --quick or --smoke) and SMOKE (with --smoke) merged."""
    over: dict = {}
    if quick or smoke:
        over.update(getattr(module, "QUICK", {}))
    if smoke:
        over.update(getattr(module, "SMOKE", {}))
    return over


def make_config(
    module: ModuleType,
    name: str,
    quick: bool,
    overrides: dict[str, str],
    strict: bool,
    smoke: bool = False,
) -> dict:
    """CONFIG, then QUICK (`quick` or `smoke`), then SMOKE (`smoke`), then the typed
    `--set` overrides. With `strict`, an unknown key is an error; otherwise keys of
    other scenarios (`run all`) are skipped."""
    config = dict(module.CONFIG)
    config.update(preset_overrides(module, quick, smoke))
    for key, text in overrides.items():
        top, _, sub = key.partition(".")
        if top not in module.CONFIG:
            if strict:
                raise CLIError(
                    f"Unknown --set key {top!r} for scenario {name!r}. Known keys: "
                    f"{', '.join(module.CONFIG)}. See `dynlearn run {name} --help`."
                )
            continue
        if not sub:
            config[key] = parse_value(key, text, module.CONFIG[key])
            continue
        base = config[top]
        if not isinstance(base, dict) or sub not in base:
            if not isinstance(base, dict):
                msg = f"{top} is a {type_name(base)}, not a dict; write --set {top}=VALUE."
            else:
                msg = f"{top} has no entry {sub!r}; its entries: {', '.join(base)}."
            raise CLIError(f"--set {key}={text}: {msg}")
        config[top] = {**base, sub: parse_value(key, text, base[sub])}
    return config


def scenario_help(name: str, module: ModuleType) -> str:
    """`dynlearn run NAME --help`: the description and every key's type, default,
    meaning, and its --quick / --smoke values."""
    helps = getattr(module, "HELP", {}) or {}
    quick = getattr(module, "QUICK", {}) or {}
    smoke = getattr(module, "SMOKE", None)
    keys = list(module.CONFIG)
    kw = max(len(k) for k in keys) if keys else 0
    tw = max(len(type_name(v)) for v in module.CONFIG.values()) if keys else 0
    lines = [f"{name}: {describe(module)}", "", "config keys (--set KEY=VALUE):"]
    for k in keys:
        default = module.CONFIG[k]
        meaning = helps.get(k, "(no description)")
        lines.append(
            f"  {k:<{kw}}  {type_name(default):<{tw}}  default {_compact(default)}"
        )
        lines.append(f"  {'':<{kw}}  {'':<{tw}}  {meaning}")
        extra = []
        if k in quick:
            extra.append(f"--quick: {_compact(quick[k])}")
        if smoke is not None and k in smoke:
            extra.append(f"--smoke: {_compact(smoke[k])}")
        if extra:
            lines.append(f"  {'':<{kw}}  {'':<{tw}}  {'; '.join(extra)}")
    lines.append("")
    lines.append(
        "--quick overrides: "
        + (", ".join(f"{k}={_compact(v)}" for k, v in quick.items()) or "(none)")
    )
    if smoke is None:
        lines.append(
            "--smoke overrides: (this scenario defines no SMOKE; --smoke runs QUICK)"
        )
    else:
        lines.append(
            "--smoke overrides (on top of --quick): "
            + (", ".join(f"{k}={_compact(v)}" for k, v in smoke.items()) or "(none)")
        )
    lines.append(
        "Lists take JSON (lrs=[0.1,0.2]) or a comma list (lrs=0.1,0.2); one entry of "
        "a dict key as KEY.NAME=VALUE."
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------
# Provenance and strict JSON


def _version() -> str:
    try:
        return importlib.metadata.version("dynlearn")
    except importlib.metadata.PackageNotFoundError:
        import dynlearn

        return getattr(dynlearn, "__version__", "unknown")


def _git(directory: Path) -> dict:
    """The commit of the git checkout holding `directory`, if any (silently empty)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if head.returncode != 0:
            return {}
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(directory),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        info: dict = {"git_commit": head.stdout.strip()}
        if dirty.returncode == 0:
            info["git_dirty"] = bool(dirty.stdout.strip())
        return info
    except (OSError, subprocess.SubprocessError):
        return {}


def _environment(directory: Path) -> dict:
    import jax

    try:
        dev = jax.devices()[0]
        device = {"device_kind": dev.device_kind, "platform": dev.platform}
    except Exception:  # pragma: no cover - no usable backend
        device = {}
    try:
        jaxlib_version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        jaxlib_version = None
    return {
        "dynlearn": _version(),
        **_git(directory),
        "utc_time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib_version,
        "backend": jax.default_backend(),
        **device,
        "x64": bool(jax.config.jax_enable_x64),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }


def _jsonable(x: Any) -> Any:
    """Plain JSON values: arrays to lists, NaN and infinities to None."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dump_json(record: dict) -> str:
    """Strict JSON (`allow_nan=False`): a NaN that slipped through is an error."""
    return (
        json.dumps(_jsonable(record), indent=2, allow_nan=False, ensure_ascii=False)
        + "\n"
    )


# ----------------------------------------------------------------------------------
# Running


def _headline(module: ModuleType, metrics: dict) -> dict:
    fn = getattr(module, "headline", None)
    if fn is None:
        return {"text": "(the scenario states no headline)", "held": None}
    pair = fn(metrics)
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise TypeError(
            f"headline(metrics) returned {pair!r}; it must return (text, held) with "
            "held True, False or None."
        )
    text, held = pair
    if not isinstance(text, str) or held not in (True, False, None):
        raise TypeError(
            f"headline(metrics) returned ({text!r}, {held!r}); it must return a str "
            "and True, False or None."
        )
    return {"text": text, "held": None if held is None else bool(held)}


def _held_word(held: bool | None) -> str:
    return {True: "held", False: "NOT held", None: "(benchmark)"}[held]


def _replace_dir(src: Path, dest: Path) -> None:
    """Move the folder `src` to `dest`, replacing an existing `dest` folder."""
    old = None
    if dest.is_dir() and not dest.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        old.rmdir()
        dest.rename(old)
    src.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_one(
    name: str,
    path: Path,
    out_root: Path,
    config: dict,
    quick: bool,
    smoke: bool = False,
    module: ModuleType | None = None,
) -> dict:
    """Run one scenario into `out_root/name` (atomically; see the module docstring).

    Returns the record written to `metrics.json`; raises what the scenario raised
    (after leaving `out_root/name/FAILED`)."""
    module = module if module is not None else load_scenario(path)
    out_root.mkdir(parents=True, exist_ok=True)
    dest = out_root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out_root))
    preset = "smoke" if smoke else "quick" if quick else "full"
    print(f"[dynlearn] {name} ({preset}): {describe(module)}", flush=True)
    tic = time.perf_counter()
    try:
        try:
            metrics = module.run(config, tmp)
            wall = time.perf_counter() - tic
            headline = _headline(module, metrics)
            record = {
                "scenario": name,
                "description": describe(module),
                "preset": preset,
                "quick": quick or smoke,
                "smoke": smoke,
                "headline": headline,
                "seed": config.get("seed"),
                "config": config,
                "metrics": metrics,
                "wall_time_s": wall,
                "environment": _environment(path.parent),
            }
            text = dump_json(record)
        except Exception as e:
            wall = time.perf_counter() - tic
            (tmp / "metrics.json").unlink(missing_ok=True)
            (tmp / "FAILED").write_text(
                f"{name} failed after {wall:.1f} s: {type(e).__name__}: {e}\n\n"
                f"config: {_compact(_jsonable(config))}\n\n{traceback.format_exc()}",
                encoding="utf-8",
            )
            _replace_dir(tmp, dest)
            raise
        (tmp / "metrics.json").write_text(text, encoding="utf-8")
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # interrupted: never renamed
        raise
    finally:
        _free_compiled_programs()
    files = sorted(p.name for p in dest.iterdir())
    print(
        f"[dynlearn] {name}: {headline['text']} — {_held_word(headline['held'])}",
        flush=True,
    )
    print(
        f"[dynlearn] {name}: done in {wall:.1f} s -> {dest} ({', '.join(files)})",
        flush=True,
    )
    return record


def _free_compiled_programs() -> None:
    """Drop the scenario's compiled programs. Each XLA CPU executable holds its own
    memory mappings; a process that keeps the programs of every scenario of
    `run all` approaches the kernel's limit on mappings per process
    (`vm.max_map_count`, 65530 by default), where XLA aborts."""
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynlearn" / "jax"


def _configure_jax(float32: bool, cache: bool) -> None:
    import jax

    jax.config.update("jax_enable_x64", not float32)
    if not cache:
        jax.config.update("jax_enable_compilation_cache", False)
        return
    d = _cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"dynlearn: note: compilation cache off ({d}: {e})", file=sys.stderr)
        return
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _check_out(out_root: Path, names: list[str]) -> None:
    for p in [out_root, *out_root.parents]:
        if p.exists():
            if not p.is_dir():
                raise CLIError(
                    f"--out {out_root}: {p} is a file, not a folder; pick another --out."
                )
            break
    for n in names:
        if (out_root / n).exists() and not (out_root / n).is_dir():
            raise CLIError(
                f"--out {out_root}: {out_root / n} is a file where the results folder "
                f"of {n} goes; move it or pick another --out."
            )


def _summary(rows: list[tuple[str, float, str, str]]) -> str:
    nw = max(len("scenario"), *(len(r[0]) for r in rows))
    hw = max(len("held"), *(len(r[2]) for r in rows))
    lines = [f"{'scenario':<{nw}}  {'time':>8}  {'held':<{hw}}  headline"]
    for name, wall, held, text in rows:
        lines.append(f"{name:<{nw}}  {wall:>7.1f}s  {held:<{hw}}  {text}")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace, found: dict[str, Path]) -> int:
    if args.name is None:
        if args.help:
            print(args.run_parser.format_help(), end="")
            return 0
        raise CLIError("run needs a scenario NAME or 'all'. See `dynlearn list`.")
    if args.name == "all":
        names = list(found)
    elif args.name in found:
        names = [args.name]
    else:
        raise CLIError(
            f"Unknown scenario {args.name!r}. Available: {', '.join(found)} "
            "(or 'all'). See `dynlearn list`."
        )
    if args.help:
        print(args.run_parser.format_help())
        if args.name == "all":
            print("Scenarios (`dynlearn run NAME --help` for their keys):")
            print(_scenario_table(found))
        else:
            print(scenario_help(args.name, load_scenario(found[args.name])), end="")
        return 0
    overrides: dict[str, str] = {}
    for item in args.set:
        if "=" not in item:
            raise CLIError(f"--set expects KEY=VALUE, got {item!r}.")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v
    out_root = Path(args.out)
    _check_out(out_root, names)
    modules: dict[str, ModuleType] = {}
    broken: dict[str, str] = {}
    for n in names:
        try:
            modules[n] = load_scenario(found[n])
        except CLIError:
            raise
        except Exception as e:  # a scenario that does not import is a failure
            if len(names) == 1:
                raise
            traceback.print_exc()
            broken[n] = f"does not import: {type(e).__name__}: {e}"
            print(f"[dynlearn] {n}: FAILED ({broken[n]})", file=sys.stderr)
    if len(names) > 1:
        unknown = [
            k
            for k in overrides
            if not any(k.partition(".")[0] in m.CONFIG for m in modules.values())
        ]
        if unknown:
            raise CLIError(f"--set key(s) {unknown} match no scenario's CONFIG.")
    configs = {
        n: make_config(
            m, n, args.quick, overrides, strict=len(names) == 1, smoke=args.smoke
        )
        for n, m in modules.items()
    }
    if args.smoke:
        for n, m in modules.items():
            if not hasattr(m, "SMOKE"):
                print(
                    f"dynlearn: note: {n} defines no SMOKE; --smoke runs its QUICK "
                    "config",
                    file=sys.stderr,
                )

    jobs = _default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise CLIError(f"--jobs must be a positive integer, got {jobs}.")
    if len(modules) > 1 and jobs > 1:
        return _run_parallel(args, found, modules, overrides, broken, out_root, jobs)

    _configure_jax(args.float32, cache=not args.no_cache)
    import dynlearn

    dynlearn.show_progress(
        sys.stderr.isatty() if args.progress is None else args.progress
    )
    failed = list(broken)
    rows = [(n, 0.0, "FAILED", why) for n, why in broken.items()]
    current = None
    try:
        for n in modules:
            current = n
            tic = time.perf_counter()
            try:
                rec = run_one(
                    n,
                    found[n],
                    out_root,
                    configs[n],
                    args.quick,
                    args.smoke,
                    modules[n],
                )
                h = rec["headline"]
                rows.append((n, rec["wall_time_s"], _held_word(h["held"]), h["text"]))
            except Exception as e:
                traceback.print_exc()
                print(
                    f"[dynlearn] {n}: FAILED ({type(e).__name__}: {e}); see "
                    f"{out_root / n / 'FAILED'}",
                    file=sys.stderr,
                    flush=True,
                )
                failed.append(n)
                rows.append(
                    (n, time.perf_counter() - tic, "FAILED", f"{type(e).__name__}: {e}")
                )
    except KeyboardInterrupt:
        print(
            f"dynlearn: interrupted during {current}; its results were not written "
            f"({out_root / str(current)} keeps any earlier complete run).",
            file=sys.stderr,
        )
        return 130
    if len(names) > 1:
        print()
    return _report(rows, failed, table=len(names) > 1)


def _report(rows: list[tuple], failed: list[str], table: bool) -> int:
    """The closing table of a run (with `table`) and its exit status: 1 if any
    scenario failed, named on stderr."""
    if table:
        print(_summary(rows))
    if failed:
        print(
            f"dynlearn: {len(failed)} scenario(s) failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _default_jobs() -> int:
    """One scenario per CPU core available to this process, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _previous_wall(folder: Path) -> float:
    """The wall time of an earlier run in `folder` (0 if none): `run all` starts the
    longest scenarios first, so that the last to finish are short."""
    try:
        return float(json.loads((folder / "metrics.json").read_text())["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _child_command(
    args: argparse.Namespace,
    path: Path,
    module: ModuleType,
    overrides: dict[str, str],
    out_root: Path,
) -> list[str]:
    """`python -m dynlearn run NAME ...` with this run's options, and the `--set`
    keys that belong to NAME's CONFIG."""
    cmd = [
        sys.executable,
        "-m",
        "dynlearn",
        "--scenarios",
        str(path.parent),
        "run",
        path.stem,
        "--out",
        str(out_root),
        "--no-progress",
    ]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--smoke"] if args.smoke else []
    cmd += ["--float32"] if args.float32 else []
    cmd += ["--no-cache"] if args.no_cache else []
    for key, text in overrides.items():
        if key.partition(".")[0] in module.CONFIG:
            cmd += ["--set", f"{key}={text}"]
    return cmd


def _finished_row(name: str, dest: Path, code: int, wall: float) -> tuple:
    """The summary row of a scenario run by a child process, from what it left in
    its results folder."""
    if code == 0:
        try:
            rec = json.loads((dest / "metrics.json").read_text())
            h = rec["headline"]
            return (name, rec["wall_time_s"], _held_word(h["held"]), h["text"])
        except (OSError, ValueError, KeyError) as e:
            return (name, wall, "FAILED", f"no readable metrics.json ({e})")
    failed = dest / "FAILED"
    why = f"exit status {code}"
    if code < 0:
        why = f"killed by signal {-code}"
    if failed.is_file():
        # first line: "NAME failed after T s: Error: message"
        first = failed.read_text(encoding="utf-8").splitlines()[0]
        why = first.split(": ", 1)[1] if ": " in first else first
    return (name, wall, "FAILED", why)


def _run_parallel(
    args: argparse.Namespace,
    found: dict[str, Path],
    modules: dict[str, ModuleType],
    overrides: dict[str, str],
    broken: dict[str, str],
    out_root: Path,
    jobs: int,
) -> int:
    """Run the scenarios `jobs` at a time, each as `python -m dynlearn run NAME` in
    its own process (a crash stays in its process), printing each one's output as a
    block when it ends; `RUN_ALONE` scenarios run last, one at a time."""
    alone = [n for n in modules if getattr(modules[n], "RUN_ALONE", False)]
    shared = sorted(
        (n for n in modules if n not in alone),
        key=lambda n: -_previous_wall(out_root / n),
    )
    queue = shared + alone
    total = len(queue)
    print(
        f"[dynlearn] running {total} scenarios, {jobs} at a time"
        + (f" ({', '.join(alone)} alone, at the end)" if alone else ""),
        flush=True,
    )
    rows: dict[str, tuple] = {n: (n, 0.0, "FAILED", why) for n, why in broken.items()}
    running: dict[str, tuple[subprocess.Popen, Any, float]] = {}
    out_root.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix=".logs-", dir=out_root))
    try:
        while queue or running:
            while queue and len(running) < jobs:
                n = queue[0]
                if n in alone and running:
                    break  # wait until the machine is free
                queue.pop(0)
                log = open(logs / f"{n}.log", "w+b")  # noqa: SIM115 (closed below)
                cmd = _child_command(args, found[n], modules[n], overrides, out_root)
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
                running[n] = (proc, log, time.perf_counter())
                if n in alone:
                    break
            time.sleep(0.1)
            for n, (proc, log, tic) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[n]
                log.seek(0)
                sys.stdout.write(log.read().decode("utf-8", "replace"))
                log.close()
                rows[n] = _finished_row(
                    n, out_root / n, code, time.perf_counter() - tic
                )
                ended = total - len(queue) - len(running)
                print(
                    f"[dynlearn] {ended}/{total} done"
                    + (f"; running: {', '.join(running)}" if running else "")
                    + "\n",
                    flush=True,
                )
    except KeyboardInterrupt:
        for proc, _, _ in running.values():
            proc.terminate()
        for proc, _, _ in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(
            f"dynlearn: interrupted during {', '.join(running) or 'the last start'}; "
            "their results were not written (each folder keeps any earlier complete "
            "run).",
            file=sys.stderr,
        )
        return 130
    finally:
        for _, log, _ in running.values():
            log.close()
        shutil.rmtree(logs, ignore_errors=True)
    order = [n for n in found if n in rows]
    failed = [n for n in order if rows[n][2] == "FAILED"]
    return _report([rows[n] for n in order], failed, table=True)


# ----------------------------------------------------------------------------------
# show / compare


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def flatten(x: Any, prefix: str = "", lists: bool = True) -> dict[str, Any]:
    """Scalar leaves of nested metrics: dict keys joined with `.`, list entries as
    `[i]` (skipped with `lists=False`)."""
    out: dict[str, Any] = {}
    if isinstance(x, dict):
        for k, v in x.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), lists))
    elif isinstance(x, list):
        if lists:
            for i, v in enumerate(x):
                out.update(flatten(v, f"{prefix}[{i}]", lists))
    elif _is_scalar(x):
        out[prefix] = x
    return out


def load_runs(directory: Path) -> dict[str, dict]:
    """The runs of a folder: `{name: record}` for a run folder (with `metrics.json`
    or `FAILED`) or for each such subfolder of a `run all` folder. A failed run's
    record is `{"failed": first line of FAILED}`."""

    def one(d: Path) -> dict | None:
        if (d / "metrics.json").is_file():
            try:
                return json.loads((d / "metrics.json").read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                return {"failed": f"unreadable metrics.json ({e})"}
        if (d / "FAILED").is_file():
            lines = (d / "FAILED").read_text(encoding="utf-8").splitlines()
            return {"failed": lines[0] if lines else "FAILED"}
        return None

    if not directory.is_dir():
        raise CLIError(f"{directory}: no such folder.")
    rec = one(directory)
    if rec is not None:
        return {rec.get("scenario", directory.name): rec}
    runs = {}
    for d in sorted(p for p in directory.iterdir() if p.is_dir()):
        if d.name.startswith("."):
            continue
        rec = one(d)
        if rec is not None:
            runs[rec.get("scenario", d.name)] = rec
    if not runs:
        raise CLIError(
            f"{directory}: neither a run folder (with metrics.json) nor a folder of "
            "run folders."
        )
    return runs


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _cmd_show(args: argparse.Namespace) -> int:
    runs = load_runs(Path(args.dir))
    rows = []
    for name, rec in runs.items():
        if "failed" in rec:
            rows.append((name, float("nan"), "FAILED", rec["failed"]))
            continue
        h = rec.get("headline") or {}
        rows.append(
            (
                name,
                rec.get("wall_time_s") or float("nan"),
                _held_word(h.get("held")),
                h.get("text", ""),
            )
        )
    print(_summary(rows))
    for name, rec in runs.items():
        if "failed" in rec:
            continue
        flat = flatten(rec.get("metrics", {}), lists=False)
        env = rec.get("environment", {})
        print(
            f"\n{name}  ({rec.get('preset', 'quick' if rec.get('quick') else 'full')}, "
            f"dynlearn {env.get('dynlearn', '?')}, {env.get('device_kind', env.get('backend', '?'))}, "
            f"{env.get('utc_time', '?')})"
        )
        if not flat:
            print("  (no scalar metrics)")
        w = max((len(k) for k in flat), default=0)
        for k, v in flat.items():
            print(f"  {k:<{w}}  {_fmt(v)}")
    return 0


def _reldiff(a: Any, b: Any) -> float | None:
    """|a − b| / max(|a|, |b|) for numbers (0 when equal), None when not numbers."""
    num = (int, float)
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not (isinstance(a, num) and isinstance(b, num))
    ):
        return None
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def _cmd_compare(args: argparse.Namespace) -> int:
    a_dir, b_dir = Path(args.dir1), Path(args.dir2)
    a, b = load_runs(a_dir), load_runs(b_dir)
    only_a = [n for n in a if n not in b]
    only_b = [n for n in b if n not in a]
    if len(a) == 1 and len(b) == 1 and only_a:
        # two single run folders: compare them whatever their names
        (na, ra), (nb, rb) = next(iter(a.items())), next(iter(b.items()))
        pairs = {f"{na} (A) vs {nb} (B)": (ra, rb)}
        only_a = only_b = []
    else:
        pairs = {n: (a[n], b[n]) for n in a if n in b}
    print(f"A = {a_dir}\nB = {b_dir}\nrtol = {args.rtol:g}")
    for n in only_a:
        print(f"\n? {n}: only in A")
    for n in only_b:
        print(f"\n? {n}: only in B")
    total = differ = 0
    for name, (ra, rb) in pairs.items():
        print(f"\n{name}")
        if "failed" in ra or "failed" in rb:
            print(f"  A: {ra.get('failed', 'ok')}\n  B: {rb.get('failed', 'ok')}")
            continue
        fa = flatten({"wall_time_s": ra.get("wall_time_s"), **ra.get("metrics", {})})
        fb = flatten({"wall_time_s": rb.get("wall_time_s"), **rb.get("metrics", {})})
        ha, hb = ra.get("headline") or {}, rb.get("headline") or {}
        if ha.get("held") != hb.get("held"):
            print(
                f"  ! headline: A {_held_word(ha.get('held'))}, "
                f"B {_held_word(hb.get('held'))}"
            )
        keys = list(fa) + [k for k in fb if k not in fa]
        w = max((len(k) for k in keys), default=0)
        for k in keys:
            total += 1
            if k not in fb:
                print(f"  ? {k:<{w}}  {_fmt(fa[k]):>12}  {'—':>12}  only in A")
                differ += 1
                continue
            if k not in fa:
                print(f"  ? {k:<{w}}  {'—':>12}  {_fmt(fb[k]):>12}  only in B")
                differ += 1
                continue
            r = _reldiff(fa[k], fb[k])
            if r is None:
                flag = fa[k] != fb[k]
                rel = "differs" if flag else "same"
            else:
                flag = r > args.rtol and k != "wall_time_s"  # timings always differ
                rel = f"{r:.2e}"
            differ += flag
            print(
                f"  {'!' if flag else ' '} {k:<{w}}  {_fmt(fa[k]):>12}  {_fmt(fb[k]):>12}  {rel}"
            )
    print(
        f"\n{differ} of {total} values differ beyond rtol = {args.rtol:g} or are on "
        "one side only (! differs, ? one side only; the wall time is not flagged)."
    )
    return 0


# ----------------------------------------------------------------------------------
# The parser


def _scenario_table(found: dict[str, Path]) -> str:
    width = max(len(n) for n in found)
    return "\n".join(f"  {n:<{width}}  {describe_file(p)}" for n, p in found.items())


def _prescan_scenarios(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--scenarios" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--scenarios="):
            return a.split("=", 1)[1]
    return None


def _parser(epilog: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        prog="dynlearn",
        description="Learning as a dynamical system: list, run, show and compare "
        "the scenario scripts.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dynlearn {_version()}")
    scen_help = "folder of scenario scripts (default: those shipped with dynlearn)"
    parser.add_argument("--scenarios", metavar="DIR", help=scen_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--scenarios", metavar="DIR", default=argparse.SUPPRESS, help=scen_help
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", parents=[common], help="list the scenarios")
    p_run = sub.add_parser(
        "run",
        parents=[common],
        add_help=False,
        help="run a scenario, or 'all'",
        description="Run a scenario (or all of them). `dynlearn run NAME --help` "
        "lists NAME's config keys with their types, defaults and meanings.",
        epilog="Exit status: 0 success, 1 a scenario failed, 2 usage error, "
        "130 interrupted.",
    )
    p_run.add_argument("name", nargs="?", help="scenario name, or 'all'")
    p_run.add_argument(
        "-h", "--help", action="store_true", help="show this help (and NAME's keys)"
    )
    preset = p_run.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick", action="store_true", help="small, fast settings (CONFIG + QUICK)"
    )
    preset.add_argument(
        "--smoke",
        action="store_true",
        help="smallest settings that exercise every code path (CONFIG + QUICK + SMOKE)",
    )
    p_run.add_argument(
        "--out", default="results", help="output folder (default: results)"
    )
    p_run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable); lists as [a,b] or a,b; "
        "a dict entry as KEY.NAME=VALUE",
    )
    p_run.add_argument(
        "--float32", action="store_true", help="run in float32 (default: float64)"
    )
    p_run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress meters for the training runs (default: on when stderr is a "
        "terminal)",
    )
    p_run.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="with 'all': scenarios run at a time, each in its own process (default: "
        "one per CPU core, at most 4; 1: one after another in this process)",
    )
    p_run.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache "
        f"(default: on, in {_cache_dir()})",
    )
    p_show = sub.add_parser(
        "show",
        parents=[common],
        help="the metrics of a run folder, or of a `run all` folder",
    )
    p_show.add_argument("dir", metavar="DIR")
    p_cmp = sub.add_parser(
        "compare",
        parents=[common],
        help="two runs' scalar metrics side by side",
        description="The scalar metrics of the scenarios in both folders, side by "
        "side, with |a − b| / max(|a|, |b|); '!' marks a value beyond --rtol, '?' a "
        "key on one side only. Informational: exits 0.",
    )
    p_cmp.add_argument("dir1", metavar="DIR1")
    p_cmp.add_argument("dir2", metavar="DIR2")
    p_cmp.add_argument(
        "--rtol",
        type=float,
        default=COMPARE_RTOL,
        help=f"relative tolerance (default {COMPARE_RTOL:g})",
    )
    return parser, p_run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("dynlearn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dynlearn list | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    explicit = _prescan_scenarios(argv)
    try:
        directory: Path | None = scenarios_dir(explicit)
        found = available(directory)
        epilog = "scenarios (`dynlearn run NAME --help` for their config keys):\n"
        epilog += _scenario_table(found)
        setup_error = None
    except CLIError as e:
        directory, found, setup_error = None, {}, e
        epilog = f"scenarios: none found ({e})"
    epilog += (
        "\n\nexit status: 0 success, 1 a scenario failed, 2 usage error, "
        "130 interrupted"
    )
    parser, p_run = _parser(epilog)
    args = parser.parse_args(argv)
    args.run_parser = p_run
    try:
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if setup_error is not None:
            raise setup_error
        assert directory is not None
        if args.command == "list":
            width = max(len(n) for n in found)
            for name, path in found.items():
                print(f"{name:<{width}}  {describe_file(path)}")
            return 0
        return _cmd_run(args, found)
    except CLIError as e:
        print(f"dynlearn: error: {e}", file=sys.stderr)
        return 2


def run_script(path: str, argv: list[str] | None = None) -> int:
    """Entry for `python scenarios/NAME.py [--quick | --smoke] [--out DIR] [--set k=v]`."""
    p = Path(path).resolve()
    argv = sys.argv[1:] if argv is None else argv
    return main(["--scenarios", str(p.parent), "run", p.stem, *argv])
