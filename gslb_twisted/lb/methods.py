"""
The load-balancing methods as pure functions: candidates (and metrics) in,
an order of preference out.

A method ranks the up services of one address family into I{tie groups}:
services it cannot tell apart (equal connections, the same distance, RTTs
within tolerance) share a group, and answers rotate inside a group so that a
tie is broken fairly.  L{groupSets} turns groups into the answer sets a
vserver rotates through.  Nothing here holds a reactor, a clock or state.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import operator
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from gslb_twisted.lb.locations import greatCircleKm
from gslb_twisted.lb.roundrobin import answerSets, smoothWeightedOrder

# Methods that rank services by one metric, lowest first (NetScaler names).
LEAST_METRIC = {
    "LEASTCONNECTION": "connections",
    "LEASTRESPONSETIME": "response_time",
    "LEASTBANDWIDTH": "bandwidth",
    "LEASTPACKETS": "packets",
}
# Methods that need every candidate's metrics fresh; without them the
# vserver answers with its backup method.
METRIC_METHODS = frozenset(LEAST_METRIC) | {"CUSTOMLOAD", "RTT"}
# Methods that depend on the client: no answer set can be prebuilt alone.
CLIENT_METHODS = frozenset({"SOURCEIPHASH", "STATICPROXIMITY", "RTT"})
STATIC_METHODS = frozenset({"STATIC", "NONE"})


class Candidate(NamedTuple):
    """
    One bound service as a method sees it.

    (A named tuple rather than a frozen dataclass: a plan makes one per
    bound service, and a tuple is made four times faster.)

    @ivar metrics: what its site last reported for it (C{None}: nothing).
    @ivar location: C{(lat, lon)} of its site, C{None} if unknown.
    """

    service: str
    ip: str
    site: str
    weight: int
    metrics: Optional[Mapping[str, object]]
    maxClients: int = 0
    location: Optional[tuple[float, float]] = None
    # The metrics its site's source reports (None: any), and the ceilings
    # that source gives them (CUSTOMLOAD's, when the vserver names none).
    provides: Optional[frozenset] = None
    ceilings: Optional[Mapping[str, float]] = None

    def reports(self, metric: str) -> bool:
        return self.provides is None or metric in self.provides


Groups = list[list[Candidate]]

# The most answer sets one ranking rotates through (see groupSets).
MAX_TURNS = 720


def metricValue(candidate: Candidate, metric: str) -> Optional[float]:
    """A reported metric as a float, C{None} when missing or not a number."""
    metrics = candidate.metrics
    raw = metrics.get(metric) if metrics else None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    return float(raw)


_first = operator.itemgetter(0)


def rankGroups(candidates: Sequence[Candidate], value: Callable[[Candidate], float]) -> Groups:
    """
    C{candidates} grouped by equal C{value}, lowest first; binding order
    inside a group (a stable sort).
    """
    # Each value computed once (a stable sort on it alone keeps binding order).
    ranked = sorted(((value(candidate), candidate) for candidate in candidates), key=_first)
    groups: Groups = []
    last = None
    for v, candidate in ranked:
        if groups and v == last:
            groups[-1].append(candidate)
        else:
            groups.append([candidate])
            last = v
    return groups


def groupSets(groups: Groups, answers: int) -> tuple[tuple[str, ...], ...]:
    """
    The answer sets of a ranking: C{answers} services taken in group order,
    each group rotated by the same shift, one set per shift.  Every tie group
    that reaches into the answer takes turns, not just the first.
    """
    reach = []
    taken = 0
    for group in groups:
        if taken >= answers:
            break
        reach.append(len(group))
        taken += len(group)
    # Every group completes whole turns: a group of 2 next to one of 3 takes
    # 6 sets, so each of its members leads equally often.  Past MAX_TURNS
    # sets the largest group alone sets the cycle.
    turns = 1
    for length in reach:
        turns = turns * length // math.gcd(turns, length)
    if turns > MAX_TURNS:
        turns = max(reach)
    sets: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for shift in range(turns):
        chosen: list[str] = []
        for group in groups:
            if len(chosen) == answers:
                break
            k = shift % len(group)
            for candidate in group[k:] + group[:k]:
                chosen.append(candidate.service)
                if len(chosen) == answers:
                    break
        key = tuple(chosen)
        if key not in seen:
            seen.add(key)
            sets.append(key)
    return tuple(sets)


def roundRobinSets(candidates: Sequence[Candidate], answers: int) -> tuple[tuple[str, ...], ...]:
    """Weighted round robin (service weights) as answer sets, one per turn."""
    order = smoothWeightedOrder([c.weight for c in candidates])
    return tuple(tuple(candidates[i].service for i in chosen) for chosen in answerSets(order, answers))


def staticSets(candidates: Sequence[Candidate], answers: int) -> tuple[tuple[str, ...], ...]:
    """STATIC / NONE: always the first up services in binding order (tests)."""
    return (tuple(c.service for c in candidates[:answers]),)


def leastMetricGroups(
    candidates: Sequence[Candidate], metric: str, values: Optional[Mapping[str, Optional[float]]] = None
) -> Groups:
    """
    LEAST* methods: lowest metric first.  With weights, as NetScaler does,
    the metric counts in proportion to 1/weight (a service of weight 2
    takes twice the connections before it ranks with one of weight 1).

    @param values: each candidate's L{metricValue}, by service, when the
        caller has them already.
    """

    def value(candidate: Candidate) -> float:
        raw = metricValue(candidate, metric) if values is None else values[candidate.service]
        return math.inf if raw is None else raw / candidate.weight

    return rankGroups(candidates, value)


def missingMetric(
    candidates: Iterable[Candidate], metrics: Iterable[str], reportedOnly: bool = False
) -> Optional[tuple[str, str]]:
    """
    The first C{(service, metric)} a candidate lacks, or C{None}; with
    C{reportedOnly}, only among the metrics its source reports at all.
    """
    needed = tuple(metrics)
    for candidate in candidates:
        for metric in needed:
            if reportedOnly and not candidate.reports(metric):
                continue
            if metricValue(candidate, metric) is None:
                return candidate.service, metric
    return None


def customLoad(candidate: Candidate, customMetrics: Sequence) -> Optional[float]:
    """
    CUSTOMLOAD's load of one service: S(weight_i * value_i / ceiling_i) /
    S(weight_i) over the configured metrics (each a L{CustomLoadMetric})
    that its site's source reports -- an SNMP host has no response time, a
    MEP site no memory -- so that MEP and SNMP sites share one decision;
    the ceiling is the vserver's, else the source's.  C{None} if a reported
    metric is missing, or none applies.
    """
    total = 0.0
    weights = 0.0
    for spec in customMetrics:
        if not candidate.reports(spec.metric):
            continue
        value = metricValue(candidate, spec.metric)
        ceiling = spec.ceiling if spec.ceiling is not None else (candidate.ceilings or {}).get(spec.metric)
        if value is None or not ceiling:
            return None
        total += spec.weight * value / ceiling
        weights += spec.weight
    return total / weights if weights else None


def overThresholds(candidate: Candidate, customMetrics: Sequence, mode: str) -> list[str]:
    """
    Why CUSTOMLOAD excludes a service: the metrics over their threshold,
    when any (C{mode} "any") or all (C{mode} "all") of the metrics with a
    threshold are over it; else an empty list.
    """
    limited = [spec for spec in customMetrics if spec.threshold is not None and candidate.reports(spec.metric)]
    over = []
    for spec in limited:
        value = metricValue(candidate, spec.metric)
        if value is not None and value > spec.threshold:
            over.append(f"{spec.metric} {value:g} > {spec.threshold:g}")
    if not over or (mode == "all" and len(over) < len(limited)):
        return []
    return over


def customLoadGroups(candidates: Sequence[Candidate], customMetrics: Sequence) -> Groups:
    """CUSTOMLOAD: lowest load first (loads rounded to 1e-9 so equal loads tie)."""

    def value(candidate: Candidate) -> float:
        load = customLoad(candidate, customMetrics)
        return math.inf if load is None else round(load, 9)

    return rankGroups(candidates, value)


def distanceKm(candidate: Candidate, client: tuple[float, float]) -> float:
    """How far a candidate's site is from a client location (inf: unknown)."""
    if candidate.location is None:
        return math.inf
    return greatCircleKm(client[0], client[1], candidate.location[0], candidate.location[1])


def proximityGroups(candidates: Sequence[Candidate], client: tuple[float, float]) -> Groups:
    """
    STATICPROXIMITY: nearest site first; services within 1 km of the same
    distance (the same site, or sites in one city) tie.
    """
    def value(candidate: Candidate) -> float:
        distance = distanceKm(candidate, client)
        return distance if distance == math.inf else round(distance)

    return rankGroups(candidates, value)


def rttGroups(candidates: Sequence[Candidate], rttOf: Callable[[Candidate], Optional[float]], tolerance: float) -> Groups:
    """
    RTT: the lowest round-trip time first; every service within C{tolerance}
    ms of the best ties with it (NetScaler's site selection tolerance); the
    rest follow by RTT, services without a measurement last.
    """
    measured = [(rttOf(c), c) for c in candidates]
    known = [value for value, _ in measured if value is not None]
    if not known:
        return [list(candidates)]
    best = min(known)

    def value(candidate: Candidate) -> float:
        rtt = rttOf(candidate)
        if rtt is None:
            return math.inf
        return best if rtt - best <= tolerance else rtt

    return rankGroups(candidates, value)


class HashRing:
    """
    Consistent hashing for SOURCEIPHASH: every bound service owns
    C{points} positions on a 64-bit ring (from a hash of its name); a client
    hash picks the first up service clockwise.  When a service goes down
    only its own clients move, and every core builds the same ring.
    """

    def __init__(self, services: Sequence[str], points: int = 64) -> None:
        positions = []
        for name in services:
            for i in range(points):
                digest = hashlib.blake2b(f"{name}#{i}".encode(), digest_size=8).digest()
                positions.append((int.from_bytes(digest, "big"), name))
        positions.sort()
        self._keys = [position for position, _ in positions]
        self._owners = [owner for _, owner in positions]
        self.services = tuple(services)
        self._pointsOf: dict[str, list[int]] = {}
        for position, owner in positions:
            self._pointsOf.setdefault(owner, []).append(position)

    def walk(self, value: int, up: Mapping[str, object], count: int) -> tuple[str, ...]:
        """Up to C{count} distinct services of C{up}, clockwise from C{value}."""
        owners = self._owners
        size = len(owners)
        if not size:
            return ()
        if len(up) * 8 < len(self._pointsOf):
            return self._nearest(value, up, count)
        start = bisect.bisect_left(self._keys, value)
        chosen: list[str] = []
        # Stop as soon as nothing more can be found, not after the whole ring.
        wanted = min(count, len(up))
        for step in range(size):
            if len(chosen) >= wanted:
                break
            owner = owners[(start + step) % size]
            if owner in up and owner not in chosen:
                chosen.append(owner)
        return tuple(chosen)

    def _nearest(self, value: int, up: Mapping[str, object], count: int) -> tuple[str, ...]:
        """
        L{walk} when few services are up: each up service's first point
        clockwise from C{value}, nearest first (the order a walk meets them).
        """
        distances = []
        for name in up:
            points = self._pointsOf.get(name)
            if not points:
                continue
            i = bisect.bisect_left(points, value)
            point = points[i] if i < len(points) else points[0] + (1 << 64)
            distances.append((point - value, name))
        distances.sort()
        return tuple(name for _, name in distances[:count])
