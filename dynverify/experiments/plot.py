"""Sharpness at the end of training against the step size, with each filter's bound."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def bound_curve(optimizer: str, hyperparameters: dict[str, float], lrs: np.ndarray
                ) -> np.ndarray:
    """The filter's upper bound (2/α for GD) at each step size (NaN where there is none)."""
    from dynverify.experiments.sweep import RunConfig, filter_of
    from dynverify.experiments.verdict import upper_bound

    out = []
    for lr in lrs:
        cfg = RunConfig(optimizer, {**hyperparameters, "lr": float(lr)})
        region = filter_of(cfg)[1]
        out.append(upper_bound(region) if region is not None else math.nan)
    return np.array(out)


def sharpness_plot(results: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """Write a PNG: final sharpness (filled: converged, hollow: not, ×: diverged) per
    optimizer vs lr on a log scale, each optimizer's filter bound as a curve of the same
    colour, the sharpness at initialization dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_opt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_opt[r["optimizer"]].append(r)
    lrs_all = [r["hyperparameters"]["lr"] for r in results]
    lo, hi = min(lrs_all), max(lrs_all)
    fine = np.linspace(lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo), 80) if hi > lo \
        else np.array([lo * 0.9, lo * 1.1])
    fine = fine[fine > 0]
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values: list[float] = []
    for k, (name, runs) in enumerate(by_opt.items()):
        c = colors[k % len(colors)]
        runs = sorted(runs, key=lambda r: r["hyperparameters"]["lr"])
        hp = {key: v for key, v in runs[0]["hyperparameters"].items() if key != "lr"}
        label = name + (f" ({', '.join(f'{a}={b:g}' for a, b in hp.items())})" if hp else "")
        bounds = bound_curve(name, hp, fine)
        ax.plot(fine, bounds, color=c, lw=1.2, alpha=0.8)
        values += [v for v in bounds if math.isfinite(v) and v > 0]
        # a small horizontal offset per optimizer keeps coinciding points visible
        dx = (k - 0.5 * (len(by_opt) - 1)) * 0.006 * max(hi - lo, 0.05 * hi)
        x = np.array([r["hyperparameters"]["lr"] for r in runs]) + dx
        y = np.array([r["top"] for r in runs], dtype=float)
        conv = np.array([r["status"] == "converged" for r in runs])
        diverged = np.array([r["status"] == "nonfinite" for r in runs])
        values += [v for v in y if math.isfinite(v) and v > 0]
        ax.plot(x[~diverged], y[~diverged], color=c, lw=0.6, ls=":", alpha=0.7)
        ax.scatter(x[conv], y[conv], color=c, s=36, zorder=3, label=label)
        ax.scatter(x[~conv & ~diverged], y[~conv & ~diverged], facecolors="white",
                   edgecolors=c, s=36, zorder=3)
        ax.scatter(x[diverged], np.full(int(diverged.sum()), 0.03), marker="x", color=c,
                   s=30, zorder=3, transform=ax.get_xaxis_transform(), clip_on=False)
    init = [r["initial_top"] for r in results if math.isfinite(r.get("initial_top", math.nan))]
    if init:
        ax.axhline(float(np.median(init)), color="gray", ls="--", lw=1,
                   label=f"sharpness at initialization ({float(np.median(init)):.3g})")
        values.append(float(np.median(init)))
    positive = [v for v in values if v > 0]
    if positive:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.set_ylim(min(positive) / 1.3, max(positive) * 1.3)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step size α (lr)")
    ax.set_ylabel("sharpness λ_max(∇²ℓ) at the end")
    ax.set_title(title or "Sharpness after training; curves: each filter's bound", fontsize=10)
    ax.scatter([], [], facecolors="white", edgecolors="k", s=36, label="not converged")
    ax.scatter([], [], marker="x", color="k", s=30, label="diverged (at the bottom)")
    ax.plot([], [], color="k", lw=1.2, label="filter bound (same colour)")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
