"""
The static proximity location database (NetScaler's "location DB"): client
networks mapped to a latitude, a longitude and an optional region, and the
great-circle distance the STATICPROXIMITY method ranks sites by.

The file format (SPEC section 3, C{location_db}) is one entry per line::

    cidr,lat,lon[,region]

Blank lines and lines starting with C{#} are ignored; fields may be padded
with spaces.  C{cidr} is an IPv4 or IPv6 network with no host bits set
(C{ipaddress.ip_network(cidr, strict=True)}), C{lat} is from -90 to 90,
C{lon} from -180 to 180, and C{region} is free text: everything after the
third comma, stripped (an empty region is no region).  A network may appear
only once.

This module is pure: no Twisted, no reactor, no I/O outside L{LocationDB.fromCSV}.
L{LocationDB.lookup} is on the DNS hot path, so it avoids C{ipaddress}
objects altogether: the address becomes an int through C{inet_pton}, and the
longest-prefix match is one dict probe per prefix length present.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
from typing import Any, Iterable, Optional

__all__ = ["EARTH_RADIUS_KM", "Location", "LocationDB", "LocationDBError", "greatCircleKm"]

# Mean Earth radius (IUGG), in km.
EARTH_RADIUS_KM = 6371.0088

_BITS = {4: 32, 6: 128}

# An IPv4-mapped IPv6 address (::ffff:a.b.c.d) shifted right by 32 bits.
_V4_MAPPED = 0xFFFF
_V4_MAPPED_NETWORK = ipaddress.IPv6Network("::ffff:0:0/96")

# Bound once: attribute look-ups count on the hot path.
_inetPton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_fromBytes = int.from_bytes


class LocationDBError(Exception):
    """
    A location database cannot be loaded.  C{str()} of it is the whole
    message a user reads: the file, the line, what was expected and what
    was found.

    @ivar path: the file (or C{"<rows>"} for L{LocationDB.fromRows}).
    @ivar lineNumber: 1-based line (or row) number; 0 when the file itself
        could not be read.
    @ivar message: what is wrong, without the place.
    """

    def __init__(self, path: str, lineNumber: int, message: str) -> None:
        self.path = path
        self.lineNumber = lineNumber
        self.message = message
        super().__init__(path, lineNumber, message)

    def __str__(self) -> str:
        if self.lineNumber == 0:
            return f"{self.path}: {self.message}"
        return f"{self.path} line {self.lineNumber}: {self.message}"


class Location:
    """
    Where the clients of one network are.

    @ivar lat: latitude in degrees, from -90 to 90.
    @ivar lon: longitude in degrees, from -180 to 180.
    @ivar region: free text, or None.
    @ivar ident: the entry's index in its database, from 0 to C{len(db) - 1}
        in file order, so that callers can keep per-location data (such as
        distances to sites) in a list.
    @ivar network: the entry's network in canonical CIDR form.
    """

    __slots__ = ("lat", "lon", "region", "ident", "network")

    def __init__(self, lat: float, lon: float, region: Optional[str], ident: int, network: str) -> None:
        self.lat = lat
        self.lon = lon
        self.region = region
        self.ident = ident
        self.network = network

    def __repr__(self) -> str:
        return (
            f"Location(lat={self.lat!r}, lon={self.lon!r}, region={self.region!r}, "
            f"ident={self.ident!r}, network={self.network!r})"
        )


class LocationDB:
    """
    Networks mapped to L{Location}s, answering longest-prefix matches.

    Build one with L{fromCSV} or L{fromRows}; it does not change afterwards.

    @ivar locations: every L{Location}, in order of C{ident}.
    """

    def __init__(self, locations: Iterable[Location]) -> None:
        """
        @param locations: the entries, with distinct networks and C{ident}
            equal to their position; use L{fromCSV} or L{fromRows}, which
            check both.
        """
        self.locations = tuple(locations)
        byLength: dict[tuple[int, int], dict[int, Location]] = {}
        for location in self.locations:
            network = ipaddress.ip_network(location.network)
            key = (network.version, network.prefixlen)
            shift = network.max_prefixlen - network.prefixlen
            byLength.setdefault(key, {})[int(network.network_address) >> shift] = location
        # Per family, (shift, table) from the longest prefix to the shortest:
        # the first table holding the shifted address is the longest match.
        self._tables = {
            version: tuple(
                (_BITS[version] - length, byLength[(version, length)])
                for length in sorted((n for (v, n) in byLength if v == version), reverse=True)
            )
            for version in (4, 6)
        }
        self._v4 = self._tables[4]
        self._v6 = self._tables[6]

    @classmethod
    def fromCSV(cls, path: str) -> "LocationDB":
        """
        Load a location file.

        @param path: the CSV file (format in the module docstring).
        @raise LocationDBError: the file cannot be read, or a line is wrong.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise LocationDBError(path, 0, f"cannot read the file: {e.strerror or e}") from None
        # Decode line by line so that bad bytes are reported with their line.
        rows = []
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise LocationDBError(
                    path, number, f"expected UTF-8 text, found byte 0x{raw[e.start]:02x} at column {e.start + 1}"
                ) from None
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(",", 3)
            if len(fields) < 3:
                raise LocationDBError(path, number, f"expected cidr,lat,lon[,region], found {_quote(line)}")
            cidr, lat, lon = (field.strip() for field in fields[:3])
            region = fields[3] if len(fields) == 4 else None
            rows.append((number, cidr, lat, lon, region))
        return cls._build(path, rows)

    @classmethod
    def fromRows(cls, rows: Iterable[tuple[Any, Any, Any, Optional[str]]]) -> "LocationDB":
        """
        Build a database from rows already split, checked as a file would be.

        @param rows: (cidr, lat, lon, region) tuples; lat and lon may be
            numbers or strings, region a string or None.
        @raise LocationDBError: a row is wrong; its path is C{"<rows>"} and
            its line the 1-based row number.
        """
        return cls._build("<rows>", [(number, *row) for number, row in enumerate(rows, 1)])

    @classmethod
    def _build(cls, path: str, rows: Iterable[tuple[int, Any, Any, Any, Optional[str]]]) -> "LocationDB":
        locations = []
        firstLine: dict[Any, int] = {}
        for number, cidr, lat, lon, region in rows:
            network = _network(path, number, cidr)
            if network in firstLine:
                raise LocationDBError(
                    path,
                    number,
                    f"expected each network once, found {_quote(str(network))} again"
                    f" (first on line {firstLine[network]})",
                )
            firstLine[network] = number
            if region is not None:
                if not isinstance(region, str):
                    raise LocationDBError(path, number, f"expected a region as text, found {_quote(region)}")
                region = region.strip() or None
            locations.append(
                Location(
                    lat=_coordinate(path, number, lat, 90.0, "a latitude from -90 to 90"),
                    lon=_coordinate(path, number, lon, 180.0, "a longitude from -180 to 180"),
                    region=region,
                    ident=len(locations),
                    network=str(network),
                )
            )
        return cls(locations)

    def lookup(self, address: str) -> Optional[Location]:
        """
        The location of the most specific network holding an address.

        An IPv4-mapped IPv6 address (C{::ffff:a.b.c.d}) looks up as IPv4.

        @param address: an IPv4 or IPv6 address as text.
        @return: the L{Location}, or None when no network holds the address
            or C{address} is not an address (this never raises).
        """
        try:
            if ":" in address:
                value = _fromBytes(_inetPton(_AF_INET6, address), "big")
                if value >> 32 == _V4_MAPPED:
                    value &= 0xFFFFFFFF
                    tables = self._v4
                else:
                    tables = self._v6
            else:
                value = _fromBytes(_inetPton(_AF_INET, address), "big")
                tables = self._v4
        except (OSError, TypeError, ValueError):
            return self._lookupSlow(address)
        for shift, table in tables:
            location = table.get(value >> shift)
            if location is not None:
                return location
        return None

    def _lookupSlow(self, address: Any) -> Optional[Location]:
        # A link-local client may come with its zone index ("fe80::1%eth0"),
        # which inet_pton refuses; the zone says nothing about where it is.
        if isinstance(address, str) and "%" in address:
            return self.lookup(address.partition("%")[0])
        return None

    def lookupInt(self, version: int, value: int) -> Optional[Location]:
        """
        L{lookup} for an address given as an int.

        @param version: 4 or 6; any other value finds nothing.
        @param value: the address as an unsigned int; an IPv4-mapped IPv6
            address looks up as IPv4.  Out of range values find nothing.
        @return: the L{Location}, or None.
        """
        if version == 4:
            tables = self._v4
        elif version == 6:
            if value >> 32 == _V4_MAPPED:
                value &= 0xFFFFFFFF
                tables = self._v4
            else:
                tables = self._v6
        else:
            return None
        for shift, table in tables:
            location = table.get(value >> shift)
            if location is not None:
                return location
        return None

    def __len__(self) -> int:
        return len(self.locations)

    def __repr__(self) -> str:
        return f"<LocationDB with {len(self.locations)} entries>"


def greatCircleKm(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """
    The great-circle distance between two points on a spherical Earth of
    mean radius L{EARTH_RADIUS_KM}, by the haversine formula (well
    conditioned for the short distances that decide between nearby sites).

    @param lat1: latitude of the first point, in degrees.
    @param lon1: longitude of the first point, in degrees.
    @param lat2: latitude of the second point, in degrees.
    @param lon2: longitude of the second point, in degrees.
    @return: the distance in km.
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    # Rounding can push a a hair above 1 near the antipodes, outside asin's domain.
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


def _network(path: str, number: int, cidr: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    expected = "an IPv4 or IPv6 network (CIDR)"
    if not isinstance(cidr, str):
        raise LocationDBError(path, number, f"expected {expected}, found {_quote(cidr)}")
    cidr = cidr.strip()
    if "%" in cidr:
        raise LocationDBError(path, number, f"expected {expected} without a zone index, found {_quote(cidr)}")
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise LocationDBError(path, number, f"expected {expected}, found {_quote(cidr)}") from None
        raise LocationDBError(
            path, number, f"expected a network with no host bits set (such as {loose}), found {_quote(cidr)}"
        ) from None
    # Mapped addresses look up as IPv4, so such an entry could never match.
    if network.version == 6 and network.prefixlen >= 96 and network.subnet_of(_V4_MAPPED_NETWORK):
        raise LocationDBError(
            path,
            number,
            f"expected an IPv4 network written as IPv4 (IPv4-mapped addresses look up as IPv4),"
            f" found {_quote(cidr)}",
        )
    return network


def _coordinate(path: str, number: int, raw: Any, limit: float, expected: str) -> float:
    if isinstance(raw, bool):
        raise LocationDBError(path, number, f"expected {expected}, found {_quote(raw)}")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise LocationDBError(path, number, f"expected {expected}, found {_quote(raw)}") from None
    # Written as "not within" so that NaN fails too.
    if not -limit <= value <= limit:
        raise LocationDBError(path, number, f"expected {expected}, found {_quote(raw)}")
    return value


def _quote(value: Any) -> str:
    """
    A value as a message shows it: text in double quotes with control
    characters escaped, anything else as repr, cut to a readable length.
    """
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    if len(text) > 60:
        text = text[:56] + "...\"" if isinstance(value, str) else text[:57] + "..."
    return text
