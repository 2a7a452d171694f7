"""Hypothesis settings profiles: ``dev`` (quick), ``ci`` (derandomized), ``deep`` (thorough).

Registered when dynverify's pytest plugin loads, so ``--hypothesis-profile=deep`` works
from any directory. Registering loads nothing: a project's own Hypothesis tests keep their
settings unless they choose one of these profiles.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

PROFILES = ("dev", "ci", "deep")


def register_profiles() -> None:
    """Register the three profiles with Hypothesis (idempotent)."""
    slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
    # the explain phase costs seconds per failure and adds little to these reports
    quick = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
    settings.register_profile("dev", max_examples=20, deadline=None, phases=quick,
                              suppress_health_check=slow_ok)
    settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                              print_blob=True, database=None, phases=quick,
                              suppress_health_check=slow_ok)
    settings.register_profile("deep", max_examples=1000, deadline=None, print_blob=True,
                              suppress_health_check=slow_ok,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate,
                                      Phase.target, Phase.shrink])
