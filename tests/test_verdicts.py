"""Verdict semantics (issue 10 §2–§4): no verdict without evidence, measured exemptions,
fixed points that should not exist, counterexamples that lead with their key fact."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from dynverify import Optimizer, Region, check_optimizer
from dynverify.check import ClaimResult, ClaimStatus, worst_status
from dynverify.claims import (
    DEFAULT_SETTINGS,
    Case,
    Outcome,
    convergence_filters,
    filter_agrees,
    stable_converges,
    unstable_no_convergence,
)
from dynverify.landscapes import Wells
from dynverify.optimizers import BUILTINS, gradient_descent, heavy_ball, nesterov, sam
from dynverify.planted import PlantedFunction

# -- ClaimResult.status: definitions ----------------------------------------------------


def _result(reasons: dict[str, int] | None = None, passes: int = 0, **kw) -> ClaimResult:  # type: ignore[no-untyped-def]
    reasons = Counter(reasons or {})
    counts = Counter({"pass": passes, "inconclusive": sum(reasons.values())})
    return ClaimResult("opt", "claim", counts=counts, reasons=reasons, **kw)


def test_all_inconclusive_is_not_verified_and_not_ok() -> None:
    r = _result({"premise-not-met: r > 1 − δ": 150, "boundary-band": 10})
    assert r.status is ClaimStatus.NOT_VERIFIED and not r.ok
    assert "0 of 10 applicable cases decided" in r.why_not_verified()
    assert "premise-not-met: r > 1 − δ ×150" in r.why_not_verified()


def test_cases_that_missed_the_premise_do_not_dilute_the_decided_fraction() -> None:
    # 490 decided, 510 drawn spectra that did not meet the premise: enough evidence
    r = _result({"premise-not-met: r < 1 + δ": 510}, passes=490)
    assert r.applicable == 490 and r.status is ClaimStatus.VERIFIED
    # ... but undecided applicable cases do
    r = _result({"premise-not-met: r < 1 + δ": 500, "budget-exhausted": 300}, passes=200)
    assert r.status is ClaimStatus.NOT_VERIFIED


@pytest.mark.parametrize(("passes", "inconclusive", "fraction", "expected"), [
    (20, 20, 0.5, ClaimStatus.VERIFIED),       # exactly half decided
    (19, 21, 0.5, ClaimStatus.NOT_VERIFIED),
    (36, 4, 0.9, ClaimStatus.VERIFIED),
    (35, 5, 0.9, ClaimStatus.NOT_VERIFIED),
    (5, 0, 0.5, ClaimStatus.VERIFIED),
    (4, 0, 0.5, ClaimStatus.NOT_VERIFIED),     # fewer than min_decided = 5 passes
    (0, 0, 0.5, ClaimStatus.NOT_VERIFIED),     # no case at all
])
def test_decided_fraction_threshold(passes, inconclusive, fraction, expected) -> None:  # type: ignore[no-untyped-def]
    r = _result({"budget-exhausted": inconclusive} if inconclusive else {}, passes,
                min_decided_fraction=fraction)
    assert r.status is expected


def test_measured_outside_cases_do_not_count_against_the_threshold() -> None:
    assert _result({"outside-hypotheses": 40}).status is ClaimStatus.OUTSIDE_HYPOTHESES
    assert _result({"outside-hypotheses": 40}).ok
    # 5 cases within the hypotheses, all decided
    assert _result({"outside-hypotheses": 35}, passes=5).status is ClaimStatus.VERIFIED
    assert _result({"outside-hypotheses": 35}, passes=4).status is ClaimStatus.NOT_VERIFIED


def test_an_unconfirmed_exemption_is_never_verified() -> None:
    r = _result({"exemption-not-confirmed": 1}, passes=39)
    assert r.status is ClaimStatus.NOT_VERIFIED and not r.ok
    assert "exemption was not confirmed" in r.why_not_verified()


def test_counterexample_and_error_win() -> None:
    assert _result(passes=39, counterexample={"verdict": {}}).status is \
        ClaimStatus.COUNTEREXAMPLE
    assert _result(passes=39, error="boom").status is ClaimStatus.ERROR
    assert worst_status([ClaimStatus.VERIFIED, ClaimStatus.NOT_VERIFIED,
                         ClaimStatus.OUTSIDE_HYPOTHESES]) is ClaimStatus.NOT_VERIFIED
    assert worst_status([ClaimStatus.NOT_VERIFIED, ClaimStatus.COUNTEREXAMPLE]) is \
        ClaimStatus.COUNTEREXAMPLE


# -- the three wrong optimizers of issue 10 ---------------------------------------------

def test_false_exemption_is_caught() -> None:
    res = check_optimizer("wrong_optimizers:false_exemption",
                          claims=["filter_agrees", "stable_converges"], profile="ci")
    assert not res.ok
    assert res.status is ClaimStatus.COUNTEREXAMPLE
    fa, sc = res.results
    # judged as if there were no exemption: the declared [0, 3/α] is wrong
    assert fa.counterexample["verdict"]["reason"].startswith("exemption not confirmed")
    assert sc.status is ClaimStatus.NOT_VERIFIED
    assert sc.reasons["exemption-not-confirmed"] > 0


def test_false_exemption_on_a_correct_map_keeps_the_run_from_being_verified() -> None:
    gd = gradient_descent(lr=0.5)
    lying = Optimizer(name="gd", hyperparameters={"lr": 0.5}, init=gd.init, step=gd.step,
                      region=gd.region, outside_hypotheses="claimed not C¹")
    case = Case(lying, PlantedFunction([1.0]), np.array([[1e-3]]), x_star=np.zeros(1),
                spectrum=(1.0,))
    v = stable_converges(case)
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "exemption-not-confirmed"
    # what the claim concluded without the exemption is kept as evidence
    assert v.evidence["without_exemption"].startswith("pass")


def test_sign_term_is_not_verified() -> None:
    res = check_optimizer("wrong_optimizers:sign_term",
                          claims=["filter_agrees", "convergence_filters"], profile="ci")
    assert not res.ok and res.status is ClaimStatus.NOT_VERIFIED
    fa = res.results[0]
    assert fa.decided == 0 and fa.reasons["not-differentiable"] == fa.cases
    assert "not verified" in str(res).lower()


def test_mistyped_clipping_stops_at_a_non_critical_point() -> None:
    from wrong_optimizers import mistyped_clipping

    # f = 2(x² − 1)² − 2: f′ = 8x(x² − 1); f′(x) = 2 at x ≈ −0.2696 (by hand: the root
    # of 8x³ − 8x − 2 in (−0.5, 0))
    f = Wells([[-1.0, 0.0, 1.0]], k=[8.0])
    x_fixed = max(r for r in np.roots([8.0, 0.0, -8.0, -2.0]).real if -1 < r < 0)
    X0 = np.linspace(-0.5, -0.05, 16)[:, None]
    v = convergence_filters(Case(mistyped_clipping(0.05), f, X0))
    assert v.outcome is Outcome.COUNTEREXAMPLE, v
    lim = v.evidence["noncritical_limits"][0]
    assert lim["x"][0] == pytest.approx(x_fixed, abs=1e-6)
    assert lim["grad_norm"] == pytest.approx(2.0, rel=1e-6)
    assert lim["step_residual"] < 1e-12
    assert v.key_fact.startswith("limit x∞ = ") and "not a critical point" in v.key_fact


def test_mistyped_clipping_is_caught_by_check_optimizer() -> None:
    res = check_optimizer("wrong_optimizers:mistyped_clipping",
                          claims=["unstable_no_convergence"], profile="ci")
    assert res.status is ClaimStatus.COUNTEREXAMPLE
    assert "not a critical point" in str(res)


def test_correct_gradient_descent_on_the_same_double_well_passes() -> None:
    f = Wells([[-1.0, 0.0, 1.0]], k=[8.0])
    X0 = np.linspace(-0.5, -0.05, 16)[:, None]
    v = convergence_filters(Case(gradient_descent(0.05), f, X0))
    assert v.outcome is Outcome.PASS, v


# f = 2(x² − 1)² − 2 (Wells k = 8): minima ±1 with f″ = 16, maximum 0 with f″ = −8
_DOUBLE_WELL = Wells([[-1.0, 0.0, 1.0]], k=[8.0])
# starts 0.01 next to each of the three critical points, both sides
_NEXT_TO_CRITICAL = np.array([[-1.01], [-0.99], [-0.01], [0.01], [0.99], [1.01]])


def test_claim4_passes_on_runs_that_leave_critical_points_outside_the_filter() -> None:
    # α = 0.2: 2/α = 10 < 16, so both minima are outside [0, 10] as is the maximum
    # (−8 < 0); by hand, |x⁺ − 1| ≈ |1 − 0.2·16|·|x − 1| = 2.2·|x − 1| near a minimum.
    # No run converges, and that is what the filter predicts: a pass, with the evidence
    v = convergence_filters(Case(gradient_descent(0.2), _DOUBLE_WELL, _NEXT_TO_CRITICAL))
    assert v.outcome is Outcome.PASS, v
    left = v.evidence["left_outside_points"]
    assert {round(float(p["critical_point"][0]), 12) for p in left} == {-1.0, 0.0, 1.0}
    for p in left:
        # the eigenvalue named is f″ at that point, outside [0, 10]
        assert float(p["eigenvalues"][0]) in (pytest.approx(16.0), pytest.approx(-8.0))
    assert "outside the filter" in v.key_fact


def test_claim4_does_not_pass_without_runs_next_to_outside_points() -> None:
    # the same runs from far away only: nothing converges and no start is next to a
    # critical point, so there is no evidence either way
    X0 = np.array([[-3.0], [-2.5], [2.5], [3.0]])
    v = convergence_filters(Case(gradient_descent(0.2), _DOUBLE_WELL, X0))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "no run converged", v


def test_claim4_catches_an_ascent_that_converges_at_a_maximum() -> None:
    # gradient ascent declaring descent's filter [0, 2/α]: from next to the maximum 0
    # (f″ = −8, outside the filter) it converges there
    ascent = replace(gradient_descent(0.05), name="ascent",
                     step=lambda state, f: (state[0] + 0.05 * f.grad(state[0]),))
    v = convergence_filters(Case(ascent, _DOUBLE_WELL, _NEXT_TO_CRITICAL))
    assert v.outcome is Outcome.COUNTEREXAMPLE, v
    assert "-8" in v.key_fact and "outside the filter" in v.key_fact


def test_claim4_cases_start_next_to_known_critical_points() -> None:
    from hypothesis import given

    from dynverify.check import NEAR_CRITICAL_SPREAD, NEAR_CRITICAL_STARTS, cases
    from dynverify.registry import resolve

    seen = []

    @settings(max_examples=15, database=None, deadline=None)
    @given(cases(resolve("gradient_descent"), "convergence_filters"))
    def draw(case: Case) -> None:
        crit = np.asarray(case.function.critical_points())
        D = np.linalg.norm(case.X0[:, None, :] - crit[None, :, :], axis=2).min(axis=1)
        seen.append(int(np.sum(D <= NEAR_CRITICAL_SPREAD)))

    draw()
    assert seen and min(seen) >= NEAR_CRITICAL_STARTS


def test_slow_but_correct_gradient_descent_is_not_called_non_critical() -> None:
    # tiny steps: the engine may stop while ∇f is still > grad_tol; refinement must
    # see ∇f keep shrinking instead of reporting a non-critical fixed point
    f = Wells([[-1.0, 0.0, 1.0]], k=[0.01])
    X0 = np.linspace(0.3, 2.0, 8)[:, None]
    v = convergence_filters(Case(gradient_descent(1e-3), f, X0))
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v


# -- normalized SAM: a true exemption, measured ------------------------------------------

def test_normalized_sam_is_measured_outside_the_hypotheses() -> None:
    case = Case(sam(lr=0.1, rho=0.05), PlantedFunction([1.0, 2.0]), np.full((2, 2), 1e-3),
                x_star=np.zeros(2), spectrum=(1.0, 2.0))
    for claim in (filter_agrees, stable_converges, unstable_no_convergence):
        v = claim(case)
        assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "outside-hypotheses"
        assert "not differentiable" in v.evidence["measured"]
    v = convergence_filters(Case(sam(lr=0.1, rho=0.05), Wells([[-1.0, 0.0, 1.0]]),
                                 np.full((4, 1), 0.5)))
    assert v.reason == "outside-hypotheses" and "not differentiable" in v.evidence["measured"]


def test_sam_at_rho_zero_is_gradient_descent_and_says_so() -> None:
    s = sam(lr=0.25, rho=0.0)
    assert s.outside_hypotheses is None and s.fixed_points_critical
    assert s.region == Region([(0.0, 8.0)])  # 2/α by hand


@pytest.mark.parametrize(("factory", "expected"), [
    (gradient_descent, True), (heavy_ball, True), (nesterov, True)])
def test_builtins_declare_critical_fixed_points(factory, expected) -> None:  # type: ignore[no-untyped-def]
    kw = {"lr": 0.1} if factory is gradient_descent else {"lr": 0.1, "momentum": 0.5}
    assert factory(**kw).fixed_points_critical is expected


@pytest.mark.parametrize("name", ["usam", "two_step_usam", "hessian_usam", "penalty_sam",
                                  "sam"])
def test_sam_family_does_not_declare_critical_fixed_points(name: str) -> None:
    assert not BUILTINS[name](lr=0.1, rho=0.5).fixed_points_critical


def test_usam_non_critical_fixed_point_is_legitimate() -> None:
    # usam: x is fixed when x + ρ∇f(x) is critical. On f = λx²/2 + t³-term that is not
    # x = 0 only; declaring fixed_points_critical=False keeps such limits legitimate
    from dynverify.claims import _noncritical_fixed_points
    from dynverify.optimizers import usam

    opt = usam(lr=0.1, rho=0.5)
    f = Wells([[-1.0, 0.0, 1.0]], k=[8.0])
    assert _noncritical_fixed_points(opt, f, np.array([[-0.3]]), DEFAULT_SETTINGS) == []

# -- key facts first -------------------------------------------------------------------


def test_counterexample_leads_with_the_eigenvalue_outside_the_filter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dynverify.records import render_markdown

    # GD with α = 0.5 converges at a minimum of curvature 2.45 (|1 − 0.5·2.45| < 1),
    # which a filter declared too narrow, [0, 2], excludes
    f = Wells([[-1.0, 0.0, 1.0]], k=[1.225])  # p″(±1) = k·(1·2) = 2.45
    X0 = np.array([[0.9], [1.1], [-0.9], [-1.1]])
    v = convergence_filters(Case(gradient_descent(0.5), f, X0, region=Region([(0.0, 2.0)])))
    assert v.outcome is Outcome.COUNTEREXAMPLE, v
    assert "2.45" in v.key_fact and "outside the filter [0, 2]" in v.key_fact
    assert str(v).startswith("convergence_filters: counterexample: limit x∞ = ")
    md = render_markdown({"claim": "convergence_filters", "verdict": v.to_json(),
                          "optimizer": {"name": "gd", "hyperparameters": {"lr": 0.5}}})
    first_lines = md.splitlines()[:4]
    assert any("2.45" in ln for ln in first_lines), first_lines


def test_cli_not_verified_exit_status(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dynverify.cli import EXIT_NOT_VERIFIED, main

    status = main(["check", "wrong_optimizers:sign_term", "--claim", "filter_agrees",
                   "--profile", "dev", "--reports", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == EXIT_NOT_VERIFIED == 3
    assert "not verified sign_term/filter_agrees" in out and "not-differentiable" in out


def test_settings_threshold_is_used() -> None:
    # the thresholds reach the result (min_decided capped at the profile's example count,
    # so a short profile can still verify when every case decided) and govern its status
    from dynverify.claims import Settings

    hp = st.fixed_dictionaries({"lr": st.floats(0.05, 1.0)})
    res = check_optimizer("gradient_descent", claims=["convergence_filters"], profile="dev",
                          hyperparameters=hp,
                          settings=Settings(min_decided_fraction=1.0, min_decided=10_000))
    (cr,) = res.results
    assert cr.counterexample is None and cr.cases > 0
    assert cr.min_decided_fraction == 1.0
    # capped at the profile's max_examples
    assert cr.min_decided == settings.get_profile("dynverify-dev").max_examples < 10_000
    # verified needs every case decided and at least min_decided of them (a draw that
    # Hypothesis repeats is counted once, so 20 examples can be fewer distinct cases)
    enough = cr.decided == cr.cases and cr.decided >= cr.min_decided
    assert cr.status is (ClaimStatus.VERIFIED if enough else ClaimStatus.NOT_VERIFIED)
    # one undecided case is enough to withhold the verdict under these thresholds
    short = replace(cr, counts=Counter({"pass": cr.cases - 1, "inconclusive": 1}))
    assert short.status is ClaimStatus.NOT_VERIFIED


def test_unstable_claim_does_not_report_a_start_on_the_stable_manifold() -> None:
    # saddle (1, −1) of gradient descent: a start exactly on the stable axis converges,
    # a start moved off it escapes; one lucky point is not a counterexample
    gd = gradient_descent(lr=0.5)
    case = Case(gd, PlantedFunction([1.0, -1.0]), np.array([[1e-3, 0.0]]),
                x_star=np.zeros(2), spectrum=(1.0, -1.0))
    v = unstable_no_convergence(case)
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v



def test_verified_status_cell_says_how_many_cases_were_outside_the_hypotheses() -> None:
    # normalized SAM: its ρ = 0 cases (gradient descent) verify, the others are measured
    # outside the hypotheses; the table must not read as if SAM itself were verified
    from dynverify.summary import row

    res = ClaimResult("sam", "filter_agrees", counts=Counter({"pass": 21, "inconclusive": 19}),
                      reasons=Counter({"outside-hypotheses": 19}))
    assert res.status is ClaimStatus.VERIFIED
    assert row(res)[-1] == "verified (19 outside hyp.)"
    plain = ClaimResult("gd", "filter_agrees", counts=Counter({"pass": 40}))
    assert row(plain)[-1] == "verified"
