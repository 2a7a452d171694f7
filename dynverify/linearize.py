"""Linearization of an optimizer's lifted map G at a fixed point z̄ = init(x̄).

J = Jac G(z̄) is computed by finite differences with adaptive steps and Richardson
extrapolation (see :func:`batched_linearization`): all perturbed states of a step level
are evaluated in one batched ``step`` call (rows are independent trajectories), the step
shrinks until difference quotients converge, one-sided differences reveal a map that is
not differentiable, and declared ``state_domains`` (v ≥ 0) are never left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynverify.errors import (
    NotDifferentiableError,
    OptimizerError,
    UnresolvedLinearizationError,
)
from dynverify.functions import GuardedOracle, Quadratic, TestFunction, as_batch
from dynverify.optimizer import Optimizer, State

#: default finite-difference step, relative to max(1, |z̄|)
FD_STEP = 1e-6
#: smallest first relative step of :func:`jacobian` (10³ ulps of a state of size 1)
MIN_RELATIVE_STEP = 1e-12
#: :func:`jacobian` divides its step by the curvature scale above this curvature only
CURVATURE_FREE = 1e3


def _flatten(state: State, batch: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    shapes = [tuple(np.shape(s)[1:]) for s in state]
    # sizes from the shapes, not −1: a batch of 0 rows (derive's scan with nothing left
    # to probe) has no size to infer
    flat = np.concatenate([np.asarray(s, dtype=float).reshape(batch, int(np.prod(shp)))
                           for s, shp in zip(state, shapes)], axis=1)
    return flat, shapes


def _unflatten(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> State:
    out, i = [], 0
    for shp in shapes:
        n = int(np.prod(shp)) if shp else 1
        out.append(flat[:, i:i + n].reshape((flat.shape[0], *shp)))
        i += n
    return tuple(out)


def lifted_state(opt: Optimizer, X: np.ndarray) -> State:
    """``opt.init(X)`` with a clear error when it raises or breaks the contract."""
    try:
        state = opt.init(X)
    except Exception as exc:  # noqa: BLE001 -- re-raised with context
        raise OptimizerError(f"optimizer {opt!r} raised in init: {type(exc).__name__}: {exc}"
                             ) from exc
    if not isinstance(state, tuple) or not state:
        raise OptimizerError(f"optimizer {opt!r}: init must return a non-empty tuple of arrays, "
                             f"got {type(state).__name__}")
    for i, s in enumerate(state):
        if np.shape(s)[:1] != (X.shape[0],):
            raise OptimizerError(f"optimizer {opt!r}: init state[{i}] has shape {np.shape(s)}, "
                                 f"expected leading batch dimension {X.shape[0]}")
    return state


def apply_step(opt: Optimizer, state: State, oracle: Any, step: int = 0) -> State:
    """One ``opt.step`` with errors that name the optimizer and the step."""
    from dynverify.errors import FunctionError

    try:
        new = opt.step(state, oracle)
    except FunctionError as exc:
        raise FunctionError(f"{exc} (optimizer {opt!r}, step {step})") from exc
    except Exception as exc:  # noqa: BLE001 -- re-raised with context
        raise OptimizerError(
            f"optimizer {opt!r} raised at step {step}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(new, tuple) or len(new) != len(state):
        raise OptimizerError(
            f"optimizer {opt!r}: step {step} returned {type(new).__name__} of length "
            f"{len(new) if isinstance(new, tuple) else '?'}, expected a tuple of {len(state)}")
    for i, (s, n) in enumerate(zip(state, new)):
        if np.shape(n) != np.shape(s):
            raise OptimizerError(f"optimizer {opt!r}: step {step} changed the shape of "
                                 f"state[{i}] from {np.shape(s)} to {np.shape(n)}")
    return new


#: the finite-difference step shrinks by this factor per level (Richardson ratio)
LEVEL_RATIO = 10.0
#: number of step levels tried at most (from h down to h·10⁻⁽ᴸᴱⱽᴱᴸˢ⁻¹⁾, never below
#: 1e-13·|z̄|)
LEVELS = 9
#: central differences at consecutive levels agree to this (relative to 1 + |J|)
CONVERGENCE_TOL = 1e-8
#: one-sided slopes (forward vs backward) may differ by this at the accepted level
KINK_TOL = 1e-3
#: differences that never met CONVERGENCE_TOL are still used when consecutive estimates
#: agree to this (relative to 1 + |J|; derive accepts the same): rounding at |z̄| ≈ 5
#: stops a C² term's O(h) error at about 1e-7, far inside any claim's margin
UNSETTLED_TOL = 1e-3
#: the rounding bounds of Jac G's entries may move ρ(Jac G) by this (relative) at most
ROUNDING_SHIFT_TOL = 1e-2
#: a retry after unsettled differences starts at this fraction of f's quadratic radius
QUADRATIC_FRACTION = 1e-3


@dataclass(frozen=True)
class Linearization:
    """Jacobians of G at n base points, with how the finite differences were taken.

    Attributes:
        J: (n, m, m) Jacobians, J[k, i, j] = ∂G_i/∂z_j at base point k.
        step: (n,) accepted step (absolute) per base point: the largest of h, h/10, …
            at which difference quotients at consecutive steps agree (smooth maps that
            are not linear at the scale h need smaller steps).
        one_sided: (n, m) True where a component was differenced one-sidedly because
            its declared ``state_domains`` interval does not extend on both sides.
        error: (n,) estimated absolute error (difference of consecutive estimates).
        converged: (n,) False where no step level reached the convergence tolerance
            (``J`` is then the best estimate, at the smallest step).
        below_resolution: (n,) True where the requested first step was below the
            resolution of floats at z̄ (about 10⁻¹³·|z̄|), so that steps as small as the
            map needed could not be taken.
        rounding: (n, m, m) bound on the rounding in each entry of J (8 ulps of the
            perturbed outputs over the step). Central differences of a term even in the
            step cancel exactly, so an entry may be right although its bound is huge;
            whether the bound matters is a question for the eigenvalues
            (:func:`jacobian` asks it).
    """

    J: np.ndarray
    step: np.ndarray
    one_sided: np.ndarray
    error: np.ndarray
    converged: np.ndarray
    below_resolution: np.ndarray | None = None
    rounding: np.ndarray | None = None

    @property
    def scheme(self) -> str:
        """"central", "one-sided" or "mixed": which differences were taken."""
        if not self.one_sided.any():
            return "central"
        return "one-sided" if self.one_sided.all() else "mixed"


def _domain_bounds(opt: Optimizer, shapes: list[tuple[int, ...]]) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """Elementwise (lo, hi) of the flattened state from ``opt.state_domains``."""
    sizes = [int(np.prod(shp)) if shp else 1 for shp in shapes]
    m = sum(sizes)
    lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
    doms = getattr(opt, "state_domains", None)
    if doms is None:
        return lo, hi
    if len(doms) != len(shapes):
        raise OptimizerError(f"optimizer {opt!r}: state_domains has {len(doms)} entries but "
                             f"the state has {len(shapes)} components")
    i = 0
    for d, n in zip(doms, sizes):
        if d is not None:
            lo[i:i + n], hi[i:i + n] = d
        i += n
    return lo, hi


def _relative_change(Dj: np.ndarray, Dn: np.ndarray, est: np.ndarray,
                     noise: np.ndarray) -> np.ndarray:
    """max over entries of (|Dj − Dn| − noise)⁺ / (1 + min(row max, column max) of |est|),
    per matrix; ``noise`` is the rounding of the outputs divided by the step per entry
    (what no step can resolve: an accumulator's ∂a⁺/∂x = 0 is rounding of |a| ≈ 1).

    Each entry is measured against the size of its own row or column, whichever is
    smaller, not against the largest entry of J: a badly scaled J (Adam with α/√ε = 1e6
    has entries αβ₁/√ε ≈ 1e6 and (1 − β₁)λ ≈ 1e-6 around an O(1) diagonal; at tiny α
    the roles swap) would otherwise accept differences that have not resolved its O(1)
    entries, which alone decide the eigenvalues. For a balanced J this is the usual
    tolerance relative to |J|.
    """
    return np.max(np.maximum(np.abs(Dj - Dn) - noise, 0.0) / _entry_scale(est), axis=(1, 2))


def _entry_scale(est: np.ndarray) -> np.ndarray:
    """1 + min(row max, column max) of |est| per entry: the size each entry is judged by."""
    A = np.abs(est)
    return 1.0 + np.minimum(A.max(axis=2)[:, :, None], A.max(axis=1)[:, None, :])


_TINY = float(np.finfo(float).smallest_subnormal)


def _step_floor(zmax: Any) -> Any:
    """The smallest step that moves z̄ at |z̄| = zmax (rounding), or that is not lost in
    underflow at z̄ = 0."""
    return np.maximum(1e-13 * zmax, 1e-280)


def batched_linearization(opt: Optimizer, oracle_for: Any, Z: np.ndarray,
                          shapes: list[tuple[int, ...]], *, h: float | np.ndarray = FD_STEP,
                          check_differentiable: bool = True,
                          column_scale: np.ndarray | None = None) -> Linearization:
    """Jacobians of G at n flattened lifted states Z (n, m), by adaptive differences.

    Steps hⱼ = h·max(1, |z|)·10⁻ʲ. At each level the central difference
    Dⱼ = (G(z + hⱼe) − G(z − hⱼe))/(2hⱼ) (or the second-order one-sided formula
    (−3G(z) + 4G(z + hⱼe) − G(z + 2hⱼe))/(2hⱼ) on a component whose domain stops
    within hⱼ of z) is computed for all components in one batched ``step`` call; the
    first level with |Dⱼ − Dⱼ₊₁| ≤ CONVERGENCE_TOL·(1 + |J|) whose forward and backward
    slopes also agree to KINK_TOL is accepted, and J = (100Dⱼ₊₁ − Dⱼ)/99 (Richardson).
    Maps linear in z are accepted at the first level; smooth maps that are nonlinear at
    scale h (clipped gradients, ε inside a square root) at a smaller one. A map whose
    one-sided slopes disagree at every level, or whose quotients grow like 1/h, is not
    differentiable (that is not a step-size effect).

    ``oracle_for(rows)`` returns the oracle for a batch whose row k belongs to base point
    ``rows[k]``; ``h`` is a scalar or one relative step per base point;
    ``column_scale`` (n, m), if given, multiplies the step of each state component (a
    buffer m ~ λx at |λ| = 1e274 is perturbed as much as a step in x moves it, so that
    its small entry ∂x⁺/∂m = α/√ε ~ 1e-275 times the step does not underflow). Raises
    NotDifferentiableError (when ``check_differentiable``).
    """
    n, m = Z.shape
    lo, hi = _domain_bounds(opt, shapes)
    if np.any((Z < lo) | (Z > hi)):
        raise OptimizerError(f"optimizer {opt!r}: the lifted fixed point lies outside the "
                             "declared state_domains")
    h = np.broadcast_to(np.asarray(h, dtype=float), (n,))
    zmax = np.max(np.abs(Z), axis=1) if m else np.zeros(n)
    base = h * np.maximum(1.0, zmax)  # (n,)
    # rounding of G(z̄ ± h) bounds the step below by about 1e-13·|z̄|; at z̄ = 0 nothing
    # does (but underflow): a map on λx²/2 at |λ| = 1e16 takes h = 1e-19 and still needs
    # its levels (the gradient λh must get below RMSprop's √ε)
    floor = _step_floor(zmax)
    with np.errstate(all="ignore"):  # base ~ 1e308 at an ε ~ 1e308 state: ratio = ∞
        ratio = float(np.max(base / floor)) if n else FD_STEP / 1e-13
    # (ratio ∞ or NaN: a step near 1e308, or a NaN curvature, whose rows come out NaN)
    # (ratio 0: a zero step, at λ so large that h underflows, or an infinite state)
    nlev = (LEVELS if not math.isfinite(ratio) else 2 if ratio <= 1.0
            else max(2, min(LEVELS, 1 + int(np.floor(np.log10(ratio))))))
    steps = base[:, None] * LEVEL_RATIO ** -np.arange(nlev)  # (n, L)
    cs = (np.ones((n, m)) if column_scale is None
          else np.broadcast_to(np.asarray(column_scale, dtype=float), (n, m)))
    # direction per (base point, component): 0 central, +1 forward, −1 backward
    h0 = steps[:, :1] * cs
    central_ok = (Z - h0 >= lo) & (Z + h0 <= hi)
    fwd_ok = Z + 2 * h0 <= hi
    bwd_ok = Z - 2 * h0 >= lo
    if np.any(~(central_ok | fwd_ok | bwd_ok)):
        raise OptimizerError(f"optimizer {opt!r}: a state_domains interval is too narrow for "
                             f"finite differences at step {float(h0.min()):.3g}")
    direction = np.where(central_ok, 0.0, np.where(fwd_ok, 1.0, -1.0))  # (n, m)
    one_sided = direction != 0
    E = np.eye(m)
    sign = np.where(one_sided, direction, 1.0)  # A-row direction
    # B-row: z − h e (central) or z + 2·dir·h e (one-sided)
    bmult = np.where(one_sided, 2.0 * direction, -1.0)

    D = np.full((n, nlev, m, m), np.nan)  # D[k, j, i, c] = ∂G_i/∂z_c at level j
    fwd = np.full((n, nlev, m, m), np.nan)
    bwd = np.full((n, nlev, m, m), np.nan)
    rnd = np.full((n, nlev, m, m), np.nan)  # rounding of each quotient [i, c]
    any_one_sided = bool(np.any(one_sided))
    zero_base = not np.any(Z)
    G0 = np.full((n, m), np.nan)

    def evaluate(idx: np.ndarray, levels: list[int], with_centre: bool) -> None:
        k, L = idx.size, len(levels)
        hs = steps[idx][:, levels][:, :, None] * cs[idx][:, None, :]  # (k, L, m)
        offA = (sign[idx][:, None, :, None] * hs[:, :, :, None]) * E  # (k, L, m, m)
        offB = (bmult[idx][:, None, :, None] * hs[:, :, :, None]) * E
        P = np.concatenate([offA.reshape(k, L * m, m), offB.reshape(k, L * m, m)], axis=1)
        if with_centre:
            P = np.concatenate([P, np.zeros((k, 1, m))], axis=1)
        per = P.shape[1]
        P = Z[idx][:, None, :] + P
        # the steps actually taken: z̄ + h is rounded (|z̄| = 3, h = 3e-9 loses 1e-7 of h),
        # and dividing by the nominal h would put that error into every quotient
        if zero_base:  # 0 ± h is exact
            sA = sB = hs
        else:
            diag = np.arange(m)
            zc = Z[idx][:, None, :]
            sA = P[:, :L * m].reshape(k, L, m, m)[:, :, diag, diag] - zc  # (k, L, m)
            sB = zc - P[:, L * m:2 * L * m].reshape(k, L, m, m)[:, :, diag, diag]
        rows = np.repeat(idx, per)
        flat = P.reshape(-1, m)
        with np.errstate(all="ignore"):
            new = apply_step(opt, _unflatten(flat, shapes), oracle_for(rows))
            _differences(new, idx, levels, L, k, per, hs, with_centre, sA, sB)

    def _differences(new: State, idx: np.ndarray, levels: list[int], L: int, k: int,
                     per: int, hs: np.ndarray, with_centre: bool, sA: np.ndarray,
                     sB: np.ndarray) -> None:
        G = _flatten(new, k * per)[0].reshape(k, per, m)
        if with_centre:
            G0[idx] = G[:, -1]
        g0 = G0[idx][:, None, None, :]  # (k, 1, 1, m)
        GA = G[:, :L * m].reshape(k, L, m, m)  # [k, level, component c, output i]
        GB = G[:, L * m:2 * L * m].reshape(k, L, m, m)
        s = hs[:, :, :, None]
        d = sign[idx][:, None, :, None]
        os_ = one_sided[idx][:, None, :, None]
        # a step below the rounding of z̄ is not taken at all: nominal step (as before)
        a_ = np.where(sA > 0, sA, hs)[:, :, :, None]
        b_ = np.where(sB > 0, sB, hs)[:, :, :, None]
        cen = (GA - GB) / (a_ + b_)
        one = d * (-3 * g0 + 4 * GA - GB) / (2 * s)
        Dk = np.where(os_, one, cen).transpose(0, 1, 3, 2)
        D[idx[:, None], np.array(levels)[None, :]] = Dk
        f = (np.where(os_, (GA - g0) / s, (GA - g0) / a_) if any_one_sided
             else (GA - g0) / a_).transpose(0, 1, 3, 2)
        b = ((g0 - GB) / b_).transpose(0, 1, 3, 2)
        # one-sided components have no backward slope: compare nothing there
        b = np.where(os_.transpose(0, 1, 3, 2), f, b)
        fwd[idx[:, None], np.array(levels)[None, :]] = f
        # rounding of output i of the states perturbed along c, over the step: per entry,
        # because one column's outputs say nothing of another's (Adam at α = 1e200:
        # ∂x⁺/∂m = 9e203 is linear, and its rounding 3e189 must not be taken for the
        # rounding of the x column, whose quotients 4e189, 4e187, … are a quartic)
        # (plus the subnormal spacing: an output of 1e-413 is 0, which is no measurement
        # of an entry 3.8e-204 at a step 6e-210)
        r = (((np.abs(GA) + np.abs(GB) + np.abs(g0)) * np.finfo(float).eps + 2 * _TINY)
             / s).transpose(0, 1, 3, 2)
        rnd[idx[:, None], np.array(levels)[None, :]] = r
        bwd[idx[:, None], np.array(levels)[None, :]] = b

    J = np.full((n, m, m), np.nan)
    rounding = np.full((n, m, m), np.inf)
    accepted = np.full(n, -1)
    err = np.full(n, np.inf)
    todo = np.arange(n)
    done_levels = 0
    r2 = LEVEL_RATIO ** 2
    # overflow at extreme λ gives NaN rows (no linearization there), not warnings
    with np.errstate(all="ignore"):
        while todo.size and done_levels < nlev:
            new_levels = list(range(done_levels, min(nlev, done_levels + 2)))
            evaluate(todo, new_levels, with_centre=done_levels == 0)
            done_levels = new_levels[-1] + 1
            for j in range(max(0, new_levels[0] - 1), done_levels - 1):
                Dj, Dn = D[todo, j], D[todo, j + 1]
                est = (r2 * Dn - Dj) / (r2 - 1.0)
                diff = np.max(np.abs(Dj - Dn), axis=(1, 2))
                size = 1.0 + np.max(np.abs(est), axis=(1, 2))
                kink = np.max(np.abs(fwd[todo, j + 1] - bwd[todo, j + 1]), axis=(1, 2))
                noise = 8.0 * np.maximum(rnd[todo, j], rnd[todo, j + 1])
                ok = (_relative_change(Dj, Dn, est, noise) <= CONVERGENCE_TOL) & (
                    kink <= KINK_TOL * size)
                ok &= np.all(np.isfinite(est), axis=(1, 2))
                better = ~ok & np.isfinite(diff) & (diff < err[todo])
                J[todo[better]] = est[better]
                err[todo[better]] = diff[better]
                rounding[todo[better]] = noise[better]
                acc = todo[ok]
                J[acc], err[acc], accepted[acc] = est[ok], diff[ok], j
                rounding[acc] = noise[ok]
                todo = todo[~ok]
                if not todo.size:
                    break
        converged = accepted >= 0
    finite_rows = np.all(np.isfinite(D[:, :2]), axis=(1, 2, 3))
    J[~finite_rows] = np.nan  # non-finite values (overflow): no linearization, no verdict
    if check_differentiable and not converged[finite_rows].all():
        bad = ~converged & finite_rows
        last = nlev - 1
        with np.errstate(all="ignore"):
            kink = np.max(np.abs(fwd[:, last] - bwd[:, last]), axis=(1, 2))
            kink_prev = np.max(np.abs(fwd[:, last - 1] - bwd[:, last - 1]), axis=(1, 2))
            growth = np.max(np.abs(D[:, last]), axis=(1, 2)) / (
                1.0 + np.max(np.abs(D[:, 0]), axis=(1, 2)))
            size = 1.0 + np.max(np.abs(np.nan_to_num(J[:, :, :], nan=0.0)), axis=(1, 2))
            # a kink keeps the same slope gap at every step; rounding noise amplified by
            # the map (x + ρ∇f(x) ≈ 0 at λ = −1/ρ) changes it from step to step
            steady = np.abs(kink - kink_prev) <= 0.1 * kink
            nondiff = bad & (((kink > KINK_TOL * size) & steady) | (growth >= 1e3))
        if np.any(nondiff):
            with np.errstate(all="ignore"):
                gaps = np.maximum(kink, np.max(np.abs(D[:, 0] - D[:, 1]), axis=(1, 2)))[nondiff]
            gaps = gaps[~np.isnan(gaps)]  # (nanmax would warn on an all-NaN slice)
            gap = float(gaps.max()) if gaps.size else math.nan
            raise NotDifferentiableError(
                f"optimizer {opt!r}: the lifted map is not differentiable at the fixed "
                f"point (finite differences disagree by {gap:.3g} at every step from "
                f"{float(base.max()):.1e} down to {float(steps[:, -1].min()):.1e}, so not a "
                "step-size effect)"
                + (f"; {opt.outside_hypotheses}" if opt.outside_hypotheses else ""))
    step = np.where(converged, steps[np.arange(n), np.maximum(accepted, 0)], steps[:, -1])
    return Linearization(J=J, step=step, one_sided=one_sided, error=err, converged=converged,
                         rounding=rounding,
                         below_resolution=base < floor)


def batched_jacobians(opt: Optimizer, oracle_for: Any, Z: np.ndarray,
                      shapes: list[tuple[int, ...]], *, h: float | np.ndarray = FD_STEP,
                      check_differentiable: bool = True) -> np.ndarray:
    """Jacobians of G at n flattened lifted states Z (n, m): ``batched_linearization(...).J``.

    Returns (n, m, m). Raises NotDifferentiableError when the map has no derivative.
    """
    return batched_linearization(opt, oracle_for, Z, shapes, h=h,
                                 check_differentiable=check_differentiable).J


def curvature_scale(f: TestFunction, x_bar: np.ndarray) -> float:
    """L ≥ 1: max(1, ‖∇²f(x̄)v‖/‖v‖) over two fixed directions v (one hvp call).

    A map's response to a step h in x is about L·h in its gradient: at curvatures of
    10¹¹⁷ (Adam at α = 10⁻¹²⁰, whose filter reaches that far) a step of 10⁻⁶ puts the
    gradient at 10¹¹¹, far outside the region where an adaptive preconditioner is linear.
    Returns 1 when f cannot say (hvp raises or is not finite).
    """
    d = x_bar.shape[-1]
    V = np.stack([np.ones(d), np.cos(np.arange(1, d + 1) * 2.399963)])
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    try:
        with np.errstate(all="ignore"):
            HV = np.asarray(f.hvp(np.repeat(x_bar.reshape(1, d), 2, axis=0), V), dtype=float)
        L = float(np.max(np.linalg.norm(HV, axis=1)))
    except Exception:  # noqa: BLE001 -- a function without a usable hvp: no rescaling
        return 1.0
    return L if math.isfinite(L) and L > 1.0 else 1.0


def _retry_inside_quadratic_region(opt: Optimizer, f: TestFunction, oracle: Any,
                                   Z: np.ndarray, shapes: list[tuple[int, ...]],
                                   lin: Linearization) -> tuple[Linearization, bool]:
    """Differences that did not settle, redone from a step inside f's quadratic region.

    The first step is relative to z̄ and to the curvature; a planted quartic μ‖u‖⁴ at a
    tiny Hessian (λ ~ 1e-200 with α ~ 1e200, so that αλ ~ 1) dominates the gradient at
    every such step, and no level settles. ``f.quadratic_radius()`` says where the
    quadratic part rules; when it lies below the smallest step tried, start 10⁻³ of it.
    Only differences that neither settled nor were found non-differentiable come here,
    so a kink (a sign term) is still reported as one. Returns (linearization, clamped).
    """
    radius = getattr(f, "quadratic_radius", None)
    if radius is None:
        return lin, False
    try:
        q = float(radius())
    except Exception:  # noqa: BLE001 -- a function that cannot say: nothing to retry
        return lin, False
    zscale = max(1.0, float(np.max(np.abs(Z)))) if Z.size else 1.0
    h = QUADRATIC_FRACTION * q / zscale
    if not (math.isfinite(h) and 0.0 < h < float(lin.step[0]) / zscale):
        return lin, False
    zmax = float(np.max(np.abs(Z))) if Z.size else 0.0
    if h * zscale < _step_floor(zmax):
        # z̄ + h rounds to z̄ (x̄ = 1 needs h ~ 1e-105): the steps the map needs are not
        # floats; differencing anyway measures 0 for those components and "settles"
        return lin, True
    again = batched_linearization(opt, lambda rows: oracle, Z, shapes, h=h)
    clamped = bool(again.below_resolution is not None and again.below_resolution[0])
    return again, clamped


def jacobian(opt: Optimizer, f: TestFunction, x_bar: Any, *, h: float | None = None
             ) -> np.ndarray:
    """Jacobian of the lifted map at z̄ = init(x̄), as an (m, m) matrix (m = state size).

    ``h``: the first relative finite-difference step (default FD_STEP), divided by the
    curvature scale of f at x̄ (:func:`curvature_scale`), as derive divides by |λ|.

    Example:
        >>> from dynverify.optimizers import gradient_descent
        >>> J = jacobian(gradient_descent(lr=0.1), Quadratic.diagonal([2.0]), [0.0])
        >>> round(float(J[0, 0]), 9)
        0.8
    """
    X = as_batch(x_bar, f.dim, "x_bar")[:1]
    scale, want, h_eff = _first_step(f, X[0], h)
    state = lifted_state(opt, X)
    Z, shapes = _flatten(state, 1)
    oracle = GuardedOracle(f)
    lin = batched_linearization(opt, lambda rows: oracle, Z, shapes, h=h_eff)
    clamped = want < h_eff or bool(lin.below_resolution is not None
                                   and lin.below_resolution[0])
    shift = _rounding_shift(lin)
    if not (lin.converged[0] and shift <= ROUNDING_SHIFT_TOL) and not clamped:
        retried, clamped = _retry_inside_quadratic_region(opt, f, oracle, Z, shapes, lin)
        if retried is not lin:
            lin, shift = retried, _rounding_shift(retried)
    if clamped and not (lin.converged[0] and shift <= ROUNDING_SHIFT_TOL):
        raise UnresolvedLinearizationError(
            f"optimizer {opt!r} on {f!r}: the map is not linear at any step that floats "
            f"resolve at x̄ (a relative step of {want:.2g} was needed at curvature scale "
            f"{scale:.3g}): its linearization at x̄ cannot be measured in double precision")
    size = 1.0 + float(np.max(np.abs(lin.J[0]))) if np.all(np.isfinite(lin.J[0])) else 0.0
    if not lin.converged[0] and not lin.error[0] <= UNSETTLED_TOL * size:
        raise UnresolvedLinearizationError(
            f"optimizer {opt!r} on {f!r}: the difference quotients at x̄ do not settle "
            f"(consecutive estimates differ by {float(lin.error[0]):.3g} down to a step of "
            f"{float(lin.step[0]):.3g}, and the map is not found non-differentiable): its "
            "linearization at x̄ cannot be measured in double precision")
    if not np.all(np.isfinite(lin.J[0])):
        raise UnresolvedLinearizationError(
            f"optimizer {opt!r} on {f!r}: the map's values next to x̄ overflow (non-finite "
            "finite differences): its linearization at x̄ cannot be measured in double "
            "precision")
    if not shift <= ROUNDING_SHIFT_TOL:
        raise UnresolvedLinearizationError(
            f"optimizer {opt!r} on {f!r}: the rounding of the map's outputs next to x̄ "
            f"moves ρ(Jac G) by {shift:.3g} (the steps are lost in values far larger than "
            "themselves): its linearization at x̄ cannot be measured in double precision")
    return lin.J[0]


def _first_step(f: TestFunction, x_bar: np.ndarray, h: float | None = None
                ) -> tuple[float, float, float]:
    """(curvature scale, wanted relative step, step taken) of the Jacobian at x̄.

    The step is relative to z̄ alone up to curvature CURVATURE_FREE (the claims' usual
    range, whose finite differences are calibrated: benchmarks/linearization_error.py),
    and shrinks with the curvature beyond it. Below MIN_RELATIVE_STEP a step is lost in
    the rounding of z̄ (|z̄| ≈ 1): the smallest step floats resolve is taken, which is
    exact for a map linear there (gradient descent at any α); the caller refuses to
    guess for one that is not (Adam at α = 10⁻¹²⁰).
    """
    scale = curvature_scale(f, x_bar)
    want = (FD_STEP if h is None else h) / max(1.0, scale / CURVATURE_FREE)
    return scale, want, max(want, MIN_RELATIVE_STEP)


def _rounding_shift(lin: Linearization) -> float:
    """How far the entries' rounding bounds can move ρ(J) (of base point 0), relative
    to max(1, ρ(J)): the largest change over a few fixed sign patterns ±bound.

    An entry whose bound is huge but that no eigenvalue depends on (an accumulator's
    ∂v⁺/∂x, even in the step and exactly 0, that nothing feeds back) moves nothing; one
    the spectrum hangs on (Adam at α = 1e200 on a cube term, whose ∂x⁺/∂x of size 3 is
    lost in outputs of 3e187) moves it by orders of magnitude.
    """
    J = lin.J[0]
    R = None if lin.rounding is None else lin.rounding[0]
    if R is None or not np.all(np.isfinite(J)):
        return 0.0
    R = np.where(np.isfinite(R), R, 0.0)
    with np.errstate(all="ignore"):
        r0 = float(np.max(np.abs(eigenvalues(J))))
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(4, *J.shape))
        try:
            rs = [float(np.max(np.abs(eigenvalues(J + S * R)))) for S in signs]
        except np.linalg.LinAlgError:
            return math.inf
    shift = max(abs(r - r0) for r in rs) / max(1.0, r0)
    return shift if math.isfinite(shift) else math.inf


#: entries of a Jacobian beyond 2^±EIG_OCTAVES are balanced before eigenvalues are taken
EIG_OCTAVES = 900


def eigenvalues(J: Any) -> np.ndarray:
    """Eigenvalues of J (..., m, m), also when its entries span beyond the normal floats.

    LAPACK takes entries below its safe minimum (2.2e-308) for negligible: Adam at
    α = 1e308, ε = 1e-5 has ∂m⁺/∂x = 6.3e-311 beside ∂x⁺/∂m = −3.2e305, whose product
    2e-5 moves an eigenvalue from −1 to −1.00002 (a false filter disagreement). Such a
    J is first balanced by a diagonal similarity in powers of 2 (exact, and it changes
    no eigenvalue); any other J goes to ``np.linalg.eigvals`` as is.
    """
    J = np.asarray(J, dtype=float)
    with np.errstate(all="ignore"):
        A = np.abs(J)
        nz = A[(A > 0) & np.isfinite(A)]
    lim = 2.0 ** EIG_OCTAVES
    if J.shape[-1] < 2 or not nz.size or (nz.min() >= 1.0 / lim and nz.max() <= lim):
        return np.linalg.eigvals(J)
    flat = J.reshape(-1, *J.shape[-2:])
    out = np.stack([np.linalg.eigvals(_log_balanced(M)) for M in flat])
    return out.reshape(*J.shape[:-2], J.shape[-1])


def _log_balanced(J: np.ndarray, sweeps: int = 40) -> np.ndarray:
    """D⁻¹JD with D = diag(2^s): Osborne's balancing on log2|J| (max-norms), so that it
    neither over- nor underflows while it runs."""
    m = J.shape[0]
    if not np.all(np.isfinite(J)):
        return J
    with np.errstate(divide="ignore"):
        L = np.log2(np.abs(J))
    np.fill_diagonal(L, -np.inf)
    s = np.zeros(m)
    for _ in range(sweeps):
        moved = False
        for i in range(m):
            r = np.max(L[i] + s) - s[i]
            c = np.max(L[:, i] - s) + s[i]
            if math.isfinite(r) and math.isfinite(c):
                d = float(np.round((r - c) / 2.0))
                if d:
                    s[i] += d
                    moved = True
        if not moved:
            break
    e = s[None, :] - s[:, None]  # B[i, j] = J[i, j]·2^(s_j − s_i)
    return np.ldexp(J, e.astype(int))


def spectral_radius(opt: Optimizer, f: TestFunction, x_bar: Any, *, h: float | None = None
                    ) -> float:
    """ρ(Jac G(z̄)), the largest eigenvalue modulus of the linearized map."""
    return float(np.max(np.abs(eigenvalues(jacobian(opt, f, x_bar, h=h)))))


def next_float_radius(opt: Optimizer, f: TestFunction, x_bar: Any) -> float | None:
    """ρ(Jac G) at the float state next to z̄ = init(x̄): every component moved by one
    ulp (toward +∞, or into the declared domain), or None when it cannot be measured.

    A run never returns to z̄ exactly: its buffers sit on floats next to it. Normally
    one ulp is far inside the linear regime and ρ does not move. When a hyperparameter
    is at the float spacing of a buffer (RMSprop/Adam at ε = 5e-324: v = 0 and v = one
    ulp give √(v + ε) = √ε and √(2ε), and β₂·v rounds back to v below 0.5/(1 − β₂)
    ulps, so v never decays to 0), the nearest float states have another ρ, and runs
    follow that one, not the linearization at z̄.
    """
    X = as_batch(x_bar, f.dim, "x_bar")[:1]
    Z, shapes = _flatten(lifted_state(opt, X), 1)
    lo, hi = _domain_bounds(opt, shapes)
    up = np.nextafter(Z, np.inf)
    Zp = np.where(up <= hi, up, np.nextafter(Z, -np.inf))
    Zp = np.where(Zp >= lo, Zp, Z)
    if np.array_equal(Zp, Z):
        return None
    h = _first_step(f, X[0])[2]
    oracle = GuardedOracle(f)
    try:
        lin = batched_linearization(opt, lambda rows: oracle, Zp, shapes, h=h)
    except (NotDifferentiableError, UnresolvedLinearizationError):
        return None
    J = lin.J[0]
    if not (lin.converged[0] and np.all(np.isfinite(J))):
        return None
    return float(np.max(np.abs(eigenvalues(J))))


@dataclass(frozen=True)
class ReductionCheck:
    """Whether ρ(Jac G) on rotated quadratics equals max over eigenvalues of ρ₁(λ)."""

    holds: bool
    max_discrepancy: float
    trials: int
    message: str


def check_spectral_reduction(opt: Optimizer, *, dim: int = 3, trials: int = 8,
                             scale: float | None = None, seed: int = 0,
                             rtol: float = 1e-6) -> ReductionCheck:
    """Test the per-eigenvalue reduction ρ(Jac G) = maxᵢ ρ₁(λᵢ) on random quadratics.

    For each trial, H = Q diag(λ) Qᵀ with Q a random rotation and λ uniform in
    [−scale, scale] (default: the size of the optimizer's filter). When the update is a
    polynomial in H (every built-in) both sides agree to rounding; a per-coordinate
    preconditioner or any non-spectral update breaks the equality, and then only the
    general condition ρ(Jac G(z̄)) ≤ 1 applies.
    """
    from dynverify.derive import filter_function  # circular at import time

    if scale is None:
        region = opt.region
        if region is None:
            from dynverify.derive import derive_region
            region = derive_region(opt)
        scale = 1.5 * region.scale if not region.empty and region.scale > 1e-300 else 1.0
    # a filter reaching ~1e308 (gradient descent at α = 1.2e-308) would make 1.5·scale,
    # or the width 2·scale of the draw, overflow
    scale = min(float(scale), np.finfo(float).max / 2)
    rng = np.random.default_rng(seed)
    rho1 = filter_function(opt)
    worst = 0.0
    for _ in range(trials):
        lams = rng.uniform(-scale, scale, dim)
        Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
        Q = Q * np.sign(np.diag(R))
        for shrink in range(8):
            try:
                full = spectral_radius(opt, Quadratic(Q @ np.diag(lams) @ Q.T), np.zeros(dim))
                break
            except UnresolvedLinearizationError:
                # the map cannot be linearized in floats at these curvatures (hessian_usam
                # at α = 5e-324 ends where α·λ³ ~ 2, so λ³ overflows there): the reduction
                # is a property of the map, so probe it at smaller ones
                if shrink == 7:
                    raise
                lams = lams * 1e-3
        per_eig = float(np.max(rho1(lams)))
        worst = max(worst, abs(full - per_eig) / max(1.0, per_eig))
    holds = worst <= rtol
    msg = (f"{opt!r}: per-eigenvalue reduction holds (max relative discrepancy {worst:.2e} "
           f"over {trials} rotated quadratics)" if holds else
           f"{opt!r}: per-eigenvalue reduction does NOT hold: ρ(Jac G) differs from "
           f"max ρ₁(λ) by up to {worst:.3g} (relative) on rotated quadratics; its filter "
           "cannot be stated per eigenvalue, only ρ(Jac G(z̄)) ≤ 1 applies")
    return ReductionCheck(holds=holds, max_discrepancy=worst, trials=trials, message=msg)
