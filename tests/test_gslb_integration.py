"""
The appliance with real site emulators: MEP in both directions of the
lower-IP rule, mastership spread over two cores, metrics identical on every
core, sites killed and restarted, a wrong secret refused, a master core
killed.  Real processes, real sockets, polled with deadlines.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.support import Appliance, SiteProcess, addresses, alive, freePort, poll, query

# east and west have lower addresses than the appliance (127.0.0.5): they
# dial it; the appliance dials north.
TOPOLOGY = """
[appliance]
name = "gslbtest"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
  [site.emulator]

[[site]]
name = "west"
ip = "127.0.0.3"
mep_port = WEST_PORT
  [site.emulator]

[[site]]
name = "north"
ip = "127.0.0.8"
mep_port = NORTH_PORT
  [site.emulator]

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[service]]
name = "north-web"
site = "north"
ip = "203.0.113.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
services = ["east-web", "west-web", "north-web"]

[[vserver]]
name = "rr"
domains = ["rr.test.gslb"]
lb_method = "ROUNDROBIN"
services = ["east-web", "west-web", "north-web"]
"""

ADDRESS = {"east": "192.0.2.10", "west": "198.51.100.10", "north": "203.0.113.10"}


class GSLBTests(TestCase):
    timeout = 180

    async def _topology(self, cores: int = 2) -> tuple[Appliance, dict[str, SiteProcess]]:
        text = TOPOLOGY
        for site, ip in (("EAST", "127.0.0.2"), ("WEST", "127.0.0.3"), ("NORTH", "127.0.0.8")):
            text = text.replace(f"{site}_PORT", str(freePort(ip)))
        appliance = Appliance(self, text, cores=cores)
        sites = {name: SiteProcess(self, appliance.config, name) for name in ("east", "west", "north")}
        for site in sites.values():
            site.start()
        appliance.start()
        await appliance.waitUntilServing()
        await self._allUp(appliance)
        return appliance, sites

    async def _sites(self, appliance: Appliance) -> dict[str, dict]:
        rows = await appliance.console("show gslb site")
        return {row["name"]: row for row in rows}

    async def _allUp(self, appliance: Appliance, deadline: float = 30.0) -> None:
        async def up():
            sites = await self._sites(appliance)
            return all(row["state"] == "UP" for row in sites.values())

        await poll(up, deadline, what="every site to be UP")

    async def _state(self, appliance, site, state, deadline=30.0):
        async def reached():
            return (await self._sites(appliance))[site]["state"] == state

        await poll(reached, deadline, what=f"site {site} to be {state}")

    async def _answers(self, appliance, name="www.test.gslb", count=20) -> list[str]:
        found = []
        for _ in range(count):
            response = await query(appliance.port, name)
            found.extend(addresses(response))
        return found

    async def _consistent(self, appliance, deadline=30.0):
        async def consistent():
            return (await appliance.console("show consistency"))["consistent"]

        await poll(consistent, deadline, what="every core to hold the same metric versions")

    async def test_mastershipSpreadAndMetricsOnEveryCore(self):
        appliance, sites = await self._topology()
        rows = await self._sites(appliance)
        self.assertEqual({row["master_core"] for row in rows.values()}, {0, 1})
        self.assertEqual(rows["north"]["direction"], "outbound")
        self.assertEqual(rows["east"]["direction"], "inbound")
        mep = await appliance.console("show mep")
        directions = {row["site"]: row["direction"] for row in mep if row["state"] == "established"}
        self.assertEqual(directions, {"east": "inbound", "west": "inbound", "north": "outbound"})

        await sites["east"].console("set service east-web -connections 500")
        await sites["west"].console("set service west-web -connections 10")
        await sites["north"].console("set service north-web -connections 300")

        async def sameOnEveryCore():
            views = [await appliance.console(f"show metrics west --core {core}") for core in (0, 1)]
            values = [{s["name"]: s["connections"] for s in view["services"]} for view in views]
            versions = [(view["epoch"], view["seq"]) for view in views]
            return values[0] == values[1] == {"west-web": 10} and versions[0] == versions[1]

        await poll(sameOnEveryCore, what="west's metrics on both cores")
        await self._consistent(appliance)

        async def leastConnection():
            return set(await self._answers(appliance)) == {ADDRESS["west"]}

        await poll(leastConnection, what="LEASTCONNECTION to answer west")
        # Round robin still spreads over every site.
        self.assertEqual(set(await self._answers(appliance, "rr.test.gslb", 30)), set(ADDRESS.values()))

    async def test_siteKilledLeavesAnswersAndComesBack(self):
        appliance, sites = await self._topology()
        await sites["east"].console("set service east-web -connections 100")
        await sites["north"].console("set service north-web -connections 100")
        await sites["west"].console("set service west-web -connections 1")
        await poll(lambda: _only(self, appliance, ADDRESS["west"]), what="west to win")
        await sites["west"].stop(signal.SIGKILL)
        await self._state(appliance, "west", "DOWN")
        for name in ("www.test.gslb", "rr.test.gslb"):
            answers = await self._answers(appliance, name, 30)
            self.assertNotIn(ADDRESS["west"], answers)
            self.assertTrue(answers)
        sites["west"].start()
        await self._state(appliance, "west", "UP")
        # Restarted with fresh metrics (0 connections): it wins again.
        await poll(lambda: _only(self, appliance, ADDRESS["west"]), what="west back in the answers")

    async def test_wrongSecretRefused(self):
        appliance, sites = await self._topology()
        await sites["east"].stop()
        await self._state(appliance, "east", "DOWN")
        wrong = os.path.join(appliance.directory, "wrong-secret.toml")
        with open(appliance.config) as f:
            text = f.read()
        with open(wrong, "w") as f:
            f.write(text.replace('mep_secret = "s3cret"', 'mep_secret = "guess"'))
        sites["east"].start(wrong)

        async def refused():
            rows = await appliance.console("show mep")
            return sum(row["auth_failures"] for row in rows if row["site"] == "east") > 0

        await poll(refused, what="east's wrong secret to be refused")
        self.assertEqual((await self._sites(appliance))["east"]["state"], "DOWN")
        self.assertNotIn(ADDRESS["east"], await self._answers(appliance, "rr.test.gslb", 30))

    async def test_masterCoreKilled(self):
        appliance, sites = await self._topology()
        # Keep west DOWN throughout: no answer may ever name it.
        await sites["west"].stop(signal.SIGKILL)
        await self._state(appliance, "west", "DOWN")
        rows = await self._sites(appliance)
        victimCore = rows["north"]["master_core"]
        cores = await appliance.console("show cores")
        victimPid = [c["pid"] for c in cores if c["core"] == victimCore][0]

        seen, stop = [], []

        async def load():
            while not stop:
                try:
                    response = await query(appliance.port, "rr.test.gslb", timeout=0.5)
                except Exception:
                    continue
                seen.extend(addresses(response))

        loading = defer.Deferred.fromCoroutine(load())
        await poll(lambda: len(seen) >= 20, what="load before the kill")
        os.kill(victimPid, signal.SIGKILL)

        async def remastered():
            sites_ = await self._sites(appliance)
            return all(
                row["master_core"] not in (None, victimCore) and row["state"] == "UP"
                for name, row in sites_.items() if name != "west"
            )

        await poll(remastered, what="the dead core's sites to get a new master")
        await poll(lambda: not alive(victimPid), what="the killed core to be gone")
        await appliance.waitUntilServing()
        await self._consistent(appliance)
        count = len(seen)
        await poll(lambda: len(seen) >= count + 20, what="load after the respawn")
        stop.append(True)
        await loading
        self.assertNotIn(ADDRESS["west"], seen)
        self.assertEqual(set(seen), {ADDRESS["east"], ADDRESS["north"]})


async def _only(test: GSLBTests, appliance: Appliance, address: str) -> bool:
    return set(await test._answers(appliance)) == {address}


MONITORED = """
[appliance]
name = "gslbtest"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "test.gslb"

[[site]]
name = "lab"
ip = "127.0.0.9"
metric_exchange = false

[[site]]
name = "spare"
ip = "127.0.0.10"
metric_exchange = false

[[service]]
name = "lab-web"
site = "lab"
ip = "127.0.0.1"
port = HTTP_PORT
monitor = { type = "http", url = "http://127.0.0.1:HTTP_PORT/health", interval = 0.5, timeout = 0.25 }

[[service]]
name = "spare-web"
site = "spare"
ip = "192.0.2.99"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
lb_method = "ROUNDROBIN"
services = ["lab-web", "spare-web"]
"""


def loadsPyOpenSSL(pid: int) -> bool:
    """Whether process C{pid} has pyOpenSSL's cryptography bindings mapped."""
    with open(f"/proc/{pid}/maps") as f:
        return "cryptography" in f.read()


class MonitorTests(TestCase):
    timeout = 120

    def _listen(self, port: int, tls: bool = False):
        from twisted.internet import reactor, ssl
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.static import Data

        root = Resource()
        root.putChild(b"health", Data(b"ok", "text/plain"))
        if tls:
            import twisted.test

            pem = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")
            context = ssl.DefaultOpenSSLContextFactory(pem, pem)
            listening = reactor.listenSSL(port, Site(root), context, interface="127.0.0.1")
        else:
            listening = reactor.listenTCP(port, Site(root), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return listening

    async def test_httpsMonitorInACore(self):
        """
        An HTTPS monitor (self-signed backend, not verified, as NetScaler's
        secure monitors) works in a real core; a core whose topology uses
        no TLS does not load pyOpenSSL at all (12 MiB of each core).
        """
        port = freePort()
        self._listen(port, tls=True)
        topology = MONITORED.replace('type = "http", url = "http:', 'type = "https", url = "https:')
        appliance = Appliance(self, topology.replace("HTTP_PORT", str(port)))
        appliance.start()
        await appliance.waitUntilServing()

        async def serviceUp():
            rows = await appliance.console("show gslb service lab-web")
            return rows[0]["state"] == "UP"

        await poll(serviceUp, what="lab-web UP by its HTTPS monitor")
        cores = await appliance.console("show cores")
        self.assertTrue(all(loadsPyOpenSSL(c["pid"]) for c in cores))

        plain = Appliance(self, MONITORED.replace("HTTP_PORT", str(freePort())))
        plain.start()
        await plain.waitUntilServing()
        cores = await plain.console("show cores")
        self.assertEqual([loadsPyOpenSSL(c["pid"]) for c in cores], [False, False])

    async def test_httpMonitorOnMasterCoreDecidesServiceState(self):
        port = freePort()
        backend = self._listen(port)
        appliance = Appliance(self, MONITORED.replace("HTTP_PORT", str(port)))
        appliance.start()
        await appliance.waitUntilServing()

        async def answers() -> set:
            found = set()
            for _ in range(10):
                found.update(addresses(await query(appliance.port, "www.test.gslb")))
            return found

        async def serviceState(state):
            rows = await appliance.console("show gslb service lab-web")
            return rows[0]["state"] == state

        await poll(lambda: serviceState("UP"), what="lab-web UP by its monitor")
        self.assertEqual(await answers(), {"127.0.0.1", "192.0.2.99"})
        await backend.stopListening()
        await poll(lambda: serviceState("DOWN"), what="lab-web DOWN once its backend is gone")
        rows = await appliance.console("show gslb service lab-web")
        self.assertEqual(rows[0]["reason"], "monitor DOWN")
        self.assertEqual(await answers(), {"192.0.2.99"})
        self._listen(port)
        await poll(lambda: serviceState("UP"), what="lab-web UP again")

        async def backInAnswers():
            return "127.0.0.1" in await answers()

        await poll(backInAnswers, what="lab-web back in the answers")


TLS_TOPOLOGY = """
[appliance]
name = "gslbtest"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
mep_tls = true
mep_tls_cert = "CERT"
mep_tls_key = "KEY"
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
  [site.emulator]

[[site]]
name = "north"
ip = "127.0.0.8"
mep_port = NORTH_PORT
  [site.emulator]

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "north-web"
site = "north"
ip = "203.0.113.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
services = ["east-web", "north-web"]
"""


class TLSTests(TestCase):
    timeout = 120

    async def test_mepOverTLSInBothDirections(self):
        from tests.support import selfSignedCertificate

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert, key = selfSignedCertificate(directory, "lab", ["127.0.0.2", "127.0.0.5", "127.0.0.8"])
        text = TLS_TOPOLOGY.replace("CERT", cert).replace("KEY", key)
        text = text.replace("EAST_PORT", str(freePort("127.0.0.2"))).replace("NORTH_PORT", str(freePort("127.0.0.8")))
        appliance = Appliance(self, text)
        sites = [SiteProcess(self, appliance.config, name) for name in ("east", "north")]
        for site in sites:
            site.start()
        appliance.start()
        await appliance.waitUntilServing()

        async def established():
            rows = await appliance.console("show mep")
            return {row["site"]: row["direction"] for row in rows if row["state"] == "established"}

        async def bothUp():
            return await established() == {"east": "inbound", "north": "outbound"}

        await poll(bothUp, what="both MEP sessions over TLS")
        rows = await appliance.console("show gslb site")
        self.assertEqual({row["name"]: row["state"] for row in rows}, {"east": "UP", "north": "UP"})
        for site in sites:
            self.assertNotIn("Traceback", site.output)
