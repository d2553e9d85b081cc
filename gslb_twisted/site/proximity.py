"""
The round-trip times an emulated site reports for client networks
(dynamic proximity: the appliance sends PROBE, the site answers RTT; see
docs/MEP.md).

Pure: no reactor, no I/O.  Time is a number handed in by the caller.

The RTT of a probed network is the value of the first layer that has one:

    1. a console pin (C{set rtt NETWORK MS}) on the probed network or on a
       network holding it, the longest prefix winning, until released;
    2. the site's C{[site.emulator] rtt} table, same longest-prefix match;
    3. the distance from the site's C{location} to the location of the
       network's first address in the appliance's C{location_db}:
       C{1 ms + km / 100} (light in fibre covers about 100 km per
       millisecond of round trip), times a jitter of up to +-5 % when the
       site has a C{seed}.  The jitter is drawn from a generator seeded
       with the site's seed and the network, so a network always gets the
       same value from the same seed and C{show rtt} shows what the next
       PROBE gets;
    4. none: the network is left out of the RTT answer.
"""

from __future__ import annotations

import ipaddress
import math
import random
from typing import Any, Iterable, Mapping, Optional, Union

from gslb_twisted.config import Location as SiteLocation
from gslb_twisted.lb.locations import LocationDB, greatCircleKm
from gslb_twisted.mep.frames import canonicalNetwork

PINNED, CONFIG, LOCATION = "pinned", "config", "location"

# The location formula: a floor for the hosts' own latency, then the
# distance at about 100 km per millisecond of round trip.
BASE_MS = 1.0
KM_PER_MS = 100.0
# A seeded site's jitter on location-derived RTTs: up to +-5 %.
JITTER = 0.05
# The networks remembered for `show rtt` (the oldest are forgotten first).
MAX_PROBED = 65536

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parseNetwork(text: Any) -> Network:
    """
    A network from its CIDR text, strictly (no host bits, no zone).

    @raise ValueError: not a network in CIDR notation.
    """
    try:
        return ipaddress.ip_network(canonicalNetwork(text), strict=True)
    except (TypeError, ValueError):
        raise ValueError(f"expected a network in CIDR notation such as 198.51.100.0/24, found {text!r}") from None


def checkMilliseconds(value: Any) -> float:
    """
    An RTT in milliseconds: a finite number >= 0.

    @raise ValueError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number of milliseconds >= 0, found {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a number of milliseconds >= 0, found {value!r}")
    return value


def longestMatch(network: Network, table: Mapping[Network, float]) -> Optional[float]:
    """The value of the longest network of C{table} holding C{network}, or C{None}."""
    best: Optional[Network] = None
    for candidate in table:
        if candidate.version == network.version and network.subnet_of(candidate):
            if best is None or candidate.prefixlen > best.prefixlen:
                best = candidate
    return None if best is None else table[best]


def sortKey(network: Network) -> tuple[int, int, int]:
    return (network.version, int(network.network_address), network.prefixlen)


class _Probed:
    __slots__ = ("probes", "lastAt", "peer")

    def __init__(self) -> None:
        self.probes = 0
        self.lastAt = 0.0
        self.peer: Optional[str] = None


class RTTModel:
    """
    A site's emulated RTT measurements and the networks probed so far.

    @param overrides: the C{[site.emulator] rtt} table, C{{cidr: ms}}.
    @param location: the site's C{location} (C{None}: no location model).
    @param locations: the appliance's location database (C{None}: none).
    @param seed: the site's seed (C{None}: no jitter).
    @raise ValueError: a key of C{overrides} is not a network or a value
        not a number of milliseconds >= 0.

    @ivar pins: C{{network: ms}} pinned from the console.
    """

    def __init__(
        self,
        overrides: Mapping[str, float] = {},
        location: Optional[SiteLocation] = None,
        locations: Optional[LocationDB] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.overrides: dict[Network, float] = {
            parseNetwork(cidr): checkMilliseconds(ms) for cidr, ms in dict(overrides).items()
        }
        self.location = location
        self.locations = locations
        self.seed = seed
        self.pins: dict[Network, float] = {}
        self._probed: dict[str, _Probed] = {}

    def measure(self, network: Union[str, Network]) -> Optional[tuple[float, str]]:
        """
        The RTT the site reports for C{network} now, with its source
        (L{PINNED}, L{CONFIG} or L{LOCATION}); C{None} when it cannot tell.
        """
        if isinstance(network, str):
            network = parseNetwork(network)
        for table, source in ((self.pins, PINNED), (self.overrides, CONFIG)):
            value = longestMatch(network, table)
            if value is not None:
                return value, source
        value = self.fromLocation(network)
        if value is None:
            return None
        return value, LOCATION

    def fromLocation(self, network: Network) -> Optional[float]:
        """The location formula for C{network}, jitter included; C{None} without locations."""
        if self.location is None or self.locations is None:
            return None
        where = self.locations.lookup(str(network.network_address))
        if where is None:
            return None
        ms = BASE_MS + greatCircleKm(self.location.lat, self.location.lon, where.lat, where.lon) / KM_PER_MS
        if self.seed is not None:
            ms *= 1.0 + random.Random(f"{self.seed}/rtt/{network}").uniform(-JITTER, JITTER)
        return ms

    def probe(self, networks: Iterable[str], now: float, peer: Optional[str] = None) -> dict[str, float]:
        """
        Answer a PROBE from C{peer}: C{{network: ms}} for the networks the
        site can measure, and remember every network for L{rows}.
        """
        answer = {}
        for text in networks:
            network = parseNetwork(text)
            key = str(network)
            record = self._probed.pop(key, None) or _Probed()
            record.probes += 1
            record.lastAt = now
            record.peer = peer
            self._probed[key] = record  # most recent last
            if len(self._probed) > MAX_PROBED:
                del self._probed[next(iter(self._probed))]
            measured = self.measure(network)
            if measured is not None:
                answer[key] = measured[0]
        return answer

    def pin(self, network: str, ms: Any) -> str:
        """
        Pin the RTT of C{network}: it answers for that network and for
        every network inside it that no longer pin holds (config entries and
        locations come after any pin).

        @return: the network, canonical.
        @raise ValueError: not a network, or not a number of milliseconds >= 0.
        """
        parsed = parseNetwork(network)
        self.pins[parsed] = checkMilliseconds(ms)
        return str(parsed)

    def unpin(self, network: str) -> bool:
        """
        Release the pin of exactly C{network}.

        @return: whether there was one.
        @raise ValueError: not a network.
        """
        return self.pins.pop(parseNetwork(network), None) is not None

    def pinned(self) -> list[str]:
        """The pinned networks, in address order."""
        return [str(network) for network in sorted(self.pins, key=sortKey)]

    def row(self, network: Union[str, Network], now: float) -> dict[str, Any]:
        """One row of C{show rtt}: what the site reports for C{network} now."""
        if isinstance(network, str):
            network = parseNetwork(network)
        key = str(network)
        measured = self.measure(network)
        record = self._probed.get(key)
        return {
            "network": key,
            "rtt": None if measured is None else measured[0],
            "source": None if measured is None else measured[1],
            "probes": 0 if record is None else record.probes,
            "age": None if record is None else now - record.lastAt,
            "peer": None if record is None else record.peer,
        }

    def rows(self, now: float) -> list[dict[str, Any]]:
        """C{show rtt}: the networks probed so far and the pinned ones, in address order."""
        networks = {parseNetwork(key) for key in self._probed} | set(self.pins)
        return [self.row(network, now) for network in sorted(networks, key=sortKey)]
