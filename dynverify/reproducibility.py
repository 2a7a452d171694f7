"""Same seed, same run: whatever modules the calling process happens to have loaded.

Hypothesis (≥ 6.13x) sometimes draws "local constants": the numeric and string literals
found in the source of every *local* module in ``sys.modules`` (not stdlib, not
site-packages, not test files). Which modules are loaded differs between
``dynverify check`` and a script calling :func:`dynverify.check_optimizer` (the CLI
module, the user's own ``__main__``, lazily imported helpers), and grows during a run, so
the same seed drew different cases. :func:`fixed_constants` empties that pool for the
duration of a run; the global constants Hypothesis always uses are a fixed list and
stay. Hypothesis offers no setting for this, so the hook is its provider's module-level
``_get_local_constants``; if a future Hypothesis moves it, nothing is patched
(``tests/test_reproducibility.py`` then fails and says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()


def _providers() -> Any:
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - another Hypothesis layout
        return None
    if not (hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants")):
        return None  # pragma: no cover
    return providers


def local_constants_controlled() -> bool:
    """Whether this Hypothesis has the local-constants hook :func:`fixed_constants` uses."""
    return _providers() is not None


@contextlib.contextmanager
def fixed_constants() -> Iterator[None]:
    """Within the block, Hypothesis draws no constants from the source of loaded modules."""
    providers = _providers()
    if providers is None:  # pragma: no cover
        yield
        return
    empty = providers.Constants()
    with _lock:
        original = providers._get_local_constants
        providers._get_local_constants = lambda: empty
        providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        with _lock:
            providers._get_local_constants = original
            providers.CONSTANTS_CACHE.cache.clear()


def stable_seed(*parts: bytes | str | int | float) -> int:
    """A 32-bit seed from its parts, identical in every process (unlike salted ``hash``).

    Example:
        >>> stable_seed(b"abc") == stable_seed(b"abc")
        True
    """
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        b = p if isinstance(p, bytes) else repr(p).encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return int.from_bytes(h.digest(), "little") % 2**32


__all__ = ["fixed_constants", "local_constants_controlled", "stable_seed"]
