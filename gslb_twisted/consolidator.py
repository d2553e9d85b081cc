"""
Counter consolidation: per-core counters into appliance-wide ones, exactly
once, with plain objects and no reactor (the round protocol that moves them
lives in L{gslb_twisted.core.stats}).

Every counter a core keeps is I{cumulative} (it only grows) and belongs to
one I{incarnation} of that core (C{"core/pid"}: a respawned core is a new
incarnation, starting from zero).  A core reports the current value of the
counters that changed since its last acknowledged report; the control core
merges a report by taking, per counter, the larger of what it holds and what
the report says.  Because the values are cumulative, merging is idempotent
and order-free (a grow-only counter, as in CRDTs):

  - a report lost: the next one carries the same counters, larger;
  - a report duplicated or late: it merges to no change;
  - a core that dies: its incarnation's last reported values stay;
  - the control core dies: every core holds a replica of the merged table
    (each consolidated round carries the changes), so the next lowest core
    continues from its replica, neither resetting nor double counting.

Appliance-wide totals are the sum over incarnations; rates are the
difference between two rounds' totals over the time between them.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

Values = dict[str, int]


def counterKey(scope: str, name: str, counter: str) -> str:
    """C{"vserver\\twww\\thits"}: the flat key of one counter (tabs never occur in names)."""
    return f"{scope}\t{name}\t{counter}"


def splitKey(key: str) -> tuple[str, str, str]:
    scope, name, counter = key.split("\t", 2)
    return scope, name, counter


class CoreCounters:
    """
    One core's side: cumulative values, and what the control core has
    acknowledged of them.

    @ivar incarnation: this process's identity in the merged table.
    """

    def __init__(self, incarnation: str) -> None:
        self.incarnation = incarnation
        self._acked: Values = {}
        self._sent: dict[int, Values] = {}
        self._seq = 0

    def report(self, current: Mapping[str, int]) -> dict:
        """
        The report to send now: the counters of C{current} (cumulative
        values) not yet acknowledged at their value.
        """
        acked = self._acked
        changed = {key: value for key, value in current.items() if value and acked.get(key) != value}
        self._seq += 1
        self._sent[self._seq] = changed
        # Unacknowledged reports are superseded by this one (it carries
        # their counters, at least as large): keep only the last few.
        for old in [seq for seq in self._sent if seq < self._seq - 16]:
            del self._sent[old]
        return {"incarnation": self.incarnation, "seq": self._seq, "values": changed}

    def acknowledged(self, seq: int) -> None:
        """The control core merged our report C{seq} (and so every earlier one)."""
        for sent in sorted(s for s in self._sent if s <= seq):
            self._acked.update(self._sent.pop(sent))


class Consolidation:
    """
    The merged table: per incarnation, the largest value reported of each
    counter.  The control core merges reports into it; every core applies
    the changes of each round to its replica.

    @ivar round: the last round applied.
    @ivar lastSeq: per incarnation, the last report seq merged (acks).
    """

    def __init__(self) -> None:
        self.table: dict[str, Values] = {}
        self.lastSeq: dict[str, int] = {}
        self.round = 0
        self.roundAt: Optional[float] = None
        self._totals: Values = {}
        # Totals as of the last two closed rounds (rates are between them).
        self.closedTotals: Values = {}
        self.previousTotals: Values = {}
        # The table itself as of the last two closed rounds (per-core figures).
        self.closedTable: dict[str, Values] = {}
        self.previousTable: dict[str, Values] = {}
        self.previousAt: Optional[float] = None

    # --- on the control core ---------------------------------------------------------

    def merge(self, report: Mapping) -> dict[str, Values]:
        """
        Merge one core's report; returns what changed in the table
        (C{{incarnation: {key: value}}}), empty for a duplicate or late one.
        """
        incarnation = str(report["incarnation"])
        seq = int(report["seq"])
        known = self.table.setdefault(incarnation, {})
        changed = {}
        for key, value in report["values"].items():
            value = int(value)
            if value > known.get(key, 0):
                changed[key] = value
        if seq > self.lastSeq.get(incarnation, 0):
            self.lastSeq[incarnation] = seq
        if changed:
            self._apply(incarnation, changed)
            return {incarnation: changed}
        return {}

    # --- on every core ---------------------------------------------------------------

    def applyRound(self, round: int, changes: Mapping[str, Mapping[str, int]], acks: Mapping[str, int], at: float) -> None:
        """
        Apply a consolidated round (the control core's changes since the
        previous round).  Max-merge: applying a round twice, or one the
        control core's own table already holds, changes nothing.
        """
        for incarnation, values in changes.items():
            known = self.table.setdefault(incarnation, {})
            grown = {key: int(value) for key, value in values.items() if int(value) > known.get(key, 0)}
            if grown:
                self._apply(incarnation, grown)
        for incarnation, seq in acks.items():
            if seq > self.lastSeq.get(incarnation, 0):
                self.lastSeq[incarnation] = seq
        self.closeRound(round, at)

    def closeRound(self, round: int, at: float) -> None:
        """Round C{round} is complete at C{at}: rates are measured from here."""
        if round <= self.round and self.roundAt is not None:
            return
        self.previousTotals = self.closedTotals
        self.closedTotals = dict(self._totals)
        self.previousTable = self.closedTable
        self.closedTable = {incarnation: dict(values) for incarnation, values in self.table.items()}
        self.previousAt = self.roundAt
        self.round = round
        self.roundAt = at

    def snapshot(self) -> dict:
        """The whole replica (for a core that joins, or a gap)."""
        return {
            "round": self.round,
            "at": self.roundAt,
            "table": {incarnation: dict(values) for incarnation, values in self.table.items()},
            "acks": dict(self.lastSeq),
        }

    def applySnapshot(self, snapshot: Mapping) -> None:
        for incarnation, values in snapshot["table"].items():
            known = self.table.setdefault(incarnation, {})
            grown = {key: int(value) for key, value in values.items() if int(value) > known.get(key, 0)}
            if grown:
                self._apply(incarnation, grown)
        for incarnation, seq in snapshot["acks"].items():
            self.lastSeq[incarnation] = max(seq, self.lastSeq.get(incarnation, 0))
        if snapshot["round"] >= self.round:
            # The snapshot holds at least as much as our last closed round:
            # also when that round is the same one (a joining core that
            # applied it before the snapshot arrived had only its changes,
            # and `stat` would show the appliance's totals going back).
            if snapshot["round"] > self.round:
                self.round = snapshot["round"]
                self.roundAt = snapshot.get("at")
            self.closedTotals = dict(self._totals)
            self.closedTable = {incarnation: dict(values) for incarnation, values in self.table.items()}

    def _apply(self, incarnation: str, grown: Mapping[str, int]) -> None:
        known = self.table[incarnation]
        totals = self._totals
        for key, value in grown.items():
            totals[key] = totals.get(key, 0) + value - known.get(key, 0)
            known[key] = value

    # --- reading ----------------------------------------------------------------------

    @property
    def totals(self) -> Values:
        """Appliance-wide value of every counter."""
        return self._totals

    def total(self, key: str) -> int:
        return self._totals.get(key, 0)

    def rate(self, key: str) -> Optional[float]:
        """Per second between the last two rounds; None before two rounds."""
        if self.previousAt is None or self.roundAt is None or self.roundAt <= self.previousAt:
            return None
        return (self.closedTotals.get(key, 0) - self.previousTotals.get(key, 0)) / (self.roundAt - self.previousAt)

    def perIncarnation(self, key: str) -> dict[str, int]:
        return {incarnation: values[key] for incarnation, values in self.table.items() if key in values}

    def select(self, scope: str, name: Optional[str] = None) -> dict[str, dict[str, int]]:
        """C{{name: {counter: total}}} of one scope (one name if given)."""
        found: dict[str, dict[str, int]] = {}
        for key, value in self._totals.items():
            keyScope, keyName, counter = splitKey(key)
            if keyScope == scope and (name is None or keyName == name):
                found.setdefault(keyName, {})[counter] = value
        return found


def sumReports(reports: Iterable[Mapping]) -> Values:
    """
    The totals a set of reports yields, merged in any order (the reference
    the property tests compare rounds with).
    """
    consolidation = Consolidation()
    for report in reports:
        consolidation.merge(report)
    return dict(consolidation.totals)
