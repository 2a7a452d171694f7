"""Shared set-up of the test suite.

- ``CI=true`` loads dynverify's derandomized ``dynverify-ci`` Hypothesis profile (unless
  ``--hypothesis-profile`` chooses another), and derandomizes ``dynverify-dev`` (which
  many tests name explicitly), so CI is deterministic. Hypothesis' own
  ``ci`` profile, which Hypothesis loads under ``CI=true``, is left as it is.
- The deliberately wrong plug-ins in tests/plugins are importable.
- Under ``CI=true`` every optional framework must import (CI installs all extras), so
  a test guarded by ``pytest.importorskip`` can never be skipped silently in CI.
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
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if CI:
    settings.load_profile("dynverify-ci")
    # tests that ask for the quick `dev` profile by name are deterministic in CI too
    settings.register_profile("dynverify-dev", settings(settings.get_profile("dynverify-dev"),
                                                        derandomize=True, database=None))
    # the extras of the `test` extra: torch, jax/optax, dask, scikit-learn, matplotlib
    import distributed  # noqa: F401
    import jax  # noqa: F401
    import matplotlib  # noqa: F401
    import optax  # noqa: F401
    import sklearn  # noqa: F401
    import torch  # noqa: F401

PLUGINS = Path(__file__).parent / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

os.environ.setdefault("DYNVERIFY_REPORTS",
                      tempfile.mkdtemp(prefix="dynverify-test-reports-"))
