"""
What a run gives its processes, decided without running anything (pure):

  - L{effectiveSpeed}: the C{--speed} asked, capped by the scenario's
    C{max_speed};
  - L{scaleTopology}: the topology with its intervals divided by the speed,
    none below a floor that keeps a loaded machine from taking its own
    slowness for a failure (L{FLOORS}); what was scaled is listed;
  - L{runTopologies}: the appliance's and each site emulator's copy of the
    topology, on the ports the run picked, with a chaos proxy on each MEP
    link the timeline touches.  MEP's lower-IP rule decides where: the end
    with the lower address dials, so a site below the appliance dials the
    proxy as if it were the appliance (its own copy says so), and the
    appliance dials the proxy of a site above it (the appliance's copy
    says so); the proxy dials the real peer from the dialling end's own
    address (a MEP peer checks where a site connects from);
  - L{dumpTOML}: a topology document back to TOML.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from gslb_twisted.mep.rules import initiates
from gslb_twisted.nsimport.tomlwriter import formatKey, formatValue
from gslb_twisted.scenario.model import Scenario

# Seconds no interval goes below, whatever the speed: on a loaded 2-CPU
# machine, a 0.1 s dead interval would declare sites DOWN for the machine's
# own hiccups, and the scenario would measure that.
FLOORS: Mapping[str, float] = {
    "metrics_interval": 0.2,
    "dead_interval": 1.0,
    "consolidation_interval": 0.2,
    "monitor.interval": 0.5,
    "monitor.timeout": 0.2,
    "persistence_timeout": 2,
}
# The topology's defaults (gslb_twisted.config), scaled when not written.
DEFAULTS: Mapping[str, float] = {
    "metrics_interval": 1.0,
    "dead_interval": 3.0,
    "consolidation_interval": 0.5,
    "monitor.interval": 5.0,
    "persistence_timeout": 120,
}


@dataclass(frozen=True)
class Scaled:
    """One value the speed changed: C{what} (a path in the topology), from C{nominal} to C{value}."""

    what: str
    nominal: float
    value: float
    floored: bool = False

    def asDict(self) -> dict:
        return {"what": self.what, "nominal": self.nominal, "value": self.value, "floored": self.floored,
                "speed": round(self.nominal / self.value, 3) if self.value else None}


def effectiveSpeed(requested: float, scenario: Scenario) -> tuple[float, Optional[str]]:
    """The speed to run at, and why it is not the one asked for (None: it is)."""
    if requested <= 0 or not math.isfinite(requested):
        raise ValueError(f"a speed is a number above 0, not {requested!r}")
    if scenario.maxSpeed is not None and requested > scenario.maxSpeed:
        return scenario.maxSpeed, (f"--speed {requested:g} capped at the scenario's max_speed {scenario.maxSpeed:g}")
    return requested, None


def _scale(what: str, nominal: float, speed: float, floor: float, integer: bool = False) -> Scaled:
    value = nominal / speed
    floored = value < floor and nominal >= floor
    if floored:
        value = floor
    elif value < floor:
        value = nominal  # already below the floor as written: left alone
    if integer:
        value = max(int(floor), int(round(value)))
    else:
        value = round(value, 6)
    return Scaled(what, nominal, value, floored)


def scaleTopology(document: Mapping[str, Any], speed: float) -> tuple[dict, list[Scaled]]:
    """
    A copy of the topology C{document} with its intervals divided by
    C{speed} (metrics, dead and consolidation intervals, monitor intervals
    and timeouts, persistence timeouts, site emulator timeline and scenario
    times), and the list of what changed.  Speed 1 changes nothing.
    """
    doc = copy.deepcopy(dict(document))
    scaled: list[Scaled] = []
    if speed == 1:
        return doc, scaled
    appliance = doc.setdefault("appliance", {})
    for key in ("metrics_interval", "dead_interval", "consolidation_interval"):
        nominal = float(appliance.get(key, DEFAULTS[key]))
        one = _scale(f"appliance.{key}", nominal, speed, FLOORS[key])
        appliance[key] = one.value
        scaled.append(one)
    if appliance["dead_interval"] < appliance["metrics_interval"]:
        appliance["dead_interval"] = appliance["metrics_interval"]
    for service in doc.get("service", []) or []:
        monitor = service.get("monitor") if isinstance(service, dict) else None
        if not isinstance(monitor, dict):
            continue
        name = service.get("name", "?")
        nominal = float(monitor.get("interval", DEFAULTS["monitor.interval"]))
        interval = _scale(f"service {name} monitor.interval", nominal, speed, FLOORS["monitor.interval"])
        monitor["interval"] = interval.value
        scaled.append(interval)
        nominalTimeout = float(monitor.get("timeout", min(2.0, nominal / 2)))
        timeout = _scale(f"service {name} monitor.timeout", nominalTimeout, speed, FLOORS["monitor.timeout"])
        value = min(timeout.value, round(interval.value * 0.8, 6))
        monitor["timeout"] = value
        scaled.append(Scaled(timeout.what, nominalTimeout, value, timeout.floored))
    for vserver in doc.get("vserver", []) or []:
        if not isinstance(vserver, dict):
            continue
        if "persistence_timeout" in vserver or str(vserver.get("persistence", "NONE")).upper() == "SOURCEIP":
            nominal = float(vserver.get("persistence_timeout", DEFAULTS["persistence_timeout"]))
            one = _scale(f"vserver {vserver.get('name', '?')} persistence_timeout", nominal, speed,
                         FLOORS["persistence_timeout"], integer=True)
            vserver["persistence_timeout"] = int(one.value)
            scaled.append(one)
    for site in doc.get("site", []) or []:
        emulator = site.get("emulator") if isinstance(site, dict) else None
        if not isinstance(emulator, dict):
            continue
        name = site.get("name", "?")
        timeline = emulator.get("timeline")
        if isinstance(timeline, list) and timeline:
            for event in timeline:
                if isinstance(event, dict) and "at" in event:
                    event["at"] = round(float(event["at"]) / speed, 6)
            scaled.append(Scaled(f"site {name} emulator.timeline times", 1.0, round(1.0 / speed, 6)))
        scenarios = emulator.get("scenarios")
        if isinstance(scenarios, dict) and scenarios:
            for events in scenarios.values():
                for event in events if isinstance(events, list) else ():
                    if isinstance(event, dict) and "at" in event:
                        event["at"] = round(float(event["at"]) / speed, 6)
            scaled.append(Scaled(f"site {name} emulator.scenarios times", 1.0, round(1.0 / speed, 6)))
    return doc, scaled


@dataclass(frozen=True)
class ProxyPlan:
    """A chaos proxy on one site's MEP link: listen there, dial the target (both endpoint strings)."""

    site: str
    listen: str
    target: str
    siteDials: bool  # the site dials the appliance (lower IP) through the proxy


@dataclass(frozen=True)
class Ports:
    dns: int
    applianceMEP: int
    siteMEP: Mapping[str, int]  # emulated site -> its MEP listener port
    proxies: Mapping[str, int]  # site -> the port its proxy listens on


def _absolute(value: Any, directory: str) -> Any:
    """A path (or C{{ file = PATH }} secret) made absolute against C{directory}."""
    if isinstance(value, str) and value and not os.path.isabs(value):
        return os.path.normpath(os.path.join(directory, value))
    if isinstance(value, dict) and isinstance(value.get("file"), str) and not os.path.isabs(value["file"]):
        return {"file": os.path.normpath(os.path.join(directory, value["file"]))}
    return value


def runTopologies(scenario: Scenario, document: Mapping[str, Any], ports: Ports) -> tuple[dict, dict[str, dict], list[ProxyPlan]]:
    """
    The appliance's topology, each emulated site's, and the proxies, for
    a run on C{ports}.  C{document}: the (scaled) topology document.
    """
    topology = scenario.topology
    directory = os.path.dirname(scenario.topologyPath) if scenario.topologyPath else os.path.dirname(scenario.path)
    base = copy.deepcopy(dict(document))
    appliance = base.setdefault("appliance", {})
    appliance["mep_port"] = ports.applianceMEP
    if topology.appliance.location_db:
        appliance["location_db"] = topology.appliance.location_db  # resolved when loaded
    for key in ("mep_tls_cert", "mep_tls_key", "mep_tls_ca"):
        if key in appliance:
            appliance[key] = _absolute(appliance[key], directory)
    for key in ("mep_secret", "control_token"):
        if isinstance(appliance.get(key), dict):
            appliance[key] = _absolute(appliance[key], directory)
    for site in base.get("site", []) or []:
        if site.get("name") in ports.siteMEP:
            site["mep_port"] = ports.siteMEP[site["name"]]
        snmp = site.get("snmp")
        if isinstance(snmp, dict):
            for key in ("community", "auth_key", "priv_key"):
                if isinstance(snmp.get(key), dict):
                    snmp[key] = _absolute(snmp[key], directory)

    proxies: list[ProxyPlan] = []
    applianceDoc = copy.deepcopy(base)
    siteDocs = {name: copy.deepcopy(base) for name in scenario.emulated}
    applianceIP, applianceName = topology.appliance.ip, topology.appliance.name
    for name in scenario.linkSites:
        site = topology.siteByName[name]
        proxyPort = ports.proxies[name]
        if initiates(site.ip, site.name, applianceIP, applianceName):
            # The site dials: its copy sends it to the proxy, on the appliance's address.
            siteDocs[name]["appliance"]["mep_port"] = proxyPort
            proxies.append(ProxyPlan(
                name, f"tcp:{proxyPort}:interface={applianceIP}",
                f"tcp:host={applianceIP}:port={ports.applianceMEP}:bindAddress={site.ip}", True,
            ))
        else:
            # The appliance dials: its copy sends it to the proxy, on the site's address.
            for entry in applianceDoc.get("site", []):
                if entry.get("name") == name:
                    entry["mep_port"] = proxyPort
            proxies.append(ProxyPlan(
                name, f"tcp:{proxyPort}:interface={site.ip}",
                f"tcp:host={site.ip}:port={ports.siteMEP[name]}:bindAddress={applianceIP}", False,
            ))
    return applianceDoc, siteDocs, proxies


def dumpTOML(document: Mapping[str, Any]) -> str:
    """A topology document as TOML (tables, arrays of tables; deeper tables inline)."""
    out: list[str] = []
    scalars = [(k, v) for k, v in document.items() if not _isTable(v) and not _isTableArray(v)]
    for key, value in scalars:
        out.append(f"{formatKey(key)} = {formatValue(value)}")
    for key, value in document.items():
        if _isTable(value):
            out.append("")
            out.append(f"[{formatKey(key)}]")
            out.extend(f"{formatKey(k)} = {formatValue(v)}" for k, v in value.items())
        elif _isTableArray(value):
            for item in value:
                out.append("")
                out.append(f"[[{formatKey(key)}]]")
                out.extend(f"{formatKey(k)} = {formatValue(v)}" for k, v in item.items())
    return "\n".join(out).lstrip("\n") + "\n"


def _isTable(value: Any) -> bool:
    return isinstance(value, dict)


def _isTableArray(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)
