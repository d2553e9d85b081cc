"""
Tests for the pure parts of L{benchmarks.chaos}: choosing cases, the
options it refuses, the losses of a fault's window, the summary of a case
over its runs and the README table.  (They measure nothing and start no
process.)
"""

from __future__ import annotations

import argparse
import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import chaos


def run(case: str, number: int, detect=0.5, recover=1.0, counts=None, **kwargs) -> chaos.Run:
    fault = {"detect": detect, "recover": recover}
    counts = counts or {"sent": 1000, "answered": 1000, "lost": 0, "wrong": 0}
    return chaos.Run(case, number, fault=fault, counts=counts, **kwargs)


class CaseTests(SynchronousTestCase):
    def test_everyFaultOfTheIssueHasACase(self):
        self.assertEqual(chaos.CASE_NAMES, [
            "core-kill", "control-core-kill", "control-core-kill-aged", "core-stop", "site-kill", "site-freeze", "site-restart",
            "link-cut", "link-blackhole", "link-delay", "udp-flood",
        ])
        self.assertEqual(len({case.title for case in chaos.CASES}), len(chaos.CASES))

    def test_parseCases(self):
        self.assertEqual(chaos.parseCases("all"), chaos.CASE_NAMES)
        self.assertEqual(chaos.parseCases("udp-flood, core-kill"), ["core-kill", "udp-flood"])
        with self.assertRaises(argparse.ArgumentTypeError) as e:
            chaos.parseCases("core-kill,site-nuke")
        self.assertIn("unknown case site-nuke", str(e.exception))
        self.assertRaises(argparse.ArgumentTypeError, chaos.parseCases, " , ")

    def test_options(self):
        errors = io.StringIO()
        self.patch(sys, "stderr", errors)  # argparse says why it refuses
        options = chaos.parseArguments([])
        self.assertEqual((options.repeat, options.rate, options.metrics_interval, options.dead_interval),
                         (3, 20000.0, 1.0, 3.0))
        self.assertEqual(chaos.parseArguments(["--cases", "site-kill"]).cases, ["site-kill"])
        for bad in (["--repeat", "0"], ["--rate", "0"], ["--dead-interval", "1", "--metrics-interval", "1"],
                    ["--delay-ms", "1500"]):
            self.assertRaises(SystemExit, chaos.parseArguments, bad)
        self.assertIn("--delay-ms each way must stay under half the dead interval", errors.getvalue())


class FigureTests(SynchronousTestCase):
    def test_lostBetweenCountsTheBucketsOverlappingTheWindow(self):
        buckets = [{"start": 0.0, "lost": 1}, {"start": 0.1, "lost": 2}, {"start": 0.2, "lost": 4},
                   {"start": 0.3, "lost": 8}]
        self.assertEqual(chaos.lostBetween(buckets, 0.1, 0.15, 0.2), 2 + 4)
        self.assertEqual(chaos.lostBetween(buckets, 0.1, 0.0, 10.0), 15)
        self.assertEqual(chaos.lostBetween(buckets, 0.1, 0.45, 1.0), 0)

    def test_lossTimelineFromTheInjection(self):
        buckets = [{"start": 0.0, "lost": 0}, {"start": 0.1, "lost": 3}, {"start": 0.2, "lost": 0},
                   {"start": 2.5, "lost": 1}]
        self.assertEqual(chaos.lossTimeline(buckets, injected=0.5), [[-0.4, 3], [2.0, 1]])
        self.assertEqual(chaos.lossTimeline(buckets, injected=0.0, limit=1), [[0.1, 3]])

    def test_summaryOverRuns(self):
        case = chaos.CASES[0]
        runs = [
            run(case.name, 1, detect=0.2, recover=1.0),
            run(case.name, 2, detect=0.4, recover=3.0, counts={"sent": 500, "answered": 499, "lost": 1, "wrong": 0},
                lostDuringFault=1),
            run(case.name, 3, detect=0.3, recover=2.0, left=[4242]),
            chaos.Run(case.name, 4, error="Traceback ...\nFaultTimeout: timed out"),
        ]
        summary = chaos.summariseCase(case, runs)
        self.assertEqual(summary["detect"], {"n": 3, "p50": 0.3, "max": 0.4})
        self.assertEqual(summary["recover"], {"n": 3, "p50": 2.0, "max": 3.0})
        self.assertEqual({k: summary["counts"][k] for k in ("sent", "answered", "lost", "wrong")},
                         {"sent": 2500, "answered": 2499, "lost": 1, "wrong": 0})
        self.assertEqual((summary["runs"], summary["failed"], summary["left"], summary["lost_during_fault"]),
                         (4, 2, 1, 1))
        self.assertEqual(summary["lost_per_run"], [None, 1, None, None])

    def test_aRunFailsOnAWrongAnswerAProcessLeftOrAnError(self):
        self.assertFalse(run("x", 1).failed)
        self.assertTrue(run("x", 1, counts={"wrong": 1}).failed)
        self.assertTrue(run("x", 1, left=[1]).failed)
        self.assertTrue(chaos.Run("x", 1, error="boom").failed)

    def test_markdownTable(self):
        case = next(c for c in chaos.CASES if c.name == "site-freeze")
        stopped = next(c for c in chaos.CASES if c.name == "core-stop")
        summaries = [
            chaos.summariseCase(case, [run(case.name, 1, detect=3.02, recover=0.51, lostDuringFault=2),
                                       run(case.name, 2, detect=3.1, recover=0.6)]),
            chaos.summariseCase(stopped, [run(stopped.name, 1, detect=None, recover=0.05)]),
        ]
        lines = chaos.markdownTable(summaries).splitlines()
        self.assertEqual(lines[0], "| fault | time to detect | time to recover | answered / sent "
                                   "| lost in the fault, per run | wrong | left behind |")
        self.assertEqual(lines[2], "| SIGSTOP a site emulator (north) | DOWN on every core: 3.02 (3.10) s | "
                                   "UP everywhere and answered, after SIGCONT: 0.51 (0.60) s | 2,000 / 2,000 | 2, - | 0 "
                                   "| 0 |")
        self.assertEqual(lines[3].split(" | ")[1], "not detected (by design)")
        self.assertIn("answering again after SIGCONT: 0.05 s", lines[3])
