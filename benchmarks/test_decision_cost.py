"""
Tests for L{benchmarks.decision_cost}: the generated world (clients,
topology, metrics) and a C{--quick} run that must fill every method x size
cell without any method falling back.  Run with C{.venv/bin/trial benchmarks}.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import random
import tempfile
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import decision_cost
from gslb_twisted.config import parseTopology
from gslb_twisted.lb.clients import RTT_PREFIX_V4, RTT_PREFIX_V6, ClientKeyer
from gslb_twisted.lb.locations import LocationDB


class WorldTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.db = LocationDB.fromCSV(decision_cost.LOCATIONS)

    def test_clientsDistinctAndLocated(self) -> None:
        """Client addresses are distinct, each inside a network of the location file."""
        clients = decision_cost.clientAddresses(self.db, 500, random.Random(4))
        self.assertEqual(len(clients), 500)
        self.assertEqual(len(set(clients)), 500)
        for address in clients:
            ipaddress.ip_address(address)
            self.assertIsNotNone(self.db.lookup(address), address)
        self.assertEqual(clients, decision_cost.clientAddresses(self.db, 500, random.Random(4)))

    def test_topology(self) -> None:
        """N services, five per site at known places, one vserver per method binding all of them."""
        text = decision_cost.topologyText(12, decision_cost.cities(self.db), random.Random(1))
        topology = parseTopology(tomllib.loads(text), "t.toml")
        self.assertEqual(len(topology.services), 12)
        self.assertEqual(len(topology.sites), 3)
        self.assertTrue(all(site.location is not None and site.metric_exchange for site in topology.sites))
        self.assertEqual(
            {v.name for v in topology.vservers}, {decision_cost.vserverName(m) for m in decision_cost.METHODS}
        )
        persistent = topology.vserverByName["leastconnection-sourceip"]
        self.assertEqual((persistent.lb_method, persistent.persistence), ("LEASTCONNECTION", "SOURCEIP"))
        for vserver in topology.vservers:
            self.assertEqual(len(vserver.services), 12)

    def test_metricsFreshWithProbes(self) -> None:
        """Every site is UP at NOW with every service's metrics and an RTT to every client network."""
        clients = decision_cost.clientAddresses(self.db, 50, random.Random(2))
        rng = random.Random(3)
        topology = parseTopology(
            tomllib.loads(decision_cost.topologyText(10, decision_cost.cities(self.db), rng)), "t.toml"
        )
        table = decision_cost.metricTable(topology, self.db, clients, rng)
        keyer = ClientKeyer(RTT_PREFIX_V4, RTT_PREFIX_V6)
        networks = {keyer.network(keyer.key(a)) for a in clients}
        for site in topology.sites:
            metrics = table[site.name]
            self.assertEqual((metrics.state, metrics.updatedAt), ("UP", decision_cost.NOW))
            self.assertEqual(set(metrics.probes), networks)
        for service in topology.services:
            self.assertIn("connections", table[service.site].services[service.name])


class QuickRunTests(SynchronousTestCase):
    def test_quick(self) -> None:
        """
        C{--quick} measures every method at every size, with no fallback,
        and writes the JSON document.
        """
        results = tempfile.mkdtemp(prefix="decision-cost-test-")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = decision_cost.main(["--quick", "--results", results])
        self.assertEqual(code, 0)
        [name] = os.listdir(results)
        with open(os.path.join(results, name), encoding="utf-8") as f:
            document = json.load(f)
        cells = {(c["method"], c["services"]): c for c in document["cells"]}
        expected = {(m.key, size) for m in decision_cost.METHODS for size in (10, 100, 1000)}
        self.assertEqual(set(cells), expected)
        for key, cell in cells.items():
            self.assertFalse(cell["fallback"], key)
            self.assertEqual(cell["planMethod"], decision_cost.METHOD_BY_KEY[key[0]].lbMethod, key)
            for figure in ("planUs", "planOnlyUs", "coldUs", "warmUs"):
                self.assertGreater(cell[figure], 0, (key, figure))
            self.assertEqual(cell["probesRequested"], 0, key)
        persistent = cells[("LEASTCONNECTION+SOURCEIP", 10)]
        self.assertEqual(persistent["persistenceEntries"], document["options"]["clients"])
        for method in decision_cost.METHODS:
            self.assertIn(method.key, out.getvalue())
