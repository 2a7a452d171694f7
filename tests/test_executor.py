"""The executor: in-process, process pool and a real Dask LocalCluster give identical results."""

import json
import os
import textwrap
from pathlib import Path

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

@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    marker = tmp_path_factory.mktemp("die") / "died"
    # read by tests/plugins/phase_plugins.py in the worker processes (inherit the env)
    os.environ["DYNVERIFY_TEST_DIE_ONCE"] = str(marker)
    try:
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        client.marker = marker
        yield client
        client.close()
        cluster.close()
    finally:
        os.environ.pop("DYNVERIFY_TEST_DIE_ONCE", None)


CLAIMS = ["filter_agrees", "stable_converges"]
DYING_CLAIMS = ["filter_agrees", "stable_converges", "unstable_no_convergence"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """Serial campaigns, run before the cluster exists (a live Dask client thread uses
    `random`, which Hypothesis would take for a strategy doing so)."""
    out = {}
    for key, names, claims, seed in (("check", ["gradient_descent", "usam"], CLAIMS, 11),
                                     ("dying", ["phase_plugins:dying_gd"], DYING_CLAIMS, 5)):
        with RunWriter(tmp_path_factory.mktemp(key)) as w:
            res = run_check(names, claims, profile="dev", seed=seed, shards=2, writer=w)
        out[key] = ([r.row() for r in res], _records(w.dir)[0])
    return out


def _records(run_dir):
    recs = read_runs([run_dir])
    lines = sorted(json.dumps({k: v for k, v in c.items() if k not in ("run_id", "worker")},
                              sort_keys=True) for c in recs.cases)
    return lines, recs


def test_phase_diagram_is_bit_identical_serial_pool_and_dask(serial, dask_client):
    kw = dict(lam="-7:8:6", vary={"rho": "0.25:1:3"}, fixed={"lr": 0.1}, starts=6, seed=7)
    serial = phase_diagram("usam", **kw).to_json()
    assert phase_diagram("usam", client=dask_client, **kw).to_json() == serial
    assert phase_diagram("usam", workers=2, cells_per_task=4, **kw).to_json() == serial
    assert serial["agreement"]["outside"] > 0 and serial["agreement"]["inside"] > 0


def test_check_campaign_on_dask_equals_serial_run(serial, dask_client, tmp_path):
    with RunWriter(tmp_path) as w:
        res = run_check(["gradient_descent", "usam"], CLAIMS, profile="dev", seed=11,
                        shards=2, writer=w, client=dask_client)
    assert ([r.row() for r in res], _records(w.dir)[0]) == serial["check"]
    assert len(serial["check"][1]) == 2 * 2 * 20  # 2 optimizers × 2 claims × 20 examples


def test_unimportable_plugin_fails_clearly_on_the_worker(serial, dask_client, tmp_path,
                                                         monkeypatch):
    # importable here (sys.path changed after the workers started), not on the workers
    (tmp_path / "client_only_plugin.py").write_text(textwrap.dedent("""
        from dynverify.optimizers import gradient_descent
        def gd(lr):
            return gradient_descent(lr)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError, match=r"failed on worker .*UnknownOptimizerError: cannot "
                                        r"import module 'client_only_plugin'"):
        phase_diagram("client_only_plugin:gd", lam=[1.0], vary={"lr": [0.5]}, starts=2,
                      client=dask_client)


def test_killed_worker_loses_no_finished_records(serial, dask_client, tmp_path):
    assert not Path(dask_client.marker).exists()  # the serial run involved no Dask worker
    with RunWriter(tmp_path) as w:
        dasked = run_check(["phase_plugins:dying_gd"], DYING_CLAIMS, profile="dev", seed=5,
                           shards=2, writer=w, client=dask_client)
    assert Path(dask_client.marker).exists()  # a worker died mid-campaign, Dask re-ran it
    lines, recs = _records(w.dir)
    assert ([r.row() for r in dasked], lines) == serial["dying"]
    assert not recs.problems and len(lines) == len(DYING_CLAIMS) * 20


def test_cli_check_with_workers_prints_the_serial_table(tmp_path, capsys):
    from dynverify.cli import main

    args = ["check", "gradient_descent", "--claim", "filter_agrees", "--claim", "metamorphic",
            "--profile", "dev", "--seed", "3", "--quiet", "--reports", str(tmp_path)]
    tables = []
    for extra in ([], ["--workers", "2"]):
        assert main(args + extra) == 0
        out = capsys.readouterr().out
        tables.append([ln for ln in out.splitlines() if not ln.startswith("records:")])
    assert tables[0] == tables[1] and any("filter_agrees" in ln for ln in tables[0])
