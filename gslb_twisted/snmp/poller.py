"""
The master core's side of an SNMP site: poll its agent every
C{metrics_interval}, turn the answers into metrics, and say when the site
is DOWN -- no answer for C{dead_interval}, as for a silent MEP site.

A poller is a plain object around a L{LoopingCall}; what it reports goes
through C{report(state, services, lagging, reason)}, which the core makes
into table records, deltas and propagation exactly as for MEP.
"""

from __future__ import annotations

import zlib
from typing import Callable, Optional

from twisted.internet import defer, task
from twisted.logger import Logger

from gslb_twisted.config import Site
from gslb_twisted.snmp.client import SNMPError
from gslb_twisted.snmp.sampling import DOWN, UP, PollPlan, Sampler

# After a timeout of a v1/v2c agent, ask whether an agent answers at all
# (so that a wrong community is told from a dead agent) on the first
# timeout of a streak and every this many after.
PROBE_EVERY = 10


def pollTimeout(site: Site, metricsInterval: float) -> float:
    """
    Seconds per try: the site's, else whatever lets every try of one poll
    end within 80 % of the interval (at most 1 s), so polls do not overlap.
    """
    settings = site.snmp
    if settings.timeout is not None:
        return settings.timeout
    return max(0.05, min(1.0, 0.8 * metricsInterval / (settings.retries + 1)))


class SNMPSitePoller:
    """
    @ivar polls: requests sent; C{failures}: those that failed;
        C{skipped}: ticks when the previous request was still out.
    @ivar lastError: why the last poll failed (None after a success).
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        client,
        site: Site,
        plan: PollPlan,
        interval: float,
        deadInterval: float,
        report: Callable[..., None],
    ) -> None:
        self.reactor = reactor
        self.client = client
        self.site = site
        self.plan = plan
        self.sampler = Sampler(plan, deadInterval)
        self.interval = interval
        self.deadInterval = deadInterval
        self.report = report
        self.polls = self.failures = self.skipped = 0
        self.lastError: Optional[str] = None
        self.lastErrorKind: Optional[str] = None
        self.lastSuccess: Optional[float] = None
        self.lastLatency: Optional[float] = None
        self.started: Optional[float] = None
        self._streak = 0
        self._pending: Optional[defer.Deferred] = None
        self._problems: frozenset = frozenset()
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = reactor
        self._first = None
        self.dead = False
        self._sent = 0.0
        # How long one request may take (every try, plus an interval of
        # slack) before the poller stops waiting for it.
        settings = site.snmp
        timeout = settings.timeout if settings.timeout is not None else pollTimeout(site, interval)
        self._patience = (settings.retries + 1) * timeout + interval

    def start(self) -> None:
        """
        Poll from now on; the first poll comes at a fixed offset within the
        first interval (from the site's name), so that many sites mastered
        at once spread their polls over the whole interval instead of
        polling in one burst (which would hold DNS queries up).
        """
        self.started = self.reactor.seconds()
        offset = (zlib.crc32(self.site.name.encode("utf-8")) % 1000) / 1000.0 * self.interval
        self._first = self.reactor.callLater(offset, self._startLoop)

    def _startLoop(self) -> None:
        # A LoopingCall stops for good when its function raises: say so,
        # loudly, rather than leave the site looking polled.
        self._loop.start(self.interval, now=True).addErrback(
            lambda failure: self.log.failure("SNMP polling of site {site} stopped", failure, site=self.site.name)
        )

    def stop(self) -> None:
        if self._first is not None and self._first.active():
            self._first.cancel()
        if self._loop.running:
            self._loop.stop()
        self._pending = None

    @property
    def running(self) -> bool:
        return self._loop.running or (self._first is not None and self._first.active())

    def poll(self) -> None:
        try:
            self._poll()
        except Exception:
            # (report() runs the core's record-keeping.)  One tick lost,
            # the loop goes on.
            self.log.failure("SNMP poll of site {site}", site=self.site.name)

    def _poll(self) -> None:
        self._checkDead()
        if self._pending is not None:
            if self.reactor.seconds() - self._sent <= self._patience:
                # The previous poll is still waiting for its retries: one at a time.
                self.skipped += 1
                return
            # The engine never called back (it always should, after its
            # retries): forget that request rather than wait for ever.
            self.log.warn("site {site}: an SNMP request got no outcome in {seconds:.1f} s; asking again",
                          site=self.site.name, seconds=self._patience)
            self._pending = None
        self.polls += 1
        sent = self._sent = self.reactor.seconds()
        d = defer.maybeDeferred(self.client.get, self.site.name, self.plan.oids)
        self._pending = d
        d.addCallbacks(self._answered, self._failed, callbackArgs=(d, sent), errbackArgs=(d,))
        d.addErrback(lambda failure: self.log.failure("SNMP poll of site {site}", failure, site=self.site.name))

    def _answered(self, answers: dict, request, sent: float) -> None:
        if request is not self._pending:
            return  # stopped (or superseded) meanwhile
        self._pending = None
        now = self.reactor.seconds()
        self.lastSuccess = now
        self.lastLatency = now - sent
        if self.lastError is not None:
            self.log.info("site {site}: SNMP agent answers again", site=self.site.name)
        self.lastError = self.lastErrorKind = None
        self._streak = 0
        self.dead = False
        sample = self.sampler.sample(answers, now)
        problems = frozenset(sample.problems)
        for problem in sorted(problems - self._problems):
            # Counters need two polls: not worth a line.
            if "first reading" not in problem:
                self.log.warn("site {site}: SNMP metric {problem}", site=self.site.name, problem=problem)
        self._problems = problems
        self.report(UP, sample.services, sample.lagging, None)

    def _failed(self, failure, request) -> None:
        if request is not self._pending:
            return
        self._pending = None
        self.failures += 1
        self._streak += 1
        error = failure.value if isinstance(failure.value, SNMPError) else SNMPError("engine", str(failure.value))
        settings = self.site.snmp
        if error.kind == "timeout" and settings.version in ("1", "2c") and (
            self._streak == 1 or self._streak % PROBE_EVERY == 0
        ):
            self.client.probe(self.site.name).addCallback(self._probed, error).addErrback(
                lambda failure: self.log.failure("SNMP liveness probe of site {site}", failure, site=self.site.name)
            )
            return
        self._settle(error)

    def _probed(self, alive: bool, error: SNMPError) -> None:
        if not self.running or self._streak == 0:
            # Stopped, or a poll succeeded while the probe was out: the
            # failure it would explain is over.
            return
        if alive:
            error = SNMPError(
                "credentials",
                f"no answer to community {self.site.snmp.community!r} from the agent at "
                f"{self.site.ip}:{self.site.snmp.port}, though an SNMP agent answers there: "
                "wrong community, or this appliance's address may not use it",
            )
        self._settle(error)

    def _settle(self, error: SNMPError) -> None:
        if self._streak > 1 and self.lastErrorKind == "credentials" and error.kind == "timeout":
            # Between probes a refused community still times out: keep the
            # diagnosis until a probe says otherwise.
            error = SNMPError("credentials", self.lastError)
        if error.message != self.lastError:
            self.log.warn("site {site}: SNMP poll failed: {error}", site=self.site.name, error=error.message)
        self.lastError, self.lastErrorKind = error.message, error.kind
        self._checkDead()

    def _checkDead(self) -> None:
        since = self.lastSuccess if self.lastSuccess is not None else self.started
        if since is None or self.reactor.seconds() - since < self.deadInterval:
            return
        if self.lastError is None and self._pending is not None:
            reason = "no answer from the agent yet"
        else:
            reason = self.lastError or "no answer from the agent"
        if not self.dead:
            # Reported once per outage: the table keeps the site DOWN.
            self.dead = True
            self.sampler.reset()
            self.report(DOWN, None, None, f"SNMP: {reason}")

    def status(self) -> dict:
        """What C{show gslb site} says of this poller."""
        now = self.reactor.seconds()
        return {
            "polls": self.polls,
            "failures": self.failures,
            "skipped": self.skipped,
            "last_error": self.lastError,
            "last_success_age": None if self.lastSuccess is None else round(now - self.lastSuccess, 3),
            "latency_ms": None if self.lastLatency is None else round(self.lastLatency * 1000, 3),
            "oids": len(self.plan.oids),
        }
