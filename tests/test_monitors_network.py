"""
The probes of L{gslb_twisted.monitors} against real sockets on 127.0.0.1,
with the real reactor: a listening TCP port, a twisted.web server over HTTP
and HTTPS, a tiny in-test DNS responder, a UDP echo, and closed ports that
answer with RST / ICMP port unreachable.  No sleeps: waits are polls with a
deadline, and every port and connection is closed before a test ends.
"""

import os
import socket

import twisted.test
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.names import dns
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from gslb_twisted.monitors import DNSProbe, HTTPProbe, MonitorRunner, TCPProbe, UDPProbe, makeHTTPClient


async def poll(condition, deadline=5.0, interval=0.01, what="condition"):
    """Wait until C{condition()} is true, checking every C{interval} s; fail after C{deadline} s."""
    start = reactor.seconds()
    while not condition():
        if reactor.seconds() - start > deadline:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await deferLater(reactor, interval, lambda: None)

HOST = "127.0.0.1"
SERVER_PEM = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")


def closedPort(kind):
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Health(Resource):
    isLeaf = True

    def __init__(self, code=200, body=b"status: healthy"):
        super().__init__()
        self.code = code
        self.body = body

    def render_GET(self, request):
        request.setResponseCode(self.code)
        return self.body


class Echo(DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


class Silent(DatagramProtocol):
    def __init__(self):
        self.received = []

    def datagramReceived(self, data, addr):
        self.received.append(data)


class TinyDNS(DatagramProtocol):
    """Answers every query NXDOMAIN, after a datagram of garbage."""

    def datagramReceived(self, data, addr):
        query = dns.Message()
        query.fromStr(data)
        reply = dns.Message(id=query.id, answer=True, auth=True, rCode=dns.ENAME)
        reply.queries = query.queries
        self.transport.write(b"\xff" * 5, addr)
        self.transport.write(reply.toStr(), addr)


class NetworkTestCase(TestCase):
    async def listenTCP(self, factory, description=None):
        """Listen on loopback; on cleanup, wait for every accepted connection to end."""
        wrapper = WrappingFactory(factory)
        endpoint = serverFromString(reactor, description or f"tcp:0:interface={HOST}")
        port = await endpoint.listen(wrapper)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.drained, wrapper)
        return port.getHost().port, wrapper

    async def drained(self, wrapper):
        await poll(lambda: not wrapper.protocols, deadline=5.0, interval=0.01, what="server connections to close")

    def listenUDP(self, protocol):
        port = reactor.listenUDP(0, protocol, interface=HOST)
        self.addCleanup(port.stopListening)
        return port.getHost().port


class TCPProbeTests(NetworkTestCase):
    async def test_upAgainstListeningPort(self):
        port, wrapper = await self.listenTCP(Factory.forProtocol(Protocol))
        result = await TCPProbe(reactor, HOST, port, 2.0).probe()
        self.assertTrue(result.up)
        self.assertEqual(result.reason, "connected")
        self.assertIsInstance(result.response_time, float)
        # The probe closed its side: the server sees the connection end.
        await self.drained(wrapper)

    async def test_downAgainstClosedPort(self):
        result = await TCPProbe(reactor, HOST, closedPort(socket.SOCK_STREAM), 2.0).probe()
        self.assertEqual((result.up, result.reason), (False, "connection refused"))


class HTTPProbeTests(NetworkTestCase):
    def setUp(self):
        self.client = makeHTTPClient(reactor)

    async def test_up(self):
        port, wrapper = await self.listenTCP(Site(Health()))
        probe = HTTPProbe(self.client, f"http://{HOST}:{port}/health", 2.0, reactor, expectContent="healthy")
        result = await probe.probe()
        self.assertTrue(result.up, result)
        self.assertEqual(result.reason, "HTTP 200")
        await self.drained(wrapper)

    async def test_downOnStatusAndContent(self):
        port, _ = await self.listenTCP(Site(Health(code=503, body=b"maintenance")))
        result = await HTTPProbe(self.client, f"http://{HOST}:{port}/", 2.0, reactor).probe()
        self.assertEqual((result.up, result.reason), (False, "HTTP 503, expected 200"))
        result = await HTTPProbe(
            self.client, f"http://{HOST}:{port}/", 2.0, reactor, expectStatus=(503,), expectContent="healthy"
        ).probe()
        self.assertEqual((result.up, result.reason), (False, "HTTP 503 without the expected content"))

    async def test_downAgainstClosedPort(self):
        port = closedPort(socket.SOCK_STREAM)
        result = await HTTPProbe(self.client, f"http://{HOST}:{port}/", 2.0, reactor).probe()
        self.assertFalse(result.up)

    async def test_httpsSelfSignedIsNotVerified(self):
        """
        Like NetScaler's secure monitors, the default client accepts a
        self-signed certificate; a verifying client refuses it.
        """
        description = f"ssl:0:interface={HOST}:privateKey={SERVER_PEM}:certKey={SERVER_PEM}"
        port, wrapper = await self.listenTCP(Site(Health()), description)
        url = f"https://{HOST}:{port}/health"
        result = await HTTPProbe(self.client, url, 5.0, reactor).probe()
        self.assertTrue(result.up, result)
        verifying = makeHTTPClient(reactor, verifyTLS=True)
        result = await HTTPProbe(verifying, url, 5.0, reactor).probe()
        self.assertFalse(result.up, result)
        await self.drained(wrapper)


class DNSProbeTests(NetworkTestCase):
    async def test_upOnAnyResponse(self):
        """NXDOMAIN is an answer: the DNS server is alive.  Garbage is skipped."""
        port = self.listenUDP(TinyDNS())
        result = await DNSProbe(reactor, HOST, port, name="health.example.", timeout=2.0).probe()
        self.assertTrue(result.up, result)
        self.assertEqual(result.reason, "DNS response, rcode NXDOMAIN")

    async def test_downAgainstNothingListening(self):
        result = await DNSProbe(reactor, HOST, closedPort(socket.SOCK_DGRAM), timeout=2.0).probe()
        self.assertEqual((result.up, result.reason), (False, "connection refused"))

    async def test_downOnSilence(self):
        silent = Silent()
        port = self.listenUDP(silent)
        result = await DNSProbe(reactor, HOST, port, timeout=0.2).probe()
        self.assertEqual((result.up, result.reason), (False, "no answer within 0.2 s"))
        self.assertEqual(len(silent.received), 1)


class UDPProbeTests(NetworkTestCase):
    async def test_downAgainstClosedPort(self):
        """ICMP port unreachable, seen through the connected socket, is DOWN."""
        result = await UDPProbe(reactor, HOST, closedPort(socket.SOCK_DGRAM), 2.0, payload=b"ping").probe()
        self.assertEqual((result.up, result.reason), (False, "connection refused"))

    async def test_upAgainstEcho(self):
        port = self.listenUDP(Echo())
        result = await UDPProbe(reactor, HOST, port, 2.0, payload=b"ping").probe()
        self.assertEqual((result.up, result.reason), (True, "UDP reply"))

    async def test_upOnSilence(self):
        """No reply and no ICMP error: UP, as NetScaler's UDP-ECV monitor."""
        port = self.listenUDP(Silent())
        result = await UDPProbe(reactor, HOST, port, 0.2).probe()
        self.assertEqual((result.up, result.reason), (True, "no ICMP error within 0.2 s"))


class MonitorRunnerTests(NetworkTestCase):
    async def test_tcpServiceGoesDownAndStopIsClean(self):
        """
        A runner probing a real port reports UP, then DOWN once the port
        closes; stopping it leaves no socket or timer behind.
        """
        factory = WrappingFactory(Factory.forProtocol(Protocol))
        listening = reactor.listenTCP(0, factory, interface=HOST)
        port = listening.getHost().port
        changes = []
        runner = MonitorRunner(
            reactor, TCPProbe(reactor, HOST, port, 1.0), 0.05, lambda n, r: changes.append(r), "east-web", retries=2
        )
        runner.startService()
        self.addCleanup(runner.stopService)
        await poll(lambda: changes, deadline=5.0, interval=0.01, what="the first result")
        self.assertTrue(changes[0].up)
        await listening.stopListening()
        await self.drained(factory)
        await poll(lambda: len(changes) == 2, deadline=5.0, interval=0.01, what="the DOWN transition")
        self.assertEqual((changes[1].up, changes[1].reason), (False, "connection refused"))
        self.assertEqual(runner.state, "DOWN")
        await runner.stopService()
