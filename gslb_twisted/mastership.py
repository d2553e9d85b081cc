"""
Who is master of each site: claim arbitration in the hub, and each core's
view of the masters it has been told about.  Pure objects, no reactor.

The hub grants one claim per site at a time and hands out a rising epoch
per site (a fencing token): an update carrying an older epoch, or coming
from a core that is not the master of that epoch, is never applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from gslb_twisted.config import Site, Topology
from gslb_twisted.mep.rules import initiates


@dataclass(frozen=True, slots=True)
class Claim:
    core: int
    epoch: int


class ClaimTable:
    """
    The hub's record of claims.  Epochs only rise, per site, for the life
    of the appliance (the supervisor), across every core death.
    """

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}
        self.lastEpoch: dict[str, int] = {}

    def holder(self, site: str) -> Optional[Claim]:
        return self.claims.get(site)

    def claim(self, site: str, core: int, takeover: bool = False) -> Optional[Claim]:
        """
        C{core} asks to master C{site}.  Granted when nobody holds it, or
        when C{takeover} (the site connected to C{core}: it holds no other
        session with this appliance).  A core asking again for a site it
        holds keeps its epoch.

        @return: the claim now in force, or C{None} when refused.
        """
        current = self.claims.get(site)
        if current is not None and current.core == core:
            return current
        if current is not None and not takeover:
            return None
        epoch = self.lastEpoch.get(site, 0) + 1
        self.lastEpoch[site] = epoch
        granted = self.claims[site] = Claim(core, epoch)
        return granted

    def release(self, site: str, core: int, epoch: int) -> bool:
        """C{core} gives up C{site}; only the holder of that epoch can."""
        current = self.claims.get(site)
        if current == Claim(core, epoch):
            del self.claims[site]
            return True
        return False

    def coreDied(self, core: int) -> list[str]:
        """Release every claim of a dead core; the sites it mastered."""
        orphans = sorted(site for site, claim in self.claims.items() if claim.core == core)
        for site in orphans:
            del self.claims[site]
        return orphans

    def mastersOf(self) -> dict[int, int]:
        """How many sites each core masters."""
        counts: dict[int, int] = {}
        for claim in self.claims.values():
            counts[claim.core] = counts.get(claim.core, 0) + 1
        return counts


def pickCore(liveCores: Iterable[int], masters: dict[int, int]) -> Optional[int]:
    """
    The core that should master one more site: the live core with the
    fewest sites, the lowest id on a tie, so sites spread over the cores.
    """
    live = sorted(liveCores)
    if not live:
        return None
    return min(live, key=lambda core: (masters.get(core, 0), core))


class MastershipView:
    """
    One core's knowledge of each site's master, from the hub's
    announcements.  An announcement older than one already seen is
    ignored, so a late message can never bring back a deposed master.
    """

    def __init__(self) -> None:
        self.masters: dict[str, Claim] = {}
        self.epochs: dict[str, int] = {}
        self.staleAnnouncements = 0

    def announce(self, site: str, core: Optional[int], epoch: int) -> bool:
        """
        The hub says C{core} masters C{site} from C{epoch} on (C{core} None:
        nobody does, since C{epoch}).  True when it changed our view.
        """
        known = self.epochs.get(site, 0)
        if epoch < known:
            self.staleAnnouncements += 1
            return False
        if core is None:
            # Remembered even when no master was known, so that an older
            # announcement arriving later is still ignored.
            self.epochs[site] = epoch
            if site in self.masters and self.masters[site].epoch <= epoch:
                del self.masters[site]
                return True
            return False
        claim = Claim(core, epoch)
        if self.masters.get(site) == claim:
            return False
        self.masters[site] = claim
        self.epochs[site] = epoch
        return True

    def master(self, site: str) -> Optional[tuple[int, int]]:
        claim = self.masters.get(site)
        return None if claim is None else (claim.core, claim.epoch)

    def isMaster(self, site: str, core: int) -> bool:
        claim = self.masters.get(site)
        return claim is not None and claim.core == core


def siteInitiates(topology: Topology, site: Site) -> bool:
    """The lower-IP rule, from the appliance's side: does the site dial us?"""
    appliance = topology.appliance
    return initiates(site.ip, site.name, appliance.ip, appliance.name)


def hubAssigns(topology: Topology, site: Site) -> bool:
    """
    Sites the hub gives a master to: those we dial, and those without MEP
    (static, SNMP); a site that dials us is mastered by whichever core
    accepts its connection.
    """
    return not (site.protocol == "mep" and site.metric_exchange and siteInitiates(topology, site))
