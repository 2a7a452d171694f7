"""The command line: regions, check, report, replay — exit statuses and output on real runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dynverify.registry as registry
from dynverify.cli import EXIT_COUNTEREXAMPLE, EXIT_OK, EXIT_USAGE, main
from dynverify.optimizers import BUILTINS

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test runs in its own directory (Hypothesis' database goes there) and leaves the
    registry as it found it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.registered()))


def run(capsys, *argv):
    """main(argv) -> (status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dynverify: error: ")
    assert "Traceback" not in err
    return lines[0]


def row_of(out: str, name: str) -> str:
    rows = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name]
    assert len(rows) == 1, out
    return rows[0]


@pytest.fixture(scope="module")
def wrong_run(tmp_path_factory):
    """A real `dynverify check` of the too-wide plug-in: (status, stdout, run dir, cex json)."""
    reports = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(reports)
        proc = subprocess.run(
            ["dynverify", "check", "wrong_optimizers:too_wide", "--claim", "filter_agrees",
             "--claim", "stable_converges", "--profile", "dev", "--reports", str(reports),
             "--quiet"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(PLUGINS)})
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    cex = sorted((run_dir / "counterexamples").glob("*.json"))
    return proc, run_dir, cex


# -- regions ---------------------------------------------------------------------------------

def _usam_filter(lr: float, rho: float) -> str:
    """0 ≤ λ(1+ρλ) ≤ 2/α solved exactly: [λ₋, −1/ρ] ∪ [0, λ₊]."""
    disc = math.sqrt(1 + 8 * rho / lr)
    lo, hi = (-1 - disc) / (2 * rho), (-1 + disc) / (2 * rho)
    return f"[{lo:.4g}, {-1 / rho:.4g}] ∪ [0, {hi:.4g}]"


def test_regions_lists_every_builtin_with_agreeing_filters(capsys, monkeypatch):
    builtins = {k: v for k, v in registry.registered().items() if v.source == "builtin"}
    monkeypatch.setattr(registry, "_REGISTRY", builtins)
    status, out, err = run(capsys, "regions")
    assert status == EXIT_OK, err
    assert set(BUILTINS) <= set(builtins)
    for name in BUILTINS:
        row = row_of(out, name)
        if name == "sam":  # outside the theorem: no filter, and the table says why
            assert "outside hypotheses" in row and "not C¹" in row
        else:
            assert row.rstrip().endswith("yes"), row


def test_regions_closed_forms_at_given_hyperparameters(capsys):
    lr, beta, rho = 0.1, 0.9, 0.5
    status, out, _ = run(capsys, "regions", "usam", "penalty_sam", "gradient_descent",
                         "heavy_ball", "nesterov", "--lr", str(lr), "--momentum", str(beta),
                         "--rho", str(rho))
    assert status == EXIT_OK, _
    usam = _usam_filter(lr, rho)
    assert usam == "[-7.403, -2] ∪ [0, 5.403]"
    expected = {"usam": usam, "penalty_sam": usam, "gradient_descent": f"[0, {2 / lr:.4g}]",
                "heavy_ball": f"[0, {2 * (1 + beta) / lr:.4g}]",
                "nesterov": f"[0, {2 * (1 + beta) / ((1 + 2 * beta) * lr):.4g}]"}
    for name, region in expected.items():
        row = row_of(out, name)
        assert row.count(region) == 2, (region, row)  # declared and derived
        assert row.rstrip().endswith("yes")
    assert "lr=0.1, rho=0.5" in row_of(out, "usam")
    assert "momentum" not in row_of(out, "usam")


def test_regions_of_a_wrong_plugin_disagree(capsys):
    status, out, _ = run(capsys, "regions", "wrong_optimizers:too_wide", "--lr", "0.5")
    assert status == EXIT_COUNTEREXAMPLE
    row = row_of(out, "too_wide")
    assert "[0, 6]" in row and "[0, 4]" in row and row.rstrip().endswith("NO")


def test_regions_plot_without_matplotlib(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    status, out, err = run(capsys, "regions", "usam", "--plot", str(tmp_path / "f.png"))
    assert status == EXIT_USAGE
    assert "matplotlib" in one_line_error(err)
    assert out == "" and not (tmp_path / "f.png").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["regions", "nosuch"], "unknown optimizer 'nosuch'"),
    (["regions", "nosuch_module:f"], "cannot import module 'nosuch_module'"),
    (["regions", "usam", "--lr", "-1"], "usam"),
    (["regions", "--lr", "abc"], "invalid float value"),
    (["check", "nosuch"], "unknown optimizer 'nosuch'"),
    (["check", "nosuch_module:f"], "cannot import module 'nosuch_module'"),
    (["check", "wrong_optimizers:nosuch"], "has no attribute 'nosuch'"),
    (["check", "gradient_descent", "--profile", "huge"], "invalid choice: 'huge'"),
    (["check", "gradient_descent", "--claim", "nosuch"], "unknown claim 'nosuch'"),
    (["check", "--seed", "x"], "invalid int value"),
    (["check", "--bogus"], "unrecognized arguments: --bogus"),
    (["report", "--format", "html"], "invalid choice: 'html'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required"),
])
def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, argv, message):
    status, out, err = run(capsys, *argv, *(["--reports", str(tmp_path)]
                                              if argv[:1] == ["check"] else []))
    assert status == EXIT_USAGE
    assert message in one_line_error(err)
    assert not list(tmp_path.glob("2*"))  # no run directory for a usage error


def test_plugin_module_that_fails_on_import_is_a_usage_error(capsys, tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = run(capsys, "check", "broken_plugin:f", "--reports", str(tmp_path))
    assert status == EXIT_USAGE
    assert "broken at import" in one_line_error(err)


# -- check -----------------------------------------------------------------------------------

def _case_lines(run_dir: Path) -> list[dict]:
    lines = []
    for f in sorted(run_dir.glob("cases-*.jsonl")):
        lines += [json.loads(ln) for ln in f.read_text().splitlines()]
    return lines


def test_check_correct_optimizer_exits_0(capsys, tmp_path):
    status, out, err = run(capsys, "check", "gradient_descent", "--claim", "filter_agrees",
                           "--profile", "dev", "--reports", str(tmp_path), "--quiet")
    assert status == EXIT_OK, out + err
    row = row_of(out, "gradient_descent").split()
    assert row[:2] == ["gradient_descent", "filter_agrees"]
    assert int(row[2]) >= 10 and int(row[4]) == 0  # dev profile: ~20 cases, none failing
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name[0].isdigit()]
    assert f"records: {run_dir}" in out
    lines = _case_lines(run_dir)
    assert len(lines) == int(row[2])  # one record per counted case
    assert {ln["optimizer"]["name"] for ln in lines} == {"gradient_descent"}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["profile"] == "dynverify-dev" and meta["claims"] == ["filter_agrees"]
    assert not list((run_dir / "counterexamples").iterdir())


def test_check_seed_reproduces_the_same_cases(capsys, tmp_path):
    spectra = []
    for seed in ("7", "7", "8"):
        reports = tmp_path / f"r{len(spectra)}"
        status, out, _ = run(capsys, "check", "gradient_descent", "--claim", "filter_agrees",
                             "--profile", "dev", "--seed", seed, "--reports", str(reports),
                             "--quiet")
        assert status == EXIT_OK
        (run_dir,) = reports.iterdir()
        assert json.loads((run_dir / "meta.json").read_text())["seed"] == int(seed)
        spectra.append([(ln["spectrum"], ln["optimizer"]["hyperparameters"])
                        for ln in _case_lines(run_dir)])
    assert spectra[0] == spectra[1]
    assert spectra[0] != spectra[2]


def test_check_wrong_plugin_console_script_exits_1(wrong_run):
    proc, run_dir, cex = wrong_run
    assert proc.returncode == EXIT_COUNTEREXAMPLE, proc.stdout + proc.stderr
    assert "counterexample too_wide/filter_agrees" in proc.stdout
    assert len(cex) >= 1 and all(p.with_suffix(".md").is_file() for p in cex)
    assert f"dynverify replay {cex[0]}" in proc.stdout
    assert "Traceback" not in proc.stderr
    rec = json.loads(cex[0].read_text())
    assert rec["optimizer"]["factory"] == "wrong_optimizers:too_wide"
    assert rec["verdict"]["outcome"] == "counterexample"


def test_check_optimizer_that_raises_is_reported_and_the_run_continues(capsys, tmp_path):
    status, out, err = run(capsys, "check", "wrong_optimizers:raises", "gradient_descent",
                           "--claim", "filter_agrees", "--claim", "stable_converges",
                           "--profile", "dev", "--reports", str(tmp_path), "--quiet")
    assert status == EXIT_COUNTEREXAMPLE
    assert "Traceback" not in out + err
    assert "raises/filter_agrees: error: OptimizerError" in out and "boom" in out
    # gradient descent, after the broken plug-in, is still checked in full
    gd_rows = [ln.split() for ln in out.splitlines() if ln.startswith("gradient_descent ")]
    assert len(gd_rows) == 2
    assert all(int(r[2]) >= 10 and r[4] == "0" for r in gd_rows)


# -- replay ----------------------------------------------------------------------------------

def test_replay_reproduces(capsys, wrong_run, monkeypatch):
    _, _, cex = wrong_run
    monkeypatch.syspath_prepend(str(PLUGINS))
    status, out, _ = run(capsys, "replay", str(cex[0]))
    assert status == EXIT_COUNTEREXAMPLE
    assert "recorded" in out and "replayed" in out
    assert "spectral_radius" in out and "spectrum" in out
    assert "counterexample reproduces" in out


def test_replay_of_a_fixed_case_exits_0(capsys, wrong_run, tmp_path):
    _, _, cex = wrong_run
    rec = json.loads(cex[0].read_text())
    # the same function and points, but a correct optimizer at a step where λ is inside
    spectrum = rec["function"]["spectrum"]
    lr = 1.0 / max(abs(v) for v in spectrum)
    rec["optimizer"] = {"name": "gradient_descent", "hyperparameters": {"lr": lr},
                        "source": "builtin", "factory": None}
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(rec))
    status, out, _ = run(capsys, "replay", str(fixed))
    assert status == EXIT_OK, out
    assert "no longer reproduces" in out


@pytest.mark.parametrize(("content", "message"), [
    ("not json {", "not valid JSON"),
    ('{"schema": "dynverify.case/1"}', "not a dynverify counterexample"),
    ("[1, 2, 3]", "not a dynverify counterexample"),
    ('{"schema": "dynverify.counterexample/1", "claim": "filter_agrees"}', "lacks"),
    ('{"schema": "dynverify.counterexample/1", "claim": "filter_agrees", '
     '"optimizer": "gd", "verdict": {}}', "optimizer"),
    ('{"schema": "dynverify.counterexample/1", "claim": "filter_agrees", '
     '"optimizer": {"name": "gradient_descent"}, "verdict": "x"}', "verdict"),
])
def test_replay_malformed_file_exits_2(capsys, tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    status, _, err = run(capsys, "replay", str(f))
    assert status == EXIT_USAGE
    assert message in one_line_error(err)


@pytest.mark.parametrize("edit", ["no_function", "unknown_kind", "unknown_claim",
                                  "unknown_optimizer", "bad_hyperparameters", "no_X0"])
def test_replay_of_a_counterexample_that_cannot_be_rebuilt_exits_2(capsys, wrong_run,
                                                                  tmp_path, edit):
    _, _, cex = wrong_run
    rec = json.loads(cex[0].read_text())
    if edit == "no_function":
        rec["function"] = None
    elif edit == "unknown_kind":
        rec["function"] = {"kind": "nosuch"}
    elif edit == "unknown_claim":
        rec["claim"] = "nosuch"
    elif edit == "unknown_optimizer":
        rec["optimizer"] = {"name": "nosuch", "hyperparameters": {}, "factory": None}
    elif edit == "bad_hyperparameters":
        rec["optimizer"] = {"name": "gradient_descent", "hyperparameters": {"lr": -1.0}}
    else:
        del rec["X0"]
    f = tmp_path / "edited.json"
    f.write_text(json.dumps(rec))
    status, _, err = run(capsys, "replay", str(f))
    assert status == EXIT_USAGE
    one_line_error(err)


def test_replay_missing_file_exits_2(capsys, tmp_path):
    status, _, err = run(capsys, "replay", str(tmp_path / "nope.json"))
    assert status == EXIT_USAGE
    assert "no such file" in one_line_error(err)


# -- report ----------------------------------------------------------------------------------

def test_report_on_a_real_run(capsys, wrong_run):
    _, run_dir, cex = wrong_run
    status, out, err = run(capsys, "report", str(run_dir))
    assert status == EXIT_COUNTEREXAMPLE  # as `dynverify check` exited on this run
    assert err == ""
    claim_rows = [ln.split() for ln in out.splitlines() if ln.startswith("too_wide ")]
    claims = {r[1] for r in claim_rows if len(r) > 2 and r[1] in
              ("filter_agrees", "stable_converges")}
    assert claims == {"filter_agrees", "stable_converges"}
    assert str(cex[0]) in out  # the counterexample table names the file
    assert "eigenvalues at stable points" in out and "lr ∈ [" in out


@pytest.mark.parametrize("fmt", ["plain", "github", "markdown", "json"])
def test_report_formats(capsys, wrong_run, fmt):
    _, run_dir, _ = wrong_run
    status, out, _ = run(capsys, "report", str(run_dir), "--format", fmt)
    assert status == EXIT_COUNTEREXAMPLE
    if fmt == "json":
        rep = json.loads(out)
        counts = {(r["optimizer"], r["claim"]): r for r in rep["claims"]}
        assert counts[("too_wide", "filter_agrees")]["counterexample"] >= 1
        assert rep["counterexamples"] and rep["problems"] == []
    else:
        assert "too_wide" in out and "filter_agrees" in out
        if fmt in ("github", "markdown"):
            assert "| too_wide" in out
        else:
            assert "| too_wide" not in out and "\n-----------  " in out


def test_report_on_a_damaged_run(capsys, wrong_run, tmp_path):
    import shutil

    _, run_dir, _ = wrong_run
    damaged = tmp_path / run_dir.name
    shutil.copytree(run_dir, damaged)
    (cases_file,) = damaged.glob("cases-*.jsonl")
    text = cases_file.read_text()
    n_lines = text.count("\n")
    cases_file.write_text(text[:-25])  # an interrupted write: truncated last line
    (damaged / "counterexamples" / "garbage.json").write_bytes(b"\xff\x00 not json")
    status, out, err = run(capsys, "report", str(damaged))
    assert status == EXIT_COUNTEREXAMPLE
    assert "filter_agrees" in out and "counterexample" in out
    warnings = err.strip().splitlines()
    assert len(warnings) == 2, err
    assert any(f"{cases_file.name}:{n_lines}" in w for w in warnings)
    assert any("garbage.json" in w for w in warnings)
    assert all(w.startswith("warning: ") for w in warnings)
    status, out, _ = run(capsys, "report", str(damaged), "--format", "json")
    rep = json.loads(out)
    assert len(rep["problems"]) == 2
    total = sum(r["cases"] for r in rep["claims"])
    assert total == n_lines - 1  # every complete line was read


def test_report_defaults_to_the_latest_run(capsys, wrong_run, tmp_path):
    import shutil

    _, run_dir, _ = wrong_run
    reports = tmp_path / "reports"
    shutil.copytree(run_dir, reports / run_dir.name)
    (reports / "00000000T000000-older").mkdir()
    (reports / "00000000T000000-older" / "meta.json").write_text("{}")
    (reports / "notes").mkdir()  # a stray folder is not a run
    status, out, _ = run(capsys, "report", "--reports", str(reports))
    assert status == EXIT_COUNTEREXAMPLE
    assert f"runs: {reports / run_dir.name}" in out


def test_report_without_runs_exits_2(capsys, tmp_path):
    status, _, err = run(capsys, "report", "--reports", str(tmp_path / "empty"))
    assert status == EXIT_USAGE
    assert "no run directories" in one_line_error(err)
    status, _, err = run(capsys, "report", str(tmp_path / "nosuch"))
    assert status == EXIT_USAGE
    assert "not a run directory" in one_line_error(err)
