"""
Tests for the benchmark harness's pure parts: reading dnsperf and /proc,
selecting cases, computing shares and ratios.  Run with
C{.venv/bin/trial benchmarks}.  (They measure nothing.)
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import dns_qps, dnsperf, procstat

DNSPERF_OUTPUT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5399 -d q.txt -l 3 -c 4 -q 100 -v
[Status] Sending queries (to 127.0.0.1:5399)
> NOERROR www.bench.gslb A 0.000300
> NOERROR www.bench.gslb A 0.000100
> SERVFAIL www.bench.gslb A 0.000200
1795688038.457603: 4999.265108
1795688039.457821: 3100.5
[Timeout] Query timed out: msg id 7
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         81061
  Queries completed:    81060 (100.00%)
  Queries lost:         1 (0.00%)

  Response codes:       NOERROR 81059 (100.00%), SERVFAIL 1 (0.00%)
  Average packet size:  request 32, response 48
  Run time (s):         3.003930
  Queries per second:   26984.983006

  Average Latency (s):  0.003662 (min 0.000057, max 0.008481)
  Latency StdDev (s):   0.001053

"""


class DnsperfTests(SynchronousTestCase):
    def test_statistics(self) -> None:
        result = dnsperf.parseStatistics(DNSPERF_OUTPUT)
        self.assertEqual((result.sent, result.completed, result.lost), (81061, 81060, 1))
        self.assertAlmostEqual(result.qps, 26984.983006)
        self.assertAlmostEqual(result.runTime, 3.00393)
        self.assertEqual(
            (result.latencyMean, result.latencyMin, result.latencyMax, result.latencyStddev),
            (0.003662, 0.000057, 0.008481, 0.001053),
        )
        self.assertEqual(result.rcodes, {"NOERROR": 81059, "SERVFAIL": 1})

    def test_noStatistics(self) -> None:
        self.assertRaises(dnsperf.DnsperfOutputError, dnsperf.parseStatistics, "Error: no server\n")

    def test_verbose(self) -> None:
        self.assertEqual(
            dnsperf.parseVerbose(DNSPERF_OUTPUT.splitlines()), [0.0003, 0.0001, 0.0002]
        )

    def test_percentile(self) -> None:
        values = [float(n) for n in range(1, 101)]
        self.assertEqual(dnsperf.percentile(values, 0.99), 99.0)
        self.assertEqual(dnsperf.percentile(values, 0.50), 50.0)
        self.assertEqual(dnsperf.percentile([3.0], 0.99), 3.0)
        self.assertIsNone(dnsperf.percentile([], 0.99))

    def test_readResult(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(DNSPERF_OUTPUT)
        result = dnsperf.readResult(path)
        self.assertEqual(result.answeredLines, 3)
        self.assertEqual(result.latencyP99, 0.0003)
        self.assertEqual(result.latencyP50, 0.0002)
        self.assertEqual(result.sent, 81061)
        self.assertEqual(result.intervals, [4999.265108, 3100.5])

    def test_command(self) -> None:
        load = dnsperf.DnsperfLoad(duration=10, clients=4, outstanding=100, maxQps=5000,
                                   timeout=1.0, cpus="1", statsInterval=1)
        self.assertEqual(
            dnsperf.dnsperfCommand("dnsperf", "127.0.0.1", 5399, "q.txt", load),
            ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", "5399", "-d", "q.txt",
             "-l", "10", "-c", "4", "-T", "1", "-q", "100", "-t", "1", "-Q", "5000", "-S", "1", "-v"],
        )


class ProcStatTests(SynchronousTestCase):
    LINE = (
        "4242 (python (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
        "150 50 0 0 20 0 1 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 "
        "16781312 2 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )

    def test_parseStat(self) -> None:
        stat = procstat.parseStat(self.LINE)
        self.assertEqual(stat.pid, 4242)
        self.assertEqual(stat.comm, "python (x) y")
        self.assertEqual((stat.state, stat.ppid), ("S", 1))
        self.assertEqual(stat.cpuTicks, 200)
        self.assertEqual(stat.startTime, 123456)
        self.assertEqual(stat.processor, 1)

    def test_cpuPercent(self) -> None:
        def stat(pid, ticks, start=1):
            return procstat.ProcStat(pid, "x", "R", 1, ticks, start, 0)

        hz = procstat.CLOCK_TICKS
        before = {1: stat(1, 0), 2: stat(2, 0), 3: stat(3, 0, start=5)}
        after = {1: stat(1, hz), 2: stat(2, hz // 2), 3: stat(3, hz, start=9), 4: stat(4, hz)}
        self.assertEqual(procstat.cpuPercent(before, after, 1.0), {1: 100.0, 2: 50.0})

    def test_descendants(self) -> None:
        def stat(pid, ppid):
            return procstat.ProcStat(pid, "x", "S", ppid, 0, 0, 0)

        stats = {s.pid: s for s in [stat(10, 1), stat(11, 10), stat(12, 10), stat(13, 11), stat(20, 1)]}
        self.assertEqual(procstat.descendants(10, stats), [10, 11, 12, 13])
        self.assertEqual(procstat.descendants(99, stats), [])


class CaseTests(SynchronousTestCase):
    def test_select(self) -> None:
        keys = [case.key for case in dns_qps.selectCases("c, a,k-reuseport")]
        self.assertEqual(keys, ["a", "c-inherit", "c-reuseport", "k-reuseport"])

    def test_selectUnknown(self) -> None:
        self.assertRaises(ValueError, dns_qps.selectCases, "a,z")

    def test_shares(self) -> None:
        before = [{"core": 0, "pid": 10, "queries": 100}, {"core": 1, "pid": 11, "queries": 50}]
        after = [{"core": 0, "pid": 10, "queries": 400}, {"core": 1, "pid": 11, "queries": 150}]
        self.assertEqual(dns_qps.coreShares(before, after), {"0": 0.75, "1": 0.25})

    def test_sharesRespawned(self) -> None:
        before = [{"core": 0, "pid": 10, "queries": 100}, {"core": 1, "pid": 11, "queries": 500}]
        after = [{"core": 0, "pid": 10, "queries": 200}, {"core": 1, "pid": 12, "queries": 100}]
        self.assertEqual(dns_qps.coreShares(before, after), {"0": 0.5, "1": 0.5})

    def test_sharesNothingServed(self) -> None:
        cores = [{"core": 0, "pid": 10, "queries": 5}]
        self.assertIsNone(dns_qps.coreShares(cores, cores))

    def test_ratios(self) -> None:
        def result(key, qps):
            r = dns_qps.CaseResult(key, key, "saturate", "", [])
            r.dnsperf = {"qps": qps}
            return r

        computed = dns_qps.ratios([result("a", 20000.0), result("b", 30000.0)])
        self.assertEqual([(r["numerator"], r["denominator"], r["ratio"]) for r in computed],
                         [("b", "a", 1.5)])


class HostCpuTests(SynchronousTestCase):
    def test_parseCpuLine(self) -> None:
        busy, total = procstat.parseCpuLine("cpu  100 5 50 1000 20 0 10 3 7 0\n")
        self.assertEqual((busy, total), (168, 1188))

    def test_busyPercent(self) -> None:
        hz = procstat.CLOCK_TICKS
        self.assertEqual(procstat.busyPercent((0, 0), (3 * hz, 4 * hz), 2.0), 150.0)
