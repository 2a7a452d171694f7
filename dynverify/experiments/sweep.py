"""One training run from a configuration, judged; and sweeps of runs over optimizers × lr.

A :class:`RunConfig` holds only names, numbers and JSON specs, so a run can be sent to a
worker process, written into a record and replayed exactly: the data set, the initial
parameters (from ``init_seed``) and the optimizer's iterates are all deterministic.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from dynverify.experiments import data as _data
from dynverify.experiments.mlp import LOSSES, MLP, TrainingLoss
from dynverify.experiments.sharpness import all_eigenvalues, extreme_eigenvalues
from dynverify.experiments.train import TrainResult, TrainStatus, train
from dynverify.experiments.verdict import (
    Outcome,
    Verdict,
    not_converged,
    spectrum_inside,
    upper_bound,
)
from dynverify.regions import Region

#: full spectra (to decide spectra that straddle a gap of a filter) up to this dimension
DENSE_LIMIT = 3000
#: a confirmed limit attracts: ‖∇ℓ‖ stays below GROWTH × its start after a perturbation
#: (room for the transient growth of non-normal linearizations, e.g. heavy ball)
GROWTH = 100.0


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run and its verdict.

    Args:
        optimizer: registered name or ``module:factory``.
        hyperparameters: keyword arguments of the factory (e.g. ``{"lr": 0.1}``).
        data: the data set (:class:`~dynverify.experiments.data.DataSpec`).
        hidden: hidden-layer widths of the student network.
        activation, loss, weight_decay: see :class:`~dynverify.experiments.mlp.TrainingLoss`.
        init_seed: seed of the initial parameters (LeCun normal).
        steps: step budget; tol: gradient-norm tolerance of convergence.
        eig_band: eigenvalues outside R by less than eig_band·scale(R) are tolerated.
        confirm_steps: most steps spent confirming a candidate counterexample.
    """

    optimizer: str
    hyperparameters: dict[str, float]
    data: _data.DataSpec = field(default_factory=_data.DataSpec)
    hidden: tuple[int, ...] = (32,)
    activation: str = "tanh"
    loss: str = "mse"
    weight_decay: float = 0.0
    init_seed: int = 0
    steps: int = 5000
    tol: float = 1e-4
    eig_band: float = 1e-3
    confirm_steps: int = 20_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if not (self.tol > 0 and math.isfinite(self.tol)):
            raise ValueError(f"tol must be a positive number, got {self.tol!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["data"] = self.data.to_json()
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        """Rebuild from :meth:`to_json` (ValueError naming the problem if malformed)."""
        try:
            d = dict(d)
            d["data"] = _data.DataSpec.from_json(d["data"])
            d["hidden"] = tuple(d.get("hidden", ()))
            return cls(**d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed experiment configuration: {exc}") from exc

    def describe(self) -> str:
        ds = self.data
        n = f", n={ds.subsample}" if ds.subsample else ""
        return (f"{self.activation} MLP {self.sizes()} ({self.loss}) on {ds.name}{n}, "
                f"seed {self.init_seed}")

    def sizes(self) -> tuple[int, ...]:
        if self.data.name == "digits":
            return (64, *self.hidden, 10)
        return (self.data.inputs, *self.hidden, self.data.outputs)


def problem(config: RunConfig) -> tuple[TrainingLoss, np.ndarray]:
    """The training loss and the initial parameters of a configuration."""
    ds = _data.load(config.data)
    net = MLP(config.sizes(), config.activation)
    if config.loss == "cross_entropy" and ds.labels is None:
        raise ValueError(f"cross-entropy needs class labels; the {ds.spec.name!r} data set "
                         "is a regression (use --loss mse)")
    Y = ds.labels if config.loss == "cross_entropy" else ds.Y
    f = TrainingLoss(net, ds.X, Y, config.loss, config.weight_decay,
                     spec_data=config.data.to_json())
    theta0 = net.init_params(np.random.default_rng(config.init_seed))
    return f, theta0


def filter_of(config: RunConfig) -> tuple[Any, Region | None, str]:
    """(optimizer, filter, where the filter came from): declared, else derived."""
    from dynverify.derive import derive_region
    from dynverify.errors import NotDifferentiableError
    from dynverify.registry import UnknownOptimizerError, resolve

    try:
        reg = resolve(config.optimizer)
    except UnknownOptimizerError as exc:
        raise ValueError(str(exc)) from exc
    try:
        opt = reg.build(**config.hyperparameters)
    except TypeError as exc:
        raise ValueError(f"{reg.name}: bad hyperparameters {config.hyperparameters}: {exc}"
                         ) from exc
    if opt.region is not None:
        return opt, opt.region, "declared"
    if opt.outside_hypotheses:
        return opt, None, "none"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return opt, derive_region(opt), "derived"
    except NotDifferentiableError:
        return opt, None, "none"


def _confirm(opt: Any, f: Any, res: TrainResult, lam: float, config: RunConfig
             ) -> tuple[bool | None, dict[str, Any]]:
    """Does the candidate limit attract? Perturb it and run on.

    A limit with an eigenvalue outside R has (by the linearization) spectral radius
    r = ρ₁(λ) > 1, so a perturbation grows by r per step: within log(1e10)/log r steps
    the gradient norm grows by orders of magnitude. The limit *attracts* when, over that
    whole window, ‖∇ℓ‖ never exceeds ``GROWTH`` times its value at the perturbed start
    (or tol). (Only the growth is a fair test: near a limit approached slowly along flat
    directions, ‖∇ℓ‖ may hover at tol for many more steps.) Returns (attracts?,
    evidence); None when the confirmation would need more than ``confirm_steps`` steps.
    """
    from dynverify.derive import filter_function

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = float(filter_function(opt)(np.array([lam]))[0])
    window = 1000 if r <= 1.0 else math.ceil(math.log(1e10) / math.log(r))
    ev: dict[str, Any] = {"rho_at_eigenvalue": r, "confirm_window": window}
    if window > config.confirm_steps:
        return None, ev
    rng = np.random.default_rng(config.init_seed + 1)
    u = rng.normal(size=res.theta.size)
    u *= config.tol / (np.linalg.norm(u) * max(abs(lam), 1.0))
    state = tuple(np.array(s, copy=True) for s in res.state)
    state = (state[0] + u[None, :], *state[1:])
    g0 = float(np.linalg.norm(f.grad(opt.position(state))))
    # run the whole window: stopping at ‖∇ℓ‖ < tol would not let an unstable mode grow
    with np.errstate(all="ignore"):
        again = train(opt, f, res.theta, tol=config.tol, max_steps=window, trace_every=0,
                      state=state, min_steps=window)
    limit = GROWTH * max(config.tol, g0)
    ev.update(perturbed_start_grad_norm=g0, perturbed_max_grad_norm=again.max_grad_norm,
              perturbed_grad_norm=again.grad_norm, growth_limit=limit)
    return bool(again.max_grad_norm <= limit), ev


def run_one(config: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """Train, compute the extreme Hessian eigenvalues, judge; a JSON-safe result."""
    if isinstance(config, dict):
        config = RunConfig.from_json(config)
    t0 = time.perf_counter()
    opt, region, source = filter_of(config)
    f, theta0 = problem(config)
    e0 = extreme_eigenvalues(f, theta0)
    with np.errstate(all="ignore"):
        res = train(opt, f, theta0, tol=config.tol, max_steps=config.steps,
                    trace_every=max(1, config.steps // 200))
    finite = res.status is not TrainStatus.NONFINITE
    e = extreme_eigenvalues(f, res.theta) if finite else None
    bound = upper_bound(region) if region is not None else math.nan
    top = e.top if e else math.nan
    verdict = judge(opt, f, config, res, e, region)
    out = {
        "config": config.to_json(),
        "optimizer": opt.name,
        "hyperparameters": dict(opt.hyperparameters),
        "status": res.status.value,
        "steps": res.steps,
        "loss": res.loss,
        "grad_norm": res.grad_norm,
        "step_norm": res.step_norm,
        "initial_top": e0.top,
        "initial_bottom": e0.bottom,
        "bottom": e.bottom if e else math.nan,
        "top": top,
        "eig_method": e.method if e else None,
        "eig_converged": e.converged if e else None,
        "region": region.to_json() if region is not None else None,
        "region_str": str(region) if region is not None else "none",
        "region_source": source,
        "bound": bound,
        "ratio": top / bound if bound and math.isfinite(bound) else math.nan,
        "outcome": verdict.outcome.value,
        "reason": verdict.reason,
        "evidence": verdict.evidence,
        "trace": res.trace,
        "function": f.spec(),
        "function_repr": repr(f),
        "seconds": time.perf_counter() - t0,
    }
    return out


def judge(opt: Any, f: Any, config: RunConfig, res: TrainResult, e: Any,
          region: Region | None) -> Verdict:
    """The verdict of one run (see :mod:`dynverify.experiments.verdict`).

    ``f`` is the loss (any test function; a :class:`TrainingLoss` with a ReLU network is
    outside the hypotheses), ``e`` the :class:`Extremes` at the end (None if non-finite).
    """
    if opt.outside_hypotheses or region is None:
        return Verdict(Outcome.OUTSIDE, opt.outside_hypotheses
                       or "no filter: the map is not differentiable at critical points")
    model = getattr(f, "model", None)
    if model is not None and not model.smooth:
        return Verdict(Outcome.OUTSIDE, f"{model.activation} makes the loss only piecewise "
                       "smooth (not C²): the theorem's hypotheses fail")
    bound = upper_bound(region)
    if not res.converged:
        return not_converged(res.status.value, res.steps, res.grad_norm, config.tol,
                             e.top if e else math.nan, bound, res.step_norm)
    band = config.eig_band * max(region.scale, 1e-12)
    ev: dict[str, Any] = {"band": band, "spectrum": [e.bottom, e.top]}
    if not e.converged:
        return Verdict(Outcome.INCONCLUSIVE, "Lanczos did not converge on the extreme "
                       "eigenvalues", ev)
    inside = spectrum_inside(region, e.bottom, e.top, band)
    if inside is None and f.dim <= DENSE_LIMIT:
        lam = all_eigenvalues(f, res.theta)
        ev["n_eigenvalues"] = int(lam.size)
        inside = spectrum_inside(region, e.bottom, e.top, band, lam)
        worst = float(lam[np.argmin(region.margin(lam))])
    else:
        worst = e.bottom if region.margin(e.bottom) < region.margin(e.top) else e.top
    if inside is None:
        return Verdict(Outcome.INCONCLUSIVE, "the extreme eigenvalues lie in different "
                       f"intervals of R and d = {f.dim} is too large for the full spectrum", ev)
    if inside:
        return Verdict(Outcome.PASS, f"converged in {res.steps} steps; spectrum "
                       f"[{e.bottom:.4g}, {e.top:.4g}] ⊂ R (band {band:.2g})", ev)
    attracts, cev = _confirm(opt, f, res, worst, config)
    ev.update(cev, worst_eigenvalue=worst, margin=float(region.margin(worst)))
    if attracts is None:
        return Verdict(Outcome.INCONCLUSIVE, f"eigenvalue {worst:.4g} outside R, but showing "
                       f"that it repels takes {cev['confirm_window']} steps "
                       f"(> confirm_steps = {config.confirm_steps})", ev)
    if not attracts:
        return Verdict(Outcome.NOT_CONVERGED, f"‖∇ℓ‖ < tol at step {res.steps} next to an "
                       f"eigenvalue {worst:.4g} outside R, but a perturbed run left: the "
                       "point repels, as the theorem predicts", ev)
    return Verdict(Outcome.COUNTEREXAMPLE, f"converged (‖∇ℓ‖ = {res.grad_norm:.3e} < "
                   f"{config.tol:g}) with eigenvalue {worst:.6g} outside the filter {region}, "
                   "and a perturbed run converges back", ev)


def grid(optimizers: Sequence[str], lrs: Sequence[float], params: dict[str, float],
         base: RunConfig) -> list[RunConfig]:
    """One configuration per optimizer × lr; each factory gets the parameters it takes.

    A key ``NAME.param`` applies to optimizer NAME only and overrides ``param``
    (e.g. ``{"rho": 0.05, "hessian_usam.rho": 0.005}``).
    """
    from dynverify.registry import accepted, resolve

    configs = []
    for name in optimizers:
        reg = resolve(name)
        own = {k: v for k, v in params.items() if "." not in k}
        own.update({k.rsplit(".", 1)[1]: v for k, v in params.items()
                    if "." in k and k.rsplit(".", 1)[0] == name})
        for lr in lrs:
            hp = accepted(reg.factory, {"lr": float(lr), **own})
            configs.append(replace(base, optimizer=name, hyperparameters=hp))
    return configs


def sweep(configs: Iterable[RunConfig], workers: int = 1) -> Iterator[dict[str, Any]]:
    """Run configurations (in a process pool when workers > 1), yielding results as they
    finish. Results carry their configuration, so the order does not matter."""
    configs = list(configs)
    if workers <= 1 or len(configs) <= 1:
        for c in configs:
            yield run_one(c)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # never fork: a parent that has loaded a multithreaded library (JAX, torch) can deadlock
    # in a forked child; forkserver starts workers from a clean single-threaded process
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_one, c.to_json()) for c in configs]
        for fut in as_completed(futures):
            yield fut.result()
