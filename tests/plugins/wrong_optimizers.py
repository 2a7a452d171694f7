"""Deliberately wrong optimizer plug-ins: the claims must catch every one of them.

Importable as ``wrong_optimizers`` when ``tests/plugins`` is on sys.path (the test suite
puts it there), so ``dynverify check wrong_optimizers:too_wide`` works.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from dynverify import Optimizer, Region
from dynverify.registry import register_optimizer

LR = st.fixed_dictionaries({"lr": st.floats(0.05, 1.0)})


def _gd_step(lr: float, sign: float = 1.0):  # type: ignore[no-untyped-def]
    def step(state, f):  # type: ignore[no-untyped-def]
        (x,) = state
        return (x - sign * lr * f.grad(x),)

    return step


@register_optimizer(name="too_wide", hyperparameters=LR)
def too_wide(lr: float) -> Optimizer:
    """Gradient descent declaring [0, 3/α] instead of [0, 2/α]."""
    return Optimizer(name="too_wide", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=_gd_step(lr), region=Region([(0.0, 3.0 / lr)]))


@register_optimizer(name="too_narrow", hyperparameters=LR)
def too_narrow(lr: float) -> Optimizer:
    """Gradient descent declaring [0, 1/α] instead of [0, 2/α]."""
    return Optimizer(name="too_narrow", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=_gd_step(lr), region=Region([(0.0, 1.0 / lr)]))


@register_optimizer(name="sign_error", hyperparameters=LR)
def sign_error(lr: float) -> Optimizer:
    """x⁺ = x + α∇f(x) (a sign error) declaring gradient descent's filter [0, 2/α]."""
    return Optimizer(name="sign_error", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=_gd_step(lr, sign=-1.0), region=Region([(0.0, 2.0 / lr)]))


@register_optimizer(name="moving_init", hyperparameters=LR)
def moving_init(lr: float) -> Optimizer:
    """Heavy ball whose init starts with a nonzero velocity: init(x̄) is not a fixed point."""
    def step(state, f):  # type: ignore[no-untyped-def]
        x, x_prev = state
        return (x - lr * f.grad(x) + 0.5 * (x - x_prev), x)

    return Optimizer(name="moving_init", hyperparameters={"lr": lr},
                     init=lambda X: (X, X - 0.1), step=step,
                     region=Region([(0.0, 3.0 / lr)]))


@register_optimizer(name="returns_nan", hyperparameters=LR)
def returns_nan(lr: float) -> Optimizer:
    """Returns NaN from its step."""
    return Optimizer(name="returns_nan", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=lambda s, f: (np.full_like(s[0], np.nan),),
                     region=Region([(0.0, 2.0 / lr)]))


@register_optimizer(name="raises", hyperparameters=LR)
def raises(lr: float) -> Optimizer:
    """Raises inside its step."""
    def step(state, f):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    return Optimizer(name="raises", hyperparameters={"lr": lr}, init=lambda X: (X,), step=step,
                     region=Region([(0.0, 2.0 / lr)]))


@register_optimizer(name="undeclared_gd", hyperparameters=LR)
def undeclared_gd(lr: float) -> Optimizer:
    """Correct gradient descent without a declared filter: verified against derive_region."""
    return Optimizer(name="undeclared_gd", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=_gd_step(lr))


# -- issue 10: wrong optimizers that used to hide behind an exemption, inconclusive cases
# -- or a non-critical fixed point

@register_optimizer(name="false_exemption", hyperparameters=LR)
def false_exemption(lr: float) -> Optimizer:
    """Gradient descent declaring [0, 3/α] and a false ``outside_hypotheses`` exemption
    (its map x − α∇f(x) is C¹ everywhere)."""
    return Optimizer(name="false_exemption", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=_gd_step(lr), region=Region([(0.0, 3.0 / lr)]),
                     outside_hypotheses="claimed (falsely) not to be C¹")


@register_optimizer(name="sign_term", hyperparameters=LR)
def sign_term(lr: float) -> Optimizer:
    """x⁺ = x − α∇f(x) − 10⁻³·α·sign(∇f(x)) declaring [0, 3/α] (and no exemption)."""
    def step(state, f):  # type: ignore[no-untyped-def]
        (x,) = state
        g = f.grad(x)
        return (x - lr * g - 1e-3 * lr * np.sign(g),)

    return Optimizer(name="sign_term", hyperparameters={"lr": lr}, init=lambda X: (X,),
                     step=step, region=Region([(0.0, 3.0 / lr)]))


@register_optimizer(name="mistyped_clipping", hyperparameters=LR)
def mistyped_clipping(lr: float) -> Optimizer:
    """Soft clipping g/(1 + |g|²/4) mistyped as g·(1 − |g|²/4): x⁺ = x − α g (1 − |g|²/4).

    Declares gradient descent's filter [0, 2/α] (right: at a critical point the map
    linearizes to gradient descent) and that its fixed points are the critical points of
    f (wrong: every x with |∇f(x)| = 2 is fixed).
    """
    def step(state, f):  # type: ignore[no-untyped-def]
        (x,) = state
        g = f.grad(x)
        n2 = np.sum(g * g, axis=1, keepdims=True)
        return (x - lr * g * (1.0 - n2 / 4.0),)

    return Optimizer(name="mistyped_clipping", hyperparameters={"lr": lr},
                     init=lambda X: (X,), step=step, region=Region([(0.0, 2.0 / lr)]),
                     fixed_points_critical=True)
