"""
Where a site's metrics come from, besides the random walk and the console's
pins (both in L{gslb_twisted.site.model}): the scripted timeline of the
topology file, and health checks of real backends over HTTP.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from twisted.application.service import Service as _Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gslb_twisted.config import TimelineEvent


class Timeline:
    """
    The timeline's events in the order they fall due; each is handed out
    once.  Events at the same time keep their order in the topology file.
    """

    def __init__(self, events: Sequence[TimelineEvent]) -> None:
        self.events = sorted(events, key=lambda e: e.at)
        self.next = 0

    def due(self, elapsed: float) -> list[TimelineEvent]:
        """The events not handed out yet whose time C{elapsed} has reached."""
        start = self.next
        while self.next < len(self.events) and self.events[self.next].at <= elapsed:
            self.next += 1
        return self.events[start : self.next]

    def pending(self) -> int:
        return len(self.events) - self.next

    def nextAt(self) -> Optional[float]:
        """When the next event not handed out yet falls due (C{None}: none left)."""
        return self.events[self.next].at if self.next < len(self.events) else None


# The report of one check: (service name, "UP" or "DOWN", response time in ms or None).
Report = Callable[[str, str, Optional[float]], None]


def checkTimeout(interval: float) -> float:
    """
    How long one check may take: most of the interval, at most 2 s (as a
    NetScaler monitor's default response timeout).
    """
    return min(2.0, interval * 0.9)


class BackendCheck(_Service):
    """
    GETs a service's C{backend} URL every C{interval} seconds: a 2xx answer
    within C{timeout} means UP with the measured response time, anything
    else (another status, a timeout, a refused or reset connection) DOWN.

    @param client: anything with treq's C{get(url)} returning a Deferred
        response with C{code} and C{content()}: C{treq}, a
        L{treq.client.HTTPClient}, or L{treq.testing.StubTreq} in tests.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        url: str,
        client: Any,
        clock: IReactorTime,
        interval: float,
        report: Report,
        timeout: Optional[float] = None,
    ) -> None:
        self.name = f"backend {name}"
        self.service = name
        self.url = url
        self.client = client
        self.clock = clock
        self.interval = interval
        self.timeout = checkTimeout(interval) if timeout is None else timeout
        self.report = report
        self.loop = LoopingCall(self.check)
        self.loop.clock = clock
        self.checking: Optional[defer.Deferred] = None
        self.checks = 0

    def startService(self) -> None:
        super().startService()
        self.loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("backend check of {service} stopped", f, service=self.service)
        )

    def stopService(self):
        super().stopService()
        if self.loop.running:
            self.loop.stop()
        if self.checking is not None:
            self.checking.cancel()
        return defer.succeed(None)

    def check(self) -> defer.Deferred:
        """One check; the Deferred fires (never fails) once it is reported."""
        self.checks += 1
        started = self.clock.seconds()
        d = defer.maybeDeferred(self.client.get, self.url)

        def answered(response):
            elapsed = (self.clock.seconds() - started) * 1000.0
            # Read (and drop) the body, so that the connection is released.
            body = defer.maybeDeferred(response.content)
            return body.addCallback(lambda _: (response.code, elapsed))

        d.addCallback(answered)
        d.addTimeout(self.timeout, self.clock)
        self.checking = d

        def verdict(result):
            code, elapsed = result
            if 200 <= code < 300:
                self.report(self.service, "UP", elapsed)
            else:
                self.report(self.service, "DOWN", None)

        def failed(failure):
            if self.running:  # not a check cancelled by stopService
                self.report(self.service, "DOWN", None)

        def done(result):
            self.checking = None
            return None

        d.addCallbacks(verdict, failed)
        d.addErrback(lambda f: self.log.failure("reporting backend check of {service}", f, service=self.service))
        return d.addBoth(done)
