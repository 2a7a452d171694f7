"""Hypothesis strategies for dynverify: spectra, rotations, planted functions, landscapes,
hyperparameters and initial points.

Every strategy follows Hypothesis' API style: plural names, keyword-only bounds,
impossible arguments raise ``hypothesis.errors.InvalidArgument`` when drawn from, and
values shrink toward the simplest case (dimension 1, identity rotation, no extra terms).

Example:
    >>> from hypothesis import given
    >>> from dynverify.optimizers import gradient_descent
    >>> opt = gradient_descent(lr=0.1)
    >>> fs = planted_functions(spectra=spectra(region=opt.region, placement="outside"))
"""

from ._functions import LANDSCAPE_KINDS, landscapes, planted_functions
from ._hyper import (
    declare_hyperparameters,
    hyperparameters,
    initial_points,
    register_hyperparameters,
)
from ._spectra import (
    PLACEMENTS,
    boundary_anchors,
    boundary_spectra,
    boundary_unit,
    givens_product,
    margin_scale,
    near_boundary_spectra,
    placement_sets,
    rate_grid,
    rate_spectra,
    rotations,
    spectra,
    unit_vectors,
)

__all__ = [
    "LANDSCAPE_KINDS",
    "PLACEMENTS",
    "boundary_anchors",
    "boundary_unit",
    "boundary_spectra",
    "declare_hyperparameters",
    "givens_product",
    "hyperparameters",
    "initial_points",
    "landscapes",
    "margin_scale",
    "near_boundary_spectra",
    "placement_sets",
    "planted_functions",
    "rate_grid",
    "rate_spectra",
    "register_hyperparameters",
    "rotations",
    "spectra",
    "unit_vectors",
]
