"""
Health probes: one check of one service, as a L{Deferred} that fires with a
L{ProbeResult}.

Each probe type follows the documented behaviour of the NetScaler built-in
monitor of the same name (Citrix ADC documentation, "TCP-based application
monitoring", "SSL service monitoring", "DNS and DNS-TCP service monitoring",
and support article CTX233267 for UDP-ECV):

  - C{tcp}: a three-way handshake within the timeout is UP; the connection is
    then closed.
  - C{http}/C{https}: a GET of the monitor's URL; UP when the status is one of
    the expected codes and, if expected content is configured, the body
    contains it (NetScaler's HTTP-ECV).  For C{https} the server certificate
    is I{not} verified (L{makeHTTPClient}): a NetScaler secure monitor checks
    the TCP connection, the TLS handshake and the response, not the
    certificate chain, and health endpoints behind load balancers commonly
    carry self-signed or internal certificates.
  - C{dns}: a UDP query; UP as soon as a well-formed response with the query's
    id arrives, whatever its RCODE (NOERROR, NXDOMAIN, REFUSED, SERVFAIL...):
    the monitor asks "is a DNS server answering on that port?".  NetScaler's
    DNS monitor with its default query (the odd name C{"\\007"}, which no
    server holds) works the same way: a response marks the service UP, no
    response marks it DOWN.  An ICMP port unreachable is DOWN at once.
  - C{udp}: a datagram to the service from a I{connected} UDP socket, so that
    an ICMP port unreachable surfaces as C{ECONNREFUSED}.  As documented for
    NetScaler's UDP-ECV monitor without a receive string (CTX233267), the only
    DOWN verdict is that ICMP error: a reply is UP, and silence until the
    timeout is UP as well (UDP has no connection state to test).  A black-holed
    host therefore looks UP; pair it with another monitor if that matters.

Every probe is bounded by C{Deferred.addTimeout} on an injected clock and
releases what it opened (connection, UDP port) I{before} its Deferred fires,
on success, on failure, on timeout and on cancellation: when a caller's
callbacks run, the socket is already closed.  The one exception is HTTP, where
the connection belongs to the treq client's agent: L{makeHTTPClient} builds
one with a non-persistent pool, so the agent closes each probe's connection as
soon as the response has been read.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence
from urllib.parse import urlsplit

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.names import dns
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import Interface, implementer

from ..config import Monitor, Service

if TYPE_CHECKING:
    from OpenSSL import SSL


@dataclass(frozen=True)
class ProbeResult:
    """
    The outcome of one probe.

    @ivar up: whether the service passed the check.
    @ivar response_time: milliseconds from the start of the probe to its
        verdict when the service answered, else C{None}.
    @ivar reason: a short human-readable explanation, for logs and C{show}.
    """

    up: bool
    response_time: Optional[float]
    reason: str


class IProbe(Interface):
    """
    One kind of health check against one target.
    """

    def probe() -> Deferred:
        """
        Check the target once.

        @return: a L{Deferred} firing with a L{ProbeResult}; it never fails
            except with L{CancelledError} when cancelled by the caller.  When
            it fires, every connection or port the probe opened is closed.
        """


def _elapsedMilliseconds(clock: IReactorTime, start: float) -> float:
    return round((clock.seconds() - start) * 1000.0, 3)


def _isIPv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _down(reason: str) -> ProbeResult:
    return ProbeResult(up=False, response_time=None, reason=reason)


def _describeError(failure: Failure) -> str:
    value = failure.value
    if isinstance(value, (error.ConnectionRefusedError, ConnectionRefusedError)):
        return "connection refused"
    text = str(value).strip()
    return f"{type(value).__name__}: {text}" if text else type(value).__name__


def _timedOut(result: object, timeout: float) -> object:
    """
    C{onTimeoutCancel} for C{addTimeout}: whatever failure the cancellation
    produced (C{CancelledError}, C{ConnectingCancelledError}, an HTTP
    C{ResponseNeverReceived} wrapping one...), the probe timed out.
    """
    if isinstance(result, Failure):
        return Failure(TimeoutError(f"no answer within {timeout:g} s"))
    return result


def _isCancellation(failure: Failure) -> bool:
    """
    Whether C{failure} comes from cancelling the probe's Deferred, directly
    or wrapped by the layer that was cancelled (endpoint, HTTP agent).
    """
    if failure.check(CancelledError, error.ConnectingCancelledError):
        return True
    reasons = getattr(failure.value, "reasons", None)
    return bool(reasons) and any(isinstance(r, Failure) and r.check(CancelledError) for r in reasons)


def _settle(timeout: float) -> Callable[[Failure], ProbeResult]:
    """
    The last errback of a probe: a timeout or an error is a DOWN result; a
    caller's cancellation stays a failure, as a plain L{CancelledError}.
    """

    def settle(failure: Failure) -> ProbeResult:
        if failure.check(TimeoutError):
            return _down(f"no answer within {timeout:g} s")
        if _isCancellation(failure):
            return Failure(CancelledError())  # type: ignore[return-value]
        return _down(_describeError(failure))

    return settle


# ---------------------------------------------------------------------------
# TCP


class _HandshakeOnly(Protocol):
    """
    Connects, and lets the probe close; L{whenLost} fires once the
    connection is really gone.
    """

    def __init__(self) -> None:
        self._lost = Deferred(lambda d: self._abort())
        self.gone = False

    def _abort(self) -> None:
        if self.transport is not None and not self.gone:
            self.transport.abortConnection()

    def whenLost(self) -> Deferred:
        return self._lost

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.gone = True
        if not self._lost.called:
            self._lost.callback(None)


@implementer(IProbe)
class TCPProbe:
    """
    UP when a TCP connection to C{host:port} is established within
    C{timeout} seconds; the connection is closed (FIN) right away.
    """

    def __init__(
        self, reactor: Any, host: str, port: int, timeout: float, clock: Optional[IReactorTime] = None
    ) -> None:
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    def _endpoint(self) -> Any:
        if _isIPv6(self.host):
            return TCP6ClientEndpoint(self._reactor, self.host, self.port)
        return TCP4ClientEndpoint(self._reactor, self.host, self.port)

    def probe(self) -> Deferred:
        start = self._clock.seconds()
        protocol = _HandshakeOnly()
        d = connectProtocol(self._endpoint(), protocol)
        d.addCallback(lambda _: ProbeResult(True, _elapsedMilliseconds(self._clock, start), "connected"))
        d.addTimeout(self.timeout, self._clock, onTimeoutCancel=_timedOut)

        def close(result: object) -> object:
            if protocol.transport is None or protocol.gone:
                return result
            protocol.transport.loseConnection()
            return protocol.whenLost().addBoth(lambda _: result)

        d.addBoth(close)
        d.addErrback(_settle(self.timeout))
        return d


# ---------------------------------------------------------------------------
# HTTP and HTTPS


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedTLS:
    """
    TLS client connections that send SNI but do not verify the server's
    certificate: what a NetScaler secure monitor does.
    """

    def __init__(self, hostname: bytes) -> None:
        # Imported here: a core whose topology uses no TLS never loads
        # pyOpenSSL (see gslb_twisted.core.process).
        from twisted.internet.ssl import CertificateOptions

        self._hostname = hostname
        self._context = CertificateOptions().getContext()  # verify=False

    def clientConnectionForTLS(self, tlsProtocol: Any) -> "SSL.Connection":
        from OpenSSL import SSL

        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        name = self._hostname.decode("ascii", "replace")
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            connection.set_tlsext_host_name(self._hostname)
        return connection


@implementer(IPolicyForHTTPS)
class UnverifiedTLSPolicy:
    """An L{IPolicyForHTTPS} that skips certificate verification."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> _UnverifiedTLS:
        return _UnverifiedTLS(hostname)


def makeHTTPClient(reactor: Any, verifyTLS: bool = False) -> Any:
    """
    A treq C{HTTPClient} for monitors: one connection per probe (a
    non-persistent pool, so the agent closes it once the response is read)
    and, unless C{verifyTLS}, no verification of HTTPS certificates.
    """
    from treq.client import HTTPClient
    from twisted.web.client import BrowserLikePolicyForHTTPS

    policy = BrowserLikePolicyForHTTPS() if verifyTLS else UnverifiedTLSPolicy()
    pool = HTTPConnectionPool(reactor, persistent=False)
    return HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))


@implementer(IProbe)
class HTTPProbe:
    """
    GET C{url}; UP when the status is in C{expectStatus} and, when
    C{expectContent} is given, the body contains it (UTF-8).

    @param client: a treq-like client (treq's C{HTTPClient}, or
        C{treq.testing.StubTreq} in tests): C{get(url)} fires with a
        response having C{code} and C{content()}.  The body is always read,
        so that the agent can release the connection.
    """

    def __init__(
        self,
        client: Any,
        url: str,
        timeout: float,
        clock: IReactorTime,
        expectStatus: Sequence[int] = (200,),
        expectContent: Optional[str] = None,
    ) -> None:
        self._client = client
        self.url = url
        self.timeout = timeout
        self._clock = clock
        self.expectStatus = tuple(expectStatus)
        self.expectContent = expectContent

    def probe(self) -> Deferred:
        start = self._clock.seconds()
        d = self._client.get(self.url)

        def gotResponse(response: Any) -> Deferred:
            return response.content().addCallback(lambda body: self._judge(response.code, body, start))

        d.addCallback(gotResponse)
        d.addTimeout(self.timeout, self._clock, onTimeoutCancel=_timedOut)
        d.addErrback(_settle(self.timeout))
        return d

    def _judge(self, code: int, body: bytes, start: float) -> ProbeResult:
        elapsed = _elapsedMilliseconds(self._clock, start)
        if code not in self.expectStatus:
            expected = ", ".join(str(c) for c in self.expectStatus)
            return ProbeResult(False, elapsed, f"HTTP {code}, expected {expected}")
        if self.expectContent is not None and self.expectContent.encode("utf-8") not in body:
            return ProbeResult(False, elapsed, f"HTTP {code} without the expected content")
        return ProbeResult(True, elapsed, f"HTTP {code}")


# ---------------------------------------------------------------------------
# Datagram probes (DNS, UDP)


class _OneShotDatagram(DatagramProtocol):
    """
    Sends one datagram from a connected UDP port and reports, through
    C{outcome}, the first reply that C{accept} accepts, or the ICMP refusal.
    """

    def __init__(self, payload: bytes, accept: Callable[[bytes], Optional[str]]) -> None:
        self._payload = payload
        self._accept = accept
        self._port: Any = None
        self.outcome: Deferred = Deferred()

    def startProtocol(self) -> None:
        self._port = self.transport

    def send(self) -> None:
        """Send the datagram; the port must be connected to the target."""
        self.transport.write(self._payload)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if self.outcome.called:
            return
        verdict = self._accept(data)
        if verdict is not None:
            self.outcome.callback(verdict)

    def connectionRefused(self) -> None:
        if not self.outcome.called:
            self.outcome.errback(error.ConnectionRefusedError("ICMP port unreachable"))

    def stopProtocol(self) -> None:
        """
        The port closed before any outcome: the poll-like reactors (epoll,
        poll) see a pending socket error as a bare error event and close the
        port instead of calling L{connectionRefused} (Twisted issues #5377,
        #6467).  The socket is still open here: read its error.
        """
        if self.outcome.called:
            return
        code = 0
        handle = self._port.getHandle() if self._port is not None else None
        if handle is not None:
            try:
                code = handle.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                code = 0
        if code == errno.ECONNREFUSED:
            self.outcome.errback(error.ConnectionRefusedError("ICMP port unreachable"))
        else:
            reason = os.strerror(code) if code else "closed"
            self.outcome.errback(error.ConnectionLost(f"UDP socket {reason}"))


class _DatagramProbe:
    """The shared mechanics of L{DNSProbe} and L{UDPProbe}."""

    def __init__(self, reactor: Any, host: str, port: int, timeout: float, clock: Optional[IReactorTime]) -> None:
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    def _exchange(self, payload: bytes, accept: Callable[[bytes], Optional[str]]) -> Deferred:
        """
        Send C{payload}; fire with the accepted reply's description, or fail
        (refused, timeout, cancellation) -- always after the port is closed.
        """
        protocol = _OneShotDatagram(payload, accept)
        interface = "::" if _isIPv6(self.host) else ""
        try:
            port = self._reactor.listenUDP(0, protocol, interface=interface)
        except error.CannotListenError:
            return fail(Failure())
        try:
            # connect() makes the kernel report ICMP errors to this socket.
            port.connect(self.host, self.port)
        except (ValueError, OSError, error.CannotListenError):
            failure = Failure()
            stopped = port.stopListening()
            return (stopped if stopped is not None else succeed(None)).addCallback(lambda _: failure)
        d = protocol.outcome
        protocol.send()
        d.addTimeout(self.timeout, self._clock, onTimeoutCancel=_timedOut)

        def close(result: object) -> object:
            stopped = port.stopListening()
            if stopped is None:
                return result
            return stopped.addBoth(lambda _: result)

        d.addBoth(close)
        return d


@implementer(IProbe)
class DNSProbe(_DatagramProbe):
    """
    UP when a well-formed DNS response carrying the query's id (and
    question) arrives within C{timeout}, whatever its RCODE; DOWN on ICMP
    port unreachable or silence.  Garbage and mismatched replies are ignored.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        name: str = ".",
        timeout: float = 2.0,
        queryType: int = dns.A,
        clock: Optional[IReactorTime] = None,
        randomID: Callable[[], int] = lambda: random.randrange(1, 65536),
    ) -> None:
        super().__init__(reactor, host, port, timeout, clock)
        self.name = name
        self.queryType = queryType
        self._randomID = randomID

    def probe(self) -> Deferred:
        start = self._clock.seconds()
        query = dns.Message(id=self._randomID(), recDes=False)
        question = dns.Query(self.name.rstrip(".") or b"", self.queryType, dns.IN)
        query.queries = [question]

        def accept(data: bytes) -> Optional[str]:
            reply = dns.Message()
            try:
                reply.fromStr(data)
            except Exception:
                return None  # not DNS: keep waiting
            if not reply.answer or reply.id != query.id:
                return None
            if reply.queries and not _sameQuestion(reply.queries[0], question):
                return None
            return f"DNS response, rcode {_rcodeName(reply.rCode)}"

        d = self._exchange(query.toStr(), accept)
        d.addCallback(lambda reason: ProbeResult(True, _elapsedMilliseconds(self._clock, start), reason))
        d.addErrback(_settle(self.timeout))
        return d


def _sameQuestion(a: dns.Query, b: dns.Query) -> bool:
    # Names compare case-insensitively: resolvers may randomise case (0x20).
    return (a.name.name.lower(), a.type, a.cls) == (b.name.name.lower(), b.type, b.cls)


def _rcodeName(rcode: int) -> str:
    return {
        dns.OK: "NOERROR",
        dns.EFORMAT: "FORMERR",
        dns.ESERVER: "SERVFAIL",
        dns.ENAME: "NXDOMAIN",
        dns.ENOTIMP: "NOTIMP",
        dns.EREFUSED: "REFUSED",
    }.get(rcode, str(rcode))


@implementer(IProbe)
class UDPProbe(_DatagramProbe):
    """
    NetScaler UDP-ECV semantics without a receive string: DOWN only on an
    ICMP port unreachable; a reply is UP, and so is silence until
    C{timeout} (reason says which).
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        timeout: float,
        payload: bytes = b"",
        clock: Optional[IReactorTime] = None,
    ) -> None:
        super().__init__(reactor, host, port, timeout, clock)
        self.payload = payload

    def probe(self) -> Deferred:
        start = self._clock.seconds()
        d = self._exchange(self.payload, lambda data: "UDP reply")

        def silence(failure: Failure) -> object:
            if failure.check(TimeoutError):
                return ProbeResult(True, None, f"no ICMP error within {self.timeout:g} s")
            return failure

        d.addCallback(lambda reason: ProbeResult(True, _elapsedMilliseconds(self._clock, start), reason))
        d.addErrback(silence)
        d.addErrback(_settle(self.timeout))
        return d


# ---------------------------------------------------------------------------
# Assembly


def probeFor(monitor: Monitor, service: Service, reactor: Any, httpClient: Any = None) -> IProbe:
    """
    The probe a service's C{monitor} (SPEC section 3) describes.  HTTP(S)
    monitors target their URL; the others the service's C{ip} and C{port}.

    @param httpClient: a treq-like client for http/https monitors; by
        default one from L{makeHTTPClient}.
    @raise ValueError: for an unknown type, or an http(s) URL whose scheme
        does not match the monitor's type.
    """
    kind = monitor.type
    if kind in ("http", "https"):
        if monitor.url is None or urlsplit(monitor.url).scheme != kind:
            raise ValueError(f"a monitor of type {kind!r} needs a {kind}:// URL, found {monitor.url!r}")
        client = httpClient if httpClient is not None else makeHTTPClient(reactor)
        return HTTPProbe(client, monitor.url, monitor.timeout, reactor, monitor.expect_status, monitor.expect_content)
    if kind == "tcp":
        return TCPProbe(reactor, service.ip, service.port, monitor.timeout)
    if kind == "dns":
        return DNSProbe(reactor, service.ip, service.port, name=".", timeout=monitor.timeout)
    if kind == "udp":
        return UDPProbe(reactor, service.ip, service.port, monitor.timeout)
    raise ValueError(f"unknown monitor type {kind!r}")
