"""Drawing a :class:`~dynverify.phase.PhaseDiagram` (matplotlib, the ``plot`` extra).

The fraction of starts converging to the planted point is the image; the filter's
boundary (declared: solid, derived: dashed) is drawn on top per hyperparameter value,
isolated points of the filter as diamonds; undecidable cells (|ρ₁ − 1| < δ) are grey and
hatched, never coloured as failures; counterexample cells carry a red cross.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around grid values (geometric midpoints on a log axis)."""
    x = np.log(v) if log else v.astype(float)
    if x.size == 1:
        half = 0.5 if not log else math.log(1.5)
        e = np.array([x[0] - half, x[0] + half])
    else:
        mid = 0.5 * (x[1:] + x[:-1])
        e = np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _boundary_points(region: Any) -> tuple[list[float], list[float]]:
    """(finite endpoints of proper intervals, isolated points)."""
    if region is None:
        return [], []
    ends = sorted(e for lo, hi in region.intervals if lo < hi for e in (lo, hi)
                  if math.isfinite(e))
    return ends, list(region.isolated_points)


def _draw_boundaries(ax: Any, regions: list[Any], ys: np.ndarray, **style: Any) -> None:
    """Join the k-th boundary point of consecutive rows while their number stays the same."""
    rows = [_boundary_points(r)[0] for r in regions]
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or len(rows[i]) != len(rows[start]):
            seg = rows[start:i]
            for k in range(len(rows[start])):
                xs = [r[k] for r in seg]
                ax.plot(xs, ys[start:i], marker="|" if len(seg) == 1 else None, ms=10, **style)
            start = i


def draw(d: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    lam = np.asarray(d.lam, dtype=float)
    vals = np.asarray(d.values, dtype=float)
    xe, ye = _edges(lam, d.log_lam), _edges(vals, d.log_param)
    frac = d.fraction("target")
    band = d.band
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    img = ax.pcolormesh(xe, ye, np.ma.masked_where(band, frac), cmap="viridis", vmin=0.0,
                        vmax=1.0, shading="flat")
    cb = fig.colorbar(img, ax=ax, pad=0.02)
    cb.set_label("fraction of starts converging to the planted point x̄")
    boxes = [Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i])
             for i, j in zip(*np.nonzero(band), strict=True)]
    if boxes:
        ax.add_collection(PatchCollection(boxes, facecolor="0.82", edgecolor="0.45",
                                          hatch="////", linewidth=0.0))
    _draw_boundaries(ax, d.declared, vals, color="tab:red", lw=2.0, ls="-")
    _draw_boundaries(ax, d.derived, vals, color="white", lw=1.3, ls="--")
    if all(r is None for r in d.declared):  # no declared filter: the one used is derived
        _draw_boundaries(ax, d.filters, vals, color="white", lw=1.3, ls="--")
    iso = [(p, y) for r, y in zip(d.filters, vals, strict=True) for p in _boundary_points(r)[1]]
    if iso:
        ax.plot([p for p, _ in iso], [y for _, y in iso], ls=":", color="tab:orange", lw=1.5,
                marker="D", ms=5, mec="black", mew=0.6)
    if d.counterexamples:
        cx = [c["phase"]["lambda"] for c in d.counterexamples]
        cy = [c["optimizer"]["hyperparameters"][d.param] for c in d.counterexamples]
        ax.plot(cx, cy, "x", color="red", ms=9, mew=2.5)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    if d.log_lam:
        ax.set_xscale("log")
    if d.log_param:
        ax.set_yscale("log")
    ax.set_xlabel("Hessian eigenvalue λ at the planted critical point")
    ax.set_ylabel(f"{d.param}")
    fixed = ", ".join(f"{k}={v:g}" for k, v in d.fixed.items())
    a = d.agreement()
    ax.set_title(f"{d.optimizer}({fixed}{', ' if fixed else ''}{d.param} varied): "
                 f"{d.starts} starts per cell\noutside the filter with convergence "
                 f"{a['outside_with_convergence']}/{a['outside']} cells; inside converged "
                 f"{a['inside_converged']}/{a['inside']}", fontsize=10)
    handles = [Line2D([], [], color="tab:red", lw=2.0, label="declared filter boundary"),
               Line2D([], [], color="white", lw=1.3, ls="--", label="derived filter boundary"),
               Patch(facecolor="0.82", edgecolor="0.45", hatch="////",
                     label="undecidable: |ρ₁(λ) − 1| < δ")]
    if iso:
        handles.append(Line2D([], [], color="tab:orange", ls=":", marker="D", mec="black",
                              label="isolated point of the filter"))
    if d.counterexamples:
        handles.append(Line2D([], [], color="red", ls="", marker="x", mew=2.5,
                              label="counterexample"))
    leg = ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    leg.get_frame().set_facecolor("0.6")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
