"""C{python -m gslb_twisted.nsimport ARGS}: the C{gslb-import} command."""

import sys

from .cli import main

sys.exit(main())
