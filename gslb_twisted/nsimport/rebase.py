"""
Rebasing addresses into a lab network (C{--rebase 127.0.0.0/8}), so that a
NetScaler's sites and services can be emulated on one machine.

Each address keeps its host bits under the new prefix (10.20.0.10 in
127.0.0.0/8 is 127.20.0.10), so that the emulated addresses are easy to
match with the real ones; an address whose preferred place is taken (or is
the network's own or broadcast address) takes the next free one.  The
addresses are placed in sorted order, so the result depends only on the set
of addresses, never on the order of the file.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

__all__ = ["parseNetwork", "planRebase"]


def parseNetwork(text: str) -> Network:
    """
    A rebase network: an IPv4 or IPv6 network in CIDR form, host bits
    allowed (C{127.0.0.1/8} is C{127.0.0.0/8}).

    @raise ValueError: with a message for the user.
    """
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not a network such as 127.0.0.0/8") from None
    usable = network.num_addresses - (2 if network.prefixlen < network.max_prefixlen - 1 else 0)
    if usable < 1:
        raise ValueError(f"{text!r} holds no usable address")
    return network


def _usable(network: Network, value: int) -> bool:
    if network.prefixlen >= network.max_prefixlen - 1:
        return True
    return value not in (int(network.network_address), int(network.broadcast_address))


def planRebase(addresses: Iterable[str], networks: Sequence[Network]) -> dict[str, str]:
    """
    Where every address goes: C{{old: new}} for the addresses of a family
    that one of C{networks} covers (at most one network per family).

    @raise ValueError: two networks of one family, or a network too small
        for the addresses to place in it.
    """
    byVersion: dict[int, Network] = {}
    for network in networks:
        if network.version in byVersion:
            raise ValueError(f"--rebase: two IPv{network.version} networks ({byVersion[network.version]} and {network})")
        byVersion[network.version] = network
    parsed = sorted({ipaddress.ip_address(a) for a in addresses}, key=lambda a: (a.version, int(a)))
    plan: dict[str, str] = {}
    taken: dict[int, set[int]] = {4: set(), 6: set()}
    for address in parsed:
        network = byVersion.get(address.version)
        if network is None:
            continue
        base = int(network.network_address)
        size = network.num_addresses
        offset = int(address) & int(network.hostmask)
        for step in range(size):
            candidate = base + (offset + step) % size
            if candidate not in taken[address.version] and _usable(network, candidate):
                break
        else:
            raise ValueError(f"--rebase {network}: too small for the {len(parsed)} addresses of the configuration")
        taken[address.version].add(candidate)
        plan[str(address)] = str(type(address)(candidate))
    return plan
