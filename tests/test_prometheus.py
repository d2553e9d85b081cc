"""
Prometheus metrics: the metric families from hand-built views (pure), the
exporter's refresh with a fake supervisor and a Clock, and the real
appliance serving /metrics that agrees, to the query, with `stat`.
"""

from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from twisted.internet import defer, reactor, task, threads
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.logger import globalLogPublisher
from twisted.protocols import amp
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gslb_twisted.exporter import CachedCollector, MetricsExporter, metricFamilies
from gslb_twisted.protocol.commands import StatVServers
from gslb_twisted.tap import Options
from tests.support import TOPOLOGY, Appliance, addresses, freePort, poll, query
from tests.test_stats_control import makeView

# What the appliance must expose (shared/SPEC.md, issue 5).
REQUIRED = (
    "gslb_dns_queries_total", "gslb_dns_responses_total", "gslb_dns_bytes_received_total",
    "gslb_dns_bytes_sent_total", "gslb_dns_dropped_total", "gslb_dns_truncated_total", "gslb_rrl_dropped_total",
    "gslb_rrl_slipped_total", "gslb_vserver_hits_total", "gslb_vserver_persistence_hits_total",
    "gslb_vserver_backup_method_hits_total", "gslb_vserver_spillovers_total",
    "gslb_vserver_backup_vserver_hits_total", "gslb_vserver_health_ratio", "gslb_vserver_up",
    "gslb_service_answers_total", "gslb_service_up", "gslb_site_up", "gslb_site_master_core",
    "gslb_site_metrics_age_seconds", "gslb_core_queries_total", "gslb_consolidation_round",
    "gslb_stale_updates_rejected_total", "gslb_site_propagation_lag_seconds",
)

SITES = {
    0: [
        {"name": "east", "state": "UP", "master_core": 0, "epoch": 3, "seq": 42, "metrics_age": 0.25},
        {"name": "west", "state": "DOWN", "master_core": 1, "epoch": 1, "seq": 7, "metrics_age": 0.25},
        {"name": "north", "state": "DOWN", "master_core": None, "epoch": 2, "seq": 0, "metrics_age": None},
    ],
    1: [
        {"name": "east", "state": "UP", "master_core": 0, "epoch": 3, "seq": 40, "metrics_age": 0.75},
        {"name": "west", "state": "UP", "master_core": 1, "epoch": 1, "seq": 7, "metrics_age": 0.5},
        {"name": "north", "state": "DOWN", "master_core": None, "epoch": 2, "seq": 0, "metrics_age": None},
    ],
}
MASTERS = [["east", 0, 3], ["north", None, 2], ["west", 1, 1]]
CORES = [{"core": 0, "state": "up", "restarts": 0}, {"core": 1, "state": "down", "restarts": 2}]


def exposition(families) -> dict:
    """The families through the text format and back: {(sample name, labels): value}, {family: type}."""
    collector = CachedCollector()
    collector.families = families
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def value(samples: dict, name: str, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class MetricFamiliesTests(SynchronousTestCase):
    def setUp(self):
        self.samples, self.types = exposition(metricFamilies(makeView(), SITES, MASTERS, CORES))

    def test_everyRequiredNameWithItsType(self):
        for name in REQUIRED:
            family = name[: -len("_total")] if name.endswith("_total") else name
            self.assertIn(family, self.types, name)
            self.assertEqual(self.types[family], "counter" if name.endswith("_total") else "gauge", name)

    def test_dns(self):
        s = self.samples
        self.assertEqual(value(s, "gslb_dns_queries_total", qtype="A"), 100)
        self.assertEqual(value(s, "gslb_dns_queries_total", qtype="AAAA"), 25)
        self.assertEqual(value(s, "gslb_dns_responses_total", rcode="NXDOMAIN"), 8)
        self.assertEqual(value(s, "gslb_dns_bytes_received_total"), 4000)
        self.assertEqual(value(s, "gslb_dns_bytes_sent_total"), 6000)
        self.assertEqual(value(s, "gslb_dns_dropped_total"), 2)
        self.assertEqual(value(s, "gslb_dns_truncated_total"), 1)
        self.assertEqual(value(s, "gslb_rrl_dropped_total"), 3)
        # Never counted is zero, not absent.
        self.assertEqual(value(s, "gslb_rrl_slipped_total"), 0)

    def test_vservers(self):
        s = self.samples
        self.assertEqual(value(s, "gslb_vserver_hits_total", vserver="www"), 110)
        self.assertEqual(value(s, "gslb_vserver_hits_total", vserver="api"), 10)
        self.assertEqual(value(s, "gslb_vserver_persistence_hits_total", vserver="www"), 40)
        self.assertEqual(value(s, "gslb_vserver_backup_method_hits_total", vserver="www"), 7)
        self.assertEqual(value(s, "gslb_vserver_spillovers_total", vserver="www"), 4)
        self.assertEqual(value(s, "gslb_vserver_backup_vserver_hits_total", vserver="www"), 5)
        self.assertEqual(value(s, "gslb_vserver_down_responses_total", vserver="api"), 10)
        self.assertEqual(value(s, "gslb_vserver_health_ratio", vserver="www"), 0.667)
        self.assertEqual(value(s, "gslb_vserver_up", vserver="www"), 1)
        self.assertEqual(value(s, "gslb_vserver_up", vserver="api"), 0)
        self.assertEqual(value(s, "gslb_vserver_persistence_sessions", vserver="www"), 12)

    def test_services(self):
        s = self.samples
        self.assertEqual(value(s, "gslb_service_answers_total", service="east-web", site="east"), 70)
        self.assertEqual(value(s, "gslb_service_answers_total", service="east-web6", site="east"), 0)
        self.assertEqual(value(s, "gslb_service_up", service="west-web", site="west"), 1)
        self.assertEqual(value(s, "gslb_service_up", service="east-web6", site="east"), 0)

    def test_coresAndRounds(self):
        s = self.samples
        self.assertEqual(value(s, "gslb_core_queries_total", core="0"), 80)
        self.assertEqual(value(s, "gslb_core_queries_total", core="1"), 50)
        self.assertEqual(value(s, "gslb_stale_updates_rejected_total", core="1"), 2)
        self.assertEqual(value(s, "gslb_stale_updates_rejected_total", core="0"), 0)
        self.assertEqual(value(s, "gslb_consolidation_round"), 12)
        self.assertEqual(value(s, "gslb_consolidation_control_core"), 0)
        self.assertEqual(value(s, "gslb_core_up", core="0"), 1)
        self.assertEqual(value(s, "gslb_core_up", core="1"), 0)
        self.assertEqual(value(s, "gslb_core_restarts_total", core="1"), 2)

    def test_sitesAsTheirMasterHoldsThem(self):
        s = self.samples
        # west: DOWN on core 0, UP on core 1, its master.
        self.assertEqual(value(s, "gslb_site_up", site="west"), 1)
        self.assertEqual(value(s, "gslb_site_up", site="east"), 1)
        self.assertEqual(value(s, "gslb_site_master_core", site="east"), 0)
        self.assertEqual(value(s, "gslb_site_master_core", site="north"), -1)
        self.assertEqual(value(s, "gslb_site_master_epoch", site="north"), 2)
        self.assertEqual(value(s, "gslb_site_metrics_age_seconds", site="east"), 0.25)
        self.assertEqual(value(s, "gslb_site_metrics_age_seconds", site="west"), 0.5)
        # No metrics: no age rather than a made-up one.
        self.assertIsNone(value(s, "gslb_site_metrics_age_seconds", site="north"))

    def test_propagationLag(self):
        s = self.samples
        # Core 1's copy of east is 0.5 s older and 2 updates behind the master's.
        self.assertEqual(value(s, "gslb_site_propagation_lag_seconds", site="east", core="1"), 0.5)
        self.assertEqual(value(s, "gslb_site_propagation_lag_updates", site="east", core="1"), 2)
        # A copy that looks newer than the master's (measured a moment later) lags by nothing.
        self.assertEqual(value(s, "gslb_site_propagation_lag_seconds", site="west", core="0"), 0)
        self.assertEqual(value(s, "gslb_site_propagation_lag_updates", site="west", core="0"), 0)
        # The master does not lag itself; a site without a master has no lag.
        self.assertIsNone(value(s, "gslb_site_propagation_lag_seconds", site="east", core="0"))
        self.assertFalse([k for k in s if k[0].startswith("gslb_site_propagation") and ("site", "north") in k[1]])

    def test_otherEpochHasNoUpdateLag(self):
        sites = {0: [dict(SITES[0][0])], 1: [dict(SITES[1][0], epoch=2, seq=90)]}
        samples, _ = exposition(metricFamilies(None, sites, [["east", 0, 3]]))
        self.assertIsNone(value(samples, "gslb_site_propagation_lag_updates", site="east", core="1"))
        self.assertEqual(value(samples, "gslb_site_propagation_lag_seconds", site="east", core="1"), 0.5)

    def test_masterNotAnswering(self):
        """The site as the lowest core that answered holds it."""
        samples, _ = exposition(metricFamilies(None, {1: SITES[1]}, MASTERS))
        self.assertEqual(value(samples, "gslb_site_up", site="east"), 1)
        self.assertEqual(value(samples, "gslb_site_metrics_age_seconds", site="east"), 0.75)
        self.assertEqual(value(samples, "gslb_site_master_core", site="east"), 0)
        self.assertIsNone(value(samples, "gslb_site_propagation_lag_seconds", site="east", core="1"))

    def test_noCountersWithoutAView(self):
        samples, types = exposition(metricFamilies(None, SITES, MASTERS, CORES))
        self.assertNotIn("gslb_vserver_hits", types)
        self.assertEqual(value(samples, "gslb_site_up", site="east"), 1)
        self.assertEqual(value(samples, "gslb_core_up", core="0"), 1)

    def test_emptyView(self):
        """A core that has not consolidated yet: zeros, nothing broken."""
        view = {"round": 0, "control": None, "interval": None, "totals": {}, "previous": {}, "cores": {},
                "vservers": {"www": {"state": "DOWN", "health": 0.0, "services": []}}, "services": {}}
        samples, _ = exposition(metricFamilies(view, {}, []))
        self.assertEqual(value(samples, "gslb_vserver_hits_total", vserver="www"), 0)
        self.assertEqual(value(samples, "gslb_consolidation_round"), 0)


class FakeHub:
    def masters(self):
        return MASTERS


class FakeMonitor:
    """The supervisor as the exporter sees it: each ask answered by the next Deferred queued."""

    def __init__(self):
        self.hub = FakeHub()
        self.stats: list[defer.Deferred] = []
        self.asked = 0

    def statsView(self):
        self.asked += 1
        return self.stats.pop(0) if self.stats else defer.succeed(makeView())

    def inspectCores(self, what):
        assert what == "sites", what
        return defer.succeed(SITES)

    def coreRows(self):
        return CORES


class MetricsExporterTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.monitor = FakeMonitor()
        self.exporter = MetricsExporter(self.monitor, self.clock, 0.5)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def hits(self):
        samples, _ = exposition(list(self.exporter.registry.collect()))
        return value(samples, "gslb_vserver_hits_total", vserver="www")

    def test_refreshedAtOnceThenEveryInterval(self):
        self.assertEqual(list(self.exporter.registry.collect()), [])
        self.exporter.startService()
        self.assertEqual((self.monitor.asked, self.hits()), (1, 110))
        grown = makeView()
        grown["totals"]["vserver\twww\thits"] = 150
        self.monitor.stats.append(defer.succeed(grown))
        self.clock.advance(0.5)
        self.assertEqual((self.monitor.asked, self.hits()), (2, 150))

    def test_noViewKeepsTheLastKnownAndSaysSoOnce(self):
        self.exporter.startService()
        for _ in range(3):
            self.monitor.stats.append(defer.fail(RuntimeError("no core is serving")))
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual(self.hits(), 110)
        warned = [e for e in self.events if "no consolidated counters" in e.get("log_format", "")]
        self.assertEqual(len(warned), 1)
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual(self.monitor.asked, 5)
        self.assertEqual(len([e for e in self.events if "no consolidated counters" in e.get("log_format", "")]), 1)

    def test_noViewEverSitesStillReported(self):
        self.monitor.stats.append(defer.fail(RuntimeError("no core is serving")))
        self.exporter.startService()
        samples, types = exposition(list(self.exporter.registry.collect()))
        self.assertNotIn("gslb_vserver_hits", types)
        self.assertEqual(value(samples, "gslb_site_master_core", site="west"), 1)

    def test_slowCoreDelaysTheNextRefreshAndStopWaitsForIt(self):
        slow = defer.Deferred()
        self.monitor.stats.append(slow)
        self.exporter.startService()
        self.clock.advance(2.0)
        self.assertEqual(self.monitor.asked, 1)
        stopped = self.exporter.stopService()
        self.assertNoResult(stopped)
        slow.callback(makeView())
        self.successResultOf(stopped)
        self.assertEqual(self.hits(), 110)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MetricsOptionTests(SynchronousTestCase):
    def test_option(self):
        options = Options()
        options.parseOptions(["--metrics", "tcp:9153:interface=127.0.0.1"])
        self.assertEqual(options["metrics"], "tcp:9153:interface=127.0.0.1")
        options = Options()
        options.parseOptions([])
        self.assertIsNone(options["metrics"])

    def test_badEndpointStopsTheStart(self):
        from gslb_twisted.tap import metricsService

        options = Options()
        options.parseOptions([])
        e = self.assertRaises(SystemExit, metricsService, reactor, "bogus:1", None, options["topology"])
        self.assertIn("--metrics 'bogus:1'", str(e))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--metrics"])


# --- the real appliance ---------------------------------------------------------------

INTERVAL = 0.5
COUNTED = TOPOLOGY.replace("[[zone]]", f"consolidation_interval = {INTERVAL}\n\n[[zone]]", 1) + """
[[service]]
name = "east-count"
site = "east"
ip = "192.0.2.20"

[[service]]
name = "west-count"
site = "west"
ip = "198.51.100.20"

[[vserver]]
name = "counted"
domains = ["counted.test.gslb"]
lb_method = "ROUNDROBIN"
services = ["east-count", "west-count"]
"""
K = 200


def fetch(url: str) -> str:
    """GET in a thread: the reactor keeps running."""
    def get():
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    return threads.deferToThread(get)


class PrometheusIntegrationTests(TestCase):
    timeout = 120

    async def test_metricsAgreeWithStatToTheQuery(self):
        metricsPort = freePort()
        appliance = Appliance(self, topology=COUNTED, extra=("--metrics", f"tcp:{metricsPort}:interface=127.0.0.1"))
        appliance.start()
        await appliance.waitUntilServing()
        before = {row["core"]: row["queries"] for row in await appliance.console("show cores")}

        # Exactly K queries, each from a socket (source port) of its own,
        # several at once: the cores share the socket and take turns.
        answered = []
        for start in range(0, K, 20):
            responses = await defer.gatherResults(
                [query(appliance.port, "counted.test.gslb", timeout=3.0) for _ in range(start, min(start + 20, K))],
                consumeErrors=True,
            )
            answered += responses
        self.assertEqual(len(answered), K)
        for response in answered:
            self.assertIn(addresses(response)[0], {"192.0.2.20", "198.51.100.20"})
        after = {row["core"]: row["queries"] for row in await appliance.console("show cores")}
        self.assertEqual(sum(after.values()) - sum(before.values()), K)
        for core in (0, 1):
            self.assertGreater(after[core], before[core], f"core {core} answered none of the queries: {after}")

        # Consolidated (within two rounds on an idle machine: tests.test_stats_rounds holds that
        # deterministically; here, on a shared machine, only that it arrives).
        control = await connectProtocol(clientFromString(reactor, appliance.control), amp.AMP())
        self.addCleanup(control.transport.loseConnection)

        async def consolidated():
            result = await control.callRemote(StatVServers, name="counted")
            return result["rows"][0]["hits"] == K

        await poll(consolidated, deadline=30.0, interval=0.02, what=f"{K} hits, consolidated")
        [row] = await appliance.console("stat gslb vserver counted")
        self.assertEqual(row["hits"], K)
        answers = {service["name"]: service["answers"] for service in row["services"]}
        self.assertEqual(sum(answers.values()), K)
        # Round robin over two services (each core rotates on its own: about half each).
        self.assertEqual(set(answers), {"east-count", "west-count"})
        self.assertTrue(all(K // 2 - 5 <= n <= K // 2 + 5 for n in answers.values()), answers)
        services = {r["name"]: r for r in await appliance.console("stat gslb service")}
        cores = {r["core"]: r for r in await appliance.console("stat cores")}
        dns = await appliance.console("stat dns")

        url = f"http://127.0.0.1:{metricsPort}/metrics"
        scraped = {}

        async def exported():
            text = await fetch(url)
            scraped["samples"], scraped["types"] = parse(text)
            return value(scraped["samples"], "gslb_vserver_hits_total", vserver="counted") == K

        await poll(exported, deadline=2 * INTERVAL + 2, interval=0.1, what="/metrics to show the hits")
        samples, types = scraped["samples"], scraped["types"]
        for name in REQUIRED:
            self.assertIn(name[: -len("_total")] if name.endswith("_total") else name, types)
        self.assertEqual(value(samples, "gslb_vserver_hits_total", vserver="counted"), row["hits"])
        for service in ("east-count", "west-count"):
            site = service.split("-")[0]
            self.assertEqual(value(samples, "gslb_service_answers_total", service=service, site=site),
                             services[service]["answers"])
            self.assertEqual(services[service]["answers"], answers[service])
        for core in (0, 1):
            self.assertEqual(value(samples, "gslb_core_queries_total", core=str(core)), cores[core]["queries"])
        self.assertEqual(value(samples, "gslb_dns_queries_total", qtype="A"), dns["by_type"]["A"])
        self.assertEqual(sum(v for (name, _), v in samples.items() if name == "gslb_dns_queries_total"),
                         dns["queries"])
        self.assertEqual(value(samples, "gslb_dns_bytes_received_total"), dns["bytes_in"])
        # The cache is refreshed once a round: the same round as stat's, or the one before.
        self.assertIn(value(samples, "gslb_consolidation_round"), range(max(dns["round"] - 1, 1), dns["round"] + 5))
        self.assertEqual(value(samples, "gslb_core_up", core="0"), 1)
        self.assertEqual(value(samples, "gslb_core_up", core="1"), 1)

        control.transport.loseConnection()
        await appliance.stop()
        appliance.assertCleanExit()


def parse(text: str):
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types
