"""
A core mastering an SNMP site, deterministically: a L{MemoryReactorClock}
and a fake SNMP client in place of pysnmp (which tests.test_snmp_client
exercises against a real agent).
"""

from __future__ import annotations

import json
import tomllib

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.core.gslb import TOPIC_DELTA, CoreGSLB
from gslb_twisted.dns.authority import Authority
from gslb_twisted.snmp.client import SNMPError
from gslb_twisted.snmp.sampling import Answer

TOPOLOGY = """
[appliance]
name = "gslbunit"
ip = "127.0.0.5"
metrics_interval = 1.0
dead_interval = 3.0

[[zone]]
name = "unit.gslb"

[[site]]
name = "legacy"
ip = "127.0.0.40"
protocol = "snmp"
snmp = { port = 16161, community = "ro", table = "lab" }

[[metric_table]]
name = "lab"
  [metric_table.metrics]
  connections = { oid = "1.3.6.1.4.1.99999.1.0", ceiling = 1000 }
  load = { oid = "1.3.6.1.4.1.99999.2.0", ceiling = 100 }

[[service]]
name = "legacy-web"
site = "legacy"
ip = "192.0.2.40"

[[vserver]]
name = "www"
domains = ["www.unit.gslb"]
lb_method = "CUSTOMLOAD"
services = ["legacy-web"]
custom_load = [{ metric = "connections" }, { metric = "load" }]
"""
CONNECTIONS, LOAD = "1.3.6.1.4.1.99999.1.0", "1.3.6.1.4.1.99999.2.0"


class FakeSNMPClient:
    def __init__(self):
        self.targets = {}
        self.gets = []
        self.closed = False
        self.refuse = None

    def addTarget(self, name, host, settings, timeout):
        if self.refuse is not None:
            raise self.refuse
        self.targets[name] = (host, settings.port, timeout)

    def get(self, name, oids):
        d = defer.Deferred()
        self.gets.append((name, tuple(oids), d))
        return d

    def probe(self, name):
        return defer.succeed(False)

    def close(self):
        self.closed = True


class SNMPMasteringTests(SynchronousTestCase):
    def setUp(self):
        self.topology = parseTopology(tomllib.loads(TOPOLOGY), "t.toml")
        self.clock = MemoryReactorClock()
        self.published = []
        self.gslb = CoreGSLB(self.clock, 0, self.topology, Authority.fromTopology(self.topology),
                             lambda topic, body, target=None: self.published.append((topic, json.loads(body))),
                             lambda command, **arguments: defer.Deferred())
        self.client = self.gslb.snmp = FakeSNMPClient()

    def answer(self, connections, load):
        name, oids, d = self.client.gets[-1]
        d.callback({CONNECTIONS: Answer(connections, "Gauge32"), LOAD: Answer(load, "Gauge32")})
        self.clock.advance(0)  # the reply settles on the next turn

    def test_pollsBecomeMetricsAndDeltas(self):
        """The master polls its site's agent and propagates what it read, as for MEP."""
        self.gslb.assigned("legacy", 1)
        self.assertEqual(self.client.targets["legacy"][:2], ("127.0.0.40", 16161))
        self.clock.advance(1.0)
        self.assertEqual(self.client.gets[0][:2], ("legacy", (CONNECTIONS, LOAD)))
        self.answer(250, 40)
        metrics = self.gslb.table["legacy"]
        self.assertEqual((metrics.state, metrics.services["legacy-web"]),
                         ("UP", {"connections": 250.0, "load": 40.0, "state": "UP"}))
        deltas = [body for topic, body in self.published if topic == TOPIC_DELTA]
        self.assertEqual(deltas[-1]["changes"]["services"]["legacy-web"]["connections"], 250.0)
        site = [row for row in self.gslb.inspect("sites") if row["name"] == "legacy"][0]
        self.assertEqual((site["source"], site["table"], site["snmp_version"], site["snmp_polls"]), ("SNMP", "lab", "2c", 1))
        shown = self.gslb.inspect("metrics", "legacy")["services"][0]
        self.assertEqual(shown["sources"], {"connections": "SNMP", "load": "SNMP", "state": "SNMP"})
        # Both metrics fresh: CUSTOMLOAD decides, no fallback.
        plan = self.gslb.plans[("www", 1)]
        self.assertEqual((plan.method, plan.fallback), ("CUSTOMLOAD", False))

    def test_silentAgentIsDownAfterDeadInterval(self):
        self.gslb.assigned("legacy", 1)
        self.clock.advance(1.0)
        self.answer(1, 1)
        for second in range(4):
            self.clock.advance(1.0)
            name, oids, d = self.client.gets[-1]
            d.errback(SNMPError("timeout", "no answer from the agent at 127.0.0.40:16161 (2 tries of 0.4 s)"))
            self.clock.advance(0)
            # Still UP until dead_interval (3 s) has passed since the answer.
            self.assertEqual(self.gslb.table["legacy"].state, "DOWN" if second >= 2 else "UP", second)
        warnings = [body for topic, body in self.published if topic == TOPIC_DELTA and "state" in body["changes"]]
        self.assertEqual([w["changes"]["state"] for w in warnings], ["UP", "DOWN"])

    def test_losingMastershipStopsPolling(self):
        self.gslb.assigned("legacy", 1)
        self.clock.advance(1.0)
        self.gslb.masterChanged("legacy", 1, 2)
        polled = len(self.client.gets)
        self.clock.advance(5.0)
        self.assertEqual(len(self.client.gets), polled)

    def test_pollingThatCannotStartIsDown(self):
        """A site whose polling cannot even start is DOWN, and the reason says why."""
        self.client.refuse = ValueError("no such transport")
        self.gslb.assigned("legacy", 1)
        self.assertEqual(self.gslb.table["legacy"].state, "DOWN")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_stopClosesTheEngine(self):
        self.gslb.assigned("legacy", 1)
        self.gslb.stop()
        self.assertTrue(self.client.closed)
        self.assertIsNone(self.gslb.snmp)
