"""
The service tree of one core process, and its AMP link to the supervisor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from gslb_twisted.config import TCPLimits
from gslb_twisted.core.gslb import mepServerTLS
from gslb_twisted.dns.authority import Authority
from gslb_twisted.dns.protocol import DNSDatagramProtocol, DNSStreamFactory
from gslb_twisted.endpoints import DNSEndpoint, bindDNSSocket
from gslb_twisted.logs import CoreLogForwarder
from gslb_twisted.mastership import siteInitiates
from gslb_twisted.protocol.commands import (
    ApplyRuntime,
    AssignSite,
    CoreInspect,
    CoreReady,
    CoreResolve,
    CoreStatus,
    Deliver,
    Hello,
    LogEvent,
    MasterChanged,
    Publish,
)
from gslb_twisted.protocol.access import PeerAllowList
from gslb_twisted.protocol.bounds import MAX_PENDING_CALLS, BoundedCallsAMP

# Largest DNS message a UDP read accepts (EDNS allows up to 65,535).
MAX_UDP_READ = 65535


@dataclass(frozen=True)
class DNSSocket:
    """
    How a core gets one DNS socket: a descriptor it inherited (C{fd}), or an
    endpoint it binds itself with SO_REUSEPORT (C{endpoint}).
    """

    transport: str
    family: int
    fd: Optional[int] = None
    endpoint: Optional[DNSEndpoint] = None

    @classmethod
    def inherited(cls, spec: str) -> "DNSSocket":
        """C{udp:5:2}: transport, descriptor, address family number."""
        transport, fd, family = spec.split(":")
        if transport not in ("udp", "tcp"):
            raise ValueError(spec)
        return cls(transport, int(family), fd=int(fd))

    @classmethod
    def reusePort(cls, spec: str) -> "DNSSocket":
        """C{udp:5300:127.0.0.1} (the address may hold colons)."""
        transport, port, interface = spec.split(":", 2)
        endpoint = DNSEndpoint(transport, int(port), interface)
        if transport not in ("udp", "tcp"):
            raise ValueError(spec)
        return cls(transport, endpoint.family, endpoint=endpoint)

    def descriptor(self) -> tuple[int, Callable[[], None]]:
        """
        A descriptor to adopt, and how to release our copy of it once the
        reactor has adopted (duplicated) it.
        """
        if self.fd is not None:
            return self.fd, lambda: os.close(self.fd)
        sock = bindDNSSocket(self.endpoint, reusePort=True)
        return sock.fileno(), sock.close


class CoreService(MultiService):
    """
    One core: joins the others (the masters and their snapshots) through the
    supervisor, then adopts its DNS sockets and answers from its
    L{Authority}; masters the sites it is given or that dial it.

    @ivar gslb: the core's GSLB state (None for a DNS-only core in tests).
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        core: int,
        authority: Authority,
        sockets: list[DNSSocket],
        mepSocket: Optional[DNSSocket] = None,
        gslbFactory: Optional[Callable[["CoreService"], object]] = None,
        tcpLimits: TCPLimits = TCPLimits(),
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.core = core
        self.authority = authority
        self.tcpLimits = tcpLimits
        self.dnsStreamFactory: Optional[DNSStreamFactory] = None
        self.sockets = sockets
        self.mepSocket = mepSocket
        self.ports: list = []
        self.link: Optional["SupervisorLink"] = None
        self.unhandledDeliveries = 0
        self.gslb = gslbFactory(self) if gslbFactory is not None else None
        self.ready: Optional[defer.Deferred] = None

    def startService(self) -> None:
        super().startService()
        if self.gslb is None or self.link is None:
            self._serve()
            return
        # Snapshots of every mastered site first: a core answers from the
        # same metrics as the others, or not at all.
        self.ready = self.link.callRemote(Hello, core=self.core)
        self.ready.addCallback(lambda response: self.gslb.sync(response["masters"]))
        self.ready.addCallback(lambda _: self._serve())

    def _adopt(self, spec: DNSSocket, udp, tcp):
        fd, release = spec.descriptor()
        try:
            if spec.transport == "udp":
                # One protocol per port: a datagram protocol has one
                # transport (and replies through its socket).
                return self.reactor.adoptDatagramPort(fd, spec.family, udp(), maxPacketSize=MAX_UDP_READ)
            return self.reactor.adoptStreamPort(fd, spec.family, tcp)
        finally:
            release()

    def _serve(self) -> None:
        if not self.running:
            return
        def udp():
            return DNSDatagramProtocol(self.authority)

        limits = self.tcpLimits
        tcp = self.dnsStreamFactory = DNSStreamFactory(
            self.authority, self.reactor, idleTimeout=limits.idle_timeout,
            maxConnections=limits.max_connections, maxPerClient=limits.max_per_client,
        )
        if self.gslb is not None:
            self.gslb.start()
        for spec in self.sockets:
            self.ports.append(self._adopt(spec, udp, tcp))
        self.log.info(
            "core {core} serving DNS on {addresses}",
            core=self.core,
            addresses=", ".join(f"{spec.transport}:{_hostPort(p)}" for spec, p in zip(self.sockets, self.ports)),
        )
        if self.mepSocket is not None and self.gslb is not None:
            topology = self.gslb.topology
            factory = Factory.forProtocol(lambda: self.gslb.newSession(None, "inbound"))
            factory.noisy = False
            # Only the sites that dial us (MEP's lower-IP rule) may connect.
            dialling = [
                site.ip for site in topology.sites
                if site.protocol == "mep" and site.metric_exchange and siteInitiates(topology, site)
            ]
            listening = PeerAllowList(mepServerTLS(topology, factory), dialling)
            self.ports.append(self._adopt(self.mepSocket, None, listening))
        if self.link is not None:
            self.link.callRemote(CoreReady, core=self.core, pid=os.getpid()).addErrback(
                lambda f: self.log.failure("cannot tell the supervisor core {core} is ready", f, core=self.core)
            )

    def stopService(self) -> defer.Deferred:
        super().stopService()
        stopping = [defer.maybeDeferred(port.stopListening) for port in self.ports]
        if self.gslb is not None:
            stopping.append(self.gslb.stop())
        self.ports = []
        return defer.gatherResults(stopping).addCallback(lambda _: None)

    # Messages between cores

    def publish(self, topic: str, body: bytes, target: Optional[int] = None) -> None:
        if self.link is None:
            return
        if target is None:
            self.link.callRemote(Publish, topic=topic, body=body)
        else:
            self.link.callRemote(Publish, topic=topic, body=body, target=target)

    def delivered(self, sender: int, topic: str, body: bytes) -> None:
        if self.gslb is None:
            self.unhandledDeliveries += 1
            return
        try:
            self.gslb.delivered(sender, topic, body)
        except Exception:
            self.log.failure("handling {topic!r} from core {sender}", topic=topic, sender=sender)


def _hostPort(port) -> str:
    address = port.getHost()
    return f"{address.host}:{address.port}"


class SupervisorLink(BoundedCallsAMP):
    """
    The core's end of its AMP pipes to the supervisor.  When the
    supervisor goes away (even killed), the pipe closes and the core stops:
    no core outlives its appliance.
    """

    log = Logger()

    def __init__(
        self, core: CoreService, forwarder: CoreLogForwarder, onLost: Callable[[], None], sites: int = 0
    ) -> None:
        super().__init__()
        self.core = core
        self.forwarder = forwarder
        self.onLost = onLost
        # A core legitimately awaits one claim per site at once (a thousand
        # sites connecting at start): the quota grows with the topology.
        self.maxPendingCalls = MAX_PENDING_CALLS + 2 * sites
        core.link = self

    def connectionMade(self) -> None:
        super().connectionMade()
        self.forwarder.attach(lambda text: self.callRemote(LogEvent, event=text))

    def connectionLost(self, reason) -> None:
        self.forwarder.detach()
        self.core.link = None
        super().connectionLost(reason)
        self.onLost()

    @CoreStatus.responder
    def status(self) -> dict:
        return {"queries": self.core.authority.queries}

    @Deliver.responder
    def deliver(self, sender: int, topic: str, body: bytes) -> dict:
        self.core.delivered(sender, topic, body)
        return {}

    @AssignSite.responder
    def assignSite(self, site: str, epoch: int) -> dict:
        if self.core.gslb is not None:
            self.core.gslb.assigned(site, epoch)
        return {}

    @MasterChanged.responder
    def masterChanged(self, site: str, epoch: int, core: Optional[int] = None) -> dict:
        if self.core.gslb is not None:
            self.core.gslb.masterChanged(site, core, epoch)
        return {}

    @CoreInspect.responder
    def inspect(self, what: str, site: Optional[str] = None) -> dict:
        if self.core.gslb is None:
            raise KeyError(what)
        return {"result": self.core.gslb.inspect(what, site)}

    @CoreResolve.responder
    def resolve(self, name: str, qtype: str, client: Optional[str] = None) -> dict:
        if self.core.gslb is None:
            raise KeyError(name)
        return {"result": self.core.gslb.explain(name, qtype, client)}

    @ApplyRuntime.responder
    def applyRuntime(self, state: dict) -> dict:
        # It may come before the core serves (a core joining gets it before
        # the answer to its Hello): its first answer already follows it.
        if self.core.gslb is not None:
            self.core.gslb.applyRuntime(state)
        return {}

