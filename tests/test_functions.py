"""Batched test functions: autograd wrapping, quadratics, JSON specs."""

import json

import autograd.numpy as anp
import numpy as np
import pytest

from dynverify.functions import (
    GuardedOracle,
    Quadratic,
    RowQuadratics,
    as_batch,
    from_callable,
    from_spec,
)


def cubic(x):
    """f(x) = x₀²x₁ + sin(x₀) + x₁⁴/4, vectorized over columns (x has shape (2, B))."""
    return x[0] ** 2 * x[1] + anp.sin(x[0]) + x[1] ** 4 / 4


def cubic_grad(X):
    x0, x1 = X[:, 0], X[:, 1]
    return np.stack([2 * x0 * x1 + np.cos(x0), x0 ** 2 + x1 ** 3], axis=1)


def cubic_hess(X):
    x0, x1 = X[:, 0], X[:, 1]
    return np.stack([np.stack([2 * x1 - np.sin(x0), 2 * x0], -1),
                     np.stack([2 * x0, 3 * x1 ** 2], -1)], axis=1)


def test_from_callable_matches_closed_form():
    f = from_callable(cubic, 2)
    X = np.random.default_rng(0).uniform(-2, 2, (7, 2))
    np.testing.assert_allclose(f.value(X), cubic(X.T), rtol=1e-14)
    np.testing.assert_allclose(f.grad(X), cubic_grad(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f.hess(X), cubic_hess(X), rtol=1e-12, atol=1e-14)
    V = np.random.default_rng(1).standard_normal((7, 2))
    np.testing.assert_allclose(f.hvp(X, V), np.einsum("bij,bj->bi", cubic_hess(X), V),
                               rtol=1e-12, atol=1e-14)


def test_gradient_matches_finite_differences_of_value():
    f = from_callable(cubic, 2)
    X = np.random.default_rng(2).uniform(-1, 1, (5, 2))
    h = 1e-6
    fd = np.stack([(f.value(X + h * e) - f.value(X - h * e)) / (2 * h) for e in np.eye(2)], 1)
    np.testing.assert_allclose(f.grad(X), fd, rtol=1e-7, atol=1e-8)


def test_non_vectorizable_function_falls_back_with_a_warning():
    def scalar_only(x):
        return anp.dot(x, x) + x[0] ** 3  # dot over a (2, B) batch is not a per-row value

    with pytest.warns(UserWarning, match="does not vectorize"):
        f = from_callable(scalar_only, 2)
    X = np.random.default_rng(3).uniform(-1, 1, (4, 2))
    np.testing.assert_allclose(f.value(X), np.sum(X ** 2, 1) + X[:, 0] ** 3, rtol=1e-13)
    np.testing.assert_allclose(f.grad(X), 2 * X + np.stack([3 * X[:, 0] ** 2, 0 * X[:, 1]], 1),
                               rtol=1e-12, atol=1e-14)


def test_from_callable_rejects_bad_dim():
    for dim in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="dim"):
            from_callable(cubic, dim)
    with pytest.raises(TypeError, match="callable"):
        from_callable(3.0, 2)


def test_quadratic_closed_form_and_rotated_spectra():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    lams = np.array([2.0, -1.0, 0.0])
    H = Q @ np.diag(lams) @ Q.T  # symmetric only up to rounding: must be accepted
    x_star = rng.standard_normal(3)
    f = Quadratic(H, x_star)
    X = rng.standard_normal((5, 3))
    U = X - x_star
    np.testing.assert_allclose(f.value(X), 0.5 * np.einsum("bi,ij,bj->b", U, H, U), rtol=1e-12)
    np.testing.assert_allclose(f.grad(X), U @ H, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hess(X)[0]), np.sort(lams), atol=1e-12)
    np.testing.assert_allclose(f.critical_points(), [x_star])
    # an entry that is 0 up to rounding must not break the symmetry check
    Quadratic([[1.0, 1e-20], [1e-20 + 1e-30, 1.0]])


@pytest.mark.parametrize("H, match", [
    ([[1.0, 2.0], [0.0, 1.0]], "symmetric"),
    ([[1.0, 2.0, 3.0]], "square"),
    ([[np.nan]], "finite"),
])
def test_quadratic_rejects_bad_matrices(H, match):
    with pytest.raises(ValueError, match=match):
        Quadratic(H)


def test_quadratic_spec_round_trip():
    f = Quadratic([[2.0, 0.5], [0.5, -1.0]], x_star=[0.25, -3.0])
    text = json.dumps(f.spec())
    g = from_spec(text)
    assert isinstance(g, Quadratic)
    np.testing.assert_array_equal(g.H, f.H)
    np.testing.assert_array_equal(g.x_star, f.x_star)
    assert from_spec(f.spec()).spec() == f.spec()
    X = np.random.default_rng(5).standard_normal((3, 2))
    np.testing.assert_array_equal(g.grad(X), f.grad(X))


@pytest.mark.parametrize("spec, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "'kind'"),
    ({"H": [[1.0]]}, "'kind'"),
    ({"kind": "no_such_family"}, "unknown function kind"),
    ({"kind": "quadratic"}, "malformed 'quadratic'"),
    ({"kind": "quadratic", "H": [[1.0, 2.0], [3.0, 4.0]]}, "malformed 'quadratic'.*symmetric"),
    ({"kind": "callable", "target": "no_such_module_xyz:f", "dim": 1}, "cannot import"),
])
def test_from_spec_bad_input(spec, match):
    with pytest.raises(ValueError, match=match):
        from_spec(spec)


def test_row_quadratics_one_curvature_per_row():
    f = RowQuadratics([1.0, -2.0, 3.0])
    X = np.array([[1.0], [2.0], [-1.0]])
    np.testing.assert_array_equal(f.grad(X), [[1.0], [-4.0], [-3.0]])
    np.testing.assert_array_equal(f.value(X), [0.5, -4.0, 1.5])
    np.testing.assert_array_equal(f.hess(X)[:, 0, 0], [1.0, -2.0, 3.0])


def test_as_batch():
    assert as_batch([1.0, 2.0], 2).shape == (1, 2)
    assert as_batch(np.zeros((4, 2)), 2).shape == (4, 2)
    with pytest.raises(ValueError, match=r"x_bar must have shape \(B, 3\)"):
        as_batch(np.zeros((2, 2)), 3, "x_bar")


def test_guarded_oracle_names_function_and_step():
    class Raising(Quadratic):
        def hvp(self, X, V):
            raise KeyError("nope")

    from dynverify import FunctionError

    oracle = GuardedOracle(Raising(np.eye(2)))
    oracle.step = 7
    with pytest.raises(FunctionError, match=r"hvp raised at step 7: KeyError"):
        oracle.hvp(np.zeros((1, 2)), np.zeros((1, 2)))
    np.testing.assert_array_equal(oracle.grad(np.ones((1, 2))), [[1.0, 1.0]])
