"""What the torch and optax adapters share: checks run at construction.

- :func:`separability_defect`: rows of a batch must be independent trajectories. One
  row's initial point is perturbed; every other row must be bitwise unchanged over a few
  steps of a random (row-wise) problem, at several gradient scales.
- :func:`c1_defect`: the lifted map must be C¹ at the fixed point over a critical point.
  Jacobians (central differences at a step far below the distance) are taken at points
  approaching z̄ from random directions; for a C¹ map they converge, for a map with ε
  outside √v (v = 0 at z̄) they blow up or jump. The state coordinate whose derivative
  misbehaves is named.
- :func:`nonnegative_buffers`: buffers the framework keeps ≥ 0 (second moments), which
  :func:`c1_defect` approaches from above. (They are not clamped: a clamp would put a
  kink at v = 0 into a map that is smooth there, such as optax's with ``eps_root``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dynverify.errors import DynverifyError, NotDifferentiableError
from dynverify.functions import RowQuadratics, TestFunction


class AdapterError(DynverifyError, ValueError):
    """A framework optimizer cannot be adapted (bad class, arguments, or state layout)."""


class AdapterWarning(UserWarning):
    """An adapter fell back to a slower but exact mode (e.g. one optimizer per row)."""


class RandomProblem(TestFunction):
    """f(x) = c·(½xᵀAx + ¼Σxᵢ⁴ + bᵀx), the same f on every row: a separable batch problem.

    Non-quadratic, with gradients of size about c, so that norm-based couplings between
    rows (global clipping, whole-matrix preconditioners) show up at some scale.
    """

    def __init__(self, dim: int, seed: int, c: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        M = rng.standard_normal((dim, dim))
        self.dim, self.c = dim, float(c)
        self.A = 0.5 * (M + M.T)
        self.b = rng.standard_normal(dim)

    def value(self, X: np.ndarray) -> np.ndarray:
        return self.c * (0.5 * np.einsum("bi,ij,bj->b", X, self.A, X)
                         + 0.25 * np.sum(X ** 4, axis=1) + X @ self.b)

    def grad(self, X: np.ndarray) -> np.ndarray:
        return self.c * (X @ self.A + X ** 3 + self.b)

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return self.c * (V @ self.A + 3 * X ** 2 * V)

    def __repr__(self) -> str:
        return f"RandomProblem(dim={self.dim}, c={self.c})"


def run_states(init: Callable[[np.ndarray], tuple], step: Callable[[tuple, Any], tuple],
               X: np.ndarray, f: TestFunction, steps: int) -> list[tuple]:
    """The lifted states of ``steps`` steps from init(X) (init state included)."""
    state = init(X)
    out = [state]
    with np.errstate(all="ignore"):
        for _ in range(steps):
            state = step(state, f)
            out.append(state)
    return out


def separability_defect(init: Callable[[np.ndarray], tuple],
                        step: Callable[[tuple, Any], tuple], dim: int, *,
                        steps: int = 4, rows: int = 4, seed: int = 0) -> str | None:
    """None if rows are independent trajectories, else a description of the coupling.

    Row 0's initial point is perturbed (strongly: scaled and shifted); all other rows'
    states must stay bitwise equal. Repeated at gradient scales 1e-3, 1 and 1e3, so that
    a norm threshold (gradient clipping) is crossed at some scale.
    """
    rng = np.random.default_rng(seed)
    for scale in (1e-3, 1.0, 1e3):
        f = RandomProblem(dim, seed, c=scale)
        X = rng.standard_normal((rows, dim))
        Y = X.copy()
        Y[0] = 10.0 * Y[0] + 3.0
        a = run_states(init, step, X, f, steps)
        b = run_states(init, step, Y, f, steps)
        for t, (sa, sb) in enumerate(zip(a, b)):
            for i, (u, v) in enumerate(zip(sa, sb)):
                u, v = np.asarray(u)[1:], np.asarray(v)[1:]
                same = (u == v) | (np.isnan(u) & np.isnan(v))
                if not np.all(same):
                    return (f"perturbing row 0 changed state[{i}] of other rows after {t} "
                            f"step(s) (gradient scale {scale:g})")
    return None


def nonnegative_buffers(history: Sequence[dict[str, np.ndarray]]) -> set[str]:
    """Keys whose values stayed ≥ 0 in every probe state (probes use mixed-sign gradients)."""
    keys = set(history[0]) if history else set()
    for entry in history:
        keys &= {k for k in keys
                 if k in entry and np.all(np.asarray(entry[k], dtype=float) >= 0)}
    return keys


def c1_defect(init: Callable[[np.ndarray], tuple], step: Callable[[tuple, Any], tuple],
              names: Sequence[str], nonneg: Sequence[bool], *,
              lams: Sequence[float] = (0.37, -0.61, 1.3), seed: int = 0) -> str | None:
    """None if the lifted map looks C¹ at z̄ = init(0) on f = λx²/2, else why not.

    ``names[j]`` names flat state coordinate j (position first), ``nonneg[j]`` says it is a
    buffer kept ≥ 0 (approached from above). For σ = 10⁻², …, 10⁻¹⁴ and a few random
    directions u, the Jacobian at z̄ + σu (central differences with step σ/1000) must
    converge as σ → 0: the spread across directions at the smallest σ must be below
    1e-3 relative. ε outside √v gives derivatives that grow like 1/√v or jump with
    the sign of the gradient, whatever the scale.
    """
    from dynverify.linearize import _flatten, _unflatten

    lam = np.asarray(lams, dtype=float)
    base = init(np.zeros((lam.size, 1)))
    Z0, shapes = _flatten(base, lam.size)
    m = Z0.shape[1]
    if len(names) != m:
        names = [f"state coordinate {j}" for j in range(m)]
    pos = np.asarray(nonneg, dtype=bool) if len(nonneg) == m else np.zeros(m, dtype=bool)
    rng = np.random.default_rng(seed)
    n_dir = 4
    U = rng.uniform(0.5, 1.0, (n_dir, m)) * rng.choice([-1.0, 1.0], (n_dir, m))
    U[:, pos] = np.abs(U[:, pos])
    sigmas = 10.0 ** -np.arange(2, 15, dtype=float)
    E = np.eye(m)
    # base points: (λ, σ, direction); rows: ±h along each coordinate
    Zb = (Z0[:, None, None, :] + sigmas[None, :, None, None] * U[None, None, :, :])
    h = (sigmas / 1000.0)[None, :, None, None, None]
    P = Zb[:, :, :, None, :] + h * np.concatenate([E, -E])[None, None, None]
    nl, ns, nd = lam.size, sigmas.size, n_dir
    flat = P.reshape(-1, m)
    rows = np.repeat(lam, ns * nd * 2 * m)
    with np.errstate(all="ignore"):
        try:
            new = step(_unflatten(flat, shapes), RowQuadratics(rows))
        except NotDifferentiableError as exc:
            return str(exc)
    G = _flatten(new, flat.shape[0])[0].reshape(nl, ns, nd, 2 * m, m)
    J = (G[:, :, :, :m] - G[:, :, :, m:]) / (2 * h)  # [..., j (input), i (output)]
    if not np.all(np.isfinite(J)):
        bad = np.argwhere(~np.isfinite(J))[0]
        return (f"the update is not finite near the fixed point (derivative in "
                f"{names[bad[3]]} at distance {sigmas[bad[1]]:.0e})")
    size = 1.0 + np.max(np.abs(J), axis=(2, 3, 4))  # (nl, ns)
    spread = np.max(np.ptp(J, axis=2), axis=(2, 3)) / size  # (nl, ns): across directions
    worst = float(np.max(spread[:, -1]))
    if worst <= 1e-3:
        return None
    il = int(np.argmax(spread[:, -1]))
    col = int(np.argmax(np.max(np.ptp(J[il, -1], axis=0), axis=1)))
    growth = float(np.max(np.abs(J[il, -1])) / max(np.max(np.abs(J[il, 0])), 1e-300))
    how = "grows without bound" if growth > 10 else "jumps with the direction of approach"
    return (f"its Jacobian does not converge at the fixed point over a critical point: the "
            f"derivative with respect to {names[col]} {how} (relative spread {worst:.2g} at "
            f"distance {sigmas[-1]:.0e}, λ = {lam[il]:g})")


def pow2(n: int, least: int = 8) -> int:
    """The power of two ≥ max(n, least) (padded batch sizes: few jit compilations)."""
    return max(least, 1 << (max(n, 1) - 1).bit_length())
