"""Where a factory comes from, so that another process can import it again on replay.

A counterexample record names its optimizer's factory by import path (``module:qualname``)
and by the module's file. Replay tries, in order: the registered name, the import path,
and the file (imported under its module name with the right folder on ``sys.path``, or,
for a script run as ``__main__``, executed as a module of its own). A factory that no
other process can find (a lambda, a function defined inside another function) is recorded
with the reason, which the summary shows instead of a replay command.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

#: module name a script (recorded as __main__) is loaded under on replay
SCRIPT_MODULE = "_dynverify_replayed_script"


def factory_location(factory: Any) -> dict[str, Any]:
    """The record fields that locate ``factory``: ``factory`` (``module:qualname``),
    ``file`` (absolute), ``file_relative`` (to the working directory, when inside it),
    and ``not_replayable`` (a reason) when another process cannot import it."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None) or getattr(factory, "__name__", None)
    out: dict[str, Any] = {"factory": None}
    if not module or not qualname:
        out["not_replayable"] = (f"the factory {factory!r} has no module and name; define it "
                                 "with def at the top level of a module")
        return out
    if "<lambda>" in qualname:
        out["not_replayable"] = (f"the factory {module}:{qualname} is a lambda; define it with "
                                 "def at the top level of a module")
        return out
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>", 1)[0]
        out["not_replayable"] = (f"the factory {module}:{qualname} is defined inside "
                                 f"{outer}(); define it at the top level of a module")
        return out
    out["factory"] = f"{module}:{qualname}"
    try:
        file = inspect.getsourcefile(factory) or inspect.getfile(factory)
    except TypeError:
        file = None
    if file and os.path.isfile(file):
        path = Path(file).resolve()
        out["file"] = str(path)
        try:
            out["file_relative"] = str(path.relative_to(Path.cwd().resolve()))
        except ValueError:
            pass
    elif module == "__main__":
        out["not_replayable"] = (f"the factory {qualname} was defined in an interactive "
                                 "session; define it in a module file")
    return out


def _import_root(path: Path, module: str) -> Path:
    """The sys.path entry from which ``module`` is ``path`` (a.b.c in root/a/b/c.py)."""
    depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return root


def import_from_file(module: str, file: str | os.PathLike[str]) -> Any:
    """The module ``module`` imported from ``file`` (LookupError if it cannot be)."""
    path = Path(file)
    if not path.is_file():
        raise LookupError(f"{path}: no such file")
    if module == "__main__":
        # a script: its folder on sys.path for its own imports, run under a name of its own
        # (its `if __name__ == "__main__":` block does not run)
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, path)
        if spec is None or spec.loader is None:
            raise LookupError(f"{path}: not a Python module")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[SCRIPT_MODULE] = mod
        spec.loader.exec_module(mod)
        return mod
    root = str(_import_root(path, module))
    if root not in sys.path:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    return importlib.import_module(module)


def locate(record: dict[str, Any]) -> Any:
    """The factory (or registration) of an optimizer record, imported again.

    Tries the import path, then the recorded file (absolute, then relative to the working
    directory). Raises LookupError naming every attempt when nothing works.
    """
    path = record.get("factory")
    if not isinstance(path, str) or ":" not in path:
        why = record.get("not_replayable") or "the record names no importable factory"
        raise LookupError(why)
    module, _, qualname = path.partition(":")
    attempts: list[str] = []
    mod = None
    if module != "__main__":
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            attempts.append(f"import {module}: {exc}")
    if mod is None:
        files = [f for f in (record.get("file"), record.get("file_relative"))
                 if isinstance(f, str)]
        for f in files:
            try:
                mod = import_from_file(module, f)
                break
            except (LookupError, ImportError) as exc:
                attempts.append(f"{f}: {exc}")
        if mod is None and not files:
            attempts.append("no file recorded")
    if mod is None:
        raise LookupError(f"cannot import the factory {path}: " + "; ".join(attempts))
    obj: Any = mod
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise LookupError(f"{path}: {exc}") from exc
    return obj
