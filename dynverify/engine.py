"""Batched iteration of an optimizer's map with a per-row outcome.

All rows are iterated together as one (B, d) batch; a row leaves the active set as soon
as its outcome is decided, so a step costs work only for undecided rows. A row has
converged when its lifted state is a numerical fixed point: with r̂ the observed
contraction of ‖zₜ₊₁ − zₜ‖, the remaining distance ‖Δz‖·r̂/(1 − r̂) is below ``tol``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynverify.errors import OptimizerError
from dynverify.functions import GuardedOracle, TestFunction, as_batch, fast_einsum
from dynverify.linearize import apply_step, lifted_state
from dynverify.optimizer import Optimizer

#: window (in steps) of the contraction estimate that decides convergence
RATE_WINDOW = 20
#: window (in steps) of the reported linear rate: long, because ‖Δz‖ oscillates for
#: complex eigenvalues (momentum) by a bounded factor K, which biases the rate by ≤ log K/w;
#: it never reaches into the first half of a run, where faster modes still contribute
RATE_HISTORY = 128


class Status(enum.IntEnum):
    """Outcome of one trajectory."""

    CONVERGED_TARGET = 0  #: converged, to within ``target_tol`` of the target
    CONVERGED_ELSEWHERE = 1  #: converged to some other fixed point
    ESCAPED = 2  #: left the ball of radius ``escape_radius``
    NONFINITE = 3  #: the state became NaN or infinite
    UNDECIDED = 4  #: the step budget ran out first

    @property
    def converged(self) -> bool:
        return self in (Status.CONVERGED_TARGET, Status.CONVERGED_ELSEWHERE)


@dataclass(frozen=True, repr=False)
class RunResult:
    """Per-row outcome of :func:`run`. Arrays are indexed by the rows of ``X0``.

    ``status`` holds :class:`Status` codes; ``distance`` is ‖x − target‖ (NaN without a
    target); ``step_norm`` is the last ‖zₜ₊₁ − zₜ‖; ``rate`` the estimated linear rate.
    """

    status: np.ndarray
    steps: np.ndarray
    x: np.ndarray
    distance: np.ndarray
    step_norm: np.ndarray
    rate: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[Status, int]:
        """Number of rows with each status (every status present, possibly 0)."""
        return {s: int(np.sum(self.status == s)) for s in Status}

    def where(self, status: Status) -> np.ndarray:
        return np.flatnonzero(self.status == status)

    def with_rows(self, rows: np.ndarray, other: RunResult) -> RunResult:
        """This result with its rows ``rows`` replaced by the rows of ``other``, in order."""
        arrays = {}
        for name in ("status", "steps", "x", "distance", "step_norm", "rate"):
            a = getattr(self, name).copy()
            a[rows] = getattr(other, name)
            arrays[name] = a
        return RunResult(**arrays, settings=self.settings)

    def __len__(self) -> int:
        return int(self.status.size)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s.name.lower()}={n}" for s, n in self.counts().items() if n)
        with np.errstate(all="ignore"):
            med_rate = float(np.nanmedian(self.rate)) if np.isfinite(self.rate).any() else math.nan
        return (f"RunResult(rows={len(self)}, {counts}, max_steps={int(self.steps.max(initial=0))},"
                f" median_rate={med_rate:.4g})")


def step_budget(rate: float, *, start: float, finish: float, factor: float = 2.0,
                minimum: int = 50, maximum: int = 100_000) -> int:
    """Steps to take a distance from ``start`` to ``finish`` at linear rate ``rate``.

    ≈ factor · |log(finish/start)| / |log rate| + minimum, clipped to ``maximum``; rates
    within 1e-12 of 1 get ``maximum``. Works both ways: a contraction (rate < 1) going
    down to ``finish`` and an expansion (rate > 1) growing to an escape radius.

    Example:
        >>> step_budget(0.5, start=1e-2, finish=1e-10)    # 2·26.6 + 50
        104
    """
    if not (start > 0 and finish > 0):
        raise ValueError(f"start and finish must be > 0, got {start!r}, {finish!r}")
    if not rate >= 0 or math.isinf(rate):
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    if abs(math.log(max(rate, 1e-300))) < 1e-12:
        return maximum
    steps = factor * abs(math.log(finish / start)) / abs(math.log(max(rate, 1e-300)))
    return int(min(maximum, math.ceil(steps) + minimum))


def _row_sq_norm(new: tuple[np.ndarray, ...], old: tuple[np.ndarray, ...]) -> np.ndarray:
    """Σ over state components of ‖newᵢ − oldᵢ‖² per row."""
    total = None
    for n, o in zip(new, old):
        d = n - o
        if d.ndim != 2:
            d = d.reshape(n.shape[0], -1)
        sq = fast_einsum("ij,ij->i", d, d)
        total = sq if total is None else total + sq
    assert total is not None
    return total


def _sq_threshold(tol: float) -> float:
    """The least c with s > c ⇒ √s > tol for every double s (√ is correctly rounded).

    Lets the loop compare squared step norms with c instead of taking a square root of
    every row at every step; the root is taken only when a row's outcome is decided.
    """
    c = tol * tol
    while not np.sqrt(np.nextafter(c, math.inf)) > tol:
        c = max(np.nextafter(c, math.inf), c * (1.0 + 1e-12))
    return float(c)


def _validated(new: Any, state: tuple[np.ndarray, ...]) -> bool:
    """Is ``new`` a tuple of float arrays with the shapes of ``state`` (a cheap check)?"""
    if type(new) is not tuple or len(new) != len(state):
        return False
    for n, s in zip(new, state):
        if type(n) is not np.ndarray or n.shape != s.shape or n.dtype != s.dtype:
            return False
    return True


def _guarded_step(opt: Optimizer, state: tuple[np.ndarray, ...], oracle: GuardedOracle,
                  t: int, exc: Exception | None, lean: Any = None) -> tuple[np.ndarray, ...]:
    """Re-run step t through the guarded path after the lean path failed.

    The guarded path raises the error the engine reports (naming the optimizer, the
    function and the step). When it succeeds where the lean call failed (a step that is
    not pure), the lean failure is reported as the guarded path reports it: ``exc`` as
    raised in ``step``, or the lean result ``lean`` checked against the contract.
    """
    oracle.step = t
    new = apply_step(opt, state, oracle, t)
    if exc is not None:
        raise OptimizerError(
            f"optimizer {opt!r} raised at step {t}: {type(exc).__name__}: {exc}") from exc
    if lean is not None:
        apply_step(dataclasses.replace(opt, step=lambda s, f: lean), state, oracle, t)
    return new


def _fitted_rate(hist: np.ndarray, t: int) -> np.ndarray:
    """Linear rate per column: exp of the least-squares slope of log‖Δz‖ over the window.

    The window is the last min((t − 1)/2, RATE_HISTORY) steps: the second half of the run,
    where faster modes have died out. A least-squares slope, unlike the ratio of the
    window's end points, averages out the bounded oscillation of ‖Δz‖ that complex
    eigenvalues (momentum) cause.
    """
    w = min((t - 1) // 2, RATE_HISTORY)
    if w < 1:
        return np.full(hist.shape[1], np.nan)
    H = hist.shape[0]
    return window_rate(hist[np.arange(t - w, t + 1) % H])


def window_rate(window: np.ndarray) -> np.ndarray:
    """exp of the least-squares slope of log‖Δz‖ over the rows of ``window`` (w + 1, n),
    one rate per column; a zero step norm in a column means exact convergence (rate 0)."""
    w = window.shape[0] - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(window)  # (w + 1, n)
    steps = np.arange(w + 1, dtype=float)
    steps -= steps.mean()
    good = np.all(np.isfinite(logs), axis=0)
    slope = np.full(window.shape[1], -np.inf)  # a zero step norm means exact convergence
    if good.any():
        centred = logs[:, good] - logs[:, good].mean(axis=0)
        slope[good] = steps @ centred / (steps @ steps)
    return np.exp(slope)


def run(opt: Optimizer, f: TestFunction, X0: Any, *, target: Any = None, tol: float = 1e-9,
        target_tol: float = 1e-6, max_steps: int = 10_000, escape_radius: float = 1e6
        ) -> RunResult:
    """Iterate ``opt`` on ``f`` from every row of X0 until each row's outcome is decided.

    Args:
        opt: the optimizer.
        f: batched test function (also the oracle passed to ``step``).
        X0: (B, d) initial positions (all finite).
        target: the point convergence is judged against (e.g. a planted x̄), or None.
        tol: a row converged when its estimated distance to its limit is below tol.
        target_tol: a converged row is at the target when ‖x − target‖ ≤ target_tol.
        max_steps: step budget; undecided rows then get ``Status.UNDECIDED``.
        escape_radius: rows farther than this from the target (or from their start) escape.

    Raises:
        ValueError: malformed X0, target or settings.
        OptimizerError / FunctionError: ``init``/``step`` or ``f`` raised; names the step.
    """
    X = as_batch(X0, f.dim, "X0")
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
        raise ValueError(f"X0 has non-finite entries in rows {bad[:10].tolist()}")
    for name, v in (("tol", tol), ("target_tol", target_tol), ("escape_radius", escape_radius)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    B, d = X.shape
    ref = X.copy() if target is None else np.broadcast_to(
        as_batch(target, d, "target"), (B, d)).copy()
    if not np.all(np.isfinite(ref)):
        raise ValueError("target must be finite")

    status = np.full(B, Status.UNDECIDED, dtype=np.int8)
    steps = np.full(B, max_steps, dtype=np.int64)
    x_out = X.copy()
    dist_out = np.full(B, np.nan)
    dz_out = np.full(B, np.nan)
    rate_out = np.full(B, np.nan)

    oracle = GuardedOracle(f)
    state = lifted_state(opt, X)
    idx = np.arange(B)
    ref_a = ref
    H = RATE_HISTORY + 1
    hist = np.full((H, B), np.nan)  # ‖Δz‖² of the last steps, ring buffer
    esc2 = escape_radius ** 2 if escape_radius < 1e150 else math.inf  # no float overflow
    off2_max = min(esc2, np.finfo(float).max)  # finite: off2 ≤ off2_max ⇒ x is finite
    tol2 = _sq_threshold(tol)
    step, position = opt.step, opt.position
    einsum, minimum, maximum = fast_einsum, np.minimum.reduce, np.maximum.reduce
    # The contract (step returns a tuple of arrays of the state's shapes, the function's
    # outputs are float arrays of the right shapes) is checked through the guarded path
    # on the first step at each batch size; later steps call ``step`` on the function
    # itself. Any failure there is re-run through the guarded path, which raises the
    # same clear error the guarded loop would have raised at that step.
    lean = False

    with np.errstate(all="ignore"):
        for t in range(1, max_steps + 1):
            if lean:
                try:
                    new = step(state, f)
                except Exception as exc:  # noqa: BLE001 -- re-raised with context below
                    new = _guarded_step(opt, state, oracle, t, exc)
                    lean = False
                else:
                    if not _validated(new, state):
                        new = _guarded_step(opt, state, oracle, t, None, new)
                        lean = False
            else:
                oracle.step = t
                oracle.converted = False
                new = apply_step(opt, state, oracle, t)
                lean = not oracle.converted and _validated(new, state)
            sq = _row_sq_norm(new, state)
            state = new
            xpos = position(state)
            hist[t % H] = sq
            off = xpos - ref_a
            off2 = einsum("ij,ij->i", off, off)
            # Fast path: a row with tol < ‖Δz‖ < ∞ and a finite off2 ≤ escape_radius²
            # (so x is finite) is neither non-finite, escaped nor converged. When every
            # row is like that, nothing is decided this step: skip the rate estimate and
            # the bookkeeping below, which would conclude exactly the same. (NaN fails
            # every comparison, so a NaN row takes the slow path.)
            if (t < max_steps and minimum(sq) > tol2 and maximum(sq) < math.inf
                    and maximum(off2) <= off2_max):
                continue
            dz = np.sqrt(sq)
            finite = np.isfinite(dz) & np.all(np.isfinite(xpos), axis=1)
            escaped = finite & (off2 > esc2)
            w = min(t - 1, RATE_WINDOW)
            if w >= 1:
                old = np.sqrt(hist[(t - w) % H])
                rate = np.where(old > 0, (dz / old) ** (1.0 / w), 0.0)
            else:
                rate = np.full(dz.shape, np.nan)
            remaining = np.where(rate < 1, dz * rate / (1 - rate), np.inf)
            conv = finite & ~escaped & (dz <= tol) & ((remaining <= tol) | (dz == 0))
            done = ~finite | escaped | conv
            if t == max_steps:
                done[:] = True
            if done.any():
                rows = idx[done]
                st = np.full(rows.size, Status.UNDECIDED, dtype=np.int8)
                st[escaped[done]] = Status.ESCAPED
                st[~finite[done]] = Status.NONFINITE
                c = conv[done]
                if target is None:
                    st[c] = Status.CONVERGED_ELSEWHERE
                else:
                    near = np.sqrt(off2[done]) <= target_tol
                    st[c & near] = Status.CONVERGED_TARGET
                    st[c & ~near] = Status.CONVERGED_ELSEWHERE
                status[rows] = st
                steps[rows] = t
                x_out[rows] = xpos[done]
                dz_out[rows] = dz[done]
                rate_out[rows] = _fitted_rate(np.sqrt(hist[:, done]), t)
                if target is not None:
                    dist_out[rows] = np.sqrt(off2[done])
                keep = ~done
                if not keep.any():
                    break
                idx = idx[keep]
                state = tuple(s[keep] for s in state)
                ref_a = ref_a[keep]
                hist = hist[:, keep]
                lean = False  # re-check the contract at the new batch size

    return RunResult(status=status, steps=steps, x=x_out, distance=dist_out, step_norm=dz_out,
                     rate=rate_out, settings={"tol": tol, "target_tol": target_tol,
                                              "max_steps": max_steps,
                                              "escape_radius": escape_radius})
