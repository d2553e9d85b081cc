"""
Failover of a master core: SIGKILL the core that masters the most sites
and time how long its sites take to be mastered again, how long its slot
takes to serve again, and whether any DNS answer meanwhile names a site
that is DOWN.  One invocation runs every case::

    .venv/bin/python -m benchmarks.failover [--repeat 20] [--cores 2,4]

The benchmark process plays the remote sites itself (real
L{gslb_twisted.mep.session.MEPSession}s in the site role, as in
L{benchmarks.propagation}): half of them at 127.0.1.x, below the
appliance's 127.0.9.9, dial it; the other half at 127.0.10.x, above it,
listen and are dialled by it (MEP's lower-IP rule).  Before the kills one
site of each kind is taken down for good, so that the DNS loop can check
that its addresses never come back.

For each kill (C{--repeat} per core count), on one AMP connection to the
control endpoint, polled as fast as the supervisor answers:

  (a) failover  SIGKILL -> every live site the victim mastered shows, in
                C{show gslb site}, a master in a newer epoch and UP, and
                the site itself holds a new authenticated session;
  (b) respawn   SIGKILL -> C{show cores} lists the victim's slot C{up}
                with a new pid;
  (c) the first C{show consistency} after (b): does the respawned core
                hold every site at the same (epoch, seq) as the others?

and a DNS loop (dnspython, in a thread) queries every vserver throughout:
an answer naming an address of a site that C{show gslb site} showed DOWN
before the query and still after the answer is a wrong answer.

It prints the tables and writes the figures, the machine and the exact
commands to C{benchmarks/results/failover-<timestamp>.json}; the
appliance's logs go next to it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.version
from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import globalLogBeginner, textFileLogObserver

from benchmarks import procstat
from benchmarks.dns_qps import machine, renderTable
from benchmarks.propagation import (
    reactorMain,
    writeResults,
    QUIET_BELOW,
    Appliance,
    BenchError,
    Control,
    agreedVersion,
    cpuSample,
    freePort,
    parseCores,
    percentile,
    runCase,
    say,
    siteVersions,
    sleep,
    summarise,
    waitQuiet,
)
from benchmarks.propagation_sites import (
    APPLIANCE_IP,
    APPLIANCE_NAME,
    ZONE,
    EmulatedSite,
    applianceHeader,
    initialServices,
    serviceAddress,
    serviceName,
    siteAddress,
    siteName,
)
from benchmarks.servers import REPO, GslbServer
from gslb_twisted.mep.rules import initiates
from gslb_twisted.metrics import DOWN, UP
from gslb_twisted.protocol.commands import ShowCores, ShowMetrics, ShowSites
from gslb_twisted.respawn import RespawnPolicy
from gslb_twisted.site.emulator import reconnectPolicy

RESULTS = os.path.join(REPO, "benchmarks", "results")
METRICS_INTERVAL = 1.0  # the sites' keepalives (propagation.runCase) assume 1.0 s
DEAD_INTERVAL = 3.0
# A core that lived this long is respawned at once (RespawnPolicy); a kill
# waits for it, or the respawn figure would include the policy's backoff.
RESPAWN_THRESHOLD = RespawnPolicy().threshold


# ---------------------------------------------------------------------------
# Pure parts: the sites, the topology, the decisions made on each poll.


@dataclass(frozen=True)
class SitePlan:
    index: int
    name: str
    ip: str
    dials: bool  # True: the site dials the appliance; False: the appliance dials it
    mepPort: int = 0  # where a dialled site listens (0: not chosen yet)


def dialledAddress(index: int) -> str:
    """127.0.10.1, ...: above the appliance's 127.0.9.9, so it dials them."""
    if not 0 <= index < 254:
        raise ValueError(f"at most 254 dialled sites, not index {index}")
    return f"127.0.10.{index + 1}"


def planSites(count: int) -> List[SitePlan]:
    """
    C{count} sites, the first half (rounded up) dialling the appliance from
    127.0.1.x, the rest dialled by it at 127.0.10.x.

    @raise ValueError: fewer than 2 sites, or the lower-IP rule would not
        give the intended direction.
    """
    if count < 2:
        raise ValueError("at least 2 sites: one of each direction")
    dialling = (count + 1) // 2
    plans = []
    for index in range(count):
        name = siteName(index)
        dials = index < dialling
        ip = siteAddress(index) if dials else dialledAddress(index - dialling)
        if initiates(ip, name, APPLIANCE_IP, APPLIANCE_NAME) != dials:
            raise ValueError(f"{name} at {ip}: the lower-IP rule does not make it {'dial' if dials else 'listen'}")
        plans.append(SitePlan(index, name, ip, dials))
    return plans


def downSites(plans: Sequence[SitePlan], count: int) -> List[str]:
    """
    The sites taken down for good before the kills: the last dialling site,
    then the last dialled one (C{count} of 0, 1 or 2).
    """
    if not 0 <= count <= 2:
        raise ValueError("--down is 0, 1 or 2")
    dialling = [p.name for p in plans if p.dials]
    dialled = [p.name for p in plans if not p.dials]
    chosen = []
    if count >= 1 and dialling:
        chosen.append(dialling[-1])
    if count >= 2 and dialled:
        chosen.append(dialled[-1])
    return chosen


def vserverDomains(plans: Sequence[SitePlan]) -> List[str]:
    """The names the DNS loop queries, in order."""
    return [f"all.{ZONE}", f"lc.{ZONE}"] + [f"{p.name}.{ZONE}" for p in plans]


def addressSites(plans: Sequence[SitePlan], services: int) -> Dict[str, str]:
    """Service address -> site name."""
    return {serviceAddress(p.index, v, services): p.name for p in plans for v in range(services)}


def failoverTopology(plans: Sequence[SitePlan], services: int, mepPort: int,
                     metricsInterval: float = METRICS_INTERVAL, deadInterval: float = DEAD_INTERVAL) -> str:
    """
    The appliance's topology: the sites of C{plans} with C{services}
    services each; vservers C{all} (ROUNDROBIN, every service in every
    answer), C{lc} (LEASTCONNECTION, 2 per answer) and one per site, all
    with C{down_response = "empty"} (the default, "all", would answer a
    DOWN site's own vserver with its addresses, as NetScaler does); and a
    static C{www} so the appliance answers before any site connects.
    """
    every = [serviceName(p.name, v) for p in plans for v in range(services)]
    quoted = lambda names: ", ".join(f'"{n}"' for n in names)  # noqa: E731
    lines = applianceHeader("benchmarks/failover.py", mepPort, metricsInterval, deadInterval)
    for p in plans:
        port = p.mepPort if not p.dials and p.mepPort else mepPort
        lines += ["", "[[site]]", f'name = "{p.name}"', f'ip = "{p.ip}"', f"mep_port = {port}"]
        for v in range(services):
            lines += [
                "",
                "[[service]]",
                f'name = "{serviceName(p.name, v)}"',
                f'site = "{p.name}"',
                f'ip = "{serviceAddress(p.index, v, services)}"',
                "port = 80",
                'type = "HTTP"',
                "max_clients = 10000",
            ]
    vservers = [
        ("all", f"all.{ZONE}", "ROUNDROBIN", min(64, len(every)), every),
        ("lc", f"lc.{ZONE}", "LEASTCONNECTION", 2, every),
    ] + [(f"v-{p.name}", f"{p.name}.{ZONE}", "LEASTCONNECTION", services,
          [serviceName(p.name, v) for v in range(services)]) for p in plans]
    for name, domain, method, answers, bound in vservers:
        lines += [
            "",
            "[[vserver]]",
            f'name = "{name}"',
            f'domains = ["{domain}"]',
            f'lb_method = "{method}"',
            'down_response = "empty"',
            f"answers = {answers}",
            "ttl = 5",
            f"services = [{quoted(bound)}]",
        ]
    return "\n".join(lines) + "\n"


def masteredBy(rows: Sequence[dict], sites: Sequence[str]) -> Dict[Optional[int], List[str]]:
    """From C{show gslb site} rows, the sites (of C{sites}) each core masters."""
    wanted = set(sites)
    byCore: Dict[Optional[int], List[str]] = {}
    for row in rows:
        if row.get("name") in wanted:
            byCore.setdefault(row.get("master_core"), []).append(row["name"])
    return {core: sorted(names) for core, names in byCore.items()}


def pickVictim(rows: Sequence[dict], sites: Sequence[str], cores: Sequence[int]) -> Tuple[int, List[str]]:
    """
    The core (of C{cores}) that masters the most of C{sites}, the lowest id
    on a tie, and those sites.
    """
    byCore = masteredBy(rows, sites)
    if not cores:
        raise ValueError("no core to kill")
    victim = min(cores, key=lambda core: (-len(byCore.get(core, [])), core))
    return victim, byCore.get(victim, [])


def pendingFailover(rows: Sequence[dict], before: Dict[str, int],
                    sessionSince: Dict[str, Optional[float]], pollEnd: float) -> List[str]:
    """
    The sites of C{before} (site -> its epoch before the kill) not yet
    failed over: C{show gslb site} must list a master in a newer epoch and
    the site UP, and the site must hold a session authenticated after the
    kill (C{sessionSince[site]}: when, or None) no later than the poll's end.
    (A newer epoch under the victim's id is its respawned process: the dead
    one can hold no claim after its death.)
    """
    byName = {row.get("name"): row for row in rows}
    pending = []
    for site, epoch in sorted(before.items()):
        row = byName.get(site) or {}
        since = sessionSince.get(site)
        ok = (row.get("state") == UP and row.get("master_core") is not None
              and (row.get("epoch") or 0) > epoch and since is not None and since <= pollEnd)
        if not ok:
            pending.append(site)
    return pending


def survivorsPending(held: Dict[str, List[Optional[dict]]], before: Dict[str, int],
                     sessionSince: Dict[str, Optional[float]], pollEnd: float) -> List[str]:
    """
    (a') The sites of C{before} not yet failed over as the surviving cores
    see it: C{held[site]} is C{show metrics SITE --core N} of each survivor
    (None: no answer); each must hold the site UP in an epoch newer than
    C{before[site]}, and the site a session authenticated since the kill.
    """
    pending = []
    for site, epoch in sorted(before.items()):
        views = held.get(site) or [None]
        since = sessionSince.get(site)
        ok = since is not None and since <= pollEnd and all(
            view is not None and view.get("state") == UP and (view.get("epoch") or 0) > epoch for view in views)
        if not ok:
            pending.append(site)
    return pending


def slotRespawned(cores: Sequence[dict], slot: int, oldPid: int) -> Tuple[bool, Optional[dict]]:
    """(Is slot C{slot} up with a pid other than C{oldPid}?, its row)."""
    for row in cores:
        if row.get("core") == slot:
            pid = row.get("pid")
            return (row.get("state") == "up" and pid is not None and pid != oldPid), row
    return False, None


def consistencyVerdict(result: dict, core: int, masters: Dict[str, Optional[int]],
                       sites: Sequence[str]) -> dict:
    """
    How the first C{show consistency} after a respawn judges core C{core}:

      - consistent: every core holds the same (epoch, seq) of every site;
      - missing: sites with a master whose snapshot the respawned core does
        not hold (no version, or an older epoch than the master's): what
        "a respawned core receives every site's snapshot before it serves
        DNS" forbids;
      - behind: same epoch as the master, lower seq (a delta in flight);
      - orphans: sites nobody masters on which the cores differ (nobody can
        send their snapshot);
      - others: disagreements not involving the respawned core.

    C{masters}: site -> master core from C{show gslb site} at that time.
    """
    verdict = {"consistent": bool(result.get("consistent")), "missing": [], "behind": [], "orphans": [],
               "others": [], "cores": result.get("cores")}
    key = str(core)
    for site in sites:
        versions = siteVersions(result, site)
        if len(set(versions.values())) <= 1:
            continue
        master = masters.get(site)
        if master is None:
            verdict["orphans"].append({"site": site, "versions": versions})
            continue
        reference = versions.get(str(master))
        mine = versions.get(key)
        if str(master) == key or reference is None:
            verdict["others"].append({"site": site, "versions": versions})
        elif mine is None or mine[0] < reference[0]:
            verdict["missing"].append({"site": site, "versions": versions})
        elif mine[0] == reference[0] and mine[1] < reference[1]:
            verdict["behind"].append({"site": site, "versions": versions})
        else:
            verdict["others"].append({"site": site, "versions": versions})
    return verdict


@dataclass
class Poll:
    started: float
    ended: float
    states: Dict[str, str]  # site -> state in `show gslb site`


@dataclass
class Answer:
    sent: float
    received: float
    name: str
    rcode: Optional[str]  # None: no answer within the timeout
    addresses: Tuple[str, ...] = ()


def _lastBefore(polls: Sequence[Poll], t: float) -> Optional[Poll]:
    best = None
    for poll in polls:
        if poll.ended <= t and (best is None or poll.ended > best.ended):
            best = poll
    return best


def _firstAfter(polls: Sequence[Poll], t: float) -> Optional[Poll]:
    best = None
    for poll in polls:
        if poll.started >= t and (best is None or poll.started < best.started):
            best = poll
    return best


def wrongAnswers(answers: Sequence[Answer], polls: Sequence[Poll], siteOf: Dict[str, str],
                 goneSince: Dict[str, float]) -> dict:
    """
    Classify DNS answers against the timeline of C{show gslb site} polls.

      - wrong: names an address of a site the last poll completed before
        the query was sent showed DOWN, and the first poll started after the
        answer still showed DOWN (or none came after);
      - ambiguous: DOWN before, UP again after (it may have come back in
        between: not counted as wrong);
      - gone: names a site of C{goneSince} (taken down for good, site ->
        when a poll first showed it DOWN) in an answer to a query sent
        after that.
    """
    wrong, ambiguous, gone = [], [], []
    for answer in answers:
        if not answer.addresses:
            continue
        before = _lastBefore(polls, answer.sent)
        after = _firstAfter(polls, answer.received)
        for address in answer.addresses:
            site = siteOf.get(address)
            if site is None:
                continue
            entry = {"name": answer.name, "address": address, "site": site, "sent": answer.sent}
            if site in goneSince and answer.sent >= goneSince[site]:
                gone.append(entry)
            if before is not None and before.states.get(site) == DOWN:
                if after is None or after.states.get(site) == DOWN:
                    wrong.append(entry)
                else:
                    ambiguous.append(entry)
    return {"wrong": wrong, "ambiguous": ambiguous, "gone": gone}


def inIntervals(summary: Optional[dict], interval: float) -> Optional[dict]:
    """A L{summarise} result in seconds, expressed in units of C{interval}."""
    if summary is None:
        return None
    return {key: (value / interval if key != "n" else value) for key, value in summary.items()}


def targetVerdict(values: Sequence[float], limit: float) -> Optional[bool]:
    """Did every failover take at most C{limit}?  None without values."""
    return None if not values else max(values) <= limit


def applianceCpu(before: Dict[int, procstat.ProcStat], after: Dict[int, procstat.ProcStat],
                 seconds: float) -> float:
    """
    The appliance's CPU between two samples, in percent of one CPU: the
    processes in both, plus the whole life of those that started in
    between (the respawned core); a process that died meanwhile (the
    victim, killed right after the first sample) counts nothing.
    """
    if seconds <= 0:
        return 0.0
    total = sum(procstat.cpuPercent(before, after, seconds).values())
    for pid, stat in after.items():
        start = before.get(pid)
        if start is None or start.startTime != stat.startTime:
            total += 100.0 * stat.cpuTicks / procstat.CLOCK_TICKS / seconds
    return total


# ---------------------------------------------------------------------------
# The sites over MEP, in both directions.


class RecordingMixin:
    """Notes when each session authenticated (C{perf_counter})."""

    def authenticated(self, session) -> bool:
        ok = super().authenticated(session)
        if ok:
            self.authenticatedAt.append(time.perf_counter())
        return ok

    def sessionSince(self, t0: float) -> Optional[float]:
        """
        When the live session authenticated, if it did after C{t0} (a session
        the appliance then refused as busy is not the live one).
        """
        if not self.established or not self.authenticatedAt or self.authenticatedAt[-1] < t0:
            return None
        return self.authenticatedAt[-1]


class DiallingSite(RecordingMixin, EmulatedSite):
    """
    A site below the appliance's address: it dials, reconnecting with the
    site emulator's own policy (C{twistd gslb-site}: 0.2 s + jitter after a
    lost session, doubling on failures).
    """

    def __init__(self, reactor, plan: SitePlan, services) -> None:
        super().__init__(reactor, plan.index, services)
        self.plan = plan
        self.authenticatedAt: List[float] = []

    def connect(self, mepPort: int, keepaliveInterval: float, deadInterval: float, seed: int) -> ClientService:
        endpoint = TCP4ClientEndpoint(self.reactor, APPLIANCE_IP, mepPort, timeout=5, bindAddress=(self.ip, 0))
        factory = Factory.forProtocol(lambda: self.buildSession(keepaliveInterval, deadInterval))
        factory.noisy = False
        self.connector = ClientService(endpoint, factory, retryPolicy=reconnectPolicy(lambda: 0), clock=self.reactor)
        self.connector.startService()
        return self.connector


class ListeningSite(RecordingMixin, EmulatedSite):
    """A site above the appliance's address: it listens, the appliance dials it."""

    def __init__(self, reactor, plan: SitePlan, services) -> None:
        super().__init__(reactor, plan.index, services)
        self.plan = plan
        self.ip = plan.ip
        self.port = None
        self.authenticatedAt: List[float] = []

    def connect(self, mepPort: int, keepaliveInterval: float, deadInterval: float, seed: int):
        def build():
            session = self.buildSession(keepaliveInterval, deadInterval)
            session.direction = "inbound"
            return session

        factory = Factory.forProtocol(build)
        factory.noisy = False
        self.port = self.reactor.listenTCP(self.plan.mepPort, factory, interface=self.ip)
        return self.port

    def disconnect(self):
        """Stop listening and drop the live session (the appliance's redials are refused)."""
        port, self.port = self.port, None
        stopping = defer.maybeDeferred(port.stopListening) if port is not None else None
        session = self.session
        if session is not None and session.transport is not None:
            session.transport.loseConnection()
        return stopping


def makeFailoverSites(reactor, plans: Sequence[SitePlan], services: int, seed: int) -> List[EmulatedSite]:
    import random

    rng = random.Random(seed)
    sites = []
    for plan in plans:
        metrics = initialServices(rng, plan.name, services)
        sites.append((DiallingSite if plan.dials else ListeningSite)(reactor, plan, metrics))
    return sites


# ---------------------------------------------------------------------------
# DNS, in a thread.


class DNSLoop(threading.Thread):
    """Queries C{names} in turn, back to back with C{pause} between, until stopped."""

    def __init__(self, host: str, port: int, names: Sequence[str], pause: float, timeout: float = 0.5) -> None:
        super().__init__(name="failover-dns", daemon=True)
        self.host, self.port, self.names = host, port, list(names)
        self.pause, self.timeout = pause, timeout
        self.answers: List[Answer] = []
        self.stopping = threading.Event()
        self.errors: List[str] = []

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            name = self.names[index % len(self.names)]
            index += 1
            query = dns.message.make_query(name, "A")
            sent = time.perf_counter()
            try:
                response = dns.query.udp(query, self.host, port=self.port, timeout=self.timeout)
            except dns.exception.Timeout:
                self.answers.append(Answer(sent, time.perf_counter(), name, None))
                continue
            except (dns.exception.DNSException, OSError) as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                self.answers.append(Answer(sent, time.perf_counter(), name, None))
                self.stopping.wait(self.pause)
                continue
            received = time.perf_counter()
            addresses = tuple(rdata.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A
                              for rdata in rrset)
            self.answers.append(Answer(sent, received, name, dns.rcode.to_text(response.rcode()), addresses))
            if self.pause:
                self.stopping.wait(self.pause)

    def take(self) -> List[Answer]:
        """The answers so far (and forget them)."""
        taken, self.answers = self.answers, []
        return taken


# ---------------------------------------------------------------------------
# Results.


@dataclass
class Kill:
    number: int
    victim: int
    pid: int
    sites: List[str]  # the live sites it mastered
    mastered: Dict[str, List[str]] = field(default_factory=dict)  # core -> sites before the kill
    failover: Optional[float] = None  # (a), seconds
    failoverLow: Optional[float] = None  # start of the last poll still pending
    failoverSurvivors: Optional[float] = None  # (a'), seconds
    failoverSurvivorsLow: Optional[float] = None
    sessionsBack: Optional[float] = None  # last victim site's new session authenticated (site side)
    newMasters: Dict[str, Optional[int]] = field(default_factory=dict)
    respawn: Optional[float] = None  # (b), seconds
    respawnLow: Optional[float] = None  # start of the poll that first saw it up
    spawned: Optional[float] = None  # from the new core's uptime
    newPid: Optional[int] = None
    consistentAtUp: Optional[bool] = None  # (c)
    consistency: Optional[dict] = None
    consistentAfter: Optional[float] = None  # seconds after (b) until show consistency agreed
    polls: int = 0
    pollRtt: Optional[dict] = None  # show gslb site
    coresPollRtt: Optional[dict] = None  # show cores
    metricsPollRtt: Optional[dict] = None  # one round of show metrics SITE --core N
    queries: int = 0
    answered: int = 0
    unanswered: int = 0
    servfail: int = 0
    wrong: List[dict] = field(default_factory=list)
    ambiguous: int = 0
    gone: List[dict] = field(default_factory=list)
    otherCpu: Optional[float] = None  # during the kill window
    applianceCpu: Optional[float] = None
    benchCpu: Optional[float] = None
    quietBefore: Optional[float] = None
    problem: Optional[str] = None


@dataclass
class FailoverResult:
    cores: int
    sites: int
    services: int
    repeat: int
    serverCommand: List[str]
    topology: str = ""
    down: List[str] = field(default_factory=list)
    downSeenAfter: Dict[str, float] = field(default_factory=dict)
    kills: List[Kill] = field(default_factory=list)
    failover: Optional[dict] = None
    failoverIntervals: Optional[dict] = None
    failoverLow: Optional[dict] = None
    failoverSurvivors: Optional[dict] = None
    failoverSurvivorsIntervals: Optional[dict] = None
    failoverSurvivorsLow: Optional[dict] = None
    targetMetSurvivors: Optional[bool] = None
    respawn: Optional[dict] = None
    respawnIntervals: Optional[dict] = None
    spawned: Optional[dict] = None
    pollRtt: Optional[dict] = None
    targetMet: Optional[bool] = None
    consistentAtUp: int = 0
    wrong: int = 0
    ambiguous: int = 0
    gone: int = 0
    queries: int = 0
    unanswered: int = 0
    busyKills: int = 0
    setupRefusals: int = 0
    setupSeconds: Optional[float] = None
    backgroundCpu: Optional[float] = None
    siteLosses: Dict[str, List[str]] = field(default_factory=dict)
    resyncs: int = 0
    masters: Dict[str, Optional[int]] = field(default_factory=dict)
    note: str = ""
    logTail: str = ""
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None


# ---------------------------------------------------------------------------
# The measurement.


class Poller:
    """
    `show gslb site` and `show cores` on the one control connection: both
    together (L{poll}), or each alone (a `show gslb site` waits for every
    linked core, a booting one included; `show cores` asks only those up).
    """

    def __init__(self, control: Control) -> None:
        self.control = control
        self.timeline: List[Poll] = []
        self.rtts: List[float] = []
        self.coreRtts: List[float] = []
        self.metricsRtts: List[float] = []

    async def sites(self) -> Tuple[List[dict], float, float]:
        started = time.perf_counter()
        rows = (await self.control.protocol.callRemote(ShowSites))["rows"]
        ended = time.perf_counter()
        self.rtts.append(ended - started)
        self.timeline.append(Poll(started, ended, {row["name"]: row.get("state") for row in rows}))
        return rows, started, ended

    async def cores(self) -> Tuple[List[dict], float, float]:
        started = time.perf_counter()
        rows = (await self.control.protocol.callRemote(ShowCores))["cores"]
        ended = time.perf_counter()
        self.coreRtts.append(ended - started)
        return rows, started, ended

    async def poll(self) -> Tuple[List[dict], List[dict], float, float]:
        started = time.perf_counter()
        (rows, _, _), (cores, _, _) = await defer.gatherResults(
            [defer.ensureDeferred(self.sites()), defer.ensureDeferred(self.cores())], consumeErrors=True)
        return rows, cores, started, time.perf_counter()


async def settle(reactor, options, appliance: Appliance, poller: Poller, live: Sequence[str],
                 deadline: float) -> Tuple[List[dict], List[dict]]:
    """
    Wait until every core is up and has lived long enough to be respawned
    at once, every live site is UP with a master, and every core holds the
    same version of every live site.
    """
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < deadline:
        crash = appliance.crashed()
        if crash:
            raise BenchError(crash)
        rows, cores, _, _ = await poller.poll()
        byName = {row["name"]: row for row in rows}
        notUp = [c for c in cores if c.get("state") != "up" or (c.get("uptime") or 0) < RESPAWN_THRESHOLD + 0.5]
        pending = [s for s in live if byName.get(s, {}).get("state") != UP or byName.get(s, {}).get("master_core") is None]
        if notUp:
            last = f"core {notUp[0].get('core')} is {notUp[0].get('state')} (uptime {notUp[0].get('uptime')})"
        elif pending:
            last = f"{pending[0]} is not UP with a master: {byName.get(pending[0])}"
        else:
            result, _, _ = await poller.control.consistency()
            disagree = [s for s in live if agreedVersion(siteVersions(result, s), appliance.cores) is None]
            if not disagree:
                return rows, cores
            last = f"cores disagree on {disagree[0]}: {siteVersions(result, disagree[0])}"
        await sleep(reactor, 0.2)
    raise BenchError(f"the appliance did not settle within {deadline:.0f} s: {last}")


async def takeDown(reactor, poller: Poller, sites: Sequence[EmulatedSite], names: Sequence[str],
                   deadline: float = 15.0) -> Dict[str, float]:
    """Take the sites C{names} down for good; @return: when a poll first showed each DOWN (perf_counter)."""
    started = time.perf_counter()
    for site in sites:
        if site.name in names:
            await defer.maybeDeferred(site.disconnect)
    seen: Dict[str, float] = {}
    while len(seen) < len(names):
        rows, _, _, ended = await poller.poll()
        for row in rows:
            if row["name"] in names and row.get("state") == DOWN and row["name"] not in seen:
                seen[row["name"]] = ended
        if time.perf_counter() - started > deadline:
            raise BenchError(f"sites {sorted(set(names) - set(seen))} taken down are not DOWN after {deadline:.0f} s")
        await sleep(reactor, 0.02)
    return seen


async def oneKill(reactor, options, appliance: Appliance, poller: Poller, sites: Sequence[EmulatedSite],
                  live: Sequence[str], number: int, dnsLoop: DNSLoop, siteOf: Dict[str, str],
                  goneSince: Dict[str, float], result: FailoverResult) -> Kill:
    await settle(reactor, options, appliance, poller, live, options.settle_timeout)
    quiet = await waitQuiet(reactor, appliance, options.kill_quiet_timeout)
    rows, cores, _, _ = await poller.poll()
    upCores = [c["core"] for c in cores if c.get("state") == "up"]
    victim, victimSites = pickVictim(rows, live, upCores)
    pid = next(c["pid"] for c in cores if c["core"] == victim)
    byName = {row["name"]: row for row in rows}
    before = {s: byName[s]["epoch"] or 0 for s in victimSites}
    kill = Kill(number, victim, pid, victimSites,
                mastered={str(k): v for k, v in masteredBy(rows, live).items()}, quietBefore=quiet)
    siteByName = {site.name: site for site in sites}
    dnsLoop.take()
    polls0 = len(poller.timeline)
    rtts0 = len(poller.rtts)
    coreRtts0 = len(poller.coreRtts)
    metricsRtts0 = len(poller.metricsRtts)
    cpuBefore = cpuSample(appliance)
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    state = {"upAt": None}

    async def watchSites():
        lastPending = None
        while True:
            rows, started, ended = await poller.sites()
            since = {site: siteByName[site].sessionSince(t0) for site in victimSites}
            pending = pendingFailover(rows, before, since, ended)
            if not pending:
                kill.failover = ended - t0
                kill.failoverLow = 0.0 if lastPending is None else max(0.0, lastPending - t0)
                kill.sessionsBack = max((since[site] - t0 for site in victimSites), default=0.0)
                kill.newMasters = {row["name"]: row.get("master_core") for row in rows if row["name"] in before}
                return
            lastPending = started
            if ended - t0 > options.kill_timeout:
                raise BenchError(
                    f"kill {number} (core {victim}, pid {pid}): after {options.kill_timeout:g} s, sites not failed "
                    f"over: {pending} (rows: {[r for r in rows if r['name'] in pending]}; site sessions since the "
                    f"kill: {since})")

    async def watchSurvivors():
        """(a') from each surviving core's own table: no booting core in the way."""
        survivors = [c for c in range(appliance.cores) if c != victim]
        lastPending = None
        while True:
            started = time.perf_counter()
            calls = [poller.control.protocol.callRemote(ShowMetrics, site=site, core=core)
                     for site in victimSites for core in survivors]
            answers = await defer.DeferredList(calls, consumeErrors=True)
            ended = time.perf_counter()
            poller.metricsRtts.append(ended - started)
            held = {}
            for (site, core), (ok, value) in zip([(s, c) for s in victimSites for c in survivors], answers):
                held.setdefault(site, []).append(value["result"] if ok else None)
            since = {site: siteByName[site].sessionSince(t0) for site in victimSites}
            pending = survivorsPending(held, before, since, ended)
            if not pending:
                kill.failoverSurvivors = ended - t0
                kill.failoverSurvivorsLow = 0.0 if lastPending is None else max(0.0, lastPending - t0)
                return
            lastPending = started
            if ended - t0 > options.kill_timeout:
                raise BenchError(f"kill {number} (core {victim}): after {options.kill_timeout:g} s, the surviving "
                                 f"cores do not all hold {pending} UP in a newer epoch: {held}")

    async def watchCores():
        while True:
            cores, started, ended = await poller.cores()
            up, row = slotRespawned(cores, victim, pid)
            if row is not None and row.get("pid") not in (None, pid) and kill.spawned is None \
                    and row.get("uptime") is not None:
                kill.spawned = max(0.0, ended - row["uptime"] - t0)
            if up:
                kill.respawn = ended - t0
                kill.respawnLow = max(0.0, started - t0)
                kill.newPid = row.get("pid")
                state["upAt"] = time.perf_counter()
                consistency, _, _ = await poller.control.consistency()
                rows = (await poller.control.protocol.callRemote(ShowSites))["rows"]
                masters = {r["name"]: r.get("master_core") for r in rows}
                kill.consistency = consistencyVerdict(consistency, victim, masters, [r["name"] for r in rows])
                kill.consistentAtUp = kill.consistency["consistent"]
                return
            if ended - t0 > options.kill_timeout:
                raise BenchError(f"kill {number}: core {victim} (pid {pid}) not respawned and up after "
                                 f"{options.kill_timeout:g} s: {row}")

    try:
        await defer.gatherResults([defer.ensureDeferred(watchSites()), defer.ensureDeferred(watchCores()),
                                   defer.ensureDeferred(watchSurvivors())],
                                  consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        upAt = state["upAt"]
        # Until when did the respawned core disagree?  (Informative.)
        if kill.consistentAtUp:
            kill.consistentAfter = 0.0
        else:
            while time.perf_counter() - upAt < 5.0:
                consistency, _, ended = await poller.control.consistency()
                if all(agreedVersion(siteVersions(consistency, s), appliance.cores) is not None for s in live):
                    kill.consistentAfter = ended - upAt
                    break
                await sleep(reactor, 0.02)
        # Let the DNS loop run on a little past the end, under polls.
        tailEnd = time.perf_counter() + options.dns_tail
        while time.perf_counter() < tailEnd:
            await poller.poll()
            await sleep(reactor, 0.01)
    finally:
        cpuAfter = cpuSample(appliance)
        answers = dnsLoop.take()
        kill.polls = len(poller.timeline) - polls0
        kill.pollRtt = summarise(poller.rtts[rtts0:])
        kill.coresPollRtt = summarise(poller.coreRtts[coreRtts0:])
        kill.metricsPollRtt = summarise(poller.metricsRtts[metricsRtts0:])
        (pidsBefore, hostBefore, ownBefore, m0), (pidsAfter, hostAfter, ownAfter, m1) = cpuBefore, cpuAfter
        seconds = m1 - m0
        if seconds > 0:
            kill.applianceCpu = round(applianceCpu(pidsBefore, pidsAfter, seconds), 1)
            kill.benchCpu = round(100.0 * (ownAfter - ownBefore) / seconds, 1)
            host = procstat.busyPercent(hostBefore, hostAfter, seconds)
            kill.otherCpu = round(max(0.0, host - kill.applianceCpu - kill.benchCpu), 1)
        kill.queries = len(answers)
        kill.unanswered = sum(1 for a in answers if a.rcode is None)
        kill.answered = kill.queries - kill.unanswered
        kill.servfail = sum(1 for a in answers if a.rcode == "SERVFAIL")
        verdict = wrongAnswers(answers, poller.timeline, siteOf, goneSince)
        kill.wrong, kill.gone = verdict["wrong"], verdict["gone"]
        kill.ambiguous = len(verdict["ambiguous"])
        # Rebase the times of the offending answers on the kill.
        for entry in kill.wrong + kill.gone:
            entry["after_kill"] = round(entry.pop("sent") - t0, 4)
        # Keep the timeline from growing without bound: only this window is needed.
        del poller.timeline[:-50]
    return kill


async def runFailover(reactor, options, cores: int, workDir: str, logDir: str) -> FailoverResult:
    plans = planSites(options.sites)
    plans = [p if p.dials else SitePlan(p.index, p.name, p.ip, False, freePort(p.ip, socket.SOCK_STREAM))
             for p in plans]
    label = f"failover-{cores}cores"
    appliance = FailoverAppliance(reactor, cores, plans, options.services, workDir, logDir, label)
    result = FailoverResult(cores, options.sites, options.services, options.repeat, appliance.server.command,
                            topology=os.path.relpath(appliance.topologyPath, REPO))
    nproc = os.cpu_count() or 1
    if cores > nproc:
        result.note = f"{cores} cores on {nproc} vCPUs: the cores share CPUs"
    sites = makeFailoverSites(reactor, plans, options.services, options.seed)
    result.down = downSites(plans, options.down)
    live = [p.name for p in plans if p.name not in result.down]
    siteOf = addressSites(plans, options.services)
    domains = vserverDomains(plans)

    async def body(control, masters):
        result.masters = masters
        poller = Poller(control)
        t0 = time.perf_counter()
        gone = await takeDown(reactor, poller, sites, result.down)
        result.downSeenAfter = {name: round(t - t0, 3) for name, t in gone.items()}
        say(f"  down for good: {', '.join(f'{n} (DOWN after {s:.2f} s)' for n, s in result.downSeenAfter.items()) or 'none'}")
        dnsLoop = DNSLoop("127.0.0.1", appliance.dnsPort, domains, options.dns_pause)
        dnsLoop.start()
        try:
            for number in range(1, options.repeat + 1):
                kill = await oneKill(reactor, options, appliance, poller, sites, live, number, dnsLoop, siteOf,
                                     gone, result)
                result.kills.append(kill)
                say(f"  kill {number}: core {kill.victim} ({len(kill.sites)} sites) (a) {_ms(kill.failover)} ms "
                    f"(b) {_ms(kill.respawn)} ms (c) {'consistent' if kill.consistentAtUp else 'NOT consistent'}; "
                    f"{kill.answered} DNS answers, {len(kill.wrong)} wrong; other CPU {kill.otherCpu:.0f}%")
        finally:
            dnsLoop.stopping.set()
            dnsLoop.join(2.0)

    await runCase(reactor, options, appliance, sites, result, body)
    summariseResult(result, options)
    if result.error or result.problems or result.wrong or result.gone:
        result.logTail = appliance.server.logTail(80)
    return result


def summariseResult(result: FailoverResult, options) -> None:
    done = [k for k in result.kills if k.failover is not None]
    failovers = [k.failover for k in done]
    result.failover = summarise(failovers)
    result.failoverIntervals = inIntervals(result.failover, METRICS_INTERVAL)
    result.failoverLow = summarise([k.failoverLow for k in done])
    survivors = [k.failoverSurvivors for k in result.kills if k.failoverSurvivors is not None]
    result.failoverSurvivors = summarise(survivors)
    result.failoverSurvivorsIntervals = inIntervals(result.failoverSurvivors, METRICS_INTERVAL)
    result.failoverSurvivorsLow = summarise([k.failoverSurvivorsLow for k in result.kills
                                             if k.failoverSurvivorsLow is not None])
    result.targetMetSurvivors = targetVerdict(survivors, 2 * METRICS_INTERVAL)
    if len(survivors) < result.repeat and result.targetMetSurvivors is not None:
        result.targetMetSurvivors = False
    respawns = [k.respawn for k in result.kills if k.respawn is not None]
    result.respawn = summarise(respawns)
    result.respawnIntervals = inIntervals(result.respawn, METRICS_INTERVAL)
    result.spawned = summarise([k.spawned for k in result.kills if k.spawned is not None])
    result.pollRtt = pollResolution(result.kills)
    result.targetMet = targetVerdict(failovers, 2 * METRICS_INTERVAL)
    if len(done) < result.repeat:
        result.targetMet = False if failovers or result.error else None
    result.consistentAtUp = sum(1 for k in result.kills if k.consistentAtUp)
    result.wrong = sum(len(k.wrong) for k in result.kills)
    result.ambiguous = sum(k.ambiguous for k in result.kills)
    result.gone = sum(len(k.gone) for k in result.kills)
    result.queries = sum(k.queries for k in result.kills)
    result.unanswered = sum(k.unanswered for k in result.kills)
    result.busyKills = sum(1 for k in result.kills if (k.otherCpu or 0) > QUIET_BELOW
                           or (k.quietBefore or 0) >= QUIET_BELOW)


def pollResolution(kills: Sequence[Kill]) -> Optional[dict]:
    """
    The poll round trips over all kills (seconds): the median of the kills'
    medians and the largest of their p99s, for each of the two polls.
    """
    out = {}
    for key, attribute in (("sites", "pollRtt"), ("cores", "coresPollRtt"), ("metrics", "metricsPollRtt")):
        summaries = [getattr(k, attribute) for k in kills if getattr(k, attribute)]
        if summaries:
            out[key] = {"p50": percentile([s["p50"] for s in summaries], 50),
                        "p99": max(s["p99"] for s in summaries)}
    return out or None


class FailoverAppliance(Appliance):
    """L{Appliance} with the failover topology (both MEP directions)."""

    def __init__(self, reactor, cores: int, plans: Sequence[SitePlan], services: int, workDir: str,
                 logDir: str, label: str) -> None:
        self.reactor = reactor
        self.mepPort = freePort(APPLIANCE_IP, socket.SOCK_STREAM)
        self.dnsPort = freePort("127.0.0.1", socket.SOCK_DGRAM)
        self.topologyPath = os.path.join(logDir, f"{label}.toml")
        with open(self.topologyPath, "w", encoding="utf-8") as f:
            f.write(failoverTopology(plans, services, self.mepPort))
        self.controlPath = os.path.join(workDir, f"{label}.ctl")
        self.server = GslbServer.build(
            self.dnsPort, cores, None, f"unix:{self.controlPath}", os.path.join(logDir, f"{label}.log"),
            config=os.path.relpath(self.topologyPath, REPO),
        )
        self.cores = cores


# ---------------------------------------------------------------------------
# Output.


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: Sequence[FailoverResult], options, info: dict) -> str:
    parts = [f"Machine: {info['nproc']} vCPU {info['cpu_model']}, kernel {info['kernel']}, Python {info['python']}"]
    if results:
        r0 = results[0]
        dialling = (r0.sites + 1) // 2
        parts += ["", (
            f"Failover: {r0.sites} MEP sites x {r0.services} services ({dialling} dial the appliance from 127.0.1.x, "
            f"{r0.sites - dialling} are dialled by it at 127.0.10.x), metrics_interval {METRICS_INTERVAL:g} s, "
            f"dead_interval {DEAD_INTERVAL:g} s;\n{options.repeat} SIGKILLs per case of the core mastering the most "
            f"live sites; down for good before the kills: {', '.join(r0.down) or 'none'}")]
        rows = []
        for r in results:
            status = f"{len(r.kills)}" + ("" if not r.error else " FAILED")
            for label, summary, units, rtt in (
                ("(a) show gslb site", r.failover, r.failoverIntervals, "sites"),
                ("(a') survivors' tables", r.failoverSurvivors, r.failoverSurvivorsIntervals, "metrics"),
                ("(b) respawned, up", r.respawn, r.respawnIntervals, "cores"),
            ):
                m, u, poll = summary or {}, units or {}, (r.pollRtt or {}).get(rtt) or {}
                rows.append([str(r.cores), status, label, _ms(m.get("p50")), _ms(m.get("p99")), _ms(m.get("max")),
                             f"{_x(u.get('p50'))}/{_x(u.get('p99'))}/{_x(u.get('max'))}",
                             "-" if not poll else f"{poll['p50'] * 1000:.1f}/{poll['p99'] * 1000:.0f}"])
        parts.append(renderTable(["cores", "kills", "measure", "p50 ms", "p99 ms", "max ms", "x MI p50/p99/max",
                                  "poll rtt ms p50/p99"], rows))
        rows = []
        for r in results:
            rows.append([str(r.cores), f"{r.consistentAtUp}/{len([k for k in r.kills if k.consistentAtUp is not None])}",
                         str(r.wrong), str(r.gone), str(r.ambiguous), f"{r.queries - r.unanswered}/{r.queries}",
                         str(r.busyKills)])
        parts.append("")
        parts.append(renderTable(["cores", "(c) consistent at first up", "wrong answers", "down site named",
                                  "ambiguous", "DNS answered", "busy kills"], rows))
        parts.append(
            "  (a) SIGKILL -> every live site of the victim UP under a master in a newer epoch in show gslb site,\n"
            "      with a new session on the site's side. (a') the same from each surviving core's own table\n"
            "      (show metrics SITE --core N): UP in a newer epoch on every survivor. (b) SIGKILL -> the victim's\n"
            "      slot 'up' with a new pid in show cores. (c) the first show consistency after (b): every core at\n"
            "      the same (epoch, seq) of every site. x MI: in units of metrics_interval.\n"
            "  Resolution: one poll round trip (poll rtt: p50 of the kills' p50s, max of their p99s); each measure\n"
            "      is polled back to back on its own; the times are upper bounds. show gslb site asks every linked\n"
            "      core, the booting replacement included, and waits up to 1 s (STATUS_TIMEOUT) for it.\n"
            "  wrong: DNS answers naming an address of a site shown DOWN by the poll before the query and the poll\n"
            "      after the answer; down site named: answers naming a site taken down for good, after it was seen\n"
            "      DOWN; ambiguous: DOWN before, UP after (not counted)."
        )
        for r in results:
            label = f"{r.cores} cores"
            if r.failover is not None:
                verdict = "PASS" if r.targetMet else "FAIL"
                parts.append(f"  {label}: target (a) <= 2 x metrics_interval = {2 * METRICS_INTERVAL * 1000:.0f} ms: "
                             f"{verdict} (max {_ms(r.failover['max'])} ms over {r.failover['n']} kills)")
            if r.failoverSurvivors is not None:
                verdict = "PASS" if r.targetMetSurvivors else "FAIL"
                parts.append(f"  {label}: target (a') <= 2 x metrics_interval: {verdict} "
                             f"(max {_ms(r.failoverSurvivors['max'])} ms over {r.failoverSurvivors['n']} kills)")
            elif r.error:
                parts.append(f"  {label}: target (a) <= 2 x metrics_interval: FAIL (no complete failover measured)")
            low = r.failoverLow or {}
            sessions = [k.sessionsBack for k in r.kills if k.sessionsBack is not None]
            victims = [len(k.sites) for k in r.kills]
            byRespawned = sum(1 for k in r.kills for core in k.newMasters.values() if core == k.victim)
            lowS = r.failoverSurvivorsLow or {}
            parts.append(
                f"  {label}: sites per victim {min(victims, default=0)}-{max(victims, default=0)}; lower bounds p50: (a) "
                f"{_ms(low.get('p50'))} ms, (a') {_ms(lowS.get('p50'))} ms; last victim site's new session authenticated (site side) p50 "
                f"{_ms(percentile(sessions, 50) if sessions else None)} ms, max {_ms(max(sessions, default=None))} ms; "
                f"{byRespawned} site takeovers by the respawned core"
            )
            if r.spawned:
                parts.append(f"  {label}: the supervisor spawned the new core after p50 {_ms(r.spawned['p50'])} ms "
                             f"(max {_ms(r.spawned['max'])}) (from its uptime); DNS: {r.unanswered} of {r.queries} "
                             f"queries unanswered within 0.5 s, {sum(k.servfail for k in r.kills)} SERVFAIL, "
                             f"{r.ambiguous} ambiguous (DOWN before, UP after)")
            notConsistent = [k for k in r.kills if k.consistentAtUp is False]
            for k in notConsistent[:5]:
                c = k.consistency or {}
                kinds = ", ".join(f"{kind}: {[e['site'] for e in c.get(kind, [])]}"
                                  for kind in ("missing", "behind", "orphans", "others") if c.get(kind))
                parts.append(f"  {label}: kill {k.number}: respawned core {k.victim} not consistent when first up "
                             f"({kinds}); consistent after {_ms(k.consistentAfter)} ms")
            if len(notConsistent) > 5:
                parts.append(f"  {label}: ... {len(notConsistent) - 5} more kills not consistent at first up (JSON)")
            for k in [k for k in r.kills if k.wrong or k.gone][:5]:
                parts.append(f"  {label}: kill {k.number}: WRONG ANSWERS: {(k.wrong + k.gone)[:3]}")
            busy = [k for k in r.kills if (k.otherCpu or 0) > QUIET_BELOW or (k.quietBefore or 0) >= QUIET_BELOW]
            other = [k.otherCpu for k in r.kills if k.otherCpu is not None]
            text = (f"  {label}: other processes during the kills: p50 {percentile(other, 50):.0f}%, max "
                    f"{max(other):.0f}% of a CPU" if other else f"  {label}: no CPU figures")
            if busy:
                text += (f" - WARNING: the machine was busy with other work during {len(busy)} of {len(r.kills)} "
                         f"kills ({', '.join(str(k.number) for k in busy)})")
            else:
                text += "; the machine was quiet"
            parts.append(text)
            if r.note:
                parts.append(f"  {label}: note: {r.note}")
            if r.error:
                parts.append(f"  {label}: FAILED: {r.error.splitlines()[0]}")
            for problem in r.problems:
                parts.append(f"  {label}: PROBLEM: {problem.splitlines()[0]}")
    return "\n".join(parts)


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.failover",
        description="failover of a master core: re-mastering, respawn, consistency, DNS (see benchmarks/README.md)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="SIGKILLs per core count")
    parser.add_argument("--cores", type=parseCores, default=parseCores("2,4"), help="core counts, e.g. 2,4")
    parser.add_argument("--sites", type=int, default=8, help="MEP sites: half dial the appliance, half are dialled")
    parser.add_argument("--services", type=int, default=2, help="services per site")
    parser.add_argument("--down", type=int, default=2, choices=(0, 1, 2),
                        help="sites taken down for good before the kills (a dialling one, then a dialled one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dns-pause", type=float, default=0.005, help="seconds between two DNS queries")
    parser.add_argument("--dns-tail", type=float, default=0.5,
                        help="seconds the DNS loop and polls go on after a kill's last figure")
    parser.add_argument("--kill-timeout", type=float, default=20.0, help="seconds a kill may take to recover")
    parser.add_argument("--quiet-timeout", type=float, default=60.0,
                        help="seconds to wait, before the first kill, for other processes to quieten")
    parser.add_argument("--kill-quiet-timeout", type=float, default=10.0,
                        help="seconds to wait before each kill for other processes to quieten")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--settle-timeout", type=float, default=60.0,
                        help="seconds for the sites to connect and every core to agree (also between kills)")
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and logs")
    options = parser.parse_args(argv)
    for name in ("repeat", "sites", "services"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if options.sites < 2:
        parser.error("--sites must be at least 2 (one of each direction)")
    if options.down and options.sites - options.down < 2:
        parser.error("keep at least 2 live sites")
    return options


async def run(reactor, options, argv: Sequence[str]) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"failover-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(logDir, "sites.log"), "a", encoding="utf-8"))],
        redirectStandardIO=False,
    )
    started = time.time()
    results: List[FailoverResult] = []
    with tempfile.TemporaryDirectory(prefix="gslb-failover-") as workDir:
        for cores in options.cores:
            results.append(await runFailover(reactor, options, cores, workDir, logDir))
    info = machine()
    import twisted

    info["twisted"] = twisted.__version__
    info["dnspython"] = dns.version.version
    text = report(results, options, info)
    commands = [f"{sys.executable} -m benchmarks.failover {' '.join(argv)}".rstrip()]
    commands += [" ".join(r.serverCommand) for r in results]
    text += "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in commands)
    print(text)
    document = {
        "benchmark": "failover",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "options": dict(vars(options)),
        "metrics_interval": METRICS_INTERVAL,
        "dead_interval": DEAD_INTERVAL,
        "commands": commands,
        "cases": [asdict(r) for r in results],
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    writeResults(options.results, f"failover-{stamp}.json", document)
    failed = any(r.error or r.problems or r.wrong or r.gone or r.targetMet is False for r in results)
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    reactorMain(parseArguments, run, argv)


if __name__ == "__main__":
    main()
