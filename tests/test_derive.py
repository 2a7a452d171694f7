"""derive_region and filter_function: the filter computed from an optimizer's own step."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

import dynverify as dv
from dynverify import Optimizer, Region
from dynverify import optimizers as O

lrs = st.floats(min_value=1e-3, max_value=1e3)  # large steps included
rhos = st.one_of(st.just(0.0), st.floats(min_value=1e-4, max_value=1e2))
momenta = st.floats(min_value=0.0, max_value=0.99)


def assert_same_filter(derived, expected, rtol=1e-9):
    """isclose, and each boundary point within rtol of its own size (points at 0: of
    the region's size)."""
    assert derived.isclose(expected, rtol=rtol), (str(derived), str(expected))
    scale = expected.scale
    for (lo, hi), (elo, ehi) in zip(derived.intervals, expected.intervals):
        for g, e in ((lo, elo), (hi, ehi)):
            assert abs(g - e) <= rtol * abs(e) + 1e-12 * scale, (derived, expected)
    assert derived.isolated_points == pytest.approx(expected.isolated_points, rel=rtol)


def usam_band(c, rho):
    """{λ : 0 ≤ λ(1 + ρλ) ≤ c}."""
    if rho == 0:
        return Region([(0.0, c)])
    s = math.sqrt(1.0 + 4.0 * rho * c)
    return Region([((-1.0 - s) / (2.0 * rho), -1.0 / rho), (0.0, 2.0 * c / (1.0 + s))])


def two_step_band(c, rho):
    """{λ : 0 ≤ λ(1 + ρλ)² ≤ c} = [0, λ*] ∪ {−1/ρ}."""
    top = brentq(lambda t: t * (1 + rho * t) ** 2 - c, 0.0, c, xtol=1e-300, rtol=1e-15)
    return Region([(0.0, top)] + ([(-1 / rho, -1 / rho)] if rho > 0 else []))


# -- plug-ins written here ----------------------------------------------------------------

def _with_previous(X):
    return (X, X.copy())


def heavy_ball_usam(lr, rho, momentum, steps=1):
    """x⁺ = x − α∇f(yₖ) + β(x − x₋), y₀ = x, yᵢ₊₁ = yᵢ + ρ∇f(yᵢ) (k = steps)."""

    def step(state, f):
        x, x_prev = state
        y = x
        for _ in range(steps):
            y = y + rho * f.grad(y)
        return (x - lr * f.grad(y) + momentum * (x - x_prev), x)

    return Optimizer(name=f"hb_usam{steps}", hyperparameters={"lr": lr, "rho": rho,
                     "momentum": momentum}, init=_with_previous, step=step)


def nesterov_lookahead(lr, momentum):
    """Nesterov in the lookahead variable: x⁺ = y − α∇f(y), y⁺ = x⁺ + β(x⁺ − x); state (y, x)."""

    def step(state, f):
        y, x = state
        x_new = y - lr * f.grad(y)
        return (x_new + momentum * (x_new - x), x_new)

    return Optimizer(name="nesterov_lookahead", hyperparameters={"lr": lr, "momentum": momentum},
                     init=_with_previous, step=step)


def two_momentum(lr, b1, b2):
    """x⁺ = x − α∇f(x) + β₁(x − x₋) + β₂(x₋ − x₋₋); state (x, x₋, x₋₋)."""

    def step(state, f):
        x, x1, x2 = state
        return (x - lr * f.grad(x) + b1 * (x - x1) + b2 * (x1 - x2), x, x1)

    return Optimizer(name="two_momentum", hyperparameters={"lr": lr, "b1": b1, "b2": b2},
                     init=lambda X: (X, X.copy(), X.copy()), step=step)


def two_momentum_radius(lr, b1, b2, lam):
    """Largest root modulus of z³ − (1 + β₁ − αλ)z² − (β₂ − β₁)z + β₂."""
    return float(np.max(np.abs(np.roots([1.0, -(1 + b1 - lr * lam), -(b2 - b1), b2]))))


# -- built-ins ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in O.BUILTINS if n != "sam"])
@settings(max_examples=15, deadline=None)
@given(lr=lrs, rho=rhos, beta=momenta)
def test_derived_region_equals_declared(name, lr, rho, beta):
    hp = {"lr": lr, "momentum": beta, "rho": rho}
    params = {"gradient_descent": ("lr",), "heavy_ball": ("lr", "momentum"),
              "nesterov": ("lr", "momentum"), "rmsprop": ("lr",),
              "adam": ("lr",)}.get(name, ("lr", "rho"))
    opt = O.BUILTINS[name](**{p: hp[p] for p in params})
    assert_same_filter(dv.derive_region(opt), opt.region)


@pytest.mark.parametrize("lr, rho, expected", [
    (0.1, 0.5, "[-7.403, -2] ∪ [0, 5.403]"),
    (1e-3, 1e-4, None),       # negative band near −1e4, positive band up to ~2e3
    (100.0, 50.0, None),      # large step, tiny filter
])
def test_derived_usam_bands_far_apart(lr, rho, expected):
    derived = dv.derive_region(O.usam(lr=lr, rho=rho))
    assert_same_filter(derived, usam_band(2.0 / lr, rho))
    if expected:
        assert str(derived) == expected


def test_derived_two_step_isolated_point_far_away():
    opt = O.two_step_usam(lr=100.0, rho=1e-4)  # {−1e4} ∪ [0, 0.02]
    derived = dv.derive_region(opt)
    assert_same_filter(derived, two_step_band(0.02, 1e-4))
    assert derived.isolated_points == pytest.approx((-1e4,), rel=1e-12)


def test_sam_is_not_differentiable():
    with pytest.raises(dv.NotDifferentiableError, match="not differentiable") as info:
        dv.derive_region(O.sam(lr=0.1, rho=0.5))
    assert "not C¹" in str(info.value) and "sam" in str(info.value)


# -- plug-ins -----------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(lr=st.floats(1e-2, 1e2), rho=rhos, beta=momenta)
def test_heavy_ball_usam_filter(lr, rho, beta):
    # per eigenvalue z² − (1 + β − αp(λ))z + β: stable iff 0 ≤ αp(λ) ≤ 2(1 + β)
    derived = dv.derive_region(heavy_ball_usam(lr, rho, beta, steps=1))
    expected = usam_band(2 * (1 + beta) / lr, rho)
    assert_same_filter(derived, expected)
    assert expected.isclose(O.usam_filter(lr, rho, 1, upper=2 * (1 + beta) / lr), rtol=1e-12)


@settings(max_examples=10, deadline=None)
@given(lr=st.floats(1e-2, 1e2), rho=rhos, beta=momenta)
def test_heavy_ball_two_step_usam_filter(lr, rho, beta):
    derived = dv.derive_region(heavy_ball_usam(lr, rho, beta, steps=2))
    assert_same_filter(derived, two_step_band(2 * (1 + beta) / lr, rho))


@settings(max_examples=10, deadline=None)
@given(lr=lrs, beta=momenta)
def test_lookahead_nesterov_has_nesterovs_filter(lr, beta):
    derived = dv.derive_region(nesterov_lookahead(lr, beta))
    assert_same_filter(derived, O.nesterov(lr=lr, momentum=beta).region)
    assert_same_filter(derived, Region([(0.0, 2 * (1 + beta) / ((1 + 2 * beta) * lr))]))


@pytest.mark.parametrize("b1, b2", [(0.5, 0.2), (0.3, -0.2), (0.9, 0.05), (0.0, 0.0)])
def test_three_component_state(b1, b2):
    lr = 0.1
    derived = dv.derive_region(two_momentum(lr, b1, b2))
    assert not derived.empty
    # boundary points are where the largest root modulus is exactly 1
    for e in derived.boundary():
        assert two_momentum_radius(lr, b1, b2, e) == pytest.approx(1.0, abs=1e-9)
    # and the membership agrees with the root moduli away from them
    lam = np.linspace(-2 * derived.scale, 2 * derived.scale, 401)
    for x in lam[np.abs(derived.margin(lam)) > 1e-6 * derived.scale]:
        assert bool(derived.contains(x)) == (two_momentum_radius(lr, b1, b2, x) <= 1.0)
    if b2 == 0.0:  # it is heavy ball
        assert_same_filter(derived, Region([(0.0, 2 * (1 + b1) / lr)]))


def test_empty_and_whole_line_filters():
    always_expanding = Optimizer(name="expand", hyperparameters={}, init=lambda X: (X,),
                                 step=lambda s, f: (2.0 * s[0] - 0.1 * f.grad(s[0]),))
    # |2 − 0.1λ| ≤ 1 on [10, 30]
    assert_same_filter(dv.derive_region(always_expanding), Region([(10.0, 30.0)]))
    frozen = Optimizer(name="frozen", hyperparameters={}, init=lambda X: (X,),
                       step=lambda s, f: (0.5 * s[0],))
    assert dv.derive_region(frozen).intervals == ((-math.inf, math.inf),)
    drifting = Optimizer(name="drift", hyperparameters={}, init=lambda X: (X,),
                         step=lambda s, f: (3.0 * s[0],))
    assert dv.derive_region(drifting).empty


# -- filter function ----------------------------------------------------------------------

@given(lr=lrs, lam=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=10))
def test_filter_function_gradient_descent(lr, lam):
    lam = np.array(lam)
    np.testing.assert_allclose(dv.filter_function(O.gradient_descent(lr=lr))(lam),
                               np.abs(1 - lr * lam), rtol=1e-9, atol=1e-9)


@given(lr=st.floats(1e-2, 10), beta=momenta, lam=st.lists(st.floats(-100, 100), min_size=1,
                                                         max_size=10))
def test_filter_function_heavy_ball(lr, beta, lam):
    got = dv.filter_function(O.heavy_ball(lr=lr, momentum=beta))(np.array(lam))
    want = [np.max(np.abs(np.roots([1.0, -(1 + beta - lr * x), beta]))) for x in lam]
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_filter_function_usam_family_and_shape():
    lam = np.array([[-8.0, -3.0], [1.0, 6.0]])
    a, r = 0.1, 0.5
    cases = {"usam": lam * (1 + r * lam), "penalty_sam": lam * (1 + r * lam),
             "two_step_usam": lam * (1 + r * lam) ** 2, "hessian_usam": lam * (1 + r * lam ** 2)}
    for name, p in cases.items():
        got = dv.filter_function(O.BUILTINS[name](lr=a, rho=r))(lam)
        assert got.shape == (2, 2)
        np.testing.assert_allclose(got, np.abs(1 - a * p), rtol=1e-9)


@pytest.mark.parametrize("name, hp", [
    ("two_step_usam", {"lr": 635.9740538832974, "rho": 0.0001046136364611556}),
    ("two_step_usam", {"lr": 136.78857574680262, "rho": 0.00010528734484726191}),
    ("two_step_usam", {"lr": 0.0012599024771271755, "rho": 67.54457613477246}),
    ("hessian_usam", {"lr": 181.64463637997954, "rho": 0.004408494788040428}),
    ("nesterov", {"lr": 657.0870683323873, "momentum": 1.5e-277}),
])
def test_derive_regressions(name, hp):
    """Cases that once lost an isolated point, were off by √ε, or crashed."""
    opt = O.BUILTINS[name](**hp)
    assert_same_filter(dv.derive_region(opt), opt.region)
