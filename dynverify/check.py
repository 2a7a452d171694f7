"""Run the claims on an optimizer through Hypothesis: the conformance suite.

``check_optimizer`` is what the pytest plugin and ``dynverify check`` call: for each
claim, Hypothesis draws cases (hyperparameters, a planted spectrum placed relative to the
optimizer's filter, a planted function, initial points), the claim judges each, every
case is recorded, and a counterexample is shrunk to a minimal one and written to disk.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import event, given, note, target
from hypothesis import seed as hseed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from dynverify import summary
from dynverify.claims import (
    CLAIMS,
    DEFAULT_SETTINGS,
    MIN_BALL_RELATIVE,
    Case,
    Outcome,
    Relation,
    Remembered,
    Settings,
    Verdict,
    _jsonable,
    filter_of,
    map_key,
    unstable_ball,
)
from dynverify.errors import NotDifferentiableError, ReportError
from dynverify.functions import ScaledFunction, from_spec
from dynverify.locality import LOCAL_RADIUS as _LOCAL_RADIUS
from dynverify.locality import local_radius
from dynverify.records import RunWriter, read_counterexample
from dynverify.regions import Region
from dynverify.registry import Registration, missing_hyperparameters, resolve
from dynverify.reproducibility import fixed_constants

#: which spectra each planted-point claim draws: relative to the filter R with a margin
#: ("inside", "outside"), hugging R's boundary points from either side ("near_inside",
#: "near_outside", relative distances HUG_DISTANCES), or placed by the filter function ρ₁
#: so that the premise r ≥ 1 + δ ("unstable") or r ≤ 1 − δ ("stable") holds by construction
PLACEMENT = {
    # claim 1 is cheap and most sensitive next to the boundary: 8/12 of its cases put
    # one eigenvalue just outside R (one boundary point per case), 2/12 one eigenvalue
    # just inside each boundary point of R at once
    "filter_agrees": ("near_outside",) * 8 + ("near_inside",) * 2 + ("inside", "outside"),
    "unstable_no_convergence": ("unstable",),
    "stable_converges": ("stable",),
    "metamorphic": ("inside", "outside"),
}
#: claims that iterate from a ball around x̄ (its radius must exceed the target tolerance)
_ITERATING = ("unstable_no_convergence", "stable_converges")
#: claims that never run from the case's starts (their X0 is x̄ itself)
_NO_STARTS = ("filter_agrees",)
#: claims whose cases are not steered toward r = 1 by hypothesis.target (they hug it)
_UNTARGETED = ("filter_agrees",)
#: relative distances to a boundary point of the declared filter for the "near_*" spectra
HUG_DISTANCES = (1e-3, 1e-2)
#: "near_inside" spectra have at least min(#inside boundary points, MAX_HUG_DIM) dimensions
MAX_HUG_DIM = 6
#: the premise gap |r − 1| of "stable"/"unstable" spectra is drawn log-uniformly in
#: [RATE_GAP_FACTOR·δ, RATE_GAP_MAX], so that it stays clear of the boundary band δ
RATE_GAP_FACTOR = 2.0
#: largest premise gap |r − 1| drawn for "stable"/"unstable" spectra
RATE_GAP_MAX = 1.0
N_LOCAL_POINTS = 8
N_FREE_POINTS = 16
#: initial points of local claims lie in a ball of this radius at most, shrunk so that
#: every point the map evaluates stays within the planted function's quadratic radius
#: (dynverify.locality)
LOCAL_RADIUS = _LOCAL_RADIUS
#: free runs start uniformly in a ball of this radius around the origin
FREE_SPREAD = 2.0
#: landscapes are multiplied by (one of these) × the filter's size
LANDSCAPE_SCALES = (0.1, 0.02, 0.05, 0.2)
#: of claim 4's N_FREE_POINTS starts, this many lie next to the landscape's known
#: critical points, within this distance (the landscapes' wells are about 1 apart)
NEAR_CRITICAL_STARTS = 4
NEAR_CRITICAL_SPREAD = 0.02


class _Counterexample(AssertionError):
    """Raised inside the property so that Hypothesis shrinks the case."""


class ClaimStatus(str, enum.Enum):
    """The verdict on one claim (or, worst first, on all claims of an optimizer).

    - ``counterexample``: some case failed (a minimal one is recorded);
    - ``error``: the run itself broke;
    - ``not verified``: no case failed but too few were decided: fewer than
      ``Settings.min_decided`` passes, or passes below ``Settings.min_decided_fraction``
      of the *applicable* cases (within the hypotheses, premise met; see
      :attr:`ClaimResult.decided_enough`), or an ``outside_hypotheses`` exemption was
      not confirmed by measurement;
    - ``outside hypotheses``: every case was outside the theorem's hypotheses, each
      confirmed by measuring that the map is not differentiable at the fixed point;
    - ``verified``: enough decided cases, none failed.
    """

    COUNTEREXAMPLE = "counterexample"
    ERROR = "error"
    NOT_VERIFIED = "not verified"
    OUTSIDE_HYPOTHESES = "outside hypotheses"
    VERIFIED = "verified"

    @property
    def failed(self) -> bool:
        return self in (ClaimStatus.COUNTEREXAMPLE, ClaimStatus.ERROR)


#: inconclusive reasons that mean "the theorem does not apply here (measured)"
OUTSIDE_REASONS = frozenset({"outside-hypotheses"})
#: inconclusive reasons (prefixes) of cases that did not test the claim at all: the drawn
#: spectrum did not meet the claim's premise, or no case could be drawn
UNTESTED_REASONS = ("premise-not-met", "no-such-case")


@dataclass
class ClaimResult:
    """Outcome counts of one claim on one optimizer, and the verdict they support."""

    optimizer: str
    claim: str
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    closest: float = math.inf  #: smallest |r − 1| among decided cases
    counterexample: dict[str, Any] | None = None
    counterexample_path: str | None = None
    error: str | None = None
    seconds: float = 0.0
    min_decided_fraction: float = DEFAULT_SETTINGS.min_decided_fraction
    min_decided: int = DEFAULT_SETTINGS.min_decided

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    @property
    def decided(self) -> int:
        """Cases that reached a verdict (passes; a counterexample ends the run)."""
        return self.counts["pass"]

    @property
    def within_hypotheses(self) -> int:
        """Cases to which the theorem applies (all but measured-outside ones)."""
        return self.cases - sum(self.reasons[r] for r in OUTSIDE_REASONS)

    @property
    def applicable(self) -> int:
        """Cases within the hypotheses that tested the claim (premise met)."""
        untested = sum(n for r, n in self.reasons.items() if r.startswith(UNTESTED_REASONS))
        return self.within_hypotheses - untested

    @property
    def decided_enough(self) -> bool:
        """decided ≥ min_decided and decided ≥ min_decided_fraction × applicable."""
        return (self.decided >= self.min_decided
                and self.decided >= self.min_decided_fraction * self.applicable)

    @property
    def status(self) -> ClaimStatus:
        if self.error is not None:
            return ClaimStatus.ERROR
        if self.counterexample is not None:
            return ClaimStatus.COUNTEREXAMPLE
        if self.reasons["exemption-not-confirmed"]:
            return ClaimStatus.NOT_VERIFIED
        if self.cases and self.within_hypotheses == 0:
            return ClaimStatus.OUTSIDE_HYPOTHESES
        return ClaimStatus.VERIFIED if self.decided_enough else ClaimStatus.NOT_VERIFIED

    @property
    def ok(self) -> bool:
        """Verified, or (measurably) outside the theorem's hypotheses."""
        return self.status in (ClaimStatus.VERIFIED, ClaimStatus.OUTSIDE_HYPOTHESES)

    def why_not_verified(self) -> str:
        """One line: decided cases against the threshold, and the inconclusive reasons."""
        reasons = ", ".join(f"{r} ×{n}" for r, n in self.reasons.most_common())
        if self.reasons["exemption-not-confirmed"]:
            head = (f"the optimizer's outside_hypotheses exemption was not confirmed: its map "
                    f"is differentiable at {self.reasons['exemption-not-confirmed']} fixed "
                    "points")
        else:
            head = (f"{self.decided} of {self.applicable} applicable cases decided (needs "
                    f"≥ {self.min_decided} and ≥ {self.min_decided_fraction:.0%}; "
                    f"{self.cases} cases in all)")
        return f"{head}; inconclusive: {reasons or 'none'}"

    @property
    def decided_fraction(self) -> float | None:
        """(pass + counterexample) / cases: the share of cases that decided something."""
        n = sum(self.counts.values())
        return (self.counts["pass"] + self.counts["counterexample"]) / n if n else None

    def row(self) -> list[Any]:
        """The cells of the summary table (dynverify.summary.COLUMNS)."""
        return summary.row(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClaimResult:
        """Inverse of :meth:`to_json`; the counterexample record is read from its file."""
        closest = data.get("closest")
        path = data.get("counterexample")
        record = None
        if isinstance(path, str):
            try:
                record = read_counterexample(path)
            except ReportError:
                record = None
        thresholds = {k: data[k] for k in ("min_decided_fraction", "min_decided")
                      if isinstance(data.get(k), (int, float))}
        return cls(str(data.get("optimizer")), str(data.get("claim")),
                   counts=Counter(data.get("counts") or {}),
                   reasons=Counter(data.get("reasons") or {}),
                   closest=float(closest) if isinstance(closest, (int, float)) else math.inf,
                   counterexample=record, counterexample_path=path, error=data.get("error"),
                   seconds=float(data.get("seconds") or 0.0), **thresholds)

    def to_json(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "claim": self.claim,
                "status": self.status.value, "counts": dict(self.counts),
                "reasons": dict(self.reasons), "decided_fraction": self.decided_fraction,
                "closest": self.closest if math.isfinite(self.closest) else None,
                "counterexample": self.counterexample_path, "error": self.error,
                "seconds": round(self.seconds, 3),
                "min_decided_fraction": self.min_decided_fraction,
                "min_decided": self.min_decided}


#: the summary table's headers (kept for callers of the old name; see dynverify.summary)
SUMMARY_HEADERS = summary.headers()


def worst_status(statuses: Iterable[ClaimStatus]) -> ClaimStatus:
    """The overall verdict: counterexample > error > not verified > outside > verified."""
    order = list(ClaimStatus)
    return min(statuses, key=order.index, default=ClaimStatus.NOT_VERIFIED)


@dataclass
class CheckResult:
    """The claims' results for one optimizer.

    ``status`` is the worst claim status; ``ok`` is True only when every claim is
    verified or measurably outside the hypotheses (never when too little was decided).
    ``str(result)`` is the verdict, the summary table, the counterexamples' key facts and
    replay commands and why claims are not verified; :meth:`raise_for_failure` raises it
    as an ``AssertionError``.
    """

    optimizer: str
    results: list[ClaimResult]
    run_dir: str | None = None
    profile: str | None = None  #: name of the Hypothesis profile the claims ran under

    @property
    def status(self) -> ClaimStatus:
        return worst_status(r.status for r in self.results)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def __str__(self) -> str:
        return (f"{self.optimizer}: {self.status.value}\n"
                + summary.render_text(self.results, run_dir=self.run_dir))

    def __repr__(self) -> str:
        bad = sum(not r.ok for r in self.results)
        return (f"CheckResult(optimizer={self.optimizer!r}, ok={self.ok}, "
                f"claims={len(self.results)}, failed={bad}, run_dir={self.run_dir!r})")

    def raise_for_failure(self) -> CheckResult:
        """Raise :class:`dynverify.VerificationError` (an AssertionError) unless ``ok``.

        The message is the summary table, each counterexample's one-line reason and its
        replay command. Returns the result itself when nothing failed.
        """
        __tracebackhide__ = True  # pytest: the failure points at the user's call
        if not self.ok:
            from dynverify.assertions import VerificationError, failure_message

            raise VerificationError(failure_message(self))
        return self


# -- case generation ---------------------------------------------------------------------

def _region_or_none(opt: Any) -> Region | None:
    if opt.region is not None:  # declared (an exemption is measured by the claims)
        return opt.region
    if opt.outside_hypotheses:
        return None
    try:
        return filter_of(opt)
    except NotDifferentiableError:
        return None


class _RememberedRho:
    """A vectorized λ ↦ ρ₁(λ) that remembers its values on arrays of 8 points or more
    (the grids the spectra strategies evaluate at every draw, identical while
    Hypothesis keeps the hyperparameters); shorter arrays (root finding) are computed."""

    def __init__(self, rho: Any) -> None:
        self.rho, self.values = rho, Remembered(8)

    def __call__(self, lams: Any) -> np.ndarray:
        lam = np.asarray(lams, dtype=float)
        if lam.size < 8:
            return self.rho(lam)
        return self.values.get((lam.shape, lam.tobytes()), lambda: self.rho(lam)).copy()


_FILTER_FUNCTIONS = Remembered(64)


def _working_filter_function(opt: Any) -> Any:
    """λ ↦ ρ₁(λ) of the optimizer, or None when its step raises or returns non-finite
    values (a broken optimizer is judged by the claims, not by the case drawing).

    Remembered per update map (:func:`dynverify.claims.map_key`)."""
    return _FILTER_FUNCTIONS.get(map_key(opt), lambda: _probe_filter_function(opt))


def _probe_filter_function(opt: Any) -> Any:
    from dynverify.derive import filter_function

    rho = _RememberedRho(filter_function(opt))
    try:
        with np.errstate(all="ignore"):
            ok = bool(np.all(np.isfinite(rho(np.array([0.0, 1.0])))))
    except Exception:  # noqa: BLE001 -- any failure of a plug-in's step
        return None
    return rho if ok else None


def _spectra_strategy(placement: str, region: Region, opt: Any, settings: Settings) -> Any:
    """The spectra strategy of one placement (see PLACEMENT)."""
    from dynverify import strategies as S

    rho = _working_filter_function(opt) if placement not in ("inside", "outside") else None
    if placement in ("near_inside", "near_outside"):
        lo, hi = HUG_DISTANCES
        side = placement[5:]
        # "inside": one eigenvalue at each inside boundary point at once (up to
        # MAX_HUG_DIM), so that every near_inside case tests every boundary of the filter
        n_in = sum(1 for a in S.boundary_anchors(region) if a[2]) if side == "inside" else 1
        dim = min(max(n_in, 1), MAX_HUG_DIM)
        # an eigenvalue is never placed where claim 1 could not decide (|r − 1| < δ₁)
        return S.near_boundary_spectra(region=region, side=side, min_distance=lo,
                                       max_distance=hi, filter_function=rho,
                                       min_rate_gap=2 * settings.linearization_band,
                                       min_dim=dim, max_dim=max(dim, 4))
    if placement in ("stable", "unstable") and rho is not None:
        gap = RATE_GAP_FACTOR * settings.boundary_band
        return S.rate_spectra(filter_function=rho, region=region,
                              stable=placement == "stable", min_gap=gap,
                              max_gap=max(RATE_GAP_MAX, gap))
    placement = {"stable": "inside", "unstable": "outside"}.get(placement, placement)
    return S.spectra(region=region, placement=placement)


def _transient_growth(J: np.ndarray, steps: int = 500, *, normalized: bool = False) -> float:
    """max over k ≤ steps of ‖Jᵏ‖₂ over the (m, m) blocks J (capped at 1e6).

    Momentum maps are non-normal: a run can first move away from x̄ by this factor,
    into a region where the Hessian differs more, before the linear rate takes over.
    ``normalized`` uses J/ρ(J) (for unstable J, whose powers grow anyway).
    """
    if normalized:
        from dynverify.linearize import eigenvalues

        rho = np.max(np.abs(eigenvalues(J)), axis=-1)
        J = J / np.where(rho > 1e-12, rho, 1.0)[:, None, None]
    P = np.broadcast_to(np.eye(J.shape[-1]), J.shape).copy()
    powers = np.empty((steps, *J.shape))
    count, overflow = 0, False
    with np.errstate(all="ignore"):
        # the powers one by one (as P @ J, in this order), then all their 2-norms in one
        # batched call: the same numbers as an SVD per power, without a call per power;
        # every 32 powers, the stopping tests over the chunk
        chunk = 32
        for k in range(steps):
            P = P @ J
            powers[k] = P
            if (k + 1) % chunk and k + 1 < steps:
                continue
            lo = k - k % chunk
            block = powers[lo:k + 1].reshape(k + 1 - lo, -1)
            total = np.sum(block * block, axis=1)
            bad = ~np.all(np.isfinite(block), axis=1)
            # every block's ‖P‖₂ ≤ ‖P‖_F < 1e-3: the scan below stops there
            stop = np.flatnonzero(bad | (total < 1e-6))
            if stop.size:
                first = lo + int(stop[0])
                overflow = bool(bad[stop[0]])
                count = first if overflow else first + 1
                break
            count = k + 1
        norms = np.max(np.linalg.norm(powers[:count], ord=2, axis=(-2, -1)), axis=-1)
    worst = 1.0
    for n in norms.tolist():
        if not math.isfinite(n) or n > 1e6:
            return 1e6  # a non-finite norm counts as > 1e6
        worst = max(worst, n)
        if n < 1e-3:
            return worst
    return 1e6 if overflow else worst


def _linear_radius(opt: Any, f: Any, x_star: np.ndarray, radius: float, margin: float,
                   unstable: bool = False) -> float:
    """The largest radius·2⁻ᵏ at which the lifted map G is linear to within the margin.

    Claim 3 judges the linearization at a stable x̄ with r = 1 − margin; a run must stay
    where G's nonlinear part is small against the margin, or it may leave x̄ although
    r < 1. The nonlinearity at offset u is measured by the second difference
    ‖G(z̄ + u) − 2G(z̄ + u/2) + G(z̄)‖ (≥ half the nonlinear part, for any map, with no
    Jacobian error), at ‖u‖ = radius × the transient growth max‖Jᵏ‖ (how far a
    non-normal momentum map carries a run before contracting) along 8 fixed directions.
    It catches what the planted function's quadratic radius does not: maps that
    evaluate ∇f far from x (USAM's y = x + ρ∇f(x) is (1 + ρλ)·u away from x̄).
    """
    from dynverify.linearize import (
        _domain_bounds,
        _flatten,
        _unflatten,
        apply_step,
        jacobian,
        lifted_state,
    )

    J = jacobian(opt, f, x_star)
    growth = _transient_growth(J[None], normalized=unstable)
    state = lifted_state(opt, x_star[None, :])
    Z0, shapes = _flatten(state, 1)
    # a component that a start does not set and no other one depends on to first order
    # (Adam's and RMSprop's v at x̄, where ∂x⁺/∂v ∝ m = 0) is not counted in the nonlinear
    # part: its own is quadratic (v⁺ ∝ ∇f²) and reaches the others only at third order
    # (through m·δv). Positions are always counted.
    off = np.abs(J - np.diag(np.diag(J)))
    moved = _flatten(lifted_state(opt, x_star[None, :] + 1.0), 1)[0][0] != Z0[0]
    observed = moved | (np.max(off, axis=0) > 1e-12 * max(float(np.max(np.abs(J))), 1e-300))
    U = np.random.default_rng(0).standard_normal((8, Z0.shape[1]))
    # a component that sits on the edge of its declared domain (Adam's v = 0 at x̄) is not
    # perturbed: runs reach it only through the map (v ~ ∇f², not ~ the offset), and a
    # push of size ‖u‖ there would measure √‖u‖ terms that no run meets (or leave the domain)
    lo, hi = _domain_bounds(opt, shapes)
    U[:, (Z0[0] <= lo) | (Z0[0] >= hi)] = 0.0
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    allowed = 0.1 * margin / growth
    for _ in range(60):
        t = radius * growth
        P = np.concatenate([Z0 + t * U, Z0 + 0.5 * t * U, Z0])
        with np.errstate(all="ignore"):
            G = _flatten(apply_step(opt, _unflatten(P, shapes), f), P.shape[0])[0]
        second = G[:8] - 2 * G[8:16] + G[16:]
        nonlinear = 2 * float(np.max(np.linalg.norm(second[:, observed], axis=1))) / t
        if nonlinear <= allowed:
            return radius
        radius *= 0.5
    return 0.0


def _local_radius(f: Any, opt: Any, claim: str) -> float:
    """Radius of the ball of initial points of a local claim.

    At most ``LOCAL_RADIUS`` and the planted function's quadratic radius; for claims 2
    and 3 also small enough that the map is linear to within a tenth of |r − 1|
    (:func:`_linear_radius`), since cases hug r = 1. For claim 3 this keeps runs from
    leaving a stable x̄; for claim 2 (an unstable x̄ attracts a null set whatever the
    nonlinear terms) it keeps the ball inside the small cycles that nonlinear terms
    create around a barely unstable x̄ (period doubling), which runs would otherwise
    circle until the budget runs out.
    """
    radius = min(float(f.quadratic_radius()), LOCAL_RADIUS)
    if claim in _ITERATING and radius > 0:
        from dynverify.linearize import spectral_radius

        x_star = np.asarray(f.x_star, dtype=float)
        try:
            with np.errstate(all="ignore"):
                r = spectral_radius(opt, f, x_star)
                unstable = claim == "unstable_no_convergence"
                if not (r > 1.0 if unstable else r < 1.0):
                    return radius  # the claim will say premise-not-met
                return _linear_radius(opt, f, x_star, radius, abs(r - 1.0), unstable)
        except Exception:  # noqa: BLE001 -- a broken step is the claim's to report
            return radius
    return radius


def _near_critical_starts(draw: Any, f: Any, X0: np.ndarray) -> np.ndarray:
    """X0 with its last NEAR_CRITICAL_STARTS rows moved next to known critical points.

    Far starts alone often converge nowhere for an optimizer whose steps do not shrink
    with the gradient (Adam at α ≈ 1 hops between wells for 10⁵ steps): claim 4 then
    has no evidence. A start within NEAR_CRITICAL_SPREAD of a critical point (the
    landscapes' wells are about 1 apart; scaling f by c moves no critical point)
    converges there when its Hessian is inside the filter and leaves when it is outside,
    which is what claim 4 judges.
    """
    crit = f.critical_points()
    if crit is None or len(crit) == 0 or X0.shape[0] <= NEAR_CRITICAL_STARTS:
        return X0
    crit = np.asarray(crit, dtype=float)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, d = NEAR_CRITICAL_STARTS, X0.shape[1]
    U = rng.normal(size=(n, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    near = crit[rng.integers(0, len(crit), n)] + NEAR_CRITICAL_SPREAD * rng.random((n, 1)) * U
    return np.vstack([X0[:-n], near])


#: draws a case of claims 2 and 3 may take before it counts as "no-such-case": a drawn
#: ball of starts below the float-resolution floor (Adam with ε small beside its step is
#: linear only within about ε/λ of x̄) is drawn again, hyperparameters included
CASE_ATTEMPTS = 4


@st.composite
def cases(draw: Any, reg: Registration, claim: str, settings: Settings = DEFAULT_SETTINGS
          ) -> Case | None:
    """A case for ``claim`` on the registered optimizer (None: no such case exists).

    Claims 2 and 3 draw again, up to ``CASE_ATTEMPTS`` times in all, when a draw has no
    case (no spectrum meets the premise, or the ball on which the map is linear enough is
    below float resolution), so that their cases decide: a case is never judged on a
    ball the floor would make inconclusive.
    """
    attempts = CASE_ATTEMPTS if claim in _ITERATING else 1
    for _ in range(attempts):
        case = _one_case(draw, reg, claim, settings)
        if case is not None:
            return case
    return None


def _one_case(draw: Any, reg: Registration, claim: str, settings: Settings) -> Case | None:
    """One draw of :func:`cases` (None: this draw has no case)."""
    from dynverify import strategies as S

    hp = draw(reg.strategy())
    opt = reg.build(**hp)
    region = _region_or_none(opt)
    smoothness = "C3" if opt.hessian_in_map else "C2"
    if claim == "convergence_filters":
        # landscape curvatures are O(1): scale them to the size of the filter's interval
        # at 0 (where minima are stable; not the far band of a SAM filter at −1/ρ), so
        # that some limits are inside the filter and some outside
        size = (S.boundary_unit(region, 0.0) if region is not None and not region.empty
                else 1.0)
        c = draw(st.sampled_from(LANDSCAPE_SCALES)) * min(max(size, 1e-6), 1e6)
        f = ScaledFunction(draw(S.landscapes()), c)
        X0 = draw(S.initial_points(np.zeros(f.dim), FREE_SPREAD, N_FREE_POINTS))
        return Case(opt, f, _near_critical_starts(draw, f, X0), region=region)
    placement = draw(st.sampled_from(PLACEMENT[claim]))
    # sam (no filter): any region will do; its claims answer "outside hypotheses"
    where = region if region is not None else Region([(0.0, 1.0)])
    if region is None:
        placement = {"stable": "inside", "unstable": "outside"}.get(placement, placement)
        placement = placement.removeprefix("near_")
    try:
        spec_strategy = _spectra_strategy(placement, where, opt, settings)
        f = draw(S.planted_functions(spectra=spec_strategy, smoothness=smoothness))
    except InvalidArgument as exc:
        note(f"no {placement} spectrum for {opt!r}: {exc}")
        return None
    if claim in _NO_STARTS:
        # claim 1 judges the linearization at x̄ only: no starts to draw (and Hypothesis
        # spends no examples on cases that differ in starts alone)
        X0 = np.asarray(f.x_star, dtype=float)[None, :]
    else:
        radius = local_radius(opt, f, f.x_star, cap=LOCAL_RADIUS)[0]
        # claims 2 and 3 judge a small ball with tolerances zoomed to it, down to a floor
        # set by float resolution at x̄ (claims._zoomed, claims.MIN_BALL_RELATIVE)
        floor = (MIN_BALL_RELATIVE * (1.0 + float(np.linalg.norm(f.x_star)))
                 if claim in _ITERATING else 0.0)
        if region is not None and radius > 0:
            lin = _local_radius(f, opt, claim)
            if claim == "unstable_no_convergence":
                lin = unstable_ball(lin, radius, floor)
            radius = min(radius, lin)
        if not radius > floor:
            return None
        X0 = draw(S.initial_points(np.asarray(f.x_star), radius, N_LOCAL_POINTS))
    relations: list[Relation] = []
    if claim == "metamorphic":
        if reg.rotation_invariant:
            Q = draw(S.rotations(f.dim))
            relations.append(Relation("rotation", {"Q": np.asarray(Q).tolist()}))
        if reg.scaling is not None:
            c = draw(st.sampled_from([0.5, 2.0, 4.0, 0.25]))
            relations.append(Relation("scaling", {"c": c, "exponents": dict(reg.scaling)}))
        for overrides, ref in reg.reductions:
            relations.append(Relation("reduction", {"overrides": dict(overrides),
                                                    "reference": ref}))
    return Case(opt, f, X0, x_star=np.asarray(f.x_star, dtype=float),
                spectrum=tuple(float(v) for v in f.spectrum), region=region,
                relations=tuple(relations))


# -- records -----------------------------------------------------------------------------

def _optimizer_json(reg: Registration, case: Case) -> dict[str, Any]:
    from dynverify.replayable import factory_location

    return {"name": reg.name, "hyperparameters": _jsonable(dict(case.optimizer.hyperparameters)),
            "source": reg.source, **factory_location(reg.factory)}


def case_record(reg: Registration, claim: str, case: Case, verdict: Verdict) -> dict[str, Any]:
    """The JSON line of one checked case."""
    ev = verdict.evidence
    r = ev.get("spectral_radius")
    return {"optimizer": _optimizer_json(reg, case), "claim": claim,
            "outcome": verdict.outcome.value, "reason": verdict.reason,
            "spectral_radius": r, "spectrum": ev.get("spectrum"), "region": ev.get("region_str"),
            "boundary_distance": ev.get("boundary_distance"), "dim": case.function.dim}


def no_case_record(reg: Registration, claim: str, verdict: Verdict) -> dict[str, Any]:
    """The JSON line of a draw for which no case exists (reason "no-such-case")."""
    return {"optimizer": {"name": reg.name, "source": reg.source}, "claim": claim,
            "outcome": verdict.outcome.value, "reason": verdict.reason,
            "spectral_radius": None, "spectrum": None, "region": None,
            "boundary_distance": None, "dim": None}


def counterexample_record(reg: Registration, claim: str, case: Case, verdict: Verdict,
                          blob: str | None) -> dict[str, Any]:
    """Everything needed to rebuild and re-run the case, plus the verdict."""
    try:
        fspec: Any = case.function.spec()
    except NotImplementedError:
        fspec = None
    return {"claim": claim, "optimizer": _optimizer_json(reg, case), "function": fspec,
            "function_repr": repr(case.function),
            "x_star": _jsonable(case.x_star), "spectrum": _jsonable(case.spectrum),
            "X0": _jsonable(case.X0), "relations": [r.to_json() for r in case.relations],
            "verdict": verdict.to_json(),
            "reproduce": {"hypothesis": blob} if blob else {}}


def _closeness(v: Verdict) -> float:
    r = v.evidence.get("spectral_radius")
    return abs(float(r) - 1.0) if isinstance(r, (int, float)) else math.inf


# -- the driver ----------------------------------------------------------------------------

def _fingerprint(case: Case) -> bytes | None:
    """Bytes that identify a case (optimizer and hyperparameters, function, starts,
    planted point, relations), or None when the function cannot describe itself."""
    import hashlib

    try:
        fn = case.function.spec()
        opt = case.optimizer
        head = json.dumps([opt.name, opt.hyperparameters, fn,
                           [(r.kind, r.params) for r in case.relations]],
                          sort_keys=True, default=repr)
    except Exception:  # noqa: BLE001 -- no fingerprint: the case is simply not deduplicated
        return None
    h = hashlib.blake2b(head.encode(), digest_size=20)
    h.update(np.ascontiguousarray(case.X0, dtype=float).tobytes())
    if case.x_star is not None:
        h.update(np.ascontiguousarray(case.x_star, dtype=float).tobytes())
    return h.digest()


class ClaimRunner:
    """Judges, records and counts the cases of one claim on one optimizer.

    ``execute`` is the body of the Hypothesis property: it records the case, emits
    ``event``/``note``/``target`` and raises on a counterexample so that Hypothesis shrinks
    it. Once a counterexample is seen, later executions are shrinking replays: they are
    not counted, and the last failing one (the minimal example) is kept.
    """

    def __init__(self, reg: Registration, claim: str, *, writer: RunWriter | None = None,
                 settings: Settings = DEFAULT_SETTINGS,
                 on_case: Callable[[Verdict], None] | None = None) -> None:
        if claim not in CLAIMS:
            raise ValueError(f"unknown claim {claim!r}; known: {', '.join(CLAIMS)}")
        self.reg, self.claim, self.writer, self.settings = reg, claim, writer, settings
        self.on_case = on_case
        self.result = ClaimResult(reg.name, claim,
                                  min_decided_fraction=settings.min_decided_fraction,
                                  min_decided=settings.min_decided)
        self.failing: tuple[Case, Verdict] | None = None
        # verdicts by case fingerprint: Hypothesis can generate the same case twice (two
        # choice sequences that draw the same values); it is run and counted once
        self._seen: dict[bytes, Verdict] = {}

    def strategy(self) -> st.SearchStrategy[Case | None]:
        return cases(self.reg, self.claim, self.settings)

    def execute(self, case: Case | None) -> Verdict:
        key = _fingerprint(case) if case is not None else None
        repeat = key is not None and key in self._seen
        if case is None:
            verdict = Verdict(self.claim, Outcome.INCONCLUSIVE, "no-such-case", {},
                              self.settings.to_json())
        elif repeat:
            assert key is not None
            verdict = self._seen[key]
        else:
            verdict = CLAIMS[self.claim](case, self.settings)
            if key is not None:
                self._seen[key] = verdict
        event(f"{verdict.outcome.value}: {verdict.reason}"[:80])
        note(f"{verdict}\nevidence: {verdict.evidence}")
        closeness = _closeness(verdict)
        # steers generation toward r = 1 in profiles with the target phase (deep). Not for
        # claim 1, whose spectra hug the boundary by construction: next to an isolated
        # point of the filter |r − 1| shrinks without end as λ → p, and Hypothesis' hill
        # climbing kept replaying (mostly overrunning) draws for tens of minutes
        if (math.isfinite(closeness) and verdict.reason != "boundary-band"
                and self.claim not in _UNTARGETED):
            target(-closeness, label="-|r-1|")
        if verdict.outcome is Outcome.COUNTEREXAMPLE:
            assert case is not None
            self.failing = (case, verdict)
            raise _Counterexample(f"{self.reg.name}/{self.claim}: {verdict}")
        if self.failing is None and not repeat:
            self.result.counts[verdict.outcome.value] += 1
            if verdict.outcome is Outcome.INCONCLUSIVE:
                self.result.reasons[verdict.reason] += 1
            else:
                self.result.closest = min(self.result.closest, closeness)
            if self.writer is not None:
                # a draw with no such case is recorded too, so that `dynverify report`
                # counts what `check` counted
                self.writer.case(case_record(self.reg, self.claim, case, verdict)
                                 if case is not None else
                                 no_case_record(self.reg, self.claim, verdict))
            if self.on_case is not None:
                self.on_case(verdict)
        return verdict

    def finish(self, exc: BaseException | None) -> ClaimResult:
        """Record the minimal counterexample (if any) or the error that ended the run."""
        if self.failing is not None and isinstance(exc, _Counterexample):
            case, verdict = self.failing
            rec = counterexample_record(self.reg, self.claim, case, verdict, _blob(exc))
            self.result.counts["counterexample"] += 1
            # a counterexample is a decided case: same rule as `dynverify report`
            self.result.closest = min(self.result.closest, _closeness(verdict))
            self.result.counterexample = rec
            if self.writer is not None:
                self.writer.case(case_record(self.reg, self.claim, case, verdict))
                self.result.counterexample_path = str(self.writer.counterexample(rec))
        elif exc is not None:
            self.result.error = f"{type(exc).__name__}: {exc}"
        return self.result


#: claims whose cases cost so little that they run this many times the profile's examples
#: (up to EXAMPLES_CAP): a claim 1 case is one linearization at x̄, no runs, and a filter
#: error of 1 % at one of four boundary points is found only by a spectrum that puts a
#: single eigenvalue in that 1 % sliver (under ci, 40 examples found it in 7–8 of 10 seeds)
EXAMPLES_FACTOR = {"filter_agrees": 4}
EXAMPLES_CAP = 1000


def claim_examples(claim: str, max_examples: int) -> int:
    """How many examples ``claim`` runs under a profile of ``max_examples``."""
    return max(max_examples, min(EXAMPLES_FACTOR.get(claim, 1) * max_examples, EXAMPLES_CAP))


def run_claim(reg: Registration, claim: str, *, hypothesis_settings: hsettings,
              writer: RunWriter | None = None, settings: Settings = DEFAULT_SETTINGS,
              on_case: Callable[[Verdict], None] | None = None, seed: int | None = None
              ) -> ClaimResult:
    """Run one claim on one optimizer through Hypothesis and collect the result.

    ``seed`` seeds Hypothesis (and turns off the profile's derandomization).
    """
    runner = ClaimRunner(reg, claim, writer=writer, settings=settings, on_case=on_case)
    n = claim_examples(claim, int(hypothesis_settings.max_examples))
    # a profile that asks for fewer examples than min_decided can still verify
    runner.result.min_decided = min(settings.min_decided, max(1, n))

    # a seed replaces the profile's derandomization (and its example database)
    hs = (hsettings(hypothesis_settings, report_multiple_bugs=False, max_examples=n)
          if seed is None else
          hsettings(hypothesis_settings, report_multiple_bugs=False, derandomize=False,
                    database=None, max_examples=n))

    @hsettings(hs)
    @given(runner.strategy())
    def prop(case: Case | None) -> None:
        runner.execute(case)

    if seed is not None:
        prop = hseed(seed)(prop)

    start = time.perf_counter()
    error: BaseException | None = None
    try:
        # the same seed must draw the same cases whatever modules are loaded
        with fixed_constants():
            prop()
    except Exception as exc:  # noqa: BLE001 -- one broken claim must not stop the others
        error = exc
    runner.result.seconds = time.perf_counter() - start
    return runner.finish(error)


def _blob(exc: BaseException) -> str | None:
    text = "\n".join(getattr(exc, "__notes__", []) or [])
    m = re.search(r"@reproduce_failure\([^)]*\)", text)
    return m.group(0) if m else None


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: ``check_optimizer(reports=DEFAULT)``: ``$DYNVERIFY_REPORTS`` or ``reports/runs``
DEFAULT: Any = _Default()


def check_optimizer(factory: Any, *, hyperparameters: Any = None,
                    claims: Iterable[str] | None = None, profile: Any = None,
                    reports: str | Path | None = DEFAULT, settings: Settings = DEFAULT_SETTINGS,
                    writer: RunWriter | None = None, seed: int | None = None) -> CheckResult:
    """Run the claims on one optimizer and return per-claim results.

    Args:
        factory: a factory, a registered name, ``"module:factory"`` or a Registration.
        hyperparameters: a Hypothesis strategy of hyperparameter dicts (overrides the
            registration's).
        claims: claim names (default: all five).
        profile: None (default): the active Hypothesis profile, as selected by
            ``pytest --hypothesis-profile=NAME`` or ``settings.load_profile``;
            ``"dev"``, ``"ci"``, ``"deep"``: dynverify's own profiles (as on the command
            line); any other registered profile name, or a ``hypothesis.settings``.
        reports: directory of run directories to record into. Default: the environment
            variable ``DYNVERIFY_REPORTS``, else ``reports/runs`` under the working
            directory (where ``dynverify report`` looks); None: no records.
        seed: a Hypothesis seed (None: the profile decides; ``ci`` is derandomized).

    Example::

        dynverify.check_optimizer(my_optimizer).raise_for_failure()
    """
    from dataclasses import replace

    from dynverify.profiles import resolve as resolve_profile
    from dynverify.records import default_root

    claims = list(CLAIMS) if claims is None else list(claims)
    unknown = [c for c in claims if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; known: {', '.join(CLAIMS)}")
    hs = resolve_profile(profile)
    profile_name = _profile_name(profile)
    reg = resolve(factory)
    if hyperparameters is not None:
        reg = replace(reg, hyperparameters=hyperparameters)
    missing = missing_hyperparameters(reg)
    if missing:
        raise InvalidArgument(missing)  # before any run directory is started
    if reports is DEFAULT:
        reports = default_root()
    own = writer is None and reports is not None
    if own:
        writer = RunWriter(reports, meta={"profile": profile_name, "optimizers": [reg.name],
                                          "claims": claims, "source": "check_optimizer"})
    results: list[ClaimResult] = []
    try:
        for c in claims:
            results.append(run_claim(reg, c, hypothesis_settings=hs, writer=writer,
                                     settings=settings, seed=seed))
    finally:
        if own and writer is not None:
            writer.summary({"results": [r.to_json() for r in results]})
            writer.close()
    return CheckResult(reg.name, results, str(writer.dir) if writer is not None else None,
                       profile=profile_name)


def _profile_name(profile: Any) -> str:
    from dynverify.profiles import PROFILES, active_name

    if profile is None:
        return active_name()
    if isinstance(profile, str):
        return PROFILES.get(profile, profile)
    return "custom settings"


# -- replay ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Replay:
    """A counterexample re-run: the recorded verdict and the new one."""

    recorded: dict[str, Any]
    verdict: Verdict

    @property
    def reproduces(self) -> bool:
        return self.verdict.outcome is Outcome.COUNTEREXAMPLE


def rebuild_case(rec: dict[str, Any]) -> tuple[Registration, Case]:
    """The registration and case of a counterexample record (ReportError if impossible)."""
    opt_rec = rec["optimizer"]
    try:
        reg = _rebuild_registration(opt_rec)
        opt = reg.build(**opt_rec.get("hyperparameters", {}))
        if rec.get("function") is None:
            raise ReportError("the counterexample's function has no JSON spec")
        f = from_spec(rec["function"])
        X0 = np.asarray(rec["X0"], dtype=float)
        x_star = None if rec.get("x_star") is None else np.asarray(rec["x_star"], dtype=float)
        spectrum = None if rec.get("spectrum") is None else tuple(rec["spectrum"])
        relations = tuple(Relation.from_json(r) for r in rec.get("relations", []))
    except ReportError:
        raise
    except (LookupError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"cannot rebuild the case: {type(exc).__name__}: {exc}") from exc
    return reg, Case(opt, f, X0, x_star=x_star, spectrum=spectrum,
                     region=_region_or_none(opt), relations=relations)


def _rebuild_registration(opt_rec: dict[str, Any]) -> Registration:
    """The recorded optimizer's registration: a plug-in by its factory's import path or
    file (so no PYTHONPATH is needed), a built-in by name."""
    from dynverify.replayable import locate

    by_factory = opt_rec.get("source") != "builtin" and (opt_rec.get("factory")
                                                         or opt_rec.get("not_replayable"))
    if not by_factory:
        return resolve(opt_rec["name"])
    try:
        return resolve(locate(opt_rec))
    except LookupError as exc:
        try:
            return resolve(opt_rec["name"])  # registered in this process after all
        except LookupError:
            raise ReportError(f"cannot rebuild optimizer {opt_rec['name']!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- the plug-in's module fails on import
        raise ReportError(f"cannot rebuild optimizer {opt_rec['name']!r}: importing its "
                          f"module raised {type(exc).__name__}: {exc}") from None


def replay(path: str | Path) -> Replay:
    """Rebuild the case of a counterexample file and run its claim again."""
    rec = read_counterexample(path)
    _, case = rebuild_case(rec)
    claim = rec["claim"]
    if claim not in CLAIMS:
        raise ReportError(f"{path}: unknown claim {claim!r}")
    settings = Settings.from_json(rec["verdict"].get("settings", {}))
    return Replay(rec, CLAIMS[claim](case, settings))
