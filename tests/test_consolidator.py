"""
Tests for L{gslb_twisted.consolidator}: the arithmetic of counter
consolidation, as pure functions and objects.

L{ConsolidationMachine} is the model of the whole exchange: several cores
(incarnations, a respawned core being a new incarnation of the same core
id) count, report (L{CoreCounters.report}), the control core merges what
reaches it (L{Consolidation.merge}), closes rounds that replicas apply
(L{Consolidation.applyRound}) and that acknowledge reports
(L{CoreCounters.acknowledged}); reports, rounds and acknowledgements are
lost, duplicated, reordered or late; cores die; the control core fails over
to a replica, which continues from what it applied.  The property: once
every live core has reported once more and that report is merged, the
control's totals are, per counter, the sum of

  - every increment of every live incarnation, and
  - for a dead incarnation, its increments up to its last report that
    reached the control (merged into it, or into a control whose rounds it
    applied before taking over),

and never more than the true sum of increments at any time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.consolidator import Consolidation, CoreCounters, counterKey, splitKey, sumReports

# Reproducible runs, as elsewhere in the suite: no example database, no clock.
deterministic = settings(derandomize=True, deadline=None, database=None)

HITS = counterKey("vserver", "www", "hits")
QUERIES = counterKey("dns", "-", "queries")
ANSWERS = counterKey("service", "web1", "answers")
KEYS = [HITS, QUERIES, ANSWERS]


def _nonZero(values: dict) -> dict:
    return {key: value for key, value in values.items() if value}


def _sumValues(tables) -> dict:
    totals: dict[str, int] = {}
    for values in tables:
        for key, value in values.items():
            totals[key] = totals.get(key, 0) + value
    return _nonZero(totals)


# --- keys --------------------------------------------------------------------------------


class CounterKeyTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        self.assertEqual(splitKey(counterKey("vserver", "www", "hits")), ("vserver", "www", "hits"))

    @deterministic
    @given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\t"), min_size=1), min_size=3, max_size=3))
    def test_roundTripAnyName(self, parts: list[str]) -> None:
        self.assertEqual(splitKey(counterKey(*parts)), tuple(parts))


# --- one core's side ---------------------------------------------------------------------


class CoreCountersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.counters = CoreCounters("0/100")

    def test_firstReportCarriesEverything(self) -> None:
        """Every non-zero counter, with the incarnation and seq 1."""
        report = self.counters.report({HITS: 3, QUERIES: 0, ANSWERS: 2})
        self.assertEqual(report, {"incarnation": "0/100", "seq": 1, "values": {HITS: 3, ANSWERS: 2}})

    def test_unacknowledgedRepeated(self) -> None:
        """Without an acknowledgement a report carries the same counters again."""
        self.counters.report({HITS: 3})
        self.assertEqual(self.counters.report({HITS: 3})["values"], {HITS: 3})

    def test_acknowledgedLeftOut(self) -> None:
        """An acknowledged counter is left out until it changes."""
        first = self.counters.report({HITS: 3, QUERIES: 5})
        self.counters.acknowledged(first["seq"])
        self.assertEqual(self.counters.report({HITS: 3, QUERIES: 5})["values"], {})
        self.assertEqual(self.counters.report({HITS: 4, QUERIES: 5})["values"], {HITS: 4})

    def test_acknowledgementCoversEarlierReports(self) -> None:
        """Acknowledging seq 2 acknowledges what seq 1 carried too."""
        self.counters.report({HITS: 3})
        second = self.counters.report({HITS: 3, QUERIES: 1})
        self.counters.acknowledged(second["seq"])
        self.assertEqual(self.counters.report({HITS: 3, QUERIES: 1})["values"], {})

    def test_lateAcknowledgementOfOlderReport(self) -> None:
        """
        Acknowledging an older report (its values smaller than what was
        sent since) only leaves out what still has the acknowledged value.
        """
        self.counters.report({HITS: 3})
        self.counters.report({HITS: 5})
        self.counters.acknowledged(1)
        self.assertEqual(self.counters.report({HITS: 5})["values"], {HITS: 5})

    def test_acknowledgementAfterNewerOneIgnored(self) -> None:
        self.counters.report({HITS: 3})
        self.counters.report({HITS: 5})
        self.counters.acknowledged(2)
        self.counters.acknowledged(1)
        self.assertEqual(self.counters.report({HITS: 5})["values"], {})

    def test_seqIncreases(self) -> None:
        seqs = [self.counters.report({HITS: n})["seq"] for n in range(40)]
        self.assertEqual(seqs, list(range(1, 41)))


# --- the merged table --------------------------------------------------------------------


def _report(incarnation: str, seq: int, values: dict) -> dict:
    return {"incarnation": incarnation, "seq": seq, "values": dict(values)}


class ConsolidationTests(SynchronousTestCase):
    def test_mergeSums(self) -> None:
        consolidation = Consolidation()
        self.assertEqual(consolidation.merge(_report("0/1", 1, {HITS: 3})), {"0/1": {HITS: 3}})
        consolidation.merge(_report("1/2", 1, {HITS: 4, QUERIES: 1}))
        self.assertEqual(consolidation.totals, {HITS: 7, QUERIES: 1})
        self.assertEqual(consolidation.total(HITS), 7)
        self.assertEqual(consolidation.total(ANSWERS), 0)
        self.assertEqual(consolidation.perIncarnation(HITS), {"0/1": 3, "1/2": 4})
        self.assertEqual(consolidation.lastSeq, {"0/1": 1, "1/2": 1})

    def test_cumulativeValuesReplace(self) -> None:
        """A later report's value replaces the earlier one: it is cumulative."""
        consolidation = Consolidation()
        consolidation.merge(_report("0/1", 1, {HITS: 3}))
        self.assertEqual(consolidation.merge(_report("0/1", 2, {HITS: 5})), {"0/1": {HITS: 5}})
        self.assertEqual(consolidation.totals, {HITS: 5})

    def test_duplicateChangesNothing(self) -> None:
        consolidation = Consolidation()
        consolidation.merge(_report("0/1", 1, {HITS: 3}))
        self.assertEqual(consolidation.merge(_report("0/1", 1, {HITS: 3})), {})
        self.assertEqual(consolidation.totals, {HITS: 3})

    def test_lateReportChangesNothing(self) -> None:
        """An older report arriving after a newer one: no change, lastSeq kept."""
        consolidation = Consolidation()
        consolidation.merge(_report("0/1", 2, {HITS: 5}))
        self.assertEqual(consolidation.merge(_report("0/1", 1, {HITS: 3})), {})
        self.assertEqual(consolidation.totals, {HITS: 5})
        self.assertEqual(consolidation.lastSeq, {"0/1": 2})

    def test_deadIncarnationKept(self) -> None:
        """A respawned core is a new incarnation: the old one's counts stay."""
        consolidation = Consolidation()
        consolidation.merge(_report("0/1", 1, {HITS: 5}))
        consolidation.merge(_report("0/2", 1, {HITS: 2}))
        self.assertEqual(consolidation.totals, {HITS: 7})

    def test_select(self) -> None:
        consolidation = Consolidation()
        consolidation.merge(_report("0/1", 1, {HITS: 5, QUERIES: 3, counterKey("vserver", "api", "hits"): 1}))
        self.assertEqual(consolidation.select("vserver"), {"www": {"hits": 5}, "api": {"hits": 1}})
        self.assertEqual(consolidation.select("vserver", "api"), {"api": {"hits": 1}})
        self.assertEqual(consolidation.select("dns"), {"-": {"queries": 3}})

    def test_applyRoundTwice(self) -> None:
        """Applying a round again changes neither the table nor the rates."""
        replica = Consolidation()
        replica.applyRound(1, {"0/1": {HITS: 3}}, {"0/1": 1}, 10.0)
        replica.applyRound(2, {"0/1": {HITS: 8}}, {"0/1": 2}, 11.0)
        before = (dict(replica.totals), replica.round, replica.roundAt, dict(replica.previousTotals), replica.previousAt)
        replica.applyRound(2, {"0/1": {HITS: 8}}, {"0/1": 2}, 11.0)
        replica.applyRound(1, {"0/1": {HITS: 3}}, {"0/1": 1}, 10.0)
        after = (dict(replica.totals), replica.round, replica.roundAt, dict(replica.previousTotals), replica.previousAt)
        self.assertEqual(after, before)
        self.assertEqual(replica.lastSeq, {"0/1": 2})

    def test_snapshotRoundTrip(self) -> None:
        control = Consolidation()
        control.merge(_report("0/1", 3, {HITS: 5}))
        control.merge(_report("1/2", 1, {QUERIES: 2}))
        control.closeRound(4, 20.0)
        joiner = Consolidation()
        joiner.applySnapshot(control.snapshot())
        self.assertEqual(joiner.table, control.table)
        self.assertEqual(joiner.totals, control.totals)
        self.assertEqual(joiner.lastSeq, control.lastSeq)
        self.assertEqual((joiner.round, joiner.roundAt), (4, 20.0))
        # Applying it again, or an older round, changes nothing.
        joiner.applySnapshot(control.snapshot())
        joiner.applyRound(3, {"0/1": {HITS: 4}}, {"0/1": 2}, 19.0)
        self.assertEqual(joiner.totals, {HITS: 5, QUERIES: 2})
        self.assertEqual(joiner.lastSeq, {"0/1": 3, "1/2": 1})


class RateTests(SynchronousTestCase):
    """
    L{Consolidation.rate}: the difference of the totals of the last two
    rounds over the time between them.
    """

    def test_noRateBeforeTwoRounds(self) -> None:
        replica = Consolidation()
        self.assertIsNone(replica.rate(HITS))
        replica.applyRound(1, {"0/1": {HITS: 10}}, {"0/1": 1}, 1.0)
        self.assertIsNone(replica.rate(HITS))

    def test_rateOnReplica(self) -> None:
        """
        Round 1 (at 1.0) brings HITS to 10, round 2 (at 3.0) to 30: the rate
        is (30 - 10) / (3.0 - 1.0) = 10 per second.
        """
        replica = Consolidation()
        replica.applyRound(1, {"0/1": {HITS: 10}}, {"0/1": 1}, 1.0)
        replica.applyRound(2, {"0/1": {HITS: 30}}, {"0/1": 2}, 3.0)
        self.assertEqual(replica.previousTotals, {HITS: 10})
        self.assertEqual(replica.rate(HITS), 10.0)

    def test_rateOnControl(self) -> None:
        """The same on the control core: merges, then the round is closed."""
        control = Consolidation()
        control.merge(_report("0/1", 1, {HITS: 10}))
        control.closeRound(1, 1.0)
        control.merge(_report("0/1", 2, {HITS: 30}))
        control.closeRound(2, 3.0)
        self.assertEqual(control.rate(HITS), 10.0)

    def test_rateNotMovedByMergesOfOpenRound(self) -> None:
        """
        A report merged into the round still open (the control core merges
        its own report as soon as it opens a round) does not change the rate,
        which is measured between closed rounds.
        """
        control = Consolidation()
        control.merge(_report("0/1", 1, {HITS: 10}))
        control.closeRound(1, 1.0)
        control.merge(_report("0/1", 2, {HITS: 30}))
        control.closeRound(2, 3.0)
        control.merge(_report("0/1", 3, {HITS: 100}))
        self.assertEqual(control.rate(HITS), 10.0)

    @settings(deterministic, max_examples=200)
    @given(
        st.lists(
            st.tuples(
                st.dictionaries(st.sampled_from(["0/1", "1/2", "2/3"]), st.dictionaries(st.sampled_from(KEYS), st.integers(0, 50))),
                st.integers(1, 10),
            ),
            min_size=2,
            max_size=8,
        )
    )
    def test_rateIsDeltaOverInterval(self, rounds) -> None:
        """
        Whatever the rounds, after each one from the second the rate of every
        counter, on the control and on a replica, is (totals of this round -
        totals of the previous one) / (time between them).
        """
        control = Consolidation()
        replica = Consolidation()
        cumulative: dict[str, dict[str, int]] = {}
        seqs: dict[str, int] = {}
        at = 0.0
        closed: list[tuple[float, dict]] = []
        for number, (increments, dt) in enumerate(rounds, 1):
            pending: dict[str, dict[str, int]] = {}
            for incarnation, values in increments.items():
                mine = cumulative.setdefault(incarnation, {})
                for key, n in values.items():
                    mine[key] = mine.get(key, 0) + n
                seqs[incarnation] = seqs.get(incarnation, 0) + 1
                for changed, grown in control.merge(_report(incarnation, seqs[incarnation], _nonZero(mine))).items():
                    pending.setdefault(changed, {}).update(grown)
            at += dt
            control.closeRound(number, at)
            replica.applyRound(number, pending, dict(control.lastSeq), at)
            closed.append((at, dict(control.totals)))
            if len(closed) < 2:
                continue
            (previousAt, previous), (lastAt, last) = closed[-2], closed[-1]
            for key in KEYS:
                expected = (last.get(key, 0) - previous.get(key, 0)) / (lastAt - previousAt)
                self.assertEqual(control.rate(key), expected, (number, key, "control"))
                self.assertEqual(replica.rate(key), expected, (number, key, "replica"))


# --- reports in any order ----------------------------------------------------------------


@st.composite
def _reportHistories(draw):
    """Per incarnation, a growing series of cumulative values and its reports."""
    reports = []
    finals: dict[str, dict[str, int]] = {}
    for incarnation in draw(st.sets(st.sampled_from(["0/1", "0/2", "1/3", "2/4"]), min_size=1)):
        values: dict[str, int] = {}
        for seq in range(1, draw(st.integers(1, 5)) + 1):
            for key in draw(st.sets(st.sampled_from(KEYS))):
                values[key] = values.get(key, 0) + draw(st.integers(1, 20))
            reports.append(_report(incarnation, seq, _nonZero(values)))
        finals[incarnation] = dict(values)
    return reports, finals


class SumReportsTests(SynchronousTestCase):
    @settings(deterministic, max_examples=300)
    @given(_reportHistories(), st.randoms(use_true_random=False))
    def test_anyOrderAnyDuplicates(self, history, random) -> None:
        """
        Reports merged in any order, some of them several times: the totals
        are the sum over incarnations of their last (largest) values.
        """
        reports, finals = history
        shuffled = reports + random.sample(reports, random.randint(0, len(reports)))
        random.shuffle(shuffled)
        self.assertEqual(sumReports(shuffled), _sumValues(finals.values()))
        self.assertEqual(sumReports(reports), sumReports(shuffled))

    def test_empty(self) -> None:
        self.assertEqual(sumReports([]), {})


# --- the whole exchange as a state machine -----------------------------------------------


@dataclass
class Incarnation:
    """A core process: what it really counted, and the model of its reports."""

    name: str
    core: int
    counters: CoreCounters
    true: dict = field(default_factory=dict)
    alive: bool = True
    # seq -> the true values when that report was made.
    reported: dict = field(default_factory=lambda: {0: {}})
    acks: list = field(default_factory=list)


@dataclass
class Round:
    number: int
    changes: dict
    acks: dict
    at: float
    # What the control knew (per incarnation, the seq of the last report it
    # had merged) when it closed this round.
    known: dict


@dataclass
class Holder:
    """A Consolidation (the control's table or a replica) and what it knows."""

    consolidation: Consolidation
    known: dict = field(default_factory=dict)
    inbox: list = field(default_factory=list)
    applied: list = field(default_factory=list)


def _learn(known: dict, more: dict) -> None:
    for incarnation, seq in more.items():
        known[incarnation] = max(known.get(incarnation, 0), seq)


class ConsolidationMachine(RuleBasedStateMachine):
    """
    Cores counting and reporting, a control merging and closing rounds, two
    replicas applying them, every message lost, duplicated, reordered or
    late, deaths, respawns and control failovers (see the module docstring
    for the property checked).
    """

    cores = [0, 1, 2]

    def __init__(self) -> None:
        super().__init__()
        self.names = itertools.count(100)
        self.incarnations: dict[str, Incarnation] = {}
        self.current: dict[int, Incarnation] = {}
        for core in self.cores:
            self._spawn(core)
        self.control = Holder(Consolidation())
        self.standbys = [Holder(Consolidation()), Holder(Consolidation())]
        self.pending: dict[str, dict[str, int]] = {}
        self.inFlight: list[dict] = []
        # Reports the current control merged, to deliver again.
        self.merged: list[dict] = []
        self.now = 0.0
        self.failovers = 0

    def _spawn(self, core: int) -> None:
        name = f"{core}/{next(self.names)}"
        incarnation = Incarnation(name, core, CoreCounters(name))
        self.incarnations[name] = incarnation
        self.current[core] = incarnation

    def _live(self) -> list[Incarnation]:
        return [self.current[core] for core in self.cores if self.current[core].alive]

    def _expected(self, known: dict) -> dict:
        return _sumValues(
            self.incarnations[name].reported[seq] for name, seq in known.items()
        )

    def _merge(self, report: dict) -> None:
        incarnation = self.incarnations[report["incarnation"]]
        for name, grown in self.control.consolidation.merge(report).items():
            self.pending.setdefault(name, {}).update(grown)
        _learn(self.control.known, {incarnation.name: report["seq"]})
        self.merged.append(report)

    def _close(self, dt: float) -> Round:
        consolidation = self.control.consolidation
        self.now += dt
        closed = Round(
            consolidation.round + 1, self.pending, dict(consolidation.lastSeq), self.now, dict(self.control.known)
        )
        self.pending = {}
        consolidation.closeRound(closed.number, closed.at)
        for standby in self.standbys:
            standby.inbox.append(closed)
        for incarnation in self._live():
            if incarnation.name in closed.acks:
                incarnation.acks.append(closed.acks[incarnation.name])
        return closed

    @staticmethod
    def _apply(holder: Holder, closed: Round) -> None:
        holder.consolidation.applyRound(closed.number, closed.changes, closed.acks, closed.at)
        _learn(holder.known, closed.known)
        holder.applied.append(closed)

    # --- cores ------------------------------------------------------------------------

    @rule(core=st.sampled_from(cores), key=st.sampled_from(KEYS), n=st.integers(1, 10))
    def increment(self, core: int, key: str, n: int) -> None:
        incarnation = self.current[core]
        if incarnation.alive:
            incarnation.true[key] = incarnation.true.get(key, 0) + n

    @rule(core=st.sampled_from(cores))
    def report(self, core: int) -> None:
        incarnation = self.current[core]
        if incarnation.alive:
            report = incarnation.counters.report(dict(incarnation.true))
            incarnation.reported[report["seq"]] = dict(incarnation.true)
            self.inFlight.append(report)

    @rule(core=st.sampled_from(cores))
    def die(self, core: int) -> None:
        """The incarnation stops: what it did not report is lost with it."""
        self.current[core].alive = False
        self.current[core].acks.clear()

    @precondition(lambda self: any(not self.current[core].alive for core in self.cores))
    @rule(data=st.data())
    def respawn(self, data: st.DataObject) -> None:
        core = data.draw(st.sampled_from([core for core in self.cores if not self.current[core].alive]))
        self._spawn(core)

    @precondition(lambda self: any(incarnation.acks for incarnation in self.current.values()))
    @rule(data=st.data(), keep=st.booleans(), lose=st.booleans())
    def acknowledge(self, data: st.DataObject, keep: bool, lose: bool) -> None:
        """Any pending acknowledgement, lost, delivered, or delivered and kept for later."""
        incarnation = data.draw(st.sampled_from([i for i in self.current.values() if i.acks]))
        index = data.draw(st.integers(0, len(incarnation.acks) - 1))
        seq = incarnation.acks[index] if keep else incarnation.acks.pop(index)
        if not lose:
            incarnation.counters.acknowledged(seq)

    # --- the control core -------------------------------------------------------------

    @precondition(lambda self: self.inFlight)
    @rule(data=st.data(), keep=st.booleans())
    def deliverReport(self, data: st.DataObject, keep: bool) -> None:
        """Any report in flight (so in any order), possibly again later (a duplicate)."""
        index = data.draw(st.integers(0, len(self.inFlight) - 1))
        report = self.inFlight[index] if keep else self.inFlight.pop(index)
        self._merge(report)

    @precondition(lambda self: self.inFlight)
    @rule(data=st.data())
    def loseReport(self, data: st.DataObject) -> None:
        self.inFlight.pop(data.draw(st.integers(0, len(self.inFlight) - 1)))

    @precondition(lambda self: self.merged)
    @rule(data=st.data())
    def duplicateReport(self, data: st.DataObject) -> None:
        """A report the control already merged, delivered again: no change at all."""
        report = data.draw(st.sampled_from(self.merged))
        consolidation = self.control.consolidation
        before = (dict(consolidation.totals), {k: dict(v) for k, v in consolidation.table.items()}, dict(consolidation.lastSeq))
        assert consolidation.merge(report) == {}
        after = (dict(consolidation.totals), {k: dict(v) for k, v in consolidation.table.items()}, dict(consolidation.lastSeq))
        assert after == before

    @rule(dt=st.integers(1, 5))
    def closeRound(self, dt: int) -> None:
        self._close(float(dt))

    # --- replicas ---------------------------------------------------------------------

    @precondition(lambda self: any(standby.inbox for standby in self.standbys))
    @rule(data=st.data(), keep=st.booleans())
    def deliverRound(self, data: st.DataObject, keep: bool) -> None:
        """Any broadcast round to a replica, in any order, possibly again later."""
        standby = data.draw(st.sampled_from([s for s in self.standbys if s.inbox]))
        index = data.draw(st.integers(0, len(standby.inbox) - 1))
        closed = standby.inbox[index] if keep else standby.inbox.pop(index)
        self._apply(standby, closed)

    @precondition(lambda self: any(standby.applied for standby in self.standbys))
    @rule(data=st.data())
    def applyRoundAgain(self, data: st.DataObject) -> None:
        """A round a replica applied, applied again: nothing changes, rates included."""
        standby = data.draw(st.sampled_from([s for s in self.standbys if s.applied]))
        closed = data.draw(st.sampled_from(standby.applied))
        consolidation = standby.consolidation

        def state():
            return (
                dict(consolidation.totals),
                {k: dict(v) for k, v in consolidation.table.items()},
                dict(consolidation.lastSeq),
                consolidation.round,
                consolidation.roundAt,
                dict(consolidation.previousTotals),
                consolidation.previousAt,
            )

        before = state()
        consolidation.applyRound(closed.number, closed.changes, closed.acks, closed.at)
        assert state() == before

    @rule(data=st.data())
    def failover(self, data: st.DataObject) -> None:
        """
        The control core dies: a replica, once it has applied every round
        that was broadcast (late ones included), continues as control; a new
        replica joins from its snapshot.  Reports in flight to the old control
        may still arrive at the new one.
        """
        index = data.draw(st.integers(0, len(self.standbys) - 1))
        successor = self.standbys.pop(index)
        order = data.draw(st.permutations(range(len(successor.inbox))))
        for position in order:
            self._apply(successor, successor.inbox[position])
        successor.inbox = []
        self.control = successor
        self.pending = {}
        self.merged = []
        joiner = Holder(Consolidation())
        joiner.consolidation.applySnapshot(successor.consolidation.snapshot())
        _learn(joiner.known, successor.known)
        self.standbys.append(joiner)
        self.failovers += 1

    # --- what holds all along ---------------------------------------------------------

    @invariant()
    def neverMoreThanCounted(self) -> None:
        """No holder ever counts more than was counted, per incarnation or in total."""
        truth = _sumValues(incarnation.true for incarnation in self.incarnations.values())
        for holder in [self.control] + self.standbys:
            consolidation = holder.consolidation
            for name, values in consolidation.table.items():
                true = self.incarnations[name].true
                for key, value in values.items():
                    assert value <= true.get(key, 0), (name, key, value, true)
            assert _nonZero(consolidation.totals) == _sumValues(consolidation.table.values())
            for key, value in consolidation.totals.items():
                assert value <= truth.get(key, 0), (key, value, truth)

    @invariant()
    def controlHoldsWhatReachedIt(self) -> None:
        """The control's table is exactly the last report of each incarnation that reached it."""
        consolidation = self.control.consolidation
        for name, seq in self.control.known.items():
            expected = _nonZero(self.incarnations[name].reported[seq])
            assert _nonZero(consolidation.table.get(name, {})) == expected, (name, seq, consolidation.table.get(name), expected)
        assert _nonZero(consolidation.totals) == self._expected(self.control.known)

    def teardown(self) -> None:
        """
        Every live core reports once more and the control merges it (what
        was in flight is lost); a round closes and reaches every replica.
        """
        self.inFlight = []
        for incarnation in self._live():
            report = incarnation.counters.report(dict(incarnation.true))
            incarnation.reported[report["seq"]] = dict(incarnation.true)
            self._merge(report)
        self._close(1.0)
        expected = self._expected(self.control.known)
        # Live incarnations: every increment; dead ones: up to their last
        # report that reached the control.
        live = _sumValues(incarnation.true for incarnation in self._live())
        dead = self._expected({
            name: seq for name, seq in self.control.known.items() if not self.incarnations[name].alive
        })
        assert expected == _sumValues([live, dead]), (expected, live, dead)
        assert _nonZero(self.control.consolidation.totals) == expected, (self.control.consolidation.totals, expected)
        for standby in self.standbys:
            for closed in standby.inbox:
                self._apply(standby, closed)
            standby.inbox = []
            assert _nonZero(standby.consolidation.totals) == self._expected(standby.known)


class ConsolidationStatefulTests(SynchronousTestCase):
    def test_consolidationMachine(self) -> None:
        """L{ConsolidationMachine}: exactly-once totals through any interleaving."""
        run_state_machine_as_test(
            ConsolidationMachine,
            settings=settings(deterministic, max_examples=300, stateful_step_count=60),
        )
