"""
MEP authentication: pure HMAC-SHA256 challenge-response (docs/MEP.md, section 3).

Each end proves knowledge of the shared secret over the I{verifier's} fresh
nonce, both names, its own role and the negotiated version, so that a proof
is worthless in any other session, in the other direction or to another
peer.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from gslb_twisted.mep.frames import NONCE_SIZE

_DOMAIN = b"MEP-AUTH"
_FIELD = struct.Struct("!H")


def newNonce() -> bytes:
    """A fresh random challenge of L{NONCE_SIZE} bytes."""
    return os.urandom(NONCE_SIZE)


def _field(value: bytes) -> bytes:
    return _FIELD.pack(len(value)) + value


def proof(
    secret: bytes,
    version: int,
    proverRole: str,
    proverName: str,
    verifierName: str,
    verifierNonce: bytes,
    proverNonce: bytes,
) -> bytes:
    """The 32-byte proof the prover sends in its AUTH frame."""
    message = _DOMAIN + b"".join(
        _field(part)
        for part in (
            str(version).encode("ascii"),
            proverRole.encode("utf-8"),
            proverName.encode("utf-8"),
            verifierName.encode("utf-8"),
            verifierNonce,
            proverNonce,
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def verify(
    secret: bytes,
    received: bytes,
    version: int,
    proverRole: str,
    proverName: str,
    verifierName: str,
    verifierNonce: bytes,
    proverNonce: bytes,
) -> bool:
    """Whether C{received} is the prover's proof, compared in constant time."""
    expected = proof(secret, version, proverRole, proverName, verifierName, verifierNonce, proverNonce)
    return hmac.compare_digest(expected, received)
