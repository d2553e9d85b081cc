"""L{gslb_twisted.protocol.access.PeerAllowList}: who may open a MEP session."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.protocol.access import PeerAllowList


class RecordingFactory(Factory):
    protocol = Protocol

    def __init__(self):
        self.events = []

    def doStart(self):
        self.events.append("start")

    def doStop(self):
        self.events.append("stop")


class PeerAllowListTests(SynchronousTestCase):
    def setUp(self):
        self.inner = RecordingFactory()
        self.allowList = PeerAllowList(self.inner, ["127.0.0.2", "2001:DB8::0:2"])

    def test_configuredPeerServed(self):
        self.assertIsInstance(self.allowList.buildProtocol(IPv4Address("TCP", "127.0.0.2", 40000)), Protocol)
        self.assertIsInstance(self.allowList.buildProtocol(IPv6Address("TCP", "2001:db8::2", 40000)), Protocol)
        self.assertEqual(self.allowList.refused, 0)

    def test_othersRefusedAndLoggedOnce(self):
        logged = []
        self.allowList.log = Logger(observer=logged.append)
        for port in (1, 2, 3):
            self.assertIsNone(self.allowList.buildProtocol(IPv4Address("TCP", "127.0.0.66", port)))
        self.assertIsNone(self.allowList.buildProtocol(IPv4Address("TCP", "127.0.0.67", 1)))
        self.assertEqual(self.allowList.refused, 4)
        self.assertEqual([e["host"] for e in logged], ["127.0.0.66", "127.0.0.67"])

    def test_startStopForwarded(self):
        self.allowList.doStart()
        self.allowList.doStop()
        self.assertEqual(self.inner.events, ["start", "stop"])
