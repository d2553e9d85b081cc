"""
Tests for L{gslb_twisted.lb.locations}: the static proximity location
database (SPEC section 3, C{location_db}) and great-circle distances.

Every error test checks what a user reads: the file, the line, and what was
expected and found.
"""

from __future__ import annotations

import ipaddress
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.lb.locations import (
    EARTH_RADIUS_KM,
    Location,
    LocationDB,
    LocationDBError,
    greatCircleKm,
)

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "locations.csv")

# Coordinates of the shipped fixture's loopback entries.
ASHBURN = (39.04, -77.49)
LONDON = (51.51, -0.13)
DUBLIN = (53.35, -6.26)
TOKYO = (35.68, 139.69)

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=300)


class CSVMixin:
    def writeCSV(self, text: str, encoding: str = "utf-8") -> str:
        """
        Write C{text} to a new file and return its path.
        """
        path = self.mktemp() + ".csv"
        with open(path, "wb") as f:
            f.write(text.encode(encoding) if isinstance(text, str) else text)
        return path

    def assertLineError(self, text, lineNumber: int, *fragments: str) -> LocationDBError:
        """
        Loading C{text} fails at C{lineNumber}, and the message names the
        file, the line and every fragment.
        """
        path = self.writeCSV(text)
        error = self.assertRaises(LocationDBError, LocationDB.fromCSV, path)
        self.assertEqual(error.path, path)
        self.assertEqual(error.lineNumber, lineNumber)
        message = str(error)
        self.assertTrue(message.startswith(f"{path} line {lineNumber}: "), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return error


class ParseTests(CSVMixin, SynchronousTestCase):
    def test_entries(self):
        """
        Each line gives a network, a latitude, a longitude and an optional
        region; comments and blank lines are skipped; idents follow the
        order of the entries.
        """
        path = self.writeCSV(
            "# a comment\n"
            "\n"
            "10.0.0.0/8,40.71,-74.01,us-east\n"
            "   # an indented comment\n"
            "   \n"
            "2001:db8::/32, -33.87 , 151.21\n"
            "192.0.2.0/24,0,0,  eu west  \n"
            "198.51.100.0/24,1,2,\n"
        )
        db = LocationDB.fromCSV(path)
        self.assertEqual(len(db), 4)
        rows = [(l.ident, l.network, l.lat, l.lon, l.region) for l in db.locations]
        self.assertEqual(
            rows,
            [
                (0, "10.0.0.0/8", 40.71, -74.01, "us-east"),
                (1, "2001:db8::/32", -33.87, 151.21, None),
                (2, "192.0.2.0/24", 0.0, 0.0, "eu west"),
                (3, "198.51.100.0/24", 1.0, 2.0, None),
            ],
        )

    def test_regionIsTheRestOfTheLine(self):
        """
        The region is free text: commas after the third one belong to it.
        """
        db = LocationDB.fromCSV(self.writeCSV("10.0.0.0/8,1,2,Washington, DC\n"))
        self.assertEqual(db.lookup("10.1.2.3").region, "Washington, DC")

    def test_canonicalNetwork(self):
        """
        C{network} is the canonical form of the CIDR, whatever the spelling.
        """
        db = LocationDB.fromCSV(self.writeCSV("2001:DB8:0::/32,1,2\n10.0.0.0/255.0.0.0,3,4\n"))
        self.assertEqual([l.network for l in db.locations], ["2001:db8::/32", "10.0.0.0/8"])

    def test_boundaries(self):
        """
        Latitudes from -90 to 90 and longitudes from -180 to 180 are valid,
        ends included; a bare address is a host network.
        """
        db = LocationDB.fromCSV(self.writeCSV("0.0.0.0/0,-90,-180\n::/0,90,180\n192.0.2.1,1e1,-0.5\n"))
        self.assertEqual(
            [(l.network, l.lat, l.lon) for l in db.locations],
            [("0.0.0.0/0", -90.0, -180.0), ("::/0", 90.0, 180.0), ("192.0.2.1/32", 10.0, -0.5)],
        )

    def test_byteOrderMarkAndCRLF(self):
        """
        A UTF-8 byte order mark and Windows line ends, as spreadsheets save
        CSV, are accepted.
        """
        path = self.writeCSV("\ufeff# comment\r\n10.0.0.0/8,1,2,S\u00e3o Paulo\r\n")
        db = LocationDB.fromCSV(path)
        self.assertEqual(db.lookup("10.0.0.1").region, "S\u00e3o Paulo")

    def test_empty(self):
        """
        A file with only comments is an empty database that finds nothing.
        """
        db = LocationDB.fromCSV(self.writeCSV("# nothing yet\n"))
        self.assertEqual(len(db), 0)
        self.assertIsNone(db.lookup("10.0.0.1"))
        self.assertIsNone(db.lookup("::1"))

    def test_fromRows(self):
        """
        L{LocationDB.fromRows} takes (cidr, lat, lon, region) tuples with
        numbers or strings.
        """
        db = LocationDB.fromRows([("10.0.0.0/8", 1.5, "2.5", " r "), ("::1/128", -3, 4, None)])
        self.assertEqual(
            [(l.ident, l.network, l.lat, l.lon, l.region) for l in db.locations],
            [(0, "10.0.0.0/8", 1.5, 2.5, "r"), (1, "::1/128", -3.0, 4.0, None)],
        )
        self.assertIsInstance(db.locations[1].lat, float)

    def test_locationSlots(self):
        """
        L{Location} is a slotted plain object.
        """
        location = Location(1.0, 2.0, None, 0, "10.0.0.0/8")
        self.assertRaises(AttributeError, setattr, location, "city", "x")
        self.assertEqual(
            repr(location), "Location(lat=1.0, lon=2.0, region=None, ident=0, network='10.0.0.0/8')"
        )


class ErrorTests(CSVMixin, SynchronousTestCase):
    def test_latitude(self):
        """
        A latitude out of range is named with the line and the text found.
        """
        self.assertLineError(
            "# header\n10.0.0.0/8,1,2\n\n192.0.2.0/24,95,0\n",
            4,
            'expected a latitude from -90 to 90, found "95"',
        )

    def test_latitudeNotANumber(self):
        self.assertLineError("10.0.0.0/8,north,2\n", 1, 'expected a latitude from -90 to 90, found "north"')

    def test_latitudeNaN(self):
        """
        NaN is not in any range.
        """
        self.assertLineError("10.0.0.0/8,nan,2\n", 1, 'expected a latitude from -90 to 90, found "nan"')

    def test_longitude(self):
        self.assertLineError(
            "10.0.0.0/8,1,-180.5\n", 1, 'expected a longitude from -180 to 180, found "-180.5"'
        )

    def test_longitudeEmpty(self):
        self.assertLineError("10.0.0.0/8,1,\n", 1, 'expected a longitude from -180 to 180, found ""')

    def test_tooFewFields(self):
        self.assertLineError("10.0.0.0/8,1\n", 1, 'expected cidr,lat,lon[,region], found "10.0.0.0/8,1"')

    def test_notANetwork(self):
        self.assertLineError(
            "10.0.0.0/8,1,2\nexample.com,1,2\n", 2, 'expected an IPv4 or IPv6 network (CIDR), found "example.com"'
        )

    def test_prefixTooLong(self):
        self.assertLineError("10.0.0.0/33,1,2\n", 1, 'expected an IPv4 or IPv6 network (CIDR), found "10.0.0.0/33"')

    def test_hostBits(self):
        """
        A network with host bits set is an error that suggests the network
        meant.
        """
        self.assertLineError(
            "10.0.0.1/8,1,2\n", 1, 'expected a network with no host bits set (such as 10.0.0.0/8), found "10.0.0.1/8"'
        )
        self.assertLineError(
            "2001:db8::1/32,1,2\n",
            1,
            'expected a network with no host bits set (such as 2001:db8::/32), found "2001:db8::1/32"',
        )

    def test_zoneIndex(self):
        self.assertLineError("fe80::%eth0/64,1,2\n", 1, 'without a zone index, found "fe80::%eth0/64"')

    def test_mappedNetwork(self):
        """
        An IPv4-mapped IPv6 network could never match (mapped addresses look
        up as IPv4), so it must be written as IPv4.
        """
        self.assertLineError(
            "::ffff:10.0.0.0/104,1,2\n", 1, "expected an IPv4 network written as IPv4", 'found "::ffff:10.0.0.0/104"'
        )

    def test_notUTF8(self):
        self.assertLineError(
            b"10.0.0.0/8,1,2\n192.0.2.0/24,1,2,caf\xe9\n", 2, "expected UTF-8 text, found byte 0xe9 at column 21"
        )

    def test_longValueCut(self):
        """
        A long value found is cut so that the message stays readable.
        """
        error = self.assertLineError("10.0.0.0/8,1," + "9" * 200 + "\n", 1, "expected a longitude")
        self.assertLess(len(str(error)), len(error.path) + 150)
        self.assertIn('..."', str(error))

    def test_duplicate(self):
        """
        A network given twice is an error on the second line naming the
        first, however it is spelled.
        """
        self.assertLineError(
            "2001:db8::/32,1,2\n10.0.0.0/8,1,2\n# again\n2001:DB8:0::/32,3,4\n",
            4,
            'expected each network once, found "2001:db8::/32" again (first on line 1)',
        )

    def test_missingFile(self):
        """
        A file that cannot be read is an error at line 0 with the OS's
        reason, and the message names the file.
        """
        path = self.mktemp()
        error = self.assertRaises(LocationDBError, LocationDB.fromCSV, path)
        self.assertEqual((error.path, error.lineNumber), (path, 0))
        self.assertEqual(str(error), f"{path}: cannot read the file: No such file or directory")

    def test_directory(self):
        path = self.mktemp()
        os.mkdir(path)
        error = self.assertRaises(LocationDBError, LocationDB.fromCSV, path)
        self.assertEqual(str(error), f"{path}: cannot read the file: Is a directory")

    def test_rowErrors(self):
        """
        L{LocationDB.fromRows} checks rows as a file's lines, numbering them
        from 1 in a file called C{<rows>}.
        """
        error = self.assertRaises(
            LocationDBError, LocationDB.fromRows, [("10.0.0.0/8", 1, 2, None), ("192.0.2.0/24", 1, 200, None)]
        )
        self.assertEqual(str(error), "<rows> line 2: expected a longitude from -180 to 180, found 200")
        error = self.assertRaises(LocationDBError, LocationDB.fromRows, [(None, 1, 2, None)])
        self.assertEqual(str(error), "<rows> line 1: expected an IPv4 or IPv6 network (CIDR), found None")
        error = self.assertRaises(LocationDBError, LocationDB.fromRows, [("10.0.0.0/8", True, 2, None)])
        self.assertEqual(str(error), "<rows> line 1: expected a latitude from -90 to 90, found True")
        error = self.assertRaises(LocationDBError, LocationDB.fromRows, [("10.0.0.0/8", 1, 2, 7)])
        self.assertEqual(str(error), "<rows> line 1: expected a region as text, found 7")
        error = self.assertRaises(
            LocationDBError, LocationDB.fromRows, [("10.0.0.0/8", 1, 2, None), ("10.0.0.0/8", 1, 2, None)]
        )
        self.assertEqual(
            str(error), '<rows> line 2: expected each network once, found "10.0.0.0/8" again (first on line 1)'
        )


class LookupTests(SynchronousTestCase):
    def setUp(self):
        self.db = LocationDB.fromRows(
            [
                ("127.0.0.0/8", 0, 0, "eight"),
                ("127.0.3.0/24", 0, 0, "twenty-four"),
                ("127.0.3.16/28", 0, 0, "twenty-eight"),
                ("2001:db8::/32", 0, 0, "doc"),
                ("2001:db8:1::/48", 0, 0, "doc-1"),
                ("::1/128", 0, 0, "loopback6"),
                ("10.0.0.1/32", 0, 0, "host"),
            ]
        )

    def region(self, address):
        location = self.db.lookup(address)
        return None if location is None else location.region

    def test_longestPrefix(self):
        """
        The most specific network holding the address wins.
        """
        self.assertEqual(self.region("127.0.3.16"), "twenty-eight")
        self.assertEqual(self.region("127.0.3.31"), "twenty-eight")
        self.assertEqual(self.region("127.0.3.15"), "twenty-four")
        self.assertEqual(self.region("127.0.3.32"), "twenty-four")
        self.assertEqual(self.region("127.0.4.1"), "eight")
        self.assertEqual(self.region("127.255.255.255"), "eight")
        self.assertEqual(self.region("10.0.0.1"), "host")

    def test_ipv6(self):
        self.assertEqual(self.region("2001:db8:1:2::3"), "doc-1")
        self.assertEqual(self.region("2001:db8:2::3"), "doc")
        self.assertEqual(self.region("2001:DB8::"), "doc")
        self.assertEqual(self.region("::1"), "loopback6")
        self.assertEqual(self.region("0:0:0:0:0:0:0:1"), "loopback6")

    def test_ipv4Mapped(self):
        """
        An IPv4-mapped IPv6 address, as a dual-stack socket reports an IPv4
        client, looks up as IPv4.
        """
        self.assertEqual(self.region("::ffff:127.0.3.20"), "twenty-eight")
        self.assertEqual(self.region("::ffff:7f00:401"), "eight")
        self.assertEqual(self.region("::FFFF:10.0.0.1"), "host")

    def test_zoneIndex(self):
        """
        A link-local address with a zone index looks up without it.
        """
        db = LocationDB.fromRows([("fe80::/10", 0, 0, "link")])
        self.assertEqual(db.lookup("fe80::1%eth0").region, "link")
        self.assertIsNone(db.lookup("%eth0"))

    def test_noMatch(self):
        self.assertIsNone(self.db.lookup("128.0.0.1"))
        self.assertIsNone(self.db.lookup("10.0.0.2"))
        self.assertIsNone(self.db.lookup("2001:db9::1"))
        self.assertIsNone(self.db.lookup("::2"))
        self.assertIsNone(self.db.lookup("::ffff:128.0.0.1"))

    def test_notAnAddress(self):
        """
        Anything but an address finds nothing, and never raises.
        """
        for address in [
            "",
            "garbage",
            "127.0.3",
            "127.0.3.256",
            "0127.0.3.1",
            " 127.0.3.1",
            "127.0.3.1\x00",
            "127.0.3.0/24",
            "2001:db8:::1",
            "2001:db8::1\x00",
            ":",
            "%",
            "\udc80",
            b"127.0.3.1",
            None,
            2130706433,
            ["127.0.3.1"],
        ]:
            self.assertIsNone(self.db.lookup(address), address)

    def test_lookupInt(self):
        """
        L{LocationDB.lookupInt} agrees with L{LocationDB.lookup}, folds
        IPv4-mapped IPv6 to IPv4, and finds nothing for other versions or
        out-of-range values.
        """
        lookupInt = self.db.lookupInt
        self.assertEqual(lookupInt(4, int(ipaddress.IPv4Address("127.0.3.20"))).region, "twenty-eight")
        self.assertEqual(lookupInt(6, int(ipaddress.IPv6Address("2001:db8:1::5"))).region, "doc-1")
        self.assertEqual(lookupInt(6, int(ipaddress.IPv6Address("::ffff:127.0.3.1"))).region, "twenty-four")
        self.assertEqual(lookupInt(6, 1).region, "loopback6")
        self.assertIsNone(lookupInt(4, 1))
        self.assertIsNone(lookupInt(5, 1))
        self.assertIsNone(lookupInt(4, -1))
        self.assertIsNone(lookupInt(4, 2**32 + int(ipaddress.IPv4Address("10.0.0.1"))))

    def test_defaultRoutes(self):
        """
        /0 networks hold every address of their family.
        """
        db = LocationDB.fromRows([("0.0.0.0/0", 1, 0, "all4"), ("::/0", 2, 0, "all6")])
        self.assertEqual(db.lookup("1.2.3.4").region, "all4")
        self.assertEqual(db.lookup("255.255.255.255").region, "all4")
        self.assertEqual(db.lookup("::").region, "all6")
        self.assertEqual(db.lookup("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").region, "all6")
        self.assertEqual(db.lookup("::ffff:1.2.3.4").region, "all4")


def _networks(draw, version: int):
    """
    Networks of one family sharing random leading bits with an anchor, so
    that they nest and overlap often.
    """
    bits = 32 if version == 4 else 128
    anchor = draw(st.integers(0, 2**bits - 1))
    result = []
    for _ in range(draw(st.integers(0, 12))):
        length = draw(st.integers(0, bits))
        free = draw(st.integers(0, bits))
        value = anchor ^ draw(st.integers(0, 2**free - 1))
        shift = bits - length
        network = ipaddress.ip_network((value >> shift << shift, length))
        if version == 6 and length >= 96 and network.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96")):
            continue
        result.append(network)
    return anchor, result


@st.composite
def scenarios(draw):
    """
    (networks, addresses): networks of both families, and addresses as
    text, many of them inside or near the networks.
    """
    anchor4, networks4 = _networks(draw, 4)
    anchor6, networks6 = _networks(draw, 6)
    networks = list(dict.fromkeys(networks4 + networks6))
    addresses = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["near4", "near6", "mapped", "inside", "random4", "random6"]))
        if kind == "near4":
            address = ipaddress.IPv4Address(anchor4 ^ draw(st.integers(0, 2 ** draw(st.integers(0, 32)) - 1)))
        elif kind == "near6":
            address = ipaddress.IPv6Address(anchor6 ^ draw(st.integers(0, 2 ** draw(st.integers(0, 128)) - 1)))
        elif kind == "mapped":
            near = anchor4 ^ draw(st.integers(0, 2 ** draw(st.integers(0, 32)) - 1))
            address = ipaddress.IPv6Address((0xFFFF << 32) | near)
        elif kind == "inside" and networks:
            network = draw(st.sampled_from(networks))
            address = network[draw(st.integers(0, network.num_addresses - 1))]
        elif kind == "random6":
            address = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        else:
            address = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        addresses.append(address)
    return networks, addresses


def bruteForce(networks, address):
    """
    The index of the longest network holding C{address}, by C{ipaddress}.
    """
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    holding = [(n.prefixlen, i) for i, n in enumerate(networks) if n.version == address.version and address in n]
    return max(holding)[1] if holding else None


class PropertyTests(SynchronousTestCase):
    @deterministic
    @given(scenarios())
    def test_agreesWithBruteForce(self, scenario):
        """
        For any networks and addresses, L{LocationDB.lookup} and
        L{LocationDB.lookupInt} find the entry a brute-force longest-prefix
        match over C{ipaddress} objects finds.
        """
        networks, addresses = scenario
        db = LocationDB.fromRows([(str(n), 0, 0, None) for n in networks])
        self.assertEqual(len(db), len(networks))
        for address in addresses:
            expected = bruteForce(networks, address)
            found = db.lookup(str(address))
            self.assertEqual(None if found is None else found.ident, expected, str(address))
            found = db.lookupInt(address.version, int(address))
            self.assertEqual(None if found is None else found.ident, expected, str(address))
            if expected is not None:
                self.assertEqual(db.lookup(str(address)).network, str(networks[expected]))


class GreatCircleTests(SynchronousTestCase):
    def test_londonNewYork(self):
        """
        London to New York is about 5570 km.
        """
        distance = greatCircleKm(51.5074, -0.1278, 40.7128, -74.0060)
        self.assertApproximates(distance, 5570, 5570 * 0.01)
        self.assertEqual(distance, greatCircleKm(40.7128, -74.0060, 51.5074, -0.1278))

    def test_knownDistances(self):
        """
        Sydney to Tokyo is about 7820 km; one degree of a meridian about
        111.2 km.
        """
        self.assertApproximates(greatCircleKm(-33.87, 151.21, 35.68, 139.69), 7820, 78)
        self.assertApproximates(greatCircleKm(0, 0, 1, 0), 111.195, 0.01)

    def test_samePoint(self):
        self.assertEqual(greatCircleKm(51.51, -0.13, 51.51, -0.13), 0.0)
        # The same pole, whatever the longitude says.
        self.assertApproximates(greatCircleKm(90, 0, 90, 123), 0.0, 1e-9)

    def test_antipodes(self):
        """
        Antipodes are half a circumference apart, about 20015 km, and
        rounding near them does not leave asin's domain.
        """
        half = 3.141592653589793 * EARTH_RADIUS_KM
        self.assertApproximates(half, 20015, 1)
        self.assertAlmostEqual(greatCircleKm(0, 0, 0, 180), half, places=6)
        self.assertAlmostEqual(greatCircleKm(90, 0, -90, 0), half, places=6)
        self.assertAlmostEqual(greatCircleKm(35.68, 139.69, -35.68, -40.31), half, places=6)
        self.assertAlmostEqual(greatCircleKm(0, -180, 0, 180), 0.0, places=6)


class FixtureTests(SynchronousTestCase):
    """
    The shipped C{fixtures/locations.csv}.
    """

    def setUp(self):
        self.db = LocationDB.fromCSV(FIXTURE)

    def place(self, address):
        location = self.db.lookup(address)
        return (location.lat, location.lon)

    def test_size(self):
        """
        About a thousand entries, enough for lookup speed to mean something,
        in a small file.
        """
        self.assertTrue(900 <= len(self.db) <= 1200, len(self.db))
        self.assertLess(os.path.getsize(FIXTURE), 100 * 1024)

    def test_loopback(self):
        """
        Loopback addresses emulate clients in different places, with a /28
        inside a /24 inside the /8 default.
        """
        self.assertEqual(self.place("127.0.3.20"), DUBLIN)
        self.assertEqual(self.place("127.0.3.1"), LONDON)
        self.assertEqual(self.place("127.9.9.9"), ASHBURN)
        self.assertEqual(self.place("127.0.5.1"), TOKYO)
        self.assertEqual(self.place("127.0.0.1"), ASHBURN)
        self.assertEqual(self.place("::1"), ASHBURN)
        self.assertEqual(self.place("::ffff:127.0.3.20"), DUBLIN)
        self.assertEqual(self.db.lookup("127.0.3.20").region, "eu-west")
        self.assertEqual(self.db.lookup("127.0.5.1").region, "ap-northeast")
        cities = {self.place(f"127.0.{n}.1") for n in range(0, 11)}
        self.assertEqual(len(cities), 11)

    def test_documentationAndPrivate(self):
        """
        The documentation and private ranges are in distinct places, and the
        .0 of each documentation /24 (as EDNS Client Subnet sends) stays with
        its /24.
        """
        addresses = ["192.0.2.0", "198.51.100.0", "203.0.113.0", "10.0.0.1", "172.16.0.1", "192.168.0.1"]
        places = [self.place(a) for a in addresses]
        self.assertEqual(len(set(places)), len(places))
        for prefix in ["192.0.2", "198.51.100", "203.0.113"]:
            network = self.db.lookup(prefix + ".0").network
            self.assertEqual(network, prefix + ".0/24")
            base = self.place(prefix + ".0")
            self.assertTrue(any(self.place(f"{prefix}.{n}") != base for n in range(128, 256)), prefix)

    def test_ipv6(self):
        self.assertEqual(self.db.lookup("2001:db8::1").network, "2001:db8::/32")
        self.assertEqual(self.db.lookup("2001:db8:1::1").network, "2001:db8:1::/48")
        self.assertEqual(self.db.lookup("fd12::1").network, "fd00::/8")
        self.assertNotEqual(self.place("2001:db8:1::1"), self.place("2001:db8:3::1"))
        self.assertIsNone(self.db.lookup("2001:db9::1"))
