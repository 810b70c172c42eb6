"""``python -m lib``: Steward's command line (see lib.cli)."""

import sys

from lib.cli import main

sys.exit(main())
