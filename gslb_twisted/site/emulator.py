"""
The remote site appliance emulator as a service tree:

    SiteEmulatorService (MultiService)    the model, its tick, the MEP sessions
     ├─ BackendCheck × services with a `backend` URL
     ├─ ClientService × appliances this site dials (lower-IP rule)
     ├─ StreamServerEndpointService       the MEP listener, when some appliance dials us
     └─ StreamServerEndpointService       the control endpoint (AMP), for gslb-console

L{SiteEmulatorService} only stores its collaborators and builds the pure
model; L{makeSiteEmulator} does the assembly (endpoints, TLS files).

Every C{metrics_interval} the model ticks; what changed goes to every
established MEP session as one DELTA.  A session gets a SNAPSHOT when it is
established and whenever it asks for a RESYNC.  Console commands change
the model and are published at once, without waiting for the tick.

Each PROBE is answered with one RTT frame from the L{RTTModel} (console
pins, the C{[site.emulator] rtt} table, or the distance to the client
network's location).  SESSIONS frames from an appliance are merged into the
L{PersistenceStore}, expired on the clock, and what changed the store is
relayed to the other appliances (never back to the sender); an appliance
that connects gets every live entry after its SNAPSHOT.

A console may play one of the site's C{[site.emulator] scenarios} (a named
timeline whose times count from when it is set): its events apply, and are
published, exactly when due.  Consoles subscribed to the control endpoint
hear of service state changes, appliances connecting and lost, scenarios
(L{gslb_twisted.site.events}) and get a toolbar every second.
"""

from __future__ import annotations

import ipaddress
import random
import weakref
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from twisted.application.internet import ClientService, StreamServerEndpointService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    serverFromString,
    wrapClientTLS,
)
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from gslb_twisted.config import ConfigError, MEPPeer, Site, Topology
from gslb_twisted.endpoints import unixPathProblem
from gslb_twisted.lb.locations import LocationDB, LocationDBError
from gslb_twisted.logs import ConsoleSubscribers, describeAddress
from gslb_twisted.mep.rules import initiates
from gslb_twisted.mep.session import IMEPHandler, MEPSession
from gslb_twisted.protocol.access import GuardedControl, PeerAllowList
from gslb_twisted.protocol.commands import (
    SetScenario,
    SetSiteRTT,
    SetSiteService,
    ShowMEP,
    ShowScenarios,
    ShowSiteRTT,
    ShowSiteServices,
    ShowSiteSessions,
    StopScenario,
    Subscribe,
    UnsetSiteRTT,
    UnsetSiteService,
    Unsubscribe,
)
from gslb_twisted.site.events import mepEvent, scenarioEvent, serviceEvent, siteToolbar, siteToolbarText
from gslb_twisted.site.model import Delta, SiteModel, scenarioRow
from gslb_twisted.site.persistence import PersistenceStore
from gslb_twisted.site.proximity import RTTModel
from gslb_twisted.site.sources import BackendCheck

# Reconnection to an appliance: 0.2 s, 0.4 s, ... doubling up to 5 s, plus
# up to 0.1 s of jitter so that sites do not reconnect in step.
RECONNECT_INITIAL = 0.1
RECONNECT_FACTOR = 2.0
RECONNECT_MAX = 5.0
# How long one TCP connection attempt may take.
CONNECT_TIMEOUT = 5.0


class NoSuchEntity(KeyError):
    """A name the site does not have.  Its C{str} is the plain message (AMP sends it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such entity"


def knownAppliances(topology: Topology, site: Site) -> tuple[MEPPeer, ...]:
    """
    Every appliance the site exchanges metrics with: the topology's
    C{[appliance]}, then C{[site.emulator] peers}.
    """
    appliance = topology.appliance
    peers = [MEPPeer(appliance.name, appliance.ip, appliance.mep_port)]
    for peer in site.emulator.peers if site.emulator else ():
        if peer.name not in {p.name for p in peers}:
            peers.append(peer)
    return tuple(peers)


def mepPlan(site: Site, peers: Iterable[MEPPeer]) -> tuple[list[MEPPeer], list[MEPPeer]]:
    """
    The lower-IP rule applied to every peer: (the peers this site dials,
    the peers expected to dial this site).
    """
    dial, accept = [], []
    for peer in peers:
        (dial if initiates(site.ip, site.name, peer.ip, peer.name) else accept).append(peer)
    return dial, accept


def reconnectPolicy(streak: Callable[[], int], jitter: Callable[[], float] = lambda: random.random() * 0.1):
    """
    ClientService's retry policy, counting as failures the sessions that
    connected but never authenticated (C{streak()}): a peer that refuses us
    is retried with the same growing backoff as one that does not answer.
    """
    policy = backoffPolicy(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_FACTOR, jitter)
    return lambda attempt: policy(max(attempt, streak()))


def _family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def rttOverrides(site: Site) -> Mapping[str, float]:
    """
    The site's C{[site.emulator] rtt} table, C{{cidr: ms}} (empty when the
    configuration has none).
    """
    return getattr(site.emulator, "rtt", None) or {}


def loadLocations(topology: Topology, site: Site) -> Optional[LocationDB]:
    """
    The appliance's C{location_db}, when the site has a C{location} to
    measure distances from (else C{None}, and the file is not read).

    @raise ConfigError: the file cannot be read or is wrong.
    """
    path = topology.appliance.location_db
    if site.location is None or not path:
        return None
    try:
        return LocationDB.fromCSV(path)
    except LocationDBError as e:
        raise ConfigError(
            topology.path, "[appliance]", "location_db", f"expected a readable location file ({e})", hasFound=False,
        ) from None



@implementer(IMEPHandler)
class SiteEmulatorService(MultiService):
    """
    One remote site: its model, ticked every C{metrics_interval}, and the
    MEP sessions its metrics go to.  The handler of every session.

    @param reactor: the clock (and, for L{makeSiteEmulator}, the reactor).
    @param topology: the whole topology.
    @param siteName: which of its sites this is.
    @param httpClient: a treq-like client for the backend checks (C{None}:
        no backend checks).
    @param sessionFactory: builds a MEP session from L{MEPSession}'s
        keyword arguments (tests pass fakes).
    @param locations: the appliance's location database, for the RTTs
        derived from the site's C{location} (C{None}: none).

    @ivar established: the established MEP sessions, in order.
    @ivar rtt: the L{RTTModel} that answers PROBEs.
    @ivar persistence: the L{PersistenceStore} of shared sessions.
    @ivar scenarios: the site's scenarios, name -> events.
    @ivar consoles: the consoles subscribed to events.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        topology: Topology,
        siteName: str,
        httpClient: Any = None,
        sessionFactory: Optional[Callable[..., Any]] = None,
        locations: Optional[LocationDB] = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.topology = topology
        self.site: Site = topology.siteByName[siteName]
        self.appliances = knownAppliances(topology, self.site)
        self.interval = topology.appliance.metrics_interval
        self.deadInterval = topology.appliance.dead_interval
        secret = topology.appliance.mep_secret
        self.secret = secret.encode("utf-8") if secret else None
        self.sessionFactory = sessionFactory or MEPSession
        emulator = self.site.emulator
        self.siteServices = [s for s in topology.services if s.site == siteName]
        self.model = SiteModel(
            self.siteServices,
            seed=emulator.seed if emulator else None,
            timeline=emulator.timeline if emulator else (),
        )
        self.rtt = RTTModel(
            rttOverrides(self.site),
            location=self.site.location,
            locations=locations,
            seed=emulator.seed if emulator else None,
        )
        self.persistence = PersistenceStore()
        self._expiry = None
        self.scenarios = dict(emulator.scenarios) if emulator else {}
        self._scenarioCall = None
        self._scenarioFinished = False
        self.consoles = ConsoleSubscribers(reactor, self.toolbarState, siteToolbarText)
        self.established: list = []
        self.sessions: "weakref.WeakSet" = weakref.WeakSet()  # every session built, for `show mep`
        self.refusals: dict[str, int] = {}  # dialled peer -> sessions in a row lost before authenticating
        self._dialled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self.loop = LoopingCall(self.tick)
        self.loop.clock = reactor
        if httpClient is not None:
            for service in self.siteServices:
                if service.backend:
                    BackendCheck(
                        service.name, service.backend, httpClient, reactor, self.interval, self.backendReport
                    ).setServiceParent(self)

    # --- service ---------------------------------------------------------------

    def startService(self) -> None:
        delta = self.model.begin(self.reactor.seconds())
        if delta is not None:
            self._logTransitions(delta)
        for service in self.siteServices:
            self.log.info(
                "site {site}: service {service} starts {state}",
                site=self.site.name, service=service.name, state=self.model.published[service.name]["state"],
            )
        self.loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("site {site}: the metric tick stopped", f, site=self.site.name)
        )
        super().startService()

    def stopService(self) -> defer.Deferred:
        if self.loop.running:
            self.loop.stop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self._cancelScenarioCall()
        self.consoles.stop()
        for session in list(self.sessions):
            session.close("shutdown", f"site {self.site.name} is stopping")
        return defer.maybeDeferred(super().stopService)

    # --- publication -------------------------------------------------------------

    def tick(self) -> None:
        """Advance the model and push what changed."""
        self._push(self.model.tick(self.reactor.seconds()))

    def publish(self) -> Optional[Delta]:
        """Push what changed since the last push, without advancing time."""
        delta = self.model.collect()
        self._push(delta)
        return delta

    def _push(self, delta: Optional[Delta]) -> None:
        if delta is None:
            return
        self._logTransitions(delta)
        changes = {name: dict(values) for name, values in delta.changes.items()}
        for session in list(self.established):
            try:
                session.sendDelta(delta.seq, delta.baseSeq, changes)
            except Exception:
                self.log.failure("site {site}: sending a DELTA to {peer}", site=self.site.name, peer=session.peerName)

    def _logTransitions(self, delta: Delta) -> None:
        for name, values in delta.changes.items():
            if "state" in values:
                source = self.model.source(name, "state")
                self.log.info(
                    "site {site}: service {service} is now {state} (from the {source})",
                    site=self.site.name, service=name, state=values["state"], source=source,
                )
                self.consoles.emit(serviceEvent(self.reactor.seconds(), self.site.name, name, values["state"], source))

    def backendReport(self, name: str, state: str, responseTime: Optional[float]) -> None:
        """A backend check's verdict; published with the next tick."""
        self.model.setBackend(name, state, responseTime)

    # --- control -------------------------------------------------------------------

    def _known(self, name: str) -> None:
        if name not in self.model.services:
            known = ", ".join(self.model.services) or "none"
            raise NoSuchEntity(f"no service {name!r} at site {self.site.name} (its services: {known})")

    def setService(self, name: str, values: Mapping[str, Any]) -> dict:
        """
        Pin C{values} (console C{set service}) and publish at once.

        @raise NoSuchEntity: unknown service.
        @raise ValueError: unknown metric or bad value.
        """
        self._known(name)
        if not isinstance(values, dict):
            raise ValueError("expected a table of metric values")
        pinned = self.model.pin(name, values)
        self.log.info("site {site}: service {service} pinned {values}", site=self.site.name, service=name, values=pinned)
        self.publish()
        return self.model.row(name)

    def unsetService(self, name: str, metrics: Sequence[str]) -> dict:
        """Release pins (console C{unset service}) and publish at once."""
        self._known(name)
        self.model.unpin(name, metrics)
        self.log.info("site {site}: service {service} released {metrics}", site=self.site.name, service=name,
                      metrics=", ".join(metrics))
        self.publish()
        return self.model.row(name)

    def setRTT(self, network: str, rtt: Any) -> dict:
        """
        Pin the RTT reported for C{network} and the networks inside it
        (console C{set rtt}); the next PROBE gets it.

        @raise ValueError: not a network in CIDR notation, or not a number
            of milliseconds >= 0.
        """
        network = self.rtt.pin(network, rtt)
        self.log.info("site {site}: RTT of {network} pinned to {rtt} ms", site=self.site.name, network=network, rtt=rtt)
        return self.rtt.row(network, self.reactor.seconds())

    def unsetRTT(self, network: str) -> dict:
        """
        Release the RTT pin of exactly C{network} (console C{unset rtt}).

        @raise NoSuchEntity: no pin on that network.
        @raise ValueError: not a network in CIDR notation.
        """
        if not self.rtt.unpin(network):
            pinned = ", ".join(self.rtt.pinned()) or "none"
            raise NoSuchEntity(f"no RTT pinned for {network} at site {self.site.name} (pinned: {pinned})")
        self.log.info("site {site}: RTT of {network} released", site=self.site.name, network=network)
        return self.rtt.row(network, self.reactor.seconds())

    # --- scenarios -----------------------------------------------------------------

    def _scenario(self, name: str):
        events = self.scenarios.get(name)
        if events is None:
            known = ", ".join(sorted(self.scenarios)) or "none"
            raise NoSuchEntity(f"no scenario {name!r} at site {self.site.name} (its scenarios: {known})")
        return events

    def _scenarioRow(self, name: str) -> dict:
        return scenarioRow(name, len(self.scenarios[name]), self.model.scenario, self.reactor.seconds())

    def describeScenarios(self) -> list[dict]:
        """C{show scenarios}: every scenario of the site, in name order."""
        return [self._scenarioRow(name) for name in sorted(self.scenarios)]

    def setScenario(self, name: str) -> dict:
        """
        Play scenario C{name} from now on (console C{set scenario}),
        replacing the one running; what is due at once is published at once.

        @raise NoSuchEntity: the site has no such scenario.
        """
        events = self._scenario(name)
        self._cancelScenarioCall()
        replaced = self.model.startScenario(name, events, self.reactor.seconds())
        self._scenarioFinished = False
        self.log.info(
            "site {site}: scenario {scenario} started ({count} events){replacing}",
            site=self.site.name, scenario=name, count=len(events),
            replacing=f", replacing {replaced}" if replaced else "",
        )
        self.consoles.emit(scenarioEvent(
            self.reactor.seconds(), self.site.name, name, "started", len(events), replaced,
        ))
        self.publish()
        self._scheduleScenario()
        return {**self._scenarioRow(name), "replaced": replaced}

    def stopScenario(self) -> dict:
        """
        Stop the running scenario (console C{unset scenario}): its pending
        events are dropped, its values released and published at once.

        @raise NoSuchEntity: no scenario runs.
        """
        if self.model.scenario is None:
            raise NoSuchEntity(f"no scenario is running at site {self.site.name}")
        self._cancelScenarioCall()
        stopped = self.model.stopScenario()
        self.log.info("site {site}: scenario {scenario} stopped", site=self.site.name, scenario=stopped.name)
        self.consoles.emit(scenarioEvent(
            self.reactor.seconds(), self.site.name, stopped.name, "stopped", len(stopped.timeline.events),
        ))
        self.publish()
        return self._scenarioRow(stopped.name)

    def _scheduleScenario(self) -> None:
        """One timer, at the running scenario's next event; or say it finished."""
        scenario = self.model.scenario
        if scenario is None:
            return
        when = self.model.nextScenarioEvent()
        if when is not None:
            self._scenarioCall = self.reactor.callLater(max(0.0, when - self.reactor.seconds()), self._scenarioDue)
        elif not self._scenarioFinished:
            self._scenarioFinished = True
            self.log.info("site {site}: scenario {scenario} finished", site=self.site.name, scenario=scenario.name)
            self.consoles.emit(scenarioEvent(
                self.reactor.seconds(), self.site.name, scenario.name, "finished", len(scenario.timeline.events),
            ))

    def _scenarioDue(self) -> None:
        self._scenarioCall = None
        self.model.applyScenario(self.reactor.seconds())
        self.publish()
        self._scheduleScenario()

    def _cancelScenarioCall(self) -> None:
        if self._scenarioCall is not None and self._scenarioCall.active():
            self._scenarioCall.cancel()
        self._scenarioCall = None

    # --- consoles -------------------------------------------------------------------

    def toolbarState(self) -> dict:
        """The toolbar of a console on this site (L{siteToolbar})."""
        scenario = self.model.scenario
        return siteToolbar(
            self.site.name,
            self.model.published,
            [session.peerName for session in self.established],
            len(self.appliances),
            None if scenario is None else scenario.name,
        )

    def describeRTT(self) -> list[dict]:
        """C{show rtt}: the networks probed so far and the pinned ones."""
        return self.rtt.rows(self.reactor.seconds())

    def describePersistence(self) -> list[dict]:
        """C{show sessions}: the live persistence sessions."""
        return self.persistence.rows(self.reactor.seconds())

    def describeSessions(self) -> list[dict]:
        """C{show mep} on a site emulator: one row per MEP session."""
        rows = []
        for session in sorted(self.sessions, key=lambda s: (s.peerName or "", s.direction or "")):
            rows.append({
                "site": self.site.name,
                "peer": session.peerName or self._dialled.get(session),
                "direction": session.direction,
                "state": session.state,
                "frames_in": session.framesIn,
                "frames_out": session.framesOut,
                "bytes_in": session.bytesIn,
                "bytes_out": session.bytesOut,
                "auth_failures": session.authFailures,
                "rtt": session.rtt,
                "rtt_ms": None if session.rtt is None else round(session.rtt * 1000, 3),
                "seq": session.lastSeq,
            })
        return rows

    # --- MEP -----------------------------------------------------------------------

    def buildSession(self, direction: str, expectedPeer: Optional[str] = None):
        """A MEP session in the site role, with this service as its handler."""
        session = self.sessionFactory(
            role="site",
            localName=self.site.name,
            secret=self.secret,
            clock=self.reactor,
            keepaliveInterval=self.interval,
            deadInterval=self.deadInterval,
            handler=self,
            expectedPeer=expectedPeer,
        )
        session.direction = direction
        self.sessions.add(session)
        if expectedPeer is not None:
            self._dialled[session] = expectedPeer
        return session

    def authenticated(self, session) -> bool:
        if session.peerName not in {p.name for p in self.appliances}:
            self.log.warn(
                "site {site}: refusing MEP peer {peer}: not an appliance of the topology",
                site=self.site.name, peer=session.peerName,
            )
            return False
        if session in self._dialled:
            self.refusals[self._dialled[session]] = 0
        self.established.append(session)
        session.sendSnapshot(*self.model.snapshot())
        live = self.persistence.live(self.reactor.seconds())
        if live:
            session.sendSessions(live)
        self.log.info(
            "site {site}: MEP with {peer} up ({direction})",
            site=self.site.name, peer=session.peerName, direction=session.direction,
        )
        self.consoles.emit(mepEvent(self.reactor.seconds(), self.site.name, session.peerName, session.direction, True))
        return True

    def snapshotReceived(self, session, seq, services) -> None:
        """Only for the appliance role: a site session never gets one."""

    def deltaReceived(self, session, seq, baseSeq, changes) -> None:
        """Only for the appliance role: a site session never gets one."""

    def resyncRequested(self, session) -> None:
        self.log.info("site {site}: {peer} asked for a resync", site=self.site.name, peer=session.peerName)
        session.sendSnapshot(*self.model.snapshot())

    def rttMeasured(self, session, rtt) -> None:
        """The session keeps its RTT; C{show mep} reads it there."""

    def probeReceived(self, session, networks) -> None:
        """An appliance wants RTTs: one RTT frame, the unknown networks left out."""
        rtts = self.rtt.probe(networks, self.reactor.seconds(), session.peerName)
        self.log.debug(
            "site {site}: PROBE of {count} networks from {peer}, {known} measured",
            site=self.site.name, count=len(networks), peer=session.peerName, known=len(rtts),
        )
        session.sendRTT(rtts)

    def rttReported(self, session, rtts) -> None:
        """Only for the appliance role: a site session never gets one."""

    def sessionsReceived(self, session, entries) -> None:
        """
        Persistence sessions from an appliance: merge them, and relay what
        changed the store to every other appliance.
        """
        now = self.reactor.seconds()
        changed = self.persistence.merge(entries, now)
        self._scheduleExpiry()
        self.log.debug(
            "site {site}: {count} persistence sessions from {peer}, {changed} taken",
            site=self.site.name, count=len(entries), peer=session.peerName, changed=len(changed),
        )
        if not changed:
            return
        for other in list(self.established):
            if other is session or other.peerName == session.peerName:
                continue
            try:
                other.sendSessions(changed)
            except Exception:
                self.log.failure("site {site}: relaying SESSIONS to {peer}", site=self.site.name, peer=other.peerName)

    def _scheduleExpiry(self) -> None:
        """One timer, at the next entry's expiry."""
        when = self.persistence.nextExpiry()
        if self._expiry is not None and self._expiry.active():
            if when is not None and self._expiry.getTime() == when:
                return
            self._expiry.cancel()
        self._expiry = None
        if when is not None:
            self._expiry = self.reactor.callLater(max(0.0, when - self.reactor.seconds()), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        dropped = self.persistence.expire(self.reactor.seconds())
        if dropped:
            self.log.debug("site {site}: {count} persistence sessions expired", site=self.site.name, count=dropped)
        self._scheduleExpiry()

    def sessionLost(self, session, reason: str) -> None:
        wasUp = session in self.established
        if wasUp:
            self.established.remove(session)
            self.log.info(
                "site {site}: MEP with {peer} down ({reason})",
                site=self.site.name, peer=session.peerName, reason=reason,
            )
            self.consoles.emit(mepEvent(
                self.reactor.seconds(), self.site.name, session.peerName, session.direction, False, reason,
            ))
        elif session in self._dialled:
            peer = self._dialled[session]
            self.refusals[peer] = self.refusals.get(peer, 0) + 1

    # --- assembly helpers -------------------------------------------------------------

    def connector(self, peer: MEPPeer, clientTLS: Any = None) -> ClientService:
        """
        A reconnecting MEP client to C{peer}, from the site's own address
        (so the appliance sees which site it is).
        """
        if _family(peer.ip) == 4:
            bind = (self.site.ip, 0) if _family(self.site.ip) == 4 else None
            endpoint = TCP4ClientEndpoint(self.reactor, peer.ip, peer.mep_port, CONNECT_TIMEOUT, bind)
        else:
            bind = (self.site.ip, 0) if _family(self.site.ip) == 6 else None
            endpoint = TCP6ClientEndpoint(self.reactor, peer.ip, peer.mep_port, CONNECT_TIMEOUT, bind)
        if clientTLS is not None:
            endpoint = wrapClientTLS(clientTLS(peer), endpoint)
        factory = Factory.forProtocol(lambda: self.buildSession("outbound", peer.name))
        factory.noisy = False  # ClientService logs each attempt already
        service = ClientService(
            endpoint,
            factory,
            retryPolicy=reconnectPolicy(lambda: self.refusals.get(peer.name, 0)),
            clock=self.reactor,
        )
        service.setName(f"mep to {peer.name}")
        return service

    def listener(self, serverTLS: Any = None) -> StreamServerEndpointService:
        """The MEP listener on (site ip, site mep_port), for appliances that dial us."""
        ip, port = self.site.ip, self.site.mep_port
        if serverTLS is not None:
            endpoint = SSL4ServerEndpoint(self.reactor, port, serverTLS, interface=ip)
        elif _family(ip) == 4:
            endpoint = TCP4ServerEndpoint(self.reactor, port, interface=ip)
        else:
            endpoint = TCP6ServerEndpoint(self.reactor, port, interface=ip)
        # Only the appliances (and peers) that dial us may connect.
        _, accept = mepPlan(self.site, self.appliances)
        factory = PeerAllowList(Factory.forProtocol(lambda: self.buildSession("inbound")), [peer.ip for peer in accept])
        service = StreamServerEndpointService(endpoint, factory)
        service.setName("mep listener")
        return service


class SiteControlProtocol(GuardedControl):
    """What gslb-console talks to on a site emulator (who may: L{GuardedControl})."""

    def __init__(self, emulator: SiteEmulatorService, token: Optional[str] = None, clock=None) -> None:
        super().__init__(token, clock)
        self.emulator = emulator

    # Pushed events

    def _control(self) -> Optional[str]:
        """This endpoint, as a console would connect to it."""
        return None if self.transport is None else describeAddress(self.transport.getHost())

    @Subscribe.responder
    def subscribe(self) -> defer.Deferred:
        control = self._control()
        self.emulator.consoles.subscribe(self, control)
        return self.emulator.consoles.state(control).addCallback(lambda state: {"state": state})

    @Unsubscribe.responder
    def unsubscribe(self) -> dict:
        self.emulator.consoles.unsubscribe(self)
        return {}

    def connectionLost(self, reason) -> None:
        self.emulator.consoles.unsubscribe(self)
        super().connectionLost(reason)

    # Scenarios

    @ShowScenarios.responder
    def showScenarios(self) -> dict:
        return {"rows": self.emulator.describeScenarios()}

    @SetScenario.responder
    def setScenario(self, name: str) -> dict:
        return {"row": self.emulator.setScenario(name)}

    @StopScenario.responder
    def stopScenario(self) -> dict:
        return {"row": self.emulator.stopScenario()}

    @ShowSiteServices.responder
    def showServices(self) -> dict:
        return {"rows": self.emulator.model.rows()}

    @SetSiteService.responder
    def setService(self, name: str, values: Any) -> dict:
        return {"row": self.emulator.setService(name, values)}

    @UnsetSiteService.responder
    def unsetService(self, name: str, metrics: list) -> dict:
        return {"row": self.emulator.unsetService(name, metrics)}

    @ShowMEP.responder
    def showMEP(self) -> dict:
        return {"rows": self.emulator.describeSessions()}

    @ShowSiteSessions.responder
    def showSessions(self) -> dict:
        return {"rows": self.emulator.describePersistence()}

    @ShowSiteRTT.responder
    def showRTT(self) -> dict:
        return {"rows": self.emulator.describeRTT()}

    @SetSiteRTT.responder
    def setRTT(self, network: str, rtt: float) -> dict:
        return {"row": self.emulator.setRTT(network, rtt)}

    @UnsetSiteRTT.responder
    def unsetRTT(self, network: str) -> dict:
        return {"row": self.emulator.unsetRTT(network)}


def controlEndpointDescription(site: Site, override: Optional[str] = None) -> str:
    """The control endpoint: C{override}, else the site's, else C{unix:NAME.ctl}."""
    from gslb_twisted.supervisor import unixModeControl

    description = override or (site.emulator.control if site.emulator else None) or f"unix:{site.name}.ctl"
    return unixModeControl(description)


def makeSiteEmulator(
    reactor: Any,
    topology: Topology,
    siteName: str,
    control: Optional[str] = None,
    httpClient: Any = None,
) -> SiteEmulatorService:
    """
    Assemble the whole emulator: the service, its MEP connectors or
    listener per the lower-IP rule (none when the site has
    C{metric_exchange = false}), TLS when C{mep_tls}, and the control
    endpoint.  Reads the TLS files and, when the site has a C{location},
    the appliance's C{location_db}: call it before the reactor runs.
    """
    emulator = SiteEmulatorService(
        reactor, topology, siteName, httpClient=httpClient,
        locations=loadLocations(topology, topology.siteByName[siteName]),
    )
    site = emulator.site
    appliance = topology.appliance
    if site.metric_exchange:
        dial, accept = mepPlan(site, emulator.appliances)
        clientTLS = serverTLS = None
        if appliance.mep_tls:
            from gslb_twisted.mep import tls

            # One lab certificate for every MEP end, also the trust root
            # unless mep_tls_ca names another.
            try:
                if accept:
                    serverTLS = tls.serverContextFactory(appliance.mep_tls_cert, appliance.mep_tls_key)
                if dial:
                    caPath = appliance.mep_tls_ca or appliance.mep_tls_cert
                    # Built once now so that unreadable files stop the
                    # emulator at start-up, not at its first connection.
                    tls.clientContextFactory(appliance.ip, caPath=caPath)

                    def clientTLS(peer):
                        return tls.clientContextFactory(peer.ip, caPath=caPath)
            except Exception as e:  # OSError, ValueError, OpenSSL errors
                raise ConfigError(
                    topology.path, "[appliance]", "mep_tls_cert",
                    f"expected readable PEM files for mep_tls_cert and mep_tls_key ({e})", hasFound=False,
                ) from None
        for peer in dial:
            emulator.connector(peer, clientTLS).setServiceParent(emulator)
        if accept:
            emulator.listener(serverTLS).setServiceParent(emulator)
    description = controlEndpointDescription(site, control)
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            topology.path, f"[[site]] {site.name!r} emulator", "control",
            f"expected an endpoint string such as \"unix:{site.name}.ctl\" ({e})", description,
        ) from None
    problem = unixPathProblem(description)
    if problem is not None:
        raise ConfigError(topology.path, f"[[site]] {site.name!r} emulator", "control", problem, description)
    token = appliance.control_token
    control = StreamServerEndpointService(
        endpoint, Factory.forProtocol(lambda: SiteControlProtocol(emulator, token, reactor))
    )
    control.setName("control")
    control.setServiceParent(emulator)
    return emulator
