"""
Dynamic proximity and persistence exchange on the site emulator: the pure
L{RTTModel} and L{PersistenceStore}, the emulator answering PROBEs and
relaying SESSIONS (fake and real MEP sessions, a Clock), and the control
commands over AMP.
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gslb_twisted.config import ConfigError, Location
from gslb_twisted.lb.locations import LocationDB, greatCircleKm
from gslb_twisted.mep.session import ESTABLISHED, IMEPHandler, MEPSession
from gslb_twisted.protocol.commands import SetSiteRTT, ShowSiteRTT, ShowSiteSessions, UnsetSiteRTT
from gslb_twisted.site.emulator import SiteControlProtocol, SiteEmulatorService, loadLocations, makeSiteEmulator
from gslb_twisted.site.persistence import RELAY_SLACK, PersistenceStore
from gslb_twisted.site.proximity import RTTModel

from tests.fakes import RecordingAppliance
from tests.test_site_emulator import FakeSession, topology

NEW_YORK = {"lat": 40.7, "lon": -74.0}
ROWS = [
    ("198.51.100.0/24", 51.5, -0.13, "london"),
    ("203.0.113.0/24", 40.7, -74.0, "new-york"),
    ("2001:db8::/32", 35.7, 139.7, "tokyo"),
    ("192.0.2.0/24", 48.9, 2.35, "paris"),
    ("100.64.0.0/10", -33.9, 151.2, "sydney"),
]
LOCATIONS = LocationDB.fromRows(ROWS)


def formula(lat, lon, site=NEW_YORK):
    return 1.0 + greatCircleKm(site["lat"], site["lon"], lat, lon) / 100.0


def entry(vserver="www", network="198.51.100.0/24", service="east-web", version=1, origin="gslb1/0", ttl=120.0):
    return {"vserver": vserver, "network": network, "service": service, "version": version, "origin": origin, "ttl": ttl}


# -- the RTT model ------------------------------------------------------------------


class RTTModelTests(SynchronousTestCase):
    def test_configLongestPrefix(self):
        """The longest configured network holding the probed one gives its value."""
        model = RTTModel({"127.0.3.0/24": 80.0, "127.0.0.0/8": 10.0, "2001:db8::/32": 5.0})
        self.assertEqual(model.measure("127.0.3.0/24"), (80.0, "config"))
        self.assertEqual(model.measure("127.0.3.128/25"), (80.0, "config"))
        self.assertEqual(model.measure("127.0.0.0/16"), (10.0, "config"))  # bigger than the /24: the /8 holds it
        self.assertEqual(model.measure("2001:db8:1::/48"), (5.0, "config"))
        self.assertIsNone(model.measure("10.0.0.0/8"))
        self.assertIsNone(model.measure("::/0"))

    def test_location(self):
        model = RTTModel(location=Location(**NEW_YORK), locations=LOCATIONS)
        value, source = model.measure("198.51.100.0/24")
        self.assertEqual(source, "location")
        self.assertAlmostEqual(value, formula(51.5, -0.13))
        self.assertLess(abs(value - 56.7), 0.5)  # New York to London, about 5,570 km
        self.assertEqual(model.measure("203.0.113.0/24"), (1.0, "location"))
        self.assertAlmostEqual(model.measure("2001:db8:1::/48")[0], formula(35.7, 139.7))

    def test_locationByFirstAddress(self):
        """A network is placed by its first address: inside a known one, or holding one, it depends."""
        model = RTTModel(location=Location(**NEW_YORK), locations=LOCATIONS)
        self.assertAlmostEqual(model.measure("198.51.100.128/25")[0], formula(51.5, -0.13))
        self.assertAlmostEqual(model.measure("100.64.0.0/16")[0], formula(-33.9, 151.2))
        self.assertIsNone(model.measure("198.51.0.0/16"))  # 198.51.0.0 is nowhere

    def test_noLocationNoRTT(self):
        self.assertIsNone(RTTModel(locations=LOCATIONS).measure("198.51.100.0/24"))
        self.assertIsNone(RTTModel(location=Location(**NEW_YORK)).measure("198.51.100.0/24"))

    def test_precedence(self):
        """A pin beats the config, which beats the location; a longer pin beats a shorter one."""
        model = RTTModel({"198.51.100.0/24": 80.0}, Location(**NEW_YORK), LOCATIONS)
        self.assertEqual(model.measure("198.51.100.0/24"), (80.0, "config"))
        model.pin("198.51.0.0/16", 7)
        self.assertEqual(model.measure("198.51.100.0/24"), (7.0, "pinned"))
        model.pin("198.51.100.0/25", 3.5)
        self.assertEqual(model.measure("198.51.100.0/25"), (3.5, "pinned"))
        self.assertEqual(model.measure("198.51.100.128/25"), (7.0, "pinned"))
        self.assertTrue(model.unpin("198.51.0.0/16"))
        self.assertFalse(model.unpin("198.51.0.0/16"))
        self.assertEqual(model.measure("198.51.100.0/24"), (80.0, "config"))
        self.assertEqual(model.measure("203.0.113.0/24"), (1.0, "location"))
        self.assertEqual(model.pinned(), ["198.51.100.0/25"])

    def test_jitterDeterministicAndBounded(self):
        """A seeded site's location RTTs are within +-5 % of the formula, the same for the same seed."""
        networks = ["198.51.100.0/24", "2001:db8::/32", "192.0.2.0/24", "100.64.0.0/10"]
        bases = [formula(51.5, -0.13), formula(35.7, 139.7), formula(48.9, 2.35), formula(-33.9, 151.2)]
        runs = {}
        for seed in (7, 7, 8):
            model = RTTModel(location=Location(**NEW_YORK), locations=LOCATIONS, seed=seed)
            values = [model.measure(n)[0] for n in networks]
            self.assertEqual(values, [model.measure(n)[0] for n in networks])  # stable per network
            for value, base in zip(values, bases):
                self.assertLessEqual(abs(value / base - 1.0), 0.05 + 1e-12)
            self.assertNotEqual(values, bases)
            runs.setdefault(seed, []).append(values)
        self.assertEqual(runs[7][0], runs[7][1])
        self.assertNotEqual(runs[7][0], runs[8][0])

    def test_jitterOnlyOnLocations(self):
        model = RTTModel({"198.51.100.0/24": 80.0}, Location(**NEW_YORK), LOCATIONS, seed=3)
        model.pin("192.0.2.0/24", 9.0)
        self.assertEqual(model.measure("198.51.100.0/24"), (80.0, "config"))
        self.assertEqual(model.measure("192.0.2.0/24"), (9.0, "pinned"))

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 2**32), st.integers(0, 255), st.integers(24, 32))
    def test_jitterBoundProperty(self, seed, octet, length):
        model = RTTModel(location=Location(**NEW_YORK), locations=LOCATIONS, seed=seed)
        network = f"198.51.100.{octet & (0xFF << (32 - length)) & 0xFF}/{length}"
        value, source = model.measure(network)
        self.assertEqual(source, "location")
        self.assertLessEqual(abs(value / formula(51.5, -0.13) - 1.0), 0.05 + 1e-12)

    def test_probeRecordsAndRows(self):
        model = RTTModel({"10.0.0.0/8": 4.0})
        self.assertEqual(model.probe(["10.1.0.0/16", "192.0.2.0/24"], 5.0, "gslb1"), {"10.1.0.0/16": 4.0})
        model.probe(["10.1.0.0/16"], 8.0, "gslb2")
        model.pin("2001:db8::/32", 1.5)
        self.assertEqual(
            model.rows(10.0),
            [
                {"network": "10.1.0.0/16", "rtt": 4.0, "source": "config", "probes": 2, "age": 2.0, "peer": "gslb2"},
                {"network": "192.0.2.0/24", "rtt": None, "source": None, "probes": 1, "age": 5.0, "peer": "gslb1"},
                {"network": "2001:db8::/32", "rtt": 1.5, "source": "pinned", "probes": 0, "age": None, "peer": None},
            ],
        )

    def test_probedNetworksBounded(self):
        from gslb_twisted.site import proximity

        self.patch(proximity, "MAX_PROBED", 3)
        model = RTTModel()
        model.probe([f"10.0.{i}.0/24" for i in range(5)], 1.0)
        model.probe(["10.0.2.0/24"], 2.0)  # seen again: the most recent
        model.probe(["10.0.9.0/24"], 3.0)
        self.assertEqual([r["network"] for r in model.rows(3.0)], ["10.0.2.0/24", "10.0.4.0/24", "10.0.9.0/24"])

    def test_badValues(self):
        model = RTTModel()
        for network, ms in [("10.0.0.1/8", 1), ("x", 1), ("10.0.0.0/8", -1), ("10.0.0.0/8", float("inf")),
                            ("10.0.0.0/8", "1"), ("10.0.0.0/8", True)]:
            self.assertRaises(ValueError, model.pin, network, ms)
        self.assertRaises(ValueError, model.unpin, "nonsense")
        self.assertRaises(ValueError, RTTModel, {"10.0.0.1/8": 1.0})
        self.assertEqual(model.pins, {})


# -- the persistence store ------------------------------------------------------------


class PersistenceStoreTests(SynchronousTestCase):
    def test_newEntriesRelayed(self):
        store = PersistenceStore()
        self.assertEqual(store.merge([entry(), entry(vserver="api")], 10.0), [entry(), entry(vserver="api")])
        self.assertEqual(len(store), 2)
        self.assertEqual(store.nextExpiry(), 130.0)

    def test_higherVersionReplaces(self):
        store = PersistenceStore()
        store.merge([entry(version=2, service="east-web")], 0.0)
        self.assertEqual(store.merge([entry(version=1, service="west-web")], 1.0), [])
        self.assertEqual(store.get("www", "198.51.100.0/24").service, "east-web")
        self.assertEqual(store.merge([entry(version=3, service="west-web", ttl=60)], 2.0),
                         [entry(version=3, service="west-web", ttl=60.0)])
        self.assertEqual(store.get("www", "198.51.100.0/24").service, "west-web")

    def test_equalVersionLowerOriginWins(self):
        store = PersistenceStore()
        store.merge([entry(origin="gslb2/0", service="west-web")], 0.0)
        self.assertEqual(store.merge([entry(origin="gslb3/0", service="x")], 0.0), [])
        self.assertEqual(len(store.merge([entry(origin="gslb1/1", service="east-web")], 0.0)), 1)
        self.assertEqual(store.get("www", "198.51.100.0/24").origin, "gslb1/1")

    def test_sameEntryExtends(self):
        """The same entry again: a later expiry is kept, relayed only beyond the slack; never shortened."""
        store = PersistenceStore()
        store.merge([entry(ttl=100.0)], 0.0)
        self.assertEqual(store.merge([entry(ttl=50.0)], 0.0), [])
        self.assertEqual(store.get("www", "198.51.100.0/24").expires, 100.0)
        self.assertEqual(store.merge([entry(ttl=100.0 + RELAY_SLACK / 2)], 0.0), [])
        self.assertEqual(store.get("www", "198.51.100.0/24").expires, 100.0 + RELAY_SLACK / 2)
        self.assertEqual(store.merge([entry(ttl=100.0)], 10.0), [entry(ttl=100.0)])
        self.assertEqual(store.get("www", "198.51.100.0/24").expires, 110.0)

    def test_expiry(self):
        store = PersistenceStore()
        store.merge([entry(ttl=5.0), entry(vserver="api", ttl=8.0)], 0.0)
        self.assertEqual(store.expire(4.9), 0)
        self.assertEqual(store.expire(5.0), 1)
        self.assertEqual([r["vserver"] for r in store.rows(5.0)], ["api"])
        self.assertEqual(store.nextExpiry(), 8.0)
        store.expire(8.0)
        self.assertIsNone(store.nextExpiry())
        self.assertEqual(store.expired, 2)

    def test_deadEntryNotSweptIsReplaced(self):
        """An entry past its expiry loses to anything, even a lower version."""
        store = PersistenceStore()
        store.merge([entry(version=5, ttl=1.0)], 0.0)
        self.assertEqual(len(store.merge([entry(version=1)], 2.0)), 1)
        self.assertEqual(store.get("www", "198.51.100.0/24").version, 1)

    def test_oneChangePerKey(self):
        """Several entries for one key in one frame: relayed once, as stored at the end."""
        store = PersistenceStore()
        changed = store.merge([entry(version=1), entry(version=3, service="b"), entry(version=2)], 0.0)
        self.assertEqual(changed, [entry(version=3, service="b")])

    def test_rowsAndLive(self):
        store = PersistenceStore()
        store.merge([entry(network="2001:db8::/32"), entry(network="203.0.113.0/24", ttl=10.0),
                     entry(network="10.0.0.0/8"), entry(vserver="api")], 0.0)
        rows = store.rows(4.0)
        self.assertEqual([(r["vserver"], r["network"]) for r in rows],
                         [("api", "198.51.100.0/24"), ("www", "10.0.0.0/8"), ("www", "203.0.113.0/24"), ("www", "2001:db8::/32")])
        self.assertEqual(rows[2], {"vserver": "www", "network": "203.0.113.0/24", "service": "east-web", "version": 1,
                                   "origin": "gslb1/0", "expires_in": 6.0})
        self.assertEqual(store.live(4.0)[2], entry(network="203.0.113.0/24", ttl=6.0))

    def test_bounded(self):
        store = PersistenceStore(maxEntries=2)
        store.merge([entry(vserver="a"), entry(vserver="b"), entry(vserver="c")], 0.0)
        self.assertEqual((len(store), store.dropped), (2, 1))
        store.merge([entry(vserver="a", version=2)], 0.0)  # an existing key still merges
        self.assertEqual(store.get("a", "198.51.100.0/24").version, 2)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["www", "api"]), st.integers(1, 3), st.sampled_from(["gslb1/0", "gslb1/1", "gslb2/0"]),
                              st.integers(1, 300)), min_size=1, max_size=8), st.randoms())
    def test_orderDoesNotMatter(self, raw, rng):
        """Every order of the same entries leaves the same store (the merge converges)."""
        entries = [entry(vserver=v, version=n, origin=o, service=f"{o}-v{n}", ttl=float(t)) for v, n, o, t in raw]
        shuffled = list(entries)
        rng.shuffle(shuffled)
        stores = []
        for order in (entries, shuffled, list(reversed(entries))):
            store = PersistenceStore()
            for item in order:
                store.merge([item], 0.0)
            stores.append(store.rows(0.0))
        self.assertEqual(stores[0], stores[1])
        self.assertEqual(stores[0], stores[2])


# -- the emulator ------------------------------------------------------------------


class ExchangeEmulatorTests(SynchronousTestCase):
    """The emulator as a site handler, with fake sessions and a Clock."""

    def emulator(self, locations=None, **kwargs):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(**kwargs), "east", sessionFactory=FakeSession, locations=locations)
        service.startService()
        self.addCleanup(service.stopService)
        return service, clock

    def session(self, service, peer="gslb1", direction="inbound"):
        session = service.buildSession(direction)
        session.establish(peer)
        return session

    def sent(self, session, kind):
        return [s[1] for s in session.sent if s[0] == kind]

    def test_handler(self):
        service, clock = self.emulator()
        verifyObject(IMEPHandler, service)

    def test_probeAnsweredFromConfig(self):
        service, clock = self.emulator(rtt={"127.0.3.0/24": 80.0, "127.0.0.0/8": 10.0})
        session = self.session(service)
        service.probeReceived(session, ["127.0.3.0/25", "127.0.4.0/24", "127.0.3.0/24", "10.0.0.0/8"])
        self.assertEqual(self.sent(session, "RTT"), [{"127.0.3.0/25": 80.0, "127.0.4.0/24": 10.0, "127.0.3.0/24": 80.0}])

    def test_probeAnsweredFromLocation(self):
        """RTT = 1 + km/100 from the site's location to the network's, the unknown left out."""
        service, clock = self.emulator(locations=LOCATIONS, location=NEW_YORK, rtt={"192.0.2.0/24": 3.0})
        session = self.session(service)
        service.probeReceived(session, ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "10.0.0.0/8"])
        [rtts] = self.sent(session, "RTT")
        self.assertEqual(set(rtts), {"198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"})
        self.assertAlmostEqual(rtts["198.51.100.0/24"], formula(51.5, -0.13))
        self.assertEqual((rtts["203.0.113.0/24"], rtts["192.0.2.0/24"]), (1.0, 3.0))

    def test_everyProbeAnswered(self):
        """Even a PROBE of nothing the site can measure gets its (empty) RTT frame."""
        service, clock = self.emulator()
        session = self.session(service)
        service.probeReceived(session, ["10.0.0.0/8"])
        service.probeReceived(session, ["10.0.0.0/8"])
        self.assertEqual(self.sent(session, "RTT"), [{}, {}])

    def test_pinnedWins(self):
        service, clock = self.emulator(locations=LOCATIONS, location=NEW_YORK, rtt={"198.51.100.0/24": 80.0})
        session = self.session(service)
        row = service.setRTT("198.51.100.0/24", 5)
        self.assertEqual((row["network"], row["rtt"], row["source"]), ("198.51.100.0/24", 5.0, "pinned"))
        service.probeReceived(session, ["198.51.100.0/24", "203.0.113.0/24"])
        self.assertEqual(self.sent(session, "RTT")[-1], {"198.51.100.0/24": 5.0, "203.0.113.0/24": 1.0})
        row = service.unsetRTT("198.51.100.0/24")
        self.assertEqual((row["rtt"], row["source"]), (80.0, "config"))
        service.probeReceived(session, ["198.51.100.0/24"])
        self.assertEqual(self.sent(session, "RTT")[-1], {"198.51.100.0/24": 80.0})

    def test_rttControlErrors(self):
        service, clock = self.emulator()
        self.assertRaises(ValueError, service.setRTT, "198.51.100.1/24", 5)
        self.assertRaises(ValueError, service.setRTT, "198.51.100.0/24", -5)
        service.setRTT("10.0.0.0/8", 1)
        e = self.assertRaises(KeyError, service.unsetRTT, "198.51.100.0/24")
        self.assertEqual(str(e), "no RTT pinned for 198.51.100.0/24 at site east (pinned: 10.0.0.0/8)")

    def test_seededJitterDeterministic(self):
        """The same seed gives the same answer, within 5 % of the formula."""
        answers = []
        for seed in (11, 11, 12):
            service, clock = self.emulator(locations=LOCATIONS, location=NEW_YORK, seed=seed)
            session = self.session(service)
            service.probeReceived(session, ["198.51.100.0/24", "2001:db8::/32"])
            answers.append(self.sent(session, "RTT")[0])
        self.assertEqual(answers[0], answers[1])
        self.assertNotEqual(answers[0], answers[2])
        for answer in answers:
            self.assertLessEqual(abs(answer["198.51.100.0/24"] / formula(51.5, -0.13) - 1), 0.05 + 1e-12)
            self.assertLessEqual(abs(answer["2001:db8::/32"] / formula(35.7, 139.7) - 1), 0.05 + 1e-12)

    def test_describeRTT(self):
        service, clock = self.emulator(rtt={"10.0.0.0/8": 4.0})
        session = self.session(service)
        clock.advance(2.0)
        service.probeReceived(session, ["10.1.0.0/16"])
        clock.advance(1.5)
        self.assertEqual(service.describeRTT(), [
            {"network": "10.1.0.0/16", "rtt": 4.0, "source": "config", "probes": 1, "age": 1.5, "peer": "gslb1"},
        ])

    # --- sessions ---

    def test_sessionsStoredAndExpired(self):
        service, clock = self.emulator()
        session = self.session(service)
        service.sessionsReceived(session, [entry(ttl=10.0), entry(vserver="api", ttl=4.0)])
        self.assertEqual([(r["vserver"], r["expires_in"]) for r in service.describePersistence()], [("api", 4.0), ("www", 10.0)])
        clock.advance(3.9)
        self.assertEqual(len(service.persistence), 2)
        clock.advance(0.1)
        self.assertEqual([r["vserver"] for r in service.describePersistence()], ["www"])
        self.assertEqual(len(service.persistence), 1)
        clock.advance(6.0)
        self.assertEqual(len(service.persistence), 0)
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_expiryTimerFollowsExtensions(self):
        """An extension moves the expiry; the timer fires at the new time, not the old one."""
        service, clock = self.emulator()
        session = self.session(service)
        service.sessionsReceived(session, [entry(ttl=5.0)])
        clock.advance(3.0)
        service.sessionsReceived(session, [entry(ttl=5.0)])  # now expires at 8
        clock.advance(2.0)
        self.assertEqual(len(service.persistence), 1)
        clock.advance(3.0)
        self.assertEqual(len(service.persistence), 0)
        self.assertEqual([c for c in clock.getDelayedCalls() if c.func == service._expire], [])

    def test_mergedByVersion(self):
        service, clock = self.emulator()
        session = self.session(service)
        service.sessionsReceived(session, [entry(version=2, service="east-web")])
        service.sessionsReceived(session, [entry(version=1, service="west-web")])
        self.assertEqual(service.describePersistence()[0]["service"], "east-web")
        service.sessionsReceived(session, [entry(version=3, service="west-web")])
        self.assertEqual(service.describePersistence()[0]["service"], "west-web")
        service.sessionsReceived(session, [entry(version=3, service="x", origin="gslb0/0")])
        self.assertEqual(service.describePersistence()[0]["origin"], "gslb0/0")

    def relayed(self):
        service, clock = self.emulator(peers=[{"name": "gslb2", "ip": "127.0.0.9", "mep_port": 4000}])
        first, second = self.session(service, "gslb1"), self.session(service, "gslb2", "outbound")
        return service, clock, first, second

    def test_relayedToTheOtherApplianceNotBack(self):
        service, clock, first, second = self.relayed()
        clock.advance(1.0)
        service.sessionsReceived(first, [entry(ttl=100.0)])
        self.assertEqual(self.sent(first, "SESSIONS"), [])
        self.assertEqual(self.sent(second, "SESSIONS"), [[entry(ttl=100.0)]])
        clock.advance(10.0)
        service.sessionsReceived(second, [entry(version=2, service="west-web", origin="gslb2/0", ttl=50.0)])
        self.assertEqual(self.sent(first, "SESSIONS"), [[entry(version=2, service="west-web", origin="gslb2/0", ttl=50.0)]])
        self.assertEqual(len(self.sent(second, "SESSIONS")), 1)

    def test_nothingRelayedWhenNothingChanged(self):
        """A losing entry, or the same entry echoed back, goes nowhere."""
        service, clock, first, second = self.relayed()
        service.sessionsReceived(first, [entry(version=2)])
        service.sessionsReceived(first, [entry(version=1, origin="gslb0/0")])
        clock.advance(0.5)
        service.sessionsReceived(second, [entry(version=2, ttl=119.5)])  # gslb2 echoes what it got
        self.assertEqual(self.sent(first, "SESSIONS"), [])
        self.assertEqual(len(self.sent(second, "SESSIONS")), 1)

    def test_refreshRelayed(self):
        """The creator extends its entry: the other appliance hears it."""
        service, clock, first, second = self.relayed()
        service.sessionsReceived(first, [entry(ttl=120.0)])
        clock.advance(30.0)
        service.sessionsReceived(first, [entry(ttl=120.0)])
        self.assertEqual(self.sent(second, "SESSIONS"), [[entry(ttl=120.0)], [entry(ttl=120.0)]])

    def test_notRelayedToAnotherSessionOfTheSender(self):
        service, clock, first, second = self.relayed()
        again = self.session(service, "gslb1", "outbound")
        service.sessionsReceived(first, [entry()])
        self.assertEqual((self.sent(again, "SESSIONS"), len(self.sent(second, "SESSIONS"))), ([], 1))

    def test_newApplianceGetsLiveEntries(self):
        """An appliance that connects gets every live entry after its snapshot, with the ttl left."""
        service, clock = self.emulator(peers=[{"name": "gslb2", "ip": "127.0.0.9", "mep_port": 4000}])
        first = self.session(service, "gslb1")
        service.sessionsReceived(first, [entry(ttl=100.0), entry(vserver="api", ttl=5.0)])
        clock.advance(6.0)
        second = self.session(service, "gslb2")
        self.assertEqual([s[0] for s in second.sent], ["SNAPSHOT", "SESSIONS"])
        self.assertEqual(self.sent(second, "SESSIONS"), [[entry(ttl=94.0)]])

    def test_noSessionsFrameWhenNothingHeld(self):
        service, clock = self.emulator()
        session = self.session(service)
        self.assertEqual([s[0] for s in session.sent], ["SNAPSHOT"])

    def test_relayFailureLoggedNotRaised(self):
        service, clock, first, second = self.relayed()

        def broken(entries):
            raise RuntimeError("boom")

        second.sendSessions = broken
        service.sessionsReceived(first, [entry()])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(service.persistence), 1)


class RecordingExchangeAppliance(RecordingAppliance):
    """The test appliance, also told about RTTs and sessions."""

    def __init__(self) -> None:
        super().__init__()
        self.rtts: list = []
        self.shared: list = []

    def probeReceived(self, session, networks) -> None:
        raise AssertionError("an appliance is never probed")

    def rttReported(self, session, rtts) -> None:
        self.rtts.append(rtts)

    def sessionsReceived(self, session, entries) -> None:
        self.shared.append(entries)


class RealSessionExchangeTests(SynchronousTestCase):
    """Real MEPSessions over iosim: two appliances sharing one emulated site."""

    def setUp(self):
        self.clock = Clock()
        self.service = SiteEmulatorService(
            self.clock,
            topology(location=NEW_YORK, rtt={"127.0.3.0/24": 80.0},
                     peers=[{"name": "gslb2", "ip": "127.0.0.9", "mep_port": 4000}]),
            "east",
            locations=LOCATIONS,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def connect(self, name):
        appliance = RecordingExchangeAppliance()

        def applianceSession():
            session = MEPSession(role="appliance", localName=name, secret=b"s3cret", clock=self.clock,
                                 keepaliveInterval=1.0, deadInterval=3.0, handler=appliance, expectedPeer="east")
            session.direction = "outbound"
            return session

        session, site, pump = iosim.connectedServerAndClient(
            lambda: self.service.buildSession("inbound"), applianceSession, clock=self.clock
        )
        pump.flush()
        self.assertEqual((site.state, session.state), (ESTABLISHED, ESTABLISHED))
        return appliance, session, pump

    def test_probeOverMEP(self):
        appliance, session, pump = self.connect("gslb1")
        self.assertEqual(session.sendProbe(["127.0.3.0/24", "198.51.100.0/24", "10.0.0.0/8"]), 1)
        pump.flush()
        [rtts] = appliance.rtts
        self.assertEqual(set(rtts), {"127.0.3.0/24", "198.51.100.0/24"})
        self.assertEqual(rtts["127.0.3.0/24"], 80.0)
        self.assertAlmostEqual(rtts["198.51.100.0/24"], formula(51.5, -0.13))
        self.assertEqual([r["peer"] for r in self.service.describeRTT()], ["gslb1", "gslb1", "gslb1"])

    def test_twoAppliancesSharePersistence(self):
        one, s1, pump1 = self.connect("gslb1")
        two, s2, pump2 = self.connect("gslb2")
        s1.sendSessions([entry(ttl=60.0)])
        pump1.flush()
        pump2.flush()
        self.assertEqual(two.shared, [[entry(ttl=60.0)]])
        self.assertEqual(one.shared, [])
        # Whatever gslb2 sends back of it changes nothing and goes nowhere.
        s2.sendSessions(two.shared[0])
        pump2.flush()
        pump1.flush()
        self.assertEqual(one.shared, [])
        self.assertEqual(self.service.describePersistence()[0]["origin"], "gslb1/0")
        # A third appliance joining late gets the entry with its remaining ttl.
        self.clock.advance(0.5)
        pump1.flush()
        pump2.flush()
        three, s3, pump3 = self.connect("gslb1")
        self.assertEqual(three.snapshots, [self.service.model.snapshot()[0]])
        self.assertEqual(len(three.shared), 1)
        self.assertAlmostEqual(three.shared[0][0]["ttl"], 59.5)


class ControlExchangeTests(SynchronousTestCase):
    def connect(self):
        clock = Clock()
        service = SiteEmulatorService(clock, topology(rtt={"10.0.0.0/8": 4.0}), "east", sessionFactory=FakeSession)
        service.startService()
        self.addCleanup(service.stopService)
        client, server, pump = iosim.connectedServerAndClient(lambda: SiteControlProtocol(service), amp.AMP)
        return service, client, pump

    def call(self, pump, d):
        outcome = []
        d.addBoth(outcome.append)
        pump.flush()
        return outcome[0]

    def failed(self, outcome, kind):
        self.assertIsInstance(outcome, Failure)
        self.assertTrue(outcome.check(kind), outcome)
        return outcome.value

    def test_showSessions(self):
        service, client, pump = self.connect()
        self.assertEqual(self.call(pump, client.callRemote(ShowSiteSessions))["rows"], [])
        session = service.buildSession("inbound")
        session.establish("gslb1")
        service.sessionsReceived(session, [entry(ttl=30.0)])
        rows = self.call(pump, client.callRemote(ShowSiteSessions))["rows"]
        self.assertEqual(rows, [{"vserver": "www", "network": "198.51.100.0/24", "service": "east-web", "version": 1,
                                 "origin": "gslb1/0", "expires_in": 30.0}])

    def test_rttCommands(self):
        service, client, pump = self.connect()
        session = service.buildSession("inbound")
        session.establish("gslb1")
        service.probeReceived(session, ["10.1.0.0/16"])
        rows = self.call(pump, client.callRemote(ShowSiteRTT))["rows"]
        self.assertEqual([(r["network"], r["rtt"], r["source"]) for r in rows], [("10.1.0.0/16", 4.0, "config")])
        row = self.call(pump, client.callRemote(SetSiteRTT, network="10.1.0.0/16", rtt=12.5))["row"]
        self.assertEqual((row["network"], row["rtt"], row["source"], row["probes"]), ("10.1.0.0/16", 12.5, "pinned", 1))
        row = self.call(pump, client.callRemote(UnsetSiteRTT, network="10.1.0.0/16"))["row"]
        self.assertEqual((row["rtt"], row["source"]), (4.0, "config"))

    def test_rttCommandErrors(self):
        service, client, pump = self.connect()
        error = self.failed(self.call(pump, client.callRemote(SetSiteRTT, network="10.0.0.1/8", rtt=1.0)), ValueError)
        self.assertIn("CIDR", error.args[0])
        self.failed(self.call(pump, client.callRemote(SetSiteRTT, network="10.0.0.0/8", rtt=-1.0)), ValueError)
        self.failed(self.call(pump, client.callRemote(SetSiteRTT, network="10.0.0.0/8", rtt=float("nan"))), ValueError)
        error = self.failed(self.call(pump, client.callRemote(UnsetSiteRTT, network="10.0.0.0/8")), KeyError)
        self.assertEqual(error.args[0], "no RTT pinned for 10.0.0.0/8 at site east (pinned: none)")
        self.failed(self.call(pump, client.callRemote(UnsetSiteRTT, network="bad")), ValueError)
        self.assertEqual(self.call(pump, client.callRemote(ShowSiteRTT))["rows"], [])


class LocationLoadingTests(SynchronousTestCase):
    def csv(self, text):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_loadedForASiteWithALocation(self):
        path = self.csv("198.51.100.0/24,51.5,-0.13,london\n")
        db = loadLocations(*self.pick(topology(location=NEW_YORK, locationDB=path)))
        self.assertEqual(db.lookup("198.51.100.7").region, "london")

    def pick(self, t):
        return t, t.siteByName["east"]

    def withPath(self, t, path):
        """The topology with another location_db (the loader checks it too; this one may be broken since)."""
        return dataclasses.replace(t, appliance=dataclasses.replace(t.appliance, location_db=path))

    def test_notReadWithoutALocation(self):
        self.assertIsNone(loadLocations(*self.pick(self.withPath(topology(), "/nonexistent/locations.csv"))))
        self.assertIsNone(loadLocations(*self.pick(topology(location=NEW_YORK))))

    def test_badFileIsAConfigError(self):
        for path in ["/nonexistent/locations.csv", self.csv("198.51.100.1/24,51.5,-0.13\n")]:
            t = self.withPath(topology(location=NEW_YORK), path)
            e = self.assertRaises(ConfigError, loadLocations, *self.pick(t))
            self.assertIn("[appliance]: key 'location_db'", str(e))
            self.assertIn(path, str(e))

    def test_makeSiteEmulatorUsesIt(self):
        from twisted.internet.testing import MemoryReactorClock

        path = self.csv("198.51.100.0/24,51.5,-0.13\n")
        service = makeSiteEmulator(MemoryReactorClock(), topology(location=NEW_YORK, locationDB=path), "east",
                                   control="tcp:0:interface=127.0.0.1")
        self.assertAlmostEqual(service.rtt.measure("198.51.100.0/24")[0], formula(51.5, -0.13))


