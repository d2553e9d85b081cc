"""
The console's grammar table: parsing every command and option, errors with
the closest valid command, rendering, JSON, help and completion.
"""

from __future__ import annotations

import io
import json
from argparse import Namespace

from twisted.internet import defer
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from console import main
from console.commands import (
    GRAMMAR,
    CommandError,
    completionTree,
    helpText,
    parse,
    render,
    renderTable,
)
from gslb_twisted.config import SERVICE_METRICS
from gslb_twisted.protocol.commands import (
    SetSiteService,
    ShowConsistency,
    ShowCores,
    ShowMEP,
    ShowMetrics,
    ShowServices,
    ShowSites,
    ShowSiteServices,
    UnsetSiteService,
)


class ParseTests(SynchronousTestCase):
    def assertParses(self, line, ampCommand, arguments):
        invocation = parse(line)
        self.assertIs(invocation.command.amp, ampCommand)
        self.assertEqual(invocation.arguments, arguments)
        # The arguments are exactly what the AMP command takes.
        known = {name.decode() for name, _ in ampCommand.arguments}
        self.assertLessEqual(set(arguments), known)
        return invocation

    def test_applianceCommands(self):
        self.assertParses("show cores", ShowCores, {})
        self.assertParses("show gslb site", ShowSites, {})
        self.assertParses("show gslb site east", ShowSites, {"name": "east"})
        self.assertParses("show gslb service", ShowServices, {})
        self.assertParses("show gslb service east-web", ShowServices, {"name": "east-web"})
        self.assertParses("show mep", ShowMEP, {})
        self.assertParses("show metrics east", ShowMetrics, {"site": "east"})
        self.assertParses("show metrics east --core 1", ShowMetrics, {"site": "east", "core": 1})
        self.assertParses("show metrics --core 0 east", ShowMetrics, {"site": "east", "core": 0})
        self.assertParses("show metrics east -core 1", ShowMetrics, {"site": "east", "core": 1})
        self.assertParses("show consistency", ShowConsistency, {})

    def test_siteCommands(self):
        self.assertParses("show services", ShowSiteServices, {})
        self.assertParses(
            "set service east-web -state DOWN -connections 500 -responseTime 12.5 -bandwidth 800 -packets 40 -load 55",
            SetSiteService,
            {"name": "east-web", "values": {"state": "DOWN", "connections": 500, "response_time": 12.5,
                                            "bandwidth": 800.0, "packets": 40, "load": 55.0}},
        )
        self.assertParses("unset service east-web -connections -state -responseTime", UnsetSiteService,
                          {"name": "east-web", "metrics": ["state", "connections", "response_time"]})

    def test_everyMetricHasAnOption(self):
        for words in (("set", "service"), ("unset", "service")):
            command = next(c for c in GRAMMAR if c.words == words)
            self.assertEqual({o.key for o in command.options}, set(SERVICE_METRICS))

    def test_typesForTheSite(self):
        values = parse("set service w -connections 7 -load 5 -responseTime 3").arguments["values"]
        self.assertIsInstance(values["connections"], int)
        self.assertIsInstance(values["load"], float)
        self.assertIsInstance(values["response_time"], float)

    def test_caseAndDashes(self):
        self.assertEqual(parse("SHOW Cores").command.amp, ShowCores)
        self.assertEqual(parse("set service East -STATE up --responsetime 5").arguments,
                         {"name": "East", "values": {"state": "UP", "response_time": 5.0}})
        self.assertEqual(parse("set service e -response_time 5").arguments["values"], {"response_time": 5.0})
        self.assertEqual(parse("exit").command.words, ("quit",))

    def test_help(self):
        self.assertEqual(parse("help").arguments, {"topic": ""})
        self.assertEqual(parse("help set service").arguments, {"topic": "set service"})
        self.assertIsNone(parse("help").command.amp)


class ParseErrorTests(SynchronousTestCase):
    def error(self, line):
        return str(self.assertRaises(CommandError, parse, line))

    def test_closestCommand(self):
        self.assertEqual(self.error("show core"), "unknown command 'show core'; did you mean 'show cores'?")
        self.assertIn("did you mean 'show gslb site'?", self.error("show gslb sit east"))
        self.assertIn("did you mean 'show gslb service'?", self.error("show glsb service"))
        self.assertIn("did you mean 'show services'?", self.error("show servces"))
        self.assertIn("did you mean 'set service'?", self.error("set servce x -state UP"))
        self.assertIn("did you mean 'show consistency'?", self.error("show consistancy"))

    def test_nothingClose(self):
        self.assertEqual(self.error("frobnicate"),
                         "unknown command 'frobnicate'; commands start with disable, enable, help, quit, resolve, set, show, stat, "
                         "stop, unset, watch")
        self.assertEqual(self.error("   "), "empty command")

    def test_badValues(self):
        self.assertEqual(self.error("set service w -connections abc"),
                         "set service: -connections expects a non-negative integer, found 'abc'")
        self.assertEqual(self.error("set service w -connections -1"),
                         "set service: -connections expects a non-negative integer, found '-1'")
        self.assertEqual(self.error("set service w -connections 1.5"),
                         "set service: -connections expects a non-negative integer, found '1.5'")
        self.assertEqual(self.error("set service w -load 101"),
                         "set service: -load expects a number from 0 to 100, found '101'")
        self.assertEqual(self.error("set service w -state SIDEWAYS"),
                         "set service: -state expects one of UP, DOWN, found 'SIDEWAYS'")
        self.assertEqual(self.error("set service w -responseTime nan"),
                         "set service: -responseTime expects a non-negative number, found 'nan'")
        self.assertEqual(self.error("show metrics east --core x"),
                         "show metrics: --core expects a non-negative integer, found 'x'")
        self.assertEqual(self.error("set service w -state"), "set service: -state expects one of UP, DOWN")

    def test_badOptions(self):
        self.assertEqual(self.error("set service w -conections 5"),
                         "set service: unknown option '-conections'; did you mean -connections?")
        self.assertIn("options: -state, -connections", self.error("set service w -zzz 5"))
        self.assertEqual(self.error("show cores -x 1"), "show cores: unknown option '-x'; 'show cores' takes no options")
        self.assertEqual(self.error("set service w -load 1 -load 2"), "set service: -load given twice")

    def test_arguments(self):
        self.assertIn("show metrics: expected SITE (usage: show metrics SITE [--core N])", self.error("show metrics"))
        self.assertIn("show cores: unexpected 'now'", self.error("show cores now"))
        self.assertIn("set service: expected NAME", self.error("set service"))
        self.assertIn("set service: expected at least one option", self.error("set service w"))
        self.assertIn("unset service: expected at least one option", self.error("unset service w"))
        self.assertIn("show gslb site: unexpected 'west'", self.error("show gslb site east west"))


class RenderTests(SynchronousTestCase):
    def test_showCoresTable(self):
        result = {"cores": [{"core": 0, "pid": 10, "state": "up", "queries": 5, "restarts": 0, "uptime": 1.25}]}
        lines = render(parse("show cores"), result, False).splitlines()
        self.assertEqual(lines[0].split(), ["CORE", "PID", "STATE", "QUERIES", "RESTARTS", "UPTIME"])
        self.assertEqual(lines[1].split(), ["0", "10", "up", "5", "0", "1.2"])

    def test_jsonIsTheResultExactly(self):
        rows = [{"name": "east", "ip": "127.0.0.2", "state": "UP", "master_core": 1, "seq": 4, "metrics_age": 0.5,
                 "extra": [1, 2]}]
        self.assertEqual(json.loads(render(parse("show gslb site"), {"rows": rows}, True)), rows)
        result = {"site": "east", "core": 0, "epoch": 2, "seq": 9, "services": []}
        self.assertEqual(json.loads(render(parse("show metrics east"), {"result": result}, True)), result)

    def test_columns(self):
        columns = {c.name: c.columns for c in GRAMMAR}
        self.assertEqual(columns["show gslb service"][:5], ("name", "site", "ip", "port", "state"))
        for metric in ("connections", "response_time", "bandwidth", "packets", "load"):
            self.assertIn(metric, columns["show gslb service"])
            self.assertIn(metric, columns["show services"])
        self.assertEqual(columns["show gslb site"][:3], ("name", "ip", "state"))
        self.assertIn("master_core", columns["show gslb site"])
        self.assertIn("metrics_age", columns["show gslb site"])
        for key in ("site", "direction", "state", "auth_failures"):
            self.assertIn(key, columns["show mep"])

    def test_siteServicesTable(self):
        row = {"name": "east-web", "ip": "192.0.2.10", "port": 80, "state": "DOWN", "connections": 500,
               "response_time": 10.0, "bandwidth": 0.0, "packets": 0, "load": 0.0, "pinned": ["state", "connections"],
               "sources": {"state": "pin"}}
        text = render(parse("set service east-web -state DOWN"), {"row": row}, False)
        header, line = text.splitlines()
        self.assertEqual(header.split()[:4], ["NAME", "IP", "PORT", "STATE"])
        self.assertTrue(header.split()[-1] == "PINNED")
        self.assertEqual(line.split()[3], "DOWN")
        self.assertEqual(line.split()[-1], "state,connections")

    def test_absentColumnsLeftOut(self):
        rows = [{"site": "east", "peer": "gslb1", "direction": "inbound", "state": "established", "auth_failures": 0}]
        header = render(parse("show mep"), {"rows": rows}, False).splitlines()[0].split()
        self.assertEqual(header, ["SITE", "PEER", "DIRECTION", "STATE", "AUTH_FAILURES"])
        self.assertEqual(renderTable([], ("a", "b")), "A  B")

    def test_metrics(self):
        result = {"site": "east", "core": 1, "epoch": 3, "seq": 42, "services": [
            {"name": "east-web", "state": "UP", "connections": 12, "response_time": 3.5, "bandwidth": 800.0,
             "packets": 40, "load": 12.5}]}
        lines = render(parse("show metrics east --core 1"), {"result": result}, False).splitlines()
        self.assertEqual(lines[0], "site east  core 1  epoch 3  seq 42")
        self.assertEqual(lines[1].split()[:2], ["NAME", "STATE"])
        self.assertEqual(lines[2].split()[:3], ["east-web", "UP", "12"])

    def test_consistency(self):
        result = {"consistent": False, "sites": [
            {"site": "east", "versions": {"0": [3, 42], "1": [3, 41]}},
            {"site": "west", "versions": {"0": [1, 7], "1": [1, 7]}},
        ]}
        lines = render(parse("show consistency"), {"result": result}, False).splitlines()
        self.assertEqual(lines[0], "consistent: no")
        self.assertEqual(lines[1].split(), ["SITE", "CORE", "0", "CORE", "1"])
        self.assertEqual(lines[2].split(), ["east", "3/42", "3/41"])


class HelpAndCompletionTests(SynchronousTestCase):
    def test_helpListsEveryCommand(self):
        text = helpText()
        for command in GRAMMAR:
            self.assertIn(command.synopsis(), text)
        self.assertIn("set service NAME [-state UP|DOWN] [-connections N] [-responseTime MS]", text)

    def test_helpTopic(self):
        text = helpText("set service")
        self.assertIn("set service NAME", text)
        self.assertNotIn("show cores", text)
        self.assertRaises(CommandError, helpText, "show nothing")

    def test_completionTree(self):
        tree = completionTree({"service": ["east-web"], "site": ["east"]})
        self.assertIn("cores", tree["show"])
        self.assertEqual(set(tree["show"]["gslb"]), {"site", "service", "vserver"})
        self.assertIn("-connections", tree["set"]["service"]["east-web"])
        self.assertIn("--core", tree["show"]["metrics"]["east"])


class _FakeConnection:
    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []
        self.transport = self

    def loseConnection(self):
        pass

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))
        if isinstance(self.outcome, Exception):
            return defer.fail(self.outcome)
        return defer.succeed(self.outcome)


class RunOnceTests(SynchronousTestCase):
    """The one-shot mode's exit codes and messages, with a fake connection."""

    def run_(self, line, outcome=None, asJSON=False):
        connection = _FakeConnection(outcome)

        async def connect(reactor, description):
            return connection

        self.patch(main, "_connect", connect)
        out, err = io.StringIO(), io.StringIO()
        arguments = Namespace(command=line, connect="unix:x", json=asJSON)
        code = self.successResultOf(defer.Deferred.fromCoroutine(main.runOnce(None, arguments, out, err)))
        return code, out.getvalue(), err.getvalue(), connection.calls

    def test_success(self):
        code, out, err, calls = self.run_("set service w -state down", {"row": {"name": "w", "state": "DOWN"}}, True)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out), {"name": "w", "state": "DOWN"})
        self.assertEqual(calls, [(SetSiteService, {"name": "w", "values": {"state": "DOWN"}})])

    def test_usageErrorExits2WithoutConnecting(self):
        code, out, err, calls = self.run_("show core")
        self.assertEqual((code, calls), (2, []))
        self.assertEqual(err, "gslb-console: unknown command 'show core'; did you mean 'show cores'?\n")

    def test_remoteErrorExits1(self):
        code, out, err, calls = self.run_("set service nope -state UP", KeyError("no service 'nope' at site east"))
        self.assertEqual(code, 1)
        self.assertEqual(err, "gslb-console: set service: no service 'nope' at site east\n")

    def test_unhandledCommand(self):
        code, out, err, calls = self.run_("show cores", amp.UnhandledCommand(b"UNHANDLED", "Unhandled Command: 'ShowCores'"))
        self.assertEqual(code, 1)
        self.assertIn("not a command of this endpoint", err)

    def test_helpIsLocal(self):
        code, out, err, calls = self.run_("help show metrics")
        self.assertEqual((code, calls), (0, []))
        self.assertIn("show metrics SITE [--core N]", out)
