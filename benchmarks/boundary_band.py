"""How close to r = 1 do claims 2 and 3 stay correct? Measures the boundary band δ.

For each candidate δ, claims 2 (unstable ⇒ no convergence) and 3 (stable ⇒ convergence
at rate r) run on every built-in with spectra placed by the filter function at
|r − 1| ∈ [2δ, 4δ] (a log-uniform gap), a step cap high enough that budgets follow the
predicted rate, over several seeds. On correct optimizers every decided verdict must be a
pass; the table shows counterexamples (false alarms), decided fraction and time per case.

    python benchmarks/boundary_band.py --deltas 1e-2 3e-3 1e-3 3e-4 --seeds 3 --examples 10
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings

from dynverify import check
from dynverify.claims import Settings
from dynverify.registry import resolve

BUILTINS = ["gradient_descent", "heavy_ball", "nesterov", "usam", "two_step_usam",
            "hessian_usam", "penalty_sam"]
CLAIMS = ["unstable_no_convergence", "stable_converges"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deltas", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3, 3e-4])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=2_000_000)
    ap.add_argument("--out", default="benchmarks/results/boundary-band.json")
    args = ap.parse_args()
    hs = hsettings(max_examples=args.examples, deadline=None, database=None,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=list(HealthCheck))
    rows = []
    for delta in args.deltas:
        check.RATE_GAP_MAX = 4 * delta
        settings = Settings(boundary_band=delta, max_steps=args.max_steps)
        for name in BUILTINS:
            for claim in CLAIMS:
                counts: Counter[str] = Counter()
                reasons: Counter[str] = Counter()
                seconds = 0.0
                examples: list[dict] = []
                for seed in range(args.seeds):
                    t0 = time.process_time()
                    res = check.run_claim(resolve(name), claim, hypothesis_settings=hs,
                                          settings=settings, seed=seed)
                    seconds += time.process_time() - t0
                    counts.update(res.counts)
                    reasons.update(res.reasons)
                    if res.error:
                        counts["error"] += 1
                    if res.counterexample is not None:
                        ce = res.counterexample
                        examples.append({"seed": seed, "reason": ce["verdict"]["reason"],
                                         "optimizer": ce["optimizer"],
                                         "function": ce["function_repr"],
                                         "evidence": {k: v for k, v in
                                                      ce["verdict"]["evidence"].items()
                                                      if k != "observed"}})
                n = sum(counts.values())
                row = {"delta": delta, "optimizer": name, "claim": claim, "cases": n,
                       "counts": dict(counts), "reasons": dict(reasons),
                       "cpu_seconds_per_case": seconds / max(n, 1),
                       "counterexamples": examples}
                rows.append(row)
                print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/boundary_band.py "
                                          + " ".join(f"--{k.replace('_', '-')} {v}" if not
                                                     isinstance(v, list) else
                                                     f"--{k} " + " ".join(map(str, v))
                                                     for k, v in vars(args).items()),
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
