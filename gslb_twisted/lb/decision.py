"""
What a vserver answers, decided from the metric table: a pure function of
(vserver, topology, metrics, now).

A decision is a L{Plan} per record type: the answer sets a vserver rotates
through until the metrics change (so the DNS hot path only steps a
rotation), or the response to give when no service is up.  It is recomputed
whenever a site's metrics change and on a timer (metrics age).

Service state, as NetScaler's GSLB sees it: a service is UP when its site is
UP (its master holds a live MEP session that delivered metrics, or the site
exchanges no metrics) and the site reports the service UP.  A
metrics-driven method needs every candidate's metrics fresh (younger than
C{dead_interval}); otherwise the vserver answers with its
C{backup_lb_method}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from gslb_twisted.config import Service, Topology, VServer
from gslb_twisted.lb.roundrobin import answerSets, smoothWeightedOrder
from gslb_twisted.metrics import UP, MetricTable
from gslb_twisted.monitors.trigger import effectiveState

# Methods that rank services by one metric, lowest first.
LEAST_METRIC = {
    "LEASTCONNECTION": "connections",
    "LEASTRESPONSETIME": "response_time",
    "LEASTBANDWIDTH": "bandwidth",
    "LEASTPACKETS": "packets",
}

# A Plan's response when no address is to be given.
EMPTY = "empty"
SERVFAIL = "servfail"

FAMILY_OF_RDTYPE = {1: 4, 28: 6}


@dataclass(frozen=True)
class Candidate:
    service: str
    ip: str
    site: str
    weight: int
    metrics: Optional[Mapping[str, object]]


@dataclass(frozen=True)
class Plan:
    """
    @ivar sets: the answers to rotate through, each a tuple of service
        names (empty with C{response} set, or when no service of the family
        is bound at all).
    @ivar method: the method that decided.
    @ivar fallback: C{backup_lb_method} decided, the primary lacking metrics.
    @ivar source: "services", "backup_vserver" (named C{vserver}) or
        "down_response".
    @ivar response: None, or EMPTY / SERVFAIL when no address is given.
    @ivar excluded: (service, reason) of bound services not answered.
    """

    sets: tuple[tuple[str, ...], ...]
    method: str
    fallback: bool = False
    source: str = "services"
    vserver: Optional[str] = None
    response: Optional[str] = None
    excluded: tuple[tuple[str, str], ...] = field(default=())


def serviceState(service: Service, topology: Topology, table: MetricTable) -> tuple[str, str]:
    """
    (state, reason) of one service from the metric table: its site's MEP
    report, or the appliance-side monitor while that is active (NetScaler's
    C{triggerMonitor}; see L{gslb_twisted.monitors.trigger}).
    """
    site = topology.siteByName[service.site]
    metrics = table[service.site]
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


def _fresh(candidate: Candidate, topology: Topology, table: MetricTable, now: float, deadInterval: float) -> bool:
    if not topology.siteByName[candidate.site].metric_exchange or candidate.metrics is None:
        return False
    updatedAt = table[candidate.site].updatedAt
    return updatedAt is not None and now - updatedAt <= deadInterval


def roundRobinSets(candidates: list[Candidate], answers: int) -> tuple[tuple[str, ...], ...]:
    order = smoothWeightedOrder([c.weight for c in candidates])
    return tuple(tuple(candidates[i].service for i in chosen) for chosen in answerSets(order, answers))


def leastMetricSets(candidates: list[Candidate], metric: str, answers: int) -> tuple[tuple[str, ...], ...]:
    """
    The C{answers} services with the lowest C{metric}.  Services tied at the
    lowest value take turns (each rotation of the tied group is one set), so
    a tie is broken fairly, not always to the first bound service.
    """

    def value(c: Candidate) -> float:
        raw = c.metrics.get(metric) if c.metrics else None
        return float(raw) if isinstance(raw, (int, float)) else float("inf")

    ranked = sorted(candidates, key=value)
    best = value(ranked[0])
    tied = [c for c in ranked if value(c) == best]
    rest = ranked[len(tied) :]
    sets = []
    for shift in range(len(tied)):
        order = tied[shift:] + tied[:shift] + rest
        chosen = tuple(c.service for c in order[:answers])
        if chosen not in sets:
            sets.append(chosen)
    return tuple(sets)


def candidatesOf(vserver: VServer, topology: Topology, table: MetricTable, family: int):
    """(up candidates, every candidate, excluded) of one address family."""
    up, everyone, excluded = [], [], []
    for binding in vserver.services:
        service = topology.serviceByName[binding.name]
        if service.family != family:
            continue
        candidate = Candidate(
            service.name, service.ip, service.site, binding.weight,
            table[service.site].services.get(service.name),
        )
        everyone.append(candidate)
        state, reason = serviceState(service, topology, table)
        if state == UP:
            up.append(candidate)
        else:
            excluded.append((service.name, reason))
    return up, everyone, excluded


def planVServer(
    vserver: VServer,
    topology: Topology,
    table: MetricTable,
    rdtype: int,
    now: float,
    deadInterval: float,
    _seen: tuple[str, ...] = (),
) -> Plan:
    """
    What C{vserver} answers for C{rdtype} (1: A, 28: AAAA) now.
    """
    family = FAMILY_OF_RDTYPE[rdtype]
    up, everyone, excluded = candidatesOf(vserver, topology, table, family)
    if not everyone:
        return Plan((), vserver.lb_method)
    if up:
        method, fallback = vserver.lb_method, False
        if method in LEAST_METRIC and not all(_fresh(c, topology, table, now, deadInterval) for c in up):
            method, fallback = vserver.backup_lb_method, True
        if method in LEAST_METRIC:
            sets = leastMetricSets(up, LEAST_METRIC[method], vserver.answers)
        else:
            # The remaining methods (proximity, hashing, custom load) come
            # with the decision engine; meanwhile they answer round robin.
            sets = roundRobinSets(up, vserver.answers)
        return Plan(sets, method, fallback, excluded=tuple(excluded))
    backupName = vserver.backup_vserver
    if backupName is not None and backupName not in _seen:
        backup = planVServer(
            topology.vserverByName[backupName], topology, table, rdtype, now, deadInterval, _seen + (vserver.name,)
        )
        if backup.sets and backup.response is None and backup.source != "down_response":
            return Plan(
                backup.sets, backup.method, backup.fallback, "backup_vserver",
                backup.vserver or backupName, excluded=tuple(excluded),
            )
    if vserver.down_response == "all":
        return Plan(roundRobinSets(everyone, vserver.answers), "ROUNDROBIN", source="down_response", excluded=tuple(excluded))
    response = EMPTY if vserver.down_response == "empty" else SERVFAIL
    return Plan((), vserver.lb_method, source="down_response", response=response, excluded=tuple(excluded))
