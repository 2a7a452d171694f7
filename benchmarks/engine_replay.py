"""Record every engine call of a ``dynverify check`` run, replay it, compare results.

Used to show that a change to the engine or to the test functions leaves every result
bit for bit identical, and to time the engine on the exact workload of a check:

    python benchmarks/engine_replay.py record calls.pkl -- check --profile ci --quiet
    python benchmarks/engine_replay.py replay calls.pkl out.npz      # (any checkout: set
    python benchmarks/engine_replay.py compare a.npz b.npz           #  PYTHONPATH)

``record`` runs the CLI with ``dynverify.claims.run`` wrapped; each call is stored as
(optimizer name, hyperparameters, function spec, X0, keyword arguments), so the replay
rebuilds it from data on whichever version of dynverify is importable. Calls on an
optimizer that is not a built-in factory, or on a function without a JSON spec, are
counted and skipped.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from typing import Any

import numpy as np

FIELDS = ("status", "steps", "x", "distance", "step_norm", "rate")


def record(path: str, cli_args: list[str]) -> int:
    import dynverify.claims as claims
    import dynverify.optimizers as optimizers
    from dynverify import cli

    calls: list[dict[str, Any]] = []
    skipped = 0
    inner = claims.run

    def wrapped(opt, f, X0, **kw):  # noqa: ANN001, ANN003, ANN202
        nonlocal skipped
        try:
            spec = f.spec()
            known = callable(getattr(optimizers, opt.name, None))
        except NotImplementedError:
            known = False
        if known:
            calls.append({"opt": opt.name, "hp": dict(opt.hyperparameters), "f": spec,
                          "X0": np.array(X0, dtype=float), "kw": kw})
        else:
            skipped += 1
        return inner(opt, f, X0, **kw)

    claims.run = wrapped
    try:
        rc = cli.main(cli_args)
    finally:
        claims.run = inner
    with open(path, "wb") as fh:
        pickle.dump(calls, fh)
    print(f"recorded {len(calls)} engine calls ({skipped} skipped) to {path}",
          file=sys.stderr)
    return int(rc or 0)


def load_calls(path: str) -> list[tuple[Any, Any, np.ndarray, dict[str, Any]]]:
    """The recorded calls, rebuilt as (optimizer, function, X0, kwargs) on this checkout."""
    import dynverify.optimizers as optimizers
    from dynverify.functions import from_spec

    with open(path, "rb") as fh:
        calls = pickle.load(fh)
    return [(getattr(optimizers, c["opt"])(**c["hp"]), from_spec(c["f"]), c["X0"], c["kw"])
            for c in calls]


def replay(path: str, out: str) -> None:
    from dynverify.engine import run

    calls = load_calls(path)
    arrays: dict[str, np.ndarray] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (opt, f, X0, kw) in enumerate(calls):
        res = run(opt, f, X0, **kw)
        for name in FIELDS:
            arrays[f"{i}/{name}"] = getattr(res, name)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.savez(out, **arrays)
    print(f"replayed {len(calls)} calls in {wall:.2f} s wall, {cpu:.2f} s CPU -> {out}",
          file=sys.stderr)


def compare(a: str, b: str) -> int:
    A, B = np.load(a), np.load(b)
    if sorted(A.files) != sorted(B.files):
        print(f"different keys: {len(A.files)} vs {len(B.files)}")
        return 1
    diff = [k for k in A.files
            if not (A[k].shape == B[k].shape and A[k].dtype == B[k].dtype
                    and np.array_equal(A[k], B[k], equal_nan=True))]
    n = len({k.split("/")[0] for k in A.files})
    bad = sorted({k.split("/")[0] for k in diff}, key=int)
    print(f"{n - len(bad)}/{n} calls bit-identical"
          + (f"; differ: {bad[:20]} ({sorted({k.split('/')[1] for k in diff})})" if bad else ""))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("calls")
    r.add_argument("cli", nargs=argparse.REMAINDER, help="-- then the dynverify arguments")
    q = sub.add_parser("replay")
    q.add_argument("calls")
    q.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args(argv)
    if args.cmd == "record":
        cli_args = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
        return record(args.calls, cli_args)
    if args.cmd == "replay":
        replay(args.calls, args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
