"""
One fault at a time, injected into a running appliance under load, with
when it was detected and when the appliance recovered, by definitions a
user can check from the console.

A fault runs against a I{lab}: whatever holds the running processes.  The
chaos tests build one from C{tests.support}, the chaos benchmark its own;
what a fault needs of it is

  - C{lab.reactor}: the reactor (a clock, C{callLater});
  - C{lab.control}: a L{Control} on the appliance's control endpoint;
  - C{lab.load}: the running L{LoadGenerator} (the steady load);
  - C{lab.windows}: the L{DownWindows} its classifier reads;
  - C{lab.site(name)}: the site emulator process (C{pid}, C{start()},
    C{stop(signal)} -> Deferred, C{control}: its control endpoint string);
  - C{lab.proxy(name)}: the L{TCPProxy} on that site's MEP link;
  - C{lab.keptDown}: sites kept DOWN on purpose (not expected to be UP);
  - C{lab.dnsPort}: the appliance's DNS port (UDP, 127.0.0.1).

Definitions (times on the reactor's clock; every wait has a deadline):

  - I{a site is DOWN everywhere}: every serving core's own table
    (C{show metrics SITE --core N}) holds it DOWN.  From then on until the
    fault is repaired, an answer naming the site is wrong (the lab's
    L{DownWindows} gets the window).  I{UP everywhere} likewise.
  - I{back in the answers}: the steady load got an answer naming one of the
    site's addresses after the repair.
  - each fault's I{detected} and I{recovered}: see its function.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Optional

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols import amp

from gslb_twisted.chaos.load import LoadGenerator, readUDPDrops
from gslb_twisted.protocol.commands import (
    SetSiteService,
    ShowCores,
    ShowMEP,
    ShowMetrics,
    ShowSites,
    StatDNS,
)

DOWN = "DOWN"
UP = "UP"


class FaultTimeout(AssertionError):
    """A fault's expected outcome did not come before its deadline."""


async def sleep(reactor, seconds: float) -> None:
    await task.deferLater(reactor, max(0.0, seconds), lambda: None)


async def until(reactor, condition: Callable[[], Any], deadline: float, what: str, interval: float = 0.05):
    """
    Call C{condition()} (a value, a Deferred or a coroutine) every
    C{interval} seconds until it is true; return that value.

    @raise FaultTimeout: after C{deadline} seconds, naming C{what}.
    """
    start = reactor.seconds()
    while True:
        result = condition()
        if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
            result = await result
        if result:
            return result
        if reactor.seconds() - start > deadline:
            raise FaultTimeout(f"timed out after {deadline:g} s waiting for {what}")
        await sleep(reactor, interval)


# ---------------------------------------------------------------------------
# The console's view, over one AMP connection.


class Control:
    """The appliance's control endpoint, on one AMP connection."""

    def __init__(self, protocol: amp.AMP) -> None:
        self.protocol = protocol

    @classmethod
    async def connect(cls, reactor, endpoint: str) -> "Control":
        return cls(await connectProtocol(clientFromString(reactor, endpoint), amp.AMP()))

    def close(self) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.loseConnection()

    async def cores(self) -> list[dict]:
        return (await self.protocol.callRemote(ShowCores))["cores"]

    async def sites(self) -> dict[str, dict]:
        rows = (await self.protocol.callRemote(ShowSites))["rows"]
        return {row["name"]: row for row in rows}

    async def mep(self) -> list[dict]:
        return (await self.protocol.callRemote(ShowMEP))["rows"]

    async def statDNS(self) -> dict:
        return (await self.protocol.callRemote(StatDNS))["result"]

    async def held(self, site: str) -> dict[int, Optional[dict]]:
        """C{show metrics SITE --core N} of every core up (None: it did not answer)."""
        cores = [row["core"] for row in await self.cores() if row.get("state") == "up"]
        calls = [self.protocol.callRemote(ShowMetrics, site=site, core=core) for core in cores]
        answers = await defer.DeferredList(calls, consumeErrors=True)
        return {core: (value["result"] if ok else None) for core, (ok, value) in zip(cores, answers)}

    async def heldEverywhere(self, site: str, state: str, check: Optional[Callable[[dict], bool]] = None) -> bool:
        """Does every serving core hold C{site} in C{state} (and pass C{check})?"""
        views = await self.held(site)
        return bool(views) and all(
            view is not None and view.get("state") == state and (check is None or check(view))
            for view in views.values()
        )


async def siteCall(reactor, endpoint: str, command, **arguments) -> dict:
    """One command on a site emulator's control endpoint, on a connection of its own."""
    protocol = await connectProtocol(clientFromString(reactor, endpoint), amp.AMP())
    try:
        return await protocol.callRemote(command, **arguments)
    finally:
        protocol.transport.loseConnection()


async def setSiteService(reactor, endpoint: str, service: str, **values) -> dict:
    return (await siteCall(reactor, endpoint, SetSiteService, name=service, values=values))["row"]


async def siteSeq(reactor, endpoint: str) -> Optional[int]:
    """The highest metric seq the site emulator's established sessions carry."""
    rows = (await siteCall(reactor, endpoint, ShowMEP))["rows"]
    seqs = [row["seq"] for row in rows if row.get("state") == "established" and row.get("seq") is not None]
    return max(seqs) if seqs else None


# ---------------------------------------------------------------------------
# Outcomes.


@dataclass
class FaultRun:
    """
    One fault: when it was injected, detected, repaired (None: it heals
    itself) and recovered from; details by fault.
    """

    fault: str
    target: str
    injectedAt: float
    detectedAt: Optional[float] = None
    repairedAt: Optional[float] = None
    recoveredAt: Optional[float] = None
    details: dict = field(default_factory=dict)

    @property
    def detect(self) -> Optional[float]:
        """Seconds from injection to detection."""
        return None if self.detectedAt is None else self.detectedAt - self.injectedAt

    @property
    def recover(self) -> Optional[float]:
        """Seconds from the repair (or, for a fault that heals itself, the injection) to recovery."""
        if self.recoveredAt is None:
            return None
        return self.recoveredAt - (self.repairedAt if self.repairedAt is not None else self.injectedAt)

    def asDict(self) -> dict:
        row = asdict(self)
        row["detect"] = self.detect
        row["recover"] = self.recover
        return row


def addressesOf(lab, site: str) -> list[str]:
    return sorted(address for address, name in lab.windows.siteOf.items() if name == site)


def answersNaming(load: LoadGenerator, addresses) -> int:
    counts = load.totals.addresses
    return sum(counts.get(address, 0) for address in addresses)


async def holdLoad(lab, queries: int, deadline: float) -> None:
    """Let the steady load have C{queries} more answers."""
    target = lab.load.totals.answered + queries
    await until(lab.reactor, lambda: lab.load.totals.answered >= target, deadline,
                f"{queries} more answers to the steady load")


async def _downEverywhere(lab, site: str, deadline: float) -> float:
    await until(lab.reactor, lambda: lab.control.heldEverywhere(site, DOWN), deadline,
                f"every core to hold site {site} DOWN")
    at = lab.reactor.seconds()
    lab.windows.down(site, at)
    return at


async def _backEverywhere(lab, site: str, since: float, deadline: float) -> float:
    """Every core holds C{site} UP and the load got an answer naming it after C{since}."""
    addresses = addressesOf(lab, site)
    named = answersNaming(lab.load, addresses)
    await until(lab.reactor, lambda: lab.control.heldEverywhere(site, UP), deadline,
                f"every core to hold site {site} UP again")
    await until(lab.reactor, lambda: answersNaming(lab.load, addresses) > named, deadline,
                f"an answer naming site {site} again")
    return lab.reactor.seconds()


def _repair(lab, site: str) -> float:
    at = lab.reactor.seconds()
    lab.windows.up(site, at)
    return at


# ---------------------------------------------------------------------------
# Core faults.


def _slot(rows: list[dict], core: int) -> dict:
    for row in rows:
        if row.get("core") == core:
            return row
    return {}


async def _sitesMastered(lab) -> bool:
    sites = await lab.control.sites()
    return all(row.get("state") == UP and row.get("master_core") is not None
               for name, row in sites.items() if name not in lab.keptDown)


async def killCore(lab, core: int, deadline: float = 30.0) -> FaultRun:
    """
    SIGKILL core C{core}.  Detected: C{show cores} shows its slot not up or
    under a new pid (the supervisor saw it die).  Recovered (it heals
    itself): the slot is up under a new pid (respawned, holding every
    site's snapshot) and every site not kept DOWN is UP with a master.
    Details: the control core (C{stat dns}) before and after, the sites the
    victim mastered.
    """
    reactor = lab.reactor
    rows = await lab.control.cores()
    pid = _slot(rows, core)["pid"]
    sites = await lab.control.sites()
    before = await lab.control.statDNS()
    run = FaultRun("core SIGKILL", f"core {core}", reactor.seconds(), details={
        "pid": pid,
        "mastered": sorted(name for name, row in sites.items() if row.get("master_core") == core),
        "control_before": before.get("control"),
        "round_before": before.get("round"),
    })
    os.kill(pid, signal.SIGKILL)

    async def gone():
        row = _slot(await lab.control.cores(), core)
        return row.get("state") != "up" or row.get("pid") != pid

    await until(reactor, gone, deadline, f"the supervisor to see core {core} die")
    run.detectedAt = reactor.seconds()

    async def back():
        row = _slot(await lab.control.cores(), core)
        if row.get("state") == "up" and row.get("pid") not in (None, pid):
            run.details["new_pid"] = row["pid"]
            return await _sitesMastered(lab)
        return False

    await until(reactor, back, deadline, f"core {core} respawned and every site UP with a master")
    run.recoveredAt = reactor.seconds()
    after = await lab.control.statDNS()
    run.details.update(control_after=after.get("control"), round_after=after.get("round"))
    return run


async def killControlCore(lab, deadline: float = 30.0) -> FaultRun:
    """
    SIGKILL the control core: the lowest serving core, which leads the
    counter consolidation (C{stat dns} names it).  As L{killCore}, and
    recovered only once the respawned core leads the rounds again: C{stat
    dns} names it control, and then shows a round it closed (a round
    number above the one shown when it took the lead).
    """
    reactor = lab.reactor
    control = (await lab.control.statDNS()).get("control")
    if control is None:
        raise FaultTimeout("stat dns names no control core")
    run = await killCore(lab, control, deadline)
    run.fault = "control core SIGKILL"

    lead = {"round": None}

    async def leading():
        stats = await lab.control.statDNS()
        if stats.get("control") != control:
            return False
        if lead["round"] is None:
            lead["round"] = stats.get("round") or 0
            run.details["round_at_lead"] = lead["round"]
        return (stats.get("round") or 0) > lead["round"]

    await until(reactor, leading, deadline, f"core {control} to lead the consolidation rounds again")
    run.recoveredAt = reactor.seconds()
    return run


async def stopCore(lab, core: int, seconds: float = 5.0, deadline: float = 30.0) -> FaultRun:
    """
    SIGSTOP core C{core} for C{seconds}, then SIGCONT.  Not detected by
    design (the supervisor ends a core only after 30 s without it reading
    its pipe; the other cores read the shared socket meanwhile).  Repaired
    at the SIGCONT; recovered: C{show cores} shows the core up, not
    restarted, with more queries answered than before the stop.
    """
    reactor = lab.reactor
    row = _slot(await lab.control.cores(), core)
    pid, restarts = row["pid"], row.get("restarts", 0)
    run = FaultRun("core SIGSTOP", f"core {core}", reactor.seconds(), details={"pid": pid, "seconds": seconds})
    answered = lab.load.totals.answered
    os.kill(pid, signal.SIGSTOP)
    try:
        await sleep(reactor, seconds)
        run.details["answered_while_stopped"] = lab.load.totals.answered - answered
        # The supervisor's last word on the stopped core's count.
        queries = _slot(await lab.control.cores(), core).get("queries") or 0
    finally:
        os.kill(pid, signal.SIGCONT)
    run.repairedAt = reactor.seconds()

    async def serving():
        row = _slot(await lab.control.cores(), core)
        if row.get("pid") != pid or row.get("restarts", 0) != restarts:
            raise FaultTimeout(f"core {core} was restarted: {row}")
        return row.get("state") == "up" and (row.get("queries") or 0) > queries

    await until(reactor, serving, deadline, f"core {core} to answer queries again")
    run.recoveredAt = reactor.seconds()
    return run


# ---------------------------------------------------------------------------
# Site faults.


async def killSite(lab, site: str, hold: int = 200, deadline: float = 30.0) -> FaultRun:
    """
    SIGKILL the site emulator.  Detected: DOWN everywhere.  Repaired: the
    emulator started again (after the steady load had C{hold} answers
    while it was DOWN).  Recovered: UP everywhere and back in the answers.
    """
    reactor = lab.reactor
    process = lab.site(site)
    run = FaultRun("site SIGKILL", site, reactor.seconds(), details={"pid": process.pid})
    await process.stop(signal.SIGKILL)
    run.detectedAt = await _downEverywhere(lab, site, deadline)
    await holdLoad(lab, hold, deadline)
    run.repairedAt = _repair(lab, site)
    process.start()
    run.recoveredAt = await _backEverywhere(lab, site, run.repairedAt, deadline)
    run.details["new_pid"] = process.pid
    return run


async def freezeSite(lab, site: str, hold: int = 200, deadline: float = 30.0) -> FaultRun:
    """
    SIGSTOP the site emulator: its sockets stay open, it says nothing.
    Detected: DOWN everywhere (after dead_interval of silence).  Repaired:
    SIGCONT (after C{hold} answers while DOWN).  Recovered: UP everywhere
    and back in the answers.
    """
    reactor = lab.reactor
    pid = lab.site(site).pid
    run = FaultRun("site SIGSTOP", site, reactor.seconds(), details={"pid": pid})
    os.kill(pid, signal.SIGSTOP)
    try:
        run.detectedAt = await _downEverywhere(lab, site, deadline)
        await holdLoad(lab, hold, deadline)
    finally:
        run.repairedAt = _repair(lab, site)
        os.kill(pid, signal.SIGCONT)
    run.recoveredAt = await _backEverywhere(lab, site, run.repairedAt, deadline)
    return run


async def restartSite(lab, site: str, service: str, marker: int = 4321, deadline: float = 30.0) -> FaultRun:
    """
    Restart the site emulator at once (SIGKILL, start): the new process
    numbers its metric versions from the start again (seq 1), far below
    what the appliance last had from the old one.  Before, the old process
    publishes C{service} with C{marker - 1} connections; after, the new one
    with C{marker}.  Detected: the appliance's master shows the site DOWN
    (None if the restart was too quick to see it).  Repaired: the new
    process started.  Recovered: every core holds the site UP with the new
    process's C{marker} (its snapshot and deltas taken, not refused as
    stale).  Details: the old and new processes' seqs.
    """
    reactor = lab.reactor
    process = lab.site(site)
    old = await setSiteService(reactor, process.control, service, connections=marker - 1)
    if old.get("connections") != marker - 1:
        raise FaultTimeout(f"site {site} did not take connections={marker - 1}: {old}")

    def holds(value):
        def check(view):
            rows = {row["name"]: row for row in view.get("services", [])}
            return rows.get(service, {}).get("connections") == value
        return lambda: lab.control.heldEverywhere(site, UP, check)

    await until(reactor, holds(marker - 1), deadline, f"every core to hold {service} at {marker - 1} connections")
    seqBefore = await siteSeq(reactor, process.control)
    run = FaultRun("site restart (seq reset)", site, reactor.seconds(),
                   details={"pid": process.pid, "seq_before": seqBefore})
    await process.stop(signal.SIGKILL)
    process.start()
    run.repairedAt = reactor.seconds()
    seen = {"down": None}

    async def downSeen():
        if seen["down"] is None and (await lab.control.sites()).get(site, {}).get("state") == DOWN:
            seen["down"] = reactor.seconds()
        return False

    async def pinned():
        await downSeen()
        try:
            row = await setSiteService(reactor, process.control, service, connections=marker)
        except Exception:
            return False  # not listening yet
        return row.get("connections") == marker

    await until(reactor, pinned, deadline, f"the restarted site {site} to take connections={marker}")

    async def taken():
        await downSeen()
        return await holds(marker)()

    await until(reactor, taken, deadline, f"every core to hold {service} at {marker} connections from the new process")
    run.recoveredAt = reactor.seconds()
    run.detectedAt = seen["down"]
    run.details.update(new_pid=process.pid, seq_after=await siteSeq(reactor, process.control))
    return run


# ---------------------------------------------------------------------------
# MEP link faults (through the lab's proxy).


async def cutLink(lab, site: str, hold: int = 200, deadline: float = 30.0) -> FaultRun:
    """
    Cut the site's MEP link: the session is reset, reconnections refused.
    Detected: DOWN everywhere.  Repaired: the link restored (after C{hold}
    answers while DOWN).  Recovered: UP everywhere and back in the answers
    (the reconnect backoff of whichever end dials is part of it).
    """
    return await _brokenLink(lab, site, "MEP link cut", lambda proxy: proxy.cut(), hold, deadline)


async def blackholeLink(lab, site: str, hold: int = 200, deadline: float = 30.0) -> FaultRun:
    """
    Blackhole the site's MEP link: connections stay open, nothing gets
    through, not even a close.  Detected: DOWN everywhere (after
    dead_interval of silence).  Repaired: the link restored (the broken
    connections reset).  Recovered: UP everywhere and back in the answers.
    """
    return await _brokenLink(lab, site, "MEP link blackhole", lambda proxy: proxy.blackhole(), hold, deadline)


async def _brokenLink(lab, site: str, name: str, breakLink, hold: int, deadline: float) -> FaultRun:
    """Break the site's MEP link with C{breakLink(proxy)}, hold, restore, and time it all."""
    reactor = lab.reactor
    proxy = lab.proxy(site)
    run = FaultRun(name, site, reactor.seconds())
    breakLink(proxy)
    try:
        run.detectedAt = await _downEverywhere(lab, site, deadline)
        await holdLoad(lab, hold, deadline)
    finally:
        run.repairedAt = _repair(lab, site)
        proxy.restore()
    run.recoveredAt = await _backEverywhere(lab, site, run.repairedAt, deadline)
    run.details["proxy"] = {k: v for k, v in proxy.describe().items() if k != "links"}
    return run


async def delayLink(lab, site: str, service: str, milliseconds: float = 200.0, marker: int = 2468,
                    deadline: float = 30.0) -> FaultRun:
    """
    Delay the site's MEP link by C{milliseconds} each way (less than
    dead_interval: the site must stay UP).  Detected: the master's MEP
    session measures a keepalive round trip (C{show mep}) of at least twice
    the delay.  Meanwhile a metric change at the site
    (C{service} to C{marker} connections) must still reach every core.
    Repaired: the link restored.  Recovered: the RTT back under the delay.
    Details: the RTT seen, whether a core ever held the site DOWN.
    """
    reactor = lab.reactor
    proxy = lab.proxy(site)
    delay = milliseconds / 1000.0
    run = FaultRun("MEP link delay", site, reactor.seconds(), details={"delay_ms": milliseconds, "down_seen": False})

    async def rtt():
        """The site's live session's keepalive RTT, as its master measures it (C{show mep})."""
        if (await lab.control.sites()).get(site, {}).get("state") != UP:
            run.details["down_seen"] = True
        rtts = [row.get("rtt") for row in await lab.control.mep()
                if row.get("site") == site and row.get("state") == "established" and row.get("rtt") is not None]
        return max(rtts) if rtts else None

    proxy.delay(milliseconds)
    try:
        async def slow():
            value = await rtt()
            return value if value is not None and value >= 2 * delay else None

        run.details["rtt_delayed_ms"] = round(1000 * await until(
            reactor, slow, deadline, f"the MEP RTT to {site} to show the {milliseconds:g} ms delay"), 1)
        run.detectedAt = reactor.seconds()
        changed = reactor.seconds()
        await setSiteService(reactor, lab.site(site).control, service, connections=marker)

        def check(view):
            rows = {row["name"]: row for row in view.get("services", [])}
            return rows.get(service, {}).get("connections") == marker

        async def propagated():
            await rtt()
            return await lab.control.heldEverywhere(site, UP, check)

        await until(reactor, propagated, deadline, f"{service}'s change to reach every core through the delay")
        run.details["change_everywhere_s"] = round(reactor.seconds() - changed, 3)
    finally:
        proxy.restore()
        run.repairedAt = reactor.seconds()

    async def fast():
        value = await rtt()
        # (A zero RTT is a true value for until: keep the number apart.)
        return (value,) if value is not None and value < delay else None

    (after,) = await until(reactor, fast, deadline, f"the MEP RTT to {site} back under {milliseconds:g} ms")
    run.recoveredAt = reactor.seconds()
    run.details["rtt_after_ms"] = round(1000 * after, 1)
    return run


# ---------------------------------------------------------------------------
# DNS socket faults.


async def floodUDP(lab, count: int = 30000, source: str = "127.0.2.1", deadline: float = 30.0) -> FaultRun:
    """
    Flood the appliance's DNS socket: C{count} queries as fast as a process
    of their own sends them (L{gslb_twisted.chaos.flood}), far beyond what
    the socket's receive buffer holds.  Injected and repaired: the flood's
    first and last send.  Detected: the kernel counts datagrams dropped at
    that socket (C{/proc/net/udp}, polled every 5 ms; C{netstat -su}:
    receive buffer errors).  Recovered: from the last steady query lost on,
    every one is
    answered: at the send time of the last lost one, or at the end of the
    flood if none was lost after it.  Details: the flood's figures, the
    drops at the appliance's socket, the steady queries lost.
    """
    reactor = lab.reactor
    steady = lab.load
    port = lab.dnsPort
    drops = readUDPDrops(port)
    if drops is None:
        raise FaultTimeout(f"no UDP socket on port {port} in /proc/net/udp")
    host = steady.target[0]
    name = steady.queries[0][0]
    lostBefore = steady.totals.lost
    run = FaultRun("UDP receive buffer flood", f"udp:{port}", reactor.seconds(), details={"flood": count})
    flooding = getProcessOutputAndValue(
        sys.executable,
        ["-m", "gslb_twisted.chaos.flood", "--target", f"{host}:{port}", "--name", name, "--count", str(count),
         "--source", source],
        env=dict(os.environ),
    )
    while not flooding.called:
        if run.detectedAt is None and (readUDPDrops(port) or 0) > drops:
            run.detectedAt = reactor.seconds()
        await sleep(reactor, 0.005)
    out, err, code = await flooding
    if code != 0:
        raise FaultTimeout(f"the flood failed ({code}): {err.decode(errors='replace')[-500:]}")
    result = run.details["flood_result"] = json.loads(out)
    # The flood's own times (the same wall clock): its first and last send.
    run.injectedAt = result["started_at"]
    run.repairedAt = result["started_at"] + result["seconds"]
    if run.detectedAt is None and (readUDPDrops(port) or 0) > drops:
        run.detectedAt = reactor.seconds()
    # Every steady query sent during the flood is answered or lost after
    # the load's timeout.
    await sleep(reactor, steady.timeout + 0.2)
    run.details.update(dropped_at_appliance=(readUDPDrops(port) or 0) - drops,
                       steady_lost=steady.totals.lost - lostBefore)
    last = steady.totals.lastLostSent
    run.recoveredAt = max(run.repairedAt, last) if last is not None and last >= run.injectedAt else run.repairedAt
    return run


FAULTS: dict[str, Callable[..., Awaitable[FaultRun]]] = {
    "core-kill": killCore,
    "control-core-kill": killControlCore,
    "core-stop": stopCore,
    "site-kill": killSite,
    "site-freeze": freezeSite,
    "site-restart": restartSite,
    "link-cut": cutLink,
    "link-blackhole": blackholeLink,
    "link-delay": delayLink,
    "udp-flood": floodUDP,
}
