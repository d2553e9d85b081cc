"""
Logging across processes: a core forwards its log events to the supervisor,
which publishes them in its own log tagged with the core id.

And the operator's live log: the events a control endpoint pushes to the
consoles subscribed to it (L{ConsoleSubscribers}, AMP L{ConsoleEvent}), some
of them read from the cores' log events (L{siteTransitionEvent}).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, Callable, Mapping, Optional

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import (
    ILogObserver,
    LogLevel,
    Logger,
    eventAsJSON,
    eventFromJSON,
    formatEvent,
    globalLogPublisher,
    jsonFileLogObserver,
)
from zope.interface import implementer

from gslb_twisted.protocol.commands import ConsoleEvent

# Characters of JSON per event: AMP's UTF-8 value limit is 65,535 bytes.
MAX_EVENT_CHARS = 16000
# Events a core keeps while its link to the supervisor is not up yet.
MAX_BUFFERED_EVENTS = 1000


def serialiseEvent(event: dict) -> str:
    """
    The event as JSON for the wire; one too large is replaced by its
    rendered text, cut to size, so that the supervisor still sees it.
    """
    text = eventAsJSON(event)
    if len(text) <= MAX_EVENT_CHARS:
        return text
    level = event.get("log_level", LogLevel.info)
    summary = {
        "log_format": "{text}",
        "text": (formatEvent(event) or "")[: MAX_EVENT_CHARS // 2] + " [truncated]",
        "log_level": level,
        "log_namespace": event.get("log_namespace", "gslb"),
        "log_time": event.get("log_time"),
    }
    return eventAsJSON(summary)


@implementer(ILogObserver)
class CoreLogForwarder:
    """
    A log observer in a core process: sends each event to the supervisor
    through C{send(json)}, buffering (boundedly) until C{attach} is called.
    """

    def __init__(self) -> None:
        self._send: Optional[Callable[[str], None]] = None
        self._buffer: deque[str] = deque(maxlen=MAX_BUFFERED_EVENTS)
        self._sending = False

    def attach(self, send: Callable[[str], None]) -> None:
        self._send = send
        while self._buffer:
            send(self._buffer.popleft())

    def detach(self) -> None:
        self._send = None

    def __call__(self, event: dict) -> None:
        # Sending may itself log (a broken pipe, say): never recurse.
        if self._sending:
            return
        self._sending = True
        try:
            text = serialiseEvent(event)
            if self._send is None:
                self._buffer.append(text)
            else:
                self._send(text)
        except Exception:
            # A log observer that raises is removed by the publisher; the
            # next best place for the problem is stderr, which the
            # supervisor also logs.
            sys.stderr.write("gslb core: cannot forward a log event\n")
        finally:
            self._sending = False


def publishCoreEvent(text: str, core: int, publisher=globalLogPublisher) -> Optional[dict]:
    """
    Publish one event a core forwarded, tagged with C{core} (a key of its
    own, and the C{[core-N]} system prefix of the text log).

    @return: the event as published (C{None}: it was not an event).
    @raise ValueError: C{text} is not JSON.
    """
    event = eventFromJSON(text)
    if not isinstance(event, dict):
        return None
    # An event must carry a time and a level for every observer.
    if not isinstance(event.get("log_time"), (int, float)):
        event["log_time"] = time.time()
    event.setdefault("log_level", LogLevel.info)
    event["core"] = core
    event["log_system"] = f"core-{core}"
    publisher(event)
    return event


def jsonStdoutLogObserver() -> ILogObserver:
    """
    twistd's C{logger} for C{--log-format json}: one JSON object per line
    on the process's real standard output (twistd redirects C{sys.stdout}
    into the log itself, which would loop).
    """
    return jsonFileLogObserver(sys.__stdout__, recordSeparator="")


# --- events pushed to consoles ---------------------------------------------------

# The formats of the master core's site transitions (CoreGSLB._logTransition):
# the supervisor recognises these events by format and fields, never by
# their rendered text.
SITE_DOWN_FORMAT = "site {site} is DOWN ({reason})"
SITE_UP_FORMAT = "site {site} is UP"

# Seconds between two "toolbar" events while a console is subscribed.
TOOLBAR_INTERVAL = 1.0


def consoleEvent(now: float, kind: str, text: str, **fields: Any) -> dict:
    """One event for the consoles: {time, kind, text, ...fields}."""
    return {"time": now, "kind": kind, "text": text, **fields}


def siteTransitionEvent(event: Mapping[str, Any]) -> Optional[dict]:
    """
    The console event for a core's log event saying that a site went DOWN
    or UP (logged once per transition, by the site's master core), or
    C{None} for any other event.
    """
    site = event.get("site")
    if not isinstance(site, str):
        return None
    logFormat = event.get("log_format")
    core = event.get("core")
    when = event.get("log_time")
    if not isinstance(when, (int, float)):
        when = time.time()
    if logFormat == SITE_DOWN_FORMAT:
        reason = event.get("reason")
        reason = reason if isinstance(reason, str) else None
        text = f"site {site} is DOWN ({reason or 'no reason given'})"
        state = "DOWN"
    elif logFormat == SITE_UP_FORMAT:
        reason, text, state = None, f"site {site} is UP", "UP"
    else:
        return None
    if isinstance(core, int):
        text += f" [core {core}]"
    return consoleEvent(when, "site", text, site=site, state=state, reason=reason,
                        core=core if isinstance(core, int) else None)


def describeAddress(address: Any) -> Optional[str]:
    """
    A listening address as an endpoint string a console could connect to
    (C{unix:gslb.ctl}, C{tcp:9000:interface=127.0.0.1}); C{None} when unknown.
    """
    if address is None:
        return None
    kind = type(address).__name__
    if kind == "UNIXAddress":
        name = address.name
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}" if name else None
    if kind in ("IPv4Address", "IPv6Address"):
        host = address.host.replace(":", "\\:")
        prefix = "tcp6" if kind == "IPv6Address" else "tcp"
        return f"{prefix}:{address.port}:interface={host}"
    return str(address)


class ConsoleSubscribers:
    """
    The consoles subscribed to one control endpoint: each gets every event
    (AMP L{ConsoleEvent}, fire-and-forget) on its own connection and, while
    any is subscribed, a "toolbar" event every C{interval} seconds.

    @param clock: the reactor's time and timers.
    @param toolbar: the toolbar's state now, a dict or a Deferred of one
        (without C{control}: each console gets its own endpoint's).  Asked
        at most once at a time, only while someone is subscribed.
    @param toolbarText: one line describing that state.
    """

    log = Logger()

    def __init__(
        self,
        clock: Any,
        toolbar: Callable[[], Any],
        toolbarText: Callable[[Mapping[str, Any]], str] = lambda state: "",
        interval: float = TOOLBAR_INTERVAL,
    ) -> None:
        self.clock = clock
        self.toolbar = toolbar
        self.toolbarText = toolbarText
        self.interval = interval
        # connection -> its control endpoint, in subscription order.
        self.subscribers: dict[Any, Optional[str]] = {}
        self.sent = 0
        # Events not sent to a console whose connection's write buffer was full.
        self.skipped = 0
        self._loop: Optional[LoopingCall] = None
        self._asking = False

    def subscribe(self, connection: Any, control: Optional[str] = None) -> None:
        self.subscribers[connection] = control
        if self._loop is None:
            self._loop = LoopingCall(self.refresh)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: self.log.failure("the consoles' toolbar stopped", f)
            )

    def unsubscribe(self, connection: Any) -> None:
        self.subscribers.pop(connection, None)
        if not self.subscribers:
            self.stop()

    def stop(self) -> None:
        """No more toolbar events (the subscribers stay; used on shutdown)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def state(self, control: Optional[str] = None) -> defer.Deferred:
        """The toolbar's state now, for one console (L{Subscribe}'s answer)."""
        d = defer.maybeDeferred(self.toolbar)
        return d.addCallback(lambda state: {**state, "control": control})

    def emit(self, event: Mapping[str, Any]) -> None:
        """Push C{event} to every subscriber; one whose connection is gone is dropped."""
        for connection in list(self.subscribers):
            self._send(connection, event)

    def _send(self, connection: Any, event: Mapping[str, Any]) -> None:
        if getattr(connection, "writeBlocked", False):
            # A console that does not read: events are for live viewing, so
            # skipping them bounds what is buffered for it.
            self.skipped += 1
            return
        try:
            connection.callRemote(ConsoleEvent, event=dict(event))
            self.sent += 1
        except Exception:
            # The connection closed under us (its connectionLost is on the way).
            self.unsubscribe(connection)

    def refresh(self) -> None:
        """One "toolbar" event to every subscriber (skipped while the last one is still being built)."""
        if not self.subscribers or self._asking:
            return
        self._asking = True
        d = defer.maybeDeferred(self.toolbar)

        def send(state: Mapping[str, Any]) -> None:
            event = consoleEvent(self.clock.seconds(), "toolbar", self.toolbarText(state), **state)
            for connection, control in list(self.subscribers.items()):
                self._send(connection, {**event, "control": control})

        def done(result):
            self._asking = False
            return result

        d.addCallback(send)
        d.addErrback(lambda f: self.log.failure("building the consoles' toolbar", f))
        d.addBoth(done)
