"""Built-in optimizers as update maps (Bolte, Le, Pauwels 2025, and DESIGN.md §2).

Each factory returns an :class:`~dynverify.optimizer.Optimizer` whose ``region`` is the
exact eigenvalue filter for its hyperparameters: the set of Hessian eigenvalues λ at
which the per-eigenvalue linearization has spectral radius ≤ 1. α = lr > 0,
β = momentum ∈ [0, 1), ρ = rho ≥ 0.
"""

from __future__ import annotations

import numpy as np

from dynverify.optimizer import Optimizer, State, check_real
from dynverify.regions import Region, interval_filter, polynomial_filter


def _lr(lr: float) -> float:
    return check_real("lr", lr, low=0.0, low_open=True)


def _momentum(momentum: float) -> float:
    return check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)


def _rho(rho: float) -> float:
    return check_real("rho", rho, low=0.0)


def _single(X: np.ndarray) -> State:
    return (X,)


def _with_previous(X: np.ndarray) -> State:
    return (X, X.copy())


def gradient_descent(lr: float) -> Optimizer:
    """Gradient descent x⁺ = x − α∇f(x).

    Filter: |1 − αλ| ≤ 1, i.e. 0 ≤ λ ≤ 2/α.
    """
    a = _lr(lr)

    def step(state: State, f) -> State:
        (x,) = state
        return (x - a * f.grad(x),)

    return Optimizer(name="gradient_descent", hyperparameters={"lr": a}, init=_single,
                     step=step, region=interval_filter(0.0, 2.0 / a), fixed_points_critical=True)


def heavy_ball(lr: float, momentum: float) -> Optimizer:
    """Polyak heavy ball x⁺ = x − α∇f(x) + β(x − x₋); state (x, x₋).

    Per eigenvalue: z² − (1 + β − αλ)z + β = 0; both roots in the closed unit disk
    iff 0 ≤ λ ≤ 2(1 + β)/α (Jury: |β| ≤ 1 and |1 + β − αλ| ≤ 1 + β).
    """
    a, b = _lr(lr), _momentum(momentum)

    def step(state: State, f) -> State:
        x, x_prev = state
        return (x - a * f.grad(x) + b * (x - x_prev), x)

    return Optimizer(name="heavy_ball", hyperparameters={"lr": a, "momentum": b},
                     init=_with_previous, step=step,
                     region=interval_filter(0.0, 2.0 * (1.0 + b) / a),
                     fixed_points_critical=True)


def nesterov(lr: float, momentum: float) -> Optimizer:
    """Nesterov y = x + β(x − x₋), x⁺ = y − α∇f(y); state (x, x₋).

    Per eigenvalue, with c = 1 − αλ: z² − c(1 + β)z + cβ = 0; Jury gives
    0 ≤ λ ≤ 2(1 + β)/((1 + 2β)α).
    """
    a, b = _lr(lr), _momentum(momentum)

    def step(state: State, f) -> State:
        x, x_prev = state
        y = x + b * (x - x_prev)
        return (y - a * f.grad(y), x)

    return Optimizer(name="nesterov", hyperparameters={"lr": a, "momentum": b},
                     init=_with_previous, step=step,
                     region=interval_filter(0.0, 2.0 * (1.0 + b) / ((1.0 + 2.0 * b) * a)),
                     fixed_points_critical=True)


def usam_filter(lr: float, rho: float, power: int = 1, upper: float | None = None) -> Region:
    """Exact {λ : 0 ≤ λ(1 + ρλ)^power ≤ c}, c = 2/α unless ``upper`` is given.

    For ρ > 0 the zeros of λ(1 + ρλ)^power are 0 and −1/ρ (multiplicity ``power``):
    power 1 gives two intervals, power 2 an interval and the isolated point −1/ρ.
    """
    a, r = _lr(lr), _rho(rho)
    c = 2.0 / a if upper is None else upper
    if r == 0.0:
        return interval_filter(0.0, c)
    p = np.polynomial.Polynomial([0.0, 1.0]) * np.polynomial.Polynomial([1.0, r]) ** power
    return polynomial_filter(p.coef, c, zeros=[0.0, -1.0 / r])


def usam(lr: float, rho: float) -> Optimizer:
    """Unnormalized SAM x⁺ = x − α∇f(x + ρ∇f(x)).

    Filter: 0 ≤ λ(1 + ρλ) ≤ 2/α, i.e. [(−1 − s)/(2ρ), −1/ρ] ∪ [0, (−1 + s)/(2ρ)] with
    s = √(1 + 8ρ/α): a band of the negative axis where USAM can converge to saddles.
    """
    a, r = _lr(lr), _rho(rho)

    def step(state: State, f) -> State:
        (x,) = state
        return (x - a * f.grad(x + r * f.grad(x)),)

    return Optimizer(name="usam", hyperparameters={"lr": a, "rho": r}, init=_single,
                     step=step, region=usam_filter(a, r, 1),
                     # x is fixed when x + ρ∇f(x) is critical: other fixed points unless ρ = 0
                     fixed_points_critical=r == 0.0)


def two_step_usam(lr: float, rho: float) -> Optimizer:
    """Two-step USAM y₁ = x + ρ∇f(x), y₂ = y₁ + ρ∇f(y₁), x⁺ = x − α∇f(y₂).

    Filter: 0 ≤ λ(1 + ρλ)² ≤ 2/α, i.e. [0, λ*] ∪ {−1/ρ}: the double zero at −1/ρ is
    an isolated point of the filter.
    """
    a, r = _lr(lr), _rho(rho)

    def step(state: State, f) -> State:
        (x,) = state
        y1 = x + r * f.grad(x)
        y2 = y1 + r * f.grad(y1)
        return (x - a * f.grad(y2),)

    return Optimizer(name="two_step_usam", hyperparameters={"lr": a, "rho": r}, init=_single,
                     step=step, region=usam_filter(a, r, 2), fixed_points_critical=r == 0.0)


def hessian_usam(lr: float, rho: float) -> Optimizer:
    """Hessian USAM x⁺ = x − α∇f(x + ρ∇²f(x)∇f(x)).

    Filter: 0 ≤ λ(1 + ρλ²) ≤ 2/α, i.e. [0, λ*] (λ + ρλ³ is increasing). The map
    evaluates ∇²f, so it is C¹ only for f ∈ C³.
    """
    a, r = _lr(lr), _rho(rho)

    def step(state: State, f) -> State:
        (x,) = state
        g = f.grad(x)
        return (x - a * f.grad(x + r * f.hvp(x, g)),)

    region = (interval_filter(0.0, 2.0 / a) if r == 0.0
              else polynomial_filter([0.0, 1.0, 0.0, r], 2.0 / a, zeros=[0.0]))
    return Optimizer(name="hessian_usam", hyperparameters={"lr": a, "rho": r}, init=_single,
                     step=step, region=region, hessian_in_map=True,
                     fixed_points_critical=r == 0.0)


def penalty_sam(lr: float, rho: float) -> Optimizer:
    """Penalty SAM x⁺ = x − α(∇f(x) + ρ∇²f(x)∇f(x)) (gradient descent on f + ρ‖∇f‖²/2).

    Filter: 0 ≤ λ(1 + ρλ) ≤ 2/α, the same as USAM. Evaluates ∇²f: C¹ only for f ∈ C³.
    """
    a, r = _lr(lr), _rho(rho)

    def step(state: State, f) -> State:
        (x,) = state
        g = f.grad(x)
        return (x - a * (g + r * f.hvp(x, g)),)

    return Optimizer(name="penalty_sam", hyperparameters={"lr": a, "rho": r}, init=_single,
                     step=step, region=usam_filter(a, r, 1), hessian_in_map=True,
                     # fixed when (I + ρ∇²f)∇f = 0: non-critical where ∇²f has eigenvalue −1/ρ
                     fixed_points_critical=r == 0.0)


SAM_NOT_C1 = (
    "normalized SAM perturbs along ∇f/‖∇f‖, which has no limit at a critical point: the "
    "map is not C¹ there, so the theorem's hypotheses fail and no eigenvalue filter exists"
)


def sam(lr: float, rho: float) -> Optimizer:
    """Normalized SAM x⁺ = x − α∇f(x + ρ∇f(x)/‖∇f(x)‖), norms taken per row.

    No filter for ρ > 0: the perturbation direction is discontinuous at critical points,
    so the map is not C¹ there (``region`` is None and ``outside_hypotheses`` says why).
    At ρ = 0 the map is gradient descent and declares its filter. Where
    ∇f(x) = 0 the perturbation is taken to be 0, so critical points are fixed points.
    """
    a, r = _lr(lr), _rho(rho)

    def step(state: State, f) -> State:
        (x,) = state
        g = f.grad(x)
        norm = np.sqrt(np.einsum("bi,bi->b", g, g))[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            e = np.where(norm > 0, g / norm, 0.0)
        return (x - a * f.grad(x + r * e),)

    if r == 0.0:  # plain gradient descent: C¹, with gradient descent's filter
        return Optimizer(name="sam", hyperparameters={"lr": a, "rho": r}, init=_single,
                         step=step, region=interval_filter(0.0, 2.0 / a),
                         fixed_points_critical=True)
    return Optimizer(name="sam", hyperparameters={"lr": a, "rho": r}, init=_single,
                     step=step, region=None, outside_hypotheses=SAM_NOT_C1)


#: every built-in factory, by name
BUILTINS = {
    fn.__name__: fn
    for fn in (gradient_descent, heavy_ball, nesterov, usam, two_step_usam, hessian_usam,
               penalty_sam, sam)
}

__all__ = [*BUILTINS, "BUILTINS", "usam_filter"]

