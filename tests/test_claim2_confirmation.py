"""Claim 2 counts a run as converged to an unstable x̄ only once that is confirmed."""

from __future__ import annotations

import math

import numpy as np

from dynverify import Optimizer, Region
from dynverify.claims import Case, Outcome, Settings, unstable_no_convergence
from dynverify.linearize import lifted_state
from dynverify.optimizers import rmsprop
from dynverify.planted import PlantedFunction

# The case `dynverify check rmsprop --profile ci --claim unstable_no_convergence` reported
# as a counterexample: f(x) = ½·1.003·x² + x⁴, RMSprop(α = 2, β₂ = 0.75, ε = 1).
LAM = 1.0030000000000001
RMS_X0 = np.array([[0.0006795312393317786], [-0.0011688405297347103], [0.0010198169426519153],
                   [3.4231252126851187e-06], [-0.0010717553457344616], [4.198196913183045e-05],
                   [0.0009120693080374301], [0.00021956952575319876]])


def rms_case() -> Case:
    f = PlantedFunction([LAM], x_star=[0.0], mu=1.0)
    return Case(rmsprop(lr=2.0, beta2=0.75, eps=1.0), f, RMS_X0, x_star=np.zeros(1),
                spectrum=(LAM,))


def test_rmsprop_transients_near_an_unstable_point_are_not_convergence():
    """x̄ = 0 repels at r = |1 − αλ/√ε| = 1.006, and v grows like g² and shrinks the
    step, so runs burst out and are thrown back to ~1e-11 of x̄, where v's decay at
    β₂ dominates ‖Δz‖ and the engine's test judges two runs converged. Continued for
    their escape time they leave x̄: no counterexample."""
    v = unstable_no_convergence(rms_case())
    assert math.isclose(v.evidence["spectral_radius"], abs(1 - 2.0 * LAM / 1.0), rel_tol=1e-6)
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v
    # decided by continuing the runs, not by the luck of the perturbed restarts
    assert v.reason != "convergence-not-robust"
    kinds = [c["kind"] for c in v.evidence["confirmation"]]
    assert kinds and set(kinds) == {"transient"}
    # the suspected runs did come within 1e-10 of x̄, and later were farther than target_tol
    for c in v.evidence["confirmation"]:
        assert c["distance"] < 1e-10 and c["max_distance_after"] > 1e-6


def _unexcited_buffer(lr: float) -> Optimizer:
    """Gradient descent plus a buffer m⁺ = 1.5·m (unstable) that init sets to 0 and
    nothing excites: r = 1.5 at every critical point, yet every run converges."""
    def step(state, f):  # type: ignore[no-untyped-def]
        x, m = state
        m_new = 1.5 * m
        return (x - lr * (f.grad(x) + m_new), m_new)

    return Optimizer(name="unexcited_buffer", hyperparameters={"lr": lr},
                     init=lambda X: (X, np.zeros_like(X)), step=step,
                     region=Region([(0.0, 2.0 / lr)]))


def test_confirmation_keeps_a_real_convergence_to_an_unstable_point():
    opt = _unexcited_buffer(0.1)
    lams = (1.0, 4.0)
    f = PlantedFunction(lams, x_star=[0.5, -0.25], terms=[("quartic", 0.5, (0.6, 0.8))])
    rng = np.random.default_rng(7)
    U = rng.standard_normal((8, 2))
    X0 = np.array([0.5, -0.25]) + 1e-3 * U / np.linalg.norm(U, axis=1, keepdims=True)
    case = Case(opt, f, X0, x_star=np.array([0.5, -0.25]), spectrum=lams)
    # closed form: Jac = [[I − αH, −α·1.5I], [0, 1.5I]], so r = max(1.5, |1 − αλ|) = 1.5
    z = lifted_state(opt, X0)
    assert np.all(z[1] == 0)
    v = unstable_no_convergence(case)
    assert math.isclose(v.evidence["spectral_radius"], 1.5, rel_tol=1e-6)
    assert v.outcome is Outcome.COUNTEREXAMPLE, v
    assert v.reason.startswith("8 of 8 runs converged")
    assert all(c["kind"] == "stays" for c in v.evidence["confirmation"])


def test_convergence_unconfirmable_within_max_steps_is_inconclusive():
    """The escape time from ~1e-11 at r = 1.5 is 3·log(1e-6/1e-11)/log 1.5 + 50 ≈ 136
    steps > max_steps = 100: neither a counterexample nor a pass."""
    opt = _unexcited_buffer(0.1)
    lams = (8.0, 9.0)  # |1 − αλ| ≤ 0.2: the runs converge within ~20 steps
    f = PlantedFunction(lams)
    rng = np.random.default_rng(3)
    U = rng.standard_normal((8, 2))
    X0 = 1e-3 * U / np.linalg.norm(U, axis=1, keepdims=True)
    case = Case(opt, f, X0, x_star=np.zeros(2), spectrum=lams)
    v = unstable_no_convergence(case, Settings(max_steps=100))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason.startswith("budget-exhausted"), v
    assert all(c["horizon_capped"] for c in v.evidence["confirmation"])
    assert unstable_no_convergence(case).outcome is Outcome.COUNTEREXAMPLE


def test_runs_absorbed_by_the_rounding_of_a_nonzero_x_bar_are_no_counterexample() -> None:
    # deep false alarm (seed 1): Adam with β₁ = 0 (RMSprop with ε = 1) at λ = 2.006 > 2√ε/α,
    # r = 1.006. Its v first grows and damps the oscillation below ulp(1)/2, then decays;
    # at x̄ = 1 the iterate lands bitwise on x̄ (∇f = 0 holds it), at x̄ = 0 the same run
    # shrinks to ~1e-19 and grows back (checked below), so no run truly converges
    from dynverify.optimizers import adam

    opt = adam(1.0, 0.0, 0.875, 1.0)
    offsets = np.array([[8.49414049164e-05], [-1.461050662168e-04], [1.274771178315e-04],
                        [4.278906516e-07]])
    for x_bar in (1.0, 0.0):
        f = PlantedFunction([2.006], x_star=[x_bar], mu=1.0)
        case = Case(opt, f, x_bar + offsets, x_star=np.array([x_bar]), spectrum=(2.006,),
                    region=opt.region)
        v = unstable_no_convergence(case)
        assert v.outcome is not Outcome.COUNTEREXAMPLE, (x_bar, v)
    # in exact-enough arithmetic (x̄ = 0) the first run comes back out
    f0 = PlantedFunction([2.006], mu=1.0)
    z = opt.init(offsets[:1])
    smallest = np.inf
    for _ in range(20000):
        z = opt.step(z, f0)
        smallest = min(smallest, float(abs(z[0][0, 0])))
    assert smallest < 1e-16 < abs(float(z[0][0, 0]))


def test_rounding_absorption_in_one_coordinate_is_no_counterexample() -> None:
    # deep false alarm (seed 3): RMSprop(α = 1, β₂ = 0.875, ε = 1), λ = (2.0775, 0.5) at
    # x̄ = (1, 0), r = 1.0775. The unstable coordinate lands bitwise on x̄₁ = 1 while the
    # stable one keeps shrinking (final distance ~1e-77, not 0)
    opt = rmsprop(1.0, 0.875, 1.0)
    lams = (2.077459666924148, 0.5)
    f = PlantedFunction(lams, x_star=[1.0, 0.0], mu=1.0)
    X0 = np.array([[1.0064051659225153, -0.0067299139474467085],
                   [1.0072616352710584, 0.001189443237414241],
                   [0.9954624608980941, 0.003062993299439816]])
    v = unstable_no_convergence(Case(opt, f, X0, x_star=np.array([1.0, 0.0]), spectrum=lams,
                                     region=opt.region))
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v


def test_a_float_periodic_orbit_a_few_ulps_from_x_bar_is_no_counterexample() -> None:
    # deep false alarm (seed 2): RMSprop(α = 2, β₂ = 0.8125, ε = 1) at λ = 1.003, x̄ = 1,
    # r = 1.006. Two runs settle ±30 ulps from x̄: growing by 0.6 % a step, a 30-ulp
    # oscillation gains less than half an ulp and rounding holds it there for ever
    opt = rmsprop(2.0, 0.8125, 1.0)
    f = PlantedFunction([1.003], x_star=[1.0], mu=1.0)
    X0 = np.array([[1.0006795312393317], [0.9988311594702652], [1.0010198169426519],
                   [1.0000034231252126], [0.9989282446542656], [1.0000419819691317],
                   [1.0009120693080373], [1.0002195695257532]])
    v = unstable_no_convergence(Case(opt, f, X0, x_star=np.array([1.0]), spectrum=(1.003,),
                                     region=opt.region))
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v


def test_rounding_absorption_along_a_rotated_unstable_mode_is_no_counterexample() -> None:
    # deep false alarm (seed 777): the same RMSprop at r = 1.006, but with the unstable
    # eigenvector rotated by 1 rad and x̄ = (0, 1, 0); the final distance (1e-12) is the
    # slow stable mode, while the unstable component sits within rounding of x̄₂ = 1
    opt = rmsprop(1.0, 0.875, 1.0)
    Q = np.array([[math.cos(1.0), -math.sin(1.0), 0.0], [math.sin(1.0), math.cos(1.0), 0.0],
                  [0.0, 0.0, 1.0]])
    lams = (2.006, 0.125, 1.0)
    f = PlantedFunction(lams, x_star=[0.0, 1.0, 0.0], rotation=Q, mu=1.0)
    X0 = np.array([
        [0.00020075531033683557, 0.9997890662038417, 0.0010225723522825786],
        [0.0001455234724493215, 0.9992568886538665, 0.0005016254456052006],
        [0.0009260186826729784, 1.0006725572358197, -0.0004997484305665904],
        [-0.0011136711947927142, 0.9994514690707722, 3.637013741957353e-05],
        [-0.0009681673800957996, 0.9999088928394553, -0.000518810482335251],
        [-0.0008212968710299544, 0.9993895696745464, -0.00035475612433586405],
        [0.00040271253800947345, 1.0010199272595643, -0.00012574995235372207],
        [0.0007992829728393297, 0.9996109088990668, 0.00020560814091421712],
    ])
    v = unstable_no_convergence(Case(opt, f, X0, x_star=np.array([0.0, 1.0, 0.0]),
                                     spectrum=lams, region=opt.region))
    assert v.outcome is not Outcome.COUNTEREXAMPLE, v


def _adam_cycle_case():
    """adam(α = 0.385, β₁ = 0.0099, β₂ = 1/3, ε = 6.1e-5) at an x̄ with r = 1.1156 (found
    by ``dynverify check adam --profile deep --seed 3 --claim unstable_no_convergence``):
    runs leave the ball and circle x̄ on a cycle its adaptive step makes, passing back
    within the ball radius. They never converge, and never escape."""
    import json
    from pathlib import Path

    from dynverify.functions import from_spec
    from dynverify.optimizers import adam

    d = json.loads((Path(__file__).parent / "data" / "deep_seed3_adam_unstable_cycle.json")
                   .read_text())
    opt, f = adam(**d["hp"]), from_spec(d["f"])
    return Case(opt, f, np.array(d["X0"]), x_star=np.asarray(f.x_star),
                spectrum=tuple(f.spectrum), region=opt.region)


def test_runs_circling_an_unstable_x_star_after_leaving_the_ball_did_not_converge():
    v = unstable_no_convergence(_adam_cycle_case())
    assert v.outcome is Outcome.PASS, v
    assert v.evidence["spectral_radius"] > 1.1
    assert v.evidence["observed"]["counts"]["undecided"] >= 1
    assert v.evidence["undecided_after_leaving_the_ball"] >= 1


def test_runs_undecided_without_leaving_the_ball_stay_budget_exhausted():
    from dataclasses import replace

    # 5 steps: r⁵ ≈ 1.7, the runs are still near the ball, never 10 ball radii out
    v = unstable_no_convergence(_adam_cycle_case(), replace(Settings(), max_steps=5))
    assert v.outcome is Outcome.INCONCLUSIVE and v.reason == "budget-exhausted", v
