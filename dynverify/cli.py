"""Command line: ``dynverify regions | check | report | replay``.

Exit status: 0 when every claim is verified (or measured to be outside the theorem's
hypotheses); 1 when a counterexample was found or a claim errored (or the counterexample
reproduces on replay); 2 for usage errors (unknown optimizer, unimportable module, no
hyperparameters declared, bad option, a malformed counterexample file), with a one-line
message; 3 when nothing failed but some claim is *not verified* (too few decided cases,
e.g. every case inconclusive or no case at all, or an ``outside_hypotheses`` exemption
that measurement did not confirm).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NoReturn

from tabulate import tabulate

EXIT_OK, EXIT_COUNTEREXAMPLE, EXIT_USAGE, EXIT_NOT_VERIFIED = 0, 1, 2, 3
EXIT_NOTHING_VERIFIED = EXIT_NOT_VERIFIED  # the former name of status 3


class UsageError(Exception):
    """A one-line message for the user; exit status 2."""


def _fail(msg: str) -> NoReturn:
    raise UsageError(msg)


# -- regions ---------------------------------------------------------------------------------

#: values shown for the built-ins' hyperparameters, which have no defaults
DISPLAY_DEFAULTS = {"lr": 0.1, "momentum": 0.9, "rho": 0.5}


def _parse_assignments(items: Sequence[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            _fail(f"-p {item!r}: expected NAME=VALUE, e.g. -p beta=0.9")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            _fail(f"-p {item!r}: {value!r} is not a number")
    return out


def _hyperparameters_for(reg: Any, given: dict[str, float]
                         ) -> tuple[dict[str, Any], dict[str, str]]:
    """The values to build ``reg`` with, and where each came from (given, factory default,
    dynverify's display default). A required hyperparameter without a value: usage error."""
    import inspect

    try:
        params = inspect.signature(reg.factory).parameters.values()
    except (TypeError, ValueError):
        params = []
    hp: dict[str, Any] = {}
    source: dict[str, str] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        if p.name in given:
            hp[p.name], source[p.name] = given[p.name], "given"
        elif p.default is not p.empty:
            hp[p.name], source[p.name] = p.default, "factory default"
        elif p.name in DISPLAY_DEFAULTS:
            hp[p.name], source[p.name] = DISPLAY_DEFAULTS[p.name], "display default"
        else:
            _fail(f"{reg.name} needs a value for its hyperparameter {p.name!r}: "
                  f"give -p {p.name}=VALUE")
    return hp, source


def _fmt_hp(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v!r}"
                     for k, v in hp.items())


def _sources_line(used: list[tuple[str, dict[str, Any], dict[str, str]]]) -> str:
    """Which values were used: given, factory defaults, dynverify's display defaults."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, hp, source in used:
        for k, v in hp.items():
            groups[source[k]][f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v!r}"
                              ].append(name)
    parts = []
    for label, key in (("given", "given"), ("factory defaults", "factory default"),
                       ("dynverify's defaults", "display default")):
        if groups.get(key):
            vals = [v if key != "factory default" else f"{v} ({', '.join(names)})"
                    for v, names in groups[key].items()]
            parts.append(f"{label}: {', '.join(vals)}")
    return "hyperparameters: " + "; ".join(parts) + " (set any with -p NAME=VALUE)" \
        if parts else "hyperparameters: none"


def cmd_regions(args: argparse.Namespace) -> int:
    from dynverify.derive import derive_region, filter_function
    from dynverify.errors import NotDifferentiableError
    from dynverify.registry import registered
    from dynverify.summary import MARKDOWN_FORMATS, WarningCounter, table

    if args.plot:
        _require_matplotlib()  # before any work, so the message is all the user sees
    given = {k: v for k, v in (("lr", args.lr), ("momentum", args.momentum),
                               ("rho", args.rho)) if v is not None}
    given.update(_parse_assignments(args.param))
    regs = _resolve_all(args.names or sorted(registered()))
    rows, panels, used = [], [], []
    with WarningCounter() as seen:
        for reg in regs:
            hp, source = _hyperparameters_for(reg, given)
            try:
                opt = reg.build(**hp)
            except Exception as exc:  # noqa: BLE001 -- a plug-in factory that raises
                _fail(f"{reg.name}({_fmt_hp(hp)}): the factory raised "
                      f"{type(exc).__name__}: {exc}")
            used.append((reg.name, hp, source))
            declared = opt.region
            derived, rho_fn, why = None, None, None
            try:
                derived = derive_region(opt)
                derived_s = str(derived)
                rho_fn = filter_function(opt)
            except NotDifferentiableError:
                why = opt.outside_hypotheses or "map not C¹ at critical points"
                derived_s = "— (map not C¹ at critical points)"
            except Exception as exc:  # noqa: BLE001 -- a plug-in step that raises
                why = f"derivation failed: {type(exc).__name__}: {exc}"
                derived_s = f"error: {type(exc).__name__}: {exc}"
            if declared is None:
                declared_s = "none (outside hypotheses)" if opt.outside_hypotheses else "none"
                agree = "—"
            else:
                declared_s = str(declared)
                agree = "yes" if derived is not None and declared.isclose(derived) else "NO"
            if why is None and opt.outside_hypotheses:
                why = opt.outside_hypotheses
            rows.append([reg.name, _fmt_hp(hp), declared_s, derived_s, agree])
            panels.append(_Panel(reg.name, _fmt_hp(hp), rho_fn, declared, derived, why))
    print(table(rows, ["optimizer", "hyperparameters", "declared filter", "derived filter",
                       "agree"], args.format))
    if args.format in MARKDOWN_FORMATS:
        print()  # a blank line ends a Markdown table
    print(_sources_line(used))
    for line in seen.lines():
        print(line, file=sys.stderr)
    if args.plot:
        _plot(panels, args.plot)
        print(f"plot written to {args.plot}")
    bad = any(r[4] == "NO" or r[3].startswith("error:") for r in rows)
    return EXIT_COUNTEREXAMPLE if bad else EXIT_OK


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail("--plot needs matplotlib: pip install 'dynverify[plot]'")


class _Panel:
    """One optimizer in the --plot figure."""

    def __init__(self, name: str, hp: str, rho: Any, declared: Any, derived: Any,
                 why: str | None) -> None:
        self.name, self.hp, self.rho = name, hp, rho
        self.declared, self.derived, self.why = declared, derived, why

    def lam_range(self) -> tuple[float, float]:
        """A λ-range that shows every finite endpoint of both filters with a margin."""
        ends = [0.0]
        for region in (self.declared, self.derived):
            if region is not None:
                ends += [v for iv in region.intervals for v in iv if math.isfinite(v)]
        lo, hi = min(ends), max(ends)
        pad = 0.25 * max(hi - lo, 1.0)
        return lo - pad, hi + pad


def _shade(ax: Any, region: Any, lam: Any, **kw: Any) -> None:
    label = kw.pop("label")
    for lo, hi in region.intervals:
        lo, hi = max(lo, lam[0]), min(hi, lam[-1])
        if lo > hi:
            continue
        if lo == hi:
            ax.axvline(lo, lw=2, color=kw.get("color"), label=label)
        else:
            ax.axvspan(lo, hi, label=label, **kw)
        label = None  # one legend entry per filter


def _plot(panels: list[_Panel], path: str) -> None:
    _require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(panels)
    import textwrap

    fig, axes = plt.subplots(n, 1, figsize=(11, 2.3 * n + 0.4), squeeze=False)
    for ax, p in zip(axes[:, 0], panels, strict=True):
        title = f"{p.name} ({p.hp})"
        if p.rho is None:
            ax.set_axis_off()
            why = textwrap.fill(f"not drawn (outside the theorem's hypotheses): {p.why}", 110)
            ax.text(0.0, 0.5, f"{title}\n{why}", transform=ax.transAxes, va="center",
                    fontsize=9)
            continue
        lam = np.linspace(*p.lam_range(), 2001)
        with np.errstate(all="ignore"):
            r = np.asarray(p.rho(lam), dtype=float)
        ax.plot(lam, np.clip(r, 0, 10), lw=1.3, color="tab:blue",
                label="ρ(λ): spectral radius of the linearization")
        ax.axhline(1.0, color="k", lw=0.8, ls="--", label="ρ = 1 (stability boundary)")
        agree = p.declared is not None and p.derived is not None \
            and p.declared.isclose(p.derived)
        if agree:
            _shade(ax, p.derived, lam, color="tab:green", alpha=0.2,
                   label=f"filter, declared = derived: {p.derived}")
        else:
            if p.derived is not None:
                _shade(ax, p.derived, lam, color="tab:green", alpha=0.2,
                       label=f"derived filter (ρ ≤ 1): {p.derived}")
            if p.declared is not None:
                _shade(ax, p.declared, lam, facecolor="none", edgecolor="tab:red",
                       hatch="//", lw=0.8, label=f"declared filter: {p.declared}")
            title += "; declared and derived filters DIFFER" if p.declared is not None \
                else "; no declared filter"
        ax.set_xlim(lam[0], lam[-1])
        ax.set_ylim(0, 2.5)
        ax.set_ylabel("ρ(λ)")
        ax.set_xlabel("Hessian eigenvalue λ", fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- check -----------------------------------------------------------------------------------

def _resolve_all(names: Sequence[str]) -> list[Any]:
    from dynverify.registry import UnknownOptimizerError, resolve

    out = []
    for n in names:
        try:
            reg = resolve(n)
        except UnknownOptimizerError as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001 -- a plug-in module that fails on import
            _fail(f"cannot load {n!r}: {type(exc).__name__}: {exc}")
        out.append(reg)
    return out


def _require_hyperparameters(regs: Sequence[Any]) -> None:
    from dynverify.registry import missing_hyperparameters

    for reg in regs:
        missing = missing_hyperparameters(reg)
        if missing:
            _fail(missing)


def _exit_status(results: Sequence[Any]) -> int:
    """1 if a claim failed, else 3 if one is not verified (or there is none), else 0."""
    if any(r.status.failed for r in results):
        return EXIT_COUNTEREXAMPLE
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_NOT_VERIFIED


def cmd_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dynverify.check import run_claim
    from dynverify.claims import CLAIMS, Settings
    from dynverify.profiles import PROFILES
    from dynverify.profiles import resolve as resolve_profile
    from dynverify.records import RunWriter
    from dynverify.registry import registered
    from dynverify.summary import WarningCounter, render_text

    regs = _resolve_all(args.targets or sorted(registered()))
    _require_hyperparameters(regs)
    claims = args.claim or list(CLAIMS)
    for c in claims:
        if c not in CLAIMS:
            _fail(f"unknown claim {c!r}; known: {', '.join(CLAIMS)}")
    hs = resolve_profile(args.profile)
    settings = Settings(compare_filters=not args.no_compare_filters)
    writer = RunWriter(args.reports, meta={"profile": PROFILES[args.profile],
                                           "seed": args.seed,
                                           "settings": settings.to_json(),
                                           "optimizers": [r.name for r in regs],
                                           "claims": claims, "source": "cli"})
    results = []
    total = len(regs) * len(claims) * hs.max_examples
    if args.workers or args.scheduler or args.shards > 1:  # the same tasks, elsewhere
        from dynverify.errors import DynverifyError
        from dynverify.executor import run_check

        with tqdm(total=len(regs) * len(claims) * args.shards, unit="task", file=sys.stderr,
                  disable=args.quiet or None, leave=False) as bar:
            try:
                results = run_check(regs, claims, profile=args.profile, seed=args.seed,
                                    shards=args.shards, writer=writer, workers=args.workers,
                                    settings=settings.to_json(),
                                    scheduler=args.scheduler, on_task=lambda _: bar.update(1))
            except DynverifyError as exc:
                writer.close()
                _fail(f"{exc} (records so far: {writer.dir})")
    with tqdm(total=total, unit="case", disable=args.quiet or None, file=sys.stderr,
              leave=False) as bar, WarningCounter() as seen:
        for reg in regs if not results else ():
            for claim in claims:
                bar.set_description(f"{reg.name}/{claim}")
                done = bar.n

                def tick(_: Any) -> None:
                    bar.update(1)

                res = run_claim(reg, claim, hypothesis_settings=hs, writer=writer,
                                on_case=tick, seed=args.seed, settings=settings)
                bar.update(max(0, done + hs.max_examples - bar.n))
                results.append(res)
    writer.summary({"results": [r.to_json() for r in results]})
    writer.close()
    print(render_text(results, fmt=args.format, optimizers=[r.name for r in regs]))
    for line in seen.lines():
        print(line, file=sys.stderr)
    status = _exit_status(results)
    print(f"records: {writer.dir}")
    return status


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


def claim_results(records: Any) -> list[Any]:
    """Per optimizer × claim results from run records, by the same rules as ``check``:
    counts and reasons from the case lines, closest |r − 1| over decided cases (passes and
    counterexamples), errors from the summaries, counterexamples from their files."""
    from dynverify.check import ClaimResult

    results: dict[tuple[str, str], ClaimResult] = {}

    def get(name: str, claim: str) -> ClaimResult:
        return results.setdefault((name, claim), ClaimResult(name, claim))

    for c in records.cases:
        try:
            name, claim, outcome = c["optimizer"]["name"], c["claim"], c["outcome"]
        except (KeyError, TypeError):
            name = claim = outcome = None
        if not all(isinstance(v, str) for v in (name, claim, outcome)):
            records.problems.append(f"case record without optimizer/claim/outcome: {c!r:.80}")
            continue
        r = get(name, claim)
        r.counts[outcome] += 1
        if outcome == "inconclusive":
            r.reasons[str(c.get("reason"))] += 1
        rad = c.get("spectral_radius")
        if isinstance(rad, (int, float)) and outcome != "inconclusive":
            r.closest = min(r.closest, abs(rad - 1))
    for s in records.summaries:
        if s.get("error") and isinstance(s.get("optimizer"), str):
            get(s["optimizer"], str(s.get("claim"))).error = str(s["error"])
    for rec in records.counterexamples:
        name = rec.get("optimizer", {}).get("name")
        if isinstance(name, str):
            r = get(name, str(rec.get("claim")))
            r.counterexample, r.counterexample_path = rec, rec.get("_path")
    return list(results.values())


def build_report(records: Any) -> dict[str, Any]:
    """Summary tables (as data, rows with field names) from run records alone.

    ``claims``: per optimizer × claim (the columns of the summary table, plus reasons,
    error and counterexample file); ``spectra``: per optimizer, the hyperparameter ranges,
    the filters seen, and the eigenvalues planted at stable (r ≤ 1) and unstable (r > 1)
    points; ``counterexamples``; ``problems``; ``runs``.
    """
    from dynverify.summary import ordered

    optimizers = [o for m in records.meta for o in (m.get("optimizers") or [])
                  if isinstance(o, str)]
    results = ordered(claim_results(records), optimizers)
    filters: dict[str, list[str]] = defaultdict(list)
    hps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    inside: dict[str, list[float]] = defaultdict(list)
    outside: dict[str, list[float]] = defaultdict(list)
    for c in records.cases:
        opt = c.get("optimizer")
        if not isinstance(opt, dict) or not isinstance(opt.get("name"), str):
            continue
        name = opt["name"]
        if isinstance(opt.get("hyperparameters"), dict):
            hps[name].append(opt["hyperparameters"])
        if isinstance(c.get("region"), str) and c["region"] and c["region"] not in filters[name]:
            filters[name].append(c["region"])
        spec, r = c.get("spectrum"), c.get("spectral_radius")
        if isinstance(spec, list) and isinstance(r, (int, float)):
            (inside if r <= 1 else outside)[name].extend(
                float(v) for v in spec if isinstance(v, (int, float)))
    claims = [{"optimizer": r.optimizer, "claim": r.claim, "cases": sum(r.counts.values()),
               "pass": r.counts["pass"], "counterexample": r.counts["counterexample"],
               "inconclusive": r.counts["inconclusive"],
               "closest": r.closest if math.isfinite(r.closest) else None,
               "reasons": dict(r.reasons.most_common()), "error": r.error,
               "counterexample_file": r.counterexample_path} for r in results]
    spectra = []
    for o in dict.fromkeys(r.optimizer for r in results):
        f = filters[o]
        spectra.append({"optimizer": o, "hyperparameters": _ranges(hps[o]),
                        "filters": (f"{len(f)} distinct, e.g. {f[0]}" if len(f) > 1
                                    else f[0]) if f else "—",
                        "stable": _spread(inside[o]), "unstable": _spread(outside[o])})
    cexs = []
    for rec in records.counterexamples:
        v = rec.get("verdict", {})
        ev = v.get("evidence") if isinstance(v.get("evidence"), dict) else {}
        cexs.append({"claim": rec.get("claim"), "optimizer": rec.get("optimizer", {}).get("name"),
                     "hyperparameters": rec.get("optimizer", {}).get("hyperparameters"),
                     "reason": v.get("reason"),
                     "function": str(rec.get("function_repr", ""))[:100],
                     "spectrum": ev.get("spectrum", rec.get("spectrum")),
                     "file": rec.get("_path")})
    return {"runs": [str(p) for p in records.paths], "claims": claims, "spectra": spectra,
            "counterexamples": cexs, "problems": list(records.problems),
            "_results": results}


def cmd_report(args: argparse.Namespace) -> int:
    from dynverify.records import default_root, latest_run, read_runs
    from dynverify.summary import render_text, table

    paths = args.runs
    for p in paths:
        if not os.path.isdir(p):
            _fail(f"{p}: not a run directory")
    if not paths:
        root = args.reports or default_root()
        latest = latest_run(root)
        if latest is None:
            _fail(f"no run directories under {root}; run `dynverify check` first")
        paths = [str(latest)]
    rep = build_report(read_runs(paths))
    results = rep.pop("_results")
    if args.format == "json":
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        fmt = {"plain": "simple"}.get(args.format, args.format)
        print(f"runs: {', '.join(rep['runs'])}\n")
        if results:
            print(render_text(results, fmt=fmt))
            print()
            print(table([list(s.values()) for s in rep["spectra"]],
                        ["optimizer", "hyperparameters", "filters",
                         "eigenvalues at stable points (r ≤ 1)", "at unstable points (r > 1)"],
                        fmt, maxcolwidths=[None, 40, 40, None, None]))
        if rep["counterexamples"]:
            print()
            print(table([[c["claim"], c["optimizer"], json.dumps(c["hyperparameters"]),
                          c["reason"], c["function"], json.dumps(c["spectrum"]), c["file"]]
                         for c in rep["counterexamples"]],
                        ["claim", "optimizer", "hyperparameters", "reason", "minimal function",
                         "spectrum", "file"], fmt))
    for p in rep["problems"]:
        print(f"warning: {p}", file=sys.stderr)
    if not results:
        print(f"found no case records in {', '.join(rep['runs'])}: nothing was verified",
              file=sys.stderr)
        return EXIT_NOTHING_VERIFIED
    status = _exit_status(results)
    if status == EXIT_NOT_VERIFIED:
        n = sum(not r.ok for r in results)
        print(f"not verified: {n} of {len(results)} optimizer × claim results (see why above)",
              file=sys.stderr)
    return status


# -- replay ----------------------------------------------------------------------------------

def cmd_replay(args: argparse.Namespace) -> int:
    from dynverify.check import replay
    from dynverify.errors import ReportError
    from dynverify.experiments.cli import replay_if_experiment
    from dynverify.summary import WarningCounter

    if (status := replay_if_experiment(args.file)) is not None:
        return status
    with WarningCounter() as seen:
        try:
            rep = replay(args.file)
        except ReportError as exc:
            _fail(str(exc))
    for line in seen.lines():
        print(line, file=sys.stderr)
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

    r = sub.add_parser("regions", help="declared vs derived filter of each optimizer",
                       description="Declared against derived eigenvalue filter of each "
                       "optimizer. Hyperparameters: the factory's defaults where it has "
                       "them, else lr=0.1, momentum=0.9, rho=0.5; override any with -p.")
    r.add_argument("names", nargs="*", metavar="NAME | module:factory",
                   help="optimizers (default: all registered)")
    r.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a hyperparameter value, e.g. -p beta=0.9 (repeatable)")
    r.add_argument("--lr", type=float, default=None, help="same as -p lr=X")
    r.add_argument("--momentum", type=float, default=None, help="same as -p momentum=X")
    r.add_argument("--rho", type=float, default=None, help="same as -p rho=X")
    r.add_argument("--plot", metavar="FILE.png",
                   help="draw λ ↦ ρ(λ) per optimizer with its filters (needs dynverify[plot])")
    r.add_argument("--format", default="simple",
                   help="table format: a tabulate name (simple, github, ...) or markdown")
    r.set_defaults(func=cmd_regions)

    c = sub.add_parser("check", help="run the claims through Hypothesis and record the run",
                       description="Run the claims on each optimizer through Hypothesis, "
                       "record every case and print the summary table.")
    c.add_argument("targets", nargs="*", metavar="NAME | module:factory",
                   help="optimizers (default: all registered)")
    c.add_argument("--profile", choices=["dev", "ci", "deep"], default="ci",
                   help="dynverify's Hypothesis profile: dev (20 cases per claim), "
                        "ci (40, derandomized: the same cases every run; default), "
                        "deep (1000, searching toward the stability boundary r = 1)")
    c.add_argument("--reports", metavar="DIR", default=None,
                   help="directory of run directories (default: $DYNVERIFY_REPORTS, "
                        "else reports/runs)")
    c.add_argument("--seed", type=int, default=None,
                   help="Hypothesis seed (replaces the profile's derandomization)")
    c.add_argument("--claim", action="append", metavar="NAME",
                   help="run only this claim; repeat for several (default: all five)")
    c.add_argument("--format", default="simple",
                   help="table format: a tabulate name (simple, github, ...) or markdown")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--no-compare-filters", action="store_true",
                   help="judge a declared filter by sampled spectra only (claim 1 does not "
                        "compare it with the derived filter)")
    c.add_argument("--workers", type=int, default=None, help="local worker processes")
    c.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://host:8786")
    c.add_argument("--shards", type=int, default=1,
                   help="split each optimizer × claim into this many seeded Hypothesis runs")
    c.set_defaults(func=cmd_check)

    rp = sub.add_parser("report", help="summary tables from recorded runs")
    rp.add_argument("runs", nargs="*", metavar="RUN_DIR", help="default: the latest run")
    rp.add_argument("--reports", metavar="DIR", default=None,
                    help="where to look for the latest run (default: $DYNVERIFY_REPORTS, "
                         "else reports/runs)")
    rp.add_argument("--format", choices=["plain", "github", "markdown", "json"],
                    default="plain")
    rp.set_defaults(func=cmd_report)

    rl = sub.add_parser("replay", help="re-run a counterexample JSON file")
    rl.add_argument("file")
    rl.set_defaults(func=cmd_replay)

    from dynverify import phase_cli
    phase_cli.add_subcommand(sub)
    from dynverify.experiments.cli import add_subcommand as add_experiment
    add_experiment(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "format", None) == "markdown":
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
