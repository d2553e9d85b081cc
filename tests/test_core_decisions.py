"""
The decision engine inside one core (L{CoreGSLB}): persistence entries
shared with the other cores and the sites, RTT probes asked for and their
reports recorded, runtime changes, explain.  Deterministic: a fake hub, MEP
sessions over in-memory transports, a fake clock.
"""

from __future__ import annotations

import json
import tomllib

import dns.message

from gslb_twisted.config import parseTopology
from gslb_twisted.core.gslb import (
    TOPIC_DELTA,
    TOPIC_PERSIST,
    TOPIC_PERSIST_REQUEST,
    TOPIC_PROBE,
)
from gslb_twisted.dns.authority import Authority
from tests.test_core_gslb import CORE, SECRET, TOPOLOGY, GSLBTestCase

DECISIONS = TOPOLOGY + """
[[vserver]]
name = "sticky"
domains = ["sticky.t.gslb"]
lb_method = "ROUNDROBIN"
services = ["east-web", "west-web", "fixed-web"]
persistence = "SOURCEIP"
persistence_timeout = 60
persist_mask = "255.255.255.0"

[[vserver]]
name = "fast"
domains = ["fast.t.gslb"]
lb_method = "RTT"
backup_lb_method = "ROUNDROBIN"
services = ["west-web", "east-web"]
"""

WEST_WEB = "198.51.100.10"
FIXED_WEB = "203.0.113.10"


class CoreDecisionTests(GSLBTestCase):
    def setUp(self):
        super().setUp()
        from gslb_twisted.core.gslb import CoreGSLB

        self.topology = parseTopology(tomllib.loads(DECISIONS), "t.toml")
        self.authority = Authority.fromTopology(self.topology)
        self.gslb = CoreGSLB(self.clock, CORE, self.topology, self.authority, self.publish, self.callHub, secret=SECRET)
        self.gslb.assigned("fixed", 1)
        self.appliance, self.site, self.siteHandler, self.pump = self.masterWest()
        self.pump.flush()
        self.clock.advance(0)
        del self.published[:]

    def askFrom(self, client, name, qtype="A"):
        reply = self.authority.respond(dns.message.make_query(name, qtype).to_wire(), (client, 5300), False)
        return [item.address for rrset in dns.message.from_wire(reply).answer for item in rrset]

    def bodies(self, topic):
        return [(body, target) for t, body, target in self.published if t == topic]

    # --- persistence ---------------------------------------------------------------

    def test_newEntrySharedWithCoresAndSites(self):
        (first,) = self.askFrom("10.1.2.3", "sticky.t.gslb")
        self.assertEqual(self.bodies(TOPIC_PERSIST), [])
        self.clock.advance(0)
        ((body, target),) = self.bodies(TOPIC_PERSIST)
        self.assertIsNone(target)
        (entry,) = body["sessions"]
        service = {v: k for k, v in self.gslb.addressOf.items()}[first]
        self.assertEqual(
            (entry["vserver"], entry["network"], entry["service"], entry["version"], entry["origin"]),
            ("sticky", "10.1.2.0/24", service, 1, "gslb1/1"),
        )
        # The same network keeps it, though round robin would move on.
        for host in range(10, 16):
            self.assertEqual(self.askFrom(f"10.1.2.{host}", "sticky.t.gslb"), [first])
        # And the site mastered here got it over MEP.
        self.pump.flush()
        self.assertEqual([s["network"] for s in self.siteHandler.sessions], ["10.1.2.0/24"])

    def test_entryFromAnotherCoreHonoured(self):
        wire = {"vserver": "sticky", "network": "10.9.9.0/24", "service": "fixed-web", "version": 1, "origin": "gslb1/0", "ttl": 50}
        self.gslb.delivered(0, TOPIC_PERSIST, json.dumps({"sessions": [wire]}).encode())
        for host in range(1, 6):
            self.assertEqual(self.askFrom(f"10.9.9.{host}", "sticky.t.gslb"), [FIXED_WEB])
        self.clock.advance(0)
        # Nothing of ours to share: it was not made here.
        self.assertEqual(self.bodies(TOPIC_PERSIST), [])

    def test_malformedEntryLoggedNotRaised(self):
        self.gslb.delivered(0, TOPIC_PERSIST, json.dumps({"sessions": [{"vserver": "sticky"}]}).encode())
        self.assertTrue([e for e in self.events if e.get("log_format", "").startswith("ignored a malformed persistence")])

    def test_sessionsFromASiteAdoptedAndShared(self):
        wire = {"vserver": "sticky", "network": "10.7.7.0/24", "service": "west-web", "version": 3, "origin": "other/0", "ttl": 30}
        self.site.sendSessions([wire])
        self.pump.flush()
        self.assertEqual(self.askFrom("10.7.7.7", "sticky.t.gslb"), [WEST_WEB])
        ((body, target),) = self.bodies(TOPIC_PERSIST)
        self.assertEqual((body["sessions"][0]["origin"], target), ("other/0", None))

    def test_joiningCoreGetsEverything(self):
        self.askFrom("10.1.2.3", "sticky.t.gslb")
        self.gslb.delivered(0, TOPIC_PERSIST_REQUEST, b"{}")
        ((body, target),) = self.bodies(TOPIC_PERSIST)
        self.assertEqual((target, body["snapshot"], len(body["sessions"])), (0, True, 1))

    def test_entriesExpire(self):
        self.askFrom("10.1.2.3", "sticky.t.gslb")
        self.gslb.start()
        self.assertEqual(self.gslb.persistence.count(), 1)
        self.clock.advance(60)
        self.assertEqual(self.gslb.persistence.count(), 1)  # a grace of timeout/4
        self.clock.advance(16)
        self.assertEqual(self.gslb.persistence.count(), 0)

    def test_explainChangesNothing(self):
        result = self.gslb.explain("sticky.t.gslb", "A", "10.3.3.3")
        self.assertEqual(result["persistence"], "miss")
        self.assertEqual(result["rcode"], "NOERROR")
        self.assertEqual(len(result["answer"]), 1)
        self.clock.advance(0)
        self.assertEqual((self.gslb.persistence.count(), self.bodies(TOPIC_PERSIST)), (0, []))
        # What explain said is what the query gets.
        self.assertEqual(self.askFrom("10.3.3.3", "sticky.t.gslb"), result["answer"])
        self.assertEqual(self.gslb.explain("sticky.t.gslb", "A", "10.3.3.9")["persistence"], "hit")

    # --- RTT -------------------------------------------------------------------------

    def test_unmeasuredNetworkProbedOnce(self):
        self.askFrom("10.4.4.4", "fast.t.gslb")
        self.askFrom("10.4.4.5", "fast.t.gslb")
        self.clock.advance(0)
        ((body, target),) = self.bodies(TOPIC_PROBE)
        self.assertEqual((body["networks"], target), (["10.4.4.0/24"], None))
        self.pump.flush()
        self.assertEqual(self.siteHandler.probed, [["10.4.4.0/24"]])

    def test_probeFromAnotherCoreSentToMasteredSites(self):
        self.gslb.delivered(0, TOPIC_PROBE, json.dumps({"networks": ["10.5.0.0/24"]}).encode())
        self.pump.flush()
        self.assertEqual(self.siteHandler.probed, [["10.5.0.0/24"]])

    def test_reportedRTTRecordedPropagatedAndUsed(self):
        before = self.gslb.explain("fast.t.gslb", "A", "10.4.4.4")
        self.assertEqual((before["method"], before["fallback"]), ("ROUNDROBIN", True))
        self.site.sendRTT({"10.4.4.0/24": 12.5})
        self.pump.flush()
        (delta,) = [body for body, _ in self.bodies(TOPIC_DELTA) if "probes" in body["changes"]]
        self.assertEqual((delta["site"], delta["changes"]["probes"]), ("west", {"10.4.4.0/24": 12.5}))
        self.assertEqual(self.gslb.table["west"].probes, {"10.4.4.0/24": 12.5})
        self.clock.advance(0)
        after = self.gslb.explain("fast.t.gslb", "A", "10.4.4.4")
        self.assertEqual((after["method"], after["fallback"], after["answer"]), ("RTT", False, [WEST_WEB]))
        self.assertEqual(after["candidates"][0]["rtt_ms"], 12.5)

    # --- runtime changes -----------------------------------------------------------------

    def test_applyRuntime(self):
        self.gslb.applyRuntime({"lb_method": {"www": "STATIC"}, "disabled": ["west-web"]})
        self.assertEqual(self.gslb.runtimeState, {"lb_method": {"www": "STATIC"}, "disabled": ["west-web"]})
        rows = {row["name"]: row for row in self.gslb.inspect("vservers")}
        self.assertEqual((rows["www"]["lb_method"], rows["www"]["configured_lb_method"]), ("STATIC", "ROUNDROBIN"))
        services = {s["name"]: s for s in rows["sticky"]["services"]}
        self.assertEqual((services["west-web"]["state"], services["west-web"]["enabled"]), ("OUT OF SERVICE", False))
        for host in range(1, 10):
            self.assertNotIn(WEST_WEB, self.askFrom(f"10.6.{host}.1", "sticky.t.gslb"))
        # The whole state replaces the previous one.
        self.gslb.applyRuntime({"lb_method": {}, "disabled": []})
        rows = {row["name"]: row for row in self.gslb.inspect("vservers")}
        self.assertEqual(rows["www"]["lb_method"], "ROUNDROBIN")
        self.assertIn(WEST_WEB, {a for host in range(1, 30) for a in self.askFrom(f"10.8.{host}.1", "sticky.t.gslb")})
