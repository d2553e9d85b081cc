"""Tests for L{gslb_twisted.mep.rules}: the lower-IP rule and the sequence tracker."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.mep.rules import APPLY, DROP, RESYNC, SequenceTracker, initiates


class InitiatesTests(SynchronousTestCase):
    def test_lowerIPInitiates(self):
        self.assertTrue(initiates("127.0.0.2", "east", "127.0.0.5", "gslb1"))
        self.assertFalse(initiates("127.0.0.5", "gslb1", "127.0.0.2", "east"))

    def test_numericNotTextual(self):
        """10.0.0.9 is lower than 10.0.0.10, whatever the strings say."""
        self.assertTrue(initiates("10.0.0.9", "b", "10.0.0.10", "a"))
        self.assertFalse(initiates("10.0.0.10", "a", "10.0.0.9", "b"))

    def test_ipv4BeforeIPv6(self):
        """Any IPv4 address is lower than any IPv6 one, even ::1."""
        self.assertTrue(initiates("255.255.255.255", "z", "::1", "a"))
        self.assertFalse(initiates("::", "a", "0.0.0.0", "z"))

    def test_ipv6(self):
        self.assertTrue(initiates("2001:db8::2", "z", "2001:db8::10", "a"))
        self.assertTrue(initiates("2001:db8::2", "z", "2001:DB8:0::10", "a"))

    def test_objects(self):
        self.assertTrue(initiates(ipaddress.ip_address("10.0.0.1"), "x", "10.0.0.2", "y"))

    def test_tieByName(self):
        self.assertTrue(initiates("127.0.0.1", "east", "127.0.0.1", "west"))
        self.assertFalse(initiates("127.0.0.1", "west", "127.0.0.1", "east"))
        self.assertTrue(initiates("::1", "a", "0:0::1", "b"))

    def test_sameEnd(self):
        self.assertRaises(ValueError, initiates, "127.0.0.1", "east", "127.0.0.1", "east")

    def test_badAddress(self):
        self.assertRaises(ValueError, initiates, "nowhere", "a", "127.0.0.1", "b")

    @settings(max_examples=300)
    @given(
        st.ip_addresses(), st.text(max_size=4), st.ip_addresses(), st.text(max_size=4),
    )
    def test_exactlyOneInitiates(self, ipA, nameA, ipB, nameB):
        """For any two distinct ends, exactly one of them initiates."""
        if ipA == ipB and nameA == nameB:
            return
        self.assertNotEqual(initiates(ipA, nameA, ipB, nameB), initiates(ipB, nameB, ipA, nameA))


class SequenceTrackerTests(SynchronousTestCase):
    def setUp(self):
        self.t = SequenceTracker()
        self.assertEqual(self.t.snapshot(10, ["web", "db"]), APPLY)

    def test_inOrder(self):
        self.assertEqual(self.t.delta(11, 10, ["web"]), APPLY)
        self.assertEqual(self.t.delta(15, 11, ["db", "web"]), APPLY)
        self.assertEqual(self.t.lastSeq, 15)

    def test_deltaBeforeSnapshot(self):
        self.assertEqual(SequenceTracker().delta(1, 0, []), RESYNC)

    def test_gapThenDropUntilSnapshot(self):
        self.assertEqual(self.t.delta(13, 12, ["web"]), RESYNC)
        self.assertTrue(self.t.awaitingSnapshot)
        self.assertEqual(self.t.delta(14, 13, ["web"]), DROP)
        self.assertEqual(self.t.delta(11, 10, ["web"]), DROP)
        self.assertEqual(self.t.lastSeq, 10)
        self.assertEqual(self.t.snapshot(14, ["web"]), APPLY)
        self.assertFalse(self.t.awaitingSnapshot)
        self.assertEqual(self.t.delta(15, 14, ["web"]), APPLY)

    def test_replayed(self):
        self.assertEqual(self.t.delta(11, 10, ["web"]), APPLY)
        self.assertEqual(self.t.delta(11, 10, ["web"]), RESYNC)

    def test_notRising(self):
        """seq must exceed base_seq."""
        self.assertEqual(self.t.delta(10, 10, ["web"]), RESYNC)
        self.t.snapshot(10, ["web"])
        self.assertEqual(self.t.delta(9, 10, ["web"]), RESYNC)

    def test_unknownService(self):
        self.assertEqual(self.t.delta(11, 10, ["cache"]), RESYNC)

    def test_snapshotAlwaysApplies(self):
        """A snapshot with a lower seq still replaces the state."""
        self.assertEqual(self.t.snapshot(3, ["web"]), APPLY)
        self.assertEqual(self.t.delta(4, 3, ["web"]), APPLY)

    @settings(max_examples=300)
    @given(st.lists(st.tuples(st.booleans(), st.integers(0, 20), st.integers(0, 20)), max_size=30))
    def test_appliedDeltasChain(self, events):
        """Whatever arrives, every applied delta continues the version held before it."""
        t = SequenceTracker()
        held = None
        for isSnapshot, seq, base in events:
            if isSnapshot:
                t.snapshot(seq, ["web"])
                held = seq
            elif t.delta(seq, base, ["web"]) == APPLY:
                self.assertEqual(base, held)
                self.assertGreater(seq, base)
                held = seq
            self.assertEqual(t.lastSeq, held)
