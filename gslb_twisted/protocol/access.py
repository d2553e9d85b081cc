"""
Who may connect.  A control endpoint (the appliance's, a site emulator's):
on a unix socket, its owner's processes (and root), by the socket's file
mode and the peer's uid; on anything else (TCP), whoever presents the lab's
control token first (L{Authenticate}).  A MEP listener: only the addresses
of the peers configured to dial it (L{PeerAllowList}), before a byte is
exchanged.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import struct
from typing import Iterable, Optional

from twisted.internet import defer
from twisted.internet.address import UNIXAddress
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from gslb_twisted.protocol.commands import Authenticate, Unauthenticated
from gslb_twisted.protocol.bounds import STUCK_AFTER, BoundedCallsAMP, WriteBacklog

_CREDENTIALS = struct.Struct("3i")


def peerUID(transport) -> Optional[int]:
    """The uid of the process at the other end of a unix socket (None: not one)."""
    handle = getattr(transport, "getHandle", lambda: None)()
    if not isinstance(handle, socket.socket) or handle.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        _, uid, _ = _CREDENTIALS.unpack(handle.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    except OSError:
        return None
    return uid


class GuardedControl(BoundedCallsAMP):
    """
    A control endpoint's AMP protocol: garbage ends the conversation; a
    peer of another uid on a unix socket is disconnected; over TCP, any
    command before a right L{Authenticate} closes the connection.

    A console that does not read what it is sent is not buffered for
    without end: while its connection's write buffer is full its commands
    are not read (back-pressure) and its events are skipped
    (C{writeBlocked}); full for L{STUCK_AFTER} seconds, it is disconnected.

    @param token: the token a non-unix connection must present; C{None}
        asks for none (unix sockets only, as twistd enforces; tests).
    @param clock: schedules the close after a refused token is answered
        (the global reactor by default).
    """

    def __init__(self, token: Optional[str] = None, clock=None) -> None:
        super().__init__()
        self.token = token
        self.authenticated = token is None
        self._clock = clock

    def connectionMade(self) -> None:
        super().connectionMade()
        self.backlog = WriteBacklog(
            self._reactor(), self._stuck, paused=self.transport.pauseProducing, resumed=self.transport.resumeProducing)
        self.transport.registerProducer(self.backlog, True)
        if isinstance(self.transport.getHost(), UNIXAddress):
            # Its file mode and the peer's uid (below) stand for a token.
            self.authenticated = True
        uid = peerUID(self.transport)
        if uid is not None and uid not in (os.getuid(), 0):
            # Whatever the socket's mode says: only its owner (or root) steers.
            self.garbageLog.warn(
                "Refusing a control connection from uid {uid}: only uid {owner} (or root) may connect",
                uid=uid, owner=os.getuid(),
            )
            self.transport.loseConnection()

    @property
    def writeBlocked(self) -> bool:
        """Whether the peer's unread data fills the write buffer now."""
        backlog = getattr(self, "backlog", None)
        return backlog is not None and backlog.blocked

    def _reactor(self):
        if self._clock is not None:
            return self._clock
        from twisted.internet import reactor

        return reactor

    def _stuck(self) -> None:
        self.garbageLog.warn(
            "Closing a control connection from {peer}: it read nothing for {after:g} s",
            peer=self.describePeer(), after=STUCK_AFTER,
        )
        self.transport.abortConnection()

    def locateResponder(self, name: bytes):
        if self.authenticated or name == Authenticate.commandName:
            return super().locateResponder(name)

        def refuse(box):
            self.garbageLog.warn(
                "Closing a control connection from {peer}: {command} before Authenticate",
                peer=self.describePeer(), command=name.decode("ascii", "replace"),
            )
            self.transport.loseConnection()
            return defer.Deferred()  # never answered: the connection is gone

        return refuse

    @Authenticate.responder
    def authenticate(self, token: str) -> dict:
        if self.token is None or hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8")):
            self.authenticated = True
            return {}
        self.garbageLog.warn("Refusing a control connection from {peer}: wrong token", peer=self.describePeer())
        # After the error answer is written.
        self._reactor().callLater(0, self.transport.loseConnection)
        raise Unauthenticated("wrong control token")


def _canonicalAddress(host: str) -> str:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).compressed
    except ValueError:
        return host


class PeerAllowList(Factory):
    """
    A listener's factory that hands a connection to C{factory} only when it
    comes from one of C{addresses}; any other is closed at once, unanswered
    (nothing of the protocol -- not even a MEP HELLO and its nonce -- is
    shown to it), counted in C{refused} and logged once per address.
    """

    log = Logger()
    noisy = False

    def __init__(self, factory: Factory, addresses: Iterable[str], what: str = "MEP") -> None:
        self.factory = factory
        self.allowed = frozenset(_canonicalAddress(address) for address in addresses)
        self.what = what
        self.refused = 0
        self._logged: set[str] = set()

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()

    def buildProtocol(self, addr):
        host = _canonicalAddress(getattr(addr, "host", ""))
        if host in self.allowed:
            return self.factory.buildProtocol(addr)
        self.refused += 1
        if host not in self._logged and len(self._logged) < 1024:
            self._logged.add(host)
            self.log.warn(
                "{what} connection from {host} refused: not a configured peer's address (further ones not logged)",
                what=self.what, host=host,
            )
        return None
