"""The command line without rough edges (issue 11 §6–13): Markdown tables that parse, one
rendering for check and report, one-line usage errors, any hyperparameter in `regions`,
reasons and collapsed warnings under the table, honest exit statuses, the plot, --help."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest

import dynverify.registry as registry
from dynverify.check import claim_examples
from dynverify.cli import (
    EXIT_COUNTEREXAMPLE,
    EXIT_NOTHING_VERIFIED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
    main,
)

USERMODS = '''
import warnings

import numpy as np

import dynverify


def _gd(name, lr):
    return dynverify.Optimizer(name=name, hyperparameters={"lr": lr}, init=lambda X: (X,),
                               step=lambda s, f: (s[0] - lr * f.grad(s[0]),))


def factory_raises(lr):
    raise RuntimeError("cannot build this")


def unregistered(lr):
    return _gd("unregistered", lr)


def beta_momentum(lr=1e-3, beta=0.9):
    """x+ = x - lr grad f(x) + beta (x - x_prev)"""
    def step(state, f):
        x, x_prev = state
        return (x - lr * f.grad(x) + beta * (x - x_prev), x)
    return dynverify.Optimizer(name="beta_momentum", hyperparameters={"lr": lr, "beta": beta},
                               init=lambda X: (X, X.copy()), step=step)


def needs_gamma(lr, gamma):
    return _gd("needs_gamma", lr)


def _noisy_step(lr):
    def step(state, f):
        with np.errstate(over="warn"):  # a numpy RuntimeWarning on every step
            np.array([1e308]) * 10.0
        return (state[0] - lr * f.grad(state[0]),)
    return step


@dynverify.register_optimizer(
    hyperparameters=__import__("hypothesis").strategies.fixed_dictionaries(
        {"lr": __import__("hypothesis").strategies.floats(0.05, 0.5)}))
def noisy(lr):
    warnings.warn(f"approximate filter at lr={lr}", UserWarning, stacklevel=2)
    return dynverify.Optimizer(name="noisy", hyperparameters={"lr": lr},
                               init=lambda X: (X,), step=_noisy_step(lr))
'''


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.registered()))
    (tmp_path / "usermods.py").write_text(USERMODS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("usermods", None)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dynverify: error: ") and "Traceback" not in err
    return lines[0]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table in a Markdown text, as rows of cell texts (header row first)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables, rows, row = [], None, None
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "table_close":
            tables.append(rows)
            rows = None
        elif t.type == "tr_open":
            row = []
        elif t.type == "tr_close":
            rows.append(row)
            row = None
        elif t.type == "inline" and row is not None and rows is not None:
            row.append(t.content)
    return tables


def table_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("optimizer "))
    return lines[start:]


@pytest.fixture
def wrong_run(capsys, tmp_path):
    """check on a wrong plug-in and a built-in, two claims listed out of logical order."""
    status, out, err = run(capsys, "check", "wrong_optimizers:too_wide", "gradient_descent",
                           "--claim", "stable_converges", "--claim", "filter_agrees",
                           "--profile", "dev", "--reports", str(tmp_path / "r"), "--quiet")
    (run_dir,) = (tmp_path / "r").iterdir()
    return status, out, run_dir


# -- §6, §11: one rendering, Markdown that parses ----------------------------------------

def test_check_and_report_print_the_same_summary(capsys, wrong_run):
    status, out, run_dir = wrong_run
    assert status == EXIT_COUNTEREXAMPLE
    rows = [ln.split() for ln in table_lines(out)[2:6]]
    # claims in logical order (filter_agrees first), whatever order --claim gave
    assert [r[:2] for r in rows] == [["too_wide", "filter_agrees"],
                                     ["too_wide", "stable_converges"],
                                     ["gradient_descent", "filter_agrees"],
                                     ["gradient_descent", "stable_converges"]]
    # the counterexample is a decided case: its |r − 1| counts, in check as in report
    assert rows[0][6] != "—"
    rstatus, rout, _ = run(capsys, "report", str(run_dir))
    assert rstatus == status
    summary = [ln for ln in out.splitlines() if not ln.startswith("records:")]
    assert "\n".join(summary) in rout


@pytest.mark.parametrize("fmt", ["markdown", "github"])
def test_every_markdown_table_parses_with_its_cell_counts(capsys, wrong_run, fmt):
    _, _, run_dir = wrong_run
    status, out, _ = run(capsys, "report", str(run_dir), "--format", fmt)
    tables = markdown_tables(out)
    assert len(tables) == 3  # summary, spectra, counterexamples
    expected_widths = [9, 5, 7]  # the summary: 9 columns ("decided", then "status" last)
    for rows, width in zip(tables, expected_widths, strict=True):
        assert len(rows) >= 2
        assert all(len(r) == width for r in rows), rows
    assert tables[0][0][-2:] == ["closest |r-1|", "status"]
    assert len(tables[0]) == 1 + 4
    status, out, _ = run(capsys, "regions", "usam", "sam", "--format", fmt)
    (rows,) = markdown_tables(out)
    assert [len(r) for r in rows] == [5, 5, 5]


def test_counterexample_markdown_tables_parse(wrong_run):
    _, _, run_dir = wrong_run
    (md,) = (run_dir / "counterexamples").glob("*.md")
    tables = markdown_tables(md.read_text())
    assert tables
    for rows in tables:
        assert all(len(r) == 2 for r in rows), rows


def test_check_markdown_output_parses(capsys, tmp_path):
    status, out, _ = run(capsys, "check", "sam", "--claim", "filter_agrees", "--profile",
                         "dev", "--reports", str(tmp_path), "--quiet", "--format", "markdown")
    (rows,) = markdown_tables(out)
    assert [len(r) for r in rows] == [9, 9]  # 9 summary columns
    assert rows[1][:2] == ["sam", "filter_agrees"]


# -- §7: usage errors ----------------------------------------------------------------------

def test_a_factory_that_raises_is_a_one_line_usage_error(capsys):
    status, out, err = run(capsys, "regions", "usermods:factory_raises")
    assert status == EXIT_USAGE and out == ""
    line = one_line_error(err)
    assert "factory_raises" in line and "RuntimeError: cannot build this" in line


def test_a_factory_without_hyperparameters_is_a_one_line_usage_error(capsys, tmp_path):
    status, out, err = run(capsys, "check", "usermods:unregistered", "--reports",
                           str(tmp_path / "r"), "--quiet")
    assert status == EXIT_USAGE and out == ""
    line = one_line_error(err)
    assert "@dynverify.register_optimizer(hyperparameters=" in line
    assert not (tmp_path / "r").exists()  # nothing ran


# -- §8: any hyperparameter, factory defaults, and which values were used ------------------

def _momentum_filter(lr: float, beta: float) -> str:
    """Heavy ball: 0 ≤ λ ≤ 2(1+β)/α."""
    return f"[0, {2 * (1 + beta) / lr:.4g}]"


def test_regions_uses_factory_defaults_and_says_so(capsys):
    status, out, _ = run(capsys, "regions", "usermods:beta_momentum")
    assert status == EXIT_OK, out
    row = next(ln for ln in out.splitlines() if ln.startswith("beta_momentum"))
    assert "lr=0.001, beta=0.9" in row
    assert _momentum_filter(1e-3, 0.9) in row  # derived from the map
    assert "factory defaults: lr=0.001 (beta_momentum), beta=0.9 (beta_momentum)" in out


def test_regions_accepts_any_hyperparameter(capsys):
    status, out, _ = run(capsys, "regions", "usermods:beta_momentum", "heavy_ball",
                         "-p", "beta=0.5", "--param", "lr=0.2")
    assert status == EXIT_OK, out
    row = next(ln for ln in out.splitlines() if ln.startswith("beta_momentum"))
    assert "lr=0.2, beta=0.5" in row and _momentum_filter(0.2, 0.5) in row
    hb = next(ln for ln in out.splitlines() if ln.startswith("heavy_ball"))
    assert "lr=0.2, momentum=0.9" in hb and _momentum_filter(0.2, 0.9) in hb
    assert "given: lr=0.2, beta=0.5" in out and "dynverify's defaults: momentum=0.9" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["regions", "usermods:needs_gamma"], "-p gamma=VALUE"),
    (["regions", "usam", "-p", "rho"], "expected NAME=VALUE"),
    (["regions", "usam", "-p", "rho=abc"], "not a number"),
])
def test_regions_parameter_errors(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == EXIT_USAGE
    assert message in one_line_error(err)


# -- §9: reasons on screen, collapsed warnings ---------------------------------------------

def test_all_inconclusive_says_why_and_exits_nonzero(capsys, tmp_path):
    # x − α∇f − 10⁻³α·sign(∇f): not differentiable at critical points, no exemption
    status, out, _ = run(capsys, "check", "wrong_optimizers:sign_term", "--claim",
                         "filter_agrees", "--claim", "stable_converges", "--profile", "dev",
                         "--reports", str(tmp_path / "r"), "--quiet")
    assert status == EXIT_NOTHING_VERIFIED
    # claim 1 runs 4× the profile's examples (less the ones Hypothesis repeats)
    m = re.search(r"sign_term/filter_agrees: not-differentiable \((\d+)\)", out)
    assert m and 20 < int(m.group(1)) <= claim_examples("filter_agrees", 20), out
    n1 = int(m.group(1))
    assert "sign_term/stable_converges: not-differentiable (20)" in out
    assert f"not verified sign_term/filter_agrees: 0 of {n1} applicable cases decided" in out
    (run_dir,) = (tmp_path / "r").iterdir()
    status, rout, _ = run(capsys, "report", str(run_dir))
    assert status == EXIT_NOTHING_VERIFIED
    assert f"sign_term/filter_agrees: not-differentiable ({n1})" in rout


def test_repeated_warnings_are_one_line_and_numpy_warnings_never_raw(capsys, tmp_path):
    status, out, err = run(capsys, "check", "usermods:noisy", "--claim", "filter_agrees",
                           "--profile", "dev", "--reports", str(tmp_path), "--quiet")
    assert status == EXIT_OK, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert all(ln.startswith("warning: ") for ln in lines), err
    user = [ln for ln in lines if "UserWarning" in ln]
    assert len(user) == 1 and "UserWarning ×" in user[0] and "approximate filter" in user[0]
    numpy = [ln for ln in lines if "RuntimeWarning" in ln]
    assert len(numpy) == 1 and "overflow" in numpy[0]
    assert int(numpy[0].split("×")[1].split(",")[0]) > 20  # many, collapsed into one line


# -- §10: report on nothing ----------------------------------------------------------------

def test_report_on_an_empty_directory_says_so_and_exits_nonzero(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    status, out, err = run(capsys, "report", str(tmp_path / "empty"))
    assert status == EXIT_NOTHING_VERIFIED
    assert "found no case records" in err


def test_report_on_an_all_errored_run_names_the_errors(capsys, tmp_path):
    run_dir = tmp_path / "20260101T000000-000000-1"
    run_dir.mkdir()
    (run_dir / "meta.json").write_text(json.dumps({"optimizers": ["x"]}))
    results = [{"optimizer": "x", "claim": c, "counts": {}, "reasons": {}, "closest": None,
                "counterexample": None, "error": f"InvalidArgument: broken {c}"}
               for c in ("filter_agrees", "metamorphic")]
    (run_dir / "summary-main.json").write_text(json.dumps({"results": results}))
    status, out, _ = run(capsys, "report", str(run_dir))
    assert status not in (EXIT_OK, EXIT_USAGE)
    assert "error x/filter_agrees: InvalidArgument: broken filter_agrees" in out
    assert "error x/metamorphic: InvalidArgument: broken metamorphic" in out
    status, out, _ = run(capsys, "report", str(run_dir), "--format", "json")
    rows = json.loads(out)["claims"]
    assert {r["error"] for r in rows} == {f"InvalidArgument: broken {c}"
                                          for c in ("filter_agrees", "metamorphic")}
    assert set(rows[0]) >= {"optimizer", "claim", "cases", "pass", "counterexample",
                            "inconclusive", "closest"}


# -- §12: the plot -------------------------------------------------------------------------

def test_plot_panels_have_their_own_ranges_and_name_what_is_left_out(capsys, tmp_path,
                                                                     monkeypatch):
    pytest.importorskip("matplotlib")
    import dynverify.cli as cli

    drawn = {}
    real = cli._plot

    def spy(panels, path):
        drawn.update({p.name: p for p in panels})
        real(panels, path)

    monkeypatch.setattr(cli, "_plot", spy)
    png = tmp_path / "f.png"
    status, out, _ = run(capsys, "regions", "gradient_descent", "usam", "sam",
                         "wrong_optimizers:too_wide", "--plot", str(png))
    assert status == EXIT_COUNTEREXAMPLE  # too_wide's filters disagree
    assert png.stat().st_size > 10_000
    gd, usam = drawn["gradient_descent"].lam_range(), drawn["usam"].lam_range()
    lo, hi = (-1 - math.sqrt(1 + 8 * 0.5 / 0.1)) / (2 * 0.5), 20.0
    assert gd[0] < 0 < 20 < gd[1] and gd[0] > -20  # GD's panel: not squeezed by USAM's
    assert usam[0] < lo and usam[1] < hi  # USAM's panel: shows λ₋, not GD's 20
    assert drawn["sam"].rho is None and "not C¹" in drawn["sam"].why
    wide = drawn["too_wide"]
    assert not wide.declared.isclose(wide.derived)  # both are drawn


# -- §13: --help ---------------------------------------------------------------------------

def test_check_help_describes_profile_and_repeated_claims():
    sub = next(a for a in build_parser()._subparsers._group_actions)
    text = sub.choices["check"].format_help()
    assert "--profile {dev,ci,deep}" in text
    for word in ("derandomized", "1000", "repeat"):
        assert word in " ".join(text.split()), text
