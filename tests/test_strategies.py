"""Strategies: placement guarantees, shrinking, hyperparameters, initial points, validation."""

import math

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from dynverify.optimizers import BUILTINS, gradient_descent
from dynverify.regions import Region
from dynverify.strategies import (
    boundary_spectra,
    declare_hyperparameters,
    hyperparameters,
    initial_points,
    landscapes,
    margin_scale,
    planted_functions,
    register_hyperparameters,
    rotations,
    spectra,
    unit_vectors,
)

FILTERED = sorted(name for name in BUILTINS if name != "sam")  # sam has no filter
TINY = np.finfo(float).tiny
#: no explain phase: it re-runs every example under a tracer and costs seconds
QUIET = settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])


@st.composite
def builtin_regions(draw):
    name = draw(st.sampled_from(FILTERED))
    return BUILTINS[name](**draw(hyperparameters(name))).region


def check_common(lam, region, margin, allow_zero=False):
    lam = np.asarray(lam)
    s = margin_scale(region)
    assert lam.ndim == 1 and 1 <= lam.size <= 4
    assert np.all(np.isfinite(lam))
    nonzero = lam[lam != 0.0]
    assert np.all(np.abs(nonzero) >= TINY)  # no subnormals
    assert np.all(np.abs(nonzero) >= margin * s * (1 - 1e-12))
    assert np.all(np.abs(lam) <= 3.0 * max(region.scale, s) * (1 + 1e-12))
    if not allow_zero:
        assert np.all(lam != 0.0)
    return s


@given(builtin_regions(), st.data())
def test_inside_spectra_are_inside_with_margin(region, data):
    margin = data.draw(st.sampled_from([0.05, 0.01, 0.2]))
    lam = data.draw(spectra(region=region, placement="inside", margin=margin))
    s = check_common(lam, region, margin)
    assert np.all(region.contains(lam))
    assert np.all(region.margin(lam) >= margin * s * (1 - 1e-9))


@given(builtin_regions(), st.data())
def test_outside_spectra_have_one_eigenvalue_outside_by_the_margin(region, data):
    margin = data.draw(st.sampled_from([0.05, 0.01, 0.2]))
    lam = data.draw(spectra(region=region, placement="outside", margin=margin))
    s = check_common(lam, region, margin)
    assert np.any(region.margin(lam) <= -margin * s * (1 - 1e-9))


@given(builtin_regions(), st.data())
def test_mixed_and_one_signed_spectra(region, data):
    lam = data.draw(spectra(region=region, placement="mixed", allow_zero=True))
    check_common(lam, region, 0.05, allow_zero=True)
    lam = data.draw(spectra(region=region, placement="outside", allow_negative=False))
    s = check_common(lam, region, 0.05)
    assert min(lam) > 0 and np.any(region.margin(lam) <= -0.05 * s * (1 - 1e-9))


def test_margin_scale_is_the_region_scale_for_one_interval_and_the_band_width_otherwise():
    assert margin_scale(Region([(0.0, 20.0)])) == 20.0
    usam = BUILTINS["usam"](lr=1.0, rho=0.01).region  # [-102, -100] ∪ [0, 1.96]
    assert margin_scale(usam) == pytest.approx(usam.intervals[1][1])
    assert margin_scale(Region([(-100.0, -100.0), (0.0, 2.0)])) == 2.0


@given(spectra(region=Region([(-100.0, -100.0), (0.0, 2.0)]), placement="inside"))
def test_isolated_points_are_skipped_for_inside(lam):
    assert all(0.1 <= v <= 1.9 for v in lam)


@given(builtin_regions(), st.data())
def test_boundary_spectra_touch_the_boundary(region, data):
    lam = data.draw(boundary_spectra(region=region, band=1e-9))
    s = margin_scale(region)
    dist = np.min(np.abs(np.subtract.outer(lam, region.boundary())))
    assert dist <= 1e-9 * s * (1 + 1e-6) + 1e-15 * region.scale
    assert np.all(np.isfinite(lam))


def test_spectra_shrink_to_one_simple_eigenvalue():
    region = gradient_descent(lr=0.1).region
    assert find(spectra(region=region, placement="inside"), lambda _: True,
                settings=QUIET) == (1.0,)
    lam = find(spectra(region=region, placement="outside"), lambda _: True, settings=QUIET)
    assert len(lam) == 1 and not region.contains(lam)[0]
    assert find(boundary_spectra(region=region), lambda _: True, settings=QUIET) == (0.0,)


@given(st.integers(1, 5).flatmap(rotations))
def test_rotations_are_orthogonal_with_determinant_one(Q):
    d = Q.shape[0]
    np.testing.assert_allclose(Q.T @ Q, np.eye(d), atol=1e-13)
    assert np.linalg.det(Q) == pytest.approx(1.0)


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_rotations_and_unit_vectors_shrink_to_identity_and_e1(dim):
    assert np.array_equal(find(rotations(dim), lambda _: True, settings=QUIET), np.eye(dim))
    assert np.array_equal(find(unit_vectors(dim), lambda _: True, settings=QUIET),
                          np.eye(dim)[0])


@given(st.integers(1, 5).flatmap(unit_vectors))
def test_unit_vectors_have_norm_one(a):
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-14)


@given(st.sampled_from(sorted(BUILTINS)), st.data())
def test_builtin_hyperparameters_build_the_optimizer(name, data):
    hp = data.draw(hyperparameters(name))
    opt = BUILTINS[name](**hp)
    assert 1e-3 <= hp["lr"] <= 2.0
    assert 0.0 <= hp.get("momentum", 0.0) <= 0.95
    assert hp.get("rho", 0.0) == 0.0 or 0.01 <= hp["rho"] <= 2.0
    # normalized SAM has no filter (not C¹ at a critical point), except at ρ = 0, where
    # it is gradient descent with the filter [0, 2/α] (found by the deep profile)
    assert (opt.region is None) == (name == "sam" and hp["rho"] > 0)
    if name == "sam" and hp["rho"] == 0:
        assert opt.region.intervals == ((0.0, 2.0 / hp["lr"]),)
    assert data.draw(hyperparameters(BUILTINS[name])).keys() == hp.keys()


def test_hyperparameters_shrink_to_plain_values():
    assert find(hyperparameters("usam"), lambda _: True, settings=QUIET) == {
        "lr": 1.0, "rho": 0.0}
    assert find(hyperparameters("heavy_ball"), lambda hp: hp["momentum"] > 0.5,
                settings=QUIET)["lr"] == 1.0


def test_plugins_declare_their_hyperparameters():
    @declare_hyperparameters(st.fixed_dictionaries({"lr": st.just(0.5)}))
    def my_gd(lr):
        return gradient_descent(lr)

    assert find(hyperparameters(my_gd), lambda _: True, settings=QUIET) == {"lr": 0.5}
    register_hyperparameters("my_registered_gd", st.fixed_dictionaries({"lr": st.just(0.25)}))
    assert find(hyperparameters("my_registered_gd"), lambda _: True,
                settings=QUIET) == {"lr": 0.25}
    with pytest.raises(InvalidArgument, match="built-in"):
        register_hyperparameters("usam", st.just({}))
    with pytest.raises(InvalidArgument, match="strategy"):
        register_hyperparameters("my_other_gd", {"lr": 0.1})


@given(st.integers(1, 4).flatmap(lambda d: st.tuples(
    st.just(np.arange(d, dtype=float)), st.floats(1e-3, 10.0), st.integers(1, 20))),
    st.data())
def test_initial_points_lie_in_the_ball(args, data):
    center, radius, n = args
    X = data.draw(initial_points(center, radius, n))
    assert X.shape == (n, center.size)
    assert np.all(np.linalg.norm(X - center, axis=1) <= radius * (1 + 1e-12))


def test_initial_points_reproduce_from_the_example():
    strat = initial_points(np.zeros(3), 1.0, 5)
    a = find(strat, lambda X: X[0, 0] > 0.5, settings=QUIET)
    b = find(strat, lambda X: X[0, 0] > 0.5, settings=QUIET)
    np.testing.assert_array_equal(a, b)
    assert a[0, 0] > 0.5


R = Region([(0.0, 2.0)])


@pytest.mark.parametrize(("make", "names"), [
    (lambda: spectra(region=None), "region"),
    (lambda: spectra(region=Region([]), placement="inside"), "region"),
    (lambda: spectra(region=Region([(0.0, 0.0), (5.0, 5.0)]), placement="inside"),
     "placement"),
    (lambda: spectra(region=R, placement="sideways"), "placement"),
    (lambda: spectra(region=R, min_dim=0), "min_dim"),
    (lambda: spectra(region=R, min_dim=3, max_dim=2), "min_dim"),
    (lambda: spectra(region=R, margin=0.0), "margin"),
    (lambda: spectra(region=R, margin=0.6), "margin"),
    (lambda: spectra(region=R, margin=float("nan")), "margin"),
    (lambda: spectra(region=R, window=1.0), "window"),
    (lambda: spectra(region=R, placement="inside", allow_zero=True), "allow_zero"),
    (lambda: spectra(region=Region([(-2.0, -1.0)]), placement="inside",
                     allow_negative=False), "allow_negative"),
    (lambda: spectra(region=Region([(-math.inf, math.inf)]), placement="outside"),
     "placement"),
    (lambda: boundary_spectra(region=Region([(-math.inf, math.inf)])), "boundary"),
    (lambda: boundary_spectra(region=Region([(-3.0, -1.0)]), allow_negative=False),
     "allow_negative"),
    (lambda: boundary_spectra(region=R, band=-1.0), "band"),
    (lambda: rotations(0), "dim"),
    (lambda: rotations(2.5), "dim"),
    (lambda: unit_vectors(True), "dim"),
    (lambda: planted_functions(spectra=(1.0,)), "spectra"),
    (lambda: planted_functions(spectra=st.just(())), "spectra"),
    (lambda: planted_functions(spectra=st.just((1.0, math.inf))), "spectra"),
    (lambda: planted_functions(spectra=st.just((1.0,)), smoothness="C1"), "smoothness"),
    (lambda: planted_functions(spectra=st.just((1.0,)), max_terms=-1), "max_terms"),
    (lambda: planted_functions(spectra=st.just((1.0,)), max_mu=-1.0), "max_mu"),
    (lambda: landscapes(kinds=["banana"]), "kinds"),
    (lambda: landscapes(kinds=[]), "kinds"),
    (lambda: landscapes(max_dim=0), "max_dim"),
    (lambda: hyperparameters("no_such_optimizer"), "name_or_factory"),
    (lambda: hyperparameters(lambda lr: None), "name_or_factory"),
    (lambda: hyperparameters(3), "name_or_factory"),
    (lambda: initial_points(np.zeros(2), 0.0, 3), "radius"),
    (lambda: initial_points(np.zeros(2), math.inf, 3), "radius"),
    (lambda: initial_points(np.zeros(2), 1.0, 0), "n"),
    (lambda: initial_points(np.zeros(0), 1.0, 1), "center"),
    (lambda: initial_points([[0.0, 1.0]], 1.0, 1), "center"),
])
def test_impossible_arguments_raise_invalid_argument_when_drawn(make, names):
    strat = make()  # building the strategy never raises: validation happens at draw time
    with pytest.raises(InvalidArgument, match=names):
        find(strat, lambda _: True, settings=settings(database=None, max_examples=5))
