"""
What the interactive console shows live, free of any I/O: the lines of
the events an endpoint pushes (L{eventLine}) and the bottom toolbar
(L{toolbar}), from the state the endpoint answered C{Subscribe} with and
the C{"toolbar"} events that update it.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any, Optional

from console.commands import GREEN, RED, RESET, YELLOW, paint

CYAN = "\x1b[36m"
DIM = "\x1b[2m"

# The event kinds that only update the toolbar (never printed).
TOOLBAR = "toolbar"
# Keys of an event that are not toolbar fields.
EVENT_KEYS = ("time", "kind", "text")

_DOWN = re.compile(r"\b(DOWN|down|died|dead|lost|failed|killed)\b")
_UP = re.compile(r"\b(UP|up|back|serving|reconnected)\b")


def eventTime(value: Any, now: Optional[float] = None) -> str:
    """
    When an event happened, as HH:MM:SS local time: C{value} is seconds
    since the epoch, or ISO 8601 text; anything else (or nothing) is now.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return time.strftime("%H:%M:%S", time.localtime(value))
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone()
        return stamp.strftime("%H:%M:%S")
    return time.strftime("%H:%M:%S", time.localtime(now))


# An event's state, and its colour: what broke, what came back, what is
# under way.
_BROKEN = {"down", "died", "dead", "failed", "lost"}
_BACK = {"up", "serving", "respawned", "started", "connected", "established"}


def eventColour(event: dict) -> Optional[str]:
    """
    Red for what broke (a site, service or session DOWN, a core that
    died), green for what came back (UP, a core serving again), cyan for a
    master change, yellow for the rest (a scenario stopped, a respawn
    scheduled).  The event's C{state} says; without one, its text.
    """
    state = str(event.get("state") or "").lower()
    if event.get("kind") == "master":
        return CYAN
    if state in _BROKEN:
        return RED
    if state in _BACK:
        return GREEN
    if state:
        return YELLOW
    text = str(event.get("text") or "")
    if _DOWN.search(text):
        return RED
    if _UP.search(text):
        return GREEN
    return YELLOW if event.get("kind") == "core" else None


def eventLine(event: dict, colour: bool = False) -> str:
    """
    One pushed event as the console prints it above the prompt: the time,
    then the endpoint's own line (C{14:02:11 site east DOWN: ...}).
    """
    text = str(event.get("text") or event.get("kind") or "event")
    stamp = eventTime(event.get("time"))
    if not colour:
        return f"{stamp} {text}"
    return f"{DIM}{stamp}{RESET} {paint(text, eventColour(event))}"


def toolbarFields(event: dict) -> dict:
    """The toolbar fields a C{"toolbar"} event carries."""
    return {key: value for key, value in event.items() if key not in EVENT_KEYS}


def _rate(qps: Any) -> str:
    if not isinstance(qps, (int, float)) or isinstance(qps, bool):
        return "- q/s"
    return f"{qps:.1f} q/s" if qps < 10 else f"{qps:.0f} q/s"


def toolbar(state: Optional[dict], connected: bool, control: str) -> list[tuple[str, str]]:
    """
    The bottom toolbar as prompt-toolkit fragments (style, text): on an
    appliance, cores up, sites up and down, queries per second and the
    control endpoint; on a site emulator, its services up and down and the
    appliances connected to it; while the connection is down, that it is
    retrying.
    """
    separator = ("class:toolbar.separator", " | ")
    where = ("class:toolbar.endpoint", str((state or {}).get("control") or control) if connected else control)
    if not connected:
        return [("class:toolbar.bad", " disconnected — retrying"), separator, where, ("", " ")]
    if not state:
        return [("class:toolbar.good", " connected"), separator, where, ("", " ")]
    fragments: list[tuple[str, str]] = [("", " ")]
    if "cores" in state or "cores_up" in state:
        up, total = state.get("cores_up"), state.get("cores")
        good = up is not None and up == total
        fragments.append(("class:toolbar.good" if good else "class:toolbar.warn", f"cores {_count(up)}/{_count(total)} up"))
        fragments.append(separator)
        fragments += _upDown("sites", state.get("sites_up"), state.get("sites_down"))
        fragments.append(separator)
        fragments.append(("", _rate(state.get("qps"))))
    else:
        if state.get("site"):
            fragments += [("", f"site {state['site']}"), separator]
        fragments += _upDown("services", state.get("services_up"), state.get("services_down"))
        fragments.append(separator)
        connectedTo = state.get("appliances_connected")
        fragments.append(("class:toolbar.good" if connectedTo else "class:toolbar.warn",
                          f"appliances {_count(connectedTo)}"
                          + (f"/{_count(state['appliances'])}" if state.get("appliances") is not None else "")))
        if state.get("scenario"):
            fragments += [separator, ("class:toolbar.warn", f"scenario {state['scenario']}")]
    fragments += [separator, where, ("", " ")]
    return fragments


def _count(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return str(len(value))
    return "-" if value is None else str(value)


def _upDown(noun: str, up: Any, down: Any) -> list[tuple[str, str]]:
    # A list names them; a number counts them.
    downCount = len(down) if isinstance(down, (list, tuple)) else (down or 0)
    fragments = [("", f"{noun} "), ("class:toolbar.good" if up else "", f"{_count(up)} up"), ("", ", ")]
    fragments.append(("class:toolbar.bad" if downCount else "", f"{_count(down)} down"))
    if isinstance(down, (list, tuple)) and down:
        fragments.append(("class:toolbar.bad", " (" + ", ".join(str(d) for d in down) + ")"))
    return fragments


def toolbarText(fragments: list[tuple[str, str]]) -> str:
    """The toolbar's plain text (for tests and logs)."""
    return "".join(text for _, text in fragments)
