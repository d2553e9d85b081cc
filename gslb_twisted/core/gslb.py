"""
The GSLB work of one core: mastering sites (their MEP sessions), keeping
the metric table every core shares, propagating it, and turning it into
what the DNS answers.

One metric update, end to end: a MEP frame from site C{east} reaches the
core that masters C{east}; it records it in its table, which yields a delta
C{(site, epoch, seq, base_seq, changes)}; the delta goes through the hub to
every other core, each of which applies it only if the sender is the master
(and epoch) it knows and C{base_seq} is its own seq, asking the master for a
snapshot on a gap.  Every change re-plans the vservers (a pure decision) and
rebuilds their prebuilt answers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from gslb_twisted.config import Site, Topology
from gslb_twisted.consolidator import counterKey
from gslb_twisted.core import stats as statsProtocol
from gslb_twisted.dns.authority import SERVFAIL as RCODE_SERVFAIL, Authority
from gslb_twisted.dns.rrl import RateLimiter
from gslb_twisted.lb.choosers import ChoiceContext, buildChooser
from gslb_twisted.lb.clients import parseNetwork, prefixOfNetmask
from gslb_twisted.lb.decision import ALWAYS_READ, PROBES, SERVFAIL, metricsRead, planVServer, serviceState
from gslb_twisted.lb.explain import explainQuery, vserverRows
from gslb_twisted.lb.locations import LocationDB
from gslb_twisted.lb.persistence import PersistenceTable
from gslb_twisted.mastership import MastershipView, siteInitiates
from gslb_twisted.mep.frames import ProtocolError, checkSessionEntry
from gslb_twisted.mep.session import IMEPHandler, MEPSession
from gslb_twisted.metrics import APPLIED, DOWN, GAP, UP, MetricTable
from gslb_twisted.monitors.trigger import monitorActive
from gslb_twisted.protocol.commands import ClaimSite

if TYPE_CHECKING:
    from gslb_twisted.monitors.runner import MonitorRunner

# Topics on the hub relay.
TOPIC_DELTA = "metrics.delta"
# Several deltas of one core, in the order it recorded them: what one
# reactor turn of a master produced (a burst of site updates), in one hub
# message instead of one each.
TOPIC_DELTAS = "metrics.deltas"
TOPIC_SNAPSHOT = "metrics.snapshot"
TOPIC_SNAPSHOT_REQUEST = "metrics.snapshot-request"
TOPIC_FRESH = "metrics.fresh"
TOPIC_PERSIST = "persistence.entries"
TOPIC_PERSIST_REQUEST = "persistence.snapshot-request"
TOPIC_PROBE = "rtt.probe"

# A client network asked for RTT probes is not asked again for this long.
PROBE_RETRY = 30.0
# How often a master asks its sites to measure again every network they
# measured (RTT changes; NetScaler re-probes an LDNS after its timeout).
PROBE_REFRESH = 60.0
# How often persistence entries expire and their uses are shared.
PERSISTENCE_TICK = 1.0
# Persistence entries per hub message.
PERSIST_CHUNK = 500

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 16: "BADVERS"}
QTYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 255: "ANY"}


def _countingChoosers(chooser) -> tuple:
    """The choosers of a chain that keep counts (persistence hits, fallbacks)."""
    counting = []
    inner = chooser
    while inner is not None:
        if (hasattr(inner, "hits") and hasattr(inner, "misses")) or hasattr(inner, "fallbacks"):
            counting.append(inner)
        inner = getattr(inner, "inner", None) or getattr(inner, "fallback", None)
    return tuple(counting)


def mepClientTLS(topology: Topology):
    """
    With C{mep_tls}, how to wrap a MEP client endpoint: TLS verifying that
    the site's certificate names its address and is issued by C{mep_tls_ca}
    (by default the lab's own C{mep_tls_cert}).
    """
    appliance = topology.appliance
    if not appliance.mep_tls:
        return None
    from twisted.internet.endpoints import wrapClientTLS

    from gslb_twisted.mep.tls import clientContextFactory

    def wrap(endpoint, site: Site):
        options = clientContextFactory(
            site.ip, caPath=appliance.mep_tls_ca or appliance.mep_tls_cert,
            certPath=appliance.mep_tls_cert, keyPath=appliance.mep_tls_key,
        )
        return wrapClientTLS(options, endpoint)

    return wrap


def mepServerTLS(topology: Topology, factory):
    """With C{mep_tls}, the MEP listener's factory wrapped in TLS."""
    appliance = topology.appliance
    if not appliance.mep_tls:
        return factory
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from gslb_twisted.mep.tls import serverContextFactory

    return TLSMemoryBIOFactory(
        serverContextFactory(appliance.mep_tls_cert, appliance.mep_tls_key), False, factory
    )


# An RTT is propagated when it moves by more than this (seconds) and this
# fraction: loopback jitter would otherwise be a delta per keepalive.
RTT_CHANGE_ABSOLUTE = 0.001
RTT_CHANGE_RELATIVE = 0.2
# The site<->appliance RTT is shown, never decided on: a changed RTT is
# shared with the other cores at most this many metrics intervals apart
# (at 1,000 sites under load, every keepalive's RTT "changed": 1,000
# deltas a second through the hub for a figure nobody ranks by).
RTT_SHARE_INTERVALS = 10


def familiesOf(topology: Topology) -> dict[str, frozenset]:
    """The record types each vserver, with its backup chain, has services for."""
    found = {}
    shared: dict[frozenset, frozenset] = {}  # a thousand vservers, a few distinct sets
    for vserver in topology.vservers:
        types = set()
        current, seen = vserver, set()
        while current is not None and current.name not in seen:
            seen.add(current.name)
            for binding in current.services:
                types.add(1 if topology.serviceByName[binding.name].family == 4 else 28)
            current = topology.vserverByName.get(current.backup_vserver) if current.backup_vserver else None
        found[vserver.name] = shared.setdefault(frozenset(types), frozenset(types))
    return found


def vserversBySite(topology: Topology) -> dict[str, set[str]]:
    """
    The vservers whose answers depend on each site: those with a service
    there, directly or through their chain of backup vservers.
    """
    def sitesOf(vserver, seen=()):
        sites = {topology.serviceByName[b.name].site for b in vserver.services}
        backup = vserver.backup_vserver
        if backup is not None and backup not in seen:
            sites |= sitesOf(topology.vserverByName[backup], seen + (vserver.name,))
        return sites

    bySite: dict[str, set[str]] = {}
    for vserver in topology.vservers:
        for site in sitesOf(vserver):
            bySite.setdefault(site, set()).add(vserver.name)
    return bySite


def touchedMetrics(changes: dict) -> Optional[frozenset]:
    """
    The metrics a table change touched (C{PROBES} for the RTT probes), or
    C{None} when it may change anything (a site's state, services removed).
    """
    if "state" in changes or "removed" in changes:
        return None
    touched = set()
    for values in changes.get("services", {}).values():
        touched.update(values)
    if "probes" in changes:
        touched.add(PROBES)
    return frozenset(touched)


def _affectsAnswers(changes: dict) -> bool:
    """
    The site-to-appliance RTT alone changes no answer (the RTT method uses
    the sites' probes of client networks).
    """
    return any(key not in ("rtt", "lagging") for key in changes)


def metricSource(site: Site) -> str:
    """Where a site's metrics come from: MEP, SNMP, or nowhere (STATIC)."""
    if site.protocol == "snmp":
        return "SNMP"
    return "MEP" if site.metric_exchange else "STATIC"


def loadLocations(topology: Topology) -> Optional[LocationDB]:
    """The topology's location database (already checked by the loader)."""
    path = topology.appliance.location_db
    return None if path is None else LocationDB.fromCSV(path)


def _topologyName(topology: Topology) -> Callable[[str], str]:
    """A service's name as the topology's own string object (a name it does not know, as given)."""
    serviceByName = topology.serviceByName

    def canonical(name: str) -> str:
        service = serviceByName.get(name)
        return name if service is None else service.name

    return canonical


@implementer(IMEPHandler)
class ApplianceSessionHandler:
    """
    Receives one MEP session's events on the appliance side, remembers the
    services the site reported (the session may deliver them before this
    core has been granted the site), and tells the core.
    """

    def __init__(self, gslb: "CoreGSLB", site: Optional[str]) -> None:
        self.gslb = gslb
        self.site = site
        # What the site reported, kept until this session feeds the core's
        # table (adopt); then the table alone holds it (a second copy of
        # every mastered service was 4-5 MiB of a core at 1,000 sites).
        self.services: Optional[dict] = None
        self.adopted = False
        self.hasSnapshot = False

    def adopt(self) -> Optional[dict]:
        """This session now feeds the table: the services held so far (None: no snapshot yet)."""
        services, self.services = self.services, None
        self.adopted = True
        return services

    def authenticated(self, session) -> bool:
        return self.gslb.sessionAuthenticated(self, session)

    def snapshotReceived(self, session, seq, services) -> None:
        self.hasSnapshot = True
        copied = {name: dict(values) for name, values in services.items()}
        if not self.adopted:
            self.services = copied
        self.gslb.siteReported(self, session, copied, replace=True)

    def deltaReceived(self, session, seq, baseSeq, changes) -> None:
        if not self.hasSnapshot:
            return
        if not self.adopted:
            for name, values in changes.items():
                self.services.setdefault(name, {}).update(values)
        self.gslb.siteReported(self, session, changes, replace=False)

    def resyncRequested(self, session) -> None:
        # An appliance publishes no metrics of its own over MEP.
        pass

    def rttMeasured(self, session, rtt) -> None:
        self.gslb.siteRTT(self, session, rtt)

    def rttReported(self, session, rtts) -> None:
        self.gslb.siteProbed(self, session, rtts)

    def sessionsReceived(self, session, entries) -> None:
        self.gslb.sessionsReceived(self, session, entries)

    def probeReceived(self, session, networks) -> None:
        # Only sites measure RTT; the session refuses a PROBE sent to an
        # appliance before it gets here.
        pass

    def sessionLost(self, session, reason) -> None:
        self.gslb.sessionLost(self, session, reason)


@dataclass(slots=True)
class Mastery:
    """A site this core masters."""

    site: str
    epoch: int
    session: object = None
    handler: Optional[ApplianceSessionHandler] = None
    connector: Optional[ClientService] = None
    unreached: object = None  # the check that the site was reached in time
    poller: object = None  # an SNMP site's SNMPSitePoller


class CoreGSLB:
    """
    @param publish: C{publish(topic, body, target=None)} on the hub relay.
    @param callHub: C{callHub(command, **arguments)} -> Deferred, an AMP call
        to the supervisor.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        core: int,
        topology: Topology,
        authority: Authority,
        publish: Callable[..., None],
        callHub: Callable[..., defer.Deferred],
        secret: Optional[bytes] = None,
        clientTLS=None,
        locations=None,
        incarnation: Optional[str] = None,
    ) -> None:
        """
        @param locations: the L{LocationDB}; by default the topology's
            C{location_db} is read.
        """
        self.reactor = reactor
        self.core = core
        self.topology = topology
        self.authority = authority
        self._hubPublish = publish
        # Deltas recorded this reactor turn, published together at its end
        # (see publish: nothing overtakes them).
        self._pendingDeltas: list = []
        self._deltaFlush = None
        self.callHub = callHub
        self.secret = secret
        self.clientTLS = clientTLS
        appliance = topology.appliance
        self.metricsInterval = appliance.metrics_interval
        self.deadInterval = appliance.dead_interval
        self.table = MetricTable((site.name for site in topology.sites), canonical=_topologyName(topology))
        self.view = MastershipView()
        self.mastered: dict[str, Mastery] = {}
        self.sessions: list = []
        self.addressOf = {service.name: service.ip for service in topology.services}
        self._replanCall = None
        # Sites changed since the last re-plan, each with the metrics its
        # changes touched (None: anything), and what each vserver's plan reads.
        self._dirtySites: dict[str, Optional[frozenset]] = {}
        self._reads: dict[str, frozenset] = {}
        # The record types (1: A, 28: AAAA) each vserver's chain has services
        # of; the sites each vserver's answers depend on; plans that failed.
        self._familiesOf = familiesOf(topology)
        self._unapplied: set = set()
        # Which vservers a change at a site can affect (their services, or
        # those of a backup vserver they fall back to), and which monitored
        # services each site has: per-update work stays proportional to the
        # change, not to the topology.
        self.vserversBySite = vserversBySite(topology)
        self._sitesOf: dict[str, set[str]] = {}
        for site, names in self.vserversBySite.items():
            for name in names:
                self._sitesOf.setdefault(name, set()).add(site)
        self.monitoredBySite: dict[str, list] = {}
        for service in topology.services:
            if service.monitor is not None:
                self.monitoredBySite.setdefault(service.site, []).append(service)
        # Plans depend on time only through metric freshness: the ager
        # re-plans the vservers of sites whose metrics turned stale (or
        # fresh again) since the last look, not every vserver every interval
        # (at 1,000 vservers that blocked the reactor 0.3 s a second).
        self._siteFresh: dict[str, bool] = {}
        self._ager = task.LoopingCall(self._age)
        self._ager.clock = reactor
        self._synced: Optional[defer.Deferred] = None
        self._awaitingPersistence = False
        self._syncDeadline = None
        self._retry = None
        self.running = False
        # Appliance-side monitors running here, by service (masters only).
        self.monitors: dict[str, "MonitorRunner"] = {}
        self._httpClient = None
        # The SNMP engine, made when this core first masters an SNMP site.
        self.snmp = None
        # When this core last published each mastered site's metrics.
        self._published: dict[str, float] = {}
        # When each mastered site's RTT was last shared (see RTT_SHARE_INTERVALS).
        self._rttShared: dict[str, float] = {}
        # MEP authentication failures per site (or claimed peer name).
        self.authFailures: dict[str, int] = {}
        # The decision engine: runtime changes, plans, persistence, probes.
        self.locations = locations if locations is not None else loadLocations(topology)
        self.runtimeState: dict = {"lb_method": {}, "disabled": []}
        self.vservers = dict(topology.vserverByName)
        self.disabled: frozenset = frozenset()
        self.plans: dict[tuple[str, int], object] = {}
        self._planKeys: dict[tuple[str, int], tuple] = {}
        self.persistence = PersistenceTable(f"{appliance.name}/{core}")
        self._persistFlush = None
        self._probeAsked: dict[str, float] = {}
        self._probePending: set[str] = set()
        self._probeFlush = None
        self.choice = ChoiceContext(
            locations=self.locations,
            persistence=self.persistence,
            clock=reactor.seconds,
            persisted=self._schedulePersistFlush,
            requestProbe=self._requestProbe,
            probes=lambda site: self.table[site].probes,
        )
        self._persistenceTicker = task.LoopingCall(self._persistenceTick)
        self._persistenceTicker.clock = reactor
        self._probeRefresher = task.LoopingCall(self._refreshProbes)
        self._probeRefresher.clock = reactor
        # Statistics: what each plan's queries count as, and the counters of
        # choosers and books already replaced.
        self._planTally: dict[tuple[str, int], tuple] = {}
        self._retired: dict[str, int] = {}
        self.stats = statsProtocol.CoreStats(
            reactor, core, incarnation or f"{core}/{os.getpid()}", appliance.consolidation_interval,
            self.countersNow, self.publish,
        )
        self.stats.roundApplied = self._rateShares
        # Response rate limiting for the appliance as a whole (see dns/rrl).
        self._rrlReported: dict[str, int] = {}
        if appliance.rrl is not None:
            limit = appliance.rrl
            authority.rrl = RateLimiter(
                limit.responses_per_second, limit.window, limit.slip, limit.ipv4_prefix, limit.ipv6_prefix,
                cores=appliance.coreCount(),
            )
            authority.clock = reactor.seconds

    # --- life ---------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        if self.snmp is None and any(site.protocol == "snmp" for site in self.topology.sites):
            # Importing pysnmp and building its engine takes most of a
            # second: before serving, not when a site is taken over.
            try:
                from gslb_twisted.snmp.client import SNMPClient

                self.snmp = SNMPClient(self.reactor, self.topology.appliance.ip)
            except Exception:
                self.log.failure("core {core}: the SNMP engine could not start", core=self.core)
        self.replan()
        self._ager.start(self.metricsInterval, now=False)
        self._persistenceTicker.start(PERSISTENCE_TICK, now=False)
        self._probeRefresher.start(PROBE_REFRESH, now=False)
        self.stats.start()

    def stop(self) -> defer.Deferred:
        self.running = False
        if self._ager.running:
            self._ager.stop()
        for loop in (self._persistenceTicker, self._probeRefresher):
            if loop.running:
                loop.stop()
        self.stats.stop()
        self._flushDeltas()
        for call in (self._replanCall, self._retry, self._syncDeadline, self._persistFlush, self._probeFlush):
            if call is not None and call.active():
                call.cancel()
        stopping = []
        for site in list(self.mastered):
            stopping.append(self._stopMastering(site, "core stopping", "shutdown"))
        for runner in self.monitors.values():
            stopping.append(defer.maybeDeferred(runner.stopService))
        self.monitors.clear()
        for session in list(self.sessions):
            session.close("shutdown", "core stopping")
        if self.snmp is not None:
            self.snmp.close()
            self.snmp = None
        return defer.gatherResults(stopping).addCallback(lambda _: None)

    # --- joining: snapshots before DNS ------------------------------------------------

    def sync(self, masters: list) -> defer.Deferred:
        """
        Learn the current masters (C{[[site, core, epoch], ...]}) and fire
        once this core holds every mastered site's snapshot: a core serves
        DNS only from the same metrics as the others.
        """
        # Each master announced is asked for its snapshot (masterChanged);
        # the ones still missing are asked again every metrics_interval.
        for site, core, epoch in masters:
            self.masterChanged(site, core, epoch)
        self._requestOrphans()
        # Persistence entries too: a client persisted on another core must
        # get the same answer here from our first reply.
        self.publish(TOPIC_PERSIST_REQUEST, b"{}")
        self._awaitingPersistence = any(claim.core != self.core for claim in self.view.masters.values())
        synced = self._synced = defer.Deferred()
        self._retry = self.reactor.callLater(self.metricsInterval, self._requestMissing)
        # A master that never answers must not keep a core out of service
        # for ever: after a generous deadline it serves what it has.
        self._syncDeadline = self.reactor.callLater(10 * self.metricsInterval, self._syncTimedOut)
        self._checkSynced()
        # Not self._synced: with nothing to wait for it is already cleared.
        return synced

    def _requestOrphans(self) -> None:
        """
        Sites whose master died and that nobody masters yet (one that dials
        us reconnects in a moment): every other core still holds their last
        metrics; ask them, so that we answer from the same.  We do not wait
        for these: there may be nobody left to answer.
        """
        for site in self.table.sites:
            if self.view.master(site) is None and site in self.view.epochs:
                body = json.dumps({"site": site, "orphan": self.view.epochs[site]}).encode()
                self.publish(TOPIC_SNAPSHOT_REQUEST, body)

    def _missingSnapshots(self) -> list[str]:
        missing = []
        for site, claim in self.view.masters.items():
            if claim.core == self.core:
                continue
            metrics = self.table[site]
            if not metrics.hasSnapshot or metrics.epoch != claim.epoch:
                missing.append(site)
        return missing

    def _requestMissing(self) -> None:
        if self._awaitingPersistence:
            self.publish(TOPIC_PERSIST_REQUEST, b"{}")
        for site in self._missingSnapshots():
            claim = self.view.masters[site]
            self.publish(TOPIC_SNAPSHOT_REQUEST, json.dumps({"site": site}).encode(), claim.core)
        if self._synced is not None and not self._synced.called:
            self._retry = self.reactor.callLater(self.metricsInterval, self._requestMissing)

    def _checkSynced(self) -> None:
        if self._synced is None or self._synced.called or self._missingSnapshots():
            return
        if self._awaitingPersistence and any(claim.core != self.core for claim in self.view.masters.values()):
            # Another core is up: its persistence entries, too, before we serve.
            return
        self._finishSync()

    def _syncTimedOut(self) -> None:
        self._syncDeadline = None
        self.log.warn(
            "core {core} serves without snapshots of {sites} (no answer from their masters)",
            core=self.core, sites=", ".join(self._missingSnapshots()),
        )
        self._finishSync()

    def _finishSync(self) -> None:
        for call in (self._syncDeadline, self._retry):
            if call is not None and call.active():
                call.cancel()
        synced, self._synced = self._synced, None
        if synced is not None and not synced.called:
            synced.callback(None)

    # --- the hub -------------------------------------------------------------------

    def masterChanged(self, site: str, core: Optional[int], epoch: int) -> None:
        if site not in self.table.sites or not self.view.announce(site, core, epoch):
            return
        mastery = self.mastered.get(site)
        if mastery is not None and (core != self.core or epoch != mastery.epoch):
            self._stopMastering(site, f"core {core} took over with epoch {epoch}")
        if core is not None and core != self.core and self.table[site].epoch != epoch:
            # The new master broadcasts its first snapshot; ask as well, in
            # case we joined the hub after it did (asking twice is harmless).
            self.publish(TOPIC_SNAPSHOT_REQUEST, json.dumps({"site": site}).encode(), core)
        # A master we were waiting for may be gone: nothing left to wait for.
        self._checkSynced()

    def assigned(self, site: str, epoch: int) -> None:
        """The hub made this core master of C{site} (one we dial, or a static one)."""
        if site not in self.table.sites:
            return
        self.view.announce(site, self.core, epoch)
        self._beginMastering(site, epoch)
        config = self.topology.siteByName[site]
        if config.protocol == "mep" and config.metric_exchange:
            self._connect(config)
            # Until a session delivers, the previous master's word stands
            # (our snapshot carried it on); a site not reached within
            # dead_interval is DOWN, as is one whose session dies.
            self.mastered[site].unreached = self.reactor.callLater(self.deadInterval, self._unreached, site, epoch)
        elif config.protocol == "snmp":
            try:
                self._pollSNMP(config)
            except Exception as e:
                # (No UDP socket, pysnmp refusing the settings...): the site
                # cannot be polled, so it is DOWN, and says why.
                self.log.failure("core {core} cannot poll SNMP site {site}", core=self.core, site=site)
                self._record(site, state=DOWN, reason=f"SNMP polling could not start: {e}")
        elif not config.metric_exchange:
            # A static site: UP, its services UP unless a monitor says not.
            services = {s.name: {"state": UP} for s in self.topology.services if s.site == site}
            self._record(site, state=UP, services=services, replace=True)

    # --- mastering ----------------------------------------------------------------------

    def _beginMastering(self, site: str, epoch: int) -> Mastery:
        mastery = self.mastered.get(site)
        if mastery is not None and mastery.epoch == epoch:
            return mastery
        mastery = self.mastered[site] = Mastery(site, epoch)
        self.table.beginEpoch(site, epoch)
        self.log.info("core {core} masters site {site} (epoch {epoch})", core=self.core, site=site, epoch=epoch)
        # Every core adopts this epoch from our snapshot; deltas follow on.
        self._broadcastSnapshot(site)
        return mastery

    def _unreached(self, site: str, epoch: int) -> None:
        mastery = self.mastered.get(site)
        if mastery is not None and mastery.epoch == epoch and mastery.session is None:
            self._record(site, state=DOWN, reason="no MEP session since this core began mastering it")

    def _stopMastering(self, site: str, why: str, code: str = "superseded") -> defer.Deferred:
        mastery = self.mastered.pop(site, None)
        if mastery is None:
            return defer.succeed(None)
        self.log.info("core {core} no longer masters site {site}: {why}", core=self.core, site=site, why=why)
        if mastery.unreached is not None and mastery.unreached.active():
            mastery.unreached.cancel()
        if mastery.poller is not None:
            mastery.poller.stop()
        self._refreshMonitors(site)
        if mastery.session is not None:
            mastery.session.close(code, why)
        if mastery.connector is not None:
            return defer.maybeDeferred(mastery.connector.stopService)
        return defer.succeed(None)

    def _pollSNMP(self, site: Site) -> None:
        """Master an SNMP site: poll its agent (the first poll within one interval)."""
        from gslb_twisted.snmp.poller import SNMPSitePoller, pollTimeout
        from gslb_twisted.snmp.sampling import pollPlan

        mastery = self.mastered[site.name]
        if self.snmp is None:
            from gslb_twisted.snmp.client import SNMPClient

            self.snmp = SNMPClient(self.reactor, self.topology.appliance.ip)
        self.snmp.addTarget(site.name, site.ip, site.snmp, pollTimeout(site, self.metricsInterval))
        services = [service for service in self.topology.services if service.site == site.name]
        plan = pollPlan(site.name, self.topology.metricTableOf(site), site.snmp, services)
        epoch = mastery.epoch

        def report(state, services, lagging, reason, name=site.name):
            current = self.mastered.get(name)
            if current is None or current.epoch != epoch:
                return
            if state == UP:
                self._record(name, state=UP, services=services, lagging=lagging)
            else:
                self._record(name, state=DOWN, reason=reason)

        mastery.poller = SNMPSitePoller(
            self.reactor, self.snmp, site, plan, self.metricsInterval, self.deadInterval, report
        )
        mastery.poller.start()

    def _snmpStatus(self, site: Site) -> dict:
        """An SNMP site's polling as its master sees it (nothing elsewhere)."""
        if site.protocol != "snmp":
            return {}
        settings = site.snmp
        row = {"snmp_version": settings.version, "snmp_port": settings.port}
        if settings.version == "3":
            row["snmp_user"] = settings.user
            row["snmp_security"] = settings.securityLevel
        mastery = self.mastered.get(site.name)
        if mastery is not None and mastery.poller is not None:
            row.update({f"snmp_{key}": value for key, value in mastery.poller.status().items()})
        return row

    def _connect(self, site: Site) -> None:
        mastery = self.mastered[site.name]
        appliance = self.topology.appliance
        endpointClass = TCP6ClientEndpoint if ":" in site.ip else TCP4ClientEndpoint
        endpoint = endpointClass(
            self.reactor, site.ip, site.mep_port, timeout=self.deadInterval, bindAddress=(appliance.ip, 0)
        )
        if self.clientTLS is not None:
            endpoint = self.clientTLS(endpoint, site)

        def buildSession():
            return self.newSession(site.name, "outbound")

        connector = ClientService(
            endpoint,
            Factory.forProtocol(buildSession),
            retryPolicy=backoffPolicy(initialDelay=min(0.25, self.metricsInterval / 4), maxDelay=self.deadInterval, factor=1.5),
            clock=self.reactor,
        )
        mastery.connector = connector
        connector.startService()

    def newSession(self, site: Optional[str], direction: str) -> MEPSession:
        """A MEP session of this core (C{site}: the one dialled; None: inbound)."""
        appliance = self.topology.appliance
        handler = ApplianceSessionHandler(self, site)
        session = MEPSession(
            role="appliance",
            localName=appliance.name,
            secret=self.secret,
            clock=self.reactor,
            keepaliveInterval=self.metricsInterval,
            deadInterval=self.deadInterval,
            handler=handler,
            expectedPeer=site,
        )
        session.direction = direction
        session.handler = handler
        self.sessions.append(session)
        return session

    # --- MEP events -------------------------------------------------------------------

    def sessionAuthenticated(self, handler: ApplianceSessionHandler, session) -> bool:
        peer = session.peerName
        config = self.topology.siteByName.get(peer)
        if config is None or config.protocol != "mep" or not config.metric_exchange:
            self.log.warn("MEP peer {peer!r} is not a MEP site of this appliance: refused", peer=peer)
            return False
        if session.direction == "inbound":
            peerHost = getattr(session.transport.getPeer(), "host", None)
            if peerHost != config.ip or not siteInitiates(self.topology, config):
                self.log.warn(
                    "MEP peer {peer!r} connected from {host}; expected {ip} dialling us: refused",
                    peer=peer, host=peerHost, ip=config.ip,
                )
                return False
            handler.site = peer
            self._claimInbound(peer, handler, session)
            return True
        mastery = self.mastered.get(peer)
        if mastery is None:
            return False
        mastery.session, mastery.handler = session, handler
        handler.adopt()
        return True

    def _claimInbound(self, site: str, handler, session) -> None:
        """An inbound site: the accepting core claims it (taking it over)."""
        def granted(result):
            if not result["granted"]:
                session.close("busy", "a less loaded core should master this site: reconnect")
                return
            self.view.announce(site, self.core, result["epoch"])
            mastery = self._beginMastering(site, result["epoch"])
            if session.state == "closed":
                # The hub made us master all the same: say the site is DOWN
                # (unless another session of ours is live), or every core
                # keeps the previous master's word for it.
                if mastery.session is None:
                    self._record(site, state=DOWN, reason="its session closed before the claim was granted")
                return
            mastery.session, mastery.handler = session, handler
            services = handler.adopt()
            if services is not None:
                self._record(site, state=UP, services=services, replace=True)

        def failed(failure) -> None:
            self.log.failure("claiming site {site}", failure, site=site)
            session.close("internal", "this core could not take the site over: reconnect")

        self.callHub(ClaimSite, site=site, takeover=True).addCallback(granted).addErrback(failed)

    def _activeMastery(self, handler, session) -> Optional[Mastery]:
        mastery = self.mastered.get(handler.site) if handler.site else None
        if mastery is None or mastery.session is not session:
            return None
        return mastery

    def siteReported(self, handler, session, services: dict, replace: bool) -> None:
        mastery = self._activeMastery(handler, session)
        if mastery is None:
            return
        if replace:
            self._record(mastery.site, state=UP, services=services, replace=True)
        else:
            self._record(mastery.site, services=services)

    def siteRTT(self, handler, session, rtt: float) -> None:
        mastery = self._activeMastery(handler, session)
        if mastery is None:
            return
        known = self.table[mastery.site].rtt
        now = self.reactor.seconds()
        changed = known is None or abs(rtt - known) > max(RTT_CHANGE_ABSOLUTE, RTT_CHANGE_RELATIVE * known)
        due = now - self._rttShared.get(mastery.site, -math.inf) >= RTT_SHARE_INTERVALS * self.metricsInterval
        if changed and (known is None or due):
            self._rttShared[mastery.site] = now
            self._record(mastery.site, rtt=round(rtt, 6))
        else:
            # Jitter is not news; the site spoke all the same.
            self._record(mastery.site)

    def siteProbed(self, handler, session, rtts: dict) -> None:
        """A site's RTT measurements of client networks (RTT method)."""
        mastery = self._activeMastery(handler, session)
        if mastery is None:
            return
        self._record(mastery.site, probes={network: round(float(ms), 3) for network, ms in rtts.items()})

    def sessionsReceived(self, handler, session, entries: list) -> None:
        """Persistence sessions a site shares (NetScaler's sessionExchange)."""
        if self._activeMastery(handler, session) is None:
            return
        taken = self._mergeEntries(entries)
        if taken:
            # The other cores learn them from us, as from any core.
            self._publishEntries(taken)

    def sessionLost(self, handler, session, reason: str) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
        if reason == "auth-failed":
            peer = handler.site or session.peerName or "unknown"
            self.authFailures[peer] = self.authFailures.get(peer, 0) + 1
        mastery = self._activeMastery(handler, session)
        if mastery is None:
            return
        mastery.session = mastery.handler = None
        self._record(mastery.site, state=DOWN, reason=reason)

    # --- the table --------------------------------------------------------------------

    def _record(self, site: str, reason: Optional[str] = None, **values) -> None:
        """As master: record what the site said, propagate the change."""
        before = self.table[site].state
        delta = self.table.recordAsMaster(site, now=self.reactor.seconds(), **values)
        metrics = self.table[site]
        after = metrics.state
        # A core taking over a site it knew nothing of (state None) in a
        # later epoch sees no transition: the site was UP under the previous
        # master, which logged it.
        inherited = before is None and after == UP and metrics.epoch > 1
        if after != before and after is not None and not inherited:
            self._logTransition(site, after, reason)
        self._refreshMonitors(site)
        now = self.reactor.seconds()
        if delta is not None:
            self._queueDelta(delta)
            self._published[site] = now
            if _affectsAnswers(delta["changes"]):
                self.scheduleReplan(site, touchedMetrics(delta["changes"]))
        elif now - self._published.get(site, 0.0) >= self.metricsInterval:
            # Nothing changed, but the site spoke: tell the other cores the
            # metrics they hold are still current, or they would think them
            # stale and fall back to the backup method.
            metrics = self.table[site]
            self.publish(TOPIC_FRESH, json.dumps({
                "site": site, "epoch": metrics.epoch, "seq": metrics.seq, "updated_at": metrics.updatedAt,
            }).encode())
            self._published[site] = now

    # --- appliance-side monitors --------------------------------------------------

    def _refreshMonitors(self, site: str) -> None:
        """
        Run each monitor of C{site}'s services while this core masters the
        site and the monitor's trigger holds; stop it otherwise.
        """
        config = self.topology.siteByName[site]
        metrics = self.table[site]
        mepUp = config.metric_exchange and metrics.state == UP
        for service in self.monitoredBySite.get(site, ()):
            reported = metrics.services.get(service.name) or {}
            active = site in self.mastered and monitorActive(service.monitor.trigger, mepUp, reported.get("state"))
            runner = self.monitors.get(service.name)
            if active and runner is None:
                # Imported here: treq and twisted.web are several MiB of a
                # core that runs no monitor.
                from gslb_twisted.monitors import MonitorRunner, makeHTTPClient, probeFor

                if self._httpClient is None:
                    self._httpClient = makeHTTPClient(self.reactor)
                runner = MonitorRunner(
                    self.reactor,
                    probeFor(service.monitor, service, self.reactor, self._httpClient),
                    service.monitor.interval,
                    lambda name, result, site=site: self._monitorChanged(site, name, result),
                    service.name,
                )
                self.monitors[service.name] = runner
                runner.startService()
            elif not active:
                if runner is not None:
                    del self.monitors[service.name]
                    runner.stopService()
                # A verdict no monitor stands behind any more (ours, or a
                # previous master's) must not decide the service's state.
                if site in self.mastered and reported.get("monitor") is not None:
                    self._record(site, services={service.name: {"monitor": None}})

    def _monitorChanged(self, site: str, service: str, result) -> None:
        if site in self.mastered and service in self.monitors:
            self._record(site, services={service: {"monitor": UP if result.up else DOWN}})

    def _logTransition(self, site: str, state: str, reason: Optional[str]) -> None:
        # Logged once per transition, by the master only.
        if state == DOWN:
            self.log.warn("site {site} is DOWN ({reason})", site=site, reason=reason or "no metrics")
        else:
            self.log.info("site {site} is UP", site=site)

    def _broadcastSnapshot(self, site: str, target: Optional[int] = None) -> None:
        self.publish(TOPIC_SNAPSHOT, json.dumps(self.table[site].snapshot()).encode(), target)

    # --- the hub -------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, target: Optional[int] = None) -> None:
        """Publish on the hub, after the deltas recorded so far (order per core holds)."""
        if self._pendingDeltas:
            self._flushDeltas()
        self._hubPublish(topic, body, target)

    def _queueDelta(self, delta: dict) -> None:
        self._pendingDeltas.append(delta)
        if self._deltaFlush is None:
            self._deltaFlush = self.reactor.callLater(0, self._flushDeltas)

    def _flushDeltas(self) -> None:
        if self._deltaFlush is not None:
            if self._deltaFlush.active():
                self._deltaFlush.cancel()
            self._deltaFlush = None
        pending, self._pendingDeltas = self._pendingDeltas, []
        if len(pending) == 1:
            self._hubPublish(TOPIC_DELTA, json.dumps(pending[0]).encode(), None)
        elif pending:
            self._hubPublish(TOPIC_DELTAS, json.dumps(pending).encode(), None)

    def _applyDelta(self, sender: int, delta: dict) -> None:
        outcome = self.table.applyDelta(delta, self.view.master(delta["site"]), sender)
        if outcome == GAP:
            self.publish(TOPIC_SNAPSHOT_REQUEST, json.dumps({"site": delta["site"]}).encode(), sender)
        elif outcome == APPLIED and _affectsAnswers(delta["changes"]):
            self.scheduleReplan(delta["site"], touchedMetrics(delta["changes"]))

    def delivered(self, sender: int, topic: str, body: bytes) -> None:
        message = json.loads(body)
        if topic in statsProtocol.TOPICS:
            self.stats.delivered(sender, topic, message)
        elif topic == TOPIC_DELTA:
            self._applyDelta(sender, message)
        elif topic == TOPIC_DELTAS:
            for delta in message:
                self._applyDelta(sender, delta)
        elif topic == TOPIC_SNAPSHOT:
            site = message["site"]
            master = self.view.master(site)
            if master is None and self._acceptsOrphan(message):
                # The last metrics of a site without a master, from a peer.
                master = (sender, message["epoch"])
            if self.table.applySnapshot(message, master, sender):
                self.scheduleReplan(site)
                self._checkSynced()
        elif topic == TOPIC_FRESH:
            self.table.touch(message, self.view.master(message["site"]), sender)
        elif topic == TOPIC_PERSIST:
            taken = self._mergeEntries(message["sessions"])
            if taken:
                # Every site hears of every entry, from its own master.
                self._shareWithSites(taken)
            if message.get("snapshot") and self._awaitingPersistence:
                self._awaitingPersistence = False
                self._checkSynced()
        elif topic == TOPIC_PERSIST_REQUEST:
            self._publishEntries(self.persistence.snapshot(self.reactor.seconds()), sender, snapshot=True)
        elif topic == TOPIC_PROBE:
            self._sendProbes(message["networks"])
        elif topic == TOPIC_SNAPSHOT_REQUEST:
            site = message["site"]
            if site in self.mastered:
                self._broadcastSnapshot(site, sender)
            elif "orphan" in message and self.view.master(site) is None:
                metrics = self.table.sites.get(site)
                if metrics is not None and metrics.hasSnapshot and metrics.epoch == message["orphan"]:
                    self._broadcastSnapshot(site, sender)

    def _acceptsOrphan(self, snapshot: dict) -> bool:
        """A peer's snapshot of a masterless site, of the epoch it was orphaned in, and newer than ours."""
        site = snapshot["site"]
        metrics = self.table.sites.get(site)
        return (
            metrics is not None
            and snapshot["epoch"] == self.view.epochs.get(site)
            and (not metrics.hasSnapshot or (snapshot["epoch"], snapshot["seq"]) > metrics.version())
        )

    # --- answers ------------------------------------------------------------------------

    def scheduleReplan(self, site: Optional[str] = None, touched: Optional[frozenset] = None) -> None:
        """
        Re-plan the vservers a site's change affects, soon, once for a
        burst; with C{touched} (the metrics changed), only those whose plans
        read one of them.
        """
        key = site if site is not None else "*"
        if key in self._dirtySites:
            before = self._dirtySites[key]
            self._dirtySites[key] = None if before is None or touched is None else before | touched
        else:
            self._dirtySites[key] = touched
        if self._replanCall is None or not self._replanCall.active():
            self._replanCall = self.reactor.callLater(0, self._replanDirty)

    def _metricsRead(self, vserver: str) -> frozenset:
        reads = self._reads.get(vserver)
        if reads is None:
            reads = self._reads[vserver] = metricsRead(vserver, self.vservers)
        return reads

    def _replanDirty(self) -> None:
        dirty, self._dirtySites = self._dirtySites, {}
        if "*" in dirty:
            self.replan()
            return
        # A changed site nobody masters may be one to expire (a peer's
        # last snapshot of it, say): before its vservers are planned.
        for site in self._expireOrphans(self.reactor.seconds(), dirty):
            dirty[site] = None
        keys = set()
        for site, touched in dirty.items():
            for vserver in self.vserversBySite.get(site, ()):
                if touched is None:
                    keys.update(((vserver, 1), (vserver, 28)))
                    continue
                reads = self._metricsRead(vserver)
                families = self._familiesOf[vserver]
                for rdtype in (1, 28):
                    # A family with no service in the vserver's chain
                    # answers from the other family's states alone.
                    if not touched.isdisjoint(reads if rdtype in families else ALWAYS_READ):
                        keys.add((vserver, rdtype))
        self.replan(keys=keys)

    def _age(self) -> None:
        """
        Every metrics_interval: re-plan where freshness changed since the
        last look (or since a plan was made with other freshness, see
        L{replan}), where orphans expired, and what failed to apply.
        """
        now = self.reactor.seconds()
        flipped = set()
        for name, metrics in self.table.sites.items():
            fresh = metrics.updatedAt is not None and now - metrics.updatedAt <= self.deadInterval
            if self._siteFresh.get(name) != fresh:
                self._siteFresh[name] = fresh
                flipped.add(name)
        # A site nobody masters that fell silent is DOWN: its vservers too.
        flipped.update(self._expireOrphans(now))
        keys = set(self._unapplied)
        for site in flipped:
            for name in self.vserversBySite.get(site, ()):
                keys.update(((name, 1), (name, 28)))
        self.replan(keys=keys)

    def replan(self, names: Optional[set] = None, keys: Optional[set] = None) -> None:
        """
        Re-plan the vservers named (all of them by default), or only the
        (vserver, record type) C{keys}.
        """
        now = self.reactor.seconds()
        if keys is not None:
            names = {name for name, _ in keys}
        if names is None:
            self._expireOrphans(now)
        elif not names:
            return
        planned = []
        for vserver in self.topology.vservers:
            if names is not None and vserver.name not in names:
                continue
            planned.append(vserver.name)
            vserver = self.vservers[vserver.name]
            for rdtype in (1, 28):
                if keys is not None and (vserver.name, rdtype) not in keys:
                    continue
                try:
                    self._applyPlan(vserver, rdtype, now)
                except Exception:
                    # One vserver's failure must not cost the others their
                    # plans, nor reach the reactor; the ager retries it.
                    self._unapplied.add((vserver.name, rdtype))
                    self.log.failure("core {core}: planning vserver {vserver} (type {rdtype}) failed",
                                     core=self.core, vserver=vserver.name, rdtype=rdtype)
        # Plans made while a site's freshness differs from what the ager
        # last saw (stale between two looks, say) would outlive its
        # recovery unnoticed: make the ager look at those sites again.
        for name in planned:
            for site in self._sitesOf.get(name, ()):
                metrics = self.table[site]
                fresh = metrics.updatedAt is not None and now - metrics.updatedAt <= self.deadInterval
                if self._siteFresh.get(site, fresh) != fresh:
                    del self._siteFresh[site]

    def _applyPlan(self, vserver, rdtype: int, now: float) -> None:
        key = (vserver.name, rdtype)
        plan = planVServer(
            vserver, self.topology, self.table, rdtype, now, self.deadInterval,
            self.disabled, self.vservers, self.locations,
        )
        planKey = self._planKey(plan)
        if self._planKeys.get(key) != planKey:
            failure = RCODE_SERVFAIL if plan.response == SERVFAIL else None
            self._settle(vserver.name, rdtype)
            book = self.authority.book(vserver.name, rdtype)
            chooser = buildChooser(plan, self.choice, book.indexOf)
            self.authority.setChooser(vserver.name, rdtype, chooser, failure)
            # What its answers count as, not the plan itself: self.plans
            # holds the current one, and its candidates are many.
            counts = (plan.fallback, plan.source, plan.spill is not None and plan.spill.spilled)
            self._planTally[key] = (counts, book, book.totalHits(), _countingChoosers(chooser))
            self._planKeys[key] = planKey
        # Only once applied: what resolve explains is what answers.
        self.plans[key] = plan
        self._unapplied.discard(key)

    # --- statistics ---------------------------------------------------------------------

    def _count(self, counters: dict, scope: str, name: str, counter: str, value: int) -> None:
        if value:
            key = counterKey(scope, name, counter)
            counters[key] = counters.get(key, 0) + value

    def _settle(self, vserver: str, rdtype: int) -> None:
        """
        Attribute the queries a plan answered since last settled to what it
        was (backup method, backup vserver, spilled over, down response),
        and keep its chooser's counts: the plan or chooser may be replaced.
        """
        tally = self._planTally.get((vserver, rdtype))
        if tally is None:
            return
        counts, book, base, counting = tally
        total = book.totalHits()
        answered = total - base
        if not answered and not counting:
            return  # (most plans of a large topology, most rounds)
        self._planTally[(vserver, rdtype)] = (counts, book, total, counting)
        retired = self._retired
        if answered:
            fallback, source, spilled = counts
            if fallback:
                self._count(retired, "vserver", vserver, "backup_method_hits", answered)
            if source == "backup_vserver":
                self._count(retired, "vserver", vserver, "backup_vserver_hits", answered)
                if spilled:
                    self._count(retired, "vserver", vserver, "spillovers", answered)
            elif source == "down_response":
                self._count(retired, "vserver", vserver, "down_responses", answered)
        # Counts kept by choosers: taken whole, then zeroed.
        for inner in counting:
            if hasattr(inner, "hits") and hasattr(inner, "misses"):
                self._count(retired, "vserver", vserver, "persistence_hits", inner.hits)
                self._count(retired, "vserver", vserver, "persistence_misses", inner.misses)
                inner.hits = inner.misses = 0
            if getattr(inner, "fallbacks", 0):
                self._count(retired, "vserver", vserver, "backup_method_hits", inner.fallbacks)
                inner.fallbacks = 0

    def statsView(self) -> dict:
        """
        The consolidated counters as this core holds them (see
        L{statsProtocol.CoreStats.view}), with what is a state, not a count:
        per vserver its state, health (% of bound services up), active and
        inactive services, persistence sessions; per service its state.
        """
        view = self.stats.view()
        view["core"] = self.core
        vservers = {}
        for row in vserverRows(self):
            services = row["services"]
            active = sum(1 for s in services if s["state"] == UP)
            vservers[row["name"]] = {
                "state": row["state"],
                "health": round(100.0 * active / len(services), 1) if services else 0.0,
                "active_services": active,
                "inactive_services": len(services) - active,
                "persistence_sessions": row["persistence_entries"],
                "lb_method": row["lb_method"],
                "services": [s["name"] for s in services],
            }
        view["vservers"] = vservers
        view["services"] = {
            service.name: {"site": service.site, "state": serviceState(service, self.topology, self.table, self.disabled)[0]}
            for service in self.topology.services
        }
        return view

    def countersNow(self) -> dict:
        """Every cumulative counter of this core (see L{gslb_twisted.consolidator})."""
        for vserver, rdtype in list(self._planTally):
            self._settle(vserver, rdtype)
        counters = dict(self._retired)
        authority = self.authority
        count = self._count
        count(counters, "dns", "-", "queries", authority.queries)
        count(counters, "dns", "-", "bytes_in", authority.bytesIn)
        count(counters, "dns", "-", "bytes_out", authority.bytesOut)
        count(counters, "dns", "-", "dropped", authority.dropped)
        count(counters, "dns", "-", "truncated", authority.truncated)
        count(counters, "dns", "-", "tcp_refused", authority.tcpRefused)
        for rcode, n in authority.rcodes.items():
            count(counters, "dns", "-", "rcode_" + RCODE_NAMES.get(rcode, str(rcode)), n)
        byType = dict(authority.slowTypes)
        for answers in authority.vservers.values():
            hits = 0
            for rdtype, book in answers.books.items():
                total = book.totalHits()
                if not total:
                    continue  # (most books of a large topology, most rounds)
                hits += total
                byType[rdtype] = byType.get(rdtype, 0) + total
                for service, n in book.answersPerService().items():
                    count(counters, "service", service, "answers", n)
                    count(counters, "vserver_service", f"{answers.name}/{service}", "answers", n)
            count(counters, "vserver", answers.name, "hits", hits)
        # Slow-path answers were counted by type already, and in their book.
        for rdtype, n in authority.slowBookHits.items():
            byType[rdtype] = byType.get(rdtype, 0) - n
        for rdtype, n in byType.items():
            count(counters, "dns", "-", "qtype_" + QTYPE_NAMES.get(rdtype, str(rdtype)), n)
        count(counters, "core", str(self.core), "stale_rejected", self.table.staleRejected)
        count(counters, "core", str(self.core), "gaps", self.table.gaps)
        rrl = authority.rrl
        if rrl is not None:
            count(counters, "dns", "-", "rrl_dropped", rrl.dropped)
            count(counters, "dns", "-", "rrl_slipped", rrl.slipped)
            # Hot accounts: consolidated, they give each core its share.
            hot = rrl.hot(self._rrlReported)
            self._rrlReported.update(hot)
            if len(self._rrlReported) > 4 * len(hot) + 1000:
                # Accounts gone cold keep their last consolidated value.
                for name in [name for name in self._rrlReported if name not in hot][:len(self._rrlReported) // 2]:
                    del self._rrlReported[name]
            for name, responses in self._rrlReported.items():
                counters[counterKey("rrl", name, "responses")] = responses
        return counters

    def _rateShares(self) -> None:
        """After a round: this core's share of each hot rate-limit account."""
        rrl = self.authority.rrl
        if rrl is None:
            return
        consolidation = self.stats.consolidation
        mine = consolidation.table.get(self.stats.incarnation, {})
        shares = {}
        for key, total in consolidation.totals.items():
            if key.startswith("rrl\t") and total:
                name = key.split("\t", 2)[1]
                shares[name] = mine.get(key, 0) / total
        rrl.setShares(shares)
        if self.stats.serving:
            rrl.setCores(len(self.stats.serving))

    def _planKey(self, plan) -> tuple:
        """
        What a chooser depends on: an unchanged key keeps the chooser (and
        its rotation and per-client caches).  RTT also depends on the
        probes of the candidates' sites.
        """
        probes = ()
        if plan.method == "RTT":
            # Only the probes: other metric updates keep the chooser (and its
            # tie rotation).
            probes = tuple(self.table[c.site].probesVersion for c in plan.candidates)
        return (
            plan.method, plan.sets, plan.source, plan.answering, plan.response,
            tuple(c.service for c in plan.candidates), plan.config, plan.askedConfig, probes,
        )

    def _expireOrphans(self, now: float, sites=None) -> list[str]:
        """
        A site nobody masters, silent past dead_interval, is DOWN on every
        core (each decides alone: there is no master to tell it).  Returns
        the sites it made DOWN (among C{sites}, all by default).
        """
        expired = []
        for site in self.table.sites if sites is None else [s for s in sites if s in self.table.sites]:
            metrics = self.table.sites[site]
            if metrics.state != UP or self.view.master(site) is not None:
                continue
            if metrics.updatedAt is None or now - metrics.updatedAt > self.deadInterval:
                metrics.state = DOWN
                expired.append(site)
                # Nobody runs its monitors either: their last verdicts lapse.
                for values in metrics.services.values():
                    values.pop("monitor", None)
        return expired

    # --- persistence ------------------------------------------------------------------

    def _persistenceKey(self, name: str, network: str):
        """(key, timeout) of a shared entry, or None if we have no such vserver."""
        vserver = self.vservers.get(name[:-5] if name.endswith("/AAAA") else name)
        if vserver is None:
            return None
        key = parseNetwork(network, prefixOfNetmask(vserver.persist_mask), vserver.v6_persist_mask_len)
        return None if key is None else (key, vserver.persistence_timeout)

    def _mergeEntries(self, entries: list) -> list:
        """Take shared persistence entries; those that changed our table."""
        now = self.reactor.seconds()
        taken = []
        for wire in entries:
            try:
                checkSessionEntry("SESSIONS", 0, dict(wire))
                found = self._persistenceKey(wire["vserver"], wire["network"])
                if found is not None and self.persistence.merge(wire["vserver"], found[0], wire, now, found[1]):
                    taken.append(wire)
            except (KeyError, TypeError, ValueError, ProtocolError):
                self.log.warn("ignored a malformed persistence entry {entry!r}", entry=wire)
        return taken

    def _schedulePersistFlush(self) -> None:
        """A new entry: share it before the next reactor turn."""
        if self._persistFlush is None or not self._persistFlush.active():
            self._persistFlush = self.reactor.callLater(0, self._flushPersistence)

    def _flushPersistence(self) -> None:
        entries = self.persistence.takePending(self.reactor.seconds())
        if not entries:
            return
        self._publishEntries(entries)
        self._shareWithSites(entries)

    def _shareWithSites(self, entries: list) -> None:
        """Entries to the sites we master: NetScaler's sessionExchange."""
        for mastery in self.mastered.values():
            session = mastery.session
            if session is not None and getattr(session, "state", None) == "established":
                # Made here, or checked when they reached us: not again per site.
                session.sendSessions(entries, validated=True)

    def _publishEntries(self, entries: list, target: Optional[int] = None, snapshot: bool = False) -> None:
        for start in range(0, max(len(entries), 1), PERSIST_CHUNK):
            chunk = entries[start:start + PERSIST_CHUNK]
            if not chunk and not snapshot:
                return
            body = {"sessions": chunk}
            if snapshot:
                body["snapshot"] = start + PERSIST_CHUNK >= len(entries)
            self.publish(TOPIC_PERSIST, json.dumps(body).encode(), target)

    def _persistenceTick(self) -> None:
        self.persistence.expire(self.reactor.seconds())
        self._flushPersistence()

    # --- RTT probes ----------------------------------------------------------------------

    def _requestProbe(self, network: str) -> None:
        """A client network no site has measured: ask every site (via their masters)."""
        now = self.reactor.seconds()
        if now - self._probeAsked.get(network, -PROBE_RETRY) < PROBE_RETRY:
            return
        self._probeAsked[network] = now
        self._probePending.add(network)
        if self._probeFlush is None or not self._probeFlush.active():
            self._probeFlush = self.reactor.callLater(0, self._flushProbes)

    def _flushProbes(self) -> None:
        networks, self._probePending = sorted(self._probePending), set()
        if not networks:
            return
        if len(self._probeAsked) > 65536:
            self._probeAsked.clear()
        self.publish(TOPIC_PROBE, json.dumps({"networks": networks}).encode())
        self._sendProbes(networks)

    def _sendProbes(self, networks: list) -> None:
        for mastery in self.mastered.values():
            self._probeSite(mastery, networks)

    def _probeSite(self, mastery: Mastery, networks: list) -> None:
        session = mastery.session
        if networks and session is not None and getattr(session, "state", None) == "established":
            session.sendProbe(networks)

    def _refreshProbes(self) -> None:
        """Each mastered site measures again the networks it measured."""
        for site, mastery in self.mastered.items():
            self._probeSite(mastery, list(self.table[site].probes))

    # --- runtime changes --------------------------------------------------------------

    def applyRuntime(self, state: dict) -> None:
        """
        The appliance's whole runtime state (C{set gslb vserver -lbMethod},
        C{enable|disable gslb service}), as the supervisor keeps it: replaces
        the previous one, on every core alike.
        """
        methods = dict(state.get("lb_method") or {})
        disabled = frozenset(state.get("disabled") or ())
        vservers = dict(self.topology.vserverByName)
        for name, method in methods.items():
            if name in vservers:
                vservers[name] = dataclasses.replace(vservers[name], lb_method=method)
            else:
                self.log.warn("runtime state names an unknown vserver {name}", name=name)
        self.runtimeState = {"lb_method": methods, "disabled": sorted(disabled)}
        self.vservers = vservers
        self._reads = {}  # a method changed: what plans read changed with it
        self.disabled = disabled
        self.replan()

    # --- inspection ---------------------------------------------------------------------

    def explain(self, name: str, qtype: str = "A", client: Optional[str] = None) -> dict:
        """Why this core answers C{name} as it does now (C{resolve}): read-only."""
        return explainQuery(self, name, qtype, client or "127.0.0.1")

    def inspect(self, what: str, site: Optional[str] = None):
        now = self.reactor.seconds()
        if what == "versions":
            return {name: list(version) for name, version in self.table.versions().items()}
        if what == "sites":
            rows = []
            for config in self.topology.sites:
                metrics = self.table[config.name]
                master = self.view.master(config.name)
                rows.append({
                    "name": config.name,
                    "ip": config.ip,
                    "protocol": config.protocol,
                    "metric_exchange": config.metric_exchange,
                    "state": metrics.state or DOWN,
                    "master_core": None if master is None else master[0],
                    "epoch": metrics.epoch,
                    "seq": metrics.seq,
                    "metrics_age": None if metrics.updatedAt is None else round(now - metrics.updatedAt, 3),
                    "rtt": metrics.rtt,
                    "rtt_ms": None if metrics.rtt is None else round(metrics.rtt * 1000, 3),
                    "direction": "inbound" if siteInitiates(self.topology, config) else "outbound",
                    "source": metricSource(config),
                    "table": config.snmp.table if config.protocol == "snmp" else None,
                    **self._snmpStatus(config),
                })
            return rows
        if what == "services":
            rows = []
            for service in self.topology.services:
                reported = self.table[service.site].services.get(service.name) or {}
                state, reason = serviceState(service, self.topology, self.table, self.disabled)
                rows.append({
                    "name": service.name, "site": service.site, "ip": service.ip, "port": service.port,
                    "type": service.type, "state": state, "reason": reason,
                    **{key: reported.get(key) for key in ("connections", "response_time", "bandwidth", "packets", "load")},
                })
            return rows
        if what == "mep":
            rows = []
            for session in self.sessions:
                peer = session.handler.site or session.peerName
                rows.append({
                    "site": peer,
                    "core": self.core,
                    "direction": session.direction,
                    "state": session.state,
                    "frames_in": session.framesIn,
                    "frames_out": session.framesOut,
                    "bytes_in": session.bytesIn,
                    "bytes_out": session.bytesOut,
                    "auth_failures": self.authFailures.get(peer, 0) + session.authFailures,
                    "rtt": session.rtt,
                    "rtt_ms": None if session.rtt is None else round(session.rtt * 1000, 3),
                })
            # Failures are counted even when no session survives them.
            shown = {row["site"] for row in rows}
            for peer, failures in sorted(self.authFailures.items()):
                if peer not in shown:
                    config = self.topology.siteByName.get(peer)
                    direction = None if config is None else (
                        "inbound" if siteInitiates(self.topology, config) else "outbound"
                    )
                    rows.append({
                        "site": peer, "core": self.core, "direction": direction, "state": "down",
                        "frames_in": 0, "frames_out": 0, "bytes_in": 0, "bytes_out": 0,
                        "auth_failures": failures, "rtt": None,
                    })
            return rows
        if what == "vservers":
            return vserverRows(self)
        if what == "stats":
            return self.statsView()
        if what == "metrics":
            if site not in self.table.sites:
                raise KeyError(site)
            metrics = self.table[site]
            config = self.topology.siteByName[site]
            source = metricSource(config)
            rows = []
            for name, values in sorted(metrics.services.items()):
                sources, ages = {}, {}
                for metric in values:
                    # A monitor's verdict is the appliance's own; the rest
                    # came from the site, over MEP or SNMP.
                    sources[metric] = "MONITOR" if metric == "monitor" else source
                    age = metrics.ageOf(name, metric, now)
                    ages[metric] = None if age is None else round(age, 3)
                rows.append({"name": name, **values, "sources": sources, "ages": ages})
            return {
                "site": site,
                "core": self.core,
                "epoch": metrics.epoch,
                "seq": metrics.seq,
                "state": metrics.state or DOWN,
                "rtt": metrics.rtt,
                "source": source,
                "table": config.snmp.table if config.protocol == "snmp" else None,
                "metrics_age": None if metrics.updatedAt is None else round(now - metrics.updatedAt, 3),
                # When this core took this version, on the machine's
                # monotonic clock (for measuring propagation).
                "applied_monotonic": metrics.appliedAt,
                "services": rows,
            }
        raise KeyError(what)
