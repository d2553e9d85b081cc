"""
The descriptors a core is spawned with (the supervisor's childFDs), shared
by both ends without the core importing the supervisor.
"""

# The child's end of the AMP pipes.
CHILD_AMP_IN = 3
CHILD_AMP_OUT = 4
# The compiled topology (gslb_twisted.config.writeCompiledTopology).
CHILD_TOPOLOGY = 5
# The inherited DNS sockets, then the MEP listener.
FIRST_SOCKET_FD = 6
