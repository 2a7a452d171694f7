"""``dynverify.strategies`` when dynverify is imported from the repository's source tree.

The repository keeps the Hypothesis strategies in a top-level ``strategies/`` folder;
installation maps that folder to the subpackage ``dynverify.strategies`` (setuptools
``package-dir``), so nothing is installed under the generic top-level name
``strategies``. When ``dynverify`` itself is imported from the source tree (tests run
from the repository root, where the working directory's ``dynverify/`` shadows an
installed copy, or an editable install), there is no ``dynverify/strategies/`` folder:
this finder resolves exactly that one name, and its submodules, to the sibling folder.
It answers no other name, so nothing else in the repository becomes importable.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

NAME = "dynverify.strategies"


class _StrategiesFinder:
    """Meta-path finder for ``dynverify.strategies`` mapped to ``<repo>/strategies``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> Any:
        if fullname != NAME:
            return None  # submodules are found through the package's __path__
        return importlib.util.spec_from_file_location(
            NAME, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)])


def install(package_dir: str | Path) -> None:
    """Map ``dynverify.strategies`` to the sibling ``strategies/`` folder if that is the
    layout (no ``dynverify/strategies`` subpackage, a ``strategies/__init__.py`` beside)."""
    here = Path(package_dir)
    if (here / "strategies" / "__init__.py").is_file():
        return  # an installed copy: the subpackage is really there
    folder = here.parent / "strategies"
    if not (folder / "__init__.py").is_file():
        return
    if any(isinstance(f, _StrategiesFinder) for f in sys.meta_path):
        return
    # before the path finders, so that a top-level `strategies` on sys.path is never used
    sys.meta_path.insert(0, _StrategiesFinder(folder.resolve()))



install(Path(__file__).resolve().parent)
