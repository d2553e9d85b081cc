"""
Pure MEP decisions, no I/O: who opens the connection (the lower-IP rule)
and what to do with a received sequence number (docs/MEP.md, sections 1 and 3).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional, Union

_Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def _key(ip: Union[str, _Address]) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return (address.version, int(address))


def initiates(localIP: Union[str, _Address], localName: str, peerIP: Union[str, _Address], peerName: str) -> bool:
    """
    Whether the local end opens the MEP connection: the end with the lower
    IP address does (any IPv4 address is lower than any IPv6 one); equal
    addresses, the lower name does.

    @raise ValueError: an address does not parse, or both ends have the
        same address and the same name.
    """
    local, peer = _key(localIP), _key(peerIP)
    if local != peer:
        return local < peer
    if localName == peerName:
        raise ValueError(f"both MEP ends are {localName!r} at {localIP}: cannot tell who initiates")
    return localName < peerName


APPLY = "apply"
RESYNC = "resync"
DROP = "drop"


class SequenceTracker:
    """
    The receiving (appliance) side's view of a site's metric versions in
    one session.

    A snapshot always applies.  A delta applies when it continues the last
    version held; otherwise the tracker answers L{RESYNC} once and L{DROP}
    for every delta after it, until a snapshot arrives.

    @ivar lastSeq: the last version held, or C{None} before any snapshot.
    @ivar awaitingSnapshot: a resync was asked for and not yet answered.
    """

    def __init__(self) -> None:
        self.lastSeq: Optional[int] = None
        self.awaitingSnapshot = False
        self._services: frozenset[str] = frozenset()

    def snapshot(self, seq: int, services: Iterable[str]) -> str:
        """A SNAPSHOT of version C{seq} with these services: always L{APPLY}."""
        self.lastSeq = seq
        self.awaitingSnapshot = False
        self._services = frozenset(services)
        return APPLY

    def delta(self, seq: int, baseSeq: int, services: Iterable[str]) -> str:
        """
        A DELTA from C{baseSeq} to C{seq} touching these services:
        L{APPLY}, L{RESYNC} (ask for a snapshot now) or L{DROP}.
        """
        if self.awaitingSnapshot:
            return DROP
        if (
            self.lastSeq is None
            or baseSeq != self.lastSeq
            or seq <= baseSeq
            or not self._services.issuperset(services)
        ):
            self.awaitingSnapshot = True
            return RESYNC
        self.lastSeq = seq
        return APPLY
