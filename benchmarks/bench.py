"""Benchmarks of dynverify (issue 6): engine, baselines, claim throughput, suite time.

Every workload is fixed and seeded; times come from ``time.perf_counter``. Sections:

* ``engine``: B trajectories × T steps of every built-in optimizer on planted functions
  (d in 2, 10, 50) through :func:`dynverify.engine.run`, in point-steps per second, with
  two baselines on the same functions, optimizers, hyperparameters and initial points:

  - ``autograd``: a per-trajectory Python loop with ``autograd.grad`` of a scalar
    ``autograd.numpy`` version of the planted function (what a user writes first). It
    costs ~100+ µs per point-step, so it runs on a subset of trajectories and steps and
    its cost per point-step is extrapolated to the whole workload;
  - ``jax``: ``jax.jit(jax.vmap(...))`` of a ``lax.scan`` over the T steps, float64, CPU,
    on the whole workload; compile time is excluded from the rate and reported apart.
    Skipped when JAX is not importable (``pip install jax``; not a dependency).

  Each baseline's final positions are compared with the engine's (``max |Δx|``), so
  the three compute the same trajectories.
* ``claims``: verified cases per second of each claim on each built-in optimizer under
  the ``ci`` Hypothesis profile (``check_optimizer(name, profile="ci", claims=[c])``).
* ``suite``: wall time of ``python -m pytest tests`` under ``CI=true`` (``ci``) and with
  ``--hypothesis-profile=deep``, with ``-n 2`` and without, each in a subprocess.

Usage::

    python benchmarks/bench.py                 # full issue workload (engine, claims, ci suite)
    python benchmarks/bench.py --quick         # smoke run, well under a minute
    python benchmarks/bench.py --sections engine --dims 10
    python benchmarks/bench.py --sections suite --suite deep --suite-timeout 2400

Nothing here asserts a time: the script measures and reports.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

#: hyperparameters of each built-in optimizer in the engine workload; all are stable on
#: the planted spectra below, so nothing converges or escapes within the budget
HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "gradient_descent": {"lr": 0.1},
    "heavy_ball": {"lr": 0.1, "momentum": 0.5},
    "nesterov": {"lr": 0.1, "momentum": 0.5},
    "usam": {"lr": 0.1, "rho": 0.05},
    "two_step_usam": {"lr": 0.1, "rho": 0.05},
    "hessian_usam": {"lr": 0.1, "rho": 0.05},
    "penalty_sam": {"lr": 0.1, "rho": 0.05},
    "sam": {"lr": 0.1, "rho": 0.05},
}

#: the non-quadratic terms of every benchmark function (all C^∞, so the Hessian-in-map
#: optimizers are inside the theorem's hypotheses too)
TERMS = ("cube", "quartic", "rational", "sqrt")
SPECTRUM = (0.05, 2.0)  # eigenvalues drawn in this range: slow, stable contraction
START_RADIUS = 0.1  # initial points: x̄ + START_RADIUS · N(0, I)/√d
MU = 0.05
SEED = 20251009

#: environment variables that fix the number of BLAS threads (numpy's and scipy's OpenBLAS)
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ORIG_ENV = "DYNVERIFY_BENCH_ORIGINAL_ENV"

CLAIM_NAMES = ("filter_agrees", "unstable_no_convergence", "stable_converges",
               "convergence_filters", "metamorphic")


# -- the workload ------------------------------------------------------------------------

def planted_function(d: int, seed: int = SEED) -> Any:
    """A planted function on ℝᵈ: random rotation, spectrum in SPECTRUM, four terms, μ‖u‖⁴."""
    from dynverify.planted import PlantedFunction

    rng = np.random.default_rng([seed, d])
    spectrum = np.sort(rng.uniform(*SPECTRUM, size=d))
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    Q = Q * np.sign(np.diag(R))
    x_star = rng.uniform(-1.0, 1.0, size=d)
    terms = []
    for name in TERMS:
        a = rng.standard_normal(d)
        terms.append((name, float(rng.uniform(-0.5, 0.5)), a / np.linalg.norm(a)))
    return PlantedFunction(spectrum, x_star=x_star, rotation=Q, terms=terms, mu=MU)


def initial_points(f: Any, B: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng([seed, f.dim, B, 1])
    return (np.asarray(f.x_star) + START_RADIUS * rng.standard_normal((B, f.dim))
            / math.sqrt(f.dim))


def _phi_formulas(xp: Any) -> dict[str, Callable[[Any], Any]]:
    """The planted terms in a numpy-like module (autograd.numpy or jax.numpy)."""

    def sqrt_term(t: Any) -> Any:
        s = xp.sqrt(1.0 + t * t)
        return (t * t / (s + 1.0)) ** 2

    return {
        "cube": lambda t: t**3,
        "quartic": lambda t: t**4,
        "rational": lambda t: t**4 / (1.0 + t * t),
        "sqrt": sqrt_term,
    }


def scalar_function(f: Any, xp: Any) -> Callable[[Any], Any]:
    """f as a scalar function of one point x ∈ ℝᵈ, written with ``xp`` (what a user writes)."""
    H = f.hessian_at_star
    xs = np.asarray(f.x_star, dtype=float)
    forms = _phi_formulas(xp)
    terms = [(forms[t.phi], float(t.c), np.asarray(t.a, dtype=float)) for t in f.terms]
    mu = float(f.mu)

    def fun(x: Any) -> Any:
        u = x - xs
        r2 = xp.dot(u, u)
        out = 0.5 * xp.dot(u, xp.dot(H, u)) + mu * r2 * r2
        for phi, c, a in terms:
            out = out + c * phi(xp.dot(a, u))
        return out

    return fun


def scalar_steps(name: str, hp: dict[str, float], grad: Callable[[Any], Any],
                 hvp: Callable[[Any, Any], Any], xp: Any) -> tuple[Callable[[Any], Any],
                                                                  Callable[[Any], Any]]:
    """(init, step) of a built-in optimizer for one trajectory, written out by hand.

    The state is (x,) or (x, x_prev), as in :mod:`dynverify.optimizers`.
    """
    a = hp["lr"]
    b = hp.get("momentum", 0.0)
    r = hp.get("rho", 0.0)

    def single(x: Any) -> Any:
        return (x,)

    def pair(x: Any) -> Any:
        return (x, x)

    if name == "gradient_descent":
        return single, lambda s: (s[0] - a * grad(s[0]),)
    if name == "heavy_ball":
        return pair, lambda s: (s[0] - a * grad(s[0]) + b * (s[0] - s[1]), s[0])
    if name == "nesterov":
        def nest(s: Any) -> Any:
            y = s[0] + b * (s[0] - s[1])
            return (y - a * grad(y), s[0])
        return pair, nest
    if name == "usam":
        return single, lambda s: (s[0] - a * grad(s[0] + r * grad(s[0])),)
    if name == "two_step_usam":
        def two(s: Any) -> Any:
            y1 = s[0] + r * grad(s[0])
            y2 = y1 + r * grad(y1)
            return (s[0] - a * grad(y2),)
        return single, two
    if name == "hessian_usam":
        def hus(s: Any) -> Any:
            g = grad(s[0])
            return (s[0] - a * grad(s[0] + r * hvp(s[0], g)),)
        return single, hus
    if name == "penalty_sam":
        def pen(s: Any) -> Any:
            g = grad(s[0])
            return (s[0] - a * (g + r * hvp(s[0], g)),)
        return single, pen
    if name == "sam":
        def sam(s: Any) -> Any:
            g = grad(s[0])
            n = xp.sqrt(xp.dot(g, g))
            e = xp.where(n > 0, g / xp.where(n > 0, n, 1.0), 0.0)
            return (s[0] - a * grad(s[0] + r * e),)
        return single, sam
    raise ValueError(f"no hand-written step for {name!r}")


# -- engine and baselines -----------------------------------------------------------------

def engine_run(name: str, f: Any, X0: np.ndarray, T: int) -> Any:
    from dynverify.engine import run
    from dynverify.optimizers import BUILTINS

    opt = BUILTINS[name](**HYPERPARAMETERS[name])
    # tol tiny and escape radius huge: every row runs the whole budget of T steps
    return run(opt, f, X0, target=np.asarray(f.x_star), tol=1e-300, max_steps=T,
               escape_radius=1e100)


def autograd_loop(name: str, f: Any, X0: np.ndarray, T: int) -> np.ndarray:
    """The naive baseline: one Python loop per trajectory, autograd for ∇f and ∇²f·v."""
    import autograd
    import autograd.numpy as anp

    fun = scalar_function(f, anp)
    grad = autograd.grad(fun)
    hvp = autograd.hessian_vector_product(fun)
    init, step = scalar_steps(name, HYPERPARAMETERS[name], grad, hvp, anp)
    out = np.empty_like(X0)
    for i in range(X0.shape[0]):
        s = init(X0[i].copy())
        for _ in range(T):
            new = step(s)
            # the convergence test a user would write (never true on this workload)
            dz = math.sqrt(sum(float(np.dot(n - o, n - o)) for n, o in zip(new, s)))
            s = new
            if dz < 1e-300:
                break
        out[i] = s[0]
    return out


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def jax_program(name: str, f: Any, T: int) -> Callable[[Any], Any]:
    """jit(vmap(scan)) of the same optimizer on the same function, float64, CPU."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    fun = scalar_function(f, jnp)
    grad = jax.grad(fun)

    def hvp(x: Any, v: Any) -> Any:
        return jax.jvp(grad, (x,), (v,))[1]

    init, step = scalar_steps(name, HYPERPARAMETERS[name], grad, hvp, jnp)

    def one(x0: Any) -> Any:
        def body(s: Any, _: Any) -> Any:
            new = step(s)
            dz = jnp.sqrt(sum(jnp.dot(n - o, n - o) for n, o in zip(new, s)))
            return new, dz

        s, dzs = jax.lax.scan(body, init(x0), None, length=T)
        return s[0], dzs[-1]

    return jax.jit(jax.vmap(one))


def bench_engine(names: list[str], dims: list[int], B: int, T: int, *, repeat: int,
                 sub_B: int, sub_T: int, baselines: bool) -> list[dict[str, Any]]:
    rows = []
    use_jax = baselines and jax_available()
    for d in dims:
        f = planted_function(d)
        X0 = initial_points(f, B)
        for name in names:
            prog = Xj = None
            compile_s = math.nan
            if use_jax:
                import jax

                prog = jax_program(name, f, T)
                Xj = jax.numpy.asarray(X0)
                t0 = time.perf_counter()
                prog(Xj)[0].block_until_ready()
                compile_s = time.perf_counter() - t0  # first call: trace + compile + run
            engine_run(name, f, X0[:10], min(T, 20))  # warm-up (first calls, caches)
            Xs = X0[:sub_B]
            res = engine_run(name, f, X0, T)
            progs: dict[str, Callable[[], Any]] = {
                "engine": lambda name=name, f=f, X0=X0: engine_run(name, f, X0, T)}
            if prog is not None:
                progs["jax"] = lambda prog=prog, Xj=Xj: prog(Xj)[0].block_until_ready()
            if baselines:
                autograd_loop(name, f, Xs[:1], 2)  # warm-up
                # the autograd subset is timed as often as the engine, interleaved with it
                progs["autograd"] = (lambda name=name, f=f, Xs=Xs:
                                     autograd_loop(name, f, Xs, sub_T))
            t = interleaved(progs, repeat)
            executed = int(res.steps.sum())
            counts = {s.name.lower(): n for s, n in res.counts().items() if n}
            secs = t["engine"]["cpu_min"]
            row: dict[str, Any] = {
                "optimizer": name, "d": d, "B": B, "T": T, "point_steps": executed,
                "statuses": counts, "seconds": secs, "rate": executed / secs,
                "times": t,
            }
            if baselines:
                x_ag = autograd_loop(name, f, Xs, sub_T)
                ref = engine_run(name, f, Xs, sub_T).x
                ag = t["autograd"]
                row["autograd"] = {
                    "B": sub_B, "T": sub_T, "seconds": ag["cpu_min"],
                    "rate": sub_B * sub_T / ag["cpu_min"], "extrapolated": True,
                    "max_abs_dx": float(np.max(np.abs(x_ag - ref))),
                }
                row["vs_autograd"] = row["rate"] / row["autograd"]["rate"]
                row["vs_autograd_median"] = ((executed / t["engine"]["cpu_median"])
                                             / (sub_B * sub_T / ag["cpu_median"]))
            if prog is not None:
                out = prog(Xj)[0]
                j_secs = t["jax"]["cpu_min"]  # all of XLA's threads: if anything, against JAX
                row["jax"] = {
                    "B": B, "T": T, "seconds": j_secs, "rate": B * T / j_secs,
                    "compile_seconds": max(compile_s - t["jax"]["wall_min"], 0.0),
                    "max_abs_dx": float(np.max(np.abs(np.asarray(out) - res.x))),
                }
                row["vs_jax"] = row["rate"] / row["jax"]["rate"]
            rows.append(row)
            _progress(f"engine {name} d={d}: {row['rate'] / 1e6:.2f} M pt-steps/s"
                      + (f", {row['vs_autograd']:.0f}x autograd" if "vs_autograd" in row else "")
                      + (f", {row['vs_jax']:.2f}x jax" if "vs_jax" in row else ""))
    return rows


def bench_scaling(name: str, d: int, batches: list[int], T: int, *,
                  repeat: int) -> list[dict[str, Any]]:
    """Where the time goes as B grows: the engine, the bare update loop, and JAX.

    The bare loop is ``state = opt.step(state, f)`` T times with no status bookkeeping:
    the part of the engine's cost that is the optimizer and the function themselves.
    """
    from dynverify.optimizers import BUILTINS

    opt = BUILTINS[name](**HYPERPARAMETERS[name])
    f = planted_function(d)
    use_jax = jax_available()
    rows = []
    for B in batches:
        X0 = initial_points(f, B)
        engine_run(name, f, X0[:10], min(T, 20))  # warm-up
        prog = jax_program(name, f, T) if use_jax else None
        if prog is not None:
            import jax

            Xj = jax.numpy.asarray(X0)
            prog(Xj)[0].block_until_ready()
        e = bare = j = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            engine_run(name, f, X0, T)
            e = min(e, time.perf_counter() - t0)
            t0 = time.perf_counter()
            state = opt.init(X0)
            for _ in range(T):
                state = opt.step(state, f)
            bare = min(bare, time.perf_counter() - t0)
            if prog is not None:
                t0 = time.perf_counter()
                prog(Xj)[0].block_until_ready()
                j = min(j, time.perf_counter() - t0)
        n = B * T
        row = {"optimizer": name, "d": d, "B": B, "T": T, "engine_us": 1e6 * e / n,
               "bare_loop_us": 1e6 * bare / n,
               "jax_us": 1e6 * j / n if prog is not None else None}
        row["vs_jax"] = row["jax_us"] / row["engine_us"] if prog is not None else None
        rows.append(row)
        _progress(f"scaling {name} d={d} B={B}: engine {row['engine_us']:.3g} µs, "
                  f"bare {row['bare_loop_us']:.3g} µs, jax {row['jax_us']} µs per point-step")
    return rows


def scaling_table(rows: list[dict[str, Any]]) -> str:
    return tabulate([[r["optimizer"], r["d"], r["B"], r["T"], f"{r['engine_us']:.3g}",
                      f"{r['bare_loop_us']:.3g}",
                      f"{r['jax_us']:.3g}" if r["jax_us"] is not None else "—",
                      f"{r['vs_jax']:.2f}×" if r["vs_jax"] is not None else "—"]
                     for r in rows],
                    headers=["optimizer", "d", "B", "T", "engine µs/pt-step",
                             "bare step loop µs/pt-step", "jax µs/pt-step", "engine vs jax"],
                    disable_numparse=True)


def engine_table(rows: list[dict[str, Any]]) -> str:
    def us(rate: float) -> str:
        return f"{1e6 / rate:.3g}"

    table = []
    for r in rows:
        ag, jx = r.get("autograd"), r.get("jax")
        table.append([
            r["optimizer"], r["d"], f"{r['B']}×{r['T']}", r["point_steps"],
            f"{r['rate'] / 1e6:.2f}", us(r["rate"]),
            us(ag["rate"]) if ag else "—", f"{r['vs_autograd']:.0f}×" if ag else "—",
            us(jx["rate"]) if jx else "—", f"{r['vs_jax']:.2f}×" if jx else "—",
            f"{jx['compile_seconds']:.2f}" if jx else "—",
        ])
    return tabulate(table, headers=[
        "optimizer", "d", "B×T", "point-steps run", "dynverify M/s", "µs/pt-step",
        "autograd µs/pt-step*", "vs autograd", "jax µs/pt-step", "vs jax", "jax compile s",
    ], disable_numparse=True, colalign=("left",) + ("right",) * 10)


# -- timing helpers -----------------------------------------------------------------------

def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _stats(walls: list[float], cpus: list[float], per: float = 1.0) -> dict[str, Any]:
    """min and median of wall and CPU times, divided by ``per`` (e.g. point-steps)."""
    return {"n": len(walls), "wall_min": min(walls) / per,
            "wall_median": float(np.median(walls)) / per,
            "cpu_min": min(cpus) / per, "cpu_median": float(np.median(cpus)) / per}


def interleaved(programs: dict[str, Callable[[], Any]], repeat: int,
                per: float = 1.0) -> dict[str, dict[str, Any]]:
    """Time every program ``repeat`` times, round-robin (a, b, c, a, b, c, …), so that all
    of them see the same machine load; min and median of wall and CPU time each."""
    walls: dict[str, list[float]] = {k: [] for k in programs}
    cpus: dict[str, list[float]] = {k: [] for k in programs}
    for _ in range(repeat):
        for k, fn in programs.items():
            w, c, _ = _timed(fn)
            walls[k].append(w)
            cpus[k].append(c)
    return {k: _stats(walls[k], cpus[k], per) for k in programs}


# -- engine against hand-written fused numpy, by batch size --------------------------------

def fused_numpy(name: str, f: Any, X0: np.ndarray, T: int) -> np.ndarray:
    """The update written by hand in numpy, batched, the planted gradient inlined: what a
    performance-minded numpy user writes (no status bookkeeping at all)."""
    H = f.hessian_at_star
    xs = np.asarray(f.x_star, dtype=float)
    A = np.array([t.a for t in f.terms], dtype=float)
    At = A.T.copy()
    c = np.array([t.c for t in f.terms], dtype=float)
    assert tuple(t.phi for t in f.terms) == TERMS
    fourmu = 4.0 * f.mu
    hp = HYPERPARAMETERS[name]
    lr = hp["lr"]

    def grad(X: np.ndarray) -> np.ndarray:
        U = X - xs
        P = U @ At
        D = np.empty_like(P)
        t = P[:, 0]
        D[:, 0] = 3.0 * t * t
        t = P[:, 1]
        D[:, 1] = 4.0 * t * t * t
        t = P[:, 2]
        t2 = t * t
        q = 1.0 + t2
        D[:, 2] = 2.0 * t2 * t * (2.0 + t2) / (q * q)
        t = P[:, 3]
        s = np.sqrt(1.0 + t * t)
        D[:, 3] = 2.0 * t * t * t / (s * (s + 1.0))
        r2 = np.einsum("ij,ij->i", U, U)
        return U @ H + (D * c) @ A + (fourmu * r2)[:, None] * U

    x = X0.copy()
    if name == "gradient_descent":
        for _ in range(T):
            x = x - lr * grad(x)
    elif name == "heavy_ball":
        b, prev = hp["momentum"], X0.copy()
        for _ in range(T):
            x, prev = x - lr * grad(x) + b * (x - prev), x
    else:
        raise ValueError(f"no fused numpy update for {name!r}")
    return x


def bench_batch(names: list[str], d: int, batches: list[int], point_steps: int, *,
                repeat: int) -> list[dict[str, Any]]:
    """Engine, hand-written fused numpy and JAX at each batch size, interleaved.

    T = max(50, point_steps // B) steps (at most 500), so each timing covers about the same
    number of point-steps; µs per point-step, min and median of ``repeat`` runs each.
    """
    f = planted_function(d)
    use_jax = jax_available()
    rows = []
    for name in names:
        for B in batches:
            T = int(min(500, max(50, point_steps // B)))
            X0 = initial_points(f, B)
            progs: dict[str, Callable[[], Any]] = {
                "engine": lambda name=name, X0=X0, T=T: engine_run(name, f, X0, T),
                "numpy": lambda name=name, X0=X0, T=T: fused_numpy(name, f, X0, T),
            }
            res = engine_run(name, f, X0, T)  # warm-up, and the point-steps actually run
            assert int(res.steps.sum()) == B * T, "a row finished early: not a fixed workload"
            dx = float(np.max(np.abs(fused_numpy(name, f, X0, T) - res.x)))
            if use_jax:
                import jax

                prog = jax_program(name, f, T)
                Xj = jax.numpy.asarray(X0)
                prog(Xj)[0].block_until_ready()  # compile
                progs["jax"] = lambda prog=prog, Xj=Xj: prog(Xj)[0].block_until_ready()
            t = interleaved(progs, repeat, per=B * T / 1e6)  # µs per point-step
            row: dict[str, Any] = {"optimizer": name, "d": d, "B": B, "T": T,
                                   "max_abs_dx_numpy": dx, **{k: v for k, v in t.items()}}
            row["engine_vs_numpy"] = t["engine"]["cpu_min"] / t["numpy"]["cpu_min"]
            row["engine_vs_numpy_median"] = (t["engine"]["cpu_median"]
                                             / t["numpy"]["cpu_median"])
            if use_jax:
                # CPU time of all of XLA's threads: if anything, in JAX's disfavour
                row["engine_vs_jax"] = t["engine"]["cpu_min"] / t["jax"]["cpu_min"]
            rows.append(row)
            _progress(f"batch {name} B={B}: engine {t['engine']['cpu_min']:.3g} µs, numpy "
                      f"{t['numpy']['cpu_min']:.3g} µs, ratio {row['engine_vs_numpy']:.2f}"
                      + (f", jax {t['jax']['cpu_min']:.3g} µs" if use_jax else ""))
    return rows


def batch_table(rows: list[dict[str, Any]], fmt: str = "simple") -> str:
    def cell(r: dict[str, Any], k: str) -> str:
        if k not in r:
            return "—"
        return f"{r[k]['cpu_min']:.3g} / {r[k]['cpu_median']:.3g}"

    def vs_jax(r: dict[str, Any]) -> str:  # CPU min (files before this change kept wall)
        return (f"{r['engine']['cpu_min'] / r['jax']['cpu_min']:.1f}×" if "jax" in r
                else "—")

    return tabulate([[r["optimizer"], r["d"], r["B"], r["T"], cell(r, "engine"),
                      cell(r, "numpy"), f"{r['engine_vs_numpy']:.2f}× "
                      f"({r['engine_vs_numpy_median']:.2f}×)", cell(r, "jax"),
                      vs_jax(r)]
                     for r in rows],
                    headers=["optimizer", "d", "B", "T", "engine µs (min/med)",
                             "fused numpy µs (min/med)", "engine ÷ numpy (median)",
                             "JAX µs (min/med)", "engine time ÷ JAX time"],
                    tablefmt=fmt, disable_numparse=True)


# -- `dynverify check` against a baseline checkout, with a reference workload ---------------

def reference_workload() -> float:
    """A fixed pure-numpy loop (no dynverify): its time measures the machine's speed now."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((10, 10)) / 10
    x = rng.standard_normal((16, 10))
    acc = 0.0
    for _ in range(100_000):
        x = np.tanh(x @ M + 0.1)
        acc += float(x[0, 0])
    return acc


def _verdict_counts(run_root: Path) -> dict[str, dict[str, int]]:
    """{"optimizer/claim": {outcome: count}} from the cases-*.jsonl of the newest run."""
    runs = sorted(p for p in run_root.iterdir() if p.is_dir())
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(runs[-1].glob("cases-*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            key = f"{rec['optimizer']['name']}/{rec['claim']}"
            c = counts.setdefault(key, {})
            c[rec["outcome"]] = c.get(rec["outcome"], 0) + 1
    return counts


def _run_check(tree: Path | None, profile: str, optimizers: list[str], reports: Path,
               seed: int | None = None) -> tuple[float, float, int, dict[str, dict[str, int]]]:
    """`python -m dynverify check` of ``tree`` (None: this checkout) in a subprocess:
    (wall s, CPU s of the child, return code, verdict counts)."""
    import resource

    env = os.environ.copy()
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-m", "dynverify", "check", "--profile", profile, "--quiet",
           "--reports", str(reports), *(["--seed", str(seed)] if seed is not None else []),
           *optimizers]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          cwd=reports)  # one Hypothesis database per tree
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, _verdict_counts(reports)


def bench_check(baseline: Path | None, profile: str, optimizers: list[str], repeat: int,
                workdir: Path, seed: int | None = None) -> dict[str, Any]:
    """``dynverify check`` of this checkout and of ``baseline``, and the reference workload,
    interleaved ``repeat`` times; verdict counts compared between the two trees."""
    trees: dict[str, Path | None] = {"current": None}
    if baseline is not None:
        trees["baseline"] = baseline
    walls: dict[str, list[float]] = {k: [] for k in [*trees, "reference"]}
    cpus: dict[str, list[float]] = {k: [] for k in walls}
    verdicts: dict[str, Any] = {}
    rcs: dict[str, list[int]] = {k: [] for k in trees}
    for i in range(repeat):
        for k, tree in trees.items():
            reports = workdir / f"reports-{k}"
            reports.mkdir(parents=True, exist_ok=True)
            w, c, rc, counts = _run_check(tree, profile, optimizers, reports, seed)
            walls[k].append(w)
            cpus[k].append(c)
            rcs[k].append(rc)
            verdicts[k] = counts
            _progress(f"check {profile} {k} #{i + 1}: {w:.1f} s wall, {c:.1f} s CPU, rc={rc}")
        w, c, _ = _timed(reference_workload)
        walls["reference"].append(w)
        cpus["reference"].append(c)
    out: dict[str, Any] = {"profile": profile, "optimizers": optimizers or "all built-ins",
                           "seed": seed,
                           "baseline": str(baseline) if baseline else None,
                           "times": {k: _stats(walls[k], cpus[k]) for k in walls},
                           "returncodes": rcs, "verdicts": verdicts}
    t = out["times"]
    for k in trees:
        out[f"{k}_in_reference_units"] = t[k]["cpu_min"] / t["reference"]["cpu_min"]
    if baseline is not None:
        out["speedup_cpu_min"] = t["baseline"]["cpu_min"] / t["current"]["cpu_min"]
        out["speedup_cpu_median"] = t["baseline"]["cpu_median"] / t["current"]["cpu_median"]
        out["speedup_wall_median"] = t["baseline"]["wall_median"] / t["current"]["wall_median"]
        out["verdicts_identical"] = verdicts["baseline"] == verdicts["current"]
    return out


def check_table(res: dict[str, Any], fmt: str = "simple") -> str:
    rows = [[k, f"{v['wall_min']:.1f}", f"{v['wall_median']:.1f}", f"{v['cpu_min']:.1f}",
             f"{v['cpu_median']:.1f}",
             f"{res[f'{k}_in_reference_units']:.1f}" if f"{k}_in_reference_units" in res
             else "1"]
            for k, v in res["times"].items()]
    return tabulate(rows, headers=["program", "wall min s", "wall median s", "CPU min s",
                                   "CPU median s", "CPU ÷ reference"], tablefmt=fmt,
                    disable_numparse=True)


# -- claim throughput ---------------------------------------------------------------------

def bench_claims(names: list[str], claims: list[str], profile: str) -> list[dict[str, Any]]:
    try:
        from dynverify.check import check_optimizer
    except Exception as exc:  # noqa: BLE001 -- report the section as pending
        _progress(f"claims: check_optimizer unavailable: {exc}")
        return [{"optimizer": n, "claim": c, "pending": f"{type(exc).__name__}: {exc}"}
                for n in names for c in claims]
    rows = []
    for name in names:
        for claim in claims:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                res = check_optimizer(name, profile=profile, claims=[claim],
                                      reports=None).results[0]
            except Exception as exc:  # noqa: BLE001 -- one broken claim must not stop the rest
                rows.append({"optimizer": name, "claim": claim,
                             "pending": f"{type(exc).__name__}: {exc}"[:300],
                             "seconds": time.perf_counter() - t0})
                _progress(f"claims {name}/{claim}: pending ({type(exc).__name__})")
                continue
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            cases = int(sum(res.counts.values()))
            counts = {str(getattr(k, "value", k)): int(v) for k, v in res.counts.items()}
            decided = counts.get("pass", 0) + counts.get("counterexample", 0)
            row = {"optimizer": name, "claim": claim, "profile": profile, "cases": cases,
                   "counts": counts, "seconds": wall, "cpu_seconds": cpu,
                   "decided": decided,
                   "cpu_ms_per_decided": 1e3 * cpu / decided if decided else None,
                   "claim_seconds": res.seconds,
                   "cases_per_second": cases / wall if wall > 0 else math.nan,
                   "error": res.error, "counterexample": res.counterexample is not None}
            if res.counterexample is not None:  # what was found (shrinking time is included)
                cex = res.counterexample
                row["counterexample_summary"] = {
                    "reason": cex["verdict"]["reason"], "function": cex.get("function_repr"),
                    "hyperparameters": cex["optimizer"]["hyperparameters"]}
            if res.error:
                row["pending"] = res.error[:300]
            rows.append(row)
            _progress(f"claims {name}/{claim}: {cases} cases in {wall:.2f} s"
                      + (f" (error: {res.error[:80]})" if res.error else ""))
    return rows


def claims_table(rows: list[dict[str, Any]]) -> str:
    table = []
    for r in rows:
        if "cases" not in r:
            table.append([r["optimizer"], r["claim"], "—", "—", "—", "pending: "
                          + r["pending"][:60]])
            continue
        c = r["counts"]
        note = ("error: " + r["error"][:60]) if r.get("error") else (
            "counterexample" if r["counterexample"] else "")
        per = r.get("cpu_ms_per_decided")
        table.append([r["optimizer"], r["claim"], r["cases"],
                      f"{c.get('pass', 0)}/{c.get('counterexample', 0)}/"
                      f"{c.get('inconclusive', 0)}",
                      f"{r['seconds']:.2f}", f"{r.get('cpu_seconds', math.nan):.2f}",
                      f"{per:.0f}" if per is not None else "—", note])
    return tabulate(table, headers=["optimizer", "claim", "cases", "pass/cex/inconcl.",
                                    "wall s", "CPU s", "CPU ms per decided case", "note"],
                    disable_numparse=True)


# -- suite time ---------------------------------------------------------------------------

def _pytest_summary(text: str) -> str:
    lines = [ln.strip("= ") for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.search(r"\b(passed|failed|error|errors|skipped|no tests ran)\b", ln):
            return ln
    return lines[-1] if lines else ""


def bench_suite(profiles: list[str], workers: list[int], timeout: float,
                extra: list[str]) -> list[dict[str, Any]]:
    rows = []
    for profile in profiles:
        for n in workers:
            cmd = [sys.executable, "-m", "pytest", "tests", "-q", *extra]
            env = dict(_original_environ(), CI="true")
            if profile != "ci":
                cmd.append(f"--hypothesis-profile={profile}")
            if n > 1:
                cmd += ["-n", str(n)]
            shown = ("CI=true " + " ".join(["python", *cmd[1:]]))
            _progress(f"suite: {shown} (timeout {timeout:.0f} s)")
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                      timeout=timeout, check=False)
                wall = time.perf_counter() - t0
                summary, rc = _pytest_summary(proc.stdout + proc.stderr), proc.returncode
            except subprocess.TimeoutExpired:
                wall, summary, rc = time.perf_counter() - t0, f"timeout after {timeout:.0f} s", None
            rows.append({"profile": profile, "workers": n, "command": shown, "seconds": wall,
                         "returncode": rc, "summary": summary})
            _progress(f"suite {profile} -n {n}: {wall:.1f} s, rc={rc}: {summary}")
    return rows


def _original_environ() -> dict[str, str]:
    """The environment the script was started with (before ``--blas-threads`` changed it)."""
    env = dict(os.environ)
    saved = env.pop(_ORIG_ENV, None)
    if saved is not None:
        for k, v in json.loads(saved).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def _pin_blas_threads(n: int) -> None:
    """Re-execute the script with the BLAS thread variables set to n (they are read when
    numpy loads OpenBLAS, so they cannot be changed in a running process)."""
    if all(os.environ.get(k) == str(n) for k in BLAS_VARS):
        return
    env = dict(os.environ)
    env.setdefault(_ORIG_ENV, json.dumps({k: os.environ.get(k) for k in BLAS_VARS}))
    env.update({k: str(n) for k in BLAS_VARS})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]],
              env)


def suite_table(rows: list[dict[str, Any]]) -> str:
    return tabulate([[r["profile"], r["workers"], f"{r['seconds']:.1f}",
                      f"{r['seconds'] / 60:.2f}", r["returncode"], r["summary"]] for r in rows],
                    headers=["profile", "workers", "seconds", "minutes", "rc", "pytest summary"],
                    disable_numparse=True)


# -- environment, targets, main -----------------------------------------------------------

def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        **{k: os.environ.get(k) for k in BLAS_VARS},
        "suite_environment": {k: _original_environ().get(k) for k in BLAS_VARS},
        "load_average_at_start": _load(),
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.*)", cpu)
        info["cpu"] = m.group(1).strip() if m else None
    except OSError:
        info["cpu"] = platform.processor() or None
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads",
                                               "threading_layer", "architecture")}
                        for p in threadpool_info()]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    try:
        import jax

        info["jax"] = jax.__version__
    except ImportError:
        info["jax"] = None
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True, check=False
                                     ).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "dynverify", "strategies"],
                               cwd=ROOT, capture_output=True, text=True, check=False).stdout
        info["git_dirty"] = bool(dirty.strip())
    except OSError:
        info["git"] = None
    return info


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on what was measured (reported, never asserted)."""
    out = []
    at10 = [r for r in result.get("engine", []) if r["d"] == 10]
    if at10 and all("vs_autograd" in r for r in at10):
        worst = min(at10, key=lambda r: r["vs_autograd"])
        out.append({"target": "engine ≥ 1000× autograd loop at d=10",
                    "measured": f"min {worst['vs_autograd']:.0f}× ({worst['optimizer']}), "
                                f"B×T={worst['B']}×{worst['T']}",
                    "met": worst["vs_autograd"] >= 1000})
    if at10 and all("vs_jax" in r for r in at10):
        def cpu_vs_jax(r: dict[str, Any]) -> dict[str, Any]:  # CPU time, like the engine
            t = r.get("times", {})
            if "jax" not in t:
                return r
            return dict(r, vs_jax=r["rate"] / (r["jax"]["B"] * r["jax"]["T"]
                                               / t["jax"]["cpu_min"]))
        worst = min((cpu_vs_jax(r) for r in at10), key=lambda r: r["vs_jax"])
        out.append({"target": "engine within 1.5× of JAX at d=10 (ratio ≥ 0.667)",
                    "measured": f"min {worst['vs_jax']:.2f}× ({worst['optimizer']})",
                    "met": worst["vs_jax"] >= 1 / 1.5})
    batch = result.get("batch", [])
    if batch:
        worst = max(batch, key=lambda r: r["engine_vs_numpy"])
        out.append({"target": "engine within 2× of fused numpy at every B (issue 15)",
                    "measured": f"max {worst['engine_vs_numpy']:.2f}× (CPU min; "
                                f"{worst['optimizer']}, B={worst['B']})",
                    "met": all(r["engine_vs_numpy"] <= 2.0 for r in batch)})
    chk = result.get("check")
    if chk and chk.get("baseline") and chk["profile"] == "ci":
        out.append({"target": "`dynverify check` (ci) ≥ 3× faster than the baseline, same "
                              "verdicts (issue 15)",
                    "measured": f"{chk['speedup_cpu_min']:.2f}× (CPU min), "
                                f"{chk['speedup_cpu_median']:.2f}× (CPU median); verdicts "
                                f"identical: {chk['verdicts_identical']}",
                    "met": chk["speedup_cpu_min"] >= 3.0 and chk["verdicts_identical"]})
    for profile, limit in (("ci", 300.0), ("deep", 1800.0)):
        rows = [r for r in result.get("suite", []) if r["profile"] == profile
                and r["workers"] == 2]
        if rows:
            r = rows[0]
            out.append({"target": f"{profile} suite < {limit / 60:.0f} min on 2 cores (-n 2)",
                        "measured": f"{r['seconds'] / 60:.2f} min, rc={r['returncode']}",
                        "met": r["returncode"] == 0 and r["seconds"] < limit})
    return out


def render_markdown(paths: list[Path]) -> str:
    """Markdown tables (for the README) of saved result files."""
    parts = []
    for path in paths:
        res = json.loads(Path(path).read_text())
        env = res["environment"]
        parts.append(f"`{res['command']}` — {res['date']}, git {env.get('git')}, "
                     f"load average {env.get('load_average_at_start')} → "
                     f"{env.get('load_average_at_end')}")
        if res.get("engine"):
            rows = []
            for r in res["engine"]:
                ag, jx = r.get("autograd"), r.get("jax")
                if jx and "jax" in r.get("times", {}):  # CPU time, like the engine
                    jx = dict(jx, rate=jx["B"] * jx["T"] / r["times"]["jax"]["cpu_min"])
                    r = dict(r, vs_jax=r["rate"] / jx["rate"])
                rows.append([r["optimizer"], r["d"], f"{1e6 / r['rate']:.3g}",
                             f"{1e6 / ag['rate']:.3g}" if ag else "—",
                             f"{r['vs_autograd']:,.0f}×" if ag else "—",
                             (f"{r['vs_autograd_median']:,.0f}×"
                              if "vs_autograd_median" in r else "—"),
                             f"{1e6 / jx['rate']:.3g}" if jx else "—",
                             f"{r['vs_jax']:.2f}×" if jx else "—",
                             f"{jx['compile_seconds']:.2f}" if jx else "—"])
            w = res["workload"]
            parts.append(f"Engine, B×T = {w['B']}×{w['T']}, µs per point-step (CPU time, "
                         f"min of {w['repeat']} interleaved runs; JAX: CPU time of all its "
                         f"threads, compile excluded). The autograd loop runs on "
                         f"{w['autograd_subset']['B']}×{w['autograd_subset']['T']} "
                         f"point-steps, timed as often as the engine, interleaved with it."
                         "\n\n"
                         + tabulate(rows, headers=["optimizer", "d", "dynverify µs",
                                                   "autograd µs", "vs autograd (min)",
                                                   "vs autograd (median)", "JAX µs",
                                                   "dynverify vs JAX", "JAX compile s"],
                                    tablefmt="github", disable_numparse=True))
        if res.get("batch"):
            parts.append("Engine against the same update written by hand in fused numpy "
                         "(planted gradient inlined, no bookkeeping) and JAX "
                         "(`jit(vmap(scan))`), d = 10, µs per point-step, CPU min / median "
                         "of interleaved runs (JAX: CPU time of all its threads)\n\n"
                         + batch_table(res["batch"], "github"))
        if res.get("check"):
            c = res["check"]
            parts.append(f"`dynverify check --profile {c['profile']}` ({c['optimizers']}"
                         + (f", seed {c['seed']}" if c.get("seed") is not None else "")
                         + f"), this tree against the baseline tree `{c['baseline']}`, "
                         f"{c['times']['reference']['n']} interleaved runs each, with a "
                         "fixed pure-numpy reference workload timed between them\n\n"
                         + check_table(c, "github")
                         + ("\n\nSpeed-up over the baseline: "
                            f"**{c['speedup_cpu_min']:.2f}×** (CPU min), "
                            f"{c['speedup_cpu_median']:.2f}× (CPU median), "
                            f"{c['speedup_wall_median']:.2f}× (wall median). Verdict counts "
                            "per optimizer × claim identical in both trees: "
                            f"**{c['verdicts_identical']}**." if c.get("baseline") else ""))
        if res.get("scaling"):
            parts.append("Where the time goes (µs per point-step)\n\n" + tabulate(
                [[r["optimizer"], r["d"], r["B"], r["T"], f"{r['engine_us']:.3g}",
                  f"{r['bare_loop_us']:.3g}",
                  f"{r['jax_us']:.3g}" if r["jax_us"] is not None else "—",
                  f"{r['vs_jax']:.2f}×" if r["vs_jax"] is not None else "—"]
                 for r in res["scaling"]],
                headers=["optimizer", "d", "B", "T", "engine", "bare step loop", "JAX",
                         "engine vs JAX"], tablefmt="github", disable_numparse=True))
        if res.get("claims"):
            claims = list(dict.fromkeys(r["claim"] for r in res["claims"]))
            opts = list(dict.fromkeys(r["optimizer"] for r in res["claims"]))
            cell = {(r["optimizer"], r["claim"]): r for r in res["claims"]}

            def fmt(r: dict[str, Any] | None) -> str:
                if r is None or "cases" not in r:
                    return "pending"
                per = r.get("cpu_ms_per_decided")
                c = r["counts"]
                return (f"{per:.0f} ms" if per is not None else "—") + (
                    f" ({c.get('pass', 0)}/{c.get('counterexample', 0)}/"
                    f"{c.get('inconclusive', 0)})")
            total = sum(r.get("cases", 0) for r in res["claims"])
            cpu = sum(r.get("cpu_seconds", 0.0) for r in res["claims"])
            parts.append("CPU time per **decided** case (pass or counterexample) of each "
                         f"claim under the `ci` profile, with the pass/counterexample/"
                         f"inconclusive counts ({total} cases, {cpu:.0f} s CPU overall)\n\n"
                         + tabulate([[o, *(fmt(cell.get((o, c))) for c in claims)]
                                     for o in opts],
                                    headers=["optimizer", *claims], tablefmt="github",
                                    disable_numparse=True))
        if res.get("suite"):
            parts.append("Suite wall time\n\n" + tabulate(
                [[f"`{r['command']}`", f"{r['seconds'] / 60:.1f} min", r["summary"]]
                 for r in res["suite"]], headers=["command", "wall time", "pytest"],
                tablefmt="github", disable_numparse=True))
        tg = targets(res)  # recomputed from the data, so new targets apply to old files
        if tg:
            parts.append(tabulate([[t["target"], t["measured"], "met" if t["met"] else
                                    "**missed**"] for t in tg],
                                  headers=["target", "measured", ""], tablefmt="github"))
    return "\n\n".join(parts)


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small smoke run (B=200, T=100, d=10, one claim, no suite)")
    p.add_argument("--sections", default="engine,scaling,claims,suite",
                   help="comma-separated: engine, scaling, batch, check, claims, suite "
                        "(default: engine,scaling,claims,suite)")
    p.add_argument("--batches", default="1,16,100,1000,10000",
                   help="batch sizes of the batch section (engine vs fused numpy vs JAX)")
    p.add_argument("--batch-optimizers", default="gradient_descent,heavy_ball",
                   help="optimizers of the batch section (those with a fused numpy update)")
    p.add_argument("--baseline", default=None, metavar="DIR",
                   help="check section: a source tree of dynverify to compare with (run with "
                        "PYTHONPATH=DIR), e.g. a `git archive` of the starting commit")
    p.add_argument("--check-profile", default="ci", help="profile of the check section")
    p.add_argument("--check-optimizers", default="",
                   help="optimizers of the check section (default: all built-ins)")
    p.add_argument("--check-seed", type=int, default=None,
                   help="check section: Hypothesis seed (`dynverify check --seed`), so that "
                        "non-derandomized profiles (deep) draw the same cases in both trees")
    p.add_argument("--check-repeat", type=int, default=3,
                   help="interleaved runs of each tree in the check section (default 3)")
    p.add_argument("--optimizers", default=None, help="comma-separated built-in names")
    p.add_argument("--dims", default=None, help="comma-separated dimensions (default 2,10,50)")
    p.add_argument("--batch", type=int, default=None, help="trajectories B (default 1000)")
    p.add_argument("--steps", type=int, default=None, help="steps T (default 500)")
    p.add_argument("--repeat", type=int, default=None, help="best of N timings (default 3)")
    p.add_argument("--autograd-batch", type=int, default=None,
                   help="trajectories of the autograd baseline (default 4)")
    p.add_argument("--autograd-steps", type=int, default=None,
                   help="steps of the autograd baseline (default 100)")
    p.add_argument("--no-baselines", action="store_true", help="skip autograd and JAX")
    p.add_argument("--claims", default=None, help="comma-separated claim names (default all)")
    p.add_argument("--claim-optimizers", default=None,
                   help="optimizers of the claims section (default: all built-ins)")
    p.add_argument("--profile", default="ci", help="Hypothesis profile of the claims section")
    p.add_argument("--suite", default="ci", choices=["ci", "deep", "all"],
                   help="suite profiles to time: ci (default), deep, or all")
    p.add_argument("--workers", default="1,2", help="pytest -n values to time (1 = no -n)")
    p.add_argument("--suite-timeout", type=float, default=None,
                   help="seconds per suite run (default 900 for ci, 3600 with deep)")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments (one string)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads of this process (default 1: the engine's matrices are "
                        "small; 0 = leave the environment as is). The suite runs with the "
                        "environment the script was started with")
    p.add_argument("--render", nargs="+", default=None, metavar="JSON",
                   help="print Markdown tables of saved result files and exit")
    p.add_argument("--out", default=None, help="JSON output path (default benchmarks/results/)")
    args = p.parse_args(argv)
    q = args.quick
    args.sections = _csv(args.sections)
    bad = set(args.sections) - {"engine", "scaling", "batch", "check", "claims", "suite"}
    if bad:
        p.error(f"unknown sections {sorted(bad)}")
    if q and args.sections == ["engine", "scaling", "claims", "suite"]:
        args.sections = ["engine", "claims"]
    args.dims = [int(x) for x in _csv(args.dims)] if args.dims else ([10] if q else [2, 10, 50])
    args.batch = args.batch or (200 if q else 1000)
    args.steps = args.steps or (100 if q else 500)
    args.repeat = args.repeat or (1 if q else 3)
    args.autograd_batch = args.autograd_batch or (2 if q else 4)
    args.autograd_steps = args.autograd_steps or (30 if q else 100)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from dynverify.optimizers import BUILTINS

    args = parse_args(argv)
    if args.render:
        print(render_markdown([Path(p) for p in args.render]))
        return {}
    if args.blas_threads > 0 and argv is None:
        _pin_blas_threads(args.blas_threads)
    # the engine sections cover the maps written out by hand for autograd, JAX and numpy
    names = _csv(args.optimizers) if args.optimizers else list(HYPERPARAMETERS)
    unknown = set(names) - set(BUILTINS)
    if unknown:
        raise SystemExit(f"unknown optimizers {sorted(unknown)}; known: {', '.join(BUILTINS)}")
    shown = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/bench.py", *shown])
    result: dict[str, Any] = {
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "workload": {"seed": SEED, "dims": args.dims, "B": args.batch, "T": args.steps,
                     "repeat": args.repeat, "spectrum_range": SPECTRUM, "terms": TERMS,
                     "mu": MU, "start_radius": START_RADIUS,
                     "hyperparameters": {n: HYPERPARAMETERS[n] for n in names},
                     "autograd_subset": {"B": args.autograd_batch, "T": args.autograd_steps}},
    }
    stem = ("quick" if args.quick else "full") + "-" + "-".join(args.sections)
    if "suite" in args.sections:
        stem += f"-{args.suite}"
    out = Path(args.out) if args.out else RESULTS / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    blocks = []

    def save() -> None:
        result["targets"] = targets(result)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    if "engine" in args.sections:
        rows = bench_engine(names, args.dims, args.batch, args.steps, repeat=args.repeat,
                            sub_B=args.autograd_batch, sub_T=args.autograd_steps,
                            baselines=not args.no_baselines)
        result["engine"] = rows
        save()
        blocks.append("Engine throughput (point-steps = trajectories × steps actually run; "
                      f"best of {args.repeat})\n" + engine_table(rows)
                      + f"\n* autograd: measured on {args.autograd_batch} trajectories × "
                        f"{args.autograd_steps} steps, extrapolated per point-step")
    if "scaling" in args.sections:
        rows = bench_scaling("gradient_descent", 10, [100, 1000, 10000], 200,
                             repeat=args.repeat)
        result["scaling"] = rows
        save()
        blocks.append("Where the time goes (gradient_descent, d=10, T=200)\n"
                      + scaling_table(rows))
    if "batch" in args.sections:
        rows = bench_batch(_csv(args.batch_optimizers), 10,
                           [int(b) for b in _csv(args.batches)],
                           20_000 if args.quick else 200_000, repeat=args.repeat)
        result["batch"] = rows
        save()
        blocks.append("Engine vs hand-written fused numpy vs JAX by batch size (d=10; µs per "
                      "point-step, CPU min / median; JAX ratio on wall time)\n"
                      + batch_table(rows))
    if "check" in args.sections:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dynverify-bench-") as tmp:
            res = bench_check(Path(args.baseline).resolve() if args.baseline else None,
                              args.check_profile, _csv(args.check_optimizers),
                              args.check_repeat, Path(tmp), args.check_seed)
        result["check"] = res
        save()
        blocks.append(f"`dynverify check --profile {args.check_profile}` "
                      f"({res['optimizers']}), interleaved ×{args.check_repeat}\n"
                      + check_table(res)
                      + (f"\nspeed-up vs baseline: {res['speedup_cpu_min']:.2f}× (CPU min), "
                         f"{res['speedup_cpu_median']:.2f}× (CPU median); verdict counts "
                         f"identical: {res['verdicts_identical']}" if args.baseline else ""))
    if "claims" in args.sections:
        cnames = (_csv(args.claim_optimizers) if args.claim_optimizers
                  else (["gradient_descent", "heavy_ball"] if args.quick else names))
        claims = _csv(args.claims) if args.claims else (
            ["filter_agrees"] if args.quick else list(CLAIM_NAMES))
        rows = bench_claims(cnames, claims, args.profile)
        result["claims"] = rows
        save()
        blocks.append(f"Claim throughput ({args.profile} profile)\n" + claims_table(rows))
    if "suite" in args.sections:
        profiles = ["ci", "deep"] if args.suite == "all" else [args.suite]
        timeout = args.suite_timeout or (3600.0 if "deep" in profiles else 900.0)
        workers = [int(w) for w in _csv(args.workers)]
        rows = bench_suite(profiles, workers, timeout, args.pytest_args.split())
        result["suite"] = rows
        save()
        blocks.append("Suite wall time\n" + suite_table(rows))
    result["environment"]["load_average_at_end"] = _load()
    save()
    if result["targets"]:
        blocks.append("Targets (measured, not asserted)\n" + tabulate(
            [[t["target"], t["measured"], "met" if t["met"] else "MISSED"]
             for t in result["targets"]], headers=["target", "measured", ""]))
    env = result["environment"]
    blas = env["blas"]
    blas_s = (", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)"
                        for b in blas) if isinstance(blas, list) else blas)
    blocks.append(f"Machine: {env.get('cpu')}, {env['cpu_count']} cores; Python "
                  f"{env['python']}, numpy {env['numpy']}, BLAS: {blas_s}; "
                  f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}; jax {env['jax']}; "
                  f"load average at start/end {env['load_average_at_start']}/"
                  f"{env.get('load_average_at_end')}")
    print("\n\n".join(blocks))
    print(f"\nJSON written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return result


if __name__ == "__main__":
    main()
