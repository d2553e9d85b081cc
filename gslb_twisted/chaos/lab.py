"""
The chaos lab's topology: an appliance C{chaos} at 127.0.0.5 and three
emulated sites, two of them behind a chaos proxy on their MEP link.

  - east, 127.0.0.2: dials the appliance (lower address), through a proxy
    listening on 127.0.0.5 (east's own copy of the topology points it
    there; the proxy dials the appliance from 127.0.0.2, the address the
    appliance expects east at);
  - west, 127.0.0.3: dials the appliance directly;
  - north, 127.0.0.8: dialled by the appliance (higher address), through a
    proxy listening on 127.0.0.8 (the appliance's topology points there;
    the proxy dials north from 127.0.0.5).

One vserver, C{www.chaos.gslb}: ROUNDROBIN over the three sites' services,
every UP one in each answer, nothing (NOERROR, no address) when none is
UP, so that an answer naming a site is a claim that the site is UP.

Text only: whoever runs the lab (the chaos tests, the chaos benchmark)
picks the ports, writes the files and starts the processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

APPLIANCE_IP = "127.0.0.5"
NAME = "www.chaos.gslb"
SITE_IPS = {"east": "127.0.0.2", "west": "127.0.0.3", "north": "127.0.0.8"}
ADDRESSES = {"east": "192.0.2.10", "west": "198.51.100.10", "north": "203.0.113.10"}
SITE_OF = {address: site for site, address in ADDRESSES.items()}
SERVICE = {site: f"{site}-web" for site in SITE_IPS}
PROXIED = ("east", "north")

TOPOLOGY = """\
# The chaos lab (gslb_twisted/chaos/lab.py).
[appliance]
name = "chaos"
ip = "127.0.0.5"
cores = {cores}
mep_port = {appliance_mep}
mep_secret = "chaos-secret"
metrics_interval = {metrics_interval}
dead_interval = {dead_interval}
consolidation_interval = {consolidation_interval}

[[zone]]
name = "chaos.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = {east_mep}
  [site.emulator]
  seed = 1

[[site]]
name = "west"
ip = "127.0.0.3"
mep_port = {west_mep}
  [site.emulator]
  seed = 2

[[site]]
name = "north"
ip = "127.0.0.8"
mep_port = {north_mep}
  [site.emulator]
  seed = 3

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[service]]
name = "north-web"
site = "north"
ip = "203.0.113.10"

[[vserver]]
name = "www"
domains = ["www.chaos.gslb"]
lb_method = "ROUNDROBIN"
answers = 3
down_response = "empty"
ttl = 5
services = ["east-web", "west-web", "north-web"]
"""


@dataclass(frozen=True)
class LabPorts:
    """
    The TCP ports of a lab.  C{applianceMep} may be a placeholder string
    (C{"MEP_PORT"}) for whoever fills it in later.
    """

    applianceMep: Union[int, str]
    eastMep: int
    westMep: int
    northMep: int
    eastProxy: int
    northProxy: int


@dataclass(frozen=True)
class Timing:
    metricsInterval: float = 0.25
    deadInterval: float = 1.5
    consolidationInterval: float = 0.5
    cores: int = 2


def _topology(ports: LabPorts, timing: Timing, applianceMep, northMep) -> str:
    return TOPOLOGY.format(
        cores=timing.cores,
        appliance_mep=applianceMep,
        metrics_interval=timing.metricsInterval,
        dead_interval=timing.deadInterval,
        consolidation_interval=timing.consolidationInterval,
        east_mep=ports.eastMep,
        west_mep=ports.westMep,
        north_mep=northMep,
    )


def applianceTopology(ports: LabPorts, timing: Timing = Timing()) -> str:
    """The appliance's topology: north's MEP goes to north's proxy."""
    return _topology(ports, timing, ports.applianceMep, ports.northProxy)


def siteTopology(site: str, ports: LabPorts, timing: Timing = Timing()) -> str:
    """C{site}'s own copy: east dials its proxy, west the appliance; north listens on its real port."""
    if site not in SITE_IPS:
        raise ValueError(f"no site {site!r} in the chaos lab (its sites: {', '.join(SITE_IPS)})")
    mep = ports.eastProxy if site == "east" else ports.applianceMep
    return _topology(ports, timing, mep, ports.northMep)


def proxyPlans(ports: LabPorts, applianceMep: int) -> dict[str, tuple[str, str]]:
    """site -> (listen, target) endpoint strings of its MEP proxy."""
    return {
        "east": (f"tcp:{ports.eastProxy}:interface={APPLIANCE_IP}",
                 f"tcp:host={APPLIANCE_IP}:port={applianceMep}:bindAddress={SITE_IPS['east']}"),
        "north": (f"tcp:{ports.northProxy}:interface={SITE_IPS['north']}",
                  f"tcp:host={SITE_IPS['north']}:port={ports.northMep}:bindAddress={APPLIANCE_IP}"),
    }
