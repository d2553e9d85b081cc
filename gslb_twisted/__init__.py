"""
gslb-twisted: an emulator of a multi-core GSLB appliance, built on Twisted.
"""

__version__ = "0.1.0"
