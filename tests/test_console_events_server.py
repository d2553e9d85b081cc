"""
Events pushed to subscribed consoles, the server side: the pure builders,
the subscribers' fan-out and toolbar with a Clock, the appliance's control
endpoint over AMP with fake cores, and the site emulator's.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import Logger, eventAsJSON
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gslb_twisted.consolidator import counterKey
from gslb_twisted.core.gslb import CoreGSLB
from gslb_twisted.logs import (
    SITE_DOWN_FORMAT,
    SITE_UP_FORMAT,
    ConsoleSubscribers,
    describeAddress,
    publishCoreEvent,
    siteTransitionEvent,
)
from gslb_twisted.protocol.commands import ConsoleEvent, CoreInspect, CoreReady, LogEvent, Subscribe, Unsubscribe
from gslb_twisted.site.emulator import SiteControlProtocol, SiteEmulatorService
from gslb_twisted.site.events import mepEvent, scenarioEvent, serviceEvent, siteToolbar, siteToolbarText
from gslb_twisted.supervisor import (
    STATUS_TIMEOUT,
    ControlProtocol,
    applianceToolbar,
    applianceToolbarText,
    coreEvent,
    masterEvent,
    processEndReason,
)

from tests.test_site_emulator import FakeSession, topology as siteTopology
from tests.test_supervisor import ControlFixture, answer, asked, boxBytes, endProcess


class RecordingConsole(amp.AMP):
    """The console's end: records every pushed event."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    @ConsoleEvent.responder
    def consoleEvent(self, event: dict) -> dict:
        self.events.append(event)
        return {}

    def kinds(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["kind"] == kind]


def connect(server, host=UNIXAddress("gslb.ctl")):
    """A console connected to C{server} over an in-memory AMP connection."""
    return iosim.connectedServerAndClient(
        lambda: server, RecordingConsole,
        serverTransportFactory=lambda p: iosim.FakeTransport(p, True, hostAddress=host),
    )


def outcome(pump, d):
    """The result (or Failure) of a call, once the pump moved its answer."""
    results: list = []
    d.addBoth(results.append)
    pump.flush()
    return results[0]


# --- the pure parts ----------------------------------------------------------------


class SiteTransitionTests(SynchronousTestCase):
    def test_downAndUp(self):
        down = siteTransitionEvent({"log_format": SITE_DOWN_FORMAT, "site": "east", "reason": "silent",
                                    "core": 1, "log_time": 100.5})
        self.assertEqual(down, {"time": 100.5, "kind": "site", "text": "site east is DOWN (silent) [core 1]",
                                "site": "east", "state": "DOWN", "reason": "silent", "core": 1})
        up = siteTransitionEvent({"log_format": SITE_UP_FORMAT, "site": "east", "core": 0, "log_time": 7.0})
        self.assertEqual((up["state"], up["reason"], up["text"]), ("UP", None, "site east is UP [core 0]"))

    def test_otherEventsAreNotTransitions(self):
        # Recognised by format and field, never by the rendered text.
        for event in (
            {"log_format": "site {site} lost its master, core {core}", "site": "east", "core": 1},
            {"log_format": "{text}", "text": "site east is DOWN (silent)"},
            {"log_format": SITE_UP_FORMAT},
            {"log_format": SITE_UP_FORMAT, "site": 3},
        ):
            self.assertIsNone(siteTransitionEvent(event))

    def test_theCoresOwnTransitionsAreRecognised(self):
        """What CoreGSLB._logTransition logs, forwarded and published, is a site event."""
        logged: list = []

        class Master:
            log = Logger(observer=logged.append)

        CoreGSLB._logTransition(Master(), "east", "DOWN", "silent")
        CoreGSLB._logTransition(Master(), "east", "UP", None)
        published: list = []
        events = [siteTransitionEvent(publishCoreEvent(eventAsJSON(e), 1, published.append)) for e in logged]
        self.assertEqual([(e["site"], e["state"], e["reason"], e["core"]) for e in events],
                         [("east", "DOWN", "silent", 1), ("east", "UP", None, 1)])


class BuilderTests(SynchronousTestCase):
    def test_master(self):
        self.assertEqual(masterEvent(5.0, "east", 1, 3, previous=0)["text"],
                         "core 1 masters site east (epoch 3), taken over from core 0")
        self.assertEqual(masterEvent(5.0, "east", 1, 1)["text"], "core 1 masters site east (epoch 1)")
        self.assertEqual(masterEvent(5.0, "east", None, 3, 1, "core ended")["text"],
                         "site east has no master: core 1 ended")
        released = masterEvent(5.0, "east", None, 3, 1, "released")
        self.assertEqual(released, {"time": 5.0, "kind": "master", "text": "site east has no master: core 1 released it",
                                    "site": "east", "core": None, "epoch": 3, "previous_core": 1,
                                    "reason": "released"})

    def test_core(self):
        died = coreEvent(9.0, 1, "died", pid=42, reason="killed by signal 9", lifetime=12.34, restartIn=0.0)
        self.assertEqual(died["text"], "core 1 died (killed by signal 9) after 12.3s, respawn in 0.0s")
        self.assertEqual((died["kind"], died["core"], died["state"], died["pid"], died["lifetime"], died["restart_in"]),
                         ("core", 1, "died", 42, 12.34, 0.0))
        self.assertEqual(coreEvent(9.0, 1, "respawned", pid=43)["text"], "core 1 respawned, pid 43")
        self.assertEqual(coreEvent(9.0, 1, "serving", pid=43)["text"], "core 1 is serving (pid 43)")

    def test_applianceToolbar(self):
        queries = counterKey("dns", "-", "queries")
        view = {"totals": {queries: 1300}, "previous": {queries: 300}, "interval": 0.5}
        cores = [{"state": "up"}, {"state": "down"}]
        sites = [{"state": "UP"}, {"state": "DOWN"}, {"state": "UP"}]
        state = applianceToolbar(cores, sites, view)
        self.assertEqual(state, {"cores_up": 1, "cores": 2, "sites_up": 2, "sites_down": 1, "sites": 3,
                                 "qps": 2000.0})
        self.assertEqual(applianceToolbarText(state), "cores 1/2 up, sites 2 up 1 down, 2000 q/s")
        # Unknown is null, not zero; before two rounds there is no rate.
        unknown = applianceToolbar(cores, None, {"totals": {queries: 5}})
        self.assertEqual((unknown["sites_up"], unknown["sites_down"], unknown["qps"]), (None, None, None))
        self.assertEqual(applianceToolbarText(unknown), "cores 1/2 up, sites ?, ? q/s")

    def test_processEndReason(self):
        from twisted.internet import error
        from twisted.python.failure import Failure

        self.assertEqual(processEndReason(Failure(error.ProcessTerminated(signal=9))), "killed by signal 9")
        self.assertEqual(processEndReason(Failure(error.ProcessTerminated(exitCode=3))), "exit code 3")
        self.assertEqual(processEndReason(Failure(error.ProcessDone(0))), "exit code 0")

    def test_siteBuilders(self):
        self.assertEqual(serviceEvent(1.0, "east", "east-web", "DOWN", "scenario")["text"],
                         "service east-web is DOWN (from the scenario)")
        self.assertEqual(mepEvent(1.0, "east", "gslb1", "inbound", True)["text"], "appliance gslb1 connected (MEP inbound)")
        lost = mepEvent(1.0, "east", "gslb1", "inbound", False, "silent")
        self.assertEqual((lost["text"], lost["state"]), ("appliance gslb1 lost (MEP inbound: silent)", "down"))
        started = scenarioEvent(1.0, "east", "surge", "started", 2, replaced="calm")
        self.assertEqual(started["text"], "scenario surge started (2 events), replacing calm")
        state = siteToolbar("east", {"a": {"state": "UP"}, "b": {"state": "DOWN"}}, ["gslb1", "gslb1"], 2, "surge")
        self.assertEqual(state, {"site": "east", "services_up": 1, "services_down": 1, "services": 2,
                                 "appliances_connected": 1, "appliances": 2, "scenario": "surge"})
        self.assertEqual(siteToolbarText(state), "site east: services 1 up 1 down, appliances 1/2, scenario surge")

    def test_describeAddress(self):
        self.assertEqual(describeAddress(UNIXAddress("gslb.ctl")), "unix:gslb.ctl")
        self.assertEqual(describeAddress(UNIXAddress(b"/run/gslb.ctl")), "unix:/run/gslb.ctl")
        self.assertEqual(describeAddress(IPv4Address("TCP", "127.0.0.1", 9000)), "tcp:9000:interface=127.0.0.1")
        self.assertEqual(describeAddress(IPv6Address("TCP", "::1", 9000)), "tcp6:9000:interface=\\:\\:1")
        self.assertIsNone(describeAddress(None))


# --- the fan-out and the toolbar ---------------------------------------------------------


class RecordingConnection:
    def __init__(self, fails=False):
        self.calls: list = []
        self.fails = fails

    def callRemote(self, command, **arguments):
        if self.fails:
            raise RuntimeError("connection lost")
        self.calls.append((command, arguments))

    def events(self):
        return [arguments["event"] for command, arguments in self.calls if command is ConsoleEvent]


class SubscribersTests(SynchronousTestCase):
    def make(self, toolbar=None):
        self.clock = Clock()
        self.asked = 0

        def state():
            self.asked += 1
            return {"cores_up": 1}

        return ConsoleSubscribers(self.clock, toolbar or state, lambda s: f"up {s['cores_up']}")

    def test_eventsToEverySubscriber(self):
        subscribers = self.make()
        first, second = RecordingConnection(), RecordingConnection()
        subscribers.subscribe(first, "unix:a")
        subscribers.subscribe(second, "unix:b")
        subscribers.emit({"kind": "site", "text": "x"})
        self.assertEqual(first.events(), [{"kind": "site", "text": "x"}])
        self.assertEqual(second.events(), [{"kind": "site", "text": "x"}])

    def test_toolbarEverySecondOnlyWhileSubscribed(self):
        subscribers = self.make()
        self.clock.advance(5)
        self.assertEqual((self.asked, self.clock.getDelayedCalls()), (0, []))
        console = RecordingConnection()
        subscribers.subscribe(console, "unix:gslb.ctl")
        subscribers.subscribe(console, "unix:gslb.ctl")  # twice: one subscription
        self.clock.advance(1)
        self.clock.advance(1)
        toolbars = console.events()
        self.assertEqual(toolbars, [
            {"time": 6.0, "kind": "toolbar", "text": "up 1", "cores_up": 1, "control": "unix:gslb.ctl"},
            {"time": 7.0, "kind": "toolbar", "text": "up 1", "cores_up": 1, "control": "unix:gslb.ctl"},
        ])
        subscribers.unsubscribe(console)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(5)
        self.assertEqual(self.asked, 2)

    def test_oneQuestionAtATime(self):
        pending: list = []

        def slow():
            pending.append(defer.Deferred())
            return pending[-1]

        subscribers = self.make(slow)
        console = RecordingConnection()
        subscribers.subscribe(console)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(len(pending), 1)
        pending[0].callback({"cores_up": 2})
        self.assertEqual([e["cores_up"] for e in console.events()], [2])
        self.clock.advance(1)
        self.assertEqual(len(pending), 2)

    def test_toolbarFailureIsLoggedAndTheNextTickTriesAgain(self):
        answers = [defer.fail(RuntimeError("boom")), defer.succeed({"cores_up": 1})]
        subscribers = self.make(lambda: answers.pop(0))
        console = RecordingConnection()
        subscribers.subscribe(console)
        self.clock.advance(1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.advance(1)
        self.assertEqual(len(console.events()), 1)

    def test_brokenConnectionDropped(self):
        subscribers = self.make()
        broken, live = RecordingConnection(fails=True), RecordingConnection()
        subscribers.subscribe(broken)
        subscribers.subscribe(live)
        subscribers.emit({"kind": "core"})
        self.assertEqual(list(subscribers.subscribers), [live])
        self.assertEqual(len(live.events()), 1)

    def test_state(self):
        subscribers = self.make()
        self.assertEqual(self.successResultOf(subscribers.state("unix:x")), {"cores_up": 1, "control": "unix:x"})


# --- the appliance's control endpoint ---------------------------------------------------


SITES = [{"name": "east", "state": "UP"}, {"name": "west", "state": "DOWN"}]


class ApplianceEventsTests(ControlFixture, SynchronousTestCase):
    """Subscribe on the supervisor's control endpoint, with two fake cores."""

    def subscribed(self, serving=(0, 1)):
        self.makeControl(serving=serving)
        self.console, self.server, self.pump = connect(ControlProtocol(self.monitor))
        d = self.console.callRemote(Subscribe)
        self.pump.flush()
        return d

    def answerToolbar(self, core=0, sites=SITES, view=None):
        """Core C{core} answers the toolbar's questions (sites, then stats)."""
        queries = counterKey("dns", "-", "queries")
        view = view or {"totals": {queries: 600}, "previous": {queries: 100}, "interval": 0.5}
        answered = self.__dict__.setdefault("answered", set())
        boxes = [box for box in asked(self.spawned[core], CoreInspect) if box[b"_ask"] not in answered]
        for box in boxes:
            answer(self.spawned[core], box, result=json.dumps(sites if box[b"what"] == b"sites" else view).encode())
            answered.add(box[b"_ask"])
        self.pump.flush()
        return [box[b"what"] for box in boxes]

    def test_subscribeAnswersTheToolbar(self):
        d = self.subscribed()
        self.assertEqual(self.answerToolbar(), [b"sites", b"stats"])
        self.assertEqual(self.successResultOf(d)["state"], {
            "cores_up": 2, "cores": 2, "sites_up": 1, "sites_down": 1, "sites": 2, "qps": 1000.0,
            "control": "unix:gslb.ctl",
        })
        # Only core 0 (the lowest serving one) was asked.
        self.assertEqual(asked(self.spawned[1], CoreInspect), [])

    def test_noServingCore(self):
        d = self.subscribed(serving=())
        state = self.successResultOf(d)["state"]
        self.assertEqual((state["cores_up"], state["cores"], state["sites_up"], state["qps"]), (0, 2, None, None))

    def test_silentCoreLeavesTheToolbarUnknown(self):
        d = self.subscribed()
        self.reactor.advance(STATUS_TIMEOUT)
        self.pump.flush()
        state = self.successResultOf(d)["state"]
        self.assertEqual((state["cores_up"], state["sites_up"], state["qps"]), (2, None, None))

    def test_toolbarEverySecond(self):
        self.subscribed()
        self.answerToolbar()
        self.reactor.advance(1.0)
        self.answerToolbar(sites=[{"name": "east", "state": "DOWN"}, {"name": "west", "state": "DOWN"}])
        [toolbar] = self.console.kinds("toolbar")
        self.assertEqual((toolbar["sites_down"], toolbar["qps"], toolbar["control"], toolbar["time"]),
                         (2, 1000.0, "unix:gslb.ctl", 1.0))
        self.assertEqual(toolbar["text"], "cores 2/2 up, sites 0 up 2 down, 1000 q/s")

    def test_siteTransitionsFromTheMastersLog(self):
        self.subscribed()
        down = eventAsJSON({"log_format": SITE_DOWN_FORMAT, "site": "east", "reason": "silent",
                            "log_namespace": "gslb_twisted.core.gslb.CoreGSLB", "log_time": 50.0})
        other = eventAsJSON({"log_format": "site {site} sent a delta", "site": "east", "log_time": 50.0})
        for text in (other, down):
            self.spawned[1]["protocol"].childDataReceived(4, boxBytes(LogEvent, event=text))
        self.pump.flush()
        self.assertEqual([(e["kind"], e["site"], e["state"], e["core"]) for e in self.console.events],
                         [("site", "east", "DOWN", 1)])

    def test_masterChanges(self):
        self.subscribed()
        self.monitor.hub.claim("east", 0)
        self.monitor.hub.booting = False
        self.monitor.hub.claim("east", 1, takeover=True)
        self.monitor.hub.release("east", 1, 2)
        self.pump.flush()
        self.assertEqual([(e["site"], e["core"], e["epoch"], e["previous_core"]) for e in self.console.kinds("master")],
                         [("east", 0, 1, None), ("east", 1, 2, 0), ("east", None, 2, 1)])

    def test_coreDiesIsRespawnedAndServes(self):
        self.subscribed()
        self.monitor.hub.claim("west", 1)
        self.reactor.advance(0.5)
        endProcess(self.spawned[1])
        self.reactor.advance(1.0)  # died young: respawned after the minimum delay
        self.spawned[2]["protocol"].childDataReceived(
            4, boxBytes(CoreReady, core=1, pid=self.spawned[2]["process"].pid))
        self.pump.flush()
        events = [e for e in self.console.events if e["kind"] in ("core", "master")]
        self.assertEqual([(e["kind"], e.get("state"), e["core"]) for e in events], [
            ("master", None, 1),
            ("master", None, None),
            ("core", "died", 1),
            ("core", "respawned", 1),
            ("core", "serving", 1),
        ])
        died = events[2]
        self.assertEqual((died["lifetime"], died["restart_in"], died["reason"]), (0.5, 1.0, "killed by signal 9"))
        self.assertEqual(events[3]["pid"], self.spawned[2]["process"].pid)

    def test_unsubscribeAndConnectionLoss(self):
        self.subscribed()
        self.assertEqual(len(self.monitor.events.subscribers), 1)
        self.console.callRemote(Unsubscribe)
        self.pump.flush()
        self.assertEqual(self.monitor.events.subscribers, {})
        self.console.callRemote(Subscribe)
        self.pump.flush()
        self.console.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.monitor.events.subscribers, {})
        # Nothing is asked of the cores once nobody listens.
        before = len(asked(self.spawned[0], CoreInspect))
        self.reactor.advance(5.0)
        self.assertEqual(len(asked(self.spawned[0], CoreInspect)), before)

    def test_stoppingStopsTheToolbar(self):
        self.subscribed()
        self.monitor.stopService()
        self.assertIsNone(self.monitor.events._loop)


# --- a site emulator's control endpoint ------------------------------------------------------


class SiteEventsTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.emulator = SiteEmulatorService(self.clock, siteTopology(), "east", sessionFactory=FakeSession)
        self.emulator.startService()
        self.addCleanup(self.emulator.stopService)
        self.console, self.server, self.pump = connect(SiteControlProtocol(self.emulator), UNIXAddress("east.ctl"))
        self.state = outcome(self.pump, self.console.callRemote(Subscribe))["state"]

    def test_state(self):
        self.assertEqual(self.state, {"site": "east", "services_up": 2, "services_down": 0, "services": 2,
                                      "appliances_connected": 0, "appliances": 1, "scenario": None,
                                      "control": "unix:east.ctl"})

    def test_serviceStateChanges(self):
        self.emulator.setService("east-web", {"state": "DOWN"})
        self.emulator.setService("east-web", {"connections": 5})  # no state change: no event
        self.pump.flush()
        self.assertEqual([(e["service"], e["state"], e["source"]) for e in self.console.events],
                         [("east-web", "DOWN", "pin")])

    def test_appliancesConnectedAndLost(self):
        session = self.emulator.buildSession("inbound")
        session.establish("gslb1")
        self.clock.advance(1.0)
        session.lose("silent")
        self.pump.flush()
        mep = self.console.kinds("mep")
        self.assertEqual([(e["peer"], e["direction"], e["state"], e["reason"]) for e in mep],
                         [("gslb1", "inbound", "up", None), ("gslb1", "inbound", "down", "silent")])
        [toolbar] = self.console.kinds("toolbar")
        self.assertEqual((toolbar["appliances_connected"], toolbar["control"]), (1, "unix:east.ctl"))

    def test_connectionLossUnsubscribes(self):
        self.console.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.emulator.consoles.subscribers, {})


# --- a real appliance and real site emulators --------------------------------------------------

# east (lower address) dials the appliance; the appliance dials north.
EVENTS_TOPOLOGY = """
[appliance]
name = "gslbtest"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
metrics_interval = 0.3
dead_interval = 1.0
consolidation_interval = 0.3

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
  [site.emulator]

[[site]]
name = "north"
ip = "127.0.0.8"
mep_port = NORTH_PORT
  [site.emulator]

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "north-web"
site = "north"
ip = "203.0.113.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
services = ["east-web", "north-web"]
"""


class ApplianceEventsIntegrationTests(TestCase):
    """A console subscribed to a real 2-core appliance hears sites, masters and cores change."""

    timeout = 120

    async def test_pushedEvents(self):
        import signal

        from twisted.internet import reactor
        from twisted.internet.endpoints import clientFromString, connectProtocol

        from tests.support import Appliance, SiteProcess, freePort, poll

        text = EVENTS_TOPOLOGY
        for site, ip in (("EAST", "127.0.0.2"), ("NORTH", "127.0.0.8")):
            text = text.replace(f"{site}_PORT", str(freePort(ip)))
        appliance = Appliance(self, text, cores=2)
        sites = {name: SiteProcess(self, appliance.config, name) for name in ("east", "north")}
        sites["north"].start()
        appliance.start()
        await appliance.waitUntilServing()

        console = await connectProtocol(clientFromString(reactor, appliance.control), RecordingConsole())
        self.addCleanup(console.transport.loseConnection)
        state = (await console.callRemote(Subscribe))["state"]
        self.assertEqual((state["cores_up"], state["cores"], state["sites"], state["control"]),
                         (2, 2, 2, appliance.control))

        def told(kind, **fields):
            return [e for e in console.events if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())]

        # A site that connects: it gets a master, and its master says it is UP.
        sites["east"].start()
        await poll(lambda: told("site", site="east", state="UP"), 30, what="site east UP pushed")
        self.assertTrue(told("master", site="east"))
        await poll(lambda: told("toolbar", sites_up=2, cores_up=2), 10, what="a toolbar with both sites up")

        # A site emulator killed: its master declares it DOWN.
        await sites["east"].stop(signal.SIGKILL)
        await poll(lambda: told("site", site="east", state="DOWN"), 30, what="site east DOWN pushed")
        self.assertIsNotNone(told("site", site="east", state="DOWN")[0]["core"])

        # A core killed: died, respawned, serving; its sites change master.
        cores = await appliance.console("show cores")
        victim = cores[1]
        os.kill(victim["pid"], signal.SIGKILL)
        for state in ("died", "respawned", "serving"):
            await poll(lambda: told("core", core=1, state=state), 30, what=f"core 1 {state} pushed")
        self.assertLessEqual(len(console.events), 1000)

        await appliance.stop()
        appliance.assertCleanExit()
