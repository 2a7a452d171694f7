"""How accurate is claim 1's spectral radius next to r = 1? Sets Settings.linearization_band.

Claim 1 compares r = ρ(Jac G(z̄)), a finite-difference Jacobian on the planted function,
with the filter. Next to a boundary the error of r decides what band δ₁ is safe. For
every built-in, spectra hugging the filter's boundary (relative distances 1e-4 … 1e-2)
are planted, and r is compared with max ρ₁(λᵢ), the filter function on exact
one-dimensional quadratics (where the finite differences are exact), for several steps h.

    python benchmarks/linearization_error.py --examples 300 --steps 1e-6 1e-7 1e-8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from dynverify import strategies as S
from dynverify.derive import filter_function
from dynverify.linearize import spectral_radius
from dynverify.registry import resolve

BUILTINS = ["gradient_descent", "heavy_ball", "nesterov", "usam", "two_step_usam",
            "hessian_usam", "penalty_sam", "rmsprop", "adam"]


def errors(name: str, h: float, examples: int) -> np.ndarray:
    reg = resolve(name)
    out: list[float] = []

    @seed(0)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        opt = reg.build(**data.draw(reg.strategy()))
        side = data.draw(st.sampled_from(["inside", "outside"]))
        spectra = S.near_boundary_spectra(region=opt.region, side=side, min_distance=1e-4,
                                          max_distance=1e-2)
        f = data.draw(S.planted_functions(spectra=spectra,
                                          smoothness="C3" if opt.hessian_in_map else "C2"))
        r = spectral_radius(opt, f, np.asarray(f.x_star), h=h)
        r1 = float(np.max(filter_function(opt)(np.asarray(f.spectrum))))
        if abs(r1 - 1.0) < 0.05:
            out.append(abs(r - r1))

    prop()
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--steps", type=float, nargs="+", default=[1e-6, 1e-7, 1e-8])
    ap.add_argument("--out", default="benchmarks/results/linearization-error.json")
    args = ap.parse_args()
    rows = []
    for h in args.steps:
        for name in BUILTINS:
            e = errors(name, h, args.examples)
            row = {"h": h, "optimizer": name, "cases_near_1": int(e.size),
                   "max_error": float(e.max()) if e.size else None,
                   "p99_error": float(np.quantile(e, 0.99)) if e.size else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    cmd = (f"python benchmarks/linearization_error.py --examples {args.examples} --steps "
           + " ".join(f"{h:g}" for h in args.steps))
    Path(args.out).write_text(json.dumps({"command": cmd, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
