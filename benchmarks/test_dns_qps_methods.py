"""
Tests for the pure parts of L{benchmarks.dns_qps_methods}: the generated
topology, the ECS clients and queries, dnsperf's binary input, the options
and the median and ratio arithmetic.  Run with C{.venv/bin/trial benchmarks}.
(They measure nothing and start no process.)
"""

from __future__ import annotations

import ipaddress
import os
import random
import tempfile

import dns.edns
import dns.message

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import dns_qps_methods as qpsm, dnsperf
from gslb_twisted.config import loadTopology
from gslb_twisted.lb.locations import LocationDB
from gslb_twisted.mep.rules import initiates


class TopologyTests(SynchronousTestCase):
    def load(self, key: str):
        directory = tempfile.mkdtemp(prefix="qpsm-test-")
        path = os.path.join(directory, "t.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(qpsm.topologyToml(qpsm.CASE_BY_KEY[key], 40123, directory))
        return loadTopology(path)

    def test_sitesWithEmulatorsDialTheAppliance(self) -> None:
        """Four MEP sites with a seeded emulator each, all below the appliance's address (they dial)."""
        topology = self.load("rr")
        self.assertEqual(len(topology.sites), 4)
        appliance = topology.appliance
        self.assertEqual((appliance.mep_port, appliance.cores), (40123, 1))
        for site in topology.sites:
            self.assertTrue(site.metric_exchange)
            self.assertIsNotNone(site.location)
            self.assertIsNotNone(site.emulator.seed)
            self.assertTrue(initiates(site.ip, site.name, appliance.ip, appliance.name))
        self.assertEqual(len(topology.services), 4 * qpsm.SERVICES_PER_SITE)

    def test_methods(self) -> None:
        """Each case's vserver answers www.bench.gslb with its method; only lc-persist persists."""
        for case in qpsm.CASES:
            if not case.sites:
                continue
            [vserver] = self.load(case.key).vservers
            self.assertEqual(vserver.domains, ("www.bench.gslb",))
            self.assertEqual(vserver.lb_method, case.lbMethod)
            self.assertEqual(vserver.persistence, "SOURCEIP" if case.persistence else "NONE")
            self.assertEqual(len(vserver.services), 8)


class ClientTests(SynchronousTestCase):
    def test_subnets(self) -> None:
        """Distinct /24 network addresses, each located by the location file."""
        db = LocationDB.fromCSV(qpsm.LOCATIONS)
        subnets = qpsm.ecsSubnets(2000, random.Random(5))
        self.assertEqual(len(set(subnets)), 2000)
        for subnet in subnets:
            address = ipaddress.IPv4Address(subnet)
            self.assertEqual(int(address) & 0xFF, 0)
            self.assertIsNotNone(db.lookup(subnet), subnet)

    def test_queries(self) -> None:
        """Each query asks www.bench.gslb A with one /24 client subnet option, RD clear."""
        [wire] = qpsm.ecsQueries(["198.51.100.0"])
        message = dns.message.from_wire(wire)
        self.assertEqual(str(message.question[0].name), "www.bench.gslb.")
        self.assertFalse(message.flags & dns.flags.RD)
        [option] = message.options
        self.assertIsInstance(option, dns.edns.ECSOption)
        self.assertEqual((option.address, option.srclen), ("198.51.100.0", 24))

    def test_binaryFile(self) -> None:
        """dnsperf -B reads 16-bit length-prefixed messages."""
        path = os.path.join(tempfile.mkdtemp(prefix="qpsm-test-"), "q.bin")
        dnsperf.writeBinaryQueryFile(path, [b"abc", b"defgh"])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"\x00\x03abc\x00\x05defgh")

    def test_binaryCommand(self) -> None:
        load = dnsperf.DnsperfLoad(duration=3, cpus=None, verbose=False, binary=True)
        argv = dnsperf.dnsperfCommand("dnsperf", "127.0.0.1", 5399, "q.bin", load)
        self.assertIn("-B", argv)
        self.assertNotIn("-B", dnsperf.dnsperfCommand("dnsperf", "127.0.0.1", 5399, "q.txt",
                                                        dnsperf.DnsperfLoad(cpus=None)))


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = qpsm.parseArguments([])
        self.assertEqual([c.key for c in options.caseList], list(qpsm.CASE_BY_KEY))
        self.assertEqual(options.variantList, ["plain", "ecs"])
        self.assertEqual((options.repeat, options.duration, options.ecs_clients), (3, 10.0, 10000))

    def test_select(self) -> None:
        options = qpsm.parseArguments(["--cases", "lc-persist,names", "--variants", "ecs"])
        self.assertEqual([c.key for c in options.caseList], ["names", "lc-persist"])
        self.assertEqual(options.variantList, ["ecs"])

    def test_unknown(self) -> None:
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, qpsm.parseArguments, ["--cases", "nope"])
            self.assertRaises(SystemExit, qpsm.parseArguments, ["--variants", "tcp"])


class SummaryTests(SynchronousTestCase):
    def test_medianAndRatios(self) -> None:
        """The median QPS per case and variant, errors apart, and ratios of medians."""
        runs = [
            qpsm.Run("rr", "plain", 0, qps=100.0), qpsm.Run("rr", "plain", 1, qps=120.0),
            qpsm.Run("rr", "plain", 2, qps=90.0),
            qpsm.Run("lc-persist", "plain", 0, qps=80.0, persistenceSessions=1),
            qpsm.Run("lc-persist", "plain", 1, qps=85.0, persistenceSessions=1),
            qpsm.Run("lc-persist", "plain", 2, error="not deciding"),
        ]
        cases = [qpsm.CASE_BY_KEY["rr"], qpsm.CASE_BY_KEY["lc-persist"]]
        summaries = qpsm.summarise(runs, cases, ["plain"])
        byCase = {s.case: s for s in summaries}
        self.assertEqual(byCase["rr"].qps, 100.0)
        self.assertEqual(byCase["lc-persist"].qps, 82.5)
        self.assertEqual(byCase["lc-persist"].errors, ["not deciding"])
        self.assertEqual(byCase["lc-persist"].persistenceSessions, 1)
        self.assertEqual(qpsm.ratios(summaries), [{"variant": "plain", "label": "lc-persist/rr", "ratio": 0.825}])
