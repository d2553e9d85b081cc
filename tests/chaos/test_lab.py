"""
The pure parts of the chaos lab and its faults: the topologies a lab
writes (valid, each end of a proxied link pointed at its proxy, MEP in the
intended directions), the kernel's drop counters as C{/proc/net/udp} shows
them, the flood's arguments, a fault's figures.
"""

from __future__ import annotations

import io
import os
import sys
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.chaos import flood
from gslb_twisted.chaos.faults import FaultRun
from gslb_twisted.chaos.lab import (
    ADDRESSES,
    SERVICE,
    SITE_IPS,
    LabPorts,
    Timing,
    applianceTopology,
    proxyPlans,
    siteTopology,
)
from gslb_twisted.chaos.load import udpDrops
from gslb_twisted.config import loadTopology
from gslb_twisted.mastership import siteInitiates

PORTS = LabPorts(applianceMep=3011, eastMep=4001, westMep=4002, northMep=4003, eastProxy=5001, northProxy=5002)

PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:14B4 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 1234 2 0000000000000000 17
  124: 0100007F:14B4 00000000:0000 07 00000000 00034000 00:00000000 00000000     0        0 1235 2 0000000000000000 3
  125: 0100007F:D431 0100007F:14B4 01 00000000 00000000 00:00000000 00000000     0        0 1236 2 0000000000000000 0
"""


class LabTopologyTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "topology.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_applianceTopologyLoadsWithTheIntendedDirections(self):
        topology = loadTopology(self.write(applianceTopology(PORTS, Timing(metricsInterval=1.0, deadInterval=3.0))))
        appliance = topology.appliance
        self.assertEqual((appliance.name, appliance.ip, appliance.mep_port), ("chaos", "127.0.0.5", 3011))
        self.assertEqual((appliance.metrics_interval, appliance.dead_interval), (1.0, 3.0))
        sites = {site.name: site for site in topology.sites}
        self.assertEqual({name: siteInitiates(topology, site) for name, site in sites.items()},
                         {"east": True, "west": True, "north": False})
        self.assertEqual(sites["north"].mep_port, PORTS.northProxy, "the appliance dials north through its proxy")
        self.assertEqual({s.name: s.ip for s in topology.services}, {SERVICE[k]: v for k, v in ADDRESSES.items()})

    def test_eachSiteCopyPointsWhereItsEndShould(self):
        east = tomllib.loads(siteTopology("east", PORTS))
        west = tomllib.loads(siteTopology("west", PORTS))
        north = tomllib.loads(siteTopology("north", PORTS))
        self.assertEqual(east["appliance"]["mep_port"], PORTS.eastProxy)
        self.assertEqual(west["appliance"]["mep_port"], PORTS.applianceMep)
        self.assertEqual([s["mep_port"] for s in north["site"] if s["name"] == "north"], [PORTS.northMep])
        self.assertRaises(ValueError, siteTopology, "south", PORTS)

    def test_proxiesBindTheDiallingEndsAddress(self):
        plans = proxyPlans(PORTS, 3011)
        self.assertEqual(plans["east"], ("tcp:5001:interface=127.0.0.5",
                                         "tcp:host=127.0.0.5:port=3011:bindAddress=127.0.0.2"))
        self.assertEqual(plans["north"], ("tcp:5002:interface=127.0.0.8",
                                          "tcp:host=127.0.0.8:port=4003:bindAddress=127.0.0.5"))
        self.assertEqual(set(plans), {"east", "north"})
        self.assertEqual(SITE_IPS["west"], "127.0.0.3")


class KernelAndFloodTests(SynchronousTestCase):
    def test_dropsOfTheSocketsOnAPort(self):
        self.assertEqual(udpDrops(PROC_NET_UDP, 5300), 20)  # two sockets share port 5300 (0x14B4)
        self.assertEqual(udpDrops(PROC_NET_UDP, [5300, 54321]), 20)
        self.assertIsNone(udpDrops(PROC_NET_UDP, 53))
        self.assertIsNone(udpDrops("", 5300))

    def test_floodArguments(self):
        self.assertEqual(flood._target("127.0.0.1:5300"), ("127.0.0.1", 5300))
        for bad in ("5300", "127.0.0.1:", "host:port"):
            self.assertRaises(Exception, flood._target, bad)
        errors = io.StringIO()
        self.patch(sys, "stderr", errors)
        self.assertRaises(SystemExit, flood.main, ["--target", "127.0.0.1:5300", "--name", "x.gslb", "--count", "0"])
        self.assertIn("--count must be at least 1", errors.getvalue())


class FaultRunTests(SynchronousTestCase):
    def test_detectAndRecoverFromTheRightMoments(self):
        healing = FaultRun("core SIGKILL", "core 1", injectedAt=100.0, detectedAt=100.25, recoveredAt=101.5)
        self.assertEqual((healing.detect, healing.recover), (0.25, 1.5))
        repaired = FaultRun("site SIGSTOP", "north", injectedAt=100.0, detectedAt=101.5, repairedAt=105.0,
                            recoveredAt=105.75)
        self.assertEqual((repaired.detect, repaired.recover), (1.5, 0.75))
        row = FaultRun("x", "y", injectedAt=1.0).asDict()
        self.assertEqual((row["detect"], row["recover"], row["details"]), (None, None, {}))
