"""
The console's stat commands, -ntimes and watch: parsing, rendering, and the
repetition with a fake connection and a Clock.
"""

from __future__ import annotations

import io
import json
from argparse import Namespace

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from console import main
from console.commands import CommandError, completionTree, helpText, parse, render
from gslb_twisted.protocol.commands import (
    ShowCores,
    ShowVServers,
    StatCores,
    StatDNS,
    StatServices,
    StatVServers,
)

VSERVER_ROWS = [
    {"name": "www", "state": "UP", "health": 66.66, "active_services": 2, "inactive_services": 1, "hits": 110,
     "hit_rate": 12.345, "persistence_sessions": 3, "persistence_hits": 40, "persistence_misses": 10,
     "backup_method_hits": 7, "spillovers": 4, "backup_vserver_hits": 5, "down_responses": 0,
     "services": [{"name": "east-web", "answers": 70, "answer_rate": 8.04},
                  {"name": "west-web", "answers": 40, "answer_rate": None}]},
    {"name": "api", "state": "DOWN", "health": 0.0, "active_services": 0, "inactive_services": 1, "hits": 0,
     "hit_rate": None, "persistence_sessions": 0, "persistence_hits": 0, "persistence_misses": 0,
     "backup_method_hits": 0, "spillovers": 0, "backup_vserver_hits": 0, "down_responses": 0, "services": []},
]
DNS_RESULT = {
    "queries": 130, "query_rate": 100.25, "bytes_in": 4000, "bytes_out": 6000, "dropped": 2, "truncated": 1,
    "rrl_dropped": 3, "rrl_slipped": 0, "by_type": {"A": 100, "AAAA": 30}, "by_rcode": {"NOERROR": 130},
    "round": 12, "control": 0, "interval": 0.5,
}


class StatParseTests(SynchronousTestCase):
    def test_commands(self):
        for line, command, arguments in (
            ("stat gslb vserver", StatVServers, {}),
            ("stat gslb vserver www", StatVServers, {"name": "www"}),
            ("stat gslb service east-web", StatServices, {"name": "east-web"}),
            ("stat cores", StatCores, {}),
            ("STAT DNS", StatDNS, {}),
        ):
            invocation = parse(line)
            self.assertIs(invocation.command.amp, command)
            self.assertEqual(invocation.arguments, arguments)
            self.assertEqual(invocation.settings, {})
            self.assertFalse(invocation.repeats)

    def test_ntimesIsTheConsolesOwn(self):
        invocation = parse("stat gslb vserver www -ntimes 3")
        # Not sent to the endpoint: StatVServers takes no such argument.
        self.assertEqual(invocation.arguments, {"name": "www"})
        self.assertEqual(invocation.settings, {"ntimes": 3})
        self.assertTrue(invocation.repeats)
        self.assertEqual(parse("stat dns --ntimes 2").settings, {"ntimes": 2})
        self.assertFalse(parse("stat dns -ntimes 1").repeats)

    def test_ntimesErrors(self):
        for line, message in (
            ("stat dns -ntimes 0", "stat dns: -ntimes expects an integer of at least 1, found '0'"),
            ("stat dns -ntimes x", "stat dns: -ntimes expects an integer of at least 1, found 'x'"),
            ("stat dns -ntimes", "stat dns: -ntimes expects an integer of at least 1"),
            ("stat dns -ntimes 2 -ntimes 3", "stat dns: -ntimes given twice"),
            ("show cores -ntimes 2", "show cores: unknown option '-ntimes'; 'show cores' takes no options"),
        ):
            self.assertEqual(str(self.assertRaises(CommandError, parse, line)), message)

    def test_watch(self):
        invocation = parse("watch stat gslb vserver www")
        self.assertIs(invocation.command.amp, StatVServers)
        self.assertEqual(invocation.arguments, {"name": "www"})
        self.assertEqual(invocation.settings, {"watch": True})
        self.assertTrue(invocation.repeats)
        self.assertIs(parse("watch show cores").command.amp, ShowCores)
        self.assertIs(parse("WATCH show gslb vserver").command.amp, ShowVServers)

    def test_watchErrors(self):
        for line, message in (
            ("watch", "watch: expected a command (usage: watch COMMAND, e.g. watch stat gslb vserver)"),
            ("watch set gslb vserver www -lbMethod ROUNDROBIN",
             "watch: 'set gslb vserver' cannot be watched (only show and stat commands)"),
            ("watch help", "watch: 'help' cannot be watched (only show and stat commands)"),
            ("watch watch show cores", "watch: 'watch' cannot be watched (only show and stat commands)"),
            ("watch stat dns -ntimes 2", "watch: -ntimes repeats already; use one or the other"),
        ):
            self.assertEqual(str(self.assertRaises(CommandError, parse, line)), message)
        self.assertIn("did you mean 'show cores'", str(self.assertRaises(CommandError, parse, "watch show core")))

    def test_helpAndCompletion(self):
        text = helpText("stat")
        for synopsis in ("stat gslb vserver [NAME] [-ntimes N]", "stat gslb service [NAME] [-ntimes N]",
                         "stat cores [-ntimes N]", "stat dns [-ntimes N]"):
            self.assertIn(synopsis, text)
        self.assertIn("watch COMMAND", helpText())
        tree = completionTree({"vserver": ["www"]})
        self.assertEqual(set(tree["stat"]), {"gslb", "cores", "dns"})
        self.assertIn("-ntimes", tree["stat"]["gslb"]["vserver"]["www"])
        self.assertEqual(set(tree["watch"]), {"show", "stat"})
        self.assertIn("www", tree["watch"]["stat"]["gslb"]["vserver"])


class StatRenderTests(SynchronousTestCase):
    def test_vserverTableRatesOneDecimal(self):
        lines = render(parse("stat gslb vserver"), {"rows": VSERVER_ROWS}, False).splitlines()
        self.assertEqual(lines[0].split()[:7],
                         ["NAME", "STATE", "HEALTH", "ACTIVE_SERVICES", "INACTIVE_SERVICES", "HITS", "HIT_RATE"])
        self.assertEqual(lines[1].split()[:7], ["www", "UP", "66.7", "2", "1", "110", "12.3"])
        self.assertEqual(lines[2].split()[:7], ["api", "DOWN", "0.0", "0", "1", "0", "-"])
        self.assertIn("SPILLOVERS", lines[0])

    def test_oneVServerWithItsServices(self):
        text = render(parse("stat gslb vserver www"), {"rows": VSERVER_ROWS[:1]}, False)
        lines = text.splitlines()
        self.assertEqual(lines[0], "vserver www")
        self.assertIn("health", text)
        self.assertEqual([l.split()[-1] for l in lines if l.strip().startswith(("health", "hit rate"))],
                         ["66.7%", "12.3"])
        table = lines[lines.index(next(l for l in lines if l.startswith("NAME"))):]
        self.assertEqual(table[0].split(), ["NAME", "ANSWERS", "ANSWER_RATE"])
        self.assertEqual(table[1].split(), ["east-web", "70", "8.0"])
        self.assertEqual(table[2].split(), ["west-web", "40", "-"])

    def test_servicesAndCores(self):
        services = [{"name": "east-web", "site": "east", "state": "UP", "answers": 70, "answer_rate": 0.25}]
        lines = render(parse("stat gslb service"), {"rows": services}, False).splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "SITE", "STATE", "ANSWERS", "ANSWER_RATE"])
        self.assertEqual(lines[1].split(), ["east-web", "east", "UP", "70", "0.2"])
        cores = [{"core": 0, "queries": 80, "query_rate": None, "bytes_in": 2500, "bytes_out": 3500,
                  "stale_rejected": 0}]
        lines = render(parse("stat cores"), {"rows": cores}, False).splitlines()
        self.assertEqual(lines[0].split(), ["CORE", "QUERIES", "QUERY_RATE", "BYTES_IN", "BYTES_OUT", "STALE_REJECTED"])
        self.assertEqual(lines[1].split(), ["0", "80", "-", "2500", "3500", "0"])

    def test_dns(self):
        text = render(parse("stat dns"), {"result": DNS_RESULT}, False)
        lines = text.splitlines()
        self.assertEqual(lines[0], "dns")
        self.assertIn("query rate   100.2", text)
        self.assertIn("rrl dropped  3", text)
        by = lines.index("by type:")
        self.assertEqual([l.split() for l in lines[by + 1:by + 4]], [["QTYPE", "COUNT"], ["A", "100"], ["AAAA", "30"]])
        rc = lines.index("by rcode:")
        self.assertEqual(lines[rc + 2].split(), ["NOERROR", "130"])

    def test_jsonIsTheResult(self):
        self.assertEqual(json.loads(render(parse("stat gslb vserver"), {"rows": VSERVER_ROWS}, True)), VSERVER_ROWS)
        self.assertEqual(json.loads(render(parse("stat dns"), {"result": DNS_RESULT}, True)), DNS_RESULT)

    def test_repeatedJSONIsOneLine(self):
        for line in ("stat dns -ntimes 2", "watch stat dns"):
            text = render(parse(line), {"result": DNS_RESULT}, True)
            self.assertNotIn("\n", text)
            self.assertEqual(json.loads(text), DNS_RESULT)


class _Connection:
    """Answers each call with the next outcome; the last one repeats."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []
        self.transport = self
        self.lost = False

    def loseConnection(self):
        self.lost = True

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        return defer.succeed(outcome)


class RepeatTests(SynchronousTestCase):
    """-ntimes and watch, with a Clock: no sleeping, no signals."""

    def start(self, line, outcomes, asJSON=False):
        self.clock = task.Clock()
        self.connection = _Connection(outcomes)

        async def connect(reactor, description):
            return self.connection

        self.patch(main, "_connect", connect)
        interrupts = []

        class Recording(main.Interrupt):
            def __init__(self, reactor):
                super().__init__(reactor)
                interrupts.append(self)

        self.patch(main, "Interrupt", Recording)
        self.interrupts = interrupts
        self.out, self.err = io.StringIO(), io.StringIO()
        arguments = Namespace(command=line, connect="unix:x", json=asJSON)
        return defer.Deferred.fromCoroutine(main.runOnce(self.clock, arguments, self.out, self.err))

    def test_ntimesOncePerRound(self):
        rows = [{"core": 0, "queries": n} for n in range(3)]
        d = self.start("stat cores -ntimes 3", [{"rows": [row], "interval": 0.5} for row in rows])
        self.assertEqual(len(self.connection.calls), 1)
        self.assertNoResult(d)
        self.clock.advance(0.49)
        self.assertEqual(len(self.connection.calls), 1)
        self.clock.advance(0.01)
        self.assertEqual(len(self.connection.calls), 2)
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), main.EXIT_OK)
        self.assertEqual(self.connection.calls, [(StatCores, {})] * 3)
        # Three tables, a blank line between them.
        self.assertEqual(self.out.getvalue().count("CORE  QUERIES"), 3)
        self.assertEqual(self.out.getvalue().count("\n\n"), 2)
        self.assertTrue(self.connection.lost)

    def test_ntimesWithoutIntervalEverySecond(self):
        d = self.start("stat dns -ntimes 2", [{"result": DNS_RESULT}])
        self.clock.advance(main.WATCH_INTERVAL)
        self.successResultOf(d)
        self.assertEqual(len(self.connection.calls), 2)

    def test_ntimesJSONOneDocumentPerLine(self):
        d = self.start("stat dns -ntimes 2", [{"result": DNS_RESULT, "interval": 0.5}], asJSON=True)
        self.clock.advance(0.5)
        self.successResultOf(d)
        self.assertEqual([json.loads(line) for line in self.out.getvalue().splitlines()], [DNS_RESULT] * 2)

    def test_watchEverySecondUntilInterrupted(self):
        d = self.start("watch stat gslb vserver www", [{"rows": VSERVER_ROWS[:1], "interval": 0.5}], asJSON=True)
        for _ in range(4):
            # Every second, whatever the consolidation interval.
            self.clock.advance(0.5)
            self.clock.advance(0.5)
        self.assertNoResult(d)
        self.assertEqual(self.connection.calls, [(StatVServers, {"name": "www"})] * 5)
        [interrupt] = self.interrupts
        interrupt.interrupt()
        self.assertEqual(self.successResultOf(d), main.EXIT_OK)
        self.assertEqual(len(self.out.getvalue().splitlines()), 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.connection.lost)

    def test_watchShowTable(self):
        """Not a terminal: each refresh printed in turn (a terminal is cleared first)."""
        d = self.start("watch show cores", [{"cores": [{"core": 0, "state": "up", "queries": 1, "restarts": 0}]}])
        self.clock.advance(1.0)
        self.interrupts[0].interrupt()
        self.successResultOf(d)
        self.assertEqual(self.out.getvalue().count("CORE  STATE"), 2)
        self.assertNotIn(main.CLEAR_SCREEN, self.out.getvalue())

    def test_watchOnATerminalClears(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        self.start("show cores", [{"cores": [{"core": 0, "state": "up", "queries": 1, "restarts": 0}]}])
        out = Terminal()
        arguments = Namespace(command="watch show cores", connect="unix:x", json=False)
        d = defer.Deferred.fromCoroutine(main.runOnce(self.clock, arguments, out, self.err))
        self.clock.advance(1.0)
        self.interrupts[-1].interrupt()
        self.assertEqual(self.successResultOf(d), main.EXIT_OK)
        refreshes = out.getvalue().split(main.CLEAR_SCREEN)
        self.assertEqual(refreshes[0], "")
        self.assertEqual(len(refreshes), 3)
        for refresh in refreshes[1:]:
            self.assertTrue(refresh.startswith("Every 1s: watch show cores    "))
            self.assertIn("CORE  STATE", refresh)

    def test_errorEndsTheRepetition(self):
        d = self.start("watch stat cores", [{"rows": []}, KeyError("core 0 is gone")])
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), main.EXIT_COMMAND_ERROR)
        self.assertEqual(self.err.getvalue(), "gslb-console: stat cores: core 0 is gone\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_usageErrorBeforeConnecting(self):
        d = self.start("watch set gslb vserver www -lbMethod ROUNDROBIN", [{}])
        self.assertEqual(self.successResultOf(d), main.EXIT_USAGE)
        self.assertEqual(self.connection.calls, [])

    def test_noSignalHandlerWithoutARealReactor(self):
        interrupt = main.Interrupt(task.Clock())
        with interrupt:
            self.assertIsNone(interrupt._previous)
