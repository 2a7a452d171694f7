"""``dynverify experiment sharpness``: train networks with several optimizers and step
sizes, and judge the sharpness at the end against each optimizer's filter.

Also replays experiment counterexamples (``dynverify replay FILE`` hands such records
here). Exit status as for ``dynverify check``: 0 some run passed and none failed, 1 a
counterexample, 2 a usage error (one line), 3 nothing was verified (no run converged).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

CLAIM = "sharpness_filter"
DEFAULT_OPTIMIZERS = "gradient_descent,usam,two_step_usam,hessian_usam,heavy_ball"
EXIT_OK, EXIT_COUNTEREXAMPLE, EXIT_USAGE, EXIT_NOTHING_VERIFIED = 0, 1, 2, 3
HEADERS = ["optimizer", "hyperparameters", "steps", "loss", "‖∇ℓ‖", "λ_min", "λ_max",
           "filter", "λ_max/bound", "converged", "verdict"]


class _Bad(Exception):
    """A usage error: one line, exit status 2."""


def parse_grid(text: str) -> list[float]:
    """``a:b:n`` (n evenly spaced values from a to b) or a comma list ``a,b,c``.

    Example:
        >>> parse_grid("0.1:0.3:3")
        [0.1, 0.2, 0.3]
    """
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
            if n < 1 or (n == 1 and a != b) or b < a:
                raise ValueError
            vals = [float(v) for v in np.round(np.linspace(a, b, n), 12)]
        else:
            vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _Bad(f"bad grid {text!r}: use START:STOP:COUNT (STOP ≥ START, COUNT ≥ 1) "
                   "or a comma list of numbers") from None
    if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
        raise _Bad(f"bad grid {text!r}: step sizes must be positive finite numbers")
    return vals


def parse_params(items: list[str] | None) -> dict[str, float]:
    """``-p rho=0.05 -p momentum=0.9`` -> {"rho": 0.05, "momentum": 0.9}."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise _Bad(f"bad hyperparameter {item!r}: use NAME=NUMBER, e.g. -p rho=0.05"
                       ) from None
    if any(k.rsplit(".", 1)[-1] == "lr" for k in out):
        raise _Bad("give step sizes with --lr, not -p lr=...")
    return out


def _check_scoped(params: dict[str, float], names: list[str]) -> None:
    for k in params:
        if "." in k and k.rsplit(".", 1)[0] not in names:
            raise _Bad(f"-p {k}: {k.rsplit('.', 1)[0]!r} is not among --optimizers")


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise _Bad(f"bad --hidden {text!r}: use widths like 32 or 32,16") from None
    if not sizes or min(sizes) < 1:
        raise _Bad(f"bad --hidden {text!r}: widths must be positive integers")
    return sizes


def add_subcommand(subparsers: Any) -> None:
    """Register ``dynverify experiment sharpness`` (and ``experiment replay``)."""
    e = subparsers.add_parser("experiment", help="train small networks; judge the sharpness "
                              "at the end against each optimizer's filter")
    sub = e.add_subparsers(dest="experiment", required=True)
    s = sub.add_parser("sharpness", help="sweep optimizers × step sizes on an MLP",
                       description="Full-batch training of a small MLP with each optimizer "
                       "and step size; the top and bottom Hessian eigenvalues at the end "
                       "are judged against the optimizer's filter. Only runs that converge "
                       "(‖∇ℓ‖ < tol) test the theorem.")
    s.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS,
                   help=f"comma list of registered names or module:factory "
                   f"(default {DEFAULT_OPTIMIZERS})")
    s.add_argument("--lr", default="0.02:0.2:5", help="START:STOP:COUNT or a comma list")
    s.add_argument("-p", dest="params", action="append", metavar="NAME=VALUE",
                   help="other hyperparameters, passed to the optimizers that take them; "
                   "NAME.param=VALUE for one optimizer only (e.g. hessian_usam.rho=0.005)")
    s.add_argument("--data", default="digits", help="digits (sklearn) or teacher (synthetic)")
    s.add_argument("--subsample", type=int, default=None, metavar="N",
                   help="number of examples (digits: random subset; teacher: sample size)")
    s.add_argument("--hidden", default="32", help="hidden widths, e.g. 32 or 32,16")
    s.add_argument("--activation", default="tanh", help="tanh, softplus or relu (not C²)")
    s.add_argument("--loss", default="mse", help="mse or cross_entropy")
    s.add_argument("--weight-decay", type=float, default=0.0)
    s.add_argument("--inputs", type=int, default=4, help="teacher: input dimension")
    s.add_argument("--teacher-hidden", type=int, default=3, help="teacher: hidden width")
    s.add_argument("--seed", type=int, default=0, help="seed of the data and the init")
    s.add_argument("--steps", type=int, default=5000, help="step budget per run")
    s.add_argument("--tol", type=float, default=1e-4, help="converged when ‖∇ℓ‖ < tol")
    s.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    s.add_argument("--out", metavar="FILE.png", help="plot sharpness vs step size")
    s.add_argument("--reports", metavar="DIR", default=None,
                   help="directory of run directories (default: $DYNVERIFY_REPORTS, "
                   "else reports/runs)")
    s.add_argument("--format", default="simple", help="table format (tabulate names)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_guarded(cmd_sharpness))
    r = sub.add_parser("replay", help="re-run an experiment counterexample or case record")
    r.add_argument("file")
    r.set_defaults(func=_guarded(lambda a: replay_file(a.file)))


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except _Bad as exc:
            print(f"dynverify: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run


def _configs(args: argparse.Namespace) -> list[Any]:
    from dynverify.experiments.data import DataSpec
    from dynverify.experiments.sweep import RunConfig, grid
    from dynverify.registry import UnknownOptimizerError, resolve

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    if not names:
        raise _Bad("--optimizers is empty")
    for n in names:
        try:
            resolve(n)
        except UnknownOptimizerError as exc:
            raise _Bad(str(exc)) from None
    lrs = parse_grid(args.lr)
    params = parse_params(args.params)
    _check_scoped(params, names)
    if args.workers < 1:
        raise _Bad(f"--workers must be >= 1, got {args.workers}")
    try:
        data = DataSpec(args.data, args.subsample, args.seed, args.inputs,
                        args.teacher_hidden, 1 if args.data == "teacher" else 10)
        base = RunConfig("gradient_descent", {}, data=data, hidden=_hidden(args.hidden),
                         activation=args.activation, loss=args.loss,
                         weight_decay=args.weight_decay, init_seed=args.seed,
                         steps=args.steps, tol=args.tol)
        from dynverify.experiments.mlp import MLP

        MLP(base.sizes(), base.activation)  # validates the activation up front
        configs = grid(names, lrs, params, base)
        from dynverify.experiments.sweep import filter_of, problem

        problem(base)  # loads the data once: bad subsample/loss combinations fail here
        for c in configs:
            filter_of(c)  # bad hyperparameters fail before any training
    except (ValueError, ImportError) as exc:
        raise _Bad(str(exc)) from None
    return configs


def _fmt_hp(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in hp.items())


def _down(x: float) -> str:
    """x > 0 with three significant digits, rounded down: a value below the tolerance
    never prints as the tolerance itself (9.9997e-05 -> 9.99e-05)."""
    if not (isinstance(x, float) and math.isfinite(x) and x > 0):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)
    e = math.floor(math.log10(x))
    m = math.floor(x / 10.0 ** e * 100.0) / 100.0
    return f"{m:.2f}e{e:+03d}"


def row(r: dict[str, Any]) -> list[Any]:
    """One table row of a run result."""
    def g(x: float, spec: str = ".4g") -> str:
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    return [r["optimizer"], _fmt_hp(r["hyperparameters"]), r["steps"], g(r["loss"], ".3g"),
            _down(r["grad_norm"]), g(r["bottom"], ".3g"), g(r["top"]), r["region_str"],
            g(r["ratio"], ".3f"), "yes" if r["status"] == "converged" else "no",
            r["outcome"]]


def _record(writer: Any, r: dict[str, Any]) -> str | None:
    """Write the case line (and a counterexample file); return the file's path if any."""
    from dynverify.experiments.verdict import Outcome

    outcome = Outcome(r["outcome"])
    settings = {k: r["config"][k] for k in ("steps", "tol", "eig_band", "confirm_steps")}
    case = {"claim": CLAIM, "optimizer": {"name": r["optimizer"],
                                          "hyperparameters": r["hyperparameters"]},
            "outcome": outcome.claim_outcome, "experiment_outcome": outcome.value,
            "reason": r["reason"], "region": r["region_str"],
            "spectrum": [r["bottom"], r["top"]],
            **{k: r[k] for k in ("status", "steps", "loss", "grad_norm", "bound", "ratio",
                                 "initial_top", "config", "seconds")}}
    writer.case(case)
    if outcome is not Outcome.COUNTEREXAMPLE:
        return None
    rec = {"claim": CLAIM,
           "optimizer": {"name": r["optimizer"], "hyperparameters": r["hyperparameters"],
                         "source": r["config"]["optimizer"]},
           "verdict": {"outcome": "counterexample", "reason": r["reason"],
                       "evidence": {**r["evidence"], "region_str": r["region_str"],
                                    "spectrum": [r["bottom"], r["top"]],
                                    "predicted": "every Hessian eigenvalue in the filter",
                                    "observed": {"status": r["status"], "steps": r["steps"],
                                                 "grad_norm": r["grad_norm"],
                                                 "loss": r["loss"]},
                                    "budget": r["config"]["steps"]},
                       "settings": settings},
           "function": r["function"], "function_repr": r["function_repr"],
           "experiment": {"config": r["config"]},
           "reproduce": {"experiment": "dynverify experiment replay FILE"}}
    return str(writer.counterexample(rec))


def cmd_sharpness(args: argparse.Namespace) -> int:
    from tabulate import tabulate
    from tqdm import tqdm

    from dynverify.experiments.sweep import sweep
    from dynverify.records import RunWriter

    if args.out:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _Bad("--out needs matplotlib: pip install 'dynverify[plot]'") from None
    configs = _configs(args)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    writer = RunWriter(args.reports, meta={"source": "cli", "command": "experiment sharpness",
                                           "configs": len(configs)})
    results, cex = [], []
    with tqdm(total=len(configs), unit="run", disable=args.quiet or None, file=sys.stderr,
              leave=False) as bar:
        for r in sweep(configs, workers=args.workers):
            results.append(r)
            path = _record(writer, r)
            if path:
                cex.append((r, path))
            bar.set_description(f"{r['optimizer']} lr={r['hyperparameters']['lr']:g}")
            bar.update(1)
    results.sort(key=lambda r: (names.index(r["config"]["optimizer"]),
                                r["hyperparameters"]["lr"]))
    writer.summary({"command": "experiment sharpness",
                    "results": [{k: v for k, v in r.items() if k != "trace"} for r in results]})
    writer.close()
    print(results[0]["function_repr"] if results else "")
    print(f"{configs[0].describe()}; converged when ‖∇ℓ‖ < {args.tol:g}, "
          f"budget {args.steps} steps")
    print(tabulate([row(r) for r in results], headers=HEADERS, tablefmt=args.format,
                   disable_numparse=True))
    n_conv = sum(r["status"] == "converged" for r in results)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    print(f"{n_conv}/{len(results)} runs converged; verdicts: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for r, path in cex:
        print(f"counterexample {r['optimizer']}({_fmt_hp(r['hyperparameters'])}): "
              f"{r['reason']}\n    dynverify replay {path}")
    if args.out:
        from dynverify.experiments.plot import sharpness_plot

        sharpness_plot(results, args.out, title=configs[0].describe())
        print(f"plot written to {args.out}")
    print(f"records: {writer.dir}")
    if cex:
        return EXIT_COUNTEREXAMPLE
    if not any(r["outcome"] == "pass" for r in results):
        print("nothing was verified: no run converged with the theorem's hypotheses met",
              file=sys.stderr)
        return EXIT_NOTHING_VERIFIED
    return EXIT_OK


def is_experiment_record(path: str) -> bool:
    """True when FILE is a record written by ``dynverify experiment`` (replayed here)."""
    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and isinstance(rec.get("experiment"), dict)


def replay_file(path: str) -> int:
    """Re-run the configuration stored in an experiment record and compare verdicts."""
    from tabulate import tabulate

    from dynverify.experiments.sweep import run_one

    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
        config = rec["experiment"]["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Bad(f"{path}: not an experiment record ({type(exc).__name__}: {exc})") from None
    try:
        new = run_one(config)
    except ValueError as exc:
        raise _Bad(f"{path}: cannot rebuild the run: {exc}") from None
    old_v = rec.get("verdict", {})
    old_ev = old_v.get("evidence", {})
    print(f"claim:      {rec.get('claim', CLAIM)}")
    print(f"optimizer:  {new['optimizer']}({_fmt_hp(new['hyperparameters'])})")
    print(f"function:   {new['function_repr']}")
    rows = [["verdict", f"{old_v.get('outcome')} ({old_v.get('reason')})",
             f"{new['outcome']} ({new['reason']})"],
            ["spectrum", json.dumps(old_ev.get("spectrum")),
             json.dumps([new["bottom"], new["top"]])],
            ["filter", old_ev.get("region_str"), new["region_str"]],
            ["observed", json.dumps(old_ev.get("observed")),
             json.dumps({"status": new["status"], "steps": new["steps"],
                         "grad_norm": new["grad_norm"], "loss": new["loss"]})]]
    print(tabulate(rows, headers=["", "recorded", "replayed"], maxcolwidths=[None, 50, 50]))
    reproduces = new["outcome"] == "counterexample"
    print("counterexample reproduces" if reproduces else "counterexample no longer reproduces")
    return EXIT_COUNTEREXAMPLE if reproduces else EXIT_OK


def replay_if_experiment(path: str) -> int | None:
    """For ``dynverify replay``: the exit status if FILE is an experiment record, else None."""
    if not is_experiment_record(path):
        return None
    try:
        return replay_file(path)
    except _Bad as exc:
        print(f"dynverify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
