"""
Expectations judged against a recorded series
(L{gslb_twisted.scenario.expect}): every kind passing and failing, with
what it measured; the segment marks; the failover table.  Synthetic
series, no reactor.
"""

from __future__ import annotations

import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.scenario.expect import describe, evaluate, failovers, judge, marks
from gslb_twisted.scenario.model import parseScenario
from gslb_twisted.scenario.series import Series
from tests.test_scenario_model import BASE

EAST, WEST, STATIC = "192.0.2.10", "198.51.100.10", "203.0.113.9"


def scenario(expectations: str, events: str = ""):
    return parseScenario(tomllib.loads(BASE + """
[[population]]
name = "us"
share = 50

[[population]]
name = "eu"
share = 50

[[event]]
id = "out"
at = 10
action = "site-down"
site = "east"

[[event]]
id = "back"
at = 20
action = "site-up"
site = "east"
""" + events + expectations), "/scenarios/e.toml")


def steady(s, start: float, end: float, addresses, population="us", step=0.1, latency=0.001):
    """One answer every C{step} seconds from C{start} to C{end}, cycling over C{addresses}."""
    i = 0
    t = start
    while t < end - 1e-9:
        address = addresses[i % len(addresses)]
        s.answered(round(t, 6), population, 0, (address,) if address else (), latency)
        i += 1
        t += step


def outage(sc, lateLast=None, backAt=22.0):
    """East answered until 10 (or until C{lateLast}), not until C{backAt}, then again."""
    s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf(), ["us", "eu"])
    steady(s, 0, 10, [EAST, WEST])
    steady(s, 10, backAt, [WEST])
    if lateLast is not None:
        s.answered(lateLast, "eu", 0, (EAST,), 0.001)
    steady(s, backAt, 30, [EAST, WEST])
    return s


class KindTests(SynchronousTestCase):
    def verdicts(self, expectations: str, series_=None, speed=1.0, **kw):
        sc = scenario(expectations)
        return evaluate(sc, series_ if series_ is not None else outage(sc, **kw), speed)

    def test_noAnswer(self):
        ok, late = self.verdicts("""
[[expect]]
kind = "no-answer"
site = "east"
from = "out"
grace = 0.5
to = "back"

[[expect]]
kind = "no-answer"
service = "east-web"
from = "out"
to = "back"
""", lateLast=10.3)
        self.assertTrue(ok.passed, ok)
        self.assertEqual(ok.value, 0)
        self.assertFalse(late.passed)
        self.assertEqual(late.measured, "1 of 101 answers named it, the last sent at t=10.300")
        self.assertEqual(ok.text, "no answer names site east from out + 0.5 s grace to back")

    def test_noAnswerWithNothingToJudge(self):
        sc = scenario('[[expect]]\nkind = "no-answer"\nsite = "east"\nfrom = 12\nto = 14\n')
        s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf())
        (verdict,) = evaluate(sc, s)
        self.assertFalse(verdict.passed)
        self.assertIn("nothing to judge", verdict.measured)

    def test_share(self):
        within, below, population, address = self.verdicts("""
[[expect]]
kind = "share"
site = "east"
min = 45
max = 55
to = "out"

[[expect]]
kind = "share"
site = "west"
min = 30
max = 50
from = "out"
to = "back"

[[expect]]
kind = "share"
site = "east"
min = 99
population = "eu"
from = "out"
to = "back"

[[expect]]
kind = "share"
address = "198.51.100.10"
min = 50
""")
        self.assertTrue(within.passed)
        self.assertEqual(within.measured, "50.0 % (50 of 100 addresses given)")
        self.assertFalse(below.passed)
        self.assertEqual(below.value, 100.0)
        self.assertFalse(population.passed)
        self.assertIn("nothing to judge", population.measured)
        self.assertTrue(address.passed)
        self.assertEqual(within.text, "site east gets 45-55 % of the answers from start to out")

    def test_unanswered(self):
        sc = scenario("""
[[expect]]
kind = "unanswered"
max_gap = 1.0

[[expect]]
kind = "unanswered"
max_gap = 2.0
max_percent = 10

[[expect]]
kind = "unanswered"
max_percent = 1
from = "back"
""")
        s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf(), ["us", "eu"])
        steady(s, 0, 12, [WEST])
        for i in range(15):
            s.lost(12 + i * 0.1, "us")
        steady(s, 13.5, 30, [WEST])
        strict, loose, after = evaluate(sc, s)
        self.assertFalse(strict.passed)
        self.assertEqual(strict.value, 1.6)
        self.assertIn("longest gap 1.600 s from t=11.900", strict.measured)
        self.assertTrue(loose.passed, loose)
        self.assertIn("15 of 300 unanswered (5.00 %)", loose.measured)
        self.assertTrue(after.passed)
        # At speed 2 the same series is half as long in real time.
        strict2 = judge(sc.expectations[0], sc, s, speed=2.0)
        self.assertTrue(strict2.passed)
        self.assertEqual(strict2.value, 0.8)
        self.assertIn("(1.600 scenario s)", strict2.measured)

    def test_latency(self):
        sc = scenario('[[expect]]\nkind = "latency"\npercentile = 99\nbelow_ms = 50\n'
                      '[[expect]]\nkind = "latency"\npercentile = 50\nbelow_ms = 50\n')
        s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf())
        steady(s, 0, 30, [EAST], latency=0.002)
        steady(s, 0, 1, [EAST], step=0.01, latency=0.3)  # 100 slow of 400
        slow, median = evaluate(sc, s)
        self.assertFalse(slow.passed)
        self.assertTrue(slow.value >= 300)
        self.assertTrue(median.passed)
        self.assertTrue(2.0 <= median.value < 2.5, median.value)

    def test_rcode(self):
        sc = scenario('[[expect]]\nkind = "rcode"\nrcode = "EMPTY"\n[[expect]]\nkind = "rcode"\nrcode = "SERVFAIL"\nmax_percent = 5\n')
        s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf())
        steady(s, 0, 10, [WEST, None])  # every other answer without an address
        for i in range(5):
            s.answered(11 + i, None, 2, (), 0.001)
        empty, servfail = evaluate(sc, s)
        self.assertFalse(empty.passed)
        self.assertEqual(empty.measured, "50 of 105 answers (47.62 %)")
        self.assertTrue(servfail.passed)

    def test_failover(self):
        expectations = """
[[expect]]
kind = "failover"
site = "east"
after = "out"
within = 1
until = "back"
"""
        (quick,) = self.verdicts(expectations)
        self.assertTrue(quick.passed)
        self.assertEqual(quick.value, 0.0)
        self.assertEqual(quick.measured, "no answer named it after the event (0 s)")
        (slow,) = self.verdicts(expectations, lateLast=12.5)
        self.assertFalse(slow.passed)
        self.assertEqual(slow.value, 2.5)
        self.assertIn("the last answer naming it was sent at t=12.500", slow.measured)
        (ok,) = self.verdicts(expectations, lateLast=10.8)
        self.assertTrue(ok.passed)
        # Applied late: measured from when it was applied, not when it was due.
        sc = scenario(expectations)
        (fromApplied,) = evaluate(sc, outage(sc, lateLast=11.6), applied={"out": 10.7})
        self.assertTrue(fromApplied.passed)
        self.assertEqual(fromApplied.value, 0.9)
        self.assertIn("the event was applied at t=10.700", fromApplied.measured)
        self.assertEqual(ok.text, "answers stop naming site east within 1 s of out (looking until back)")

    def test_failoverThatNeverHappens(self):
        sc = scenario('[[expect]]\nkind = "failover"\nsite = "east"\nafter = "out"\nwithin = 1\n')
        s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf())
        steady(s, 0, 30, [EAST])
        (verdict,) = evaluate(sc, s)
        self.assertFalse(verdict.passed)
        self.assertIn("no answer came after to show it stopped", verdict.measured)

    def test_recovery(self):
        expectations = '[[expect]]\nkind = "recovery"\nsite = "east"\nafter = "back"\nwithin = 3\n'
        (ok,) = self.verdicts(expectations, backAt=22.0)
        self.assertTrue(ok.passed)
        self.assertAlmostEqual(ok.value, 2.0)
        (late,) = self.verdicts(expectations, backAt=24.0)
        self.assertFalse(late.passed)
        sc = scenario(expectations)
        (fromApplied,) = evaluate(sc, outage(sc, backAt=24.0), applied={"back": 21.5})
        self.assertTrue(fromApplied.passed)
        self.assertAlmostEqual(fromApplied.value, 2.5)
        (never,) = self.verdicts(expectations, backAt=30.0)
        self.assertFalse(never.passed)
        self.assertEqual(never.measured, "no answer named it between back and end")

    def test_describeEveryKind(self):
        sc = scenario("""
[[expect]]
kind = "unanswered"
max_gap = 1
max_percent = 0.5
population = "eu"

[[expect]]
kind = "latency"
below_ms = 20
from = 5

[[expect]]
kind = "rcode"
rcode = "NXDOMAIN"
max_percent = 1

[[expect]]
kind = "recovery"
site = "east"
after = "back"
within = 2
population = "us"
""")
        self.assertEqual([describe(e) for e in sc.expectations], [
            "no query unanswered for more than 1 s and at most 0.5 % unanswered from start to end for population eu",
            "p99 answer latency below 20 ms from 5 to end",
            "at most 1 % NXDOMAIN answers from start to end",
            "an answer names site east again within 2 s of back for population us",
        ])


class MarksAndFailoverTableTests(SynchronousTestCase):
    def test_marks(self):
        sc = scenario("""
[[expect]]
kind = "no-answer"
site = "east"
from = "out"
grace = 1.5
to = "end-2"
""", events="""
[[event]]
at = 3
action = "ramp"
service = "west-web"
metric = "connections"
from = 0
to = 5
over = 4
""")
        self.assertEqual(marks(sc), [0.0, 3.0, 7.0, 10.0, 11.5, 20.0, 28.0, 30.0])

    def test_failoverTable(self):
        sc = scenario("", events="""
[[event]]
at = 24
action = "disable-service"
service = "west-web"
""")
        s = outage(sc, lateLast=10.4)
        states = {"east": [[0.0, "UP", 0], [10.3, "DOWN", 0], [22.5, "UP", 1]]}
        east, west = failovers(sc, s, states)
        self.assertEqual(east, {
            "event": "t=10 site-down east", "target": "east", "at": 10.0, "applied_at": 10.0, "appliance_down_after": 0.3,
            "last_answer_after": 0.4, "answers_naming_it": 1, "back_event": "t=20 site-up east",
            "appliance_up_after": 2.5, "first_answer_after": 2.0,
        })
        self.assertEqual(west["target"], "west-web")
        self.assertIsNone(west["back_event"])
        self.assertIsNone(west["appliance_down_after"])
        self.assertEqual(west["last_answer_after"], 5.9)
        # Measured from the events as they were applied.
        late, _ = failovers(sc, s, states, {0: 10.2, 1: 20.5})
        self.assertEqual((late["applied_at"], late["appliance_down_after"], late["last_answer_after"],
                          late["appliance_up_after"], late["first_answer_after"]), (10.2, 0.1, 0.2, 2.0, 1.5))
