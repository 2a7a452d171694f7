"""Optimizer plug-ins: the registry and the entry-point group ``dynverify.optimizers``.

A registration holds a factory (keyword hyperparameters -> Optimizer), a Hypothesis
strategy of hyperparameter dicts, optionally a declared filter (hyperparameters ->
Region) that overrides the optimizer's own, and the metamorphic relations it satisfies.
A plug-in without any declared filter is verified against ``derive_region``.

An installed package contributes optimizers through its ``pyproject.toml``::

    [project.entry-points."dynverify.optimizers"]
    my_method = "my_package.optim:my_method"

where the object is a factory (optionally decorated with :func:`register_optimizer`) or a
:class:`Registration`.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from dynverify.optimizer import Optimizer
from dynverify.regions import Region

Factory = Callable[..., Optimizer]

ENTRY_POINT_GROUP = "dynverify.optimizers"


@dataclass(frozen=True)
class Registration:
    """An optimizer known to dynverify.

    Attributes:
        name: unique name (defaults to the factory's ``__name__``).
        factory: keyword hyperparameters -> Optimizer.
        hyperparameters: Hypothesis strategy of kwargs dicts (None: the factory's declared
            one, or ``{}`` when it has no required argument).
        region: hyperparameters -> declared filter, overriding ``Optimizer.region``.
        scaling: exponents e with f → c·f ≡ h → h·c^e (e.g. {"lr": -1}); None if unknown.
            Claim 5 checks it; at extreme hyperparameters derive and claim 1 use it to
            work where floats resolve the map (:mod:`dynverify.rescaling`).
        reductions: (overrides, reference name) pairs, e.g. ({"rho": 0.0}, "gradient_descent").
        source: where it came from ("builtin", "entry-point", "user", "module:factory").
        rotation_invariant: False for maps that act coordinate by coordinate (Adam,
            RMSprop: a diagonal preconditioner), whose trajectories change when f is
            rotated even though their linearization at v = 0 is spectral.
    """

    name: str
    factory: Factory
    hyperparameters: Any = None
    region: Callable[..., Region] | None = None
    scaling: Mapping[str, float] | None = None
    reductions: tuple[tuple[Mapping[str, Any], str], ...] = ()
    source: str = "user"
    rotation_invariant: bool = True

    def build(self, **hyperparameters: Any) -> Optimizer:
        """The optimizer for these hyperparameters, with the declared filter if any."""
        opt = self.factory(**hyperparameters)
        if not isinstance(opt, Optimizer):
            raise TypeError(f"factory {self.name!r} returned {type(opt).__name__}, "
                            "expected dynverify.Optimizer")
        if self.region is not None:
            from dataclasses import replace

            opt = replace(opt, region=self.region(**hyperparameters))
        return opt

    def strategy(self) -> Any:
        """The Hypothesis strategy of hyperparameter dicts for this optimizer."""
        if self.hyperparameters is not None:
            return self.hyperparameters
        from dynverify.strategies import hyperparameters

        return hyperparameters(self.factory)


_REGISTRY: dict[str, Registration] = {}
_LOADED = {"builtins": False, "entry_points": False}


def register_optimizer(factory: Factory | None = None, *, name: str | None = None,
                       hyperparameters: Any = None, region: Callable[..., Region] | None = None,
                       scaling: Mapping[str, float] | None = None,
                       reductions: tuple[tuple[Mapping[str, Any], str], ...] = (),
                       source: str = "user", rotation_invariant: bool = True) -> Any:
    """Register an optimizer factory; usable as ``@register_optimizer`` or a function.

    Example:
        >>> from hypothesis import strategies as st
        >>> @register_optimizer(hyperparameters=st.fixed_dictionaries(
        ...     {"lr": st.floats(0.01, 1.0)}))
        ... def my_gd(lr):
        ...     return Optimizer(name="my_gd", hyperparameters={"lr": lr},
        ...                      init=lambda X: (X,),
        ...                      step=lambda s, f: (s[0] - lr * f.grad(s[0]),))
        >>> "my_gd" in registered()
        True
    """

    def deco(fn: Factory) -> Factory:
        if not callable(fn):
            raise TypeError(f"register_optimizer needs a callable factory, got {fn!r}")
        reg = Registration(name=name or fn.__name__, factory=fn, hyperparameters=hyperparameters,
                           region=region, scaling=scaling, reductions=tuple(reductions),
                           source=source, rotation_invariant=rotation_invariant)
        _REGISTRY[reg.name] = reg
        fn.__dynverify_registration__ = reg  # type: ignore[attr-defined]
        return fn

    return deco if factory is None else deco(factory)


def unregister(name: str) -> None:
    """Remove a registration (mainly for tests)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    if _LOADED["builtins"]:
        return
    _LOADED["builtins"] = True
    from dynverify import optimizers as o

    gd_like = {"lr": -1.0}
    sam_like = {"lr": -1.0, "rho": -1.0}
    table: list[tuple[Factory, Mapping[str, float] | None, tuple[Any, ...]]] = [
        (o.gradient_descent, gd_like, ()),
        (o.heavy_ball, gd_like, (({"momentum": 0.0}, "gradient_descent"),)),
        (o.nesterov, gd_like, (({"momentum": 0.0}, "gradient_descent"),)),
        (o.usam, sam_like, (({"rho": 0.0}, "gradient_descent"),)),
        (o.two_step_usam, sam_like, (({"rho": 0.0}, "gradient_descent"),)),
        (o.hessian_usam, {"lr": -1.0, "rho": -2.0}, (({"rho": 0.0}, "gradient_descent"),)),
        (o.penalty_sam, sam_like, (({"rho": 0.0}, "gradient_descent"),)),
        (o.sam, None, ()),
    ]
    for fn, scaling, reductions in table:
        if fn.__name__ not in _REGISTRY:
            register_optimizer(fn, scaling=scaling, reductions=reductions, source="builtin")
    # f → c·f scales g by c and v by c²: the same trajectory with ε → ε·c² (lr unchanged)
    for fn in (o.rmsprop, o.adam):
        if fn.__name__ not in _REGISTRY:
            register_optimizer(fn, scaling={"eps": 2.0}, source="builtin",
                               rotation_invariant=False)


def _load_entry_points() -> None:
    if _LOADED["entry_points"]:
        return
    _LOADED["entry_points"] = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 -- a broken plug-in must not break the rest
            warnings.warn(f"dynverify: could not load optimizer entry point {ep.name!r} "
                          f"({ep.value}): {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        _register_object(obj, ep.name, f"entry-point {ep.value}")


def _register_object(obj: Any, name: str, source: str) -> Registration:
    if isinstance(obj, Registration):
        reg = obj
    elif hasattr(obj, "__dynverify_registration__"):
        reg = obj.__dynverify_registration__
    elif callable(obj):
        reg = Registration(name=name, factory=obj, source=source)
    else:
        raise TypeError(f"{source}: expected a factory or Registration, got {type(obj).__name__}")
    _REGISTRY.setdefault(reg.name, reg)
    return _REGISTRY[reg.name]


def registered() -> dict[str, Registration]:
    """Every registered optimizer (built-ins, entry points, then user registrations)."""
    _load_builtins()
    _load_entry_points()
    return dict(_REGISTRY)


class UnknownOptimizerError(LookupError):
    """No optimizer of that name is registered, or ``module:factory`` cannot be imported."""


def resolve(spec: str | Factory | Registration) -> Registration:
    """A registration from a name, a ``module:factory`` path, a factory or a registration."""
    if isinstance(spec, Registration):
        return spec
    if callable(spec):
        reg = getattr(spec, "__dynverify_registration__", None)
        if isinstance(reg, Registration):
            return reg
        return Registration(name=getattr(spec, "__name__", repr(spec)), factory=spec,
                            source="user")
    if not isinstance(spec, str) or not spec:
        raise UnknownOptimizerError(f"not an optimizer name or factory: {spec!r}")
    regs = registered()
    if spec in regs:
        return regs[spec]
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except ImportError as exc:
            raise UnknownOptimizerError(f"cannot import module {module!r}: {exc}") from exc
        except AttributeError as exc:
            raise UnknownOptimizerError(f"module {module!r} has no attribute {attr!r}") from exc
        if not callable(obj) and not isinstance(obj, Registration):
            raise UnknownOptimizerError(f"{spec!r} is not a factory")
        reg = _register_object(obj, attr.rsplit(".", 1)[-1], spec)
        return reg
    raise UnknownOptimizerError(
        f"unknown optimizer {spec!r}; registered: {', '.join(sorted(regs))}"
        " (or give module:factory)")


def missing_hyperparameters(reg: Registration) -> str | None:
    """Why ``reg`` has no strategy of hyperparameters to draw from (None: it has one)."""
    from hypothesis.errors import InvalidArgument

    try:
        reg.strategy().validate()
    except InvalidArgument:
        return (f"optimizer {reg.name!r} declares no hyperparameters: decorate its factory "
                "with @dynverify.register_optimizer(hyperparameters=st.fixed_dictionaries("
                "{...})), or pass hyperparameters= to check_optimizer")
    return None


def resolve_factory(name: str) -> Factory:
    """The factory registered under ``name`` (used to rebuild optimizers on replay)."""
    return resolve(name).factory


def accepted(factory: Factory, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters that ``factory`` takes (e.g. drop ``momentum`` for GD)."""
    params = inspect.signature(factory).parameters
    return {k: v for k, v in hyperparameters.items() if k in params}
