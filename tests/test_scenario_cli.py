"""
The command's parts that run no scenario (L{gslb_twisted.scenario.cli}):
C{check}, usage errors, a bad file (exit 2, the message naming file,
table and key), and the summary it prints after a run.
"""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.scenario.cli import main, summary
from gslb_twisted.scenario.runner import RunResult
from tests.test_scenario_report import sampleDocument

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


class CommandLineTests(SynchronousTestCase):
    def test_check(self):
        code, out, err = call("check", os.path.join(ROOT, "fixtures", "scenarios", "link-flap.toml"))
        self.assertEqual((code, err), (0, ""))
        self.assertIn("scenario link-flap: 45 s, 1 populations (240 q/s), 7 events, 10 expectations; "
                      "emulated sites: east, west, europe; ci_speed 3", out)

    def test_badFile(self):
        path = self.mktemp() + ".toml"
        with open(path, "w") as f:
            f.write('[scenario]\nname = "x"\nduration = 10\n[load]\nrate = "fast"\n')
        code, out, err = call("run", path)
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn(f"gslb-scenario: {path}: [scenario]: key 'topology': expected either", err)
        code, _, err = call("check", path + ".missing")
        self.assertEqual(code, 2)
        self.assertIn("file: cannot be read", err)

    def test_usage(self):
        self.patch(__import__("sys"), "stderr", io.StringIO())  # argparse writes its usage there
        self.assertEqual(call()[0], 2)
        self.assertEqual(call("run", "x.toml", "--speed", "0")[0], 2)
        self.assertEqual(call("run", "x.toml", "--speed", "fast")[0], 2)
        self.assertEqual(call("fly", "x.toml")[0], 2)


class SummaryTests(SynchronousTestCase):
    def test_summary(self):
        from tests.test_scenario_expect import scenario

        document = sampleDocument()
        result = RunResult(True, 0, document, {"html": "/r/report.html"})
        text = summary(result, scenario(""))
        lines = text.splitlines()
        self.assertEqual(lines[0], "scenario s: PASSED (speed x2, 30 s scenario, 20 s wall)")
        self.assertIn("  pass  no answer names site east from out + 0.5 s grace to back: 0 of 95 answers", lines)
        self.assertTrue(any(line.startswith("  failover t=10 site-down east: last answer naming it") for line in lines))
        self.assertIn("  queries per core: 0: 50.0 %, 1: 50.0 %", lines)
        self.assertEqual(lines[-1], "  html: /r/report.html")
        document["run"]["errors"] = ["site east exited"]
        document["events"][0]["error"] = "no such service"
        failed = summary(RunResult(False, 3, document), scenario(""))
        self.assertIn("FAILED", failed.splitlines()[0])
        self.assertIn("  error: site east exited", failed)
        self.assertIn("  event failed: t=10 site-down east: no such service", failed)
