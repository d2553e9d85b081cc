"""
SNMP sites end to end: a 2-core appliance polling real snmpd agents (private
instances on their own loopback addresses, started by the fixture) next to a
MEP site emulator; real DNS queries.

The SNMP site "legacy" uses a table of the agent's controllable values
(tests.snmpd BASE), so that the test moves them; "linux" uses the shipped
linux-host table against the agent's own MIBs.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.snmpd import BASE, SNMPAgent, requireSnmpd
from tests.support import Appliance, SiteProcess, addresses, freePort, poll, query

TOPOLOGY = """
[appliance]
name = "gslbsnmp"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "snmp.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
  [site.emulator]

[[site]]
name = "legacy"
ip = "127.0.0.40"
protocol = "snmp"
snmp = { port = LEGACY_PORT, version = "2c", community = "gslb-ro", table = "lab-lb" }

[[site]]
name = "secure"
ip = "127.0.0.41"
protocol = "snmp"
  [site.snmp]
  port = SECURE_PORT
  version = "3"
  user = "gslb"
  auth_protocol = "SHA"
  auth_key = "SECURE_AUTH"
  priv_protocol = "AES"
  priv_key = "privpass123"
  table = "linux-host"

[[metric_table]]
name = "lab-lb"
  [metric_table.metrics]
  connections = { oid = "BASE.1.0", ceiling = 1000 }
  load = { oid = "BASE.2.0", ceiling = 100 }
  requests = { oid = "BASE.3.0", type = "counter" }

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "legacy-web"
site = "legacy"
ip = "192.0.2.40"

[[service]]
name = "secure-web"
site = "secure"
ip = "192.0.2.41"

[[vserver]]
name = "www"
domains = ["www.snmp.gslb"]
lb_method = "CUSTOMLOAD"
services = ["east-web", "legacy-web"]
custom_load = [{ metric = "connections", ceiling = 1000 }, { metric = "load" }]

[[vserver]]
name = "host"
domains = ["host.snmp.gslb"]
lb_method = "ROUNDROBIN"
services = ["secure-web"]
"""

EAST, LEGACY, SECURE = "192.0.2.10", "192.0.2.40", "192.0.2.41"


class SNMPSiteTests(TestCase):
    timeout = 180

    def setUp(self):
        requireSnmpd()

    async def _start(self, secureAuth="authpass123", community="gslb-ro"):
        legacy = SNMPAgent(self, "127.0.0.40", community=community,
                           values={"1.0": ("gauge", 100), "2.0": ("gauge", 10), "3.0": ("counter", 1000)})
        secure = SNMPAgent(self, "127.0.0.41", community="unused-community",
                           users=[("gslb", "SHA", "authpass123", "AES", "privpass123")])
        await legacy.start()
        await secure.start()
        text = (TOPOLOGY.replace("BASE", BASE)
                .replace("EAST_PORT", str(freePort("127.0.0.2")))
                .replace("LEGACY_PORT", str(legacy.port))
                .replace("SECURE_PORT", str(secure.port))
                .replace("SECURE_AUTH", secureAuth))
        appliance = Appliance(self, text, cores=2)
        east = SiteProcess(self, appliance.config, "east")
        east.start()
        appliance.start()
        await appliance.waitUntilServing(name="www.snmp.gslb")
        # east, over MEP, at a middling load: 300 connections, 30 %.
        await east.console("set service east-web -connections 300 -load 30")
        return appliance, east, legacy, secure

    async def _site(self, appliance, name):
        rows = await appliance.console(f"show gslb site {name}")
        return rows[0]

    async def _onlyAnswer(self, appliance, expected) -> bool:
        found = set()
        for _ in range(6):
            found.update(addresses(await query(appliance.port, "www.snmp.gslb")))
        return found == {expected}

    async def test_snmpValuesMoveCustomLoadAnswers(self):
        """
        CUSTOMLOAD weighs a MEP site and an SNMP site in one decision: values
        changed at the SNMP agent move the answers, on both cores.
        """
        appliance, east, legacy, secure = await self._start()

        # legacy: 100/1000 and 10 % -> load 0.1; east 0.3: legacy wins.
        await poll(lambda: self._onlyAnswer(appliance, LEGACY), what="legacy, the less loaded")
        legacy.set({"1.0": ("gauge", 900), "2.0": ("gauge", 80), "3.0": ("counter", 1000)})
        await poll(lambda: self._onlyAnswer(appliance, EAST), what="east once the SNMP agent reports more load")

        # snmpd runs the pass script once per OID, so one poll may straddle
        # the rewrite (old connections, new load: already enough for east);
        # the next poll reads both new values.
        async def bothCoresWeighNewValues():
            for core in (0, 1):
                result = await appliance.console(f"resolve www.snmp.gslb --core {core}")
                loads = {c["service"]: c.get("load") for c in result["candidates"]}
                if loads["legacy-web"] is None or abs(loads["legacy-web"] - (900 / 1000 + 80 / 100) / 2) > 1e-3:
                    return False
            return True

        await poll(bothCoresWeighNewValues, what="legacy's load (0.9 + 0.8) / 2 on both cores")
        for core in (0, 1):
            result = await appliance.console(f"resolve www.snmp.gslb --core {core}")
            self.assertEqual((result["method"], result["fallback"], result["answer"]), ("CUSTOMLOAD", False, [EAST]))

        site = await self._site(appliance, "legacy")
        self.assertEqual((site["protocol"], site["source"], site["table"], site["snmp_version"]), ("snmp", "SNMP", "lab-lb", "2c"))
        self.assertIsNone(site["snmp_last_error"])
        self.assertGreater(site["snmp_polls"], 0)
        metrics = await appliance.console("show metrics legacy --core 1")
        service = metrics["services"][0]
        self.assertEqual((service["name"], service["connections"], service["load"]), ("legacy-web", 900, 80))
        self.assertEqual(service["sources"]["connections"], "SNMP")
        self.assertLess(service["ages"]["connections"], 3.0)
        mep = await appliance.console("show metrics east")
        self.assertEqual(mep["services"][0]["sources"]["connections"], "MEP")

    async def test_stoppedAgentTakesTheSiteDown(self):
        """snmpd stopped: the SNMP site goes DOWN and its address leaves the answers; restarted: back."""
        appliance, east, legacy, secure = await self._start()
        await poll(lambda: self._onlyAnswer(appliance, LEGACY), what="legacy answered first (least load)")
        legacy.stop()

        async def legacyDown():
            return (await self._site(appliance, "legacy"))["state"] == "DOWN"

        await poll(legacyDown, what="legacy DOWN after dead_interval")
        site = await self._site(appliance, "legacy")
        self.assertIn("no answer from the agent at 127.0.0.40", site["snmp_last_error"])
        await poll(lambda: self._onlyAnswer(appliance, EAST), what="only east answered")
        self.assertIn("site legacy is DOWN (SNMP: no answer from the agent at 127.0.0.40", appliance.output)
        await legacy.start()

        async def legacyUp():
            return (await self._site(appliance, "legacy"))["state"] == "UP"

        await poll(legacyUp, what="legacy UP again once its agent answers")

    async def test_v3LinuxHost(self):
        """SNMPv3 authPriv against the agent's own MIBs, read with the shipped linux-host table."""
        appliance, east, legacy, secure = await self._start()

        async def secureUp():
            return (await self._site(appliance, "secure"))["state"] == "UP"

        await poll(secureUp, what="the v3 site UP")
        site = await self._site(appliance, "secure")
        self.assertEqual((site["table"], site["snmp_version"], site["snmp_security"]), ("linux-host", "3", "authPriv"))

        async def hostMetrics():
            metrics = await appliance.console("show metrics secure")
            values = metrics["services"][0]
            # memory and connections come at the first poll; bandwidth, a
            # counter, needs a second.
            return values if {"memory", "connections", "bandwidth"} <= set(values) else None

        values = await poll(hostMetrics, what="linux-host metrics")
        self.assertTrue(0 < values["memory"] <= 100, values)
        self.assertGreaterEqual(values["bandwidth"], 0)
        self.assertEqual(addresses(await query(appliance.port, "host.snmp.gslb")), [SECURE])

    async def test_wrongCredentialsAreNamed(self):
        """A wrong community and a wrong v3 key: each site DOWN, and the reason says which."""
        appliance, east, legacy, secure = await self._start(secureAuth="notthekey1", community="other-community")

        async def reasons():
            legacySite = await self._site(appliance, "legacy")
            secureSite = await self._site(appliance, "secure")
            if legacySite["state"] != "DOWN" or secureSite["state"] != "DOWN":
                return None
            if not legacySite["snmp_last_error"] or not secureSite["snmp_last_error"]:
                return None
            return legacySite["snmp_last_error"], secureSite["snmp_last_error"]

        legacyError, secureError = await poll(reasons, what="both SNMP sites DOWN with a reason")
        self.assertIn("no answer to community 'gslb-ro'", legacyError)
        self.assertIn("wrong community", legacyError)
        self.assertIn("refused user 'gslb': wrong auth_key or auth_protocol", secureError)
        self.assertNotIn("notthekey1", appliance.output)
        self.assertEqual(set(addresses(await query(appliance.port, "www.snmp.gslb"))), {EAST})
