"""
Tests for L{gslb_twisted.lb.decision}: what a vserver answers, as a pure
function of the topology and the metric table, and L{Authority.applyPlan}
carrying a plan into the DNS answers (fast path and slow path alike).
"""

import dataclasses
import tomllib
from types import MappingProxyType

import dns.message
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import ConfigError, parseTopology
from gslb_twisted.dns.authority import SERVFAIL as RCODE_SERVFAIL, Authority
from gslb_twisted.lb.decision import EMPTY, SERVFAIL, planVServer, serviceState
from gslb_twisted.lb.methods import LEAST_METRIC, Candidate, groupSets, leastMetricGroups, roundRobinSets


def leastMetricSets(candidates, metric, answers):
    return groupSets(leastMetricGroups(candidates, metric), answers)
from gslb_twisted.metrics import DOWN, UP, MetricTable

DEAD = 3.0
NOW = 1000.0
CLIENT = ("203.0.113.77", 53000)

BASE = """
[appliance]
name = "gslb1"
ip = "127.0.0.5"
metrics_interval = 1.0
dead_interval = 3.0

[[zone]]
name = "t.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"

[[site]]
name = "west"
ip = "127.0.0.9"

[[site]]
name = "fixed"
ip = "127.0.0.20"
metric_exchange = false

[[service]]
name = "east-a"
site = "east"
ip = "192.0.2.1"

[[service]]
name = "east-b"
site = "east"
ip = "192.0.2.2"

[[service]]
name = "west-a"
site = "west"
ip = "198.51.100.1"

[[service]]
name = "west-b"
site = "west"
ip = "198.51.100.2"

[[service]]
name = "fixed-a"
site = "fixed"
ip = "203.0.113.1"

[[service]]
name = "east-6"
site = "east"
ip = "2001:db8::1"

[[service]]
name = "west-6"
site = "west"
ip = "2001:db8::2"
"""

ADDRESS = {
    "east-a": "192.0.2.1",
    "east-b": "192.0.2.2",
    "west-a": "198.51.100.1",
    "west-b": "198.51.100.2",
    "fixed-a": "203.0.113.1",
    "east-6": "2001:db8::1",
    "west-6": "2001:db8::2",
}

SITE_OF = {name: name.split("-")[0] for name in ADDRESS}


def topology(vservers: str):
    return parseTopology(tomllib.loads(BASE + vservers), "t.toml")


def vserverText(name="www", services=("east-a", "east-b", "west-a"), **options) -> str:
    lines = ["[[vserver]]", f'name = "{name}"', f'domains = ["{name}.t.gslb"]']
    for key, value in options.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    bindings = ", ".join(
        f'{{ name = "{s[0]}", weight = {s[1]} }}' if isinstance(s, tuple) else f'"{s}"' for s in services
    )
    lines.append(f"services = [{bindings}]")
    return "\n".join(lines) + "\n\n"


def emptyTable(t) -> MetricTable:
    return MetricTable(site.name for site in t.sites)


def report(table: MetricTable, site: str, services: dict, *, state=UP, now=NOW) -> None:
    """The site's master records C{services} ({name: {metric: value}}) at C{now}."""
    table.recordAsMaster(site, state=state, services=services, replace=True, now=now)


def up(**metrics):
    return {"state": UP, **metrics}


def plan(t, table, name="www", rdtype=1, now=NOW):
    return planVServer(t.vserverByName[name], t, table, rdtype, now, DEAD)


def servicesIn(sets) -> set:
    return {name for chosen in sets for name in chosen}


class ServiceStateTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(vserverText())
        self.table = emptyTable(self.t)

    def state(self, name):
        return serviceState(self.t.serviceByName[name], self.t, self.table)

    def test_staticSiteIsUp(self):
        """A site without metric exchange counts as UP, whatever the table says."""
        self.assertEqual(self.state("fixed-a"), (UP, "static site"))
        self.table["fixed"].state = DOWN
        self.assertEqual(self.state("fixed-a")[0], UP)

    def test_unknownSiteIsDown(self):
        state, reason = self.state("east-a")
        self.assertEqual(state, DOWN)
        self.assertIn("not connected", reason)

    def test_downSiteIsDownEvenIfServiceReportedUp(self):
        report(self.table, "east", {"east-a": up()}, state=DOWN)
        state, reason = self.state("east-a")
        self.assertEqual(state, DOWN)
        self.assertIn("east is DOWN", reason)

    def test_serviceNotReported(self):
        report(self.table, "east", {"east-b": up()})
        self.assertEqual(self.state("east-a"), (DOWN, "not reported by its site"))
        self.assertEqual(self.state("east-b"), (UP, "up"))

    def test_serviceReportedDown(self):
        report(self.table, "east", {"east-a": {"state": DOWN}, "east-b": {}})
        self.assertEqual(self.state("east-a"), (DOWN, "reported DOWN by its site"))
        # No state at all is not UP either.
        self.assertEqual(self.state("east-b")[0], DOWN)


class RoundRobinTests(SynchronousTestCase):
    def test_weights(self):
        """Each UP service appears in proportion to its weight, DOWN ones never."""
        t = topology(vserverText(services=(("east-a", 2), ("east-b", 1), ("west-a", 3)), lb_method="ROUNDROBIN"))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(), "east-b": up()})
        report(table, "west", {"west-a": {"state": DOWN}})
        result = plan(t, table)
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertFalse(result.fallback)
        self.assertEqual(result.source, "services")
        self.assertIsNone(result.response)
        self.assertEqual(sorted(chosen for (chosen,) in result.sets), ["east-a", "east-a", "east-b"])
        self.assertEqual(dict(result.excluded), {"west-a": "reported DOWN by its site"})

    def test_answers(self):
        """answers=N gives N distinct services per set, the rotation covering all."""
        t = topology(vserverText(services=("east-a", "east-b", "west-a"), lb_method="ROUNDROBIN", answers=2))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(), "east-b": up()})
        report(table, "west", {"west-a": up()})
        result = plan(t, table)
        self.assertEqual(len(result.sets), 3)
        for chosen in result.sets:
            self.assertEqual(len(chosen), 2)
            self.assertEqual(len(set(chosen)), 2)
        self.assertEqual(servicesIn(result.sets), {"east-a", "east-b", "west-a"})

    def test_answersAboveUpCount(self):
        """Asking for more answers than UP services gives every UP service."""
        t = topology(vserverText(services=("east-a", "east-b", "west-a"), lb_method="ROUNDROBIN", answers=5))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(), "east-b": up()})
        for chosen in plan(t, table).sets:
            self.assertEqual(sorted(chosen), ["east-a", "east-b"])

    def test_roundRobinSetsHelper(self):
        candidates = [Candidate("a", "192.0.2.1", "east", 1, None), Candidate("b", "192.0.2.2", "east", 1, None)]
        self.assertEqual(roundRobinSets(candidates, 1), (("a",), ("b",)))


class LeastMetricTests(SynchronousTestCase):
    """LEASTCONNECTION and its siblings rank fresh metrics, lowest first."""

    def planFor(self, method, values, answers=1, metric=None):
        metric = metric or LEAST_METRIC[method]
        t = topology(vserverText(services=("east-a", "east-b", "west-a"), lb_method=method, answers=answers))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(**{metric: values[0]}), "east-b": up(**{metric: values[1]})})
        report(table, "west", {"west-a": up(**{metric: values[2]})})
        return plan(t, table)

    def test_leastConnectionIsTheDefault(self):
        t = topology(vserverText())
        self.assertEqual(t.vserverByName["www"].lb_method, "LEASTCONNECTION")

    def test_picksTheLeast(self):
        for method in LEAST_METRIC:
            result = self.planFor(method, [30, 7, 12])
            self.assertEqual(result.sets, (("east-b",),), method)
            self.assertEqual(result.method, method)
            self.assertFalse(result.fallback)

    def test_tiesRotate(self):
        """Every service tied at the lowest value gets a set of its own."""
        for method in LEAST_METRIC:
            result = self.planFor(method, [5, 9, 5])
            self.assertEqual(sorted(result.sets), [("east-a",), ("west-a",)], method)

    def test_answersTakesTheNLeast(self):
        for method in LEAST_METRIC:
            result = self.planFor(method, [30, 7, 12], answers=2)
            self.assertEqual(result.sets, (("east-b", "west-a"),), method)

    def test_answersWithTies(self):
        result = self.planFor("LEASTCONNECTION", [1, 1, 1], answers=2)
        self.assertEqual(len(result.sets), 3)
        self.assertEqual([chosen[0] for chosen in result.sets], ["east-a", "east-b", "west-a"])
        for chosen in result.sets:
            self.assertEqual(len(set(chosen)), 2)

    def test_missingMetricFallsBack(self):
        """A service without the method's metric: the backup method decides."""
        t = topology(vserverText(services=("east-a", "east-b")))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(), "east-b": up(connections=900)})
        result = plan(t, table)
        self.assertTrue(result.fallback)
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertIn("east-a: no connections reported", result.fallbackReason)
        self.assertEqual(servicesIn(result.sets), {"east-a", "east-b"})

    def test_helper(self):
        candidates = [
            Candidate("a", "192.0.2.1", "east", 1, {"connections": 3}),
            Candidate("b", "192.0.2.2", "east", 1, {"connections": 3}),
            Candidate("c", "192.0.2.3", "east", 1, {"connections": 1}),
        ]
        self.assertEqual(leastMetricSets(candidates, "connections", 1), (("c",),))
        # The tie at the second position rotates too.
        self.assertEqual(leastMetricSets(candidates, "connections", 2), (("c", "a"), ("c", "b")))


class FallbackTests(SynchronousTestCase):
    """Missing or stale metrics: the backup_lb_method decides."""

    def setUp(self):
        self.t = topology(
            vserverText(services=("east-a", "west-a", "west-b"), backup_lb_method="ROUNDROBIN")
            + vserverText(name="mixed", services=("east-a", "fixed-a"))
        )
        self.table = emptyTable(self.t)

    def test_stale(self):
        report(self.table, "east", {"east-a": up(connections=1)}, now=NOW - DEAD - 0.5)
        report(self.table, "west", {"west-a": up(connections=5), "west-b": up(connections=9)})
        result = plan(self.t, self.table)
        self.assertTrue(result.fallback)
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a", "west-b"})

    def test_freshAtTheDeadInterval(self):
        """Metrics exactly dead_interval old are still fresh."""
        report(self.table, "east", {"east-a": up(connections=1)}, now=NOW - DEAD)
        report(self.table, "west", {"west-a": up(connections=5), "west-b": up(connections=9)})
        result = plan(self.t, self.table)
        self.assertFalse(result.fallback)
        self.assertEqual(result.sets, (("east-a",),))

    def test_staleDownServiceDoesNotMatter(self):
        """Only the UP candidates need fresh metrics."""
        report(self.table, "east", {"east-a": up(connections=1)}, state=DOWN, now=NOW - 100)
        report(self.table, "west", {"west-a": up(connections=5), "west-b": up(connections=9)})
        result = plan(self.t, self.table)
        self.assertFalse(result.fallback)
        self.assertEqual(result.sets, (("west-a",),))

    def test_staticSiteAmongCandidates(self):
        report(self.table, "east", {"east-a": up(connections=1)})
        result = plan(self.t, self.table, "mixed")
        self.assertTrue(result.fallback)
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertEqual(servicesIn(result.sets), {"east-a", "fixed-a"})

    def test_leastMetricBackupMethod(self):
        t = topology(vserverText(services=("east-a", "west-a"), lb_method="LEASTCONNECTION", backup_lb_method="LEASTPACKETS"))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(connections=1, packets=50)}, now=NOW - 10)
        report(table, "west", {"west-a": up(connections=5, packets=20)})
        result = plan(t, table)
        self.assertTrue(result.fallback)
        # The backup method needs the same stale metrics: round robin decides.
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertEqual(servicesIn(result.sets), {"east-a", "west-a"})

    def test_leastMetricBackupMethodWithItsMetric(self):
        """The primary lacks its metric, the backup has fresh metrics of its own."""
        t = topology(vserverText(services=("east-a", "west-a"), lb_method="LEASTCONNECTION", backup_lb_method="LEASTPACKETS"))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(packets=50)})
        report(table, "west", {"west-a": up(connections=5, packets=20)})
        result = plan(t, table)
        self.assertTrue(result.fallback)
        self.assertEqual(result.method, "LEASTPACKETS")
        self.assertEqual(result.sets, (("west-a",),))


STATES = st.sampled_from([UP, DOWN, None])
SERVICE_REPORTS = st.one_of(st.none(), st.sampled_from([UP, DOWN]))
METRIC = st.integers(min_value=0, max_value=5)


class DownNeverAnsweredTests(SynchronousTestCase):
    """
    Property: while any service is UP, no set names a DOWN one; with none
    up, down_response decides.
    """

    @settings(derandomize=True, deadline=None, database=None, max_examples=400)
    @given(
        siteStates=st.fixed_dictionaries({"east": STATES, "west": STATES}),
        serviceStates=st.fixed_dictionaries({name: SERVICE_REPORTS for name in ("east-a", "east-b", "west-a", "west-b")}),
        metrics=st.fixed_dictionaries({name: METRIC for name in ("east-a", "east-b", "west-a", "west-b")}),
        ages=st.fixed_dictionaries({"east": st.sampled_from([0.0, 10.0]), "west": st.sampled_from([0.0, 10.0])}),
        method=st.sampled_from(["ROUNDROBIN", *LEAST_METRIC]),
        answers=st.integers(min_value=1, max_value=4),
        downResponse=st.sampled_from(["all", "empty", "servfail"]),
        withStatic=st.booleans(),
    )
    def test_noDownServiceAnswered(self, siteStates, serviceStates, metrics, ages, method, answers, downResponse, withStatic):
        bound = ["east-a", "east-b", "west-a", "west-b"] + (["fixed-a"] if withStatic else [])
        t = topology(vserverText(services=bound, lb_method=method, answers=answers, down_response=downResponse))
        table = emptyTable(t)
        for site in ("east", "west"):
            reported = {}
            for name in bound:
                if SITE_OF[name] == site and serviceStates[name] is not None:
                    reported[name] = {"state": serviceStates[name], "connections": metrics[name],
                                      "response_time": metrics[name], "bandwidth": metrics[name],
                                      "packets": metrics[name]}
            if siteStates[site] is not None:
                report(table, site, reported, state=siteStates[site], now=NOW - ages[site])
        upServices = {name for name in bound if serviceState(t.serviceByName[name], t, table)[0] == UP}
        result = plan(t, table)
        if upServices:
            self.assertEqual(result.source, "services")
            self.assertTrue(result.sets)
            self.assertLessEqual(servicesIn(result.sets), upServices)
            for chosen in result.sets:
                self.assertEqual(len(chosen), min(answers, len(upServices)))
        elif downResponse == "all":
            self.assertEqual(result.source, "down_response")
            self.assertEqual(servicesIn(result.sets), set(bound))
        else:
            self.assertEqual(result.sets, ())
            self.assertEqual(result.response, EMPTY if downResponse == "empty" else SERVFAIL)


class DownResponseTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserverText(services=("east-a", "east-b"), backup_vserver="dr1")
            + vserverText(name="dr1", services=("west-a",), down_response="empty", backup_vserver="dr2")
            + vserverText(name="dr2", services=("west-b",), down_response="empty")
            + vserverText(name="alone-all", services=("east-a", "east-b"))
            + vserverText(name="alone-empty", services=("east-a",), down_response="empty")
            + vserverText(name="alone-servfail", services=("east-a",), down_response="servfail")
            + vserverText(name="all-backup", services=("east-a",), down_response="empty", backup_vserver="alone-all")
        )
        self.table = emptyTable(self.t)
        report(self.table, "east", {"east-a": {"state": DOWN}, "east-b": up()}, state=DOWN)

    def test_backupVServer(self):
        report(self.table, "west", {"west-a": up(connections=3), "west-b": up(connections=1)})
        result = plan(self.t, self.table)
        self.assertEqual(result.source, "backup_vserver")
        self.assertEqual(result.answering, "dr1")
        self.assertEqual(result.sets, (("west-a",),))
        self.assertEqual({name for name, _ in result.excluded}, {"east-a", "east-b"})

    def test_backupChain(self):
        """The backup's backup answers when the backup has nothing up."""
        report(self.table, "west", {"west-a": {"state": DOWN}, "west-b": up(connections=1)})
        result = plan(self.t, self.table)
        self.assertEqual(result.source, "backup_vserver")
        self.assertEqual(result.answering, "dr2")
        self.assertEqual(result.sets, (("west-b",),))

    def test_backupWithNothingUpFallsToOwnDownResponse(self):
        """A backup with nothing up gives way to this vserver's down_response (all)."""
        result = plan(self.t, self.table)
        self.assertEqual(result.source, "down_response")
        self.assertEqual(result.method, "ROUNDROBIN")
        self.assertEqual(servicesIn(result.sets), {"east-a", "east-b"})

    def test_backupsDownResponseAllIsNotUsed(self):
        """A backup answering its own "all" down response does not count as up."""
        result = plan(self.t, self.table, "all-backup")
        self.assertEqual(result.source, "down_response")
        self.assertEqual(result.response, EMPTY)

    def test_all(self):
        result = plan(self.t, self.table, "alone-all")
        self.assertEqual(result.source, "down_response")
        self.assertIsNone(result.response)
        self.assertEqual(servicesIn(result.sets), {"east-a", "east-b"})

    def test_empty(self):
        result = plan(self.t, self.table, "alone-empty")
        self.assertEqual((result.sets, result.source, result.response), ((), "down_response", EMPTY))

    def test_servfail(self):
        result = plan(self.t, self.table, "alone-servfail")
        self.assertEqual((result.sets, result.source, result.response), ((), "down_response", SERVFAIL))

    def test_loopRefusedByConfig(self):
        with self.assertRaises(ConfigError):
            topology(
                vserverText(name="a", services=("east-a",), backup_vserver="b")
                + vserverText(name="b", services=("west-a",), backup_vserver="a")
            )

    def test_loopTerminates(self):
        """Even a looping chain built behind the loader's back ends."""
        t = topology(
            vserverText(name="a", services=("east-a",), backup_vserver="b", down_response="empty")
            + vserverText(name="b", services=("west-a",), down_response="servfail")
        )
        loop = dict(t.vserverByName)
        loop["b"] = dataclasses.replace(loop["b"], backup_vserver="a")
        t = dataclasses.replace(t, vserverByName=MappingProxyType(loop))
        table = emptyTable(t)
        self.assertEqual(plan(t, table, "a").response, EMPTY)
        self.assertEqual(plan(t, table, "b").response, SERVFAIL)


class FamilyTests(SynchronousTestCase):
    def setUp(self):
        self.t = topology(
            vserverText(services=("east-a", "east-6", "west-6"), lb_method="ROUNDROBIN")
            + vserverText(name="v4only", services=("east-a",), down_response="servfail")
        )
        self.table = emptyTable(self.t)
        report(self.table, "east", {"east-a": up(), "east-6": up()})
        report(self.table, "west", {"west-6": {"state": DOWN}})

    def test_aaaaUsesIPv6Services(self):
        result = plan(self.t, self.table, rdtype=28)
        self.assertEqual(result.sets, (("east-6",),))
        self.assertEqual(dict(result.excluded), {"west-6": "reported DOWN by its site"})

    def test_aUsesIPv4Services(self):
        self.assertEqual(plan(self.t, self.table, rdtype=1).sets, (("east-a",),))

    def test_noServiceOfTheFamilyIsNoData(self):
        """No IPv6 service bound: no sets and no failure (NODATA), even with servfail."""
        result = plan(self.t, self.table, "v4only", rdtype=28)
        self.assertEqual(result.sets, ())
        self.assertIsNone(result.response)
        self.assertEqual(result.source, "services")


class ApplyPlanTests(SynchronousTestCase):
    """A plan, applied to the Authority, is what the DNS answers."""

    def setUp(self):
        self.t = topology(vserverText(services=("east-a", "east-b", "west-a"), lb_method="ROUNDROBIN", answers=2))
        self.table = emptyTable(self.t)
        report(self.table, "east", {"east-a": up(), "east-b": {"state": DOWN}})
        report(self.table, "west", {"west-a": up()})

    def authorities(self):
        return [("fast", Authority.fromTopology(self.t)), ("slow", Authority.fromTopology(self.t, fastPath=False))]

    def ask(self, authority, qtype="A", name="www.t.gslb"):
        reply = authority.respond(dns.message.make_query(name, qtype).to_wire(), CLIENT, False)
        return dns.message.from_wire(reply)

    def addresses(self, message):
        return {item.address for rrset in message.answer for item in rrset}

    def test_excludedServiceNeverAnswered(self):
        for label, authority in self.authorities():
            # Before: the configured round robin names every service.
            seen = set()
            for _ in range(6):
                seen |= self.addresses(self.ask(authority))
            self.assertIn(ADDRESS["east-b"], seen, label)
            result = plan(self.t, self.table)
            self.assertTrue(authority.applyPlan("www", 1, result.sets, ADDRESS, None), label)
            before = authority.fastAnswers
            seen = set()
            for _ in range(12):
                message = self.ask(authority)
                self.assertEqual(message.rcode(), dns.rcode.NOERROR)
                seen |= self.addresses(message)
            self.assertEqual(seen, {ADDRESS["east-a"], ADDRESS["west-a"]}, label)
            if label == "fast":
                self.assertEqual(authority.fastAnswers - before, 12)
            else:
                self.assertEqual(authority.fastAnswers, 0)

    def test_samePlanIsNoChange(self):
        authority = Authority.fromTopology(self.t)
        sets = plan(self.t, self.table).sets
        self.assertTrue(authority.applyPlan("www", 1, sets, ADDRESS))
        self.assertFalse(authority.applyPlan("www", 1, sets, ADDRESS))

    def test_serviceBack(self):
        for label, authority in self.authorities():
            authority.applyPlan("www", 1, (("west-a",),), ADDRESS, None)
            self.assertEqual(self.addresses(self.ask(authority)), {ADDRESS["west-a"]}, label)
            authority.applyPlan("www", 1, (("east-b",),), ADDRESS, None)
            self.assertEqual(self.addresses(self.ask(authority)), {ADDRESS["east-b"]}, label)

    def test_servfail(self):
        for label, authority in self.authorities():
            authority.applyPlan("www", 1, (), ADDRESS, RCODE_SERVFAIL)
            message = self.ask(authority)
            self.assertEqual(message.rcode(), dns.rcode.SERVFAIL, label)
            self.assertEqual(message.answer, [], label)
            self.assertEqual(RCODE_SERVFAIL, 2)

    def test_servfailThenBack(self):
        for label, authority in self.authorities():
            authority.applyPlan("www", 1, (), ADDRESS, RCODE_SERVFAIL)
            authority.applyPlan("www", 1, (("west-a",),), ADDRESS, None)
            message = self.ask(authority)
            self.assertEqual(message.rcode(), dns.rcode.NOERROR, label)
            self.assertEqual(self.addresses(message), {ADDRESS["west-a"]}, label)

    def test_empty(self):
        for label, authority in self.authorities():
            authority.applyPlan("www", 1, (), ADDRESS, None)
            message = self.ask(authority)
            self.assertEqual(message.rcode(), dns.rcode.NOERROR, label)
            self.assertEqual(message.answer, [], label)
            self.assertEqual([rrset.rdtype for rrset in message.authority], [dns.rdatatype.SOA], label)

    def test_allDownPlanEndToEnd(self):
        """A down_response plan (servfail) applied from planVServer."""
        t = topology(vserverText(services=("east-a",), down_response="servfail"))
        table = emptyTable(t)
        result = plan(t, table)
        self.assertEqual(result.response, SERVFAIL)
        for authority in (Authority.fromTopology(t), Authority.fromTopology(t, fastPath=False)):
            authority.applyPlan("www", 1, result.sets, ADDRESS, RCODE_SERVFAIL)
            self.assertEqual(self.ask(authority).rcode(), dns.rcode.SERVFAIL)
            # AAAA has no service at all: NODATA, untouched by the A failure.
            aaaa = self.ask(authority, "AAAA")
            self.assertEqual(aaaa.rcode(), dns.rcode.NOERROR)
            self.assertEqual(aaaa.answer, [])

    def test_aaaaPlan(self):
        t = topology(vserverText(services=("east-a", "east-6", "west-6"), lb_method="ROUNDROBIN"))
        table = emptyTable(t)
        report(table, "east", {"east-a": up(), "east-6": up()})
        for authority in (Authority.fromTopology(t), Authority.fromTopology(t, fastPath=False)):
            for rdtype in (1, 28):
                authority.applyPlan("www", rdtype, plan(t, table, rdtype=rdtype).sets, ADDRESS, None)
            seen = set()
            for _ in range(4):
                seen |= self.addresses(self.ask(authority, "AAAA"))
            self.assertEqual(seen, {ADDRESS["east-6"]})
