"""Tests of dynverify.experiments: backprop and HVPs against autograd and finite
differences, Lanczos against dense Hessians, the theorem on a trained network, verdicts."""

from __future__ import annotations

import json
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as agrad
from autograd import hessian as ahessian
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sklearn")

from dynverify.cli import main  # noqa: E402
from dynverify.experiments import (  # noqa: E402
    MLP,
    DataSpec,
    Outcome,
    RunConfig,
    TrainingLoss,
    extreme_eigenvalues,
    load,
    run_one,
    train,
)
from dynverify.experiments.sweep import judge  # noqa: E402
from dynverify.experiments.train import TrainResult, TrainStatus  # noqa: E402
from dynverify.functions import Quadratic  # noqa: E402
from dynverify.optimizers import gradient_descent, heavy_ball  # noqa: E402
from dynverify.regions import Region  # noqa: E402

SMALL = DataSpec("digits", subsample=20, seed=0)


def autograd_loss(sizes, activation, loss, X, Y, wd=0.0):
    """An independent autograd implementation of the same training loss."""
    acts = {"tanh": anp.tanh, "softplus": lambda z: anp.logaddexp(0.0, z)}

    def f(theta):
        A, k = X, 0
        layers = []
        for m, n in zip(sizes, sizes[1:]):
            W = anp.reshape(theta[k:k + m * n], (m, n))
            k += m * n
            layers.append((W, theta[k:k + n]))
            k += n
        for W, b in layers[:-1]:
            A = acts[activation](anp.dot(A, W) + b)
        out = anp.dot(A, layers[-1][0]) + layers[-1][1]
        if loss == "mse":
            val = 0.5 * anp.sum((out - Y) ** 2) / X.shape[0]
        else:
            mx = anp.max(out, axis=1, keepdims=True)
            lse = anp.log(anp.sum(anp.exp(out - mx), axis=1)) + mx[:, 0]
            val = anp.mean(lse - out[np.arange(X.shape[0]), Y])
        return val + 0.5 * wd * anp.dot(theta, theta)

    return f


def small_loss(activation="tanh", loss="mse", wd=0.0, sizes=(64, 5, 4, 10)):
    ds = load(SMALL)
    Y = ds.Y if loss == "mse" else ds.labels
    f = TrainingLoss(MLP(sizes, activation), ds.X, Y, loss, wd)
    return f, autograd_loss(sizes, activation, loss, ds.X, Y, wd)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_gradient_and_hvp_match_autograd(activation, loss):
    f, ref = small_loss(activation, loss, wd=0.01)
    rng = np.random.default_rng(1)
    theta = f.model.init_params(rng)
    v = rng.normal(size=theta.size)
    assert f.value(theta[None])[0] == pytest.approx(float(ref(theta)), rel=1e-12)
    np.testing.assert_allclose(f.grad(theta[None])[0], agrad(ref)(theta), atol=1e-12)
    H = ahessian(ref)(theta)
    np.testing.assert_allclose(f.hvp(theta[None], v[None])[0], H @ v, atol=1e-10)


def test_gradient_and_hvp_match_finite_differences():
    f, _ = small_loss("softplus", "cross_entropy")
    rng = np.random.default_rng(2)
    theta = f.model.init_params(rng)
    v = rng.normal(size=theta.size)
    v /= np.linalg.norm(v)
    h = 1e-5
    # directional derivative of the value, and of the gradient, by central differences
    fd = (f.value((theta + h * v)[None])[0] - f.value((theta - h * v)[None])[0]) / (2 * h)
    assert f.grad(theta[None])[0] @ v == pytest.approx(fd, rel=1e-6, abs=1e-9)
    fd_hv = (f.grad((theta + h * v)[None])[0] - f.grad((theta - h * v)[None])[0]) / (2 * h)
    np.testing.assert_allclose(f.hvp(theta[None], v[None])[0], fd_hv, atol=1e-7)


def test_batched_rows_are_independent():
    f, _ = small_loss()
    rng = np.random.default_rng(3)
    T = np.stack([f.model.init_params(rng) for _ in range(3)])
    V = rng.normal(size=T.shape)
    for i in range(3):
        np.testing.assert_array_equal(f.grad(T)[i], f.grad(T[i:i + 1])[0])
        np.testing.assert_array_equal(f.hvp(T, V)[i], f.hvp(T[i:i + 1], V[i:i + 1])[0])


def test_lanczos_extremes_match_dense_hessian():
    f, ref = small_loss(sizes=(64, 4, 10))  # d = 310 > DENSE_BELOW: the Lanczos path
    theta = f.model.init_params(np.random.default_rng(4))
    lam = np.linalg.eigvalsh(ahessian(ref)(theta))
    e = extreme_eigenvalues(f, theta)
    assert e.method == "lanczos"
    assert e.bottom == pytest.approx(lam[0], rel=1e-6)
    assert e.top == pytest.approx(lam[-1], rel=1e-6)


def test_converged_gd_beyond_initial_threshold_ends_inside_filter():
    """Bolte–Le–Pauwels: converged GD has sharpness ≤ 2/α, even when it started sharper.
    Measured with autograd (gradient and dense Hessian), not with the code under test.
    The catapult from sharpness ≈ 30 down to ≤ 2/α is chaotic, so several step sizes and
    seeds are tried (another BLAS may change which converge); at least one must."""
    ds = load(SMALL)
    sizes = (64, 4, 10)
    ref = autograd_loss(sizes, "tanh", "mse", ds.X, ds.Y)
    f = TrainingLoss(MLP(sizes), ds.X, ds.Y)
    tol, judged = 1e-4, 0
    for lr, seed in [(1.0, 0), (1.1, 2), (1.0, 2), (1.0, 5), (0.9, 1)]:
        theta0 = MLP(sizes).init_params(np.random.default_rng(seed))
        assert np.linalg.eigvalsh(ahessian(ref)(theta0))[-1] > 5 * 2.0 / lr  # far beyond
        res = train(gradient_descent(lr), f, theta0, tol=tol, max_steps=10_000)
        with np.errstate(over="ignore"):  # autograd's tanh' = 1/cosh² overflows to 0
            if not np.linalg.norm(agrad(ref)(res.theta)) < tol:
                continue  # the premise does not hold: the theorem says nothing
            lam = np.linalg.eigvalsh(ahessian(ref)(res.theta))
        assert lam[-1] <= 2.0 / lr * (1 + 1e-3)
        assert lam[0] >= -1e-3 * 2.0 / lr
        judged += 1
        if judged == 2:
            break
    assert judged >= 1, "no run converged: the test would be vacuous"
    cfg = RunConfig("gradient_descent", {"lr": 1.0}, data=SMALL, hidden=(4,), steps=4000)
    r = run_one(cfg)
    assert r["outcome"] == ("pass" if r["status"] == "converged" else "not converged")


def test_training_iterates_the_optimizer_map():
    """train() is exactly the optimizer's iteration (the gradient cache changes nothing)."""
    f, _ = small_loss()
    theta0 = f.model.init_params(np.random.default_rng(5))
    res = train(heavy_ball(0.1, 0.5), f, theta0, tol=1e-12, max_steps=7)
    x, x_prev = theta0.copy(), theta0.copy()
    for _ in range(7):
        x, x_prev = x - 0.1 * f.grad(x[None])[0] + 0.5 * (x - x_prev), x
    np.testing.assert_allclose(res.theta, x, rtol=0, atol=1e-14)
    assert res.steps == 7 and res.status is TrainStatus.BUDGET


GD_CFG = RunConfig("gradient_descent", {"lr": 0.5}, tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(status=st.sampled_from([TrainStatus.BUDGET, TrainStatus.NONFINITE]),
       grad_norm=st.floats(1e-6, 1e6), bottom=st.floats(-10, 10), width=st.floats(0, 10))
def test_unconverged_run_is_never_a_pass(status, grad_norm, bottom, width):
    from dynverify.experiments.sharpness import Extremes

    res = TrainResult(status, 100, np.zeros(2), 0.0, grad_norm, 0.0, (np.zeros((1, 2)),))
    e = None if status is TrainStatus.NONFINITE else Extremes(bottom, bottom + width, "dense", 2)
    v = judge(gradient_descent(0.5), Quadratic(np.eye(2)), GD_CFG, res, e, Region([(0, 4)]))
    assert v.outcome in (Outcome.NOT_CONVERGED, Outcome.DIVERGED)
    assert v.outcome.claim_outcome == "inconclusive"


def test_limit_on_a_saddles_stable_manifold_is_not_a_counterexample():
    """GD started on the stable manifold of a saddle converges to it (a measure-zero set
    of starts): ‖∇f‖ < tol with eigenvalue −0.5 ∉ [0, 4]; the perturbed run must leave."""
    from dynverify.experiments.sharpness import extreme_eigenvalues as ext

    f = Quadratic(np.diag([1.0, -0.5]))
    res = train(gradient_descent(0.5), f, np.array([1.0, 0.0]), tol=1e-6, max_steps=1000)
    assert res.converged
    v = judge(gradient_descent(0.5), f, GD_CFG, res, ext(f, res.theta), Region([(0, 4)]))
    assert v.outcome is Outcome.NOT_CONVERGED, v
    assert v.evidence["perturbed_max_grad_norm"] > 100 * GD_CFG.tol


def test_weakly_repelling_limit_beyond_the_confirmation_budget_is_inconclusive():
    """Eigenvalue −0.01 ∉ [0, 4] repels at rate 1.005 per step: showing it takes ~4600
    steps; with a budget of 1000 the verdict must be inconclusive, not a counterexample."""
    from dataclasses import replace

    from dynverify.experiments.sharpness import extreme_eigenvalues as ext

    f = Quadratic(np.diag([1.0, -0.01]))
    res = train(gradient_descent(0.5), f, np.array([1.0, 0.0]), tol=1e-6, max_steps=1000)
    cfg = replace(GD_CFG, confirm_steps=1000)
    v = judge(gradient_descent(0.5), f, cfg, res, ext(f, res.theta), Region([(0, 4)]))
    assert v.outcome is Outcome.INCONCLUSIVE, v
    assert v.evidence["confirm_window"] > 1000


def test_non_critical_fixed_point_is_named_and_not_a_pass():
    """USAM with ρλ = −1 (f = −x²/2, ρ = 1): x + ρ∇f(x) = 0 is critical for every x, so
    every x is a fixed point though ∇f(x) ≠ 0; the Hessian filter does not apply there."""
    from dynverify.experiments.sharpness import extreme_eigenvalues as ext
    from dynverify.optimizers import usam

    f, opt = Quadratic(np.array([[-1.0]])), usam(0.1, 1.0)
    res = train(opt, f, np.array([0.7]), tol=1e-6, max_steps=50)
    v = judge(opt, f, GD_CFG, res, ext(f, res.theta), opt.region)
    assert res.theta[0] == 0.7 and v.outcome is Outcome.NOT_CONVERGED
    assert "not critical" in v.reason


TEACHER = DataSpec("teacher", subsample=100, seed=0, inputs=4, teacher_hidden=3)


def test_wrong_declared_filter_is_a_counterexample_and_correct_one_passes():
    base = RunConfig("gradient_descent", {"lr": 0.6}, data=TEACHER, hidden=(8,),
                     steps=20000)
    good = run_one(base)
    assert good["status"] == "converged" and good["outcome"] == "pass"
    assert 1.0 / 0.6 < good["top"] <= 2.0 / 0.6  # too_narrow's [0, 1/α] misses it
    bad = run_one(RunConfig("wrong_optimizers:too_narrow", {"lr": 0.6}, data=TEACHER,
                            hidden=(8,), steps=20000))
    assert bad["outcome"] == "counterexample", bad["reason"]


def test_process_pool_gives_the_same_results_as_one_process():
    from dynverify.experiments import grid, sweep

    cfgs = grid(["gradient_descent", "heavy_ball"], [0.5], {"momentum": 0.5},
                RunConfig("gradient_descent", {}, data=TEACHER, hidden=(3,), steps=300))
    key = ("optimizer", "steps", "loss", "grad_norm", "bottom", "top", "outcome")
    one = sorted(tuple(r[k] for k in key) for r in sweep(cfgs, workers=1))
    two = sorted(tuple(r[k] for k in key) for r in sweep(cfgs, workers=2))
    assert one == two


def test_relu_and_normalized_sam_are_outside_hypotheses():
    r = run_one(RunConfig("gradient_descent", {"lr": 0.5}, data=SMALL, hidden=(4,),
                          activation="relu", steps=50))
    assert r["outcome"] == "outside hypotheses"
    s = run_one(RunConfig("sam", {"lr": 0.5, "rho": 0.05}, data=SMALL, hidden=(4,), steps=50))
    assert s["outcome"] == "outside hypotheses"


def test_grid_gives_each_optimizer_its_own_parameters():
    from dynverify.experiments import grid

    cs = grid(["gradient_descent", "usam", "hessian_usam"], [0.1, 0.2],
              {"rho": 0.05, "hessian_usam.rho": 0.005, "momentum": 0.9}, GD_CFG)
    hps = {(c.optimizer, c.hyperparameters["lr"]): c.hyperparameters for c in cs}
    assert hps[("gradient_descent", 0.1)] == {"lr": 0.1}
    assert hps[("usam", 0.2)] == {"lr": 0.2, "rho": 0.05}
    assert hps[("hessian_usam", 0.2)] == {"lr": 0.2, "rho": 0.005}


def test_data_sets():
    ds = load(DataSpec("digits", 50, 3))
    assert ds.X.shape == (50, 64) and ds.Y.shape == (50, 10)
    np.testing.assert_allclose(ds.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_array_equal(load(DataSpec("digits", 50, 3)).X, ds.X)
    assert ds.labels is not None and set(np.argmax(ds.Y, axis=1)) == set(ds.labels)
    t = load(TEACHER)
    assert t.X.shape == (100, 4) and t.Y.shape == (100, 1) and t.labels is None


# -- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--optimizers", "no_such_opt"], "unknown optimizer 'no_such_opt'"),
    (["--lr", "0.2:0.1:3"], "bad grid"),
    (["--lr", "a:b:c"], "bad grid"),
    (["--lr", "0,-1"], "positive"),
    (["--data", "mnist"], "unknown dataset 'mnist'"),
    (["-p", "rho"], "bad hyperparameter 'rho'"),
    (["-p", "lr=0.1"], "--lr"),
    (["--activation", "gelu"], "unknown activation 'gelu'"),
    (["--data", "teacher", "--loss", "cross_entropy"], "cross-entropy needs class labels"),
    (["--subsample", "5000"], "exceeds the 1797 digits"),
    (["--hidden", "0"], "--hidden"),
    (["-p", "rho=-1", "--optimizers", "usam"], "rho must be >= 0"),
    (["-p", "usam.rho=0.1", "--optimizers", "gradient_descent"], "not among --optimizers"),
])
def test_cli_bad_input_is_a_one_line_error(argv, message, capsys, tmp_path):
    code = main(["experiment", "sharpness", "--reports", str(tmp_path), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_cli_sweep_table_records_plot_and_replay(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "s.png"
    code = main(["experiment", "sharpness", "--optimizers", "gradient_descent,"
                 "wrong_optimizers:too_narrow", "--lr", "0.5,0.6", "--data", "teacher",
                 "--subsample", "100", "--hidden", "8", "--steps", "20000", "--quiet",
                 "--reports", str(tmp_path), "--out", str(png)])
    out = capsys.readouterr().out
    assert code == 1  # too_narrow declares [0, 1/α]; the limits' sharpness is ≈ 2.2 > 1/α
    assert "pass" in out and "counterexample" in out and png.stat().st_size > 10_000
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    lines = [json.loads(x) for x in (run_dir / "cases-main.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {c["claim"] for c in lines} == {"sharpness_filter"}
    cex = list((run_dir / "counterexamples").glob("*.json"))
    assert len(cex) == 2 and all(p.with_suffix(".md").exists() for p in cex)
    assert all("too_narrow" in p.name for p in cex)
    assert main(["replay", str(cex[0])]) == 1
    assert "counterexample reproduces" in capsys.readouterr().out
    assert main(["report", str(run_dir)]) == 1  # the run recorded counterexamples
    assert "sharpness_filter" in capsys.readouterr().out


@pytest.mark.parametrize("edit", [
    lambda c: c.pop("data"),
    lambda c: c.update(data={"name": "mnist"}),
    lambda c: c.update(data={"name": "digits", "pixels": 3}),
    lambda c: c.update(optimizer="no_such_opt"),
    lambda c: c.update(unknown_key=1),
    lambda c: c.update(hyperparameters={"lr": -1.0}),
])
def test_replay_of_a_damaged_experiment_record_exits_2(edit, capsys, tmp_path):
    cfg = RunConfig("gradient_descent", {"lr": 0.5}, data=SMALL, hidden=(4,)).to_json()
    edit(cfg)
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema": "dynverify.counterexample/1", "claim": "c",
                                "optimizer": {"name": "x"}, "verdict": {},
                                "experiment": {"config": cfg}}))
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynverify: error:") and "Traceback" not in err


def test_not_converged_digits_run_reports_ratio():
    r = run_one(RunConfig("gradient_descent", {"lr": 0.3}, data=SMALL, hidden=(4,), steps=300))
    assert r["status"] == "budget" and r["outcome"] == "not converged"
    assert math.isfinite(r["ratio"]) and "sharpness / bound" in r["reason"]


def test_cli_exits_3_when_no_run_converged(capsys, tmp_path):
    code = main(["experiment", "sharpness", "--optimizers", "gradient_descent", "--lr", "0.3",
                 "--data", "digits", "--subsample", "20", "--hidden", "4", "--steps", "50",
                 "--quiet", "--reports", str(tmp_path)])
    assert code == 3 and "nothing was verified" in capsys.readouterr().err


def test_cli_without_scikit_learn_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    code = main(["experiment", "sharpness", "--reports", str(tmp_path), "--quiet"])
    assert code == 2 and "pip install 'dynverify[experiments]'" in capsys.readouterr().err
