"""
The appliance's performance targets, all measured in one invocation with
dnsperf over loopback::

    .venv/bin/python -m benchmarks.perf [--duration 10] [--repeat 3]

Cases (see benchmarks/PERF.md):

  a           the ceiling: L{benchmarks.ceiling_server}, a template-answering
              Twisted DatagramProtocol (pinned to CPU 0)
  b           twisted.names authoritative, the same records (pinned)
  c           gslb 1 core, ROUNDROBIN (C{benchmarks/bench.toml}, pinned)
  c-floating  the same, not pinned (the base of e)
  d           gslb 1 core, LEASTCONNECTION + SOURCEIP persistence over 100
              services at 5 MEP sites, each a site emulator (pinned; the
              emulators run on CPU 1 with dnsperf)
  e           gslb 2 cores, ROUNDROBIN, not pinned
  f           PowerDNS Authoritative, a LUA C{ifportup()} record,
              C{enable-lua-records=shared} (pinned); skipped when
              C{pdns_server} or its bind backend is not installed

dnsperf runs pinned to CPU 1.  The harness prints a table, the targets
(L{benchmarks.perf_report.TARGETS}) with PASS / FAIL / not measured, and the
change of every figure against the previous run; it writes
C{benchmarks/results/perf-<timestamp>.json} and C{.svg}, and replaces
C{perf-last.json} / C{perf-last.svg} with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Dict, List, Mapping, Optional, Sequence

from benchmarks import dnsperf, perf_report, procstat
from benchmarks.decision_cost import sourceRevision
from benchmarks.dns_qps import DNSPERF_CPUS, SERVER_CPUS, Bench, Case, CaseResult, machine
from benchmarks.perf_servers import (
    CeilingServer,
    LcServer,
    LcTopology,
    PdnsServer,
    PdnsSetup,
    buildLcServer,
    findPdns,
)
from benchmarks.servers import REPO, GslbServer, NamesServer, ServerError, ServerProcess

RESULTS = os.path.join(REPO, "benchmarks", "results")
LAST = "perf-last"

# key -> (title, short name for the chart, pinned)
CASE_INFO = {
    "a": ("ceiling: template responder (ceiling_server)", "ceiling responder", True),
    "b": ("twisted.names authoritative", "twisted.names", True),
    "c": ("gslb 1 core, ROUNDROBIN", "gslb 1 core RR", True),
    "c-floating": ("gslb 1 core, ROUNDROBIN, not pinned", "gslb 1 core RR floating", False),
    "d": ("gslb 1 core, LEASTCONNECTION + SOURCEIP, 100 services, 5 MEP sites",
          "gslb LC + SOURCEIP 100 services", True),
    "e": ("gslb 2 cores, ROUNDROBIN, not pinned", "gslb 2 cores floating", False),
    "f": ("PowerDNS Authoritative, LUA ifportup()", "PowerDNS LUA ifportup", True),
}
ALL_CASES = list(CASE_INFO)

FLOATING_NOTE = ("not pinned: the server floats over both CPUs, dnsperf (pinned to CPU 1) competes with it; "
                 "e is compared with c-floating, not with the pinned c")


class PerfBench(Bench):
    """
    L{benchmarks.dns_qps.Bench} (quiet-wait, dnsperf runs, repeats and
    retries of disturbed runs, CPU accounting, core shares), with case d's
    site emulators accounted apart from the appliance and its method checked
    after the runs.
    """

    def sample(self, case: Case, server: ServerProcess):
        cores, cpu, host, t = super().sample(case, server)
        if isinstance(server, LcServer):
            cpu.update(procstat.sampleCpu(server.sitePids()))
        return cores, cpu, host, t

    def roles(self, server: ServerProcess, cores: Optional[list]) -> Dict[int, str]:
        names = super().roles(server, cores)
        if isinstance(server, LcServer):
            names.update(server.siteRoles())
        return names

    def saturateOnce(self, case: Case, server: ServerProcess) -> CaseResult:
        run = super().saturateOnce(case, server)
        sites = sitesCpu(run.cpuPercent)
        if sites is not None and run.cpuTotal is not None:
            # The emulators are not the server; otherCpu already counts them out.
            run.cpuTotal = round(run.cpuTotal - sites, 1)
        return run

    def runSaturate(self, case: Case, server: ServerProcess, result: CaseResult) -> None:
        super().runSaturate(case, server, result)
        if isinstance(server, LcServer):
            try:
                deciding = server.deciding()
                sessions = server.persistenceSessions()
            except ServerError as e:
                result.problems.append(f"could not check the method after the runs: {e}")
                return
            if not deciding:
                result.problems.append(f"{server.case.lbMethod} was not deciding after the runs "
                                       f"(resolve: {server.lastResolve})")
            self.say(f"[{case.key}] after the runs: method {server.lastResolve.get('method')}, fallback "
                     f"{server.lastResolve.get('fallback')}, {sessions} persistence session(s) at the first site")


def sitesCpu(cpuPercent: Mapping[str, float]) -> Optional[float]:
    """The CPU% of the site emulators in a C{cpuPercent} mapping (None: there are none)."""
    values = [v for name, v in cpuPercent.items() if name.startswith("site ")]
    return round(sum(values), 1) if values else None


# ---------------------------------------------------------------------------
# The cases.


class CaseSet:
    """
    Builds each case's server; remembers the last one built (for what only
    it knows after the run: PowerDNS's health checks, d's site commands).
    """

    def __init__(self, options, workDir: str, logDir: str, pdns) -> None:
        self.options = options
        self.workDir = workDir
        self.logDir = logDir
        self.pdns = pdns
        self.built: Dict[str, ServerProcess] = {}
        self.shape = LcTopology(sites=options.sites, services=options.services)

    def case(self, key: str) -> Case:
        title, _, pinned = CASE_INFO[key]
        note = FLOATING_NOTE if not pinned else ""
        return Case(key, title, "saturate", lambda port, control, log: self.build(key, port, control, log),
                    pinned=pinned, note=note)

    def build(self, key: str, port: int, control: str, log: str) -> ServerProcess:
        cpus = SERVER_CPUS
        if key == "a":
            server = CeilingServer.build(port, cpus, log)
        elif key == "b":
            server = NamesServer.build(port, cpus, log)
        elif key == "c":
            server = GslbServer.build(port, 1, cpus, control, log)
        elif key == "c-floating":
            server = GslbServer.build(port, 1, None, control, log)
        elif key == "d":
            server = buildLcServer(self.shape, port, cpus, DNSPERF_CPUS, control, log, self.workDir, self.logDir)
        elif key == "e":
            server = GslbServer.build(port, 2, None, control, log, socketSharing=self.options.sharing)
        elif key == "f":
            setup = PdnsSetup(os.path.join(self.workDir, "pdns"), port, checkPort=self.options.pdns_check_port)
            server = PdnsServer.build(self.pdns.executable, setup, cpus, log,
                                      listen=not self.options.pdns_no_listeners)
            for name in ("pdns.conf", "named.conf", "bench.gslb.zone"):
                shutil.copy(os.path.join(setup.directory, name), os.path.join(self.logDir, "pdns-" + name))
        else:
            raise KeyError(key)
        self.built[key] = server
        return server

    def notes(self, key: str) -> List[str]:
        server = self.built.get(key)
        if isinstance(server, PdnsServer):
            return [f"PowerDNS {self.pdns.version}: {server.describeChecks()}"]
        if isinstance(server, LcServer):
            return [f"{len(server.siteProcesses)} site emulators (pinned to CPU {DNSPERF_CPUS}): "
                    + "; ".join(" ".join(site.command) for site in server.siteProcesses[:1]) + " ..."]
        return []


def caseRow(key: str, result: Optional[CaseResult], skipped: Optional[str] = None) -> dict:
    """
    The plain-dict row of a case (see L{benchmarks.perf_report}) from the
    harness's result.
    """
    title, short, pinned = CASE_INFO[key]
    row = {"key": key, "title": title, "short": short, "placement": "pinned" if pinned else "floating",
           "qps": None, "qpsRuns": [], "latencyMean": None, "latencyP99": None, "lost": None,
           "serverCpu": None, "sitesCpu": None, "dnsperfCpu": None, "otherCpu": None, "coreShares": None,
           "coreSharesRuns": [], "skipped": skipped, "error": None}
    if result is None:
        return row
    row["error"] = result.error
    d = result.dnsperf
    if d and not result.error:
        row.update(qps=round(d["qps"], 1), qpsRuns=[round(r["qps"], 1) for r in result.runs],
                   latencyMean=d.get("latencyMean"), latencyP99=d.get("latencyP99"), lost=d.get("lost"),
                   serverCpu=result.cpuTotal, sitesCpu=sitesCpu(result.cpuPercent), dnsperfCpu=result.dnsperfCpu,
                   otherCpu=result.otherCpu, coreShares=result.coreShares,
                   coreSharesRuns=[r["core_shares"] for r in result.runs if r.get("core_shares")])
    return row


def selectCases(spec: str) -> List[str]:
    """The case keys C{--cases} names, in the order of L{ALL_CASES}."""
    wanted = {part.strip() for part in spec.split(",") if part.strip()}
    unknown = wanted - set(ALL_CASES)
    if unknown or not wanted:
        raise ValueError(f"unknown case(s) {', '.join(sorted(unknown)) or '(none given)'} "
                         f"(known: {', '.join(ALL_CASES)})")
    return [key for key in ALL_CASES if key in wanted]


# ---------------------------------------------------------------------------
# Output.


def report(document: Mapping, notes: Mapping[str, Sequence[str]]) -> str:
    s = document["settings"]
    parts = [
        f"Saturation: dnsperf -c {s['clients']} -T {s['threads']} -q {s['outstanding']} -l {s['duration']:g} "
        f"-t {s['timeout']:g} over loopback, dnsperf pinned to CPU {DNSPERF_CPUS}; median of {s['repeat']} run(s)",
        perf_report.renderCases(document["cases"], s["repeat"]),
        "  server on: CPU 0 = pinned with taskset (per-core cases); floating = not pinned.",
        "  server CPU% = the server's processes (100 = one CPU); other CPU% = the rest of the machine.",
    ]
    for key, lines in notes.items():
        for line in lines:
            parts.append(f"  {key}: {line}")
    for row in document["cases"]:
        runs = row.get("coreSharesRuns") or []
        if len(runs) > 1 and any(len(shares) > 1 for shares in runs):
            parts.append(f"  {row['key']}: core shares % of each run (by QPS, lowest first): "
                         + ", ".join(perf_report.formatShares(shares) for shares in runs))
    for row in document["cases"]:
        if row.get("skipped"):
            parts.append(f"  {row['key']}: SKIPPED: {row['skipped']}")
        elif row.get("error"):
            parts.append(f"  {row['key']}: FAILED: {row['error'].splitlines()[0]}")
    bound = perf_report.dnsperfBound(document["cases"])
    if bound:
        parts.append(f"  NOTE: dnsperf was the limit in {', '.join(bound)} (dnsperf >= {perf_report.DNSPERF_BOUND:.0f}% "
                     f"of its CPU, the server < {perf_report.SERVER_IDLE:.0f}% of its own): that QPS is a lower "
                     f"bound of the server's.")
    busy = [row["key"] for row in document["cases"] if (row.get("otherCpu") or 0) > 10]
    if busy:
        parts.append(f"  WARNING: other processes used over 10% CPU during {', '.join(busy)}: rerun on a quiet machine.")
    for problem in document.get("problems", []):
        parts.append(f"  PROBLEM: {problem}")
    parts += [
        "",
        "Targets (all ratios from this run; a, b, c, d, f pinned to CPU 0; e is compared with c-floating, both "
        "floating,\nwhile the pinned c is used for the ratios with a, b and f)",
        perf_report.renderTargets(document["targets"], document["ratios"]),
        perf_report.summaryLine(document["targets"]),
    ]
    return "\n".join(parts)


def loadPrevious(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("benchmark") == "perf" else None


def writeText(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Entry point.


def parseArguments(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf",
        description="The appliance's performance targets with dnsperf (see benchmarks/PERF.md)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of dnsperf per run")
    parser.add_argument("--repeat", type=int, default=3, help="dnsperf runs per case; the median QPS run is kept")
    parser.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated: " + ", ".join(ALL_CASES))
    parser.add_argument("--port", type=int, default=5397, help="UDP port on 127.0.0.1 every server uses in turn")
    parser.add_argument("--clients", type=int, default=64, help="dnsperf -c")
    parser.add_argument("--threads", type=int, default=1, help="dnsperf -T")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--timeout", type=float, default=2.0, help="dnsperf -t")
    parser.add_argument("--sharing", choices=("inherit", "reuseport"), default="inherit",
                        help="case e: how the 2 cores share the DNS socket (the appliance's --socket-sharing)")
    parser.add_argument("--sites", type=int, default=5, help="case d: MEP sites (site emulators)")
    parser.add_argument("--services", type=int, default=100, help="case d: services over those sites")
    parser.add_argument("--pdns-check-port", type=int, default=80,
                        help="case f: the TCP port ifportup() checks on 127.0.0.21 and .22")
    parser.add_argument("--pdns-no-listeners", action="store_true",
                        help="case f: do not listen on the checked addresses (ifportup() then answers all)")
    parser.add_argument("--retries", type=int, default=2,
                        help="times a run disturbed by other processes (> 10%% of a CPU) is redone")
    parser.add_argument("--quiet-timeout", type=float, default=120.0,
                        help="seconds to wait, before each case, for other processes to quieten")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON, the SVG and the logs")
    parser.add_argument("--compare", metavar="FILE", default=None,
                        help="compare with this result instead of RESULTS/perf-last.json")
    parser.add_argument("--no-keep", action="store_true",
                        help="do not replace perf-last.json / perf-last.svg with this run")
    parser.add_argument("--noise", type=float, default=15.0,
                        help="percent of QPS change flagged worse/better in the comparison")
    parser.add_argument("--strict", action="store_true",
                        help="exit with 1 when a target fails or is not measured")
    options = parser.parse_args(argv)
    try:
        options.caseKeys = selectCases(options.cases)
    except ValueError as e:
        parser.error(f"--cases: {e}")
    if options.repeat < 1 or options.duration <= 0:
        parser.error("--repeat must be at least 1 and --duration positive")
    # What benchmarks.dns_qps.Bench reads and this harness does not vary.
    options.no_percentiles = False
    options.kill_rate, options.kill_duration, options.kill_at = 5000, 10.0, 3.0
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parseArguments(argv)
    try:
        executable = dnsperf.findDnsperf()
    except dnsperf.DnsperfMissing as e:
        print(f"perf: {e}", file=sys.stderr)
        return 1
    pdns = findPdns()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    logDir = os.path.join(options.results, f"perf-{stamp}.logs")
    os.makedirs(logDir, exist_ok=True)
    started = time.time()
    revision = sourceRevision()
    rows: List[dict] = []
    results: Dict[str, CaseResult] = {}
    notes: Dict[str, List[str]] = {}
    problems: List[str] = []
    with tempfile.TemporaryDirectory(prefix="gslb-perf-") as workDir:
        bench = PerfBench(options, executable, logDir, workDir)
        cases = CaseSet(options, workDir, logDir, pdns)
        try:
            for key in options.caseKeys:
                if key == "f" and pdns.problem:
                    bench.say(f"[f] SKIPPED: {pdns.problem}; its targets are not measured")
                    rows.append(caseRow(key, None, skipped=pdns.problem))
                    continue
                result = bench.run(cases.case(key))
                results[key] = result
                rows.append(caseRow(key, result))
                notes[key] = cases.notes(key)
                problems.extend(f"{key}: {p}" for p in result.problems)
                if rows[-1]["qps"]:
                    bench.say(f"[{key}] {rows[-1]['qps']:.0f} QPS, server CPU {rows[-1]['serverCpu']}%")
        except KeyboardInterrupt:
            print("perf: interrupted", file=sys.stderr)
    seconds = round(time.time() - started, 1)
    import twisted

    info = machine()
    info["twisted"] = twisted.__version__
    document = {
        "benchmark": "perf",
        "file": os.path.relpath(os.path.join(options.results, f"perf-{stamp}.json"), REPO),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": seconds,
        "machine": info,
        "revision": revision,
        "revision_after": sourceRevision(),
        "dnsperf": {"path": executable, "version": dnsperf.dnsperfVersion(executable)},
        "pdns": asdict(pdns),
        "settings": {"duration": options.duration, "repeat": options.repeat, "clients": options.clients,
                     "threads": options.threads, "outstanding": options.outstanding, "timeout": options.timeout,
                     "cases": options.caseKeys, "sites": options.sites, "services": options.services,
                     "server_cpus": SERVER_CPUS, "dnsperf_cpus": DNSPERF_CPUS},
        "command": f"{sys.executable} -m benchmarks.perf {' '.join(argv)}".rstrip(),
        "load": asdict(bench.load),
        "cases": rows,
        "targets": perf_report.evaluateAll(rows),
        "ratios": perf_report.otherRatios(rows),
        "problems": problems,
        "notes": notes,
        "details": {key: asdict(result) for key, result in results.items()},
        "logs": os.path.relpath(logDir, REPO),
    }
    text = report(document, notes)
    if document["revision_after"] != revision:
        text += f"\n  WARNING: the product changed during the run ({revision} -> {document['revision_after']}): rerun."
    baselinePath = options.compare or os.path.join(options.results, LAST + ".json")
    previous = loadPrevious(baselinePath)
    if previous is not None:
        document["comparison"] = perf_report.compare(previous, document, options.noise / 100)
        text += "\n\n" + perf_report.renderComparison(document["comparison"])
    else:
        text += f"\n\n(no previous result at {os.path.relpath(baselinePath, os.getcwd())} to compare with)"
    document["report"] = text
    print(text)

    base = os.path.join(options.results, f"perf-{stamp}")
    chart = perf_report.svgChart(
        rows, "DNS queries per second per case (benchmarks.perf)",
        f"{document['started']}, {info['nproc']} vCPU, dnsperf -c {options.clients} -q {options.outstanding} "
        f"-l {options.duration:g}, median of {options.repeat}",
    )
    writeText(base + ".svg", chart)
    writeText(base + ".json", json.dumps(document, indent=2) + "\n")
    print(f"\nresults: {os.path.relpath(base + '.json', os.getcwd())}, chart: {os.path.relpath(base + '.svg', os.getcwd())}")
    complete = options.caseKeys == ALL_CASES and len(rows) == len(ALL_CASES)
    if options.no_keep or not complete:
        why = "--no-keep" if options.no_keep else "not every case ran"
        print(f"{LAST}.json left unchanged ({why})")
    else:
        shutil.copyfile(base + ".json", os.path.join(options.results, LAST + ".json"))
        shutil.copyfile(base + ".svg", os.path.join(options.results, LAST + ".svg"))
        print(f"kept as {os.path.relpath(os.path.join(options.results, LAST + '.json'), os.getcwd())} "
              f"(the baseline of the next run)")
    failed = any(row.get("error") for row in rows) or bool(problems) or len(rows) < len(options.caseKeys)
    if options.strict and any(t["status"] != perf_report.PASS for t in document["targets"]):
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
