"""pytest plugin of dynverify: Hypothesis profiles dev/ci/deep (more to come)."""

from __future__ import annotations

from dynverify.profiles import register_profiles

register_profiles()
