"""Serial vs 2 local workers: a phase diagram of ≥ 1000 cells and `check` of all built-ins.

Backends, interleaved in each repeat: in-process (serial), a local process pool of 2
(``workers=2``; its start-up is included, as a user pays it) and a Dask LocalCluster of 2
worker processes with one thread each (started once, before timing; its start-up is
reported separately). Reported per workload and backend: wall time (min and median over
repeats), CPU time of this process and the summed CPU time of the tasks (the machine is
shared: CPU time is the load-independent figure), the speed-up min(serial)/min(backend),
and the per-task overhead (workers × wall − Σ task wall) / tasks; no-op tasks give the
bare cost of one task per backend.

    python benchmarks/phase.py                     # everything (about 10 minutes)
    python benchmarks/phase.py --quick             # small grids, one repeat
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from dynverify.executor import Task, Timing, executor, run_check
from dynverify.phase import phase_diagram

BUILTINS = ["gradient_descent", "heavy_ball", "nesterov", "usam", "two_step_usam",
            "hessian_usam", "penalty_sam", "sam"]
CLAIMS = ["filter_agrees", "unstable_no_convergence", "stable_converges",
          "convergence_filters", "metamorphic"]


def workloads(quick: bool) -> dict[str, Any]:
    if quick:
        usam = dict(lam="-12:12:15", vary={"rho": "0:1:8"}, fixed={"lr": 0.1}, starts=16)
        return {"phase usam 8×15": lambda **kw: phase_diagram("usam", **usam, **kw),
                "check dev, 2 optimizers": lambda **kw: run_check(
                    ["gradient_descent", "usam"], CLAIMS, profile="dev", **kw)}
    gd = dict(lam="-10:100:49", vary={"lr": "0.01:0.5:25"}, starts=64)
    usam = dict(lam="-12:12:57", vary={"rho": "0:1:26"}, fixed={"lr": 0.1}, starts=64)
    return {
        "phase gradient_descent 25×49 (1225 cells)":
            lambda **kw: phase_diagram("gradient_descent", **gd, **kw),
        "phase usam 26×57 (1482 cells)": lambda **kw: phase_diagram("usam", **usam, **kw),
        "check ci, 8 built-ins × 5 claims": lambda **kw: run_check(BUILTINS, CLAIMS,
                                                                    profile="ci", **kw),
    }


def measure(fn: Any, **kw: Any) -> dict[str, float]:
    tm = Timing()
    t0, c0 = time.perf_counter(), time.process_time()
    fn(timing=tm, **kw)
    return {"wall": time.perf_counter() - t0, "cpu_client": time.process_time() - c0,
            "cpu_tasks": sum(tm.task_cpu), "tasks": tm.tasks,
            "overhead": tm.overhead_per_task}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)

    import warnings

    import distributed
    from hypothesis.errors import HypothesisDeprecationWarning

    # the serial check runs Hypothesis in this process while the Dask client's thread
    # uses `random`; Hypothesis then warns about `random` in strategies (ours do not)
    warnings.filterwarnings("ignore", category=HypothesisDeprecationWarning)

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    startup = time.perf_counter() - t0
    backends = {"serial": {}, "pool 2": {"workers": 2}, "dask 2": {"client": client}}

    noop = [Task("json:dumps", {"obj": k}) for k in range(200)]
    noop_rows = []
    for name, kw in backends.items():
        with executor(**kw) as ex:  # started and warmed before timing
            t = time.perf_counter()
            list(ex.as_completed(noop[:2]))
            warm = time.perf_counter() - t
            t = time.perf_counter()
            outs = [o for _, o in ex.as_completed(noop)]
            wall = time.perf_counter() - t
        busy = sum(o["seconds"] for o in outs)
        noop_rows.append([name, f"{warm:.2f}", f"{1e3 * wall / len(noop):.2f}",
                          f"{1e3 * (ex.workers * wall - busy) / len(noop):.2f}"])
    print(f"Dask LocalCluster(2 processes) start-up: {startup:.1f} s")
    print("\nno-op tasks (200) on a started backend: cost per task")
    print(tabulate(noop_rows, headers=["backend", "start + 2 tasks s", "wall/task ms",
                                       "overhead/task ms"]))

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for wname, fn in workloads(args.quick).items():
        results[wname] = {b: [] for b in backends}
        for _ in range(repeats):
            for bname, kw in backends.items():  # interleaved
                results[wname][bname].append(measure(fn, seed=0, **kw))
    rows = []
    for wname, per in results.items():
        base = min(m["wall"] for m in per["serial"])
        for bname, ms in per.items():
            walls = [m["wall"] for m in ms]
            rows.append([wname, bname, f"{min(walls):.1f}", f"{statistics.median(walls):.1f}",
                         f"{min(m['cpu_client'] for m in ms):.1f}",
                         f"{min(m['cpu_tasks'] for m in ms):.1f}", ms[0]["tasks"],
                         f"{base / min(walls):.2f}×",
                         f"{1e3 * min(m['overhead'] for m in ms):.0f}"])
    print(f"\n{repeats} repeat(s), interleaved")
    print(tabulate(rows, headers=["workload", "backend", "wall min s", "wall median s",
                                  "CPU client s", "CPU tasks s", "tasks", "speed-up",
                                  "overhead/task ms"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"startup_dask": startup, "noop": noop_rows,
                                               "results": results}, indent=1))
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
