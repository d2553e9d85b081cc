"""
The chaos load generator (L{gslb_twisted.chaos.load}), deterministic: a
fake clock, fake UDP transports, replies made with dnslib.  What a chaos
test reads from it: how many queries were sent, answered, lost and wrong,
when, and with which latency.
"""

from __future__ import annotations

import dnslib
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.chaos.load import (
    A,
    AAAA,
    Answer,
    DownWindows,
    Flight,
    LatencyHistogram,
    LoadGenerator,
    Pacer,
    Timeline,
    encodeQuery,
    loopbackSources,
    normaliseQueries,
    parseResponse,
)

EAST, WEST = "192.0.2.10", "198.51.100.10"
SITE_OF = {EAST: "east", WEST: "west"}


def reply(query: bytes, addresses=(), rcode: int = 0, name=None) -> bytes:
    """The reply a server would send to C{query} (dnslib: an independent encoder)."""
    record = dnslib.DNSRecord.parse(query)
    response = record.reply()
    response.header.rcode = rcode
    owner = name or str(record.q.qname)
    for address in addresses:
        if ":" in address:
            response.add_answer(dnslib.RR(owner, dnslib.QTYPE.AAAA, rdata=dnslib.AAAA(address), ttl=5))
        else:
            response.add_answer(dnslib.RR(owner, dnslib.QTYPE.A, rdata=dnslib.A(address), ttl=5))
    if name is not None:
        response.q.qname = name
    return response.pack()


class WireTests(SynchronousTestCase):
    def test_queryIsWhatDnslibReads(self):
        query = encodeQuery("WWW.Test.GSLB.", AAAA, qid=4242)
        record = dnslib.DNSRecord.parse(query)
        self.assertEqual((record.header.id, str(record.q.qname), record.q.qtype, record.header.rd),
                         (4242, "www.test.gslb.", dnslib.QTYPE.AAAA, 0))

    def test_parsesAnswersWithCompressedNames(self):
        query = encodeQuery("www.test.gslb", A, qid=7)
        parsed = parseResponse(reply(query, [EAST, WEST]))
        self.assertEqual((parsed.qid, parsed.rcode, parsed.truncated, parsed.addresses),
                         (7, 0, False, (EAST, WEST)))
        self.assertEqual(parsed.question, query[12:])
        six = parseResponse(reply(encodeQuery("www.test.gslb", AAAA), ["2001:db8::10"]))
        self.assertEqual(six.addresses, ("2001:db8::10",))

    def test_rcodeAndTruncation(self):
        record = dnslib.DNSRecord.parse(reply(encodeQuery("x.test.gslb"), rcode=3))
        record.header.tc = 1
        parsed = parseResponse(record.pack())
        self.assertEqual((parsed.rcode, parsed.truncated, parsed.addresses), (3, True, ()))

    def test_refusesWhatIsNotAReply(self):
        query = encodeQuery("www.test.gslb")
        self.assertRaises(ValueError, parseResponse, query)  # QR clear
        self.assertRaises(ValueError, parseResponse, b"\x00\x01")
        whole = reply(query, [EAST])
        self.assertRaises(ValueError, parseResponse, whole[:-2])

    def test_badNamesAndTypes(self):
        self.assertRaises(ValueError, encodeQuery, "a" * 64 + ".gslb")
        self.assertRaises(ValueError, normaliseQueries, [("www.test.gslb", "MX")])
        self.assertRaises(ValueError, normaliseQueries, [])
        self.assertEqual(normaliseQueries(["a.gslb", ("b.gslb", "aaaa")]), [("a.gslb", A), ("b.gslb", AAAA)])
        self.assertEqual(loopbackSources(3), ["127.0.1.1", "127.0.1.2", "127.0.1.3"])
        self.assertRaises(ValueError, loopbackSources, 255)


class FlightTests(SynchronousTestCase):
    def test_idsInTurnSkippingThoseInFlight(self):
        flight = Flight(start=65534)
        self.assertEqual([flight.allocate(0.0, 0) for _ in range(3)], [65534, 65535, 0])
        flight = Flight()
        flight.allocate(0.0, 0)  # id 0 stays in flight
        for t in range(1, 65536):
            qid = flight.allocate(float(t), 0)
            flight.settle(qid)
        self.assertEqual(flight.allocate(99.0, 0), 1, "id 0 is still in flight: skipped")

    def test_expireOldestFirstAndLateAnswersRecognised(self):
        flight = Flight()
        ids = [flight.allocate(t, query) for query, t in enumerate((0.0, 0.5, 1.0))]
        self.assertEqual(flight.expire(0.75), [(0.0, 0), (0.5, 1)])
        self.assertEqual(len(flight), 1)
        self.assertIsNone(flight.settle(ids[0]))
        self.assertTrue(flight.wasLost(ids[0]))
        self.assertFalse(flight.wasLost(ids[0]), "a late answer counts once")
        self.assertEqual(flight.settle(ids[2]), (1.0, 2))

    def test_lostIdsAreNotReusedSoon(self):
        flight = Flight()
        first = flight.allocate(0.0, 0)
        flight.expire(1.0)
        for t in range(65534):
            qid = flight.allocate(2.0, 0)
            self.assertNotEqual(qid, first)
            flight.settle(qid)

    def test_everyIdTaken(self):
        flight = Flight()
        for _ in range(65536):
            flight.allocate(0.0, 0)
        self.assertIsNone(flight.allocate(0.0, 0))


class PacerTests(SynchronousTestCase):
    def test_steadyRateWhateverTheTicks(self):
        pacer = Pacer(1000)
        sent = pacer.due(0.0)
        t = 0.0
        for step in [0.01, 0.013, 0.007, 0.02] * 25:
            t += step
            sent += pacer.due(t)
        self.assertEqual(sent, 1250)  # 1.25 s at 1000/s
        self.assertEqual(pacer.skipped, 0)

    def test_aLateTickDoesNotBurst(self):
        pacer = Pacer(1000, maxCatchUp=0.1)
        pacer.due(0.0)
        self.assertEqual(pacer.due(2.0), 100)
        self.assertEqual(pacer.skipped, 1900)


class HistogramAndTimelineTests(SynchronousTestCase):
    def test_percentiles(self):
        histogram = LatencyHistogram()
        for ms in [1] * 90 + [10] * 9 + [200]:
            histogram.add(ms / 1000)
        summary = histogram.summary()
        self.assertEqual((summary["n"], summary["min"], summary["max"]), (100, 1.0, 200.0))
        self.assertTrue(1.0 <= summary["p50"] <= 1.22, summary)  # one bin: 12 per decade
        self.assertTrue(10.0 <= summary["p99"] <= 12.2, summary)
        self.assertIsNone(LatencyHistogram().percentile(50))

    def test_bucketsBySendTimeAndBounded(self):
        timeline = Timeline(100.0, 0.5, maxBuckets=4)
        timeline.at(100.2).sent += 1
        timeline.at(101.1).sent += 2
        self.assertEqual([(row["start"], row["sent"]) for row in timeline.rows()], [(0.0, 1), (0.5, 0), (1.0, 2)])
        timeline.at(102.6).sent += 3
        self.assertEqual([row["start"] for row in timeline.rows()], [1.0, 1.5, 2.0, 2.5])
        self.assertIsNone(timeline.at(100.2), "evicted: only the totals keep it")
        timeline.at(1000.0).sent += 1
        self.assertEqual([(row["start"], row["sent"]) for row in timeline.rows()], [(900.0, 1)])


class DownWindowsTests(SynchronousTestCase):
    def answer(self, sent, received, *addresses) -> Answer:
        return Answer("www.test.gslb", A, 0, addresses, sent, received, "127.0.1.1")

    def test_wrongOnlyWhileCertainlyDown(self):
        windows = DownWindows(SITE_OF)
        windows.down("east", 10.0)
        windows.up("east", 20.0)
        self.assertIsNone(windows(self.answer(9.9, 10.1, EAST)), "sent before it was known DOWN")
        self.assertIn("192.0.2.10 is an address of site east", windows(self.answer(10.0, 10.1, WEST, EAST)))
        self.assertIsNone(windows(self.answer(19.9, 20.1, EAST)), "it may have come back meanwhile")
        self.assertIsNone(windows(self.answer(25.0, 25.1, EAST)))
        self.assertIsNone(windows(self.answer(15.0, 15.1, WEST)))
        windows.down("east", 30.0)
        windows.down("east", 31.0)  # still the same window
        self.assertEqual(len(windows.windows["east"]), 2)
        self.assertIsNotNone(windows(self.answer(30.5, 99.0, EAST)))


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.connected = None
        self.failWith = None
        self.stopped = False

    def connect(self, host, port) -> None:
        self.connected = (host, port)

    def write(self, data: bytes) -> None:
        if self.failWith is not None:
            raise self.failWith
        self.sent.append(data)

    def stopListening(self):
        self.stopped = True


class FakeReactor:
    """listenUDP only: each protocol gets a L{FakeTransport}."""

    def __init__(self) -> None:
        self.bound: list[tuple[str, object, FakeTransport]] = []

    def listenUDP(self, port, protocol, interface=""):
        transport = FakeTransport()
        protocol.makeConnection(transport)
        self.bound.append((interface, protocol, transport))
        return transport


class LoadGeneratorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.reactor = FakeReactor()
        self.windows = DownWindows(SITE_OF)

    def generator(self, **kwargs) -> LoadGenerator:
        options = dict(rate=100, sources=loopbackSources(2), timeout=1.0, classify=self.windows, tick=0.01,
                       bucketWidth=0.5, clock=self.clock)
        options.update(kwargs)
        generator = LoadGenerator(self.reactor, ("127.0.0.1", 5300), ["www.test.gslb"], **options)
        generator.start()
        return generator

    def answerAll(self, addresses=(EAST,), rcode=0) -> int:
        """The server answers everything sent so far."""
        count = 0
        for _, protocol, transport in self.reactor.bound:
            for query in transport.sent:
                protocol.datagramReceived(reply(query, addresses, rcode), ("127.0.0.1", 5300))
                count += 1
            transport.sent.clear()
        return count

    def runFor(self, seconds: float, answer=None) -> None:
        for _ in range(round(seconds / 0.01)):
            self.clock.advance(0.01)
            if answer is not None:
                self.answerAll(answer)

    def test_steadyRateSpreadOverSourcesAndAnswered(self):
        generator = self.generator()
        self.assertEqual([(interface, transport.connected) for interface, _, transport in self.reactor.bound],
                         [("127.0.1.1", ("127.0.0.1", 5300)), ("127.0.1.2", ("127.0.0.1", 5300))])
        self.runFor(1.0)
        self.assertEqual([len(transport.sent) for _, _, transport in self.reactor.bound], [50, 50])
        self.clock.advance(0.004)
        self.answerAll([EAST])
        counts = generator.totals.counts()
        self.assertEqual((counts["sent"], counts["answered"], counts["lost"], counts["wrong"]), (100, 100, 0, 0))
        self.assertEqual(generator.totals.addresses, {EAST: 100})
        latency = generator.totals.latency.summary()
        self.assertTrue(4.0 <= latency["min"] and latency["max"] <= 1004.0, latency)
        report = self.successResultOf(generator.stop())
        self.assertEqual((report["counts"]["sent"], report["rcodes"], report["sources"]), (100, {"NOERROR": 100}, 2))
        self.assertTrue(all(transport.stopped for _, _, transport in self.reactor.bound))

    def test_unansweredQueriesAreLostAfterTheTimeout(self):
        generator = self.generator()
        self.runFor(0.5)
        generator.setRate(0)
        self.runFor(0.49)
        self.assertEqual((generator.totals.sent, generator.totals.lost), (50, 0), "not before the timeout")
        self.clock.advance(0.045)  # 1.035 s: the queries sent at 0.01, 0.02 and 0.03 s are lost
        self.assertEqual(generator.totals.lost, 3)
        self.runFor(0.5)
        self.assertEqual(generator.totals.lost, 50)
        report = generator.report()
        self.assertEqual((report["first_lost_sent"], report["last_lost_sent"]), (0.01, 0.5))
        self.assertEqual([row["start"] for row in report["buckets"]], [0.0, 0.5, 1.0, 1.5])
        self.assertEqual(sum(row["lost"] for row in report["buckets"]), 50)
        self.assertEqual(report["buckets"][-1]["sent"], 0)

    def test_lateAnswersAreCountedButTheQueryStaysLost(self):
        generator = self.generator(rate=10)
        self.runFor(0.2)
        generator.setRate(0)
        sent = [(protocol, list(transport.sent)) for _, protocol, transport in self.reactor.bound]
        self.runFor(1.5)
        for protocol, queries in sent:
            for query in queries:
                protocol.datagramReceived(reply(query, [EAST]), None)
        counts = generator.totals.counts()
        self.assertEqual((counts["lost"], counts["late"], counts["answered"]), (2, 2, 0))

    def test_wrongAnswersByTheClassifier(self):
        generator = self.generator()
        self.runFor(0.5, answer=[EAST])
        self.windows.down("east", self.clock.seconds())
        self.runFor(0.5, answer=[EAST])
        self.windows.up("east", self.clock.seconds())
        self.runFor(0.5, answer=[WEST])
        counts = generator.totals.counts()
        self.assertEqual((counts["sent"], counts["answered"], counts["wrong"], counts["lost"]), (150, 150, 50, 0))
        report = generator.report()
        self.assertEqual([row["wrong"] for row in report["buckets"]], [0, 50, 0])
        self.assertEqual(len(report["wrong_sample"]), 20, "a bounded sample")
        first = report["wrong_sample"][0]
        self.assertEqual((first["addresses"], first["source"]), ([EAST], "127.0.1.1"))
        self.assertIn("known DOWN", first["reason"])

    def test_failedAndEmptyAnswers(self):
        generator = self.generator(rate=10)
        self.runFor(0.2)
        self.answerAll([], rcode=2)
        self.runFor(0.2)
        self.answerAll([])
        counts = generator.totals.counts()
        self.assertEqual((counts["answered"], counts["failed"], counts["empty"]), (4, 2, 2))
        self.assertEqual(generator.totals.rcodes, {"SERVFAIL": 2, "NOERROR": 2})

    def test_strangeReplies(self):
        generator = self.generator(rate=10)
        self.runFor(0.1)
        _, protocol, transport = self.reactor.bound[0]
        query = transport.sent[0]
        protocol.datagramReceived(b"\x00", None)
        protocol.datagramReceived(reply(encodeQuery("other.test.gslb", qid=12345), [EAST]), None)
        mismatched = bytearray(reply(encodeQuery("other.test.gslb"), [EAST]))
        mismatched[0:2] = query[0:2]
        protocol.datagramReceived(bytes(mismatched), None)
        counts = generator.totals.counts()
        self.assertEqual((counts["malformed"], counts["unexpected"], counts["mismatched"], counts["lost"]),
                         (1, 1, 1, 1))

    def test_sendFailuresAreNotLosses(self):
        generator = self.generator(rate=100, sources=["127.0.1.1"])
        self.reactor.bound[0][2].failWith = BlockingIOError()
        self.runFor(0.1)
        self.reactor.bound[0][2].failWith = ConnectionRefusedError()
        self.runFor(0.1)
        generator.setRate(0)
        self.runFor(2.0)
        counts = generator.totals.counts()
        self.assertEqual((counts["sent"], counts["unsent"], counts["lost"]), (0, 20, 0))
        self.assertEqual(generator.report()["unsent_by"], {"buffer full": 10, "refused": 10})

    def test_burstAndDrainOnStop(self):
        generator = self.generator(rate=0)
        self.assertEqual(generator.burst(1000), 1000)
        self.assertEqual(generator.inFlight, 1000)
        stopped = generator.stop()
        self.assertNoResult(stopped)
        self.clock.advance(0.01)
        answered = 0
        for _, protocol, transport in self.reactor.bound:
            for query in transport.sent[:100]:
                protocol.datagramReceived(reply(query, [WEST]), None)
                answered += 1
        self.assertNoResult(stopped)
        for _ in range(101):
            self.clock.advance(0.01)
        report = self.successResultOf(stopped)
        self.assertEqual((report["counts"]["answered"], report["counts"]["lost"]), (200, 800))
        self.assertEqual(generator.inFlight, 0)
        self.assertEqual(self.successResultOf(generator.stop())["counts"], report["counts"], "stopped once")

    def test_memoryStaysBounded(self):
        """An hour at 10 q/s: buckets, samples and addresses stay bounded."""
        generator = self.generator(rate=10, maxBuckets=60, bucketWidth=1.0, sampleSize=5, tick=1.0)
        generator.totals.maxAddresses = 3
        self.windows.down("east", self.clock.seconds())
        # One reply per address set, its id patched per query (dnslib is slow).
        replies = [reply(encodeQuery("www.test.gslb"), [EAST, f"10.0.{n}.1"]) for n in range(7)]
        for second in range(3600):
            self.clock.advance(1.0)
            for _, protocol, transport in self.reactor.bound:
                for query in transport.sent:
                    protocol.datagramReceived(query[:2] + replies[second % 7][2:], None)
                transport.sent.clear()
        self.assertEqual(generator.totals.answered, 36000)
        self.assertEqual(len(generator.timeline.buckets), 60)
        self.assertEqual(len(generator.totals.wrongSample), 5)
        self.assertEqual(len(generator.totals.addresses), 4)  # 3 + "other"
        self.assertEqual(generator.inFlight, 0)

    def test_rateChangesAndValidation(self):
        generator = self.generator(rate=100, sources=["127.0.1.1"])
        self.runFor(0.5)
        generator.setRate(400)
        self.runFor(0.5)
        self.assertEqual(generator.totals.sent, 250)
        self.assertRaises(ValueError, generator.setRate, -1)
        self.assertRaises(ValueError, LoadGenerator, self.reactor, ("127.0.0.1", 53), ["a.gslb"], rate=float("nan"))
        self.assertRaises(RuntimeError, generator.start)
