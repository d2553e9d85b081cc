"""
The supervisor's respawn, backoff, shutdown, hub and log relay, driven with
a fake process reactor and a Clock: no real process, no sleep.
"""

from __future__ import annotations

import io

from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.protocol.commands import AssignSite, CoreReady, CoreStatus, Deliver, LogEvent, MasterChanged, Publish
from gslb_twisted.respawn import RespawnPolicy
from gslb_twisted.endpoints import unixPathProblem
from gslb_twisted.supervisor import CHILD_AMP_IN, CoreMonitor, Hub, unixModeControl


class FakeWriter:
    """The writing end of a pipe to a child: who wants to hear it is full."""

    def __init__(self) -> None:
        self.producer = None

    def registerProducer(self, producer, streaming: bool) -> None:
        self.producer = producer


class FakeProcess:
    """A spawned process as the supervisor sees it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pipes = {CHILD_AMP_IN: FakeWriter()}
        self.signals: list[str] = []
        self.written: list[tuple[int, bytes]] = []
        self.closed: list[int] = []
        self.exited = False

    def signalProcess(self, name: str) -> None:
        if self.exited:
            raise error.ProcessExitedAlready()
        self.signals.append(name)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def closeChildFD(self, fd: int) -> None:
        self.closed.append(fd)


class FakeProcessReactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[dict] = []
        self._nextPid = 1000

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, uid=None, gid=None, usePTY=0, childFDs=None):
        self._nextPid += 1
        process = FakeProcess(self._nextPid)
        self.spawned.append(
            {"protocol": protocol, "args": args, "childFDs": childFDs, "process": process, "env": env}
        )
        protocol.makeConnection(process)
        return process


def endProcess(spawn: dict, signal: str = "KILL") -> None:
    spawn["process"].exited = True
    spawn["protocol"].processEnded(Failure(error.ProcessTerminated(signal=9 if signal == "KILL" else 15)))


POLICY = RespawnPolicy(minDelay=1.0, maxDelay=8.0, threshold=5.0, killTime=3.0)


def makeMonitor(count: int = 2, extraFDs=None):
    reactor = FakeProcessReactor()
    monitor = CoreMonitor(
        reactor,
        count,
        lambda core: ["python", "-m", "gslb_twisted.core", "--core", str(core)],
        extraFDs=extraFDs or (lambda: {5: 42, 6: 43}),
        policy=POLICY,
        env={},
    )
    return reactor, monitor


def boxBytes(command, **arguments) -> bytes:
    """The bytes a core writes on its AMP pipe to call C{command}."""
    client = amp.AMP()
    transport = StringTransport()
    client.makeConnection(transport)
    client.callRemote(command, **arguments)
    return transport.value()


class RespawnPolicyTests(SynchronousTestCase):
    def test_longLivedRestartsAtOnce(self):
        self.assertEqual(POLICY.afterExit(4.0, lifetime=60.0), (0.0, 1.0))

    def test_quickDeathsDouble(self):
        delay = 1.0
        waits = []
        for _ in range(5):
            wait, delay = POLICY.afterExit(delay, lifetime=0.5)
            waits.append(wait)
        self.assertEqual(waits, [1.0, 2.0, 4.0, 8.0, 8.0])


class CoreMonitorTests(SynchronousTestCase):
    def test_spawnsEveryCoreWithDedicatedPipes(self):
        reactor, monitor = makeMonitor(2)
        monitor.startService()
        self.assertEqual([s["args"][-1] for s in reactor.spawned], ["0", "1"])
        fds = reactor.spawned[0]["childFDs"]
        # AMP travels on fds 3 (to the core) and 4 (from it), never stdout.
        self.assertEqual(fds[3], "w")
        self.assertEqual(fds[4], "r")
        self.assertEqual(fds[1], "r")
        # The shared DNS sockets are passed on.
        self.assertEqual((fds[5], fds[6]), (42, 43))
        self.assertEqual([s.state for s in monitor.slots], ["starting", "starting"])

    def test_readyMakesCoreUp(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        reactor.spawned[0]["protocol"].childDataReceived(4, boxBytes(CoreReady, core=0, pid=1001))
        self.assertEqual(monitor.slots[0].state, "up")

    def test_longLivedCoreRespawnedAtOnce(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        reactor.advance(60)
        endProcess(reactor.spawned[0])
        self.assertEqual(monitor.slots[0].state, "down")
        reactor.advance(0)
        self.assertEqual(len(reactor.spawned), 2)
        self.assertEqual(monitor.slots[0].pid, reactor.spawned[1]["process"].pid)
        self.assertEqual(monitor.slots[0].restarts, 1)

    def test_respawnedCoreCountsFromZero(self):
        """`show cores` never shows a new pid beside the dead process's query count."""
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        monitor.slots[0].queries = 690  # the last figure the dead core gave
        reactor.advance(60)
        endProcess(reactor.spawned[0])
        reactor.advance(0)
        [row] = monitor.coreRows()
        self.assertEqual((row["pid"], row["queries"]), (reactor.spawned[1]["process"].pid, 0))

    def test_crashLoopBacksOffDoublingToCap(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        waits = []
        for _ in range(5):
            endProcess(reactor.spawned[-1])
            spawnedBefore = len(reactor.spawned)
            waited = 0.0
            while len(reactor.spawned) == spawnedBefore:
                reactor.advance(0.5)
                waited += 0.5
            waits.append(waited)
        self.assertEqual(waits, [1.0, 2.0, 4.0, 8.0, 8.0])

    def test_stopSendsTermThenKill(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        process = reactor.spawned[0]["process"]
        stopped = monitor.stopService()
        self.assertEqual(process.signals, ["TERM"])
        self.assertNoResult(stopped)
        reactor.advance(POLICY.killTime)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        self.assertNoResult(stopped)
        endProcess(reactor.spawned[0])
        self.successResultOf(stopped)
        self.assertEqual(monitor.slots[0].state, "stopped")
        # A core that ends during shutdown is not respawned.
        reactor.advance(100)
        self.assertEqual(len(reactor.spawned), 1)

    def test_stopBeforeKillTimeSendsNoKill(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        stopped = monitor.stopService()
        endProcess(reactor.spawned[0], "TERM")
        self.successResultOf(stopped)
        reactor.advance(POLICY.killTime * 2)
        self.assertEqual(reactor.spawned[0]["process"].signals, ["TERM"])

    def test_stopCancelsPendingRespawn(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        endProcess(reactor.spawned[0])
        self.successResultOf(monitor.stopService())
        reactor.advance(100)
        self.assertEqual(len(reactor.spawned), 1)
        self.assertEqual(monitor.slots[0].state, "stopped")

    def test_describeCoresAsksLiveCores(self):
        reactor, monitor = makeMonitor(2)
        monitor.startService()
        first = reactor.spawned[0]
        first["protocol"].childDataReceived(4, boxBytes(CoreReady, core=0, pid=first["process"].pid))
        rows = monitor.describeCores()
        # The question went down core 0's pipe (fd 3); answer it.
        fd, data = first["process"].written[-1]
        self.assertEqual(fd, CHILD_AMP_IN)
        self.assertIn(CoreStatus.commandName, data)
        answer = amp.AmpBox(_answer=_askOf(data), queries=b"17")
        first["protocol"].childDataReceived(4, answer.serialize())
        result = self.successResultOf(rows)
        self.assertEqual(
            [(r["core"], r["state"], r["queries"], r.get("pid")) for r in result],
            [(0, "up", 17, first["process"].pid), (1, "starting", 0, reactor.spawned[1]["process"].pid)],
        )

    def test_describeCoresDoesNotWaitForeverForASilentCore(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        monitor.slots[0].queries = 5
        reactor.spawned[0]["protocol"].childDataReceived(4, boxBytes(CoreReady, core=0, pid=1))
        rows = monitor.describeCores(timeout=1.0)
        self.assertNoResult(rows)
        reactor.advance(1.0)
        self.assertEqual(self.successResultOf(rows)[0]["queries"], 5)

    def test_strayOutputIsLoggedNotParsed(self):
        reactor, monitor = makeMonitor(1)
        monitor.startService()
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        reactor.spawned[0]["protocol"].childDataReceived(2, b"Traceback: boom\npartial")
        self.assertEqual([e.get("line") for e in events if "line" in e], ["Traceback: boom"])
        self.assertEqual(monitor.slots[0].state, "starting")

    def test_logEventsTaggedWithCore(self):
        from twisted.logger import eventAsJSON

        reactor, monitor = makeMonitor(2)
        monitor.startService()
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        text = eventAsJSON({"log_format": "hello {who}", "who": "world", "log_namespace": "x"})
        reactor.spawned[1]["protocol"].childDataReceived(4, boxBytes(LogEvent, event=text))
        tagged = [e for e in events if e.get("who") == "world"]
        self.assertEqual(len(tagged), 1)
        self.assertEqual(tagged[0]["core"], 1)
        self.assertEqual(tagged[0]["log_system"], "core-1")


def _askOf(data: bytes) -> bytes:
    box = amp.parse(io.BytesIO(data))[-1]
    return box[b"_ask"]


class RecordingConnection:
    def __init__(self):
        self.calls = []

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))


class HubTests(SynchronousTestCase):
    def test_relaysToEveryOtherCoreInOrder(self):
        hub = Hub()
        cores = {core: RecordingConnection() for core in range(3)}
        for core, connection in cores.items():
            hub.join(core, connection)
        for n in range(5):
            hub.publish(1, "metric", str(n).encode())
        self.assertEqual(cores[1].calls, [])
        for core in (0, 2):
            self.assertEqual(
                [(c, k["sender"], k["body"]) for c, k in cores[core].calls],
                [(Deliver, 1, str(n).encode()) for n in range(5)],
            )

    def test_targetedMessage(self):
        hub = Hub()
        cores = {core: RecordingConnection() for core in range(3)}
        for core, connection in cores.items():
            hub.join(core, connection)
        hub.publish(0, "snapshot", b"x", target=2)
        self.assertEqual(len(cores[2].calls), 1)
        self.assertEqual(cores[1].calls, [])

    def test_leftCoreGetsNothing(self):
        hub = Hub()
        a, b = RecordingConnection(), RecordingConnection()
        hub.join(0, a)
        hub.join(1, b)
        hub.leave(1, b)
        hub.publish(0, "t", b"x")
        self.assertEqual(b.calls, [])

    def test_publishThroughPipes(self):
        """
        A Publish arriving on core 0's pipe comes out as a Deliver on core
        1's pipe, through the real AMP encoding.
        """
        reactor, monitor = makeMonitor(2)
        monitor.startService()
        for n in range(3):
            reactor.spawned[0]["protocol"].childDataReceived(4, boxBytes(Publish, topic="t", body=b"m%d" % n))
        delivered = b"".join(data for fd, data in reactor.spawned[1]["process"].written)
        # (The supervisor's own stats.control announcement comes first.)
        boxes = [b for b in amp.parse(io.BytesIO(delivered)) if b[b"topic"] == b"t"]
        self.assertEqual([b[b"body"] for b in boxes], [b"m0", b"m1", b"m2"])
        self.assertEqual({b[b"sender"] for b in boxes}, {b"0"})
        toSender = amp.parse(io.BytesIO(b"".join(data for fd, data in reactor.spawned[0]["process"].written)))
        self.assertEqual([b for b in toSender if b[b"topic"] == b"t"], [])


class ControlEndpointTests(SynchronousTestCase):
    def test_unixSocketPrivateByDefault(self):
        self.assertEqual(unixModeControl("unix:gslb.ctl"), "unix:gslb.ctl:mode=600")
        self.assertEqual(unixModeControl("unix:x.ctl:mode=660"), "unix:x.ctl:mode=660")
        self.assertEqual(unixModeControl("tcp:5301:interface=127.0.0.1"), "tcp:5301:interface=127.0.0.1")

    def test_unixPathTooLong(self):
        """
        A control path that does not fit a unix socket address is named as
        the problem (with its length); paths that fit, and TCP, pass.
        """
        long = "/run/" + "p" * 110 + ".ctl"
        self.assertIn("socket path is 119 bytes, longer than the 107", unixPathProblem("unix:" + long))
        self.assertIn("119 bytes", unixPathProblem(f"unix:path={long}:mode=600"))
        self.assertIsNone(unixPathProblem("unix:" + "p" * 107))
        self.assertIsNone(unixPathProblem("unix:gslb.ctl:mode=600"))
        self.assertIsNone(unixPathProblem("tcp:5301:interface=127.0.0.1"))


class HubMastershipTests(SynchronousTestCase):
    """The hub as arbiter of site mastership."""

    def makeHub(self, cores=2):
        hub = Hub(assignable=("north", "south"), sites=("east", "north", "south", "west"), coreCount=cores)
        connections = {core: RecordingConnection() for core in range(cores)}
        for core, connection in connections.items():
            hub.join(core, connection)
        return hub, connections

    def announcements(self, connection):
        return [(k["site"], k.get("core"), k["epoch"]) for c, k in connection.calls if c is MasterChanged]

    def test_assignedSitesSpreadAndAnnounced(self):
        hub, connections = self.makeHub()
        hub.assignUnclaimed()
        # Sites are dealt round the cores in name order: east 0, north 1, south 0, west 1.
        self.assertEqual(hub.masters(), [["north", 1, 1], ["south", 0, 1]])
        assigned = [(k["site"], k["epoch"]) for c, k in connections[1].calls if c is AssignSite]
        self.assertEqual(assigned, [("north", 1)])
        for connection in connections.values():
            self.assertEqual(self.announcements(connection), [("north", 1, 1), ("south", 0, 1)])

    def test_bootingOnlyPreferredCoreTakesOver(self):
        hub, _ = self.makeHub()
        self.assertIsNone(hub.claim("west", 0, takeover=True))  # west prefers core 1
        self.assertEqual(hub.claim("west", 1, takeover=True).epoch, 1)
        hub.booting = False
        # After boot the first core to accept a site that dials in keeps it.
        self.assertEqual(hub.claim("west", 0, takeover=True), hub.claims.holder("west"))
        self.assertEqual(hub.claims.holder("west").epoch, 2)

    def test_preferredCoreGoneAnyCoreTakesOver(self):
        hub, connections = self.makeHub()
        hub.leave(1, connections[1])
        self.assertEqual(hub.claim("west", 0, takeover=True).core, 0)

    def test_deadCoreSitesReassignedOrReleased(self):
        hub, connections = self.makeHub()
        hub.assignUnclaimed()
        hub.booting = False
        hub.claim("west", 1, takeover=True)
        hub.leave(1, connections[1])
        del connections[0].calls[:]
        hub.coreDied(1)
        # north (assigned) goes to the survivor in a new epoch; west (dials
        # in) has no master until it connects again.
        self.assertEqual(
            self.announcements(connections[0]),
            [("north", None, 1), ("west", None, 1), ("north", 0, 2)],
        )
        self.assertEqual(hub.masters(), [["north", 0, 2], ["south", 0, 1], ["west", None, 1]])


    def test_joiningCoreGetsNoSiteWhileAServingCoreRemains(self):
        """A core still joining holds no metrics to carry over a site with."""
        hub = Hub(assignable=("north",), sites=("north",), coreCount=2, serving=lambda: [1])
        connections = {core: RecordingConnection() for core in range(2)}
        for core, connection in connections.items():
            hub.join(core, connection)
        hub.booting = False
        hub.assignUnclaimed()
        self.assertEqual(hub.masters(), [["north", 1, 1]])


class DyingCoreTests(SynchronousTestCase):
    def test_writesToAClosedPipeAreDropped(self):
        """
        A core's pipes close before its end is reported; relaying to it or
        asking it meanwhile must not raise in the supervisor.
        """
        reactor, monitor = makeMonitor(2)
        monitor.startService()
        dying = reactor.spawned[1]
        dying["protocol"].childDataReceived(4, boxBytes(CoreReady, core=1, pid=dying["process"].pid))

        def closedPipe(fd, data):
            raise KeyError(fd)  # what Twisted's Process does for a closed pipe

        dying["process"].writeToChild = closedPipe
        dying["protocol"].childConnectionLost(CHILD_AMP_IN)
        reactor.spawned[0]["protocol"].childDataReceived(4, boxBytes(Publish, topic="t", body=b"x"))
        rows = monitor.describeCores(timeout=1.0)
        reactor.advance(1.0)
        self.assertEqual([row["core"] for row in self.successResultOf(rows)], [0, 1])


# --- runtime changes and the decision engine, from the control endpoint ------------

import json  # noqa: E402

from twisted.internet import defer  # noqa: E402
from twisted.test.iosim import connectedServerAndClient  # noqa: E402

from gslb_twisted.config import loadTopology  # noqa: E402
from gslb_twisted.protocol.commands import (  # noqa: E402
    ApplyRuntime,
    BadValue,
    CoreInspect,
    CoreResolve,
    CoreUnavailable,
    DisableService,
    EnableService,
    Hello,
    NoSuchEntity,
    Resolve,
    SetVServer,
    ShowVServers,
    normaliseAddress,
    normaliseQType,
)
from gslb_twisted.supervisor import (  # noqa: E402
    APPLY_TIMEOUT,
    RESOLVE_TIMEOUT,
    STATUS_TIMEOUT,
    ControlProtocol,
    checkLBMethod,
    checkService,
    coreCommand,
    emptyRuntime,
    isEmptyRuntime,
    withLBMethod,
    withService,
)

RUNTIME_TOPOLOGY = """
[appliance]
name = "test"
ip = "127.0.0.5"
cores = 2

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
metric_exchange = false

[[site]]
name = "west"
ip = "127.0.0.3"
metric_exchange = false

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
services = ["east-web", "west-web"]

[[vserver]]
name = "api"
domains = ["api.test.gslb"]
lb_method = "CUSTOMLOAD"
services = ["east-web", "west-web"]
custom_load = [{ metric = "connections", weight = 1, ceiling = 1000 }]
"""


def runtimeTopology(testCase):
    path = testCase.mktemp()
    with open(path, "w") as f:
        f.write(RUNTIME_TOPOLOGY)
    return loadTopology(path)


def boxesTo(spawn) -> list:
    """Every AMP box the supervisor wrote to this core's pipe."""
    data = b"".join(data for fd, data in spawn["process"].written if fd == CHILD_AMP_IN)
    return amp.parse(io.BytesIO(data))


def asked(spawn, command) -> list:
    """The boxes asking C{command} of this core, oldest first."""
    return [box for box in boxesTo(spawn) if box.get(b"_command") == command.commandName]


def answer(spawn, box, **values) -> None:
    """The core answers the question C{box}."""
    reply = amp.AmpBox(_answer=box[b"_ask"], **{k: v for k, v in values.items()})
    spawn["protocol"].childDataReceived(4, reply.serialize())


def answerError(spawn, box, code: bytes, description: bytes) -> None:
    reply = amp.AmpBox(_error=box[b"_ask"], _error_code=code, _error_description=description)
    spawn["protocol"].childDataReceived(4, reply.serialize())


def ready(spawn, core: int) -> None:
    spawn["protocol"].childDataReceived(4, boxBytes(CoreReady, core=core, pid=spawn["process"].pid))


class RuntimeStateTests(SynchronousTestCase):
    """The pure parts: what the console may change, and the state it yields."""

    def setUp(self):
        self.topology = runtimeTopology(self)

    def test_methodAnyCase(self):
        self.assertEqual(checkLBMethod(self.topology, "www", "roundRobin"), "ROUNDROBIN")
        self.assertEqual(checkLBMethod(self.topology, "www", " leastresponsetime "), "LEASTRESPONSETIME")

    def test_unknownVServer(self):
        e = self.assertRaises(NoSuchEntity, checkLBMethod, self.topology, "nope", "ROUNDROBIN")
        self.assertEqual(str(e), "no such vserver nope")

    def test_unknownMethod(self):
        e = self.assertRaises(BadValue, checkLBMethod, self.topology, "www", "FASTEST")
        self.assertIn("unknown LB method 'FASTEST' (expected one of ROUNDROBIN, LEASTCONNECTION", str(e))

    def test_customLoadNeedsMetrics(self):
        """As the topology loader demands: CUSTOMLOAD only with custom_load metrics."""
        e = self.assertRaises(BadValue, checkLBMethod, self.topology, "www", "customload")
        self.assertEqual(str(e), "vserver www has no custom_load metrics: CUSTOMLOAD needs them in its topology")
        self.assertEqual(checkLBMethod(self.topology, "api", "customload"), "CUSTOMLOAD")

    def test_services(self):
        self.assertEqual(checkService(self.topology, "east-web"), "east-web")
        self.assertEqual(str(self.assertRaises(NoSuchEntity, checkService, self.topology, "x")), "no such service x")

    def test_stateIsWholeAndMinimal(self):
        state = emptyRuntime()
        self.assertTrue(isEmptyRuntime(state))
        state = withLBMethod(state, self.topology, "www", "ROUNDROBIN")
        state = withService(state, "west-web", enabled=False)
        state = withService(state, "east-web", enabled=False)
        self.assertEqual(state, {"lb_method": {"www": "ROUNDROBIN"}, "disabled": ["east-web", "west-web"]})
        # Disabling twice changes nothing; the configured method is no override.
        self.assertEqual(withService(state, "east-web", enabled=False), state)
        state = withLBMethod(state, self.topology, "www", "LEASTCONNECTION")
        state = withService(withService(state, "east-web", True), "west-web", True)
        self.assertEqual(state, emptyRuntime())
        self.assertTrue(isEmptyRuntime(state))

    def test_stateNotShared(self):
        before = emptyRuntime()
        withService(before, "east-web", enabled=False)
        withLBMethod(before, self.topology, "www", "ROUNDROBIN")
        self.assertEqual(before, emptyRuntime())

    def test_queryTypes(self):
        self.assertEqual(normaliseQType("a"), "A")
        self.assertEqual(normaliseQType("aaaa"), "AAAA")
        self.assertEqual(normaliseQType("28"), "AAAA")
        self.assertEqual(normaliseQType("TYPE255"), "ANY")
        self.assertEqual(normaliseQType("soa"), "SOA")
        self.assertEqual(normaliseQType("65280"), "TYPE65280")
        for bad in ("AAAAA", "0", "65536", "", "TYPE"):
            self.assertRaises(BadValue, normaliseQType, bad)

    def test_addresses(self):
        self.assertEqual(normaliseAddress("10.0.0.1"), "10.0.0.1")
        self.assertEqual(normaliseAddress("2001:DB8:0::1"), "2001:db8::1")
        e = self.assertRaises(BadValue, normaliseAddress, "10.0.0")
        self.assertEqual(str(e), "client '10.0.0': expected an IPv4 or IPv6 address")


class ControlFixture:
    """A monitor of two fake cores, their pipes, and the control endpoint."""

    def makeControl(self, count: int = 2, serving=(0, 1)):
        self.reactor = FakeProcessReactor()
        self.monitor = CoreMonitor(
            self.reactor, count, lambda core: ["python", "core", str(core)],
            extraFDs=dict, policy=POLICY, env={}, topology=runtimeTopology(self),
        )
        self.monitor.startService()
        self.spawned = self.reactor.spawned
        for core in serving:
            ready(self.spawned[core], core)
        self.control = ControlProtocol(self.monitor)

    def applyRuntimeStates(self, core: int) -> list:
        return [json.loads(box[b"state"]) for box in asked(self.spawned[core], ApplyRuntime)]


class RuntimeFanOutTests(ControlFixture, SynchronousTestCase):
    """A runtime change goes, whole and in order, to every core; the console hears once all applied it."""

    def test_setReachesEveryCoreThenAnswers(self):
        self.makeControl()
        d = self.control.setVServer("www", "roundrobin")
        expected = {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []}
        for core in (0, 1):
            self.assertEqual(self.applyRuntimeStates(core), [expected])
        self.assertEqual(self.monitor.runtime, expected)
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        self.assertNoResult(d)
        answer(self.spawned[1], asked(self.spawned[1], ApplyRuntime)[0])
        self.assertEqual(self.successResultOf(d), {"result": {
            "name": "www", "lb_method": "ROUNDROBIN", "configured_lb_method": "LEASTCONNECTION",
            "cores": [0, 1], "runtime": expected,
        }})

    def test_changesArriveInOrderAndWhole(self):
        self.makeControl()
        self.control.setVServer("www", "ROUNDROBIN")
        self.control.disableService("east-web")
        self.control.enableService("east-web")
        self.control.setVServer("api", "LEASTCONNECTION")
        for core in (0, 1):
            self.assertEqual(self.applyRuntimeStates(core), [
                {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []},
                {"lb_method": {"www": "ROUNDROBIN"}, "disabled": ["east-web"]},
                {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []},
                {"lb_method": {"api": "LEASTCONNECTION", "www": "ROUNDROBIN"}, "disabled": []},
            ])

    def test_disableAndEnable(self):
        self.makeControl(count=1, serving=(0,))
        d = self.control.disableService("east-web")
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        result = self.successResultOf(d)["result"]
        self.assertEqual((result["name"], result["enabled"], result["cores"]), ("east-web", False, [0]))
        self.assertEqual(result["runtime"]["disabled"], ["east-web"])
        d = self.control.enableService("east-web")
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[1])
        self.assertEqual(self.successResultOf(d)["result"]["enabled"], True)
        self.assertEqual(self.monitor.runtime, emptyRuntime())

    def test_invalidChangesReachNoCore(self):
        self.makeControl()
        failures = [
            (self.control.setVServer("nope", "ROUNDROBIN"), NoSuchEntity, "no such vserver nope"),
            (self.control.setVServer("www", "CUSTOMLOAD"), BadValue,
             "vserver www has no custom_load metrics: CUSTOMLOAD needs them in its topology"),
            (self.control.setVServer("www", "FASTEST"), BadValue, None),
            (self.control.disableService("nope"), NoSuchEntity, "no such service nope"),
            (self.control.enableService("nope"), NoSuchEntity, "no such service nope"),
        ]
        for d, kind, message in failures:
            failure = self.failureResultOf(d, kind)
            if message is not None:
                self.assertEqual(str(failure.value), message)
        self.assertEqual(self.applyRuntimeStates(0) + self.applyRuntimeStates(1), [])
        self.assertEqual(self.monitor.runtime, emptyRuntime())

    def test_coreDyingMeanwhileIsLeftOut(self):
        """Its successor gets the state when it joins."""
        self.makeControl()
        d = self.control.setVServer("www", "ROUNDROBIN")
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        self.spawned[1]["protocol"].childConnectionLost(CHILD_AMP_IN)
        endProcess(self.spawned[1])
        self.assertEqual(self.successResultOf(d)["result"]["cores"], [0])

    def test_servingCoreSilentIsAnError(self):
        self.makeControl()
        d = self.control.setVServer("www", "ROUNDROBIN")
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        self.reactor.advance(APPLY_TIMEOUT)
        failure = self.failureResultOf(d, CoreUnavailable)
        self.assertEqual(str(failure.value), f"applied by core 0, but core 1 did not answer within {APPLY_TIMEOUT:g}s")
        # The change stands: core 1 applies it when it reads it.
        self.assertEqual(self.monitor.runtime["lb_method"], {"www": "ROUNDROBIN"})

    def test_servingCoreRefusingIsAnError(self):
        self.makeControl()
        d = self.control.disableService("east-web")
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        answerError(self.spawned[1], asked(self.spawned[1], ApplyRuntime)[0], b"BAD_VALUE", b"no service east-web")
        failure = self.failureResultOf(d, CoreUnavailable)
        self.assertEqual(str(failure.value), "applied by core 0, but core 1 refused it: no service east-web")

    def test_joiningCoreIsNotWaitedFor(self):
        """A core still joining gets the state too, but may be slow to read it."""
        self.makeControl(serving=(0,))
        d = self.control.setVServer("www", "ROUNDROBIN")
        self.assertEqual(len(self.applyRuntimeStates(1)), 1)
        answer(self.spawned[0], asked(self.spawned[0], ApplyRuntime)[0])
        self.reactor.advance(APPLY_TIMEOUT)
        self.assertEqual(self.successResultOf(d)["result"]["cores"], [0])

    def test_noCoreRunning(self):
        self.makeControl(count=1, serving=())
        self.spawned[0]["protocol"].childConnectionLost(CHILD_AMP_IN)
        endProcess(self.spawned[0])
        d = self.control.setVServer("www", "ROUNDROBIN")
        self.assertEqual(self.successResultOf(d)["result"]["cores"], [])
        self.assertEqual(self.monitor.runtime["lb_method"], {"www": "ROUNDROBIN"})


class JoiningCoreTests(ControlFixture, SynchronousTestCase):
    """A core that joins applies the runtime state before it learns the masters, so before its first answer."""

    def hello(self, core: int) -> None:
        self.spawned[core]["protocol"].childDataReceived(4, boxBytes(Hello, core=core))

    def helloAnswers(self, core: int) -> list:
        return [box for box in boxesTo(self.spawned[core]) if b"_answer" in box and b"masters" in box]

    def test_nothingChangedAnswersAtOnce(self):
        self.makeControl(serving=())
        self.hello(0)
        self.assertEqual(asked(self.spawned[0], ApplyRuntime), [])
        self.assertEqual(len(self.helloAnswers(0)), 1)

    def test_runtimeStateBeforeMasters(self):
        self.makeControl(serving=(0,))
        self.monitor.runtime = {"lb_method": {"www": "ROUNDROBIN"}, "disabled": ["east-web"]}
        # Core 1 respawned: it says Hello.
        self.hello(1)
        applies = asked(self.spawned[1], ApplyRuntime)
        self.assertEqual([json.loads(box[b"state"]) for box in applies], [self.monitor.runtime])
        self.assertEqual(self.helloAnswers(1), [])
        answer(self.spawned[1], applies[0])
        [hello] = self.helloAnswers(1)
        self.assertEqual(json.loads(hello[b"masters"]), self.monitor.hub.masters())
        # The runtime state came first on the pipe.
        boxes = boxesTo(self.spawned[1])
        self.assertLess(boxes.index(applies[0]), boxes.index(hello))

    def test_coreFailingToApplyStillJoins(self):
        self.makeControl(serving=(0,))
        self.monitor.runtime = {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []}
        self.hello(1)
        answerError(self.spawned[1], asked(self.spawned[1], ApplyRuntime)[0], b"BAD_VALUE", b"bad state")
        self.assertEqual(len(self.helloAnswers(1)), 1)
        self.flushLoggedErrors()


class InspectionCommandTests(ControlFixture, SynchronousTestCase):
    """show gslb vserver and resolve: asked of one serving core."""

    ROWS = [{"name": "www", "lb_method": "LEASTCONNECTION", "services": []},
            {"name": "api", "lb_method": "CUSTOMLOAD", "services": []}]

    def test_vserversFromLowestServingCore(self):
        self.makeControl(serving=(1,))
        d = self.control.showVServers()
        self.assertEqual(asked(self.spawned[0], CoreInspect), [])
        [box] = asked(self.spawned[1], CoreInspect)
        self.assertEqual(box[b"what"], b"vservers")
        answer(self.spawned[1], box, result=json.dumps(self.ROWS).encode())
        self.assertEqual(self.successResultOf(d), {"rows": self.ROWS})

    def test_oneVServer(self):
        self.makeControl()
        d = self.control.showVServers("api")
        answer(self.spawned[0], asked(self.spawned[0], CoreInspect)[0], result=json.dumps(self.ROWS).encode())
        self.assertEqual(self.successResultOf(d), {"rows": [self.ROWS[1]]})

    def test_unknownVServer(self):
        self.makeControl()
        d = self.control.showVServers("nope")
        answer(self.spawned[0], asked(self.spawned[0], CoreInspect)[0], result=json.dumps(self.ROWS).encode())
        self.assertEqual(str(self.failureResultOf(d, NoSuchEntity).value), "no such vserver nope")

    def test_noServingCore(self):
        self.makeControl(serving=())
        self.assertEqual(str(self.failureResultOf(self.control.showVServers(), CoreUnavailable).value),
                         "no core is serving")

    def test_noCoreAnsweredInTime(self):
        """Serving cores too busy to answer are not reported as absent."""
        self.makeControl()
        d = self.control.showSites()
        self.reactor.advance(STATUS_TIMEOUT)
        self.assertEqual(str(self.failureResultOf(d, CoreUnavailable).value),
                         f"no core answered within {STATUS_TIMEOUT:g}s")

    def test_resolveOnLowestServingCore(self):
        self.makeControl(serving=(1,))
        d = self.control.resolve("www.test.gslb")
        [box] = asked(self.spawned[1], CoreResolve)
        self.assertEqual((box[b"name"], box[b"qtype"], box.get(b"client")), (b"www.test.gslb", b"A", None))
        explained = {"name": "www.test.gslb", "qtype": "A", "answer": ["192.0.2.10"], "rcode": "NOERROR",
                     "method": "ROUNDROBIN", "fallback": False, "candidates": [], "excluded": []}
        answer(self.spawned[1], box, result=json.dumps(explained).encode())
        self.assertEqual(self.successResultOf(d), {"result": {**explained, "core": 1}})

    def test_resolveArgumentsNormalised(self):
        self.makeControl()
        self.control.resolve("www.test.gslb", "28", "2001:DB8::0:1", 1)
        [box] = asked(self.spawned[1], CoreResolve)
        self.assertEqual((box[b"qtype"], box[b"client"]), (b"AAAA", b"2001:db8::1"))
        self.assertEqual(asked(self.spawned[0], CoreResolve), [])

    def test_resolveBadArguments(self):
        self.makeControl()
        self.failureResultOf(self.control.resolve("www.test.gslb", "BOGUS"), BadValue)
        self.failureResultOf(self.control.resolve("www.test.gslb", client="300.1.1.1"), BadValue)
        self.assertEqual(asked(self.spawned[0], CoreResolve), [])

    def test_resolveUnknownOrDownCore(self):
        self.makeControl(serving=(0,))
        self.assertEqual(str(self.failureResultOf(self.control.resolve("x", core=5), CoreUnavailable).value),
                         "no core 5 (cores 0 to 1)")
        self.assertEqual(str(self.failureResultOf(self.control.resolve("x", core=1), CoreUnavailable).value),
                         "core 1 is not serving (it is starting)")

    def test_resolveCoreSilent(self):
        self.makeControl()
        d = self.control.resolve("www.test.gslb")
        self.reactor.advance(RESOLVE_TIMEOUT)
        self.assertEqual(str(self.failureResultOf(d, CoreUnavailable).value),
                         f"core 0 did not answer within {RESOLVE_TIMEOUT:g}s")

    def test_resolveCoreOwesTooManyAnswers(self):
        """
        A core that answers nothing (stopped) is not asked without bound:
        past its quota of outstanding calls, a console's question fails at
        once, and timed-out questions still count until the core answers.
        """
        self.makeControl()
        connection = self.monitor.slots[0].protocol.connection
        connection.maxPendingCalls = 2
        for _ in range(2):
            d = self.control.resolve("www.test.gslb")
            self.reactor.advance(RESOLVE_TIMEOUT)
            self.failureResultOf(d, CoreUnavailable)
        self.assertEqual(connection.pendingCalls, 2)
        d = self.control.resolve("www.test.gslb")
        self.assertIn("core 0 is not answering", str(self.failureResultOf(d, CoreUnavailable).value))
        self.assertEqual(len(asked(self.spawned[0], CoreResolve)), 2)
        # The core wakes up and answers what it owes: questions flow again.
        for box in asked(self.spawned[0], CoreResolve):
            answer(self.spawned[0], box, result=b"{}")
        self.assertEqual(connection.pendingCalls, 0)
        self.control.resolve("www.test.gslb")
        self.assertEqual(len(asked(self.spawned[0], CoreResolve)), 3)

    def test_resolveCoreErrors(self):
        self.makeControl()
        d = self.control.resolve("www.test.gslb")
        answerError(self.spawned[0], asked(self.spawned[0], CoreResolve)[0], b"BAD_VALUE", b"no such type")
        self.assertEqual(str(self.failureResultOf(d, BadValue).value), "no such type")


class ControlErrorsOverAMPTests(ControlFixture, SynchronousTestCase):
    """What a console hears: the error's own words, under the command's error."""

    def call(self, command, **arguments):
        self.makeControl()
        client, server, pump = connectedServerAndClient(lambda: self.control, amp.AMP)
        d = defer.Deferred()
        # Built on before the answer comes, as a console awaiting it does.
        client.callRemote(command, **arguments).chainDeferred(d)
        pump.flush()
        return d

    def test_unknownVServer(self):
        from console.main import _reason

        failure = self.failureResultOf(self.call(SetVServer, name="nope", lbMethod="ROUNDROBIN"), KeyError)
        self.assertEqual(_reason(failure.value), "no such vserver nope")

    def test_badMethod(self):
        from console.main import _reason

        failure = self.failureResultOf(self.call(SetVServer, name="www", lbMethod="CUSTOMLOAD"), ValueError)
        self.assertIn("CUSTOMLOAD needs them", _reason(failure.value))

    def test_unknownService(self):
        from console.main import _reason

        for command in (EnableService, DisableService):
            failure = self.failureResultOf(self.call(command, name="nope"), KeyError)
            self.assertEqual(_reason(failure.value), "no such service nope")

    def test_downCore(self):
        from console.main import _reason

        failure = self.failureResultOf(self.call(Resolve, name="x", core=7), CoreUnavailable)
        self.assertEqual(_reason(failure.value), "no core 7 (cores 0 to 1)")

    def test_vserversWithNoCore(self):
        from console.main import _reason

        self.makeControl(serving=())
        client, server, pump = connectedServerAndClient(lambda: self.control, amp.AMP)
        d = defer.Deferred()
        client.callRemote(ShowVServers).chainDeferred(d)
        pump.flush()
        self.assertEqual(_reason(self.failureResultOf(d, CoreUnavailable).value), "no core is serving")


class TopologyForRuntimeTests(SynchronousTestCase):
    def test_readFromTheCoresConfig(self):
        """Without a topology given, the supervisor reads the one its cores are started with."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(RUNTIME_TOPOLOGY)
        reactor = FakeProcessReactor()
        monitor = CoreMonitor(reactor, 1, coreCommand(path, list, "python"), extraFDs=dict, policy=POLICY, env={})
        monitor.startService()
        self.assertEqual(sorted(monitor.topology.vserverByName), ["api", "www"])

    def test_noTopologyRefusesChanges(self):
        reactor = FakeProcessReactor()
        monitor = CoreMonitor(reactor, 1, lambda core: ["python"], extraFDs=dict, policy=POLICY, env={})
        monitor.startService()
        failure = self.failureResultOf(ControlProtocol(monitor).setVServer("www", "ROUNDROBIN"), CoreUnavailable)
        self.assertIn("could not read the topology", str(failure.value))


class ServingAnnouncementTests(SynchronousTestCase):
    """
    The supervisor tells every core which cores serve (stats.control, from
    sender -1) whenever that set changes, and a joining core as it stands:
    the lowest serving core leads the consolidation rounds.
    """

    def setUp(self):
        self.reactor, self.monitor = makeMonitor(2)
        self.monitor.startService()
        self.spawned = self.reactor.spawned

    def announced(self, index: int) -> list:
        """The serving sets core C{index}'s pipes were told, oldest first (all of its processes)."""
        return [
            json.loads(box[b"body"])["serving"]
            for box in boxesTo(self.spawned[index])
            if box.get(b"_command") == b"Deliver" and box[b"topic"] == b"stats.control"
        ]

    def test_announcedFromTheSupervisor(self):
        ready(self.spawned[0], 0)
        [box] = [b for b in boxesTo(self.spawned[1]) if b.get(b"topic") == b"stats.control" and b"[0]" in b[b"body"]]
        self.assertEqual(box[b"sender"], b"-1")
        # Fire-and-forget, like every hub delivery.
        self.assertNotIn(b"_ask", box)

    def test_eachChangeToEveryCore(self):
        # Nobody serves while the cores join; then they come up one by one.
        self.assertEqual(self.announced(0), [[]])
        self.assertEqual(self.announced(1), [[]])
        ready(self.spawned[1], 1)
        ready(self.spawned[0], 0)
        for index in (0, 1):
            self.assertEqual(self.announced(index), [[], [1], [0, 1]])

    def test_noChangeNoAnnouncement(self):
        ready(self.spawned[0], 0)
        ready(self.spawned[0], 0)
        self.monitor.announceServing()
        self.assertEqual(self.announced(1), [[], [0]])

    def test_deadCoreLeavesTheSetAndItsSuccessorJoins(self):
        ready(self.spawned[0], 0)
        ready(self.spawned[1], 1)
        endProcess(self.spawned[0])
        # The control role moves to core 1 at once.
        self.assertEqual(self.announced(1), [[], [0], [0, 1], [1]])
        self.reactor.advance(POLICY.minDelay)
        successor = self.spawned[2]
        self.assertEqual(successor["args"][-1], "0")
        # The new core 0 is told the set as it stands, the others nothing new.
        self.assertEqual(self.announced(2), [[1]])
        self.assertEqual(self.announced(1), [[], [0], [0, 1], [1]])
        ready(successor, 0)
        self.assertEqual(self.announced(2), [[1], [0, 1]])
        self.assertEqual(self.announced(1)[-1], [0, 1])

    def test_inOrderWithRelayedMessages(self):
        """On a core's pipe the announcement keeps its place among the messages other cores published."""
        ready(self.spawned[1], 1)
        self.spawned[1]["protocol"].childDataReceived(4, boxBytes(Publish, topic="stats.round", body=b"r1"))
        ready(self.spawned[0], 0)
        self.spawned[1]["protocol"].childDataReceived(4, boxBytes(Publish, topic="stats.round", body=b"r2"))
        order = [
            (box[b"topic"], box[b"body"]) for box in boxesTo(self.spawned[0]) if box.get(b"_command") == b"Deliver"
        ]
        self.assertEqual(order, [
            (b"stats.control", b'{"serving": []}'),
            (b"stats.control", b'{"serving": [1]}'),
            (b"stats.round", b"r1"),
            (b"stats.control", b'{"serving": [0, 1]}'),
            (b"stats.round", b"r2"),
        ])

    def test_stoppingAnnouncesNobodyOnce(self):
        ready(self.spawned[0], 0)
        ready(self.spawned[1], 1)
        self.monitor.stopService()
        self.assertEqual(self.announced(1), [[], [0], [0, 1], []])
        for spawn in self.spawned:
            endProcess(spawn, "TERM")
        self.assertEqual(self.announced(1), [[], [0], [0, 1], []])


class ControlFactoryTests(SynchronousTestCase):
    """At most so many consoles at once on one control endpoint."""

    def test_limit(self):
        from twisted.logger import globalLogPublisher

        from gslb_twisted.supervisor import ControlFactory

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        monitor = CoreMonitor(MemoryReactorClock(), 1, coreCommand("t.toml", list, "python"), extraFDs=dict, env={})
        factory = ControlFactory(monitor, maxConnections=2)
        first, second = factory.buildProtocol(None), factory.buildProtocol(None)
        self.assertIsInstance(first, ControlProtocol)
        self.assertIsInstance(second, ControlProtocol)
        self.assertIsNone(factory.buildProtocol(None))
        self.assertIsNone(factory.buildProtocol(None))
        self.assertEqual(factory.refused, 2)
        refusals = [e for e in events if "Refusing control connections" in e.get("log_format", "")]
        self.assertEqual(len(refusals), 1)
        first.makeConnection(StringTransport())
        first.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsInstance(factory.buildProtocol(None), ControlProtocol)
        self.assertIsNone(factory.buildProtocol(None))


class ControlTokenTests(ControlFixture, SynchronousTestCase):
    """
    A control connection that is not a unix socket (TCP) must present the
    appliance's control_token (Authenticate) before anything else.
    """

    def connect(self, token="t0ken"):
        from gslb_twisted.supervisor import ControlProtocol as Control

        self.makeControl()
        self.control = Control(self.monitor, token)
        client, server, pump = connectedServerAndClient(lambda: self.control, amp.AMP)
        return client, server, pump

    def ask(self, client, pump, command, **arguments):
        d = defer.Deferred()
        client.callRemote(command, **arguments).chainDeferred(d)
        pump.flush()
        return d

    def test_commandBeforeTokenCloses(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        client, server, pump = self.connect()
        d = self.ask(client, pump, ShowVServers)
        self.assertTrue(pump.serverIO.disconnecting)
        self.failureResultOf(d)
        self.assertTrue(any("before Authenticate" in e.get("log_format", "") for e in events))

    def test_wrongTokenRefused(self):
        from gslb_twisted.protocol.commands import Authenticate, Unauthenticated

        client, server, pump = self.connect()
        self.failureResultOf(self.ask(client, pump, Authenticate, token="guess"), Unauthenticated)
        self.reactor.advance(0)
        pump.flush()
        self.assertTrue(pump.serverIO.disconnecting)
        self.assertFalse(self.control.authenticated)

    def test_rightTokenThenServed(self):
        from gslb_twisted.protocol.commands import Authenticate

        client, server, pump = self.connect()
        self.assertEqual(self.successResultOf(self.ask(client, pump, Authenticate, token="t0ken")), {})
        # Served: the endpoint's own answer (no such vserver), not a closed connection.
        d = self.ask(client, pump, SetVServer, name="nope", lbMethod="ROUNDROBIN")
        self.failureResultOf(d, KeyError)
        self.assertFalse(pump.serverIO.disconnecting)

    def test_noTokenConfiguredNoneAsked(self):
        """Without a token (unix sockets, tests), commands are served at once."""
        client, server, pump = self.connect(token=None)
        self.failureResultOf(self.ask(client, pump, SetVServer, name="nope", lbMethod="ROUNDROBIN"), KeyError)
        self.assertFalse(pump.serverIO.disconnecting)


class StuckCoreTests(SynchronousTestCase):
    """
    A core that reads nothing from its pipe (stopped, hung) for STUCK_AFTER
    seconds is ended and respawned, so what the hub relays to it does not
    pile up in the supervisor without bound.
    """

    def setUp(self):
        from gslb_twisted.supervisor import STUCK_AFTER

        self.after = STUCK_AFTER
        self.reactor, self.monitor = makeMonitor(2)
        self.monitor.startService()
        self.addCleanup(self.monitor.stopService)
        self.process = self.reactor.spawned[0]["process"]
        self.backlog = self.process.pipes[CHILD_AMP_IN].producer

    def test_stuckCoreEnded(self):
        self.backlog.pauseProducing()
        self.reactor.advance(self.after - 0.1)
        self.assertEqual(self.process.signals, [])
        self.reactor.advance(0.1)
        self.assertEqual(self.process.signals, ["TERM"])
        self.assertEqual(self.monitor.slots[0].state, "stopping")
        # The other core is left alone.
        self.assertEqual(self.reactor.spawned[1]["process"].signals, [])

    def test_drainedInTimeKept(self):
        self.backlog.pauseProducing()
        self.reactor.advance(self.after / 2)
        self.backlog.resumeProducing()
        self.reactor.advance(self.after * 2)
        self.assertEqual(self.process.signals, [])
        # Full again later: a new period starts.
        self.backlog.pauseProducing()
        self.reactor.advance(self.after)
        self.assertEqual(self.process.signals, ["TERM"])
