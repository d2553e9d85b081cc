"""
TLS for MEP (docs/MEP.md, section 5): connection creators for
C{SSL4ServerEndpoint}/C{listenSSL} and C{wrapClientTLS}/C{connectSSL}, built
from PEM files.

These read files: call them while assembling services, not from a reactor
callback.
"""

from __future__ import annotations

import re
from typing import Optional

from OpenSSL.crypto import FILETYPE_PEM
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.DOTALL)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _certificates(path: str) -> list[ssl.Certificate]:
    blocks = _PEM_CERT.findall(_read(path))
    if not blocks:
        raise ValueError(f"{path}: no PEM certificate found")
    return [ssl.Certificate.loadPEM(block) for block in blocks]


def _privateCertificate(certPath: str, keyPath: str) -> tuple[ssl.PrivateCertificate, list[ssl.Certificate]]:
    chain = _certificates(certPath)
    key = ssl.KeyPair.load(_read(keyPath), FILETYPE_PEM)
    return ssl.PrivateCertificate.fromCertificateAndKeyPair(chain[0], key), chain[1:]


def serverContextFactory(certPath: str, keyPath: str, caPath: Optional[str] = None) -> IOpenSSLServerConnectionCreator:
    """
    The listening end's TLS options: present the certificate in C{certPath}
    (PEM; intermediate certificates may follow it) with the key in
    C{keyPath}.  With C{caPath}, require a client certificate issued by one
    of the CA certificates in that file.
    """
    private, chain = _privateCertificate(certPath, keyPath)
    options = dict(
        privateKey=private.privateKey.original,
        certificate=private.original,
        extraCertChain=[c.original for c in chain] or None,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
    if caPath is not None:
        options["trustRoot"] = ssl.trustRootFromCertificates(_certificates(caPath))
    return ssl.CertificateOptions(**options)


def clientContextFactory(
    hostname: str,
    caPath: Optional[str] = None,
    certPath: Optional[str] = None,
    keyPath: Optional[str] = None,
) -> IOpenSSLClientConnectionCreator:
    """
    The connecting end's TLS options: verify that the server's certificate
    names C{hostname} (an IP address or a DNS name) and is issued by a CA
    in C{caPath} or, without it, by one the platform trusts.  With
    C{certPath} and C{keyPath}, present that client certificate.
    """
    trustRoot = ssl.trustRootFromCertificates(_certificates(caPath)) if caPath is not None else None
    clientCertificate = None
    if certPath is not None and keyPath is not None:
        clientCertificate, _ = _privateCertificate(certPath, keyPath)
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=trustRoot,
        clientCertificate=clientCertificate,
        extraCertificateOptions={"raiseMinimumTo": ssl.TLSVersion.TLSv1_2},
    )
