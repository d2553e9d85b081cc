"""
Tests for L{gslb_twisted.nsimport}: C{gslb-import}, a NetScaler
configuration's GSLB part as a topology.

What is checked is what a user sees: the topology the project's own loader
reads from the output, the lines listed as not imported (with their
numbers), the comments heading the file, and the messages of the command.
"""

from __future__ import annotations

import io
import os
import sys
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import LB_METHODS, parseTopology, shippedFixture
from gslb_twisted.nsimport import ImportOptions, NSConfigError, importConfig
from gslb_twisted.nsimport.cli import main
from gslb_twisted.nsimport.lexer import decode, readCommands, splitArguments, tokenize
from gslb_twisted.nsimport.mapping import arityFor, commandLength
from gslb_twisted.nsimport.rebase import parseNetwork, planRebase
from gslb_twisted.nsimport.tomlwriter import Document, Table, formatString, render

FIXTURE = shippedFixture("netscaler", "ns.conf")

BASE = """\
add ns ip 10.0.0.10 255.255.255.0 -type SNIP
add gslb site local 10.0.0.10
add gslb site remote 10.0.1.10
add gslb service svc-local 10.0.0.20 HTTP 80 -siteName local
add gslb service svc-remote 10.0.1.20 HTTP 80 -siteName remote
add gslb vserver vs HTTP{vserver}
bind gslb vserver vs -serviceName svc-local
bind gslb vserver vs -serviceName svc-remote
bind gslb vserver vs -domainName www.example.com
"""


def lineOf(text: str, needle: str) -> int:
    """The number of the first line of C{text} holding C{needle}."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the configuration")


class ImportMixin:
    def imported(self, text: str, **options):
        """
        Import C{text}; return the topology document as tomllib reads the
        output (after checking the project's loader accepts it) and the
        result.
        """
        result = importConfig(text, ImportOptions(**options))
        output = render(result.document)
        document = tomllib.loads(output)
        parseTopology(document, os.path.join(os.getcwd(), "topology.toml"))
        return document, result

    def base(self, vserver: str = "", extra: str = "", **options):
        return self.imported(BASE.format(vserver=vserver) + extra, **options)

    def vserver(self, document: dict, name: str = "vs") -> dict:
        return next(v for v in document["vserver"] if v["name"] == name)

    def service(self, document: dict, name: str) -> dict:
        return next(s for s in document["service"] if s["name"] == name)

    def site(self, document: dict, name: str) -> dict:
        return next(s for s in document["site"] if s["name"] == name)

    def notes(self, result, line: int) -> list[str]:
        return [n.describe() for n in result.unsupported if n.line == line]

    def assertListed(self, result, line: int, *fragments: str) -> None:
        notes = self.notes(result, line)
        self.assertTrue(
            any(all(f in note for f in fragments) for note in notes),
            f"no note for line {line} with {fragments}: {notes}",
        )

    def assertError(self, text: str, line, *fragments: str, **options) -> NSConfigError:
        error = self.assertRaises(NSConfigError, importConfig, text, ImportOptions(**options))
        self.assertEqual(error.line, line)
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        return error


# --- lexing -----------------------------------------------------------------


class LexerTests(SynchronousTestCase):
    def texts(self, line: str) -> list[str]:
        return [t.text for t in tokenize(line)]

    def test_spacesAndTabsSeparate(self):
        self.assertEqual(self.texts("add  gslb\tvserver   vs HTTP "), ["add", "gslb", "vserver", "vs", "HTTP"])

    def test_doubleQuotesWithEscapes(self):
        self.assertEqual(
            self.texts(r'-send "GET / HTTP/1.1\r\nHost: a\r\n" -recv "\"ok\" \\ done"'),
            ["-send", "GET / HTTP/1.1\r\nHost: a\r\n", "-recv", '"ok" \\ done'],
        )

    def test_unknownEscapeKeepsItsBackslash(self):
        self.assertEqual(self.texts(r'-rule "a\.b"'), ["-rule", "a\\.b"])

    def test_singleQuotesAreLiteral(self):
        self.assertEqual(self.texts("""-rule 'HTTP.REQ.URL.CONTAINS("x") \\n'"""), ["-rule", 'HTTP.REQ.URL.CONTAINS("x") \\n'])

    def test_quotedPiecesJoinTheirNeighbours(self):
        self.assertEqual(self.texts('-comment ab"c d"\'e f\''), ["-comment", "abc de f"])

    def test_emptyQuotedString(self):
        tokens = tokenize('-comment ""')
        self.assertEqual([(t.text, t.quoted) for t in tokens], [("-comment", False), ("", True)])

    def test_aQuotedArgumentIsNeverAnOption(self):
        positionals, options = splitArguments(tokenize('vs "-notAnOption" -comment "-x"'))
        self.assertEqual(positionals, ["vs", "-notAnOption"])
        self.assertEqual([(o.name, o.values) for o in options], [("-comment", ("-x",))])

    def test_unterminatedQuotesNameTheLine(self):
        for text in ('add gslb vserver "vs HTTP', "add gslb vserver 'vs HTTP"):
            error = self.assertRaises(NSConfigError, tokenize, text, 7)
            self.assertEqual(error.line, 7)
            self.assertIn("unterminated", str(error))
            self.assertEqual(error.located("ns.conf"), f"ns.conf:7: {error}")

    def test_optionNamesFoldCaseValuesDoNot(self):
        _, options = splitArguments(tokenize("-LBMETHOD RoundRobin -lbMethod RTT"))
        self.assertEqual([o.key for o in options], ["lbmethod", "lbmethod"])
        self.assertEqual([o.values for o in options], [("RoundRobin",), ("RTT",)])

    def test_negativeNumbersAreValues(self):
        _, options = splitArguments(tokenize("-offset -1"))
        self.assertEqual(options[0].values, ("-1",))

    def test_arityLeavesTheRestPositional(self):
        arity = arityFor(("add", "gslb", "site"))
        positionals, options = splitArguments(tokenize("s1 -siteType LOCAL 10.0.0.1 -publicIP 192.0.2.1"), arity)
        self.assertEqual(positionals, ["s1", "10.0.0.1"])
        self.assertEqual([(o.key, o.values) for o in options], [("sitetype", ("LOCAL",)), ("publicip", ("192.0.2.1",))])

    def test_listsAndUnits(self):
        arity = arityFor(("add", "lb", "monitor"))
        _, options = splitArguments(tokenize("-respCode 200 302 400-499 -interval 500 MSEC -resptimeout 2"), arity)
        self.assertEqual(
            [(o.key, o.values) for o in options],
            [("respcode", ("200", "302", "400-499")), ("interval", ("500", "MSEC")), ("resptimeout", ("2",))],
        )

    def test_commentsBlankLinesAndCRLF(self):
        text = "#NS13.1 Build 52.19\r\n\r\n   # indented comment\r\nADD GSLB Vserver vs HTTP -lbMethod RTT\r\n\t\r\n"
        commands = list(readCommands(text, commandLength, arityFor))
        self.assertEqual(len(commands), 1)
        command = commands[0]
        self.assertEqual(command.line, 4)
        self.assertEqual(command.words, ("add", "gslb", "vserver"))
        self.assertEqual(command.positionals, ("vs", "HTTP"))
        self.assertEqual(command.options[0].values, ("RTT",))
        self.assertEqual(command.summary(), "ADD GSLB Vserver vs")

    def test_decodeDropsTheByteOrderMark(self):
        self.assertEqual(decode("\ufeffadd gslb site".encode()), "add gslb site")

    def test_decodeNamesTheLineOfABadByte(self):
        error = self.assertRaises(NSConfigError, decode, b"add ns ip\nset ns hostName caf\xe9\n")
        self.assertEqual(error.line, 2)
        self.assertIn("not UTF-8", str(error))


# --- the TOML writer ------------------------------------------------------------------


class TOMLWriterTests(SynchronousTestCase):
    def test_stringsRoundTrip(self):
        for value in ['plain', 'quote " and \\ backslash', "tab\tnew\nline\r\x00\x1f\x7f", "ünïcödé ✓", ""]:
            self.assertEqual(tomllib.loads(f"v = {formatString(value)}\n")["v"], value)

    def test_documentRoundTripsInOrder(self):
        table = Table("vserver", array=True, comments=["line 3\nwith a newline", "bell \x07"])
        table.add("name", "w w")
        table.add("ttl", 5, note="from -TTL\n# not a key")
        table.add("ratio", 1.0)
        table.add("on", True)
        table.add("services", ["a", {"name": "b", "weight": 2}])
        table.add("spillover", {"method": "CONNECTION", "threshold": 10})
        table.add("odd key", {"a.b": 1})
        child = Table("vserver.emulator")
        child.add("control", "unix:x.ctl")
        table.children.append(child)
        text = render(Document(header=["head", "", "more"], tables=[Table("appliance", []), table]))
        document = tomllib.loads(text)
        self.assertEqual(list(document["vserver"][0]), ["name", "ttl", "ratio", "on", "services", "spillover", "odd key", "emulator"])
        self.assertEqual(document["vserver"][0]["services"], ["a", {"name": "b", "weight": 2}])
        self.assertEqual(document["vserver"][0]["odd key"], {"a.b": 1})
        self.assertEqual(document["vserver"][0]["ratio"], 1.0)
        self.assertIn("# line 3\\x0awith a newline", text)
        self.assertIn("# bell \\x07", text)
        self.assertTrue(text.startswith("# head\n#\n# more\n"))

    def test_nonFiniteFloatsAreRefused(self):
        table = Table("t")
        table.add("x", float("inf"))
        self.assertRaises(ValueError, render, Document(tables=[table]))


# --- rebasing ---------------------------------------------------------------------------


class RebaseTests(SynchronousTestCase):
    def test_hostBitsAreKept(self):
        plan = planRebase(["10.20.0.10", "192.0.2.30"], [parseNetwork("127.0.0.0/8")])
        self.assertEqual(plan, {"10.20.0.10": "127.20.0.10", "192.0.2.30": "127.0.2.30"})

    def test_aTakenPlaceMovesOnInSortedOrder(self):
        plan = planRebase(["192.0.2.10", "10.0.2.10"], [parseNetwork("127.0.0.0/8")])
        self.assertEqual(plan, {"10.0.2.10": "127.0.2.10", "192.0.2.10": "127.0.2.11"})

    def test_networkAndBroadcastAddressesAreSkipped(self):
        plan = planRebase(["10.0.0.0", "10.0.0.255"], [parseNetwork("127.0.9.0/24")])
        self.assertEqual(plan, {"10.0.0.0": "127.0.9.1", "10.0.0.255": "127.0.9.2"})

    def test_onlyTheFamilyOfTheNetwork(self):
        plan = planRebase(["10.0.0.1", "2001:db8::1"], [parseNetwork("127.0.0.0/8")])
        self.assertEqual(plan, {"10.0.0.1": "127.0.0.1"})
        plan = planRebase(["10.0.0.1", "2001:db8::1"], [parseNetwork("fd00:127::/64")])
        self.assertEqual(plan, {"2001:db8::1": "fd00:127::1"})

    def test_tooSmall(self):
        error = self.assertRaises(ValueError, planRebase, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], [parseNetwork("127.0.9.0/30")])
        self.assertIn("too small", str(error))

    def test_badNetworks(self):
        self.assertRaises(ValueError, parseNetwork, "loopback")
        self.assertRaises(ValueError, planRebase, [], [parseNetwork("127.0.0.0/8"), parseNetwork("10.0.0.0/8")])


# --- sites -------------------------------------------------------------------------------


class SiteTests(ImportMixin, SynchronousTestCase):
    def test_theLocalSiteIsTheAppliance(self):
        document, _ = self.base()
        self.assertEqual(document["appliance"]["ip"], "10.0.0.10")
        self.assertEqual(document["appliance"]["name"], "local-appliance")
        self.assertEqual(self.site(document, "local"), {"name": "local", "ip": "10.0.0.10", "metric_exchange": False})
        self.assertEqual(self.site(document, "remote"), {"name": "remote", "ip": "10.0.1.10", "mep_port": 3011})

    def test_localBySiteType(self):
        text = BASE.format(vserver="").replace("add ns ip 10.0.0.10 255.255.255.0 -type SNIP\n", "")
        text = text.replace("add gslb site remote 10.0.1.10", "add gslb site remote -siteType LOCAL 10.0.1.10")
        document, _ = self.imported(text)
        self.assertEqual(document["appliance"]["ip"], "10.0.1.10")
        self.assertNotIn("mep_port", self.site(document, "remote"))

    def test_localByNSIP(self):
        text = BASE.format(vserver="").replace("add ns ip 10.0.0.10 255.255.255.0 -type SNIP", "set ns config -IPAddress 10.0.1.10 -netmask 255.255.255.0")
        document, _ = self.imported(text)
        self.assertEqual(document["appliance"]["ip"], "10.0.1.10")

    def test_localByOption(self):
        document, _ = self.base(localSite="remote")
        self.assertEqual(document["appliance"]["ip"], "10.0.1.10")
        error = self.assertRaises(NSConfigError, importConfig, BASE.format(vserver=""), ImportOptions(localSite="nowhere"))
        self.assertIn("--local-site 'nowhere': no such site (sites: local, remote)", str(error))

    def test_noLocalSite(self):
        text = BASE.format(vserver="").replace("add ns ip 10.0.0.10 255.255.255.0 -type SNIP\n", "")
        error = self.assertError(text, None, "no local site", "--local-site NAME")
        self.assertEqual(error.located("ns.conf"), f"ns.conf: {error}")

    def test_twoLocalSites(self):
        text = BASE.format(vserver="").replace("10.0.0.10\nadd gslb site remote 10.0.1.10", "10.0.0.10 -siteType LOCAL\nadd gslb site remote 10.0.1.10 -siteType LOCAL")
        self.assertError(text, 3, "a second local site", "'local' at line 2")

    def test_hostNameNamesTheAppliance(self):
        document, _ = self.base(extra="set ns hostName ns-fra-01\n")
        self.assertEqual(document["appliance"]["name"], "ns-fra-01")
        document, _ = self.base(extra="set ns hostName local\n")
        self.assertEqual(document["appliance"]["name"], "local-appliance")

    def test_remotePublicIPIsWhereMEPGoes(self):
        text = BASE.format(vserver="").replace("add gslb site remote 10.0.1.10", "add gslb site remote 10.0.1.10 -publicIP 198.51.100.10")
        document, _ = self.imported(text)
        self.assertEqual(self.site(document, "remote")["ip"], "198.51.100.10")

    def test_metricExchangeDisabledIsAStaticSite(self):
        document, _ = self.base(extra="set gslb site remote -metricExchange DISABLED\n")
        self.assertEqual(self.site(document, "remote"), {"name": "remote", "ip": "10.0.1.10", "metric_exchange": False})

    def test_unsupportedSiteOptionsAreListed(self):
        extra = "set gslb site remote -nwMetricExchange DISABLED -sessionExchange ENABLED -parentSite p -frobnicate 1\n"
        _, result = self.base(extra=extra)
        line = lineOf(BASE + extra, "set gslb site remote")
        self.assertListed(result, line, "-nwMetricExchange DISABLED", "always exchanged")
        self.assertListed(result, line, "-parentSite p", "not emulated")
        self.assertListed(result, line, "-frobnicate 1", "not an option gslb-import knows")
        self.assertFalse(any("sessionExchange" in n for n in self.notes(result, line)))
        self.assertIn("-sessionExchange ENABLED", [n.item for n in result.ignored])


# --- services ----------------------------------------------------------------------------


class ServiceTests(ImportMixin, SynchronousTestCase):
    def test_publicAddressAndPortAreAnswered(self):
        extra = "set gslb service svc-remote -publicIP 198.51.100.20 -publicPort 8080 -maxClient 500\n"
        document, _ = self.base(extra=extra)
        self.assertEqual(
            self.service(document, "svc-remote"),
            {"name": "svc-remote", "site": "remote", "ip": "198.51.100.20", "port": 8080, "type": "HTTP", "max_clients": 500},
        )

    def test_serverNames(self):
        text = "add server web1 10.0.1.30\n" + BASE.format(vserver="") + "add gslb service svc-named web1 SSL 443 -siteName remote\n"
        document, _ = self.imported(text)
        self.assertEqual(self.service(document, "svc-named")["ip"], "10.0.1.30")
        self.assertEqual(self.service(document, "svc-named")["type"], "SSL")

    def test_domainServersAreNotImported(self):
        text = "add server web1 www.example.net\n" + BASE.format(vserver="") + "add gslb service svc-named web1 HTTP 80 -siteName remote\n"
        _, result = self.imported(text)
        self.assertListed(result, lineOf(text, "svc-named"), "not imported", "domain-based services")

    def test_cipAndSitePersistenceAreListed(self):
        extra = "set gslb service svc-remote -cip ENABLED X-Client-IP -sitePersistence HTTPRedirect -cltTimeout 180\n"
        _, result = self.base(extra=extra)
        line = lineOf(BASE + extra, "set gslb service")
        self.assertListed(result, line, "-cip ENABLED X-Client-IP", "connection-proxy")
        self.assertListed(result, line, "-sitePersistence HTTPRedirect", "not emulated")
        self.assertIn(("-cltTimeout 180", line), [(n.item, n.line) for n in result.ignored])

    def test_cnameServicesAreLeftOut(self):
        extra = "add gslb service svc-cname -cnameEntry cdn.example.net -siteName remote\nbind gslb vserver vs -serviceName svc-cname\n"
        document, result = self.base(extra=extra)
        text = BASE + extra
        self.assertNotIn("svc-cname", [s["name"] for s in document["service"]])
        self.assertListed(result, lineOf(text, "add gslb service svc-cname"), "CNAME-based GSLB")
        self.assertListed(result, lineOf(text, "-serviceName svc-cname"), "the binding is left out")

    def test_unknownServiceTypeFallsBack(self):
        extra = "add gslb service svc-ftp 10.0.1.21 FTP 21 -siteName remote\n"
        document, result = self.base(extra=extra)
        self.assertEqual(self.service(document, "svc-ftp")["type"], "TCP")
        self.assertListed(result, lineOf(BASE + extra, "svc-ftp"), "FTP is not known here: recorded as TCP")

    def test_anyPort(self):
        extra = "add gslb service svc-any 10.0.1.22 ANY * -siteName remote\n"
        document, result = self.base(extra=extra)
        self.assertEqual(self.service(document, "svc-any")["port"], 65535)
        self.assertListed(result, lineOf(BASE + extra, "svc-any"), "port * (any)")

    def test_serviceErrors(self):
        self.assertError(BASE.format(vserver="") + "add gslb service s2 10.0.1.9 HTTP 80 -siteName mars\n", 10, "no site 'mars'")
        self.assertError(BASE.format(vserver="") + "add gslb service s2 10.0.1.9 HTTP 80\n", 10, "expected -siteName")
        self.assertError(BASE.format(vserver="") + "add gslb service s2 10.0.1.9 HTTP\n", 10, "expected the service's IP address")
        self.assertError(BASE.format(vserver="") + "add gslb service s2 nowhere HTTP 80 -siteName remote\n", 10, "'nowhere' is neither an IP address nor a server")
        self.assertError(BASE.format(vserver="") + "add gslb service s2 10.0.1.9 HTTP 99999 -siteName remote\n", 10, "port")
        self.assertError(BASE.format(vserver="") + "add gslb service svc-local 10.0.1.9 HTTP 80 -siteName remote\n", 10, "already defined at line 4")
        self.assertError(BASE.format(vserver="") + "set gslb service svc-local -maxClient lots\n", 10, "-maxClient: expected an integer")
        self.assertError(BASE.format(vserver="") + "set gslb service ghost -maxClient 1\n", 10, "no GSLB service 'ghost'")


# --- vservers ----------------------------------------------------------------------------


class VServerTests(ImportMixin, SynchronousTestCase):
    def test_netScalerDefaultsAreWrittenOut(self):
        document, _ = self.base()
        self.assertEqual(
            self.vserver(document),
            {"name": "vs", "domains": ["www.example.com"], "lb_method": "LEASTCONNECTION", "ttl": 5, "services": ["svc-local", "svc-remote"]},
        )

    def test_everyNetScalerMethod(self):
        for method in [m for m in LB_METHODS if m not in ("NONE", "STATIC", "CUSTOMLOAD")]:
            document, result = self.base(vserver=f" -lbMethod {method.lower()}")
            self.assertEqual(self.vserver(document)["lb_method"], method)
            self.assertEqual([n for n in result.unsupported if "lbMethod" in n.item], [])

    def test_customLoadRanksByReportedLoad(self):
        document, result = self.base(vserver=" -lbMethod CUSTOMLOAD")
        self.assertEqual(self.vserver(document)["lb_method"], "CUSTOMLOAD")
        self.assertEqual(self.vserver(document)["custom_load"], [{"metric": "load", "weight": 1}])
        self.assertListed(result, 6, "-lbMethod CUSTOMLOAD", "SNMP load monitors")

    def test_apiFallsBackToTheBackupMethod(self):
        document, result = self.base(vserver=" -lbMethod API -backupLBMethod RTT")
        self.assertEqual(self.vserver(document)["lb_method"], "RTT")
        self.assertListed(result, 6, "-lbMethod API", "backup method RTT")
        document, result = self.base(vserver=" -lbMethod API")
        self.assertEqual(self.vserver(document)["lb_method"], "ROUNDROBIN")
        self.assertListed(result, 6, "-lbMethod API", "ROUNDROBIN, NetScaler's last resort")

    def test_unknownMethodsFallBack(self):
        document, result = self.base(vserver=" -lbMethod LEASTREQUEST -backupLBMethod TOKEN")
        self.assertEqual(self.vserver(document)["lb_method"], "ROUNDROBIN")
        self.assertNotIn("backup_lb_method", self.vserver(document))
        self.assertListed(result, 6, "-lbMethod LEASTREQUEST", "not a GSLB method")
        self.assertListed(result, 6, "-backupLBMethod TOKEN", "not a GSLB method")

    def test_setOverridesAdd(self):
        document, _ = self.base(vserver=" -lbMethod RTT", extra="set gslb vserver vs -lbMethod SOURCEIPHASH -netmask 255.255.0.0 -v6netmasklen 48\n")
        vserver = self.vserver(document)
        self.assertEqual((vserver["lb_method"], vserver["netmask"], vserver["v6_netmask_len"]), ("SOURCEIPHASH", "255.255.0.0", 48))

    def test_hexNetmask(self):
        document, _ = self.base(vserver=" -lbMethod SOURCEIPHASH -netmask 0xFFFFFF00")
        self.assertEqual(self.vserver(document)["netmask"], "255.255.255.0")

    def test_persistence(self):
        document, _ = self.base(vserver=" -persistenceType SOURCEIP -persistenceId 4 -timeout 7 -persistMask 255.255.255.0 -v6persistmasklen 56")
        vserver = self.vserver(document)
        self.assertEqual(
            [vserver[k] for k in ("persistence", "persistence_timeout", "persist_mask", "v6_persist_mask_len")],
            ["SOURCEIP", 420, "255.255.255.0", 56],
        )
        document, _ = self.base(vserver=" -persistenceType SOURCEIP")
        self.assertEqual(self.vserver(document)["persistence_timeout"], 120)

    def test_spillover(self):
        document, _ = self.base(vserver=" -soMethod CONNECTION -soThreshold 4000 -soBackupAction DROP")
        self.assertEqual(self.vserver(document)["spillover"], {"method": "CONNECTION", "threshold": 4000, "backup_action": "DROP"})
        document, result = self.base(vserver=" -soMethod BANDWIDTH -soThreshold 9000 -soBackupAction REDIRECT")
        self.assertEqual(self.vserver(document)["spillover"], {"method": "BANDWIDTH", "threshold": 9000})
        self.assertListed(result, 6, "-soBackupAction REDIRECT", "(ACCEPT)")
        document, result = self.base(vserver=" -soMethod HEALTH")
        self.assertNotIn("spillover", self.vserver(document))
        self.assertListed(result, 6, "-soMethod HEALTH", "no -soThreshold")
        document, _ = self.base(vserver=" -soMethod DYNAMICCONNECTION")
        self.assertEqual(self.vserver(document)["spillover"], {"method": "DYNAMICCONNECTION"})

    def test_edrMirAndTolerance(self):
        document, _ = self.base(vserver=" -lbMethod RTT -tolerance 12 -EDR ENABLED -MIR ENABLED")
        vserver = self.vserver(document)
        self.assertEqual((vserver["down_response"], vserver["answers"], vserver["tolerance"]), ("empty", 2, 12))

    def test_unsupportedVServerOptionsAreListed(self):
        _, result = self.base(vserver=" -dynamicWeight SERVICEWEIGHT -disablePrimaryOnDown ENABLED -state DISABLED -considerEffectiveState STATE_ONLY -ECS DISABLED")
        for item in ("-dynamicWeight SERVICEWEIGHT", "-disablePrimaryOnDown ENABLED", "-state DISABLED", "-considerEffectiveState STATE_ONLY", "-ECS DISABLED"):
            self.assertListed(result, 6, item)

    def test_defaultsOfUnsupportedFeaturesAreAccepted(self):
        _, result = self.base(vserver=" -dynamicWeight DISABLED -disablePrimaryOnDown DISABLED -state ENABLED -soPersistence DISABLED -appflowLog DISABLED")
        self.assertEqual(self.notes(result, 6), [])
        self.assertEqual(len([n for n in result.ignored if n.line == 6]), 5)

    def test_domainsAndTTL(self):
        extra = "bind gslb vserver vs -domainName WWW.Example.NET. -TTL 30\n"
        document, result = self.base(extra=extra)
        self.assertEqual(self.vserver(document)["domains"], ["www.example.com", "www.example.net"])
        self.assertEqual(self.vserver(document)["ttl"], 5)
        self.assertListed(result, 10, "-TTL 30", "answered with 5 s")
        text = BASE.format(vserver="").replace("-domainName www.example.com", "-domainName www.example.com -TTL 45")
        document, _ = self.imported(text)
        self.assertEqual(self.vserver(document)["ttl"], 45)

    def test_bindingWeights(self):
        text = BASE.format(vserver="").replace("-serviceName svc-remote", "-serviceName svc-remote -weight 7")
        document, _ = self.imported(text)
        self.assertEqual(self.vserver(document)["services"], ["svc-local", {"name": "svc-remote", "weight": 7}])

    def test_backupVServer(self):
        extra = (
            "add gslb vserver vs-dr HTTP -lbMethod ROUNDROBIN\n"
            "bind gslb vserver vs-dr -serviceName svc-remote\n"
            "bind gslb vserver vs-dr -domainName dr.example.com\n"
            "set gslb vserver vs -backupVServer vs-dr\n"
        )
        document, _ = self.base(extra=extra)
        self.assertEqual(self.vserver(document)["backup_vserver"], "vs-dr")

    def test_aBackupWithoutDomainGetsOneUnderItsPrimary(self):
        extra = "add gslb vserver vs-dr HTTP\nbind gslb vserver vs-dr -serviceName svc-remote\nset gslb vserver vs -backupVServer vs-dr\n"
        document, result = self.base(extra=extra)
        self.assertEqual(self.vserver(document, "vs-dr")["domains"], ["_vs-dr.www.example.com"])
        self.assertListed(result, 10, "backup of vserver vs", "_vs-dr.www.example.com")

    def test_aVServerWithoutDomainOrServicesIsLeftOut(self):
        extra = "add gslb vserver lonely HTTP\nbind gslb vserver lonely -serviceName svc-remote\nadd gslb vserver empty HTTP\nbind gslb vserver empty -domainName e.example.com\n"
        document, result = self.base(extra=extra)
        self.assertEqual([v["name"] for v in document["vserver"]], ["vs"])
        self.assertListed(result, 10, "no domain is bound", "left out")
        self.assertListed(result, 12, "no service", "left out")

    def test_unsupportedBindings(self):
        extra = (
            "bind gslb vserver vs -serviceGroupName sg1\n"
            "bind gslb vserver vs -domainName www.example.com -backupIP 192.0.2.99 -cookieDomain example.com\n"
            "bind gslb vserver vs -domainName *.example.com\n"
        )
        text = BASE.format(vserver="").replace("bind gslb vserver vs -domainName www.example.com\n", "") + extra
        _, result = self.imported(text)
        self.assertListed(result, 9, "service groups")
        self.assertListed(result, 10, "-backupIP 192.0.2.99")
        self.assertListed(result, 10, "-cookieDomain example.com")
        self.assertListed(result, 11, "'*.example.com' is not a domain name", "wildcards")

    def test_vserverErrors(self):
        base = BASE.format(vserver="")
        self.assertError(base + "bind gslb vserver nope -serviceName svc-local\n", 10, "no GSLB vserver 'nope'")
        self.assertError(base + "bind gslb vserver vs -serviceName ghost\n", 10, "no GSLB service 'ghost'")
        self.assertError(base + "bind gslb vserver vs -serviceName svc-local\n", 10, "already bound")
        self.assertError(base + "add gslb vserver vs HTTP\n", 10, "already defined at line 6")
        self.assertError(base + "set gslb vserver vs -timeout 1\n", 10, "-timeout: expected an integer from 2 to 1440")
        self.assertError(base + "set gslb vserver vs -persistenceType COOKIE\n", 10, "expected one of SOURCEIP, NONE")
        self.assertError(base + "set gslb vserver vs -netmask 255.0.255.0\n", 10, "-netmask: expected a netmask")
        self.assertError(base + "set gslb vserver vs -backupVServer ghost\n", 10, "no GSLB vserver 'ghost'")
        self.assertError(
            base + "add gslb vserver other HTTP\nbind gslb vserver other -domainName www.example.com\n", 11,
            "already bound to vserver 'vs' at line 9",
        )
        loop = (
            "add gslb vserver b HTTP\nbind gslb vserver b -serviceName svc-remote\nbind gslb vserver b -domainName b.example.com\n"
            "set gslb vserver vs -backupVServer b\nset gslb vserver b -backupVServer vs\n"
        )
        self.assertError(base + loop, 13, "backup vservers in a loop: vs -> b -> vs")


# --- monitors ----------------------------------------------------------------------------


class MonitorTests(ImportMixin, SynchronousTestCase):
    def monitored(self, definition: str, service: str = "svc-remote", **options):
        text = BASE.format(vserver="") + definition + f"bind gslb service {service} -monitorName m\n"
        document, result = self.imported(text, **options)
        return self.service(document, service).get("monitor"), result, text

    def test_http(self):
        monitor, _, _ = self.monitored('add lb monitor m HTTP -respCode 200 302 400-402 -httpRequest "HEAD /h\u00e9alth HTTP/1.1" -interval 10 -resptimeout 4\n')
        self.assertEqual(monitor, {
            "type": "http", "url": "http://10.0.1.20:80/h%C3%A9alth", "interval": 10.0, "timeout": 4.0,
            "expect_status": [200, 302, 400, 401, 402],
        })

    def test_httpDefaultsAreNetScalers(self):
        monitor, _, _ = self.monitored("add lb monitor m HTTP\n")
        self.assertEqual(monitor, {"type": "http", "url": "http://10.0.1.20:80/", "interval": 5.0, "timeout": 2.0, "expect_status": [200]})

    def test_secureHTTPAndDestination(self):
        monitor, _, _ = self.monitored("add lb monitor m HTTP -secure YES -destIP 10.0.1.99 -destPort 8443 -httpRequest \"GET /x?y=1\"\n")
        self.assertEqual(monitor["url"], "https://10.0.1.99:8443/x?y=1")

    def test_httpECV(self):
        monitor, result, text = self.monitored(r'add lb monitor m HTTP-ECV -send "GET /status" -recv "\"ok\"" -interval 2 -resptimeout 1' + "\n")
        self.assertEqual(monitor, {
            "type": "http", "url": "http://10.0.1.20:80/status", "interval": 2.0, "timeout": 1.0,
            "expect_status": [200], "expect_content": '"ok"',
        })
        self.assertListed(result, lineOf(text, "add lb monitor"), "HTTP-ECV", "status 200")

    def test_tcpWithUnits(self):
        monitor, result, _ = self.monitored("add lb monitor m tcp -interval 500 MSEC -resptimeout 250 msec -downTime 30\n")
        self.assertEqual(monitor, {"type": "tcp", "interval": 0.5, "timeout": 0.25})
        self.assertEqual(self.notes(result, 10), [])
        monitor, _, _ = self.monitored("add lb monitor m TCP -interval 2 MIN\n")
        self.assertEqual(monitor["interval"], 120.0)

    def test_pingBecomesTCPAndIsListed(self):
        monitor, result, text = self.monitored("add lb monitor m PING -interval 3 -resptimeout 1 -retries 5 -downTime 10\n")
        self.assertEqual(monitor, {"type": "tcp", "interval": 3.0, "timeout": 1.0})
        line = lineOf(text, "add lb monitor")
        self.assertListed(result, line, "PING", "TCP connection")
        self.assertListed(result, line, "-retries 5")
        self.assertListed(result, line, "-downTime 10", "not emulated")

    def test_dnsAndUDP(self):
        monitor, result, text = self.monitored("add lb monitor m DNS -query example.com -queryType Address\n")
        self.assertEqual(monitor["type"], "dns")
        self.assertListed(result, lineOf(text, "add lb monitor"), "-query example.com")
        monitor, result, text = self.monitored('add lb monitor m UDP-ECV -send "hello"\n')
        self.assertEqual(monitor["type"], "udp")
        self.assertListed(result, lineOf(text, "add lb monitor"), '-send hello', "reachability only")

    def test_triggerComesFromTheSite(self):
        monitor, _, _ = self.monitored("add lb monitor m TCP\nset gslb site remote -triggerMonitor MEPDOWN\n")
        self.assertEqual(monitor["trigger"], "MEPDOWN")

    def test_builtInMonitors(self):
        text = BASE.format(vserver="") + "bind gslb service svc-remote -monitorName tcp-default\nbind gslb service svc-local -monitorName https\n"
        document, _ = self.imported(text)
        self.assertEqual(self.service(document, "svc-remote")["monitor"]["type"], "tcp")
        self.assertEqual(self.service(document, "svc-local")["monitor"]["url"], "https://10.0.0.20:80/")

    def test_lbBindOfAGSLBService(self):
        text = BASE.format(vserver="") + "add lb monitor m TCP\nbind lb monitor m svc-remote\n"
        document, _ = self.imported(text)
        self.assertEqual(self.service(document, "svc-remote")["monitor"]["type"], "tcp")

    def test_monitorsOfOtherServicesAreNotGSLB(self):
        text = BASE.format(vserver="") + "add lb monitor m HTTP -downTime 99 -frob 1\nadd service s1 10.0.0.50 HTTP 80\nbind lb monitor m s1\n"
        _, result = self.imported(text)
        self.assertEqual(result.unsupported, [])
        self.assertEqual(result.nonGSLB, {"add lb monitor": 1, "add ns ip": 1, "add service": 1, "bind lb monitor": 1})

    def test_oneMonitorPerService(self):
        text = BASE.format(vserver="") + "add lb monitor m TCP\nadd lb monitor n HTTP\nbind gslb service svc-remote -monitorName m\nbind gslb service svc-remote -monitorName n\n"
        document, result = self.imported(text)
        self.assertEqual(self.service(document, "svc-remote")["monitor"]["type"], "tcp")
        self.assertListed(result, 13, "keeps 'm' (line 12), not 'n'")

    def test_monitorsLeftOut(self):
        for definition, fragment in (
            ("add lb monitor m LDAP-ECV\n", "no equivalent"),
            ("add lb monitor m LOAD -metricTable t\n", "LOAD monitors"),
            ("add lb monitor m HTTP -reverse YES\n", "reverse monitor"),
            ("add lb monitor m HTTP -state DISABLED\n", "disabled monitor"),
        ):
            monitor, result, text = self.monitored(definition)
            self.assertIsNone(monitor)
            self.assertListed(result, lineOf(text, "add lb monitor"), fragment)
        text = BASE.format(vserver="") + "bind gslb service svc-remote -monitorName ghost\n"
        _, result = self.imported(text)
        self.assertListed(result, 10, "'ghost' is neither defined")

    def test_dropMonitors(self):
        monitor, result, _ = self.monitored("add lb monitor m TCP\n", dropMonitors=True)
        self.assertIsNone(monitor)
        self.assertIn("--drop-monitors", "\n".join(result.document.header))

    def test_monitorErrors(self):
        base = BASE.format(vserver="")
        self.assertError(base + "add lb monitor m TCP -interval 2 -resptimeout 2\nbind gslb service svc-remote -monitorName m\n", 10, "-resptimeout (2.0 s) must be less than -interval (2.0 s)")
        self.assertError(base + "add lb monitor m TCP -interval 5 FORTNIGHTS\nbind gslb service svc-remote -monitorName m\n", 10, "a unit SEC, MSEC or MIN")
        self.assertError(base + "add lb monitor m HTTP -respCode 2xx\nbind gslb service svc-remote -monitorName m\n", 10, "HTTP codes")
        self.assertError(base + "set lb monitor ghost -interval 5\n", 10, "no monitor 'ghost'")
        self.assertError(base + "add lb monitor m HTTP -respCode -interval 5\nbind gslb service svc-remote -monitorName m\n", 10, "expected HTTP codes")


# --- parameters, zones, DNS -------------------------------------------------------------


class ApplianceAndZoneTests(ImportMixin, SynchronousTestCase):
    def test_mepKeepAlive(self):
        document, _ = self.base()
        self.assertEqual((document["appliance"]["metrics_interval"], document["appliance"]["dead_interval"]), (1.0, 10.0))
        document, result = self.base(extra="set gslb parameter -MEPKeepAliveTimeout 6 -ldnsMask 255.255.255.0 -AutomaticConfigSync DISABLED\n")
        self.assertEqual(document["appliance"]["dead_interval"], 6.0)
        self.assertListed(result, 10, "-ldnsMask 255.255.255.0", "/24")
        self.assertEqual(len(self.notes(result, 10)), 1)

    def test_zonesFromSOAAndNSRecords(self):
        extra = (
            "add dns soaRec example.com -originServer ns1.example.com -contact admin.example.com -serial 7 -minimum 30 -TTL 600\n"
            "add dns nsRec example.com ns2.example.com -TTL 600\n"
            "add dns addRec ns2.example.com 192.0.2.53\n"
            "add dns addRec intranet.corp 10.9.9.9\n"
        )
        document, result = self.base(extra=extra)
        self.assertEqual(document["zone"], [{
            "name": "example.com", "ns": ["ns2.example.com"], "soa_minimum": 30, "soa_rname": "admin.example.com",
            "soa_serial": 7, "ttl": 600,
        }])
        self.assertListed(result, 12, "static DNS records are not served")
        self.assertEqual(self.notes(result, 13), [])
        self.assertEqual(result.nonGSLB["add dns addRec"], 1)

    def test_aDomainWithoutSOAIsItsOwnZone(self):
        document, _ = self.base()
        self.assertEqual(document["zone"], [{"name": "www.example.com"}])

    def test_zonesDoNotNest(self):
        extra = "add dns soaRec example.com -originServer ns1.example.com -contact h.example.com\nadd dns soaRec www.example.com -originServer ns1.example.com -contact h.example.com\n"
        document, result = self.base(extra=extra)
        self.assertEqual([z["name"] for z in document["zone"]], ["example.com"])
        self.assertListed(result, 11, "zones do not nest")

    def test_proxyModeZones(self):
        _, result = self.base(extra="add dns zone example.com -proxyMode NO\nadd dns zone example.org\n")
        self.assertEqual(self.notes(result, 10), [])
        self.assertListed(result, 11, "proxy mode")

    def test_adnsServicesAreTheDNSListeners(self):
        extra = "add service adns 10.0.0.53 ADNS 53\nadd service adns-tcp 10.0.0.53 ADNS_TCP 53\nadd service adns6 2001:db8::53 ADNS 53\n"
        document, _ = self.base(extra=extra)
        self.assertEqual(document["appliance"]["dns"], [
            "udp:53:interface=10.0.0.53", "tcp:53:interface=10.0.0.53", "udp:53:interface=2001\\:db8\\:\\:53",
        ])
        document, _ = self.base(extra=extra, dnsPort=5353)
        self.assertEqual(document["appliance"]["dns"][0], "udp:5353:interface=10.0.0.53")

    def test_mepPasswordsAreListedNotShown(self):
        extra = "set ns rpcNode 10.0.1.10 -password 0123abcd -encrypted -encryptmethod ENCMTHD_3 -secure YES\nset ns rpcNode 10.0.0.99 -password 99\n"
        _, result = self.base(extra=extra)
        self.assertListed(result, 10, "-password ...", "mep_secret")
        self.assertListed(result, 10, "-secure YES", "mep_tls")
        self.assertFalse(any("0123abcd" in n.describe() for n in result.unsupported + result.ignored))
        self.assertEqual(result.nonGSLB["set ns rpcNode"], 1)

    def test_otherGSLBCommandsAreListed(self):
        extra = "add gslb serviceGroup sg HTTP -siteName remote\nrm gslb vserver vs\nadd locationFile /var/netscaler/locdb/x\n"
        _, result = self.base(extra=extra)
        self.assertListed(result, 10, "service groups")
        self.assertListed(result, 11, "`rm` commands are not read")
        self.assertListed(result, 12, "--location-db")

    def test_nothingToImport(self):
        self.assertError("add ns ip 10.0.0.1 255.0.0.0\nenable ns feature LB\n", None, "no GSLB site")
        self.assertError(BASE.format(vserver="").split("add gslb vserver")[0], None, "no GSLB vserver")


class RebaseImportTests(ImportMixin, SynchronousTestCase):
    def test_everyAddressMovesAndTheMapIsInTheHeader(self):
        extra = "add service adns 10.0.0.53 ADNS 53\nadd gslb service svc6 2001:db8::20 HTTP 80 -siteName remote\n"
        document, result = self.base(extra=extra, rebase=(parseNetwork("127.0.0.0/8"),))
        self.assertEqual(document["appliance"]["ip"], "127.0.0.10")
        self.assertEqual(document["appliance"]["dns"], ["udp:5300:interface=127.0.0.53"])
        self.assertEqual(self.site(document, "remote")["ip"], "127.0.1.10")
        self.assertEqual(self.site(document, "remote")["emulator"], {"control": "unix:remote.ctl"})
        self.assertNotIn("emulator", self.site(document, "local"))
        self.assertEqual(self.service(document, "svc-local")["ip"], "127.0.0.20")
        self.assertEqual(self.service(document, "svc6")["ip"], "2001:db8::20")
        self.assertIn("  10.0.1.20 -> 127.0.1.20", result.document.header)
        self.assertEqual(result.rebased["10.0.1.10"], "127.0.1.10")

    def test_monitorURLsFollow(self):
        text = BASE.format(vserver="") + "add lb monitor m HTTP -destIP 10.0.1.99\nbind gslb service svc-remote -monitorName m\n"
        document, _ = self.imported(text, rebase=(parseNetwork("127.0.0.0/8"),))
        self.assertEqual(self.service(document, "svc-remote")["monitor"]["url"], "http://127.0.1.99:80/")


# --- the shipped fixture ------------------------------------------------------------------


class FixtureTests(ImportMixin, SynchronousTestCase):
    def setUp(self):
        with open(FIXTURE, "rb") as f:
            self.text = decode(f.read())
        self.document, self.result = self.imported(self.text)

    def test_theLoaderAcceptsIt(self):
        topology = parseTopology(self.document, os.path.join(os.getcwd(), "topology.toml"))
        self.assertEqual(topology.appliance.name, "ns-fra-01")
        self.assertEqual(topology.appliance.ip, "10.10.0.10")
        self.assertEqual([s.name for s in topology.sites], ["site-fra", "site-nyc", "site-sgp", "site-legacy"])
        self.assertEqual([z.name for z in topology.zones], ["example.com", "www.example.org"])

    def test_vserversAndMethods(self):
        methods = {v["name"]: (v["lb_method"], v.get("backup_lb_method")) for v in self.document["vserver"]}
        self.assertEqual(methods, {
            "vs-www": ("LEASTCONNECTION", "ROUNDROBIN"),
            "vs-www-dr": ("ROUNDROBIN", None),
            "vs-api": ("RTT", "STATICPROXIMITY"),
            "vs-geo": ("STATICPROXIMITY", "LEASTCONNECTION"),
            "vs-hash": ("SOURCEIPHASH", None),
            "vs-load": ("CUSTOMLOAD", None),
            "vs-rr": ("ROUNDROBIN", None),
            "vs-app": ("ROUNDROBIN", "ROUNDROBIN"),
        })
        www = self.vserver(self.document, "vs-www")
        self.assertEqual(www["services"], [{"name": "gs-www-fra", "weight": 3}, {"name": "gs-www-nyc", "weight": 2}, "gs-www-sgp", "gs-www6-nyc"])
        self.assertEqual((www["ttl"], www["persistence_timeout"], www["backup_vserver"]), (30, 300, "vs-www-dr"))
        self.assertEqual(www["spillover"], {"method": "CONNECTION", "threshold": 4000, "backup_action": "ACCEPT"})

    def test_servicesAreAnsweredWithPublicAddresses(self):
        services = {s["name"]: (s["site"], s["ip"], s["port"]) for s in self.document["service"]}
        self.assertEqual(services["gs-www-sgp"], ("site-sgp", "192.0.2.20", 80))
        self.assertEqual(services["gs-app-legacy"], ("site-legacy", "10.40.1.40", 80))
        self.assertNotIn("gs-media-cdn", services)
        self.assertEqual(self.service(self.document, "gs-api-legacy")["monitor"]["url"], "https://10.40.1.30:443/api/health")

    def test_unsupportedLinesAreListedWithTheirNumbers(self):
        expected = {
            "add gslb vserver vs-api": ("add gslb vserver vs-api", "-dynamicWeight SERVICECOUNT"),
            "add gslb service gs-www-nyc": ("add gslb service gs-www-nyc", "-cip ENABLED X-Client-IP"),
            "add gslb serviceGroup": ("add gslb serviceGroup sg-batch", ""),
            "-domainName api.example.com": ("bind gslb vserver vs-api", "-backupIP 203.0.113.99"),
            "add lb monitor mon-ping": ("add lb monitor mon-ping", "-retries 5"),
            "set gslb parameter": ("set gslb parameter", "-ldnsMask 255.255.255.0"),
            "add locationFile": ("add locationFile", ""),
        }
        header = "\n".join(self.result.document.header)
        for needle, (subject, item) in expected.items():
            line = lineOf(self.text, needle)
            self.assertListed(self.result, line, subject, item)
            self.assertIn(f"  line {line}: {subject}", header)

    def test_nonGSLBLinesAreCountedNotListed(self):
        self.assertEqual(sum(self.result.nonGSLB.values()), 28)
        self.assertEqual(self.result.nonGSLB["add lb vserver"], 1)
        listed = {n.line for n in self.result.unsupported}
        for needle in ("add lb vserver", "add vlan", "enable ns feature", "set ns rpcNode 10.10.0.5", "mon-lb-only HTTP"):
            self.assertNotIn(lineOf(self.text, needle), listed)

    def test_deterministicWhateverTheLineEndings(self):
        again = render(importConfig(self.text.replace("\n", "\r\n")).document)
        self.assertEqual(again, render(self.result.document))


# --- the command ---------------------------------------------------------------------------


class CommandTests(SynchronousTestCase):
    def invoke(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def write(self, text: str) -> str:
        path = self.mktemp() + ".conf"
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_writesTheTopologyAndListsOnStandardError(self):
        output = self.mktemp() + ".toml"
        code, out, err = self.invoke(FIXTURE, "-o", output)
        self.assertEqual(code, 0)
        self.assertEqual(out, "")
        with open(FIXTURE, encoding="utf-8") as f:
            line = lineOf(f.read(), "add gslb vserver vs-api")
        self.assertIn(f"{FIXTURE}:{line}: unsupported: add gslb vserver vs-api: -dynamicWeight SERVICECOUNT:", err)
        self.assertIn(f"gslb-import: wrote {output}: 4 sites, 10 services, 8 vservers, 2 zones;", err)
        with open(output, "rb") as f:
            self.assertEqual(parseTopology(tomllib.load(f), output).appliance.name, "ns-fra-01")

    def test_standardOutputAndVerbose(self):
        path = self.write(BASE.format(vserver=" -appflowLog DISABLED"))
        code, out, err = self.invoke(path, "--verbose")
        self.assertEqual(code, 0)
        self.assertIn('[appliance]\nname = "local-appliance"', out)
        self.assertIn(f"{path}:6: ignored: add gslb vserver vs: -appflowLog DISABLED", err)

    def test_errorsNameTheFileAndLine(self):
        path = self.write(BASE.format(vserver="") + "bind gslb vserver vs -serviceName ghost\n")
        code, out, err = self.invoke(path)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, f"gslb-import: {path}:10: bind gslb vserver vs: no GSLB service 'ghost' is defined (add gslb service)\n")
        self.assertNotIn("Traceback", err)

    def test_unterminatedQuote(self):
        path = self.write('add gslb site s 10.0.0.1 -publicIP "10.0.0.2\n')
        code, _, err = self.invoke(path)
        self.assertEqual(code, 1)
        self.assertIn(f"{path}:1: unterminated double quote", err)

    def test_unreadableFiles(self):
        code, _, err = self.invoke("/nonexistent/ns.conf")
        self.assertEqual((code, err), (1, "gslb-import: /nonexistent/ns.conf: cannot be read (No such file or directory)\n"))
        code, _, err = self.invoke(FIXTURE, "-o", "/nonexistent/dir/t.toml")
        self.assertEqual((code, err), (1, "gslb-import: /nonexistent/dir/t.toml: its directory does not exist\n"))

    def test_strictWritesNothing(self):
        output = self.mktemp() + ".toml"
        code, _, err = self.invoke(FIXTURE, "-o", output, "--strict")
        self.assertEqual(code, 1)
        self.assertIn("--strict: nothing written", err)
        self.assertFalse(os.path.exists(output))
        path = self.write(BASE.format(vserver=""))
        self.assertEqual(self.invoke(path, "--strict")[0], 0)

    def test_aBadLocationDatabaseIsReportedNotWritten(self):
        output = self.mktemp() + ".toml"
        code, _, err = self.invoke(FIXTURE, "-o", output, "--location-db", "/nonexistent.csv")
        self.assertEqual(code, 1)
        self.assertIn("the imported topology does not load:", err)
        self.assertIn("location_db", err)
        self.assertFalse(os.path.exists(output))

    def test_usageErrors(self):
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(SystemExit, main, [FIXTURE, "--rebase", "loopback"])
        self.assertEqual(error.code, 2)
        self.assertIn("is not a network such as 127.0.0.0/8", stderr.getvalue())


# --- robustness ----------------------------------------------------------------------------

with open(FIXTURE, encoding="utf-8") as _f:
    _FIXTURE_LINES = _f.read().split("\n")
_WORDS = sorted({w for line in _FIXTURE_LINES for w in line.split()}) + ["", "*", "-1", "0", "999999", "::1", '"', "'"]


class RobustnessTests(ImportMixin, SynchronousTestCase):
    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(st.lists(
        st.tuples(st.integers(0, len(_FIXTURE_LINES) - 1), st.sampled_from(("drop", "insert", "replace", "upper", "delete")),
                  st.integers(0, 40), st.sampled_from(_WORDS)),
        min_size=1, max_size=4,
    ))
    def test_anyEditIsImportedOrRefusedByLine(self, edits):
        """
        Whatever a configuration holds, the import either gives a topology
        the loader accepts or an error naming a line of it (or the file).
        """
        lines = list(_FIXTURE_LINES)
        for index, edit, position, word in edits:
            words = lines[index].split(" ")
            if edit == "drop" and words:
                words.pop(position % len(words))
            elif edit == "insert":
                words.insert(position % (len(words) + 1), word)
            elif edit == "replace" and words:
                words[position % len(words)] = word
            elif edit == "upper":
                words = [w.upper() for w in words]
            else:
                words = []
            lines[index] = " ".join(words)
        text = "\n".join(lines)
        try:
            self.imported(text, rebase=(parseNetwork("127.0.0.0/8"),))
        except NSConfigError as e:
            self.assertTrue(e.line is None or 1 <= e.line <= len(lines), e.line)
