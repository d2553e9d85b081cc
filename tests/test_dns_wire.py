"""
Tests for L{gslb_twisted.dns.wire}: the fast path gives byte for byte the
reply the slow (dnslib) path gives, and declines everything it does not
handle; the scanner and the client subnet parser read what they should.
"""

import struct
import tomllib
import zlib

import dns.edns
import dns.flags
import dns.message
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.dns.authority import Authority
from gslb_twisted.dns.wire import (
    MalformedMessage,
    answerFast,
    answerSection,
    fastKey,
    parseClientSubnet,
    scanMessage,
    wireName,
)

CLIENT = ("192.0.2.200", 5353)

TOPOLOGY = (
    """
[appliance]
name = "test"
ip = "192.0.2.53"

[[zone]]
name = "example.test"

[[site]]
name = "east"
ip = "10.0.0.1"

[[service]]
name = "a1"
site = "east"
ip = "192.0.2.1"

[[service]]
name = "a2"
site = "east"
ip = "192.0.2.2"
weight = 3

[[service]]
name = "a3"
site = "east"
ip = "192.0.2.3"

[[service]]
name = "six1"
site = "east"
ip = "2001:db8::1"

[[service]]
name = "six2"
site = "east"
ip = "2001:db8::2"
weight = 2

"""
    + "".join(f'[[service]]\nname = "big{i}"\nsite = "east"\nip = "2001:db8:2::{i:x}"\n\n' for i in range(1, 21))
    + """
[[vserver]]
name = "www"
domains = ["www.example.test", "Other-Name.example.test"]
ttl = 5
services = ["a1", "a2", "a3", "six1", "six2"]

[[vserver]]
name = "pair"
domains = ["pair.example.test"]
ttl = 60
answers = 2
services = ["a1", { name = "a2", weight = 2 }, "a3", "six1", "six2"]

[[vserver]]
name = "only4"
domains = ["only4.example.test"]
services = ["a1"]

[[vserver]]
name = "hash"
domains = ["hash.example.test"]
lb_method = "SOURCEIPHASH"
netmask = "255.255.255.0"
v6_netmask_len = 48
services = ["a1", "a2", "a3", "six1", "six2"]

[[vserver]]
name = "big"
domains = ["big.example.test"]
answers = 20
services = ["""
    + ", ".join(f'"big{i}"' for i in range(1, 21))
    + "]\n"
)

NAMES = ["www.example.test", "other-name.example.test", "pair.example.test", "only4.example.test", "big.example.test",
         "hash.example.test"]


@st.composite
def subnets(draw):
    """A well-formed client subnet option (RFC 7871 6): the prefix's octets, no bits past it."""
    import ipaddress

    if draw(st.booleans()):
        prefix = draw(st.integers(min_value=0, max_value=32))
        network = ipaddress.ip_network((draw(st.integers(0, 2**32 - 1)), 32)).supernet(new_prefix=prefix)
    else:
        prefix = draw(st.integers(min_value=0, max_value=128))
        network = ipaddress.ip_network((draw(st.integers(0, 2**128 - 1)), 128)).supernet(new_prefix=prefix)
    return dns.edns.ECSOption(str(network.network_address), prefix)


class ByClient:
    """
    A chooser whose answer depends on the client (as SOURCEIPHASH's does):
    the client address, hashed, picks one of the vserver's services.
    """

    tailored = True

    def __init__(self, indexOf, services):
        self.indexOf = indexOf
        self.services = services

    def choose(self, rdtype, client):
        return self.indexOf((self.services[zlib.crc32(client.encode()) % len(self.services)],))


def makeAuthority(fastPath):
    authority = Authority.fromTopology(parseTopology(tomllib.loads(TOPOLOGY), "test.toml"), fastPath=fastPath)
    books = authority.vservers["hash"].books
    authority.setChooser("hash", 1, ByClient(books[1].indexOf, ("a1", "a2", "a3")))
    authority.setChooser("hash", 28, ByClient(books[28].indexOf, ("six1", "six2")))
    return authority


@st.composite
def queries(draw):
    """A query the fast path may handle (or must decline only for size or family)."""
    name = draw(st.sampled_from(NAMES))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    rdtype = draw(st.sampled_from(["A", "AAAA"]))
    flags = draw(st.sampled_from([0, dns.flags.RD, dns.flags.RD | dns.flags.CD, dns.flags.AD, dns.flags.CD]))
    edns = draw(st.booleans())
    kwargs = {"id": draw(st.integers(min_value=0, max_value=65535))}
    if edns:
        kwargs.update(
            use_edns=0,
            payload=draw(st.sampled_from([0, 512, 600, 700, 1232, 1400, 4096, 65535])),
            ednsflags=draw(st.sampled_from([0, dns.flags.DO, 0x4000, dns.flags.DO | 0x0001])),
        )
        if draw(st.booleans()):
            kwargs["options"] = [draw(subnets())]
    else:
        kwargs.update(use_edns=False)
    message = dns.message.make_query(cased, rdtype, **kwargs)
    message.flags = flags
    return message.to_wire(), draw(st.booleans())


class EquivalenceTests(SynchronousTestCase):
    @settings(derandomize=True, deadline=None, database=None, max_examples=300)
    @given(st.lists(queries(), min_size=1, max_size=12))
    def test_fastEqualsSlow(self, sequence):
        """
        Two authorities in the same rotation state, one answering with the
        fast path, one with dnslib only, reply with the same bytes; and the
        fast path did answer every query it can.
        """
        fast = makeAuthority(fastPath=True)
        slow = makeAuthority(fastPath=False)
        for wire, tcp in sequence:
            before = fast.fastAnswers
            fastReply = fast.respond(wire, CLIENT, tcp)
            slowReply = slow.respond(wire, CLIENT, tcp)
            self.assertEqual(fastReply, slowReply)
            question = wire[12 : 12 + len(wireName(dns.message.from_wire(wire).question[0].name.to_text())) + 4]
            eligible = question.lower() in fast.fastTable
            truncated = bool(dns.message.from_wire(slowReply).flags & dns.flags.TC)
            self.assertEqual(fast.fastAnswers - before, int(eligible and not truncated))

    def test_everyRotationPosition(self):
        """A full cycle of every plan, with and without EDNS, matches dnslib."""
        fast = makeAuthority(fastPath=True)
        slow = makeAuthority(fastPath=False)
        for name in NAMES:
            for rdtype in ("A", "AAAA"):
                for edns in (False, 0):
                    for _ in range(8):
                        wire = dns.message.make_query(name, rdtype, use_edns=edns, payload=1232).to_wire()
                        self.assertEqual(fast.respond(wire, CLIENT, True), slow.respond(wire, CLIENT, True))
        # Ten (name, type) pairs have answers, asked 8 times with and without EDNS.
        self.assertEqual(fast.fastAnswers, 10 * 2 * 8)

    def test_clientSubnetTextAsSlowPath(self):
        """
        The fast path hands choosers the subnet as the slow path writes it,
        embedded IPv4 forms included (choosers key on that text).
        """
        seen = {True: [], False: []}
        for fastPath in (True, False):
            authority = makeAuthority(fastPath)
            books = authority.vservers["hash"].books
            chooser = ByClient(books[1].indexOf, ("a1",))
            chooser.choose = lambda rdtype, client, fastPath=fastPath, book=books[1]: (
                seen[fastPath].append(client) or book.indexOf(("a1",)))
            authority.setChooser("hash", 1, chooser)
            for address, prefix in (("::ffff:192.0.2.0", 120), ("::10.0.0.0", 120), ("2001:db8::", 32),
                                    ("2001:db8:0:1::", 64), ("198.51.100.0", 24), ("0.0.0.0", 0)):
                wire = dns.message.make_query("hash.example.test", "A", use_edns=0,
                                              options=[dns.edns.ECSOption(address, prefix)]).to_wire()
                authority.respond(wire, CLIENT, False)
        self.assertEqual(seen[True], seen[False])
        self.assertEqual(seen[True][:2], ["::ffff:c000:200", "::a00:0"])

    def test_template(self):
        """Answer records point at the question name and carry TTL and address."""
        self.assertEqual(
            answerSection(1, 300, ["192.0.2.1"]),
            b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01",
        )
        self.assertEqual(len(answerSection(28, 5, ["2001:db8::1", "2001:db8::2"])), 2 * 28)
        self.assertRaises(ValueError, answerSection, 1, 5, ["2001:db8::1"])

    def test_keys(self):
        self.assertEqual(wireName("WWW.Example.test."), b"\x03www\x07example\x04test\x00")
        self.assertEqual(wireName("."), b"\x00")
        self.assertEqual(fastKey("www.example.test", 28), b"\x03www\x07example\x04test\x00\x00\x1c\x00\x01")


class DeclineTests(SynchronousTestCase):
    """Everything but the plain query goes to the slow path."""

    def setUp(self):
        self.authority = makeAuthority(fastPath=True)
        self.table = self.authority.fastTable

    def fast(self, wire, tcp=False):
        return answerFast(self.table, wire, CLIENT[0], tcp)

    def plain(self, **kwargs):
        kwargs.setdefault("use_edns", 0)
        return dns.message.make_query("www.example.test", kwargs.pop("rdtype", "A"), **kwargs).to_wire()

    def test_plainAnswered(self):
        self.assertIsNotNone(self.fast(self.plain()))
        self.assertIsNotNone(self.fast(self.plain(use_edns=False)))
        self.assertIsNotNone(self.fast(self.plain(rdtype="AAAA", want_dnssec=True)))

    def test_otherTypes(self):
        for rdtype in ("MX", "TXT", "ANY", "SOA", "NS"):
            self.assertIsNone(self.fast(self.plain(rdtype=rdtype)))

    def test_familyAbsent(self):
        wire = dns.message.make_query("only4.example.test", "AAAA").to_wire()
        self.assertIsNone(self.fast(wire))

    def test_unknownNames(self):
        for name in ("nothing.example.test", "example.test", "x.www.example.test", "www.example.com"):
            self.assertIsNone(self.fast(dns.message.make_query(name, "A").to_wire()))

    def test_clientSubnetAnswered(self):
        """A query with one well-formed client subnet option stays on the fast path."""
        for option in (dns.edns.ECSOption("192.0.2.0", 24), dns.edns.ECSOption("2001:db8:7::", 48),
                       dns.edns.ECSOption("0.0.0.0", 0)):
            self.assertIsNotNone(self.fast(self.plain(options=[option])), option)

    def test_clientSubnetMalformedOrMixed(self):
        """A malformed subnet (FORMERR is the slow path's), two options, or another option: declined."""
        ecs = self.plain(options=[dns.edns.ECSOption("192.0.2.0", 24)])
        body = ecs[:-7]  # up to the option's family
        for tail in (
            b"\x00\x01\x18\x08\xc0\x00\x02",  # scope prefix set in a query
            b"\x00\x03\x18\x00\xc0\x00\x02",  # family 3
            b"\x00\x01\x17\x00\xc0\x00\x03",  # a bit past the /23
            b"\x00\x01\x28\x00\xc0\x00\x02",  # /40 of an IPv4 address
        ):
            self.assertIsNone(self.fast(body + tail), tail)
        self.assertIsNone(self.fast(self.plain(options=[dns.edns.ECSOption("192.0.2.0", 24),
                                                         dns.edns.GenericOption(65001, b"")])))
        self.assertIsNone(self.fast(self.plain(options=[dns.edns.ECSOption("192.0.2.0", 24)] * 2)))

    def test_clientSubnetScope(self):
        """The subnet is echoed with scope = its prefix when the answer depends on the client, else 0."""
        for name, scope in (("hash.example.test", 24), ("www.example.test", 0)):
            wire = dns.message.make_query(name, "A", use_edns=0, options=[dns.edns.ECSOption("198.51.100.0", 24)])
            reply = dns.message.from_wire(self.fast(wire.to_wire()))
            (echoed,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
            self.assertEqual((echoed.address, echoed.srclen, echoed.scopelen), ("198.51.100.0", 24, scope), name)

    def test_anyOption(self):
        self.assertIsNone(self.fast(self.plain(options=[dns.edns.GenericOption(65001, b"")])))

    def test_ednsVersion(self):
        self.assertIsNone(self.fast(self.plain(use_edns=1)))

    def test_headerShapes(self):
        wire = self.plain(use_edns=False)
        question = wire[12:]
        for flags, counts, tail in [
            (0x8100, (1, 0, 0, 0), b""),  # a response
            (0x2100, (1, 0, 0, 0), b""),  # opcode UPDATE
            (0x0100, (2, 0, 0, 0), question),  # two questions
            (0x0100, (0, 0, 0, 0), b""),  # none
            (0x0100, (1, 1, 0, 0), b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00"),
            (0x0100, (1, 0, 1, 0), b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00"),
            (0x0100, (1, 0, 0, 2), b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2),
        ]:
            data = struct.pack("!HHHHHH", 1, flags, *counts) + question + tail
            self.assertIsNone(self.fast(data), (flags, counts))

    def test_otherClass(self):
        wire = dns.message.make_query("www.example.test", "A", rdclass="CH").to_wire()
        self.assertIsNone(self.fast(wire))

    def test_trailingByte(self):
        self.assertIsNone(self.fast(self.plain(use_edns=False) + b"\x00"))

    def test_additionalNotOpt(self):
        wire = bytearray(self.plain())
        wire[-10:-8] = b"\x00\x01"  # the additional record is now an A record
        self.assertIsNone(self.fast(bytes(wire)))

    def test_optNotRoot(self):
        wire = self.plain(use_edns=False)
        wire = wire[:11] + b"\x01" + wire[12:] + b"\x01a\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        self.assertIsNone(self.fast(wire))

    def test_tooShort(self):
        for length in range(17):
            self.assertIsNone(self.fast(self.plain(use_edns=False)[:length]))

    def test_truncation(self):
        """20 AAAA records fit neither 512 bytes nor a 600-byte payload, but TCP."""
        big = "big.example.test"
        for wire in (
            dns.message.make_query(big, "AAAA", use_edns=False).to_wire(),
            dns.message.make_query(big, "AAAA", use_edns=0, payload=512).to_wire(),
            dns.message.make_query(big, "AAAA", use_edns=0, payload=600).to_wire(),
        ):
            self.assertIsNone(self.fast(wire))
            self.assertIsNotNone(self.fast(wire, tcp=True))
        self.assertIsNotNone(self.fast(dns.message.make_query(big, "AAAA", use_edns=0, payload=1232).to_wire()))

    def test_declineKeepsRotation(self):
        """A declined query does not move the rotation (the slow path moves it once)."""
        big = dns.message.make_query("big.example.test", "AAAA", use_edns=False).to_wire()
        self.assertIsNone(self.fast(big))
        reply = dns.message.from_wire(self.authority.respond(big, CLIENT, True))
        self.assertEqual(reply.answer[0][0].address, "2001:db8:2::1")


class ScannerTests(SynchronousTestCase):
    def test_question(self):
        message = scanMessage(dns.message.make_query("WwW.example.test", "AAAA", use_edns=0, payload=900).to_wire())
        self.assertEqual(message.question.labels, (b"WwW", b"example", b"test"))
        self.assertEqual(message.question.key, wireName("www.example.test"))
        self.assertEqual((message.question.qtype, message.question.qclass), (28, 1))
        self.assertEqual((message.opt.payload, message.opt.version, message.opt.options), (900, 0, ()))

    def test_compressedRecordNames(self):
        """Records after the question may point back at it."""
        wire = dns.message.make_query("www.example.test", "A").to_wire()
        data = (
            struct.pack("!HHHHHH", 1, 0, 1, 1, 0, 0)
            + wire[12:]
            + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04"
        )
        self.assertIsNone(scanMessage(data).opt)

    def test_forwardPointer(self):
        wire = dns.message.make_query("www.example.test", "A").to_wire()
        data = struct.pack("!HHHHHH", 1, 0, 1, 1, 0, 0) + wire[12:] + b"\xc0\x40\x00\x01\x00\x01\x00\x00\x00\x05\x00\x00"
        self.assertRaises(MalformedMessage, scanMessage, data)

    def test_nonUTF8Label(self):
        """Any octet is allowed in a label (dnslib's parser refuses these)."""
        data = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x02\xff\xfe\x07example\x04test\x00\x00\x01\x00\x01"
        self.assertEqual(scanMessage(data).question.labels[0], b"\xff\xfe")

    def test_reservedLabelType(self):
        data = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01"
        self.assertRaises(MalformedMessage, scanMessage, data)

    def test_maximumName(self):
        """255 bytes is a name; 257 is not."""
        label = b"\x3f" + b"a" * 63
        longest = label * 3 + b"\x3d" + b"a" * 61 + b"\x00"
        self.assertEqual(len(longest), 255)
        head = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0)
        scanMessage(head + longest + b"\x00\x01\x00\x01")
        tooLong = label * 4 + b"\x00"
        self.assertRaises(MalformedMessage, scanMessage, head + tooLong + b"\x00\x01\x00\x01")


class ClientSubnetTests(SynchronousTestCase):
    def test_ipv4(self):
        subnet = parseClientSubnet(b"\x00\x01\x18\x00\xcb\x00\x71")
        self.assertEqual((subnet.family, subnet.sourcePrefix, subnet.network), (1, 24, "203.0.113.0"))
        self.assertEqual(subnet.replyOption(), b"\x00\x01\x18\x00\xcb\x00\x71")

    def test_ipv6(self):
        subnet = parseClientSubnet(b"\x00\x02\x38\x00" + bytes.fromhex("20010db8000102"))
        self.assertEqual(subnet.network, "2001:db8:1:200::")

    def test_zeroPrefix(self):
        subnet = parseClientSubnet(b"\x00\x01\x00\x00")
        self.assertEqual((subnet.sourcePrefix, subnet.network), (0, "0.0.0.0"))

    def test_malformed(self):
        for data in (
            b"",
            b"\x00\x01\x18",
            b"\x00\x00\x08\x00\x0a",
            b"\x00\x01\x21\x00" + bytes(5),
            b"\x00\x01\x18\x00\xcb\x00",
            b"\x00\x01\x17\x00\xcb\x00\x71",
            b"\x00\x01\x18\x10\xcb\x00\x70",
        ):
            self.assertRaises(MalformedMessage, parseClientSubnet, data)
