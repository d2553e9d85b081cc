"""
The console's commands of the site emulator's dynamic proximity and
persistence: C{show sessions}, C{show rtt}, C{set rtt NETWORK MS},
C{unset rtt NETWORK}: parsing, errors, rendering, JSON, help and
completion; then the real console against a real C{twistd -n gslb-site}.
"""

from __future__ import annotations

import io
import json
import os
from argparse import Namespace

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase, TestCase

from console import main
from console.commands import (
    GRAMMAR,
    SITE,
    CommandError,
    completionTree,
    entityNames,
    helpText,
    parse,
    render,
)
from gslb_twisted.protocol.commands import (
    BadValue,
    NoSuchEntity,
    SetSiteRTT,
    ShowServices,
    ShowSiteRTT,
    ShowSites,
    ShowSiteServices,
    ShowSiteSessions,
    ShowVServers,
    UnsetSiteRTT,
)
from tests import test_console_grammar as grammar
from tests.support import CONSOLE, SiteProcess, freePort, poll

SESSIONS = [
    {"vserver": "www", "network": "10.1.2.0/24", "service": "east-web", "version": 3, "origin": "gslb1",
     "expires_in": 97.25},
    {"vserver": "www", "network": "2001:db8::/48", "service": "east-web6", "version": 1, "origin": "gslb2",
     "expires_in": 4.0},
]

RTTS = [
    {"network": "10.1.2.0/24", "rtt": 12.5, "source": "location", "probes": 3, "age": 1.75, "peer": "gslb1"},
    {"network": "198.51.100.0/24", "rtt": 42.0, "source": "pinned", "probes": 0, "age": None, "peer": None},
    {"network": "203.0.113.0/24", "rtt": None, "source": None, "probes": 1, "age": 0.5, "peer": "gslb2"},
]


class SiteParseTests(SynchronousTestCase):
    assertParses = grammar.ParseTests.assertParses

    def test_show(self):
        self.assertParses("show sessions", ShowSiteSessions, {})
        self.assertParses("show rtt", ShowSiteRTT, {})
        self.assertParses("SHOW RTT", ShowSiteRTT, {})

    def test_setRTT(self):
        self.assertParses("set rtt 198.51.100.0/24 42", SetSiteRTT, {"network": "198.51.100.0/24", "rtt": 42.0})
        self.assertParses("set rtt 198.51.100.0/24 0.25", SetSiteRTT, {"network": "198.51.100.0/24", "rtt": 0.25})
        self.assertParses("set rtt 198.51.100.0/24 0", SetSiteRTT, {"network": "198.51.100.0/24", "rtt": 0.0})
        # Canonical, as the site keys its pins: IPv6 compressed and lower case, a bare address a host route.
        self.assertParses("set rtt 2001:DB8:0::/32 7", SetSiteRTT, {"network": "2001:db8::/32", "rtt": 7.0})
        self.assertParses("set rtt 10.1.2.3 5", SetSiteRTT, {"network": "10.1.2.3/32", "rtt": 5.0})
        self.assertIsInstance(parse("set rtt 10.0.0.0/8 5").arguments["rtt"], float)

    def test_unsetRTT(self):
        self.assertParses("unset rtt 198.51.100.0/24", UnsetSiteRTT, {"network": "198.51.100.0/24"})
        self.assertParses("UNSET rtt 2001:db8:0:0::/64", UnsetSiteRTT, {"network": "2001:db8::/64"})

    def test_otherSiteCommandsStillThemselves(self):
        self.assertIs(parse("show services").command.amp, ShowSiteServices)
        self.assertEqual(parse("set service w -state UP").command.name, "set service")
        self.assertEqual(parse("unset service w -state").command.name, "unset service")


class SiteParseErrorTests(SynchronousTestCase):
    error = grammar.ParseErrorTests.error

    def test_closest(self):
        self.assertEqual(self.error("show session"), "unknown command 'show session'; did you mean 'show sessions'?")
        self.assertEqual(self.error("show rt"), "unknown command 'show rt'; did you mean 'show rtt'?")
        self.assertIn("did you mean 'set rtt'?", self.error("set rt 10.0.0.0/8 5"))
        self.assertIn("did you mean 'unset rtt'?", self.error("unset rrt 10.0.0.0/8"))
        # Not taken for the new ones.
        self.assertIn("did you mean 'show services'?", self.error("show servces"))

    def test_badNetwork(self):
        self.assertEqual(
            self.error("set rtt not-a-network 5"),
            "set rtt: NETWORK expects a network in CIDR notation such as 198.51.100.0/24, found 'not-a-network'",
        )
        self.assertEqual(
            self.error("set rtt 198.51.100.7/24 5"),
            "set rtt: NETWORK expects a network in CIDR notation such as 198.51.100.0/24, "
            "found '198.51.100.7/24' (host bits set; did you mean 198.51.100.0/24?)",
        )
        self.assertIn("found '10.0.0.0/33'", self.error("unset rtt 10.0.0.0/33"))
        self.assertIn("(no IPv6 zone)", self.error("unset rtt fe80::/64%eth0"))
        self.assertTrue(self.error("unset rtt 10.1.2.3/8").startswith("unset rtt: NETWORK expects"))

    def test_badMilliseconds(self):
        for raw in ("fast", "-5", "nan", "inf", "1e999"):
            self.assertEqual(self.error(f"set rtt 198.51.100.0/24 {raw}"),
                             f"set rtt: MS expects a non-negative number of milliseconds, found {raw!r}")

    def test_arguments(self):
        self.assertEqual(self.error("set rtt"), "set rtt: expected NETWORK (usage: set rtt NETWORK MS)")
        self.assertEqual(self.error("set rtt 198.51.100.0/24"), "set rtt: expected MS (usage: set rtt NETWORK MS)")
        self.assertEqual(self.error("set rtt 10.0.0.0/8 5 6"), "set rtt: unexpected '6' (usage: set rtt NETWORK MS)")
        self.assertEqual(self.error("unset rtt"), "unset rtt: expected NETWORK (usage: unset rtt NETWORK)")
        self.assertIn("unset rtt: unexpected '5'", self.error("unset rtt 10.0.0.0/8 5"))
        self.assertIn("show rtt: unexpected 'x'", self.error("show rtt x"))
        self.assertEqual(self.error("show sessions -all"),
                         "show sessions: unknown option '-all'; 'show sessions' takes no options")
        self.assertEqual(self.error("set rtt 10.0.0.0/8 5 -x"),
                         "set rtt: unknown option '-x'; 'set rtt' takes no options")


class SiteRenderTests(SynchronousTestCase):
    def test_sessionsTable(self):
        lines = render(parse("show sessions"), {"rows": SESSIONS}, False).splitlines()
        self.assertEqual(lines[0].split(), ["VSERVER", "NETWORK", "SERVICE", "VERSION", "ORIGIN", "EXPIRES_IN"])
        self.assertEqual(lines[1].split(), ["www", "10.1.2.0/24", "east-web", "3", "gslb1", "97.2"])
        self.assertEqual(lines[2].split(), ["www", "2001:db8::/48", "east-web6", "1", "gslb2", "4.0"])
        # Aligned: every column starts where its header does.
        start = lines[0].index("SERVICE")
        self.assertEqual(lines[1][start:].split()[0], "east-web")
        self.assertEqual(lines[2][start:].split()[0], "east-web6")

    def test_noSessions(self):
        self.assertEqual(render(parse("show sessions"), {"rows": []}, False),
                         "VSERVER  NETWORK  SERVICE  VERSION  ORIGIN  EXPIRES_IN")
        self.assertEqual(json.loads(render(parse("show sessions"), {"rows": []}, True)), [])

    def test_rttTable(self):
        lines = render(parse("show rtt"), {"rows": RTTS}, False).splitlines()
        self.assertEqual(lines[0].split(), ["NETWORK", "RTT", "SOURCE", "PROBES", "AGE", "PEER"])
        self.assertEqual(lines[1].split(), ["10.1.2.0/24", "12.5", "location", "3", "1.8", "gslb1"])
        self.assertEqual(lines[2].split(), ["198.51.100.0/24", "42.0", "pinned", "0", "-", "-"])
        # A network the site knows no RTT for: it is left out of the answer.
        self.assertEqual(lines[3].split(), ["203.0.113.0/24", "-", "-", "1", "0.5", "gslb2"])

    def test_setAndUnsetShowTheRow(self):
        pinned = RTTS[1]
        lines = render(parse("set rtt 198.51.100.0/24 42"), {"row": pinned}, False).splitlines()
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines[1].split()[:3], ["198.51.100.0/24", "42.0", "pinned"])
        released = dict(pinned, rtt=80.0, source="config")
        line = render(parse("unset rtt 198.51.100.0/24"), {"row": released}, False).splitlines()[1]
        self.assertEqual(line.split()[:3], ["198.51.100.0/24", "80.0", "config"])

    def test_jsonIsTheRows(self):
        self.assertEqual(json.loads(render(parse("show sessions"), {"rows": SESSIONS}, True)), SESSIONS)
        self.assertEqual(json.loads(render(parse("show rtt"), {"rows": RTTS}, True)), RTTS)
        self.assertEqual(json.loads(render(parse("set rtt 198.51.100.0/24 42"), {"row": RTTS[1]}, True)), RTTS[1])
        self.assertEqual(json.loads(render(parse("unset rtt 198.51.100.0/24"), {"row": RTTS[1]}, True)), RTTS[1])

    def test_columnsAreTheRowKeys(self):
        columns = {c.name: c.columns for c in GRAMMAR}
        self.assertEqual(columns["show sessions"], tuple(SESSIONS[0]))
        for name in ("show rtt", "set rtt", "unset rtt"):
            self.assertEqual(columns[name], tuple(RTTS[0]))


class SiteHelpAndCompletionTests(SynchronousTestCase):
    def test_helpUnderTheSiteEmulator(self):
        text = helpText()
        site = text.split("On a site emulator:")[1].split("In the console:")[0]
        for synopsis in ("show sessions", "show rtt", "set rtt NETWORK MS", "unset rtt NETWORK"):
            self.assertIn(f"  {synopsis}\n", site)
        for name in ("show sessions", "show rtt", "set rtt", "unset rtt"):
            self.assertEqual(next(c for c in GRAMMAR if c.name == name).target, SITE)

    def test_helpTopics(self):
        text = helpText("set rtt")
        self.assertEqual(text.splitlines()[0], "  set rtt NETWORK MS")
        self.assertIn("until unset", text)
        self.assertNotIn("set service", text)
        self.assertIn("pinned, config or location", helpText("show rtt"))
        self.assertIn("expires", helpText("show sessions"))
        both = helpText("unset")
        self.assertIn("unset service NAME", both)
        self.assertIn("unset rtt NETWORK", both)
        self.assertIn("did you mean 'show rtt'?", str(self.assertRaises(CommandError, helpText, "show rt")))

    def test_completionTree(self):
        tree = completionTree({"network": ["10.1.2.0/24", "198.51.100.0/24"], "service": ["east-web"]})
        self.assertIn("sessions", tree["show"])
        self.assertIn("rtt", tree["show"])
        self.assertEqual(tree["set"]["rtt"], {"10.1.2.0/24": None, "198.51.100.0/24": None})
        self.assertEqual(tree["unset"]["rtt"], {"10.1.2.0/24": None, "198.51.100.0/24": None})
        self.assertIn("east-web", tree["set"]["service"])
        # No network known yet: the words alone.
        self.assertIsNone(completionTree()["set"]["rtt"])

    def test_entityNamesNetworksInTheSiteOrder(self):
        names = entityNames({
            "service": [{"name": "east-web"}],
            "network": [{"network": "9.0.0.0/8"}, {"network": "10.0.0.0/8"}, {"network": "9.0.0.0/8"},
                        {"network": None}],
        })
        self.assertEqual(names, {"service": ["east-web"], "network": ["9.0.0.0/8", "10.0.0.0/8"]})
        self.assertNotIn("network", entityNames({"network": []}))

    def complete(self, text, entities):
        from prompt_toolkit.completion import CompleteEvent
        from prompt_toolkit.document import Document

        completer = main.makeCompleter(entities)
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    def test_completer(self):
        entities = {"network": ["10.1.2.0/24", "198.51.100.0/24"], "service": ["east-web"]}
        self.assertEqual(self.complete("show r", entities), ["rtt"])
        self.assertEqual(self.complete("show se", entities), ["services", "sessions"])
        self.assertEqual(self.complete("unset rtt ", entities), ["10.1.2.0/24", "198.51.100.0/24"])
        self.assertEqual(self.complete("set rtt 19", entities), ["198.51.100.0/24"])
        self.assertEqual(set(self.complete("unset ", entities)), {"service", "rtt"})


class _Endpoint:
    """
    A fake control connection answering by command, as an endpoint does:
    C{answers} maps an AMP command to its result or to the error it raises;
    any other is not a command of this endpoint.
    """

    def __init__(self, answers):
        self.answers = answers
        self.calls = []
        self.transport = self

    def loseConnection(self):
        pass

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))
        answer = self.answers.get(command)
        if answer is None:
            return defer.fail(amp.UnhandledCommand(b"UNHANDLED", f"Unhandled Command: {command.__name__!r}"))
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)


class SiteRunOnceTests(SynchronousTestCase):
    """C{gslb-console -c} with these commands, over a fake connection."""

    def connectTo(self, endpoint):
        async def connect(reactor, description):
            return endpoint

        self.patch(main, "_connect", connect)

    def run_(self, line, answers, asJSON=True):
        endpoint = _Endpoint(answers)
        self.connectTo(endpoint)
        out, err = io.StringIO(), io.StringIO()
        arguments = Namespace(command=line, connect="unix:x", json=asJSON)
        code = self.successResultOf(defer.Deferred.fromCoroutine(main.runOnce(None, arguments, out, err)))
        return code, out.getvalue(), err.getvalue(), endpoint.calls

    def test_setRTT(self):
        code, out, err, calls = self.run_("set rtt 198.51.100.0/24 42", {SetSiteRTT: {"row": RTTS[1]}})
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(calls, [(SetSiteRTT, {"network": "198.51.100.0/24", "rtt": 42.0})])
        self.assertEqual(json.loads(out), RTTS[1])

    def test_showSessionsTable(self):
        code, out, err, calls = self.run_("show sessions", {ShowSiteSessions: {"rows": SESSIONS}}, asJSON=False)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.splitlines()[0].split()[:2], ["VSERVER", "NETWORK"])
        self.assertEqual(len(out.splitlines()), 3)

    def test_notPinnedExits1OneLine(self):
        error = NoSuchEntity("no RTT pinned for 203.0.113.0/24 at site east (pinned: 198.51.100.0/24)")
        code, out, err, calls = self.run_("unset rtt 203.0.113.0/24", {UnsetSiteRTT: error})
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "gslb-console: unset rtt: no RTT pinned for 203.0.113.0/24 at site east "
                              "(pinned: 198.51.100.0/24)\n")

    def test_badValueExits1OneLine(self):
        error = BadValue("expected a number of milliseconds >= 0, found -1.0")
        code, out, err, calls = self.run_("set rtt 10.0.0.0/8 1", {SetSiteRTT: error})
        self.assertEqual(code, 1)
        self.assertEqual(err, "gslb-console: set rtt: expected a number of milliseconds >= 0, found -1.0\n")

    def test_badNetworkExits2WithoutConnecting(self):
        code, out, err, calls = self.run_("set rtt not-a-network 5", {})
        self.assertEqual((code, out, calls), (2, "", []))
        self.assertEqual(err, "gslb-console: set rtt: NETWORK expects a network in CIDR notation such as "
                              "198.51.100.0/24, found 'not-a-network'\n")

    def test_anApplianceSaysSo(self):
        code, out, err, calls = self.run_("show rtt", {})
        self.assertEqual(code, 1)
        self.assertIn("not a command of this endpoint", err)

    def test_fetchEntitiesNamesTheNetworks(self):
        """Tab completion asks a site emulator for its networks; an appliance, which has none, is skipped."""
        site = _Endpoint({
            ShowSiteServices: {"rows": [{"name": "east-web"}]},
            ShowSiteRTT: {"rows": RTTS},
        })
        self.connectTo(site)
        names = self.successResultOf(defer.Deferred.fromCoroutine(main.fetchEntities(None, "unix:x")))
        self.assertEqual(names, {"service": ["east-web"],
                                 "network": ["10.1.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]})
        self.assertIn((ShowSiteRTT, {}), site.calls)
        appliance = _Endpoint({ShowSites: {"rows": [{"name": "east"}]}, ShowServices: {"rows": []},
                               ShowVServers: {"rows": []}})
        self.connectTo(appliance)
        names = self.successResultOf(defer.Deferred.fromCoroutine(main.fetchEntities(None, "unix:x")))
        self.assertNotIn("network", names)
        self.assertEqual(names["site"], ["east"])


# --- the real console against a real site emulator -----------------------------------

TOPOLOGY = """
[appliance]
name = "gslb1"
ip = "127.0.0.1"
mep_secret = "s3cret"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = {mepPort}
  [site.emulator]
  control = "unix:unused.ctl"
  rtt = {{ "198.51.100.0/24" = 80.0 }}

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"
"""


class SiteConsoleIntegrationTests(TestCase):
    timeout = 90

    async def console(self, site, command, asJSON=True):
        arguments = ["--connect", site.control, "-c", command] + (["--json"] if asJSON else [])
        out, err, code = await getProcessOutputAndValue(CONSOLE, arguments, env=dict(os.environ))
        return code, out.decode(), err.decode()

    async def started(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "topology.toml")
        with open(config, "w") as f:
            f.write(TOPOLOGY.format(mepPort=freePort("127.0.0.2")))
        site = SiteProcess(self, config, "east")
        site.start()

        async def answering():
            if site.collector.ended.called:
                raise AssertionError(f"gslb-site exited early:\n{site.output}")
            code, out, err = await self.console(site, "show rtt")
            return code == 0

        await poll(answering, 30, what="the site emulator's control endpoint")
        return site

    async def test_pinShowReleaseAndErrors(self):
        site = await self.started()
        code, out, err = await self.console(site, "show sessions")
        self.assertEqual((code, json.loads(out), err), (0, [], ""))

        code, out, err = await self.console(site, "set rtt 198.51.100.0/24 42")
        self.assertEqual((code, err), (0, ""))
        pinned = {"network": "198.51.100.0/24", "rtt": 42.0, "source": "pinned", "probes": 0, "age": None,
                  "peer": None}
        row = json.loads(out)
        self.assertEqual({key: row.get(key) for key in pinned}, pinned)

        code, out, err = await self.console(site, "show rtt")
        self.assertEqual((code, err), (0, ""))
        rows = json.loads(out)
        self.assertEqual([{key: r.get(key) for key in pinned} for r in rows], [pinned])

        code, out, err = await self.console(site, "show rtt", asJSON=False)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0].split(), ["NETWORK", "RTT", "SOURCE", "PROBES", "AGE", "PEER"])
        self.assertEqual(out.splitlines()[1].split()[:3], ["198.51.100.0/24", "42.0", "pinned"])

        # Released, the site's rtt table answers for it again; nobody probed it, so it leaves `show rtt`.
        code, out, err = await self.console(site, "unset rtt 198.51.100.0/24")
        self.assertEqual((code, err), (0, ""))
        row = json.loads(out)
        self.assertEqual((row["network"], row["rtt"], row["source"]), ("198.51.100.0/24", 80.0, "config"))
        code, out, err = await self.console(site, "show rtt")
        self.assertEqual((code, json.loads(out)), (0, []))

        # Not pinned (any more): the site says so, in one line.
        code, out, err = await self.console(site, "unset rtt 198.51.100.0/24")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.splitlines(),
                         ["gslb-console: unset rtt: no RTT pinned for 198.51.100.0/24 at site east (pinned: none)"])

        # Not a network: refused before anything is sent.
        code, out, err = await self.console(site, "set rtt not-a-network 5")
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(err.splitlines(), [
            "gslb-console: set rtt: NETWORK expects a network in CIDR notation such as 198.51.100.0/24, "
            "found 'not-a-network'"
        ])
        code, out, err = await self.console(site, "show rtt")
        self.assertEqual((code, json.loads(out)), (0, []))

        await site.stop()
        self.assertFalse("Traceback" in site.output, site.output)
