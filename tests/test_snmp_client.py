"""
The SNMP client against a real agent: pysnmp's engine carried by the
reactor (gslb_twisted.snmp.carrier), every version, and the errors an
operator reads when something is wrong.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from gslb_twisted.config import SNMPSettings
from gslb_twisted.snmp.client import SNMPClient, SNMPError
from tests.snmpd import BASE, SNMPAgent, requireSnmpd
from tests.support import poll

TCP_ESTABLISHED = "1.3.6.1.2.1.6.9.0"
IF_OUT_OCTETS_LO = "1.3.6.1.2.1.31.1.1.1.10.1"


def settings(port: int, **overrides) -> SNMPSettings:
    values = dict(port=port, version="2c", community="public", table="linux-host", user=None,
                  auth_protocol=None, auth_key=None, priv_protocol=None, priv_key=None)
    values.update(overrides)
    return SNMPSettings(**values)


class SNMPClientTests(TestCase):
    timeout = 60

    async def setUp(self):
        requireSnmpd()
        self.agent = SNMPAgent(self, "127.0.0.44", community="public",
                               users=[("gslb", "SHA", "authpass123", "AES", "privpass123"),
                                      ("authonly", "SHA256", "authpass456", None, None)],
                               values={"1.0": ("gauge", 42), "2.0": ("string", "0.75")})
        await self.agent.start()
        self.client = SNMPClient(reactor, "127.0.0.1")
        self.addCleanup(self.client.close)

    def target(self, name: str, host: str = "127.0.0.44", timeout: float = 0.3, **overrides) -> str:
        self.client.addTarget(name, host, settings(self.agent.port, **overrides), timeout)
        return name

    async def assertRefused(self, name: str, oids=(f"{BASE}.1.0",)) -> SNMPError:
        try:
            await self.client.get(name, list(oids))
        except SNMPError as e:
            return e
        self.fail(f"{name}: the agent answered")

    async def test_v2cValuesAndTypes(self):
        """Gauges, integers, counters and numbers written as strings all come back as numbers."""
        answers = await self.client.get(self.target("v2"), [f"{BASE}.1.0", f"{BASE}.2.0", TCP_ESTABLISHED,
                                                            IF_OUT_OCTETS_LO, f"{BASE}.9.0"])
        self.assertEqual((answers[f"{BASE}.1.0"].value, answers[f"{BASE}.1.0"].kind), (42.0, "Gauge32"))
        self.assertEqual(answers[f"{BASE}.2.0"].value, 0.75)
        self.assertEqual(answers[IF_OUT_OCTETS_LO].kind, "Counter64")
        self.assertGreaterEqual(answers[TCP_ESTABLISHED].value, 0)
        self.assertEqual((answers[f"{BASE}.9.0"].value, answers[f"{BASE}.9.0"].kind), (None, "noSuchInstance"))

    async def test_v1MissingOIDDoesNotHideTheOthers(self):
        """SNMPv1 fails a whole request for one missing OID: it is asked again without it."""
        answers = await self.client.get(self.target("v1", version="1"), [f"{BASE}.9.0", f"{BASE}.1.0"])
        self.assertEqual(answers[f"{BASE}.1.0"].value, 42.0)
        self.assertEqual(answers[f"{BASE}.9.0"].kind, "noSuchName")

    async def test_v3AuthPrivAndAuthNoPriv(self):
        for name, extra in (
            ("priv", dict(user="gslb", auth_protocol="SHA", auth_key="authpass123",
                          priv_protocol="AES", priv_key="privpass123")),
            ("auth", dict(user="authonly", auth_protocol="SHA256", auth_key="authpass456")),
        ):
            answers = await self.client.get(self.target(name, version="3", **extra), [f"{BASE}.1.0"])
            self.assertEqual(answers[f"{BASE}.1.0"].value, 42.0, name)

    async def test_v3ErrorsSayWhatIsWrong(self):
        unknown = await self.assertRefused(self.target("u", version="3", user="nobody", auth_protocol="SHA",
                                                       auth_key="authpass123"))
        self.assertEqual((unknown.kind, str(unknown)),
                         ("credentials", f"the agent at 127.0.0.44:{self.agent.port} does not know SNMPv3 user 'nobody'"))
        wrongAuth = await self.assertRefused(self.target("a", version="3", user="authonly", auth_protocol="SHA256",
                                                         auth_key="not-the-key"))
        self.assertEqual(wrongAuth.kind, "credentials")
        self.assertIn("refused user 'authonly': wrong auth_key or auth_protocol", str(wrongAuth))
        self.assertNotIn("not-the-key", str(wrongAuth))

    async def test_deadAgentAndWrongCommunityToldApart(self):
        """Both time out; only the probe tells a live agent (wrong community) from a dead one."""
        wrong = await self.assertRefused(self.target("wrong", community="private"))
        dead = await self.assertRefused(self.target("dead", host="127.0.0.45"))
        for error in (wrong, dead):
            self.assertEqual(error.kind, "timeout")
        self.assertIn("no answer from the agent at 127.0.0.45", str(dead))
        self.assertTrue(await self.client.probe("wrong"))
        self.assertFalse(await self.client.probe("dead"))

    async def test_garbageDatagramsAreDropped(self):
        """Datagrams that are not SNMP replies are counted, and polling goes on."""
        name = self.target("v2")
        port = self.client.transports[4].local().port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for garbage in (b"", b"\x30\x03\x02\x01", b"not snmp at all" * 10):
                sender.sendto(garbage, ("127.0.0.1", port))
        # (pysnmp drops what it cannot decode at all quietly; what makes it
        # raise is counted.)
        await poll(lambda: self.client.transports[4].garbage >= 1, 10, what="garbage counted")
        answers = await self.client.get(name, [f"{BASE}.1.0"])
        self.assertEqual(answers[f"{BASE}.1.0"].value, 42.0)
