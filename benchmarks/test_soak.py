"""
Tests for the pure parts of L{benchmarks.soak}: the generated topology and
query mix, the churn script, the classification of answers against the
unavailability intervals, the per-minute summaries and the trend verdicts.
Run with C{.venv/bin/trial benchmarks.test_soak}.  (They measure nothing
and start no process.)
"""

from __future__ import annotations

import os
import tempfile

import dns.flags
import dns.message
from twisted.trial.unittest import SynchronousTestCase

from benchmarks import soak
from benchmarks.failover import SitePlan, planSites
from benchmarks.propagation_sites import ZONE, serviceAddress
from gslb_twisted.config import loadTopology


def plans(count: int = 4):
    """Sites as the soak makes them: the dialled ones with a port of their own."""
    return [p if p.dials else SitePlan(p.index, p.name, p.ip, False, 40000 + p.index) for p in planSites(count)]


def answer(sent, received, *addresses, rcode="NOERROR", name="rr.bench.gslb", client=None):
    return soak.ProbeAnswer(sent, received, name, rcode, tuple(addresses), client)


class TopologyTests(SynchronousTestCase):
    def load(self, text: str):
        path = os.path.join(tempfile.mkdtemp(), "soak.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return loadTopology(path)

    def test_parses(self) -> None:
        """The generated topology is one the appliance accepts, with every method."""
        sites = plans(4)
        topology = self.load(soak.soakTopology(sites, 4, 3011))
        methods = {v.name: v.lb_method for v in topology.vservers}
        self.assertEqual(methods["rr"], "ROUNDROBIN")
        self.assertEqual(methods["lc-persist"], "LEASTCONNECTION")
        self.assertEqual(methods["custom"], "CUSTOMLOAD")
        self.assertEqual(methods["prox"], "STATICPROXIMITY")
        self.assertEqual(methods["hash"], "SOURCEIPHASH")
        byName = {v.name: v for v in topology.vservers}
        self.assertEqual(byName["lc-persist"].persistence, "SOURCEIP")
        self.assertTrue(all(v.down_response == "empty" for v in topology.vservers if v.name != "www"))
        # 4 sites + the static anchor; 16 services + the anchor's.
        self.assertEqual(len(topology.sites), 5)
        self.assertEqual(len(topology.services), 17)
        self.assertIsNotNone(topology.appliance.location_db)

    def test_dialledPorts(self) -> None:
        """A dialled site is reached at its own port, a dialling one names the appliance's."""
        text = soak.soakTopology(plans(4), 2, 3011)
        self.assertIn("mep_port = 40002", text)
        self.assertIn("mep_port = 3011", text)

    def test_addresses(self) -> None:
        sites = plans(4)
        serviceOf = soak.serviceOfAddress(sites, 3)
        self.assertEqual(len(serviceOf), 12)
        self.assertEqual(serviceOf[serviceAddress(1, 2, 3)], "site-002-svc-03")

    def test_domains(self) -> None:
        """Two names per method vserver, one per site vserver, all distinct and in the zone."""
        domains = soak.allDomains(plans(4), 4)
        self.assertEqual(len(domains), 7 * 2 + 4)
        self.assertEqual(len(set(domains)), len(domains))
        self.assertTrue(all(d.endswith("." + ZONE) for d in domains))

    def test_subsetsNotEmpty(self) -> None:
        """With one service per site the odd subset falls back to the even one."""
        specs = soak.vserverSpecs(plans(2), 1)
        self.assertTrue(all(spec.services for spec in specs))


class QueryTests(SynchronousTestCase):
    def test_mix(self) -> None:
        mix = soak.queryMix(["a." + ZONE, "b." + ZONE], ["s1." + ZONE], [f"10.0.{i}.0" for i in range(32)], seed=1)
        # 32 clients x (2 + 1) + 2 clients (0, 16) x 2 odd ones.
        self.assertEqual(len(mix), 32 * 3 + 2 * 2)
        self.assertEqual(sum(1 for _, t, _ in mix if t == "AAAA"), 2)
        self.assertEqual(sum(1 for n, _, _ in mix if n.startswith("nx-")), 2)
        # Clients 0 and 20 send no ECS option.
        self.assertEqual(sum(1 for _, _, c in mix if c is None), 2 * 3 + 2)
        self.assertEqual(mix, soak.queryMix(["a." + ZONE, "b." + ZONE], ["s1." + ZONE],
                                            [f"10.0.{i}.0" for i in range(32)], seed=1))

    def test_wire(self) -> None:
        message = dns.message.from_wire(soak.wireQuery("rr." + ZONE, "A", "198.51.100.0"))
        self.assertEqual(message.edns, 0)
        self.assertEqual(len(message.options), 1)
        self.assertEqual(message.options[0].address, "198.51.100.0")
        self.assertFalse(message.flags & dns.flags.RD)
        plain = dns.message.from_wire(soak.wireQuery("rr." + ZONE, "A", None))
        self.assertEqual(len(plain.options), 0)

    def test_slices(self) -> None:
        subnets = [f"10.0.{i}.0" for i in range(20)]
        slices, probe = soak.splitClients(subnets, 4, 3)
        self.assertEqual(probe, subnets[:3])
        self.assertEqual([len(s) for s in slices], [4, 4, 4, 4])
        self.assertFalse(set(probe) & {c for s in slices for c in s})
        self.assertRaises(ValueError, soak.splitClients, subnets[:4], 4, 3)

    def test_loadRate(self) -> None:
        self.assertEqual(soak.loadRate(26564.0, 0.7), 18594)
        self.assertEqual(soak.loadRate(0.0, 0.7), 1)


SITES = {f"site-{i:03d}": [f"site-{i:03d}-svc-{v:02d}" for v in range(1, 4)] for i in range(1, 9)}


class ChurnTests(SynchronousTestCase):
    def test_deterministic(self) -> None:
        self.assertEqual(soak.planChurn(7, 1800, SITES), soak.planChurn(7, 1800, SITES))
        self.assertNotEqual(soak.planChurn(7, 1800, SITES), soak.planChurn(8, 1800, SITES))

    def test_bounds(self) -> None:
        """Every event starts after the start and ends a margin before the end."""
        events = soak.planChurn(1, 1800, SITES, meanGap=10, start=20, margin=30)
        self.assertTrue(events)
        for event in events:
            self.assertGreaterEqual(event.at, 20)
            self.assertLessEqual(event.at + event.duration, 1800 - 30)
            low, high = soak.DURATIONS[event.kind]
            self.assertTrue(low <= event.duration <= high)
        self.assertEqual([e.at for e in events], sorted(e.at for e in events))

    def test_allKinds(self) -> None:
        counts = soak.churnCounts(soak.planChurn(1, 1800, SITES))
        self.assertEqual(set(counts), set(soak.KINDS))
        self.assertTrue(all(counts.values()), counts)

    def test_details(self) -> None:
        for event in soak.planChurn(3, 1800, SITES):
            if event.kind in ("service-down", "disable"):
                self.assertIn(event.service, SITES[event.site])
            else:
                self.assertIsNone(event.service)
            if event.kind == "session-drop":
                self.assertIn(event.detail, ("close", "abort"))
            if event.kind == "ramp":
                self.assertTrue(20 <= int(event.detail) < 60)

    def test_oneEventPerSite(self) -> None:
        """No two events overlap on one site (nor its settle time), and one site is DOWN at a time."""
        events = soak.planChurn(5, 3600, SITES, meanGap=5)
        bySite = {}
        for event in events:
            bySite.setdefault(event.site, []).append(event)
        for siteEvents in bySite.values():
            for a, b in zip(siteEvents, siteEvents[1:]):
                self.assertGreaterEqual(b.at, a.at + a.duration + soak.SETTLE - 0.1)
        downs = [e for e in events if e.kind == "site-down"]
        for a, b in zip(downs, downs[1:]):
            self.assertGreaterEqual(b.at, a.at + a.duration)

    def test_tooShort(self) -> None:
        self.assertEqual(soak.planChurn(1, 20, SITES), [])
        self.assertRaises(ValueError, soak.planChurn, 1, 100, SITES, meanGap=0)

    def test_ramp(self) -> None:
        steps = soak.rampSteps(21.4, 30)
        self.assertEqual(len(steps), 21)
        self.assertEqual(sum(steps), 0)
        self.assertEqual(steps[:10], [30] * 10)
        self.assertEqual(soak.rampSteps(0.5, 5), [5, -5])


class ClassifyTests(SynchronousTestCase):
    A, B = "198.18.0.1", "198.18.0.2"
    SERVICES = {A: "s-a", B: "s-b"}

    def intervals(self, end=20.0, grace=1.0, kind="service-down"):
        return [soak.Interval("s-a", kind, 10.0, end, grace, 0)]

    def test_wrong(self) -> None:
        """Named while DOWN from at least the grace before the query to after the answer."""
        result = soak.classify([answer(11.5, 11.6, self.A)], self.intervals(), self.SERVICES)
        self.assertEqual(len(result["wrong"]), 1)
        wrong = result["wrong"][0]
        self.assertEqual((wrong["service"], wrong["kind"], wrong["event"]), ("s-a", "service-down", 0))
        self.assertAlmostEqual(wrong["after_transition"], 1.5)

    def test_grace(self) -> None:
        """Within the grace after the transition: allowed, and how late it was is kept."""
        result = soak.classify([answer(10.5, 10.6, self.A), answer(9.9, 10.2, self.A)], self.intervals(),
                               self.SERVICES)
        self.assertEqual(result["wrong"], [])
        self.assertEqual(result["in_grace"], 2)
        self.assertAlmostEqual(result["lateness"]["service-down"], 0.6)
        self.assertEqual([g["sent_after"] for g in result["grace"]], [0.5, -0.1])

    def test_backUp(self) -> None:
        """Answered after the service came back: not wrong, even if sent while it was DOWN."""
        result = soak.classify([answer(19.9, 20.1, self.A), answer(25.0, 25.1, self.A)], self.intervals(),
                               self.SERVICES)
        self.assertEqual((result["wrong"], result["in_grace"]), ([], 0))

    def test_before(self) -> None:
        result = soak.classify([answer(5.0, 5.1, self.A)], self.intervals(), self.SERVICES)
        self.assertEqual((result["wrong"], result["in_grace"]), ([], 0))

    def test_open(self) -> None:
        """An interval still open (end None) counts as DOWN after any answer."""
        result = soak.classify([answer(100.0, 100.1, self.A)], self.intervals(end=None), self.SERVICES)
        self.assertEqual(len(result["wrong"]), 1)

    def test_noGrace(self) -> None:
        """A disabled service (grace 0): wrong from the command's answer on."""
        intervals = self.intervals(grace=0.0, kind="disabled")
        self.assertEqual(len(soak.classify([answer(10.0, 10.001, self.A)], intervals, self.SERVICES)["wrong"]), 1)
        self.assertEqual(soak.classify([answer(9.999, 10.001, self.A)], intervals, self.SERVICES)["wrong"], [])

    def test_otherServices(self) -> None:
        """Other services, addresses nobody knows and empty answers are never wrong."""
        answers = [answer(12.0, 12.1, self.B), answer(12.0, 12.1, "192.0.2.10"), answer(12.0, 12.1)]
        result = soak.classify(answers, self.intervals(), self.SERVICES)
        self.assertEqual((result["wrong"], result["answered"]), ([], 3))

    def test_counts(self) -> None:
        answers = [answer(1.0, 1.001, self.A), answer(2.0, 3.0, rcode=None), answer(3.0, 3.003, rcode="NXDOMAIN")]
        result = soak.classify(answers, [], self.SERVICES)
        self.assertEqual((result["queries"], result["answered"], result["unanswered"]), (3, 2, 1))
        self.assertEqual(result["rcodes"], {"NOERROR": 1, "NXDOMAIN": 1})
        self.assertEqual(result["latency"]["max"], 0.003)

    def test_overlapping(self) -> None:
        """A site DOWN over a service already DOWN: one wrong entry naming both, or grace if neither is due."""
        intervals = [soak.Interval("s-a", "site-down", 10.0, 30.0, 3.0, 0),
                     soak.Interval("s-a", "service-down", 12.0, 14.0, 1.0, 1)]
        result = soak.classify([answer(13.5, 13.6, self.A)], intervals, self.SERVICES)
        self.assertEqual([w["kinds"] for w in result["wrong"]], [["site-down", "service-down"]])
        result = soak.classify([answer(12.5, 12.6, self.A)], intervals, self.SERVICES)
        self.assertEqual((result["wrong"], result["in_grace"]), ([], 1))
        self.assertEqual(result["grace"][0]["kind"], "service-down")

    def test_merge(self) -> None:
        total = {}
        soak.mergeClassified(total, soak.classify([answer(11.5, 11.6, self.A)], self.intervals(), self.SERVICES))
        soak.mergeClassified(total, soak.classify([answer(10.2, 10.3, self.A), answer(1.0, 2.0, rcode=None)],
                                                  self.intervals(), self.SERVICES))
        self.assertEqual((total["queries"], total["answered"], total["unanswered"]), (3, 2, 1))
        self.assertEqual(len(total["wrong"]), 1)
        self.assertEqual(total["in_grace"], 1)
        self.assertAlmostEqual(total["lateness"]["service-down"], 0.3)
        self.assertAlmostEqual(total["latency_max"], 0.1)


class SampleTests(SynchronousTestCase):
    def test_summary(self) -> None:
        summary = soak.summariseSamples([(100, 10), (300, 12), (200, 11), (None, None)])
        self.assertEqual(summary, {"n": 4, "rss_kib": 200, "rss_max_kib": 300, "fds_min": 10, "fds_max": 12,
                                   "fds_last": 11, "fds_net_min": None})
        self.assertIsNone(soak.summariseSamples([(None, None)]))

    def test_net(self) -> None:
        """With the MEP sessions held at each sample, the fewest fds other than sessions."""
        summary = soak.summariseSamples([(100, 20, 4), (100, 19, 2), (100, 21, None)])
        self.assertEqual((summary["fds_min"], summary["fds_net_min"]), (19, 16))
        self.assertIsNone(soak.summariseSamples([(100, 20)])["fds_net_min"])

    def test_sessions(self) -> None:
        rows = [{"site": "a", "core": 0, "state": "established"}, {"site": "b", "core": 0, "state": "handshake"},
                {"site": "c", "core": 1, "state": "established"}, {"site": "d", "core": 1, "state": "down"}]
        self.assertEqual(soak.sessionsByCore(rows), {0: 2, 1: 1})
        self.assertIsNone(soak.sessionsByCore(None))

    def test_udpQueue(self) -> None:
        text = (
            "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
            "  101: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 ffff 0\n"
            "  102: 0100007F:8026 00000000:0000 07 00000000:00001A40 00:00000000 00000000     0        0 3 2 ffff 17\n"
        )
        self.assertEqual(soak.udpQueue(text, 0x8026), (0x1A40, 17))
        self.assertEqual(soak.udpQueue(text, 53), (0, 0))
        self.assertIsNone(soak.udpQueue(text, 5300))

    def test_fdsOfThisProcess(self) -> None:
        self.assertGreater(soak.countFds(os.getpid()), 0)
        self.assertIsNone(soak.countFds(2 ** 22 + 1))


class TrendTests(SynchronousTestCase):
    def test_slope(self) -> None:
        self.assertAlmostEqual(soak.leastSquaresSlope([(0, 1), (1, 3), (2, 5)]), 2.0)
        self.assertIsNone(soak.leastSquaresSlope([(1, 1)]))
        self.assertIsNone(soak.leastSquaresSlope([(1, 1), (1, 2)]))

    def test_flat(self) -> None:
        """A series growing only during the warm-up passes."""
        points = [(m, 40000 + 1000 * min(m, 8)) for m in range(1, 31)]
        verdict = soak.trendVerdict(points, 30, 2048)
        self.assertEqual(verdict["verdict"], "PASS")
        self.assertEqual(verdict["points"], 20)
        self.assertEqual(verdict["from_minute"], 11)
        self.assertAlmostEqual(verdict["growth"], 0.0)

    def test_leak(self) -> None:
        """100 KiB a minute after the warm-up is 3000 KiB per 30 min: FAIL."""
        points = [(m, 40000 + 100 * m) for m in range(1, 31)]
        verdict = soak.trendVerdict(points, 30, 2048)
        self.assertEqual(verdict["verdict"], "FAIL")
        self.assertAlmostEqual(verdict["slope_per_minute"], 100.0)
        self.assertAlmostEqual(verdict["growth"], 3000.0)
        self.assertEqual(verdict["window_change"], 1900)

    def test_threshold(self) -> None:
        """Just below the threshold passes, at it fails."""
        below = [(m, m * (2047 / 30)) for m in range(1, 31)]
        at = [(m, m * (2048 / 30)) for m in range(1, 31)]
        self.assertEqual(soak.trendVerdict(below, 30, 2048)["verdict"], "PASS")
        self.assertEqual(soak.trendVerdict(at, 30, 2048)["verdict"], "FAIL")

    def test_shrinking(self) -> None:
        points = [(m, 50 - m) for m in range(1, 31)]
        self.assertEqual(soak.trendVerdict(points, 30, 1)["verdict"], "PASS")

    def test_noisyFds(self) -> None:
        """An fd count that alternates around a level passes."""
        points = [(m, 16 + (m % 2)) for m in range(1, 31)]
        self.assertEqual(soak.trendVerdict(points, 30, 1.0)["verdict"], "PASS")

    def test_fdLeak(self) -> None:
        """One fd every 10 minutes is 3 per 30 min: FAIL."""
        points = [(m, 16 + m // 10) for m in range(1, 31)]
        self.assertEqual(soak.trendVerdict(points, 30, 1.0)["verdict"], "FAIL")

    def test_short(self) -> None:
        """A 3-minute run has too few points after the warm-up: N/A, with the reason."""
        verdict = soak.trendVerdict([(1, 1), (2, 2), (3, 3)], 3, 2048)
        self.assertEqual(verdict["verdict"], "N/A")
        self.assertIn("needed", verdict["reason"])
        self.assertEqual(verdict["points"], 2)

    def test_overall(self) -> None:
        passing = {"core 0": {"rss": {"verdict": "PASS"}, "fds": {"verdict": "N/A"}}}
        failing = {"core 0": {"rss": {"verdict": "FAIL"}, "fds": {"verdict": "PASS"}}}
        self.assertEqual(soak.overallVerdict(passing, 0, 0, []), "PASS")
        self.assertEqual(soak.overallVerdict(failing, 0, 0, []), "FAIL")
        self.assertEqual(soak.overallVerdict(passing, 1, 0, []), "FAIL")
        self.assertEqual(soak.overallVerdict(passing, 0, 1, []), "FAIL")
        self.assertEqual(soak.overallVerdict(passing, 0, 0, ["a problem"]), "FAIL")


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = soak.parseArguments([])
        self.assertEqual((options.minutes, options.cores, options.sites, options.load), (30, 2, 8, 0.7))
        self.assertEqual(options.rss_threshold_mib, 2.0)
        self.assertEqual(options.fd_threshold, 1.0)

    def test_bad(self) -> None:
        for argv in (["--sites", "1"], ["--load", "0"], ["--load", "1.5"], ["--minutes", "0"],
                     ["--probe-rate", "0"]):
            self.assertRaises(SystemExit, soak.parseArguments, argv)


class WatchTests(SynchronousTestCase):
    def test_views(self) -> None:
        view = {"state": "UP", "services": [{"name": "a", "state": "DOWN"}, {"name": "b", "state": "UP"}]}
        self.assertTrue(soak.viewShowsDown(view, ["a"]))
        self.assertFalse(soak.viewShowsDown(view, ["a", "b"]))
        self.assertTrue(soak.viewShowsDown(dict(view, state="DOWN"), ["a", "b"]))
        self.assertFalse(soak.viewShowsDown(None, ["a"]))

    def test_plans(self) -> None:
        resolved = {"candidates": [{"service": "b"}], "excluded": [{"service": "a", "reason": "DOWN"}]}
        self.assertTrue(soak.planExcludes(resolved, ["a"]))
        self.assertFalse(soak.planExcludes(resolved, ["a", "b"]))
        self.assertFalse(soak.planExcludes(None, ["a"]))

    def test_verdict(self) -> None:
        quick = {"0": {"metrics": 0.02, "rr.x": 0.03, "after_last_not": {"metrics": 0.0, "rr.x": 0.01}}}
        self.assertIsNone(soak.watchVerdict(quick, 1.0))
        # Shown late, but no poll started after the grace saw it missing: inconclusive, "slow".
        slowPoll = {"0": {"metrics": 2.5, "after_last_not": {"metrics": 0.0}}}
        self.assertEqual(soak.watchVerdict(slowPoll, 1.0), "slow")
        # A poll started 1.3 s after still showed it UP: beyond a 1 s grace.
        late = {"0": {"metrics": 3.1, "applied": 3.1, "after_last_not": {"metrics": 1.3}}}
        self.assertEqual(soak.watchVerdict(late, 1.0), "BEYOND GRACE")
        self.assertEqual(soak.watchVerdict({"0": {"metrics": None, "after_last_not": {}}}, 3.0), "BEYOND GRACE")
        self.assertIsNone(soak.watchVerdict(None, 1.0))

    def test_slowest(self) -> None:
        applied = [
            {"kind": "service-down", "seen": {"0": {"metrics": 0.05, "applied": 0.01, "after_last_not": {}},
                                               "1": {"metrics": 0.3, "rr.x": 0.1}}},
            {"kind": "service-down", "seen": {"0": {"metrics": 0.2}}},
            {"kind": "site-down", "seen": {"0": {"metrics": None}}},
            {"kind": "ramp"},
        ]
        self.assertEqual(soak.slowestSeen(applied), {"service-down": 0.3, "site-down": None})


class StallTests(SynchronousTestCase):
    def test_cpu(self) -> None:
        ticks = soak.procstat.CLOCK_TICKS
        series = [(0.0, 0), (1.0, ticks // 2), (2.0, ticks // 2 + ticks), (3.0, 2 * ticks)]
        # From the sample at 1.0 to the one at 2.0: one CPU busy.
        self.assertEqual(soak.stallCpu(series, 1.2, 1.9), 100.0)
        self.assertEqual(soak.stallCpu(series, 0.5, 2.5), 66.7)
        self.assertIsNone(soak.stallCpu(series, -1.0, 1.0))
        self.assertIsNone(soak.stallCpu(series, 2.5, 3.5))
