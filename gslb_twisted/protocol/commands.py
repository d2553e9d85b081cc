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


# --- errors of the control commands ------------------------------------------------
#
# AMP sends C{str(exception)} as an error's description, and the console
# prints it as one line: these say what is wrong in words (a plain KeyError
# would arrive quoted).


class NoSuchEntity(KeyError):
    """The command names a vserver, service or domain the topology does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such entity"


class BadValue(ValueError):
    """An argument the command cannot take (an LB method, a query type, an address)."""


class CoreUnavailable(Exception):
    """
    No core (or not the core asked for) can answer now: none serves, the
    one named does not exist or is not serving, or a core did not
    acknowledge a runtime change in time.
    """


def normaliseQType(text: str) -> str:
    """
    A DNS query type, typed as a name (C{aaaa}), a number (C{28}) or RFC
    3597's C{TYPE28}, as its mnemonic (C{AAAA}; C{TYPE65280} for a number
    without one).

    @raise BadValue: it is none of these.
    """
    from dnslib import QTYPE

    typed = text.strip().upper()
    number = typed[4:] if typed.startswith("TYPE") and typed[4:].isdigit() else typed
    if number.isdigit():
        value = int(number)
        if not 0 < value <= 0xFFFF:
            raise BadValue(f"query type {text!r}: expected a number from 1 to 65535")
        return QTYPE.forward.get(value) or f"TYPE{value}"
    if typed in QTYPE.reverse:
        return typed
    raise BadValue(f"unknown query type {text!r} (expected A, AAAA, ANY, SOA, NS, MX, TXT, ... or a number)")


def normaliseAddress(text: str) -> str:
    """
    An IPv4 or IPv6 address in its canonical form.

    @raise BadValue: C{text} is not one.
    """
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise BadValue(f"client {text!r}: expected an IPv4 or IPv6 address") from None


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


class ApplyRuntime(amp.Command):
    """
    Supervisor -> core: the appliance's whole runtime state, as changed from
    the console: C{{"lb_method": {vserver: METHOD}, "disabled": [service,
    ...]}}.  It replaces the state applied before (applying it twice is
    harmless), so that every core, and a core that joins later, answers from
    the same.  The answer means the core's answers follow it from now on.
    """

    arguments = [(b"state", LargeJSON())]
    response: list = []
    errors = {KeyError: b"NO_SUCH_ENTITY", ValueError: b"BAD_VALUE"}


class CoreResolve(amp.Command):
    """
    Supervisor -> core: the answer this core would give now to a query for
    C{name} of type C{qtype} (a mnemonic, C{"A"}) from C{client}, and why:
    the dict of C{CoreGSLB.explain}.  Nothing is recorded or rotated.
    """

    arguments = [
        (b"name", amp.Unicode()),
        (b"qtype", amp.Unicode()),
        (b"client", amp.Unicode(optional=True)),
    ]
    response = [(b"result", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", ValueError: b"BAD_VALUE"}


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


# --- gslb-console <-> any control endpoint: pushed events --------------------------
#
# An appliance's control endpoint and a site emulator's both take these.


class Unauthenticated(Exception):
    """A control connection over TCP sent a wrong token (or none)."""


class Authenticate(amp.Command):
    """
    Console -> a TCP control endpoint, first: the endpoint's token
    (C{[appliance] control_token}).  Until it is given, any other command
    closes the connection; a wrong one is refused and closes it too.  Unix
    sockets need none (file mode and the peer's uid protect them).
    """

    arguments = [(b"token", amp.Unicode())]
    response: list = []
    errors = {Unauthenticated: b"UNAUTHENTICATED"}


class Subscribe(amp.Command):
    """
    Console -> control endpoint: push L{ConsoleEvent}s on this connection
    from now on, until it closes (or L{Unsubscribe}).  Answered with the
    toolbar's state as it is now, the same fields as the "toolbar" events:

      - appliance: {cores_up, cores, sites_up, sites_down, sites, qps,
        control} (sites_* and qps null when no core can tell; qps null
        before two consolidation rounds);
      - site emulator: {site, services_up, services_down, services,
        appliances_connected, appliances, scenario, control}.

    Events may arrive before this answer: the console handles
    L{ConsoleEvent} before it subscribes.  Subscribing twice is harmless.
    """

    arguments: list = []
    response = [(b"state", LargeJSON())]


class Unsubscribe(amp.Command):
    """Console -> control endpoint: no more L{ConsoleEvent}s on this connection."""

    arguments: list = []
    response: list = []


class ConsoleEvent(amp.Command):
    """
    Control endpoint -> subscribed console, fire-and-forget: one event,
    {time (epoch seconds), kind, text (one human line), ...fields of its
    kind}.  Appliance kinds: "site" {site, state UP|DOWN, reason, core},
    "master" {site, core (null: none), epoch, previous_core, reason},
    "core" {core, state died|respawned|serving, pid, reason, lifetime,
    restart_in}, "toolbar" (the L{Subscribe} state, every second).  Site
    emulator kinds: "service" {site, service, state, source}, "mep" {site,
    peer, direction, state up|down, reason}, "scenario" {site, scenario,
    state started|finished|stopped, events, replaced (the scenario a
    started one replaced, or null)}, "toolbar".
    """

    arguments = [(b"event", LargeJSON())]
    response: list = []
    requiresAnswer = False


# --- gslb-console -> supervisor: GSLB inspection ----------------------------------


class ShowSites(amp.Command):
    """C{show gslb site [NAME]}: list of {name, ip, state, master_core, epoch, seq, metrics_age, rtt, ...}."""

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


class ShowServices(amp.Command):
    """C{show gslb service [NAME]}: list of {name, site, ip, port, state, connections, ...}."""

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


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


# --- gslb-console -> supervisor: the decision engine ----------------------------------


class ShowVServers(amp.Command):
    """
    C{show gslb vserver [NAME]}: list of {name, domains, state, lb_method
    (in effect), configured_lb_method, backup_lb_method, persistence,
    persistence_timeout, ttl, answers, backup_vserver, spillover,
    persistence_entries, services: [{name, site, ip, weight, state, reason,
    enabled}]} as the lowest serving core holds them.
    """

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON())]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


class Resolve(amp.Command):
    """
    C{resolve NAME [TYPE] [--client IP] [--core N]}: the answer core C{core}
    (default: the lowest serving one) would give now, and why: {name, qtype,
    answer, rcode, core, vserver, method, fallback, source, persistence,
    candidates: [{service, ip, site, weight, state, ...metrics, load}],
    excluded: [{service, reason}], spillover, client}.  C{qtype}: a name or
    a number (default A); C{client}: an IPv4 or IPv6 address.
    """

    arguments = [
        (b"name", amp.Unicode()),
        (b"qtype", amp.Unicode(optional=True)),
        (b"client", amp.Unicode(optional=True)),
        (b"core", amp.Integer(optional=True)),
    ]
    response = [(b"result", LargeJSON())]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", BadValue: b"BAD_VALUE", CoreUnavailable: b"CORE_UNAVAILABLE"}


class SetVServer(amp.Command):
    """
    C{set gslb vserver NAME -lbMethod M}: answer with method C{lbMethod}
    (one of NetScaler's, any case; CUSTOMLOAD only for a vserver with
    custom_load metrics) on every core, until set again.  Answered once every
    live core applied it: {name, lb_method, configured_lb_method, cores:
    [the cores that applied it], runtime: the whole runtime state}.
    """

    arguments = [(b"name", amp.Unicode()), (b"lbMethod", amp.Unicode())]
    response = [(b"result", LargeJSON())]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", BadValue: b"BAD_VALUE", CoreUnavailable: b"CORE_UNAVAILABLE"}


class EnableService(amp.Command):
    """
    C{enable gslb service NAME}: the service may be answered again (if it is
    up), on every core.  Answered once every live core applied it: {name,
    enabled, cores, runtime}.
    """

    arguments = [(b"name", amp.Unicode())]
    response = [(b"result", LargeJSON())]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


class DisableService(amp.Command):
    """
    C{disable gslb service NAME}: no core answers with the service, whatever
    its state, until it is enabled.  Answered once every live core applied
    it: {name, enabled, cores, runtime}.
    """

    arguments = [(b"name", amp.Unicode())]
    response = [(b"result", LargeJSON())]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


# --- gslb-console -> supervisor: consolidated statistics -----------------------------
#
# Read from the lowest serving core's replica of the consolidated counters
# (CoreInspect what="stats").  Rates are per second between the last two
# consolidation rounds, null before two rounds.  C{interval}: the
# consolidation interval, how often repeating the command shows news.


class StatVServers(amp.Command):
    """
    C{stat gslb vserver [NAME]}: list of {name, state, health (% of bound
    services up), active_services, inactive_services, hits, hit_rate,
    persistence_sessions, persistence_hits, persistence_misses,
    backup_method_hits, spillovers, backup_vserver_hits, down_responses,
    services: [{name, answers, answer_rate}]}.
    """

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON()), (b"interval", amp.Float(optional=True))]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


class StatServices(amp.Command):
    """C{stat gslb service [NAME]}: list of {name, site, state, answers, answer_rate}."""

    arguments = [(b"name", amp.Unicode(optional=True))]
    response = [(b"rows", LargeJSON()), (b"interval", amp.Float(optional=True))]
    errors = {NoSuchEntity: b"NO_SUCH_ENTITY", CoreUnavailable: b"CORE_UNAVAILABLE"}


class StatCores(amp.Command):
    """
    C{stat cores}: list of {core, queries, query_rate, bytes_in, bytes_out,
    stale_rejected}, each core's share of the consolidated counters.
    """

    arguments: list = []
    response = [(b"rows", LargeJSON()), (b"interval", amp.Float(optional=True))]
    errors = {CoreUnavailable: b"CORE_UNAVAILABLE"}


class StatDNS(amp.Command):
    """
    C{stat dns}: {queries, query_rate, by_type: {A: n, ...}, by_rcode:
    {NOERROR: n, ...}, bytes_in, bytes_out, dropped, truncated, tcp_refused, rrl_dropped,
    rrl_slipped, round, control}.
    """

    arguments: list = []
    response = [(b"result", LargeJSON()), (b"interval", amp.Float(optional=True))]
    errors = {CoreUnavailable: b"CORE_UNAVAILABLE"}


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


# --- gslb-console -> site emulator: scenarios ----------------------------------------
#
# A scenario is a named timeline of the site's C{[site.emulator] scenarios}
# table.  Scenario rows: {name, events, running, elapsed (seconds since it
# started, null when not running), pending (events still to come), finished
# (running, and every event applied), started_at (epoch seconds or null)}.


class SetScenario(amp.Command):
    """
    C{set scenario NAME}: play that scenario from now on (its C{at} times
    count from now), replacing the one running, whose values are released.
    Its values rank above the timeline, below console pins.  Answered with
    the scenario's row plus C{replaced}: the name of the scenario it
    replaced, or null.
    """

    arguments = [(b"name", amp.Unicode())]
    response = [(b"row", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


class ShowScenarios(amp.Command):
    """C{show scenarios}: one row per scenario of the site, in name order."""

    arguments: list = []
    response = [(b"rows", LargeJSON())]


class StopScenario(amp.Command):
    """
    C{unset scenario}: stop the running scenario: its pending events are
    dropped and the values it set released (back to the timeline, backend
    or random walk).  Answered with its row (running false); NO_SUCH_ENTITY
    when none runs.
    """

    arguments: list = []
    response = [(b"row", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY"}


# --- gslb-console -> site emulator: dynamic proximity and persistence ----------------


class ShowSiteSessions(amp.Command):
    """
    C{show sessions} on a site emulator: the persistence sessions it holds,
    list of {vserver, network, service, version, origin, expires_in}.
    """

    arguments: list = []
    response = [(b"rows", LargeJSON())]


class ShowSiteRTT(amp.Command):
    """
    C{show rtt} on a site emulator: the networks probed so far and the
    pinned ones, list of {network, rtt, source ("pinned", "config",
    "location" or null), probes, age, peer}.
    """

    arguments: list = []
    response = [(b"rows", LargeJSON())]


class SetSiteRTT(amp.Command):
    """
    C{set rtt NETWORK MS}: pin the RTT the site reports for that network
    and the networks inside it (it overrides the rtt table and locations).
    """

    arguments = [(b"network", amp.Unicode()), (b"rtt", amp.Float())]
    response = [(b"row", LargeJSON())]
    errors = {ValueError: b"BAD_VALUE"}


class UnsetSiteRTT(amp.Command):
    """C{unset rtt NETWORK}: release that network's pin."""

    arguments = [(b"network", amp.Unicode())]
    response = [(b"row", LargeJSON())]
    errors = {KeyError: b"NO_SUCH_ENTITY", ValueError: b"BAD_VALUE"}
