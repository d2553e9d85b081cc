"""
Logging across processes: a core forwards its log events to the supervisor,
which publishes them in its own log tagged with the core id.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Callable, Optional

from twisted.logger import (
    ILogObserver,
    LogLevel,
    eventAsJSON,
    eventFromJSON,
    formatEvent,
    globalLogPublisher,
    jsonFileLogObserver,
)
from zope.interface import implementer

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


def publishCoreEvent(text: str, core: int, publisher=globalLogPublisher) -> None:
    """
    Publish one event a core forwarded, tagged with C{core} (a key of its
    own, and the C{[core-N]} system prefix of the text log).
    """
    event = eventFromJSON(text)
    if not isinstance(event, dict):
        return
    # An event must carry a time and a level for every observer.
    if not isinstance(event.get("log_time"), (int, float)):
        event["log_time"] = time.time()
    event.setdefault("log_level", LogLevel.info)
    event["core"] = core
    event["log_system"] = f"core-{core}"
    publisher(event)


def jsonStdoutLogObserver() -> ILogObserver:
    """
    twistd's C{logger} for C{--log-format json}: one JSON object per line
    on the process's real standard output (twistd redirects C{sys.stdout}
    into the log itself, which would loop).
    """
    return jsonFileLogObserver(sys.__stdout__, recordSeparator="")
