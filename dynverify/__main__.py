"""``python -m dynverify`` runs the command line."""

import sys

from dynverify.cli import main

sys.exit(main())
