"""
The chaos lab of the short cases: a real 2-core appliance (C{tests.support.
Appliance}), three real site emulators (C{twistd -n gslb-site}), east and
north behind a chaos proxy on their MEP link (the topology:
L{gslb_twisted.chaos.lab}), and a steady DNS load from
L{gslb_twisted.chaos.load}, every answer judged against the sites known
DOWN.  It is the I{lab} of L{gslb_twisted.chaos.faults}.  Small intervals
(metrics 0.25 s, dead 1.5 s) keep each case to a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal

from twisted.internet import defer, reactor

from gslb_twisted.chaos.faults import Control, until
from gslb_twisted.chaos.lab import APPLIANCE_IP, NAME, SITE_IPS, SITE_OF, LabPorts, Timing
from gslb_twisted.chaos.lab import applianceTopology, proxyPlans, siteTopology
from gslb_twisted.chaos.load import DownWindows, LoadGenerator, loopbackSources, readUDPDrops
from gslb_twisted.chaos.proxy import TCPProxy
from tests.support import Appliance, SiteProcess, alive, freePort

TIMING = Timing(metricsInterval=0.25, deadInterval=1.5, consolidationInterval=0.5)


class ChaosLab:
    """
    @ivar keptDown: sites taken down for the whole test (their addresses
        must never be answered once they are DOWN everywhere).
    """

    def __init__(self, testCase, rate: float = 400.0, timeout: float = 2.5, keptDown=()) -> None:
        self.testCase = testCase
        self.reactor = reactor
        self.rate = rate
        self.timeout = timeout
        self.keptDown = set(keptDown)
        self.windows = DownWindows(SITE_OF)
        self.proxies: dict[str, TCPProxy] = {}
        self.sitePids: set[int] = set()
        ports = LabPorts(
            applianceMep="MEP_PORT",
            eastMep=freePort(SITE_IPS["east"]), westMep=freePort(SITE_IPS["west"]),
            northMep=freePort(SITE_IPS["north"]), eastProxy=freePort(APPLIANCE_IP),
            northProxy=freePort(SITE_IPS["north"]),
        )
        self.appliance = Appliance(testCase, applianceTopology(ports, TIMING))
        self.dnsPort = self.appliance.port
        self.ports = dataclasses.replace(ports, applianceMep=self.appliance.mepPort)
        self.sites = {}
        for name in SITE_IPS:
            config = os.path.join(self.appliance.directory, f"site-{name}.toml")
            with open(config, "w") as f:
                f.write(siteTopology(name, self.ports, TIMING))
            self.sites[name] = SiteProcess(testCase, config, name)
        self.control: Control = None
        self.load: LoadGenerator = None
        self.runs: list = []
        self.dropsAtLoadStart = 0
        # Datagrams the kernel dropped at the appliance's DNS socket (its
        # receive buffer full) while the load ran: known once finished.
        self.droppedAtAppliance = None
        testCase.addCleanup(self._saveRuns)

    # --- the lab, as faults use it ----------------------------------------------------

    def site(self, name: str) -> "_Tracked":
        """The site emulator C{name}, as faults drive it."""
        return _Tracked(self, self.sites[name])

    def proxy(self, name: str) -> TCPProxy:
        return self.proxies[name]

    async def inject(self, fault, *args, **kwargs):
        """
        Run one fault of L{gslb_twisted.chaos.faults}; kept for the record.
        Every core process seen before and after is remembered: none may be
        left at the end.
        """
        await self.rememberCores()
        run = await fault(self, *args, **kwargs)
        self.runs.append(run)
        await self.rememberCores()
        return run

    async def rememberCores(self) -> None:
        self.appliance.seenPids.update(row["pid"] for row in await self.control.cores() if row.get("pid"))

    def _saveRuns(self) -> None:
        """What the faults measured, beside the logs, for whoever reads a failure."""
        document = {"runs": [run.asDict() for run in self.runs],
                    "load": self.load.report() if self.load is not None else None,
                    "dropped_at_appliance": self.droppedAtAppliance}
        with open(os.path.join(self.appliance.directory, "chaos-runs.json"), "w") as f:
            json.dump(document, f, indent=1, default=str)

    # --- start, stop --------------------------------------------------------------------

    async def start(self, load: bool = True) -> None:
        """Start the proxies, the sites, the appliance; take the kept-down sites down; start the load."""
        for name, (listen, target) in proxyPlans(self.ports, self.appliance.mepPort).items():
            proxy = TCPProxy(reactor, listen, target, name=f"{name}-mep")
            proxy.startService()
            await proxy.listening
            self.proxies[name] = proxy
            self.testCase.addCleanup(proxy.stopService)
        for site in self.sites.values():
            self.site(site.site).start()
        self.appliance.start()
        await self.appliance.waitUntilServing(name=NAME)
        self.control = await Control.connect(reactor, self.appliance.control)
        self.testCase.addCleanup(self.control.close)
        await until(reactor, self._allUp, 30, "every site UP with a master")
        for name in sorted(self.keptDown):
            await self.sites[name].stop(signal.SIGKILL)
            await until(reactor, lambda name=name: self.control.heldEverywhere(name, "DOWN"), 30,
                        f"every core to hold {name} DOWN")
            self.windows.down(name, reactor.seconds())
        if load:
            await self.startLoad()

    async def startLoad(self) -> None:
        """The steady load, once answered."""
        self.dropsAtLoadStart = readUDPDrops(self.dnsPort) or 0
        self.load = LoadGenerator(reactor, ("127.0.0.1", self.dnsPort), [NAME], rate=self.rate,
                                  sources=loopbackSources(4), timeout=self.timeout, classify=self.windows,
                                  bucketWidth=0.5)
        self.load.start()
        self.testCase.addCleanup(self._stopLoad)
        await until(reactor, lambda: self.load.totals.answered >= 100, 30, "the steady load to be answered")

    async def _allUp(self) -> bool:
        sites = await self.control.sites()
        return all(row["state"] == "UP" and row["master_core"] is not None for row in sites.values())

    async def _stopLoad(self) -> None:
        if self.load is not None and self.load.stoppedAt is None:
            await self.load.stop()

    async def finish(self) -> dict:
        """
        Stop the load (every query answered or lost), then every process;
        check the appliance stopped cleanly and left nothing behind, nor did
        any site emulator.  @return: the load's report.
        """
        report = await self.load.stop()
        self.droppedAtAppliance = (readUDPDrops(self.dnsPort) or 0) - self.dropsAtLoadStart
        await self.appliance.console("show cores")  # remember the pids of every core now
        for site in self.sites.values():
            await site.stop()
        await self.appliance.stop()
        self.appliance.assertCleanExit()
        await self.appliance.assertNothingLeft()
        await until(reactor, lambda: not [pid for pid in self.sitePids if alive(pid)], 15,
                    f"site processes {sorted(self.sitePids)} to exit")
        return report


class _Tracked:
    """A site process whose every pid the lab remembers (to check none is left)."""

    def __init__(self, lab: ChaosLab, process: SiteProcess) -> None:
        self.lab = lab
        self.process = process

    @property
    def pid(self):
        return self.process.pid

    @property
    def control(self) -> str:
        return self.process.control

    def start(self) -> None:
        self.process.start()
        self.lab.sitePids.add(self.process.pid)

    def stop(self, sig: int = signal.SIGTERM) -> defer.Deferred:
        return defer.ensureDeferred(self.process.stop(sig))
