"""An optimizer moved along its declared scaling relation to where floats resolve it.

A registered optimizer may declare a scaling relation (``Registration.scaling``): on
c·f, the optimizer with each hyperparameter h → h·c^e follows the same trajectory, so
its filter is the original's scaled by c (λ ↦ c·λ). Claim 5 checks the relation.

At extreme hyperparameters the float map cannot represent its own mathematics:
penalty SAM at α = ρ = 1e300 has its filter at |λ| ~ 1e-300, where ρ·λ·(λx) underflows
to 0 and the float map is plain gradient descent (ρ₁ = 2.5 where the optimizer's is
0.25); Adam at α = ε = 3.5e-60 has it at λ ~ 1e30, where every finite-difference step
puts the gradient far above √ε, in the saturated preconditioner. With c = 2ᴷ chosen so
that every scaled hyperparameter is a moderate float, the same optimizer is resolved
exactly, and powers of 2 move λ without rounding. :func:`rescaled` finds that
set-up; ``derive`` and ``filter_function`` work there, and claim 1 measures r there
too: where the float map disagrees with its own relation, the rescaled set-up decides.

Only hyperparameters with a nonzero exponent move; the set-up is used only when some
of them lies beyond 2^±MODERATE_OCTAVES, one power 2ᴷ with K > 0 brings all of them
within 2^±SCALED_OCTAVES (the median of the powers that bring each to ±1), and the
declared filter, if any, stays below LARGEST_SCALED_FILTER there.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynverify.optimizer import Optimizer

#: a hyperparameter within 2^±MODERATE_OCTAVES (about 1.8e±19) is resolved as is
MODERATE_OCTAVES = 64
#: the rescaled hyperparameters must lie within 2^±SCALED_OCTAVES (about 1.2e±77): a
#: relation keeps their ratios, so α = 3e230 with ρ = 1.4e308 becomes α' = 1.5e-39 with
#: ρ' = 6.6e38, whose filter sits at |λ'| ~ 1 where ρ'λ'²x is a normal float
SCALED_OCTAVES = 256
#: the rescaled set-up's declared filter must end below this (derive probes to 1e308)
LARGEST_SCALED_FILTER = 1e300


@dataclass(frozen=True)
class Rescaled:
    """The optimizer on c·f with c = 2**octaves: λ of the original is 2**octaves·λ here."""

    optimizer: Optimizer
    octaves: int

    def up(self, lams: Any) -> np.ndarray:
        """Eigenvalues of the original set-up as eigenvalues of this one (exact)."""
        with np.errstate(over="ignore"):
            return np.ldexp(np.asarray(lams, dtype=float), self.octaves)

    def down(self, lam: float) -> float:
        """An eigenvalue of this set-up as one of the original (exact but underflow)."""
        return float(np.ldexp(lam, -self.octaves))

    @property
    def c(self) -> float:
        """2**octaves (inf beyond the largest float: use :meth:`up` for eigenvalues)."""
        return math.ldexp(1.0, self.octaves) if self.octaves < 1024 else math.inf

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v:.6g}" for k, v in self.optimizer.hyperparameters.items())
        return (f"{self.optimizer.name}({hp}) on 2^{self.octaves}·f (its declared scaling "
                "relation; powers of 2 are exact)")


def _octaves(v: float) -> float:
    return abs(math.log2(abs(v)))


def rescaled(opt: Optimizer) -> Rescaled | None:
    """``opt`` moved by its registered scaling relation so that every hyperparameter
    that scales is a moderate float, or None: no relation is registered for
    ``opt.name``, the registered factory does not build this very map (same step and
    init code), the hyperparameters are moderate already, or no power of 2 brings all
    of them within 2^±SCALED_OCTAVES (α = 0.5 with ρ = 5e-324: 1074 octaves apart)."""
    from dynverify.registry import registered

    reg = registered().get(opt.name)
    if reg is None or not reg.scaling:
        return None
    hp = dict(opt.hyperparameters)
    moving: list[tuple[str, float, float]] = []
    for k, e in reg.scaling.items():
        if k not in hp or float(e) == 0.0:
            continue
        try:
            v = float(hp[k])
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        if v != 0.0:  # 0 stays 0 under any scaling
            moving.append((k, v, float(e)))
    if not moving or max(_octaves(v) for _, v, _ in moving) <= MODERATE_OCTAVES:
        return None
    # v·2^(eK) = ±1 at K = −log2|v|/e; the median balances several hyperparameters
    K = round(statistics.median(-math.log2(abs(v)) / e for _, v, e in moving))
    # only K > 0 (α or ρ huge, ε tiny; λ' = 2ᴷλ): scaling back by 2⁻ᴷ then shrinks the
    # derivation's absolute errors, where K < 0 would blow up a boundary point found at
    # 2e-17 for 0 into 5e306 (heavy ball at α = 5e-324)
    if K <= 0:
        return None
    scaled = dict(hp)
    for k, v, e in moving:
        if not float(e * K).is_integer():
            return None
        try:
            w = math.ldexp(v, int(e * K))  # exact: a power of 2
        except OverflowError:
            return None
        if w == 0.0 or not math.isfinite(w) or _octaves(w) > SCALED_OCTAVES:
            return None
        scaled[k] = w
    try:
        new = reg.build(**scaled)
        same = reg.build(**hp)
    except Exception:  # noqa: BLE001 -- a factory refusing the values: no rescaling
        return None
    # the filter must stay inside the floats there: RMSprop at α = 2.2e-313 has it at
    # 4.2e156, and ε → 1 would move it to 1e313 (only a hint of where it lies: the
    # declaration decides nothing here)
    if opt.region is not None and not (
            math.log2(opt.region.scale) + K <= math.log2(LARGEST_SCALED_FILTER)):
        return None
    # the registered factory must build this very map (a plug-in may reuse a name)
    for part in ("step", "init"):
        code = getattr(getattr(opt, part), "__code__", None)
        if code is None or getattr(getattr(same, part), "__code__", None) is not code:
            return None
    return Rescaled(new, K)
