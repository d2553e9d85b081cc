"""
The report (L{gslb_twisted.scenario.report}): the JSON document, the
standalone SVG chart (well-formed, every site a layer, events marked),
the self-contained HTML page, the progress line; and what the run polls
(L{gslb_twisted.scenario.observe}).  Synthetic data, no reactor.
"""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.scenario import report
from gslb_twisted.scenario.cli import Progress
from gslb_twisted.scenario.expect import evaluate, failovers, marks
from gslb_twisted.scenario.observe import CoreShares, SiteStates
from gslb_twisted.scenario.series import Series
from tests.test_scenario_expect import EAST, WEST, scenario, steady

SVG = "{http://www.w3.org/2000/svg}"


def sampleDocument(passed=True, events="", run=None):
    sc = scenario("""
[[expect]]
kind = "no-answer"
site = "east"
from = "out"
grace = 0.5
to = "back"

[[expect]]
kind = "share"
site = "east"
min = 40
max = 60
to = "out"
""", events=events)
    s = Series(sc.duration, sc.bucket, marks(sc), sc.addressesOf(), ["us", "eu"])
    steady(s, 0, 10, [EAST, WEST])
    steady(s, 10, 22, [WEST], population="eu")
    steady(s, 22, 30, [EAST, WEST])
    for i in range(5):
        s.lost(15 + i * 0.1, "eu")
    states = {"east": [[0.0, "UP", 0], [10.2, "DOWN", 0], [22.3, "UP", 1]], "west": [[0.0, "UP", 1]]}
    cores = CoreShares()
    cores.observe(0.0, [{"core": 0, "pid": 10, "queries": 100, "state": "up"}, {"core": 1, "pid": 11, "queries": 50, "state": "up"}])
    cores.observe(30.0, [{"core": 0, "pid": 10, "queries": 250, "state": "up"}, {"core": 1, "pid": 11, "queries": 200, "state": "up"}])
    events_ = [{"index": e.index, "at": e.at, "action": e.action, "id": e.id, "target": e.target, "label": e.label,
                "span": e.span, "applied_at": e.at + 0.001, "took_ms": 3.0, "error": None, "detail": None, "note": None}
               for e in sc.events]
    return report.document(
        scenario=sc, series=s, verdicts=evaluate(sc, s), events=events_, cores=cores.table(), coreSamples=cores.samples,
        siteStates=states, failovers=failovers(sc, s, states), loads={},
        run=run or {"speed": 2.0, "requested_speed": 2.0, "speed_note": None, "scaled": [
            {"what": "appliance.dead_interval", "nominal": 3.0, "value": 1.5, "floored": False, "speed": 2.0}],
            "started": "2026-11-26T10:00:00", "wall_seconds": 20.0, "startup_seconds": 3.0, "interrupted": False,
            "errors": [], "exit_code": 0},
        passed=passed,
    )


class DocumentTests(SynchronousTestCase):
    def test_structure(self):
        doc = sampleDocument()
        self.assertEqual(doc["schema"], "gslb-scenario-report/1")
        for key in ("scenario", "run", "totals", "expectations", "failovers", "cores", "populations", "events",
                    "site_states", "series"):
            self.assertIn(key, doc)
        self.assertEqual(doc["totals"]["answered"], 300)
        self.assertEqual(doc["totals"]["unanswered"], 5)
        self.assertEqual([p["name"] for p in doc["populations"]], ["us", "eu"])
        self.assertEqual(doc["populations"][1]["site_share"], {"west": 100.0})
        self.assertEqual(doc["cores"], [
            {"core": 0, "queries": 150, "share": 50.0, "pids": [10], "restarts": 0},
            {"core": 1, "queries": 150, "share": 50.0, "pids": [11], "restarts": 0},
        ])
        self.assertEqual([v["passed"] for v in doc["expectations"]], [True, True])
        self.assertEqual(doc["failovers"][0]["appliance_down_after"], 0.2)
        self.assertEqual(len(doc["series"]["t"]), 150)  # 30 s in buckets of 0.2 s
        json.dumps(doc)  # JSON-able as it is

    def test_write(self):
        directory = self.mktemp()
        files = report.write(directory, sampleDocument())
        self.assertEqual(sorted(files), ["html", "json", "svg"])
        with open(files["json"]) as f:
            self.assertEqual(json.load(f)["scenario"]["name"], "s")
        for path in files.values():
            self.assertTrue(os.path.getsize(path) > 1000, path)


class ChartTests(SynchronousTestCase):
    def test_wellFormedStandaloneSVG(self):
        svg = report.chartSVG(sampleDocument())
        root = ET.fromstring(svg)
        self.assertEqual(root.tag, SVG + "svg")
        self.assertNotIn("<script", svg)
        self.assertNotIn("href", svg)  # nothing fetched from elsewhere
        polygons = root.findall(SVG + "polygon")
        self.assertEqual([p.find(SVG + "title").text for p in polygons], ["east", "west", "unanswered"])
        texts = [t.text for t in root.iter(SVG + "text") if t.text]
        self.assertIn("site-down east", texts)
        self.assertIn("site-up east", texts)
        dashed = [line for line in root.iter(SVG + "line") if line.get("stroke-dasharray")]
        self.assertGreaterEqual(len(dashed), 2)
        # The state strips: east went DOWN (red) and came back.
        fills = [r.get("fill") for r in root.iter(SVG + "rect")]
        self.assertIn(report.STATE_COLORS["DOWN"], fills)

    def test_layersAreRealRatesStacked(self):
        doc = sampleDocument()
        layers = report.layers(doc)
        self.assertEqual([name for name, _, _ in layers], ["east", "west", "unanswered"])
        east = layers[0][2]
        # 2 answers per 0.2 s bucket, one for east, at speed 2 (0.1 s real): 10/s before the outage, 0 during it.
        self.assertAlmostEqual(east[0], 10.0)
        self.assertEqual(east[60], 0.0)
        merged = report.layers(doc, k=5)
        self.assertEqual(len(merged[0][2]), 30)
        self.assertAlmostEqual(merged[0][2][0], 10.0)
        self.assertEqual(report.columns(150), 1)
        self.assertEqual(report.columns(151), 2)

    def test_eventLabelsTakeFreeLanes(self):
        events = [{"at": t, "label": f"t={t} {text}", "error": None} for t, text in
                  ((1, "link-cut east"), (1.2, "link-cut west"), (1.4, "site-down europe"), (30, "kill-core core 0"),
                   (1, "set-metric east-web connections=5"))]
        labels = report.eventLabels(events, lambda t: 10 + t * 20, 700)
        lanes = [(text, lane) for _, lane, text, _, _, _ in labels]
        self.assertEqual(lanes, [("link-cut east (+1)", 0), ("link-cut west", 1), ("site-down europe", 2),
                                 ("kill-core core 0", 0)])
        right = report.eventLabels([{"at": 34, "label": "t=34 link-restore europe", "error": None}],
                                   lambda t: 10 + t * 20, 700)
        self.assertTrue(right[0][5])  # no room on the right: drawn left of its line

    def test_escapesNames(self):
        doc = sampleDocument()
        doc["scenario"]["name"] = "<b>&"
        svg = report.chartSVG(doc)
        ET.fromstring(svg)
        self.assertIn("&lt;b&gt;&amp;", svg)

    def test_niceStep(self):
        self.assertEqual([report.niceStep(s, 5) for s in (1, 7, 60, 480, 0)], [0.2, 2, 20, 100, 1.0])


class PageTests(SynchronousTestCase):
    def test_selfContained(self):
        doc = sampleDocument(events='[[event]]\nat = 5\naction = "ramp"\nservice = "west-web"\nmetric = "connections"\n'
                                    'from = 0\nto = 9\nover = 3\n')
        page = report.html(doc)
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertNotIn("<script", page)
        self.assertNotIn("http://", page.replace("http://www.w3.org/2000/svg", ""))
        self.assertNotIn("https://", page)
        for text in ("PASSED", "<svg", "Expectations", "Failover times", "Queries per core", "Clients", "Timeline",
                     "Time scaling", "appliance.dead_interval", "no answer names site east", "ramp west-web"):
            self.assertIn(text, page)

    def test_failedRunSaysWhy(self):
        doc = sampleDocument(passed=False, run={"speed": 1, "scaled": [], "interrupted": False,
                                                 "errors": ["site east exited <oops>"], "wall_seconds": 1})
        doc["expectations"][0]["passed"] = False
        page = report.html(doc)
        self.assertIn("FAILED", page)
        self.assertIn("site east exited &lt;oops&gt;", page)
        self.assertIn('<span class="fail">FAIL</span>', page)
        self.assertIn("Run at x1: nothing scaled.", page)


class ProgressTests(SynchronousTestCase):
    status = {"phase": "running", "t": 12.34, "duration": 40, "answered": 4812, "unanswered": 2,
              "shares": {"east": 48, "west": 52}, "speed": 2.0, "events_done": 3, "events": 6}

    def test_line(self):
        self.assertEqual(report.progressLine(self.status, 200),
                         "[######--------------]  12.3/40 s x2  answers 4,812  unanswered 2  events 3/6  east 48% west 52%")
        self.assertEqual(len(report.progressLine(self.status, 30)), 30)
        self.assertEqual(report.progressLine({"phase": "starting"}), "starting the appliance and the sites...")
        self.assertIn("x2 (draining)  answers", report.progressLine(dict(self.status, phase="draining")))

    def test_terminalRedrawsInPlace(self):
        out = io.StringIO()
        progress = Progress(out, tty=True)
        progress(self.status)
        progress(dict(self.status, t=13.0))
        progress.done()
        text = out.getvalue()
        self.assertEqual(text.count("\r"), 4)  # two redraws, then the line wiped
        self.assertNotIn("\n", text)

    def test_pipeGetsAPlainLineNowAndThen(self):
        out = io.StringIO()
        now = [0.0]
        progress = Progress(out, tty=False, every=5.0, clock=lambda: now[0])
        for i in range(40):  # 10 s of ticks every 0.25 s
            now[0] = i * 0.25
            progress(dict(self.status, t=i * 0.5))
        progress(dict(self.status, phase="draining"))
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 3)  # at 0 and 5 s, and when draining begins
        self.assertIn("(draining)", lines[-1])


class ObserveTests(SynchronousTestCase):
    def test_coreSharesAcrossARespawn(self):
        cores = CoreShares()
        cores.observe(0.0, [{"core": 0, "pid": 10, "queries": 500, "state": "up"},
                            {"core": 1, "pid": 11, "queries": 400, "state": "up"}])
        cores.observe(5.0, [{"core": 0, "pid": 10, "queries": 700, "state": "up"},
                            {"core": 1, "pid": 11, "queries": 600, "state": "up"}])
        # Core 0 killed: the slot starts again under a new pid, still showing the old count.
        cores.observe(6.0, [{"core": 0, "pid": 12, "queries": 700, "state": "starting", "restarts": 1},
                            {"core": 1, "pid": 11, "queries": 700, "state": "up"}])
        cores.observe(9.0, [{"core": 0, "pid": 12, "queries": 40, "state": "up", "restarts": 1},
                            {"core": 1, "pid": 11, "queries": 800, "state": "up"}])
        self.assertEqual(cores.perCore(), {0: 240, 1: 400})
        self.assertEqual(cores.table()[0], {"core": 0, "queries": 240, "share": 37.5, "pids": [10, 12], "restarts": 1})
        self.assertEqual(cores.allPids(), {10, 11, 12})
        self.assertEqual(len(cores.samples), 4)

    def test_siteStates(self):
        states = SiteStates()
        states.observe(0.0, {"east": {"state": "UP", "master_core": 0}})
        states.observe(1.0, {"east": {"state": "UP", "master_core": 0}})
        states.observe(2.0, {"east": {"state": "DOWN", "master_core": 0}})
        states.observe(3.0, {"east": {"state": "UP", "master_core": 1}})
        self.assertEqual(states.transitions["east"], [[0.0, "UP", 0], [2.0, "DOWN", 0], [3.0, "UP", 1]])
        self.assertEqual([states.stateAt("east", t) for t in (-1, 0.5, 2.5, 9)], [None, "UP", "DOWN", "UP"])
