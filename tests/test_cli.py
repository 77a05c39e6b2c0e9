"""The command line: help, typed `--set`, exit codes, atomic results, provenance,
`show`/`compare`, and the README/CI quick start.

Most tests drive `_cli.main` in-process on a tiny fake scenario written to `tmp_path`
(no JAX computation); one runs a real scenario's smoke configuration through the
console entry point."""

import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynlearn import _cli


ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.py") if not p.stem.startswith("_"))

FAKE = '''"""A fake scenario for the command-line tests: no computation at all."""

import math

CONFIG = {"seed": 0, "value": 1.0, "fail": False, "extra": False, "interrupt": False}
HELP = {
    "seed": "unused seed",
    "value": "the number reported as x",
    "fail": "raise an error after writing the plot",
    "extra": "write one more file and one more metric",
    "interrupt": "raise KeyboardInterrupt as Ctrl-C does",
}
QUICK = {"value": 1.0}
SMOKE = {}


def run(config, out):
    (out / "plot.png").write_bytes(b"not really a png")
    if config["extra"]:
        (out / "stale.txt").write_text("written only by this run")
    if config["interrupt"]:
        raise KeyboardInterrupt
    if config["fail"]:
        raise ValueError("the fake scenario failed on purpose")
    metrics = {
        "x": config["value"],
        "nan": math.nan,
        "inf": -math.inf,
        "nested": {"y": 2},
        "rows": [1.0, 2.0],
    }
    if config["extra"]:
        metrics["only_here"] = 1.0
    return metrics


def headline(metrics):
    return f"x = {metrics['x']}", metrics["x"] > 0
'''


@pytest.fixture
def fake(tmp_path):
    """A scenarios folder with one fake scenario `fake`, and an output folder."""
    d = tmp_path / "scen"
    d.mkdir()
    (d / "fake.py").write_text(FAKE)
    return d, tmp_path / "out"


def run_fake(d, out, *extra):
    return _cli.main(
        ["--scenarios", str(d), "run", "fake", "--no-cache", "--out", str(out), *extra]
    )


# --- discovery and help ---------------------------------------------------------


def test_list_names_every_scenario(capsys):
    assert _cli.main(["--scenarios", str(SCENARIOS), "list"]) == 0
    out = capsys.readouterr().out
    assert NAMES and all(re.search(rf"^{n}\s+\S", out, re.M) for n in NAMES)


def test_installed_package_finds_its_scenarios_from_any_folder(tmp_path, monkeypatch):
    # No override and a working directory without scenarios/: the scenarios come
    # from the package (the wheel's dynlearn/_scenarios, or the editable checkout).
    monkeypatch.delenv("DYNLEARN_SCENARIOS", raising=False)
    monkeypatch.chdir(tmp_path)
    found = _cli.available(_cli.scenarios_dir())
    assert sorted(found) == NAMES


def test_scenarios_option_is_accepted_after_the_subcommand(capsys):
    assert _cli.main(["list", "--scenarios", str(SCENARIOS)]) == 0
    assert "flow_vs_gd" in capsys.readouterr().out


def test_top_level_help_lists_the_scenarios_with_descriptions(capsys):
    with pytest.raises(SystemExit) as e:
        _cli.main(["--scenarios", str(SCENARIOS), "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for n in NAMES:
        desc = _cli.describe_file(SCENARIOS / f"{n}.py")
        assert re.search(rf"^\s+{n}\s+{re.escape(desc)}$", out, re.M), n


@pytest.mark.parametrize("name", NAMES)
def test_run_help_lists_every_key_with_type_and_default(name, capsys):
    assert _cli.main(["--scenarios", str(SCENARIOS), "run", name, "--help"]) == 0
    out = capsys.readouterr().out
    module = _cli.load_scenario(SCENARIOS / f"{name}.py")
    for key, default in module.CONFIG.items():
        line = (
            rf"^\s+{re.escape(key)}\s+{re.escape(_cli.type_name(default))}\s+"
            rf"default {re.escape(json.dumps(default, ensure_ascii=False))}$"
        )
        assert re.search(line, out, re.M), f"{name}: key {key!r} not listed"
    assert "--quick overrides:" in out and "--smoke overrides" in out


def test_run_help_shows_meanings_quick_and_smoke_values(fake, capsys):
    d, _ = fake
    assert _cli.main(["--scenarios", str(d), "run", "fake", "-h"]) == 0
    out = capsys.readouterr().out
    assert "the number reported as x" in out and "--quick: 1.0" in out
    assert "fake: A fake scenario for the command-line tests" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        _cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"dynlearn {importlib.metadata.version('dynlearn')}"
    )


# --- typed --set and usage errors ------------------------------------------------


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
    err = capsys.readouterr().err
    assert "width" in err and "int" in err


def test_scalar_for_a_list_key_exits_2_with_the_spelling(capsys):
    code = _cli.main(
        ["--scenarios", str(SCENARIOS), "run", "flow_vs_gd", "--set", "lrs=0.1"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "lrs is a list" in err and "lrs=[0.1]" in err


@pytest.mark.parametrize(
    "text, default, expected",
    [
        ("[0.1,0.2]", [0.4, 0.2], [0.1, 0.2]),
        ("0.1,0.2", [0.4, 0.2], [0.1, 0.2]),
        ("[1, 2]", [0.5], [1.0, 2.0]),  # ints are floats for a float list
        ("16,32", [8, 16], [16, 32]),
        ("a,b", ["x"], ["a", "b"]),
        ("[]", [0.1], []),
        ("1e4", 100, 10000),
        ("off", True, False),
        ("inf", 1.0, math.inf),
        ('{"a": 1}', {"b": 2}, {"a": 1}),
    ],
)
def test_set_values_are_parsed_to_the_default_type(text, default, expected):
    value = _cli.parse_value("k", text, default)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "text, default, phrase",
    [
        ("0.5", 100, "as int"),
        ("[0.1, 0.2]", [1, 2], "list[int]"),  # element type from the default's
        ('[0.1, "a"]', [0.5], "list[float]"),
        ("0.1,x", [0.5], "list[float]"),
        ("maybe", True, "true or false"),
        ("[1]", {"a": 1}, "JSON object"),
    ],
)
def test_set_values_of_the_wrong_type_name_key_and_type(text, default, phrase):
    with pytest.raises(_cli.CLIError, match=re.escape(phrase)) as e:
        _cli.parse_value("k", text, default)
    assert str(e.value).startswith(f"--set k={text}:")


def test_set_one_entry_of_a_dict_key(fake):
    d, _ = fake
    module = _cli.load_scenario(d / "fake.py")
    module.CONFIG["opt"] = {"lr": 0.1, "steps": 10}
    cfg = _cli.make_config(module, "fake", False, {"opt.steps": "20"}, strict=True)
    assert cfg["opt"] == {"lr": 0.1, "steps": 20}
    assert module.CONFIG["opt"] == {"lr": 0.1, "steps": 10}  # the default is kept
    with pytest.raises(_cli.CLIError, match="no entry 'step'"):
        _cli.make_config(module, "fake", False, {"opt.step": "20"}, strict=True)


def test_out_at_an_existing_file_exits_2_before_running(fake, capsys):
    d, out = fake
    out.parent.mkdir(exist_ok=True)
    out.write_text("a file")
    assert run_fake(d, out) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "[dynlearn] fake" not in capsys.readouterr().out


# --- results: atomic, FAILED, provenance, strict JSON ----------------------------


def test_rerun_replaces_the_folder_without_stale_files(fake):
    d, out = fake
    assert run_fake(d, out, "--set", "extra=true") == 0
    assert (out / "fake" / "stale.txt").exists()
    assert run_fake(d, out) == 0
    assert sorted(p.name for p in (out / "fake").iterdir()) == [
        "metrics.json",
        "plot.png",
    ]
    assert [p.name for p in out.iterdir()] == ["fake"]  # no temporary folder left


def test_failed_rerun_leaves_FAILED_and_no_metrics(fake, capsys):
    d, out = fake
    assert run_fake(d, out) == 0
    assert (out / "fake" / "metrics.json").exists()
    assert run_fake(d, out, "--set", "fail=true") == 1
    folder = out / "fake"
    assert not (folder / "metrics.json").exists()
    failed = (folder / "FAILED").read_text()
    assert "ValueError: the fake scenario failed on purpose" in failed
    assert "Traceback" in failed
    assert [p.name for p in out.iterdir()] == ["fake"]
    assert "FAILED" in capsys.readouterr().err


def test_ctrl_c_exits_130_with_one_line_and_no_results(fake, capsys):
    d, out = fake
    assert run_fake(d, out, "--set", "interrupt=true") == 130
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dynlearn: interrupted")
    assert list(out.iterdir()) == []  # neither a folder that looks complete nor a tmp


def test_metrics_json_is_strict_with_headline_and_provenance(fake):
    d, out = fake
    assert run_fake(d, out, "--set", "value=2.5", "--smoke") == 0

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    rec = json.loads(
        (out / "fake" / "metrics.json").read_text(), parse_constant=no_constants
    )
    assert rec["metrics"]["nan"] is None and rec["metrics"]["inf"] is None
    assert rec["headline"] == {"text": "x = 2.5", "held": True}
    assert rec["preset"] == "smoke" and rec["seed"] == 0
    assert rec["config"] == {
        "seed": 0,
        "value": 2.5,
        "fail": False,
        "extra": False,
        "interrupt": False,
    }
    env = rec["environment"]
    assert env["dynlearn"] == importlib.metadata.version("dynlearn")
    for key in ("jax", "utc_time", "device_kind", "platform", "backend", "x64"):
        assert env[key] not in (None, ""), key
    assert rec["wall_time_s"] >= 0


def test_run_all_ends_with_a_table_and_exits_1_on_a_failure(fake, capsys):
    d, out = fake
    (d / "fake_fail.py").write_text(FAKE.replace('"fail": False', '"fail": True', 1))
    (d / "fake_broken.py").write_text('raise ImportError("no such module")\n')
    code = _cli.main(
        ["--scenarios", str(d), "run", "all", "--no-cache", "--jobs", "1"]
        + ["--out", str(out)]
    )
    assert code == 1
    table = capsys.readouterr().out.split("\n\n")[-1]
    assert re.search(r"^scenario\s+time\s+held\s+headline$", table, re.M)
    assert re.search(r"^fake\s+[\d.]+s\s+held\s+x = 1.0$", table, re.M)
    assert re.search(r"^fake_fail\s+[\d.]+s\s+FAILED\s+ValueError", table, re.M)
    assert re.search(r"^fake_broken\s+[\d.]+s\s+FAILED\s+does not import", table, re.M)
    assert (out / "fake" / "metrics.json").exists()  # the others still ran


TIMED = '''"""A fake scenario that records when it ran."""

import time

RUN_ALONE = {alone}
CONFIG = {{"seed": 0}}
HELP = {{"seed": "unused seed"}}


def run(config, out):
    start = time.time()
    time.sleep(0.5)
    return {{"start": start, "end": time.time()}}


def headline(metrics):
    return "timed", None
'''


def test_run_all_in_parallel_processes(fake, capsys):
    """`--jobs 2`: every scenario runs in its own process and writes its results;
    `--set` reaches only the scenarios that have the key; a failure and an import
    error are rows of the table; a RUN_ALONE scenario starts after the others end."""
    d, out = fake
    (d / "fake_fail.py").write_text(FAKE.replace('"fail": False', '"fail": True', 1))
    (d / "fake_broken.py").write_text('raise ImportError("no such module")\n')
    for name in ("timed_a", "timed_b"):
        (d / f"{name}.py").write_text(TIMED.format(alone=False))
    (d / "timed_alone.py").write_text(TIMED.format(alone=True))
    code = _cli.main(
        ["--scenarios", str(d), "run", "all", "--no-cache", "--jobs", "2"]
        + ["--out", str(out), "--set", "value=2.5"]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "[dynlearn] fake (full):" in printed  # each child's output, as a block
    table = printed.split("\n\n")[-1]
    assert re.search(r"^fake\s+[\d.]+s\s+held\s+x = 2.5$", table, re.M)
    assert re.search(r"^fake_fail\s+[\d.]+s\s+FAILED\s+ValueError", table, re.M)
    assert re.search(r"^fake_broken\s+[\d.]+s\s+FAILED\s+does not import", table, re.M)
    assert re.search(r"^timed_alone\s+[\d.]+s\s+\(benchmark\)\s+timed$", table, re.M)
    assert (out / "fake_fail" / "FAILED").exists()
    assert not (out / "fake_fail" / "metrics.json").exists()
    times = {
        n: json.loads((out / n / "metrics.json").read_text())["metrics"]
        for n in ("timed_a", "timed_b", "timed_alone")
    }
    assert times["timed_alone"]["start"] >= max(
        times["timed_a"]["end"], times["timed_b"]["end"]
    )
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no leftovers


# --- show / compare ---------------------------------------------------------------


def test_show_and_compare_real_run_folders(fake, capsys):
    d, out = fake
    a, b = out / "a", out / "b"
    assert run_fake(d, a) == 0
    assert run_fake(d, b, "--set", "value=1.5", "--set", "extra=true") == 0
    capsys.readouterr()

    assert _cli.main(["show", str(a)]) == 0  # a `run all`-style folder
    shown = capsys.readouterr().out
    assert re.search(r"^fake\s+[\d.]+s\s+held\s+x = 1.0$", shown, re.M)
    assert re.search(r"^\s+x\s+1$", shown, re.M)
    assert re.search(r"^\s+nested\.y\s+2$", shown, re.M)
    assert _cli.main(["show", str(a / "fake")]) == 0  # one run folder
    assert "x = 1.0" in capsys.readouterr().out

    assert _cli.main(["compare", str(a), str(b)]) == 0
    cmp = capsys.readouterr().out
    assert re.search(r"^\s+!\s+x\s+1\s+1\.5\s+3\.33e-01$", cmp, re.M)
    assert re.search(r"^\s+nested\.y\s+2\s+2\s+0\.00e\+00$", cmp, re.M)
    assert re.search(r"^\s+\?\s+only_here\s+.*only in B$", cmp, re.M)
    assert _cli.main(["compare", str(a), str(a), "--rtol", "0"]) == 0
    same = capsys.readouterr().out
    assert not re.search(r"^\s+[!?] ", same, re.M) and "0 of 7 values differ" in same


def test_show_of_a_folder_without_runs_exits_2(tmp_path, capsys):
    assert _cli.main(["show", str(tmp_path)]) == 2
    assert "neither a run folder" in capsys.readouterr().err


# --- a real scenario, through the console entry point ----------------------------


@pytest.mark.slow
def test_console_entry_runs_a_real_smoke_scenario(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dynlearn", "run", "flow_vs_gd", "--smoke"]
    cmd += ["--out", str(tmp_path / "out"), "--set", "lrs=0.1,0.05"]
    cmd += ["--scenarios", str(SCENARIOS), "--set", "second_order=false"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out" / "flow_vs_gd"
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["lrs"] == [0.1, 0.05]
    assert record["config"]["second_order"] is False
    assert record["environment"]["x64"] is True
    assert set(record["headline"]) == {"text", "held"}
    assert f"[dynlearn] flow_vs_gd: {record['headline']['text']}" in res.stdout
    assert list(out.glob("*.png"))
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        assert record["environment"]["git_commit"] == head.stdout.strip()
    assert any((tmp_path / "cache" / "dynlearn" / "jax").iterdir())  # the cache


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
