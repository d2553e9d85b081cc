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

import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IProcessTransport, IReactorProcess, ITransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from gslb_twisted.endpoints import DNSEndpoint, bindDNSSocket
from gslb_twisted.logs import publishCoreEvent
from gslb_twisted.protocol.commands import (
    CoreReady,
    CoreStatus,
    Deliver,
    LogEvent,
    Publish,
    ShowCores,
)
from gslb_twisted.respawn import RespawnPolicy

# The child's end of the AMP pipes.
CHILD_AMP_IN = 3
CHILD_AMP_OUT = 4
FIRST_SOCKET_FD = 5

# How long `show cores` waits for a core's own figures.
STATUS_TIMEOUT = 1.0


# --- DNS sockets ------------------------------------------------------------


@dataclass
class SharedSockets:
    """
    The DNS listening sockets, bound once by the supervisor.  The
    supervisor never reads them: each core adopts its inherited copy.
    """

    endpoints: Sequence[DNSEndpoint]
    sockets: list = field(default_factory=list)

    @classmethod
    def bind(cls, endpoints: Sequence[DNSEndpoint]) -> "SharedSockets":
        shared = cls(endpoints)
        try:
            for endpoint in endpoints:
                shared.sockets.append(bindDNSSocket(endpoint))
        except BaseException:
            shared.close()
            raise
        return shared

    def childFDs(self) -> dict[int, int]:
        return {FIRST_SOCKET_FD + i: s.fileno() for i, s in enumerate(self.sockets)}

    def coreArguments(self) -> list[str]:
        arguments = []
        for i, (endpoint, sock) in enumerate(zip(self.endpoints, self.sockets)):
            arguments += ["--inherit", f"{endpoint.transport}:{FIRST_SOCKET_FD + i}:{int(sock.family)}"]
        return arguments

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


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

    def write(self, data: bytes) -> None:
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


class CoreConnection(amp.AMP):
    """
    The supervisor's AMP conversation with one core.
    """

    log = Logger()

    def __init__(self, slot: "CoreSlot", supervisor: "CoreMonitor") -> None:
        super().__init__()
        self.slot = slot
        self.supervisor = supervisor

    @CoreReady.responder
    def coreReady(self, core: int, pid: int) -> dict:
        self.supervisor.coreReady(self.slot, pid)
        return {}

    @Publish.responder
    def publish(self, topic: str, body: bytes, target: Optional[int] = None) -> dict:
        self.supervisor.hub.publish(self.slot.core, topic, body, target)
        return {}

    @LogEvent.responder
    def logEvent(self, event: str) -> dict:
        try:
            publishCoreEvent(event, self.slot.core)
        except ValueError:
            self.log.warn("core {core} sent an unreadable log event", core=self.slot.core)
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
        self.connection.makeConnection(_ChildPipeTransport(self.transport))

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
    Relays what one core publishes to the others.  Each core's messages
    arrive in order on its own pipe and are written, in that order, to
    every other core's pipe, so order per sender holds end to end.
    """

    log = Logger()

    def __init__(self) -> None:
        self.connections: dict[int, amp.AMP] = {}
        self.relayed = 0

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
    ) -> None:
        self.reactor = reactor
        self.command = command
        self.extraFDs = extraFDs
        self.policy = policy
        self.env = env
        self.hub = Hub()
        self.slots = [CoreSlot(core, policy.minDelay) for core in range(count)]

    # Service

    def startService(self) -> None:
        super().startService()
        for slot in self.slots:
            self._spawn(slot)

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
        self.hub.join(slot.core, protocol.connection)
        self.log.info("core {core} spawned, pid {pid}", core=slot.core, pid=slot.pid)

    def coreReady(self, slot: CoreSlot, pid: int) -> None:
        if slot.state == "starting":
            slot.state = "up"
        self.log.info("core {core} (pid {pid}) is serving", core=slot.core, pid=pid)

    def coreEnded(self, slot: CoreSlot, reason: Failure) -> None:
        if slot.protocol is not None:
            self.hub.leave(slot.core, slot.protocol.connection)
        if slot.killCall is not None and slot.killCall.active():
            slot.killCall.cancel()
        slot.killCall = None
        now = self.reactor.seconds()
        lifetime = now - slot.startedAt if slot.startedAt is not None else 0.0
        slot.process = None
        slot.protocol = None
        slot.pid = None
        slot.startedAt = None
        if not self.running:
            slot.state = "stopped"
            self.log.info("core {core} stopped", core=slot.core)
            return
        self.log.warn(
            "core {core} ended unexpectedly ({reason}) after {lifetime:.1f}s",
            core=slot.core,
            reason=reason.getErrorMessage(),
            lifetime=lifetime,
        )
        self._scheduleRestart(slot, lifetime)

    def _scheduleRestart(self, slot: CoreSlot, lifetime: float) -> None:
        slot.state = "down"
        wait, slot.delay = self.policy.afterExit(slot.delay, lifetime)
        slot.restarts += 1
        slot.restartCall = self.reactor.callLater(wait, self._spawn, slot)

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

    def _remember(self, status: dict, slot: CoreSlot) -> None:
        slot.queries = status["queries"]

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


def coreCommand(
    configPath: str, socketArguments: Callable[[], list[str]], python: str = sys.executable
) -> CoreCommand:
    """
    The argv of core C{core}: C{python -m gslb_twisted.core ...}.
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
        ] + socketArguments()

    return command


# --- control endpoint -------------------------------------------------------------


class ControlProtocol(amp.AMP):
    """
    What gslb-console talks to.
    """

    def __init__(self, monitor: CoreMonitor) -> None:
        super().__init__()
        self.monitor = monitor

    @ShowCores.responder
    def showCores(self) -> defer.Deferred:
        return self.monitor.describeCores().addCallback(lambda rows: {"cores": rows})


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
