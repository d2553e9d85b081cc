"""
The site emulator service with a Clock, fake and real (iosim) MEP sessions,
a MemoryReactor for its endpoints, and its control protocol over AMP.
"""

from __future__ import annotations

import os

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols import amp
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from gslb_twisted.config import parseTopology
from gslb_twisted.mep.session import ESTABLISHED, IMEPHandler, MEPSession
from gslb_twisted.protocol.commands import SetSiteService, ShowMEP, ShowSiteServices, UnsetSiteService
from gslb_twisted.site import tap
from gslb_twisted.site.emulator import (
    SiteControlProtocol,
    SiteEmulatorService,
    controlEndpointDescription,
    knownAppliances,
    makeSiteEmulator,
    mepPlan,
    reconnectPolicy,
)

from tests.fakes import RecordingAppliance


def topology(seed=None, timeline=(), peers=(), siteIP="127.0.0.2", applianceIP="127.0.0.5", backend=None, rtt=None,
             locationDB=None, **site):
    emulator = {"control": "unix:east.ctl"}
    if seed is not None:
        emulator["seed"] = seed
    if rtt is not None:
        emulator["rtt"] = rtt
    if timeline:
        emulator["timeline"] = list(timeline)
    if peers:
        emulator["peers"] = list(peers)
    web = {"name": "east-web", "site": "east", "ip": "192.0.2.10", "max_clients": 100}
    if backend:
        web["backend"] = backend
    return parseTopology(
        {
            "appliance": dict({"name": "gslb1", "ip": applianceIP, "mep_secret": "s3cret", "metrics_interval": 1.0,
                               "dead_interval": 3.0}, **({"location_db": locationDB} if locationDB else {})),
            "site": [
                dict({"name": "east", "ip": siteIP, "mep_port": 3999, "emulator": emulator}, **site),
                {"name": "west", "ip": "127.0.0.3"},
            ],
            "service": [
                web,
                {"name": "east-web6", "site": "east", "ip": "2001:db8::10"},
                {"name": "west-web", "site": "west", "ip": "198.51.100.10"},
            ],
        },
        "test.toml",
    )


class FakeSession:
    """Records what the emulator sends; established by the test."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.handler = kwargs["handler"]
        self.peerName = None
        self.direction = None
        self.state = "handshake"
        self.sent = []
        self.closed = []
        self.framesIn = self.framesOut = self.bytesIn = self.bytesOut = self.authFailures = 0
        self.rtt = None
        self.lastSeq = None

    def establish(self, peerName="gslb1"):
        self.peerName = peerName
        self.state = "established"
        accepted = self.handler.authenticated(self)
        if not accepted:
            self.lose("refused")
        return accepted

    def lose(self, reason="closed"):
        self.state = "closed"
        self.handler.sessionLost(self, reason)

    def sendSnapshot(self, seq, services):
        self.sent.append(("SNAPSHOT", seq, services))
        return True

    def sendDelta(self, seq, baseSeq, changes):
        self.sent.append(("DELTA", seq, baseSeq, changes))
        return True

    def sendRTT(self, rtts):
        self.sent.append(("RTT", dict(rtts)))
        return 1

    def sendSessions(self, entries):
        entries = [dict(e) for e in entries if e["ttl"] > 0]
        if entries:
            self.sent.append(("SESSIONS", entries))
        return 1 if entries else 0

    def close(self, code, message):
        self.closed.append(code)


class EmulatorTests(SynchronousTestCase):
    def emulator(self, **kwargs):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(**kwargs), "east", sessionFactory=FakeSession)
        service.startService()
        self.addCleanup(service.stopService)
        return service, clock

    def session(self, service, peer="gslb1", direction="inbound"):
        session = service.buildSession(direction)
        session.establish(peer)
        return session

    def test_handler(self):
        service, clock = self.emulator()
        verifyObject(IMEPHandler, service)

    def test_onlyItsOwnServices(self):
        service, clock = self.emulator()
        self.assertEqual(list(service.model.services), ["east-web", "east-web6"])

    def test_snapshotWhenEstablished(self):
        service, clock = self.emulator()
        session = self.session(service)
        self.assertEqual(len(session.sent), 1)
        kind, seq, services = session.sent[0]
        self.assertEqual((kind, seq), ("SNAPSHOT", 1))
        self.assertEqual(services["east-web"]["state"], "UP")
        self.assertEqual(service.established, [session])

    def test_sessionArguments(self):
        service, clock = self.emulator()
        session = service.buildSession("outbound", "gslb1")
        self.assertEqual(session.direction, "outbound")
        self.assertEqual(
            {k: v for k, v in session.kwargs.items() if k != "handler"},
            {"role": "site", "localName": "east", "secret": b"s3cret", "clock": clock, "keepaliveInterval": 1.0,
             "deadInterval": 3.0, "expectedPeer": "gslb1"},
        )

    def test_unknownApplianceRefused(self):
        service, clock = self.emulator()
        session = service.buildSession("inbound")
        self.assertFalse(session.establish("intruder"))
        self.assertEqual((session.sent, service.established), ([], []))

    def test_extraPeersAccepted(self):
        service, clock = self.emulator(peers=[{"name": "gslb2", "ip": "127.0.0.9", "mep_port": 4000}])
        session = self.session(service, "gslb2")
        self.assertEqual(service.established, [session])

    def test_deltasToEverySessionOnlyWhenSomethingChanged(self):
        service, clock = self.emulator(seed=None)
        first, second = self.session(service), self.session(service, "gslb1", "outbound")
        clock.advance(5.0)
        self.assertEqual([len(first.sent), len(second.sent)], [1, 1])  # nothing moves without a seed
        service.model.pin("east-web", {"connections": 42})
        clock.advance(1.0)
        for session in (first, second):
            self.assertEqual(session.sent[-1], ("DELTA", 2, 1, {"east-web": {"connections": 42}}))

    def test_walkTicksEveryInterval(self):
        service, clock = self.emulator(seed=7)
        session = self.session(service)
        clock.advance(0.5)
        self.assertEqual(len(session.sent), 1)
        clock.advance(0.5)
        self.assertEqual(session.sent[-1][0], "DELTA")
        seqs = []
        for _ in range(5):
            clock.advance(1.0)
            seqs.append(session.sent[-1][1])
        self.assertEqual(seqs, sorted(set(seqs)))

    def test_resyncAnsweredWithSnapshot(self):
        service, clock = self.emulator(seed=3)
        session = self.session(service)
        clock.advance(3.0)
        service.resyncRequested(session)
        kind, seq, services = session.sent[-1]
        self.assertEqual((kind, seq, services), ("SNAPSHOT",) + service.model.snapshot())

    def test_lostSessionGetsNothingMore(self):
        service, clock = self.emulator(seed=3)
        session = self.session(service)
        session.lose()
        count = len(session.sent)
        clock.advance(5.0)
        self.assertEqual((len(session.sent), service.established), (count, []))

    def test_controlCommandsPublishAtOnce(self):
        service, clock = self.emulator()
        session = self.session(service)
        row = service.setService("east-web", {"state": "DOWN", "connections": 500})
        self.assertEqual((row["state"], row["connections"], row["pinned"]), ("DOWN", 500, ["state", "connections"]))
        self.assertEqual(session.sent[-1], ("DELTA", 2, 1, {"east-web": {"state": "DOWN", "connections": 500}}))
        row = service.unsetService("east-web", ["state"])
        self.assertEqual(row["pinned"], ["connections"])
        self.assertEqual(session.sent[-1], ("DELTA", 3, 2, {"east-web": {"state": "UP"}}))

    def test_controlErrors(self):
        service, clock = self.emulator()
        e = self.assertRaises(KeyError, service.setService, "west-web", {"state": "DOWN"})
        self.assertEqual(str(e), "no service 'west-web' at site east (its services: east-web, east-web6)")
        self.assertRaises(KeyError, service.unsetService, "nope", ["state"])
        self.assertRaises(ValueError, service.setService, "east-web", {"connections": -3})

    def test_timelineDrivesDeltas(self):
        service, clock = self.emulator(timeline=[{"at": 2.0, "service": "east-web6", "state": "DOWN"}])
        session = self.session(service)
        clock.advance(1.0)
        self.assertEqual(len(session.sent), 1)
        clock.advance(1.0)
        self.assertEqual(session.sent[-1], ("DELTA", 2, 1, {"east-web6": {"state": "DOWN"}}))

    def test_stopClosesSessionsAndTheTick(self):
        service, clock = self.emulator(seed=1)
        session = self.session(service)
        service.stopService()
        self.assertEqual(session.closed, ["shutdown"])
        self.assertFalse(service.loop.running)

    def test_stateTransitionsLoggedOnce(self):
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        service, clock = self.emulator(seed=5)
        service.setService("east-web", {"state": "DOWN"})
        for _ in range(5):
            clock.advance(1.0)
        service.setService("east-web", {"state": "DOWN"})  # no transition
        service.unsetService("east-web", ["state"])
        transitions = [e for e in events if "is now" in e.get("log_format", "")]
        self.assertEqual([(e["service"], e["state"]) for e in transitions], [("east-web", "DOWN"), ("east-web", "UP")])

    def test_describeSessions(self):
        service, clock = self.emulator()
        self.session(service)
        rows = service.describeSessions()
        self.assertEqual(len(rows), 1)
        self.assertEqual(
            {k: rows[0][k] for k in ("site", "peer", "direction", "state", "auth_failures")},
            {"site": "east", "peer": "gslb1", "direction": "inbound", "state": "established", "auth_failures": 0},
        )


class _Health(Resource):
    isLeaf = True
    code = 200

    def render_GET(self, request):
        request.setResponseCode(self.code)
        return b"ok"


class BackendTests(SynchronousTestCase):
    def test_backendDownGoesOutAtTheNextTick(self):
        health = _Health()
        clock = Clock()
        service = SiteEmulatorService(
            clock, topology(backend="http://backend.test/health"), "east",
            httpClient=StubTreq(health), sessionFactory=FakeSession,
        )
        service.startService()
        self.addCleanup(service.stopService)
        session = service.buildSession("inbound")
        session.establish("gslb1")
        self.assertEqual([c.service for c in service if hasattr(c, "url")], ["east-web"])
        clock.advance(1.0)
        self.assertEqual(service.model.source("east-web", "response_time"), "backend")
        health.code = 500
        clock.advance(1.0)  # the check sees it ...
        clock.advance(1.0)  # ... and the next tick sends it
        self.assertIn(("DELTA",), [s[:1] for s in session.sent])
        states = [s[3]["east-web"].get("state") for s in session.sent if s[0] == "DELTA" and "east-web" in s[3]]
        self.assertIn("DOWN", states)


class RealSessionTests(SynchronousTestCase):
    """Real MEPSession pairs over iosim: the emulator's handler against an appliance session."""

    def connect(self, seed=9, secret=b"s3cret", applianceName="gslb1"):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(seed=seed), "east")
        service.startService()
        self.addCleanup(service.stopService)
        appliance = RecordingAppliance()

        def applianceSession():
            session = MEPSession(role="appliance", localName=applianceName, secret=secret, clock=clock,
                                 keepaliveInterval=1.0, deadInterval=3.0, handler=appliance, expectedPeer="east")
            session.direction = "outbound"
            return session

        client, server, pump = iosim.connectedServerAndClient(
            lambda: service.buildSession("inbound"), applianceSession, clock=clock
        )
        return service, appliance, client, server, pump, clock

    def test_snapshotThenDeltasReplayToTheSameState(self):
        service, appliance, client, server, pump, clock = self.connect()
        pump.flush()
        self.assertEqual((client.state, server.state), (ESTABLISHED, ESTABLISHED))
        self.assertEqual(appliance.snapshots, [1])
        for _ in range(10):
            clock.advance(1.0)
            pump.flush()
        self.assertGreater(len(appliance.deltas), 5)
        self.assertEqual(appliance.state, service.model.snapshot()[1])
        self.assertEqual(client.resyncs, 0)

    def test_setServiceReachesTheAppliance(self):
        service, appliance, client, server, pump, clock = self.connect(seed=None)
        pump.flush()
        service.setService("east-web", {"state": "DOWN", "connections": 500})
        pump.flush()
        self.assertEqual(appliance.deltas, [(2, 1)])
        self.assertEqual(appliance.state["east-web"]["state"], "DOWN")
        self.assertEqual(appliance.state["east-web"]["connections"], 500)

    def test_gapAnsweredWithSnapshot(self):
        service, appliance, client, server, pump, clock = self.connect(seed=None)
        pump.flush()
        service.model.pin("east-web", {"load": 5})
        service.model.collect()  # seq 2 never sent: the next delta leaves a gap
        service.setService("east-web", {"load": 6})
        pump.flush()
        self.assertEqual(client.resyncs, 1)
        self.assertEqual(appliance.snapshots, [1, 3])
        self.assertEqual(appliance.state["east-web"]["load"], 6.0)

    def test_wrongSecretNeverEstablished(self):
        service, appliance, client, server, pump, clock = self.connect(secret=b"wrong")
        pump.flush()
        self.assertEqual(service.established, [])
        self.assertEqual(appliance.snapshots, [])

    def test_unknownApplianceRefused(self):
        service, appliance, client, server, pump, clock = self.connect(applianceName="rogue")
        pump.flush()
        self.assertEqual(service.established, [])
        self.assertEqual(appliance.snapshots, [])
        self.assertEqual(appliance.lost, ["peer-error:unknown-peer"])


class ControlTests(SynchronousTestCase):
    def connect(self):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(), "east", sessionFactory=FakeSession)
        service.startService()
        self.addCleanup(service.stopService)
        client, server, pump = iosim.connectedServerAndClient(lambda: SiteControlProtocol(service), amp.AMP)
        return service, client, pump

    def call(self, pump, d):
        """The outcome of a call (AMP wants errbacks attached before the answer arrives)."""
        outcome = []
        d.addBoth(outcome.append)
        pump.flush()
        return outcome[0]

    def failed(self, outcome, kind):
        self.assertIsInstance(outcome, Failure)
        self.assertTrue(outcome.check(kind), outcome)
        return outcome.value

    def test_showSetUnset(self):
        service, client, pump = self.connect()
        rows = self.call(pump, client.callRemote(ShowSiteServices))["rows"]
        self.assertEqual([r["name"] for r in rows], ["east-web", "east-web6"])
        for key in ("name", "ip", "port", "state", "connections", "response_time", "bandwidth", "packets", "load", "pinned"):
            self.assertIn(key, rows[0])
        row = self.call(pump, client.callRemote(
            SetSiteService, name="east-web", values={"state": "DOWN", "connections": 500}))["row"]
        self.assertEqual((row["state"], row["connections"]), ("DOWN", 500))
        row = self.call(pump, client.callRemote(
            UnsetSiteService, name="east-web", metrics=["connections"]))["row"]
        self.assertEqual((row["state"], row["connections"], row["pinned"]), ("DOWN", 0, ["state"]))

    def test_errors(self):
        service, client, pump = self.connect()
        error = self.failed(self.call(pump, client.callRemote(
            SetSiteService, name="nope", values={"state": "DOWN"})), KeyError)
        self.assertEqual(error.args[0], "no service 'nope' at site east (its services: east-web, east-web6)")
        error = self.failed(self.call(pump, client.callRemote(
            SetSiteService, name="east-web", values={"load": 500})), ValueError)
        self.assertEqual(error.args[0], "load: expected a percentage from 0 to 100, found 500")
        self.failed(self.call(pump, client.callRemote(
            UnsetSiteService, name="east-web", metrics=["colour"])), ValueError)
        # The connection survives its errors.
        self.assertEqual(len(self.call(pump, client.callRemote(ShowSiteServices))["rows"]), 2)

    def test_showMEP(self):
        service, client, pump = self.connect()
        service.buildSession("inbound").establish("gslb1")
        rows = self.call(pump, client.callRemote(ShowMEP))["rows"]
        self.assertEqual([(r["peer"], r["direction"]) for r in rows], [("gslb1", "inbound")])


class AssemblyTests(SynchronousTestCase):
    def test_lowerIPRule(self):
        t = topology(peers=[{"name": "gslb2", "ip": "127.0.0.1", "mep_port": 4000},
                            {"name": "gslb3", "ip": "127.0.0.2", "mep_port": 4001}])
        site = t.siteByName["east"]
        appliances = knownAppliances(t, site)
        self.assertEqual([p.name for p in appliances], ["gslb1", "gslb2", "gslb3"])
        dial, accept = mepPlan(site, appliances)
        # 127.0.0.2 < 127.0.0.5: dial gslb1; 127.0.0.1 dials us; same address: "east" < "gslb3".
        self.assertEqual(([p.name for p in dial], [p.name for p in accept]), (["gslb1", "gslb3"], ["gslb2"]))

    def test_dialsFromTheSiteAddress(self):
        reactor = MemoryReactorClock()
        service = makeSiteEmulator(reactor, topology(), "east", control="tcp:0:interface=127.0.0.1")
        service.startService()
        self.addCleanup(service.stopService)
        host, port, factory, timeout, bindAddress = reactor.tcpClients[0]
        self.assertEqual((host, port, bindAddress), ("127.0.0.5", 3011, ("127.0.0.2", 0)))
        # Nobody dials us: no MEP listener, only the control endpoint.
        self.assertEqual([(p[0], p[3]) for p in reactor.tcpServers], [(0, "127.0.0.1")])

    def test_listensWhenTheApplianceDials(self):
        reactor = MemoryReactorClock()
        service = makeSiteEmulator(reactor, topology(applianceIP="127.0.0.1"), "east",
                                   control="tcp:0:interface=127.0.0.1")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.tcpClients, [])
        self.assertIn((3999, "127.0.0.2"), [(p[0], p[3]) for p in reactor.tcpServers])

    def test_noMEPWithoutMetricExchange(self):
        reactor = MemoryReactorClock()
        service = makeSiteEmulator(reactor, topology(metric_exchange=False), "east",
                                   control="tcp:0:interface=127.0.0.1")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual((reactor.tcpClients, len(reactor.tcpServers)), ([], 1))

    def test_reconnectBacksOff(self):
        refusals = [0]
        policy = reconnectPolicy(lambda: refusals[0], jitter=lambda: 0.0)
        self.assertEqual([policy(a) for a in (1, 2, 3, 10)], [0.2, 0.4, 0.8, 5.0])
        # A peer that accepts the connection and then refuses us counts as a failure.
        refusals[0] = 3
        self.assertEqual(policy(1), 0.8)

    def test_refusedOutboundSessionsCount(self):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(), "east", sessionFactory=FakeSession)
        session = service.buildSession("outbound", "gslb1")
        session.lose("auth-failed")
        session = service.buildSession("outbound", "gslb1")
        session.lose("auth-failed")
        self.assertEqual(service.refusals, {"gslb1": 2})
        service.buildSession("outbound", "gslb1").establish("gslb1")
        self.assertEqual(service.refusals, {"gslb1": 0})

    def test_controlEndpoint(self):
        t = topology()
        self.assertEqual(controlEndpointDescription(t.siteByName["east"]), "unix:east.ctl:mode=600")
        self.assertEqual(controlEndpointDescription(t.siteByName["west"]), "unix:west.ctl:mode=600")
        self.assertEqual(controlEndpointDescription(t.siteByName["east"], "unix:/tmp/x"), "unix:/tmp/x:mode=600")


class OptionsTests(SynchronousTestCase):
    def write(self, text):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(text)
        return path

    GOOD = """
[appliance]
name = "gslb1"
ip = "127.0.0.5"
[[site]]
name = "east"
ip = "127.0.0.2"
[[site]]
name = "legacy"
ip = "127.0.0.40"
protocol = "snmp"
snmp = { community = "public" }
"""

    def test_requiredOptions(self):
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--site", "east"])
        path = self.write(self.GOOD)
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--config", path])
        self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                          ["--config", path, "--site", "east", "--log-format", "xml"])

    def test_good(self):
        options = tap.Options()
        options.parseOptions(["--config", self.write(self.GOOD), "--site", "east", "--control", "unix:/tmp/c"])
        self.assertEqual((options["site"], options["control"]), ("east", "unix:/tmp/c"))

    def test_unknownSite(self):
        path = self.write(self.GOOD)
        e = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--config", path, "--site", "north"])
        self.assertEqual(
            str(e), f"twistd gslb-site: {path}: --site: expected the name of a [[site]] (known: east, legacy), found 'north'"
        )

    def test_snmpSiteRefused(self):
        path = self.write(self.GOOD)
        e = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--config", path, "--site", "legacy"])
        self.assertIn("[[site]] 'legacy': key 'protocol'", str(e))

    def test_badConfig(self):
        path = self.write(self.GOOD.replace('ip = "127.0.0.2"', 'ip = "127.0.0.2"\ncolour = 1'))
        e = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--config", path, "--site", "east"])
        self.assertIn(f"twistd gslb-site: {path}: [[site]] 'east': key 'colour'", str(e))

    def test_sameAddressAndName(self):
        path = self.write(self.GOOD.replace('name = "gslb1"\nip = "127.0.0.5"', 'name = "east"\nip = "127.0.0.2"'))
        e = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--config", path, "--site", "east"])
        self.assertIn("key 'ip'", str(e))

    def test_jsonLogs(self):
        parent = {"logger": None}
        options = tap.Options()
        options.parent = parent
        options.parseOptions(["--config", self.write(self.GOOD), "--site", "east", "--log-format", "json"])
        self.assertEqual(parent["logger"], "gslb_twisted.logs.jsonStdoutLogObserver")


class TLSAssemblyTests(SynchronousTestCase):
    def tlsTopology(self, applianceIP, certificate):
        t = topology(applianceIP=applianceIP)
        from dataclasses import replace

        appliance = replace(t.appliance, mep_tls=True, mep_tls_cert=certificate, mep_tls_key=certificate)
        return replace(t, appliance=appliance)

    def test_listenerAndDialerUseTLS(self):
        import twisted.test

        pem = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")
        reactor = MemoryReactorClock()
        service = makeSiteEmulator(reactor, self.tlsTopology("127.0.0.1", pem), "east", control="tcp:0")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([(p[0], p[4]) for p in reactor.sslServers], [(3999, "127.0.0.2")])
        reactor = MemoryReactorClock()
        service = makeSiteEmulator(reactor, self.tlsTopology("127.0.0.5", pem), "east", control="tcp:0")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.tcpClients[0][4], ("127.0.0.2", 0))  # TLS wraps the same TCP dial

    def test_unreadableCertificateIsAConfigError(self):
        from gslb_twisted.config import ConfigError

        e = self.assertRaises(ConfigError, makeSiteEmulator, MemoryReactorClock(),
                              self.tlsTopology("127.0.0.1", "/nonexistent.pem"), "east", control="tcp:0")
        self.assertIn("[appliance]: key 'mep_tls_cert'", str(e))


class ControlTokenTests(SynchronousTestCase):
    """A site emulator's TCP control endpoint wants the lab's control_token first, as the appliance's."""

    def connect(self, token):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(), "east", sessionFactory=FakeSession)
        service.startService()
        self.addCleanup(service.stopService)
        protocol = SiteControlProtocol(service, token, clock)
        client, server, pump = iosim.connectedServerAndClient(lambda: protocol, amp.AMP)
        return protocol, client, pump, clock

    def test_tokenFirst(self):
        from gslb_twisted.protocol.commands import Authenticate, ShowSiteServices, Unauthenticated

        protocol, client, pump, clock = self.connect("t0ken")
        outcome = []
        client.callRemote(Authenticate, token="guess").addBoth(outcome.append)
        pump.flush()
        self.assertTrue(outcome[0].check(Unauthenticated))
        clock.advance(0)
        pump.flush()
        self.assertTrue(pump.serverIO.disconnecting)

        protocol, client, pump, clock = self.connect("t0ken")
        client.callRemote(ShowSiteServices).addErrback(lambda f: None)
        pump.flush()
        self.assertTrue(pump.serverIO.disconnecting)

        protocol, client, pump, clock = self.connect("t0ken")
        answers = []
        client.callRemote(Authenticate, token="t0ken").addCallback(answers.append)
        pump.flush()
        client.callRemote(ShowSiteServices).addCallback(answers.append)
        pump.flush()
        self.assertEqual(answers[0], {})
        self.assertEqual([row["name"] for row in answers[1]["rows"]], ["east-web", "east-web6"])
        self.assertFalse(pump.serverIO.disconnecting)
