"""
Bounds on what one AMP peer makes us hold (L{gslb_twisted.protocol.bounds}),
and the control endpoint's use of them: a console that answers or reads
nothing costs a bounded amount.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.internet import error
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.logs import ConsoleSubscribers
from gslb_twisted.protocol.access import GuardedControl
from gslb_twisted.protocol.bounds import STUCK_AFTER, BoundedCallsAMP, TooManyPendingCalls, WriteBacklog


class Ask(amp.Command):
    arguments = [(b"n", amp.Integer())]
    response = [(b"n", amp.Integer())]


class Tell(amp.Command):
    arguments = [(b"n", amp.Integer())]
    requiresAnswer = False


def questions(transport: StringTransport) -> list:
    """The boxes written so far (and clear the transport)."""
    boxes = amp.parse(_Bytes(transport.value()))
    transport.clear()
    return boxes


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        data, self.data = self.data, b""
        return data


def answerTo(protocol: amp.AMP, box, n: int) -> None:
    protocol.dataReceived(amp.AmpBox(_answer=box[b"_ask"], n=str(n).encode()).serialize())


class BoundedCallsTests(SynchronousTestCase):
    def setUp(self):
        self.protocol = BoundedCallsAMP()
        self.protocol.maxPendingCalls = 3
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def test_quota(self):
        """Three questions go out; the fourth fails at once and is not sent."""
        asked = [self.protocol.callRemote(Ask, n=i) for i in range(3)]
        refused = self.protocol.callRemote(Ask, n=3)
        self.assertIsInstance(self.failureResultOf(refused).value, TooManyPendingCalls)
        self.assertEqual([box[b"n"] for box in questions(self.transport)], [b"0", b"1", b"2"])
        self.assertEqual((self.protocol.pendingCalls, self.protocol.refusedCalls), (3, 1))
        for d in asked:
            self.assertNoResult(d)

    def test_answersRelease(self):
        asked = [self.protocol.callRemote(Ask, n=i) for i in range(3)]
        boxes = questions(self.transport)
        answerTo(self.protocol, boxes[1], 11)
        self.assertEqual(self.successResultOf(asked[1]), {"n": 11})
        self.assertEqual(self.protocol.pendingCalls, 2)
        self.protocol.callRemote(Ask, n=9)
        self.assertEqual([box[b"n"] for box in questions(self.transport)], [b"9"])

    def test_timedOutStillCounts(self):
        """A caller that stops waiting does not free the question: the peer still owes it."""
        clock = Clock()
        asked = self.protocol.callRemote(Ask, n=1)
        asked.addTimeout(5, clock)
        clock.advance(5)
        self.failureResultOf(asked)
        self.assertEqual(self.protocol.pendingCalls, 1)
        (box,) = questions(self.transport)
        answerTo(self.protocol, box, 1)  # late: counted off, and nothing raises
        self.assertEqual(self.protocol.pendingCalls, 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_connectionLostReleases(self):
        asked = [self.protocol.callRemote(Ask, n=i) for i in range(3)]
        self.protocol.connectionLost(Failure(error.ConnectionDone()))
        for d in asked:
            self.failureResultOf(d)
        self.assertEqual(self.protocol.pendingCalls, 0)

    def test_fireAndForgetUnbounded(self):
        """Commands that want no answer owe nothing and are not counted."""
        for i in range(5):
            self.protocol.callRemote(Tell, n=i)
        self.assertEqual(len(questions(self.transport)), 5)
        self.assertEqual(self.protocol.pendingCalls, 0)


class WriteBacklogTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.backlog = WriteBacklog(
            self.clock, lambda: self.events.append("stuck"), after=30,
            paused=lambda: self.events.append("paused"), resumed=lambda: self.events.append("resumed"))

    def test_stuckAfterBeingFullTooLong(self):
        self.backlog.pauseProducing()
        self.backlog.pauseProducing()  # told twice: one period
        self.assertTrue(self.backlog.blocked)
        self.clock.advance(29.9)
        self.assertEqual(self.events, ["paused"])
        self.clock.advance(0.1)
        self.assertEqual(self.events, ["paused", "stuck"])

    def test_drainedInTime(self):
        self.backlog.pauseProducing()
        self.clock.advance(20)
        self.backlog.resumeProducing()
        self.assertFalse(self.backlog.blocked)
        self.clock.advance(60)
        self.assertEqual(self.events, ["paused", "resumed"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopped(self):
        self.backlog.pauseProducing()
        self.backlog.stopProducing()
        self.clock.advance(60)
        self.assertEqual(self.events, ["paused"])


class ControlBacklogTests(SynchronousTestCase):
    """A console that stops reading: its commands wait, its events are skipped, then it is let go."""

    def setUp(self):
        self.clock = Clock()
        self.protocol = GuardedControl(token=None, clock=self.clock)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5000))
        self.protocol.makeConnection(self.transport)
        self.consoles = ConsoleSubscribers(self.clock, lambda: {})
        self.consoles.subscribe(self.protocol)

    def test_backPressure(self):
        """While the console's buffer is full, its commands are not read; reading resumes as it drains."""
        self.assertIs(self.transport.producer, self.protocol.backlog)
        self.transport.producer.pauseProducing()
        self.assertTrue(self.protocol.writeBlocked)
        self.assertEqual(self.transport.producerState, "paused")
        self.transport.producer.resumeProducing()
        self.assertFalse(self.protocol.writeBlocked)
        self.assertEqual(self.transport.producerState, "producing")

    def test_eventsSkippedWhileBlocked(self):
        self.consoles.emit({"kind": "service", "text": "east-web DOWN"})
        self.assertEqual(self.consoles.sent, 1)
        written = len(self.transport.value())
        self.transport.producer.pauseProducing()
        for _ in range(100):
            self.consoles.emit({"kind": "service", "text": "east-web UP"})
        self.assertEqual(len(self.transport.value()), written)
        self.assertEqual((self.consoles.sent, self.consoles.skipped), (1, 100))
        self.transport.producer.resumeProducing()
        self.consoles.emit({"kind": "service", "text": "east-web DOWN"})
        self.assertEqual(self.consoles.sent, 2)

    def test_stuckConsoleDisconnected(self):
        self.transport.producer.pauseProducing()
        self.clock.advance(STUCK_AFTER - 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnected)  # aborted: it would never drain
        self.consoles.stop()


class CoreLinkQuotaTests(SynchronousTestCase):
    def test_quotaGrowsWithSites(self):
        """
        A core at a thousand sites asks the hub for a thousand claims at
        start, all at once: its link's quota allows them (regression: a
        fixed quota of 256 refused claims and closed the sessions).
        """
        from types import SimpleNamespace

        from gslb_twisted.core.service import SupervisorLink
        from gslb_twisted.protocol.commands import ClaimSite

        forwarder = SimpleNamespace(attach=lambda send: None, detach=lambda: None)
        link = SupervisorLink(SimpleNamespace(link=None), forwarder, onLost=lambda: None, sites=1000)
        link.makeConnection(StringTransport())
        claims = [link.callRemote(ClaimSite, site=f"site-{i}", takeover=True) for i in range(1000)]
        self.assertEqual(link.refusedCalls, 0)
        self.assertEqual(link.pendingCalls, 1000)
        for d in claims:
            self.assertNoResult(d)
