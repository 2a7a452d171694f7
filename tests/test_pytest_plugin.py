"""The pytest plugin, as users meet it: installed through the pytest11 entry point, run in
a separate pytest process on a project that imports the property suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import settings

from dynverify.claims import CLAIMS
from dynverify.records import read_runs

pytest_plugins = ["pytester"]

PLUGINS = Path(__file__).parent / "plugins"
#: keep the inner runs small: a handful of examples per claim, no example database
CONFTEST = """
from hypothesis import Phase, settings
# no explain phase: it costs seconds per failure
settings.register_profile("tiny", max_examples=4, deadline=None, database=None,
                          phases=[Phase.explicit, Phase.generate, Phase.shrink])
"""
BASE = ["-p", "no:cacheprovider", "-p", "no:benchmark", "--hypothesis-profile=tiny"]


@pytest.fixture
def project(pytester, monkeypatch):
    """A user's project: one test file importing the suite, a tiny Hypothesis profile."""
    pytester.makepyfile(test_suite="from dynverify.suite import test_claim  # noqa: F401\n")
    pytester.makeconftest(CONFTEST)
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))  # wrong_optimizers, for module:factory
    monkeypatch.delenv("CI", raising=False)
    return pytester


def summary_rows(stdout: str) -> dict[tuple[str, str], list[int]]:
    """(optimizer, claim) -> [cases, pass, counterexample, inconclusive] from the summary."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if "dynverify summary" in ln)
    table = [ln for ln in lines[start + 1:] if ln.strip()]
    assert table[0].split()[:2] == ["optimizer", "claim"]
    rows = {}
    for ln in table[2:]:
        parts = ln.split()
        if len(parts) < 9 or parts[1] not in CLAIMS:  # ... decided, closest, status (1–2 words)
            break
        rows[(parts[0], parts[1])] = [int(v) for v in parts[2:6]]
    return rows


def run_dir_of(pytester) -> Path:
    (run_dir,) = (pytester.path / "reports").iterdir()
    return run_dir


def test_profiles_are_registered_at_import():
    import dynverify.pytest_plugin  # noqa: F401 -- registers the profiles

    dev, ci, deep = (settings.get_profile(f"dynverify-{p}") for p in ("dev", "ci", "deep"))
    assert ci.derandomize and ci.database is None
    assert deep.max_examples >= 1000 and deep.deadline is None
    assert dev.max_examples < ci.max_examples < deep.max_examples
    # Hypothesis' own `ci` profile is untouched: its 100 examples, not dynverify's 40
    assert settings.get_profile("ci").max_examples == 100


def collected_ids(res) -> list[str]:
    return sorted(ln.strip()[len("<Function test_claim["):-2] for ln in res.outlines
                  if ln.strip().startswith("<Function test_claim["))


def test_selection_restricts_parametrization_and_deep_profile_is_accepted(project):
    # a subprocess: loading a profile in this process would change every later test
    res = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "--collect-only", "-v", "--hypothesis-profile=deep",
        "--dynverify-optimizer", "gradient_descent", "--dynverify-optimizer", "usam",
        "--dynverify-optimizer", "gradient_descent")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    assert collected_ids(res) == sorted(f"{o}-{c}" for o in ("gradient_descent", "usam")
                                        for c in CLAIMS)
    assert "hypothesis profile 'deep'" in res.stdout.str()


def test_default_parametrization_covers_every_registered_optimizer(project):
    from dynverify.optimizers import BUILTINS

    res = project.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only")
    assert res.ret == 0
    collected = {i.rsplit("-", 1)[0] for i in collected_ids(res)}
    assert set(BUILTINS) <= collected


def test_unknown_optimizer_is_a_usage_error(project):
    res = project.runpytest_inprocess("-p", "no:cacheprovider", "--dynverify-optimizer",
                                      "nosuch_module:f")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stderr.str()
    assert "--dynverify-optimizer: cannot import module 'nosuch_module'" in err
    assert "Traceback" not in err and "INTERNALERROR" not in err


def test_summary_table_without_xdist(project):
    # -p no:xdist: the plugin must load when pytest-xdist (an optional extra) is absent
    res = project.runpytest_subprocess(
        *BASE, "-p", "no:xdist", "--dynverify-optimizer", "gradient_descent",
        "--dynverify-reports", "reports", "-k", "filter_agrees or metamorphic")
    out = res.stdout.str()
    assert res.ret == 0, out + res.stderr.str()
    res.assert_outcomes(passed=2, deselected=3)
    rows = summary_rows(out)
    assert set(rows) == {("gradient_descent", "filter_agrees"),
                         ("gradient_descent", "metamorphic")}
    for cases, passed, cex, inconclusive in rows.values():
        assert cases == passed + cex + inconclusive >= 1 and cex == 0
    run_dir = run_dir_of(project)
    assert f"records: reports/{run_dir.name}" in out
    recs = read_runs([run_dir])
    assert recs.problems == []
    # the summary counts are exactly the recorded case lines
    for (opt, claim), counts in rows.items():
        assert counts[0] == sum(1 for c in recs.cases if c["claim"] == claim
                                and c["optimizer"]["name"] == opt)
    summary = json.loads((run_dir / "summary-summary.json").read_text())
    assert {(r["optimizer"], r["claim"]) for r in summary["results"]} == set(rows)


def test_xdist_summary_is_complete_and_records_are_not_interleaved(project):
    res = project.runpytest_subprocess(
        *BASE, "-n", "2", "--dynverify-optimizer", "gradient_descent",
        "--dynverify-reports", "reports")
    out = res.stdout.str()
    assert res.ret == 0, out + res.stderr.str()
    res.assert_outcomes(passed=len(CLAIMS))
    rows = summary_rows(out)
    assert set(rows) == {("gradient_descent", c) for c in CLAIMS}
    run_dir = run_dir_of(project)  # one run directory shared by both workers
    files = sorted(p.name for p in run_dir.glob("cases-*.jsonl"))
    assert files == ["cases-gw0.jsonl", "cases-gw1.jsonl"]
    for name in files:
        worker = name[len("cases-"):-len(".jsonl")]
        for line in (run_dir / name).read_text().splitlines():
            rec = json.loads(line)  # every line parses on its own
            assert rec["worker"] == worker and rec["run_id"] == run_dir.name
    recs = read_runs([run_dir])
    assert recs.problems == []
    assert sum(r[0] for r in rows.values()) == len(recs.cases)


def test_wrong_plugin_fails_with_counterexample_on_disk(project):
    res = project.runpytest_subprocess(
        *BASE, "--dynverify-optimizer", "wrong_optimizers:too_wide",
        "--dynverify-reports", "reports", "-k", "filter_agrees")
    out = res.stdout.str()
    assert res.ret == pytest.ExitCode.TESTS_FAILED, out
    res.assert_outcomes(failed=1, deselected=len(CLAIMS) - 1)
    assert summary_rows(out)[("too_wide", "filter_agrees")][2] == 1
    (i,) = [i for i, ln in enumerate(res.outlines) if ln.startswith("counterexample too_wide/")]
    path = project.path / res.outlines[i + 1].split("dynverify replay ", 1)[1]
    assert path.is_file() and path.with_suffix(".md").is_file()
    assert path.parent == run_dir_of(project) / "counterexamples"
    rec = json.loads(path.read_text())
    assert rec["claim"] == "filter_agrees" and rec["optimizer"]["name"] == "too_wide"
    # Hypothesis' own output shows the evidence of the falsifying example
    assert "evidence:" in out and "spectral_radius" in out
