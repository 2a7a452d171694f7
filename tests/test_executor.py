"""The executor: in-process, process pool and a real Dask LocalCluster give identical results."""

import json
import textwrap

import pytest

from dynverify.executor import (
    ExecutorError,
    Task,
    TaskError,
    derive_seed,
    optimizer_ref,
    run_check,
    run_tasks,
)
from dynverify.phase import phase_diagram
from dynverify.records import RunWriter, read_runs


def test_tasks_carry_json_only():
    with pytest.raises(ValueError, match="JSON values"):
        Task("json:dumps", {"obj": lambda: 0})
    with pytest.raises(ValueError, match="module:function"):
        Task("json.dumps", {})


def test_pool_and_in_process_agree_and_failures_name_the_worker():
    tasks = [Task("json:dumps", {"obj": [k, k * k]}, label=f"k={k}") for k in range(5)]
    seen = []
    assert run_tasks(tasks, workers=2, on_result=lambda i, v: seen.append(i)) == \
        run_tasks(tasks) == [json.dumps([k, k * k]) for k in range(5)]
    assert sorted(seen) == list(range(5))
    with pytest.raises(TaskError, match=r"task 'bad' failed on worker .*:\d+: "
                                        r"ModuleNotFoundError: No module named 'no_such_mod'"):
        run_tasks([Task("no_such_mod:f", {}, label="bad")])


def test_seeds_are_derived_stably():
    assert derive_seed(0, "usam", 1) == derive_seed(0, "usam", 1) != derive_seed(0, "usam", 2)
    assert 0 <= derive_seed(2**40, "x") < 2**63


def test_unimportable_factories_are_refused_before_sending():
    from dynverify.optimizers import gradient_descent

    def local(lr):
        return gradient_descent(lr)

    with pytest.raises(ExecutorError, match="not importable"):
        optimizer_ref(local)
    assert optimizer_ref("usam") == "usam"
    assert optimizer_ref("wrong_optimizers:too_wide") == "wrong_optimizers:too_wide"
    with pytest.raises(ExecutorError, match="at most one"):
        run_tasks([], workers=2, scheduler="tcp://localhost:1")


def test_in_process_factories_without_a_name_still_run():
    from dynverify.optimizers import gradient_descent

    def my_gd(lr):
        return gradient_descent(lr)

    d = phase_diagram(my_gd, lam=[1.0, 5.0], vary={"lr": [0.5]}, starts=4)
    assert d.counts[0, 0, 0] == 4 and d.counts[0, 1, 0] == 0


# -- a real Dask cluster -----------------------------------------------------------------------
# One test, so that pytest-xdist never starts two clusters side by side.

CLAIMS = ["filter_agrees", "stable_converges"]
DYING_CLAIMS = ["filter_agrees", "stable_converges", "unstable_no_convergence"]


def _records(run_dir):
    recs = read_runs([run_dir])
    lines = sorted(json.dumps({k: v for k, v in c.items() if k not in ("run_id", "worker")},
                              sort_keys=True) for c in recs.cases)
    return lines, recs


def _campaign(tmp, names, claims, seed, **kw):
    with RunWriter(tmp) as w:
        res = run_check(names, claims, profile="dev", seed=seed, shards=2, writer=w, **kw)
    lines, recs = _records(w.dir)
    assert not recs.problems
    return [r.row() for r in res], lines


def test_dask_local_cluster(tmp_path, monkeypatch):
    """Bit-identical to serial (phase diagram and check), a clear error for a plug-in the
    workers cannot import, and no lost records when a worker is killed mid-campaign."""
    distributed = pytest.importorskip("distributed")
    marker = tmp_path / "died"
    # read by tests/plugins/phase_plugins.py in the worker processes (they inherit it)
    monkeypatch.setenv("DYNVERIFY_TEST_DIE_ONCE", str(marker))
    # serial references first: nothing of Dask runs in this process yet
    phase_kw = dict(lam="-7:8:6", vary={"rho": "0.25:1:3"}, fixed={"lr": 0.1}, starts=6,
                    seed=7)
    phase_serial = phase_diagram("usam", **phase_kw).to_json()
    check_serial = _campaign(tmp_path / "s1", ["gradient_descent", "usam"], CLAIMS, 11)
    dying_serial = _campaign(tmp_path / "s2", ["phase_plugins:dying_gd"], DYING_CLAIMS, 5)
    # one record per case of the summary rows (claim 1 runs 4× the profile's 20 examples)
    for rows, lines in (check_serial, dying_serial):
        assert len(lines) == sum(int(row[2]) for row in rows) > 20 * len(rows)
    assert not marker.exists()  # no Dask worker involved so far

    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        assert phase_diagram("usam", client=client, **phase_kw).to_json() == phase_serial
        assert _campaign(tmp_path / "d1", ["gradient_descent", "usam"], CLAIMS, 11,
                         client=client) == check_serial

        from dynverify.cli import main

        assert main(["phase", "usam", "--vary", "rho=0.25:1:3", "--lam", "-7:8:6", "-p",
                     "lr=0.1", "--starts", "6", "--seed", "7", "--data", str(tmp_path / "p.json"),
                     "--scheduler", cluster.scheduler_address,
                     "--reports", str(tmp_path / "runs")]) == 0
        loaded = json.loads((tmp_path / "p.json").read_text())
        assert loaded["counts"] == phase_serial["counts"]

        # importable here (sys.path changed after the workers started), not on the workers
        (tmp_path / "client_only_plugin.py").write_text(textwrap.dedent("""
            from dynverify.optimizers import gradient_descent
            def gd(lr):
                return gradient_descent(lr)
        """))
        monkeypatch.syspath_prepend(str(tmp_path))
        with pytest.raises(TaskError, match=r"failed on worker .*UnknownOptimizerError: "
                                            r"cannot import module 'client_only_plugin'"):
            phase_diagram("client_only_plugin:gd", lam=[1.0], vary={"lr": [0.5]}, starts=2,
                          client=client)

        # the first dying_gd built on a worker kills it; Dask re-runs the task elsewhere
        assert _campaign(tmp_path / "d2", ["phase_plugins:dying_gd"], DYING_CLAIMS, 5,
                         client=client) == dying_serial
        assert marker.exists()


def test_phase_diagram_is_bit_identical_on_a_process_pool():
    kw = dict(lam="-7:8:6", vary={"rho": "0.25:1:3"}, fixed={"lr": 0.1}, starts=6, seed=7)
    serial = phase_diagram("usam", **kw).to_json()
    assert phase_diagram("usam", workers=2, cells_per_task=4, **kw).to_json() == serial
    assert serial["agreement"]["outside"] > 0 and serial["agreement"]["inside"] > 0


def test_cli_check_with_workers_prints_the_serial_table(tmp_path, capsys):
    from dynverify.cli import main

    args = ["check", "gradient_descent", "usam", "--claim", "filter_agrees",
            "--profile", "dev", "--seed", "3", "--quiet", "--reports", str(tmp_path)]
    tables = []
    for extra in ([], ["--workers", "2"]):
        assert main(args + extra) == 0
        out = capsys.readouterr().out
        tables.append([ln for ln in out.splitlines() if not ln.startswith("records:")])
    assert tables[0] == tables[1] and any("filter_agrees" in ln for ln in tables[0])


def test_draws_do_not_depend_on_which_modules_are_loaded(tmp_path, monkeypatch):
    # Hypothesis also draws constants found in loaded local modules: a worker that
    # loaded other modules than the client must still draw the same cases
    def rows():
        res = run_check(["usam"], ["filter_agrees"], profile="dev", seed=11, shards=2)
        return [r.row() for r in res]

    before = rows()
    consts = ", ".join(f"{0.013 * k + 0.5:.6g}" for k in range(400))
    (tmp_path / "many_constants.py").write_text(f"C = [{consts}, -3, 7, 1e-3, 2.5e5]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import many_constants  # noqa: F401

    assert rows() == before
