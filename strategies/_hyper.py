"""Optimizer hyperparameters and initial points."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from dynverify.optimizers import BUILTINS

from ._spectra import finite_floats

F = TypeVar("F", bound=Callable[..., Any])

#: attribute that :func:`declare_hyperparameters` sets on a factory
ATTRIBUTE = "__dynverify_hyperparameters__"


#: α: small steps to large ones (the filter [0, 2/α] is tight for large α); shrinks to 1
LR = finite_floats(1e-3, 2.0)
#: β ∈ [0, 0.95], shrinks to 0
MOMENTUM = finite_floats(0.0, 0.95)
#: ρ ∈ {0} ∪ [0.01, 2]: shrinks to 0 (plain gradient descent); tiny ρ > 0 would put the
#: −1/ρ features of the SAM filters at overflowing distances
RHO = st.one_of(st.just(0.0), finite_floats(0.01, 2.0))

_lr = st.fixed_dictionaries({"lr": LR})
_lr_momentum = st.fixed_dictionaries({"lr": LR, "momentum": MOMENTUM})
_lr_rho = st.fixed_dictionaries({"lr": LR, "rho": RHO})
#: β₂ ∈ [0, 0.9] (the v-mode contracts at rate β₂: near 1 no stable case is decidable);
#: ε ∈ [10⁻⁶, 1] (the filter's size is ∝ √ε/α)
_BETA2 = finite_floats(0.0, 0.9)
_EPS = finite_floats(1e-6, 1.0)
_rmsprop = st.fixed_dictionaries({"lr": LR, "beta2": _BETA2, "eps": _EPS})
_adam = st.fixed_dictionaries({"lr": LR, "beta1": MOMENTUM, "beta2": _BETA2, "eps": _EPS})

_BUILTIN: dict[str, SearchStrategy[dict[str, Any]]] = {
    "gradient_descent": _lr,
    "heavy_ball": _lr_momentum,
    "nesterov": _lr_momentum,
    "usam": _lr_rho,
    "two_step_usam": _lr_rho,
    "hessian_usam": _lr_rho,
    "penalty_sam": _lr_rho,
    "sam": _lr_rho,
    "rmsprop": _rmsprop,
    "adam": _adam,
}
_REGISTERED: dict[str, SearchStrategy[dict[str, Any]]] = {}


def _check_strategy(strategy: Any) -> SearchStrategy[dict[str, Any]]:
    if not isinstance(strategy, SearchStrategy):
        raise InvalidArgument(
            f"strategy must be a Hypothesis strategy of kwargs dicts, got {strategy!r}")
    return strategy


def register_hyperparameters(name: str, strategy: SearchStrategy[dict[str, Any]]) -> None:
    """Declare the kwargs strategy of the optimizer factory called ``name``.

    Example:
        >>> register_hyperparameters("my_gd", st.fixed_dictionaries({"lr": st.just(0.1)}))
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"name must be a nonempty string, got {name!r}")
    if name in _BUILTIN:
        raise InvalidArgument(f"name={name!r} is a built-in optimizer; its ranges are fixed")
    _REGISTERED[name] = _check_strategy(strategy)


def declare_hyperparameters(strategy: SearchStrategy[dict[str, Any]]) -> Callable[[F], F]:
    """Decorator on an optimizer factory: ``hyperparameters(factory)`` will draw from strategy.

    Example:
        >>> @declare_hyperparameters(st.fixed_dictionaries({"lr": st.floats(0.01, 1.0)}))
        ... def my_gd(lr): ...
    """
    strategy = _check_strategy(strategy)

    def deco(factory: F) -> F:
        setattr(factory, ATTRIBUTE, strategy)
        return factory

    return deco


def _resolve(name_or_factory: Any) -> SearchStrategy[dict[str, Any]]:
    if isinstance(name_or_factory, str):
        if name_or_factory in _BUILTIN:
            return _BUILTIN[name_or_factory]
        if name_or_factory in _REGISTERED:
            return _REGISTERED[name_or_factory]
        known = sorted([*_BUILTIN, *_REGISTERED])
        raise InvalidArgument(
            f"name_or_factory={name_or_factory!r}: no hyperparameters known; known: {known} "
            "(declare them with register_hyperparameters or @declare_hyperparameters)")
    if callable(name_or_factory):
        declared = getattr(name_or_factory, ATTRIBUTE, None)
        if declared is not None:
            return _check_strategy(declared)
        for name, factory in BUILTINS.items():
            if factory is name_or_factory:
                return _BUILTIN[name]
        raise InvalidArgument(
            f"name_or_factory={name_or_factory!r} declares no hyperparameters: decorate it with "
            "@dynverify.register_optimizer(hyperparameters=st.fixed_dictionaries({...}))")
    raise InvalidArgument(
        f"name_or_factory must be an optimizer name or factory, got {name_or_factory!r}")


def hyperparameters(name_or_factory: Any) -> SearchStrategy[dict[str, Any]]:
    """Kwargs dicts for an optimizer factory: lr ∈ [10⁻³, 2], momentum ∈ [0, 0.95],
    rho ∈ {0} ∪ [0.01, 2] for the built-ins, or what a plug-in declared.

    Unknown names raise InvalidArgument when drawn from.

    Example:
        >>> from dynverify.optimizers import heavy_ball
        >>> hps = hyperparameters("heavy_ball")  # then heavy_ball(**data.draw(hps))
    """
    return st.deferred(lambda: _resolve(name_or_factory))


@st.composite
def initial_points(draw: Any, center: Any, radius: float, n: int) -> np.ndarray:
    """(n, d) points uniform in the ball B(center, radius), from a drawn seed.

    A numpy Generator seeded by a Hypothesis draw (shrinks to seed 0): the example alone
    reproduces the points.
    """
    c = np.asarray(center, dtype=float)
    if c.ndim != 1 or c.size < 1 or not np.all(np.isfinite(c)):
        raise InvalidArgument(f"center must be a nonempty finite 1-d array, got {center!r}")
    if (isinstance(radius, bool) or not isinstance(radius, (int, float, np.floating))
            or not (math.isfinite(radius) and radius > 0)):
        raise InvalidArgument(f"radius must be a finite real > 0, got {radius!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidArgument(f"n must be an integer >= 1, got {n!r}")
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = c.size
    dirs = rng.standard_normal((int(n), d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radii = float(radius) * rng.random(int(n)) ** (1.0 / d)
    return c + radii[:, None] * dirs
