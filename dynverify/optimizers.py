"""Built-in optimizers as update maps (Bolte, Le, Pauwels 2025, and DESIGN.md §2).

Each factory returns an :class:`~dynverify.optimizer.Optimizer` whose ``region`` is the
exact eigenvalue filter for its hyperparameters: the set of Hessian eigenvalues λ at
which the per-eigenvalue linearization has spectral radius ≤ 1. α = lr > 0,
β = momentum ∈ [0, 1), ρ = rho ≥ 0.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from dynverify.optimizer import NONNEGATIVE, Optimizer, State, check_real
from dynverify.regions import Region, interval_filter


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
                     region=interval_filter(0.0, 2.0 * (1.0 + b) / (1.0 + 2.0 * b) / a),
                     fixed_points_critical=True)


def _unit_root(k: float, power: int) -> float:
    """The root u ≥ 1 of u^power·(u − 1) = k for k ≥ 0 (k = ∞ gives ∞).

    Newton on g(u) = u − 1 − k/u^power (increasing and concave: after the first step
    the iterates approach the root monotonically from the left) started at
    min(1 + k, 1 + k^(1/(power+1))); no cancellation and no overflow for any float k.
    """
    if k == 0.0:
        return 1.0
    if math.isinf(k):
        return math.inf
    if power == 1:  # u(u − 1) = k: u = (1 + √(1 + 4k))/2, written without cancellation
        return 0.5 + math.sqrt(0.25 + k) if k < 1e300 else math.sqrt(k) + 0.5
    u = min(1.0 + k, 1.0 + float(np.cbrt(k)) if power == 2 else 1.0 + k ** (1.0 / (power + 1)))
    for _ in range(200):
        q = k
        for _ in range(power):  # k/u^power without overflow
            q = q / u
        g = u - 1.0 - q
        step = g / (1.0 + power * (q / u))
        u -= step
        if not abs(step) > 4 * np.finfo(float).eps * u:
            break
    return u


def _safe_product(*factors: float) -> float:
    """Product of nonnegative floats, ∞ on overflow (never an exception)."""
    out = 1.0
    for f in factors:
        out *= f
    return out


def _positive_end(c: float, rho: float, power: int) -> float:
    """The λ* > 0 with λ(1 + ρλ)^power = c (power 1, 2) or λ(1 + ρλ²) = c (power 0).

    With u the root of u^p(u − 1) = k: λ* = c/u^power where k = ρc for USAM-type and
    λ* = c/u where k = ρc² for Hessian USAM (then u = 1 + ρλ*²); if k overflows, λ* is
    the leading-order value (the neglected term is below rounding there).
    """
    if math.isinf(c):
        return math.inf
    if rho == 0.0:
        return c
    if power == 0:  # λ + ρλ³ = c
        k = _safe_product(rho, c, c)
        if math.isinf(k):
            return float(np.cbrt(c) / np.cbrt(rho))
        return c / _unit_root(k, 2)
    k = _safe_product(rho, c)
    if math.isinf(k):
        return (math.sqrt(c) / math.sqrt(rho) if power == 1
                else float(np.cbrt(c) / np.cbrt(rho) ** 2))
    return c / _unit_root(k, power) ** power


#: λ = σμ rescales λ(1 + ρλ)^p = c to μ(1 + ρσμ)^p = c/σ (λ + ρλ³ = c to μ + ρσ²μ³ = c/σ)
#: exactly (a power of 2); c/σ = 2/(ασ) is a float for every float α > 0, and √σ, ∛σ
#: are powers of 2 too
_SIGMA = 2.0 ** 66


def _end_over(num: float, a: float, rho: float, power: int) -> float:
    """``_positive_end(num/α, ρ, power)``, also when c = num/α overflows (subnormal α).

    c overflowing does not make λ* overflow once ρ > 0: λ* ≈ √(c/ρ) (power 1), so at
    α = 5e-324, ρ = 1 the filter ends at 6.36e161, not at ∞. The equation is solved for
    μ = λ/σ instead, and λ* = σμ* (∞ only if λ* itself is beyond the floats).
    """
    c = num / a
    if math.isfinite(c) or rho == 0.0:  # ρ = 0, c = ∞: every float λ ≥ 0 is below c
        return _positive_end(c, rho, power)
    cs = num / (a * _SIGMA)
    rs = _safe_product(rho, _SIGMA, _SIGMA) if power == 0 else rho * _SIGMA
    if math.isinf(rs):  # ρc overflows by hundreds of binades: leading order is exact
        if power == 1:
            return 2.0 ** 33 * (math.sqrt(cs) / math.sqrt(rho))
        if power == 2:
            return 2.0 ** 22 * float(np.cbrt(cs) / np.cbrt(rho) ** 2)
        return 2.0 ** 22 * float(np.cbrt(cs) / np.cbrt(rho))
    return _SIGMA * _positive_end(cs, rs, power)


def usam_filter(lr: float, rho: float, power: int = 1, upper: float | None = None) -> Region:
    """Exact {λ : 0 ≤ λ(1 + ρλ)^power ≤ c}, c = 2/α unless ``upper`` is given.

    For ρ > 0 the zeros of λ(1 + ρλ)^power are 0 and −1/ρ (multiplicity ``power``):
    power 1 gives [0, λ*] and the band [−1/ρ − λ*, −1/ρ] (the two roots of
    ρλ² + λ = c sum to −1/ρ); power 2 gives [0, λ*] and the isolated point −1/ρ. λ* is
    computed in closed form without cancellation or overflow (see ``_positive_end``),
    for every float ρ ≥ 0 and c > 0; when 2/α overflows (subnormal α) λ* is still
    finite for ρ > 0 (see ``_end_over``), and only for ρ = 0 is every λ ≥ 0 in.
    Features at −1/ρ are left out when 1/ρ overflows: no float eigenvalue reaches them.
    """
    a, r = _lr(lr), _rho(rho)
    num, den = (2.0, a) if upper is None else (float(upper), 1.0)
    if not num > 0:
        raise ValueError(f"upper must be > 0, got {upper!r}")
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power!r}")
    top = _end_over(num, den, r, power)
    intervals = [(0.0, top)]
    far = 1.0 / r if r > 0 else math.inf
    if math.isfinite(far):
        if power == 1:
            lo = -far - top
            intervals.append((lo if math.isfinite(lo) else -sys.float_info.max, -far))
        else:
            intervals.append((-far, -far))
    return Region(intervals)


def hessian_usam_filter(lr: float, rho: float) -> Region:
    """Exact {λ : 0 ≤ λ(1 + ρλ²) ≤ 2/α} = [0, λ*] (λ + ρλ³ is increasing on ℝ)."""
    a, r = _lr(lr), _rho(rho)
    return Region([(0.0, _end_over(2.0, a, r, 0))])


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

    region = hessian_usam_filter(a, r)
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


def _beta(name: str, value: float) -> float:
    return check_real(name, value, low=0.0, high=1.0, high_open=True)


def _eps(eps: float) -> float:
    return check_real("eps", eps, low=0.0, low_open=True)


def rmsprop(lr: float, beta2: float = 0.99, eps: float = 1e-8) -> Optimizer:
    """RMSprop in C¹ form: v⁺ = β₂v + (1 − β₂)g², x⁺ = x − α g/√(v⁺ + ε); state (x, v).

    ε sits inside the square root (torch's RMSprop adds it outside, which is not C¹ at
    v = 0), and there is no bias correction, so the map is autonomous and C¹ on v ≥ 0.

    Linearization at a critical point x̄ (g = 0, v = 0): ∂v⁺/∂x = 2(1 − β₂)g·H = 0 and
    ∂x⁺/∂v ∝ g = 0, so Jac G = diag(I − (α/√ε)H, β₂I): gradient descent with step
    α/√ε, plus the eigenvalue β₂ < 1 of the v-block. Filter: |1 − αλ/√ε| ≤ 1, i.e.
    0 ≤ λ ≤ 2√ε/α. (The preconditioner at v = 0 is 1/√ε, not 1/ε.)
    """
    a, b2, e = _lr(lr), _beta("beta2", beta2), _eps(eps)

    def step(state: State, f) -> State:
        x, v = state
        g = f.grad(x)
        v_new = b2 * v + (1.0 - b2) * g * g
        return (x - a * g / np.sqrt(v_new + e), v_new)

    return Optimizer(name="rmsprop", hyperparameters={"lr": a, "beta2": b2, "eps": e},
                     init=lambda X: (X, np.zeros_like(X)), step=step,
                     # Python floats: a top beyond the floats is ∞, not a RuntimeWarning
                     region=interval_filter(0.0, 2.0 * math.sqrt(e) / a),
                     state_domains=(None, NONNEGATIVE))


def adam(lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam in C¹ form, without bias correction; state (x, m, v):

        m⁺ = β₁m + (1 − β₁)g,  v⁺ = β₂v + (1 − β₂)g²,  x⁺ = x − α m⁺/√(v⁺ + ε).

    Linearization at a critical point (g = 0, m = 0, v = 0): the v-block decouples with
    eigenvalue β₂ < 1 (∂v⁺/∂x ∝ g = 0, ∂x⁺/∂v ∝ m⁺ = 0), and with a = α/√ε and
    κ = (1 − β₁)λ each eigenvalue λ of H gives the heavy-ball-like block

        [x⁺]   [1 − aκ   −aβ₁] [x]
        [m⁺] = [  κ        β₁ ] [m],   det = β₁, trace = 1 + β₁ − aκ.

    Both roots of z² − (1 + β₁ − aκ)z + β₁ lie in the closed unit disk iff |β₁| ≤ 1 and
    |1 + β₁ − aκ| ≤ 1 + β₁ (Jury), i.e. 0 ≤ aκ ≤ 2(1 + β₁). Filter:

        0 ≤ λ ≤ 2(1 + β₁)√ε / ((1 − β₁)α).

    β₁ = 0 gives RMSprop's 2√ε/α.
    """
    a, b1, b2, e = _lr(lr), _beta("beta1", beta1), _beta("beta2", beta2), _eps(eps)

    def step(state: State, f) -> State:
        x, m, v = state
        g = f.grad(x)
        m_new = b1 * m + (1.0 - b1) * g
        v_new = b2 * v + (1.0 - b2) * g * g
        return (x - a * m_new / np.sqrt(v_new + e), m_new, v_new)

    return Optimizer(name="adam",
                     hyperparameters={"lr": a, "beta1": b1, "beta2": b2, "eps": e},
                     init=lambda X: (X, np.zeros_like(X), np.zeros_like(X)), step=step,
                     # Python floats, divided in turn: (1 − β₁)·α may underflow to 0,
                     # and a top beyond the floats is ∞, not a RuntimeWarning
                     region=interval_filter(
                         0.0, 2.0 * (1.0 + b1) * math.sqrt(e) / (1.0 - b1) / a),
                     state_domains=(None, None, NONNEGATIVE))


#: every built-in factory, by name
BUILTINS = {
    fn.__name__: fn
    for fn in (gradient_descent, heavy_ball, nesterov, usam, two_step_usam, hessian_usam,
               penalty_sam, sam, rmsprop, adam)
}

__all__ = [*BUILTINS, "BUILTINS", "hessian_usam_filter", "usam_filter"]

