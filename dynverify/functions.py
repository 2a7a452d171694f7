"""Batched test functions: value/grad/hvp/hess on (B, d) arrays, with JSON specs.

A test function f: ℝᵈ → ℝ is evaluated on a batch X of shape (B, d), one point per
row: ``value(X) -> (B,)``, ``grad(X) -> (B, d)``, ``hvp(X, V) -> (B, d)`` (row-wise
∇²f(xᵢ)vᵢ) and ``hess(X) -> (B, d, d)``. Every built-in family has a JSON ``spec`` from
which :func:`from_spec` rebuilds it exactly.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dynverify.errors import FunctionError

try:  # np.einsum without its Python-level dispatch (same kernel, same bits)
    from numpy._core.multiarray import c_einsum as fast_einsum
except ImportError:  # pragma: no cover -- other numpy layouts
    fast_einsum = np.einsum

_SPEC_KINDS: dict[str, Callable[[dict[str, Any]], TestFunction]] = {}


def register_kind(kind: str) -> Callable[[Callable[[dict[str, Any]], TestFunction]],
                                         Callable[[dict[str, Any]], TestFunction]]:
    """Decorator: register a builder ``spec -> TestFunction`` for ``spec["kind"] == kind``."""

    def deco(builder: Callable[[dict[str, Any]], TestFunction]
             ) -> Callable[[dict[str, Any]], TestFunction]:
        _SPEC_KINDS[kind] = builder
        return builder

    return deco


def from_spec(spec: dict[str, Any] | str) -> TestFunction:
    """Rebuild a test function from its JSON spec (a dict, or a JSON string)."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValueError(f"function spec is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"function spec must be a dict with a 'kind' key, got {spec!r:.200}")
    _load_builtin_kinds()
    kind = spec["kind"]
    if kind not in _SPEC_KINDS:
        raise ValueError(f"unknown function kind {kind!r}; known: {sorted(_SPEC_KINDS)}")
    try:
        return _SPEC_KINDS[kind](spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed {kind!r} function spec: {exc}") from exc


def _load_builtin_kinds() -> None:
    # Families defined in other modules register themselves on import.
    for mod in ("dynverify.planted", "dynverify.landscapes"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def as_batch(X: Any, dim: int, what: str = "X") -> np.ndarray:
    """Validate and return X as a float (B, dim) array (a (dim,) vector becomes (1, dim))."""
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (B, {dim}), got {np.shape(X)}")
    return arr


class TestFunction:
    """Base of batched test functions. Subclasses give ``value`` and ``grad`` and at least
    one of ``hvp``/``hess``; the other is derived. ``spec()`` returns a JSON-safe dict."""

    __test__ = False  # not a pytest test class
    dim: int

    def value(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.einsum("bij,bj->bi", self.hess(X), V)

    def hess(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        B, d = X.shape
        cols = [self.hvp(X, np.broadcast_to(np.eye(d)[j], (B, d))) for j in range(d)]
        return np.stack(cols, axis=-1)

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} has no JSON spec")

    def critical_points(self) -> np.ndarray | None:
        """Known critical points as a (K, d) array, or None when not known in closed form."""
        return None


class Quadratic(TestFunction):
    """f(x) = ½ (x − x̄)ᵀ H (x − x̄) with H symmetric.

    Example:
        >>> q = Quadratic([[2.0, 0.0], [0.0, -1.0]])
        >>> q.grad(np.array([[1.0, 1.0]])).tolist()
        [[2.0, -1.0]]
    """

    def __init__(self, H: Any, x_star: Any = None) -> None:
        H = np.atleast_2d(np.asarray(H, dtype=float))
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"H must be a square matrix, got shape {H.shape}")
        if not np.all(np.isfinite(H)):
            raise ValueError("H must be finite")
        # relative to the whole matrix: Q diag(λ) Qᵀ is symmetric only up to rounding,
        # which an entrywise relative test rejects wherever an entry is nearly 0; the
        # absolute floor covers subnormal matrices, whose rounding is not relative
        asym = np.max(np.abs(H - H.T), initial=0.0)
        if asym > 1e-12 * np.max(np.abs(H), initial=0.0) + 1e-300:
            raise ValueError("H must be symmetric")
        self.dim = H.shape[0]
        self.H = 0.5 * (H + H.T)
        self.x_star = (np.zeros(self.dim) if x_star is None
                       else np.asarray(x_star, dtype=float).reshape(self.dim))

    @classmethod
    def diagonal(cls, eigenvalues: Any, x_star: Any = None) -> Quadratic:
        return cls(np.diag(np.atleast_1d(np.asarray(eigenvalues, dtype=float))), x_star)

    def value(self, X: np.ndarray) -> np.ndarray:
        U = X - self.x_star
        return 0.5 * np.einsum("bi,bi->b", U @ self.H, U)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_star) @ self.H

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return V @ self.H

    def hess(self, X: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.H, (X.shape[0], self.dim, self.dim)).copy()

    def critical_points(self) -> np.ndarray:
        return self.x_star[None, :]

    def spec(self) -> dict[str, Any]:
        return {"kind": "quadratic", "H": self.H.tolist(), "x_star": self.x_star.tolist()}

    def __repr__(self) -> str:
        return f"Quadratic(H={self.H.tolist()!r}, x_star={self.x_star.tolist()!r})"


@register_kind("quadratic")
def _quadratic_from_spec(spec: dict[str, Any]) -> Quadratic:
    return Quadratic(spec["H"], spec.get("x_star"))


class RowQuadratics(TestFunction):
    """One-dimensional quadratics f_i(x) = λᵢx²/2, a different λᵢ for each row.

    Rows are independent trajectories, so a batch can carry one curvature per row: this
    is how a filter λ ↦ ρ(λ) is evaluated for many λ in a single ``step`` call.
    """

    dim = 1

    def __init__(self, lams: Any) -> None:
        self.lams = np.asarray(lams, dtype=float).reshape(-1, 1)

    def value(self, X: np.ndarray) -> np.ndarray:
        return 0.5 * (self.lams * X * X)[:, 0]

    def grad(self, X: np.ndarray) -> np.ndarray:
        return self.lams * X

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self.lams * V

    def hess(self, X: np.ndarray) -> np.ndarray:
        return self.lams[:, :, None] * np.ones((1, 1, 1))

    def __repr__(self) -> str:
        return f"RowQuadratics(lams={self.lams[:, 0].tolist()!r})"


class AutogradFunction(TestFunction):
    """A scalar function of one point, written with ``autograd.numpy``, batched.

    The point is passed coordinates-first: ``fun(x)`` receives x of shape (d, B), so
    ``x[0]`` is the first coordinate of every row at once and elementwise expressions
    evaluate all rows in one call. Reductions over coordinates must use ``axis=0``
    (``np.sum(x**2, axis=0)``). Functions that do not vectorize this way are detected on
    a probe batch and evaluated row by row, with a warning.
    """

    def __init__(self, fun: Callable[[Any], Any], dim: int, *, name: str | None = None) -> None:
        import autograd

        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.fun = fun
        self.dim = int(dim)
        self.name = name or getattr(fun, "__qualname__", repr(fun))
        self._vectorized = self._probe()
        if self._vectorized:
            def total(Xt: Any) -> Any:
                return autograd.numpy.sum(fun(Xt))
        else:
            def total(Xt: Any) -> Any:
                return sum(fun(Xt[:, b]) for b in range(Xt.shape[1]))
        self._total = total
        self._grad_t = autograd.grad(total)
        self._hvp_t = autograd.grad(
            lambda Xt, Vt: autograd.numpy.sum(self._grad_t(Xt) * Vt))

    def _probe(self) -> bool:
        rng = np.random.default_rng(0)
        P = rng.standard_normal((3, self.dim))
        try:
            batched = np.asarray(self.fun(P.T), dtype=float)
            ok = batched.shape == (3,)
            if ok:
                rows = np.array([float(self.fun(p)) for p in P])
                ok = bool(np.allclose(batched, rows, rtol=1e-12, atol=1e-12, equal_nan=True))
        except Exception:  # noqa: BLE001 -- any failure means "not vectorizable"
            ok = False
        if not ok:
            warnings.warn(
                f"{self.name}: function does not vectorize over a (d, B) argument; "
                "evaluating row by row (write it with x[i] and axis=0 reductions to batch it)",
                stacklevel=3,
            )
        return ok

    def value(self, X: np.ndarray) -> np.ndarray:
        Xt = np.asarray(X, dtype=float).T
        if self._vectorized:
            return np.asarray(self.fun(Xt), dtype=float).reshape(X.shape[0])
        return np.array([float(self.fun(Xt[:, b])) for b in range(Xt.shape[1])])

    def grad(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._grad_t(np.asarray(X, dtype=float).T)).T

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return np.asarray(self._hvp_t(X.T, np.asarray(V, dtype=float).T)).T

    def spec(self) -> dict[str, Any]:
        module = getattr(self.fun, "__module__", None)
        qual = getattr(self.fun, "__qualname__", "")
        if not module or "<" in qual:
            raise NotImplementedError(
                f"{self.name} is not importable (a lambda or local function): no JSON spec")
        return {"kind": "callable", "target": f"{module}:{qual}", "dim": self.dim}

    def __repr__(self) -> str:
        return f"from_callable({self.name}, dim={self.dim})"


def from_callable(fun: Callable[[Any], Any], dim: int) -> AutogradFunction:
    """Wrap ``fun(x) -> float`` written with ``autograd.numpy`` as a batched test function.

    Example:
        >>> import autograd.numpy as anp
        >>> rosen = from_callable(lambda x: (1 - x[0])**2 + 100 * (x[1] - x[0]**2)**2, 2)
        >>> rosen.grad(np.array([[1.0, 1.0]])).tolist()
        [[0.0, 0.0]]
    """
    return AutogradFunction(fun, dim)


@register_kind("callable")
def _callable_from_spec(spec: dict[str, Any]) -> AutogradFunction:
    module, _, qual = str(spec["target"]).partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import function {spec['target']!r}: {exc}") from exc
    return AutogradFunction(obj, int(spec["dim"]))


class GuardedOracle:
    """Wraps a test function so that its failures name the function and the step.

    Raises :class:`FunctionError` when the function raises or returns a wrong shape.
    Non-finite values pass through: the engine turns them into a per-row status.
    ``converted`` becomes True when an output was not already a float64 array (the
    engine then keeps calling through the guard, which converts it).
    """

    def __init__(self, f: TestFunction) -> None:
        self.f = f
        self.dim = f.dim
        self.step = 0
        self.converted = False

    def _call(self, what: str, fn: Callable[..., np.ndarray], shape: tuple[int, ...],
              *args: np.ndarray) -> np.ndarray:
        try:
            raw = fn(*args)
            out = np.asarray(raw, dtype=float)
        except Exception as exc:  # noqa: BLE001 -- re-raised with context
            raise FunctionError(
                f"{self.f!r}.{what} raised at step {self.step}: {type(exc).__name__}: {exc}"
            ) from exc
        if out.shape != shape:
            raise FunctionError(
                f"{self.f!r}.{what} returned shape {out.shape} at step {self.step}, "
                f"expected {shape}")
        if out is not raw:
            self.converted = True
        return out

    def value(self, X: np.ndarray) -> np.ndarray:
        return self._call("value", self.f.value, (X.shape[0],), X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return self._call("grad", self.f.grad, X.shape, X)

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self._call("hvp", self.f.hvp, X.shape, X, V)

    def hess(self, X: np.ndarray) -> np.ndarray:
        return self._call("hess", self.f.hess, (X.shape[0], self.dim, self.dim), X)


class RotatedFunction(TestFunction):
    """g(x) = f(xQ) for a row vector x: f in coordinates rotated by the orthogonal Q."""

    def __init__(self, f: TestFunction, Q: Any) -> None:
        self.f, self.Q, self.dim = f, np.asarray(Q, dtype=float), f.dim
        if self.Q.shape != (f.dim, f.dim):
            raise ValueError(f"Q must have shape ({f.dim}, {f.dim}), got {self.Q.shape}")

    def value(self, X: np.ndarray) -> np.ndarray:
        return self.f.value(X @ self.Q)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return self.f.grad(X @ self.Q) @ self.Q.T

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self.f.hvp(X @ self.Q, V @ self.Q) @ self.Q.T

    def spec(self) -> dict[str, Any]:
        return {"kind": "rotated", "Q": self.Q.tolist(), "f": self.f.spec()}

    def __repr__(self) -> str:
        return f"RotatedFunction({self.f!r}, Q={self.Q.tolist()!r})"


@register_kind("rotated")
def _rotated_from_spec(spec: dict[str, Any]) -> RotatedFunction:
    return RotatedFunction(from_spec(spec["f"]), spec["Q"])


class ScaledFunction(TestFunction):
    """g = c·f: scales every eigenvalue of the Hessian by c."""

    def __init__(self, f: TestFunction, c: float) -> None:
        self.f, self.c, self.dim = f, float(c), f.dim
        if not np.isfinite(self.c):
            raise ValueError(f"scale c must be finite, got {c!r}")

    def value(self, X: np.ndarray) -> np.ndarray:
        return self.c * self.f.value(X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return self.c * self.f.grad(X)

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self.c * self.f.hvp(X, V)

    def hess(self, X: np.ndarray) -> np.ndarray:
        return self.c * self.f.hess(X)

    def critical_points(self) -> np.ndarray | None:
        return self.f.critical_points()

    def spec(self) -> dict[str, Any]:
        return {"kind": "scaled", "c": self.c, "f": self.f.spec()}

    def __repr__(self) -> str:
        return f"{self.c!r} * {self.f!r}"


@register_kind("scaled")
def _scaled_from_spec(spec: dict[str, Any]) -> ScaledFunction:
    return ScaledFunction(from_spec(spec["f"]), spec["c"])
