"""
Tests for L{gslb_twisted.mastership}: the hub's claim arbitration
(L{ClaimTable}, L{pickCore}) and each core's L{MastershipView}.

The protocol-level properties (never two masters, never a stale update
applied, convergence after any interleaving of claims, deaths, respawns
and deliveries) are checked by the state machine in
L{tests.test_metrics}, which drives these objects together with the
metric tables.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.mastership import Claim, ClaimTable, MastershipView, pickCore

# Reproducible runs, as elsewhere in the suite: no example database, no clock.
deterministic = settings(derandomize=True, deadline=None, database=None)


class ClaimTableTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.table = ClaimTable()

    def test_firstClaimGranted(self) -> None:
        """A site nobody holds is granted with epoch 1."""
        self.assertEqual(self.table.claim("east", 1), Claim(1, 1))
        self.assertEqual(self.table.holder("east"), Claim(1, 1))

    def test_noHolder(self) -> None:
        self.assertIsNone(self.table.holder("east"))

    def test_claimRefused(self) -> None:
        """A site held by another core is refused without takeover."""
        self.table.claim("east", 1)
        self.assertIsNone(self.table.claim("east", 2))
        self.assertEqual(self.table.holder("east"), Claim(1, 1))
        self.assertEqual(self.table.lastEpoch["east"], 1)

    def test_claimIdempotent(self) -> None:
        """The holder asking again keeps its claim and epoch, takeover or not."""
        first = self.table.claim("east", 1)
        self.assertEqual(self.table.claim("east", 1), first)
        self.assertEqual(self.table.claim("east", 1, takeover=True), first)
        self.assertEqual(self.table.lastEpoch["east"], 1)

    def test_takeover(self) -> None:
        """A takeover deposes the holder with a new, higher epoch."""
        self.table.claim("east", 1)
        self.assertEqual(self.table.claim("east", 2, takeover=True), Claim(2, 2))
        self.assertEqual(self.table.holder("east"), Claim(2, 2))
        self.assertEqual(self.table.claim("east", 1, takeover=True), Claim(1, 3))

    def test_takeoverOfFreeSite(self) -> None:
        self.assertEqual(self.table.claim("east", 2, takeover=True), Claim(2, 1))

    def test_epochsPerSite(self) -> None:
        """Each site has its own epochs."""
        self.table.claim("east", 1)
        self.table.claim("east", 2, takeover=True)
        self.assertEqual(self.table.claim("west", 1), Claim(1, 1))

    def test_releaseByHolder(self) -> None:
        """The holder of the epoch releases; the next claim gets a higher epoch."""
        self.table.claim("east", 1)
        self.assertTrue(self.table.release("east", 1, 1))
        self.assertIsNone(self.table.holder("east"))
        self.assertEqual(self.table.claim("east", 2), Claim(2, 2))

    def test_releaseByOther(self) -> None:
        self.table.claim("east", 1)
        self.assertFalse(self.table.release("east", 2, 1))
        self.assertEqual(self.table.holder("east"), Claim(1, 1))

    def test_releaseOldEpoch(self) -> None:
        """A deposed holder's release (with its old epoch) changes nothing."""
        self.table.claim("east", 1)
        self.table.claim("east", 2, takeover=True)
        self.table.claim("east", 1, takeover=True)
        self.assertFalse(self.table.release("east", 1, 1))
        self.assertEqual(self.table.holder("east"), Claim(1, 3))

    def test_releaseUnheld(self) -> None:
        self.assertFalse(self.table.release("east", 1, 1))

    def test_coreDied(self) -> None:
        """A dead core's sites are returned sorted and freed; others stay."""
        for site in ["west", "north", "east"]:
            self.table.claim(site, 1)
        self.table.claim("south", 2)
        self.assertEqual(self.table.coreDied(1), ["east", "north", "west"])
        self.assertEqual(self.table.claims, {"south": Claim(2, 1)})
        self.assertEqual(self.table.coreDied(1), [])
        self.assertEqual(self.table.claim("east", 2), Claim(2, 2))

    def test_mastersOf(self) -> None:
        self.assertEqual(self.table.mastersOf(), {})
        self.table.claim("east", 1)
        self.table.claim("west", 1)
        self.table.claim("north", 2)
        self.assertEqual(self.table.mastersOf(), {1: 2, 2: 1})


class PickCoreTests(SynchronousTestCase):
    def test_noLiveCore(self) -> None:
        self.assertIsNone(pickCore([], {}))
        self.assertIsNone(pickCore([], {1: 3}))

    def test_fewestSites(self) -> None:
        self.assertEqual(pickCore([1, 2, 3], {1: 2, 2: 1, 3: 2}), 2)

    def test_coreWithoutSites(self) -> None:
        """A core absent from C{masters} masters nothing."""
        self.assertEqual(pickCore([1, 2], {1: 1}), 2)

    def test_tieLowestId(self) -> None:
        self.assertEqual(pickCore([3, 2, 4], {}), 2)
        self.assertEqual(pickCore([4, 3], {3: 1, 4: 1}), 3)

    def test_deadCoresIgnored(self) -> None:
        """Counts of cores that are not live do not matter."""
        self.assertEqual(pickCore([2], {1: 0, 2: 5}), 2)

    def test_spread(self) -> None:
        """Assigning sites one by one spreads them over the cores."""
        table = ClaimTable()
        for index in range(7):
            table.claim("site%d" % (index,), pickCore([1, 2, 3], table.mastersOf()))
        self.assertEqual(table.mastersOf(), {1: 3, 2: 2, 3: 2})

    @given(
        live=st.sets(st.integers(0, 8), max_size=6),
        masters=st.dictionaries(st.integers(0, 8), st.integers(0, 5)),
    )
    @settings(deterministic, max_examples=200)
    def test_pickCoreProperty(self, live: set[int], masters: dict[int, int]) -> None:
        """The pick is a live core with the fewest sites and the lowest id among those."""
        picked = pickCore(live, masters)
        if not live:
            self.assertIsNone(picked)
            return
        self.assertIn(picked, live)
        fewest = min(masters.get(core, 0) for core in live)
        self.assertEqual(masters.get(picked, 0), fewest)
        self.assertEqual(picked, min(core for core in live if masters.get(core, 0) == fewest))

    @given(cores=st.integers(1, 5), sites=st.integers(0, 20))
    @settings(deterministic, max_examples=100)
    def test_spreadProperty(self, cores: int, sites: int) -> None:
        """Sites assigned by L{pickCore} differ by at most one between cores."""
        table = ClaimTable()
        live = range(1, cores + 1)
        for index in range(sites):
            table.claim("s%d" % (index,), pickCore(live, table.mastersOf()))
        counts = [table.mastersOf().get(core, 0) for core in live]
        self.assertLessEqual(max(counts) - min(counts), 1)
        self.assertEqual(sum(counts), sites)


class MastershipViewTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.view = MastershipView()

    def test_unknown(self) -> None:
        self.assertIsNone(self.view.master("east"))
        self.assertFalse(self.view.isMaster("east", 1))

    def test_announce(self) -> None:
        self.assertTrue(self.view.announce("east", 1, 1))
        self.assertEqual(self.view.master("east"), (1, 1))
        self.assertTrue(self.view.isMaster("east", 1))
        self.assertFalse(self.view.isMaster("east", 2))
        self.assertIsNone(self.view.master("west"))

    def test_repeatedAnnouncement(self) -> None:
        """The same announcement again changes nothing and is not stale."""
        self.view.announce("east", 1, 1)
        self.assertFalse(self.view.announce("east", 1, 1))
        self.assertEqual(self.view.staleAnnouncements, 0)

    def test_newerEpoch(self) -> None:
        self.view.announce("east", 1, 1)
        self.assertTrue(self.view.announce("east", 2, 4))
        self.assertEqual(self.view.master("east"), (2, 4))

    def test_olderEpochIgnored(self) -> None:
        """A late announcement never brings back a deposed master; it is counted."""
        self.view.announce("east", 2, 4)
        self.assertFalse(self.view.announce("east", 1, 3))
        self.assertEqual(self.view.master("east"), (2, 4))
        self.assertEqual(self.view.staleAnnouncements, 1)
        self.view.announce("east", 1, 1)
        self.assertEqual(self.view.staleAnnouncements, 2)

    def test_clear(self) -> None:
        """C{announce(site, None, epoch)} clears the master of that epoch."""
        self.view.announce("east", 1, 3)
        self.assertTrue(self.view.announce("east", None, 3))
        self.assertIsNone(self.view.master("east"))
        self.assertFalse(self.view.isMaster("east", 1))
        self.assertEqual(self.view.epochs["east"], 3)

    def test_clearThenNewMaster(self) -> None:
        self.view.announce("east", 1, 3)
        self.view.announce("east", None, 3)
        self.assertTrue(self.view.announce("east", 2, 4))
        self.assertEqual(self.view.master("east"), (2, 4))

    def test_clearOlderIgnored(self) -> None:
        """A clear with an older epoch does not remove a newer master."""
        self.view.announce("east", 2, 4)
        self.assertFalse(self.view.announce("east", None, 3))
        self.assertEqual(self.view.master("east"), (2, 4))
        self.assertEqual(self.view.staleAnnouncements, 1)

    def test_clearUnknownSite(self) -> None:
        self.assertFalse(self.view.announce("east", None, 2))
        self.assertIsNone(self.view.master("east"))

    def test_clearUnknownSiteRemembersEpoch(self) -> None:
        """
        A clear seen before any master still raises the known epoch: a later,
        older announcement is ignored (once epoch E is seen, older never wins).
        """
        self.view.announce("east", None, 5)
        self.assertFalse(self.view.announce("east", 1, 4))
        self.assertIsNone(self.view.master("east"))
        self.assertEqual(self.view.staleAnnouncements, 1)

    def test_clearAfterClear(self) -> None:
        """A newer clear after a clear raises the known epoch too."""
        self.view.announce("east", 1, 2)
        self.view.announce("east", None, 2)
        self.view.announce("east", None, 6)
        self.assertFalse(self.view.announce("east", 1, 5))
        self.assertIsNone(self.view.master("east"))

    def test_sitesIndependent(self) -> None:
        self.view.announce("east", 1, 5)
        self.assertTrue(self.view.announce("west", 2, 1))
        self.assertEqual(self.view.master("east"), (1, 5))
        self.assertEqual(self.view.staleAnnouncements, 0)


announcements = st.tuples(
    st.sampled_from(["east", "west"]),
    st.one_of(st.none(), st.integers(1, 3)),
    st.integers(1, 6),
)


class MastershipViewPropertyTests(SynchronousTestCase):
    @given(st.lists(announcements, max_size=30))
    @settings(deterministic, max_examples=200)
    def test_epochsNeverDecrease(self, sequence: list) -> None:
        """
        Whatever order announcements arrive in, the epoch a view knows for a
        site is the highest it was told (it never decreases), a master it
        names has that epoch, and every older announcement is counted.
        """
        view = MastershipView()
        highest: dict[str, int] = {}
        stale = 0
        for site, core, epoch in sequence:
            if epoch < highest.get(site, 0):
                stale += 1
            view.announce(site, core, epoch)
            highest[site] = max(highest.get(site, 0), epoch)
            self.assertEqual(view.epochs[site] if site in view.epochs else 0, highest[site])
            master = view.master(site)
            if master is not None:
                self.assertEqual(master[1], highest[site])
        self.assertEqual(view.staleAnnouncements, stale)


class ClaimTableMachine(RuleBasedStateMachine):
    """
    Random claims, takeovers, releases and deaths against the hub's table,
    compared with a model: one holder per site, a fresh and strictly higher
    epoch on each grant, a holder's repeated claim idempotent.
    """

    sites = ["east", "west", "north"]
    cores = [1, 2, 3]

    def __init__(self) -> None:
        super().__init__()
        self.table = ClaimTable()
        self.holders: dict[str, Claim] = {}
        self.grants: dict[str, list[int]] = {site: [] for site in self.sites}

    def _granted(self, site: str, claim: Claim) -> None:
        assert claim.epoch > max(self.grants[site], default=0)
        self.grants[site].append(claim.epoch)
        self.holders[site] = claim

    @rule(site=st.sampled_from(sites), core=st.sampled_from(cores), takeover=st.booleans())
    def claim(self, site: str, core: int, takeover: bool) -> None:
        before = self.holders.get(site)
        result = self.table.claim(site, core, takeover)
        if before is not None and before.core == core:
            assert result == before
        elif before is not None and not takeover:
            assert result is None
        else:
            assert result is not None and result.core == core
            self._granted(site, result)

    @rule(site=st.sampled_from(sites), core=st.sampled_from(cores), epoch=st.integers(0, 6))
    def release(self, site: str, core: int, epoch: int) -> None:
        released = self.table.release(site, core, epoch)
        assert released == (self.holders.get(site) == Claim(core, epoch))
        if released:
            del self.holders[site]

    @precondition(lambda self: self.holders)
    @rule(data=st.data())
    def releaseHeld(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from(sorted(self.holders)))
        claim = self.holders.pop(site)
        assert self.table.release(site, claim.core, claim.epoch)

    @rule(core=st.sampled_from(cores))
    def coreDied(self, core: int) -> None:
        expected = sorted(site for site, claim in self.holders.items() if claim.core == core)
        assert self.table.coreDied(core) == expected
        for site in expected:
            del self.holders[site]

    @rule(live=st.sets(st.sampled_from(cores)))
    def assignOrphans(self, live: set[int]) -> None:
        """The hub spreads every unheld site over the live cores."""
        for site in self.sites:
            if site not in self.holders:
                core = pickCore(live, self.table.mastersOf())
                if core is None:
                    assert not live
                    return
                self._granted(site, self.table.claim(site, core))

    @invariant()
    def matchesModel(self) -> None:
        assert self.table.claims == self.holders
        for site, claim in self.holders.items():
            assert claim.epoch == self.table.lastEpoch[site]
        counts: dict[int, int] = {}
        for claim in self.holders.values():
            counts[claim.core] = counts.get(claim.core, 0) + 1
        assert self.table.mastersOf() == counts


class ClaimTableStatefulTests(SynchronousTestCase):
    def test_claimTableMachine(self) -> None:
        """L{ClaimTableMachine}: the table always agrees with its model."""
        run_state_machine_as_test(
            ClaimTableMachine,
            settings=settings(deterministic, max_examples=100, stateful_step_count=30),
        )
