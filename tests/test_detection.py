"""Detection strength (issue 10 §1, §2b): spectra that hug every boundary of a filter,
cases that meet each claim's premise, and small filter errors caught without the
declared-vs-derived comparison.

Filters and filter functions are written out by hand here (closed forms of DESIGN.md §2),
independently of dynverify's regions and derive modules.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynverify import check
from dynverify import strategies as S
from dynverify.check import ClaimRunner, check_optimizer, run_claim
from dynverify.claims import Case, Outcome, Settings, filter_agrees, stable_converges
from dynverify.optimizers import gradient_descent, two_step_usam, usam
from dynverify.planted import PlantedFunction
from dynverify.profiles import resolve as resolve_profile
from dynverify.regions import Region
from dynverify.registry import Registration, resolve

A, RHO, BETA = 0.5, 0.5, 0.5


def _positive_root(coefs_low_to_high: list[float]) -> float:
    roots = np.roots(coefs_low_to_high[::-1])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-12 and r.real > 0))


# by hand: α = 0.5, ρ = 0.5, β = 0.5, so 2/α = 4
_S = math.sqrt(1 + 8 * RHO / A)  # = 3
HAND_FILTERS = {
    "gradient_descent": Region([(0.0, 2 / A)]),
    "heavy_ball": Region([(0.0, 2 * (1 + BETA) / A)]),
    "nesterov": Region([(0.0, 2 * (1 + BETA) / ((1 + 2 * BETA) * A))]),
    # λ(1 + ρλ) ∈ [0, 4]: a negative band ending at −1/ρ, then [0, λ*]
    "usam": Region([((-1 - _S) / (2 * RHO), -1 / RHO), (0.0, (-1 + _S) / (2 * RHO))]),
    # λ(1 + ρλ)² ∈ [0, 4]: the isolated point −1/ρ and [0, λ*]
    "two_step_usam": Region([(-1 / RHO, -1 / RHO),
                             (0.0, _positive_root([-2 / A, 1.0, 2 * RHO, RHO ** 2]))]),
    # λ + ρλ³ ≤ 4
    "hessian_usam": Region([(0.0, _positive_root([-2 / A, 1.0, 0.0, RHO]))]),
}
HAND_RHO1 = {  # per-eigenvalue spectral radius of the SAM-family maps (scalar, m = 1)
    "gradient_descent": lambda lam: np.abs(1 - A * lam),
    "usam": lambda lam: np.abs(1 - A * lam * (1 + RHO * lam)),
    "two_step_usam": lambda lam: np.abs(1 - A * lam * (1 + RHO * lam) ** 2),
}


def _unit(region: Region, b: float) -> float:
    return abs(b) if b != 0.0 else S.margin_scale(region)


def _nearest(region: Region, lam: float) -> float:
    return min(region.boundary(), key=lambda b: abs(lam - b))


def _hug_sides(region: Region) -> set[tuple[float, int]]:
    """Every (boundary point, side ±1) from which a boundary can be approached."""
    out = set()
    for lo, hi in region.intervals:
        out |= {(lo, -1), (hi, 1)}
        if lo < hi:
            out |= {(lo, 1), (hi, -1)}
    return out


@pytest.mark.parametrize("name", sorted(HAND_FILTERS))
def test_near_boundary_spectra_hug_every_boundary_point_from_every_side(name):
    region = HAND_FILTERS[name]
    lo_d, hi_d = 1e-3, 1e-2
    seen: set[tuple[float, int]] = set()

    def check_hug(lam: float) -> None:
        b = _nearest(region, lam)
        rel = abs(lam - b) / _unit(region, b)
        # within the requested relative distance (no boundary here is closer than 2·1e-2·u)
        assert lo_d * (1 - 1e-9) <= rel <= hi_d * (1 + 1e-9), (lam, b, rel)
        seen.add((b, 1 if lam > b else -1))

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data):
        side = data.draw(st.sampled_from(["inside", "outside"]))
        lams = data.draw(S.near_boundary_spectra(region=region, side=side, min_distance=lo_d,
                                                 max_distance=hi_d))
        inside = region.contains(np.array(lams))
        if side == "inside":
            assert inside.all(), lams
            for lam in lams:
                check_hug(lam)
        else:
            assert not inside.all(), lams
            outside = [lam for lam, i in zip(lams, inside) if not i]
            assert len(outside) == 1
            check_hug(outside[0])

    prop()
    # every boundary point was hugged from each side that exists: both sides of isolated
    # points and of the ends of negative bands, the inside and outside of interval ends
    assert seen == _hug_sides(region)


@pytest.mark.parametrize("name", sorted(HAND_RHO1))
def test_near_boundary_spectra_push_out_of_the_undecidable_band(name):
    """With the filter function, every hugging eigenvalue has |ρ₁ − 1| ≥ the requested gap
    (next to an isolated point ρ₁ − 1 is quadratic in the distance)."""
    region, rho1 = HAND_FILTERS[name], HAND_RHO1[name]

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["inside", "outside"]).flatmap(
        lambda side: S.near_boundary_spectra(region=region, side=side, filter_function=rho1,
                                             min_rate_gap=1e-3)))
    def prop(lams):
        for lam in lams:
            assert abs(rho1(lam) - 1) >= 1e-3 or region.margin(lam) > 0.1, lam

    prop()


@pytest.mark.parametrize("name", sorted(HAND_RHO1))
@pytest.mark.parametrize("stable", [True, False])
def test_rate_spectra_meet_the_premise_by_construction(name, stable):
    region, rho1 = HAND_FILTERS[name], HAND_RHO1[name]

    @settings(max_examples=100, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(S.rate_spectra(filter_function=rho1, region=region, stable=stable, min_gap=2e-3,
                          max_gap=0.5))
    def prop(lams):
        r = float(np.max(rho1(np.array(lams))))
        if stable:
            assert 0.5 - 1e-12 <= r <= 1 - 2e-3 + 1e-12, (lams, r)
        else:
            assert 1 + 2e-3 - 1e-12 <= r <= 1.5 + 1e-12, (lams, r)

    prop()


def test_rate_spectra_reach_the_levels_next_to_an_isolated_point():
    """Unstable spectra with r just above 1 include eigenvalues next to −1/ρ, where
    two-step USAM's ρ₁ only touches 1."""
    region, rho1 = HAND_FILTERS["two_step_usam"], HAND_RHO1["two_step_usam"]
    near_point = []

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(S.rate_spectra(filter_function=rho1, region=region, stable=False, min_gap=1e-3,
                          max_gap=1e-2))
    def prop(lams):
        near_point.extend(lam for lam in lams if abs(lam + 1 / RHO) < 0.1 / RHO)

    prop()
    assert near_point


# -- the claims' cases ------------------------------------------------------------------

BUILTIN_FILTERED = ["gradient_descent", "heavy_ball", "nesterov", "usam", "two_step_usam",
                    "hessian_usam", "penalty_sam"]


@pytest.mark.parametrize("claim", ["filter_agrees", "unstable_no_convergence",
                                   "stable_converges"])
@pytest.mark.parametrize("name", BUILTIN_FILTERED)
def test_cases_decide(name, claim):
    """≥ 90 % of each claim's cases are decided (no premise-not-met, no band) on every
    built-in; the ci profile's settings, 15 examples to stay fast (`dynverify check
    --profile ci` shows the full 40)."""
    hs = settings(resolve_profile("ci"), max_examples=15)
    res = run_claim(resolve(name), claim, hypothesis_settings=hs)
    assert res.counterexample is None and res.error is None
    assert res.decided_fraction >= 0.9, (res.counts, res.reasons)


def test_stable_claim_ball_is_linear_enough_for_maps_that_amplify():
    """Two-step USAM evaluates ∇f at (1 + ρλ)²·u from x̄ (≈ 100·u here): from the planted
    function's quadratic radius the runs leave a stable x̄ (r = 0.96) and a correct
    optimizer gets a counterexample; the claim's ball must be small enough."""
    Q = np.array([[-0.32328956686350335, -0.9463000876874145],
                  [0.9463000876874145, -0.32328956686350335]])
    f = PlantedFunction((3.663518041818817, 6.023476980183615),
                        (-8.271321843360022, -2.980881052663901), Q, (), 1 / 3)
    opt = two_step_usam(lr=0.003, rho=1.5629890315671524)
    radius = check._local_radius(f, opt, "stable_converges")
    assert 0 < radius < f.quadratic_radius()
    rng = np.random.default_rng(0)
    U = rng.standard_normal((8, 2))
    X0 = np.asarray(f.x_star) + radius * U / np.linalg.norm(U, axis=1, keepdims=True)
    v = stable_converges(Case(opt, f, X0, x_star=np.asarray(f.x_star), spectrum=f.spectrum,
                              region=opt.region))
    assert v.outcome is Outcome.PASS, v


# -- small filter errors caught without the comparison ----------------------------------

def test_compare_filters_setting_switches_the_comparison_off():
    """GD declaring an extra isolated point far away: only the comparison can see it."""
    lr = 0.5
    opt = replace(gradient_descent(lr=lr), region=Region([(0.0, 2 / lr), (50 / lr, 50 / lr)]))
    f = PlantedFunction((1.0,), (0.0,), np.eye(1), (), 0.0)
    case = Case(opt, f, np.array([[1e-3]]), x_star=np.zeros(1), spectrum=(1.0,),
                region=opt.region)
    on = filter_agrees(case, Settings())
    off = filter_agrees(case, Settings(compare_filters=False))
    assert on.outcome is Outcome.COUNTEREXAMPLE and "derived" in on.reason
    assert off.outcome is Outcome.PASS
    assert off.settings["compare_filters"] is False


LR = st.floats(1e-3, 2.0, allow_nan=False, allow_subnormal=False)
RHO_POS = st.floats(0.01, 2.0, allow_nan=False, allow_subnormal=False)


def _gd_one_percent_wide(lr):
    opt = gradient_descent(lr=lr)
    return replace(opt, region=Region([(0.0, 1.01 * 2 / lr)]))


def _usam_band_one_percent_narrow(lr, rho):
    """USAM whose negative band starts 1 % late (its far end moved 1 % toward −1/ρ)."""
    opt = usam(lr=lr, rho=rho)
    (lo, hi), main = opt.region.intervals
    return replace(opt, region=Region([(lo + 0.01 * abs(lo), hi), main]))


@pytest.mark.parametrize("factory, hps, reason", [
    (_gd_one_percent_wide, st.fixed_dictionaries({"lr": LR}), "inside the filter but r > 1"),
    (_usam_band_one_percent_narrow, st.fixed_dictionaries({"lr": LR, "rho": RHO_POS}),
     "outside the filter but r ≤ 1"),
])
def test_one_percent_filter_errors_caught_without_the_comparison(factory, hps, reason):
    reg = Registration(name=factory.__name__, factory=factory, hyperparameters=hps)
    res = check_optimizer(reg, claims=["filter_agrees"], profile="ci",
                          settings=Settings(compare_filters=False))
    (claim,) = res.results
    assert claim.counterexample is not None, claim.counts
    assert reason in claim.counterexample["verdict"]["reason"]
    assert claim.counterexample["verdict"]["settings"]["compare_filters"] is False


def test_claim_runner_draws_with_its_settings():
    """The premise gap of the rate-placed spectra follows the settings' δ."""
    wide = Settings(boundary_band=0.1)
    runner = ClaimRunner(resolve("gradient_descent"), "stable_converges", settings=wide)

    @settings(max_examples=20, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(runner.strategy())
    def prop(case):
        assert case is not None
        r = float(np.max(np.abs(1 - case.optimizer.hyperparameters["lr"]
                                * np.array(case.spectrum))))
        assert r <= 1 - 2 * 0.1 + 1e-9

    prop()


# -- hugging every boundary at once, units at 0, repeated cases -------------------------

USAM_BY_HAND = Region([(-1 / RHO - 4.0, -1 / RHO), (0.0, 4.0)])  # any two-interval filter


@settings(max_examples=40, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_near_inside_spectra_hug_every_inside_boundary_point(data) -> None:  # type: ignore[no-untyped-def]
    # four inside boundary points (−6, −2, 0, 4): a near_inside spectrum of claim 1 puts
    # one eigenvalue within 1 % (of |b|, or of the width 4 of [0, 4] at b = 0) inside each
    strategy = check._spectra_strategy("near_inside", USAM_BY_HAND, usam(A, RHO),
                                       Settings())
    lams = np.array(data.draw(strategy))
    assert all(USAM_BY_HAND.contains(float(x)) for x in lams)
    for b, unit in ((-6.0, 6.0), (-2.0, 2.0), (0.0, 4.0), (4.0, 4.0)):
        assert np.min(np.abs(lams - b)) <= 0.5 * 2 * unit, (b, lams)  # within half the room
    near = [np.min(np.abs(lams - b)) / unit for b, unit in
            ((-6.0, 6.0), (-2.0, 2.0), (0.0, 4.0), (4.0, 4.0))]
    assert sum(d <= 0.0101 for d in near) >= 3, (near, lams)  # hug distance ≤ 1 % mostly


def test_boundary_unit_at_zero_is_the_width_of_the_interval_ending_there() -> None:
    assert S.boundary_unit(USAM_BY_HAND, 0.0) == 4.0   # not the band's width
    assert S.boundary_unit(USAM_BY_HAND, -2.0) == 2.0
    assert S.boundary_unit(Region([(-1.0, 0.0), (0.0, 3.0)]), 0.0) == 3.0
    assert S.boundary_unit(Region([(1.0, 2.0)]), 1.0) == 1.0


def test_claim1_cases_start_at_the_planted_point() -> None:
    # claim 1 never runs the optimizer from starts: its cases carry X0 = x̄ only
    @settings(max_examples=10, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(check.cases(resolve("gradient_descent"), "filter_agrees"))
    def prop(case):  # type: ignore[no-untyped-def]
        assert case is not None
        np.testing.assert_array_equal(case.X0, np.asarray(case.x_star)[None, :])

    prop()


def test_a_repeated_case_is_run_and_counted_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # several executions in one Hypothesis example (each would call target once)
    monkeypatch.setattr(check, "target", lambda *a, **k: None)
    runner = ClaimRunner(resolve("gradient_descent"), "stable_converges")
    f = PlantedFunction([1.0, 0.5])
    case = Case(gradient_descent(0.5), f, np.array([[1e-3, 2e-3], [-1e-3, 0.0]]),
                x_star=np.zeros(2), spectrum=(1.0, 0.5))
    other = replace(case, X0=case.X0 * 0.5)
    calls = []
    original = check.CLAIMS["stable_converges"]
    check.CLAIMS["stable_converges"] = lambda c, s: calls.append(c) or original(c, s)


    @settings(max_examples=1, database=None, deadline=None)
    @given(st.just(None))
    def prop(_):  # type: ignore[no-untyped-def]  (execute records Hypothesis events)
        for c in (case, case, other, case):
            runner.execute(c)

    try:
        prop()
    finally:
        check.CLAIMS["stable_converges"] = original
    assert len(calls) == 2  # the repeats reuse the first verdict
    assert runner.result.cases == 2 and runner.result.counts["pass"] == 2


def test_claim3_compares_each_start_with_the_modes_it_excites() -> None:
    # gradient descent α = 0.5 on spectrum (1, 0.5): rates 0.5 and 0.75 (r = 0.75). A start
    # on the λ = 1 axis converges at 0.5, a generic one at 0.75: median 0.625, which is
    # what the starts predict; not "faster than predicted"
    case = Case(gradient_descent(0.5), PlantedFunction([1.0, 0.5]),
                np.array([[1e-3, 2e-3], [-1e-3, 0.0]]), x_star=np.zeros(2),
                spectrum=(1.0, 0.5))
    v = stable_converges(case)
    assert v.outcome is Outcome.PASS, v
    assert v.evidence["excited_rate_median"] == pytest.approx(0.625)
    # every start on the fast axis: rate 0.5 predicted and observed
    on_axis = replace(case, X0=np.array([[1e-3, 0.0], [-2e-3, 0.0]]))
    assert stable_converges(on_axis).outcome is Outcome.PASS


def test_derivation_cache_tells_maps_apart() -> None:
    # same name and hyperparameters, different update maps: two different filters
    from dynverify import Optimizer
    from dynverify.claims import _derive_cached

    def make(scale: float) -> Optimizer:
        return Optimizer(name="same", hyperparameters={"lr": 0.5}, init=lambda X: (X,),
                         step=(lambda s, f: (s[0] - 0.5 * f.grad(s[0]),)) if scale == 1 else
                         (lambda s, f: (s[0] - 1.0 * f.grad(s[0]),)))

    assert _derive_cached(make(1)).region.intervals[0][1] == pytest.approx(4.0)  # 2/α
    assert _derive_cached(make(2)).region.intervals[0][1] == pytest.approx(2.0)
    assert _derive_cached(make(1)).region.intervals[0][1] == pytest.approx(4.0)
    assert _derive_cached(gradient_descent(0.25)).region.intervals[0][1] == pytest.approx(8.0)


def test_free_run_landscapes_are_scaled_to_the_filter_interval_at_zero() -> None:
    # usam(α = 1, ρ = 0.05): filter [−21.83, −20] ∪ [0, u] with u = 2/(α(1 + ...)) ≈ 1.83
    # by hand: ρ₁(λ) = |1 − αλ(1 + ρλ)| = 1 at αλ(1 + ρλ) = 2 → λ = (−1 + √(1 + 8ρ/α))/(2ρ)
    u = (-1 + math.sqrt(1 + 8 * 0.05)) / (2 * 0.05)
    reg = Registration("usam_fixed", usam, hyperparameters=st.fixed_dictionaries(
        {"lr": st.just(1.0), "rho": st.just(0.05)}))

    @settings(max_examples=15, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(check.cases(reg, "convergence_filters"))
    def prop(case):  # type: ignore[no-untyped-def]
        ratio = case.function.c / u
        assert min(abs(ratio - s) for s in check.LANDSCAPE_SCALES) < 1e-9, ratio

    prop()
