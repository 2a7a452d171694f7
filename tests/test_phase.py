"""Phase diagrams against filters computed by hand (DESIGN.md §2), on tiny grids."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dynverify.check import replay
from dynverify.claims import DEFAULT_SETTINGS
from dynverify.phase import PhaseDiagram, parse_grid, phase_diagram

DELTA = DEFAULT_SETTINGS.boundary_band


def hand_band(rho1):
    return np.abs(np.asarray(rho1) - 1.0) < DELTA


def test_gradient_descent_agrees_with_its_closed_form_filter_cell_by_cell():
    lrs = [0.1, 0.25, 0.5, 1.0]
    lam = np.linspace(-2.0, 22.0, 25)  # contains 2/α for α = 0.1, 0.25, 1 exactly
    d = phase_diagram("gradient_descent", lam=lam, vary={"lr": lrs}, starts=8, seed=1)
    decided = 0
    for i, a in enumerate(lrs):
        rho1 = np.abs(1.0 - a * lam)  # GD: x⁺ = (1 − αλ)x along the eigenvector
        band = hand_band(rho1)
        assert d.band[i].tolist() == band.tolist()
        inside = (lam >= 0.0) & (lam <= 2.0 / a)
        frac = d.fraction("target")[i]
        for j in np.flatnonzero(~band):
            decided += 1
            if inside[j]:
                assert frac[j] > 0.5, (a, lam[j], frac[j])
            else:
                assert d.counts[i, j, 0] == 0, (a, lam[j], d.counts[i, j])
    assert decided > 80
    a = d.agreement()
    assert a["agrees"] and a["outside_with_convergence"] == 0 and a["counterexamples"] == 0


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_usam_converges_in_its_negative_band_and_not_between_it_and_zero(rho):
    lr = 0.1
    s = math.sqrt(1.0 + 8.0 * rho / lr)
    lo, hi = (-1.0 - s) / (2.0 * rho), -1.0 / rho  # the negative band, by hand
    band_pts = lo + (hi - lo) * np.array([0.25, 0.5, 0.75])
    gap_pts = hi * np.array([0.75, 0.5, 0.25])  # between −1/ρ and 0
    left = np.array([lo - 1.0])
    lam = np.concatenate([left, band_pts, gap_pts])
    rho1 = np.abs(1.0 - lr * lam * (1.0 + rho * lam))
    d = phase_diagram("usam", lam=lam, vary={"rho": [rho]}, fixed={"lr": lr}, starts=8,
                      seed=2)
    frac = d.fraction("target")[0]
    ok = ~hand_band(rho1)
    assert ok[1:4].all()  # the band's interior is clearly inside
    assert (frac[1:4] > 0.5).all(), frac
    for j in np.flatnonzero(ok):
        if j == 0 or j >= 4:
            assert d.counts[0, j, 0] == 0, (lam[j], d.counts[0, j])


def test_two_step_usam_isolated_point_is_undecidable_and_its_neighbours_repel():
    lr, rho = 0.1, 0.5
    lam = np.array([-3.0, -2.0, -1.0])  # −1/ρ = −2 is the isolated point
    rho1 = np.abs(1.0 - lr * lam * (1.0 + rho * lam) ** 2)  # 1.075, 1, 1.025
    d = phase_diagram("two_step_usam", lam=lam, vary={"rho": [rho]}, fixed={"lr": lr},
                      starts=8, seed=3)
    assert d.band[0].tolist() == hand_band(rho1).tolist() == [False, True, False]
    assert any(abs(p + 2.0) < 1e-9 for p in d.filters[0].isolated_points)
    assert d.counts[0, 0, 0] == 0 and d.counts[0, 2, 0] == 0


def test_start_ball_shrinks_with_the_measured_amplification():
    lr, rho, lam = 0.1, 0.5, 6.0
    d1 = phase_diagram("usam", lam=[lam], vary={"rho": [rho]}, fixed={"lr": lr}, starts=4)
    d2 = phase_diagram("two_step_usam", lam=[lam], vary={"rho": [rho]}, fixed={"lr": lr},
                       starts=4)
    # one step evaluates ∇f at (1 + ρλ)u (usam) and (1 + ρλ)²u (two-step) from offset u
    assert d1.amplification[0, 0] == pytest.approx(1.0 + rho * lam)
    assert d2.amplification[0, 0] == pytest.approx((1.0 + rho * lam) ** 2)
    assert d2.radius[0, 0] < d1.radius[0, 0]


def test_wrong_declared_filters_give_replayable_counterexamples(tmp_path):
    # too_wide declares [0, 3/α] (true [0, 2/α]); too_narrow declares [0, 1/α]
    d = phase_diagram("wrong_optimizers:too_wide", lam=[1.0, 5.0], vary={"lr": [0.5]},
                      starts=8, reports=tmp_path)
    assert d.counts[0, 0, 0] > 0 and d.counts[0, 1, 0] == 0  # λ = 5: ρ₁ = 1.5, inside 'filter'
    assert len(d.counterexample_paths) == 1 and d.agreement()["agrees"] is False
    n = phase_diagram("wrong_optimizers:too_narrow", lam=[1.0, 3.0], vary={"lr": [0.5]},
                      starts=8, reports=tmp_path)
    assert n.counts[0, 1, 0] > 0 and len(n.counterexample_paths) == 1  # λ = 3: ρ₁ = 0.5
    for path in d.counterexample_paths + n.counterexample_paths:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
        assert rec["schema"] == "dynverify.counterexample/1" and "phase" in rec
        assert Path(path).with_suffix(".md").read_text(encoding="utf-8").startswith("# Counter")
        assert replay(path).reproduces


def test_json_round_trip(tmp_path):
    d = phase_diagram("heavy_ball", lam="-1:9:6", vary={"lr": "0.1:1:3:log"},
                      fixed={"momentum": 0.5}, starts=4)
    d2 = PhaseDiagram.load(d.save(tmp_path / "p.json"))
    assert d2.to_json() == d.to_json()
    assert d2.log_param and not d2.log_lam


def test_grids():
    assert parse_grid("1e-3:1:4:log").values == pytest.approx((1e-3, 1e-2, 1e-1, 1.0))
    assert parse_grid("-10:100:3").values == (-10.0, 45.0, 100.0)
    assert parse_grid("0.1, 0.2").values == (0.1, 0.2)
    for bad in ("1:2", "1:2:x", "0:1:3:log", "1:2:3:cubic", ""):
        with pytest.raises(ValueError, match="cannot read"):
            parse_grid(bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"vary": {"lr": [0.1], "rho": [1.0]}}, "exactly one"),
    ({"vary": {"momentum": [0.5]}}, "takes no hyperparameter"),
    ({"vary": {"lr": [-1.0]}}, "lr must be"),
    ({"vary": {"lr": [0.1]}, "starts": 0}, "starts"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        phase_diagram("gradient_descent", lam=[1.0], **kwargs)


def test_cli_phase_writes_data_plot_and_summary(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from dynverify.cli import main

    png, data = tmp_path / "p.png", tmp_path / "p.json"
    rc = main(["phase", "usam", "--vary", "rho=0.25:1:3", "--lam", "-6:6:7", "-p", "lr=0.1",
               "--starts", "4", "--out", str(png), "--data", str(data),
               "--reports", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert rc == 0 and "agrees with the theorem" in out and "yes" in out
    assert png.stat().st_size > 10_000 and PhaseDiagram.load(data).values[-1] == 1.0
    assert main(["phase", "usam", "--vary", "rho=0:1:x", "-p", "lr=0.1"]) == 2
