"""Exceptions raised by dynverify, each naming what went wrong."""

from __future__ import annotations


class DynverifyError(Exception):
    """Base class of every error dynverify raises on purpose."""


class OptimizerError(DynverifyError):
    """An optimizer's ``init``/``step`` raised or broke the contract (names optimizer and step)."""


class FunctionError(DynverifyError):
    """A test function raised, or returned a wrongly shaped or non-finite value."""


class NotDifferentiableError(DynverifyError):
    """The lifted map is not differentiable at the fixed point, so it has no linearization."""


class UnresolvedLinearizationError(DynverifyError):
    """The map's linearization cannot be measured in double precision: it is linear only
    within a distance of the fixed point that floats do not resolve there."""


class ReportError(DynverifyError):
    """A record or report file is malformed."""
