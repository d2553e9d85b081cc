"""
Tests for L{gslb_twisted.core.stats}: the consolidation round protocol
between L{CoreStats} of three cores, wired through L{FakeHub} (the
supervisor's hub in memory: every published message reaches the other
cores, in order per sender, except the ones a test drops, duplicates or
holds back) and driven by a L{Clock}.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Callable, Optional

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.consolidator import counterKey
from gslb_twisted.core.stats import (
    TOPIC_CONSOLIDATED,
    TOPIC_CONTROL,
    TOPIC_REPORT,
    TOPIC_ROUND,
    TOPIC_SNAPSHOT,
    TOPIC_SNAPSHOT_REQUEST,
    CoreStats,
)

HITS = counterKey("vserver", "www", "hits")
QUERIES = counterKey("dns", "-", "queries")
ANSWERS = counterKey("service", "web1", "answers")

INTERVAL = 2.0
SUPERVISOR = -1


class FakeHub:
    """
    The hub in memory.  C{publish} queues a message for every other member
    (or for C{target} alone), C{pump} delivers the queue in order, each
    message decoded as L{gslb_twisted.core.gslb.CoreGSLB.delivered} does.

    C{intercept(action, topic, sender=None, target=None, times=1)} applies
    C{action} to the next C{times} matching deliveries: C{"drop"},
    C{"duplicate"} (delivered twice in a row) or C{"hold"} (kept until
    C{release}, then delivered late).

    @ivar log: C{(sender, target, topic, message)} of every delivery made.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.members: dict[int, CoreStats] = {}
        self.queue: deque = deque()
        self.held: list = []
        self.log: list = []
        self.rules: list = []

    def join(self, core: int, incarnation: str, collect: Callable[[], dict], interval: float = INTERVAL) -> CoreStats:
        stats = CoreStats(
            self.clock, core, incarnation, interval, collect,
            lambda topic, body, target=None: self.publish(core, topic, body, target),
        )
        self.members[core] = stats
        return stats

    def remove(self, core: int) -> None:
        """The core's process dies: it stops, and nothing more reaches it."""
        self.members.pop(core).stop()

    def publish(self, sender: int, topic: str, body: bytes, target: Optional[int] = None) -> None:
        if target is not None:
            destinations = [target] if target in self.members and target != sender else []
        else:
            destinations = [core for core in sorted(self.members) if core != sender]
        for core in destinations:
            self._route((sender, core, topic, body))

    def announce(self, serving) -> None:
        """The supervisor's C{stats.control} to every member."""
        body = json.dumps({"serving": list(serving)}).encode()
        for core in sorted(self.members):
            self._route((SUPERVISOR, core, TOPIC_CONTROL, body))
        self.pump()

    def intercept(self, action: str, topic: str, sender: Optional[int] = None, target: Optional[int] = None, times: int = 1) -> None:
        self.rules.append([action, topic, sender, target, times])

    def _route(self, delivery: tuple) -> None:
        sender, target, topic, body = delivery
        for rule in self.rules:
            action, ruleTopic, ruleSender, ruleTarget, times = rule
            if times and topic == ruleTopic and ruleSender in (None, sender) and ruleTarget in (None, target):
                rule[4] -= 1
                if action == "drop":
                    return
                if action == "hold":
                    self.held.append(delivery)
                    return
                if action == "duplicate":
                    self.queue.append(delivery)
                break
        self.queue.append(delivery)

    def release(self) -> None:
        """Deliver the held messages now (late)."""
        self.queue.extend(self.held)
        self.held = []
        self.pump()

    def pump(self) -> None:
        while self.queue:
            sender, target, topic, body = self.queue.popleft()
            if target in self.members:
                message = json.loads(body)
                self.log.append((sender, target, topic, message))
                self.members[target].delivered(sender, topic, message)

    def sent(self, topic: str, sender: Optional[int] = None) -> list:
        """The distinct messages of C{topic} (from C{sender}) delivered, in order."""
        seen = []
        for who, _, what, message in self.log:
            if what == topic and sender in (None, who) and (who, message) not in seen:
                seen.append((who, message))
        return [message for _, message in seen]


def _sum(*tables: dict) -> dict:
    totals: dict[str, int] = {}
    for table in tables:
        for key, value in table.items():
            if value:
                totals[key] = totals.get(key, 0) + value
    return totals


class RoundsTestCase(SynchronousTestCase):
    """Three cores, 0, 1 and 2, each counting in C{self.counts[core]}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = FakeHub(self.clock)
        self.counts: dict[str, dict[str, int]] = {}
        self.cores: dict[int, CoreStats] = {}
        for core in (0, 1, 2):
            self.spawn(core, f"{core}/1")
        self.hub.pump()

    def tearDown(self) -> None:
        for core in list(self.hub.members):
            self.hub.remove(core)

    def spawn(self, core: int, incarnation: str) -> CoreStats:
        counts = self.counts[incarnation] = {}
        stats = self.cores[core] = self.hub.join(core, incarnation, lambda: dict(counts))
        stats.start()
        return stats

    def count(self, core: int, key: str, n: int) -> None:
        counts = self.counts[self.cores[core].incarnation]
        counts[key] = counts.get(key, 0) + n

    def advance(self, intervals: int = 1, each: Optional[Callable[[], None]] = None) -> None:
        for _ in range(intervals):
            if each is not None:
                each()
            self.clock.advance(INTERVAL)
            self.hub.pump()

    def everywhere(self, expected: dict, cores=None) -> None:
        """Every (given) live core's replica has exactly these totals."""
        for core in cores if cores is not None else sorted(self.hub.members):
            self.assertEqual(self.hub.members[core].consolidation.totals, expected, f"core {core}")

    def busy(self) -> None:
        self.count(0, HITS, 5)
        self.count(0, QUERIES, 7)
        self.count(1, HITS, 11)
        self.count(2, HITS, 13)
        self.count(2, ANSWERS, 3)


class ControlTests(RoundsTestCase):
    def test_lowestServingLeads(self) -> None:
        """
        The lowest serving core leads the rounds, as announced by the
        supervisor (sender -1): only it publishes C{stats.round}.
        """
        self.hub.announce([2, 1])
        self.assertEqual([self.cores[core].control for core in (0, 1, 2)], [1, 1, 1])
        self.advance(3)
        self.assertEqual({who for who, _, topic, _ in self.hub.log if topic == TOPIC_ROUND}, {1})
        self.assertEqual(self.cores[1].roundsLed, 2)
        self.assertEqual(self.cores[0].roundsLed + self.cores[2].roundsLed, 0)

        self.hub.announce([0, 1, 2])
        self.assertEqual([self.cores[core].control for core in (0, 1, 2)], [0, 0, 0])
        self.hub.log = []
        self.advance(3)
        self.assertEqual({who for who, _, topic, _ in self.hub.log if topic in (TOPIC_ROUND, TOPIC_CONSOLIDATED)}, {0})

    def test_noServingCoreNoRounds(self) -> None:
        self.hub.announce([])
        self.assertEqual([self.cores[core].control for core in (0, 1, 2)], [None, None, None])
        self.advance(3)
        self.assertEqual([entry for entry in self.hub.log if entry[2] == TOPIC_ROUND], [])

    def test_reportsGoToControl(self) -> None:
        """Every core answers a round with a report to the control core alone."""
        self.hub.announce([0, 1, 2])
        self.advance(1)
        reports = [(sender, target) for sender, target, topic, _ in self.hub.log if topic == TOPIC_REPORT]
        self.assertEqual(sorted(reports), [(1, 0), (2, 0)])


class TotalsTests(RoundsTestCase):
    def test_totalsAfterTwoIntervals(self) -> None:
        """After two intervals every core holds the sum of every core's counters."""
        self.busy()
        self.hub.announce([0, 1, 2])
        self.advance(2)
        self.everywhere(_sum(*self.counts.values()))
        self.assertEqual(self.everywhereRound(), {1})
        view = self.cores[2].view()
        self.assertEqual(view["totals"], _sum(*self.counts.values()))
        self.assertEqual(view["cores"], {str(core): self.counts[f"{core}/1"] for core in (0, 1, 2)})
        self.assertEqual(view["control"], 0)

    def everywhereRound(self) -> set:
        return {stats.consolidation.round for stats in self.hub.members.values()}

    def test_countingGoesOn(self) -> None:
        """Rounds after rounds, the totals follow the counters, never ahead of them."""
        self.hub.announce([0, 1, 2])
        for _ in range(6):
            self.busy()
            self.advance(1)
            for stats in self.hub.members.values():
                for key, value in stats.consolidation.totals.items():
                    self.assertLessEqual(value, _sum(*self.counts.values())[key])
        self.advance(2)
        self.everywhere(_sum(*self.counts.values()))

    def test_lostReportRecoveredNextRound(self) -> None:
        """
        Core 2's report of round 1 is lost: round 1 closes without it, and
        round 2 brings it, counted once.
        """
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("drop", TOPIC_REPORT, sender=2)
        self.advance(2)
        # Round 1 closed without core 2 (the control core has already
        # merged core 2's report of round 2, still open).
        self.everywhere(_sum(self.counts["0/1"], self.counts["1/1"]), cores=[1, 2])
        self.advance(1)
        self.everywhere(_sum(*self.counts.values()))
        self.advance(3)
        self.everywhere(_sum(*self.counts.values()))

    def test_duplicatedReports(self) -> None:
        """Every report delivered twice: counted once."""
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("duplicate", TOPIC_REPORT, times=100)
        for _ in range(4):
            self.busy()
            self.advance(1)
        self.advance(1)
        self.everywhere(_sum(*self.counts.values()))

    def test_lateReport(self) -> None:
        """
        Core 1's report of round 1 is held back and arrives after its report
        of round 2 (larger values): no change, nothing counted twice.
        """
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("hold", TOPIC_REPORT, sender=1)
        self.advance(1)
        self.busy()
        self.advance(1)
        self.hub.release()
        self.advance(2)
        self.everywhere(_sum(*self.counts.values()))

    def test_duplicatedConsolidated(self) -> None:
        """
        A consolidated round delivered twice in a row, and once more late
        (after later rounds), changes nothing on the core that gets it.
        """
        self.busy()
        self.hub.announce([0, 1, 2])
        self.advance(1)
        self.hub.intercept("duplicate", TOPIC_CONSOLIDATED, target=2)
        self.advance(1)
        self.everywhere(_sum(*self.counts.values()))
        first = [message for _, target, topic, message in self.hub.log if topic == TOPIC_CONSOLIDATED and target == 2]
        self.assertEqual(len(first), 2)
        self.busy()
        self.advance(2)
        replica = self.cores[2].consolidation

        def state():
            return (
                dict(replica.totals), {k: dict(v) for k, v in replica.table.items()}, dict(replica.lastSeq),
                replica.round, replica.roundAt, dict(replica.previousTotals), replica.previousAt,
            )

        before = state()
        self.hub.queue.append((0, 2, TOPIC_CONSOLIDATED, json.dumps(first[0]).encode()))
        self.hub.pump()
        self.assertEqual(state(), before)
        self.everywhere(_sum(*self.counts.values()))

    def test_lateConsolidated(self) -> None:
        """Round 1's consolidated message reaches core 2 after round 2's: same totals."""
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("hold", TOPIC_CONSOLIDATED, target=2)
        self.advance(1)
        self.busy()
        self.advance(2)
        self.hub.release()
        self.everywhere(_sum(*self.counts.values()))
        self.assertEqual(self.cores[2].consolidation.round, self.cores[0].consolidation.round)

    def test_lostConsolidatedRecovered(self) -> None:
        """
        The consolidated message of round 1 is lost on its way to core 2
        (the counters stay still afterwards, so no later report carries them
        again): core 2's replica still comes to hold the totals.
        """
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("drop", TOPIC_CONSOLIDATED, target=2)
        self.advance(6)
        self.everywhere(_sum(*self.counts.values()))


class FailoverTests(RoundsTestCase):
    def rounds(self) -> list[int]:
        """Round numbers of the consolidated messages published, in order."""
        return [message["round"] for message in self.hub.sent(TOPIC_CONSOLIDATED)]

    def test_controlDies(self) -> None:
        """
        The control core dies: the next lowest takes over, round numbers go
        on increasing, and the totals are neither reset nor counted twice;
        the dead core keeps what it had reported.
        """
        self.hub.announce([0, 1, 2])
        self.busy()
        self.advance(3)
        everything = _sum(*self.counts.values())
        self.everywhere(everything)
        # Core 0 stops counting two rounds before it dies: what it had
        # reported then is what it counted.
        dead = dict(self.counts["0/1"])
        self.count(1, HITS, 1)
        self.count(2, QUERIES, 2)
        self.advance(2)
        self.hub.remove(0)
        self.hub.announce([1, 2])
        self.assertEqual([self.cores[1].control, self.cores[2].control], [1, 1])
        before = self.rounds()
        for _ in range(4):
            self.count(1, HITS, 3)
            self.count(2, ANSWERS, 4)
            self.advance(1)
        self.advance(2)
        after = self.rounds()[len(before):]
        self.assertTrue(after, "no round after the failover")
        self.assertEqual({message["control"] for message in self.hub.sent(TOPIC_ROUND)[-3:]}, {1})
        numbers = before + after
        self.assertEqual(numbers, sorted(set(numbers)), "round numbers must keep increasing")
        self.assertEqual(
            {stats.consolidation.round for stats in self.hub.members.values()}, {numbers[-1]}
        )
        self.everywhere(_sum(dead, self.counts["1/1"], self.counts["2/1"]))

    def test_controlDiesMidRound(self) -> None:
        """
        The control core dies just after opening a round (other cores'
        reports of it are lost with it): they report again to the new control.
        """
        self.hub.announce([0, 1, 2])
        self.busy()
        self.advance(2)
        dead = dict(self.counts["0/1"])
        self.count(1, HITS, 100)
        self.count(2, HITS, 200)
        self.clock.advance(INTERVAL)
        self.hub.pump()
        self.hub.remove(0)
        self.hub.announce([1, 2])
        self.advance(2)
        self.everywhere(_sum(dead, self.counts["1/1"], self.counts["2/1"]))

    def test_respawnedLowestCoreLeadsAgain(self) -> None:
        """
        Core 0 dies and comes back as a new incarnation: it gets the replica
        from the control core (core 1 by then), then, serving again, leads
        the rounds from there; the old incarnation's counts stay.
        """
        self.hub.announce([0, 1, 2])
        self.busy()
        self.advance(3)
        dead = dict(self.counts["0/1"])
        self.hub.remove(0)
        self.hub.announce([1, 2])
        self.busyWithout(0)
        self.advance(2)
        self.everywhere(_sum(dead, self.counts["1/1"], self.counts["2/1"]))
        reborn = self.spawn(0, "0/2")
        self.hub.pump()
        self.assertEqual(reborn.consolidation.totals, _sum(dead, self.counts["1/1"], self.counts["2/1"]))
        self.hub.announce([0, 1, 2])
        before = self.rounds()
        self.count(0, HITS, 17)
        self.busyWithout(0)
        self.advance(3)
        after = self.rounds()[len(before):]
        numbers = before + after
        self.assertEqual(numbers, sorted(set(numbers)), "round numbers must keep increasing")
        self.assertEqual(self.hub.sent(TOPIC_ROUND)[-1]["control"], 0)
        self.everywhere(_sum(dead, self.counts["0/2"], self.counts["1/1"], self.counts["2/1"]))

    def busyWithout(self, core: int) -> None:
        for other in (0, 1, 2):
            if other != core:
                self.count(other, HITS, 1 + other)

    def test_joiningCoreGetsReplica(self) -> None:
        """
        A core that joins asks for the replica (C{stats.snapshot-request}),
        the control core sends it (C{stats.snapshot}): it holds the totals at
        once, and follows the rounds from there.
        """
        self.hub.announce([0, 1])
        self.hub.remove(2)
        self.busyWithout(2)
        self.advance(3)
        self.hub.log = []
        joiner = self.spawn(2, "2/2")
        self.hub.pump()
        requests = [(s, t) for s, t, topic, _ in self.hub.log if topic == TOPIC_SNAPSHOT_REQUEST and s == 2]
        self.assertEqual(sorted(requests), [(2, 0), (2, 1)])
        snapshots = [(s, t) for s, t, topic, _ in self.hub.log if topic == TOPIC_SNAPSHOT]
        self.assertEqual(snapshots, [(0, 2)])
        self.assertEqual(joiner.consolidation.totals, self.cores[0].consolidation.totals)
        self.assertEqual(joiner.consolidation.totals, _sum(self.counts["0/1"], self.counts["1/1"], self.counts["2/1"]))
        self.assertEqual(joiner.consolidation.round, self.cores[0].consolidation.round)
        self.hub.announce([0, 1, 2])
        self.count(2, ANSWERS, 9)
        self.busyWithout(2)
        self.advance(2)
        self.everywhere(_sum(*self.counts.values()))

    def test_lostConsolidatedThenFailover(self) -> None:
        """
        Core 1 misses round 1's consolidated message; core 0 (which counted
        only before round 1) dies; core 1 takes over: core 0's counts must
        not vanish from the totals.
        """
        self.busy()
        self.hub.announce([0, 1, 2])
        self.hub.intercept("drop", TOPIC_CONSOLIDATED, target=1)
        self.advance(3)
        dead = dict(self.counts["0/1"])
        self.hub.remove(0)
        self.hub.announce([1, 2])
        self.advance(3)
        self.everywhere(_sum(dead, self.counts["1/1"], self.counts["2/1"]))


class RateTests(RoundsTestCase):
    def test_ratesAfterTwoRounds(self) -> None:
        """
        Before the k-th tick the cores count 10k, 20k and 30k hits (60k in
        all).  Round k opens at tick k (reports carry the counters then) and
        closes at tick k+1.  After tick 4 the last two closed rounds are 3 and
        2, whose totals differ by 60 * 3: every core's rate is
        180 / INTERVAL per second, however the control core's open round 4
        has grown since.
        """
        ticks = [0]

        def grow() -> None:
            ticks[0] += 1
            for core in (0, 1, 2):
                self.count(core, HITS, 10 * (core + 1) * ticks[0])

        self.hub.announce([0, 1, 2])
        self.advance(2, grow)
        for stats in self.hub.members.values():
            self.assertIsNone(stats.consolidation.rate(HITS))
        self.advance(2, grow)
        closed = self.hub.sent(TOPIC_CONSOLIDATED)
        self.assertEqual([message["round"] for message in closed], [1, 2, 3])
        self.assertEqual(closed[-1]["at"] - closed[-2]["at"], INTERVAL)
        for core, stats in sorted(self.hub.members.items()):
            self.assertEqual(stats.view()["interval"], INTERVAL, f"core {core}")
            self.assertEqual(stats.consolidation.rate(HITS), 180 / INTERVAL, f"core {core}")
