"""
DNS throughput of the appliance per load-balancing method, next to plain
ROUNDROBIN and the stock twisted.names server, measured in the same run
with dnsperf over loopback (issue 4, deliverable 10)::

    .venv/bin/python -m benchmarks.dns_qps_methods [--duration 10] [--repeat 3]

Cases (C{--cases}):

  names        twisted.names (L{benchmarks.names_server})
  rr-static    gslb ROUNDROBIN over two static sites (C{benchmarks/bench.toml}, as
               C{benchmarks.dns_qps} case b)
  rr           gslb ROUNDROBIN over 8 services at 4 MEP sites, each a real site
               emulator (C{twistd -n gslb-site}) sending fresh metrics every second
  lc           the same with LEASTCONNECTION
  lc-persist   the same with LEASTCONNECTION + C{persistence = "SOURCEIP"}
  hash         the same with SOURCEIPHASH
  proximity    the same with STATICPROXIMITY (sites at four cities)

Every gslb case runs C{twistd -n gslb --cores 1}, supervisor and core pinned
to CPU 0; dnsperf and the site emulators run on CPU 1.  Each case is asked
twice per server start (C{--variants}):

  plain   C{www.bench.gslb A}, no EDNS, from 127.0.0.1: one client, the
          appliance's fast path;
  ecs     the same question with an EDNS Client Subnet option, one of
          C{--ecs-clients} distinct /24s drawn from the IPv4 networks of
          C{fixtures/locations.csv}, in a dnsperf C{-B} (wire format) file:
          that many clients for the decision engine (persistence entries,
          hash keys, locations), answered by the fast path too (it takes an
          OPT whose one option is a well-formed client subnet).

Before and after each run the harness checks with C{gslb-console resolve}
that the method decides without falling back (a site without fresh metrics
would make LEASTCONNECTION answer ROUNDROBIN); after the C{ecs} run it
counts the persistence sessions the sites received.  The cases are
interleaved C{--repeat} times (a fresh server each time) and the median is
reported.  JSON goes to C{benchmarks/results/dns_qps_methods-<timestamp>.json}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import dns.edns
import dns.flags
import dns.message

from benchmarks import dnsperf, procstat
from benchmarks.decision_cost import sourceRevision
from benchmarks.dns_qps import (
    DNSPERF_CPUS,
    OTHER_LOAD_WARNING,
    QUIET_SAMPLE,
    SERVER_CPUS,
    machine,
    portFree,
    renderTable,
    waitForCpu,
)
from benchmarks.propagation import writeResults
from benchmarks.servers import (
    QUERY_NAME,
    REPO,
    VENV_BIN,
    GslbServer,
    NamesServer,
    ServerError,
    ServerProcess,
)

RESULTS = os.path.join(REPO, "benchmarks", "results")
LOCATIONS = os.path.join(REPO, "fixtures", "locations.csv")

APPLIANCE_IP = "127.0.9.9"
SECRET = "bench-secret"
# (name, address, lat, lon): below the appliance's address, so each dials it.
SITES = (
    ("east", "127.0.1.1", 40.71, -74.01),  # New York
    ("west", "127.0.1.2", 37.77, -122.42),  # San Francisco
    ("europe", "127.0.1.3", 50.11, 8.68),  # Frankfurt
    ("asia", "127.0.1.4", 35.68, 139.69),  # Tokyo
)
SERVICES_PER_SITE = 2


@dataclass(frozen=True)
class MethodCase:
    """
    @ivar lbMethod: the vserver's method; C{None} for twisted.names and for
        C{rr-static} (the fixed C{bench.toml}).
    @ivar sites: whether the topology has the four MEP sites (emulators run).
    """

    key: str
    title: str
    lbMethod: Optional[str] = None
    persistence: bool = False
    sites: bool = True
    names: bool = False


CASES = [
    MethodCase("names", "twisted.names", names=True, sites=False),
    MethodCase("rr-static", "gslb ROUNDROBIN, 2 static sites (bench.toml)", "ROUNDROBIN", sites=False),
    MethodCase("rr", "gslb ROUNDROBIN", "ROUNDROBIN"),
    MethodCase("lc", "gslb LEASTCONNECTION", "LEASTCONNECTION"),
    MethodCase("lc-persist", "gslb LEASTCONNECTION + SOURCEIP persistence", "LEASTCONNECTION", persistence=True),
    MethodCase("hash", "gslb SOURCEIPHASH", "SOURCEIPHASH"),
    MethodCase("proximity", "gslb STATICPROXIMITY", "STATICPROXIMITY"),
]
CASE_BY_KEY = {case.key: case for case in CASES}
DEFAULT_CASES = ",".join(CASE_BY_KEY)
VARIANTS = ("plain", "ecs")

# (label, numerator, denominator), per variant, when both cases ran.
RATIOS = [
    ("lc-persist/rr", "lc-persist", "rr"),
    ("lc/rr", "lc", "rr"),
    ("hash/rr", "hash", "rr"),
    ("proximity/rr", "proximity", "rr"),
    ("rr/rr-static", "rr", "rr-static"),
    ("rr/names", "rr", "names"),
    ("lc-persist/names", "lc-persist", "names"),
    ("rr-static/names", "rr-static", "names"),
]


# ---------------------------------------------------------------------------
# The topology and the queries.


def serviceName(site: str, index: int) -> str:
    return f"{site}-web{index + 1}"


def topologyToml(case: MethodCase, mepPort: int, controlDir: str) -> str:
    """
    The appliance's topology for a case with MEP sites: four sites with an
    emulator each (seeded random walk: connections move every second), two
    services per site, one vserver C{www.bench.gslb} with the case's method.
    """
    lines = [
        "# Generated by benchmarks.dns_qps_methods: do not edit.",
        "[appliance]",
        'name = "bench"',
        f'ip = "{APPLIANCE_IP}"',
        "cores = 1",
        f"mep_port = {mepPort}",
        f'mep_secret = "{SECRET}"',
        "metrics_interval = 1.0",
        "dead_interval = 3.0",
        f'location_db = "{LOCATIONS}"',
        "",
        "[[zone]]",
        'name = "bench.gslb"',
        'ns = ["ns1.bench.gslb"]',
        "soa_minimum = 30",
        "",
    ]
    services = []
    for number, (name, ip, lat, lon) in enumerate(SITES):
        lines += [
            "[[site]]",
            f'name = "{name}"',
            f'ip = "{ip}"',
            f"location = {{ lat = {lat!r}, lon = {lon!r} }}",
            "  [site.emulator]",
            f'  control = "unix:{os.path.join(controlDir, name + ".ctl")}"',
            f"  seed = {7 + number}",
            "",
        ]
        for index in range(SERVICES_PER_SITE):
            service = serviceName(name, index)
            services.append(service)
            lines += [
                "[[service]]",
                f'name = "{service}"',
                f'site = "{name}"',
                f'ip = "192.0.2.{10 * (number + 1) + index}"',
                "port = 80",
                'type = "HTTP"',
                "max_clients = 1000",
                "",
            ]
    lines += [
        "[[vserver]]",
        'name = "www"',
        f'domains = ["{QUERY_NAME}"]',
        f'lb_method = "{case.lbMethod}"',
        'backup_lb_method = "ROUNDROBIN"',
        "ttl = 5",
        "answers = 1",
        "services = [" + ", ".join(f'"{s}"' for s in services) + "]",
    ]
    if case.persistence:
        lines += ['persistence = "SOURCEIP"', "persistence_timeout = 300"]
    return "\n".join(lines) + "\n"


def ecsSubnets(count: int, rng: random.Random, path: str = LOCATIONS) -> List[str]:
    """
    C{count} distinct /24s (C{"a.b.c.0"}), each inside (or holding) a random
    IPv4 network of the location file.
    """
    import ipaddress

    networks = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            network = ipaddress.ip_network(line.split(",", 1)[0].strip())
            if network.version == 4:
                networks.append(network)
    capacity = sum(max(1, network.num_addresses // 256) for network in networks)
    if capacity < count:
        raise ValueError(f"the location file holds only {capacity} distinct /24s")
    chosen: Dict[str, None] = {}
    while len(chosen) < count:
        network = rng.choice(networks)
        blocks = max(1, network.num_addresses // 256)
        base = int(network.network_address) & ~0xFF
        chosen.setdefault(str(ipaddress.IPv4Address(base + 256 * rng.randrange(blocks))), None)
    return list(chosen)


def ecsQueries(subnets: Sequence[str]) -> List[bytes]:
    """C{www.bench.gslb A} with EDNS and a /24 client subnet option, per subnet."""
    messages = []
    for subnet in subnets:
        query = dns.message.make_query(
            QUERY_NAME, "A", use_edns=0, payload=1232, options=[dns.edns.ECSOption(subnet, 24)]
        )
        query.flags &= ~dns.flags.RD
        messages.append(query.to_wire())
    return messages


# ---------------------------------------------------------------------------
# Processes.


def freeTcpPort(host: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def console(control: str, command: str, timeout: float = 10.0):
    """C{gslb-console --connect CONTROL -c COMMAND --json}, parsed."""
    argv = [os.path.join(VENV_BIN, "gslb-console"), "--connect", control, "-c", command, "--json"]
    try:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=timeout, cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        raise ServerError(f"`{command}` did not return within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise ServerError(f"`{command}` exited with {result.returncode}: {result.stderr.strip()[:300]}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise ServerError(f"`{command}` printed no JSON: {result.stdout[:200]!r}") from None


class MethodServer(GslbServer):
    """
    The appliance with its four site emulators (started by us, pinned with
    dnsperf, so that their CPU is not the appliance's).
    """

    def __init__(self, *args, case: MethodCase, siteProcesses: Sequence[ServerProcess], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.case = case
        self.siteProcesses = list(siteProcesses)
        self.lastResolve: Optional[dict] = None

    def start(self) -> None:
        super().start()
        for site in self.siteProcesses:
            site.start()

    def stop(self, grace: float = 10.0) -> List[str]:
        problems = []
        for site in self.siteProcesses:
            problems.extend(site.stop(grace))
        return problems + super().stop(grace)

    def sitePids(self) -> List[int]:
        pids = []
        for site in self.siteProcesses:
            if site.process is not None and site.process.poll() is None:
                pids.extend(site.pids())
        return pids

    def ready(self) -> bool:
        """Every core up; with sites, every site UP and the method deciding without fallback."""
        if not super().ready():
            return False
        if not self.siteProcesses:
            return True
        try:
            sites = console(self.control, "show gslb site")
            if not isinstance(sites, list) or len(sites) != len(SITES):
                return False
            if not all(str(site.get("state", "")).upper() == "UP" for site in sites):
                return False
            return self.deciding()
        except ServerError:
            return False

    def deciding(self) -> bool:
        """Does C{resolve www.bench.gslb} use the configured method, with no fallback?"""
        result = console(self.control, f"resolve {QUERY_NAME}")
        self.lastResolve = result
        return result.get("method") == self.case.lbMethod and not result.get("fallback")

    def persistenceSessions(self) -> Optional[int]:
        """The persistence sessions the first site emulator holds (shared to it over MEP)."""
        if not self.siteProcesses:
            return None
        rows = console(self.siteProcesses[0].control, "show sessions")
        return len(rows) if isinstance(rows, list) else None


class SiteProcess(ServerProcess):
    label = "site emulator"

    def __init__(self, command, logPath: str, control: str) -> None:
        super().__init__(command, APPLIANCE_IP, 0, logPath)
        self.control = control


def buildServer(case: MethodCase, port: int, workDir: str, logDir: str, tag: str) -> ServerProcess:
    control = f"unix:{os.path.join(workDir, case.key + '.ctl')}"
    log = os.path.join(logDir, f"{case.key}-{tag}.log")
    if case.names:
        return NamesServer.build(port, SERVER_CPUS, log)
    if not case.sites:
        return GslbServer.build(port, 1, SERVER_CPUS, control, log)
    mepPort = freeTcpPort(APPLIANCE_IP)
    config = os.path.join(workDir, f"{case.key}.toml")
    text = topologyToml(case, mepPort, workDir)
    # The second copy is kept with the logs, for the record.
    for path in (config, os.path.join(logDir, f"{case.key}.toml")):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    sites = []
    for name, _, _, _ in SITES:
        command = ["taskset", "-c", DNSPERF_CPUS, sys.executable, "-m", "gslb_twisted.site", "--pidfile=",
                   "-n", "gslb-site", "--config", config, "--site", name]
        siteControl = f"unix:{os.path.join(workDir, name + '.ctl')}"
        sites.append(SiteProcess(command, os.path.join(logDir, f"{case.key}-{tag}-{name}.log"), siteControl))
    gslb = GslbServer.build(port, 1, SERVER_CPUS, control, log, config=config)
    return MethodServer(gslb.command, gslb.host, gslb.port, log, control, 1, case=case, siteProcesses=sites)


# ---------------------------------------------------------------------------
# Running.


@dataclass
class Run:
    """One dnsperf run of one case and variant."""

    case: str
    variant: str
    repeat: int
    qps: float = 0.0
    lost: int = 0
    latencyMean: Optional[float] = None
    latencyP99: Optional[float] = None
    rcodes: Dict[str, int] = field(default_factory=dict)
    serverCpu: Optional[float] = None
    sitesCpu: Optional[float] = None
    dnsperfCpu: Optional[float] = None
    otherCpu: Optional[float] = None
    methodBefore: Optional[str] = None
    methodAfter: Optional[str] = None
    fallbackAfter: Optional[bool] = None
    persistenceSessions: Optional[int] = None
    disturbed: List[float] = field(default_factory=list)
    error: Optional[str] = None


class Harness:
    def __init__(self, options, executable: str, workDir: str, logDir: str) -> None:
        self.options = options
        self.executable = executable
        self.workDir = workDir
        self.logDir = logDir
        pin = DNSPERF_CPUS if (os.cpu_count() or 1) >= 2 else None
        base = dnsperf.DnsperfLoad(
            duration=options.duration, clients=options.clients, threads=1, outstanding=options.outstanding,
            timeout=options.timeout, verbose=True, cpus=pin,
        )
        plainFile = dnsperf.writeQueryFile(os.path.join(workDir, "plain.txt"), [f"{QUERY_NAME} A"])
        self.subnets = ecsSubnets(options.ecs_clients, random.Random(options.seed))
        ecsFile = dnsperf.writeBinaryQueryFile(os.path.join(workDir, "ecs.bin"), ecsQueries(self.subnets))
        self.loads = {"plain": (base, plainFile), "ecs": (replace(base, binary=True), ecsFile)}
        self.commands: Dict[str, List[str]] = {}
        self.serverCommands: Dict[str, List[str]] = {}
        self.problems: List[str] = []
        # The idle appliance and its emulators use a few % of a CPU: not
        # "other processes" once they run.
        self.expectedIdle = 0.0

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def waitQuiet(self, label: str) -> float:
        deadline = time.monotonic() + self.options.quiet_timeout
        said = False
        while True:
            before, t0 = procstat.hostCpuTicks(), time.monotonic()
            time.sleep(QUIET_SAMPLE)
            busy = procstat.busyPercent(before, procstat.hostCpuTicks(), time.monotonic() - t0)
            if busy < OTHER_LOAD_WARNING + self.expectedIdle or time.monotonic() > deadline:
                return round(busy, 1)
            if not said:
                self.say(f"[{label}] waiting for other processes to quieten ({busy:.0f}% CPU busy)")
                said = True

    def runCase(self, case: MethodCase, repeat: int) -> List[Run]:
        port = self.options.port
        server = buildServer(case, port, self.workDir, self.logDir, f"r{repeat}")
        self.serverCommands[case.key] = server.command
        if not portFree(server.host, port):
            return [Run(case.key, v, repeat, error=f"port {port} is in use; pass --port") for v in self.options.variantList]
        self.expectedIdle = 0.0
        self.waitQuiet(case.key)
        self.say(f"[{case.key} #{repeat + 1}] starting: {' '.join(server.command)}")
        server.start()
        runs = []
        try:
            server.waitReady(self.options.ready_timeout)
            self.expectedIdle = 5.0 if isinstance(server, MethodServer) else 0.0
            for variant in self.options.variantList:
                runs.append(self.runVariant(case, server, variant, repeat))
        except (ServerError, dnsperf.DnsperfOutputError) as e:
            runs.append(Run(case.key, "-", repeat, error=str(e)))
        finally:
            problems = server.stop()
            for problem in problems:
                self.say(f"[{case.key}] PROBLEM: {problem}")
            self.problems.extend(f"{case.key}: {p}" for p in problems)
        return runs

    def runVariant(self, case: MethodCase, server: ServerProcess, variant: str, repeat: int) -> Run:
        """
        One run; a run during which other processes took more than
        C{OTHER_LOAD_WARNING} % of a CPU is redone up to C{--retries} times,
        and the least disturbed attempt is kept.
        """
        attempts: List[Run] = []
        for attempt in range(self.options.retries + 1):
            self.waitQuiet(f"{case.key}/{variant}")
            run = self.once(case, server, variant, repeat)
            attempts.append(run)
            if run.error or (run.otherCpu or 0) <= OTHER_LOAD_WARNING:
                break
            if attempt < self.options.retries:
                self.say(f"[{case.key}/{variant}] other processes took {run.otherCpu:.0f}% CPU; running it again")
        kept = run if run.error else min(attempts, key=lambda r: r.otherCpu or 0)
        kept.disturbed = [r.otherCpu for r in attempts if r is not kept and r.otherCpu is not None]
        return kept

    def once(self, case: MethodCase, server: ServerProcess, variant: str, repeat: int) -> Run:
        run = Run(case.key, variant, repeat)
        methodServer = server if isinstance(server, MethodServer) else None
        if methodServer is not None:
            if not methodServer.deciding():
                run.error = f"{case.lbMethod} is not deciding before the run: {_resolveSummary(methodServer.lastResolve)}"
                return run
            run.methodBefore = methodServer.lastResolve.get("method")
        load, queryFile = self.loads[variant]
        argv = dnsperf.dnsperfCommand(self.executable, server.host, server.port, queryFile, load)
        self.commands[variant] = argv
        out = os.path.join(self.workDir, f"{case.key}-{variant}.out")
        err = os.path.join(self.logDir, f"{case.key}-{variant}-r{repeat}.dnsperf.err")
        serverPids = server.pids()
        sitePids = methodServer.sitePids() if methodServer else []
        cpuBefore = procstat.sampleCpu(serverPids + sitePids)
        hostBefore, t0 = procstat.hostCpuTicks(), time.monotonic()
        self.say(f"[{case.key}/{variant} #{repeat + 1}] dnsperf: {' '.join(argv)}")
        process = dnsperf.start(argv, out, err)
        dnsperfSeconds = waitForCpu(process)
        cpuAfter = procstat.sampleCpu(serverPids + sitePids)
        hostAfter, t1 = procstat.hostCpuTicks(), time.monotonic()
        result = dnsperf.readResult(out)
        os.unlink(out)
        seconds = t1 - t0
        usage = procstat.cpuPercent(cpuBefore, cpuAfter, seconds)
        run.qps, run.lost = result.qps, result.lost
        run.latencyMean, run.latencyP99, run.rcodes = result.latencyMean, result.latencyP99, result.rcodes
        run.serverCpu = round(sum(p for pid, p in usage.items() if pid in serverPids), 1)
        run.sitesCpu = round(sum(p for pid, p in usage.items() if pid in sitePids), 1) if sitePids else None
        run.dnsperfCpu = round(100.0 * dnsperfSeconds / seconds, 1)
        hostBusy = procstat.busyPercent(hostBefore, hostAfter, seconds)
        run.otherCpu = round(max(0.0, hostBusy - run.serverCpu - (run.sitesCpu or 0) - run.dnsperfCpu), 1)
        if methodServer is not None:
            decided = methodServer.deciding()
            run.methodAfter = methodServer.lastResolve.get("method")
            run.fallbackAfter = bool(methodServer.lastResolve.get("fallback"))
            if not decided:
                run.error = f"{case.lbMethod} was not deciding after the run: {_resolveSummary(methodServer.lastResolve)}"
            if case.persistence:
                run.persistenceSessions = methodServer.persistenceSessions()
        self.say(f"[{case.key}/{variant} #{repeat + 1}] {run.qps:.0f} QPS, lost {run.lost}, server CPU "
                 f"{run.serverCpu:.0f}%, other {run.otherCpu:.0f}%"
                 + ("" if run.persistenceSessions is None else f", {run.persistenceSessions} persistence sessions"))
        return run


def _resolveSummary(result: Optional[dict]) -> str:
    if not result:
        return "no resolve result"
    return (f"method {result.get('method')}, fallback {result.get('fallback')} "
            f"({result.get('fallback_reason') or result.get('fallbackReason') or ''})")


# ---------------------------------------------------------------------------
# Summaries.


@dataclass
class Summary:
    case: str
    title: str
    variant: str
    qps: Optional[float]
    qpsRuns: List[float]
    lost: int
    latencyMean: Optional[float]
    latencyP99: Optional[float]
    serverCpu: Optional[float]
    sitesCpu: Optional[float]
    dnsperfCpu: Optional[float]
    otherCpu: Optional[float]
    persistenceSessions: Optional[int]
    errors: List[str]


def summarise(runs: Sequence[Run], cases: Sequence[MethodCase], variants: Sequence[str]) -> List[Summary]:
    """Per case and variant: the median QPS, and the other figures of the median run."""
    out = []
    for case in cases:
        for variant in variants:
            mine = [r for r in runs if r.case == case.key and r.variant == variant]
            good = sorted((r for r in mine if not r.error), key=lambda r: r.qps)
            errors = [r.error for r in runs if r.case == case.key and r.error and r.variant in (variant, "-")]
            if not good:
                out.append(Summary(case.key, case.title, variant, None, [], 0, None, None, None, None, None, None,
                                   None, errors))
                continue
            median = good[(len(good) - 1) // 2]
            sessions = [r.persistenceSessions for r in good if r.persistenceSessions is not None]
            out.append(Summary(
                case.key, case.title, variant, statistics.median(r.qps for r in good), [r.qps for r in good],
                sum(r.lost for r in good), median.latencyMean, median.latencyP99, median.serverCpu,
                median.sitesCpu, median.dnsperfCpu, max((r.otherCpu or 0) for r in good),
                max(sessions) if sessions else None, errors,
            ))
    return out


def ratios(summaries: Sequence[Summary]) -> List[dict]:
    qps = {(s.case, s.variant): s.qps for s in summaries if s.qps}
    out = []
    for variant in VARIANTS:
        for label, numerator, denominator in RATIOS:
            a, b = qps.get((numerator, variant)), qps.get((denominator, variant))
            if a and b:
                out.append({"variant": variant, "label": label, "ratio": round(a / b, 3)})
    return out


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(summaries: Sequence[Summary], options, subnets: int) -> str:
    parts = []
    for variant in options.variantList:
        rows = []
        for s in (s for s in summaries if s.variant == variant):
            runsText = "-" if not s.qpsRuns else f"{min(s.qpsRuns):.0f}-{max(s.qpsRuns):.0f}"
            rows.append([
                s.case, s.title, "FAILED" if s.qps is None else f"{s.qps:.0f}", runsText,
                f"{_ms(s.latencyMean)} / {_ms(s.latencyP99)}", str(s.lost), _pct(s.serverCpu),
                _pct(s.sitesCpu), _pct(s.dnsperfCpu), _pct(s.otherCpu),
                "-" if s.persistenceSessions is None else str(s.persistenceSessions),
            ])
        what = ("plain `www.bench.gslb A` from 127.0.0.1 (1 client; the appliance's fast path)"
                if variant == "plain" else
                f"`www.bench.gslb A` + ECS, {subnets} distinct /24 client subnets (fast path since the ECS fast path)")
        parts.append(f"{variant}: {what}")
        parts.append(renderTable(
            ["case", "server", "QPS (median)", f"range ({options.repeat} runs)", "mean / p99 ms", "lost",
             "server CPU%", "sites CPU%", "dnsperf CPU%", "other CPU% (max)", "persistence sessions"], rows))
        parts.append("")
    computed = ratios(summaries)
    if computed:
        parts.append("Ratios of median QPS (same run)")
        labels = sorted({r["label"] for r in computed}, key=[label for label, _, _ in RATIOS].index)
        table = {(r["label"], r["variant"]): r["ratio"] for r in computed}
        parts.append(renderTable(
            ["ratio"] + list(options.variantList),
            [[label] + [f"{table[(label, v)]:.2f}" if (label, v) in table else "-" for v in options.variantList]
             for label in labels]))
    busy = [f"{s.case}/{s.variant}" for s in summaries if (s.otherCpu or 0) > OTHER_LOAD_WARNING]
    if busy:
        parts.append(f"  WARNING: other processes used over {OTHER_LOAD_WARNING}% CPU during {', '.join(busy)}.")
    for s in summaries:
        for error in s.errors:
            parts.append(f"  {s.case}/{s.variant}: FAILED: {error.splitlines()[0]}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Entry point.


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dns_qps_methods",
        description="DNS QPS per LB method vs ROUNDROBIN and twisted.names, with dnsperf (see benchmarks/README.md)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per dnsperf run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated: " + ", ".join(CASE_BY_KEY))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: plain, ecs")
    parser.add_argument("--ecs-clients", type=int, default=10000, help="distinct ECS /24s in the ecs variant")
    parser.add_argument("--port", type=int, default=5399, help="UDP port on 127.0.0.1")
    parser.add_argument("--clients", type=int, default=64, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--timeout", type=float, default=2.0, help="dnsperf -t")
    parser.add_argument("--retries", type=int, default=2,
                        help="times a run disturbed by other processes is redone")
    parser.add_argument("--quiet-timeout", type=float, default=120.0)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and logs")
    options = parser.parse_args(argv)
    wanted = [part.strip() for part in options.cases.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in CASE_BY_KEY]
    if unknown or not wanted:
        parser.error(f"--cases: unknown {', '.join(unknown) or 'none given'} (known: {', '.join(CASE_BY_KEY)})")
    options.caseList = [case for case in CASES if case.key in wanted]
    variants = [part.strip() for part in options.variants.split(",") if part.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: expected some of {', '.join(VARIANTS)}")
    options.variantList = [v for v in VARIANTS if v in variants]
    if options.repeat < 1 or options.ecs_clients < 1:
        parser.error("--repeat and --ecs-clients must be at least 1")
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parseArguments(argv)
    try:
        executable = dnsperf.findDnsperf()
    except dnsperf.DnsperfMissing as e:
        print(f"dns_qps_methods: {e}", file=sys.stderr)
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"dns_qps_methods-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    started = time.time()
    revision = sourceRevision()
    runs: List[Run] = []
    with tempfile.TemporaryDirectory(prefix="gslb-qpsm-") as workDir:
        harness = Harness(options, executable, workDir, logDir)
        try:
            for repeat in range(options.repeat):
                for case in options.caseList:
                    runs.extend(harness.runCase(case, repeat))
        except KeyboardInterrupt:
            print("dns_qps_methods: interrupted", file=sys.stderr)
    summaries = summarise(runs, options.caseList, options.variantList)
    text = report(summaries, options, len(harness.subnets))
    command = f"{sys.executable} -m benchmarks.dns_qps_methods {' '.join(argv)}".rstrip()
    commands = [command]
    commands += [f"{case}: {' '.join(argv_)}" for case, argv_ in harness.serverCommands.items()]
    commands += [f"dnsperf {variant}: {' '.join(argv_)}" for variant, argv_ in harness.commands.items()]
    text += "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in commands)
    revisionAfter = sourceRevision()
    text += f"\nRevision: {revision['commit']}" + (" + uncommitted changes to gslb_twisted/" if revision["product_changed"] else "")
    if revisionAfter != revision:
        text += f"\n  WARNING: the product changed during the run (now {revisionAfter}): rerun."
    print(text)
    import twisted

    info = machine()
    info["twisted"] = twisted.__version__
    document = {
        "benchmark": "dns_qps_methods",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "revision": revision,
        "revision_after": revisionAfter,
        "dnsperf": {"path": executable, "version": dnsperf.dnsperfVersion(executable)},
        "options": {k: v for k, v in vars(options).items() if k not in ("caseList",)},
        "commands": commands,
        "ecs_subnets": {"count": len(harness.subnets), "sample": harness.subnets[:10]},
        "runs": [asdict(run) for run in runs],
        "summaries": [asdict(s) for s in summaries],
        "ratios": ratios(summaries),
        "problems": harness.problems,
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    writeResults(options.results, f"dns_qps_methods-{stamp}.json", document)
    failed = any(r.error for r in runs) or harness.problems
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
