import sys

from gslb_twisted.core.process import main

sys.exit(main(sys.argv[1:]))
