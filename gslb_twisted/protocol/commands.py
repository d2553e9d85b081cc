"""
AMP commands spoken between the supervisor and its cores, and between
gslb-console and the supervisor's control endpoint.

Every value in an AMP box is at most 65,535 bytes: anything that can grow
(log events, relayed messages) is bounded by its sender.
"""

import json

from twisted.protocols import amp

# The longest value one AMP box may carry.
MAX_VALUE_LENGTH = 0xFFFF


# --- values of any size -------------------------------------------------------


class LargeBytes(amp.Argument):
    """
    Bytes of any length, split over as many box keys as they need
    (C{name}, C{name.1}, C{name.2}, ...), each within AMP's 65,535-byte
    limit: snapshots of hundreds of sites cross in one call.
    """

    CHUNK = 60000

    def toBox(self, name, strings, objects, proto):
        data = self.encode(objects[name.decode("ascii")])
        chunks = [data[i : i + self.CHUNK] for i in range(0, len(data), self.CHUNK)] or [b""]
        strings[name] = chunks[0]
        for index, chunk in enumerate(chunks[1:], 1):
            strings[name + b".%d" % index] = chunk

    def fromBox(self, name, strings, objects, proto):
        if name not in strings:
            if self.optional:
                objects[name.decode("ascii")] = None
                return
            raise KeyError(name)
        parts = [strings[name]]
        index = 1
        while name + b".%d" % index in strings:
            parts.append(strings[name + b".%d" % index])
            index += 1
        objects[name.decode("ascii")] = self.decode(b"".join(parts))

    def encode(self, value) -> bytes:
        return value

    def decode(self, data: bytes):
        return data


class LargeJSON(LargeBytes):
    """Any JSON-serialisable value, as L{LargeBytes}."""

    def encode(self, value) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes):
        return json.loads(data)


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
        (b"body", LargeBytes()),
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
        (b"body", LargeBytes()),
    ]
    response: list = []
    requiresAnswer = False


class Hello(amp.Command):
    """
    Core -> hub, once linked: who masters what now, as
    C{[[site, core, epoch], ...]}.  Later changes come as L{MasterChanged}.
    """

    arguments = [(b"core", amp.Integer())]
    response = [(b"masters", LargeJSON())]


class ClaimSite(amp.Command):
    """
    Core -> hub: let me master C{site}.  C{takeover}: the site connected to
    me (it holds no other session with this appliance), so the hub moves
    the claim even from a live core.
    """

    arguments = [(b"site", amp.Unicode()), (b"takeover", amp.Boolean())]
    response = [(b"granted", amp.Boolean()), (b"epoch", amp.Integer())]


class ReleaseSite(amp.Command):
    """Core -> hub: I no longer master C{site} (epoch C{epoch})."""

    arguments = [(b"site", amp.Unicode()), (b"epoch", amp.Integer())]
    response: list = []
    requiresAnswer = False


class AssignSite(amp.Command):
    """
    Hub -> core: the hub claimed C{site} for you (a site you dial, or one
    without metric exchange): master it with C{epoch}.
    """

    arguments = [(b"site", amp.Unicode()), (b"epoch", amp.Integer())]
    response: list = []
    requiresAnswer = False


class MasterChanged(amp.Command):
    """
    Hub -> every core: C{core} masters C{site} from C{epoch} on (no core:
    nobody does).  Sent in the order claims change.
    """

    arguments = [
        (b"site", amp.Unicode()),
        (b"core", amp.Integer(optional=True)),
        (b"epoch", amp.Integer()),
    ]
    response: list = []
    requiresAnswer = False


class CoreInspect(amp.Command):
    """
    Supervisor -> core: what this core holds, for the console: C{what} is
    "sites", "mep", "metrics" (of C{site}) or "versions".
    """

    arguments = [(b"what", amp.Unicode()), (b"site", amp.Unicode(optional=True))]
    response = [(b"result", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


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


# --- gslb-console -> supervisor: GSLB inspection ----------------------------------


class ShowSites(amp.Command):
    """C{show gslb site [NAME]}: list of {name, ip, state, master_core, epoch, seq, metrics_age, rtt, ...}."""

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


class ShowServices(amp.Command):
    """C{show gslb service [NAME]}: list of {name, site, ip, port, state, connections, ...}."""

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


class ShowMEP(amp.Command):
    """C{show mep}: list of {site, core, direction, state, frames_in, frames_out, bytes_in, bytes_out, auth_failures, rtt}."""

    arguments: list = []
    response = [(b"rows", LargeJSON())]


class ShowMetrics(amp.Command):
    """C{show metrics SITE [--core N]}: {site, core, epoch, seq, state, services: [...]} as that core holds it."""

    arguments = [(b"site", amp.Unicode()), (b"core", amp.Integer(optional=True))]
    response = [(b"result", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


class ShowConsistency(amp.Command):
    """C{show consistency}: {consistent, sites: [{site, versions: {core: [epoch, seq]}}]}."""

    arguments: list = []
    response = [(b"result", LargeJSON())]


# --- gslb-console -> site emulator control endpoint ----------------------------------


class ShowSiteServices(amp.Command):
    """C{show services} on a site emulator: list of {name, ip, port, state, connections, ..., pinned: [metrics]}."""

    arguments: list = []
    response = [(b"rows", LargeJSON())]


class SetSiteService(amp.Command):
    """
    C{set service NAME -state DOWN -connections 500 ...}: pin those metric
    values (they override the random walk and the timeline until unset).
    """

    arguments = [(b"name", amp.Unicode()), (b"values", LargeJSON())]
    response = [(b"row", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", ValueError: b"BAD_VALUE"}


class UnsetSiteService(amp.Command):
    """C{unset service NAME -connections ...}: release those pins."""

    arguments = [(b"name", amp.Unicode()), (b"metrics", amp.ListOf(amp.Unicode()))]
    response = [(b"row", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", ValueError: b"BAD_VALUE"}
