"""
AMP commands spoken between the supervisor and its cores, and between
gslb-console and the supervisor's control endpoint.

Every value in an AMP box is at most 65,535 bytes: anything that can grow
(log events, relayed messages) is bounded by its sender.
"""

from twisted.protocols import amp

# The longest value one AMP box may carry.
MAX_VALUE_LENGTH = 0xFFFF


# --- core -> supervisor ---------------------------------------------------


class CoreReady(amp.Command):
    """
    The core has adopted its DNS sockets and answers queries from now on.
    """

    arguments = [(b"core", amp.Integer()), (b"pid", amp.Integer())]
    response: list = []


class Publish(amp.Command):
    """
    Relay C{body} to every other live core (or only to C{target}), in the
    order this core published.  Fire-and-forget: the hub keeps the order.
    """

    arguments = [
        (b"topic", amp.Unicode()),
        (b"body", amp.String()),
        (b"target", amp.Integer(optional=True)),
    ]
    response: list = []
    requiresAnswer = False


class LogEvent(amp.Command):
    """
    One log event of the core, serialised with L{twisted.logger.eventAsJSON},
    for the supervisor's log.
    """

    arguments = [(b"event", amp.Unicode())]
    response: list = []
    requiresAnswer = False


# --- supervisor -> core ---------------------------------------------------


class Deliver(amp.Command):
    """
    A message another core published (see L{Publish}).
    """

    arguments = [
        (b"sender", amp.Integer()),
        (b"topic", amp.Unicode()),
        (b"body", amp.String()),
    ]
    response: list = []
    requiresAnswer = False


class CoreStatus(amp.Command):
    """
    The core's own figures, for C{show cores}.
    """

    arguments: list = []
    response = [(b"queries", amp.Integer())]


# --- gslb-console -> supervisor control endpoint --------------------------


class ShowCores(amp.Command):
    """
    C{show cores}: one row per core slot.
    """

    arguments: list = []
    response = [
        (
            b"cores",
            amp.AmpList(
                [
                    (b"core", amp.Integer()),
                    (b"pid", amp.Integer(optional=True)),
                    (b"state", amp.Unicode()),
                    (b"queries", amp.Integer()),
                    (b"restarts", amp.Integer()),
                    (b"uptime", amp.Float(optional=True)),
                ]
            ),
        )
    ]
