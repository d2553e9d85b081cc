"""
Tests for L{gslb_twisted.monitors}: the trigger and state decision tables,
the hysteresis, L{MonitorRunner} on a L{Clock} with fake probes, and the
probes against in-memory peers (StubTreq, MemoryReactorClock, a fake UDP
reactor).  Real sockets are in L{tests.test_monitors_network}.
"""

from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface.verify import verifyObject

from gslb_twisted.config import Monitor, Service
from gslb_twisted.monitors import (
    DNSProbe,
    HTTPProbe,
    Hysteresis,
    IProbe,
    MonitorRunner,
    ProbeResult,
    TCPProbe,
    UDPProbe,
    advance,
    effectiveState,
    makeHTTPClient,
    monitorActive,
    probeFor,
)

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=300)


def _value(text):
    return {"True": True, "False": False, "None": None}.get(text, text)


# ---------------------------------------------------------------------------
# trigger.monitorActive: every trigger x mepUp x mepServiceState.

MONITOR_ACTIVE = """
ALWAYS           True   UP    True
ALWAYS           True   DOWN  True
ALWAYS           True   None  True
ALWAYS           False  UP    True
ALWAYS           False  DOWN  True
ALWAYS           False  None  True
MEPDOWN          True   UP    False
MEPDOWN          True   DOWN  False
MEPDOWN          True   None  False
MEPDOWN          False  UP    True
MEPDOWN          False  DOWN  True
MEPDOWN          False  None  True
MEPDOWN_SVCDOWN  True   UP    False
MEPDOWN_SVCDOWN  True   DOWN  True
MEPDOWN_SVCDOWN  True   None  True
MEPDOWN_SVCDOWN  False  UP    True
MEPDOWN_SVCDOWN  False  DOWN  True
MEPDOWN_SVCDOWN  False  None  True
"""

# trigger.effectiveState: every mepUp x mepState x monitorActive x
# monitorState x metricExchange.
#
# mepUp  mepState  monActive  monState  metricExchange  expected
EFFECTIVE_STATE = """
True   UP    True   UP    True   UP
True   DOWN  True   UP    True   UP
True   None  True   UP    True   UP
False  UP    True   UP    True   UP
False  DOWN  True   UP    True   UP
False  None  True   UP    True   UP
True   UP    True   DOWN  True   DOWN
True   DOWN  True   DOWN  True   DOWN
True   None  True   DOWN  True   DOWN
False  UP    True   DOWN  True   DOWN
False  DOWN  True   DOWN  True   DOWN
False  None  True   DOWN  True   DOWN
True   UP    True   None  True   UP
True   DOWN  True   None  True   DOWN
True   None  True   None  True   DOWN
False  UP    True   None  True   DOWN
False  DOWN  True   None  True   DOWN
False  None  True   None  True   DOWN
True   UP    False  UP    True   UP
True   DOWN  False  UP    True   DOWN
True   None  False  UP    True   DOWN
False  UP    False  UP    True   DOWN
False  DOWN  False  UP    True   DOWN
False  None  False  UP    True   DOWN
True   UP    False  DOWN  True   UP
True   DOWN  False  DOWN  True   DOWN
True   None  False  DOWN  True   DOWN
False  UP    False  DOWN  True   DOWN
False  DOWN  False  DOWN  True   DOWN
False  None  False  DOWN  True   DOWN
True   UP    False  None  True   UP
True   DOWN  False  None  True   DOWN
True   None  False  None  True   DOWN
False  UP    False  None  True   DOWN
False  DOWN  False  None  True   DOWN
False  None  False  None  True   DOWN
True   UP    True   UP    False  UP
True   DOWN  True   UP    False  UP
True   None  True   UP    False  UP
False  UP    True   UP    False  UP
False  DOWN  True   UP    False  UP
False  None  True   UP    False  UP
True   UP    True   DOWN  False  DOWN
True   DOWN  True   DOWN  False  DOWN
True   None  True   DOWN  False  DOWN
False  UP    True   DOWN  False  DOWN
False  DOWN  True   DOWN  False  DOWN
False  None  True   DOWN  False  DOWN
True   UP    True   None  False  UP
True   DOWN  True   None  False  UP
True   None  True   None  False  UP
False  UP    True   None  False  UP
False  DOWN  True   None  False  UP
False  None  True   None  False  UP
True   UP    False  UP    False  UP
True   DOWN  False  UP    False  UP
True   None  False  UP    False  UP
False  UP    False  UP    False  UP
False  DOWN  False  UP    False  UP
False  None  False  UP    False  UP
True   UP    False  DOWN  False  UP
True   DOWN  False  DOWN  False  UP
True   None  False  DOWN  False  UP
False  UP    False  DOWN  False  UP
False  DOWN  False  DOWN  False  UP
False  None  False  DOWN  False  UP
True   UP    False  None  False  UP
True   DOWN  False  None  False  UP
True   None  False  None  False  UP
False  UP    False  None  False  UP
False  DOWN  False  None  False  UP
False  None  False  None  False  UP
"""


def _table(text):
    return [tuple(_value(cell) for cell in line.split()) for line in text.strip().splitlines()]


class MonitorActiveTests(SynchronousTestCase):
    def test_table(self):
        """
        Every combination of trigger, MEP session state and MEP-reported
        service state, as NetScaler's triggerMonitor documents it.
        """
        rows = _table(MONITOR_ACTIVE)
        combos = {(t, m, s) for t, m, s, _ in rows}
        self.assertEqual(
            combos,
            set(product(("ALWAYS", "MEPDOWN", "MEPDOWN_SVCDOWN"), (True, False), ("UP", "DOWN", None))),
        )
        for trigger, mepUp, state, expected in rows:
            self.assertIs(
                monitorActive(trigger, mepUp, state), expected, (trigger, mepUp, state)
            )

    def test_unknownTrigger(self):
        self.assertRaises(ValueError, monitorActive, "NONE", True, "UP")


class EffectiveStateTests(SynchronousTestCase):
    def test_table(self):
        """
        Every combination of the five inputs (the module docstring's rules).
        """
        rows = _table(EFFECTIVE_STATE)
        combos = {row[:5] for row in rows}
        self.assertEqual(
            combos,
            set(
                product(
                    (True, False), ("UP", "DOWN", None), (True, False), ("UP", "DOWN", None), (True, False)
                )
            ),
        )
        for mepUp, mepState, active, monState, metricExchange, expected in rows:
            self.assertEqual(
                effectiveState(mepUp, mepState, active, monState, metricExchange),
                expected,
                (mepUp, mepState, active, monState, metricExchange),
            )

    def test_staticSiteWithoutMonitorIsUp(self):
        """SPEC section 3: a metric_exchange=false site's services are UP."""
        self.assertEqual(effectiveState(False, None, False, None, False), "UP")

    def test_triggeredMonitorOverridesMEP(self):
        """
        With MEPDOWN_SVCDOWN, a service MEP reports DOWN is probed, and the
        probe's verdict wins.
        """
        active = monitorActive("MEPDOWN_SVCDOWN", True, "DOWN")
        self.assertEqual(effectiveState(True, "DOWN", active, "UP", True), "UP")
        # Once MEP reports it UP again, the monitor stops and MEP decides.
        active = monitorActive("MEPDOWN_SVCDOWN", True, "UP")
        self.assertEqual(effectiveState(True, "UP", active, "DOWN", True), "UP")


# ---------------------------------------------------------------------------
# Hysteresis.


def _oracle(results, retries, successRetries):
    """
    The expected sequence of states, computed from runs: the first result
    sets the state; it flips after `retries` consecutive disagreeing DOWNs
    or `successRetries` consecutive disagreeing UPs.
    """
    states = []
    state, run = None, 0
    for up in results:
        if state is None:
            state, run = ("UP" if up else "DOWN"), 0
        elif (state == "UP") == up:
            run = 0
        else:
            run += 1
            if run >= (retries if state == "UP" else successRetries):
                state, run = ("UP" if up else "DOWN"), 0
        states.append(state)
    return states


class HysteresisTests(SynchronousTestCase):
    def test_netscalerDefaults(self):
        """Three failures to go DOWN, one success to come back UP."""
        h = advance(Hysteresis(), True)
        self.assertEqual(h.state, "UP")
        for expected in ("UP", "UP", "DOWN"):
            h = advance(h, False)
            self.assertEqual(h.state, expected)
        h = advance(h, True)
        self.assertEqual(h.state, "UP")

    def test_firstResultIsTheState(self):
        self.assertEqual(advance(Hysteresis(), False).state, "DOWN")
        self.assertEqual(advance(Hysteresis(), True, retries=5).state, "UP")

    def test_successResetsFailures(self):
        h = Hysteresis("UP")
        for up in (False, False, True, False, False):
            h = advance(h, up)
        self.assertEqual(h, Hysteresis("UP", failures=2))

    @deterministic
    @given(
        st.lists(st.booleans(), max_size=40),
        st.integers(min_value=1, max_value=5),
        st.integers(min_value=1, max_value=5),
    )
    def test_matchesRunCounting(self, results, retries, successRetries):
        h = Hysteresis()
        states = []
        for up in results:
            h = advance(h, up, retries, successRetries)
            states.append(h.state)
        self.assertEqual(states, _oracle(results, retries, successRetries))


# ---------------------------------------------------------------------------
# MonitorRunner.


class FakeProbe:
    """
    An IProbe whose results the test supplies.  A cancelled probe "cleans
    up" until the test fires C{cleanup}, like the real probes closing their
    sockets before their Deferred fires.
    """

    def __init__(self, raises=None):
        self.pending = []
        self.calls = 0
        self.cleanups = []
        self.raises = raises

    def probe(self):
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        cleanup = Deferred()
        self.cleanups.append(cleanup)

        def cleaningUp(result):
            if cleanup.called:
                return result
            return cleanup.addCallback(lambda _: result)

        d = Deferred()
        self.pending.append(d)
        d.addErrback(lambda f: f.trap(CancelledError) and cleaningUp(f))
        return d

    def answer(self, up, reason=None):
        d = self.pending.pop(0)
        self.cleanups[-1].callback(None)
        d.callback(ProbeResult(up, 1.5 if up else None, reason or ("ok" if up else "bad")))


UP_ = True
DOWN_ = False


class MonitorRunnerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.probe = FakeProbe()
        self.changes = []
        self.events = []
        self.runner = self.makeRunner(self.probe)

    def makeRunner(self, probe, **kw):
        runner = MonitorRunner(self.clock, probe, 2.0, lambda n, r: self.changes.append((n, r)), "svc", **kw)
        runner.log = Logger(namespace="test", observer=self.events.append)
        return runner

    def transitions(self):
        return [e for e in self.events if "is now" in e["log_format"] or "service {state}" in e["log_format"]]

    def test_verifyObject(self):
        self.assertTrue(verifyObject(IProbe, TCPProbe(MemoryReactorClock(), "127.0.0.1", 80, 1.0)))
        self.assertTrue(verifyObject(IProbe, UDPProbe(MemoryReactorClock(), "127.0.0.1", 53, 1.0)))
        self.assertTrue(verifyObject(IProbe, DNSProbe(MemoryReactorClock(), "127.0.0.1", 53)))
        self.assertTrue(verifyObject(IProbe, HTTPProbe(StubTreq(Resource()), "http://x/", 1.0, Clock())))

    def test_firstResultReported(self):
        """The first result is a transition, reported and logged."""
        self.runner.startService()
        self.assertEqual(self.probe.calls, 1)
        self.probe.answer(UP_)
        self.assertEqual(self.runner.state, "UP")
        self.assertEqual([(n, r.up) for n, r in self.changes], [("svc", True)])
        [event] = self.transitions()
        self.assertEqual((event["name"], event["state"], event["previous"]), ("svc", "UP", "unknown"))
        self.assertEqual(event["reason"], "ok")

    def test_transitionsReportedAndLoggedOnce(self):
        """
        Steady results report nothing; UP->DOWN after three failures
        (NetScaler's default retries) and DOWN->UP after one success are
        each reported and logged exactly once.
        """
        self.runner.startService()
        sequence = [UP_, UP_, DOWN_, DOWN_, DOWN_, DOWN_, DOWN_, UP_, UP_]
        for i, up in enumerate(sequence):
            if i:
                self.clock.advance(2.0)
            self.probe.answer(up)
        self.assertEqual(self.probe.calls, len(sequence))
        self.assertEqual([r.up for _, r in self.changes], [True, False, True])
        self.assertEqual([e["state"] for e in self.transitions()], ["UP", "DOWN", "UP"])
        self.assertEqual([e["previous"] for e in self.transitions()], ["unknown", "UP", "DOWN"])

    def test_noHysteresis(self):
        runner = self.makeRunner(self.probe, retries=1)
        runner.startService()
        self.probe.answer(UP_)
        self.clock.advance(2.0)
        self.probe.answer(DOWN_)
        self.assertEqual([r.up for _, r in self.changes], [True, False])

    def test_noOverlap(self):
        """
        A probe slower than the interval is never overlapped: the next one
        starts at the first interval boundary after it finishes.
        """
        self.runner.startService()
        self.clock.advance(2.0)
        self.clock.advance(2.0)
        self.clock.advance(1.0)
        self.assertEqual(self.probe.calls, 1)
        self.probe.answer(UP_)  # at t=5
        self.assertEqual(self.probe.calls, 1)
        self.clock.advance(0.9)
        self.assertEqual(self.probe.calls, 1)
        self.clock.advance(0.1)  # t=6
        self.assertEqual(self.probe.calls, 2)

    def test_stopWaitsForInFlightProbe(self):
        """
        stopService cancels the probe in flight and fires only once it has
        settled (its cleanup done); the cancellation is not reported as a
        result, and no probe runs afterwards.
        """
        self.runner.startService()
        self.probe.answer(UP_)
        self.clock.advance(2.0)
        self.assertEqual(self.probe.calls, 2)
        stopped = self.runner.stopService()
        self.assertNoResult(stopped)
        self.probe.cleanups[-1].callback(None)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual([r.up for _, r in self.changes], [True])
        self.clock.advance(10.0)
        self.assertEqual(self.probe.calls, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopWhenIdle(self):
        self.runner.startService()
        self.probe.answer(DOWN_)
        self.assertIsNone(self.successResultOf(self.runner.stopService()))
        self.clock.advance(10.0)
        self.assertEqual(self.probe.calls, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restartReportsFirstResultAgain(self):
        self.runner.startService()
        self.probe.answer(UP_)
        self.successResultOf(self.runner.stopService())
        self.runner.startService()
        self.assertIsNone(self.runner.state)
        self.probe.answer(UP_)
        self.assertEqual(len(self.changes), 2)

    def test_probeRaises(self):
        """
        A probe that raises (a bug) counts as a failed probe and is logged;
        the runner keeps going.
        """
        probe = FakeProbe(raises=RuntimeError("boom"))
        runner = self.makeRunner(probe)
        runner.startService()
        self.assertEqual(runner.state, "DOWN")
        self.assertIn("boom", self.changes[0][1].reason)
        self.assertTrue([e for e in self.events if e.get("log_failure") is not None])
        self.clock.advance(2.0)
        self.assertEqual(probe.calls, 2)
        self.successResultOf(runner.stopService())

    def test_onChangeRaises(self):
        def broken(name, result):
            raise ValueError("handler bug")

        runner = MonitorRunner(self.clock, self.probe, 2.0, broken, "svc")
        runner.log = Logger(observer=self.events.append)
        runner.startService()
        self.probe.answer(UP_)
        self.assertEqual(runner.state, "UP")
        self.assertTrue([e for e in self.events if e.get("log_failure") is not None])
        self.clock.advance(2.0)
        self.assertEqual(self.probe.calls, 2)

    def test_badArguments(self):
        self.assertRaises(ValueError, MonitorRunner, self.clock, self.probe, 0, print, "x")
        self.assertRaises(ValueError, MonitorRunner, self.clock, self.probe, 1, print, "x", retries=0)


# ---------------------------------------------------------------------------
# HTTPProbe with StubTreq.


class Health(Resource):
    isLeaf = True

    def __init__(self, code=200, body=b"healthy", hold=False):
        super().__init__()
        self.code = code
        self.body = body
        self.hold = hold
        self.held = []

    def render_GET(self, request):
        request.setResponseCode(self.code)
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        return self.body


class HTTPProbeTests(SynchronousTestCase):
    def probe(self, resource, **kw):
        self.clock = Clock()
        self.stub = StubTreq(resource)
        return HTTPProbe(self.stub, "http://127.0.0.1:8081/health", 2.0, self.clock, **kw)

    def check(self, probe):
        d = probe.probe()
        self.stub.flush()
        return self.successResultOf(d)

    def test_up(self):
        result = self.check(self.probe(Health()))
        self.assertEqual(result, ProbeResult(True, 0.0, "HTTP 200"))

    def test_unexpectedStatus(self):
        result = self.check(self.probe(Health(code=503)))
        self.assertFalse(result.up)
        self.assertEqual(result.reason, "HTTP 503, expected 200")

    def test_expectedStatuses(self):
        self.assertTrue(self.check(self.probe(Health(code=204, body=b""), expectStatus=(200, 204))).up)
        self.assertFalse(self.check(self.probe(Health(code=200), expectStatus=(204,))).up)

    def test_expectedContent(self):
        self.assertTrue(self.check(self.probe(Health(body=b"status: healthy\n"), expectContent="healthy")).up)
        result = self.check(self.probe(Health(body=b"status: degraded\n"), expectContent="healthy"))
        self.assertFalse(result.up)
        self.assertIn("expected content", result.reason)

    def test_contentIsUTF8(self):
        body = "état: prêt".encode("utf-8")
        self.assertTrue(self.check(self.probe(Health(body=body), expectContent="prêt")).up)

    def test_responseTime(self):
        resource = Health(hold=True)
        probe = self.probe(resource)
        d = probe.probe()
        self.stub.flush()
        self.clock.advance(0.25)
        [request] = resource.held
        request.write(b"ok")
        request.finish()
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), ProbeResult(True, 250.0, "HTTP 200"))

    def test_timeout(self):
        """No response within the timeout: DOWN, and the request is cancelled."""
        resource = Health(hold=True)
        probe = self.probe(resource)
        d = probe.probe()
        self.stub.flush()
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "no answer within 2 s"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectionError(self):
        class Failing:
            def get(self, url):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError())

        result = self.successResultOf(HTTPProbe(Failing(), "http://x/", 1.0, Clock()).probe())
        self.assertEqual(result, ProbeResult(False, None, "connection refused"))

    def test_cancelPropagates(self):
        """A caller's cancellation is not turned into a DOWN result."""
        probe = self.probe(Health(hold=True))
        d = probe.probe()
        self.stub.flush()
        d.cancel()
        self.failureResultOf(d, CancelledError)


# ---------------------------------------------------------------------------
# TCPProbe with MemoryReactorClock.


class TCPProbeTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.probe = TCPProbe(self.reactor, "192.0.2.10", 80, 2.0)

    def test_connectedThenClosed(self):
        """
        UP once connected; the probe closes the connection and fires only
        after the connection is gone.
        """
        d = self.probe.probe()
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("192.0.2.10", 80))
        self.reactor.advance(0.125)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(d)
        protocol.connectionLost(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(True, 125.0, "connected"))

    def test_ipv6(self):
        TCPProbe(self.reactor, "2001:db8::10", 443, 1.0).probe()
        self.assertEqual(self.reactor.tcpClients[0][0], "2001:db8::10")

    def test_timeoutStopsConnecting(self):
        d = self.probe.probe()
        self.reactor.advance(2.0)
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "no answer within 2 s"))
        [connector] = self.reactor.connectors
        self.assertTrue(connector.stoppedConnecting)

    def test_cancelledByCaller(self):
        """A caller's cancellation stays a CancelledError, not a DOWN result."""
        d = self.probe.probe()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)

    def test_refused(self):
        from twisted.internet.error import ConnectionRefusedError

        d = self.probe.probe()
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(self.reactor.connectors[0], ConnectionRefusedError())
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "connection refused"))


# ---------------------------------------------------------------------------
# DNS and UDP probes with a fake UDP reactor.


class FakeUDPPort:
    def __init__(self, protocol):
        self.protocol = protocol
        self.connectedTo = None
        self.written = []
        self.stopped = None

    def connect(self, host, port):
        self.connectedTo = (host, port)

    def write(self, data, addr=None):
        self.written.append(data)

    def stopListening(self):
        self.stopped = Deferred()
        return self.stopped


class FakeUDPReactor(Clock):
    def __init__(self):
        super().__init__()
        self.ports = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        self.interface = interface
        fake = FakeUDPPort(protocol)
        protocol.makeConnection(fake)
        self.ports.append(fake)
        return fake


def _reply(query, rcode=dns.OK, answer=True, id=None):
    m = dns.Message(id=query.id if id is None else id, answer=answer, rCode=rcode)
    m.queries = query.queries
    return m.toStr()


class DNSProbeTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.probe = DNSProbe(self.reactor, "192.0.2.53", 53, name="example.", timeout=1.0, randomID=lambda: 4242)

    def sent(self):
        [port] = self.reactor.ports
        query = dns.Message()
        query.fromStr(port.written[0])
        return port, query

    def test_query(self):
        self.probe.probe()
        port, query = self.sent()
        self.assertEqual(port.connectedTo, ("192.0.2.53", 53))
        self.assertEqual(query.id, 4242)
        self.assertEqual(query.queries, [dns.Query(b"example", dns.A, dns.IN)])
        self.assertEqual(self.reactor.interface, "")

    def test_anyRcodeIsUpAfterPortClosed(self):
        for rcode, name in ((dns.OK, "NOERROR"), (dns.ENAME, "NXDOMAIN"), (dns.EREFUSED, "REFUSED")):
            self.reactor.ports.clear()
            d = self.probe.probe()
            port, query = self.sent()
            self.reactor.advance(0.01)
            port.protocol.datagramReceived(_reply(query, rcode), ("192.0.2.53", 53))
            self.assertNoResult(d)  # not before the port is closed
            port.stopped.callback(None)
            self.assertEqual(self.successResultOf(d), ProbeResult(True, 10.0, f"DNS response, rcode {name}"))

    def test_ignoresGarbageAndMismatches(self):
        d = self.probe.probe()
        port, query = self.sent()
        port.protocol.datagramReceived(b"\x00\x01garbage", None)
        port.protocol.datagramReceived(_reply(query, id=4243), None)
        port.protocol.datagramReceived(_reply(query, answer=False), None)
        other = dns.Message(id=4242)
        other.queries = [dns.Query(b"other", dns.A, dns.IN)]
        port.protocol.datagramReceived(_reply(other), None)
        self.assertIsNone(port.stopped)
        self.reactor.advance(1.0)
        port.stopped.callback(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "no answer within 1 s"))

    def test_caseInsensitiveQuestion(self):
        d = self.probe.probe()
        port, query = self.sent()
        echoed = dns.Message(id=4242)
        echoed.queries = [dns.Query(b"ExAmPlE", dns.A, dns.IN)]
        port.protocol.datagramReceived(_reply(echoed), None)
        port.stopped.callback(None)
        self.assertTrue(self.successResultOf(d).up)

    def test_refused(self):
        d = self.probe.probe()
        port, _ = self.sent()
        port.protocol.connectionRefused()
        port.stopped.callback(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "connection refused"))

    def test_ipv6AndRoot(self):
        probe = DNSProbe(self.reactor, "2001:db8::53", 53, timeout=1.0)
        probe.probe()
        self.assertEqual(self.reactor.interface, "::")
        _, query = self.sent()
        self.assertEqual(query.queries[0].name.name, b"")


class UDPProbeTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.probe = UDPProbe(self.reactor, "192.0.2.7", 7, 1.0, payload=b"ping")

    def test_silenceIsUp(self):
        d = self.probe.probe()
        [port] = self.reactor.ports
        self.assertEqual(port.written, [b"ping"])
        self.reactor.advance(1.0)
        port.stopped.callback(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(True, None, "no ICMP error within 1 s"))

    def test_replyIsUp(self):
        d = self.probe.probe()
        [port] = self.reactor.ports
        port.protocol.datagramReceived(b"pong", None)
        port.stopped.callback(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(True, 0.0, "UDP reply"))

    def test_icmpRefusedIsDown(self):
        d = self.probe.probe()
        [port] = self.reactor.ports
        port.protocol.connectionRefused()
        self.assertNoResult(d)
        port.stopped.callback(None)
        self.assertEqual(self.successResultOf(d), ProbeResult(False, None, "connection refused"))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_portClosedUnderUsByReactor(self):
        """
        epoll/poll reactors close a connected UDP port on a bare socket error
        (Twisted #5377) instead of calling connectionRefused: the probe reads
        the socket's error and still reports the ICMP refusal.
        """
        import errno
        import socket

        class Handle:
            def __init__(self, code):
                self.code = code

            def getsockopt(self, level, option):
                assert (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR)
                return self.code

        for code, reason in ((errno.ECONNREFUSED, "connection refused"), (0, "ConnectionLost")):
            self.reactor.ports.clear()
            d = self.probe.probe()
            [port] = self.reactor.ports
            port.getHandle = lambda code=code: Handle(code)
            port.stopListening = lambda: None  # already closed by the reactor
            port.protocol.doStop()
            result = self.successResultOf(d)
            self.assertFalse(result.up)
            self.assertTrue(result.reason.startswith(reason), result.reason)

    def test_cancel(self):
        d = self.probe.probe()
        [port] = self.reactor.ports
        d.cancel()
        self.assertIsNotNone(port.stopped)
        port.stopped.callback(None)
        self.failureResultOf(d, CancelledError)


# ---------------------------------------------------------------------------
# probeFor.


def _monitor(kind, url=None, **kw):
    values = dict(
        type=kind, url=url, interval=5.0, timeout=2.0, trigger="ALWAYS", expect_status=(200,), expect_content=None
    )
    values.update(kw)
    return Monitor(**values)


SERVICE = Service(
    name="east-web", site="east", ip="192.0.2.10", port=8080, type="HTTP", weight=1, max_clients=0,
    backend=None, monitor=None,
)


class ProbeForTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()

    def test_tcp(self):
        probe = probeFor(_monitor("tcp", timeout=1.5), SERVICE, self.reactor)
        self.assertIsInstance(probe, TCPProbe)
        self.assertEqual((probe.host, probe.port, probe.timeout), ("192.0.2.10", 8080, 1.5))

    def test_udpAndDns(self):
        udp = probeFor(_monitor("udp"), SERVICE, self.reactor)
        self.assertIsInstance(udp, UDPProbe)
        self.assertEqual((udp.host, udp.port), ("192.0.2.10", 8080))
        dnsProbe = probeFor(_monitor("dns"), SERVICE, self.reactor)
        self.assertIsInstance(dnsProbe, DNSProbe)
        self.assertEqual((dnsProbe.host, dnsProbe.port, dnsProbe.name), ("192.0.2.10", 8080, "."))

    def test_http(self):
        stub = StubTreq(Health())
        monitor = _monitor(
            "http", "http://127.0.0.1:8081/health", expect_status=(200, 204), expect_content="healthy"
        )
        probe = probeFor(monitor, SERVICE, self.reactor, stub)
        self.assertIsInstance(probe, HTTPProbe)
        self.assertEqual(
            (probe.url, probe.expectStatus, probe.expectContent),
            ("http://127.0.0.1:8081/health", (200, 204), "healthy"),
        )
        d = probe.probe()
        stub.flush()
        self.assertTrue(self.successResultOf(d).up)

    def test_httpsDefaultClient(self):
        probe = probeFor(_monitor("https", "https://127.0.0.1:8443/"), SERVICE, self.reactor)
        self.assertIsInstance(probe, HTTPProbe)

    def test_schemeMismatch(self):
        self.assertRaises(ValueError, probeFor, _monitor("https", "http://x/"), SERVICE, self.reactor)
        self.assertRaises(ValueError, probeFor, _monitor("http", None), SERVICE, self.reactor)

    def test_makeHTTPClient(self):
        self.assertTrue(hasattr(makeHTTPClient(self.reactor), "get"))
        self.assertTrue(hasattr(makeHTTPClient(self.reactor, verifyTLS=True), "get"))
