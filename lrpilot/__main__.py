"""``python -m lrpilot`` runs the ``lrpilot`` command."""

import sys

from lrpilot.cli import main

sys.exit(main())
