"""dynverify's Hypothesis settings profiles, under names of their own.

=================  =========================================================================
``dynverify-dev``  20 examples per optimizer × claim: a quick look while developing
``dynverify-ci``   40 examples, derandomized, no example database: deterministic CI runs
``dynverify-deep`` 1000 examples, no deadline, ``hypothesis.target`` toward r = 1
=================  =========================================================================

The command line and :func:`dynverify.check_optimizer` call them by their short names
``dev``, ``ci`` and ``deep`` (:func:`resolve`). Registering a profile loads nothing, and
dynverify never touches a profile it does not own: Hypothesis' own ``ci`` profile (loaded
automatically when ``CI=true``) and any profile a project registers keep their settings.

The one exception is a convenience: ``pytest --hypothesis-profile=deep`` has always meant
"the thorough run", so the pytest plugin also registers ``deep`` as the same settings as
``dynverify-deep`` **only when no profile of that name exists yet**, and never overwrites
it afterwards. A project that registers its own ``deep`` (in a conftest.py, which pytest
loads after plugins) replaces the alias and keeps its own settings.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, settings

#: short name (CLI, check_optimizer) -> dynverify's Hypothesis profile
PROFILES = {"dev": "dynverify-dev", "ci": "dynverify-ci", "deep": "dynverify-deep"}
#: registered as an alias of dynverify-deep when no profile of that name exists
ALIAS = ("deep", "dynverify-deep")


def _definitions() -> dict[str, settings]:
    slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
    # the explain phase costs seconds per failure and adds little to these reports
    quick = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
    # parent=settings.get_profile("default"): independent of whatever profile is loaded
    base = settings.get_profile("default")
    return {
        "dynverify-dev": settings(base, max_examples=20, deadline=None, phases=quick,
                                  suppress_health_check=slow_ok),
        "dynverify-ci": settings(base, max_examples=40, deadline=None, derandomize=True,
                                 print_blob=True, database=None, phases=quick,
                                 suppress_health_check=slow_ok),
        "dynverify-deep": settings(base, max_examples=1000, deadline=None, print_blob=True,
                                   suppress_health_check=slow_ok,
                                   phases=[Phase.explicit, Phase.reuse, Phase.generate,
                                           Phase.target, Phase.shrink]),
    }


def _exists(name: str) -> bool:
    try:
        settings.get_profile(name)
    except Exception:  # noqa: BLE001 -- InvalidArgument: no such profile
        return False
    return True


def register_profiles(*, alias: bool = False) -> None:
    """Register dynverify's profiles with Hypothesis; idempotent, never overwrites.

    Args:
        alias: also register ``deep`` (as ``dynverify-deep``) if no ``deep`` exists.
    """
    for name, s in _definitions().items():
        if not _exists(name):
            settings.register_profile(name, s)
    name, target = ALIAS
    if alias and not _exists(name):
        settings.register_profile(name, settings.get_profile(target))


def resolve(profile: Any) -> settings:
    """The Hypothesis settings for ``profile``.

    ``None``: the active profile (what ``--hypothesis-profile`` or
    ``settings.load_profile`` selected); ``"dev"``, ``"ci"``, ``"deep"``: dynverify's own
    profiles; any other string: a registered Hypothesis profile; a ``settings`` object:
    itself. Raises ValueError for an unknown name.
    """
    register_profiles()
    if profile is None:
        return settings()
    if isinstance(profile, settings):
        return profile
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a name or hypothesis.settings, got {profile!r}")
    name = PROFILES.get(profile, profile)
    if not _exists(name):
        raise ValueError(f"unknown Hypothesis profile {profile!r}; dynverify's: "
                         f"{', '.join(PROFILES)} (or any registered profile name)")
    return settings.get_profile(name)


def active_name() -> str:
    """The name of the active Hypothesis profile."""
    return settings.get_current_profile_name()
