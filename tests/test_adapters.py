"""torch.optim and optax optimizers through dynverify.adapters.

Filters are compared with closed forms computed here by hand (Jury's conditions on the
per-eigenvalue 2×2 block); trajectories with the frameworks themselves, one point at a
time; claims run with a handful of examples each (the deep profile covers more).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from dynverify import derive_region  # noqa: E402
from dynverify.adapters import AdapterError, AdapterWarning, torch_optimizer  # noqa: E402
from dynverify.adapters.torch import torch_function  # noqa: E402
from dynverify.check import check_optimizer, replay, run_claim  # noqa: E402
from dynverify.claims import CLAIMS, Case, Outcome  # noqa: E402
from dynverify.functions import Quadratic  # noqa: E402
from dynverify.optimizers import usam_filter  # noqa: E402
from dynverify.registry import resolve  # noqa: E402

FEW = hsettings(max_examples=4, deadline=None, derandomize=True, database=None)


def close(region, lo, hi):
    """One interval [lo, hi], to 1e-9 relative."""
    assert len(region.intervals) == 1, region
    a, b = region.intervals[0]
    assert a == pytest.approx(lo, rel=1e-9, abs=1e-12), region
    assert b == pytest.approx(hi, rel=1e-9, abs=1e-12), region


# -- closed-form filters, derived from the framework's own step -------------------------
#
# torch SGD, per eigenvalue λ, with κ = λ + wd (weight decay adds wd·x to the gradient):
#   plain:     x⁺ = (1 − ακ)x                       → 0 ≤ κ ≤ 2/α
#   momentum:  b⁺ = μb + (1 − d)κx, x⁺ = x − αb⁺   → det μ, trace 1 + μ − α(1 − d)κ,
#              Jury |trace| ≤ 1 + det               → 0 ≤ κ ≤ 2(1 + μ)/(α(1 − d))
#   Nesterov:  b⁺ = μb + κx, x⁺ = x − α(κx + μb⁺)  → det μ(1 − ακ), trace
#              1 + μ − ακ(1 + μ); Jury              → 0 ≤ κ ≤ 2(1 + μ)/((1 + 2μ)α)

SGD_CASES = [
    ({"lr": 0.1}, 0.0, 20.0),
    ({"lr": 0.3, "weight_decay": 0.25}, -0.25, 2 / 0.3 - 0.25),
    ({"lr": 0.1, "momentum": 0.9}, 0.0, 2 * 1.9 / 0.1),
    ({"lr": 0.2, "momentum": 0.5, "dampening": 0.3}, 0.0, 2 * 1.5 / (0.2 * 0.7)),
    ({"lr": 0.1, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.2}, -0.2,
     2 * 1.5 / (0.1 * 0.7) - 0.2),
    ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, 0.0, 2 * 1.9 / (2.8 * 0.1)),
    ({"lr": 0.5, "momentum": 0.6, "nesterov": True, "weight_decay": 1.0}, -1.0,
     2 * 1.6 / (2.2 * 0.5) - 1.0),
]


@pytest.mark.parametrize("hp, lo, hi", SGD_CASES, ids=[str(c[0]) for c in SGD_CASES])
def test_torch_sgd_derived_filter_equals_the_closed_form(hp, lo, hi):
    opt = torch_optimizer(torch.optim.SGD, **hp)
    assert opt.region is None and opt.outside_hypotheses is None
    close(derive_region(opt), lo, hi)


def test_the_torch_usam_optimizer_has_the_builtin_usam_filter():
    from framework_optimizers import USAM

    for lr, rho in ((0.1, 0.5), (0.5, 0.05)):
        derived = derive_region(torch_optimizer(USAM, lr=lr, rho=rho))
        assert derived.isclose(usam_filter(lr, rho)), (derived, usam_filter(lr, rho))


# -- claims on registered adapters ----------------------------------------------------------

VERIFIED = ["torch_sgd", "torch_sgd_momentum", "torch_nesterov", "torch_usam",
            "optax_sgd",  # momentum and nesterov=True/False drawn
            "optax_adam"]


@pytest.mark.parametrize("name", VERIFIED)
def test_claims_hold_on_adapters(name):
    if name.startswith("optax"):
        pytest.importorskip("optax")
    reg = resolve(f"framework_optimizers:{name}")
    for claim in CLAIMS:
        res = run_claim(reg, claim, hypothesis_settings=FEW)
        # FEW draws 4 cases: too few to be "verified", so the check is that none fails
        assert res.counterexample is None and res.error is None, (
            claim, res.error, res.counterexample and res.counterexample["verdict"])
        # a registration without metamorphic relations (optax_adam: not rotation-invariant,
        # no exact scaling) has none to check
        assert res.counts["pass"] >= 1 or claim == "convergence_filters" or (
            res.reasons == {"no-relations": res.counts["inconclusive"]}), (claim, res.counts)


def test_dynverify_check_cli_passes_on_a_torch_adapter(capsys, tmp_path):
    from dynverify.cli import main

    status = main(["check", "framework_optimizers:torch_nesterov", "--profile", "dev",
                   "--claim", "filter_agrees", "--reports", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "torch_nesterov" in out


@hsettings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(lr=st.floats(0.05, 1.0), mom=st.floats(0.0, 0.9), wd=st.floats(0.05, 1.0),
       data=st.data())
def test_weight_decay_claims_hold_at_a_planted_point_at_zero(lr, mom, wd, data):
    """Weight decay moves the fixed points to the critical points of f + wd‖x‖²/2, so the
    planted point sits at 0; there the filter is the momentum filter shifted by −wd."""
    from framework_optimizers import torch_sgd_weight_decay

    from dynverify import strategies as S

    opt = torch_sgd_weight_decay(lr, mom, wd)
    hand = (-wd, 2 * (1 + mom) / lr - wd)
    close(derive_region(opt), *hand)
    region = derive_region(opt)
    placement = data.draw(st.sampled_from(["inside", "outside"]))
    f = data.draw(S.planted_functions(spectra=S.spectra(region=region, placement=placement),
                                      max_offset=0.0))
    X0 = data.draw(S.initial_points(np.zeros(f.dim), min(f.quadratic_radius(), 1e-2), 8))
    case = Case(opt, f, X0, x_star=np.zeros(f.dim), spectrum=tuple(f.spectrum), region=region)
    for claim in ("filter_agrees", "unstable_no_convergence", "stable_converges"):
        v = CLAIMS[claim](case)
        assert v.outcome is not Outcome.COUNTEREXAMPLE, (claim, v)


# -- outside the hypotheses -------------------------------------------------------------------

@pytest.mark.parametrize("cls, buffer", [("Adam", "exp_avg_sq"), ("RMSprop", "square_avg"),
                                         ("Adagrad", "sum"), ("AdamW", "exp_avg_sq")])
def test_eps_outside_the_root_is_reported_outside_the_hypotheses(cls, buffer):
    opt = torch_optimizer(getattr(torch.optim, cls), lr=0.01)
    assert opt.outside_hypotheses is not None
    assert "not C¹" in opt.outside_hypotheses and repr(buffer) in opt.outside_hypotheses
    f = Quadratic.diagonal([1.0, -0.5])
    case = Case(opt, f, np.full((4, 2), 1e-3), x_star=np.zeros(2), spectrum=(1.0, -0.5))
    v = CLAIMS["stable_converges"](case)
    assert (v.outcome, v.reason) == (Outcome.INCONCLUSIVE, "outside-hypotheses")


def test_optax_adam_is_c1_only_with_eps_root():
    optax = pytest.importorskip("optax")
    from dynverify.adapters import optax_optimizer

    outside = optax_optimizer(optax.adam, learning_rate=0.01)
    assert "not C¹" in outside.outside_hypotheses and ".nu" in outside.outside_hypotheses
    inside = optax_optimizer(optax.adam, learning_rate=0.01, b1=0.5, eps_root=1e-6)
    assert inside.outside_hypotheses is None
    # ε inside the root: at ν = 0 the preconditioner is 1/(√eps_root + eps); the (x, μ)
    # block is heavy-ball-like with κ = (1 − b1)λ, det b1: 0 ≤ aκ ≤ 2(1 + b1)
    a = 0.01 / (math.sqrt(1e-6) + 1e-8)
    close(derive_region(inside), 0.0, 2 * 1.5 / (a * 0.5))


def test_fresh_form_is_outside_the_hypotheses_and_says_why():
    opt = torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9, form="fresh")
    assert "counter" in opt.outside_hypotheses


# -- a wrong optimizer is caught, shrunk and replayed -----------------------------------------

def test_a_momentum_sign_error_gives_a_counterexample_that_replays(tmp_path):
    res = check_optimizer("framework_optimizers:torch_sign_error", claims=["filter_agrees"],
                          profile="dev", reports=tmp_path)
    assert not res.ok
    (cr,) = res.results
    assert cr.counterexample_path is not None
    rec = cr.counterexample
    assert rec["optimizer"]["factory"] == "framework_optimizers:torch_sign_error"
    assert replay(cr.counterexample_path).reproduces


# -- exactness: batched adapter vs the framework one point at a time ----------------------------

SEPARABLE = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01}), ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}), ("Adagrad", {"lr": 0.05}),
    ("Adadelta", {"lr": 0.5}), ("Adamax", {"lr": 0.01}), ("NAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01}), ("ASGD", {"lr": 0.01}), ("Rprop", {"lr": 0.01}),
]


def _one_point_at_a_time(cls, hp, X0, f, steps):
    out = []
    for x0 in X0:
        p = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        opt = cls([p], **hp)
        for _ in range(steps):
            p.grad = torch.from_numpy(f.grad(p.detach().numpy()[None, :])[0])
            opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


@pytest.mark.parametrize("cls, hp", SEPARABLE, ids=[f"{c}{h}" for c, h in SEPARABLE])
def test_batched_adapter_equals_the_framework_bitwise(cls, hp):
    from dynverify.adapters._core import RandomProblem

    cls = getattr(torch.optim, cls)
    f = RandomProblem(3, seed=5, c=0.1)
    X0 = np.random.default_rng(5).standard_normal((5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdapterWarning)  # no fallback: really batched
        opt = torch_optimizer(cls, form="fresh", **hp)
    state = opt.init(X0)
    for _ in range(200):
        state = opt.step(state, f)
    ref = _one_point_at_a_time(cls, hp, X0, f, 200)
    np.testing.assert_array_equal(opt.position(state), ref)


def test_dampening_first_step_sets_the_buffer_to_the_gradient():
    f = Quadratic.diagonal([2.0, 3.0])
    X0 = np.array([[1.0, 1.0]])
    g = f.grad(X0)
    fresh = torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9, dampening=0.5,
                            form="fresh")
    x1, buf1, _ = fresh.step(fresh.init(X0), f)
    np.testing.assert_array_equal(buf1, g)  # torch's first step: buf = g, not (1 − d)g
    np.testing.assert_array_equal(x1, X0 - 0.1 * g)
    steady = torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9, dampening=0.5)
    x1, buf1 = steady.step(steady.init(X0), f)
    np.testing.assert_allclose(buf1, 0.5 * g, rtol=1e-15)  # asymptotic form: μ·0 + (1 − d)g


def test_asymptotic_adam_has_no_bias_correction():
    f = Quadratic.diagonal([2.0, -1.0])
    X = np.array([[0.3, -0.2], [1.0, 2.0]])
    opt = torch_optimizer(torch.optim.Adam, lr=0.01, betas=(0.8, 0.9), eps=1e-3)
    x, m, v = opt.init(X)
    assert not m.any() and not v.any()
    x1, m1, v1 = opt.step((x, m, v), f)
    g = f.grad(X)
    np.testing.assert_allclose(m1, 0.2 * g, rtol=1e-15)
    np.testing.assert_allclose(v1, 0.1 * g * g, rtol=1e-15)
    np.testing.assert_allclose(x1, X - 0.01 * m1 / (np.sqrt(v1) + 1e-3), rtol=1e-14)


# -- separability ---------------------------------------------------------------------------------

class ClippedSGD(torch.optim.Optimizer):
    """SGD after clipping the gradient's global norm (over the whole parameter) to 1."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in self.param_groups:
            for p in g["params"]:
                p.sub_(p.grad, alpha=g["lr"])


@pytest.mark.parametrize("cls", [ClippedSGD, torch.optim.Adafactor],
                         ids=["global-norm-clip", "Adafactor"])
def test_coupled_rows_are_refused_or_stepped_one_row_at_a_time(cls):
    from dynverify.adapters._core import RandomProblem

    with pytest.raises(AdapterError, match="not independent"):
        torch_optimizer(cls, lr=0.05, batching="batched")
    with pytest.warns(AdapterWarning, match="one optimizer per row"):
        opt = torch_optimizer(cls, lr=0.05, form="fresh")
    f = RandomProblem(3, seed=7, c=10.0)
    X0 = np.random.default_rng(7).standard_normal((4, 3))
    state = opt.init(X0)
    for _ in range(20):
        state = opt.step(state, f)
    np.testing.assert_array_equal(opt.position(state),
                                  _one_point_at_a_time(cls, {"lr": 0.05}, X0, f, 20))


def test_optax_clipping_is_per_trajectory_and_matches_optax():
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp

    from dynverify.adapters import optax_optimizer
    from dynverify.adapters._core import RandomProblem

    def clipped_sgd(learning_rate):
        return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(learning_rate, 0.9))

    opt = optax_optimizer(clipped_sgd, learning_rate=0.05, form="fresh")
    f = RandomProblem(3, seed=8, c=10.0)
    X0 = np.random.default_rng(8).standard_normal((5, 3))
    state = opt.init(X0)
    for _ in range(50):
        state = opt.step(state, f)
    tx = clipped_sgd(0.05)
    for i, x0 in enumerate(X0):
        x = jnp.asarray(x0)
        s = tx.init(x)
        for _ in range(50):
            u, s = tx.update(jnp.asarray(f.grad(np.asarray(x)[None, :])[0]), s, x)
            x = optax.apply_updates(x, u)
        np.testing.assert_allclose(opt.position(state)[i], np.asarray(x), rtol=1e-13,
                                   atol=1e-15)


def test_optax_does_not_recompile_for_every_batch_size():
    optax = pytest.importorskip("optax")
    from dynverify.adapters import optax_optimizer

    opt = optax_optimizer(optax.sgd, learning_rate=0.0123, momentum=0.5)
    before = opt.compilations()
    f = Quadratic.diagonal([1.0, 2.0])
    state = opt.init(np.ones((100, 2)))
    for B in range(100, 0, -1):  # rows leave the active set one by one
        state = opt.step(tuple(s[:B] for s in state), f)
    assert opt.compilations() - before <= 5  # padded sizes 128, 64, …, 8


# -- the torch view of a test function, and bad input -------------------------------------------

def test_torch_view_has_the_oracles_gradient_and_hessian_vector_products():
    from dynverify.adapters._core import RandomProblem

    f = RandomProblem(3, seed=3)
    X = np.random.default_rng(3).standard_normal((2, 3))
    V = np.random.default_rng(4).standard_normal((2, 3))
    p = torch.tensor(X, requires_grad=True)
    (g,) = torch.autograd.grad(torch_function(f)(p), p, create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), f.grad(X))
    (hv,) = torch.autograd.grad(g, p, grad_outputs=torch.tensor(V))
    np.testing.assert_array_equal(hv.numpy(), f.hvp(X, V))


@pytest.mark.parametrize("args, kwargs, match", [
    ((int,), {}, "Optimizer subclass"),
    ((lambda: None,), {}, "Optimizer subclass"),
    (("SGD",), {}, "Optimizer subclass"),
    ((torch.optim.SGD,), {"lr": -1.0}, r"torch.optim.SGD\(lr=-1.0\).*learning rate"),
    ((torch.optim.SGD,), {"lr": 0.1, "no_such": 1}, r"torch.optim.SGD.*no_such"),
    ((torch.optim.SGD,), {"lr": 0.1, "form": "steady"}, "form must be"),
    ((torch.optim.SGD,), {"lr": 0.1, "batching": "maybe"}, "batching must be"),
])
def test_bad_adapter_arguments_raise_a_clear_error(args, kwargs, match):
    with pytest.raises(AdapterError, match=match):
        torch_optimizer(*args, **kwargs)


@pytest.mark.parametrize("momentum, nesterov, hi", [
    (0.0, False, 2 / 0.1), (0.9, False, 2 * 1.9 / 0.1), (0.9, True, 2 * 1.9 / (2.8 * 0.1)),
])
def test_optax_sgd_derived_filter_equals_the_closed_form(momentum, nesterov, hi):
    """optax's trace has no dampening: t⁺ = g + μt, the heavy-ball/Nesterov blocks above."""
    optax = pytest.importorskip("optax")
    from dynverify.adapters import optax_optimizer

    opt = optax_optimizer(optax.sgd, learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    close(derive_region(opt), 0.0, hi)


OPTAX_SEPARABLE = [
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01, "eps_root": 1e-8}),
    ("adamw", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("adagrad", {"learning_rate": 0.05}),
]


@pytest.mark.parametrize("factory, hp", OPTAX_SEPARABLE, ids=[f for f, _ in OPTAX_SEPARABLE])
def test_optax_adapter_equals_optax_one_point_at_a_time(factory, hp):
    """jit(vmap(update)) against optax's eager update per point; compilation may fuse
    multiply-adds, so agreement is to 1e-13 relative rather than bitwise."""
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp

    from dynverify.adapters import optax_optimizer
    from dynverify.adapters._core import RandomProblem

    f = RandomProblem(3, seed=9, c=0.1)
    X0 = np.random.default_rng(9).standard_normal((4, 3))
    opt = optax_optimizer(getattr(optax, factory), form="fresh", **hp)
    state = opt.init(X0)
    for _ in range(100):
        state = opt.step(state, f)
    tx = getattr(optax, factory)(**hp)
    for i, x0 in enumerate(X0):
        x = jnp.asarray(x0)
        s = tx.init(x)
        for _ in range(100):
            u, s = tx.update(jnp.asarray(f.grad(np.asarray(x)[None, :])[0]), s, x)
            x = optax.apply_updates(x, u)
        np.testing.assert_allclose(opt.position(state)[i], np.asarray(x), rtol=1e-13,
                                   atol=1e-15)
