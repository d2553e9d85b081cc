"""
Driving dnsperf (Debian package C{dnsperf}, version 2.x) and reading its
report.

dnsperf 2.10 prints the mean, standard deviation, minimum and maximum
latency but no percentiles; with C{-v} it prints one line per answered query
(C{> NOERROR www.bench.gslb A 0.000123}), from which L{parseVerbose} computes
the percentiles.  Its stdout goes to a file, never to a pipe we would have to
drain while it runs.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

INSTALL_HINT = "dnsperf is not installed: apt-get install dnsperf"


class DnsperfMissing(Exception):
    """
    dnsperf is not on C{PATH}.
    """


def findDnsperf() -> str:
    """
    @return: the path of the dnsperf executable.
    @raise DnsperfMissing: it is not installed.
    """
    path = shutil.which("dnsperf")
    if path is None:
        raise DnsperfMissing(INSTALL_HINT)
    return path


def dnsperfVersion(executable: str) -> str:
    """
    @return: the version dnsperf reports (C{"2.10.0"}), or C{"unknown"}.
    """
    result = subprocess.run(
        [executable, "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    match = re.search(r"Version\s+(\S+)", result.stdout)
    return match.group(1) if match else "unknown"


def writeQueryFile(path: str, queries: Iterable[str]) -> str:
    """
    Write a dnsperf data file: one C{NAME TYPE} per line.

    @return: C{path}
    """
    with open(path, "w", encoding="ascii") as f:
        for query in queries:
            f.write(query + "\n")
    return path


def writeBinaryQueryFile(path: str, messages: Iterable[bytes]) -> str:
    """
    Write a dnsperf C{-B} data file: each wire-format query preceded by its
    length (16 bits, network order), as on a DNS TCP stream.  dnsperf sets
    the message ids itself.

    @return: C{path}
    """
    with open(path, "wb") as f:
        for message in messages:
            f.write(len(message).to_bytes(2, "big") + message)
    return path


@dataclass(frozen=True)
class DnsperfLoad:
    """
    How dnsperf loads a server: the parameters every case shares.

    @ivar clients: C{-c}, the number of client sockets (source ports); with
        C{SO_REUSEPORT} the kernel spreads flows over sockets by hashing the
        source port, so a handful of clients cannot show a fair balance.
    @ivar outstanding: C{-q}, queries in flight at once.  At saturation the
        mean latency is mostly C{outstanding / QPS} of queueing.
    @ivar maxQps: C{-Q}, a fixed rate below saturation (None: as fast as
        the server answers).
    @ivar timeout: C{-t}, seconds before a query counts as lost.
    @ivar cpus: the C{taskset -c} CPU list dnsperf is pinned to, or None.
    @ivar binary: C{-B}: the data file holds wire-format queries, each
        preceded by its 16-bit length (L{writeBinaryQueryFile}), so that
        each query can carry its own EDNS options.
    """

    duration: float = 10.0
    clients: int = 64
    threads: int = 1
    outstanding: int = 100
    maxQps: Optional[int] = None
    timeout: float = 2.0
    verbose: bool = True
    cpus: Optional[str] = "1"
    statsInterval: Optional[int] = None
    binary: bool = False


def dnsperfCommand(
    executable: str, server: str, port: int, datafile: str, load: DnsperfLoad
) -> List[str]:
    """
    @return: the argv that runs dnsperf with C{load} against C{server:port}.
    """
    argv: List[str] = []
    if load.cpus is not None:
        argv += ["taskset", "-c", load.cpus]
    argv += [
        executable,
        "-s", server,
        "-p", str(port),
        "-d", datafile,
        "-l", _number(load.duration),
        "-c", str(load.clients),
        "-T", str(load.threads),
        "-q", str(load.outstanding),
        "-t", _number(load.timeout),
    ]
    if load.binary:
        argv.append("-B")
    if load.maxQps is not None:
        argv += ["-Q", str(load.maxQps)]
    if load.statsInterval is not None:
        argv += ["-S", str(load.statsInterval)]
    if load.verbose:
        argv.append("-v")
    return argv


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class DnsperfResult:
    """
    What one dnsperf run reported.  Latencies are in seconds.
    """

    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    runTime: float = 0.0
    latencyMean: Optional[float] = None
    latencyMin: Optional[float] = None
    latencyMax: Optional[float] = None
    latencyStddev: Optional[float] = None
    latencyP50: Optional[float] = None
    latencyP99: Optional[float] = None
    rcodes: Dict[str, int] = field(default_factory=dict)
    answeredLines: int = 0
    intervals: List[float] = field(default_factory=list)

    def asJSON(self) -> dict:
        return asdict(self)


class DnsperfOutputError(Exception):
    """
    dnsperf's output has no statistics block (it failed to start or died).
    """


_STAT_PATTERNS = {
    "sent": re.compile(r"^\s*Queries sent:\s+(\d+)", re.M),
    "completed": re.compile(r"^\s*Queries completed:\s+(\d+)", re.M),
    "lost": re.compile(r"^\s*Queries lost:\s+(\d+)", re.M),
    "qps": re.compile(r"^\s*Queries per second:\s+([\d.]+)", re.M),
    "runTime": re.compile(r"^\s*Run time \(s\):\s+([\d.]+)", re.M),
    "latencyStddev": re.compile(r"^\s*Latency StdDev \(s\):\s+([\d.]+)", re.M),
}
_LATENCY = re.compile(
    r"^\s*Average Latency \(s\):\s+([\d.]+)\s+\(min\s+([\d.]+),\s+max\s+([\d.]+)\)", re.M
)
_RCODES = re.compile(r"^\s*Response codes:\s+(.*)$", re.M)
_RCODE = re.compile(r"([A-Z]+)\s+(\d+)\s+\([\d.]+%\)")
_VERBOSE_LINE = re.compile(r"^> (\S+) \S+ \S+ ([\d.]+)$")
_INTERVAL_LINE = re.compile(r"^\d+\.\d+: ([\d.]+)$")


def parseStatistics(text: str) -> DnsperfResult:
    """
    Read the C{Statistics:} block dnsperf prints at the end of a run.

    @raise DnsperfOutputError: there is none.
    """
    if "Statistics:" not in text:
        raise DnsperfOutputError("dnsperf printed no statistics")
    result = DnsperfResult()
    for name, pattern in _STAT_PATTERNS.items():
        match = pattern.search(text)
        if match is None:
            continue
        value = match.group(1)
        setattr(result, name, float(value) if "." in value or name == "qps" else int(value))
    match = _LATENCY.search(text)
    if match is not None:
        result.latencyMean, result.latencyMin, result.latencyMax = (
            float(v) for v in match.groups()
        )
    match = _RCODES.search(text)
    if match is not None:
        result.rcodes = {code: int(n) for code, n in _RCODE.findall(match.group(1))}
    return result


def percentile(sortedValues: Sequence[float], fraction: float) -> Optional[float]:
    """
    The nearest-rank percentile of already sorted values (None when empty).
    """
    if not sortedValues:
        return None
    rank = max(1, math.ceil(fraction * len(sortedValues)))
    return sortedValues[min(rank, len(sortedValues)) - 1]


def parseVerbose(lines: Iterable[str]) -> List[float]:
    """
    The latencies (seconds) of the per-query lines C{dnsperf -v} prints.
    """
    latencies = []
    for line in lines:
        if line.startswith("> "):
            match = _VERBOSE_LINE.match(line.rstrip("\n"))
            if match is not None:
                latencies.append(float(match.group(2)))
    return latencies


def parseIntervals(lines: Iterable[str]) -> List[float]:
    """
    The completed queries per second of each C{-S} interval
    (C{1795688038.457603: 4999.265108} lines).
    """
    rates = []
    for line in lines:
        match = _INTERVAL_LINE.match(line.rstrip("\n"))
        if match is not None:
            rates.append(float(match.group(1)))
    return rates


def readResult(path: str) -> DnsperfResult:
    """
    Parse a file holding dnsperf's stdout: the statistics and, when it ran
    with C{-v}, the latency percentiles, with C{-S}, the per-interval rates.
    """
    latencies, intervals = [], []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("ascii", "replace")
            if line.startswith("> "):
                latencies.extend(parseVerbose([line]))
            elif line[:1].isdigit():
                intervals.extend(parseIntervals([line]))
        # The statistics block is at the end of the file.
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        tail = f.read().decode("ascii", "replace")
    result = parseStatistics(tail)
    result.intervals = intervals
    if latencies:
        latencies.sort()
        result.answeredLines = len(latencies)
        result.latencyP50 = percentile(latencies, 0.50)
        result.latencyP99 = percentile(latencies, 0.99)
    return result


def start(argv: Sequence[str], stdoutPath: str, stderrPath: str) -> subprocess.Popen:
    """
    Start dnsperf with its output going to files; the caller waits.
    """
    with open(stdoutPath, "wb") as out, open(stderrPath, "wb") as err:
        return subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
