"""
Tests for the pure parts of L{benchmarks.dns_qps_consolidation}: the
generated topologies, the cases and their order, the options, the check of
the console readings, and the median and ratio arithmetic.  Run with
C{.venv/bin/trial benchmarks}.  (They measure nothing and start no process.)
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import dns_qps_consolidation as qpsc
from gslb_twisted.config import loadTopology


class TopologyTests(SynchronousTestCase):
    def load(self, interval: float):
        path = os.path.join(tempfile.mkdtemp(prefix="qpsc-test-"), "t.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(qpsc.consolidationToml(interval))
        return loadTopology(path)

    def test_interval(self) -> None:
        """bench.toml with the interval set; everything else as in bench.toml."""
        base = loadTopology(qpsc.BENCH_TOML)
        self.assertEqual(base.appliance.consolidation_interval, 0.5)  # the default: on
        for interval in (0.5, 3600.0):
            topology = self.load(interval)
            self.assertEqual(topology.appliance.consolidation_interval, interval)
            self.assertEqual(topology.appliance.name, base.appliance.name)
            self.assertEqual([v.name for v in topology.vservers], [v.name for v in base.vservers])
            self.assertEqual([s.name for s in topology.services], [s.name for s in base.services])

    def test_alreadySet(self) -> None:
        text = qpsc.consolidationToml(1.0)
        self.assertRaises(ValueError, qpsc.consolidationToml, 2.0, text)
        self.assertRaises(ValueError, qpsc.consolidationToml, 2.0, "[[zone]]\nname = 'x'\n")


class CaseTests(SynchronousTestCase):
    def test_cases(self) -> None:
        cases = qpsc.buildCases([1, 2])
        self.assertEqual([c.key for c in cases], ["names", "1-on", "1-off", "2-on", "2-off"])
        byKey = {c.key: c for c in cases}
        self.assertEqual((byKey["1-on"].interval, byKey["1-on"].on, byKey["1-on"].pinned), (0.5, True, True))
        self.assertEqual((byKey["2-off"].interval, byKey["2-off"].on, byKey["2-off"].pinned), (3600.0, False, False))
        self.assertEqual([c.key for c in qpsc.buildCases([2], names=False)], ["2-on", "2-off"])

    def test_scheduleAlternates(self) -> None:
        """On odd repeats off runs before on, per core count; the baseline stays first."""
        cases = qpsc.buildCases([1, 2])
        self.assertEqual([c.key for c in qpsc.schedule(cases, 0)], ["names", "1-on", "1-off", "2-on", "2-off"])
        self.assertEqual([c.key for c in qpsc.schedule(cases, 1)], ["names", "1-off", "1-on", "2-off", "2-on"])
        self.assertEqual([c.key for c in qpsc.schedule(cases, 2)], ["names", "1-on", "1-off", "2-on", "2-off"])


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = qpsc.parseArguments([])
        self.assertEqual((options.duration, options.repeat, options.coreList), (10.0, 3, [1, 2]))
        self.assertEqual((options.interval, options.off_interval), (0.5, 3600.0))
        self.assertEqual([c.key for c in options.cases], ["names", "1-on", "1-off", "2-on", "2-off"])

    def test_errors(self) -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, qpsc.parseArguments, ["--cores", "0"])
            self.assertRaises(SystemExit, qpsc.parseArguments, ["--cores", "x"])
            # "Off" must outlive every server, or a round could run during it.
            self.assertRaises(SystemExit, qpsc.parseArguments, ["--off-interval", "30"])


def stat(round_, queries):
    return {"round": round_, "queries": queries}


class CheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        cases = {c.key: c for c in qpsc.buildCases([1])}
        self.on, self.off = cases["1-on"], cases["1-off"]

    def test_onExact(self) -> None:
        """Rounds ran during the run and the settled total grew by exactly what dnsperf sent."""
        result = qpsc.checkConsolidation(self.on, stat(10, 5), stat(31, 900), stat(34, 1005), 1000, 1000, 1000, 10.6)
        self.assertTrue(result["ok"], result)
        self.assertEqual((result["rounds_during_run"], result["rounds_expected"]), (21, 21.2))
        self.assertEqual((result["consolidated_queries"], result["consolidated_at_first_read"]), (1000, 895))
        self.assertEqual(result["verdict"], "consolidated = sent")

    def test_onLost(self) -> None:
        """Queries dnsperf lost may never have reached the appliance."""
        result = qpsc.checkConsolidation(self.on, stat(1, 0), stat(21, 990), stat(24, 995), 1000, 990, 995, 10.0)
        self.assertTrue(result["ok"], result)
        self.assertIn("within lost", result["verdict"])

    def test_onMismatch(self) -> None:
        result = qpsc.checkConsolidation(self.on, stat(1, 0), stat(21, 900), stat(24, 900), 1000, 1000, 1000, 10.0)
        self.assertFalse(result["ok"])
        self.assertIn("MISMATCH", result["verdict"])
        # The cores' own counters disagree with the consolidated ones.
        result = qpsc.checkConsolidation(self.on, stat(1, 0), stat(21, 1000), stat(24, 1000), 1000, 1000, 999, 10.0)
        self.assertFalse(result["ok"])

    def test_onTooFewRounds(self) -> None:
        result = qpsc.checkConsolidation(self.on, stat(1, 0), stat(3, 1000), stat(6, 1000), 1000, 1000, 1000, 10.0)
        self.assertFalse(result["ok"])
        self.assertIn("only 2 rounds", result["verdict"])

    def test_off(self) -> None:
        """Off: no round, nothing consolidated; a round would fail the run."""
        result = qpsc.checkConsolidation(self.off, stat(0, 0), stat(0, 0), stat(0, 0), 1000, 1000, 1000, 10.0)
        self.assertTrue(result["ok"], result)
        self.assertIsNone(result["rounds_expected"])
        self.assertIn("no round", result["verdict"])
        result = qpsc.checkConsolidation(self.off, stat(0, 0), stat(1, 400), stat(1, 400), 1000, 1000, 1000, 10.0)
        self.assertFalse(result["ok"])

    def test_liveQueries(self) -> None:
        before = [{"core": 0, "pid": 10, "queries": 5}, {"core": 1, "pid": 11, "queries": 7}]
        after = [{"core": 0, "pid": 10, "queries": 105}, {"core": 1, "pid": 11, "queries": 57}]
        self.assertEqual(qpsc.liveQueries(before, after), 150)
        after[1]["pid"] = 12  # respawned: its counters restarted
        self.assertIsNone(qpsc.liveQueries(before, after))
        self.assertIsNone(qpsc.liveQueries(None, after))


class SummaryTests(SynchronousTestCase):
    def test_medianAndRatios(self) -> None:
        cases = qpsc.buildCases([1, 2])
        check = {"rounds_during_run": 20, "ok": True}
        runs = [
            qpsc.Run("names", 0, qps=35.0), qpsc.Run("names", 1, qps=37.0), qpsc.Run("names", 2, qps=36.0),
            qpsc.Run("1-on", 0, qps=100.0, consolidation=check), qpsc.Run("1-on", 1, qps=90.0, consolidation=check),
            qpsc.Run("1-on", 2, qps=95.0, consolidation=check),
            qpsc.Run("1-off", 0, qps=110.0), qpsc.Run("1-off", 1, qps=100.0), qpsc.Run("1-off", 2, error="boom"),
            qpsc.Run("2-on", 0, qps=80.0), qpsc.Run("2-off", 0, qps=100.0),
        ]
        byCase = {s.case: s for s in qpsc.summarise(runs, cases)}
        self.assertEqual(byCase["1-on"].qps, 95.0)
        self.assertEqual((byCase["1-on"].roundsDuringRuns, byCase["1-on"].consolidationChecked), ([20] * 3, 3))
        self.assertEqual(byCase["1-off"].qps, 105.0)
        self.assertEqual(byCase["1-off"].errors, ["boom"])
        ratios = {r["numerator"] + "/" + r["denominator"]: r["ratio"]
                  for r in qpsc.ratios(list(byCase.values()), [1, 2])}
        self.assertEqual(ratios, {
            "1-on/1-off": round(95 / 105, 3), "2-on/2-off": 0.8, "2-on/1-on": round(80 / 95, 3),
            "2-off/1-off": round(100 / 105, 3), "1-on/names": round(95 / 36, 3), "1-off/names": round(105 / 36, 3),
        })
