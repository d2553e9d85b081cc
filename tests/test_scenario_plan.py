"""
What a run hands its processes (L{gslb_twisted.scenario.plan}): --speed
scaling with its floors, the appliance's and the sites' copies of the
topology with a proxy on each link the timeline touches (by MEP's
lower-IP rule), and TOML that the project's own loader reads back.
Pure: nothing runs.
"""

from __future__ import annotations

import os
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.scenario.model import parseScenario
from gslb_twisted.scenario.plan import FLOORS, Ports, dumpTOML, effectiveSpeed, runTopologies, scaleTopology
from tests.test_scenario_model import BASE

DOCUMENT = {
    "appliance": {"name": "a", "ip": "127.0.0.5", "metrics_interval": 1.0, "dead_interval": 3.0},
    "zone": [{"name": "t.gslb"}],
    "site": [
        {"name": "east", "ip": "127.0.0.2", "emulator": {
            "timeline": [{"at": 10, "service": "east-web", "connections": 5}],
            "scenarios": {"surge": [{"at": 4, "service": "east-web", "state": "DOWN"}]}}},
    ],
    "service": [
        {"name": "east-web", "site": "east", "ip": "192.0.2.10",
         "monitor": {"type": "tcp", "interval": 2.0}},
    ],
    "vserver": [
        {"name": "www", "domains": ["www.t.gslb"], "services": ["east-web"], "persistence": "SOURCEIP"},
        {"name": "plain", "domains": ["p.t.gslb"], "services": ["east-web"]},
    ],
}


def scaled(speed):
    document, notes = scaleTopology(DOCUMENT, speed)
    return document, {note.what: note for note in notes}


class SpeedTests(SynchronousTestCase):
    def test_speedOneChangesNothing(self):
        document, notes = scaleTopology(DOCUMENT, 1.0)
        self.assertEqual(document, DOCUMENT)
        self.assertEqual(notes, [])
        self.assertIsNot(document, DOCUMENT)

    def test_intervalsDivided(self):
        document, notes = scaled(2.0)
        appliance = document["appliance"]
        self.assertEqual((appliance["metrics_interval"], appliance["dead_interval"], appliance["consolidation_interval"]),
                         (0.5, 1.5, 0.25))
        self.assertEqual(document["service"][0]["monitor"], {"type": "tcp", "interval": 1.0, "timeout": 0.5})
        self.assertEqual(document["vserver"][0]["persistence_timeout"], 60)
        self.assertNotIn("persistence_timeout", document["vserver"][1])
        emulator = document["site"][0]["emulator"]
        self.assertEqual(emulator["timeline"][0]["at"], 5.0)
        self.assertEqual(emulator["scenarios"]["surge"][0]["at"], 2.0)
        self.assertEqual(notes["appliance.dead_interval"].asDict(),
                         {"what": "appliance.dead_interval", "nominal": 3.0, "value": 1.5, "floored": False, "speed": 2.0})
        self.assertEqual(DOCUMENT["appliance"]["dead_interval"], 3.0)  # the original is untouched

    def test_floors(self):
        document, notes = scaled(20.0)
        appliance = document["appliance"]
        self.assertEqual(appliance["metrics_interval"], FLOORS["metrics_interval"])
        self.assertEqual(appliance["dead_interval"], FLOORS["dead_interval"])
        self.assertTrue(notes["appliance.dead_interval"].floored)
        self.assertEqual(notes["appliance.dead_interval"].asDict()["speed"], 3.0)
        monitor = document["service"][0]["monitor"]
        self.assertEqual(monitor["interval"], FLOORS["monitor.interval"])
        self.assertLess(monitor["timeout"], monitor["interval"])
        self.assertEqual(document["vserver"][0]["persistence_timeout"], 6)
        # Still a topology the appliance takes.
        parseTopology(document, "scaled.toml")

    def test_alreadyBelowTheFloorIsLeftAlone(self):
        document, notes = scaleTopology({"appliance": {"name": "a", "metrics_interval": 0.1, "dead_interval": 0.5}}, 4)
        self.assertEqual(document["appliance"]["metrics_interval"], 0.1)
        self.assertEqual(document["appliance"]["dead_interval"], 0.5)

    def test_effectiveSpeed(self):
        scenario = parseScenario(tomllib.loads(BASE.replace("duration = 30", "duration = 30\nmax_speed = 4")), "/s.toml")
        self.assertEqual(effectiveSpeed(2, scenario), (2, None))
        self.assertEqual(effectiveSpeed(10, scenario), (4, "--speed 10 capped at the scenario's max_speed 4"))
        self.assertRaises(ValueError, effectiveSpeed, 0, scenario)


LINKS = BASE.replace("[[topology.site]]\nname = \"static\"", """[[topology.site]]
name = "north"
ip = "127.0.0.8"

[[topology.service]]
name = "north-web"
site = "north"
ip = "203.0.113.8"

[[topology.site]]
name = "static\"""") + """
[[event]]
at = 1
action = "link-cut"
site = "east"

[[event]]
at = 2
action = "link-blackhole"
site = "north"
"""


class RunTopologyTests(SynchronousTestCase):
    def setUp(self):
        self.scenario = parseScenario(tomllib.loads(LINKS), "/work/scenarios/s.toml")
        self.ports = Ports(dns=5353, applianceMEP=4000, siteMEP={"east": 4002, "west": 4003, "north": 4008},
                           proxies={"east": 5002, "north": 5008})

    def test_proxiesByTheLowerIPRule(self):
        appliance, sites, proxies = runTopologies(self.scenario, self.scenario.topologyDocument, self.ports)
        self.assertEqual(self.scenario.linkSites, ("east", "north"))
        east, north = proxies
        # east (127.0.0.2) is below the appliance: it dials, through a proxy on the appliance's address.
        self.assertEqual((east.site, east.siteDials, east.listen, east.target),
                         ("east", True, "tcp:5002:interface=127.0.0.5",
                          "tcp:host=127.0.0.5:port=4000:bindAddress=127.0.0.2"))
        self.assertEqual(sites["east"]["appliance"]["mep_port"], 5002)
        self.assertEqual(appliance["appliance"]["mep_port"], 4000)
        # north (127.0.0.8) is above it: the appliance dials north's proxy, on north's address.
        self.assertEqual((north.site, north.siteDials, north.listen, north.target),
                         ("north", False, "tcp:5008:interface=127.0.0.8",
                          "tcp:host=127.0.0.8:port=4008:bindAddress=127.0.0.5"))
        northInAppliance = next(s for s in appliance["site"] if s["name"] == "north")
        northInItself = next(s for s in sites["north"]["site"] if s["name"] == "north")
        self.assertEqual((northInAppliance["mep_port"], northInItself["mep_port"]), (5008, 4008))
        # west has no proxy: everyone sees the real ports.
        self.assertEqual(sites["west"]["appliance"]["mep_port"], 4000)
        self.assertEqual(sorted(sites), ["east", "north", "west"])
        self.assertNotIn("static", sites)
        for document in [appliance] + list(sites.values()):
            parseTopology(tomllib.loads(dumpTOML(document)), "copy.toml")

    def test_pathsMadeAbsolute(self):
        document = dict(self.scenario.topologyDocument)
        document["appliance"] = dict(document["appliance"], mep_secret={"file": "secret.txt"},
                                     mep_tls_cert="certs/c.pem")
        appliance, _, _ = runTopologies(self.scenario, document, self.ports)
        self.assertEqual(appliance["appliance"]["mep_secret"], {"file": "/work/scenarios/secret.txt"})
        self.assertEqual(appliance["appliance"]["mep_tls_cert"], "/work/scenarios/certs/c.pem")


class TOMLTests(SynchronousTestCase):
    def test_roundTrip(self):
        document = {
            "title": "x",
            "appliance": {"name": "a \"quoted\"", "ip": "127.0.0.5", "dns": ["udp:53"], "rrl": {"responses_per_second": 5}},
            "site": [{"name": "east", "emulator": {"timeline": [{"at": 1.5, "service": "s", "state": "DOWN"}]}}],
            "empty": [],
        }
        text = dumpTOML(document)
        self.assertTrue(text.startswith('title = "x"\nempty = []\n'))
        self.assertEqual(tomllib.loads(text), document)

    def test_readyTopologyRoundTrips(self):
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "scenarios",
                            "topologies", "three-sites.toml")
        with open(path, "rb") as f:
            document = tomllib.load(f)
        self.assertEqual(tomllib.loads(dumpTOML(document)), document)
