"""
DNS over UDP and TCP: thin Twisted protocols that hand each query to an
L{Authority<gslb_twisted.dns.authority.Authority>} and write its reply.

A failure answering one query is logged and costs only that query: it never
reaches the reactor nor closes a connection.
"""

from __future__ import annotations

import errno
import struct
from typing import Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

_LENGTH = struct.Struct("!H")


# sendto() failures that lose one reply and nothing else: the socket's send
# buffer is full (the kernel drops the datagram, as a router would), or an
# ICMP error from an earlier datagram surfaced on this one.
_REPLY_LOST = frozenset((errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EHOSTUNREACH,
                         errno.ENETUNREACH))


class DNSDatagramProtocol(DatagramProtocol):
    """
    DNS over UDP: one datagram, one query, at most one reply.

    Replies go out through the socket's own C{sendto}: the address came
    from C{recvfrom}, so the checks C{Port.write} makes of every address
    (three parses of it) are pure cost, about a quarter of a query's time
    on the fast path.
    """

    log = Logger()

    def __init__(self, authority) -> None:
        self.authority = authority
        self._sendto = None
        self._sendErrors: set[int] = set()

    def startProtocol(self) -> None:
        handle = getattr(self.transport, "socket", None)
        self._sendto = getattr(handle, "sendto", None)

    def datagramReceived(self, data: bytes, address) -> None:
        try:
            reply = self.authority.respond(data, address, False)
            if reply is not None:
                sendto = self._sendto
                if sendto is None:
                    self.transport.write(reply, address)
                else:
                    try:
                        sendto(reply, address)
                    except OSError as e:
                        self._sendFailed(e, reply, address)
        except Exception:
            self.log.failure("Answering a DNS query over UDP from {client} failed", client=address)

    def _sendFailed(self, error: OSError, reply: bytes, address) -> None:
        if error.errno == errno.EINTR:
            try:
                self._sendto(reply, address)
                return
            except OSError as again:
                error = again
        self.authority.dropped += 1
        if error.errno in _REPLY_LOST:
            return
        if error.errno not in self._sendErrors:
            # Once per kind of error: a flood of them must not flood the log.
            self._sendErrors.add(error.errno)
            self.log.warn("Sending a DNS reply to {client} failed: {error} (further such failures are only counted)",
                          client=address, error=error)


@implementer(IPushProducer)
class DNSStreamProtocol(Protocol, TimeoutMixin):
    """
    DNS over TCP (RFC 7766): messages framed by a two-byte length, several
    per connection, pipelined, answered in order.

    Flow control: when the transport's send buffer fills (the client is not
    reading its replies), the protocol stops reading and stops answering;
    more than C{maxPending} complete queries waiting then is abuse, and the
    connection is dropped.  A connection that completes no query for
    C{idleTimeout} seconds (silent, or trickling bytes: a slowloris), or
    sends a zero-length frame, is closed.
    """

    log = Logger()

    def __init__(self, authority, clock: IReactorTime, idleTimeout: float, maxPending: int) -> None:
        self.authority = authority
        self.callLater = clock.callLater  # TimeoutMixin schedules with this
        self.idleTimeout = idleTimeout
        self.maxPending = maxPending
        self._buffer = b""
        self._paused = False
        self._closing = False
        self._client: tuple = ("", 0)
        # The address its factory counts it under (see DNSStreamFactory).
        self.clientHost = ""

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self._client = (getattr(peer, "host", ""), getattr(peer, "port", 0))
        self.transport.registerProducer(self, True)
        self.setTimeout(self.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        # No resetTimeout here: only a complete query counts as activity.
        self._buffer += data
        self._answerBuffered()

    def connectionLost(self, reason) -> None:
        self.setTimeout(None)
        self._closing = True
        self._buffer = b""
        factory = getattr(self, "factory", None)
        if factory is not None:
            factory.released(self.clientHost)

    def timeoutConnection(self) -> None:
        self._closing = True
        if self._paused:
            # Replies are stuck in the send buffer: a graceful close would
            # wait for a client that is not reading.
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    # IPushProducer: the transport pauses us when its send buffer is full.

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._closing:
            return
        self.transport.resumeProducing()
        self._answerBuffered()

    def stopProducing(self) -> None:
        self._closing = True

    # -----------------------------------------------------------------------

    def _answerBuffered(self) -> None:
        buffer = self._buffer
        offset = 0
        size = len(buffer)
        while not self._paused and size - offset >= 2:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length == 0:
                # RFC 7766 gives a zero-length frame no meaning; take it
                # as the client being done (or lost), after its earlier
                # queries were answered.
                self._closing = True
                self._buffer = b""
                self.setTimeout(None)
                self.transport.loseConnection()
                return
            end = offset + 2 + length
            if end > size:
                break
            self.resetTimeout()
            self._answer(buffer[offset + 2 : end])
            offset = end
            if self._closing:
                return
        self._buffer = buffer[offset:]
        if self._paused and self._completeFrames() > self.maxPending:
            self.log.warn(
                "Dropping the DNS TCP connection from {client}: more than {maxPending} queries"
                " wait while it does not read its replies",
                client=self._client,
                maxPending=self.maxPending,
            )
            self._closing = True
            self.transport.abortConnection()

    def _answer(self, message: bytes) -> None:
        try:
            reply = self.authority.respond(message, self._client, True)
        except Exception:
            self.log.failure("Answering a DNS query over TCP from {client} failed", client=self._client)
            return
        if reply is not None:
            self.transport.write(_LENGTH.pack(len(reply)) + reply)

    def _completeFrames(self) -> int:
        count = 0
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= 2:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            offset += 2 + length
            if offset > len(buffer):
                break
            count += 1
        return count


class DNSStreamFactory(ServerFactory):
    """
    Builds L{DNSStreamProtocol}s sharing one authority and clock.

    @param idleTimeout: seconds without a query before a connection closes
        (RFC 7766 6.2.3 suggests some seconds for a busy server).
    @param maxPending: complete queries allowed to wait while a client does
        not read its replies, before its connection is dropped.
    @param maxConnections: connections open at once; more are closed as
        they are accepted (BIND's C{tcp-clients}).
    @param maxPerClient: connections open at once from one address, so
        that one client cannot take them all.
    @ivar refused: connections closed at once for being over a limit.
    """

    protocol = DNSStreamProtocol
    log = Logger()

    def __init__(
        self,
        authority,
        clock: IReactorTime,
        idleTimeout: float = 10.0,
        maxPending: int = 256,
        maxConnections: int = 1024,
        maxPerClient: int = 32,
    ) -> None:
        self.authority = authority
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.maxPending = maxPending
        self.maxConnections = maxConnections
        self.maxPerClient = maxPerClient
        self.openConnections = 0
        self.openByClient: dict[str, int] = {}
        self.refused = 0
        # Clients refused since they last had room: logged once each.
        self._refusedClients: set[str] = set()

    def buildProtocol(self, addr) -> Optional[DNSStreamProtocol]:
        host = getattr(addr, "host", "")
        mine = self.openByClient.get(host, 0)
        if self.openConnections >= self.maxConnections or mine >= self.maxPerClient:
            # None: the port closes the connection as it accepts it.
            self.refused += 1
            self.authority.tcpRefused += 1
            if host not in self._refusedClients:
                self._refusedClients.add(host)
                self.log.warn(
                    "Refusing DNS TCP connections from {client}: {mine} open from it"
                    " (limit {perClient}), {open} in all (limit {limit})",
                    client=host, mine=mine, perClient=self.maxPerClient, open=self.openConnections, limit=self.maxConnections,
                )
            return None
        self.openConnections += 1
        self.openByClient[host] = mine + 1
        protocol = self.protocol(self.authority, self.clock, self.idleTimeout, self.maxPending)
        protocol.factory = self
        protocol.clientHost = host
        return protocol

    def released(self, host: str) -> None:
        """A connection from C{host} closed."""
        self.openConnections -= 1
        left = self.openByClient.get(host, 0) - 1
        if left > 0:
            self.openByClient[host] = left
        else:
            self.openByClient.pop(host, None)
        self._refusedClients.discard(host)
