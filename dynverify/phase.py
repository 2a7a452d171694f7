"""Phase diagrams: measured convergence over (λ, hyperparameter) with the filter on top.

For every cell (λ, h) of a grid, the optimizer with hyperparameter h runs from ``starts``
initial points near a planted critical point x̄ of

    f(x) = ½λu² + c₃u³ + c₄u⁴,   u = x − x̄   (a 1-D :class:`PlantedFunction`),

so ∇²f(x̄) = λ exactly while the higher-order terms make the dynamics genuinely
nonlinear (and give f other critical points a run may converge to instead). The fraction
of runs that converge to x̄, converge elsewhere, escape (or become non-finite) and stay
undecided is measured with :func:`dynverify.engine.run`.

The theorem predicts: outside the filter R no run converges to x̄ (the set of such starts
has measure zero); inside R (Ostrowski) runs started close enough converge. Cells whose
per-eigenvalue spectral radius is within the boundary band, |ρ₁(λ) − 1| < δ, are
undecidable and only marked. A disagreement outside the band is a counterexample,
recorded (JSON + Markdown, ``dynverify replay``-able) like those of ``dynverify check``.

Start ball. The starts lie in the region where the quadratic part dominates
(``PlantedFunction.quadratic_radius``) divided by the map's measured amplification: a
SAM-type map evaluates ∇f at x + ρ∇f(x) ≈ x̄ + (1 + ρλ)u, so one step of two-step USAM
looks (1 + ρλ)² times farther from x̄ than its start. Budgets follow the predicted rate.

Every cell's randomness comes from ``derive_seed(seed, i, j)``, so the result does not
depend on how cells are grouped into tasks or where the tasks run.

Example::

    d = dynverify.phase_diagram("gradient_descent", lam="-1:5:13", vary={"lr": "0.2:1:5"})
    d.agreement()["outside_with_convergence"]      # 0
    d.plot("gd.png")                                # needs dynverify[plot]
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynverify.claims import DEFAULT_SETTINGS, Settings

#: initial points never lie farther than this from x̄ (as in the local claims)
LOCAL_RADIUS = 1e-2
#: the start ball is where the nonlinear part of ∇f is below REL × |λ|·‖u‖
REL = 0.01
#: fraction names, in the order of the ``counts`` arrays
OUTCOMES = ("target", "elsewhere", "escaped", "undecided")
SCHEMA = "dynverify.phase/1"


# -- grids -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """Grid values and whether they are log-spaced (for the plot's axis)."""

    values: tuple[float, ...]
    log: bool = False


def parse_grid(text: str | Sequence[float] | Grid, what: str = "grid") -> Grid:
    """``"a:b:n"`` (n points, linear), ``"a:b:n:log"`` (geometric), ``"v1,v2,..."`` or values.

    Example:
        >>> parse_grid("1e-3:1:4:log").values
        (0.001, 0.01, 0.1, 1.0)
    """
    if isinstance(text, Grid):
        return text
    if not isinstance(text, str):
        vals = tuple(float(v) for v in np.asarray(text, dtype=float).ravel())
        if not vals or not all(math.isfinite(v) for v in vals):
            raise ValueError(f"{what}: need at least one finite value, got {text!r}")
        return Grid(vals, _looks_geometric(vals))
    s = text.strip()
    parts = s.split(":")
    try:
        if len(parts) == 1:
            vals = tuple(float(v) for v in s.split(",") if v.strip())
            log = False
        elif len(parts) in (3, 4):
            a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
            log = len(parts) == 4
            if log and parts[3].strip().lower() not in ("log", "geom"):
                raise ValueError(f"unknown spacing {parts[3]!r} (use 'log')")
            if n < 1:
                raise ValueError("the number of points must be >= 1")
            if log:
                if not (a > 0 and b > 0):
                    raise ValueError("a log grid needs positive ends")
                vals = tuple(float(v) for v in np.geomspace(a, b, n))
            else:
                vals = tuple(float(v) for v in np.linspace(a, b, n))
        else:
            raise ValueError("expected a:b:n, a:b:n:log or v1,v2,...")
    except ValueError as exc:
        raise ValueError(f"{what}: cannot read {text!r}: {exc}") from exc
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: cannot read {text!r}: need finite values")
    return Grid(vals, log)


def _looks_geometric(vals: Sequence[float]) -> bool:
    v = np.asarray(vals)
    if v.size < 3 or np.any(v <= 0):
        return False
    r = v[1:] / v[:-1]
    return bool(np.allclose(r, r[0], rtol=1e-9) and not np.isclose(r[0], 1.0))


# -- the worker side -------------------------------------------------------------------------

def _amplification(opt: Any, lam: float) -> float:
    """max ‖evaluation point − x̄‖ / ‖x − x̄‖ over one step on the quadratic ½λx²."""
    from dynverify.functions import Quadratic, TestFunction
    from dynverify.linearize import apply_step, lifted_state

    base = Quadratic.diagonal([lam])
    seen: list[float] = [1.0]

    class Recorder(TestFunction):
        dim = 1

        def _see(self, X: np.ndarray) -> None:
            with np.errstate(all="ignore"):
                seen.append(float(np.max(np.abs(X))))

        def value(self, X: np.ndarray) -> np.ndarray:
            self._see(X)
            return base.value(X)

        def grad(self, X: np.ndarray) -> np.ndarray:
            self._see(X)
            return base.grad(X)

        def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
            self._see(X)
            return base.hvp(X, V)

        def hess(self, X: np.ndarray) -> np.ndarray:
            self._see(X)
            return base.hess(X)

    X = np.array([[1.0]])
    with np.errstate(all="ignore"):
        apply_step(opt, lifted_state(opt, X), Recorder())
    amp = max(v for v in seen if math.isfinite(v)) if any(map(math.isfinite, seen)) else 1.0
    return max(1.0, amp)


def _regions(opt: Any) -> tuple[Any, Any, str | None]:
    """(filter used for predictions, derived filter, why derivation failed)."""
    from dynverify.derive import DerivationWarning, derive_region
    from dynverify.errors import NotDifferentiableError

    if opt.outside_hypotheses:
        return None, None, f"outside the theorem's hypotheses: {opt.outside_hypotheses}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DerivationWarning)
            derived = derive_region(opt)
    except NotDifferentiableError as exc:
        return opt.region, None, str(exc)
    return (opt.region if opt.region is not None else derived), derived, None


def _rho_row(opt: Any, lams: np.ndarray) -> np.ndarray:
    from dynverify.derive import filter_function
    from dynverify.errors import NotDifferentiableError

    if opt.outside_hypotheses:
        return np.full(lams.shape, np.nan)
    try:
        return np.asarray(filter_function(opt)(lams), dtype=float)
    except NotDifferentiableError:
        return np.full(lams.shape, np.nan)


def _budget(r: float, radius: float, escape: float, s: Settings) -> int:
    from dynverify.engine import step_budget

    if not math.isfinite(r):
        return s.free_steps
    if r < 1.0:  # contract from the ball down to tol (the band is capped at 1 − δ)
        return step_budget(min(r, 1.0 - s.boundary_band), start=radius, finish=s.tol,
                           factor=s.budget_factor, minimum=100, maximum=s.max_steps)
    # grow from tol up to the escape radius (capped at 1 + δ)
    return step_budget(max(r, 1.0 + s.boundary_band), start=s.tol, finish=escape,
                       factor=s.budget_factor, maximum=s.max_steps)


def run_cells(optimizer: str, hyperparameters: dict[str, Any], lam: list[float],
              seeds: list[int], starts: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One task: the cells (λ, h) for one hyperparameter dict and several λ.

    Returns the filters for these hyperparameters, ρ₁ at each λ and per cell the counts
    of :data:`OUTCOMES`, the budget, the start radius, the measured amplification and a
    counterexample record (or None).
    """
    from dynverify.engine import Status, run
    from dynverify.planted import PlantedFunction
    from dynverify.registry import resolve

    s = Settings.from_json(settings)
    reg = resolve(optimizer)
    opt = reg.build(**hyperparameters)
    lams = np.asarray(lam, dtype=float)
    filt, derived, why = _regions(opt)
    rho = _rho_row(opt, lams)
    cells = []
    for k, (lm, sd) in enumerate(zip(lams.tolist(), seeds, strict=True)):
        rng = np.random.default_rng(sd)
        x_star = rng.uniform(-1.0, 1.0, size=1)
        c3 = float(rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0]))
        c4 = float(rng.uniform(0.25, 1.0))
        f = PlantedFunction([lm], x_star, terms=[("cube", c3, (1.0,)), ("quartic", c4, (1.0,))])
        amp = _amplification(opt, lm)
        radius = min(LOCAL_RADIUS, f.quadratic_radius(REL) / amp)
        u = rng.uniform(-1.0, 1.0, size=(starts, 1)) * radius
        r = float(rho[k])
        cell: dict[str, Any] = {"budget": 0, "radius": radius, "amplification": amp,
                                "counts": [0, 0, 0, starts], "counterexample": None}
        cells.append(cell)
        if not radius > 0:  # λ = 0: no quadratic region to start in
            continue
        X0 = x_star + u
        escape = s.escape_factor * (1.0 + float(np.abs(x_star).max()) + radius)
        budget = _budget(r, radius, escape, s)
        res = run(opt, f, X0, target=x_star, tol=s.tol, target_tol=s.target_tol,
                  max_steps=budget, escape_radius=escape)
        n = res.counts()
        counts = [n[Status.CONVERGED_TARGET], n[Status.CONVERGED_ELSEWHERE],
                  n[Status.ESCAPED] + n[Status.NONFINITE], n[Status.UNDECIDED]]
        cell.update(budget=budget, counts=counts)
        if filt is None or (math.isfinite(r) and abs(r - 1.0) < s.boundary_band):
            continue
        inside = bool(filt.contains(lm))
        if inside == (counts[0] > 0):
            continue
        cell["counterexample"] = _counterexample(reg, opt, f, X0, x_star, lm, r, inside, filt,
                                                 counts, budget, s)
    return {"filter": None if filt is None else filt.to_json(),
            "declared": None if opt.region is None else opt.region.to_json(),
            "derived": None if derived is None else derived.to_json(), "why": why,
            "rho": [float(v) if math.isfinite(v) else None for v in rho], "cells": cells}


def _counterexample(reg: Any, opt: Any, f: Any, X0: np.ndarray, x_star: np.ndarray, lam: float,
                    r: float, inside: bool, filt: Any, counts: list[int], budget: int,
                    s: Settings) -> dict[str, Any]:
    """The cell as a replayable counterexample of the claim that covers it."""
    from dynverify.check import counterexample_record
    from dynverify.claims import CLAIMS, Case, Outcome, Verdict, _jsonable

    n = sum(counts)
    if inside:
        what = f"no run of {n} converged to x̄ with λ = {lam:.6g} inside the filter {filt}"
        claim = "stable_converges" if r <= 1.0 - s.boundary_band else "filter_agrees"
    else:
        what = (f"{counts[0]} of {n} runs converged to x̄ with λ = {lam:.6g} outside "
                f"the filter {filt}")
        claim = "unstable_no_convergence" if r >= 1.0 + s.boundary_band else "filter_agrees"
    case = Case(opt, f, X0, x_star=np.asarray(x_star, dtype=float), spectrum=(lam,),
                region=filt)
    phase = {"lambda": lam, "spectral_radius": r, "inside": inside,
             "counts": dict(zip(OUTCOMES, counts, strict=True)), "budget": budget,
             "finding": what}
    verdict = CLAIMS[claim](case, s)
    if verdict.outcome is not Outcome.COUNTEREXAMPLE:
        # the claim's own run did not reproduce it: keep the phase run's evidence
        verdict = Verdict(claim, Outcome.COUNTEREXAMPLE, f"phase diagram: {what}",
                          _jsonable({"spectral_radius": r, "spectrum": [lam],
                                     "region_str": str(filt), "observed": phase,
                                     "claim_rerun": verdict.to_json()}), s.to_json())
    rec = counterexample_record(reg, claim, case, verdict, None)
    rec["phase"] = _jsonable(phase)
    return rec


# -- the result ------------------------------------------------------------------------------

def _region(data: Any) -> Any:
    from dynverify.regions import Region

    return None if data is None else Region.from_json(data)


@dataclass
class PhaseDiagram:
    """Measured convergence fractions on a (hyperparameter × λ) grid, with the filters.

    Arrays have shape (len(values), len(lam)): row i is hyperparameter value
    ``values[i]``, column j eigenvalue ``lam[j]``. ``counts[..., k]`` counts the runs with
    outcome :data:`OUTCOMES`[k]; ``rho`` is ρ₁(λ) (NaN where undefined); ``inside`` is
    membership in the filter the predictions use (declared, else derived); ``band`` marks
    the undecidable cells |ρ₁ − 1| < δ.
    """

    optimizer: str
    param: str
    values: tuple[float, ...]
    lam: tuple[float, ...]
    fixed: dict[str, Any]
    starts: int
    seed: int
    counts: np.ndarray
    rho: np.ndarray
    filters: list[Any]
    declared: list[Any]
    derived: list[Any]
    budget: np.ndarray
    radius: np.ndarray
    amplification: np.ndarray
    settings: dict[str, Any]
    log_param: bool = False
    log_lam: bool = False
    counterexamples: list[dict[str, Any]] = field(default_factory=list)
    counterexample_paths: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_dir: str | None = None

    # -- derived arrays --------------------------------------------------------------
    def fraction(self, outcome: str = "target") -> np.ndarray:
        """Fraction of runs per cell with this outcome (one of :data:`OUTCOMES`)."""
        return self.counts[..., OUTCOMES.index(outcome)] / float(self.starts)

    @property
    def band(self) -> np.ndarray:
        delta = float(self.settings.get("boundary_band", DEFAULT_SETTINGS.boundary_band))
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.rho) & (np.abs(self.rho - 1.0) < delta)

    @property
    def inside(self) -> np.ndarray:
        lam = np.asarray(self.lam)
        return np.array([np.zeros(lam.shape, bool) if f is None else f.contains(lam)
                         for f in self.filters])

    @property
    def decided(self) -> np.ndarray:
        """Cells with a filter to compare with and outside the undecidable band."""
        has = np.array([f is not None for f in self.filters])[:, None]
        return has & ~self.band

    def agreement(self) -> dict[str, Any]:
        """How measurement and theory agree, cell by cell (outside the band)."""
        frac = self.fraction("target")
        inside, dec = self.inside, self.decided
        out_cells, in_cells = dec & ~inside, dec & inside
        conv_out = out_cells & (self.counts[..., 0] > 0)
        conv_in = in_cells & (self.counts[..., 0] > 0)

        def cell(ij: tuple[int, int], value: float) -> dict[str, Any]:
            i, j = ij
            return {self.param: self.values[i], "lambda": self.lam[j], "fraction": value,
                    "rho1": None if not np.isfinite(self.rho[i, j]) else float(self.rho[i, j])}

        worst_out = worst_in = None
        if out_cells.any():
            m = np.where(out_cells, frac, -1.0)
            ij = np.unravel_index(int(np.argmax(m)), m.shape)
            worst_out = cell((int(ij[0]), int(ij[1])), float(m[ij]))
        if in_cells.any():
            m = np.where(in_cells, frac, 2.0)
            ij = np.unravel_index(int(np.argmin(m)), m.shape)
            worst_in = cell((int(ij[0]), int(ij[1])), float(m[ij]))
        mismatch = [i for i, (d, v) in enumerate(zip(self.declared, self.derived, strict=True))
                    if d is not None and v is not None and not d.isclose(v, rtol=1e-6)]
        return {
            "cells": int(frac.size), "undecidable_band": int(self.band.sum()),
            "no_filter": int((~np.array([f is not None for f in self.filters])).sum()
                             * len(self.lam)),
            "outside": int(out_cells.sum()),
            "outside_with_convergence": int(conv_out.sum()),
            "inside": int(in_cells.sum()), "inside_converged": int(conv_in.sum()),
            "inside_mean_fraction": float(frac[in_cells].mean()) if in_cells.any() else None,
            "outside_mean_fraction": float(frac[out_cells].mean()) if out_cells.any() else None,
            "worst_outside": worst_out, "worst_inside": worst_in,
            "declared_vs_derived_differ": [self.values[i] for i in mismatch],
            "counterexamples": len(self.counterexamples),
            "agrees": bool(not conv_out.any() and conv_in.sum() == in_cells.sum()),
        }

    def summary_rows(self) -> list[list[Any]]:
        """The agreement summary as (item, value) rows for a table."""
        a = self.agreement()

        def where(c: dict[str, Any] | None) -> str:
            if c is None:
                return "—"
            return f"{c['fraction']:.3g} at {self.param}={c[self.param]:.4g}, λ={c['lambda']:.4g}"

        mean_in = a["inside_mean_fraction"]
        return [
            ["cells", a["cells"]],
            [f"undecidable band (|ρ₁ − 1| < {self.settings.get('boundary_band')})",
             a["undecidable_band"]],
            ["outside the filter", a["outside"]],
            ["  … with any convergence to x̄", a["outside_with_convergence"]],
            ["  worst (largest fraction)", where(a["worst_outside"])],
            ["inside the filter", a["inside"]],
            ["  … with convergence to x̄", a["inside_converged"]],
            ["  mean fraction", "—" if mean_in is None else f"{mean_in:.3f}"],
            ["  worst (smallest fraction)", where(a["worst_inside"])],
            ["declared ≠ derived filter at", ", ".join(f"{v:.4g}" for v in
                                                      a["declared_vs_derived_differ"]) or "—"],
            ["counterexamples", a["counterexamples"]],
            ["agrees with the theorem", "yes" if a["agrees"] else "NO"],
        ]

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        def reg(r: Any) -> Any:
            return None if r is None else r.to_json()

        return {"schema": SCHEMA, "optimizer": self.optimizer, "param": self.param,
                "values": list(self.values), "lam": list(self.lam), "fixed": self.fixed,
                "starts": self.starts, "seed": self.seed, "outcomes": list(OUTCOMES),
                "counts": self.counts.tolist(),
                "rho": [[None if not np.isfinite(v) else float(v) for v in row]
                        for row in self.rho],
                "filters": [reg(r) for r in self.filters],
                "declared": [reg(r) for r in self.declared],
                "derived": [reg(r) for r in self.derived],
                "budget": self.budget.tolist(), "radius": self.radius.tolist(),
                "amplification": self.amplification.tolist(), "settings": self.settings,
                "log_param": self.log_param, "log_lam": self.log_lam,
                "counterexamples": self.counterexample_paths, "notes": self.notes,
                "run_dir": self.run_dir, "agreement": self.agreement()}

    def save(self, path: str | Path) -> Path:
        """Write the diagram as JSON (read back with :meth:`load`)."""
        p = Path(path)
        p.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> PhaseDiagram:
        from dynverify.errors import ReportError

        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReportError(f"{path}: cannot read a phase diagram ({exc})") from exc
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ReportError(f"{path}: not a dynverify phase diagram (schema {SCHEMA})")
        rho = np.array([[np.nan if v is None else v for v in row] for row in d["rho"]],
                       dtype=float)
        return cls(optimizer=d["optimizer"], param=d["param"], values=tuple(d["values"]),
                   lam=tuple(d["lam"]), fixed=d["fixed"], starts=d["starts"], seed=d["seed"],
                   counts=np.array(d["counts"], dtype=np.int64), rho=rho,
                   filters=[_region(r) for r in d["filters"]],
                   declared=[_region(r) for r in d["declared"]],
                   derived=[_region(r) for r in d["derived"]],
                   budget=np.array(d["budget"], dtype=np.int64),
                   radius=np.array(d["radius"], dtype=float),
                   amplification=np.array(d["amplification"], dtype=float),
                   settings=d["settings"], log_param=d["log_param"], log_lam=d["log_lam"],
                   counterexample_paths=list(d.get("counterexamples", [])),
                   notes=list(d.get("notes", [])), run_dir=d.get("run_dir"))

    def __repr__(self) -> str:
        a = self.agreement()
        return (f"PhaseDiagram({self.optimizer}, {self.param} × λ = {len(self.values)} × "
                f"{len(self.lam)}, outside with convergence {a['outside_with_convergence']}/"
                f"{a['outside']}, inside converged {a['inside_converged']}/{a['inside']}, "
                f"band {a['undecidable_band']})")

    def plot(self, path: str | Path) -> Path:
        """Draw the diagram to an image file (needs matplotlib: ``dynverify[plot]``)."""
        from dynverify.phase_plot import draw

        return draw(self, Path(path))


# -- the driver ------------------------------------------------------------------------------

def _check_hp_names(reg: Any, names: Sequence[str]) -> None:
    import inspect

    params = inspect.signature(reg.factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(f"optimizer {reg.name!r} takes no hyperparameter(s) {unknown}; "
                         f"it takes {list(params)}")


def phase_diagram(optimizer: Any, lam: Any, vary: Mapping[str, Any],
                  fixed: Mapping[str, Any] | None = None, *, starts: int = 64, seed: int = 0,
                  workers: int | None = None, client: Any = None, scheduler: str | None = None,
                  settings: Settings = DEFAULT_SETTINGS, reports: str | Path | None = None,
                  cells_per_task: int | None = None, timing: Any = None) -> PhaseDiagram:
    """Measure the convergence fractions over a (hyperparameter × λ) grid.

    Args:
        optimizer: a registered name, ``"module:factory"``, a factory or a Registration
            (with workers or a cluster it must be importable there by name).
        lam: eigenvalue grid: values or ``"a:b:n"`` / ``"a:b:n:log"`` / ``"v1,v2"``.
        vary: exactly one hyperparameter and its grid, e.g. ``{"lr": "0.01:0.5:25"}``.
        fixed: the other hyperparameters, e.g. ``{"rho": 0.5}``.
        starts: initial points per cell.
        seed: seeds every cell (through ``derive_seed(seed, i, j)``).
        workers / client / scheduler: where the tasks run (see :mod:`dynverify.executor`).
        settings: tolerances, band δ and budgets (those of the claims).
        reports: directory of run directories; counterexamples are recorded there.
        cells_per_task: λ cells per task (default: one hyperparameter row per task).
        timing: an :class:`~dynverify.executor.Timing` to fill in (wall, per-task times).

    Returns:
        a :class:`PhaseDiagram`; ``.agreement()`` compares it with the filter.
    """
    from dynverify.executor import Task, derive_seed, optimizer_ref, run_tasks
    from dynverify.registry import resolve

    if not isinstance(vary, Mapping) or len(vary) != 1:
        raise ValueError(f"vary must map exactly one hyperparameter to its grid, got {vary!r}")
    (param, pgrid), = vary.items()
    fixed = dict(fixed or {})
    if param in fixed:
        raise ValueError(f"{param!r} is both varied and fixed")
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be a positive integer, got {starts!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    lgrid, hgrid = parse_grid(lam, "lam"), parse_grid(pgrid, param)
    if (workers is not None and workers > 1) or client is not None or scheduler is not None:
        name: str | None = optimizer_ref(optimizer)  # workers re-import it by this name
    else:
        name = optimizer if isinstance(optimizer, str) else None
    reg = resolve(name if name is not None else optimizer)
    _check_hp_names(reg, [param, *fixed])
    for v in hgrid.values:  # bad hyperparameters: a clear error here, not on a worker
        reg.build(**{**fixed, param: v})
    nl = len(lgrid.values)
    chunk = nl if cells_per_task is None else max(1, int(cells_per_task))
    tasks, where = [], []
    for i, v in enumerate(hgrid.values):
        for j0 in range(0, nl, chunk):
            js = list(range(j0, min(nl, j0 + chunk)))
            tasks.append(Task("dynverify.phase:run_cells", {
                "optimizer": name or "", "hyperparameters":
                {**fixed, param: v}, "lam": [lgrid.values[j] for j in js],
                "seeds": [derive_seed(seed, i, j) for j in js], "starts": starts,
                "settings": settings.to_json()}, label=f"{param}={v:.4g} λ[{j0}:{js[-1] + 1}]"))
            where.append((i, js))
    if name is None:  # an unnamed in-process factory: run it through a local registration
        values = _run_local(reg, tasks)
    else:
        values = run_tasks(tasks, workers=workers, client=client, scheduler=scheduler,
                           timing=timing)
    nh = len(hgrid.values)
    counts = np.zeros((nh, nl, len(OUTCOMES)), dtype=np.int64)
    rho = np.full((nh, nl), np.nan)
    budget = np.zeros((nh, nl), dtype=np.int64)
    radius = np.zeros((nh, nl))
    amp = np.ones((nh, nl))
    filters: list[Any] = [None] * nh
    declared: list[Any] = [None] * nh
    derived: list[Any] = [None] * nh
    notes: list[str] = []
    cexs: list[dict[str, Any]] = []
    for (i, js), out in zip(where, values, strict=True):
        filters[i], declared[i], derived[i] = (_region(out["filter"]), _region(out["declared"]),
                                               _region(out["derived"]))
        if out["why"] and out["why"] not in notes:
            notes.append(out["why"])
        for j, c, r in zip(js, out["cells"], out["rho"], strict=True):
            counts[i, j] = c["counts"]
            rho[i, j] = np.nan if r is None else r
            budget[i, j], radius[i, j], amp[i, j] = c["budget"], c["radius"], c["amplification"]
            if c["counterexample"] is not None:
                cexs.append(c["counterexample"])
    d = PhaseDiagram(optimizer=reg.name, param=param, values=hgrid.values, lam=lgrid.values,
                     fixed=fixed, starts=starts, seed=seed, counts=counts, rho=rho,
                     filters=filters, declared=declared, derived=derived, budget=budget,
                     radius=radius, amplification=amp, settings=settings.to_json(),
                     log_param=hgrid.log, log_lam=lgrid.log, counterexamples=cexs, notes=notes)
    if reports is not None:
        _record(d, reg, reports)
    return d


def _run_local(reg: Any, tasks: list[Any]) -> list[Any]:
    """Tasks for a factory that has no importable name: run here, with the object itself."""
    import dynverify.registry as registry

    key = f"__phase_local_{id(reg)}"
    registry._REGISTRY[key] = reg  # resolvable by this process only, for these tasks
    try:
        from dynverify.executor import run_tasks

        tasks = [type(t)(t.function, {**t.kwargs, "optimizer": key}, t.label) for t in tasks]
        return run_tasks(tasks)
    finally:
        registry._REGISTRY.pop(key, None)


def _record(d: PhaseDiagram, reg: Any, reports: str | Path) -> None:
    from dynverify.records import RunWriter

    with RunWriter(reports, meta={"source": "phase", "optimizers": [reg.name],
                                  "param": d.param, "fixed": d.fixed, "seed": d.seed}) as w:
        d.run_dir = str(w.dir)
        d.counterexample_paths = [str(w.counterexample(rec)) for rec in d.counterexamples]
        w.summary({"phase": {k: v for k, v in d.to_json().items()
                             if k in ("optimizer", "param", "values", "lam", "fixed", "starts",
                                      "seed", "agreement")}})
