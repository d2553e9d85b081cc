"""
Response rate limiting: the per-core limiter (deterministic, a clock
passed in), its place in L{Authority.respond}, and the appliance-wide limit
over two real cores.
"""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
from twisted.internet import threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gslb_twisted.dns.authority import Authority
from gslb_twisted.dns.rrl import ALLOW, DROP, SLIP, RateLimiter, accountName, questionBytes, truncated
from tests.support import Appliance, poll
from tests.test_dns_authority import makeTopology as authorityTopology

QUESTION = b"\x03www\x04test\x04gslb\x00\x00\x01\x00\x01"


class RateLimiterTests(SynchronousTestCase):
    def test_underTheLimitAllowed(self):
        limiter = RateLimiter(5)
        verdicts = [limiter.check("192.0.2.1", QUESTION, 100.0 + i * 0.25) for i in range(40)]
        self.assertEqual(set(verdicts), {ALLOW})

    def test_burstLimitedSlippingEverySecond(self):
        limiter = RateLimiter(5, slip=2)
        verdicts = [limiter.check("192.0.2.1", QUESTION, 100.0) for _ in range(25)]
        self.assertEqual(verdicts[:5], [ALLOW] * 5)
        self.assertEqual(verdicts[5:9], [DROP, SLIP, DROP, SLIP])
        self.assertEqual((limiter.dropped, limiter.slipped), (10, 10))

    def test_slipZeroDropsAll(self):
        limiter = RateLimiter(1, slip=0)
        verdicts = [limiter.check("192.0.2.1", QUESTION, 0.0) for _ in range(10)]
        self.assertEqual(verdicts.count(SLIP), 0)
        self.assertEqual(verdicts.count(DROP), 9)

    def test_creditComesBack(self):
        limiter = RateLimiter(5)
        for _ in range(10):
            limiter.check("192.0.2.1", QUESTION, 0.0)
        # Debt of 5 (bounded by the window), then 5 per second: 2 s later
        # the account is back above zero.
        self.assertNotEqual(limiter.check("192.0.2.1", QUESTION, 1.0), ALLOW)
        self.assertEqual(limiter.check("192.0.2.1", QUESTION, 3.0), ALLOW)

    def test_windowBoundsTheDebt(self):
        limiter = RateLimiter(2, window=1)
        for _ in range(1000):
            limiter.check("192.0.2.1", QUESTION, 0.0)
        self.assertEqual(limiter.check("192.0.2.1", QUESTION, 1.6), ALLOW)

    def test_accountsPerNetworkAndQuestion(self):
        limiter = RateLimiter(1)
        self.assertEqual(limiter.check("192.0.2.1", QUESTION, 0.0), ALLOW)
        self.assertNotEqual(limiter.check("192.0.2.200", QUESTION, 0.0), ALLOW)  # same /24
        self.assertEqual(limiter.check("192.0.3.1", QUESTION, 0.0), ALLOW)  # another /24
        self.assertEqual(limiter.check("192.0.2.1", QUESTION.replace(b"www", b"api"), 0.0), ALLOW)

    def test_shareOfTheRate(self):
        """A core allows its share of the rate: an equal share at first, then the consolidated one."""
        limiter = RateLimiter(10, cores=2)
        allowed = sum(limiter.check("192.0.2.1", QUESTION, 0.0) == ALLOW for _ in range(30))
        self.assertEqual(allowed, 5)
        limiter.setShares({accountName(limiter.keyer.key("192.0.2.1"), QUESTION): 1.0})
        # Paid back (30 s at the new rate), then a burst of the whole rate.
        allowed = sum(limiter.check("192.0.2.1", QUESTION, 30.0) == ALLOW for _ in range(30))
        self.assertEqual(allowed, 10)

    def test_sustainedExcessStaysLimited(self):
        """Above the rate for long, the balance stays below zero (BIND's behaviour)."""
        limiter = RateLimiter(10, slip=0)
        verdicts = [limiter.check("192.0.2.1", QUESTION, i / 15.0) for i in range(15 * 20)]
        self.assertLessEqual(verdicts.count(ALLOW), 10 * 20)

    def test_hotAccounts(self):
        limiter = RateLimiter(10)
        for i in range(30):
            limiter.check("192.0.2.1", QUESTION, i * 0.1)
        limiter.check("198.51.100.1", QUESTION, 0.0)
        hot = limiter.hot({})
        self.assertEqual(list(hot.values()), [30])
        (name,) = hot
        self.assertEqual(limiter.hot({name: 30}), {})

    def test_questionBytes(self):
        query = dns.message.make_query("WWW.Test.GSLB", "A").to_wire()
        self.assertEqual(questionBytes(query), QUESTION)
        self.assertIsNone(questionBytes(query[:15]))

    def test_truncated(self):
        query = dns.message.make_query("www.test.gslb", "A")
        reply = dns.message.make_response(query)
        wire = truncated(reply.to_wire(), len(QUESTION))
        parsed = dns.message.from_wire(wire)
        self.assertTrue(parsed.flags & dns.flags.TC)
        self.assertEqual((len(parsed.answer), str(parsed.question[0].name)), (0, "www.test.gslb."))


class AuthorityRateLimitTests(SynchronousTestCase):
    def test_udpLimitedTcpNot(self):
        authority = Authority.fromTopology(authorityTopology())
        authority.rrl = RateLimiter(2, slip=2)
        authority.clock = lambda: 50.0
        query = dns.message.make_query("www.example.test", "A").to_wire()
        replies = [authority.respond(query, ("192.0.2.9", 5000), False) for _ in range(6)]
        self.assertEqual([r is None for r in replies], [False, False, True, False, True, False])
        self.assertTrue(dns.message.from_wire(replies[3]).flags & dns.flags.TC)
        self.assertFalse(dns.message.from_wire(replies[0]).flags & dns.flags.TC)
        self.assertIsNotNone(authority.respond(query, ("192.0.2.9", 5000), True))
        self.assertEqual((authority.rrl.dropped, authority.rrl.slipped), (2, 2))


RRL_TOPOLOGY = """
[appliance]
name = "gslbrrl"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
consolidation_interval = 0.25
rrl = { responses_per_second = 20, window = 5, slip = 0 }

[[zone]]
name = "test.gslb"

[[site]]
name = "fixed"
ip = "127.0.0.20"
metric_exchange = false

[[service]]
name = "fixed-web"
site = "fixed"
ip = "192.0.2.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
services = ["fixed-web"]
"""


class ApplianceRateLimitTests(TestCase):
    timeout = 120

    async def test_applianceWideLimit(self):
        """
        One client network asks 30 times a second, spread over both cores
        (15 each): each core alone is under the limit (20/s), the appliance
        is not, so answers are limited to about 20/s in all.
        """
        appliance = Appliance(self, RRL_TOPOLOGY, cores=2)
        appliance.start()
        await appliance.waitUntilServing()
        before = {row["core"]: row["queries"] for row in await appliance.console("show cores")}
        sent, answered = await threads.deferToThread(_ask, appliance.port, 30, 8.0)
        after = {row["core"]: row["queries"] for row in await appliance.console("show cores")}
        self.assertTrue(all(after[core] > before[core] for core in before), (before, after))
        # Everything would be answered if each core applied the limit alone.
        self.assertLess(answered, sent * 0.85, f"{answered} of {sent} answered")
        self.assertGreater(answered, 0)

        async def counted():
            stats = await appliance.console("stat dns")
            return stats.get("rrl_dropped", 0) > 0 and stats

        await poll(counted, what="RRL drops in the consolidated counters")


def _ask(port: int, perSecond: int, seconds: float) -> tuple[int, int]:
    """
    C{perSecond} queries a second for C{seconds}, each from a new source
    port of 127.0.0.1 (so the cores share them); (sent, answered).
    """
    query = dns.message.make_query("www.test.gslb", "A").to_wire()
    sockets = []
    sent = answered = 0
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            s.sendto(query, ("127.0.0.1", port))
            sent += 1
            sockets.append(s)
            time.sleep(1.0 / perSecond)
            answered += _drain(sockets)
        time.sleep(0.3)
        answered += _drain(sockets)
    finally:
        for s in sockets:
            s.close()
    return sent, answered


def _drain(sockets) -> int:
    count = 0
    for s in list(sockets):
        try:
            s.recv(2048)
        except BlockingIOError:
            continue
        count += 1
        s.close()
        sockets.remove(s)
    return count
