"""
SNMP GET for the core that masters SNMP sites: one pysnmp engine per core,
one target per site, requests answered as Deferreds.

pysnmp does the protocol (BER, v1/v2c communities, v3 USM with engine
discovery, key localisation, authentication and privacy, request ids,
timeouts and retries); L{carrier} moves its datagrams with the core's
reactor.  Errors come back as L{SNMPError} with words an operator can act
on: which agent, which credentials, what to check.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Sequence

from pysnmp.entity import config as engineConfig
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import ObjectName
from pyasn1.type.univ import Null
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from gslb_twisted.config import SNMPSettings
from gslb_twisted.snmp.carrier import TwistedUDP6Transport, TwistedUDPTransport
from gslb_twisted.snmp.sampling import Answer

__all__ = ["SNMPClient", "SNMPError", "answerOf"]

AUTH_PROTOCOLS = {
    None: engineConfig.USM_AUTH_NONE,
    "MD5": engineConfig.USM_AUTH_HMAC96_MD5,
    "SHA": engineConfig.USM_AUTH_HMAC96_SHA,
    "SHA224": engineConfig.USM_AUTH_HMAC128_SHA224,
    "SHA256": engineConfig.USM_AUTH_HMAC192_SHA256,
    "SHA384": engineConfig.USM_AUTH_HMAC256_SHA384,
    "SHA512": engineConfig.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    None: engineConfig.USM_PRIV_NONE,
    "DES": engineConfig.USM_PRIV_CBC56_DES,
    "AES": engineConfig.USM_PRIV_CFB128_AES,
    "AES128": engineConfig.USM_PRIV_CFB128_AES,
    "AES192": engineConfig.USM_PRIV_CFB192_AES,
    "AES256": engineConfig.USM_PRIV_CFB256_AES,
}
# The user of the liveness probe: unknown to every agent on purpose.  An
# agent that says so (a USM report) is alive -- so a v2c request it ignored
# carried a community it does not accept.
PROBE_USER = "gslb-twisted-probe"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"

log = Logger()


class SNMPError(Exception):
    """
    A poll failed.  C{kind}: "timeout" (no answer), "credentials" (the
    agent answers but refuses ours), "agent" (an error status), "engine".
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


def answerOf(value) -> Answer:
    """An answered value as a number (if it is one) and its SNMP type."""
    kind = type(value).__name__
    if kind in ("NoSuchObject", "NoSuchInstance", "EndOfMibView"):
        return Answer(None, kind[0].lower() + kind[1:])
    if kind in ("OctetString", "DisplayString", "Opaque"):
        # UCD's laLoad and friends are numbers written as strings.
        try:
            return Answer(float(bytes(value).decode("ascii").strip()), kind)
        except (ValueError, UnicodeDecodeError):
            return Answer(None, kind)
    try:
        return Answer(float(int(value)), kind)
    except (TypeError, ValueError):
        return Answer(None, kind)


class SNMPClient:
    """
    The SNMP engine of one core.

    @param bindAddress: the local address requests come from (the
        appliance's, so that agents can allow it by address).
    """

    def __init__(self, reactor, bindAddress: Optional[str] = None) -> None:
        from gslb_twisted.snmp.carrier import TwistedDispatcher

        self.reactor = reactor
        self.bindAddress = bindAddress
        self.engine = SnmpEngine()
        self.dispatcher = TwistedDispatcher(reactor)
        self.engine.register_transport_dispatcher(self.dispatcher)
        self.generator = cmdgen.GetCommandGenerator()
        self.transports: dict[int, TwistedUDPTransport] = {}
        self.targets: dict[str, tuple[str, int, SNMPSettings, float]] = {}
        self._users: set[str] = set()
        self._communities: set[str] = set()
        self._probes: set[str] = set()
        self.requests = 0

    # --- configuration -------------------------------------------------------

    def _transport(self, family: int) -> TwistedUDPTransport:
        transport = self.transports.get(family)
        if transport is None:
            kind = TwistedUDP6Transport if family == 6 else TwistedUDPTransport
            interface = self.bindAddress if self.bindAddress and (":" in self.bindAddress) == (family == 6) else kind.INTERFACE
            try:
                transport = kind(self.reactor).open_client_mode((interface, 0))
            except CannotListenError as e:
                if interface == kind.INTERFACE:
                    raise
                # The appliance's address is not on this host (a topology
                # written for another machine): poll from any address.
                log.warn("SNMP: cannot send from {address} ({error}); using any local address",
                         address=interface, error=e.socketError)
                transport = kind(self.reactor).open_client_mode((kind.INTERFACE, 0))
            engineConfig.add_transport(self.engine, transport.DOMAIN, transport)
            self.transports[family] = transport
        return transport

    def addTarget(self, name: str, host: str, settings: SNMPSettings, timeout: float) -> None:
        """Poll site C{name}'s agent at C{host}:C{settings.port} with its credentials."""
        if name in self.targets:
            return
        transport = self._transport(6 if ":" in host else 4)
        params = f"p-{name}"
        if settings.version in ("1", "2c"):
            # One security name per community string: pysnmp maps the
            # community of a response back to a security name, and two
            # names for one community would make responses mismatch.
            security = "s-" + hashlib.sha1(settings.community.encode("utf-8")).hexdigest()[:16]
            if security not in self._communities:
                engineConfig.add_v1_system(
                    self.engine, "c" + security[1:], settings.community, transportTag=b"", securityName=security
                )
                self._communities.add(security)
            engineConfig.add_target_parameters(
                self.engine, params, security, "noAuthNoPriv", 0 if settings.version == "1" else 1
            )
        else:
            if settings.user not in self._users:
                engineConfig.add_v3_user(
                    self.engine,
                    settings.user,
                    AUTH_PROTOCOLS[settings.auth_protocol],
                    settings.auth_key,
                    PRIV_PROTOCOLS[settings.priv_protocol],
                    settings.priv_key,
                )
                self._users.add(settings.user)
            engineConfig.add_target_parameters(self.engine, params, settings.user, settings.securityLevel, 3)
        engineConfig.add_target_address(
            self.engine, f"a-{name}", transport.DOMAIN, (host, settings.port), params,
            timeout=max(1, round(timeout * 100)), retryCount=settings.retries,
        )
        self.targets[name] = (host, settings.port, settings, timeout)

    def close(self) -> None:
        self.dispatcher.close_dispatcher()
        self.transports.clear()

    # --- requests ------------------------------------------------------------

    def get(self, name: str, oids: Sequence[str]) -> defer.Deferred:
        """
        GET C{oids} from site C{name}'s agent: a Deferred firing with
        {oid: L{Answer}}, or failing with L{SNMPError}.
        """
        host, port, settings, timeout = self.targets[name]
        result: defer.Deferred = defer.Deferred()
        self._send(f"a-{name}", list(oids), settings.version == "1", result, {}, name)
        return result

    def _send(self, target: str, oids: list, v1: bool, result: defer.Deferred, known: dict, name: str) -> None:
        varBinds = [(ObjectName(oid), Null("")) for oid in oids]

        def answered(snmpEngine, handle, errorIndication, errorStatus, errorIndex, varBinds, context):
            # Called from inside pysnmp: settle on the next reactor turn.
            self.reactor.callLater(0, self._answered, name, oids, v1, result, known,
                                   errorIndication, errorStatus, errorIndex, varBinds)

        self.requests += 1
        try:
            self.generator.send_varbinds(self.engine, target, None, "", varBinds, answered)
        except Exception as e:  # pysnmp refuses to build the request
            result.errback(SNMPError("engine", f"cannot send an SNMP request: {e}"))

    def _answered(self, name, oids, v1, result, known, errorIndication, errorStatus, errorIndex, varBinds) -> None:
        try:
            self._settle(name, oids, v1, result, known, errorIndication, errorStatus, errorIndex, varBinds)
        except Exception as e:
            # Whatever went wrong reading the answer, the request has an
            # outcome: the poll fails, with the reason.
            if not result.called:
                result.errback(SNMPError("engine", f"cannot read the agent's answer: {e}"))
            else:
                raise

    def _settle(self, name, oids, v1, result, known, errorIndication, errorStatus, errorIndex, varBinds) -> None:
        host, port, settings, timeout = self.targets[name]
        if errorIndication:
            result.errback(self._explain(name, errorIndication))
            return
        if errorStatus:
            status = errorStatus.prettyPrint() if hasattr(errorStatus, "prettyPrint") else str(errorStatus)
            index = int(errorIndex) - 1 if errorIndex else -1
            if v1 and status == "noSuchName" and 0 <= index < len(oids):
                # SNMPv1 fails the whole request for one missing OID: note
                # it, ask again for the others.
                known[oids[index]] = Answer(None, "noSuchName")
                rest = oids[:index] + oids[index + 1:]
                if rest:
                    self._send(f"a-{name}", rest, v1, result, known, name)
                else:
                    result.callback(known)
                return
            where = f" at {oids[index]}" if 0 <= index < len(oids) else ""
            result.errback(SNMPError("agent", f"the agent at {host}:{port} answered {status}{where}"))
            return
        answers = dict(known)
        for oid, value in varBinds:
            answers[str(oid)] = answerOf(value)
        result.callback(answers)

    def _explain(self, name: str, indication) -> SNMPError:
        host, port, settings, timeout = self.targets[name]
        where = f"{host}:{port}"
        user = settings.user
        if isinstance(indication, errind.RequestTimedOut):
            return SNMPError(
                "timeout", f"no answer from the agent at {where} ({settings.retries + 1} tries of {timeout:g} s)"
            )
        if isinstance(indication, (errind.UnknownUserName, errind.UnknownSecurityName)):
            return SNMPError("credentials", f"the agent at {where} does not know SNMPv3 user {user!r}")
        if isinstance(indication, (errind.WrongDigest, errind.AuthenticationFailure, errind.AuthenticationError)):
            return SNMPError(
                "credentials",
                f"the agent at {where} refused user {user!r}: wrong auth_key or auth_protocol ({indication})",
            )
        if isinstance(indication, errind.DecryptionError):
            return SNMPError(
                "credentials", f"the agent at {where} could not decrypt: wrong priv_key or priv_protocol for {user!r}"
            )
        if isinstance(indication, errind.UnsupportedSecurityLevel):
            return SNMPError(
                "credentials", f"the agent at {where} does not allow {settings.securityLevel} for user {user!r}"
            )
        return SNMPError("engine", f"SNMP with the agent at {where}: {indication}")

    def probe(self, name: str) -> defer.Deferred:
        """
        Does an SNMP agent answer at site C{name}'s address at all?  An
        SNMPv3 request as an unknown user needs no credentials: a live agent
        answers with a report (engine discovery, then unknown user).  Fires
        with True or False.
        """
        host, port, settings, timeout = self.targets[name]
        target = f"probe-{name}"
        if target not in self._probes:
            transport = self._transport(6 if ":" in host else 4)
            if PROBE_USER not in self._users:
                engineConfig.add_v3_user(self.engine, PROBE_USER)
                self._users.add(PROBE_USER)
            engineConfig.add_target_parameters(self.engine, f"pp-{name}", PROBE_USER, "noAuthNoPriv", 3)
            engineConfig.add_target_address(
                self.engine, target, transport.DOMAIN, (host, port), f"pp-{name}",
                timeout=max(1, round(timeout * 100)), retryCount=0,
            )
            self._probes.add(target)
        alive: defer.Deferred = defer.Deferred()

        def answered(snmpEngine, handle, errorIndication, errorStatus, errorIndex, varBinds, context):
            timedOut = isinstance(errorIndication, errind.RequestTimedOut)
            self.reactor.callLater(0, alive.callback, not timedOut)

        try:
            self.generator.send_varbinds(self.engine, target, None, "", [(ObjectName(SYS_UPTIME), Null(""))], answered)
        except Exception:
            log.failure("SNMP liveness probe of {site}", site=name)
            alive.callback(False)
        return alive
