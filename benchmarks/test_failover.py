"""
Tests for the pure parts of L{benchmarks.failover}: the site plan (both
directions of the lower-IP rule), the generated topology, choosing the
victim, deciding when a kill has failed over or respawned, judging
consistency, classifying DNS answers, and the CPU accounting.  Run with
C{.venv/bin/trial benchmarks}.  (They measure nothing and start no process.)
"""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import failover
from benchmarks.procstat import CLOCK_TICKS, ProcStat
from benchmarks.propagation_sites import APPLIANCE_IP, APPLIANCE_NAME
from gslb_twisted.config import loadTopology
from gslb_twisted.mastership import siteInitiates


class PlanTests(SynchronousTestCase):
    def test_halves(self) -> None:
        plans = failover.planSites(8)
        self.assertEqual([p.dials for p in plans], [True] * 4 + [False] * 4)
        self.assertEqual([p.ip for p in plans[:2]], ["127.0.1.1", "127.0.1.2"])
        self.assertEqual([p.ip for p in plans[4:6]], ["127.0.10.1", "127.0.10.2"])
        self.assertEqual(len({p.name for p in plans}), 8)

    def test_odd(self) -> None:
        """An odd count: the extra site dials."""
        self.assertEqual([p.dials for p in failover.planSites(3)], [True, True, False])

    def test_tooFew(self) -> None:
        self.assertRaises(ValueError, failover.planSites, 1)
        self.assertRaises(ValueError, failover.dialledAddress, 254)

    def test_down(self) -> None:
        plans = failover.planSites(8)
        self.assertEqual(failover.downSites(plans, 0), [])
        self.assertEqual(failover.downSites(plans, 1), ["site-004"])
        self.assertEqual(failover.downSites(plans, 2), ["site-004", "site-008"])
        self.assertRaises(ValueError, failover.downSites, plans, 3)

    def test_addresses(self) -> None:
        plans = failover.planSites(4)
        siteOf = failover.addressSites(plans, 2)
        self.assertEqual(len(siteOf), 8)
        self.assertEqual(sorted(set(siteOf.values())), [p.name for p in plans])

    def test_domains(self) -> None:
        domains = failover.vserverDomains(failover.planSites(2))
        self.assertEqual(domains, ["all.bench.gslb", "lc.bench.gslb", "site-001.bench.gslb", "site-002.bench.gslb"])


class TopologyTests(SynchronousTestCase):
    def load(self, plans, services=2):
        path = os.path.join(tempfile.mkdtemp(), "t.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(failover.failoverTopology(plans, services, 40123))
        return loadTopology(path)

    def test_loadsBothDirections(self) -> None:
        """The appliance itself sees half the sites dialling it and dials the others, on their own ports."""
        plans = [p if p.dials else failover.SitePlan(p.index, p.name, p.ip, False, 41000 + p.index)
                 for p in failover.planSites(8)]
        topology = self.load(plans)
        self.assertEqual((topology.appliance.ip, topology.appliance.name), (APPLIANCE_IP, APPLIANCE_NAME))
        for plan in plans:
            site = topology.siteByName[plan.name]
            self.assertEqual(siteInitiates(topology, site), plan.dials)
            self.assertEqual(site.mep_port, 40123 if plan.dials else 41000 + plan.index)

    def test_vservers(self) -> None:
        topology = self.load(failover.planSites(4), services=3)
        everything = topology.vserverByName["all"]
        self.assertEqual(len(everything.services), 12)
        self.assertEqual(everything.answers, 12)
        self.assertEqual(everything.lb_method, "ROUNDROBIN")
        self.assertEqual(topology.vserverByName["lc"].lb_method, "LEASTCONNECTION")
        for vserver in topology.vservers:
            if vserver.name != "www":
                self.assertEqual(vserver.down_response, "empty")
        self.assertEqual(len(topology.vserverByName["v-site-002"].services), 3)
        self.assertIn("www.bench.gslb", topology.vserverByName["www"].domains)


ROWS = [
    {"name": "anchor", "state": "UP", "master_core": 1, "epoch": 1},
    {"name": "site-001", "state": "UP", "master_core": 0, "epoch": 3},
    {"name": "site-002", "state": "UP", "master_core": 1, "epoch": 2},
    {"name": "site-003", "state": "UP", "master_core": 1, "epoch": 5},
    {"name": "site-004", "state": "DOWN", "master_core": None, "epoch": 1},
]
LIVE = ["site-001", "site-002", "site-003"]


class VictimTests(SynchronousTestCase):
    def test_most(self) -> None:
        self.assertEqual(failover.pickVictim(ROWS, LIVE, [0, 1]), (1, ["site-002", "site-003"]))

    def test_onlyListedSites(self) -> None:
        """The anchor and the sites down for good do not count."""
        byCore = failover.masteredBy(ROWS, LIVE)
        self.assertEqual(byCore, {0: ["site-001"], 1: ["site-002", "site-003"]})

    def test_tie(self) -> None:
        self.assertEqual(failover.pickVictim(ROWS, ["site-001", "site-002"], [0, 1]), (0, ["site-001"]))

    def test_onlyUpCores(self) -> None:
        self.assertEqual(failover.pickVictim(ROWS, LIVE, [0]), (0, ["site-001"]))
        self.assertRaises(ValueError, failover.pickVictim, ROWS, LIVE, [])


class FailedOverTests(SynchronousTestCase):
    before = {"site-002": 2, "site-003": 5}

    def rows(self, **changes):
        rows = [dict(row) for row in ROWS]
        for row in rows:
            row.update(changes.get(row["name"].replace("-", "_"), {}))
        return rows

    def test_pending(self) -> None:
        since = {"site-002": 1.0, "site-003": 1.0}
        self.assertEqual(failover.pendingFailover(ROWS, self.before, since, 2.0), ["site-002", "site-003"])

    def test_done(self) -> None:
        rows = self.rows(site_002={"epoch": 3, "master_core": 0}, site_003={"epoch": 6, "master_core": 0})
        since = {"site-002": 1.0, "site-003": 1.5}
        self.assertEqual(failover.pendingFailover(rows, self.before, since, 2.0), [])

    def test_needsUpMasterSession(self) -> None:
        since = {"site-002": 1.0, "site-003": 1.0}
        rows = self.rows(site_002={"epoch": 3, "master_core": None}, site_003={"epoch": 6, "state": "DOWN"})
        self.assertEqual(failover.pendingFailover(rows, self.before, since, 2.0), ["site-002", "site-003"])
        rows = self.rows(site_002={"epoch": 3, "master_core": 0}, site_003={"epoch": 6, "master_core": 0})
        # No new session on the site's side yet, or one seen only after the poll.
        self.assertEqual(failover.pendingFailover(rows, self.before, {"site-002": None, "site-003": 2.5}, 2.0),
                         ["site-002", "site-003"])

    def test_respawnedSlot(self) -> None:
        """A newer epoch under the victim's id is its replacement: failed over."""
        rows = self.rows(site_002={"epoch": 3, "master_core": 1}, site_003={"epoch": 6, "master_core": 0})
        self.assertEqual(failover.pendingFailover(rows, self.before, {"site-002": 1, "site-003": 1}, 2), [])

    def test_survivors(self) -> None:
        up = lambda epoch: {"state": "UP", "epoch": epoch}  # noqa: E731
        since = {"site-002": 1.0, "site-003": 1.0}
        held = {"site-002": [up(3), up(3)], "site-003": [up(6), up(5)]}
        self.assertEqual(failover.survivorsPending(held, self.before, since, 2.0), ["site-003"])
        held["site-003"] = [up(6), None]
        self.assertEqual(failover.survivorsPending(held, self.before, since, 2.0), ["site-003"])
        held["site-003"] = [up(6), up(6)]
        self.assertEqual(failover.survivorsPending(held, self.before, since, 2.0), [])
        self.assertEqual(failover.survivorsPending(held, self.before, {"site-002": 1.0}, 2.0), ["site-003"])

    def test_respawned(self) -> None:
        cores = [{"core": 0, "pid": 10, "state": "up"}, {"core": 1, "pid": 22, "state": "starting"}]
        self.assertEqual(failover.slotRespawned(cores, 1, 11), (False, cores[1]))
        cores[1]["state"] = "up"
        self.assertEqual(failover.slotRespawned(cores, 1, 11), (True, cores[1]))
        self.assertEqual(failover.slotRespawned(cores, 1, 22)[0], False)
        self.assertEqual(failover.slotRespawned([{"core": 1, "state": "down"}], 1, 11)[0], False)
        self.assertEqual(failover.slotRespawned(cores, 3, 11), (False, None))


class ConsistencyTests(SynchronousTestCase):
    def result(self, **sites):
        return {"consistent": False, "cores": [0, 1, 2],
                "sites": [{"site": name.replace("_", "-"), "versions": versions} for name, versions in sites.items()]}

    def test_consistent(self) -> None:
        result = {"consistent": True, "cores": [0, 1], "sites": [{"site": "a", "versions": {"0": [1, 2], "1": [1, 2]}}]}
        verdict = failover.consistencyVerdict(result, 1, {"a": 0}, ["a"])
        self.assertTrue(verdict["consistent"])
        self.assertEqual(verdict["missing"] + verdict["behind"] + verdict["orphans"] + verdict["others"], [])

    def test_kinds(self) -> None:
        result = self.result(
            a={"0": [2, 5], "1": None, "2": [2, 5]},      # respawned core 1 lacks it: missing
            b={"0": [3, 1], "1": [2, 9], "2": [3, 1]},    # older epoch: missing
            c={"0": [1, 7], "1": [1, 6], "2": [1, 7]},    # same epoch, lower seq: behind
            d={"0": [1, 3], "1": None, "2": [1, 3]},      # nobody masters it: orphan
            e={"0": [1, 3], "1": [1, 3], "2": [1, 2]},    # not the respawned core's doing
            f={"0": [1, 1], "1": [1, 1], "2": [1, 1]},
        )
        masters = {"a": 0, "b": 2, "c": 0, "d": None, "e": 0, "f": 0}
        verdict = failover.consistencyVerdict(result, 1, masters, list("abcdef"))
        self.assertFalse(verdict["consistent"])
        self.assertEqual([e["site"] for e in verdict["missing"]], ["a", "b"])
        self.assertEqual([e["site"] for e in verdict["behind"]], ["c"])
        self.assertEqual([e["site"] for e in verdict["orphans"]], ["d"])
        self.assertEqual([e["site"] for e in verdict["others"]], ["e"])


class AnswerTests(SynchronousTestCase):
    siteOf = {"198.18.0.1": "a", "198.18.0.2": "b"}

    def polls(self, *spec):
        return [failover.Poll(start, end, states) for start, end, states in spec]

    def test_wrong(self) -> None:
        polls = self.polls((0.0, 1.0, {"a": "DOWN", "b": "UP"}), (3.0, 4.0, {"a": "DOWN", "b": "UP"}))
        answers = [failover.Answer(1.5, 2.0, "all", "NOERROR", ("198.18.0.1", "198.18.0.2")),
                   failover.Answer(1.6, 2.1, "all", "NOERROR", ("198.18.0.2",))]
        verdict = failover.wrongAnswers(answers, polls, self.siteOf, {})
        self.assertEqual([(e["site"], e["address"]) for e in verdict["wrong"]], [("a", "198.18.0.1")])
        self.assertEqual(verdict["ambiguous"], [])

    def test_ambiguous(self) -> None:
        """DOWN before the query, UP after the answer: it may have come back meanwhile."""
        polls = self.polls((0.0, 1.0, {"a": "DOWN"}), (3.0, 4.0, {"a": "UP"}))
        verdict = failover.wrongAnswers([failover.Answer(1.5, 2.0, "all", "NOERROR", ("198.18.0.1",))],
                                        polls, self.siteOf, {})
        self.assertEqual((len(verdict["wrong"]), len(verdict["ambiguous"])), (0, 1))

    def test_pollsStraddling(self) -> None:
        """A poll that ends after the query was sent is not 'before'; one that starts before the answer is not 'after'."""
        polls = self.polls((0.0, 1.0, {"a": "UP"}), (1.2, 1.8, {"a": "DOWN"}), (1.9, 2.5, {"a": "DOWN"}))
        answer = failover.Answer(1.5, 2.0, "all", "NOERROR", ("198.18.0.1",))
        self.assertEqual(failover.wrongAnswers([answer], polls, self.siteOf, {})["wrong"], [])

    def test_noPollAfter(self) -> None:
        polls = self.polls((0.0, 1.0, {"a": "DOWN"}))
        verdict = failover.wrongAnswers([failover.Answer(1.5, 2.0, "all", "NOERROR", ("198.18.0.1",))],
                                        polls, self.siteOf, {})
        self.assertEqual(len(verdict["wrong"]), 1)

    def test_gone(self) -> None:
        answers = [failover.Answer(0.5, 0.6, "all", "NOERROR", ("198.18.0.2",)),
                   failover.Answer(1.5, 1.6, "all", "NOERROR", ("198.18.0.2", "192.0.2.10")),
                   failover.Answer(1.7, 2.2, "all", None)]
        verdict = failover.wrongAnswers(answers, [], self.siteOf, {"b": 1.0})
        self.assertEqual([e["sent"] for e in verdict["gone"]], [1.5])
        self.assertEqual(verdict["wrong"], [])


class FigureTests(SynchronousTestCase):
    def test_intervals(self) -> None:
        summary = {"n": 3, "p50": 0.5, "p99": 1.5, "mean": 1.0, "min": 0.25, "max": 1.5}
        units = failover.inIntervals(summary, 0.5)
        self.assertEqual(units["n"], 3)
        self.assertEqual((units["p50"], units["max"]), (1.0, 3.0))
        self.assertIsNone(failover.inIntervals(None, 1.0))

    def test_target(self) -> None:
        self.assertTrue(failover.targetVerdict([0.3, 2.0], 2.0))
        self.assertFalse(failover.targetVerdict([0.3, 2.01], 2.0))
        self.assertIsNone(failover.targetVerdict([], 2.0))

    def test_applianceCpu(self) -> None:
        """Processes in both samples by difference; a new one for its whole life; a dead one not at all."""
        def stat(pid, ticks, start):
            return ProcStat(pid, "p", "S", 1, ticks, start, 0)

        before = {1: stat(1, 100, 5), 2: stat(2, 50, 6)}
        after = {1: stat(1, 100 + CLOCK_TICKS, 5), 3: stat(3, CLOCK_TICKS // 2, 90)}
        self.assertAlmostEqual(failover.applianceCpu(before, after, 2.0), 50.0 + 25.0)
        # A pid reused by another process is a new process.
        after = {2: stat(2, CLOCK_TICKS, 99)}
        self.assertAlmostEqual(failover.applianceCpu(before, after, 1.0), 100.0)
        self.assertEqual(failover.applianceCpu(before, after, 0), 0.0)

    def test_pollResolution(self) -> None:
        kills = [failover.Kill(1, 0, 1, [], pollRtt={"p50": 0.002, "p99": 0.9},
                               coresPollRtt={"p50": 0.001, "p99": 0.004}),
                 failover.Kill(2, 1, 2, [], pollRtt={"p50": 0.004, "p99": 0.5})]
        resolution = failover.pollResolution(kills)
        self.assertEqual(resolution["sites"], {"p50": 0.002, "p99": 0.9})
        self.assertEqual(resolution["cores"], {"p50": 0.001, "p99": 0.004})
        self.assertNotIn("metrics", resolution)
        self.assertIsNone(failover.pollResolution([]))


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = failover.parseArguments([])
        self.assertEqual((options.repeat, options.cores, options.sites, options.down), (20, [2, 4], 8, 2))

    def test_arguments(self) -> None:
        options = failover.parseArguments(["--repeat", "3", "--cores", "4", "--sites", "6", "--down", "1"])
        self.assertEqual((options.repeat, options.cores, options.sites, options.down), (3, [4], 6, 1))
