"""derive_region at extreme hyperparameters: filters whose features sit at tiny or huge λ.

Closed forms, worked out by hand at the critical point (g = m = v = 0):

- gradient descent: Jac G = 1 − αλ, filter 0 ≤ λ ≤ 2/α.
- RMSprop (ε inside the root): Jac G = diag(1 − αλ/√ε, β₂), filter 0 ≤ λ ≤ 2√ε/α.
- Adam (ε inside the root): with a = α/√ε, κ = (1 − β₁)λ the (x, m) block is
  [[1 − aκ, −aβ₁], [κ, β₁]] (det β₁, trace 1 + β₁ − aκ), and Jury's test gives
  0 ≤ aκ ≤ 2(1 + β₁), i.e. 0 ≤ λ ≤ 2(1 + β₁)√ε/((1 − β₁)α).

Adam's Jacobian is badly scaled there (entries aβ₁ and κ far apart around an O(1)
diagonal), which once put a wrong, too-small stability bound at lr = 108 and returned
[−8e-23, ∞) for [0, 3.519e-05]. Only hyperparameters whose filter lies in the normal
float range (and whose λ-scale does not overflow products of Jacobian entries) are used.
"""

import math
import warnings

import pytest

import dynverify as dv
from dynverify.optimizers import adam, gradient_descent, rmsprop


def gd_top(lr):
    return 2.0 / lr


def rmsprop_top(lr, eps):
    return 2.0 * math.sqrt(eps) / lr


def adam_top(lr, eps, beta1=0.9):
    return 2.0 * (1.0 + beta1) * math.sqrt(eps) / ((1.0 - beta1) * lr)


def assert_filter(opt, top):
    with warnings.catch_warnings():
        warnings.simplefilter("error", dv.DerivationWarning)  # must be certified
        region = dv.derive_region(opt)
    ivs = region.intervals
    assert len(ivs) == 1, f"{opt!r}: {region} for [0, {top:.6g}]"
    lo, hi = ivs[0]
    assert abs(lo) <= 1e-9 * top, f"{opt!r}: {region} for [0, {top:.6g}]"
    assert hi == pytest.approx(top, rel=1e-9, abs=0.0), f"{opt!r}: {region} for [0, {top:.6g}]"


def test_adam_reported_cases():
    for lr in (1e-3, 0.1, 1.0, 108.0, 1e6):
        assert_filter(adam(lr=lr), adam_top(lr, 1e-8))


def in_range(top):
    return 1e-290 <= top <= 1e140


LRS = [10.0 ** k for k in range(-140, 301, 20)] + [108.0, 3.7e5, 2.5e-7]


@pytest.mark.parametrize("eps", [1e-8, 1.0, 1e30])
@pytest.mark.parametrize("factory, top", [(adam, adam_top), (rmsprop, rmsprop_top)],
                         ids=["adam", "rmsprop"])
def test_adaptive_full_lr_range(factory, top, eps):
    cases = [lr for lr in LRS if in_range(top(lr, eps))]
    assert len(cases) >= 12
    for lr in cases:
        assert_filter(factory(lr=lr, eps=eps), top(lr, eps))


def test_tiny_eps_at_ordinary_and_huge_lr():
    # RMSprop's map is nonlinear at |g| ~ √(ε/(1 − β₂)): at ε = 1e-16 a check of
    # differentiability at λ = O(1) (gradient λh = 1e-3) once called it a kink
    # (below lr ≈ 100 at ε = 1e-30 the derivation is not certified, and says so)
    for eps, lrs in ((1e-16, (1e-3, 1.0, 108.0, 1e10, 1e100, 1e250)),
                     (1e-30, (108.0, 1e10, 1e100, 1e250))):
        for lr in lrs:
            for opt, top in ((adam(lr=lr, eps=eps), adam_top(lr, eps)),
                             (rmsprop(lr=lr, eps=eps), rmsprop_top(lr, eps))):
                if in_range(top):
                    assert_filter(opt, top)


def test_gradient_descent_full_lr_range():
    for k in range(-300, 301, 25):
        lr = 10.0 ** k
        assert_filter(gradient_descent(lr=lr), gd_top(lr))
    for lr in (108.0, 1e6, 3e250):  # filter [0, 2/α] tiny
        assert_filter(gradient_descent(lr=lr), gd_top(lr))


@pytest.mark.parametrize("eps", [1e-30, 3.5e-60, 1e-200, 5e-324])
@pytest.mark.parametrize("lr", [1e-60, 1e-3, 1.0, 108.0, 1e100])
def test_eps_far_below_every_finite_difference_step(lr, eps):
    # at λ ~ √ε/α every step h ~ 1e-3/λ puts the gradient λh far above √ε: there the
    # preconditioner is saturated, Jac G reads I + O(α/h), and derive certified [0, 5.9e29]
    # for Adam's [0, 2.03e31] at α = ε = 3.5e-60. The scaling relation (f → c·f with
    # ε → c²ε) moves ε to about 1, where the differences resolve the map.
    for opt, top in ((adam(lr=lr, eps=eps), adam_top(lr, eps)),
                     (rmsprop(lr=lr, eps=eps), rmsprop_top(lr, eps))):
        if in_range(top):
            assert_filter(opt, top)


@pytest.mark.parametrize("eps", [5e-324, 1.0, 6.6726924258661144e16])
def test_buffer_steps_follow_the_buffer_at_huge_lambda(eps):
    # α = 5.9e-275 puts Adam's filter at λ ~ 1e274 (ε = 1) to 1e283 (ε = 6.7e16): a step
    # h ~ 1e-3/λ in m moves x⁺ by (α/√ε)·h, which underflows, and ∂x⁺/∂m read 0 (the
    # derived filter was 28 % too narrow, found by benchmarks/extreme_sweep.py --full)
    lr, beta1 = 5.919006253263458e-275, 0.3908625088081055
    assert_filter(adam(lr=lr, beta1=beta1, beta2=0.0, eps=eps),
                  adam_top(lr, eps, beta1=beta1))


def test_eigenvalues_of_a_jacobian_with_subnormal_entries():
    # Adam at α = 1e308, ε = β₁ = 1e-5 on the end of its filter: the (x, m) block
    # [[1 − aκ, −aβ₁], [κ, β₁]] with κ = 6.35e-311 (subnormal) and aβ₁ = 3.15e305. By
    # hand: trace −1.00001, det β₁ = 1e-5, so μ² + 1.00001μ + 1e-5 = (μ + 1)(μ + 1e-5).
    # LAPACK drops κ as below its safe minimum and returned −1.00002 and 1e-5.
    import numpy as np

    from dynverify.linearize import eigenvalues

    J = np.array([[-1.0000200003760693, -3.1502122012192867e305],
                  [6.3488421497508399e-311, 1e-5]])
    tr, det = J[0, 0] + J[1, 1], J[0, 0] * J[1, 1] - (J[0, 1] * 1e-150) * (J[1, 0] * 1e150)
    disc = math.sqrt(tr * tr - 4 * det)
    want = sorted([(tr - disc) / 2, (tr + disc) / 2])
    got = sorted(eigenvalues(J).real.tolist())
    assert got == pytest.approx(want, rel=1e-9, abs=0.0), (got, want)


def test_adam_filter_in_the_subnormal_range():
    # 2(1 + β₁)√ε/((1 − β₁)α) = 6.349e-311 at α = 9.96e307: the end was placed 4e-6 low
    # (eigenvalues as above, and boundary points only to 1e-15 of the 1e-300 ladder)
    lr, b1, eps = 9.961845668705604e307, 1e-5, 1e-5
    top = (2.0 * (1.0 + b1) / (1.0 - b1) * math.sqrt(eps)) / lr
    region = dv.derive_region(adam(lr=lr, beta1=b1, beta2=1e-5, eps=eps))
    (lo, hi), = region.intervals
    assert abs(lo) <= 1e-9 * top and hi == pytest.approx(top, rel=1e-9, abs=0.0), region
