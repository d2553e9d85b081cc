"""
Soak: a long run at a fixed share of the appliance's measured capacity,
with scripted site churn, watching for slow growth (memory, file
descriptors) and for wrong answers::

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--cores 2] [--sites 8]

  setup     a real appliance (C{twistd -n gslb --cores N}, L{GslbServer})
            with a generated topology: C{--sites} MEP sites played in this
            process (real L{MEPSession}s, both directions of the lower-IP
            rule, as in L{benchmarks.failover}), each site's metrics moved
            by a seeded random walk (L{benchmarks.scale.Walker}, one DELTA
            per site per second), and vservers with different methods
            (ROUNDROBIN, LEASTCONNECTION + SOURCEIP persistence,
            LEASTRESPONSETIME, CUSTOMLOAD, SOURCEIPHASH, STATICPROXIMITY,
            LEASTBANDWIDTH, one LEASTCONNECTION vserver per site).
  capacity  dnsperf saturating the appliance (C{--capacity-seconds}) with
            the soak's own query mix; the soak rate is C{--load} (0.7) of
            the QPS measured (C{-Q}).
  soak      C{--minutes} dnsperf runs of 60 s each at that rate, back to
            back (one per minute: its statistics are the minute's
            sent/answered/lost), each minute with a different slice of
            EDNS Client Subnet clients, so persistence entries expire and
            are re-created all along; meanwhile
              - the churn script (L{planChurn}, from C{--seed}): a site goes
                DOWN then UP, a service goes DOWN then UP over MEP, a
                service is disabled then enabled on the appliance, a site's
                metrics ramp up and down, a MEP session is dropped (FIN or
                RST) and re-established;
              - a prober (its own client, C{--probe-rate} queries/s, every
                vserver name, with and without ECS) whose every answer is
                checked against what the script had made unavailable
                (L{classify});
              - after each transition, every core polled (C{show metrics},
                C{resolve --core N}) until it shows it (L{watchCores});
              - every 0.2 s, a C{resolve --core N} to each core: calls over
                0.5 s are stalls, kept with the core's CPU (L{CoreProbe});
              - every C{--sample-interval} s, VmRSS and the open fds of the
                supervisor and each core, with the MEP sessions each holds;
                every minute, C{show cores} (restarts, pids) and the CPU of
                each process.
  verdict   per process, the least-squares slope of RSS (the minute's
            median) and of fds (the minute's minimum) over the last 2/3 of
            the run (L{trendVerdict}); no wrong answer; no core restart.

It prints a per-minute table and the verdicts and writes everything to
C{benchmarks/results/soak-<timestamp>.json} (logs in
C{soak-<timestamp>.logs/}).  See C{benchmarks/SOAK.md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from twisted.internet import defer, task, threads
from twisted.logger import globalLogBeginner, textFileLogObserver

from benchmarks import dnsperf, procstat
from benchmarks.decision_cost import sourceRevision
from benchmarks.dns_qps import machine, renderTable, waitForCpu
from benchmarks.dns_qps_methods import LOCATIONS, ecsSubnets
from benchmarks.failover import Answer, SitePlan, makeFailoverSites, planSites
from benchmarks.propagation import (
    Appliance,
    BenchError,
    freePort,
    reactorMain,
    runCase,
    say,
    sleep,
    waitForSites,
    writeResults,
)
from benchmarks.propagation_sites import (
    APPLIANCE_IP,
    ZONE,
    applianceHeader,
    serviceAddress,
    serviceName,
)
from benchmarks.scale import Walker, readMemory
from benchmarks.servers import REPO, GslbServer
from gslb_twisted.protocol.commands import DisableService, EnableService, Resolve, ShowCores, ShowMEP, ShowMetrics

RESULTS = os.path.join(REPO, "benchmarks", "results")
METRICS_INTERVAL = 1.0  # the emulated sites' keepalives (propagation.runCase) assume 1.0 s
DEAD_INTERVAL = 3.0

# How long after a transition the appliance may still name what went
# unavailable: the documented detection time of each kind.
#   site-down     the master declares its site DOWN when its MEP session
#                 fails or stays silent past dead_interval (ARCHITECTURE.md,
#                 "Site state"): dead_interval bounds it.
#   service-down  a site reports a state change with its next metric push,
#                 one metrics_interval at most ([appliance] metrics_interval);
#                 the emulated sites push at once, so this is generous.
#   disabled      `disable gslb service` is answered once every live core
#                 applied it (SPEC 5, protocol.commands.DisableService): the
#                 interval starts at the answer, with no grace.
GRACE = {"site-down": DEAD_INTERVAL, "service-down": METRICS_INTERVAL, "disabled": 0.0}
# A core showing a transition later than this (polled) is listed in the report.
SLOW_VIEW = 0.25
QUEUE_INTERVAL = 0.2  # seconds between two reads of the DNS socket's queue

# The churn script: kinds, their weights, and how long each lasts (s).
KINDS = ("site-down", "service-down", "disable", "ramp", "session-drop")
KIND_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)
DURATIONS = {"site-down": (15.0, 40.0), "service-down": (10.0, 30.0), "disable": (10.0, 30.0),
             "ramp": (20.0, 40.0), "session-drop": (0.0, 0.0)}
# A site is left alone this long after an event on it (a dropped session
# or a site back UP reconnects meanwhile).
SETTLE = 10.0

# Verdict rules (SOAK.md): growth extrapolated to 30 minutes from the slope
# over the last 2/3 of the run must stay below these.
PER_MINUTES = 30.0
WARMUP_FRACTION = 1.0 / 3.0
MIN_TREND_POINTS = 5
RSS_THRESHOLD_KIB = 2048  # 2 MiB per 30 min
FD_THRESHOLD = 1.0  # 1 fd per 30 min

# Sites' locations for STATICPROXIMITY (lat, lon), dealt round the sites.
CITIES = (
    (40.71, -74.01),  # New York
    (37.77, -122.42),  # San Francisco
    (50.11, 8.68),  # Frankfurt
    (35.68, 139.69),  # Tokyo
    (-23.55, -46.63),  # Sao Paulo
    (1.35, 103.82),  # Singapore
    (51.51, -0.13),  # London
    (-33.87, 151.21),  # Sydney
)


# ---------------------------------------------------------------------------
# Pure: the topology and the names.


@dataclass(frozen=True)
class VServerSpec:
    name: str
    domains: Tuple[str, ...]
    method: str
    answers: int
    services: Tuple[str, ...]
    extra: Tuple[str, ...] = ()


def siteServices(plans: Sequence[SitePlan], services: int) -> Dict[str, List[str]]:
    """Site name -> its service names, in order."""
    return {p.name: [serviceName(p.name, v) for v in range(services)] for p in plans}


def vserverSpecs(plans: Sequence[SitePlan], services: int) -> List[VServerSpec]:
    """
    The vservers of the soak topology: one per method over all (or a
    subset of) the services, two domains each, and one LEASTCONNECTION
    vserver per site (empty answer while its site is DOWN).
    """
    bySite = siteServices(plans, services)
    every = tuple(s for p in plans for s in bySite[p.name])
    even = tuple(s for p in plans for i, s in enumerate(bySite[p.name]) if i % 2 == 0)
    odd = tuple(s for p in plans for i, s in enumerate(bySite[p.name]) if i % 2 == 1) or even

    def names(label: str) -> Tuple[str, ...]:
        return (f"{label}.{ZONE}", f"{label}-alt.{ZONE}")

    specs = [
        VServerSpec("rr", names("rr"), "ROUNDROBIN", 2, every),
        VServerSpec("lc-persist", names("lc"), "LEASTCONNECTION", 1, every,
                    ('persistence = "SOURCEIP"', "persistence_timeout = 120")),
        VServerSpec("lrt", names("lrt"), "LEASTRESPONSETIME", 1, even),
        VServerSpec("custom", names("custom"), "CUSTOMLOAD", 1, odd, (
            "custom_load = [",
            '  { metric = "connections", weight = 1, ceiling = 1000, threshold = 900 },',
            '  { metric = "response_time", weight = 2, ceiling = 500 },',
            '  { metric = "load", weight = 1, ceiling = 100 },',
            "]",
        )),
        VServerSpec("hash", names("hash"), "SOURCEIPHASH", 1, every, ('netmask = "255.255.255.0"',)),
        VServerSpec("prox", names("prox"), "STATICPROXIMITY", 1, every),
        VServerSpec("lbw", names("lbw"), "LEASTBANDWIDTH", 1, even),
    ]
    specs += [VServerSpec(f"v-{p.name}", (f"{p.name}.{ZONE}",), "LEASTCONNECTION", min(2, services),
                          tuple(bySite[p.name])) for p in plans]
    return specs


def soakTopology(plans: Sequence[SitePlan], services: int, mepPort: int,
                 metricsInterval: float = METRICS_INTERVAL, deadInterval: float = DEAD_INTERVAL) -> str:
    """
    The appliance's topology (TOML): L{applianceHeader} (with the location
    database for STATICPROXIMITY), the sites of C{plans} at the L{CITIES}
    with C{services} services each, and the L{vserverSpecs}, all with
    C{down_response = "empty"} (with "all", a vserver whose services are
    all DOWN answers every address, as NetScaler does).
    """
    header = applianceHeader("benchmarks/soak.py", mepPort, metricsInterval, deadInterval)
    at = next(i for i, line in enumerate(header) if line.startswith("dead_interval")) + 1
    lines = header[:at] + [f'location_db = "{os.path.relpath(LOCATIONS, REPO)}"'] + header[at:]
    for p in plans:
        port = p.mepPort if not p.dials and p.mepPort else mepPort
        lat, lon = CITIES[p.index % len(CITIES)]
        lines += ["", "[[site]]", f'name = "{p.name}"', f'ip = "{p.ip}"', f"mep_port = {port}",
                  f"location = {{ lat = {lat!r}, lon = {lon!r} }}"]
        for v in range(services):
            lines += [
                "",
                "[[service]]",
                f'name = "{serviceName(p.name, v)}"',
                f'site = "{p.name}"',
                f'ip = "{serviceAddress(p.index, v, services)}"',
                "port = 80",
                'type = "HTTP"',
                f"weight = {1 + v % 3}",
                "max_clients = 1000",
            ]
    for spec in vserverSpecs(plans, services):
        lines += [
            "",
            "[[vserver]]",
            f'name = "{spec.name}"',
            "domains = [" + ", ".join(f'"{d}"' for d in spec.domains) + "]",
            f'lb_method = "{spec.method}"',
            'backup_lb_method = "ROUNDROBIN"',
            'down_response = "empty"',
            f"answers = {spec.answers}",
            "ttl = 5",
            "services = [" + ", ".join(f'"{s}"' for s in spec.services) + "]",
        ]
        lines += list(spec.extra)
    return "\n".join(lines) + "\n"


def serviceOfAddress(plans: Sequence[SitePlan], services: int) -> Dict[str, str]:
    """Service address -> service name."""
    return {serviceAddress(p.index, v, services): serviceName(p.name, v) for p in plans for v in range(services)}


def allDomains(plans: Sequence[SitePlan], services: int) -> List[str]:
    """Every vserver domain, in topology order (what the prober asks)."""
    return [d for spec in vserverSpecs(plans, services) for d in spec.domains]


def splitClients(subnets: Sequence[str], slices: int, probe: int) -> Tuple[List[List[str]], List[str]]:
    """
    The ECS /24s: the first C{probe} for the prober, the rest dealt into
    C{slices} equal slices for dnsperf (minute m uses slice m mod slices).
    """
    if slices < 1 or len(subnets) < probe + slices:
        raise ValueError(f"{len(subnets)} subnets cannot make {probe} probe clients and {slices} slices")
    rest = list(subnets[probe:])
    size = len(rest) // slices
    return [rest[i * size:(i + 1) * size] for i in range(slices)], list(subnets[:probe])


def queryMix(mainNames: Sequence[str], siteNames: Sequence[str], clients: Sequence[str], seed: int,
             plainEvery: int = 20, oddEvery: int = 16) -> List[Tuple[str, str, Optional[str]]]:
    """
    dnsperf's questions for one slice of clients, shuffled: each client asks
    every name of C{mainNames} and one site vserver (A), every
    C{oddEvery}-th also a name the zone does not hold (NXDOMAIN) and an
    AAAA (NODATA: the services are IPv4); every C{plainEvery}-th client
    sends no ECS option (its queries come from dnsperf's own address).

    @return: (name, type, client subnet or None) triples.
    """
    mix: List[Tuple[str, str, Optional[str]]] = []
    for i, subnet in enumerate(clients):
        client = None if i % plainEvery == 0 else subnet
        for name in mainNames:
            mix.append((name, "A", client))
        if siteNames:
            mix.append((siteNames[i % len(siteNames)], "A", client))
        if i % oddEvery == 0:
            mix.append((f"nx-{i}.{ZONE}", "A", client))
            mix.append((mainNames[0], "AAAA", client))
    random.Random(seed).shuffle(mix)
    return mix


def wireQuery(name: str, rdtype: str, client: Optional[str]) -> bytes:
    """One query on the wire: EDNS, a /24 ECS option if C{client}, RD clear."""
    options = [dns.edns.ECSOption(client, 24)] if client else []
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, options=options)
    query.flags &= ~dns.flags.RD
    return query.to_wire()


# ---------------------------------------------------------------------------
# Pure: the churn script.


@dataclass(frozen=True)
class ChurnEvent:
    """
    One step of the script, C{at} seconds after the soak starts.
    C{service}: for service-down and disable; C{detail}: "close" or
    "abort" for a session drop, the connections step per second of a ramp.
    """

    at: float
    kind: str
    site: str
    duration: float
    service: Optional[str] = None
    detail: Optional[str] = None


def planChurn(seed: int, seconds: float, sites: Mapping[str, Sequence[str]], meanGap: float = 15.0,
              start: float = 15.0, margin: float = 15.0) -> List[ChurnEvent]:
    """
    The churn script of a run of C{seconds}: an event every C{meanGap} s
    on average (uniform between half and one and a half of it), from
    C{start} on, each finished C{margin} s before the end.  Its kind is
    drawn with L{KIND_WEIGHTS}, its length from L{DURATIONS}; it goes to a
    site with no event in progress (nor in the L{SETTLE} after one), and
    at most one site is DOWN at a time.  The same arguments give the same
    script.

    @param sites: site name -> its service names.
    """
    if meanGap <= 0:
        raise ValueError("meanGap must be positive")
    rng = random.Random(seed)
    names = sorted(sites)
    busyUntil = {name: 0.0 for name in names}
    siteDownUntil = 0.0
    events: List[ChurnEvent] = []
    t = start
    while True:
        kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
        low, high = DURATIONS[kind]
        duration = round(rng.uniform(low, high), 1)
        pick = rng.random()
        detailPick = rng.random()
        if t + duration > seconds - margin:
            break
        free = [name for name in names if busyUntil[name] <= t]
        if kind == "site-down" and siteDownUntil > t:
            free = []
        if free:
            site = free[int(pick * len(free))]
            services = list(sites[site])
            service = None
            detail = None
            if kind in ("service-down", "disable"):
                service = services[int(detailPick * len(services))]
            elif kind == "session-drop":
                detail = "close" if detailPick < 0.5 else "abort"
            elif kind == "ramp":
                detail = str(20 + int(detailPick * 40))
            events.append(ChurnEvent(round(t, 1), kind, site, duration, service, detail))
            busyUntil[site] = t + duration + SETTLE
            if kind == "site-down":
                siteDownUntil = t + duration + SETTLE
        t += rng.uniform(0.5 * meanGap, 1.5 * meanGap)
    return events


def churnCounts(events: Sequence[ChurnEvent]) -> Dict[str, int]:
    counts = {kind: 0 for kind in KINDS}
    for event in events:
        counts[event.kind] += 1
    return counts


def rampSteps(duration: float, step: int) -> List[int]:
    """
    A ramp's change of connections each second: C{+step} for the first
    half, C{-step} for the second, summing to zero.
    """
    seconds = max(2, int(duration))
    up = seconds // 2
    return [step] * up + [-step] * up + [0] * (seconds - 2 * up)


# ---------------------------------------------------------------------------
# Pure: is an answer wrong?


@dataclass
class Interval:
    """
    C{service} unavailable from C{start} (monotonic s) until C{end} (None:
    still), because of event C{event} of kind C{kind} (site-down,
    service-down, disabled), with C{grace} s for the appliance to notice.
    """

    service: str
    kind: str
    start: float
    end: Optional[float]
    grace: float
    event: int


@dataclass
class ProbeAnswer(Answer):
    """A prober answer (L{benchmarks.failover.Answer}) and the ECS client it asked for."""

    client: Optional[str] = None


def classify(answers: Sequence[Answer], intervals: Sequence[Interval], serviceOf: Mapping[str, str],
             keepGrace: int = 100) -> dict:
    """
    Judge answers against what the churn script made unavailable.

    Each address of an answer naming service S is:
      - wrong when S was unavailable from at least C{grace} before the
        query was sent until after the answer arrived (an interval with
        C{start + grace <= sent} and C{end} None or after C{received});
      - in grace when S was unavailable when the answer arrived but it
        is not wrong (the transition was too recent, or the query was in
        flight across it): allowed; the latest such answer after each
        kind's transition is kept (C{lateness}: how long the appliance
        took, at most, to stop naming it); the first C{keepGrace} are kept
        (C{grace}: how long after the transition each query was sent and
        its answer came back).

    Also the answered queries' latency (C{latency}: p50, p99, max, s).

    @return: {queries, answered, unanswered, rcodes, wrong: [...],
        in_grace, lateness: {kind: seconds}, grace: [...], latency}.
    """
    byService: Dict[str, List[Interval]] = {}
    for interval in intervals:
        byService.setdefault(interval.service, []).append(interval)
    out: Dict[str, Any] = {"queries": len(answers), "answered": 0, "unanswered": 0, "rcodes": {},
                           "wrong": [], "in_grace": 0, "lateness": {}, "grace": []}
    latencies = sorted(a.received - a.sent for a in answers if a.rcode is not None)
    out["latency"] = None if not latencies else {
        "p50": round(dnsperf.percentile(latencies, 0.50), 5), "p99": round(dnsperf.percentile(latencies, 0.99), 5),
        "max": round(latencies[-1], 5)}
    for answer in answers:
        if answer.rcode is None:
            out["unanswered"] += 1
            continue
        out["answered"] += 1
        out["rcodes"][answer.rcode] = out["rcodes"].get(answer.rcode, 0) + 1
        for address in answer.addresses:
            service = serviceOf.get(address)
            if service is None:
                continue
            down = [i for i in byService.get(service, ())
                    if i.start <= answer.received and (i.end is None or answer.received < i.end)]
            if not down:
                continue
            guilty = [i for i in down if i.start + i.grace <= answer.sent]
            if guilty:
                first = guilty[0]
                out["wrong"].append({
                    "name": answer.name, "address": address, "service": service, "kind": first.kind,
                    "kinds": [i.kind for i in guilty], "event": first.event,
                    "client": getattr(answer, "client", None),
                    "after_transition": round(answer.sent - first.start, 4),
                    "sent": round(answer.sent, 4), "received": round(answer.received, 4),
                })
                continue
            out["in_grace"] += 1
            for interval in down:
                late = round(answer.received - interval.start, 4)
                if late > out["lateness"].get(interval.kind, -1.0):
                    out["lateness"][interval.kind] = late
            if len(out["grace"]) < keepGrace:
                latest = max(down, key=lambda i: i.start)
                out["grace"].append({
                    "name": answer.name, "service": service, "kind": latest.kind, "event": latest.event,
                    "client": getattr(answer, "client", None),
                    "sent_after": round(answer.sent - latest.start, 4),
                    "received_after": round(answer.received - latest.start, 4),
                })
    return out


def mergeClassified(total: dict, part: dict, keep: int = 200) -> dict:
    """
    Add the figures of one L{classify} result into a running total
    (keeping at most C{keep} in-grace answers, and the largest latency).
    """
    for key in ("queries", "answered", "unanswered", "in_grace"):
        total[key] = total.get(key, 0) + part[key]
    for code, n in part["rcodes"].items():
        total.setdefault("rcodes", {})[code] = total.get("rcodes", {}).get(code, 0) + n
    total.setdefault("wrong", []).extend(part["wrong"])
    grace = total.setdefault("grace", [])
    grace.extend(part.get("grace", ())[:max(0, keep - len(grace))])
    if part.get("latency"):
        worst = total.get("latency_max")
        total["latency_max"] = part["latency"]["max"] if worst is None else max(worst, part["latency"]["max"])
    for kind, late in part["lateness"].items():
        if late > total.setdefault("lateness", {}).get(kind, -1.0):
            total["lateness"][kind] = late
    return total


# ---------------------------------------------------------------------------
# Pure: samples and trends.


def countFds(pid: int) -> Optional[int]:
    """Open file descriptors of C{pid}, or None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def summariseSamples(samples: Sequence[Tuple[Optional[int], ...]]) -> Optional[dict]:
    """
    One minute of (VmRSS KiB, fds[, MEP sessions held]) samples of one
    process: the median and largest RSS; the smallest, largest and last fd
    count; and the smallest count of fds other than MEP sessions
    (C{fds_net_min}, None without session counts).  The fd trend is taken
    on that: a site's session moves between cores with its mastership and
    is gone while the site is DOWN, and a socket being re-made when a
    sample is taken counts for a moment; a leak raises the floor.
    """
    rss = [sample[0] for sample in samples if sample[0] is not None]
    fds = [sample[1] for sample in samples if sample[1] is not None]
    net = [sample[1] - sample[2] for sample in samples
           if len(sample) > 2 and sample[1] is not None and sample[2] is not None]
    if not rss and not fds:
        return None
    return {
        "n": len(samples),
        "rss_kib": int(statistics.median(rss)) if rss else None,
        "rss_max_kib": max(rss) if rss else None,
        "fds_min": min(fds) if fds else None,
        "fds_max": max(fds) if fds else None,
        "fds_last": fds[-1] if fds else None,
        "fds_net_min": min(net) if net else None,
    }


def leastSquaresSlope(points: Sequence[Tuple[float, float]]) -> Optional[float]:
    """The slope of the least-squares line through C{(x, y)} points (None if x does not vary)."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def trendVerdict(points: Sequence[Tuple[float, float]], runMinutes: float, threshold: float,
                 perMinutes: float = PER_MINUTES, warmupFraction: float = WARMUP_FRACTION,
                 minPoints: int = MIN_TREND_POINTS) -> dict:
    """
    The growth verdict of one series of (minute, value) points: the
    least-squares slope over the points after the warm-up (the first
    C{warmupFraction} of C{runMinutes}), extrapolated to C{perMinutes};
    PASS when that growth is below C{threshold}, FAIL when not, N/A with
    fewer than C{minPoints} points after the warm-up.
    """
    cut = runMinutes * warmupFraction
    window = sorted((x, y) for x, y in points if x > cut and y is not None)
    out: Dict[str, Any] = {"points": len(window), "from_minute": None, "to_minute": None, "slope_per_minute": None,
                           "growth": None, "per_minutes": perMinutes, "threshold": threshold,
                           "window_change": None, "min": None, "max": None, "verdict": "N/A"}
    if window:
        out.update(from_minute=round(window[0][0], 2), to_minute=round(window[-1][0], 2),
                   window_change=window[-1][1] - window[0][1],
                   min=min(y for _, y in window), max=max(y for _, y in window))
    slope = leastSquaresSlope(window) if len(window) >= minPoints else None
    if slope is None:
        out["reason"] = f"{len(window)} points after the warm-up ({cut:.1f} min), {minPoints} needed"
        return out
    out["slope_per_minute"] = slope
    out["growth"] = slope * perMinutes
    out["verdict"] = "PASS" if out["growth"] < threshold else "FAIL"
    return out


def overallVerdict(trends: Mapping[str, Mapping[str, dict]], wrong: int, restarts: int,
                   problems: Sequence[str]) -> str:
    """
    PASS when no trend failed, no answer was wrong, no core restarted and
    the run had no problem; N/A trends (a short run) do not fail it.
    """
    failed = any(t["verdict"] == "FAIL" for byKind in trends.values() for t in byKind.values())
    return "FAIL" if failed or wrong or restarts or problems else "PASS"


def loadRate(qps: float, fraction: float) -> int:
    """dnsperf's C{-Q}: C{fraction} of the measured capacity, at least 1."""
    return max(1, int(qps * fraction))


# ---------------------------------------------------------------------------
# The prober, in a thread.


class Prober(threading.Thread):
    """
    Asks C{names} in turn at C{rate} queries/s, each name for each client in
    turn (None: no ECS option), one query at a time, until stopped.
    """

    def __init__(self, host: str, port: int, names: Sequence[str], clients: Sequence[Optional[str]],
                 rate: float, timeout: float = 1.0) -> None:
        super().__init__(name="soak-prober", daemon=True)
        self.host, self.port = host, port
        self.names, self.clients = list(names), list(clients)
        self.rate, self.timeout = rate, timeout
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.answers: List[ProbeAnswer] = []
        self.errors: Dict[str, int] = {}
        self.queries = [[dns.message.from_wire(wireQuery(name, "A", client)) for client in self.clients]
                        for name in self.names]
        self.ids = random.Random(0)

    def run(self) -> None:
        index = 0
        base = time.monotonic()
        while not self.stopping.is_set():
            delay = base + index / self.rate - time.monotonic()
            if delay > 0:
                if self.stopping.wait(delay):
                    break
            elif delay < -1.0:  # fell behind (timeouts): do not catch up in a burst
                base = time.monotonic() - index / self.rate
            n = len(self.names)
            name, c = index % n, (index // n) % len(self.clients)
            index += 1
            query = self.queries[name][c]
            query.id = self.ids.getrandbits(16)
            sent = time.monotonic()
            try:
                response = dns.query.udp(query, self.host, port=self.port, timeout=self.timeout)
            except dns.exception.Timeout:
                answer = ProbeAnswer(sent, time.monotonic(), self.names[name], None, (), self.clients[c])
            except (dns.exception.DNSException, OSError) as e:
                key = type(e).__name__
                self.errors[key] = self.errors.get(key, 0) + 1
                answer = ProbeAnswer(sent, time.monotonic(), self.names[name], None, (), self.clients[c])
            else:
                received = time.monotonic()
                addresses = tuple(rdata.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A
                                  for rdata in rrset)
                answer = ProbeAnswer(sent, received, self.names[name], dns.rcode.to_text(response.rcode()),
                                     addresses, self.clients[c])
            with self.lock:
                self.answers.append(answer)

    def take(self) -> List[ProbeAnswer]:
        with self.lock:
            taken, self.answers = self.answers, []
        return taken


# ---------------------------------------------------------------------------
# Processes: who is who, and their samples.


def udpQueue(text: str, port: int, host: str = "0100007F") -> Optional[Tuple[int, int]]:
    """
    The receive queue (bytes) and drop count of the UDP socket bound to
    C{host:port} (as C{/proc/net/udp} spells them: little-endian hex, here
    127.0.0.1), or None when there is none.  The appliance's cores share
    one socket (inherited), so this is its backlog of queries.
    """
    wanted = f"{host}:{port:04X}"
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 13 and fields[1] == wanted:
            rx = int(fields[4].split(":")[1], 16)
            return rx, int(fields[-1])
    return None


def sessionsByCore(rows: Optional[Sequence[dict]]) -> Optional[Dict[int, int]]:
    """
    The MEP sessions (sockets) each core holds, from C{show mep} rows (the
    rows of state "down" only count authentication failures: no socket).
    """
    if rows is None:
        return None
    held: Dict[int, int] = {}
    for row in rows:
        if row.get("state") != "down" and row.get("core") is not None:
            held[row["core"]] = held.get(row["core"], 0) + 1
    return held


class Sampler:
    """
    Every C{interval} s, VmRSS and the open fds of each process of the
    appliance (supervisor, each core, anything else in its tree) and of
    this process, with the MEP sessions each core holds then (C{show
    mep}), filed by role until L{take}.
    """

    def __init__(self, reactor, supervisor: int, interval: float, control=None, dnsPort: Optional[int] = None) -> None:
        self.supervisor = supervisor
        self.dnsPort = dnsPort
        self.backlog: List[Tuple[int, int]] = []  # since the last take: (queue, drops)
        self.queueSeries: List[Tuple[float, int]] = []  # the whole run: (monotonic, queue)
        self.queueLoop = task.LoopingCall(self.sampleQueue)
        self.queueLoop.clock = reactor
        self.control = control
        self.roles: Dict[int, str] = {supervisor: "supervisor"}
        self.buckets: Dict[str, List[Tuple[Optional[int], Optional[int], Optional[int]]]] = {}
        self.pids: Dict[str, int] = {}
        self.loop = task.LoopingCall(self.sample)
        self.loop.clock = reactor
        self.interval = interval
        self.errors = 0

    def setCores(self, cores: Sequence[dict]) -> None:
        roles = {self.supervisor: "supervisor", os.getpid(): "bench"}
        for row in cores:
            if row.get("pid"):
                roles[row["pid"]] = f"core {row['core']}"
        stats = procstat.allStats()
        for pid in procstat.descendants(self.supervisor, stats):
            roles.setdefault(pid, f"other {stats[pid].comm} {pid}")
        self.roles = roles

    def start(self) -> None:
        self.loop.start(self.interval, now=True).addErrback(lambda f: None)
        if self.dnsPort is not None:
            self.queueLoop.start(QUEUE_INTERVAL, now=True)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()
        if self.queueLoop.running:
            self.queueLoop.stop()

    def sampleQueue(self) -> None:
        """The DNS socket's receive queue and drops (C{/proc/net/udp}), every L{QUEUE_INTERVAL} s."""
        try:
            with open("/proc/net/udp", encoding="ascii") as f:
                queue = udpQueue(f.read(), self.dnsPort)
        except OSError:
            queue = None
        if queue is not None:
            self.backlog.append(queue)
            self.queueSeries.append((time.monotonic(), queue[0]))

    def queueBetween(self, start: float, end: float) -> Optional[int]:
        """The largest DNS receive queue sampled between two monotonic times."""
        values = [q for t, q in self.queueSeries if start <= t <= end]
        return max(values) if values else None

    def sample(self) -> defer.Deferred:
        return defer.ensureDeferred(self._sample())

    async def _sample(self) -> None:
        held = None
        if self.control is not None:
            try:
                held = sessionsByCore((await self.control.protocol.callRemote(ShowMEP))["rows"])
            except Exception:
                self.errors += 1
        for pid, role in self.roles.items():
            memory = readMemory(pid)
            fds = countFds(pid)
            if memory is None and fds is None:
                continue
            sessions = None
            if held is not None:
                sessions = held.get(int(role.split()[1]), 0) if role.startswith("core ") else 0
            self.buckets.setdefault(role, []).append((memory and memory.get("rss"), fds, sessions))
            self.pids[role] = pid

    def take(self):
        """The samples so far by role, the pids, and the DNS socket's (largest queue, drops) (and forget them)."""
        buckets, self.buckets = self.buckets, {}
        backlog, self.backlog = self.backlog, []
        queue = None if not backlog else (max(q for q, _ in backlog), backlog[-1][1])
        return buckets, dict(self.pids), queue


def stallCpu(series: Sequence[Tuple[float, int]], start: float, end: float) -> Optional[float]:
    """
    CPU % of one CPU a process used between two monotonic times, from its
    (time, cpu ticks) samples: the last sample at or before C{start} and
    the first at or after C{end}; None without both.
    """
    before = [s for s in series if s[0] <= start]
    after = [s for s in series if s[0] >= end]
    if not before or not after or after[0][0] <= before[-1][0]:
        return None
    (t0, c0), (t1, c1) = before[-1], after[0]
    return round(100.0 * (c1 - c0) / procstat.CLOCK_TICKS / (t1 - t0), 1)


class CoreProbe:
    """
    How responsive each core is: every C{interval} s, C{resolve NAME
    --core N} to each core that has no call in flight (through the
    supervisor, as the console does), and each core's CPU ticks from
    C{/proc}.  A call taking over C{slow} s is a stall: kept with the CPU
    the core used meanwhile (busy: it was computing; idle: it was waiting
    or not scheduled) and its process state at each tick past C{slow}
    (R running or runnable, S sleeping).
    """

    def __init__(self, reactor, control, cores: int, name: str, interval: float = 0.2, slow: float = 0.5) -> None:
        self.reactor, self.control, self.cores, self.name = reactor, control, cores, name
        self.interval, self.slow = interval, slow
        self.pids: Dict[int, int] = {}
        self.inFlight: Dict[int, float] = {}
        self.ticks: Dict[int, List[Tuple[float, int]]] = {}
        self.rtts: Dict[int, List[float]] = {}
        self.stalls: List[dict] = []
        self.pending: List[dict] = []  # stalls whose CPU is not known yet
        self.states: Dict[int, List[str]] = {}  # per core, its /proc state at each tick of a call over slow
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor

    def setPids(self, cores: Sequence[dict]) -> None:
        self.pids = {row["core"]: row["pid"] for row in cores if row.get("pid")}

    def start(self) -> None:
        self.loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def tick(self) -> None:
        now = time.monotonic()
        for core, pid in self.pids.items():
            stat = procstat.readStat(pid)
            if stat is not None:
                series = self.ticks.setdefault(pid, [])
                series.append((now, stat.cpuTicks))
                del series[:-600]  # two minutes
                if core in self.inFlight and now - self.inFlight[core] > self.slow:
                    self.states.setdefault(core, []).append(stat.state)
        for stall in [s for s in self.pending if s["ended"] < now]:
            self.pending.remove(stall)
            stall["cpu_pct"] = stallCpu(self.ticks.get(stall["pid"], ()), stall["sent"], stall["ended"])
        for core in range(self.cores):
            if core in self.inFlight:
                continue
            self.inFlight[core] = now
            self.states.pop(core, None)
            d = self.control.protocol.callRemote(Resolve, name=self.name, core=core)
            d.addBoth(self._answered, core, now)

    def _answered(self, result, core: int, sent: float) -> None:
        ended = time.monotonic()
        self.inFlight.pop(core, None)
        rtt = ended - sent
        self.rtts.setdefault(core, []).append(rtt)
        if rtt > self.slow:
            pid = self.pids.get(core)
            states = self.states.pop(core, [])
            stall = {"core": core, "pid": pid, "sent": sent, "ended": ended, "rtt": round(rtt, 3), "cpu_pct": None,
                     "states": "".join(states),
                     "error": None if not hasattr(result, "getErrorMessage") else result.getErrorMessage()}
            self.stalls.append(stall)
            if pid:
                self.pending.append(stall)

    def take(self) -> Dict[str, Optional[dict]]:
        """Per core since the last take: calls, p50, max round trip (s), stalls (and forget the round trips)."""
        out = {}
        for core in range(self.cores):
            rtts = sorted(self.rtts.get(core, ()))
            out[str(core)] = None if not rtts else {
                "calls": len(rtts), "p50": round(dnsperf.percentile(rtts, 0.5), 4), "max": round(rtts[-1], 3),
                "stalls": sum(1 for r in rtts if r > self.slow)}
        self.rtts = {}
        return out


def cpuSnapshot(pids: Sequence[int]):
    own = os.times()
    return procstat.sampleCpu(pids), procstat.hostCpuTicks(), own.user + own.system, time.monotonic()


# ---------------------------------------------------------------------------
# Results.


@dataclass
class SoakResult:
    cores: int
    sites: int
    services: int
    minutes: int
    serverCommand: List[str]
    topology: str = ""
    setupSeconds: Optional[float] = None
    backgroundCpu: Optional[float] = None
    setupRefusals: int = 0
    siteLosses: Dict[str, List[str]] = field(default_factory=dict)
    resyncs: int = 0
    masters: Dict[str, Optional[int]] = field(default_factory=dict)
    capacity: Optional[dict] = None
    rate: Optional[int] = None
    churn: List[dict] = field(default_factory=list)
    applied: List[dict] = field(default_factory=list)
    minuteRows: List[dict] = field(default_factory=list)
    trends: Dict[str, Dict[str, dict]] = field(default_factory=dict)
    correctness: dict = field(default_factory=dict)
    restarts: int = 0
    dnsperfTotal: dict = field(default_factory=dict)
    finalCheck: Optional[str] = None
    stalls: List[dict] = field(default_factory=list)
    walk: dict = field(default_factory=dict)
    proberErrors: Dict[str, int] = field(default_factory=dict)
    verdict: Optional[str] = None
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None
    logTail: str = ""


class SoakAppliance(Appliance):
    """L{Appliance} with the soak topology (both MEP directions)."""

    def __init__(self, reactor, cores: int, plans: Sequence[SitePlan], services: int, workDir: str,
                 logDir: str, label: str) -> None:
        self.reactor = reactor
        self.mepPort = freePort(APPLIANCE_IP, socket.SOCK_STREAM)
        self.dnsPort = freePort("127.0.0.1", socket.SOCK_DGRAM)
        self.topologyPath = os.path.join(logDir, f"{label}.toml")
        with open(self.topologyPath, "w", encoding="utf-8") as f:
            f.write(soakTopology(plans, services, self.mepPort))
        self.controlPath = os.path.join(workDir, f"{label}.ctl")
        self.server = GslbServer.build(
            self.dnsPort, cores, None, f"unix:{self.controlPath}", os.path.join(logDir, f"{label}.log"),
            config=os.path.relpath(self.topologyPath, REPO),
        )
        self.cores = cores


# ---------------------------------------------------------------------------
# The churn, applied.


def viewShowsDown(view: Optional[dict], services: Sequence[str]) -> bool:
    """
    Does one core's C{show metrics SITE} show every one of C{services}
    unavailable (the site DOWN, or each service's state DOWN)?
    """
    if not view:
        return False
    if view.get("state") == "DOWN":
        return True
    states = {row.get("name"): row.get("state") for row in view.get("services", ())}
    return all(states.get(s) == "DOWN" for s in services)


def planExcludes(resolved: Optional[dict], services: Sequence[str]) -> bool:
    """Does one core's C{resolve} leave every one of C{services} out of its candidates?"""
    if resolved is None:
        return False
    return not {c.get("service") for c in resolved.get("candidates", ())} & set(services)


async def watchCores(reactor, control, cores: int, site: str, services: Sequence[str], names: Sequence[str],
                     start: float, metrics: bool, limit: float, interval: float = 0.05) -> Dict[str, dict]:
    """
    After a transition at C{start}: poll each core on its own (C{show
    metrics SITE --core N} when C{metrics}, and C{resolve NAME --core N}
    for each of C{names}) until it shows C{services} unavailable, for at
    most C{limit} s.  For each core and each view, the seconds from
    C{start} to the end of the first poll that showed it (an upper bound;
    C{after_last_not}: the start of the last poll that did not, a lower
    bound); for the metrics, also the core's own C{applied_monotonic} of
    the version it then held, minus C{start} (C{applied}), and that
    version (C{version}): where two cores show the same version, its
    C{applied} times are exact, and their difference is the propagation.
    """
    views = (["metrics"] if metrics else []) + list(names)

    async def one(core: int) -> dict:
        seen: Dict[str, Any] = {view: None for view in views}
        lower = {view: 0.0 for view in views}
        while time.monotonic() - start < limit:
            pending = [view for view in views if seen[view] is None]
            if not pending:
                break
            polled = time.monotonic()
            calls = [control.protocol.callRemote(ShowMetrics, site=site, core=core) if view == "metrics"
                     else control.protocol.callRemote(Resolve, name=view, core=core) for view in pending]
            answers = await defer.DeferredList(calls, consumeErrors=True)
            ended = time.monotonic()
            for view, (ok, value) in zip(pending, answers):
                result = value.get("result") if ok else None
                shown = viewShowsDown(result, services) if view == "metrics" else planExcludes(result, services)
                if shown:
                    seen[view] = round(ended - start, 4)
                    if view == "metrics" and result.get("applied_monotonic") is not None:
                        seen["applied"] = round(result["applied_monotonic"] - start, 4)
                        seen["version"] = [result.get("epoch"), result.get("seq")]
                else:
                    lower[view] = round(polled - start, 4)
            await sleep(reactor, interval)
        seen["after_last_not"] = lower
        return seen

    results = await defer.gatherResults([defer.ensureDeferred(one(core)) for core in range(cores)],
                                        consumeErrors=True)
    return {str(core): result for core, result in enumerate(results)}


def slowestSeen(applied: Sequence[dict]) -> Dict[str, Optional[float]]:
    """
    Per kind, the latest any core showed an event's unavailability (in
    its table or its plans), over every watched event; None when a view
    never showed it within the watch.
    """
    out: Dict[str, Optional[float]] = {}
    for record in applied:
        seen = record.get("seen")
        if not seen:
            continue
        times = [t for core in seen.values() for view, t in core.items()
                 if view not in ("after_last_not", "applied", "version")]
        worst = None if any(t is None for t in times) else max(times, default=None)
        kind = record["kind"]
        if kind in out and out[kind] is None:
            continue
        out[kind] = worst if kind not in out or worst is None else max(out[kind], worst)
    return out


def watchVerdict(seen: Optional[Mapping[str, dict]], grace: float) -> Optional[str]:
    """
    How one watched transition went, from L{watchCores}: "BEYOND GRACE"
    when some core still did not show it in a poll started after the
    grace (or never did within the watch); "slow" when some poll showing
    it first ended after L{SLOW_VIEW} (an upper bound: inconclusive
    alone); None when every core showed it at once.
    """
    if not seen:
        return None
    late = slow = False
    for views in seen.values():
        lower = views.get("after_last_not", {})
        for view, t in views.items():
            if view in ("after_last_not", "applied", "version"):
                continue
            if t is None or lower.get(view, 0.0) > grace:
                late = True
            elif t > SLOW_VIEW:
                slow = True
    return "BEYOND GRACE" if late else ("slow" if slow else None)


class Churn:
    """
    Plays the script on the sites and the appliance, noting when each
    event really started and ended, and the unavailability intervals.
    """

    def __init__(self, reactor, control, sites: Mapping[str, Any], services: Mapping[str, Sequence[str]],
                 mepPort: int, seed: int, origin: float, cores: int = 0, watchFor: float = 10.0) -> None:
        self.reactor = reactor
        self.cores = cores
        self.watchFor = watchFor
        self.control = control
        self.sites = sites
        self.services = services
        self.mepPort = mepPort
        self.seed = seed
        self.origin = origin
        self.intervals: List[Interval] = []
        self.applied: List[dict] = []
        self.problems: List[str] = []
        self.running: List[defer.Deferred] = []
        self.calls = []

    def rel(self, t: float) -> float:
        return round(t - self.origin, 3)

    def schedule(self, events: Sequence[ChurnEvent]) -> None:
        for index, event in enumerate(events):
            delay = max(0.0, self.origin + event.at - time.monotonic())
            self.calls.append(self.reactor.callLater(delay, self._launch, index, event))

    def _launch(self, index: int, event: ChurnEvent) -> None:
        record = {"index": index, "kind": event.kind, "site": event.site, "service": event.service,
                  "planned": event.at, "duration": event.duration, "detail": event.detail}
        self.applied.append(record)
        d = defer.ensureDeferred(self._play(event, index, record))

        def failed(failure):
            record["error"] = failure.getErrorMessage()
            self.problems.append(f"churn event {index} ({event.kind} {event.site}): {failure.getErrorMessage()}")

        d.addErrback(failed)
        self.running.append(d)

    async def finish(self) -> None:
        for call in self.calls:
            if call.active():
                call.cancel()
        await defer.DeferredList(self.running, consumeErrors=True)

    async def _reconnected(self, site, since: float, limit: float = 20.0) -> Optional[float]:
        while time.monotonic() - since < limit:
            if site.established:
                return round(time.monotonic() - since, 3)
            await sleep(self.reactor, 0.05)
        return None

    def _watch(self, record: dict, site: str, services: Sequence[str], start: float, metrics: bool) -> None:
        """Watch, on every core, when the unavailability shows (L{watchCores}); kept in C{record["seen"]}."""
        if not self.cores:
            return
        names = [f"{site}.{ZONE}", f"rr.{ZONE}"]

        async def watch():
            record["seen"] = await watchCores(self.reactor, self.control, self.cores, site, services, names, start,
                                              metrics, self.watchFor)

        d = defer.ensureDeferred(watch())
        d.addErrback(lambda f: record.__setitem__("seen_error", f.getErrorMessage()))
        self.running.append(d)

    async def _play(self, event: ChurnEvent, index: int, record: dict) -> None:
        site = self.sites[event.site]
        if event.kind == "site-down":
            await defer.maybeDeferred(site.disconnect)
            start = time.monotonic()
            record["started"] = self.rel(start)
            opened = [Interval(s, "site-down", start, None, GRACE["site-down"], index)
                      for s in self.services[event.site]]
            self.intervals.extend(opened)
            self._watch(record, event.site, self.services[event.site], start, True)
            await sleep(self.reactor, event.duration)
            end = time.monotonic()
            for interval in opened:
                interval.end = end
            record["ended"] = self.rel(end)
            site.connect(self.mepPort, METRICS_INTERVAL, DEAD_INTERVAL, self.seed + site.index)
            record["reconnect_s"] = await self._reconnected(site, end)
        elif event.kind == "service-down":
            record["established"] = site.established
            site.change({event.service: {"state": "DOWN"}})
            start = time.monotonic()
            record["started"] = self.rel(start)
            interval = Interval(event.service, "service-down", start, None, GRACE["service-down"], index)
            self.intervals.append(interval)
            self._watch(record, event.site, [event.service], start, True)
            await sleep(self.reactor, event.duration)
            interval.end = time.monotonic()
            record["ended"] = self.rel(interval.end)
            site.change({event.service: {"state": "UP"}})
        elif event.kind == "disable":
            sent = time.monotonic()
            await self.control.protocol.callRemote(DisableService, name=event.service)
            start = time.monotonic()
            record["started"] = self.rel(start)
            record["command_s"] = round(start - sent, 4)
            interval = Interval(event.service, "disabled", start, None, GRACE["disabled"], index)
            self.intervals.append(interval)
            self._watch(record, event.site, [event.service], start, False)
            await sleep(self.reactor, event.duration)
            interval.end = time.monotonic()
            record["ended"] = self.rel(interval.end)
            await self.control.protocol.callRemote(EnableService, name=event.service)
        elif event.kind == "ramp":
            step = int(event.detail or 20)
            record["started"] = self.rel(time.monotonic())
            for delta in rampSteps(event.duration, step):
                changes = {}
                for name in self.services[event.site]:
                    metrics = site.services[name]
                    changes[name] = {
                        "connections": max(0, metrics["connections"] + delta),
                        "response_time": round(max(0.0, metrics["response_time"] + delta / 4), 2),
                    }
                site.change(changes)
                await sleep(self.reactor, 1.0)
            record["ended"] = self.rel(time.monotonic())
        elif event.kind == "session-drop":
            session = site.session
            start = time.monotonic()
            record["started"] = self.rel(start)
            if session is None or session.transport is None or not site.established:
                record["skipped"] = "no established session"
                return
            if event.detail == "abort":
                session.transport.abortConnection()
            else:
                session.transport.loseConnection()
            record["reconnect_s"] = await self._reconnected(site, start)
            record["ended"] = self.rel(time.monotonic())
        else:
            raise ValueError(f"unknown churn kind {event.kind!r}")


# ---------------------------------------------------------------------------
# The run.


def writeQueryFiles(workDir: str, slices: Sequence[Sequence[str]], mainNames: Sequence[str],
                    siteNames: Sequence[str], seed: int) -> List[Tuple[str, int]]:
    """One dnsperf C{-B} file per client slice: (path, queries)."""
    files = []
    for i, clients in enumerate(slices):
        mix = queryMix(mainNames, siteNames, clients, seed + i)
        path = dnsperf.writeBinaryQueryFile(os.path.join(workDir, f"slice-{i}.bin"),
                                            (wireQuery(*q) for q in mix))
        files.append((path, len(mix)))
    return files


async def runDnsperf(executable: str, port: int, datafile: str, load: dnsperf.DnsperfLoad,
                     logDir: str, label: str) -> Tuple[dnsperf.DnsperfResult, float, List[str], float]:
    """
    One dnsperf run (its output in C{logDir}), waited for in a thread.

    @return: (its result, its CPU seconds, its argv, when it started).
    """
    argv = dnsperf.dnsperfCommand(executable, "127.0.0.1", port, datafile, load)
    out, err = os.path.join(logDir, f"dnsperf-{label}.txt"), os.path.join(logDir, f"dnsperf-{label}.err")
    started = time.monotonic()
    process = dnsperf.start(argv, out, err)
    cpu = await threads.deferToThread(waitForCpu, process)
    if process.returncode != 0:
        with open(err, encoding="utf-8", errors="replace") as f:
            raise BenchError(f"dnsperf exited with {process.returncode}: {f.read()[-500:]}")
    return dnsperf.readResult(out), cpu, argv, started


async def showCores(control) -> List[dict]:
    return (await control.protocol.callRemote(ShowCores))["cores"]


def minuteCpu(before, after, roles: Mapping[int, str], dnsperfCpu: float) -> dict:
    """CPU % of one CPU per role over a minute, the machine's, and what no known process used."""
    (b, hostB, ownB, t0), (a, hostA, ownA, t1) = before, after
    seconds = t1 - t0
    usage = procstat.cpuPercent(b, a, seconds)
    byRole = {role: round(usage[pid], 1) for pid, role in roles.items() if pid in usage and role != "bench"}
    bench = 100.0 * (ownA - ownB) / seconds if seconds > 0 else 0.0
    dnsperfPct = 100.0 * dnsperfCpu / seconds if seconds > 0 else 0.0
    host = procstat.busyPercent(hostB, hostA, seconds)
    other = max(0.0, host - sum(byRole.values()) - bench - dnsperfPct)
    return {"by_role": byRole, "appliance": round(sum(byRole.values()), 1), "bench": round(bench, 1),
            "dnsperf": round(dnsperfPct, 1), "host": round(host, 1), "other": round(other, 1)}


async def soak(reactor, options, appliance: SoakAppliance, control, sites, plans, result: SoakResult,
               logDir: str, workDir: str) -> None:
    executable = dnsperf.findDnsperf()
    services = siteServices(plans, options.services)
    serviceOf = serviceOfAddress(plans, options.services)
    specs = vserverSpecs(plans, options.services)
    mainNames = [spec.domains[0] for spec in specs if not spec.name.startswith("v-")]
    siteNames = [spec.domains[0] for spec in specs if spec.name.startswith("v-")]
    subnets = ecsSubnets(options.probe_clients + options.slices * options.slice_clients,
                         random.Random(options.seed))
    slices, probeClients = splitClients(subnets, options.slices, options.probe_clients)
    files = await threads.deferToThread(writeQueryFiles, workDir, slices, mainNames, siteNames, options.seed)
    say(f"  query files: {len(files)} slices of {len(slices[0])} ECS /24s, {files[0][1]} queries each")

    walker = Walker(reactor, list(sites.values()), random.Random(options.seed), options.walk_changes,
                    METRICS_INTERVAL, 10)
    walker.start()
    prober = Prober("127.0.0.1", appliance.dnsPort, allDomains(plans, options.services),
                    [None] + probeClients, options.probe_rate)
    prober.start()
    sampler = Sampler(reactor, appliance.server.pid, options.sample_interval, control, appliance.dnsPort)
    coreProbe = CoreProbe(reactor, control, options.cores, f"rr.{ZONE}")
    churn = None
    try:
        cores0 = await showCores(control)
        sampler.setCores(cores0)
        coreProbe.setPids(cores0)
        restarts0 = {row["core"]: row.get("restarts", 0) for row in cores0}

        # Capacity: saturating, with the walk and the prober running.
        saturate = dnsperf.DnsperfLoad(duration=options.capacity_seconds, clients=64, outstanding=100,
                                       timeout=2.0, verbose=False, cpus=None, binary=True)
        before = cpuSnapshot(list(sampler.roles))
        capacity, capCpu, capArgv, _ = await runDnsperf(executable, appliance.dnsPort, files[0][0], saturate,
                                                       logDir, "capacity")
        cpu = minuteCpu(before, cpuSnapshot(list(sampler.roles)), sampler.roles, capCpu)
        prober.take()
        result.rate = options.rate or loadRate(capacity.qps, options.load)
        result.capacity = {"qps": round(capacity.qps, 1), "sent": capacity.sent, "completed": capacity.completed,
                           "lost": capacity.lost, "latency_mean_ms": _ms(capacity.latencyMean),
                           "seconds": options.capacity_seconds, "command": " ".join(capArgv), "cpu": cpu,
                           "rate": result.rate, "load": options.load, "rate_given": options.rate}
        say(f"  capacity {capacity.qps:,.0f} q/s (lost {capacity.lost}; other processes {cpu['other']:.0f}% of a "
            f"CPU); soak at {result.rate:,} q/s for {options.minutes} min")

        # The script.
        seconds = options.minutes * 60.0
        events = planChurn(options.seed, seconds, services, options.churn_gap)
        result.churn = [asdict(e) for e in events]
        say(f"  churn: {len(events)} events {churnCounts(events)}")

        load = dnsperf.DnsperfLoad(duration=60, clients=64, outstanding=100, timeout=2.0, verbose=False,
                                   cpus=None, maxQps=result.rate, statsInterval=10, binary=True)
        origin = time.monotonic()
        churn = Churn(reactor, control, sites, services, appliance.mepPort, options.seed, origin,
                      cores=options.cores if options.watch else 0)
        churn.schedule(events)
        sampler.start()
        coreProbe.start()
        correctness: dict = {}
        cpuBefore = cpuSnapshot(list(sampler.roles))
        walk0 = walker.counters()
        previous = origin
        for minute in range(options.minutes):
            crash = appliance.crashed()
            if crash:
                raise BenchError(crash)
            path, _ = files[minute % len(files)]
            run, dnsCpu, argv, started = await runDnsperf(executable, appliance.dnsPort, path, load, logDir,
                                                         f"m{minute + 1:02d}")
            ended = time.monotonic()
            cores = await showCores(control)
            buckets, pids, queue = sampler.take()
            cpuAfter = cpuSnapshot(list(sampler.roles))
            cpu = minuteCpu(cpuBefore, cpuAfter, sampler.roles, dnsCpu)
            cpuBefore = cpuAfter
            sampler.setCores(cores)
            coreProbe.setPids(cores)
            part = classify(prober.take(), churn.intervals, serviceOf)
            mergeClassified(correctness, part)
            restarts = sum(row.get("restarts", 0) - restarts0.get(row["core"], 0) for row in cores)
            row = {
                "minute": minute + 1,
                "t_min": round((ended - origin) / 60.0, 3),
                "processes": {role: dict(summariseSamples(samples) or {}, pid=pids.get(role))
                              for role, samples in sorted(buckets.items())},
                "cores": [{k: c.get(k) for k in ("core", "pid", "state", "restarts", "queries")} for c in cores],
                "restarts": restarts,
                "core_rtt": coreProbe.take(),
                "dns_socket": None if queue is None else {"rx_queue_max": queue[0], "drops": queue[1]},
                "dnsperf": {"sent": run.sent, "completed": run.completed, "lost": run.lost,
                            "qps": round(run.qps, 1), "latency_mean_ms": _ms(run.latencyMean),
                            "latency_max_ms": _ms(run.latencyMax), "rcodes": run.rcodes,
                            "min_interval_qps": round(min(run.intervals), 1) if run.intervals else None,
                            "started_s": round(started - origin, 2), "command": " ".join(argv)},
                "probe": {k: part[k] for k in ("queries", "answered", "unanswered", "in_grace", "rcodes", "latency")},
                "wrong": len(part["wrong"]),
                "events": [f"{a['kind']} {a['site']}" for a in churn.applied if a.get("started") is not None
                           and previous - origin <= a["started"] < ended - origin],
                "cpu": cpu,
            }
            previous = ended
            result.minuteRows.append(row)
            say("  " + minuteLine(row))
        await churn.finish()
        sampler.stop()
        coreProbe.stop()
        result.stalls = [dict({k: v for k, v in stall.items() if k not in ("sent", "ended")},
                              at=round(stall["sent"] - origin, 3)) for stall in coreProbe.stalls]
        walk1 = walker.counters()
        result.walk = {"deltas_sent": walk1[0] - walk0[0], "unsent": walk1[1] - walk0[1],
                       "late_slots": walk1[3] - walk0[3]}
        mergeClassified(correctness, classify(prober.take(), churn.intervals, serviceOf))
        correctness["intervals"] = len(churn.intervals)
        result.correctness = correctness
        result.restarts = result.minuteRows[-1]["restarts"] if result.minuteRows else 0
        result.applied = churn.applied
        for record in result.applied:
            if record.get("started") is not None:
                t = origin + record["started"]
                record["dns_queue_max"] = sampler.queueBetween(t - 1.0, t + 3.0)
        result.problems.extend(churn.problems)
        # Afterwards: every site back UP, on every core at one version.
        try:
            await waitForSites(reactor, appliance, control, list(sites.values()), options.settle_timeout)
            result.finalCheck = "every site UP with a master, every core at one version"
        except BenchError as e:
            result.finalCheck = f"FAILED: {e}"
            result.problems.append(f"after the soak: {e}")
    finally:
        sampler.stop()
        coreProbe.stop()
        walker.stop()
        prober.stopping.set()
        await threads.deferToThread(prober.join, 5.0)
        result.proberErrors = dict(prober.errors)
        if churn is not None:
            await churn.finish()


def seriesOf(rows: Sequence[dict], role: str, key: str) -> List[Tuple[float, float, Optional[int]]]:
    """(minute, value, pid) of one role's per-minute figure."""
    out = []
    for row in rows:
        proc = row["processes"].get(role)
        if proc and proc.get(key) is not None:
            out.append((row["t_min"], proc[key], proc.get("pid")))
    return out


def judge(result: SoakResult, options) -> None:
    """The trend verdicts per process, and the run's verdict."""
    roles = sorted({role for row in result.minuteRows for role in row["processes"]},
                   key=lambda r: (r != "supervisor", r.startswith("bench"), r))
    runMinutes = result.minuteRows[-1]["t_min"] if result.minuteRows else options.minutes
    for role in roles:
        rss = seriesOf(result.minuteRows, role, "rss_kib")
        fds = seriesOf(result.minuteRows, role, "fds_net_min") or seriesOf(result.minuteRows, role, "fds_min")
        # A core respawned mid-run starts a new series: judge its last pid.
        lastPid = rss[-1][2] if rss else None
        trends = {
            "rss": trendVerdict([(x, y) for x, y, pid in rss if pid == lastPid], runMinutes,
                                options.rss_threshold_mib * 1024),
            "fds": trendVerdict([(x, y) for x, y, pid in fds if pid == lastPid], runMinutes, options.fd_threshold),
        }
        if len({pid for _, _, pid in rss}) > 1:
            for t in trends.values():
                t["note"] = "the process was replaced during the run; its last pid is judged"
        if role == "bench":  # the harness itself: reported, not judged
            for t in trends.values():
                t["judged"] = False
        result.trends[role] = trends
    judged = {role: t for role, t in result.trends.items() if role != "bench"}
    result.verdict = overallVerdict(judged, len(result.correctness.get("wrong", ())), result.restarts,
                                    result.problems + ([result.error] if result.error else []))


# ---------------------------------------------------------------------------
# Output.


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000, 3)


def _mib(kib: Optional[float]) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def _kib(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 1024:,.0f}"


def minuteLine(row: dict) -> str:
    procs = row["processes"]
    mem = " ".join(f"{role} {_mib(p.get('rss_kib'))} MiB/{p.get('fds_min')} fds ({p.get('fds_net_min')} net)"
                   for role, p in procs.items() if role != "bench")
    d, p = row["dnsperf"], row["probe"]
    return (f"minute {row['minute']}: {mem}; dnsperf {d['completed']}/{d['sent']} lost {d['lost']}; "
            f"probe {p['answered']}/{p['queries']} wrong {row['wrong']}; restarts {row['restarts']}; "
            f"other CPU {row['cpu']['other']:.0f}%")


def minuteTable(rows: Sequence[dict]) -> str:
    roles = sorted({role for row in rows for role in row["processes"]},
                   key=lambda r: (r != "supervisor", r.startswith("bench"), r))
    headers = ["min"]
    for role in roles:
        headers += [f"{role} RSS MiB", f"{role} fds (net)"]
    headers += ["dnsperf sent", "answered", "lost", "max ms", "DNS queue KiB", "probe answered", "probe p99 ms", "wrong",
                "restarts", "events", "appl CPU%", "other CPU%"]
    table = []
    for row in rows:
        cells = [f"{row['t_min']:.1f}"]
        for role in roles:
            p = row["processes"].get(role) or {}
            fds = "-" if p.get("fds_min") is None else (
                f"{p['fds_min']}" if p.get("fds_min") == p.get("fds_max") else f"{p['fds_min']}-{p['fds_max']}")
            if p.get("fds_net_min") is not None:
                fds += f" ({p['fds_net_min']})"
            cells += [_mib(p.get("rss_kib")), fds]
        d, pr = row["dnsperf"], row["probe"]
        p99 = "-" if not pr.get("latency") else f"{pr['latency']['p99'] * 1000:.1f}"
        queue = (row.get("dns_socket") or {}).get("rx_queue_max")
        latencyMax = "-" if d.get("latency_max_ms") is None else f"{d['latency_max_ms']:.0f}"
        cells += [f"{d['sent']:,}", f"{d['completed']:,}", f"{d['lost']:,}", latencyMax, _kib(queue),
                  f"{pr['answered']}/{pr['queries']}", p99,
                  str(row["wrong"]), str(row["restarts"]), str(len(row["events"])),
                  f"{row['cpu']['appliance']:.0f}", f"{row['cpu']['other']:.0f}"]
        table.append(cells)
    return renderTable(headers, table)


def trendTable(trends: Mapping[str, Mapping[str, dict]]) -> str:
    rows = []
    for role, byKind in trends.items():
        for kind, t in byKind.items():
            unit = "KiB" if kind == "rss" else "fds"
            slope = "-" if t["slope_per_minute"] is None else f"{t['slope_per_minute']:+.2f}"
            growth = "-" if t["growth"] is None else f"{t['growth']:+.1f}"
            threshold = f"< {t['threshold']:g}"
            span = "-" if t["min"] is None else f"{t['min']}..{t['max']}"
            verdict = t["verdict"] if t.get("judged", True) else f"({t['verdict']}, not judged)"
            rows.append([role, kind, f"{t['points']}", f"{slope} {unit}/min", f"{growth} {unit}", f"{threshold} {unit}",
                         span, verdict])
    return renderTable(["process", "series", "points", "slope", "growth / 30 min", "threshold", "range in window",
                        "verdict"], rows)


def report(result: SoakResult, options, info: dict) -> str:
    parts = [f"Machine: {info['nproc']} vCPU {info['cpu_model']}, kernel {info['kernel']}, Python {info['python']}"]
    c = result.correctness or {}
    counts = churnCounts([ChurnEvent(**e) for e in result.churn]) if result.churn else {}
    dialling = (result.sites + 1) // 2
    parts.append(
        f"Soak: {result.cores} cores, {result.sites} MEP sites x {result.services} services ({dialling} dial the "
        f"appliance, {result.sites - dialling} are dialled), {len(vserverSpecs(planSites(result.sites), result.services))} "
        f"vservers; {options.minutes} min at {result.rate or 0:,} q/s")
    if result.capacity:
        cap = result.capacity
        parts.append(f"Capacity (dnsperf saturating {cap['seconds']:g} s): {cap['qps']:,.0f} q/s, lost {cap['lost']}; "
                     f"soak rate {cap['rate']:,} q/s = {options.load:g} x capacity"
                     + (" (given with --rate)" if cap.get("rate_given") else "")
                     + f"; other processes during it: {cap['cpu']['other']:.0f}% of a CPU")
    parts.append(f"Churn script (seed {options.seed}): {len(result.churn)} events {counts}")
    if result.minuteRows:
        parts += ["", minuteTable(result.minuteRows)]
    if result.trends:
        parts += ["", "Trends (least-squares slope over the last 2/3 of the run, extrapolated to 30 min; RSS: the "
                  "minute's median VmRSS; fds: the minute's fewest open fds other than MEP sessions, 'net' in the "
                  "table above):", trendTable(result.trends)]
    total = result.dnsperfTotal
    if total:
        parts.append("")
        parts.append(f"dnsperf over the soak: {total['sent']:,} sent, {total['completed']:,} answered, "
                     f"{total['lost']:,} lost ({total['lost_pct']:.3f} %), rcodes {total['rcodes']}")
    if c:
        late = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(c.get("lateness", {}).items())) or "none"
        parts.append(f"Prober: {c.get('answered', 0):,} of {c.get('queries', 0):,} answered "
                     f"({c.get('unanswered', 0)} unanswered within 1 s), rcodes {c.get('rcodes', {})}; "
                     f"WRONG ANSWERS: {len(c.get('wrong', []))}; in grace: {c.get('in_grace', 0)} "
                     f"(latest after a transition: {late}); {c.get('intervals', 0)} unavailability intervals")
        for w in c.get("wrong", [])[:10]:
            parts.append(f"  wrong: {w}")
        latest = sorted(c.get("grace", []), key=lambda g: -g["received_after"])[:5]
        for g in latest:
            parts.append(f"  in grace: {g['name']} named {g['service']} ({g['kind']}, event {g['event']}, client "
                         f"{g['client'] or '-'}): sent {g['sent_after'] * 1000:+.0f} ms, answered "
                         f"{g['received_after'] * 1000:+.0f} ms after the transition")
        if c.get("latency_max") is not None:
            parts.append(f"  prober latency: worst answer {c['latency_max'] * 1000:.0f} ms")
    seen = slowestSeen(result.applied)
    if seen:
        parts.append("Every core showing a transition (show metrics / resolve --core N polled every 50 ms; worst "
                     "event per kind): " + ", ".join(
                         f"{kind} {'never (within the watch)' if t is None else f'{t * 1000:.0f} ms'}"
                         for kind, t in sorted(seen.items())))
        for a in result.applied:
            grace = GRACE.get("disabled" if a["kind"] == "disable" else a["kind"])
            verdict = watchVerdict(a.get("seen"), grace)
            if grace is None or verdict is None:
                continue
            cores = a.get("seen") or {}
            bounds = {f"core {c}/{v}": f"{lo:.2f}..{'never' if t is None else f'{t:.2f}'}"
                      for c, views in cores.items() for v, t in views.items()
                      if v not in ("after_last_not", "applied", "version")
                      for lo in [views.get("after_last_not", {}).get(v, 0.0)]}
            applied = {f"core {c}": (views.get("applied"), views.get("version")) for c, views in cores.items()}
            parts.append(f"  {verdict}: event {a['index']} {a['kind']} {a['site']} {a.get('service') or ''} at "
                         f"{a.get('started')} s: shown after (s, lower..upper) {bounds}; metrics applied after "
                         f"(s, version) {applied}; DNS socket queue around it up to {_kib(a.get('dns_queue_max'))} KiB")
    if result.minuteRows:
        worst = {}
        for row in result.minuteRows:
            for core, r in (row.get("core_rtt") or {}).items():
                if r:
                    worst[core] = max(worst.get(core, 0.0), r["max"])
        parts.append("Core responsiveness (resolve --core N every 0.2 s through the supervisor): worst round trip "
                     + ", ".join(f"core {c} {t * 1000:.0f} ms" for c, t in sorted(worst.items()))
                     + f"; {len(result.stalls)} calls over 0.5 s")
        for stall in result.stalls[:15]:
            near = [f"{a['index']} {a['kind']} {a['site']} {a.get('service') or ''}".rstrip() for a in result.applied
                    if a.get("started") is not None and stall["at"] - 5.0 <= a["started"] <= stall["at"] + stall["rtt"]]
            parts.append(f"  stall: core {stall['core']} at {stall['at']:.1f} s answered after {stall['rtt']:.2f} s, "
                         f"using {stall['cpu_pct']}% of a CPU meanwhile (states {stall['states'] or '-'}); churn "
                         f"events from 5 s before: {near or 'none'}")
    drops = [a for a in result.applied if a["kind"] in ("session-drop", "site-down") and a.get("reconnect_s") is not None]
    if drops:
        times = sorted(a["reconnect_s"] for a in drops)
        parts.append(f"MEP sessions re-established (site side) after a drop or a site back UP: {len(times)}, "
                     f"median {statistics.median(times):.2f} s, max {times[-1]:.2f} s; never: "
                     f"{sum(1 for a in result.applied if a['kind'] in ('session-drop', 'site-down') and a.get('ended') is not None and a.get('reconnect_s') is None and not a.get('skipped'))}")
    parts.append(f"Core restarts: {result.restarts}; after the run: {result.finalCheck}")
    if result.walk:
        parts.append(f"Walk: {result.walk['deltas_sent']:,} DELTAs sent ({result.walk['unsent']} while a site had "
                     f"no session), {result.walk['late_slots']} slots late")
    for problem in result.problems:
        parts.append(f"PROBLEM: {problem.splitlines()[0]}")
    if result.error:
        parts.append(f"FAILED: {result.error.splitlines()[0]}")
    parts.append(f"VERDICT: {result.verdict}")
    return "\n".join(parts)


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="soak: fixed load, scripted site churn, growth and correctness (see benchmarks/SOAK.md)",
    )
    parser.add_argument("--minutes", type=int, default=30, help="soak length (one dnsperf run per minute)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--sites", type=int, default=8, help="MEP sites: half dial the appliance, half are dialled")
    parser.add_argument("--services", type=int, default=4, help="services per site")
    parser.add_argument("--seed", type=int, default=1, help="the churn script, the walk, the clients")
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity sent (dnsperf -Q)")
    parser.add_argument("--rate", type=int, default=None, help="dnsperf -Q, instead of --load x capacity")
    parser.add_argument("--capacity-seconds", type=float, default=10.0, help="the saturating dnsperf run")
    parser.add_argument("--churn-gap", type=float, default=15.0, help="mean seconds between two churn events")
    parser.add_argument("--probe-rate", type=float, default=100.0, help="prober queries per second")
    parser.add_argument("--probe-clients", type=int, default=63, help="the prober's ECS /24s (plus no ECS)")
    parser.add_argument("--slices", type=int, default=4,
                        help="dnsperf client slices; minute m uses slice m mod N, so a client returns every N min")
    parser.add_argument("--slice-clients", type=int, default=2048, help="ECS /24s per slice")
    parser.add_argument("--no-watch", dest="watch", action="store_false",
                        help="do not poll every core after each transition for when it shows it")
    parser.add_argument("--walk-changes", type=int, default=3, help="metrics moved per site per second")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds between RSS/fd samples")
    parser.add_argument("--rss-threshold-mib", type=float, default=RSS_THRESHOLD_KIB / 1024,
                        help="largest RSS growth per 30 min that passes")
    parser.add_argument("--fd-threshold", type=float, default=FD_THRESHOLD,
                        help="largest fd growth per 30 min that passes")
    parser.add_argument("--quiet-timeout", type=float, default=30.0,
                        help="seconds to wait, before measuring, for other processes to quieten")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--settle-timeout", type=float, default=60.0,
                        help="seconds for the sites to connect and every core to agree (before and after)")
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and logs")
    parser.add_argument("--report", metavar="JSON", help="print the report of a saved run again (runs nothing)")
    options = parser.parse_args(argv)
    for name in ("minutes", "cores", "services", "slices", "slice_clients", "probe_clients"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if options.sites < 2:
        parser.error("--sites must be at least 2 (one of each direction)")
    if not 0 < options.load <= 1:
        parser.error("--load is a fraction of capacity, in (0, 1]")
    if options.probe_rate <= 0 or options.churn_gap <= 0 or options.sample_interval <= 0:
        parser.error("--probe-rate, --churn-gap and --sample-interval must be positive")
    return options


def rerender(path: str) -> str:
    """The report of a saved run (its JSON), rendered by this version of L{report}."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    result = SoakResult(**document["result"])
    options = argparse.Namespace(**document["options"])
    text = report(result, options, document["machine"])
    return text + "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in document["commands"])


async def run(reactor, options, argv: Sequence[str]) -> int:
    if options.report:
        print(rerender(options.report))
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"soak-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(logDir, "sites.log"), "a", encoding="utf-8"))],
        redirectStandardIO=False,
    )
    started = time.time()
    plans = planSites(options.sites)
    plans = [p if p.dials else SitePlan(p.index, p.name, p.ip, False, freePort(p.ip, socket.SOCK_STREAM))
             for p in plans]
    with tempfile.TemporaryDirectory(prefix="gslb-soak-") as workDir:
        appliance = SoakAppliance(reactor, options.cores, plans, options.services, workDir, logDir, "soak")
        result = SoakResult(options.cores, options.sites, options.services, options.minutes,
                            appliance.server.command, topology=os.path.relpath(appliance.topologyPath, REPO))
        siteList = makeFailoverSites(reactor, plans, options.services, options.seed)
        sites = {site.name: site for site in siteList}

        async def body(control, masters):
            result.masters = masters
            await soak(reactor, options, appliance, control, sites, plans, result, logDir, workDir)

        await runCase(reactor, options, appliance, siteList, result, body)
    rows = result.minuteRows
    if rows:
        rcodes: Dict[str, int] = {}
        for row in rows:
            for code, n in row["dnsperf"]["rcodes"].items():
                rcodes[code] = rcodes.get(code, 0) + n
        sent = sum(r["dnsperf"]["sent"] for r in rows)
        lost = sum(r["dnsperf"]["lost"] for r in rows)
        result.dnsperfTotal = {"sent": sent, "completed": sum(r["dnsperf"]["completed"] for r in rows), "lost": lost,
                               "lost_pct": 100.0 * lost / sent if sent else 0.0, "rcodes": rcodes}
    judge(result, options)
    if result.verdict != "PASS" or result.error:
        result.logTail = appliance.server.logTail(80)
    info = machine()
    import twisted

    info["twisted"] = twisted.__version__
    try:
        info["dnsperf"] = dnsperf.dnsperfVersion(dnsperf.findDnsperf())
    except dnsperf.DnsperfMissing:
        info["dnsperf"] = None
    text = report(result, options, info)
    commands = [f"{sys.executable} -m benchmarks.soak {' '.join(argv)}".rstrip(), " ".join(result.serverCommand)]
    text += "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in commands)
    print(text)
    document = {
        "benchmark": "soak",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "revision": sourceRevision(),
        "options": dict(vars(options)),
        "metrics_interval": METRICS_INTERVAL,
        "dead_interval": DEAD_INTERVAL,
        "grace": GRACE,
        "rules": {"per_minutes": PER_MINUTES, "warmup_fraction": WARMUP_FRACTION, "min_points": MIN_TREND_POINTS,
                  "rss_threshold_kib": options.rss_threshold_mib * 1024, "fd_threshold": options.fd_threshold},
        "commands": commands,
        "result": asdict(result),
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    writeResults(options.results, f"soak-{stamp}.json", document)
    return 0 if result.verdict == "PASS" else 1


def main(argv: Optional[Sequence[str]] = None) -> None:
    reactorMain(parseArguments, run, argv)


if __name__ == "__main__":
    main()
