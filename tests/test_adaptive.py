"""Built-in rmsprop and adam (C¹ forms): filters by hand, derived, and the same maps in optax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynverify import derive_region
from dynverify.claims import CLAIMS, Case, Outcome
from dynverify.functions import Quadratic
from dynverify.optimizers import adam, rmsprop

# Hand derivation (see the docstrings): at v = 0 the preconditioner is 1/√ε, so with
# a = α/√ε RMSprop linearizes to gradient descent with step a (0 ≤ λ ≤ 2/a) and Adam,
# with κ = (1 − β₁)λ, to the block [[1 − aκ, −aβ₁], [κ, β₁]] (det β₁, trace 1 + β₁ − aκ;
# Jury: 0 ≤ aκ ≤ 2(1 + β₁)); the v-block adds the eigenvalue β₂ < 1.

ADAM = [(0.1, 0.9, 0.99, 1e-4), (0.5, 0.0, 0.5, 1.0), (0.01, 0.5, 0.999, 1e-8),
        (2.0, 0.95, 0.0, 0.3)]
RMSPROP = [(0.1, 0.9, 1e-4), (1.0, 0.0, 1.0), (0.003, 0.99, 1e-8)]


def adam_hand(lr, b1, b2, eps):
    return 2 * (1 + b1) * math.sqrt(eps) / ((1 - b1) * lr)


@pytest.mark.parametrize("lr, b1, b2, eps", ADAM)
def test_adam_filter_is_the_hand_derived_one_and_the_derived_one(lr, b1, b2, eps):
    opt = adam(lr, b1, b2, eps)
    hi = adam_hand(lr, b1, b2, eps)
    ((lo, up),) = opt.region.intervals
    assert lo == 0.0 and up == pytest.approx(hi, rel=1e-12)
    (a, b), = derive_region(opt).intervals
    assert a == pytest.approx(0.0, abs=1e-12 * hi) and b == pytest.approx(hi, rel=1e-9)


@pytest.mark.parametrize("lr, b2, eps", RMSPROP)
def test_rmsprop_filter_is_the_hand_derived_one_and_the_derived_one(lr, b2, eps):
    opt = rmsprop(lr, b2, eps)
    hi = 2 * math.sqrt(eps) / lr
    ((lo, up),) = opt.region.intervals
    assert lo == 0.0 and up == pytest.approx(hi, rel=1e-12)
    (a, b), = derive_region(opt).intervals
    assert a == pytest.approx(0.0, abs=1e-12 * hi) and b == pytest.approx(hi, rel=1e-9)


def _trajectory(opt, f, X0, steps):
    state = opt.init(X0)
    for _ in range(steps):
        state = opt.step(state, f)
    return opt.position(state)


def test_builtins_are_optax_adam_with_eps_root_and_optax_rmsprop():
    """optax adam with eps = 0, eps_root = ε and its counter saturated (no bias correction)
    is the built-in adam; optax rmsprop (ε inside the root, no bias correction by
    default) is the built-in rmsprop: same trajectories, same derived filters."""
    optax = pytest.importorskip("optax")
    from dynverify.adapters import optax_optimizer

    f = Quadratic(np.array([[2.0, 0.3], [0.3, -0.5]]))
    X0 = np.random.default_rng(0).standard_normal((6, 2))
    lr, b1, b2, eps = 0.05, 0.8, 0.9, 1e-2
    ours = adam(lr, b1, b2, eps)
    theirs = optax_optimizer(optax.adam, learning_rate=lr, b1=b1, b2=b2, eps=0.0,
                             eps_root=eps)
    np.testing.assert_allclose(_trajectory(theirs, f, X0, 50), _trajectory(ours, f, X0, 50),
                               rtol=1e-12)
    assert derive_region(theirs).isclose(ours.region)
    ours = rmsprop(lr, b2, eps)
    theirs = optax_optimizer(optax.rmsprop, learning_rate=lr, decay=b2, eps=eps)
    np.testing.assert_allclose(_trajectory(theirs, f, X0, 50), _trajectory(ours, f, X0, 50),
                               rtol=1e-12)
    assert derive_region(theirs).isclose(ours.region)


def test_torch_adam_and_rmsprop_are_not_the_c1_forms():
    torch = pytest.importorskip("torch")
    from dynverify.adapters import torch_optimizer

    for cls in (torch.optim.Adam, torch.optim.RMSprop):
        assert "not C¹" in torch_optimizer(cls, lr=0.05).outside_hypotheses
    assert adam(0.05).outside_hypotheses is None and rmsprop(0.05).outside_hypotheses is None


def test_stable_adam_converges_at_the_rate_of_the_excited_modes():
    """The v-mode (eigenvalue β₂) starts at v = 0 and is reached from x only at second
    order: runs contract at the (x, m) rate, faster than ρ(J) = β₂. That is no
    counterexample."""
    opt = adam(lr=0.01, beta1=0.0, beta2=0.9, eps=1e-4)   # a = α/√ε = 1: x-mode |1 − λ|
    f = Quadratic.diagonal([0.5, 0.6])                      # x-rates 0.5 and 0.4 < β₂
    X0 = 1e-4 * np.random.default_rng(1).standard_normal((8, 2))  # v ~ 1e-10: below tol
    case = Case(opt, f, X0, x_star=np.zeros(2), spectrum=(0.5, 0.6), region=opt.region)
    v = CLAIMS["stable_converges"](case)
    assert v.outcome is Outcome.PASS, v
    assert v.evidence["spectral_radius"] == pytest.approx(0.9, rel=1e-6)
