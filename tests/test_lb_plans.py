"""
Tests for L{gslb_twisted.lb.decision.planVServer}: fallback to the backup
method, spillover, the backup vserver chain, the down response, address
families, disabled services and multiple answers.

The helpers here (L{topology}, L{vserver}, L{report}, ...) are shared by the
chooser and property tests.
"""

import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import ConfigError, parseTopology
from gslb_twisted.lb.decision import BACKUP_VSERVER, DOWN_RESPONSE, EMPTY, SERVFAIL, SERVICES, metricsRead, planVServer
from gslb_twisted.metrics import DOWN, UP, MetricTable

DEAD = 3.0
NOW = 1000.0

BASE = """
[appliance]
name = "gslb1"
ip = "127.0.0.5"
metrics_interval = 1.0
dead_interval = 3.0

[[zone]]
name = "t.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
location = { lat = 40.7128, lon = -74.006 }

[[site]]
name = "west"
ip = "127.0.0.9"
location = { lat = 37.7749, lon = -122.4194 }

[[site]]
name = "europe"
ip = "127.0.0.12"
location = { lat = 51.5074, lon = -0.1278 }

[[site]]
name = "fixed"
ip = "127.0.0.20"
metric_exchange = false
location = { lat = 35.6762, lon = 139.6503 }

[[site]]
name = "nowhere"
ip = "127.0.0.30"

[[service]]
name = "east-a"
site = "east"
ip = "192.0.2.1"
max_clients = 50

[[service]]
name = "east-b"
site = "east"
ip = "192.0.2.2"
max_clients = 50

[[service]]
name = "west-a"
site = "west"
ip = "198.51.100.1"
max_clients = 100

[[service]]
name = "west-b"
site = "west"
ip = "198.51.100.2"

[[service]]
name = "eu-a"
site = "europe"
ip = "203.0.113.10"

[[service]]
name = "fixed-a"
site = "fixed"
ip = "203.0.113.1"

[[service]]
name = "nowhere-a"
site = "nowhere"
ip = "192.0.2.30"

[[service]]
name = "east-6"
site = "east"
ip = "2001:db8::1"

[[service]]
name = "west-6"
site = "west"
ip = "2001:db8::2"

[[service]]
name = "eu-6"
site = "europe"
ip = "2001:db8::3"
"""

SITE_OF = {
    "east-a": "east", "east-b": "east", "east-6": "east",
    "west-a": "west", "west-b": "west", "west-6": "west",
    "eu-a": "europe", "eu-6": "europe",
    "fixed-a": "fixed",
    "nowhere-a": "nowhere",
}
V6 = {"east-6", "west-6", "eu-6"}


def vserver(name="www", services=("east-a", "east-b", "west-a"), extra="", **options) -> str:
    """
    A [[vserver]] in TOML: C{services} are names or (name, weight) pairs,
    C{options} simple keys, C{extra} raw TOML lines (tables, arrays).
    """
    lines = ["[[vserver]]", f'name = "{name}"', f'domains = ["{name}.t.gslb"]']
    for key, value in options.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value!r}")
    bindings = ", ".join(
        f'{{ name = "{s[0]}", weight = {s[1]} }}' if isinstance(s, tuple) else f'"{s}"' for s in services
    )
    lines.append(f"services = [{bindings}]")
    if extra:
        lines.append(extra.strip())
    return "\n".join(lines) + "\n\n"


def topology(*vservers: str):
    return parseTopology(tomllib.loads(BASE + "".join(vservers)), "t.toml")


def emptyTable(t) -> MetricTable:
    return MetricTable(site.name for site in t.sites)


def report(table: MetricTable, site: str, services: dict, *, state=UP, now=NOW, probes=None) -> None:
    """The site's master records C{services} ({name: {metric: value}}) at C{now}."""
    table.recordAsMaster(site, state=state, services=services, replace=True, now=now, probes=probes)


def up(**metrics):
    return {"state": UP, **metrics}


def down(**metrics):
    return {"state": DOWN, **metrics}


def reportAll(table: MetricTable, services: dict, now=NOW) -> None:
    """Report C{services} ({name: values}), grouped by their sites."""
    bySite: dict = {}
    for name, values in services.items():
        bySite.setdefault(SITE_OF[name], {})[name] = values
    for site, reported in bySite.items():
        if site != "fixed":
            report(table, site, reported, now=now)


def plan(t, table, name="www", rdtype=1, now=NOW, disabled=frozenset(), locations=None):
    return planVServer(t.vserverByName[name], t, table, rdtype, now, DEAD, disabled, locations=locations)


def servicesIn(sets) -> set:
    return {name for chosen in sets for name in chosen}


class FallbackTests(SynchronousTestCase):
    """A metric method without fresh metrics answers with backup_lb_method."""

    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "west-a", "west-b")),
            vserver("static", services=("east-a", "fixed-a")),
            vserver("custom", services=("east-a", "west-a"), lb_method="CUSTOMLOAD",
                    extra='custom_load = [{ metric = "connections", ceiling = 100 }, { metric = "load", ceiling = 100 }]'),
            vserver("rtt", services=("east-a", "west-a"), lb_method="RTT"),
            vserver("lcbackup", services=("east-a", "west-a"), backup_lb_method="LEASTPACKETS"),
        )
        self.table = emptyTable(self.t)

    def test_freshMetricsNoFallback(self):
        reportAll(self.table, {"east-a": up(connections=9), "west-a": up(connections=2), "west-b": up(connections=5)})
        result = plan(self.t, self.table)
        self.assertEqual((result.method, result.fallback, result.fallbackReason), ("LEASTCONNECTION", False, None))
        self.assertEqual(result.sets, (("west-a",),))

    def test_missingMetric(self):
        reportAll(self.table, {"east-a": up(), "west-a": up(connections=2), "west-b": up(connections=5)})
        result = plan(self.t, self.table)
        self.assertEqual((result.method, result.fallback), ("ROUNDROBIN", True))
        self.assertEqual(result.fallbackReason, "east-a: no connections reported")
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a", "west-b"})

    def test_staleMetrics(self):
        report(self.table, "east", {"east-a": up(connections=1)}, now=NOW - DEAD - 0.001)
        report(self.table, "west", {"west-a": up(connections=2), "west-b": up(connections=5)})
        result = plan(self.t, self.table)
        self.assertEqual((result.method, result.fallback), ("ROUNDROBIN", True))
        self.assertEqual(result.fallbackReason, "east-a: metrics missing or older than dead_interval")

    def test_staticSite(self):
        """A site with no metric exchange has no metrics to rank by."""
        report(self.table, "east", {"east-a": up(connections=1)})
        result = plan(self.t, self.table, "static")
        self.assertEqual((result.method, result.fallback), ("ROUNDROBIN", True))
        self.assertEqual(result.fallbackReason, "fixed-a: its site exchanges no metrics")
        self.assertEqual(servicesIn(result.sets), {"east-a", "fixed-a"})

    def test_customLoadMissingOneMetric(self):
        reportAll(self.table, {"east-a": up(connections=1, load=5), "west-a": up(connections=2)})
        result = plan(self.t, self.table, "custom")
        self.assertTrue(result.fallback)
        self.assertEqual(result.fallbackReason, "west-a: no load reported")

    def test_rttWithoutMetricsFallsBack(self):
        report(self.table, "east", {"east-a": up()}, now=NOW - 60)
        report(self.table, "west", {"west-a": up()})
        result = plan(self.t, self.table, "rtt")
        self.assertEqual((result.method, result.fallback), ("ROUNDROBIN", True))
        self.assertIn("east-a", result.fallbackReason)

    def test_backupMethodUsedWhenItHasItsMetric(self):
        reportAll(self.table, {"east-a": up(packets=50), "west-a": up(connections=3, packets=20)})
        result = plan(self.t, self.table, "lcbackup")
        self.assertEqual((result.method, result.fallback), ("LEASTPACKETS", True))
        self.assertEqual(result.sets, (("west-a",),))

    def test_backupMethodLackingToo(self):
        """A backup method that needs the missing metrics as well: round robin."""
        reportAll(self.table, {"east-a": up(), "west-a": up(connections=3, packets=20)})
        result = plan(self.t, self.table, "lcbackup")
        self.assertEqual((result.method, result.fallback), ("ROUNDROBIN", True))
        self.assertEqual(result.fallbackReason, "east-a: no connections reported")

    def test_backupCustomLoadWithoutCustomMetrics(self):
        """
        backup_lb_method CUSTOMLOAD on a vserver with no custom_load is
        refused at load, or falls back to round robin; it never crashes the
        planner.
        """
        try:
            t = topology(vserver(services=("east-a", "west-a"), backup_lb_method="CUSTOMLOAD"))
        except ConfigError:
            return
        table = emptyTable(t)
        reportAll(table, {"east-a": up(), "west-a": up(connections=3)})
        result = plan(t, table)
        self.assertTrue(result.fallback)
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a"})


class LeastMetricPlanTests(SynchronousTestCase):
    def test_weightsFromBindings(self):
        """east-a: 10 conns at weight 2 (5) beats west-a: 6 at weight 1."""
        t = topology(vserver(services=(("east-a", 2), ("west-a", 1))))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(connections=10), "west-a": up(connections=6)})
        self.assertEqual(plan(t, table).sets, (("east-a",),))

    def test_answersN(self):
        t = topology(vserver(services=("east-a", "east-b", "west-a", "eu-a"), answers=3))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(connections=4), "east-b": up(connections=1),
                          "west-a": up(connections=3), "eu-a": up(connections=2)})
        self.assertEqual(plan(t, table).sets, (("east-b", "eu-a", "west-a"),))

    def test_answersTieAtTheLastPositionRotates(self):
        t = topology(vserver(services=("east-a", "east-b", "west-a", "eu-a"), answers=2))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(connections=4), "east-b": up(connections=1),
                          "west-a": up(connections=4), "eu-a": up(connections=4)})
        self.assertEqual(
            plan(t, table).sets, (("east-b", "east-a"), ("east-b", "west-a"), ("east-b", "eu-a"))
        )

    def test_loadsRecorded(self):
        t = topology(vserver(services=("east-a", "west-a"), lb_method="LEASTRESPONSETIME"))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(response_time=12.5), "west-a": up(response_time=3)})
        result = plan(t, table)
        self.assertEqual(result.sets, (("west-a",),))
        self.assertEqual((result.loadMetric, result.loads), ("response_time", {"east-a": 12.5, "west-a": 3.0}))


CUSTOM = (
    'custom_load = [{ metric = "connections", weight = 1, ceiling = 1000, threshold = 900 }, '
    '{ metric = "response_time", weight = 2, ceiling = 500, threshold = 400 }]'
)


class CustomLoadPlanTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "east-b", "west-a"), lb_method="CUSTOMLOAD", extra=CUSTOM),
            vserver("all", services=("east-a", "east-b", "west-a"), lb_method="CUSTOMLOAD", extra=CUSTOM,
                    custom_load_exclude="all"),
            vserver("plain", services=("east-a", "east-b", "west-a"), lb_method="CUSTOMLOAD",
                    extra='custom_load = [{ metric = "connections", ceiling = 100 }, { metric = "load", ceiling = 50 }]'),
        )
        self.table = emptyTable(self.t)

    def test_lowestLoadWins(self):
        """east-a 0.3, east-b 0.4, west-a 1/3 (see test_lb_methods)."""
        reportAll(self.table, {"east-a": up(connections=500, response_time=100),
                               "east-b": up(connections=200, response_time=250),
                               "west-a": up(connections=800, response_time=50)})
        result = plan(self.t, self.table)
        self.assertEqual(result.sets, (("east-a",),))
        self.assertAlmostEqual(result.loads["east-a"], 0.3)
        self.assertAlmostEqual(result.loads["east-b"], 0.4)
        self.assertEqual(result.loadMetric, "load")
        self.assertAlmostEqual(result.loads["west-a"], 1 / 3)

    def test_equalWeightsByDefault(self):
        """No weights: east-a (0.2 + 0.8)/2 = 0.5 loses to east-b (0.5 + 0.2)/2 = 0.35."""
        reportAll(self.table, {"east-a": up(connections=20, load=40), "east-b": up(connections=50, load=10),
                               "west-a": up(connections=90, load=45)})
        result = plan(self.t, self.table, "plain")
        self.assertEqual(result.sets, (("east-b",),))
        self.assertAlmostEqual(result.loads["east-a"], 0.5)
        self.assertAlmostEqual(result.loads["west-a"], 0.9)

    def test_overAnyThresholdExcluded(self):
        """east-a has the lowest load but 950 connections > 900."""
        reportAll(self.table, {"east-a": up(connections=950, response_time=0),
                               "east-b": up(connections=200, response_time=250),
                               "west-a": up(connections=800, response_time=50)})
        result = plan(self.t, self.table)
        self.assertEqual(result.sets, (("west-a",),))
        self.assertEqual(dict(result.excluded), {"east-a": "over threshold: connections 950 > 900"})
        self.assertEqual([c.service for c in result.candidates], ["east-b", "west-a"])

    def test_overOneOfTwoKeptUnderAll(self):
        reportAll(self.table, {"east-a": up(connections=950, response_time=0),
                               "east-b": up(connections=200, response_time=250),
                               "west-a": up(connections=800, response_time=50)})
        result = plan(self.t, self.table, "all")
        self.assertEqual(result.sets, (("east-a",),))
        self.assertEqual(result.excluded, ())

    def test_overBothExcludedUnderAll(self):
        reportAll(self.table, {"east-a": up(connections=950, response_time=450),
                               "east-b": up(connections=200, response_time=250),
                               "west-a": up(connections=800, response_time=50)})
        result = plan(self.t, self.table, "all")
        self.assertEqual(result.sets, (("west-a",),))
        self.assertEqual(
            dict(result.excluded), {"east-a": "over threshold: connections 950 > 900, response_time 450 > 400"}
        )


    def test_everyUpServiceOverThresholdAnswersNoDownService(self):
        """
        east-a and east-b are UP but both over the connections threshold,
        west-a is DOWN: whatever is answered, west-a is not (a DOWN service
        is never answered while one is up).
        """
        reportAll(self.table, {"east-a": up(connections=950, response_time=0),
                               "east-b": up(connections=990, response_time=0),
                               "west-a": down(connections=0, response_time=0)})
        result = plan(self.t, self.table)
        self.assertNotIn("west-a", servicesIn(result.sets))


class AllDownTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "east-b"), backup_vserver="dr1", down_response="servfail"),
            vserver("dr1", services=("west-a",), backup_vserver="dr2", down_response="empty"),
            vserver("dr2", services=("eu-a",), lb_method="ROUNDROBIN"),
            vserver("alone-all", services=("east-a", "east-b")),
            vserver("alone-empty", services=("east-a", "east-b"), down_response="empty"),
            vserver("alone-servfail", services=("east-a", "east-b"), down_response="servfail"),
        )
        self.table = emptyTable(self.t)
        report(self.table, "east", {"east-a": down(), "east-b": down()})

    def test_backupVServer(self):
        reportAll(self.table, {"west-a": up(connections=1), "eu-a": up()})
        result = plan(self.t, self.table)
        self.assertEqual((result.source, result.answering, result.sets), (BACKUP_VSERVER, "dr1", (("west-a",),)))
        self.assertEqual(result.vserver, "www")
        self.assertEqual({name for name, _ in result.excluded}, {"east-a", "east-b"})

    def test_backupChain(self):
        reportAll(self.table, {"west-a": down(), "eu-a": up()})
        result = plan(self.t, self.table)
        self.assertEqual((result.source, result.answering, result.sets), (BACKUP_VSERVER, "dr2", (("eu-a",),)))

    def test_chainExhaustedGivesOwnDownResponse(self):
        """Every vserver in the chain down: the asked vserver's down_response (servfail)."""
        reportAll(self.table, {"west-a": down(), "eu-a": down()})
        result = plan(self.t, self.table)
        self.assertEqual((result.source, result.response, result.sets), (DOWN_RESPONSE, SERVFAIL, ()))

    def test_downResponseAll(self):
        result = plan(self.t, self.table, "alone-all")
        self.assertEqual((result.source, result.response), (DOWN_RESPONSE, None))
        self.assertEqual(servicesIn(result.sets), {"east-a", "east-b"})

    def test_downResponseEmpty(self):
        result = plan(self.t, self.table, "alone-empty")
        self.assertEqual((result.source, result.response, result.sets), (DOWN_RESPONSE, EMPTY, ()))

    def test_downResponseServfail(self):
        result = plan(self.t, self.table, "alone-servfail")
        self.assertEqual((result.source, result.response, result.sets), (DOWN_RESPONSE, SERVFAIL, ()))

    def test_excludedReasonsKept(self):
        result = plan(self.t, self.table, "alone-empty")
        self.assertEqual(dict(result.excluded), {"east-a": "reported DOWN by its site", "east-b": "reported DOWN by its site"})


class SpilloverTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver("conn", services=("east-a", "east-b"), backup_vserver="dr",
                    extra='spillover = { method = "CONNECTION", threshold = 100 }'),
            vserver("dyn", services=("east-a", "east-b"), backup_vserver="dr",
                    extra='spillover = { method = "DYNAMICCONNECTION" }'),
            vserver("dynfree", services=("west-b", "eu-a"), backup_vserver="dr",
                    extra='spillover = { method = "DYNAMICCONNECTION" }'),
            vserver("bw", services=("east-a", "east-b"), backup_vserver="dr",
                    extra='spillover = { method = "BANDWIDTH", threshold = 1000 }'),
            vserver("health", services=("east-a", "east-b", "west-b"), backup_vserver="dr",
                    extra='spillover = { method = "HEALTH", threshold = 60 }'),
            vserver("accept", services=("east-a", "east-b"),
                    extra='spillover = { method = "CONNECTION", threshold = 100, backup_action = "ACCEPT" }'),
            vserver("drop", services=("east-a", "east-b"), down_response="empty",
                    extra='spillover = { method = "CONNECTION", threshold = 100, backup_action = "DROP" }'),
            vserver("dr", services=("west-a",)),
        )
        self.table = emptyTable(self.t)
        report(self.table, "west", {"west-a": up(connections=0), "west-b": up(connections=0)})

    def east(self, a, b, metric="connections"):
        report(self.table, "east", {"east-a": up(**{metric: a}), "east-b": up(**{metric: b})})

    def assertSpilled(self, result, method, value, threshold):
        self.assertEqual(result.source, BACKUP_VSERVER)
        self.assertEqual(result.answering, "dr")
        self.assertEqual(result.sets, (("west-a",),))
        self.assertEqual((result.spill.method, result.spill.value, result.spill.threshold), (method, value, threshold))
        self.assertTrue(result.spill.spilled)

    def assertNotSpilled(self, result):
        self.assertEqual(result.source, SERVICES)
        self.assertEqual(result.answering, result.vserver)
        self.assertFalse(result.spill.spilled)
        self.assertLessEqual(servicesIn(result.sets), {"east-a", "east-b", "west-b", "eu-a"})

    def test_connectionOverThreshold(self):
        self.east(60, 50)
        result = plan(self.t, self.table, "conn")
        self.assertSpilled(result, "CONNECTION", 110.0, 100.0)
        self.assertEqual(
            dict(result.excluded),
            {"east-a": "spilled over: CONNECTION 110 > 100", "east-b": "spilled over: CONNECTION 110 > 100"},
        )

    def test_connectionAtThreshold(self):
        self.east(50, 50)
        self.assertNotSpilled(plan(self.t, self.table, "conn"))

    def test_dynamicConnectionOverSumOfMaxClients(self):
        """max_clients 50 + 50 = 100."""
        self.east(60, 41)
        self.assertSpilled(plan(self.t, self.table, "dyn"), "DYNAMICCONNECTION", 101.0, 100.0)

    def test_dynamicConnectionUnderSumOfMaxClients(self):
        self.east(60, 40)
        self.assertNotSpilled(plan(self.t, self.table, "dyn"))

    def test_dynamicConnectionOnlyUpServicesCount(self):
        """east-b DOWN: the threshold is east-a's max_clients alone."""
        report(self.table, "east", {"east-a": up(connections=51), "east-b": down(connections=0)})
        self.assertSpilled(plan(self.t, self.table, "dyn"), "DYNAMICCONNECTION", 51.0, 50.0)

    def test_dynamicConnectionWithoutMaxClientsNeverSpills(self):
        """max_clients = 0 is "no limit": such services never spill over."""
        report(self.table, "europe", {"eu-a": up(connections=10)})
        report(self.table, "west", {"west-a": up(connections=0), "west-b": up(connections=10)})
        self.assertNotSpilled(plan(self.t, self.table, "dynfree"))

    def test_bandwidth(self):
        self.east(600, 401, metric="bandwidth")
        self.assertSpilled(plan(self.t, self.table, "bw"), "BANDWIDTH", 1001.0, 1000.0)
        self.east(600, 400, metric="bandwidth")
        self.assertNotSpilled(plan(self.t, self.table, "bw"))

    def test_healthUnderThreshold(self):
        """One of three up: 33.333 % < 60 %."""
        report(self.table, "east", {"east-a": up(connections=0), "east-b": down()})
        report(self.table, "west", {"west-a": up(connections=0), "west-b": down()})
        self.assertSpilled(plan(self.t, self.table, "health"), "HEALTH", 33.333, 60.0)

    def test_healthAboveThreshold(self):
        """Two of three up: 66.667 % >= 60 %."""
        report(self.table, "east", {"east-a": up(connections=0), "east-b": down()})
        result = plan(self.t, self.table, "health")
        self.assertNotSpilled(result)
        self.assertEqual(result.spill.value, 66.667)

    def test_noBackupAcceptKeepsPrimary(self):
        self.east(60, 50)
        result = plan(self.t, self.table, "accept")
        self.assertEqual(result.source, SERVICES)
        self.assertTrue(result.spill.spilled)
        self.assertEqual(result.sets, (("east-b",),))

    def test_noBackupDropGivesDownResponse(self):
        self.east(60, 50)
        result = plan(self.t, self.table, "drop")
        self.assertEqual((result.source, result.response, result.sets), (DOWN_RESPONSE, EMPTY, ()))
        self.assertEqual(
            dict(result.excluded),
            {"east-a": "spilled over: CONNECTION 110 > 100", "east-b": "spilled over: CONNECTION 110 > 100"},
        )

    def test_backupDownAcceptKeepsPrimary(self):
        """A backup vserver with nothing up is no usable backup: ACCEPT answers from the primary."""
        report(self.table, "west", {"west-a": down(), "west-b": up(connections=0)})
        self.east(60, 50)
        result = plan(self.t, self.table, "conn")
        self.assertEqual(result.source, SERVICES)
        self.assertTrue(result.spill.spilled)

    def test_noSpilloverConfigured(self):
        t = topology(vserver())
        table = emptyTable(t)
        reportAll(table, {"east-a": up(connections=10**6), "east-b": up(connections=10**6), "west-a": up(connections=1)})
        self.assertIsNone(plan(t, table).spill)


class FamilyTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "east-6", "west-a", "west-6"), lb_method="ROUNDROBIN"),
            vserver("v4only", services=("east-a", "west-a"), down_response="servfail"),
            vserver("v6only", services=("east-6", "west-6"), down_response="servfail"),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": up(), "east-6": up(), "west-a": up(), "west-6": up()})

    def test_aFromIPv4Only(self):
        result = plan(self.t, self.table, rdtype=1)
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a"})
        self.assertEqual([c.service for c in result.everyone], ["east-a", "west-a"])

    def test_aaaaFromIPv6Only(self):
        result = plan(self.t, self.table, rdtype=28)
        self.assertEqual(servicesIn(result.sets), {"east-6", "west-6"})

    def test_familyDownOtherUp(self):
        """Every IPv6 service down: AAAA gets the down response, A is untouched."""
        reportAll(self.table, {"east-a": up(), "east-6": down(), "west-a": up(), "west-6": down()})
        self.assertEqual(plan(self.t, self.table, "v6only", rdtype=28).response, SERVFAIL)
        self.assertEqual(servicesIn(plan(self.t, self.table, rdtype=1).sets), {"east-a", "west-a"})

    def test_noServiceOfTheFamilyIsNoData(self):
        for name, rdtype in (("v4only", 28), ("v6only", 1)):
            result = plan(self.t, self.table, name, rdtype=rdtype)
            self.assertEqual((result.sets, result.response, result.source), ((), None, SERVICES), name)
            self.assertEqual(result.everyone, (), name)


class DisabledTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "east-b", "west-a"), lb_method="ROUNDROBIN"),
            vserver("one", services=("east-a",), down_response="empty"),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": up(), "east-b": up(), "west-a": up()})

    def test_disabledExcludedWithReason(self):
        result = plan(self.t, self.table, disabled=frozenset({"east-b"}))
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a"})
        self.assertEqual(dict(result.excluded), {"east-b": "disabled"})

    def test_disabledStaticSiteService(self):
        t = topology(vserver(services=("fixed-a", "east-a"), lb_method="ROUNDROBIN"))
        table = emptyTable(t)
        reportAll(table, {"east-a": up()})
        result = plan(t, table, disabled=frozenset({"fixed-a"}))
        self.assertEqual(result.sets, (("east-a",),))
        self.assertEqual(dict(result.excluded), {"fixed-a": "disabled"})

    def test_everyServiceDisabledIsDown(self):
        result = plan(self.t, self.table, "one", disabled=frozenset({"east-a"}))
        self.assertEqual((result.source, result.response), (DOWN_RESPONSE, EMPTY))


class AnswersTests(SynchronousTestCase):
    def test_roundRobinNDistinct(self):
        t = topology(vserver(services=("east-a", "east-b", "west-a", "eu-a"), lb_method="ROUNDROBIN", answers=3))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(), "east-b": up(), "west-a": up(), "eu-a": down()})
        result = plan(t, table)
        self.assertEqual(result.answers, 3)
        for chosen in result.sets:
            self.assertEqual(sorted(chosen), ["east-a", "east-b", "west-a"])

    def test_moreAnswersThanUp(self):
        t = topology(vserver(services=("east-a", "east-b", "west-a"), answers=5))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(connections=3), "east-b": down(), "west-a": up(connections=1)})
        self.assertEqual(plan(t, table).sets, (("west-a", "east-a"),))

    def test_staticMethodTakesBindingOrder(self):
        t = topology(vserver(services=("west-a", "east-a", "east-b"), lb_method="STATIC", answers=2))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(), "east-b": up(), "west-a": down()})
        self.assertEqual(plan(t, table).sets, (("east-a", "east-b"),))

    def test_backupVServerUsesItsOwnAnswers(self):
        t = topology(
            vserver(services=("east-a",), backup_vserver="dr", answers=1),
            vserver("dr", services=("west-a", "west-b"), lb_method="ROUNDROBIN", answers=2),
        )
        table = emptyTable(t)
        reportAll(table, {"east-a": down(), "west-a": up(), "west-b": up()})
        result = plan(t, table)
        self.assertEqual(result.answers, 2)
        for chosen in result.sets:
            self.assertEqual(sorted(chosen), ["west-a", "west-b"])


class MetricsReadTests(SynchronousTestCase):
    """
    What a vserver's plan reads: a change to anything else cannot change
    its plan (the core then skips re-planning it).
    """

    def test_methods(self):
        t = topology(
            vserver("rr", lb_method="ROUNDROBIN"),
            vserver("lc", lb_method="LEASTCONNECTION", backup_lb_method="LEASTRESPONSETIME"),
            vserver("custom", lb_method="CUSTOMLOAD",
                    extra='custom_load = [{ metric = "connections", ceiling = 100 }, { metric = "load", ceiling = 50 }]'),
            vserver("rtt", lb_method="RTT", backup_lb_method="STATICPROXIMITY"),
            vserver("spill", lb_method="ROUNDROBIN", extra='spillover = { method = "BANDWIDTH", threshold = 9 }'),
        )
        reads = {v.name: metricsRead(v.name, t.vserverByName) for v in t.vservers}
        self.assertEqual(reads["rr"], {"state", "monitor"})
        self.assertEqual(reads["lc"], {"state", "monitor", "connections", "response_time"})
        self.assertEqual(reads["custom"], {"state", "monitor", "connections", "load"})
        self.assertEqual(reads["rtt"], {"state", "monitor", "probes"})
        self.assertEqual(reads["spill"], {"state", "monitor", "bandwidth"})

    def test_throughTheBackupChain(self):
        """A vserver answers with its backup's plan when it must: it reads what that one reads."""
        t = topology(
            vserver("www", lb_method="ROUNDROBIN", backup_vserver="dr",
                    extra='spillover = { method = "CONNECTION", threshold = 9 }'),
            vserver("dr", services=("west-a",), lb_method="LEASTPACKETS"),
        )
        self.assertEqual(metricsRead("www", t.vserverByName), {"state", "monitor", "connections", "packets"})
