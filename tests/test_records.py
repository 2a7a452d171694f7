"""Run records: case lines, counterexample files, reading back damaged, interrupted and
parallel runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dynverify.check import check_optimizer, rebuild_case, replay
from dynverify.claims import CLAIMS
from dynverify.errors import ReportError
from dynverify.records import (
    CASE_SCHEMA,
    COUNTEREXAMPLE_SCHEMA,
    RunWriter,
    latest_run,
    read_counterexample,
    read_runs,
)

ROOT = Path(__file__).parent.parent


def _record(i: int, **extra):
    return {"optimizer": {"name": "gd", "hyperparameters": {"lr": 0.1}}, "claim": "c",
            "outcome": "pass", "i": i, **extra}


def test_one_parsable_line_per_case(tmp_path):
    with RunWriter(tmp_path, run_id="run", worker="w1", meta={"profile": "dev"}) as w:
        for i in range(5):
            w.case(_record(i, spectrum=[1.0, np.float64(2.5)]))
        # a line is on disk as soon as case() returns, before close()
        assert (tmp_path / "run" / "cases-w1.jsonl").read_text().count("\n") == 5
    lines = (tmp_path / "run" / "cases-w1.jsonl").read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]
    assert [r["i"] for r in recs] == list(range(5))
    assert all(r["schema"] == CASE_SCHEMA and r["run_id"] == "run" and r["worker"] == "w1"
               for r in recs)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["run_id"] == "run" and meta["profile"] == "dev"
    back = read_runs([tmp_path / "run"])
    assert [c["i"] for c in back.cases] == list(range(5)) and back.problems == []


def test_non_finite_values_never_lose_a_case(tmp_path):
    with RunWriter(tmp_path, run_id="run") as w:
        w.case(_record(0, spectral_radius=float("nan"), spectrum=[float("inf"), 1.0]))
        w.summary({"closest": float("-inf")})
    (line,) = (tmp_path / "run" / "cases-main.jsonl").read_text().splitlines()
    rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert rec["spectral_radius"] == "nan" and rec["spectrum"] == ["inf", 1.0]
    assert json.loads((tmp_path / "run" / "summary-main.json").read_text()) == \
        {"closest": "-inf"}


def test_writer_writes_nothing_until_the_first_case(tmp_path):
    w = RunWriter(tmp_path, run_id="run")
    w.close()
    assert not list((tmp_path / "run").glob("cases-*"))
    assert (tmp_path / "run" / "counterexamples").is_dir()


@pytest.fixture(scope="module")
def too_wide_counterexample(tmp_path_factory):
    """A real counterexample of the too-wide plug-in, recorded by check_optimizer."""
    import wrong_optimizers

    reports = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(reports)  # Hypothesis' example database
        res = check_optimizer(wrong_optimizers.too_wide, claims=["filter_agrees"],
                              profile="dev", reports=reports)
    assert not res.ok
    (path,) = (Path(res.run_dir) / "counterexamples").glob("*.json")
    return path


def test_counterexample_json_rebuilds_the_case(too_wide_counterexample):
    rec = read_counterexample(too_wide_counterexample)
    assert rec["schema"] == COUNTEREXAMPLE_SCHEMA
    assert rec["claim"] == "filter_agrees" and rec["claim"] in CLAIMS
    assert rec["reproduce"]["command"] == f"dynverify replay {too_wide_counterexample}"
    reg, case = rebuild_case(rec)
    assert reg.name == "too_wide"
    assert dict(case.optimizer.hyperparameters) == rec["optimizer"]["hyperparameters"]
    assert case.function.spec() == rec["function"]
    np.testing.assert_array_equal(case.X0, np.asarray(rec["X0"]))
    np.testing.assert_array_equal(case.x_star, np.asarray(rec["x_star"]))
    assert list(case.spectrum) == rec["spectrum"]
    # the JSON alone is enough: the claim judges the rebuilt case the same way
    rep = replay(too_wide_counterexample)
    assert rep.reproduces
    assert rep.verdict.reason == rec["verdict"]["reason"]


def test_counterexample_markdown_for_people(too_wide_counterexample):
    rec = read_counterexample(too_wide_counterexample)
    md = too_wide_counterexample.with_suffix(".md").read_text()
    hp = rec["optimizer"]["hyperparameters"]["lr"]
    assert md.startswith(f"# Counterexample: `filter_agrees` for `too_wide(lr={hp!r})`")
    ev = rec["verdict"]["evidence"]
    assert f"| Hessian spectrum | `{ev['spectrum']}` |" in md
    assert f"| predicted spectral radius r | {ev['spectral_radius']} |" in md
    assert rec["function_repr"] in md
    assert f"dynverify replay {too_wide_counterexample}" in md
    assert "Settings (tolerances and budgets)" in md and "boundary_band" in md


def test_counterexample_files_of_odd_names_stay_in_their_directory(tmp_path):
    with RunWriter(tmp_path, run_id="run", worker="gw0") as w:
        path = w.counterexample({"claim": "filter_agrees",
                                 "optimizer": {"name": "pkg/sub:my opt"}, "verdict": {}})
    assert path.parent == tmp_path / "run" / "counterexamples"
    assert path.is_file() and path.with_suffix(".md").is_file()
    assert read_counterexample(path)["optimizer"]["name"] == "pkg/sub:my opt"
    # no temporary file left behind
    assert sorted(p.suffix for p in path.parent.iterdir()) == [".json", ".md"]


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not valid JSON"),
    ('"just a string"', "not a dynverify counterexample"),
    (json.dumps({"schema": CASE_SCHEMA}), "not a dynverify counterexample"),
    (json.dumps({"schema": COUNTEREXAMPLE_SCHEMA, "claim": "c", "optimizer": {"name": "o"}}),
     "lacks 'verdict'"),
    (json.dumps({"schema": COUNTEREXAMPLE_SCHEMA, "claim": 3, "optimizer": {"name": "o"},
                 "verdict": {}}), "'claim' must be a string"),
    (json.dumps({"schema": COUNTEREXAMPLE_SCHEMA, "claim": "c", "optimizer": ["o"],
                 "verdict": {}}), "'optimizer' must be an object"),
    (json.dumps({"schema": COUNTEREXAMPLE_SCHEMA, "claim": "c",
                 "optimizer": {"name": "o", "hyperparameters": [1]}, "verdict": {}}),
     "hyperparameters"),
    (json.dumps({"schema": COUNTEREXAMPLE_SCHEMA, "claim": "c", "optimizer": {"name": "o"},
                 "verdict": {"settings": 1}}), "'verdict' must be an object"),
])
def test_read_counterexample_rejects_malformed_files(tmp_path, content, message):
    f = tmp_path / "x.json"
    f.write_text(content)
    with pytest.raises(ReportError, match=message):
        read_counterexample(f)


def test_read_counterexample_missing_or_unreadable(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_counterexample(tmp_path / "nope.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ReportError, match="cannot read"):
        read_counterexample(tmp_path / "dir.json")


def test_read_runs_skips_and_reports_damage(tmp_path):
    with RunWriter(tmp_path, run_id="run", worker="gw0") as w:
        for i in range(3):
            w.case(_record(i))
        w.counterexample({"claim": "c", "optimizer": {"name": "gd"}, "verdict": {}})
    run = tmp_path / "run"
    with open(run / "cases-gw0.jsonl", "a") as fh:
        fh.write('[1, 2]\n{"schema": "other"}\n\n{"schema": "dynverify.case/1", "i": 9')
    (run / "counterexamples" / "junk.json").write_bytes(b"\x00\xff")
    (run / "counterexamples" / "dir.json").mkdir()
    back = read_runs([run, tmp_path / "missing"])
    assert [c["i"] for c in back.cases] == [0, 1, 2]
    assert len(back.counterexamples) == 1
    assert back.counterexamples[0]["_path"].endswith(".json")
    problems = "\n".join(back.problems)
    assert "cases-gw0.jsonl:4: not a case record" in problems
    assert "cases-gw0.jsonl:5: not a case record" in problems
    assert "cases-gw0.jsonl:7: malformed line" in problems
    assert "junk.json" in problems and "dir.json" in problems
    assert f"{tmp_path / 'missing'}: not a run directory" in problems
    assert len(back.problems) == 6


def test_latest_run_is_the_newest_run_directory(tmp_path):
    assert latest_run(tmp_path / "none") is None
    assert latest_run(tmp_path) is None
    a = RunWriter(tmp_path, run_id="20250101T000000-000001-1").dir
    b = RunWriter(tmp_path, run_id="20250101T000000-000002-1").dir
    (tmp_path / "zz-not-a-run").mkdir()
    (tmp_path / "zz-file").write_text("x")
    assert latest_run(tmp_path) == b != a


def test_run_ids_are_unique_and_sortable():
    from dynverify.records import new_run_id

    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)


# -- interrupted and parallel runs (real processes) ---------------------------------------------

WRITER_SCRIPT = textwrap.dedent("""
    import sys
    from dynverify.records import RunWriter

    root, worker, n, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    w = RunWriter(root, run_id="run", worker=worker)
    i = 0
    while n < 0 or i < n:
        w.case({"optimizer": {"name": worker}, "claim": "c", "outcome": "pass", "i": i,
                "pad": "x" * pad})
        print(i, flush=True)  # acknowledged: case() has returned
        if i < 2:
            w.counterexample({"claim": "c", "optimizer": {"name": "same"}, "verdict": {},
                              "i": i})
        i += 1
    w.close()
""")


def _writer(tmp_path, worker, n, pad=64):
    return subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(tmp_path), worker,
                             str(n), str(pad)], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_interrupted_run_keeps_every_line_written(tmp_path):
    proc = _writer(tmp_path, "main", -1, pad=3000)  # writes until killed
    cases = tmp_path / "run" / "cases-main.jsonl"
    acked = -1
    try:
        while acked < 150:
            line = proc.stdout.readline()
            assert line, "the writer stopped on its own"
            acked = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.communicate()[0].split()
    acked = max([acked, *map(int, rest)])
    assert proc.returncode == -signal.SIGKILL
    back = read_runs([tmp_path / "run"])
    n = len(back.cases)
    assert n > acked  # every case whose case() returned is on disk and readable
    assert [c["i"] for c in back.cases] == list(range(n))
    complete = cases.read_bytes().count(b"\n")
    assert n == complete
    # at most the line being written when the process died is incomplete
    assert len(back.problems) <= 1
    if back.problems:
        assert f"cases-main.jsonl:{complete + 1}: malformed" in back.problems[0]
    assert len(back.counterexamples) == 2


def test_two_workers_in_one_run_directory_do_not_interleave(tmp_path):
    n = 400
    procs = [_writer(tmp_path, w, n, pad=5000) for w in ("gw0", "gw1")]
    for p in procs:
        acks = p.communicate(timeout=120)[0].split()
        assert p.returncode == 0 and len(acks) == n
    run = tmp_path / "run"
    for worker in ("gw0", "gw1"):
        lines = (run / f"cases-{worker}.jsonl").read_text().splitlines()
        recs = [json.loads(ln) for ln in lines]
        assert [r["i"] for r in recs] == list(range(n))
        assert {r["worker"] for r in recs} == {worker}
        assert {r["optimizer"]["name"] for r in recs} == {worker}
    back = read_runs([run])
    assert len(back.cases) == 2 * n and back.problems == []
    # identical counterexample content from both workers: two files each, none overwritten
    names = sorted(p.name for p in (run / "counterexamples").glob("*.json"))
    assert len(names) == 4
    assert sum("-gw0-" in nm for nm in names) == sum("-gw1-" in nm for nm in names) == 2
    assert json.loads((run / "meta.json").read_text())["run_id"] == "run"



def test_report_counts_draws_with_no_such_case_as_check_does(tmp_path, capsys):
    """Adam with ε = 1e-14 is linear only within ~ε/λ of x̄, below float resolution: every
    draw of claims 2–3 is "no such case". `dynverify report` must count them as `check`
    did (they were missing from the records, inflating the report's decided fraction)."""
    from hypothesis import strategies as st

    import dynverify
    from dynverify.cli import claim_results, main
    from dynverify.records import read_runs

    hp = st.fixed_dictionaries({"lr": st.just(0.1), "beta1": st.just(0.5),
                                "beta2": st.just(0.5), "eps": st.just(1e-14)})
    res = dynverify.check_optimizer("adam", hyperparameters=hp, profile="dev",
                                    claims=["stable_converges"], reports=tmp_path)
    (cr,) = res.results
    # nearly every draw (each of up to CASE_ATTEMPTS redraws) has no case
    n = cr.reasons["no-such-case"]
    assert n >= 15 and cr.counts["inconclusive"] >= n
    (run,) = tmp_path.iterdir()
    (rr,) = claim_results(read_runs([run]))
    assert dict(rr.counts) == dict(cr.counts) and dict(rr.reasons) == dict(cr.reasons)
    capsys.readouterr()
    main(["report", str(run)])
    assert f"adam/stable_converges: no-such-case ({n})" in capsys.readouterr().out
