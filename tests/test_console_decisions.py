"""
The console's commands of the decision engine: C{show gslb vserver},
C{resolve}, C{set gslb vserver -lbMethod}, C{enable|disable gslb service}:
parsing, errors, rendering, JSON, help and completion.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from console.commands import completionTree, entityNames, helpText, parse, render
from gslb_twisted.config import LB_METHODS
from gslb_twisted.protocol.commands import (
    CoreUnavailable,
    DisableService,
    EnableService,
    NoSuchEntity,
    Resolve,
    SetSiteService,
    SetVServer,
    ShowVServers,
)
from tests import test_console_grammar as grammar

VSERVER = {
    "name": "www", "domains": ["www.demo.gslb", "web.demo.gslb"], "state": "UP",
    "lb_method": "ROUNDROBIN", "configured_lb_method": "LEASTCONNECTION", "backup_lb_method": "ROUNDROBIN",
    "persistence": "SOURCEIP", "persistence_timeout": 120, "ttl": 5, "answers": 1, "backup_vserver": "www-dr",
    "spillover": {"method": "CONNECTION", "threshold": 5000, "value": 5200, "spilled": True},
    "persistence_entries": 3,
    "services": [
        {"name": "east-web", "site": "east", "ip": "192.0.2.10", "weight": 2, "state": "UP", "reason": None,
         "enabled": False},
        {"name": "west-web", "site": "west", "ip": "198.51.100.10", "weight": 1, "state": "UP", "reason": None,
         "enabled": True},
        {"name": "north-web", "site": "north", "ip": "203.0.113.10", "weight": 1, "state": "DOWN",
         "reason": "site north is DOWN", "enabled": True},
    ],
}

EXPLAINED = {
    "name": "www.demo.gslb", "qtype": "A", "answer": ["198.51.100.10"], "rcode": "NOERROR", "core": 1,
    "vserver": "www", "method": "LEASTCONNECTION", "fallback": False, "source": "services",
    "persistence": "none", "client": "10.1.2.3", "spillover": None,
    "candidates": [
        {"service": "west-web", "ip": "198.51.100.10", "site": "west", "weight": 1, "state": "UP",
         "connections": 12, "response_time": 3.5, "load": 1.2, "distance_km": 410.0},
        {"service": "south-web", "ip": "203.0.113.20", "site": "south", "weight": 1, "state": "UP",
         "connections": 40, "response_time": 9.0, "load": 4.0, "distance_km": 900.0},
    ],
    "excluded": [
        {"service": "east-web", "reason": "disabled"},
        {"service": "north-web", "reason": "site north is DOWN"},
    ],
}


class DecisionParseTests(SynchronousTestCase):
    assertParses = grammar.ParseTests.assertParses

    def test_showVServer(self):
        self.assertParses("show gslb vserver", ShowVServers, {})
        self.assertParses("show gslb vserver www", ShowVServers, {"name": "www"})

    def test_resolve(self):
        self.assertParses("resolve www.demo.gslb", Resolve, {"name": "www.demo.gslb"})
        self.assertParses("resolve www.demo.gslb aaaa", Resolve, {"name": "www.demo.gslb", "qtype": "AAAA"})
        self.assertParses("resolve www.demo.gslb 28 --core 1", Resolve,
                          {"name": "www.demo.gslb", "qtype": "AAAA", "core": 1})
        self.assertParses("resolve www.demo.gslb --client 10.1.2.3 MX", Resolve,
                          {"name": "www.demo.gslb", "qtype": "MX", "client": "10.1.2.3"})
        self.assertParses("resolve www.demo.gslb --client 2001:DB8::0:1 -core 0", Resolve,
                          {"name": "www.demo.gslb", "client": "2001:db8::1", "core": 0})

    def test_setVServer(self):
        self.assertParses("set gslb vserver www -lbMethod ROUNDROBIN", SetVServer,
                          {"name": "www", "lbMethod": "ROUNDROBIN"})
        self.assertParses("set gslb vserver www -lbmethod leastResponseTime", SetVServer,
                          {"name": "www", "lbMethod": "LEASTRESPONSETIME"})
        self.assertParses("SET GSLB VSERVER www --lbMethod customload", SetVServer,
                          {"name": "www", "lbMethod": "CUSTOMLOAD"})
        # `set service` (a site emulator's) is still itself.
        self.assertIs(parse("set service w -state UP").command.amp, SetSiteService)

    def test_everyMethodAccepted(self):
        for method in LB_METHODS:
            self.assertEqual(parse(f"set gslb vserver v -lbMethod {method.lower()}").arguments["lbMethod"], method)

    def test_enableDisable(self):
        self.assertParses("enable gslb service east-web", EnableService, {"name": "east-web"})
        self.assertParses("disable gslb service east-web", DisableService, {"name": "east-web"})


class DecisionParseErrorTests(SynchronousTestCase):
    error = grammar.ParseErrorTests.error

    def test_decisionErrors(self):
        self.assertEqual(self.error("resolve"), "resolve: expected NAME (usage: resolve NAME [TYPE] [--client IP] [--core N])")
        self.assertEqual(
            self.error("resolve www.demo.gslb AAAAA"),
            "resolve: unknown query type 'AAAAA' (expected A, AAAA, ANY, SOA, NS, MX, TXT, ... or a number)",
        )
        self.assertEqual(self.error("resolve www.demo.gslb --client 10.0.0"),
                         "resolve: --client expects an IPv4 or IPv6 address, found '10.0.0'")
        self.assertEqual(self.error("resolve www.demo.gslb --core -1"),
                         "resolve: --core expects a non-negative integer, found '-1'")
        self.assertIn("resolve: unexpected 'x'", self.error("resolve www.demo.gslb A x"))
        self.assertIn("set gslb vserver: expected at least one option (usage: set gslb vserver NAME [-lbMethod METHOD])",
                      self.error("set gslb vserver www"))
        self.assertIn("set gslb vserver: -lbMethod expects one of ROUNDROBIN, LEASTCONNECTION",
                      self.error("set gslb vserver www -lbMethod FASTEST"))
        self.assertEqual(self.error("set gslb vserver www -lbMetod RTT"),
                         "set gslb vserver: unknown option '-lbMetod'; did you mean -lbMethod?")
        self.assertIn("disable gslb service: expected NAME", self.error("disable gslb service"))
        self.assertIn("enable gslb service: unexpected 'b'", self.error("enable gslb service a b"))
        self.assertIn("did you mean 'show gslb vserver'?", self.error("show gslb vsrever"))
        self.assertIn("did you mean 'disable gslb service'?", self.error("disable glsb service x"))


class DecisionRenderTests(SynchronousTestCase):
    def test_vserverTable(self):
        api = dict(VSERVER, name="api", lb_method="LEASTCONNECTION", configured_lb_method="LEASTCONNECTION",
                   effective_method="ROUNDROBIN", fallback=True, persistence="NONE", backup_vserver=None,
                   services=VSERVER["services"][1:2])
        lines = render(parse("show gslb vserver"), {"rows": [VSERVER, api]}, False).splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "METHOD", "PERSISTENCE", "SERVICES", "BACKUP"])
        # Up and enabled, of all: east-web is disabled, north-web DOWN.
        self.assertEqual(lines[1].split(), ["www", "UP", "ROUNDROBIN", "SOURCEIP", "120s", "1/3", "www-dr"])
        # The method it answers with now: its backup method, falling back.
        self.assertEqual(lines[2].split(), ["api", "UP", "ROUNDROBIN", "(fallback)", "NONE", "1/1", "-"])

    def test_vserverDetail(self):
        text = render(parse("show gslb vserver www"), {"rows": [VSERVER]}, False)
        lines = text.splitlines()
        self.assertEqual(lines[0], "vserver www")
        self.assertIn("  domains         www.demo.gslb,web.demo.gslb", lines)
        self.assertIn("  method          ROUNDROBIN (set at run time; configured LEASTCONNECTION)", lines)
        self.assertFalse([line for line in lines if "answering with" in line])
        self.assertIn("  persistence     SOURCEIP 120s, 3 entries", lines)
        self.assertIn("  backup vserver  www-dr", lines)
        self.assertIn("  spillover       CONNECTION threshold 5000, now 5200 (spilled over)", lines)
        header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
        self.assertEqual(lines[header].split(), ["NAME", "SITE", "IP", "WEIGHT", "STATE", "REASON", "ENABLED"])
        self.assertEqual(lines[header + 1].split(), ["east-web", "east", "192.0.2.10", "2", "UP", "-", "no"])
        self.assertEqual(lines[header + 3].split()[-5:], ["site", "north", "is", "DOWN", "yes"])

    def test_vserverDetailFallingBack(self):
        row = dict(VSERVER, lb_method="LEASTCONNECTION", configured_lb_method="LEASTCONNECTION",
                   effective_method="ROUNDROBIN", fallback=True)
        lines = render(parse("show gslb vserver www"), {"rows": [row]}, False).splitlines()
        self.assertIn("  method          LEASTCONNECTION", lines)
        self.assertIn("  answering with  ROUNDROBIN (fallback)", lines)

    def test_vserverJSONIsTheRows(self):
        self.assertEqual(json.loads(render(parse("show gslb vserver www"), {"rows": [VSERVER]}, True)), [VSERVER])

    def test_resolve(self):
        text = render(parse("resolve www.demo.gslb --core 1"), {"result": EXPLAINED}, False)
        lines = text.splitlines()
        self.assertEqual(lines[0], "www.demo.gslb A from 10.1.2.3, core 1: NOERROR 198.51.100.10")
        self.assertEqual(lines[1], "vserver www  method LEASTCONNECTION  source services  persistence none")
        self.assertEqual(lines[2], "candidates:")
        self.assertEqual(lines[3].split(), ["SERVICE", "IP", "SITE", "WEIGHT", "STATE", "CONNECTIONS",
                                            "RESPONSE_TIME", "LOAD", "DISTANCE_KM"])
        self.assertEqual(lines[4].split(), ["west-web", "198.51.100.10", "west", "1", "UP", "12", "3.5", "1.2", "410.0"])
        self.assertEqual(lines[6], "excluded:")
        self.assertEqual(lines[7].split(), ["SERVICE", "REASON"])
        self.assertEqual(lines[8].split(), ["east-web", "disabled"])
        self.assertEqual(lines[9], "north-web  site north is DOWN")

    def test_resolveFallbackNothingUp(self):
        result = dict(EXPLAINED, answer=[], rcode="SERVFAIL", fallback=True, source="down_response",
                      candidates=[], method="ROUNDROBIN",
                      spillover={"method": "CONNECTION", "threshold": 10, "value": 12, "spilled": True})
        lines = render(parse("resolve www.demo.gslb"), {"result": result}, False).splitlines()
        self.assertEqual(lines[0], "www.demo.gslb A from 10.1.2.3, core 1: SERVFAIL (no address)")
        self.assertIn("method ROUNDROBIN (fallback)", lines[1])
        self.assertIn("source down_response", lines[1])
        self.assertIn("spillover CONNECTION threshold 10, now 12 (spilled over)", lines)
        self.assertIn("candidates: none", lines)

    def test_resolveFallbackReasonAndEmptyMetrics(self):
        """Metrics no candidate reports are left out; why it fell back is said."""
        result = dict(EXPLAINED, method="ROUNDROBIN", fallback=True,
                      fallback_reason="east-web: its site exchanges no metrics", candidates=[
                          {"service": "east-web", "ip": "192.0.2.10", "site": "east", "weight": 1, "state": "UP",
                           "chosen": True, "connections": None, "load": None},
                          {"service": "west-web", "ip": "198.51.100.10", "site": "west", "weight": 1, "state": "UP",
                           "chosen": False, "connections": None, "load": None},
                      ])
        lines = render(parse("resolve www.demo.gslb"), {"result": result}, False).splitlines()
        self.assertIn("method ROUNDROBIN (fallback)", lines[1])
        self.assertEqual(lines[2], "fallback: east-web: its site exchanges no metrics")
        self.assertEqual(lines[4].split(), ["SERVICE", "IP", "SITE", "WEIGHT", "STATE", "CHOSEN"])
        self.assertEqual(lines[5].split(), ["east-web", "192.0.2.10", "east", "1", "UP", "yes"])

    def test_resolveUnknownMetricsFollow(self):
        result = dict(EXPLAINED, candidates=[{"service": "w", "ip": "192.0.2.1", "hash": 77, "rtt_ms": 3.0}])
        header = render(parse("resolve x"), {"result": result}, False).splitlines()[3].split()
        self.assertEqual(header, ["SERVICE", "IP", "RTT_MS", "HASH"])

    def test_resolveJSONHasSpecKeys(self):
        value = json.loads(render(parse("resolve www.demo.gslb"), {"result": EXPLAINED}, True))
        self.assertEqual(value, EXPLAINED)
        for key in ("answer", "rcode", "core", "method", "fallback", "persistence", "candidates", "excluded"):
            self.assertIn(key, value)

    def test_changes(self):
        result = {"name": "www", "lb_method": "ROUNDROBIN", "configured_lb_method": "LEASTCONNECTION",
                  "cores": [0, 1], "runtime": {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []}}
        self.assertEqual(render(parse("set gslb vserver www -lbMethod ROUNDROBIN"), {"result": result}, False),
                         "vserver www: lbMethod ROUNDROBIN (configured LEASTCONNECTION); applied by cores 0, 1")
        back = dict(result, lb_method="LEASTCONNECTION", cores=[0])
        self.assertEqual(render(parse("set gslb vserver www -lbMethod LEASTCONNECTION"), {"result": back}, False),
                         "vserver www: lbMethod LEASTCONNECTION; applied by core 0")
        disabled = {"name": "east-web", "enabled": False, "cores": [], "runtime": {}}
        self.assertEqual(render(parse("disable gslb service east-web"), {"result": disabled}, False),
                         "service east-web: disabled; applied by no core (none is running)")
        enabled = dict(disabled, enabled=True, cores=[0, 1, 2])
        self.assertEqual(render(parse("enable gslb service east-web"), {"result": enabled}, False),
                         "service east-web: enabled; applied by cores 0, 1, 2")
        self.assertEqual(json.loads(render(parse("enable gslb service east-web"), {"result": enabled}, True)), enabled)


class DecisionHelpAndCompletionTests(SynchronousTestCase):
    def test_help(self):
        text = helpText()
        for synopsis in ("show gslb vserver [NAME]", "resolve NAME [TYPE] [--client IP] [--core N]",
                         "set gslb vserver NAME [-lbMethod METHOD]", "enable gslb service NAME",
                         "disable gslb service NAME"):
            self.assertIn(synopsis, text)
        # Every method is named where the command is described.
        for method in LB_METHODS:
            self.assertIn(method, helpText("set gslb vserver"))

    def tree(self):
        return completionTree({
            "vserver": ["api", "www"], "service": ["east-web", "west-web"], "site": ["east"],
            "domain": ["api.demo.gslb", "www.demo.gslb"],
        })

    def test_vserverNamesThenMethods(self):
        node = self.tree()["set"]["gslb"]["vserver"]
        self.assertEqual(set(node), {"api", "www"})
        self.assertEqual(set(node["www"]), {"-lbMethod"})
        self.assertEqual(set(node["www"]["-lbMethod"]), set(LB_METHODS))
        self.assertEqual(set(self.tree()["show"]["gslb"]["vserver"]), {"api", "www"})

    def test_serviceNames(self):
        tree = self.tree()
        for verb in ("enable", "disable"):
            self.assertEqual(set(tree[verb]["gslb"]["service"]), {"east-web", "west-web"})

    def test_resolveDomainsTypesOptions(self):
        node = self.tree()["resolve"]
        self.assertEqual(set(node), {"api.demo.gslb", "www.demo.gslb"})
        after = node["www.demo.gslb"]
        # The type is optional: the options complete right after the name too.
        self.assertIn("--client", after)
        self.assertIn("--core", after)
        self.assertIn("AAAA", after)
        self.assertIn("--core", after["AAAA"])

    def test_noNamesKnown(self):
        tree = completionTree()
        self.assertEqual(set(tree["set"]["gslb"]["vserver"]), {"-lbMethod"})
        self.assertIn("AAAA", tree["resolve"])

    def test_entityNames(self):
        names = entityNames({
            "site": [{"name": "west"}, {"name": "east"}],
            "service": [{"name": "east-web"}],
            "vserver": [{"name": "www", "domains": ["www.demo.gslb", "web.demo.gslb"]}, {"name": "api"}],
        })
        self.assertEqual(names, {
            "site": ["east", "west"], "service": ["east-web"], "vserver": ["api", "www"],
            "domain": ["web.demo.gslb", "www.demo.gslb"],
        })


class DecisionRunOnceTests(SynchronousTestCase):
    run_ = grammar.RunOnceTests.run_

    def test_resolveCallsWithNormalisedArguments(self):
        code, out, err, calls = self.run_("resolve www.demo.gslb aaaa --core 1", {"result": EXPLAINED}, True)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(calls, [(Resolve, {"name": "www.demo.gslb", "qtype": "AAAA", "core": 1})])
        self.assertEqual(json.loads(out)["answer"], ["198.51.100.10"])

    def test_unknownVServerOneLine(self):
        code, out, err, calls = self.run_("set gslb vserver nope -lbMethod RTT", NoSuchEntity("no such vserver nope"))
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "gslb-console: set gslb vserver: no such vserver nope\n")

    def test_coreUnavailableOneLine(self):
        code, out, err, calls = self.run_("resolve x --core 3", CoreUnavailable("core 3 is not serving (it is down)"))
        self.assertEqual(code, 1)
        self.assertEqual(err, "gslb-console: resolve: core 3 is not serving (it is down)\n")

    def test_badTypeIsAUsageError(self):
        code, out, err, calls = self.run_("resolve x BOGUS")
        self.assertEqual((code, calls), (2, []))


class CompleterTests(SynchronousTestCase):
    """The interactive prompt's completer over the grammar and the names the endpoint knows."""

    def complete(self, text):
        from prompt_toolkit.completion import CompleteEvent
        from prompt_toolkit.document import Document

        from console.main import makeCompleter

        completer = makeCompleter({"vserver": ["www"], "service": ["east-web", "west-web"],
                                   "domain": ["www.demo.gslb"]})
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    def test_namesAndMethods(self):
        self.assertEqual(self.complete("set gslb vserver "), ["www"])
        self.assertEqual(self.complete("set gslb vserver www -lbMethod R"), ["ROUNDROBIN", "RTT"])
        self.assertEqual(self.complete("SET gslb vserver www -lbmethod least")[:2],
                         ["LEASTCONNECTION", "LEASTRESPONSETIME"])
        self.assertEqual(self.complete("disable gslb service "), ["east-web", "west-web"])
        self.assertEqual(self.complete("enable gslb service w"), ["west-web"])

    def test_optionsWithTheirDashes(self):
        self.assertEqual(self.complete("resolve www.demo.gslb --c"), ["--client", "--core"])
        self.assertEqual(self.complete("resolve www.demo.gslb AAAA --co"), ["--core"])
        self.assertEqual(self.complete("set gslb vserver www -"), ["-lbMethod"])
        self.assertEqual(self.complete("resolve "), ["www.demo.gslb"])
