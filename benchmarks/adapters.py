"""Adapters vs built-in maps: µs of CPU per point-step, and optax's jit compilations.

Workload (fixed, seeded): f(x) = ½xᵀHx + ¼Σxᵢ⁴ (d = 10, H with eigenvalues in [0.1, 1]),
B = 1000 trajectories × T = 500 steps from one seeded batch. Two loops:

- ``step``: the bare ``state = opt.step(state, f)`` loop (every row stays active);
- ``engine``: ``dynverify.engine.run`` until each row converges (rows leave the active
  set, so the batch shrinks: this is where unpadded jit would recompile per size).

Each group (built-in, torch adapter, optax adapter of the same method) is timed
interleaved, ``--repeats`` times; the table gives min and median µs of CPU
(``time.process_time``) and of wall time per point-step, and the ratio of the medians to
the built-in. Run: ``python benchmarks/adapters.py [--repeats 5] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np


class Quartic:
    """½xᵀHx + ¼Σxᵢ⁴, closed-form batched gradient."""

    def __init__(self, d: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        self.dim = d
        self.H = Q @ np.diag(np.linspace(0.1, 1.0, d)) @ Q.T

    def value(self, X: np.ndarray) -> np.ndarray:
        return 0.5 * np.einsum("bi,ij,bj->b", X, self.H, X) + 0.25 * np.sum(X ** 4, axis=1)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return X @ self.H + X ** 3

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return V @ self.H + 3 * X ** 2 * V


def groups() -> dict[str, list[tuple[str, Any]]]:
    import optax
    import torch

    from dynverify import optimizers as O
    from dynverify.adapters import optax_optimizer, torch_optimizer

    return {
        "nesterov": [
            ("built-in nesterov", O.nesterov(lr=0.1, momentum=0.9)),
            ("torch SGD(nesterov)", torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9,
                                                    nesterov=True)),
            ("optax sgd(nesterov)", optax_optimizer(optax.sgd, learning_rate=0.1, momentum=0.9,
                                                    nesterov=True)),
        ],
        "adam": [
            ("built-in adam", O.adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)),
            ("torch Adam", torch_optimizer(torch.optim.Adam, lr=0.01)),
            ("optax adam(eps_root)", optax_optimizer(optax.adam, learning_rate=0.01,
                                                     eps_root=1e-8)),
        ],
    }


def time_steps(opt: Any, f: Quartic, X0: np.ndarray, T: int) -> tuple[float, float]:
    state = opt.init(X0)
    c, w = time.process_time(), time.perf_counter()
    for _ in range(T):
        state = opt.step(state, f)
    return time.process_time() - c, time.perf_counter() - w


def time_engine(opt: Any, f: Quartic, X0: np.ndarray, T: int) -> tuple[float, float, int]:
    from dynverify.engine import run

    c, w = time.process_time(), time.perf_counter()
    res = run(opt, f, X0, target=np.zeros(f.dim), max_steps=T, tol=1e-9)
    return time.process_time() - c, time.perf_counter() - w, int(res.steps.sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("-B", type=int, default=1000)
    ap.add_argument("-T", type=int, default=500)
    ap.add_argument("-d", type=int, default=10)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)  # the built-in maps run on one numpy thread
    except ImportError as exc:
        raise SystemExit("benchmarks/adapters.py needs torch, jax and optax "
                         "(pip install 'dynverify[torch,jax]')") from exc
    f = Quartic(args.d, seed=0)
    X0 = 0.3 * np.random.default_rng(1).standard_normal((args.B, args.d))
    results: dict[str, Any] = {"B": args.B, "T": args.T, "d": args.d,
                               "repeats": args.repeats, "rows": []}
    rows = []
    for gname, members in groups().items():
        for _, opt in members:  # warm-up: imports, jit compilations for B
            time_steps(opt, f, X0[:8], 3)
            time_steps(opt, f, X0, 3)
        for mode in ("step", "engine"):
            cpu: dict[str, list[float]] = {n: [] for n, _ in members}
            wall: dict[str, list[float]] = {n: [] for n, _ in members}
            comp_before = {n: (o.compilations() if hasattr(o, "compilations") else None)
                           for n, o in members}
            for _ in range(args.repeats):
                for n, opt in members:  # interleaved
                    if mode == "step":
                        c, w = time_steps(opt, f, X0, args.T)
                        points = args.B * args.T
                    else:
                        c, w, points = time_engine(opt, f, X0, args.T)
                    cpu[n].append(1e6 * c / points)
                    wall[n].append(1e6 * w / points)
            base = statistics.median(cpu[members[0][0]])
            for n, opt in members:
                comp = (opt.compilations() - comp_before[n]
                        if comp_before[n] is not None else None)
                row = {"group": gname, "loop": mode, "optimizer": n,
                       "cpu_us_min": min(cpu[n]), "cpu_us_median": statistics.median(cpu[n]),
                       "wall_us_min": min(wall[n]), "wall_us_median": statistics.median(wall[n]),
                       "cpu_ratio_to_builtin": statistics.median(cpu[n]) / base,
                       "jit_compilations": comp}
                rows.append(row)
    results["rows"] = rows
    from tabulate import tabulate

    print(tabulate([[r["loop"], r["optimizer"], f"{r['cpu_us_min']:.3f}",
                     f"{r['cpu_us_median']:.3f}", f"{r['wall_us_median']:.3f}",
                     f"{r['cpu_ratio_to_builtin']:.2f}",
                     "—" if r["jit_compilations"] is None else r["jit_compilations"]]
                    for r in rows],
                   headers=["loop", "optimizer", "CPU µs min", "CPU µs median",
                            "wall µs median", "CPU vs built-in", "jit compiles"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
