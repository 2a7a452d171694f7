"""The filter of any optimizer, derived from its own ``step``.

The filter function is ρ₁(λ) = spectral radius of Jac G at z̄ = init(0) for the
one-dimensional quadratic f(x) = λx²/2, and the derived filter is {λ ∈ ℝ : ρ₁(λ) ≤ 1}.

How it is made exact (:func:`derive`):

1. **Form.** λ ↦ J(λ) = Jac G is sampled on Chebyshev nodes at a ladder of scales
   s₀·10⁻², s₀, s₀·10², …, s₀·10¹² around the map's natural scale s₀ (where J changes
   by O(1)), and recognised at every scale as a matrix polynomial of degree D (exact
   interpolation that also extrapolates) or, failing that, a rational matrix P(λ)/q(λ)
   with one common denominator of degree ≤ d (linearised rational interpolation
   J·q − P = 0 by SVD, checked at extra points). Terms negligible near 0 (ρλ² for
   tiny ρ) are seen at the scale where they matter.
2. **Boundary candidates.** ρ₁(λ) = 1 needs an eigenvalue μ with |μ| = 1, so J⊗J − I
   is singular: every boundary point and isolated point is a real zero of
   N(λ) = q(λ)^{2m²} det(J⊗J − I), a polynomial, or a pole (zero of q). N is
   interpolated at each scale (its zeros are kept at the scale that resolves them) and,
   for rational maps, also in the outer chart t = S/λ, which reaches λ = ±∞.
   Eigenvalues of modulus 1 that do not depend on λ (an accumulator that only adds)
   are deflated first; they make det(J⊗J − I) vanish identically.
3. **Range.** For polynomial maps a rigorous bound L (a characteristic-polynomial
   coefficient exceeds what ρ ≤ 1 allows) puts the filter in [−L, L]; rational maps
   are solved on the whole line through the outer chart, and intervals may reach ±∞.
4. **Classification.** Each gap between consecutive candidates is inside or outside
   (ρ₁ at its midpoint); crossings are refined by Brent's method and touch points as
   simple zeros of N′.

Whatever is not recognised as polynomial or rational (or fails numerically) gives the
best region of a logarithmic scan, with a :class:`DerivationWarning` saying how it was
obtained; :attr:`Derivation.certified_range` says where the result is exact.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from math import comb

import numpy as np
from scipy.linalg import matrix_balance
from scipy.optimize import brentq, minimize_scalar

from dynverify.errors import NotDifferentiableError, OptimizerError
from dynverify.functions import RowQuadratics
from dynverify.linearize import (
    Linearization,
    _flatten,
    _unflatten,
    apply_step,
    batched_linearization,
    eigenvalues,
    lifted_state,
)
from dynverify.optimizer import Optimizer
from dynverify.regions import Region, below_float_grid
from dynverify.rescaling import Rescaled, rescaled

#: finite-difference step of the 1-D linearizations, relative to 1/max(1, |λ|) (maps on
#: quadratics depend on the state through λx; smaller steps are taken when needed)
_H = 1e-3
_MAX_DEGREE = 12
_MAX_RATIONAL = 6
#: ladder of scales relative to the natural scale s₀
_LADDER = tuple(10.0 ** k for k in range(-9, 13, 3))
#: rational maps: inner ladder up to s₀·10⁶, then the outer chart
_RATIONAL_TOP = 1e6
#: outer-chart zeros with |t| below this are not resolved (λ beyond S/_T_MIN)
_T_MIN = 1e-9
_FALLBACK_DECADES = 8
_BIG = 1e306


class DerivationWarning(UserWarning):
    """The derived filter is not certified exact (how it was obtained is in the message)."""


@dataclass(frozen=True)
class Derivation:
    """The derived filter and how far it can be trusted.

    Attributes:
        region: {λ : ρ₁(λ) ≤ 1} as computed.
        method: "polynomial", "rational" (λ ↦ Jac G recognised as such and solved
            exactly), "constant" (Jac G does not depend on λ) or "scan" (neither: a
            logarithmic scan, not certified).
        certified: True when ``region`` is exact on ``certified_range``.
        certified_range: (lo, hi): the region is exact there (to rounding); outside it
            nothing was verified (features of a map beyond it, e.g. a band near −1/ρ for
            ρ below 1e-9/hi, are not seen).
        degree: (numerator, denominator) degrees of λ ↦ Jac G, or None.
        differences: "central", "one-sided" or "mixed" finite differences (one-sided on
            state components whose declared domain ends at the fixed point).
        notes: anything else worth knowing (deflated unit eigenvalues, fallbacks).
    """

    region: Region
    method: str
    certified: bool
    certified_range: tuple[float, float]
    degree: tuple[int, int] | None = None
    differences: str = "central"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        lo, hi = self.certified_range
        deg = "" if self.degree is None else f" (degrees {self.degree[0]}/{self.degree[1]})"
        head = (f"{self.method}{deg}, exact on [{lo:.4g}, {hi:.4g}]" if self.certified
                else f"{self.method}{deg}, NOT certified")
        extra = "; ".join((f"{self.differences} differences", *self.notes))
        return f"{head}; {extra}"


# -- linearizations ---------------------------------------------------------------------

#: a state component that a step h in x moves by more than this times h is stepped by
#: (a power of 2 near) that much, not by h: see :func:`_column_scale`
_COLUMN_RESPONSE = 2.0 ** 50


def _column_scale(opt: Optimizer, lams: np.ndarray, Z: np.ndarray,
                  shapes: list[tuple[int, ...]], h: np.ndarray) -> np.ndarray | None:
    """Per λ and state component, the factor on its finite-difference step: 2ᵏ ≈ its
    response to a step in x where that exceeds _COLUMN_RESPONSE, else 1 (None: all 1).

    Buffers follow λx: Adam at α = 5.9e-275, ε = 1 has its filter at λ ~ 1e274, where
    m moves by (1 − β₁)λh ~ 1e-3 for a step h in x, while a step h ~ 1e-277 in m moves
    x⁺ by (α/√ε)h ~ 1e-552, which underflows, so ∂x⁺/∂m read 0 and the filter came out
    28 % too narrow. Perturbing m as much as x moves it keeps every product a normal
    float. (One batched step at z̄ ± h·e_x; x is component 0 of the lifted state when
    ``position`` is the default.)"""
    n, m = Z.shape
    if m < 2 or getattr(opt.position, "__name__", "") != "_first":
        return None
    P = np.concatenate([Z, Z])
    P[:n, 0] += h
    P[n:, 0] -= h
    try:
        with np.errstate(all="ignore"):
            G = _flatten(apply_step(opt, _unflatten(P, shapes),
                                    RowQuadratics(np.concatenate([lams, lams]))), 2 * n)[0]
            resp = np.abs(G[:n] - G[n:]) / (2.0 * h[:, None])
    except (OptimizerError, ArithmeticError, ValueError):
        return None
    big = np.isfinite(resp) & (resp > _COLUMN_RESPONSE)
    big[:, 0] = False
    if not big.any():
        return None
    with np.errstate(all="ignore"):
        k = np.floor(np.log2(np.where(big, resp, 1.0)))
    return np.ldexp(1.0, np.minimum(k, 1000).astype(int))


def _linearize(opt: Optimizer, lams: np.ndarray, check: bool = True, scale: float = 1.0
               ) -> Linearization:
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    state = lifted_state(opt, np.zeros((lams.size, 1)))
    Z, shapes = _flatten(state, lams.size)
    h = scale * _H / np.maximum(1.0, np.abs(lams))
    return batched_linearization(opt, lambda rows: RowQuadratics(lams[rows]), Z, shapes, h=h,
                                 check_differentiable=check,
                                 column_scale=_column_scale(opt, lams, Z, shapes, h))


def _jac(opt: Optimizer, lams: np.ndarray, check: bool) -> np.ndarray:
    """Jacobians per λ; a λ at which ``step`` raises gets NaN (the error is raised only
    if every λ fails); unchecked, a λ whose differences disagree by more than 1e-3
    (rounding amplified by the map, a kink) gets NaN too."""
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    try:
        lin = _linearize(opt, lams, check)
        if check:
            return lin.J
        with np.errstate(invalid="ignore"):
            size = 1.0 + np.max(np.abs(lin.J), axis=(1, 2))
            ok = lin.converged | (lin.error <= 1e-3 * size)
        return np.where(ok[:, None, None], lin.J, np.nan)
    except OptimizerError:
        if lams.size == 1:
            raise
    half = lams.size // 2
    parts = []
    for part in (lams[:half], lams[half:]):
        try:
            parts.append(_jac(opt, part, check))
        except OptimizerError:
            parts.append(None)
    if parts[0] is None and parts[1] is None:
        return _linearize(opt, lams, check).J  # re-raises the error
    m = next(p for p in parts if p is not None).shape[-1]
    return np.concatenate([p if p is not None else np.full((n, m, m), np.nan)
                           for p, n in zip(parts, (half, lams.size - half))])


def linearizations(opt: Optimizer, lams: np.ndarray) -> np.ndarray:
    """Jac G(z̄) for f(x) = λx²/2, one (m, m) matrix per λ, from batched ``step`` calls.

    A λ at which ``step`` raises (a Newton-type map at its pole, where the system it
    solves is singular) gets a NaN matrix; the error is raised only if every λ fails.
    Raises NotDifferentiableError when the map has no derivative at some λ.
    """
    return _jac(opt, lams, True)


def _J(opt: Optimizer, lams: np.ndarray) -> np.ndarray:
    """Unchecked linearizations (NaN where unresolved), for the derivation's sampling."""
    return _jac(opt, lams, False)


def filter_function(opt: Optimizer, *, strict: bool = True
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """λ ↦ ρ₁(λ), vectorized: the spectral radius of the linearized map per eigenvalue.

    ``strict``: raise NotDifferentiableError where the map has no derivative; otherwise
    return NaN wherever finite differences do not resolve ρ₁ (a kink, or rounding
    amplified by the map, as x + ρ∇f(x) ≈ 0 at λ = −1/ρ for USAM).

    Example:
        >>> from dynverify.optimizers import gradient_descent
        >>> rho = filter_function(gradient_descent(lr=0.5))
        >>> np.round(rho(np.array([0.0, 2.0, 5.0])), 9).tolist()   # |1 - λ/2|
        [1.0, 0.0, 1.5]
    """

    moved = rescaled(opt)
    if moved is not None:  # where floats resolve the map (see dynverify.rescaling)
        inner = filter_function(moved.optimizer, strict=strict)
        return lambda lams: inner(moved.up(lams))

    def rho(lams: np.ndarray) -> np.ndarray:
        lam = np.asarray(lams, dtype=float)
        J = _jac(opt, lam.ravel(), strict)
        return _radius(J).reshape(lam.shape)

    return rho


def step_dependence(opt: Optimizer, lam: float, factor: float = 2.0 ** -20) -> float:
    """|ρ₁(λ) − ρ₁(λ) from finite-difference steps ``factor`` times smaller|: about 0
    where the map is linear at those steps; large where no step resolves it (Adam with
    ε = 7e-203 at λ = 1.9e301 needs gradients below √ε = 9e-102, steps below 1e-403,
    and read ρ₁ = 0.9957 at a λ where it is 5e94). ∞ where either is not resolved."""
    moved = rescaled(opt)
    if moved is not None:
        return step_dependence(moved.optimizer, float(moved.up(lam)), factor)
    try:
        with np.errstate(all="ignore"):
            out = []
            for k in (1.0, factor):
                J = _linearize(opt, np.array([lam]), False, scale=k).J
                out.append(float(_radius(J)[0]))
    except (OptimizerError, ArithmeticError, ValueError, np.linalg.LinAlgError):
        return math.inf
    d = abs(out[0] - out[1])
    return d if math.isfinite(d) else math.inf


def _radius(J: np.ndarray) -> np.ndarray:
    out = np.full(J.shape[0], np.nan)
    ok = np.all(np.isfinite(J), axis=(1, 2))
    if ok.any():
        out[ok] = np.max(np.abs(eigenvalues(J[ok])), axis=-1)
    return out


def _cheb_nodes(n: int, half_width: float = 1.0) -> np.ndarray:
    return half_width * np.cos(np.pi * (np.arange(n) + 0.5) / n)


# -- the form of λ ↦ J(λ) -----------------------------------------------------------------

_FAR = np.array([-3.0137, -2.0713, 2.5419, 3.4787])  # off round numbers (poles)
_NFIT = 2 * (_MAX_DEGREE + 1)


def _poly_degree(Y: np.ndarray, Yfar: np.ndarray, x: np.ndarray) -> int | None:
    """Smallest D whose fit on the nodes reproduces Y and extrapolates to Yfar."""
    scale = 1.0 + max(np.max(np.abs(Y)), np.max(np.abs(Yfar)))
    for deg in range(_MAX_DEGREE + 1):
        coef = np.polynomial.chebyshev.chebfit(x, Y, deg)
        fit = np.polynomial.chebyshev.chebval(x, coef).T
        if np.max(np.abs(fit - Y)) > 1e-9 * scale:
            continue
        pred = np.polynomial.chebyshev.chebval(_FAR, coef).T
        if np.max(np.abs(pred - Yfar)) <= 1e-7 * (1.0 + np.max(np.abs(Yfar))):
            return deg
    return None


def _rational_fit(Y: np.ndarray, x: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev coefficients (q, P) with Y·q(x) ≈ P(x), common denominator of degree d.

    Linearised rational interpolation: for each entry k, Yₖ∘q must lie in the span of
    the degree-d Chebyshev columns; q is the smallest right singular vector of the
    stacked projections (I − QQᵀ) diag(Yₖ) V.
    """
    V = np.polynomial.chebyshev.chebvander(x, d)
    Q, _ = np.linalg.qr(V)
    Ys = Y / max(np.max(np.abs(Y)), 1e-300)
    blocks = [(Ys[:, k, None] * V) - Q @ (Q.T @ (Ys[:, k, None] * V)) for k in range(Y.shape[1])]
    _, _, vt = np.linalg.svd(np.concatenate(blocks, axis=0))
    q = vt[-1]
    P = np.linalg.lstsq(V, Y * np.polynomial.chebyshev.chebval(x, q)[:, None], rcond=None)[0]
    return q, P


def _rational_degree(Y: np.ndarray, Yfar: np.ndarray, x: np.ndarray
                     ) -> tuple[int, np.ndarray] | None:
    """Smallest d with J = P/q (degrees ≤ d) on the nodes and at the far points."""
    for d in range(1, _MAX_RATIONAL + 1):
        try:
            q, P = _rational_fit(Y, x, d)
        except np.linalg.LinAlgError:
            return None
        # tolerances relative to (1 + |J|)·|q|: entries of J carry an O(1) part whose
        # rounding dominates where J itself is small (damped Newton far from its pole)
        qx = np.polynomial.chebyshev.chebval(x, q)
        res = Y * qx[:, None] - np.polynomial.chebyshev.chebval(x, P).T
        if np.max(np.abs(res)) > 1e-9 * np.max((1.0 + np.abs(Y)) * np.abs(qx)[:, None]):
            continue
        qf = np.polynomial.chebyshev.chebval(_FAR, q)
        pred = np.polynomial.chebyshev.chebval(_FAR, P).T
        err = np.abs(Yfar * qf[:, None] - pred)
        if np.max(err) <= 1e-7 * np.max((1.0 + np.abs(Yfar)) * np.abs(qf)[:, None]):
            return d, q
    return None


@dataclass
class _Form:
    kind: str  # "poly" | "rational"
    degree: int
    scale: float
    q: np.ndarray | None = None  # Chebyshev coefficients on [−scale, scale]


def _forms(sv: _Solver, scales: list[float]) -> list[_Form | None]:
    """The form of J at each scale, from one batched linearization."""
    x = _cheb_nodes(_NFIT)
    per = np.concatenate([x, _FAR])
    lams = np.concatenate([s * per for s in scales])
    Js = sv.J(lams)
    m = Js.shape[-1]
    out: list[_Form | None] = []
    for i, s in enumerate(scales):
        block = Js[i * per.size:(i + 1) * per.size].reshape(per.size, m * m)
        Y, Yfar = block[:x.size], block[x.size:]
        if not (np.all(np.isfinite(Y)) and np.all(np.isfinite(Yfar))):
            out.append(None)
            continue
        deg = _poly_degree(Y, Yfar, x)
        if deg is not None:
            out.append(_Form("poly", deg, s))
            continue
        rat = _rational_degree(Y, Yfar, x)
        out.append(None if rat is None else _Form("rational", rat[0], s, rat[1]))
    return out


def _char_coefficients(J: np.ndarray) -> np.ndarray:
    """(n, m + 1) coefficients of det(zI − J) per matrix (NaN rows stay NaN)."""
    n, m = J.shape[0], J.shape[-1]
    out = np.full((n, m + 1), np.nan)
    ok = np.all(np.isfinite(J), axis=(1, 2))
    if ok.any():
        mu = eigenvalues(J[ok])
        c = np.zeros((mu.shape[0], m + 1), dtype=complex)
        c[:, 0] = 1.0
        for i in range(m):  # multiply by (z − μᵢ)
            c[:, 1:] = c[:, 1:] - mu[:, i, None] * c[:, :-1]
        out[ok] = c.real
    return out


def _natural_scale(opt: Optimizer) -> tuple[float, float, np.ndarray | None]:
    """(s₀, dmax, J): s₀ is the smallest power of 10 where the spectrum of J(±s₀) differs
    from that of J(0) by min(1, dmax/2), dmax the largest change seen over float λ up to
    1e300 (found on a grid of decades in two batched calls); s₀ = 1 when J does not
    depend on λ.

    The change is measured on the coefficients of the characteristic polynomial, which
    a change of coordinates leaves alone: entries of J need not move at the scale of
    its eigenvalues (Adam's (1 − β₁)λ entry reaches 1 at λ = 10, while with α/√ε = 1e-50
    its eigenvalues move at λ ~ 1e51).
    """
    seen: dict[float, np.ndarray] = {}

    def change(ks: np.ndarray, c0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        s = 10.0 ** ks
        J = _J(opt, np.concatenate([-0.9173 * s, 0.8791 * s, [0.0]]))
        for i, k in enumerate(ks.tolist()):
            seen[k] = J[[i, ks.size + i]]
        c = _char_coefficients(J)
        c0 = c[-1] if c0 is None else c0
        d = np.max(np.abs(c[:-1] - c0), axis=1).reshape(2, -1)
        return np.nanmax(np.where(np.isfinite(d), d, np.inf), axis=0), c0

    # up to the largest decade of floats: at α = 5e-324 only λ ~ 1e308 moves 1 − αλ
    coarse = np.append(np.arange(-300.0, 301.0, 20.0), 308.0)
    dc, c0 = change(coarse, None)
    dmax = float(np.max(dc[np.isfinite(dc)], initial=0.0))
    if dmax == 0.0:
        return 1.0, 0.0, None
    target = min(1.0, 0.5 * dmax)
    i = int(np.argmax(dc >= target))
    fine = np.arange(coarse[max(i - 1, 0)], coarse[i] + 1.0, 1.0)
    df, _ = change(fine, c0)
    j = int(np.argmax(df >= target))
    return float(10.0 ** fine[j]), dmax, seen[float(fine[j])]


# -- persistent unit eigenvalues -----------------------------------------------------------

def _persistent_unit(eigs: np.ndarray) -> list[complex]:
    """Eigenvalues of modulus 1 present (to 1e-7: finite differences of a state component
    of size a at steps ~1e-3/|λ| carry about 1e-11·a·|λ| of rounding) in every sample
    row of ``eigs`` (the samples span the map's natural scale, where the λ-dependent
    eigenvalues move by O(1))."""
    found: list[complex] = []
    first = eigs[0]
    for mu in first[np.abs(np.abs(first) - 1.0) <= 1e-7]:
        need = 1 + sum(abs(f - mu) <= 1e-7 for f in found)
        if all(np.sum(np.abs(row - mu) <= 1e-7) >= need for row in eigs):
            found.append(complex(mu))
    return found


def _reduce(eigs: np.ndarray, unit: list[complex]) -> np.ndarray:
    """Each row of eigs with the persistent unit eigenvalues removed (closest match)."""
    if not unit:
        return eigs
    out = []
    for row in eigs:
        row = list(row)
        for mu in unit:
            i = int(np.argmin(np.abs(np.asarray(row) - mu)))
            row.pop(i)
        out.append(row)
    return np.asarray(out)


# -- the derivation ---------------------------------------------------------------------

class _Solver:
    """State of one derivation: the map's scale, deflation, and the N(λ) sampler."""

    def __init__(self, opt: Optimizer) -> None:
        self.opt = opt
        self.m = _flatten(lifted_state(opt, np.zeros((1, 1))), 1)[0].shape[1]
        self.differences = "central"  # set by check_differentiable
        self.unit: list[complex] = []
        self.notes: list[str] = []
        #: diagonal similarity D (powers of 2) applied to every sampled Jac G
        self.D: np.ndarray | None = None

    def check_differentiable(self, s0: float) -> None:
        """Raise NotDifferentiableError unless the map has a derivative at generic λ of
        the map's natural scale s₀ (a kink or jump such as normalized SAM's shows at any
        λ ≠ 0). At λ far beyond s₀ a smooth map can be nonlinear below every step the
        differences reach (RMSprop with ε = 1e-16 at λ = 1: the gradient λh must stay
        below √ε), so the check is not made at a fixed λ."""
        self.differences = _linearize(
            self.opt, np.array([0.0, 0.3761, -1.2917, 2.9133]) * s0).scheme

    def balance(self, s0: float, J: np.ndarray | None = None) -> None:
        """Fix D so that D⁻¹ Jac G D is balanced at the natural scale s₀.

        Jac G can be badly scaled: Adam with a = α/√ε = 1e6 has entries −aβ₁ ≈ 1e6 and
        (1 − β₁)λ ≈ 1e-6 in one block whose eigenvalues are O(1). Every tolerance below
        (fits relative to |J|, the rounding of the characteristic coefficients) would
        then be set by the 1e6 entry and drown the O(1) structure. A constant diagonal
        similarity changes no eigenvalue, and keeps J polynomial or rational in λ; with
        powers of 2 it is exact.
        """
        if J is None:  # (given: Jac G at ±s₀ from the scale search)
            J = _J(self.opt, np.array([0.8791, -0.9173, 0.3761]) * s0)
        J = J[np.all(np.isfinite(J), axis=(1, 2))]
        if J.shape[0] == 0 or self.m < 2:
            return
        A = np.sum(np.abs(J), axis=0)
        try:
            _, (d, _) = matrix_balance(A, permute=False, separate=True)
        except (ValueError, np.linalg.LinAlgError):
            return
        if np.all(np.isfinite(d)) and np.all(d > 0) and np.any(d != 1.0):
            self.D = d

    def J(self, lams: np.ndarray) -> np.ndarray:
        """Unchecked linearizations D⁻¹ Jac G D (NaN where unresolved)."""
        J = _J(self.opt, lams)
        if self.D is None:
            return J
        return J * (self.D[None, None, :] / self.D[None, :, None])

    # ρ₁ with the persistent unit eigenvalues left out (they have modulus exactly 1)
    def rho(self, lams: np.ndarray) -> np.ndarray:
        lam = np.atleast_1d(np.asarray(lams, dtype=float))
        J = self.J(lam)
        if not self.unit:
            return _radius(J)
        out = np.full(lam.size, np.nan)
        ok = np.all(np.isfinite(J), axis=(1, 2))
        if ok.any():
            red = _reduce(eigenvalues(J[ok]), self.unit)
            out[ok] = np.max(np.abs(red), axis=-1) if red.shape[-1] else 0.0
        return out

    def f1(self, lam: float) -> float:
        v = float(self.rho(np.array([lam]))[0])
        return v - 1.0 if math.isfinite(v) else math.inf

    def detect_unit(self, lams: np.ndarray) -> None:
        J = self.J(lams)
        J = J[np.all(np.isfinite(J), axis=(1, 2))]
        if J.shape[0] < 2:
            return
        unit = _persistent_unit(eigenvalues(J))
        if len(unit) >= self.m:  # nothing would be left: ρ₁ = 1 everywhere, not deflated
            return
        self.unit = unit
        if self.unit:
            self.notes.append("eigenvalue(s) " + ", ".join(f"{u.real:g}" if u.imag == 0
                                                             else f"{u:g}" for u in self.unit)
                              + " of modulus 1 for every λ (deflated)")

    @property
    def mr(self) -> int:
        return self.m - len(self.unit)

    def factors(self, Js: np.ndarray) -> np.ndarray:
        """(n, 3): det(I − J), det(I + J), ∏_{i<j}(μᵢμⱼ − 1) per sample (μ: eigenvalues
        of J without the deflated ones).

        |μ| = 1 needs μ = 1, μ = −1 or a pair μμ̄ = 1, so every boundary point is a zero
        of one of the three; their product times the last factor is det(J⊗J − I), whose
        zeros are the same but far worse conditioned (its values grow like |J|^{2m²}).
        """
        n = Js.shape[0]
        out = np.full((n, 3), np.nan)
        ok = np.all(np.isfinite(Js), axis=(1, 2))
        if not ok.any():
            return out
        J = Js[ok]
        k = J.shape[0]
        if not self.unit:
            eye = np.eye(J.shape[-1])
            f1, f2 = np.linalg.det(eye - J), np.linalg.det(eye + J)
            mu = eigenvalues(J) if J.shape[-1] > 1 else np.zeros((k, 1))
        else:
            mu = _reduce(eigenvalues(J), self.unit)
            f1 = np.prod(1.0 - mu, axis=1).real if mu.shape[1] else np.ones(k)
            f2 = np.prod(1.0 + mu, axis=1).real if mu.shape[1] else np.ones(k)
        r = mu.shape[1]
        iu = np.triu_indices(r, 1)
        f3 = (np.prod(mu[:, iu[0]] * mu[:, iu[1]] - 1.0, axis=1).real if iu[0].size
              else np.ones(k))
        out[ok] = np.stack([f1, f2, f3], axis=1)
        return out

    def factor_samples(self, lams: np.ndarray, qvals: np.ndarray | None) -> np.ndarray:
        """The factors at λ, each times the power of q that makes it a polynomial."""
        F = self.factors(self.J(lams))
        if qvals is None:
            return F
        r = self.mr
        return F * np.stack([qvals ** r, qvals ** r, qvals ** (r * (r - 1))], axis=1)

    def factor_degrees(self, degree: int) -> tuple[int, int, int]:
        r, d = max(self.mr, 1), max(degree, 1)
        return r * d, r * d, max(r * (r - 1) * d, 0)


def _cheb_real_roots(coef: np.ndarray, imag_tol: float = 0.05) -> np.ndarray:
    """Real parts of the near-real roots in [−1, 1] of a Chebyshev series."""
    if not np.any(coef) or not np.all(np.isfinite(coef)):
        return np.array([])
    coef = np.polynomial.chebyshev.chebtrim(coef, 1e-14 * np.max(np.abs(coef)))
    if coef.size < 2:
        return np.array([])
    try:
        roots = np.polynomial.chebyshev.chebroots(coef)
    except np.linalg.LinAlgError:
        return np.array([])
    keep = (np.abs(roots.imag) <= imag_tol) & (np.abs(roots.real) <= 1.0 + 1e-6)
    return roots[keep].real


def _real_roots_merged(coef: np.ndarray) -> np.ndarray:
    """Real roots in [−1, 1] of a Chebyshev series, double roots located exactly.

    A double root comes out of the eigenvalue solver as two reals or a complex pair
    about √ε apart; such a pair is replaced by the nearby zero of the derivative, which
    is a simple root and accurate to about ε. Complex pairs farther than 1e-6 from the
    axis are not roots of the factor on ℝ.
    """
    r = np.sort(_cheb_real_roots(coef, imag_tol=1e-6))
    if r.size < 2:
        return r
    droots = None
    out, i = [], 0
    while i < r.size:
        if i + 1 < r.size and r[i + 1] - r[i] <= 1e-6:
            if droots is None:
                dc = np.polynomial.chebyshev.chebder(coef)
                dr = np.polynomial.chebyshev.chebroots(dc) if dc.size > 1 else np.array([])
                droots = dr[np.abs(dr.imag) <= 1e-6].real
            mid = 0.5 * (r[i] + r[i + 1])
            near = droots[np.abs(droots - mid) <= 10 * (r[i + 1] - r[i]) + 1e-12]
            out.append(float(near[np.argmin(np.abs(near - mid))]) if near.size else mid)
            i += 2
        else:
            out.append(float(r[i]))
            i += 1
    return np.asarray(out)


def _factor_roots(x: np.ndarray, F: np.ndarray, degs: tuple[int, int, int]) -> np.ndarray:
    """Real roots in [−1, 1] of the interpolants of the three factors (or a dense grid
    when samples are not finite)."""
    if not np.all(np.isfinite(F)):
        return np.linspace(-1.0, 1.0, 201)
    out = []
    for j, deg in enumerate(degs):
        if deg == 0:
            continue
        coef = np.polynomial.chebyshev.chebfit(x, F[:, j], deg)
        out.append(_real_roots_merged(coef))
    return np.concatenate(out) if out else np.array([])


def _candidates_at(sv: _Solver, s: float, form: _Form) -> tuple[np.ndarray, np.ndarray]:
    """(zeros of the factors, poles) in [−s, s] from their interpolants at scale s."""
    degs = sv.factor_degrees(form.degree)
    x = _cheb_nodes(2 * max(degs) + 2)
    qv = None if form.q is None else np.polynomial.chebyshev.chebval(x, form.q)
    z = s * _factor_roots(x, sv.factor_samples(s * x, qv), degs)
    poles = (np.array([]) if form.q is None
             else s * _cheb_real_roots(form.q, imag_tol=1e-6))
    return z, poles


def _outer_candidates(sv: _Solver, S: float, form: _Form) -> tuple[np.ndarray, np.ndarray]:
    """Zeros of the factors and poles with |λ| ≥ S, from the chart t = S/λ ∈ [−1, 1]."""
    d = form.degree
    degs = sv.factor_degrees(d)
    t = _cheb_nodes(2 * max(degs) + 2)
    assert form.q is not None
    # q̂(t) = t^d q(S/t) is a polynomial in t, and so is each factor times its q̂ power
    qhat = t ** d * np.polynomial.chebyshev.chebval(1.0 / t, form.q)
    F = sv.factor_samples(S / t, qhat)
    if not np.all(np.isfinite(F)):
        return np.array([]), np.array([])
    tz = _factor_roots(t, F, degs)
    qcoef = np.polynomial.chebyshev.chebfit(t, qhat, d)
    tp = _cheb_real_roots(qcoef, imag_tol=1e-6)
    tz, tp = tz[np.abs(tz) > _T_MIN], tp[np.abs(tp) > _T_MIN]
    return S / tz, S / tp


def _stability_bound(sv: _Solver, degree: int, scales: list[float]) -> float | None:
    """L such that ρ₁(λ) > 1 for |λ| > L, or None when ρ₁ is constant.

    If ρ(J) ≤ 1 then every coefficient cⱼ of det(zI − J) obeys |cⱼ| ≤ C(m, j) (they are
    the elementary symmetric functions of the eigenvalues). Each cⱼ(λ) is a polynomial
    of degree ≤ j·D; cⱼ(λ)² − C(m, j)² has even degree and a positive leading
    coefficient, so it is positive beyond its largest real root on either side: there
    |cⱼ| > C(m, j), and any non-constant cⱼ bounds the filter. The roots of cⱼ² − C²
    can lie at very different scales (4 and ±i/√ρ for Hessian USAM), so cⱼ is fitted at
    every scale of the ladder, coefficients negligible there are dropped, and each root
    is taken from the scale that resolves it; scales are added beyond the ladder while
    roots lie beyond it. A root counts as real when |cⱼ| ≈ C at its real part (which
    also catches a double real root split into a complex pair by rounding).
    """
    m = sv.m
    n = 2 * (m * max(degree, 1) + 1)
    x = _cheb_nodes(n)
    real_max = [0.0] * (m + 1)
    varies = [False] * (m + 1)
    # a cⱼ bounds the filter only if every root of cⱼ² − C² was seen at a scale where
    # cⱼ is above rounding (a term drowned at large scales leaves its roots unresolved)
    maxmod = [0.0] * (m + 1)
    cover = [0.0] * (m + 1)
    todo = sorted(scales)
    done: list[float] = []
    while todo:
        J = sv.J(np.concatenate([s * x for s in todo]))
        if not np.all(np.isfinite(J)):
            raise FloatingPointError("non-finite linearization in the stability bound")
        eig = eigenvalues(J)
        char = np.array([np.poly(e).real for e in eig]).reshape(len(todo), n, m + 1)
        beyond = 0.0
        jmax = 1.0 + np.max(np.abs(J).reshape(len(todo), -1), axis=1)
        for i, half in enumerate(todo):
            prev = done[-1] if done else 0.0
            for j in range(1, m + 1):
                # cⱼ as a polynomial in the scaled variable x = λ/half (no overflow)
                c = np.polynomial.Polynomial(np.polynomial.polynomial.polyfit(
                    x, char[i, :, j], j * max(degree, 1)))
                C = comb(m, j)
                # rounding of cⱼ computed from eigenvalues of entries of size |J|
                noise = 1e-12 * C * jmax[i] ** j
                size = np.abs(c.coef)
                small = ~(size > max(1e-10 * max(np.max(size), C), noise))
                c = np.polynomial.Polynomial(np.where(small, 0.0, c.coef)).trim()
                if c.degree() < 1:
                    continue
                varies[j] = True
                roots = (c * c - C ** 2).roots()
                if roots.size == 0:  # cⱼ² underflows: cⱼ is negligible against C
                    continue
                mods = half * np.abs(roots)
                maxmod[j] = max(maxmod[j], float(np.max(mods)))
                cover[j] = max(cover[j], half)
                if half == todo[-1] and not done[-1:] == [half]:
                    beyond = max(beyond, float(np.max(mods)))
                sel = (mods <= half * (1 + 1e-9)) & (mods >= 0.5 * prev)
                t = roots.real[sel]
                with np.errstate(over="ignore", invalid="ignore"):
                    mag = np.abs(c.coef) @ np.abs(t[None, :]) ** np.arange(c.coef.size)[:, None]
                real = t[np.abs(c(t)) <= C * (1 + 1e-6) + 1e-8 * mag]
                if real.size:
                    real_max[j] = max(real_max[j], half * float(np.max(np.abs(real))))
            done.append(half)
        top = done[-1]
        todo = [min(beyond * 1.5, _BIG)] if beyond > top and top < _BIG and len(done) < 40 else []
    if not any(varies):
        return None
    bounds = [real_max[j] for j in range(1, m + 1)
              if varies[j] and maxmod[j] <= cover[j] * (1 + 1e-6)]
    if not bounds:
        raise FloatingPointError("no characteristic coefficient bounds the filter at the "
                                 "scales where it is resolved")
    return min(bounds) * 1.01 + 1e-12 * scales[0]


def _with_zero(pts: np.ndarray, floor: float) -> np.ndarray:
    """Sorted candidates with λ = 0 added unless one lies within 1e-3·floor of it.

    A zero at 0 can sit below float resolution at every scale (two-step USAM at
    ρ = 1e200: 1 − J ~ 1e-27 at λ ~ 1e-142, so I − J is 0 in floats and no factor shows
    it); an extra candidate only splits a gap. A candidate already there (heavy ball's
    −9e-17, the zero at 0 to rounding) is that zero: a second one would put a gap of
    width 1e-16 between them, classified by a midpoint where ρ₁ = 1 to rounding.
    """
    if pts.size and float(np.min(np.abs(pts))) <= 1e-3 * floor:
        return pts
    return np.unique(np.concatenate([pts, [0.0]]))


def _merge_split_double_zeros(cands: np.ndarray, rho1: Callable[[np.ndarray], np.ndarray],
                              floor: float) -> np.ndarray:
    """Sorted candidates with each split double zero of N replaced by its midpoint.

    A double zero (a touch point) comes out of the root finder as two reals or a complex
    pair about √(ε·cond) apart; kept apart, the tiny gap between them would be
    classified by a midpoint where ρ₁ = 1 to rounding and turn the point into a band.
    Two consecutive candidates closer than 1e-4·max(|λ|, floor) with ρ₁ = 1 (to 1e-6)
    halfway are such a pair; two genuine crossings have ρ₁ clearly below 1 between them.
    """
    x = np.unique(cands)
    if x.size < 2:
        return x
    mids = 0.5 * (x[:-1] + x[1:])
    gap = 1e-4 * np.maximum(np.maximum(np.abs(x[:-1]), np.abs(x[1:])), floor)
    close = np.diff(x) <= gap
    pair = np.zeros_like(close)
    if close.any():
        pair[close] = np.abs(rho1(mids[close]) - 1.0) <= 1e-6
    out, i = [], 0
    while i < x.size:
        if i + 1 < x.size and pair[i]:
            out.append(mids[i])
            i += 2
        else:
            out.append(x[i])
            i += 1
    # a cluster of zeros (a touch point beside a complex pair, as at −1/ρ for two-step
    # USAM) splits wider than that; its centre is a candidate too, so that the touch
    # check sees it (an extra candidate only splits a gap)
    wide = (np.diff(x) <= 1e-2 * np.maximum(np.maximum(np.abs(x[:-1]), np.abs(x[1:])), floor))
    return np.unique(np.concatenate([out, mids[wide & ~pair]]))


def _touch_refine(sv: _Solver, form: _Form, t0: float, w: float) -> float | None:
    """The double zero of a factor nearest t0, as a simple zero of its derivative, or
    None when no factor has a double zero in [t0 − w, t0 + w].

    Minimizing ρ₁ only locates a touch point to about √ε; each factor is a polynomial,
    so its interpolant on [t0 − w, t0 + w] is exact up to rounding and the zero of its
    derivative is accurate to about ε·w.
    """
    degs = sv.factor_degrees(form.degree)
    x = _cheb_nodes(2 * max(degs) + 2)
    qv = None
    if form.q is not None:
        qv = np.polynomial.chebyshev.chebval((t0 + w * x) / form.scale, form.q)
    F = sv.factor_samples(t0 + w * x, qv)
    if not np.all(np.isfinite(F)):
        return None
    best: float | None = None
    for j, deg in enumerate(degs):
        if deg == 0:
            continue
        coef = np.polynomial.chebyshev.chebfit(x, F[:, j], deg)
        if not np.any(coef):
            continue
        coef = np.polynomial.chebyshev.chebtrim(coef, 1e-14 * np.max(np.abs(coef)))
        dcoef = np.polynomial.chebyshev.chebder(coef)
        if dcoef.size < 2:
            continue
        roots = np.polynomial.chebyshev.chebroots(dcoef)
        real = roots[(np.abs(roots.imag) <= 1e-6) & (np.abs(roots.real) <= 1.0)].real
        # a double zero: the factor (nearly) vanishes where its derivative does
        vals = np.abs(np.polynomial.chebyshev.chebval(real, coef))
        real = real[vals <= 1e-6 * np.max(np.abs(coef))]
        for r in real:
            if best is None or abs(r) < abs(best):
                best = float(r)
    return None if best is None else float(t0 + w * best)


def _classify(sv: _Solver, pts: np.ndarray, poles: np.ndarray, left: float, right: float,
              refine: Callable[[float, float], float | None] | None, tols: dict
              ) -> list[tuple[float, float]]:
    """The filter from sorted candidate points: gaps classified by their midpoints.

    ``left``/``right`` are test points beyond every candidate; when ρ₁ ≤ 1 there the
    filter reaches −∞/+∞ (no candidate beyond means ρ₁ − 1 keeps its sign).
    """
    mids = 0.5 * (pts[:-1] + pts[1:])
    anchors = np.concatenate([[left], mids, [right]])
    vals = sv.rho(anchors) - 1.0
    flags = vals <= 0.0
    is_pole = np.isin(pts, poles)
    # every crossing refined at once (one batched ρ₁ per iteration)
    cross = np.flatnonzero(flags[1:] != flags[:-1])
    a, b, fa, fb = anchors[cross], anchors[cross + 1], vals[cross], vals[cross + 1]
    # the candidate between the anchors is the crossing to ~1e-12: bracket it tightly
    # where ρ₁ − 1 changes sign there (ρ₁ = |μ| has kinks farther away)
    p = pts[cross]
    d = 1e-9 * np.maximum(np.abs(p), np.abs(pts).max(initial=0.0) * 1e-6) + tols["xtol"]
    lo, hi = np.maximum(p - d, a), np.minimum(p + d, b)
    if cross.size:
        f = sv.rho(np.concatenate([lo, hi])) - 1.0
        flo, fhi = f[:cross.size], f[cross.size:]
        tight = ((flo <= 0) == (fa <= 0)) & ((fhi <= 0) == (fb <= 0)) & ((flo <= 0) != (fhi <= 0))
        a, b = np.where(tight, lo, a), np.where(tight, hi, b)
        fa, fb = np.where(tight, flo, fa), np.where(tight, fhi, fb)
    roots = dict(zip(cross.tolist(), _roots_batched(sv, a, b, fa, fb, tols).tolist()))
    intervals: list[tuple[float, float]] = []
    start: float | None = -math.inf if flags[0] else None
    for i in range(1, len(anchors)):
        a, b, fa, fb = anchors[i - 1], anchors[i], flags[i - 1], flags[i]
        if fa != fb:  # a crossing between anchors a and b
            root = roots[i - 1]
            if fb:
                start = root
            else:
                assert start is not None
                intervals.append((start, root))
                start = None
        elif not fa:  # both outside: the filter may touch 1 in between (isolated point)
            p = None if refine is None else float(pts[i - 1])
            if p is not None and is_pole[i - 1]:
                continue
            intervals.extend(_touch_points(sv.f1, refine, a, p, b, tols))
    if start is not None:
        intervals.append((start, math.inf))
    return _dedupe_points(intervals)


def _roots_batched(sv: _Solver, a: np.ndarray, b: np.ndarray, fa: np.ndarray,
                   fb: np.ndarray, tols: dict) -> np.ndarray:
    """Zeros of ρ₁ − 1 in each bracket [aₖ, bₖ] (signs of f differ), all at once.

    Illinois regula falsi, with a bisection step every third iteration and wherever f
    is not finite (so each bracket at least halves every three iterations), until the
    bracket is below xtol + rtol·|x|: the tolerances of Brent's method, in a handful of
    batched evaluations instead of one ``step`` call per evaluation.
    """
    a, b = a.astype(float).copy(), b.astype(float).copy()
    fa = np.where(np.isfinite(fa), fa, np.inf)
    fb = np.where(np.isfinite(fb), fb, np.inf)
    last = np.zeros(a.size)
    xtol, rtol = tols["xtol"], tols["rtol"]
    for it in range(200):
        width = np.abs(b - a)
        active = (width > xtol + rtol * np.maximum(np.abs(a), np.abs(b))) & (fa != 0) & (fb != 0)
        if not active.any():
            break
        with np.errstate(all="ignore"):
            c = (a * fb - b * fa) / (fb - fa)
        bisect = (it % 3 == 2) | ~np.isfinite(c) | (c <= np.minimum(a, b)) | (
            c >= np.maximum(a, b))
        c = np.where(bisect, 0.5 * (a + b), c)
        idx = np.flatnonzero(active)
        fc = sv.rho(c[idx]) - 1.0
        fc = np.where(np.isfinite(fc), fc, np.inf)
        same_a = (fc > 0) == (fa[idx] > 0)
        ia, ib = idx[same_a], idx[~same_a]
        # Illinois: halve the stale end's value when the same end moves twice
        fb[ia] = np.where(last[ia] == 1, fb[ia] / 2, fb[ia])
        a[ia], fa[ia], last[ia] = c[ia], fc[same_a], 1
        fa[ib] = np.where(last[ib] == -1, fa[ib] / 2, fa[ib])
        b[ib], fb[ib], last[ib] = c[ib], fc[~same_a], -1
    return np.where(fa == 0, a, np.where(fb == 0, b, 0.5 * (a + b)))


def _dedupe_points(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Isolated points within 1e-9 (relative) of each other or of an interval: one point."""
    ivs = sorted(intervals)
    out: list[tuple[float, float]] = []
    for lo, hi in ivs:
        if out:
            plo, phi = out[-1]
            tol = 1e-9 * max(abs(phi), abs(lo), 1e-300)
            if lo - phi <= tol and (lo == hi or plo == phi):
                out[-1] = (plo, hi) if lo < hi or plo < phi else (plo, phi)
                if plo == phi and lo < hi:
                    out[-1] = (plo, hi)
                continue
        out.append((lo, hi))
    return out


def _root(f: Callable[[float], float], a: float, b: float, tols: dict) -> float:
    """Brent's root of f in [a, b]; the bracket midpoint if f does not change sign."""
    try:
        return float(brentq(f, a, b, **tols))
    except (ValueError, RuntimeError):
        return 0.5 * (a + b)


def _touch_points(f1: Callable[[float], float],
                  refine: Callable[[float, float], float | None] | None,
                  a: float, p: float | None, b: float, tols: dict
                  ) -> list[tuple[float, float]]:
    """Where ρ₁ dips to ≤ 1 between two outside anchors: an isolated point or narrow band.

    ``p`` is the candidate between the anchors (None in the fallback scan, where the dip
    is searched by bounded minimization). An isolated point is accepted where a factor
    has a double zero and ρ₁ = 1 there (to 1e-9), or where ρ₁ = 1 to rounding; a dip of
    ρ₁ to 1 + 1e-11 without a double zero (tiny steps make ρ₁ ≈ 1 everywhere) is not.
    """
    if p is None:
        res = minimize_scalar(f1, bounds=(a, b), method="bounded",
                              options={"xatol": tols["xtol"] + tols["rtol"] * max(abs(a), abs(b))})
        t0, v0 = float(res.x), float(res.fun)
        if v0 < -1e-7:
            return [(_root(f1, a, t0, tols), _root(f1, t0, b, tols))]
        return [(t0, t0)] if v0 <= 1e-9 else []
    v0 = f1(p)
    if v0 < -1e-7:  # a genuine narrow band
        return [(_root(f1, a, p, tols), _root(f1, p, b, tols))]
    if refine is not None and v0 <= 1.0:
        t = refine(p, 0.5 * min(p - a, b - p))
        if t is not None and a < t < b:
            v = f1(t)
            if v < -1e-7:
                return [(_root(f1, a, t, tols), _root(f1, t, b, tols))]
            if v <= 1e-9:
                return [(t, t)]
    return [(p, p)] if v0 <= 1e-14 else []


def _scan(sv: _Solver, s0: float, tols: dict) -> Region:
    """Logarithmic scan of ±s₀·[10⁻⁸, 10⁸] (uncertified): ρ₁ on the grid in one batch,
    crossings refined by batched bisection, and dips of ρ₁ to ≤ 1 searched only around the
    grid's local minima of ρ₁ above 1."""
    top = min(s0 * 10.0 ** _FALLBACK_DECADES, _BIG)
    pos = np.geomspace(max(s0 * 10.0 ** -_FALLBACK_DECADES, 1e-300), top, 2000)
    grid = np.concatenate([-pos[::-1], [0.0], pos])
    v = sv.rho(grid) - 1.0
    v = np.where(np.isfinite(v), v, np.inf)
    inside = v <= 0
    # every crossing refined at once: batched bisection (60 halvings of each cell)
    cells = np.flatnonzero(inside[1:] != inside[:-1])
    a, b = grid[cells].copy(), grid[cells + 1].copy()
    a_in = inside[cells]
    for _ in range(60):
        mid = 0.5 * (a + b)
        m_in = sv.rho(mid) <= 1.0
        same = m_in == a_in
        a, b = np.where(same, mid, a), np.where(same, b, mid)
    roots = dict(zip(cells.tolist(), (0.5 * (a + b)).tolist()))
    intervals: list[tuple[float, float]] = []
    start = grid[0] if inside[0] else None
    for i in range(1, grid.size):
        if inside[i] and start is None:
            start = roots[i - 1]
        if not inside[i] and start is not None:
            intervals.append((start, roots[i - 1]))
            start = None
    if start is not None:
        intervals.append((start, grid[-1]))
    # dips between grid points: local minima of ρ₁ − 1 > 0
    mins = np.flatnonzero((v[1:-1] > 0) & (v[1:-1] <= v[:-2]) & (v[1:-1] <= v[2:])) + 1
    for i in mins[np.argsort(v[mins])][:20]:
        intervals.extend(_touch_points(sv.f1, None, grid[i - 1], None, grid[i + 1], tols))
    return Region(_dedupe_points(intervals))


def derive(opt: Optimizer, *, xtol: float | None = None, rtol: float = 1e-12) -> Derivation:
    """The filter {λ : ρ₁(λ) ≤ 1} computed from ``opt.step`` alone, with its certificate.

    See the module docstring for the method. Never raises numpy/scipy errors: what
    cannot be solved exactly is returned with ``certified=False`` and a note.

    Args:
        xtol: absolute tolerance of the boundary points (default 1e-15 × the scale of
            the map); it only matters for boundary points at or near 0.
        rtol: tolerance of each boundary point relative to its own size.

    Raises:
        NotDifferentiableError: the map has no linearization at the fixed point (sam).
        OptimizerError: the optimizer's ``init``/``step`` raised.
    """
    moved = rescaled(opt)
    if moved is not None:
        # at extreme hyperparameters floats do not resolve the map (ρλ²x underflows,
        # every step saturates a preconditioner): derive where they do, scale back
        inner = derive(moved.optimizer, rtol=rtol,
                       xtol=None if xtol is None else float(moved.up(xtol)))
        return _scaled_back(inner, moved)
    sv = _Solver(opt)
    try:
        # overflow at far λ (Adam at ε = 1e308, α = 5e-324; products of eigenvalues
        # near 1e308) gives non-finite samples, which are handled as unresolved, not warnings
        with np.errstate(all="ignore"):
            return _derive(sv, xtol, rtol)
    except (NotDifferentiableError, OptimizerError):
        raise
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        # last resort: a scan, said to be uncertified
        s0 = 1.0
        tols = {"xtol": 1e-15 if xtol is None else xtol,
                "rtol": max(rtol, 4 * np.finfo(float).eps), "maxiter": 500}
        with np.errstate(all="ignore"):
            region = _scan(sv, s0, tols)
        return Derivation(region, "scan", False, (-math.inf, math.inf), None, sv.differences,
                          (*sv.notes, f"exact derivation failed ({type(exc).__name__}: "
                                      f"{exc}); logarithmic scan of ±[1e-8, 1e8]"))


def _scaled_back(d: Derivation, moved: Rescaled) -> Derivation:
    """A derivation on the rescaled set-up, as one of the original (λ = 2⁻ᴷλ', exact
    unless it underflows)."""
    top = sys.float_info.max

    def down(x: float) -> float:  # a finite point beyond the floats is the last float
        with np.errstate(all="ignore"):
            y = moved.down(x)
        return y if math.isfinite(y) or not math.isfinite(x) else math.copysign(top, y)

    region = Region([(down(a), down(b)) for a, b in d.region.intervals])
    rng = (down(d.certified_range[0]), down(d.certified_range[1]))
    note = (f"derived on {moved.describe()} and scaled back by 2^{-moved.octaves}: at the "
            "given hyperparameters floats do not resolve the map")
    return Derivation(region, d.method, d.certified, rng, d.degree, d.differences,
                      (note, *d.notes))


def _derive(sv: _Solver, xtol: float | None, rtol: float) -> Derivation:
    opt = sv.opt
    s0, dmax, J_s0 = _natural_scale(opt)
    sv.check_differentiable(s0)
    if 0.0 < dmax < 1e-6:  # Jac G moves by (almost) nothing over every float λ
        r0 = float(sv.rho(np.zeros(1))[0])
        region = Region([(-math.inf, math.inf)]) if r0 <= 1.0 else Region()
        if abs(r0 - 1.0) > 10 * dmax + 1e-12:  # ρ₁ stays on one side of 1
            return Derivation(region, "constant", True, (-math.inf, math.inf), (0, 0),
                              sv.differences, tuple(sv.notes))
        return Derivation(region, "constant", False, (-_BIG, _BIG), None, sv.differences,
                          (*sv.notes, f"Jac G changes by at most {dmax:.3g} over every float "
                                      f"λ and ρ₁(0) = {r0!r}: the filter is not resolved"))
    with np.errstate(all="ignore"):
        sv.balance(s0, J_s0)
    scales = sorted({min(max(s0 * k, 1e-300), _BIG) for k in _LADDER})
    with np.errstate(all="ignore"):
        forms = _forms(sv, scales)
    sv.detect_unit(np.array([-2.7, -0.6, 0.0, 0.3, 1.3, 3.1]) * s0)
    # (the ladder stops at 1e-300: a filter below it, as Adam's [0, 6.349e-311] at
    # α = 1e308, ε = 1e-5, needs boundary points to the subnormal spacing)
    tols = {"xtol": (1e-15 * scales[0] if scales[0] > 1e-300 else 5e-324) if xtol is None
            else xtol,
            "rtol": max(rtol, 4 * np.finfo(float).eps), "maxiter": 500}

    if any(f is None for f in forms):
        # not polynomial or rational at some scale: scan, uncertified
        bad = [s for s, f in zip(scales, forms) if f is None]
        ok = [s for s, f in zip(scales, forms) if f is not None and s < bad[0]]
        with np.errstate(all="ignore"):
            region = _scan(sv, s0, tols)
        top = min(s0 * 10.0 ** _FALLBACK_DECADES, _BIG)
        return Derivation(region, "scan", False, (-top, top), None, sv.differences,
                          (*sv.notes, f"Jac G is not polynomial or rational in λ at scale "
                                      f"{bad[0]:.3g}" + (f" (it is below {ok[-1]:.3g})" if ok
                                                         else "")
                           + f"; logarithmic scan of ±[{s0 * 1e-8:.3g}, {top:.3g}] may miss "
                             "narrow bands and isolated points"))
    assert all(f is not None for f in forms)
    fs: list[_Form] = [f for f in forms if f is not None]
    rational = any(f.kind == "rational" for f in fs)
    with np.errstate(all="ignore"):
        if rational:
            return _derive_rational(sv, s0, fs, tols)
        return _derive_polynomial(sv, s0, fs, tols)


def _derive_polynomial(sv: _Solver, s0: float, fs: list[_Form], tols: dict) -> Derivation:
    degree = max(f.degree for f in fs)
    top = fs[-1].scale
    L = None if degree == 0 else _stability_bound(sv, degree, [f.scale for f in fs])
    if L is None:  # ρ₁ does not depend on λ
        r0 = float(sv.rho(np.zeros(1))[0])
        region = Region([(-math.inf, math.inf)]) if r0 <= 1.0 else Region()
        if abs(r0 - 1.0) <= 1e-9:  # ρ₁ = 1 to rounding: which side is not resolved
            return Derivation(region, "constant", False, (-top, top), (degree, 0),
                              sv.differences, (*sv.notes, f"ρ₁ = {r0!r} for every λ seen: "
                                               "the side of 1 is not resolved"))
        if sv.unit:  # heavy ball at α = 5e-324: 1 − αλ is 1 for every float λ it saw
            return Derivation(region, "constant", False, (-top, top), (degree, 0),
                              sv.differences, (*sv.notes, "Jac G does not move with λ in "
                                               "floats, so a deflated unit eigenvalue may be "
                                               "a λ-dependent one below resolution: the "
                                               "filter is not resolved"))
        return Derivation(region, "constant", True, (-math.inf, math.inf), (degree, 0),
                          sv.differences, tuple(sv.notes))
    notes = list(sv.notes)
    reach = top  # the form of Jac G is verified on [−reach, reach]
    if L > top:  # the bound reaches beyond the ladder: check the form there too
        far = _forms(sv, [L])[0]
        if far is not None and far.kind == "poly" and far.degree <= degree:
            reach = L
        else:
            notes.append(f"the form of Jac G was verified up to |λ| = {top:.3g} only")
    # zeros of N at every scale up to L, each kept where its scale resolves it
    cand_scales = [f for f in fs if f.scale < L] + [_Form("poly", degree, L)]
    cands: list[np.ndarray] = []
    prev = 0.0
    # the factors at every scale from one batched linearization
    degs = sv.factor_degrees(degree)
    x = _cheb_nodes(2 * max(degs) + 2)
    F = sv.factor_samples(np.concatenate([f.scale * x for f in cand_scales]), None)
    for k, f in enumerate(cand_scales):
        z = f.scale * _factor_roots(x, F[k * x.size:(k + 1) * x.size], degs)
        cands.append(z[np.abs(z) > prev * (1 + 1e-6)] if prev else z)
        prev = f.scale
    pts = _merge_split_double_zeros(np.concatenate(cands), sv.rho, cand_scales[0].scale)
    pts = _with_zero(np.unique(np.concatenate([[-L, L], pts])), cand_scales[0].scale)
    form = _Form("poly", degree, L)

    def refine(t0: float, w: float) -> float | None:
        return _touch_refine(sv, form, t0, w)

    out = L * 1.01 + 1e-12 * s0
    region = Region(_classify(sv, pts, np.array([]), -out, out, refine, tols))
    return Derivation(region, "polynomial", True, (-reach, reach), (degree, 0),
                      sv.differences, tuple(notes))


def _derive_rational(sv: _Solver, s0: float, fs: list[_Form], tols: dict) -> Derivation:
    d = max(f.degree for f in fs if f.kind == "rational")
    inner = [f for f in fs if f.scale <= s0 * _RATIONAL_TOP]
    S = inner[-1].scale
    x = _cheb_nodes(_NFIT)
    cands: list[np.ndarray] = []
    poles: list[np.ndarray] = []
    prev = 0.0
    for f in inner:
        if f.kind == "poly":  # no pole near this scale: N is a polynomial here
            form = f
        else:  # refit with the common degree d
            Y = sv.J(f.scale * x).reshape(x.size, -1)
            q, _ = _rational_fit(Y, x, d)
            form = _Form("rational", d, f.scale, q)
        z, p = _candidates_at(sv, f.scale, form)
        cands.append(z[np.abs(z) > prev * (1 + 1e-6)] if prev else z)
        poles.append(p[np.abs(p) > prev * (1 + 1e-6)] if prev else p)
        prev = f.scale
    last = inner[-1]
    if last.kind == "poly" or last.degree != d:
        Y = sv.J(S * x).reshape(x.size, -1)
        last = _Form("rational", d, S, _rational_fit(Y, x, d)[0])
    zo, po = _outer_candidates(sv, S, last)
    cands.append(zo[np.abs(zo) > S])
    poles.append(po[np.abs(po) > S])
    pole_pts = np.unique(np.concatenate(poles))
    allc = np.concatenate([*cands, pole_pts])
    pts = _merge_split_double_zeros(allc, sv.rho, inner[0].scale)
    pts = _with_zero(np.unique(np.concatenate([pts, pole_pts])), inner[0].scale)
    R = min(S / _T_MIN, _BIG)

    def refine(t0: float, w: float) -> float | None:
        sc = max(abs(t0) + w, inner[0].scale)
        Y = sv.J(sc * x).reshape(x.size, -1)
        q, _ = _rational_fit(Y, x, d)
        return _touch_refine(sv, _Form("rational", d, sc, q), t0, w)

    if pts.size == 0:
        pts = np.array([0.0])
    region = Region(_classify(sv, pts, pole_pts, -R, R, refine, tols))
    notes = list(sv.notes)
    if pole_pts.size:
        notes.append("Jac G has pole(s) at λ = " + ", ".join(f"{p:.6g}" for p in pole_pts[:5]))
    return Derivation(region, "rational", True, (-R, R), (d, d), sv.differences, tuple(notes))


@dataclass(frozen=True)
class FilterComparison:
    """Declared filter against derived filter, at floating-point resolution.

    Attributes:
        agree: the compared parts have the same intervals, endpoints within tolerance.
        declared, derived: the parts compared (clipped to the certified range).
        ignored: what was left out of the comparison and why (beyond the range the
            derivation certifies; bands narrower than the float grid at their location).
    """

    agree: bool
    declared: Region
    derived: Region
    ignored: tuple[str, ...] = ()


def compare_filters(declared: Region, derivation: Derivation, *, rtol: float = 1e-6,
                    filter_function: Callable[[np.ndarray], np.ndarray] | None = None
                    ) -> FilterComparison:
    """Compare a declared filter with a :class:`Derivation` (see :func:`_compare_filters`);
    ρ₁ probed at λ near ±1e308 or 1e-313 over- and underflows: that is handled (non-finite
    values are unresolved), not warned about."""
    with np.errstate(all="ignore"):
        return _compare_filters(declared, derivation, rtol=rtol,
                                filter_function=filter_function)


def _compare_filters(declared: Region, derivation: Derivation, *, rtol: float = 1e-6,
                     filter_function: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> FilterComparison:
    """Compare a declared filter with a :class:`Derivation` where that comparison means
    something.

    - Only the certified range [−R, R] of the derivation is compared (a band near −1/ρ
      for ρ far below 1e-9/R is not seen by it); features beyond it are listed as ignored.
    - A declared band whose width is at most 2 ulps of its location is not resolvable
      by any float eigenvalue; if the derived filter has nothing there and ρ₁ at it is
      1 to rounding (``filter_function`` given), it is ignored, with the reason.
    - Boundary points of the two filters match when they are within
      rtol·max(|e|, s) + 2 ulp + res(e) of each other, s the smallest significant
      |endpoint| and res(e) = 64ε/|dρ₁/dλ| the resolution of ρ₁ − 1 in λ at e (a tiny
      step makes ρ₁ − 1 ≈ α·p(λ) smaller than rounding near 0); membership must agree
      between every two clusters of matched boundary points.
    """
    lo, hi = derivation.certified_range
    ignored: list[str] = []

    def clip(region: Region, who: str) -> list[tuple[float, float]]:
        out = []
        for a, b in region.intervals:
            if b < lo or a > hi:
                ignored.append(f"{who} {Region([(a, b)])} lies beyond the range "
                               f"[{lo:.4g}, {hi:.4g}] the derivation certifies")
                continue
            out.append((max(a, lo), min(b, hi)))
        return out

    dec, der = clip(declared, "declared"), clip(derivation.region, "derived")
    ends = [abs(e) for iv in dec + der for e in iv if math.isfinite(e) and e != 0]
    # numerical zeros (a derived 2e-16 for a declared 0) do not set the floor
    floor = min((e for e in ends if e > 1e-9 * max(ends)), default=1.0)

    def rho1(lams: list[float]) -> np.ndarray:
        assert filter_function is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return np.asarray(filter_function(np.asarray(lams, dtype=float)), dtype=float)
            except (OptimizerError, NotDifferentiableError):
                return np.full(len(lams), np.nan)

    def tolerances(es: list[float]) -> dict[float, float]:
        """rtol·max(|e|, s) + 2 ulp + the resolution of ρ₁ − 1 at e (two batched calls)."""
        E = np.asarray(sorted(set(es)), dtype=float)
        base = rtol * np.maximum(np.abs(E), floor) + 2 * np.spacing(np.abs(E))
        if filter_function is None or E.size == 0:
            return dict(zip(E.tolist(), base.tolist()))
        cap = np.maximum(np.abs(E), floor)
        d = 1e-3 * cap
        res = np.zeros_like(E)
        for _ in range(2):  # the slope is measured over a span the noise cannot fake
            try:
                big = np.finfo(float).max  # E ± d stays a float at E ~ 1e308
                r = rho1(np.clip(np.concatenate([E - d, E + d]), -big, big).tolist())
            except (OptimizerError, NotDifferentiableError):
                break
            with np.errstate(all="ignore"):  # d ~ 1e-311 at λ ~ 1e-308: slope overflows
                slope = np.abs(r[E.size:] - r[:E.size]) / (2 * d)
                res = np.where(slope > 0, 64 * np.finfo(float).eps / slope, cap)
            res = np.minimum(np.nan_to_num(res, nan=0.0, posinf=0.0), cap)
            if np.all(res <= d):
                break
            d = np.minimum(np.maximum(d, 10 * res), cap)
        return dict(zip(E.tolist(), (base + res).tolist()))

    all_ends = [e for iv in dec + der for e in iv if math.isfinite(e)]
    tol_of = tolerances(all_ends)

    def tol(e: float) -> float:
        return tol_of.get(e) or tolerances([e])[e]

    kept = []
    for a, b in dec:
        if below_float_grid(a, b) and filter_function is not None:
            matched = any(abs(a - c) <= tol(a) or abs(b - d) <= tol(b) for c, d in der)
            if not matched:
                mid = 0.5 * a + 0.5 * b
                r1 = float(rho1([mid])[0])
                if not r1 > 1.0 + 1e-9:  # ρ₁ ≤ 1, or not resolved by finite differences
                    ignored.append(f"declared {Region([(a, b)])} is narrower than the float "
                                   f"grid at its location (ulp {math.ulp(mid):.3g}) and "
                                   + ("ρ₁ is not resolved there" if math.isnan(r1) else
                                      f"ρ₁ = {r1:.12g} there")
                                   + ": no float eigenvalue resolves it")
                    continue
        kept.append((a, b))
    A, B = Region(kept), Region(der)
    # clusters of boundary points within tolerance; each needs points of both filters
    pts = sorted({(e, 0) for e in A.boundary() if lo < e < hi}
                 | {(e, 1) for e in B.boundary() if lo < e < hi})
    tols = {e: tol(e) for e, _ in pts}  # (all cached)
    clusters: list[list[tuple[float, int]]] = []
    for e, who in pts:
        if clusters and e - clusters[-1][-1][0] <= max(tols[e], tols[clusters[-1][-1][0]]):
            clusters[-1].append((e, who))
        else:
            clusters.append([(e, who)])
    # a cluster with points of one filter only is a disagreement, unless ρ₁ is 1 to
    # rounding across it (a band or gap of ρ₁ − 1 below float resolution)
    agree = True
    for c in clusters:
        if {w for _, w in c} == {0, 1}:
            continue
        xs = [e for e, _ in c]
        xs += [0.5 * (a + b) for a, b in zip(xs, xs[1:])]
        if filter_function is not None and not np.any(np.abs(rho1(xs) - 1.0) > 1e-13):
            who = "declared" if c[0][1] == 0 else "derived"
            ignored.append(f"{who} boundary at {', '.join(f'{e:.6g}' for e, _ in c)}: ρ₁ is 1 "
                           "to rounding or not resolved there, so no float eigenvalue "
                           "decides it")
            continue
        agree = False
    # membership between and beyond the clusters
    probes = [0.5 * (c1[-1][0] + c2[0][0]) for c1, c2 in zip(clusters, clusters[1:])]
    if clusters:
        span = max(1.0, abs(clusters[0][0][0]), abs(clusters[-1][-1][0]))
        probes += [max(lo, clusters[0][0][0] - span), min(hi, clusters[-1][-1][0] + span)]
    else:
        probes += [0.0, max(lo, -1.0), min(hi, 1.0)]
    agree = agree and all(bool(A.contains(x)) == bool(B.contains(x)) for x in probes)
    return FilterComparison(bool(agree), A, B, tuple(ignored))


def derive_region(opt: Optimizer, *, xtol: float | None = None, rtol: float = 1e-12) -> Region:
    """The filter {λ : ρ₁(λ) ≤ 1} computed from ``opt.step`` alone.

    Exact (to rounding) when λ ↦ Jac G is a matrix polynomial (all built-ins and their
    momentum/extrapolation variants) or rational (Newton-type maps that solve with the
    Hessian; their filters may reach ±∞); see :func:`derive` for the method and for the
    range on which the result is certified. Anything else is scanned, and a
    :class:`DerivationWarning` says how the region was obtained and that it is not
    certified.

    Args:
        xtol: absolute tolerance of the boundary points (default 1e-15 × the map's scale).
        rtol: tolerance of each boundary point relative to its own size.

    Raises:
        NotDifferentiableError: the map has no linearization at the fixed point (sam).
    """
    res = derive(opt, xtol=xtol, rtol=rtol)
    if not res.certified:
        warnings.warn(f"{opt!r}: derived filter {res.region} is not certified: "
                      f"{res.describe()}", DerivationWarning, stacklevel=2)
    return res.region
