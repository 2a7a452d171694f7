"""Free-run landscapes: functions with many critical points or whole manifolds of minima.

- :class:`Product`: f(x) = ½(x₁x₂ − c)², minima on the hyperbola x₁x₂ = c (sharpness
  ‖x‖² varies along it), a saddle at 0.
- :class:`MatrixFactorization`: f(U, V) = ½‖UVᵀ − M‖²_F, minima {UVᵀ = M_r}, saddles
  from the other singular triples.
- :class:`Wells`: f(x) = Σᵢ pᵢ((Qᵀ(x − x₀))ᵢ) with pᵢ′(t) = kᵢ∏ⱼ(t − rᵢⱼ): a grid of
  minima, saddles and maxima, all known in closed form.

Each exposes ``critical_points()`` (isolated critical points known in closed form) and,
where minima form a manifold, ``manifold_points(Z)`` (a parametrization) and
``manifold_residual(X)`` (zero exactly on the manifold).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dynverify.functions import TestFunction, as_batch, register_kind
from dynverify.functions import fast_einsum as _einsum

Array = np.ndarray


def _finite(values: Any, name: str) -> Array:
    arr = np.array(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _expm(Z: Array) -> Array:
    """Batched matrix exponential: Taylor series of Z/2ˢ (‖Z/2ˢ‖ ≤ ½), squared s times."""
    norm = float(np.max(np.abs(Z).sum(axis=-1), initial=0.0))
    s = max(0, math.ceil(math.log2(norm)) + 1) if norm > 0 else 0
    A = Z / 2.0**s
    term = np.broadcast_to(np.eye(Z.shape[-1]), Z.shape).copy()
    out = term.copy()
    for k in range(1, 20):
        term = term @ A / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


class Product(TestFunction):
    """f(x) = ½(x₁x₂ − c)² on ℝ², c ≠ 0.

    ∇f = (x₁x₂ − c)(x₂, x₁). Critical set: the hyperbola x₁x₂ = c (minima, Hessian
    vvᵀ with v = (x₂, x₁), eigenvalues 0 and ‖x‖²) and the saddle 0 (eigenvalues ±c).

    Example:
        >>> f = Product(1.0)
        >>> f.grad(f.manifold_points(np.array([[2.0]]))).tolist()
        [[0.0, 0.0]]
    """

    dim = 2
    manifold_params = 1

    def __init__(self, c: float = 1.0) -> None:
        self.c = float(c)
        if not math.isfinite(self.c) or self.c == 0.0:
            raise ValueError(f"c must be finite and nonzero, got {c!r}")

    def _r(self, X: Array) -> tuple[Array, Array]:
        X = as_batch(X, 2)
        return X, X[:, 0] * X[:, 1] - self.c

    def value(self, X: Array) -> Array:
        _, r = self._r(X)
        return 0.5 * r * r

    def grad(self, X: Array) -> Array:
        X, r = self._r(X)
        return r[:, None] * X[:, ::-1]

    def hess(self, X: Array) -> Array:
        X, r = self._r(X)
        v = X[:, ::-1]
        H = np.einsum("bi,bj->bij", v, v)
        H[:, 0, 1] += r
        H[:, 1, 0] += r
        return H

    def critical_points(self) -> Array:
        """The saddle (0, 0); the minima are :meth:`manifold_points`."""
        return np.zeros((1, 2))

    def manifold_points(self, Z: Array) -> Array:
        """(t, c/t) for each row t ≠ 0 of the (n, 1) array Z: points with x₁x₂ = c."""
        t = np.asarray(Z, dtype=float).reshape(-1)
        return np.stack([t, self.c / t], axis=1)

    def manifold_residual(self, X: Array) -> Array:
        """x₁x₂ − c: zero exactly on the manifold of minima."""
        return self._r(X)[1]

    def spec(self) -> dict[str, Any]:
        return {"kind": "product", "c": self.c}

    def __repr__(self) -> str:
        return f"Product(c={self.c!r})"


@register_kind("product")
def _product_from_spec(spec: dict[str, Any]) -> Product:
    return Product(spec["c"])


class MatrixFactorization(TestFunction):
    """f(U, V) = ½‖UVᵀ − M‖²_F, U ∈ ℝ^{m×r}, V ∈ ℝ^{n×r}, x = (vec U, vec V) row-major.

    ∇_U f = RV, ∇_V f = RᵀU with R = UVᵀ − M. For M = Σᵢσᵢuᵢvᵢᵀ and any set S of at
    most r singular triples, U = [√σᵢuᵢ]_{i∈S}, V = [√σᵢvᵢ]_{i∈S} (zero-padded) is
    critical; the r leading triples give the minima, and (U₀G, V₀G⁻ᵀ), G ∈ GL(r), is
    the manifold of minima through them (when σ_r > σ_{r+1}).

    Example:
        >>> f = MatrixFactorization(np.eye(2), rank=2)
        >>> float(f.value(f.critical_points()[-1:])[0])
        0.0
    """

    manifold_residual_name = "‖UVᵀ − M_r‖_F"

    def __init__(self, M: Any, rank: int) -> None:
        M = _finite(M, "M")
        if M.ndim != 2 or min(M.shape) < 1:
            raise ValueError(f"M must be a nonempty matrix, got shape {M.shape}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        self.M = M
        self.m, self.n = M.shape
        self.rank = int(rank)
        self.dim = (self.m + self.n) * self.rank
        self.manifold_params = self.rank * self.rank
        Us, s, Vt = np.linalg.svd(M)
        self._svd = Us, s, Vt.T

    def split(self, X: Array) -> tuple[Array, Array]:
        """(U, V) batches of shapes (B, m, r) and (B, n, r) from a (B, d) batch."""
        if not (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2
                and X.shape[1] == self.dim):
            X = as_batch(X, self.dim)
        k = self.m * self.rank
        return (X[:, :k].reshape(-1, self.m, self.rank),
                X[:, k:].reshape(-1, self.n, self.rank))

    def join(self, U: Array, V: Array) -> Array:
        """The (B, d) batch of (B, m, r) and (B, n, r) factors."""
        B = U.shape[0]
        return np.concatenate((U.reshape(B, -1), V.reshape(B, -1)), axis=1)

    def _residual(self, U: Array, V: Array) -> Array:
        return _einsum("bir,bjr->bij", U, V) - self.M

    def value(self, X: Array) -> Array:
        U, V = self.split(X)
        R = self._residual(U, V)
        return 0.5 * np.einsum("bij,bij->b", R, R)

    def grad(self, X: Array) -> Array:
        U, V = self.split(X)
        R = self._residual(U, V)
        return self.join(R @ V, np.swapaxes(R, 1, 2) @ U)

    def hvp(self, X: Array, W: Array) -> Array:
        U, V = self.split(X)
        dU, dV = self.split(W)
        R = self._residual(U, V)
        dR = _einsum("bir,bjr->bij", dU, V) + _einsum("bir,bjr->bij", U, dV)
        Rt, dRt = np.swapaxes(R, 1, 2), np.swapaxes(dR, 1, 2)
        return self.join(dR @ V + R @ dV, dRt @ U + Rt @ dU)

    def _factors(self, idx: Sequence[int]) -> Array:
        Us, s, Vs = self._svd
        U = np.zeros((self.m, self.rank))
        V = np.zeros((self.n, self.rank))
        for col, i in enumerate(idx):
            U[:, col] = math.sqrt(s[i]) * Us[:, i]
            V[:, col] = math.sqrt(s[i]) * Vs[:, i]
        return self.join(U[None], V[None])[0]

    def critical_points(self) -> Array:
        """(√σ·u, √σ·v) over every set of at most r nonzero singular triples (the last row
        is the leading set: a global minimum); the first row is 0, a saddle if M ≠ 0."""
        s = self._svd[1]
        nz = [i for i in range(len(s)) if s[i] > 0.0]
        sets = [c for k in range(min(self.rank, len(nz)) + 1)
                for c in itertools.combinations(nz, k)]
        sets.sort(key=lambda c: (len(c), [-i for i in c]))
        return np.stack([self._factors(c) for c in sets])

    def manifold_points(self, Z: Array) -> Array:
        """(U₀G, V₀G⁻ᵀ) with G = exp(Z) for each row of the (n, r²) array Z (row-major)."""
        Z = np.asarray(Z, dtype=float).reshape(-1, self.rank, self.rank)
        U0, V0 = self.split(self._factors(range(min(self.rank, len(self._svd[1])))))
        G = _expm(Z)
        return self.join(U0 @ G, V0 @ np.swapaxes(np.linalg.inv(G), 1, 2))

    def manifold_residual(self, X: Array) -> Array:
        """‖UVᵀ − M_r‖_F with M_r the best rank-r approximation of M."""
        U, V = self.split(X)
        Us, s, Vs = self._svd
        k = min(self.rank, len(s))
        Mr = (Us[:, :k] * s[:k]) @ Vs[:, :k].T
        D = np.einsum("bir,bjr->bij", U, V) - Mr
        return np.sqrt(np.einsum("bij,bij->b", D, D))

    def spec(self) -> dict[str, Any]:
        return {"kind": "matrix_factorization", "M": self.M.tolist(), "rank": self.rank}

    def __repr__(self) -> str:
        return f"MatrixFactorization(M={self.M.tolist()!r}, rank={self.rank})"


@register_kind("matrix_factorization")
def _mf_from_spec(spec: dict[str, Any]) -> MatrixFactorization:
    return MatrixFactorization(spec["M"], int(spec["rank"]))


class Wells(TestFunction):
    """f(x) = Σᵢ pᵢ(yᵢ), y = Qᵀ(x − x₀), with pᵢ′(t) = kᵢ∏ⱼ(t − rᵢⱼ) and pᵢ(0) = 0.

    Critical points: x₀ + Qy for every y with yᵢ ∈ {rᵢⱼ}; the Hessian there is
    Q diag(pᵢ″(yᵢ)) Qᵀ with pᵢ″(rᵢⱼ) = kᵢ∏_{l≠j}(rᵢⱼ − rᵢₗ). With three roots per
    coordinate and kᵢ > 0 each pᵢ is a double well: minima, saddles and maxima.

    Example:
        >>> f = Wells([[-1.0, 0.0, 1.0]])
        >>> f.critical_points().tolist()
        [[-1.0], [0.0], [1.0]]
    """

    def __init__(self, roots: Sequence[Sequence[float]], k: Sequence[float] | None = None,
                 x0: Sequence[float] | None = None, rotation: Any = None) -> None:
        self.roots = tuple(tuple(float(r) for r in _finite(rs, "roots").reshape(-1))
                           for rs in roots)
        d = len(self.roots)
        if d < 1 or any(len(rs) < 1 for rs in self.roots):
            raise ValueError("roots must give at least one root for each coordinate")
        if any(len(set(rs)) != len(rs) for rs in self.roots):
            raise ValueError("the roots of each coordinate must be distinct")
        self.dim = d
        self.k = tuple(float(v) for v in (np.ones(d) if k is None else _finite(k, "k")))
        if len(self.k) != d or any(v == 0.0 for v in self.k):
            raise ValueError("k must have one nonzero entry per coordinate")
        self.x0 = np.zeros(d) if x0 is None else _finite(x0, "x0").reshape(d)
        self.rotation = np.eye(d) if rotation is None else _finite(rotation, "rotation")
        if self.rotation.shape != (d, d) or not np.allclose(
                self.rotation.T @ self.rotation, np.eye(d), rtol=0.0, atol=1e-10):
            raise ValueError("rotation must be an orthogonal (d, d) matrix")
        # p_i = k_i ∫_0^t Π_j (s − r_ij) ds, as increasing-degree coefficients
        self._p = [(kk * np.polynomial.Polynomial.fromroots(rs)).integ().coef
                   for kk, rs in zip(self.k, self.roots)]
        # the roots as a (d, R) table padded with NaN, R the most roots of a coordinate;
        # a padded factor is replaced by 1.0, which multiplies exactly
        width = max(len(rs) for rs in self.roots)
        self._R = np.full((d, width), np.nan)
        for i, rs in enumerate(self.roots):
            self._R[i, :len(rs)] = rs
        self._pad = [None if all(len(rs) > j for rs in self.roots)
                     else np.array([len(rs) <= j for rs in self.roots]) for j in range(width)]
        self._K = np.array(self.k)

    def _y(self, X: Array) -> Array:
        if not (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2
                and X.shape[1] == self.dim):
            X = as_batch(X, self.dim)
        return (X - self.x0) @ self.rotation

    def _factors(self, Y: Array) -> list[Array]:
        """(B, d) factors yᵢ − rᵢⱼ for each root index j (1.0 where i has no root j)."""
        out = []
        for j, pad in enumerate(self._pad):
            F = Y - self._R[:, j]
            if pad is not None:
                F[:, pad] = 1.0
            out.append(F)
        return out

    def _d1(self, Y: Array) -> Array:
        # product form, exactly zero at a root; multiplied in root order, like
        # kᵢ·np.prod([yᵢ − rᵢ₀, yᵢ − rᵢ₁, …]) one coordinate at a time
        F = self._factors(Y)
        P = F[0]
        for Fj in F[1:]:
            P = P * Fj
        return self._K * P

    def _d2(self, Y: Array) -> Array:
        # Σⱼ Πₗ≠ⱼ (yᵢ − rᵢₗ), each product in root order, summed in root order from 0
        F = self._factors(Y)
        total = 0.0
        for j, pad in enumerate(self._pad):
            others = F[:j] + F[j + 1:]
            if not others:
                P = np.ones_like(Y)
            else:  # 1·a = a exactly, so starting from the first factor changes no bit
                P = others[0]
                for Fm in others[1:]:
                    P = P * Fm
            if pad is not None:
                P = np.where(pad, 0.0, P)
            total = total + P
        return self._K * total

    def value(self, X: Array) -> Array:
        Y = self._y(X)
        return sum(np.polynomial.polynomial.polyval(Y[:, i], c) for i, c in enumerate(self._p))

    def grad(self, X: Array) -> Array:
        return self._d1(self._y(X)) @ self.rotation.T

    def hess(self, X: Array) -> Array:
        D = self._d2(self._y(X))
        Q = self.rotation
        return np.einsum("ik,bk,jk->bij", Q, D, Q)

    def hvp(self, X: Array, V: Array) -> Array:
        D = self._d2(self._y(X))
        return ((as_batch(V, self.dim, "V") @ self.rotation) * D) @ self.rotation.T

    def critical_points(self) -> Array:
        """Every x₀ + Qy with yᵢ a root of pᵢ′, as a (∏ᵢ#rootsᵢ, d) array."""
        Y = np.array(list(itertools.product(*self.roots)), dtype=float)
        return self.x0 + Y @ self.rotation.T

    def curvatures(self) -> Array:
        """pᵢ″ at each critical point, aligned with :meth:`critical_points`: the Hessian
        eigenvalues there (eigenvectors the columns of Q)."""
        Y = np.array(list(itertools.product(*self.roots)), dtype=float)
        return self._d2(Y)

    def spec(self) -> dict[str, Any]:
        return {"kind": "wells", "roots": [list(rs) for rs in self.roots], "k": list(self.k),
                "x0": self.x0.tolist(), "rotation": self.rotation.tolist()}

    def __repr__(self) -> str:
        parts = [f"roots={self.roots!r}"]
        if any(v != 1.0 for v in self.k):
            parts.append(f"k={self.k!r}")
        if np.any(self.x0):
            parts.append(f"x0={tuple(self.x0.tolist())!r}")
        if not np.array_equal(self.rotation, np.eye(self.dim)):
            parts.append(f"rotation={self.rotation.tolist()!r}")
        return f"Wells({', '.join(parts)})"


@register_kind("wells")
def _wells_from_spec(spec: dict[str, Any]) -> Wells:
    return Wells(spec["roots"], spec["k"], spec["x0"], spec["rotation"])


__all__ = ["MatrixFactorization", "Product", "Wells"]
