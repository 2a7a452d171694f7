"""The filter of any optimizer, derived from its own ``step``.

The filter function is ρ₁(λ) = spectral radius of Jac G at z̄ = init(0) for the
one-dimensional quadratic f(x) = λx²/2, and the derived filter is {λ ∈ ℝ : ρ₁(λ) ≤ 1}.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from math import comb

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from dynverify.functions import RowQuadratics
from dynverify.linearize import _flatten, batched_jacobians, lifted_state
from dynverify.optimizer import Optimizer
from dynverify.regions import Region

#: finite-difference step for the 1-D linearizations (maps on quadratics are usually
#: linear in z, where Richardson-extrapolated central differences are exact)
_H = 1e-3
_MAX_DEGREE = 12
_FALLBACK_RANGE = 1e8


class DerivationWarning(UserWarning):
    """The derived filter could not be certified complete (non-polynomial linearization)."""


def linearizations(opt: Optimizer, lams: np.ndarray) -> np.ndarray:
    """Jac G(z̄) for f(x) = λx²/2, one (m, m) matrix per λ, from one batched ``step``."""
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    state = lifted_state(opt, np.zeros((lams.size, 1)))
    Z, shapes = _flatten(state, lams.size)
    return batched_jacobians(opt, lambda rows: RowQuadratics(lams[rows]), Z, shapes, h=_H)


def filter_function(opt: Optimizer) -> Callable[[np.ndarray], np.ndarray]:
    """λ ↦ ρ₁(λ), vectorized: the spectral radius of the linearized map per eigenvalue.

    Example:
        >>> from dynverify.optimizers import gradient_descent
        >>> rho = filter_function(gradient_descent(lr=0.5))
        >>> np.round(rho(np.array([0.0, 2.0, 5.0])), 9).tolist()   # |1 - λ/2|
        [1.0, 0.0, 1.5]
    """

    def rho(lams: np.ndarray) -> np.ndarray:
        lam = np.asarray(lams, dtype=float)
        J = linearizations(opt, lam.ravel())
        return np.max(np.abs(np.linalg.eigvals(J)), axis=-1).reshape(lam.shape)

    return rho


def _cheb_nodes(n: int, half_width: float) -> np.ndarray:
    return half_width * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _polynomial_degree(opt: Optimizer) -> int | None:
    """Degree D of λ ↦ Jac G (a matrix polynomial for polynomial updates), or None.

    The smallest D whose least-squares fit on Chebyshev nodes of [−1, 1] reproduces the
    samples and extrapolates correctly to |λ| ≈ 3 (a non-polynomial map fails there).
    """
    n = 2 * (_MAX_DEGREE + 1)
    x = _cheb_nodes(n, 1.0)
    far = np.array([-3.0, -2.0, 2.5, 3.5])
    Js = linearizations(opt, np.concatenate([x, far]))
    m = Js.shape[-1]
    Y, Yfar = Js[:n].reshape(n, m * m), Js[n:].reshape(far.size, m * m)
    scale = 1.0 + np.max(np.abs(Js))
    for deg in range(_MAX_DEGREE + 1):
        coef = np.polynomial.chebyshev.chebfit(x, Y, deg)
        fit = np.polynomial.chebyshev.chebval(x, coef).T
        if np.max(np.abs(fit - Y)) > 1e-9 * scale:
            continue
        pred = np.polynomial.chebyshev.chebval(far, coef).T
        ok = np.max(np.abs(pred - Yfar)) <= 1e-7 * (1.0 + np.max(np.abs(Yfar)))
        return deg if ok else None
    return None


def _stability_bound(opt: Optimizer, degree: int) -> float | None:
    """L such that ρ₁(λ) > 1 for |λ| > L, or None when ρ₁ is constant.

    If ρ(J) ≤ 1 then every coefficient cⱼ of det(zI − J) obeys |cⱼ| ≤ C(m, j) (they are
    the elementary symmetric functions of the eigenvalues). Each cⱼ(λ) is a polynomial
    of degree ≤ j·D; beyond the largest root modulus of cⱼ(λ)² − C(m, j)², |cⱼ| > C(m, j),
    so any non-constant cⱼ bounds the filter.
    """
    probe = linearizations(opt, np.zeros(1))
    m = probe.shape[-1]
    best: float | None = None
    for width in (1.0, None):
        half = 1.0 if width else max(best or 1.0, 1.0)
        n = m * max(degree, 1) + 1
        x = _cheb_nodes(2 * n, half)
        eig = np.linalg.eigvals(linearizations(opt, x))
        char = np.array([np.poly(e).real for e in eig])  # (2n, m+1)
        bounds = []
        for j in range(1, m + 1):
            c = np.polynomial.Polynomial.fit(x, char[:, j], j * max(degree, 1)).convert()
            coef = c.coef.copy()
            coef[np.abs(coef) <= 1e-10 * np.max(np.abs(coef))] = 0.0
            c = np.polynomial.Polynomial(coef).trim()
            if c.degree() < 1:
                continue
            roots = (c * c - comb(m, j) ** 2).roots()
            bounds.append(float(np.max(np.abs(roots))))
        if not bounds:
            return None
        best = min(bounds)
        if width is None:
            break
    assert best is not None
    return best * 1.01 + 1e-12


def _crossing_candidates(opt: Optimizer, L: float, degree: int) -> np.ndarray:
    """Real zeros in [−L, L] of B(λ) = det(J⊗J − I), a polynomial of degree ≤ 2Dm².

    ρ₁(λ) = 1 needs an eigenvalue μ with |μ| = 1: μ = ±1 (μ² = 1) or a conjugate pair
    with μμ̄ = 1; both make J⊗J − I singular. So every boundary point and every
    isolated point of the filter is a zero of B, which is found by Chebyshev
    interpolation on [−L, L] and the colleague-matrix eigenvalues.
    """
    m = linearizations(opt, np.zeros(1)).shape[-1]
    deg = 2 * max(degree, 1) * m * m
    n = 2 * deg + 2
    x = _cheb_nodes(n, 1.0)
    Js = linearizations(opt, L * x)
    eye = np.eye(m * m)
    Bv = np.linalg.det(np.einsum("nij,nkl->nikjl", Js, Js).reshape(n, m * m, m * m) - eye)
    coef = np.polynomial.chebyshev.chebfit(x, Bv, deg)
    if not np.any(coef):
        return np.linspace(-L, L, 2001)
    coef = np.polynomial.chebyshev.chebtrim(coef, 1e-14 * np.max(np.abs(coef)))
    roots = np.polynomial.chebyshev.chebroots(coef) if coef.size > 1 else np.array([])
    keep = (np.abs(roots.imag) <= 1e-4) & (np.abs(roots.real) <= 1.0 + 1e-9)
    return np.sort(L * np.clip(roots[keep].real, -1.0, 1.0))


def _fallback_candidates() -> tuple[float, np.ndarray]:
    pos = np.logspace(-8, math.log10(_FALLBACK_RANGE), 2000)
    return _FALLBACK_RANGE, np.concatenate([-pos[::-1], [0.0], pos])


def derive_region(opt: Optimizer, *, xtol: float = 1e-13, rtol: float = 1e-12) -> Region:
    """The filter {λ : ρ₁(λ) ≤ 1} computed from ``opt.step`` alone.

    Search range. For an update that combines gradients, Hessian-vector products and
    state linearly with polynomial weights (all built-ins and their momentum/extrapolation
    variants), λ ↦ Jac G is a matrix polynomial of some degree D, detected by exact
    interpolation. Then a rigorous bound L (see ``_stability_bound``: a coefficient of
    the characteristic polynomial exceeds what ρ ≤ 1 allows) puts the whole filter in
    [−L, L], and every boundary point, including isolated points where ρ₁ only touches 1,
    is a real zero of the polynomial det(J⊗J − I), so no band can be missed wherever it
    lies. Each gap between consecutive zeros is classified by ρ₁ at its midpoint;
    crossings are refined by Brent's method on ρ₁ − 1 and touch points by a root of ρ₁′.
    A map whose linearization is not polynomial in λ falls back to a logarithmic scan of
    ±[1e−8, 1e8] with local-minimum refinement, and a DerivationWarning says so.

    Raises:
        NotDifferentiableError: the map has no linearization at the fixed point (sam).
    """
    rho1 = filter_function(opt)
    degree = _polynomial_degree(opt)
    L: float | None
    if degree is None:
        warnings.warn(f"{opt!r}: linearization is not polynomial in λ; derived filter scanned "
                      f"on ±[1e-8, {_FALLBACK_RANGE:g}] and may miss narrow bands",
                      DerivationWarning, stacklevel=2)
        L, cands = _fallback_candidates()
    else:
        L = _stability_bound(opt, degree)
        if L is None:  # ρ₁ does not depend on λ
            return Region([(-math.inf, math.inf)]) if rho1(np.zeros(1))[0] <= 1 else Region()
        cands = _crossing_candidates(opt, L, degree)

    def f1(lam: float) -> float:
        return float(rho1(np.array([lam]))[0]) - 1.0

    pts = np.unique(np.concatenate([[-L, L], cands]))
    mids = 0.5 * (pts[:-1] + pts[1:])
    inside = rho1(mids) <= 1.0
    out_left, out_right = -L * 1.01 - 1e-12, L * 1.01 + 1e-12
    # anchors: an outside point left of pts[0], the gap midpoints, an outside point right
    anchors = np.concatenate([[out_left], mids, [out_right]])
    flags = np.concatenate([[False], inside, [False]])
    tol = xtol + rtol * L
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for i in range(1, len(anchors)):
        a, b, fa, fb = anchors[i - 1], anchors[i], flags[i - 1], flags[i]
        if fa != fb:  # a crossing between anchors a and b
            root = brentq(f1, a, b, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=200)
            if fb:
                start = root
            else:
                assert start is not None
                intervals.append((start, root))
                start = None
        elif not fa:  # both outside: the filter may touch 1 in between (isolated point)
            intervals.extend(_touch_points(rho1, f1, a, b, tol))
    return Region(intervals)


def _touch_points(rho1: Callable[[np.ndarray], np.ndarray], f1: Callable[[float], float],
                  a: float, b: float, tol: float) -> list[tuple[float, float]]:
    """Where ρ₁ dips to ≤ 1 between two outside anchors: an isolated point or narrow band."""
    res = minimize_scalar(lambda t: f1(t), bounds=(a, b), method="bounded",
                          options={"xatol": tol})
    t0, v0 = float(res.x), float(res.fun)
    width = max(abs(a), abs(b), 1.0)
    if v0 > 1e-7:
        return []
    if v0 < -1e-7:  # a genuine narrow band
        return [(brentq(f1, a, t0, xtol=tol), brentq(f1, t0, b, xtol=tol))]
    # ρ₁ touches 1: locate the minimum as a zero of the derivative ρ₁′
    d = 1e-5 * width

    def deriv(t: float) -> float:
        v = rho1(np.array([t - d, t + d]))
        return float(v[1] - v[0])

    lo, hi = max(a, t0 - 100 * d), min(b, t0 + 100 * d)
    if deriv(lo) < 0 < deriv(hi):
        t0 = brentq(deriv, lo, hi, xtol=tol)
    return [(t0, t0)] if f1(t0) <= 1e-9 else []
