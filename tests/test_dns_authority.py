"""
Tests for L{gslb_twisted.dns.authority.Authority}: every rule of SPEC
section 4, as queries in and replies out, built and read with dnspython.
"""

import struct
import tomllib

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.dns.authority import Authority

CLIENT = ("198.51.100.7", 53000)

BIG_SERVICES = "".join(
    f'[[service]]\nname = "big{i}"\nsite = "east"\nip = "2001:db8:2::{i:x}"\n\n' for i in range(1, 21)
)

TOPOLOGY = (
    """
[appliance]
name = "test"
ip = "192.0.2.53"

[[zone]]
name = "example.test"
ns = ["ns1.example.test", "ns.elsewhere.net"]
soa_minimum = 30
soa_serial = 2024010101
ttl = 600

[[zone]]
name = "second.test"
ns = ["ns1.example.test"]
soa_minimum = 900
ttl = 300

[[site]]
name = "east"
ip = "10.0.0.1"

[[site]]
name = "west"
ip = "10.0.0.2"

[[service]]
name = "web1"
site = "east"
ip = "192.0.2.1"

[[service]]
name = "web2"
site = "west"
ip = "192.0.2.2"

[[service]]
name = "web3"
site = "west"
ip = "192.0.2.3"
weight = 3

[[service]]
name = "web6a"
site = "east"
ip = "2001:db8::a"

[[service]]
name = "web6b"
site = "west"
ip = "2001:db8::b"

"""
    + BIG_SERVICES
    + """
[[vserver]]
name = "www"
domains = ["www.example.test", "alias.example.test"]
lb_method = "ROUNDROBIN"
ttl = 7
services = [{ name = "web1", weight = 2 }, "web2", { name = "web3", weight = 1 }, "web6a", "web6b"]

[[vserver]]
name = "multi"
domains = ["multi.example.test"]
lb_method = "ROUNDROBIN"
answers = 2
services = ["web1", "web2", { name = "web3", weight = 1 }]

[[vserver]]
name = "v4only"
domains = ["v4.example.test"]
services = ["web1"]

[[vserver]]
name = "deep"
domains = ["a.b.deep.example.test"]
services = ["web2"]

[[vserver]]
name = "big"
domains = ["big.example.test"]
answers = 20
services = ["""
    + ", ".join(f'"big{i}"' for i in range(1, 21))
    + """]

[[vserver]]
name = "apex"
domains = ["second.test"]
services = ["web3"]
"""
)


def makeTopology():
    return parseTopology(tomllib.loads(TOPOLOGY), "test.toml")


def query(name, rdtype="A", **kwargs):
    """A query message (no EDNS unless asked), fixed id."""
    kwargs.setdefault("use_edns", False)
    kwargs.setdefault("id", 4242)
    return dns.message.make_query(name, rdtype, **kwargs)


def header(ident=4242, flags=0x0100, qdcount=1, ancount=0, nscount=0, arcount=0):
    return struct.pack("!HHHHHH", ident, flags, qdcount, ancount, nscount, arcount)


def questionBytes(name=b"\x03www\x07example\x04test\x00", rdtype=1, rdclass=1):
    return name + struct.pack("!HH", rdtype, rdclass)


def optRecord(payload=1232, version=0, flags=0, options=b"", name=b"\x00"):
    return name + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(options)) + options


def option(code, data):
    return struct.pack("!HH", code, len(data)) + data


def ecs(family, source, address, scope=0):
    return option(8, struct.pack("!HBB", family, source, scope) + address)


class AuthorityTestsMixin:
    """Helpers: an authority and a way to ask it."""

    fastPath = True

    def setUp(self):
        self.authority = Authority.fromTopology(makeTopology(), fastPath=self.fastPath)

    def ask(self, message, tcp=False, client=CLIENT):
        wire = message if isinstance(message, bytes) else message.to_wire()
        reply = self.authority.respond(wire, client, tcp)
        self.assertIsNotNone(reply)
        return dns.message.from_wire(reply)

    def addresses(self, reply, rdtype="A"):
        found = []
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                found.extend(rdata.address for rdata in rrset)
        return found

    def assertNegative(self, reply, rcode, apex="example.test.", ttl=30):
        """An authoritative negative answer: no records, the SOA alone in authority."""
        self.assertEqual(reply.rcode(), rcode)
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertEqual(reply.answer, [])
        self.assertEqual(len(reply.authority), 1)
        soa = reply.authority[0]
        self.assertEqual(soa.rdtype, dns.rdatatype.SOA)
        self.assertEqual(soa.name.to_text(), apex)
        self.assertEqual(soa.ttl, ttl)


class AddressAnswerTests(AuthorityTestsMixin, SynchronousTestCase):
    def test_answer(self):
        """An A query for a vserver domain: its address, AA, the vserver's TTL."""
        reply = self.ask(query("www.example.test"))
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertTrue(reply.flags & dns.flags.QR)
        self.assertEqual(reply.id, 4242)
        self.assertEqual(self.addresses(reply), ["192.0.2.1"])
        self.assertEqual(reply.answer[0].ttl, 7)
        self.assertEqual(reply.authority, [])
        self.assertEqual(reply.additional, [])

    def test_aaaaUsesIPv6Services(self):
        replies = [self.ask(query("www.example.test", "AAAA")) for _ in range(4)]
        self.assertEqual(
            [self.addresses(r, "AAAA") for r in replies],
            [["2001:db8::a"], ["2001:db8::b"], ["2001:db8::a"], ["2001:db8::b"]],
        )
        self.assertEqual(replies[0].answer[0].ttl, 7)

    def test_weightedRotation(self):
        """Binding weights 2,1,1 (the binding overrides web3's own 3): A,B,A,C."""
        seen = [self.addresses(self.ask(query("www.example.test")))[0] for _ in range(8)]
        self.assertEqual(seen, ["192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.3"] * 2)

    def test_familiesRotateApart(self):
        """AAAA queries do not move the A rotation."""
        self.ask(query("www.example.test"))
        self.ask(query("www.example.test", "AAAA"))
        self.assertEqual(self.addresses(self.ask(query("www.example.test"))), ["192.0.2.2"])

    def test_domainsShareRotation(self):
        """Every domain of a vserver draws from the same rotation."""
        first = self.addresses(self.ask(query("www.example.test")))
        second = self.addresses(self.ask(query("alias.example.test")))
        self.assertEqual((first, second), (["192.0.2.1"], ["192.0.2.2"]))

    def test_answersPerReply(self):
        """C{answers = 2}: two distinct addresses, the start rotating."""
        seen = [self.addresses(self.ask(query("multi.example.test"))) for _ in range(4)]
        self.assertEqual(
            seen,
            [
                ["192.0.2.1", "192.0.2.2"],
                ["192.0.2.2", "192.0.2.3"],
                ["192.0.2.3", "192.0.2.1"],
                ["192.0.2.1", "192.0.2.2"],
            ],
        )

    def test_fewerAddressesThanAnswers(self):
        reply = self.ask(query("v4.example.test"))
        self.assertEqual(self.addresses(reply), ["192.0.2.1"])

    def test_caseInsensitive(self):
        """A mixed-case name matches; the question comes back as sent."""
        for edns in (False, 0):
            reply = self.authority.respond(query("WwW.ExAmple.TEST", use_edns=edns).to_wire(), CLIENT, False)
            self.assertIn(b"\x03WwW\x07ExAmple\x04TEST\x00", reply)
            parsed = dns.message.from_wire(reply)
            self.assertEqual(parsed.question[0].name.to_text(), "WwW.ExAmple.TEST.")
            self.assertEqual(len(self.addresses(parsed)), 1)

    def test_apexVServer(self):
        """A vserver at a zone apex answers A; SOA is still there."""
        self.assertEqual(self.addresses(self.ask(query("second.test"))), ["192.0.2.3"])
        reply = self.ask(query("second.test", "SOA"))
        self.assertEqual(reply.answer[0].rdtype, dns.rdatatype.SOA)

    def test_flags(self):
        """RD and CD copied; AD, Z and RA clear in the reply."""
        for fastPathQuery in (True, False):
            message = query("www.example.test", use_edns=0)
            if not fastPathQuery:
                message.use_edns(0, options=[dns.edns.GenericOption(65001, b"x")])
            message.flags = dns.flags.RD | dns.flags.CD | dns.flags.AD | 0x0040
            wire = self.authority.respond(message.to_wire(), CLIENT, False)
            flags = struct.unpack("!H", wire[2:4])[0]
            self.assertEqual(flags, 0x8000 | 0x0400 | 0x0100 | 0x0010)
            message.flags = 0
            wire = self.authority.respond(message.to_wire(), CLIENT, False)
            self.assertEqual(struct.unpack("!H", wire[2:4])[0], 0x8400)


class NegativeAnswerTests(AuthorityTestsMixin, SynchronousTestCase):
    def test_nxdomain(self):
        reply = self.ask(query("nothing.example.test"))
        self.assertNegative(reply, dns.rcode.NXDOMAIN)

    def test_nxdomainBelowVServer(self):
        self.assertNegative(self.ask(query("x.www.example.test")), dns.rcode.NXDOMAIN)

    def test_negativeTTL(self):
        """The SOA TTL is min(SOA TTL, MINIMUM): here the zone TTL, 300 < 900."""
        reply = self.ask(query("nothing.second.test"))
        self.assertNegative(reply, dns.rcode.NXDOMAIN, apex="second.test.", ttl=300)

    def test_nodataOtherType(self):
        reply = self.ask(query("www.example.test", "MX"))
        self.assertNegative(reply, dns.rcode.NOERROR)

    def test_nodataFamilyAbsent(self):
        reply = self.ask(query("v4.example.test", "AAAA"))
        self.assertNegative(reply, dns.rcode.NOERROR)

    def test_emptyNonTerminal(self):
        """Names between a vserver domain and its apex exist, with no records."""
        for name in ("b.deep.example.test", "deep.example.test"):
            self.assertNegative(self.ask(query(name)), dns.rcode.NOERROR)
        self.assertNegative(self.ask(query("c.deep.example.test")), dns.rcode.NXDOMAIN)

    def test_apexAddressNodata(self):
        self.assertNegative(self.ask(query("example.test")), dns.rcode.NOERROR)

    def test_soaElsewhereNodata(self):
        self.assertNegative(self.ask(query("www.example.test", "SOA")), dns.rcode.NOERROR)

    def test_refused(self):
        """Outside every zone: REFUSED, not authoritative, question echoed."""
        for name in ("www.example.com", "test", "xexample.test", "."):
            reply = self.ask(query(name))
            self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
            self.assertFalse(reply.flags & dns.flags.AA)
            self.assertEqual(reply.question[0].name.to_text(), name if name == "." else name + ".")
            self.assertEqual(reply.answer + reply.authority, [])

    def test_otherClassRefused(self):
        reply = self.ask(query("www.example.test", "TXT", rdclass="CH"))
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)

    def test_zoneTransferRefused(self):
        reply = self.ask(query("example.test", "AXFR"))
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)


class ApexTests(AuthorityTestsMixin, SynchronousTestCase):
    def test_soa(self):
        reply = self.ask(query("example.test", "SOA"))
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertTrue(reply.flags & dns.flags.AA)
        (soa,) = reply.answer
        self.assertEqual(soa.ttl, 600)
        rdata = soa[0]
        self.assertEqual(rdata.mname.to_text(), "ns1.example.test.")
        self.assertEqual(rdata.rname.to_text(), "hostmaster.example.test.")
        self.assertEqual(rdata.serial, 2024010101)
        self.assertEqual(rdata.minimum, 30)

    def test_nsWithGlue(self):
        """NS at the apex; glue only for the name server inside the zone."""
        reply = self.ask(query("example.test", "NS"))
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertTrue(reply.flags & dns.flags.AA)
        (ns,) = reply.answer
        self.assertEqual(sorted(r.target.to_text() for r in ns), ["ns.elsewhere.net.", "ns1.example.test."])
        self.assertEqual(ns.ttl, 600)
        (glue,) = reply.additional
        self.assertEqual(glue.name.to_text(), "ns1.example.test.")
        self.assertEqual([r.address for r in glue], ["192.0.2.53"])

    def test_nsOfOtherZoneGlue(self):
        """A zone served by a name server in another of our zones gets its glue too."""
        reply = self.ask(query("second.test", "NS"))
        self.assertEqual([r.address for r in reply.additional[0]], ["192.0.2.53"])

    def test_nameServerAddress(self):
        reply = self.ask(query("ns1.example.test"))
        self.assertEqual(self.addresses(reply), ["192.0.2.53"])
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertNegative(self.ask(query("ns1.example.test", "AAAA")), dns.rcode.NOERROR)

    def test_any(self):
        """ANY: every record the name has (here SOA and NS)."""
        reply = self.ask(query("example.test", "ANY"))
        self.assertEqual(
            sorted(dns.rdatatype.to_text(r.rdtype) for r in reply.answer), ["NS", "SOA"]
        )
        reply = self.ask(query("www.example.test", "ANY"))
        self.assertEqual(sorted(dns.rdatatype.to_text(r.rdtype) for r in reply.answer), ["A", "AAAA"])


class MalformedTests(AuthorityTestsMixin, SynchronousTestCase):
    def assertFormErr(self, wire, ident=4242, question=False):
        reply = self.ask(wire)
        self.assertEqual(reply.rcode(), dns.rcode.FORMERR)
        self.assertEqual(reply.id, ident)
        self.assertEqual(bool(reply.question), question)
        return reply

    def test_shortDropped(self):
        for length in range(12):
            self.assertIsNone(self.authority.respond(header()[:length], CLIENT, False))

    def test_responseDropped(self):
        wire = bytearray(query("www.example.test").to_wire())
        wire[2] |= 0x80
        self.assertIsNone(self.authority.respond(bytes(wire), CLIENT, False))

    def test_garbageAfterHeader(self):
        self.assertFormErr(header(ident=77) + b"\x05ab", ident=77)

    def test_headerOnly(self):
        self.assertFormErr(header())

    def test_questionCounts(self):
        self.assertFormErr(header(qdcount=0))
        self.assertFormErr(header(qdcount=2) + questionBytes() * 2)

    def test_trailingBytes(self):
        self.assertFormErr(header() + questionBytes() + b"\x00", question=True)

    def test_compressedQuestion(self):
        """A pointer in the question can only point into the header."""
        self.assertFormErr(header() + b"\x03www\xc0\x00" + b"\x00\x01\x00\x01")

    def test_longName(self):
        name = b"\x3f" + b"a" * 63
        self.assertFormErr(header() + questionBytes(name * 4 + b"\x00"))

    def test_twoOpts(self):
        wire = header(arcount=2) + questionBytes() + optRecord() + optRecord()
        self.assertFormErr(wire, question=True)

    def test_optInAnswerSection(self):
        wire = header(ancount=1) + questionBytes() + optRecord()
        self.assertFormErr(wire, question=True)

    def test_optNotRoot(self):
        wire = header(arcount=1) + questionBytes() + optRecord(name=b"\x01a\x00")
        self.assertFormErr(wire, question=True)

    def test_optionPastRecord(self):
        wire = header(arcount=1) + questionBytes() + optRecord(options=b"\x00\x0a\x00\x08abcd")
        self.assertFormErr(wire, question=True)

    def test_optTypeQuestion(self):
        reply = self.assertFormErr(header() + questionBytes(rdtype=41), question=True)
        self.assertEqual(reply.answer, [])

    def test_notImplemented(self):
        """NOTIFY, UPDATE, IQUERY, unassigned: NOTIMP, the opcode echoed."""
        for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.IQUERY, 15):
            message = query("example.test", "SOA", use_edns=0)
            message.flags = dns.opcode.to_flags(opcode)
            wire = self.authority.respond(message.to_wire(), CLIENT, False)
            ident, flags = struct.unpack("!HH", wire[:4])
            self.assertEqual(ident, 4242)
            self.assertEqual(flags & 0x000F, dns.rcode.NOTIMP)
            self.assertEqual((flags >> 11) & 0xF, opcode)
            self.assertTrue(flags & 0x8000)

    def test_notImplementedGarbage(self):
        wire = self.authority.respond(header(flags=0x2000) + b"\xff\xff", CLIENT, False)
        self.assertEqual(struct.unpack("!HHHHHH", wire), (4242, 0xA004, 0, 0, 0, 0))


class EDNSTests(AuthorityTestsMixin, SynchronousTestCase):
    def test_optEchoed(self):
        for name, rdtype in (("www.example.test", "A"), ("nothing.example.test", "A"), ("example.com", "A")):
            reply = self.ask(query(name, rdtype, use_edns=0, payload=4096))
            self.assertEqual(reply.edns, 0)
            self.assertEqual(reply.payload, 1232)
            self.assertEqual(reply.ednsflags, 0)

    def test_noOptWithoutEdns(self):
        self.assertEqual(self.ask(query("www.example.test")).edns, -1)

    def test_badvers(self):
        reply = self.ask(query("www.example.test", use_edns=1))
        self.assertEqual(reply.rcode(), dns.rcode.BADVERS)
        self.assertEqual(reply.edns, 0)
        self.assertEqual(reply.answer, [])
        self.assertEqual(reply.question[0].name.to_text(), "www.example.test.")

    def test_badversWithOption(self):
        reply = self.ask(query("example.test", "SOA", use_edns=1, options=[dns.edns.GenericOption(100, b"")]))
        self.assertEqual(reply.rcode(), dns.rcode.BADVERS)
        self.assertEqual(reply.options, ())

    def test_doCopied(self):
        reply = self.ask(query("www.example.test", use_edns=0, want_dnssec=True))
        self.assertEqual(reply.ednsflags, dns.flags.DO)
        reply = self.ask(query("nothing.example.test", use_edns=0, want_dnssec=True))
        self.assertEqual(reply.ednsflags, dns.flags.DO)

    def test_zBitsCleared(self):
        """Unknown EDNS flags are not echoed (RFC 6891 6.1.4)."""
        reply = self.ask(query("www.example.test", use_edns=0, ednsflags=0x4000 | dns.flags.DO))
        self.assertEqual(reply.ednsflags, dns.flags.DO)
        self.assertEqual(self.addresses(reply), ["192.0.2.1"])

    def test_unknownOptionIgnored(self):
        reply = self.ask(query("www.example.test", use_edns=0, options=[dns.edns.GenericOption(65001, b"abc")]))
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(reply.options, ())
        self.assertEqual(self.addresses(reply), ["192.0.2.1"])

    def test_withoutEdnsTruncated(self):
        """20 AAAA records do not fit 512 bytes: TC, nothing but the question."""
        reply = self.ask(query("big.example.test", "AAAA"))
        self.assertTrue(reply.flags & dns.flags.TC)
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertEqual(reply.question[0].name.to_text(), "big.example.test.")
        self.assertEqual(reply.answer + reply.authority + reply.additional, [])

    def test_payloadHonoured(self):
        reply = self.ask(query("big.example.test", "AAAA", use_edns=0, payload=1232))
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(self.addresses(reply, "AAAA")), 20)
        for payload in (512, 600, 100):
            reply = self.ask(query("big.example.test", "AAAA", use_edns=0, payload=payload))
            self.assertTrue(reply.flags & dns.flags.TC, payload)
            self.assertEqual(reply.answer, [])
            self.assertEqual(reply.edns, 0)
            self.assertEqual(reply.payload, 1232)

    def test_tcpNotTruncated(self):
        reply = self.ask(query("big.example.test", "AAAA"), tcp=True)
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(self.addresses(reply, "AAAA")), 20)

    def test_clientSubnetEchoed(self):
        subnet = dns.edns.ECSOption("203.0.113.0", 24)
        reply = self.ask(query("www.example.test", use_edns=0, options=[subnet]))
        (echoed,) = reply.options
        self.assertEqual((echoed.family, echoed.address, echoed.srclen, echoed.scopelen), (1, "203.0.113.0", 24, 0))
        self.assertEqual(self.addresses(reply), ["192.0.2.1"])
        subnet = dns.edns.ECSOption("2001:db8:77::", 48)
        reply = self.ask(query("www.example.test", "AAAA", use_edns=0, options=[subnet]))
        (echoed,) = reply.options
        self.assertEqual((echoed.family, echoed.address, echoed.srclen, echoed.scopelen), (2, "2001:db8:77::", 48, 0))

    def test_clientSubnetEchoedOnNegative(self):
        subnet = dns.edns.ECSOption("203.0.113.0", 24)
        reply = self.ask(query("nothing.example.test", use_edns=0, options=[subnet]))
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(reply.options[0].srclen, 24)

    def test_clientSubnetReachesChoice(self):
        """The choice sees the ECS subnet, or the source address without one (or with /0)."""
        seen = []
        rotating = self.authority.vservers["www"].choosers[1]

        class Recording:
            # A chooser (both the fast and the slow path call it) that notes the client.
            tailored = False

            def choose(self, rdtype, client):
                seen.append(client)
                return rotating.choose(rdtype, client)

        self.authority.setChooser("www", 1, Recording())
        self.ask(query("www.example.test", use_edns=0, options=[dns.edns.ECSOption("203.0.113.77", 24)]))
        self.ask(query("www.example.test", use_edns=0, options=[dns.edns.ECSOption("0.0.0.0", 0)]))
        self.ask(query("www.example.test", use_edns=0, options=[dns.edns.GenericOption(65001, b"")]))
        self.assertEqual(seen, ["203.0.113.0", CLIENT[0], CLIENT[0]])

    def test_malformedClientSubnet(self):
        cases = {
            "family 3": ecs(3, 8, b"\x0a"),
            "prefix longer than IPv4": ecs(1, 33, b"\x0a\x00\x00\x00\x00"),
            "prefix longer than IPv6": ecs(2, 129, bytes(17)),
            "bits past the prefix": ecs(1, 24, b"\xcb\x00\x71\x01"),
            "address longer than the prefix": ecs(1, 16, b"\xcb\x00\x71"),
            "address shorter than the prefix": ecs(1, 24, b"\xcb\x00"),
            "bits past the prefix in the last octet": ecs(1, 20, b"\xcb\x00\x7f"),
            "scope in a query": ecs(1, 24, b"\xcb\x00\x71", scope=24),
            "too short": option(8, b"\x00\x01\x18"),
            "two options": ecs(1, 24, b"\xcb\x00\x71") * 2,
        }
        for reason, options in cases.items():
            wire = header(arcount=1) + questionBytes() + optRecord(options=options)
            reply = self.ask(wire)
            self.assertEqual(reply.rcode(), dns.rcode.FORMERR, reason)
            self.assertEqual(reply.answer, [], reason)

    def test_wellFormedClientSubnetEdges(self):
        for options in (ecs(1, 0, b""), ecs(1, 20, b"\xcb\x00\x70"), ecs(2, 128, bytes(16))):
            wire = header(arcount=1) + questionBytes() + optRecord(options=options)
            self.assertEqual(self.ask(wire).rcode(), dns.rcode.NOERROR)


class CounterTests(AuthorityTestsMixin, SynchronousTestCase):
    def test_counts(self):
        """Every query counts, dropped ones too; replies count by RCODE."""
        self.authority.respond(query("www.example.test").to_wire(), CLIENT, False)
        self.authority.respond(query("www.example.test", "MX").to_wire(), CLIENT, False)
        self.authority.respond(query("nothing.example.test").to_wire(), CLIENT, False)
        self.authority.respond(query("example.com").to_wire(), CLIENT, False)
        self.authority.respond(query("www.example.test", use_edns=1).to_wire(), CLIENT, False)
        self.authority.respond(b"\x00", CLIENT, False)
        self.assertEqual(self.authority.queries, 6)
        rcodes = self.authority.rcodes
        self.assertEqual(
            (rcodes[0], rcodes[3], rcodes[5], rcodes[16], rcodes[1]),
            (2, 1, 1, 1, 0),
        )


class SlowPathTests(AddressAnswerTests, EDNSTests):
    """The same rules, answered by the slow path alone."""

    fastPath = False


# ---------------------------------------------------------------------------
# Fuzzing: nothing a client sends makes respond() raise.

VALID_RCODES = {
    dns.rcode.NOERROR,
    dns.rcode.FORMERR,
    dns.rcode.NXDOMAIN,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
    dns.rcode.BADVERS,
}

SEEDS = [
    query("www.example.test").to_wire(),
    query("WWW.example.test", "AAAA", use_edns=0, want_dnssec=True).to_wire(),
    query("big.example.test", "AAAA", use_edns=0, payload=600).to_wire(),
    query("multi.example.test", use_edns=0, options=[dns.edns.ECSOption("192.0.2.0", 24)]).to_wire(),
    query("nothing.example.test", "MX", use_edns=0).to_wire(),
    query("example.test", "NS").to_wire(),
    query("example.com", "ANY", use_edns=1).to_wire(),
]


@st.composite
def mutatedQueries(draw):
    wire = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        position = draw(st.integers(min_value=0, max_value=max(0, len(wire) - 1)))
        if kind == "flip" and wire:
            wire[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "set" and wire:
            wire[position] = draw(st.integers(min_value=0, max_value=255))
        elif kind == "cut":
            del wire[position:]
        elif kind == "insert":
            wire[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and wire:
            del wire[position]
    return bytes(wire)


class FuzzTests(SynchronousTestCase):
    def setUp(self):
        self.authority = Authority.fromTopology(makeTopology())

    def check(self, wire, tcp):
        reply = self.authority.respond(wire, CLIENT, tcp)
        if reply is None:
            self.assertTrue(len(wire) < 12 or wire[2] & 0x80, wire)
            return
        self.assertEqual(reply[:2], wire[:2])
        if not tcp:
            self.assertLessEqual(len(reply), 1232)
        message = dns.message.from_wire(reply)
        self.assertIn(message.rcode(), VALID_RCODES)
        self.assertTrue(message.flags & dns.flags.QR)

    @settings(derandomize=True, deadline=None, database=None, max_examples=1500)
    @given(st.binary(max_size=600), st.booleans())
    def test_randomBytes(self, wire, tcp):
        self.check(wire, tcp)

    @settings(derandomize=True, deadline=None, database=None, max_examples=3000)
    @given(mutatedQueries(), st.booleans())
    def test_mutatedQueries(self, wire, tcp):
        self.check(wire, tcp)
