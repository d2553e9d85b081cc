"""
C{gslb-import} end to end: the shipped NetScaler configuration imported
with loopback rebasing runs as it is: C{twistd -n gslb} with the imported
topology, the imported remote sites emulated by C{twistd -n gslb-site},
and a real DNS query for an imported domain answered with an imported
service's rebased address.  Real processes, polled with deadlines.
"""

from __future__ import annotations

import os
import re
import sys

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from gslb_twisted.config import shippedFixture
from tests.support import Appliance, SiteProcess, addresses, freePort, poll, query

FIXTURE = shippedFixture("netscaler", "ns.conf")

# What the fixture's vs-rr (rr.example.com, -TTL 15) binds, rebased into
# 127.0.0.0/8 with their host bits: gs-www-nyc (198.51.100.20) at site-nyc
# and gs-www-sgp (192.0.2.20) at site-sgp, both remote MEP sites.
RR_ADDRESSES = {"127.51.100.20", "127.0.2.20"}
EMULATED = ("site-nyc", "site-sgp")


def withFreeMEPPorts(text: str) -> str:
    """
    Every C{mep_port} of the imported topology (NetScaler's 3011) replaced
    with a port free on the address just above it, so that concurrent test
    runs never meet on a port.
    """
    lines = text.split("\n")
    address = None
    for index, line in enumerate(lines):
        match = re.match(r'^ip = "([^"]+)"', line)
        if match:
            address = match.group(1)
        elif line.startswith("mep_port = ") and address is not None:
            lines[index] = f"mep_port = {freePort(address)}"
    return "\n".join(lines)


class ImportedTopologyTests(TestCase):
    timeout = 240

    async def test_importedDomainIsAnsweredWithARebasedServiceAddress(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        output = os.path.join(directory, "imported.toml")
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "gslb_twisted.nsimport", FIXTURE, "--rebase", "127.0.0.0/8", "-o", output],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err.decode())
        self.assertIn(b"unsupported: add gslb vserver vs-api: -dynamicWeight SERVICECOUNT", err)
        with open(output) as f:
            imported = f.read()
        self.assertIn("#   198.51.100.20 -> 127.51.100.20", imported)

        appliance = Appliance(self, withFreeMEPPorts(imported), cores=2)
        sites = [SiteProcess(self, appliance.config, name) for name in EMULATED]
        for site in sites:
            site.start()
        appliance.start()
        await appliance.waitUntilServing(deadline=90, name="rr.example.com")

        async def emulatedSitesUp():
            rows = {row["name"]: row for row in await appliance.console("show gslb site")}
            return all(rows[name]["state"] == "UP" for name in EMULATED)

        await poll(emulatedSitesUp, 90, 0.25, what="the emulated sites to be UP over MEP")

        async def servicesUp():
            rows = {row["name"]: row for row in await appliance.console("show gslb service")}
            return rows["gs-www-nyc"]["state"] == "UP" and rows["gs-www-sgp"]["state"] == "UP"

        await poll(servicesUp, 90, 0.25, what="vs-rr's services to be UP")

        seen: set[str] = set()

        async def bothAnswered():
            response = await query(appliance.port, "rr.example.com", timeout=2.0)
            self.assertTrue(response.flags & 0x0400, "AA must be set")
            self.assertEqual(response.answer[0].ttl, 15)  # bind gslb vserver vs-rr -domainName ... -TTL 15
            found = addresses(response)
            self.assertEqual(len(found), 1)
            self.assertTrue(set(found) <= RR_ADDRESSES, f"{found} is not a rebased address of vs-rr's services")
            seen.update(found)
            return seen == RR_ADDRESSES

        await poll(bothAnswered, 60, 0.05, what="round robin to answer with both rebased services")

        await appliance.stop()
        appliance.assertCleanExit()
