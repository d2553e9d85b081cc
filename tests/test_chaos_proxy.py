"""
The chaos TCP proxy (L{gslb_twisted.chaos.proxy}) with a memory reactor,
string transports and a fake clock: what each end of a proxied connection
receives, and when, in every mode.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.chaos.proxy import BLACKHOLE, CUT, DELAY, PASS, Duct, LinkFaults, TCPProxy

SITE = IPv4Address("TCP", "127.0.0.2", 40001)


class End:
    """One end of a proxied conversation: the proxy's protocol on a string transport."""

    def __init__(self, protocol, peer=SITE) -> None:
        self.protocol = protocol
        self.transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def received(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))

    @property
    def closed(self) -> bool:
        """The proxy closed this connection (gracefully or not)."""
        return self.transport.disconnecting

    @property
    def reset(self) -> bool:
        """The proxy aborted this connection (a reset, not a close)."""
        return self.transport.disconnected


class ProxyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.proxy = TCPProxy(self.reactor, "tcp:4000:interface=127.0.0.5",
                              "tcp:host=127.0.0.5:port=3011:bindAddress=127.0.0.2", name="east-mep")
        self.proxy.startService()

    def accept(self) -> End:
        """A peer connects to the proxy."""
        factory = self.reactor.tcpServers[-1][1]
        return End(factory.buildProtocol(SITE))

    def dialled(self) -> int:
        return len(self.reactor.tcpClients)

    def target(self, index: int = -1) -> End:
        """The target accepts the proxy's connection number C{index}."""
        factory = self.reactor.tcpClients[index][2]
        return End(factory.buildProtocol(None), IPv4Address("TCP", "127.0.0.5", 3011))

    def pair(self) -> tuple[End, End]:
        client = self.accept()
        return client, self.target()

    # --- pass ---------------------------------------------------------------------------

    def test_listensAndDialsTheTargetFromTheBoundAddress(self):
        """The proxy listens where told and dials the target from the dialling end's own address."""
        port, _, _, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (4000, "127.0.0.5"))
        self.accept()
        host, port, _, _, bindAddress = self.reactor.tcpClients[0]
        self.assertEqual((host, port, bindAddress), ("127.0.0.5", 3011, ("127.0.0.2", 0)))

    def test_passCarriesBytesBothWaysInOrder(self):
        client, server = self.pair()
        client.send(b"HELLO ")
        client.send(b"site")
        server.send(b"HELLO appliance")
        self.assertEqual(server.received(), b"HELLO site")
        self.assertEqual(client.received(), b"HELLO appliance")
        self.assertEqual(self.proxy.mode, PASS)

    def test_bytesSentBeforeTheTargetAnswersArriveOnceConnected(self):
        client = self.accept()
        client.send(b"early")
        server = self.target()
        self.assertEqual(server.received(), b"early")

    def test_closesAreForwarded(self):
        client, server = self.pair()
        client.send(b"bye")
        client.close()
        self.assertEqual(server.received(), b"bye")
        self.assertTrue(server.closed)
        self.assertFalse(server.reset)
        server.close()
        self.assertEqual(self.proxy.faults.links, set())

        client, server = self.pair()
        server.send(b"done")
        server.close()
        self.assertEqual(client.received(), b"done")
        self.assertTrue(client.closed)
        self.assertFalse(client.reset)

    def test_targetRefusesTheConnection(self):
        """The target is down: the peer's connection is reset, and it is counted."""
        client = self.accept()
        client.send(b"HELLO")
        connector = self.reactor.connectors[-1]
        self.reactor.tcpClients[-1][2].clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
        self.assertTrue(client.reset)
        self.assertEqual(self.proxy.describe()["dial_failures"], 1)
        client.close()
        self.assertEqual(self.proxy.faults.links, set())

    # --- cut ----------------------------------------------------------------------------

    def test_cutResetsEveryConnectionAndRefusesNewOnes(self):
        first, firstServer = self.pair()
        second, secondServer = self.pair()
        self.proxy.cut()
        for end in (first, firstServer, second, secondServer):
            self.assertTrue(end.reset)
        dialled = self.dialled()
        third = self.accept()
        self.assertTrue(third.reset)
        self.assertEqual(self.dialled(), dialled, "a refused connection must not reach the target")
        third.send(b"ignored")
        third.close()
        row = self.proxy.describe()
        self.assertEqual((row["mode"], row["aborted"], row["refused"], row["links"]), (CUT, 2, 1, []))

        self.proxy.restore()
        client, server = self.pair()
        client.send(b"again")
        self.assertEqual(server.received(), b"again")
        self.assertFalse(client.reset)

    # --- delay --------------------------------------------------------------------------

    def test_delayHoldsEachChunkEachWay(self):
        client, server = self.pair()
        self.proxy.delay(250)
        self.assertEqual((self.proxy.mode, self.proxy.describe()["delay_ms"]), (DELAY, 250.0))
        client.send(b"ping")
        server.send(b"pong")
        self.reactor.advance(0.2)
        self.assertEqual((server.received(), client.received()), (b"", b""))
        self.reactor.advance(0.05)
        self.assertEqual((server.received(), client.received()), (b"ping", b"pong"))

    def test_delayKeepsOrderWhenTheDelayShrinks(self):
        client, server = self.pair()
        self.proxy.delay(500)
        client.send(b"first ")
        self.reactor.advance(0.1)
        self.proxy.delay(100)
        client.send(b"second ")
        self.reactor.advance(0.15)
        self.assertEqual(server.received(), b"", "the second chunk must not overtake the first")
        self.proxy.restore()
        client.send(b"third")
        self.assertEqual(server.received(), b"", "nor may a chunk sent after the restore")
        self.reactor.advance(0.25)
        self.assertEqual(server.received(), b"first second third")

    def test_delayHoldsTheCloseBehindTheBytes(self):
        client, server = self.pair()
        self.proxy.delay(100)
        server.send(b"last words")
        server.close()
        self.assertFalse(client.closed)
        self.reactor.advance(0.1)
        self.assertEqual(client.received(), b"last words")
        self.assertTrue(client.closed)
        self.assertFalse(client.reset)

    # --- blackhole ----------------------------------------------------------------------

    def test_linkEndedDuringADelayLeavesNoTimer(self):
        """
        Both ends close while a delay still holds bytes: the link is
        forgotten with its timers, so stopping the proxy leaves nothing
        scheduled (found by the scenario runner).
        """
        client, server = self.pair()
        self.proxy.delay(200)
        client.send(b"late")
        client.close()
        server.close()
        self.assertEqual(self.proxy.faults.links, set())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.proxy.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_blackholeSwallowsBytesAndClosesSilently(self):
        client, server = self.pair()
        self.proxy.blackhole()
        client.send(b"KEEPALIVE")
        server.send(b"DELTA")
        self.reactor.advance(10)
        self.assertEqual((server.received(), client.received()), (b"", b""))
        self.assertFalse(client.closed or server.closed, "a blackhole leaves connections open")
        server.close()
        self.assertFalse(client.closed, "the close is swallowed too")
        self.assertEqual(self.proxy.describe()["swallowed"], len(b"KEEPALIVE") + len(b"DELTA"))

    def test_blackholeAcceptsNewConnectionsButNeverDials(self):
        self.proxy.blackhole()
        dialled = self.dialled()
        client = self.accept()
        client.send(b"HELLO")
        self.assertEqual(self.dialled(), dialled)
        self.assertFalse(client.closed)
        self.proxy.restore()
        self.assertTrue(client.reset, "restored: the hung connection is reset so its peer redials")

    def test_blackholeLosesWhatADelayHeld(self):
        client, server = self.pair()
        self.proxy.delay(200)
        client.send(b"in flight")
        self.proxy.blackhole()
        self.reactor.advance(1)
        self.assertEqual(server.received(), b"")
        self.assertEqual(self.proxy.describe()["dropped"], len(b"in flight"))

    def test_restoreResetsConnectionsThatLostBytes(self):
        damaged, damagedServer = self.pair()
        self.proxy.blackhole()
        damaged.send(b"lost")
        self.proxy.restore()
        self.assertTrue(damaged.reset and damagedServer.reset)
        client, server = self.pair()
        client.send(b"fresh")
        self.assertEqual(server.received(), b"fresh")
        self.assertEqual(self.proxy.describe()["aborted"], 1)

    def test_blackholeThenDelayAlsoRestores(self):
        client, server = self.pair()
        self.proxy.blackhole()
        self.proxy.delay(50)
        self.assertTrue(client.reset and server.reset)

    # --- control ------------------------------------------------------------------------

    def test_badModesAreRefused(self):
        faults = self.proxy.faults
        with self.assertRaises(ValueError) as e:
            faults.setMode("drop")
        self.assertIn("unknown proxy mode 'drop'", str(e.exception))
        for bad in (-1, float("nan"), float("inf"), "5", True):
            self.assertRaises(ValueError, self.proxy.delay, bad)
        self.assertRaises(ValueError, faults.setMode, BLACKHOLE, 0.5)
        self.assertEqual(self.proxy.mode, PASS)

    def test_describeAndStop(self):
        client, server = self.pair()
        client.send(b"abc")
        server.send(b"de")
        self.assertIs(self.successResultOf(self.proxy.listening), self.proxy.port)
        row = self.proxy.describe()
        self.assertEqual((row["name"], row["listen"]), ("east-mep", "0.0.0.0:4000"))  # MemoryReactor's port
        self.assertEqual(row["links"], [{"client": "127.0.0.2:40001", "to_target": 3, "to_client": 2,
                                         "held": 0, "damaged": False}])
        d = self.proxy.stopService()
        self.successResultOf(d)
        self.assertTrue(client.reset and server.reset)
        self.assertEqual(self.proxy.faults.links, set())
        self.assertIsNone(self.proxy.address)


class DuctTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.duct = Duct(self.clock)
        self.out: list = []
        self.duct.attach(self.out.append, lambda: self.out.append("END"))

    def test_orderHoldsWhateverTheDelays(self):
        for index, delay in enumerate([0.3, 0.0, 0.5, 0.1, 0.0]):
            self.duct.push(b"%d" % index, delay)
        self.clock.advance(0.29)
        self.assertEqual(self.out, [])
        self.clock.advance(0.01)
        self.assertEqual(self.out, [b"0", b"1"])
        self.clock.advance(0.2)
        self.assertEqual(self.out, [b"0", b"1", b"2", b"3", b"4"])

    def test_endClosesAfterTheBytesAndStopsThere(self):
        self.duct.push(b"a", 0.1)
        self.duct.finish(0)
        self.duct.push(b"after the end", 0)
        self.clock.advance(0.1)
        self.assertEqual(self.out, [b"a", "END"])
        self.assertTrue(self.duct.ended)

    def test_dropForgetsWhatIsHeld(self):
        self.duct.push(b"abcd", 1.0)
        self.assertEqual(self.duct.pending, 4)
        self.duct.drop()
        self.clock.advance(2)
        self.assertEqual((self.out, self.duct.dropped, self.clock.getDelayedCalls()), ([], 4, []))

    def test_heldUntilAttached(self):
        duct = Duct(self.clock)
        duct.push(b"x", 0)
        out = []
        duct.attach(out.append, lambda: None)
        self.assertEqual((out, duct.forwarded), ([b"x"], 1))


class LinkFaultsTests(SynchronousTestCase):
    def test_startsPassingAndCountsNothing(self):
        faults = LinkFaults("p")
        self.assertEqual(faults.describe(), {
            "name": "p", "mode": PASS, "delay_ms": 0.0, "accepted": 0, "refused": 0, "aborted": 0,
            "swallowed": 0, "dropped": 0, "dial_failures": 0, "links": [],
        })

    def test_delayIsInMilliseconds(self):
        faults = LinkFaults()
        faults.delayBy(20)
        self.assertEqual((faults.mode, faults.delay), (DELAY, 0.02))
        faults.restore()
        self.assertEqual((faults.mode, faults.delay), (PASS, 0.0))
