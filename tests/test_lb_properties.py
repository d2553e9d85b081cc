"""
Hypothesis properties of the decision engine, through planVServer,
buildChooser and many choose() calls:

 - never a DOWN service answered while one of the family is up;
 - ROUNDROBIN weights respected within a tolerance over many picks;
 - SOURCEIPHASH stable for a client while the up set is unchanged;
 - a persistence entry made on one core is honoured on another after merge.
"""

from functools import reduce
from math import gcd

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import LB_METHODS
from gslb_twisted.lb.decision import serviceState
from gslb_twisted.lb.persistence import PersistenceTable
from gslb_twisted.metrics import DOWN, UP

from tests.test_lb_choosers import LOCATIONS, Chooser, context, share
from tests.test_lb_plans import SITE_OF, V6, emptyTable, plan, report, topology, vserver

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=300)

V4_SERVICES = ("east-a", "east-b", "west-a", "west-b", "eu-a", "fixed-a")
ALL_SERVICES = V4_SERVICES + ("east-6", "west-6", "eu-6")
METERED_SITES = ("east", "west", "europe")
CUSTOM = (
    'custom_load = [{ metric = "connections", ceiling = 10, threshold = 4 }, '
    '{ metric = "load", weight = 2, ceiling = 10 }]'
)

CLIENTS = st.sampled_from(
    [
        "10.1.0.7", "10.1.0.200", "10.2.0.7", "10.3.0.9", "10.9.9.9", "192.0.2.77", "203.0.113.200",
        "2001:db8:1::5", "2001:db8:2::5", "::ffff:10.1.0.8",
    ]
)
NETWORKS = ("10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.9.9.0/24", "2001:db8:1::/48")
SMALL = st.integers(min_value=0, max_value=6)
METRIC_NAMES = ("connections", "response_time", "bandwidth", "packets", "load")
# Mostly every metric (so that metric methods decide), sometimes a few.
METRICS = st.one_of(
    st.fixed_dictionaries({name: SMALL for name in METRIC_NAMES}),
    st.fixed_dictionaries({name: SMALL for name in METRIC_NAMES}),
    st.fixed_dictionaries({}, optional={name: SMALL for name in METRIC_NAMES}),
)


@st.composite
def worlds(draw):
    """What the sites report: site states, service states and metrics, ages, probes."""
    sites = {site: draw(st.sampled_from([UP, UP, DOWN, None])) for site in METERED_SITES}
    ages = {site: draw(st.sampled_from([0.0, 0.0, 10.0])) for site in METERED_SITES}
    services = {}
    for name in ALL_SERVICES:
        if name == "fixed-a":
            continue
        reported = draw(st.sampled_from([UP, UP, DOWN, None]))
        if reported is not None:
            services[name] = {"state": reported, **draw(METRICS)}
    probes = {
        site: draw(st.dictionaries(st.sampled_from(NETWORKS), st.integers(min_value=1, max_value=200), max_size=3))
        for site in METERED_SITES
    }
    disabled = draw(st.frozensets(st.sampled_from(ALL_SERVICES), max_size=2))
    return sites, ages, services, probes, disabled


def record(table, world, now):
    sites, ages, services, probes, _ = world
    for site in METERED_SITES:
        if sites[site] is None:
            continue
        reported = {name: values for name, values in services.items() if SITE_OF[name] == site}
        report(table, site, reported, state=sites[site], now=now - ages[site], probes=probes[site] or None)


def upOf(t, table, bound, family, disabled):
    return {
        name for name in bound
        if (name in V6) == (family == 6) and serviceState(t.serviceByName[name], t, table, disabled)[0] == UP
    }


class NeverDownTests(SynchronousTestCase):
    @settings(derandomize=True, deadline=None, database=None, max_examples=500)
    @given(
        method=st.sampled_from(LB_METHODS),
        backupMethod=st.sampled_from(LB_METHODS),
        bound=st.lists(st.sampled_from(ALL_SERVICES), min_size=1, max_size=9, unique=True),
        backupBound=st.one_of(st.none(), st.lists(st.sampled_from(ALL_SERVICES), min_size=1, max_size=4, unique=True)),
        spill=st.sampled_from(["", "CONNECTION", "HEALTH", "BANDWIDTH", "DYNAMICCONNECTION"]),
        answers=st.integers(min_value=1, max_value=3),
        persistence=st.sampled_from(["NONE", "SOURCEIP"]),
        downResponse=st.sampled_from(["all", "empty", "servfail"]),
        tolerance=st.sampled_from([0, 30]),
        worldsSeen=st.lists(worlds(), min_size=1, max_size=3),
        clients=st.lists(CLIENTS, min_size=1, max_size=6),
        rdtype=st.sampled_from([1, 28]),
    )
    def test_noDownServiceWhileOneIsUp(
        self, method, backupMethod, bound, backupBound, spill, answers, persistence, downResponse, tolerance,
        worldsSeen, clients, rdtype,
    ):
        """
        Through world after world (the persistence table carried across,
        the allowed set updated in place as a core does), no answer names a
        service that is not UP while some service of the family is, whether
        the vserver's own services answer or its backup vserver's (spilled
        over, backup_action ACCEPT).
        """
        extra = CUSTOM
        if spill:
            extra += f'\nspillover = {{ method = "{spill}", threshold = 5 }}'
        options = {} if backupBound is None else {"backup_vserver": "dr"}
        t = topology(
            vserver(services=bound, lb_method=method, backup_lb_method=backupMethod, answers=answers,
                    persistence=persistence, down_response=downResponse, tolerance=tolerance,
                    persist_mask="255.255.255.0", netmask="255.255.255.0", extra=extra, **options),
            vserver("dr", services=backupBound or ("east-a",), lb_method="ROUNDROBIN"),
        )
        everything = set(bound) | set(backupBound or ())
        clock = Clock()
        clock.advance(1000.0)
        entries = PersistenceTable("gslb1/0")
        allowed: set = set()
        for world in worldsSeen:
            clock.advance(7.0)
            now = clock.seconds()
            table = emptyTable(t)
            record(table, world, now)
            disabled = world[4]
            upServices = upOf(t, table, everything, 6 if rdtype == 28 else 4, disabled)
            allowed.clear()
            allowed.update(upOf(t, table, everything, 4, disabled) | upOf(t, table, everything, 6, disabled))
            result = plan(t, table, rdtype=rdtype, now=now, disabled=disabled, locations=LOCATIONS)
            ctx = context(clock=clock, persistence=entries, probes=world[3], locations=LOCATIONS)
            chooser = Chooser(result, ctx, allowed)
            # No service of the family bound: NODATA, whatever the chooser
            # (see test_lb_choosers NoDataTests).
            if chooser.chooser is None or not upServices or not result.everyone:
                continue
            for client in clients * 2:
                answered = chooser.choose(client)
                self.assertTrue(answered, (client, result))
                self.assertLessEqual(set(answered), upServices, (client, result.method, result.excluded))
                self.assertEqual(len(set(answered)), len(answered))


class WeightTests(SynchronousTestCase):
    @deterministic
    @given(
        weights=st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=5),
        picks=st.integers(min_value=1, max_value=600),
    )
    def test_roundRobinWeightsRespected(self, weights, picks):
        """
        Each service's share of C{picks} answers is its weight's share, off
        by no more than its turns in one cycle (exact over whole cycles).
        """
        names = ("east-a", "east-b", "west-a", "west-b", "eu-a")[: len(weights)]
        t = topology(vserver(services=tuple(zip(names, weights)), lb_method="ROUNDROBIN"))
        table = emptyTable(t)
        for site in ("east", "west", "europe"):
            report(table, site, {n: {"state": UP} for n in names if SITE_OF[n] == site})
        chooser = Chooser(plan(t, table), context())
        counts = dict.fromkeys(names, 0)
        for _ in range(picks):
            (name,) = chooser.choose("192.0.2.1")
            counts[name] += 1
        total = sum(weights)
        common = reduce(gcd, weights)
        for name, weight in zip(names, weights):
            expected = picks * weight / total
            self.assertLessEqual(abs(counts[name] - expected), weight / common, (weights, picks, counts))
            if picks % (total // common) == 0:
                self.assertEqual(counts[name] * total, picks * weight)


HASHED = ("east-a", "east-b", "west-a", "west-b", "eu-a", "east-6", "west-6", "eu-6")


class SourceIPHashTests(SynchronousTestCase):
    @deterministic
    @given(
        upSet=st.sets(st.sampled_from(HASHED), min_size=1),
        metricsBefore=st.lists(SMALL, min_size=len(HASHED), max_size=len(HASHED)),
        metricsAfter=st.lists(SMALL, min_size=len(HASHED), max_size=len(HASHED)),
        clients=st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str), min_size=1, max_size=10),
        answers=st.integers(min_value=1, max_value=2),
    )
    def test_stableWhileUpSetUnchanged(self, upSet, metricsBefore, metricsAfter, clients, answers):
        """
        A client keeps its answer across queries, across plans whose up set
        is the same (metrics moved), and across cores.
        """
        t = topology(vserver(services=HASHED, lb_method="SOURCEIPHASH", answers=answers, netmask="255.255.255.0"))

        def chooser(values, rdtype):
            table = emptyTable(t)
            for site in METERED_SITES:
                report(table, site, {
                    name: {"state": UP if name in upSet else DOWN, "connections": value}
                    for name, value in zip(HASHED, values) if SITE_OF[name] == site
                })
            return Chooser(plan(t, table, rdtype=rdtype), context())

        for rdtype, family in ((1, 4), (28, 6)):
            if not any((name in V6) == (family == 6) for name in upSet):
                continue
            one, two = chooser(metricsBefore, rdtype), chooser(metricsAfter, rdtype)
            for client in clients:
                first = one.choose(client)
                self.assertEqual(one.choose(client), first)
                self.assertEqual(two.choose(client), first)
                self.assertLessEqual(set(first), upSet)


PERSISTED = ("east-a", "east-b", "west-a", "west-b", "eu-a", "east-6", "west-6", "eu-6")


class PersistenceAcrossCoresTests(SynchronousTestCase):
    @deterministic
    @given(
        method=st.sampled_from(["ROUNDROBIN", "LEASTCONNECTION", "SOURCEIPHASH", "STATICPROXIMITY", "STATIC"]),
        upA=st.sets(st.sampled_from(PERSISTED), min_size=1),
        upB=st.sets(st.sampled_from(PERSISTED), min_size=1),
        connections=st.lists(SMALL, min_size=len(PERSISTED), max_size=len(PERSISTED)),
        client=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str),
        answers=st.integers(min_value=1, max_value=2),
        rotations=st.integers(min_value=0, max_value=5),
    )
    def test_entryHonouredOnTheOtherCore(self, method, upA, upB, connections, client, answers, rotations):
        """
        Core A answers a client first; once B merged A's entry, B gives the
        same service (first) while it is up on B, another one if not.
        """
        t = topology(
            vserver(services=PERSISTED, lb_method=method, persistence="SOURCEIP", answers=answers,
                    persist_mask="255.255.255.0", v6_persist_mask_len=64)
        )
        rdtype = 28 if ":" in client and not client.startswith("::ffff:") else 1
        family = 6 if rdtype == 28 else 4
        for upSet in (upA, upB):
            if not any((name in V6) == (family == 6) for name in upSet):
                # Nothing of the family up: the down response, no persistence.
                return
        clock = Clock()
        clock.advance(500.0)

        def core(origin, upSet):
            table = emptyTable(t)
            for site in METERED_SITES:
                report(table, site, {
                    name: {"state": UP if name in upSet else DOWN, "connections": value}
                    for name, value in zip(PERSISTED, connections) if SITE_OF[name] == site
                }, now=clock.seconds())
            entries = PersistenceTable(origin)
            ctx = context(clock=clock, persistence=entries, locations=LOCATIONS)
            return Chooser(plan(t, table, rdtype=rdtype, now=clock.seconds(), locations=LOCATIONS), ctx, set(upSet)), entries

        a, entriesA = core("gslb1/0", upA)
        b, entriesB = core("gslb1/1", upB)
        if b.chooser is None:
            return
        # B's own method has moved on by some turns.
        for _ in range(rotations):
            b.chooser.inner.choose(rdtype, "192.0.2.250")
        (persisted, *_) = a.choose(client)
        self.assertEqual(share(entriesA, entriesB, clock.seconds(), 24, 64), 1)
        clock.advance(1.0)
        answered = b.choose(client)
        if persisted in upB:
            self.assertEqual(answered[0], persisted)
            self.assertEqual(entriesB.created, 0)
        else:
            self.assertNotEqual(answered[0], persisted)
