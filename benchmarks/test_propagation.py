"""
Tests for the pure parts of L{benchmarks.propagation} and
L{benchmarks.propagation_sites}: percentiles, options, reading
C{show consistency}, the generated topology, the random walk and the hub
byte accounting.  Run with C{.venv/bin/trial benchmarks}.  (They measure
nothing and start no process.)
"""

from __future__ import annotations

import json
import os
import random
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import propagation, propagation_sites as sites
from gslb_twisted.config import SERVICE_METRICS, loadTopology
from gslb_twisted.mep import frames
from gslb_twisted.mep.rules import initiates
from gslb_twisted.protocol.commands import Deliver


class PercentileTests(SynchronousTestCase):
    def test_nearestRank(self) -> None:
        values = list(range(1, 1001))
        random.Random(3).shuffle(values)
        self.assertEqual(propagation.percentile(values, 50), 500)
        self.assertEqual(propagation.percentile(values, 99), 990)
        self.assertEqual(propagation.percentile(values, 100), 1000)

    def test_small(self) -> None:
        self.assertEqual(propagation.percentile([7.0], 50), 7.0)
        self.assertEqual(propagation.percentile([7.0], 99), 7.0)
        self.assertEqual(propagation.percentile([1, 2], 50), 1)
        self.assertEqual(propagation.percentile([1, 2], 51), 2)
        self.assertEqual(propagation.percentile([3, 1, 2], 1), 1)

    def test_errors(self) -> None:
        self.assertRaises(ValueError, propagation.percentile, [], 50)
        self.assertRaises(ValueError, propagation.percentile, [1], 0)
        self.assertRaises(ValueError, propagation.percentile, [1], 101)

    def test_summarise(self) -> None:
        summary = propagation.summarise([0.004, 0.001, 0.002, 0.003])
        self.assertEqual(summary["n"], 4)
        self.assertEqual((summary["p50"], summary["p99"]), (0.002, 0.004))
        self.assertAlmostEqual(summary["mean"], 0.0025)
        self.assertEqual((summary["min"], summary["max"]), (0.001, 0.004))
        self.assertIsNone(propagation.summarise([]))


class OptionTests(SynchronousTestCase):
    def test_cores(self) -> None:
        self.assertEqual(propagation.parseCores("2,4"), [2, 4])
        self.assertEqual(propagation.parseCores(" 1 , 3,"), [1, 3])

    def test_badCores(self) -> None:
        for text in ("", ",", "0", "2,x", "2,2", "-1"):
            self.assertRaises(ValueError, propagation.parseCores, text)

    def test_defaults(self) -> None:
        options = propagation.parseArguments([])
        self.assertEqual((options.changes, options.cores), (1000, [2, 4]))
        self.assertEqual((options.sites, options.services), (100, 20))

    def test_arguments(self) -> None:
        options = propagation.parseArguments(["--changes", "10", "--cores", "3", "--sites", "5", "--services", "2"])
        self.assertEqual((options.changes, options.cores, options.sites, options.services), (10, [3], 5, 2))


CONSISTENCY = {
    "consistent": False,
    "cores": [0, 1],
    "sites": [
        {"site": "anchor", "versions": {"0": [1, 3], "1": [1, 3]}},
        {"site": "site-001", "versions": {"0": [2, 7], "1": [2, 6]}},
        {"site": "site-002", "versions": {"0": [1, 4], "1": [1, 4]}},
        {"site": "site-003", "versions": {"0": None, "1": [1, 1]}},
    ],
}


class ConsistencyTests(SynchronousTestCase):
    def test_versions(self) -> None:
        self.assertEqual(propagation.siteVersions(CONSISTENCY, "site-001"), {"0": (2, 7), "1": (2, 6)})
        self.assertEqual(propagation.siteVersions(CONSISTENCY, "site-003"), {"0": None, "1": (1, 1)})
        self.assertEqual(propagation.siteVersions(CONSISTENCY, "nowhere"), {})

    def test_agreed(self) -> None:
        versions = propagation.siteVersions(CONSISTENCY, "site-002")
        self.assertEqual(propagation.agreedVersion(versions, 2), (1, 4))

    def test_disagree(self) -> None:
        for site in ("site-001", "site-003"):
            self.assertIsNone(propagation.agreedVersion(propagation.siteVersions(CONSISTENCY, site), 2))

    def test_missingCore(self) -> None:
        """A core that did not answer is not agreement, even if the others agree."""
        versions = propagation.siteVersions(CONSISTENCY, "site-002")
        self.assertIsNone(propagation.agreedVersion(versions, 3))
        self.assertIsNone(propagation.agreedVersion({}, 0))

    def test_order(self) -> None:
        """Versions compare as (epoch, seq): a new epoch is newer whatever the seq."""
        self.assertGreater((2, 1), (1, 9))
        self.assertGreater((1, 5), (1, 4))


class TopologyTests(SynchronousTestCase):
    def load(self, sitesCount: int, services: int):
        path = os.path.join(tempfile.mkdtemp(), "t.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(sites.topologyToml(sitesCount, services, 40123))
        return loadTopology(path)

    def test_loads(self) -> None:
        topology = self.load(3, 4)
        self.assertEqual(topology.appliance.mep_port, 40123)
        self.assertEqual(topology.appliance.ip, sites.APPLIANCE_IP)
        mep = [site for site in topology.sites if site.metric_exchange]
        self.assertEqual([site.name for site in mep], ["site-001", "site-002", "site-003"])
        self.assertEqual(len(topology.services), 3 * 4 + 1)
        self.assertEqual(len(topology.vservers), 3 + 1)
        self.assertIn("www.bench.gslb", topology.vserverByName["www"].domains)

    def test_addressesUnique(self) -> None:
        topology = self.load(300, 2)
        self.assertEqual(len({site.ip for site in topology.sites}), 301)
        self.assertEqual(len({service.ip for service in topology.services}), 601)

    def test_sitesDial(self) -> None:
        """Every site has the lower address: it dials the appliance."""
        for index in (0, 1, 253, 254, 600, 8 * 254 - 1):
            self.assertTrue(initiates(sites.siteAddress(index), sites.siteName(index),
                                      sites.APPLIANCE_IP, sites.APPLIANCE_NAME))
        self.assertEqual(sites.siteAddress(0), "127.0.1.1")
        self.assertEqual(sites.siteAddress(254), "127.0.2.1")
        self.assertRaises(ValueError, sites.siteAddress, 8 * 254)


class WalkTests(SynchronousTestCase):
    def test_snapshotValid(self) -> None:
        """A SNAPSHOT of the initial services passes the MEP payload checks."""
        services = sites.initialServices(random.Random(1), "site-001", 20)
        for metrics in services.values():
            self.assertEqual(set(metrics), set(SERVICE_METRICS))
        frame = frames.encodeFrame(frames.SNAPSHOT, {"seq": 1, "services": services})
        decoded = frames.decodeMessage(frames.SNAPSHOT, frame[5:])
        self.assertEqual(decoded["services"], services)

    def test_deterministic(self) -> None:
        def run(seed):
            rng = random.Random(seed)
            services = sites.initialServices(rng, "s", 5)
            out = []
            for _ in range(50):
                changes = sites.walkTick(rng, services, 3)
                sites.applyChanges(services, changes)
                out.append(changes)
            return out

        self.assertEqual(run(4), run(4))
        self.assertNotEqual(run(4), run(5))

    def test_stepsValid(self) -> None:
        """Every tick changes exactly C{count} metrics, each to a new valid value, never state."""
        rng = random.Random(9)
        services = sites.initialServices(rng, "s", 4)
        for _ in range(2000):
            changes = sites.walkTick(rng, services, 3)
            self.assertEqual(sum(len(values) for values in changes.values()), 3)
            for name, values in changes.items():
                self.assertNotIn("state", values)
                for metric, value in values.items():
                    self.assertNotEqual(value, services[name][metric])
            frame = frames.encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": changes})
            frames.decodeMessage(frames.DELTA, frame[5:])  # raises if out of range
            sites.applyChanges(services, changes)

    def test_fewPairs(self) -> None:
        """More changes asked than metrics exist: each metric once."""
        rng = random.Random(1)
        services = sites.initialServices(rng, "s", 1)
        changes = sites.walkTick(rng, services, 50)
        self.assertEqual(len(changes["s-svc-01"]), len(sites.WALKED))

    def test_loadBounds(self) -> None:
        rng = random.Random(2)
        for start in (0.0, 100.0, 50.0):
            for _ in range(200):
                value = sites.stepMetric(rng, "load", start)
                self.assertTrue(0.0 <= value <= 100.0)
                self.assertNotEqual(value, start)


class HubBytesTests(SynchronousTestCase):
    def test_ampBox(self) -> None:
        """The AMP size is that of the serialised box, key and length prefixes included."""
        body = b"x" * 10
        size = propagation.ampBoxSize(Deliver, sender=1, topic="t", body=body)
        # _command/Deliver, sender/1, topic/t, body/x*10, each key and value
        # with a 2-byte length, and the 2-byte empty key ending the box.
        expected = sum(2 + len(k) + 2 + len(v) for k, v in
                       [(b"_command", b"Deliver"), (b"sender", b"1"), (b"topic", b"t"), (b"body", body)]) + 2
        self.assertEqual(size, expected)

    def test_hubCost(self) -> None:
        message = {"site": "a", "seq": 1}
        body = len(json.dumps(message).encode())
        self.assertEqual(propagation.hubCost(message, "metrics.delta", 1), (0, 0))
        json2, amp2 = propagation.hubCost(message, "metrics.delta", 2)
        json4, amp4 = propagation.hubCost(message, "metrics.delta", 4)
        self.assertEqual((json2, json4), (body, 3 * body))
        self.assertGreater(amp4, amp2)

    def test_walk(self) -> None:
        """Deltas cost less than snapshots; one message per site per tick; both scale with cores - 1."""
        rng = random.Random(1)
        initial = [(name, sites.initialServices(rng, name, 10)) for name in ("a", "b")]
        current = {name: json.loads(json.dumps(services)) for name, services in initial}
        ticks = []
        for _ in range(5):
            tick = []
            for name, _ in initial:
                changes = sites.walkTick(rng, current[name], 2)
                sites.applyChanges(current[name], changes)
                tick.append(changes)
            ticks.append(tick)
        totals = propagation.hubBytesOfWalk(initial, ticks, [2, 4])
        self.assertEqual(totals["2"]["messages"], 10)
        self.assertLess(totals["2"]["delta_json"], totals["2"]["snapshot_json"])
        self.assertEqual(totals["4"]["delta_json"], 3 * totals["2"]["delta_json"])
        self.assertEqual(totals["4"]["snapshot_json"], 3 * totals["2"]["snapshot_json"])
