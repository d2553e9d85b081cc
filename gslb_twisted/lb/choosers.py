"""
Per-query choice: which answer a plan gives to this client, now.

A chooser is built from a L{Plan} each time the plan changes and is called
on the DNS hot path as C{choose(rdtype, clientAddress) -> index}, the index
of an answer set in the vserver's answer book (see
L{gslb_twisted.dns.authority.AnswerBook}: services tuple -> prebuilt
bytes).  The work per query is kept to a rotation step or a dictionary
lookup: client-dependent results are cached per client network for the
plan's lifetime.

C{peek(clientAddress)} answers the same question without moving anything
(no rotation step, no persistence entry): it is what C{resolve} explains.

Plain objects: no reactor; the clock and the callbacks are passed in.
"""

from __future__ import annotations

import abc
import functools
from typing import Callable, Optional, Sequence

from gslb_twisted.lb.clients import RTT_PREFIX_V4, RTT_PREFIX_V6, ClientKeyer, keyHash, prefixOfNetmask
from gslb_twisted.lb.decision import Plan
from gslb_twisted.lb.methods import CLIENT_METHODS, Candidate, HashRing, distanceKm, groupSets, proximityGroups, rttGroups
from gslb_twisted.lb.persistence import PersistenceTable
from gslb_twisted.lb.roundrobin import Rotation

IndexOf = Callable[[tuple], int]

# Client networks remembered per chooser before its cache starts over.
CACHE_LIMIT = 65536


class ChoiceContext:
    """
    What choosers need from their core, passed in.

    @ivar locations: the location database (or None).
    @ivar persistence: the core's L{PersistenceTable}.
    @ivar clock: C{clock() -> float}, now.
    @ivar persisted: called after a persistence entry is created here (the
        core shares it with the other cores before the next reactor turn).
    @ivar requestProbe: C{requestProbe(network)}: ask the sites to measure
        RTT to a client network nobody has measured.
    @ivar probes: C{probes(site) -> {network: ms}} as the sites reported.
    """

    def __init__(
        self,
        locations=None,
        persistence: Optional[PersistenceTable] = None,
        clock: Callable[[], float] = lambda: 0.0,
        persisted: Callable[[], None] = lambda: None,
        requestProbe: Callable[[str], None] = lambda network: None,
        probes: Callable[[str], dict] = lambda site: {},
    ) -> None:
        self.locations = locations
        self.persistence = persistence
        self.clock = clock
        self.persisted = persisted
        self.requestProbe = requestProbe
        self.probes = probes
        self.rttKeyer = ClientKeyer(RTT_PREFIX_V4, RTT_PREFIX_V6)


class Rotating:
    """A fixed list of answer sets, taken in turn (or by client hash when stable)."""

    __slots__ = ("sets", "indices", "rotation")

    # Whether the answer depends on the client (EDNS Client Subnet scope).
    tailored = False

    def __init__(self, sets: Sequence[tuple[str, ...]], indexOf: IndexOf) -> None:
        self.sets = tuple(sets)
        self.indices = tuple(indexOf(s) for s in self.sets)
        self.rotation = Rotation(len(self.indices))

    def choose(self, rdtype: int, address: str) -> int:
        return self.indices[self.rotation.advance()]

    def stable(self, address: str, key: Optional[tuple], quiet: bool = False) -> tuple[str, ...]:
        """The set a persistent client starts with: the same on every core."""
        if key is None:
            return self.sets[0]
        return self.sets[keyHash(key) % len(self.sets)]

    def peek(self, address: str) -> tuple[tuple[str, ...], dict]:
        return self.sets[self.rotation.position], {}


class _PerClient(abc.ABC):
    """
    A chooser whose answer depends on a class of clients (a location, a
    network): per class, the ranked answer sets and a rotation among ties,
    computed at first use and kept for the plan's lifetime.  Clients the
    method cannot place get the C{fallback} chooser.
    """

    tailored = True  # the answer depends on the client (ECS scope)

    def __init__(self, indexOf: IndexOf, answers: int, fallback: Rotating) -> None:
        self.indexOf = indexOf
        self.answers = answers
        self.fallback = fallback
        self._byAddress: dict = {}
        self._byClass: dict = {}
        # Queries the method could not place, answered by the backup method.
        self.fallbacks = 0

    @abc.abstractmethod
    def classify(self, address: str):
        """The client's class, or None when the method cannot place it."""

    @abc.abstractmethod
    def rank(self, cls, quiet: bool = False) -> Optional[tuple[tuple[str, ...], ...]]:
        """The answer sets of a class (None: fall back for it); C{quiet}: no side effects."""

    def _entry(self, address: str):
        cls = self._byAddress.get(address, self)
        if cls is self:
            cls = self.classify(address)
            if len(self._byAddress) >= CACHE_LIMIT:
                self._byAddress.clear()
            self._byAddress[address] = cls
        if cls is None:
            return None
        entry = self._byClass.get(cls)
        if entry is None:
            if len(self._byClass) >= CACHE_LIMIT:
                self._byClass.clear()
            sets = self.rank(cls)
            if sets:
                entry = (sets, tuple(self.indexOf(s) for s in sets), Rotation(len(sets)))
            else:
                entry = ()
            self._byClass[cls] = entry
        return entry or None

    def choose(self, rdtype: int, address: str) -> int:
        entry = self._entry(address)
        if entry is None:
            self.fallbacks += 1
            return self.fallback.choose(rdtype, address)
        return entry[1][entry[2].advance()]

    def stable(self, address: str, key: Optional[tuple], quiet: bool = False) -> tuple[str, ...]:
        """
        The set a persistent client starts with; C{quiet}: computed without
        caching it or asking for probes (for L{peek}).
        """
        if quiet:
            cls = self.classify(address)
            sets = None if cls is None else self.rank(cls, quiet=True)
        else:
            entry = self._entry(address)
            sets = None if entry is None else entry[0]
        if not sets:
            return self.fallback.stable(address, key, quiet)
        return sets[0] if key is None else sets[keyHash(key) % len(sets)]

    def peek(self, address: str) -> tuple[tuple[str, ...], dict]:
        cls = self.classify(address)
        sets = None if cls is None else self.rank(cls)
        if not sets:
            services, inner = self.fallback.peek(address)
            return services, {**inner, "fallback": True, **self.describe(address, cls)}
        entry = self._byClass.get(cls)
        position = entry[2].position if entry else 0
        return sets[position % len(sets)], self.describe(address, cls)

    def describe(self, address: str, cls) -> dict:
        return {}


class SourceIPHash(_PerClient):
    """SOURCEIPHASH: the client network's hash on a consistent-hash ring."""

    def __init__(self, ring: HashRing, up: Sequence[Candidate], keyer: ClientKeyer, indexOf: IndexOf, answers: int, fallback: Rotating) -> None:
        super().__init__(indexOf, answers, fallback)
        self.ring = ring
        self.up = {c.service: c for c in up}
        self.keyer = keyer

    def classify(self, address: str):
        return self.keyer.key(address)

    def rank(self, key, quiet: bool = False) -> Optional[tuple[tuple[str, ...], ...]]:
        chosen = self.ring.walk(keyHash(key), self.up, self.answers)
        return (chosen,) if chosen else None

    def describe(self, address: str, key) -> dict:
        return {} if key is None else {"hash_network": self.keyer.network(key)}


class StaticProximity(_PerClient):
    """STATICPROXIMITY: nearest site to the client's location first."""

    def __init__(self, locations, up: Sequence[Candidate], indexOf: IndexOf, answers: int, fallback: Rotating) -> None:
        super().__init__(indexOf, answers, fallback)
        self.locations = locations
        self.up = list(up)
        self._where: dict = {}

    def classify(self, address: str):
        if self.locations is None:
            return None
        found = self.locations.lookup(address)
        if found is None:
            return None
        self._where[found.ident] = found
        return found.ident

    def rank(self, ident, quiet: bool = False) -> Optional[tuple[tuple[str, ...], ...]]:
        where = self._where[ident]
        return groupSets(proximityGroups(self.up, (where.lat, where.lon)), self.answers)

    def describe(self, address: str, ident) -> dict:
        if ident is None:
            return {"client_location": None}
        where = self._where[ident]
        return {
            "client_location": {"network": where.network, "lat": where.lat, "lon": where.lon, "region": where.region},
            "distance_km": {c.service: _rounded(distanceKm(c, (where.lat, where.lon))) for c in self.up},
        }


class DynamicProximity(_PerClient):
    """
    RTT: the sites' measured round-trip times to the client's network; the
    lowest wins, ties within C{tolerance} ms.  A network nobody measured
    yet is asked for (the sites probe it) and answered by the fallback.
    """

    def __init__(self, context: ChoiceContext, up: Sequence[Candidate], tolerance: float, indexOf: IndexOf, answers: int, fallback: Rotating) -> None:
        super().__init__(indexOf, answers, fallback)
        self.context = context
        self.up = list(up)
        self.tolerance = tolerance
        self._probesBySite = {c.site: context.probes(c.site) for c in up}

    def classify(self, address: str):
        key = self.context.rttKeyer.key(address)
        return None if key is None else self.context.rttKeyer.network(key)

    def _rtt(self, network: str):
        return lambda c: self._probesBySite.get(c.site, {}).get(network)

    def rank(self, network, quiet: bool = False) -> Optional[tuple[tuple[str, ...], ...]]:
        rttOf = self._rtt(network)
        if all(rttOf(c) is None for c in self.up):
            if not quiet:
                self.context.requestProbe(network)
            return None
        return groupSets(rttGroups(self.up, rttOf, self.tolerance), self.answers)

    def peek(self, address: str):
        # Explaining must not send probes: rank without asking.
        network = self.classify(address)
        rttOf = self._rtt(network) if network is not None else (lambda c: None)
        if network is None or all(rttOf(c) is None for c in self.up):
            services, inner = self.fallback.peek(address)
            return services, {**inner, "fallback": True, **self.describe(address, network)}
        sets = groupSets(rttGroups(self.up, rttOf, self.tolerance), self.answers)
        entry = self._byClass.get(network)
        position = entry[2].position if entry else 0
        return sets[position % len(sets)], self.describe(address, network)

    def describe(self, address: str, network) -> dict:
        if network is None:
            return {"rtt_network": None}
        rttOf = self._rtt(network)
        return {"rtt_network": network, "rtt_ms": {c.service: rttOf(c) for c in self.up}}


class Persistent:
    """
    SOURCEIP persistence in front of a chooser: a client network with a live
    entry gets its persisted service (first, when answers > 1) while that
    service is up; otherwise the method chooses, deterministically per
    client so that cores racing on a new client agree, and the choice
    becomes an entry that the core shares with every other core.
    """

    tailored = True  # the answer depends on the client (ECS scope)

    def __init__(
        self,
        inner,
        plan: Plan,
        table: PersistenceTable,
        keyer: ClientKeyer,
        timeout: float,
        context: ChoiceContext,
        indexOf: IndexOf,
        allowed,
    ) -> None:
        self.inner = inner
        self.name = plan.vserver if plan.rdtype == 1 else plan.vserver + "/AAAA"
        self.table = table
        self.keyer = keyer
        self.timeout = timeout
        self.context = context
        self.indexOf = indexOf
        # An entry holds while its service is one the plan answers with now
        # (up, of the family, not spilled over or over a threshold).
        answering = frozenset(c.service for c in plan.candidates)
        self.allowed = answering if allowed is None else answering & frozenset(allowed)
        self.answers = plan.answers
        # Queries answered from an entry, and entries made (statistics).
        self.hits = 0
        self.misses = 0

    def _withPersisted(self, service: str, address: str, key, quiet: bool = False) -> tuple[str, ...]:
        if self.answers == 1:
            return (service,)
        rest = [s for s in self.inner.stable(address, key, quiet) if s != service]
        return (service,) + tuple(rest[: self.answers - 1])

    def choose(self, rdtype: int, address: str) -> int:
        key = self.keyer.key(address)
        if key is None:
            return self.inner.choose(rdtype, address)
        now = self.context.clock()
        entry = self.table.lookup(self.name, key, now)
        if entry is not None and entry.service in self.allowed:
            self.table.touch(entry, now, self.timeout)
            self.hits += 1
            return self.indexOf(self._withPersisted(entry.service, address, key))
        self.misses += 1
        chosen = self.inner.stable(address, key)
        if not chosen:
            return self.inner.choose(rdtype, address)
        self.table.create(self.name, key, self.keyer.network(key), chosen[0], now, self.timeout, entry)
        self.context.persisted()
        return self.indexOf(chosen)

    def peek(self, address: str) -> tuple[tuple[str, ...], dict]:
        key = self.keyer.key(address)
        if key is None:
            services, details = self.inner.peek(address)
            return services, {**details, "persistence": "none"}
        entry = self.table.lookup(self.name, key, self.context.clock())
        network = self.keyer.network(key)
        if entry is not None and entry.service in self.allowed:
            details = {"persistence": "hit", "persistence_entry": entry.wire(self.context.clock())}
            return self._withPersisted(entry.service, address, key, quiet=True), details
        services = self.inner.stable(address, key, quiet=True)
        _, details = self.inner.peek(address)
        state = "replaced" if entry is not None else "miss"
        return services, {**details, "persistence": state, "persistence_network": network}


def _clientChooser(method: str, plan: Plan, config, context: ChoiceContext, indexOf: IndexOf, fallback):
    if method == "SOURCEIPHASH":
        keyer = ClientKeyer(prefixOfNetmask(config.netmask), config.v6_netmask_len)
        ring = ringOf(plan.pool)
        return SourceIPHash(ring, plan.candidates, keyer, indexOf, plan.answers, fallback)
    if method == "STATICPROXIMITY":
        return StaticProximity(context.locations, plan.candidates, indexOf, plan.answers, fallback)
    return DynamicProximity(context, plan.candidates, float(config.tolerance), indexOf, plan.answers, fallback)


@functools.lru_cache(maxsize=256)
def ringOf(services: tuple[str, ...]) -> HashRing:
    """The ring of a vserver's bound services: built once, not per plan."""
    return HashRing(services)


def _rounded(value: float):
    return None if value == float("inf") else round(value, 1)


def buildChooser(plan: Plan, context: ChoiceContext, indexOf: IndexOf, allowed=None):
    """
    The chooser for a plan (C{None} when the plan gives no address).

    @param allowed: if given, limits further the services a persistence
        entry may name (by default those the plan answers with).
    """
    if not plan.sets and not plan.clientMethod:
        return None
    config = plan.config
    inner = Rotating(plan.sets, indexOf) if plan.sets else None
    if plan.clientMethod:
        if plan.backupMethod in CLIENT_METHODS:
            inner = _clientChooser(plan.backupMethod, plan, config, context, indexOf, inner)
        inner = _clientChooser(plan.method, plan, config, context, indexOf, inner)
    if plan.persistence == "SOURCEIP" and plan.source != "down_response" and context.persistence is not None:
        asked = plan.askedConfig
        keyer = ClientKeyer(prefixOfNetmask(asked.persist_mask), asked.v6_persist_mask_len)
        inner = Persistent(inner, plan, context.persistence, keyer, asked.persistence_timeout, context, indexOf, allowed)
    return inner
