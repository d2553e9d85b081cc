"""
Tests for L{gslb_twisted.dns.protocol}: the UDP and TCP protocols, driven
with fake transports and a L{Clock}.
"""

import errno
import struct
import tomllib

import dns.message
import dns.rcode
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gslb_twisted.config import parseTopology
from gslb_twisted.dns.authority import Authority
from gslb_twisted.dns.protocol import DNSDatagramProtocol, DNSStreamFactory, DNSStreamProtocol

PEER = IPv4Address("TCP", "192.0.2.9", 40000)

TOPOLOGY = """
[appliance]
name = "test"

[[zone]]
name = "example.test"

[[site]]
name = "east"
ip = "10.0.0.1"

[[service]]
name = "web"
site = "east"
ip = "192.0.2.1"

[[vserver]]
name = "www"
domains = ["www.example.test"]
services = ["web"]
"""


class Boom(Exception):
    pass


class FakeAuthority:
    """
    Replies C{b"re:" + query}; drops C{b"drop"}; raises L{Boom} on
    C{b"boom"}.  Records every call.
    """

    def __init__(self):
        self.calls = []

    def respond(self, data, client, tcp):
        self.calls.append((data, client, tcp))
        if data == b"boom":
            raise Boom()
        if data == b"drop":
            return None
        return b"re:" + data


class FakeDatagramTransport:
    def __init__(self):
        self.written = []

    def write(self, data, address):
        self.written.append((data, address))


def frame(data):
    return struct.pack("!H", len(data)) + data


def frames(data):
    """Split a stream of length-prefixed frames."""
    found = []
    while data:
        (length,) = struct.unpack("!H", data[:2])
        found.append(data[2 : 2 + length])
        data = data[2 + length :]
    return found


class DatagramTests(SynchronousTestCase):
    def setUp(self):
        self.authority = FakeAuthority()
        self.protocol = DNSDatagramProtocol(self.authority)
        self.transport = FakeDatagramTransport()
        self.protocol.transport = self.transport

    def test_reply(self):
        self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        self.assertEqual(self.transport.written, [(b"re:query", ("192.0.2.9", 5353))])
        self.assertEqual(self.authority.calls, [(b"query", ("192.0.2.9", 5353), False)])

    def test_drop(self):
        self.protocol.datagramReceived(b"drop", ("192.0.2.9", 5353))
        self.assertEqual(self.transport.written, [])

    def test_failureLogged(self):
        """A query that makes the authority raise is logged; the next is answered."""
        self.protocol.datagramReceived(b"boom", ("192.0.2.9", 5353))
        self.assertEqual(len(self.flushLoggedErrors(Boom)), 1)
        self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        self.assertEqual(self.transport.written, [(b"re:query", ("192.0.2.9", 5353))])

    def test_realAuthority(self):
        topology = parseTopology(tomllib.loads(TOPOLOGY), "test.toml")
        self.protocol.authority = Authority.fromTopology(topology)
        query = dns.message.make_query("www.example.test", "A")
        self.protocol.datagramReceived(query.to_wire(), ("192.0.2.9", 5353))
        ((data, address),) = self.transport.written
        self.assertEqual(address, ("192.0.2.9", 5353))
        reply = dns.message.from_wire(data)
        self.assertEqual(reply.id, query.id)
        self.assertEqual(reply.answer[0][0].address, "192.0.2.1")


class FakeSocket:
    """A socket whose sendto records, or raises the errors queued in C{failures}."""

    def __init__(self):
        self.sent = []
        self.failures = []

    def sendto(self, data, address):
        if self.failures:
            raise OSError(self.failures.pop(0), "fake")
        self.sent.append((data, address))


class SocketTransport(FakeDatagramTransport):
    def __init__(self):
        super().__init__()
        self.socket = FakeSocket()


class DirectSendTests(SynchronousTestCase):
    """Replies go straight to the socket's sendto; its failures cost one reply at most."""

    def setUp(self):
        self.authority = FakeAuthority()
        self.authority.dropped = 0
        self.protocol = DNSDatagramProtocol(self.authority)
        self.transport = SocketTransport()
        self.protocol.makeConnection(self.transport)
        self.socket = self.transport.socket

    def test_sentThroughTheSocket(self):
        self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        self.assertEqual(self.socket.sent, [(b"re:query", ("192.0.2.9", 5353))])
        self.assertEqual(self.transport.written, [])

    def test_interruptedIsRetried(self):
        self.socket.failures = [errno.EINTR]
        self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        self.assertEqual(self.socket.sent, [(b"re:query", ("192.0.2.9", 5353))])
        self.assertEqual(self.authority.dropped, 0)

    def test_fullBufferLosesOneReplyQuietly(self):
        """A full send buffer drops that reply (counted), as a router would; the next goes out."""
        self.socket.failures = [errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED]
        for _ in range(4):
            self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        self.assertEqual(self.authority.dropped, 3)
        self.assertEqual(len(self.socket.sent), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_otherErrorsLoggedOncePerKind(self):
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.socket.failures = [errno.EPERM, errno.EPERM, errno.EACCES]
        for _ in range(4):
            self.protocol.datagramReceived(b"query", ("192.0.2.9", 5353))
        warnings = [e for e in events if "Sending a DNS reply" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 2)
        self.assertEqual((self.authority.dropped, len(self.socket.sent)), (3, 1))


class StreamTests(SynchronousTestCase):
    def setUp(self):
        self.authority = FakeAuthority()
        self.clock = Clock()
        self.factory = DNSStreamFactory(self.authority, self.clock, idleTimeout=10.0, maxPending=3)
        self.protocol = self.factory.buildProtocol(PEER)
        self.transport = StringTransport(peerAddress=PEER)
        self.protocol.makeConnection(self.transport)

    def replies(self):
        return frames(self.transport.value())

    def test_producer(self):
        self.assertIsInstance(self.protocol, DNSStreamProtocol)
        self.assertIs(self.protocol.factory, self.factory)
        verifyObject(IPushProducer, self.protocol)
        self.assertIs(self.transport.producer, self.protocol)
        self.assertTrue(self.transport.streaming)

    def test_oneQuery(self):
        self.protocol.dataReceived(frame(b"one"))
        self.assertEqual(self.replies(), [b"re:one"])
        self.assertEqual(self.authority.calls, [(b"one", ("192.0.2.9", 40000), True)])

    def test_pipelined(self):
        """Several queries in one segment are answered in order."""
        self.protocol.dataReceived(frame(b"one") + frame(b"two") + frame(b"three"))
        self.assertEqual(self.replies(), [b"re:one", b"re:two", b"re:three"])

    def test_partialFrames(self):
        """Frames split anywhere, even inside the length, are reassembled."""
        stream = frame(b"first") + frame(b"x" * 300) + frame(b"last")
        for i in range(len(stream)):
            self.protocol.dataReceived(stream[i : i + 1])
        self.assertEqual(self.replies(), [b"re:first", b"re:" + b"x" * 300, b"re:last"])

    def test_largeFrame(self):
        query = bytes(range(256)) * 255
        self.protocol.dataReceived(frame(query)[:1000])
        self.assertEqual(self.replies(), [])
        self.protocol.dataReceived(frame(query)[1000:])
        self.assertEqual(self.replies(), [b"re:" + query])

    def test_drop(self):
        self.protocol.dataReceived(frame(b"drop") + frame(b"after"))
        self.assertEqual(self.replies(), [b"re:after"])

    def test_failureLogged(self):
        """A query that makes the authority raise is logged; the connection goes on."""
        self.protocol.dataReceived(frame(b"boom") + frame(b"after"))
        self.assertEqual(len(self.flushLoggedErrors(Boom)), 1)
        self.assertEqual(self.replies(), [b"re:after"])
        self.assertFalse(self.transport.disconnecting)

    def test_zeroLengthFrame(self):
        """A zero-length frame closes the connection, after earlier queries are answered."""
        self.protocol.dataReceived(frame(b"one") + b"\x00\x00" + frame(b"ignored"))
        self.assertEqual(self.replies(), [b"re:one"])
        self.assertTrue(self.transport.disconnecting)
        self.protocol.dataReceived(frame(b"later"))
        self.assertEqual(self.replies(), [b"re:one"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idleTimeout(self):
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)

    def test_queriesKeepAlive(self):
        for _ in range(5):
            self.clock.advance(9)
            self.protocol.dataReceived(frame(b"q"))
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnecting)

    def test_tricklingIsNotActivity(self):
        """
        A client sending a byte at a time without completing a query (a
        slowloris) is closed after idleTimeout, however often it sends.
        """
        for byte in frame(b"x" * 40)[:-1]:
            self.clock.advance(1)
            self.protocol.dataReceived(bytes([byte]))
            if self.transport.disconnecting:
                break
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.clock.seconds(), 10)
        self.assertEqual(self.replies(), [])

    def test_connectionLostCancelsTimer(self):
        self.protocol.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_backPressure(self):
        """
        While the transport's send buffer is full, queries wait unanswered
        and the transport stops reading; they are answered on resume.
        """
        self.protocol.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.dataReceived(frame(b"one") + frame(b"two"))
        self.assertEqual(self.replies(), [])
        self.protocol.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.replies(), [b"re:one", b"re:two"])

    def test_pausedMidSegment(self):
        """A pause while answering a segment holds the rest of it."""
        original = self.transport.write

        def writeThenPause(data):
            original(data)
            self.protocol.pauseProducing()

        self.transport.write = writeThenPause
        self.protocol.dataReceived(frame(b"one") + frame(b"two") + frame(b"three"))
        self.assertEqual(self.replies(), [b"re:one"])
        self.transport.write = original
        self.protocol.resumeProducing()
        self.assertEqual(self.replies(), [b"re:one", b"re:two", b"re:three"])

    def test_tooManyPending(self):
        """More than maxPending queries waiting on a client that does not read: dropped."""
        self.protocol.pauseProducing()
        self.protocol.dataReceived(frame(b"1") + frame(b"2") + frame(b"3"))
        self.assertFalse(self.transport.disconnecting)
        self.protocol.dataReceived(frame(b"4") + frame(b"5")[:2])
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.authority.calls, [])

    def test_timeoutWhilePausedAborts(self):
        """A client that stopped reading cannot hold a graceful close open."""
        self.protocol.pauseProducing()
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnected)

    def test_realAuthority(self):
        topology = parseTopology(tomllib.loads(TOPOLOGY), "test.toml")
        self.protocol.authority = Authority.fromTopology(topology)
        queries = [dns.message.make_query(name, "A") for name in ("www.example.test", "nothing.example.test")]
        self.protocol.dataReceived(b"".join(frame(q.to_wire()) for q in queries))
        replies = [dns.message.from_wire(data) for data in self.replies()]
        self.assertEqual([r.id for r in replies], [q.id for q in queries])
        self.assertEqual([r.rcode() for r in replies], [dns.rcode.NOERROR, dns.rcode.NXDOMAIN])


class StreamLimitTests(SynchronousTestCase):
    """DNS over TCP connections per core and per client address."""

    def setUp(self):
        self.authority = FakeAuthority()
        self.authority.tcpRefused = 0
        self.clock = Clock()
        self.factory = DNSStreamFactory(self.authority, self.clock, maxConnections=4, maxPerClient=2)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def connect(self, host: str):
        address = IPv4Address("TCP", host, 40000)
        protocol = self.factory.buildProtocol(address)
        if protocol is not None:
            protocol.makeConnection(StringTransport(peerAddress=address))
        return protocol

    def refusals(self):
        return [e for e in self.events if "Refusing DNS TCP connections" in e.get("log_format", "")]

    def test_perClient(self):
        """One address gets maxPerClient connections; others still get theirs."""
        first, second = self.connect("192.0.2.1"), self.connect("192.0.2.1")
        self.assertIsNotNone(first)
        self.assertIsNotNone(second)
        self.assertIsNone(self.connect("192.0.2.1"))
        self.assertIsNone(self.connect("192.0.2.1"))
        self.assertIsNotNone(self.connect("192.0.2.2"))
        self.assertEqual((self.factory.refused, self.authority.tcpRefused), (2, 2))
        # Logged once while the client stays over its limit.
        self.assertEqual(len(self.refusals()), 1)
        first.connectionLost(None)
        self.assertIsNotNone(self.connect("192.0.2.1"))
        self.assertEqual(self.factory.openByClient, {"192.0.2.1": 2, "192.0.2.2": 1})

    def test_total(self):
        """Past maxConnections, everyone waits for one to close."""
        opened = [self.connect(f"192.0.2.{i}") for i in range(1, 5)]
        self.assertNotIn(None, opened)
        self.assertIsNone(self.connect("192.0.2.9"))
        opened[0].transport.loseConnection()
        opened[0].connectionLost(None)
        self.assertIsNotNone(self.connect("192.0.2.9"))
        self.assertEqual(self.factory.openConnections, 4)

    def test_closedByTimeoutReleased(self):
        """A connection closed for idling frees its place."""
        protocols = [self.connect("192.0.2.1"), self.connect("192.0.2.1")]
        self.clock.advance(10)
        for protocol in protocols:
            self.assertTrue(protocol.transport.disconnecting)
            protocol.connectionLost(None)
        self.assertEqual((self.factory.openConnections, self.factory.openByClient), (0, {}))
        self.assertIsNotNone(self.connect("192.0.2.1"))
