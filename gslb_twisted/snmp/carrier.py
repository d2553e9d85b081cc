"""
pysnmp's transport layer on a Twisted reactor.

pysnmp 7 ships carriers for asyncio only, but its SNMP engine does not care
what moves its datagrams: a I{transport dispatcher} sends them, hands
received ones to the engine, and ticks the engine's timers (request
timeouts and retries are counted in ticks).  This dispatcher does those
three things with a Twisted UDP port and a L{LoopingCall}, so SNMP runs in
the core's own reactor thread: no asyncio loop, no thread, nothing that can
block the reactor (encoding a request or decoding a response is a few tens
of microseconds of CPU, done between DNS queries like any other event).
"""

from __future__ import annotations

import socket

from pysnmp.carrier.asyncio.dgram.udp import DOMAIN_NAME as UDP_DOMAIN
from pysnmp.carrier.asyncio.dgram.udp import UdpTransportAddress
from pysnmp.carrier.asyncio.dgram.udp6 import DOMAIN_NAME as UDP6_DOMAIN
from pysnmp.carrier.asyncio.dgram.udp6 import Udp6TransportAddress
from pysnmp.carrier.base import AbstractTransport, AbstractTransportDispatcher
from twisted.internet import task
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

__all__ = ["TwistedDispatcher", "TwistedUDPTransport", "TwistedUDP6Transport", "UDP_DOMAIN", "UDP6_DOMAIN"]

log = Logger()

# Bytes of SNMP replies read per reactor turn (a few replies).
MAX_READ_PER_TURN = 4096


class TwistedDispatcher(AbstractTransportDispatcher):
    """
    A pysnmp transport dispatcher driven by C{reactor}: timer ticks from a
    L{LoopingCall} at the dispatcher's timer resolution, running only while
    a transport is registered.
    """

    def __init__(self, reactor) -> None:
        super().__init__()
        self.reactor = reactor
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = reactor
        self._transports = 0

    def _tick(self) -> None:
        try:
            self.handle_timer_tick(self.reactor.seconds())
        except Exception:
            # A timer callback of the engine failed: log it, keep ticking
            # (the next tick retries or expires the requests it holds).
            log.failure("SNMP engine timer tick")

    def register_transport(self, tDomain, transport) -> None:
        super().register_transport(tDomain, transport)
        self._transports += 1
        if not self._ticker.running:
            self._ticker.start(self.get_timer_resolution(), now=False)

    def unregister_transport(self, tDomain) -> None:
        super().unregister_transport(tDomain)
        self._transports -= 1
        if self._transports == 0 and self._ticker.running:
            self._ticker.stop()

    def run_dispatcher(self, timeout: float = 0.0) -> None:
        # The reactor runs; there is no loop of ours to run.
        pass

    def close_dispatcher(self) -> None:
        super().close_dispatcher()
        self._transports = 0
        if self._ticker.running:
            self._ticker.stop()


class _Datagrams(DatagramProtocol):
    noisy = False  # one port per core, for its life: no "Starting protocol" lines

    def __init__(self, owner: "TwistedUDPTransport") -> None:
        self.owner = owner

    def datagramReceived(self, datagram: bytes, address) -> None:
        self.owner.received(datagram, address[:2])


class TwistedUDPTransport(AbstractTransport):
    """One UDP port of the reactor, as a pysnmp client transport."""

    PROTO_TRANSPORT_DISPATCHER = TwistedDispatcher
    ADDRESS_TYPE = UdpTransportAddress
    DOMAIN = UDP_DOMAIN
    INTERFACE = "0.0.0.0"

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.port = None
        self.garbage = 0

    def open_client_mode(self, iface=None):
        host, portNumber = iface if iface is not None else (self.INTERFACE, 0)
        self.port = self.reactor.listenUDP(portNumber, _Datagrams(self), interface=host)
        # A reply costs the engine about a millisecond to decode: read a few
        # per reactor turn, not Twisted's 256 KiB, or a burst of replies
        # (every agent answering within a millisecond) would hold DNS
        # queries up for tens of milliseconds.
        self.port.maxThroughput = MAX_READ_PER_TURN
        # Replies of 200 agents can arrive in one burst: room for them.
        handle = getattr(self.port, "socket", None)
        if handle is not None:
            try:
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            except OSError:
                pass
        return self

    def local(self):
        return self.port.getHost() if self.port is not None else None

    def send_message(self, outgoingMessage, transportAddress) -> None:
        if self.port is None:
            return
        try:
            self.port.write(outgoingMessage, (transportAddress[0], transportAddress[1]))
        except OSError as e:
            # ECONNREFUSED from an earlier ICMP, ENETUNREACH...: the request
            # times out as if lost, which is what it is.
            log.debug("SNMP send to {address}: {error}", address=transportAddress, error=e)

    def received(self, datagram: bytes, address) -> None:
        callback = self._callback_function
        if callback is None:
            return
        host = self.port.getHost()
        try:
            callback(self, self.ADDRESS_TYPE(address).set_local_address((host.host, host.port)), datagram)
        except Exception as e:
            # A datagram the engine cannot take (not SNMP, a reply to no
            # request): dropped, counted, logged once; never an error in
            # the reactor.  (pysnmp drops most garbage quietly itself.)
            self.garbage += 1
            if self.garbage == 1:
                log.warn(
                    "SNMP: dropped a datagram from {address} the engine could not process ({error}); "
                    "further ones are only counted",
                    address=address, error=f"{type(e).__name__}: {e}",
                )

    def close_transport(self) -> None:
        if self.port is not None:
            self.port.stopListening()
            self.port = None
        super().close_transport()


class TwistedUDP6Transport(TwistedUDPTransport):
    ADDRESS_TYPE = Udp6TransportAddress
    DOMAIN = UDP6_DOMAIN
    INTERFACE = "::"
