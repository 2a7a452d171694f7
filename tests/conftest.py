"""Shared set-up of the test suite.

- ``CI=true`` loads dynverify's derandomized ``ci`` Hypothesis profile (unless
  ``--hypothesis-profile`` chooses another), so CI is deterministic.
- The deliberately wrong plug-ins in tests/plugins are importable.
"""

import os
import sys
from pathlib import Path

from hypothesis import settings

from dynverify.profiles import register_profiles

register_profiles()
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

PLUGINS = Path(__file__).parent / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
