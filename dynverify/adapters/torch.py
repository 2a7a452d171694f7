"""A ``torch.optim.Optimizer`` (class + keyword arguments) as a dynverify optimizer.

Example:
    >>> import torch
    >>> from dynverify.adapters import torch_optimizer
    >>> opt = torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True)
    >>> opt.name, dict(opt.hyperparameters)
    ('torch.optim.SGD', {'lr': 0.1, 'momentum': 0.9, 'nesterov': True})
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dynverify.adapters._core import (
    AdapterError,
    AdapterWarning,
    RandomProblem,
    c1_defect,
    nonnegative_buffers,
    separability_defect,
)
from dynverify.optimizer import NONNEGATIVE, Optimizer, State

#: torch's step counter, frozen here in the asymptotic form: 2⁶⁰ + 1 rounds to 2⁶⁰ in
#: float32 and float64, so the framework's own increment leaves it unchanged, and
#: β^(2⁶⁰) = 0 makes every bias correction exactly 1
ASYMPTOTIC_STEP = 2.0 ** 60
FORMS = ("asymptotic", "fresh")
BATCHING = ("auto", "batched", "rows")
_T = "_steps_taken"


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised without torch only
        raise ImportError("dynverify.adapters.torch needs PyTorch: "
                          "pip install 'dynverify[torch]'") from exc
    return torch


def _torch_view() -> Any:
    """autograd Functions that expose a numpy oracle to torch (value, grad and HVP)."""
    torch = _import_torch()

    class Grad(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, p: Any, fn: Any) -> Any:
            ctx.save_for_backward(p)
            ctx.fn = fn
            return torch.from_numpy(np.asarray(fn.grad(p.detach().numpy()), dtype=float))

        @staticmethod
        def backward(ctx: Any, v: Any) -> Any:
            (p,) = ctx.saved_tensors
            hv = ctx.fn.hvp(p.detach().numpy(), v.detach().numpy())
            return torch.from_numpy(np.asarray(hv, dtype=float)), None

    class Value(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, p: Any, fn: Any) -> Any:
            ctx.save_for_backward(p)
            ctx.fn = fn
            return torch.tensor(float(np.sum(fn.value(p.detach().numpy()))),
                                dtype=torch.float64)

        @staticmethod
        def backward(ctx: Any, gout: Any) -> Any:
            (p,) = ctx.saved_tensors
            return gout * Grad.apply(p, ctx.fn), None

    return Value, Grad


def torch_function(oracle: Any) -> Callable[[Any], Any]:
    """A torch-differentiable view of a batched numpy oracle: P (B, d) ↦ Σ_rows f(P).

    Its gradient is ``oracle.grad`` and its Hessian-vector products (double backward)
    are ``oracle.hvp``, exactly: no torch re-implementation of f is involved.

    Example:
        >>> import torch
        >>> from dynverify.functions import Quadratic
        >>> f = torch_function(Quadratic.diagonal([2.0]))
        >>> p = torch.ones(1, 1, dtype=torch.float64, requires_grad=True)
        >>> f(p).backward(); p.grad.tolist()
        [[2.0]]
    """
    Value, _ = _torch_view()

    def f(p: Any) -> Any:
        return Value.apply(p, oracle)

    return f


class _RowOracle:
    """The oracle restricted to some rows, the other rows held at their current positions.

    Functions may differ per row (RowQuadratics), so a subset is evaluated inside the
    full batch.
    """

    def __init__(self, oracle: Any, X: np.ndarray, rows: np.ndarray | None) -> None:
        self.oracle, self.X, self.rows = oracle, X, rows

    def _embed(self, P: np.ndarray) -> np.ndarray:
        full = self.X.copy()
        full[self.rows] = P.reshape(len(self.rows), -1)
        return full

    def value(self, P: np.ndarray) -> np.ndarray:
        if self.rows is None:
            return self.oracle.value(P)
        return self.oracle.value(self._embed(P))[self.rows]

    def grad(self, P: np.ndarray) -> np.ndarray:
        if self.rows is None:
            return self.oracle.grad(P)
        return self.oracle.grad(self._embed(P))[self.rows].reshape(P.shape)

    def hvp(self, P: np.ndarray, V: np.ndarray) -> np.ndarray:
        if self.rows is None:
            return self.oracle.hvp(P, V)
        W = np.zeros_like(self.X)
        W[self.rows] = V.reshape(len(self.rows), -1)
        return self.oracle.hvp(self._embed(P), W)[self.rows].reshape(P.shape)


class _TorchMap:
    """The framework step on numpy state: one torch optimizer per group of rows."""

    def __init__(self, cls: Any, hp: dict[str, Any], *, closure: bool,
                 create_graph: bool) -> None:
        self.torch = _import_torch()
        self.cls, self.hp = cls, hp
        self.closure, self.create_graph = closure, create_graph
        self.Value, _ = _torch_view()

    def new(self, p: Any) -> Any:
        return self.cls([p], **self.hp)

    def step(self, p: Any, state: dict[str, Any] | None, oracle: Any,
             use_closure: bool) -> tuple[Any, dict[str, Any]]:
        """One framework step of parameter ``p`` from ``state`` (None: a fresh optimizer)."""
        torch = self.torch
        opt = self.new(p)
        if state is not None:
            opt.state[p] = state
        P = p.detach().numpy()
        g = np.asarray(oracle.grad(P.reshape(-1, P.shape[-1])), dtype=float).reshape(P.shape)
        p.grad = torch.from_numpy(g)
        if use_closure:
            Value, create_graph = self.Value, self.create_graph

            def closure() -> Any:
                with torch.enable_grad():
                    p.grad = None
                    loss = Value.apply(p, _Reshaped(oracle, P.shape))
                    loss.backward(create_graph=create_graph)
                return loss

            opt.step(closure)
        else:
            opt.step()
        return p, opt.state.get(p, {})


class _Reshaped:
    """An oracle on (B, d) batches used for a parameter of another shape (a row: (d,))."""

    def __init__(self, oracle: Any, shape: tuple[int, ...]) -> None:
        self.oracle, self.shape = oracle, shape

    def _b(self, P: np.ndarray) -> np.ndarray:
        return P.reshape(-1, self.shape[-1])

    def value(self, P: np.ndarray) -> np.ndarray:
        return self.oracle.value(self._b(P))

    def grad(self, P: np.ndarray) -> np.ndarray:
        return np.asarray(self.oracle.grad(self._b(P))).reshape(P.shape)

    def hvp(self, P: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.asarray(self.oracle.hvp(self._b(P), self._b(V))).reshape(P.shape)


def _to_numpy(v: Any) -> np.ndarray:
    torch = _import_torch()
    if torch.is_tensor(v):
        return v.detach().cpu().numpy().astype(float, copy=False)
    return np.asarray(v, dtype=float)


class _Layout:
    """The lifted state: x, then one array per framework state entry (plus counters).

    Batched: entries shaped like the parameter are (B, d) arrays; per-tensor scalars
    are (B,) columns, and rows with different scalars are stepped in separate groups.
    Per row: every entry is a (B, *shape) array for its per-row shape.
    """

    def __init__(self, keys: list[str], kinds: dict[str, str], counters: set[str],
                 fresh: bool) -> None:
        self.keys, self.kinds = keys, kinds
        # lifted entries: the counters are constants in the asymptotic form
        self.lifted = [k for k in keys if fresh or k not in counters]
        if fresh:
            self.lifted.append(_T)
        self.scalar_keys = [k for k in self.lifted if kinds.get(k, "scalar") == "scalar"]


def torch_optimizer(cls: Any, /, *, form: str = "asymptotic", batching: str = "auto",
                    counters: tuple[str, ...] = ("step",), create_graph: bool = False,
                    **hyperparameters: Any) -> Optimizer:
    """The torch optimizer ``cls(params, **hyperparameters)`` as a dynverify optimizer.

    The B trajectories of a batch are one (B, d) float64 parameter, stepped by a newly
    constructed ``cls`` whose ``state`` is loaded from the lifted state
    z = (x, buffer₁, …) and read back after ``step()``: the framework's own code runs,
    unmodified. The gradient is the oracle's, ``p.grad = ∇f(x)``; an optimizer that needs
    a closure (SAM-style: it evaluates gradients at perturbed points itself) gets one
    whose loss is a torch-differentiable view of the test function (gradient and
    Hessian-vector products equal the oracle's, see :func:`torch_function`).

    Args:
        cls: a ``torch.optim.Optimizer`` subclass (built-in or your own).
        form: ``"asymptotic"`` (default) freezes the step counters (keys in ``counters``)
            at 2⁶⁰, where the framework's increment no longer changes them and bias
            corrections are exactly 1; ``init(x)`` is the framework's state after a step
            with zero gradient at 0 (buffers exist: torch's first-step special cases, such
            as SGD's ``buf = g`` under dampening, are over). ``"fresh"`` reproduces a
            newly created optimizer bit for bit (counters and first steps included); its
            map changes with the counter, so it is reported outside the hypotheses.
        batching: ``"auto"`` checks row-separability (perturb one row of a random
            problem, other rows must stay bitwise equal) and falls back to one optimizer
            per row (exact, slower, with an AdapterWarning) when it fails; ``"batched"``
            raises AdapterError instead; ``"rows"`` always steps one optimizer per row.
        counters: state keys that are step counters (torch's ``"step"``).
        create_graph: the closure's ``backward(create_graph=True)``, for optimizers that
            differentiate ``p.grad`` again (Hessian-vector products).
        **hyperparameters: keyword arguments of ``cls`` (JSON values, so that records and
            replay can rebuild the optimizer).

    Returns:
        An Optimizer named ``cls.__module__.cls.__qualname__`` (``torch.optim.SGD`` for
        built-ins) with ``hyperparameters`` the keyword arguments, ``region=None`` (the
        filter is derived) and ``outside_hypotheses`` set when the map is not C¹ at
        critical points (Adam, RMSprop, Adagrad: ε outside √v, v = 0 there).
        ``opt.coupled_rows`` says why rows are stepped one optimizer each (None when
        batched).

    Raises:
        AdapterError: not an optimizer class, invalid arguments, or (``batching=
            "batched"``) rows that are not independent.
    """
    torch = _import_torch()
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise AdapterError(f"torch_optimizer needs a torch.optim.Optimizer subclass, got {cls!r}")
    if form not in FORMS:
        raise AdapterError(f"form must be one of {FORMS}, got {form!r}")
    if batching not in BATCHING:
        raise AdapterError(f"batching must be one of {BATCHING}, got {batching!r}")
    name = _class_name(cls)
    hp = dict(hyperparameters)
    try:
        cls([torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)], **hp)
    except Exception as exc:  # noqa: BLE001 -- re-raised with the class named
        raise AdapterError(f"{name}({_fmt(hp)}): {type(exc).__name__}: {exc}") from exc
    fresh = form == "fresh"
    probe_map = _TorchMap(cls, hp, closure=True, create_graph=create_graph)
    try:
        with np.errstate(all="ignore"):
            use_closure = _needs_closure(probe_map)
    except Exception as exc:  # noqa: BLE001 -- re-raised with the class named
        raise AdapterError(f"{name}({_fmt(hp)}): step() failed on a probe problem: "
                           f"{type(exc).__name__}: {exc}") from exc
    per_row = batching == "rows"
    why_rows = None
    if not per_row:
        try:
            batched = _build(name, hp, cls, fresh, False, use_closure, create_graph,
                             set(counters))
            defect = separability_defect(batched.init, batched.step, dim=3)
        except _LayoutError as exc:
            defect = str(exc)
        if defect is not None:
            if batching == "batched":
                raise AdapterError(f"{name}: rows of a batch are not independent trajectories "
                                   f"({defect}); use batching='rows' (one optimizer per row)")
            why_rows = defect
            per_row = True
            warnings.warn(f"{name}: rows of one (B, d) parameter are coupled ({defect}); "
                          "stepping one optimizer per row (exact, slower)", AdapterWarning,
                          stacklevel=2)
    opt = (_build(name, hp, cls, fresh, True, use_closure, create_graph, set(counters))
           if per_row else batched)
    return _with_hypotheses(opt, fresh, why_rows)


class _LayoutError(Exception):
    """The framework's state cannot be split into per-row entries of a (B, d) batch."""


def _class_name(cls: Any) -> str:
    mod = cls.__module__
    if mod.startswith("torch.optim"):
        mod = "torch.optim"
    return f"{mod}.{cls.__qualname__}"


def _fmt(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in hp.items())


def _needs_closure(tm: _TorchMap) -> bool:
    """True unless ``step()`` with ``p.grad`` preset equals ``step(closure)`` bitwise."""
    torch = tm.torch
    f = RandomProblem(3, seed=1)
    X = np.random.default_rng(1).standard_normal((2, 3))
    outs = []
    for use in (False, True):
        p = torch.from_numpy(X.copy()).requires_grad_(True)
        state = None
        try:
            for _ in range(3):
                p, state = tm.step(p, state, f, use)
                state = dict(state)
        except Exception:  # noqa: BLE001 -- step() without a closure refused: it needs one
            if not use:
                return True
            raise
        outs.append(p.detach().numpy().copy())
    return not np.array_equal(outs[0], outs[1])


def _template(tm: _TorchMap, per_row: bool, dim: int) -> dict[str, Any]:
    """The framework's state after one step from 0 with zero gradient: what it creates at
    a critical point (buffers exist, first-step special cases are over)."""
    torch = tm.torch
    shape = (dim,) if per_row else (1, dim)
    p = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    _, st0 = tm.step(p, None, _Zero(), tm.closure)
    return dict(st0)


def _template_at(tm: _TorchMap, X: np.ndarray) -> dict[str, np.ndarray]:
    p = tm.torch.from_numpy(np.array(X, dtype=float)).requires_grad_(tm.closure)
    _, st = tm.step(p, None, _Zero(), tm.closure)
    return {k: _to_numpy(v) for k, v in st.items() if v is not None}


def _history(tm: _TorchMap, per_row: bool, dim: int = 3) -> list[dict[str, np.ndarray]]:
    """Framework states along runs with mixed-sign gradients (to find buffers kept ≥ 0)."""
    torch = tm.torch
    rng = np.random.default_rng(2)
    f = RandomProblem(dim, seed=2)
    shape = (dim,) if per_row else (4, dim)
    history = []
    for trial in range(2):
        x0 = rng.standard_normal(shape) * (1.0 + 9.0 * trial)
        p = torch.from_numpy(x0).requires_grad_(True)
        state = None
        for _ in range(5):
            p, state = tm.step(p, state, f, tm.closure)
            state = dict(state)
            history.append({k: _to_numpy(v) for k, v in state.items() if v is not None})
    return history


class _Zero:
    def value(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(X.shape[0])

    def grad(self, X: np.ndarray) -> np.ndarray:
        return np.zeros_like(X)

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.zeros_like(X)


def _build(name: str, hp: dict[str, Any], cls: Any, fresh: bool, per_row: bool,
           use_closure: bool, create_graph: bool, counters: set[str]) -> Optimizer:
    torch = _import_torch()
    tm = _TorchMap(cls, hp, closure=use_closure, create_graph=create_graph)
    probe = _template(tm, per_row, 3)
    keys, dtypes, kinds = [], {}, {}
    nones = [k for k, v in probe.items() if v is None]
    for k, v in probe.items():
        if v is None:
            continue
        if not isinstance(k, str):
            raise _LayoutError(f"state key {k!r} is not a string")
        if torch.is_tensor(v):
            shape, dtypes[k] = tuple(v.shape), v.dtype
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            shape, dtypes[k] = (), type(v)
        else:
            raise _LayoutError(f"state entry {k!r} is a {type(v).__name__}, not a tensor")
        if shape == ():
            kinds[k] = "scalar"
        elif per_row:
            kinds[k] = "row"
        elif shape == (1, 3):
            kinds[k] = "buffer"
        else:
            raise _LayoutError(f"state entry {k!r} has shape {shape} for a parameter of "
                               "shape (1, 3): not one value per element")
        keys.append(k)
    with np.errstate(all="ignore"):
        history = _history(tm, per_row)
    nonneg = {k for k in nonnegative_buffers(history) & set(keys) if kinds[k] != "scalar"}
    nonneg = {k for k in nonneg if np.all(_to_numpy(probe[k]) >= 0)}
    lay = _Layout(keys, kinds, counters, fresh)
    def init(X: np.ndarray) -> State:
        """The framework's state after one step with zero gradient at X (what it holds at
        a critical point: buffers exist, first-step special cases are over), x = X."""
        X = np.asarray(X, dtype=float)
        B = X.shape[0]
        if per_row:
            rows = [_template_at(tm, X[i]) for i in range(B)]
            ent = {k: np.stack([r[k] for r in rows]) for k in keys}
        else:
            t = _template_at(tm, X)
            ent = {k: (np.full(B, float(t[k])) if kinds[k] == "scalar" else t[k]) for k in keys}
        out: list[np.ndarray] = [X.copy()]
        for k in lay.lifted:
            out.append(np.zeros(B) if k == _T else np.array(ent[k], dtype=float))
        return tuple(out)

    def load(arrs: dict[str, np.ndarray], rows: Any) -> dict[str, Any]:
        state: dict[str, Any] = {k: None for k in nones}
        for k in keys:
            if k in counters and not fresh:
                v: Any = ASYMPTOTIC_STEP
            else:
                v = arrs[k][rows]
            dt = dtypes[k]
            if kinds[k] == "scalar":
                s = float(np.asarray(v).reshape(-1)[0])
                state[k] = dt(s) if isinstance(dt, type) else torch.tensor(s, dtype=dt)
            else:
                state[k] = torch.from_numpy(np.array(v, dtype=float)).to(dt)
        return state

    def step(state: State, oracle: Any) -> State:
        X = state[0]
        arrs = dict(zip(lay.lifted, state[1:]))
        B = X.shape[0]
        newX = np.empty_like(X)
        new = {k: np.array(arrs[k], dtype=float) for k in lay.lifted}
        for rows, full in _groups(arrs, lay, B, per_row):
            first = 0 if isinstance(rows, slice) else int(rows[0])
            sub = _RowOracle(oracle, X, None if full else rows)
            P = X[first] if per_row else X[rows]
            p = torch.from_numpy(np.array(P, dtype=float)).requires_grad_(tm.closure)
            st = None if fresh and arrs[_T][first] == 0.0 else load(arrs,
                                                                    first if per_row else rows)
            p, st_new = tm.step(p, st, sub, tm.closure)
            newX[rows] = p.detach().numpy()
            for k in lay.lifted:
                if k == _T:
                    new[k][rows] = arrs[k][rows] + 1.0
                    continue
                if st_new.get(k) is None:
                    raise _LayoutError(f"state entry {k!r} disappeared after a step")
                v = _to_numpy(st_new[k])
                new[k][rows] = float(v.reshape(-1)[0]) if kinds[k] == "scalar" else v
        return (newX, *(new[k] for k in lay.lifted))

    domains = tuple(NONNEGATIVE if k in nonneg else None for k in ["", *lay.lifted])
    opt = Optimizer(name=name, hyperparameters=hp, init=init, step=step, region=None,
                    state_domains=domains if nonneg else None)
    object.__setattr__(opt, "_state_names",
                       ["position"] + [f"state {k!r}" for k in lay.lifted])
    object.__setattr__(opt, "_nonneg", [False] + [k in nonneg for k in lay.lifted])
    object.__setattr__(opt, "_per_row", per_row)
    return opt


def _groups(arrs: dict[str, np.ndarray], lay: _Layout, B: int, per_row: bool
            ) -> list[tuple[Any, bool]]:
    """Row groups stepped together: (rows, whether that is the whole batch)."""
    if per_row:
        return [(np.array([i]), B == 1) for i in range(B)]
    if not lay.scalar_keys:
        return [(slice(None), True)]
    cols = np.stack([np.asarray(arrs[k], dtype=float) for k in lay.scalar_keys], axis=1)
    uniq, inv = np.unique(cols, axis=0, return_inverse=True)
    if len(uniq) == 1:
        return [(slice(None), True)]
    inv = inv.reshape(-1)
    return [(np.flatnonzero(inv == j), False) for j in range(len(uniq))]


def _with_hypotheses(opt: Optimizer, fresh: bool, why_rows: str | None) -> Optimizer:
    from dataclasses import replace

    if fresh:
        reason = ("form='fresh' follows the framework's step counter, so the map changes "
                  "from step to step and has no fixed point; verify form='asymptotic'")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            defect = c1_defect(opt.init, opt.step, opt._state_names, opt._nonneg)
        culprits = [n for n, pos in zip(opt._state_names, opt._nonneg)
                    if pos and defect is not None and n in defect]
        reason = None if defect is None else (
            f"{opt.name} is not C¹ at critical points: {defect}"
            + (f". The buffer {culprits[0][6:]} is kept ≥ 0 and is 0 at a critical point, "
               "where an ε added outside √v makes the update non-differentiable"
               if culprits else "") + "; the theorem's hypotheses fail")
    new = replace(opt, outside_hypotheses=reason)
    for attr in ("_state_names", "_nonneg", "_per_row"):
        object.__setattr__(new, attr, getattr(opt, attr))
    object.__setattr__(new, "coupled_rows", why_rows)
    return new
