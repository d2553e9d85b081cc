"""
Tests for L{gslb_twisted.snmp.poller.SNMPSitePoller}: when an SNMP site is
polled, what is reported of it, and when (and why) it is said to be DOWN.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import MetricSpec, MetricTable, Service, Site, SNMPSettings
from gslb_twisted.snmp.client import SNMPError
from gslb_twisted.snmp.poller import PROBE_EVERY, SNMPSitePoller
from gslb_twisted.snmp.sampling import DOWN, UP, Answer, pollPlan

CPU_IDLE = "1.3.6.1.4.1.2021.11.11.0"
CONNECTIONS = "1.3.6.1.4.1.3375.2.2.10.2.3.1.12.{service}"
INTERVAL = 1.0
DEAD = 3.0
TIMEOUT = SNMPError("timeout", "no answer from 192.0.2.10:161 after 2 tries")


def makeSite(version: str = "2c") -> Site:
    settings = SNMPSettings(
        port=161, version=version, community="public" if version != "3" else None, table="test",
        user="gslb" if version == "3" else None, auth_protocol=None, auth_key=None,
        priv_protocol=None, priv_key=None,
    )
    return Site("paris", "192.0.2.10", 2000, protocol="snmp", metric_exchange=True,
                location=None, emulator=None, snmp=settings)


SERVICES = [
    Service(name, "paris", "192.0.2.10", 80, "HTTP", 1, 0, None, None, snmp_instance=instance)
    for name, instance in (("web", "1"), ("api", "2"))
]
TABLE = MetricTable("test", {
    "cpu": MetricSpec("cpu", CPU_IDLE, scale=-1, offset=100),
    "connections": MetricSpec("connections", CONNECTIONS),
})


class FakeClient:
    """Records requests; each answers when the test fires its Deferred."""

    def __init__(self) -> None:
        self.gets: list[tuple[str, tuple, Deferred]] = []
        self.probes: list[Deferred] = []

    def get(self, name, oids) -> Deferred:
        d: Deferred = Deferred()
        self.gets.append((name, tuple(oids), d))
        return d

    def probe(self, name) -> Deferred:
        d: Deferred = Deferred()
        self.probes.append(d)
        return d


class PollerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.reports: list[tuple] = []

    def startPoller(self, version: str = "2c") -> SNMPSitePoller:
        site = makeSite(version)
        self.plan = pollPlan(site.name, TABLE, site.snmp, SERVICES)
        poller = SNMPSitePoller(self.clock, self.client, site, self.plan, INTERVAL, DEAD, self.record)
        poller.start()
        self.addCleanup(poller.stop)
        return poller

    def toFirstPoll(self) -> None:
        """Advance to the first poll, which comes within the first interval."""
        (first,) = self.clock.getDelayedCalls()
        self.assertLess(first.getTime(), INTERVAL)
        self.clock.advance(first.getTime() - self.clock.seconds())

    def record(self, *args) -> None:
        self.reports.append((self.clock.seconds(),) + args)

    def answers(self, idle: float = 80.0) -> dict:
        return {CPU_IDLE: Answer(idle, "Integer"),
                "1.3.6.1.4.1.3375.2.2.10.2.3.1.12.1": Answer(5.0, "Gauge32"),
                "1.3.6.1.4.1.3375.2.2.10.2.3.1.12.2": Answer(7.0, "Gauge32")}

    def tick(self, answer=None) -> None:
        """Advance one interval; answer (or fail) the request it sent."""
        before = len(self.client.gets)
        self.clock.advance(INTERVAL)
        if answer is not None:
            self.assertEqual(len(self.client.gets), before + 1)
            d = self.client.gets[-1][2]
            if isinstance(answer, Exception):
                d.errback(answer)
            else:
                d.callback(answer)

    def downs(self) -> list[tuple]:
        return [report for report in self.reports if report[1] == DOWN]

    def test_firstPollWithinFirstInterval(self) -> None:
        """The first poll comes within the first interval, then one per interval."""
        self.startPoller()
        self.assertEqual(self.client.gets, [])
        self.toFirstPoll()
        self.assertEqual([(name, oids) for name, oids, _ in self.client.gets], [("paris", self.plan.oids)])
        self.client.gets[0][2].callback(self.answers())
        for polls in (2, 3, 4):
            self.tick()
            self.assertEqual(len(self.client.gets), polls)
            self.client.gets[-1][2].callback(self.answers())

    def test_oneRequestAtATime(self) -> None:
        """While a request waits for its answer, ticks send nothing."""
        poller = self.startPoller()
        self.toFirstPoll()
        self.tick()
        self.assertEqual(len(self.client.gets), 1)
        self.assertEqual((poller.polls, poller.skipped), (1, 1))
        self.client.gets[0][2].callback(self.answers())
        self.tick()
        self.assertEqual(len(self.client.gets), 2)

    def test_requestWithoutOutcomeIsAbandoned(self) -> None:
        """
        A request the engine never settles (it always should, after its
        retries) is given up once every try and an interval have passed: the
        poller asks again instead of skipping for ever.
        """
        poller = self.startPoller()
        self.toFirstPoll()
        self.tick()  # 1 s: still within its tries (0.4 s x 2) and an interval
        self.tick()  # 2 s: past them; asked again
        self.assertEqual(len(self.client.gets), 2)
        self.assertEqual(poller.skipped, 1)
        # The abandoned request's late outcome changes nothing.
        self.client.gets[0][2].callback(self.answers())
        self.assertEqual(self.reports, [])

    def test_answerReportsUp(self) -> None:
        """An answer reports the site UP with each service's metrics."""
        self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].callback(self.answers(idle=80.0))
        (report,) = self.reports
        self.assertEqual(report[1:], (
            UP,
            {"web": {"cpu": 20.0, "connections": 5.0, "state": UP},
             "api": {"cpu": 20.0, "connections": 7.0, "state": UP}},
            {},
            None,
        ))

    def test_neverAnsweredDown(self) -> None:
        """A site never answering is DOWN once dead_interval has passed since start."""
        self.startPoller()
        self.clock.advance(DEAD - 0.01)
        self.assertEqual(self.reports, [])
        self.clock.advance(INTERVAL)
        (down,) = self.reports
        self.assertGreaterEqual(down[0], DEAD)
        self.assertEqual(down[1:], (DOWN, None, None, "SNMP: no answer from the agent yet"))

    def test_failuresDownOnceThenUpThenDownAgain(self) -> None:
        """
        Failing polls make the site DOWN once, dead_interval after the last
        answer, saying why; an answer makes it UP, a new outage DOWN again.
        """
        error = SNMPError("agent", "the agent answered genErr")
        poller = self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].callback(self.answers())
        answeredAt = self.clock.seconds()
        for _ in range(8):
            self.tick(error)
        (down,) = self.downs()
        self.assertGreaterEqual(down[0] - answeredAt, DEAD)
        self.assertLess(down[0] - answeredAt, DEAD + INTERVAL)
        self.assertEqual(down[1:3], (DOWN, None))
        self.assertTrue(down[4].startswith("SNMP: "))
        self.assertIn("the agent answered genErr", down[4])
        self.assertEqual(poller.failures, 8)

        self.tick(self.answers())
        self.assertEqual(self.reports[-1][1], UP)
        answeredAt = self.clock.seconds()
        for _ in range(8):
            self.tick(RuntimeError("engine exploded"))
        self.assertEqual(len(self.downs()), 2)
        down = self.downs()[-1]
        self.assertGreaterEqual(down[0] - answeredAt, DEAD)
        self.assertEqual(down[4], "SNMP: engine exploded")

    def test_timeoutProbeSaysWrongCommunity(self) -> None:
        """A v2c timeout while an agent answers there is a wrong community."""
        poller = self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].errback(TIMEOUT)
        self.assertEqual(len(self.client.probes), 1)
        self.client.probes[0].callback(True)
        self.assertIn("wrong community", poller.lastError)
        self.assertIn("'public'", poller.lastError)
        # The timeouts between probes keep the diagnosis.
        for _ in range(4):
            self.tick(TIMEOUT)
        self.assertEqual(len(self.client.probes), 1)
        self.assertIn("wrong community", poller.status()["last_error"])
        (down,) = self.downs()
        self.assertIn("wrong community", down[4])
        self.assertIn("'public'", down[4])

    def test_timeoutProbeSaysDeadAgent(self) -> None:
        """No agent at all: the timeout is what the user is told."""
        poller = self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].errback(TIMEOUT)
        self.client.probes[0].callback(False)
        self.assertEqual(poller.lastError, TIMEOUT.message)
        for _ in range(4):
            self.tick(TIMEOUT)
        (down,) = self.downs()
        self.assertEqual(down[4], "SNMP: " + TIMEOUT.message)

    def test_probeEveryFewFailures(self) -> None:
        """The probe is asked on the first timeout of a streak, then every PROBE_EVERY."""
        self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].errback(TIMEOUT)
        self.client.probes[-1].callback(False)
        for streak in range(2, 2 * PROBE_EVERY + 1):
            self.tick(TIMEOUT)
            self.assertEqual(len(self.client.probes), 1 + streak // PROBE_EVERY, streak)
            if not self.client.probes[-1].called:
                self.client.probes[-1].callback(False)
        # An answer ends the streak: the next timeout probes at once.
        self.tick(self.answers())
        self.tick(TIMEOUT)
        self.assertEqual(len(self.client.probes), 4)

    def test_lateProbeAfterRecovery(self) -> None:
        """A probe answering after the agent answered again blames nothing."""
        poller = self.startPoller()
        self.toFirstPoll()
        self.client.gets[0][2].errback(TIMEOUT)
        self.tick(self.answers())
        self.assertEqual(self.reports[-1][1], UP)
        self.client.probes[0].callback(True)
        self.assertIsNone(poller.status()["last_error"])

    def test_v3CredentialsNotProbed(self) -> None:
        """SNMPv3 refusing our user is said as the agent said it, without a probe."""
        poller = self.startPoller(version="3")
        self.toFirstPoll()
        self.client.gets[0][2].errback(SNMPError("credentials", "unknown user name 'gslb'"))
        self.assertEqual(self.client.probes, [])
        self.assertEqual(poller.status()["last_error"], "unknown user name 'gslb'")

    def test_stopStopsPolling(self) -> None:
        """After stop() nothing is sent, and a late answer reports nothing."""
        poller = self.startPoller()
        self.toFirstPoll()
        poller.stop()
        self.assertFalse(poller.running)
        for _ in range(10):
            self.tick()
        self.assertEqual(len(self.client.gets), 1)
        self.client.gets[0][2].callback(self.answers())
        self.assertEqual(self.reports, [])
        self.assertIsNone(poller.status()["last_success_age"])

    def test_stopBeforeFirstPoll(self) -> None:
        poller = self.startPoller()
        poller.stop()
        self.clock.advance(10 * INTERVAL)
        self.assertEqual((self.client.gets, self.reports), ([], []))

    def test_status(self) -> None:
        """status() counts polls and failures and times the last answer."""
        poller = self.startPoller(version="3")
        self.assertEqual(poller.status(), {
            "polls": 0, "failures": 0, "skipped": 0, "last_error": None,
            "last_success_age": None, "latency_ms": None, "oids": 3,
        })
        self.toFirstPoll()
        self.clock.advance(0.25)
        self.client.gets[0][2].callback(self.answers())
        self.tick()
        self.tick()
        self.client.gets[1][2].errback(TIMEOUT)
        self.assertEqual(poller.status(), {
            "polls": 2, "failures": 1, "skipped": 1, "last_error": TIMEOUT.message,
            "last_success_age": 2.0, "latency_ms": 250.0, "oids": 3,
        })
