"""dynverify: verify claims about optimizers as dynamical systems with property-based tests.

An optimizer is a map z⁺ = G(z). If it converges to a fixed point z̄ from a set of
positive measure, then ρ(Jac G(z̄)) ≤ 1 (Bolte, Le, Pauwels 2025); at a critical point
this filters the Hessian eigenvalues. dynverify plants critical points with known
spectra, iterates optimizers near them and checks that convergence happens exactly
where each optimizer's filter allows.
"""

# first: maps dynverify.strategies to the repository's strategies/ in a source tree
from dynverify import _source_tree  # noqa: F401, I001
from dynverify import functions, optimizers
from dynverify.assertions import VerificationError, assert_verified
from dynverify.check import CheckResult, ClaimResult, ClaimStatus, check_optimizer, replay
from dynverify.claims import CLAIMS, Case, Outcome, Settings, Verdict
from dynverify.derive import Derivation, DerivationWarning, derive_region, filter_function
from dynverify.engine import RunResult, Status, run, step_budget
from dynverify.errors import (
    DynverifyError,
    FunctionError,
    NotDifferentiableError,
    OptimizerError,
    ReportError,
)
from dynverify.linearize import (
    ReductionCheck,
    check_spectral_reduction,
    jacobian,
    spectral_radius,
)
from dynverify.optimizer import Optimizer
from dynverify.phase import PhaseDiagram, phase_diagram
from dynverify.regions import Region
from dynverify.registry import Registration, register_optimizer, registered

__version__ = "0.1.0"

__all__ = [
    "CLAIMS",
    "Case",
    "CheckResult",
    "ClaimResult",
    "ClaimStatus",
    "Outcome",
    "Registration",
    "Settings",
    "Verdict",
    "VerificationError",
    "assert_verified",
    "check_optimizer",
    "register_optimizer",
    "registered",
    "replay",
    "Derivation",
    "DerivationWarning",
    "DynverifyError",
    "FunctionError",
    "NotDifferentiableError",
    "Optimizer",
    "OptimizerError",
    "PhaseDiagram",
    "ReductionCheck",
    "Region",
    "ReportError",
    "RunResult",
    "Status",
    "check_spectral_reduction",
    "derive_region",
    "filter_function",
    "functions",
    "jacobian",
    "optimizers",
    "phase_diagram",
    "run",
    "spectral_radius",
    "step_budget",
]
