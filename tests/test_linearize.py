"""jacobian, spectral_radius and the per-eigenvalue reduction check."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dynverify as dv
from dynverify import Optimizer
from dynverify import optimizers as O
from dynverify.functions import Quadratic, from_callable
from dynverify.registry import accepted

A, B, R = 0.1, 0.6, 0.3  # lr, momentum, rho


def closed_form_jacobian(name, H):
    d = H.shape[0]
    I, Z = np.eye(d), np.zeros((d, d))
    if name == "gradient_descent":
        return I - A * H
    if name == "heavy_ball":
        return np.block([[(1 + B) * I - A * H, -B * I], [I, Z]])
    if name == "nesterov":
        M = I - A * H
        return np.block([[(1 + B) * M, -B * M], [I, Z]])
    if name == "rmsprop":  # defaults β₂ = 0.99, ε = 1e-8: at v = 0, GD with step α/√ε
        return np.block([[I - A / 1e-4 * H, Z], [Z, 0.99 * I]])
    if name == "adam":  # defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-8; state (x, m, v)
        a, b1 = A / 1e-4, 0.9
        return np.block([[I - a * (1 - b1) * H, -a * b1 * I, Z], [(1 - b1) * H, b1 * I, Z],
                         [Z, Z, 0.999 * I]])
    P = I + R * H
    return {"usam": I - A * H @ P,
            "two_step_usam": I - A * H @ P @ P,
            "hessian_usam": I - A * H @ (I + R * H @ H),
            "penalty_sam": I - A * (H + R * H @ H)}[name]


def build(name):
    factory = O.BUILTINS[name]
    return factory(**accepted(factory, {"lr": A, "momentum": B, "rho": R}))


SPECTRAL = [n for n in O.BUILTINS if n != "sam"]


@st.composite
def rotated_quadratics(draw, max_dim=4):
    d = draw(st.integers(1, max_dim))
    lams = np.array(draw(st.lists(st.floats(-10, 10), min_size=d, max_size=d)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    Q, Rm = np.linalg.qr(rng.standard_normal((d, d)))
    Q = Q * np.sign(np.diag(Rm))
    x_bar = rng.uniform(-3, 3, d)
    H = Q @ np.diag(lams) @ Q.T
    return H, x_bar


@pytest.mark.parametrize("name", SPECTRAL)
@settings(deadline=None)
@given(case=rotated_quadratics())
def test_jacobian_matches_closed_form(name, case):
    H, x_bar = case
    f = Quadratic(H, x_bar)
    opt = build(name)
    want = closed_form_jacobian(name, H)
    J = dv.jacobian(opt, f, x_bar)
    np.testing.assert_allclose(J, want, rtol=0, atol=1e-6 * (1 + np.max(np.abs(want))))
    r = dv.spectral_radius(opt, f, x_bar)
    assert r == pytest.approx(np.max(np.abs(np.linalg.eigvals(J))), rel=1e-12)
    # eigenvalues of a defective J (Nesterov at αλ = 1 is nilpotent) move like √(error)
    assert r == pytest.approx(np.max(np.abs(np.linalg.eigvals(want))), rel=1e-6, abs=1e-4)


def test_jacobian_of_a_nonquadratic_function_matches_finite_differences_of_the_map():
    # f(x) = x₀⁴/4 + x₀x₁² + x₁²: critical at 0 with H = diag(0, 2); GD's J = I − αH
    import autograd.numpy as anp

    f = from_callable(lambda x: x[0] ** 4 / 4 + x[0] * x[1] ** 2 + x[1] ** 2 + 0 * anp.sum(x,
                                                                                        axis=0), 2)
    J = dv.jacobian(O.gradient_descent(lr=0.1), f, [0.0, 0.0])
    np.testing.assert_allclose(J, np.diag([1.0, 0.8]), atol=1e-8)
    # away from a critical point: x̄ = (1, 0) is not critical, J = I − α∇²f(x̄)
    J = dv.jacobian(O.gradient_descent(lr=0.1), f, [1.0, 0.0])
    np.testing.assert_allclose(J, np.eye(2) - 0.1 * np.diag([3.0, 4.0]), atol=1e-7)


def test_jacobian_of_sam_raises():
    f = Quadratic(np.diag([1.0, 2.0]))
    with pytest.raises(dv.NotDifferentiableError, match="not differentiable"):
        dv.jacobian(O.sam(lr=0.1, rho=0.5), f, np.zeros(2))


def test_jacobian_of_three_component_state():
    b1, b2, lr, lam = 0.5, 0.2, 0.1, 3.0

    def step(state, f):
        x, x1, x2 = state
        return (x - lr * f.grad(x) + b1 * (x - x1) + b2 * (x1 - x2), x, x1)

    opt = Optimizer(name="two_momentum", hyperparameters={}, init=lambda X: (X, X, X),
                    step=step)
    J = dv.jacobian(opt, Quadratic([[lam]]), [0.0])
    want = np.array([[1 + b1 - lr * lam, b2 - b1, -b2], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(J, want, atol=1e-9)


@pytest.mark.parametrize("name", SPECTRAL)
def test_spectral_reduction_holds_for_builtins(name):
    check = dv.check_spectral_reduction(build(name), trials=4)
    assert check.holds, check.message
    assert check.max_discrepancy <= 1e-6 and "holds" in check.message


def preconditioned_gd(lr=0.1):
    """x⁺ = x − αP∇f(x), P = diag(1, 2, …, d): not a polynomial in H."""

    def step(state, f):
        (x,) = state
        P = np.arange(1, x.shape[1] + 1, dtype=float)
        return (x - lr * P * f.grad(x),)

    return Optimizer(name="preconditioned_gd", hyperparameters={"lr": lr},
                     init=lambda X: (X,), step=step)


def test_spectral_reduction_fails_for_a_preconditioner():
    opt = preconditioned_gd()
    # its 1-D filter is gradient descent's (P = 1 in one dimension) …
    assert dv.derive_region(opt).isclose(O.gradient_descent(lr=0.1).region)
    check = dv.check_spectral_reduction(opt)
    assert not check.holds
    assert "does NOT hold" in check.message and "preconditioned_gd" in check.message
    # … but on H = diag(1, 1) its spectral radius is |1 − 2α| ≠ |1 − α|
    f = Quadratic(np.diag([10.0, 10.0]))
    assert dv.spectral_radius(opt, f, np.zeros(2)) == pytest.approx(1.0, abs=1e-9)
    assert np.max(dv.filter_function(opt)(np.array([10.0, 10.0]))) == pytest.approx(0.0,
                                                                                      abs=1e-9)


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_jacobian_away_from_the_origin_uses_the_steps_actually_taken(name):
    # x̄ ≈ 2.8: x̄ + h is rounded by ~1e-16·x̄, which at the small steps these maps need
    # (ε inside the square root) was ~1e-6 of h and showed up as 1e-6 of J ≈ 6000
    H = np.array([[5.91458241, -1.67984185], [-1.67984185, 8.08541759]])
    x_bar = np.array([1.67682508, 2.75779071])
    want = closed_form_jacobian(name, H)
    J = dv.jacobian(build(name), Quadratic(H, x_bar), x_bar)
    np.testing.assert_allclose(J, want, rtol=0, atol=1e-8 * (1 + np.max(np.abs(want))))


def test_jacobian_at_a_tiny_hessian_steps_inside_the_quartic_free_region():
    # heavy ball at α = 1e200, β = 0 on (1.989e-200, 1.82e-202) + μ‖u‖⁴, μ = 1: αλ ~ 1,
    # so by hand J = diag(1 − αλ) (and β = 0 leaves the momentum block 0). A relative
    # step of 1e-6 sees α·4μh² = 4e188 from the quartic; the first steps never settle,
    # and the old code returned J ≈ −8.9e156 and a false claim-1 counterexample
    from dynverify.planted import PlantedFunction

    lam = np.array([1.989e-200, 1.82e-202])
    J = dv.jacobian(O.heavy_ball(lr=1e200, momentum=0.0), PlantedFunction(lam, mu=1.0),
                    [0.0, 0.0])
    got = np.sort(np.linalg.eigvals(J).real)
    np.testing.assert_allclose(got, np.sort(np.r_[1.0 - 1e200 * lam, 0.0, 0.0]),
                               atol=1e-9)


def test_differences_that_never_settle_are_refused_not_guessed():
    # x⁺ = x − 0.1·(x + 1e6·sign(x)|x|^1.5): C¹ at 0 with derivative 0.9, but its central
    # quotient 0.9 − 1e5·√h changes by ~1e-2 even at h = 1e-14 (no level settles, no kink:
    # both one-sided slopes agree). No estimate is within 1e-3, so the answer is "cannot
    # measure", never the unsettled quotient
    def step(state, f):
        (x,) = state
        return (x - 0.1 * (x + 1e6 * np.sign(x) * np.abs(x) ** 1.5),)

    opt = Optimizer(name="root_term", hyperparameters={}, init=lambda X: (X,), step=step)
    with pytest.raises(dv.errors.UnresolvedLinearizationError, match="do not settle"):
        dv.jacobian(opt, Quadratic([[1.0]]), [0.0])


def test_steps_lost_in_huge_even_outputs_are_refused():
    # Adam at α = 1e200 on λ = (3.82e-203, …) plus a cube term t³ along e₁: by hand the
    # (x, m) block [[1 − aκ, −aβ₁], [κ, β₁]] (a = α/√ε, κ = (1 − β₁)λ) has ρ = 1.1085.
    # At any step floats resolve, the cube's 3h² (even in h) puts x⁺(±h) at ≈ −3e187 for
    # both signs and the ±h(1 − aκ) is lost; inside the cube-free region (h ~ 1e-209) κh
    # underflows. The old code accepted the quotient 0 (ρ = 0.999, a false claim-1
    # counterexample); the answer is "cannot be measured"
    from dynverify.planted import PlantedFunction, Term

    lam = [3.820417232901556e-203, 3.1697536773465096e-203, 1.9e-204]
    f = PlantedFunction(lam, terms=[Term("cube", c=1.0, a=(1.0, 0.0, 0.0))])
    with pytest.raises(dv.errors.UnresolvedLinearizationError):
        dv.jacobian(O.adam(lr=1e200), f, np.zeros(3))
