"""The ball around a planted point x̄ in which the linearization of the *map* governs.

A planted function is quadratic up to a relative error of 1 % within its
``quadratic_radius`` q. Gradient descent only evaluates ∇f at the iterate, so starting
within q is local enough. SAM-type maps evaluate ∇f (and ∇²f) at points the map itself
moves away from x: two-step USAM at y₂ ≈ (1 + ρλ)²x, which for ρλ = 12 is 169 times
farther from x̄ than x. The local claims must start where *every* point the map
evaluates stays within q, so the ball is shrunk by the measured amplification

    A = max over the step's oracle calls c of ‖M_c‖₂,   y_c ≈ x̄ + M_c (x − x̄),

obtained by recording the points each oracle call receives during one step from
x̄ ± h·eⱼ (central differences; the map is linear there). Nothing is special-cased by
optimizer name: plug-ins are measured the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dynverify.errors import FunctionError, OptimizerError
from dynverify.functions import GuardedOracle, TestFunction
from dynverify.linearize import apply_step, lifted_state
from dynverify.optimizer import Optimizer

#: initial points of local claims lie in a ball of this radius at most
LOCAL_RADIUS = 1e-2


class _RecordingOracle:
    """An oracle that remembers every batch of points it is asked about."""

    def __init__(self, f: TestFunction) -> None:
        self._f = GuardedOracle(f)
        self.dim = f.dim
        self.step = 0
        self.points: list[np.ndarray] = []

    def value(self, X: np.ndarray) -> np.ndarray:
        self.points.append(np.array(X, dtype=float))
        return self._f.value(X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        self.points.append(np.array(X, dtype=float))
        return self._f.grad(X)

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        self.points.append(np.array(X, dtype=float))
        return self._f.hvp(X, V)

    def hess(self, X: np.ndarray) -> np.ndarray:
        self.points.append(np.array(X, dtype=float))
        return self._f.hess(X)


def evaluation_amplification(opt: Optimizer, f: TestFunction, x_star: Any, *,
                             h: float = 1e-7) -> float:
    """A ≥ 1: how much farther from x̄ than x the points evaluated by one step lie.

    Measured at x̄ ± h·eⱼ and x̄ ± 2h·eⱼ (h relative to 1 + ‖x̄‖). Returns 1 when the step
    cannot be measured (it raises or returns non-finite values: the claims report that
    themselves) or when the evaluated points do not move linearly with x (a map that is
    not differentiable at x̄, such as normalized SAM, whose perturbation has length ρ at
    every x: no ball makes it local, and its claims are outside the hypotheses anyway).

    Example:
        >>> from dynverify.optimizers import two_step_usam
        >>> from dynverify.planted import PlantedFunction
        >>> A = evaluation_amplification(two_step_usam(lr=0.001, rho=2.0),
        ...                              PlantedFunction([6.0]), [0.0])
        >>> round(A, 6)   # y₂ = (1 + ρλ)² x
        169.0
    """
    xs = np.asarray(x_star, dtype=float).reshape(-1)
    d = xs.size
    step = h * (1.0 + float(np.max(np.abs(xs), initial=0.0)))
    E = np.eye(d)
    X = xs[None, :] + step * np.concatenate([E, -E, 2 * E, -2 * E])
    oracle = _RecordingOracle(f)
    try:
        with np.errstate(all="ignore"):
            apply_step(opt, lifted_state(opt, X), oracle)
    except (OptimizerError, FunctionError):
        return 1.0
    amp = 1.0
    for Y in oracle.points:
        if Y.shape != X.shape or not np.all(np.isfinite(Y)):
            return 1.0  # a call on some rows only, or non-finite points: not measurable
        with np.errstate(all="ignore"):  # points near 1e308: the quotients overflow
            M1 = (Y[:d] - Y[d:2 * d]).T / (2.0 * step)  # column j: response to eⱼ
            M2 = (Y[2 * d:3 * d] - Y[3 * d:]).T / (4.0 * step)
        if not (np.all(np.isfinite(M1)) and np.all(np.isfinite(M2))):
            return 1.0  # (and LAPACK's SVD would print DLASCL errors on ∞ entries)
        a1, a2 = float(np.linalg.norm(M1, 2)), float(np.linalg.norm(M2, 2))
        if not abs(a1 - a2) <= 1e-3 * max(a1, a2, 1.0):
            return 1.0  # the evaluated points do not move linearly with x
        amp = max(amp, a1)
    return amp if math.isfinite(amp) else 1.0


def local_radius(opt: Optimizer, f: TestFunction, x_star: Any, *,
                 cap: float = LOCAL_RADIUS) -> tuple[float, float]:
    """(radius, A): start within radius of x̄ so that every evaluated point stays local.

    radius = min(q / A, cap), q the function's ``quadratic_radius()`` (``cap`` for
    functions that do not know theirs) and A :func:`evaluation_amplification`.
    """
    q = float(f.quadratic_radius()) if hasattr(f, "quadratic_radius") else cap
    amp = evaluation_amplification(opt, f, x_star)
    return min(q / amp, cap), amp


def linear_radius(opt: Optimizer, f: TestFunction, x_star: Any, radius: float,
                  margin: float, *, share: float = 0.1, halvings: int = 40) -> float:
    """The largest radius/2ᵏ at which one step deviates from its linearization by at most
    share·margin·radius (margin = |1 − r|, the claim's distance to the boundary).

    The evaluated points can all be local while the map itself is far from linear, when
    its linear part nearly cancels (penalty SAM with 1 + ρλ ≈ 0: the linear term is
    λ(1 + ρλ)u, the quadratic ρ∇²f∇f term is not small beside it).
    """
    from dynverify.linearize import _flatten, jacobian

    xs = np.asarray(x_star, dtype=float).reshape(-1)
    d = xs.size
    try:
        with np.errstate(all="ignore"):
            J = jacobian(opt, f, xs)
            z0 = _flatten(lifted_state(opt, xs[None, :]), 1)[0][0]
            g0 = _flatten(apply_step(opt, lifted_state(opt, xs[None, :]), GuardedOracle(f)),
                          1)[0][0]
            E = np.concatenate([np.eye(d), -np.eye(d)])
            for _ in range(halvings):
                X = xs[None, :] + radius * E
                Z = _flatten(lifted_state(opt, X), 2 * d)[0]
                G = _flatten(apply_step(opt, lifted_state(opt, X), GuardedOracle(f)), 2 * d)[0]
                err = np.max(np.linalg.norm(G - g0 - (Z - z0) @ J.T, axis=1))
                if err <= share * margin * radius:
                    return radius
                radius /= 2.0
    except Exception:  # noqa: BLE001 -- the claims report broken maps themselves
        return radius
    return radius


def into_ball(X0: np.ndarray, center: np.ndarray, radius: float) -> tuple[np.ndarray, int]:
    """Rows of X0 farther than ``radius`` from ``center`` pulled back onto the sphere.

    Returns the new points and how many were moved.
    """
    U = X0 - center
    dist = np.sqrt(np.sum(U * U, axis=1))
    far = dist > radius
    if not far.any():
        return X0, 0
    scale = np.where(far, radius / np.where(far, dist, 1.0), 1.0)
    return center + U * scale[:, None], int(far.sum())


__all__ = ["LOCAL_RADIUS", "evaluation_amplification", "into_ball", "local_radius"]
