"""check_optimizer: the conformance suite catches wrong plug-ins and passes correct ones."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

import dynverify
from dynverify.check import check_optimizer, replay

DIFFERS = "declared filter differs from the derived filter"
WRONG = {
    # plug-in: (claim that must catch it, acceptable reasons of its counterexample)
    "wrong_optimizers:too_wide": ("filter_agrees",
                                  {DIFFERS, "spectrum inside the filter but r > 1"}),
    "wrong_optimizers:too_narrow": ("filter_agrees",
                                    {DIFFERS, "spectrum outside the filter but r ≤ 1"}),
    "wrong_optimizers:sign_error": ("filter_agrees",
                                    {DIFFERS, "spectrum inside the filter but r > 1"}),
    "wrong_optimizers:moving_init": ("stable_converges", {"init-not-fixed-point"}),
}


@pytest.mark.parametrize("target", sorted(WRONG))
def test_wrong_plugins_are_caught_with_a_replayable_minimal_counterexample(target, tmp_path):
    claim, reasons = WRONG[target]
    res = check_optimizer(target, claims=[claim], profile="ci", reports=tmp_path)
    assert not res.ok
    (cr,) = res.results
    reason = cr.counterexample["verdict"]["reason"]
    assert reason in reasons
    # shrinking: the minimal example is one-dimensional with no extra terms
    spec = cr.counterexample["function"]
    assert spec["kind"] == "planted" and len(spec["spectrum"]) == 1 and spec["terms"] == []
    # the JSON alone rebuilds the case, and the case fails again
    path = cr.counterexample_path
    assert json.loads(Path(path).read_text(encoding="utf-8"))["claim"] == claim
    again = replay(path)
    assert again.reproduces and again.verdict.reason == reason
    # the summary line leads with the key fact, then gives the reason
    (line,) = [ln for ln in str(res).splitlines()
               if ln.startswith(f"counterexample {cr.optimizer}/{claim}: ")]
    key_fact = cr.counterexample["verdict"]["evidence"]["key_fact"]
    assert line.startswith(f"counterexample {cr.optimizer}/{claim}: {key_fact}")
    assert reason in str(res)
    assert f"dynverify replay {path}" in str(res)


def test_a_raising_optimizer_gives_a_clear_error_and_the_run_continues(tmp_path):
    res = check_optimizer("wrong_optimizers:raises", profile="ci", reports=tmp_path)
    assert len(res.results) == 5  # every claim still ran
    for cr in res.results:
        ev = cr.counterexample["verdict"]["evidence"]
        assert "raises" in ev["error"] and "boom" in ev["error"] and "step" in ev["error"]


def test_a_nan_returning_optimizer_is_named_as_such(tmp_path):
    res = check_optimizer("wrong_optimizers:returns_nan", claims=["filter_agrees"],
                          profile="ci", reports=tmp_path)
    (cr,) = res.results
    assert cr.counterexample["verdict"]["reason"] == "nonfinite-step"
    assert "non-finite" in cr.counterexample["verdict"]["evidence"]["error"]


def test_sam_is_reported_outside_the_hypotheses():
    from hypothesis import strategies as st

    from dynverify.check import ClaimStatus

    # ρ > 0 (at ρ = 0 normalized SAM is gradient descent and declares its filter)
    hp = st.fixed_dictionaries({"lr": st.floats(0.01, 1.0), "rho": st.floats(0.01, 2.0)})
    res = check_optimizer("sam", claims=["filter_agrees", "stable_converges",
                                         "convergence_filters"], profile="ci",
                          hyperparameters=hp)
    assert res.ok and res.status is ClaimStatus.OUTSIDE_HYPOTHESES
    for cr in res.results:
        assert cr.counts["inconclusive"] > 0 and cr.counts["pass"] == 0
        assert set(cr.reasons) == {"outside-hypotheses"}


def test_plugin_without_declared_filter_is_checked_against_its_derived_filter():
    res = check_optimizer("wrong_optimizers:undeclared_gd",
                          claims=["filter_agrees", "stable_converges"], profile="ci")
    assert res.ok, str(res)
    assert all(cr.counts["pass"] > 0 for cr in res.results)


def test_usable_as_an_assertion_in_a_users_test():
    def my_gd(lr):
        return dynverify.Optimizer(name="my_gd", hyperparameters={"lr": lr},
                                   init=lambda X: (X,),
                                   step=lambda s, f: (s[0] - lr * f.grad(s[0]),))

    hp = st.fixed_dictionaries({"lr": st.floats(0.05, 0.5)})
    res = dynverify.check_optimizer(my_gd, hyperparameters=hp, profile="ci",
                                    claims=["filter_agrees", "unstable_no_convergence"])
    assert res.ok, str(res)
    assert res.optimizer == "my_gd"


def test_bad_arguments_are_rejected_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="no_such_claim"):
        check_optimizer("gradient_descent", claims=["no_such_claim"], reports=tmp_path)
    with pytest.raises(ValueError, match="profile"):
        check_optimizer("gradient_descent", profile="nope", reports=tmp_path)
    assert not any(tmp_path.iterdir())  # no run directory was started


def test_transient_growth_is_the_max_norm_of_the_powers() -> None:
    # reference: ‖Jᵏ‖₂ by an SVD per power, stopping below 1e-3, capped at 1e6
    from dynverify.check import _transient_growth

    def reference(J: np.ndarray, steps: int) -> float:
        P, worst = np.eye(J.shape[-1]), 1.0
        for _ in range(steps):
            P = P @ J[0]
            n = float(np.linalg.svd(P, compute_uv=False)[0])
            if not np.isfinite(n) or n > 1e6:
                return 1e6
            worst = max(worst, n)
            if n < 1e-3:
                break
        return worst

    rng = np.random.default_rng(7)
    for k in range(200):
        m = int(rng.integers(1, 6))
        J = rng.standard_normal((1, m, m))
        J /= np.max(np.abs(np.linalg.eigvals(J))) * rng.uniform(0.5, 1.05)
        if k % 40 == 0:
            J *= 1e100  # overflows
        for steps in (1, 31, 32, 33, 500):
            assert _transient_growth(J, steps) == pytest.approx(reference(J, steps),
                                                                rel=1e-12), (k, steps)
    # a Jordan block: ‖Jᵏ‖ grows like k·0.9ᵏ⁻¹ before it decays
    J = np.array([[[0.9, 1.0], [0.0, 0.9]]])
    expected = max(np.linalg.norm(np.linalg.matrix_power(J[0], k), 2) for k in range(1, 500))
    assert _transient_growth(J) == pytest.approx(expected, rel=1e-12)


def test_claim1_is_not_steered_by_hypothesis_target(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # claim 1 hugs the boundary by construction; targeting |r − 1| → 0 next to two-step
    # USAM's isolated point kept Hypothesis' hill climbing busy for tens of minutes (deep)
    from dynverify import check as check_module

    calls: list[str] = []
    monkeypatch.setattr(check_module, "target",
                        lambda score, label="": calls.append(label))
    check_optimizer("two_step_usam", claims=["filter_agrees"], profile="dev", reports=None)
    assert calls == []
    check_optimizer("gradient_descent", claims=["stable_converges"], profile="dev",
                    reports=None)
    assert calls and set(calls) == {"-|r-1|"}


def test_linear_radius_counts_every_position_even_one_no_other_depends_on() -> None:
    """Gradient descent on f with x₁, x₂ coupled and x₃ alone (its Jacobian column has no
    off-diagonal entry) and a cubic term along x₃ only: the ball is the largest
    radius·2⁻ᵏ at which the second difference of G(x) = x − α∇f(x), by hand from ∇f,
    is within 0.1·|1 − r|/growth of t = radius·growth (growth = 1: J symmetric, r < 1)."""
    from dynverify.check import _linear_radius
    from dynverify.optimizers import gradient_descent
    from dynverify.planted import PlantedFunction, Term

    c, s = math.cos(0.7), math.sin(0.7)
    Q = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    f = PlantedFunction(spectrum=(1.0, 2.0, 3.0), rotation=Q, x_star=np.zeros(3),
                        terms=[Term("cube", 5.0, (0.0, 0.0, 1.0))], mu=0.0)
    alpha = 0.1
    opt = gradient_descent(lr=alpha)
    r = max(abs(1 - alpha * lam) for lam in (1.0, 2.0, 3.0))
    U = np.random.default_rng(0).standard_normal((8, 3))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    radius = 0.01
    while True:
        g = lambda X: -alpha * f.grad(X)  # noqa: E731 -- G minus its linear-free part x
        second = g(radius * U) - 2 * g(0.5 * radius * U) + g(np.zeros((8, 3)))
        if 2 * np.max(np.linalg.norm(second, axis=1)) / radius <= 0.1 * (1 - r):
            break
        radius /= 2
    assert radius < 0.01  # the cubic term along x₃ shrinks the ball
    assert _linear_radius(opt, f, np.zeros(3), 0.01, 1 - r) == radius


def test_adams_second_moment_does_not_shrink_its_ball() -> None:
    """Adam's v⁺ = β₂v + (1 − β₂)∇f² is quadratic in x, but x⁺ depends on v only through
    m·δv (∂x⁺/∂v ∝ m = 0 at x̄): the ball is set by the (x, m) rows. Counting v's row made
    it 1.2e-9 here (found under ci): below the resolution floor, "no such case"."""
    from dynverify.check import _linear_radius, _transient_growth
    from dynverify.linearize import jacobian, spectral_radius
    from dynverify.optimizers import adam
    from dynverify.planted import PlantedFunction

    opt = adam(lr=1.913, beta1=0.9498, beta2=0.5805, eps=0.5)
    f = PlantedFunction(spectrum=(28.707,), x_star=np.zeros(1), mu=0.0)
    r = spectral_radius(opt, f, np.zeros(1))
    assert r < 1
    got = _linear_radius(opt, f, np.zeros(1), 0.01, 1 - r)
    # by hand, with v's row left out: a quadratic f makes ∇f linear, so the (x, m) rows
    # are nonlinear only through 1/√(v⁺ + ε), v⁺ = (1 − β₂)λ²u², at second order:
    # x⁺ ∋ −α m⁺/√ε·(1 − v⁺/(2ε)); the ball is where that is ≤ 0.1·|1 − r|/growth
    growth = _transient_growth(jacobian(opt, f, np.zeros(1))[None])
    assert got > 1e-6 and got * growth * 28.707 * math.sqrt(1 - 0.5805) < math.sqrt(0.5)
