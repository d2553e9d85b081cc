"""
The interactive console (L{console.app}): a real prompt-toolkit session
driven through C{create_pipe_input} and C{DummyOutput}, over a fake link;
completion, colours, pushed events and the toolbar, C{watch}, history and
Ctrl-R; and L{console.link.Link} reconnecting to a real AMP endpoint.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import time
from argparse import Namespace

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase, TestCase

from console import app, live
from console.app import Console, GrammarCompleter, historyPath, openHistory, useColour
from console.commands import GRAMMAR, GREEN, RED, RESET, YELLOW, CommandError, helpText, parse, render, renderTable
from console.link import Link, NotConnected
from gslb_twisted.protocol.commands import (
    ConsoleEvent,
    DisableService,
    NoSuchEntity,
    SetScenario,
    ShowCores,
    ShowScenarios,
    ShowServices,
    ShowSites,
    ShowVServers,
    StopScenario,
    Subscribe,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")

APPLIANCE_STATE = {"cores_up": 2, "cores": 2, "sites_up": 2, "sites_down": 1, "sites": 3, "qps": 152.4,
                   "control": "unix:/run/gslb.ctl"}
SITE_STATE = {"site": "east", "services_up": 2, "services_down": 0, "services": 2, "appliances_connected": 1,
              "appliances": 1, "scenario": "flap", "control": "unix:east.ctl"}
SITES = [{"name": "east", "ip": "127.0.0.2", "state": "UP", "master_core": 0},
         {"name": "north", "ip": "127.0.0.8", "state": "DOWN", "master_core": 1}]
CORES = [{"core": 0, "pid": 10, "state": "up", "queries": 5, "restarts": 0},
         {"core": 1, "pid": 11, "state": "starting", "queries": 0, "restarts": 1}]


def plain(text: str) -> str:
    return ANSI.sub("", text)


class FakeLink:
    """
    A link that is connected at once (with C{state}) and answers commands
    from C{answers} (a result, an exception, or a function of the
    arguments); any other command is not the endpoint's.
    """

    def __init__(self, answers=None, state=APPLIANCE_STATE, fail=None):
        self.answers = dict(answers or {})
        self.state = state
        self.fail = fail
        self.calls = []
        self.listener = None
        self.online = False
        self.stopped = False

    def start(self, wait=False):
        if self.fail is not None:
            return defer.fail(self.fail)
        self.online = True
        self.listener.connected(self.state)
        return defer.succeed(None)

    def stop(self):
        self.stopped = True
        return defer.succeed(None)

    def call(self, command, **arguments):
        self.calls.append((command, arguments))
        if not self.online:
            return defer.fail(NotConnected("not connected to unix:x (retrying; the toolbar says when it is back)"))
        answer = self.answers.get(command)
        if callable(answer):
            answer = answer(**arguments)
        if answer is None:
            return defer.fail(amp.UnhandledCommand(b"UNHANDLED", f"Unhandled Command: {command.__name__!r}"))
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)

    # What the real link's endpoint would do.
    def drop(self):
        self.online = False
        self.listener.disconnected()

    def back(self, state=None):
        self.online = True
        self.listener.connected(state or self.state)


def answers(extra=None):
    table = {
        ShowCores: {"cores": CORES},
        ShowSites: {"rows": SITES},
        ShowServices: {"rows": [{"name": "east-web", "site": "east", "state": "UP"},
                                {"name": "west-web", "site": "west", "state": "UP"}]},
        ShowVServers: {"rows": [{"name": "www", "domains": ["www.test.gslb"], "services": []}]},
    }
    table.update(extra or {})
    return table


class ConsoleHarness:
    """A L{Console} on a pipe input and a dummy output, printing into a StringIO."""

    def __init__(self, testCase, link=None, colour=False, history=None, asJSON=False):
        self.testCase = testCase
        self.link = link or FakeLink(answers())
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.history = history if history is not None else InMemoryHistory()
        self.colour = colour
        self.asJSON = asJSON

    def run(self, *keys, during=None, timeout=10.0):
        """
        Type C{keys} (strings of keys, sent in turn), run the console until
        it ends; C{during}: a coroutine function run alongside, given the
        console and the pipe input (it may type more).
        """

        async def main():
            with create_pipe_input() as pipe:
                self.console = Console(
                    None, Namespace(connect="unix:x", json=self.asJSON), link=self.link, input=pipe,
                    output=DummyOutput(), history=self.history, out=self.out, err=self.err, colour=self.colour,
                    handleSignals=False,
                )
                self.link.listener = self.console
                for text in keys:
                    pipe.send_text(text)
                running = asyncio.ensure_future(self.console.run())
                if during is not None:
                    await during(self.console, pipe)
                return await asyncio.wait_for(running, timeout)

        return asyncio.run(main())

    @property
    def printed(self) -> str:
        return self.out.getvalue()


class CompleterTests(SynchronousTestCase):
    """The prompt's completer, over the grammar and the names of the moment."""

    def complete(self, text, entities):
        completer = GrammarCompleter(entities)
        return [(c.text, c.start_position) for c in completer.get_completions(Document(text), CompleteEvent())]

    def test_verbsEntityTypesNamesOptionsValues(self):
        names = {"service": ["east-web", "west-web"], "vserver": ["www"], "site": ["east", "north"],
                 "domain": ["www.test.gslb"], "scenario": ["drain", "flap"]}
        self.assertEqual(self.complete("sh", names), [("show", -2)])
        self.assertEqual([t for t, _ in self.complete("", names)][:3], ["show", "resolve", "set"])
        self.assertEqual(self.complete("show gslb s", names), [("site", -1), ("service", -1)])
        self.assertEqual(self.complete("show gslb site n", names), [("north", -1)])
        self.assertEqual(self.complete("disable gslb service e", names), [("east-web", -1)])
        self.assertEqual(self.complete("set gslb vserver www -lb", names), [("-lbMethod", -3)])
        self.assertEqual(self.complete("set gslb vserver www -lbMethod leastc", names), [("LEASTCONNECTION", -6)])
        self.assertEqual(self.complete("set service east-web -state ", names), [("UP", 0), ("DOWN", 0)])
        self.assertEqual(self.complete("set service east-web -state d", names), [("DOWN", -1)])
        self.assertEqual(self.complete("resolve www.test.gslb aa", names), [("AAAA", -2)])
        self.assertEqual(self.complete("set scenario ", names), [("drain", 0), ("flap", 0)])
        self.assertEqual(self.complete("stop s", names), [("scenario", -1)])
        self.assertEqual(self.complete("show sc", names), [("scenarios", -2)])

    def test_optionsNotTwice(self):
        names = {"service": ["east-web"]}
        offered = [t for t, _ in self.complete("set service east-web -state UP -", names)]
        self.assertNotIn("-state", offered)
        self.assertIn("-connections", offered)
        # A value of an option that takes none: nothing.
        self.assertEqual(self.complete("set service east-web -connections ", names), [])

    def test_watchAndHelpCompleteCommands(self):
        self.assertEqual([t for t, _ in self.complete("watch s", {})], ["show", "stat"])
        self.assertEqual([t for t, _ in self.complete("watch stat ", {})], ["gslb", "cores", "dns"])
        self.assertEqual([t for t, _ in self.complete("help st", {})], ["stat", "stop"])

    def test_namesOfTheMoment(self):
        """Given a function, the completer asks it each time: names fetched later complete too."""
        names = {}
        completer = GrammarCompleter(lambda: names)
        document = Document("show gslb site ")
        self.assertEqual(list(completer.get_completions(document, CompleteEvent())), [])
        names["site"] = ["east"]
        self.assertEqual([c.text for c in completer.get_completions(document, CompleteEvent())], ["east"])

    def test_menuSaysWhatItIs(self):
        completer = GrammarCompleter({"service": ["east-web"]})
        [completion] = completer.get_completions(Document("disable gslb service e"), CompleteEvent())
        self.assertEqual(completion.display_meta_text, "service")
        completion = list(completer.get_completions(Document("show co"), CompleteEvent()))[0]
        self.assertEqual(completion.text, "cores")
        self.assertIn("core process", completion.display_meta_text)


class GrammarTests(SynchronousTestCase):
    """The verbs the prompt adds, and errors that name the closest valid command."""

    def error(self, line):
        return str(self.assertRaises(CommandError, parse, line))

    def test_scenarioCommands(self):
        self.assertEqual((parse("set scenario flap").command.amp, parse("set scenario flap").arguments),
                         (SetScenario, {"name": "flap"}))
        self.assertIs(parse("show scenarios").command.amp, ShowScenarios)
        for line in ("stop scenario", "unset scenario", "STOP Scenario"):
            self.assertEqual((parse(line).command.amp, parse(line).arguments), (StopScenario, {}))
        self.assertEqual({c.words[0] for c in GRAMMAR},
                         {"show", "stat", "set", "enable", "disable", "resolve", "watch", "help", "quit", "unset",
                          "stop"})
        self.assertIn("stop scenario", helpText("unset scenario"))

    def test_closestWithAWordLeftOutOrTooMany(self):
        self.assertEqual(self.error("disable service east-web"),
                         "unknown command 'disable service east-web'; did you mean 'disable gslb service'?")
        self.assertIn("did you mean 'stat gslb vserver'?", self.error("stat vserver www"))
        self.assertIn("did you mean 'show gslb site'?", self.error("show gslb sites"))
        self.assertIn("did you mean 'show scenarios'?", self.error("show scenario"))

    def test_closestByTheOptionsTyped(self):
        self.assertIn("did you mean 'set gslb vserver'?", self.error("set vserver www -lbMethod RTT"))
        self.assertIn("did you mean 'set service'?", self.error("set gslb service east-web -state DOWN"))

    def test_incomplete(self):
        self.assertEqual(self.error("stop"), "incomplete command 'stop'; did you mean 'stop scenario'?")
        self.assertEqual(self.error("show gslb"),
                         "incomplete command 'show gslb'; 'show gslb' goes on with one of: site, service, vserver")
        self.assertIn("goes on with one of: gslb, cores, dns", self.error("stat"))


class ColourTests(SynchronousTestCase):
    def test_statesColouredAlignmentKept(self):
        rows = [{"name": "east", "state": "UP"}, {"name": "north", "state": "DOWN"},
                {"name": "west", "state": "stale"}, {"name": "south", "state": "whatever"}]
        coloured = renderTable(rows, ("name", "state", "ip"), colour=True)
        self.assertEqual(plain(coloured), renderTable(rows, ("name", "state", "ip")))
        lines = coloured.splitlines()
        self.assertIn(f"{GREEN}UP{RESET}", lines[1])
        self.assertIn(f"{RED}DOWN{RESET}", lines[2])
        self.assertIn(f"{YELLOW}stale{RESET}", lines[3])
        self.assertNotIn("\x1b", lines[4])
        # Only states: not a name that happens to be one.
        self.assertNotIn("\x1b", renderTable([{"name": "UP"}], ("name",), colour=True))

    def test_everyShapeColoursItsStates(self):
        coloured = render(parse("show gslb site"), {"rows": SITES}, False, colour=True)
        self.assertIn(f"{RED}DOWN{RESET}", coloured)
        cores = render(parse("show cores"), {"cores": CORES}, False, colour=True)
        self.assertIn(f"{GREEN}up{RESET}", cores)
        self.assertIn(f"{YELLOW}starting{RESET}", cores)
        consistency = render(parse("show consistency"), {"result": {"consistent": False, "sites": []}}, False, True)
        self.assertTrue(consistency.startswith(f"consistent: {RED}no{RESET}"))
        resolved = render(parse("resolve www.test.gslb"), {"result": {
            "name": "www.test.gslb", "qtype": "A", "answer": [], "rcode": "NOERROR", "method": "LEASTCONNECTION",
            "fallback": True, "fallback_reason": "metrics of east are stale", "candidates": [], "excluded": []}},
            False, True)
        self.assertIn(f"{YELLOW}LEASTCONNECTION (fallback){RESET}", resolved)
        self.assertIn(f"{YELLOW}fallback: metrics of east are stale{RESET}", resolved)
        vserver = render(parse("show gslb vserver www"), {"rows": [{
            "name": "www", "state": "UP", "lb_method": "ROUNDROBIN", "services": [
                {"name": "east-web", "state": "UP", "enabled": False}]}]}, False, True)
        self.assertIn(f"{GREEN}UP{RESET}", vserver)
        self.assertIn(f"{YELLOW}no{RESET}", vserver)

    def test_neverInJSON(self):
        self.assertNotIn("\x1b", render(parse("show gslb site"), {"rows": SITES}, True, colour=True))

    def test_whenToColour(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "NO_COLOR"})
        self.assertTrue(useColour("auto", False, Terminal()))
        self.assertFalse(useColour("auto", False, io.StringIO()), "piped")
        self.assertFalse(useColour("auto", True, Terminal()), "--json")
        self.assertFalse(useColour("never", False, Terminal()))
        self.assertTrue(useColour("always", False, io.StringIO()))
        self.assertFalse(useColour("always", True, io.StringIO()), "--json, always")
        os.environ["NO_COLOR"] = "1"
        self.assertFalse(useColour("auto", False, Terminal()))


class LiveTests(SynchronousTestCase):
    """Event lines and the toolbar, from what the endpoint pushes."""

    def test_eventLine(self):
        when = time.mktime((2026, 11, 26, 14, 2, 11, 0, 0, -1))
        event = {"time": when, "kind": "site", "text": "site east is DOWN (no metrics for 1.5s) [core 0]",
                 "site": "east", "state": "DOWN"}
        self.assertEqual(live.eventLine(event), "14:02:11 site east is DOWN (no metrics for 1.5s) [core 0]")
        coloured = live.eventLine(event, colour=True)
        self.assertIn(f"{RED}site east is DOWN", coloured)
        self.assertEqual(plain(coloured), live.eventLine(event))
        self.assertTrue(live.eventLine({"kind": "x", "text": "hello"}).endswith(" hello"))

    def test_eventColours(self):
        self.assertEqual(live.eventColour({"kind": "site", "state": "UP"}), GREEN)
        self.assertEqual(live.eventColour({"kind": "core", "state": "died"}), RED)
        self.assertEqual(live.eventColour({"kind": "core", "state": "respawned"}), GREEN)
        self.assertEqual(live.eventColour({"kind": "master", "core": 1}), live.CYAN)
        self.assertEqual(live.eventColour({"kind": "scenario", "state": "stopped"}), YELLOW)
        self.assertEqual(live.eventColour({"kind": "mep", "text": "session with gslb1 down"}), RED)

    def test_eventTime(self):
        self.assertEqual(live.eventTime("2026-11-26T14:02:11"), "14:02:11")
        self.assertEqual(live.eventTime("not a time"), "not a time")
        self.assertRegex(live.eventTime(None), r"^\d\d:\d\d:\d\d$")

    def test_applianceToolbar(self):
        text = live.toolbarText(live.toolbar(APPLIANCE_STATE, True, "unix:x"))
        self.assertEqual(text, " cores 2/2 up | sites 2 up, 1 down | 152 q/s | unix:/run/gslb.ctl ")
        unknown = dict(APPLIANCE_STATE, sites_up=None, sites_down=None, qps=None, control=None)
        self.assertEqual(live.toolbarText(live.toolbar(unknown, True, "unix:x")),
                         " cores 2/2 up | sites - up, - down | - q/s | unix:x ")

    def test_siteToolbar(self):
        text = live.toolbarText(live.toolbar(SITE_STATE, True, "unix:x"))
        self.assertEqual(text, " site east | services 2 up, 0 down | appliances 1/1 | scenario flap | unix:east.ctl ")

    def test_disconnected(self):
        fragments = live.toolbar(APPLIANCE_STATE, False, "unix:gslb.ctl")
        self.assertEqual(live.toolbarText(fragments), " disconnected — retrying | unix:gslb.ctl ")
        self.assertEqual(fragments[0][0], "class:toolbar.bad")

    def test_toolbarFields(self):
        event = {"time": 1.0, "kind": "toolbar", "text": "cores 2/2 up", "cores_up": 1, "qps": 3.0}
        self.assertEqual(live.toolbarFields(event), {"cores_up": 1, "qps": 3.0})


class HistoryTests(SynchronousTestCase):
    def test_path(self):
        self.assertEqual(historyPath({"XDG_STATE_HOME": "/s", "HOME": "/h"}), "/s/gslb-twisted/history")
        self.assertEqual(historyPath({"HOME": "/h"}), "/h/.local/state/gslb-twisted/history")
        # Relative: not a valid XDG base directory.
        self.assertEqual(historyPath({"XDG_STATE_HOME": "rel", "HOME": "/h"}), "/h/.local/state/gslb-twisted/history")

    def test_openMakesThePrivateDirectory(self):
        base = os.path.abspath(self.mktemp())
        path = historyPath({"XDG_STATE_HOME": base})
        history = openHistory(path)
        self.assertIsInstance(history, FileHistory)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)

    def test_unwritableFallsBackToMemory(self):
        base = os.path.abspath(self.mktemp())
        with open(base, "w"):
            pass  # a file where the directory should be
        self.assertIsInstance(openHistory(os.path.join(base, "gslb-twisted", "history")), InMemoryHistory)


class ConsoleTests(SynchronousTestCase):
    """The prompt itself, typed into through a pipe."""

    def test_commandsResultsAndErrors(self):
        harness = ConsoleHarness(self)
        code = harness.run("show cores\r", "show cor\r", "show gslb site\r", "quit\r")
        self.assertEqual(code, app.EXIT_OK)
        lines = harness.printed.splitlines()
        self.assertEqual(lines[0].split(), ["CORE", "PID", "STATE", "QUERIES", "RESTARTS"])
        self.assertIn("unknown command 'show cor'; did you mean 'show cores'?", lines)
        self.assertIn("MASTER_CORE", harness.printed)
        self.assertNotIn("\x1b", harness.printed)
        self.assertTrue(harness.link.stopped)

    def test_remoteErrorOneLine(self):
        link = FakeLink(answers({DisableService: NoSuchEntity("no such service nope")}))
        harness = ConsoleHarness(self, link)
        harness.run("disable gslb service nope\r", "show rtt\r", "\x04")
        self.assertEqual(harness.printed.splitlines(), [
            "disable gslb service: no such service nope",
            "show rtt: not a command of this endpoint (an appliance and a site emulator know different commands)",
        ])

    def test_colouredOnATerminal(self):
        harness = ConsoleHarness(self, colour=True)
        harness.run("show gslb site\r", "bogus\r", "quit\r")
        self.assertIn(f"{RED}DOWN{RESET}", harness.printed)
        self.assertIn(f"{RED}unknown command 'bogus'", harness.printed)

    def test_jsonNeverColoured(self):
        harness = ConsoleHarness(self, colour=False, asJSON=True)
        harness.run("show gslb site\r", "quit\r")
        self.assertIn('"state": "DOWN"', harness.printed)

    def test_help(self):
        harness = ConsoleHarness(self)
        harness.run("help set scenario\r", "? stop\r", "help nothing\r", "quit\r")
        self.assertIn("set scenario NAME", harness.printed)
        self.assertIn("stop scenario", harness.printed)
        self.assertIn("help: no command 'nothing'", harness.printed)
        self.assertEqual(harness.link.calls[-1][0], ShowScenarios)  # names fetched; help itself calls nothing

    def test_ctrlCForgetsTheLineCtrlDLeaves(self):
        harness = ConsoleHarness(self)
        code = harness.run("show co\x03", "\x04")
        self.assertEqual(code, app.EXIT_OK)
        self.assertNotIn(ShowCores, [c for c, _ in harness.link.calls])

    def test_unreachableOneLine(self):
        from twisted.internet.error import ConnectError

        link = FakeLink(fail=ConnectError("2", "No such file or directory."))
        harness = ConsoleHarness(self, link)
        self.assertEqual(harness.run(), app.EXIT_UNREACHABLE)
        self.assertEqual(harness.err.getvalue(),
                         "gslb-console: cannot connect to unix:x: no such file or directory (is the appliance running?)\n")

    def test_namesFetchedOnConnectComplete(self):
        link = FakeLink(answers({ShowScenarios: {"rows": [{"name": "flap"}]}}))
        harness = ConsoleHarness(self, link)

        async def typed(console, pipe):
            await asyncio.sleep(0.2)
            self.assertEqual(console.entities["site"], ["east", "north"])
            self.assertEqual(console.entities["domain"], ["www.test.gslb"])
            self.assertEqual(console.entities["scenario"], ["flap"])
            pipe.send_text("show gslb site no\t")
            await asyncio.sleep(0.2)
            pipe.send_text("\r")
            await asyncio.sleep(0.2)
            pipe.send_text("quit\r")

        harness.run(during=typed)
        self.assertIn((ShowSites, {"name": "north"}), link.calls)

    def test_namesOnceACoreIsUp(self):
        """An appliance with no core up yet cannot name anything: asked once the toolbar says one is."""
        link = FakeLink(answers(), state=dict(APPLIANCE_STATE, cores_up=0, sites_up=None, sites_down=None))
        harness = ConsoleHarness(self, link)

        async def starting(console, pipe):
            await asyncio.sleep(0.1)
            self.before = list(link.calls)
            console.event({"time": time.time(), "kind": "toolbar", "text": "", "cores_up": 1})
            await asyncio.sleep(0.1)
            self.names = dict(console.entities)
            pipe.send_text("quit\r")

        harness.run(during=starting)
        self.assertEqual(self.before, [])
        self.assertEqual(self.names["site"], ["east", "north"])

    def test_pushedEventsPrintedToolbarUpdated(self):
        harness = ConsoleHarness(self)

        async def pushed(console, pipe):
            await asyncio.sleep(0.1)
            console.event({"time": time.time(), "kind": "site", "text": "site east is DOWN (killed)", "state": "DOWN"})
            console.event({"time": time.time(), "kind": "toolbar", "text": "cores 2/2 up", "sites_up": 1,
                           "sites_down": 2, "qps": 7.25})
            await asyncio.sleep(0.1)
            self.toolbar = live.toolbarText(console.toolbar())
            pipe.send_text("quit\r")

        harness.run(during=pushed)
        self.assertRegex(harness.printed, r"^\d\d:\d\d:\d\d site east is DOWN \(killed\)\n$")
        self.assertEqual(self.toolbar, " cores 2/2 up | sites 1 up, 2 down | 7.2 q/s | unix:/run/gslb.ctl ")

    def test_disconnectedRetryingThenBack(self):
        harness = ConsoleHarness(self)

        async def restart(console, pipe):
            await asyncio.sleep(0.1)
            harness.link.drop()
            self.down = live.toolbarText(console.toolbar())
            pipe.send_text("show cores\r")
            await asyncio.sleep(0.2)
            harness.link.back()
            self.up = live.toolbarText(console.toolbar())
            pipe.send_text("show cores\r")
            await asyncio.sleep(0.2)
            pipe.send_text("quit\r")

        harness.run(during=restart)
        self.assertEqual(self.down, " disconnected — retrying | unix:x ")
        self.assertTrue(self.up.startswith(" cores 2/2 up"))
        lines = harness.printed.splitlines()
        self.assertEqual(lines[0], "connection to unix:x lost — retrying")
        self.assertEqual(lines[1], "show cores: not connected to unix:x (retrying; the toolbar says when it is back)")
        self.assertEqual(lines[2], "reconnected to unix:x")
        self.assertEqual(lines[3].split()[:2], ["CORE", "PID"])

    def test_siteEmulatorPromptAndScenarios(self):
        row = {"name": "flap", "events": 4, "running": True, "elapsed": 0.0, "pending": 4, "finished": False,
               "replaced": "drain"}
        link = FakeLink({SetScenario: {"row": row}, StopScenario: {"row": dict(row, running=False, replaced=None)},
                         ShowScenarios: {"rows": [row]}}, state=SITE_STATE)
        harness = ConsoleHarness(self, link)

        async def typed(console, pipe):
            await asyncio.sleep(0.1)
            self.prompt = console.prompt()
            pipe.send_text("set scenario flap\r")
            pipe.send_text("show scenarios\r")
            pipe.send_text("unset scenario\r")
            pipe.send_text("quit\r")

        harness.run(during=typed)
        self.assertEqual(self.prompt, "site> ")
        lines = harness.printed.splitlines()
        self.assertEqual(lines[0], "scenario flap: running (4 events, 4 to come; replaced drain)")
        self.assertEqual(lines[1].split(), ["NAME", "EVENTS", "RUNNING", "ELAPSED", "PENDING", "FINISHED"])
        self.assertEqual(lines[2].split(), ["flap", "4", "yes", "0.0", "4", "no"])
        self.assertEqual(lines[3], "scenario flap: stopped (4 events)")
        self.assertIn((SetScenario, {"name": "flap"}), link.calls)
        self.assertIn((StopScenario, {}), link.calls)

    def test_historyInAFileAndCtrlR(self):
        """Lines go to the history file; Ctrl-R (reverse search) finds one again."""
        path = os.path.join(os.path.abspath(self.mktemp()), "history")
        os.makedirs(os.path.dirname(path))
        harness = ConsoleHarness(self, history=FileHistory(path))
        harness.run("show gslb site\r", "show cores\r", "quit\r")
        with open(path) as f:
            self.assertIn("+show gslb site", f.read())
        again = ConsoleHarness(self, history=FileHistory(path))
        # Ctrl-R, "gslb", Enter (take the match), Enter (run it).
        again.run("\x12gslb", "\r", "\r", "quit\r")
        self.assertIn((ShowSites, {}), again.link.calls[-1:])
        self.assertIn("MASTER_CORE", again.printed)

    def test_emacsBindings(self):
        """
        The prompt is in Emacs mode with prompt-toolkit's default bindings,
        Ctrl-R (reverse search) among them, nothing of ours over them.
        """
        from prompt_toolkit.enums import EditingMode
        from prompt_toolkit.key_binding.defaults import load_key_bindings
        from prompt_toolkit.keys import Keys

        console = Console(None, Namespace(connect="unix:x", json=False), link=FakeLink(), history=InMemoryHistory(),
                          output=DummyOutput(), out=io.StringIO())
        with create_pipe_input() as pipe:
            console.input = pipe
            session = console.makeSession()
        self.assertEqual(session.editing_mode, EditingMode.EMACS)
        self.assertTrue(load_key_bindings().get_bindings_for_keys((Keys.ControlR,)))
        self.assertFalse(session.key_bindings)

    def test_ntimesRepeats(self):
        self.patch(app, "WATCH_INTERVAL", 0.01)
        link = FakeLink(answers({ShowCores: {"cores": CORES}}))
        from gslb_twisted.protocol.commands import StatCores

        link.answers[StatCores] = {"rows": [{"core": 0, "queries": 1}], "interval": 0.01}
        harness = ConsoleHarness(self, link)
        harness.run("stat cores -ntimes 3\r", "quit\r")
        self.assertEqual(harness.printed.count("CORE  QUERIES"), 3)

    def test_watchRefreshesInPlaceUntilQ(self):
        self.patch(app, "WATCH_INTERVAL", 0.02)
        harness = ConsoleHarness(self)

        async def watching(console, pipe):
            pipe.send_text("watch show cores\r")
            for _ in range(200):
                await asyncio.sleep(0.01)
                if console.watching is not None and len(harness.link.calls) > 8:
                    break
            self.assertIsNotNone(console.watching, "watch runs an application of its own")
            pipe.send_text("q")
            await asyncio.sleep(0.1)
            self.assertIsNone(console.watching)
            pipe.send_text("show gslb site\r")
            pipe.send_text("quit\r")

        harness.run(during=watching)
        watched = [c for c, _ in harness.link.calls if c is ShowCores]
        self.assertGreater(len(watched), 3)
        # The frames were drawn by the application, not printed one after another.
        self.assertNotIn("CORE  PID", harness.printed)
        self.assertIn("MASTER_CORE", harness.printed)

    def test_watchErrorEndsIt(self):
        self.patch(app, "WATCH_INTERVAL", 0.01)
        link = FakeLink(answers({ShowCores: NoSuchEntity("core 0 is gone")}))
        harness = ConsoleHarness(self, link)
        harness.run("watch show cores\r", during=self._quitLater)
        self.assertIn("show cores: core 0 is gone", harness.printed)

    async def _quitLater(self, console, pipe):
        await asyncio.sleep(0.3)
        pipe.send_text("quit\r")


class _Endpoint(amp.AMP):
    """A control endpoint that answers Subscribe and pushes events."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def connectionMade(self):
        super().connectionMade()
        self.server.connections.append(self)

    @Subscribe.responder
    def subscribe(self):
        self.server.subscribed.append(self)
        return {"state": APPLIANCE_STATE}

    @ShowCores.responder
    def showCores(self):
        return {"cores": CORES}


class _Recorder:
    def __init__(self):
        self.heard = []

    def connected(self, state):
        self.heard.append(("connected", state))

    def disconnected(self):
        self.heard.append(("disconnected",))

    def event(self, event):
        self.heard.append(("event", event))


class LinkTests(TestCase):
    """L{Link} against a real AMP endpoint on a unix socket: subscribe, events, reconnection."""

    timeout = 20

    def setUp(self):
        import tempfile

        directory = tempfile.mkdtemp(prefix="gslb-link-")
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        self.path = os.path.join(directory, "c.ctl")
        self.connections, self.subscribed = [], []

    async def listen(self):
        port = await UNIXServerEndpoint(reactor, self.path).listen(Factory.forProtocol(lambda: _Endpoint(self)))
        self.addCleanup(port.stopListening)
        return port

    async def until(self, condition):
        for _ in range(400):
            if condition():
                return
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail("timed out")

    async def test_nothingListens(self):
        recorder = _Recorder()
        link = Link(reactor, "unix:" + self.path, recorder)
        failure = await defer.Deferred.fromCoroutine(self._failed(link.start()))
        self.assertIn("No such file", str(failure))
        self.assertEqual(recorder.heard, [])
        await task.deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(link.service.running)

    async def _failed(self, d):
        try:
            await d
        except Exception as e:
            return e
        self.fail("connected")

    async def test_subscribeEventsReconnect(self):
        port = await self.listen()
        recorder = _Recorder()
        link = Link(reactor, "unix:" + self.path, recorder, retryPolicy=lambda attempt: 0.05)
        await link.start()
        self.addCleanup(link.stop)
        self.assertEqual(recorder.heard, [("connected", APPLIANCE_STATE)])
        self.assertTrue(link.connected)
        self.assertEqual(len(self.subscribed), 1)

        # A pushed event reaches the listener.
        event = {"time": 1.0, "kind": "site", "text": "site east is DOWN", "state": "DOWN"}
        self.subscribed[0].callRemote(ConsoleEvent, event=event)
        await self.until(lambda: len(recorder.heard) == 2)
        self.assertEqual(recorder.heard[1], ("event", event))
        result = await link.call(ShowCores)
        self.assertEqual(result["cores"][0]["pid"], 10)

        # The endpoint goes away (the appliance restarts): told, and calls fail in one line.
        await port.stopListening()
        self.connections[0].transport.loseConnection()
        await self.until(lambda: ("disconnected",) in recorder.heard)
        self.assertFalse(link.connected)
        with self.assertRaises(NotConnected):
            await link.call(ShowCores)

        # It is back: the link dials again, subscribes again.
        await self.listen()
        await self.until(lambda: len(self.subscribed) == 2)
        await self.until(lambda: recorder.heard[-1][0] == "connected")
        self.assertTrue(link.connected)
        self.assertEqual((await link.call(ShowCores))["cores"][1]["state"], "starting")

    async def test_anEndpointWithoutEvents(self):
        """An endpoint that does not know Subscribe is still used: no state, no toolbar figures."""

        class Old(amp.AMP):
            @ShowCores.responder
            def showCores(self):
                return {"cores": []}

        port = await UNIXServerEndpoint(reactor, self.path).listen(Factory.forProtocol(Old))
        self.addCleanup(port.stopListening)
        recorder = _Recorder()
        link = Link(reactor, "unix:" + self.path, recorder)
        await link.start()
        self.addCleanup(link.stop)
        self.assertEqual(recorder.heard, [("connected", None)])
        self.assertEqual(await link.call(ShowCores), {"cores": []})
