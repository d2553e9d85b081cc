"""
Tests for L{gslb_twisted.lb.persistence.PersistenceTable}: entries made,
used, shared between cores, merged by a deterministic rule and expired.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.lb.clients import parseNetwork
from gslb_twisted.lb.persistence import PersistenceTable

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=300)

VS = "www"
NET = "198.51.100.0/24"
KEY = parseNetwork(NET, 24, 128)
TIMEOUT = 60.0


def wire(service="east-a", version=1, origin="gslb1/1", ttl=TIMEOUT, network=NET, vserver=VS):
    return {"vserver": vserver, "network": network, "service": service, "version": version, "origin": origin, "ttl": ttl}


def state(table: PersistenceTable, now: float):
    """A table's live entries, comparable."""
    return sorted(
        (e.vserver, e.key, e.network, e.service, e.version, e.origin, e.expires)
        for e in table.entries()
        if e.expires > now
    )


class CreateTests(SynchronousTestCase):
    def setUp(self):
        self.table = PersistenceTable("gslb1/0")

    def test_create(self):
        entry = self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)
        self.assertEqual((entry.service, entry.version, entry.origin, entry.expires), ("east-a", 1, "gslb1/0", 160.0))
        self.assertIs(self.table.lookup(VS, KEY, 159.9), entry)
        self.assertEqual((self.table.created, self.table.replaced), (1, 0))

    def test_lookupAfterExpiry(self):
        """Honoured for a grace of timeout/4 past expiry (uses elsewhere not yet shared), then gone."""
        self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)
        self.assertIsNotNone(self.table.lookup(VS, KEY, 174.9))
        self.assertIsNone(self.table.lookup(VS, KEY, 175.0))

    def test_lookupOtherVServerOrNetwork(self):
        self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)
        self.assertIsNone(self.table.lookup("api", KEY, 100.0))
        self.assertIsNone(self.table.lookup(VS, parseNetwork("203.0.113.0/24", 24, 128), 100.0))

    def test_replacingIsTheNextVersion(self):
        first = self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)
        second = self.table.create(VS, KEY, NET, "west-a", 110.0, TIMEOUT, replacing=first)
        self.assertEqual((second.version, second.service), (2, "west-a"))
        self.assertIs(self.table.lookup(VS, KEY, 110.0), second)
        self.assertEqual((self.table.created, self.table.replaced), (2, 1))
        self.assertEqual(self.table.count(), 1)

    def test_touchExtends(self):
        entry = self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)
        self.table.touch(entry, 150.0, TIMEOUT)
        self.assertEqual(entry.expires, 210.0)
        self.assertIs(self.table.lookup(VS, KEY, 200.0), entry)


class PendingTests(SynchronousTestCase):
    def setUp(self):
        self.table = PersistenceTable("gslb1/0")
        self.entry = self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)

    def test_createdIsPending(self):
        self.assertTrue(self.table.hasPending())
        self.assertEqual(self.table.takePending(100.0), [wire(origin="gslb1/0")])
        self.assertFalse(self.table.hasPending())
        self.assertEqual(self.table.takePending(100.0), [])

    def test_ttlIsWhatIsLeft(self):
        (shared,) = self.table.takePending(112.5)
        self.assertEqual(shared["ttl"], 47.5)

    def test_touchSharedAtMostEveryQuarterTimeout(self):
        self.table.takePending(100.0)
        self.table.touch(self.entry, 114.9, TIMEOUT)
        self.assertFalse(self.table.hasPending())
        self.table.touch(self.entry, 115.0, TIMEOUT)
        self.assertEqual(self.table.takePending(115.0), [wire(origin="gslb1/0", ttl=TIMEOUT)])
        self.table.touch(self.entry, 129.0, TIMEOUT)
        self.assertFalse(self.table.hasPending())
        self.table.touch(self.entry, 130.0, TIMEOUT)
        self.assertTrue(self.table.hasPending())

    def test_expiredPendingNotShared(self):
        self.assertEqual(self.table.takePending(175.0), [])

    def test_lostEntryNoLongerPending(self):
        """An entry of ours that a remote one beat need not be sent."""
        self.assertTrue(self.table.merge(VS, KEY, wire(version=2), 101.0))
        self.assertEqual(self.table.takePending(101.0), [])

    def test_wonEntryStaysPending(self):
        self.assertFalse(self.table.merge(VS, KEY, wire(origin="gslb9/0"), 101.0))
        self.assertEqual(len(self.table.takePending(101.0)), 1)


class MergeTests(SynchronousTestCase):
    def setUp(self):
        self.table = PersistenceTable("gslb1/0")
        self.mine = self.table.create(VS, KEY, NET, "east-a", 100.0, TIMEOUT)

    def current(self, now=100.0):
        entry = self.table.lookup(VS, KEY, now)
        return (entry.service, entry.version, entry.origin)

    def test_intoEmptyTable(self):
        table = PersistenceTable("gslb1/0")
        self.assertTrue(table.merge(VS, KEY, wire(service="west-a", ttl=30.0), 100.0))
        entry = table.lookup(VS, KEY, 100.0)
        self.assertEqual((entry.service, entry.expires, entry.network), ("west-a", 130.0, NET))
        self.assertEqual(table.merged, 1)

    def test_higherVersionWins(self):
        self.assertTrue(self.table.merge(VS, KEY, wire(service="west-a", version=2, origin="gslb9/9"), 100.0))
        self.assertEqual(self.current(), ("west-a", 2, "gslb9/9"))

    def test_lowerVersionLoses(self):
        self.table.create(VS, KEY, NET, "east-b", 100.0, TIMEOUT, replacing=self.mine)
        self.assertFalse(self.table.merge(VS, KEY, wire(service="west-a", version=1, origin="gslb0/0"), 100.0))
        self.assertEqual(self.current(), ("east-b", 2, "gslb1/0"))
        self.assertEqual(self.table.merged, 0)

    def test_equalVersionLowerOriginWins(self):
        self.assertTrue(self.table.merge(VS, KEY, wire(service="west-a", origin="gslb0/5"), 100.0))
        self.assertEqual(self.current(), ("west-a", 1, "gslb0/5"))

    def test_equalVersionHigherOriginLoses(self):
        self.assertFalse(self.table.merge(VS, KEY, wire(service="west-a", origin="gslb1/1"), 100.0))
        self.assertEqual(self.current(), ("east-a", 1, "gslb1/0"))

    def test_sameEntryExtendsExpiry(self):
        self.assertFalse(self.table.merge(VS, KEY, wire(origin="gslb1/0", ttl=TIMEOUT), 120.0))
        self.assertEqual(self.mine.expires, 180.0)
        self.assertIs(self.table.lookup(VS, KEY, 179.0), self.mine)

    def test_sameEntryNeverShortens(self):
        self.assertFalse(self.table.merge(VS, KEY, wire(origin="gslb1/0", ttl=5.0), 101.0))
        self.assertEqual(self.mine.expires, 160.0)

    def test_expiredEntryReplacedByAnyVersion(self):
        self.table.create(VS, KEY, NET, "east-b", 100.0, TIMEOUT, replacing=self.mine)
        self.assertTrue(self.table.merge(VS, KEY, wire(service="west-a", version=1, origin="gslb9/0"), 175.0))
        self.assertEqual(self.current(175.0), ("west-a", 1, "gslb9/0"))

    def test_zeroTTLIgnored(self):
        self.assertFalse(self.table.merge(VS, KEY, wire(version=5, ttl=0), 100.0))
        self.assertEqual(self.current(), ("east-a", 1, "gslb1/0"))

    def test_otherVServersAreSeparate(self):
        self.assertTrue(self.table.merge("api", KEY, wire(vserver="api", version=1, origin="gslb9/0"), 100.0))
        self.assertEqual(self.current(), ("east-a", 1, "gslb1/0"))
        self.assertEqual((self.table.count(VS), self.table.count("api"), self.table.count()), (1, 1, 2))


class ExpireTests(SynchronousTestCase):
    def test_expireCounts(self):
        table = PersistenceTable("gslb1/0")
        for i, timeout in enumerate((10.0, 20.0, 30.0)):
            network = f"10.0.{i}.0/24"
            table.create(VS, parseNetwork(network, 24, 128), network, "east-a", 0.0, timeout)
        table.create("api", KEY, NET, "east-a", 0.0, 10.0)
        # Each lives a quarter of its timeout past its expiry (see GRACE).
        self.assertEqual(table.expire(12.4), 0)
        self.assertEqual(table.expire(12.5), 2)
        self.assertEqual(table.count(), 2)
        self.assertEqual(table.expire(25.0), 1)
        self.assertEqual(table.expired, 3)
        self.assertEqual([e.network for e in table.entries()], ["10.0.2.0/24"])

    def test_snapshotOnlyLive(self):
        table = PersistenceTable("gslb1/0")
        table.create(VS, KEY, NET, "east-a", 0.0, 10.0)
        table.create("api", KEY, NET, "west-a", 0.0, 30.0)
        self.assertEqual(table.snapshot(15.0), [wire(vserver="api", service="west-a", origin="gslb1/0", ttl=15.0)])


NETWORKS = ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/48")
ORIGINS = ("gslb1/0", "gslb1/1", "gslb2/0")


@st.composite
def wireEntries(draw):
    vserver = draw(st.sampled_from(("www", "api")))
    network = draw(st.sampled_from(NETWORKS))
    version = draw(st.integers(min_value=1, max_value=3))
    origin = draw(st.sampled_from(ORIGINS))
    ttl = draw(st.integers(min_value=1, max_value=120))
    # One (vserver, network, version, origin) always names one service, as in the system.
    service = f"svc-{version}-{origin}"
    return wire(service=service, version=version, origin=origin, ttl=float(ttl), network=network, vserver=vserver)


def apply(table: PersistenceTable, entries, now: float) -> None:
    for entry in entries:
        table.merge(entry["vserver"], parseNetwork(entry["network"], 24, 48), entry, now)


class ConvergenceTests(SynchronousTestCase):
    @deterministic
    @given(data=st.data(), entries=st.lists(wireEntries(), max_size=25))
    def test_orderDoesNotMatter(self, data, entries):
        """The same entries merged in any order give the same table."""
        shuffled = data.draw(st.permutations(entries))
        one, two = PersistenceTable("gslb3/0"), PersistenceTable("gslb3/1")
        apply(one, entries, 10.0)
        apply(two, shuffled, 10.0)
        self.assertEqual(state(one, 10.0), state(two, 10.0))

    @deterministic
    @given(entries=st.lists(wireEntries(), max_size=25))
    def test_winnerIsTheHighestVersionThenLowestOrigin(self, entries):
        table = PersistenceTable("gslb3/0")
        apply(table, entries, 10.0)
        for entry in table.entries():
            rivals = [e for e in entries if (e["vserver"], e["network"]) == (entry.vserver, entry.network)]
            best = min(rivals, key=lambda e: (-e["version"], e["origin"]))
            self.assertEqual((entry.version, entry.origin, entry.service), (best["version"], best["origin"], best["service"]))
            longest = max(e["ttl"] for e in rivals if (e["version"], e["origin"]) == (best["version"], best["origin"]))
            self.assertEqual(entry.expires, 10.0 + longest)

    @deterministic
    @given(
        mineA=st.lists(st.tuples(st.sampled_from(NETWORKS), st.sampled_from(("a", "b"))), max_size=4),
        mineB=st.lists(st.tuples(st.sampled_from(NETWORKS), st.sampled_from(("a", "b"))), max_size=4),
    )
    def test_coresExchangingConverge(self, mineA, mineB):
        """Two cores creating entries for the same networks agree after one exchange each way."""
        a, b = PersistenceTable("gslb1/0"), PersistenceTable("gslb1/1")
        for table, mine in ((a, mineA), (b, mineB)):
            for network, service in mine:
                key = parseNetwork(network, 24, 48)
                table.create(VS, key, network, service, 0.0, TIMEOUT, table.lookup(VS, key, 0.0))
        fromA, fromB = a.takePending(1.0), b.takePending(1.0)
        apply(b, fromA, 1.0)
        apply(a, fromB, 1.0)

        def decided(table):
            return sorted((e.network, e.service, e.version, e.origin) for e in table.entries())

        self.assertEqual(decided(a), decided(b))


class EvictionTests(SynchronousTestCase):
    """
    At its size limit the table drops the least recently used entry (made,
    used or taken from another core) to make room, never refuses a client.
    """

    def setUp(self):
        self.table = PersistenceTable("gslb1/0", maxEntries=3)
        self.keys = {name: parseNetwork(f"198.51.{i}.0/24", 24, 128) for i, name in enumerate("abcdef")}

    def make(self, name, now, vserver=VS):
        return self.table.create(vserver, self.keys[name], f"net-{name}", "east-a", now, TIMEOUT)

    def live(self, now=110.0):
        return sorted(name for name, key in self.keys.items() if self.table.lookup(VS, key, now) is not None)

    def test_leastRecentlyUsedMakesRoom(self):
        a = self.make("a", 100.0)
        self.make("b", 101.0)
        self.make("c", 102.0)
        self.table.touch(a, 103.0, TIMEOUT)
        self.make("d", 104.0)
        self.assertEqual(self.live(), ["a", "c", "d"])
        self.assertEqual((self.table.count(), self.table.evicted), (3, 1))
        # An evicted entry is not shared any more either.
        self.assertNotIn("net-b", [entry["network"] for entry in self.table.takePending(104.0)])

    def test_mergedEntriesTakeTheirTurn(self):
        self.make("a", 100.0)
        self.make("b", 101.0)
        self.make("c", 102.0)
        self.assertTrue(self.table.merge(VS, self.keys["e"], wire(network="net-e"), 103.0))
        self.assertEqual(self.live(), ["b", "c", "e"])
        self.make("f", 104.0)
        self.assertEqual(self.live(), ["c", "e", "f"])

    def test_expiredAndForgottenLeaveNoGhosts(self):
        """Entries gone by expiry or a forgotten vserver are not evicted later in place of live ones."""
        self.make("a", 100.0)
        self.make("b", 100.0, vserver="api")
        self.table.expire(100.0 + TIMEOUT * 2)
        self.make("c", 200.0)
        self.make("d", 201.0, vserver="api")
        self.table.forget(["api"])
        self.make("e", 202.0)
        self.make("f", 203.0)
        self.assertEqual(self.table.evicted, 0)
        self.assertEqual(self.live(210.0), ["c", "e", "f"])
