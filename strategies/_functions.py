"""Planted functions and free-run landscapes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from dynverify.landscapes import MatrixFactorization, Product, Wells
from dynverify.planted import PlantedFunction, phis

from ._spectra import _check_real, finite_floats, rotations, unit_vectors

SMOOTHNESS = {"C2": 2, "C3": 3}
LANDSCAPE_KINDS = ("product", "wells", "matrix_factorization")


def _check_count(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InvalidArgument(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


@st.composite
def planted_functions(draw: Any, *, spectra: SearchStrategy[Any], smoothness: str = "C2",
                      max_terms: int = 3, max_coefficient: float = 1.0, max_mu: float = 1.0,
                      max_offset: float = 10.0) -> PlantedFunction:
    """f(x) = ½uᵀQΛQᵀu + Σₖ cₖφₖ(aₖᵀu) + μ‖u‖⁴, u = x − x̄, λ drawn from ``spectra``.

    Draws, in shrinking order: λ (its length is d), x̄ ∈ [−max_offset, max_offset]ᵈ → 0,
    Q from :func:`rotations` → I, up to ``max_terms`` terms → none (φ from the catalogue
    of the requested smoothness, |c| ≤ max_coefficient → 0, ‖a‖ = 1 → e₁), and
    μ ∈ [0, max_mu] → 0. ∇f(x̄) = 0 and ∇²f(x̄) = QΛQᵀ exactly.

    ``smoothness="C3"`` draws only terms that are at least C³ (for maps that evaluate ∇²f).

    Example:
        >>> from hypothesis import strategies as st
        >>> fs = planted_functions(spectra=st.just((1.0, -2.0)), smoothness="C3")
    """
    if not isinstance(spectra, SearchStrategy):
        raise InvalidArgument(f"spectra must be a strategy of eigenvalue tuples, got {spectra!r}")
    if smoothness not in SMOOTHNESS:
        raise InvalidArgument(f"smoothness must be one of {tuple(SMOOTHNESS)}, got {smoothness!r}")
    max_terms = _check_count("max_terms", max_terms, 0)
    max_coefficient = _check_real("max_coefficient", max_coefficient, 0.0, 1e6)
    max_mu = _check_real("max_mu", max_mu, 0.0, 1e6)
    max_offset = _check_real("max_offset", max_offset, 0.0, 1e6)

    lam = draw(spectra)
    try:
        lam = tuple(float(v) for v in lam)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"spectra drew {lam!r}, not a sequence of reals") from exc
    if not lam or not all(math.isfinite(v) for v in lam):
        raise InvalidArgument(f"spectra drew {lam!r}: need a nonempty tuple of finite reals")
    d = len(lam)
    x_star = [draw(finite_floats(-max_offset, max_offset)) for _ in range(d)]
    Q = draw(rotations(d))
    term = st.tuples(st.sampled_from(phis(SMOOTHNESS[smoothness])),
                     finite_floats(-max_coefficient, max_coefficient), unit_vectors(d))
    terms = draw(st.lists(term, max_size=max_terms))
    mu = draw(finite_floats(0.0, max_mu))
    return PlantedFunction(lam, x_star, Q, terms, mu)


@st.composite
def _products(draw: Any) -> Product:
    c = draw(finite_floats(0.25, 4.0))
    return Product(-c if draw(st.booleans()) else c)


@st.composite
def _wells(draw: Any, max_dim: int) -> Wells:
    d = draw(st.integers(1, max_dim))
    roots, ks = [], []
    for _ in range(d):
        mid = draw(finite_floats(-1.0, 1.0))
        if draw(st.sampled_from((1, 3))) == 1:
            roots.append([mid])
        else:
            gap = finite_floats(0.5, 2.0)
            roots.append([mid - draw(gap), mid, mid + draw(gap)])
        ks.append(draw(finite_floats(0.25, 4.0)))
    x0 = [draw(finite_floats(-2.0, 2.0)) for _ in range(d)]
    return Wells(roots, ks, x0, draw(rotations(d)))


@st.composite
def _factorizations(draw: Any, max_side: int, max_rank: int) -> MatrixFactorization:
    m = draw(st.integers(1, max_side))
    n = draw(st.integers(1, max_side))
    rank = draw(st.integers(1, max_rank))
    k = min(m, n)
    sigma = sorted((draw(finite_floats(0.25, 4.0)) for _ in range(k)), reverse=True)
    P = draw(rotations(m))[:, :k]
    R = draw(rotations(n))[:, :k]
    return MatrixFactorization((P * sigma) @ R.T, rank)


@st.composite
def landscapes(draw: Any, *, kinds: Any = LANDSCAPE_KINDS, max_dim: int = 3,
               max_side: int = 3, max_rank: int = 2) -> Any:
    """Free-run landscapes: ½(x₁x₂ − c)², double wells Σpᵢ((Qᵀ(x − x₀))ᵢ), ½‖UVᵀ − M‖².

    ``kinds`` selects among :data:`LANDSCAPE_KINDS` (shrinks toward the first listed);
    ``max_dim`` bounds the wells' dimension, ``max_side``/``max_rank`` the shape of M
    and the factor rank. Each has closed-form ``critical_points()``.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in LANDSCAPE_KINDS]
    if not kinds or bad:
        raise InvalidArgument(f"kinds must be a nonempty subset of {LANDSCAPE_KINDS}, "
                              f"got {kinds!r}")
    max_dim = _check_count("max_dim", max_dim, 1)
    max_side = _check_count("max_side", max_side, 1)
    max_rank = _check_count("max_rank", max_rank, 1)
    kind = draw(st.sampled_from(kinds))
    if kind == "product":
        return draw(_products())
    if kind == "wells":
        return draw(_wells(max_dim))
    return draw(_factorizations(max_side, max_rank))
