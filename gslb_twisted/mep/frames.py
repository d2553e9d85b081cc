"""
MEP framing: pure encoding and decoding, no I/O (see docs/MEP.md, section 2).

A frame is a 4-byte big-endian length, a 1-byte type and a JSON object
payload.  L{FrameDecoder} is fed bytes as they arrive and yields validated
C{(type, message)} pairs; anything wrong raises L{ProtocolError} with the
ERROR code to send, and nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import math
import struct
from typing import Any, Callable, Iterator, Optional

from gslb_twisted.config import SERVICE_METRICS

HELLO = 1
AUTH = 2
ERROR = 3
KEEPALIVE = 4
KEEPALIVE_ECHO = 5
SNAPSHOT = 6
DELTA = 7
RESYNC = 8
PROBE = 9
RTT = 10
SESSIONS = 11

NAMES = {
    HELLO: "HELLO",
    AUTH: "AUTH",
    ERROR: "ERROR",
    KEEPALIVE: "KEEPALIVE",
    KEEPALIVE_ECHO: "KEEPALIVE-ECHO",
    SNAPSHOT: "SNAPSHOT",
    DELTA: "DELTA",
    RESYNC: "RESYNC",
    PROBE: "PROBE",
    RTT: "RTT",
    SESSIONS: "SESSIONS",
}

DEFAULT_MAX_FRAME_SIZE = 1 << 20
ROLES = ("appliance", "site")
# The protocol versions this implementation speaks; 2 seals authenticated
# frames with a per-session MAC (docs/MEP.md, section 3).
VERSIONS = (1, 2)
AUTH_MODES = ("hmac-sha256", "none")
NONCE_SIZE = 32
TAG_SIZE = 16  # bytes of HMAC-SHA256 that seal a frame from version 2 on (128 bits)
MAX_SEQ = (1 << 63) - 1
MAX_NAME = 255
# Dynamic proximity and persistence exchange (docs/MEP.md, section 2).
MAX_PROBE_NETWORKS = 1024
MAX_RTT_ENTRIES = 4096
MAX_SESSION_ENTRIES = 1024
MAX_NETWORK_TEXT = 128

_HEADER = struct.Struct("!IB")
_LENGTH = struct.Struct("!I")


class ProtocolError(Exception):
    """
    The peer broke the protocol: C{code} is the ERROR code to send
    (docs/MEP.md, section 3), C{message} says what was wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def encodeFrame(frameType: int, message: dict, maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE, mac=None) -> bytes:
    """
    Encode one frame; with C{mac} (an L{auth.FrameMAC}, the sending
    direction's) the frame ends with the tag of the next frame.

    @raise ValueError: the frame would be longer than C{maxFrameSize}, or
        C{message} holds a non-finite number.
    """
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    length = len(payload) + 1 + (TAG_SIZE if mac is not None else 0)
    if length > maxFrameSize:
        raise ValueError(f"{NAMES.get(frameType, frameType)} frame of {length} bytes exceeds the maximum of {maxFrameSize}")
    if mac is None:
        return _HEADER.pack(length, frameType) + payload
    return _HEADER.pack(length, frameType) + payload + mac.seal(frameType, payload)


class FrameDecoder:
    """
    Incremental decoder: C{feed} it bytes, iterate what it returns.

    After a L{ProtocolError} the decoder is spent: every later C{feed}
    raises the same error.

    Set C{mac} (the receiving direction's L{auth.FrameMAC}) between two
    frames and every later frame must end with its tag (C{bad-mac}
    otherwise); frames are decoded lazily, so a C{mac} set while handling
    one frame governs the next even when both arrived in one read.
    """

    def __init__(self, maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.maxFrameSize = maxFrameSize
        self.mac = None
        self._buffer = bytearray()
        self._failed: Optional[ProtocolError] = None

    def feed(self, data: bytes) -> Iterator[tuple[int, dict]]:
        """
        Add C{data} and return an iterator over the complete frames now
        buffered, in order, as C{(type, message)}.  The error of a bad frame
        is raised when the iteration reaches it, after the good frames
        before it.
        """
        if self._failed is None:
            self._buffer += data
        return self._drain()

    def _drain(self) -> Iterator[tuple[int, dict]]:
        while True:
            if self._failed is not None:
                raise self._failed
            if len(self._buffer) < _LENGTH.size:
                return
            (length,) = _LENGTH.unpack_from(self._buffer)
            try:
                if length == 0:
                    raise ProtocolError("bad-frame", "frame length 0 (no type byte)")
                if length > self.maxFrameSize:
                    raise ProtocolError(
                        "frame-too-large", f"announced frame of {length} bytes exceeds the maximum of {self.maxFrameSize}"
                    )
                if len(self._buffer) < _LENGTH.size + length:
                    return
                frameType = self._buffer[_LENGTH.size]
                payload = bytes(self._buffer[_LENGTH.size + 1 : _LENGTH.size + length])
                del self._buffer[: _LENGTH.size + length]
                if self.mac is not None:
                    payload = self._unseal(frameType, payload)
                message = decodeMessage(frameType, payload)
            except ProtocolError as e:
                self._failed = e
                self._buffer.clear()
                raise
            yield frameType, message

    def _unseal(self, frameType: int, body: bytes) -> bytes:
        """The payload of a sealed frame whose tag checks, else C{bad-mac}."""
        number = self.mac.counter
        if len(body) < TAG_SIZE or not self.mac.check(frameType, body[:-TAG_SIZE], body[-TAG_SIZE:]):
            raise ProtocolError(
                "bad-mac",
                f"frame {number} after AUTH ({NAMES.get(frameType, frameType)}) fails its integrity check: "
                "altered, replayed, reordered or a frame missing",
            )
        return body[:-TAG_SIZE]

    def pending(self) -> int:
        """The number of bytes buffered towards an incomplete frame."""
        return len(self._buffer)


def _reject(value: str) -> Any:
    raise ValueError(value)


def decodeMessage(frameType: int, payload: bytes) -> dict:
    """
    Parse and validate the payload of a frame of type C{frameType}.

    @return: the message, with only the known keys, numbers normalised.
    @raise ProtocolError: C{unknown-type} or C{bad-payload}.
    """
    validate = _VALIDATORS.get(frameType)
    if validate is None:
        raise ProtocolError("unknown-type", f"unknown frame type {frameType}")
    name = NAMES[frameType]
    try:
        message = json.loads(payload.decode("utf-8"), parse_constant=_reject)
    except (ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and
        # integers over the interpreter's digit limit.
        raise ProtocolError("bad-payload", f"{name} payload is not valid UTF-8 JSON ({type(e).__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad-payload", f"{name} payload is not a JSON object")
    return validate(name, message)


def _field(name: str, message: dict, key: str, check: Callable[[Any], Any], expected: str) -> Any:
    if key not in message:
        raise ProtocolError("bad-payload", f"{name} lacks {key!r}")
    try:
        return check(message[key])
    except (TypeError, ValueError):
        raise ProtocolError("bad-payload", f"{name} {key!r} must be {expected}") from None


def _isInt(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checkInt(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not _isInt(value) or not low <= value <= high:
            raise ValueError(value)
        return value

    return check


def _checkNumber(low: float, high: float = math.inf) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(value)
        try:
            value = float(value)
        except OverflowError:  # an integer too big for a float
            raise ValueError(value) from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(value)
        return value

    return check


def _checkString(maxLength: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= maxLength:
            raise ValueError(value)
        return value

    return check


def _checkChoice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(value)
        return value

    return check


def _checkHex32(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * NONCE_SIZE:
        raise ValueError(value)
    raw = bytes.fromhex(value)  # ValueError on a non-hex digit
    if len(raw) != NONCE_SIZE:  # fromhex skips whitespace
        raise ValueError(value)
    return raw


def _checkVersions(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= 16:
        raise ValueError(value)
    versions = tuple(_checkInt(1, 255)(v) for v in value)
    if len(set(versions)) != len(versions):
        raise ValueError(value)
    return versions


_checkSeq = _checkInt(0, MAX_SEQ)

METRIC_CHECKS: dict[str, Callable[[Any], Any]] = {
    "state": _checkChoice(("UP", "DOWN")),
    "connections": _checkInt(0, MAX_SEQ),
    "response_time": _checkNumber(0),
    "bandwidth": _checkNumber(0),
    "packets": _checkInt(0, MAX_SEQ),
    "load": _checkNumber(0, 100),
}
assert set(METRIC_CHECKS) == set(SERVICE_METRICS), "MEP metrics out of step with config.SERVICE_METRICS"


def _checkServices(name: str, key: str, value: Any, full: bool) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ProtocolError("bad-payload", f"{name} {key!r} must be an object of services")
    services = {}
    for service, metrics in value.items():
        if not 0 < len(service) <= MAX_NAME:
            raise ProtocolError("bad-payload", f"{name} has a service name of {len(service)} characters")
        if not isinstance(metrics, dict):
            raise ProtocolError("bad-payload", f"{name} service {service!r} must be an object of metrics")
        checked = {}
        for metric, raw in metrics.items():
            check = METRIC_CHECKS.get(metric)
            if check is None:
                raise ProtocolError("bad-payload", f"{name} service {service!r} has unknown metric {metric!r}")
            try:
                checked[metric] = check(raw)
            except (TypeError, ValueError):
                raise ProtocolError("bad-payload", f"{name} service {service!r} metric {metric!r} is out of range or mistyped") from None
        if full and len(checked) != len(METRIC_CHECKS):
            missing = ", ".join(sorted(set(METRIC_CHECKS) - set(checked)))
            raise ProtocolError("bad-payload", f"{name} service {service!r} lacks {missing}")
        if not checked:
            raise ProtocolError("bad-payload", f"{name} service {service!r} changes no metric")
        services[service] = checked
    return services


def _hello(name: str, m: dict) -> dict:
    return {
        "versions": _field(name, m, "versions", _checkVersions, "a list of 1 to 16 distinct integers 1..255"),
        "name": _field(name, m, "name", _checkString(MAX_NAME), "a string of 1 to 255 characters"),
        "role": _field(name, m, "role", _checkChoice(ROLES), '"appliance" or "site"'),
        "nonce": _field(name, m, "nonce", _checkHex32, "64 hex digits"),
        "auth": _field(name, m, "auth", _checkChoice(AUTH_MODES), '"hmac-sha256" or "none"'),
    }


def _auth(name: str, m: dict) -> dict:
    return {"proof": _field(name, m, "proof", _checkHex32, "64 hex digits")}


def _error(name: str, m: dict) -> dict:
    return {
        "code": _field(name, m, "code", _checkString(64), "a string of 1 to 64 characters"),
        "message": _field(name, m, "message", lambda v: v if isinstance(v, str) else _reject(v), "a string"),
    }


def _keepalive(name: str, m: dict) -> dict:
    return {"ts": _field(name, m, "ts", _checkNumber(-math.inf), "a finite number")}


def _snapshot(name: str, m: dict) -> dict:
    seq = _field(name, m, "seq", _checkSeq, "an integer from 0 to 2**63-1")
    if "services" not in m:
        raise ProtocolError("bad-payload", f"{name} lacks 'services'")
    return {"seq": seq, "services": _checkServices(name, "services", m["services"], full=True)}


def _delta(name: str, m: dict) -> dict:
    seq = _field(name, m, "seq", _checkSeq, "an integer from 0 to 2**63-1")
    baseSeq = _field(name, m, "base_seq", _checkSeq, "an integer from 0 to 2**63-1")
    if "changes" not in m:
        raise ProtocolError("bad-payload", f"{name} lacks 'changes'")
    return {"seq": seq, "base_seq": baseSeq, "changes": _checkServices(name, "changes", m["changes"], full=False)}


def _resync(name: str, m: dict) -> dict:
    seq = m.get("seq")
    if seq is not None:
        seq = _field(name, m, "seq", _checkSeq, "null or an integer from 0 to 2**63-1")
    return {"seq": seq}


def canonicalNetwork(value: Any) -> str:
    """
    C{value} as the canonical text of an IPv4 or IPv6 network
    (C{ipaddress.ip_network(value, strict=True)}: host bits must be zero; a
    bare address is a /32 or /128; no IPv6 zone such as C{%eth0}).

    @raise ValueError: too long, or not a network.
    @raise TypeError: not a string.
    """
    if not isinstance(value, str):
        raise TypeError(value)
    if not 0 < len(value) <= MAX_NETWORK_TEXT or "%" in value:
        raise ValueError(value)
    return str(ipaddress.ip_network(value, strict=True))


def _networkList(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_PROBE_NETWORKS:
        raise ProtocolError("bad-payload", f"{name} 'networks' must be a list of 1 to {MAX_PROBE_NETWORKS} networks")
    networks = []
    seen = set()
    for index, raw in enumerate(value):
        try:
            network = canonicalNetwork(raw)
        except (TypeError, ValueError):
            raise ProtocolError("bad-payload", f"{name} networks[{index}] is not a network in CIDR notation") from None
        if network in seen:
            raise ProtocolError("bad-payload", f"{name} lists {network} twice")
        seen.add(network)
        networks.append(network)
    return networks


def _probe(name: str, m: dict) -> dict:
    if "networks" not in m:
        raise ProtocolError("bad-payload", f"{name} lacks 'networks'")
    return {"networks": _networkList(name, m["networks"])}


# An RTT in milliseconds: a finite number >= 0, delivered as a float.
checkRTT = _checkNumber(0)


def _rtt(name: str, m: dict) -> dict:
    if "rtt" not in m:
        raise ProtocolError("bad-payload", f"{name} lacks 'rtt'")
    value = m["rtt"]
    if not isinstance(value, dict) or len(value) > MAX_RTT_ENTRIES:
        raise ProtocolError("bad-payload", f"{name} 'rtt' must be an object of at most {MAX_RTT_ENTRIES} networks")
    rtts = {}
    for raw, ms in value.items():
        try:
            network = canonicalNetwork(raw)
        except (TypeError, ValueError):
            raise ProtocolError("bad-payload", f"{name} has a key that is not a network in CIDR notation") from None
        if network in rtts:
            raise ProtocolError("bad-payload", f"{name} gives {network} twice")
        try:
            rtts[network] = checkRTT(ms)
        except (TypeError, ValueError):
            raise ProtocolError("bad-payload", f"{name} RTT of {network} must be a finite number of milliseconds >= 0") from None
    return {"rtt": rtts}


def _checkTTL(value: Any) -> float:
    ttl = checkRTT(value)  # a finite number >= 0 ...
    if ttl <= 0:  # ... and not 0
        raise ValueError(value)
    return ttl


# The keys of a SESSIONS entry, with their checks and what they must be.
SESSION_FIELDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "vserver": (_checkString(MAX_NAME), "a string of 1 to 255 characters"),
    "network": (canonicalNetwork, "a network in CIDR notation"),
    "service": (_checkString(MAX_NAME), "a string of 1 to 255 characters"),
    "version": (_checkInt(1, MAX_SEQ), "an integer from 1 to 2**63-1"),
    "origin": (_checkString(MAX_NAME), "a string of 1 to 255 characters"),
    "ttl": (_checkTTL, "a finite number of seconds > 0"),
}


def checkSessionEntry(name: str, index: int, entry: Any) -> dict:
    """
    One persistence session of a SESSIONS frame, checked and normalised
    (network canonical, ttl a float, unknown keys dropped).

    @raise ProtocolError: C{bad-payload}.
    """
    label = f"{name} sessions[{index}]"
    if not isinstance(entry, dict):
        raise ProtocolError("bad-payload", f"{label} must be an object")
    return {key: _field(label, entry, key, check, expected) for key, (check, expected) in SESSION_FIELDS.items()}


def _sessions(name: str, m: dict) -> dict:
    if "sessions" not in m:
        raise ProtocolError("bad-payload", f"{name} lacks 'sessions'")
    value = m["sessions"]
    if not isinstance(value, list) or not 0 < len(value) <= MAX_SESSION_ENTRIES:
        raise ProtocolError("bad-payload", f"{name} 'sessions' must be a list of 1 to {MAX_SESSION_ENTRIES} entries")
    return {"sessions": [checkSessionEntry(name, i, entry) for i, entry in enumerate(value)]}


_VALIDATORS: dict[int, Callable[[str, dict], dict]] = {
    HELLO: _hello,
    AUTH: _auth,
    ERROR: _error,
    KEEPALIVE: _keepalive,
    KEEPALIVE_ECHO: _keepalive,
    SNAPSHOT: _snapshot,
    DELTA: _delta,
    RESYNC: _resync,
    PROBE: _probe,
    RTT: _rtt,
    SESSIONS: _sessions,
}
