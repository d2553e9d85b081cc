"""
What a vserver answers, decided from the metric table: a pure function of
(vserver, topology, metrics, runtime state, now) -> L{Plan}.

A plan is computed per vserver and record type whenever the metrics it
depends on change (and on a timer, as metrics age).  It says which services
are up and how they rank; for the methods that do not depend on the client
it holds the answer sets to rotate through, so the DNS hot path only steps a
rotation.  For client-dependent methods (SOURCEIPHASH, STATICPROXIMITY,
RTT) and persistence, L{gslb_twisted.lb.choosers} picks per query from the
plan.

Service state, as NetScaler's GSLB sees it: a service is UP when its site is
UP (its master holds a live MEP session that delivered metrics, or the site
exchanges no metrics) and the site reports the service UP (or the
appliance-side monitor says UP while it is in charge), and it is not
disabled.  A metrics-driven method needs every candidate's metrics fresh
(younger than C{dead_interval}); otherwise the vserver answers with its
C{backup_lb_method} (and if that needs metrics too, with ROUNDROBIN).

Order of decisions (NetScaler's):

 1. spillover: over the threshold, answers come from the backup vserver
    chain; with no usable backup, C{spillover.backup_action} ACCEPT keeps
    answering from the primary, DROP gives the down response;
 2. no service of the family up: the backup vserver chain, then the
    C{down_response};
 3. otherwise the method (or its backup) ranks the up services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from gslb_twisted.config import Service, Topology, VServer
from gslb_twisted.lb.methods import (
    CLIENT_METHODS,
    LEAST_METRIC,
    METRIC_METHODS,
    STATIC_METHODS,
    Candidate,
    customLoad,
    customLoadGroups,
    groupSets,
    leastMetricGroups,
    metricValue,
    missingMetric,
    overThresholds,
    roundRobinSets,
    staticSets,
)
from gslb_twisted.metrics import UP, MetricTable
from gslb_twisted.monitors.trigger import effectiveState

# A Plan's response when no address is to be given.
EMPTY = "empty"
SERVFAIL = "servfail"

FAMILY_OF_RDTYPE = {1: 4, 28: 6}

# Sources of an answer.
SERVICES = "services"
BACKUP_VSERVER = "backup_vserver"
DOWN_RESPONSE = "down_response"

NO_METRICS = "NONE"


@dataclass(frozen=True)
class Spill:
    """A vserver's spillover reading: C{value} against C{threshold}."""

    method: str
    threshold: float
    value: float
    spilled: bool

    def asDict(self) -> dict:
        return {"method": self.method, "threshold": self.threshold, "value": self.value, "spilled": self.spilled}


@dataclass(frozen=True)
class Plan:
    """
    @ivar vserver: the vserver asked.
    @ivar answering: the vserver whose services answer (a backup vserver's
        name when C{source} is BACKUP_VSERVER).
    @ivar method: the method that decides; C{fallback}: it is the backup
        method, the primary lacking what it needs (C{fallbackReason}).
    @ivar candidates: the up services of the family, in binding order.
    @ivar everyone: every bound service of the family.
    @ivar sets: the answer sets to rotate through, for a method that does not
        depend on the client; the backup method's sets for one that does
        (its per-query fallback); empty with C{response} set.
    @ivar response: None, or EMPTY / SERVFAIL when no address is given.
    @ivar excluded: (service, reason) of bound services not answered.
    @ivar loads: per candidate, what the method ranked it by (explain):
        service -> value of metric C{loadMetric} (one flat map: a plan per
        vserver and family is kept for every vserver).
    @ivar spill: the asked vserver's spillover reading, if it has one.
    @ivar persistence: the asked vserver's persistence type.
    """

    vserver: str
    rdtype: int
    method: str
    sets: tuple[tuple[str, ...], ...]
    answers: int = 1
    fallback: bool = False
    fallbackReason: Optional[str] = None
    source: str = SERVICES
    answering: Optional[str] = None
    response: Optional[str] = None
    candidates: tuple[Candidate, ...] = ()
    everyone: tuple[Candidate, ...] = ()
    excluded: tuple[tuple[str, str], ...] = field(default=())
    loads: Mapping[str, object] = field(default_factory=dict)
    loadMetric: Optional[str] = None
    backupMethod: str = "ROUNDROBIN"
    spill: Optional[Spill] = None
    persistence: str = "NONE"
    # The answering vserver's bound services of the family (the hash ring).
    pool: tuple[str, ...] = ()
    config: Optional[VServer] = None  # the answering vserver's
    askedConfig: Optional[VServer] = None  # the asked vserver's (persistence)

    @property
    def clientMethod(self) -> bool:
        return (
            self.response is None and self.source != DOWN_RESPONSE and bool(self.candidates)
            and self.method in CLIENT_METHODS
        )


def serviceState(
    service: Service, topology: Topology, table: MetricTable, disabled: frozenset = frozenset()
) -> tuple[str, str]:
    """
    (state, reason) of one service from the metric table: its site's MEP
    report, or the appliance-side monitor while that is active (NetScaler's
    C{triggerMonitor}; see L{gslb_twisted.monitors.trigger}).  A service
    disabled at run time is OUT OF SERVICE.
    """
    if service.name in disabled:
        return "OUT OF SERVICE", "disabled"
    return _serviceState(service, topology.siteByName[service.site], table[service.site])


def _serviceState(service: Service, site, metrics) -> tuple[str, str]:
    """L{serviceState} of a service not disabled, its site and metrics at hand."""
    reported = metrics.services.get(service.name) or {}
    monitorState = reported.get("monitor")
    mepUp = site.metric_exchange and metrics.state == UP
    state = effectiveState(mepUp, reported.get("state"), monitorState is not None, monitorState, site.metric_exchange)
    if state == UP:
        return UP, "monitor UP" if monitorState is not None else ("static site" if not site.metric_exchange else "up")
    if monitorState is not None:
        return "DOWN", "monitor DOWN"
    if not mepUp:
        return "DOWN", f"site {service.site} is {metrics.state or 'not connected'}"
    if service.name not in metrics.services:
        return "DOWN", "not reported by its site"
    return "DOWN", "reported DOWN by its site"


def siteLocation(topology: Topology, site: str, locations=None) -> Optional[tuple[float, float]]:
    """
    Where a site is: its configured location, else its address looked up in
    the location database (as NetScaler locates a site), else unknown.
    """
    config = topology.siteByName[site]
    if config.location is not None:
        return (config.location.lat, config.location.lon)
    if locations is not None:
        found = locations.lookup(config.ip)
        if found is not None:
            return (found.lat, found.lon)
    return None


def _siteStatic(topology: Topology, site: str, locations) -> tuple:
    """
    What a site's candidates share that never changes: its location and its
    metric source's metrics and ceilings (cached on the topology: every plan
    asks, for every bound service).
    """
    cache = topology._sourceMetrics
    key = (site, locations)
    found = cache.get(key)
    if found is None:
        found = cache[key] = (siteLocation(topology, site, locations),) + topology.metricsOf(topology.siteByName[site])
    return found


def candidatesOf(
    vserver: VServer,
    topology: Topology,
    table: MetricTable,
    family: Optional[int],
    disabled: frozenset = frozenset(),
    locations=None,
):
    """
    (up candidates, every candidate, excluded) of one address family (all
    families with C{family} None), in binding order.
    """
    up, everyone, excluded = [], [], []
    # A vserver's services mostly share a few sites: look each up once.
    sites: dict = {}
    serviceByName = topology.serviceByName
    for binding in vserver.services:
        service = serviceByName[binding.name]
        if family is not None and service.family != family:
            continue
        known = sites.get(service.site)
        if known is None:
            known = sites[service.site] = (
                topology.siteByName[service.site], table[service.site],
                _siteStatic(topology, service.site, locations),
            )
        site, metrics, (location, provides, ceilings) = known
        candidate = Candidate(
            service.name,
            service.ip,
            service.site,
            binding.weight,
            metrics.services.get(service.name),
            service.max_clients,
            location,
            provides,
            ceilings,
        )
        everyone.append(candidate)
        if service.name in disabled:
            excluded.append((service.name, "disabled"))
            continue
        state, reason = _serviceState(service, site, metrics)
        if state == UP:
            up.append(candidate)
        else:
            excluded.append((service.name, reason))
    return up, everyone, excluded


# What every plan reads of a service, whatever its method: its state (and
# an appliance-side monitor's verdict).
ALWAYS_READ = frozenset({"state", "monitor"})
# The RTT method reads the sites' probes of client networks.
PROBES = "probes"


def metricsRead(name: str, vservers: Mapping[str, VServer]) -> frozenset:
    """
    Every metric the plan of vserver C{name} reads (its methods, backup
    method, spillover and custom load, through its backup-vserver chain): a
    change to any other metric (or a metric's age, which the ager watches)
    cannot change its plan, so the core need not re-plan it.
    """
    reads = set(ALWAYS_READ)
    seen = set()
    current = vservers.get(name)
    while current is not None and current.name not in seen:
        seen.add(current.name)
        for method in (current.lb_method, current.backup_lb_method):
            if method in LEAST_METRIC:
                reads.add(LEAST_METRIC[method])
            elif method == "CUSTOMLOAD":
                reads.update(spec.metric for spec in current.custom_load)
            elif method == "RTT":
                reads.add(PROBES)
        spill = current.spillover
        if spill is not None:
            if spill.method in ("CONNECTION", "DYNAMICCONNECTION"):
                reads.add("connections")
            elif spill.method == "BANDWIDTH":
                reads.add("bandwidth")
        current = vservers.get(current.backup_vserver) if current.backup_vserver else None
    reads = frozenset(reads)
    # A thousand vservers read a few distinct sets: keep one object of each.
    return _SHARED_READS.setdefault(reads, reads)


_SHARED_READS: dict[frozenset, frozenset] = {}


def _fresh(candidate: Candidate, topology: Topology, table: MetricTable, now: float, deadInterval: float) -> bool:
    if not topology.siteByName[candidate.site].metric_exchange or candidate.metrics is None:
        return False
    updatedAt = table[candidate.site].updatedAt
    return updatedAt is not None and now - updatedAt <= deadInterval


def metricsLacking(method: str, vserver: VServer, up, topology: Topology, table: MetricTable, now: float, deadInterval: float) -> Optional[str]:
    """Why C{method} cannot decide from these candidates' metrics, or None."""
    if method not in METRIC_METHODS:
        return None
    for candidate in up:
        if not topology.siteByName[candidate.site].metric_exchange:
            return f"{candidate.service}: its site exchanges no metrics"
        if not _fresh(candidate, topology, table, now, deadInterval):
            return f"{candidate.service}: metrics missing or older than dead_interval"
    needed: tuple[str, ...] = ()
    if method in LEAST_METRIC:
        needed = (LEAST_METRIC[method],)
    elif method == "CUSTOMLOAD":
        missing = missingMetric(up, (spec.metric for spec in vserver.custom_load), reportedOnly=True)
        if missing is not None:
            return f"{missing[0]}: no {missing[1]} reported"
        for candidate in up:
            if customLoad(candidate, vserver.custom_load) is None:
                return f"{candidate.service}: its site reports none of the custom_load metrics"
        return None
    missing = missingMetric(up, needed)
    if missing is not None:
        return f"{missing[0]}: no {missing[1]} reported"
    return None


def spillover(vserver: VServer, topology: Topology, table: MetricTable, disabled: frozenset = frozenset()) -> Optional[Spill]:
    """
    The vserver's spillover reading over its up services of every family
    (NetScaler): CONNECTION, the sum of their connections, over C{threshold};
    DYNAMICCONNECTION, the same over the sum of their C{max_clients};
    BANDWIDTH, the sum of their bandwidth (kbit/s) over C{threshold};
    HEALTH, the percentage of bound services up, under C{threshold}.
    """
    config = vserver.spillover
    if config is None or config.method == "NONE":
        return None
    up, everyone, _ = candidatesOf(vserver, topology, table, None, disabled)

    def total(metric: str) -> float:
        return sum(metricValue(c, metric) or 0.0 for c in up)

    if config.method == "CONNECTION":
        value, threshold = total("connections"), float(config.threshold)
        spilled = value > threshold
    elif config.method == "DYNAMICCONNECTION":
        # max_clients 0 is "no limit" (NetScaler's maxClient 0): no threshold.
        value, threshold = total("connections"), float(sum(c.maxClients for c in up))
        spilled = bool(up) and all(c.maxClients for c in up) and value > threshold
    elif config.method == "BANDWIDTH":
        value, threshold = total("bandwidth"), float(config.threshold)
        spilled = value > threshold
    else:  # HEALTH
        value = round(100.0 * len(up) / len(everyone), 3) if everyone else 0.0
        threshold = float(config.threshold)
        spilled = value < threshold
    return Spill(config.method, threshold, value, spilled)


def rankedSets(
    method: str, vserver: VServer, up: list[Candidate]
) -> tuple[tuple[tuple[str, ...], ...], Optional[str], dict]:
    """
    The answer sets of a method that does not depend on the client, and
    what it ranked each candidate by: the metric, and service -> value.
    """
    answers = vserver.answers
    if method in LEAST_METRIC:
        metric = LEAST_METRIC[method]
        loads = {c.service: metricValue(c, metric) for c in up}
        return groupSets(leastMetricGroups(up, metric, loads), answers), metric, loads
    if method == "CUSTOMLOAD":
        loads = {c.service: customLoad(c, vserver.custom_load) for c in up}
        return groupSets(customLoadGroups(up, vserver.custom_load), answers), "load", loads
    if method in STATIC_METHODS:
        return staticSets(up, answers), None, {}
    return roundRobinSets(up, answers), None, {}


def _nonClient(method: str) -> str:
    return "ROUNDROBIN" if method in CLIENT_METHODS or method in METRIC_METHODS else method


def planVServer(
    vserver: VServer,
    topology: Topology,
    table: MetricTable,
    rdtype: int,
    now: float,
    deadInterval: float,
    disabled: frozenset = frozenset(),
    vservers: Optional[Mapping[str, VServer]] = None,
    locations=None,
    _seen: tuple[str, ...] = (),
) -> Plan:
    """
    What C{vserver} answers for C{rdtype} (1: A, 28: AAAA) now.

    @param disabled: services disabled at run time.
    @param vservers: the vservers as changed at run time (by name), for
        backup vservers; the topology's by default.
    @param locations: the location database (STATICPROXIMITY, and sites
        without a configured location).
    """
    vservers = topology.vserverByName if vservers is None else vservers
    family = FAMILY_OF_RDTYPE[rdtype]
    up, everyone, excluded = candidatesOf(vserver, topology, table, family, disabled, locations)
    spill = spillover(vserver, topology, table, disabled)
    common = dict(
        vserver=vserver.name, rdtype=rdtype, answers=vserver.answers, answering=vserver.name,
        everyone=tuple(everyone), spill=spill, persistence=vserver.persistence, config=vserver,
        askedConfig=vserver, pool=tuple(c.service for c in everyone),
    )
    if not everyone:
        return Plan(method=vserver.lb_method, sets=(), **common)

    def fromBackup(why: str) -> Optional[Plan]:
        name = vserver.backup_vserver
        if name is None or name in _seen:
            return None
        backup = planVServer(
            vservers[name], topology, table, rdtype, now, deadInterval, disabled, vservers, locations,
            _seen + (vserver.name,),
        )
        if backup.response is not None or backup.source == DOWN_RESPONSE or not backup.candidates:
            return None
        return Plan(
            vserver=vserver.name, rdtype=rdtype, method=backup.method, sets=backup.sets, answers=backup.answers,
            fallback=backup.fallback, fallbackReason=backup.fallbackReason, source=BACKUP_VSERVER,
            answering=backup.answering, candidates=backup.candidates, everyone=tuple(everyone),
            excluded=tuple(excluded) + tuple((c.service, why) for c in up), loads=backup.loads,
            loadMetric=backup.loadMetric,
            backupMethod=backup.backupMethod, spill=spill, persistence=vserver.persistence, config=backup.config,
            askedConfig=vserver, pool=backup.pool,
        )

    # Up services that are not answered (spilled with DROP, over a CUSTOMLOAD
    # threshold): a down response "all" gives these, never a DOWN service.
    overloaded: list[Candidate] = []
    if up and spill is not None and spill.spilled:
        why = f"spilled over: {spill.method} {spill.value:g} " + ("<" if spill.method == "HEALTH" else ">") + f" {spill.threshold:g}"
        backup = fromBackup(why)
        if backup is not None:
            return backup
        if vserver.spillover.backup_action == "DROP":
            excluded = excluded + [(c.service, why) for c in up]
            overloaded.extend(up)
            up = []
    if up:
        method, fallback, reason = vserver.lb_method, False, None
        lacking = metricsLacking(method, vserver, up, topology, table, now, deadInterval)
        if lacking is not None:
            method, fallback, reason = vserver.backup_lb_method, True, lacking
            if metricsLacking(method, vserver, up, topology, table, now, deadInterval) is not None:
                method = "ROUNDROBIN"
        if method == "CUSTOMLOAD":
            kept = []
            for c in up:
                over = overThresholds(c, vserver.custom_load, vserver.custom_load_exclude)
                if over:
                    excluded.append((c.service, "over threshold: " + ", ".join(over)))
                    overloaded.append(c)
                else:
                    kept.append(c)
            up = kept
        if up:
            backupMethod = method
            if method in CLIENT_METHODS:
                # Per query, a client the method cannot place gets the
                # backup method: another client method (RTT backed by
                # STATICPROXIMITY, as often on NetScaler), else these sets.
                backupMethod = vserver.backup_lb_method
                if backupMethod == method or backupMethod not in ("SOURCEIPHASH", "STATICPROXIMITY"):
                    backupMethod = _nonClient(backupMethod)
                sets, loadMetric, loads = rankedSets(_nonClient(backupMethod), vserver, up)
                if method == "RTT":
                    loadMetric = "site_rtt_ms"
                    loads = {c.service: _siteRTT(table, c.site) for c in up}
            else:
                sets, loadMetric, loads = rankedSets(method, vserver, up)
            return Plan(
                method=method, sets=sets, fallback=fallback, fallbackReason=reason, candidates=tuple(up),
                excluded=tuple(excluded), loads=loads, loadMetric=loadMetric, backupMethod=backupMethod, **common,
            )
    backup = fromBackup("excluded")
    if backup is not None:
        return backup
    if not overloaded and any(
        serviceState(topology.serviceByName[b.name], topology, table, disabled)[0] == UP
        for b in vserver.services
        if topology.serviceByName[b.name].family != family
    ):
        # The vserver is UP through its other family: no address of this
        # one (all DOWN) may be given, and its down response is not due.
        return Plan(method=vserver.lb_method, sets=(), excluded=tuple(excluded), **common)
    if vserver.down_response == "all":
        # Every address, unless some services are up but excluded (over a
        # CUSTOMLOAD threshold): never a DOWN one while one is up.
        pool = overloaded or everyone
        return Plan(
            method="ROUNDROBIN", sets=roundRobinSets(pool, vserver.answers), source=DOWN_RESPONSE,
            excluded=tuple(excluded), **common,
        )
    response = EMPTY if vserver.down_response == "empty" else SERVFAIL
    return Plan(method=vserver.lb_method, sets=(), source=DOWN_RESPONSE, response=response, excluded=tuple(excluded), **common)


def _siteRTT(table: MetricTable, site: str) -> Optional[float]:
    rtt = table[site].rtt
    return None if rtt is None else round(rtt * 1000, 3)
