"""
Tests for the pure parts of L{benchmarks.scale}: the generated topology at
1000 x 20, the targets' evaluation, C{/proc} parsing, the CPU and memory
arithmetic, the walk's schedule and the options.  Run with
C{.venv/bin/trial benchmarks.test_scale}.  (They measure nothing, assert no
timing and start no process.)
"""

from __future__ import annotations

import ipaddress
import os
import random

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from benchmarks import propagation, scale
from benchmarks import propagation_sites as sites
from benchmarks.procstat import ProcStat
from gslb_twisted.mep.rules import initiates


class TopologyTests(SynchronousTestCase):
    """The topology the benchmark gives the appliance (L{propagation.Appliance} writes it)."""

    def test_fullSize(self) -> None:
        text = sites.topologyToml(1000, 20, 40123, scale.METRICS_INTERVAL, scale.DEAD_INTERVAL)
        facts = scale.topologyFacts(text)
        self.assertEqual(facts["mep_sites"], 1000)
        self.assertEqual(facts["sites"], 1001)  # + the static anchor
        self.assertEqual(facts["services"], 1000 * 20 + 1)
        self.assertEqual(facts["services_per_mep_site"], [20])
        self.assertEqual(facts["vservers"], 1000 + 1)
        self.assertTrue(facts["site_ips_unique"])
        self.assertTrue(facts["service_ips_unique"])
        self.assertEqual(facts["mep_site_ip_range"], ["127.0.1.1", "127.0.4.238"])

    def test_sitesOnLoopbackAndDial(self) -> None:
        """Every one of 1000 sites has its own 127/8 address below the appliance's: it dials."""
        addresses = [sites.siteAddress(i) for i in range(1000)]
        self.assertEqual(len(set(addresses)), 1000)
        for index, address in enumerate(addresses):
            self.assertTrue(ipaddress.IPv4Address(address).is_loopback)
            self.assertNotIn(address.split(".")[-1], ("0", "255"))
            self.assertTrue(initiates(address, sites.siteName(index), sites.APPLIANCE_IP, sites.APPLIANCE_NAME))

    def test_duplicateSeen(self) -> None:
        text = sites.topologyToml(2, 2, 40123).replace('"198.18.0.2"', '"198.18.0.1"')
        facts = scale.topologyFacts(text)
        self.assertFalse(facts["service_ips_unique"])
        self.assertTrue(facts["site_ips_unique"])


class TargetTests(SynchronousTestCase):
    def test_evaluate(self) -> None:
        figures = {"small_p99_ms": 4.99, "large_p99_ms": 25.0, "rss_per_core_mib": 81.0,
                   "cpu_per_core_pct": None, "first_answer_s": 0.5}
        rows = {row["key"]: row for row in scale.evaluate(scale.TARGETS, figures)}
        self.assertEqual(rows["small_p99_ms"]["verdict"], "PASS")
        self.assertEqual(rows["large_p99_ms"]["verdict"], "FAIL")  # the limit itself misses a "<" target
        self.assertEqual(rows["rss_per_core_mib"]["verdict"], "FAIL")
        self.assertEqual(rows["cpu_per_core_pct"]["verdict"], "NOT MEASURED")
        self.assertEqual(rows["first_answer_s"]["verdict"], "PASS")
        self.assertEqual(rows["first_answer_s"]["limit"], 3.0)

    def test_issueLimits(self) -> None:
        limits = {target.key: (target.limit, target.unit) for target in scale.TARGETS}
        self.assertEqual(limits, {
            "small_p99_ms": (5.0, "ms"), "large_p99_ms": (25.0, "ms"), "rss_per_core_mib": (80.0, "MiB"),
            "cpu_per_core_pct": (25.0, "% of a CPU"), "first_answer_s": (3.0, "s"),
        })

    def test_missingFigure(self) -> None:
        rows = scale.evaluate(scale.TARGETS, {})
        self.assertEqual({row["verdict"] for row in rows}, {"NOT MEASURED"})

    def test_deviations(self) -> None:
        self.assertEqual(scale.deviations(1000, 20, 2, 10, 4), {})
        notes = scale.deviations(50, 20, 2, 10, 4)
        self.assertEqual(set(notes), {"large_p99_ms", "rss_per_core_mib", "cpu_per_core_pct", "first_answer_s"})
        self.assertIn("50 sites", notes["rss_per_core_mib"])
        self.assertEqual(set(scale.deviations(1000, 20, 2, 4, 2)), {"small_p99_ms"})

    def test_figures(self) -> None:
        large = scale.LargeResult(1000, 20, 2, 30.0, [])
        large.startup.firstAnswer = 1.25
        large.memory = {"steady": {
            "supervisor": scale.summariseMemory([{"rss": 200 * 1024, "hwm": 200 * 1024}]),
            "core 0": scale.summariseMemory([{"rss": 60 * 1024, "hwm": 61 * 1024}, {"rss": 70 * 1024, "hwm": 70 * 1024}]),
            "core 1": scale.summariseMemory([{"rss": 65 * 1024, "hwm": 65 * 1024}]),
        }}
        large.steadyCpu = {"supervisor": 90.0, "core 0": 12.5, "core 1": None}
        large.latencies = [
            {"site": "site-001", "latency": {"p99": 0.012}, "error": None},
            {"site": "site-002", "latency": {"p99": 0.020}, "error": None},
        ]
        small = propagation.LatencyResult(4, 10, 5, 100, [])
        small.latency = {"p99": 0.0031}
        figures = scale.figuresOf(large, small)
        self.assertEqual(figures["first_answer_s"], 1.25)
        self.assertEqual(figures["rss_per_core_mib"], 70.0)  # cores only, the supervisor is not a core
        self.assertEqual(figures["cpu_per_core_pct"], 12.5)
        self.assertEqual(figures["large_p99_ms"], 20.0)  # the worse timed site
        self.assertEqual(figures["small_p99_ms"], 3.1)

    def test_figuresFailed(self) -> None:
        """A failed timed site, or a failed small case, leaves its target unmeasured."""
        large = scale.LargeResult(1000, 20, 2, 30.0, [])
        large.latencies = [{"site": "site-001", "latency": {"p99": 0.01}, "error": None},
                           {"site": "site-002", "latency": None, "error": "timeout"}]
        small = propagation.LatencyResult(4, 10, 5, 100, [])
        small.latency, small.error = {"p99": 0.003}, "boom"
        figures = scale.figuresOf(large, small)
        self.assertIsNone(figures["large_p99_ms"])
        self.assertIsNone(figures["small_p99_ms"])
        self.assertIsNone(figures["rss_per_core_mib"])
        self.assertEqual(scale.figuresOf(None, None), {target.key: None for target in scale.TARGETS})


STATUS = """\
Name:\tpython
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  412180 kB
VmSize:\t  347644 kB
VmHWM:\t   61440 kB
VmRSS:\t   57344 kB
RssAnon:\t   40960 kB
Threads:\t1
"""


def stat(pid: int, ticks: int, start: int = 100) -> ProcStat:
    return ProcStat(pid=pid, comm="python", state="S", ppid=1, cpuTicks=ticks, startTime=start, processor=0)


class ProcTests(SynchronousTestCase):
    def test_status(self) -> None:
        self.assertEqual(scale.parseStatusKb(STATUS), 57344)
        self.assertEqual(scale.parseStatusKb(STATUS, "VmHWM"), 61440)
        self.assertEqual(scale.parseStatusKb(STATUS, "RssAnon"), 40960)

    def test_statusAbsent(self) -> None:
        """A kernel thread or a zombie has no VmRSS line."""
        self.assertIsNone(scale.parseStatusKb("Name:\tkthreadd\nState:\tS (sleeping)\n"))
        self.assertIsNone(scale.parseStatusKb(STATUS, "VmSwap"))

    def test_statusPrefix(self) -> None:
        """VmRSS is not confused with a field that merely starts alike."""
        self.assertEqual(scale.parseStatusKb("VmRSSX:\t1 kB\nVmRSS:\t2 kB\n"), 2)

    def test_statusUnit(self) -> None:
        self.assertRaises(ValueError, scale.parseStatusKb, "VmRSS:\t5 MB\n")

    def test_ownMemory(self) -> None:
        memory = scale.readMemory(os.getpid())
        self.assertGreater(memory["rss"], 0)
        self.assertGreaterEqual(memory["hwm"], memory["rss"])

    def test_goneMemory(self) -> None:
        self.assertIsNone(scale.readMemory(2 ** 22 + 12345))  # above pid_max's ceiling

    def test_summariseMemory(self) -> None:
        summary = scale.summariseMemory([{"rss": 10, "hwm": 10}, None, {"rss": 30, "hwm": 30},
                                         {"rss": 20, "hwm": 35}])
        self.assertEqual(summary, {"n": 3, "first_kib": 10, "max_kib": 30, "end_kib": 20, "hwm_kib": 35})
        self.assertIsNone(scale.summariseMemory([]))
        self.assertIsNone(scale.summariseMemory([{"rss": None, "hwm": None}]))

    def test_cpuByRole(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        before = {10: stat(10, 0), 11: stat(11, 1000), 12: stat(12, 0)}
        after = {10: stat(10, ticks * 3), 11: stat(11, 1000 + ticks // 2), 12: stat(12, ticks, start=999)}
        cpu = scale.cpuByRole(before, after, 10.0, {10: "supervisor", 11: "core 0", 12: "core 1", 13: "core 2"})
        self.assertEqual(cpu["supervisor"], 30.0)
        self.assertEqual(cpu["core 0"], 5.0)
        self.assertIsNone(cpu["core 1"])  # another process under the same pid: its time cannot be split
        self.assertIsNone(cpu["core 2"])  # in neither sample

    def test_roles(self) -> None:
        rows = [{"core": 1, "pid": 21, "state": "up"}, {"core": 0, "pid": 20, "state": "up"},
                {"core": 2, "pid": None, "state": "starting"}]
        self.assertEqual(scale.rolesOf(5, rows), {5: "supervisor", 20: "core 0", 21: "core 1"})


class ScheduleTests(SynchronousTestCase):
    def test_slotGroups(self) -> None:
        groups = scale.slotGroups(1000, 20)
        self.assertEqual(len(groups), 20)
        self.assertEqual({len(group) for group in groups}, {50})
        self.assertEqual(sorted(i for group in groups for i in group), list(range(1000)))
        self.assertEqual([len(g) for g in scale.slotGroups(7, 3)], [3, 2, 2])
        self.assertEqual(scale.slotGroups(0, 2), [[], []])
        self.assertRaises(ValueError, scale.slotGroups, 5, 0)

    def test_pickTimedSites(self) -> None:
        masters = {"site-004": 1, "site-001": 0, "site-003": 0, "site-002": 1, "site-005": None}
        self.assertEqual(scale.pickTimedSites(masters, 1), ["site-001", "site-002"])
        self.assertEqual(scale.pickTimedSites(masters, 2), ["site-001", "site-003", "site-002", "site-004"])
        self.assertEqual(scale.pickTimedSites({}, 1), [])

    def test_walker(self) -> None:
        """Over one period every site sends exactly one change; skipped sites none; late slots are caught up."""
        clock = task.Clock()
        walked = sites.makeSites(clock, 10, 3, seed=1)
        walker = scale.Walker(clock, walked, random.Random(1), 3, 1.0, 5)
        walker.skip = {"site-004"}
        walker.start()  # the first slot runs at once
        clock.advance(0.2)
        clock.advance(0.2)
        clock.advance(0.4)  # two slots due at once: one late
        # Without sessions the changes are applied but not sent.
        self.assertEqual([site.seq for site in walked], [2, 2, 2, 1, 2, 2, 2, 2, 2, 2])
        self.assertEqual(walker.counters(), (0, 9, 0, 1))
        walker.stop()

    def test_walkerSkips(self) -> None:
        clock = task.Clock()
        walked = sites.makeSites(clock, 4, 2, seed=1)
        walker = scale.Walker(clock, walked, random.Random(1), 2, 1.0, 2)
        walker.skip = {"site-002"}
        walker.start()
        clock.advance(0.5)
        clock.advance(0.5)  # a new period begins
        self.assertEqual([site.seq for site in walked], [3, 1, 3, 2])
        walker.stop()


class ConsistencyRowTests(SynchronousTestCase):
    def test_row(self) -> None:
        row = scale.consistencyRow("site-001", {1: {"epoch": 2, "seq": 7}, 0: {"epoch": 2, "seq": 7}})
        self.assertEqual(row, {"site": "site-001", "versions": {"0": [2, 7], "1": [2, 7]}})
        versions = propagation.siteVersions({"sites": [row]}, "site-001")
        self.assertEqual(propagation.agreedVersion(versions, 2), (2, 7))

    def test_behindOrMissing(self) -> None:
        row = scale.consistencyRow("s", {0: {"epoch": 2, "seq": 7}, 1: {"epoch": 2, "seq": 6}, 2: None,
                                         3: {"epoch": None, "seq": None}})
        self.assertEqual(row["versions"], {"0": [2, 7], "1": [2, 6], "2": None, "3": None})
        self.assertIsNone(propagation.agreedVersion(propagation.siteVersions({"sites": [row]}, "s"), 4))


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = scale.parseArguments([])
        self.assertEqual((options.sites, options.services, options.cores, options.duration), (1000, 20, 2, 30.0))
        self.assertEqual((options.small_sites, options.small_cores), (10, 4))
        self.assertTrue(options.check_values)

    def test_bad(self) -> None:
        for argv in (["--sites", "0"], ["--duration", "0"], ["--skip", "bogus"], ["--slots", "0"]):
            self.assertRaises(SystemExit, scale.parseArguments, argv)

    def test_smallArguments(self) -> None:
        """The small case is benchmarks.propagation's latency case at 10 sites, 4 cores."""
        options = scale.parseArguments(["--small-changes", "200"])
        small = propagation.parseArguments(scale.smallArguments(options))
        self.assertEqual((small.cores, small.latency_sites, small.changes), ([4], 10, 200))
        self.assertEqual(small.skip, "bytes")


COLLAPSED = """\
<module> (gslb_twisted/core/__main__.py:5);main (gslb_twisted/core/process.py:150);run (twisted/internet/base.py:1);CoreGSLB.replan (gslb_twisted/core/gslb.py:855);planVServer (gslb_twisted/lb/decision.py:10) 6
<module> (gslb_twisted/core/__main__.py:5);main (gslb_twisted/core/process.py:150);run (twisted/internet/base.py:1);CoreGSLB.replan (gslb_twisted/core/gslb.py:860);planVServer (gslb_twisted/lb/decision.py:12) 2
<module> (gslb_twisted/core/__main__.py:5);main (gslb_twisted/core/process.py:150);run (twisted/internet/base.py:1);CoreGSLB.replan (gslb_twisted/core/gslb.py:870) 1
<module> (gslb_twisted/core/__main__.py:5);main (gslb_twisted/core/process.py:150);run (twisted/internet/base.py:1);writeToFD (twisted/internet/fdesc.py:3) 1
not a stack line
"""


class CollapsedTests(SynchronousTestCase):
    def test_summary(self) -> None:
        summary = scale.summariseCollapsed(COLLAPSED)
        self.assertEqual(summary["samples"], 10)
        # Lines of one function count as one function.
        self.assertEqual(summary["self"][0], ["planVServer (gslb_twisted/lb/decision.py)", 8, 80.0])
        self.assertEqual(summary["self"][1], ["CoreGSLB.replan (gslb_twisted/core/gslb.py)", 1, 10.0])
        inclusive = {name: n for name, n, _ in summary["inclusive"]}
        self.assertEqual(inclusive["CoreGSLB.replan (gslb_twisted/core/gslb.py)"], 9)
        self.assertEqual(inclusive["run (twisted/internet/base.py)"], 10)
        product = [name for name, _, _ in summary["inclusive_product"]]
        self.assertEqual(product, ["CoreGSLB.replan (gslb_twisted/core/gslb.py)",
                                   "planVServer (gslb_twisted/lb/decision.py)"])
        self.assertEqual(summary["self_by_file"][0], ["gslb_twisted/lb/decision.py", 8, 80.0])

    def test_recursion(self) -> None:
        """A function twice in one stack counts once inclusively."""
        summary = scale.summariseCollapsed("a (x.py:1);b (x.py:2);a (x.py:3) 4\n")
        self.assertEqual({name: n for name, n, _ in summary["inclusive"]}, {"a (x.py)": 4, "b (x.py)": 4})

    def test_empty(self) -> None:
        self.assertEqual(scale.summariseCollapsed("")["samples"], 0)
