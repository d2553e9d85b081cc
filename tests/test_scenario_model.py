"""
The scenario file (L{gslb_twisted.scenario.model}): what it accepts, what
it means, and errors that name the file, the table and the key.  Pure: no
reactor, files only in a temporary directory.
"""

from __future__ import annotations

import glob
import os
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import ConfigError
from gslb_twisted.scenario.model import (
    AUTO_SOURCE_NETWORK,
    ScenarioError,
    loadScenario,
    niceBucket,
    parseScenario,
    parseTime,
    rampPoints,
)

HERE = os.path.dirname(os.path.abspath(__file__))
READY = os.path.join(os.path.dirname(HERE), "fixtures", "scenarios")

TOPOLOGY = """
[topology.appliance]
name = "t"
ip = "127.0.0.5"
cores = 2

[[topology.zone]]
name = "t.gslb"

[[topology.site]]
name = "east"
ip = "127.0.0.2"
  [topology.site.emulator]
  scenarios = { surge = [ { at = 0, service = "east-web", connections = 900 } ] }

[[topology.site]]
name = "west"
ip = "127.0.0.3"

[[topology.site]]
name = "static"
ip = "127.0.0.9"
metric_exchange = false

[[topology.service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[topology.service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[topology.service]]
name = "static-web"
site = "static"
ip = "203.0.113.9"

[[topology.vserver]]
name = "www"
domains = ["www.t.gslb"]
lb_method = "ROUNDROBIN"
services = ["east-web", "west-web", "static-web"]
"""

BASE = """
[scenario]
name = "s"
duration = 30

[load]
rate = 100
queries = ["www.t.gslb"]
""" + TOPOLOGY


def parse(extra: str = "", base: str = BASE, path: str = "/scenarios/s.toml"):
    return parseScenario(tomllib.loads(base + extra), path)


class ReadyScenarioTests(SynchronousTestCase):
    def test_everyShippedScenarioLoads(self):
        """fixtures/scenarios/*.toml are valid, with events and expectations, and a CI speed."""
        paths = sorted(glob.glob(os.path.join(READY, "*.toml")))
        self.assertGreaterEqual(len(paths), 6)
        for path in paths:
            scenario = loadScenario(path)
            self.assertTrue(scenario.events, path)
            self.assertTrue(scenario.expectations, path)
            self.assertGreaterEqual(scenario.ciSpeed, 1, path)
            self.assertLessEqual(scenario.duration / scenario.ciSpeed, 15, f"{path}: too long for make test")


class ScenarioTests(SynchronousTestCase):
    def test_minimal(self):
        scenario = parse()
        self.assertEqual((scenario.name, scenario.duration, scenario.rate, scenario.timeout), ("s", 30.0, 100.0, 1.0))
        self.assertEqual(scenario.emulated, ("east", "west"))
        self.assertEqual(scenario.bucket, 0.2)  # about 200 buckets
        (population,) = scenario.populations
        self.assertEqual((population.name, population.rate, population.queries), ("clients", 100.0, (("www.t.gslb", "A"),)))
        self.assertEqual(population.network, "127.77.1.0/24")
        self.assertEqual(population.sources, ("127.77.1.1", "127.77.1.2", "127.77.1.3", "127.77.1.4"))
        self.assertTrue(population.network.startswith(AUTO_SOURCE_NETWORK.split(".0.0/")[0]))
        self.assertIsNone(scenario.topologyPath)
        self.assertEqual(scenario.addressesOf()["198.51.100.10"], "west")

    def test_populationsByShareOrRate(self):
        scenario = parse("""
[[population]]
name = "us"
share = 60
source = "127.0.1.0/24"
sources = 2

[[population]]
name = "eu"
share = 40
ecs = "127.0.3.0/24"
queries = [["www.t.gslb", "aaaa"]]
""")
        us, eu = scenario.populations
        self.assertEqual((us.rate, us.sources, us.ecs), (60.0, ("127.0.1.1", "127.0.1.2"), None))
        self.assertEqual((eu.rate, eu.ecs, eu.queries, eu.network), (40.0, "127.0.3.0/24", (("www.t.gslb", "AAAA"),),
                                                                   "127.77.1.0/24"))
        self.assertEqual(scenario.rate, 100.0)
        rated = parse('[[population]]\nname = "a"\nrate = 33.5\n')
        self.assertEqual(rated.populations[0].rate, 33.5)

    def test_topologyFromAFile(self):
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "topologies"))
        with open(os.path.join(directory, "topologies", "t.toml"), "w") as f:
            f.write(TOPOLOGY.replace("topology.", ""))
        path = os.path.join(directory, "s.toml")
        with open(path, "w") as f:
            f.write('[scenario]\nname = "s"\nduration = 10\ntopology = "topologies/t.toml"\n'
                    '[load]\nqueries = ["www.t.gslb"]\n')
        scenario = loadScenario(path)
        self.assertEqual(scenario.topologyPath, os.path.join(os.path.abspath(directory), "topologies", "t.toml"))
        self.assertEqual(scenario.topologyDocument["appliance"]["name"], "t")

    def test_eventsSortedWithTheirKeys(self):
        scenario = parse("""
[[event]]
at = 20
action = "site-up"
site = "west"

[[event]]
id = "out"
at = 5
action = "site-down"
site = "west"

[[event]]
at = 6
action = "ramp"
service = "west-web"
metric = "connections"
from = 0
to = 10
over = 4
step = 1

[[event]]
at = 7
action = "kill-core"
core = "master:west"

[[event]]
at = 8
action = "set-lb-method"
vserver = "www"
method = "leastconnection"

[[event]]
at = 9
action = "link-delay"
site = "west"
ms = 120

[[event]]
at = 10
action = "site-scenario"
site = "east"
scenario = "surge"

[[event]]
at = 11
action = "set-rate"
factor = 2

[[event]]
at = 12
action = "set-metric"
service = "east-web"
state = "down"
connections = 5
""")
        actions = [(e.at, e.action) for e in scenario.events]
        self.assertEqual(actions, [(5, "site-down"), (6, "ramp"), (7, "kill-core"), (8, "set-lb-method"),
                                   (9, "link-delay"), (10, "site-scenario"), (11, "set-rate"), (12, "set-metric"),
                                   (20, "site-up")])
        down = scenario.eventById("out")
        self.assertEqual((down.site, down.how, down.label), ("west", "kill", "t=5 site-down west"))
        self.assertEqual(scenario.events[3].method, "LEASTCONNECTION")
        self.assertEqual(scenario.events[4].delay_ms, 120)
        self.assertEqual(dict(scenario.events[7].values), {"state": "DOWN", "connections": 5})
        self.assertEqual(scenario.events[1].span, 4)
        self.assertEqual(scenario.linkSites, ("west",))
        self.assertIn("connections 0->10 over 4 s", scenario.events[1].label)

    def test_expectationsAndTimes(self):
        scenario = parse("""
[[event]]
id = "out"
at = 5
action = "service-down"
service = "east-web"

[[expect]]
kind = "no-answer"
site = "east"
from = "out"
grace = 1.5
to = "end - 5"

[[expect]]
kind = "share"
address = "198.51.100.10"
min = 30
max = 50
from = "out+2"
population = "clients"

[[expect]]
kind = "failover"
service = "east-web"
after = "out"
within = 1

[[expect]]
kind = "unanswered"
max_gap = 1

[[expect]]
kind = "latency"
below_ms = 50

[[expect]]
kind = "rcode"
rcode = "servfail"
""")
        no, share, failover, gap, latency, rcode = scenario.expectations
        self.assertEqual((no.start.at, no.end.at, no.grace, no.target), (5, 25, 1.5, "site east"))
        self.assertEqual((share.start.text, share.start.at, share.end.at, share.min, share.max), ("out+2", 7, 30, 30, 50))
        self.assertEqual((failover.start.at, failover.end.at, failover.within), (5, 30, 1))
        self.assertEqual((gap.max_gap, gap.max_percent), (1.0, None))
        self.assertEqual((latency.percentile, latency.below_ms), (99.0, 50))
        self.assertEqual((rcode.rcode, rcode.max_percent), ("SERVFAIL", 0.0))

    def test_parseTime(self):
        anchors = {"start": 0.0, "end": 60.0, "cut-1": 10.0}
        self.assertEqual(parseTime(12, anchors).at, 12)
        self.assertEqual(parseTime("cut-1", anchors).at, 10)
        self.assertEqual(parseTime("cut-1 + 2.5", anchors).at, 12.5)
        self.assertEqual(parseTime("cut-1-2", anchors).at, 8)
        self.assertEqual(parseTime("end-5", anchors).at, 55)
        spec = parseTime("cut-1 + 2.5", anchors)
        self.assertEqual((spec.event, spec.offset, spec.actual({"cut-1": 10.4}), spec.actual({})), ("cut-1", 2.5, 12.9, 12.5))
        self.assertEqual((parseTime("end-5", anchors).event, parseTime(3, anchors).actual({"cut-1": 1})), (None, 3))
        for bad in ("cut", "cut-1 * 2", "", True, "later+1"):
            self.assertRaises(ValueError, parseTime, bad, anchors)

    def test_rampPoints(self):
        scenario = parse("""
[[event]]
at = 0
action = "ramp"
service = "east-web"
metric = "connections"
from = 100
to = 900
over = 30
step = 10
""")
        self.assertEqual(rampPoints(scenario.events[0]), [(0.0, 100), (10.0, 367), (20.0, 633), (30.0, 900)])
        load = parse('[[event]]\nat = 0\naction = "ramp"\nservice = "east-web"\nmetric = "load"\nfrom = 0\nto = 1\n'
                     'over = 0.7\nstep = 0.5\n')
        self.assertEqual(rampPoints(load.events[0]), [(0.0, 0.0), (0.5, 0.714), (0.7, 1.0)])

    def test_niceBucket(self):
        self.assertEqual([niceBucket(d) for d in (5, 30, 45, 60, 600, 86400)], [0.05, 0.2, 0.25, 0.5, 5.0, 432.0])


class ErrorTests(SynchronousTestCase):
    """Every error names the file, the table and the key."""

    def assertError(self, extra: str, *fragments: str, base: str = BASE):
        with self.assertRaises(ConfigError) as caught:
            parse(extra, base)
        message = str(caught.exception)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_unknownKeys(self):
        self.assertError("[[event]]\nat = 1\naction = \"site-down\"\nsite = \"east\"\nsitte = 1\n",
                         "/scenarios/s.toml: [[event]] #1: key 'sitte': unknown key")
        self.assertError("[[expect]]\nkind = \"latency\"\nbelow_ms = 5\nbellow = 1\n", "[[expect]] #1", "'bellow'")
        self.assertError("[bogus]\n", "top level: key 'bogus': unknown key")

    def test_scenarioTable(self):
        self.assertError("", "[scenario]: key 'duration'", base=BASE.replace("duration = 30\n", ""))
        self.assertError("", "key 'duration': expected a number of seconds above 0", "found -3",
                         base=BASE.replace("duration = 30", "duration = -3"))
        self.assertError("", "[scenario]: key 'topology': expected either", base=BASE.replace('name = "s"', 'name = "s"\ntopology = "x.toml"'))

    def test_badTopologyNamesItsTable(self):
        message = self.assertError("", "[topology]", "[[service]] 'west-web': key 'site'",
                                   base=BASE.replace('site = "west"\nip = "198', 'site = "nowhere"\nip = "198'))
        self.assertIn("s.toml [topology]", message)

    def test_missingTopologyFile(self):
        self.assertError("", "[scenario]: key 'topology': expected a readable topology file",
                         base=BASE.split("[topology.appliance]")[0].replace('name = "s"', 'name = "s"\ntopology = "no/such.toml"'))

    def test_events(self):
        self.assertError('[[event]]\nat = 1\naction = "explode"\n', "key 'action': expected one of site-down")
        self.assertError('[[event]]\nat = 31\naction = "site-down"\nsite = "east"\n', "key 'at': expected a time before the end")
        self.assertError('[[event]]\nat = 1\naction = "site-down"\nsite = "mars"\n', "key 'site': expected the name of a [[site]]",
                         "'mars'")
        self.assertError('[[event]]\nat = 1\naction = "site-freeze"\nsite = "static"\n',
                         "key 'site': expected a site the scenario emulates")
        self.assertError('[[event]]\nat = 1\naction = "service-down"\nservice = "static-web"\n',
                         "expected a service of an emulated site")
        self.assertError('[[event]]\nat = 1\naction = "set-metric"\nservice = "east-web"\n', "expected at least one of state")
        self.assertError('[[event]]\nat = 1\naction = "set-metric"\nservice = "east-web"\nload = 300\n',
                         "key 'load': expected a percentage")
        self.assertError('[[event]]\nat = 1\naction = "kill-core"\ncore = 2\n', "expected a core from 0 to 1")
        self.assertError('[[event]]\nat = 1\naction = "set-lb-method"\nvserver = "www"\nmethod = "FASTEST"\n',
                         "key 'method'")
        self.assertError('[[event]]\nat = 1\naction = "set-lb-method"\nvserver = "www"\nmethod = "CUSTOMLOAD"\n',
                         "the vserver has no custom_load")
        self.assertError('[[event]]\nat = 1\naction = "site-scenario"\nsite = "east"\nscenario = "calm"\n',
                         "expected one of the site's [site.emulator] scenarios (surge)")
        self.assertError('[[event]]\nat = 1\naction = "set-rate"\n', "exactly one of rate")
        self.assertError('[[event]]\nat = 25\naction = "ramp"\nservice = "east-web"\nmetric = "connections"\nfrom = 0\n'
                         'to = 5\nover = 10\n', "key 'over': expected the ramp to end by the end")
        self.assertError('[[event]]\nid = "end"\nat = 1\naction = "site-up"\nsite = "east"\n', "key 'id'")

    def test_eventSequence(self):
        self.assertError('[[event]]\nat = 1\naction = "site-up"\nsite = "east"\n', "expected site east down at t=1 (it is up)")
        self.assertError('[[event]]\nat = 1\naction = "site-down"\nsite = "east"\n'
                         '[[event]]\nat = 2\naction = "site-freeze"\nsite = "east"\n', "expected site east running at t=2")
        self.assertError('[[event]]\nat = 1\naction = "site-thaw"\nsite = "east"\n', "expected site east frozen")
        parse('[[event]]\nat = 1\naction = "site-freeze"\nsite = "east"\n'
              '[[event]]\nat = 2\naction = "site-thaw"\nsite = "east"\n'
              '[[event]]\nat = 3\naction = "site-down"\nsite = "east"\nhow = "services"\n'
              '[[event]]\nat = 4\naction = "site-up"\nsite = "east"\n')

    def test_expectations(self):
        self.assertError('[[expect]]\nkind = "share"\nmin = 5\n', "key 'site': expected exactly one of site, service, address")
        self.assertError('[[expect]]\nkind = "share"\nsite = "east"\nservice = "east-web"\n', "key 'service': expected exactly one")
        self.assertError('[[expect]]\nkind = "share"\nsite = "east"\nmin = 60\nmax = 50\n', "key 'min': expected at most max (50)")
        self.assertError('[[expect]]\nkind = "no-answer"\nsite = "east"\nfrom = 10\nto = 5\n', "key 'to': expected a time after 10")
        self.assertError('[[expect]]\nkind = "no-answer"\nsite = "east"\nfrom = 10\ngrace = 5\nto = 14\n', "after 10 + grace 5")
        self.assertError('[[expect]]\nkind = "no-answer"\nsite = "east"\nfrom = "nope"\n', "key 'from': expected a number, or one of end, start")
        self.assertError('[[expect]]\nkind = "no-answer"\nsite = "east"\nto = 40\n', "expected a time within the scenario (0 to 30 s)")
        self.assertError('[[expect]]\nkind = "failover"\nsite = "east"\nwithin = 1\n', "key 'after': expected an event id")
        self.assertError('[[expect]]\nkind = "unanswered"\n', "expected max_gap (seconds) and/or max_percent")
        self.assertError('[[expect]]\nkind = "latency"\nbelow_ms = 5\nsite = "east"\n', "expected no target for kind 'latency'")
        self.assertError('[[expect]]\nkind = "share"\nsite = "mars"\n', "key 'site': expected the name of a [[site]]")
        self.assertError('[[expect]]\nkind = "share"\naddress = "10.0.0.1"\n', "key 'address': expected the address of a [[service]]")
        self.assertError('[[expect]]\nkind = "share"\naddress = "nope"\n', "key 'address': expected an IP address")
        self.assertError('[[expect]]\nkind = "share"\nsite = "east"\npopulation = "mars"\n', "key 'population'")
        self.assertError('[[expect]]\nkind = "rcode"\nrcode = "BADVERS"\n', "key 'rcode'")

    def test_populations(self):
        self.assertError('[[population]]\nname = "a"\n', "[[population]] #1 'a': key 'share': expected exactly one of share")
        self.assertError('[[population]]\nname = "a"\nshare = 60\n[[population]]\nname = "b"\nshare = 30\n',
                         "key 'share': expected shares that add up to 100", "found 90.0")
        self.assertError('[[population]]\nname = "a"\nrate = 5\n[[population]]\nname = "a"\nrate = 5\n',
                         "expected a name used by no other population")
        self.assertError('[[population]]\nname = "a"\nrate = 5\nsource = "10.0.0.0/24"\n', "expected an IPv4 loopback network")
        self.assertError('[[population]]\nname = "a"\nrate = 5\nsource = "127.0.0.0/30"\nsources = 3\n',
                         "key 'sources': expected at most the 2 addresses")
        self.assertError('[[population]]\nname = "a"\nrate = 5\nsource = "127.0.0.0/29"\nsources = 2\n',
                         "key 'source': expected client addresses apart from the topology's (127.0.0.2 is site east)")
        self.assertError('[[population]]\nname = "a"\nrate = 5\necs = "127.0.3.1/24"\n', "key 'ecs'")
        self.assertError('[[population]]\nname = "a"\nrate = 5\n', "key 'queries'",
                         base=BASE.replace('queries = ["www.t.gslb"]', ""))

    def test_notRunnableHere(self):
        self.assertError("", "[appliance]: key 'ip': expected a loopback address",
                         base=BASE.replace('ip = "127.0.0.5"', 'ip = "10.0.0.5"'))

    def test_scenarioErrorIsAConfigError(self):
        self.assertTrue(issubclass(ScenarioError, ConfigError))
        with self.assertRaises(ScenarioError) as caught:
            loadScenario(os.path.join(self.mktemp(), "none.toml"))
        self.assertIn("none.toml: file: cannot be read", str(caught.exception))
