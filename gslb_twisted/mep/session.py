"""
One MEP session: the Twisted protocol that turns frames into calls on an
L{IMEPHandler} (docs/MEP.md is the specification).

The protocol is thin.  Framing and payload checks are in L{frames}, proofs
in L{auth}, the delta/gap decision in L{rules.SequenceTracker}; this class
only sequences the handshake, runs the timers and calls its handler.

Contract with the owner (who builds the session in a factory and sets
C{direction}):

  - Both ends send HELLO on C{connectionMade}.  Once the peer is
    authenticated, the session calls C{handler.authenticated(session)};
    returning anything false refuses the peer (ERROR C{unknown-peer}).
  - B{The first SNAPSHOT is the site handler's job}: a site's
    C{authenticated} calls C{session.sendSnapshot(seq, services)} before it
    returns C{True}.  Later, C{resyncRequested} is answered the same way.
    The session never makes metrics up.
  - An appliance session delivers only in-order deltas to
    C{deltaReceived}; on a gap it sends RESYNC itself and drops deltas
    until the next SNAPSHOT.
  - C{sendSnapshot}/C{sendDelta}/C{sendRTT} are for the site role,
    C{sendProbe} for the appliance role, C{sendSessions} for both; they do
    nothing (returning C{False} or 0) unless the session is established.
    The session never answers a PROBE itself: the site handler's
    C{probeReceived} calls C{sendRTT}.
  - C{sessionLost(session, reason)} is called exactly once for every
    session whose C{connectionMade} ran.  Reasons: C{"closed"},
    C{"silent"}, C{"auth-failed"} (a wrong proof, or from version 2 a frame
    failing its MAC), C{"refused"}, C{"error:<code>"} (we
    found the error), C{"peer-error:<code>"} (the peer sent ERROR).
  - Nothing raised here, nor by the handler, reaches the reactor: a
    handler that raises is logged with its traceback and the session
    closes with ERROR C{internal}.

Timers run on the injected clock: keepalives with a L{LoopingCall} every
C{keepaliveInterval}; silence with a single delayed call that re-arms
itself to C{deadInterval} after the last byte received (exact, and no timer
churn per frame).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from gslb_twisted.mep import auth, frames, rules
from gslb_twisted.mep.frames import ProtocolError

HANDSHAKE = "handshake"
ESTABLISHED = "established"
CLOSED = "closed"

# The reason the end that sends ERROR <code> reports (docs/MEP.md, section 3).
_REASONS = {
    "auth-failed": "auth-failed",
    # A forged, replayed or reordered frame fails its authentication too.
    "bad-mac": "auth-failed",
    "wrong-role": "refused",
    "wrong-peer": "refused",
    "unknown-peer": "refused",
    "silent": "silent",
    "shutdown": "closed",
}


_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _outgoing(check: Callable[[Any], _T], value: Any, what: str) -> _T:
    """C{check(value)}, a L{ValueError} naming the value when it fails."""
    try:
        return check(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a valid {what}: {value!r}") from None


class IMEPHandler(Interface):
    """What the owner of a L{MEPSession} is told."""

    def authenticated(session):
        """
        The handshake is done and the peer proved itself.  Return C{True} to
        accept it; C{False} refuses it (ERROR C{unknown-peer}, close).  A
        site handler sends its first SNAPSHOT from here.
        """

    def snapshotReceived(session, seq, services):
        """Appliance role: the site's full state at version C{seq}, C{{service: {metric: value}}}."""

    def deltaReceived(session, seq, baseSeq, changes):
        """Appliance role: the changes from version C{baseSeq} (the last one held) to C{seq}."""

    def resyncRequested(session):
        """Site role: the appliance wants a SNAPSHOT; call C{session.sendSnapshot}."""

    def rttMeasured(session, rtt):
        """A keepalive came back after C{rtt} seconds."""

    def probeReceived(session, networks):
        """
        Site role: the appliance wants the round-trip times from this site to
        the client networks C{networks} (canonical CIDR strings, distinct).
        Answer with one C{session.sendRTT({network: milliseconds})}, leaving
        out the networks that cannot be measured.
        """

    def rttReported(session, rtts):
        """
        Appliance role: the site's round-trip times to client networks,
        C{{network: milliseconds}} (canonical CIDR strings, floats >= 0;
        possibly empty), normally the answer to a PROBE.
        """

    def sessionsReceived(session, entries):
        """
        Either role: persistence sessions the peer shares, a list of
        C{{"vserver", "network", "service", "version", "origin", "ttl"}}
        dicts (network canonical, ttl seconds remaining, > 0).
        """

    def sessionLost(session, reason):
        """The session is over; called exactly once.  See the module docstring for reasons."""


class MEPSession(Protocol):
    """
    One end of a MEP connection, inbound or outbound, in either role.

    Public state, for consoles: C{peerName} (C{None} until HELLO),
    C{peerRole}, C{state} (C{"handshake"}, C{"established"}, C{"closed"}),
    C{version}, C{direction}, C{framesIn}, C{framesOut}, C{bytesIn},
    C{bytesOut}, C{authFailures} (0 or 1), C{rtt} (seconds, or C{None}),
    C{lastSeq} (last seq received or sent), C{lastReceivedAt} (clock time
    of the last byte, or C{None}), C{resyncs} (RESYNCs sent),
    C{deltasDropped}, C{reason} (once closed).
    """

    log = Logger()

    def __init__(
        self,
        *,
        role: str,
        localName: str,
        secret: Optional[bytes],
        clock: IReactorTime,
        keepaliveInterval: float,
        deadInterval: float,
        handler: Any,
        expectedPeer: Optional[str] = None,
        maxFrameSize: int = frames.DEFAULT_MAX_FRAME_SIZE,
        versions: tuple[int, ...] = (2,),
    ) -> None:
        if role not in frames.ROLES:
            raise ValueError(f"role must be one of {frames.ROLES}, not {role!r}")
        if not versions or not set(versions) <= set(frames.VERSIONS):
            raise ValueError(f"versions must be some of {frames.VERSIONS}, not {versions!r}")
        self.role = role
        self.localName = localName
        self.secret = secret or None
        self.clock = clock
        self.keepaliveInterval = keepaliveInterval
        self.deadInterval = deadInterval
        self.handler = handler
        self.expectedPeer = expectedPeer
        self.maxFrameSize = maxFrameSize
        self.versions = tuple(versions)

        self.peerName: Optional[str] = None
        self.peerRole: Optional[str] = None
        self.state = HANDSHAKE
        self.version: Optional[int] = None
        self.direction: Optional[str] = None
        self.framesIn = self.framesOut = self.bytesIn = self.bytesOut = 0
        self.authFailures = 0
        self.rtt: Optional[float] = None
        self.lastSeq: Optional[int] = None
        self.lastReceivedAt: Optional[float] = None
        self.resyncs = 0
        self.deltasDropped = 0
        self.reason: Optional[str] = None

        self._decoder = frames.FrameDecoder(maxFrameSize)
        self._tracker = rules.SequenceTracker()
        self._nonce = auth.newNonce()
        self._peerNonce: Optional[bytes] = None
        self._peerVersions: tuple[int, ...] = ()
        self._sendMAC: Optional[auth.FrameMAC] = None
        self._awaitingAuth = False
        self._lifeSign = 0.0
        # Made on connection, dropped on close: a LoopingCall of a bound
        # method is a reference cycle, and a thousand sites' sessions closed
        # at start were megabytes waiting for the cyclic collector.
        self._keepalive: Optional[LoopingCall] = None
        self._silence = None
        self._abort = None
        self._connected = False
        self._lostReported = False

    # -- Twisted protocol ---------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        self._lifeSign = self.clock.seconds()
        self._keepalive = LoopingCall(self._keepaliveTick)
        self._keepalive.clock = self.clock
        self._keepalive.start(self.keepaliveInterval, now=False)
        self._armSilence()
        try:
            self._send(
                frames.HELLO,
                {
                    "versions": list(self.versions),
                    "name": self.localName,
                    "role": self.role,
                    "nonce": self._nonce.hex(),
                    "auth": "hmac-sha256" if self.secret else "none",
                },
            )
        except Exception:
            self.log.failure("MEP session {session}: sending HELLO failed", session=self._describe())
            self._close("internal", "internal error", send=False, log=False)

    def dataReceived(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        self.bytesIn += len(data)
        try:
            for frameType, message in self._decoder.feed(data):
                # A whole frame is a sign of life; bytes trickling in that
                # never make one (a slowloris) are not.
                self.lastReceivedAt = self._lifeSign = self.clock.seconds()
                self.framesIn += 1
                self._dispatch(frameType, message)
                if self.state == CLOSED:
                    return
        except ProtocolError as e:
            if e.code == "bad-mac":
                self.authFailures = 1
            self._close(e.code, e.message)
        except Exception:
            self.log.failure("MEP session {session}: internal error", session=self._describe())
            self._close("internal", "internal error", log=False)

    def connectionLost(self, reason: Failure = None) -> None:
        self._stopTimers()
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None
        if self.state != CLOSED:
            self.state = CLOSED
            self.reason = "closed"
            pending = self._decoder.pending()
            self.log.info(
                "MEP session {session} lost{partial}",
                session=self._describe(),
                partial=f" with {pending} bytes of an incomplete frame" if pending else "",
            )
        if self._connected and not self._lostReported:
            self._lostReported = True
            try:
                self.handler.sessionLost(self, self.reason)
            except Exception:
                self.log.failure("MEP session {session}: the handler's sessionLost raised", session=self._describe())

    # -- public API ---------------------------------------------------------

    def sendSnapshot(self, seq: int, services: dict) -> bool:
        """
        Site role: send the full state at version C{seq}.

        @return: whether it was sent (only once established).
        @raise ValueError: the frame exceeds C{maxFrameSize}.
        """
        self._requireRole("site", "sendSnapshot")
        if self.state != ESTABLISHED:
            return False
        self._send(frames.SNAPSHOT, {"seq": seq, "services": services})
        self.lastSeq = seq
        return True

    def sendDelta(self, seq: int, baseSeq: int, changes: dict) -> bool:
        """
        Site role: send the changed metrics from version C{baseSeq} to C{seq}.

        @return: whether it was sent (only once established).
        """
        self._requireRole("site", "sendDelta")
        if self.state != ESTABLISHED:
            return False
        self._send(frames.DELTA, {"seq": seq, "base_seq": baseSeq, "changes": changes})
        self.lastSeq = seq
        return True

    def sendProbe(self, networks: Iterable[str]) -> int:
        """
        Appliance role: ask the site for its round-trip times to the client
        C{networks} (CIDR strings; canonicalised, duplicates dropped), in
        PROBE frames of at most L{frames.MAX_PROBE_NETWORKS} networks.

        @return: the number of frames sent (0 unless established, or for no
            networks).
        @raise ValueError: a network is not a network in CIDR notation.
        """
        self._requireRole("appliance", "sendProbe")
        unique = list(dict.fromkeys(_outgoing(frames.canonicalNetwork, network, "network") for network in networks))
        if self.state != ESTABLISHED:
            return 0
        chunks = _chunks(unique, frames.MAX_PROBE_NETWORKS)
        for chunk in chunks:
            self._send(frames.PROBE, {"networks": chunk})
        return len(chunks)

    def sendRTT(self, rtts: Mapping[str, float]) -> int:
        """
        Site role: report round-trip times, C{{network: milliseconds}}, in
        RTT frames of at most L{frames.MAX_RTT_ENTRIES} networks.  An empty
        mapping is sent too (one RTT frame with no network): it answers a
        PROBE of networks that could not be measured.

        @return: the number of frames sent (0 unless established).
        @raise ValueError: a key is not a network, or a value not a finite
            number >= 0.
        """
        self._requireRole("site", "sendRTT")
        checked = {}
        for network, ms in rtts.items():
            checked[_outgoing(frames.canonicalNetwork, network, "network")] = _outgoing(frames.checkRTT, ms, "RTT")
        if self.state != ESTABLISHED:
            return 0
        chunks = _chunks(list(checked.items()), frames.MAX_RTT_ENTRIES) or [[]]
        for chunk in chunks:
            self._send(frames.RTT, {"rtt": dict(chunk)})
        return len(chunks)

    def sendSessions(self, entries: Iterable[Mapping[str, Any]], validated: bool = False) -> int:
        """
        Either role: share persistence sessions (dicts with C{vserver},
        C{network}, C{service}, C{version}, C{origin} and C{ttl}, seconds
        remaining), in SESSIONS frames of at most
        L{frames.MAX_SESSION_ENTRIES} entries.  Entries whose C{ttl} is not
        above 0 are left out (sessions end by expiry).

        @param validated: the caller vouches for the entries (they were made
            or checked already): skip checking them again, per site.
        @return: the number of frames sent (0 unless established, or when
            nothing is left to send).
        @raise ValueError: an entry breaks the rules of docs/MEP.md.
        """
        if validated:
            if self.state != ESTABLISHED:
                return 0
            live = [dict(entry) for entry in entries if entry["ttl"] > 0]
            chunks = _chunks(live, frames.MAX_SESSION_ENTRIES)
            for chunk in chunks:
                self._send(frames.SESSIONS, {"sessions": chunk})
            return len(chunks)
        live = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ValueError(f"SESSIONS entry {index} is not a mapping: {entry!r}")
            ttl = entry.get("ttl")
            if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl <= 0:
                continue  # expired: never sent
            try:
                live.append(frames.checkSessionEntry("SESSIONS", index, dict(entry)))
            except ProtocolError as e:
                raise ValueError(e.message) from None
        if self.state != ESTABLISHED:
            return 0
        chunks = _chunks(live, frames.MAX_SESSION_ENTRIES)
        for chunk in chunks:
            self._send(frames.SESSIONS, {"sessions": chunk})
        return len(chunks)

    def close(self, code: str, message: str) -> None:
        """Send ERROR C{code}, then close the connection.  Idempotent."""
        self._close(code, message)

    # -- handshake and dispatch -----------------------------------------------

    def _dispatch(self, frameType: int, message: dict) -> None:
        if frameType == frames.ERROR:
            self._peerError(message)
        elif frameType == frames.HELLO:
            if self._peerNonce is not None:
                raise ProtocolError("unexpected-frame", "a second HELLO")
            self._hello(message)
        elif frameType == frames.AUTH:
            if not self._awaitingAuth:
                raise ProtocolError("unexpected-frame", "AUTH was not expected now")
            self._auth(message)
        elif self.state != ESTABLISHED:
            raise ProtocolError("not-authenticated", f"{frames.NAMES[frameType]} before the handshake completed")
        elif frameType == frames.KEEPALIVE:
            self._send(frames.KEEPALIVE_ECHO, {"ts": message["ts"]})
        elif frameType == frames.KEEPALIVE_ECHO:
            self._echo(message["ts"])
        elif frameType in (frames.SNAPSHOT, frames.DELTA):
            if self.role != "appliance":
                raise ProtocolError("unexpected-frame", f"a site does not accept {frames.NAMES[frameType]}")
            if frameType == frames.SNAPSHOT:
                self._snapshot(message)
            else:
                self._delta(message)
        elif frameType == frames.RESYNC:
            if self.role != "site":
                raise ProtocolError("unexpected-frame", "an appliance does not accept RESYNC")
            self._callHandler("resyncRequested")
        elif frameType == frames.PROBE:
            if self.role != "site":
                raise ProtocolError("unexpected-frame", "an appliance does not accept PROBE")
            self._callHandler("probeReceived", message["networks"])
        elif frameType == frames.RTT:
            if self.role != "appliance":
                raise ProtocolError("unexpected-frame", "a site does not accept RTT")
            self._callHandler("rttReported", message["rtt"])
        elif frameType == frames.SESSIONS:
            self._callHandler("sessionsReceived", message["sessions"])

    def _hello(self, message: dict) -> None:
        self.peerName = message["name"]
        self.peerRole = message["role"]
        self._peerNonce = message["nonce"]
        self._peerVersions = tuple(message["versions"])
        if self.peerRole == self.role:
            raise ProtocolError("wrong-role", f"both ends are {self.role}s")
        if self.expectedPeer is not None and self.peerName != self.expectedPeer:
            raise ProtocolError("wrong-peer", f"expected {self.expectedPeer!r}, not {self.peerName!r}")
        common = set(self.versions) & set(message["versions"])
        if not common:
            raise ProtocolError(
                "version-mismatch",
                f"no common version: we speak {sorted(self.versions)}, the peer {sorted(message['versions'])}",
            )
        self.version = max(common)
        mine = "hmac-sha256" if self.secret else "none"
        if message["auth"] != mine:
            self.authFailures = 1
            raise ProtocolError("auth-failed", f"authentication mismatch: we use {mine!r}, the peer {message['auth']!r}")
        if self.secret:
            self._awaitingAuth = True
            proof = auth.proof(
                self.secret, self.version, self.role, self.localName, self.peerName, self._peerNonce, self._nonce,
                self.versions, self._peerVersions,
            )
            self._send(frames.AUTH, {"proof": proof.hex()})
            if self.version >= auth.SEALED_VERSION:
                # Everything we send after our AUTH is sealed.
                self._sendMAC = auth.FrameMAC(auth.sessionKey(
                    self.secret, self.version, self.role, self.localName, self.peerName, self._nonce, self._peerNonce))
        else:
            self._establish()

    def _auth(self, message: dict) -> None:
        self._awaitingAuth = False
        if not auth.verify(
            self.secret,
            message["proof"],
            self.version,
            self.peerRole,
            self.peerName,
            self.localName,
            self._nonce,
            self._peerNonce,
            self._peerVersions,
            self.versions,
        ):
            self.authFailures = 1
            raise ProtocolError("auth-failed", "wrong proof: the peer does not know the shared secret")
        if self.version >= auth.SEALED_VERSION:
            # Everything the peer sends after its AUTH must be sealed.
            self._decoder.mac = auth.FrameMAC(auth.sessionKey(
                self.secret, self.version, self.peerRole, self.peerName, self.localName, self._peerNonce, self._nonce))
        self._establish()

    def _establish(self) -> None:
        self.state = ESTABLISHED
        self.log.info(
            "MEP session {session} established (version {version}, {direction})",
            session=self._describe(),
            version=self.version,
            direction=self.direction or "direction unset",
        )
        ok, accepted = self._callHandler("authenticated")
        if not ok:
            return
        if self.state != ESTABLISHED:
            return  # the handler closed the session itself
        if not accepted:
            raise ProtocolError("unknown-peer", f"{self.peerName!r} is not a known {self.peerRole}")
        self._send(frames.KEEPALIVE, {"ts": self.clock.seconds()})

    # -- established frames ---------------------------------------------------

    def _echo(self, ts: float) -> None:
        rtt = self.clock.seconds() - ts
        if rtt < 0:
            return  # the clock stepped back, or a confused peer: not an RTT
        self.rtt = rtt
        self._callHandler("rttMeasured", rtt)

    def _snapshot(self, message: dict) -> None:
        seq, services = message["seq"], message["services"]
        self._tracker.snapshot(seq, services)
        self.lastSeq = seq
        self._callHandler("snapshotReceived", seq, services)

    def _delta(self, message: dict) -> None:
        seq, baseSeq, changes = message["seq"], message["base_seq"], message["changes"]
        decision = self._tracker.delta(seq, baseSeq, changes)
        if decision == rules.APPLY:
            self.lastSeq = seq
            self._callHandler("deltaReceived", seq, baseSeq, changes)
        elif decision == rules.RESYNC:
            self.resyncs += 1
            self.deltasDropped += 1
            self.log.info(
                "MEP session {session}: DELTA {seq} from {baseSeq} does not follow {lastSeq}: asking for a snapshot",
                session=self._describe(),
                seq=seq,
                baseSeq=baseSeq,
                lastSeq=self._tracker.lastSeq,
            )
            self._send(frames.RESYNC, {"seq": self._tracker.lastSeq})
        else:
            self.deltasDropped += 1

    def _peerError(self, message: dict) -> None:
        code = message["code"]
        self.log.warn(
            "MEP session {session}: the peer sent ERROR {code}: {message}",
            session=self._describe(),
            code=code,
            message=message["message"][:200],
        )
        reason = "closed" if code == "shutdown" else "peer-error:" + code
        self._close(code, message["message"], reason=reason, send=False, log=False)

    # -- plumbing -------------------------------------------------------------

    def _callHandler(self, name: str, *args: Any) -> tuple[bool, Any]:
        """Call the handler; if it raises, log it and close with C{internal}."""
        try:
            return True, getattr(self.handler, name)(self, *args)
        except Exception:
            self.log.failure("MEP session {session}: the handler's {method} raised", session=self._describe(), method=name)
            self._close("internal", "internal error", log=False)
            return False, None

    def _send(self, frameType: int, message: dict) -> None:
        data = frames.encodeFrame(frameType, message, self.maxFrameSize, self._sendMAC)
        self.framesOut += 1
        self.bytesOut += len(data)
        self.transport.write(data)

    def _close(self, code: str, message: str, *, reason: Optional[str] = None, send: bool = True, log: bool = True) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.reason = reason or _REASONS.get(code, "error:" + code)
        self._stopTimers()
        if log:
            emit = self.log.info if code == "shutdown" else self.log.warn
            emit("MEP session {session} closed: {code}: {message}", session=self._describe(), code=code, message=message)
        if self.transport is None:
            return
        if send:
            try:
                self._send(frames.ERROR, {"code": code, "message": message[:512]})
            except Exception:
                self.log.failure("MEP session {session}: sending ERROR failed", session=self._describe())
        self._abort = self.clock.callLater(self.deadInterval, self._abortConnection)
        self.transport.loseConnection()

    def _abortConnection(self) -> None:
        self._abort = None
        self.log.info("MEP session {session}: the peer does not let go; aborting", session=self._describe())
        self.transport.abortConnection()

    def _keepaliveTick(self) -> None:
        if self.state != ESTABLISHED:
            return
        try:
            self._send(frames.KEEPALIVE, {"ts": self.clock.seconds()})
        except Exception:
            self.log.failure("MEP session {session}: sending KEEPALIVE failed", session=self._describe())
            self._close("internal", "internal error", log=False)

    def _armSilence(self) -> None:
        delay = max(0.0, self._lifeSign + self.deadInterval - self.clock.seconds())
        self._silence = self.clock.callLater(delay, self._checkSilence, self._lifeSign)

    def _checkSilence(self, lifeSignWhenArmed: float) -> None:
        self._silence = None
        if self.state == CLOSED:
            return
        if self._lifeSign == lifeSignWhenArmed:
            self._close("silent", f"nothing received for {self.deadInterval:g} seconds")
        else:
            self._armSilence()

    def _stopTimers(self) -> None:
        if self._keepalive is not None:
            if self._keepalive.running:
                self._keepalive.stop()
            self._keepalive = None
        if self._silence is not None and self._silence.active():
            self._silence.cancel()
        self._silence = None

    def _requireRole(self, role: str, method: str) -> None:
        if self.role != role:
            raise RuntimeError(f"{method} is for the {role} role; this session is an {self.role}")

    def _describe(self) -> str:
        peer = self.peerName or "?"
        try:
            address = self.transport.getPeer()
            where = f" at {address.host}:{address.port}"
        except Exception:
            where = ""
        return f"{self.localName}<->{peer}{where}"
