"""Eigenvalue filters: finite unions of closed intervals, and their exact construction.

A filter R ⊂ ℝ is the set of Hessian eigenvalues λ at which an optimizer's
per-eigenvalue linearization has spectral radius ≤ 1. Every filter of the built-in
optimizers is {λ : 0 ≤ α·p(λ) ≤ c} for a polynomial p, solved exactly here from the
roots of p and of α·p − c.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

Interval = tuple[float, float]

#: default relative tolerance of Region comparison
REGION_RTOL = 1e-9


def _as_interval(item: Any) -> Interval:
    try:
        lo, hi = item
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Region interval must be a pair (lo, hi) of reals, got {item!r}") from exc
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"Region interval has NaN endpoint: {item!r}")
    if lo > hi:
        raise ValueError(f"Region interval has lo > hi: {item!r}")
    return lo, hi


class Region:
    """A finite union of closed intervals of ℝ (isolated points are intervals (a, a)).

    Overlapping or touching intervals are merged; ``intervals`` is sorted.

    Example:
        >>> r = Region([(0, 2), (-3, -1), (5, 5)])
        >>> str(r)
        '[-3, -1] ∪ [0, 2] ∪ {5}'
        >>> r.contains([1.0, 4.0, 5.0]).tolist()
        [True, False, True]
    """

    __slots__ = ("intervals",)
    intervals: tuple[Interval, ...]

    def __init__(self, intervals: Iterable[Sequence[float]] = ()) -> None:
        items = sorted(_as_interval(it) for it in intervals)
        merged: list[list[float]] = []
        for lo, hi in items:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        object.__setattr__(self, "intervals", tuple((lo, hi) for lo, hi in merged))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Region is immutable")

    # -- queries ---------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not self.intervals

    @property
    def isolated_points(self) -> tuple[float, ...]:
        return tuple(lo for lo, hi in self.intervals if lo == hi)

    @property
    def scale(self) -> float:
        """Largest finite |endpoint| (at least 1e-300): the region's natural size."""
        ends = [abs(e) for iv in self.intervals for e in iv if math.isfinite(e)]
        return max(ends + [1e-300])

    def contains(self, lams: Any) -> np.ndarray:
        """Vectorized membership: True where λ lies in the closed set."""
        lam = np.asarray(lams, dtype=float)
        out = np.zeros(lam.shape, dtype=bool)
        for lo, hi in self.intervals:
            out |= (lam >= lo) & (lam <= hi)
        return out

    def margin(self, lams: Any) -> np.ndarray:
        """Signed distance to the boundary: +dist inside, −dist outside (0 on the boundary)."""
        lam = np.asarray(lams, dtype=float)
        if not self.intervals:
            return np.full(lam.shape, -np.inf)
        ends = np.array([e for iv in self.intervals for e in iv])
        finite = ends[np.isfinite(ends)]
        if finite.size:
            dist = np.min(np.abs(lam[..., None] - finite), axis=-1)
        else:
            dist = np.full(lam.shape, np.inf)
        return np.where(self.contains(lam), dist, -dist)

    def clip(self, lo: float, hi: float) -> Region:
        """The region intersected with [lo, hi] (an unbounded interval is cut there)."""
        out = [(max(a, lo), min(b, hi)) for a, b in self.intervals]
        return Region([(a, b) for a, b in out if a <= b])

    @property
    def bounded(self) -> bool:
        """True when no interval reaches ±∞."""
        return all(math.isfinite(e) for iv in self.intervals for e in iv)

    def boundary(self) -> tuple[float, ...]:
        """The finite boundary points, sorted."""
        return tuple(sorted({e for iv in self.intervals for e in iv if math.isfinite(e)}))

    # -- comparison / display ------------------------------------------------------
    def isclose(self, other: Region, *, rtol: float = REGION_RTOL, atol: float = 0.0) -> bool:
        """Same number of intervals with endpoints equal within atol + rtol·scale."""
        if len(self.intervals) != len(other.intervals):
            return False
        tol = atol + rtol * max(self.scale, other.scale, 1e-300)
        return all(
            _close(a, b, tol) and _close(c, d, tol)
            for (a, c), (b, d) in zip(self.intervals, other.intervals)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and self.isclose(other)

    def __hash__(self) -> int:
        return hash(len(self.intervals))

    def __str__(self) -> str:
        """Endpoints with as many significant digits (at least 4) as it takes to tell each
        one from its neighbours; an endpoint within 1e-12 of 0 relative to the gap to its
        nearest neighbour prints as 0 (a derived 2e-16 is a numerical zero). Intervals
        reaching ±∞ print half-open: ``(-∞, -2] ∪ [0, ∞)``.

        Example:
            >>> str(Region([(-1e13 - 4, -1e13), (0, 3.99999999999840)]))
            '[-1.0000000000004e+13, -1.0000000000000e+13] ∪ [0, 4]'
        """
        if not self.intervals:
            return "∅"
        ends = sorted({e for iv in self.intervals for e in iv if math.isfinite(e)})
        shown = {x: x for x in ends}
        for i, x in enumerate(ends):
            gaps = [abs(x - ends[k]) for k in (i - 1, i + 1) if 0 <= k < len(ends)]
            if x != 0 and gaps and abs(x) <= 1e-12 * min(gaps):
                shown[x] = 0.0
        digits = {x: 4 for x in ends}
        for a, b in zip(ends, ends[1:]):
            p = 4
            while p < 17 and _fmt(shown[a], p) == _fmt(shown[b], p):
                p += 1
            digits[a], digits[b] = max(digits[a], p), max(digits[b], p)

        def fmt(x: float) -> str:
            return _fmt(x) if not math.isfinite(x) else _fmt(shown[x], digits[x])

        def show(lo: float, hi: float) -> str:
            if lo == hi:
                return f"{{{fmt(lo)}}}"
            left = "(" if math.isinf(lo) else "["
            right = ")" if math.isinf(hi) else "]"
            return f"{left}{fmt(lo)}, {fmt(hi)}{right}"

        return " ∪ ".join(show(lo, hi) for lo, hi in self.intervals)

    def __repr__(self) -> str:
        return f"Region({[tuple(iv) for iv in self.intervals]!r})"

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> list[list[float | str]]:
        """JSON-safe list of [lo, hi]; infinities are written as "inf"/"-inf"."""
        return [[_enc(lo), _enc(hi)] for lo, hi in self.intervals]

    @classmethod
    def from_json(cls, data: Any) -> Region:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"Region JSON is not valid JSON ({exc}): {data!r:.100}"
                                 ) from exc
        if not isinstance(data, list):
            raise ValueError(f"Region JSON must be a list of [lo, hi] pairs, got {data!r}")
        return cls([(_dec(lo), _dec(hi)) for lo, hi in (_as_pair(x) for x in data)])


def below_float_grid(a: float, b: float) -> bool:
    """Is [a, b] at most 2 ulps wide where it lies: no float eigenvalue resolves it (USAM's
    band [−1/ρ − 4, −1/ρ] at ρ = 2.2e-308 is one float at −4.5e307)."""
    return (math.isfinite(a) and math.isfinite(b)
            and b - a <= 2 * math.ulp(max(abs(a), abs(b))))


def _as_pair(x: Any) -> tuple[Any, Any]:
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError(f"Region JSON interval must be [lo, hi], got {x!r}")
    return x[0], x[1]


def _close(a: float, b: float, tol: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


def _fmt(x: float, digits: int = 4) -> str:
    """x with ``digits`` significant digits (``digits`` decimals in exponent form from 1e4
    on)."""
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if abs(x) < 1e4:
        return f"{x:.{digits}g}"
    return f"{x:.{digits}e}"


def _enc(x: float) -> float | str:
    return ("inf" if x > 0 else "-inf") if math.isinf(x) else x


def _dec(x: Any) -> float:
    if x in ("inf", "-inf", "Infinity", "-Infinity"):
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"Region JSON endpoint must be a number, got {x!r}")
    return float(x)


# -- exact filters ---------------------------------------------------------------------

def _polish(p: np.polynomial.Polynomial, r: float) -> float:
    """Newton-polish a simple real root r of p (a few steps, keeps r if it diverges)."""
    dp = p.deriv()
    for _ in range(6):
        d = dp(r)
        if d == 0:
            break
        nr = r - p(r) / d
        if not math.isfinite(nr):
            break
        r = nr
    return float(r)


def polynomial_filter(p: Sequence[float], upper: float, zeros: Sequence[float] | None = None
                      ) -> Region:
    """Exact {λ : 0 ≤ p(λ) ≤ upper} for a non-constant polynomial p and upper > 0.

    Args:
        p: coefficients of p in increasing degree.
        upper: the bound c > 0.
        zeros: the real zeros of p if known in closed form (needed for multiple zeros,
            which floating-point root finders only resolve to √ε).

    Every real zero of p and of p − upper belongs to the set (p is 0 or upper there);
    between consecutive such points p − 0 and p − upper keep their signs, so a
    midpoint test decides each gap. Isolated points (double zeros) come out naturally.
    """
    poly = np.polynomial.Polynomial(np.asarray(p, dtype=float)).trim()
    if poly.degree() < 1:
        raise ValueError("polynomial_filter needs a non-constant polynomial")
    if not upper > 0:
        raise ValueError(f"upper must be > 0, got {upper!r}")

    def real_roots(q: np.polynomial.Polynomial) -> list[float]:
        rts = q.roots()
        scale = max(1.0, float(np.max(np.abs(rts)))) if rts.size else 1.0
        return [_polish(q, float(r.real)) for r in rts if abs(r.imag) <= 1e-12 * scale]

    pts = set(real_roots(poly - upper))
    pts |= {float(z) for z in zeros} if zeros is not None else set(real_roots(poly))
    breaks = sorted(pts)

    def inside(x: float) -> bool:
        v = poly(x)
        return 0.0 <= v <= upper

    intervals: list[Interval] = [(b, b) for b in breaks]
    intervals += [(a, b) for a, b in zip(breaks, breaks[1:]) if inside(0.5 * (a + b))]
    return Region(intervals)


def interval_filter(lo: float, hi: float) -> Region:
    """The single interval [lo, hi]."""
    return Region([(lo, hi)])
