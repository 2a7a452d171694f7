"""The summary of a run as text: one rendering for ``dynverify check``, ``dynverify report``,
the pytest plugin's terminal summary and ``str(CheckResult)``.

Rows are claim results (anything with the fields of :class:`dynverify.check.ClaimResult`),
in a fixed order: optimizers as given (or as first met), claims in the logical order of
:data:`dynverify.claims.CLAIMS`. A column is a header and a function of a result, so a new
column is one line in :data:`COLUMNS`. Under the table: why cases were inconclusive (the
top reasons per optimizer × claim), the errors, and each counterexample with its replay
command. Library code: builds strings, never prints.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from dynverify.claims import CLAIMS


@dataclass(frozen=True)
class Column:
    """One column of the summary table: its header and the cell of a claim result."""

    header: str
    cell: Callable[[Any], Any]


def _closest(r: Any) -> str:
    c = r.closest
    return f"{c:.3g}" if isinstance(c, (int, float)) and math.isfinite(c) else "—"


def _decided(r: Any) -> str:
    """(pass + counterexample) / cases, in percent."""
    n = sum(r.counts.values())
    return f"{100 * (r.counts.get('pass', 0) + r.counts.get('counterexample', 0)) / n:.0f}%" \
        if n else "—"


def _status(r: Any) -> str:
    """The status; a "verified" claim some of whose cases were outside the theorem's
    hypotheses says how many (normalized SAM: only its ρ = 0 cases, plain gradient
    descent, were judged)."""
    text = r.status.value
    outside = (r.reasons or {}).get("outside-hypotheses", 0)
    if text == "verified" and outside:
        text += f" ({outside} outside hyp.)"
    return text


#: the summary table's columns, in order
COLUMNS: list[Column] = [
    Column("optimizer", lambda r: r.optimizer),
    Column("claim", lambda r: r.claim),
    Column("cases", lambda r: sum(r.counts.values())),
    Column("pass", lambda r: r.counts.get("pass", 0)),
    Column("counterexample", lambda r: r.counts.get("counterexample", 0)),
    Column("inconclusive", lambda r: r.counts.get("inconclusive", 0)),
    Column("decided", _decided),
    Column("closest |r-1|", _closest),
    Column("status", _status),
]

#: tabulate formats that are Markdown tables (a literal "|" in a cell must be escaped)
MARKDOWN_FORMATS = {"pipe", "github", "markdown"}


def headers() -> list[str]:
    return [c.header for c in COLUMNS]


def row(result: Any) -> list[Any]:
    """The cells of one claim result."""
    return [c.cell(result) for c in COLUMNS]


def ordered(results: Iterable[Any], optimizers: Sequence[str] | None = None) -> list[Any]:
    """Results sorted by optimizer (the given order, else first appearance) then by claim
    in the logical order of CLAIMS (unknown claims last, alphabetically)."""
    results = list(results)
    order = {name: i for i, name in enumerate(dict.fromkeys(
        [*(optimizers or []), *(r.optimizer for r in results)]))}
    claim_order = {c: i for i, c in enumerate(CLAIMS)}
    return sorted(results, key=lambda r: (order[r.optimizer],
                                          claim_order.get(r.claim, len(claim_order)),
                                          r.claim))


def escape_markdown(value: Any) -> Any:
    """A cell with its pipes escaped, so that a Markdown table keeps its columns."""
    return value.replace("|", "\\|") if isinstance(value, str) else value


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], fmt: str = "simple",
          **kw: Any) -> str:
    """tabulate, with cells and headers escaped for Markdown formats."""
    if fmt in MARKDOWN_FORMATS:
        fmt = "pipe" if fmt == "markdown" else fmt
        rows = [[escape_markdown(v) for v in r] for r in rows]
        header = [escape_markdown(h) for h in header]
    return tabulate(rows, headers=list(header), tablefmt=fmt, **kw)


def summary_table(results: Iterable[Any], fmt: str = "simple") -> str:
    return table([row(r) for r in results], headers(), fmt)


def reason_lines(results: Iterable[Any], top: int = 3) -> list[str]:
    """Why cases were inconclusive: the ``top`` reasons of each optimizer × claim."""
    lines = []
    for r in results:
        n = r.counts.get("inconclusive", 0)
        if not n or not r.reasons:
            continue
        reasons = Counter(r.reasons).most_common()
        shown = ", ".join(f"{why} ({k})" for why, k in reasons[:top])
        more = f", {len(reasons) - top} more" if len(reasons) > top else ""
        lines.append(f"  {r.optimizer}/{r.claim}: {shown}{more}")
    return ["inconclusive, why:", *lines] if lines else []


def finding_lines(results: Iterable[Any]) -> list[str]:
    """Errors, counterexamples (key fact, reason, how to replay) and why a claim is not
    verified."""
    lines = []
    for r in results:
        if r.error:
            lines.append(f"error {r.optimizer}/{r.claim}: {r.error}")
        if r.counterexample or r.counterexample_path:
            v = r.counterexample.get("verdict", {}) if isinstance(r.counterexample, dict) else {}
            why = v.get("reason", "see the record")
            ev = v.get("evidence", {}) if isinstance(v.get("evidence"), dict) else {}
            # the one fact that makes it a counterexample first (a broken optimizer: what
            # broke), then the reason
            fact = ev.get("key_fact") or (f"{why}: {ev['error']}" if ev.get("error") else why)
            lines.append(f"counterexample {r.optimizer}/{r.claim}: {fact}"
                         + (f" ({why})" if why not in fact else ""))
            lines.append(f"    {replay_hint(r)}")
        elif not r.error and not r.ok:
            lines.append(f"not verified {r.optimizer}/{r.claim}: {r.why_not_verified()}")
    return lines


def replay_hint(r: Any) -> str:
    """How to replay a result's counterexample, or why it cannot be replayed."""
    rec = r.counterexample if isinstance(r.counterexample, dict) else {}
    why_not = rec.get("optimizer", {}).get("not_replayable")
    if why_not:
        return f"not replayable from another process: {why_not}"
    if r.counterexample_path:
        return f"dynverify replay {r.counterexample_path}"
    return "no record written (reports=None): run with records to replay it"


def render_text(results: Iterable[Any], *, run_dir: str | None = None, fmt: str = "simple",
                optimizers: Sequence[str] | None = None) -> str:
    """The table, the reasons, the findings and where the records are."""
    results = ordered(results, optimizers)
    below = reason_lines(results) + finding_lines(results)
    if fmt in MARKDOWN_FORMATS:  # a blank line ends the table; the rest is a list
        below = [f"- {ln.strip()}" for ln in below]
        below = [""] + below if below else below
    parts = [summary_table(results, fmt), *below]
    if run_dir:
        parts.append(f"records: {run_dir}")
    return "\n".join(parts)


# -- warnings ------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


class WarningCounter:
    """Collects warnings instead of showing them; :meth:`lines` collapses them.

    Warnings that differ only in numbers (hyperparameters, eigenvalues) are one kind, so
    27 DerivationWarnings for 27 drawn step sizes are one line with a count, and numpy's
    floating-point RuntimeWarnings never reach the terminal one by one.

    Example::

        with WarningCounter() as seen:
            run()
        for line in seen.lines(): ...
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.example: dict[tuple[str, str], str] = {}

    def __enter__(self) -> WarningCounter:
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._show
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)

    def _show(self, message: Any, category: type[Warning], *args: Any, **kw: Any) -> None:
        msg = " ".join(str(message).split())
        key = (category.__name__, _NUMBER.sub("#", msg))
        self.counts[key] += 1
        self.example.setdefault(key, msg)

    def lines(self) -> list[str]:
        """One line per kind of warning, most frequent first."""
        out = []
        for key, n in self.counts.most_common():
            name, msg = key[0], self.example[key][:160]
            out.append(f"warning: {name} ×{n}, e.g. {msg}" if n > 1 else
                       f"warning: {name}: {msg}")
        return out
