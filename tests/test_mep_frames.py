"""
Tests for L{gslb_twisted.mep.frames}: encoding, the incremental decoder and
payload validation, with examples and hypothesis properties.
"""

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.mep import auth, frames
from gslb_twisted.mep.frames import FrameDecoder, ProtocolError, decodeMessage, encodeFrame

NONCE = "ab" * 32
METRICS = {"state": "UP", "connections": 12, "response_time": 3.5, "bandwidth": 800.0, "packets": 40, "load": 12.5}
SESSION = {"vserver": "www", "network": "198.51.100.0/24", "service": "east-web", "version": 1, "origin": "gslb1/0", "ttl": 118.5}

VALID = [
    (frames.HELLO, {"versions": [1, 2], "name": "east", "role": "site", "nonce": NONCE, "auth": "hmac-sha256"}),
    (frames.AUTH, {"proof": NONCE}),
    (frames.ERROR, {"code": "bad-payload", "message": "no"}),
    (frames.KEEPALIVE, {"ts": 12.5}),
    (frames.KEEPALIVE_ECHO, {"ts": 12.5}),
    (frames.SNAPSHOT, {"seq": 3, "services": {"web": METRICS, "db": dict(METRICS, state="DOWN")}}),
    (frames.DELTA, {"seq": 4, "base_seq": 3, "changes": {"web": {"connections": 13}}}),
    (frames.RESYNC, {"seq": 3}),
    (frames.RESYNC, {"seq": None}),
    (frames.PROBE, {"networks": ["198.51.100.0/24", "2001:db8:1::/48"]}),
    (frames.RTT, {"rtt": {"198.51.100.0/24": 23.5, "2001:db8:1::/48": 80.0}}),
    (frames.SESSIONS, {"sessions": [SESSION, dict(SESSION, vserver="api", version=2)]}),
]


def raw(frameType, payload: bytes) -> bytes:
    return struct.pack("!IB", len(payload) + 1, frameType) + payload


def decodeAll(data: bytes, maxFrameSize=frames.DEFAULT_MAX_FRAME_SIZE):
    return list(FrameDecoder(maxFrameSize).feed(data))


class EncodeDecodeTests(SynchronousTestCase):
    def test_roundTrip(self):
        """Every valid frame type decodes to what was encoded."""
        data = b"".join(encodeFrame(t, m) for t, m in VALID)
        self.assertEqual(decodeAll(data)[1:], [(t, self.normal(t, m)) for t, m in VALID[1:]])

    def normal(self, t, m):
        if t == frames.AUTH:
            return {"proof": bytes.fromhex(m["proof"])}
        return m

    def test_helloNormalised(self):
        """HELLO's versions become a tuple and its nonce bytes."""
        [(t, m)] = decodeAll(encodeFrame(*VALID[0]))
        self.assertEqual(m["versions"], (1, 2))
        self.assertEqual(m["nonce"], bytes.fromhex(NONCE))

    def test_layout(self):
        """A frame is a 4-byte big-endian length (type + payload), the type, compact JSON."""
        self.assertEqual(encodeFrame(frames.KEEPALIVE, {"ts": 1}), b"\x00\x00\x00\x09\x04" + b'{"ts":1}')

    def test_integersBecomeFloats(self):
        """Number metrics given as JSON integers are delivered as floats."""
        [(_, m)] = decodeAll(encodeFrame(frames.DELTA, {"seq": 2, "base_seq": 1, "changes": {"w": {"load": 5}}}))
        self.assertIsInstance(m["changes"]["w"]["load"], float)

    def test_unknownKeysIgnored(self):
        """Keys a later version may add are ignored."""
        [(_, m)] = decodeAll(encodeFrame(frames.KEEPALIVE, {"ts": 1.0, "future": [1]}))
        self.assertEqual(m, {"ts": 1.0})

    def test_encodeTooLarge(self):
        """The encoder refuses a frame over the maximum."""
        self.assertRaises(ValueError, encodeFrame, frames.ERROR, {"code": "x", "message": "y" * 100}, 50)

    def test_encodeNaN(self):
        self.assertRaises(ValueError, encodeFrame, frames.KEEPALIVE, {"ts": float("nan")})

    def test_incremental(self):
        """Frames fed one byte at a time come out once complete, in order."""
        data = b"".join(encodeFrame(t, m) for t, m in VALID)
        decoder = FrameDecoder()
        out = []
        for i in range(len(data)):
            out.extend(decoder.feed(data[i : i + 1]))
        self.assertEqual(out, decodeAll(data))
        self.assertEqual(decoder.pending(), 0)

    def test_goodFramesBeforeBadOne(self):
        """The frames before a bad one are yielded, then the error is raised."""
        data = encodeFrame(frames.KEEPALIVE, {"ts": 1}) + raw(99, b"{}")
        it = FrameDecoder().feed(data)
        self.assertEqual(next(it), (frames.KEEPALIVE, {"ts": 1.0}))
        self.assertRaises(ProtocolError, next, it)

    def test_spentAfterError(self):
        """After an error the decoder keeps raising it, even for good bytes."""
        decoder = FrameDecoder()
        self.assertRaises(ProtocolError, list, decoder.feed(raw(99, b"{}")))
        e = self.assertRaises(ProtocolError, list, decoder.feed(encodeFrame(frames.KEEPALIVE, {"ts": 1})))
        self.assertEqual(e.code, "unknown-type")


class SealedFrameTests(SynchronousTestCase):
    """A decoder given a receiving MAC accepts only frames sealed in turn."""

    def setUp(self):
        key = auth.sessionKey(b"secret", 2, "site", "east", "gslb1", b"s" * 32, b"a" * 32)
        self.sender, self.decoder = auth.FrameMAC(key), FrameDecoder()
        self.decoder.mac = auth.FrameMAC(key)

    def test_sealedRoundTrip(self):
        data = encodeFrame(frames.KEEPALIVE, {"ts": 1}, mac=self.sender) + encodeFrame(frames.KEEPALIVE, {"ts": 2}, mac=self.sender)
        self.assertEqual(list(self.decoder.feed(data)), [(frames.KEEPALIVE, {"ts": 1.0}), (frames.KEEPALIVE, {"ts": 2.0})])

    def test_tagCountsTowardsTheMaximum(self):
        """The 16 tag bytes are part of the frame: the encoder's limit includes them."""
        payload = {"code": "x", "message": "y" * 20}
        size = len(encodeFrame(frames.ERROR, payload)) - 4
        encodeFrame(frames.ERROR, payload, size)
        self.assertRaises(ValueError, encodeFrame, frames.ERROR, payload, size, self.sender)

    def test_shorterThanATag(self):
        e = self.assertRaises(ProtocolError, list, self.decoder.feed(raw(frames.KEEPALIVE, b"{}")))
        self.assertEqual(e.code, "bad-mac")

    def test_checkedBeforeParsing(self):
        """An unsealed frame of an unknown type is bad-mac: nothing unauthenticated is parsed."""
        e = self.assertRaises(ProtocolError, list, self.decoder.feed(raw(99, b"{}" + b"\0" * 16)))
        self.assertEqual(e.code, "bad-mac")


class ProximityAndSessionFrameTests(SynchronousTestCase):
    """PROBE, RTT and SESSIONS: limits, canonical networks, normalised values."""

    def decode(self, frameType, message):
        [(t, m)] = decodeAll(encodeFrame(frameType, message))
        self.assertEqual(t, frameType)
        return m

    def test_typeNumbers(self):
        self.assertEqual((frames.PROBE, frames.RTT, frames.SESSIONS), (9, 10, 11))
        self.assertEqual([frames.NAMES[t] for t in (9, 10, 11)], ["PROBE", "RTT", "SESSIONS"])

    def test_layout(self):
        self.assertEqual(
            encodeFrame(frames.PROBE, {"networks": ["10.0.0.0/8"]}),
            struct.pack("!IB", 28, 9) + b'{"networks":["10.0.0.0/8"]}',
        )

    def test_probeNetworksCanonical(self):
        """Networks come out canonical: lower-case compressed IPv6, a bare address as /32 or /128, masks as lengths."""
        m = self.decode(frames.PROBE, {"networks": ["2001:DB8:1:0::/48", "198.51.100.7", "10.0.0.0/255.0.0.0", "::1"]})
        self.assertEqual(m, {"networks": ["2001:db8:1::/48", "198.51.100.7/32", "10.0.0.0/8", "::1/128"]})

    def test_probeLimits(self):
        networks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(1024)]
        self.assertEqual(self.decode(frames.PROBE, {"networks": networks})["networks"], networks)
        e = self.assertRaises(ProtocolError, decodeAll, encodeFrame(frames.PROBE, {"networks": networks + ["11.0.0.0/8"]}))
        self.assertEqual(e.code, "bad-payload")
        self.assertIn("1 to 1024", e.message)

    def test_rttFloatsAndCanonicalKeys(self):
        m = self.decode(frames.RTT, {"rtt": {"2001:DB8::/32": 5, "0.0.0.0/0": 0}})
        self.assertEqual(m, {"rtt": {"2001:db8::/32": 5.0, "0.0.0.0/0": 0.0}})
        self.assertIsInstance(m["rtt"]["2001:db8::/32"], float)

    def test_rttMayBeEmpty(self):
        """An RTT answering a PROBE of networks the site cannot measure."""
        self.assertEqual(self.decode(frames.RTT, {"rtt": {}}), {"rtt": {}})

    def test_rttLimit(self):
        rtts = {f"10.{i // 256}.{i % 256}.0/24": float(i) for i in range(4096)}
        self.assertEqual(self.decode(frames.RTT, {"rtt": rtts})["rtt"], rtts)

    def test_sessionsNormalised(self):
        """ttl becomes a float, the network canonical, unknown keys of an entry are dropped."""
        entry = dict(SESSION, network="2001:DB8:1::/48", ttl=60, colour="blue")
        m = self.decode(frames.SESSIONS, {"sessions": [entry]})
        self.assertEqual(m, {"sessions": [dict(SESSION, network="2001:db8:1::/48", ttl=60.0)]})
        self.assertIsInstance(m["sessions"][0]["ttl"], float)

    def test_sessionsLimitAndDuplicates(self):
        """1024 entries are fine, the same key twice too (the merge decides)."""
        entries = [dict(SESSION, version=v) for v in range(1, 1025)]
        self.assertEqual(len(self.decode(frames.SESSIONS, {"sessions": entries})["sessions"]), 1024)

    def test_smallTTLAccepted(self):
        self.assertEqual(self.decode(frames.SESSIONS, {"sessions": [dict(SESSION, ttl=0.001)]})["sessions"][0]["ttl"], 0.001)

    def test_canonicalNetwork(self):
        self.assertEqual(frames.canonicalNetwork("2001:DB8::/32"), "2001:db8::/32")
        self.assertRaises(TypeError, frames.canonicalNetwork, 10)
        for bad in ["", "10.0.0.1/8", "x", "fe80::%1/64", "1" * 129]:
            self.assertRaises(ValueError, frames.canonicalNetwork, bad)


class MalformedTests(SynchronousTestCase):
    def assertCode(self, code, data, maxFrameSize=frames.DEFAULT_MAX_FRAME_SIZE):
        e = self.assertRaises(ProtocolError, decodeAll, data, maxFrameSize)
        self.assertEqual(e.code, code, e.message)
        return e

    def test_truncated(self):
        """A truncated frame yields nothing and waits."""
        data = encodeFrame(frames.KEEPALIVE, {"ts": 1})
        decoder = FrameDecoder()
        self.assertEqual(list(decoder.feed(data[:-1])), [])
        self.assertEqual(decoder.pending(), len(data) - 1)

    def test_zeroLength(self):
        self.assertCode("bad-frame", b"\x00\x00\x00\x00")

    def test_oversizeNotBuffered(self):
        """An announced length over the maximum fails on the header alone."""
        decoder = FrameDecoder(maxFrameSize=100)
        e = self.assertRaises(ProtocolError, list, decoder.feed(struct.pack("!I", 101)))
        self.assertEqual(e.code, "frame-too-large")
        self.assertEqual(decoder.pending(), 0)

    def test_hugeAnnouncedLength(self):
        self.assertCode("frame-too-large", b"\xff\xff\xff\xff\x01")

    def test_exactlyMaximum(self):
        """A frame of exactly the maximum size is accepted."""
        frame = encodeFrame(frames.KEEPALIVE, {"ts": 1})
        self.assertEqual(len(decodeAll(frame, len(frame) - 4)), 1)

    def test_unknownType(self):
        self.assertCode("unknown-type", raw(0, b"{}"))
        self.assertCode("unknown-type", raw(12, b"{}"))
        self.assertCode("unknown-type", raw(255, b"{}"))

    def test_badJSON(self):
        for payload in [b"{", b"not json", b"\xff\xfe", b"", b'{"ts": NaN}', b'{"ts": Infinity}', b"[" * 100000]:
            self.assertCode("bad-payload", raw(frames.KEEPALIVE, payload))

    def test_hugeInteger(self):
        """Integers over the interpreter's digit limit are bad payload, not a crash."""
        self.assertCode("bad-payload", raw(frames.KEEPALIVE, b'{"ts": ' + b"9" * 5000 + b"}"))
        self.assertCode("bad-payload", raw(frames.KEEPALIVE, b'{"ts": ' + b"9" * 400 + b"}"))

    def test_notAnObject(self):
        for payload in [b"[]", b"1", b'"x"', b"null"]:
            self.assertCode("bad-payload", raw(frames.KEEPALIVE, payload))

    def test_missingFields(self):
        """Removing any required key of any frame is bad payload."""
        for t, m in VALID:
            if t == frames.RESYNC:
                continue  # seq is optional
            for key in m:
                broken = {k: v for k, v in m.items() if k != key}
                e = self.assertCode("bad-payload", encodeFrame(t, broken))
                self.assertIn(key, e.message)

    def test_wrongTypes(self):
        bad = [
            (frames.HELLO, "versions", [[], [0], [256], [1, 1], ["1"], 1, [True], list(range(1, 18))]),
            (frames.HELLO, "name", ["", 3, "x" * 256, None]),
            (frames.HELLO, "role", ["core", None]),
            (frames.HELLO, "nonce", ["ab", "zz" * 32, "ab" * 31 + "  ", 5]),
            (frames.HELLO, "auth", ["md5", None]),
            (frames.AUTH, "proof", ["", "ab" * 33]),
            (frames.ERROR, "code", ["", 1, "x" * 65]),
            (frames.ERROR, "message", [None, 1]),
            (frames.KEEPALIVE, "ts", ["1", None, True]),
            (frames.SNAPSHOT, "seq", [-1, 1.5, True, "1", 1 << 63]),
            (frames.SNAPSHOT, "services", [[], "x", {"web": []}, {"": METRICS}]),
            (frames.DELTA, "base_seq", [-1, None]),
            (frames.DELTA, "changes", [[], {"web": {}}, {"web": {"colour": 1}}]),
            (frames.RESYNC, "seq", [-1, "x"]),
            (frames.PROBE, "networks", [[], "198.51.100.0/24", None, {"198.51.100.0/24": 1}, [1], [None],
                                        ["198.51.100.1/24"], ["nonsense"], ["198.51.100.0/33"], ["fe80::%1/64"],
                                        [" 198.51.100.0/24"], ["1" * 129], ["10.0.0.0/8", "10.0.0.0/8"],
                                        ["10.0.0.0/8", "10.0.0.0/255.0.0.0"], ["10.0.0.0/8"] * 1025]),
            (frames.RTT, "rtt", [[], "x", None, {"nonsense": 1}, {"198.51.100.1/24": 1}, {"10.0.0.0/8": -1},
                                 {"10.0.0.0/8": "1"}, {"10.0.0.0/8": None}, {"10.0.0.0/8": True},
                                 {"10.0.0.0/8": 10**400}, {"10.0.0.0/8": 1, "10.0.0.0/255.0.0.0": 2},
                                 {f"10.0.{i // 256}.{i % 256}/32": 1 for i in range(4097)}]),
            (frames.SESSIONS, "sessions", [[], None, {}, SESSION, [None], [[]], [SESSION] * 1025]),
        ]
        templates = dict(VALID)
        for t, key, values in bad:
            for value in values:
                message = dict(templates[t], **{key: value})
                self.assertCode("bad-payload", encodeFrame(t, message))

    def test_badMetrics(self):
        """Every metric is checked for type and range; snapshots must be complete."""
        bad = {
            "state": ["up", "MAYBE", 1],
            "connections": [-1, 1.5, "3", True],
            "response_time": [-0.1, "1", None],
            "bandwidth": [-1],
            "packets": [2.5, -1],
            "load": [100.5, -1],
        }
        for metric, values in bad.items():
            for value in values:
                snapshot = {"seq": 1, "services": {"web": dict(METRICS, **{metric: value})}}
                self.assertCode("bad-payload", encodeFrame(frames.SNAPSHOT, snapshot))
                delta = {"seq": 2, "base_seq": 1, "changes": {"web": {metric: value}}}
                self.assertCode("bad-payload", encodeFrame(frames.DELTA, delta))
        for metric in METRICS:
            partial = {k: v for k, v in METRICS.items() if k != metric}
            e = self.assertCode("bad-payload", encodeFrame(frames.SNAPSHOT, {"seq": 1, "services": {"web": partial}}))
            self.assertIn(metric, e.message)

    def test_unknownMetric(self):
        e = self.assertCode("bad-payload", encodeFrame(frames.SNAPSHOT, {"seq": 1, "services": {"web": dict(METRICS, temp=3)}}))
        self.assertIn("temp", e.message)

    def test_badSessionEntries(self):
        """Every key of a SESSIONS entry is required and checked."""
        bad = {
            "vserver": ["", 1, None, "x" * 256],
            "network": ["198.51.100.1/24", "nonsense", 3, None, "fe80::%eth0/64"],
            "service": ["", 2, "x" * 256],
            "version": [0, -1, 1.5, True, "1", None, 1 << 63],
            "origin": ["", None, 7, "x" * 256],
            "ttl": [0, 0.0, -1, "5", None, True, 10**400],
        }
        for key, values in bad.items():
            for value in values:
                entry = dict(SESSION, **{key: value})
                e = self.assertCode("bad-payload", encodeFrame(frames.SESSIONS, {"sessions": [SESSION, entry]}))
                self.assertIn("sessions[1]", e.message)
                self.assertIn(key, e.message)
            missing = {k: v for k, v in SESSION.items() if k != key}
            e = self.assertCode("bad-payload", encodeFrame(frames.SESSIONS, {"sessions": [missing]}))
            self.assertIn(key, e.message)

    def test_decodeMessageUnknownType(self):
        self.assertEqual(self.assertRaises(ProtocolError, decodeMessage, 77, b"{}").code, "unknown-type")


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points + [len(data)]:
        chunks.append(data[last:p])
        last = p
    return chunks


def collect(chunks: list[bytes]):
    """Feed chunks; return the frames and the error code (or None)."""
    decoder = FrameDecoder(maxFrameSize=4096)
    out = []
    try:
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
    except ProtocolError as e:
        return out, e.code
    return out, None


metricValues = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(["UP", "DOWN"]),
        "connections": st.integers(0, 10**9),
        "response_time": st.floats(0, 1e6),
        "load": st.floats(0, 100),
    },
).filter(bool)
messages = st.one_of(
    st.builds(lambda ts: (frames.KEEPALIVE, {"ts": ts}), st.floats(-1e9, 1e9)),
    st.builds(lambda c, m: (frames.ERROR, {"code": c, "message": m}), st.text(min_size=1, max_size=20), st.text(max_size=50)),
    st.builds(
        lambda s, c: (frames.DELTA, {"seq": s + 1, "base_seq": s, "changes": c}),
        st.integers(0, 1000),
        st.dictionaries(st.text(min_size=1, max_size=10), metricValues, max_size=4),
    ),
    st.builds(lambda s: (frames.RESYNC, {"seq": s}), st.none() | st.integers(0, 10)),
    st.builds(
        lambda n: (frames.PROBE, {"networks": [str(x) for x in dict.fromkeys(n)]}),
        st.lists(st.ip_addresses(), min_size=1, max_size=5),
    ),
    st.builds(
        lambda d: (frames.RTT, {"rtt": {str(k): v for k, v in d.items()}}),
        st.dictionaries(st.ip_addresses(), st.floats(0, 1e6), max_size=5),
    ),
    st.builds(
        lambda e: (frames.SESSIONS, {"sessions": e}),
        st.lists(
            st.builds(
                lambda a, v, t: dict(SESSION, network=str(a) + ("/32" if a.version == 4 else "/128"), version=v, ttl=t),
                st.ip_addresses(), st.integers(1, 10), st.floats(0.001, 1e6),
            ),
            min_size=1, max_size=4,
        ),
    ),
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(messages, max_size=8), st.lists(st.integers(0, 10**6), max_size=20))
    def test_splitsDoNotMatter(self, msgs, cuts):
        """The same bytes cut anywhere decode to the same frames."""
        data = b"".join(encodeFrame(t, m) for t, m in msgs)
        whole = collect([data])
        self.assertEqual(whole, collect(splits(data, cuts)))
        self.assertEqual(whole[1], None)
        self.assertEqual([t for t, _ in whole[0]], [t for t, _ in msgs])

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.lists(st.integers(0, 10**6), max_size=10))
    def test_garbageOnlyRaisesProtocolError(self, data, cuts):
        """Random bytes, cut anywhere, raise nothing but ProtocolError, and the same one."""
        self.assertEqual(collect([data]), collect(splits(data, cuts)))

    @settings(max_examples=300, deadline=None)
    @given(st.integers(1, 11), st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=10,
    ), st.sampled_from(["versions", "name", "role", "nonce", "auth", "proof", "code", "message", "ts", "seq", "base_seq", "services", "changes", "networks", "rtt", "sessions"]))
    def test_randomJSONOnlyRaisesProtocolError(self, frameType, value, key):
        """Any JSON value under any expected key of any frame: a message or a ProtocolError."""
        template = dict(VALID)[frameType]
        payload = json.dumps(dict(template, **{key: value})).encode()
        try:
            decodeMessage(frameType, payload)
        except ProtocolError:
            pass
