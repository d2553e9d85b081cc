"""
Scenarios on the site emulator: the C{[site.emulator] scenarios} key, the
model's scenario layer, and C{set scenario} / C{show scenarios} / C{unset
scenario} on the emulator with a Clock and over AMP.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import ConfigError, TimelineEvent, parseTopology
from gslb_twisted.protocol.commands import ConsoleEvent, SetScenario, ShowScenarios, StopScenario, Subscribe
from gslb_twisted.site.emulator import SiteControlProtocol, SiteEmulatorService
from gslb_twisted.site.model import SiteModel, scenarioRow

from tests.test_site_emulator import FakeSession

SCENARIOS = {
    "surge": [
        {"at": 0, "service": "east-web", "connections": 900},
        {"at": 5, "service": "east-web", "state": "DOWN"},
    ],
    "calm": [{"at": 0, "service": "east-web6", "load": 5.0}],
}


def topology(scenarios=SCENARIOS, timeline=()):
    emulator = {"control": "unix:east.ctl", "scenarios": scenarios}
    if timeline:
        emulator["timeline"] = list(timeline)
    return parseTopology(
        {
            "appliance": {"name": "gslb1", "ip": "127.0.0.5", "mep_secret": "s3cret", "metrics_interval": 1.0,
                          "dead_interval": 3.0},
            "site": [
                {"name": "east", "ip": "127.0.0.2", "emulator": emulator},
                {"name": "west", "ip": "127.0.0.3"},
            ],
            "service": [
                {"name": "east-web", "site": "east", "ip": "192.0.2.10"},
                {"name": "east-web6", "site": "east", "ip": "2001:db8::10"},
                {"name": "west-web", "site": "west", "ip": "198.51.100.10"},
            ],
        },
        "test.toml",
    )


class ConfigTests(SynchronousTestCase):
    def error(self, scenarios) -> str:
        return str(self.assertRaises(ConfigError, topology, scenarios))

    def test_parsed(self):
        scenarios = topology().siteByName["east"].emulator.scenarios
        self.assertEqual(sorted(scenarios), ["calm", "surge"])
        self.assertEqual(scenarios["surge"][1], TimelineEvent(at=5, service="east-web", values={"state": "DOWN"}))

    def test_noneByDefault(self):
        self.assertEqual(dict(topology(scenarios={}).siteByName["east"].emulator.scenarios), {})

    def test_errorsNameFileTableAndKey(self):
        self.assertEqual(
            self.error([1]),
            "test.toml: [[site]] 'east' emulator: key 'scenarios': "
            "expected a table of name = [ { at, service, ... }, ... ], found [1] (array)",
        )
        self.assertIn("test.toml: [[site]] 'east' emulator: key 'scenarios.surge': "
                      "expected a non-empty array of { at, service, ... } tables", self.error({"surge": []}))
        self.assertEqual(
            self.error({"surge": [{"at": 0, "service": "east-web", "colour": "red"}]}),
            "test.toml: [[site]] 'east' emulator scenarios.surge[0]: key 'colour': unknown key (known keys: at, "
            "bandwidth, connections, load, packets, response_time, service, state), found 'red' (string)",
        )
        self.assertIn("test.toml: [[site]] 'east' emulator scenarios.surge[0]: key 'at': "
                      "expected a number of seconds from the scenario's start",
                      self.error({"surge": [{"at": -1, "service": "east-web", "load": 1}]}))
        self.assertEqual(
            self.error({"surge": [{"at": 0, "service": "west-web", "load": 1}]}),
            "test.toml: [[site]] 'east' emulator scenarios.surge[0]: key 'service': "
            "expected a [[service]] of this site (east-web, east-web6), found 'west-web' (string)",
        )

    def test_namesAreOneWord(self):
        self.assertEqual(
            self.error({"big surge": SCENARIOS["surge"]}),
            "test.toml: [[site]] 'east' emulator: key 'scenarios.big surge': expected a scenario name of letters, "
            "digits, '-', '_' and '.' (one word for `set scenario NAME`), found 'big surge' (string)",
        )

    def test_timelineErrorsNameTheirTable(self):
        e = self.assertRaises(ConfigError, topology, {}, [{"at": 0, "service": "east-web", "colour": 1}])
        self.assertTrue(str(e).startswith("test.toml: [[site]] 'east' emulator timeline[0]: key 'colour'"), str(e))


def event(at, service="east-web", **values):
    return TimelineEvent(at=at, service=service, values=values)


class ModelTests(SynchronousTestCase):
    def model(self, timeline=()):
        services = topology().services
        model = SiteModel([s for s in services if s.site == "east"], timeline=timeline)
        model.begin(100.0)
        return model

    def test_scenarioAboveTimelineBelowPins(self):
        model = self.model(timeline=[event(0, connections=10, load=1.0)])
        model.startScenario("surge", [event(0, connections=900, load=50.0)], 100.0)
        self.assertEqual((model.effective("east-web")["connections"], model.source("east-web", "connections")),
                         (900, "scenario"))
        model.pin("east-web", {"connections": 3})
        self.assertEqual((model.effective("east-web")["connections"], model.source("east-web", "connections")),
                         (3, "pin"))
        self.assertEqual(model.source("east-web", "load"), "scenario")
        model.stopScenario()
        self.assertEqual((model.effective("east-web")["load"], model.source("east-web", "load")), (1.0, "timeline"))

    def test_timesCountFromTheStart(self):
        model = self.model()
        model.startScenario("surge", [event(0, connections=900), event(5, state="DOWN")], 130.0)
        self.assertEqual(model.nextScenarioEvent(), 135.0)
        self.assertEqual(model.applyScenario(134.9), 0)
        self.assertEqual(model.effective("east-web")["state"], "UP")
        model.advance(135.0)  # the tick applies what is due too
        self.assertEqual(model.effective("east-web")["state"], "DOWN")
        self.assertIsNone(model.nextScenarioEvent())
        self.assertTrue(model.scenario.finished())

    def test_replacingReleasesTheOldValues(self):
        model = self.model()
        model.startScenario("surge", [event(0, connections=900)], 100.0)
        replaced = model.startScenario("calm", [event(0, "east-web6", load=5.0)], 101.0)
        self.assertEqual(replaced, "surge")
        self.assertEqual(model.effective("east-web")["connections"], 0)
        self.assertEqual(model.effective("east-web6")["load"], 5.0)

    def test_rows(self):
        model = self.model()
        self.assertEqual(scenarioRow("surge", 2, None, 0.0), {
            "name": "surge", "events": 2, "running": False, "elapsed": None, "pending": None, "finished": None,
            "started_at": None,
        })
        model.startScenario("surge", [event(0, connections=900), event(5, state="DOWN")], 100.0)
        self.assertEqual(scenarioRow("surge", 2, model.scenario, 102.5), {
            "name": "surge", "events": 2, "running": True, "elapsed": 2.5, "pending": 1, "finished": False,
            "started_at": 100.0,
        })
        self.assertFalse(scenarioRow("calm", 1, model.scenario, 102.5)["running"])


class EmulatorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.emulator = SiteEmulatorService(self.clock, topology(), "east", sessionFactory=FakeSession)
        self.emulator.startService()
        self.addCleanup(self.emulator.stopService)
        self.session = self.emulator.buildSession("inbound")
        self.session.establish("gslb1")

    def deltas(self):
        return [sent[1:] for sent in self.session.sent if sent[0] == "DELTA"]

    def test_startsNowAndPublishesAtOnce(self):
        self.clock.advance(0.3)  # between two ticks
        row = self.emulator.setScenario("surge")
        self.assertEqual((row["name"], row["running"], row["elapsed"], row["pending"], row["replaced"]),
                         ("surge", True, 0.0, 1, None))
        self.assertEqual(self.deltas(), [(2, 1, {"east-web": {"connections": 900}})])
        # The next event exactly 5 s later, not at the following tick.
        self.clock.advance(4.9)
        self.assertEqual(len(self.deltas()), 1)
        self.clock.advance(0.1)
        self.assertEqual(self.deltas()[-1], (3, 2, {"east-web": {"state": "DOWN"}}))
        self.assertEqual([r["running"] for r in self.emulator.describeScenarios()], [False, True])
        self.assertEqual(self.emulator.model.row("east-web")["sources"]["state"], "scenario")

    def test_replacingCancelsThePendingEvents(self):
        self.emulator.setScenario("surge")
        self.clock.advance(2.0)
        row = self.emulator.setScenario("calm")
        self.assertEqual(row["replaced"], "surge")
        self.assertEqual(self.deltas()[-1], (3, 2, {"east-web": {"connections": 0}, "east-web6": {"load": 5.0}}))
        self.clock.advance(10.0)
        self.assertEqual(self.emulator.model.effective("east-web")["state"], "UP")
        self.assertEqual(len(self.deltas()), 2)

    def test_consolePinsStillWin(self):
        self.emulator.setService("east-web", {"state": "UP"})
        self.emulator.setScenario("surge")
        self.clock.advance(5.0)
        self.assertEqual(self.emulator.model.effective("east-web")["state"], "UP")

    def test_stop(self):
        self.emulator.setScenario("surge")
        row = self.emulator.stopScenario()
        self.assertEqual((row["name"], row["running"]), ("surge", False))
        self.assertEqual(self.deltas()[-1], (3, 2, {"east-web": {"connections": 0}}))
        self.clock.advance(10.0)
        self.assertEqual(self.emulator.model.effective("east-web")["state"], "UP")
        e = self.assertRaises(KeyError, self.emulator.stopScenario)
        self.assertEqual(str(e), "no scenario is running at site east")

    def test_unknownScenario(self):
        e = self.assertRaises(KeyError, self.emulator.setScenario, "storm")
        self.assertEqual(str(e), "no scenario 'storm' at site east (its scenarios: calm, surge)")

    def test_stopServiceCancelsTheTimer(self):
        self.emulator.setScenario("surge")
        self.emulator.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RecordingConsole(amp.AMP):
    def __init__(self):
        super().__init__()
        self.events = []

    @ConsoleEvent.responder
    def consoleEvent(self, event):
        self.events.append(event)
        return {}


class ControlTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.emulator = SiteEmulatorService(self.clock, topology(), "east", sessionFactory=FakeSession)
        self.emulator.startService()
        self.addCleanup(self.emulator.stopService)
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: SiteControlProtocol(self.emulator), RecordingConsole)

    def call(self, command, **arguments):
        outcome = []
        self.client.callRemote(command, **arguments).addBoth(outcome.append)
        self.pump.flush()
        return outcome[0]

    def test_setShowStop(self):
        rows = self.call(ShowScenarios)["rows"]
        self.assertEqual([(r["name"], r["events"], r["running"], r["elapsed"]) for r in rows],
                         [("calm", 1, False, None), ("surge", 2, False, None)])
        row = self.call(SetScenario, name="surge")["row"]
        self.assertEqual((row["name"], row["running"], row["replaced"]), ("surge", True, None))
        self.clock.advance(2.0)
        rows = self.call(ShowScenarios)["rows"]
        self.assertEqual((rows[1]["running"], rows[1]["elapsed"], rows[1]["pending"]), (True, 2.0, 1))
        self.assertEqual(self.call(StopScenario)["row"]["running"], False)

    def test_errors(self):
        failure = self.call(SetScenario, name="storm")
        self.assertIsInstance(failure, Failure)
        self.assertTrue(failure.check(KeyError))
        self.assertEqual(failure.value.args[0], "no scenario 'storm' at site east (its scenarios: calm, surge)")
        failure = self.call(StopScenario)
        self.assertTrue(failure.check(KeyError))
        self.assertEqual(failure.value.args[0], "no scenario is running at site east")

    def test_subscribersHearTheScenario(self):
        self.call(Subscribe)
        self.call(SetScenario, name="surge")
        self.clock.advance(5.0)
        self.pump.flush()
        self.call(SetScenario, name="calm")
        self.call(StopScenario)
        told = [(e["kind"], e.get("scenario") or e.get("service"), e["state"])
                for e in self.client.events if e["kind"] != "toolbar"]
        self.assertEqual(told, [
            ("scenario", "surge", "started"),
            ("service", "east-web", "DOWN"),
            ("scenario", "surge", "finished"),
            ("scenario", "calm", "started"),
            ("service", "east-web", "UP"),
            ("scenario", "calm", "finished"),
            ("scenario", "calm", "stopped"),
        ])
        toolbar = [e for e in self.client.events if e["kind"] == "toolbar"]
        self.assertEqual({e["scenario"] for e in toolbar}, {"surge"})
