"""Shared set-up of the test suite.

- ``CI=true`` loads dynverify's derandomized ``dynverify-ci`` Hypothesis profile (unless
  ``--hypothesis-profile`` chooses another), so CI is deterministic. Hypothesis' own
  ``ci`` profile, which Hypothesis loads under ``CI=true``, is left as it is.
- The deliberately wrong plug-ins in tests/plugins are importable.
- Records that ``check_optimizer`` writes by default go to a temporary directory, not
  into the repository's reports/runs.
"""

import os
import sys
import tempfile
from pathlib import Path

from hypothesis import settings

from dynverify.profiles import register_profiles

register_profiles()
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("dynverify-ci")

PLUGINS = Path(__file__).parent / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

os.environ.setdefault("DYNVERIFY_REPORTS",
                      tempfile.mkdtemp(prefix="dynverify-test-reports-"))
