"""Tests for L{gslb_twisted.mep.auth}: HMAC-SHA256 challenge-response."""

from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.mep import auth
from gslb_twisted.mep.frames import NONCE_SIZE

SECRET = b"shared-secret"
NA, NS = b"a" * 32, b"s" * 32
ARGS = (1, "site", "east", "gslb1", NA, NS)


class AuthTests(SynchronousTestCase):
    def test_nonce(self):
        """Nonces are 32 random bytes, fresh each time."""
        a, b = auth.newNonce(), auth.newNonce()
        self.assertEqual(len(a), NONCE_SIZE)
        self.assertNotEqual(a, b)

    def test_proofVerifies(self):
        p = auth.proof(SECRET, *ARGS)
        self.assertEqual(len(p), 32)
        self.assertTrue(auth.verify(SECRET, p, *ARGS))

    def test_wrongSecret(self):
        self.assertFalse(auth.verify(b"other", auth.proof(SECRET, *ARGS), *ARGS))

    def test_everyInputMatters(self):
        """Changing any one input (version, role, names, either nonce) invalidates the proof."""
        p = auth.proof(SECRET, *ARGS)
        variants = [
            (2, "site", "east", "gslb1", NA, NS),
            (1, "appliance", "east", "gslb1", NA, NS),
            (1, "site", "west", "gslb1", NA, NS),
            (1, "site", "east", "gslb2", NA, NS),
            (1, "site", "east", "gslb1", b"b" * 32, NS),  # another session's challenge
            (1, "site", "east", "gslb1", NA, b"t" * 32),
        ]
        for args in variants:
            self.assertFalse(auth.verify(SECRET, p, *args), args)

    def test_reflection(self):
        """A proof sent back to its author in the other direction does not verify."""
        p = auth.proof(SECRET, 1, "site", "east", "gslb1", NA, NS)
        self.assertFalse(auth.verify(SECRET, p, 1, "appliance", "gslb1", "east", NS, NA))

    def test_unambiguousFields(self):
        """Moving bytes between adjacent names gives another proof."""
        a = auth.proof(SECRET, 1, "site", "ab", "c", NA, NS)
        b = auth.proof(SECRET, 1, "site", "a", "bc", NA, NS)
        self.assertNotEqual(a, b)

    def test_truncatedProof(self):
        self.assertFalse(auth.verify(SECRET, auth.proof(SECRET, *ARGS)[:31], *ARGS))


class VersionTwoTests(SynchronousTestCase):
    """Version 2: proofs cover the offered versions; per-session, per-direction frame MACs."""

    def test_proofCoversOfferedVersions(self):
        p = auth.proof(SECRET, 2, "site", "east", "gslb1", NA, NS, (2,), (2,))
        self.assertTrue(auth.verify(SECRET, p, 2, "site", "east", "gslb1", NA, NS, (2,), (2,)))
        self.assertFalse(auth.verify(SECRET, p, 2, "site", "east", "gslb1", NA, NS, (2, 9), (2,)))
        self.assertFalse(auth.verify(SECRET, p, 2, "site", "east", "gslb1", NA, NS, (2,), (1, 2)))

    def test_versionOneProofUnchanged(self):
        """Version 1 proofs are what they always were (the lists are not part of them)."""
        self.assertEqual(auth.proof(SECRET, *ARGS), auth.proof(SECRET, *ARGS, (1, 2), (1,)))

    def test_keysPerSessionAndDirection(self):
        key = auth.sessionKey(SECRET, 2, "site", "east", "gslb1", NS, NA)
        self.assertEqual(len(key), 32)
        self.assertEqual(key, auth.sessionKey(SECRET, 2, "site", "east", "gslb1", NS, NA))
        others = [
            auth.sessionKey(SECRET, 2, "appliance", "gslb1", "east", NA, NS),  # the other direction
            auth.sessionKey(SECRET, 2, "site", "east", "gslb1", b"t" * 32, NA),  # another session
            auth.sessionKey(b"other", 2, "site", "east", "gslb1", NS, NA),
        ]
        for other in others:
            self.assertNotEqual(key, other)

    def test_frameMACCounts(self):
        """The Nth tag depends on N: the same frame sealed twice gets two tags; the receiver follows."""
        key = auth.sessionKey(SECRET, 2, "site", "east", "gslb1", NS, NA)
        sender, receiver = auth.FrameMAC(key), auth.FrameMAC(key)
        first, second = sender.seal(7, b"{}"), sender.seal(7, b"{}")
        self.assertEqual(len(first), 16)
        self.assertNotEqual(first, second)
        self.assertTrue(receiver.check(7, b"{}", first))
        self.assertTrue(receiver.check(7, b"{}", second))
        self.assertFalse(auth.FrameMAC(key).check(6, b"{}", first))  # another type
        self.assertFalse(auth.FrameMAC(key).check(7, b"{ }", first))  # another payload
        self.assertFalse(auth.FrameMAC(key).check(7, b"{}", second))  # out of turn
