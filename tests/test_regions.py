"""Region and the exact filters of the built-in optimizers (DESIGN.md §2)."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from dynverify import Region
from dynverify import optimizers as O

lrs = st.floats(min_value=1e-3, max_value=1e3)
rhos = st.one_of(st.just(0.0), st.floats(min_value=1e-4, max_value=1e2))
momenta = st.floats(min_value=0.0, max_value=0.99)


def assert_endpoints_close(region, expected, rtol=1e-11):
    """Same intervals, each endpoint within rtol of the expected one (0 is exact)."""
    got = region.intervals
    assert len(got) == len(expected), (got, expected)
    for (lo, hi), (elo, ehi) in zip(got, expected):
        for g, e in ((lo, elo), (hi, ehi)):
            assert abs(g - e) <= rtol * abs(e), (got, expected)


# -- closed forms, computed here from the inequalities ----------------------------------

def usam_band(lr, rho, c=None):
    """{λ : 0 ≤ λ(1 + ρλ) ≤ c}, c = 2/α: [(−1−s)/(2ρ), −1/ρ] ∪ [0, (−1+s)/(2ρ)]."""
    c = 2.0 / lr if c is None else c
    if rho == 0:
        return [(0.0, c)]
    s = math.sqrt(1.0 + 4.0 * rho * c)
    # (−1 + s)/(2ρ) written without cancellation: (s − 1)(s + 1) = 4ρc
    return [((-1.0 - s) / (2.0 * rho), -1.0 / rho), (0.0, 2.0 * c / (1.0 + s))]


def test_usam_band_formula_is_the_one_of_the_issue():
    lr, rho = 0.1, 0.5
    s = math.sqrt(1 + 8 * rho / lr)
    (a, b), (c, d) = usam_band(lr, rho)
    assert (a, b, c) == ((-1 - s) / (2 * rho), -1 / rho, 0.0)
    assert d == pytest.approx((-1 + s) / (2 * rho), rel=1e-14)


def positive_root(p, c):
    """The unique λ* > 0 with p(λ*) = c for p increasing on [0, ∞) with p(λ) ≥ λ."""
    return brentq(lambda t: p(t) - c, 0.0, c, xtol=1e-300, rtol=1e-15, maxiter=500)


# -- Region basics ------------------------------------------------------------------------

def test_intervals_are_sorted_and_merged():
    r = Region([(3, 4), (0, 1), (0.5, 2), (2, 2.5), (10, 10)])
    assert r.intervals == ((0.0, 2.5), (3.0, 4.0), (10.0, 10.0))
    assert Region([(1, 2), (2, 3)]).intervals == ((1.0, 3.0),)  # touching intervals merge
    assert Region([(0, 5), (1, 2)]).intervals == ((0.0, 5.0),)  # nested ones too
    assert Region([]).empty and not r.empty


def test_isolated_points():
    r = Region([(-2, -2), (0, 1)])
    assert r.isolated_points == (-2.0,)
    assert r.contains([-2.0, -2.0 + 1e-12, -2.0 - 1e-12]).tolist() == [True, False, False]
    assert str(r) == "{-2} ∪ [0, 1]"
    assert Region([(1, 1), (1, 1)]).intervals == ((1.0, 1.0),)
    assert Region([(1, 1), (0, 2)]).isolated_points == ()


def test_contains_is_vectorized_and_closed():
    r = Region([(0, 1), (3, 4)])
    lam = np.array([[-0.1, 0.0, 0.5], [1.0, 2.0, 4.0]])
    assert r.contains(lam).tolist() == [[False, True, True], [True, False, True]]
    assert r.contains(3.5).shape == ()
    assert not r.contains(np.nan)


def test_margin_is_signed_distance_to_boundary():
    r = Region([(0, 1), (3, 4)])
    lam = np.array([0.25, 0.5, 1.5, 2.5, -1.0, 5.0, 0.0, 3.0])
    expected = [0.25, 0.5, -0.5, -0.5, -1.0, -1.0, 0.0, 0.0]
    np.testing.assert_allclose(r.margin(lam), expected, rtol=0, atol=1e-15)
    assert r.margin(np.zeros((2, 3))).shape == (2, 3)
    assert Region([(2, 2)]).margin(2.5) == pytest.approx(-0.5)
    assert np.all(Region().margin([0.0, 1.0]) == -np.inf)


def test_margin_with_infinite_endpoints():
    r = Region([(-math.inf, 0.0)])
    assert r.margin(-3.0) == pytest.approx(3.0)
    assert r.margin(2.0) == pytest.approx(-2.0)
    assert Region([(-math.inf, math.inf)]).margin(5.0) == math.inf
    assert r.boundary() == (0.0,)


def test_str():
    assert str(O.usam(lr=0.1, rho=0.5).region) == "[-7.403, -2] ∪ [0, 5.403]"
    assert str(Region([(0, 20)])) == "[0, 20]"
    assert str(Region()) == "∅"
    assert str(Region([(-math.inf, 1)])) == "(-∞, 1]"


def test_str_distinguishes_every_endpoint():
    # issue 9: (0, 3.99999999999840) printed as [0, 0] beside a band near −1e13
    lr, rho = 0.5, 1e-13
    text = str(O.usam(lr=lr, rho=rho).region)
    assert "[0, 4]" in text and "[0, 0]" not in text
    # the two ends of the narrow band near −1/ρ print differently
    lo, hi = text.split(" ∪ ")[0].strip("[]").split(", ")
    assert lo != hi and float(lo) < float(hi)
    assert abs(float(lo) - (-1 / rho - 2 / lr)) <= 1e-12 * 1e13
    # numerical zeros still print as 0; neighbours closer than 4 digits get more
    assert str(Region([(2.2e-16, 4.0)])) == "[0, 4]"
    assert str(Region([(1.0, 1.00001), (2.0, 3.0)])) == "[1, 1.00001] ∪ [2, 3]"
    assert str(Region([(-math.inf, -2.0), (0.0, math.inf)])) == "(-∞, -2] ∪ [0, ∞)"
    assert str(Region([(-2.0, -2.0), (0.0, math.inf)])) == "{-2} ∪ [0, ∞)"


def test_unbounded_regions():
    r = Region([(-math.inf, -2.0), (0.0, math.inf)])
    assert r.contains([-1e300, -2.0, -1.0, 0.0, 1e308]).tolist() == [True, True, False, True,
                                                                     True]
    assert not r.bounded and Region([(0.0, 1.0)]).bounded
    assert r.boundary() == (-2.0, 0.0) and r.scale == 2.0
    np.testing.assert_allclose(r.margin([-5.0, -1.5, 3.0]), [3.0, -0.5, 3.0])
    assert r.clip(-10.0, 10.0).intervals == ((-10.0, -2.0), (0.0, 10.0))
    assert Region.from_json(r.to_json()).intervals == r.intervals
    assert r.isclose(Region([(-math.inf, -2.0 * (1 + 1e-12)), (0.0, math.inf)]))
    assert not r.isclose(Region([(-1e300, -2.0), (0.0, math.inf)]))


@pytest.mark.parametrize("region", [Region([(-math.inf, -2.0), (0.0, math.inf)]),
                                    Region([(0.0, 4.066), (245.9, math.inf)])])
def test_spectra_place_eigenvalues_around_unbounded_regions(region):
    from hypothesis import given, settings

    from dynverify.strategies import spectra

    @settings(max_examples=25, database=None, deadline=None)
    @given(inside=spectra(region=region, placement="inside"),
           outside=spectra(region=region, placement="outside"))
    def check(inside, outside):
        assert region.contains(inside).all()
        assert all(math.isfinite(v) for v in inside + outside)
        assert (region.margin(outside) < 0).any()

    check()


def test_isclose_tolerance_is_relative_to_the_region_size():
    a = Region([(0.0, 100.0)])
    assert a.isclose(Region([(0.0, 100.0 * (1 + 1e-11))]))
    assert not a.isclose(Region([(0.0, 100.0 * (1 + 1e-6))]))
    assert a.isclose(Region([(0.0, 100.0 * (1 + 1e-6))]), rtol=1e-5)
    assert a.isclose(Region([(1e-8, 100.0)]), atol=1e-7)
    assert not a.isclose(Region([(0.0, 50.0), (60.0, 100.0)]))  # different number of bands
    assert not a.isclose(Region([(0.0, math.inf)]))
    assert Region([(0.0, math.inf)]).isclose(Region([(0.0, math.inf)]))
    assert a == Region([(0.0, 100.0)]) and a != Region([(0.0, 99.0)])


@pytest.mark.parametrize("region", [
    Region([(0.0, 20.0)]),
    Region([(-7.4031242374328485, -2.0), (0.0, 5.403124237432849)]),
    Region([(-2.0, -2.0), (0.1, 0.3)]),
    Region([(-math.inf, -1.0), (1.0, math.inf)]),
    Region([(-math.inf, math.inf)]),
    Region(),
])
def test_json_round_trip_is_exact(region):
    text = json.dumps(region.to_json(), allow_nan=False)  # strict JSON: no Infinity
    back = Region.from_json(text)
    assert back.intervals == region.intervals
    assert Region.from_json(json.loads(text)).intervals == region.intervals


@pytest.mark.parametrize("intervals, match", [
    ([(2.0, 1.0)], "lo > hi"),
    ([(math.nan, 1.0)], "NaN"),
    ([(0.0, math.nan)], "NaN"),
    ([(0.0, 1.0, 2.0)], "pair"),
    ([3.0], "pair"),
    ([("a", "b")], "pair"),
])
def test_bad_intervals_raise(intervals, match):
    with pytest.raises(ValueError, match=match):
        Region(intervals)


@pytest.mark.parametrize("data, match", [
    ("not json", "JSON"),
    ('{"lo": 0}', "list"),
    ("[[0, 1, 2]]", r"\[lo, hi\]"),
    ('[["zero", 1]]', "number"),
    ("[[true, 1]]", "number"),
    ("[[2, 1]]", "lo > hi"),
    ("[[NaN, 1]]", "NaN"),
    ("5", "list"),
])
def test_bad_json_raises(data, match):
    with pytest.raises(ValueError, match=match):
        Region.from_json(data)


def test_region_is_immutable():
    r = Region([(0, 1)])
    with pytest.raises(AttributeError):
        r.intervals = ()


# -- built-in filters against their closed forms ------------------------------------------

@given(lr=lrs)
def test_gradient_descent_region(lr):
    assert_endpoints_close(O.gradient_descent(lr=lr).region, [(0.0, 2.0 / lr)])


@given(lr=lrs, beta=momenta)
def test_heavy_ball_region(lr, beta):
    assert_endpoints_close(O.heavy_ball(lr=lr, momentum=beta).region,
                           [(0.0, 2.0 * (1.0 + beta) / lr)])


@given(lr=lrs, beta=momenta)
def test_nesterov_region(lr, beta):
    assert_endpoints_close(O.nesterov(lr=lr, momentum=beta).region,
                           [(0.0, 2.0 * (1.0 + beta) / ((1.0 + 2.0 * beta) * lr))])


@pytest.mark.parametrize("factory", [O.usam, O.penalty_sam])
@given(lr=lrs, rho=rhos)
def test_usam_family_region_has_the_negative_band(factory, lr, rho):
    region = factory(lr=lr, rho=rho).region
    assert_endpoints_close(region, usam_band(lr, rho))
    if rho > 0:
        (a, b), (_, d) = region.intervals
        # the endpoints solve the defining equations λ(1 + ρλ) ∈ {0, 2/α}
        for e, value in ((a, 2 / lr), (b, 0.0), (d, 2 / lr)):
            assert e * (1 + rho * e) == pytest.approx(value, rel=1e-9, abs=1e-9 / lr)


@given(lr=lrs, rho=rhos)
def test_two_step_usam_region_has_the_isolated_point(lr, rho):
    region = O.two_step_usam(lr=lr, rho=rho).region
    c = 2.0 / lr
    top = positive_root(lambda t: t * (1 + rho * t) ** 2, c)
    expected = [(0.0, top)] if rho == 0 else [(-1 / rho, -1 / rho), (0.0, top)]
    assert_endpoints_close(region, expected)
    end = region.intervals[-1][1]
    assert end * (1 + rho * end) ** 2 == pytest.approx(c, rel=1e-12)
    if rho > 0:
        assert region.isolated_points == (-1 / rho,)


@given(lr=lrs, rho=rhos)
def test_hessian_usam_region(lr, rho):
    region = O.hessian_usam(lr=lr, rho=rho).region
    ((lo, hi),) = region.intervals
    assert lo == 0.0
    # λ* + ρλ*³ = 2/α, and λ ↦ λ + ρλ³ is increasing, so λ* is the only solution
    assert hi + rho * hi ** 3 == pytest.approx(2.0 / lr, rel=1e-12)
    assert hi == pytest.approx(positive_root(lambda t: t + rho * t ** 3, 2.0 / lr), rel=1e-12)


def test_regions_printed_for_the_issue_hyperparameters():
    printed = {name: str(f(**kw).region) for name, f, kw in [
        ("gd", O.gradient_descent, {"lr": 0.1}),
        ("hb", O.heavy_ball, {"lr": 0.1, "momentum": 0.9}),
        ("nag", O.nesterov, {"lr": 0.1, "momentum": 0.9}),
        ("usam", O.usam, {"lr": 0.1, "rho": 0.5}),
        ("two", O.two_step_usam, {"lr": 0.1, "rho": 0.5}),
        ("hess", O.hessian_usam, {"lr": 0.1, "rho": 0.5}),
        ("pen", O.penalty_sam, {"lr": 0.1, "rho": 0.5}),
    ]}
    assert printed == {"gd": "[0, 20]", "hb": "[0, 38]", "nag": "[0, 13.57]",
                       "usam": "[-7.403, -2] ∪ [0, 5.403]", "two": "{-2} ∪ [0, 3.089]",
                       "hess": "[0, 3.225]", "pen": "[-7.403, -2] ∪ [0, 5.403]"}
    assert O.sam(lr=0.1, rho=0.5).region is None
    assert "not C¹" in O.sam(lr=0.1, rho=0.5).outside_hypotheses


# -- membership semantics: contains(λ) ⇔ the defining inequality ----------------------------

def defining_value(name, hp, lam):
    """α·p(λ) for the single-state methods; the filter is 0 ≤ α·p(λ) ≤ 2."""
    a, r = hp["lr"], hp.get("rho", 0.0)
    p = {"usam": lam * (1 + r * lam), "penalty_sam": lam * (1 + r * lam),
         "two_step_usam": lam * (1 + r * lam) ** 2, "hessian_usam": lam * (1 + r * lam ** 2),
         "gradient_descent": lam}[name]
    return a * p


@pytest.mark.parametrize("name", ["gradient_descent", "usam", "penalty_sam",
                                  "two_step_usam", "hessian_usam"])
@given(lr=lrs, rho=rhos, u=st.lists(st.floats(-1.5, 1.5), min_size=1, max_size=20))
def test_contains_iff_defining_inequality(name, lr, rho, u):
    hp = {"lr": lr} if name == "gradient_descent" else {"lr": lr, "rho": rho}
    region = O.BUILTINS[name](**hp).region
    # λ sampled over a range covering every band, away from the boundary points
    scale = max(region.scale, 1.0 / lr)
    lam = np.array(u) * 1.5 * scale
    away = np.abs(region.margin(lam)) > 1e-6 * scale
    v = defining_value(name, hp, lam)
    assert np.array_equal(region.contains(lam)[away], ((v >= 0) & (v <= 2))[away])


@pytest.mark.parametrize("factory, jury", [
    (O.heavy_ball, lambda a, b, lam: (1 + b - a * lam, b)),
    (O.nesterov, lambda a, b, lam: ((1 + b) * (1 - a * lam), b * (1 - a * lam))),
])
@given(lr=lrs, beta=momenta, u=st.lists(st.floats(-1.5, 1.5), min_size=1, max_size=20))
def test_momentum_contains_iff_roots_in_unit_disk(factory, jury, lr, beta, u):
    region = factory(lr=lr, momentum=beta).region
    lam = np.array(u) * 1.5 * region.scale
    for x in lam:
        if abs(region.margin(x)) <= 1e-6 * region.scale:
            continue
        s, p = jury(lr, beta, x)  # z² − s z + p
        radius = np.max(np.abs(np.roots([1.0, -s, p])))
        assert bool(region.contains(x)) == (radius <= 1.0), (x, radius)
