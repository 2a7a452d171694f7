"""Full-batch training of a flat parameter vector with any :class:`dynverify.Optimizer`.

The optimizer sees the training loss only through the ordinary oracle contract
(``value``/``grad``/``hvp`` on (B, d) arrays, here B = 1), exactly as it sees the planted
test functions: ``state = opt.init(θ₀)``, ``state = opt.step(state, oracle)``,
``θ = opt.position(state)``. Training stops when ‖∇ℓ(θₜ)‖ < tol (converged: θₜ is a
numerical critical point, the theorem's premise), when the state becomes non-finite, or
when the step budget runs out.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynverify.functions import GuardedOracle
from dynverify.linearize import apply_step, lifted_state
from dynverify.optimizer import Optimizer


class TrainStatus(str, enum.Enum):
    CONVERGED = "converged"  #: ‖∇ℓ‖ < tol
    BUDGET = "budget"  #: the step budget ran out first
    NONFINITE = "nonfinite"  #: the parameters or the loss became NaN/inf


class _CachedOracle:
    """The guarded oracle, remembering its last gradient: the stopping test needs ∇ℓ(θₜ),
    which most optimizers evaluate at θₜ first thing in the next step."""

    def __init__(self, f: Any) -> None:
        self._g = GuardedOracle(f)
        self.dim = f.dim
        self._x: np.ndarray | None = None
        self._gx: np.ndarray | None = None
        self.grad_calls = 0

    @property
    def step(self) -> int:
        return self._g.step

    @step.setter
    def step(self, k: int) -> None:
        self._g.step = k

    def value(self, X: np.ndarray) -> np.ndarray:
        return self._g.value(X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        if self._x is not None and X.shape == self._x.shape and np.array_equal(X, self._x):
            return self._gx.copy()  # type: ignore[union-attr]
        self.grad_calls += 1
        G = self._g.grad(X)
        self._x, self._gx = np.array(X, copy=True), G
        return G.copy()

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self._g.hvp(X, V)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`. ``trace`` holds (step, loss, ‖∇ℓ‖) every ``trace_every``
    steps and at the end; ``state`` is the optimizer's final lifted state;
    ``max_grad_norm`` the largest ‖∇ℓ‖ seen (inf once non-finite)."""

    status: TrainStatus
    steps: int
    theta: np.ndarray
    loss: float
    grad_norm: float
    step_norm: float
    state: tuple[np.ndarray, ...] = field(repr=False)
    trace: list[tuple[int, float, float]] = field(default_factory=list, repr=False)
    grad_calls: int = 0
    max_grad_norm: float = math.nan

    @property
    def converged(self) -> bool:
        return self.status is TrainStatus.CONVERGED


def train(opt: Optimizer, f: Any, theta0: np.ndarray, *, tol: float = 1e-4,
          max_steps: int = 10_000, trace_every: int = 100,
          state: tuple[np.ndarray, ...] | None = None, min_steps: int = 0) -> TrainResult:
    """Iterate ``opt`` on the loss ``f`` from θ₀ until ‖∇f‖ < tol or ``max_steps`` steps.

    Args:
        opt: any optimizer (built-in, plug-in, adapter).
        f: a test function of θ ∈ ℝᵈ (e.g. :class:`~dynverify.experiments.mlp.TrainingLoss`).
        theta0: initial parameters, shape (d,).
        tol: gradient-norm tolerance of convergence (> 0).
        max_steps: step budget (≥ 0).
        trace_every: record (step, loss, ‖∇f‖) every this many steps.
        state: resume from this lifted state instead of ``opt.init(θ₀)``.
        min_steps: never stop on the tolerance before this many steps (to let an unstable
            mode grow when confirming a limit).
    """
    if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
            or max_steps < 0:
        raise ValueError(f"max_steps must be a non-negative integer, got {max_steps!r}")
    theta0 = np.asarray(theta0, dtype=float).reshape(1, -1)
    if theta0.shape[1] != f.dim:
        raise ValueError(f"theta0 has {theta0.shape[1]} entries, the loss takes {f.dim}")
    # divergence is an outcome (status NONFINITE), not an error: no overflow warnings
    with np.errstate(over="ignore", invalid="ignore"):
        return _train(opt, f, theta0, tol, max_steps, trace_every, state, min_steps)


def _train(opt: Optimizer, f: Any, theta0: np.ndarray, tol: float, max_steps: int,
           trace_every: int, state: tuple[np.ndarray, ...] | None, min_steps: int
           ) -> TrainResult:
    oracle = _CachedOracle(f)
    if state is None:
        state = lifted_state(opt, theta0)
    trace: list[tuple[int, float, float]] = []
    x = opt.position(state)
    step_norm = math.nan
    status = TrainStatus.BUDGET
    t = 0
    gmax = 0.0
    while True:
        g = oracle.grad(x)
        gn = float(np.sqrt(np.sum(g * g)))
        gmax = max(gmax, gn) if math.isfinite(gn) else math.inf
        if not (np.all(np.isfinite(x)) and math.isfinite(gn)):
            status = TrainStatus.NONFINITE
            break
        if trace_every and t % trace_every == 0:
            trace.append((t, float(oracle.value(x)[0]), gn))
        if gn < tol and t >= min_steps:
            status = TrainStatus.CONVERGED
            break
        if t >= max_steps:
            break
        oracle.step = t
        state = apply_step(opt, state, oracle, t)
        x_new = opt.position(state)
        step_norm = float(np.sqrt(np.sum((x_new - x) ** 2)))
        x = x_new
        t += 1
    with np.errstate(all="ignore"):
        loss = float(oracle.value(x)[0]) if np.all(np.isfinite(x)) else math.nan
    if not trace or trace[-1][0] != t:
        trace.append((t, loss, gn))
    return TrainResult(status, t, x[0].copy(), loss, gn, step_norm, state, trace,
                       oracle.grad_calls, gmax)
