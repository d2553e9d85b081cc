"""
Client addresses as the decision engine keys them: an address string from
the DNS layer (the query's source, or its EDNS Client Subnet address) turned
into C{(version, masked integer)} under a netmask, cheaply.

These keys are what SOURCEIPHASH hashes, what SOURCEIP persistence is keyed
by and what RTT measurements are kept per.  They are plain tuples of ints so
that every core computes the same key for the same client.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Optional

_INET = socket.AF_INET
_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton
_fromBytes = int.from_bytes
_V4_MAPPED = 0xFFFF << 32

# RTT is measured per client network of this size (NetScaler probes the
# client's LDNS; resolvers of one /24 or /48 share a path).
RTT_PREFIX_V4 = 24
RTT_PREFIX_V6 = 48


def addressInt(address: str) -> Optional[tuple[int, int]]:
    """
    C{(4, value)} or C{(6, value)} for an address string, IPv4-mapped IPv6
    addresses as IPv4; C{None} for anything that is not an address.
    """
    try:
        if ":" not in address:
            return 4, _fromBytes(_inet_pton(_INET, address), "big")
        value = _fromBytes(_inet_pton(_INET6, address.split("%", 1)[0]), "big")
    except (OSError, ValueError, TypeError):
        return None
    if value >> 32 == 0xFFFF:
        return 4, value & 0xFFFFFFFF
    return 6, value


def prefixOfNetmask(netmask: str) -> int:
    """The prefix length of a dotted IPv4 netmask (C{"255.255.255.0"} -> 24)."""
    return ipaddress.IPv4Network("0.0.0.0/" + netmask).prefixlen


class ClientKeyer:
    """
    Masks client addresses: IPv4 to C{v4Prefix} bits, IPv6 to C{v6Prefix}.

    Remembers the keys it computed (up to C{cacheSize} clients, then starts
    over) so that a busy resolver costs one dictionary lookup per query.
    """

    __slots__ = ("v4Prefix", "v6Prefix", "_v4Shift", "_v6Shift", "_cache", "_cacheSize")

    def __init__(self, v4Prefix: int = 32, v6Prefix: int = 128, cacheSize: int = 65536) -> None:
        if not 0 <= v4Prefix <= 32 or not 0 <= v6Prefix <= 128:
            raise ValueError(f"prefix lengths out of range: /{v4Prefix}, /{v6Prefix}")
        self.v4Prefix = v4Prefix
        self.v6Prefix = v6Prefix
        self._v4Shift = 32 - v4Prefix
        self._v6Shift = 128 - v6Prefix
        self._cache: dict[str, Optional[tuple[int, int]]] = {}
        self._cacheSize = cacheSize

    def key(self, address: str) -> Optional[tuple[int, int]]:
        """C{(version, masked value)} of C{address}, or C{None} if it is not one."""
        found = self._cache.get(address)
        if found is not None:
            return found
        parsed = addressInt(address)
        if parsed is None:
            return None
        version, value = parsed
        shift = self._v4Shift if version == 4 else self._v6Shift
        found = (version, (value >> shift) << shift)
        if len(self._cache) >= self._cacheSize:
            self._cache.clear()
        self._cache[address] = found
        return found

    def network(self, key: tuple[int, int]) -> str:
        """The CIDR string of a key (C{"198.51.100.0/24"})."""
        version, value = key
        if version == 4:
            return f"{ipaddress.IPv4Address(value)}/{self.v4Prefix}"
        return f"{ipaddress.IPv6Address(value)}/{self.v6Prefix}"


def parseNetwork(network: str, v4Prefix: int, v6Prefix: int) -> Optional[tuple[int, int]]:
    """
    The key of a CIDR string under a keyer of these prefixes (the inverse of
    L{ClientKeyer.network}); C{None} if it is not a network.
    """
    try:
        parsed = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return None
    version = parsed.version
    bits = 32 if version == 4 else 128
    prefix = v4Prefix if version == 4 else v6Prefix
    shift = bits - prefix
    return version, (int(parsed.network_address) >> shift) << shift


def mix64(value: int) -> int:
    """
    A fixed 64-bit integer hash (splitmix64's finaliser): the same on every
    core and every run, unlike C{hash()} of strings.
    """
    value &= 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


def keyHash(key: tuple[int, int]) -> int:
    """A stable 64-bit hash of a client key (IPv6 folded to 64 bits first)."""
    version, value = key
    if version == 6:
        value = (value >> 64) ^ (value & 0xFFFFFFFFFFFFFFFF) ^ 0x6
    return mix64(value)
