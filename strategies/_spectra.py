"""Eigenvalue spectra placed relative to a Region, and rotations that shrink to I."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from dynverify.regions import Region

Intervals = list[tuple[float, float]]

PLACEMENTS = ("inside", "outside", "mixed")


def margin_scale(region: Region) -> float:
    """s = min(region.scale, narrowest bounded non-degenerate interval): the unit of margins.

    Decidability near a boundary point depends on how fast the filter polynomial moves
    across the adjacent interval, i.e. on that interval's width, not on how far the
    interval lies from 0 (USAM's negative band at −1/ρ is narrow and far for small ρ).
    For a single interval [0, c] this is c = region.scale.
    """
    widths = [hi - lo for lo, hi in region.intervals if lo < hi and math.isfinite(hi - lo)]
    scale = region.scale
    if scale < 1e-100:  # no finite nonzero endpoint: fall back to unit scale
        scale = min(widths, default=1.0)
    return min([scale, *widths])


def boundary_unit(region: Region, b: float) -> float:
    """The unit of relative distances at a boundary point b of ``region``: |b|, or at
    b = 0 the width of the widest bounded interval of R that ends at 0 (the interval
    whose filter function crosses 1 there), else :func:`margin_scale`.

    Example:
        >>> boundary_unit(Region([(-2.1, -2.0), (0.0, 4.0)]), 0.0)   # not the band's 0.1
        4.0
    """
    if b != 0.0:
        return abs(b)
    widths = [hi - lo for lo, hi in region.intervals
              if (lo == 0.0 or hi == 0.0) and hi > lo and math.isfinite(hi - lo)]
    return max(widths) if widths else margin_scale(region)


# -- interval-set helpers (sorted disjoint closed intervals) --------------------------

def _clip(ivs: Intervals, lo: float, hi: float) -> Intervals:
    out = [(max(a, lo), min(b, hi)) for a, b in ivs]
    return [(a, b) for a, b in out if a <= b]


def _remove_open(ivs: Intervals, a: float, b: float) -> Intervals:
    """ivs minus the open interval (a, b)."""
    out: Intervals = []
    for lo, hi in ivs:
        if hi <= a or lo >= b:
            out.append((lo, hi))
            continue
        if lo <= a:
            out.append((lo, a))
        if hi >= b:
            out.append((b, hi))
    return out


def _complement(region: Region, lo: float, hi: float) -> Intervals:
    """Closure of [lo, hi] minus the region."""
    out: Intervals = []
    cur = lo
    for a, b in region.intervals:
        if a > cur:
            out.append((cur, min(a, hi)))
        cur = max(cur, b)
    if cur < hi:
        out.append((cur, hi))
    return _clip(out, lo, hi)


def _by_distance_to_zero(ivs: Intervals) -> Intervals:
    # shrinking moves the interval index to 0, so the first interval is the simplest
    return sorted(ivs, key=lambda iv: 0.0 if iv[0] <= 0.0 <= iv[1] else min(map(abs, iv)))


def finite_floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats in [lo, hi]: no NaN, no ±∞, and no subnormals unless [lo, hi] holds nothing
    else (gradient descent at α = 1.8e308 has the filter [0, 1.1e-308]; Hypothesis 6.170
    crashes with a bare IndexError, not InvalidArgument, when asked for normal floats in a
    range of subnormals only)."""
    tiny = sys.float_info.min
    only_subnormal = -tiny < lo and hi < tiny and not lo <= 0.0 <= hi
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                     allow_subnormal=only_subnormal)


def _draw_in(draw: Any, ivs: Intervals) -> float:
    i = draw(st.integers(0, len(ivs) - 1)) if len(ivs) > 1 else 0
    lo, hi = ivs[i]
    return float(draw(finite_floats(lo, hi)))


# -- validation -------------------------------------------------------------------------

def _check_region(region: Any) -> Region:
    if not isinstance(region, Region):
        raise InvalidArgument(
            f"region must be a dynverify.Region, got {region!r} (an optimizer without a "
            "declared filter has region=None: derive one with dynverify.derive_region)")
    return region


def _check_dims(min_dim: Any, max_dim: Any) -> None:
    for name, v in (("min_dim", min_dim), ("max_dim", max_dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidArgument(f"{name} must be an integer >= 1, got {v!r}")
    if min_dim > max_dim:
        raise InvalidArgument(f"min_dim={min_dim} must be <= max_dim={max_dim}")


def _check_real(name: str, v: Any, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
    if ok:
        v = float(v)
        ok = (math.isfinite(v) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise InvalidArgument(f"{name} must be a real number in {rng}, got {v!r}")
    return float(v)


def _mixed_set(region: Region, s: float, ms: float, window: float,
               allow_negative: bool) -> Intervals:
    W = window * max(region.scale, s)
    ivs = _remove_open([(-W, W)], -ms, ms)  # nonzero eigenvalues keep |λ| ≥ margin·s
    return ivs if allow_negative else _clip(ivs, 0.0, math.inf)


def placement_sets(region: Region, *, margin: float = 0.05, window: float = 3.0,
                   allow_negative: bool = True) -> dict[str, Intervals]:
    """The closed sets each nonzero eigenvalue is drawn from, per placement.

    With s = :func:`margin_scale` and W = window·max(region.scale, s): "inside" is
    {λ : dist(λ, ℝ∖R) ≥ margin·s} on non-degenerate intervals, "outside" is
    {|λ| ≤ W : dist(λ, R) ≥ margin·s}, "mixed" is [−W, W]; all exclude |λ| < margin·s.
    """
    s = margin_scale(region)
    ms = margin * s
    W = window * max(region.scale, s)
    mixed = _mixed_set(region, s, ms, window, allow_negative)
    inside = [(lo + ms, hi - ms) for lo, hi in region.intervals if lo + ms <= hi - ms]
    outside = _complement(region, -W, W)
    for b in region.boundary():
        outside = _remove_open(outside, b - ms, b + ms)
    sets = {"inside": _clip(inside, -W, W), "outside": outside}
    for key in sets:
        ivs = _remove_open(sets[key], -ms, ms)
        sets[key] = ivs if allow_negative else _clip(ivs, 0.0, math.inf)
    sets["mixed"] = mixed
    return {k: _by_distance_to_zero(v) for k, v in sets.items()}


def _draw_eigenvalues(draw: Any, dim: int, ivs: Intervals, allow_zero: bool) -> list[float]:
    """dim eigenvalues from the intervals ivs, each possibly an exact 0 when allowed."""
    return [0.0 if allow_zero and draw(st.booleans()) else _draw_in(draw, ivs)
            for _ in range(dim)]


@st.composite
def spectra(draw: Any, *, region: Region, placement: str = "inside", min_dim: int = 1,
            max_dim: int = 4, margin: float = 0.05, window: float = 3.0,
            allow_negative: bool = True, allow_zero: bool = False) -> tuple[float, ...]:
    """Eigenvalue tuples λ ∈ ℝᵈ placed relative to ``region`` R, with margin m·s.

    s = :func:`margin_scale` (R), W = window·max(R.scale, s). Every nonzero λᵢ has
    m·s ≤ |λᵢ| ≤ W (no subnormals); exact zeros only with ``allow_zero``.

    - "inside": every λᵢ ∈ R at distance ≥ m·s from ℝ∖R (isolated points of R are
      skipped: they cannot host an eigenvalue with a margin);
    - "outside": at least one λᵢ at distance ≥ m·s from R, the others "mixed";
    - "mixed": anything in [−W, W].

    Shrinks toward dimension ``min_dim``, no zeros, and simple values.

    Example:
        >>> from dynverify.optimizers import gradient_descent
        >>> s = spectra(region=gradient_descent(lr=0.1).region, placement="outside")
    """
    region = _check_region(region)
    if placement not in PLACEMENTS:
        raise InvalidArgument(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    _check_dims(min_dim, max_dim)
    margin = _check_real("margin", margin, 0.0, 0.5, lo_open=True, hi_open=True)
    window = _check_real("window", window, 1.0, 1e6, lo_open=True)
    if region.empty:
        if placement == "inside":
            raise InvalidArgument("region is empty: no spectrum can be placed inside it")
        region_for_scale = Region([(-1.0, 1.0)])
        s = margin_scale(region_for_scale)
        sets = placement_sets(region_for_scale, margin=margin, window=window,
                              allow_negative=allow_negative)
        sets["outside"] = sets["mixed"]
    else:
        s = margin_scale(region)
        sets = placement_sets(region, margin=margin, window=window,
                              allow_negative=allow_negative)
    ms = margin * s
    if placement == "inside" and allow_zero and not region.margin(0.0) >= ms:
        raise InvalidArgument(
            f"allow_zero=True with placement='inside', but 0 is not inside {region} with "
            f"margin {margin}·{s:.4g}")
    main = sets[placement]
    if not main:
        why = {"inside": "has no interval wider than 2·margin·scale"
                         + ("" if allow_negative else " on the positive axis (allow_negative)"),
               "outside": "leaves no room outside it within the window"}.get(placement, "")
        raise InvalidArgument(
            f"placement={placement!r} is impossible: region {region} {why} "
            f"(margin={margin}, scale={s:.4g}, window={window})")
    if placement == "outside" and not sets["mixed"]:
        raise InvalidArgument("no room for the other eigenvalues (allow_negative, window)")

    dim = draw(st.integers(min_dim, max_dim))
    others = sets["inside"] if placement == "inside" else sets["mixed"]
    lams = _draw_eigenvalues(draw, dim, others, allow_zero)
    if placement == "outside":
        lams[draw(st.integers(0, dim - 1))] = _draw_in(draw, main)
    return tuple(lams)


@st.composite
def boundary_spectra(draw: Any, *, region: Region, min_dim: int = 1, max_dim: int = 4,
                     band: float = 1e-9, margin: float = 0.05, window: float = 3.0,
                     allow_negative: bool = True, allow_zero: bool = False
                     ) -> tuple[float, ...]:
    """Eigenvalue tuples with at least one λᵢ ∈ [b − band·s, b + band·s], b ∈ ∂R.

    s = :func:`margin_scale` (R). The offset from b shrinks to 0 (λᵢ = b exactly) and
    b to the boundary point nearest 0; the other eigenvalues are drawn as by
    ``spectra(placement="mixed")``. For probing the undecidable band of a filter.
    """
    region = _check_region(region)
    _check_dims(min_dim, max_dim)
    band = _check_real("band", band, 0.0, 0.5)
    margin = _check_real("margin", margin, 0.0, 0.5, lo_open=True, hi_open=True)
    window = _check_real("window", window, 1.0, 1e6, lo_open=True)
    points = sorted((b for b in region.boundary() if allow_negative or b >= 0.0), key=abs)
    if not points:
        raise InvalidArgument(
            f"region {region} has no finite boundary point"
            + ("" if allow_negative else " >= 0 (allow_negative=False)"))
    s = margin_scale(region)
    others = placement_sets(region, margin=margin, window=window,
                            allow_negative=allow_negative)["mixed"]
    dim = draw(st.integers(min_dim, max_dim))
    lams = _draw_eigenvalues(draw, dim, others, allow_zero)
    b = points[draw(st.integers(0, len(points) - 1))] if len(points) > 1 else points[0]
    lo = 0.0 if (b == 0.0 and not allow_negative) else -band * s
    offset = draw(finite_floats(lo, band * s)) if band > 0 else 0.0
    lams[draw(st.integers(0, dim - 1))] = float(b + offset)
    return tuple(lams)


def givens_product(angles: Any, dim: int) -> np.ndarray:
    """∏_{i<j} G(i, j, θᵢⱼ) (pairs in lexicographic order): orthogonal, det 1, I at θ = 0."""
    Q = np.eye(dim)
    k = 0
    for i in range(dim):
        for j in range(i + 1, dim):
            c, s = math.cos(angles[k]), math.sin(angles[k])
            G = np.eye(dim)
            G[i, i] = G[j, j] = c
            G[i, j], G[j, i] = -s, s
            Q = Q @ G
            k += 1
    return Q


@st.composite
def rotations(draw: Any, dim: int) -> np.ndarray:
    """Q ∈ SO(d) as a product of d(d−1)/2 Givens rotations, angles θ ∈ [−π, π] → 0.

    Every rotation is reachable (Euler angles), and every angle shrinks to 0, so the
    minimal example is the identity.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise InvalidArgument(f"dim must be an integer >= 1, got {dim!r}")
    angle = st.floats(-math.pi, math.pi, allow_nan=False, allow_subnormal=False)
    angles = [draw(angle) for _ in range(dim * (dim - 1) // 2)]
    return givens_product(angles, int(dim))


@st.composite
def unit_vectors(draw: Any, dim: int) -> np.ndarray:
    """a ∈ S^{d−1} in spherical coordinates, angles → 0, so a shrinks to e₁."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise InvalidArgument(f"dim must be an integer >= 1, got {dim!r}")
    angle = st.floats(-math.pi, math.pi, allow_nan=False, allow_subnormal=False)
    a = np.zeros(dim)
    sin_prod = 1.0
    for i in range(dim - 1):
        th = draw(angle)
        a[i] = sin_prod * math.cos(th)
        sin_prod *= math.sin(th)
    a[dim - 1] = sin_prod
    return a / np.linalg.norm(a)


# -- boundary-hugging and rate-placed spectra (detection strength, issue 10) -------------

def boundary_anchors(region: Region, *, window: float = 3.0, allow_negative: bool = True
                     ) -> list[tuple[float, float, bool, float]]:
    """Every way to step off a boundary point of ``region``: (b, direction, inside, room).

    ``direction`` is ±1 (the side of b the eigenvalue goes to), ``inside`` whether that
    side belongs to the region, ``room`` the width available on that side before the
    next boundary point (the window W bounds the outer gaps). A non-degenerate interval
    [lo, hi] gives four anchors, an isolated point p two (both outside), sorted by |b|.
    """
    s = margin_scale(region)
    W = window * max(region.scale, s)
    ivs = region.intervals
    anchors: list[tuple[float, float, bool, float]] = []
    for k, (lo, hi) in enumerate(ivs):
        left_gap = lo - ivs[k - 1][1] if k > 0 else lo + W
        right_gap = ivs[k + 1][0] - hi if k + 1 < len(ivs) else W - hi
        width = hi - lo
        if math.isfinite(lo):
            anchors.append((lo, -1.0, False, left_gap))
            if width > 0:
                anchors.append((lo, 1.0, True, width))
        if math.isfinite(hi) and width > 0:
            anchors.append((hi, -1.0, True, width))
        if math.isfinite(hi):
            anchors.append((hi, 1.0, False, right_gap))
    out = [a for a in anchors if a[3] > 0 and math.isfinite(a[3])
           and (allow_negative or a[0] + a[1] * 1e-300 >= 0.0)]
    return sorted(out, key=lambda a: (abs(a[0]), a[1]))


def _log_uniform(draw: Any, lo: float, hi: float) -> float:
    """A value in [lo, hi], log-uniform, shrinking to hi (the farthest from the edge)."""
    u = draw(st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False))
    return float(hi * (lo / hi) ** u) if lo < hi else float(hi)


@st.composite
def near_boundary_spectra(draw: Any, *, region: Region, side: str = "inside",
                          min_distance: float = 1e-3, max_distance: float = 1e-2,
                          min_dim: int = 1, max_dim: int = 4, margin: float = 0.05,
                          window: float = 3.0, allow_negative: bool = True,
                          filter_function: Any = None, min_rate_gap: float = 0.0
                          ) -> tuple[float, ...]:
    """Spectra that hug the boundary of ``region`` R at relative distance t.

    t is log-uniform in [min_distance, max_distance]; a boundary point b is left by
    t·u(b), u(b) = :func:`boundary_unit` (|b|, or at b = 0 the width of the interval
    ending there), at most half the room
    before the next boundary point. Boundary points and distances come from a drawn
    seed (uniform over the boundary points; the seed shrinks to 0).

    - ``side="inside"``: every λᵢ lies in R at distance t·u(b) of its own boundary point
      b, taken in turn (isolated points have no inside): the spectrum is inside R,
      barely, and hugs min(d, #boundary points) of them at once (with
      ``filter_function``, an eigenvalue that cannot get |ρ₁ − 1| ≥ g within its room
      is left out, unless every one is: it would make the whole case undecidable);
    - ``side="outside"``: one λᵢ lies outside R at distance t·u(b) of a boundary point
      (both sides of isolated points, ends of negative bands), the others inside R with
      margin m·s as in :func:`spectra`: the spectrum is outside R, barely.

    With ``filter_function`` (λ ↦ ρ₁(λ)) and ``min_rate_gap`` g, t is doubled until
    |ρ₁(λ) − 1| ≥ g (or the room runs out): next to an isolated point, where ρ₁ − 1 is
    quadratic in the distance, the eigenvalue then lies at the closest distance that a
    claim with boundary band < g can still decide.

    Example:
        >>> from dynverify.optimizers import usam
        >>> s = near_boundary_spectra(region=usam(lr=0.5, rho=0.5).region, side="outside")
    """
    region = _check_region(region)
    if side not in ("inside", "outside"):
        raise InvalidArgument(f"side must be 'inside' or 'outside', got {side!r}")
    _check_dims(min_dim, max_dim)
    min_distance = _check_real("min_distance", min_distance, 0.0, 0.5, lo_open=True)
    min_rate_gap = _check_real("min_rate_gap", min_rate_gap, 0.0, 1.0)
    if filter_function is not None and not callable(filter_function):
        raise InvalidArgument(f"filter_function must be callable, got {filter_function!r}")
    max_distance = _check_real("max_distance", max_distance, min_distance, 0.5)
    margin = _check_real("margin", margin, 0.0, 0.5, lo_open=True, hi_open=True)
    window = _check_real("window", window, 1.0, 1e6, lo_open=True)
    if region.empty:
        raise InvalidArgument("region is empty: it has no boundary to hug")
    want_inside = side == "inside"
    anchors = [a for a in boundary_anchors(region, window=window, allow_negative=allow_negative)
               if a[2] == want_inside]
    if not anchors:
        raise InvalidArgument(f"region {region} has no boundary point with room on the "
                              f"{side} (allow_negative={allow_negative})")

    # anchors and distances come from a drawn seed, so that every boundary point is
    # equally likely (Hypothesis' integer draws favour the first anchor, at 0)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def hug(k: int) -> tuple[float, bool]:
        """(λ, decidable): λ next to anchor k, moved out until |ρ₁(λ) − 1| ≥ g."""
        b, direction, _, room = anchors[k % len(anchors)]
        t = float(max_distance * (min_distance / max_distance) ** rng.random())
        unit = boundary_unit(region, b)
        lam = float(b + direction * min(t * unit, 0.5 * room))
        while filter_function is not None:
            if abs(float(filter_function(np.array([lam]))[0]) - 1.0) >= min_rate_gap:
                return lam, True
            if not t * unit < 0.5 * room:
                return lam, False
            t *= 2.0
            lam = float(b + direction * min(t * unit, 0.5 * room))
        return lam, True

    dim = draw(st.integers(min_dim, max_dim))
    first = int(rng.integers(len(anchors)))
    if want_inside:
        # consecutive anchors: a spectrum of dimension ≥ #anchors hugs every one of them
        hugs = [hug(first + i) for i in range(dim)]
        decidable = [lam for lam, ok in hugs if ok]
        return tuple(decidable) if decidable else tuple(lam for lam, _ in hugs)
    inside = placement_sets(region, margin=margin, window=window,
                            allow_negative=allow_negative)["inside"]
    lams = [_draw_in(draw, inside) if inside else hug(first)[0] for _ in range(dim)]
    lams[draw(st.integers(0, dim - 1))] = hug(first)[0]
    return tuple(lams)


def rate_grid(region: Region, *, window: float = 3.0, n: int = 801) -> np.ndarray:
    """Sorted λ-grid for locating level sets of ρ₁: uniform on [−W, W] plus R's boundary
    points (where ρ₁ = 1, so level sets next to isolated points are not missed) and
    geometric offsets around them."""
    s = margin_scale(region) if not region.empty else 1.0
    W = window * max(region.scale if not region.empty else 1.0, s)
    # USAM at ρ = 2.2e-308 has a band at −1/ρ ≈ −4.5e307: 2W must stay a float
    W = min(W, sys.float_info.max / 4.0)
    pts = [np.linspace(-W, W, n)]
    offsets = s * np.logspace(-6, 0, 13)
    for b in region.boundary():
        if math.isfinite(b) and abs(b) <= W:
            pts.append(np.concatenate([[b], b - offsets, b + offsets]))
    grid = np.unique(np.concatenate(pts))
    return grid[np.abs(grid) <= W]


def _level_brackets(grid: np.ndarray, values: np.ndarray, q: float, min_abs: float
                    ) -> list[tuple[float, float]]:
    """Grid points where ρ₁(λ) = q exactly, as (λ, λ), and the grid cells where ρ₁(λ) − q
    changes sign, in increasing order; only those that can hold a λ with |λ| ≥ min_abs."""
    g = values - q
    cells = np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0)
    out = [(float(x), float(x)) for x in grid[g == 0.0]]
    out += [(float(grid[i]), float(grid[i + 1])) for i in cells]
    return sorted(b for b in out if max(abs(b[0]), abs(b[1])) >= min_abs)


def _refine(rho: Any, bracket: tuple[float, float], q: float) -> float:
    """The λ in ``bracket`` with ρ₁(λ) = q, by Brent's method."""
    from scipy.optimize import brentq

    a, b = bracket
    if a == b:
        return a

    def f(x: float) -> float:
        return float(rho(np.array([x]))[0]) - q

    try:
        return float(brentq(f, a, b, xtol=1e-15 * max(1.0, abs(a)),
                            rtol=4 * np.finfo(float).eps))
    except (ValueError, RuntimeError) as exc:
        # ρ₁ evaluated alone at the cell's ends disagrees with its values on the grid
        # (finite differences at the edge of float resolution): no level crossing to use
        raise InvalidArgument(f"ρ₁ − {q:.6g} does not change sign reproducibly on "
                              f"[{a:.6g}, {b:.6g}] ({exc})") from exc


@st.composite
def rate_spectra(draw: Any, *, filter_function: Any, region: Region, stable: bool,
                 min_gap: float = 1e-3, max_gap: float = 0.5, min_dim: int = 1,
                 max_dim: int = 4, margin: float = 0.05, window: float = 3.0,
                 allow_negative: bool = True) -> tuple[float, ...]:
    """Spectra with a prescribed spectral radius r = max ρ₁(λᵢ), placed by ρ₁ itself.

    ``filter_function`` is λ ↦ ρ₁(λ) (vectorized; :func:`dynverify.derive.filter_function`).
    A gap g is drawn log-uniform in [min_gap, max_gap] (shrinking to max_gap) and the
    level q = 1 − g (``stable``) or 1 + g; one eigenvalue solves ρ₁(λ) = q (located on
    :func:`rate_grid` and refined by Brent's method), the others lie where ρ₁ < q with
    |λ| ≥ m·s. So the premise "r ≤ 1 − δ" or "r ≥ 1 + δ" of claims 3 and 2 holds by
    construction whenever min_gap > δ, including r within min_gap of 1: spectra hug
    every boundary of the filter, isolated points and negative bands included.
    ``region`` only sets the window and the grid's refinement points.

    Raises InvalidArgument when no eigenvalue in the window reaches the level.
    """
    region = _check_region(region)
    if not callable(filter_function):
        raise InvalidArgument(f"filter_function must be callable, got {filter_function!r}")
    _check_dims(min_dim, max_dim)
    min_gap = _check_real("min_gap", min_gap, 0.0, 1.0 if stable else 1e6, lo_open=True)
    max_gap = _check_real("max_gap", max_gap, min_gap, 1.0 if stable else 1e6)
    window = _check_real("window", window, 1.0, 1e6, lo_open=True)
    grid = rate_grid(region, window=window)
    if not allow_negative:
        grid = grid[grid >= 0.0]
    values = np.asarray(filter_function(grid), dtype=float)
    if not np.all(np.isfinite(values)):
        raise InvalidArgument("filter_function returned non-finite values on the grid")
    # the levels ρ₁ reaches on the grid bound the gap (heavy ball: ρ₁ ≥ √β)
    reach = (1.0 - float(values.min())) if stable else (float(values.max()) - 1.0)
    max_gap = min(max_gap, 0.999 * reach)
    if not max_gap >= min_gap:
        raise InvalidArgument(
            f"ρ₁ does not reach {'1 − ' if stable else '1 + '}{min_gap:.3g} within the "
            f"window of {region}")
    g = _log_uniform(draw, min_gap, max_gap)
    q = 1.0 - g if stable else 1.0 + g
    s = margin_scale(region) if not region.empty else 1.0
    ms = margin * s
    # only the drawn crossing is refined (one root-finding per draw, not one per crossing)
    brackets = _level_brackets(grid, values, q, ms)
    lead = None
    while brackets:
        k = draw(st.integers(0, len(brackets) - 1)) if len(brackets) > 1 else 0
        root = _refine(filter_function, brackets.pop(k), q)
        if abs(root) >= ms:
            lead = root
            break
    if lead is None:
        raise InvalidArgument(f"no eigenvalue λ with ρ₁(λ) = {q:.6g} and |λ| ≥ {ms:.3g} "
                              f"within the window of {region}")
    # the others: grid cells where ρ₁ < q at both ends (rounding at a level crossing
    # cannot put them above q), away from 0
    below = values < q
    cells = [(float(grid[i]), float(grid[i + 1])) for i in range(grid.size - 1)
             if below[i] and below[i + 1]]
    merged: Intervals = []
    for lo, hi in cells:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    others = _by_distance_to_zero(_remove_open(merged, -ms, ms))
    dim = draw(st.integers(min_dim, max_dim))
    lams = [_draw_in(draw, others) if others else lead for _ in range(dim)]
    lams[draw(st.integers(0, dim - 1))] = float(lead)
    return tuple(lams)
