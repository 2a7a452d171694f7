"""Verdicts on a training run: is the theorem's premise met, and does its conclusion hold?

The theorem says: *if* the optimizer converges to a critical point θ̄, every eigenvalue
of ∇²ℓ(θ̄) lies in the optimizer's filter R. So a run is judged only when it converged
(‖∇ℓ‖ < tol): then eigenvalues inside R (up to ``eig_band``·scale(R)) are a **pass**, and
an eigenvalue outside R that survives a confirmation (the perturbed run converges back,
so the point really attracts) is a **counterexample**. A run that did not converge is
**not converged**, reported with its sharpness relative to the filter's bound (edge of
stability: gradient descent's sharpness rises to 2/α and hovers there), and is never a
pass.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynverify.regions import Region


class Outcome(str, enum.Enum):
    PASS = "pass"  #: converged, spectrum inside the filter
    COUNTEREXAMPLE = "counterexample"  #: converged and confirmed, an eigenvalue outside
    NOT_CONVERGED = "not converged"  #: ‖∇ℓ‖ ≥ tol when the budget ran out: no premise
    DIVERGED = "diverged"  #: the loss or parameters became non-finite
    INCONCLUSIVE = "inconclusive"  #: converged, but the evidence cannot decide
    OUTSIDE = "outside hypotheses"  #: map not C¹ or loss not C²: the theorem says nothing

    @property
    def claim_outcome(self) -> str:
        """The three-valued outcome of dynverify's case records (pass/counterexample/
        inconclusive): everything that is not decided is inconclusive."""
        return self.value if self in (Outcome.PASS, Outcome.COUNTEREXAMPLE) else "inconclusive"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def upper_bound(region: Region) -> float:
    """The largest finite endpoint of R: the bound sharpness is compared with (2/α for GD)."""
    ends = [hi for _, hi in region.intervals if math.isfinite(hi)]
    return max(ends) if ends else math.inf


def component(region: Region, lam: float, band: float) -> int | None:
    """Index of the interval of R that holds λ (within band), or None."""
    for k, (lo, hi) in enumerate(region.intervals):
        if lo - band <= lam <= hi + band:
            return k
    return None


def spectrum_inside(region: Region, bottom: float, top: float, band: float,
                    all_eigs: np.ndarray | None = None) -> bool | None:
    """Is the whole spectrum in R (within band)? None when the extremes do not decide it.

    If bottom and top lie in the same interval of R, so does everything between them.
    Otherwise the spectrum straddles a gap and only the full spectrum decides.
    """
    kb, kt = component(region, bottom, band), component(region, top, band)
    if kb is None or kt is None:
        return False
    if kb == kt:
        return True
    if all_eigs is None:
        return None
    return bool(np.all(region.margin(all_eigs) >= -band))


def not_converged(status: str, steps: int, grad_norm: float, tol: float, top: float,
                  bound: float, step_norm: float = math.nan) -> Verdict:
    """The verdict of a run whose premise is not met.

    A run whose iterates stopped moving (last step ≤ 1e-12·(1 + ‖∇ℓ‖)) with ‖∇ℓ‖ ≥ tol sits
    at a fixed point that is not critical (possible for the SAM family); the Hessian
    filter does not apply there, and the reason says so.
    """
    ratio = top / bound if math.isfinite(bound) and bound > 0 else math.nan
    if status == "nonfinite":
        return Verdict(Outcome.DIVERGED, f"diverged (non-finite) after {steps} steps",
                       {"ratio": ratio})
    edge = " (edge of stability)" if math.isfinite(ratio) and abs(ratio - 1.0) <= 0.05 else ""
    if step_norm <= 1e-12 * (1.0 + grad_norm):
        edge = "; the iterates stopped at a fixed point that is not critical"
    return Verdict(Outcome.NOT_CONVERGED,
                   f"‖∇ℓ‖ = {grad_norm:.3g} ≥ tol = {tol:g} after {steps} steps; "
                   f"sharpness / bound = {ratio:.3f}{edge}", {"ratio": ratio})
