"""Shared set-up of the test suite: the deliberately wrong plug-ins are importable."""

import sys
from pathlib import Path

PLUGINS = Path(__file__).parent / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
