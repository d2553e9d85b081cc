"""
Running a probe periodically and reporting the service's state transitions.

Hysteresis follows NetScaler's monitor parameters and their defaults (the
C{add lb monitor} reference; C{show lb monitor} prints "Retries: 3", "Success
Retries: 1", "Failure Retries: 0" for a default monitor):

  - C{retries} (default 3): once UP, the service is marked DOWN after this
    many consecutive failed probes (NetScaler's default C{failureRetries} of
    0 means "all the retries must fail").
  - C{successRetries} (default 1): once DOWN, this many consecutive
    successful probes mark it UP again.
  - The very first probe after a start has no previous state to protect: its
    verdict is the initial state and is reported at once.

Probes run every C{interval} seconds on the injected clock and never overlap:
a probe slower than the interval delays the next one to the following
interval boundary (L{LoopingCall} semantics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .probes import IProbe, ProbeResult

UP = "UP"
DOWN = "DOWN"

# NetScaler's defaults for `add lb monitor -retries` and `-successRetries`.
DEFAULT_RETRIES = 3
DEFAULT_SUCCESS_RETRIES = 1


@dataclass(frozen=True)
class Hysteresis:
    """
    A monitor's debounced state: C{state} is C{None} before the first
    result, C{failures}/C{successes} count consecutive probes disagreeing
    with it.
    """

    state: Optional[str] = None
    failures: int = 0
    successes: int = 0


def advance(
    current: Hysteresis,
    up: bool,
    retries: int = DEFAULT_RETRIES,
    successRetries: int = DEFAULT_SUCCESS_RETRIES,
) -> Hysteresis:
    """
    The state after one more probe result.  Pure; the transition happened
    when the returned C{state} differs from C{current.state}.
    """
    if current.state is None:
        return Hysteresis(UP if up else DOWN)
    if current.state == UP:
        if up:
            return Hysteresis(UP)
        failures = current.failures + 1
        return Hysteresis(DOWN) if failures >= retries else Hysteresis(UP, failures=failures)
    if not up:
        return Hysteresis(DOWN)
    successes = current.successes + 1
    return Hysteresis(UP) if successes >= successRetries else Hysteresis(DOWN, successes=successes)


class MonitorRunner(Service):
    """
    Probes a service every C{interval} seconds and calls C{onChange(name,
    result)} on each state transition, the first result included; logs each
    transition once.

    @ivar state: C{"UP"}, C{"DOWN"} or C{None} before the first result.
    @ivar lastResult: the latest L{ProbeResult}, or C{None}.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        probe: IProbe,
        interval: float,
        onChange: Callable[[str, ProbeResult], object],
        name: str,
        retries: int = DEFAULT_RETRIES,
        successRetries: int = DEFAULT_SUCCESS_RETRIES,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be above 0, got {interval!r}")
        if retries < 1 or successRetries < 1:
            raise ValueError("retries and successRetries must be at least 1")
        self._clock = clock
        self._probe = probe
        self.interval = interval
        self._onChange = onChange
        self.setName(name)
        self.retries = retries
        self.successRetries = successRetries
        self._hysteresis = Hysteresis()
        self.lastResult: Optional[ProbeResult] = None
        self.probesSent = 0
        self._loop: Optional[LoopingCall] = None
        self._inFlight: Optional[Deferred] = None
        self._settledWaiters: list[Deferred] = []

    @property
    def state(self) -> Optional[str]:
        return self._hysteresis.state

    def startService(self) -> None:
        super().startService()
        # A (re)started monitor reports its first result afresh.
        self._hysteresis = Hysteresis()
        self._loop = LoopingCall(self._runOnce)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("monitor {name} loop failed", f, name=self.name)
        )

    def stopService(self) -> Deferred:
        """
        Stop probing; cancel a probe in flight.  The Deferred fires once that
        probe has settled (its sockets closed); no result is reported after
        the stop.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._inFlight is None:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._settledWaiters.append(waiter)
        self._inFlight.cancel()
        return waiter

    def _runOnce(self) -> Deferred:
        self.probesSent += 1
        d = maybeDeferred(self._probe.probe)
        self._inFlight = d
        d.addCallbacks(self._gotResult, self._probeFailed)
        d.addBoth(self._settled)
        return d

    def _settled(self, ignored: object) -> None:
        self._inFlight = None
        waiters, self._settledWaiters = self._settledWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _probeFailed(self, failure: Failure) -> None:
        if failure.check(CancelledError) and not self.running:
            return
        # Probes turn every expected failure into a DOWN result; this is a bug.
        self.log.failure("monitor {name}: probe raised", failure, name=self.name)
        self._gotResult(ProbeResult(False, None, f"probe error: {failure.getErrorMessage()}"))

    def _gotResult(self, result: ProbeResult) -> None:
        if not self.running:
            return
        self.lastResult = result
        previous = self._hysteresis.state
        self._hysteresis = advance(self._hysteresis, result.up, self.retries, self.successRetries)
        if self._hysteresis.state == previous:
            return
        self.log.info(
            "monitor {name}: service {state} (was {previous}): {reason}",
            name=self.name,
            state=self._hysteresis.state,
            previous=previous or "unknown",
            reason=result.reason,
            responseTime=result.response_time,
        )
        try:
            self._onChange(self.name, result)
        except Exception:
            self.log.failure("monitor {name}: state change handler failed", name=self.name)
