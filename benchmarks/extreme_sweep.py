"""Built-ins at the extremes of their hyperparameter ranges (issue 9 §3): no false alarm.

Two sweeps; a correct built-in must give no counterexample, no error and no
RuntimeWarning (a user's ``filterwarnings = error`` turns it into an error):

- ``--fixed``: all five claims (``check_optimizer``) at each setting of ``FIXED`` (one
  hyperparameter at an extreme at a time: α, ρ, ε down to 5e-324, up to 1e200 or the
  largest float), for the given seeds and profile.
- ``--full N``: N Hypothesis draws per built-in of *every* hyperparameter from its full
  float range at once (subnormals, 0 where valid, up to the largest float), each run
  through claim 1's comparison of the declared filter with the derived one, exactly as
  claim 1 decides it (witness and all).

Prints one line per finding and a final count ``BAD n``; exit status 1 when n > 0.

Usage::

    python benchmarks/extreme_sweep.py --fixed --seeds 0 1 2 --profile dev
    python benchmarks/extreme_sweep.py --full 60 --optimizers penalty_sam adam
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

TINY, SUB, HUGE = 1e-300, 5e-324, 1e200
MAX = sys.float_info.max

FIXED = [
    ("gradient_descent", dict(lr=SUB)), ("gradient_descent", dict(lr=TINY)),
    ("gradient_descent", dict(lr=HUGE)), ("gradient_descent", dict(lr=2.0)),
    ("gradient_descent", dict(lr=MAX)),
    ("heavy_ball", dict(lr=HUGE, momentum=0.0)), ("heavy_ball", dict(lr=TINY, momentum=0.9)),
    ("heavy_ball", dict(lr=1.0, momentum=0.999999)), ("heavy_ball", dict(lr=SUB, momentum=0.0)),
    ("heavy_ball", dict(lr=HUGE, momentum=0.9)),
    ("nesterov", dict(lr=HUGE, momentum=0.0)), ("nesterov", dict(lr=TINY, momentum=0.5)),
    ("nesterov", dict(lr=1.0, momentum=0.999999)), ("nesterov", dict(lr=HUGE, momentum=0.9)),
    ("adam", dict(lr=TINY)), ("adam", dict(lr=1e3, eps=1e300)), ("adam", dict(lr=HUGE)),
    ("adam", dict(lr=0.5, beta1=0.0, beta2=0.5, eps=SUB)),
    ("adam", dict(lr=0.1, beta1=0.999999, beta2=0.999999)),
    ("adam", dict(lr=0.1, beta1=0.0, beta2=0.0)),
    ("rmsprop", dict(lr=TINY)), ("rmsprop", dict(lr=HUGE)), ("rmsprop", dict(lr=0.1, eps=SUB)),
    ("rmsprop", dict(lr=0.1, beta2=0.0)), ("rmsprop", dict(lr=1e3, eps=1e300)),
    ("usam", dict(lr=TINY, rho=1.0)), ("usam", dict(lr=0.5, rho=HUGE)),
    ("usam", dict(lr=HUGE, rho=TINY)), ("usam", dict(lr=0.5, rho=0.0)),
    ("usam", dict(lr=SUB, rho=1.0)), ("usam", dict(lr=0.5, rho=SUB)),
    ("usam", dict(lr=0.5, rho=2.2e-308)),
    ("two_step_usam", dict(lr=0.5, rho=HUGE)), ("two_step_usam", dict(lr=HUGE, rho=TINY)),
    ("two_step_usam", dict(lr=0.5, rho=SUB)),
    ("hessian_usam", dict(lr=0.5, rho=HUGE)), ("hessian_usam", dict(lr=TINY, rho=1.0)),
    ("hessian_usam", dict(lr=0.5, rho=SUB)), ("hessian_usam", dict(lr=HUGE, rho=TINY)),
    ("penalty_sam", dict(lr=0.5, rho=HUGE)), ("penalty_sam", dict(lr=HUGE, rho=TINY)),
    ("penalty_sam", dict(lr=0.5, rho=0.0)), ("penalty_sam", dict(lr=0.5, rho=SUB)),
    # found by --full: ρλ²x underflows; ε far below every finite-difference step
    ("penalty_sam", dict(lr=1e300, rho=1e300)), ("adam", dict(lr=3.5e-60, eps=3.5e-60)),
]


def fixed(seeds: list[int], profile: str, only: list[str]) -> int:
    import hypothesis.strategies as st

    import dynverify as dv

    bad = 0
    for seed in seeds:
        for name, hp in FIXED:
            if only and name not in only:
                continue
            t = time.perf_counter()
            strat = st.fixed_dictionaries({k: st.just(v) for k, v in hp.items()})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", RuntimeWarning)
                try:
                    res = dv.check_optimizer(name, hyperparameters=strat, profile=profile,
                                             reports=None, seed=seed)
                except Exception as exc:  # noqa: BLE001 -- a finding, reported
                    print(f"seed {seed} {name} {hp}: RAISED {type(exc).__name__}: {exc}")
                    bad += 1
                    continue
            found = [r for r in res.results if r.status.value in ("counterexample", "error")]
            bad += len(found)
            parts = [f"{r.claim}={r.status.value}" for r in res.results]
            print(f"seed {seed} {name} {hp} [{time.perf_counter() - t:.0f}s]: "
                  + "; ".join(parts), flush=True)
            for r in found:
                ev = (r.counterexample or {}).get("verdict", {}).get("evidence", {})
                print(f"    {r.claim}: {ev.get('key_fact') or r.error}")
    return bad


def full(n: int, only: list[str]) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import dynverify as dv
    from dynverify import optimizers as O
    from dynverify.claims import compare_declared
    from dynverify.errors import NotDifferentiableError

    pos = st.floats(min_value=0.0, max_value=MAX, exclude_min=True, allow_subnormal=True)
    nonneg = st.floats(min_value=0.0, max_value=MAX, allow_subnormal=True)
    mom = st.floats(0.0, 1.0, exclude_max=True, allow_subnormal=True)
    ranges = {
        "gradient_descent": dict(lr=pos), "heavy_ball": dict(lr=pos, momentum=mom),
        "nesterov": dict(lr=pos, momentum=mom), "usam": dict(lr=pos, rho=nonneg),
        "two_step_usam": dict(lr=pos, rho=nonneg), "hessian_usam": dict(lr=pos, rho=nonneg),
        "penalty_sam": dict(lr=pos, rho=nonneg),
        "adam": dict(lr=pos, beta1=mom, beta2=mom, eps=pos),
        "rmsprop": dict(lr=pos, beta2=mom, eps=pos),
    }
    bad: list[tuple] = []

    def one(name: str, h: dict) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dv.DerivationWarning)
                warnings.simplefilter("error", RuntimeWarning)
                opt = O.BUILTINS[name](**h)
                found, wit = compare_declared(opt)
                if wit is not None:
                    bad.append((name, h, "counterexample", str(opt.region),
                                found["derived_region"], wit["witness"]))
        except NotDifferentiableError:
            pass
        except Exception as exc:  # noqa: BLE001 -- a finding, reported
            bad.append((name, h, type(exc).__name__, str(exc)[:160]))

    for name, hp in ranges.items():
        if only and name not in only:
            continue

        @settings(max_examples=n, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.fixed_dictionaries(hp))
        def sweep(h: dict) -> None:
            one(name, h)  # noqa: B023 -- called before the loop moves on

        sweep()
        print(f"{name}: {len(bad)} findings so far", flush=True)
    for b in bad:
        print("   ", b)
    return len(bad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixed", action="store_true")
    ap.add_argument("--full", type=int, default=0, metavar="N")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--profile", default="dev")
    ap.add_argument("--optimizers", nargs="*", default=[])
    args = ap.parse_args()
    bad = 0
    if args.fixed:
        bad += fixed(args.seeds, args.profile, args.optimizers)
    if args.full:
        bad += full(args.full, args.optimizers)
    print("BAD", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
