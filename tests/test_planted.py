"""Planted functions: the planted point is critical with exactly the drawn spectrum."""

import json
import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from dynverify.functions import from_spec
from dynverify.optimizers import gradient_descent
from dynverify.planted import PHIS, PlantedFunction, phis
from dynverify.regions import Region
from dynverify.strategies import planted_functions, spectra

REGION = Region([(-6.0, -1.0), (0.0, 10.0)])
FUNCTIONS = planted_functions(spectra=spectra(region=REGION, placement="mixed"))
#: no explain phase: it re-runs every example under a tracer and costs seconds
QUICK_PHASES = [Phase.generate, Phase.shrink]
FUNCTIONS_C3 = planted_functions(spectra=spectra(region=REGION, placement="mixed"),
                                 smoothness="C3")

#: the catalogue written independently, in autograd.numpy
AG_PHIS = {
    "cube": lambda t: t**3,
    "quartic": lambda t: t**4,
    "abs_cube": lambda t: anp.abs(t) ** 3,
    "relu_cube": lambda t: anp.maximum(t, 0.0) ** 3,
    "signed_quartic": lambda t: t**3 * anp.abs(t),
    "relu_quartic": lambda t: anp.maximum(t, 0.0) ** 4,
    "rational": lambda t: t**4 / (1.0 + t**2),
    "sqrt": lambda t: (anp.sqrt(1.0 + t**2) - 1.0) ** 2,
}


def autograd_version(f):
    """f(x) from its spec alone, in autograd.numpy: ½Σλᵢ(Qᵀu)ᵢ² + Σcφ(aᵀu) + μ‖u‖⁴."""
    spec = f.spec()
    lam, xs = np.array(spec["spectrum"]), np.array(spec["x_star"])
    Q = np.array(spec["rotation"])

    def fun(x):
        u = x - xs
        y = anp.dot(Q.T, u)
        val = 0.5 * anp.sum(lam * y**2)
        for t in spec["terms"]:
            val = val + t["c"] * AG_PHIS[t["phi"]](anp.dot(np.array(t["a"]), u))
        return val + spec["mu"] * anp.sum(u**2) ** 2

    return fun


def fd_gradient(f, x, h):
    d = x.size
    E = np.eye(d) * h
    return (f.value(x + E) - f.value(x - E)) / (2 * h)


def fd_hessian(f, x, h):
    """Four-point central second differences of value alone."""
    d = x.size
    E = np.eye(d) * h
    H = np.empty((d, d))
    for i in range(d):
        P = x + E[i] + E
        M = x - E[i] + E
        P2 = x + E[i] - E
        M2 = x - E[i] - E
        H[i] = (f.value(P) - f.value(M) - f.value(P2) + f.value(M2)) / (4 * h * h)
    return 0.5 * (H + H.T)


def test_repr_is_readable():
    assert repr(PlantedFunction([20.0])) == (
        "PlantedFunction(dim=1, spectrum=(20.0,), x_star=(0.0,), terms=())")


@pytest.mark.parametrize("name", sorted(PHIS))
def test_catalogue_vanishes_to_second_order_and_derivatives_agree(name):
    phi = PHIS[name]
    zero = np.array([0.0])
    assert phi.value(zero)[0] == phi.d1(zero)[0] == phi.d2(zero)[0] == 0.0
    t = np.linspace(-3.0, 3.0, 601)
    h = 1e-6
    np.testing.assert_allclose(phi.d1(t), (phi.value(t + h) - phi.value(t - h)) / (2 * h),
                               rtol=1e-6, atol=1e-6)
    # atol: at the kink of |t|³ the central difference is 3h, not 0
    np.testing.assert_allclose(phi.d2(t), (phi.d1(t + h) - phi.d1(t - h)) / (2 * h),
                               rtol=1e-6, atol=1e-5)
    s = np.linspace(-1.0, 1.0, 20001)
    assert np.all(np.abs(phi.d2(s)) <= phi.lip * np.abs(s) + 1e-15)
    # small arguments keep full relative precision (no cancellation)
    assert phi.value(np.array([1e-5]))[0] == pytest.approx(
        float(AG_PHIS[name](1e-5)), rel=1e-12)


def test_c3_catalogue_excludes_c2_only_terms():
    assert {"abs_cube", "relu_cube"} & set(phis(3)) == set()
    assert set(phis(3)) < set(phis(2)) == set(PHIS)
    # third derivative of |t|³ jumps at 0, of t³|t| it does not
    h = 1e-4
    for name, jumps in (("abs_cube", True), ("signed_quartic", False)):
        d2 = PHIS[name].d2
        right = (d2(np.array([2 * h])) - d2(np.array([h])))[0] / h
        left = (d2(np.array([-h])) - d2(np.array([-2 * h])))[0] / h
        assert bool(abs(right - left) > 1.0) is jumps


@given(FUNCTIONS_C3)
def test_c3_draws_only_c3_terms(f):
    assert f.smoothness >= 3


@given(FUNCTIONS)
def test_planted_point_is_critical_with_drawn_spectrum_by_finite_differences(f):
    x = np.array(f.x_star)
    scale = max(1.0, max(abs(v) for v in f.spectrum))
    assert np.max(np.abs(fd_gradient(f, x, 1e-5))) <= 1e-6 * scale
    H = fd_hessian(f, x, 1e-5)
    eig = np.sort(np.linalg.eigvalsh(H))
    np.testing.assert_allclose(eig, np.sort(f.spectrum), rtol=0, atol=1e-3 + 1e-6 * scale)
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hessian_at_star), np.sort(f.spectrum),
                               rtol=0, atol=1e-12 * scale)


@given(FUNCTIONS, st.integers(0, 2**32 - 1))
def test_derivatives_agree_with_autograd(f, seed):
    rng = np.random.default_rng(seed)
    X = np.array(f.x_star) + rng.uniform(-2.0, 2.0, size=(3, f.dim))
    fun = autograd_version(f)
    grad, hess = autograd.grad(fun), autograd.hessian(fun)
    scale = 1.0 + float(np.max(np.abs(f.spectrum))) + 100.0
    np.testing.assert_allclose(f.value(X), [fun(x) for x in X], rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(f.grad(X), [grad(x) for x in X], rtol=1e-9, atol=1e-9 * scale)
    H = f.hess(X)
    np.testing.assert_allclose(H, [hess(x) for x in X], rtol=1e-9, atol=1e-9 * scale)
    V = rng.standard_normal(X.shape)
    np.testing.assert_allclose(f.hvp(X, V), np.einsum("bij,bj->bi", H, V),
                               rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_array_equal(f.grad(np.array([f.x_star])), np.zeros((1, f.dim)))


@given(FUNCTIONS, st.integers(0, 2**32 - 1))
def test_spec_round_trip_is_exact(f, seed):
    g = from_spec(json.loads(json.dumps(f.spec())))
    assert isinstance(g, PlantedFunction)
    assert g.spec() == f.spec() and repr(g) == repr(f)
    X = np.array(f.x_star) + np.random.default_rng(seed).standard_normal((4, f.dim))
    for method in ("value", "grad", "hess"):
        np.testing.assert_array_equal(getattr(g, method)(X), getattr(f, method)(X))


@given(FUNCTIONS, st.integers(0, 2**32 - 1))
def test_quadratic_radius_bounds_the_non_quadratic_gradient(f, seed):
    rel = 0.01
    r = f.quadratic_radius(rel)
    lam_min = min(abs(v) for v in f.spectrum if v != 0.0)
    rng = np.random.default_rng(seed)
    radius = min(r, 1e3)
    U = rng.standard_normal((8, f.dim))
    U *= (radius * rng.random(8) / np.linalg.norm(U, axis=1))[:, None]
    U[0] *= radius / np.linalg.norm(U[0])  # one point on the sphere itself
    rest = f.grad(np.array(f.x_star) + U) - U @ f.hessian_at_star
    bound = rel * lam_min * np.linalg.norm(U, axis=1)
    assert np.all(np.linalg.norm(rest, axis=1) <= bound * (1 + 1e-6) + 1e-12 * lam_min)


def test_quadratic_radius_edge_cases():
    assert PlantedFunction([2.0]).quadratic_radius() == math.inf
    assert PlantedFunction([0.0], mu=1.0).quadratic_radius() == 0.0
    # 4μr² = rel·λ: r = √(0.01·4/4) = 0.1
    assert PlantedFunction([4.0], mu=1.0).quadratic_radius() == pytest.approx(0.1)
    # cube: |φ′(t)| ≤ 3t², so r = rel·λ/(|c|·6/2)
    f = PlantedFunction([3.0], terms=[("cube", 0.5, [1.0])])
    assert f.quadratic_radius() == pytest.approx(0.01 * 3.0 / 1.5)


def test_minimal_counterexample_is_dimension_one_without_terms():
    """A deliberately false property shrinks to the simplest planted function."""
    region = gradient_descent(lr=0.1).region
    fs = planted_functions(spectra=spectra(region=region, placement="mixed", max_dim=4))
    seen = []

    @settings(database=None, max_examples=300, derandomize=True, phases=QUICK_PHASES)
    @given(fs)
    def all_planted_points_are_minima(f):
        seen.append(f)
        assert np.all(np.linalg.eigvalsh(f.hess(np.array([f.x_star]))[0]) > 0)

    with pytest.raises(AssertionError):
        all_planted_points_are_minima()
    f = seen[-1]  # the final replay is the shrunk example
    assert f.dim == 1 and f.terms == () and f.mu == 0.0 and f.x_star == (0.0,)
    assert repr(f).startswith("PlantedFunction(dim=1, spectrum=(-")

    g = find(fs, lambda f: f.dim >= 2,
             settings=settings(database=None, derandomize=True, phases=QUICK_PHASES))
    assert g.dim == 2 and g.terms == () and np.array_equal(g.rotation, np.eye(2))


@pytest.mark.parametrize("kwargs", [
    {"spectrum": []},
    {"spectrum": [1.0, float("nan")]},
    {"spectrum": [1.0], "x_star": [0.0, 0.0]},
    {"spectrum": [1.0, 2.0], "rotation": [[1.0, 1.0], [0.0, 1.0]]},
    {"spectrum": [1.0], "terms": [("banana", 1.0, [1.0])]},
    {"spectrum": [1.0], "mu": -1.0},
])
def test_constructor_rejects_malformed_input(kwargs):
    with pytest.raises(ValueError):
        PlantedFunction(**kwargs)


@given(FUNCTIONS, st.integers(0, 2**32 - 1))
def test_vectorized_terms_equal_the_term_by_term_definition_bit_for_bit(f, seed):
    """value/grad/hvp against Σₖ cₖφₖ(aₖᵀu) evaluated one term at a time."""
    rng = np.random.default_rng(seed)
    X = np.asarray(f.x_star) + rng.standard_normal((6, f.dim))
    V = rng.standard_normal(X.shape)
    U = X - np.asarray(f.x_star)
    H = f.hessian_at_star
    A = np.array([t.a for t in f.terms]).reshape(-1, f.dim)
    val, g, hv = 0.5 * np.einsum("bi,bi->b", U @ H, U), U @ H, V @ H
    if f.terms:
        T = U @ A.T
        D1 = np.stack([t.c * PHIS[t.phi].d1(T[:, k]) for k, t in enumerate(f.terms)], axis=1)
        D2 = np.stack([t.c * PHIS[t.phi].d2(T[:, k]) for k, t in enumerate(f.terms)], axis=1)
        for k, t in enumerate(f.terms):
            val = val + t.c * PHIS[t.phi].value(T[:, k])
        g = g + D1 @ A
        hv = hv + (D2 * (V @ A.T)) @ A
    if f.mu:
        r2 = np.einsum("bi,bi->b", U, U)
        uv = np.einsum("bi,bi->b", U, V)
        val = val + f.mu * r2 * r2
        g = g + (4.0 * f.mu * r2)[:, None] * U
        hv = hv + f.mu * (4.0 * r2[:, None] * V + 8.0 * uv[:, None] * U)
    assert np.array_equal(f.value(X), val)
    assert np.array_equal(f.grad(X), g)
    assert np.array_equal(f.hvp(X, V), hv)
    # lists and single points are still accepted
    assert np.array_equal(f.grad(X[0].tolist()), f.grad(X[:1]))


@pytest.mark.parametrize("name", sorted(PHIS))
def test_catalogue_derivatives_match_the_power_formulas_to_a_few_ulps(name):
    """t³ is evaluated as t·t·t (fast); against np.power forms the error is ≤ 4 ulps."""
    t = np.concatenate([np.linspace(-3, 3, 601), np.geomspace(1e-150, 1e3, 300),
                        -np.geomspace(1e-150, 1e3, 300)])
    relu = np.maximum(t, 0.0)
    s = np.sqrt(1.0 + t * t)
    power_forms = {
        "cube": (3.0 * t**2, 6.0 * t),
        "quartic": (4.0 * t**3, 12.0 * t**2),
        "abs_cube": (3.0 * t * np.abs(t), 6.0 * np.abs(t)),
        "relu_cube": (3.0 * relu**2, 6.0 * relu),
        "signed_quartic": (4.0 * t**2 * np.abs(t), 12.0 * t * np.abs(t)),
        "relu_quartic": (4.0 * relu**3, 12.0 * relu**2),
        "rational": (2.0 * t**3 * (2.0 + t**2) / (1.0 + t**2) ** 2,
                     2.0 * t**2 * (6.0 + 3.0 * t**2 + t**4) / (1.0 + t**2) ** 3),
        "sqrt": (2.0 * t**3 / (s * (s + 1.0)),
                 2.0 * t**2 / (1.0 + t**2) + 2.0 * t**2 / ((s + 1.0) * s**3)),
    }
    d1, d2 = power_forms[name]
    for got, want in ((PHIS[name].d1(t), d1), (PHIS[name].d2(t), d2)):
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(float).eps, atol=0)


@pytest.mark.parametrize("lam", [1e-200, 1e-305, 5e-324])
def test_quadratic_radius_of_a_pure_quartic_at_tiny_curvature(lam):
    """With no terms, ‖∇f − Hu‖ = 4μ‖u‖³ ≤ rel·λ‖u‖ ⇔ ‖u‖ ≤ √(rel·λ/(4μ)); the product
    4μ·rel·λ underflows to 0 at these λ (it raised ZeroDivisionError from case drawing)."""
    f = PlantedFunction(spectrum=(lam,), x_star=np.zeros(1), mu=1.0)
    assert f.quadratic_radius() == pytest.approx(math.sqrt(0.01 * lam / 4.0), rel=1e-12)
