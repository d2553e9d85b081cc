"""
Test doubles shared by several test modules.
"""

from __future__ import annotations


class RecordingAppliance:
    """
    The appliance end of a MEP session in a test: accepts the site, applies
    the snapshot and deltas it sends, and records what happened.
    """

    def __init__(self) -> None:
        self.snapshots: list[int] = []
        self.deltas: list[tuple[int, int]] = []
        self.state: dict = {}
        self.lost: list[str] = []
        self.sessions: list = []
        # PROBE / RTT / SESSIONS frames received, in order.
        self.events: list[tuple] = []

    def authenticated(self, session) -> bool:
        self.sessions.append(session)
        return True

    def snapshotReceived(self, session, seq, services) -> None:
        self.snapshots.append(seq)
        self.state = {name: dict(values) for name, values in services.items()}

    def deltaReceived(self, session, seq, baseSeq, changes) -> None:
        self.deltas.append((seq, baseSeq))
        for name, values in changes.items():
            self.state[name].update(values)

    def resyncRequested(self, session) -> None:
        pass

    def probeReceived(self, session, networks) -> None:
        self.events.append(("probe", list(networks)))

    def rttReported(self, session, rtts) -> None:
        self.events.append(("rtt", dict(rtts)))

    def sessionsReceived(self, session, entries) -> None:
        self.events.append(("sessions", list(entries)))

    def rttMeasured(self, session, rtt) -> None:
        pass

    def sessionLost(self, session, reason) -> None:
        self.lost.append(reason)
