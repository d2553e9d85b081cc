"""
A population's clients (L{gslb_twisted.scenario.clients}): queries with an
EDNS Client Subnet option as RFC 7871 writes it (read back with dnslib,
an independent decoder), and every answer and lost query handed to the
run.  A fake clock and fake UDP transports.
"""

from __future__ import annotations

import dnslib
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.scenario.clients import ScenarioLoad, ecsOption, encodeQuery

EAST = "192.0.2.10"


def reply(query: bytes, addresses=()) -> bytes:
    """The reply a server would send to C{query} (dnslib: an independent encoder)."""
    record = dnslib.DNSRecord.parse(query)
    response = record.reply()
    for address in addresses:
        response.add_answer(dnslib.RR(str(record.q.qname), dnslib.QTYPE.A, rdata=dnslib.A(address), ttl=5))
    return response.pack()


class FakeTransport:
    """A connected UDP port that keeps what is written."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def connect(self, host, port) -> None:
        self.connected = (host, port)

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def stopListening(self):
        return None


class FakeReactor:
    """listenUDP only: each protocol gets a L{FakeTransport}."""

    def __init__(self) -> None:
        self.bound: list[tuple[str, object, FakeTransport]] = []

    def listenUDP(self, port, protocol, interface=""):
        transport = FakeTransport()
        protocol.makeConnection(transport)
        self.bound.append((interface, protocol, transport))
        return transport


class WireTests(SynchronousTestCase):
    def test_ecsOption(self):
        self.assertEqual(ecsOption("127.0.3.0/24"), bytes([0, 8, 0, 7, 0, 1, 24, 0, 127, 0, 3]))
        self.assertEqual(ecsOption("10.0.0.0/12"), bytes([0, 8, 0, 6, 0, 1, 12, 0, 10, 0]))
        self.assertEqual(ecsOption("2001:db8::/32"), bytes([0, 8, 0, 8, 0, 2, 32, 0, 0x20, 0x01, 0x0d, 0xb8]))
        self.assertEqual(ecsOption("0.0.0.0/0"), bytes([0, 8, 0, 4, 0, 1, 0, 0]))
        self.assertRaises(ValueError, ecsOption, "127.0.3.1/24")

    def test_queryWithECSReadByDnslib(self):
        query, question = encodeQuery("Near.SCN.gslb", 1, "127.0.5.0/24", qid=77)
        record = dnslib.DNSRecord.parse(query)
        self.assertEqual((record.header.id, str(record.q.qname), record.q.qtype, record.header.ar),
                         (77, "near.scn.gslb.", 1, 1))
        (opt,) = record.ar
        self.assertEqual((opt.rtype, opt.rclass, opt.ttl), (dnslib.QTYPE.OPT, 1232, 0))
        (option,) = opt.rdata
        self.assertEqual((option.code, option.data), (8, bytes([0, 1, 24, 0, 127, 0, 5])))
        self.assertEqual(question, query[12:12 + len(question)])
        self.assertTrue(query.endswith(option.data))

    def test_queryWithoutECS(self):
        query, question = encodeQuery("www.scn.gslb", 28)
        self.assertEqual(query[12:], question)
        self.assertEqual(dnslib.DNSRecord.parse(query).header.ar, 0)


class LoadTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(500.0)
        self.reactor = FakeReactor()
        self.answers = []
        self.lost = []
        self.queries = []

    def load(self, **kwargs) -> ScenarioLoad:
        load = ScenarioLoad(self.reactor, ("127.0.0.1", 5300), ["near.scn.gslb"], 100, ["127.77.1.1", "127.77.1.2"], 1.0,
                            onAnswer=self.answers.append, onLost=self.lost.append, tick=0.01, clock=self.clock,
                            **kwargs)
        load.start()
        return load

    def run_(self, seconds: float, answer: bool = True) -> None:
        """Tick for C{seconds}; the server answers every query at once, or none (they are dropped)."""
        for _ in range(round(seconds / 0.01)):
            self.clock.advance(0.01)
            for _, protocol, transport in self.reactor.bound:
                for query in transport.sent:
                    self.queries.append(query)
                    if answer:
                        protocol.datagramReceived(reply(query, [EAST]), ("127.0.0.1", 5300))
                transport.sent.clear()

    def test_everyQueryCarriesTheSubnetAndEveryAnswerIsHandedOver(self):
        load = self.load(ecs="127.0.3.0/24")
        self.run_(0.5)
        self.assertEqual(len(self.answers), 50)
        self.assertEqual(len(self.queries), 50)
        for query in self.queries:
            (opt,) = dnslib.DNSRecord.parse(query).ar
            self.assertEqual(opt.rdata[0].data, bytes([0, 1, 24, 0, 127, 0, 3]))
        answer = self.answers[0]
        self.assertEqual((answer.name, answer.addresses, answer.rcode), ("near.scn.gslb", (EAST,), 0))
        self.assertEqual(load.totals.wrong, 0)  # (the run judges, not the generator)
        self.assertEqual(self.lost, [])

    def test_lostQueriesHandedOverWithTheirSendTime(self):
        load = self.load()
        self.run_(0.2, answer=False)
        self.run_(1.5)
        self.assertEqual(len(self.lost), 20)
        self.assertTrue(all(500.0 <= t < 500.21 for t in self.lost), self.lost)
        self.assertEqual(load.totals.lost, 20)
        d = load.stop()
        self.clock.advance(0.01)
        self.successResultOf(d)
