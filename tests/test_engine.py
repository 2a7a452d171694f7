"""The batched engine: statuses on both sides of each filter boundary, rates, errors."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

import dynverify as dv
from dynverify import Optimizer, Status
from dynverify import optimizers as O
from dynverify.functions import Quadratic, TestFunction
from dynverify.registry import accepted

A, B, R = 0.1, 0.5, 0.5
START, TOL, ESCAPE = 1e-2, 1e-10, 1e3


def predicted_radius(name, lam):
    """ρ₁(λ) in closed form (root moduli via np.roots for the momentum methods)."""
    if name == "heavy_ball":
        return float(np.max(np.abs(np.roots([1, -(1 + B - A * lam), B]))))
    if name == "nesterov":
        c = 1 - A * lam
        return float(np.max(np.abs(np.roots([1, -(1 + B) * c, B * c]))))
    p = {"gradient_descent": lam, "usam": lam * (1 + R * lam),
         "penalty_sam": lam * (1 + R * lam), "two_step_usam": lam * (1 + R * lam) ** 2,
         "hessian_usam": lam * (1 + R * lam ** 2)}[name]
    return abs(1 - A * p)


REGIONS = {  # closed forms at A, B, R (DESIGN.md §2)
    "gradient_descent": [(0.0, 2 / A)],
    "heavy_ball": [(0.0, 2 * (1 + B) / A)],
    "nesterov": [(0.0, 2 * (1 + B) / ((1 + 2 * B) * A))],
    "usam": [((-1 - math.sqrt(1 + 8 * R / A)) / (2 * R), -1 / R),
             (0.0, (-1 + math.sqrt(1 + 8 * R / A)) / (2 * R))],
    "two_step_usam": [(-1 / R, -1 / R),
                      (0.0, brentq(lambda t: t * (1 + R * t) ** 2 - 2 / A, 0, 2 / A, xtol=1e-14))],
    "hessian_usam": [(0.0, brentq(lambda t: t * (1 + R * t ** 2) - 2 / A, 0, 2 / A, xtol=1e-14))],
}
REGIONS["penalty_sam"] = REGIONS["usam"]


def build(name):
    factory = O.BUILTINS[name]
    return factory(**accepted(factory, {"lr": A, "momentum": B, "rho": R}))


def boundary_cases():
    """(name, λ, inside?) just inside and just outside every boundary point."""
    cases = []
    for name, ivs in REGIONS.items():
        for lo, hi in ivs:
            width = hi - lo
            for e, sign_in in ((lo, +1), (hi, -1)):
                d = 0.04 * max(abs(e), 1.0)
                if width > 0:
                    cases.append((name, e + sign_in * min(d, 0.25 * width), True))
                cases.append((name, e - sign_in * d, False))
    return cases


@pytest.mark.parametrize("name, lam, inside", boundary_cases(),
                         ids=[f"{n}-{lam:.4g}-{'in' if i else 'out'}"
                              for n, lam, i in boundary_cases()])
def test_status_on_both_sides_of_each_boundary(name, lam, inside):
    r = predicted_radius(name, lam)
    assert (r < 1) == inside  # the closed-form filter and the closed-form radius agree
    rng = np.random.default_rng(0)
    X0 = START * rng.uniform(-1, 1, (6, 2))
    f = Quadratic.diagonal([lam, lam])
    if inside:
        budget = dv.step_budget(r, start=START, finish=TOL)
        res = dv.run(build(name), f, X0, target=np.zeros(2), tol=TOL, max_steps=budget,
                     escape_radius=ESCAPE)
        assert np.all(res.status == Status.CONVERGED_TARGET), res
        assert np.all(res.distance <= 1e-6)
        # momentum methods with complex roots contract like |μ|ᵗ·|cos(θt + φ)|, so a
        # windowed rate estimate oscillates around |μ|
        atol = 0.1 if name in ("heavy_ball", "nesterov") else 0.01
        assert np.allclose(res.rate, r, atol=atol), (res.rate, r)
        assert np.all(dv.run(build(name), f, X0, target=np.zeros(2), tol=TOL,
                             max_steps=budget // 4).status != Status.ESCAPED)
    else:
        budget = dv.step_budget(r, start=START, finish=ESCAPE)
        res = dv.run(build(name), f, X0, target=np.zeros(2), tol=TOL, max_steps=budget,
                     escape_radius=ESCAPE)
        assert np.all(res.status == Status.ESCAPED), res
        assert np.all(np.linalg.norm(res.x, axis=1) > ESCAPE)


def test_gradient_descent_rate_is_exact():
    lam = 0.9 * 2 / A
    r = abs(1 - A * lam)
    X0 = np.array([[1e-2], [-3e-3], [5e-2]])
    res = dv.run(O.gradient_descent(lr=A), Quadratic([[lam]]), X0, target=[0.0], tol=1e-12,
                 max_steps=dv.step_budget(r, start=1e-2, finish=1e-12))
    assert np.all(res.status == Status.CONVERGED_TARGET)
    np.testing.assert_allclose(res.rate, r, rtol=1e-6)
    # and the iterate is exactly the closed form x₀(1 − αλ)ᵗ
    np.testing.assert_allclose(res.x[:, 0], X0[:, 0] * (1 - A * lam) ** res.steps, rtol=1e-9)


def test_escape_below_the_filter():
    res = dv.run(O.gradient_descent(lr=A), Quadratic([[-1.0]]), [[1e-3]], target=[0.0],
                 escape_radius=10.0, max_steps=dv.step_budget(1 + A, start=1e-3, finish=10.0))
    assert res.status.tolist() == [Status.ESCAPED]


def test_step_budget():
    assert dv.step_budget(0.5, start=1e-2, finish=1e-10) == math.ceil(
        2 * math.log(1e8) / math.log(2)) + 50
    assert dv.step_budget(2.0, start=1e-2, finish=1e2) == math.ceil(
        2 * math.log(1e4) / math.log(2)) + 50
    assert dv.step_budget(1.0, start=1, finish=2, maximum=777) == 777
    assert dv.step_budget(0.999999, start=1, finish=1e-12, maximum=500) == 500
    assert dv.step_budget(0.0, start=1, finish=1e-12) >= 50
    for bad in ({"rate": -1.0}, {"rate": math.nan}, {"rate": math.inf}):
        with pytest.raises(ValueError, match="rate"):
            dv.step_budget(start=1.0, finish=0.1, **bad)
    with pytest.raises(ValueError, match="start"):
        dv.step_budget(0.5, start=0.0, finish=0.1)


class NaNBeyond(TestFunction):
    """λx²/2, but the gradient is NaN where |x₀| > 1 (a function undefined there)."""

    dim = 1

    def value(self, X):
        return np.where(np.abs(X[:, 0]) > 1, np.nan, 0.5 * X[:, 0] ** 2)

    def grad(self, X):
        return np.where(np.abs(X) > 1, np.nan, X)

    def hvp(self, X, V):
        return V


def test_nonfinite_rows_do_not_contaminate_the_others():
    X0 = np.array([[0.5], [5.0], [-0.3], [-7.0], [0.9]])
    f = NaNBeyond()
    opt = O.gradient_descent(lr=0.5)
    res = dv.run(opt, f, X0, target=[0.0], tol=1e-12)
    assert res.status.tolist() == [Status.CONVERGED_TARGET, Status.NONFINITE,
                                   Status.CONVERGED_TARGET, Status.NONFINITE,
                                   Status.CONVERGED_TARGET]
    assert res.steps[1] == 1 and res.steps[3] == 1
    good = [0, 2, 4]
    alone = dv.run(opt, f, X0[good], target=[0.0], tol=1e-12)
    np.testing.assert_array_equal(res.x[good], alone.x)
    np.testing.assert_array_equal(res.steps[good], alone.steps)


def test_converged_elsewhere():
    f = Quadratic(np.diag([1.0, 2.0]), x_star=[1.0, -1.0])
    X0 = np.random.default_rng(3).uniform(-1, 1, (4, 2))
    res = dv.run(O.gradient_descent(lr=0.3), f, X0, target=np.zeros(2), tol=1e-12)
    assert np.all(res.status == Status.CONVERGED_ELSEWHERE)
    np.testing.assert_allclose(res.x, np.tile([1.0, -1.0], (4, 1)), atol=1e-9)
    np.testing.assert_allclose(res.distance, math.sqrt(2), rtol=1e-9)
    # without a target every converged row is "elsewhere"
    res = dv.run(O.gradient_descent(lr=0.3), f, X0, tol=1e-12)
    assert np.all(res.status == Status.CONVERGED_ELSEWHERE)
    assert Status.CONVERGED_ELSEWHERE.converged and not Status.ESCAPED.converged


def test_undecided_when_the_budget_is_too_small():
    f = Quadratic([[1.0]])
    res = dv.run(O.gradient_descent(lr=0.01), f, [[1.0], [0.5]], target=[0.0], max_steps=5)
    assert np.all(res.status == Status.UNDECIDED)
    assert res.steps.tolist() == [5, 5]
    np.testing.assert_allclose(res.x[:, 0], np.array([1.0, 0.5]) * 0.99 ** 5, rtol=1e-12)
    assert res.counts()[Status.UNDECIDED] == 2 and len(res) == 2
    assert "undecided=2" in repr(res)


def test_finished_rows_leave_the_active_set():
    sizes = []
    gd = O.gradient_descent(lr=0.5)

    def step(state, f):
        sizes.append(state[0].shape[0])
        return gd.step(state, f)

    spy = Optimizer(name="spy", hyperparameters={}, init=lambda X: (X,), step=step)
    # rows at the minimum converge at once, far rows escape (λ < 0 side), others later
    f = Quadratic([[1.0]])
    X0 = np.array([[0.0], [1e-3], [1.0], [0.0], [1e-6]])
    res = dv.run(spy, f, X0, target=[0.0], tol=1e-12)
    assert np.all(res.status == Status.CONVERGED_TARGET)
    assert sizes[0] == 5 and sizes[-1] == 1
    # at step t exactly the rows still running (steps ≥ t) are passed to step()
    assert sizes == [int(np.sum(res.steps >= t)) for t in range(1, len(sizes) + 1)]


# -- errors ---------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors():
    f = Quadratic(np.eye(2))
    gd = O.gradient_descent(lr=0.1)
    with pytest.raises(ValueError, match="non-finite"):
        dv.run(gd, f, [[0.0, np.nan], [1.0, 1.0]])
    with pytest.raises(ValueError, match="non-finite"):
        dv.run(gd, f, [[np.inf, 0.0]])
    with pytest.raises(ValueError, match=r"X0 must have shape \(B, 2\)"):
        dv.run(gd, f, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="X0"):
        dv.run(gd, f, np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="target"):
        dv.run(gd, f, np.zeros((3, 2)), target=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="target"):
        dv.run(gd, f, np.zeros((3, 2)), target=[np.nan, 0.0])
    for kw in ({"tol": 0.0}, {"tol": -1.0}, {"escape_radius": 0}, {"target_tol": math.nan},
               {"max_steps": 0}, {"max_steps": 2.5}, {"max_steps": True}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            dv.run(gd, f, np.zeros((1, 2)), **kw)


def raising_at(step_number):
    calls = []

    def step(state, f):
        calls.append(1)
        if len(calls) == step_number:
            raise RuntimeError("boom")
        return (state[0] - 0.1 * f.grad(state[0]),)

    return Optimizer(name="fragile", hyperparameters={"lr": 0.1}, init=lambda X: (X,),
                     step=step)


def test_optimizer_that_raises_is_named_with_the_step():
    with pytest.raises(dv.OptimizerError, match=r"fragile\(lr=0.1\).*step 3.*RuntimeError: boom"):
        dv.run(raising_at(3), Quadratic(np.eye(2)), np.ones((2, 2)), max_steps=100)


def test_function_that_raises():
    class Broken(Quadratic):
        def grad(self, X):
            raise ZeroDivisionError("no gradient here")

    with pytest.raises(dv.FunctionError, match=r"grad raised at step 1.*ZeroDivisionError") as e:
        dv.run(O.heavy_ball(lr=0.1, momentum=0.5), Broken(np.eye(2)), np.ones((2, 2)))
    assert "heavy_ball" in str(e.value)  # the optimizer it ran under is named too


def test_function_returning_the_wrong_shape():
    class Flat(Quadratic):
        def grad(self, X):
            return super().grad(X).ravel()

    with pytest.raises(dv.FunctionError, match="shape"):
        dv.run(O.gradient_descent(lr=0.1), Flat(np.eye(2)), np.ones((2, 2)))


@pytest.mark.parametrize("step, match", [
    (lambda s, f: (s[0][:, :1],), "shape"),
    (lambda s, f: (s[0][:-1],), "shape"),
    (lambda s, f: s[0], "tuple"),
    (lambda s, f: (s[0], s[0]), "tuple of 1"),
])
def test_step_breaking_the_contract(step, match):
    opt = Optimizer(name="sloppy", hyperparameters={}, init=lambda X: (X,), step=step)
    with pytest.raises(dv.OptimizerError, match=rf"sloppy.*{match}"):
        dv.run(opt, Quadratic(np.eye(2)), np.ones((3, 2)))


def test_init_breaking_the_contract():
    opt = Optimizer(name="noinit", hyperparameters={}, init=lambda X: X,
                    step=lambda s, f: s)
    with pytest.raises(dv.OptimizerError, match="noinit.*tuple"):
        dv.run(opt, Quadratic(np.eye(2)), np.ones((3, 2)))


# -- the lean loop: contract checked on the first step, errors unchanged afterwards -------

class FailsAt(Quadratic):
    """A quadratic whose grad raises, or returns a flat array, from a given call on."""

    def __init__(self, n, mode):
        super().__init__(np.eye(2))
        self.n, self.mode, self.calls = n, mode, 0

    def grad(self, X):
        self.calls += 1
        g = super().grad(X)
        if self.calls >= self.n:
            if self.mode == "raise":
                raise ZeroDivisionError("late failure")
            return g.ravel()
        return g


@pytest.mark.parametrize("mode, match", [
    ("raise", r"grad raised at step 40.*ZeroDivisionError: late failure"),
    ("shape", r"grad returned shape \(4,\) at step 40"),
])
def test_function_failing_late_is_reported_with_its_step(mode, match):
    f = FailsAt(40, mode)
    with pytest.raises(dv.FunctionError, match=match) as e:
        dv.run(O.heavy_ball(lr=0.01, momentum=0.5), f, np.ones((2, 2)), max_steps=1000)
    assert "heavy_ball" in str(e.value)


def test_optimizer_failing_late_is_reported_with_its_step():
    with pytest.raises(dv.OptimizerError, match=r"fragile\(lr=0.1\).*step 57.*RuntimeError: boom"):
        dv.run(raising_at(57), Quadratic(np.eye(2)), np.ones((2, 2)), max_steps=1000)


def test_function_wrong_only_at_a_smaller_batch_is_caught():
    """The contract is re-checked when rows leave the active set (a new batch size): a
    (1, d) gradient at B = 2 would broadcast silently."""

    class FirstRowAtTwo(Quadratic):
        def grad(self, X):
            g = super().grad(X)
            return g[:1] if X.shape[0] == 2 else g

    X0 = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])  # row 0 is converged at step 1
    with pytest.raises(dv.FunctionError, match=r"grad returned shape \(1, 2\).*expected \(2, 2\)"):
        dv.run(O.gradient_descent(lr=0.1), FirstRowAtTwo(np.eye(2)), X0, max_steps=100)


def test_step_changing_the_shape_late_is_reported():
    calls = []

    def step(state, f):
        calls.append(1)
        x = state[0] - 0.01 * f.grad(state[0])
        return (x[:, :1],) if len(calls) == 30 else (x,)

    opt = Optimizer(name="late", hyperparameters={}, init=lambda X: (X,), step=step)
    with pytest.raises(dv.OptimizerError, match=r"late.*step 30 changed the shape"):
        dv.run(opt, Quadratic(np.eye(2)), np.ones((3, 2)), max_steps=100)


def test_functions_returning_other_dtypes_are_converted_as_before():
    """A function returning float32 or lists runs as if it returned float64 arrays."""

    class F32(Quadratic):
        def grad(self, X):
            return super().grad(X).astype(np.float32)

    class F64(Quadratic):  # the same values, already converted
        def grad(self, X):
            return super().grad(X).astype(np.float32).astype(float)

    H = np.array([[1.0, 0.3], [0.3, 0.5]])
    X0 = np.random.default_rng(0).standard_normal((5, 2))
    a = dv.run(O.heavy_ball(lr=0.3, momentum=0.5), F32(H), X0, max_steps=300)
    b = dv.run(O.heavy_ball(lr=0.3, momentum=0.5), F64(H), X0, max_steps=300)
    for name in ("status", "steps", "x", "step_norm", "rate"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


@pytest.mark.parametrize("tol", [1e-300, 1e-200, 1.5e-160, 1e-155, 1e-20, 1e-9, 0.3, 1.0, 7.0,
                                 1e150, 1e154, 1e200])
def test_squared_threshold_implies_the_norm_threshold(tol):
    """s > c ⇒ √s > tol for every double s (√ is monotone, so the successor of c decides)."""
    from dynverify.engine import _sq_threshold

    c = _sq_threshold(tol)
    assert np.sqrt(np.nextafter(c, np.inf)) > tol
    # and c is not needlessly large: just below tol², the root falls to tol or under
    if 0 < tol * tol < np.inf and tol > 1e-150:
        assert np.sqrt(np.nextafter(tol * tol, 0.0)) <= tol
        assert c <= tol * tol * (1 + 1e-9)


def test_rows_at_exactly_the_tolerance_decide_as_in_the_definition():
    """Δz = tol exactly is not above tol: the row must take the slow path and converge."""
    f = Quadratic.diagonal([1.0])
    # GD with lr 0.5 halves x: |Δz| = x/2; start so that |Δz| hits 2⁻³⁰ exactly
    tol = 2.0 ** -30
    res = dv.run(O.gradient_descent(lr=0.5), f, np.array([[2.0 ** -20]]), tol=tol,
                 max_steps=100)
    # |Δz_t| = 2^(−20−t): ≤ tol from t = 10 on; remaining = |Δz|·r̂/(1 − r̂) = |Δz| (r̂ = ½)
    assert res.status[0] == Status.CONVERGED_ELSEWHERE
    assert res.steps[0] == 10
