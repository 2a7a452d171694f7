"""Built-in filters at every hyperparameter a strategy can draw (issue 9 §3).

Hyperparameters come from the full float ranges: subnormals, 0 where valid, the largest
valid values. The declared filter of every built-in is checked against its closed form
*in exact rational arithmetic* (each finite endpoint must bracket the true root of the
filter polynomial within a few ulps), and, where the derivation is certified, against
the filter derived from the update map at floating-point resolution.
"""

import math
import sys
import warnings
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dynverify as dv
from dynverify import Region
from dynverify import optimizers as O
from dynverify.derive import compare_filters, derive

MAX = sys.float_info.max
lrs = st.floats(min_value=0.0, max_value=MAX, exclude_min=True, allow_subnormal=True)
rhos = st.floats(min_value=0.0, max_value=MAX, allow_subnormal=True)
momenta = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_subnormal=True)
ULPS = 8


def p_usam(power):
    return lambda lam, rho: lam * (1 + rho * lam) ** power


def p_hessian(lam, rho):
    return lam * (1 + rho * lam * lam)


def assert_root(p, e, rho, c):
    """The exact root of p(λ) = c lies within ULPS relative ulps of the float e."""
    E, R = Fraction(e), Fraction(rho)
    lo, hi = E * (1 - Fraction(ULPS, 2 ** 52)), E * (1 + Fraction(ULPS, 2 ** 52))
    a, b = p(lo, R) - c, p(hi, R) - c
    assert a * b <= 0, (e, float(a), float(b))


def check_positive_band(region, p, rho, c):
    """[0, λ*] with p(λ*) = c exactly (or λ* = ∞ when p(λ) ≤ c for every float λ ≥ 0).

    c beyond the floats (2/α at a subnormal α) does not put λ* there: for ρ > 0,
    λ* ≈ √(c/ρ) is 6.36e161 at α = 5e-324, ρ = 1.
    """
    lo, hi = region.intervals[-1]
    assert lo == 0.0
    if p(Fraction(MAX), Fraction(rho)) <= c:  # every float λ ≥ 0 is in
        assert hi >= MAX, hi
        return
    assert math.isfinite(hi), hi
    assert_root(p, hi, rho, c)


def negative_features(region):
    return [iv for iv in region.intervals if iv[1] < 0]


@settings(max_examples=60, deadline=None)
@given(lr=lrs)
@example(lr=5e-324)
@example(lr=MAX)
def test_gradient_descent_full_range(lr):
    r = O.gradient_descent(lr=lr).region
    c = Fraction(2) / Fraction(lr)
    check_positive_band(r, lambda lam, rho: lam, 0.0, c)
    assert len(r.intervals) == 1


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov"])
@settings(max_examples=60, deadline=None)
@given(lr=lrs, beta=momenta)
@example(lr=5e-324, beta=0.0)
@example(lr=MAX, beta=math.nextafter(1.0, 0.0))
def test_momentum_methods_full_range(name, lr, beta):
    r = O.BUILTINS[name](lr=lr, momentum=beta).region
    B = Fraction(beta)
    c = 2 * (1 + B) / Fraction(lr)
    if name == "nesterov":
        c = c / (1 + 2 * B)
    check_positive_band(r, lambda lam, rho: lam, 0.0, c)
    assert len(r.intervals) == 1


@pytest.mark.parametrize("name, power", [("usam", 1), ("penalty_sam", 1),
                                         ("two_step_usam", 2)])
@settings(max_examples=60, deadline=None)
@given(lr=lrs, rho=rhos)
@example(lr=0.5, rho=5e-324)
@example(lr=0.5, rho=2.2e-308)
@example(lr=0.5, rho=1.1754943508222875e-38)
@example(lr=0.5, rho=1.8e-9)
@example(lr=0.5, rho=3.2e-8)
@example(lr=0.5, rho=0.0)
@example(lr=5e-324, rho=MAX)
@example(lr=MAX, rho=MAX)
@example(lr=1e-300, rho=1e-300)
@example(lr=5e-324, rho=1.0)  # 2/α overflows, λ* = 6.36e161 does not (was [0, ∞))
@example(lr=5e-324, rho=5e-324)
@example(lr=1e-310, rho=1e300)
def test_usam_family_full_range(name, power, lr, rho):
    r = O.BUILTINS[name](lr=lr, rho=rho).region  # no LinAlgError, whatever the values
    c = Fraction(2) / Fraction(lr)
    p = p_usam(power)
    check_positive_band(r, p, rho, c)
    neg = negative_features(r)
    if rho == 0.0 or not math.isfinite(1.0 / rho):
        assert neg == []  # −1/ρ is beyond every float
        return
    assert len(neg) == 1
    lo, hi = neg[0]
    # −1/ρ is a zero of p: the band's (or point's) right end, to rounding
    assert abs(hi - (-1.0 / rho)) <= 2 * math.ulp(1.0 / rho)
    if power == 2:
        assert lo == hi  # a double zero: an isolated point
    elif math.isfinite(lo) and lo > -MAX:
        assert_root(p, lo, rho, c)  # the band's left end solves p(λ) = c


@settings(max_examples=60, deadline=None)
@given(lr=lrs, rho=rhos)
@example(lr=0.5, rho=5e-324)
@example(lr=0.5, rho=2.2e-308)
@example(lr=5e-324, rho=MAX)
@example(lr=MAX, rho=MAX)
@example(lr=5e-324, rho=1.0)  # 2/α overflows, λ* = 7.4e107 does not (was [0, ∞))
@example(lr=5e-324, rho=5e-324)
def test_hessian_usam_full_range(lr, rho):
    r = O.hessian_usam(lr=lr, rho=rho).region
    check_positive_band(r, p_hessian, rho, Fraction(2) / Fraction(lr))
    assert len(r.intervals) == 1


# -- declared ≈ derived, at float resolution ------------------------------------------------

BUILT = ["gradient_descent", "heavy_ball", "nesterov", "usam", "two_step_usam",
         "hessian_usam", "penalty_sam"]
# derivation draws: the full float range is too wide for finite differences (λx for
# λ ~ 1e300 overflows), so lr and ρ span 1e-12…1e12 plus subnormal ρ and 0
mid_lrs = st.floats(min_value=1e-12, max_value=1e12)
mid_rhos = st.one_of(st.just(0.0), st.just(5e-324), st.just(2.2e-308),
                     st.floats(min_value=1e-40, max_value=1e6))


@pytest.mark.parametrize("name", BUILT)
@settings(max_examples=12, deadline=None)
@given(lr=mid_lrs, rho=mid_rhos, beta=momenta)
@example(lr=0.5, rho=1.1754943508222875e-38, beta=0.0)   # issue 9: {−8.5e37} ∪ [0, 4]
@example(lr=0.5, rho=1.8e-9, beta=0.0)                   # lost USAM's negative band
@example(lr=0.5, rho=3.2e-8, beta=0.0)                   # lost two-step's point
@example(lr=0.5, rho=1e-13, beta=0.0)
def test_declared_equals_derived_where_certified(name, lr, rho, beta):
    hp = {"lr": lr, "rho": rho, "momentum": beta}
    params = {"gradient_descent": ("lr",), "heavy_ball": ("lr", "momentum"),
              "nesterov": ("lr", "momentum")}.get(name, ("lr", "rho"))
    opt = O.BUILTINS[name](**{k: hp[k] for k in params})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a certified derivation warns nothing
        d = derive(opt)
    assert d.certified
    cmp = compare_filters(opt.region, d, filter_function=dv.filter_function(opt))
    assert cmp.agree, (str(opt.region), str(d.region), cmp.ignored, d.describe())
    # what was left out is only what cannot be seen: beyond the certified range, or
    # narrower than the float grid where it lies
    R = d.certified_range[1]
    for lo, hi in opt.region.intervals:
        if -R <= lo and hi <= R and hi - lo > 2 * math.ulp(max(abs(lo), abs(hi))):
            assert (lo, hi) in cmp.declared.intervals, (str(opt.region), cmp.ignored)


@pytest.mark.parametrize("name", ["usam", "penalty_sam", "two_step_usam", "hessian_usam"])
def test_declared_equals_derived_at_a_subnormal_step(name):
    # 2/α overflows at α = 5e-324, but with ρ = 1 the filter ends at a finite λ*
    # (6.36e161 for USAM): declaring [0, ∞) was a false claim 1 counterexample
    opt = O.BUILTINS[name](lr=5e-324, rho=1.0)
    assert math.isfinite(opt.region.intervals[-1][1])
    d = derive(opt)
    assert d.certified
    cmp = compare_filters(opt.region, d, filter_function=dv.filter_function(opt))
    assert cmp.agree, (str(opt.region), str(d.region), cmp.ignored, d.describe())


@pytest.mark.parametrize("name, hp", [
    ("gradient_descent", {"lr": 1.2e-308}),        # filter [0, 1.67e308]: 1.5× overflows
    ("usam", {"lr": 5e-324, "rho": 1.0}),          # λ² overflows in the map near λ*
    ("hessian_usam", {"lr": 5e-324, "rho": 1.0}),  # λ³ overflows in the map near λ*
])
def test_spectral_reduction_at_filters_reaching_the_float_range(name, hp):
    # was OverflowError from the draw (claim 5 ended in error) or an unresolved
    # linearization at every probe
    assert dv.check_spectral_reduction(O.BUILTINS[name](**hp), dim=2, trials=2).holds


def test_comparison_still_catches_a_wrong_declaration():
    # USAM declared without its negative band, at a ρ where the band is representable
    opt = O.usam(lr=0.5, rho=1e-9)
    wrong = Region([(0.0, opt.region.intervals[-1][1])])
    d = derive(opt)
    cmp = compare_filters(wrong, d, filter_function=dv.filter_function(opt))
    assert not cmp.agree
    # and a spurious isolated point where ρ₁ > 1
    spurious = Region([*opt.region.intervals, (-5.0, -5.0)])
    assert not compare_filters(spurious, d, filter_function=dv.filter_function(opt)).agree


# -- whole claims at step sizes whose steps are below the rounding of x -----------------

@pytest.mark.parametrize("name, hp", [
    # the filter reaches 3.8e117: Adam's preconditioner is linear only within 1e-121 of
    # x̄, far below the rounding of x̄ = 1 (was a false claim 1 counterexample)
    ("adam", {"lr": 1e-120, "beta1": 0.9, "beta2": 0.5, "eps": 1e-8}),
    # every step rounds to zero: each start is a fixed point of the float map (was a
    # false claim 4 "non-critical fixed point", and a bare scipy ValueError in claim 3)
    ("adam", {"lr": 1e-300, "beta1": 0.9, "beta2": 0.5, "eps": 1e-8}),
    ("heavy_ball", {"lr": 1e-300, "momentum": 0.5}),
])
def test_no_false_alarm_below_float_resolution(name, hp) -> None:  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    from dynverify import check_optimizer
    from dynverify.check import ClaimStatus

    res = check_optimizer(name, profile="dev", hyperparameters=st.fixed_dictionaries(
        {k: st.just(v) for k, v in hp.items()}))
    for cr in res.results:
        assert cr.status not in (ClaimStatus.COUNTEREXAMPLE, ClaimStatus.ERROR), (
            cr.claim, cr.counterexample and cr.counterexample["verdict"]["evidence"].get(
                "key_fact"), cr.error)
    reasons = set().union(*(cr.reasons for cr in res.results))
    assert any(r.startswith("below-float-resolution") for r in reasons), reasons


def test_gradient_descent_is_still_verified_at_tiny_steps() -> None:
    # a map linear at every scale: the smallest resolvable step measures it exactly
    from hypothesis import strategies as st

    from dynverify import check_optimizer
    from dynverify.check import ClaimStatus

    res = check_optimizer("gradient_descent", profile="dev",
                          claims=["filter_agrees", "stable_converges"],
                          hyperparameters=st.fixed_dictionaries({"lr": st.just(1e-300)}))
    assert all(cr.status is ClaimStatus.VERIFIED for cr in res.results), res.results


def test_two_step_usam_band_next_to_zero_at_huge_rho():
    # ρ = 1e200: 1 − αλ(1 + ρλ)² is 1 to rounding for λ below ~1e-139, so I − J is 0 in
    # floats and the zero at λ = 0 showed at no scale; the derived filter was the point
    # {7.368e-134} instead of [0, 7.368e-134] (by hand: αρ²λ³ = 2 at λ = (4e-400)^(1/3))
    opt = O.two_step_usam(lr=0.5, rho=1e200)
    d = derive(opt)
    top = 4.0 ** (1.0 / 3.0) * 10.0 ** (-400.0 / 3.0)  # 1e-400 itself underflows
    lo, hi = d.region.intervals[-1]
    assert hi == pytest.approx(top, rel=1e-9, abs=0.0)
    # the band starts where ρ₁ − 1 leaves rounding, far below its top
    assert 0.0 <= lo < 1e-5 * hi
    assert compare_filters(opt.region, d, filter_function=dv.filter_function(opt)).agree


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov"])
def test_a_constant_jacobian_with_a_unit_eigenvalue_is_not_certified(name):
    # α = 5e-324: 1 − αλ is 1 for every float λ up to 1e307, so J = [[1, 0], [1, 0]]
    # looks constant; deflating its 1 as a structural eigenvalue certified (−∞, ∞),
    # which is wrong for every λ < 0 (there 1 − αλ > 1 in exact arithmetic)
    d = derive(getattr(O, name)(lr=5e-324, momentum=0.0))
    assert not d.certified, d.describe()
    assert "not resolved" in d.describe()


# every claim at the extremes of every built-in's valid range: correct optimizers get no
# counterexample and no error (each of these once did: a false claim-1 counterexample, a
# bare ValueError/IndexError/OverflowError, or a broken metamorphic relation)
EXTREMES = [
    ("gradient_descent", {"lr": 5e-324}),      # scaled lr = 0: ValueError in claim 5
    ("gradient_descent", {"lr": 1e200}),       # x̄ = 1: steps lost in rounding of x̄
    ("gradient_descent", {"lr": MAX}),         # filter [0, 1.1e-308]: Hypothesis IndexError
    ("heavy_ball", {"lr": 1e200, "momentum": 0.0}),   # quartic dominates every step
    ("heavy_ball", {"lr": 5e-324, "momentum": 0.0}),  # certified (−∞, ∞); NaN in compare
    ("nesterov", {"lr": 1e200, "momentum": 0.0}),
    ("adam", {"lr": 1e200}),                    # cube term: steps lost in even outputs
    ("two_step_usam", {"lr": 0.5, "rho": 1e200}),     # derived {7.368e-134}
    ("hessian_usam", {"lr": 0.5, "rho": 1e200}),
    ("penalty_sam", {"lr": 0.5, "rho": 1e200}),
    ("usam", {"lr": 1e200, "rho": 1e-300}),     # all-NaN differences: RuntimeWarning
    ("two_step_usam", {"lr": 1e200, "rho": 1e-300}),
    ("usam", {"lr": 0.5, "rho": 2.2e-308}),     # band at −4.5e307: λ-grid overflowed
    # ε at the spacing of floats: runs follow the linearization one ulp from z̄ (claim 2),
    # limits held by v ≫ ε (claim 4), scaling not exact with subnormal ε (claim 5)
    ("rmsprop", {"lr": 0.1, "eps": 5e-324}),
    ("adam", {"lr": 0.5, "beta1": 0.0, "beta2": 0.5, "eps": 5e-324}),
    # 2/α overflows but the filter ends at 6.36e161 (declared [0, ∞) was wrong)
    ("usam", {"lr": 5e-324, "rho": 1.0}),
    ("two_step_usam", {"lr": 5e-324, "rho": 1.0}),
    ("hessian_usam", {"lr": 5e-324, "rho": 1.0}),
    ("penalty_sam", {"lr": 5e-324, "rho": 1.0}),
    # filters at 1e-308: the derivation is wrong there, and the witness shows the
    # declared filter right (ρ₁(−5e-289) = 6.4e38, declared outside)
    ("usam", {"lr": 5.04e307, "rho": 5.04e307}),
]
# found later at seed 6 (a band of one float at −4.5e307), run at that seed
EXTREMES_SEEDED = [("usam", {"lr": 0.5, "rho": 2.2e-308}, 6),
                   # claim 5: the rotated starts' rounding (4e-16 at |x| = 1) grows 17× a
                   # step, and the noise probe's 4-ulp moves overflowed (read as no drift)
                   ("usam", {"lr": 0.5, "rho": 1e200}, 6)]


@pytest.mark.parametrize("name, hp, seed", [(n, h, s) for n, h in EXTREMES for s in (0, 1, 2)]
                         + EXTREMES_SEEDED)
def test_no_counterexample_or_error_at_extreme_hyperparameters(name, hp, seed):
    from hypothesis import strategies as st

    from dynverify import check_optimizer
    from dynverify.check import ClaimStatus

    res = check_optimizer(name, profile="dev", reports=None, seed=seed,
                          hyperparameters=st.fixed_dictionaries(
                              {k: st.just(v) for k, v in hp.items()}))
    for cr in res.results:
        assert cr.status not in (ClaimStatus.COUNTEREXAMPLE, ClaimStatus.ERROR), (
            cr.claim, cr.counterexample and cr.counterexample["verdict"]["evidence"].get(
                "key_fact"), cr.error)


@pytest.mark.parametrize("opt", [O.heavy_ball(lr=2.2250738585e-313, momentum=0.823796105158301),
                                 O.penalty_sam(lr=1.1125369292536007e-308,
                                               rho=1.1125369292536007e-308)])
def test_comparison_at_filters_near_the_float_limits_raises_and_warns_nothing(opt):
    # filters ending near 1e308 (heavy ball at a subnormal α) or starting at 1e-308: ρ₁
    # probed there over- and underflows (a NaN step count, np.spacing(1.8e308) = ∞);
    # the comparison must still return a verdict, with no bare ValueError or warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dv.DerivationWarning)
        warnings.simplefilter("error", RuntimeWarning)
        d = derive(opt)
        cmp = compare_filters(opt.region, d, filter_function=dv.filter_function(opt,
                                                                                strict=False))
    assert isinstance(cmp.agree, bool)


# -- filters where the float map drops part of the update (issue 9, extreme_sweep --full) -

def penalty_filter(lr, rho):
    """0 ≤ λ(1 + ρλ) ≤ 2/α by hand: ρλ² + λ − 2/α = 0 at λ₊ = (4/α)/(1 + s) and
    λ₋ = −(1 + s)/(2ρ), s = √(1 + 8ρ/α) (the forms without cancellation), and
    λ(1 + ρλ) ≥ 0 for λ ≥ 0 or λ ≤ −1/ρ."""
    s = math.sqrt(1.0 + 8.0 * (rho / lr))
    return [(-(1.0 + s) / 2.0 / rho, -1.0 / rho), (0.0, (4.0 / lr) / (1.0 + s))]


@pytest.mark.parametrize("lr, rho", [(1e300, 1e300), (2.35e185, 2.35e185),
                                     (3.083850768358357e230, 1.4087583611934526e308),
                                     (1.6467837217561108e308, 9.668068330464155e307)])
def test_penalty_sam_filter_where_rho_lambda_squared_underflows(lr, rho):
    # at |λ| ~ 1e-300, ρ·λ·(λx) underflows and the float map is gradient descent: derive
    # returned [0, 2/α] (and claim 1 reported the correct optimizer). The derivation is
    # made on the rescaled optimizer (its scaling relation, powers of 2) and scaled back.
    with warnings.catch_warnings():
        warnings.simplefilter("error", dv.DerivationWarning)
        d = derive(O.penalty_sam(lr=lr, rho=rho))
    (a, b), (c, e) = penalty_filter(lr, rho)
    got = d.region.intervals
    def close(x, y):
        return abs(x - y) <= 1e-9 * abs(y)

    assert close(got[0][0], a) and close(got[-1][1], e), (d.region, a, b, e)
    if 1.0 / rho >= sys.float_info.min:  # the gap (−1/ρ, 0) holds normal floats
        assert len(got) == 2 and close(got[0][1], b) and abs(got[1][0]) <= 1e-9 * e, (
            d.region, a, b, e)
    else:  # a gap of subnormals only: the float grid cannot tell it from none
        assert len(got) <= 2 and all(g[0] <= b or g[0] == 0.0 for g in got), d.region
    assert "scaled back" in d.describe()


def test_no_false_alarm_where_floats_drop_the_penalty():
    from dynverify import check_optimizer
    from dynverify.check import ClaimStatus
    from dynverify.claims import Settings

    reasons: set[str] = set()
    for compare in (True, False):
        for seed in (0, 1, 2):
            res = check_optimizer("penalty_sam", profile="dev", reports=None, seed=seed,
                                  claims=["filter_agrees"],
                                  settings=Settings(compare_filters=compare),
                                  hyperparameters=st.fixed_dictionaries(
                                      {"lr": st.just(1e300), "rho": st.just(1e300)}))
            cr = res.results[0]
            assert cr.status not in (ClaimStatus.COUNTEREXAMPLE, ClaimStatus.ERROR), (
                cr.counterexample and cr.counterexample["verdict"]["evidence"].get(
                    "key_fact"), cr.error)
            reasons |= set(cr.reasons)
    # the cases where float r contradicts the filter are named, not passed or failed
    assert any("does not follow its scaling relation" in r for r in reasons), reasons


@pytest.mark.parametrize("lam", [1.05e-300, -2.1e-300, 0.5e-300])
def test_claim_one_decides_on_the_rescaled_set_up_where_floats_drop_the_penalty(lam):
    # penalty SAM at α = ρ = 1e300 on f = λx²/2: the float map is gradient descent
    # (ρλ²x underflows), r = |1 − αλ|. With its positive band declared 10 % too long,
    # λ = 1.05e-300 lies in the declared filter and float r = 0.05, while the optimizer's
    # ρ₁ = |1 − αλ(1 + ρλ)| = 1.1525 by hand: the claim must say counterexample (the
    # rescaled set-up shows it), and on the correct declaration not (λ is outside it,
    # float r ≤ 1 says nothing). λ = −2.1e-300 (outside both; float r = 3.1, true 1.21)
    # and 0.5e-300 (inside both; float r = 0.5, true 0.25) decide the same either way.
    from dataclasses import replace

    import numpy as np

    from dynverify.claims import Case, Outcome, Settings, filter_agrees
    from dynverify.planted import PlantedFunction
    from dynverify.registry import register_optimizer, unregister

    def too_long_penalty(lr, rho):
        (a, b), (c, e) = penalty_filter(lr, rho)
        return replace(O.penalty_sam(lr=lr, rho=rho), name="too_long_penalty",
                       region=Region([(a, b), (c, 1.1 * e)]))

    true_rho = abs(1.0 - 1e300 * lam * (1.0 + 1e300 * lam))
    f = PlantedFunction(spectrum=(lam,))
    register_optimizer(too_long_penalty, name="too_long_penalty",
                       scaling={"lr": -1.0, "rho": -1.0})
    try:
        for opt in (O.penalty_sam(lr=1e300, rho=1e300), too_long_penalty(1e300, 1e300)):
            inside = bool(opt.region.contains(lam))
            case = Case(opt, f, np.full((4, 1), 1e-3), x_star=np.zeros(1), spectrum=(lam,),
                        region=opt.region)
            v = filter_agrees(case, Settings(compare_filters=False))
            wrong = inside != (true_rho <= 1.0)
            assert v.outcome == (Outcome.COUNTEREXAMPLE if wrong else Outcome.PASS) or (
                not wrong and v.outcome == Outcome.INCONCLUSIVE
                and v.reason.startswith("below-float-resolution")), (opt, lam, v.reason,
                                                                     v.evidence.get("key_fact"))
            if wrong:
                assert abs(v.evidence["rescaled_spectral_radius"] - true_rho) <= 1e-6 * true_rho
    finally:
        unregister("too_long_penalty")


# settings found by benchmarks/extreme_sweep.py --full, each a false claim-1 counterexample
# (or error) on a correct built-in before it was mended
FOUND_BY_FULL_SWEEP = [
    # the filter lies in the subnormals: LAPACK dropped a subnormal Jacobian entry
    ("adam", {"lr": 9.961845668705604e307, "beta1": 1e-5, "beta2": 1e-5, "eps": 1e-5}),
    # α·ρ ~ 1e600: ρλ²x underflows at the filter's scale (rescaled set-up)
    ("penalty_sam", {"lr": 3.083850768358357e230, "rho": 1.4087583611934526e308}),
    ("adam", {"lr": 5.919006253263458e-275, "beta1": 0.3908625088081055, "beta2": 0.0,
              "eps": 6.6726924258661144e16}),
]


@pytest.mark.parametrize("name, hp", FOUND_BY_FULL_SWEEP)
def test_no_false_filter_disagreement_at_settings_found_by_the_full_sweep(name, hp):
    from dynverify import check_optimizer
    from dynverify.check import ClaimStatus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dv.DerivationWarning)
        warnings.simplefilter("error", RuntimeWarning)
        res = check_optimizer(name, profile="dev", reports=None, seed=0,
                              claims=["filter_agrees"],
                              hyperparameters=st.fixed_dictionaries(
                                  {k: st.just(v) for k, v in hp.items()}))
    cr = res.results[0]
    assert cr.status not in (ClaimStatus.COUNTEREXAMPLE, ClaimStatus.ERROR), (
        cr.counterexample and cr.counterexample["verdict"]["evidence"].get("key_fact"),
        cr.error)


def test_a_disagreement_no_float_eigenvalue_shows_is_not_a_counterexample():
    # penalty SAM at α = 5.8e28, ρ = 4.9e16: the declared band [−1/ρ − 3.45e-29, −1/ρ]
    # at −2.05e-17 is real (ρ₁ ≈ 1.5e-4 at its middle, 3 on either side: checked by hand
    # below) but narrower than 1e-9 of its place, at the derivation's resolution: the
    # derivation on the rescaled set-up (α' = 1.5e6, ρ' = 1.3e-6) lacks it, and no
    # witness probe lands in it. With a spectrum the dynamic part passes (λ = 1e-29),
    # claim 1 reaches the comparison, and reported "declared filter differs" on this
    # correct optimizer with no eigenvalue to show it (found by extreme_sweep --full).
    import numpy as np

    from dynverify.claims import Case, Outcome, filter_agrees
    from dynverify.planted import PlantedFunction

    lr, rho = 5.796427661883934e28, 4.8823278896666184e16
    opt = O.penalty_sam(lr=lr, rho=rho)
    (a, b), _ = opt.region.intervals
    mid = 0.5 * (a + b)
    assert abs(1.0 - lr * mid * (1.0 + rho * mid)) < 1e-3 < 2.0  # the band is real
    lam = 1e-29
    case = Case(opt, PlantedFunction(spectrum=(lam,)), np.full((4, 1), 1e-3),
                x_star=np.zeros(1), spectrum=(lam,), region=opt.region)
    v = filter_agrees(case)
    assert v.outcome == Outcome.PASS, (v.reason, v.evidence.get("key_fact"))
    assert any("closer than 1e-9" in w for w in v.evidence["comparison_ignored"])


def test_a_witness_no_step_resolves_is_doubted():
    # Adam with ε = 7e-203 and α = 2.2e-308 at λ = 1.9e301: linear only for gradients
    # below √ε = 8.6e-102, i.e. steps below 1e-403; ρ₁ there read 0.9957 (by hand
    # 1 − (α/√ε)λ ≈ −5e94), "inside" a filter that ends at 7.7e206
    from dynverify.claims import _witness_doubt

    opt = O.adam(lr=2.2250738585072014e-308, beta1=0.0, beta2=2.2250738585072014e-308,
                 eps=7.317979291232929e-203)
    wit = {"witness_lambda": 1.9088e301, "witness_spectral_radius": 0.995714,
           "witness_declared_inside": False}
    doubt = _witness_doubt(opt, wit)
    assert doubt is not None and "not linear at any step" in doubt
    # and a witness that is measured stays decisive: USAM declared without its band
    usam = O.usam(lr=0.5, rho=1.0)
    lam = -1.5  # λ(1 + λ) = 0.75 ∈ [0, 2/α]: in the band next to −1/ρ = −1, ρ₁ = 0.625
    rho1 = abs(1.0 - 0.5 * lam * (1.0 + lam))
    assert _witness_doubt(usam, {"witness_lambda": lam, "witness_spectral_radius": rho1,
                                 "witness_declared_inside": False}) is None
