"""
Tests for L{benchmarks.fuzz}: the mutators (deterministic for a seed), the
oracles (shown able to fail: each flags a deliberately wrong reply or
session), and every part run with small counts, asserting the oracles hold.

The AMP and control parts once found exceptions escaping C{dataReceived}
of the supervisor's AMP protocols (benchmarks/FUZZ.md); AMPEscapeTests
keeps the inputs that did it.
"""

from __future__ import annotations

import os
import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from benchmarks import fuzz
from gslb_twisted.mep import frames
from gslb_twisted.supervisor import CHILD_AMP_OUT, ControlProtocol

def query(name="www.fuzz.gslb", rdtype="A", **kwargs) -> bytes:
    kwargs.setdefault("use_edns", False)
    kwargs.setdefault("id", 4242)
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()


class MutatorTests(SynchronousTestCase):
    def test_dnsDeterministic(self) -> None:
        seeds = fuzz.seedQueries()

        def inputs(seed):
            rng = random.Random(seed)
            return [fuzz.dnsInput(seeds, rng) for _ in range(300)]

        self.assertEqual(inputs(5), inputs(5))
        self.assertNotEqual(inputs(5), inputs(6))

    def test_everyMutationRuns(self) -> None:
        """Each kind of mutation, on every seed, gives bytes (possibly empty)."""
        rng = random.Random(1)
        for wire in fuzz.seedQueries() + [b"", b"\x00" * 5]:
            for kind in fuzz.DNS_MUTATIONS:
                self.assertIsInstance(fuzz.mutateDNS(wire, rng, kind), bytes)
        once = [fuzz.mutateDNS(query(), random.Random(7), kind) for kind in fuzz.DNS_MUTATIONS]
        self.assertEqual(once, [fuzz.mutateDNS(query(), random.Random(7), kind) for kind in fuzz.DNS_MUTATIONS])

    def test_mixesRandomAndMutated(self) -> None:
        rng = random.Random(2)
        kinds = [fuzz.dnsInput(fuzz.seedQueries(), rng)[0] for _ in range(1000)]
        self.assertGreater(kinds.count("random"), 80)
        self.assertGreater(kinds.count("mutated"), 700)

    def test_seedsValid(self) -> None:
        """Every seed is a query dnspython reads (the mutations start from sound messages)."""
        for wire in fuzz.seedQueries():
            dns.message.from_wire(wire)

    def test_ecsOptionsBothKinds(self) -> None:
        """The ECS generator makes sound options and broken ones."""
        rng = random.Random(3)
        verdicts = {fuzz._ecsProblem(fuzz._ecsOption(rng)[4:]) for _ in range(500)}
        self.assertIn(None, verdicts)
        self.assertTrue({"family", "prefix", "length", "bits"} & verdicts)

    def test_framesDeterministic(self) -> None:
        def streams(seed):
            rng = random.Random(seed)
            out = []
            for _ in range(100):
                frameList = fuzz.peerFrames(rng, "appliance", "east", "gslb1", b"s", b"\x01" * 32, b"\x02" * 32)
                out.append(fuzz.mutateFrames(frameList, rng, 4096))
            return out

        self.assertEqual(streams(1), streams(1))
        self.assertNotEqual(streams(1), streams(2))

    def test_peerFramesValid(self) -> None:
        """Unmutated, a peer's frames decode without error."""
        rng = random.Random(4)
        for role in ("appliance", "site"):
            frameList = fuzz.peerFrames(rng, role, "p", "l", b"s", b"\x01" * 32, b"\x02" * 32)
            key = fuzz.peerKey(role, "p", "l", b"s", b"\x01" * 32, b"\x02" * 32)
            self.assertIsNone(fuzz.decoderVerdict(b"".join(frameList), frames.DEFAULT_MAX_FRAME_SIZE, key))
            if len(frameList) > 2:  # frames after AUTH are sealed: without the key they are not sound
                self.assertIsNotNone(fuzz.decoderVerdict(b"".join(frameList), frames.DEFAULT_MAX_FRAME_SIZE))

    def test_ampDeterministic(self) -> None:
        valid = fuzz.controlBoxes()
        extra = fuzz.craftedBoxes([b"ShowCores"])

        def inputs(seed):
            rng = random.Random(seed)
            return [fuzz.ampInput(valid, extra, rng) for _ in range(200)]

        self.assertEqual(inputs(1), inputs(1))
        self.assertNotEqual(inputs(1), inputs(2))

    def test_rawBox(self) -> None:
        self.assertEqual(fuzz.rawBox([(b"a", b"bc")]), b"\x00\x01a\x00\x02bc\x00\x00")


class DNSOracleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.authority = fuzz.buildAuthority()

    def reply(self, wire, tcp=False):
        return self.authority.respond(wire, fuzz.CLIENT, tcp)

    def test_goodReplies(self) -> None:
        for wire in fuzz.seedQueries():
            for tcp in (False, True):
                self.assertEqual(fuzz.checkReply(wire, self.reply(wire, tcp), tcp), [], wire.hex())

    def test_wrongID(self) -> None:
        wire = query()
        reply = self.reply(wire)
        bad = b"\x00\x01" + reply[2:]
        self.assertIn("reply ID", fuzz.checkReply(wire, bad, False)[0])

    def test_missingQR(self) -> None:
        wire = query()
        reply = bytearray(self.reply(wire))
        reply[2] &= 0x7F
        self.assertIn("QR not set in the reply", fuzz.checkReply(wire, bytes(reply), False))

    def test_formerrForValidQuery(self) -> None:
        wire = query()
        reply = bytearray(self.reply(wire))
        reply[3] = (reply[3] & 0xF0) | dns.rcode.FORMERR
        self.assertIn("FORMERR for a well formed query", fuzz.checkReply(wire, bytes(reply), False))

    def test_droppedReadable(self) -> None:
        self.assertEqual(fuzz.checkReply(query(), None, False), ["dropped a query whose header is readable"])

    def test_drops(self) -> None:
        """Under 12 bytes, or QR set: dropping is right, answering is not."""
        for wire in (b"", b"\x00" * 11, b"\x00\x00\x80" + b"\x00" * 9):
            self.assertEqual(fuzz.checkReply(wire, None, False), [])
            self.assertEqual(self.reply(wire), None)
        self.assertEqual(fuzz.checkReply(b"\x00\x00\x80" + b"\x00" * 9, self.reply(query()), False),
                         ["answered a message that must be dropped"])

    def test_rcodes(self) -> None:
        """SERVFAIL only for the vserver that is down; other RCODEs not at all."""
        dark = query("dark.fuzz.gslb")
        self.assertEqual(dns.message.from_wire(self.reply(dark)).rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(fuzz.checkReply(dark, self.reply(dark), False), [])
        wire = query()
        reply = bytearray(self.reply(wire))
        reply[3] = (reply[3] & 0xF0) | dns.rcode.SERVFAIL
        self.assertIn("rcode SERVFAIL not allowed here", fuzz.checkReply(wire, bytes(reply), False))
        reply[3] = (reply[3] & 0xF0) | 9
        self.assertIn("not allowed here", fuzz.checkReply(wire, bytes(reply), False)[0])

    def test_opcodeNotImp(self) -> None:
        message = dns.message.make_query("www.fuzz.gslb", "A", use_edns=False)
        message.set_opcode(dns.opcode.STATUS)
        wire = message.to_wire()
        self.assertEqual(fuzz.checkReply(wire, self.reply(wire), False), [])
        self.assertIn("not NOTIMP", fuzz.checkReply(wire, self.reply(query()), False)[-1])

    def test_unparseable(self) -> None:
        wire = query()
        self.assertIn("dnspython cannot parse", fuzz.checkReply(wire, self.reply(wire)[:-3], False)[0])

    def test_udpSize(self) -> None:
        """Without EDNS a UDP reply fits 512 bytes; with EDNS the payload asked, capped at 1232."""
        wire = query("many.fuzz.gslb", "AAAA")
        big = self.reply(wire, tcp=True)  # 40 addresses: over 512 bytes, fine over TCP
        self.assertGreater(len(big), 512)
        self.assertEqual(fuzz.checkReply(wire, big, True), [])
        self.assertIn(f"UDP reply of {len(big)} bytes exceeds 512", fuzz.checkReply(wire, big, False))
        self.assertEqual(fuzz.checkReply(wire, self.reply(wire), False), [])  # truncated: TC, fits
        self.assertEqual(fuzz.udpLimit(dns.message.from_wire(query(use_edns=0, payload=4096))), 1232)
        self.assertEqual(fuzz.udpLimit(dns.message.from_wire(query(use_edns=0, payload=100))), 512)
        self.assertEqual(fuzz.udpLimit(dns.message.from_wire(query(use_edns=0, payload=700))), 700)
        self.assertEqual(fuzz.udpLimit(None), 512)

    def test_wellFormed(self) -> None:
        self.assertIsNotNone(fuzz.wellFormedQuery(query()))
        self.assertIsNotNone(fuzz.wellFormedQuery(
            query("hash.fuzz.gslb", use_edns=0, options=[dns.edns.ECSOption("192.0.2.0", 24)])))

    def test_notWellFormed(self) -> None:
        header = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0)
        question = b"\x03www\x04fuzz\x04gslb\x00\x00\x01\x00\x01"
        self.assertIsNone(fuzz.wellFormedQuery(header + question + b"x"))  # trailing byte
        self.assertIsNone(fuzz.wellFormedQuery(header + b"\xc0\x0c\x00\x01\x00\x01"))  # compressed question
        self.assertIsNone(fuzz.wellFormedQuery(header + b"\x00\x00\x29\x00\x01"))  # type OPT
        twoQuestions = struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + question * 2
        self.assertIsNone(fuzz.wellFormedQuery(twoQuestions))
        # An OPT owned by a pointer to the root; an answer owner pointing into the header.
        withOpt = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 1) + b"\x00\x00\x01\x00\x01"
        self.assertIsNotNone(fuzz.wellFormedQuery(withOpt + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)))
        self.assertIsNone(fuzz.wellFormedQuery(withOpt + b"\xc0\x0c" + struct.pack("!HHIH", 41, 1232, 0, 0)))
        intoHeader = struct.pack("!HHHHHH", 1, 0, 1, 1, 0, 0) + question + b"\xc0\x00" + struct.pack(
            "!HHIH", 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
        self.assertIsNone(fuzz.wellFormedQuery(intoHeader))
        badECS = query("hash.fuzz.gslb", use_edns=0, options=[dns.edns.GenericOption(8, b"\x00\x01\x18\x05\xc0\x00\x02")])
        self.assertIsNone(fuzz.wellFormedQuery(badECS))

    def test_ecsProblems(self) -> None:
        self.assertIsNone(fuzz._ecsProblem(b"\x00\x01\x18\x00\xc0\x00\x02"))
        self.assertIsNone(fuzz._ecsProblem(b"\x00\x02\x00\x00"))
        self.assertEqual(fuzz._ecsProblem(b"\x00\x01\x18"), "short")
        self.assertEqual(fuzz._ecsProblem(b"\x00\x03\x00\x00"), "family")
        self.assertEqual(fuzz._ecsProblem(b"\x00\x01\x21\x00" + b"\x00" * 5), "prefix")
        self.assertEqual(fuzz._ecsProblem(b"\x00\x01\x18\x01\xc0\x00\x02"), "prefix")
        self.assertEqual(fuzz._ecsProblem(b"\x00\x01\x18\x00\xc0\x00"), "length")
        self.assertEqual(fuzz._ecsProblem(b"\x00\x01\x17\x00\xc0\x00\x03"), "bits")

    def test_matchReply(self) -> None:
        first, second = query(id=1), query("other.test", id=2)
        reply = self.reply(second)
        self.assertEqual(fuzz.matchReply(reply, [first, second], False), ("NOERROR", []))
        self.assertEqual(fuzz.matchReply(reply, [first], False)[0], "unmatched")

    def test_splitFrames(self) -> None:
        stream = b"\x00\x02ab\x00\x01c\x00\x05de"
        self.assertEqual(fuzz.splitFrames(stream), [b"ab", b"c"])

    def test_logProblems(self) -> None:
        text = "ok\n2026 [core-0] Traceback (most recent call last):\nfine\nUnhandled Error\n"
        self.assertEqual(len(fuzz.logProblems(text)), 2)


class MEPOracleTests(SynchronousTestCase):
    def test_clean(self) -> None:
        self.assertEqual(fuzz.checkMEPSession(None, "established", False, 0, ["closed"], 0), [])
        self.assertEqual(fuzz.checkMEPSession("bad-frame", "closed", True, 1, ["error:bad-frame"], 0), [])

    def test_malformedLeftOpen(self) -> None:
        problems = fuzz.checkMEPSession("bad-payload", "established", False, 0, ["closed"], 0)
        self.assertEqual(problems, ["malformed frame (bad-payload) left the session established"])

    def test_logging(self) -> None:
        self.assertIn("a closed session logged 2 warnings, not 1",
                      fuzz.checkMEPSession("bad-frame", "closed", True, 2, ["x"], 0))
        self.assertIn("a closed session logged 0 warnings, not 1",
                      fuzz.checkMEPSession(None, "closed", True, 0, ["x"], 0))
        self.assertIn("an open session logged 1 warnings", fuzz.checkMEPSession(None, "handshake", False, 1, ["x"], 0))

    def test_lostAndTimers(self) -> None:
        self.assertIn("sessionLost called 2 times", fuzz.checkMEPSession(None, "handshake", False, 0, ["a", "b"], 0))
        self.assertIn("1 timers left after the connection ended",
                      fuzz.checkMEPSession(None, "handshake", False, 0, ["a"], 1))
        self.assertIn("closed session did not drop its connection",
                      fuzz.checkMEPSession("bad-frame", "closed", False, 1, ["a"], 0))

    def test_verdict(self) -> None:
        good = frames.encodeFrame(frames.KEEPALIVE, {"ts": 1.0})
        self.assertIsNone(fuzz.decoderVerdict(good, 4096))
        self.assertEqual(fuzz.decoderVerdict(b"\x00\x00\x20\x00\x06", 4096), "frame-too-large")
        self.assertEqual(fuzz.decoderVerdict(good[:5] + b"[" + good[6:], 4096), "bad-payload")


class AMPOracleTests(SynchronousTestCase):
    def test_unanswered(self) -> None:
        ask = fuzz.rawBox([(b"_command", b"ShowCores"), (b"_ask", b"5")])
        self.assertEqual(fuzz.unanswered(ask, b""), [b"5"])
        self.assertEqual(fuzz.unanswered(ask, fuzz.rawBox([(b"_answer", b"5")])), [])
        self.assertEqual(fuzz.unanswered(ask, fuzz.rawBox([(b"_error", b"5")])), [])
        self.assertEqual(fuzz.unanswered(ask[:-3], b""), [])  # no whole box: nothing asked yet

    def test_controlServesFlagsSilence(self) -> None:
        """C{controlServes} fails when the endpoint does not answer (here: a monitor with no row)."""
        reactor, monitor = fuzz.makeMonitor(1)
        self.assertEqual(fuzz.controlServes(reactor, monitor), [])
        monitor.describeCores = lambda timeout=1.0: defer.Deferred()  # a supervisor that never answers
        self.assertTrue(fuzz.controlServes(reactor, monitor))
        monitor.stopService()

    def test_supervisorServes(self) -> None:
        reactor, monitor = fuzz.makeMonitor(3)
        self.assertEqual(fuzz.supervisorServes(reactor, monitor, 1, 2), [])
        monitor.hub.leave(2, monitor.slots[2].protocol.connection)
        self.assertIn("core 1's Publish did not reach core 2", fuzz.supervisorServes(reactor, monitor, 1, 2))
        monitor.stopService()


class PartTests(SynchronousTestCase):
    """Every in-process part with small counts: the oracles hold."""

    def test_dns(self) -> None:
        result = fuzz.runDNS(4000, seed=3, maxFailures=10, tracePackets=2000)
        self.assertEqual((result.failures, result.examples), (0, []))
        self.assertEqual(result.inputs, 4000)
        self.assertEqual(sum(result.outcomes.values()), 4000)
        self.assertTrue(any("FORMERR" in k for k in result.outcomes))
        self.assertTrue(any("NOERROR" in k for k in result.outcomes))
        self.assertTrue(any("dropped" in k for k in result.outcomes))

    def test_dnsReproducible(self) -> None:
        first = fuzz.runDNS(500, seed=9, maxFailures=10, tracePackets=0)
        second = fuzz.runDNS(500, seed=9, maxFailures=10, tracePackets=0)
        self.assertEqual(first.outcomes, second.outcomes)

    def test_dnsReportsException(self) -> None:
        """An exception out of respond() is a failure, with the input's hex."""

        class Raising:
            queries = fastAnswers = 0

            def respond(self, data, client, tcp):
                raise ValueError("boom")

        result = fuzz.runDNS(5, seed=1, maxFailures=3, tracePackets=0, authority=Raising())
        self.assertEqual(result.failures, 3)
        self.assertIn("ValueError at benchmarks/test_fuzz.py", result.examples[0]["signature"])
        self.assertTrue(result.examples[0]["hex"])
        self.assertFalse(result.passed)

    def test_mep(self) -> None:
        result = fuzz.runMEP(2500, seed=3, maxFailures=10)
        self.assertEqual((result.failures, result.examples), (0, []))
        self.assertEqual(result.inputs, 2500)
        closed = sum(n for k, n in result.outcomes.items() if "closed" in k)
        self.assertGreater(closed, 1000)
        self.assertTrue(any(k.startswith("clean established") for k in result.outcomes))

    def test_ampKeepsServing(self) -> None:
        """Whatever core 0 sends, cores 1 and 2 are still served (this holds today)."""
        result = fuzz.runAMP(400, seed=3, maxFailures=400, checkEvery=50)
        self.flushLoggedErrors()
        self.assertNotIn("supervisor stopped serving", result.signatures)
        self.assertNotIn("core 0 not respawned", result.signatures)
        self.assertEqual(result.inputs, 400)

    def test_ampNoException(self) -> None:
        result = fuzz.runAMP(400, seed=3, maxFailures=400, checkEvery=50)
        self.flushLoggedErrors()
        self.assertEqual(result.signatures, {})


    def test_controlKeepsServing(self) -> None:
        """The endpoint answers every sound command (or drops the connection) and keeps serving."""
        result = fuzz.runControl(400, seed=3, maxFailures=400, checkEvery=50)
        self.flushLoggedErrors()
        self.assertNotIn("control endpoint stopped serving", result.signatures)
        self.assertNotIn("command never answered", result.signatures)
        self.assertEqual(result.notes["subscribers_left"], 0)

    def test_controlNoException(self) -> None:
        result = fuzz.runControl(400, seed=3, maxFailures=400, checkEvery=50)
        self.flushLoggedErrors()
        self.assertEqual(result.signatures, {})



class AMPEscapeTests(SynchronousTestCase):
    """
    The three inputs the fuzzer reduced the escapes to, one test each, on
    the supervisor's two AMP protocols.  They pass once a malformed box
    closes the connection (or is ignored) instead of raising.
    """

    INPUTS = {
        "empty box": b"\x00\x00",
        "answer to no question": fuzz.rawBox([(b"_answer", b"424242")]),
        "error to no question": fuzz.rawBox([(b"_error", b"424242"), (b"_error_code", b"X"),
                                             (b"_error_description", b"y")]),
        "undecodable command name": fuzz.rawBox([(b"_command", b"Publis\xec"), (b"topic", b"t"), (b"body", b"b")]),
    }

    def feedCore(self, data: bytes) -> None:
        reactor, monitor = fuzz.makeMonitor(2)
        self.addCleanup(monitor.stopService)
        monitor.slots[0].protocol.childDataReceived(CHILD_AMP_OUT, data)

    def feedControl(self, data: bytes) -> None:
        reactor, monitor = fuzz.makeMonitor(1)
        self.addCleanup(monitor.stopService)
        protocol = ControlProtocol(monitor)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(data)

    def test_core(self) -> None:
        for name, data in self.INPUTS.items():
            try:
                self.feedCore(data)
            except Exception as e:
                self.fail(f"{name}: {type(e).__name__}: {e}")
        self.assertEqual(len(self.flushLoggedErrors()), len(self.INPUTS))


    def test_control(self) -> None:
        for name, data in self.INPUTS.items():
            try:
                self.feedControl(data)
            except Exception as e:
                self.fail(f"{name}: {type(e).__name__}: {e}")
        self.assertEqual(len(self.flushLoggedErrors()), len(self.INPUTS))


    def test_coreEndedAndLoggedOnce(self) -> None:
        """A core that sends garbage is logged once and stopped (to be respawned)."""
        for data in self.INPUTS.values():
            reactor, monitor = fuzz.makeMonitor(2)
            self.addCleanup(monitor.stopService)
            slot = monitor.slots[0]
            slot.protocol.childDataReceived(CHILD_AMP_OUT, data)
            slot.protocol.childDataReceived(CHILD_AMP_OUT, data)
            self.assertEqual(len(self.flushLoggedErrors()), 1)
            self.assertEqual(slot.state, "stopping")

    def test_controlClosed(self) -> None:
        for data in self.INPUTS.values():
            reactor, monitor = fuzz.makeMonitor(1)
            self.addCleanup(monitor.stopService)
            protocol = ControlProtocol(monitor)
            transport = StringTransport()
            protocol.makeConnection(transport)
            protocol.dataReceived(data)
            self.assertTrue(transport.disconnecting)
            self.assertEqual(len(self.flushLoggedErrors()), 1)


class WireTests(SynchronousTestCase):
    """One short run against a real appliance (two cores): about 5 s."""

    def test_wire(self) -> None:
        results = self.mktemp()
        os.makedirs(results)
        result = fuzz.runWire(400, 60, seed=3, maxFailures=10, resultsDir=results)
        self.assertIsNone(result.error, result.error)
        self.assertEqual((result.failures, result.examples), (0, []))
        self.assertEqual(result.notes["udp_sent"], 400)
        self.assertGreaterEqual(result.notes["tcp_messages"], 60)
        self.assertGreater(result.notes["udp_replies"], 0)
        self.assertEqual(result.notes["log_tracebacks"], 0)
        self.assertEqual(len(result.notes["cores_after"]), 2)


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = fuzz.parseArguments([])
        self.assertEqual((options.dns_packets, options.wire_packets, options.mep_frames), (1_000_000, 100_000, 100_000))
        self.assertEqual(options.skip, set())

    def test_skip(self) -> None:
        self.assertEqual(fuzz.parseArguments(["--skip", "wire, amp"]).skip, {"wire", "amp"})

    def test_badSkip(self) -> None:
        self.assertRaises(SystemExit, fuzz.parseArguments, ["--skip", "nope"])

    def test_summary(self) -> None:
        good = fuzz.PartResult("dns", inputs=10, seconds=2.0)
        bad = fuzz.PartResult("mep", inputs=1, seconds=1.0)
        bad.fail("sig", b"\x01", "detail", 5)
        table = fuzz.summaryTable([good, bad, fuzz.PartResult("wire", skipped=True)])
        self.assertIn("PASS", table)
        self.assertIn("FAIL", table)
        self.assertIn("skipped", table)
        self.assertEqual(bad.examples[0]["hex"], "01")
        self.assertFalse(fuzz.PartResult("x", skipped=True).passed)
