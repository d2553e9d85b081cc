"""
The decision engine end to end: a 2-core appliance, real site emulators,
real DNS queries from different loopback source addresses (each a client
somewhere in the shipped location database) and EDNS Client Subnets.

Clients of fixtures/locations.csv used here: 127.0.1.0/24 New York,
127.0.2.0/24 San Francisco, 127.0.3.0/24 London, 127.0.4.0/24 Frankfurt;
ECS 198.51.100.0/24 Amsterdam, 192.0.2.0/24 Chicago.
"""

from __future__ import annotations

import signal

import dns.edns
from twisted.trial.unittest import TestCase

from tests.support import Appliance, SiteProcess, addresses, freePort, poll, query

TOPOLOGY = """
[appliance]
name = "gslbdec"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
metrics_interval = 0.5
dead_interval = 1.5
location_db = "fixtures/locations.csv"

[[zone]]
name = "dec.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
location = { lat = 40.71, lon = -74.01 }
  [site.emulator]
  rtt = { "127.0.3.0/24" = 90.0 }

[[site]]
name = "west"
ip = "127.0.0.3"
mep_port = WEST_PORT
location = { lat = 37.77, lon = -122.42 }
  [site.emulator]
  rtt = { "127.0.3.0/24" = 20.0 }

[[site]]
name = "europe"
ip = "127.0.0.8"
mep_port = EUROPE_PORT
location = { lat = 51.51, lon = -0.13 }
  [site.emulator]
  rtt = { "127.0.3.0/24" = 200.0 }

[[site]]
name = "dr"
ip = "127.0.0.30"
metric_exchange = false

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[service]]
name = "europe-web"
site = "europe"
ip = "203.0.113.10"

[[service]]
name = "dr-web"
site = "dr"
ip = "192.0.2.99"

[[vserver]]
name = "www"
domains = ["www.dec.gslb"]
lb_method = "LEASTCONNECTION"
services = ["east-web", "west-web", "europe-web"]
backup_vserver = "dr"
spillover = { method = "CONNECTION", threshold = 1000 }

[[vserver]]
name = "dr"
domains = ["dr.dec.gslb"]
lb_method = "ROUNDROBIN"
services = ["dr-web"]

[[vserver]]
name = "near"
domains = ["near.dec.gslb"]
lb_method = "STATICPROXIMITY"
services = ["east-web", "west-web", "europe-web"]

[[vserver]]
name = "sticky"
domains = ["sticky.dec.gslb"]
lb_method = "LEASTCONNECTION"
services = ["east-web", "west-web", "europe-web"]
persistence = "SOURCEIP"
persistence_timeout = 60
persist_mask = "255.255.255.0"

[[vserver]]
name = "fast"
domains = ["fast.dec.gslb"]
lb_method = "RTT"
backup_lb_method = "STATICPROXIMITY"
services = ["east-web", "west-web", "europe-web"]
"""

ADDRESS = {"east": "192.0.2.10", "west": "198.51.100.10", "europe": "203.0.113.10", "dr": "192.0.2.99"}


class DecisionIntegrationTests(TestCase):
    timeout = 180

    async def _topology(self):
        text = TOPOLOGY
        for site, ip in (("EAST", "127.0.0.2"), ("WEST", "127.0.0.3"), ("EUROPE", "127.0.0.8")):
            text = text.replace(f"{site}_PORT", str(freePort(ip)))
        appliance = Appliance(self, text, cores=2)
        sites = {name: SiteProcess(self, appliance.config, name) for name in ("east", "west", "europe")}
        for site in sites.values():
            site.start()
        appliance.start()
        await appliance.waitUntilServing(name="dr.dec.gslb")

        async def allUp():
            rows = await appliance.console("show gslb site")
            return all(row["state"] == "UP" for row in rows if row["name"] != "dr")

        await poll(allUp, what="every MEP site UP")
        return appliance, sites

    async def _answers(self, appliance, name, count=12, **kwargs) -> list[str]:
        found = []
        for _ in range(count):
            found.extend(addresses(await query(appliance.port, name, **kwargs)))
        return found

    async def _onlyAnswer(self, appliance, name, expected, **kwargs) -> bool:
        return set(await self._answers(appliance, name, **kwargs)) == {expected}

    async def _connections(self, sites, **values) -> None:
        for site, connections in values.items():
            await sites[site].console(f"set service {site}-web -connections {connections}")

    async def test_leastConnectionFollowsTheSites(self):
        """Connections changed at the site emulators move the answers."""
        appliance, sites = await self._topology()
        await self._connections(sites, east=300, west=20, europe=150)
        await poll(lambda: self._onlyAnswer(appliance, "www.dec.gslb", ADDRESS["west"]), what="west, the least loaded")
        await self._connections(sites, west=400)
        await poll(lambda: self._onlyAnswer(appliance, "www.dec.gslb", ADDRESS["europe"]), what="europe once west loads up")
        for core in (0, 1):
            result = await appliance.console(f"resolve www.dec.gslb --core {core}")
            self.assertEqual((result["method"], result["fallback"], result["answer"]), ("LEASTCONNECTION", False, [ADDRESS["europe"]]))
            self.assertEqual({c["service"]: c["connections"] for c in result["candidates"]}, {"east-web": 300, "west-web": 400, "europe-web": 150})

    async def test_spilloverToTheBackupVServer(self):
        """Over the CONNECTION threshold, answers come from the backup vserver; under it, back."""
        appliance, sites = await self._topology()
        await self._connections(sites, east=600, west=500, europe=100)
        await poll(lambda: self._onlyAnswer(appliance, "www.dec.gslb", ADDRESS["dr"]), what="spillover to dr")
        result = await appliance.console("resolve www.dec.gslb")
        self.assertEqual(result["source"], "backup_vserver")
        self.assertTrue(result["spillover"]["spilled"])
        self.assertEqual(result["spillover"]["value"], 1200)
        await self._connections(sites, east=50)
        await poll(lambda: self._onlyAnswer(appliance, "www.dec.gslb", ADDRESS["east"]), what="back under the threshold")

    async def test_nearestSiteBySourceAndClientSubnet(self):
        """STATICPROXIMITY: resolvers in New York, San Francisco, London, and ECS subnets."""
        appliance, sites = await self._topology()
        for source, site in (("127.0.1.1", "east"), ("127.0.2.1", "west"), ("127.0.3.1", "europe")):
            answers = await self._answers(appliance, "near.dec.gslb", 8, source=source)
            self.assertEqual(set(answers), {ADDRESS[site]}, source)
        for subnet, site in (("198.51.100.0", "europe"), ("192.0.2.0", "east")):
            option = dns.edns.ECSOption(subnet, 24)
            response = await query(appliance.port, "near.dec.gslb", use_edns=0, options=[option])
            self.assertEqual(addresses(response), [ADDRESS[site]], subnet)
            # The subnet is echoed with scope 0 (RFC 7871).
            echoed = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
            self.assertEqual(len(echoed), 1)
        explained = await appliance.console("resolve near.dec.gslb --client 127.0.2.7")
        self.assertEqual(explained["answer"], [ADDRESS["west"]])
        self.assertEqual(explained["client_location"]["region"], "us-west")

    async def test_persistenceOnEveryCore(self):
        """The same client network gets the same answer whichever core reads its query."""
        appliance, sites = await self._topology()
        # Equal connections: LEASTCONNECTION alone would rotate among all three.
        await self._connections(sites, east=10, west=10, europe=10)
        await poll(lambda: self._rotates(appliance), what="the tie to rotate for an unpersisted client")
        before = {row["core"]: row["queries"] for row in await appliance.console("show cores")}
        seen: set[str] = set()

        async def bothCoresAnswered():
            seen.update(await self._answers(appliance, "sticky.dec.gslb", 10, source="127.0.4.1"))
            seen.update(await self._answers(appliance, "sticky.dec.gslb", 5, source="127.0.4.200"))
            now = {row["core"]: row["queries"] for row in await appliance.console("show cores")}
            return all(now[core] > before[core] for core in before)

        await poll(bothCoresAnswered, what="both cores to answer the persistent client")
        self.assertEqual(len(seen), 1, seen)
        persisted = seen.pop()
        for core in (0, 1):
            result = await appliance.console(f"resolve sticky.dec.gslb --client 127.0.4.9 --core {core}")
            self.assertEqual((result["persistence"], result["answer"]), ("hit", [persisted]), core)

        # The sites hold the entry too (sessionExchange over MEP).
        async def exchanged():
            rows = await sites["east"].console("show sessions")
            return [row for row in rows if (row["vserver"], row["network"]) == ("sticky", "127.0.4.0/24")]

        (row,) = await poll(exchanged, what="the persistence session at site east")
        self.assertEqual(row["service"], {v: k for k, v in ADDRESS.items()}[persisted] + "-web")

        # The persisted site dies: the client is moved, on every core alike.
        site = next(name for name, ip in ADDRESS.items() if ip == persisted)
        await sites[site].stop(signal.SIGKILL)

        async def moved():
            answers = set(await self._answers(appliance, "sticky.dec.gslb", 10, source="127.0.4.1"))
            return len(answers) == 1 and persisted not in answers and answers

        replacement = (await poll(moved, what="the persisted client moved off the dead site")).pop()
        for core in (0, 1):
            async def agrees(core=core):
                result = await appliance.console(f"resolve sticky.dec.gslb --client 127.0.4.1 --core {core}")
                return result["persistence"] == "hit" and result["answer"] == [replacement]

            await poll(agrees, what=f"core {core} to hold the replacement entry")

    async def _rotates(self, appliance) -> bool:
        return len(set(await self._answers(appliance, "www.dec.gslb", 9))) == 3

    async def test_rttMeasuredBySites(self):
        """
        RTT: a London client network nobody has measured gets the backup
        method (STATICPROXIMITY: europe); the sites probe it, and the lowest
        reported RTT (west, 20 ms) wins from then on.
        """
        appliance, sites = await self._topology()
        first = await self._answers(appliance, "fast.dec.gslb", 1, source="127.0.3.1")
        self.assertEqual(first, [ADDRESS["europe"]])
        await poll(
            lambda: self._onlyAnswer(appliance, "fast.dec.gslb", ADDRESS["west"], source="127.0.3.1"),
            what="west, with the lowest measured RTT",
        )
        for core in (0, 1):
            result = await appliance.console(f"resolve fast.dec.gslb --client 127.0.3.77 --core {core}")
            self.assertEqual((result["method"], result["fallback"], result["answer"]), ("RTT", False, [ADDRESS["west"]]))
            self.assertEqual(result["rtt_network"], "127.0.3.0/24")
            self.assertEqual({c["service"]: c["rtt_ms"] for c in result["candidates"]}, {"east-web": 90.0, "west-web": 20.0, "europe-web": 200.0})
