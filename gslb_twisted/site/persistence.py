"""
The SOURCEIP persistence sessions a site emulator keeps and relays between
the appliances it serves (NetScaler's GSLB session exchange; SESSIONS
frames in docs/MEP.md).

Pure: no reactor, no I/O.  Time is a number handed in by the caller.

Entries are keyed by C{(vserver, network)} and merged by a deterministic
rule, the one the appliance's cores use, so every node converges on the
same entry whatever the order it hears them in:

  - a higher C{version} wins (a persisted service that went DOWN is
    replaced by a new entry of the next version);
  - at equal versions the lower C{origin} wins (plain string order);
  - the same entry (same version and origin) seen again only extends its
    expiry, never shortens it.

What changed the store is what gets relayed: a new or replacing entry, or
an extension of more than L{RELAY_SLACK} seconds (so that an entry echoed
back with a ttl a few milliseconds longer is not relayed round again).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping, Optional

from gslb_twisted.lb.persistence import wins

# An extension shorter than this is kept but not relayed.
RELAY_SLACK = 1.0
# The most entries one site keeps; new keys beyond it are dropped.
MAX_ENTRIES = 1 << 18

Key = tuple[str, str]  # (vserver, network)


class StoredSession:
    __slots__ = ("vserver", "network", "service", "version", "origin", "expires")

    def __init__(self, vserver: str, network: str, service: str, version: int, origin: str, expires: float) -> None:
        self.vserver = vserver
        self.network = network
        self.service = service
        self.version = version
        self.origin = origin
        self.expires = expires

    def wire(self, now: float) -> dict[str, Any]:
        """The form of a SESSIONS entry, C{ttl} being the seconds left."""
        return {
            "vserver": self.vserver,
            "network": self.network,
            "service": self.service,
            "version": self.version,
            "origin": self.origin,
            "ttl": round(self.expires - now, 3),
        }

    def row(self, now: float) -> dict[str, Any]:
        """One row of C{show sessions}."""
        row = self.wire(now)
        row["expires_in"] = row.pop("ttl")
        return row

    def __repr__(self) -> str:
        return f"<StoredSession {self.vserver} {self.network} -> {self.service} v{self.version} {self.origin}>"


# The appliance's merge rule (higher version, then lower origin): a site and
# the appliances it relays between must agree on which entry wins.
beats = wins


def _networkOrder(network: str) -> tuple[int, int, int]:
    parsed = ipaddress.ip_network(network)
    return (parsed.version, int(parsed.network_address), parsed.prefixlen)


class PersistenceStore:
    """
    The live entries of a site.

    @ivar merged: entries taken (new, replacing, or extended enough to
        relay); C{ignored}: entries that lost the merge or changed nothing;
        C{expired}; C{dropped}: new keys refused over L{MAX_ENTRIES}.
    """

    def __init__(self, maxEntries: int = MAX_ENTRIES) -> None:
        self.maxEntries = maxEntries
        self._entries: dict[Key, StoredSession] = {}
        self.merged = self.ignored = self.expired = self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, vserver: str, network: str) -> Optional[StoredSession]:
        return self._entries.get((vserver, network))

    def merge(self, entries: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
        """
        Take SESSIONS entries (as L{gslb_twisted.mep.frames} delivers them:
        checked, network canonical).

        @return: what changed the store, to relay, in wire form: one entry
            per key, in the order first changed, with its ttl as stored now.
        """
        changed: dict[Key, StoredSession] = {}
        for entry in entries:
            ttl = float(entry["ttl"])
            if ttl <= 0:
                self.ignored += 1
                continue
            key = (entry["vserver"], entry["network"])
            version, origin, expires = entry["version"], entry["origin"], now + ttl
            mine = self._entries.get(key)
            if mine is not None and mine.expires <= now:
                mine = None  # dead, not swept yet
            if mine is None or beats(version, origin, mine):
                if mine is None and key not in self._entries and len(self._entries) >= self.maxEntries:
                    self.dropped += 1
                    continue
                stored = StoredSession(key[0], key[1], entry["service"], version, origin, expires)
                self._entries[key] = stored
                changed[key] = stored
                self.merged += 1
            elif mine.version == version and mine.origin == origin and expires > mine.expires:
                extension = expires - mine.expires
                mine.expires = expires
                if extension > RELAY_SLACK:
                    changed[key] = mine
                    self.merged += 1
                else:
                    self.ignored += 1
            else:
                self.ignored += 1
        return [stored.wire(now) for stored in changed.values()]

    def expire(self, now: float) -> int:
        """Drop the entries whose ttl ran out; how many."""
        dead = [key for key, stored in self._entries.items() if stored.expires <= now]
        for key in dead:
            del self._entries[key]
        self.expired += len(dead)
        return len(dead)

    def nextExpiry(self) -> Optional[float]:
        """When the next entry runs out (C{None}: the store is empty)."""
        return min((stored.expires for stored in self._entries.values()), default=None)

    def live(self, now: float) -> list[dict[str, Any]]:
        """Every live entry in wire form (for an appliance that connects)."""
        return [stored.wire(now) for stored in self._sorted() if stored.expires > now]

    def rows(self, now: float) -> list[dict[str, Any]]:
        """C{show sessions}: every live entry, by vserver then network."""
        return [stored.row(now) for stored in self._sorted() if stored.expires > now]

    def _sorted(self) -> list[StoredSession]:
        return sorted(self._entries.values(), key=lambda s: (s.vserver, _networkOrder(s.network)))
