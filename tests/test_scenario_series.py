"""
The series of a scenario's answers (L{gslb_twisted.scenario.series}):
per-bucket and per-segment counts, exact windows at the marks, gaps,
latency percentiles, bounded memory.  Pure and deterministic.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.scenario.series import Bins, Series, binUpper, latencyBin, percentile, rcodeClass

EAST, WEST = "192.0.2.10", "198.51.100.10"
SITES = {EAST: "east", WEST: "west"}


def series(duration=10.0, width=1.0, marks=(2.5, 7.0), populations=("us", "eu")) -> Series:
    return Series(duration, width, marks, SITES, populations)


class BinsTests(SynchronousTestCase):
    def test_index(self):
        bins = Bins([0, 1, 2.5, 10])
        self.assertEqual([bins.index(t) for t in (-1, 0, 0.99, 1, 2.49, 2.5, 9.9, 10, 50)], [0, 0, 0, 1, 1, 2, 2, 2, 2])
        self.assertEqual(bins.within(1, 10), [1, 2])
        self.assertEqual(bins.within(0, 1), [0])
        self.assertRaises(ValueError, Bins, [0])
        self.assertRaises(ValueError, Bins, [0, 2, 1])

    def test_note(self):
        bins = Bins([0, 10])
        for t in (3, 1, 7):
            bins.note(0, ("site", "east", None), t)
        self.assertEqual(bins.stats[0][("site", "east", None)], [3, 1, 7])


class SeriesTests(SynchronousTestCase):
    def test_gridAndSegments(self):
        s = series(duration=9.5, width=2.0)
        self.assertEqual(s.buckets.edges, [0, 2, 4, 6, 8, 9.5])
        self.assertEqual(s.segments.edges, [0, 2.5, 7.0, 9.5])

    def test_answersCountedBySiteAddressPopulationAndClass(self):
        s = series()
        s.answered(0.5, "us", 0, (EAST,), 0.001)
        s.answered(1.5, "eu", 0, (EAST, WEST), 0.002)
        s.answered(3.0, "eu", 0, (), 0.001)
        s.answered(3.5, "us", 2, (), 0.5)
        s.answered(4.0, "us", 0, ("10.9.9.9",), 0.001)
        s.lost(5.0, "us")
        self.assertEqual((s.answeredTotal, s.lostTotal, s.lastSent), (5, 1, 5.0))
        self.assertEqual(s.names("site", 0, 10), {"east": 2, "west": 1, "?": 1})
        self.assertEqual(s.names("site", 0, 10, "eu"), {"east": 1, "west": 1})
        self.assertEqual(s.names("rcode", 0, 10), {"NOERROR": 3, "EMPTY": 1, "SERVFAIL": 1})
        self.assertEqual(s.names("address", 0, 2.5), {EAST: 2, WEST: 1})
        east = s.summary("site", "east", 0, 10)
        self.assertEqual((east.count, east.first, east.last), (2, 0.5, 1.5))
        self.assertEqual(s.summary("lost", None, 0, 10, "us").count, 1)
        self.assertEqual(s.summary("lost", None, 0, 10, "eu").count, 0)
        self.assertIn("?", s.sites)

    def test_windowsAreExactAtMarks(self):
        """A window between marks takes whole segments: an answer at 2.49 is before 2.5, one at 2.5 is in."""
        s = series()
        s.answered(2.49, "us", 0, (EAST,), 0.001)
        s.answered(2.5, "us", 0, (WEST,), 0.001)
        s.answered(6.99, "us", 0, (WEST,), 0.001)
        s.answered(7.0, "us", 0, (EAST,), 0.001)
        self.assertEqual(s.names("site", 2.5, 7.0), {"west": 2})
        self.assertEqual(s.summary("site", "east", 0, 2.5).last, 2.49)
        self.assertEqual(s.summary("site", "east", 7.0, 10).first, 7.0)
        # On the bucket grid, the same window is rounded to buckets.
        self.assertEqual(s.summary("site", "east", 2, 7, bins=s.buckets).count, 1)

    def test_outsideTheRunLandsAtTheEdges(self):
        s = series()
        s.answered(-0.1, None, 0, (EAST,), 0.001)
        s.answered(10.2, None, 0, (EAST,), 0.001)
        self.assertEqual(s.buckets.stats[0][("site", "east", None)][0], 1)
        self.assertEqual(s.buckets.stats[-1][("site", "east", None)][0], 1)

    def test_latency(self):
        s = series()
        for i in range(99):
            s.answered(1.0, "us", 0, (EAST,), 0.001)
        s.answered(1.0, "us", 0, (EAST,), 0.250)
        p50 = s.latencyPercentile(50, 0, 10)
        p99 = s.latencyPercentile(99, 0, 10)
        p100 = s.latencyPercentile(100, 0, 10, "us")
        self.assertTrue(0.001 <= p50 < 0.0013, p50)
        self.assertEqual(p99, p50)
        self.assertTrue(0.25 <= p100 < 0.3, p100)
        self.assertIsNone(s.latencyPercentile(99, 0, 10, "eu"))
        self.assertIsNone(s.latencyPercentile(99, 7, 10))

    def test_latencyBins(self):
        self.assertEqual(latencyBin(0), 0)
        self.assertEqual(latencyBin(1e-5), 0)
        self.assertEqual(latencyBin(1e-4), 12)
        self.assertEqual(latencyBin(1e3), 72)
        self.assertTrue(binUpper(latencyBin(0.0042)) >= 0.0042)
        self.assertEqual(percentile({}, 50), None)
        self.assertEqual(percentile({3: 1, 10: 1}, 50), binUpper(3))
        self.assertEqual(percentile({3: 1, 10: 1}, 51), binUpper(10))

    def test_rcodeClass(self):
        self.assertEqual([rcodeClass(0, ("a",)), rcodeClass(0, ()), rcodeClass(3, ()), rcodeClass(5, ()), rcodeClass(9, ())],
                         ["NOERROR", "EMPTY", "NXDOMAIN", "REFUSED", "OTHER"])

    def test_boundedMemory(self):
        """A long heavy run keeps one entry per key per bin, whatever the number of answers."""
        s = Series(60.0, 0.5, [10, 20], SITES, ["us"])
        for i in range(60000):
            t = i / 1000.0
            s.answered(t, "us", 0, (EAST if i % 3 else WEST,), 0.0005 + (i % 7) * 0.0001)
        entries = sum(len(stats) for stats in s.buckets.stats) + sum(len(stats) for stats in s.segments.stats)
        latency = sum(len(h) for h in s.buckets.latency) + sum(len(h) for h in s.segments.latency)
        self.assertLessEqual(entries, (120 + 3) * 12)
        self.assertLessEqual(latency, (120 + 3) * 2 * 10)
        self.assertEqual(s.answeredTotal, 60000)

    def test_rows(self):
        s = series(duration=3.0, width=1.0, marks=())
        s.answered(0.2, "us", 0, (EAST,), 0.001)
        s.answered(1.2, "eu", 0, (WEST,), 0.002)
        s.answered(1.3, "eu", 0, (), 0.002)
        s.lost(2.5, "us")
        rows = s.rows()
        self.assertEqual(rows["t"], [0, 1, 2])
        self.assertEqual(rows["answered"], [1, 2, 0])
        self.assertEqual(rows["unanswered"], [0, 0, 1])
        self.assertEqual(rows["sites"], {"east": [1, 0, 0], "west": [0, 1, 0]})
        self.assertEqual(rows["rcodes"], {"EMPTY": [0, 1, 0], "NOERROR": [1, 1, 0]})
        self.assertEqual(rows["populations"]["eu"], {"answered": [0, 2, 0], "unanswered": [0, 0, 0],
                                                     "sites": {"west": [0, 1, 0]}})
        self.assertEqual(rows["latency_p50_ms"][2], None)
        self.assertTrue(rows["latency_p99_ms"][1] >= 2.0)


class GapTests(SynchronousTestCase):
    """The longest stretch without an answered query (by send time)."""

    def run_(self, answered=(), lost=(), start=0.0, end=10.0, width=0.5):
        s = Series(10.0, width, [], SITES)
        for t in answered:
            s.answered(t, None, 0, (EAST,), 0.001)
        for t in lost:
            s.lost(t)
        return s.longestGap(start, end)

    def test_none(self):
        self.assertEqual(self.run_(answered=[i * 0.1 for i in range(100)]), (0.0, None))

    def test_aRunAcrossBuckets(self):
        answered = [t / 10 for t in range(0, 30)] + [t / 10 for t in range(52, 100)]
        lost = [t / 10 for t in range(30, 52)]
        gap, at = self.run_(answered, lost)
        self.assertAlmostEqual(gap, 5.2 - 2.9)
        self.assertAlmostEqual(at, 2.9)

    def test_lostBeforeTheAnswersOfTheirBucket(self):
        gap, at = self.run_([1.0, 2.4], [2.1, 2.2])
        self.assertAlmostEqual(gap, 1.4)
        self.assertEqual(at, 1.0)

    def test_lostAtTheEndWithNoAnswerAfter(self):
        gap, at = self.run_([0.5, 1.0], [1.1, 3.0, 6.0])
        self.assertAlmostEqual(gap, 5.0)
        self.assertEqual(at, 1.0)

    def test_nothingAnsweredAtAll(self):
        gap, at = self.run_([], [1.0, 4.0])
        self.assertAlmostEqual(gap, 3.0)
        self.assertEqual(at, 1.0)

    def test_interleavedInOneBucketIsBelowResolution(self):
        gap, at = self.run_([1.0, 1.1, 1.3, 1.4], [1.2])
        self.assertEqual(gap, 0.0)
        self.assertEqual(at, 0.0)  # (unanswered queries, but no gap the grid can see)

    def test_populationAndWindow(self):
        s = Series(10.0, 0.5, [], SITES, ["a", "b"])
        for i in range(100):
            s.answered(i / 10, "a", 0, (EAST,), 0.001)
            if not 40 <= i < 60:
                s.answered(i / 10, "b", 0, (EAST,), 0.001)
            else:
                s.lost(i / 10, "b")
        self.assertEqual(s.longestGap(0, 10, "a"), (0.0, None))
        gap, at = s.longestGap(0, 10, "b")
        self.assertAlmostEqual(gap, 6.0 - 3.9)
        self.assertEqual(s.longestGap(0, 10), (0.0, 0))
        self.assertEqual(s.longestGap(7, 10, "b"), (0.0, None))
