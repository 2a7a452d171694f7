"""One-call assertions for a user's own test suite.

``dynverify.assert_verified(my_factory)`` runs the claims (under the active Hypothesis
profile, recording into ``reports/runs`` or ``$DYNVERIFY_REPORTS``) and raises a
:class:`VerificationError` whose message pytest shows as it is: the summary table, each
counterexample's one-line reason and the command that replays it.
"""

from __future__ import annotations

from typing import Any

from dynverify.check import CheckResult, check_optimizer
from dynverify.summary import finding_lines, ordered, reason_lines, summary_table


class VerificationError(AssertionError):
    """An optimizer failed dynverify's claims; the message says where and how to replay."""


VerificationError.__module__ = "dynverify"  # shown as dynverify.VerificationError


def failure_message(result: CheckResult) -> str:
    """The multi-line message of a failed check: verdict line, table, findings, records."""
    results = ordered(result.results)
    cex = sum(1 for r in results if r.counterexample or r.counterexample_path)
    err = sum(1 for r in results if r.error)
    unv = sum(1 for r in results if not r.ok and not r.status.failed)
    what = ", ".join(p for p in (f"{cex} counterexample{'s' * (cex != 1)}" if cex else "",
                                 f"{err} error{'s' * (err != 1)}" if err else "",
                                 f"{unv} claim{'s' * (unv != 1)} not verified" if unv
                                 else "") if p)
    profile = f" (Hypothesis profile {result.profile!r})" if result.profile else ""
    lines = [f"{result.optimizer} is not verified: {what}{profile}", "",
             summary_table(results), ""]
    lines += finding_lines(results)
    lines += reason_lines(results)
    if result.run_dir:
        lines.append(f"records: {result.run_dir}  (dynverify report {result.run_dir})")
    return "\n".join(lines)


def assert_verified(factory: Any, **kwargs: Any) -> CheckResult:
    """Run :func:`dynverify.check_optimizer` and raise :class:`VerificationError` unless
    every claim holds; return the result otherwise.

    Takes the same keyword arguments as ``check_optimizer`` (``hyperparameters``,
    ``claims``, ``profile``, ``reports``, ``settings``, ``seed``).

    Example::

        def test_my_optimizer():
            dynverify.assert_verified(my_optimizer)
    """
    __tracebackhide__ = True  # pytest: the failure points at the user's call
    return check_optimizer(factory, **kwargs).raise_for_failure()
