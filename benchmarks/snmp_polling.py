"""
What polling SNMP sites costs the appliance: 200 SNMP sites x 10 OIDs every
C{metrics_interval} (1 s), against the same appliance with 200 static sites
in their place, in one run::

    .venv/bin/python -m benchmarks.snmp_polling [--sites 200] [--duration 20]

One net-snmp C{snmpd} (Debian's) plays every site's agent: one process
listening on one loopback address per site (127.0.6.1, 127.0.6.2, ...; from
the 251st site 127.0.7.x), community C{bench}, serving the host's own MIBs.
The addresses go on its command line, not in an C{agentAddress} line:
snmpd keeps C{agentAddress} values in a 2 560-byte buffer and silently
drops what does not fit (121 such addresses with a 5-digit port).

Two phases, each a fresh C{twistd -n gslb} with 2 cores (not pinned) and a
generated topology (C{metrics_interval} 1 s, C{dead_interval} 3 s):

  baseline  N static sites (C{metric_exchange = false}), one service each,
            a static anchor site, one ROUNDROBIN vserver
  snmp      the same, but the N sites are C{protocol = "snmp"}, each polled
            at its own address with the C{bench-host} table (10 OIDs)

snmpd runs (idle) during the baseline too, so that the only difference is
the polling.  Once the appliance answers DNS and (snmp) every site is UP,
after C{--settle} seconds, for C{--duration} seconds the harness sends DNS
queries at a steady C{--rate} from one UDP socket and times each answer,
and samples C{/proc/PID/stat} of each core, the supervisor and snmpd every
C{--tick} seconds.  C{show gslb site --json} before and after gives the
polls (C{snmp_polls}, C{snmp_failures}, C{snmp_skipped}) of every site.

It prints a table and writes the figures, the machine, the exact commands
and the ratios SNMP/baseline to C{benchmarks/results/snmp_polling.json};
the logs and topologies go to C{benchmarks/results/snmp_polling.logs/}.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import dns.message

from benchmarks import procstat
from benchmarks.decision_cost import sourceRevision
from benchmarks.dns_qps import OTHER_LOAD_WARNING, QUIET_SAMPLE, machine, renderTable
from benchmarks.dns_qps_methods import console
from benchmarks.propagation import percentile, writeResults
from benchmarks.servers import REPO, GslbServer, ServerError, corePid

RESULTS = os.path.join(REPO, "benchmarks", "results")
RESULT_NAME = "snmp_polling.json"

COMMUNITY = "bench"
ZONE = "bench.gslb"
QUERY_NAME = "www." + ZONE
APPLIANCE_IP = "127.0.7.254"  # where the polls come from (the SNMP client binds it)
ANCHOR_IP = "127.0.7.253"  # the static site that always answers
SITES_PER_NET = 250
MAX_SITES = 2 * SITES_PER_NET
CORES = 2
TABLE = "bench-host"
# snmpd answers ssCpuIdle (the table's cpu and load) only once it has run
# this long (it averages the last minute); before, noSuchInstance.
CPU_HISTORY = 60.0

# The table polled: the shipped linux-host table's eight OIDs (the same
# metrics, as fixtures/metric_tables/linux-host.toml has them) and two more
# the agent answers from its own MIBs.  One GET of 10 OIDs per site per
# interval.  {interface} is the site's snmp.interface (1: "lo").
TABLE_METRICS: Tuple[Tuple[str, str], ...] = (
    # TCP-MIB::tcpCurrEstab.0
    ("connections", '{ oid = "1.3.6.1.2.1.6.9.0", type = "gauge", ceiling = 1000 }'),
    # UCD-SNMP-MIB::ssCpuIdle.0, read twice under two names (one OID)
    ("cpu", '{ oid = "1.3.6.1.4.1.2021.11.11.0", type = "gauge", scale = -1, offset = 100, ceiling = 100 }'),
    ("load", '{ oid = "1.3.6.1.4.1.2021.11.11.0", type = "gauge", scale = -1, offset = 100, ceiling = 100 }'),
    # UCD-SNMP-MIB::laLoadInt.1
    ("load_average", '{ oid = "1.3.6.1.4.1.2021.10.1.5.1", type = "gauge", scale = 0.01, ceiling = 4 }'),
    # UCD-SNMP-MIB::memAvailReal.0 / memTotalReal.0
    ("memory", '{ oid = "1.3.6.1.4.1.2021.4.6.0", type = "ratio", of = "1.3.6.1.4.1.2021.4.5.0", '
               'scale = -100, offset = 100, ceiling = 100 }'),
    # IF-MIB::ifHCOutOctets, ifHCInOctets, ifHCOutUcastPkts
    ("bandwidth", '{ oid = "1.3.6.1.2.1.31.1.1.1.10.{interface}", type = "counter", scale = 0.008, ceiling = 1000000 }'),
    ("bandwidth_in", '{ oid = "1.3.6.1.2.1.31.1.1.1.6.{interface}", type = "counter", scale = 0.008, ceiling = 1000000 }'),
    ("packets", '{ oid = "1.3.6.1.2.1.31.1.1.1.11.{interface}", type = "counter", ceiling = 100000 }'),
    # The two more: IF-MIB::ifHCInUcastPkts, TCP-MIB::tcpInSegs.0
    ("packets_in", '{ oid = "1.3.6.1.2.1.31.1.1.1.7.{interface}", type = "counter", ceiling = 100000 }'),
    ("tcp_in_segments", '{ oid = "1.3.6.1.2.1.6.10.0", type = "counter", ceiling = 100000 }'),
)


# ---------------------------------------------------------------------------
# The topologies.


def siteName(index: int) -> str:
    return f"site-{index + 1:03d}"


def serviceName(index: int) -> str:
    return f"{siteName(index)}-web"


def siteAddress(index: int) -> str:
    """Site C{index} (from 0): 127.0.6.1-250, then 127.0.7.1-250."""
    if not 0 <= index < MAX_SITES:
        raise ValueError(f"site index {index} is outside 0..{MAX_SITES - 1}")
    net, host = divmod(index, SITES_PER_NET)
    return f"127.0.{6 + net}.{host + 1}"


def serviceAddress(index: int) -> str:
    """The service of site C{index}: in 198.18.0.0/15 (benchmarking addresses)."""
    net, host = divmod(index, SITES_PER_NET)
    return f"198.18.{net}.{host + 1}"


def metricTableToml() -> str:
    lines = ["[[metric_table]]", f'name = "{TABLE}"',
             'description = "linux-host (fixtures/metric_tables) plus ifHCInUcastPkts and tcpInSegs: 10 OIDs"',
             "  [metric_table.metrics]"]
    lines += [f"  {name} = {spec}" for name, spec in TABLE_METRICS]
    return "\n".join(lines)


def topologyToml(sites: int, snmp: bool, snmpPort: int, vserverSites: int = 4,
                 metricsInterval: float = 1.0, deadInterval: float = 3.0, cores: int = CORES,
                 community: str = COMMUNITY) -> str:
    """
    The topology of one phase: C{sites} sites (SNMP, polled at C{snmpPort}
    of their own address, or static), one service each, a static anchor
    site, and one ROUNDROBIN vserver over the anchor's service and the
    first C{vserverSites} sites' services.  The two phases' topologies
    differ only in the sites' C{protocol}/C{snmp} or C{metric_exchange}
    lines (and the metric table, unused by the baseline).
    """
    if not 1 <= sites <= MAX_SITES:
        raise ValueError(f"sites must be from 1 to {MAX_SITES}")
    kind = f"{sites} SNMP sites x 10 OIDs" if snmp else f"{sites} static sites (baseline)"
    out = [
        f"# Generated by benchmarks.snmp_polling: {kind}.",
        "[appliance]",
        'name = "snmpbench"',
        f'ip = "{APPLIANCE_IP}"',
        f"cores = {cores}",
        f"metrics_interval = {metricsInterval!r}",
        f"dead_interval = {deadInterval!r}",
        "",
        "[[zone]]",
        f'name = "{ZONE}"',
        f'ns = ["ns1.{ZONE}"]',
        "",
        "[[site]]",
        'name = "anchor"',
        f'ip = "{ANCHOR_IP}"',
        "metric_exchange = false",
        "",
        "[[service]]",
        'name = "anchor-web"',
        'site = "anchor"',
        'ip = "192.0.2.1"',
        "port = 80",
        'type = "HTTP"',
    ]
    for index in range(sites):
        out += ["", "[[site]]", f'name = "{siteName(index)}"', f'ip = "{siteAddress(index)}"']
        if snmp:
            out += ['protocol = "snmp"',
                    f'snmp = {{ port = {snmpPort}, version = "2c", community = "{community}", table = "{TABLE}" }}']
        else:
            out.append("metric_exchange = false")
        out += ["", "[[service]]", f'name = "{serviceName(index)}"', f'site = "{siteName(index)}"',
                f'ip = "{serviceAddress(index)}"', "port = 80", 'type = "HTTP"']
    bound = ["anchor-web"] + [serviceName(i) for i in range(min(vserverSites, sites))]
    out += ["", "[[vserver]]", 'name = "www"', f'domains = ["{QUERY_NAME}"]', 'lb_method = "ROUNDROBIN"',
            "ttl = 5", "answers = 1", "services = [" + ", ".join(f'"{s}"' for s in bound) + "]"]
    if snmp:
        out += ["", metricTableToml()]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# The agent: one snmpd on every site's address.


def findSnmpd() -> Optional[str]:
    found = shutil.which("snmpd")
    if found:
        return found
    return "/usr/sbin/snmpd" if os.path.exists("/usr/sbin/snmpd") else None


def parseProcNetUdp(text: str) -> List[Tuple[str, int]]:
    """The local (address, port) of every IPv4 UDP socket in C{/proc/net/udp}."""
    bound = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[1]:
            continue
        hexAddress, hexPort = fields[1].split(":")
        # The address is the kernel's 32-bit word printed in host order.
        raw = int(hexAddress, 16).to_bytes(4, sys.byteorder)
        bound.append((socket.inet_ntoa(raw), int(hexPort, 16)))
    return bound


def boundUdp() -> List[Tuple[str, int]]:
    with open("/proc/net/udp", encoding="ascii") as f:
        return parseProcNetUdp(f.read())


def portFreeOn(addresses: Iterable[str], port: int) -> bool:
    """Can a UDP socket bind C{port} on every one of C{addresses}?"""
    for address in addresses:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((address, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pickPort(addresses: Sequence[str], tries: int = 20) -> int:
    """A UDP port free on every one of C{addresses} (the kernel's pick on the first)."""
    for _ in range(tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if portFreeOn(addresses, port):
            return port
    raise ServerError(f"no UDP port free on all {len(addresses)} agent addresses after {tries} tries")


class Agent:
    """
    One snmpd serving every site address, configured as tests/snmpd.py
    configures its agents (C{-f -C -c CONF -Lf LOG -p PID -M /nonexistent
    -m ""}, C{SNMP_PERSISTENT_DIR}, C{MIBS=""}), plus C{-I -smux}: no SMUX
    listener on 127.0.0.1:199, which a test's snmpd may hold.
    """

    def __init__(self, binary: str, addresses: Sequence[str], port: int, directory: str, logPath: str,
                 community: str = COMMUNITY) -> None:
        self.binary = binary
        self.addresses = list(addresses)
        self.port = port
        self.directory = directory
        self.logPath = logPath
        self.config = os.path.join(directory, "snmpd.conf")
        self.persistent = os.path.join(directory, "persist")
        with open(self.config, "w", encoding="ascii") as f:
            f.write(f"rocommunity {community} 127.0.0.0/8\n"
                    # One "Connection from UDP" line per request otherwise.
                    "dontLogTCPWrappersConnects yes\n")
        self.process: Optional[subprocess.Popen] = None

    @property
    def command(self) -> List[str]:
        listen = ",".join(f"udp:{address}:{self.port}" for address in self.addresses)
        return [self.binary, "-f", "-C", "-c", self.config, "-Lf", self.logPath,
                "-p", os.path.join(self.directory, "snmpd.pid"), "-M", "/nonexistent", "-m", "",
                "-I", "-smux", listen]

    def shortCommand(self) -> str:
        """The command with the address list abbreviated."""
        argv = self.command
        first, last = self.addresses[0], self.addresses[-1]
        argv[-1] = f"udp:{first}:{self.port},...,udp:{last}:{self.port} ({len(self.addresses)} addresses)"
        return " ".join(repr(a) if a == "" else a for a in argv)

    @property
    def pid(self) -> Optional[int]:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        os.makedirs(self.persistent, exist_ok=True)
        env = dict(os.environ, SNMP_PERSISTENT_DIR=self.persistent, MIBS="")
        self.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)

    def missing(self) -> List[str]:
        """The addresses snmpd does not (yet) listen on, from /proc/net/udp."""
        bound = {address for address, port in boundUdp() if port == self.port}
        return [address for address in self.addresses if address not in bound]

    def waitReady(self, deadline: float = 20.0) -> float:
        """Until snmpd logged its start and listens on every address."""
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"snmpd exited with status {self.process.returncode}: {self.logTail()}")
            if "NET-SNMP version" in self.logText():
                missing = self.missing()
                if not missing:
                    return time.monotonic() - started
            else:
                missing = self.addresses
            if time.monotonic() - started > deadline:
                raise ServerError(f"snmpd does not listen on {len(missing)} of {len(self.addresses)} addresses "
                                  f"(e.g. {missing[0]}:{self.port}) after {deadline:.0f} s: {self.logTail()}")
            time.sleep(0.1)

    def logText(self) -> str:
        try:
            with open(self.logPath, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def logTail(self, lines: int = 10) -> str:
        return "".join(self.logText().splitlines(keepends=True)[-lines:]).strip() or "(empty log)"

    def stop(self) -> List[str]:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return []
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            return [f"snmpd (pid {process.pid}) ignored SIGTERM for 5 s; SIGKILLed"]
        return []


def snmpdVersion(binary: str) -> Optional[str]:
    try:
        out = subprocess.run([binary, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if "version" in line.lower():
            return line.split(":", 1)[-1].strip()
    return None


# ---------------------------------------------------------------------------
# The DNS load: a steady rate from one socket, every answer timed.


@dataclass
class DnsFigures:
    rate: float
    seconds: float
    sent: int = 0
    answered: int = 0
    lost: int = 0
    failed: int = 0  # answered, but not NOERROR with an address
    stray: int = 0  # answers to no query of ours (or a second answer)
    sendLag: Optional[float] = None  # the worst lateness of a send behind its schedule
    latency: Optional[dict] = None  # seconds: n, p50, p90, p99, p999, mean, max


def latencySummary(values: Sequence[float]) -> Optional[dict]:
    """n, p50, p90, p99, p99.9, mean and max of C{values} (None when empty)."""
    if not values:
        return None
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "p999": percentile(values, 99.9),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


def queryWire(name: str = QUERY_NAME) -> bytes:
    """An A query for C{name}, its id to be overwritten per query."""
    query = dns.message.make_query(name, "A")
    query.id = 0
    query.flags &= ~0x0100  # no recursion wanted: the appliance is authoritative
    return query.to_wire()


def answerOk(wire: bytes) -> bool:
    """NOERROR with at least one answer record (read from the header only)."""
    return len(wire) >= 12 and bool(wire[2] & 0x80) and (wire[3] & 0x0F) == 0 and int.from_bytes(wire[6:8], "big") > 0


class DnsLoad:
    """
    Queries C{host:port} at C{rate} per second from one UDP socket for
    C{seconds}, the send times on a fixed schedule (one every 1/C{rate} s
    from the start; a late send is sent at once, not skipped), then waits
    C{grace} seconds for the last answers.  C{onTick(k)} runs at the start
    (k = 0), every C{tick} seconds, and once all queries are sent.
    """

    def __init__(self, host: str, port: int, rate: float, grace: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.rate = rate
        self.grace = grace
        self.wire = queryWire()

    def run(self, seconds: float, tick: float = 1.0, onTick: Optional[Callable[[int], None]] = None) -> DnsFigures:
        figures = DnsFigures(self.rate, seconds)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect((self.host, self.port))
        sock.setblocking(False)
        total = max(1, int(round(seconds * self.rate)))
        sentAt: Dict[int, float] = {}
        latencies: List[float] = []
        wire = bytearray(self.wire)
        lag = 0.0
        clock = time.perf_counter
        start = clock()
        if onTick:
            onTick(0)
        nextTick, ticks = start + tick, 1
        index = 0
        end = None
        try:
            while True:
                now = clock()
                while index < total and start + index / self.rate <= now:
                    qid = index & 0xFFFF
                    wire[0:2] = qid.to_bytes(2, "big")
                    sentAt[qid] = clock()
                    lag = max(lag, sentAt[qid] - (start + index / self.rate))
                    try:
                        sock.send(wire)
                        figures.sent += 1
                    except OSError:
                        sentAt.pop(qid, None)
                        figures.failed += 1
                    index += 1
                if onTick and now >= nextTick and index < total:
                    onTick(ticks)
                    ticks += 1
                    nextTick += tick
                if index >= total and end is None:
                    end = clock()
                    if onTick:
                        onTick(ticks)
                    end += self.grace
                now = clock()
                if end is not None and (now >= end or not sentAt):
                    break
                wake = end if end is not None else min(start + index / self.rate, nextTick)
                readable, _, _ = select.select([sock], [], [], max(0.0, wake - now))
                if not readable:
                    continue
                while True:
                    try:
                        data = sock.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # ECONNREFUSED from an ICMP: the server is gone
                        break
                    got = clock()
                    qid = int.from_bytes(data[0:2], "big") if len(data) >= 2 else -1
                    sent = sentAt.pop(qid, None)
                    if sent is None:
                        figures.stray += 1
                        continue
                    latencies.append(got - sent)
                    figures.answered += 1
                    if not answerOk(data):
                        figures.failed += 1
        finally:
            sock.close()
        figures.lost = len(sentAt)
        figures.sendLag = lag
        figures.latency = latencySummary(latencies)
        return figures


# ---------------------------------------------------------------------------
# CPU from /proc, per tick.


@dataclass
class CpuSample:
    at: float  # time.monotonic()
    stats: Dict[int, procstat.ProcStat]
    host: Tuple[int, int]
    own: float  # this process's user + system seconds


def takeSample(pids: Iterable[int]) -> CpuSample:
    own = os.times()
    return CpuSample(time.monotonic(), procstat.sampleCpu(pids), procstat.hostCpuTicks(), own.user + own.system)


def cpuFigures(samples: Sequence[CpuSample], roles: Mapping[str, int]) -> dict:
    """
    From samples taken every tick: for each role (a pid), its CPU over the
    whole window in percent of one CPU, and its CPU milliseconds in each
    tick (mean, max, the series); the harness's own, the whole machine's
    and the rest ("other": neither the roles nor the harness).  A process
    missing from a sample, or restarted between two, has no figure for
    that tick (C{gaps} counts them).
    """
    if len(samples) < 2:
        raise ValueError("need at least two samples")
    first, last = samples[0], samples[-1]
    seconds = last.at - first.at
    out: Dict[str, dict] = {}
    used = 0.0
    for role, pid in roles.items():
        series, gaps = [], 0
        for a, b in zip(samples, samples[1:]):
            start, end = a.stats.get(pid), b.stats.get(pid)
            if start is None or end is None or start.startTime != end.startTime:
                gaps += 1
                continue
            series.append(1000.0 * (end.cpuTicks - start.cpuTicks) / procstat.CLOCK_TICKS)
        whole = procstat.cpuPercent({pid: first.stats[pid]} if pid in first.stats else {},
                                    {pid: last.stats[pid]} if pid in last.stats else {}, seconds).get(pid)
        if whole is not None:
            used += whole
        out[role] = {
            "pid": pid,
            "percent": None if whole is None else round(whole, 2),
            "ms_per_tick_mean": round(statistics.fmean(series), 2) if series else None,
            "ms_per_tick_max": round(max(series), 2) if series else None,
            "ms_per_tick": [round(v, 1) for v in series],
            "gaps": gaps,
        }
    host = procstat.busyPercent(first.host, last.host, seconds)
    own = 100.0 * (last.own - first.own) / seconds if seconds > 0 else 0.0
    return {
        "seconds": round(seconds, 3),
        "ticks": len(samples) - 1,
        "roles": out,
        "harness_percent": round(own, 2),
        "host_busy_percent": round(host, 2),
        "other_percent": round(max(0.0, host - used - own), 2),
    }


# ---------------------------------------------------------------------------
# Polls, from `show gslb site --json` before and after the window.


def pollFigures(before: Sequence[dict], after: Sequence[dict], seconds: float, sites: Sequence[str]) -> dict:
    """
    Per SNMP site, the polls sent, failed and skipped between two readings
    C{seconds} apart; summaries over the sites, the last poll latency
    (C{snmp_latency_ms}) of each, how many each core masters, and the
    sites that were not UP (with their last error).  A site whose counters
    went down (its poller restarted: a new master) is listed and left out
    of the rates.
    """
    start = {row.get("name"): row for row in before}
    end = {row.get("name"): row for row in after}
    rates, polls, failures, skipped, latencies = [], 0, 0, 0, []
    restarted, missing, notUp, failing = [], [], {}, {}
    masters: Dict[str, int] = {}
    perSite: Dict[str, dict] = {}
    for name in sites:
        a, b = start.get(name), end.get(name)
        if a is None or b is None or b.get("snmp_polls") is None or a.get("snmp_polls") is None:
            missing.append(name)
            continue
        for row in (a, b):
            if row.get("state") != "UP":
                notUp[name] = row.get("snmp_last_error") or f"state {row.get('state')}"
        masters[str(b.get("master_core"))] = masters.get(str(b.get("master_core")), 0) + 1
        dPolls = b["snmp_polls"] - a["snmp_polls"]
        dFailures = (b.get("snmp_failures") or 0) - (a.get("snmp_failures") or 0)
        dSkipped = (b.get("snmp_skipped") or 0) - (a.get("snmp_skipped") or 0)
        if dPolls < 0 or dFailures < 0 or a.get("master_core") != b.get("master_core"):
            restarted.append(name)
            continue
        perSite[name] = {"polls": dPolls, "failures": dFailures, "skipped": dSkipped,
                         "latency_ms": b.get("snmp_latency_ms"), "master_core": b.get("master_core")}
        polls += dPolls
        failures += dFailures
        skipped += dSkipped
        if dFailures:
            failing[name] = b.get("snmp_last_error") or f"{dFailures} failed"
        if seconds > 0:
            rates.append(dPolls / seconds)
        if b.get("snmp_latency_ms") is not None:
            latencies.append(float(b["snmp_latency_ms"]))
    return {
        "sites": len(sites),
        "seconds": round(seconds, 3),
        "polls": polls,
        "failures": failures,
        "skipped": skipped,
        "polls_per_site_per_second": None if not rates else {
            "min": round(min(rates), 3), "median": round(statistics.median(rates), 3),
            "mean": round(statistics.fmean(rates), 3), "max": round(max(rates), 3)},
        "polls_per_second": round(polls / seconds, 1) if seconds > 0 else None,
        "last_latency_ms": None if not latencies else {
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies)},
        "sites_per_core": dict(sorted(masters.items())),
        "not_up": notUp,
        "failing": failing,
        "restarted": restarted,
        "missing": missing,
        "per_site": perSite,
    }


def statesOf(rows: Sequence[dict], sites: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """(UP sites, {not-UP site: why}) of C{sites}; an SNMP site counts as UP once polled."""
    byName = {row.get("name"): row for row in rows}
    up, down = [], {}
    for name in sites:
        row = byName.get(name)
        if row is None:
            down[name] = "not listed by show gslb site"
        elif row.get("state") != "UP":
            down[name] = row.get("snmp_last_error") or row.get("reason") or f"state {row.get('state')}"
        elif row.get("protocol") == "snmp" and not row.get("snmp_polls"):
            down[name] = "UP but not polled yet"
        else:
            up.append(name)
    return up, down


def metricsSample(result: dict) -> dict:
    """Which of the table's metrics the first service of C{show metrics SITE --json} holds."""
    services = (result or {}).get("services") or [{}]
    held = services[0]
    names = [name for name, _ in TABLE_METRICS]
    return {"site": (result or {}).get("site") or (result or {}).get("name"),
            "service": held.get("name"),
            "present": [n for n in names if held.get(n) is not None],
            "missing": [n for n in names if held.get(n) is None]}


# ---------------------------------------------------------------------------
# A phase.


@dataclass
class Phase:
    key: str  # "baseline" or "snmp"
    title: str
    sites: int
    snmp: bool
    topology: str = ""
    command: List[str] = field(default_factory=list)
    corePids: Dict[str, int] = field(default_factory=dict)
    startupSeconds: Optional[float] = None
    upSeconds: Optional[float] = None  # from DNS answered to every site UP (and polled)
    notUp: Dict[str, str] = field(default_factory=dict)  # when the measuring began
    backgroundCpu: Optional[float] = None
    agentAge: Optional[float] = None  # seconds snmpd had run when the phase began
    metricsSample: Optional[dict] = None  # snmp: which table metrics one site's service holds
    cpu: Optional[dict] = None
    dns: Optional[dict] = None
    polls: Optional[dict] = None
    coresAfter: Optional[list] = None
    problems: List[str] = field(default_factory=list)
    error: Optional[str] = None


def coreCpu(phase: Phase) -> Optional[float]:
    """The cores' CPU together, percent of one CPU."""
    if not phase.cpu:
        return None
    values = [r["percent"] for role, r in phase.cpu["roles"].items() if role.startswith("core ")]
    return None if not values or None in values else sum(values)


def ratios(baseline: Phase, snmp: Phase) -> dict:
    """SNMP/baseline for the cores' CPU (together and each) and the DNS latency; CPU per poll."""
    out: Dict[str, Optional[float]] = {}

    def ratio(a, b):
        return None if a is None or not b else round(a / b, 3)

    out["core_cpu"] = ratio(coreCpu(snmp), coreCpu(baseline))
    if snmp.cpu and baseline.cpu:
        for role, figures in snmp.cpu["roles"].items():
            if role.startswith("core ") and role in baseline.cpu["roles"]:
                out[f"{role.replace(' ', '_')}_cpu"] = ratio(figures["percent"], baseline.cpu["roles"][role]["percent"])
        out["supervisor_cpu"] = ratio(snmp.cpu["roles"].get("supervisor", {}).get("percent"),
                                      baseline.cpu["roles"].get("supervisor", {}).get("percent"))
    for key in ("p50", "p99", "max"):
        a = (snmp.dns or {}).get("latency") or {}
        b = (baseline.dns or {}).get("latency") or {}
        out[f"dns_{key}"] = ratio(a.get(key), b.get(key))
    extra = None if coreCpu(snmp) is None or coreCpu(baseline) is None else coreCpu(snmp) - coreCpu(baseline)
    rate = (snmp.polls or {}).get("polls_per_second")
    # percent of a CPU / polls per second -> CPU microseconds per poll.
    out["core_cpu_us_per_poll"] = None if extra is None or not rate else round(extra * 1e4 / rate, 1)
    return out


class Harness:
    def __init__(self, options, snmpd: str, logDir: str, workDir: str) -> None:
        self.options = options
        self.snmpd = snmpd
        self.logDir = logDir
        self.workDir = workDir
        self.addresses = [siteAddress(i) for i in range(options.sites)]
        self.agent: Optional[Agent] = None
        self.agentStarted: Optional[float] = None
        self.problems: List[str] = []

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def startAgent(self) -> Agent:
        port = self.options.snmp_port or pickPort(self.addresses)
        if not portFreeOn(self.addresses, port):
            raise ServerError(f"UDP port {port} is in use on the site addresses; pass another --snmp-port")
        agent = Agent(self.snmpd, self.addresses, port, self.workDir, os.path.join(self.logDir, "snmpd.log"))
        self.say(f"[snmpd] starting on {len(self.addresses)} addresses, port {port}: {agent.shortCommand()}")
        agent.start()
        self.agent = agent
        self.agentStarted = time.monotonic()
        seconds = agent.waitReady(self.options.ready_timeout)
        self.say(f"[snmpd] listening on all {len(self.addresses)} addresses after {seconds:.1f} s (pid {agent.pid})")
        return agent

    def waitQuiet(self, label: str) -> float:
        """Up to C{--quiet-timeout} s until the machine is under OTHER_LOAD_WARNING % busy."""
        deadline = time.monotonic() + self.options.quiet_timeout
        said = False
        while True:
            before, t0 = procstat.hostCpuTicks(), time.monotonic()
            time.sleep(QUIET_SAMPLE)
            busy = procstat.busyPercent(before, procstat.hostCpuTicks(), time.monotonic() - t0)
            if busy < OTHER_LOAD_WARNING or time.monotonic() > deadline:
                if busy >= OTHER_LOAD_WARNING:
                    self.say(f"[{label}] the machine is still busy ({busy:.0f}% CPU); measuring anyway")
                return round(busy, 1)
            if not said:
                self.say(f"[{label}] waiting for other processes to quieten ({busy:.0f}% CPU busy)")
                said = True

    def sites(self, server: GslbServer) -> List[dict]:
        rows = console(server.control, "show gslb site", timeout=30)
        if not isinstance(rows, list):
            raise ServerError(f"`show gslb site --json` gave {type(rows).__name__}, expected a list")
        return rows

    def waitUp(self, server: GslbServer, names: Sequence[str]) -> Tuple[float, Dict[str, str]]:
        """Until every site of C{names} is UP (SNMP: and polled), or C{--up-timeout}."""
        started = time.monotonic()
        down: Dict[str, str] = {}
        while time.monotonic() - started < self.options.up_timeout:
            if server.process.poll() is not None:
                raise ServerError(f"the appliance exited with {server.process.returncode}: {server.logTail()}")
            up, down = statesOf(self.sites(server), names)
            if not down:
                break
            time.sleep(0.5)
        return time.monotonic() - started, down

    def runPhase(self, snmp: bool) -> Phase:
        options = self.options
        key = "snmp" if snmp else "baseline"
        title = (f"{options.sites} SNMP sites x 10 OIDs" if snmp else f"{options.sites} static sites")
        phase = Phase(key, title, options.sites, snmp)
        phase.topology = topologyToml(options.sites, snmp, self.agent.port, options.vserver_sites,
                                      options.interval, options.dead_interval)
        path = os.path.join(self.logDir, f"{key}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(phase.topology)
        dnsPort = freeUdpPort("127.0.0.1")
        control = f"unix:{os.path.join(self.workDir, key + '.ctl')}"
        server = GslbServer.build(dnsPort, CORES, None, control, os.path.join(self.logDir, f"{key}.log"),
                                  config=path)
        phase.command = server.command
        if snmp and self.agentStarted is not None:
            # ssCpuIdle answers only once snmpd has a minute of CPU history.
            wait = self.agentStarted + options.agent_warmup - time.monotonic()
            if wait > 0:
                self.say(f"[{key}] waiting {wait:.0f} s more for snmpd's first minute (ssCpuIdle)")
                time.sleep(wait)
        phase.backgroundCpu = self.waitQuiet(key)
        if self.agentStarted is not None:
            phase.agentAge = round(time.monotonic() - self.agentStarted, 1)
        self.say(f"[{key}] starting: {' '.join(server.command)}")
        server.start()
        try:
            phase.startupSeconds = round(server.waitReady(options.ready_timeout), 2)
            names = [siteName(i) for i in range(options.sites)]
            seconds, down = self.waitUp(server, names)
            phase.upSeconds = round(seconds, 2)
            if down:
                sample = "; ".join(f"{name}: {why}" for name, why in list(down.items())[:5])
                phase.problems.append(f"{len(down)} of {len(names)} sites not UP after {seconds:.0f} s "
                                      f"(measuring anyway): {sample}")
            else:
                self.say(f"[{key}] DNS answered after {phase.startupSeconds:.1f} s; all {len(names)} sites UP "
                         f"{seconds:.1f} s later; settling {options.settle:g} s")
            time.sleep(options.settle)
            if snmp:
                phase.metricsSample = metricsSample(console(server.control, f"show metrics {names[0]}"))
                missing = phase.metricsSample["missing"]
                young = phase.agentAge is not None and phase.agentAge < CPU_HISTORY
                if missing and not (young and set(missing) <= {"cpu", "load"}):
                    phase.problems.append(f"{names[0]} lacks metrics {', '.join(missing)} of table {TABLE} "
                                          f"(the agent answered no value for them)")
            cores = server.showCores()
            phase.corePids = {f"core {c.get('core')}": corePid(c) for c in cores if corePid(c)}
            roles = dict(sorted(phase.corePids.items()))
            roles["supervisor"] = server.pid
            if self.agent is not None and self.agent.pid:
                roles["snmpd"] = self.agent.pid
            t0 = time.monotonic()
            before = self.sites(server)
            t1 = time.monotonic()
            _, phase.notUp = statesOf(before, names)
            samples: List[CpuSample] = []
            load = DnsLoad("127.0.0.1", dnsPort, options.rate)
            figures = load.run(options.duration, options.tick,
                               lambda k: samples.append(takeSample(roles.values())))
            t2 = time.monotonic()
            after = self.sites(server)
            t3 = time.monotonic()
            phase.coresAfter = server.showCores()
            phase.cpu = cpuFigures(samples, roles)
            phase.dns = asdict(figures)
            if snmp:
                phase.polls = pollFigures(before, after, (t2 + t3) / 2 - (t0 + t1) / 2, names)
            pidsAfter = {f"core {c.get('core')}": corePid(c) for c in phase.coresAfter if corePid(c)}
            if pidsAfter != phase.corePids:
                phase.problems.append(f"a core changed during the run: {phase.corePids} -> {pidsAfter}")
            if server.process.poll() is not None:
                phase.problems.append(f"the appliance exited during the run: {server.logTail()}")
        except ServerError as e:
            phase.error = str(e)
        finally:
            phase.problems.extend(server.stop())
        for problem in phase.problems:
            self.say(f"[{key}] PROBLEM: {problem.splitlines()[0]}")
        if phase.error:
            self.say(f"[{key}] FAILED: {phase.error}")
        elif phase.cpu and phase.dns:
            lat = phase.dns["latency"] or {}
            self.say(f"[{key}] cores {_pct(coreCpu(phase))}% CPU, DNS p50 {_ms(lat.get('p50'))} ms "
                     f"p99 {_ms(lat.get('p99'))} ms, lost {phase.dns['lost']}, other {phase.cpu['other_percent']:.0f}%")
        return phase


def freeUdpPort(host: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------
# The report.


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(phases: Sequence[Phase], options, agentCommand: Optional[str]) -> str:
    parts = [
        f"{options.sites} sites; appliance: twistd -n gslb, {CORES} cores (not pinned), metrics_interval "
        f"{options.interval:g} s; DNS: {options.rate:g} q/s of {QUERY_NAME} A from one UDP socket for "
        f"{options.duration:g} s; CPU from /proc every {options.tick:g} s",
    ]
    coreRoles = sorted({role for p in phases if p.cpu for role in p.cpu["roles"] if role.startswith("core ")})
    rows = []
    for p in phases:
        if p.cpu is None or p.dns is None:
            rows.append([p.key, p.title, "FAILED" if p.error else "-"] + ["-"] * (len(coreRoles) + 9))
            continue
        roles = p.cpu["roles"]
        lat = p.dns["latency"] or {}
        rows.append(
            [p.key, p.title]
            + [f"{_pct(roles[r]['percent'])} ({roles[r]['ms_per_tick_max']:.0f})" if r in roles else "-"
               for r in coreRoles]
            + [_pct(coreCpu(p)), _pct(roles.get("supervisor", {}).get("percent")),
               _pct(roles.get("snmpd", {}).get("percent")), _pct(p.cpu["harness_percent"]),
               _pct(p.cpu["other_percent"]),
               f"{p.dns['sent']}/{p.dns['answered']}/{p.dns['lost']}",
               _ms(lat.get("p50")), _ms(lat.get("p99")), _ms(lat.get("max"))]
        )
    parts.append(renderTable(
        ["phase", "sites"] + [f"{r} CPU% (max ms/tick)" for r in coreRoles]
        + ["cores CPU%", "supervisor", "snmpd", "harness", "other", "DNS sent/answered/lost",
           "p50 ms", "p99 ms", "max ms"], rows))
    parts.append("  CPU%: percent of one CPU over the window (100 = one CPU busy); max ms/tick: the core's busiest "
                 f"{options.tick:g} s tick, in CPU ms.")
    snmp = next((p for p in phases if p.snmp and p.polls), None)
    if snmp is not None:
        polls = snmp.polls
        rate = polls["polls_per_site_per_second"] or {}
        last = polls["last_latency_ms"] or {}
        parts.append("")
        parts.append(f"Polls (show gslb site, {polls['seconds']:.1f} s between the readings around the window)")
        parts.append(renderTable(
            ["sites", "polls", "polls/s", "per site per s min / median / max", "failures", "skipped",
             "last poll latency ms p50 / p99 / max", "sites per core"],
            [[str(polls["sites"]), str(polls["polls"]), _pct(polls["polls_per_second"]),
              f"{rate.get('min', '-')} / {rate.get('median', '-')} / {rate.get('max', '-')}",
              str(polls["failures"]), str(polls["skipped"]),
              f"{last.get('p50', '-')} / {last.get('p99', '-')} / {last.get('max', '-')}",
              " ".join(f"core {k}: {v}" for k, v in polls["sites_per_core"].items())]]))
        for label, key in (("not UP", "not_up"), ("with failed polls", "failing"), ("restarted", "restarted"),
                           ("missing", "missing")):
            found = polls[key]
            if found:
                sample = (list(found.items()) if isinstance(found, dict) else [(n, "") for n in found])[:5]
                parts.append(f"  {len(found)} site(s) {label}: " + "; ".join(
                    f"{n}{': ' + str(why) if why else ''}" for n, why in sample))
    for p in phases:
        if p.metricsSample is not None:
            m = p.metricsSample
            parts.append(f"  {m['service']} held {len(m['present'])} of the table's {len(TABLE_METRICS)} metrics "
                         f"at the start of the window" + (f" (not {', '.join(m['missing'])}; snmpd had run "
                                                          f"{p.agentAge:g} s)" if m["missing"] else ""))
    baseline = next((p for p in phases if not p.snmp), None)
    if baseline is not None and snmp is not None:
        r = ratios(baseline, snmp)
        parts.append("")
        parts.append("Ratios SNMP / baseline (same run)")
        parts.append(f"  cores' CPU                 {_ratio(r['core_cpu'])}   (" + ", ".join(
            f"{k[:-4].replace('_', ' ')} {_ratio(v)}" for k, v in r.items() if k.startswith("core_") and
            k.endswith("_cpu") and k != "core_cpu") + ")")
        parts.append(f"  DNS latency p50 / p99 / max {_ratio(r['dns_p50'])} / {_ratio(r['dns_p99'])} / "
                     f"{_ratio(r['dns_max'])}")
        if r["core_cpu_us_per_poll"] is not None:
            parts.append(f"  extra core CPU per poll    {r['core_cpu_us_per_poll']:.0f} µs "
                         f"(cores' CPU difference / polls per second)")
    for p in phases:
        if p.cpu and p.cpu["other_percent"] > OTHER_LOAD_WARNING:
            parts.append(f"  WARNING: other processes used {p.cpu['other_percent']:.0f}% CPU during {p.key}: "
                         f"rerun on a quiet machine.")
        for problem in p.problems:
            parts.append(f"  {p.key}: PROBLEM: {problem.splitlines()[0]}")
        if p.error:
            parts.append(f"  {p.key}: FAILED: {p.error.splitlines()[0]}")
    if agentCommand:
        parts.append("")
        parts.append(f"snmpd: {agentCommand}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Entry point.


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.snmp_polling",
        description="CPU and DNS latency of the appliance polling N SNMP sites x 10 OIDs per interval, "
                    "against N static sites (see benchmarks/README.md)",
    )
    parser.add_argument("--sites", type=int, default=200, help=f"SNMP sites (1 to {MAX_SITES})")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="DNS queries per second during the window")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between two /proc CPU samples")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between every site UP and the start of the window")
    parser.add_argument("--interval", type=float, default=1.0, help="metrics_interval (the polling period)")
    parser.add_argument("--dead-interval", type=float, default=3.0, help="dead_interval")
    parser.add_argument("--vserver-sites", type=int, default=4,
                        help="sites whose services the vserver binds (with the static anchor's)")
    parser.add_argument("--snmp-port", type=int, default=0, help="snmpd's UDP port (0: a free one)")
    parser.add_argument("--agent-warmup", type=float, default=65.0,
                        help="seconds snmpd must have run before the SNMP phase (ssCpuIdle needs a minute)")
    parser.add_argument("--up-timeout", type=float, default=60.0, help="seconds to wait for every site UP")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="seconds to wait for DNS / snmpd")
    parser.add_argument("--quiet-timeout", type=float, default=120.0,
                        help=f"before each phase, wait up to S s for the machine to be < {OTHER_LOAD_WARNING}%% busy")
    parser.add_argument("--skip-baseline", action="store_true", help="run the SNMP phase only")
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and the logs")
    options = parser.parse_args(argv)
    if not 1 <= options.sites <= MAX_SITES:
        parser.error(f"--sites must be from 1 to {MAX_SITES}")
    if options.duration <= 0 or options.rate <= 0 or options.tick <= 0 or options.interval <= 0:
        parser.error("--duration, --rate, --tick and --interval must be above 0")
    if options.tick > options.duration:
        parser.error("--tick must not exceed --duration")
    if options.dead_interval < options.interval:
        parser.error("--dead-interval must be at least --interval")
    if options.settle < 0 or options.vserver_sites < 0 or options.agent_warmup < 0:
        parser.error("--settle, --vserver-sites and --agent-warmup must not be negative")
    return options


def run(options, argv: Sequence[str]) -> dict:
    """Both phases; the result document (also written as JSON)."""
    snmpd = findSnmpd()
    if snmpd is None:
        raise ServerError("snmpd is not installed (Debian/Ubuntu: apt-get install snmpd)")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, RESULT_NAME.replace(".json", ".logs"))
    os.makedirs(logDir, exist_ok=True)
    started = time.time()
    revision = sourceRevision()
    phases: List[Phase] = []
    agentCommand = agentArgv = None
    problems: List[str] = []
    with tempfile.TemporaryDirectory(prefix="gslb-snmpb-") as workDir:
        harness = Harness(options, snmpd, logDir, workDir)
        try:
            agent = harness.startAgent()
            agentCommand, agentArgv = agent.shortCommand(), agent.command
            if not options.skip_baseline:
                phases.append(harness.runPhase(snmp=False))
            phases.append(harness.runPhase(snmp=True))
        except ServerError as e:
            problems.append(str(e))
            harness.say(f"FAILED: {e}")
        except KeyboardInterrupt:
            problems.append("interrupted")
        finally:
            if harness.agent is not None:
                problems.extend(harness.agent.stop())
    text = report(phases, options, agentCommand)
    commands = [f"{sys.executable} -m benchmarks.snmp_polling {' '.join(argv)}".rstrip()]
    commands += [f"{p.key}: {' '.join(p.command)}" for p in phases]
    if agentCommand:
        commands.append(f"snmpd: {agentCommand}")
    commands.append("console: gslb-console --connect CONTROL -c \"show gslb site\" --json (and \"show cores\")")
    revisionAfter = sourceRevision()
    text += "\n\nCommands (from " + REPO + "):\n" + "\n".join("  " + c for c in commands)
    text += f"\nRevision: {revision['commit']}" + (
        " + uncommitted changes to gslb_twisted/" if revision["product_changed"] else "")
    if revisionAfter != revision:
        text += f"\n  WARNING: the product changed during the run (now {revisionAfter}): rerun."
    for problem in problems:
        text += f"\nPROBLEM: {problem.splitlines()[0]}"
    import pysnmp
    import twisted

    info = machine()
    info["twisted"] = twisted.__version__
    info["pysnmp"] = pysnmp.__version__
    info["snmpd"] = {"path": snmpd, "version": snmpdVersion(snmpd)}
    byKey = {p.key: p for p in phases}
    document = {
        "benchmark": "snmp_polling",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "command": commands[0],
        "machine": info,
        "revision": revision,
        "revision_after": revisionAfter,
        "options": vars(options),
        "cores": CORES,
        "pinned": False,
        "table": {"name": TABLE, "metrics": dict(TABLE_METRICS)},
        "commands": commands,
        "snmpd_argv": agentArgv,
        "runs": [asdict(p) for p in phases],
        "ratios": ratios(byKey["baseline"], byKey["snmp"]) if {"baseline", "snmp"} <= set(byKey) else None,
        "problems": problems,
        "logs": os.path.relpath(logDir, REPO),
        "report": text,
    }
    print(text)
    writeResults(options.results, RESULT_NAME, document)
    return document


def failed(document: dict, options) -> bool:
    runs = document["runs"]
    expected = 1 if options.skip_baseline else 2
    return bool(document["problems"]) or len(runs) < expected or any(r["error"] for r in runs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parseArguments(argv)
    try:
        document = run(options, argv)
    except ServerError as e:
        print(f"snmp_polling: {e}", file=sys.stderr)
        return 1
    return 1 if failed(document, options) else 0


if __name__ == "__main__":
    sys.exit(main())
