"""
One scenario, run for real: the Twisted orchestration.

    ScenarioRun.run()
     ├─ plan: --speed, free ports, the topology copies (plan.py), written to a work directory
     ├─ a TCPProxy (gslb_twisted.chaos.proxy) on each MEP link the timeline touches
     ├─ `twistd -n gslb-site` per emulated site, `twistd -n gslb` (child processes)
     ├─ wait: every core up, every emulated site UP with a master, DNS answering
     ├─ t=0: a ScenarioLoad per population; the events at their times; polls of
     │   `show cores` and `show gslb site`; the progress line
     ├─ t=end: the load drains (every query answered or given up)
     └─ stop everything (TERM, then KILL), check no process is left; judge; report

Every child runs under a small exec wrapper that asks the kernel to kill it
if this process dies (Linux C{PR_SET_PDEATHSIG}): even a C{kill -9} of the
runner leaves no site emulator or appliance behind (the appliance's cores
end when their supervisor's pipe closes).  A Ctrl-C (the reactor's
shutdown) stops them in order and writes what was recorded, marked
interrupted.

Decisions live in the pure modules; this one only sequences them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from twisted.internet import defer, task
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from gslb_twisted.chaos.faults import Control, siteCall
from gslb_twisted.chaos.proxy import TCPProxy
from gslb_twisted.mep.rules import initiates
from gslb_twisted.protocol.commands import (
    DisableService,
    EnableService,
    SetScenario,
    SetSiteService,
    SetVServer,
    ShowSiteServices,
    UnsetSiteService,
)
from gslb_twisted.scenario import expect, report
from gslb_twisted.scenario.clients import ScenarioLoad
from gslb_twisted.scenario.model import Event, Scenario, rampPoints
from gslb_twisted.scenario.observe import CoreShares, SiteStates
from gslb_twisted.scenario.plan import Ports, ProxyPlan, dumpTOML, effectiveSpeed, runTopologies, scaleTopology
from gslb_twisted.scenario.series import Series

# Seconds between two polls of the appliance (real time).
CORE_POLL = 0.5
SITE_POLL = 0.2
PROGRESS_TICK = 0.25
# How long a stopped process may take before it is killed.
STOP_GRACE = 15.0

# Each child: die with the runner, then be twistd.
_CHILD = """\
import ctypes, os, signal, sys
parent = int(sys.argv[1])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != parent:
    os._exit(70)
sys.argv = ["twistd"] + sys.argv[2:]
from twisted.scripts.twistd import run
run()
"""


class RunError(Exception):
    """The run could not go on (a process did not start, a deadline passed): the message says what."""


def freePort(interface: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on C{interface} (as tests.support does)."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((interface, 0))
            port = udp.getsockname()[1]
            tcp.bind((interface, port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port
    raise RunError(f"no free port on {interface}")


def alive(pid: int) -> bool:
    """True while C{pid} runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return state != "Z"


async def sleep(reactor, seconds: float) -> None:
    await task.deferLater(reactor, max(0.0, seconds), lambda: None)


class ChildProcess(ProcessProtocol):
    """
    One child (C{twistd ...}): its output to C{logPath} (the last lines
    kept for error messages), started again on demand, stopped TERM then
    KILL.
    """

    log = Logger()

    def __init__(self, reactor, name: str, args: list[str], logPath: str, cwd: str) -> None:
        self.reactor = reactor
        self.name = name
        self.args = args
        self.logPath = logPath
        self.cwd = cwd
        self.pid: Optional[int] = None
        self.pids: list[int] = []
        self.process = None
        self.ended: Optional[defer.Deferred] = None
        self.exitCode: Optional[int] = None
        self.exitSignal: Optional[int] = None
        self.frozen = False
        self.stopping = False
        self.crashes: list[str] = []  # how it ended when nobody stopped it
        self.tail: deque[str] = deque(maxlen=40)
        self._logFile = None
        self._partial = b""

    @property
    def running(self) -> bool:
        return self.ended is not None and not self.ended.called

    def start(self) -> None:
        if self.running:
            raise RunError(f"{self.name} is already running")
        self._logFile = open(self.logPath, "ab")
        self._logFile.write(f"--- {self.name} started {datetime.datetime.now().isoformat()}\n".encode())
        self.ended = defer.Deferred()
        self.exitCode = self.exitSignal = None
        self.frozen = self.stopping = False
        argv = [sys.executable, "-c", _CHILD, str(os.getpid())] + self.args
        self.process = self.reactor.spawnProcess(self, sys.executable, argv, env=dict(os.environ), path=self.cwd)
        self.pid = self.process.pid
        self.pids.append(self.pid)

    def send(self, sig: int) -> None:
        if self.running and self.pid is not None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGSTOP:
                self.frozen = True
            elif sig == signal.SIGCONT:
                self.frozen = False

    async def stop(self, sig: int = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
        """Send C{sig} (after a SIGCONT if frozen) and wait for the end; KILL after C{grace} seconds."""
        if not self.running:
            return
        self.stopping = True
        if self.frozen:
            self.send(signal.SIGCONT)
        self.send(sig)
        ended = self.ended
        timer = self.reactor.callLater(grace, self.send, signal.SIGKILL)
        try:
            await ended
        finally:
            if timer.active():
                timer.cancel()

    # --- ProcessProtocol -----------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        if self._logFile is not None:
            self._logFile.write(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-2000:]
        for line in lines:
            self.tail.append(line.decode("utf-8", "replace")[:500])

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.exitCode = getattr(reason.value, "exitCode", None)
        self.exitSignal = getattr(reason.value, "signal", None)
        if not self.stopping:
            self.crashes.append(f"{self.name} (pid {self.pid}) exited by itself: exit code {self.exitCode}, "
                                f"signal {self.exitSignal}")
        if self._logFile is not None:
            self._logFile.write(
                f"--- {self.name} ended: exit code {self.exitCode}, signal {self.exitSignal}\n".encode())
            self._logFile.close()
            self._logFile = None
        if self.ended is not None and not self.ended.called:
            self.ended.callback(None)

    def lastLines(self, count: int = 12) -> str:
        return "\n".join(list(self.tail)[-count:])


@dataclass
class EventRecord:
    event: Event
    appliedAt: Optional[float] = None  # scenario seconds
    took: Optional[float] = None  # real seconds
    error: Optional[str] = None
    detail: Optional[str] = None

    def asDict(self) -> dict:
        return {
            "index": self.event.index, "at": self.event.at, "action": self.event.action, "id": self.event.id,
            "target": self.event.target, "label": self.event.label, "span": self.event.span,
            "applied_at": None if self.appliedAt is None else round(self.appliedAt, 4),
            "took_ms": None if self.took is None else round(self.took * 1000, 2),
            "error": self.error, "detail": self.detail, "note": self.event.note,
        }


@dataclass
class RunResult:
    passed: bool
    exitCode: int
    document: dict
    files: dict = field(default_factory=dict)
    pids: set = field(default_factory=set)
    errors: list = field(default_factory=list)


class ScenarioRun:
    """
    @param reactor: the reactor (spawnProcess, listenUDP, callLater).
    @param scenario: a loaded L{Scenario}.
    @param speed: the C{--speed} asked for.
    @param reportDir: where the report goes (None: no report files).
    @param progress: C{progress(status)} every tick (see L{report.progressLine}), or None.
    @param keep: keep the work directory (topology copies, logs, sockets).
    """

    log = Logger()

    def __init__(self, reactor, scenario: Scenario, speed: float = 1.0, reportDir: Optional[str] = None,
                 progress: Optional[Callable[[dict], None]] = None, keep: bool = False) -> None:
        self.reactor = reactor
        self.scenario = scenario
        self.speed, self.speedNote = effectiveSpeed(speed, scenario)
        self.requestedSpeed = speed
        self.reportDir = reportDir
        self.progress = progress
        self.keep = keep
        self.workDir: Optional[str] = None
        self.appliance: Optional[ChildProcess] = None
        self.sites: dict[str, ChildProcess] = {}
        self.siteControls: dict[str, str] = {}
        self.proxies: dict[str, TCPProxy] = {}
        self.control: Optional[Control] = None
        self.loads: dict[str, ScenarioLoad] = {}
        self.series = Series(scenario.duration, scenario.bucket, expect.marks(scenario), scenario.addressesOf(),
                             [p.name for p in scenario.populations])
        self.cores = CoreShares()
        self.siteStates = SiteStates()
        self.records: list[EventRecord] = [EventRecord(event) for event in scenario.events]
        self.scaled: list = []
        self.errors: list[str] = []
        self.t0: Optional[float] = None
        self.phase = "preparing"
        self.interrupted = False
        self.startedWall = time.time()
        self.startupSeconds: Optional[float] = None
        self._pending: list[defer.Deferred] = []
        self._queues: dict[str, defer.Deferred] = {}
        self._stopping: Optional[defer.Deferred] = None
        self._polling = False
        self._recent: deque = deque()
        self.files: dict[str, str] = {}
        self.result: Optional[RunResult] = None
        self.ports: Optional[Ports] = None
        self.proxyPlans: list[ProxyPlan] = []
        self._lastReadiness = "none"

    # --- the clock of the scenario ----------------------------------------------

    def now(self) -> float:
        """Scenario seconds since t=0 (negative before)."""
        if self.t0 is None:
            return 0.0
        return (self.reactor.seconds() - self.t0) * self.speed

    def realAt(self, at: float) -> float:
        return self.t0 + at / self.speed

    # --- the whole run -------------------------------------------------------------

    async def run(self) -> RunResult:
        try:
            self._prepare()
            await self._start()
            await self._play()
        except Exception as e:
            if not self.interrupted:
                self.errors.append(f"{type(e).__name__}: {e}" if not isinstance(e, RunError) else str(e))
                self.log.failure("scenario {name}: the run broke", name=self.scenario.name)
        finally:
            self.phase = "stopping"
            await self.stopEverything()
        return self._finish()

    def abort(self) -> defer.Deferred:
        """Ctrl-C (the reactor is shutting down): stop everything, then write what was recorded."""
        if self.result is not None:
            return defer.succeed(None)
        self.interrupted = True
        d = defer.ensureDeferred(self.stopEverything())
        d.addCallback(lambda _: self._finish())
        d.addErrback(lambda f: self.log.failure("scenario {name}: stopping after an interrupt", f,
                                                name=self.scenario.name))
        return d

    # --- preparing -------------------------------------------------------------------

    def _prepare(self) -> None:
        scenario = self.scenario
        self.workDir = tempfile.mkdtemp(prefix="gslb-scenario-")
        document, self.scaled = scaleTopology(scenario.topologyDocument, self.speed)
        topology = scenario.topology
        applianceIP = topology.appliance.ip
        ports = Ports(
            dns=freePort("127.0.0.1"),
            applianceMEP=freePort(applianceIP),
            siteMEP={name: freePort(topology.siteByName[name].ip) for name in scenario.emulated},
            proxies={name: freePort(self._proxyInterface(name)) for name in scenario.linkSites},
        )
        self.ports = ports
        applianceDoc, siteDocs, self.proxyPlans = runTopologies(scenario, document, ports)
        applianceConfig = os.path.join(self.workDir, "appliance.toml")
        with open(applianceConfig, "w") as f:
            f.write(dumpTOML(applianceDoc))
        logs = os.path.join(self.workDir, "logs")
        os.makedirs(logs)
        self.controlEndpoint = "unix:" + os.path.join(self.workDir, "gslb.ctl")
        self.appliance = ChildProcess(self.reactor, "appliance", [
            "--pidfile=", "-n", "gslb", "--config", applianceConfig,
            "--dns", f"udp:{ports.dns}:interface=127.0.0.1", "--dns", f"tcp:{ports.dns}:interface=127.0.0.1",
            "--control", self.controlEndpoint,
        ], os.path.join(logs, "appliance.log"), self.workDir)
        for name, doc in siteDocs.items():
            config = os.path.join(self.workDir, f"site-{name}.toml")
            with open(config, "w") as f:
                f.write(dumpTOML(doc))
            endpoint = "unix:" + os.path.join(self.workDir, f"{name}.ctl")
            self.siteControls[name] = endpoint
            self.sites[name] = ChildProcess(self.reactor, f"site {name}", [
                "--pidfile=", "-n", "gslb-site", "--config", config, "--site", name, "--control", endpoint,
            ], os.path.join(logs, f"site-{name}.log"), self.workDir)

    def _proxyInterface(self, name: str) -> str:
        topology = self.scenario.topology
        site = topology.siteByName[name]
        if initiates(site.ip, site.name, topology.appliance.ip, topology.appliance.name):
            return topology.appliance.ip
        return site.ip

    # --- starting ----------------------------------------------------------------------

    async def _start(self) -> None:
        scenario = self.scenario
        began = self.reactor.seconds()
        deadline = began + scenario.startupTimeout
        self.phase = "starting"
        self._status()
        for plan in self.proxyPlans:
            proxy = TCPProxy(self.reactor, plan.listen, plan.target, name=f"{plan.site}-mep")
            proxy.startService()
            await proxy.listening
            self.proxies[plan.site] = proxy
        for process in self.sites.values():
            process.start()
        self.appliance.start()
        self.control = await self._connectControl(deadline)
        await self._until(self._ready, deadline, "every core up and every emulated site UP with a master")
        await self._probeDNS(deadline)
        self.startupSeconds = self.reactor.seconds() - began

    async def _until(self, condition, deadline: float, what: str, interval: float = 0.1):
        while True:
            self._checkAlive()
            try:
                result = await condition()
            except Exception:
                result = False
            if result:
                return result
            if self.reactor.seconds() > deadline:
                raise RunError(f"timed out after {self.scenario.startupTimeout:g} s waiting for {what}"
                               + self._whyNotReady())
            await sleep(self.reactor, interval)

    def _whyNotReady(self) -> str:
        return f" (last poll: {self._lastReadiness})"

    def _checkAlive(self) -> None:
        for process in [self.appliance] + list(self.sites.values()):
            if process is not None and process.ended is not None and process.ended.called:
                raise RunError(f"{process.name} exited (code {process.exitCode}, signal {process.exitSignal}) "
                               f"before the scenario began; its last lines:\n{process.lastLines()}")

    async def _connectControl(self, deadline: float) -> Control:
        while True:
            self._checkAlive()
            try:
                return await Control.connect(self.reactor, self.controlEndpoint)
            except Exception:
                if self.reactor.seconds() > deadline:
                    raise RunError(f"the appliance's control endpoint {self.controlEndpoint} never answered") from None
            await sleep(self.reactor, 0.1)

    async def _ready(self) -> bool:
        cores = await self.control.cores()
        sites = await self.control.sites()
        wanted = self.scenario.topology.appliance.coreCount()
        up = [row for row in cores if row.get("state") == "up"]
        waiting = [name for name in self.scenario.emulated
                   if sites.get(name, {}).get("state") != "UP" or sites.get(name, {}).get("master_core") is None]
        self._lastReadiness = f"{len(up)}/{wanted} cores up, sites not UP yet: {', '.join(waiting) or 'none'}"
        return len(up) >= wanted and not waiting

    async def _probeDNS(self, deadline: float) -> None:
        population = self.scenario.populations[0]
        probe = ScenarioLoad(self.reactor, ("127.0.0.1", self.ports.dns), list(population.queries), 20.0,
                             ["127.0.0.1"], 0.5, ecs=population.ecs)
        probe.start()
        try:
            await self._until(lambda: defer.succeed(probe.totals.answered >= 3), deadline, "the appliance to answer DNS")
        finally:
            await probe.stop()

    # --- playing ------------------------------------------------------------------------

    async def _play(self) -> None:
        scenario = self.scenario
        self.phase = "running"
        await self._pollCores()  # the baseline of every core's count
        self.t0 = self.reactor.seconds()
        await self._pollSites()
        for population in scenario.populations:
            load = ScenarioLoad(
                self.reactor, ("127.0.0.1", self.ports.dns), list(population.queries), population.rate,
                list(population.sources), scenario.timeout, ecs=population.ecs,
                onAnswer=self._answerHook(population.name), onLost=self._lostHook(population.name),
                bucketWidth=max(0.05, scenario.bucket / self.speed), maxBuckets=10,
            )
            self.loads[population.name] = load
            load.start()
        for record in self.records:
            self._schedule(record)
        self._polling = True
        pollers = [defer.ensureDeferred(self._poller(self._pollCores, CORE_POLL)),
                   defer.ensureDeferred(self._poller(self._pollSites, SITE_POLL)),
                   defer.ensureDeferred(self._poller(self._tickProgress, PROGRESS_TICK))]
        await sleep(self.reactor, self.realAt(scenario.duration) - self.reactor.seconds())
        self.phase = "draining"
        self._status()
        await defer.DeferredList([load.stop() for load in self.loads.values()])
        self._polling = False
        await defer.DeferredList(pollers)
        if self._pending:
            await defer.DeferredList(list(self._pending))
        try:
            await self._pollCores()
        except Exception:
            pass

    def _answerHook(self, population: str):
        series, recent = self.series, self._recent

        def answered(answer) -> None:
            t = (answer.sentAt - self.t0) * self.speed
            series.answered(t, population, answer.rcode, answer.addresses, answer.receivedAt - answer.sentAt)
            recent.append((answer.receivedAt, answer.addresses))

        return answered

    def _lostHook(self, population: str):
        def lost(sentAt: float) -> None:
            self.series.lost((sentAt - self.t0) * self.speed, population)

        return lost

    async def _poller(self, poll, interval: float) -> None:
        while self._polling:
            try:
                await poll()
            except Exception:
                pass  # (a core being killed, say: the next poll tells)
            await sleep(self.reactor, interval)

    async def _pollCores(self) -> None:
        rows = await self.control.cores()
        self.cores.observe(self.now(), rows)

    async def _pollSites(self) -> None:
        sites = await self.control.sites()
        self.siteStates.observe(self.now(), sites)

    async def _tickProgress(self) -> None:
        self._status()

    def _status(self) -> None:
        if self.progress is None:
            return
        horizon = self.reactor.seconds() - 1.0
        recent = self._recent
        while recent and recent[0][0] < horizon:
            recent.popleft()
        shares: dict[str, int] = {}
        siteOf = self.series.siteOf
        for _, addresses in recent:
            for address in addresses:
                site = siteOf.get(address, "?")
                shares[site] = shares.get(site, 0) + 1
        self.progress({
            "phase": self.phase,
            "t": max(0.0, min(self.now(), self.scenario.duration)) if self.t0 is not None else 0.0,
            "duration": self.scenario.duration,
            "answered": self.series.answeredTotal,
            "unanswered": self.series.lostTotal,
            "shares": shares,
            "speed": self.speed,
            "events_done": sum(1 for r in self.records if r.appliedAt is not None or r.error),
            "events": len(self.records),
        })

    # --- the timeline -----------------------------------------------------------------

    def _schedule(self, record: EventRecord) -> None:
        event = record.event
        if event.action == "ramp":
            steps = [(at, {event.metric: value}) for at, value in rampPoints(event)]
            d = defer.ensureDeferred(self._ramp(record, steps))
            self._pending.append(d)
            return
        delay = max(0.0, self.realAt(event.at) - self.reactor.seconds())
        key = event.site or (self.scenario.topology.serviceByName[event.service].site if event.service else None) or "appliance"
        d = task.deferLater(self.reactor, delay, lambda: None)
        d.addCallback(lambda _: self._serial(key, record))
        self._pending.append(d)

    def _serial(self, key: str, record: EventRecord) -> defer.Deferred:
        """Events on one target apply in order, each after the one before finished."""
        previous = self._queues.get(key, defer.succeed(None))
        d = defer.Deferred()
        previous.addBoth(lambda _: defer.ensureDeferred(self._apply(record)).addBoth(d.callback))
        self._queues[key] = d
        return d

    async def _ramp(self, record: EventRecord, steps) -> None:
        event = record.event
        service = event.service
        site = self.scenario.topology.serviceByName[service].site
        for at, values in steps:
            await sleep(self.reactor, self.realAt(at) - self.reactor.seconds())
            began = self.reactor.seconds()
            try:
                await siteCall(self.reactor, self.siteControls[site], SetSiteService, name=service, values=values)
            except Exception as e:
                record.error = record.error or f"at t={at:g}: {_describe(e)}"
            if record.appliedAt is None:
                record.appliedAt = self.now()
                record.took = self.reactor.seconds() - began
        record.detail = f"{len(steps)} values pinned"

    async def _apply(self, record: EventRecord) -> None:
        began = self.reactor.seconds()
        record.appliedAt = self.now()
        try:
            record.detail = await self._do(record.event)
        except Exception as e:
            record.error = _describe(e)
            self.log.info("scenario event {label} failed: {error}", label=record.event.label, error=record.error)
        record.took = self.reactor.seconds() - began

    async def _do(self, event: Event) -> Optional[str]:
        action = event.action
        topology = self.scenario.topology
        if action == "site-down":
            process = self.sites[event.site]
            if event.how == "services":
                for service in self._servicesOf(event.site):
                    await siteCall(self.reactor, self.siteControls[event.site], SetSiteService, name=service,
                                   values={"state": "DOWN"})
                return "every service pinned DOWN"
            pid = process.pid
            await process.stop(signal.SIGKILL if event.how == "kill" else signal.SIGTERM)
            return f"pid {pid} ended"
        if action == "site-up":
            process = self.sites[event.site]
            if not process.running:
                process.start()
                await self._waitFor(lambda: self._siteAnswers(event.site), 30.0, f"site {event.site}'s control endpoint")
                return f"restarted, pid {process.pid}"
            for service in self._servicesOf(event.site):
                await siteCall(self.reactor, self.siteControls[event.site], UnsetSiteService, name=service, metrics=["state"])
            return "every service's state released"
        if action == "site-freeze":
            self.sites[event.site].send(signal.SIGSTOP)
            return f"pid {self.sites[event.site].pid} stopped"
        if action == "site-thaw":
            self.sites[event.site].send(signal.SIGCONT)
            return f"pid {self.sites[event.site].pid} continued"
        if action == "set-metric":
            site = topology.serviceByName[event.service].site
            await siteCall(self.reactor, self.siteControls[site], SetSiteService, name=event.service, values=dict(event.values))
            return None
        if action == "release-metric":
            site = topology.serviceByName[event.service].site
            await siteCall(self.reactor, self.siteControls[site], UnsetSiteService, name=event.service, metrics=list(event.metrics))
            return None
        if action == "service-down":
            site = topology.serviceByName[event.service].site
            await siteCall(self.reactor, self.siteControls[site], SetSiteService, name=event.service, values={"state": "DOWN"})
            return None
        if action == "service-up":
            site = topology.serviceByName[event.service].site
            await siteCall(self.reactor, self.siteControls[site], UnsetSiteService, name=event.service, metrics=["state"])
            return None
        if action == "disable-service":
            result = (await self.control.protocol.callRemote(DisableService, name=event.service))["result"]
            return f"applied by cores {result.get('cores')}"
        if action == "enable-service":
            result = (await self.control.protocol.callRemote(EnableService, name=event.service))["result"]
            return f"applied by cores {result.get('cores')}"
        if action == "set-lb-method":
            result = (await self.control.protocol.callRemote(SetVServer, name=event.vserver, lbMethod=event.method))["result"]
            return f"applied by cores {result.get('cores')}"
        if action == "kill-core":
            core, pid = await self._corePid(event.core)
            os.kill(pid, signal.SIGKILL)
            return f"core {core}, pid {pid}"
        if action == "link-cut":
            self.proxies[event.site].cut()
            return None
        if action == "link-blackhole":
            self.proxies[event.site].blackhole()
            return None
        if action == "link-delay":
            self.proxies[event.site].delay(event.delay_ms)
            return None
        if action == "link-restore":
            self.proxies[event.site].restore()
            return None
        if action == "set-rate":
            names = [event.population] if event.population else list(self.loads)
            for name in names:
                population = next(p for p in self.scenario.populations if p.name == name)
                rate = event.rate if event.rate is not None else population.rate * event.factor
                self.loads[name].setRate(rate)
            return None
        if action == "site-scenario":
            row = (await siteCall(self.reactor, self.siteControls[event.site], SetScenario, name=event.scenario))["row"]
            return f"{row.get('events')} events"
        raise RunError(f"unknown action {action!r}")

    async def _waitFor(self, condition, deadline: float, what: str) -> None:
        limit = self.reactor.seconds() + deadline
        while not await condition():
            if self.reactor.seconds() > limit:
                raise RunError(f"timed out after {deadline:g} s waiting for {what}")
            await sleep(self.reactor, 0.05)

    async def _siteAnswers(self, site: str) -> bool:
        process = self.sites[site]
        if not process.running:
            raise RunError(f"site {site} exited: {process.lastLines(5)}")
        try:
            await siteCall(self.reactor, self.siteControls[site], ShowSiteServices)
        except Exception:
            return False
        return True

    def _servicesOf(self, site: str) -> list[str]:
        return [service.name for service in self.scenario.topology.services if service.site == site]

    async def _corePid(self, spec) -> tuple[int, int]:
        if spec == "control":
            core = (await self.control.statDNS()).get("control")
        elif isinstance(spec, str) and spec.startswith("master:"):
            site = spec.split(":", 1)[1]
            core = (await self.control.sites()).get(site, {}).get("master_core")
        else:
            core = spec
        if core is None:
            raise RunError(f"no core is {spec} now")
        rows = await self.control.cores()
        for row in rows:
            if row.get("core") == core and row.get("pid") and row.get("state") == "up":
                self.cores.observe(self.now(), rows)
                return core, row["pid"]
        raise RunError(f"core {core} is not up")

    # --- stopping ------------------------------------------------------------------------

    async def stopEverything(self) -> None:
        """Stop the load, the polls, every process and proxy; once (later calls wait for the first)."""
        if self._stopping is not None:
            await self._stopping
            return
        self._stopping = defer.Deferred()
        try:
            await self._stopAll()
        finally:
            d, self._stopping = self._stopping, _FIRED
            d.callback(None)

    async def _stopAll(self) -> None:
        self._polling = False
        for load in self.loads.values():
            if load.startedAt is not None and load.stoppedAt is None:
                try:
                    await load.stop()
                except Exception:
                    pass
        if self.control is not None and self.appliance is not None and self.appliance.running:
            try:
                rows = await self.control.cores()
                self.cores.observe(self.now(), rows)
            except Exception:
                pass
        if self.control is not None:
            self.control.close()
        stops = []
        if self.appliance is not None:
            stops.append(defer.ensureDeferred(self.appliance.stop()))
        for process in self.sites.values():
            stops.append(defer.ensureDeferred(process.stop()))
        await defer.DeferredList(stops)
        for proxy in self.proxies.values():
            try:
                await proxy.stopService()
            except Exception:
                pass
        # Cores end when their supervisor's pipe closes: wait for them (and kill any that would not).
        leftovers = [pid for pid in self.pids() if alive(pid)]
        limit = self.reactor.seconds() + STOP_GRACE
        while leftovers and self.reactor.seconds() < limit:
            await sleep(self.reactor, 0.1)
            leftovers = [pid for pid in leftovers if alive(pid)]
        for pid in leftovers:
            self.errors.append(f"process {pid} was still running after the run: killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def pids(self) -> set[int]:
        """Every process the run started (site and appliance incarnations, the cores seen)."""
        pids = set(self.cores.allPids())
        for process in [self.appliance] + list(self.sites.values()):
            if process is not None:
                pids.update(process.pids)
        return pids

    # --- judging and reporting --------------------------------------------------------------

    def _finish(self) -> RunResult:
        if self.result is not None:  # (an interrupt finished first)
            return self.result
        scenario = self.scenario
        ran = self.t0 is not None
        if ran and not self.interrupted:
            for process in [self.appliance] + list(self.sites.values()):
                for crash in process.crashes if process is not None else ():
                    if crash not in self.errors:
                        self.errors.append(crash)
        applied = {r.event.id: r.appliedAt for r in self.records if r.event.id and r.appliedAt is not None}
        verdicts = expect.evaluate(scenario, self.series, self.speed, applied) if ran and not self.interrupted else []
        eventErrors = [r for r in self.records if r.error]
        passed = ran and not self.interrupted and not self.errors and not eventErrors and all(v.passed for v in verdicts)
        if self.interrupted:
            exitCode = 130
        elif not ran or self.errors:
            exitCode = 3
        else:
            exitCode = 0 if passed else 1
        document = report.document(
            scenario=scenario, series=self.series, verdicts=verdicts,
            events=[r.asDict() for r in self.records], cores=self.cores.table(),
            coreSamples=self.cores.samples, siteStates=self.siteStates.transitions,
            failovers=expect.failovers(scenario, self.series, self.siteStates.transitions,
                                       {r.event.index: r.appliedAt for r in self.records if r.appliedAt is not None})
            if ran else [],
            loads={name: load.report() for name, load in self.loads.items()},
            run={
                "speed": self.speed, "requested_speed": self.requestedSpeed, "speed_note": self.speedNote,
                "scaled": [s.asDict() for s in self.scaled],
                "started": datetime.datetime.fromtimestamp(self.startedWall).isoformat(timespec="seconds"),
                "wall_seconds": round(time.time() - self.startedWall, 2),
                "startup_seconds": None if self.startupSeconds is None else round(self.startupSeconds, 2),
                "interrupted": self.interrupted, "errors": list(self.errors),
                "ports": {"dns": self.ports.dns, "appliance_mep": self.ports.applianceMEP} if self.ports else {},
                "proxies": [p.describe() for p in self.proxies.values()],
                "processes": {"appliance": self.appliance.pids if self.appliance else [],
                              **{f"site {name}": p.pids for name, p in self.sites.items()}},
                "exit_code": exitCode,
            },
            passed=passed,
        )
        files: dict[str, str] = {}
        if self.reportDir is not None:
            files = report.write(self.reportDir, document)
            if self.workDir is not None and os.path.isdir(os.path.join(self.workDir, "logs")):
                target = os.path.join(self.reportDir, "logs")
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(os.path.join(self.workDir, "logs"), target)
                files["logs"] = target
        if self.workDir is not None:
            if self.keep or (not passed and self.reportDir is None):
                files["work"] = self.workDir
            else:
                shutil.rmtree(self.workDir, ignore_errors=True)
        self.files = files
        self.result = RunResult(passed, exitCode, document, files, self.pids(), list(self.errors))
        return self.result


_FIRED = defer.succeed(None)


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:300] if "\n" not in text else text[:600]


async def runScenario(reactor, scenario: Scenario, speed: float = 1.0, reportDir: Optional[str] = None,
                      progress: Optional[Callable[[dict], None]] = None, keep: bool = False) -> RunResult:
    """Run C{scenario} once (what C{gslb-scenario run} does, and the tests)."""
    return await ScenarioRun(reactor, scenario, speed, reportDir, progress, keep).run()
