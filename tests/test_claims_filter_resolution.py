"""Claim 1's declared-vs-derived comparison at floating-point resolution (issue 9 §3)."""

from __future__ import annotations

import numpy as np
import pytest

from dynverify import Optimizer, Region
from dynverify.claims import Case, Outcome, filter_agrees
from dynverify.optimizers import two_step_usam, usam
from dynverify.planted import PlantedFunction


def case(opt, lams):
    lams = tuple(float(v) for v in lams)
    x = np.zeros(len(lams))
    X0 = x + 1e-4 * np.eye(len(lams))[:1].repeat(4, axis=0) * np.array([[1], [-1], [.5], [-.5]])
    return Case(opt, PlantedFunction(lams, x), X0, x_star=x, spectrum=lams)


@pytest.mark.parametrize("lr, rho", [
    (0.5, 1.1754943508222875e-38),  # the false alarm: {−8.5e37} ∪ [0, 4] declared
    (0.01, 1.1754943508222875e-38),
    (0.5, 2.2e-308),                # raised LinAlgError in the factory
    (0.5, 5e-324),
    (0.5, 1e-20),                   # a band of width 4 at −1e20: narrower than the ulp
])
def test_unresolvable_bands_are_not_disagreements(lr, rho):
    opt = usam(lr=lr, rho=rho)
    v = filter_agrees(case(opt, [0.5 / lr]))  # r = 1/2
    assert v.outcome is Outcome.PASS, v.evidence
    declared_far = [iv for iv in opt.region.intervals if iv[1] < -1e12]
    if declared_far:  # the report says why the far band was left out
        assert v.evidence["comparison_ignored"], v.evidence
        assert any("beyond the range" in s or "float grid" in s or "rounding" in s
                   for s in v.evidence["comparison_ignored"])


def test_representable_band_is_still_compared():
    # same map, negative band declared away: at ρ = 1e-9 the band (width 4 at −1e9) is
    # well inside the certified range, so the wrong declaration is caught
    lr, rho = 0.5, 1e-9
    good = usam(lr=lr, rho=rho)
    wrong = Optimizer(name="usam_no_band", hyperparameters={"lr": lr, "rho": rho},
                      init=good.init, step=good.step,
                      region=Region([good.region.intervals[-1]]))
    v = filter_agrees(case(wrong, [1.0]))
    assert v.outcome is Outcome.COUNTEREXAMPLE
    assert "derived" in v.reason and "witness_lambda" in v.evidence
    assert v.evidence["witness_lambda"] < -1e8


def test_two_step_isolated_point_is_derived_and_compared():
    opt = two_step_usam(lr=0.5, rho=3.2e-8)  # issue 9: the derived filter dropped it
    v = filter_agrees(case(opt, [1.0]))
    assert v.outcome is Outcome.PASS, v.evidence
    assert "{-3.1250000e+07}" in v.evidence["derived_region"] or \
        "-3.125" in v.evidence["derived_region"]
