"""pytest plugin: dynverify's Hypothesis profiles, optimizer selection, records, summary.

Registered through the ``pytest11`` entry point, so it is active wherever dynverify is
installed. It registers dynverify's own Hypothesis profiles (``dynverify-dev``,
``dynverify-ci``, ``dynverify-deep``, and ``deep`` unless a profile of that name exists;
see :mod:`dynverify.profiles`) and loads none of them: the profile a project selects
(``--hypothesis-profile``, ``settings.load_profile``, Hypothesis' own ``ci`` under
``CI=true``) stays in charge, of the property suite and of ``check_optimizer`` alike.
The property suite itself lives in :mod:`dynverify.suite`; run it with
``pytest --pyargs dynverify.suite`` from any project, or import its test into a test file.

Options:
    --dynverify-optimizer NAME   repeatable; a registered name or module:factory
                                 (default: every registered optimizer)
    --dynverify-reports DIR      where run directories go (default: $DYNVERIFY_REPORTS,
                                 else reports/runs)
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from dynverify.profiles import register_profiles

# at plugin load, before any conftest.py: a project's own `deep` replaces the alias
register_profiles(alias=True)

_RESULTS_KEY = "dynverify"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynverify")
    group.addoption("--dynverify-optimizer", action="append", default=None, metavar="NAME",
                    help="optimizer to verify (repeatable; registered name or "
                         "module:factory; default: all registered)")
    group.addoption("--dynverify-reports", default=None, metavar="DIR",
                    help="directory of run directories (default: $DYNVERIFY_REPORTS, "
                         "else reports/runs)")


def pytest_configure(config: pytest.Config) -> None:
    from dynverify.records import new_run_id

    worker = getattr(config, "workerinput", None)
    config._dynverify_run_id = (worker or {}).get("dynverify_run_id") or new_run_id()
    chosen = config.getoption("--dynverify-optimizer")
    if chosen:
        from dynverify.registry import UnknownOptimizerError, resolve

        for name in chosen:
            try:
                resolve(name)
            except UnknownOptimizerError as exc:
                raise pytest.UsageError(f"--dynverify-optimizer: {exc}") from None


# optional: the hook only exists when pytest-xdist is installed
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist (controller side): all workers write into the controller's run directory."""
    node.workerinput["dynverify_run_id"] = node.config._dynverify_run_id


def selected_optimizers(config: pytest.Config) -> list[str]:
    from dynverify.registry import registered

    chosen = config.getoption("--dynverify-optimizer")
    return list(dict.fromkeys(chosen)) if chosen else sorted(registered())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from dynverify.claims import CLAIMS

    names = metafunc.fixturenames
    if "dynverify_optimizer" in names and "dynverify_claim" in names:
        opts = selected_optimizers(metafunc.config)
        metafunc.parametrize(("dynverify_optimizer", "dynverify_claim"),
                             [(o, c) for o in opts for c in CLAIMS],
                             ids=[f"{o}-{c}" for o in opts for c in CLAIMS])


def writer_for(config: pytest.Config) -> Any:
    """This process's RunWriter (created on first use, so plain test runs write nothing)."""
    w = getattr(config, "_dynverify_writer", None)
    if w is None:
        from dynverify.records import RunWriter

        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        w = RunWriter(config.getoption("--dynverify-reports"), config._dynverify_run_id,
                      worker=worker, meta={"source": "pytest"})
        config._dynverify_writer = w
    return w


@pytest.fixture
def dynverify_runner(request: pytest.FixtureRequest, dynverify_optimizer: str,
                     dynverify_claim: str) -> Any:
    """The ClaimRunner of one optimizer × claim test item (shared by its examples)."""

    from dynverify.check import ClaimRunner
    from dynverify.registry import resolve

    runner = ClaimRunner(resolve(dynverify_optimizer), dynverify_claim,
                         writer=writer_for(request.config))
    request.node._dynverify_runner = runner
    return runner


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    rep = outcome.get_result()
    runner = getattr(item, "_dynverify_runner", None)
    if runner is None or call.when != "call":
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    result = runner.finish(exc)
    rep.user_properties.append((_RESULTS_KEY, result.to_json()))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == _RESULTS_KEY:
            _COLLECTED.append(value)


_COLLECTED: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config
                            ) -> None:
    if getattr(config, "workerinput", None) is not None or not _COLLECTED:
        return
    from dynverify.check import ClaimResult
    from dynverify.records import RunWriter, default_root
    from dynverify.summary import render_text

    tr = terminalreporter
    tr.section("dynverify summary")
    results = [ClaimResult.from_json(r) for r in _COLLECTED]
    for line in render_text(results, optimizers=selected_optimizers(config)).splitlines():
        tr.write_line(line)
    root = config.getoption("--dynverify-reports") or default_root()
    run_dir = os.path.join(root, config._dynverify_run_id)
    if os.path.isdir(run_dir):
        w = RunWriter(root, config._dynverify_run_id, worker="summary")
        w.summary({"results": _COLLECTED})
        w.close()
        tr.write_line(f"records: {run_dir}  (dynverify report {run_dir})")


def pytest_unconfigure(config: pytest.Config) -> None:
    w = getattr(config, "_dynverify_writer", None)
    if w is not None:
        w.close()
    _COLLECTED.clear()
