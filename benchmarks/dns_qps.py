"""
DNS throughput of the gslb appliance against the stock twisted.names server,
driven by dnsperf over loopback.  One invocation runs every case in turn::

    .venv/bin/python -m benchmarks.dns_qps [--duration 10] [--cases a,b,c,k] [--port 5399]

Cases (see benchmarks/README.md):

  a            twisted.names authoritative server, pinned to CPU 0
  b            gslb, 1 core (supervisor and core pinned to CPU 0)
  c-inherit    gslb, 2 cores sharing the supervisor's socket (not pinned)
  c-reuseport  gslb, 2 cores with one SO_REUSEPORT socket each (not pinned)
  k-inherit    gslb, 2 cores, fixed rate, one core SIGKILLed mid-run
  k-reuseport  the same with SO_REUSEPORT

C{c} and C{k} select both of their sharing modes.  dnsperf runs pinned to
CPU 1.  It prints a table and the ratios, and writes the figures, the machine
and the exact commands to C{benchmarks/results/dns_qps-<timestamp>.json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks import dnsperf, procstat
from benchmarks.servers import (
    REPO,
    GslbServer,
    NamesServer,
    ServerError,
    ServerProcess,
    corePid,
    coreUp,
)

RESULTS = os.path.join(REPO, "benchmarks", "results")
QUERIES = ["www.bench.gslb A"]

OTHER_LOAD_WARNING = 10
QUIET_SAMPLE = 1.0

SERVER_CPUS = "0"
DNSPERF_CPUS = "1"


# ---------------------------------------------------------------------------
# Cases.


@dataclass(frozen=True)
class Case:
    """
    One measurement.

    @ivar key: what C{--cases} names it by.
    @ivar kind: C{"saturate"} (dnsperf as fast as the server answers) or
        C{"kill"} (a fixed rate, one core SIGKILLed part-way).
    @ivar makeServer: C{(port, control, logPath) -> ServerProcess}.
    @ivar pinned: whether the server is pinned to C{SERVER_CPUS}.
    """

    key: str
    title: str
    kind: str
    makeServer: Callable[[int, str, str], ServerProcess]
    pinned: bool = True
    note: str = ""


def _names(cpus):
    return lambda port, control, log: NamesServer.build(port, cpus, log)


def _gslb(cores, cpus, sharing=None):
    return lambda port, control, log: GslbServer.build(
        port, cores, cpus, control, log, socketSharing=sharing
    )


FLOATING = "not pinned: dnsperf (on CPU 1) competes with the cores for CPU"

CASES = [
    Case("a", "twisted.names", "saturate", _names(SERVER_CPUS)),
    Case("b", "gslb 1 core", "saturate", _gslb(1, SERVER_CPUS)),
    Case("c-inherit", "gslb 2 cores, inherit", "saturate", _gslb(2, None, "inherit"),
         pinned=False, note=FLOATING),
    Case("c-reuseport", "gslb 2 cores, reuseport", "saturate", _gslb(2, None, "reuseport"),
         pinned=False, note=FLOATING),
    Case("k-inherit", "gslb 2 cores, inherit, core killed", "kill", _gslb(2, None, "inherit"),
         pinned=False),
    Case("k-reuseport", "gslb 2 cores, reuseport, core killed", "kill", _gslb(2, None, "reuseport"),
         pinned=False),
]
CASE_BY_KEY = {case.key: case for case in CASES}
GROUPS = {"c": ["c-inherit", "c-reuseport"], "k": ["k-inherit", "k-reuseport"]}
DEFAULT_CASES = "a,b,c,k"

# (label, numerator, denominator): printed when both cases ran.
RATIOS = [
    ("b/a  gslb 1 core vs twisted.names", "b", "a"),
    ("c/b  2 cores (inherit) vs 1 core", "c-inherit", "b"),
    ("c/b  2 cores (reuseport) vs 1 core", "c-reuseport", "b"),
    ("reuseport/inherit  (2 cores)", "c-reuseport", "c-inherit"),
]


def selectCases(spec: str) -> List[Case]:
    """
    The cases C{--cases} names, in the order of L{CASES}.

    @raise ValueError: an unknown name.
    """
    wanted = set()
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in CASE_BY_KEY:
            wanted.add(name)
        else:
            known = ", ".join(list(CASE_BY_KEY) + list(GROUPS))
            raise ValueError(f"unknown case {name!r} (known: {known})")
    return [case for case in CASES if case.key in wanted]


# ---------------------------------------------------------------------------
# Results.


@dataclass
class CaseResult:
    key: str
    title: str
    kind: str
    note: str
    serverCommand: List[str]
    pinned: bool = True
    dnsperfCommand: List[str] = field(default_factory=list)
    dnsperf: Optional[dict] = None
    wallSeconds: float = 0.0
    startupSeconds: Optional[float] = None
    cpuPercent: Dict[str, float] = field(default_factory=dict)
    cpuTotal: Optional[float] = None
    dnsperfCpu: Optional[float] = None
    hostBusy: Optional[float] = None
    otherCpu: Optional[float] = None
    backgroundCpu: Optional[float] = None
    coresBefore: Optional[list] = None
    coresAfter: Optional[list] = None
    coreShares: Optional[Dict[str, float]] = None
    kill: Optional[dict] = None
    runs: List[dict] = field(default_factory=list)
    disturbedRuns: List[dict] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None


def coreShares(before: Sequence[dict], after: Sequence[dict]) -> Optional[Dict[str, float]]:
    """
    Each core's share of the queries served between two C{show cores}
    listings, by core id.  A core whose pid changed (respawned) counts from
    zero.
    """
    start = {core.get("core"): core for core in before}
    deltas = {}
    for core in after:
        previous = start.get(core.get("core"))
        queries = core.get("queries") or 0
        if previous is not None and previous.get("pid") == core.get("pid"):
            queries -= previous.get("queries") or 0
        deltas[str(core.get("core"))] = max(0, queries)
    total = sum(deltas.values())
    if not total:
        return None
    return {core: n / total for core, n in sorted(deltas.items())}


def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def portFree(host: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
    except OSError:
        return False
    finally:
        s.close()
    return True


# ---------------------------------------------------------------------------
# Running.


class Bench:
    """
    Runs the selected cases one after the other.
    """

    def __init__(self, options, executable: str, logDir: str, workDir: str) -> None:
        self.options = options
        self.executable = executable
        self.logDir = logDir
        self.workDir = workDir
        self.queryFile = dnsperf.writeQueryFile(os.path.join(workDir, "queries.txt"), QUERIES)
        pin = DNSPERF_CPUS if (os.cpu_count() or 1) >= 2 else None
        self.load = dnsperf.DnsperfLoad(
            duration=options.duration,
            clients=options.clients,
            threads=options.threads,
            outstanding=options.outstanding,
            timeout=options.timeout,
            verbose=not options.no_percentiles,
            cpus=pin,
        )
        self.killLoad = replace(
            self.load, duration=options.kill_duration, maxQps=options.kill_rate, timeout=1.0,
            statsInterval=1,
        )

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def waitQuiet(self, case: Case) -> float:
        """
        Wait (up to C{--quiet-timeout} seconds) until the rest of the
        machine uses less than C{OTHER_LOAD_WARNING} % of a CPU, so that
        other people's test runs do not skew the figures.

        @return: the background load last measured, in percent of one CPU.
        """
        deadline = time.monotonic() + self.options.quiet_timeout
        said = False
        while True:
            before, t0 = procstat.hostCpuTicks(), time.monotonic()
            time.sleep(QUIET_SAMPLE)
            busy = procstat.busyPercent(before, procstat.hostCpuTicks(), time.monotonic() - t0)
            if busy < OTHER_LOAD_WARNING or time.monotonic() > deadline:
                if busy >= OTHER_LOAD_WARNING:
                    self.say(f"[{case.key}] the machine is still busy ({busy:.0f}% CPU); measuring anyway")
                return round(busy, 1)
            if not said:
                self.say(f"[{case.key}] waiting for other processes to quieten ({busy:.0f}% CPU busy)")
                said = True

    def run(self, case: Case) -> CaseResult:
        port = self.options.port
        control = f"unix:{os.path.join(self.workDir, case.key + '.ctl')}"
        server = case.makeServer(port, control, os.path.join(self.logDir, case.key + ".log"))
        result = CaseResult(case.key, case.title, case.kind, case.note, server.command, case.pinned)
        if not portFree(server.host, port):
            result.error = f"port {port} on {server.host} is in use; pass --port"
            return result
        result.backgroundCpu = self.waitQuiet(case)
        self.say(f"[{case.key}] starting: {' '.join(server.command)}")
        server.start()
        try:
            result.startupSeconds = server.waitReady(self.options.ready_timeout)
            if case.kind == "kill":
                self.runKill(case, server, result)
            else:
                self.runSaturate(case, server, result)
        except (ServerError, dnsperf.DnsperfOutputError) as e:
            result.error = str(e)
        finally:
            result.problems.extend(server.stop())
        for problem in result.problems:
            self.say(f"[{case.key}] PROBLEM: {problem}")
        if result.error:
            self.say(f"[{case.key}] FAILED: {result.error}")
        return result

    def startDnsperf(self, case: Case, server: ServerProcess, load, result: CaseResult):
        argv = dnsperf.dnsperfCommand(self.executable, server.host, server.port, self.queryFile, load)
        result.dnsperfCommand = argv
        out = os.path.join(self.workDir, case.key + ".dnsperf.out")
        err = os.path.join(self.logDir, case.key + ".dnsperf.err")
        self.say(f"[{case.key}] dnsperf: {' '.join(argv)}")
        return dnsperf.start(argv, out, err), out

    def finishDnsperf(self, case: Case, process, out: str, result: CaseResult) -> None:
        process.wait()
        parsed = dnsperf.readResult(out)
        result.dnsperf = parsed.asJSON()
        # Keep the summary, not the per-query lines.
        with open(out, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 2048))
            tail = f.read()
        with open(os.path.join(self.logDir, case.key + ".dnsperf.txt"), "wb") as f:
            f.write(tail)
        os.unlink(out)

    def sample(self, case: Case, server: ServerProcess):
        cores = server.showCores() if isinstance(server, GslbServer) else None
        pids = server.pids()
        return cores, procstat.sampleCpu(pids), procstat.hostCpuTicks(), time.monotonic()

    def roles(self, server: ServerProcess, cores: Optional[list]) -> Dict[int, str]:
        names = {server.pid: "supervisor" if isinstance(server, GslbServer) else "server"}
        for core in cores or ():
            if corePid(core):
                names[core["pid"]] = f"core {core.get('core')}"
        return names

    def runSaturate(self, case: Case, server: ServerProcess, result: CaseResult) -> None:
        """
        Saturate the server C{--repeat} times (the same server process) and
        keep the run of median QPS; every run is in C{result.runs}.  A run
        during which other processes took more than C{OTHER_LOAD_WARNING} %
        of a CPU is discarded and redone, up to C{--retries} times.
        """
        runs = []
        disturbed = []
        for repetition in range(self.options.repeat):
            for attempt in range(self.options.retries + 1):
                if repetition or attempt:
                    self.waitQuiet(case)
                run = self.saturateOnce(case, server)
                if (run.otherCpu or 0) <= OTHER_LOAD_WARNING:
                    break
                disturbed.append(summariseRun(run))
                if attempt < self.options.retries:
                    self.say(f"[{case.key}] other processes took {run.otherCpu:.0f}% CPU "
                             f"during the run; running it again")
            runs.append(run)
        runs.sort(key=lambda run: run.dnsperf["qps"])
        median = runs[(len(runs) - 1) // 2]
        for name in ("dnsperfCommand", "dnsperf", "wallSeconds", "cpuPercent", "cpuTotal",
                     "dnsperfCpu", "hostBusy", "otherCpu", "coresBefore", "coresAfter",
                     "coreShares"):
            setattr(result, name, getattr(median, name))
        result.runs = [summariseRun(run) for run in runs]
        result.disturbedRuns = disturbed

    def saturateOnce(self, case: Case, server: ServerProcess) -> CaseResult:
        run = CaseResult(case.key, case.title, case.kind, case.note, server.command)
        coresBefore, cpuBefore, hostBefore, t0 = self.sample(case, server)
        process, out = self.startDnsperf(case, server, self.load, run)
        dnsperfSeconds = waitForCpu(process)
        coresAfter, cpuAfter, hostAfter, t1 = self.sample(case, server)
        self.finishDnsperf(case, process, out, run)
        run.wallSeconds = t1 - t0
        usage = procstat.cpuPercent(cpuBefore, cpuAfter, t1 - t0)
        roles = self.roles(server, coresAfter)
        run.cpuPercent = {
            f"{roles.get(pid, 'other')} ({pid})": round(p, 1) for pid, p in usage.items()
        }
        run.cpuTotal = round(sum(usage.values()), 1)
        run.dnsperfCpu = round(100.0 * dnsperfSeconds / (t1 - t0), 1)
        run.hostBusy = round(procstat.busyPercent(hostBefore, hostAfter, t1 - t0), 1)
        run.otherCpu = round(max(0.0, run.hostBusy - run.cpuTotal - run.dnsperfCpu), 1)
        if coresBefore is not None:
            run.coresBefore, run.coresAfter = coresBefore, coresAfter
            run.coreShares = coreShares(coresBefore, coresAfter)
        return run

    def runKill(self, case: Case, server: GslbServer, result: CaseResult) -> None:
        coresBefore = server.showCores()
        victim = max(coresBefore, key=lambda core: core.get("core", 0))
        if corePid(victim) is None:
            raise ServerError(f"`show cores` gives no pid for core {victim.get('core')}: {victim}")
        process, out = self.startDnsperf(case, server, self.killLoad, result)
        t0 = time.monotonic()
        time.sleep(self.options.kill_at)
        killedAt = time.monotonic() - t0
        os.kill(victim["pid"], signal.SIGKILL)
        self.say(f"[{case.key}] SIGKILLed core {victim.get('core')} (pid {victim['pid']}) at t={killedAt:.1f} s")
        # Time until the supervisor lists a new, serving process for that core.
        respawned = spawned = None
        newPid = None
        while process.poll() is None and respawned is None:
            time.sleep(0.2)
            try:
                cores = server.showCores(timeout=2.0)
            except ServerError:
                continue
            for core in cores:
                if (core.get("core") == victim.get("core") and corePid(core)
                        and core["pid"] != victim["pid"] and coreUp(core)):
                    respawned = time.monotonic() - t0 - killedAt
                    newPid = core["pid"]
                    if isinstance(core.get("uptime"), (int, float)):
                        spawned = respawned - core["uptime"]
        process.wait()
        coresAfter = server.showCores()
        self.finishDnsperf(case, process, out, result)
        result.wallSeconds = time.monotonic() - t0
        result.coresBefore, result.coresAfter = coresBefore, coresAfter
        result.coreShares = coreShares(coresBefore, coresAfter)
        result.kill = {
            "rate": self.killLoad.maxQps,
            "killed_core": victim.get("core"),
            "killed_pid": victim["pid"],
            "killed_at": round(killedAt, 2),
            "new_pid": newPid,
            # When `show cores` first listed the new process up (polled:
            # an upper bound), and when it was spawned (from its uptime).
            "respawn_seconds": None if respawned is None else round(respawned, 2),
            "spawned_after_seconds": None if spawned is None else round(spawned, 2),
        }


def summariseRun(run: CaseResult) -> dict:
    return {
        "qps": run.dnsperf["qps"], "lost": run.dnsperf["lost"], "cpu": run.cpuTotal,
        "dnsperf_cpu": run.dnsperfCpu, "other_cpu": run.otherCpu, "core_shares": run.coreShares,
    }


def waitForCpu(process) -> float:
    """
    Wait for C{process} (our child) to exit, and return the CPU seconds it
    used (user + system, its own children included).
    """
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------
# Output.


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _shares(shares: Optional[Dict[str, float]]) -> str:
    if not shares:
        return "-"
    return "/".join(f"{100 * share:.0f}" for share in shares.values())


def renderTable(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def ratios(results: Sequence[CaseResult]) -> List[dict]:
    qps = {r.key: r.dnsperf["qps"] for r in results if r.dnsperf and r.kind == "saturate"}
    out = []
    for label, numerator, denominator in RATIOS:
        if numerator in qps and denominator in qps and qps[denominator]:
            out.append({"label": label, "numerator": numerator, "denominator": denominator,
                        "ratio": qps[numerator] / qps[denominator]})
    return out


def report(results: Sequence[CaseResult], load, killLoad) -> str:
    parts = []
    saturated = [r for r in results if r.kind == "saturate"]
    if saturated:
        rows = []
        for r in saturated:
            d = r.dnsperf or {}
            rows.append([
                r.key, r.title,
                f"{d['qps']:.0f}" if d else "FAILED",
                _ms(d.get("latencyMean")), _ms(d.get("latencyP99")),
                str(d.get("lost", "-")),
                "-" if r.cpuTotal is None else f"{r.cpuTotal:.0f}",
                "-" if r.dnsperfCpu is None else f"{r.dnsperfCpu:.0f}",
                "-" if r.otherCpu is None else f"{r.otherCpu:.0f}",
                _shares(r.coreShares),
            ])
            if len(r.runs) > 1:
                rows[-1].append(f"{r.runs[0]['qps']:.0f}-{r.runs[-1]['qps']:.0f}")
        headers = ["case", "server", "QPS", "mean ms", "p99 ms", "lost", "CPU%",
                   "dnsperf CPU%", "other CPU%", "core shares %"]
        if any(len(r.runs) > 1 for r in saturated):
            headers.append(f"QPS range ({len(saturated[0].runs)} runs, median shown)")
            for row in rows:
                if len(row) < len(headers):
                    row.append("-")
        parts.append(
            f"Saturation: dnsperf -c {load.clients} -T {load.threads} -q {load.outstanding} "
            f"-l {load.duration:g} over loopback, dnsperf pinned to CPU {load.cpus}"
        )
        parts.append(renderTable(headers, rows))
        notes = sorted({r.note for r in saturated if r.note})
        for note in notes:
            parts.append(f"  note: c-* are {note}.")
        parts.append("  CPU% is the server's processes (100 = one CPU); other CPU% is the rest of "
                     "the machine (other\n  processes: should be near 0); mean/p99 latency at "
                     "saturation is mostly queueing (outstanding / QPS).")
        busy = [r.key for r in saturated if (r.otherCpu or 0) > OTHER_LOAD_WARNING]
        if busy:
            parts.append(f"  WARNING: other processes used over {OTHER_LOAD_WARNING}% CPU during "
                         f"{', '.join(busy)}: those figures are disturbed; rerun on a quiet machine.")
    killed = [r for r in results if r.kind == "kill"]
    if killed:
        if parts:
            parts.append("")
        rows = []
        for r in killed:
            d, k = r.dnsperf or {}, r.kill or {}
            rows.append([
                r.key, str(d.get("sent", "-")), str(d.get("completed", "-")),
                str(d.get("lost", "FAILED" if r.error else "-")),
                f"{k['killed_at']:.1f}" if k else "-",
                "-" if k.get("spawned_after_seconds") is None else f"{k['spawned_after_seconds']:.2f}",
                "-" if k.get("respawn_seconds") is None else f"{k['respawn_seconds']:.1f}",
                f"{min(d['intervals']):.0f}" if d.get("intervals") else "-",
                _shares(r.coreShares),
            ])
        parts.append(
            f"Core killed: dnsperf -Q {killLoad.maxQps} -l {killLoad.duration:g} -t {killLoad.timeout:g}, "
            f"one core SIGKILLed part-way"
        )
        parts.append(renderTable(
            ["case", "sent", "completed", "lost", "killed at s", "new core spawned after s",
             "seen up after s",
             "worst second QPS", "core shares %"], rows
        ))
    computed = ratios(results)
    if computed:
        parts.append("")
        parts.append("Ratios (QPS)")
        for ratio in computed:
            parts.append(f"  {ratio['label']:<40} {ratio['ratio']:.2f}")
    failures = [r for r in results if r.error or r.problems]
    if failures:
        parts.append("")
        for r in failures:
            if r.error:
                parts.append(f"  {r.key}: FAILED: {r.error.splitlines()[0]}")
            for problem in r.problems:
                parts.append(f"  {r.key}: {problem}")
    return "\n".join(parts)


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dns_qps",
        description="DNS QPS of gslb vs twisted.names with dnsperf (see benchmarks/README.md)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per saturation case")
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help="comma-separated: " + ", ".join(list(CASE_BY_KEY) + list(GROUPS)))
    parser.add_argument("--port", type=int, default=5399, help="UDP port on 127.0.0.1")
    parser.add_argument("--repeat", type=int, default=1,
                        help="dnsperf runs per saturation case; the median QPS run is reported")
    parser.add_argument("--clients", type=int, default=64, help="dnsperf -c")
    parser.add_argument("--threads", type=int, default=1, help="dnsperf -T")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--timeout", type=float, default=2.0, help="dnsperf -t")
    parser.add_argument("--no-percentiles", action="store_true",
                        help="run dnsperf without -v (no p50/p99)")
    parser.add_argument("--kill-rate", type=int, default=5000, help="dnsperf -Q in the k cases")
    parser.add_argument("--kill-duration", type=float, default=10.0)
    parser.add_argument("--kill-at", type=float, default=3.0, help="seconds before the SIGKILL")
    parser.add_argument("--retries", type=int, default=2,
                        help="times a saturation run disturbed by other processes is redone")
    parser.add_argument("--quiet-timeout", type=float, default=120.0,
                        help="seconds to wait, before each case, for other processes to quieten")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and logs")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parseArguments(sys.argv[1:] if argv is None else argv)
    try:
        cases = selectCases(options.cases)
    except ValueError as e:
        print(f"dns_qps: {e}", file=sys.stderr)
        return 2
    try:
        executable = dnsperf.findDnsperf()
    except dnsperf.DnsperfMissing as e:
        print(f"dns_qps: {e}", file=sys.stderr)
        return 1
    if not cases:
        print("dns_qps: no case selected", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"dns_qps-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="gslb-bench-") as workDir:
        bench = Bench(options, executable, logDir, workDir)
        try:
            for case in cases:
                results.append(bench.run(case))
        except KeyboardInterrupt:
            print("dns_qps: interrupted", file=sys.stderr)
    text = report(results, bench.load, bench.killLoad)
    print(text)
    document = {
        "benchmark": "dns_qps",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine(),
        "dnsperf": {"path": executable, "version": dnsperf.dnsperfVersion(executable)},
        "load": asdict(bench.load),
        "kill_load": asdict(bench.killLoad),
        "query_file": QUERIES,
        "cases": [asdict(r) for r in results],
        "ratios": ratios(results),
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    path = os.path.join(options.results, f"dns_qps-{stamp}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print(f"\nresults: {os.path.relpath(path, os.getcwd())}")
    failed = any(r.error or r.problems for r in results) or len(results) < len(cases)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
