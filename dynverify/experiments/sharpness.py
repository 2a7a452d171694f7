"""Extreme Hessian eigenvalues of a loss at a point, by Lanczos on Hessian-vector products.

The Hessian ∇²f(θ) of a network's loss has d² entries, but Lanczos only needs products
∇²f(θ)v: ``scipy.sparse.linalg.eigsh`` (ARPACK's implicitly restarted Lanczos) on a
``LinearOperator`` whose matvec is one HVP finds the top eigenvalue (the *sharpness*) and
the bottom one in a few dozen products. Small problems use the dense Hessian instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: below this dimension the dense Hessian (d HVPs) is cheaper and exact
DENSE_BELOW = 64


@dataclass(frozen=True)
class Extremes:
    """Bottom and top eigenvalue of ∇²f(θ); ``method`` says how they were computed;
    ``converged`` is False when Lanczos stopped early (values are then its best estimates)."""

    bottom: float
    top: float
    method: str
    hvps: int
    converged: bool = True


def hessian(f, theta: np.ndarray) -> np.ndarray:
    """The dense Hessian from d Hessian-vector products (symmetrized)."""
    theta = np.asarray(theta, dtype=float).ravel()
    d = theta.size
    X = np.broadcast_to(theta, (d, d))
    H = np.asarray(f.hvp(X, np.eye(d)), dtype=float)
    return 0.5 * (H + H.T)


def extreme_eigenvalues(f, theta: np.ndarray, *, tol: float = 1e-8, seed: int = 0,
                        maxiter: int | None = None) -> Extremes:
    """Smallest and largest eigenvalue of ∇²f(θ) (f has the batched ``hvp`` of test functions).

    Example:
        >>> from dynverify.functions import Quadratic
        >>> e = extreme_eigenvalues(Quadratic(np.diag([3.0, -1.0, 0.5])), np.zeros(3))
        >>> round(e.bottom, 12), round(e.top, 12)
        (-1.0, 3.0)
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    theta = np.asarray(theta, dtype=float).ravel()
    d = theta.size
    if not np.all(np.isfinite(theta)):
        raise ValueError("extreme_eigenvalues: the point has non-finite coordinates")
    if d < DENSE_BELOW:
        lam = np.linalg.eigvalsh(hessian(f, theta))
        return Extremes(float(lam[0]), float(lam[-1]), "dense", d)
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return np.asarray(f.hvp(theta[None, :], np.asarray(v, dtype=float).reshape(1, d)))[0]

    op = LinearOperator((d, d), matvec=matvec, dtype=float)
    v0 = np.random.default_rng(seed).normal(size=d)  # a fixed start: reproducible values
    out, ok = [], True
    for which in ("SA", "LA"):
        try:
            # the bottom end is often a cluster near 0 (flat directions): a wider Krylov
            # basis halves the products there (measured on digits MLPs)
            ncv = min(d - 1, 40 if which == "SA" else 20)
            out.append(float(eigsh(op, k=1, which=which, v0=v0, tol=tol, maxiter=maxiter,
                                   ncv=ncv, return_eigenvectors=False)[0]))
        except ArpackNoConvergence as exc:
            ok = False
            if len(exc.eigenvalues):
                out.append(float(exc.eigenvalues[0]))
            else:
                warnings.warn("Lanczos did not converge; falling back to the dense Hessian",
                              RuntimeWarning, stacklevel=2)
                lam = np.linalg.eigvalsh(hessian(f, theta))
                return Extremes(float(lam[0]), float(lam[-1]), "dense", count[0] + d)
    return Extremes(out[0], out[1], "lanczos", count[0], ok)


def all_eigenvalues(f, theta: np.ndarray) -> np.ndarray:
    """Every eigenvalue of ∇²f(θ), ascending (dense; for small networks)."""
    return np.linalg.eigvalsh(hessian(f, theta))
