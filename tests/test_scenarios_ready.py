"""
The ready scenarios (fixtures/scenarios/*.toml), each run for real at its
C{ci_speed} through the code path of C{gslb-scenario run}: the appliance
and its emulated sites as processes, MEP, DNS load, the timeline.  Each
must pass its own expectations, write its report (JSON with the expected
structure, HTML, SVG, logs) and leave no process behind.  One test per
file: a new ready scenario is tested without touching this module.

Every other kind of event, the same way (tests/scenario_fixtures/
operations.toml).  And the command itself, as a subprocess: exit 0 for a
passing scenario, non-zero for one whose expectation cannot hold
(tests/scenario_fixtures).

These runs share a loaded machine: the scenarios' expectations leave room
for it, and nothing here asserts a wall-clock time; every wait polls with
a generous deadline.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from gslb_twisted.scenario.model import loadScenario
from gslb_twisted.scenario.runner import alive, runScenario
from tests.support import poll

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
READY = sorted(glob.glob(os.path.join(ROOT, "fixtures", "scenarios", "*.toml")))
FIXTURES = os.path.join(HERE, "scenario_fixtures")

REPORT_KEYS = ("schema", "passed", "scenario", "run", "totals", "expectations", "failovers", "cores", "populations",
               "events", "site_states", "series")


class RunMixin:
    timeout = 240

    async def runReady(self, path: str) -> None:
        scenario = loadScenario(path)
        directory = os.path.abspath(self.mktemp())
        result = await runScenario(reactor, scenario, speed=scenario.ciSpeed, reportDir=directory)
        # Nothing left: every site and appliance incarnation, every core seen.
        self.assertTrue(result.pids)
        await poll(lambda: not [pid for pid in result.pids if alive(pid)], 30, what=f"processes {sorted(result.pids)} to exit")
        document = result.document
        if not result.passed:
            from gslb_twisted.scenario.cli import summary

            self.fail(f"{scenario.name} failed (report in {directory}):\n{summary(result, scenario)}")
        self.assertEqual(result.exitCode, 0)
        self.assertEqual(sorted(result.files), ["html", "json", "logs", "svg"])
        with open(result.files["json"]) as f:
            written = json.load(f)
        for key in REPORT_KEYS:
            self.assertIn(key, written)
        self.assertTrue(written["passed"])
        self.assertEqual(len(written["expectations"]), len(scenario.expectations))
        self.assertTrue(all(v["passed"] for v in written["expectations"]))
        self.assertEqual([e["label"] for e in written["events"]], [e.label for e in scenario.events])
        self.assertTrue(all(e["applied_at"] is not None and e["error"] is None for e in written["events"]))
        self.assertGreater(written["totals"]["answered"], 0)
        self.assertEqual(len(written["series"]["t"]), len(written["series"]["answered"]))
        self.assertEqual({row["core"] for row in written["cores"]}, set(range(scenario.topology.appliance.coreCount())))
        self.assertEqual(set(written["site_states"]), set(scenario.topology.siteByName))
        ET.parse(result.files["svg"])
        with open(result.files["html"]) as f:
            page = f.read()
        self.assertIn("PASSED", page)
        self.assertIn("<svg", page)
        for name in scenario.emulated:
            self.assertTrue(os.path.exists(os.path.join(result.files["logs"], f"site-{name}.log")))
        self.assertTrue(os.path.exists(os.path.join(result.files["logs"], "appliance.log")))
        self.assertEqual(document["run"]["speed"], scenario.ciSpeed)


class ReadyScenarioTests(RunMixin, TestCase):
    """One test per file of fixtures/scenarios (added below)."""


def _readyTest(path: str):
    async def test(self):
        await self.runReady(path)

    name = os.path.splitext(os.path.basename(path))[0]
    test.__name__ = "test_" + name.replace("-", "_")
    test.__doc__ = f"fixtures/scenarios/{os.path.basename(path)} passes at its ci_speed, reports, leaves nothing behind."
    return test


for _path in READY:
    _test = _readyTest(_path)
    setattr(ReadyScenarioTests, _test.__name__, _test)
del _path, _test


class EveryActionTests(RunMixin, TestCase):
    """The actions the ready scenarios do not use, applied for real."""

    def test_operations(self):
        """
        set-lb-method, disable/enable-service, set-rate, site-freeze/thaw,
        site-down how=stop, kill-core by number, site-scenario: each applied
        without error and doing what its expectations say.
        """
        return self.runReady(os.path.join(FIXTURES, "operations.toml"))



class CommandTests(TestCase):
    """C{python -m gslb_twisted.scenario} (what the gslb-scenario script runs)."""

    timeout = 240

    async def command(self, *args: str):
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "gslb_twisted.scenario"] + list(args), env=dict(os.environ), path=ROOT,
        )
        return out.decode(), err.decode(), code

    async def test_exitStatus(self):
        """0 when every expectation holds, 1 when one does not; the report says which."""
        passing = os.path.abspath(self.mktemp())
        out, err, code = await self.command("run", os.path.join(FIXTURES, "quick.toml"), "--speed", "ci",
                                            "--report", passing)
        self.assertEqual(code, 0, out + err)
        self.assertIn("scenario quick: PASSED", out)
        self.assertTrue(os.path.exists(os.path.join(passing, "report.html")))
        self.assertIn("answers", err)  # the progress lines (not a terminal: plain lines)

        failing = os.path.abspath(self.mktemp())
        out, err, code = await self.command("run", os.path.join(FIXTURES, "failing.toml"), "--speed", "2", "--quiet",
                                            "--report", failing)
        self.assertEqual(code, 1, out + err)
        self.assertIn("scenario failing: FAILED", out)
        self.assertIn("FAIL  site east gets 90-100 % of the answers from start to end", out)
        self.assertEqual(err, "")
        with open(os.path.join(failing, "report.json")) as f:
            document = json.load(f)
        self.assertEqual([v["passed"] for v in document["expectations"]], [True, True, True, False])
        pids = {pid for pids in document["run"]["processes"].values() for pid in pids}
        pids.update(pid for row in document["cores"] for pid in row["pids"])
        await poll(lambda: not [pid for pid in pids if alive(pid)], 30, what="the failing run's processes to exit")

    async def test_badFileAndUsage(self):
        """A bad scenario file: exit 2 and a message naming the file, table and key; nothing runs."""
        path = os.path.abspath(self.mktemp() + ".toml")
        with open(path, "w") as f:
            f.write('[scenario]\nname = "x"\nduration = "long"\n')
        out, err, code = await self.command("run", path)
        self.assertEqual(code, 2)
        self.assertIn(f"gslb-scenario: {path}: [scenario]: key 'duration': expected a number of seconds", err)
        out, err, code = await self.command("run", path, "--speed", "fast")
        self.assertEqual(code, 2)
        self.assertIn("--speed", err)
        out, err, code = await self.command("check", os.path.join(ROOT, "fixtures", "scenarios", "site-outage.toml"))
        self.assertEqual(code, 0, err)
        self.assertIn("scenario site-outage", out)
