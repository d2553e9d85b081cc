"""
The supervisor: one process that spawns a core process per CPU core, talks
AMP to each over a pair of dedicated pipes, relays messages between cores
(the hub), respawns dead cores with backoff, and serves the control endpoint.

Pipes, as seen by the child (after ampoule):

    fd 0: /dev/null-like (the supervisor never writes it)
    fd 1, 2: stdout/stderr, read by the supervisor and logged
    fd 3: AMP from the supervisor   fd 4: AMP to the supervisor
    fd 5...: inherited DNS sockets, when the supervisor shares its own
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IProcessTransport, IReactorProcess, ITransport
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from gslb_twisted.config import LB_METHODS, ConfigError, Topology, loadTopology
from gslb_twisted.endpoints import DNSEndpoint, bindDNSSocket
from gslb_twisted.logs import ConsoleSubscribers, consoleEvent, describeAddress, publishCoreEvent, siteTransitionEvent
from gslb_twisted.mastership import ClaimTable, pickCore
from gslb_twisted.protocol.commands import (
    ApplyRuntime,
    AssignSite,
    BadValue,
    ClaimSite,
    CoreInspect,
    CoreReady,
    CoreResolve,
    CoreStatus,
    CoreUnavailable,
    Deliver,
    DisableService,
    EnableService,
    Hello,
    LogEvent,
    MasterChanged,
    NoSuchEntity,
    Publish,
    ReleaseSite,
    Resolve,
    SetVServer,
    ShowConsistency,
    ShowCores,
    ShowMEP,
    ShowMetrics,
    ShowServices,
    ShowSites,
    ShowVServers,
    StatCores,
    StatDNS,
    StatServices,
    StatVServers,
    Subscribe,
    Unsubscribe,
    normaliseAddress,
    normaliseQType,
)
from gslb_twisted.protocol.descriptors import CHILD_AMP_IN, CHILD_AMP_OUT, CHILD_TOPOLOGY, FIRST_SOCKET_FD
from gslb_twisted.protocol.access import GuardedControl
from gslb_twisted.protocol.bounds import STUCK_AFTER, BoundedCallsAMP, TooManyPendingCalls, WriteBacklog
from gslb_twisted.respawn import RespawnPolicy
from gslb_twisted.statistics import DNS, rate, statCoreRows, statDNS, statServiceRows, statVServerRows


# Seconds after start-up after which sites that dial in may go to any core,
# even if some site still has no master.
BOOT_DEADLINE = 10.0

# How long `show cores` waits for a core's own figures.
STATUS_TIMEOUT = 1.0

# The sender of what the supervisor itself delivers to the cores on the hub.
SUPERVISOR_SENDER = -1

# The topic announcing which cores serve (the lowest leads the consolidation
# rounds: see gslb_twisted.core.stats).
TOPIC_STATS_CONTROL = "stats.control"

# How long a console command waits for a core to explain an answer, or for
# every core to apply a runtime change.
RESOLVE_TIMEOUT = 5.0
APPLY_TIMEOUT = 5.0


# --- DNS sockets ------------------------------------------------------------


@dataclass
class SharedSockets:
    """
    Listening sockets bound once by the supervisor and inherited by every
    core: the DNS sockets (unless cores bind their own with SO_REUSEPORT)
    and the MEP listener for sites that dial the appliance.  The supervisor
    never reads them: each core adopts its inherited copy.
    """

    endpoints: Sequence[DNSEndpoint]
    sockets: list = field(default_factory=list)
    mep: Optional[socket.socket] = None

    @classmethod
    def bind(cls, endpoints: Sequence[DNSEndpoint], mep: Optional[DNSEndpoint] = None) -> "SharedSockets":
        shared = cls(endpoints)
        try:
            for endpoint in endpoints:
                shared.sockets.append(bindDNSSocket(endpoint))
            if mep is not None:
                shared.mep = bindDNSSocket(mep)
        except BaseException:
            shared.close()
            raise
        return shared

    def _all(self) -> list:
        return self.sockets + ([self.mep] if self.mep is not None else [])

    def childFDs(self) -> dict[int, int]:
        return {FIRST_SOCKET_FD + i: s.fileno() for i, s in enumerate(self._all())}

    def coreArguments(self) -> list[str]:
        arguments = []
        for i, (endpoint, sock) in enumerate(zip(self.endpoints, self.sockets)):
            arguments += ["--inherit", f"{endpoint.transport}:{FIRST_SOCKET_FD + i}:{int(sock.family)}"]
        if self.mep is not None:
            arguments += ["--inherit-mep", f"tcp:{FIRST_SOCKET_FD + len(self.sockets)}:{int(self.mep.family)}"]
        return arguments

    def close(self) -> None:
        for sock in self._all():
            sock.close()
        self.sockets = []
        self.mep = None


def resolvePorts(endpoints: Sequence[DNSEndpoint]) -> list[DNSEndpoint]:
    """
    For SO_REUSEPORT sharing every core binds the same concrete port: pick
    one for any endpoint that asks for port 0.
    """
    resolved = []
    for endpoint in endpoints:
        if endpoint.port == 0:
            probe = bindDNSSocket(endpoint)
            port = probe.getsockname()[1]
            probe.close()
            endpoint = DNSEndpoint(endpoint.transport, port, endpoint.interface, endpoint.backlog)
        resolved.append(endpoint)
    return resolved


# --- one core process ---------------------------------------------------------


@implementer(ITransport)
class _ChildPipeTransport:
    """
    The AMP connection's transport: writes go to the child's fd 3.
    """

    def __init__(self, process: IProcessTransport) -> None:
        self._process = process
        self.disconnecting = False
        self.closed = False

    def write(self, data: bytes) -> None:
        # A core dying closes its pipes before its end is reported: what is
        # written meanwhile has nobody to read it.
        if not self.closed:
            self._process.writeToChild(CHILD_AMP_IN, data)

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self._process.closeChildFD(CHILD_AMP_IN)

    def getPeer(self):
        return ("core-pipe", getattr(self._process, "pid", None))

    def getHost(self):
        return ("supervisor-pipe", os.getpid())


class CoreConnection(BoundedCallsAMP):
    """
    The supervisor's AMP conversation with one core.
    """

    log = Logger()

    def __init__(self, slot: "CoreSlot", supervisor: "CoreMonitor") -> None:
        super().__init__()
        self.slot = slot
        self.supervisor = supervisor

    def describePeer(self) -> str:
        return f"core {self.slot.core}"

    def garbageReceived(self) -> None:
        # A core that garbles its pipe cannot be talked to any more: end
        # it, and let the monitor respawn it with backoff.
        self.supervisor.misbehaved(self.slot)

    @CoreReady.responder
    def coreReady(self, core: int, pid: int) -> dict:
        self.supervisor.coreReady(self.slot, pid)
        return {}

    @Publish.responder
    def publish(self, topic: str, body: bytes, target: Optional[int] = None) -> dict:
        self.supervisor.hub.publish(self.slot.core, topic, body, target)
        return {}

    @Hello.responder
    def hello(self, core: int):
        """
        Who masters what; and first, if the console changed anything, the
        runtime state, applied before the core even learns the masters: a
        respawned core answers like the others from its first answer.
        """
        def answer(_=None) -> dict:
            return {"masters": self.supervisor.hub.masters()}

        state = self.supervisor.runtime
        if isEmptyRuntime(state):
            return answer()
        d = _detached(self.callRemote(ApplyRuntime, state=state))
        d.addTimeout(APPLY_TIMEOUT, self.supervisor.reactor)
        # A core that cannot apply it still joins: better than one that
        # never serves (the failure is logged for whoever looks).
        d.addErrback(
            lambda f: self.log.failure("core {core} did not apply the runtime state", f, core=self.slot.core)
        )
        return d.addCallback(answer)

    @ClaimSite.responder
    def claimSite(self, site: str, takeover: bool) -> dict:
        claim = self.supervisor.hub.claim(site, self.slot.core, takeover)
        if claim is None:
            return {"granted": False, "epoch": 0}
        return {"granted": True, "epoch": claim.epoch}

    @ReleaseSite.responder
    def releaseSite(self, site: str, epoch: int) -> dict:
        self.supervisor.hub.release(site, self.slot.core, epoch)
        return {}

    @LogEvent.responder
    def logEvent(self, event: str) -> dict:
        try:
            published = publishCoreEvent(event, self.slot.core)
        except ValueError:
            self.log.warn("core {core} sent an unreadable log event", core=self.slot.core)
            return {}
        if published is not None:
            self.supervisor.coreLogged(published)
        return {}


class CoreProcessProtocol(ProcessProtocol):
    """
    Joins a core process's pipes to its L{CoreConnection}, logs what the
    core writes to stdout/stderr, and reports its end.
    """

    log = Logger()

    def __init__(self, slot: "CoreSlot", monitor: "CoreMonitor") -> None:
        self.slot = slot
        self.monitor = monitor
        self.connection = CoreConnection(slot, monitor)
        self.ended: defer.Deferred = defer.Deferred()
        self._partial = {1: b"", 2: b""}

    def connectionMade(self) -> None:
        self.pipe = _ChildPipeTransport(self.transport)
        self.connection.makeConnection(self.pipe)
        # The pipe to the core says when the core stops reading (its buffer
        # fills): what the hub relays to it then piles up here.
        writer = getattr(self.transport, "pipes", {}).get(CHILD_AMP_IN)
        if writer is not None and hasattr(writer, "registerProducer"):
            writer.registerProducer(WriteBacklog(self.monitor.reactor, lambda: self.monitor.stuck(self.slot)), True)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD in (CHILD_AMP_IN, CHILD_AMP_OUT):
            self.pipe.closed = True

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == CHILD_AMP_OUT:
            self.connection.dataReceived(data)
            return
        # Stray output (a crash before logging was set up, a print):
        # logged line by line, never mixed into the AMP stream.
        lines = (self._partial.get(childFD, b"") + data).split(b"\n")
        self._partial[childFD] = lines.pop()[-4096:]
        for line in lines:
            self._logOutput(childFD, line)

    def _logOutput(self, childFD: int, line: bytes) -> None:
        if line.strip():
            self.log.warn(
                "core {core} {stream}: {line}",
                core=self.slot.core,
                stream="stderr" if childFD == 2 else "stdout",
                line=line.decode("utf-8", "replace"),
            )

    def processEnded(self, reason: Failure) -> None:
        for fd, rest in self._partial.items():
            self._logOutput(fd, rest)
        self.connection.connectionLost(reason)
        self.monitor.coreEnded(self.slot, reason)
        self.ended.callback(None)


# --- the hub ------------------------------------------------------------------


class Hub:
    """
    Relays what one core publishes to the others, and arbitrates which core
    masters each site.

    Each core's messages arrive in order on its own pipe and are written, in
    that order, to every other core's pipe, so order per sender holds end to
    end.  Claims are granted one per site at a time with a rising epoch
    (L{ClaimTable}); every change is announced to every core, in order.

    @param assignable: the sites the hub gives a master to itself (those the
        appliance dials, and those without MEP), spreading them over the
        cores; the others are claimed by the core that accepts their
        connection.
    """

    log = Logger()

    def __init__(
        self,
        assignable: Sequence[str] = (),
        sites: Sequence[str] = (),
        coreCount: int = 1,
        serving: Callable[[], Sequence[int]] = tuple,
    ) -> None:
        self.connections: dict[int, amp.AMP] = {}
        self.relayed = 0
        self.claims = ClaimTable()
        self.assignable = tuple(assignable)
        self.serving = serving
        # Each site has a preferred core (sites dealt round the cores in
        # name order); while the appliance boots, only that core may take a
        # site that dials in, so that sites spread however the kernel
        # hands out the first connections.
        self.preferred = {site: index % max(coreCount, 1) for index, site in enumerate(sorted(sites))}
        self.booting = True
        # Told of every change of master, after the cores:
        # (site, core or None, epoch, previous core or None, reason or None).
        self.onMasterChange: Callable[[str, Optional[int], int, Optional[int], Optional[str]], None] = (
            lambda site, core, epoch, previous, reason: None
        )

    def join(self, core: int, connection: amp.AMP) -> None:
        self.connections[core] = connection

    def leave(self, core: int, connection: amp.AMP) -> None:
        if self.connections.get(core) is connection:
            del self.connections[core]

    def publish(self, sender: int, topic: str, body: bytes, target: Optional[int] = None) -> None:
        if target is not None:
            destinations = [target] if target in self.connections and target != sender else []
        else:
            destinations = [core for core in sorted(self.connections) if core != sender]
        for core in destinations:
            self.connections[core].callRemote(Deliver, sender=sender, topic=topic, body=body)
            self.relayed += 1

    def tell(self, topic: str, body: bytes, cores: Optional[Sequence[int]] = None) -> None:
        """
        Deliver the supervisor's own message (sender L{SUPERVISOR_SENDER})
        to every linked core, or to C{cores}: on the same pipes as the
        relayed messages, so in order with them.
        """
        for core in sorted(self.connections if cores is None else cores):
            if core in self.connections:
                self.connections[core].callRemote(Deliver, sender=SUPERVISOR_SENDER, topic=topic, body=body)

    # Mastership

    def masters(self) -> list:
        """
        C{[site, core, epoch]} for every site that ever had a master; core
        None for one that has none now (its master died in that epoch).
        """
        rows = []
        for site, epoch in sorted(self.claims.lastEpoch.items()):
            claim = self.claims.holder(site)
            rows.append([site, claim.core, claim.epoch] if claim is not None else [site, None, epoch])
        return rows

    def _announce(
        self, site: str, core: Optional[int], epoch: int, previous: Optional[int] = None, reason: Optional[str] = None
    ) -> None:
        for connection in [self.connections[c] for c in sorted(self.connections)]:
            if core is None:
                connection.callRemote(MasterChanged, site=site, epoch=epoch)
            else:
                connection.callRemote(MasterChanged, site=site, core=core, epoch=epoch)
        try:
            self.onMasterChange(site, core, epoch, previous, reason)
        except Exception:
            self.log.failure("telling the consoles that site {site} changed master", site=site)

    def claim(self, site: str, core: int, takeover: bool = False):
        before = self.claims.holder(site)
        if takeover and (before is None or before.core != core) and not self._mayTakeOver(core, site):
            # A site that dials us lands on whichever core accepts first:
            # refused by a busier core, it reconnects until a core with
            # fewer sites accepts it, so sites spread over the cores.
            return None
        claim = self.claims.claim(site, core, takeover)
        if claim is not None and claim != before:
            if self.booting and all(self.claims.holder(s) is not None for s in self.preferred):
                # Every site has a master: the boot-time spreading is done.
                self.booting = False
            self.log.info(
                "core {core} masters site {site} (epoch {epoch})", core=core, site=site, epoch=claim.epoch
            )
            self._announce(site, core, claim.epoch, None if before is None else before.core)
        return claim

    def _mayTakeOver(self, core: int, site: str) -> bool:
        """
        While the appliance boots, only a site's preferred core may take it
        over (a busier core refuses it and the site dials again), so that
        sites spread however the kernel hands out the first connections.
        Afterwards the first core to accept a site keeps it: after a core
        dies, a quick takeover matters more than balance.
        """
        preferred = self.preferred.get(site)
        if self.booting and preferred is not None and preferred in self.connections:
            return core == preferred
        return True

    def release(self, site: str, core: int, epoch: int) -> None:
        if self.claims.release(site, core, epoch):
            self._announce(site, None, epoch, core, "released")
            if site in self.assignable:
                self.assignUnclaimed()

    def assignUnclaimed(self) -> None:
        """Give every unclaimed assignable site to the least loaded live core."""
        for site in self.assignable:
            if self.claims.holder(site) is not None:
                continue
            core = self.preferred.get(site)
            if not self.booting or core not in self.connections:
                # A core still joining holds no metrics to carry over: it
                # masters a site only when no serving core is left.
                serving = [c for c in self.connections if c in self.serving()] or self.connections
                core = pickCore(serving, self.claims.mastersOf())
            if core is None:
                return
            claim = self.claim(site, core)
            self.connections[core].callRemote(AssignSite, site=site, epoch=claim.epoch)

    def coreDied(self, core: int) -> None:
        """Its sites go to other cores (or, for sites that dial us, to nobody until they do)."""
        for site in self.claims.coreDied(core):
            epoch = self.claims.lastEpoch[site]
            self.log.info("site {site} lost its master, core {core}", site=site, core=core)
            self._announce(site, None, epoch, core, "core ended")
        self.assignUnclaimed()


# --- runtime state -----------------------------------------------------------------
#
# What the console changed since the appliance started: LB methods set on
# vservers, services disabled.  The supervisor holds it and hands it, whole,
# to every core (and to every core that joins later), so that applying it is
# idempotent and two changes racing each other end the same on every core.


def emptyRuntime() -> dict:
    """The runtime state of an appliance nobody changed: the topology as configured."""
    return {"lb_method": {}, "disabled": []}


def isEmptyRuntime(state: dict) -> bool:
    return not state.get("lb_method") and not state.get("disabled")


def checkLBMethod(topology: Topology, vserver: str, method: str) -> str:
    """
    C{method} (any case) as the name the vserver can take, as the topology
    loader demands it.

    @raise NoSuchEntity: no vserver C{vserver}.
    @raise BadValue: no such method, or CUSTOMLOAD for a vserver without
        custom_load metrics.
    """
    config = topology.vserverByName.get(vserver)
    if config is None:
        raise NoSuchEntity(f"no such vserver {vserver}")
    canonical = method.strip().upper()
    if canonical not in LB_METHODS:
        raise BadValue(f"unknown LB method {method!r} (expected one of {', '.join(LB_METHODS)})")
    if canonical == "CUSTOMLOAD" and not config.custom_load:
        raise BadValue(f"vserver {vserver} has no custom_load metrics: CUSTOMLOAD needs them in its topology")
    return canonical


def checkService(topology: Topology, service: str) -> str:
    """@raise NoSuchEntity: the topology has no service C{service}."""
    if service not in topology.serviceByName:
        raise NoSuchEntity(f"no such service {service}")
    return service


def withLBMethod(state: dict, topology: Topology, vserver: str, method: str) -> dict:
    """
    A new state where C{vserver} answers with C{method}; setting the
    configured method back removes the override.
    """
    methods = dict(state.get("lb_method", {}))
    if method == topology.vserverByName[vserver].lb_method:
        methods.pop(vserver, None)
    else:
        methods[vserver] = method
    return {"lb_method": dict(sorted(methods.items())), "disabled": list(state.get("disabled", []))}


def withService(state: dict, service: str, enabled: bool) -> dict:
    """A new state where C{service} is enabled or disabled."""
    disabled = set(state.get("disabled", []))
    if enabled:
        disabled.discard(service)
    else:
        disabled.add(service)
    return {"lb_method": dict(state.get("lb_method", {})), "disabled": sorted(disabled)}


# --- events for the consoles -------------------------------------------------------
#
# What a subscribed console is told (AMP ConsoleEvent): built by these pure
# functions from what the supervisor sees happen, pushed by the monitor's
# ConsoleSubscribers.  Site DOWN/UP events come from the master core's log
# (gslb_twisted.logs.siteTransitionEvent).


def masterEvent(
    now: float, site: str, core: Optional[int], epoch: int,
    previous: Optional[int] = None, reason: Optional[str] = None,
) -> dict:
    """
    A "master" event: C{core} masters C{site} from C{epoch} on (C{None}:
    nobody does; C{previous} released it, or ended: C{reason}).
    """
    if core is not None:
        text = f"core {core} masters site {site} (epoch {epoch})"
        if previous is not None and previous != core:
            text += f", taken over from core {previous}"
    elif reason == "core ended":
        text = f"site {site} has no master: core {previous} ended"
    elif previous is not None:
        text = f"site {site} has no master: core {previous} released it"
    else:
        text = f"site {site} has no master"
    return consoleEvent(now, "master", text, site=site, core=core, epoch=epoch, previous_core=previous, reason=reason)


def coreEvent(
    now: float, core: int, state: str, pid: Optional[int] = None, reason: Optional[str] = None,
    lifetime: Optional[float] = None, restartIn: Optional[float] = None,
) -> dict:
    """
    A "core" event: core C{core} C{state} ("died", "respawned" or
    "serving").
    """
    if state == "died":
        text = f"core {core} died ({reason or 'no reason given'})"
        if lifetime is not None:
            text += f" after {lifetime:.1f}s"
        if restartIn is not None:
            text += f", respawn in {restartIn:.1f}s"
    elif state == "respawned":
        text = f"core {core} respawned" + (f", pid {pid}" if pid is not None else "")
    elif state == "serving":
        text = f"core {core} is serving" + (f" (pid {pid})" if pid is not None else "")
    else:
        text = f"core {core} is {state}"
    return consoleEvent(
        now, "core", text, core=core, state=state, pid=pid, reason=reason,
        lifetime=None if lifetime is None else round(lifetime, 3),
        restart_in=None if restartIn is None else round(restartIn, 3),
    )


def processEndReason(reason: Failure) -> str:
    """How a process ended, in a few words: C{killed by signal 9}, C{exit code 1}."""
    value = reason.value
    if isinstance(value, error.ProcessTerminated):
        if value.signal is not None:
            return f"killed by signal {value.signal}"
        return f"exit code {value.exitCode}"
    if isinstance(value, error.ProcessDone):
        return "exit code 0"
    return reason.getErrorMessage()


def applianceToolbar(cores: Sequence[dict], sites: Optional[Sequence[dict]], view: Optional[dict]) -> dict:
    """
    The console's toolbar: cores up (C{cores}: one row per core slot, with
    its C{state}), sites up and down (C{sites}: rows of C{show gslb site}
    as one core holds them; C{None}: unknown) and queries per second (from
    C{view}, the consolidated counters: between the last two rounds; None
    before two rounds or when unknown).
    """
    state: dict = {
        "cores_up": sum(1 for row in cores if row.get("state") == "up"),
        "cores": len(cores),
        "sites_up": None,
        "sites_down": None,
        "sites": None,
        "qps": None,
    }
    if sites is not None:
        up = sum(1 for row in sites if row.get("state") == "UP")
        state.update(sites_up=up, sites_down=len(sites) - up, sites=len(sites))
    if view is not None:
        state["qps"] = rate(view, *DNS, "queries")
    return state


def applianceToolbarText(state: dict) -> str:
    """The toolbar as one line: C{cores 2/2 up, sites 3 up 0 down, 1520.5 q/s}."""
    sites = "sites ?" if state.get("sites_up") is None else f"sites {state['sites_up']} up {state['sites_down']} down"
    qps = "? q/s" if state.get("qps") is None else f"{state['qps']:g} q/s"
    return f"cores {state.get('cores_up')}/{state.get('cores')} up, {sites}, {qps}"


# --- the cores ------------------------------------------------------------------


@dataclass
class CoreSlot:
    """
    One core id and the process (if any) currently filling it.
    """

    core: int
    delay: float
    state: str = "stopped"  # starting | up | down | stopping | stopped
    pid: Optional[int] = None
    process: Optional[IProcessTransport] = None
    protocol: Optional[CoreProcessProtocol] = None
    startedAt: Optional[float] = None
    restarts: int = 0
    queries: int = 0
    restartCall: object = None
    killCall: object = None


# Builds the argv of one core process.
CoreCommand = Callable[[int], list[str]]


class CoreMonitor(Service):
    """
    Keeps C{count} core processes running: spawns them, respawns them with
    the backoff of L{RespawnPolicy}, stops them with TERM then KILL.

    Modelled on L{twisted.runner.procmon.ProcessMonitor}, which cannot pass
    extra descriptors (C{childFDs}) to its children.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorProcess,
        count: int,
        command: CoreCommand,
        extraFDs: Callable[[], dict[int, int]] = dict,
        policy: RespawnPolicy = RespawnPolicy(),
        env: Optional[dict] = None,
        assignable: Sequence[str] = (),
        sites: Sequence[str] = (),
        topology: Optional[Topology] = None,
    ) -> None:
        self.reactor = reactor
        self.command = command
        self.extraFDs = extraFDs
        self.policy = policy
        self.env = env
        self.slots = [CoreSlot(core, policy.minDelay) for core in range(count)]
        self.hub = Hub(assignable, sites, count, lambda: [slot.core for slot in self.slots if slot.state == "up"])
        # The cores' topology, for checking what the console asks to change
        # (read from the cores' own --config when not given).
        self.topology = topology
        # What the console changed: handed to every core, and to every core
        # that joins.
        self.runtime = emptyRuntime()
        # The serving cores as last announced on stats.control.
        self._announcedServing: Optional[list[int]] = None
        # The consoles subscribed to events.
        self.events = ConsoleSubscribers(reactor, self.toolbarState, applianceToolbarText)
        self.hub.onMasterChange = self._masterChanged

    # Service

    def startService(self) -> None:
        super().startService()
        configPath = getattr(self.command, "configPath", None)
        if self.topology is None and configPath is not None:
            try:
                self.topology = loadTopology(configPath)
            except (ConfigError, OSError):
                self.log.failure("cannot read {path}: runtime changes are refused", path=configPath)
        for slot in self.slots:
            self._spawn(slot)
        # Every core is linked (its pipes exist from the spawn on): spread
        # the sites the hub assigns over all of them at once.
        self.hub.assignUnclaimed()
        # A core that never comes up must not hold its sites back for ever.
        self.reactor.callLater(BOOT_DEADLINE, self._endBoot)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        waiting = []
        for slot in self.slots:
            if slot.restartCall is not None and slot.restartCall.active():
                slot.restartCall.cancel()
            slot.restartCall = None
            if slot.process is not None and slot.protocol is not None:
                waiting.append(slot.protocol.ended)
                self._terminate(slot)
            else:
                slot.state = "stopped"
        # Once, for all: no core serves any more.
        self.announceServing()
        self.events.stop()
        return defer.DeferredList(waiting).addCallback(lambda _: None)

    # Spawning and ending

    def _spawn(self, slot: CoreSlot) -> None:
        slot.restartCall = None
        protocol = CoreProcessProtocol(slot, self)
        argv = self.command(slot.core)
        childFDs = {0: "w", 1: "r", 2: "r", CHILD_AMP_IN: "w", CHILD_AMP_OUT: "r"}
        childFDs.update(self.extraFDs())
        env = dict(os.environ if self.env is None else self.env)
        try:
            process = self.reactor.spawnProcess(
                protocol, argv[0], argv, env=env, childFDs=childFDs
            )
        except OSError:
            self.log.failure("cannot spawn core {core}", core=slot.core)
            self._scheduleRestart(slot, lifetime=0.0)
            return
        slot.process = process
        slot.protocol = protocol
        slot.pid = process.pid
        slot.state = "starting"
        slot.startedAt = self.reactor.seconds()
        slot.queries = 0  # the new process's count, not the dead one's
        self.hub.join(slot.core, protocol.connection)
        self.announceServing(joined=slot.core)
        self.log.info("core {core} spawned, pid {pid}", core=slot.core, pid=slot.pid)
        if slot.restarts:
            self.events.emit(coreEvent(self.reactor.seconds(), slot.core, "respawned", pid=slot.pid))
            # Sites orphaned while no core was alive get a master again.
            self.hub.assignUnclaimed()

    def _endBoot(self) -> None:
        self.hub.booting = False

    def coreReady(self, slot: CoreSlot, pid: int) -> None:
        if slot.state == "starting":
            slot.state = "up"
        self.log.info("core {core} (pid {pid}) is serving", core=slot.core, pid=pid)
        self.announceServing()
        self.events.emit(coreEvent(self.reactor.seconds(), slot.core, "serving", pid=pid))

    def coreEnded(self, slot: CoreSlot, reason: Failure) -> None:
        if slot.protocol is not None:
            self.hub.leave(slot.core, slot.protocol.connection)
        if self.running:
            self.hub.coreDied(slot.core)
        if slot.killCall is not None and slot.killCall.active():
            slot.killCall.cancel()
        slot.killCall = None
        now = self.reactor.seconds()
        lifetime = now - slot.startedAt if slot.startedAt is not None else 0.0
        pid = slot.pid
        slot.process = None
        slot.protocol = None
        slot.pid = None
        slot.startedAt = None
        if not self.running:
            slot.state = "stopped"
            self.log.info("core {core} stopped", core=slot.core)
            self.announceServing()
            return
        self.log.warn(
            "core {core} ended unexpectedly ({reason}) after {lifetime:.1f}s",
            core=slot.core,
            reason=reason.getErrorMessage(),
            lifetime=lifetime,
        )
        self._scheduleRestart(slot, lifetime)
        self.announceServing()
        self.events.emit(coreEvent(
            now, slot.core, "died", pid=pid, reason=processEndReason(reason), lifetime=lifetime,
            restartIn=slot.restartCall.getTime() - now if slot.restartCall is not None else None,
        ))

    # Events for the consoles

    def _masterChanged(
        self, site: str, core: Optional[int], epoch: int, previous: Optional[int], reason: Optional[str]
    ) -> None:
        self.events.emit(masterEvent(self.reactor.seconds(), site, core, epoch, previous, reason))

    def coreLogged(self, event: dict) -> None:
        """A core's log event, as published: the consoles hear of a site going DOWN or UP."""
        transition = siteTransitionEvent(event)
        if transition is not None:
            self.events.emit(transition)

    def toolbarState(self, timeout: float = STATUS_TIMEOUT) -> defer.Deferred:
        """
        The consoles' toolbar now (L{applianceToolbar}): the core slots as
        the supervisor knows them, the sites and the consolidated counters
        as the lowest serving core holds them (two questions to one core;
        unknown, not an error, when it cannot tell in time).
        """
        cores = self._rows()
        try:
            core = self.servingCore()
        except CoreUnavailable:
            return defer.succeed(applianceToolbar(cores, None, None))
        sites = self.callCore(core, CoreInspect, timeout, what="sites")
        sites.addCallback(lambda response: response["result"])
        asks = [sites, self.statsView(timeout)]

        def build(results) -> dict:
            (sitesOK, siteRows), (viewOK, view) = results
            return applianceToolbar(
                cores,
                siteRows if sitesOK and isinstance(siteRows, list) else None,
                view if viewOK and isinstance(view, dict) else None,
            )

        return defer.DeferredList(asks, consumeErrors=True).addCallback(build)

    def announceServing(self, joined: Optional[int] = None) -> None:
        """
        Tell every linked core which cores serve (C{stats.control}, from
        the supervisor), whenever that set changes: the lowest of them leads
        the consolidation rounds.  A core that just joined (C{joined}) is
        told the set as it stands.
        """
        serving = self.servingCores()
        body = json.dumps({"serving": serving}).encode()
        if serving != self._announcedServing:
            self._announcedServing = serving
            self.hub.tell(TOPIC_STATS_CONTROL, body)
        elif joined is not None:
            self.hub.tell(TOPIC_STATS_CONTROL, body, [joined])

    def _scheduleRestart(self, slot: CoreSlot, lifetime: float) -> None:
        slot.state = "down"
        wait, slot.delay = self.policy.afterExit(slot.delay, lifetime)
        slot.restarts += 1
        slot.restartCall = self.reactor.callLater(wait, self._spawn, slot)

    def stuck(self, slot: CoreSlot) -> None:
        """A core read nothing from its pipe for STUCK_AFTER seconds: end it, to be respawned."""
        if slot.process is None or slot.state == "stopping":
            return
        self.log.warn(
            "core {core} has read nothing from its pipe for {after:g} s: stopping it, to be respawned",
            core=slot.core, after=STUCK_AFTER,
        )
        self._terminate(slot)

    def misbehaved(self, slot: CoreSlot) -> None:
        """A core broke its AMP conversation: stop it, to be respawned."""
        if slot.process is not None and slot.state not in ("stopping",):
            self._terminate(slot)

    def _terminate(self, slot: CoreSlot) -> None:
        slot.state = "stopping"
        self._signal(slot, "TERM")
        slot.killCall = self.reactor.callLater(self.policy.killTime, self._signal, slot, "KILL")

    def _signal(self, slot: CoreSlot, name: str) -> None:
        slot.killCall = None if name == "KILL" else slot.killCall
        if slot.process is None:
            return
        try:
            slot.process.signalProcess(name)
        except error.ProcessExitedAlready:
            pass

    # Inspection

    def describeCores(self, timeout: float = STATUS_TIMEOUT) -> defer.Deferred:
        """
        One row per core for C{show cores}, asking each live core for its
        current figures (the last known ones if it does not answer in time).
        """
        asks = []
        for slot in self.slots:
            if slot.state == "up" and slot.protocol is not None:
                d = slot.protocol.connection.callRemote(CoreStatus)
                d.addTimeout(timeout, self.reactor)
                d.addCallback(self._remember, slot)
                d.addErrback(lambda _: None)
                asks.append(d)
        return defer.gatherResults(asks).addCallback(lambda _: self._rows())

    def inspectCores(self, what: str, site: Optional[str] = None, only: Optional[int] = None,
                     timeout: float = STATUS_TIMEOUT) -> defer.Deferred:
        """
        Ask every linked core (or core C{only}) what it holds; fires with
        C{{core: result}} for the cores that answered in time.
        """
        asks, cores = [], []
        for slot in self.slots:
            if slot.protocol is None or (only is not None and slot.core != only):
                continue
            if only is None and slot.state != "up":
                # A core still joining holds no complete table yet, and
                # would make the console wait for it.
                continue
            arguments = {"what": what} if site is None else {"what": what, "site": site}
            d = slot.protocol.connection.callRemote(CoreInspect, **arguments)
            d.addTimeout(timeout, self.reactor)
            d.addCallback(lambda response: response["result"])
            asks.append(d)
            cores.append(slot.core)
        gathered = defer.DeferredList(asks, consumeErrors=True)
        return gathered.addCallback(
            lambda results: {core: value for core, (ok, value) in zip(cores, results) if ok}
        )

    def statsView(self, timeout: float = STATUS_TIMEOUT) -> defer.Deferred:
        """
        The consolidated counters as the lowest serving core holds them
        (C{CoreInspect(what="stats")}, see C{CoreGSLB.statsView}).

        @raise CoreUnavailable: no core serves, or it cannot tell.
        """
        try:
            core = self.servingCore()
        except CoreUnavailable as e:
            return defer.fail(e)

        def unknown(failure: Failure):
            failure.trap(NoSuchEntity)
            raise CoreUnavailable(f"core {core} cannot show statistics ({_message(failure.value)})")

        d = self.callCore(core, CoreInspect, timeout, what="stats")
        return d.addCallback(lambda response: response["result"]).addErrback(unknown)

    def consolidationInterval(self) -> Optional[float]:
        """Seconds between consolidation rounds, as the cores' topology says (None: unknown)."""
        return None if self.topology is None else self.topology.appliance.consolidation_interval

    def servingCores(self) -> list[int]:
        """The cores that answer DNS now, lowest first."""
        return [slot.core for slot in self.slots if slot.state == "up" and slot.protocol is not None]

    def servingCore(self, core: Optional[int] = None) -> int:
        """
        Core C{core} if it serves, or (C{None}) the lowest core that does.

        @raise CoreUnavailable: there is no such core, or it does not serve.
        """
        if core is None:
            serving = self.servingCores()
            if not serving:
                raise CoreUnavailable("no core is serving")
            return serving[0]
        if not 0 <= core < len(self.slots):
            raise CoreUnavailable(f"no core {core} (cores 0 to {len(self.slots) - 1})")
        if core not in self.servingCores():
            raise CoreUnavailable(f"core {core} is not serving (it is {self.slots[core].state})")
        return core

    def callCore(self, core: int, command: type[amp.Command], timeout: float, **arguments) -> defer.Deferred:
        """
        C{command} to core C{core}; what the core refuses comes back as the
        control endpoint's errors, its silence and its end as
        L{CoreUnavailable}.
        """
        slot = self.slots[core]
        if slot.protocol is None:
            return defer.fail(CoreUnavailable(f"core {core} is not running"))
        d = _detached(slot.protocol.connection.callRemote(command, **arguments))
        d.addTimeout(timeout, self.reactor)

        def translate(failure: Failure):
            if failure.check(NoSuchEntity, BadValue, CoreUnavailable):
                return failure
            if failure.check(KeyError):
                raise NoSuchEntity(_message(failure.value))
            if failure.check(ValueError):
                raise BadValue(_message(failure.value))
            if failure.check(defer.TimeoutError, defer.CancelledError):
                raise CoreUnavailable(f"core {core} did not answer within {timeout:g}s")
            if failure.check(TooManyPendingCalls):
                raise CoreUnavailable(f"core {core} is not answering: {_message(failure.value)}")
            if failure.check(amp.RemoteAmpError):
                raise CoreUnavailable(f"core {core} failed: {_message(failure.value)}")
            raise CoreUnavailable(f"core {core} ended before it answered")

        return d.addErrback(translate)

    def pushRuntime(self, timeout: float = APPLY_TIMEOUT) -> defer.Deferred:
        """
        Hand the whole runtime state to every linked core, in the order of
        the changes (each core's pipe keeps it).  Fires with the cores that
        applied it once every one answered; a core that dies meanwhile is
        left out (its successor gets the state when it joins), a serving
        core that refuses or does not answer in time makes it fail with
        L{CoreUnavailable}.
        """
        state = self.runtime
        linked = [(core, self.hub.connections[core]) for core in sorted(self.hub.connections)]
        asks = []
        for core, connection in linked:
            d = connection.callRemote(ApplyRuntime, state=state)
            d.addTimeout(timeout, self.reactor)
            asks.append(d)

        def check(results) -> list[int]:
            applied, failed = [], []
            for (core, connection), (ok, value) in zip(linked, results):
                if ok:
                    applied.append(core)
                    continue
                refused = value.check(amp.RemoteAmpError, KeyError, ValueError)
                late = value.check(defer.TimeoutError, defer.CancelledError)
                serving = self.slots[core].state == "up" and self.hub.connections.get(core) is connection
                if (refused or late) and serving:
                    failed.append(f"core {core} " + (
                        f"refused it: {_message(value.value)}" if refused else f"did not answer within {timeout:g}s"
                    ))
                elif refused or late:
                    # A core still joining reads it before its first answer.
                    self.log.warn("core {core} (joining) did not apply the runtime state: {reason}",
                                  core=core, reason=_message(value.value))
            if failed:
                done = f"applied by core {', '.join(map(str, applied))}, but " if applied else ""
                raise CoreUnavailable(done + "; ".join(failed))
            return applied

        return defer.DeferredList(asks, consumeErrors=True).addCallback(check)

    def _remember(self, status: dict, slot: CoreSlot) -> None:
        slot.queries = status["queries"]

    def coreRows(self) -> list[dict]:
        """One row per core slot as the supervisor knows it now (C{show cores} without asking)."""
        return self._rows()

    def _rows(self) -> list[dict]:
        now = self.reactor.seconds()
        rows = []
        for slot in self.slots:
            row = {
                "core": slot.core,
                "state": slot.state,
                "queries": slot.queries,
                "restarts": slot.restarts,
            }
            if slot.pid is not None:
                row["pid"] = slot.pid
            if slot.startedAt is not None:
                row["uptime"] = round(now - slot.startedAt, 3)
            rows.append(row)
        return rows


def _detached(asked: defer.Deferred) -> defer.Deferred:
    """
    A Deferred of an AMP call's outcome on which to build: AMP ends the
    call's own Deferred with its "unhandled error" handler when the answer
    comes, which would swallow the errors raised by callbacks added before.
    """
    outcome: defer.Deferred = defer.Deferred()
    asked.chainDeferred(outcome)
    return outcome


def _message(error: BaseException) -> str:
    """An error's own words (a KeyError's without its quotes, a remote one's description)."""
    if isinstance(error, amp.RemoteAmpError):
        description = error.description
        return description.decode("utf-8", "replace") if isinstance(description, bytes) else str(description)
    if isinstance(error, (KeyError, ValueError)) and error.args:
        first = error.args[0]
        return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return str(error) or type(error).__name__


def coreCommand(
    configPath: str,
    socketArguments: Callable[[], list[str]],
    python: str = sys.executable,
    compiled: bool = False,
) -> CoreCommand:
    """
    The argv of core C{core}: C{python -m gslb_twisted.core ...}; with
    C{compiled}, the core reads the topology the supervisor compiled, at
    descriptor L{CHILD_TOPOLOGY} (the file stays the fallback, and names
    the topology in messages).
    """

    def command(core: int) -> list[str]:
        return [
            python,
            "-m",
            "gslb_twisted.core",
            "--core",
            str(core),
            "--config",
            configPath,
        ] + (["--topology-fd", str(CHILD_TOPOLOGY)] if compiled else []) + socketArguments()

    # The supervisor reads the same topology, to check runtime changes.
    command.configPath = configPath
    return command


# --- control endpoint -------------------------------------------------------------


# Consoles connected at once to one control endpoint: each holds a little
# state (its event subscription, its pending calls to cores); more are
# closed as they connect.
MAX_CONTROL_CONNECTIONS = 64


class ControlFactory(Factory):
    """
    Builds a L{ControlProtocol} per console, at most C{maxConnections} at
    once; a refusal is logged once until there is room again.
    """

    log = Logger()

    def __init__(
        self, monitor: "CoreMonitor", maxConnections: int = MAX_CONTROL_CONNECTIONS, token: Optional[str] = None
    ) -> None:
        self.monitor = monitor
        self.maxConnections = maxConnections
        self.token = token
        self.connections = 0
        self.refused = 0
        self._refusing = False

    def buildProtocol(self, addr) -> Optional["ControlProtocol"]:
        if self.connections >= self.maxConnections:
            self.refused += 1
            if not self._refusing:
                self._refusing = True
                self.log.warn("Refusing control connections: {limit} consoles connected", limit=self.maxConnections)
            return None
        self.connections += 1
        protocol = ControlProtocol(self.monitor, self.token)
        protocol.factory = self
        return protocol

    def released(self) -> None:
        self.connections -= 1
        self._refusing = False


class ControlProtocol(GuardedControl):
    """
    What gslb-console talks to (who may: L{GuardedControl}).
    """

    def __init__(self, monitor: CoreMonitor, token: Optional[str] = None) -> None:
        """
        @param token: what a console must send (L{Authenticate}) before any
            other command on a connection that is not a unix socket.
        """
        super().__init__(token, monitor.reactor)
        self.monitor = monitor

    # Pushed events

    def _control(self) -> Optional[str]:
        """This endpoint, as a console would connect to it."""
        return None if self.transport is None else describeAddress(self.transport.getHost())

    @Subscribe.responder
    def subscribe(self) -> defer.Deferred:
        control = self._control()
        self.monitor.events.subscribe(self, control)
        return self.monitor.events.state(control).addCallback(lambda state: {"state": state})

    @Unsubscribe.responder
    def unsubscribe(self) -> dict:
        self.monitor.events.unsubscribe(self)
        return {}

    def connectionLost(self, reason: Failure) -> None:
        self.monitor.events.unsubscribe(self)
        factory = getattr(self, "factory", None)
        if factory is not None:
            factory.released()
        super().connectionLost(reason)

    @ShowCores.responder
    def showCores(self) -> defer.Deferred:
        return self.monitor.describeCores().addCallback(lambda rows: {"cores": rows})

    def _fromMasters(self, what: str, siteOf, name: Optional[str]) -> defer.Deferred:
        """
        One row per entity, each as the master core of its site holds it
        (the lowest core that answered, for a site without a master).
        """
        hub = self.monitor.hub

        def merge(byCore: dict) -> dict:
            if not byCore:
                if self.monitor.servingCores():
                    raise CoreUnavailable(f"no core answered within {STATUS_TIMEOUT:g}s")
                raise CoreUnavailable("no core is serving")
            fallback = byCore[min(byCore)]
            rows = []
            for index, row in enumerate(fallback):
                claim = hub.claims.holder(siteOf(row))
                source = byCore.get(claim.core, fallback) if claim is not None else fallback
                rows.append(source[index])
            if name is not None:
                rows = [row for row in rows if row["name"] == name]
                if not rows:
                    raise KeyError(name)
            return {"rows": rows}

        return self.monitor.inspectCores(what).addCallback(merge)

    @ShowSites.responder
    def showSites(self, name: Optional[str] = None) -> defer.Deferred:
        return self._fromMasters("sites", lambda row: row["name"], name)

    @ShowServices.responder
    def showServices(self, name: Optional[str] = None) -> defer.Deferred:
        return self._fromMasters("services", lambda row: row["site"], name)

    @ShowMEP.responder
    def showMEP(self) -> defer.Deferred:
        def merge(byCore: dict) -> dict:
            rows = [row for core in sorted(byCore) for row in byCore[core]]
            return {"rows": rows}

        return self.monitor.inspectCores("mep").addCallback(merge)

    @ShowMetrics.responder
    def showMetrics(self, site: str, core: Optional[int] = None) -> defer.Deferred:
        if core is None:
            claim = self.monitor.hub.claims.holder(site)
            core = claim.core if claim is not None else 0

        def pick(byCore: dict) -> dict:
            if core not in byCore:
                raise KeyError(f"core {core} did not answer")
            return {"result": byCore[core]}

        return self.monitor.inspectCores("metrics", site=site, only=core).addCallback(pick)

    @ShowConsistency.responder
    def showConsistency(self) -> defer.Deferred:
        def compare(byCore: dict) -> dict:
            sites = sorted({site for versions in byCore.values() for site in versions})
            rows, consistent = [], bool(byCore)
            for site in sites:
                versions = {str(core): byCore[core].get(site) for core in sorted(byCore)}
                if len({tuple(v) if v else None for v in versions.values()}) > 1:
                    consistent = False
                rows.append({"site": site, "versions": versions})
            return {"result": {"consistent": consistent, "cores": sorted(byCore), "sites": rows}}

        return self.monitor.inspectCores("versions").addCallback(compare)

    # The decision engine

    @ShowVServers.responder
    def showVServers(self, name: Optional[str] = None) -> defer.Deferred:
        """The vservers as the lowest serving core holds them (all cores hold the same)."""
        try:
            core = self.monitor.servingCore()
        except CoreUnavailable as e:
            return defer.fail(e)

        def pick(rows: list) -> dict:
            if name is not None:
                rows = [row for row in rows if row.get("name") == name]
                if not rows:
                    raise NoSuchEntity(f"no such vserver {name}")
            return {"rows": rows}

        def unknown(failure: Failure):
            failure.trap(NoSuchEntity)
            raise CoreUnavailable(f"core {core} cannot show vservers ({_message(failure.value)})")

        d = self.monitor.callCore(core, CoreInspect, STATUS_TIMEOUT, what="vservers")
        return d.addCallback(lambda response: response["result"]).addErrback(unknown).addCallback(pick)

    # Consolidated statistics

    def _withStats(self, compute) -> defer.Deferred:
        """
        C{compute(view)} over the consolidated counters as the lowest
        serving core holds them (every core holds a replica; the lowest
        serving one is also the control core, whose table is the newest),
        with the consolidation interval for a console that repeats.
        """
        d = self.monitor.statsView()
        d.addCallback(compute)
        interval = self.monitor.consolidationInterval()
        if interval is not None:
            d.addCallback(lambda response: {**response, "interval": interval})
        return d

    @StatVServers.responder
    def statVServers(self, name: Optional[str] = None) -> defer.Deferred:
        return self._withStats(lambda view: {"rows": statVServerRows(view, name)})

    @StatServices.responder
    def statServices(self, name: Optional[str] = None) -> defer.Deferred:
        return self._withStats(lambda view: {"rows": statServiceRows(view, name)})

    @StatCores.responder
    def statCores(self) -> defer.Deferred:
        return self._withStats(lambda view: {"rows": statCoreRows(view)})

    @StatDNS.responder
    def statDNS(self) -> defer.Deferred:
        return self._withStats(lambda view: {"result": statDNS(view)})

    @Resolve.responder
    def resolve(
        self, name: str, qtype: Optional[str] = None, client: Optional[str] = None, core: Optional[int] = None
    ) -> defer.Deferred:
        """What core C{core} (the lowest serving one by default) would answer now, and why."""
        try:
            qtype = normaliseQType(qtype if qtype is not None else "A")
            if client is not None:
                client = normaliseAddress(client)
            core = self.monitor.servingCore(core)
        except (BadValue, CoreUnavailable) as e:
            return defer.fail(e)
        arguments = {"name": name.strip(), "qtype": qtype}
        if client is not None:
            arguments["client"] = client
        d = self.monitor.callCore(core, CoreResolve, RESOLVE_TIMEOUT, **arguments)
        return d.addCallback(lambda response: {"result": {**response["result"], "core": core}})

    def _change(self, state: dict, result: dict) -> defer.Deferred:
        """Make C{state} the runtime state, on every core; answer C{result} and the cores that applied it."""
        self.monitor.runtime = state
        d = self.monitor.pushRuntime()
        return d.addCallback(lambda cores: {"result": {**result, "cores": cores, "runtime": state}})

    def _topology(self) -> Topology:
        if self.monitor.topology is None:
            raise CoreUnavailable("the supervisor could not read the topology: runtime changes are refused")
        return self.monitor.topology

    @SetVServer.responder
    def setVServer(self, name: str, lbMethod: str) -> defer.Deferred:
        try:
            topology = self._topology()
            method = checkLBMethod(topology, name, lbMethod)
        except (NoSuchEntity, BadValue, CoreUnavailable) as e:
            return defer.fail(e)
        configured = topology.vserverByName[name].lb_method
        return self._change(
            withLBMethod(self.monitor.runtime, topology, name, method),
            {"name": name, "lb_method": method, "configured_lb_method": configured},
        )

    def _enable(self, name: str, enabled: bool) -> defer.Deferred:
        try:
            checkService(self._topology(), name)
        except (NoSuchEntity, CoreUnavailable) as e:
            return defer.fail(e)
        return self._change(withService(self.monitor.runtime, name, enabled), {"name": name, "enabled": enabled})

    @EnableService.responder
    def enableService(self, name: str) -> defer.Deferred:
        return self._enable(name, True)

    @DisableService.responder
    def disableService(self, name: str) -> defer.Deferred:
        return self._enable(name, False)


class SupervisorService(MultiService):
    """
    The root of the supervisor's service tree: the core monitor, the
    control endpoint and the shared DNS sockets it owns.
    """

    log = Logger()

    def __init__(self, monitor: CoreMonitor, shared: Optional[SharedSockets] = None) -> None:
        super().__init__()
        self.monitor = monitor
        self.shared = shared
        monitor.setServiceParent(self)

    def stopService(self) -> defer.Deferred:
        d = defer.maybeDeferred(super().stopService)

        def closeSockets(result):
            if self.shared is not None:
                self.shared.close()
            return result

        return d.addBoth(closeSockets)


def unixModeControl(description: str) -> str:
    """
    A unix control endpoint is created with mode 0600 unless it says
    otherwise: only its owner may steer the appliance.
    """
    if description.startswith("unix:") and ":mode=" not in description:
        return description + ":mode=600"
    return description
