"""
The site emulator's model and metric sources, without a reactor (the
backend checks run on a Clock against treq's StubTreq).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from gslb_twisted.config import Service, TimelineEvent
from gslb_twisted.site.model import INITIAL, METRICS, Delta, SiteModel, checkValue, diff
from gslb_twisted.site.sources import BackendCheck, Timeline, checkTimeout


def service(name: str, maxClients: int = 0, backend=None) -> Service:
    return Service(
        name=name, site="east", ip="192.0.2.10", port=80, type="HTTP", weight=1,
        max_clients=maxClients, backend=backend, monitor=None,
    )


SERVICES = (service("web", 200), service("web6"))


def event(at, name="web", **values) -> TimelineEvent:
    return TimelineEvent(at=at, service=name, values=values)


class DiffTests(SynchronousTestCase):
    def test_onlyChangedValues(self):
        old = {"a": {"state": "UP", "connections": 1}, "b": {"state": "UP"}}
        new = {"a": {"state": "UP", "connections": 2}, "b": {"state": "UP"}}
        self.assertEqual(diff(old, new), {"a": {"connections": 2}})

    def test_nothingChanged(self):
        old = {"a": dict(INITIAL)}
        self.assertEqual(diff(old, {"a": dict(INITIAL)}), {})

    def test_newServiceAndMetricAreChanges(self):
        self.assertEqual(
            diff({"a": {}}, {"a": {"load": 1.0}, "b": {"state": "DOWN"}}),
            {"a": {"load": 1.0}, "b": {"state": "DOWN"}},
        )

    def test_pure(self):
        old = {"a": {"x": 1}}
        new = {"a": {"x": 2}}
        diff(old, new)
        self.assertEqual((old, new), ({"a": {"x": 1}}, {"a": {"x": 2}}))

    @given(
        st.dictionaries(st.sampled_from("abc"), st.dictionaries(st.sampled_from(METRICS), st.integers(0, 3))),
        st.dictionaries(st.sampled_from("abc"), st.dictionaries(st.sampled_from(METRICS), st.integers(0, 3))),
    )
    def test_applyingTheDiffGivesTheNewValues(self, old, new):
        changes = diff(old, new)
        applied = {name: dict(values) for name, values in old.items()}
        for name, values in changes.items():
            applied.setdefault(name, {}).update(values)
        for name, values in new.items():
            self.assertEqual({m: applied[name][m] for m in values}, values)
        for name, values in changes.items():
            for metric, value in values.items():
                self.assertNotEqual(old.get(name, {}).get(metric, object()), value)


class WalkTests(SynchronousTestCase):
    def walked(self, seed, steps, services=SERVICES):
        model = SiteModel(services, seed=seed)
        model.begin(0.0)
        return [model.tick(float(i + 1)) for i in range(steps)]

    def test_deterministicForASeed(self):
        self.assertEqual(self.walked(7, 30), self.walked(7, 30))

    def test_seedsDiffer(self):
        self.assertNotEqual(self.walked(7, 30), self.walked(8, 30))

    def test_withoutSeedNothingMoves(self):
        model = SiteModel(SERVICES, seed=None)
        self.assertIsNone(model.begin(0.0))
        for i in range(20):
            self.assertIsNone(model.tick(float(i)))
        self.assertEqual(model.snapshot(), (1, {"web": dict(INITIAL), "web6": dict(INITIAL)}))

    @settings(max_examples=30, deadline=None)
    @given(st.integers(0, 2**32), st.integers(0, 50))
    def test_bounded(self, seed, maxClients):
        services = (service("web", maxClients),)
        model = SiteModel(services, seed=seed)
        ceiling = maxClients or 1000
        for i in range(300):
            model.tick(float(i))
            values = model.current()["web"]
            self.assertEqual(values["state"], "UP")
            self.assertTrue(0 <= values["connections"] <= ceiling, values)
            self.assertTrue(0.0 <= values["load"] <= 100.0, values)
            self.assertGreaterEqual(values["response_time"], 1.0)
            self.assertGreaterEqual(values["bandwidth"], 0.0)
            self.assertGreaterEqual(values["packets"], 0)
            self.assertIsInstance(values["connections"], int)
            self.assertIsInstance(values["packets"], int)
            for metric, value in values.items():
                checkValue(metric, value)  # always a value MEP may carry

    def test_smallSteps(self):
        model = SiteModel((service("web", 1000),), seed=3)
        before = model.current()["web"]
        for i in range(100):
            model.tick(float(i))
            after = model.current()["web"]
            self.assertLessEqual(abs(after["connections"] - before["connections"]), 20)
            self.assertLessEqual(abs(after["load"] - before["load"]), 2.05)
            before = after


class PublicationTests(SynchronousTestCase):
    def test_seqRisesOnlyOnChange(self):
        model = SiteModel(SERVICES)
        model.begin(0.0)
        self.assertEqual(model.seq, 1)
        self.assertIsNone(model.tick(1.0))
        model.pin("web", {"connections": 5})
        delta = model.tick(2.0)
        self.assertEqual(delta, Delta(seq=2, baseSeq=1, changes={"web": {"connections": 5}}))
        self.assertIsNone(model.tick(3.0))
        self.assertEqual(model.seq, 2)
        model.pin("web", {"connections": 5})  # the same value again
        self.assertIsNone(model.collect())
        self.assertEqual(model.seq, 2)

    def test_snapshotIsThePublishedState(self):
        model = SiteModel(SERVICES)
        model.pin("web", {"load": 50})
        # Not collected yet: the snapshot still shows what the peers have.
        seq, services = model.snapshot()
        self.assertEqual((seq, services["web"]["load"]), (1, 0.0))
        model.collect()
        seq, services = model.snapshot()
        self.assertEqual((seq, services["web"]["load"]), (2, 50.0))
        services["web"]["load"] = 1.0  # a copy
        self.assertEqual(model.snapshot()[1]["web"]["load"], 50.0)

    def test_deltasReplayToTheSnapshot(self):
        model = SiteModel(SERVICES, seed=5, timeline=[event(3, state="DOWN")])
        model.begin(0.0)
        seq, state = model.snapshot()
        for i in range(1, 40):
            if i == 10:
                model.pin("web6", {"state": "DOWN"})
            delta = model.tick(float(i))
            if delta is not None:
                self.assertEqual(delta.baseSeq, seq)
                for name, values in delta.changes.items():
                    state[name].update(values)
                seq = delta.seq
        self.assertEqual(model.snapshot(), (seq, state))


class PrecedenceTests(SynchronousTestCase):
    def test_pinsOverTimelineOverBackendOverWalk(self):
        model = SiteModel(SERVICES, seed=1, timeline=[event(5, response_time=300.0)])
        model.begin(0.0)
        model.tick(1.0)
        walked = model.current()["web"]["response_time"]
        self.assertEqual(model.source("web", "response_time"), "walk")
        model.setBackend("web", "UP", 42.0)
        self.assertEqual(model.current()["web"]["response_time"], 42.0)
        self.assertEqual(model.source("web", "response_time"), "backend")
        model.tick(5.0)
        self.assertEqual(model.current()["web"]["response_time"], 300.0)
        self.assertEqual(model.source("web", "response_time"), "timeline")
        model.pin("web", {"response_time": 7})
        self.assertEqual(model.current()["web"]["response_time"], 7.0)
        self.assertEqual(model.source("web", "response_time"), "pin")
        model.unpin("web", ["response_time"])
        self.assertEqual(model.current()["web"]["response_time"], 300.0)
        self.assertNotEqual(walked, 300.0)

    def test_backendStateOverWalkUnderTimeline(self):
        model = SiteModel(SERVICES, seed=1, timeline=[event(2, state="UP")])
        model.begin(0.0)
        model.setBackend("web", "DOWN")
        self.assertEqual(model.current()["web"]["state"], "DOWN")
        model.tick(2.0)
        self.assertEqual(model.current()["web"]["state"], "UP")
        self.assertEqual(model.source("web", "state"), "timeline")

    def test_backendDownKeepsNoResponseTime(self):
        model = SiteModel(SERVICES)
        model.setBackend("web", "UP", 0.2)
        self.assertEqual(model.current()["web"]["response_time"], 1.0)  # at least 1 ms
        model.setBackend("web", "DOWN")
        self.assertEqual(model.current()["web"]["response_time"], INITIAL["response_time"])

    def test_unsetReleases(self):
        model = SiteModel(SERVICES)
        model.begin(0.0)
        model.pin("web", {"state": "down", "connections": 500})
        self.assertEqual(model.collect().changes, {"web": {"state": "DOWN", "connections": 500}})
        self.assertEqual(model.row("web")["pinned"], ["state", "connections"])
        model.unpin("web", ["connections"])
        self.assertEqual(model.collect().changes, {"web": {"connections": 0}})
        model.unpin("web", ["state", "load"])  # load was not pinned: harmless
        self.assertEqual(model.collect().changes, {"web": {"state": "UP"}})
        self.assertEqual(model.row("web")["pinned"], [])

    def test_pinErrors(self):
        model = SiteModel(SERVICES)
        self.assertRaises(KeyError, model.pin, "nope", {"state": "UP"})
        self.assertRaises(KeyError, model.unpin, "nope", ["state"])
        for bad in ({"state": "SIDEWAYS"}, {"connections": -1}, {"connections": 1.5},
                    {"load": 101}, {"colour": 1}, {}):
            self.assertRaises(ValueError, model.pin, "web", bad)
        self.assertRaises(ValueError, model.unpin, "web", ["colour"])
        # All or nothing.
        self.assertRaises(ValueError, model.pin, "web", {"connections": 3, "load": -1})
        self.assertEqual(model.pins["web"], {})


class TimelineTests(SynchronousTestCase):
    def test_eachEventOnceInTimeOrder(self):
        first, second, third = event(1, load=1.0), event(1, load=2.0), event(5, load=3.0)
        timeline = Timeline([third, first, second])
        self.assertEqual(timeline.due(0.5), [])
        self.assertEqual(timeline.due(2), [first, second])
        self.assertEqual(timeline.due(2), [])
        self.assertEqual(timeline.due(100), [third])
        self.assertEqual(timeline.pending(), 0)

    def test_valuesHoldUntilTheNextEventForThatMetric(self):
        model = SiteModel(SERVICES, timeline=[
            event(0, state="DOWN", connections=9),
            event(10, connections=20),
            event(20, name="web6", load=5.0),
        ])
        delta = model.begin(100.0)  # times count from the start
        self.assertEqual(delta.changes, {"web": {"state": "DOWN", "connections": 9}})
        self.assertIsNone(model.tick(105.0))
        self.assertEqual(model.tick(110.0).changes, {"web": {"connections": 20}})
        self.assertEqual(model.current()["web"]["state"], "DOWN")
        self.assertEqual(model.tick(125.0).changes, {"web6": {"load": 5.0}})

    def test_pinOverridesTimelineWhichResumesAfterUnset(self):
        model = SiteModel(SERVICES, timeline=[event(1, connections=10), event(2, connections=20)])
        model.begin(0.0)
        model.pin("web", {"connections": 500})
        model.tick(1.0)
        model.tick(2.0)
        self.assertEqual(model.current()["web"]["connections"], 500)
        model.unpin("web", ["connections"])
        self.assertEqual(model.current()["web"]["connections"], 20)


class _Health(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.code = 200
        self.requests = 0

    def render_GET(self, request):
        self.requests += 1
        request.setResponseCode(self.code)
        return b"ok"


class _Hanging:
    """A client whose requests never answer (until cancelled)."""

    def __init__(self):
        self.cancelled = 0

    def get(self, url):
        from twisted.internet.defer import Deferred

        def cancel(d):
            self.cancelled += 1

        return Deferred(cancel)


class _Refusing:
    def get(self, url):
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        return fail(ConnectionRefusedError())


class BackendCheckTests(SynchronousTestCase):
    def start(self, client, interval=1.0):
        reports = []
        clock = Clock()
        check = BackendCheck("web", "http://backend.test/health", client, clock, interval,
                             lambda *r: reports.append(r))
        check.startService()
        self.addCleanup(check.stopService)
        return check, clock, reports

    def test_2xxIsUpWithResponseTime(self):
        health = _Health()
        check, clock, reports = self.start(StubTreq(health))
        self.assertEqual(reports, [("web", "UP", 0.0)])
        clock.advance(1.0)
        self.assertEqual(len(reports), 2)
        self.assertEqual(health.requests, 2)

    def test_otherStatusIsDown(self):
        health = _Health()
        health.code = 503
        check, clock, reports = self.start(StubTreq(health))
        self.assertEqual(reports, [("web", "DOWN", None)])
        health.code = 204
        clock.advance(1.0)
        self.assertEqual(reports[-1][:2], ("web", "UP"))

    def test_refusedIsDown(self):
        check, clock, reports = self.start(_Refusing())
        self.assertEqual(reports, [("web", "DOWN", None)])

    def test_timeoutIsDownAndCancels(self):
        client = _Hanging()
        check, clock, reports = self.start(client, interval=1.0)
        self.assertEqual(reports, [])
        clock.advance(checkTimeout(1.0))
        self.assertEqual(reports, [("web", "DOWN", None)])
        self.assertEqual(client.cancelled, 1)

    def test_stopCancelsWithoutReporting(self):
        client = _Hanging()
        check, clock, reports = self.start(client)
        check.stopService()
        self.assertEqual((client.cancelled, reports), (1, []))
        clock.advance(10)
        self.assertEqual(reports, [])

    def test_timeoutWithinTheInterval(self):
        self.assertEqual(checkTimeout(1.0), 0.9)
        self.assertEqual(checkTimeout(10.0), 2.0)
