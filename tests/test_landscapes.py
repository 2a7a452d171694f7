"""Landscapes: advertised critical sets are critical, with the closed-form Hessian."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynverify.functions import from_spec
from dynverify.landscapes import MatrixFactorization, Product, Wells
from dynverify.strategies import landscapes


def mf_hessian(f, x):
    """∇²½‖UVᵀ − M‖² = JᵀJ + [R ⊗ I] cross block, J the Jacobian of (U, V) ↦ UVᵀ."""
    U, V = (a[0] for a in f.split(x[None]))
    m, n, r = f.m, f.n, f.rank
    R = U @ V.T - f.M
    J = np.zeros((m * n, f.dim))
    iu = lambda i, a: i * r + a  # noqa: E731 -- index of U[i, a] in x
    iv = lambda j, a: m * r + j * r + a  # noqa: E731
    for i in range(m):
        for j in range(n):
            for a in range(r):
                J[i * n + j, iu(i, a)] = V[j, a]
                J[i * n + j, iv(j, a)] = U[i, a]
    H = J.T @ J
    for i in range(m):
        for j in range(n):
            for a in range(r):
                H[iu(i, a), iv(j, a)] += R[i, j]
                H[iv(j, a), iu(i, a)] += R[i, j]
    return H


def closed_form_hessian(f, x):
    if isinstance(f, Product):
        v = x[::-1]
        return np.outer(v, v) + (x[0] * x[1] - f.c) * np.array([[0.0, 1.0], [1.0, 0.0]])
    if isinstance(f, Wells):
        y = f.rotation.T @ (x - f.x0)
        curv = [k * sum(np.prod([y[i] - rs[l] for l in range(len(rs)) if l != j])
                        for j in range(len(rs)))
                for i, (k, rs) in enumerate(zip(f.k, f.roots))]
        return f.rotation @ np.diag(curv) @ f.rotation.T
    return mf_hessian(f, x)


def grad_tolerance(f, X):
    return 1e-9 * (1.0 + np.max(np.abs(X))) ** 3 * (1.0 + np.max(np.abs(f.spec().get("M", 1))))


@given(landscapes())
def test_critical_points_are_critical_with_closed_form_hessian(f):
    X = f.critical_points()
    assert X.ndim == 2 and X.shape[1] == f.dim and X.shape[0] >= 1
    assert np.max(np.abs(f.grad(X))) <= grad_tolerance(f, X)
    H = f.hess(X)
    for x, h in zip(X, H):
        np.testing.assert_allclose(h, closed_form_hessian(f, x), rtol=1e-9, atol=1e-9)


@given(landscapes(kinds=("product", "matrix_factorization")), st.data())
def test_manifold_of_minima_is_critical_with_closed_form_psd_hessian(f, data):
    p = f.manifold_params
    coordinate = st.tuples(st.floats(0.1, 1.0), st.sampled_from([1.0, -1.0]))
    Z = np.array(data.draw(st.lists(st.lists(coordinate.map(lambda t: t[0] * t[1]),
                                             min_size=p, max_size=p), min_size=2, max_size=4)))
    X = f.manifold_points(Z)
    assert np.max(np.abs(f.manifold_residual(X))) <= 1e-9 * (1.0 + np.max(np.abs(X))) ** 2
    assert np.max(np.abs(f.grad(X))) <= grad_tolerance(f, X)
    assert np.max(np.abs(f.value(X))) <= 1e-9 + 0.5 * _tail(f)
    for x, h in zip(X, f.hess(X)):
        np.testing.assert_allclose(h, closed_form_hessian(f, x), rtol=1e-9, atol=1e-9)
        assert np.min(np.linalg.eigvalsh(h)) >= -1e-8 * (1 + np.max(np.abs(h)))


def _tail(f):
    """min f = ½Σ_{i>r}σᵢ² for factorization (0 for the product)."""
    if isinstance(f, MatrixFactorization):
        s = np.linalg.svd(f.M, compute_uv=False)
        return float(np.sum(s[f.rank:] ** 2))
    return 0.0


def test_product_critical_set_in_closed_form():
    f = Product(2.0)
    X = f.manifold_points(np.array([[1.0], [4.0]]))
    np.testing.assert_array_equal(X, [[1.0, 2.0], [4.0, 0.5]])
    np.testing.assert_array_equal(f.grad(X), np.zeros((2, 2)))
    # sharpness ‖x‖² varies along the hyperbola; the origin is a saddle with eigenvalues ±c
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hess(X)), [[0.0, 5.0], [0.0, 16.25]])
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hess(np.zeros((1, 2))))[0], [-2.0, 2.0])


def test_wells_have_minima_saddles_and_maxima():
    f = Wells([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    curv = f.curvatures()
    signs = sorted(int(np.sum(c < 0)) for c in curv)
    assert signs == [0] * 4 + [1] * 4 + [2]
    np.testing.assert_array_equal(f.grad(f.critical_points()), np.zeros((9, 2)))


@given(landscapes(), st.integers(0, 2**32 - 1))
def test_derivatives_agree_with_finite_differences(f, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, size=(3, f.dim))
    h = 1e-6
    E = np.eye(f.dim) * h
    G = f.grad(X)
    for x, g in zip(X, G):
        fd = (f.value(x + E) - f.value(x - E)) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * (1 + np.max(np.abs(g))))
    H = f.hess(X)
    for x, hx in zip(X, H):
        fd = (f.grad(x + E) - f.grad(x - E)).T / (2 * h)
        np.testing.assert_allclose(hx, fd, rtol=1e-5, atol=1e-5 * (1 + np.max(np.abs(hx))))
        np.testing.assert_allclose(hx, hx.T, rtol=0, atol=1e-12 * (1 + np.max(np.abs(hx))))
    V = rng.standard_normal(X.shape)
    np.testing.assert_allclose(f.hvp(X, V), np.einsum("bij,bj->bi", H, V), rtol=1e-10,
                               atol=1e-10 * (1 + np.max(np.abs(H))))


@given(landscapes(), st.integers(0, 2**32 - 1))
def test_spec_round_trip_is_exact(f, seed):
    g = from_spec(json.dumps(f.spec()))
    assert type(g) is type(f) and g.spec() == f.spec() and repr(g) == repr(f)
    X = np.random.default_rng(seed).standard_normal((4, f.dim))
    for method in ("value", "grad", "hess"):
        np.testing.assert_array_equal(getattr(g, method)(X), getattr(f, method)(X))
    np.testing.assert_array_equal(g.critical_points(), f.critical_points())


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Product(0.0), "c"),
    (lambda: MatrixFactorization([[1.0]], rank=0), "rank"),
    (lambda: MatrixFactorization([[np.nan]], rank=1), "M"),
    (lambda: Wells([[0.0, 0.0]]), "distinct"),
    (lambda: Wells([[0.0]], k=[0.0]), "k"),
    (lambda: Wells([[0.0], [1.0]], rotation=[[1.0, 1.0], [0.0, 1.0]]), "rotation"),
])
def test_constructors_reject_malformed_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- the vectorized evaluation against the per-coordinate definition ------------------------

def wells_reference(f, Y):
    """pᵢ′ and pᵢ″ one coordinate at a time: kᵢ·Πⱼ(yᵢ − rᵢⱼ) and kᵢ·Σⱼ Πₗ≠ⱼ(yᵢ − rᵢₗ)."""
    d1, d2 = np.zeros_like(Y), np.zeros_like(Y)
    for i, (k, rs) in enumerate(zip(f.k, f.roots)):
        fac = [Y[:, i] - r for r in rs]
        d1[:, i] = k * np.prod(fac, axis=0)
        d2[:, i] = k * sum(np.prod([np.ones_like(Y[:, i]), *fac[:j], *fac[j + 1:]], axis=0)
                           for j in range(len(fac)))
    return d1, d2


@given(landscapes(kinds=("wells",), max_dim=4), st.integers(0, 2**32 - 1))
def test_wells_vectorized_equal_the_per_coordinate_products_bit_for_bit(f, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (7, f.dim))
    X[0] = f.critical_points()[0]  # a root: the product form gives exactly zero there
    V = rng.standard_normal(X.shape)
    d1, d2 = wells_reference(f, (X - f.x0) @ f.rotation)
    assert np.array_equal(f.grad(X), d1 @ f.rotation.T)
    assert np.array_equal(f.hvp(X, V), ((V @ f.rotation) * d2) @ f.rotation.T)
    Y = np.array(list(itertools.product(*f.roots)))
    assert np.array_equal(f.curvatures(), wells_reference(f, Y)[1])
    assert not np.any(wells_reference(f, Y)[0])  # p′ vanishes exactly at the roots


def test_wells_with_ragged_roots_match_the_closed_form():
    # one root (p′ = k(y − r): a quadratic) beside three roots (a double well)
    f = Wells([[0.5], [-1.0, 0.0, 2.0]], k=[2.0, 3.0])
    X = np.array([[1.5, 1.0], [0.5, -1.0]])
    y = X
    expected_grad = np.stack([2.0 * (y[:, 0] - 0.5),
                              3.0 * (y[:, 1] + 1.0) * y[:, 1] * (y[:, 1] - 2.0)], axis=1)
    assert np.array_equal(f.grad(X), expected_grad)
    # p″ = k for one root; 3(3y² − 2y − 2) for roots −1, 0, 2
    expected_curv = np.stack([np.full(2, 2.0), 3.0 * (3 * y[:, 1] ** 2 - 2 * y[:, 1] - 2)],
                             axis=1)
    np.testing.assert_allclose(np.diagonal(f.hess(X), axis1=1, axis2=2), expected_curv,
                               rtol=1e-15, atol=1e-15)


@given(landscapes(kinds=("matrix_factorization",)), st.integers(0, 2**32 - 1))
def test_matrix_factorization_equals_the_einsum_definition_bit_for_bit(f, seed):
    rng = np.random.default_rng(seed)
    X, W = rng.standard_normal((2, 5, f.dim))
    U, V = f.split(X)
    dU, dV = f.split(W)
    R = np.einsum("bir,bjr->bij", U, V) - f.M
    dR = np.einsum("bir,bjr->bij", dU, V) + np.einsum("bir,bjr->bij", U, dV)
    Rt, dRt = np.swapaxes(R, 1, 2), np.swapaxes(dR, 1, 2)
    join = lambda A, C: np.concatenate([A.reshape(5, -1), C.reshape(5, -1)], axis=1)  # noqa: E731
    assert np.array_equal(f.grad(X), join(R @ V, Rt @ U))
    assert np.array_equal(f.hvp(X, W), join(dR @ V + R @ dV, dRt @ U + Rt @ dU))
    assert np.array_equal(f.value(X), 0.5 * np.einsum("bij,bij->b", R, R))
