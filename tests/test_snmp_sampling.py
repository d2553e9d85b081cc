"""
Tests for L{gslb_twisted.snmp.sampling}: which OIDs a site is polled for,
and the metric values (and service states) its agent's answers make.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import MetricSpec, MetricTable, Service, SNMPSettings
from gslb_twisted.snmp.sampling import DOWN, UP, Answer, Sampler, encodeInstance, pollPlan

CPU_IDLE = "1.3.6.1.4.1.2021.11.11.0"
MEM_AVAIL = "1.3.6.1.4.1.2021.4.6.0"
MEM_TOTAL = "1.3.6.1.4.1.2021.4.5.0"
IF_OUT = "1.3.6.1.2.1.2.2.1.16.{interface}"
VS_CONNS = "1.3.6.1.4.1.3375.2.2.10.2.3.1.12.{service}"
VS_BYTES = "1.3.6.1.4.1.3375.2.2.10.2.3.1.9.{service}"

CPU = MetricSpec("cpu", CPU_IDLE, scale=-1, offset=100)
MEMORY = MetricSpec("memory", MEM_AVAIL, type="ratio", of=MEM_TOTAL, scale=-100, offset=100)


def settings(interface: int = 1) -> SNMPSettings:
    return SNMPSettings(
        port=161, version="2c", community="public", table="test", user=None,
        auth_protocol=None, auth_key=None, priv_protocol=None, priv_key=None, interface=interface,
    )


def service(name: str, instance: str | None = None) -> Service:
    return Service(
        name=name, site="paris", ip="192.0.2.10", port=80, type="HTTP", weight=1,
        max_clients=0, backend=None, monitor=None, snmp_instance=instance,
    )


SERVICES = (service("web", "/Common/vs_web"), service("api", "/Common/vs_api"))


def plan(*specs: MetricSpec, services=SERVICES, interface: int = 1):
    table = MetricTable("test", {spec.name: spec for spec in specs})
    return pollPlan("paris", table, settings(interface), services)


def gauge(value) -> Answer:
    return Answer(value, "Gauge32")


class EncodeInstanceTests(SynchronousTestCase):
    def test_numericSuffixKept(self) -> None:
        """An ifIndex or a dotted suffix is the OID suffix as written."""
        self.assertEqual(encodeInstance("3"), "3")
        self.assertEqual(encodeInstance("1.7"), "1.7")

    def test_nameAsStringIndex(self) -> None:
        """An F5 virtual server's name is its length, then its bytes."""
        self.assertEqual(
            encodeInstance("/Common/vs_web"),
            "14.47.67.111.109.109.111.110.47.118.115.95.119.101.98",
        )

    def test_nonASCIIName(self) -> None:
        """A non-ASCII name is indexed by its UTF-8 bytes, and counted in bytes."""
        self.assertEqual(encodeInstance("/Común"), "7.47.67.111.109.195.186.110")


class PollPlanTests(SynchronousTestCase):
    def test_interfaceFilled(self) -> None:
        """{interface} is the site's configured ifIndex."""
        self.assertEqual(plan(MetricSpec("out", IF_OUT, type="counter"), interface=2).oids,
                         ("1.3.6.1.2.1.2.2.1.16.2",))

    def test_serviceFilledPerService(self) -> None:
        """{service} is each service's snmp_instance, encoded."""
        made = plan(MetricSpec("connections", VS_CONNS))
        self.assertEqual(made.oids, (
            "1.3.6.1.4.1.3375.2.2.10.2.3.1.12." + encodeInstance("/Common/vs_web"),
            "1.3.6.1.4.1.3375.2.2.10.2.3.1.12." + encodeInstance("/Common/vs_api"),
        ))
        self.assertEqual([reading.services for reading in made.readings], [("web",), ("api",)])

    def test_sharedOIDAskedOnce(self) -> None:
        """Two metrics of one OID cost one variable in the request."""
        made = plan(CPU, MetricSpec("load", CPU_IDLE, scale=-1, offset=100))
        self.assertEqual(made.oids, (CPU_IDLE,))
        self.assertEqual([reading.metric for reading in made.readings], ["cpu", "load"])

    def test_ratioDenominatorAsked(self) -> None:
        self.assertEqual(plan(MEMORY).oids, (MEM_AVAIL, MEM_TOTAL))

    def test_deviceWideReadingForAllServices(self) -> None:
        """A device-wide metric is read once and is every service's."""
        (reading,) = plan(CPU).readings
        self.assertEqual(reading.services, ("web", "api"))
        self.assertEqual(reading.oid, CPU_IDLE)

    def test_serviceOIDsOnlyPerService(self) -> None:
        """Only per-service OIDs tell whether a service exists on the device."""
        made = plan(CPU, MetricSpec("connections", VS_CONNS))
        web = "1.3.6.1.4.1.3375.2.2.10.2.3.1.12." + encodeInstance("/Common/vs_web")
        api = "1.3.6.1.4.1.3375.2.2.10.2.3.1.12." + encodeInstance("/Common/vs_api")
        self.assertEqual(dict(made.serviceOIDs), {"web": (web,), "api": (api,)})
        self.assertEqual(dict(plan(CPU).serviceOIDs), {})


class SamplerTests(SynchronousTestCase):
    def test_gaugeScaledAndOffset(self) -> None:
        """CPU idle 75 % is reported as 25 % busy, for every service of the site."""
        sample = Sampler(plan(CPU)).sample({CPU_IDLE: Answer(75.0, "Integer")}, 10.0)
        self.assertEqual(sample.services, {"web": {"cpu": 25.0, "state": UP}, "api": {"cpu": 25.0, "state": UP}})
        self.assertEqual(sample.problems, [])
        self.assertEqual(sample.lagging, {})

    def test_roundedToThreeDecimals(self) -> None:
        sampler = Sampler(plan(MetricSpec("third", CPU_IDLE, scale=1 / 3)))
        self.assertEqual(sampler.sample({CPU_IDLE: gauge(2.0)}, 1.0).services["web"]["third"], 0.667)

    def test_counterFirstReading(self) -> None:
        """A counter has no value until its second poll; the problem says why."""
        sampler = Sampler(plan(MetricSpec("out", IF_OUT, type="counter")))
        sample = sampler.sample({"1.3.6.1.2.1.2.2.1.16.1": Answer(1000.0, "Counter32")}, 10.0)
        self.assertIsNone(sample.services["web"].get("out"))
        (problem,) = sample.problems
        self.assertIn("first reading", problem)

    def test_counterRate(self) -> None:
        """The second poll gives the rate per second, scaled."""
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(MetricSpec("out", IF_OUT, type="counter", scale=8)))
        sampler.sample({oid: Answer(1000.0, "Counter32")}, 10.0)
        sample = sampler.sample({oid: Answer(6000.0, "Counter32")}, 20.0)
        self.assertEqual(sample.services["api"]["out"], 4000.0)
        self.assertEqual(sample.problems, [])

    def test_counterWraps(self) -> None:
        """A Counter32 that goes down wrapped at 2**32."""
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(MetricSpec("out", IF_OUT, type="counter")))
        sampler.sample({oid: Answer(2.0**32 - 100, "Counter32")}, 0.0)
        sample = sampler.sample({oid: Answer(400.0, "Counter32")}, 10.0)
        self.assertEqual(sample.services["web"]["out"], 50.0)

    def test_counter64WentBack(self) -> None:
        """A Counter64 going down means a restart: no value, not a huge one."""
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(MetricSpec("out", IF_OUT, type="counter")))
        sampler.sample({oid: Answer(5000.0, "Counter64")}, 0.0)
        sample = sampler.sample({oid: Answer(10.0, "Counter64")}, 10.0)
        self.assertIsNone(sample.services["web"].get("out"))
        (problem,) = sample.problems
        self.assertIn("restarted or reset", problem)
        # The next poll counts from the restart.
        self.assertEqual(sampler.sample({oid: Answer(110.0, "Counter64")}, 20.0).services["web"]["out"], 10.0)

    def test_counterSameTime(self) -> None:
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(MetricSpec("out", IF_OUT, type="counter")))
        sampler.sample({oid: Answer(1.0, "Counter32")}, 5.0)
        sample = sampler.sample({oid: Answer(2.0, "Counter32")}, 5.0)
        self.assertIsNone(sample.services["web"].get("out"))
        self.assertIn("same time", sample.problems[0])

    def test_counterSharedByTwoMetrics(self) -> None:
        """
        Two counter metrics of one OID (kbit/s and bytes/s of one interface)
        both have their rate from the second poll on.
        """
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(MetricSpec("kbits", IF_OUT, type="counter", scale=0.008),
                               MetricSpec("bytes", IF_OUT, type="counter")))
        sampler.sample({oid: Answer(1000.0, "Counter64")}, 10.0)
        sample = sampler.sample({oid: Answer(2000.0, "Counter64")}, 20.0)
        self.assertEqual(sample.problems, [])
        self.assertEqual(sample.services["web"], {"kbits": 0.8, "bytes": 100.0, "state": UP})

    def test_ratio(self) -> None:
        """Memory used is 100 - 100 x available / total."""
        sample = Sampler(plan(MEMORY)).sample({MEM_AVAIL: gauge(250.0), MEM_TOTAL: gauge(1000.0)}, 1.0)
        self.assertEqual(sample.services["web"]["memory"], 75.0)

    def test_ratioZeroDenominator(self) -> None:
        sample = Sampler(plan(MEMORY)).sample({MEM_AVAIL: gauge(250.0), MEM_TOTAL: gauge(0.0)}, 1.0)
        self.assertIsNone(sample.services["web"].get("memory"))
        (problem,) = sample.problems
        self.assertIn(f"denominator {MEM_TOTAL}: zero", problem)

    def test_missingOrNoSuchInstance(self) -> None:
        """An OID not answered, or answered noSuchInstance, leaves its metric out."""
        sampler = Sampler(plan(CPU, MEMORY))
        sample = sampler.sample({MEM_AVAIL: Answer(None, "noSuchInstance"), MEM_TOTAL: gauge(1.0)}, 1.0)
        self.assertEqual(sample.services["web"], {"state": UP, "cpu": None, "memory": None})
        self.assertEqual(len(sample.problems), 2)
        self.assertIn("no answer", sample.problems[0])
        self.assertIn("noSuchInstance", sample.problems[1])

    def test_serviceGoneIsDown(self) -> None:
        """A virtual server the device no longer has is DOWN; the others stay UP."""
        made = plan(CPU, MetricSpec("connections", VS_CONNS), MetricSpec("bytes", VS_BYTES, type="counter"))
        answers = {CPU_IDLE: gauge(90.0)}
        for oid in made.serviceOIDs["web"]:
            answers[oid] = Answer(None, "noSuchInstance")
        for oid in made.serviceOIDs["api"]:
            answers[oid] = Answer(7.0, "Counter32" if ".9." in oid else "Gauge32")
        sample = Sampler(made).sample(answers, 1.0)
        self.assertEqual(sample.services["web"], {"cpu": 10.0, "state": DOWN, "connections": None, "bytes": None})
        self.assertEqual(sample.services["api"], {"cpu": 10.0, "connections": 7.0, "state": UP, "bytes": None})

    def test_serviceWithSomeAnswerIsUp(self) -> None:
        """One answered OID of a service is enough for it to exist."""
        made = plan(MetricSpec("connections", VS_CONNS), MetricSpec("bytes", VS_BYTES, type="counter"))
        connections, bytesOut = made.serviceOIDs["web"]
        answers = {connections: Answer(None, "noSuchInstance"), bytesOut: Answer(1.0, "Counter32")}
        self.assertEqual(Sampler(made).sample(answers, 1.0).services["web"]["state"], UP)

    def test_deviceWideOnlyIsUp(self) -> None:
        """Without per-service OIDs, services are UP (the poller tells a dead site)."""
        sample = Sampler(plan(CPU)).sample({}, 1.0)
        self.assertEqual(sample.services, {"web": {"state": UP, "cpu": None}, "api": {"state": UP, "cpu": None}})

    def test_lagging(self) -> None:
        """A metric not refreshed by this poll is listed with when it last was."""
        sampler = Sampler(plan(CPU, MetricSpec("load_average", "1.3.6.1.4.1.2021.10.1.5.1", scale=0.01)))
        sampler.sample({CPU_IDLE: gauge(50.0), "1.3.6.1.4.1.2021.10.1.5.1": gauge(120.0)}, 10.0)
        sample = sampler.sample({"1.3.6.1.4.1.2021.10.1.5.1": gauge(80.0)}, 15.0)
        self.assertEqual(sample.lagging, {"web": {"cpu": 10.0}, "api": {"cpu": 10.0}})
        self.assertEqual(sample.services["web"], {"load_average": 0.8, "state": UP})

    def test_resetForgets(self) -> None:
        """After reset() counters start afresh and nothing is lagging."""
        oid = "1.3.6.1.2.1.2.2.1.16.1"
        sampler = Sampler(plan(CPU, MetricSpec("out", IF_OUT, type="counter")))
        sampler.sample({CPU_IDLE: gauge(50.0), oid: Answer(100.0, "Counter32")}, 10.0)
        sampler.reset()
        sample = sampler.sample({oid: Answer(200.0, "Counter32")}, 20.0)
        self.assertIsNone(sample.services["web"].get("out"))
        self.assertIn("first reading", sample.problems[-1])
        self.assertEqual(sample.lagging, {})


class WithdrawnValueTests(SynchronousTestCase):
    """Values no poll refreshes stop looking current; resets are not wild rates."""

    def test_valueWithdrawnPastDeadInterval(self) -> None:
        """
        An OID that keeps failing keeps its last value for dead_interval
        (lagging, with its time), then is withdrawn (None: missing, so a
        method that needs it falls back).
        """
        sampler = Sampler(plan(CPU), deadInterval=3.0)
        sampler.sample({CPU_IDLE: Answer(80.0, "Integer")}, 10.0)
        sample = sampler.sample({CPU_IDLE: Answer(None, "noSuchInstance")}, 12.0)
        self.assertNotIn("cpu", sample.services["web"])
        self.assertEqual(sample.lagging["web"], {"cpu": 10.0})
        sample = sampler.sample({CPU_IDLE: Answer(None, "noSuchInstance")}, 13.5)
        self.assertIsNone(sample.services["web"]["cpu"])
        self.assertEqual(sample.lagging, {})

    def test_counter32ResetIsNotAWrap(self) -> None:
        """A 32-bit counter going back by more than half its range was reset, not wrapped."""
        spec = MetricSpec("out", IF_OUT, type="counter", scale=0.008)
        oid = IF_OUT.replace("{interface}", "1")
        sampler = Sampler(plan(spec))
        sampler.sample({oid: Answer(1.5e9, "Counter32")}, 10.0)
        sample = sampler.sample({oid: Answer(1000.0, "Counter32")}, 11.0)
        self.assertIsNone(sample.services["web"]["out"])
        self.assertIn("counter went back", sample.problems[0])
        # A genuine wrap (a small step past 2**32) is still a rate.
        sampler.sample({oid: Answer(2**32 - 500.0, "Counter32")}, 20.0)
        sample = sampler.sample({oid: Answer(500.0, "Counter32")}, 21.0)
        self.assertEqual(sample.services["web"]["out"], 8.0)

    def test_v1MissingInstanceIsGone(self) -> None:
        """SNMPv1's noSuchName for every OID of a service: the service is DOWN, as with v2c."""
        specs = (MetricSpec("connections", VS_CONNS),)
        p = pollPlan("paris", MetricTable("t", {s.name: s for s in specs}), settings(), SERVICES)
        answers = {oid: Answer(None, "noSuchName") for oid in p.oids}
        self.assertEqual({name: v["state"] for name, v in Sampler(p).sample(answers, 1.0).services.items()},
                         {"web": DOWN, "api": DOWN})
