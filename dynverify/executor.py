"""One executor: the same tasks in-process, in a local process pool, or on a Dask cluster.

A :class:`Task` names a top-level function (``"module:function"``) and carries only
JSON values (names, numbers, JSON specs): no closures, no arrays, no optimizer objects.
A worker re-imports the function, and the function re-imports the user's optimizer by
its registered name or ``module:factory``. So a task runs the same wherever it runs, and
identical seeds give identical results on every backend.

Backends (chosen by :func:`executor`):

- in-process (default): a plain loop, no extra process;
- ``workers=N``: a local :class:`concurrent.futures.ProcessPoolExecutor` (forkserver
  where available, else spawn: no inherited state from the parent);
- ``client=distributed.Client(...)`` or ``scheduler="tcp://host:8786"``: an existing
  Dask cluster (optional extra ``dynverify[distributed]``). A worker that dies is
  replaced and its task re-run by Dask; results come back to the client, which writes
  every record, so a run directory lives on one machine only.

A task that raises on a worker comes back as data and is re-raised on the client as a
:class:`TaskError` naming the task, the worker and the worker-side exception.

Example::

    tasks = [Task("json:dumps", {"obj": [k, k * k]}, label=f"k={k}") for k in range(3)]
    run_tasks(tasks, workers=2)            # ['[0, 0]', '[1, 1]', '[2, 4]']
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dynverify.errors import DynverifyError
from dynverify.reproducibility import fixed_constants


class TaskError(DynverifyError):
    """A task failed on a worker; the message names the task, the worker and the error."""

    def __init__(self, label: str, worker: str, error: str, worker_traceback: str = "") -> None:
        super().__init__(f"task {label!r} failed on worker {worker}: {error}")
        self.label, self.worker, self.error = label, worker, error
        self.worker_traceback = worker_traceback


class ExecutorError(DynverifyError):
    """The executor cannot be set up (bad arguments, Dask missing, scheduler unreachable)."""


@dataclass(frozen=True)
class Task:
    """A unit of work: ``function(**kwargs)`` on some worker.

    Args:
        function: ``"module:function"`` of a top-level function importable on workers.
        kwargs: JSON values only (checked: a closure or array here is an error).
        label: a short human-readable name (shown in errors and progress).
    """

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.function, str) or ":" not in self.function:
            raise ValueError(f"Task.function must be 'module:function', got {self.function!r}")
        try:
            json.dumps(self.kwargs, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"task {self.label or self.function}: kwargs must be JSON values "
                             f"(names, numbers, specs), not objects: {exc}") from exc


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived from ``seed`` and JSON-able parts, stable across machines.

    Example:
        >>> derive_seed(0, "usam", 3) == derive_seed(0, "usam", 3)
        True
    """
    text = json.dumps([int(seed), *parts], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _import(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def run_task(task: Task) -> dict[str, Any]:
    """Run one task here; never raises: failures come back as data (``ok`` False).

    Returns ``{"ok", "value" | "error", "traceback", "worker", "seconds", "cpu"}``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"worker": _where()}
    try:
        out["value"] = _import(task.function)(**task.kwargs)
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 -- reported to the client with the worker's name
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc())
    out["seconds"] = time.perf_counter() - t0
    out["cpu"] = time.process_time() - c0
    return out


# -- backends --------------------------------------------------------------------------------

class Executor:
    """Runs tasks and yields ``(index, outcome)`` as they complete (outcome: run_task's dict)."""

    name = "in-process"
    workers = 1

    def as_completed(self, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, t in enumerate(tasks):
            yield i, run_task(t)

    def close(self) -> None:
        pass


def _mp_context() -> Any:
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # imported once in the fork server, so that every worker starts with them loaded
    ctx.set_forkserver_preload(["numpy", "scipy.optimize", "dynverify.executor",
                                "dynverify.engine"])
    return ctx


class PoolExecutor(Executor):
    """A local process pool of ``workers`` processes (forkserver or spawn)."""

    name = "process-pool"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())

    def as_completed(self, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        pending: dict[Future[dict[str, Any]], int] = {
            self._pool.submit(run_task, t): i for i, t in enumerate(tasks)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        yield i, fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a crashed pool process
                        yield i, {"ok": False, "worker": "process pool",
                                  "error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster through ``client`` (a ``distributed.Client``)."""

    name = "dask"

    def __init__(self, client: Any, own: bool = False) -> None:
        self.client, self._own = client, own
        try:
            self.workers = max(1, len(client.scheduler_info().get("workers", {})))
        except Exception:  # noqa: BLE001 -- informational only
            self.workers = 1

    def as_completed(self, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        from distributed import as_completed

        token = hashlib.sha1(os.urandom(8)).hexdigest()[:8]
        # one batched submission: a submit() per task costs a scheduler round trip each
        futures = self.client.map(run_task, list(tasks), pure=False,
                                  key=[f"dynverify-{i}-{token}" for i in range(len(tasks))])
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    yield i, fut.result()
                except Exception as exc:  # noqa: BLE001 -- e.g. KilledWorker after retries
                    yield i, {"ok": False, "worker": "dask",
                              "error": f"{type(exc).__name__}: {exc}"}
        finally:
            for f in futures:
                f.release()

    def close(self) -> None:
        if self._own:
            self.client.close()


def _dask_client(scheduler: str) -> Any:
    try:
        from distributed import Client
    except ImportError as exc:
        raise ExecutorError("a Dask scheduler needs the distributed extra: "
                            "pip install 'dynverify[distributed]'") from exc
    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(f"cannot connect to the Dask scheduler {scheduler!r}: {exc}") from exc


@contextmanager
def executor(workers: int | None = None, client: Any = None, scheduler: str | None = None
             ) -> Iterator[Executor]:
    """The backend for these arguments (at most one of workers > 1, client, scheduler)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ExecutorError(f"workers must be a positive integer, got {workers!r}")
    chosen = [n for n, v in (("workers", workers is not None and workers > 1),
                             ("client", client is not None),
                             ("scheduler", scheduler is not None)) if v]
    if len(chosen) > 1:
        raise ExecutorError(f"give at most one of workers, client, scheduler (got {chosen})")
    ex: Executor
    if client is not None:
        ex = DaskExecutor(client)
    elif scheduler is not None:
        ex = DaskExecutor(_dask_client(scheduler), own=True)
    elif workers is not None and workers > 1:
        ex = PoolExecutor(workers)
    else:
        ex = Executor()
    try:
        yield ex
    finally:
        ex.close()


@dataclass
class Timing:
    """What running a batch of tasks cost: wall time, CPU time on the workers, per task."""

    backend: str = ""
    workers: int = 1
    tasks: int = 0
    wall: float = 0.0
    task_seconds: list[float] = field(default_factory=list)
    task_cpu: list[float] = field(default_factory=list)

    @property
    def overhead_per_task(self) -> float:
        """(workers × wall − Σ task time) / tasks: scheduling and transfer cost per task."""
        if not self.tasks:
            return math.nan
        return (self.workers * self.wall - sum(self.task_seconds)) / self.tasks


def run_tasks(tasks: Sequence[Task], *, workers: int | None = None, client: Any = None,
              scheduler: str | None = None,
              on_result: Callable[[int, Any], None] | None = None,
              timing: Timing | None = None) -> list[Any]:
    """Run the tasks on the chosen backend; their values in task order.

    ``on_result(index, value)`` is called on the client as each task completes (in
    completion order), so a caller can write records as soon as they exist. The first
    failed task raises :class:`TaskError` (tasks already finished have been passed to
    ``on_result``).
    """
    values: list[Any] = [None] * len(tasks)
    t0 = time.perf_counter()
    with executor(workers, client, scheduler) as ex:
        if timing is not None:
            timing.backend, timing.workers, timing.tasks = ex.name, ex.workers, len(tasks)
        for i, out in ex.as_completed(tasks):
            if not out.get("ok"):
                label = tasks[i].label or tasks[i].function
                raise TaskError(label, out.get("worker", "?"), out.get("error", "?"),
                                out.get("traceback", ""))
            values[i] = out["value"]
            if timing is not None:
                timing.task_seconds.append(out.get("seconds", 0.0))
                timing.task_cpu.append(out.get("cpu", 0.0))
            if on_result is not None:
                on_result(i, out["value"])
    if timing is not None:
        timing.wall = time.perf_counter() - t0
    return values


def optimizer_ref(spec: Any) -> str:
    """A name a worker can resolve: a registered built-in/entry-point name or module:factory.

    Raises ExecutorError for a factory defined where a worker cannot import it (a
    lambda, a closure, ``__main__``).
    """
    from dynverify.registry import Registration, resolve

    reg = spec if isinstance(spec, Registration) else resolve(spec)
    if isinstance(spec, str) and ":" in spec:
        return spec
    if reg.source == "builtin" or str(reg.source).startswith("entry-point"):
        return reg.name
    if ":" in str(reg.source):
        return str(reg.source)
    fac = reg.factory
    module, qual = getattr(fac, "__module__", None), getattr(fac, "__qualname__", "")
    if not module or module == "__main__" or "<" in qual:
        raise ExecutorError(
            f"optimizer {reg.name!r} cannot be sent to workers: its factory "
            f"{module}:{qual} is not importable there; define it at the top level of an "
            "importable module and pass 'module:factory'")
    return f"{module}:{qual}"


# -- verification campaigns (dynverify check --workers / --scheduler) -------------------------

class _Collector:
    """Stands in for a RunWriter on a worker: keeps the records for the client to write."""

    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self.counterexamples: list[dict[str, Any]] = []

    def case(self, record: dict[str, Any]) -> None:
        self.cases.append(record)

    def counterexample(self, record: dict[str, Any]) -> str:
        self.counterexamples.append(record)
        return f"<counterexample {len(self.counterexamples) - 1}>"


# the same seed draws the same cases in any process (pytest, CLI, Dask worker)
seed_only_draws = fixed_constants


def check_task(optimizer: str, claim: str, profile: str, seed: int | None,
               max_examples: int | None, settings: dict[str, Any]) -> dict[str, Any]:
    """One task of a campaign: ``run_claim`` for one optimizer × claim × seed shard.

    Returns the claim's result and every record it produced, as JSON values.
    """
    from hypothesis import settings as hsettings

    from dynverify.check import run_claim
    from dynverify.claims import Settings
    from dynverify.profiles import resolve as resolve_profile
    from dynverify.registry import resolve

    hs = resolve_profile(profile)
    if max_examples is not None:
        hs = hsettings(hs, max_examples=max_examples)
    col = _Collector()
    reg = resolve(optimizer)
    res = run_claim(reg, claim, hypothesis_settings=hs,
                    writer=col,  # type: ignore[arg-type]  # duck-typed RunWriter
                    settings=Settings.from_json(settings), seed=seed)
    return {"optimizer": res.optimizer, "claim": res.claim, "counts": dict(res.counts),
            "reasons": dict(res.reasons),
            "closest": res.closest if math.isfinite(res.closest) else None,
            "counterexample": res.counterexample, "error": res.error, "seconds": res.seconds,
            "cases": col.cases, "counterexamples": col.counterexamples}


def check_tasks(optimizers: Sequence[Any], claims: Sequence[str], *, profile: str = "ci",
                seed: int | None = None, shards: int = 1,
                settings: dict[str, Any] | None = None) -> list[Task]:
    """The tasks of a campaign, optimizer-major, then claim, then shard.

    With one shard a task is exactly ``run_claim(..., seed=seed)`` of a serial run. With
    k shards each runs ⌈max_examples/k⌉ examples with its own seed
    ``derive_seed(seed, name, claim, shard)``.
    """
    from dynverify.claims import DEFAULT_SETTINGS
    from dynverify.profiles import resolve as resolve_profile

    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ExecutorError(f"shards must be a positive integer, got {shards!r}")
    if not isinstance(profile, str):
        raise ExecutorError(f"a campaign needs a profile name its workers know, got {profile!r}")
    n = resolve_profile(profile).max_examples
    per = None if shards == 1 else max(1, math.ceil(n / shards))
    js = settings if settings is not None else DEFAULT_SETTINGS.to_json()
    tasks = []
    for opt in optimizers:
        ref = optimizer_ref(opt)
        for claim in claims:
            for k in range(shards):
                sd = seed if shards == 1 else derive_seed(seed or 0, ref, claim, k)
                tasks.append(Task("dynverify.executor:check_task",
                                  {"optimizer": ref, "claim": claim, "profile": profile,
                                   "seed": sd, "max_examples": per, "settings": js},
                                  label=f"{ref}/{claim}" + (f"#{k}" if shards > 1 else "")))
    return tasks


def run_check(optimizers: Sequence[Any], claims: Sequence[str], *, profile: str = "ci",
              seed: int | None = None, shards: int = 1, writer: Any = None,
              settings: dict[str, Any] | None = None, workers: int | None = None,
              client: Any = None, scheduler: str | None = None,
              on_task: Callable[[str], None] | None = None,
              timing: Timing | None = None) -> list[Any]:
    """Run a campaign on the chosen backend; one ``ClaimResult`` per optimizer × claim.

    Each task's records are written through ``writer`` (a RunWriter, on this machine) as
    soon as the task completes, so records of finished tasks survive a later failure.
    Shards of one optimizer × claim are merged: counts added, the smallest |r − 1| kept,
    the first shard's counterexample reported.
    """
    from collections import Counter

    from dynverify.check import ClaimResult

    tasks = check_tasks(optimizers, claims, profile=profile, seed=seed, shards=shards,
                        settings=settings)
    paths: dict[int, list[str]] = {}

    def write(i: int, value: dict[str, Any]) -> None:
        if writer is not None:
            for rec in value["cases"]:
                writer.case(rec)
            paths[i] = [str(writer.counterexample(rec)) for rec in value["counterexamples"]]
        if on_task is not None:
            on_task(tasks[i].label)

    values = run_tasks(tasks, workers=workers, client=client, scheduler=scheduler,
                       on_result=write, timing=timing)
    results: list[ClaimResult] = []
    for k in range(0, len(values), shards):
        group = values[k:k + shards]
        res = ClaimResult(group[0]["optimizer"], group[0]["claim"])
        for i, v in enumerate(group, start=k):
            res.counts += Counter(v["counts"])
            res.reasons += Counter(v["reasons"])
            if v["closest"] is not None:
                res.closest = min(res.closest, float(v["closest"]))
            res.seconds += v["seconds"]
            if res.counterexample is None and v["counterexample"] is not None:
                res.counterexample = v["counterexample"]
                res.counterexample_path = (paths.get(i) or [None])[-1]
            if res.error is None and v["error"] is not None:
                res.error = v["error"]
        results.append(res)
    return results
