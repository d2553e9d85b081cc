"""
SOURCEIP persistence: which service a client network was given, per
vserver, shared by every core (and, over MEP, with the sites).

A plain object with the time passed in: no reactor.  Entries are merged by
a deterministic rule so that cores which created entries for the same
client at the same moment converge on one:

  - a higher C{version} wins (a persisted service that went DOWN is
    replaced by a new entry of the next version);
  - at equal versions the lower C{origin} wins (C{"appliance/core"}), so two
    cores that raced agree without comparing clocks;
  - the same entry seen again only extends its expiry.

The timeout is an idle timeout, as on NetScaler: each use extends the
entry.  Uses are shared with the other cores at most every quarter of the
timeout per entry (L{PersistenceTable.touch}), so a core may not know of
the latest uses of the last quarter; every core therefore honours an entry
for a quarter of the timeout past the expiry it knows (C{GRACE}).  A
client active within the timeout keeps its service on every core; an idle
one is forgotten between 1 and 1.25 timeouts after its last query.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional

Key = tuple[int, int]

# Past its known expiry, an entry lives on this fraction of its timeout (see
# the module docstring).
GRACE = 0.25
# Entries one core holds at most (a bound on memory under a flood of
# distinct clients); past that, the least recently used entry makes room.
MAX_ENTRIES = 1_000_000


class PersistenceEntry:
    __slots__ = ("vserver", "key", "network", "service", "version", "origin", "expires", "sharedAt", "grace")

    def __init__(
        self,
        vserver: str,
        key: Key,
        network: str,
        service: str,
        version: int,
        origin: str,
        expires: float,
        sharedAt: float,
        grace: float = 0.0,
    ) -> None:
        self.vserver = vserver
        self.key = key
        self.network = network
        self.service = service
        self.version = version
        self.origin = origin
        self.expires = expires
        self.sharedAt = sharedAt
        self.grace = grace

    def wire(self, now: float) -> dict:
        """The form cores and MEP sessions exchange (C{ttl}: seconds left)."""
        return {
            "vserver": self.vserver,
            "network": self.network,
            "service": self.service,
            "version": self.version,
            "origin": self.origin,
            "ttl": round(max(self.expires - now, 0.0), 3),
        }

    def __repr__(self) -> str:
        return f"<PersistenceEntry {self.vserver} {self.network} -> {self.service} v{self.version} {self.origin}>"


def wins(version: int, origin: str, other: PersistenceEntry) -> bool:
    """Whether an entry of C{(version, origin)} beats C{other} (see module)."""
    return version > other.version or (version == other.version and origin < other.origin)


class PersistenceTable:
    """
    @param origin: who creates entries here (C{"gslb1/0"}: appliance/core).
    @ivar created: entries created here; C{replaced}: of which replacements
        of a DOWN service; C{merged}: remote entries taken; C{expired};
        C{evicted}: least recently used entries dropped to make room.
    """

    def __init__(self, origin: str, maxEntries: int = MAX_ENTRIES) -> None:
        self.origin = origin
        self.maxEntries = maxEntries
        self._count = 0
        self._entries: dict[str, dict[Key, PersistenceEntry]] = {}
        # Every entry's (vserver, key), least recently used first.
        self._recency: dict[tuple[str, Key], None] = {}
        self.evicted = 0
        self._pending: dict[tuple[str, Key], PersistenceEntry] = {}
        self.created = 0
        self.replaced = 0
        self.merged = 0
        self.expired = 0

    def lookup(self, vserver: str, key: Key, now: float) -> Optional[PersistenceEntry]:
        """The live entry of a client network, C{None} when there is none."""
        entries = self._entries.get(vserver)
        if entries is None:
            return None
        entry = entries.get(key)
        if entry is None or entry.expires + entry.grace <= now:
            return None
        return entry

    def full(self) -> bool:
        """No room for another entry (see L{MAX_ENTRIES})."""
        return self._count >= self.maxEntries

    def create(
        self,
        vserver: str,
        key: Key,
        network: str,
        service: str,
        now: float,
        timeout: float,
        replacing: Optional[PersistenceEntry] = None,
    ) -> PersistenceEntry:
        """
        A new entry made here (to be shared: see L{takePending}); with
        C{replacing}, the next version of that entry.
        """
        entries = self._entries.setdefault(vserver, {})
        if replacing is None:
            # An entry that lapsed here may live on at another core (uses
            # are shared only now and then): outrank it, so that every core
            # ends up answering the client as we do now.
            replacing = entries.get(key)
            version = 1 if replacing is None else replacing.version + 1
            replacing = None
        else:
            version = replacing.version + 1
        entry = PersistenceEntry(vserver, key, network, service, version, self.origin, now + timeout, now, timeout * GRACE)
        if key not in entries:
            self._makeRoom()
            self._count += 1
        entries[key] = entry
        self._used(vserver, key)
        self._pending[(vserver, key)] = entry
        self.created += 1
        if replacing is not None:
            self.replaced += 1
        return entry

    def touch(self, entry: PersistenceEntry, now: float, timeout: float) -> None:
        """A use of C{entry}: extend it, and share that once in a while."""
        entry.expires = now + timeout
        self._used(entry.vserver, entry.key)
        if now - entry.sharedAt >= timeout / 4:
            entry.sharedAt = now
            self._pending[(entry.vserver, entry.key)] = entry

    def merge(self, vserver: str, key: Key, wire: Mapping, now: float, timeout: Optional[float] = None) -> bool:
        """
        Take an entry from another core or a site (C{wire} as
        L{PersistenceEntry.wire}); C{timeout}, the vserver's, sets its grace.
        Returns whether it changed our table.
        """
        ttl = float(wire["ttl"])
        if ttl <= 0:
            return False
        version = int(wire["version"])
        origin = str(wire["origin"])
        expires = now + ttl
        entries = self._entries.setdefault(vserver, {})
        mine = entries.get(key)
        if mine is not None and mine.expires + mine.grace > now:
            if mine.version == version and mine.origin == origin:
                if expires > mine.expires:
                    mine.expires = expires
                    mine.sharedAt = now
                return False
            if not wins(version, origin, mine):
                return False
        if mine is None:
            self._makeRoom()
            entries = self._entries.setdefault(vserver, {})
            self._count += 1
        grace = (timeout if timeout is not None else ttl) * GRACE
        entries[key] = PersistenceEntry(
            vserver, key, str(wire["network"]), str(wire["service"]), version, origin, expires, now, grace
        )
        self._used(vserver, key)
        # What we created and lost need not be sent any more.
        self._pending.pop((vserver, key), None)
        self.merged += 1
        return True

    def takePending(self, now: float) -> list[dict]:
        """Entries created or extended here since the last call, wire form."""
        pending, self._pending = self._pending, {}
        return [entry.wire(now) for entry in pending.values() if entry.expires + entry.grace > now]

    def hasPending(self) -> bool:
        return bool(self._pending)

    def expire(self, now: float) -> int:
        """Drop the entries past their expiry; how many."""
        dropped = 0
        for vserver, entries in self._entries.items():
            dead = [key for key, entry in entries.items() if entry.expires + entry.grace <= now]
            for key in dead:
                del entries[key]
                self._recency.pop((vserver, key), None)
            dropped += len(dead)
        self.expired += dropped
        self._count -= dropped
        return dropped

    def entries(self, vserver: Optional[str] = None) -> Iterator[PersistenceEntry]:
        for name, entries in self._entries.items():
            if vserver is None or name == vserver:
                yield from entries.values()

    def count(self, vserver: Optional[str] = None) -> int:
        if vserver is not None:
            return len(self._entries.get(vserver, ()))
        return sum(len(entries) for entries in self._entries.values())

    def snapshot(self, now: float) -> list[dict]:
        """Every live entry, wire form (for a core that joins)."""
        return [entry.wire(now) for entry in self.entries() if entry.expires + entry.grace > now]

    def forget(self, vservers: Iterable[str]) -> None:
        for name in vservers:
            forgotten = self._entries.pop(name, {})
            self._count -= len(forgotten)
            for key in forgotten:
                self._recency.pop((name, key), None)

    def _used(self, vserver: str, key: Key) -> None:
        """C{(vserver, key)} is now the most recently used."""
        self._recency.pop((vserver, key), None)
        self._recency[(vserver, key)] = None

    def _makeRoom(self) -> None:
        """At the limit: drop the least recently used entry."""
        while self._count >= self.maxEntries and self._recency:
            vserver, key = next(iter(self._recency))
            del self._recency[(vserver, key)]
            entries = self._entries.get(vserver)
            if entries is not None and entries.pop(key, None) is not None:
                self._count -= 1
                self._pending.pop((vserver, key), None)
                self.evicted += 1
