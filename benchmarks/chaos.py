"""
The chaos benchmark (issue 9), the long cases: one fault at a time,
injected into a real appliance under a steady DNS load, measured::

    .venv/bin/python -m benchmarks.chaos [--repeat N] [--rate QPS] [--cases core-kill,site-freeze,...]

Every run of every case gets a fresh lab (L{gslb_twisted.chaos.lab}): a
2-core appliance (C{twistd -n gslb}), three site emulators (C{twistd -n
gslb-site}; east and north behind a chaos proxy on their MEP link, in this
process), the appliance's own intervals (metrics 1 s, dead 3 s by
default), and the steady load (L{gslb_twisted.chaos.load}: 16 loopback
sources, C{--rate} queries per second, every answer judged).  Then:

  1. the load runs until it has been answered for C{--warmup} seconds;
  2. the fault (L{gslb_twisted.chaos.faults}): injected, detected,
     repaired, recovered, each by its own definition (C{benchmarks/CHAOS.md});
  3. C{--tail} seconds more of load, then the load stops: every query is
     answered or lost;
  4. everything is stopped; every process the lab ever had (the supervisor,
     every core pid seen, every site emulator) must be gone within 10 s.

It prints a table per case (time to detect and to recover, p50 and max
over the runs; queries answered, lost and wrong; processes left behind)
and the same as markdown for the README, and writes the figures, the
machine and the commands to C{benchmarks/results/chaos-<timestamp>.json}
(logs in C{chaos-<timestamp>.logs/}).  It exits 1 if a run failed, gave a
wrong answer or left a process behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, List, Optional, Sequence

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import globalLogBeginner, textFileLogObserver

from benchmarks.dns_qps import machine, renderTable
from benchmarks.propagation import percentile, reactorMain, say, writeResults
from benchmarks.servers import REPO, VENV_BIN
from gslb_twisted.chaos import faults
from gslb_twisted.chaos.faults import Control, FaultRun, until
from gslb_twisted.chaos.lab import (
    APPLIANCE_IP,
    NAME,
    SERVICE,
    SITE_IPS,
    SITE_OF,
    LabPorts,
    Timing,
    applianceTopology,
    proxyPlans,
    siteTopology,
)
from gslb_twisted.chaos.load import DownWindows, LoadGenerator, loopbackSources, readUDPDrops
from gslb_twisted.chaos.proxy import TCPProxy
from gslb_twisted.respawn import RespawnPolicy

RESULTS = os.path.join(REPO, "benchmarks", "results")
# A core that lived this long is respawned at once (RespawnPolicy); a younger
# one waits its backoff (1 s and up).  The core kills wait for it, as a
# production appliance's cores have lived that long.
RESPAWN_THRESHOLD = RespawnPolicy().threshold
# Losses count as the fault's from its injection to this long after recovery.
AFTERSHOCK = 1.0
TWISTD = os.path.join(VENV_BIN, "twistd")


# ---------------------------------------------------------------------------
# The cases: what each injects, and how the table names what it detects.


@dataclass(frozen=True)
class Case:
    name: str
    title: str  # the table's fault column
    detected: str  # what "detected" means, short
    recovered: str  # what "recovered" means, short
    run: Callable[..., Awaitable[FaultRun]]
    keptDown: tuple = ()  # sites down for the whole run (so wrong answers can show)
    age: float = 0.0  # seconds the appliance runs under load before the fault, beyond the warm-up


def _case(name, title, detected, recovered, run, keptDown=(), age=0.0) -> Case:
    return Case(name, title, detected, recovered, run, keptDown, age)


CASES: List[Case] = [
    _case("core-kill", "SIGKILL a core (core 1)", "supervisor sees it die",
          "respawned, every site UP with a master", lambda lab, o: faults.killCore(lab, 1), ("west",),
          age=RESPAWN_THRESHOLD),
    _case("control-core-kill", "SIGKILL the control core (core 0)", "supervisor sees it die",
          "respawned and leading the consolidation again", lambda lab, o: faults.killControlCore(lab), ("west",),
          age=RESPAWN_THRESHOLD),
    _case("control-core-kill-aged", "SIGKILL the control core (core 0) after 30 s (60 rounds)",
          "supervisor sees it die", "respawned and leading the consolidation again",
          lambda lab, o: faults.killControlCore(lab, deadline=180), ("west",), age=30.0),
    _case("core-stop", "SIGSTOP a core 5 s, then SIGCONT", "not detected (by design)",
          "answering again after SIGCONT", lambda lab, o: faults.stopCore(lab, 0, o.stop_seconds), ("west",)),
    _case("site-kill", "SIGKILL a site emulator (east)", "DOWN on every core",
          "UP everywhere and answered, after restart", lambda lab, o: faults.killSite(lab, "east", lab.hold)),
    _case("site-freeze", "SIGSTOP a site emulator (north)", "DOWN on every core",
          "UP everywhere and answered, after SIGCONT", lambda lab, o: faults.freezeSite(lab, "north", lab.hold)),
    _case("site-restart", "restart a site, seq from 1 again (east)", "master shows it DOWN",
          "every core holds the new process's metrics",
          lambda lab, o: faults.restartSite(lab, "east", SERVICE["east"])),
    _case("link-cut", "cut a MEP link (east)", "DOWN on every core",
          "UP everywhere and answered, after restore", lambda lab, o: faults.cutLink(lab, "east", lab.hold)),
    _case("link-blackhole", "blackhole a MEP link (north)", "DOWN on every core",
          "UP everywhere and answered, after restore", lambda lab, o: faults.blackholeLink(lab, "north", lab.hold)),
    _case("link-delay", "delay a MEP link 200 ms each way (east)", "MEP RTT >= 400 ms",
          "MEP RTT < 200 ms, after restore",
          lambda lab, o: faults.delayLink(lab, "east", SERVICE["east"], o.delay_ms)),
    _case("udp-flood", "flood the DNS socket (30,000 queries)", "kernel drops at the socket",
          "no steady query lost after it", lambda lab, o: faults.floodUDP(lab, o.flood), ("west",)),
]
CASE_NAMES = [case.name for case in CASES]


def parseCases(text: str) -> List[str]:
    """C{"all"} or a comma-separated list of case names, in the benchmark's order."""
    if text.strip() == "all":
        return list(CASE_NAMES)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in CASE_NAMES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown case {', '.join(unknown) or '(none)'}: expected 'all' or some of {', '.join(CASE_NAMES)}")
    return [name for name in CASE_NAMES if name in wanted]


# ---------------------------------------------------------------------------
# Results.


@dataclass
class Run:
    case: str
    number: int
    fault: Optional[dict] = None  # FaultRun.asDict()
    counts: Optional[dict] = None  # the steady load's counts
    latency: Optional[dict] = None
    lostDuringFault: Optional[int] = None  # lost among the queries sent from the injection to 1 s after recovery
    losses: List[list] = field(default_factory=list)  # [bucket start from the injection (s), lost] where any
    droppedAtAppliance: Optional[int] = None  # by the kernel at the appliance's DNS socket, during the load
    droppedHere: Optional[int] = None  # by the kernel at the load's own sockets (this process too busy)
    wrongSample: List[dict] = field(default_factory=list)
    left: List[int] = field(default_factory=list)  # pids alive 10 s after the stop
    loadBefore: Optional[float] = None
    loadAfter: Optional[float] = None
    error: Optional[str] = None
    logs: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error or self.left or (self.counts or {}).get("wrong"))


def lostBetween(buckets: Sequence[dict], width: float, start: float, end: float) -> int:
    """
    Queries lost among those sent in the buckets (C{width} seconds each,
    starts relative to the load's start) that overlap [C{start}, C{end}].
    """
    return sum(bucket["lost"] for bucket in buckets if bucket["start"] + width > start and bucket["start"] <= end)


def lossTimeline(buckets: Sequence[dict], injected: float, limit: int = 100) -> List[list]:
    """[start of the bucket relative to the injection, lost] of the buckets that lost queries (at most C{limit})."""
    return [[round(bucket["start"] - injected, 2), bucket["lost"]] for bucket in buckets if bucket["lost"]][:limit]


def summariseCase(case: Case, runs: Sequence[Run]) -> dict:
    """The table row of one case over its runs: p50 and max of detect and recover, sums of the counts."""
    done = [run for run in runs if run.fault is not None and not run.error]

    def stats(key):
        values = [run.fault[key] for run in done if run.fault.get(key) is not None]
        if not values:
            return None
        return {"n": len(values), "p50": percentile(values, 50), "max": max(values)}

    counts = {key: sum((run.counts or {}).get(key, 0) for run in runs)
              for key in ("sent", "answered", "lost", "wrong", "late", "empty", "failed")}
    return {
        "case": case.name,
        "title": case.title,
        "detected": case.detected,
        "recovered": case.recovered,
        "runs": len(runs),
        "failed": sum(1 for run in runs if run.failed),
        "detect": stats("detect"),
        "recover": stats("recover"),
        "counts": counts,
        "lost_during_fault": sum(run.lostDuringFault or 0 for run in runs),
        "lost_per_run": [run.lostDuringFault for run in runs],
        "dropped_at_appliance": sum(run.droppedAtAppliance or 0 for run in runs),
        "dropped_here": sum(run.droppedHere or 0 for run in runs),
        "left": sum(len(run.left) for run in runs),
    }


def _seconds(summary: Optional[dict], unit: str = "s") -> str:
    if summary is None:
        return "-"
    p50, top = summary["p50"], summary["max"]
    if summary["n"] == 1:
        return f"{p50:.2f} {unit}"
    return f"{p50:.2f} ({top:.2f}) {unit}"


def tableRows(summaries: Sequence[dict]) -> List[List[str]]:
    rows = []
    for row in summaries:
        counts = row["counts"]
        rows.append([
            row["title"],
            f"{row['detected']}: {_seconds(row['detect'])}" if row["detect"] else row["detected"],
            f"{row['recovered']}: {_seconds(row['recover'])}",
            f"{counts['answered']:,} / {counts['sent']:,}",
            ", ".join("-" if lost is None else f"{lost:,}" for lost in row["lost_per_run"]),
            f"{counts['wrong']:,}",
            str(row["left"]),
        ])
    return rows


HEADERS = ["fault", "time to detect", "time to recover", "answered / sent", "lost in the fault, per run", "wrong",
           "left behind"]


def markdownTable(summaries: Sequence[dict]) -> str:
    """The README's table."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---|---|---:|---:|---:|---:|"]
    for cells in tableRows(summaries):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(summaries: Sequence[dict], runs: Sequence[Run], options, info: dict) -> str:
    parts = [
        f"Machine: {info['nproc']} vCPU {info['cpu_model']}, kernel {info['kernel']}, Python {info['python']}"
        + (f", commit {info['commit']}" if info.get("commit") else ""),
        f"Lab: 2-core appliance, 3 site emulators (east, north behind MEP proxies), metrics_interval "
        f"{options.metrics_interval:g} s, dead_interval {options.dead_interval:g} s; steady load "
        f"{options.rate:,.0f} q/s from 16 sources, timeout {options.timeout:g} s; {options.repeat} run(s) per case.",
        "Times: p50 (max) over the runs. Answered / sent: the steady load over each whole run (warm-up, fault, "
        f"tail); lost in the fault: those sent from the injection to {AFTERSHOCK:g} s after recovery and not answered "
        f"within {options.timeout:g} s.",
        "",
        renderTable(HEADERS, tableRows(summaries)),
    ]
    for summary in summaries:
        extra = []
        outside = summary["counts"]["lost"] - summary["lost_during_fault"]
        if outside:
            extra.append(f"{outside} more lost outside the fault's window")
        if summary["dropped_at_appliance"]:
            explained = " (every lost query)" if summary["dropped_at_appliance"] == summary["counts"]["lost"] else ""
            extra.append(f"{summary['dropped_at_appliance']} datagrams dropped by the kernel at the appliance's socket, "
                         f"its receive buffer full{explained}")
        if summary["dropped_here"]:
            extra.append(f"{summary['dropped_here']} replies dropped at the load's own sockets")
        if summary["failed"]:
            extra.append(f"{summary['failed']} run(s) FAILED")
        if extra:
            parts.append(f"  {summary['case']}: " + "; ".join(extra))
    for run in runs:
        if run.error:
            parts.append(f"  {run.case} #{run.number}: ERROR {run.error.splitlines()[-1]}")
        if run.left:
            parts.append(f"  {run.case} #{run.number}: processes left behind: {run.left}")
        if run.wrongSample:
            parts.append(f"  {run.case} #{run.number}: WRONG ANSWERS, e.g. {run.wrongSample[:2]}")
    busy = [run for run in runs if (run.loadBefore or 0) > 1.5]
    if busy:
        parts.append(f"  note: the machine's load average was above 1.5 before {len(busy)} of {len(runs)} runs")
    parts += ["", "Markdown:", "", markdownTable(summaries)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# The lab: processes of its own.


class Proc(ProcessProtocol):
    """One child process, its output appended to a log file."""

    def __init__(self, reactor, argv: Sequence[str], logPath: str, cwd: str = REPO) -> None:
        self.reactor = reactor
        self.argv = list(argv)
        self.logPath = logPath
        self.cwd = cwd
        self.pid: Optional[int] = None
        self.pids: List[int] = []
        self.ended: Optional[defer.Deferred] = None
        self._log = None

    def start(self) -> None:
        self._log = open(self.logPath, "ab")
        self.ended = defer.Deferred()
        transport = self.reactor.spawnProcess(self, self.argv[0], self.argv, env=dict(os.environ), path=self.cwd)
        self.pid = transport.pid
        self.pids.append(self.pid)

    @property
    def running(self) -> bool:
        return self.ended is not None and not self.ended.called

    def outReceived(self, data: bytes) -> None:
        self._log.write(data)
        self._log.flush()

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        if self._log is not None:
            self._log.close()
        self.ended.callback(None)

    def stop(self, sig: int = signal.SIGTERM) -> defer.Deferred:
        """Signal it; fires once it has ended."""
        if not self.running:
            return defer.succeed(None)
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        return self.ended


class SiteHandle:
    """What the faults need of a site emulator: pid, control endpoint, start, stop."""

    def __init__(self, proc: Proc, control: str) -> None:
        self.proc = proc
        self.control = control

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid

    def start(self) -> None:
        self.proc.start()

    def stop(self, sig: int = signal.SIGTERM) -> defer.Deferred:
        return self.proc.stop(sig)


def freePort(host: str) -> int:
    import socket

    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            udp.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError(f"no free port on {host}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class BenchLab:
    """The lab of one run (see L{gslb_twisted.chaos.faults} for what a lab offers)."""

    def __init__(self, reactor, options, workDir: str, logDir: str, label: str, keptDown=()) -> None:
        self.reactor = reactor
        self.options = options
        self.keptDown = set(keptDown)
        self.windows = DownWindows(SITE_OF)
        self.timing = Timing(metricsInterval=options.metrics_interval, deadInterval=options.dead_interval)
        self.hold = max(100, int(options.rate * options.hold))
        ports = LabPorts(
            applianceMep=freePort(APPLIANCE_IP), eastMep=freePort(SITE_IPS["east"]),
            westMep=freePort(SITE_IPS["west"]), northMep=freePort(SITE_IPS["north"]),
            eastProxy=freePort(APPLIANCE_IP), northProxy=freePort(SITE_IPS["north"]),
        )
        self.ports = ports
        self.dnsPort = freePort("127.0.0.1")
        self.label = label
        self.topologyPath = os.path.join(logDir, f"{label}.toml")
        with open(self.topologyPath, "w") as f:
            f.write(applianceTopology(ports, self.timing))
        self.control_endpoint = f"unix:{os.path.join(workDir, label + '.ctl')}"
        self.appliance = Proc(reactor, [
            TWISTD, "--pidfile=", "-n", "gslb", "--config", self.topologyPath, "--cores", "2",
            "--dns", f"udp:{self.dnsPort}:interface=127.0.0.1", "--control", self.control_endpoint,
        ], os.path.join(logDir, f"{label}.log"))
        self.sites: Dict[str, SiteHandle] = {}
        for name in SITE_IPS:
            path = os.path.join(logDir, f"{label}-site-{name}.toml")
            with open(path, "w") as f:
                f.write(siteTopology(name, ports, self.timing))
            control = f"unix:{os.path.join(workDir, f'{label}-{name}.ctl')}"
            proc = Proc(reactor, [TWISTD, "--pidfile=", "-n", "gslb-site", "--config", path, "--site", name,
                                  "--control", control], os.path.join(logDir, f"{label}-site-{name}.log"))
            self.sites[name] = SiteHandle(proc, control)
        self.proxies: Dict[str, TCPProxy] = {}
        self.control: Optional[Control] = None
        self.load: Optional[LoadGenerator] = None
        self.corePids: set = set()
        self.dropsAtLoadStart = 0

    def site(self, name: str) -> SiteHandle:
        return self.sites[name]

    def proxy(self, name: str) -> TCPProxy:
        return self.proxies[name]

    async def rememberCores(self) -> None:
        try:
            self.corePids.update(row["pid"] for row in await self.control.cores() if row.get("pid"))
        except Exception:
            pass

    async def start(self) -> None:
        for name, (listen, target) in proxyPlans(self.ports, self.ports.applianceMep).items():
            proxy = TCPProxy(self.reactor, listen, target, name=f"{name}-mep")
            proxy.startService()
            await proxy.listening
            self.proxies[name] = proxy
        for site in self.sites.values():
            site.start()
        self.appliance.start()

        async def controlUp():
            if not self.appliance.running:
                raise faults.FaultTimeout(f"the appliance exited early (log: {self.appliance.logPath})")
            try:
                self.control = await Control.connect(self.reactor, self.control_endpoint)
            except Exception:
                return False
            return True

        await until(self.reactor, controlUp, 30, "the appliance's control endpoint", interval=0.1)

        async def ready():
            cores = await self.control.cores()
            if len(cores) != 2 or any(row.get("state") != "up" for row in cores):
                return False
            sites = await self.control.sites()
            return all(row["state"] == "UP" and row["master_core"] is not None for row in sites.values())

        await until(self.reactor, ready, 30, "both cores up and every site UP with a master", interval=0.1)
        await self.rememberCores()
        for name in sorted(self.keptDown):
            await self.sites[name].stop(signal.SIGKILL)
            await until(self.reactor, lambda name=name: self.control.heldEverywhere(name, "DOWN"), 30,
                        f"every core to hold {name} DOWN")
            self.windows.down(name, self.reactor.seconds())
        options = self.options
        self.dropsAtLoadStart = readUDPDrops(self.dnsPort) or 0
        self.load = LoadGenerator(self.reactor, ("127.0.0.1", self.dnsPort), [NAME], rate=options.rate,
                                  sources=loopbackSources(16), timeout=options.timeout, classify=self.windows,
                                  bucketWidth=0.1, maxBuckets=6000)
        self.load.start()
        warm = int(options.rate * options.warmup)
        await until(self.reactor, lambda: self.load.totals.answered >= warm, 60, "the warm-up load to be answered")

    async def stop(self) -> List[int]:
        """Stop everything; @return: pids still alive 10 s later (then SIGKILLed)."""
        if self.load is not None and self.load.stoppedAt is None:
            await self.load.stop()
        await self.rememberCores()
        if self.control is not None:
            self.control.close()
        for site in self.sites.values():
            await site.stop()
        await self.appliance.stop()
        for proxy in self.proxies.values():
            await proxy.stopService()
        pids = set(self.corePids) | set(self.appliance.pids)
        for site in self.sites.values():
            pids.update(site.proc.pids)
        try:
            await until(self.reactor, lambda: not [p for p in pids if alive(p)], 10, "every process to exit",
                        interval=0.1)
        except faults.FaultTimeout:
            pass
        left = sorted(p for p in pids if alive(p))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


# ---------------------------------------------------------------------------
# The measurement.


async def oneRun(reactor, options, case: Case, number: int, workDir: str, logDir: str) -> Run:
    label = f"{case.name}-{number}"
    run = Run(case.name, number, loadBefore=os.getloadavg()[0])
    lab = BenchLab(reactor, options, workDir, logDir, label, case.keptDown)
    run.logs = os.path.relpath(os.path.join(logDir, label + ".log"), REPO)
    try:
        await lab.start()
        await lab.rememberCores()
        if case.age:
            await faults.sleep(reactor, case.age)
        fault = await case.run(lab, options)
        await lab.rememberCores()
        run.fault = fault.asDict()
        await faults.sleep(reactor, options.tail)
        loadReport = await lab.load.stop()
        run.droppedAtAppliance = (readUDPDrops(lab.dnsPort) or 0) - lab.dropsAtLoadStart
        run.droppedHere = loadReport["dropped_here"]
        run.counts = loadReport["counts"]
        run.latency = loadReport["latency_ms"]
        run.wrongSample = loadReport["wrong_sample"]
        origin = lab.load.startedAt
        end = (fault.recoveredAt if fault.recoveredAt is not None else reactor.seconds()) + AFTERSHOCK
        run.lostDuringFault = lostBetween(loadReport["buckets"], lab.load.bucketWidth, fault.injectedAt - origin,
                                          end - origin)
        run.losses = lossTimeline(loadReport["buckets"], fault.injectedAt - origin)
    except Exception:
        run.error = traceback.format_exc()
    finally:
        run.left = await lab.stop()
        run.loadAfter = os.getloadavg()[0]
    return run


def gitCommit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos",
        description="one fault at a time under steady DNS load: time to detect and recover, queries lost and "
                    "wrong, processes left behind (see benchmarks/CHAOS.md)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case")
    parser.add_argument("--cases", type=parseCases, default=list(CASE_NAMES),
                        help=f"'all' or some of: {', '.join(CASE_NAMES)}")
    parser.add_argument("--rate", type=float, default=20000.0, help="steady load, queries per second")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds after which a query is lost")
    parser.add_argument("--metrics-interval", type=float, default=1.0)
    parser.add_argument("--dead-interval", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of answered load before the fault")
    parser.add_argument("--tail", type=float, default=2.0, help="seconds of load after the recovery")
    parser.add_argument("--hold", type=float, default=1.0,
                        help="seconds of load while a site is DOWN, before it is repaired")
    parser.add_argument("--stop-seconds", type=float, default=5.0, help="how long core-stop keeps the core stopped")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="link-delay's delay each way")
    parser.add_argument("--flood", type=int, default=30000, help="udp-flood's queries")
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and the logs")
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    if options.rate <= 0:
        parser.error("--rate must be positive")
    if options.dead_interval <= options.metrics_interval:
        parser.error("--dead-interval must exceed --metrics-interval")
    if options.delay_ms * 2 >= options.dead_interval * 1000:
        parser.error("--delay-ms each way must stay under half the dead interval (the site must stay UP)")
    return options


async def run(reactor, options, argv: Sequence[str]) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"chaos-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(logDir, "bench.log"), "a", encoding="utf-8"))],
        redirectStandardIO=False,
    )
    started = time.time()
    cases = [case for case in CASES if case.name in options.cases]
    runs: List[Run] = []
    with tempfile.TemporaryDirectory(prefix="gslb-chaos-") as workDir:
        for number in range(1, options.repeat + 1):
            for case in cases:
                say(f"{case.name} #{number} ...")
                result = await oneRun(reactor, options, case, number, workDir, logDir)
                runs.append(result)
                fault = result.fault or {}
                say(f"  detect {fault.get('detect')}, recover {fault.get('recover')}, counts {result.counts}, "
                    f"left {result.left}" + (f"\n  ERROR {result.error}" if result.error else ""))
    summaries = [summariseCase(case, [r for r in runs if r.case == case.name]) for case in cases]
    info = machine()
    info["commit"] = gitCommit()
    text = report(summaries, runs, options, info)
    command = f"{sys.executable} -m benchmarks.chaos {' '.join(argv)}".rstrip()
    text += f"\n\nCommand (from {REPO}):\n  {command}"
    print(text)
    document = {
        "benchmark": "chaos",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "options": dict(vars(options)),
        "command": command,
        "summaries": summaries,
        "runs": [dataclasses.asdict(r) for r in runs],
        "logs": os.path.relpath(logDir, REPO),
        "markdown": markdownTable(summaries),
        "report": text,
    }
    writeResults(options.results, f"chaos-{stamp}.json", document)
    return 1 if any(r.failed for r in runs) else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    reactorMain(parseArguments, run, argv)


if __name__ == "__main__":
    main()
