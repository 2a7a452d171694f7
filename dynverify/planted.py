"""Planted critical points: f(x) = ½uᵀQΛQᵀu + Σₖ cₖφₖ(aₖᵀu) + μ‖u‖⁴, u = x − x̄.

Every φₖ in :data:`PHIS` is semialgebraic with φ(0) = φ′(0) = φ″(0) = 0, so x̄ is a
critical point with Hessian exactly Q diag(λ) Qᵀ: the spectrum is planted, not measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynverify.functions import TestFunction, as_batch, register_kind

Array = np.ndarray


@dataclass(frozen=True)
class Phi:
    """A scalar term φ with φ(0) = φ′(0) = φ″(0) = 0 and |φ″(t)| ≤ lip·|t| for |t| ≤ 1.

    ``smoothness`` is the largest k with φ ∈ Cᵏ (``math.inf`` for C^∞).
    """

    name: str
    formula: str
    value: Callable[[Array], Array]
    d1: Callable[[Array], Array]
    d2: Callable[[Array], Array]
    lip: float
    smoothness: float


# Derivatives, evaluated at every step, write t³ as t·t·t: numpy's power calls libm pow
# per element, which costs ~15 times two multiplications (the result differs by at most
# an ulp or two).


def _cube(t: Array) -> Array:
    return t * t * t


def _rational_d1(t: Array) -> Array:
    q = 1.0 + t * t
    return 2.0 * (t * t * t) * (2.0 + t * t) / (q * q)


def _rational_d2(t: Array) -> Array:
    t2 = t * t
    return 2.0 * t2 * (6.0 + 3.0 * t2 + t2 * t2) / _cube(1.0 + t2)


def _sqrt_value(t: Array) -> Array:
    # √(1+t²) − 1 = t²/(√(1+t²) + 1), written without cancellation for small t
    s = np.sqrt(1.0 + t * t)
    return (t * t / (s + 1.0)) ** 2


def _sqrt_d1(t: Array) -> Array:
    s = np.sqrt(1.0 + t * t)
    return 2.0 * (t * t * t) / (s * (s + 1.0))


def _sqrt_d2(t: Array) -> Array:
    t2 = t * t
    s = np.sqrt(1.0 + t2)
    return 2.0 * t2 / (1.0 + t2) + 2.0 * t2 / ((s + 1.0) * _cube(s))


def _relu(t: Array) -> Array:
    return np.maximum(t, 0.0)


#: the catalogue of terms, by name (constants ``lip`` are checked in tests/test_planted.py)
PHIS: dict[str, Phi] = {p.name: p for p in (
    Phi("cube", "t³", lambda t: t**3, lambda t: 3.0 * t * t, lambda t: 6.0 * t,
        6.0, math.inf),
    Phi("quartic", "t⁴", lambda t: t**4, lambda t: 4.0 * (t * t * t), lambda t: 12.0 * t * t,
        12.0, math.inf),
    Phi("abs_cube", "|t|³", lambda t: np.abs(t) ** 3, lambda t: 3.0 * t * np.abs(t),
        lambda t: 6.0 * np.abs(t), 6.0, 2),
    Phi("relu_cube", "max(t, 0)³", lambda t: _relu(t) ** 3, lambda t: 3.0 * _relu(t) ** 2,
        lambda t: 6.0 * _relu(t), 6.0, 2),
    Phi("signed_quartic", "t³|t|", lambda t: t**3 * np.abs(t),
        lambda t: 4.0 * t * t * np.abs(t), lambda t: 12.0 * t * np.abs(t), 12.0, 3),
    Phi("relu_quartic", "max(t, 0)⁴", lambda t: _relu(t) ** 4, lambda t: 4.0 * _cube(_relu(t)),
        lambda t: 12.0 * _relu(t) ** 2, 12.0, 3),
    Phi("rational", "t⁴/(1 + t²)", lambda t: t**4 / (1.0 + t * t), _rational_d1, _rational_d2,
        4.0, math.inf),
    Phi("sqrt", "(√(1 + t²) − 1)²", _sqrt_value, _sqrt_d1, _sqrt_d2, 3.0, math.inf),
)}


def phis(smoothness: int = 2) -> tuple[str, ...]:
    """Names of the catalogue terms that are at least C^smoothness."""
    return tuple(name for name, p in PHIS.items() if p.smoothness >= smoothness)


@dataclass(frozen=True)
class Term:
    """One term c·φ(aᵀu) of a planted function (a a unit vector)."""

    phi: str
    c: float
    a: tuple[float, ...]

    def __repr__(self) -> str:
        return f"Term({self.phi!r}, c={self.c!r}, a={self.a!r})"


def _floats(values: Any, name: str, shape: tuple[int, ...] | None = None) -> Array:
    arr = np.array(values, dtype=float)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


class PlantedFunction(TestFunction):
    """f(x) = ½uᵀQ diag(λ) Qᵀu + Σₖ cₖφₖ(aₖᵀu) + μ‖u‖⁴ with u = x − x̄.

    ∇f(x̄) = 0 and ∇²f(x̄) = Q diag(λ) Qᵀ exactly, since every φₖ vanishes to second
    order at 0. Q is stored explicitly, so the JSON spec rebuilds f bit for bit.

    Args:
        spectrum: the planted eigenvalues λ (length d).
        x_star: the planted critical point x̄ (default 0).
        rotation: the orthogonal Q (default identity).
        terms: :class:`Term` objects or ``(phi, c, a)`` triples, φ a name in :data:`PHIS`.
        mu: the quartic coefficient μ ≥ 0.

    Example:
        >>> f = PlantedFunction([20.0])
        >>> f
        PlantedFunction(dim=1, spectrum=(20.0,), x_star=(0.0,), terms=())
        >>> f.grad(np.array([[0.5]])).tolist()
        [[10.0]]
    """

    def __init__(self, spectrum: Sequence[float], x_star: Sequence[float] | None = None,
                 rotation: Any = None, terms: Sequence[Any] = (), mu: float = 0.0) -> None:
        lam = _floats(spectrum, "spectrum").reshape(-1)
        d = lam.shape[0]
        if d < 1:
            raise ValueError("spectrum must have at least one eigenvalue")
        self.dim = d
        self.spectrum: tuple[float, ...] = tuple(float(v) for v in lam)
        self._lam = lam
        xs = np.zeros(d) if x_star is None else _floats(x_star, "x_star", (d,))
        self.x_star: tuple[float, ...] = tuple(float(v) for v in xs)
        self._xs = xs
        Q = np.eye(d) if rotation is None else _floats(rotation, "rotation", (d, d))
        if not np.allclose(Q.T @ Q, np.eye(d), rtol=0.0, atol=1e-10):
            raise ValueError("rotation must be orthogonal")
        self.rotation = Q
        self.terms: tuple[Term, ...] = tuple(self._term(t) for t in terms)
        self.mu = float(mu)
        if not (math.isfinite(self.mu) and self.mu >= 0.0):
            raise ValueError(f"mu must be finite and >= 0, got {mu!r}")
        self._H = (Q * lam) @ Q.T
        self._A = np.array([t.a for t in self.terms], dtype=float).reshape(-1, d)
        self._c = np.array([t.c for t in self.terms], dtype=float)
        self._phis = [PHIS[t.phi] for t in self.terms]
        # consecutive terms with the same φ form one run: one elementwise call per run
        # on a column slice (elementwise, so the values are those of one call per term,
        # bit for bit; the term order, which the sums follow, is kept)
        self._groups = []
        k = 0
        while k < len(self.terms):
            end = k
            while end < len(self.terms) and self.terms[end].phi == self.terms[k].phi:
                end += 1
            self._groups.append((self._phis[k], slice(k, end), self._c[k:end]))
            k = end
        self._At = self._A.T  # a view: BLAS rounds it as the old code did

    def _term(self, t: Any) -> Term:
        phi, c, a = (t.phi, t.c, t.a) if isinstance(t, Term) else t
        if phi not in PHIS:
            raise ValueError(f"unknown term {phi!r}; known: {sorted(PHIS)}")
        a_arr = _floats(a, "term direction a", (self.dim,))
        c = float(c)
        if not math.isfinite(c):
            raise ValueError("term coefficient c must be finite")
        return Term(str(phi), c, tuple(float(v) for v in a_arr))

    # -- planted data --------------------------------------------------------------
    @property
    def hessian_at_star(self) -> Array:
        """∇²f(x̄) = Q diag(λ) Qᵀ."""
        return self._H.copy()

    @property
    def smoothness(self) -> float:
        """Largest k with f ∈ Cᵏ (math.inf for C^∞): the least smooth term decides."""
        return min((PHIS[t.phi].smoothness for t in self.terms), default=math.inf)

    def critical_points(self) -> Array:
        """The planted point x̄ as a (1, d) array (other critical points are not known)."""
        return self._xs[None, :].copy()

    def quadratic_radius(self, rel: float = 0.01) -> float:
        """Radius r with ‖∇f(x) − QΛQᵀu‖ ≤ rel·min≠0|λ|·‖u‖ whenever ‖u‖ ≤ r.

        From |φₖ″(t)| ≤ Lₖ|t| on |t| ≤ 1 (so |φₖ′(t)| ≤ Lₖt²/2) and ‖∇μ‖u‖⁴‖ = 4μ‖u‖³:
        r is the largest r ≤ 1 with (Σ|cₖ|Lₖ/2)·r + 4μr² ≤ rel·min≠0|λ|. A pure quadratic
        gives ``math.inf``; an all-zero spectrum gives 0.
        """
        if not (math.isfinite(rel) and rel > 0):
            raise ValueError(f"rel must be finite and > 0, got {rel!r}")
        nonzero = np.abs(self._lam[self._lam != 0.0])
        A = sum(abs(t.c) * PHIS[t.phi].lip for t in self.terms) / 2.0
        B = 4.0 * self.mu
        if A == 0.0 and B == 0.0:
            return math.inf
        if nonzero.size == 0:
            return 0.0
        T = rel * float(nonzero.min())
        if B == 0.0:
            r = T / A
        elif A == 0.0:  # √(T/B) as a quotient of roots: 4BT underflows for |λ| ~ 1e-300
            r = math.sqrt(T) / math.sqrt(B)
        else:  # positive root of B r² + A r − T, written without cancellation
            r = 2.0 * T / (A + math.sqrt(A * A + 4.0 * B * T))
        return r if A == 0.0 else min(r, 1.0)

    # -- evaluation ----------------------------------------------------------------
    def _u(self, X: Array) -> Array:
        if not (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2
                and X.shape[1] == self.dim):
            X = as_batch(X, self.dim)
        return X - self._xs

    def _terms(self, T: Array, which: str) -> Array:
        """cₖ·φₖ⁽ʷʰⁱᶜʰ⁾(T[:, k]) for every term k, as a (B, K) array."""
        if len(self._groups) == 1:
            phi, _, c = self._groups[0]
            return c * getattr(phi, which)(T)
        out = np.empty_like(T)
        for phi, cols, c in self._groups:
            out[:, cols] = c * getattr(phi, which)(T[:, cols])
        return out

    def value(self, X: Array) -> Array:
        U = self._u(X)
        out = 0.5 * np.einsum("bi,bi->b", U @ self._H, U)
        if self.terms:
            # summed term by term, in order, like the scalar definition
            V = self._terms(U @ self._At, "value")
            for k in range(V.shape[1]):
                out = out + V[:, k]
        if self.mu:
            r2 = np.einsum("bi,bi->b", U, U)
            out = out + self.mu * r2 * r2
        return out

    def grad(self, X: Array) -> Array:
        U = self._u(X)
        out = U @ self._H
        if self.terms:
            out = out + self._terms(U @ self._At, "d1") @ self._A
        if self.mu:
            r2 = np.einsum("bi,bi->b", U, U)
            out = out + (4.0 * self.mu * r2)[:, None] * U
        return out

    def _d2(self, U: Array) -> Array:
        return self._terms(U @ self._At, "d2")

    def hvp(self, X: Array, V: Array) -> Array:
        U = self._u(X)
        if not (type(V) is np.ndarray and V.dtype == np.float64 and V.shape == U.shape):
            V = as_batch(V, self.dim, "V")
        out = V @ self._H
        if self.terms:
            out = out + (self._d2(U) * (V @ self._At)) @ self._A
        if self.mu:
            r2 = np.einsum("bi,bi->b", U, U)
            uv = np.einsum("bi,bi->b", U, V)
            out = out + self.mu * (4.0 * r2[:, None] * V + 8.0 * uv[:, None] * U)
        return out

    def hess(self, X: Array) -> Array:
        U = self._u(X)
        B, d = U.shape
        out = np.broadcast_to(self._H, (B, d, d)).copy()
        if self.terms:
            out += np.einsum("bk,ki,kj->bij", self._d2(U), self._A, self._A)
        if self.mu:
            r2 = np.einsum("bi,bi->b", U, U)
            out += self.mu * (4.0 * r2[:, None, None] * np.eye(d)
                              + 8.0 * np.einsum("bi,bj->bij", U, U))
        return out

    # -- spec / display ------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {
            "kind": "planted",
            "spectrum": list(self.spectrum),
            "x_star": list(self.x_star),
            "rotation": self.rotation.tolist(),
            "terms": [{"phi": t.phi, "c": t.c, "a": list(t.a)} for t in self.terms],
            "mu": self.mu,
        }

    def __repr__(self) -> str:
        parts = [f"dim={self.dim}", f"spectrum={self.spectrum!r}", f"x_star={self.x_star!r}"]
        if not np.array_equal(self.rotation, np.eye(self.dim)):
            parts.append(f"rotation={self.rotation.tolist()!r}")
        parts.append(f"terms={self.terms!r}")
        if self.mu:
            parts.append(f"mu={self.mu!r}")
        return f"PlantedFunction({', '.join(parts)})"


@register_kind("planted")
def _planted_from_spec(spec: dict[str, Any]) -> PlantedFunction:
    return PlantedFunction(
        spec["spectrum"], spec["x_star"], spec["rotation"],
        [(t["phi"], t["c"], t["a"]) for t in spec["terms"]], spec.get("mu", 0.0))


__all__ = ["PHIS", "Phi", "PlantedFunction", "Term", "phis"]
