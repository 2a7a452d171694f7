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


def _polynomial_degree(opt: Optimizer, half_width: float = 1.0) -> int | None:
    """Degree D of λ ↦ Jac G (a matrix polynomial for polynomial updates), or None.

    The smallest D whose least-squares fit on Chebyshev nodes of [−w, w] reproduces the
    samples and extrapolates correctly to |λ| ≈ 3w (a non-polynomial map fails there).
    A degree whose fit passes only because its missing terms are below the fit
    tolerance on [−w, w] fails the extrapolation, and the next degree is tried.
    """
    n = 2 * (_MAX_DEGREE + 1)
    x = _cheb_nodes(n, 1.0)
    far = np.array([-3.0, -2.0, 2.5, 3.5])
    Js = linearizations(opt, half_width * np.concatenate([x, far]))
    m = Js.shape[-1]
    Y, Yfar = Js[:n].reshape(n, m * m), Js[n:].reshape(far.size, m * m)
    scale = 1.0 + np.max(np.abs(Js))
    for deg in range(_MAX_DEGREE + 1):
        coef = np.polynomial.chebyshev.chebfit(x, Y, deg)
        fit = np.polynomial.chebyshev.chebval(x, coef).T
        if np.max(np.abs(fit - Y)) > 1e-9 * scale:
            continue
        pred = np.polynomial.chebyshev.chebval(far, coef).T
        if np.max(np.abs(pred - Yfar)) <= 1e-7 * (1.0 + np.max(np.abs(Yfar))):
            return deg
    return None


def _stability_bound(opt: Optimizer, degree: int) -> float | None:
    """L such that ρ₁(λ) > 1 for |λ| > L, or None when ρ₁ is constant.

    If ρ(J) ≤ 1 then every coefficient cⱼ of det(zI − J) obeys |cⱼ| ≤ C(m, j) (they are
    the elementary symmetric functions of the eigenvalues). Each cⱼ(λ) is a polynomial
    of degree ≤ j·D; cⱼ(λ)² − C(m, j)² has even degree and a positive leading
    coefficient, so it is positive beyond its largest real root on either side: there
    |cⱼ| > C(m, j), and any non-constant cⱼ bounds the filter. The largest root modulus
    gives a safe interval first; on it the fit is accurate and only real roots are kept
    (a root counts as real when |cⱼ| ≈ C(m, j) at its real part, which also catches a
    double real root split into a complex pair by rounding).
    """
    probe = linearizations(opt, np.zeros(1))
    m = probe.shape[-1]
    n = m * max(degree, 1) + 1

    def bounds_on(half: float) -> tuple[float, float] | None:
        """(largest root modulus, largest real root) over the non-constant cⱼ, fitted on
        [−half, half]; coefficients negligible there are dropped. None: all constant."""
        x = _cheb_nodes(2 * n, half)
        eig = np.linalg.eigvals(linearizations(opt, x))
        char = np.array([np.poly(e).real for e in eig])  # (2n, m+1)
        outer, inner = [], []
        for j in range(1, m + 1):
            c = np.polynomial.Polynomial.fit(x, char[:, j], j * max(degree, 1)).convert()
            C = comb(m, j)
            size = np.abs(c.coef) * half ** np.arange(c.coef.size)
            small = size <= 1e-10 * max(np.max(size), C)
            c = np.polynomial.Polynomial(np.where(small, 0.0, c.coef)).trim()
            if c.degree() < 1:
                continue
            roots = (c * c - C ** 2).roots()
            if roots.size == 0:  # cⱼ² underflows: cⱼ is negligible against C
                continue
            outer.append(float(np.max(np.abs(roots))))
            # real parts where |cⱼ| is (about) C: the real roots, and the complex pairs
            # that a double real root splits into in floating point
            t = roots.real
            mag = np.abs(c.coef) @ np.abs(t[None, :]) ** np.arange(c.coef.size)[:, None]
            real = t[np.abs(c(t)) <= C * (1 + 1e-6) + 1e-8 * mag]
            inner.append(float(np.max(np.abs(real))) if real.size else 0.0)
        return (min(outer), min(inner)) if outer else None

    # A safe bound first (all root moduli). Dropping coefficients negligible on
    # [−half, half] is only consistent if the bound is ≤ half, so half grows to it.
    half = 1.0
    for _ in range(8):
        b = bounds_on(half)
        if b is None:
            return None
        if b[0] <= half:
            break
        half = b[0]
    # Then the real roots only, from a fit accurate on the whole of [−half, half]
    # (complex roots make the bound loose, and boundary tolerances are relative to it).
    b = bounds_on(half)
    if b is None:
        return None
    return b[1] * 1.01 + 1e-12


def _crossing_candidates(opt: Optimizer, L: float, degree: int) -> np.ndarray:
    """Real zeros in [−L, L] of B(λ) = det(J⊗J − I), a polynomial of degree ≤ 2Dm².

    ρ₁(λ) = 1 needs an eigenvalue μ with |μ| = 1: μ = ±1 (μ² = 1) or a conjugate pair
    with μμ̄ = 1; both make J⊗J − I singular. So every boundary point and every
    isolated point of the filter is a zero of B, which is found by Chebyshev
    interpolation on [−L, L] and the colleague-matrix eigenvalues (real parts of
    near-real roots are kept too: rounding moves double zeros off the axis).
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
    # A double zero (touch point) far out in a wide range can split into a complex pair
    # well off the axis; keeping near-real pairs as candidates is harmless (a spurious
    # candidate only splits a gap, whose midpoints still classify it).
    keep = (np.abs(roots.imag) <= 0.05) & (np.abs(roots.real) <= 1.0 + 1e-9)
    return np.sort(L * np.clip(roots[keep].real, -1.0, 1.0))


def _merge_split_double_zeros(cands: np.ndarray, rho1: Callable[[np.ndarray], np.ndarray],
                              gap: float) -> np.ndarray:
    """Sorted candidates with each split double zero of B replaced by its midpoint.

    A double zero of B (a touch point) comes out of the root finder as two reals or a
    complex pair about √(ε·cond) apart; kept apart, the tiny gap between them would be
    classified by a midpoint where ρ₁ = 1 to rounding and turn the point into a band.
    Two consecutive candidates closer than ``gap`` with ρ₁ = 1 (to 1e-6) halfway are
    such a pair; two genuine crossings have ρ₁ clearly below 1 between them.
    """
    x = np.unique(cands)  # a conjugate pair gives its real part twice
    if x.size < 2:
        return x
    mids = 0.5 * (x[:-1] + x[1:])
    pair = (np.diff(x) <= gap) & (np.abs(rho1(mids) - 1.0) <= 1e-6)
    out, i = [], 0
    while i < x.size:
        if i + 1 < x.size and pair[i]:
            out.append(mids[i])
            i += 2
        else:
            out.append(x[i])
            i += 1
    return np.array(out)


def _touch_refine(opt: Optimizer, degree: int, t0: float, w: float) -> float:
    """The double zero of B(λ) = det(J⊗J − I) nearest t0, as a simple zero of B′.

    Minimizing ρ₁ only locates a touch point to about √ε; B is a polynomial (degree
    ≤ 2Dm²), so its interpolant on [t0 − w, t0 + w] is exact up to rounding and the
    zero of its derivative is accurate to about ε·w.
    """
    m = linearizations(opt, np.zeros(1)).shape[-1]
    deg = 2 * max(degree, 1) * m * m
    x = _cheb_nodes(2 * deg + 2, 1.0)
    Js = linearizations(opt, t0 + w * x)
    Bv = np.linalg.det(np.einsum("nij,nkl->nikjl", Js, Js).reshape(x.size, m * m, m * m)
                       - np.eye(m * m))
    coef = np.polynomial.chebyshev.chebfit(x, Bv, deg)
    if not np.any(coef):
        return t0
    coef = np.polynomial.chebyshev.chebtrim(coef, 1e-14 * np.max(np.abs(coef)))
    dcoef = np.polynomial.chebyshev.chebder(coef)
    if dcoef.size < 2:
        return t0
    roots = np.polynomial.chebyshev.chebroots(dcoef)
    real = roots[(np.abs(roots.imag) <= 1e-6) & (np.abs(roots.real) <= 1.0)].real
    if real.size == 0:
        return t0
    return float(t0 + w * real[np.argmin(np.abs(real))])


def _fallback_candidates() -> tuple[float, np.ndarray]:
    pos = np.logspace(-8, math.log10(_FALLBACK_RANGE), 2000)
    return _FALLBACK_RANGE, np.concatenate([-pos[::-1], [0.0], pos])


def derive_region(opt: Optimizer, *, xtol: float | None = None, rtol: float = 1e-12) -> Region:
    """The filter {λ : ρ₁(λ) ≤ 1} computed from ``opt.step`` alone.

    Search range. For an update that combines gradients, Hessian-vector products and
    state linearly with polynomial weights (all built-ins and their momentum/extrapolation
    variants), λ ↦ Jac G is a matrix polynomial of some degree D, detected by exact
    interpolation (first on [−1, 1], then again on [−L, L], since terms negligible near
    0 can dominate far away). Then a rigorous bound L (see ``_stability_bound``: a
    coefficient of the characteristic polynomial exceeds what ρ ≤ 1 allows) puts the
    whole filter in [−L, L], and every boundary point, including isolated points where
    ρ₁ only touches 1, is a real zero of the polynomial det(J⊗J − I), so no band can be
    missed wherever it lies. Each gap between consecutive zeros is classified by ρ₁ at
    its midpoint; crossings are refined by Brent's method on ρ₁ − 1 and touch points as
    simple zeros of the derivative of det(J⊗J − I).
    A map whose linearization is not polynomial in λ falls back to a logarithmic scan of
    ±[1e−8, 1e8] with local-minimum refinement, and a DerivationWarning says so.

    Args:
        xtol: absolute tolerance of the boundary points (default 1e-15·L; it only
            matters for boundary points at or near 0).
        rtol: tolerance of each boundary point relative to its own size.

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
        for _ in range(4):
            if L is None or L <= 1.0:
                break
            wider = _polynomial_degree(opt, half_width=L)
            if wider is None or wider <= degree:
                break
            degree = wider
            L = _stability_bound(opt, degree)
        if L is None:  # ρ₁ does not depend on λ
            return Region([(-math.inf, math.inf)]) if rho1(np.zeros(1))[0] <= 1 else Region()
        cands = _merge_split_double_zeros(_crossing_candidates(opt, L, degree), rho1, 1e-4 * L)

    def f1(lam: float) -> float:
        return float(rho1(np.array([lam]))[0]) - 1.0

    def refine(t0: float, w: float) -> float:
        return t0 if degree is None else _touch_refine(opt, degree, t0, w)

    pts = np.unique(np.concatenate([[-L, L], cands]))
    mids = 0.5 * (pts[:-1] + pts[1:])
    inside = rho1(mids) <= 1.0
    out_left, out_right = -L * 1.01 - 1e-12, L * 1.01 + 1e-12
    # anchors: an outside point left of pts[0], the gap midpoints, an outside point right
    anchors = np.concatenate([[out_left], mids, [out_right]])
    flags = np.concatenate([[False], inside, [False]])
    tols = {"xtol": 1e-15 * L if xtol is None else xtol,
            "rtol": max(rtol, 4 * np.finfo(float).eps), "maxiter": 500}
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for i in range(1, len(anchors)):
        a, b, fa, fb = anchors[i - 1], anchors[i], flags[i - 1], flags[i]
        if fa != fb:  # a crossing between anchors a and b
            root = brentq(f1, a, b, **tols)
            if fb:
                start = root
            else:
                assert start is not None
                intervals.append((start, root))
                start = None
        elif not fa:  # both outside: the filter may touch 1 in between (isolated point)
            p = None if degree is None else float(pts[i - 1])
            intervals.extend(_touch_points(f1, refine, a, p, b, tols))
    return Region(intervals)


def _touch_points(f1: Callable[[float], float], refine: Callable[[float, float], float],
                  a: float, p: float | None, b: float, tols: dict
                  ) -> list[tuple[float, float]]:
    """Where ρ₁ dips to ≤ 1 between two outside anchors: an isolated point or narrow band.

    ``p`` is the zero of det(J⊗J − I) between the anchors (None in the fallback scan,
    where the dip is searched by bounded minimization).
    """
    if p is None:
        res = minimize_scalar(f1, bounds=(a, b), method="bounded",
                              options={"xatol": tols["xtol"] + tols["rtol"] * max(abs(a), abs(b))})
        t0, v0 = float(res.x), float(res.fun)
    else:
        t0, v0 = p, f1(p)
        if -1e-7 <= v0 <= 1e-3:  # near a touch: a double zero of det(J⊗J − I)
            t = refine(t0, 0.5 * min(t0 - a, b - t0))
            if a < t < b:
                t0, v0 = t, f1(t)
    if v0 < -1e-7:  # a genuine narrow band
        return [(brentq(f1, a, t0, **tols), brentq(f1, t0, b, **tols))]
    return [(t0, t0)] if v0 <= 1e-9 else []
