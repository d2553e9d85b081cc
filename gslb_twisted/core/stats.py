"""
The consolidation round protocol on one core (the arithmetic is
L{gslb_twisted.consolidator}).

The control core is the lowest core the supervisor says serves (it
announces the serving set on C{stats.control} whenever it changes).  Every
C{consolidation_interval} the control core:

 1. closes the open round: publishes C{stats.consolidated} with the round
    number, what its merged table gained since the last one, and per
    incarnation the last report seq merged (the acknowledgement);
 2. opens the next round: publishes C{stats.round}, and reports itself.

Every core answers C{stats.round} with C{stats.report} to the control core
(the cumulative value of every counter that changed since its last
acknowledged report), and applies C{stats.consolidated} to its replica of
the merged table, dropping what was acknowledged.  A core that joins asks
for the replica (C{stats.snapshot-request} / C{stats.snapshot}).  Messages
are JSON on the supervisor's hub, like the metric topics.
"""

from __future__ import annotations

import json
from typing import Callable, Optional

from twisted.internet import task
from twisted.logger import Logger

from gslb_twisted.consolidator import Consolidation, CoreCounters

TOPIC_CONTROL = "stats.control"
TOPIC_ROUND = "stats.round"
TOPIC_REPORT = "stats.report"
TOPIC_CONSOLIDATED = "stats.consolidated"
TOPIC_SNAPSHOT_REQUEST = "stats.snapshot-request"
TOPIC_SNAPSHOT = "stats.snapshot"
TOPICS = frozenset({TOPIC_CONTROL, TOPIC_ROUND, TOPIC_REPORT, TOPIC_CONSOLIDATED, TOPIC_SNAPSHOT_REQUEST, TOPIC_SNAPSHOT})


class CoreStats:
    """
    @param collect: C{collect() -> {counter key: cumulative value}}, this
        core's counters now.
    @param publish: C{publish(topic, body, target=None)} on the hub.
    @ivar control: the control core, as last announced (None: unknown).
    @ivar roundsLed: rounds this core closed as control; C{bytesOut}: bytes
        of consolidated messages it published (the cost of consolidation).
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        core: int,
        incarnation: str,
        interval: float,
        collect: Callable[[], dict],
        publish: Callable[..., None],
    ) -> None:
        self.reactor = reactor
        self.core = core
        self.interval = interval
        self.collect = collect
        self.publish = publish
        self.counters = CoreCounters(incarnation)
        self.consolidation = Consolidation()
        self.control: Optional[int] = None
        self.serving: tuple[int, ...] = ()
        self.cores: dict[str, int] = {incarnation: core}
        self._pending: dict[str, dict[str, int]] = {}
        self._round = 0
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = reactor
        self.roundsLed = 0
        self.bytesOut = 0
        self.reportsMerged = 0
        # Called after each round this core closes or applies.
        self.roundApplied: Callable[[], None] = lambda: None

    @property
    def incarnation(self) -> str:
        return self.counters.incarnation

    def start(self) -> None:
        self.publish(TOPIC_SNAPSHOT_REQUEST, b"{}")

    def stop(self) -> None:
        if self._ticker.running:
            self._ticker.stop()

    # --- the control role -------------------------------------------------------------

    def controlChanged(self, serving) -> None:
        """The supervisor's serving set: its lowest core leads the rounds."""
        self.serving = tuple(sorted(serving))
        control = self.serving[0] if self.serving else None
        if control == self.control:
            return
        self.control = control
        if control == self.core and not self._ticker.running:
            # Take over from our replica: rounds go on where it ends.
            self._round = self.consolidation.round
            self._pending = {}
            self._ticker.start(self.interval, now=False)
        elif control != self.core and self._ticker.running:
            self._ticker.stop()

    def _tick(self) -> None:
        now = self.reactor.seconds()
        if self._round > self.consolidation.round:
            self._close(now)
        # A control core that took over before its replica arrived counted
        # from 0: go on after the last round anyone closed (what it merged
        # meanwhile is still pending, so it goes out with the next round).
        self._round = max(self._round, self.consolidation.round) + 1
        self.publish(TOPIC_ROUND, json.dumps({"round": self._round, "control": self.core}).encode())
        self._merge(self._report())

    def _close(self, now: float) -> None:
        body = json.dumps({
            "round": self._round,
            "at": now,
            "changes": self._pending,
            "acks": dict(self.consolidation.lastSeq),
            "cores": self.cores,
        }).encode()
        self._pending = {}
        self.publish(TOPIC_CONSOLIDATED, body)
        self.bytesOut += len(body)
        self.roundsLed += 1
        self.consolidation.closeRound(self._round, now)
        self.counters.acknowledged(self.consolidation.lastSeq.get(self.incarnation, 0))
        self.roundApplied()

    def _merge(self, report: dict) -> None:
        changed = self.consolidation.merge(report)
        self.reportsMerged += 1
        self.cores[str(report["incarnation"])] = int(report.get("core", -1))
        for incarnation, values in changed.items():
            self._pending.setdefault(incarnation, {}).update(values)

    # --- every core -----------------------------------------------------------------

    def _report(self) -> dict:
        report = self.counters.report(self.collect())
        report["core"] = self.core
        return report

    def delivered(self, sender: int, topic: str, message: dict) -> None:
        if topic == TOPIC_CONTROL:
            self.controlChanged(message["serving"])
        elif topic == TOPIC_ROUND:
            report = self._report()
            report["round"] = message["round"]
            self.publish(TOPIC_REPORT, json.dumps(report).encode(), sender)
        elif topic == TOPIC_REPORT:
            if self.control == self.core:
                self._merge(message)
            # Not the control core (any more): the sender reports again to
            # the next one; its counters are not acknowledged, so not lost.
        elif topic == TOPIC_CONSOLIDATED:
            if sender == self.core:
                return
            if message["round"] > self.consolidation.round + 1:
                # A round went missing: its changes are in no later round.
                self.publish(TOPIC_SNAPSHOT_REQUEST, b"{}", sender)
            self.cores.update({k: int(v) for k, v in message.get("cores", {}).items()})
            self.consolidation.applyRound(message["round"], message["changes"], message["acks"], message["at"])
            self.counters.acknowledged(self.consolidation.lastSeq.get(self.incarnation, 0))
            self.roundApplied()
        elif topic == TOPIC_SNAPSHOT_REQUEST:
            if self.control == self.core:
                snapshot = self.consolidation.snapshot()
                snapshot["cores"] = self.cores
                self.publish(TOPIC_SNAPSHOT, json.dumps(snapshot).encode(), sender)
        elif topic == TOPIC_SNAPSHOT:
            self.cores.update({k: int(v) for k, v in message.get("cores", {}).items()})
            self.consolidation.applySnapshot(message)

    # --- reading ---------------------------------------------------------------------

    def view(self) -> dict:
        """What C{stat} commands read: totals, rates, per-core figures."""
        consolidation = self.consolidation

        def perCore(table: dict) -> dict[str, dict[str, int]]:
            cores: dict[str, dict[str, int]] = {}
            for incarnation, values in table.items():
                bucket = cores.setdefault(str(self.cores.get(incarnation, -1)), {})
                for key, value in values.items():
                    bucket[key] = bucket.get(key, 0) + value
            return cores

        return {
            "round": consolidation.round,
            "at": consolidation.roundAt,
            "interval": (
                None if consolidation.previousAt is None or consolidation.roundAt is None
                else consolidation.roundAt - consolidation.previousAt
            ),
            "control": self.control,
            # As of the last closed round: the same on every core.
            "totals": dict(consolidation.closedTotals),
            "previous": dict(consolidation.previousTotals),
            # Per core, as of the same two rounds.
            "cores": perCore(consolidation.closedTable),
            "cores_previous": perCore(consolidation.previousTable),
        }
