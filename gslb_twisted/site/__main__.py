"""
C{python -m gslb_twisted.site ARGS}: twistd, so that the appliance can
start its demo sites with the same interpreter, wherever twistd lives.
"""

from twisted.scripts.twistd import run

run()
