"""
Bounds on what one AMP peer can make us hold: calls waiting for its answer,
and bytes waiting for it to read.

A peer that stops answering (a stopped core) or stops reading (a console
left in the background, a stopped process) must not make the supervisor, a
core or a site emulator grow without limit.  Two tools:

  - L{BoundedCallsAMP}: at most C{maxPendingCalls} calls that wait for an
    answer at once; another fails at once with L{TooManyPendingCalls}, as
    a timed-out one would, instead of being queued.  A caller's timeout
    does not release its call (AMP keeps the question until the answer or
    the end of the connection), so the count is of questions really
    outstanding.
  - L{WriteBacklog}: a push producer the transport tells when its write
    buffer fills and when it drains; full for C{after} seconds calls
    C{stuck}.  C{blocked} says whether it is full now, so that optional
    traffic (console events) can be skipped meanwhile.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.protocols import amp
from zope.interface import implementer

from gslb_twisted.protocol.garbage import GarbageClosesAMP

# Calls waiting for one peer's answers, at most.
MAX_PENDING_CALLS = 256

# A peer that reads nothing for this long (stopped, hung) is let go: what is
# written to it meanwhile is buffered here.
STUCK_AFTER = 30.0


class TooManyPendingCalls(Exception):
    """The peer already owes answers to L{BoundedCallsAMP.maxPendingCalls} calls."""


class BoundedCallsAMP(GarbageClosesAMP):
    """
    An AMP (whose peer's garbage ends the conversation) that keeps at most
    C{maxPendingCalls} questions outstanding.
    """

    maxPendingCalls = MAX_PENDING_CALLS
    pendingCalls = 0
    refusedCalls = 0

    def callRemote(self, command: type[amp.Command], **arguments) -> Optional[defer.Deferred]:
        if not command.requiresAnswer:
            return super().callRemote(command, **arguments)
        if self.pendingCalls >= self.maxPendingCalls:
            self.refusedCalls += 1
            return defer.fail(TooManyPendingCalls(
                f"{self.describePeer()} owes answers to {self.pendingCalls} calls already"))
        asked = super().callRemote(command, **arguments)
        self.pendingCalls += 1
        asked.addBoth(self._answered)
        # The caller gets its own Deferred: cancelling it (a timeout) ends its
        # wait, while the question stays counted until AMP lets it go.
        waiting = defer.Deferred()
        asked.chainDeferred(waiting)
        return waiting

    def _answered(self, result):
        self.pendingCalls -= 1
        return result


@implementer(IPushProducer)
class WriteBacklog:
    """
    Registered with a transport as a streaming producer: the transport
    calls C{pauseProducing} when its write buffer is full and
    C{resumeProducing} when it drained.  Full for C{after} seconds calls
    C{stuck}; C{paused} and C{resumed}, when given, hear each change.
    """

    def __init__(
        self,
        clock,
        stuck: Callable[[], None],
        after: float = STUCK_AFTER,
        paused: Optional[Callable[[], None]] = None,
        resumed: Optional[Callable[[], None]] = None,
    ) -> None:
        self.clock = clock
        self.stuck = stuck
        self.after = after
        self.paused = paused
        self.resumed = resumed
        self.blocked = False
        self._check = None

    def pauseProducing(self) -> None:
        if self.blocked:
            return
        self.blocked = True
        self._check = self.clock.callLater(self.after, self._expired)
        if self.paused is not None:
            self.paused()

    def resumeProducing(self) -> None:
        if not self.blocked:
            return
        self._cancel()
        if self.resumed is not None:
            self.resumed()

    def stopProducing(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        self.blocked = False
        if self._check is not None and self._check.active():
            self._check.cancel()
        self._check = None

    def _expired(self) -> None:
        self._check = None
        self.stuck()
