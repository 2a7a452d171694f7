"""Command line: ``dynverify regions | check | report | replay``.

Exit status: 0 when every claim is verified (or measurably outside the theorem's
hypotheses), 1 when a counterexample was found (or reproduces on replay), 2 for usage
errors (unknown optimizer, unimportable module, bad option, a malformed counterexample
file), 3 when nothing failed but some claim is *not verified* (too few decided cases, or
an ``outside_hypotheses`` exemption that measurement did not confirm).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NoReturn

from tabulate import tabulate

EXIT_OK, EXIT_COUNTEREXAMPLE, EXIT_USAGE, EXIT_NOT_VERIFIED = 0, 1, 2, 3


class UsageError(Exception):
    """A one-line message for the user; exit status 2."""


def _fail(msg: str) -> NoReturn:
    raise UsageError(msg)


# -- regions ---------------------------------------------------------------------------------

def _hyperparameters_for(factory: Any, args: argparse.Namespace) -> dict[str, float]:
    from dynverify.registry import accepted

    return accepted(factory, {"lr": args.lr, "momentum": args.momentum, "rho": args.rho})


def cmd_regions(args: argparse.Namespace) -> int:
    from dynverify.derive import derive_region, filter_function
    from dynverify.errors import NotDifferentiableError
    from dynverify.registry import registered

    if args.plot:
        _require_matplotlib()  # before any work, so the message is all the user sees
    regs = _resolve_all(args.names or sorted(registered()))
    rows, curves = [], []
    for reg in regs:
        hp = _hyperparameters_for(reg.factory, args)
        try:
            opt = reg.build(**hp)
        except (TypeError, ValueError) as exc:
            _fail(f"{reg.name}: {exc}")
        declared = opt.region
        try:
            derived = derive_region(opt)
            derived_s = str(derived)
        except NotDifferentiableError:
            derived, derived_s = None, "— (map not C¹ at critical points)"
        if declared is None:
            declared_s = "none (outside hypotheses)" if opt.outside_hypotheses else "none"
            agree = "—"
        else:
            declared_s = str(declared)
            agree = "yes" if derived is not None and declared.isclose(derived) else "NO"
        rows.append([reg.name, ", ".join(f"{k}={v:g}" for k, v in hp.items()), declared_s,
                     derived_s, agree])
        if derived is not None:
            curves.append((reg.name, filter_function(opt), derived))
    print(tabulate(rows, headers=["optimizer", "hyperparameters", "declared filter",
                                  "derived filter", "agree"], tablefmt=args.format))
    if args.plot:
        _plot(curves, args.plot)
        print(f"plot written to {args.plot}")
    return EXIT_COUNTEREXAMPLE if any(r[4] == "NO" for r in rows) else EXIT_OK


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail("--plot needs matplotlib: pip install 'dynverify[plot]'")


def _plot(curves: list[tuple[str, Any, Any]], path: str) -> None:
    _require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scale = max([r.scale for _, _, r in curves if not r.empty and math.isfinite(r.scale)]
                + [1.0])
    lam = np.linspace(-1.3 * scale, 1.3 * scale, 2001)
    n = len(curves)
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.9 * n + 0.5), sharex=True, squeeze=False)
    for ax, (name, rho, region) in zip(axes[:, 0], curves, strict=True):
        ax.plot(lam, rho(lam), lw=1.2)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        for lo, hi in region.intervals:
            if lo == hi:
                ax.axvline(lo, color="tab:green", lw=1.5)
            else:
                ax.axvspan(max(lo, lam[0]), min(hi, lam[-1]), color="tab:green", alpha=0.2)
        ax.set_ylim(0, 2.5)
        ax.set_ylabel("ρ(λ)")
        ax.set_title(f"{name}: filter {region}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("Hessian eigenvalue λ")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- check -----------------------------------------------------------------------------------

def _resolve_all(names: Sequence[str]) -> list[Any]:
    from dynverify.registry import UnknownOptimizerError, resolve

    out = []
    for n in names:
        try:
            out.append(resolve(n))
        except UnknownOptimizerError as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001 -- a plug-in module that fails on import
            _fail(f"cannot load {n!r}: {type(exc).__name__}: {exc}")
    return out


def cmd_check(args: argparse.Namespace) -> int:
    from hypothesis import settings as hsettings
    from tqdm import tqdm

    from dynverify.check import SUMMARY_HEADERS, ClaimStatus, run_claim
    from dynverify.claims import CLAIMS
    from dynverify.profiles import register_profiles
    from dynverify.records import RunWriter
    from dynverify.registry import registered

    register_profiles()
    regs = _resolve_all(args.targets or sorted(registered()))
    claims = args.claim or list(CLAIMS)
    for c in claims:
        if c not in CLAIMS:
            _fail(f"unknown claim {c!r}; known: {', '.join(CLAIMS)}")
    hs = hsettings.get_profile(args.profile)
    writer = RunWriter(args.reports, meta={"profile": args.profile, "seed": args.seed,
                                           "optimizers": [r.name for r in regs],
                                           "claims": claims, "source": "cli"})
    results = []
    total = len(regs) * len(claims) * hs.max_examples
    with tqdm(total=total, unit="case", disable=args.quiet or None, file=sys.stderr,
              leave=False) as bar:
        for reg in regs:
            for claim in claims:
                bar.set_description(f"{reg.name}/{claim}")
                done = bar.n

                def tick(_: Any) -> None:
                    bar.update(1)

                res = run_claim(reg, claim, hypothesis_settings=hs, writer=writer,
                                on_case=tick, seed=args.seed)
                bar.update(max(0, done + hs.max_examples - bar.n))
                results.append(res)
    writer.summary({"results": [r.to_json() for r in results]})
    writer.close()
    print(tabulate([r.row() for r in results], headers=SUMMARY_HEADERS, tablefmt=args.format))
    bad = unverified = False
    for r in results:
        if r.error:
            bad = True
            print(f"error       {r.optimizer}/{r.claim}: {r.error}")
        if r.counterexample:
            bad = True
            v = r.counterexample["verdict"]
            fact = v.get("evidence", {}).get("key_fact") or v["reason"]
            print(f"counterexample {r.optimizer}/{r.claim}: {fact}"
                  + (f"\n    ({v['reason']})" if fact != v["reason"] else "")
                  + f"\n    dynverify replay {r.counterexample_path}")
        elif r.status is ClaimStatus.NOT_VERIFIED:
            unverified = True
            print(f"not verified {r.optimizer}/{r.claim}: {r.why_not_verified()}")
    print(f"records: {writer.dir}")
    if bad:
        return EXIT_COUNTEREXAMPLE
    return EXIT_NOT_VERIFIED if unverified else EXIT_OK


# -- report ----------------------------------------------------------------------------------

def _spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{len(values)} in [{min(values):.3g}, {max(values):.3g}]"


def _ranges(hps: list[dict[str, Any]]) -> str:
    keys = sorted({k for hp in hps for k in hp})
    parts = []
    for k in keys:
        vals = [hp[k] for hp in hps if isinstance(hp.get(k), (int, float))]
        if vals:
            parts.append(f"{k} ∈ [{min(vals):.3g}, {max(vals):.3g}]")
    return "; ".join(parts) or "—"


def build_report(records: Any) -> dict[str, Any]:
    """Summary tables (as data) from run records alone.

    ``claims``: per optimizer × claim, the outcome counts and the smallest |r − 1| among
    decided cases (None when the claim has no r); ``spectra``: per optimizer, the
    hyperparameter ranges, how many distinct filters that gave (one shown), and the
    eigenvalues planted at stable (r ≤ 1) and unstable (r > 1) points; ``counterexamples``.
    """
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    closest: dict[tuple[str, str], float] = {}
    filters: dict[str, list[str]] = defaultdict(list)
    hps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    inside: dict[str, list[float]] = defaultdict(list)
    outside: dict[str, list[float]] = defaultdict(list)
    for c in records.cases:
        try:
            name, claim, outcome = c["optimizer"]["name"], c["claim"], c["outcome"]
        except (KeyError, TypeError):
            name = claim = outcome = None
        if not all(isinstance(v, str) for v in (name, claim, outcome)):
            records.problems.append(f"case record without optimizer/claim/outcome: {c!r:.80}")
            continue
        counts[(name, claim)][outcome] += 1
        hp = c["optimizer"].get("hyperparameters")
        if isinstance(hp, dict):
            hps[name].append(hp)
        r = c.get("spectral_radius")
        if isinstance(r, (int, float)) and outcome != "inconclusive":
            closest[(name, claim)] = min(closest.get((name, claim), math.inf), abs(r - 1))
        if isinstance(c.get("region"), str) and c["region"] and c["region"] not in filters[name]:
            filters[name].append(c["region"])
        spec = c.get("spectrum")
        if isinstance(spec, list) and isinstance(r, (int, float)):
            (inside if r <= 1 else outside)[name].extend(
                float(v) for v in spec if isinstance(v, (int, float)))
    claims_rows = [[o, cl, sum(n.values()), n["pass"], n["counterexample"], n["inconclusive"],
                    closest.get((o, cl))]
                   for (o, cl), n in sorted(counts.items())]
    spectra_rows = []
    for o in sorted({o for o, _ in counts}):
        f = filters[o]
        shown = (f"{len(f)} distinct, e.g. {f[0]}" if len(f) > 1 else f[0]) if f else "—"
        spectra_rows.append([o, _ranges(hps[o]), shown, _spread(inside[o]),
                             _spread(outside[o])])
    cex_rows = []
    for rec in records.counterexamples:
        v = rec.get("verdict", {})
        ev = v.get("evidence") if isinstance(v.get("evidence"), dict) else {}
        cex_rows.append([rec.get("claim"), rec.get("optimizer", {}).get("name"),
                         json.dumps(rec.get("optimizer", {}).get("hyperparameters")),
                         v.get("reason"), str(rec.get("function_repr", ""))[:100],
                         json.dumps(ev.get("spectrum", rec.get("spectrum"))),
                         rec.get("_path")])
    return {"claims": claims_rows, "spectra": spectra_rows, "counterexamples": cex_rows,
            "problems": list(records.problems), "runs": [str(p) for p in records.paths]}


def cmd_report(args: argparse.Namespace) -> int:
    from dynverify.records import latest_run, read_runs

    paths = args.runs
    for p in paths:
        if not os.path.isdir(p):
            _fail(f"{p}: not a run directory")
    if not paths:
        latest = latest_run(args.reports)
        if latest is None:
            _fail(f"no run directories under {args.reports or 'reports/runs'}; "
                  "run `dynverify check` first")
        paths = [str(latest)]
    rep = build_report(read_runs(paths))
    if args.format == "json":
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        fmt = {"plain": "simple"}.get(args.format, args.format)
        print(f"runs: {', '.join(rep['runs'])}\n")
        rows = [[*r[:-1], "—" if r[-1] is None else f"{r[-1]:.3g}"] for r in rep["claims"]]
        print(tabulate(rows, headers=["optimizer", "claim", "cases", "pass", "counterexample",
                                      "inconclusive", "closest |r-1|"], tablefmt=fmt))
        print()
        print(tabulate(rep["spectra"], headers=["optimizer", "hyperparameters", "filters",
                                                "eigenvalues at stable points (r ≤ 1)",
                                                "at unstable points (r > 1)"],
                       tablefmt=fmt, maxcolwidths=[None, 40, 40, None, None]))
        if rep["counterexamples"]:
            print()
            print(tabulate(rep["counterexamples"],
                           headers=["claim", "optimizer", "hyperparameters", "reason",
                                    "minimal function", "spectrum", "file"], tablefmt=fmt))
    for p in rep["problems"]:
        print(f"warning: {p}", file=sys.stderr)
    return EXIT_OK


# -- replay ----------------------------------------------------------------------------------

def cmd_replay(args: argparse.Namespace) -> int:
    from dynverify.check import replay
    from dynverify.errors import ReportError

    try:
        rep = replay(args.file)
    except ReportError as exc:
        _fail(str(exc))
    rec, new = rep.recorded, rep.verdict
    old = rec["verdict"]
    # the one fact that makes it a counterexample comes first
    print(f"counterexample: {old.get('evidence', {}).get('key_fact') or old['reason']}")
    print(f"claim:      {rec['claim']}")
    print(f"optimizer:  {rec['optimizer']['name']}({rec['optimizer'].get('hyperparameters')})")
    print(f"function:   {rec.get('function_repr', '')}")
    ev = new.evidence
    rows = [["verdict", f"{old['outcome']} ({old['reason']})",
             f"{new.outcome.value} ({new.reason})"],
            ["key fact", old.get("evidence", {}).get("key_fact", "—"),
             ev.get("key_fact", "—")]]
    for key in ("failing_limits", "noncritical_limits", "spectral_radius", "predicted",
                "spectrum", "region_str", "derived_region", "witness"):
        if key in ev or key in old.get("evidence", {}):
            rows.append([key, json.dumps(old.get("evidence", {}).get(key), ensure_ascii=False),
                         json.dumps(ev.get(key), ensure_ascii=False)])
    if "observed" in ev:
        recorded = old.get("evidence", {}).get("observed")
        rows.append(["observed", json.dumps(recorded, ensure_ascii=False),
                     json.dumps(ev["observed"], ensure_ascii=False)])
    print(tabulate(rows, headers=["", "recorded", "replayed"], maxcolwidths=[None, 50, 50]))
    print("counterexample reproduces" if rep.reproduces else "counterexample no longer reproduces")
    return EXIT_COUNTEREXAMPLE if rep.reproduces else EXIT_OK


# -- entry point -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dynverify", description="Verify eigenvalue-filter claims about "
                "optimizers with property-based testing.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("regions", help="declared vs derived filter of each optimizer")
    r.add_argument("names", nargs="*", help="optimizers (default: all registered)")
    r.add_argument("--lr", type=float, default=0.1)
    r.add_argument("--momentum", type=float, default=0.9)
    r.add_argument("--rho", type=float, default=0.5)
    r.add_argument("--plot", metavar="FILE.png", help="draw λ ↦ ρ(λ) with the filters shaded")
    r.add_argument("--format", default="simple", help="table format (tabulate names)")
    r.set_defaults(func=cmd_regions)

    c = sub.add_parser("check", help="run the claims through Hypothesis and record the run")
    c.add_argument("targets", nargs="*", metavar="NAME | module:factory",
                   help="optimizers (default: all registered)")
    c.add_argument("--profile", choices=["dev", "ci", "deep"], default="ci")
    c.add_argument("--reports", metavar="DIR", default=None,
                   help="directory of run directories (default: reports/runs)")
    c.add_argument("--seed", type=int, default=None, help="Hypothesis seed (non-derandomized)")
    c.add_argument("--claim", action="append", metavar="NAME", help="only these claims")
    c.add_argument("--format", default="simple", help="table format (tabulate names)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_check)

    rp = sub.add_parser("report", help="summary tables from recorded runs")
    rp.add_argument("runs", nargs="*", metavar="RUN_DIR", help="default: the latest run")
    rp.add_argument("--reports", metavar="DIR", default=None,
                    help="where to look for the latest run (default: reports/runs)")
    rp.add_argument("--format", choices=["plain", "github", "markdown", "json"],
                    default="plain")
    rp.set_defaults(func=cmd_report)

    rl = sub.add_parser("replay", help="re-run a counterexample JSON file")
    rl.add_argument("file")
    rl.set_defaults(func=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "format", None) == "markdown":
            args.format = "pipe" if args.command != "report" else "markdown"
        if args.command == "report" and args.format == "markdown":
            args.format = "pipe"
        return int(args.func(args))
    except UsageError as exc:
        print(f"dynverify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dynverify: interrupted (records written so far are kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dynverify report | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
