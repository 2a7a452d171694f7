"""Claims on hand-built cases whose answers follow from closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynverify import Optimizer, Region
from dynverify.claims import (
    Case,
    Outcome,
    Relation,
    Settings,
    convergence_filters,
    filter_agrees,
    metamorphic,
    stable_converges,
    unstable_no_convergence,
)
from dynverify.functions import Quadratic, ScaledFunction
from dynverify.landscapes import Product
from dynverify.optimizers import gradient_descent, heavy_ball, sam, usam
from dynverify.planted import PlantedFunction
from dynverify.registry import resolve_factory

RNG = np.random.default_rng(20261128)


def ball(center, radius=1e-3, n=8):
    center = np.asarray(center, dtype=float)
    U = RNG.standard_normal((n, center.size))
    U *= radius * RNG.uniform(0.2, 1.0, (n, 1)) / np.linalg.norm(U, axis=1, keepdims=True)
    return center + U


def planted_case(opt, lams, *, terms=(), x_star=None, relations=()):
    lams = tuple(float(v) for v in lams)
    x_star = np.zeros(len(lams)) if x_star is None else np.asarray(x_star, dtype=float)
    f = PlantedFunction(lams, x_star, terms=terms)
    return Case(opt, f, ball(x_star), x_star=x_star, spectrum=lams, relations=tuple(relations))


# -- claim 1 ---------------------------------------------------------------------------

@pytest.mark.parametrize("lam, inside", [(10.0, True), (19.0, True), (25.0, False),
                                         (-1.0, False)])
def test_filter_agrees_on_gradient_descent(lam, inside):
    opt = gradient_descent(lr=0.1)
    v = filter_agrees(planted_case(opt, [1.0, lam]))
    assert v.outcome is Outcome.PASS
    assert v.evidence["predicted_inside"] is inside
    assert math.isclose(v.evidence["spectral_radius"], max(0.9, abs(1 - 0.1 * lam)),
                        rel_tol=1e-7)


def test_filter_agrees_is_inconclusive_in_the_boundary_band():
    v = filter_agrees(planted_case(gradient_descent(lr=0.1), [20.0]))  # r = 1 exactly
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "boundary-band"


def test_filter_declared_too_wide_is_a_counterexample():
    lr = 0.1
    wrong = Optimizer(name="wide", hyperparameters={"lr": lr}, init=lambda X: (X,),
                      step=lambda s, f: (s[0] - lr * f.grad(s[0]),),
                      region=Region([(0.0, 3.0 / lr)]))
    v = filter_agrees(planted_case(wrong, [25.0]))  # inside [0, 30], r = 1.5
    assert v.outcome is Outcome.COUNTEREXAMPLE
    assert "r > 1" in v.reason


# -- claims 2 and 3 --------------------------------------------------------------------

def test_unstable_point_is_never_reached():
    v = unstable_no_convergence(planted_case(gradient_descent(lr=0.1), [1.0, 25.0]))
    assert v.outcome is Outcome.PASS
    assert v.evidence["observed"]["counts"]["converged_target"] == 0


def test_saddle_is_unstable_for_gradient_descent():
    # λ = -1: r = |1 + α| = 1.1
    v = unstable_no_convergence(planted_case(gradient_descent(lr=0.1), [2.0, -1.0],
                                             terms=[("quartic", 0.5, (0.6, 0.8))]))
    assert v.outcome is Outcome.PASS
    assert math.isclose(v.evidence["spectral_radius"], 1.1, rel_tol=1e-6)


def test_stable_point_converges_at_the_predicted_rate():
    opt = heavy_ball(lr=0.1, momentum=0.5)
    lams = [1.0, 12.0]
    v = stable_converges(planted_case(opt, lams, terms=[("cube", 0.7, (1.0, 0.0))]))
    assert v.outcome is Outcome.PASS, v
    # closed form: max root modulus of z² − (1 + β − αλ)z + β over the spectrum
    r = max(np.max(np.abs(np.roots([1, -(1.5 - 0.1 * lam), 0.5]))) for lam in lams)
    assert math.isclose(v.evidence["spectral_radius"], r, rel_tol=1e-6)
    assert abs(v.evidence["observed"]["observed_rate_median"] - r) <= 0.05


@pytest.mark.parametrize("lams", [[-5.0, 3.0], [-5.0, -6.0]])
def test_usam_converging_to_saddles_and_maxima_in_its_negative_band_is_a_pass(lams):
    # usam(0.1, 0.5): filter [-7.403, -2] ∪ [0, 5.403]; multiplier 1 − αλ(1 + ρλ)
    opt = usam(lr=0.1, rho=0.5)
    v = stable_converges(planted_case(opt, lams))
    assert v.outcome is Outcome.PASS
    assert v.evidence["observed"]["counts"]["converged_target"] == 8
    r = max(abs(1 - 0.1 * lam * (1 + 0.5 * lam)) for lam in lams)
    assert math.isclose(v.evidence["spectral_radius"], r, rel_tol=1e-6)


def test_stable_claim_premise_not_met_is_inconclusive():
    v = stable_converges(planted_case(gradient_descent(lr=0.1), [25.0]))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason.startswith("premise-not-met")


def test_init_not_a_fixed_point_is_a_counterexample():
    bad = Optimizer(name="bad_init", hyperparameters={}, init=lambda X: (X, X - 0.1),
                    step=lambda s, f: (s[0] - 0.1 * f.grad(s[0]) + 0.5 * (s[0] - s[1]), s[0]))
    for claim in (filter_agrees, unstable_no_convergence, stable_converges):
        v = claim(planted_case(bad, [1.0]))
        assert v.outcome is Outcome.COUNTEREXAMPLE and v.reason == "init-not-fixed-point"
        assert v.evidence["fixed_point_defect"] > 0.01


def test_raising_optimizer_becomes_a_counterexample_naming_it():
    def step(state, f):
        raise ZeroDivisionError("inside step")

    boom = Optimizer(name="boom", hyperparameters={}, init=lambda X: (X,), step=step)
    v = stable_converges(planted_case(boom, [1.0]))
    assert v.outcome is Outcome.COUNTEREXAMPLE and v.reason == "error"
    assert "boom" in v.evidence["error"] and "inside step" in v.evidence["error"]


def test_sam_is_outside_the_hypotheses_for_every_claim():
    opt = sam(lr=0.1, rho=0.5)
    case = planted_case(opt, [1.0])
    for claim in (filter_agrees, unstable_no_convergence, stable_converges):
        v = claim(case)
        assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "outside-hypotheses"
        assert "C¹" in v.evidence["why"]


# -- claim 4 ---------------------------------------------------------------------------

def test_convergence_filters_on_the_product_manifold():
    # ½(x₁x₂ − 1)²: minima x₁x₂ = 1 with Hessian eigenvalues {0, x₁² + x₂²}
    opt = gradient_descent(lr=0.1)
    X0 = RNG.uniform(-2, 2, (24, 2))
    v = convergence_filters(Case(opt, Product(1.0), X0))
    assert v.outcome is Outcome.PASS
    for lim in v.evidence["limits"]:
        x = np.array(lim["x"])
        assert lim["critical"]
        assert abs(x[0] * x[1] - 1) < 1e-6
        assert max(lim["eigenvalues"]) <= 20.0 + 1e-6  # eigenvalue x₁² + x₂² ≤ 2/α


def test_convergence_to_a_minimum_outside_a_declared_filter_is_a_counterexample():
    lr = 0.1
    narrow = Optimizer(name="narrow", hyperparameters={"lr": lr}, init=lambda X: (X,),
                       step=lambda s, f: (s[0] - lr * f.grad(s[0]),),
                       region=Region([(0.0, 1.0)]))
    X0 = RNG.uniform(-2, 2, (16, 2))
    v = convergence_filters(Case(narrow, ScaledFunction(Product(1.0), 2.0), X0))
    assert v.outcome is Outcome.COUNTEREXAMPLE  # limits have eigenvalue 2(x₁²+x₂²) ≥ 4


def test_noncritical_fixed_points_are_judged_by_their_spectral_radius():
    # x⁺ = x − α(∇f(x) − b) converges to ∇f = b ≠ 0: a non-critical fixed point, ρ < 1
    b = np.array([0.3])
    biased = Optimizer(name="biased", hyperparameters={}, init=lambda X: (X,),
                       step=lambda s, f: (s[0] - 0.1 * (f.grad(s[0]) - b),),
                       region=Region([(0.0, 20.0)]))
    v = convergence_filters(Case(biased, Quadratic.diagonal([2.0]), RNG.uniform(-2, 2, (6, 1))))
    assert v.outcome is Outcome.PASS
    assert v.evidence["n_noncritical"] == 6
    for lim in v.evidence["limits"]:
        assert math.isclose(lim["x"][0], 0.15, rel_tol=1e-6)  # 2x = 0.3
        assert math.isclose(lim["spectral_radius"], 0.8, rel_tol=1e-6)


# -- claim 5 ---------------------------------------------------------------------------

def _relations(c=2.0):
    Q = np.array([[0.6, 0.8], [-0.8, 0.6]])
    return [Relation("rotation", {"Q": Q.tolist()}),
            Relation("scaling", {"c": c, "exponents": {"lr": -1.0, "rho": -1.0}}),
            Relation("reduction", {"overrides": {"rho": 0.0},
                                   "reference": "gradient_descent"})]


def test_metamorphic_relations_hold_for_usam():
    case = planted_case(usam(lr=0.1, rho=0.5), [1.0, 3.0], terms=[("cube", 0.3, (0.6, 0.8))],
                        relations=_relations())
    v = metamorphic(case)
    assert v.outcome is Outcome.PASS
    assert [r["holds"] for r in v.evidence["relations"]] == [True, True, True]


def test_wrong_scaling_exponent_is_caught():
    rel = Relation("scaling", {"c": 2.0, "exponents": {"lr": 1.0}})  # should be -1
    case = planted_case(gradient_descent(lr=0.1), [1.0, 3.0], relations=[rel])
    v = metamorphic(case, resolve=resolve_factory)
    assert v.outcome is Outcome.COUNTEREXAMPLE


def test_rotation_is_not_expected_of_a_preconditioned_method():
    P = np.array([1.0, 3.0])
    pre = Optimizer(name="precond", hyperparameters={}, init=lambda X: (X,),
                    step=lambda s, f: (s[0] - 0.05 * P[: s[0].shape[1]] * f.grad(s[0]),))
    Q = np.array([[0.6, 0.8], [-0.8, 0.6]])
    v = metamorphic(planted_case(pre, [1.0, 2.0], relations=[Relation("rotation",
                                                                       {"Q": Q.tolist()})]))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "no-applicable-relation"


def test_every_verdict_records_the_settings_it_used():
    s = Settings(boundary_band=0.05, tol=1e-9)
    v = stable_converges(planted_case(gradient_descent(lr=0.1), [1.0]), s)
    assert v.settings["boundary_band"] == 0.05 and v.settings["tol"] == 1e-9
    assert Settings.from_json(v.settings) == s


def test_a_violating_limit_must_attract_perturbed_runs_to_count():
    from dynverify.claims import DEFAULT_SETTINGS, _attracts

    opt, f = gradient_descent(lr=0.1), Product(1.0)
    assert _attracts(opt, f, np.array([1.0, 1.0]), DEFAULT_SETTINGS)      # a minimum
    assert not _attracts(opt, f, np.array([0.0, 0.0]), DEFAULT_SETTINGS)  # the saddle (eig ±1)


def _heavy_ball_on_its_rounding_floor():
    """heavy_ball(α = 1.2537, β = 0.6913) at x̄ = −10, λ = 2.6966 (r = 0.994, found by
    ``dynverify check heavy_ball --profile deep --seed 1``): every run ends 2.7e-13 from
    x̄, where each step rounds by ε‖x̄‖ and the slow mode sums that to a floor; steps
    stay below tol but never contract, so the engine's convergence test never fires."""
    import json
    from pathlib import Path

    from dynverify.functions import from_spec

    path = Path(__file__).parent / "data" / "deep_seed1_heavy_ball_rounding_floor.json"
    d = json.loads(path.read_text())
    opt, f = heavy_ball(**d["hp"]), from_spec(d["f"])
    case = Case(opt, f, np.array(d["X0"]), x_star=np.asarray(f.x_star),
                spectrum=tuple(f.spectrum), region=opt.region)
    a, b, lam = d["hp"]["lr"], d["hp"]["momentum"], d["f"]["spectrum"][0]
    r = max(abs(np.roots([1.0, -(1 + b - a * lam), b])))  # heavy ball's rate, by hand
    return case, r


def test_stable_runs_stalled_on_the_rounding_floor_at_x_star_converged():
    case, r = _heavy_ball_on_its_rounding_floor()
    v = stable_converges(case)
    assert v.outcome is Outcome.PASS, v
    assert v.evidence["stalled_at_rounding"] == 8
    assert v.evidence["observed"]["counts"]["undecided"] == 8
    # the rate fitted before the floor is the hand rate (the floor itself gives 1.0)
    assert v.evidence["rate_median_with_stalled"] == pytest.approx(r, abs=1e-4)
    assert v.evidence["spectral_radius"] == pytest.approx(r, rel=1e-6)


def test_runs_undecided_far_above_the_rounding_floor_stay_budget_exhausted():
    from dataclasses import replace

    case, _ = _heavy_ball_on_its_rounding_floor()
    v = stable_converges(case, replace(Settings(), max_steps=1500))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "budget-exhausted", v


@pytest.mark.parametrize("declared, outcome", [(None, Outcome.PASS),
                                               (Region([(3.0, 400.0)]), Outcome.COUNTEREXAMPLE)])
def test_slow_free_runs_get_a_longer_budget_and_are_judged(declared, outcome):
    """GD with α = 5e-3 on ½(x₁² + 2x₂²) contracts at 1 − 5e-3: from |x| ≈ 2 to tol 1e-10
    takes ~4,700 steps, more than free_steps = 2000. The runs continue from where they
    ended (FREE_EXTENSION × 2000 more steps) and converge to 0, whose eigenvalues 1, 2 lie
    in GD's filter [0, 400]; declared [3, 400], that limit is a counterexample."""
    from dataclasses import replace

    from dynverify.claims import FREE_EXTENSION

    assert FREE_EXTENSION * Settings().free_steps > 5000
    opt = gradient_descent(lr=5e-3)
    if declared is not None:
        opt = replace(opt, region=declared)
    X0 = RNG.uniform(-2, 2, (6, 2))
    v = convergence_filters(Case(opt, Quadratic.diagonal([1.0, 2.0]), X0))
    assert v.outcome is outcome, v
    assert v.evidence["extended_runs"] == 6


# -- hyperparameters at the spacing of floats (ε = 5e-324) ---------------------------------

def test_one_ulp_of_the_buffer_changes_rmsprop_linearization_at_subnormal_eps():
    # RMSprop at ε = 5e-324 on λ = 4.668e-161: at v = 0 the x-gain is α/√ε, so by hand
    # ρ = |1 − αλ/√ε| = 1.1; at v = one ulp = ε it is α/√(2ε): |1 − 2.1/√2| = 0.485, and
    # v's own eigenvalue β₂ = 0.99 is the radius. β₂·v rounds back to v below 50 ulps, so
    # runs live at the second linearization, never the first
    from dynverify.linearize import next_float_radius, spectral_radius
    from dynverify.optimizers import rmsprop

    opt, lam = rmsprop(lr=0.1, eps=5e-324), 4.668e-161
    gain = 0.1 * lam / math.sqrt(5e-324)
    f = Quadratic([[lam]])
    assert spectral_radius(opt, f, [0.0]) == pytest.approx(abs(1 - gain), rel=1e-6)
    r_next = next_float_radius(opt, f, [0.0])
    assert r_next == pytest.approx(max(abs(1 - gain / math.sqrt(2)), 0.99), rel=1e-6)
    # at an ordinary ε one ulp of v changes nothing
    opt = rmsprop(lr=0.1, eps=1e-8)
    f = Quadratic([[2.1e-3]])
    assert next_float_radius(opt, f, [0.0]) == pytest.approx(
        spectral_radius(opt, f, [0.0]), rel=1e-12)


def test_a_limit_held_by_the_buffers_is_not_a_fixed_point_of_init():
    # one step from init(x) = (x, v = 0) at x = 1e-100 on λ = 1 (g = 1e-100): RMSprop
    # at ε = 5e-324 moves x by αg/√((1 − β₂)g² + ε) = 0.1·1e-100/1e-101 = 1, gradient
    # descent by αg = 1e-101
    from dynverify.claims import Settings, _fresh_step, _held_by_buffers
    from dynverify.optimizers import rmsprop

    f, x = Quadratic([[1.0]]), np.array([1e-100])
    opt = rmsprop(lr=0.1, eps=5e-324)
    g = 1e-100
    assert _fresh_step(opt, f, x) == pytest.approx(0.1 * g / math.sqrt(0.01 * g * g + 5e-324),
                                                   rel=1e-9)
    assert _held_by_buffers(opt, f, x, Settings())
    assert not _held_by_buffers(gradient_descent(lr=0.1), f, x, Settings())


@pytest.mark.parametrize("eps, ok", [(1e-8, True), (5e-324, False), (4e-324, False),
                                     (2.2250738585072014e-308, True)])
def test_scaling_relation_needs_normal_floats(eps, ok):
    # f → 4f is ε → 16ε for Adam; with ε or 16ε subnormal, v + ε rounds to an absolute
    # spacing (5e-324), so the two set-ups round differently and the relation is not exact
    from dynverify.claims import Relation, _scaled_hyperparameters

    rel = Relation("scaling", {"c": 4.0, "exponents": {"eps": 2.0}})
    got = _scaled_hyperparameters(rel, {"lr": 0.5, "eps": eps})
    assert (got is not None) is ok
    if ok:
        assert got == {"lr": 0.5, "eps": eps * 16.0}


def test_a_witness_on_the_declared_side_blames_the_derivation():
    # by hand, USAM's ρ₁(λ) = |1 − α(λ + ρλ²)|: at α = ρ = 5.04e307, λ = −5e-289 it is
    # 5.04e307·(5.04e307·2.5e-577 − 5e-289) ≈ 6.35e38 > 1, outside the filter as declared
    from dynverify.claims import _witness_doubt

    opt = usam(lr=5.04e307, rho=5.04e307)
    lam = -5e-289
    rho = abs(1.0 - 5.04e307 * (5.04e307 * lam * lam + lam))
    assert rho == pytest.approx(6.3504e38, rel=1e-4)
    wit = {"witness_lambda": lam, "witness_spectral_radius": rho,
           "witness_declared_inside": False}
    assert "derivation is wrong" in _witness_doubt(opt, wit)
    # the same ρ₁ where the declaration says "inside" shows the declaration wrong
    assert _witness_doubt(opt, dict(wit, witness_declared_inside=True)) is None
    # and ρ₁ = 1 to rounding decides nothing
    assert "1 to rounding" in _witness_doubt(opt, dict(wit, witness_spectral_radius=1.0 + 1e-12))



def test_an_eigenvalue_in_a_band_narrower_than_the_float_grid_decides_nothing():
    # USAM at ρ = 2.2e-308: by hand its band [−1/ρ − λ*, −1/ρ] has width λ* ≈ 4, one float
    # at −4.5e307 (ulp 2^971 ≈ 2e292); there 1 + ρλ is 0 up to a rounding of 1e-16, so the
    # float map reads ρ₁ ≈ 0.5·4.5e307·1e-16 ≫ 1. Was a false claim-1 counterexample
    opt = usam(lr=0.5, rho=2.2e-308)
    (a, b), _ = opt.region.intervals
    assert a == b == -1.0 / 2.2e-308
    f = PlantedFunction([a, a, 1.0, 1.0])
    case = Case(opt, f, np.zeros((1, 4)), x_star=np.zeros(4), spectrum=(a, a, 1.0, 1.0),
                region=opt.region)
    v = filter_agrees(case)
    assert v.outcome is Outcome.INCONCLUSIVE and "float grid" in v.reason
