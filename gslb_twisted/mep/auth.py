"""
MEP authentication: pure HMAC-SHA256 challenge-response and, from version 2,
per-session frame integrity (docs/MEP.md, section 3).

Each end proves knowledge of the shared secret over the I{verifier's} fresh
nonce, both names, its own role and the negotiated version (from version 2
also both ends' offered versions, so no one on the path can talk them down),
so that a proof is worthless in any other session, in the other direction or
to another peer.  From version 2 each direction of an authenticated session
then has its own key, derived from the secret and both nonces, and every
later frame carries a MAC over an implicit frame counter: a frame altered,
replayed, reordered, dropped or moved to another session fails its check.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Sequence

from gslb_twisted.mep.frames import NONCE_SIZE, TAG_SIZE

_DOMAIN = b"MEP-AUTH"
_KEY_DOMAIN = b"MEP-KEY"
_FIELD = struct.Struct("!H")
_COUNTER = struct.Struct("!QB")

# The first version whose proofs cover the offered versions and whose
# authenticated frames carry a MAC.
SEALED_VERSION = 2


def newNonce() -> bytes:
    """A fresh random challenge of L{NONCE_SIZE} bytes."""
    return os.urandom(NONCE_SIZE)


def _field(value: bytes) -> bytes:
    return _FIELD.pack(len(value)) + value


def _versions(versions: Sequence[int]) -> bytes:
    return ",".join(str(v) for v in sorted(versions)).encode("ascii")


def proof(
    secret: bytes,
    version: int,
    proverRole: str,
    proverName: str,
    verifierName: str,
    verifierNonce: bytes,
    proverNonce: bytes,
    proverVersions: Sequence[int] = (),
    verifierVersions: Sequence[int] = (),
) -> bytes:
    """
    The 32-byte proof the prover sends in its AUTH frame.

    @param proverVersions: the versions the prover's HELLO offered, and
        C{verifierVersions} those of the verifier's: covered from
        L{SEALED_VERSION} on (ignored before).
    """
    parts = [
        str(version).encode("ascii"),
        proverRole.encode("utf-8"),
        proverName.encode("utf-8"),
        verifierName.encode("utf-8"),
        verifierNonce,
        proverNonce,
    ]
    if version >= SEALED_VERSION:
        parts += [_versions(proverVersions), _versions(verifierVersions)]
    return hmac.new(secret, _DOMAIN + b"".join(_field(part) for part in parts), hashlib.sha256).digest()


def verify(
    secret: bytes,
    received: bytes,
    version: int,
    proverRole: str,
    proverName: str,
    verifierName: str,
    verifierNonce: bytes,
    proverNonce: bytes,
    proverVersions: Sequence[int] = (),
    verifierVersions: Sequence[int] = (),
) -> bool:
    """Whether C{received} is the prover's proof, compared in constant time."""
    expected = proof(
        secret, version, proverRole, proverName, verifierName, verifierNonce, proverNonce, proverVersions, verifierVersions
    )
    return hmac.compare_digest(expected, received)


def sessionKey(
    secret: bytes,
    version: int,
    senderRole: str,
    senderName: str,
    receiverName: str,
    senderNonce: bytes,
    receiverNonce: bytes,
) -> bytes:
    """
    The key of one direction of one session: HMAC-SHA256 of the secret over
    both nonces (fresh per session), the names and the sender's role (one
    key per direction, so a frame cannot be reflected back to its sender).
    """
    parts = (
        str(version).encode("ascii"),
        senderRole.encode("utf-8"),
        senderName.encode("utf-8"),
        receiverName.encode("utf-8"),
        senderNonce,
        receiverNonce,
    )
    return hmac.new(secret, _KEY_DOMAIN + b"".join(_field(part) for part in parts), hashlib.sha256).digest()


class FrameMAC:
    """
    The MACs of one direction of a session: the Nth frame's tag is
    HMAC-SHA256(key, N as 8 bytes big-endian, type byte, payload) cut to
    L{TAG_SIZE} bytes, N counting from 0 at the first frame after the
    sender's AUTH.  The counter is never sent: both ends count, so a replayed,
    reordered or missing frame gives the receiver another N and fails.
    """

    __slots__ = ("_base", "counter")

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        self.counter = 0

    def _tag(self, frameType: int, payload: bytes) -> bytes:
        mac = self._base.copy()
        mac.update(_COUNTER.pack(self.counter, frameType))
        mac.update(payload)
        self.counter += 1
        return mac.digest()[:TAG_SIZE]

    def seal(self, frameType: int, payload: bytes) -> bytes:
        """The tag of the next frame sent."""
        return self._tag(frameType, payload)

    def check(self, frameType: int, payload: bytes, tag: bytes) -> bool:
        """Whether C{tag} is the next received frame's, in constant time."""
        return hmac.compare_digest(self._tag(frameType, payload), tag)
