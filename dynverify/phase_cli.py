"""``dynverify phase``: the command-line face of :func:`dynverify.phase.phase_diagram`."""

from __future__ import annotations

import re
import sys
from typing import Any, NoReturn

from dynverify.phase import phase_diagram

# -- parser -------------------------------------------------------------------------------------

_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$")


def _assignment(text: str) -> tuple[str, str]:
    m = _ASSIGN.match(text)
    if not m:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    return m.group(1), m.group(2).strip()


def add_subcommand(subparsers: Any) -> Any:
    """Add ``dynverify phase`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "phase", help="measured convergence over (λ, hyperparameter) with the filter on top",
        description="Grids: a:b:n (linear), a:b:n:log (geometric, drawn on a log axis) or "
                    "v1,v2,... .")
    # grids such as "-10:100:49" are values, not options (argparse only knows plain numbers)
    p._negative_number_matcher = re.compile(r"^-\d[\d.eE+\-:,]*(:log)?$|^-\.\d")
    p.add_argument("name", metavar="NAME | module:factory")
    p.add_argument("--vary", required=True, metavar="H=GRID",
                   help="the varied hyperparameter, e.g. lr=0.01:0.5:25 or lr=1e-3:1:25:log")
    p.add_argument("--lam", default="-10:100:49", metavar="GRID",
                   help="eigenvalue grid (default -10:100:49)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="H=VALUE",
                   help="a fixed hyperparameter, e.g. -p rho=0.5 (repeatable)")
    p.add_argument("--starts", type=int, default=64, help="initial points per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE.png", help="draw the diagram")
    p.add_argument("--data", metavar="FILE.json", help="save the diagram as JSON")
    p.add_argument("--workers", type=int, default=None, help="local worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://host:8786")
    p.add_argument("--reports", metavar="DIR", default=None,
                   help="directory of run directories (default: reports/runs)")
    p.add_argument("--format", default="simple", help="table format (tabulate names)")
    p.set_defaults(func=cmd_phase)
    return p


def cmd_phase(args: Any) -> int:
    """The handler of ``dynverify phase`` (prints; the library does not)."""
    from tabulate import tabulate

    from dynverify.cli import UsageError
    from dynverify.errors import DynverifyError
    from dynverify.registry import UnknownOptimizerError

    def fail(msg: str) -> NoReturn:
        raise UsageError(msg)

    try:
        param, grid = _assignment(args.vary)
        fixed = {}
        for text in args.param:
            k, v = _assignment(text)
            fixed[k] = float(v)
    except ValueError as exc:
        return fail(f"phase: {exc}")
    if args.out:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return fail("--out needs matplotlib: pip install 'dynverify[plot]'")
    try:
        d = phase_diagram(args.name, args.lam, {param: grid}, fixed, starts=args.starts,
                          seed=args.seed, workers=args.workers, scheduler=args.scheduler,
                          reports=args.reports if args.reports is not None else
                          "reports/runs")
    except (ValueError, TypeError, UnknownOptimizerError, DynverifyError) as exc:
        return fail(f"phase: {exc}")
    hp = ", ".join(f"{k}={v:g}" for k, v in fixed.items())
    print(f"{d.optimizer}({hp}{', ' if hp else ''}{param} ∈ [{min(d.values):.4g}, "
          f"{max(d.values):.4g}]), λ ∈ [{min(d.lam):.4g}, {max(d.lam):.4g}], "
          f"{d.starts} starts per cell")
    for n in d.notes:
        print(f"note: {n}")
    print(tabulate(d.summary_rows(), headers=["agreement", ""], tablefmt=args.format))
    for path in d.counterexample_paths:
        print(f"counterexample: dynverify replay {path}")
    if args.data:
        d.save(args.data)
        print(f"data: {args.data}", file=sys.stderr)
    if args.out:
        d.plot(args.out)
        print(f"plot: {args.out}", file=sys.stderr)
    print(f"records: {d.run_dir}", file=sys.stderr)
    return 1 if d.counterexamples else 0
