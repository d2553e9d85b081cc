"""
DNS over real sockets: the protocols listening on 127.0.0.1 with the real
reactor, queried by dnspython's blocking client in a thread (so the reactor
keeps answering).
"""

import tomllib

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from gslb_twisted.config import parseTopology
from gslb_twisted.dns.authority import Authority
from gslb_twisted.dns.protocol import DNSDatagramProtocol, DNSStreamFactory, DNSStreamProtocol

TIMEOUT = 5.0

TOPOLOGY = (
    """
[appliance]
name = "test"
ip = "127.0.0.53"

[[zone]]
name = "conf.test"
ns = ["ns1.conf.test"]
soa_minimum = 60

[[site]]
name = "east"
ip = "10.0.0.1"

[[service]]
name = "web"
site = "east"
ip = "192.0.2.1"

[[service]]
name = "web6"
site = "east"
ip = "2001:db8::1"

"""
    + "".join(f'[[service]]\nname = "big{i}"\nsite = "east"\nip = "2001:db8:2::{i:x}"\n\n' for i in range(1, 21))
    + """
[[vserver]]
name = "www"
domains = ["www.conf.test"]
ttl = 5
services = ["web", "web6"]

[[vserver]]
name = "big"
domains = ["big.conf.test"]
answers = 20
services = ["""
    + ", ".join(f'"big{i}"' for i in range(1, 21))
    + "]\n"
)


class TrackedStreamProtocol(DNSStreamProtocol):
    """Tells its factory when its connection is gone, so tests can wait for it."""

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.lost(self)


class TrackedStreamFactory(DNSStreamFactory):
    protocol = TrackedStreamProtocol

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.open = {}

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.open[protocol] = defer.Deferred()
        return protocol

    def lost(self, protocol):
        self.open.pop(protocol).callback(None)

    def closeAll(self):
        """Close what clients left open; fire when every connection is gone."""
        waiting = list(self.open.values())
        for protocol in list(self.open):
            protocol.transport.abortConnection()
        return defer.DeferredList(waiting)


class ConformanceTests(TestCase):
    def setUp(self):
        topology = parseTopology(tomllib.loads(TOPOLOGY), "test.toml")
        authority = Authority.fromTopology(topology)
        udp = reactor.listenUDP(0, DNSDatagramProtocol(authority), interface="127.0.0.1")
        self.addCleanup(udp.stopListening)
        self.factory = TrackedStreamFactory(authority, reactor, idleTimeout=TIMEOUT)
        tcp = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.factory.closeAll)
        self.addCleanup(tcp.stopListening)
        self.udpPort = udp.getHost().port
        self.tcpPort = tcp.getHost().port

    def ask(self, message, tcp):
        if tcp:
            return threads.deferToThread(dns.query.tcp, message, "127.0.0.1", timeout=TIMEOUT, port=self.tcpPort)
        return threads.deferToThread(dns.query.udp, message, "127.0.0.1", timeout=TIMEOUT, port=self.udpPort)

    @defer.inlineCallbacks
    def overBoth(self, makeQuery, check):
        """Ask the same question over UDP and over TCP; check both replies."""
        for tcp in (False, True):
            reply = yield self.ask(makeQuery(), tcp)
            check(reply, "TCP" if tcp else "UDP")

    def test_address(self):
        def check(reply, transport):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR, transport)
            self.assertTrue(reply.flags & dns.flags.AA, transport)
            self.assertEqual([r.address for r in reply.answer[0]], ["192.0.2.1"], transport)
            self.assertEqual(reply.answer[0].ttl, 5, transport)

        return self.overBoth(lambda: dns.message.make_query("www.conf.test", "A"), check)

    def test_ipv6Address(self):
        def check(reply, transport):
            self.assertEqual([r.address for r in reply.answer[0]], ["2001:db8::1"], transport)

        return self.overBoth(lambda: dns.message.make_query("WWW.Conf.Test", "AAAA", use_edns=0), check)

    def test_nxdomain(self):
        def check(reply, transport):
            self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN, transport)
            self.assertEqual(reply.authority[0].rdtype, dns.rdatatype.SOA, transport)

        return self.overBoth(lambda: dns.message.make_query("nothing.conf.test", "A"), check)

    def test_nodata(self):
        def check(reply, transport):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR, transport)
            self.assertEqual(reply.answer, [], transport)
            self.assertEqual(reply.authority[0].rdtype, dns.rdatatype.SOA, transport)
            self.assertEqual(reply.authority[0].ttl, 60, transport)

        return self.overBoth(lambda: dns.message.make_query("www.conf.test", "TXT"), check)

    def test_soa(self):
        def check(reply, transport):
            self.assertEqual(reply.answer[0].rdtype, dns.rdatatype.SOA, transport)
            self.assertEqual(reply.answer[0][0].mname.to_text(), "ns1.conf.test.", transport)

        return self.overBoth(lambda: dns.message.make_query("conf.test", "SOA"), check)

    def test_ns(self):
        def check(reply, transport):
            self.assertEqual([r.target.to_text() for r in reply.answer[0]], ["ns1.conf.test."], transport)
            self.assertEqual([r.address for r in reply.additional[0]], ["127.0.0.53"], transport)

        return self.overBoth(lambda: dns.message.make_query("conf.test", "NS"), check)

    def test_refused(self):
        def check(reply, transport):
            self.assertEqual(reply.rcode(), dns.rcode.REFUSED, transport)
            self.assertFalse(reply.flags & dns.flags.AA, transport)

        return self.overBoth(lambda: dns.message.make_query("www.example.org", "A"), check)

    def test_badvers(self):
        def check(reply, transport):
            self.assertEqual(reply.rcode(), dns.rcode.BADVERS, transport)
            self.assertEqual(reply.edns, 0, transport)
            self.assertEqual(reply.answer, [], transport)

        return self.overBoth(lambda: dns.message.make_query("conf.test", "SOA", use_edns=1), check)

    def test_clientSubnet(self):
        def check(reply, transport):
            (echoed,) = reply.options
            self.assertEqual((echoed.address, echoed.srclen, echoed.scopelen), ("198.51.100.0", 24, 0), transport)
            self.assertEqual(reply.answer[0][0].address, "192.0.2.1", transport)

        subnet = dns.edns.ECSOption("198.51.100.0", 24)
        return self.overBoth(
            lambda: dns.message.make_query("www.conf.test", "A", use_edns=0, options=[subnet]), check
        )

    @defer.inlineCallbacks
    def test_truncatedThenTCP(self):
        """
        Twenty AAAA records do not fit 512 bytes: UDP says TC (without EDNS,
        and with a 512-byte EDNS payload), and the TCP retry gets them all;
        a 1232-byte EDNS payload fits them over UDP.
        """
        for edns in (False, 0):
            query = dns.message.make_query("big.conf.test", "AAAA", use_edns=edns, payload=512)
            reply = yield self.ask(query, tcp=False)
            self.assertTrue(reply.flags & dns.flags.TC)
            self.assertEqual(reply.answer, [])
            reply = yield self.ask(query, tcp=True)
            self.assertFalse(reply.flags & dns.flags.TC)
            self.assertEqual(len(reply.answer[0]), 20)
        query = dns.message.make_query("big.conf.test", "AAAA", use_edns=0, payload=1232)
        reply = yield self.ask(query, tcp=False)
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(reply.answer[0]), 20)
