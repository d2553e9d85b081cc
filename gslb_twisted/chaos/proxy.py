"""
A loopback TCP proxy whose links a test or a scenario controls: put it
between the two ends of a MEP session (or any TCP conversation) and cut,
delay or blackhole the link at will.

Modes (L{LinkFaults}):

  - C{pass}: bytes go through as they come.
  - C{cut}: every current connection is aborted (both ends see a reset),
    and each new one is aborted as soon as it is accepted; the target is
    not dialled.  What a peer sees when the path to the other end is torn
    down: connections drop and reconnecting fails.
  - C{delay}: every chunk of bytes is held N ms before it is passed on,
    each way, in order (a chunk never overtakes an earlier one, even when
    the delay changes).  A close is held the same way, behind the bytes.
  - C{blackhole}: connections stay open but nothing arrives: bytes are
    swallowed silently both ways, a close too (the other end is not told),
    and a new connection is accepted but the target is never dialled.  What
    a peer sees when packets are dropped silently on the path: only its own
    silence timer notices.  Bytes queued for delivery when the blackhole
    begins are lost with it.
  - restore (back to C{pass}): new connections pass; open connections that
    lost bytes in a blackhole are aborted (their streams are broken: a
    resumed stream would be missing bytes in the middle), so both ends see
    the break and reconnect; bytes still held by a delay are delivered at
    their time.

The decisions are plain objects (L{Duct}, L{Link}, L{LinkFaults}) driven
by an injected clock; the protocols only hand them bytes and events; the
service L{TCPProxy} wires them to a listening and a connecting endpoint.
There is no flow control: this is for control-plane links (MEP), not bulk
data.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString, connectProtocol, serverFromString
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

PASS = "pass"
CUT = "cut"
DELAY = "delay"
BLACKHOLE = "blackhole"
MODES = (PASS, CUT, DELAY, BLACKHOLE)

_END = object()  # queued in a duct: close the far side once everything before it is delivered


class Duct:
    """
    One direction of a link: chunks delivered to the far side in the order
    they came, each no earlier than its due time.

    @ivar forwarded: bytes delivered.
    @ivar dropped: bytes thrown away while queued (the link broke).
    @ivar ended: the close was delivered.
    """

    def __init__(self, clock) -> None:
        self.clock = clock
        self._queue: deque = deque()
        self._lastDue = -math.inf
        self._call = None
        self._write: Optional[Callable[[bytes], None]] = None
        self._end: Optional[Callable[[], None]] = None
        self.forwarded = 0
        self.dropped = 0
        self.ended = False

    @property
    def pending(self) -> int:
        """Bytes queued, not yet delivered."""
        return sum(len(item) for _, item in self._queue if item is not _END)

    def attach(self, write: Callable[[bytes], None], end: Callable[[], None]) -> None:
        """The far side is connected: deliver to C{write}; C{end()} closes it."""
        self._write, self._end = write, end
        self._flush()

    def push(self, data: bytes, delay: float) -> None:
        """C{data}, to be delivered C{delay} seconds from now (and after everything queued)."""
        self._enqueue(data, delay)

    def finish(self, delay: float) -> None:
        """Close the far side once everything queued is delivered, no earlier than C{delay} from now."""
        self._enqueue(_END, delay)

    def drop(self) -> None:
        """Throw away what is queued (it was in flight when the link broke)."""
        self.dropped += self.pending
        self._queue.clear()
        self._cancel()

    def _enqueue(self, item: Any, delay: float) -> None:
        if self.ended:
            return
        due = max(self.clock.seconds() + delay, self._lastDue)
        self._lastDue = due
        self._queue.append((due, item))
        if len(self._queue) == 1:
            self._flush()

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _flush(self) -> None:
        self._cancel()
        if self._write is None:
            return
        now = self.clock.seconds()
        while self._queue and self._queue[0][0] <= now:
            _, item = self._queue.popleft()
            if item is _END:
                self.ended = True
                self._queue.clear()
                self._end()
                return
            self.forwarded += len(item)
            self._write(item)
        if self._queue:
            self._call = self.clock.callLater(self._queue[0][0] - now, self._flush)


class Link:
    """
    One proxied connection: the accepted side (the client), the side
    connected to the target (the server) once it is, and a duct each way.

    @param faults: the proxy's L{LinkFaults}: its mode decides.
    @param dial: C{dial(link) -> Deferred}, connect to the target and hand
        the connection's events to C{link} (L{serverConnected}, ...).
    @ivar damaged: bytes were lost in a blackhole: the streams are broken.
    @ivar aborted: the link was torn down by the proxy (cut, restore).
    """

    def __init__(self, faults: "LinkFaults", clock, dial: Callable[["Link"], defer.Deferred]) -> None:
        self.faults = faults
        self.clock = clock
        self.dial = dial
        self.client = None
        self.server = None
        self.toServer = Duct(clock)
        self.toClient = Duct(clock)
        self.damaged = False
        self.aborted = False
        self.clientGone = False
        self.serverGone = False
        self.dialled = False
        self._connecting: Optional[defer.Deferred] = None

    @property
    def done(self) -> bool:
        return self.clientGone and (self.serverGone or not self.dialled)

    # --- the accepted side -------------------------------------------------------------

    def clientConnected(self, transport) -> None:
        self.client = transport
        self.toClient.attach(transport.write, self._closeClient)
        if self.faults.mode == BLACKHOLE:
            # The connection attempt to the target is lost on the way.
            self.damaged = True
            return
        self.dialled = True
        self._connecting = self.dial(self)
        self._connecting.addErrback(self._dialFailed)

    def clientData(self, data: bytes) -> None:
        if self.faults.mode == BLACKHOLE:
            self.faults.swallowed += len(data)
            return
        self.toServer.push(data, self.faults.delay)

    def clientLost(self) -> None:
        self.clientGone = True
        if not self.aborted and self.faults.mode != BLACKHOLE:
            # Still connecting: what the client sent, then its close, go
            # to the target once connected.
            self.toServer.finish(self.faults.delay)
        self._checkDone()

    # --- the side connected to the target ----------------------------------------------

    def serverConnected(self, transport) -> None:
        self.server = transport
        self._connecting = None
        if self.aborted:
            transport.abortConnection()
            return
        self.toServer.attach(transport.write, self._closeServer)

    def serverData(self, data: bytes) -> None:
        if self.faults.mode == BLACKHOLE:
            self.faults.swallowed += len(data)
            return
        self.toClient.push(data, self.faults.delay)

    def serverLost(self) -> None:
        self.serverGone = True
        if not self.aborted and self.faults.mode != BLACKHOLE:
            self.toClient.finish(self.faults.delay)
        self._checkDone()

    def _dialFailed(self, failure) -> None:
        self._connecting = None
        self.serverGone = True
        if failure.check(defer.CancelledError, ConnectingCancelledError) is None:
            self.faults.dialFailures += 1
        if not self.clientGone and self.client is not None:
            self.client.abortConnection()
        self._checkDone()

    # --- what the mode does ------------------------------------------------------------

    def blackholed(self) -> None:
        """A blackhole begins: what is in flight is lost, and the streams with it."""
        self.damaged = True
        self._drop()

    def _drop(self) -> None:
        self.faults.dropped += self.toServer.pending + self.toClient.pending
        self.toServer.drop()
        self.toClient.drop()

    def abort(self) -> None:
        """Tear the link down: both ends see a reset."""
        if self.aborted:
            return
        self.aborted = True
        self._drop()
        if self._connecting is not None:
            self._connecting.cancel()
        for transport, gone in ((self.client, self.clientGone), (self.server, self.serverGone)):
            if transport is not None and not gone:
                transport.abortConnection()

    def _closeClient(self) -> None:
        if not self.clientGone and self.client is not None:
            self.client.loseConnection()

    def _closeServer(self) -> None:
        if not self.serverGone and self.server is not None:
            self.server.loseConnection()

    def _checkDone(self) -> None:
        if self.done:
            # Both ends are gone: what a delay still holds has nowhere to go,
            # and its timers must not outlive the link (nor the proxy).
            self.toServer.drop()
            self.toClient.drop()
            self.faults.links.discard(self)

    def describe(self) -> dict:
        return {
            "client": _address(self.client),
            "to_target": self.toServer.forwarded,
            "to_client": self.toClient.forwarded,
            "held": self.toServer.pending + self.toClient.pending,
            "damaged": self.damaged,
        }


def _address(transport) -> Optional[str]:
    if transport is None:
        return None
    peer = transport.getPeer()
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return None if host is None else f"{host}:{port}"


class LinkFaults:
    """
    The proxy's mode and its live links: what each mode change does to
    them.  No reactor: L{Link}s hold the transports.

    @ivar mode: one of L{MODES}.
    @ivar delay: seconds each chunk is held (C{delay} mode; 0 otherwise).
    @ivar links: the live links.
    @ivar accepted: connections accepted and proxied (or blackholed).
    @ivar refused: connections aborted as they were accepted (C{cut}).
    @ivar aborted: live connections torn down by a cut or a restore.
    @ivar swallowed: bytes a blackhole ate.
    @ivar dropped: bytes held by a delay and lost when a blackhole or a cut
        began.
    @ivar dialFailures: the target refused or did not answer.
    """

    log = Logger()

    def __init__(self, name: str = "proxy") -> None:
        self.name = name
        self.mode = PASS
        self.delay = 0.0
        self.links: set[Link] = set()
        self.accepted = 0
        self.refused = 0
        self.aborted = 0
        self.swallowed = 0
        self.dropped = 0
        self.dialFailures = 0
        self.changes = 0

    def admit(self, link: Link) -> bool:
        """A new connection: keep it (True) or refuse it (False: the caller aborts it)."""
        if self.mode == CUT:
            self.refused += 1
            return False
        self.accepted += 1
        self.links.add(link)
        return True

    def setMode(self, mode: str, delay: float = 0.0) -> None:
        """
        Switch to C{mode} (C{delay}: seconds, for L{DELAY} only).

        @raise ValueError: an unknown mode, or a delay that is not a finite
            non-negative number of seconds (or given for another mode).
        """
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}: expected one of {', '.join(MODES)}")
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"a delay is a finite number of seconds >= 0, not {delay!r}")
        if mode != DELAY and delay:
            raise ValueError(f"a delay goes with mode {DELAY!r}, not {mode!r}")
        before = self.mode
        self.mode, self.delay = mode, float(delay)
        self.changes += 1
        if mode == CUT:
            for link in list(self.links):
                self._abort(link)
        elif mode == BLACKHOLE:
            for link in self.links:
                link.blackholed()
        elif before == BLACKHOLE:
            for link in [link for link in self.links if link.damaged]:
                self._abort(link)
        self.log.info(
            "proxy {name}: {mode} (delay {delay_ms} ms); {links} live connections",
            name=self.name, mode=mode, delay_ms=round(self.delay * 1000, 3), links=len(self.links),
        )

    def _abort(self, link: Link) -> None:
        self.aborted += 1
        self.links.discard(link)
        link.abort()

    def cut(self) -> None:
        self.setMode(CUT)

    def delayBy(self, milliseconds: float) -> None:
        """Hold every chunk C{milliseconds} ms each way."""
        if not isinstance(milliseconds, (int, float)) or isinstance(milliseconds, bool):
            raise ValueError(f"a delay is a number of milliseconds, not {milliseconds!r}")
        self.setMode(DELAY, milliseconds / 1000.0)

    def blackhole(self) -> None:
        self.setMode(BLACKHOLE)

    def restore(self) -> None:
        self.setMode(PASS)

    def describe(self) -> dict:
        """The mode, the counters and the live links (for a console or a report)."""
        links = sorted((link.describe() for link in self.links), key=lambda row: str(row["client"]))
        return {
            "name": self.name,
            "mode": self.mode,
            "delay_ms": round(self.delay * 1000, 3),
            "accepted": self.accepted,
            "refused": self.refused,
            "aborted": self.aborted,
            "swallowed": self.swallowed,
            "dropped": self.dropped,
            "dial_failures": self.dialFailures,
            "links": links,
        }


class _ClientSide(Protocol):
    """An accepted connection: its events go to its L{Link}."""

    def __init__(self, proxy: "TCPProxy") -> None:
        self.proxy = proxy
        self.link: Optional[Link] = None

    def connectionMade(self) -> None:
        self.link = self.proxy.accepted(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.link is not None:
            self.link.clientData(data)

    def connectionLost(self, reason) -> None:
        if self.link is not None:
            self.link.clientLost()


class _ServerSide(Protocol):
    """The connection to the target: its events go to its L{Link}."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def connectionMade(self) -> None:
        self.link.serverConnected(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.link.serverData(data)

    def connectionLost(self, reason) -> None:
        self.link.serverLost()


class TCPProxy(Service):
    """
    Listen on C{listen}, forward each connection to C{target}, under the
    faults of L{faults}.

    @param reactor: for the endpoints (and the clock, unless C{clock}).
    @param listen: a server endpoint or its string (C{tcp:0:interface=127.0.0.5}).
    @param target: a client endpoint or its string
        (C{tcp:host=127.0.0.5:port=3011:bindAddress=127.0.0.2}: a MEP peer
        checks the address a site connects from, so bind the proxy's
        outgoing side to the dialling end's own address).
    @ivar listening: fires with the listening port once L{startService} ran.
    """

    log = Logger()

    def __init__(self, reactor, listen, target, clock=None, name: str = "proxy") -> None:
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.listenEndpoint = serverFromString(reactor, listen) if isinstance(listen, str) else listen
        self.targetEndpoint = clientFromString(reactor, target) if isinstance(target, str) else target
        self.faults = LinkFaults(name)
        self.setName(name)
        self.port = None
        self.listening: defer.Deferred = defer.Deferred()

    # --- service -----------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        factory = Factory.forProtocol(lambda: _ClientSide(self))
        factory.noisy = False

        def listened(port):
            self.port = port
            return port

        d = self.listenEndpoint.listen(factory).addCallback(listened)
        d.chainDeferred(self.listening)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for link in list(self.faults.links):
            self.faults.links.discard(link)
            link.abort()
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)

    @property
    def address(self):
        """The listening address (C{IPv4Address}), once listening."""
        return None if self.port is None else self.port.getHost()

    # --- wiring ------------------------------------------------------------------------

    def accepted(self, transport) -> Optional[Link]:
        link = Link(self.faults, self.clock, self._dial)
        if not self.faults.admit(link):
            transport.abortConnection()
            return None
        link.clientConnected(transport)
        return link

    def _dial(self, link: Link) -> defer.Deferred:
        return connectProtocol(self.targetEndpoint, _ServerSide(link))

    # --- faults (see LinkFaults) -------------------------------------------------------

    @property
    def mode(self) -> str:
        return self.faults.mode

    def cut(self) -> None:
        self.faults.cut()

    def delay(self, milliseconds: float) -> None:
        self.faults.delayBy(milliseconds)

    def blackhole(self) -> None:
        self.faults.blackhole()

    def restore(self) -> None:
        self.faults.restore()

    def describe(self) -> dict:
        row = self.faults.describe()
        address = self.address
        row["listen"] = None if address is None else f"{address.host}:{address.port}"
        return row
