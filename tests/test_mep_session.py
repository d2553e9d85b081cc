"""
Tests for L{gslb_twisted.mep.session}: whole sessions between two
L{MEPSession}s joined in memory, and one session against a scripted peer on
a L{StringTransport}; time is a L{Clock}.
"""

from __future__ import annotations

import struct

import os

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gslb_twisted.mep import auth, frames, tls
from gslb_twisted.mep.frames import FrameDecoder, encodeFrame
from gslb_twisted.mep.session import IMEPHandler, MEPSession

SECRET = b"shared-secret"
KEEPALIVE = 1.0
DEAD = 3.0
METRICS = {"state": "UP", "connections": 12, "response_time": 3.5, "bandwidth": 800.0, "packets": 40, "load": 12.5}
SERVICES = {"east-web": METRICS, "east-db": dict(METRICS, connections=3)}

from tests.support import selfSignedCertificate


@implementer(IMEPHandler)
class RecordingHandler:
    """Records every call; a site handler publishes C{services} at C{seq}."""

    def __init__(self, accept=True, raiseIn=None, services=None, seq=1, rtts=None):
        self.events = []
        self.accept = accept
        self.raiseIn = raiseIn
        self.services = services
        self.seq = seq
        self.rtts = rtts or {}  # a site answers PROBEs with these (the networks it knows)

    def _record(self, name, *args):
        self.events.append((name,) + args)
        if self.raiseIn == name:
            raise RuntimeError(f"handler bug in {name}")

    def authenticated(self, session):
        self._record("authenticated")
        if self.services is not None and self.accept:
            session.sendSnapshot(self.seq, self.services)
        return self.accept

    def snapshotReceived(self, session, seq, services):
        self._record("snapshot", seq, services)

    def deltaReceived(self, session, seq, baseSeq, changes):
        self._record("delta", seq, baseSeq, changes)

    def resyncRequested(self, session):
        self._record("resync")
        session.sendSnapshot(self.seq, self.services)

    def rttMeasured(self, session, rtt):
        self._record("rtt", rtt)

    def probeReceived(self, session, networks):
        self._record("probe", networks)
        session.sendRTT({n: self.rtts[n] for n in networks if n in self.rtts})

    def rttReported(self, session, rtts):
        self._record("rttReport", rtts)

    def sessionsReceived(self, session, entries):
        self._record("sessions", entries)

    def sessionLost(self, session, reason):
        self._record("lost", reason)

    def named(self, name):
        return [e for e in self.events if e[0] == name]


def makeSession(clock, handler, role="appliance", name=None, secret=SECRET, **kw):
    session = MEPSession(
        role=role,
        localName=name or ("gslb1" if role == "appliance" else "east"),
        secret=secret,
        clock=clock,
        keepaliveInterval=KEEPALIVE,
        deadInterval=DEAD,
        handler=handler,
        **kw,
    )
    session.events = []
    session.log = Logger(observer=session.events.append)
    return session


def warnings(session):
    return [e for e in session.events if e["log_level"].name in ("warn", "error", "critical")]


class Pair:
    """An appliance and a site session joined in memory; the site initiates."""

    def __init__(self, test, applianceKw=None, siteKw=None, greet=True):
        self.clock = Clock()
        self.appliance = RecordingHandler(**(applianceKw or {}).pop("handler", {}))
        self.site = RecordingHandler(services=SERVICES, **(siteKw or {}).pop("handler", {}))
        self.a = makeSession(self.clock, self.appliance, "appliance", **(applianceKw or {}))
        self.s = makeSession(self.clock, self.site, "site", **(siteKw or {}))
        self.a.direction, self.s.direction = "inbound", "outbound"
        _, _, self.pump = connectedServerAndClient(lambda: self.a, lambda: self.s, greet=greet, clock=self.clock)

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.pump.flush()


class FullSessionTests(SynchronousTestCase):
    def test_handlerInterface(self):
        verifyObject(IMEPHandler, RecordingHandler())

    def test_session(self):
        """Handshake, authentication, snapshot, deltas, keepalive RTT, close."""
        p = Pair(self)
        for session in (p.a, p.s):
            self.assertEqual(session.state, "established")
            self.assertEqual(session.version, 2)
            self.assertEqual(session.authFailures, 0)
        self.assertEqual((p.a.peerName, p.s.peerName), ("east", "gslb1"))
        self.assertEqual((p.a.peerRole, p.s.peerRole), ("site", "appliance"))
        self.assertEqual(p.appliance.named("snapshot"), [("snapshot", 1, SERVICES)])
        self.assertEqual((p.a.lastSeq, p.s.lastSeq), (1, 1))

        self.assertTrue(p.s.sendDelta(2, 1, {"east-web": {"connections": 15, "state": "DOWN"}}))
        self.assertTrue(p.s.sendDelta(5, 2, {"east-db": {"load": 50}}))
        p.pump.flush()
        self.assertEqual(
            p.appliance.named("delta"),
            [("delta", 2, 1, {"east-web": {"connections": 15, "state": "DOWN"}}), ("delta", 5, 2, {"east-db": {"load": 50.0}})],
        )
        self.assertEqual(p.a.lastSeq, 5)

        # A keepalive every interval, each echoed: RTT is the time the echo took.
        p.clock.advance(KEEPALIVE)
        p.pump.pump()  # KEEPALIVEs cross
        p.clock.advance(0.25)
        p.pump.pump()  # ECHOes cross
        self.assertEqual(p.a.rtt, 0.25)
        self.assertEqual(p.s.rtt, 0.25)
        self.assertEqual(p.appliance.named("rtt")[-1], ("rtt", 0.25))

        self.assertEqual(p.a.framesIn, p.s.framesOut)
        self.assertEqual(p.a.bytesIn, p.s.bytesOut)
        self.assertEqual(p.s.framesIn, p.a.framesOut)
        self.assertEqual(p.a.lastReceivedAt, p.clock.seconds())

        p.a.close("shutdown", "stopping")
        p.pump.flush()
        self.assertEqual(p.appliance.named("lost"), [("lost", "closed")])
        self.assertEqual(p.site.named("lost"), [("lost", "closed")])
        self.assertEqual(p.clock.getDelayedCalls(), [])
        self.assertEqual(warnings(p.a), [])

    def test_withoutSecret(self):
        """No secret on either end: no AUTH frames, established on HELLO."""
        p = Pair(self, {"secret": None}, {"secret": None})
        self.assertEqual((p.a.state, p.s.state), ("established", "established"))
        self.assertEqual(len(p.appliance.named("snapshot")), 1)

    def test_versionNegotiation(self):
        """The highest common version is chosen by both ends."""
        p = Pair(self, {"versions": (1, 2)}, {"versions": (2,)})
        self.assertEqual((p.a.version, p.s.version), (2, 2))
        self.assertEqual(p.a.state, "established")
        p = Pair(self, {"versions": (1,)}, {"versions": (1, 2)})
        self.assertEqual((p.a.version, p.s.version), (1, 1))
        self.assertEqual(p.a.state, "established")
        self.assertEqual(len(p.appliance.named("snapshot")), 1)

    def test_unknownVersionRefused(self):
        """A session cannot be made to offer a version it does not speak."""
        with self.assertRaises(ValueError):
            makeSession(Clock(), RecordingHandler(), versions=(2, 3))

    def test_noCommonVersion(self):
        p = Pair(self, {"versions": (1,)}, {"versions": (2,)})
        for handler, session in ((p.appliance, p.a), (p.site, p.s)):
            self.assertEqual(handler.events, [("lost", "error:version-mismatch")])
            self.assertIsNone(session.version)
            self.assertEqual(len(warnings(session)), 1)

    def test_wrongSecret(self):
        """Different secrets: both ends fail, count it, and never establish."""
        p = Pair(self, {}, {"secret": b"guess"})
        for handler, session in ((p.appliance, p.a), (p.site, p.s)):
            self.assertEqual(handler.events, [("lost", "auth-failed")])
            self.assertEqual(session.authFailures, 1)
            self.assertEqual(session.state, "closed")
            self.assertEqual(len(warnings(session)), 1)

    def test_secretOnOneEndOnly(self):
        """A secret on one end only is an authentication failure on both, never a downgrade."""
        p = Pair(self, {}, {"secret": None})
        self.assertEqual(p.appliance.events, [("lost", "auth-failed")])
        self.assertEqual(p.site.events, [("lost", "auth-failed")])
        self.assertEqual((p.a.authFailures, p.s.authFailures), (1, 1))

    def test_refusedByHandler(self):
        """The appliance's handler refuses the peer: ERROR unknown-peer."""
        p = Pair(self, {"handler": {"accept": False}})
        self.assertEqual(p.appliance.named("lost"), [("lost", "refused")])
        self.assertEqual(p.site.named("lost"), [("lost", "peer-error:unknown-peer")])

    def test_expectedPeer(self):
        """An outbound session to the wrong peer is refused; the right one is fine."""
        p = Pair(self, {"expectedPeer": "west"})
        self.assertEqual(p.appliance.events, [("lost", "refused")])
        self.assertEqual(p.site.events, [("lost", "peer-error:wrong-peer")])
        p = Pair(self, {"expectedPeer": "east"}, {"expectedPeer": "gslb1"})
        self.assertEqual((p.a.state, p.s.state), ("established", "established"))

    def test_sameRole(self):
        clock = Clock()
        h1, h2 = RecordingHandler(), RecordingHandler()
        a = makeSession(clock, h1, "appliance", name="a")
        b = makeSession(clock, h2, "appliance", name="b")
        _, _, pump = connectedServerAndClient(lambda: a, lambda: b, clock=clock)
        self.assertEqual(h1.events, [("lost", "refused")])
        self.assertEqual(h2.events, [("lost", "refused")])

    def test_gapResync(self):
        """A gap makes the appliance ask for a snapshot and drop deltas until it comes."""
        p = Pair(self)
        p.s.sendDelta(2, 1, {"east-web": {"connections": 1}})
        p.s.sendDelta(4, 3, {"east-web": {"connections": 2}})  # 3 never sent: gap
        p.s.sendDelta(5, 4, {"east-web": {"connections": 3}})  # dropped
        p.site.seq = 5
        p.pump.pump()  # the deltas reach the appliance, RESYNC is written
        self.assertEqual([e[1] for e in p.appliance.named("delta")], [2])
        self.assertEqual(p.a.resyncs, 1)
        self.assertEqual(p.a.deltasDropped, 2)
        p.s.sendDelta(6, 5, {"east-web": {"connections": 4}})  # still in flight before the snapshot: dropped
        p.pump.flush()
        self.assertEqual(p.site.named("resync"), [("resync",)])
        self.assertEqual([e[1] for e in p.appliance.named("snapshot")], [1, 5])
        self.assertEqual([e[1] for e in p.appliance.named("delta")], [2])
        self.assertEqual(p.a.resyncs, 1)

        p.site.seq = 6
        p.s.sendDelta(7, 6, {"east-web": {"connections": 5}})  # base 6 is not what the appliance holds (5)
        p.pump.flush()
        self.assertEqual([e[1] for e in p.appliance.named("snapshot")], [1, 5, 6])
        p.s.sendDelta(8, 6, {"east-web": {"connections": 6}})
        p.s.sendDelta(8, 6, {"east-web": {"connections": 6}})  # replayed
        p.pump.flush()
        self.assertEqual([e[1] for e in p.appliance.named("delta")], [2, 8])
        self.assertEqual(p.a.resyncs, 3)
        self.assertEqual((p.a.state, p.s.state), ("established", "established"))
        self.assertEqual(warnings(p.a), [])

    def test_keepalivesKeepAlive(self):
        """Keepalives keep a quiet session up well past the dead interval; silence ends it."""
        p = Pair(self)
        for _ in range(20):
            p.advance(KEEPALIVE)
        self.assertEqual((p.a.state, p.s.state), ("established", "established"))
        self.assertIsNotNone(p.a.rtt)
        # Now the site stops reading and writing: nothing reaches the appliance.
        p.clock.advance(DEAD)
        self.assertEqual(p.a.state, "closed")
        self.assertEqual(p.a.reason, "silent")
        p.pump.flush()
        self.assertEqual(p.appliance.named("lost"), [("lost", "silent")])
        self.assertEqual(len(p.site.named("lost")), 1)

    def test_siteSendsBeforeEstablished(self):
        """Site-side sends are no-ops until established; they are the site's only."""
        clock = Clock()
        site = makeSession(clock, RecordingHandler(), "site")
        site.makeConnection(StringTransport())
        self.assertFalse(site.sendSnapshot(1, SERVICES))
        self.assertFalse(site.sendDelta(2, 1, {}))
        appliance = makeSession(clock, RecordingHandler(), "appliance")
        self.assertRaises(RuntimeError, appliance.sendSnapshot, 1, {})
        self.assertRaises(RuntimeError, appliance.sendDelta, 2, 1, {})


class ScriptedPeer:
    """The far end of one session, played by hand on a StringTransport."""

    def __init__(self, session, role="site", name="east", secret=SECRET, versions=(2,)):
        self.session = session
        self.role, self.name, self.secret, self.versions = role, name, secret, versions
        self.version = max(set(versions) & set(session.versions), default=None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 40000))
        self.decoder = FrameDecoder()
        self.sendMAC = None
        self.nonce = auth.newNonce()
        session.makeConnection(self.transport)
        self.sessionNonce = self.received()[0][1]["nonce"]

    def sealed(self):
        return self.secret is not None and self.version is not None and self.version >= auth.SEALED_VERSION

    def received(self):
        """The session's frames so far; those after its AUTH must be sealed."""
        out = []
        for frameType, message in self.decoder.feed(self.transport.value()):
            out.append((frameType, message))
            if frameType == frames.AUTH and self.sealed():
                self.decoder.mac = auth.FrameMAC(auth.sessionKey(
                    self.secret, self.version, self.session.role, self.session.localName, self.name,
                    self.sessionNonce, self.nonce))
        self.transport.clear()
        return out

    def frame(self, frameType, message):
        """The bytes of a frame from this peer, sealed once it sent AUTH."""
        data = encodeFrame(frameType, message, mac=self.sendMAC)
        if frameType == frames.AUTH and self.sealed():
            self.sendMAC = auth.FrameMAC(auth.sessionKey(
                self.secret, self.version, self.role, self.name, self.session.localName, self.nonce, self.sessionNonce))
        return data

    def send(self, frameType, message):
        self.session.dataReceived(self.frame(frameType, message))

    def sendPayload(self, frameType, payload):
        """A frame of any type byte and payload bytes, sealed like the others."""
        tag = self.sendMAC.seal(frameType, payload) if self.sendMAC else b""
        self.session.dataReceived(struct.pack("!IB", 1 + len(payload) + len(tag), frameType) + payload + tag)

    def hello(self, **override):
        message = {"versions": list(self.versions), "name": self.name, "role": self.role, "nonce": self.nonce.hex(),
                   "auth": "hmac-sha256" if self.secret else "none"}
        message.update(override)
        self.send(frames.HELLO, message)

    def proof(self, secret=None, verifierNonce=None):
        return auth.proof(
            secret or self.secret, self.version, self.role, self.name, self.session.localName,
            verifierNonce or self.sessionNonce, self.nonce, self.versions, self.session.versions,
        ).hex()

    def establish(self, check=True):
        self.hello()
        self.send(frames.AUTH, {"proof": self.proof()})
        assert not check or self.session.state == "established", self.session.state


class MalformedTests(SynchronousTestCase):
    """Every malformed input: ERROR with its code, close, sessionLost once, one log line."""

    def setUp(self):
        self.clock = Clock()
        self.handler = RecordingHandler()
        self.session = makeSession(self.clock, self.handler, "appliance")
        self.peer = ScriptedPeer(self.session)

    def becomeSite(self, handler):
        """Test a site session instead of the appliance one."""
        self.session.connectionLost(None)
        self.handler = handler
        self.session = makeSession(self.clock, self.handler, "site")
        self.peer = ScriptedPeer(self.session, role="appliance", name="gslb1")

    def assertClosedWith(self, code, reason=None):
        received = self.peer.received()
        self.assertEqual(received[-1][0], frames.ERROR, received)
        self.assertEqual(received[-1][1]["code"], code)
        self.assertTrue(self.peer.transport.disconnecting)
        self.assertEqual(self.session.state, "closed")
        self.assertEqual(len(warnings(self.session)), 1)
        # More bytes after the close are ignored; the connection then ends.
        self.session.dataReceived(b"\xff" * 10)
        self.assertEqual(self.peer.received(), [])
        self.session.connectionLost(None)
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", reason or "error:" + code)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_truncatedThenLost(self):
        """Half a frame, then the connection drops: no crash, sessionLost once."""
        self.peer.establish()
        frame = encodeFrame(frames.KEEPALIVE, {"ts": 1.0})
        self.session.dataReceived(frame[:5])
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "closed")])
        self.assertEqual(warnings(self.session), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oversize(self):
        self.session.dataReceived(b"\x00\x10\x00\x01")
        self.assertClosedWith("frame-too-large")

    def test_zeroLength(self):
        self.peer.establish()
        self.session.dataReceived(b"\x00\x00\x00\x00")
        self.assertClosedWith("bad-frame")

    def test_unknownType(self):
        self.peer.establish()
        self.peer.sendPayload(0x2A, b"{}")
        self.assertClosedWith("unknown-type")

    def test_badJSON(self):
        self.session.dataReceived(b"\x00\x00\x00\x05\x01{{{{")
        self.assertClosedWith("bad-payload")

    def test_missingField(self):
        self.peer.establish()
        self.peer.send(frames.SNAPSHOT, {"services": SERVICES})
        self.assertClosedWith("bad-payload")
        self.assertEqual(self.handler.named("snapshot"), [])

    def test_badHelloField(self):
        self.peer.hello(nonce="xyz")
        self.assertClosedWith("bad-payload")

    def test_badVersion(self):
        """A peer speaking only an unknown version."""
        self.peer.hello(versions=[7])
        self.assertClosedWith("version-mismatch")

    def test_badHMAC(self):
        self.peer.hello()
        self.peer.send(frames.AUTH, {"proof": self.peer.proof(secret=b"wrong")})
        self.assertClosedWith("auth-failed", "auth-failed")
        self.assertEqual(self.session.authFailures, 1)
        self.assertEqual(self.handler.named("authenticated"), [])

    def test_replayedProof(self):
        """A HELLO and AUTH recorded from another session do not authenticate here."""
        # Record a real site's HELLO and AUTH in a session with another appliance.
        clock = Clock()
        other = makeSession(clock, RecordingHandler(), "appliance")
        otherTransport = StringTransport()
        other.makeConnection(otherTransport)
        site = makeSession(clock, RecordingHandler(services=SERVICES), "site")
        siteTransport = StringTransport()
        site.makeConnection(siteTransport)
        site.dataReceived(otherTransport.value())
        recorded = siteTransport.value()  # HELLO + AUTH, valid for `other`'s nonce
        frameTypes = [t for t, _ in FrameDecoder().feed(recorded)]
        self.assertEqual(frameTypes, [frames.HELLO, frames.AUTH])
        other.dataReceived(recorded)
        self.assertEqual(other.state, "established")  # genuine in its own session
        # Replayed to this session: refused.
        self.session.dataReceived(recorded)
        self.assertEqual(self.session.state, "closed")
        self.assertTrue(self.peer.transport.disconnecting)
        self.assertEqual(self.session.authFailures, 1)
        self.session.connectionLost(None)
        self.assertEqual(self.handler.events, [("lost", "auth-failed")])

    def test_reflectedProof(self):
        """The appliance's own proof sent back to it fails."""
        self.peer.hello()
        ownAuth = [m for t, m in self.peer.received() if t == frames.AUTH][0]
        self.peer.send(frames.AUTH, {"proof": ownAuth["proof"].hex()})
        self.assertClosedWith("auth-failed", "auth-failed")

    def test_framesBeforeAuth(self):
        """A SNAPSHOT after HELLO but before AUTH is refused and not delivered."""
        self.peer.hello()
        self.peer.send(frames.SNAPSHOT, {"seq": 1, "services": SERVICES})
        self.assertClosedWith("not-authenticated")
        self.assertEqual(self.handler.events, [("lost", "error:not-authenticated")])

    def test_framesBeforeHello(self):
        self.peer.send(frames.KEEPALIVE, {"ts": 0})
        self.assertClosedWith("not-authenticated")

    def test_authBeforeHello(self):
        self.peer.send(frames.AUTH, {"proof": "00" * 32})
        self.assertClosedWith("unexpected-frame")

    def test_secondHello(self):
        self.peer.establish()
        self.peer.hello()
        self.assertClosedWith("unexpected-frame")

    def test_secondAuth(self):
        self.peer.establish()
        self.peer.send(frames.AUTH, {"proof": self.peer.proof()})
        self.assertClosedWith("unexpected-frame")

    def test_resyncToAppliance(self):
        self.peer.establish()
        self.peer.send(frames.RESYNC, {"seq": 1})
        self.assertClosedWith("unexpected-frame")

    def test_snapshotToSite(self):
        self.becomeSite(RecordingHandler(services=SERVICES))
        self.peer.establish()
        self.peer.send(frames.SNAPSHOT, {"seq": 1, "services": SERVICES})
        self.assertClosedWith("unexpected-frame")

    def test_siteAnswersResync(self):
        """A site session passes RESYNC to its handler, which sends a snapshot."""
        self.becomeSite(RecordingHandler(services=SERVICES, seq=4))
        self.peer.establish()
        self.peer.received()
        self.peer.send(frames.RESYNC, {"seq": None})
        self.assertEqual(self.peer.received(), [(frames.SNAPSHOT, {"seq": 4, "services": SERVICES})])
        self.assertEqual(self.session.lastSeq, 4)

    def test_silentHandshake(self):
        """A peer that never says HELLO is dropped after the dead interval."""
        self.clock.advance(DEAD - 0.01)
        self.assertEqual(self.session.state, "handshake")
        self.clock.advance(0.01)
        self.assertClosedWith("silent", "silent")

    def test_tricklingIsSilence(self):
        """Bytes that never complete a frame (a slowloris) do not keep a session alive."""
        self.peer.establish()
        # A frame announced as 4 KiB, then one byte of it every 0.25 s.
        trickle = b"\x00\x00\x10\x00" + b"\x01" + b"{" * 4095
        for byte in trickle[: int(DEAD * 4) + 1]:
            self.clock.advance(0.25)
            if self.session.state == "closed":
                break
            self.session.dataReceived(bytes([byte]))
        self.assertEqual(self.clock.seconds(), DEAD)
        self.assertClosedWith("silent", "silent")

    def test_silence(self):
        """Any frame resets the silence timer; nothing for deadInterval closes."""
        self.peer.establish()
        self.clock.advance(DEAD - 0.5)
        self.peer.send(frames.KEEPALIVE, {"ts": 1.0})
        self.clock.advance(DEAD - 0.5)
        self.assertEqual(self.session.state, "established")
        self.clock.advance(0.5)
        self.assertClosedWith("silent", "silent")

    def test_keepaliveEchoed(self):
        self.peer.establish()
        self.peer.received()
        self.peer.send(frames.KEEPALIVE, {"ts": 123.5})
        self.assertEqual(self.peer.received(), [(frames.KEEPALIVE_ECHO, {"ts": 123.5})])

    def test_negativeRTTIgnored(self):
        self.peer.establish()
        self.peer.send(frames.KEEPALIVE_ECHO, {"ts": self.clock.seconds() + 10})
        self.assertEqual(self.handler.named("rtt"), [])
        self.assertEqual(self.session.state, "established")

    def test_deltaBeforeSnapshot(self):
        """A delta with nothing to apply to: RESYNC, not an error."""
        self.peer.establish()
        self.peer.received()
        self.peer.send(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {}})
        self.assertEqual(self.peer.received(), [(frames.RESYNC, {"seq": None})])
        self.assertEqual(self.session.state, "established")

    def test_outOfOrder(self):
        self.peer.establish()
        self.peer.send(frames.SNAPSHOT, {"seq": 10, "services": SERVICES})
        self.peer.send(frames.DELTA, {"seq": 9, "base_seq": 8, "changes": {}})
        self.peer.send(frames.DELTA, {"seq": 11, "base_seq": 10, "changes": {}})
        self.assertEqual([t for t, _ in self.peer.received() if t == frames.RESYNC], [frames.RESYNC])
        self.assertEqual(self.handler.named("delta"), [])
        self.peer.send(frames.SNAPSHOT, {"seq": 11, "services": SERVICES})
        self.peer.send(frames.DELTA, {"seq": 12, "base_seq": 11, "changes": {"east-web": {"packets": 1}}})
        self.assertEqual(self.handler.named("delta"), [("delta", 12, 11, {"east-web": {"packets": 1}})])

    def test_handlerRaises(self):
        """A handler bug: logged with its traceback, ERROR internal, the session closes."""
        self.handler.raiseIn = "snapshot"
        self.peer.establish()
        self.peer.send(frames.SNAPSHOT, {"seq": 1, "services": SERVICES})
        self.peer.send(frames.KEEPALIVE, {"ts": 1.0})  # in the same stream: never processed
        received = self.peer.received()
        self.assertEqual(received[-1], (frames.ERROR, {"code": "internal", "message": "internal error"}))
        self.assertNotIn(frames.KEEPALIVE_ECHO, [t for t, _ in received])
        self.assertEqual(len([e for e in self.session.events if e.get("log_failure")]), 1)
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "error:internal")])

    def test_handlerRaisesInAuthenticated(self):
        self.handler.raiseIn = "authenticated"
        self.peer.establish(check=False)
        self.assertEqual(self.peer.received()[-1][1]["code"], "internal")
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "error:internal")])

    def test_handlerRaisesInSessionLost(self):
        """Nothing escapes from sessionLost either."""
        self.handler.raiseIn = "lost"
        self.session.connectionLost(None)
        self.assertEqual(len([e for e in self.session.events if e.get("log_failure")]), 1)

    def test_peerError(self):
        """The peer's ERROR closes without an answer."""
        self.peer.establish()
        self.peer.received()
        self.peer.send(frames.ERROR, {"code": "bad-payload", "message": "your fault"})
        self.assertEqual(self.peer.received(), [])
        self.assertTrue(self.peer.transport.disconnecting)
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "peer-error:bad-payload")])

    def test_closeIdempotent(self):
        self.peer.establish()
        self.peer.received()
        self.session.close("shutdown", "bye")
        self.session.close("internal", "again")
        self.assertEqual(self.peer.received(), [(frames.ERROR, {"code": "shutdown", "message": "bye"})])
        self.assertEqual(warnings(self.session), [])
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "closed")])

    def test_abortWhenPeerDoesNotLetGo(self):
        """A connection still open deadInterval after ERROR is aborted."""
        aborted = []
        self.peer.transport.abortConnection = lambda: aborted.append(True)
        self.session.close("shutdown", "bye")
        self.clock.advance(DEAD - 0.1)
        self.assertEqual(aborted, [])
        self.clock.advance(0.1)
        self.assertEqual(aborted, [True])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keepaliveOnlyWhenEstablished(self):
        self.clock.advance(KEEPALIVE)
        self.assertEqual(self.peer.received(), [])
        self.peer.establish()
        self.peer.received()
        self.clock.advance(KEEPALIVE)
        self.assertEqual(self.peer.received(), [(frames.KEEPALIVE, {"ts": KEEPALIVE * 2})])


# -- TLS over real loopback sockets -------------------------------------------


def selfSigned(directory, name):
    """Write a self-signed certificate for 127.0.0.1 and its key; return their paths."""
    return selfSignedCertificate(directory, name, ["127.0.0.1"])


@implementer(IMEPHandler)
class WaitingHandler(RecordingHandler):
    """A recording handler whose C{when(name)} fires on the first such event."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.waiting = {}

    def _record(self, name, *args):
        super()._record(name, *args)
        for d in self.waiting.pop(name, []):
            d.callback(args)

    def when(self, name):
        d = defer.Deferred()
        self.waiting.setdefault(name, []).append(d)
        return d


class CollectionTests(SynchronousTestCase):
    def test_closedSessionFreedAtOnce(self):
        """
        A closed session is freed by reference counting, not left for the
        cyclic collector (a thousand refused sessions at start were
        megabytes of garbage per core).
        """
        import gc
        import weakref

        clock = Clock()
        session = makeSession(clock, RecordingHandler(), "appliance")
        peer = ScriptedPeer(session)
        peer.establish()
        session.close("shutdown", "test")
        session.connectionLost(None)
        freed = weakref.ref(session)
        gc.disable()
        self.addCleanup(gc.enable)
        del session, peer
        self.assertIsNone(freed())


class Wire:
    """
    An appliance and a site session with someone on the path between them:
    every byte goes through C{deliver}, which the test may alter, drop or
    replay.
    """

    def __init__(self, test, applianceKw=None, siteKw=None):
        self.clock = Clock()
        self.appliance = RecordingHandler()
        self.site = RecordingHandler(services=SERVICES)
        self.a = makeSession(self.clock, self.appliance, "appliance", **(applianceKw or {}))
        self.s = makeSession(self.clock, self.site, "site", **(siteKw or {}))
        self.a.direction, self.s.direction = "inbound", "outbound"
        self.toA = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 40000))
        self.toS = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 3011))
        self.a.makeConnection(self.toA)
        self.s.makeConnection(self.toS)
        self.flush()

    def frames(self, transport):
        """The frames written to C{transport} since the last call, as bytes each."""
        data, out = transport.value(), []
        transport.clear()
        while data:
            (length,) = struct.unpack_from("!I", data)
            out.append(data[: 4 + length])
            data = data[4 + length :]
        return out

    def flush(self):
        """Deliver everything written so far, both ways, untouched."""
        while self.toA.value() or self.toS.value():
            for frame in self.frames(self.toS):
                self.a.dataReceived(frame)
            for frame in self.frames(self.toA):
                self.s.dataReceived(frame)


class IntegrityTests(SynchronousTestCase):
    """
    From MEP version 2 every frame after AUTH is sealed with a per-session,
    per-direction key: someone on the path cannot alter, replay, reorder,
    drop or inject metrics without the session noticing and closing.
    """

    def setUp(self):
        self.wire = Wire(self)
        self.assertEqual((self.wire.a.state, self.wire.s.state), ("established", "established"))
        self.assertEqual(self.wire.appliance.named("snapshot"), [("snapshot", 1, SERVICES)])

    def assertRefused(self, session, handler, delivered):
        self.assertEqual(session.state, "closed")
        self.assertEqual(session.reason, "auth-failed")
        self.assertEqual(session.authFailures, 1)
        self.assertEqual(handler.named("delta")[delivered:], [])
        warned = warnings(session)
        self.assertEqual(len(warned), 1)
        self.assertEqual(warned[0]["code"], "bad-mac")

    def test_sealedFramesDeliver(self):
        """Untouched sealed deltas arrive; each frame carries 16 bytes of tag."""
        self.wire.s.sendDelta(2, 1, {"east-web": {"connections": 15}})
        sealed = self.wire.toS.value()
        self.assertEqual(len(sealed), len(encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {"east-web": {"connections": 15}}})) + 16)
        self.wire.flush()
        self.assertEqual(self.wire.appliance.named("delta"), [("delta", 2, 1, {"east-web": {"connections": 15}})])

    def test_alteredMetric(self):
        """A metric changed in flight (15 -> 95 connections) is refused, not applied."""
        self.wire.s.sendDelta(2, 1, {"east-web": {"connections": 15}})
        (frame,) = self.wire.frames(self.wire.toS)
        self.assertIn(b'"connections":15', frame)
        self.wire.a.dataReceived(frame.replace(b'"connections":15', b'"connections":95'))
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def test_replayedFrame(self):
        """A DELTA recorded and sent again (to undo a later change, say) is refused."""
        self.wire.s.sendDelta(2, 1, {"east-web": {"state": "DOWN"}})
        (frame,) = self.wire.frames(self.wire.toS)
        self.wire.a.dataReceived(frame)
        self.assertEqual(len(self.wire.appliance.named("delta")), 1)
        self.wire.a.dataReceived(frame)
        self.assertRefused(self.wire.a, self.wire.appliance, 1)

    def test_droppedFrame(self):
        """A frame held back by the path: the next one fails (its counter moved on)."""
        self.wire.s.sendDelta(2, 1, {"east-web": {"state": "DOWN"}})
        self.wire.s.sendDelta(3, 2, {"east-web": {"connections": 1}})
        first, second = self.wire.frames(self.wire.toS)
        self.wire.a.dataReceived(second)
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def test_reorderedFrames(self):
        self.wire.s.sendDelta(2, 1, {"east-web": {"state": "DOWN"}})
        self.wire.s.sendDelta(3, 2, {"east-web": {"connections": 1}})
        first, second = self.wire.frames(self.wire.toS)
        self.wire.a.dataReceived(second + first)
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def test_injectedUnsealedFrame(self):
        """A well-formed frame without a tag, injected after AUTH, is refused."""
        self.wire.a.dataReceived(encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {"east-web": {"state": "DOWN"}}}))
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def test_reflectedFrame(self):
        """The appliance's own sealed KEEPALIVE sent back to it fails (one key per direction)."""
        self.wire.clock.advance(KEEPALIVE)
        (keepalive,) = self.wire.frames(self.wire.toA)
        self.wire.a.dataReceived(keepalive)
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def test_otherSessionsFrame(self):
        """A sealed frame from another session between the same two ends is refused here."""
        other = Wire(self)
        other.s.sendDelta(2, 1, {"east-web": {"state": "DOWN"}})
        (frame,) = other.frames(other.toS)
        self.wire.a.dataReceived(frame)
        self.assertRefused(self.wire.a, self.wire.appliance, 0)

    def handshakeThrough(self, alter, applianceVersions=(2,), siteVersions=(2,)):
        """A handshake whose HELLOs pass through C{alter} on the path."""
        clock = Clock()
        appliance, site = RecordingHandler(), RecordingHandler(services=SERVICES)
        a = makeSession(clock, appliance, "appliance", versions=applianceVersions)
        s = makeSession(clock, site, "site", versions=siteVersions)
        toA, toS = StringTransport(), StringTransport()
        a.makeConnection(toA)
        s.makeConnection(toS)
        helloA, helloS = toA.value(), toS.value()
        toA.clear(), toS.clear()
        a.dataReceived(alter(helloS))
        s.dataReceived(alter(helloA))
        a.dataReceived(toS.value())
        s.dataReceived(toA.value())
        return (a, appliance), (s, site)

    def test_versionsAltered(self):
        """
        The versions each end offered are covered by its proof: a path that
        rewrites a HELLO's list (here [2] -> [2,9], the frame re-framed)
        makes both ends refuse each other.
        """
        def offerMore(frame):
            payload = frame[5:].replace(b'"versions":[2]', b'"versions":[2,9]')
            return struct.pack("!IB", 1 + len(payload), frame[4]) + payload

        ends = self.handshakeThrough(offerMore)
        for session, handler in ends:
            self.assertEqual(session.version, 2)
            self.assertEqual(session.state, "closed")
            self.assertEqual(session.reason, "auth-failed")
            self.assertEqual(handler.named("authenticated"), [])

    def test_noDowngradeToVersion1(self):
        """Ends of this project offer only version 2: a HELLO stripped to [1] is refused outright."""
        ends = self.handshakeThrough(lambda data: data.replace(b'"versions":[2]', b'"versions":[1]'))
        for session, handler in ends:
            self.assertEqual(session.state, "closed")
            self.assertEqual(session.reason, "error:version-mismatch")
            self.assertEqual(handler.named("authenticated"), [])

    def test_version1Unsealed(self):
        """Both ends offering only version 1: frames carry no tag (for old peers and tests)."""
        wire = Wire(self, {"versions": (1,)}, {"versions": (1,)})
        self.assertEqual(wire.a.version, 1)
        wire.s.sendDelta(2, 1, {"east-web": {"connections": 15}})
        self.assertEqual(
            wire.toS.value(), encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {"east-web": {"connections": 15}}}))

    def test_withoutSecretUnsealed(self):
        """Without a secret there is no key: frames go unsealed (closed labs only)."""
        wire = Wire(self, {"secret": None}, {"secret": None})
        self.assertEqual((wire.a.state, wire.a.version), ("established", 2))
        wire.s.sendDelta(2, 1, {"east-web": {"connections": 15}})
        self.assertEqual(
            wire.toS.value(), encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {"east-web": {"connections": 15}}}))


class TLSTests(TestCase):
    """A session over a real TLS connection on the loopback interface."""

    timeout = 20

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.cert, self.key = selfSigned(directory, "site")
        self.otherCert, _ = selfSigned(directory, "stranger")

    def sessions(self, handler, role):
        made = []

        def build():
            session = MEPSession(
                role=role,
                localName="east" if role == "site" else "gslb1",
                secret=SECRET,
                clock=reactor,
                keepaliveInterval=0.05,
                deadInterval=5.0,
                handler=handler,
            )
            made.append(session)
            return session

        return Factory.forProtocol(build), made

    @defer.inlineCallbacks
    def listenSite(self):
        site = WaitingHandler(services=SERVICES)
        factory, made = self.sessions(site, "site")
        endpoint = SSL4ServerEndpoint(reactor, 0, tls.serverContextFactory(self.cert, self.key), interface="127.0.0.1")
        port = yield endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        return site, made, port.getHost().port

    @defer.inlineCallbacks
    def test_metricsOverTLS(self):
        """Handshake, snapshot, delta and RTT over TLS; then both ends see the close."""
        site, siteSessions, port = yield self.listenSite()
        appliance = WaitingHandler()
        factory, _ = self.sessions(appliance, "appliance")
        endpoint = wrapClientTLS(tls.clientContextFactory("127.0.0.1", caPath=self.cert), TCP4ClientEndpoint(reactor, "127.0.0.1", port))
        gotSnapshot, gotRTT = appliance.when("snapshot"), appliance.when("rtt")
        session = yield endpoint.connect(factory)
        session.direction = "outbound"

        seq, services = yield gotSnapshot
        self.assertEqual((seq, services), (1, SERVICES))
        self.assertEqual(session.state, "established")
        self.assertEqual(session.peerName, "east")
        self.assertIsNotNone(session.transport.getPeerCertificate())

        gotDelta = appliance.when("delta")
        siteSessions[0].sendDelta(2, 1, {"east-web": {"connections": 99}})
        self.assertEqual((yield gotDelta), (2, 1, {"east-web": {"connections": 99}}))
        (rtt,) = yield gotRTT
        self.assertGreaterEqual(rtt, 0)

        applianceLost, siteLost = appliance.when("lost"), site.when("lost")
        session.close("shutdown", "test over")
        self.assertEqual((yield applianceLost), ("closed",))
        self.assertEqual((yield siteLost), ("closed",))

    @defer.inlineCallbacks
    def test_untrustedCertificate(self):
        """A server certificate not issued by the given CA: no session, both ends told once."""
        site, siteSessions, port = yield self.listenSite()
        appliance = WaitingHandler()
        factory, _ = self.sessions(appliance, "appliance")
        endpoint = wrapClientTLS(tls.clientContextFactory("127.0.0.1", caPath=self.otherCert), TCP4ClientEndpoint(reactor, "127.0.0.1", port))
        applianceLost = appliance.when("lost")
        yield endpoint.connect(factory)
        (reason,) = yield applianceLost
        self.assertEqual(reason, "closed")
        self.assertEqual(appliance.named("authenticated"), [])
        self.assertEqual(appliance.named("snapshot"), [])
        if siteSessions and not site.named("lost"):
            yield site.when("lost")
        self.assertEqual(site.named("authenticated"), [])


# -- dynamic proximity and persistence exchange ---------------------------------

ENTRY = {"vserver": "www", "network": "198.51.100.0/24", "service": "east-web", "version": 1, "origin": "gslb1/0", "ttl": 118.5}


class ProbeTests(SynchronousTestCase):
    """PROBE from the appliance, RTT from the site."""

    def setUp(self):
        self.clock = Clock()
        self.handler = RecordingHandler()
        self.session = makeSession(self.clock, self.handler, "appliance")
        self.peer = ScriptedPeer(self.session)

    def site(self, rtts=None):
        """A site session against a scripted appliance instead."""
        self.handler = RecordingHandler(services=SERVICES, rtts=rtts)
        self.session = makeSession(self.clock, self.handler, "site")
        self.peer = ScriptedPeer(self.session, role="appliance", name="gslb1")
        self.peer.establish()
        self.peer.received()

    def test_sendProbeBytes(self):
        """sendProbe writes one PROBE frame of the canonical networks, duplicates dropped."""
        self.peer.establish()
        self.peer.received()
        sent = self.session.sendProbe(["198.51.100.0/24", "2001:DB8:1::/48", "198.51.100.0/255.255.255.0", "10.0.0.1"])
        self.assertEqual(sent, 1)
        self.assertEqual(
            self.peer.received(),
            [(frames.PROBE, {"networks": ["198.51.100.0/24", "2001:db8:1::/48", "10.0.0.1/32"]})],
        )

    def test_sendProbeChunks(self):
        """More than 1024 networks go out in several PROBEs, in order."""
        self.peer.establish()
        self.peer.received()
        networks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(2500)]
        self.assertEqual(self.session.sendProbe(networks), 3)
        received = self.peer.received()
        self.assertEqual([t for t, _ in received], [frames.PROBE] * 3)
        self.assertEqual([len(m["networks"]) for _, m in received], [1024, 1024, 452])
        self.assertEqual([n for _, m in received for n in m["networks"]], networks)

    def test_sendProbeOnlyWhenEstablished(self):
        self.assertEqual(self.session.sendProbe(["10.0.0.0/8"]), 0)
        self.assertEqual(self.peer.received(), [])
        self.peer.establish()
        self.assertEqual(self.session.sendProbe([]), 0)

    def test_sendProbeRefusesBadNetworks(self):
        """A bad network raises before anything is written."""
        self.peer.establish()
        self.peer.received()
        for bad in ["10.0.0.1/8", "nonsense", 10, None]:
            self.assertRaises(ValueError, self.session.sendProbe, ["10.0.0.0/8", bad])
        self.assertEqual(self.peer.received(), [])
        self.assertEqual(self.session.state, "established")

    def test_sendProbeIsTheAppliances(self):
        self.site()
        self.assertRaises(RuntimeError, self.session.sendProbe, ["10.0.0.0/8"])

    def test_rttReported(self):
        """Each RTT frame reaches rttReported, values as floats, networks canonical."""
        self.peer.establish()
        self.peer.send(frames.RTT, {"rtt": {"198.51.100.0/24": 23, "2001:DB8:1::/48": 80.5}})
        self.peer.send(frames.RTT, {"rtt": {}})
        self.assertEqual(
            self.handler.named("rttReport"),
            [("rttReport", {"198.51.100.0/24": 23.0, "2001:db8:1::/48": 80.5}), ("rttReport", {})],
        )
        self.assertEqual(self.session.state, "established")

    def test_siteAnswersProbe(self):
        """A site session hands PROBE to its handler, which answers with one RTT frame."""
        self.site(rtts={"198.51.100.0/24": 23.5})
        self.peer.send(frames.PROBE, {"networks": ["198.51.100.0/24", "203.0.113.0/24"]})
        self.assertEqual(self.handler.named("probe"), [("probe", ["198.51.100.0/24", "203.0.113.0/24"])])
        self.assertEqual(self.peer.received(), [(frames.RTT, {"rtt": {"198.51.100.0/24": 23.5}})])

    def test_sendRTTEmptyAndChunked(self):
        """An empty answer is one frame; more than 4096 networks go out in several."""
        self.site()
        self.assertEqual(self.session.sendRTT({}), 1)
        self.assertEqual(self.peer.received(), [(frames.RTT, {"rtt": {}})])
        rtts = {f"10.{i // 256}.{i % 256}.0/24": float(i) for i in range(5000)}
        self.assertEqual(self.session.sendRTT(rtts), 2)
        received = self.peer.received()
        self.assertEqual([len(m["rtt"]) for _, m in received], [4096, 904])
        merged = {}
        for _, m in received:
            merged.update(m["rtt"])
        self.assertEqual(merged, rtts)

    def test_sendRTTChecks(self):
        self.site()
        for bad in [{"10.0.0.1/8": 1.0}, {"10.0.0.0/8": -1}, {"10.0.0.0/8": float("nan")}, {"10.0.0.0/8": "1"}]:
            self.assertRaises(ValueError, self.session.sendRTT, bad)
        self.assertEqual(self.peer.received(), [])
        self.assertRaises(RuntimeError, makeSession(self.clock, RecordingHandler(), "appliance").sendRTT, {})

    def test_sendRTTOnlyWhenEstablished(self):
        site = makeSession(self.clock, RecordingHandler(), "site")
        site.makeConnection(StringTransport())
        self.assertEqual(site.sendRTT({"10.0.0.0/8": 1.0}), 0)

    def assertClosedWith(self, code):
        received = self.peer.received()
        self.assertEqual(received[-1][0], frames.ERROR, received)
        self.assertEqual(received[-1][1]["code"], code)
        self.assertEqual(self.session.state, "closed")
        self.session.connectionLost(None)
        self.assertEqual(self.handler.named("lost"), [("lost", "error:" + code)])

    def test_probeToAppliance(self):
        """An appliance does not accept PROBE: unexpected-frame, like RESYNC."""
        self.peer.establish()
        self.peer.send(frames.PROBE, {"networks": ["10.0.0.0/8"]})
        self.assertClosedWith("unexpected-frame")
        self.assertEqual(self.handler.named("probe"), [])

    def test_rttToSite(self):
        self.site()
        self.peer.send(frames.RTT, {"rtt": {"10.0.0.0/8": 1.0}})
        self.assertClosedWith("unexpected-frame")
        self.assertEqual(self.handler.named("rttReport"), [])

    def test_beforeEstablished(self):
        self.peer.hello()
        self.peer.send(frames.RTT, {"rtt": {}})
        self.assertClosedWith("not-authenticated")

    def test_badProbePayload(self):
        self.site()
        self.peer.send(frames.PROBE, {"networks": ["10.0.0.1/8"]})
        self.assertClosedWith("bad-payload")
        self.assertEqual(self.handler.named("probe"), [])

    def test_handlerRaisesInProbe(self):
        self.site()
        self.handler.raiseIn = "probe"
        self.peer.send(frames.PROBE, {"networks": ["10.0.0.0/8"]})
        self.assertClosedWith("internal")

    def test_overAPair(self):
        """Appliance PROBE, site answer, appliance told: end to end in memory."""
        p = Pair(self, siteKw={"handler": {"rtts": {"198.51.100.0/24": 12.0}}})
        self.assertEqual(p.a.sendProbe(["198.51.100.0/24", "2001:db8::/32"]), 1)
        p.pump.flush()
        self.assertEqual(p.site.named("probe"), [("probe", ["198.51.100.0/24", "2001:db8::/32"])])
        self.assertEqual(p.appliance.named("rttReport"), [("rttReport", {"198.51.100.0/24": 12.0})])


class SessionsExchangeTests(SynchronousTestCase):
    """SESSIONS, both ways."""

    def setUp(self):
        self.clock = Clock()
        self.handler = RecordingHandler()
        self.session = makeSession(self.clock, self.handler, "appliance")
        self.peer = ScriptedPeer(self.session)

    def test_sendSessionsBytes(self):
        self.peer.establish()
        self.peer.received()
        self.assertEqual(self.session.sendSessions([ENTRY]), 1)
        self.assertEqual(self.peer.received(), [(frames.SESSIONS, {"sessions": [dict(ENTRY)]})])

    def test_sendSessionsNormalises(self):
        """Entries go out checked: network canonical, ttl a float, extra keys dropped."""
        self.peer.establish()
        self.peer.received()
        self.session.sendSessions([dict(ENTRY, network="2001:DB8::/32", ttl=60, hits=3)])
        [(t, m)] = self.peer.received()
        self.assertEqual(m, {"sessions": [dict(ENTRY, network="2001:db8::/32", ttl=60.0)]})

    def test_expiredEntriesNotSent(self):
        """Entries with no time left are left out; nothing left, no frame."""
        self.peer.establish()
        self.peer.received()
        self.assertEqual(self.session.sendSessions([dict(ENTRY, ttl=0), dict(ENTRY, ttl=-1.5)]), 0)
        self.assertEqual(self.peer.received(), [])
        self.assertEqual(self.session.sendSessions([dict(ENTRY, ttl=0), dict(ENTRY, vserver="api")]), 1)
        self.assertEqual(self.peer.received(), [(frames.SESSIONS, {"sessions": [dict(ENTRY, vserver="api")]})])

    def test_sendSessionsChunks(self):
        self.peer.establish()
        self.peer.received()
        entries = [dict(ENTRY, network=f"10.{i // 256}.{i % 256}.0/24") for i in range(2049)]
        self.assertEqual(self.session.sendSessions(entries), 3)
        received = self.peer.received()
        self.assertEqual([len(m["sessions"]) for _, m in received], [1024, 1024, 1])
        self.assertEqual([e["network"] for _, m in received for e in m["sessions"]], [e["network"] for e in entries])

    def test_sendSessionsChecks(self):
        """A bad entry raises ValueError, and nothing is sent."""
        self.peer.establish()
        self.peer.received()
        for bad in [dict(ENTRY, version=0), dict(ENTRY, origin=""), dict(ENTRY, network="10.0.0.1/8"),
                    dict(ENTRY, ttl=float("nan")), dict(ENTRY, ttl="5"), {"vserver": "www"}, "www"]:
            self.assertRaises(ValueError, self.session.sendSessions, [ENTRY, bad])
        self.assertEqual(self.peer.received(), [])

    def test_sendSessionsOnlyWhenEstablished(self):
        self.assertEqual(self.session.sendSessions([ENTRY]), 0)
        self.assertEqual(self.peer.received(), [])

    def test_bothRolesSendAndReceive(self):
        """Either end may send SESSIONS; the other's handler gets the entries."""
        p = Pair(self)
        other = dict(ENTRY, origin="gslb2/1", ttl=30.0)
        self.assertEqual(p.a.sendSessions([ENTRY]), 1)
        self.assertEqual(p.s.sendSessions([other]), 1)
        p.pump.flush()
        self.assertEqual(p.site.named("sessions"), [("sessions", [ENTRY])])
        self.assertEqual(p.appliance.named("sessions"), [("sessions", [other])])
        self.assertEqual((p.a.state, p.s.state), ("established", "established"))

    def test_beforeEstablished(self):
        self.peer.hello()
        self.peer.send(frames.SESSIONS, {"sessions": [ENTRY]})
        received = self.peer.received()
        self.assertEqual(received[-1][1]["code"], "not-authenticated")
        self.assertEqual(self.handler.named("sessions"), [])

    def test_badEntryClosesTheSession(self):
        self.peer.establish()
        self.peer.received()
        self.peer.send(frames.SESSIONS, {"sessions": [ENTRY, dict(ENTRY, ttl=0)]})
        received = self.peer.received()
        self.assertEqual(received[-1][0], frames.ERROR)
        self.assertEqual(received[-1][1]["code"], "bad-payload")
        self.assertIn("sessions[1]", received[-1][1]["message"])
        self.assertEqual(self.handler.named("sessions"), [])
