"""The `dynlearn` command line: list and run scenario scripts.

    dynlearn list
    dynlearn run NAME|all [--quick] [--out DIR] [--set key=value ...]

A scenario is a plain Python file in `scenarios/` that defines

- a module docstring (its first line is the one-line description),
- `CONFIG`: a dict of parameters with their defaults,
- `QUICK`: a dict of overrides used with `--quick`,
- `run(config: dict, out: pathlib.Path) -> dict`: does the work, writes plots into
  `out`, and returns the metrics, which are written to `out/metrics.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def scenarios_dir(explicit: str | None = None) -> Path:
    """Where the scenario scripts live: `--scenarios`, `$DYNLEARN_SCENARIOS`,
    `./scenarios`, or the `scenarios/` folder beside the installed package source."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("DYNLEARN_SCENARIOS"):
        candidates.append(Path(os.environ["DYNLEARN_SCENARIOS"]))
    candidates.append(Path.cwd() / "scenarios")
    candidates.append(Path(__file__).resolve().parent.parent / "scenarios")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.py")):
            return c
    raise CLIError(
        "Could not find the scenarios folder. Run from the dynlearn checkout, or pass "
        "--scenarios DIR, or set DYNLEARN_SCENARIOS."
    )


def available(directory: Path) -> dict[str, Path]:
    return {
        p.stem: p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")
    }


def load_scenario(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"dynlearn_scenario_{path.stem}", path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for attr in ("CONFIG", "run"):
        if not hasattr(module, attr):
            raise CLIError(f"Scenario {path} does not define `{attr}`.")
    return module


def describe(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def parse_value(key: str, text: str, default: Any) -> Any:
    """Parse a `--set` value to the type of the parameter's default."""
    try:
        if isinstance(default, bool):
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list | tuple | dict) or default is None:
            value = json.loads(text)
            return type(default)(value) if default is not None else value
        return text
    except (ValueError, json.JSONDecodeError):
        kind = type(default).__name__
        raise CLIError(
            f"--set {key}={text}: cannot parse {text!r} as {kind} "
            f"(default is {default!r}). Lists take JSON, e.g. {key}=[0.1,0.2]."
        ) from None


def make_config(
    module: ModuleType, name: str, quick: bool, overrides: dict[str, str], strict: bool
) -> dict:
    config = dict(module.CONFIG)
    if quick:
        config.update(getattr(module, "QUICK", {}))
    for key, text in overrides.items():
        if key not in module.CONFIG:
            if strict:
                raise CLIError(
                    f"Unknown --set key {key!r} for scenario {name!r}. Known keys: "
                    f"{', '.join(sorted(module.CONFIG))}."
                )
            continue
        config[key] = parse_value(key, text, module.CONFIG[key])
    return config


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def run_one(name: str, path: Path, out_root: Path, config: dict, quick: bool) -> dict:
    import jax

    module = load_scenario(path)
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    print(f"[dynlearn] {name}: {describe(module)}", flush=True)
    tic = time.perf_counter()
    metrics = module.run(config, out)
    wall = time.perf_counter() - tic
    record = {
        "scenario": name,
        "quick": quick,
        "config": config,
        "metrics": metrics,
        "wall_time_s": wall,
        "environment": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "x64": bool(jax.config.jax_enable_x64),
        },
    }
    (out / "metrics.json").write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    files = sorted(p.name for p in out.iterdir())
    print(
        f"[dynlearn] {name}: done in {wall:.1f} s -> {out} ({', '.join(files)})",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dynlearn",
        description="Learning as a dynamical system: run scenario scripts.",
    )
    parser.add_argument("--scenarios", help="folder of scenario scripts")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    p_run = sub.add_parser("run", help="run a scenario, or 'all'")
    p_run.add_argument("name", help="scenario name, or 'all'")
    p_run.add_argument("--quick", action="store_true", help="small, fast settings")
    p_run.add_argument(
        "--out", default="results", help="output folder (default: results)"
    )
    p_run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a CONFIG parameter (repeatable)",
    )
    p_run.add_argument(
        "--float32", action="store_true", help="run in float32 (default: float64)"
    )
    args = parser.parse_args(argv)
    try:
        directory = scenarios_dir(args.scenarios)
        found = available(directory)
        if args.command == "list":
            width = max(len(n) for n in found)
            for name, path in found.items():
                print(f"{name:<{width}}  {describe(load_scenario(path))}")
            return 0
        overrides: dict[str, str] = {}
        for item in args.set:
            if "=" not in item:
                raise CLIError(f"--set expects KEY=VALUE, got {item!r}.")
            k, v = item.split("=", 1)
            overrides[k.strip()] = v
        if args.name == "all":
            names = list(found)
        elif args.name in found:
            names = [args.name]
        else:
            raise CLIError(
                f"Unknown scenario {args.name!r}. Available: {', '.join(found)} "
                "(or 'all'). See `dynlearn list`."
            )
        modules = {n: load_scenario(found[n]) for n in names}
        if len(names) > 1:
            unknown = [
                k for k in overrides if not any(k in m.CONFIG for m in modules.values())
            ]
            if unknown:
                raise CLIError(f"--set key(s) {unknown} match no scenario's CONFIG.")
        configs = {
            n: make_config(m, n, args.quick, overrides, strict=len(names) == 1)
            for n, m in modules.items()
        }
    except CLIError as e:
        print(f"dynlearn: error: {e}", file=sys.stderr)
        return 2

    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    out_root = Path(args.out)
    failed = []
    for n in names:
        try:
            run_one(n, found[n], out_root, configs[n], args.quick)
        except Exception:
            traceback.print_exc()
            print(f"[dynlearn] {n}: FAILED", file=sys.stderr, flush=True)
            failed.append(n)
    if failed:
        print(
            f"dynlearn: {len(failed)} scenario(s) failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def run_script(path: str, argv: list[str] | None = None) -> int:
    """Entry for `python scenarios/NAME.py [--quick] [--out DIR] [--set k=v]`."""
    p = Path(path).resolve()
    argv = sys.argv[1:] if argv is None else argv
    return main(["--scenarios", str(p.parent), "run", p.stem, *argv])
