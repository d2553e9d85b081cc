"""
One core of the appliance: its own process and reactor, serving DNS on the
sockets it shares with the other cores, linked to the supervisor over AMP.
"""
