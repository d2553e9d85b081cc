"""
Metric propagation through the appliance: how long a change at a site
takes to reach every core, and how many bytes deltas save over full
snapshots.  One invocation runs every case::

    .venv/bin/python -m benchmarks.propagation [--changes 1000] [--cores 2,4]
        [--sites 100] [--services 20] [--ticks 100]

The benchmark process plays the remote sites itself: real
L{gslb_twisted.mep.session.MEPSession}s in the site role, over TCP from
127.0.1.x to the appliance at 127.0.9.9 (lower address: the sites dial).

  latency  for each --cores value, an appliance with --latency-sites sites;
           --changes times: one DELTA (connections += 1 of one service),
           then C{show consistency} polled over one AMP connection until
           every core holds the master's new (epoch, seq) for that site.
  bytes    an appliance with --sites x --services, a seeded random walk
           for --ticks ticks: MEP bytes of the DELTAs sent vs the SNAPSHOTs
           that would have carried the same states, and the hub messages
           (metrics.delta vs metrics.snapshot) per (cores - 1) recipients.

It prints the tables and writes the figures, the machine and the exact
commands to C{benchmarks/results/propagation-<timestamp>.json}; the
appliance's logs go next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from twisted.internet import defer, task, threads
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.protocols import amp

from benchmarks import procstat
from benchmarks.dns_qps import machine, renderTable
from benchmarks.propagation_sites import APPLIANCE_IP, EmulatedSite, makeSites, topologyToml, walkTick
from benchmarks.servers import REPO, GslbServer, ServerError
from gslb_twisted.metrics import UP, MetricTable
from gslb_twisted.protocol.commands import CoreUnavailable, Deliver, Publish, ShowConsistency, ShowMEP, ShowMetrics, ShowSites

RESULTS = os.path.join(REPO, "benchmarks", "results")
TOPIC_DELTA = "metrics.delta"  # as gslb_twisted.core.gslb publishes them
TOPIC_SNAPSHOT = "metrics.snapshot"


# ---------------------------------------------------------------------------
# Pure parts: statistics, options, reading `show consistency`.


def percentile(values: Sequence[float], p: float) -> float:
    """
    The C{p}-th percentile (0 < p <= 100) by the nearest-rank method: the
    smallest value with at least C{p} % of the values at or below it (so
    p99 of 1000 values is the 990th smallest).

    @raise ValueError: no values, or C{p} out of range.
    """
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is not in (0, 100]")
    ordered = sorted(values)
    rank = -(-len(ordered) * p // 100)  # ceil without float error for integral p
    return ordered[max(1, int(rank)) - 1]


def summarise(values: Sequence[float]) -> Optional[dict]:
    """n, p50, p99, mean, min, max of C{values} (None when empty)."""
    if not values:
        return None
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def parseCores(text: str) -> List[int]:
    """
    C{--cores}: a comma-separated list of core counts, e.g. C{"2,4"}.

    @raise ValueError: empty, not an integer, below 1, or repeated.
    """
    cores = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = int(part)
        if value < 1:
            raise ValueError(f"a core count must be at least 1, not {value}")
        if value in cores:
            raise ValueError(f"core count {value} given twice")
        cores.append(value)
    if not cores:
        raise ValueError("no core count given")
    return cores


def siteVersions(consistency: dict, site: str) -> Dict[str, Optional[Tuple[int, int]]]:
    """
    From a C{show consistency} result, the (epoch, seq) each core holds for
    C{site}, by core id (as a string, as the result gives it).
    """
    for row in consistency.get("sites", ()):
        if row.get("site") == site:
            return {core: (tuple(v) if v else None) for core, v in row.get("versions", {}).items()}
    return {}


def agreedVersion(versions: Dict[str, Optional[Tuple[int, int]]], cores: int) -> Optional[Tuple[int, int]]:
    """
    The version every one of C{cores} cores holds, or None when a core is
    missing from the answer or two cores differ.
    """
    held = set(versions.values())
    if len(versions) != cores or len(held) != 1:
        return None
    (version,) = held
    return version


def ampBoxSize(command, **arguments) -> int:
    """
    The bytes of one AMP box of C{command} as it goes over the supervisor's
    pipes (no answer asked, as C{Publish} and C{Deliver} are sent).
    """
    box = command.makeArguments(arguments, None)
    box[b"_command"] = command.commandName
    return len(box.serialize())


def hubCost(message: dict, topic: str, cores: int, sender: int = 0) -> Tuple[int, int]:
    """
    What one message published by a master costs on the hub: (JSON body
    bytes x (cores - 1) recipients, AMP bytes on the pipes: one C{Publish}
    to the supervisor plus one C{Deliver} to each other core).
    """
    body = json.dumps(message).encode()  # as CoreGSLB encodes it
    recipients = max(0, cores - 1)
    wire = ampBoxSize(Publish, topic=topic, body=body, target=None) if recipients else 0
    wire += recipients * ampBoxSize(Deliver, sender=sender, topic=topic, body=body)
    return len(body) * recipients, wire


# ---------------------------------------------------------------------------
# Results.


@dataclass
class LatencyResult:
    cores: int
    sites: int
    services: int
    changes: int
    serverCommand: List[str]
    topology: str = ""
    latency: Optional[dict] = None  # seconds: first poll seeing all cores agree, minus send
    latencyLow: Optional[dict] = None  # seconds: start of the last poll that did not, minus send
    # seconds: the last core's own time of taking the new version (show
    # metrics' applied_monotonic) minus send, on the machine's monotonic clock.
    latencyExact: Optional[dict] = None
    latencyExactByCore: Dict[str, dict] = field(default_factory=dict)
    pollRtt: Optional[dict] = None
    polls: int = 0
    pollsPerChange: Optional[float] = None
    discarded: Dict[str, int] = field(default_factory=dict)
    timeouts: List[dict] = field(default_factory=list)
    masters: Dict[str, Optional[int]] = field(default_factory=dict)
    latencyByCore: Dict[str, dict] = field(default_factory=dict)
    valueMismatches: List[str] = field(default_factory=list)
    siteLosses: Dict[str, List[str]] = field(default_factory=dict)
    setupRefusals: int = 0
    resyncs: int = 0
    setupSeconds: Optional[float] = None
    wallSeconds: Optional[float] = None
    cpuPercent: Dict[str, float] = field(default_factory=dict)
    hostBusy: Optional[float] = None
    benchCpu: Optional[float] = None
    otherCpu: Optional[float] = None
    backgroundCpu: Optional[float] = None
    note: str = ""
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None


@dataclass
class BytesResult:
    cores: int
    sites: int
    services: int
    ticks: int
    changesPerTick: int
    tickInterval: float
    seed: int
    serverCommand: List[str]
    topology: str = ""
    mep: Dict[str, int] = field(default_factory=dict)
    hub: Dict[str, Dict[str, int]] = field(default_factory=dict)
    applianceBytesIn: Optional[int] = None
    sitesBytesOutLive: Optional[int] = None
    valueMismatches: List[str] = field(default_factory=list)
    siteLosses: Dict[str, List[str]] = field(default_factory=dict)
    setupRefusals: int = 0
    resyncs: int = 0
    masters: Dict[str, int] = field(default_factory=dict)
    setupSeconds: Optional[float] = None
    wallSeconds: Optional[float] = None
    cpuPercent: Dict[str, float] = field(default_factory=dict)
    hostBusy: Optional[float] = None
    benchCpu: Optional[float] = None
    otherCpu: Optional[float] = None
    backgroundCpu: Optional[float] = None
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None


class BenchError(Exception):
    """The appliance misbehaved: the message says how."""


# ---------------------------------------------------------------------------
# Talking to the appliance.


class Control:
    """
    One persistent AMP connection to the appliance's control endpoint, with
    the round-trip time of every C{show consistency}.
    """

    def __init__(self, protocol: amp.AMP) -> None:
        self.protocol = protocol
        self.rtts: List[float] = []

    @classmethod
    async def connect(cls, reactor, path: str) -> "Control":
        protocol = await connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5), amp.AMP())
        return cls(protocol)

    async def consistency(self) -> Tuple[dict, float, float]:
        """@return: (the result, when the call was sent, when it answered)."""
        started = time.perf_counter()
        response = await self.protocol.callRemote(ShowConsistency)
        ended = time.perf_counter()
        self.rtts.append(ended - started)
        return response["result"], started, ended

    async def sites(self) -> List[dict]:
        return (await self.protocol.callRemote(ShowSites))["rows"]

    async def mep(self) -> List[dict]:
        return (await self.protocol.callRemote(ShowMEP))["rows"]

    async def metrics(self, site: str, core: int) -> dict:
        return (await self.protocol.callRemote(ShowMetrics, site=site, core=core))["result"]

    def close(self) -> None:
        self.protocol.transport.loseConnection()


def sleep(reactor, seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, max(0.0, seconds), lambda: None)


def freePort(host: str, kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Appliance:
    """
    One run of the appliance with a generated topology: started in a
    thread (the harness's helpers block), with its own control socket, DNS
    port and log.
    """

    def __init__(self, reactor, cores: int, sites: int, services: int, workDir: str, logDir: str,
                 label: str, metricsInterval: float, deadInterval: float) -> None:
        self.reactor = reactor
        self.mepPort = freePort(APPLIANCE_IP, socket.SOCK_STREAM)
        self.dnsPort = freePort("127.0.0.1", socket.SOCK_DGRAM)
        self.topologyPath = os.path.join(logDir, f"{label}.toml")
        with open(self.topologyPath, "w", encoding="utf-8") as f:
            f.write(topologyToml(sites, services, self.mepPort, metricsInterval, deadInterval))
        self.controlPath = os.path.join(workDir, f"{label}.ctl")
        self.server = GslbServer.build(
            self.dnsPort, cores, None, f"unix:{self.controlPath}", os.path.join(logDir, f"{label}.log"),
            config=os.path.relpath(self.topologyPath, REPO),
        )
        self.cores = cores

    async def start(self, readyTimeout: float) -> float:
        await threads.deferToThread(self.server.start)
        return await threads.deferToThread(self.server.waitReady, readyTimeout)

    async def stop(self) -> List[str]:
        return await threads.deferToThread(self.server.stop)

    def crashed(self) -> Optional[str]:
        process = self.server.process
        if process is not None and process.poll() is not None:
            return (f"the appliance exited with status {process.returncode} (log: {self.server.logPath}); "
                    f"last lines:\n{self.server.logTail(30)}")
        return None


async def _settledMasters(control: Control, cores: int, names: set):
    """The master core of each site once all are UP at one version on every core, else why not (str)."""
    rows = {row["name"]: row for row in await control.sites() if row["name"] in names}
    down = [name for name in sorted(names) if rows.get(name, {}).get("state") != UP
            or rows.get(name, {}).get("master_core") is None]
    if down:
        return f"{len(down)} site(s) not UP with a master on the appliance (e.g. {down[0]}: {rows.get(down[0])})"
    result, _, _ = await control.consistency()
    disagree = [name for name in sorted(names) if agreedVersion(siteVersions(result, name), cores) is None]
    if not disagree:
        return {name: rows[name]["master_core"] for name in sorted(names)}
    return (f"{len(disagree)} site(s) not at one version on all {cores} cores "
            f"(e.g. {disagree[0]}: {siteVersions(result, disagree[0])})")


async def waitForSites(reactor, appliance: Appliance, control: Control, sites: Sequence[EmulatedSite],
                       deadline: float) -> Dict[str, int]:
    """
    Wait until every site has an established session, the appliance shows
    it UP with a master, and every core holds the same version of it.

    @return: the master core of each site.
    @raise BenchError: not within C{deadline} seconds.
    """
    started = time.monotonic()
    names = {site.name for site in sites}
    last = "no answer yet"
    while time.monotonic() - started < deadline:
        crash = appliance.crashed()
        if crash:
            raise BenchError(crash)
        pending = [site.name for site in sites if not site.established]
        if pending:
            last = f"{len(pending)} site(s) without an established MEP session (e.g. {pending[0]})"
        else:
            try:
                settled = await _settledMasters(control, appliance.cores, names)
            except CoreUnavailable as e:
                # Cores busy taking a thousand sites on may outlast a show
                # command's timeout: ask again, within the deadline.
                last = f"the appliance did not answer: {e}"
                settled = None
            if isinstance(settled, dict):
                return settled
            if settled is not None:
                last = settled
        await sleep(reactor, 0.2)
    raise BenchError(f"the sites did not settle within {deadline:.0f} s: {last}")


async def checkValues(control: Control, sites: Sequence[EmulatedSite], cores: int) -> List[str]:
    """
    Every core's metrics of every site against what the site last sent.

    @return: the differences found (empty: all cores hold the sites' values).
    """
    mismatches = []
    for site in sites:
        for core in range(cores):
            held = await control.metrics(site.name, core)
            services = {row["name"]: row for row in held.get("services", ())}
            for name, metrics in site.services.items():
                row = services.get(name)
                if row is None:
                    mismatches.append(f"core {core} lacks {name}")
                    continue
                for metric, value in metrics.items():
                    if row.get(metric) != value:
                        mismatches.append(f"core {core}: {name} {metric} = {row.get(metric)!r}, site sent {value!r}")
    return mismatches


async def waitConsistent(reactor, control: Control, sites: Sequence[EmulatedSite], cores: int,
                         deadline: float = 10.0) -> bool:
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        result, _, _ = await control.consistency()
        if all(agreedVersion(siteVersions(result, site.name), cores) is not None for site in sites):
            return True
        await sleep(reactor, 0.05)
    return False


def cpuSample(appliance: Appliance):
    pids = appliance.server.pids()
    own = os.times()
    return (procstat.sampleCpu(pids), procstat.hostCpuTicks(), own.user + own.system, time.monotonic())


def recordCpu(result, before, after) -> None:
    """
    The appliance's CPU (per process), the benchmark process's own, the
    whole machine's, and the rest ("other": processes that are neither),
    in percent of one CPU, between two L{cpuSample}s.
    """
    (cpuBefore, hostBefore, ownBefore, t0), (cpuAfter, hostAfter, ownAfter, t1) = before, after
    seconds = t1 - t0
    usage = procstat.cpuPercent(cpuBefore, cpuAfter, seconds)
    result.cpuPercent = {f"pid {pid}": round(p, 1) for pid, p in sorted(usage.items())}
    result.hostBusy = round(procstat.busyPercent(hostBefore, hostAfter, seconds), 1)
    result.benchCpu = round(100.0 * (ownAfter - ownBefore) / seconds, 1) if seconds > 0 else None
    result.otherCpu = round(max(0.0, result.hostBusy - sum(usage.values()) - (result.benchCpu or 0)), 1)


QUIET_BELOW = 10.0


class _Probe:
    cpuPercent = hostBusy = benchCpu = otherCpu = None


async def waitQuiet(reactor, appliance: Appliance, timeout: float) -> float:
    """
    Wait (up to C{timeout} s) until processes other than the appliance and
    this one use under C{QUIET_BELOW} % of one CPU, so other people's test
    runs do not skew the figures.

    @return: the last such load measured, in percent of one CPU.
    """
    deadline = time.monotonic() + timeout
    said = False
    probe = _Probe()
    while True:
        before = cpuSample(appliance)
        await sleep(reactor, 1.0)
        recordCpu(probe, before, cpuSample(appliance))
        busy = probe.otherCpu
        if busy < QUIET_BELOW or time.monotonic() > deadline:
            if busy >= QUIET_BELOW:
                say(f"  the machine is still busy ({busy:.0f}% of a CPU); measuring anyway")
            return round(busy, 1)
        if not said:
            say(f"  waiting for other processes to quieten ({busy:.0f}% of a CPU busy)")
            said = True


# ---------------------------------------------------------------------------
# The latency case.


async def measureLatency(reactor, options, control: Control, sites: Sequence[EmulatedSite],
                         masters: Dict[str, int], result: LatencyResult) -> None:
    """
    C{options.changes} timed changes, round-robin over the sites (and so
    over their master cores), each waited for before the next.

    A change counts only if nothing else moved the site's version while it
    was in flight: the appliance records each keepalive's RTT as a change
    too, so a change during which the site answered a keepalive (or sent
    within C{--guard} seconds before) is discarded and redone, and counted
    in C{discarded}.
    """
    cores = result.cores
    high, low, byCore = [], [], {}
    exact, exactByCore = [], {}
    discarded: Dict[str, int] = {}
    rtts0 = len(control.rtts)
    attempt = 0
    while len(high) < options.changes:
        attempt += 1
        if attempt > 3 * options.changes + 100:
            raise BenchError(f"too many discarded changes: {discarded}")
        site = sites[attempt % len(sites)]
        session = site.session
        if session is None or session.state != "established":
            raise BenchError(f"{site.name} lost its MEP session ({site.losses[-1:] or 'no reason'})")
        services = sorted(site.services)
        service = services[(attempt // len(sites)) % len(services)]
        windowStart = time.perf_counter()
        baseline, _, _ = await control.consistency()
        before = agreedVersion(siteVersions(baseline, site.name), cores)
        if before is None:
            discarded["cores disagreed before the change"] = discarded.get("cores disagreed before the change", 0) + 1
            await sleep(reactor, options.gap)
            continue
        t0 = time.perf_counter()
        t0Monotonic = time.monotonic()
        site.change({service: {"connections": site.services[service]["connections"] + 1}})
        lastMiss = None
        while True:
            current, started, ended = await control.consistency()
            now = agreedVersion(siteVersions(current, site.name), cores)
            if now is not None and now > before:
                break
            lastMiss = started
            if ended - t0 > options.timeout:
                result.timeouts.append({"site": site.name, "before": before,
                                        "versions": siteVersions(current, site.name)})
                raise BenchError(
                    f"change {len(high) + 1}: the cores did not agree on a new version of {site.name} within "
                    f"{options.timeout:g} s (before: {before}; now: {siteVersions(current, site.name)})"
                )
        answered = session.lastAnswerAt
        reason = None
        if answered is not None and answered >= windowStart - options.guard:
            reason = "the site answered a keepalive meanwhile (RTT update)"
        elif now[0] != before[0]:
            reason = "the site's epoch changed (new master)"
        elif now[1] != before[1] + 1:
            reason = "the version moved by more than one change"
        applied = []
        if not reason:
            # Each core's own time of taking the version: the exact figure
            # the polls above only bracket.
            views = await defer.gatherResults(
                [defer.ensureDeferred(control.metrics(site.name, core)) for core in range(cores)], consumeErrors=True)
            if any((view.get("epoch"), view.get("seq")) != tuple(now) for view in views):
                reason = "the version moved again before each core's time was read"
            elif any(view.get("applied_monotonic") is None for view in views):
                reason = "a core did not say when it took the version"
            else:
                applied = [view["applied_monotonic"] for view in views]
        if reason:
            discarded[reason] = discarded.get(reason, 0) + 1
        else:
            high.append(ended - t0)
            low.append(0.0 if lastMiss is None else max(0.0, lastMiss - t0))
            byCore.setdefault(str(masters.get(site.name)), []).append(ended - t0)
            exact.append(max(applied) - t0Monotonic)
            exactByCore.setdefault(str(masters.get(site.name)), []).append(exact[-1])
        await sleep(reactor, options.gap)
    rtts = control.rtts[rtts0:]
    result.latency = summarise(high)
    result.latencyLow = summarise(low)
    result.latencyExact = summarise(exact)
    result.latencyExactByCore = {core: summarise(values) for core, values in sorted(exactByCore.items())}
    result.pollRtt = summarise(rtts)
    result.polls = len(rtts)
    result.pollsPerChange = round(len(rtts) / max(1, attempt), 2)
    result.discarded = discarded
    result.latencyByCore = {core: summarise(values) for core, values in sorted(byCore.items())}


async def runLatency(reactor, options, cores: int, workDir: str, logDir: str) -> LatencyResult:
    appliance = Appliance(reactor, cores, options.latency_sites, options.latency_services, workDir, logDir,
                          f"latency-{cores}cores", 1.0, 3.0)
    result = LatencyResult(cores, options.latency_sites, options.latency_services, options.changes,
                           appliance.server.command, topology=os.path.relpath(appliance.topologyPath, REPO))
    nproc = os.cpu_count() or 1
    if cores > nproc:
        result.note = f"{cores} cores on {nproc} vCPUs: the cores share CPUs"
    sites = makeSites(reactor, options.latency_sites, options.latency_services, options.seed)
    await runCase(reactor, options, appliance, sites, result, lambda control, masters: _latency(
        reactor, options, appliance, control, sites, masters, result))
    return result


async def _latency(reactor, options, appliance, control, sites, masters, result) -> None:
    result.masters = masters
    before = cpuSample(appliance)
    started = time.monotonic()
    await measureLatency(reactor, options, control, sites, masters, result)
    result.wallSeconds = round(time.monotonic() - started, 2)
    recordCpu(result, before, cpuSample(appliance))
    if not await waitConsistent(reactor, control, sites, result.cores):
        result.problems.append("the cores did not agree on every site's version after the changes")
    result.valueMismatches = await checkValues(control, sites, result.cores)


async def runCase(reactor, options, appliance: Appliance, sites: Sequence[EmulatedSite], result, body) -> None:
    """
    Start the appliance, connect the sites and the control client, wait
    until they settle, run C{body(control, masters)}, and take everything
    down again, recording what went wrong in C{result}.
    """
    control = marks = None
    say(f"[{type(result).__name__[:-6].lower()} {result.cores} cores] starting: "
        f"{' '.join(appliance.server.command)}")
    started = time.monotonic()
    try:
        await appliance.start(options.ready_timeout)
        for site in sites:
            site.connect(appliance.mepPort, 1.0, 3.0, options.seed + site.index)
        control = await Control.connect(reactor, appliance.controlPath)
        masters = await waitForSites(reactor, appliance, control, sites, options.settle_timeout)
        result.setupSeconds = round(time.monotonic() - started, 2)
        say(f"  {len(sites)} sites up after {result.setupSeconds:.1f} s; masters by core: {countMasters(masters)}")
        result.backgroundCpu = await waitQuiet(reactor, appliance, options.quiet_timeout)
        # Sessions the hub refused while spreading the sites are expected;
        # a session lost from here on is not.
        result.setupRefusals = sum(len(site.losses) for site in sites)
        marks = {site.name: len(site.losses) for site in sites}
        await body(control, masters)
    except (BenchError, ServerError) as e:
        result.error = str(e)
    except Exception as e:  # an unexpected failure of the harness itself: report, still clean up
        result.error = f"{type(e).__name__}: {e}"
        import traceback
        traceback.print_exc()
    finally:
        if marks is not None:
            result.siteLosses = {site.name: site.losses[marks[site.name]:] for site in sites
                                 if site.losses[marks[site.name]:]}
        crash = appliance.crashed()
        if crash and (result.error is None or crash not in result.error):
            result.problems.append(crash)
        if control is not None:
            control.close()
        stopping = [site.disconnect() for site in sites]
        await defer.gatherResults([d for d in stopping if d is not None], consumeErrors=True)
        result.problems.extend(await appliance.stop())
        result.resyncs = sum(site.resyncs for site in sites)
    if result.error:
        say(f"  FAILED: {result.error}")


def countMasters(masters: Dict[str, Optional[int]]) -> Dict[int, int]:
    counts: Dict[int, int] = {}
    for core in masters.values():
        counts[core] = counts.get(core, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (item[0] is None, item[0])))


# ---------------------------------------------------------------------------
# The bytes case.


def hubBytesOfWalk(sites: Sequence[Tuple[str, dict]], ticks: Sequence[Sequence[dict]],
                   coreCounts: Sequence[int]) -> Dict[str, Dict[str, int]]:
    """
    The hub traffic of a walk, computed with the appliance's own
    L{MetricTable}: for every change the master records, the
    C{metrics.delta} message it publishes, against the C{metrics.snapshot}
    of the same site at that moment.

    @param sites: (name, initial services) of each site.
    @param ticks: per tick, per site (in the order of C{sites}), the
        changes of that tick.
    @return: per core count, {delta_json, snapshot_json, delta_amp,
        snapshot_amp, messages}.
    """
    table = MetricTable(name for name, _ in sites)
    now = 1_800_000_000.0
    for name, services in sites:
        table.beginEpoch(name, 1)
        table.recordAsMaster(name, state=UP, rtt=0.000183, services=services, replace=True, now=now)
    totals = {str(c): dict(delta_json=0, snapshot_json=0, delta_amp=0, snapshot_amp=0, messages=0)
              for c in coreCounts}
    for tick in ticks:
        now += 1.0
        for (name, _), changes in zip(sites, tick):
            delta = table.recordAsMaster(name, services=changes, now=now)
            if delta is None:
                continue
            snapshot = table[name].snapshot()
            for cores in coreCounts:
                row = totals[str(cores)]
                deltaJson, deltaAmp = hubCost(delta, TOPIC_DELTA, cores)
                snapJson, snapAmp = hubCost(snapshot, TOPIC_SNAPSHOT, cores)
                row["delta_json"] += deltaJson
                row["delta_amp"] += deltaAmp
                row["snapshot_json"] += snapJson
                row["snapshot_amp"] += snapAmp
                row["messages"] += 1
    return totals


async def runBytes(reactor, options, workDir: str, logDir: str) -> BytesResult:
    cores = max(options.cores)
    appliance = Appliance(reactor, cores, options.sites, options.services, workDir, logDir,
                          f"bytes-{cores}cores", 1.0, 3.0)
    result = BytesResult(cores, options.sites, options.services, options.ticks, options.walk_changes,
                         options.tick, options.seed, appliance.server.command,
                         topology=os.path.relpath(appliance.topologyPath, REPO))
    sites = makeSites(reactor, options.sites, options.services, options.seed)

    async def body(control, masters):
        result.masters = countMasters(masters)
        initial = [(site.name, json.loads(json.dumps(site.services))) for site in sites]
        rng = random.Random(options.seed)
        walk: List[List[dict]] = []
        bytesBefore = sum(site.bytesOut() for site in sites)
        framesBefore = sum(site.framesOut() for site in sites)
        snapshotsBefore = sum(site.snapshotsSent for site in sites)
        deltaBytes = snapshotBytes = unsent = 0
        before = cpuSample(appliance)
        started = time.monotonic()
        for tick in range(options.ticks):
            tickStart = time.monotonic()
            changesOfTick = []
            for site in sites:
                changes = walkTick(rng, site.services, options.walk_changes)
                changesOfTick.append(changes)
                sent = site.change(changes)
                if not sent:
                    unsent += 1
                deltaBytes += sent
                snapshotBytes += site.snapshotFrameSize()
            walk.append(changesOfTick)
            await sleep(reactor, options.tick - (time.monotonic() - tickStart))
        result.wallSeconds = round(time.monotonic() - started, 2)
        recordCpu(result, before, cpuSample(appliance))
        if not await waitConsistent(reactor, control, sites, cores, 20.0):
            result.problems.append("the cores did not agree on every site's version after the walk")
        bytesAfter = sum(site.bytesOut() for site in sites)
        framesAfter = sum(site.framesOut() for site in sites)
        result.mep = {
            "delta_frames": options.ticks * len(sites) - unsent,
            "delta_bytes": deltaBytes,
            "snapshot_equivalent_bytes": snapshotBytes,
            "all_frames_bytes": bytesAfter - bytesBefore,
            "all_frames": framesAfter - framesBefore,
            "changes_not_sent": unsent,
            "extra_snapshots_sent": sum(site.snapshotsSent for site in sites) - snapshotsBefore,
        }
        result.hub = hubBytesOfWalk(initial, walk, options.cores)
        # The appliance's count of the live sessions' bytes, against ours.
        await sleep(reactor, 0.2)
        rows = [row for row in await control.mep() if row.get("state") == "established"]
        result.applianceBytesIn = sum(row.get("bytes_in") or 0 for row in rows)
        result.sitesBytesOutLive = sum(site.session.bytesOut for site in sites if site.session is not None)
        result.valueMismatches = await checkValues(control, sites, cores)

    await runCase(reactor, options, appliance, sites, result, body)
    return result


# ---------------------------------------------------------------------------
# Output.


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _ratio(a: float, b: float) -> str:
    return "-" if not a else f"{b / a:.1f}x"


def _kib(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def cpuLine(r) -> str:
    text = (f"CPU% (100 = one CPU): appliance {sum(r.cpuPercent.values()):.0f}, benchmark process "
            f"{r.benchCpu:.0f}, other processes {r.otherCpu:.0f}")
    if (r.otherCpu or 0) > QUIET_BELOW:
        text += " - WARNING: the machine was busy with other work"
    return text


def report(latencies: Sequence[LatencyResult], volume: Optional[BytesResult], options, info: dict) -> str:
    parts = []
    parts.append(
        f"Machine: {info['nproc']} vCPU {info['cpu_model']}, kernel {info['kernel']}, Python {info['python']}"
    )
    if latencies:
        parts.append("")
        first = latencies[0]
        parts.append(
            f"Propagation latency: {first.sites} sites x {first.services} services, one DELTA at a time "
            f"(connections += 1), metrics_interval 1.0 s; exact = the last core's own time of taking the "
            f"master's new (epoch, seq) - send time; poll = first `show consistency` answer with every core there"
        )
        rows = []
        for r in latencies:
            l, lo, poll = r.latency or {}, r.latencyLow or {}, r.pollRtt or {}
            x = r.latencyExact or {}
            rows.append([
                str(r.cores), str(l.get("n", 0)) if l else ("FAILED" if r.error else "-"),
                _ms(x.get("p50")), _ms(x.get("p99")), _ms(x.get("max")),
                _ms(l.get("p50")), _ms(l.get("p99")), _ms(l.get("mean")), _ms(l.get("max")),
                _ms(lo.get("p50")), _ms(poll.get("p50")), _ms(poll.get("p99")),
                "-" if r.pollsPerChange is None else f"{r.pollsPerChange:.1f}",
                str(sum(r.discarded.values())),
                "/".join(str(n) for n in countMasters(r.masters).values()) or "-",
            ])
        parts.append(renderTable(
            ["cores", "changes", "exact p50 ms", "exact p99 ms", "exact max ms",
             "poll p50 ms", "poll p99 ms", "poll mean ms", "poll max ms", "low p50 ms",
             "poll rtt p50", "poll rtt p99", "polls/change", "discarded", "sites per core"], rows))
        parts.append(
            "  exact: every core notes when it takes a version (time.monotonic, one clock for the machine) and\n"
            "  `show metrics` says it. poll: resolution one poll round trip (poll rtt: supervisor asks every core);\n"
            "  'low' is the start of the\n"
            "  last poll that still saw a core behind (a lower bound). Polling itself loads the cores.\n"
            "  discarded: changes redone because the site answered a keepalive (RTT is recorded as a change)."
        )
        for r in latencies:
            if r.note:
                parts.append(f"  note: {r.note}.")
            if r.latencyByCore:
                byCore = ", ".join(f"core {core}: p50 {_ms(s['p50'])} p99 {_ms(s['p99'])}"
                                   for core, s in r.latencyByCore.items() if s)
                parts.append(f"  {r.cores} cores, by master core: {byCore}")
            if r.cpuPercent:
                parts.append(f"  {r.cores} cores: {r.wallSeconds:.1f} s; {cpuLine(r)}; "
                             f"{r.setupRefusals} site sessions refused while the hub spread the sites")
    if volume is not None:
        parts.append("")
        parts.append(
            f"Bytes: {volume.sites} sites x {volume.services} services, {volume.ticks} ticks every "
            f"{volume.tickInterval:g} s, {volume.changesPerTick} metrics changed per site per tick "
            f"(seed {volume.seed}), appliance with {volume.cores} cores"
        )
        if volume.mep:
            m = volume.mep
            rows = [
                ["MEP site -> appliance", "DELTA frames sent", _kib(m["delta_bytes"]),
                 "SNAPSHOT every tick", _kib(m["snapshot_equivalent_bytes"]),
                 _ratio(m["delta_bytes"], m["snapshot_equivalent_bytes"])],
            ]
            for cores, h in volume.hub.items():
                rows.append([f"hub, {cores} cores (x{int(cores) - 1})", "metrics.delta JSON", _kib(h["delta_json"]),
                             "metrics.snapshot JSON", _kib(h["snapshot_json"]),
                             _ratio(h["delta_json"], h["snapshot_json"])])
                rows.append([f"hub, {cores} cores, AMP", "Publish + Deliver", _kib(h["delta_amp"]),
                             "Publish + Deliver", _kib(h["snapshot_amp"]),
                             _ratio(h["delta_amp"], h["snapshot_amp"])])
            parts.append(renderTable(["path", "deltas", "KiB", "full snapshots", "KiB", "snapshots/deltas"], rows))
            frames = m["delta_frames"]
            parts.append(
                f"  MEP: {frames} DELTA frames, {m['delta_bytes'] / max(1, frames):.0f} B each on average; a SNAPSHOT "
                f"of {volume.services} services is {m['snapshot_equivalent_bytes'] / max(1, frames):.0f} B. "
                f"All frames the sites sent during the walk\n"
                f"  (keepalives and echoes included): {_kib(m['all_frames_bytes'])} KiB in {m['all_frames']} frames; "
                f"appliance counted {_kib(volume.applianceBytesIn)} KiB in on the live sessions, the sites "
                f"{_kib(volume.sitesBytesOutLive)} KiB out."
            )
            parts.append(
                "  Hub: computed in-process with gslb_twisted.metrics.MetricTable over the same walk (the messages "
                "CoreGSLB publishes,\n  json.dumps as it does), times (cores - 1) recipients; the AMP row adds the "
                "core->supervisor Publish and box framing.\n  The live appliance also publishes one delta per "
                "keepalive RTT per site; those are not in these figures."
            )
            parts.append(f"  masters by core: {volume.masters}; walk {volume.wallSeconds:.1f} s; {cpuLine(volume)}")
    failures = [r for r in list(latencies) + ([volume] if volume else [])
                if r.error or r.problems or r.valueMismatches or r.siteLosses]
    if failures:
        parts.append("")
        for r in failures:
            label = f"{type(r).__name__[:-6].lower()} {r.cores} cores"
            if r.error:
                parts.append(f"  {label}: FAILED: {r.error.splitlines()[0]}")
            for problem in r.problems:
                parts.append(f"  {label}: PROBLEM: {problem.splitlines()[0]}")
            if r.valueMismatches:
                parts.append(f"  {label}: {len(r.valueMismatches)} metric values differ from what the sites sent, "
                             f"e.g. {r.valueMismatches[0]}")
            if r.siteLosses:
                reasons: Dict[str, int] = {}
                for lost in r.siteLosses.values():
                    for reason in lost:
                        reasons[reason] = reasons.get(reason, 0) + 1
                parts.append(f"  {label}: PROBLEM: {sum(reasons.values())} site sessions lost during the "
                             f"measurement, at {len(r.siteLosses)} sites: {reasons} (the appliance's log says why)")
    return "\n".join(parts)


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.propagation",
        description="metric propagation latency and delta vs snapshot bytes (see benchmarks/README.md)",
    )
    parser.add_argument("--changes", type=int, default=1000, help="timed changes per core count")
    parser.add_argument("--cores", type=parseCores, default=parseCores("2,4"), help="core counts, e.g. 2,4")
    parser.add_argument("--latency-sites", type=int, default=4, help="sites in the latency cases")
    parser.add_argument("--latency-services", type=int, default=5, help="services per site in the latency cases")
    parser.add_argument("--sites", type=int, default=100, help="sites in the bytes case")
    parser.add_argument("--services", type=int, default=20, help="services per site in the bytes case")
    parser.add_argument("--ticks", type=int, default=60, help="random walk ticks in the bytes case")
    parser.add_argument("--tick", type=float, default=1.0,
                        help="seconds between ticks (1.0: one DELTA per site per metrics_interval)")
    parser.add_argument("--walk-changes", type=int, default=3, help="metrics changed per site per tick")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between two timed changes")
    parser.add_argument("--guard", type=float, default=0.05,
                        help="discard a change if the site answered a keepalive this long before it")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one change may take")
    parser.add_argument("--skip", default="", help="comma-separated: latency, bytes")
    parser.add_argument("--quiet-timeout", type=float, default=60.0,
                        help="seconds to wait, before measuring, for other processes to quieten")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--settle-timeout", type=float, default=90.0,
                        help="seconds for the sites to connect and every core to agree")
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and logs")
    options = parser.parse_args(argv)
    for name in ("changes", "latency_sites", "latency_services", "sites", "services", "ticks", "walk_changes"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return options


async def run(reactor, options, argv: Sequence[str]) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"propagation-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    # The benchmark's own MEP sessions log here.
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(logDir, "sites.log"), "a", encoding="utf-8"))],
        redirectStandardIO=False,
    )
    skip = {part.strip() for part in options.skip.split(",") if part.strip()}
    started = time.time()
    latencies: List[LatencyResult] = []
    volume = None
    with tempfile.TemporaryDirectory(prefix="gslb-prop-") as workDir:
        if "latency" not in skip:
            for cores in options.cores:
                latencies.append(await runLatency(reactor, options, cores, workDir, logDir))
        if "bytes" not in skip:
            volume = await runBytes(reactor, options, workDir, logDir)
    info = machine()
    import twisted

    info["twisted"] = twisted.__version__
    text = report(latencies, volume, options, info)
    commands = [f"{sys.executable} -m benchmarks.propagation {' '.join(argv)}".rstrip()]
    commands += [" ".join(r.serverCommand) for r in latencies] + ([" ".join(volume.serverCommand)] if volume else [])
    text += "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in commands)
    print(text)
    document = {
        "benchmark": "propagation",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "options": {k: v for k, v in vars(options).items()},
        "commands": commands,
        "latency": [asdict(r) for r in latencies],
        "bytes": None if volume is None else asdict(volume),
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    writeResults(options.results, f"propagation-{stamp}.json", document)
    results = list(latencies) + ([volume] if volume else [])
    failed = any(r.error or r.problems or r.valueMismatches or r.siteLosses for r in results)
    return 1 if failed else 0


def writeResults(directory: str, name: str, document: dict) -> str:
    """Write a benchmark's JSON result and say where."""
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print(f"\nresults: {os.path.relpath(path, os.getcwd())}")
    return path


def reactorMain(parse, run, argv: Optional[Sequence[str]] = None) -> None:
    """
    Run a benchmark whose C{run(reactor, options, argv)} is a coroutine
    returning an exit status, under C{task.react}.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse(argv)

    async def entry(reactor):
        code = await run(reactor, options, argv)
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(entry(reactor)))


def main(argv: Optional[Sequence[str]] = None) -> None:
    reactorMain(parseArguments, run, argv)


if __name__ == "__main__":
    main()
