"""
The real site emulator: C{twistd -n gslb-site} as a subprocess, steered
with the real gslb-console, talking MEP over real sockets to appliance
sessions run by the test, health-checking a real HTTP backend.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, clientFromString, connectProtocol
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site as WebSite

from gslb_twisted.mep.session import MEPSession
from gslb_twisted.protocol.commands import SetScenario, ShowScenarios, StopScenario, Subscribe
from tests.test_console_events_server import RecordingConsole
from tests.fakes import RecordingAppliance
from tests.support import CONSOLE, TWISTD, _Collector, freePort, poll

SECRET = "s3cret"

TOPOLOGY = """
[appliance]
name = "test"
ip = "{applianceIP}"
mep_secret = "{secret}"
metrics_interval = 0.2
dead_interval = 1.0

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = {mepPort}
  [site.emulator]
  control = "unix:unused.ctl"
  peers = [{peers}]
  {scenarios}

[[site]]
name = "west"
ip = "127.0.0.3"

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"
max_clients = 1000
{backend}

[[service]]
name = "east-web6"
site = "east"
ip = "2001:db8::10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"
"""


class ApplianceEnd(RecordingAppliance):
    """A test-run appliance: builds real appliance-role MEP sessions."""

    def session(self, name="test", secret=SECRET, direction="outbound"):
        session = MEPSession(
            role="appliance", localName=name, secret=secret.encode(), clock=reactor,
            keepaliveInterval=0.2, deadInterval=1.0, handler=self,
            expectedPeer="east" if direction == "outbound" else None,
        )
        session.direction = direction
        return session


class SiteProcess:
    """One C{twistd -n gslb-site} run by a test."""

    def __init__(self, testCase, applianceIP="127.0.0.1", peers="", backend="", site="east", scenarios="") -> None:
        self.testCase = testCase
        self.directory = os.path.abspath(testCase.mktemp())
        os.makedirs(self.directory)
        self.mepPort = freePort("127.0.0.2")
        self.config = os.path.join(self.directory, "topology.toml")
        with open(self.config, "w") as f:
            f.write(TOPOLOGY.format(applianceIP=applianceIP, secret=SECRET, mepPort=self.mepPort, peers=peers,
                                    backend=backend, scenarios=scenarios))
        # A unix socket path must fit in 108 bytes: trial's temp paths do not.
        socketDirectory = tempfile.mkdtemp(prefix="gslb-site-")
        testCase.addCleanup(shutil.rmtree, socketDirectory, True)
        self.control = "unix:" + os.path.join(socketDirectory, "east.ctl")
        self.args = [TWISTD, "--pidfile=", "-n", "gslb-site", "--config", self.config, "--site", site,
                     "--control", self.control]
        self.collector = _Collector()
        self.process = None

    @property
    def output(self) -> str:
        return self.collector.output.decode("utf-8", "replace")

    def start(self) -> None:
        self.process = reactor.spawnProcess(self.collector, TWISTD, self.args, env=dict(os.environ),
                                            path=self.directory)
        self.testCase.addCleanup(self.stop)

    async def console(self, command: str, asJSON: bool = True):
        arguments = ["--connect", self.control, "-c", command] + (["--json"] if asJSON else [])
        out, err, code = await getProcessOutputAndValue(CONSOLE, arguments, env=dict(os.environ))
        return code, out.decode(), err.decode()

    async def services(self) -> dict:
        code, out, err = await self.console("show services")
        if code != 0:
            raise AssertionError(f"show services exited {code}: {err}")
        return {row["name"]: row for row in json.loads(out)}

    async def waitUntilServing(self) -> None:
        async def answering():
            if self.collector.ended.called:
                raise AssertionError(f"gslb-site exited early:\n{self.output}")
            code, out, err = await self.console("show services")
            return code == 0

        await poll(answering, 30, what="the site emulator's control endpoint")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.collector.ended.called:
            return
        self.process.signalProcess(sig)
        await poll(lambda: self.collector.ended.called, 30, what="gslb-site to exit")

    def assertCleanExit(self) -> None:
        output = self.output
        self.testCase.assertTrue(
            self.collector.exitCode == 0 or self.collector.signal == signal.SIGTERM,
            f"exit code {self.collector.exitCode}, signal {self.collector.signal}:\n{output}",
        )
        self.testCase.assertIn("Server Shut Down", output)
        for bad in ("Traceback", "Unhandled"):
            self.testCase.assertNotIn(bad, output)


class SiteEmulatorTests(TestCase):
    timeout = 90

    async def started(self, **kwargs) -> SiteProcess:
        site = SiteProcess(self, **kwargs)
        site.start()
        await site.waitUntilServing()
        return site

    async def dial(self, site: SiteProcess, appliance: ApplianceEnd, **kwargs):
        """The appliance (127.0.0.1, lower than the site) dials the site, as the lower-IP rule says."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.2", site.mepPort, bindAddress=("127.0.0.1", 0))
        session = await connectProtocol(endpoint, appliance.session(**kwargs))
        self.addCleanup(lambda: session.transport.loseConnection() if session.transport.connected else None)
        return session

    async def test_consoleAndInboundMEP(self):
        site = await self.started()
        services = await site.services()
        self.assertEqual(sorted(services), ["east-web", "east-web6"])
        web = services["east-web"]
        self.assertEqual(
            {k: web[k] for k in ("state", "connections", "response_time", "bandwidth", "packets", "load", "pinned")},
            {"state": "UP", "connections": 0, "response_time": 10.0, "bandwidth": 0.0, "packets": 0, "load": 0.0,
             "pinned": []},
        )

        appliance = ApplianceEnd()
        session = await self.dial(site, appliance)
        await poll(lambda: appliance.snapshots, 10, what="the snapshot")
        self.assertEqual(appliance.state["east-web"]["state"], "UP")
        self.assertEqual(session.peerName, "east")

        code, out, err = await site.console("set service east-web -state DOWN -connections 500")
        self.assertEqual(code, 0, err)
        self.assertEqual((json.loads(out)["state"], json.loads(out)["connections"]), ("DOWN", 500))
        services = await site.services()
        self.assertEqual((services["east-web"]["state"], services["east-web"]["connections"]), ("DOWN", 500))
        self.assertEqual(services["east-web"]["pinned"], ["state", "connections"])
        await poll(lambda: appliance.state["east-web"]["state"] == "DOWN", 10, what="the DELTA")
        self.assertEqual(appliance.state["east-web"]["connections"], 500)
        self.assertTrue(appliance.deltas)

        code, out, err = await site.console("unset service east-web -state", asJSON=False)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0].split()[:4], ["NAME", "IP", "PORT", "STATE"])
        await poll(lambda: appliance.state["east-web"]["state"] == "UP", 10, what="the release")

        code, out, err = await site.console("set service nope -state DOWN")
        self.assertEqual(code, 1)
        self.assertIn("no service 'nope' at site east", err)
        code, out, err = await site.console("set service east-web -connections lots")
        self.assertEqual(code, 2)
        self.assertIn("-connections expects a non-negative integer", err)
        code, out, err = await site.console("show servics")
        self.assertEqual(code, 2)
        self.assertIn("did you mean 'show services'?", err)

        code, out, err = await site.console("show mep")
        self.assertEqual(code, 0, err)
        rows = json.loads(out)
        self.assertEqual([(r["peer"], r["direction"], r["state"]) for r in rows], [("test", "inbound", "established")])

        path = site.control.split(":", 1)[1]
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

        await site.stop()
        site.assertCleanExit()
        await poll(lambda: appliance.lost, 10, what="the session to end")
        self.assertEqual(appliance.lost, ["closed"])  # ERROR shutdown: an orderly close
        self.assertIn("service east-web is now DOWN", site.output)

    async def test_wrongSecretAndUnknownApplianceRefused(self):
        site = await self.started()
        appliance = ApplianceEnd()
        await self.dial(site, appliance, secret="wrong")
        await poll(lambda: appliance.lost, 10, what="the refusal")
        self.assertEqual(appliance.snapshots, [])
        self.assertIn(appliance.lost[0], ("auth-failed", "peer-error:auth-failed"))
        stranger = ApplianceEnd()
        await self.dial(site, stranger, name="stranger")
        await poll(lambda: stranger.lost, 10, what="the refusal")
        self.assertEqual((stranger.snapshots, stranger.lost), ([], ["peer-error:unknown-peer"]))

    async def test_dialsAppliancesWithHigherAddresses(self):
        # Appliance "test" at 127.0.0.1 dials the site; "ap2" at 127.0.0.9 is dialled by it.
        ap2Port = freePort("127.0.0.9")
        appliance = ApplianceEnd()
        peers = []

        def accepted():
            session = appliance.session(name="ap2", direction="inbound")
            peers.append(session)
            return session

        port = await TCP4ServerEndpoint(reactor, ap2Port, interface="127.0.0.9").listen(Factory.forProtocol(accepted))
        self.addCleanup(port.stopListening)
        site = await self.started(peers=f'{{ name = "ap2", ip = "127.0.0.9", mep_port = {ap2Port} }}')
        await poll(lambda: appliance.snapshots, 10, what="the site to dial ap2 and send its snapshot")
        self.assertEqual(peers[0].transport.getPeer().host, "127.0.0.2")  # from the site's own address
        code, out, err = await site.console("set service east-web6 -load 75")
        self.assertEqual(code, 0, err)
        await poll(lambda: appliance.state["east-web6"]["load"] == 75.0, 10, what="the DELTA to ap2")
        await site.stop()
        site.assertCleanExit()
        await poll(lambda: appliance.lost, 10, what="the session to end")

    async def test_backendStoppedGoesDownOverMEP(self):
        class Health(Resource):
            isLeaf = True

            def render_GET(self, request):
                return b"ok"

        backendPort = freePort("127.0.0.1")
        web = await TCP4ServerEndpoint(reactor, backendPort, interface="127.0.0.1").listen(WebSite(Health()))
        stopped = []

        async def stopWeb():
            if not stopped:
                stopped.append(True)
                await web.stopListening()

        self.addCleanup(stopWeb)
        site = await self.started(backend=f'backend = "http://127.0.0.1:{backendPort}/health"')
        appliance = ApplianceEnd()
        await self.dial(site, appliance)
        await poll(lambda: appliance.snapshots, 10, what="the snapshot")

        async def measured():
            services = await site.services()
            return services["east-web"]["sources"]["response_time"] == "backend"

        await poll(measured, 10, what="the backend's response time")
        self.assertEqual(appliance.state["east-web"]["state"], "UP")
        await stopWeb()
        await poll(lambda: appliance.state["east-web"]["state"] == "DOWN", 10, what="the backend DOWN over MEP")
        self.assertEqual(appliance.state["east-web6"]["state"], "UP")
        await site.stop()
        site.assertCleanExit()


class ScenarioAndEventsTests(TestCase):
    """A scenario set over the control endpoint reaches the appliance; a subscribed console hears it all."""

    timeout = 90

    SCENARIOS = (
        'scenarios = { surge = [ { at = 0, service = "east-web", connections = 900 }, '
        '{ at = 0.5, service = "east-web", state = "DOWN" } ] }'
    )

    async def test_scenarioOverMEPWithEvents(self):
        site = SiteProcess(self, scenarios=self.SCENARIOS)
        site.start()
        await site.waitUntilServing()
        console = await connectProtocol(clientFromString(reactor, site.control), RecordingConsole())
        self.addCleanup(console.transport.loseConnection)
        state = (await console.callRemote(Subscribe))["state"]
        self.assertEqual(
            {k: state[k] for k in ("site", "services_up", "services_down", "appliances_connected", "control")},
            {"site": "east", "services_up": 2, "services_down": 0, "appliances_connected": 0,
             "control": site.control},
        )

        appliance = ApplianceEnd()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.2", site.mepPort, bindAddress=("127.0.0.1", 0))
        session = await connectProtocol(endpoint, appliance.session())
        self.addCleanup(lambda: session.transport.loseConnection() if session.transport.connected else None)
        await poll(lambda: appliance.snapshots, 10, what="the snapshot")

        row = (await console.callRemote(SetScenario, name="surge"))["row"]
        self.assertEqual((row["name"], row["running"], row["events"]), ("surge", True, 2))
        await poll(lambda: appliance.state["east-web"]["state"] == "DOWN", 10, what="the scenario's DOWN over MEP")
        self.assertEqual(appliance.state["east-web"]["connections"], 900)
        rows = (await console.callRemote(ShowScenarios))["rows"]
        self.assertEqual([(r["name"], r["running"], r["pending"]) for r in rows], [("surge", True, 0)])
        await console.callRemote(StopScenario)
        await poll(lambda: appliance.state["east-web"]["state"] == "UP", 10, what="the scenario's release")

        def told(kind, **fields):
            return [e for e in console.events if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())]

        await poll(lambda: told("toolbar", appliances_connected=1), 10, what="a toolbar event")
        self.assertTrue(told("mep", peer="test", state="up"))
        self.assertTrue(told("scenario", scenario="surge", state="started"))
        self.assertTrue(told("scenario", scenario="surge", state="stopped"))
        self.assertTrue(told("service", service="east-web", state="DOWN", source="scenario"))
        await site.stop()
        site.assertCleanExit()


class BadConfigTests(TestCase):
    timeout = 60

    async def test_unknownSiteStartsNothing(self):
        site = SiteProcess(self)
        args = site.args[1:]
        args[args.index("--site") + 1] = "north"
        out, err, code = await getProcessOutputAndValue(TWISTD, args, env=dict(os.environ), path=site.directory)
        self.assertNotEqual(code, 0)
        self.assertIn(f"twistd gslb-site: {site.config}: --site: expected the name of a [[site]]", err.decode())
        self.assertFalse(os.path.exists(site.control.split(":", 1)[1]))

    async def test_badConfigNamesFileTableAndKey(self):
        site = SiteProcess(self)
        with open(site.config) as f:
            text = f.read()
        with open(site.config, "w") as f:
            f.write(text.replace("metrics_interval = 0.2", 'metrics_interval = "fast"'))
        out, err, code = await getProcessOutputAndValue(TWISTD, site.args[1:], env=dict(os.environ),
                                                        path=site.directory)
        self.assertNotEqual(code, 0)
        self.assertIn(f"twistd gslb-site: {site.config}: [appliance]: key 'metrics_interval'", err.decode())

    async def test_tcpControlWithoutTokenStartsNothing(self):
        """A TCP control endpoint without [appliance] control_token: refused, by name."""
        site = SiteProcess(self)
        args = site.args[1:]
        if "--control" in args:
            args[args.index("--control") + 1] = "tcp:0:interface=127.0.0.1"
        else:
            args += ["--control", "tcp:0:interface=127.0.0.1"]
        out, err, code = await getProcessOutputAndValue(TWISTD, args, env=dict(os.environ), path=site.directory)
        self.assertNotEqual(code, 0)
        self.assertIn("needs [appliance] control_token", err.decode())
