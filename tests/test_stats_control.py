"""
The stat commands: rows computed from hand-built views of the consolidated
counters (pure functions), and the control endpoint asking the lowest
serving core for its view.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.protocols import amp
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.consolidator import counterKey
from gslb_twisted.protocol.commands import (
    CoreInspect,
    CoreUnavailable,
    NoSuchEntity,
    StatCores,
    StatDNS,
    StatServices,
    StatVServers,
)
from gslb_twisted.statistics import rate, statCoreRows, statDNS, statServiceRows, statVServerRows
from tests.test_supervisor import ControlFixture, answer, answerError, asked


def key(scope: str, name: str, counter: str) -> str:
    return counterKey(scope, name, counter)


def makeView(interval=0.5) -> dict:
    """A view as a core's statsView gives it: two vservers, three services, two cores."""
    totals = {
        key("dns", "-", "queries"): 130,
        key("dns", "-", "bytes_in"): 4000,
        key("dns", "-", "bytes_out"): 6000,
        key("dns", "-", "dropped"): 2,
        key("dns", "-", "truncated"): 1,
        key("dns", "-", "qtype_A"): 100,
        key("dns", "-", "qtype_AAAA"): 25,
        key("dns", "-", "qtype_SOA"): 5,
        key("dns", "-", "rcode_NOERROR"): 120,
        key("dns", "-", "rcode_NXDOMAIN"): 8,
        key("dns", "-", "rrl_dropped"): 3,
        key("vserver", "www", "hits"): 110,
        key("vserver", "www", "persistence_hits"): 40,
        key("vserver", "www", "persistence_misses"): 10,
        key("vserver", "www", "backup_method_hits"): 7,
        key("vserver", "www", "spillovers"): 4,
        key("vserver", "www", "backup_vserver_hits"): 5,
        key("vserver", "api", "hits"): 10,
        key("vserver", "api", "down_responses"): 10,
        key("service", "east-web", "answers"): 70,
        key("service", "west-web", "answers"): 40,
        key("vserver_service", "www/east-web", "answers"): 65,
        key("vserver_service", "www/west-web", "answers"): 40,
        key("vserver_service", "api/east-web", "answers"): 5,
        key("core", "1", "stale_rejected"): 2,
    }
    previous = {
        key("dns", "-", "queries"): 80,
        key("vserver", "www", "hits"): 60,
        key("service", "east-web", "answers"): 45,
        key("vserver_service", "www/east-web", "answers"): 40,
        key("vserver_service", "www/west-web", "answers"): 20,
    }
    return {
        "core": 0,
        "round": 12,
        "at": 1000.0,
        "interval": interval,
        "control": 0,
        "totals": totals,
        "previous": previous,
        "cores": {
            "1": {key("dns", "-", "queries"): 50, key("dns", "-", "bytes_in"): 1500,
                  key("dns", "-", "bytes_out"): 2500, key("core", "1", "stale_rejected"): 2},
            "0": {key("dns", "-", "queries"): 80, key("dns", "-", "bytes_in"): 2500,
                  key("dns", "-", "bytes_out"): 3500},
        },
        "vservers": {
            "www": {"state": "UP", "health": 66.7, "active_services": 2, "inactive_services": 1,
                    "persistence_sessions": 12, "lb_method": "ROUNDROBIN",
                    "services": ["east-web", "west-web", "east-web6"]},
            "api": {"state": "DOWN", "health": 0.0, "active_services": 0, "inactive_services": 1,
                    "persistence_sessions": 0, "lb_method": "LEASTCONNECTION", "services": ["east-web"]},
        },
        "services": {
            "east-web": {"site": "east", "state": "UP"},
            "west-web": {"site": "west", "state": "UP"},
            "east-web6": {"site": "east", "state": "DOWN"},
        },
    }


class RateTests(SynchronousTestCase):
    def test_perSecondBetweenRounds(self):
        self.assertEqual(rate(makeView(0.5), "dns", "-", "queries"), 100.0)
        self.assertEqual(rate(makeView(2.0), "dns", "-", "queries"), 25.0)

    def test_nullBeforeTwoRounds(self):
        for interval in (None, 0, 0.0):
            self.assertIsNone(rate(makeView(interval), "dns", "-", "queries"))

    def test_counterNeverCounted(self):
        self.assertEqual(rate(makeView(), "vserver", "nope", "hits"), 0.0)


class StatVServerRowsTests(SynchronousTestCase):
    def test_everyVServerInOrder(self):
        rows = statVServerRows(makeView())
        self.assertEqual([row["name"] for row in rows], ["www", "api"])
        www = rows[0]
        self.assertEqual(
            {k: www[k] for k in ("state", "health", "active_services", "inactive_services", "hits", "hit_rate",
                                 "persistence_sessions", "persistence_hits", "persistence_misses",
                                 "backup_method_hits", "spillovers", "backup_vserver_hits", "down_responses")},
            {"state": "UP", "health": 66.7, "active_services": 2, "inactive_services": 1, "hits": 110,
             "hit_rate": 100.0, "persistence_sessions": 12, "persistence_hits": 40, "persistence_misses": 10,
             "backup_method_hits": 7, "spillovers": 4, "backup_vserver_hits": 5, "down_responses": 0},
        )
        self.assertEqual(www["services"], [
            {"name": "east-web", "answers": 65, "answer_rate": 50.0},
            {"name": "west-web", "answers": 40, "answer_rate": 40.0},
            {"name": "east-web6", "answers": 0, "answer_rate": 0.0},
        ])
        api = rows[1]
        self.assertEqual((api["hits"], api["down_responses"], api["hit_rate"]), (10, 10, 20.0))
        self.assertEqual(api["services"], [{"name": "east-web", "answers": 5, "answer_rate": 10.0}])

    def test_specKeys(self):
        """SPEC §5: list of {name, hits, ..., services: [{name, answers}]}."""
        for row in statVServerRows(makeView()):
            self.assertLessEqual({"name", "hits", "services"}, set(row))
            for service in row["services"]:
                self.assertLessEqual({"name", "answers"}, set(service))

    def test_ratesNullBeforeTwoRounds(self):
        [www, api] = statVServerRows(makeView(None))
        self.assertIsNone(www["hit_rate"])
        self.assertEqual({s["answer_rate"] for s in www["services"]}, {None})

    def test_oneByName(self):
        self.assertEqual([row["name"] for row in statVServerRows(makeView(), "api")], ["api"])

    def test_unknownName(self):
        e = self.assertRaises(NoSuchEntity, statVServerRows, makeView(), "nope")
        self.assertEqual(str(e), "no such vserver nope")

    def test_emptyView(self):
        """A core that has not consolidated yet: states without counts."""
        self.assertEqual(statVServerRows({"vservers": {}}), [])
        [row] = statVServerRows({"vservers": {"www": {"state": "UP", "services": ["a"]}}})
        self.assertEqual((row["hits"], row["hit_rate"], row["services"]), (0, None, [
            {"name": "a", "answers": 0, "answer_rate": None}]))


class StatServiceRowsTests(SynchronousTestCase):
    def test_answersOverEveryVServer(self):
        self.assertEqual(statServiceRows(makeView()), [
            {"name": "east-web", "site": "east", "state": "UP", "answers": 70, "answer_rate": 50.0},
            {"name": "west-web", "site": "west", "state": "UP", "answers": 40, "answer_rate": 80.0},
            {"name": "east-web6", "site": "east", "state": "DOWN", "answers": 0, "answer_rate": 0.0},
        ])

    def test_byName(self):
        self.assertEqual([r["name"] for r in statServiceRows(makeView(), "west-web")], ["west-web"])
        e = self.assertRaises(NoSuchEntity, statServiceRows, makeView(), "nope")
        self.assertEqual(str(e), "no such service nope")


class StatCoreRowsTests(SynchronousTestCase):
    def test_perCoreShares(self):
        self.assertEqual(statCoreRows(makeView()), [
            {"core": 0, "queries": 80, "query_rate": None, "bytes_in": 2500, "bytes_out": 3500, "stale_rejected": 0},
            {"core": 1, "queries": 50, "query_rate": None, "bytes_in": 1500, "bytes_out": 2500, "stale_rejected": 2},
        ])

    def test_ratesWhenTheViewHasThePreviousShares(self):
        view = makeView()
        view["cores_previous"] = {"0": {key("dns", "-", "queries"): 60}}
        rows = statCoreRows(view)
        self.assertEqual([row["query_rate"] for row in rows], [40.0, 100.0])

    def test_numericOrder(self):
        view = {"cores": {str(core): {} for core in (10, 2, 0)}}
        self.assertEqual([row["core"] for row in statCoreRows(view)], [0, 2, 10])


class StatDNSTests(SynchronousTestCase):
    def test_totalsByTypeAndRcode(self):
        self.assertEqual(statDNS(makeView()), {
            "queries": 130, "query_rate": 100.0, "bytes_in": 4000, "bytes_out": 6000, "dropped": 2,
            "truncated": 1, "tcp_refused": 0, "rrl_dropped": 3, "rrl_slipped": 0,
            "by_type": {"A": 100, "AAAA": 25, "SOA": 5},
            "by_rcode": {"NOERROR": 120, "NXDOMAIN": 8},
            "round": 12, "control": 0, "interval": 0.5,
        })

    def test_nothingYet(self):
        result = statDNS({"round": 0, "control": None, "interval": None, "totals": {}, "previous": {}})
        self.assertEqual((result["queries"], result["query_rate"], result["by_type"]), (0, None, {}))


class StatCommandTests(ControlFixture, SynchronousTestCase):
    """The control endpoint asks the lowest serving core for its view, once per command."""

    def ask(self, call, serving=(0, 1), core=0):
        self.makeControl(serving=serving)
        d = call(self.control)
        [box] = asked(self.spawned[core], CoreInspect)
        self.assertEqual(box[b"what"], b"stats")
        answer(self.spawned[core], box, result=json.dumps(makeView()).encode())
        return d

    def test_vserversFromLowestServingCore(self):
        d = self.ask(lambda control: control.statVServers(), serving=(1,), core=1)
        self.assertEqual(asked(self.spawned[0], CoreInspect), [])
        result = self.successResultOf(d)
        self.assertEqual(result["rows"], statVServerRows(makeView()))
        # The topology's consolidation interval, for -ntimes.
        self.assertEqual(result["interval"], 0.5)

    def test_oneVServer(self):
        result = self.successResultOf(self.ask(lambda control: control.statVServers("api")))
        self.assertEqual([row["name"] for row in result["rows"]], ["api"])

    def test_unknownVServer(self):
        d = self.ask(lambda control: control.statVServers("nope"))
        self.assertEqual(str(self.failureResultOf(d, NoSuchEntity).value), "no such vserver nope")

    def test_services(self):
        result = self.successResultOf(self.ask(lambda control: control.statServices("east-web")))
        self.assertEqual(result["rows"], statServiceRows(makeView(), "east-web"))
        d = self.ask(lambda control: control.statServices("nope"))
        self.assertEqual(str(self.failureResultOf(d, NoSuchEntity).value), "no such service nope")

    def test_coresAndDNS(self):
        self.assertEqual(self.successResultOf(self.ask(lambda control: control.statCores()))["rows"],
                         statCoreRows(makeView()))
        self.assertEqual(self.successResultOf(self.ask(lambda control: control.statDNS()))["result"],
                         statDNS(makeView()))

    def test_noServingCore(self):
        self.makeControl(serving=())
        for call in (self.control.statVServers, self.control.statServices, self.control.statCores,
                     self.control.statDNS):
            self.assertEqual(str(self.failureResultOf(call(), CoreUnavailable).value), "no core is serving")

    def test_coreWithoutStatistics(self):
        """A core that cannot show statistics is unavailable, not a missing vserver."""
        self.makeControl()
        d = self.control.statVServers("www")
        answerError(self.spawned[0], asked(self.spawned[0], CoreInspect)[0], b"NO_SUCH_ENTITY", b"stats")
        self.assertEqual(str(self.failureResultOf(d, CoreUnavailable).value),
                         "core 0 cannot show statistics (stats)")

    def test_coreSilent(self):
        from gslb_twisted.supervisor import STATUS_TIMEOUT

        self.makeControl()
        d = self.control.statDNS()
        self.reactor.advance(STATUS_TIMEOUT)
        self.assertEqual(str(self.failureResultOf(d, CoreUnavailable).value),
                         f"core 0 did not answer within {STATUS_TIMEOUT:g}s")


class StatOverAMPTests(ControlFixture, SynchronousTestCase):
    """What a console hears, through the real AMP encoding."""

    def call(self, command, **arguments):
        self.makeControl()
        client, server, pump = connectedServerAndClient(lambda: self.control, amp.AMP)
        d = defer.Deferred()
        client.callRemote(command, **arguments).chainDeferred(d)
        pump.flush()
        boxes = asked(self.spawned[0], CoreInspect)
        if boxes:
            answer(self.spawned[0], boxes[0], result=json.dumps(makeView()).encode())
            pump.flush()
        return d

    def test_rowsAndInterval(self):
        for command, resultKey in ((StatVServers, "rows"), (StatServices, "rows"), (StatCores, "rows"),
                                   (StatDNS, "result")):
            result = self.successResultOf(self.call(command))
            self.assertEqual(result["interval"], 0.5)
            self.assertTrue(result[resultKey])

    def test_unknownNameOneLine(self):
        from console.main import _reason

        failure = self.failureResultOf(self.call(StatVServers, name="nope"), KeyError)
        self.assertEqual(_reason(failure.value), "no such vserver nope")
