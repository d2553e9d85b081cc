"""
Tests for L{gslb_twisted.metrics}, and a model of the whole mastership and
propagation protocol (L{PropagationMachine}) that drives the pure objects of
L{gslb_twisted.mastership} and L{gslb_twisted.metrics} through random
interleavings of claims, takeovers, releases, core deaths and respawns,
metric changes and message deliveries.
"""

from __future__ import annotations

import json

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional, Union

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.mastership import ClaimTable, MastershipView, pickCore
from gslb_twisted.metrics import (
    APPLIED,
    DOWN,
    GAP,
    STALE,
    UP,
    MetricTable,
    ServiceReport,
    applyServiceChanges,
    diffServices,
)

# Reproducible runs, as elsewhere in the suite: no example database, no clock.
deterministic = settings(derandomize=True, deadline=None, database=None)


class DiffServicesTests(SynchronousTestCase):
    def test_nothingChanged(self) -> None:
        services = {"web": {"connections": 1, "load": 2.0}}
        self.assertEqual(diffServices(services, copy.deepcopy(services)), {})
        self.assertEqual(diffServices({}, {}), {})

    def test_onlyChangedValues(self) -> None:
        old = {"web": {"connections": 1, "load": 2.0}, "dns": {"connections": 3}}
        new = {"web": {"connections": 5, "load": 2.0}, "dns": {"connections": 3}}
        self.assertEqual(diffServices(old, new), {"web": {"connections": 5}})

    def test_newService(self) -> None:
        """A service that appears carries all its metrics."""
        self.assertEqual(
            diffServices({}, {"web": {"connections": 1, "load": 2.0}}),
            {"web": {"connections": 1, "load": 2.0}},
        )

    def test_newMetric(self) -> None:
        self.assertEqual(diffServices({"web": {}}, {"web": {"load": 1.0}}), {"web": {"load": 1.0}})

    def test_removedServiceNotListed(self) -> None:
        """Removals are not expressed by the diff (the caller lists them)."""
        self.assertEqual(diffServices({"web": {"connections": 1}}, {}), {})

    def test_copies(self) -> None:
        """The diff of a new service is a copy, not the caller's dict."""
        new = {"web": {"connections": 1}}
        diff = diffServices({}, new)
        diff["web"]["connections"] = 7
        self.assertEqual(new, {"web": {"connections": 1}})

    def test_applyChanges(self) -> None:
        services = {"web": {"connections": 1, "load": 2.0}}
        applyServiceChanges(services, {"web": {"connections": 4}, "dns": {"load": 1.0}})
        self.assertEqual(services, {"web": {"connections": 4, "load": 2.0}, "dns": {"load": 1.0}})


metricValues = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from([UP, DOWN]),
        "connections": st.integers(0, 3),
        "load": st.sampled_from([0.0, 12.5, 99.0]),
    },
)
serviceSets = st.dictionaries(st.sampled_from(["web", "dns", "api"]), metricValues, max_size=3)


class DiffServicesPropertyTests(SynchronousTestCase):
    @given(old=serviceSets, new=serviceSets)
    @settings(deterministic, max_examples=200)
    def test_diffOnlyChanges(self, old: dict, new: dict) -> None:
        """Every value in the diff is new or different; every difference is in the diff."""
        diff = diffServices(old, new)
        for name, metrics in diff.items():
            self.assertIn(name, new)
            for key, value in metrics.items():
                self.assertEqual(new[name][key], value)
                if name in old:
                    self.assertNotEqual(old[name].get(key, object()), value)
        for name, metrics in new.items():
            for key, value in metrics.items():
                if name not in old or old[name].get(key, object()) != value:
                    self.assertEqual(diff[name][key], value)

    @given(old=serviceSets, new=serviceSets)
    @settings(deterministic, max_examples=200)
    def test_applyDiffGivesNew(self, old: dict, new: dict) -> None:
        """
        Applying the diff to C{old}, less its vanished services, gives C{new}
        wherever C{new} has a value (a diff adds and changes, it never
        drops a metric).
        """
        services = {name: dict(metrics) for name, metrics in old.items() if name in new}
        applyServiceChanges(services, diffServices(old, new))
        self.assertEqual(sorted(services), sorted(new))
        for name, metrics in new.items():
            for key, value in metrics.items():
                self.assertEqual(services[name][key], value)


def snapshotOf(table: MetricTable, site: str) -> dict:
    return table[site].snapshot()


class MetricTableMasterTests(SynchronousTestCase):
    """L{MetricTable.recordAsMaster} and L{MetricTable.beginEpoch} on a master core."""

    def setUp(self) -> None:
        self.table = MetricTable(["east", "west"])
        self.table.beginEpoch("east", 3)

    def test_initial(self) -> None:
        fresh = MetricTable(["east"])
        self.assertEqual(fresh.versions(), {"east": (0, 0)})
        self.assertIsNone(fresh["east"].state)
        self.assertFalse(fresh["east"].hasSnapshot)
        self.assertEqual(fresh.staleRejected, 0)
        self.assertEqual(fresh.gaps, 0)

    def test_beginEpoch(self) -> None:
        """A new epoch restarts seq and keeps the metrics."""
        self.table.recordAsMaster("east", state=UP, services={"web": {"connections": 1}})
        self.table.beginEpoch("east", 5)
        self.assertEqual(self.table["east"].version(), (5, 0))
        self.assertEqual(self.table["east"].services, {"web": {"connections": 1}})
        self.assertEqual(self.table["east"].state, UP)

    def test_firstRecord(self) -> None:
        delta = self.table.recordAsMaster(
            "east", state=UP, rtt=0.5, services={"web": {"connections": 1}}, now=10.0
        )
        self.assertEqual(
            delta,
            {
                "site": "east",
                "epoch": 3,
                "seq": 1,
                "base_seq": 0,
                "changes": {"state": UP, "rtt": 0.5, "services": {"web": {"connections": 1}}},
                "updated_at": 10.0,
            },
        )
        metrics = self.table["east"]
        self.assertEqual(metrics.version(), (3, 1))
        self.assertEqual((metrics.state, metrics.rtt, metrics.updatedAt), (UP, 0.5, 10.0))
        self.assertTrue(metrics.hasSnapshot)

    def test_baseSeqIsPreviousSeq(self) -> None:
        self.table.recordAsMaster("east", state=UP)
        delta = self.table.recordAsMaster("east", state=DOWN)
        self.assertEqual((delta["seq"], delta["base_seq"]), (2, 1))
        self.assertEqual(delta["changes"], {"state": DOWN})
        self.assertEqual(self.table["east"].version(), (3, 2))

    def test_nothingChanged(self) -> None:
        """Recording the same values again gives no delta and keeps seq."""
        self.table.recordAsMaster("east", state=UP, rtt=0.5, services={"web": {"connections": 1}})
        self.assertIsNone(
            self.table.recordAsMaster("east", state=UP, rtt=0.5, services={"web": {"connections": 1}}, now=20.0)
        )
        self.assertIsNone(self.table.recordAsMaster("east"))
        self.assertEqual(self.table["east"].version(), (3, 1))
        self.assertEqual(self.table["east"].updatedAt, 20.0)

    def test_noneMeansUnchanged(self) -> None:
        """C{state}/C{rtt} None leave the values as they are."""
        self.table.recordAsMaster("east", state=UP, rtt=0.5)
        delta = self.table.recordAsMaster("east", rtt=0.7)
        self.assertEqual(delta["changes"], {"rtt": 0.7})
        self.assertEqual(self.table["east"].state, UP)

    def test_mergeOnlyChangedMetrics(self) -> None:
        """Without C{replace}, services merge and only changed metrics are sent."""
        self.table.recordAsMaster(
            "east", services={"web": {"connections": 1, "load": 2.0}, "dns": {"connections": 0}}
        )
        delta = self.table.recordAsMaster("east", services={"web": {"connections": 4, "load": 2.0}})
        self.assertEqual(delta["changes"], {"services": {"web": {"connections": 4}}})
        self.assertEqual(
            self.table["east"].services,
            {"web": {"connections": 4, "load": 2.0}, "dns": {"connections": 0}},
        )

    def test_mergeNewEmptyService(self) -> None:
        """A service that appears is sent, even with no metrics yet."""
        delta = self.table.recordAsMaster("east", services={"web": {}})
        self.assertEqual(delta["changes"], {"services": {"web": {}}})
        self.assertEqual(self.table["east"].services, {"web": {}})

    def test_replaceRemovesVanished(self) -> None:
        """With C{replace}, services absent from the new set are removed and listed."""
        self.table.recordAsMaster("east", services={"web": {"connections": 1}, "dns": {"connections": 2}})
        delta = self.table.recordAsMaster(
            "east", services={"web": {"connections": 1}, "api": {"load": 3.0}}, replace=True
        )
        self.assertEqual(delta["changes"], {"removed": ["dns"], "services": {"api": {"load": 3.0}}})
        self.assertEqual(self.table["east"].services, {"web": {"connections": 1}, "api": {"load": 3.0}})

    def test_replaceOnlyRemoval(self) -> None:
        self.table.recordAsMaster("east", services={"web": {"connections": 1}, "dns": {"connections": 2}})
        delta = self.table.recordAsMaster("east", services={"web": {"connections": 1}}, replace=True)
        self.assertEqual(delta["changes"], {"removed": ["dns"]})

    def test_replaceUnchanged(self) -> None:
        self.table.recordAsMaster("east", services={"web": {"connections": 1}})
        self.assertIsNone(self.table.recordAsMaster("east", services={"web": {"connections": 1}}, replace=True))

    def test_deltaNotAliased(self) -> None:
        """Changing the returned delta, or the caller's dict, does not change the table."""
        reported = {"web": {"connections": 1}}
        delta = self.table.recordAsMaster("east", services=reported)
        delta["changes"]["services"]["web"]["connections"] = 9
        reported["web"]["connections"] = 8
        self.assertEqual(self.table["east"].services, {"web": {"connections": 1}})

    def test_otherSiteUntouched(self) -> None:
        self.table.recordAsMaster("east", state=UP)
        self.assertEqual(self.table["west"].version(), (0, 0))
        self.assertIsNone(self.table["west"].state)

    def test_snapshotIsCopy(self) -> None:
        self.table.recordAsMaster("east", state=UP, rtt=0.5, services={"web": {"connections": 1}}, now=4.0)
        snapshot = snapshotOf(self.table, "east")
        self.assertEqual(
            snapshot,
            {
                "site": "east",
                "epoch": 3,
                "seq": 1,
                "state": UP,
                "rtt": 0.5,
                "probes": {},
                "services": {"web": {"connections": 1}},
                "updated_at": 4.0,
                "lagging": {},
            },
        )
        snapshot["services"]["web"]["connections"] = 7
        self.assertEqual(self.table["east"].services, {"web": {"connections": 1}})


class ServiceReportTests(SynchronousTestCase):
    """One service's report as a core keeps it: a mapping, in a third of a dict's memory."""

    def test_mapping(self) -> None:
        report = ServiceReport({"state": "UP", "connections": 3, "load": 1.5})
        self.assertEqual(report, {"state": "UP", "connections": 3, "load": 1.5})
        self.assertEqual((report["connections"], report.get("packets"), report.get("packets", 0)), (3, None, 0))
        self.assertRaises(KeyError, lambda: report["packets"])
        self.assertEqual(("load" in report, "packets" in report, "keys" in report), (True, False, False))
        self.assertEqual(list(report), ["state", "connections", "load"])
        self.assertEqual({**report, "name": "web"}, {"state": "UP", "connections": 3, "load": 1.5, "name": "web"})
        self.assertEqual(json.dumps(report.copy(), sort_keys=True), '{"connections": 3, "load": 1.5, "state": "UP"}')
        report.update({"connections": 4, "monitor": "DOWN"})
        self.assertEqual(report.pop("monitor"), "DOWN")
        self.assertEqual(report.pop("monitor", None), None)
        self.assertRaises(KeyError, report.pop, "monitor")
        self.assertEqual(dict(report.items()), {"state": "UP", "connections": 4, "load": 1.5})

    def test_otherMetrics(self) -> None:
        """A metric an SNMP metric table defines (say cpu) is kept too."""
        report = ServiceReport({"state": "UP", "cpu": 42.0})
        self.assertEqual(report["cpu"], 42.0)
        self.assertEqual(report, {"state": "UP", "cpu": 42.0})
        del report["cpu"]
        self.assertEqual(len(report), 1)

    def test_smallerThanADict(self) -> None:
        import sys

        values = {"state": "UP", "connections": 3, "response_time": 1.5, "bandwidth": 2.0, "packets": 4, "load": 5.0}
        self.assertLess(sys.getsizeof(ServiceReport(values)) * 2, sys.getsizeof(dict(values)))


class SharedStringsTests(SynchronousTestCase):
    """
    What a core keeps of 20,000 services' reports shares its strings: the
    names are the topology's own objects, each state one object, whatever
    message (decoded JSON) they came in.
    """

    def test_namesAndStatesShared(self) -> None:
        known = {"east-web": "east-web"}  # stands for the topology's strings
        table = MetricTable(["east"], clock=lambda: 0.0, canonical=lambda name: known.get(name, name))
        table.beginEpoch("east", 1)
        decoded = json.loads(json.dumps({"east-web": {"state": "UP"}, "east-new": {"state": "DOWN"}}))
        table.recordAsMaster("east", state=UP, services=decoded)
        follower = MetricTable(["east"], clock=lambda: 0.0, canonical=lambda name: known.get(name, name))
        snapshot = json.loads(json.dumps(table["east"].snapshot()))
        self.assertTrue(follower.applySnapshot(snapshot, (0, 1), 0))
        for metrics in (table["east"], follower["east"]):
            (name,) = [n for n in metrics.services if n == "east-web"]
            self.assertIs(name, known["east-web"])
            self.assertIs(metrics.services["east-web"]["state"], UP)
            self.assertIs(metrics.services["east-new"]["state"], DOWN)
        delta = json.loads(json.dumps({"east-web": {"state": "DOWN"}}))
        applyServiceChanges(follower["east"].services, delta)
        self.assertIs(follower["east"].services["east-web"]["state"], DOWN)


class LaggingValueTests(SynchronousTestCase):
    """
    Values one report did not refresh (an SNMP OID that failed this poll)
    keep their own age, on the master and on every follower.
    """

    def setUp(self) -> None:
        self.master = MetricTable(["legacy"])
        self.master.beginEpoch("legacy", 1)
        self.follower = MetricTable(["legacy"])

    def test_agesFollowTheReports(self) -> None:
        self.master.recordAsMaster("legacy", state=UP, services={"web": {"cpu": 10.0, "memory": 40.0}}, now=100.0)
        self.follower.applySnapshot(snapshotOf(self.master, "legacy"), (0, 1), 0)
        # The next poll refreshes cpu only: memory stays as reported at 100.
        delta = self.master.recordAsMaster(
            "legacy", services={"web": {"cpu": 12.0}}, lagging={"web": {"memory": 100.0}}, now=105.0,
        )
        self.assertEqual(self.follower.applyDelta(delta, (0, 1), 0), APPLIED)
        for table in (self.master, self.follower):
            metrics = table["legacy"]
            self.assertEqual(metrics.ageOf("web", "cpu", 106.0), 1.0)
            self.assertEqual(metrics.ageOf("web", "memory", 106.0), 6.0)
            self.assertIsNone(metrics.ageOf("other", "cpu", 106.0) and None)
        # Refreshed again: no longer lagging, and the change says so.
        delta = self.master.recordAsMaster("legacy", services={"web": {"memory": 41.0}}, lagging={}, now=110.0)
        self.assertEqual(delta["changes"]["lagging"], {})
        self.follower.applyDelta(delta, (0, 1), 0)
        self.assertEqual(self.follower["legacy"].ageOf("web", "memory", 110.5), 0.5)

    def test_unchangedLaggingIsNoChange(self) -> None:
        self.master.recordAsMaster("legacy", state=UP, services={"web": {"cpu": 10.0}}, lagging={"web": {"m": 1.0}}, now=1.0)
        self.assertIsNone(self.master.recordAsMaster("legacy", services={"web": {"cpu": 10.0}}, lagging={"web": {"m": 1.0}}, now=2.0))


class AppliedAtTests(SynchronousTestCase):
    """
    Each core notes when it took a site's current version (the exact
    propagation figure of benchmarks.propagation): the master when its
    version moves, the others when a snapshot or delta applies.
    """

    def setUp(self) -> None:
        self.now = 10.0
        clock = lambda: self.now  # noqa: E731
        self.master = MetricTable(["east"], clock=clock)
        self.master.beginEpoch("east", 1)
        self.follower = MetricTable(["east"], clock=clock)

    def test_master(self) -> None:
        self.master.recordAsMaster("east", state=UP, services={"web": {"connections": 1}})
        self.assertEqual(self.master["east"].appliedAt, 10.0)
        self.now = 11.0
        # Nothing new: the version, and so its time, stay.
        self.assertIsNone(self.master.recordAsMaster("east", services={"web": {"connections": 1}}))
        self.assertEqual(self.master["east"].appliedAt, 10.0)
        self.master.recordAsMaster("east", services={"web": {"connections": 2}})
        self.assertEqual(self.master["east"].appliedAt, 11.0)

    def test_follower(self) -> None:
        self.master.recordAsMaster("east", state=UP, services={"web": {"connections": 1}})
        self.now = 12.0
        self.follower.applySnapshot(snapshotOf(self.master, "east"), (0, 1), 0)
        self.assertEqual(self.follower["east"].appliedAt, 12.0)
        delta = self.master.recordAsMaster("east", services={"web": {"connections": 2}})
        self.now = 13.0
        self.assertEqual(self.follower.applyDelta(delta, (0, 1), 0), APPLIED)
        self.assertEqual(self.follower["east"].appliedAt, 13.0)
        self.now = 14.0
        # From a core that is not the master: not taken, time unchanged.
        self.assertEqual(self.follower.applyDelta(delta, (0, 1), 2), STALE)
        self.assertEqual(self.follower["east"].appliedAt, 13.0)


class MetricTableFollowerTests(SynchronousTestCase):
    """L{MetricTable.applySnapshot} and L{MetricTable.applyDelta} on the other cores."""

    def setUp(self) -> None:
        self.master = MetricTable(["east", "west"])
        self.master.beginEpoch("east", 2)
        self.master.recordAsMaster("east", state=UP, rtt=0.5, services={"web": {"connections": 1}, "dns": {"load": 2.0}}, now=1.0)
        self.follower = MetricTable(["east", "west"])
        self.known = (1, 2)  # core 1 masters east with epoch 2

    def assertSameAsMaster(self) -> None:
        ours, theirs = self.follower["east"], self.master["east"]
        self.assertEqual(
            (ours.version(), ours.state, ours.rtt, ours.services, ours.updatedAt),
            (theirs.version(), theirs.state, theirs.rtt, theirs.services, theirs.updatedAt),
        )

    def test_snapshot(self) -> None:
        self.assertTrue(self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1))
        self.assertSameAsMaster()
        self.assertTrue(self.follower["east"].hasSnapshot)
        self.assertEqual(self.follower.staleRejected, 0)

    def test_snapshotNotAliased(self) -> None:
        snapshot = snapshotOf(self.master, "east")
        self.follower.applySnapshot(snapshot, self.known, 1)
        snapshot["services"]["web"]["connections"] = 9
        self.assertEqual(self.follower["east"].services["web"], {"connections": 1})

    def test_snapshotReplacesEverything(self) -> None:
        """A snapshot drops services and values the follower held before."""
        self.follower["east"].services = {"old": {"connections": 5}}
        self.follower["east"].state = DOWN
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        self.assertSameAsMaster()

    def test_snapshotStale(self) -> None:
        """A snapshot from another sender or epoch than the known master is rejected and counted."""
        snapshot = snapshotOf(self.master, "east")
        self.assertFalse(self.follower.applySnapshot(snapshot, self.known, 2))
        self.assertFalse(self.follower.applySnapshot(snapshot, (1, 3), 1))
        self.assertFalse(self.follower.applySnapshot(snapshot, (1, 1), 1))
        self.assertFalse(self.follower.applySnapshot(snapshot, None, 1))
        self.assertEqual(self.follower.staleRejected, 4)
        self.assertEqual(self.follower["east"].version(), (0, 0))
        self.assertFalse(self.follower["east"].hasSnapshot)

    def test_snapshotUnknownSite(self) -> None:
        snapshot = dict(snapshotOf(self.master, "east"), site="north")
        self.assertFalse(self.follower.applySnapshot(snapshot, self.known, 1))
        self.assertEqual(self.follower.staleRejected, 1)

    def test_deltaApplied(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", rtt=0.7, services={"web": {"connections": 3}}, now=2.0)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), APPLIED)
        self.assertSameAsMaster()
        self.assertEqual(self.follower.gaps, 0)

    def test_deltaStateAndRtt(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", state=DOWN, rtt=1.5)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), APPLIED)
        self.assertEqual((self.follower["east"].state, self.follower["east"].rtt), (DOWN, 1.5))

    def test_deltaRemovesServices(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", services={"web": {"connections": 1}}, replace=True)
        self.assertEqual(delta["changes"], {"removed": ["dns"]})
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), APPLIED)
        self.assertEqual(self.follower["east"].services, {"web": {"connections": 1}})
        self.assertSameAsMaster()

    def test_deltaKeepsUpdatedAtWithoutOne(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", state=DOWN)
        del delta["updated_at"]
        self.follower.applyDelta(delta, self.known, 1)
        self.assertEqual(self.follower["east"].updatedAt, 1.0)

    def test_deltaChain(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        for connections in range(2, 6):
            delta = self.master.recordAsMaster("east", services={"web": {"connections": connections}})
            self.assertEqual(self.follower.applyDelta(delta, self.known, 1), APPLIED)
        self.assertSameAsMaster()

    def test_gapWithoutSnapshot(self) -> None:
        """A delta before any snapshot is a gap, even when the seqs would match."""
        fresh = MetricTable(["east"])
        master = MetricTable(["east"])
        master.beginEpoch("east", 2)
        delta = master.recordAsMaster("east", state=UP)
        self.assertEqual(delta["base_seq"], 0)
        fresh["east"].epoch = 2
        self.assertEqual(fresh.applyDelta(delta, self.known, 1), GAP)
        self.assertEqual(fresh.gaps, 1)
        self.assertIsNone(fresh["east"].state)

    def test_gapBaseSeq(self) -> None:
        """A missed delta makes the next one a gap; nothing is applied."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        self.master.recordAsMaster("east", state=DOWN)
        delta = self.master.recordAsMaster("east", rtt=2.0)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), GAP)
        self.assertEqual(self.follower.gaps, 1)
        self.assertEqual(self.follower["east"].version(), (2, 1))
        self.assertEqual((self.follower["east"].state, self.follower["east"].rtt), (UP, 0.5))
        self.assertEqual(self.follower.staleRejected, 0)

    def test_gapReplayed(self) -> None:
        """A delta applied twice is a gap the second time (its base_seq is behind)."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", state=DOWN)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), APPLIED)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), GAP)

    def test_gapOtherEpoch(self) -> None:
        """The first delta of a new epoch is a gap for a core holding the old epoch."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        self.master.beginEpoch("east", 3)
        delta = self.master.recordAsMaster("east", state=DOWN)
        self.assertEqual((delta["epoch"], delta["base_seq"]), (3, 0))
        self.assertEqual(self.follower.applyDelta(delta, (1, 3), 1), GAP)
        self.assertEqual(self.follower["east"].version(), (2, 1))

    def test_gapOtherEpochSameSeq(self) -> None:
        """
        A delta of another epoch is a gap even when its base_seq equals our
        seq: seqs of different epochs say nothing about each other.
        """
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        newMaster = MetricTable(["east"])
        newMaster.beginEpoch("east", 3)
        newMaster.recordAsMaster("east", state=DOWN)
        delta = newMaster.recordAsMaster("east", rtt=9.0)
        self.assertEqual((delta["base_seq"], self.follower["east"].seq), (1, 1))
        self.assertEqual(self.follower.applyDelta(delta, (2, 3), 2), GAP)
        self.assertEqual(self.follower["east"].version(), (2, 1))
        self.assertEqual(self.follower["east"].state, UP)

    def test_gapThenSnapshot(self) -> None:
        """After a gap, the master's snapshot brings the follower back in sequence."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        self.master.recordAsMaster("east", state=DOWN)
        self.assertEqual(self.follower.applyDelta(self.master.recordAsMaster("east", rtt=2.0), self.known, 1), GAP)
        self.assertTrue(self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1))
        self.assertEqual(self.follower.applyDelta(self.master.recordAsMaster("east", rtt=3.0), self.known, 1), APPLIED)
        self.assertSameAsMaster()

    def test_staleSender(self) -> None:
        """A delta from a core that is not the known master is stale, even in sequence."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", state=DOWN)
        self.assertEqual(self.follower.applyDelta(delta, self.known, 2), STALE)
        self.assertEqual(self.follower.staleRejected, 1)
        self.assertEqual(self.follower["east"].state, UP)

    def test_staleEpoch(self) -> None:
        """A delta of an older (deposed) or newer (not yet announced) epoch is stale."""
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        delta = self.master.recordAsMaster("east", state=DOWN)
        self.assertEqual(self.follower.applyDelta(delta, (3, 3), 1), STALE)
        self.assertEqual(self.follower.applyDelta(delta, (1, 1), 1), STALE)
        self.assertEqual(self.follower.applyDelta(delta, None, 1), STALE)
        self.assertEqual(self.follower.staleRejected, 3)
        self.assertEqual(self.follower.gaps, 0)
        self.assertEqual(self.follower["east"].version(), (2, 1))

    def test_staleUnknownSite(self) -> None:
        delta = dict(self.master.recordAsMaster("east", state=DOWN), site="north")
        self.assertEqual(self.follower.applyDelta(delta, self.known, 1), STALE)
        self.assertEqual(self.follower.staleRejected, 1)

    def test_versions(self) -> None:
        self.follower.applySnapshot(snapshotOf(self.master, "east"), self.known, 1)
        self.assertEqual(self.follower.versions(), {"east": (2, 1), "west": (0, 0)})


records = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from([UP, DOWN]),
        "rtt": st.sampled_from([0.1, 0.2]),
        "services": serviceSets,
        "replace": st.booleans(),
        "now": st.floats(0, 100),
    },
)


class MetricTablePropertyTests(SynchronousTestCase):
    @given(before=st.lists(records, max_size=5), after=st.lists(records, max_size=15))
    @settings(deterministic, max_examples=200)
    def test_followerTracksMaster(self, before: list, after: list) -> None:
        """
        A follower that takes the master's snapshot at any point and then
        applies every delta the master returns, in order, holds exactly the
        master's metrics and version after each one; deltas chain by
        base_seq, and no delta comes back when nothing changed.
        """
        master = MetricTable(["east"])
        master.beginEpoch("east", 4)
        for change in before:
            master.recordAsMaster("east", **change)
        follower = MetricTable(["east"])
        self.assertTrue(follower.applySnapshot(snapshotOf(master, "east"), (1, 4), 1))
        for change in after:
            seqBefore = master["east"].seq
            servicesBefore = copy.deepcopy(master["east"].services)
            stateBefore = (master["east"].state, master["east"].rtt)
            delta = master.recordAsMaster("east", **change)
            if delta is None:
                self.assertEqual(master["east"].seq, seqBefore)
                self.assertEqual(master["east"].services, servicesBefore)
                self.assertEqual((master["east"].state, master["east"].rtt), stateBefore)
            else:
                self.assertEqual((delta["epoch"], delta["base_seq"], delta["seq"]), (4, seqBefore, seqBefore + 1))
                self.assertEqual(follower.applyDelta(copy.deepcopy(delta), (1, 4), 1), APPLIED)
            ours, theirs = follower["east"], master["east"]
            self.assertEqual(
                (ours.version(), ours.state, ours.rtt, ours.services),
                (theirs.version(), theirs.state, theirs.rtt, theirs.services),
            )
        self.assertEqual((follower.gaps, follower.staleRejected), (0, 0))

    @given(records=st.lists(records, min_size=1, max_size=10), dropped=st.data())
    @settings(deterministic, max_examples=100)
    def test_lostDeltaIsGap(self, records: list, dropped: st.DataObject) -> None:
        """Once a delta is lost every later delta is a gap, until a snapshot."""
        master = MetricTable(["east"])
        master.beginEpoch("east", 1)
        follower = MetricTable(["east"])
        follower.applySnapshot(snapshotOf(master, "east"), (1, 1), 1)
        deltas = [d for d in (master.recordAsMaster("east", **change) for change in records) if d is not None]
        if not deltas:
            return
        lost = dropped.draw(st.integers(0, len(deltas) - 1))
        for index, delta in enumerate(deltas):
            if index == lost:
                continue
            expected = APPLIED if index < lost else GAP
            self.assertEqual(follower.applyDelta(delta, (1, 1), 1), expected)
        self.assertEqual(follower.gaps, len(deltas) - lost - 1)
        self.assertEqual(follower["east"].seq, lost)


# --- the protocol, modelled ------------------------------------------------------

HUB = 0  # the hub's sender id; cores are 1..N


@dataclass(frozen=True)
class Announce:
    """The hub's C{AnnounceMaster(site, core, epoch)}; C{core} None: nobody."""

    site: str
    core: Optional[int]
    epoch: int


@dataclass(frozen=True)
class Delta:
    body: dict


@dataclass(frozen=True)
class Snapshot:
    body: dict


Message = Union[Announce, Delta, Snapshot]


class ModelCore:
    """One incarnation of a core process: its view of the masters, its metrics."""

    def __init__(self, ident: int, sites: list[str]) -> None:
        self.ident = ident
        self.view = MastershipView()
        self.table = MetricTable(sites)


def content(table: MetricTable, site: str) -> tuple:
    """What a site's metrics are, for comparison (C{updatedAt} is the receiver's business)."""
    metrics = table[site]
    return (metrics.state, metrics.rtt, copy.deepcopy(metrics.services))


serviceNames = st.sampled_from(["web", "dns", "api"])
fullServices = st.dictionaries(
    serviceNames,
    st.fixed_dictionaries({"connections": st.integers(0, 2), "load": st.sampled_from([0.0, 50.0])}),
    max_size=3,
)
partialServices = st.dictionaries(
    serviceNames,
    st.fixed_dictionaries({}, optional={"connections": st.integers(0, 2), "load": st.sampled_from([0.0, 50.0])}),
    max_size=2,
)


class PropagationMachine(RuleBasedStateMachine):
    """
    The hub (a L{ClaimTable} and L{pickCore}), 2 to 4 cores (each a
    L{MastershipView} and a L{MetricTable}), 1 to 4 sites, and the network
    between them: one FIFO queue per (sender, receiver), the hub being
    sender 0.  Messages of one sender reach a core in the order sent (AMP
    over one pipe per core, relayed in order by the hub), messages of
    different senders interleave arbitrarily.  Messages to a core that dies
    are lost with its pipe; messages a dead core already sent are still
    delivered (the hub had them).

    The protocol, as each core runs it:
      - on an announcement that changes its view: if it names this core,
        begin the epoch and send a snapshot to every other live core;
        otherwise ask the new master for a snapshot;
      - on a delta or snapshot: apply it given the master its view knows;
        on a gap, ask that master for a snapshot;
      - a snapshot request is answered by a core that believes itself the
        master, and dropped otherwise (the new master's own snapshot, or
        the requester's next announcement, covers it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hub = ClaimTable()
        self.sites: list[str] = []
        self.cores: dict[int, ModelCore] = {}
        self.alive: set[int] = set()
        self.queues: dict[tuple[int, int], deque[Message]] = {}
        self.requests: set[tuple[int, int, str]] = set()  # (requester, asked, site)
        # Every grant the hub ever made: (site, epoch) -> core.
        self.grants: dict[tuple[str, int], int] = {}
        # What the master held at each version it created: (site, epoch, seq) -> content.
        self.history: dict[tuple[str, int, int], tuple] = {}
        # Highest epoch each live core's view has known per site, and each
        # live core's table version per site, as last checked.
        self.seenEpochs: dict[tuple[int, str], int] = {}
        self.versions: dict[tuple[int, str], tuple[int, int]] = {}
        self.hubEpochs: dict[str, int] = {}
        self.lost = False  # a delta was lost since the last settle()
        self.tick = 0

    # --- the hub -------------------------------------------------------------------

    def send(self, sender: int, receiver: int, message: Message) -> None:
        self.queues.setdefault((sender, receiver), deque()).append(message)

    def announce(self, site: str, core: Optional[int], epoch: int, to: Optional[list[int]] = None) -> None:
        for receiver in sorted(self.alive) if to is None else to:
            self.send(HUB, receiver, Announce(site, core, epoch))

    def grant(self, site: str, core: int, takeover: bool = False) -> None:
        """The hub arbitrates a claim and announces a new master to every live core."""
        before = self.hub.holder(site)
        claim = self.hub.claim(site, core, takeover)
        if claim is None or claim == before:
            return
        assert (site, claim.epoch) not in self.grants, "epoch granted twice"
        self.grants[(site, claim.epoch)] = core
        self.announce(site, core, claim.epoch)

    def assignOrphans(self) -> None:
        """The hub spreads unheld sites over the live cores, if any."""
        for site in self.sites:
            if self.hub.holder(site) is not None:
                continue
            core = pickCore(self.alive, self.hub.mastersOf())
            if core is None:
                return
            self.grant(site, core)

    # --- a core -------------------------------------------------------------------

    def broadcastSnapshot(self, core: ModelCore, site: str, receivers: Optional[list[int]] = None) -> None:
        snapshot = core.table[site].snapshot()
        self.recordHistory(site, snapshot["epoch"], snapshot["seq"], content(core.table, site))
        for receiver in sorted(self.alive - {core.ident}) if receivers is None else receivers:
            self.send(core.ident, receiver, Snapshot(copy.deepcopy(snapshot)))

    def recordHistory(self, site: str, epoch: int, seq: int, held: tuple) -> None:
        """A master's content at a version is unique: one core per epoch, one change per seq."""
        known = self.history.setdefault((site, epoch, seq), held)
        assert known == held, ("two contents for one version", site, epoch, seq, known, held)

    def deliver(self, sender: int, receiver: int) -> None:
        message = self.queues[(sender, receiver)].popleft()
        core = self.cores[receiver]
        if isinstance(message, Announce):
            before = core.view.master(message.site)
            core.view.announce(message.site, message.core, message.epoch)
            after = core.view.master(message.site)
            if after == before or after is None:
                return
            if after[0] == core.ident:
                core.table.beginEpoch(message.site, after[1])
                self.recordHistory(message.site, after[1], 0, content(core.table, message.site))
                self.broadcastSnapshot(core, message.site)
            else:
                self.requests.add((receiver, after[0], message.site))
            return

        body = message.body
        site = body["site"]
        master = core.view.master(site)
        seenEpoch = core.view.epochs.get(site, 0)
        staleBefore = core.table.staleRejected
        if isinstance(message, Delta):
            result = core.table.applyDelta(body, master, sender)
        else:
            result = APPLIED if core.table.applySnapshot(body, master, sender) else STALE

        fromMaster = master == (sender, body["epoch"])
        # Safety: an update is applied only if, at that moment, this core's
        # view says the sender is master with the update's epoch; an update
        # from anyone else is rejected as stale and counted.
        assert (result == STALE) == (not fromMaster), (result, master, sender, body)
        assert core.table.staleRejected == staleBefore + (result == STALE)
        if result == STALE:
            return
        # Fencing: it was written by the core the hub granted that epoch to,
        # never with an epoch older than one this core has seen.
        assert self.grants[(site, body["epoch"])] == sender
        assert body["epoch"] >= seenEpoch >= self.seenEpochs.get((receiver, site), 0)
        if result == GAP:
            self.requests.add((receiver, sender, site))
            return
        # The follower now holds exactly what the master held at that version.
        assert core.table[site].version() == (body["epoch"], body["seq"])
        assert content(core.table, site) == self.history[(site, body["epoch"], body["seq"])]

    def propagate(self, ident: int, site: str, **record: Any) -> None:
        """The master records its site's news and sends the delta to every other live core."""
        table = self.cores[ident].table
        delta = table.recordAsMaster(site, **record)
        if delta is None:
            return
        self.recordHistory(site, delta["epoch"], delta["seq"], content(table, site))
        for receiver in sorted(self.alive - {ident}):
            self.send(ident, receiver, Delta(copy.deepcopy(delta)))

    def answer(self, requester: int, asked: int, site: str) -> None:
        self.requests.discard((requester, asked, site))
        if requester in self.alive and asked in self.alive and self.cores[asked].view.isMaster(site, asked):
            self.broadcastSnapshot(self.cores[asked], site, [requester])

    def drain(self) -> None:
        """Deliver every message and answer every request, until nothing moves."""
        for _ in range(10_000):
            pending = sorted(key for key, queue in self.queues.items() if queue)
            if not pending and not self.requests:
                return
            for sender, receiver in pending:
                while self.queues[(sender, receiver)]:
                    self.deliver(sender, receiver)
            for request in sorted(self.requests):
                self.answer(*request)
        raise AssertionError("the protocol does not quiesce")

    def settle(self) -> None:
        """
        Drain; after a loss, every master's site reports once more (its
        metrics keep changing: the next delta reveals the gap), and drain.
        """
        self.drain()
        if self.lost:
            self.lost = False
            for site, claim in sorted(self.hub.claims.items()):
                self.tick += 1
                self.propagate(claim.core, site, rtt=1000.0 + self.tick)
            self.drain()

    def believedMasters(self) -> list[tuple[int, str]]:
        return sorted(
            (ident, site)
            for ident in self.alive
            for site in self.sites
            if self.cores[ident].view.isMaster(site, ident)
        )

    # --- rules ------------------------------------------------------------------------

    @initialize(cores=st.integers(2, 4), sites=st.integers(1, 4), settled=st.booleans())
    def start(self, cores: int, sites: int, settled: bool) -> None:
        """
        The supervisor starts its cores and spreads the sites over them
        (settled: the announcements arrive before anything else happens).
        """
        self.sites = ["east", "west", "north", "south"][:sites]
        for ident in range(1, cores + 1):
            self.cores[ident] = ModelCore(ident, self.sites)
            self.alive.add(ident)
        self.assignOrphans()
        if settled:
            self.drain()

    @precondition(lambda self: self.alive)
    @rule(data=st.data(), takeover=st.booleans())
    def claim(self, data: st.DataObject, takeover: bool) -> None:
        """A core claims a site (takeover: the site connected to it)."""
        core = data.draw(st.sampled_from(sorted(self.alive)), label="core")
        site = data.draw(st.sampled_from(self.sites), label="site")
        self.grant(site, core, takeover)

    @precondition(lambda self: self.hub.claims)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """A master gives up its site (MEP session lost for good): nobody masters it."""
        site = data.draw(st.sampled_from(sorted(self.hub.claims)), label="site")
        claim = self.hub.holder(site)
        assert self.hub.release(site, claim.core, claim.epoch)
        self.announce(site, None, claim.epoch)

    @precondition(lambda self: self.alive)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        """A core dies: its pipe and what was queued to it are lost, its sites re-assigned."""
        ident = data.draw(st.sampled_from(sorted(self.alive)), label="core")
        self.alive.discard(ident)
        for key in [key for key in self.queues if key[1] == ident]:
            del self.queues[key]
        self.requests = {request for request in self.requests if request[0] != ident}
        for key in [key for key in self.seenEpochs if key[0] == ident]:
            del self.seenEpochs[key]
        for key in [key for key in self.versions if key[0] == ident]:
            del self.versions[key]
        for site in self.hub.coreDied(ident):
            epoch = self.hub.lastEpoch[site]
            core = pickCore(self.alive, self.hub.mastersOf())
            if core is None:
                self.announce(site, None, epoch)
            else:
                self.grant(site, core)

    @precondition(lambda self: len(self.alive) < len(self.cores))
    @rule(data=st.data())
    def respawn(self, data: st.DataObject) -> None:
        """A dead core comes back fresh; the hub tells it every current master."""
        ident = data.draw(st.sampled_from(sorted(set(self.cores) - self.alive)), label="core")
        self.cores[ident] = ModelCore(ident, self.sites)
        self.alive.add(ident)
        for site in self.sites:
            holder = self.hub.holder(site)
            if holder is not None:
                self.announce(site, holder.core, holder.epoch, [ident])
            elif site in self.hub.lastEpoch:
                self.announce(site, None, self.hub.lastEpoch[site], [ident])
        self.assignOrphans()

    @precondition(lambda self: self.believedMasters())
    @rule(
        data=st.data(),
        state=st.one_of(st.none(), st.sampled_from([UP, DOWN])),
        rtt=st.one_of(st.none(), st.sampled_from([0.1, 0.2])),
        services=st.one_of(st.none(), partialServices, fullServices.map(lambda s: (s,))),
    )
    def record(self, data: st.DataObject, state: Optional[str], rtt: Optional[float], services: Any) -> None:
        """
        A core that believes itself master records what its site said (a
        MEP delta, merged, or a MEP snapshot, replacing) and propagates the
        delta.  A deposed master that does not know it yet does this too.
        """
        ident, site = data.draw(st.sampled_from(self.believedMasters()), label="master")
        replace = isinstance(services, tuple)
        if replace:
            services = services[0]
        self.propagate(ident, site, state=state, rtt=rtt, services=services, replace=replace)

    @precondition(lambda self: self.believedMasters() and len(self.alive) > 1)
    @rule(data=st.data())
    def resendSnapshot(self, data: st.DataObject) -> None:
        """A master sends its snapshot of a site to another core."""
        ident, site = data.draw(st.sampled_from(self.believedMasters()), label="master")
        receiver = data.draw(st.sampled_from(sorted(self.alive - {ident})), label="receiver")
        self.broadcastSnapshot(self.cores[ident], site, [receiver])

    @precondition(lambda self: any(self.queues.values()))
    @rule(data=st.data())
    def deliverOne(self, data: st.DataObject) -> None:
        """The next message of some sender reaches some core."""
        key = data.draw(st.sampled_from(sorted(key for key, queue in self.queues.items() if queue)), label="queue")
        self.deliver(*key)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def answerOne(self, data: st.DataObject) -> None:
        """A core's request for a snapshot reaches the core it asked."""
        self.answer(*data.draw(st.sampled_from(sorted(self.requests)), label="request"))

    @precondition(lambda self: self.queuesHeadedByDelta())
    @rule(data=st.data())
    def loseDelta(self, data: st.DataObject) -> None:
        """
        A delta is lost on its way (not a lossless pipe's behaviour, but the
        case base_seq exists for): the receiver sees a gap at the next one.
        """
        key = data.draw(st.sampled_from(self.queuesHeadedByDelta()), label="queue")
        self.queues[key].popleft()
        self.lost = True

    def queuesHeadedByDelta(self) -> list[tuple[int, int]]:
        return sorted(key for key, queue in self.queues.items() if queue and isinstance(queue[0], Delta))

    @rule()
    def quiesce(self) -> None:
        """Everything in flight arrives; then every core agrees."""
        self.settle()
        self.checkConverged()

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def oneLiveHolderPerSite(self) -> None:
        """The hub's holder of a site is one live core, with the site's latest epoch."""
        for site, claim in self.hub.claims.items():
            assert claim.core in self.alive, (site, claim)
            assert claim.epoch == self.hub.lastEpoch.get(site)
            assert self.grants[(site, claim.epoch)] == claim.core

    @invariant()
    def epochsNeverDecrease(self) -> None:
        """In the hub and in every live core's view (for the life of that incarnation)."""
        for site, epoch in self.hub.lastEpoch.items():
            assert epoch >= self.hubEpochs.get(site, 0)
            self.hubEpochs[site] = epoch
        for ident in self.alive:
            view = self.cores[ident].view
            for site in self.sites:
                epoch = view.epochs.get(site, 0)
                assert epoch >= self.seenEpochs.get((ident, site), 0), (ident, site)
                self.seenEpochs[(ident, site)] = epoch

    @invariant()
    def viewsNameOnlyGrantedMasters(self) -> None:
        """
        Every master a view names is the core the hub granted that epoch to,
        so two cores that believe themselves master of a site never share an
        epoch, and at most one holds the hub's current one.
        """
        for ident in self.alive:
            for site in self.sites:
                master = self.cores[ident].view.master(site)
                if master is not None:
                    assert self.grants[(site, master[1])] == master[0], (ident, site, master)
        for site in self.sites:
            latest = self.hub.lastEpoch.get(site)
            current = [
                ident
                for ident, masterSite in self.believedMasters()
                if masterSite == site and self.cores[ident].view.master(site)[1] == latest
            ]
            assert len(current) <= 1, (site, current)

    @invariant()
    def versionsNeverGoBack(self) -> None:
        """
        A live core's (epoch, seq) for a site only rises; its table never runs
        ahead of its view; a master's table is at the epoch its view says.
        """
        for ident in self.alive:
            core = self.cores[ident]
            for site in self.sites:
                version = core.table[site].version()
                assert version >= self.versions.get((ident, site), (0, 0)), (ident, site, version)
                self.versions[(ident, site)] = version
                assert version[0] <= core.view.epochs.get(site, 0)
                if core.view.isMaster(site, ident):
                    assert version[0] == core.view.master(site)[1]

    def checkConverged(self) -> None:
        """
        Liveness, once nothing is in flight: every live core knows the hub's
        master of every site, and holds exactly that master's metrics and
        version for it.
        """
        assert not self.requests and not any(self.queues.values())
        for site in self.sites:
            holder = self.hub.holder(site)
            for ident in sorted(self.alive):
                core = self.cores[ident]
                if holder is None:
                    assert core.view.master(site) is None, (ident, site)
                    continue
                assert core.view.master(site) == (holder.core, holder.epoch), (ident, site, holder)
                master = self.cores[holder.core].table
                assert core.table[site].version() == master[site].version(), (ident, site)
                assert core.table[site].version()[0] == holder.epoch
                assert content(core.table, site) == content(master, site), (ident, site)

    def teardown(self) -> None:
        if self.cores:
            self.settle()
            self.checkConverged()


class PropagationTests(SynchronousTestCase):
    def test_protocol(self) -> None:
        """
        L{PropagationMachine}: never two masters, never a stale update
        applied, every core converges on its master's metrics.
        """
        run_state_machine_as_test(
            PropagationMachine,
            settings=settings(deterministic, max_examples=200, stateful_step_count=60),
        )
