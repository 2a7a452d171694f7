"""The optimizer contract: an optimizer is a value built by a factory, never a subclass.

An optimizer is a map G on a lifted state z = (x, ...) of (B, d) arrays. ``init`` lifts a
batch of positions, ``step`` is pure: ``step(state, oracle) -> next state``, where the
oracle has batched ``value(X)``, ``grad(X)`` and ``hvp(X, V)``. Rows are independent
trajectories. ``init(x̄)`` must be a fixed point of ``step`` whenever ∇f(x̄) = 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from dynverify.regions import Region

State = tuple[np.ndarray, ...]
Domain = tuple[float, float]

#: the domain of a nonnegative state component (a second-moment buffer v ≥ 0)
NONNEGATIVE: Domain = (0.0, math.inf)


def _first(state: State) -> np.ndarray:
    return state[0]


@dataclass(frozen=True, eq=False)
class Optimizer:
    """An optimizer as a pure update map on a lifted state.

    Args:
        name: short identifier, e.g. ``"heavy_ball"``.
        hyperparameters: the values it was built with, e.g. ``{"lr": 0.1}``.
        init: ``init(X) -> state``, X a (B, d) array; the state is a tuple of arrays.
        step: ``step(state, oracle) -> state``, pure.
        region: the declared eigenvalue filter, or None (derive it numerically).
        position: ``position(state) -> X``; defaults to ``state[0]``.
        hessian_in_map: True when the map evaluates ∇²f (then G is C¹ only for f ∈ C³).
        outside_hypotheses: why the theorem does not apply (e.g. the map is not C¹ at
            critical points), or None. The exemption is checked, not trusted: dynverify
            tests differentiability of the map at fixed points itself.
        state_domains: where each state component may live, or None (everywhere). One
            entry per element of the state tuple: None (no constraint) or an interval
            ``(lo, hi)`` applied elementwise, e.g. ``(None, None, NONNEGATIVE)`` for a
            state (x, m, v) whose second-moment buffer v must stay ≥ 0. Finite
            differences never leave a domain: at a state on (or within two steps of) a
            bound they are one-sided, and the linearization records which were used.
        fixed_points_critical: True when the fixed points of ``step`` are exactly the
            critical points of f (gradient descent, heavy ball, Nesterov). Then a run that
            converges to a point with ∇f ≠ 0 is a counterexample. False (the safe default)
            for maps with other fixed points, e.g. SAM-type maps where the *perturbed*
            point is critical.

    Example:
        >>> import numpy as np
        >>> gd = Optimizer(name="gd", hyperparameters={"lr": 0.1},
        ...                init=lambda X: (X,),
        ...                step=lambda s, f: (s[0] - 0.1 * f.grad(s[0]),))
        >>> gd.position(gd.init(np.zeros((2, 3)))).shape
        (2, 3)
    """

    name: str
    hyperparameters: Mapping[str, Any]
    init: Callable[[np.ndarray], State]
    step: Callable[[State, Any], State]
    region: Region | None = None
    position: Callable[[State], np.ndarray] = _first
    hessian_in_map: bool = False
    outside_hypotheses: str | None = None
    state_domains: tuple[Domain | None, ...] | None = None
    fixed_points_critical: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Optimizer name must be a non-empty string, got {self.name!r}")
        for attr in ("init", "step", "position"):
            if not callable(getattr(self, attr)):
                raise TypeError(f"Optimizer {self.name!r}: {attr} must be callable")
        if self.region is not None and not isinstance(self.region, Region):
            raise TypeError(
                f"Optimizer {self.name!r}: region must be a dynverify.Region or None, "
                f"got {type(self.region).__name__}"
            )
        object.__setattr__(self, "hyperparameters", MappingProxyType(dict(self.hyperparameters)))
        if self.state_domains is not None:
            object.__setattr__(self, "state_domains",
                               _check_domains(self.name, self.state_domains))

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{self.name}({hp})"


def _check_domains(name: str, domains: Any) -> tuple[Domain | None, ...]:
    """Validate ``state_domains``: a sequence of None or (lo, hi) with lo < hi."""
    if isinstance(domains, (str, bytes)) or not hasattr(domains, "__iter__"):
        raise TypeError(f"Optimizer {name!r}: state_domains must be a tuple with one entry "
                        f"per state component (None or (lo, hi)), got {domains!r}")
    out: list[Domain | None] = []
    for i, d in enumerate(domains):
        if d is None:
            out.append(None)
            continue
        try:
            lo, hi = (float(v) for v in d)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Optimizer {name!r}: state_domains[{i}] must be None or a pair "
                            f"(lo, hi), got {d!r}") from exc
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise ValueError(f"Optimizer {name!r}: state_domains[{i}] = {d!r} must have "
                             "lo < hi")
        out.append((lo, hi))
    return tuple(out)


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Validate a real hyperparameter; raise ValueError naming it when invalid."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {v!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {v!r}")
    return v
