"""An optax ``GradientTransformation`` (factory + keyword arguments) as a dynverify optimizer.

Example:
    >>> import optax
    >>> from dynverify.adapters import optax_optimizer
    >>> opt = optax_optimizer(optax.sgd, learning_rate=0.1, momentum=0.9)
    >>> opt.name, dict(opt.hyperparameters)
    ('optax.sgd', {'learning_rate': 0.1, 'momentum': 0.9})
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dynverify.adapters._core import (
    AdapterError,
    RandomProblem,
    c1_defect,
    nonnegative_buffers,
    pow2,
    run_states,
    separability_defect,
)
from dynverify.optimizer import Optimizer, State

FORMS = ("asymptotic", "fresh")


def _import_jax() -> tuple[Any, Any, Any]:
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:  # pragma: no cover - exercised without jax only
        raise ImportError("dynverify.adapters.optax needs jax and optax: "
                          "pip install 'dynverify[jax]'") from exc
    # float64 throughout: optax runs in the dtype of the parameters, and jax makes
    # float32 arrays unless x64 is enabled (a process-wide jax setting)
    jax.config.update("jax_enable_x64", True)
    return jax, jnp, optax


def _factory_name(factory: Any) -> str:
    mod = getattr(factory, "__module__", "") or ""
    qual = getattr(factory, "__qualname__", None) or getattr(factory, "__name__", repr(factory))
    if mod.startswith("optax"):
        top = "optax.contrib" if mod.startswith("optax.contrib") else "optax"
        return f"{top}.{qual}"
    return f"{mod}.{qual}" if mod else qual


class _Compiled:
    """The vmapped, jitted per-trajectory update; counts its compilations."""

    def __init__(self) -> None:
        self.compilations = 0


#: compiled updates shared by adapters that differ only in float hyperparameters (those
#: are traced arguments), so that drawing new hyperparameters does not recompile
_CACHE: dict[Any, tuple[Any, Any, _Compiled, bool]] = {}


def _compiled(factory: Any, hp: dict[str, Any], treedef: Any, kinds: list[str],
              dtypes: list[Any], lifted: list[int]) -> tuple[Any, Any, _Compiled, Any]:
    """(jitted vmapped update, jitted vmapped init, compile counter, dynamic arguments).

    Float hyperparameters are passed as traced scalars when the factory accepts them
    (it does arithmetic on them); one that branches on a value in Python is compiled
    with its hyperparameters as constants instead.
    """
    jax, jnp, optax = _import_jax()
    floats = {k: v for k, v in hp.items() if isinstance(v, float)}
    static = {k: v for k, v in hp.items() if k not in floats}
    try:
        key: Any = (factory, tuple(sorted(static.items())), tuple(sorted(floats)), treedef,
                    tuple(kinds), tuple(str(d) for d in dtypes), tuple(lifted))
        hash(key)
    except TypeError:
        key = None
    for traced_hp in (True, False):
        if traced_hp and key is not None and (key, True) in _CACHE:
            update, init_rows, comp, _ = _CACHE[(key, True)]
            return update, init_rows, comp, {k: jnp.float64(v) for k, v in floats.items()}
        comp = _Compiled()

        def make(dyn: dict[str, Any], traced: bool = traced_hp) -> Any:
            return factory(**static, **dyn) if traced else factory(**hp)

        def full_leaves(lifted_vals: list[Any]) -> list[Any]:
            out, it = [], iter(lifted_vals)
            for i, k in enumerate(kinds):
                if i in lifted:
                    v = next(it)
                    out.append(v.astype(dtypes[i]) if k == "counter" else v)
                else:  # asymptotic: a saturated counter
                    out.append(jnp.asarray(jnp.iinfo(dtypes[i]).max, dtype=dtypes[i]))
            return out

        def traced(dyn: dict[str, Any], Z: Any, G: Any, comp: _Compiled = comp,
                   make: Any = make) -> Any:
            """Z = [x | lifted leaves, flattened per row] (n, K) ↦ the same after a step:
            one array in, one out (each array crossing costs as much as the update)."""
            comp.compilations += 1  # runs once per compilation (at trace time)
            tx = make(dyn)
            n, d = G.shape
            spec = jax.eval_shape(tx.init, jax.ShapeDtypeStruct((d,), jnp.float64))
            shapes = [tuple(leaf.shape) for leaf in jax.tree_util.tree_leaves(spec)]
            sizes = [d] + [math.prod(shapes[i]) for i in lifted]
            cuts = np.cumsum(sizes)[:-1].tolist()
            parts = jnp.split(Z, cuts, axis=1)
            X = parts[0]
            L = [p.reshape((n, *shapes[i])) for p, i in zip(parts[1:], lifted)]

            def one(x: Any, lv: list[Any], g: Any) -> Any:
                st = jax.tree_util.tree_unflatten(treedef, full_leaves(lv))
                updates, new_st = tx.update(g, st, x)
                new_leaves = jax.tree_util.tree_leaves(new_st)
                return jnp.concatenate([optax.apply_updates(x, updates)] + [
                    new_leaves[i].astype(jnp.float64).reshape(-1) for i in lifted])

            return jax.vmap(one)(X, L, G)

        def init_traced(dyn: dict[str, Any], X: Any, make: Any = make) -> Any:
            return jax.vmap(make(dyn).init)(X)

        update, init_rows = jax.jit(traced), jax.jit(init_traced)
        dyn = {k: jnp.float64(v) for k, v in floats.items()} if traced_hp else {}
        if not traced_hp:
            return update, init_rows, comp, dyn
        try:  # does the factory trace with its floats as arguments?
            Z = jnp.zeros((8, 3))
            L = [leaf for leaf in jax.tree_util.tree_leaves(init_rows(dyn, Z))]
            update(dyn, jnp.concatenate([Z] + [L[i].astype(jnp.float64).reshape(8, -1)
                                              for i in lifted], axis=1), Z)
        except Exception:  # noqa: BLE001 -- Python branching on a value: compile constants
            continue
        if key is not None:
            _CACHE[(key, True)] = (update, init_rows, comp, True)
        return update, init_rows, comp, dyn
    raise AssertionError("unreachable")


def optax_optimizer(factory: Any, /, *, form: str = "asymptotic",
                    **hyperparameters: Any) -> Optimizer:
    """``factory(**hyperparameters)`` (an optax GradientTransformation) as an Optimizer.

    Each trajectory is its own parameter vector of shape (d,): the transformation's
    ``update`` is mapped over the rows with ``jax.vmap`` and compiled with ``jax.jit``,
    so B trajectories advance in one call and a transformation that takes norms (global
    clipping, factored moments) still sees one trajectory at a time: rows are
    independent by construction (and checked). Batches are padded to powers of two so
    that rows leaving the active set do not trigger a compilation per batch size
    (``opt.compilations`` counts them). Runs in float64 (enables ``jax_enable_x64``).

    The lifted state is x followed by the leaves of the optax state (``mu``, ``nu``, …),
    each with a leading batch axis; ``init(X)`` is exactly ``tx.init`` per row.

    Args:
        factory: a function returning a GradientTransformation (``optax.sgd``, your own).
        form: ``"asymptotic"`` (default) replaces every integer leaf (step counts, which
            feed bias corrections and schedules) by the int32 saturation value, where
            optax's own saturating increment leaves it unchanged and bias corrections
            are exactly 1; ``"fresh"`` keeps counts as state columns starting at 0,
            reproducing optax bit for bit from step 0, and is reported outside the
            hypotheses (the map changes with the count).
        **hyperparameters: keyword arguments of ``factory`` (JSON values).

    Raises:
        AdapterError: the factory fails or does not return a GradientTransformation, or
            its state has leaves that are neither floats nor integer counters.
    """
    jax, jnp, optax = _import_jax()
    if form not in FORMS:
        raise AdapterError(f"form must be one of {FORMS}, got {form!r}")
    if not callable(factory):
        raise AdapterError(f"optax_optimizer needs a factory of GradientTransformations, "
                           f"got {factory!r}")
    name = _factory_name(factory)
    hp = dict(hyperparameters)
    try:
        tx = factory(**hp)
    except Exception as exc:  # noqa: BLE001 -- re-raised with the factory named
        raise AdapterError(f"{name}({', '.join(f'{k}={v!r}' for k, v in hp.items())}): "
                           f"{type(exc).__name__}: {exc}") from exc
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise AdapterError(f"{name} returned {type(tx).__name__}, not an optax "
                           "GradientTransformation (init/update)")
    fresh = form == "fresh"
    probe_state = tx.init(jnp.zeros(3, dtype=jnp.float64))
    leaves, treedef = jax.tree_util.tree_flatten(probe_state)
    paths = [jax.tree_util.keystr(p) for p, _ in
             jax.tree_util.tree_flatten_with_path(probe_state)[0]]
    kinds: list[str] = []
    for path, leaf in zip(paths, leaves):
        dt = jnp.asarray(leaf).dtype
        if jnp.issubdtype(dt, jnp.integer):
            kinds.append("counter")
        elif jnp.issubdtype(dt, jnp.floating):
            kinds.append("float")
        else:
            raise AdapterError(f"{name}: state leaf {path} has dtype {dt}, neither a float "
                               "buffer nor an integer counter")
    dtypes = [jnp.asarray(leaf).dtype for leaf in leaves]
    lifted = [i for i, k in enumerate(kinds) if fresh or k == "float"]
    nonneg_mask = [False] * len(leaves)
    update, init_rows, comp, dyn = _compiled(factory, hp, treedef, kinds, dtypes, lifted)

    def init(X: np.ndarray) -> State:
        X = np.asarray(X, dtype=float)
        B = X.shape[0]
        n = pow2(B)
        st = jax.tree_util.tree_leaves(init_rows(dyn, jnp.asarray(np.pad(X, ((0, n - B), (0, 0))))))
        return (X.copy(), *(np.array(st[i], dtype=float)[:B] for i in lifted))

    def step(state: State, oracle: Any) -> State:
        X = state[0]
        B, d = X.shape
        n = pow2(B)
        sizes = [math.prod(s.shape[1:]) for s in state]
        Z = np.zeros((n, sum(sizes)))
        G = np.zeros((n, d))
        j = 0
        for s, k in zip(state, sizes):
            Z[:B, j:j + k] = s.reshape(B, k)
            j += k
        G[:B] = oracle.grad(X)
        out = np.asarray(update(dyn, Z, G))[:B]
        new, j = [], 0
        for s, k in zip(state, sizes):
            new.append(out[:, j:j + k].reshape(s.shape))
            j += k
        return tuple(new)

    opt = Optimizer(name=name, hyperparameters=hp, init=init, step=step, region=None)
    # buffers kept ≥ 0, from runs with mixed-sign gradients
    f = RandomProblem(3, seed=2)
    rng = np.random.default_rng(2)
    try:
        history = []
        for trial in range(2):
            states = run_states(init, step, rng.standard_normal((4, 3)) * (1 + 9 * trial), f, 5)
            history += [{str(j): s for j, s in enumerate(st[1:])} for st in states]
    except Exception as exc:  # noqa: BLE001 -- re-raised with the factory named
        raise AdapterError(f"{name}: update failed on a probe problem: "
                           f"{type(exc).__name__}: {exc}") from exc
    for j in nonnegative_buffers(history):
        i = lifted[int(j)]
        if kinds[i] == "float":
            nonneg_mask[i] = True
    defect = separability_defect(init, step, dim=3)
    if defect is not None:  # vmap makes rows independent; this would be a bug of ours
        raise AdapterError(f"{name}: rows are not independent under jax.vmap ({defect})")
    names = ["position"] + [f"state {paths[i]}" for i in lifted]
    nonneg = [False] + [nonneg_mask[i] for i in lifted]
    if fresh:
        reason: str | None = (
            "form='fresh' follows optax's step count, so the map changes from step to step "
            "and has no fixed point; verify form='asymptotic'")
    else:
        defect = c1_defect(init, step, names, nonneg)
        culprits = [n for n, pos in zip(names, nonneg) if pos and defect and n in defect]
        reason = None if defect is None else (
            f"{name} is not C¹ at critical points: {defect}"
            + (f". The buffer {culprits[0][6:]} is kept ≥ 0 and is 0 at a critical point, "
               "where an ε added outside √v makes the update non-differentiable (use "
               "eps_root > 0)" if culprits else "") + "; the theorem's hypotheses fail")
    from dataclasses import replace

    from dynverify.optimizer import NONNEGATIVE

    domains = tuple(NONNEGATIVE if pos else None for pos in nonneg)
    opt = replace(opt, outside_hypotheses=reason,
                  state_domains=domains if any(nonneg) else None)
    object.__setattr__(opt, "compilations", lambda: comp.compilations)
    return opt
