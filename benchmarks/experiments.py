"""Per-step cost of the experiment's training loss: gradient and Hessian-vector product.

Implementations of the same loss (tanh MLP, MSE, full batch): dynverify's hand-written
numpy backprop / R-operator (the one the experiments use), autograd, and, when installed,
torch (torch.func, float64) and jax (jit, float64). Every implementation is checked
against the numpy one before timing. Repeats are interleaved (each round times every
implementation once, in a rotating order), and min and median per call are reported for
wall time and CPU time (time.process_time), with ratios against numpy from the same run.
Also the cost of one full step of each of the five optimizers of the README sweep.

    python benchmarks/experiments.py                      # 64-32-10 on all 1797 digits
    python benchmarks/experiments.py --hidden 16 --subsample 300 --rounds 5

Threads are pinned to 1 (OMP/MKL/OpenBLAS, torch) unless already set, so the numbers
compare implementations rather than how many cores a shared machine lends each.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402


def _timed(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    fn()  # warm (jit compilation, caches)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - w0) / calls, (time.process_time() - c0) / calls


def implementations(f, theta: np.ndarray, v: np.ndarray, sizes, X, Y):
    """name -> (grad(), hvp()) closures, each checked against dynverify's numpy."""
    impls: dict[str, tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]] = {}
    T, V = theta[None], v[None]
    impls["numpy (dynverify)"] = (lambda: f.grad(T)[0], lambda: f.hvp(T, V)[0])

    import autograd.numpy as anp
    from autograd import grad, hessian_vector_product

    def layers(t, xp, reshape):
        out, k = [], 0
        for m, n in zip(sizes, sizes[1:]):
            out.append((reshape(t[k:k + m * n], (m, n)), t[k + m * n:k + m * n + n]))
            k += m * n + n
        return out

    def loss_ag(t):
        A = X
        ls = layers(t, anp, anp.reshape)
        for W, b in ls[:-1]:
            A = anp.tanh(anp.dot(A, W) + b)
        out = anp.dot(A, ls[-1][0]) + ls[-1][1]
        return 0.5 * anp.sum((out - Y) ** 2) / X.shape[0]

    g_ag, h_ag = grad(loss_ag), hessian_vector_product(loss_ag)
    impls["autograd"] = (lambda: g_ag(theta), lambda: h_ag(theta, v))
    try:
        import torch
        from torch.func import grad as tgrad
        from torch.func import jvp

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        Xt, Yt = torch.tensor(X), torch.tensor(Y)

        def loss_t(t):
            A = Xt
            ls = layers(t, torch, lambda a, s: a.reshape(s))
            for W, b in ls[:-1]:
                A = torch.tanh(A @ W + b)
            out = A @ ls[-1][0] + ls[-1][1]
            return 0.5 * ((out - Yt) ** 2).sum() / Xt.shape[0]

        tt, vt = torch.tensor(theta), torch.tensor(v)
        gt = tgrad(loss_t)
        impls["torch (func, CPU)"] = (lambda: gt(tt).numpy(),
                                      lambda: jvp(gt, (tt,), (vt,))[1].numpy())
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

        def loss_j(t):
            A = Xj
            ls = layers(t, jnp, jnp.reshape)
            for W, b in ls[:-1]:
                A = jnp.tanh(A @ W + b)
            out = A @ ls[-1][0] + ls[-1][1]
            return 0.5 * jnp.sum((out - Yj) ** 2) / Xj.shape[0]

        gj = jax.jit(jax.grad(loss_j))
        hj = jax.jit(lambda t, u: jax.jvp(jax.grad(loss_j), (t,), (u,))[1])
        tj, vj = jnp.asarray(theta), jnp.asarray(v)
        impls["jax (jit, CPU)"] = (lambda: np.asarray(gj(tj).block_until_ready()),
                                   lambda: np.asarray(hj(tj, vj).block_until_ready()))
    except ImportError:
        pass
    g_ref, h_ref = impls["numpy (dynverify)"][0](), impls["numpy (dynverify)"][1]()
    for name, (g, h) in impls.items():
        eg = np.max(np.abs(g() - g_ref)) / max(np.max(np.abs(g_ref)), 1e-300)
        eh = np.max(np.abs(h() - h_ref)) / max(np.max(np.abs(h_ref)), 1e-300)
        if not (eg < 1e-9 and eh < 1e-9):
            raise SystemExit(f"{name} disagrees with numpy: grad {eg:.2g}, hvp {eh:.2g}")
    return impls


def main() -> None:
    from dynverify.experiments import MLP, TrainingLoss
    from dynverify.experiments.data import digits
    from dynverify.functions import GuardedOracle
    from dynverify.optimizers import BUILTINS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--subsample", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=20, help="calls per timing")
    ap.add_argument("--json", metavar="FILE", help="also write the raw timings as JSON")
    args = ap.parse_args()
    ds = digits(args.subsample, 0)
    sizes = (64, args.hidden, 10)
    f = TrainingLoss(MLP(sizes), ds.X, ds.Y)
    rng = np.random.default_rng(0)
    theta = f.model.init_params(rng)
    v = rng.normal(size=theta.size)
    impls = implementations(f, theta, v, sizes, ds.X, ds.Y)
    oracle = GuardedOracle(f)
    steps = {}
    for name, hp in [("gradient_descent", {"lr": 0.1}), ("usam", {"lr": 0.1, "rho": 0.05}),
                     ("two_step_usam", {"lr": 0.1, "rho": 0.05}),
                     ("hessian_usam", {"lr": 0.1, "rho": 0.005}),
                     ("heavy_ball", {"lr": 0.1, "momentum": 0.9})]:
        opt = BUILTINS[name](**hp)
        state = opt.init(theta[None])
        steps[f"step: {name}"] = (lambda o=opt, s=state: o.step(s, oracle))
    tasks = {**{f"grad: {k}": g for k, (g, _) in impls.items()},
             **{f"hvp: {k}": h for k, (_, h) in impls.items()}, **steps}
    wall: dict[str, list[float]] = {k: [] for k in tasks}
    cpu: dict[str, list[float]] = {k: [] for k in tasks}
    names = list(tasks)
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:  # rotating order
            w, c = _timed(tasks[k], args.calls)
            wall[k].append(w)
            cpu[k].append(c)
    rows = []
    for k in names:
        kind = k.split(":")[0]
        base = f"{kind}: numpy (dynverify)" if kind in ("grad", "hvp") else \
            "grad: numpy (dynverify)"
        rows.append([k, f"{min(wall[k]) * 1e3:.3f}", f"{statistics.median(wall[k]) * 1e3:.3f}",
                     f"{min(cpu[k]) * 1e3:.3f}", f"{statistics.median(cpu[k]) * 1e3:.3f}",
                     f"{statistics.median(cpu[k]) / statistics.median(cpu[base]):.2f}"])
    print(f"tanh MLP {sizes}, MSE, N = {ds.X.shape[0]} digits, d = {f.dim}; "
          f"{args.rounds} interleaved rounds × {args.calls} calls; "
          f"threads: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(tabulate(rows, headers=["per call", "wall min ms", "wall median ms", "cpu min ms",
                                  "cpu median ms", "cpu median / numpy"],
                   disable_numparse=True))
    print("ratios: grad and hvp rows against the numpy row of the same kind; optimizer steps "
          "against one numpy gradient")
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"network": list(sizes), "n": int(ds.X.shape[0]), "d": int(f.dim),
                       "rounds": args.rounds, "calls": args.calls,
                       "threads": os.environ["OMP_NUM_THREADS"],
                       "wall_s": wall, "cpu_s": cpu}, fh, indent=1)


if __name__ == "__main__":
    main()
