"""
Edge cases of the decision engine found in review (issue 4): each test
states what a user expects (persistence within the idle timeout on every
core, hashing through a backup vserver, ECS scope, bounded caches, RTT
re-measured, sessions reaching every site, ...).  Deterministic:
SynchronousTestCase, fake clocks, in-memory MEP sessions.
"""

from __future__ import annotations

import json
import tomllib

import dns.message
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.core.gslb import PROBE_RETRY, TOPIC_PERSIST, TOPIC_PROBE, CoreGSLB
from gslb_twisted.dns.authority import Authority
from gslb_twisted.lb import choosers
from gslb_twisted.metrics import UP, MetricTable

from tests.test_core_decisions import DECISIONS
from tests.test_core_gslb import CORE, SECRET, TOPOLOGY, GSLBTestCase
from tests.test_lb_choosers import Chooser, context
from tests.test_lb_plans import down, emptyTable, plan, reportAll, topology, up, vserver


class _CoreHarness(GSLBTestCase):
    """One core mastering west over an in-memory MEP session (as in test_core_decisions)."""

    def setUp(self):
        super().setUp()
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


class BackupVServerSourceIPHashTests(SynchronousTestCase):
    """
    Finding: a backup vserver whose lb_method is SOURCEIPHASH does not hash.
    L{buildChooser} builds the ring from C{plan.everyone}, which for a plan
    answered by the backup vserver holds the *asked* vserver's services, so
    no up (backup) service is on the ring and every client falls back to
    round robin.
    """

    def setUp(self):
        self.t = topology(
            vserver("www", services=("east-a",), lb_method="ROUNDROBIN", backup_vserver="dr"),
            vserver("dr", services=("west-a", "west-b", "eu-a"), lb_method="SOURCEIPHASH"),
        )
        self.table = emptyTable(self.t)
        reportAll(self.table, {"east-a": down(), "west-a": up(), "west-b": up(), "eu-a": up()})

    def test_sameClientSameAnswerThroughBackupVServer(self):
        through = Chooser(plan(self.t, self.table, "www"), context())
        self.assertEqual(through.plan.method, "SOURCEIPHASH")
        picks = {chosen for (chosen,) in through.many("10.0.0.1", 6)}
        # Expected: one service, as when "dr" is asked directly.
        self.assertEqual(len(picks), 1, f"SOURCEIPHASH via backup vserver rotated over {sorted(picks)}")

    def test_explainDoesNotReportAFallback(self):
        through = Chooser(plan(self.t, self.table, "www"), context())
        _, details = through.peek("10.0.0.1")
        self.assertFalse(details.get("fallback"), "every client is 'not placed' by SOURCEIPHASH via a backup vserver")


class PerClientCacheBoundTests(SynchronousTestCase):
    """
    Finding: L{choosers._PerClient} bounds C{_byAddress} by CACHE_LIMIT but
    never C{_byClass}: with SOURCEIPHASH (default netmask /32) every
    distinct client adds an entry (sets, indices, Rotation) for the plan's
    lifetime, and a SOURCEIPHASH plan does not change with metrics.
    """

    def test_byClassBounded(self):
        t = topology(vserver("www", services=("west-a", "west-b", "eu-a"), lb_method="SOURCEIPHASH"))
        table = emptyTable(t)
        reportAll(table, {"west-a": up(), "west-b": up(), "eu-a": up()})
        chooser = Chooser(plan(t, table), context()).chooser
        for i in range(choosers.CACHE_LIMIT + 5000):
            chooser.choose(1, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        self.assertLessEqual(len(chooser._byClass), choosers.CACHE_LIMIT)


RTT_TOPOLOGY = TOPOLOGY + """
[[vserver]]
name = "near"
domains = ["near.t.gslb"]
lb_method = "RTT"
backup_lb_method = "ROUNDROBIN"
tolerance = 10
services = ["east-web", "west-web"]
"""


class RTTTieRotationTests(SynchronousTestCase):
    """
    Finding: ties within the RTT tolerance are not broken fairly.  The core's
    plan key for RTT includes every candidate site's metric version, so any
    metric delta (a site's random walk, every metrics_interval) rebuilds the
    chooser and its tie rotation restarts at position 0: a client network
    that asks less often than the sites report (any resolver honouring a
    5 s TTL) always gets the first service of the tie.
    """

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.topology = parseTopology(tomllib.loads(RTT_TOPOLOGY), "t.toml")
        self.authority = Authority.fromTopology(self.topology)
        self.gslb = CoreGSLB(
            self.clock, CORE, self.topology, self.authority, lambda *a, **k: None, lambda *a, **k: None, secret=SECRET
        )
        self.report(1)

    def report(self, connections):
        now = self.clock.seconds()
        table = self.gslb.table
        table.recordAsMaster(
            "east", state=UP, replace=True, now=now, probes={"10.4.4.0/24": 20.0},
            services={"east-web": {"state": UP, "connections": connections}, "east-api": {"state": UP}},
        )
        table.recordAsMaster(
            "west", state=UP, replace=True, now=now, probes={"10.4.4.0/24": 25.0},
            services={"west-web": {"state": UP, "connections": 1}},
        )
        self.gslb.replan()

    def ask(self):
        reply = self.authority.respond(dns.message.make_query("near.t.gslb", "A").to_wire(), ("10.4.4.4", 5300), False)
        return tuple(item.address for rrset in dns.message.from_wire(reply).answer for item in rrset)

    def test_tieRotatesWithoutMetricChanges(self):
        # Control: with no metric change between queries the tie rotates.
        self.assertEqual(len({self.ask() for _ in range(4)}), 2)

    def test_tieRotatesAcrossMetricUpdates(self):
        seen = set()
        for step in range(6):
            seen.add(self.ask())
            # The sites report (a connection count moved); the core replans.
            self.clock.advance(1)
            self.report(2 + step)
        self.assertEqual(len(seen), 2, f"RTT tie within tolerance always answered {seen}")


class RTTReprobeTests(_CoreHarness):
    """
    Finding: an RTT measurement is never refreshed.  DynamicProximity only
    asks for a probe when no site has any measurement for the network, and
    the sites' probes in the metric table never age, so after the first
    answer a site's RTT to that network is used forever (a site emulator's
    `set rtt` pin, or a real path change, never reaches the appliance;
    NetScaler re-probes an LDNS entry after its timeout).
    """

    def test_measuredNetworkProbedAgainLater(self):
        self.gslb.start()
        self.addCleanup(self.gslb.stop)
        self.askFrom("10.4.4.4", "fast.t.gslb")
        self.clock.advance(0)
        self.assertEqual(len(self.bodies(TOPIC_PROBE)), 1)
        self.site.sendRTT({"10.4.4.0/24": 12.5})
        self.pump.flush()
        self.clock.advance(0)
        del self.published[:]
        # Ten minutes of a live session (keepalives pumped), the client
        # network asking all the while.
        for _ in range(int(20 * PROBE_RETRY)):
            self.clock.advance(1)
            self.pump.flush()
            self.askFrom("10.4.4.4", "fast.t.gslb")
        self.clock.advance(0)
        # West is still up and RTT still decides (no fallback)...
        explained = self.gslb.explain("fast.t.gslb", "A", "10.4.4.4")
        self.assertEqual((explained["method"], explained["fallback"]), ("RTT", False))
        # ... and the site was asked to measure again (by its master, directly).
        self.pump.flush()
        self.assertGreater(self.siteHandler.probed.count(["10.4.4.0/24"]), 1, "the RTT of 10.4.4.0/24 was never measured again")

    def test_siteProbesBounded(self):
        """The probes a core keeps per site grow with every client network ever seen."""
        table = MetricTable(["west"])
        networks = {f"10.{(i >> 8) & 255}.{i & 255}.0/24": 1.0 for i in range(choosers.CACHE_LIMIT + 10)}
        table.recordAsMaster("west", state=UP, probes=networks, now=0.0)
        table.recordAsMaster("west", state=UP, probes={"192.0.2.0/24": 1.0}, now=1e6)
        self.assertLessEqual(len(table["west"].probes), choosers.CACHE_LIMIT)


class SessionExchangeTests(_CoreHarness):
    """
    Finding: persistence sessions reach a site only when created (or
    re-shared after a use) by the core that masters that site.  Entries that
    other cores create arrive over the hub and are merged, but never sent to
    the sites this core masters, so each site sees only its master core's
    share of the appliance's sessions.
    """

    def test_entryFromAnotherCoreSentToMasteredSite(self):
        wire = {"vserver": "sticky", "network": "10.9.9.0/24", "service": "fixed-web", "version": 1,
                "origin": "gslb1/0", "ttl": 50}
        self.gslb.delivered(0, TOPIC_PERSIST, json.dumps({"sessions": [wire]}).encode())
        self.gslb.start()
        self.clock.advance(1)
        self.pump.flush()
        sent = [s["network"] for s in getattr(self.siteHandler, "sessions", [])]
        self.assertIn("10.9.9.0/24", sent, "west (mastered here) never got the entry core 0 created")
        self.successResultOf(self.gslb.stop())


class CrossCoreIdleTimeoutTests(SynchronousTestCase):
    """
    Finding: SOURCEIP persistence is an idle timeout, but a use on one core
    is shared with the others only once per timeout/4
    (L{PersistenceTable.touch}); another core's copy therefore lapses up to
    timeout/4 early.  A client whose next query, still within the timeout
    of its last use, lands on that core gets a new entry (next version,
    chosen by the method now) which then wins on every core: the client is
    moved although its persistence should hold.
    """

    TIMEOUT = 120

    def setUp(self):
        self.t = topology(
            vserver("www", services=("east-a", "west-a"), lb_method="LEASTCONNECTION", persistence="SOURCEIP",
                    persist_mask="255.255.255.0", persistence_timeout=self.TIMEOUT),
        )
        self.table = emptyTable(self.t)
        from twisted.internet.task import Clock

        from gslb_twisted.lb.persistence import PersistenceTable

        self.clock = Clock()
        self.clock.advance(1000.0)
        self.tables = [PersistenceTable("gslb1/0"), PersistenceTable("gslb1/1")]

    def choosers(self):
        plan_ = plan(self.t, self.table, "www", now=self.clock.seconds())
        return [Chooser(plan_, context(clock=self.clock, persistence=table)) for table in self.tables]

    def share(self):
        from tests.test_lb_choosers import share

        share(self.tables[0], self.tables[1], self.clock.seconds())
        share(self.tables[1], self.tables[0], self.clock.seconds())

    def test_clientActiveWithinTimeoutKeepsItsServiceOnEveryCore(self):
        now = self.clock.seconds()
        reportAll(self.table, {"east-a": up(connections=1), "west-a": up(connections=9)}, now=now)
        core0, core1 = self.choosers()
        (first,) = core0.choose("10.1.0.7")
        self.assertEqual(first, "east-a")
        self.share()
        self.assertEqual(core1.choose("10.1.0.8"), ("east-a",))
        self.share()
        # Load moves; the client keeps asking (core 0), its entry holds.
        self.clock.advance(29)
        reportAll(self.table, {"east-a": up(connections=9), "west-a": up(connections=1)}, now=self.clock.seconds())
        core0, core1 = self.choosers()
        self.assertEqual(core0.choose("10.1.0.7"), ("east-a",))
        self.share()
        # 95 s after its last query (< 120 s), the client lands on core 1.
        self.clock.advance(95)
        reportAll(self.table, {"east-a": up(connections=9), "west-a": up(connections=1)}, now=self.clock.seconds())
        core0, core1 = self.choosers()
        self.assertEqual(core1.choose("10.1.0.7"), ("east-a",), "persistence lost on core 1 within the idle timeout")


DUAL_TOPOLOGY = TOPOLOGY + """
[[service]]
name = "fixed-v6"
site = "fixed"
ip = "2001:db8::10"

[[vserver]]
name = "dual"
domains = ["dual.t.gslb"]
services = ["fixed-web", "fixed-v6"]
"""


class ExplainOtherFamilyTests(SynchronousTestCase):
    """
    Finding (issue 4, item 7): `resolve` must list excluded services with
    the reason, "other family" among them.  L{candidatesOf} skips services
    of the other family silently, so they appear nowhere in the explanation.
    """

    def test_otherFamilyListedAsExcluded(self):
        clock = MemoryReactorClock()
        t = parseTopology(tomllib.loads(DUAL_TOPOLOGY), "t.toml")
        gslb = CoreGSLB(clock, CORE, t, Authority.fromTopology(t), lambda *a, **k: None, lambda *a, **k: None,
                        secret=SECRET)
        gslb.assigned("fixed", 1)
        gslb.replan()
        result = gslb.explain("dual.t.gslb", "A", "10.0.0.1")
        self.assertEqual(result["answer"], ["203.0.113.10"])
        excluded = {row["service"]: row["reason"] for row in result["excluded"]}
        self.assertIn("fixed-v6", excluded, "the IPv6 service is not reported as excluded (other family)")


class DownAddressWhileAServiceIsUpTests(SynchronousTestCase):
    """
    Finding (SPEC 4: "While any service is up, never an address of a
    service or site known to be DOWN"): with every IPv4 service DOWN and an
    IPv6 service of the same vserver UP, an A query gets the DOWN IPv4
    address (down_response "all"), though the vserver is UP.
    """

    def test_noDownAddressWhileTheVServerHasAServiceUp(self):
        t = topology(vserver("www", services=("east-a", "east-6"), lb_method="ROUNDROBIN"))
        table = emptyTable(t)
        reportAll(table, {"east-a": down(), "east-6": up()})
        answered = {name for chosen in plan(t, table, "www", rdtype=1).sets for name in chosen}
        self.assertNotIn("east-a", answered, "a DOWN service answered while east-6 is UP")


class HashRingWalkCostTests(SynchronousTestCase):
    """
    Finding (hot path): L{HashRing.walk} does not stop once every up
    service is chosen.  With answers > services up (answers = 2, one
    service left up) each new client walks the whole ring: 64 points per
    bound service, 64 000 steps (~8 ms measured) for 1 000 services, on
    the DNS hot path, per client network.
    """

    def test_walkStopsWhenNoMoreServicesCanBeFound(self):
        from gslb_twisted.lb.methods import HashRing

        class Counting(dict):
            probes = 0

            def __contains__(self, key):
                Counting.probes += 1
                return dict.__contains__(self, key)

        ring = HashRing([f"s{i}" for i in range(1000)])
        chosen = ring.walk(12345, Counting({"s5": object()}), 2)
        self.assertEqual(chosen, ("s5",))
        self.assertLess(Counting.probes, 1000, f"{Counting.probes} ring steps for one new client")


class ClientSubnetScopeTests(SynchronousTestCase):
    """
    Finding: answers now depend on the EDNS Client Subnet (STATICPROXIMITY,
    and SOURCEIPHASH / RTT / SOURCEIP persistence), but the reply still
    echoes the option with SCOPE PREFIX-LENGTH 0, which RFC 7871 (7.2.1,
    7.3.1) defines as "suitable for all addresses in FAMILY": an ECS-aware
    resolver caches the Boston client's answer and gives it to San Jose.
    """

    def setUp(self):
        from tests.test_lb_choosers import LOCATIONS

        self.clock = MemoryReactorClock()
        self.t = topology(vserver("near", services=("east-a", "west-a"), lb_method="STATICPROXIMITY"))
        self.authority = Authority.fromTopology(self.t)
        self.gslb = CoreGSLB(self.clock, CORE, self.t, self.authority, lambda *a, **k: None, lambda *a, **k: None,
                             secret=SECRET, locations=LOCATIONS)
        reportAll(self.gslb.table, {"east-a": up(), "west-a": up()}, now=self.clock.seconds())
        self.gslb.replan()

    def ask(self, network):
        import dns.edns

        query = dns.message.make_query("near.t.gslb", "A")
        query.use_edns(0, options=[dns.edns.ECSOption(network, 24)])
        reply = dns.message.from_wire(self.authority.respond(query.to_wire(), ("192.0.2.53", 5300), False))
        (ecs,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
        return [i.address for rrset in reply.answer for i in rrset], ecs.scopelen

    def test_tailoredAnswerHasNonZeroScope(self):
        boston, bostonScope = self.ask("10.1.0.0")
        sanJose, sanJoseScope = self.ask("10.3.0.0")
        self.assertNotEqual(boston, sanJose)  # the answer depends on the subnet ...
        self.assertNotEqual((bostonScope, sanJoseScope), (0, 0), "... but the reply says it does not (scope 0)")
