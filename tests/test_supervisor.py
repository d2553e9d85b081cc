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
from gslb_twisted.supervisor import CHILD_AMP_IN, CoreMonitor, Hub, unixModeControl


class FakeProcess:
    """A spawned process as the supervisor sees it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
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
        boxes = amp.parse(io.BytesIO(delivered))
        self.assertEqual([b[b"body"] for b in boxes], [b"m0", b"m1", b"m2"])
        self.assertEqual({b[b"sender"] for b in boxes}, {b"0"})
        self.assertEqual(reactor.spawned[0]["process"].written, [])


class ControlEndpointTests(SynchronousTestCase):
    def test_unixSocketPrivateByDefault(self):
        self.assertEqual(unixModeControl("unix:gslb.ctl"), "unix:gslb.ctl:mode=600")
        self.assertEqual(unixModeControl("unix:x.ctl:mode=660"), "unix:x.ctl:mode=660")
        self.assertEqual(unixModeControl("tcp:5301:interface=127.0.0.1"), "tcp:5301:interface=127.0.0.1")


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
