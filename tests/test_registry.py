"""The registry: built-ins, decorators, module:factory paths and entry points."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

import dynverify.registry as registry
from dynverify import Optimizer
from dynverify.optimizers import BUILTINS


def test_builtins_are_registered_the_same_way_as_plugins():
    regs = registry.registered()
    assert set(BUILTINS) <= set(regs)
    assert all(regs[n].source == "builtin" for n in BUILTINS)
    assert regs["usam"].reductions == (({"rho": 0.0}, "gradient_descent"),)


def test_decorator_registration_and_resolution():
    hp = st.fixed_dictionaries({"lr": st.just(0.1)})

    @registry.register_optimizer(name="test_gd_plugin", hyperparameters=hp)
    def factory(lr):
        return Optimizer(name="test_gd_plugin", hyperparameters={"lr": lr}, init=lambda X: (X,),
                         step=lambda s, f: (s[0] - lr * f.grad(s[0]),))

    try:
        reg = registry.resolve("test_gd_plugin")
        assert reg.factory is factory and reg.hyperparameters is hp
        assert registry.resolve(factory) is reg
        assert reg.build(lr=0.1).hyperparameters == {"lr": 0.1}
    finally:
        registry.unregister("test_gd_plugin")
    with pytest.raises(registry.UnknownOptimizerError, match="test_gd_plugin"):
        registry.resolve("test_gd_plugin")


def test_module_factory_paths():
    reg = registry.resolve("wrong_optimizers:too_wide")
    assert reg.name == "too_wide"
    with pytest.raises(registry.UnknownOptimizerError, match="cannot import module"):
        registry.resolve("no_such_module_xyz:f")
    with pytest.raises(registry.UnknownOptimizerError, match="has no attribute"):
        registry.resolve("wrong_optimizers:nope")


def test_declared_region_overrides_the_optimizers_own():
    from dynverify import Region

    reg = registry.Registration(name="x", factory=BUILTINS["gradient_descent"],
                                region=lambda lr: Region([(0.0, 1.0 / lr)]))
    assert reg.build(lr=0.5).region.intervals == ((0.0, 2.0),)


class _FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self.value, self._obj, self._error = name, f"fake:{name}", obj, error

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def test_entry_points_contribute_optimizers_and_broken_ones_warn(monkeypatch):
    def ep_factory(lr=0.1):
        return Optimizer(name="ep_opt", hyperparameters={"lr": lr}, init=lambda X: (X,),
                         step=lambda s, f: (s[0] - lr * f.grad(s[0]),))

    eps = [_FakeEntryPoint("ep_opt", ep_factory),
           _FakeEntryPoint("broken", error=ImportError("missing dependency"))]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.setitem(registry._LOADED, "entry_points", False)
    try:
        with pytest.warns(UserWarning, match="broken.*missing dependency"):
            regs = registry.registered()
        assert regs["ep_opt"].factory is ep_factory
        assert "broken" not in regs
    finally:
        registry.unregister("ep_opt")


def test_accepted_keeps_only_the_factorys_hyperparameters():
    given = {"lr": 0.1, "momentum": 0.9, "rho": 0.5}
    assert registry.accepted(BUILTINS["gradient_descent"], given) == {"lr": 0.1}
    assert registry.accepted(BUILTINS["heavy_ball"], given) == {"lr": 0.1, "momentum": 0.9}
    assert registry.accepted(BUILTINS["usam"], given) == {"lr": 0.1, "rho": 0.5}
