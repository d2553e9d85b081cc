"""
What a site emulator tells the consoles subscribed to its control endpoint
(AMP C{Subscribe}, then C{ConsoleEvent}s): pure functions building each
event from plain data; L{gslb_twisted.site.emulator} pushes them.

Kinds: "service" (a service's published state changed), "mep" (an
appliance's MEP session came up or went down), "scenario" (started,
finished, stopped) and "toolbar" (every second, L{siteToolbar}).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from gslb_twisted.logs import consoleEvent


def serviceEvent(now: float, site: str, service: str, state: str, source: str) -> dict:
    """Service C{service} is now C{state}, from layer C{source} (pin, scenario, timeline, ...)."""
    return consoleEvent(
        now, "service", f"service {service} is {state} (from the {source})",
        site=site, service=service, state=state, source=source,
    )


def mepEvent(now: float, site: str, peer: Optional[str], direction: Optional[str], up: bool,
             reason: Optional[str] = None) -> dict:
    """The MEP session with appliance C{peer} is up, or lost (C{reason})."""
    if up:
        text = f"appliance {peer} connected (MEP {direction})"
    else:
        text = f"appliance {peer} lost (MEP {direction}: {reason or 'closed'})"
    return consoleEvent(
        now, "mep", text, site=site, peer=peer, direction=direction, state="up" if up else "down", reason=reason,
    )


def scenarioEvent(now: float, site: str, scenario: str, state: str, events: int,
                  replaced: Optional[str] = None) -> dict:
    """Scenario C{scenario} C{state}: "started" (maybe replacing another), "finished" or "stopped"."""
    if state == "started":
        text = f"scenario {scenario} started ({events} events)"
        if replaced is not None:
            text += f", replacing {replaced}"
    elif state == "finished":
        text = f"scenario {scenario} finished: its {events} events applied, its values hold until it is stopped"
    elif state == "stopped":
        text = f"scenario {scenario} stopped: its values are released"
    else:
        text = f"scenario {scenario} {state}"
    return consoleEvent(now, "scenario", text, site=site, scenario=scenario, state=state, events=events,
                        replaced=replaced)


def siteToolbar(
    site: str,
    published: Mapping[str, Mapping[str, Any]],
    connected: Iterable[Optional[str]],
    appliances: int,
    scenario: Optional[str],
) -> dict:
    """
    The toolbar of a console on a site emulator: services UP and DOWN as
    the appliances were last told (C{published}: service -> values), the
    appliances with an established MEP session (C{connected}: their names,
    one per session), of C{appliances} known, and the running scenario.
    """
    up = sum(1 for values in published.values() if values.get("state") == "UP")
    return {
        "site": site,
        "services_up": up,
        "services_down": len(published) - up,
        "services": len(published),
        "appliances_connected": len({peer for peer in connected}),
        "appliances": appliances,
        "scenario": scenario,
    }


def siteToolbarText(state: Mapping[str, Any]) -> str:
    """The toolbar as one line: C{site east: services 2 up 0 down, appliances 1/1, scenario surge}."""
    text = (
        f"site {state.get('site')}: services {state.get('services_up')} up {state.get('services_down')} down, "
        f"appliances {state.get('appliances_connected')}/{state.get('appliances')}"
    )
    if state.get("scenario"):
        text += f", scenario {state['scenario']}"
    return text
