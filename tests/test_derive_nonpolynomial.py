"""derive_region beyond polynomial linearizations (issue 9 §2).

Every filter here is computed by hand in the test:

- regularized Newton x⁺ = x − α(I + ρ∇²f²)⁻¹∇f: ρ₁(λ) = |1 − αλ/(1 + ρλ²)|, so
  0 ≤ αλ/(1 + ρλ²) ≤ 2 ⇔ λ ≥ 0 and 2ρλ² − αλ + 2 ≥ 0 ⇔ λ ∈ [0, λ₋] ∪ [λ₊, ∞),
  λ± = (α ± √(α² − 16ρ))/(4ρ);
- damped Newton x⁺ = x − α(∇²f + μI)⁻¹∇f: ρ₁(λ) = |1 − αλ/(λ + μ)| (undefined at
  λ = −μ). For λ > −μ: λ ≥ 0 and λ(α − 2) ≤ 2μ; for λ < −μ: λ(α − 2) ≥ 2μ. So
  α < 2: (−∞, −2μ/(2 − α)] ∪ [0, ∞); α = 2: [0, ∞); α > 2: [0, 2μ/(α − 2)];
- GD with smooth clipping x − αg/√(1 + (g/c)²): C^∞, linearization 1 − αλ: [0, 2/α];
- Adam-type with ε inside the root, state (x, m, v), m⁺ = β₁m + (1 − β₁)g,
  v⁺ = β₂v + (1 − β₂)g², x⁺ = x − αm⁺/√(v⁺ + ε²). At (0, 0, 0), g = λx:
  ∂x⁺/∂x = 1 − a λ (a = α(1 − β₁)/ε), ∂x⁺/∂m = −αβ₁/ε, ∂x⁺/∂v = 0 (m = 0);
  ∂m⁺/∂x = (1 − β₁)λ, ∂m⁺/∂m = β₁; ∂v⁺/∂(x, m, v) = (0, 0, β₂) (g = 0). The (x, m)
  block has trace 1 + β₁ − aλ and determinant β₁: heavy ball with step a and momentum
  β₁, so the filter is [0, 2(1 + β₁)/a] = [0, 2(1 + β₁)ε/(α(1 − β₁))];
- Adagrad-type with accumulator a₀ > 0: a⁺ = a + g², x⁺ = x − αg/√a⁺. At (0, a₀):
  J = diag(1 − αλ/√a₀, 1); the accumulator's eigenvalue 1 never moves, so the filter is
  {|1 − αλ/√a₀| ≤ 1} = [0, 2√a₀/α].
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import dynverify as dv
from dynverify import DerivationWarning, Optimizer, Region
from dynverify.derive import derive
from dynverify.linearize import batched_linearization
from dynverify.optimizer import NONNEGATIVE


def same(region, expected, rtol=1e-9, scale=None):
    """Same intervals, each endpoint within rtol of its size (or of ``scale``, default
    the region's)."""
    assert len(region.intervals) == len(expected.intervals), (str(region), str(expected))
    scale = expected.scale if scale is None else scale
    for (a, b), (c, d) in zip(region.intervals, expected.intervals):
        for x, y in ((a, c), (b, d)):
            if math.isinf(y):
                assert x == y, (str(region), str(expected))
            else:
                assert abs(x - y) <= rtol * max(abs(y), scale), (str(region), str(expected))


def certified(opt):
    """derive(opt), asserting it warns nothing and is certified."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = derive(opt)
        region = dv.derive_region(opt)
    assert d.certified, d.describe()
    return d, region


# -- maps written here --------------------------------------------------------------------

def regularized_newton(lr, rho):
    def step(s, f):
        (x,) = s
        g, H = f.grad(x), f.hess(x)
        A = np.eye(x.shape[1])[None] + rho * H @ H
        return (x - lr * np.linalg.solve(A, g[..., None])[..., 0],)

    return Optimizer(name="regularized_newton", hyperparameters={"lr": lr, "rho": rho},
                     init=lambda X: (X,), step=step)


def damped_newton(lr, mu):
    def step(s, f):
        (x,) = s
        A = f.hess(x) + mu * np.eye(x.shape[1])[None]
        return (x - lr * np.linalg.solve(A, f.grad(x)[..., None])[..., 0],)

    return Optimizer(name="damped_newton", hyperparameters={"lr": lr, "mu": mu},
                     init=lambda X: (X,), step=step)


def clipped_gd(lr, c):
    def step(s, f):
        (x,) = s
        g = f.grad(x)
        return (x - lr * g / np.sqrt(1 + (g / c) ** 2),)

    return Optimizer(name="clipped_gd", hyperparameters={"lr": lr, "c": c},
                     init=lambda X: (X,), step=step)


def adam_eps_root(lr, b1, b2, eps, domains=True):
    def step(s, f):
        x, m, v = s
        g = f.grad(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return (x - lr * m / np.sqrt(v + eps ** 2), m, v)

    return Optimizer(name="adam_eps_root", hyperparameters={"lr": lr, "eps": eps},
                     init=lambda X: (X, np.zeros_like(X), np.zeros_like(X)), step=step,
                     state_domains=(None, None, NONNEGATIVE) if domains else None)


def adagrad(lr, a0):
    def step(s, f):
        x, a = s
        g = f.grad(x)
        a = a + g * g
        return (x - lr * g / np.sqrt(a), a)

    return Optimizer(name="adagrad", hyperparameters={"lr": lr, "a0": a0},
                     init=lambda X: (X, np.full_like(X, a0)), step=step,
                     state_domains=(None, NONNEGATIVE))


# -- rational linearizations and unbounded filters ---------------------------------------

@pytest.mark.parametrize("lr, rho", [(0.5, 1e-3), (1.0, 1e-2), (0.2, 1e-4)])
def test_regularized_newton_filter_is_rational_and_unbounded(lr, rho):
    d, region = certified(regularized_newton(lr, rho))
    s = math.sqrt(lr * lr - 16 * rho)
    lo, hi = (lr - s) / (4 * rho), (lr + s) / (4 * rho)
    same(region, Region([(0.0, lo), (hi, math.inf)]))
    assert d.method == "rational"
    if (lr, rho) == (0.5, 1e-3):  # the numbers: [0, 4.066] ∪ [245.9, ∞)
        assert str(region) == "[0, 4.066] ∪ [245.9, ∞)"


@pytest.mark.parametrize("lr", [0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("mu", [0.1, 1.0, 10.0])
def test_damped_newton_filter_reaches_minus_infinity(lr, mu):
    d, region = certified(damped_newton(lr, mu))  # no bare scipy ValueError at λ = −μ
    if lr < 2:
        expected = Region([(-math.inf, -2 * mu / (2 - lr)), (0.0, math.inf)])
    elif lr == 2:
        expected = Region([(0.0, math.inf)])
    else:
        expected = Region([(0.0, 2 * mu / (lr - 2))])
    same(region, expected, scale=mu)
    assert not region.contains(-mu)  # the pole is outside


# -- smooth maps that are not linear at the finite-difference scale -----------------------

@pytest.mark.parametrize("lr", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0])
def test_smoothly_clipped_gradient_descent_is_differentiable(lr, c):
    d, region = certified(clipped_gd(lr, c))
    same(region, Region([(0.0, 2.0 / lr)]))


@pytest.mark.parametrize("lr, b1, b2, eps", [(0.1, 0.9, 0.999, 0.1), (1e-3, 0.9, 0.999, 1e-3),
                                             (0.01, 0.5, 0.99, 1e-2)])
def test_adam_with_eps_inside_the_root(lr, b1, b2, eps):
    opt = adam_eps_root(lr, b1, b2, eps)
    J = dv.derive.linearizations(opt, np.array([3.0]))[0]
    a = lr * (1 - b1) / eps
    np.testing.assert_allclose(J, [[1 - 3.0 * a, -lr * b1 / eps, 0.0],
                                   [(1 - b1) * 3.0, b1, 0.0],
                                   [0.0, 0.0, b2]], rtol=1e-7, atol=1e-9)
    d, region = certified(opt)
    same(region, Region([(0.0, 2 * (1 + b1) * eps / (lr * (1 - b1)))]), rtol=1e-8)
    assert d.differences == "mixed"  # v ≥ 0 is differenced one-sidedly at v = 0


@pytest.mark.parametrize("a0", [0.5, 2.0])
def test_adagrad_with_positive_accumulator(a0):
    lr = 0.1
    d, region = certified(adagrad(lr, a0))
    same(region, Region([(0.0, 2 * math.sqrt(a0) / lr)]))
    assert any("modulus 1" in n for n in d.notes)


# -- state domains --------------------------------------------------------------------------

def test_state_domains_keep_differences_inside_and_say_so():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-4  # ε² = 1e-8 is far below the step
    lam = np.array([2.0, 5.0])
    Z = np.zeros((2, 3))
    oracle = dv.functions.RowQuadratics
    for domains, scheme in ((True, "mixed"), (False, "central")):
        opt = adam_eps_root(lr, b1, b2, eps, domains=domains)
        lin = batched_linearization(opt, lambda rows: oracle(lam[rows]), Z,
                                    [(1,), (1,), (1,)], h=1e-3, check_differentiable=False)
        assert lin.scheme == scheme
        if domains:
            assert lin.one_sided.tolist() == [[False, False, True]] * 2
            a = lr * (1 - b1) / eps
            np.testing.assert_allclose(lin.J[:, 0, 0], 1 - a * lam, rtol=1e-7)
            assert np.all(np.isfinite(lin.J))
        else:  # v − h < −ε²: the square root of a negative number
            assert not np.all(np.isfinite(lin.J))


@pytest.mark.parametrize("bad", [[(0.0,)], [(1.0, 0.0)], [(0.0, math.nan)], "v>=0", 3])
def test_state_domains_are_validated(bad):
    with pytest.raises((TypeError, ValueError), match="state_domains"):
        Optimizer(name="x", hyperparameters={}, init=lambda X: (X,),
                  step=lambda s, f: s, state_domains=bad)


def test_state_domains_must_match_the_state():
    opt = Optimizer(name="x", hyperparameters={}, init=lambda X: (X,),
                    step=lambda s, f: (s[0] - 0.1 * f.grad(s[0]),),
                    state_domains=(None, NONNEGATIVE))
    with pytest.raises(dv.OptimizerError, match="state_domains has 2 entries"):
        dv.derive_region(opt)


# -- neither polynomial nor rational -------------------------------------------------------

def test_transcendental_linearization_warns_and_returns_the_best_region():
    # x⁺ = x − α·sin(λ)·x, with λ read from the Hessian: ρ₁ = |1 − α sin λ|; for α = 1
    # the filter is {sin λ ≥ 0} = ⋃ [2kπ, (2k+1)π], not a finite union
    def step(s, f):
        (x,) = s
        lam = f.hvp(x, np.ones_like(x))
        return (x - np.sin(lam) * x,)

    opt = Optimizer(name="sine", hyperparameters={}, init=lambda X: (X,), step=step)
    with pytest.warns(DerivationWarning, match="not certified") as rec:
        region = dv.derive_region(opt)
    assert "scan" in str(rec[0].message)
    assert not derive(opt).certified
    for lo, hi in ((0.0, math.pi), (2 * math.pi, 3 * math.pi)):
        assert region.contains([lo + 0.1, 0.5 * (lo + hi), hi - 0.1]).all()
    assert not region.contains([-1.0, 1.5 * math.pi]).any()


def test_sam_still_not_differentiable():
    with pytest.raises(dv.NotDifferentiableError, match="not a step-size effect"):
        dv.derive_region(dv.optimizers.sam(lr=0.1, rho=0.5))
