"""
Tests for L{gslb_twisted.lb.choosers}: the per-query choice built from a
plan with L{buildChooser}, driven with a dict-backed answer book and a fake
clock.
"""

from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.lb.choosers import ChoiceContext, DynamicProximity, Persistent, Rotating, SourceIPHash, StaticProximity, buildChooser
from gslb_twisted.lb.clients import parseNetwork
from gslb_twisted.lb.locations import LocationDB
from gslb_twisted.lb.persistence import PersistenceTable

from tests.test_lb_plans import down, emptyTable, plan, reportAll, topology, up, vserver

# Client networks and where they are: Boston (nearest: east, New York),
# Paris (nearest: europe, London), San Jose (nearest: west, San Francisco).
BOSTON_CLIENT = "10.1.0.7"
PARIS_CLIENT = "10.2.0.7"
SAN_JOSE_CLIENT = "10.3.0.7"
UNKNOWN_CLIENT = "10.9.9.9"
LOCATIONS = LocationDB.fromRows(
    [
        ("10.1.0.0/16", 42.3601, -71.0589, "boston"),
        ("10.2.0.0/16", 48.8566, 2.3522, "paris"),
        ("10.3.0.0/16", 37.3382, -121.8863, "san jose"),
        ("2001:db8:1::/48", 48.8566, 2.3522, "paris v6"),
    ]
)


class Book:
    """An answer book: each distinct services tuple gets the next index."""

    def __init__(self):
        self.sets: list = []
        self._index: dict = {}

    def indexOf(self, services: tuple) -> int:
        services = tuple(services)
        if services not in self._index:
            self._index[services] = len(self.sets)
            self.sets.append(services)
        return self._index[services]


class Recorder:
    """The core's side of a L{ChoiceContext}: what the choosers asked for."""

    def __init__(self):
        self.persisted = 0
        self.probes: list = []

    def onPersisted(self):
        self.persisted += 1

    def onProbe(self, network):
        self.probes.append(network)


def context(clock=None, persistence=None, probes=None, locations=LOCATIONS, recorder=None):
    clock = clock or Clock()
    recorder = recorder or Recorder()
    probes = probes or {}
    return ChoiceContext(
        locations=locations,
        persistence=persistence,
        clock=clock.seconds,
        persisted=recorder.onPersisted,
        requestProbe=recorder.onProbe,
        probes=lambda site: probes.setdefault(site, {}),
    )


class Chooser:
    """A chooser built from a plan, answering with service names."""

    def __init__(self, plan, ctx, allowed=None):
        self.plan = plan
        self.book = Book()
        self.allowed = {c.service for c in plan.candidates} if allowed is None else allowed
        self.chooser = buildChooser(plan, ctx, self.book.indexOf, self.allowed)

    def choose(self, address, rdtype=None):
        return self.book.sets[self.chooser.choose(rdtype or self.plan.rdtype, address)]

    def many(self, address, count):
        return [self.choose(address) for _ in range(count)]

    def peek(self, address):
        return self.chooser.peek(address)


def share(source: PersistenceTable, target: PersistenceTable, now: float, v4Prefix=24, v6Prefix=128) -> int:
    """Carry C{source}'s pending entries to C{target}, as cores do over AMP."""
    changed = 0
    for wire in source.takePending(now):
        key = parseNetwork(wire["network"], v4Prefix, v6Prefix)
        changed += target.merge(wire["vserver"], key, wire, now)
    return changed


class RotatingTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(vserver(services=(("east-a", 2), ("east-b", 1), ("west-a", 1)), lb_method="ROUNDROBIN"))
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": up(), "east-b": up(), "west-a": up()})
        self.chooser = Chooser(plan(self.t, self.table), context())

    def test_built(self):
        self.assertIsInstance(self.chooser.chooser, Rotating)

    def test_rotatesByWeight(self):
        picks = [chosen for (chosen,) in self.chooser.many("192.0.2.99", 40)]
        self.assertEqual(Counter(picks), {"east-a": 20, "east-b": 10, "west-a": 10})
        # Never the same service three times running.
        self.assertFalse(any(picks[i] == picks[i + 1] == picks[i + 2] for i in range(len(picks) - 2)))

    def test_sameClientRotates(self):
        self.assertEqual(len(set(self.chooser.many("192.0.2.99", 4))), 3)

    def test_peekIsTheNextChoice(self):
        for _ in range(5):
            peeked, _ = self.chooser.peek("192.0.2.99")
            self.assertEqual(self.chooser.peek("192.0.2.99")[0], peeked)
            self.assertEqual(self.chooser.choose("192.0.2.99"), peeked)

    def test_noChooserWithoutAnswers(self):
        t = topology(vserver(services=("east-a",), down_response="servfail"))
        table = emptyTable(t)
        self.assertIsNone(buildChooser(plan(t, table), context(), Book().indexOf, set()))


class NoDataTests(SynchronousTestCase):
    """A vserver with no service of the asked family answers NODATA: no chooser."""

    def test_clientMethodsWithoutServicesOfTheFamily(self):
        for method in ("SOURCEIPHASH", "STATICPROXIMITY", "RTT"):
            t = topology(vserver(services=("east-a", "west-a"), lb_method=method))
            table = emptyTable(t)
            reportAll(table, {"east-a": up(), "west-a": up()})
            result = plan(t, table, rdtype=28)
            self.assertEqual((result.everyone, result.sets, result.response), ((), (), None), method)
            self.assertIsNone(buildChooser(result, context(), Book().indexOf, {"east-a", "west-a"}), method)

    def test_rotatingWithoutServicesOfTheFamily(self):
        t = topology(vserver(services=("east-a", "west-a"), lb_method="ROUNDROBIN", persistence="SOURCEIP"))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(), "west-a": up()})
        result = plan(t, table, rdtype=28)
        self.assertIsNone(buildChooser(result, context(persistence=PersistenceTable("gslb1/0")), Book().indexOf, set()))


class SourceIPHashTests(SynchronousTestCase):
    services = ("east-a", "east-b", "west-a", "eu-a")

    def setUp(self):
        self.t = topology(
            vserver("hash", services=self.services + ("east-6", "west-6", "eu-6"), lb_method="SOURCEIPHASH",
                    netmask="255.255.255.0", v6_netmask_len=48),
            vserver("hash32", services=self.services, lb_method="SOURCEIPHASH"),
            vserver("hash2", services=self.services, lb_method="SOURCEIPHASH", answers=2),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {name: up() for name in self.services + ("east-6", "west-6", "eu-6")})

    def chooser(self, name="hash", rdtype=1):
        return Chooser(plan(self.t, self.table, name, rdtype=rdtype), context())

    def clients(self, count=200):
        return [f"10.{i // 250}.{i % 250}.{(i * 37) % 250 + 1}" for i in range(count)]

    def test_built(self):
        self.assertIsInstance(self.chooser().chooser, SourceIPHash)

    def test_sameClientSameAnswerAcrossCalls(self):
        chooser = self.chooser()
        for client in self.clients(50):
            self.assertEqual(len(set(chooser.many(client, 5))), 1, client)

    def test_twoCoresAgree(self):
        one, two = self.chooser(), self.chooser()
        for client in self.clients():
            self.assertEqual(one.choose(client), two.choose(client), client)

    def test_clientsSpreadOverServices(self):
        chooser = self.chooser()
        self.assertEqual({chooser.choose(c)[0] for c in self.clients()}, set(self.services))

    def test_netmaskGroupsA24(self):
        chooser = self.chooser()
        for network in range(30):
            answers = {chooser.choose(f"10.20.{network}.{host}") for host in (1, 77, 254)}
            self.assertEqual(len(answers), 1, network)

    def test_defaultNetmaskSplitsA24(self):
        """With /32 keys the hosts of one /24 land on different services."""
        chooser = self.chooser("hash32")
        self.assertGreater(len({chooser.choose(f"10.20.0.{host}") for host in range(1, 255)}), 1)

    def test_v6PrefixGroupsA48(self):
        chooser = self.chooser(rdtype=28)
        for network in range(30):
            answers = {chooser.choose(f"2001:db8:{network:x}:{subnet:x}::{host:x}")
                       for subnet, host in ((0, 1), (0xFFFF, 2), (0x1234, 0xABCD))}
            self.assertEqual(len(answers), 1, network)
            self.assertIn(answers.pop(), {("east-6",), ("west-6",), ("eu-6",)})
        self.assertEqual({chooser.choose(f"2001:db8:{n:x}::1")[0] for n in range(60)}, {"east-6", "west-6", "eu-6"})

    def test_onlyClientsOfADownServiceMove(self):
        before = self.chooser()
        reportAll(self.table, {"east-a": up(), "east-b": down(), "west-a": up(), "eu-a": up()})
        after = self.chooser()
        moved = 0
        for client in self.clients():
            (first,), (second,) = before.choose(client), after.choose(client)
            if first == "east-b":
                self.assertNotEqual(second, "east-b")
                moved += 1
            else:
                self.assertEqual(second, first, client)
        self.assertGreater(moved, 0)

    def test_answersNDistinct(self):
        chooser = self.chooser("hash2")
        for client in self.clients(50):
            chosen = chooser.choose(client)
            self.assertEqual(len(set(chosen)), 2)
            self.assertEqual(chooser.choose(client), chosen)

    def test_notAnAddressFallsBack(self):
        chooser = self.chooser()
        seen = {chooser.choose("not-an-address")[0] for _ in range(8)}
        self.assertEqual(seen, set(self.services))

    def test_peekMatchesChoose(self):
        chooser = self.chooser()
        for client in self.clients(20):
            services, details = chooser.peek(client)
            self.assertEqual(chooser.choose(client), services)
            self.assertEqual(details["hash_network"], client.rsplit(".", 1)[0] + ".0/24")


class StaticProximityTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "west-a", "eu-a"), lb_method="STATICPROXIMITY"),
            vserver("ties", services=("east-a", "east-b", "eu-a"), lb_method="STATICPROXIMITY"),
            vserver("two", services=("east-a", "west-a", "eu-a"), lb_method="STATICPROXIMITY", answers=2),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": up(), "east-b": up(), "west-a": up(), "eu-a": up()})

    def chooser(self, name="www", locations=LOCATIONS):
        return Chooser(plan(self.t, self.table, name), context(locations=locations))

    def test_built(self):
        self.assertIsInstance(self.chooser().chooser, StaticProximity)

    def test_nearestSite(self):
        chooser = self.chooser()
        self.assertEqual(chooser.many(BOSTON_CLIENT, 3), [("east-a",)] * 3)
        self.assertEqual(chooser.many(PARIS_CLIENT, 3), [("eu-a",)] * 3)
        self.assertEqual(chooser.many(SAN_JOSE_CLIENT, 3), [("west-a",)] * 3)

    def test_secondAnswerIsTheNextNearest(self):
        """From Boston: New York, then San Francisco (4,300 km) before London (5,300 km)."""
        chooser = self.chooser("two")
        self.assertEqual(chooser.choose(BOSTON_CLIENT), ("east-a", "west-a"))
        self.assertEqual(chooser.choose(PARIS_CLIENT), ("eu-a", "east-a"))

    def test_nearestSiteDownGivesTheNext(self):
        reportAll(self.table, {"east-a": down(), "west-a": up(), "eu-a": up()})
        self.assertEqual(self.chooser().choose(BOSTON_CLIENT), ("west-a",))

    def test_unknownClientUsesTheBackupMethod(self):
        chooser = self.chooser()
        self.assertEqual(set(chooser.many(UNKNOWN_CLIENT, 3)), {("east-a",), ("west-a",), ("eu-a",)})

    def test_noLocationDatabaseUsesTheBackupMethod(self):
        chooser = self.chooser(locations=None)
        self.assertEqual(set(chooser.many(BOSTON_CLIENT, 3)), {("east-a",), ("west-a",), ("eu-a",)})

    def test_servicesOfTheNearestSiteRotate(self):
        chooser = self.chooser("ties")
        self.assertEqual(chooser.many(BOSTON_CLIENT, 4), [("east-a",), ("east-b",), ("east-a",), ("east-b",)])
        self.assertEqual(chooser.many(PARIS_CLIENT, 2), [("eu-a",), ("eu-a",)])

    def test_v6Client(self):
        self.assertEqual(self.chooser().choose("2001:db8:1:2::3"), ("eu-a",))

    def test_peekDoesNotRotate(self):
        chooser = self.chooser("ties")
        first, details = chooser.peek(BOSTON_CLIENT)
        self.assertEqual(chooser.peek(BOSTON_CLIENT)[0], first)
        self.assertEqual(details["client_location"]["region"], "boston")
        self.assertEqual(chooser.choose(BOSTON_CLIENT), first)
        self.assertNotEqual(chooser.peek(BOSTON_CLIENT)[0], first)

    def test_peekUnknownClient(self):
        services, details = self.chooser().peek(UNKNOWN_CLIENT)
        self.assertTrue(details["fallback"])
        self.assertEqual(len(services), 1)

    def test_siteWithoutLocationDoesNotBreakTheOthers(self):
        """
        A site located neither by config nor by the database is the
        farthest: clients still get their nearest located site.
        """
        t = topology(vserver(services=("nowhere-a", "east-a"), lb_method="STATICPROXIMITY"))
        table = emptyTable(t)
        reportAll(table, {"east-a": up(), "nowhere-a": up()})
        result = plan(t, table, locations=LOCATIONS)
        self.assertIsNone(result.candidates[0].location)
        chooser = Chooser(result, context())
        self.assertEqual(chooser.many(BOSTON_CLIENT, 3), [("east-a",)] * 3)


class DynamicProximityTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserver(services=("east-a", "west-a", "eu-a"), lb_method="RTT"),
            vserver("tolerant", services=("east-a", "west-a", "eu-a"), lb_method="RTT", tolerance=20),
            vserver("chained", services=("east-a", "west-a", "eu-a"), lb_method="RTT",
                    backup_lb_method="STATICPROXIMITY"),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": up(), "west-a": up(), "eu-a": up()})
        self.recorder = Recorder()
        self.probes = {
            "east": {"10.1.0.0/24": 30.0, "10.3.0.0/24": 80.0},
            "west": {"10.1.0.0/24": 45.0, "10.3.0.0/24": 5.0},
            "europe": {"10.1.0.0/24": 90.0},
        }

    def chooser(self, name="www"):
        ctx = context(probes=self.probes, recorder=self.recorder)
        return Chooser(plan(self.t, self.table, name), ctx)

    def test_built(self):
        self.assertIsInstance(self.chooser().chooser, DynamicProximity)

    def test_lowestRTTWins(self):
        chooser = self.chooser()
        self.assertEqual(chooser.many("10.1.0.200", 3), [("east-a",)] * 3)
        self.assertEqual(chooser.many("10.3.0.9", 3), [("west-a",)] * 3)
        self.assertEqual(self.recorder.probes, [])

    def test_toleranceTies(self):
        """45 ms is within 20 ms of 30 ms: east and west take turns; 90 ms does not."""
        chooser = self.chooser("tolerant")
        self.assertEqual(set(chooser.many("10.1.0.200", 4)), {("east-a",), ("west-a",)})

    def test_unmeasuredNetworkAsksOnceAndFallsBack(self):
        chooser = self.chooser()
        picks = chooser.many("10.2.0.5", 6) + chooser.many("10.2.0.99", 3)
        self.assertEqual(self.recorder.probes, ["10.2.0.0/24"])
        self.assertEqual(set(picks), {("east-a",), ("west-a",), ("eu-a",)})

    def test_unmeasuredNetworkFallsBackToStaticProximity(self):
        """RTT backed by STATICPROXIMITY: an unmeasured client gets its nearest site."""
        chooser = self.chooser("chained")
        self.assertEqual(chooser.many(PARIS_CLIENT, 3), [("eu-a",)] * 3)
        self.assertEqual(self.recorder.probes, ["10.2.0.0/24"])
        self.assertEqual(chooser.many("10.1.0.9", 2), [("east-a",)] * 2)

    def test_peekSendsNoProbe(self):
        services, details = self.chooser().peek("10.2.0.5")
        self.assertTrue(details["fallback"])
        self.assertEqual(self.recorder.probes, [])

    def test_peekMeasured(self):
        services, details = self.chooser().peek("10.1.0.1")
        self.assertEqual(services, ("east-a",))
        self.assertEqual(details["rtt_ms"], {"east-a": 30.0, "west-a": 45.0, "eu-a": 90.0})


TIMEOUT = 60
NOW_CLOCK = 5000.0


class PersistentTests(SynchronousTestCase):
    services = ("east-a", "east-b", "west-a")

    def setUp(self):
        self.t = topology(
            vserver(services=self.services, lb_method="ROUNDROBIN", persistence="SOURCEIP",
                    persist_mask="255.255.255.0", persistence_timeout=TIMEOUT),
            vserver("two", services=self.services, lb_method="ROUNDROBIN", persistence="SOURCEIP", answers=2,
                    persist_mask="255.255.255.0", persistence_timeout=TIMEOUT),
            vserver("rtt", services=self.services, lb_method="RTT", persistence="SOURCEIP",
                    persist_mask="255.255.255.0", persistence_timeout=TIMEOUT),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {name: up() for name in self.services})
        self.clock = Clock()
        self.clock.advance(NOW_CLOCK)
        self.recorder = Recorder()
        self.entries = PersistenceTable("gslb1/0")

    def chooser(self, name="www", entries=None, allowed=None, clock=None):
        ctx = context(clock=clock or self.clock, persistence=entries or self.entries, recorder=self.recorder)
        return Chooser(plan(self.t, self.table, name), ctx, allowed)

    def test_built(self):
        self.assertIsInstance(self.chooser().chooser, Persistent)

    def test_firstQueryCreatesAnEntry(self):
        chooser = self.chooser()
        (service,) = chooser.choose("10.1.0.7")
        self.assertEqual(self.recorder.persisted, 1)
        self.assertEqual(self.entries.count(), 1)
        (entry,) = self.entries.entries()
        self.assertEqual((entry.vserver, entry.network, entry.service, entry.version, entry.origin),
                         ("www", "10.1.0.0/24", service, 1, "gslb1/0"))
        self.assertEqual(entry.expires, NOW_CLOCK + TIMEOUT)

    def test_sameNetworkSameServiceWhileTheMethodRotates(self):
        chooser = self.chooser()
        first = chooser.choose("10.1.0.7")
        for host in range(1, 30):
            self.assertEqual(chooser.choose(f"10.1.0.{host}"), first)
        self.assertEqual(self.recorder.persisted, 1)
        # The method alone would have rotated.
        inner = chooser.chooser.inner
        self.assertEqual(len({inner.choose(1, "10.1.0.7") for _ in range(3)}), 3)

    def test_entryExpires(self):
        chooser = self.chooser()
        chooser.choose("10.1.0.7")
        # An idle timeout, plus the grace every core gives uses on other cores.
        self.clock.advance(TIMEOUT * 1.25 + 1)
        chooser.choose("10.1.0.7")
        self.assertEqual(self.entries.created, 2)
        self.assertEqual(self.recorder.persisted, 2)
        (entry,) = self.entries.entries()
        # Re-created after it lapsed here: the next version, so that it
        # outranks a copy another core may still hold.
        self.assertEqual(entry.version, 2)
        self.assertEqual(entry.expires, self.clock.seconds() + TIMEOUT)

    def test_entryExpiresExactlyAtTheTimeoutAndGrace(self):
        chooser = self.chooser()
        chooser.choose("10.1.0.7")
        self.clock.advance(TIMEOUT * 1.25)
        chooser.choose("10.1.0.7")
        self.assertEqual(self.entries.created, 2)

    def test_useExtendsTheEntry(self):
        chooser = self.chooser()
        first = chooser.choose("10.1.0.7")
        for _ in range(5):
            self.clock.advance(TIMEOUT - 1)
            self.assertEqual(chooser.choose("10.1.0.8"), first)
        self.assertEqual(self.entries.created, 1)
        (entry,) = self.entries.entries()
        self.assertEqual(entry.expires, self.clock.seconds() + TIMEOUT)

    def test_downServiceReplaced(self):
        chooser = self.chooser()
        (service,) = chooser.choose("10.1.0.7")
        allowed = chooser.allowed
        allowed.discard(service)
        reportAll(self.table, {name: (down() if name == service else up()) for name in self.services})
        after = self.chooser(allowed=allowed)
        (replacement,) = after.choose("10.1.0.7")
        self.assertNotEqual(replacement, service)
        entry = self.entries.lookup("www", parseNetwork("10.1.0.0/24", 24, 128), self.clock.seconds())
        self.assertEqual((entry.service, entry.version), (replacement, 2))
        self.assertEqual((self.entries.replaced, self.recorder.persisted), (1, 2))
        # And the replacement sticks.
        self.assertEqual(after.many("10.1.0.99", 3), [(replacement,)] * 3)

    def test_persistedServiceFirstOfN(self):
        chooser = self.chooser("two")
        first = chooser.choose("10.1.0.7")
        self.assertEqual(len(set(first)), 2)
        for host in (8, 9, 10):
            self.assertEqual(chooser.choose(f"10.1.0.{host}")[0], first[0])

    def test_aaaaEntriesAreSeparate(self):
        chooser = self.chooser()
        chooser.choose("10.1.0.7")
        self.assertEqual([e.vserver for e in self.entries.entries()], ["www"])
        self.assertEqual(self.entries.count("www/AAAA"), 0)

    def test_notAnAddressIsNotPersisted(self):
        chooser = self.chooser()
        chooser.choose("bogus")
        self.assertEqual((self.entries.count(), self.recorder.persisted), (0, 0))

    def test_twoCoresShareEntries(self):
        """
        Core A chose while only west-a was up; core B, with everything up,
        honours A's entry once it has merged it, though its own method
        would pick something else for that client.
        """
        tableB = PersistenceTable("gslb1/1")
        reportAll(self.table, {"east-a": down(), "east-b": down(), "west-a": up()})
        coreA = self.chooser(allowed={"west-a", "east-a", "east-b"})
        reportAll(self.table, {name: up() for name in self.services})
        coreB = self.chooser(entries=tableB, allowed={"west-a", "east-a", "east-b"})
        client = next(
            f"10.5.{n}.1" for n in range(256)
            if coreB.chooser.peek(f"10.5.{n}.1")[0] != ("west-a",)
        )
        self.assertEqual(coreA.choose(client), ("west-a",))
        self.assertEqual(share(self.entries, tableB, self.clock.seconds()), 1)
        self.assertEqual(coreB.many(client, 3), [("west-a",)] * 3)
        self.assertEqual(tableB.created, 0)

    def test_twoCoresRacingConverge(self):
        """Both cores create an entry for one client; after the exchange both answer gslb1/0's."""
        tableB = PersistenceTable("gslb1/1")
        reportAll(self.table, {"east-a": up(), "east-b": down(), "west-a": down()})
        coreA = self.chooser(allowed=set(self.services))
        reportAll(self.table, {"east-a": down(), "east-b": down(), "west-a": up()})
        coreB = self.chooser(entries=tableB, allowed=set(self.services))
        self.assertEqual(coreA.choose("10.1.0.7"), ("east-a",))
        self.assertEqual(coreB.choose("10.1.0.7"), ("west-a",))
        now = self.clock.seconds()
        pendingA, pendingB = self.entries.takePending(now), tableB.takePending(now)
        for wire in pendingB:
            self.entries.merge(wire["vserver"], parseNetwork(wire["network"], 24, 128), wire, now)
        for wire in pendingA:
            tableB.merge(wire["vserver"], parseNetwork(wire["network"], 24, 128), wire, now)
        # Once both cores see the same metrics again, both answer A's entry.
        reportAll(self.table, {"east-a": up(), "east-b": down(), "west-a": up()})
        coreA = self.chooser(allowed=set(self.services))
        coreB = self.chooser(entries=tableB, allowed=set(self.services))
        self.assertEqual(coreA.choose("10.1.0.7"), ("east-a",))
        self.assertEqual(coreB.choose("10.1.0.7"), ("east-a",))

    def test_peekChangesNothing(self):
        chooser = self.chooser()
        services, details = chooser.peek("10.1.0.7")
        self.assertEqual(details["persistence"], "miss")
        self.assertEqual(details["persistence_network"], "10.1.0.0/24")
        self.assertEqual((self.entries.count(), self.recorder.persisted, self.entries.hasPending()), (0, 0, False))
        self.assertEqual(chooser.chooser.inner.rotation.position, 0)
        self.assertEqual(chooser.choose("10.1.0.7"), services)
        pending = self.entries.takePending(self.clock.seconds())
        self.clock.advance(TIMEOUT / 2)
        entry = next(self.entries.entries())
        expires = entry.expires
        services, details = chooser.peek("10.1.0.7")
        self.assertEqual(details["persistence"], "hit")
        self.assertEqual(entry.expires, expires)
        self.assertFalse(self.entries.hasPending())
        self.assertEqual(len(pending), 1)

    def test_peekOnDownServiceSaysReplaced(self):
        chooser = self.chooser()
        (service,) = chooser.choose("10.1.0.7")
        reportAll(self.table, {name: (down() if name == service else up()) for name in self.services})
        _, details = self.chooser().peek("10.1.0.7")
        self.assertEqual(details["persistence"], "replaced")
        self.assertEqual(self.entries.created, 1)

    def test_coresAgreeWhenAnEntryLapsesOnOneCoreFirst(self):
        """
        Cores' copies of an entry expire up to timeout/4 apart (uses are
        shared at most that often).  A client's v2 entry (its first service
        went DOWN, then came back) lapses on core A while B still holds it;
        the entry A makes next must not leave A and B answering the client
        differently.
        """
        tableB = PersistenceTable("gslb1/1")
        client = "10.1.0.7"

        def cores(upSet):
            reportAll(self.table, {name: (up() if name in upSet else down()) for name in self.services})
            return self.chooser(allowed=set(upSet)), self.chooser(entries=tableB, allowed=set(upSet))

        coreA, coreB = cores(self.services)
        (first,) = coreA.choose(client)
        share(self.entries, tableB, self.clock.seconds())
        # Its service goes DOWN: A replaces the entry (v2), B takes it.
        coreA, coreB = cores([s for s in self.services if s != first])
        (second,) = coreA.choose(client)
        self.assertEqual(share(self.entries, tableB, self.clock.seconds()), 1)
        # The first service is back; the client uses B a little later (not
        # yet worth sharing), then comes to A after A's copy lapsed.
        coreA, coreB = cores(self.services)
        self.clock.advance(TIMEOUT / 4 - 1)
        self.assertEqual(coreB.choose(client), (second,))
        self.assertFalse(tableB.hasPending())
        self.clock.advance(TIMEOUT / 4 * 3 + 2)
        answerA = coreA.choose(client)
        share(self.entries, tableB, self.clock.seconds())
        share(tableB, self.entries, self.clock.seconds())
        self.assertEqual(coreB.choose(client), answerA)
        self.assertEqual(coreA.choose(client), answerA)

    def test_spilledOverVServerSendsPersistentClientsToTheBackup(self):
        """
        Over the spillover threshold the answers come from the backup
        vserver, for clients with a persistence entry on the primary too
        (NetScaler's default, soPersistence DISABLED).
        """
        t = topology(
            vserver("spill", services=("east-a", "east-b"), lb_method="ROUNDROBIN", persistence="SOURCEIP",
                    persist_mask="255.255.255.0", backup_vserver="dr",
                    extra='spillover = { method = "CONNECTION", threshold = 100 }'),
            vserver("dr", services=("west-a",)),
        )
        table = emptyTable(t)
        allowed = {"east-a", "east-b", "west-a"}
        reportAll(table, {"east-a": up(connections=10), "east-b": up(connections=10), "west-a": up(connections=0)})
        ctx = context(clock=self.clock, persistence=self.entries, recorder=self.recorder)
        before = Chooser(plan(t, table, "spill"), ctx, allowed)
        self.assertIn(before.choose("10.1.0.7"), {("east-a",), ("east-b",)})
        reportAll(table, {"east-a": up(connections=60), "east-b": up(connections=60), "west-a": up(connections=0)})
        spilled = plan(t, table, "spill")
        self.assertEqual(spilled.source, "backup_vserver")
        after = Chooser(spilled, ctx, allowed)
        self.assertEqual(after.choose("10.4.0.1"), ("west-a",))
        self.assertEqual(after.choose("10.1.0.7"), ("west-a",))

    def test_peekOverRTTSendsNoProbe(self):
        """Explaining a persistent RTT vserver for an unmeasured client asks no site to probe."""
        chooser = self.chooser("rtt")
        self.assertIsInstance(chooser.chooser.inner, DynamicProximity)
        chooser.peek("10.7.0.1")
        self.assertEqual(self.recorder.probes, [])
        self.assertEqual(self.entries.count(), 0)

