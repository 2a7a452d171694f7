"""Packaging: the strategies/ folder installs as ``dynverify.strategies``, never as a
top-level ``strategies`` (which would collide with other packages or a user's module).

Three situations: a wheel installed elsewhere and imported from another directory; the
same installed wheel shadowed by the repository's own ``dynverify/`` (tests run from the
repository root); and this environment (an editable install).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import importlib.util, sys, dynverify, dynverify.strategies as s; "
         "print(dynverify.__file__); print(s.__file__); "
         "print(importlib.util.find_spec('strategies'))")


def _builds_wheels() -> bool:
    try:
        from setuptools.command import bdist_wheel  # noqa: F401 -- setuptools >= 70.1
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel of a copy of the source tree, installed into a target directory."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    for name in ("dynverify", "strategies"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels, site = tmp / "wheels", tmp / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # without build isolation (no network) when this environment's setuptools can build
    # wheels itself (>= 70.1, in the test extra); else pip fetches it, as `pip install .` does
    isolation = ["--no-build-isolation"] if _builds_wheels() else []
    subprocess.run([*pip, "wheel", "--no-deps", *isolation, "-w", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("dynverify-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return wheel, site


def probe(cwd: Path, pythonpath: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return out.splitlines()


def test_wheel_holds_dynverify_strategies_and_no_top_level_strategies(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "dynverify/strategies/__init__.py" in names
    assert "dynverify/strategies/_spectra.py" in names
    assert not [n for n in names if n.startswith("strategies/")]
    top_level = [n for n in names if n.endswith("top_level.txt")]
    for n in top_level:
        assert zipfile.ZipFile(wheel).read(n).decode().split() == ["dynverify"]


def test_installed_wheel_imported_from_another_directory(installed, tmp_path):
    _, site = installed
    dynverify_file, strategies_file, top = probe(tmp_path, site)
    assert Path(dynverify_file).is_relative_to(site)
    assert Path(strategies_file) == site / "dynverify" / "strategies" / "__init__.py"
    assert top == "None"  # `import strategies` finds nothing


def test_repository_root_shadows_the_installed_copy(installed):
    # `python -c` / `python -m pytest` put the working directory first on sys.path
    _, site = installed
    dynverify_file, strategies_file, _ = probe(ROOT, site)
    assert Path(dynverify_file) == ROOT / "dynverify" / "__init__.py"
    assert Path(strategies_file) == ROOT / "strategies" / "__init__.py"


def test_this_environment_maps_the_folder_and_loads_one_copy():
    import dynverify.strategies as s
    from dynverify import check

    assert Path(s.__file__).resolve() == ROOT / "strategies" / "__init__.py"
    assert "strategies" not in sys.modules  # dynverify never imports the top-level name
    assert check.cases  # the case strategy draws from dynverify.strategies
    sub = sys.modules["dynverify.strategies._spectra"]
    assert s.spectra is sub.spectra
