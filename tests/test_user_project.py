"""dynverify inside someone else's project (issue 11 §1–4), as a user meets it: a throw-away
project with its own conftest.py, optimizer module and tests, run by pytest in a
subprocess, with and without ``CI=true`` and ``--hypothesis-profile``.

The project keeps its runs small through its own profiles (``few``: 3 examples, and its
own ``deep``: 5), which is exactly what must govern ``check_optimizer``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynverify.check import claim_examples

CONFTEST = """
from hypothesis import Phase, settings

settings.register_profile("few", max_examples=3, deadline=None, database=None,
                          phases=[Phase.generate, Phase.shrink])
"""
OWN_DEEP = """
settings.register_profile("deep", max_examples=5, deadline=None, database=None,
                          phases=[Phase.generate, Phase.shrink])
"""
OPTIM = '''
from hypothesis import strategies as st

import dynverify


@dynverify.register_optimizer(
    hyperparameters=st.fixed_dictionaries({"lr": st.floats(0.05, 1.0)}))
def claimed_gd(lr):
    """Gradient descent, declared stable for lambda <= 3/lr (really 2/lr)."""
    return dynverify.Optimizer(
        name="claimed_gd", hyperparameters={"lr": lr}, init=lambda X: (X,),
        step=lambda s, f: (s[0] - lr * f.grad(s[0]),),
        region=dynverify.Region([(0.0, 3.0 / lr)]))
'''
TESTS = '''
from hypothesis import given, settings, strategies as st

import dynverify
from my_optim import claimed_gd

PLAIN = []


@given(st.integers())
def test_plain(x):
    PLAIN.append(x)


def test_plain_count():
    print(f"PLAIN examples={len(PLAIN)} profile={settings.get_current_profile_name()}")


def test_active_profile_governs():
    res = dynverify.check_optimizer("gradient_descent", claims=["filter_agrees"],
                                    reports=None)
    (cr,) = res.results
    print(f"CHECK cases={sum(cr.counts.values())} profile={res.profile}")
    assert res.ok


def test_deep_alias():
    print(f"DEEP max_examples={settings().max_examples}")


def test_claimed_gd():
    dynverify.assert_verified(claimed_gd, claims=["filter_agrees"])
'''


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "my_optim.py").write_text(OPTIM)
    (root / "tests" / "test_x.py").write_text(TESTS)
    return root


def pytest_run(root: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "DYNVERIFY_REPORTS", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    # the project's own module, as `pip install -e .` would
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "tests/test_x.py", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def value(out: str, tag: str, key: str) -> str:
    m = re.search(rf"\b{tag} [^\n]*?\b{key}=(\S+)", out)
    assert m, out
    return m.group(1)


def test_ci_true_leaves_hypothesis_own_ci_profile_alone(project):
    res = pytest_run(project, "-k", "plain", ci=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # Hypothesis' own `ci` profile (100 examples), not a profile dynverify re-registered
    assert value(res.stdout, "PLAIN", "examples") == "100"
    assert value(res.stdout, "PLAIN", "profile") == "ci"


def test_hypothesis_profile_option_governs_check_optimizer(project):
    res = pytest_run(project, "-k", "active", "--hypothesis-profile=few")
    assert res.returncode == 0, res.stdout + res.stderr
    # claim 1 runs claim_examples(3) = 4 × 3, not the default profile's 4 × 100; the
    # project's run is not derandomized, and Hypothesis may repeat a draw (11 of 12 seen
    # once in about ten runs), which it does not count twice
    n = int(value(res.stdout, "CHECK", "cases"))
    assert claim_examples("filter_agrees", 3) - 3 <= n <= claim_examples("filter_agrees", 3)
    assert value(res.stdout, "CHECK", "profile") == "few"


def test_a_projects_own_deep_profile_is_kept_and_governs(project):
    (project / "tests" / "conftest.py").write_text(CONFTEST + OWN_DEEP)
    res = pytest_run(project, "-k", "active or plain", "--hypothesis-profile=deep")
    assert res.returncode == 0, res.stdout + res.stderr
    # the project's 5, not dynverify's 1000: claim 1 runs 4 × 5 (Hypothesis may repeat one)
    assert 5 < int(value(res.stdout, "CHECK", "cases")) <= claim_examples("filter_agrees", 5)
    assert value(res.stdout, "PLAIN", "examples") == "5"
    assert value(res.stdout, "CHECK", "profile") == "deep"


def test_without_a_projects_deep_the_option_means_dynverifys_deep(project):
    res = pytest_run(project, "-k", "alias", "--hypothesis-profile=deep")
    assert res.returncode == 0, res.stdout + res.stderr
    assert value(res.stdout, "DEEP", "max_examples") == "1000"


def test_assert_verified_failure_is_readable_and_replays_from_anywhere(project, tmp_path):
    res = pytest_run(project, "-k", "claimed_gd", "--hypothesis-profile=few")
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    lines = [ln[2:].strip() for ln in out.splitlines() if ln.startswith("E ")]
    text = "\n".join(lines)
    assert "claimed_gd is not verified: 1 counterexample (Hypothesis profile 'few')" in text
    assert "\\n" not in text  # one table line per line, no literal escapes
    header = next(ln for ln in lines if ln.startswith("optimizer"))
    assert header.split()[:3] == ["optimizer", "claim", "cases"]
    row = next(ln for ln in lines if ln.startswith("claimed_gd"))
    assert row.split()[1] == "filter_agrees" and row.split()[4] == "1"
    # the key fact first (a witness eigenvalue), then the reason
    assert "counterexample claimed_gd/filter_agrees: λ = " in text
    assert "declared filter differs from the derived filter" in text
    # records were written by default into the project's reports/runs
    m = re.search(r"dynverify replay (\S+\.json)", text)
    assert m, text
    path = project / m.group(1)
    assert path.is_file() and path.is_relative_to(project / "reports" / "runs")
    rec = json.loads(path.read_text())
    assert rec["optimizer"]["factory"] == "my_optim:claimed_gd"
    assert rec["optimizer"]["file"] == str((project / "my_optim.py").resolve())
    # replay from another directory, without PYTHONPATH: the recorded file is used
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    rep = subprocess.run([sys.executable, "-m", "dynverify", "replay", str(path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 1, rep.stdout + rep.stderr
    assert "counterexample reproduces" in rep.stdout


SCRIPT = OPTIM + '''

if __name__ == "__main__":
    res = dynverify.check_optimizer(claimed_gd, claims=["filter_agrees"], profile="dev")
    print(res)
'''


def test_a_factory_defined_in_a_script_replays_from_another_process(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI",
                                                            "DYNVERIFY_REPORTS")}
    res = subprocess.run([sys.executable, "script.py"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"dynverify replay (\S+\.json)", res.stdout)
    assert m, res.stdout + res.stderr
    path = work / m.group(1)
    assert json.loads(path.read_text())["optimizer"]["factory"] == "__main__:claimed_gd"
    rep = subprocess.run([sys.executable, "-m", "dynverify", "replay", str(path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 1, rep.stdout + rep.stderr
    assert "counterexample reproduces" in rep.stdout


def test_a_closure_factory_says_at_record_time_that_it_cannot_be_replayed(tmp_path):
    import dynverify

    def make(lr):
        return dynverify.Optimizer(name="inner_gd", hyperparameters={"lr": lr},
                                   init=lambda X: (X,),
                                   step=lambda s, f: (s[0] - lr * f.grad(s[0]),),
                                   region=dynverify.Region([(0.0, 3.0 / lr)]))

    from hypothesis import strategies as st

    res = dynverify.check_optimizer(
        make, hyperparameters=st.fixed_dictionaries({"lr": st.floats(0.05, 1.0)}),
        claims=["filter_agrees"], profile="dev", reports=tmp_path)
    assert not res.ok
    text = str(res)
    assert "not replayable from another process" in text
    assert "defined inside test_a_closure_factory_says" in text
    assert "dynverify replay" not in text
