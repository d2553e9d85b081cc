"""
Fault injection for the chaos suite (C{tests/chaos}, C{benchmarks/chaos})
and the scenarios to come: a loopback TCP proxy whose links can be cut,
delayed or blackholed (L{gslb_twisted.chaos.proxy}), and a DNS load
generator that classifies every answer (L{gslb_twisted.chaos.load}).
"""
