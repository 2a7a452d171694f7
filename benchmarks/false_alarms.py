"""False-alarm campaign (issue 9 §1): every built-in × every claim under ``deep`` × seeds.

A counterexample on a built-in optimizer is a false alarm of dynverify (the built-ins are
correct). For each seed, optimizer and claim this runs the claim through Hypothesis
exactly as ``dynverify check NAME --profile deep --seed SEED --claim CLAIM`` does,
records counterexamples as replayable files, and prints per optimizer × claim: cases,
decided (passes), inconclusive, counterexamples, the verdict status, and run time.

Results are appended to a JSON file after every item, so an interrupted campaign keeps
what it finished; several processes (e.g. one per optimizer group) can run side by side
and ``--table`` merges their files.

Usage::

    python benchmarks/false_alarms.py --seeds 1 2 3 4 5
    python benchmarks/false_alarms.py --seeds 1 --optimizers usam two_step_usam --out a.json
    python benchmarks/false_alarms.py --table benchmarks/results/false_alarms-*.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# one BLAS thread (set before numpy loads): the engine's products are small, and
# multi-threaded OpenBLAS on a busy machine is many times slower (benchmarks/README.md)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def campaign(seeds: list[int], optimizers: list[str], claims: list[str], profile: str,
             out: Path, reports: Path) -> None:
    from dynverify.check import run_claim
    from dynverify.profiles import resolve as resolve_profile
    from dynverify.records import RunWriter
    from dynverify.registry import resolve

    hs = resolve_profile(profile)
    data: dict[str, Any] = {"profile": profile, "seeds": seeds, "optimizers": optimizers,
                            "claims": claims, "started": _now(), "items": []}
    if out.exists():  # resume: keep finished items
        data["items"] = json.loads(out.read_text()).get("items", [])
    done = {(i["seed"], i["optimizer"], i["claim"]) for i in data["items"]}
    for seed in seeds:
        writer = RunWriter(reports, meta={"profile": profile, "seed": seed,
                                          "source": "benchmarks/false_alarms.py"})
        try:
            for name in optimizers:
                reg = resolve(name)
                for claim in claims:
                    if (seed, name, claim) in done:
                        continue
                    cpu = time.process_time()
                    res = run_claim(reg, claim, hypothesis_settings=hs, writer=writer,
                                    seed=seed)
                    item = {"seed": seed, **res.to_json(),
                            "cpu_seconds": round(time.process_time() - cpu, 3)}
                    if res.counterexample is not None:
                        ev = res.counterexample["verdict"].get("evidence", {})
                        item["key_fact"] = ev.get("key_fact") or \
                            res.counterexample["verdict"]["reason"]
                    data["items"].append(item)
                    data["updated"] = _now()
                    _atomic_write(out, json.dumps(data, indent=1))
                    print(f"seed {seed} {name}/{claim}: {item['status']} "
                          f"{item['counts']} {item['seconds']:.0f}s"
                          + (f"  COUNTEREXAMPLE {item['key_fact']} -> "
                             f"{item['counterexample']}" if res.counterexample else ""),
                          flush=True)
        finally:
            writer.close()


def table(files: list[Path]) -> str:
    from tabulate import tabulate

    latest: dict[tuple[int, str, str], dict[str, Any]] = {}
    for f in sorted(files):  # a later file (a rerun) replaces an earlier item
        for i in json.loads(f.read_text()).get("items", []):
            latest[(i["seed"], i["optimizer"], i["claim"])] = i
    items = list(latest.values())
    agg: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"seeds": set(), "cases": 0, "decided": 0, "inconclusive": 0,
                 "counterexamples": 0, "statuses": defaultdict(int), "seconds": 0.0})
    for i in items:
        a = agg[(i["optimizer"], i["claim"])]
        a["seeds"].add(i["seed"])
        c = i["counts"]
        a["cases"] += sum(c.values())
        a["decided"] += c.get("pass", 0)
        a["inconclusive"] += c.get("inconclusive", 0)
        a["counterexamples"] += c.get("counterexample", 0)
        a["statuses"][_status(i)] += 1
        a["seconds"] += i["seconds"]
    rows = []
    for (opt, claim), a in sorted(agg.items()):
        rows.append([opt, claim, len(a["seeds"]), a["cases"], a["decided"],
                     a["inconclusive"], a["counterexamples"],
                     ", ".join(f"{s} ×{n}" for s, n in sorted(a["statuses"].items())),
                     f"{a['seconds']:.0f}"])
    total = sum(a["seconds"] for a in agg.values())
    cex = sum(a["counterexamples"] for a in agg.values())
    seeds = sorted({i["seed"] for i in items})
    head = tabulate(rows, headers=["optimizer", "claim", "seeds", "cases", "decided",
                                   "inconclusive", "counterexamples", "status per seed",
                                   "seconds"])
    lines = [head, "", f"seeds {seeds}; {len(items)} items; {cex} counterexamples; "
             f"{total:.0f} s of claim time ({total / 60:.1f} min)"]
    for i in items:
        if i.get("counterexample") or i.get("key_fact"):
            lines.append(f"COUNTEREXAMPLE seed {i['seed']} {i['optimizer']}/{i['claim']}: "
                         f"{i.get('key_fact')}  ({i.get('counterexample')})")
    return "\n".join(lines)


def _status(item: dict[str, Any]) -> str:
    """The item's verdict under the current definitions (recomputed from its counts)."""
    from collections import Counter

    from dynverify.check import ClaimResult

    r = ClaimResult(item["optimizer"], item["claim"], counts=Counter(item["counts"]),
                    reasons=Counter(item.get("reasons", {})), error=item.get("error"),
                    counterexample={"file": item["counterexample"]}
                    if item.get("counterexample") else None)
    return r.status.value


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    from dynverify.claims import CLAIMS
    from dynverify.optimizers import BUILTINS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--optimizers", nargs="+", default=list(BUILTINS))
    p.add_argument("--claims", nargs="+", default=list(CLAIMS))
    p.add_argument("--profile", default="deep")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default: "
                   "benchmarks/results/false_alarms-<profile>-<time>.json)")
    p.add_argument("--reports", type=Path, default=Path("reports/runs/false_alarms"),
                   help="run directories with replayable counterexamples")
    p.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                   help="only print the merged table of these result files")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    out = args.out or RESULTS / (f"false_alarms-{args.profile}-"
                                 f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    campaign(args.seeds, args.optimizers, args.claims, args.profile, out, args.reports)
    print(f"wall time {time.perf_counter() - start:.0f} s; results {out}")
    print(table([out]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
