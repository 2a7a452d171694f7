"""The five claims of DESIGN.md §3 as functions from a case to a verdict.

Notation: z̄ = init(x̄) the lifted fixed point of a critical point x̄, J = Jac G(z̄),
r = ρ(J), R the optimizer's filter (declared, else derived). Each claim returns a
:class:`Verdict` (pass / counterexample / inconclusive with a reason) carrying its
evidence and the settings it used; none of them raises on a failing optimizer.
"""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from dynverify.derive import (
    compare_filters,
    derive,
    derive_region,
    filter_function,
    step_dependence,
)
from dynverify.engine import RATE_HISTORY, RunResult, Status, run, step_budget, window_rate
from dynverify.errors import (
    DynverifyError,
    FunctionError,
    NotDifferentiableError,
    OptimizerError,
    UnresolvedLinearizationError,
)
from dynverify.functions import RotatedFunction, ScaledFunction, TestFunction
from dynverify.linearize import (
    _flatten,
    apply_step,
    check_spectral_reduction,
    jacobian,
    lifted_state,
    next_float_radius,
    spectral_radius,
)
from dynverify.locality import into_ball, linear_radius, local_radius
from dynverify.optimizer import Optimizer
from dynverify.regions import Region, below_float_grid
from dynverify.reproducibility import stable_seed
from dynverify.rescaling import rescaled


class Outcome(str, enum.Enum):
    """What a claim concluded on one case."""

    PASS = "pass"
    COUNTEREXAMPLE = "counterexample"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Settings:
    """Tolerances, margins and budgets of the claims (all recorded in every verdict).

    Attributes:
        boundary_band: δ; cases with |r − 1| < δ are inconclusive (claims 2–3): near
            r = 1 iterations are slow and the map's nonlinear terms compete with the
            linear rate.
        linearization_band: δ₁ of claim 1, which only compares r with the filter: cases
            with |r − 1| < δ₁ are inconclusive; δ₁ covers the error of the
            finite-difference Jacobian near r = 1 (measured on every built-in, 200 cases
            each, against ρ₁ of the derived filter function: at most 5.8e-6 with
            linearization_step 1e-6, so δ₁ = 2e-4 keeps a 30× margin; 9.8e-4 with the
            earlier step 1e-8, whose steps were too small for Adam's small ∂x⁺/∂m;
            benchmarks/results/linearization-error.json).
        linearization_step: relative finite-difference step of claim 1's Jacobian (the
            C²-only terms of the planted functions make its error O(step)).
        tol: a run converged when its estimated distance to its limit is < tol.
        target_tol: a converged run is at x̄ when ‖x∞ − x̄‖ ≤ target_tol.
        fixed_point_tol: ‖G(init(x̄)) − init(x̄)‖ allowed at a critical point.
        rate_tol: claim 3 passes when the median observed rate is within
            max(rate_tol, 0.25·(1 − r)) of r.
        budget_factor: step budgets are budget_factor × the predicted number of steps.
        max_steps: hard cap of any budget.
        escape_factor: runs farther than escape_factor × (1 + ‖x̄‖ + radius) escape.
        grad_tol: a limit x∞ is critical when ‖∇f(x∞)‖ ≤ grad_tol·(1 + ‖x∞‖) (claim 4).
        eig_band: claim 4 tolerates Hessian eigenvalues outside R by eig_band·scale(R).
        metamorphic_steps: steps compared by claim 5; metamorphic_rtol its tolerance.
        free_steps: step budget of the free runs of claim 4.
        region_rtol: claim 1 also requires a declared filter to equal the derived one
            within region_rtol·scale.
        compare_filters: whether claim 1 compares a declared filter with the derived
            one at all (off: the declared filter is judged by sampled spectra only).
        min_decided_fraction, min_decided: a claim is *verified* only when none of its
            cases failed, at least min_decided cases passed (at most the profile's
            max_examples), and the passes are at least
            min_decided_fraction of its applicable cases (within the theorem's hypotheses
            and meeting the claim's premise); otherwise it is *not verified* (see
            :class:`dynverify.check.ClaimResult`).
    """

    boundary_band: float = 3e-3
    tol: float = 1e-10
    target_tol: float = 1e-6
    fixed_point_tol: float = 1e-10
    rate_tol: float = 0.02
    budget_factor: float = 3.0
    max_steps: int = 20_000
    escape_factor: float = 1e4
    grad_tol: float = 1e-6
    eig_band: float = 1e-3
    metamorphic_steps: int = 12
    metamorphic_rtol: float = 1e-7
    free_steps: int = 2000
    region_rtol: float = 1e-6
    compare_filters: bool = True
    linearization_band: float = 2e-4
    linearization_step: float = 1e-6
    min_decided_fraction: float = 0.5
    min_decided: int = 5

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


DEFAULT_SETTINGS = Settings()


@dataclass(frozen=True)
class Case:
    """One generated case: an optimizer, a function, a planted point and initial points.

    ``x_star`` is the planted critical point (None on free-run landscapes), ``spectrum``
    the exact planted Hessian spectrum when known, ``X0`` the (N, d) initial points.
    """

    optimizer: Optimizer
    function: TestFunction
    X0: np.ndarray
    x_star: np.ndarray | None = None
    spectrum: tuple[float, ...] | None = None
    region: Region | None = None
    relations: tuple[Relation, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """A claim's conclusion on one case, with its evidence (JSON-safe) and settings."""

    claim: str
    outcome: Outcome
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.COUNTEREXAMPLE

    @property
    def key_fact(self) -> str:
        """The one fact that makes a counterexample one (the limit, the eigenvalue
        outside the filter, observed vs predicted); the reason when there is none."""
        return str(self.evidence.get("key_fact") or self.reason)

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "outcome": self.outcome.value, "reason": self.reason,
                "evidence": self.evidence, "settings": self.settings}

    def __str__(self) -> str:
        if self.outcome is Outcome.COUNTEREXAMPLE:
            return f"{self.claim}: counterexample: {self.key_fact} ({self.reason})"
        return f"{self.claim}: {self.outcome.value} ({self.reason})"


# -- helpers ---------------------------------------------------------------------------

def filter_of(opt: Optimizer) -> Region:
    """The optimizer's declared filter, else the one derived from its ``step``."""
    return opt.region if opt.region is not None else derive_region(opt)


def _verdict(claim: str, outcome: Outcome, reason: str, settings: Settings,
             **evidence: Any) -> Verdict:
    return Verdict(claim, outcome, reason, _jsonable(evidence), settings.to_json())


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, enum.Enum):
        return x.name.lower() if isinstance(x, Status) else x.value
    return x


def _spectrum(case: Case) -> np.ndarray:
    if case.spectrum is not None:
        return np.asarray(case.spectrum, dtype=float)
    assert case.x_star is not None
    H = case.function.hess(case.x_star[None, :])[0]
    return np.linalg.eigvalsh(0.5 * (H + H.T))


def _fixed_point_defect(opt: Optimizer, f: TestFunction, x: np.ndarray) -> float:
    """‖G(z̄) − z̄‖ at z̄ = init(x)."""
    z = lifted_state(opt, x[None, :])
    with np.errstate(all="ignore"):
        new = apply_step(opt, z, f)
    return float(np.sqrt(sum(np.sum((np.asarray(n) - np.asarray(s)) ** 2)
                             for n, s in zip(new, z, strict=True))))


def _counts(res: RunResult) -> dict[str, int]:
    return {s.name.lower(): n for s, n in res.counts().items()}


def _run_summary(res: RunResult) -> dict[str, Any]:
    finite = res.distance[np.isfinite(res.distance)]
    return {
        "counts": _counts(res),
        "steps": {"min": int(res.steps.min()), "max": int(res.steps.max())},
        "final_distance": {"min": float(finite.min()) if finite.size else None,
                           "max": float(finite.max()) if finite.size else None},
        "observed_rate_median": (float(np.nanmedian(res.rate))
                                 if np.isfinite(res.rate).any() else None),
    }


def _guard(claim: str, settings: Settings, body: Callable[[], Verdict]) -> Verdict:
    """Run a claim; broken optimizers/functions become verdicts, not crashes."""
    try:
        return body()
    except NotDifferentiableError as exc:
        # declared exemptions are handled (and measured) before the body runs: this map
        # is not differentiable although the optimizer does not say so
        return _verdict(claim, Outcome.INCONCLUSIVE, "not-differentiable", settings,
                        error=str(exc))
    except UnresolvedLinearizationError as exc:
        # not the optimizer's fault: no float run near x̄ is in the linear regime either
        return _verdict(claim, Outcome.INCONCLUSIVE, "below-float-resolution", settings,
                        error=str(exc))
    except (OptimizerError, FunctionError) as exc:
        return _verdict(claim, Outcome.COUNTEREXAMPLE, "error", settings,
                        key_fact=f"error: {type(exc).__name__}: {exc}",
                        error=f"{type(exc).__name__}: {exc}")


def _exemption_points(case: Case) -> np.ndarray:
    """Fixed points at which to measure an exemption: x̄, else known critical points."""
    if case.x_star is not None:
        return np.asarray(case.x_star, dtype=float)[None, :]
    pts = case.function.critical_points()
    return np.zeros((0, case.function.dim)) if pts is None else np.asarray(pts, float)[:4]


def _jacobian_jump(opt: Optimizer, f: TestFunction, x: np.ndarray, J: np.ndarray
                   ) -> str | None:
    """Why the map is not C¹ at x although Jac G(x) exists, or None.

    C¹ needs Jac G continuous at the fixed point, not only defined there: Adam-type maps
    with ε outside √v are differentiable at (x̄, v = 0) along the domain v ≥ 0, but
    ∂x⁺/∂v jumps with the sign of ∇f next to it. Jacobians at x + s·u for s shrinking by
    10² must approach J (like s for a C² map); a difference that does not shrink is a
    jump. The scale s₀ is the function's quadratic radius (at most 10⁻²).
    """
    from dynverify.linearize import jacobian

    q = float(f.quadratic_radius()) if hasattr(f, "quadratic_radius") else 1e-2
    s0 = min(q, 1e-2) if q > 0 and math.isfinite(q) else 1e-2
    rng = np.random.default_rng(0)
    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u)
    size = 1.0 + float(np.max(np.abs(J)))
    gaps = []
    for k in range(3):
        s = s0 * 1e-2 ** k
        try:
            with np.errstate(all="ignore"):
                Js = jacobian(opt, f, x + s * u)
        except NotDifferentiableError as exc:
            return f"not differentiable next to the fixed point (at distance {s:.3g}): {exc}"
        except (OptimizerError, FunctionError):
            return None
        gaps.append(float(np.max(np.abs(Js - J))))
    if gaps[-1] > 1e-6 * size and gaps[-1] > 0.1 * gaps[0]:
        return ("Jac G is not continuous at the fixed point: max|Jac G(x̄ + s·u) − Jac G(x̄)| "
                f"= {', '.join(f'{g:.3g}' for g in gaps)} at s = "
                f"{', '.join(f'{s0 * 1e-2 ** k:.3g}' for k in range(3))}")
    return None


def _exempted(claim: str, case: Case, settings: Settings,
              judge: Callable[[Case, Settings], Verdict]) -> Verdict:
    """A claim on an optimizer that declares ``outside_hypotheses``: measure, don't trust.

    The map's differentiability is tested at fixed points (x̄, or the landscape's known
    critical points) with :func:`dynverify.linearize.jacobian`. Not differentiable at one
    of them: the exemption is confirmed, the verdict is inconclusive
    ("outside-hypotheses") with the measured reason. Differentiable at all of them: the
    claim is judged as if there were no exemption; a counterexample stands, anything else
    is inconclusive "exemption-not-confirmed", which keeps the run from being verified.
    """
    from dataclasses import replace

    from dynverify.linearize import jacobian

    opt = case.optimizer
    points = _exemption_points(case)
    measured = []
    for x in points:
        try:
            with np.errstate(all="ignore"):
                J = jacobian(opt, case.function, x)
        except NotDifferentiableError as exc:
            return _verdict(claim, Outcome.INCONCLUSIVE, "outside-hypotheses", settings,
                            why=opt.outside_hypotheses, measured=str(exc), at=x)
        except (OptimizerError, FunctionError):
            break  # the claim itself reports a broken optimizer
        jump = _jacobian_jump(opt, case.function, x, J)
        if jump is not None:
            return _verdict(claim, Outcome.INCONCLUSIVE, "outside-hypotheses", settings,
                            why=opt.outside_hypotheses, measured=jump, at=x)
        measured.append({"x": x, "max_abs_jacobian": float(np.max(np.abs(J)))})
    if points.shape[0] == 0:
        return _verdict(claim, Outcome.INCONCLUSIVE, "outside-hypotheses", settings,
                        why=opt.outside_hypotheses,
                        measured="not measured: no fixed point is known on this function")
    plain = judge(replace(case, optimizer=replace(opt, outside_hypotheses=None)), settings)
    ev = dict(plain.evidence, exemption=opt.outside_hypotheses, differentiable_at=measured)
    if plain.outcome is Outcome.COUNTEREXAMPLE:
        ev["key_fact"] = (f"{plain.key_fact} (the optimizer claims to be outside the "
                          "hypotheses, but its map is differentiable at the fixed point)")
        return Verdict(claim, Outcome.COUNTEREXAMPLE, f"exemption not confirmed; "
                       f"{plain.reason}", _jsonable(ev), settings.to_json())
    ev["without_exemption"] = f"{plain.outcome.value} ({plain.reason})"
    return Verdict(claim, Outcome.INCONCLUSIVE, "exemption-not-confirmed", _jsonable(ev),
                   settings.to_json())


def _precheck(claim: str, case: Case, settings: Settings) -> Verdict | None:
    """Common preconditions: the theorem applies, and init(x̄) is a fixed point."""
    opt = case.optimizer
    if case.x_star is not None:
        defect = _fixed_point_defect(opt, case.function, case.x_star)
        scale = 1.0 + float(np.max(np.abs(case.x_star)))
        if not math.isfinite(defect):
            return _verdict(claim, Outcome.COUNTEREXAMPLE, "nonfinite-step", settings,
                            key_fact="step returned non-finite values at init(x̄), x̄ a "
                                     "critical point",
                            error=f"optimizer {opt!r} returned non-finite values from a "
                                  "finite state at a critical point")
        if not defect <= settings.fixed_point_tol * scale:
            return _verdict(claim, Outcome.COUNTEREXAMPLE, "init-not-fixed-point", settings,
                            key_fact=f"init(x̄) is not a fixed point: ‖G(z̄) − z̄‖ = "
                                     f"{defect:.3g} at the critical point x̄",
                            fixed_point_defect=defect,
                            expected="G(init(x̄)) = init(x̄) at a critical point x̄")
    return None


def _linearization(case: Case, h: float | None = None) -> tuple[float, np.ndarray, Region]:
    assert case.x_star is not None
    r = (spectral_radius(case.optimizer, case.function, case.x_star) if h is None else
         spectral_radius(case.optimizer, case.function, case.x_star, h=h))
    lams = _spectrum(case)
    region = case.region if case.region is not None else filter_of(case.optimizer)
    return r, lams, region


def _fmt(x: Any) -> str:
    """A short rendering of a number or vector for key facts."""
    a = np.atleast_1d(np.asarray(x, dtype=float))
    body = ", ".join(f"{v:.4g}" for v in a[:6]) + (", …" if a.size > 6 else "")
    return body if a.size == 1 and np.ndim(x) == 0 else f"({body})"


def _in_subgrid_band(region: Region, lams: np.ndarray) -> float | None:
    """An eigenvalue lying in an interval of the filter no wider than 2 ulps where it
    lies, or None. (USAM at ρ = 2.2e-308: its band [−1/ρ − 4, −1/ρ] is one float at
    −4.5e307, where 1 + ρλ carries a rounding of 1e-16 and α·λ·(1 + ρλ) reads 1e291.)"""
    for a, b in region.intervals:
        if below_float_grid(a, b):
            hit = lams[(lams >= a) & (lams <= b)]
            if hit.size:
                return float(hit[0])
    return None


def _boundary_distance(region: Region, lams: np.ndarray) -> float:
    return float(np.min(np.abs(region.margin(lams)))) if lams.size else math.inf


def _ball_radius(case: Case) -> float:
    assert case.x_star is not None
    d = np.sqrt(np.sum((case.X0 - case.x_star) ** 2, axis=1))
    return float(max(d.max(), 1e-300))


#: claim 2 keeps a ball of at least this many smallest resolvable balls (MIN_BALL_RELATIVE)
#: where the map is linear only in a smaller one (see :func:`_local_case`)
UNSTABLE_BALL_FLOOR = 10.0


def unstable_ball(linear: float, local: float, floor: float) -> float:
    """Claim 2's ball: the linear radius, but at least UNSTABLE_BALL_FLOOR × the smallest
    resolvable ball ``floor`` (never beyond the ``local`` radius); see :func:`_local_case`.
    Cases are drawn (``check.cases``) and judged with the same ball."""
    return max(linear, min(local, UNSTABLE_BALL_FLOOR * floor))


def _local_case(case: Case, ev: dict[str, Any], r: float | None = None,
                unstable: bool = False) -> Case:
    """The case with its starts pulled into the ball where the map's linearization governs.

    Every point one step evaluates must stay where f is quadratic (see
    :mod:`dynverify.locality`); starts outside that ball are moved onto its sphere, so a
    recorded case drawn with a larger ball replays locally too.

    ``unstable`` (claim 2): the ball is not shrunk below UNSTABLE_BALL_FLOOR smallest
    resolvable balls for the map's nonlinearity. Claim 3 needs the linear ball (nonlinear
    terms can keep a run from a stable x̄), claim 2 does not: the starts that converge to
    an unstable x̄ form a null set wherever they are drawn, and a run that seems to is
    confirmed separately. (Adam with ε ~ 1e-8 near r = 1 is linear to a tenth of |r − 1|
    only within 1e-17 of x̄, which left 16 % of its claim-2 cases without a ball.)
    """
    from dataclasses import replace

    assert case.x_star is not None
    radius, amp = local_radius(case.optimizer, case.function, case.x_star)
    if r is not None and math.isfinite(r):
        lin = linear_radius(case.optimizer, case.function, case.x_star, radius,
                            abs(1.0 - r))
        radius = unstable_ball(lin, radius, _min_ball(case)) if unstable else lin
    X0, moved = into_ball(case.X0, case.x_star, radius)
    ev.update(local_radius=radius, evaluation_amplification=amp, starts_moved=moved)
    return replace(case, X0=X0) if moved else case


def _zoomed(settings: Settings, radius: float) -> Settings:
    """``settings`` for runs from a ball of this radius (claims 2 and 3).

    The claims are local: a ball smaller than 10·target_tol (Adam with ε ≈ 1 is linear to
    within a tenth of |r − 1| only within about 1e-6 of x̄, its |∇f|/ε term being
    first order) is judged as a larger one is, with tol and target_tol scaled by
    radius/(10·target_tol), so "converged to x̄" still means "within a tenth of the ball
    radius of x̄". Idempotent: zooming zoomed settings for the same ball changes nothing.
    """
    s = radius / (10.0 * settings.target_tol)
    if not s < 1.0:
        return settings
    return replace(settings, tol=settings.tol * s, target_tol=settings.target_tol * s)


#: claims 2 and 3 need a ball of at least this radius × (1 + ‖x̄‖): the zoomed tol is
#: then ≥ 1e-12·(1 + ‖x̄‖), thousands of ulps of x̄, so that steps can fall below it
MIN_BALL_RELATIVE = 1e-7


def _min_ball(case: Case) -> float:
    """The smallest start ball claims 2 and 3 judge at x̄ (see MIN_BALL_RELATIVE)."""
    x = case.x_star if case.x_star is not None else np.zeros(case.function.dim)
    return MIN_BALL_RELATIVE * (1.0 + float(np.linalg.norm(x)))


def _local_ball(name: str, case: Case, ev: dict[str, Any], r: float, settings: Settings
                ) -> tuple[Case, float, Settings, Verdict | None]:
    """Claims 2 and 3: (local case, ball radius, settings zoomed to the ball, verdict);
    the verdict is an inconclusive one when the ball is below float resolution."""
    local = _local_case(case, ev, r, unstable=name == "unstable_no_convergence")
    radius = _ball_radius(local)
    if radius < _min_ball(local):
        return local, radius, settings, _verdict(
            name, Outcome.INCONCLUSIVE, "below-float-resolution: the map is linear only in "
            "a ball too small to resolve", settings, **ev)
    zs = _zoomed(settings, radius)
    if zs is not settings:
        ev["tolerances_zoomed"] = {"tol": zs.tol, "target_tol": zs.target_tol}
    return local, radius, zs, None


def _escape(case: Case, settings: Settings, radius: float) -> float:
    x = case.x_star if case.x_star is not None else np.zeros(case.function.dim)
    return settings.escape_factor * (1.0 + float(np.linalg.norm(x)) + radius)


# -- claim 1 ---------------------------------------------------------------------------

class Remembered:
    """At most ``maxsize`` values by hashable key, the least recently used dropped first.

    ``get(key, compute)`` returns the value remembered for ``key``, else ``compute()``
    (remembered; a key of None is never remembered)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._values: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key is None:
            return compute()
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        value = compute()
        self._values[key] = value
        if len(self._values) > self.maxsize:
            self._values.popitem(last=False)
        return value


_DERIVATIONS = Remembered(256)


def map_key(opt: Optimizer) -> Any:
    """A hashable key of the update map, or None: the optimizer as records identify it
    (name and hyperparameters) plus the code of its step and init functions."""
    try:
        key = (opt.name, json.dumps(opt.hyperparameters, sort_keys=True, default=repr),
               getattr(opt.step, "__code__", opt.step), getattr(opt.init, "__code__",
                                                                 opt.init))
        hash(key)
    except Exception:  # noqa: BLE001 -- unhashable parts: no key
        return None
    return key


def _derive_cached(opt: Optimizer) -> Any:
    """derive(opt), remembered per map (:func:`map_key`): Hypothesis draws the same
    hyperparameters for many cases (its mutations change the spectrum and keep them),
    and the derivation depends on the update map only."""
    return _DERIVATIONS.get(map_key(opt), lambda: derive(opt))


def filter_agrees(case: Case, settings: Settings = DEFAULT_SETTINGS) -> Verdict:
    """Claim 1: spectrum ⊂ R ⇔ r ≤ 1 (inconclusive when |r − 1| < δ).

    A declared filter must moreover equal :func:`derive_region` of the optimizer.
    """
    name = "filter_agrees"
    if case.optimizer.outside_hypotheses:
        return _exempted(name, case, settings, filter_agrees)

    def body() -> Verdict:
        pre = _precheck(name, case, settings)
        if pre is not None:
            return pre
        r, lams, region = _linearization(case, settings.linearization_step)
        inside = bool(np.all(region.contains(lams)))
        ev = dict(spectral_radius=r, spectrum=lams, region=region.to_json(),
                  region_str=str(region), predicted_inside=inside,
                  boundary_distance=_boundary_distance(region, lams))
        thin = _in_subgrid_band(region, lams)
        if thin is not None:
            return _verdict(name, Outcome.INCONCLUSIVE, "below-float-resolution: eigenvalue "
                            "in a filter band narrower than the float grid", settings,
                            key_fact=f"λ = {thin!r} lies in a band of the filter no wider "
                            "than 2 ulps there: the float map cannot resolve it", **ev)
        moved = _rescaled_radius(case)
        if moved is not None and abs(moved[0] - r) > settings.linearization_band * max(1.0, r):
            # the float map does not follow the optimizer's own scaling relation here: the
            # set-up where floats resolve it decides (or nothing does)
            r2, where = moved
            ev.update(rescaled_spectral_radius=r2, rescaled_setup=where)
            lost = (f"r = ρ(Jac G) = {r:.6g} here but {r2:.6g} on {where}, which the declared "
                    "scaling relation makes equal in exact arithmetic: floats under- or "
                    "overflow inside the step at this scale")
            if abs(r2 - 1.0) >= settings.linearization_band and inside != (r2 <= 1.0):
                return _verdict(name, Outcome.COUNTEREXAMPLE, "spectrum inside the filter but "
                                "r > 1" if inside else "spectrum outside the filter but r ≤ 1",
                                settings, key_fact=f"{lost}; there r = {r2:.6g} "
                                f"{'> 1 although' if inside else '≤ 1 although not'} every "
                                f"eigenvalue {_fmt(lams)} lies in the filter {region}", **ev)
            return _verdict(name, Outcome.INCONCLUSIVE, "below-float-resolution: the float map "
                            "does not follow its scaling relation here", settings,
                            key_fact=lost, **ev)
        if abs(r - 1.0) >= settings.linearization_band and inside != (r <= 1.0):
            why = ("spectrum inside the filter but r > 1" if inside
                   else "spectrum outside the filter but r ≤ 1")
            if inside:
                fact = (f"r = ρ(Jac G) = {r:.6g} > 1 although every eigenvalue "
                        f"{_fmt(lams)} lies in the filter {region}")
            else:
                out = lams[~np.asarray(region.contains(lams), dtype=bool)]
                fact = (f"eigenvalue {_fmt(out)} lies outside the filter {region}, yet "
                        f"r = ρ(Jac G) = {r:.6g} ≤ 1")
            return _verdict(name, Outcome.COUNTEREXAMPLE, why, settings, key_fact=fact, **ev)
        if case.optimizer.region is not None and settings.compare_filters:
            # a declared filter must also equal the one derived from the update itself:
            # this catches a wrong declaration whatever spectrum was drawn
            found, wit = compare_declared(case.optimizer, settings)
            ev.update(found)
            if wit is not None:
                ev.update(wit, key_fact=wit["witness"])
                return _verdict(name, Outcome.COUNTEREXAMPLE,
                                "declared filter differs from the derived filter",
                                settings, **ev)
        if abs(r - 1.0) < settings.linearization_band:
            return _verdict(name, Outcome.INCONCLUSIVE, "boundary-band", settings, **ev)
        return _verdict(name, Outcome.PASS, "filter matches linearization", settings, **ev)

    return _guard(name, settings, body)


def compare_declared(opt: Optimizer, settings: Settings = DEFAULT_SETTINGS
                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Claim 1's comparison of ``opt``'s declared filter with the derived one.

    Returns (evidence, witness): the witness (an eigenvalue with ρ₁ there, see
    :func:`_witness`) when the filters differ decisively, which is a counterexample;
    else None, with every difference that was left aside and why in the evidence's
    ``comparison_ignored``. The comparison is made at float resolution, on the range
    the derivation certifies (:func:`dynverify.derive.compare_filters`); an uncertified
    derivation only counts with a witness whose ρ₁ is boundary_band from 1.
    """
    assert opt.region is not None
    derivation = _derive_cached(opt)
    cmp = compare_filters(opt.region, derivation, rtol=settings.region_rtol,
                          filter_function=filter_function(opt, strict=False))
    ignored = list(cmp.ignored)
    ev: dict[str, Any] = dict(derived_region=str(derivation.region),
                              derivation=derivation.describe(), comparison_ignored=ignored)
    if cmp.agree:
        return ev, None
    wit = _witness(opt, cmp.declared, cmp.derived)
    if not wit:
        ignored.append(
            "declared and derived filters differ only between boundary points closer than "
            "1e-9 of their size: no float eigenvalue probed there shows which is right "
            "(penalty SAM at α = 5.8e28, ρ = 4.9e16: its band of width 3.45e-29 at "
            "−1/ρ = −2.05e-17 is below the derivation's resolution)")
        return ev, None
    if not (derivation.certified
            or abs(wit["witness_spectral_radius"] - 1.0) >= settings.boundary_band):
        ignored.append("declared and derived filters differ, but the derivation is not "
                       f"certified ({derivation.describe()}) and no decisive witness was "
                       "found")
        return ev, None
    doubt = _witness_doubt(opt, wit)
    if doubt is not None:
        ignored.append(doubt)
        return ev, None
    return ev, wit


def _rescaled_radius(case: Case) -> tuple[float, str] | None:
    """(r', set-up): ρ(Jac G) of the optimizer moved by its scaling relation to moderate
    hyperparameters (:func:`dynverify.rescaling.rescaled`), on 2ᴷ·f; None when there is no
    such set-up (moderate hyperparameters, no relation) or it does not linearize.

    The relation makes r' = r in exact arithmetic, so a difference is the float map's:
    penalty SAM at α = ρ = 1e300 on λ = −1.95e-300 computes ρ·λ·(λx) = 0 and reads
    r = 2.95, against 0.41 on the rescaled set-up."""
    moved = rescaled(case.optimizer)
    if moved is None or not math.isfinite(moved.c):
        return None
    assert case.x_star is not None
    try:
        with np.errstate(all="ignore"):
            r2 = spectral_radius(moved.optimizer, ScaledFunction(case.function, moved.c),
                                 case.x_star)
    except (DynverifyError, ArithmeticError, ValueError, np.linalg.LinAlgError):
        return None
    return (r2, moved.describe()) if math.isfinite(r2) else None


#: a witness whose ρ₁ is within this of 1 decides nothing (rounding of ρ₁ itself)
WITNESS_RESOLUTION = 1e-9
#: a witness whose ρ₁ moves by more than this (relative) with 2^20-fold smaller
#: finite-difference steps is not measured
WITNESS_STEP_TOL = 1e-3


def _witness_doubt(opt: Optimizer, wit: dict[str, Any]) -> str | None:
    """Why a witness of a filter disagreement does not show the declaration wrong, or None.

    - ρ₁ at the witness is on the declared filter's side of 1: the derivation is what is
      wrong there (USAM at α = ρ = 5e307, filters at 1e-308: derived (−∞, −2e-308], yet
      ρ₁(−5e-289) = 6.4e38 as declared).
    - ρ₁ at the witness is 1 to rounding (WITNESS_RESOLUTION): no side is shown.

    (A float map that underflows inside the step at the witness, as penalty SAM at
    α = ρ = 1e300, where ρλ²x underflows, is not doubted here: ρ₁ and the derivation
    are taken on the rescaled set-up there, see :mod:`dynverify.rescaling`.)
    """
    lam, rho = wit.get("witness_lambda"), wit.get("witness_spectral_radius")
    if lam is None or rho is None or not math.isfinite(rho):
        return None
    inside = wit.get("witness_declared_inside")
    if abs(rho - 1.0) <= WITNESS_RESOLUTION:
        return (f"declared and derived filters differ, but ρ₁({lam:.6g}) = {rho!r} is 1 to "
                "rounding there: no float eigenvalue decides which is right")
    if inside is not None and (rho <= 1.0) == bool(inside):
        return (f"declared and derived filters differ, but ρ₁({lam:.6g}) = {rho:.6g} is on "
                "the declared filter's side: the derivation is wrong there")
    moved = step_dependence(opt, lam)
    if not moved <= WITNESS_STEP_TOL * max(1.0, rho):
        return (f"declared and derived filters differ, but ρ₁({lam:.6g}) = {rho:.6g} moves "
                f"by {moved:.3g} when the finite-difference steps shrink 2^20-fold: the "
                "float map is not linear at any step there, and ρ₁ is not measured")
    return None


def _witness(opt: Optimizer, declared: Region, derived: Region) -> dict[str, Any]:
    """An eigenvalue on which the declared and derived filters disagree, with ρ₁ there.

    Probes are the midpoints of gaps between boundary points wider than 1e-9 of their
    size (a derived 1e-23 against a declared 0 says nothing), points beyond both ends,
    and the isolated points that only one of the filters has.
    """
    ends = sorted(set(declared.boundary()) | set(derived.boundary()))
    if not ends:
        return {}
    span = max(1.0, ends[-1] - ends[0])
    mags = [abs(e) for e in ends if e != 0]
    floor = min((e for e in mags if e > 1e-9 * max(mags)), default=1.0)
    probes = [0.5 * a + 0.5 * b for a, b in zip(ends, ends[1:])
              if b - a > 1e-9 * max(abs(a), abs(b), floor)]
    probes += [ends[0] - 0.1 * span, ends[-1] + 0.1 * span]
    # an isolated point of one filter only is a gap of width 0: probe it itself
    probes += sorted(set(declared.isolated_points) ^ set(derived.isolated_points))
    rho1 = filter_function(opt, strict=False)
    for lam in probes:
        a, b = bool(declared.contains(lam)), bool(derived.contains(lam))
        if a != b:
            rho = float(rho1(np.array([lam]))[0])
            return {"witness_lambda": lam, "witness_spectral_radius": rho,
                    "witness_declared_inside": a,
                    "witness": f"λ = {lam:.6g} is {'inside' if a else 'outside'} the declared "
                               f"filter but ρ₁(λ) = {rho:.6g}"}
    return {}


# -- claims 2 and 3 --------------------------------------------------------------------

def _local_premise(name: str, case: Case, settings: Settings, predicted: str
                   ) -> tuple[Verdict | None, float, dict[str, Any]]:
    """Preconditions and linearization shared by claims 2 and 3 (``predicted`` may use {r})."""
    pre = _precheck(name, case, settings)
    if pre is not None:
        return pre, math.nan, {}
    r, lams, region = _linearization(case)
    ev = dict(spectral_radius=r, spectrum=lams, region_str=str(region),
              boundary_distance=_boundary_distance(region, lams),
              predicted=predicted.format(r=r))
    # the runs' states are floats next to z̄, never z̄ itself (a buffer, once nonzero, is
    # at least one ulp): when one ulp of the lifted state already moves ρ(Jac G) by more
    # than δ, runs follow another linearization and neither claim can be decided
    r_next = next_float_radius(case.optimizer, case.function, case.x_star)
    if r_next is not None and abs(r_next - r) > settings.boundary_band * max(1.0, r):
        ev["next_float_spectral_radius"] = r_next
        return _verdict(name, Outcome.INCONCLUSIVE, "below-float-resolution: one ulp of "
                        "the lifted state changes the linearization", settings,
                        key_fact=f"ρ(Jac G) = {r:.6g} at z̄ = init(x̄) but {r_next:.6g} at the "
                        "float state one ulp away (a hyperparameter at the spacing of floats "
                        "there, e.g. ε subnormal): runs cannot follow the linearization at z̄",
                        **ev), r, ev
    return None, r, ev


def _excited_radii(case: Case) -> np.ndarray:
    """Per start: the spectral radius of J on the modes its displacement excites.

    init(X₀) − init(x̄) need not be generic in the lifted space: adaptive methods start
    with v = 0, and their v-mode (eigenvalue β₂, reached from x only at second order)
    is then never excited linearly, so runs contract at the rate of the other modes; a
    start on an eigenvector of the Hessian (a coordinate axis, which Hypothesis draws
    readily: its floats shrink to 0) excites only that eigenvalue's modes. A start's
    eigen-coefficients below 1e-6 of its largest count as absent.
    """
    assert case.x_star is not None
    J = jacobian(case.optimizer, case.function, case.x_star)
    n = case.X0.shape[0]
    z0 = _flatten(lifted_state(case.optimizer, case.X0), n)[0]
    zb = _flatten(lifted_state(case.optimizer, case.x_star[None, :]), 1)[0]
    w, V = np.linalg.eig(J)
    try:
        C = np.abs(np.linalg.solve(V, (z0 - zb).T))  # (m, n) eigen-coefficients
    except np.linalg.LinAlgError:
        return np.full(n, float(np.max(np.abs(w))))
    excited = C > 1e-6 * np.maximum(np.max(C, axis=0, keepdims=True), 1e-300)
    return np.max(np.where(excited, np.abs(w)[:, None], 0.0), axis=0)


def _absorbed_by_rounding(case: Case, X: np.ndarray, r: float, rows: np.ndarray
                          ) -> np.ndarray:
    """The rows whose converged positions X leave an unstable mode of x̄ within rounding.

    Near x̄ ≠ 0 floats are spaced ulp(x̄ᵢ) apart: once the component of x − x̄ along an
    unstable mode is below that spacing, rounding can remove it, whereas in exact
    arithmetic it would grow back (Adam/RMSprop with β₁ = 0 at r = 1.006–1.08: the large
    v first contracts the run below 1e-16, then decays; at x̄ = 0 the same run shrinks
    to 1e-19 and grows out again). "Within rounding" is k = 4 + 2/(r − 1) times the
    rounding the mode receives per step, Σᵢ|wᵢ|·ulp(z̄ᵢ) (w its left eigenvector): a
    mode growing by r gains less than half of that per step below k/4 of it, and
    rounding can hold it there for ever (a float period-2 orbit 30 ulps from x̄ = 1).
    The buffers of the lifted state are taken as init's (they decay to it at a limit).
    Only rows whose start excites an unstable mode count: a run whose unstable modes
    were never excited (an init on the stable manifold) converges in exact arithmetic
    too, and that is a real counterexample.
    """
    assert case.x_star is not None
    if not rows.size:
        return rows
    opt = case.optimizer
    zb = _flatten(lifted_state(opt, case.x_star[None, :]), 1)[0][0]
    noise = np.spacing(np.abs(zb)) * (zb != 0.0)
    if not noise.any():
        return rows[:0]  # x̄ = 0 (and buffers 0): floats resolve every small displacement
    vals, W = np.linalg.eig(jacobian(opt, case.function, case.x_star).T)
    W = W[:, np.abs(vals) > 1.0]
    if not W.shape[1]:
        return rows[:0]
    Z = _flatten(lifted_state(opt, X), X.shape[0])[0]
    coeff = np.abs((Z - zb) @ W)  # (rows, unstable modes)
    floor = np.abs(W).T @ noise  # rounding per step, per mode
    k = 4.0 + 2.0 / max(r - 1.0, 1e-12)
    held = np.any((floor > 0) & (coeff <= k * floor), axis=1)
    excites = _excited_radii(case)[rows] > 1.0
    return rows[held & excites]


def _unit_directions(at: np.ndarray, n: int) -> np.ndarray:
    """n random unit vectors in the space of ``at``'s last axis, seeded by a stable hash
    of ``at`` (the same point gets the same directions in every process)."""
    rng = np.random.default_rng(stable_seed(np.asarray(at).tobytes()))
    U = rng.standard_normal((n, np.asarray(at).shape[-1]))
    return U / np.linalg.norm(U, axis=1, keepdims=True)


def _robustly_converges(case: Case, rows: np.ndarray, radius: float, settings: Settings,
                        budget: int, escape: float, r: float) -> bool:
    """Do most starts moved by 10 % of the ball radius from the converging ones converge?

    The stable manifold of an unstable x̄ has measure zero, but a start can lie within
    rounding of it (a tiny ball around x̄ in few dimensions): a counterexample to claim 2
    must converge from a neighbourhood, not from one lucky point.
    """
    assert case.x_star is not None
    X = case.X0[rows]
    U = _unit_directions(X, 4 * X.shape[0])
    starts = np.repeat(X, 4, axis=0) + 0.1 * radius * U
    res = run(case.optimizer, case.function, starts, target=case.x_star, tol=settings.tol,
              target_tol=settings.target_tol, max_steps=budget, escape_radius=escape)
    # a restart counts only if it stays at x̄ for its escape time too (:func:`_stays`)
    hit = np.flatnonzero(res.status == Status.CONVERGED_TARGET)
    ok = np.zeros(len(res), dtype=bool)
    if hit.size:
        stayed, capped, _, _ = _stays(case, settings, r, starts[hit], res.steps[hit],
                                      res.distance[hit])
        ok[hit] = stayed & ~capped
    # an attractor takes (almost) all of them, a measure-zero coincidence (almost) none
    return bool(np.mean(ok) >= 0.5)


#: claim 2: an undecided run that has been this many ball radii from x̄ is not converging
#: to it (the ball is where the linearization governs)
LEFT_BALL_FACTOR = 10.0


def unstable_no_convergence(case: Case, settings: Settings = DEFAULT_SETTINGS) -> Verdict:
    """Claim 2: r ≥ 1 + δ ⇒ no initial point near x̄ converges to x̄."""
    name = "unstable_no_convergence"
    if case.optimizer.outside_hypotheses:
        return _exempted(name, case, settings, unstable_no_convergence)

    def body() -> Verdict:
        pre, r, ev = _local_premise(name, case, settings, "no run converges to x̄")
        if pre is not None:
            return pre
        if r < 1.0 + settings.boundary_band:
            return _verdict(name, Outcome.INCONCLUSIVE, "premise-not-met: r < 1 + δ",
                            settings, **ev)
        local, radius, zs, tiny = _local_ball(name, case, ev, r, settings)
        if tiny is not None:
            return tiny
        # escape_factor ball radii from x̄ a run is far outside the linear region (the
        # ball was shrunk by the transient growth of the map, so a stable x̄ would have
        # kept it inside); coming back to x̄ would mean landing on its stable manifold, a
        # null set. Runs stop there instead of growing to escape_factor·(1 + ‖x̄‖).
        escape = min(_escape(local, settings, radius), settings.escape_factor * radius)
        budget = step_budget(r, start=zs.tol, finish=escape,
                             factor=settings.budget_factor, maximum=settings.max_steps)
        res = run(local.optimizer, local.function, local.X0, target=case.x_star, tol=zs.tol,
                  target_tol=zs.target_tol, max_steps=budget, escape_radius=escape)
        ev.update(budget=budget, escape_radius=escape, observed=_run_summary(res))
        rows = np.flatnonzero(res.status == Status.CONVERGED_TARGET)
        absorbed = _absorbed_by_rounding(local, res.x[rows], r, rows)
        if absorbed.size:
            ev["absorbed_by_rounding"] = int(absorbed.size)
            rows = np.setdiff1d(rows, absorbed)
        kinds: list[str] = []
        if rows.size:
            # a run near an unstable x̄ can look converged (its steps below tol while a
            # stable mode decays): it counts only if it stays there for its escape time
            kinds, details = _confirm_convergence(local, zs, r, res, rows)
            ev["confirmation"] = details
        staying = np.zeros(len(res), dtype=bool)
        staying[rows[[k == "stays" for k in kinds]]] = True
        n_target = int(staying.sum())
        if n_target and not _robustly_converges(local, staying, radius, zs, budget, escape,
                                                r):
            ev["unconfirmed_convergence"] = n_target
            return _verdict(name, Outcome.INCONCLUSIVE, "convergence-not-robust", settings,
                            **ev)
        if n_target:
            return _verdict(name, Outcome.COUNTEREXAMPLE,
                            f"{n_target} of {len(res)} runs converged to an unstable x̄",
                            settings, key_fact=f"{n_target} of {len(res)} runs converged to "
                            f"x̄ although r = {r:.6g} > 1 (predicted: none converges)", **ev)
        if "unconfirmed" in kinds:
            return _verdict(name, Outcome.INCONCLUSIVE, "budget-exhausted: convergence to x̄ "
                            "not confirmable within max_steps", settings, **ev)
        if absorbed.size:
            return _verdict(name, Outcome.INCONCLUSIVE, "below-float-resolution: runs reached "
                            "x̄ ≠ 0 to within rounding, which can absorb the unstable mode",
                            settings, **ev)
        bad = _noncritical_fixed_points(local.optimizer, local.function,
                                        res.x[res.status == Status.CONVERGED_ELSEWHERE],
                                        zs)
        if bad:
            ev["noncritical_limits"] = bad[:5]
            return _verdict(name, Outcome.COUNTEREXAMPLE, "non-critical fixed point", settings,
                            key_fact=bad[0]["fact"], **ev)
        stuck = (res.status == Status.UNDECIDED) & (res.distance <= radius)
        if stuck.any():
            # an undecided run back inside the ball may be circling x̄ on a cycle that
            # nonlinear terms made (Adam's adaptive step bounds the growth): once it has
            # been LEFT_BALL_FACTOR ball radii away it left the region the linearization
            # governs, and reaching x̄ again would mean landing on its stable manifold
            rows = np.flatnonzero(stuck)
            far = LEFT_BALL_FACTOR * radius
            worst = _stay_distance(local.optimizer, local.function, local.X0[rows],
                                   case.x_star, np.zeros(rows.size, dtype=int),
                                   res.steps[rows], far)
            if not np.all(worst > far):
                return _verdict(name, Outcome.INCONCLUSIVE, "budget-exhausted", settings,
                                **ev)
            ev["undecided_after_leaving_the_ball"] = int(rows.size)
        return _verdict(name, Outcome.PASS, "no run converged to x̄", settings, **ev)

    return _guard(name, settings, body)


def _stay_distance(opt: Optimizer, f: TestFunction, X0: np.ndarray, x_star: np.ndarray,
                   start: np.ndarray, end: np.ndarray, leave: float) -> np.ndarray:
    """max ‖xₜ − x̄‖ over start ≤ t ≤ end of the runs from init(X0) (one row each).

    The runs are replayed from their initial points, so that a run is continued from
    its full lifted state at step ``start`` (the engine reports only x). Stops early
    once every row has been farther than ``leave``.
    """
    z = lifted_state(opt, X0)
    worst = np.zeros(X0.shape[0])
    with np.errstate(all="ignore"):
        for t in range(1, int(end.max()) + 1):
            z = apply_step(opt, z, f, t)
            x = np.asarray(opt.position(z))
            dist = np.sqrt(np.sum((x - x_star) ** 2, axis=1))
            dist = np.where(np.isfinite(dist), dist, np.inf)
            live = (t >= start) & (t <= end)
            worst = np.where(live, np.maximum(worst, dist), worst)
            if np.all(worst > leave):
                break
    return worst


def _stays(case: Case, settings: Settings, r: float, X0: np.ndarray, steps: np.ndarray,
           distance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Do runs judged converged at ``steps`` stay within target_tol of x̄ long enough?

    Long enough is the predicted escape time from their distance d: a component c ≤ d
    along the unstable mode grows as c·rᵗ and leaves the target_tol ball within
    budget_factor·log(target_tol/d)/log r steps (+ 50); below d ≥ 1e-16·(1 + ‖x̄‖)
    rounding re-excites it anyway. Returns (stayed, capped, horizon, max distance);
    ``capped``: the horizon needed more than max_steps steps.
    """
    assert case.x_star is not None
    floor = 1e-16 * (1.0 + float(np.linalg.norm(case.x_star)))
    needed = np.array([step_budget(r, start=max(float(d), floor) if np.isfinite(d) else floor,
                                   finish=max(settings.target_tol, floor),
                                   factor=settings.budget_factor, maximum=10**12)
                       for d in distance])
    horizon = np.minimum(needed, settings.max_steps)
    worst = _stay_distance(case.optimizer, case.function, X0, case.x_star, steps,
                           steps + horizon, settings.target_tol)
    stayed = worst <= settings.target_tol
    return stayed, needed > horizon, horizon, worst


def _confirm_convergence(case: Case, settings: Settings, r: float, res: RunResult,
                         rows: np.ndarray) -> tuple[list[str], list[dict[str, Any]]]:
    """Continue the runs ``rows`` judged converged to x̄ although r ≥ 1 + δ (claim 2).

    The engine's test (steps below tol and contracting) can fire on a transient: near an
    unstable x̄ a decaying mode (an adaptive method's v, at rate β₂) can dominate ‖Δz‖
    while the unstable one is tiny. Such a run leaves the target_tol ball within its
    predicted escape time (:func:`_stays`). Kinds per row: "stays", "transient" (it
    left), "unconfirmed" (it stayed, but the escape time needs more than max_steps:
    neither a pass nor a counterexample).
    """
    stayed, capped, horizon, worst = _stays(case, settings, r, case.X0[rows],
                                            res.steps[rows], res.distance[rows])
    kinds = ["transient" if not s else "unconfirmed" if c else "stays"
             for s, c in zip(stayed, capped, strict=True)]
    details = [{"row": int(i), "converged_at_step": int(res.steps[i]),
                "distance": float(res.distance[i]), "horizon": int(h),
                "max_distance_after": float(w), "horizon_capped": bool(c), "kind": k}
               for i, h, w, c, k in zip(rows, horizon, worst, capped, kinds, strict=True)]
    return kinds, details


#: a run stalled "at x̄" is within this many ε·(1 + ‖x̄‖)/(1 − r) of it (rounding of
#: ε·‖x̄‖ per step, accumulated by a mode contracting at r)
ROUNDING_FLOOR_FACTOR = 100.0


def _rates_above_rounding(case: Case, res: RunResult, r: float, settings: Settings
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rates of claim 3's runs, those that stalled on float's noise floor at x̄ included.

    Near x̄ ≠ 0 every step rounds by about ε‖x̄‖, and a mode contracting at r near 1
    sums that to a floor of about ε‖x̄‖/(1 − r) (2.7e-13 for heavy ball at x̄ = −10,
    r = 0.994): steps below tol that never contract, so the engine's test never fires.
    A run undecided at its budget within ROUNDING_FLOOR_FACTOR × that floor of x̄ is at
    x̄; its rate is fitted as the engine fits it (least squares on log‖Δz‖ over
    RATE_HISTORY steps), on the steps before ‖Δz‖ first came within 100× of its level
    on the floor. Returns (rates, stalled rows) or (rates, None) when an undecided run
    is not such a run (or its rate cannot be measured).
    """
    assert case.x_star is not None
    und = np.flatnonzero(res.status == Status.UNDECIDED)
    floor = (ROUNDING_FLOOR_FACTOR * np.finfo(float).eps
             * (1.0 + float(np.linalg.norm(case.x_star))) / max(1.0 - r, 1e-12))
    if not floor < 0.1 * settings.target_tol or not np.all(res.distance[und] <= floor):
        return res.rate, None
    opt, T, w = case.optimizer, int(res.steps[und].max()), RATE_HISTORY
    if T < 4 * w:
        return res.rate, None
    z = lifted_state(opt, case.X0[und])
    hist = np.empty((T, und.size))
    with np.errstate(all="ignore"):
        for t in range(1, T + 1):
            new = apply_step(opt, z, case.function, t)
            hist[t - 1] = np.linalg.norm(_flatten(new, und.size)[0]
                                         - _flatten(z, und.size)[0], axis=1)
            z = new
    level = np.median(hist[-w:], axis=0)
    rates = res.rate.copy()
    for j, row in enumerate(und):
        near = np.flatnonzero(hist[:, j] <= 100.0 * level[j])
        end = int(near[0]) if near.size else 0
        window = hist[end - w:end + 1, j:j + 1]
        if end < 2 * w or not level[j] > 0 or not np.all(window > 0):
            return res.rate, None  # no clean stretch above the floor
        rates[row] = float(window_rate(window)[0])
    stalled = np.zeros(len(res), dtype=bool)
    stalled[und] = True
    return rates, stalled


def stable_converges(case: Case, settings: Settings = DEFAULT_SETTINGS) -> Verdict:
    """Claim 3: r ≤ 1 − δ ⇒ every initial point near x̄ converges to x̄ at rate ≈ r."""
    name = "stable_converges"
    if case.optimizer.outside_hypotheses:
        return _exempted(name, case, settings, stable_converges)

    def body() -> Verdict:
        pre, r, ev = _local_premise(name, case, settings,
                                    "every run converges to x̄ at rate ≈ {r:.4g}")
        if pre is not None:
            return pre
        if r > 1.0 - settings.boundary_band:
            return _verdict(name, Outcome.INCONCLUSIVE, "premise-not-met: r > 1 − δ",
                            settings, **ev)
        local, radius, zs, tiny = _local_ball(name, case, ev, r, settings)
        if tiny is not None:
            return tiny
        budget = step_budget(r, start=radius, finish=zs.tol,
                             factor=settings.budget_factor, minimum=100,
                             maximum=settings.max_steps)
        res = run(local.optimizer, local.function, local.X0, target=local.x_star,
                  tol=zs.tol, target_tol=zs.target_tol, max_steps=budget,
                  escape_radius=_escape(local, settings, radius))
        ev.update(budget=budget, observed=_run_summary(res))
        counts = res.counts()
        bad = counts[Status.CONVERGED_ELSEWHERE] + counts[Status.ESCAPED] + counts[
            Status.NONFINITE]
        if bad:
            what = ", ".join(f"{n} {s.name.lower().replace('_', ' ')}" for s, n in
                             counts.items() if n and s is not Status.CONVERGED_TARGET)
            fact = (f"{bad} of {len(res)} runs did not converge to x̄ ({what}) although "
                    f"r = {r:.6g} < 1 (predicted: all converge)")
            nonc = _noncritical_fixed_points(
                local.optimizer, local.function,
                res.x[res.status == Status.CONVERGED_ELSEWHERE], zs)
            if nonc:
                ev["noncritical_limits"] = nonc[:5]
                fact = nonc[0]["fact"]
            return _verdict(name, Outcome.COUNTEREXAMPLE,
                            f"{bad} of {len(res)} runs did not converge to a stable x̄",
                            settings, key_fact=fact, **ev)
        rate = res.rate
        if counts[Status.UNDECIDED]:
            # runs at x̄ ≠ 0 with r near 1 can end on float's noise floor there, steps
            # below tol that never contract: at x̄, their rate measured before the floor
            rate, stalled = _rates_above_rounding(local, res, r, zs)
            if stalled is None:
                return _verdict(name, Outcome.INCONCLUSIVE, "budget-exhausted", settings, **ev)
            ev["stalled_at_rounding"] = int(stalled.sum())
        finite = np.isfinite(rate)
        rates = rate[finite]
        observed = float(np.median(rates)) if rates.size else 0.0
        if "stalled_at_rounding" in ev:
            ev["rate_median_with_stalled"] = observed
        slack = max(settings.rate_tol, 0.25 * (1.0 - r))
        ev["rate_slack"] = slack
        if observed > r + slack:
            return _verdict(name, Outcome.COUNTEREXAMPLE,
                            f"observed rate {observed:.4g} slower than predicted {r:.4g}",
                            settings, key_fact=f"observed linear rate {observed:.6g} vs "
                            f"predicted r = {r:.6g} (slower by more than {slack:.3g})", **ev)
        # each run contracts at the radius of the modes its start excites; the median
        # of those is what the median observed rate is compared with
        excited = _excited_radii(local)[finite]
        expected = float(np.median(excited)) if excited.size else r
        ev["excited_rate_median"] = expected
        if r > 0.05 and observed < r - slack and observed < expected - slack:
            return _verdict(name, Outcome.COUNTEREXAMPLE,
                            f"observed rate {observed:.4g} faster than predicted {r:.4g}",
                            settings, key_fact=f"observed linear rate {observed:.6g} vs "
                            f"predicted r = {r:.6g} (faster by more than {slack:.3g})", **ev)
        return _verdict(name, Outcome.PASS, "all runs converged at the predicted rate",
                        settings, **ev)

    return _guard(name, settings, body)


# -- claim 4 ---------------------------------------------------------------------------

#: claim 4: when no free run has converged and some are still going, new runs start
#: where those ended, with this many times the free_steps budget
FREE_EXTENSION = 3


def convergence_filters(case: Case, settings: Settings = DEFAULT_SETTINGS) -> Verdict:
    """Claim 4: every run that converges to some x∞ satisfies the filter there.

    At a critical x∞ (‖∇f‖ small) the Hessian eigenvalues must lie in R up to
    eig_band·scale(R); at a non-critical fixed point (SAM-type maps) ρ(Jac G) ≤ 1 + δ.
    An optimizer declaring ``fixed_points_critical`` has no non-critical fixed points:
    a confirmed one is a counterexample.
    """
    name = "convergence_filters"
    if case.optimizer.outside_hypotheses:
        return _exempted(name, case, settings, convergence_filters)

    def body() -> Verdict:
        opt, f = case.optimizer, case.function
        region = case.region if case.region is not None else filter_of(opt)
        spread = float(np.max(np.abs(case.X0))) if case.X0.size else 1.0
        escape = _escape(case, settings, spread)
        res = run(opt, f, case.X0, target=None, tol=settings.tol,
                  max_steps=settings.free_steps, escape_radius=escape)
        ev: dict[str, Any] = dict(region_str=str(region), observed=_run_summary(res))
        slow = res.status == Status.UNDECIDED
        if not np.any(res.status == Status.CONVERGED_ELSEWHERE) and slow.any():
            # no limit yet, some runs still going: small steps (α = 1e-3, or an adaptive
            # method's sign-like steps far from a minimum) need longer. New runs start
            # where those ended (a fresh init there: claim 4 holds for every run) with
            # FREE_EXTENSION × the budget; only such cases pay for it
            rows = np.flatnonzero(slow)
            more = run(opt, f, res.x[rows], target=None, tol=settings.tol,
                       max_steps=FREE_EXTENSION * settings.free_steps, escape_radius=escape)
            res = res.with_rows(rows, more)
            ev.update(extended_runs=int(rows.size), observed=_run_summary(res))
        conv = np.flatnonzero(res.status == Status.CONVERGED_ELSEWHERE)
        if conv.size == 0:
            left = _left_outside_points(f, region, case.X0, res, settings)
            if left:
                # the filter's other half: next to a critical point whose Hessian is
                # outside it, runs must not converge there, and they did not
                ev["left_outside_points"] = left[:5]
                return _verdict(name, Outcome.PASS, "no run converged; runs started next to "
                                "critical points outside the filter left them", settings,
                                key_fact=left[0]["fact"], **ev)
            return _verdict(name, Outcome.INCONCLUSIVE, "no run converged", settings, **ev)
        stalled = np.array([_stalled_by_rounding(opt, f, res.x[k]) for k in conv], dtype=bool)
        if stalled.any():
            ev["stalled_by_rounding"] = int(stalled.sum())
            conv = conv[~stalled]
            if conv.size == 0:
                return _verdict(name, Outcome.INCONCLUSIVE, "below-float-resolution: the "
                                "runs stopped because every step rounds to zero", settings,
                                **ev)
        band = settings.eig_band * max(region.scale, 1e-12)
        Xl = res.x[conv]
        G = f.grad(Xl)
        gnorm = np.sqrt(np.sum(G * G, axis=1))
        critical = gnorm <= settings.grad_tol * (1.0 + np.sqrt(np.sum(Xl * Xl, axis=1)))
        nonc = _noncritical_fixed_points(opt, f, Xl[~critical], settings)
        if nonc:
            ev["noncritical_limits"] = nonc[:5]
            return _verdict(name, Outcome.COUNTEREXAMPLE, "non-critical fixed point", settings,
                            key_fact=nonc[0]["fact"], **ev)
        limits = []
        worst = math.inf
        failures = []
        Hs = f.hess(Xl[critical]) if critical.any() else np.zeros((0, f.dim, f.dim))
        for k, H in zip(np.flatnonzero(critical), Hs, strict=True):
            lams = np.linalg.eigvalsh(0.5 * (H + H.T))
            m = region.margin(lams)
            worst = min(worst, float(m.min()))
            limits.append({"x": Xl[k], "critical": True, "eigenvalues": lams})
            if m.min() < -band:
                failures.append(limits[-1])
        for k in np.flatnonzero(~critical):
            r = spectral_radius(opt, f, Xl[k])
            limits.append({"x": Xl[k], "critical": False, "grad_norm": gnorm[k],
                           "spectral_radius": r})
            if r > 1.0 + settings.boundary_band:
                failures.append(limits[-1])
        # a violation must survive a perturbation: a fixed point with ρ slightly above 1
        # repels so slowly that a run can look converged next to it
        confirmed = [lim for lim in failures if _attracts(opt, f, lim["x"], settings)]
        for lim in failures:
            lim["confirmed"] = any(lim is c for c in confirmed)
        # the filter is about the lifted fixed point init(x∞); a run whose buffers still
        # hold it at x∞ (RMSprop with v ≫ ε: the step is α·g/√v, while from init(x∞) it
        # is α·g/√ε) has not reached that point, so its limit says nothing of the filter
        held = [lim for lim in confirmed
                if lim["critical"] and _held_by_buffers(opt, f, lim["x"], settings)]
        for lim in held:
            lim["held_by_buffers"] = _fresh_step(opt, f, lim["x"])
        failures = [lim for lim in confirmed if not any(lim is h for h in held)]
        ev.update(limits=limits[:20], worst_margin=worst, band=band,
                  n_critical=int(critical.sum()), n_noncritical=int((~critical).sum()))
        if failures:
            ev["failing_limits"] = failures[:5]
            first = failures[0]
            if first["critical"]:
                lams = np.asarray(first["eigenvalues"])
                out = lams[region.margin(lams) < -band]
                fact = (f"limit x∞ = {_fmt(first['x'])} has Hessian eigenvalue {_fmt(out)} "
                        f"outside the filter {region}")
            else:
                fact = (f"non-critical limit x∞ = {_fmt(first['x'])} (|∇f| = "
                        f"{first['grad_norm']:.3g}) has ρ(Jac G) = "
                        f"{first['spectral_radius']:.6g} > 1")
            return _verdict(name, Outcome.COUNTEREXAMPLE,
                            f"{len(failures)} converged runs violate the filter at the limit",
                            settings, key_fact=fact, **ev)
        ev["n_converged"] = int(conv.size)
        if held:
            ev["held_by_buffers"] = len(held)
            first = held[0]
            return _verdict(name, Outcome.INCONCLUSIVE, "limit-held-by-buffers: init(x∞) is "
                            "not a fixed point at the run's tolerance", settings,
                            key_fact=f"limit x∞ = {_fmt(first['x'])} violates the filter, but "
                            f"one step from init(x∞) moves x by {first['held_by_buffers']:.3g} "
                            "(> target_tol): the run's buffers, not the fixed point's "
                            "linearization, held it there", **ev)
        return _verdict(name, Outcome.PASS, "converged runs satisfy the filter at the limit",
                        settings, **ev)

    return _guard(name, settings, body)


#: a start within this distance of a known critical point of the landscape is "next to"
#: it (claim 4's cases put some starts within 0.02 of one: check.NEAR_CRITICAL_SPREAD)
NEAR_CRITICAL = 0.05


def _left_outside_points(f: TestFunction, region: Region, X0: np.ndarray, res: RunResult,
                         settings: Settings) -> list[dict[str, Any]]:
    """Runs that started next to a known critical point x̂ whose Hessian has an eigenvalue
    outside the filter (by more than eig_band·scale) and did not converge there: they
    escaped, or ended more than 10 times as far from x̂ as they started.

    When no run converged, such runs are claim 4's evidence: the filter says that x̂
    attracts only a null set, and these runs were not in it.
    """
    crit = f.critical_points()
    if crit is None or len(crit) == 0 or X0.shape[0] == 0:
        return []
    crit = np.asarray(crit, dtype=float)
    with np.errstate(all="ignore"):
        D = np.sqrt(np.sum((X0[:, None, :] - crit[None, :, :]) ** 2, axis=2))
    nearest = np.argmin(D, axis=1)
    d0 = D[np.arange(X0.shape[0]), nearest]
    rows = np.flatnonzero(d0 <= NEAR_CRITICAL)
    if rows.size == 0:
        return []
    rows = rows[~np.isin(res.status[rows], (Status.CONVERGED_TARGET,
                                              Status.CONVERGED_ELSEWHERE))]
    points = np.unique(nearest[rows])
    if points.size == 0:
        return []
    with np.errstate(all="ignore"):  # a landscape scaled by up to 1e300
        H = f.hess(crit[points])
        H = 0.5 * (H + np.swapaxes(H, 1, 2))
    finite = np.all(np.isfinite(H), axis=(1, 2))
    eig = dict(zip(points[finite].tolist(), np.linalg.eigvalsh(H[finite]), strict=True))
    band = settings.eig_band * max(region.scale, 1e-12)
    out: list[dict[str, Any]] = []
    for k in rows:
        lams = eig.get(int(nearest[k]))
        if lams is None:
            continue
        c = crit[nearest[k]]
        outside = lams[region.margin(lams) < -band]
        if outside.size == 0:
            continue
        gone = res.status[k] in (Status.ESCAPED, Status.NONFINITE)
        with np.errstate(all="ignore"):  # an escaped run may be at 1e200
            d1 = float(np.linalg.norm(res.x[k] - c))
        if not (gone or d1 > 10.0 * max(float(d0[k]), 1e-300)):
            continue
        how = ("escaped" if res.status[k] == Status.ESCAPED else "became non-finite"
               if gone else f"ended {d1:.3g} from it")
        out.append({"start": X0[k], "critical_point": c, "eigenvalues": lams,
                    "start_distance": float(d0[k]), "status": Status(res.status[k]).name,
                    "fact": f"the run from {float(d0[k]):.3g} next to the critical point "
                            f"{_fmt(c)}, whose Hessian eigenvalue {_fmt(outside)} is outside "
                            f"the filter {region}, {how}"})
    return out


def _noncritical_fixed_points(opt: Optimizer, f: TestFunction, X: np.ndarray,
                              settings: Settings) -> list[dict[str, Any]]:
    """Limits X of converged runs that are fixed points with ∇f ≠ 0, for an optimizer
    that declares ``fixed_points_critical`` (else always []).

    A limit counts only when it survives refinement: iterating on from it with a tolerance
    1000 times smaller still converges to a point where ‖∇f‖ > grad_tol·(1 + ‖x‖) and has
    not dropped by half (a correct method creeping toward a minimum keeps shrinking ‖∇f‖).
    """
    if not opt.fixed_points_critical or X.shape[0] == 0:
        return []
    out: list[dict[str, Any]] = []
    g0 = np.sqrt(np.sum(f.grad(X) ** 2, axis=1))
    for x, g in zip(X, g0, strict=True):
        if not g > settings.grad_tol * (1.0 + float(np.linalg.norm(x))):
            continue
        res = run(opt, f, x[None, :], target=None, tol=settings.tol * 1e-3,
                  max_steps=settings.free_steps,
                  escape_radius=1e3 * (1.0 + float(np.linalg.norm(x))))
        if res.status[0] != Status.CONVERGED_ELSEWHERE:
            continue
        xl = res.x[0]
        gl = float(np.linalg.norm(f.grad(xl[None, :])[0]))
        if gl > settings.grad_tol * (1.0 + float(np.linalg.norm(xl))) and gl > 0.5 * g:
            residual = _fixed_point_defect(opt, f, xl)
            out.append({"x": xl, "grad_norm": gl, "step_residual": residual,
                        "fact": f"limit x∞ = {_fmt(xl)} is not a critical point: "
                                f"|∇f(x∞)| = {gl:.4g} with step residual "
                                f"‖G(z∞) − z∞‖ = {residual:.3g}, but the optimizer declares "
                                "that its fixed points are the critical points of f"})
        if len(out) >= 5:
            break
    return out


def _fresh_step(opt: Optimizer, f: TestFunction, x: np.ndarray) -> float:
    """‖x⁺ − x‖ for one step of the map from the lifted point init(x) (∞ if not finite)."""
    X = np.asarray(x, dtype=float)[None, :]
    try:
        with np.errstate(all="ignore"):
            new = np.asarray(opt.position(apply_step(opt, lifted_state(opt, X), f)))
    except (OptimizerError, FunctionError):
        return math.nan
    d = float(np.linalg.norm(new[0] - X[0]))
    return d if math.isfinite(d) else math.inf


def _held_by_buffers(opt: Optimizer, f: TestFunction, x: np.ndarray, settings: Settings
                     ) -> bool:
    """Is init(x) far from a fixed point although a run converged at x: does one step from
    init(x) move x by more than target_tol·(1 + ‖x‖)?

    A converged run moves by less than tol; at a limit in the linear regime of the lifted
    fixed point, restarting there (buffers reset by init) moves x by about as little.
    A large move means the run's buffers kept it at x: an adaptive v ≫ ε shrinks the step
    from α·g/√ε to α·g/√v, and v decays only at rate β₂ (with ε = 5e-324 or 1e-30 it
    stays far above ε for longer than any budget; below 0.5/(1 − β₂) subnormal ulps it
    does not decay at all). Optimizers without buffers (state = x) are never held.
    """
    d = _fresh_step(opt, f, x)
    return bool(d > settings.target_tol * (1.0 + float(np.linalg.norm(x))))


def _stalled_by_rounding(opt: Optimizer, f: TestFunction, x: np.ndarray, n: int = 4
                         ) -> bool:
    """Is x a fixed point of the *float* map only: does no start within 10⁻⁶·(1 + ‖x‖)
    move at all in one step, although ∇f ≠ 0 there?

    With steps far below the rounding of x (α = 10⁻³⁰⁰ on curvatures of order 1) every
    point is a fixed point of the floating-point map; a run "converges" wherever it
    starts. A real fixed point of the map is isolated (or a manifold): starts off it move.
    """
    x = np.asarray(x, dtype=float)
    U = _unit_directions(x, n)
    X = x[None, :] + 1e-6 * (1.0 + float(np.linalg.norm(x))) * U
    try:
        with np.errstate(all="ignore"):
            if not np.all(np.any(f.grad(X) != 0.0, axis=1)):
                return False
            new = opt.position(apply_step(opt, lifted_state(opt, X), f))
    except (OptimizerError, FunctionError):
        return False
    return bool(np.all(np.asarray(new) == X))


def _attracts(opt: Optimizer, f: TestFunction, x: np.ndarray, settings: Settings,
              n: int = 4) -> bool:
    """Do runs started at x + δu (δ = 1e-4·(1 + ‖x‖), random unit u) converge back near x?

    "Near" is within 10δ: on a manifold of minima the run lands on a neighbouring point.
    The budget is that of a free run and its extension (a slow method reached x so).
    """
    x = np.asarray(x, dtype=float)
    # a stable hash: the same limit gets the same directions in every process
    U = _unit_directions(x, n)
    delta = 1e-4 * (1.0 + float(np.linalg.norm(x)))
    res = run(opt, f, x + delta * U, target=x, tol=settings.tol,
              target_tol=10 * delta, max_steps=(1 + FREE_EXTENSION) * settings.free_steps,
              escape_radius=1e3 * (1.0 + float(np.linalg.norm(x))))
    return bool(np.all(res.status == Status.CONVERGED_TARGET))


# -- claim 5 ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Relation:
    """A metamorphic relation, as data so that it is recorded and replayed.

    kinds: ``rotation`` (params ``Q``): a spectral optimizer on f(xQ) from X0Qᵀ follows
    the rotated trajectory; ``scaling`` (``c``, ``exponents``): f → c·f with each
    hyperparameter h → h·c^e gives the same trajectory; ``reduction`` (``overrides``,
    ``reference``): the optimizer with e.g. rho=0 equals the reference (e.g. GD).
    """

    kind: str
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": _jsonable(dict(self.params))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Relation:
        return cls(str(data["kind"]), dict(data["params"]))

    def __str__(self) -> str:
        if self.kind == "rotation":
            return "rotation"
        if self.kind == "scaling":
            return f"scaling(c={self.params['c']:g})"
        ov = ", ".join(f"{k}={v}" for k, v in self.params["overrides"].items())
        return f"({ov}) ≡ {self.params['reference']}"


Setup = tuple[Optimizer, TestFunction, np.ndarray]


def _scaled_hyperparameters(rel: Relation, hp: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hyperparameters of the scaled set-up (each v·c^e), or None when a scaled value
    is not the exact float v·c^e (under- or overflow: α = 5e-324 halved is 0, which no
    factory accepts and which is not the same optimizer scaled), or when v or v·c^e is
    subnormal: arithmetic there rounds to an absolute spacing of 5e-324, not a relative
    one, so the two set-ups round differently (Adam at ε = 5e-324: v + ε for v = 0, 1, 2
    ulps against 4ε + 4v) and the relation is not exact in floats."""
    c = float(rel.params["c"])
    out = dict(hp)
    normal = float(np.finfo(float).tiny)
    for k, e in rel.params["exponents"].items():
        if k not in hp:
            continue
        v = float(hp[k])
        with np.errstate(all="ignore"):
            w = v * c ** float(e)
            if not (math.isfinite(w) and w / c ** float(e) == v):
                return None
            if 0.0 < abs(v) < normal or 0.0 < abs(w) < normal:
                return None
        out[k] = w
    return out


def _relation_setups(rel: Relation, case: Case,
                     resolve: Callable[[str], Callable[..., Optimizer]]
                     ) -> tuple[Setup, Setup, Callable[[np.ndarray], np.ndarray]]:
    from dynverify.registry import accepted

    opt, f, X0 = case.optimizer, case.function, case.X0
    hp = dict(opt.hyperparameters)
    if rel.kind == "rotation":
        Q = np.asarray(rel.params["Q"], dtype=float)
        return (opt, f, X0), (opt, RotatedFunction(f, Q), X0 @ Q.T), lambda X: X @ Q
    factory = resolve(opt.name)
    if rel.kind == "scaling":
        scaled = _scaled_hyperparameters(rel, hp)
        assert scaled is not None, "relations_verdict skips unrepresentable scalings"
        return ((opt, f, X0), (factory(**scaled), ScaledFunction(f, float(rel.params["c"])),
                               X0), lambda X: X)
    if rel.kind == "reduction":
        a_hp = {**hp, **rel.params["overrides"]}
        reference = resolve(str(rel.params["reference"]))
        b = reference(**accepted(reference, a_hp))
        return (factory(**a_hp), f, X0), (b, f, X0), lambda X: X
    raise ValueError(f"unknown metamorphic relation kind {rel.kind!r}")


def _trajectory(setup: Setup, steps: int) -> np.ndarray:
    opt, f, X0 = setup
    state = lifted_state(opt, np.asarray(X0, dtype=float))
    out = []
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            state = apply_step(opt, state, f, t)
            out.append(np.array(opt.position(state), dtype=float))
    return np.stack(out)


#: a relation may differ by this many times the measured rounding noise of a trajectory
ROUNDING_FACTOR = 1e3


def _rounding_noise(setup: Setup, steps: int, also: tuple[np.ndarray, ...] = ()
                    ) -> np.ndarray:
    """Per step, the largest drift of the trajectory when its starts move by ~4 ulps, or
    to each start set in ``also`` (the starts as the relation rounds them: X0Qᵀ·Q for a
    rotation). A moved run that turns non-finite where the base run is finite drifts
    without bound (∞): there rounding decides the trajectory and nothing is compared.

    (USAM at ρ = 1e200 from starts 1e-203 off x̄ = (0, 0, 1): moving x₁ by 4 ulps of
    |x| = 1 leaves the region where the cube term is negligible and the run overflows,
    which the NaN-ignoring maximum read as no drift at all, while the rotated run's
    rounding of 4e-16, amplified 17× a step, broke the 1e-7 tolerance at step 8.)
    """
    opt, f, X0 = setup
    X0 = np.asarray(X0, dtype=float)
    rng = np.random.default_rng(stable_seed(X0.tobytes()))
    ulps = 4 * np.finfo(float).eps * np.max(np.abs(X0), axis=1, keepdims=True)
    base = _trajectory(setup, steps)
    worst = np.zeros(steps)
    starts = [X0 + ulps * rng.choice([-1.0, 1.0], size=X0.shape) for _ in range(2)]
    for moved in [*starts, *(np.asarray(a, dtype=float) for a in also)]:
        T = _trajectory((opt, f, moved), steps)
        with np.errstate(all="ignore"):
            d = np.max(np.abs(T - base), axis=(1, 2))
            d = np.where(np.isnan(d) & np.all(np.isfinite(base), axis=(1, 2)), np.inf, d)
            worst = np.fmax(worst, d)
    return worst


def metamorphic(case: Case, settings: Settings = DEFAULT_SETTINGS,
                resolve: Callable[[str], Callable[..., Optimizer]] | None = None) -> Verdict:
    """Claim 5: each relation in ``case.relations`` holds step by step.

    Positions of the two set-ups must agree to metamorphic_rtol·max‖xₜ‖ for
    metamorphic_steps steps, compared only while both runs stay within the escape radius
    (beyond it an unstable run's rounding differences grow without bound: not a bug).
    The tolerance grows to ROUNDING_FACTOR × the drift of the trajectory from starts moved
    by a few ulps, so amplified rounding is never reported as a broken relation. Rotation
    invariance is only expected of optimizers whose per-eigenvalue reduction holds.
    """
    name = "metamorphic"
    if resolve is None:
        from dynverify.registry import resolve_factory as resolve

    def body() -> Verdict:
        with np.errstate(all="ignore"):  # overflow in unstable runs is compared, not raised
            return relations_verdict()

    def relations_verdict() -> Verdict:
        if not case.relations:
            return _verdict(name, Outcome.INCONCLUSIVE, "no-relations", settings)
        results = []
        failed = []
        for rel in case.relations:
            if rel.kind == "rotation" and not case.optimizer.outside_hypotheses:
                if not check_spectral_reduction(case.optimizer, dim=2, trials=2).holds:
                    results.append({"relation": str(rel), "holds": None,
                                    "why": "per-eigenvalue reduction fails: not expected"})
                    continue
            if rel.kind == "scaling" and _scaled_hyperparameters(
                    rel, case.optimizer.hyperparameters) is None:
                results.append({"relation": str(rel), "holds": None,
                                "why": "a scaled hyperparameter is not a normal float "
                                       "(under- or overflow, or subnormal: absolute "
                                       "rounding): the scaling is not exact in floats"})
                continue
            a, b, back = _relation_setups(rel, case, resolve)
            center = case.x_star if case.x_star is not None else np.zeros(case.function.dim)
            spread = float(np.max(np.sqrt(np.sum((case.X0 - center) ** 2, axis=1)),
                                  initial=0.0))
            escape = _escape(case, settings, spread)
            Ta, Tb = _trajectory(a, settings.metamorphic_steps), _trajectory(
                b, settings.metamorphic_steps)
            Tb = np.stack([back(x) for x in Tb])
            # compare only while both runs stay within the escape radius: past it an
            # unstable run blows up super-exponentially, rounding differences are
            # amplified without bound and 0·∞ and the like differ without a bug
            sane = np.all(np.isfinite(Ta) & np.isfinite(Tb), axis=(1, 2)) & (
                np.max(np.abs(np.nan_to_num(Ta - center)), axis=(1, 2)) <= escape) & (
                np.max(np.abs(np.nan_to_num(Tb - center)), axis=(1, 2)) <= escape)
            upto = int(np.argmin(sane)) if not sane.all() else len(sane)
            if upto == 0:
                results.append({"relation": str(rel), "holds": None, "steps_compared": 0,
                                "why": "a run left the escape radius at step 1: nothing to "
                                       "compare"})
                continue
            size = np.maximum(np.max(np.abs(Ta[:upto]), axis=(1, 2)), 1e-300)
            err = np.max(np.abs(Ta[:upto] - Tb[:upto]), axis=(1, 2)) / size
            # the tolerance grows with the measured amplification of rounding: how far
            # the same set-up drifts from starts moved by a few ulps
            # (the rotated starts, rotated back: the rounding the relation itself adds)
            also = ((np.asarray(b[2], dtype=float) @ np.asarray(rel.params["Q"], dtype=float),)
                    if rel.kind == "rotation" else ())
            noise = np.maximum.accumulate(_rounding_noise(a, upto, also) / size)
            tol = np.maximum(settings.metamorphic_rtol, ROUNDING_FACTOR * noise)
            bad_steps = np.flatnonzero(~(err <= tol))
            holds = bad_steps.size == 0
            results.append({"relation": str(rel), "holds": holds,
                            "max_relative_error": float(np.max(err, initial=0.0)),
                            "tolerance": float(tol[bad_steps[0]] if not holds else tol.max()),
                            "steps_compared": upto,
                            "first_bad_step": int(bad_steps[0]) + 1 if not holds else None})
            if not holds:
                failed.append(str(rel))
        ev: dict[str, Any] = {"relations": results}
        if failed:
            bad = next(r for r in results if r["holds"] is False)
            ev["key_fact"] = (f"relation {bad['relation']} breaks at step "
                              f"{bad['first_bad_step']}: relative difference "
                              f"{bad['max_relative_error']:.3g} > tolerance "
                              f"{bad['tolerance']:.3g}")
            return _verdict(name, Outcome.COUNTEREXAMPLE, f"relation fails: {', '.join(failed)}",
                            settings, **ev)
        if all(r["holds"] is None for r in results):
            return _verdict(name, Outcome.INCONCLUSIVE, "no-applicable-relation", settings, **ev)
        return _verdict(name, Outcome.PASS, "all relations hold", settings, **ev)

    return _guard(name, settings, body)


#: claims by name, in DESIGN.md order
CLAIMS: dict[str, Callable[..., Verdict]] = {
    "filter_agrees": filter_agrees,
    "unstable_no_convergence": unstable_no_convergence,
    "stable_converges": stable_converges,
    "convergence_filters": convergence_filters,
    "metamorphic": metamorphic,
}
