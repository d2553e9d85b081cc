"""
What one decision costs, per load-balancing method, at 10, 100 and 1000
services (issue 4, deliverable 10).  No process, no socket: the decision
engine is pure, so this times its functions directly::

    .venv/bin/python -m benchmarks.decision_cost [--quick] [--sizes 10,100,1000]

Two costs, measured apart:

  plan    C{planVServer(...)} + C{buildChooser(...)} for one vserver and
          record type A: what the core pays for each vserver a metrics
          change (or the ageing timer) re-plans;
  choice  C{chooser.choose(1, clientAddress)}: what the DNS path pays per
          query, over a mix of distinct client addresses drawn from the
          networks of C{fixtures/locations.csv}.  The first pass over the
          mix (I{cold}: every client new to the chooser's caches and to the
          persistence table) and the later passes (I{warm}) are reported
          apart.

Each size is one generated topology (TOML text through
L{gslb_twisted.config.parseTopology}): N IPv4 services, five per site, the
sites at cities of the location file, and one vserver per method binding
every service with weights 1-4.  Every site's metrics are recorded fresh in
a L{gslb_twisted.metrics.MetricTable} with C{recordAsMaster} (connections,
response_time, bandwidth, packets, load from a seeded draw), and so are its
RTT probes to every client network of the mix.  The figures are medians of
C{--repeat} repeats of C{time.perf_counter} loops; JSON goes to
C{benchmarks/results/decision_cost-<timestamp>.json}.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import math
import os
import random
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks import procstat
from benchmarks.dns_qps import OTHER_LOAD_WARNING, machine, renderTable
from benchmarks.propagation import writeResults
from benchmarks.servers import REPO
from gslb_twisted.config import Topology, parseTopology
from gslb_twisted.dns.authority import AnswerBook
from gslb_twisted.lb.choosers import ChoiceContext, buildChooser
from gslb_twisted.lb.clients import RTT_PREFIX_V4, RTT_PREFIX_V6, ClientKeyer
from gslb_twisted.lb.decision import planVServer
from gslb_twisted.lb.locations import LocationDB, greatCircleKm
from gslb_twisted.lb.persistence import PersistenceTable
from gslb_twisted import metrics
from gslb_twisted.metrics import UP, MetricTable

RESULTS = os.path.join(REPO, "benchmarks", "results")
LOCATIONS = os.path.join(REPO, "fixtures", "locations.csv")

SERVICES_PER_SITE = 5
NOW = 1000.0
DEAD_INTERVAL = 3.0
RDTYPE_A = 1
RDTYPE_AAAA = 28


@dataclass(frozen=True)
class Method:
    """
    One column of the issue's list: a vserver's C{lb_method} and its extra
    TOML keys.

    @ivar key: how the report and C{--methods} name it.
    """

    key: str
    lbMethod: str
    extra: Sequence[str] = ()


CUSTOM_LOAD = (
    "custom_load = ["
    '{ metric = "connections", weight = 2, ceiling = 1000 }, '
    '{ metric = "response_time", weight = 1, ceiling = 200 }, '
    '{ metric = "load", weight = 1, ceiling = 100, threshold = 95 }]'
)

METHODS = [
    Method("ROUNDROBIN", "ROUNDROBIN"),
    Method("LEASTCONNECTION", "LEASTCONNECTION"),
    Method("LEASTRESPONSETIME", "LEASTRESPONSETIME"),
    Method("CUSTOMLOAD", "CUSTOMLOAD", (CUSTOM_LOAD,)),
    Method("SOURCEIPHASH", "SOURCEIPHASH"),
    Method("STATICPROXIMITY", "STATICPROXIMITY"),
    Method("RTT", "RTT", ("tolerance = 5",)),
    Method("LEASTCONNECTION+SOURCEIP", "LEASTCONNECTION", ('persistence = "SOURCEIP"',)),
]
METHOD_BY_KEY = {method.key: method for method in METHODS}


def vserverName(method: Method) -> str:
    return method.key.lower().replace("+", "-")


# ---------------------------------------------------------------------------
# The world: clients, topology, metrics.


def cities(db: LocationDB) -> List[tuple[float, float]]:
    """The distinct (lat, lon) of the location file, in file order."""
    seen: Dict[tuple[float, float], None] = {}
    for location in db.locations:
        seen.setdefault((location.lat, location.lon), None)
    return list(seen)


def clientAddresses(db: LocationDB, count: int, rng: random.Random) -> List[str]:
    """
    C{count} distinct client addresses: each a random host of a random
    network of the location file (every network equally likely, so small
    networks are as common as large ones; a few are IPv6).
    """
    networks = [ipaddress.ip_network(location.network) for location in db.locations]
    capacity = sum(min(n.num_addresses, count) for n in networks)
    if capacity < count:
        raise ValueError(f"the location file holds fewer than {count} addresses")
    chosen: Dict[str, None] = {}
    while len(chosen) < count:
        network = rng.choice(networks)
        offset = rng.randrange(network.num_addresses) if network.num_addresses > 1 else 0
        chosen.setdefault(str(network.network_address + offset), None)
    addresses = list(chosen)
    rng.shuffle(addresses)
    return addresses


def siteName(index: int) -> str:
    return f"site-{index:03d}"


def serviceName(index: int) -> str:
    return f"svc-{index:04d}"


def topologyText(size: int, places: Sequence[tuple[float, float]], rng: random.Random,
                 methods: Sequence[Method] = tuple(METHODS)) -> str:
    """
    The TOML of a topology of C{size} services, C{SERVICES_PER_SITE} per
    site, sites at successive cities, and one vserver per method binding
    every service (the same random weights 1-4 in each).
    """
    sites = max(1, math.ceil(size / SERVICES_PER_SITE))
    lines = [
        "# Generated by benchmarks.decision_cost.",
        "[appliance]",
        'name = "bench"',
        'ip = "127.0.9.9"',
        "metrics_interval = 1.0",
        f"dead_interval = {DEAD_INTERVAL!r}",
        "",
        "[[zone]]",
        'name = "bench.gslb"',
        "",
    ]
    for s in range(sites):
        lat, lon = places[s % len(places)]
        lines += [
            "[[site]]",
            f'name = "{siteName(s)}"',
            f'ip = "172.16.{s // 250}.{s % 250 + 1}"',
            f"location = {{ lat = {lat!r}, lon = {lon!r} }}",
            "",
        ]
    for i in range(size):
        lines += [
            "[[service]]",
            f'name = "{serviceName(i)}"',
            f'site = "{siteName(i // SERVICES_PER_SITE)}"',
            f'ip = "10.{i // 65536}.{i // 256 % 256}.{i % 256}"',
            "max_clients = 1000",
            "",
        ]
    weights = [rng.randint(1, 4) for _ in range(size)]
    bindings = ", ".join(f'{{ name = "{serviceName(i)}", weight = {w} }}' for i, w in enumerate(weights))
    for method in methods:
        name = vserverName(method)
        lines += [
            "[[vserver]]",
            f'name = "{name}"',
            f'domains = ["{name}.bench.gslb"]',
            f'lb_method = "{method.lbMethod}"',
            'backup_lb_method = "ROUNDROBIN"',
            *method.extra,
            f"services = [{bindings}]",
            "",
        ]
    return "\n".join(lines)


def serviceMetrics(rng: random.Random) -> dict:
    return {
        "state": UP,
        "connections": rng.randint(0, 1000),
        "response_time": round(rng.uniform(1.0, 200.0), 1),
        "bandwidth": round(rng.uniform(0.0, 100_000.0), 1),
        "packets": rng.randint(0, 100_000),
        "load": round(rng.uniform(0.0, 100.0), 1),
    }


def probeMs(site: tuple[float, float], client: Optional[tuple[float, float]], rng: random.Random) -> float:
    """An emulated RTT: 1 ms per 100 km of great circle, plus 1-10 ms."""
    base = 80.0 if client is None else greatCircleKm(site[0], site[1], client[0], client[1]) / 100.0
    return round(base + rng.uniform(1.0, 10.0), 1)


def metricTable(topology: Topology, db: LocationDB, clients: Sequence[str], rng: random.Random) -> MetricTable:
    """
    Every site UP and fresh at C{NOW}: its services' metrics, and its RTT
    to every client network of the mix (keyed as the RTT chooser keys them).
    """
    keyer = ClientKeyer(RTT_PREFIX_V4, RTT_PREFIX_V6)
    networks: Dict[str, Optional[tuple[float, float]]] = {}
    for address in clients:
        network = keyer.network(keyer.key(address))
        if network not in networks:
            where = db.lookup(address)
            networks[network] = None if where is None else (where.lat, where.lon)
    table = MetricTable(site.name for site in topology.sites)
    bySite: Dict[str, dict] = {site.name: {} for site in topology.sites}
    for service in topology.services:
        bySite[service.site][service.name] = serviceMetrics(rng)
    for site in topology.sites:
        here = (site.location.lat, site.location.lon)
        probes = {network: probeMs(here, where, rng) for network, where in networks.items()}
        table.recordAsMaster(
            site.name, state=UP, rtt=0.02, services=bySite[site.name], replace=True, probes=probes, now=NOW
        )
    return table


# ---------------------------------------------------------------------------
# Timing.


def perCall(function: Callable[[], object], target: float, repeat: int) -> List[float]:
    """
    Seconds per call of C{function}: the loop count is doubled until one
    loop takes C{target} s, then C{repeat} loops are timed.
    """
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            function()
        elapsed = time.perf_counter() - started
        if elapsed >= target or loops >= 1 << 20:
            break
        loops *= 2 if elapsed <= 0 else max(2, min(10, int(target / elapsed) + 1))
    samples = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for _ in range(loops):
            function()
        samples.append((time.perf_counter() - started) / loops)
    return samples


def passOver(choose: Callable[[int, str], int], clients: Sequence[str]) -> float:
    """Seconds per C{choose(1, address)} over one pass of the mix."""
    started = time.perf_counter()
    for address in clients:
        choose(RDTYPE_A, address)
    return (time.perf_counter() - started) / len(clients)


@dataclass
class Counters:
    persisted: int = 0
    probesRequested: int = 0


@dataclass
class Cell:
    """One method at one size.  Times in microseconds (medians of repeats)."""

    method: str
    services: int
    planMethod: str = ""
    fallback: bool = False
    fallbackReason: Optional[str] = None
    answerSets: int = 0
    planUs: float = 0.0
    planOnlyUs: float = 0.0
    planAaaaUs: float = 0.0
    coldUs: float = 0.0
    warmUs: float = 0.0
    planSamplesUs: List[float] = field(default_factory=list)
    coldSamplesUs: List[float] = field(default_factory=list)
    warmSamplesUs: List[float] = field(default_factory=list)
    clientClasses: Optional[int] = None
    persistenceEntries: Optional[int] = None
    probesRequested: int = 0
    answersGiven: int = 0
    seconds: float = 0.0
    otherCpu: Optional[float] = None


def sourceRevision() -> dict:
    """
    The commit measured, and whether the product's code differs from it
    (C{gslb_twisted/} changed but not committed): figures are only
    comparable at one revision.
    """

    def git(*args: str) -> Optional[str]:
        try:
            result = subprocess.run(["git", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    changed = git("status", "--porcelain", "--", "gslb_twisted")
    return {"commit": git("rev-parse", "HEAD"), "product_changed": None if changed is None else bool(changed)}


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


class World:
    """One size: topology, metric table, location DB and client mix."""

    def __init__(self, size: int, db: LocationDB, clients: Sequence[str], seed: int,
                 methods: Sequence[Method]) -> None:
        rng = random.Random(seed * 7919 + size)
        self.size = size
        self.db = db
        self.clients = clients
        self.text = topologyText(size, cities(db), rng, methods)
        self.topology = parseTopology(tomllib.loads(self.text), f"decision_cost-{size}.toml")
        self.table = metricTable(self.topology, db, clients, rng)
        self.addressOf = {service.name: service.ip for service in self.topology.services}

    def context(self, counters: Counters) -> ChoiceContext:
        def persisted() -> None:
            counters.persisted += 1

        def requestProbe(network: str) -> None:
            counters.probesRequested += 1

        table = self.table
        return ChoiceContext(
            locations=self.db,
            persistence=PersistenceTable("bench/0"),
            clock=time.time,  # the core's reactor.seconds
            persisted=persisted,
            requestProbe=requestProbe,
            probes=lambda site: table[site].probes,
        )

    def plan(self, method: Method):
        vserver = self.topology.vserverByName[vserverName(method)]
        return planVServer(vserver, self.topology, self.table, RDTYPE_A, NOW, DEAD_INTERVAL, locations=self.db)

    def measure(self, method: Method, options) -> Cell:
        cell = Cell(method.key, self.size)
        plan = self.plan(method)
        cell.planMethod, cell.fallback, cell.fallbackReason = plan.method, plan.fallback, plan.fallbackReason
        cell.answerSets = len(plan.sets)
        vserver = self.topology.vserverByName[vserverName(method)]
        topology, table, db = self.topology, self.table, self.db

        # (a) the plan: what a metrics change costs, per vserver.
        counters = Counters()
        context = self.context(counters)
        book = AnswerBook(RDTYPE_A, 5, self.addressOf)

        def planAndChooser():
            built = planVServer(vserver, topology, table, RDTYPE_A, NOW, DEAD_INTERVAL, locations=db)
            return buildChooser(built, context, book.indexOf)

        def planOnly():
            return planVServer(vserver, topology, table, RDTYPE_A, NOW, DEAD_INTERVAL, locations=db)

        samples = perCall(planAndChooser, options.plan_target, options.repeat)
        cell.planSamplesUs = [_us(s) for s in samples]
        cell.planUs = _us(statistics.median(samples))
        cell.planOnlyUs = _us(statistics.median(perCall(planOnly, options.plan_target, options.repeat)))

        def planAaaa():
            # The core re-plans AAAA too: no IPv6 service here, so no chooser.
            return planVServer(vserver, topology, table, RDTYPE_AAAA, NOW, DEAD_INTERVAL, locations=db)

        cell.planAaaaUs = _us(statistics.median(perCall(planAaaa, options.plan_target, options.repeat)))

        # (b) the choice per query: a fresh chooser (fresh caches, an empty
        # persistence table) per repeat; the first pass is cold.
        colds, warms = [], []
        for _ in range(options.repeat):
            counters = Counters()
            context = self.context(counters)
            book = AnswerBook(RDTYPE_A, 5, self.addressOf)
            chooser = buildChooser(self.plan(method), context, book.indexOf)
            gc.collect()
            colds.append(passOver(chooser.choose, self.clients))
            passes = [passOver(chooser.choose, self.clients) for _ in range(options.warm_passes)]
            warms.append(statistics.median(passes))
            inner = getattr(chooser, "inner", chooser)
            if hasattr(inner, "_byClass"):
                cell.clientClasses = len(inner._byClass)
            if context.persistence.count():
                cell.persistenceEntries = context.persistence.count()
            cell.probesRequested = counters.probesRequested
            cell.answersGiven = len(book.services)
        cell.coldSamplesUs = [_us(s) for s in colds]
        cell.warmSamplesUs = [_us(s) for s in warms]
        cell.coldUs = _us(statistics.median(colds))
        cell.warmUs = _us(statistics.median(warms))
        return cell


def loopOverhead(clients: Sequence[str], repeat: int) -> float:
    """Microseconds per iteration of the choice loop around a do-nothing chooser."""

    def choose(rdtype: int, address: str) -> int:
        return 0

    return _us(statistics.median(passOver(choose, clients) for _ in range(max(3, repeat))))


# ---------------------------------------------------------------------------
# Report.


def _fmt(us: float) -> str:
    if us >= 1000:
        return f"{us:,.0f}"
    if us >= 100:
        return f"{us:.0f}"
    if us >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def report(cells: Sequence[Cell], sizes: Sequence[int], methods: Sequence[Method], options, overhead: float) -> str:
    byKey = {(c.method, c.services): c for c in cells}
    parts = []
    tables = [
        ("Plan: planVServer + buildChooser, us per vserver re-plan (planVServer alone in brackets)",
         lambda c: f"{_fmt(c.planUs)} ({_fmt(c.planOnlyUs)})"),
        (f"Choice, cold: first pass over {options.clients} new clients, us per choose()",
         lambda c: _fmt(c.coldUs)),
        (f"Choice, warm: later passes (median of {options.warm_passes}), us per choose()",
         lambda c: _fmt(c.warmUs)),
    ]
    headers = ["method"] + [f"{size} services" for size in sizes]
    for title, cellText in tables:
        rows = []
        for method in methods:
            row = [method.key]
            for size in sizes:
                cell = byKey.get((method.key, size))
                row.append("-" if cell is None else cellText(cell))
            rows.append(row)
        parts += [title, renderTable(headers, rows), ""]
    parts.append(
        f"Medians of {options.repeat} repeats; choice figures include {overhead:.2f} us of loop overhead "
        "(a do-nothing chooser in the same loop)."
    )
    aaaa = [c.planAaaaUs for c in cells if c.services == max(sizes)]
    if aaaa:
        parts.append(
            f"A re-plan also plans AAAA (planVServer, no IPv6 service bound): {_fmt(min(aaaa))}-{_fmt(max(aaaa))} us "
            f"at {max(sizes)} services."
        )
    busy = [f"{c.method}@{c.services}" for c in cells if (c.otherCpu or 0) > OTHER_LOAD_WARNING]
    if busy:
        parts.append(
            f"  note: other processes used over {OTHER_LOAD_WARNING}% of a CPU while measuring {len(busy)} of "
            f"{len(cells)} cells ({', '.join(busy[:6])}{', ...' if len(busy) > 6 else ''}): on 2 CPUs they "
            "share caches and memory with this one; see otherCpu in the JSON."
        )
    fallbacks = [c for c in cells if c.fallback]
    for c in fallbacks:
        parts.append(f"  WARNING: {c.method} at {c.services} services fell back to {c.planMethod}: {c.fallbackReason}")
    asked = sorted({c.probesRequested for c in cells if c.probesRequested})
    if asked:
        cap = getattr(metrics, "MAX_PROBES", None)
        parts.append(
            f"  note: RTT asked for {'/'.join(map(str, asked))} RTT probes per cold pass: client networks no site "
            "holds a measurement for, answered by the backup method"
            + (f" (a site keeps at most {cap} networks, gslb_twisted.metrics.MAX_PROBES)." if cap else ".")
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Entry point.


QUICK = {"sizes": "10,100,1000", "clients": 400, "repeat": 1, "warm_passes": 1, "plan_target": 0.002}


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decision_cost",
        description="Per-method decision cost of the GSLB decision engine (see benchmarks/README.md)",
    )
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: %s" % ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    parser.add_argument("--sizes", default=None, help="comma-separated service counts (default 10,100,1000)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated, of: " + ", ".join(METHOD_BY_KEY) + " (default: all)")
    parser.add_argument("--clients", type=int, default=None, help="distinct client addresses (default 10000)")
    parser.add_argument("--repeat", type=int, default=None, help="repeats; medians are reported (default 5)")
    parser.add_argument("--warm-passes", type=int, default=None, help="warm passes per repeat (default 4)")
    parser.add_argument("--plan-target", type=float, default=None,
                        help="seconds each timed plan loop lasts at least (default 0.2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON")
    options = parser.parse_args(argv)
    defaults = {"sizes": "10,100,1000", "clients": 10000, "repeat": 5, "warm_passes": 4, "plan_target": 0.2}
    for name, value in (QUICK if options.quick else defaults).items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    try:
        options.sizeList = [int(part) for part in options.sizes.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {options.sizes!r}")
    if not options.sizeList or min(options.sizeList) < 1:
        parser.error("--sizes: expected positive service counts")
    if options.methods is None:
        options.methodList = list(METHODS)
    else:
        unknown = [m for m in options.methods.split(",") if m.strip() and m.strip() not in METHOD_BY_KEY]
        if unknown:
            parser.error(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHOD_BY_KEY)})")
        wanted = {m.strip() for m in options.methods.split(",")}
        options.methodList = [m for m in METHODS if m.key in wanted]
    for name in ("clients", "repeat", "warm_passes"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return options


def run(options, argv: Sequence[str] = ()) -> dict:
    """Measure every method at every size; print the report; return the JSON document."""
    started = time.time()
    revision = sourceRevision()
    db = LocationDB.fromCSV(LOCATIONS)
    clients = clientAddresses(db, options.clients, random.Random(options.seed))
    cells: List[Cell] = []
    worlds = {}
    for size in options.sizeList:
        print(f"[decision_cost] {size} services: building the topology and metrics", file=sys.stderr, flush=True)
        world = World(size, db, clients, options.seed, options.methodList)
        worlds[size] = world
        for method in options.methodList:
            hostBefore, ownBefore, t0 = procstat.hostCpuTicks(), time.process_time(), time.monotonic()
            cell = world.measure(method, options)
            cell.seconds = round(time.monotonic() - t0, 2)
            busy = procstat.busyPercent(hostBefore, procstat.hostCpuTicks(), cell.seconds)
            own = 100.0 * (time.process_time() - ownBefore) / cell.seconds
            cell.otherCpu = round(max(0.0, busy - own), 1)
            print(f"[decision_cost] {size:>5} {method.key:<26} plan {cell.planUs:>10.1f} us  "
                  f"cold {cell.coldUs:>8.2f} us  warm {cell.warmUs:>6.2f} us", file=sys.stderr, flush=True)
            cells.append(cell)
        del worlds[size]
    overhead = loopOverhead(clients, options.repeat)
    text = report(cells, options.sizeList, options.methodList, options, overhead)
    import twisted

    info = machine()
    info["twisted"] = twisted.__version__
    command = f"{sys.executable} -m benchmarks.decision_cost {' '.join(argv)}".rstrip()
    text += "\n\nCommand (from " + REPO + "):\n  " + command
    revisionAfter = sourceRevision()
    text += f"\nRevision: {revision['commit']}" + (" + uncommitted changes to gslb_twisted/" if revision["product_changed"] else "")
    if revisionAfter != revision:
        text += f"\n  WARNING: the product changed during the run (now {revisionAfter})."
    print(text)
    keyer = ClientKeyer(RTT_PREFIX_V4, RTT_PREFIX_V6)
    return {
        "benchmark": "decision_cost",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "revision": revision,
        "revision_after": revisionAfter,
        "options": {
            "quick": options.quick, "sizes": options.sizeList, "methods": [m.key for m in options.methodList],
            "clients": options.clients, "repeat": options.repeat, "warm_passes": options.warm_passes,
            "plan_target": options.plan_target, "seed": options.seed,
        },
        "command": command,
        "clients": {
            "distinct_addresses": len(clients),
            "ipv6": sum(1 for a in clients if ":" in a),
            "distinct_rtt_networks": len({keyer.key(a) for a in clients}),
            "sample": clients[:10],
        },
        "services_per_site": SERVICES_PER_SITE,
        "loop_overhead_us": overhead,
        "cells": [asdict(cell) for cell in cells],
        "report": text,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parseArguments(argv)
    document = run(options, argv)
    os.makedirs(options.results, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    writeResults(options.results, f"decision_cost-{stamp}.json", document)
    return 1 if any(cell["fallback"] for cell in document["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
