"""Built-in optimizer factories: the update maps, validation, and the contract."""

import math

import numpy as np
import pytest

import dynverify as dv
from dynverify import optimizers as O
from dynverify.functions import Quadratic

GOOD = {"lr": 0.1, "momentum": 0.5, "rho": 0.3, "beta1": 0.5, "beta2": 0.9, "eps": 1e-4}
PARAMS = {
    "gradient_descent": ("lr",),
    "heavy_ball": ("lr", "momentum"),
    "nesterov": ("lr", "momentum"),
    "usam": ("lr", "rho"),
    "two_step_usam": ("lr", "rho"),
    "hessian_usam": ("lr", "rho"),
    "penalty_sam": ("lr", "rho"),
    "sam": ("lr", "rho"),
    "rmsprop": ("lr", "beta2", "eps"),
    "adam": ("lr", "beta1", "beta2", "eps"),
}
BAD_VALUES = {
    "lr": [0.0, -0.0, -0.1, math.nan, math.inf, -math.inf, "0.1", True, None, [0.1],
           np.float64(-1.0)],
    "momentum": [-0.1, 1.0, 1.5, math.nan, math.inf, "0.9", True, None],
    "rho": [-1e-3, -1.0, math.nan, math.inf, "0.5", False, None],
    "beta1": [-0.1, 1.0, math.nan, "0.9", True, None],
    "beta2": [-0.1, 1.0, 1.5, math.inf, "0.99", None],
    "eps": [0.0, -1e-8, math.nan, math.inf, "1e-8", True, None],
}
CASES = [(name, param, bad) for name, params in PARAMS.items() for param in params
         for bad in BAD_VALUES[param]]


def build(name, **override):
    return O.BUILTINS[name](**{p: override.get(p, GOOD[p]) for p in PARAMS[name]})


def test_builtins_table_is_complete():
    assert set(O.BUILTINS) == set(PARAMS)


@pytest.mark.parametrize("name, param, bad", CASES,
                         ids=[f"{n}-{p}-{b!r}" for n, p, b in CASES])
def test_invalid_hyperparameter_raises_naming_it(name, param, bad):
    with pytest.raises(ValueError, match=rf"\b{param}\b"):
        build(name, **{param: bad})


@pytest.mark.parametrize("name", PARAMS)
def test_valid_edge_values_are_accepted(name):
    edges = {"lr": 1e-12, "momentum": 0.0, "rho": 0.0, "beta1": 0.0, "beta2": 0.0, "eps": 1e-300}
    opt = build(name, **edges)
    assert dict(opt.hyperparameters) == {p: edges[p] for p in PARAMS[name]}
    assert all(type(v) is float for v in opt.hyperparameters.values())
    assert build(name, lr=np.float32(0.5), rho=1, momentum=np.float64(0.25)).hyperparameters[
        "lr"] == 0.5


@pytest.mark.parametrize("name", PARAMS)
def test_name_repr_and_frozen_hyperparameters(name):
    opt = build(name)
    assert opt.name == name
    assert repr(opt).startswith(f"{name}(lr=0.1")
    with pytest.raises(TypeError):
        opt.hyperparameters["lr"] = 1.0


@pytest.mark.parametrize("name", PARAMS)
def test_init_of_a_critical_point_is_a_fixed_point(name):
    rng = np.random.default_rng(0)
    x_bar = rng.standard_normal(3)
    f = Quadratic(np.diag([2.0, -1.0, 0.5]), x_bar)
    opt = build(name)
    X = np.tile(x_bar, (4, 1))
    state = opt.init(X)
    new = opt.step(state, f)
    assert len(new) == len(state)
    for s, n in zip(state, new):
        np.testing.assert_allclose(n, s, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(opt.position(state), X)


def test_update_maps_match_the_design_formulas_on_one_step():
    """One step from a random point of a quadratic, against the formulas written here."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 3))
    H = A + A.T
    f = Quadratic(H)
    x, x_prev = rng.standard_normal((1, 3)), rng.standard_normal((1, 3))
    g = lambda z: z @ H  # noqa: E731 -- ∇f(z) for f(z) = ½ zᵀHz
    a, b, r = 0.1, 0.5, 0.3
    expected = {
        "gradient_descent": x - a * g(x),
        "heavy_ball": x - a * g(x) + b * (x - x_prev),
        "nesterov": (x + b * (x - x_prev)) - a * g(x + b * (x - x_prev)),
        "usam": x - a * g(x + r * g(x)),
        "two_step_usam": x - a * g(x + r * g(x) + r * g(x + r * g(x))),
        "hessian_usam": x - a * g(x + r * g(x) @ H),
        "penalty_sam": x - a * (g(x) + r * g(x) @ H),
        "sam": x - a * g(x + r * g(x) / np.linalg.norm(g(x))),
    }
    for name, want in expected.items():
        opt = build(name)
        state = (x, x_prev) if name in ("heavy_ball", "nesterov") else (x,)
        np.testing.assert_allclose(opt.step(state, f)[0], want, rtol=1e-12, atol=1e-12)


def test_sam_takes_norms_per_row_and_fixes_critical_points():
    f = Quadratic(np.diag([1.0, 4.0]))
    X = np.array([[1.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    out = O.sam(lr=0.1, rho=0.5).step((X,), f)[0]
    # rows 0 and 2: g/‖g‖ = e₁, so x⁺ = x − 0.1·(x + 0.5 e₁)
    np.testing.assert_allclose(out, [[0.85, 0.0], [0.0, 0.0], [8.95, 0.0]], rtol=1e-14)


def test_optimizer_constructor_validates():
    with pytest.raises(ValueError, match="name"):
        dv.Optimizer(name="", hyperparameters={}, init=lambda X: (X,), step=lambda s, f: s)
    with pytest.raises(TypeError, match="step"):
        dv.Optimizer(name="x", hyperparameters={}, init=lambda X: (X,), step=None)
    with pytest.raises(TypeError, match="region"):
        dv.Optimizer(name="x", hyperparameters={}, init=lambda X: (X,), step=lambda s, f: s,
                     region=[(0, 1)])
    opt = dv.Optimizer(name="x", hyperparameters={"lr": 1}, init=lambda X: (X, 2 * X),
                       step=lambda s, f: s, position=lambda s: s[1])
    assert opt.position(opt.init(np.ones((1, 2)))).tolist() == [[2.0, 2.0]]


@pytest.mark.parametrize("name", ["usam", "penalty_sam", "two_step_usam", "hessian_usam"])
def test_rho_zero_is_gradient_descent(name):
    rng = np.random.default_rng(2)
    f = Quadratic(np.diag([3.0, -2.0]))
    X = rng.standard_normal((5, 2))
    got = build(name, rho=0.0).step((X,), f)[0]
    want = O.gradient_descent(lr=0.1).step((X,), f)[0]
    np.testing.assert_array_equal(got, want)
