"""The command line, the scenario contract, and the README/CI quick start."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynlearn import _cli


ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def test_list_names_every_scenario(capsys):
    assert _cli.main(["--scenarios", str(SCENARIOS), "list"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.stem for p in SCENARIOS.glob("*.py") if not p.stem.startswith("_"))
    assert names and all(re.search(rf"^{n}\s+\S", out, re.M) for n in names)


@pytest.mark.parametrize(
    "path", sorted(SCENARIOS.glob("[!_]*.py")), ids=lambda p: p.stem
)
def test_scenario_contract(path):
    module = _cli.load_scenario(path)
    assert module.__doc__ and module.__doc__.strip().splitlines()[0]
    assert isinstance(module.CONFIG, dict) and callable(module.run)
    unknown = set(getattr(module, "QUICK", {})) - set(module.CONFIG)
    assert not unknown, f"QUICK keys not in CONFIG: {unknown}"
    assert "run_script(__file__)" in path.read_text()


def test_unknown_scenario_exits_2_with_the_choices(capsys):
    assert _cli.main(["--scenarios", str(SCENARIOS), "run", "flow_vs_gdd"]) == 2
    err = capsys.readouterr().err
    assert "Unknown scenario 'flow_vs_gdd'" in err and "flow_vs_gd" in err


def test_unknown_set_key_exits_2(capsys):
    code = _cli.main(
        ["--scenarios", str(SCENARIOS), "run", "flow_vs_gd", "--set", "lrr=0.1"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "lrr" in err and "lrs" in err  # names the bad key and the valid ones


def test_bad_set_value_exits_2(capsys):
    code = _cli.main(
        ["--scenarios", str(SCENARIOS), "run", "flow_vs_gd", "--set", "width=wide"]
    )
    assert code == 2
    assert "width" in capsys.readouterr().err


def test_run_writes_plots_and_metrics(tmp_path):
    # The console entry point, as a user calls it, with a tiny configuration.
    cmd = [
        sys.executable,
        "-m",
        "dynlearn",
        "--scenarios",
        str(SCENARIOS),
        "run",
        "flow_vs_gd",
        "--quick",
        "--out",
        str(tmp_path),
        "--set",
        "t1=1.0",
        "--set",
        "lrs=[0.1,0.05]",
        "--set",
        "second_order=false",
        "--set",
        "width=4",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "flow_vs_gd"
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["t1"] == 1.0 and record["config"]["lrs"] == [0.1, 0.05]
    assert record["environment"]["x64"] is True
    assert 0.5 < record["metrics"]["slope_flow"] < 1.5
    assert list(out.glob("*.png"))


def test_readme_quick_start_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    commands = [
        line.strip()
        for b in blocks
        for line in b.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    test_cmd = next(c for c in commands if "pytest" in c)
    main_cmd = next(c for c in commands if "dynlearn run all" in c)
    assert test_cmd in ci, "the README's test command must be exactly what .ci/run runs"
    assert "--quick" in main_cmd and "--out" in main_cmd
