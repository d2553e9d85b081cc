"""
How the console shows SNMP sites: the metric source and table of each site,
an SNMP site's polling, and each value's source and age in `show metrics`.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from console.commands import parse, render

SITES = [
    {"name": "east", "ip": "127.0.0.2", "state": "UP", "source": "MEP", "table": None, "direction": "inbound",
     "master_core": 0, "epoch": 1, "seq": 9, "metrics_age": 0.2, "rtt_ms": 0.3},
    {"name": "legacy", "ip": "127.0.0.40", "state": "DOWN", "source": "SNMP", "table": "linux-host",
     "direction": "outbound", "master_core": 1, "epoch": 2, "seq": 4, "metrics_age": 5.1, "rtt_ms": None,
     "snmp_version": "2c", "snmp_port": 161, "snmp_polls": 40, "snmp_failures": 6, "snmp_skipped": 0,
     "snmp_oids": 8, "snmp_latency_ms": 1.5, "snmp_last_success_age": 6.0,
     "snmp_last_error": "no answer from the agent at 127.0.0.40:161 (2 tries of 0.4 s)"},
]

METRICS = {
    "site": "legacy", "core": 1, "epoch": 2, "seq": 4, "state": "UP", "source": "SNMP", "table": "linux-host",
    "services": [{
        "name": "legacy-web", "state": "UP", "connections": 12, "cpu": 25.0, "memory": 41.5,
        "sources": {"state": "SNMP", "connections": "SNMP", "cpu": "SNMP", "memory": "SNMP"},
        "ages": {"state": 0.3, "connections": 0.3, "cpu": 0.3, "memory": 7.3},
    }],
}


class SNMPRenderingTests(SynchronousTestCase):
    def test_sitesNameTheirSource(self):
        """Every site says where its metrics come from; an SNMP site, its table."""
        text = render(parse("show gslb site"), {"rows": SITES}, asJSON=False)
        header, east, legacy = text.splitlines()
        self.assertEqual(header.split()[:5], ["NAME", "IP", "STATE", "SOURCE", "TABLE"])
        self.assertEqual(east.split()[3:5], ["MEP", "-"])
        self.assertEqual(legacy.split()[3:5], ["SNMP", "linux-host"])
        self.assertNotIn("polls", text)  # the detail is for one site

    def test_oneSNMPSiteShowsItsPolling(self):
        text = render(parse("show gslb site legacy"), {"rows": SITES[1:]}, asJSON=False)
        lines = text.splitlines()
        self.assertEqual(lines[2], "snmp v2c port 161, table linux-host")
        self.assertIn("polls 40  failures 6", lines[3])
        self.assertIn("latency 1.5 ms", lines[3])
        self.assertEqual(lines[4], "  last error: no answer from the agent at 127.0.0.40:161 (2 tries of 0.4 s)")

    def test_metricsShowTheTablesColumnsAndAges(self):
        """The columns are the table's metrics; AGE the oldest; a lagging value is starred."""
        text = render(parse("show metrics legacy"), {"result": METRICS}, asJSON=False)
        head, header, row, note = text.splitlines()
        self.assertIn("source SNMP (table linux-host)", head)
        self.assertEqual(header.split(), ["NAME", "STATE", "CONNECTIONS", "CPU", "MEMORY", "AGE"])
        self.assertEqual(row.split(), ["legacy-web", "UP", "12", "25.0", "41.5*", "7.3"])
        self.assertTrue(note.startswith("* not refreshed by the last report"))

    def test_metricsJSONKeepsSourcesAndAges(self):
        import json

        value = json.loads(render(parse("show metrics legacy"), {"result": METRICS}, asJSON=True))
        self.assertEqual(value["services"][0]["sources"]["memory"], "SNMP")
        self.assertEqual(value["services"][0]["ages"]["memory"], 7.3)
