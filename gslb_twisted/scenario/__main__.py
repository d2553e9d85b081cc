"""C{python -m gslb_twisted.scenario ARGS}: the C{gslb-scenario} command."""

import sys

from gslb_twisted.scenario.cli import main

sys.exit(main())
