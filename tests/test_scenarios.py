"""Every scenario keeps the scenario contract (see `dynlearn._cli`) and runs its smoke
configuration end to end: exit 0, at least one plot, `metrics.json` with the headline.

The contract checks import each scenario (cheap: definitions only). The smoke runs
take a few seconds each; a scenario that defines no `SMOKE` yet runs its `QUICK`
configuration instead and is marked slow."""

import ast
import json
from pathlib import Path

import pytest

from dynlearn import _cli


ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
PATHS = sorted(p for p in SCENARIOS.glob("*.py") if not p.stem.startswith("_"))


def _defines(path: Path, name: str) -> bool:
    """Whether the script assigns `name` at module level (read without importing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == name
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
        for node in tree.body
    )


def _smoke_param(path: Path):
    if _defines(path, "SMOKE"):
        return pytest.param(path, id=path.stem)
    return pytest.param(
        path,
        id=path.stem,
        marks=pytest.mark.slow(
            reason="defines no SMOKE yet: runs its QUICK configuration (tens of s)"
        ),
    )


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_scenario_contract(path):
    module = _cli.load_scenario(path)
    name = path.stem
    doc = (module.__doc__ or "").strip()
    lines = doc.splitlines()
    assert lines, f"{name}: no module docstring"
    first = lines[0].strip()
    # one complete sentence on one line: ends with a full stop, and the docstring's
    # next line is blank (not the rest of a sentence cut at the line break)
    assert first.endswith("."), (
        f"{name}: first docstring line {first!r} ends without '.'"
    )
    assert len(lines) == 1 or not lines[1].strip(), (
        f"{name}: the description runs past the first line: {first!r} / {lines[1]!r}"
    )
    assert isinstance(module.CONFIG, dict) and module.CONFIG
    assert callable(module.run)
    assert callable(getattr(module, "headline", None)), f"{name}: no headline()"
    help_ = getattr(module, "HELP", None)
    assert isinstance(help_, dict), f"{name}: no HELP dict"
    assert set(help_) == set(module.CONFIG), (
        f"{name}: HELP lacks {sorted(set(module.CONFIG) - set(help_))}, "
        f"has extra {sorted(set(help_) - set(module.CONFIG))}"
    )
    assert all(
        isinstance(v, str) and v.strip() and "\n" not in v for v in help_.values()
    )
    for preset in ("QUICK", "SMOKE"):
        over = getattr(module, preset, None)
        assert isinstance(over, dict), f"{name}: no {preset} dict"
        assert set(over) <= set(module.CONFIG), (
            f"{name}: {preset} keys not in CONFIG: {sorted(set(over) - set(module.CONFIG))}"
        )


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_scenario_imports_no_private_dynlearn_name(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = [
        n
        for n in tree.body
        if not (isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    ]
    bad = []
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "dynlearn":
                bad += [m for m in parts[1:] if m.startswith("_")]
                bad += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            bad += [
                a.name
                for a in node.names
                if a.name.startswith("dynlearn.")
                and any(p.startswith("_") for p in a.name.split(".")[1:])
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in ("dl", "dynlearn"):
                bad.append(ast.unparse(node))
    assert not bad, f"{path.stem} uses private dynlearn names: {bad}"


@pytest.mark.parametrize("path", [_smoke_param(p) for p in PATHS])
@pytest.mark.slow
def test_scenario_smoke_run(path, tmp_path):
    name = path.stem
    module = _cli.load_scenario(path)
    has_smoke = hasattr(module, "SMOKE")
    preset = "--smoke" if has_smoke else "--quick"
    argv = ["--scenarios", str(SCENARIOS), "run", name, preset, "--no-cache"]
    assert _cli.main([*argv, "--out", str(tmp_path)]) == 0
    out = tmp_path / name
    assert list(out.glob("*.png")), f"{name} wrote no plot"
    record = json.loads((out / "metrics.json").read_text())
    assert isinstance(record["metrics"], dict) and record["metrics"]
    # the CLI called headline(metrics) on the metrics run() returned and checked
    # that it is a (str, bool | None) pair
    text, held = record["headline"]["text"], record["headline"]["held"]
    assert isinstance(text, str) and text and held in (True, False, None)
    assert held is None or isinstance(held, bool)
