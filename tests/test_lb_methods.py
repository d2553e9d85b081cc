"""
Tests for L{gslb_twisted.lb.methods}: each load-balancing method's ranking
against expectations computed by hand, and the consistent-hash ring.
"""

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import CustomLoadMetric
from gslb_twisted.lb.clients import keyHash
from gslb_twisted.lb.locations import greatCircleKm
from gslb_twisted.lb.methods import (
    LEAST_METRIC,
    Candidate,
    HashRing,
    customLoad,
    customLoadGroups,
    groupSets,
    leastMetricGroups,
    missingMetric,
    overThresholds,
    proximityGroups,
    rankGroups,
    roundRobinSets,
    rttGroups,
)

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=200)

NEW_YORK = (40.7128, -74.0060)
SAN_FRANCISCO = (37.7749, -122.4194)
LONDON = (51.5074, -0.1278)
BOSTON = (42.3601, -71.0589)
PARIS = (48.8566, 2.3522)


def candidate(name, weight=1, metrics=None, site="s", location=None, **values):
    if values:
        metrics = dict(metrics or {}, **values)
    return Candidate(name, "192.0.2.1", site, weight, metrics, 0, location)


def names(groups):
    return [[c.service for c in group] for group in groups]


def leaders(sets):
    return Counter(chosen[0] for chosen in sets)


class RoundRobinTests(SynchronousTestCase):
    def test_weightsProportionalOverACycle(self):
        """Weights 3, 2, 1: over one cycle of sets, 3, 2 and 1 turns each."""
        sets = roundRobinSets([candidate("a", 3), candidate("b", 2), candidate("c", 1)], 1)
        self.assertEqual(len(sets), 6)
        self.assertEqual(leaders(sets), {"a": 3, "b": 2, "c": 1})

    def test_equalWeightsTakeOneTurnEach(self):
        sets = roundRobinSets([candidate("a"), candidate("b"), candidate("c")], 1)
        self.assertEqual(sets, (("a",), ("b",), ("c",)))

    def test_commonFactorDoesNotChangeProportions(self):
        sets = roundRobinSets([candidate("a", 4), candidate("b", 2)], 1)
        self.assertEqual(leaders(sets), {"a": 2, "b": 1})

    def test_answersAreDistinct(self):
        sets = roundRobinSets([candidate("a", 3), candidate("b", 2), candidate("c", 1)], 2)
        self.assertEqual(len(sets), 6)
        for chosen in sets:
            self.assertEqual(len(chosen), 2)
            self.assertEqual(len(set(chosen)), 2)
        self.assertEqual(leaders(sets), {"a": 3, "b": 2, "c": 1})


class LeastMetricTests(SynchronousTestCase):
    def test_lowestFirst(self):
        for method, metric in LEAST_METRIC.items():
            groups = leastMetricGroups(
                [candidate("a", **{metric: 30}), candidate("b", **{metric: 7}), candidate("c", **{metric: 12})], metric
            )
            self.assertEqual(names(groups), [["b"], ["c"], ["a"]], method)

    def test_weightsDivideTheMetric(self):
        """
        NetScaler ranks metric/weight: 10 conns at weight 2 (5) beats 6 at
        weight 1 (6), and 12 at weight 3 (4) beats both.
        """
        for method, metric in LEAST_METRIC.items():
            groups = leastMetricGroups(
                [candidate("a", 2, **{metric: 10}), candidate("b", 1, **{metric: 6}), candidate("c", 3, **{metric: 12})],
                metric,
            )
            self.assertEqual(names(groups), [["c"], ["a"], ["b"]], method)

    def test_weightedEqualRatiosTie(self):
        """8 conns at weight 2 and 4 at weight 1 are the same load: a tie."""
        groups = leastMetricGroups([candidate("a", 2, connections=8), candidate("b", 1, connections=4)], "connections")
        self.assertEqual(names(groups), [["a", "b"]])

    def test_missingMetricRanksLast(self):
        groups = leastMetricGroups(
            [candidate("a"), candidate("b", connections=99), candidate("c", connections="many")], "connections"
        )
        self.assertEqual(names(groups), [["b"], ["a", "c"]])

    def test_booleanIsNotAMetric(self):
        groups = leastMetricGroups([candidate("a", connections=True), candidate("b", connections=5)], "connections")
        self.assertEqual(names(groups), [["b"], ["a"]])

    def test_tieAtTheFirstPositionRotates(self):
        groups = leastMetricGroups(
            [candidate("a", connections=1), candidate("b", connections=1), candidate("c", connections=2)], "connections"
        )
        self.assertEqual(groupSets(groups, 1), (("a",), ("b",)))

    def test_tieAtALaterPositionRotates(self):
        groups = leastMetricGroups(
            [candidate("a", connections=5), candidate("b", connections=5), candidate("c", connections=0)], "connections"
        )
        self.assertEqual(groupSets(groups, 2), (("c", "a"), ("c", "b")))

    def test_tieBeyondTheAnswerDoesNotRotate(self):
        """A tie no answer reaches gives no extra sets."""
        groups = leastMetricGroups(
            [candidate("a", connections=5), candidate("b", connections=5), candidate("c", connections=0)], "connections"
        )
        self.assertEqual(groupSets(groups, 1), (("c",),))

    def test_tiesInTwoGroupsBothRotate(self):
        groups = rankGroups([candidate("a1"), candidate("a2"), candidate("b1"), candidate("b2")], lambda c: c.service[0])
        sets = groupSets(groups, 3)
        self.assertEqual(leaders(sets), {"a1": 1, "a2": 1})
        self.assertEqual(Counter(chosen[2] for chosen in sets), {"b1": 1, "b2": 1})

    def test_tiesLeadEquallyOftenWithUnevenGroups(self):
        """
        Two tied at the top and three tied below, three answers: over the
        rotation each top service leads equally often and each lower one
        takes the third place equally often.
        """
        groups = rankGroups(
            [candidate("a1"), candidate("a2"), candidate("b1"), candidate("b2"), candidate("b3")], lambda c: c.service[0]
        )
        sets = groupSets(groups, 3)
        self.assertEqual(len(set(leaders(sets).values())), 1, sets)
        self.assertEqual(len(set(Counter(chosen[2] for chosen in sets).values())), 1, sets)
        self.assertEqual(set(chosen[2] for chosen in sets), {"b1", "b2", "b3"}, sets)

    @deterministic
    @given(
        values=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8),
        answers=st.integers(min_value=1, max_value=10),
    )
    def test_answersDistinctAndInRankOrder(self, values, answers):
        """answers=N: N distinct services (all, if fewer), never a worse one before a better."""
        candidates = [candidate(f"s{i}", connections=v) for i, v in enumerate(values)]
        valueOf = {c.service: v for c, v in zip(candidates, values)}
        for chosen in groupSets(leastMetricGroups(candidates, "connections"), answers):
            self.assertEqual(len(chosen), min(answers, len(values)))
            self.assertEqual(len(set(chosen)), len(chosen))
            ranked = [valueOf[s] for s in chosen]
            self.assertEqual(ranked, sorted(ranked))
            # The best services are all in: nothing left out beats an answer.
            left = [v for s, v in valueOf.items() if s not in chosen]
            if left:
                self.assertLessEqual(max(ranked), min(left))

    @deterministic
    @given(values=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=8))
    def test_everyTiedBestServiceLeadsSomeSet(self, values):
        candidates = [candidate(f"s{i}", connections=v) for i, v in enumerate(values)]
        best = {c.service for c, v in zip(candidates, values) if v == min(values)}
        sets = groupSets(leastMetricGroups(candidates, "connections"), 1)
        self.assertEqual(set(leaders(sets)), best)
        self.assertEqual(set(leaders(sets).values()), {1})


CONNECTIONS = CustomLoadMetric("connections", 1.0, 1000.0, 900.0)
RESPONSE_TIME = CustomLoadMetric("response_time", 2.0, 500.0, None)


class CustomLoadTests(SynchronousTestCase):
    def test_loadByHand(self):
        """
        (1*conns/1000 + 2*rt/500) / 3:
        a 500, 100 -> (0.5 + 0.4) / 3 = 0.3;
        b 200, 250 -> (0.2 + 1.0) / 3 = 0.4;
        c 800,  50 -> (0.8 + 0.2) / 3 = 1/3.
        """
        spec = (CONNECTIONS, RESPONSE_TIME)
        a = candidate("a", connections=500, response_time=100)
        b = candidate("b", connections=200, response_time=250)
        c = candidate("c", connections=800, response_time=50)
        self.assertAlmostEqual(customLoad(a, spec), 0.3)
        self.assertAlmostEqual(customLoad(b, spec), 0.4)
        self.assertAlmostEqual(customLoad(c, spec), 1 / 3)
        self.assertEqual(names(customLoadGroups([a, b, c], spec)), [["a"], ["c"], ["b"]])

    def test_equalWeights(self):
        """Weights of 1 (the default): the mean of the value/ceiling ratios."""
        spec = (CustomLoadMetric("connections", 1.0, 100.0, None), CustomLoadMetric("cpu", 1.0, 50.0, None))
        self.assertAlmostEqual(customLoad(candidate("a", connections=30, cpu=40), spec), (0.3 + 0.8) / 2)

    def test_weightScaleDoesNotMatter(self):
        spec1 = (CustomLoadMetric("x", 1.0, 10.0, None), CustomLoadMetric("y", 3.0, 10.0, None))
        spec2 = (CustomLoadMetric("x", 2.0, 10.0, None), CustomLoadMetric("y", 6.0, 10.0, None))
        c = candidate("a", x=4, y=8)
        self.assertAlmostEqual(customLoad(c, spec1), customLoad(c, spec2))
        self.assertAlmostEqual(customLoad(c, spec1), (0.4 + 3 * 0.8) / 4)

    def test_missingMetricIsNoLoadAndRanksLast(self):
        spec = (CONNECTIONS, RESPONSE_TIME)
        missing = candidate("m", connections=1)
        self.assertIsNone(customLoad(missing, spec))
        present = candidate("p", connections=999, response_time=499)
        self.assertEqual(names(customLoadGroups([missing, present], spec)), [["p"], ["m"]])

    def test_equalLoadsTie(self):
        """Loads equal up to float noise share a group (and so rotate)."""
        spec = (CustomLoadMetric("x", 1.0, 3.0, None), CustomLoadMetric("y", 1.0, 7.0, None))
        a = candidate("a", x=1, y=0)  # 1/3 / 2
        b = candidate("b", x=0, y=7 / 3)  # (7/3)/7 / 2
        self.assertEqual(names(customLoadGroups([a, b], spec)), [["a", "b"]])


class MixedSourceTests(SynchronousTestCase):
    """
    CUSTOMLOAD over MEP and SNMP sites at once: each service is weighed by
    the metrics its site's source reports, with that source's ceilings
    where the vserver names none.
    """

    spec = (
        CustomLoadMetric("connections", 1.0, 1000.0, None),
        CustomLoadMetric("memory", 1.0, None, 90.0),
        CustomLoadMetric("response_time", 2.0, 500.0, 400.0),
    )

    def mep(self, name, **metrics):
        return candidate(name, **metrics)._replace(provides=frozenset(
            ("connections", "response_time", "bandwidth", "packets", "load")), ceilings={"load": 100.0})

    def snmp(self, name, **metrics):
        return candidate(name, **metrics)._replace(provides=frozenset(("connections", "memory", "cpu")),
                       ceilings={"memory": 100.0, "connections": 1000.0})

    def test_eachByWhatItsSourceReports(self):
        # MEP: (300/1000 + 2 * 250/500) / 3; SNMP: (100/1000 + 40/100) / 2.
        self.assertAlmostEqual(customLoad(self.mep("m", connections=300, response_time=250), self.spec), 1.3 / 3)
        self.assertAlmostEqual(customLoad(self.snmp("s", connections=100, memory=40), self.spec), 0.25)
        groups = customLoadGroups([self.mep("m", connections=300, response_time=250),
                                   self.snmp("s", connections=100, memory=40)], self.spec)
        self.assertEqual(names(groups), [["s"], ["m"]])

    def test_reportedButMissingIsStillMissing(self):
        """An SNMP host that has not answered its memory OID yet has no load (the vserver falls back)."""
        self.assertIsNone(customLoad(self.snmp("s", connections=100), self.spec))
        self.assertEqual(missingMetric([self.snmp("s", connections=100)], ("memory",), reportedOnly=True), ("s", "memory"))
        self.assertIsNone(missingMetric([self.mep("m", connections=1, response_time=1)], ("memory",), reportedOnly=True))

    def test_noApplicableMetricIsNoLoad(self):
        only = (CustomLoadMetric("memory", 1.0, 100.0, None),)
        self.assertIsNone(customLoad(self.mep("m", connections=1), only))

    def test_thresholdsOnlyWhereReported(self):
        """A MEP site is never excluded for SNMP's memory, and "all" counts only its own thresholds."""
        mep = self.mep("m", connections=1, response_time=450)
        self.assertEqual(overThresholds(mep, self.spec, "all"), ["response_time 450 > 400"])
        snmp = self.snmp("s", connections=1, memory=95)
        self.assertEqual(overThresholds(snmp, self.spec, "all"), ["memory 95 > 90"])


class ThresholdTests(SynchronousTestCase):
    spec = (
        CustomLoadMetric("connections", 1.0, 1000.0, 900.0),
        CustomLoadMetric("response_time", 1.0, 500.0, 400.0),
        CustomLoadMetric("cpu", 1.0, 100.0, None),
    )

    def test_underEveryThreshold(self):
        c = candidate("a", connections=900, response_time=400, cpu=100)
        self.assertEqual(overThresholds(c, self.spec, "any"), [])
        self.assertEqual(overThresholds(c, self.spec, "all"), [])

    def test_overOneExcludesUnderAny(self):
        c = candidate("a", connections=950, response_time=10, cpu=1)
        self.assertEqual(overThresholds(c, self.spec, "any"), ["connections 950 > 900"])

    def test_overOneKeepsUnderAll(self):
        c = candidate("a", connections=950, response_time=10, cpu=1)
        self.assertEqual(overThresholds(c, self.spec, "all"), [])

    def test_overAllExcludesUnderBoth(self):
        c = candidate("a", connections=950, response_time=401, cpu=1)
        expected = ["connections 950 > 900", "response_time 401 > 400"]
        self.assertEqual(overThresholds(c, self.spec, "any"), expected)
        self.assertEqual(overThresholds(c, self.spec, "all"), expected)

    def test_metricWithoutThresholdNeverExcludes(self):
        c = candidate("a", connections=1, response_time=1, cpu=10_000)
        self.assertEqual(overThresholds(c, self.spec, "any"), [])


class ProximityTests(SynchronousTestCase):
    def test_greatCircleDistance(self):
        """New York - London is about 5,570 km; Boston - San Francisco about 4,340 km."""
        self.assertLess(abs(greatCircleKm(*NEW_YORK, *LONDON) - 5570), 15)
        self.assertLess(abs(greatCircleKm(*BOSTON, *SAN_FRANCISCO) - 4340), 15)
        self.assertEqual(greatCircleKm(*PARIS, *PARIS), 0.0)

    def sites(self):
        return [
            candidate("london", location=LONDON),
            candidate("nyc", location=NEW_YORK),
            candidate("sf", location=SAN_FRANCISCO),
        ]

    def test_nearestFirstFromBoston(self):
        """Boston: New York ~300 km, San Francisco ~4,340 km, London ~5,270 km."""
        self.assertEqual(names(proximityGroups(self.sites(), BOSTON)), [["nyc"], ["sf"], ["london"]])

    def test_nearestFirstFromParis(self):
        self.assertEqual(names(proximityGroups(self.sites(), PARIS)), [["london"], ["nyc"], ["sf"]])

    def test_servicesOfOneSiteTie(self):
        candidates = self.sites() + [candidate("nyc-2", location=NEW_YORK)]
        groups = proximityGroups(candidates, BOSTON)
        self.assertEqual(names(groups)[0], ["nyc", "nyc-2"])
        self.assertEqual(groupSets(groups, 1), (("nyc",), ("nyc-2",)))

    def test_unknownLocationRanksLast(self):
        """A site with no known location is farther than any other, not an error."""
        candidates = [candidate("nowhere"), candidate("nyc", location=NEW_YORK)]
        self.assertEqual(names(proximityGroups(candidates, BOSTON)), [["nyc"], ["nowhere"]])


class RTTTests(SynchronousTestCase):
    rtts = {"a": 30.0, "b": 10.0, "c": 12.0, "d": None}

    def groups(self, tolerance, rtts=None):
        rtts = self.rtts if rtts is None else rtts
        return names(rttGroups([candidate(n) for n in rtts], lambda c: rtts[c.service], tolerance))

    def test_lowestWins(self):
        self.assertEqual(self.groups(0), [["b"], ["c"], ["a"], ["d"]])

    def test_toleranceTiesWithTheBest(self):
        self.assertEqual(self.groups(3), [["b", "c"], ["a"], ["d"]])

    def test_toleranceBoundaryIncluded(self):
        self.assertEqual(self.groups(2), [["b", "c"], ["a"], ["d"]])

    def test_wideToleranceTiesEveryMeasured(self):
        self.assertEqual(self.groups(20), [["a", "b", "c"], ["d"]])

    def test_unmeasuredLast(self):
        self.assertEqual(self.groups(0, {"x": None, "y": 50.0})[-1], ["x"])

    def test_nothingMeasuredIsOneTie(self):
        self.assertEqual(self.groups(0, {"x": None, "y": None}), [["x", "y"]])


def clientKeys(count, seed=1):
    rng = random.Random(seed)
    return [keyHash((4, rng.getrandbits(32))) for _ in range(count)]


class HashRingTests(SynchronousTestCase):
    services = ("east-a", "east-b", "west-a", "west-b", "eu-a")

    def test_deterministic(self):
        """Two cores building the ring of the same services agree on every client."""
        up = dict.fromkeys(self.services)
        one, two = HashRing(self.services), HashRing(list(self.services))
        for value in clientKeys(2000):
            self.assertEqual(one.walk(value, up, 2), two.walk(value, up, 2))

    def test_bindingOrderDoesNotMatter(self):
        up = dict.fromkeys(self.services)
        one, two = HashRing(self.services), HashRing(tuple(reversed(self.services)))
        for value in clientKeys(2000):
            self.assertEqual(one.walk(value, up, 1), two.walk(value, up, 1))

    def test_onlyClientsOfTheDownedServiceMove(self):
        ring = HashRing(self.services)
        up = dict.fromkeys(self.services)
        withoutB = dict.fromkeys(s for s in self.services if s != "east-b")
        moved = 0
        for value in clientKeys(5000):
            (before,) = ring.walk(value, up, 1)
            (after,) = ring.walk(value, withoutB, 1)
            if before == "east-b":
                self.assertNotEqual(after, "east-b")
                moved += 1
            else:
                self.assertEqual(after, before)
        self.assertGreater(moved, 0)

    def test_clientsReturnWhenTheServiceComesBack(self):
        ring = HashRing(self.services)
        up = dict.fromkeys(self.services)
        withoutB = dict.fromkeys(s for s in self.services if s != "east-b")
        for value in clientKeys(500):
            first = ring.walk(value, up, 1)
            ring.walk(value, withoutB, 1)
            self.assertEqual(ring.walk(value, up, 1), first)

    def test_spreadRoughlyEven(self):
        """20,000 clients over five services: each gets within half of a fifth."""
        ring = HashRing(self.services)
        up = dict.fromkeys(self.services)
        counts = Counter(ring.walk(value, up, 1)[0] for value in clientKeys(20000))
        self.assertEqual(set(counts), set(self.services))
        for service, count in counts.items():
            self.assertTrue(2000 <= count <= 6000, (service, counts))

    def test_walkGivesDistinctUpServices(self):
        ring = HashRing(self.services)
        up = dict.fromkeys(("east-a", "west-a", "eu-a"))
        for value in clientKeys(300):
            chosen = ring.walk(value, up, 5)
            self.assertEqual(sorted(chosen), sorted(up))
            self.assertEqual(ring.walk(value, up, 2), chosen[:2])

    def test_nothingUp(self):
        self.assertEqual(HashRing(self.services).walk(12345, {}, 1), ())

    def test_emptyRing(self):
        self.assertEqual(HashRing(()).walk(12345, {"a": None}, 1), ())

    @deterministic
    @given(
        down=st.sets(st.sampled_from(services), max_size=4),
        values=st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=20),
    )
    def test_stableUnderAnyDownSet(self, down, values):
        """A client keeps its service while that service is up, whatever else goes down."""
        ring = HashRing(self.services)
        up = dict.fromkeys(self.services)
        remaining = dict.fromkeys(s for s in self.services if s not in down)
        for value in values:
            (before,) = ring.walk(value, up, 1)
            (after,) = ring.walk(value, remaining, 1)
            if before not in down:
                self.assertEqual(after, before)
            else:
                self.assertIn(after, remaining)
