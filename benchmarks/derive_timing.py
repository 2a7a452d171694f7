"""Time derive_region per optimizer (CPU and wall), for comparing two checkouts.

Usage (interleaved against a baseline checkout at BASE, ratio = this / base):

    python benchmarks/derive_timing.py --compare BASE [--rounds 5]

Each round runs a fresh interpreter per checkout, alternating, and times derive_region
on a fixed list of built-ins (the claims call it once per case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = [
    ("gradient_descent", {"lr": 0.1}),
    ("heavy_ball", {"lr": 0.1, "momentum": 0.9}),
    ("nesterov", {"lr": 0.1, "momentum": 0.5}),
    ("usam", {"lr": 0.1, "rho": 0.5}),
    ("two_step_usam", {"lr": 0.1, "rho": 0.5}),
    ("hessian_usam", {"lr": 0.1, "rho": 0.5}),
    ("penalty_sam", {"lr": 0.1, "rho": 0.05}),
]


def _one_run(repeats: int) -> dict[str, float]:
    import warnings

    from dynverify import derive_region
    from dynverify.optimizers import BUILTINS

    opts = [BUILTINS[n](**hp) for n, hp in WORKLOAD]
    for o in opts:  # warm-up (imports, caches)
        derive_region(o)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            for o in opts:
                derive_region(o)
    n = repeats * len(opts)
    return {"cpu_ms": 1e3 * (time.process_time() - cpu0) / n,
            "wall_ms": 1e3 * (time.perf_counter() - wall0) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", metavar="BASE", help="checkout directory of the baseline")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child or not args.compare:
        print(json.dumps(_one_run(args.repeats)))  # noqa: T201 -- benchmark script
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for _ in range(args.rounds):
        for key, root in (("base", args.compare), ("new", here)):
            env = dict(os.environ, PYTHONPATH=root)
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                  "--repeats", str(args.repeats)], env=env, cwd="/tmp",
                                 capture_output=True, text=True, check=True).stdout
            res[key].append(json.loads(out))
    for metric in ("cpu_ms", "wall_ms"):
        b = [r[metric] for r in res["base"]]
        n = [r[metric] for r in res["new"]]
        print(f"{metric}: base min {min(b):.2f} median {statistics.median(b):.2f} | "  # noqa: T201
              f"new min {min(n):.2f} median {statistics.median(n):.2f} | ratio min "
              f"{min(n) / min(b):.2f} median {statistics.median(n) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main()
