"""Run directories: one JSON line per checked case, one JSON + Markdown file per counterexample.

Layout of ``<root>/<run-id>/`` (schema in reports/README.md)::

    meta.json                     run id, start time, versions, profile
    cases-<worker>.jsonl          one line per case, flushed as it is written
    counterexamples/<id>.json     everything needed to rebuild and replay the case
    counterexamples/<id>.md       the same, for people
    summary-<worker>.json         per optimizer × claim counts, written at the end

Each writer (one per process; pytest-xdist workers have their own ``<worker>``) only
appends to its own files, and whole files are written to a temporary name and renamed,
so an interrupted or parallel run never leaves a half-written or interleaved record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynverify.errors import ReportError

CASE_SCHEMA = "dynverify.case/1"
COUNTEREXAMPLE_SCHEMA = "dynverify.counterexample/1"
DEFAULT_ROOT = Path("reports") / "runs"
#: environment variable that moves the default records directory
ROOT_VARIABLE = "DYNVERIFY_REPORTS"


def default_root() -> Path:
    """Where run directories go by default: ``$DYNVERIFY_REPORTS``, else ``reports/runs``
    under the working directory (a project's root when pytest or the CLI runs there)."""
    env = os.environ.get(ROOT_VARIABLE)
    return Path(env) if env else DEFAULT_ROOT


def new_run_id() -> str:
    """A sortable, unique run id: UTC time (to the microsecond) plus process id."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{now.microsecond:06d}-{os.getpid()}"


def _finite(x: Any) -> Any:
    """x with non-finite floats as strings ("nan", "inf"), so every line is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _dumps(record: dict[str, Any], **kw: Any) -> str:
    try:
        return json.dumps(record, allow_nan=False, default=str, **kw)
    except ValueError:  # a NaN or inf somewhere: record it as a string, never lose the case
        return json.dumps(_finite(record), allow_nan=False, default=str, **kw)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunWriter:
    """Appends the records of one process to a run directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None, run_id: str | None = None,
                 worker: str = "main", meta: dict[str, Any] | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.worker = worker
        self.dir = Path(root if root is not None else default_root()) / self.run_id
        (self.dir / "counterexamples").mkdir(parents=True, exist_ok=True)
        meta_path = self.dir / "meta.json"
        if not meta_path.exists():
            info = {"run_id": self.run_id, "started": _dt.datetime.now(_dt.timezone.utc)
                    .isoformat(timespec="seconds"), "python": platform.python_version(),
                    **(meta or {})}
            try:
                with open(meta_path, "x", encoding="utf-8") as fh:
                    json.dump(info, fh, indent=2)
            except FileExistsError:  # another worker of the same run was first
                pass
        self._cases: Any = None  # opened on the first case

    def case(self, record: dict[str, Any]) -> None:
        """Append one case line and flush it to disk."""
        line = _dumps({"schema": CASE_SCHEMA, "run_id": self.run_id, "worker": self.worker,
                       **record})
        if self._cases is None:
            self._cases = open(self.dir / f"cases-{self.worker}.jsonl", "a", encoding="utf-8")
        self._cases.write(line + "\n")
        self._cases.flush()

    def counterexample(self, record: dict[str, Any]) -> Path:
        """Write a counterexample JSON and its Markdown rendering; return the JSON path."""
        record = {"schema": COUNTEREXAMPLE_SCHEMA, "run_id": self.run_id, **record}
        text = _dumps(record, indent=2)
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        # names may contain ':' or '/' (module:factory plug-ins): keep the file name plain
        stem = _safe_name(f"{record['claim']}-{record['optimizer']['name']}-{self.worker}-{digest}")
        path = self.dir / "counterexamples" / f"{stem}.json"
        record["reproduce"] = {**record.get("reproduce", {}),
                               "command": f"dynverify replay {path}"}
        _atomic_write(path, _dumps(record, indent=2))
        _atomic_write(path.with_suffix(".md"), render_markdown(record))
        return path

    def summary(self, data: dict[str, Any]) -> Path:
        path = self.dir / f"summary-{self.worker}.json"
        _atomic_write(path, _dumps(data, indent=2))
        return path

    def close(self) -> None:
        if self._cases is not None:
            self._cases.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_limit(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The first failing limit of a claim-4 style counterexample (x, eigenvalues, …)."""
    for key in ("noncritical_limits", "failing_limits"):
        if ev.get(key):
            return {k: v for k, v in ev[key][0].items() if k != "fact"}
    return None


def render_markdown(rec: dict[str, Any]) -> str:
    """A counterexample record as Markdown for people."""
    v = rec.get("verdict", {})
    ev = v.get("evidence", {})
    opt = rec.get("optimizer", {})
    hp = ", ".join(f"{k}={val!r}" for k, val in opt.get("hyperparameters", {}).items())
    lines = [
        f"# Counterexample: `{rec.get('claim')}` for `{opt.get('name')}({hp})`",
        "",
        f"**{ev.get('key_fact') or v.get('reason')}**",
        "",
        f"**Verdict:** {v.get('outcome')} — {v.get('reason')}",
        "",
        "| | |", "|---|---|",
        f"| optimizer | `{opt.get('name')}({hp})` (source: {opt.get('source')}) |",
        *([f"| failing limit | `{json.dumps(_first_limit(ev), ensure_ascii=False)}` |"]
          if _first_limit(ev) else []),
        f"| filter | {ev.get('region_str', '—')} |",
        *([f"| filter derived from the update | {ev['derived_region']} |"]
          if "derived_region" in ev else []),
        *([f"| witness | {ev['witness']} |"] if "witness" in ev else []),
        f"| planted point x̄ | `{rec.get('x_star')}` |",
        f"| Hessian spectrum | `{ev.get('spectrum', rec.get('spectrum'))}` |",
        f"| predicted spectral radius r | {ev.get('spectral_radius', '—')} |",
        f"| predicted | {ev.get('predicted', '—')} |",
        f"| observed | `{json.dumps(ev.get('observed', {}))}` |",
        f"| budget | {ev.get('budget', '—')} steps |",
        f"| initial points | {len(rec.get('X0') or [])} |",
        "",
        "## Function", "", f"`{rec.get('function_repr', '')}`", "",
        "```json", json.dumps(rec.get("function"), indent=1)[:4000], "```", "",
        "## Evidence", "", "```json", json.dumps(ev, indent=1, default=str)[:6000], "```", "",
        "## Settings (tolerances and budgets)", "", "```json",
        json.dumps(v.get("settings", {}), indent=1), "```", "",
        "## Reproduce", "",
        f"    {rec.get('reproduce', {}).get('command', 'dynverify replay FILE.json')}", "",
    ]
    blob = rec.get("reproduce", {}).get("hypothesis")
    if blob:
        lines += ["Hypothesis reproduction (decorate the property test with it):", "",
                  f"    {blob}", ""]
    return "\n".join(lines)


@dataclass
class RunRecords:
    """Everything read back from one or more run directories."""

    paths: list[Path]
    cases: list[dict[str, Any]] = field(default_factory=list)
    counterexamples: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)
    #: the per optimizer × claim results of each summary-*.json (errors live only there)
    summaries: list[dict[str, Any]] = field(default_factory=list)


def _jsonl(path: Path, problems: list[str]) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{n}: malformed line skipped ({exc.msg})")
                continue
            if not isinstance(obj, dict) or obj.get("schema") != CASE_SCHEMA:
                problems.append(f"{path}:{n}: not a case record, skipped")
                continue
            yield obj


def read_counterexample(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate one counterexample JSON file (ReportError if malformed)."""
    p = Path(path)
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReportError(f"{p}: no such file") from exc
    except OSError as exc:  # a directory, no permission, ...
        raise ReportError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(rec, dict) or rec.get("schema") != COUNTEREXAMPLE_SCHEMA:
        raise ReportError(f"{p}: not a dynverify counterexample (schema "
                          f"{rec.get('schema') if isinstance(rec, dict) else None!r})")
    for key in ("claim", "optimizer", "verdict"):
        if key not in rec:
            raise ReportError(f"{p}: counterexample lacks {key!r}")
    opt = rec["optimizer"]
    if not isinstance(rec["claim"], str):
        raise ReportError(f"{p}: 'claim' must be a string")
    if not isinstance(opt, dict) or not isinstance(opt.get("name"), str):
        raise ReportError(f"{p}: 'optimizer' must be an object with a string 'name'")
    if not isinstance(opt.get("hyperparameters", {}), dict):
        raise ReportError(f"{p}: 'optimizer.hyperparameters' must be an object")
    if not isinstance(rec["verdict"], dict) or not isinstance(rec["verdict"].get("settings", {}),
                                                                dict):
        raise ReportError(f"{p}: 'verdict' must be an object (with 'settings' an object)")
    return rec


def read_runs(paths: list[str | os.PathLike[str]]) -> RunRecords:
    """Read run directories; malformed lines and files are listed in ``problems``."""
    out = RunRecords(paths=[Path(p) for p in paths])
    for d in out.paths:
        if not d.is_dir():
            out.problems.append(f"{d}: not a run directory")
            continue
        meta = d / "meta.json"
        if meta.exists():
            try:
                out.meta.append(json.loads(meta.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                out.problems.append(f"{meta}: malformed ({exc})")
        for f in sorted(d.glob("cases-*.jsonl")):
            try:
                out.cases.extend(_jsonl(f, out.problems))
            except OSError as exc:  # unreadable: report it, keep the lines read so far
                out.problems.append(f"{f}: cannot read ({exc.strerror or exc}) — skipped")
        for f in sorted(d.glob("summary-*.json")):
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                out.problems.append(f"{f}: malformed summary skipped ({exc})")
                continue
            results = data.get("results") if isinstance(data, dict) else None
            out.summaries.extend(r for r in results or [] if isinstance(r, dict))
        for f in sorted((d / "counterexamples").glob("*.json")):
            try:
                rec = read_counterexample(f)
            except ReportError as exc:
                out.problems.append(f"{exc} — skipped")
                continue
            rec["_path"] = str(f)
            out.counterexamples.append(rec)
    return out


def latest_run(root: str | os.PathLike[str] | None = None) -> Path | None:
    """The most recent run directory under root (by name, which sorts by time).

    Only directories that hold run records count (a stray folder is not "the latest run").
    """
    base = Path(root if root is not None else default_root())
    runs = sorted(p for p in base.glob("*") if p.is_dir() and _is_run_dir(p)) \
        if base.is_dir() else []
    return runs[-1] if runs else None


def _is_run_dir(p: Path) -> bool:
    return (p / "meta.json").exists() or any(p.glob("cases-*.jsonl"))
