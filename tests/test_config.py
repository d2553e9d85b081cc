"""
Tests for L{gslb_twisted.config}: the topology file (SPEC section 3).

Every error test checks what a user reads: the file, the table (with its
name), the key, and what was expected and found.
"""

from __future__ import annotations

import copy
import dataclasses
import operator
import os
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import (
    CompiledTopologyError,
    ConfigError,
    TCPLimits,
    Topology,
    demoTopologyPath,
    loadTopology,
    parseTopology,
    readCompiledTopology,
    writeCompiledTopology,
)

PATH = "topo.toml"


def minimal() -> dict:
    """The smallest valid document, as tomllib would return it."""
    return {
        "appliance": {"name": "gslb1", "ip": "127.0.0.5"},
        "zone": [{"name": "demo.gslb"}],
        "site": [{"name": "east", "ip": "127.0.0.2"}],
        "service": [{"name": "east-web", "site": "east", "ip": "192.0.2.10"}],
        "vserver": [{"name": "www", "domains": ["www.demo.gslb"], "services": ["east-web"]}],
    }


def snmpDocument() -> dict:
    """L{minimal} plus a Linux host polled over SNMP, bound to www."""
    doc = minimal()
    doc["site"].append({"name": "legacy", "ip": "127.0.0.40", "protocol": "snmp",
                        "snmp": {"port": 16101, "community": "public", "table": "linux-host"}})
    doc["service"].append({"name": "legacy-web", "site": "legacy", "ip": "192.0.2.40"})
    doc["vserver"][0]["services"] = ["east-web", "legacy-web"]
    return doc


def withVserver(doc: dict, name: str, **keys) -> dict:
    doc["vserver"].append({"name": name, "domains": [f"{name}.demo.gslb"], "services": ["east-web"], **keys})
    return doc


# The example of SPEC section 3, completed so that its references resolve
# (west site and service, www-dr vserver).
SPEC_EXAMPLE = """
[appliance]
name = "gslb1"
ip = "127.0.0.5"
cores = 2
dns = ["udp:5300:interface=127.0.0.1", "tcp:5300:interface=127.0.0.1"]
control = "unix:gslb1.ctl"
mep_port = 3011
mep_secret = "shared-secret"
mep_tls = false
metrics_interval = 1.0
dead_interval = 3.0
consolidation_interval = 0.5
location_db = "fixtures/locations.csv"

[[zone]]
name = "demo.gslb"
ns = ["ns1.demo.gslb"]
soa_minimum = 30

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = 3011
protocol = "mep"
metric_exchange = true
location = { lat = 40.7, lon = -74.0 }
  [site.emulator]
  control = "unix:east.ctl"
  seed = 7

[[site]]
name = "legacy"
ip = "127.0.0.40"
protocol = "snmp"
snmp = { port = 161, version = "2c", community = "public", table = "linux-host" }

[[site]]
name = "west"
ip = "127.0.0.3"
metric_exchange = false

[[metric_table]]
name = "my-lb"
metrics = { connections = "1.3.6.1.2.1.6.9.0", load = "1.3.6.1.4.1.2021.10.1.5.1" }

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"
port = 80
type = "HTTP"
weight = 1
max_clients = 1000
backend = "http://127.0.0.1:8081/health"
monitor = { type = "http", url = "http://127.0.0.1:8081/health", interval = 2.0, trigger = "ALWAYS" }

[[service]]
name = "west-web"
site = "west"
ip = "2001:db8::10"
weight = 3
monitor = { type = "tcp" }

[[vserver]]
name = "www"
domains = ["www.demo.gslb"]
lb_method = "LEASTCONNECTION"
backup_lb_method = "ROUNDROBIN"
down_response = "all"
ttl = 5
answers = 1
services = [{ name = "east-web", weight = 2 }, { name = "west-web" }]
custom_load = [
  { metric = "connections", weight = 1, ceiling = 1000, threshold = 900 },
  { metric = "response_time", weight = 2, ceiling = 500 },
]
persistence = "SOURCEIP"
persistence_timeout = 120
backup_vserver = "www-dr"
spillover = { method = "CONNECTION", threshold = 5000 }

[[vserver]]
name = "www-dr"
domains = ["www-dr.demo.gslb"]
services = ["west-web"]
"""


class ConfigTestCase(SynchronousTestCase):
    def assertConfigError(self, doc: dict, table: str, key, *fragments: str) -> ConfigError:
        """
        Parsing C{doc} fails, and the message names the file, C{table},
        C{key} and contains every fragment.
        """
        error = self.assertRaises(ConfigError, parseTopology, doc, PATH)
        message = str(error)
        self.assertEqual((error.path, error.table, error.key), (PATH, table, key), message)
        self.assertTrue(message.startswith(f"{PATH}: {table}"), message)
        if key is not None:
            self.assertIn(f"key {key!r}", message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return error

    def assertUnknownKey(self, doc: dict, target: dict, table: str, known: str) -> None:
        """A misspelt key in C{target} is refused, and the known keys listed."""
        target["colour"] = "blue"
        self.assertConfigError(doc, table, "colour", "unknown key", "known keys:", known, "found 'blue' (string)")

    def writeFile(self, content: bytes) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(content)
        return path


class FileTests(ConfigTestCase):
    """Reading the file: L{loadTopology}."""

    def test_unreadable(self):
        path = os.path.abspath(self.mktemp())
        error = self.assertRaises(ConfigError, loadTopology, path)
        self.assertEqual(str(error), f"{path}: file: cannot be read (No such file or directory)")

    def test_directory(self):
        path = os.path.abspath(self.mktemp())
        os.mkdir(path)
        error = self.assertRaises(ConfigError, loadTopology, path)
        self.assertTrue(str(error).startswith(f"{path}: file: cannot be read ("), str(error))

    def test_notTOML(self):
        path = self.writeFile(b'[appliance]\nname = "gslb1"\nip = 127.0.0.5\n')
        error = self.assertRaises(ConfigError, loadTopology, path)
        message = str(error)
        self.assertTrue(message.startswith(f"{path}: file: is not valid TOML ("), message)
        self.assertIn("line 3", message)

    def test_notUTF8(self):
        """A Latin-1 file is a ConfigError, not a UnicodeDecodeError traceback."""
        path = self.writeFile(b'[appliance]\nname = "caf\xe9"\n')
        error = self.assertRaises(ConfigError, loadTopology, path)
        self.assertIn(f"{path}: file: is not valid TOML (not UTF-8", str(error))

    def test_realPathInMessage(self):
        """Errors found after parsing name the file given, as twistd passes it."""
        path = self.writeFile(b'[appliance]\nname = "gslb1"\nmep_port = 0\n')
        error = self.assertRaises(ConfigError, loadTopology, path)
        self.assertEqual(
            str(error),
            f"{path}: [appliance]: key 'mep_port': expected a port number from 1 to 65535, found 0 (integer)",
        )

    def test_loadsFile(self):
        path = self.writeFile(SPEC_EXAMPLE.encode("utf-8"))
        self.assertEqual(loadTopology(path).path, path)


class StructureTests(ConfigTestCase):
    def test_missingAppliance(self):
        doc = minimal()
        del doc["appliance"]
        error = self.assertConfigError(doc, "[appliance]", None, "expected an [appliance] table")
        self.assertEqual(str(error), f"{PATH}: [appliance]: expected an [appliance] table")

    def test_applianceNotATable(self):
        doc = minimal()
        doc["appliance"] = [{"name": "gslb1"}]
        self.assertConfigError(doc, "[appliance]", None, "expected a table", "(array)")

    def test_missingRequiredKey(self):
        doc = minimal()
        del doc["service"][0]["ip"]
        self.assertConfigError(doc, "[[service]] 'east-web'", "ip", "expected an IPv4 or IPv6 address", "found nothing (the key is missing)")

    def test_unnamedTableLabelledByPosition(self):
        doc = minimal()
        doc["site"].append({"ip": "127.0.0.3"})
        self.assertConfigError(doc, "[[site]] #2", "name", "expected a non-empty string")

    def test_unknownTopLevelTable(self):
        doc = minimal()
        doc["vservers"] = doc.pop("vserver")
        self.assertConfigError(doc, "top level", "vservers", "unknown key", "vserver")


class UnknownKeyTests(ConfigTestCase):
    def test_appliance(self):
        doc = minimal()
        self.assertUnknownKey(doc, doc["appliance"], "[appliance]", "mep_port")

    def test_zone(self):
        doc = minimal()
        self.assertUnknownKey(doc, doc["zone"][0], "[[zone]] 'demo.gslb'", "soa_minimum")

    def test_site(self):
        doc = minimal()
        self.assertUnknownKey(doc, doc["site"][0], "[[site]] 'east'", "metric_exchange")

    def test_siteLocation(self):
        doc = minimal()
        doc["site"][0]["location"] = {"lat": 40.7, "lon": -74.0}
        self.assertUnknownKey(doc, doc["site"][0]["location"], "[[site]] 'east' location", "lon")

    def test_siteEmulator(self):
        doc = minimal()
        doc["site"][0]["emulator"] = {"seed": 7}
        self.assertUnknownKey(doc, doc["site"][0]["emulator"], "[[site]] 'east' emulator", "seed")

    def test_siteSNMP(self):
        doc = minimal()
        doc["site"][0].update(protocol="snmp", snmp={"community": "public"})
        self.assertUnknownKey(doc, doc["site"][0]["snmp"], "[[site]] 'east' snmp", "community")

    def test_metricTable(self):
        doc = minimal()
        doc["metric_table"] = [{"name": "my-lb", "metrics": {"connections": "1.3.6.1.2.1.6.9.0"}}]
        self.assertUnknownKey(doc, doc["metric_table"][0], "[[metric_table]] 'my-lb'", "metrics")

    def test_service(self):
        doc = minimal()
        self.assertUnknownKey(doc, doc["service"][0], "[[service]] 'east-web'", "max_clients")

    def test_serviceMonitor(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "tcp"}
        self.assertUnknownKey(doc, doc["service"][0]["monitor"], "[[service]] 'east-web' monitor", "trigger")

    def test_vserver(self):
        doc = minimal()
        self.assertUnknownKey(doc, doc["vserver"][0], "[[vserver]] 'www'", "lb_method")

    def test_vserverBinding(self):
        doc = minimal()
        doc["vserver"][0]["services"] = [{"name": "east-web"}]
        self.assertUnknownKey(doc, doc["vserver"][0]["services"][0], "[[vserver]] 'www' services[0]", "weight")

    def test_customLoad(self):
        doc = minimal()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[{"metric": "connections", "ceiling": 100}])
        self.assertUnknownKey(doc, doc["vserver"][0]["custom_load"][0], "[[vserver]] 'www' custom_load[0]", "threshold")

    def test_spillover(self):
        doc = minimal()
        doc["vserver"][0]["spillover"] = {"method": "CONNECTION", "threshold": 10}
        self.assertUnknownKey(doc, doc["vserver"][0]["spillover"], "[[vserver]] 'www' spillover", "threshold")


class TypeAndRangeTests(ConfigTestCase):
    def test_stringForInteger(self):
        doc = minimal()
        doc["service"][0]["port"] = "80"
        self.assertConfigError(doc, "[[service]] 'east-web'", "port", "expected a port number from 1 to 65535", "found '80' (string)")

    def test_floatForInteger(self):
        doc = minimal()
        doc["vserver"][0]["ttl"] = 5.0
        self.assertConfigError(doc, "[[vserver]] 'www'", "ttl", "expected an integer of seconds", "found 5.0 (float)")

    def test_boolForInteger(self):
        """TOML C{true} is not 1."""
        doc = minimal()
        doc["service"][0]["weight"] = True
        self.assertConfigError(doc, "[[service]] 'east-web'", "weight", "expected an integer from 1 to 100", "found True (boolean)")

    def test_boolForCores(self):
        doc = minimal()
        doc["appliance"]["cores"] = True
        self.assertConfigError(doc, "[appliance]", "cores", 'expected an integer from 1 to 256 or "auto"', "found True (boolean)")

    def test_boolForNumber(self):
        doc = minimal()
        doc["appliance"]["metrics_interval"] = True
        self.assertConfigError(doc, "[appliance]", "metrics_interval", "above 0", "found True (boolean)")

    def test_integerForBool(self):
        doc = minimal()
        doc["site"][0]["metric_exchange"] = 1
        self.assertConfigError(doc, "[[site]] 'east'", "metric_exchange", "expected true or false", "found 1 (integer)")

    def test_portZero(self):
        doc = minimal()
        doc["service"][0]["port"] = 0
        self.assertConfigError(doc, "[[service]] 'east-web'", "port", "from 1 to 65535", "found 0 (integer)")

    def test_portTooHigh(self):
        doc = minimal()
        doc["site"][0]["mep_port"] = 70000
        self.assertConfigError(doc, "[[site]] 'east'", "mep_port", "from 1 to 65535", "found 70000 (integer)")

    def test_weightZero(self):
        doc = minimal()
        doc["service"][0]["weight"] = 0
        self.assertConfigError(doc, "[[service]] 'east-web'", "weight", "from 1 to 100", "found 0 (integer)")

    def test_bindingWeightTooHigh(self):
        doc = minimal()
        doc["vserver"][0]["services"] = [{"name": "east-web", "weight": 101}]
        self.assertConfigError(doc, "[[vserver]] 'www' services[0]", "weight", "from 1 to 100", "found 101 (integer)")

    def test_answersZero(self):
        doc = minimal()
        doc["vserver"][0]["answers"] = 0
        self.assertConfigError(doc, "[[vserver]] 'www'", "answers", "from 1 to 64", "found 0 (integer)")

    def test_negativeInterval(self):
        doc = minimal()
        doc["appliance"]["consolidation_interval"] = -0.5
        self.assertConfigError(doc, "[appliance]", "consolidation_interval", "above 0", "found -0.5 (float)")

    def test_zeroInterval(self):
        doc = minimal()
        doc["appliance"]["metrics_interval"] = 0
        self.assertConfigError(doc, "[appliance]", "metrics_interval", "above 0", "found 0 (integer)")

    def test_negativeMonitorInterval(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "tcp", "interval": -1}
        self.assertConfigError(doc, "[[service]] 'east-web' monitor", "interval", "above 0", "found -1 (integer)")

    def test_notANumber(self):
        doc = minimal()
        doc["appliance"]["dead_interval"] = float("nan")
        self.assertConfigError(doc, "[appliance]", "dead_interval", "above 0", "found nan (float)")

    def test_latitude(self):
        doc = minimal()
        doc["site"][0]["location"] = {"lat": 91, "lon": 0}
        self.assertConfigError(doc, "[[site]] 'east' location", "lat", "from -90 to 90", "found 91 (integer)")

    def test_badIP(self):
        doc = minimal()
        doc["service"][0]["ip"] = "192.0.2.300"
        self.assertConfigError(doc, "[[service]] 'east-web'", "ip", "expected an IPv4 or IPv6 address", "found '192.0.2.300' (string)")

    def test_hostnameForIP(self):
        doc = minimal()
        doc["appliance"]["ip"] = "localhost"
        self.assertConfigError(doc, "[appliance]", "ip", "IPv4 or IPv6", "found 'localhost' (string)")


class EnumTests(ConfigTestCase):
    def test_lbMethod(self):
        doc = minimal()
        doc["vserver"][0]["lb_method"] = "FASTEST"
        self.assertConfigError(doc, "[[vserver]] 'www'", "lb_method", "LEASTCONNECTION", "CUSTOMLOAD", "found 'FASTEST' (string)")

    def test_backupLbMethod(self):
        doc = minimal()
        doc["vserver"][0]["backup_lb_method"] = "RANDOM"
        self.assertConfigError(doc, "[[vserver]] 'www'", "backup_lb_method", "ROUNDROBIN", "found 'RANDOM' (string)")

    def test_downResponse(self):
        doc = minimal()
        doc["vserver"][0]["down_response"] = "nxdomain"
        self.assertConfigError(doc, "[[vserver]] 'www'", "down_response", '"all", "empty", "servfail"', "found 'nxdomain' (string)")

    def test_persistence(self):
        doc = minimal()
        doc["vserver"][0]["persistence"] = "COOKIE"
        self.assertConfigError(doc, "[[vserver]] 'www'", "persistence", '"SOURCEIP", "NONE"', "found 'COOKIE' (string)")

    def test_protocol(self):
        doc = minimal()
        doc["site"][0]["protocol"] = "http"
        self.assertConfigError(doc, "[[site]] 'east'", "protocol", '"mep", "snmp"', "found 'http' (string)")

    def test_monitorType(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "icmp"}
        self.assertConfigError(doc, "[[service]] 'east-web' monitor", "type", "tcp, http, https, dns, udp", "found 'icmp' (string)")

    def test_monitorTrigger(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "tcp", "trigger": "SOMETIMES"}
        self.assertConfigError(doc, "[[service]] 'east-web' monitor", "trigger", "ALWAYS, MEPDOWN, MEPDOWN_SVCDOWN", "found 'SOMETIMES' (string)")

    def test_serviceType(self):
        doc = minimal()
        doc["service"][0]["type"] = "GOPHER"
        self.assertConfigError(doc, "[[service]] 'east-web'", "type", "HTTP", "found 'GOPHER' (string)")

    def test_enumsCaseFolded(self):
        """Enums are accepted in any case and stored as documented."""
        doc = minimal()
        doc["vserver"][0].update(lb_method="roundRobin", backup_lb_method="leastconnection", down_response="EMPTY", persistence="sourceip")
        doc["service"][0].update(type="http", monitor={"type": "TCP", "trigger": "mepdown"})
        topology = parseTopology(doc, PATH)
        vserver = topology.vservers[0]
        self.assertEqual(
            (vserver.lb_method, vserver.backup_lb_method, vserver.down_response, vserver.persistence),
            ("ROUNDROBIN", "LEASTCONNECTION", "empty", "SOURCEIP"),
        )
        service = topology.services[0]
        self.assertEqual((service.type, service.monitor.type, service.monitor.trigger), ("HTTP", "tcp", "MEPDOWN"))


class EndpointAndNameTests(ConfigTestCase):
    LONG = "udp:5300:interface=127.0.0.1"

    def test_dnsPortNotANumber(self):
        """The bad element is named, even when the whole array is too long to show."""
        doc = minimal()
        doc["appliance"]["dns"] = [self.LONG, "tcp:5300:interface=127.0.0.1", "udp:notaport"]
        self.assertConfigError(doc, "[appliance]", "dns[2]", "endpoint strings such as", "found 'udp:notaport' (string)")

    def test_dnsUnknownTransport(self):
        doc = minimal()
        doc["appliance"]["dns"] = ["sctp:53"]
        self.assertConfigError(doc, "[appliance]", "dns[0]", "endpoint strings", "found 'sctp:53' (string)")

    def test_dnsInterfaceNotAnIP(self):
        doc = minimal()
        doc["appliance"]["dns"] = [self.LONG, "tcp:5300:interface=localhost"]
        self.assertConfigError(doc, "[appliance]", "dns[1]", "endpoint strings", "found 'tcp:5300:interface=localhost' (string)")

    def test_dnsEmpty(self):
        doc = minimal()
        doc["appliance"]["dns"] = []
        self.assertConfigError(doc, "[appliance]", "dns", "a non-empty array", "found [] (array)")

    def test_controlNotAnEndpoint(self):
        doc = minimal()
        doc["appliance"]["control"] = "gslb.ctl"
        self.assertConfigError(doc, "[appliance]", "control", "unix:gslb.ctl", "found 'gslb.ctl' (string)")

    def test_vserverDomainEmptyLabel(self):
        doc = minimal()
        doc["vserver"][0]["domains"] = ["www.demo.gslb", "www2.demo.gslb", "bad..name.demo.gslb"]
        self.assertConfigError(doc, "[[vserver]] 'www'", "domains[2]", "DNS names", "found 'bad..name.demo.gslb' (string)")

    def test_zoneNameWithSpace(self):
        doc = minimal()
        doc["zone"][0]["name"] = "demo gslb"
        self.assertConfigError(doc, "[[zone]] 'demo gslb'", "name", "a DNS name", "found 'demo gslb' (string)")

    def test_labelTooLong(self):
        doc = minimal()
        doc["vserver"][0]["domains"] = ["a" * 64 + ".demo.gslb"]
        self.assertConfigError(doc, "[[vserver]] 'www'", "domains[0]", "DNS names", "aaaa")

    def test_labelStartsWithHyphen(self):
        doc = minimal()
        doc["zone"][0]["ns"] = ["-ns1.demo.gslb"]
        self.assertConfigError(doc, "[[zone]] 'demo.gslb'", "ns[0]", "DNS names", "found '-ns1.demo.gslb' (string)")

    def test_metricTableOIDNotNumeric(self):
        doc = minimal()
        doc["metric_table"] = [{"name": "my-lb", "metrics": {"connections": "tcpCurrEstab.0"}}]
        self.assertConfigError(doc, "[[metric_table]] 'my-lb'", "metrics.connections", "numeric OID", "found 'tcpCurrEstab.0' (string)")


class ReferenceTests(ConfigTestCase):
    def test_serviceUnknownSite(self):
        doc = minimal()
        doc["service"][0]["site"] = "esat"
        self.assertConfigError(doc, "[[service]] 'east-web'", "site", "the name of a [[site]] (known: east)", "found 'esat' (string)")

    def test_vserverUnknownService(self):
        doc = minimal()
        doc["vserver"][0]["services"] = ["east-web", "west-web"]
        self.assertConfigError(doc, "[[vserver]] 'www'", "services[1]", "(known: east-web)", "found 'west-web' (string)")

    def test_backupUnknown(self):
        doc = minimal()
        doc["vserver"][0]["backup_vserver"] = "www-dr"
        self.assertConfigError(doc, "[[vserver]] 'www'", "backup_vserver", "the name of a [[vserver]] (known: www)", "found 'www-dr' (string)")

    def test_backupLoop(self):
        doc = withVserver(minimal(), "dr", backup_vserver="www")
        doc["vserver"][0]["backup_vserver"] = "dr"
        self.assertConfigError(doc, "[[vserver]] 'www'", "backup_vserver", "without a loop (www -> dr -> www)", "found 'dr' (string)")

    def test_backupSelf(self):
        doc = minimal()
        doc["vserver"][0]["backup_vserver"] = "www"
        self.assertConfigError(doc, "[[vserver]] 'www'", "backup_vserver", "without a loop (www -> www)")

    def test_backupChain(self):
        """A chain without a loop is fine."""
        doc = withVserver(withVserver(minimal(), "dr", backup_vserver="dr2"), "dr2")
        doc["vserver"][0]["backup_vserver"] = "dr"
        self.assertEqual(parseTopology(doc, PATH).vserverByName["dr"].backup_vserver, "dr2")

    def test_snmpUnknownTable(self):
        doc = minimal()
        doc["site"][0].update(protocol="snmp", snmp={"table": "my-lb"})
        self.assertConfigError(doc, "[[site]] 'east' snmp", "table", "linux-host", "found 'my-lb' (string)")

    def test_snmpTableDeclared(self):
        doc = minimal()
        doc["site"][0].update(protocol="snmp", snmp={"table": "my-lb"})
        doc["metric_table"] = [{"name": "my-lb", "metrics": {"connections": ".1.3.6.1.2.1.6.9.0"}}]
        topology = parseTopology(doc, PATH)
        self.assertEqual(topology.sites[0].snmp.table, "my-lb")
        spec = topology.metric_tables[0].metrics["connections"]
        self.assertEqual((spec.oid, spec.type, spec.scale, spec.offset, spec.ceiling),
                         ("1.3.6.1.2.1.6.9.0", "gauge", 1.0, 0.0, None))
        self.assertIs(topology.metricTableOf(topology.sites[0]), topology.metric_tables[0])

    def test_shippedTables(self):
        """linux-host and the vendor template come with the product, fully specified."""
        doc = snmpDocument()
        topology = parseTopology(doc, PATH)
        linux = topology.metricTableOf(topology.siteByName["legacy"])
        self.assertEqual(linux.name, "linux-host")
        self.assertTrue(linux.origin.endswith(os.path.join("fixtures", "metric_tables", "linux-host.toml")))
        self.assertEqual(linux.metrics["connections"].oid, "1.3.6.1.2.1.6.9.0")
        self.assertEqual(linux.metrics["bandwidth"].type, "counter")
        self.assertEqual(linux.metrics["memory"].of, "1.3.6.1.4.1.2021.4.5.0")
        self.assertIn("f5-bigip-ltm", topology.tableByName)
        self.assertTrue(topology.tableByName["f5-bigip-ltm"].metrics["connections"].perService)

    def test_tableReplacesShipped(self):
        doc = snmpDocument()
        doc["metric_table"] = [{"name": "linux-host", "metrics": {"connections": "1.3.6.1.2.1.6.9.0"}}]
        topology = parseTopology(doc, PATH)
        self.assertEqual(list(topology.metricTableOf(topology.siteByName["legacy"]).metrics), ["connections"])

    def test_metricSpecForms(self):
        doc = snmpDocument()
        doc["metric_table"] = [{"name": "mine", "metrics": {
            "busy": {"oid": "1.3.6.1.4.1.2021.11.11.0", "scale": -1, "offset": 100, "ceiling": 100},
            "out": {"oid": ".1.3.6.1.2.1.31.1.1.1.10.{interface}", "type": "counter", "scale": 0.008},
            "used": {"oid": "1.3.6.1.4.1.2021.4.6.0", "type": "ratio", "of": "1.3.6.1.4.1.2021.4.5.0"},
        }}]
        table = parseTopology(doc, PATH).tableByName["mine"]
        self.assertEqual(table.metrics["out"].oid, "1.3.6.1.2.1.31.1.1.1.10.{interface}")
        self.assertEqual((table.metrics["busy"].scale, table.metrics["busy"].offset), (-1.0, 100.0))

    def test_metricSpecErrors(self):
        for spec, key, fragment in [
            ({"oid": "1.3.6.x"}, "oid", "a numeric OID"),
            ({"oid": "1.3.6.1.{nope}"}, "oid", "a numeric OID"),
            ({"oid": "1.3.6.1", "type": "rate"}, "type", '"gauge", "counter", "ratio"'),
            ({"oid": "1.3.6.1", "type": "ratio"}, "of", '"of" (the denominator OID) exactly when type = "ratio"'),
            ({"oid": "1.3.6.1", "of": "1.3.6.2"}, "of", "exactly when"),
            ({"oid": "1.3.6.1", "ceiling": 0}, "ceiling", "a number above 0"),
            ({"oid": "1.3.6.1", "unit": "kb"}, "unit", "unknown key"),
        ]:
            doc = snmpDocument()
            doc["metric_table"] = [{"name": "mine", "metrics": {"m": spec}}]
            self.assertConfigError(doc, "[[metric_table]] 'mine' metrics.m", key, fragment)

    def test_perServiceTableNeedsInstances(self):
        """A table whose OIDs hold {service} needs every service of the site to say its index."""
        doc = snmpDocument()
        doc["site"][1]["snmp"]["table"] = "f5-bigip-ltm"
        self.assertConfigError(doc, "[[service]] 'legacy-web'", "snmp_instance", "'f5-bigip-ltm'", "{service}")
        doc["service"][1]["snmp_instance"] = "/Common/vs_web"
        self.assertEqual(parseTopology(doc, PATH).serviceByName["legacy-web"].snmp_instance, "/Common/vs_web")

    def test_snmpV3Checks(self):
        cases = [
            ({"version": "3", "user": "u", "auth_protocol": "SHA"}, "auth_key", "a key (8 characters or more)"),
            ({"version": "3", "user": "u", "auth_protocol": "SHA", "auth_key": "short"}, "auth_key", "at least 8"),
            ({"version": "3", "user": "u", "priv_protocol": "AES", "priv_key": "privpass1"}, "auth_protocol", "authentication"),
            ({"version": "3", "user": "u", "auth_key": "authpass1"}, "auth_protocol", "a protocol for auth_key"),
        ]
        for settings, key, fragment in cases:
            doc = snmpDocument()
            doc["site"][1]["snmp"] = settings
            error = self.assertConfigError(doc, "[[site]] 'legacy' snmp", key, fragment)
            self.assertNotIn("short", str(error))  # keys are never echoed
        doc = snmpDocument()
        doc["site"][1]["snmp"] = {"version": "3", "user": "u", "auth_protocol": "sha", "auth_key": "authpass1",
                                  "priv_protocol": "aes", "priv_key": "privpass1"}
        site = parseTopology(doc, PATH).siteByName["legacy"]
        self.assertEqual((site.snmp.auth_protocol, site.snmp.securityLevel), ("SHA", "authPriv"))

    def test_snmpV3SharedUser(self):
        """Two sites may share a v3 user only with the same keys (one engine per core holds it)."""
        doc = snmpDocument()
        v3 = {"version": "3", "user": "u", "auth_protocol": "SHA", "auth_key": "authpass1"}
        doc["site"][1]["snmp"] = dict(v3)
        doc["site"].append({"name": "legacy2", "ip": "127.0.0.41", "protocol": "snmp",
                            "snmp": dict(v3, auth_key="otherpass")})
        self.assertConfigError(doc, "[[site]] 'legacy2' snmp", "user", "the same protocols and keys as site 'legacy'")


class DuplicateTests(ConfigTestCase):
    def assertDuplicate(self, doc: dict, kind: str, name: str) -> None:
        self.assertConfigError(doc, f"[[{kind}]] {name!r}", "name", f"not used by another [[{kind}]]", f"found {name!r} (string)")

    def test_zone(self):
        doc = minimal()
        doc["zone"].append({"name": "Demo.GSLB."})
        self.assertDuplicate(doc, "zone", "demo.gslb")

    def test_site(self):
        doc = minimal()
        doc["site"].append({"name": "east", "ip": "127.0.0.3"})
        self.assertDuplicate(doc, "site", "east")

    def test_service(self):
        doc = minimal()
        doc["service"].append({"name": "east-web", "site": "east", "ip": "192.0.2.11"})
        self.assertDuplicate(doc, "service", "east-web")

    def test_vserver(self):
        doc = minimal()
        doc["vserver"].append({"name": "www", "domains": ["www2.demo.gslb"], "services": ["east-web"]})
        self.assertDuplicate(doc, "vserver", "www")

    def test_metricTable(self):
        doc = minimal()
        doc["metric_table"] = [{"name": "my-lb", "metrics": {"load": "1.3.6.1.4.1.2021.10.1.5.1"}}] * 2
        self.assertDuplicate(doc, "metric_table", "my-lb")

    def test_serviceBoundTwice(self):
        doc = minimal()
        doc["vserver"][0]["services"] = ["east-web", {"name": "east-web", "weight": 3}]
        self.assertConfigError(doc, "[[vserver]] 'www'", "services[1]", "each service bound once", "found 'east-web' (string)")


class DomainTests(ConfigTestCase):
    def test_sameDomainTwoVservers(self):
        """Domains compare without case and trailing dot."""
        doc = withVserver(minimal(), "www2")
        doc["vserver"][1]["domains"] = ["WWW.Demo.GSLB."]
        self.assertConfigError(doc, "[[vserver]] 'www2'", "domains", "not served by another vserver ('www' has it)", "found 'www.demo.gslb' (string)")

    def test_domainOutsideZones(self):
        doc = minimal()
        doc["vserver"][0]["domains"] = ["www.example.com"]
        self.assertConfigError(doc, "[[vserver]] 'www'", "domains", "inside a [[zone]] (zones: demo.gslb)", "found 'www.example.com' (string)")

    def test_suffixIsNotInZone(self):
        """C{xdemo.gslb} is not inside C{demo.gslb}."""
        doc = minimal()
        doc["vserver"][0]["domains"] = ["xdemo.gslb"]
        self.assertConfigError(doc, "[[vserver]] 'www'", "domains", "inside a [[zone]]", "found 'xdemo.gslb' (string)")

    def test_noZones(self):
        doc = minimal()
        del doc["zone"]
        self.assertConfigError(doc, "[[zone]]", None, "expected at least one [[zone]]")

    def test_nestedZones(self):
        doc = minimal()
        doc["zone"].append({"name": "eu.demo.gslb"})
        self.assertConfigError(doc, "[[zone]] 'eu.demo.gslb'", "name", "not inside another zone ('demo.gslb')", "found 'eu.demo.gslb' (string)")

    def test_normalised(self):
        doc = minimal()
        doc["zone"][0]["name"] = "Demo.GSLB."
        doc["vserver"][0]["domains"] = ["WWW.demo.gslb.", "Api.Demo.Gslb"]
        topology = parseTopology(doc, PATH)
        self.assertEqual(topology.zones[0].name, "demo.gslb")
        self.assertEqual(topology.zones[0].ns, ("ns1.demo.gslb",))
        self.assertEqual(topology.vservers[0].domains, ("www.demo.gslb", "api.demo.gslb"))


class ConsistencyTests(ConfigTestCase):
    def test_customLoadWithoutMetrics(self):
        doc = minimal()
        doc["vserver"][0]["lb_method"] = "customload"
        self.assertConfigError(doc, "[[vserver]] 'www'", "custom_load", 'at least one metric when lb_method = "CUSTOMLOAD"', "found nothing")

    def test_customLoadCeilingMissing(self):
        doc = minimal()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[{"metric": "connections"}])
        self.assertConfigError(doc, "[[vserver]] 'www' custom_load[0]", "ceiling",
                               "expected a ceiling: MEP (site 'east') gives 'connections' none")

    def test_customLoadCeilingFromSources(self):
        """
        Without a ceiling of its own, a CUSTOMLOAD metric takes each
        source's: MEP gives load (a percentage) one, a table gives its own.
        """
        doc = minimal()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[{"metric": "load"}])
        self.assertIsNone(parseTopology(doc, PATH).vservers[0].custom_load[0].ceiling)
        doc = snmpDocument()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[{"metric": "memory"}, {"metric": "load"}])
        topology = parseTopology(doc, PATH)
        self.assertEqual(topology.metricsOf(topology.siteByName["legacy"])[1]["memory"], 100.0)

    def test_customLoadUnknownMetric(self):
        """A metric no bound service's source reports is a typo, named with the known ones."""
        doc = snmpDocument()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[{"metric": "memroy", "ceiling": 100}])
        self.assertConfigError(doc, "[[vserver]] 'www' custom_load[0]", "metric",
                               "a metric a bound service's site reports", "memory", "response_time", "found 'memroy'")

    def test_customLoadMixedSources(self):
        """One metric from an SNMP table, one from MEP only: both are accepted."""
        doc = snmpDocument()
        doc["vserver"][0].update(lb_method="CUSTOMLOAD", custom_load=[
            {"metric": "cpu"}, {"metric": "response_time", "ceiling": 500},
        ])
        self.assertEqual([spec.metric for spec in parseTopology(doc, PATH).vservers[0].custom_load],
                         ["cpu", "response_time"])

    def test_tlsWithoutCert(self):
        doc = minimal()
        doc["appliance"]["mep_tls"] = True
        self.assertConfigError(doc, "[appliance]", "mep_tls_cert", "a file path when mep_tls = true", "found nothing")

    def test_tlsWithoutKey(self):
        doc = minimal()
        doc["appliance"].update(mep_tls=True, mep_tls_cert="mep.crt")
        self.assertConfigError(doc, "[appliance]", "mep_tls_key", "a file path when mep_tls = true", "found nothing")

    def test_deadIntervalBelowMetricsInterval(self):
        doc = minimal()
        doc["appliance"].update(metrics_interval=2.0, dead_interval=1.5)
        self.assertConfigError(doc, "[appliance]", "dead_interval", "at least metrics_interval (2.0)", "found 1.5 (float)")

    def test_snmpWithoutTable(self):
        doc = minimal()
        doc["site"][0]["protocol"] = "snmp"
        self.assertConfigError(doc, "[[site]] 'east'", "snmp", 'when protocol = "snmp"', "found nothing")

    def test_snmpV3WithoutUser(self):
        doc = minimal()
        doc["site"][0].update(protocol="snmp", snmp={"version": "3"})
        self.assertConfigError(doc, "[[site]] 'east' snmp", "user", 'a user name when version = "3"', "found nothing")

    def test_snmpVersion(self):
        doc = minimal()
        doc["site"][0].update(protocol="snmp", snmp={"version": 2})
        self.assertConfigError(doc, "[[site]] 'east' snmp", "version", '"1", "2c", "3"', "found 2 (integer)")

    def test_monitorHTTPWithoutURL(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "http"}
        self.assertConfigError(doc, "[[service]] 'east-web' monitor", "url", "a URL for a monitor of type 'http'", "found nothing")

    def test_monitorTimeoutNotBelowInterval(self):
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "tcp", "interval": 2, "timeout": 2}
        self.assertConfigError(doc, "[[service]] 'east-web' monitor", "timeout", "less than interval (2.0)", "found 2.0 (float)")

    def test_monitorDefaultTimeoutBelowShortInterval(self):
        """Without C{timeout}, a short C{interval} is not an error (SPEC example)."""
        doc = minimal()
        doc["service"][0]["monitor"] = {"type": "tcp", "interval": 1.0}
        monitor = parseTopology(doc, PATH).services[0].monitor
        self.assertEqual((monitor.interval, monitor.timeout), (1.0, 0.5))


class ModelTests(ConfigTestCase):
    def test_demoFixture(self):
        """The shipped demo topology loads."""
        path = demoTopologyPath()
        topology = loadTopology(path)
        self.assertEqual(topology.path, path)
        self.assertEqual([v.name for v in topology.vservers], ["www", "api", "sorry", "near", "fast", "hash", "custom"])
        # Every method the demo shows needs the shipped location database.
        self.assertTrue(topology.appliance.location_db.endswith("locations.csv"))
        self.assertEqual(topology.vserverByName["www"].backup_vserver, "sorry")
        self.assertEqual({s.family for s in topology.services}, {4, 6})

    def test_specExample(self):
        """The SPEC section 3 example loads as written."""
        topology = parseTopology(tomllib.loads(SPEC_EXAMPLE), PATH)
        appliance = topology.appliance
        self.assertEqual(appliance.cores, 2)
        self.assertEqual(appliance.dns, ("udp:5300:interface=127.0.0.1", "tcp:5300:interface=127.0.0.1"))
        # Resolved to the shipped database (not in the working directory).
        self.assertTrue(appliance.location_db.endswith(os.path.join("fixtures", "locations.csv")))
        self.assertTrue(os.path.isabs(appliance.location_db))
        legacy = topology.siteByName["legacy"]
        self.assertEqual((legacy.protocol, legacy.snmp.version, legacy.snmp.table), ("snmp", "2c", "linux-host"))
        self.assertEqual(topology.siteByName["east"].emulator.seed, 7)
        self.assertEqual(topology.siteByName["west"].metric_exchange, False)
        www = topology.vserverByName["www"]
        self.assertEqual([(b.name, b.weight) for b in www.services], [("east-web", 2), ("west-web", 3)])
        self.assertEqual([(c.metric, c.threshold) for c in www.custom_load], [("connections", 900.0), ("response_time", None)])
        self.assertEqual((www.persistence, www.backup_vserver, www.spillover.threshold), ("SOURCEIP", "www-dr", 5000))
        self.assertEqual(topology.serviceByName["east-web"].monitor.url, "http://127.0.0.1:8081/health")

    def test_defaults(self):
        """What SPEC section 3 documents for keys left out."""
        doc = tomllib.loads(SPEC_EXAMPLE)
        doc["appliance"] = {"name": "gslb1"}
        topology = parseTopology(doc, PATH)
        appliance = topology.appliance
        self.assertEqual((appliance.cores, appliance.mep_port, appliance.mep_tls), ("auto", 3011, False))
        self.assertEqual(
            (appliance.metrics_interval, appliance.dead_interval, appliance.consolidation_interval), (1.0, 3.0, 0.5)
        )
        dr = topology.vserverByName["www-dr"]
        self.assertEqual(
            (dr.lb_method, dr.backup_lb_method, dr.down_response, dr.ttl, dr.answers),
            ("LEASTCONNECTION", "ROUNDROBIN", "all", 5, 1),
        )
        self.assertEqual((dr.persistence, dr.persistence_timeout, dr.backup_vserver, dr.spillover), ("NONE", 120, None, None))
        west = topology.serviceByName["west-web"]
        self.assertEqual((west.port, west.type, west.monitor.trigger), (80, "HTTP", "ALWAYS"))
        self.assertEqual(topology.siteByName["east"].protocol, "mep")

    def test_bindingWeightFallsBackToService(self):
        doc = minimal()
        doc["service"][0]["weight"] = 7
        doc["service"].append({"name": "east-web2", "site": "east", "ip": "192.0.2.11", "weight": 4})
        doc["service"].append({"name": "east-web3", "site": "east", "ip": "192.0.2.12", "weight": 9})
        doc["vserver"][0]["services"] = ["east-web", {"name": "east-web2"}, {"name": "east-web3", "weight": 2}]
        bindings = parseTopology(doc, PATH).vservers[0].services
        self.assertEqual([(b.name, b.weight) for b in bindings], [("east-web", 7), ("east-web2", 4), ("east-web3", 2)])

    def test_coreCountAuto(self):
        topology = parseTopology(minimal(), PATH)
        self.assertEqual(topology.appliance.cores, "auto")
        self.assertEqual(topology.appliance.coreCount(cpuCount=6), 6)
        self.assertEqual(topology.appliance.coreCount(cpuCount=0), 1)
        self.assertEqual(topology.appliance.coreCount(), os.cpu_count() or 1)

    def test_coreCountInteger(self):
        doc = minimal()
        doc["appliance"]["cores"] = 3
        self.assertEqual(parseTopology(doc, PATH).appliance.coreCount(cpuCount=16), 3)

    def test_frozen(self):
        topology = parseTopology(minimal(), PATH)
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, topology.appliance, "name", "other")
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, topology.vservers[0], "ttl", 60)
        self.assertRaises(TypeError, operator.setitem, topology.serviceByName, "x", None)
        self.assertIsInstance(topology.vservers[0].domains, tuple)

    def test_inputNotModified(self):
        """Parsing neither changes the document nor depends on its identity."""
        doc = minimal()
        before = copy.deepcopy(doc)
        self.assertIsInstance(parseTopology(doc, PATH), Topology)
        self.assertEqual(doc, before)
        self.assertEqual(parseTopology(doc, PATH), parseTopology(before, PATH))


class DecisionEngineKeyTests(ConfigTestCase):
    """Keys of the decision engine and of rate limiting (issues 4 and 5)."""

    def test_defaults(self):
        vserver = parseTopology(minimal(), PATH).vserverByName["www"]
        self.assertEqual(
            (vserver.netmask, vserver.v6_netmask_len, vserver.persist_mask, vserver.v6_persist_mask_len, vserver.tolerance,
             vserver.custom_load_exclude),
            ("255.255.255.255", 128, "255.255.255.255", 128, 0, "any"),
        )
        self.assertIsNone(parseTopology(minimal(), PATH).appliance.rrl)

    def test_netmaskNotAMask(self):
        doc = minimal()
        doc["vserver"][0]["netmask"] = "255.0.255.0"
        self.assertConfigError(doc, "[[vserver]] 'www'", "netmask", "expected a dotted IPv4 netmask", "found '255.0.255.0'")

    def test_toleranceRange(self):
        doc = minimal()
        doc["vserver"][0]["tolerance"] = 500
        self.assertConfigError(doc, "[[vserver]] 'www'", "tolerance", "from 0 to 100", "found 500")

    def test_spilloverBackupAction(self):
        doc = minimal()
        doc["vserver"][0]["spillover"] = {"method": "CONNECTION", "threshold": 5, "backup_action": "maybe"}
        self.assertConfigError(doc, "[[vserver]] 'www' spillover", "backup_action", 'one of "ACCEPT", "DROP"')

    def test_backupCustomLoadNeedsMetrics(self):
        doc = minimal()
        doc["vserver"][0]["backup_lb_method"] = "CUSTOMLOAD"
        self.assertConfigError(doc, "[[vserver]] 'www'", "custom_load", 'backup_lb_method = "CUSTOMLOAD"')

    def test_emulatorRTT(self):
        doc = minimal()
        doc["site"][0]["emulator"] = {"rtt": {"198.51.100.7/24": 5.0}}
        self.assertConfigError(doc, "[[site]] 'east' emulator", "rtt", "client network = milliseconds")

    def test_locationDatabaseErrorNamesTheLine(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("10.0.0.0/8,95,0\n")
        doc = minimal()
        doc["appliance"]["location_db"] = path
        self.assertConfigError(doc, "[appliance]", "location_db", "line 1", "latitude")

    def test_rateLimit(self):
        doc = minimal()
        doc["appliance"]["rrl"] = {"responses_per_second": 10, "slip": 3}
        rrl = parseTopology(doc, PATH).appliance.rrl
        self.assertEqual((rrl.responses_per_second, rrl.window, rrl.slip, rrl.ipv4_prefix, rrl.ipv6_prefix), (10, 15, 3, 24, 56))

    def test_rateLimitUnknownKey(self):
        doc = minimal()
        doc["appliance"]["rrl"] = {"responses_per_second": 10, "rate": 3}
        self.assertConfigError(doc, "[appliance] rrl", "rate")

    def test_dnsTCPLimits(self):
        self.assertEqual(parseTopology(minimal(), PATH).appliance.dns_tcp, TCPLimits(1024, 32, 10.0))
        doc = minimal()
        doc["appliance"]["dns_tcp"] = {"max_connections": 100, "max_per_client": 4, "idle_timeout": 2.5}
        self.assertEqual(parseTopology(doc, PATH).appliance.dns_tcp, TCPLimits(100, 4, 2.5))

    def test_dnsTCPLimitsErrors(self):
        doc = minimal()
        doc["appliance"]["dns_tcp"] = {"max_per_client": 0}
        self.assertConfigError(doc, "[appliance] dns_tcp", "max_per_client", "above 0")
        doc["appliance"]["dns_tcp"] = {"max_connections": 10, "max_per_client": 20}
        self.assertConfigError(doc, "[appliance] dns_tcp", "max_per_client", "at most max_connections (10)")
        doc["appliance"]["dns_tcp"] = {"idle_timeout": 0}
        self.assertConfigError(doc, "[appliance] dns_tcp", "idle_timeout", "above 0")
        doc["appliance"]["dns_tcp"] = {"max_clients": 5}
        self.assertConfigError(doc, "[appliance] dns_tcp", "max_clients", "unknown key")

    def test_rateLimitNeedsARate(self):
        doc = minimal()
        doc["appliance"]["rrl"] = {"slip": 3}
        self.assertConfigError(doc, "[appliance] rrl", "responses_per_second", "responses per second")


class CompiledTopologyTests(SynchronousTestCase):
    """What a supervisor hands its cores: L{writeCompiledTopology}, L{readCompiledTopology}."""

    def compiled(self, topology: Topology):
        compiled = writeCompiledTopology(topology)
        self.addCleanup(compiled.close)
        return compiled

    def test_roundTrip(self):
        """The demo topology comes back equal, read-only maps and lookups included."""
        topology = loadTopology(demoTopologyPath())
        compiled = self.compiled(topology)
        read = readCompiledTopology(compiled.fileno())
        self.assertEqual(read, topology)
        self.assertEqual(dict(read.serviceByName), dict(topology.serviceByName))
        self.assertEqual(set(read.tableByName), set(topology.tableByName))
        with self.assertRaises(TypeError):
            read.siteByName["elsewhere"] = None
        site = read.sites[0]
        self.assertEqual(read.metricsOf(site), topology.metricsOf(topology.sites[0]))
        # The lookups name the very objects of the lists (one object per service).
        for service in read.services:
            self.assertIs(read.serviceByName[service.name], service)
        for vserver in read.vservers:
            self.assertIs(read.vserverByName[vserver.name], vserver)
        self.assertIs(read.siteByName[site.name], site)

    def test_offsetUntouched(self):
        """Every core reads the one descriptor: reading neither needs nor moves its offset."""
        compiled = self.compiled(parseTopology(minimal(), PATH))
        compiled.seek(3)
        readCompiledTopology(compiled.fileno())
        readCompiledTopology(compiled.fileno())
        self.assertEqual(os.lseek(compiled.fileno(), 0, os.SEEK_CUR), 3)

    def test_notCompiled(self):
        """A descriptor holding anything else is refused (the core reads the file instead)."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"[appliance]\n")
        with open(path, "rb") as f:
            error = self.assertRaises(CompiledTopologyError, readCompiledTopology, f.fileno())
        self.assertIn("no compiled topology of this version", str(error))

    def test_otherModel(self):
        """Written by a model of another shape (code upgraded under a running supervisor): refused."""
        compiled = self.compiled(parseTopology(minimal(), PATH))
        compiled.seek(0)
        data = bytearray(compiled.read())
        data[len(b"gslb-twisted compiled topology 1 ")] ^= 1
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        with open(path, "rb") as f:
            self.assertRaises(CompiledTopologyError, readCompiledTopology, f.fileno())

    def test_truncated(self):
        compiled = self.compiled(parseTopology(minimal(), PATH))
        compiled.truncate(os.fstat(compiled.fileno()).st_size // 2)
        error = self.assertRaises(CompiledTopologyError, readCompiledTopology, compiled.fileno())
        self.assertIn(f"descriptor {compiled.fileno()}", str(error))

    def test_badDescriptor(self):
        compiled = self.compiled(parseTopology(minimal(), PATH))
        fd = os.dup(compiled.fileno())
        os.close(fd)
        self.assertRaises(CompiledTopologyError, readCompiledTopology, fd)


class SecretTests(ConfigTestCase):
    """
    Secrets (mep_secret, an SNMP community, v3 keys) written in the topology
    or kept out of it, in a file or an environment variable; never shown.
    """

    def test_fromFile(self):
        directory = os.path.dirname(self.writeFile(b""))
        with open(os.path.join(directory, "mep.secret"), "w") as f:
            f.write("s3cret-from-file\n")
        doc = minimal()
        doc["appliance"]["mep_secret"] = {"file": "mep.secret"}
        # Relative to the topology file's directory.
        topology = parseTopology(doc, os.path.join(directory, "topo.toml"))
        self.assertEqual(topology.appliance.mep_secret, "s3cret-from-file")
        self.assertNotIn("s3cret", repr(topology.appliance))

    def test_fromEnvironment(self):
        self.patch(os, "environ", dict(os.environ, GSLB_TEST_COMMUNITY="c0mmunity"))
        doc = snmpDocument()
        doc["site"][1]["snmp"]["community"] = {"env": "GSLB_TEST_COMMUNITY"}
        settings = parseTopology(doc, PATH).siteByName["legacy"].snmp
        self.assertEqual(settings.community, "c0mmunity")
        self.assertNotIn("c0mmunity", repr(settings))

    def test_unsetVariable(self):
        self.patch(os, "environ", {})
        doc = minimal()
        doc["appliance"]["mep_secret"] = {"env": "GSLB_NO_SUCH_VARIABLE"}
        error = self.assertConfigError(doc, "[appliance]", "mep_secret", "GSLB_NO_SUCH_VARIABLE", "unset or empty")
        self.assertFalse(error.hasFound)

    def test_missingOrEmptyFile(self):
        directory = os.path.dirname(self.writeFile(b""))
        doc = minimal()
        doc["appliance"]["mep_secret"] = {"file": os.path.join(directory, "absent")}
        self.assertConfigError(doc, "[appliance]", "mep_secret", "readable file", "absent")
        empty = self.writeFile(b"\n")
        doc["appliance"]["mep_secret"] = {"file": empty}
        self.assertConfigError(doc, "[appliance]", "mep_secret", "is empty")

    def test_malformedSource(self):
        for value in ({"file": "a", "env": "B"}, {"path": "a"}, {"env": ""}, 42):
            doc = minimal()
            doc["appliance"]["mep_secret"] = value
            self.assertConfigError(doc, "[appliance]", "mep_secret", '{ file = "PATH" } or { env = "VARIABLE" }')
