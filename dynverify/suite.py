"""The property suite: every claim on every selected optimizer, as pytest tests.

Run it on every registered optimizer (built-ins and installed plug-ins) from anywhere::

    pytest --pyargs dynverify.suite --hypothesis-profile=deep
    pytest --pyargs dynverify.suite --dynverify-optimizer my_pkg.optim:my_method

or import ``test_claim`` into one of your own test files. The fixtures it uses
(``dynverify_runner`` and the parametrized ``dynverify_optimizer``/``dynverify_claim``)
come from the pytest plugin.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dynverify.check import ClaimRunner


# the runner fixture is deliberately shared by all examples of one test item
@hsettings(report_multiple_bugs=False, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_claim(dynverify_runner: ClaimRunner, data: st.DataObject) -> None:
    """The claim holds on every case Hypothesis draws for this optimizer."""
    case = data.draw(dynverify_runner.strategy(), label="case")
    dynverify_runner.execute(case)


