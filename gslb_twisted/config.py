"""
The topology file: TOML (SPEC section 3) loaded into a frozen, validated model.

Every error names the file, the table (with its C{name}), the key, what was
expected and what was found.  Unknown keys are errors, so that a typo never
silently falls back to a default.  Nothing in here touches a reactor.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import math
import os
import pickle
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Union

# NetScaler's names for the GSLB load-balancing methods.
LB_METHODS = (
    "ROUNDROBIN",
    "LEASTCONNECTION",
    "LEASTRESPONSETIME",
    "LEASTBANDWIDTH",
    "LEASTPACKETS",
    "SOURCEIPHASH",
    "STATICPROXIMITY",
    "RTT",
    "CUSTOMLOAD",
    "NONE",
    "STATIC",
)
DOWN_RESPONSES = ("all", "empty", "servfail")
SERVICE_TYPES = (
    "HTTP",
    "SSL",
    "HTTPS",
    "TCP",
    "UDP",
    "DNS",
    "SSL_BRIDGE",
    "SSL_TCP",
    "ANY",
    "NNTP",
    "RTSP",
    "SIP_UDP",
    "RADIUS",
    "MYSQL",
    "MSSQL",
)
MONITOR_TYPES = ("tcp", "http", "https", "dns", "udp")
MONITOR_TRIGGERS = ("ALWAYS", "MEPDOWN", "MEPDOWN_SVCDOWN")
SITE_PROTOCOLS = ("mep", "snmp")
PERSISTENCE_TYPES = ("NONE", "SOURCEIP")
SPILLOVER_METHODS = ("NONE", "CONNECTION", "DYNAMICCONNECTION", "BANDWIDTH", "HEALTH")
SPILLOVER_ACTIONS = ("ACCEPT", "DROP")
SNMP_VERSIONS = ("1", "2c", "3")
# How a metric's value comes from what the agent answers (see MetricSpec).
METRIC_TYPES = ("gauge", "counter", "ratio")
# What a MEP site reports for every service, and the ceilings CUSTOMLOAD
# uses for them when a vserver names none (load is a percentage).
MEP_METRICS = ("connections", "response_time", "bandwidth", "packets", "load")
MEP_CEILINGS = MappingProxyType({"load": 100.0})
# One object for every MEP site (a set each was 470 KiB of a core at 1,000 sites).
MEP_METRIC_NAMES = frozenset(MEP_METRICS)
NO_METRICS: frozenset = frozenset()
# Placeholders a metric table's OIDs may hold: the site's interface index,
# and each service's instance (so that the metric is per service).
OID_PLACEHOLDERS = ("{interface}", "{service}")
LOG_FORMATS = ("text", "json")

DEFAULT_DNS = ("udp:5300:interface=127.0.0.1", "tcp:5300:interface=127.0.0.1")


class ConfigError(Exception):
    """
    The topology file is wrong.  C{str()} of it is the whole message a user
    reads: file, table, key, what was expected and what was found.
    """

    def __init__(
        self,
        path: str,
        table: str,
        key: Optional[str],
        expected: str,
        found: Any = None,
        hasFound: bool = True,
    ) -> None:
        self.path = path
        self.table = table
        self.key = key
        self.expected = expected
        self.found = found
        self.hasFound = hasFound
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.table
        if self.key is not None:
            where += f": key {self.key!r}"
        message = f"{self.path}: {where}: {self.expected}"
        if self.hasFound:
            message += f", found {_describe(self.found)}"
        return message


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the key is missing)"
    kind = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


_MISSING = object()


# ---------------------------------------------------------------------------
# The model.  Frozen dataclasses with tuples, so a Topology can be shared
# freely and compared in tests.


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True)
class RateLimit:
    """Response rate limiting, BIND's names: responses-per-second, window, slip, prefixes."""

    responses_per_second: int
    window: int = 15
    slip: int = 2
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56


@dataclass(frozen=True)
class TCPLimits:
    """
    DNS over TCP, per core: connections in all and from one client address,
    and seconds a connection may stay without a complete query (so that a
    client trickling bytes -- a slowloris -- cannot hold one open).
    """

    max_connections: int = 1024
    max_per_client: int = 32
    idle_timeout: float = 10.0


@dataclass(frozen=True)
class Appliance:
    name: str
    ip: str
    cores: Union[int, str]  # an integer, or "auto"
    dns: tuple[str, ...]
    control: str
    mep_port: int
    mep_secret: Optional[str] = field(repr=False)  # secrets: never in a repr (logs)
    mep_tls: bool
    mep_tls_cert: Optional[str]
    mep_tls_key: Optional[str]
    mep_tls_ca: Optional[str]
    metrics_interval: float
    dead_interval: float
    consolidation_interval: float
    location_db: Optional[str]
    rrl: Optional["RateLimit"] = None
    dns_tcp: TCPLimits = TCPLimits()
    # What a console must present on a TCP control endpoint (a secret).
    control_token: Optional[str] = field(default=None, repr=False)

    def coreCount(self, cpuCount: Optional[int] = None) -> int:
        """
        The number of core processes to run: C{cores}, or one per CPU for
        C{"auto"}.
        """
        if self.cores == "auto":
            return max(1, cpuCount if cpuCount is not None else (os.cpu_count() or 1))
        return int(self.cores)


@dataclass(frozen=True)
class Zone:
    # SOA defaults are those of NetScaler's `add dns soaRec`.
    name: str  # lower case, no trailing dot
    ns: tuple[str, ...]
    soa_minimum: int
    soa_rname: str
    soa_serial: int
    soa_refresh: int
    soa_retry: int
    soa_expire: int
    ttl: int


@dataclass(frozen=True)
class TimelineEvent:
    """At C{at} seconds after the emulator starts, set a service's metrics."""

    at: float
    service: str
    values: Mapping[str, Any]  # metric name -> value (state is "UP"/"DOWN")


@dataclass(frozen=True)
class MEPPeer:
    """Another appliance a site emulator exchanges metrics with."""

    name: str
    ip: str
    mep_port: int


@dataclass(frozen=True)
class SiteEmulator:
    control: Optional[str]
    seed: Optional[int]
    timeline: tuple[TimelineEvent, ...] = ()
    peers: tuple[MEPPeer, ...] = ()
    # Emulated RTT (ms) to client networks, overriding the location model.
    rtt: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # Named timelines the console starts (`set scenario NAME`), their times
    # counting from then: name -> events.
    scenarios: Mapping[str, tuple[TimelineEvent, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SNMPSettings:
    port: int
    version: str
    community: Optional[str] = field(repr=False)
    table: str
    user: Optional[str]
    auth_protocol: Optional[str]
    auth_key: Optional[str] = field(repr=False)
    priv_protocol: Optional[str]
    priv_key: Optional[str] = field(repr=False)
    interface: int = 1  # the ifIndex that {interface} in the table's OIDs names
    timeout: Optional[float] = None  # seconds per try; None: from metrics_interval
    retries: int = 1

    @property
    def securityLevel(self) -> str:
        """USM's level for v3 (noAuthNoPriv, authNoPriv, authPriv)."""
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    ip: str
    mep_port: int
    protocol: str
    metric_exchange: bool
    location: Optional[Location]
    emulator: Optional[SiteEmulator]
    snmp: Optional[SNMPSettings]


@dataclass(frozen=True)
class MetricSpec:
    """
    One metric of a table: how to compute it from an SNMP agent's answers.

    C{gauge}: the value as read; C{counter}: its rate per second between two
    polls (wraps of 32-bit counters handled); C{ratio}: the value divided by
    the value of OID C{of}.  Then C{value * scale + offset} (so that a
    CPU-idle percentage becomes busy: scale -1, offset 100).  C{ceiling}:
    CUSTOMLOAD's default ceiling for it.
    """

    name: str
    oid: str
    type: str = "gauge"
    of: Optional[str] = None
    scale: float = 1.0
    offset: float = 0.0
    ceiling: Optional[float] = None

    @property
    def perService(self) -> bool:
        return "{service}" in self.oid or (self.of is not None and "{service}" in self.of)


@dataclass(frozen=True)
class MetricTable:
    name: str
    metrics: Mapping[str, MetricSpec]  # metric name -> how to read it
    origin: str = ""  # the file it was read from (shipped tables: fixtures/metric_tables/)
    description: str = ""


@dataclass(frozen=True)
class Monitor:
    type: str
    url: Optional[str]
    interval: float
    timeout: float
    trigger: str
    expect_status: tuple[int, ...]
    expect_content: Optional[str]


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    site: str
    ip: str
    port: int
    type: str
    weight: int
    max_clients: int
    backend: Optional[str]
    monitor: Optional[Monitor]
    # SNMP sites: this service's index in the table's {service} OIDs (an OID
    # suffix such as "3", or a name such as "/Common/vs_web", encoded as an
    # SNMP string index).
    snmp_instance: Optional[str] = None

    @property
    def family(self) -> int:
        """4 or 6: which address family (and so which of A/AAAA) it serves."""
        # The address was validated when read: only IPv6 has colons.
        return 6 if ":" in self.ip else 4


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    name: str
    weight: int  # the binding's weight, else the service's own


@dataclass(frozen=True, slots=True)
class CustomLoadMetric:
    metric: str
    weight: float
    ceiling: Optional[float]  # None: each service's metric table says
    threshold: Optional[float]


@dataclass(frozen=True)
class Spillover:
    method: str
    threshold: int
    backup_action: str = "ACCEPT"  # no usable backup vserver: keep answering (ACCEPT) or DROP


@dataclass(frozen=True, slots=True)
class VServer:
    name: str
    domains: tuple[str, ...]  # lower case, no trailing dot
    lb_method: str
    backup_lb_method: str
    down_response: str
    ttl: int
    answers: int
    services: tuple[ServiceBinding, ...]
    custom_load: tuple[CustomLoadMetric, ...]
    persistence: str
    persistence_timeout: int
    backup_vserver: Optional[str]
    spillover: Optional[Spillover]
    # NetScaler's -netmask / -v6netmasklen (SOURCEIPHASH), -persistMask /
    # -v6persistmasklen (SOURCEIP persistence), -tolerance (RTT, ms).
    netmask: str = "255.255.255.255"
    v6_netmask_len: int = 128
    persist_mask: str = "255.255.255.255"
    v6_persist_mask_len: int = 128
    tolerance: int = 0
    custom_load_exclude: str = "any"  # exclude a service over "any" or "all" thresholds


@dataclass(frozen=True)
class Topology:
    path: str
    appliance: Appliance
    zones: tuple[Zone, ...]
    sites: tuple[Site, ...]
    metric_tables: tuple[MetricTable, ...]
    services: tuple[Service, ...]
    vservers: tuple[VServer, ...]
    siteByName: Mapping[str, Site] = field(compare=False, repr=False)
    serviceByName: Mapping[str, Service] = field(compare=False, repr=False)
    vserverByName: Mapping[str, VServer] = field(compare=False, repr=False)
    # Every table a site may name: the shipped ones, then the file's own
    # (which replace a shipped table of the same name).
    tableByName: Mapping[str, MetricTable] = field(compare=False, repr=False, default_factory=dict)
    _sourceMetrics: dict = field(compare=False, repr=False, default_factory=dict)

    def usesTLS(self) -> bool:
        """Whether a core may need TLS: MEP over TLS, or an HTTPS monitor."""
        return self.appliance.mep_tls or any(
            service.monitor is not None
            and (service.monitor.type == "https" or (service.monitor.url or "").lower().startswith("https:"))
            for service in self.services
        )

    def metricTableOf(self, site: Site) -> Optional[MetricTable]:
        """The metric table an SNMP site is polled with (C{None} for MEP)."""
        if site.snmp is None or site.protocol != "snmp":
            return None
        return self.tableByName.get(site.snmp.table)

    def metricsOf(self, site: Site) -> tuple[frozenset, Mapping[str, float]]:
        """
        The metric names a site's services can report, and the ceilings its
        source gives them: the MEP metrics, the table's for an SNMP site,
        none for a static site.  (Cached: plans ask for every candidate.)
        """
        known = self._sourceMetrics.get(site.name)
        if known is None or known[0] is not site:
            known = self._sourceMetrics[site.name] = (site, self._metricsOf(site))
        return known[1]

    def _metricsOf(self, site: Site) -> tuple[frozenset, Mapping[str, float]]:
        if site.protocol == "snmp":
            table = self.metricTableOf(site)
            if table is None:
                return NO_METRICS, {}
            return frozenset(table.metrics), {
                name: spec.ceiling for name, spec in table.metrics.items() if spec.ceiling is not None
            }
        if not site.metric_exchange:
            return NO_METRICS, {}
        return MEP_METRIC_NAMES, MEP_CEILINGS


# ---------------------------------------------------------------------------
# Reading one table against a whitelist of keys.


class _Table:
    """
    One TOML table being read: every key taken is remembered, so that
    L{finish} can refuse the ones nobody asked for.
    """

    def __init__(self, path: str, label: str, raw: Any) -> None:
        self.path = path
        self.label = label
        if not isinstance(raw, dict):
            raise ConfigError(path, label, None, "expected a table", raw)
        self.raw = raw
        self.taken: set[str] = set()

    def error(self, key: Optional[str], expected: str, found: Any = _MISSING) -> ConfigError:
        return ConfigError(self.path, self.label, key, expected, found)

    def get(
        self,
        key: str,
        check: Callable[[Any], Any],
        expected: str,
        default: Any = _MISSING,
    ) -> Any:
        """
        The value of C{key}, passed through C{check}, which returns the
        converted value or raises C{ValueError}/C{TypeError}.
        """
        self.taken.add(key)
        if key not in self.raw:
            if default is _MISSING:
                raise self.error(key, f"expected {expected}")
            return default
        value = self.raw[key]
        try:
            return check(value)
        except _SecretError as e:
            raise ConfigError(self.path, self.label, key, f"expected {e}", hasFound=False) from None
        except _ItemError as e:
            # Name the offending element: the whole array may be too long
            # to show.
            raise self.error(f"{key}[{e.index}]", f"expected {expected}", e.value) from None
        except (ValueError, TypeError):
            raise self.error(key, f"expected {expected}", value) from None

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.taken)
        if unknown:
            key = unknown[0]
            known = ", ".join(sorted(self.taken))
            raise self.error(key, f"unknown key (known keys: {known})", self.raw[key])


def _label(kind: str, raw: Any, index: int, array: bool = True) -> str:
    if array:
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            return f"[[{kind}]] {name!r}"
        return f"[[{kind}]] #{index + 1}"
    return f"[{kind}]"


# Checkers: return the converted value or raise ValueError/TypeError.


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(value)
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _int(low: int, high: Optional[int] = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if value < low or (high is not None and value > high):
            raise ValueError(value)
        return value

    return check


def _number(low: float, high: Optional[float] = None, exclusive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(value)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(value)
        if value < low or (exclusive and value == low) or (high is not None and value > high):
            raise ValueError(value)
        return value

    return check


def _choice(choices: tuple[str, ...], fold: Callable[[str], str] = str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or fold(value) not in choices:
            raise ValueError(value)
        return fold(value)

    return check


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return str(ipaddress.ip_address(value))


class _SecretError(ValueError):
    """A secret's file or environment variable cannot give it (the message says why)."""


SECRET_EXPECTED = 'a non-empty string, { file = "PATH" } or { env = "VARIABLE" }'


def _secret(configPath: str) -> Callable[[Any], str]:
    """
    A secret, written in the topology or kept out of it: C{{ file = PATH }}
    (relative to the topology's directory; one line, its newline dropped)
    or C{{ env = NAME }}.  Read once, when the topology is loaded.
    """

    def check(value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"file", "env"}:
            raise TypeError(value)
        ((kind, source),) = value.items()
        if not isinstance(source, str) or not source:
            raise TypeError(value)
        if kind == "env":
            secret = os.environ.get(source, "")
            if not secret:
                raise _SecretError(f"the environment variable {source} to hold the secret: it is unset or empty")
            return secret
        filePath = source if os.path.isabs(source) else os.path.join(os.path.dirname(os.path.abspath(configPath)), source)
        try:
            with open(filePath, encoding="utf-8") as f:
                secret = f.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise _SecretError(f"a readable file holding the secret: {filePath}: {getattr(e, 'strerror', None) or e}") from None
        if not secret:
            raise _SecretError(f"a file holding the secret: {filePath} is empty")
        return secret

    return check


class _ItemError(ValueError):
    """One element of an array is wrong."""

    def __init__(self, index: int, value: Any) -> None:
        super().__init__(index, value)
        self.index = index
        self.value = value


def _list(item: Callable[[Any], Any], nonEmpty: bool = True) -> Callable[[Any], tuple]:
    def check(value: Any) -> tuple:
        if not isinstance(value, list) or (nonEmpty and not value):
            raise TypeError(value)
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element))
            except (ValueError, TypeError):
                raise _ItemError(index, element) from None
        return tuple(checked)

    return check


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _domain(value: Any) -> str:
    """A DNS name: lower-cased, without the trailing dot."""
    if not isinstance(value, str):
        raise TypeError(value)
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        raise ValueError(value)
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(value)
    return name


def _endpoint(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(value)
    return value


def _dnsEndpoint(value: Any) -> str:
    from gslb_twisted.endpoints import parseDNSEndpoint

    parseDNSEndpoint(_endpoint(value))
    return value


def _oid(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^\.?\d+(\.\d+)+$", value):
        raise ValueError(value)
    return value.lstrip(".")


def _netmask(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    try:
        network = ipaddress.IPv4Network("0.0.0.0/" + value)
    except ValueError:
        raise ValueError from None
    if network.prefixlen == 0:
        raise ValueError
    return str(network.netmask)


def _url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(value)
    return value


def _cores(value: Any) -> Union[int, str]:
    if value == "auto":
        return "auto"
    return _int(1, 256)(value)


# ---------------------------------------------------------------------------
# Tables.


def _appliance(path: str, raw: Any) -> Appliance:
    t = _Table(path, "[appliance]", raw)
    name = t.get("name", _str, "a non-empty string")
    appliance = Appliance(
        name=name,
        ip=t.get("ip", _ip, "an IPv4 or IPv6 address", "127.0.0.1"),
        cores=t.get("cores", _cores, 'an integer from 1 to 256 or "auto"', "auto"),
        dns=t.get(
            "dns",
            _list(_dnsEndpoint),
            'a non-empty array of endpoint strings such as "udp:5300:interface=127.0.0.1"',
            DEFAULT_DNS,
        ),
        control=t.get(
            "control", _endpoint, 'an endpoint string such as "unix:gslb.ctl"', "unix:gslb.ctl"
        ),
        mep_port=t.get("mep_port", _int(1, 65535), "a port number from 1 to 65535", 3011),
        mep_secret=t.get("mep_secret", _secret(path), SECRET_EXPECTED, None),
        mep_tls=t.get("mep_tls", _bool, "true or false", False),
        mep_tls_cert=t.get("mep_tls_cert", _str, "a certificate file path", None),
        mep_tls_key=t.get("mep_tls_key", _str, "a private key file path", None),
        mep_tls_ca=t.get("mep_tls_ca", _str, "a CA certificate file path (default: mep_tls_cert)", None),
        metrics_interval=t.get(
            "metrics_interval", _number(0, exclusive=True), "a number of seconds above 0", 1.0
        ),
        dead_interval=t.get(
            "dead_interval", _number(0, exclusive=True), "a number of seconds above 0", 3.0
        ),
        consolidation_interval=t.get(
            "consolidation_interval",
            _number(0, exclusive=True),
            "a number of seconds above 0",
            0.5,
        ),
        location_db=t.get("location_db", _str, "a CSV file path", None),
        rrl=None if (rrlRaw := t.get("rrl", lambda v: v, "a table { responses_per_second, window, slip, ipv4_prefix, ipv6_prefix }", None)) is None
        else _rateLimit(path, rrlRaw),
        control_token=t.get("control_token", _secret(path), SECRET_EXPECTED, None),
        dns_tcp=TCPLimits() if (tcpRaw := t.get("dns_tcp", lambda v: v, "a table { max_connections, max_per_client, idle_timeout }", None)) is None
        else _tcpLimits(path, tcpRaw),
    )
    t.finish()
    if appliance.mep_tls and not (appliance.mep_tls_cert and appliance.mep_tls_key):
        raise t.error(
            "mep_tls_cert" if not appliance.mep_tls_cert else "mep_tls_key",
            "expected a file path when mep_tls = true",
        )
    if appliance.dead_interval < appliance.metrics_interval:
        raise t.error(
            "dead_interval",
            f"expected at least metrics_interval ({appliance.metrics_interval})",
            appliance.dead_interval,
        )
    if appliance.location_db is not None:
        resolved = _locationPath(path, appliance.location_db)
        from gslb_twisted.lb.locations import LocationDB, LocationDBError

        try:
            LocationDB.fromCSV(resolved)
        except LocationDBError as e:
            raise ConfigError(path, t.label, "location_db", f"expected a location CSV (`cidr,lat,lon[,region]` lines): {e}", hasFound=False) from None
        appliance = dataclasses.replace(appliance, location_db=resolved)
    return appliance


def _rateLimit(path: str, raw: Any) -> RateLimit:
    t = _Table(path, "[appliance] rrl", raw)
    limit = RateLimit(
        responses_per_second=t.get("responses_per_second", _int(1, 1_000_000), "an integer of responses per second above 0"),
        window=t.get("window", _int(1, 3600), "an integer of seconds from 1 to 3600", 15),
        slip=t.get("slip", _int(0, 10), "an integer from 0 (never) to 10", 2),
        ipv4_prefix=t.get("ipv4_prefix", _int(1, 32), "an integer from 1 to 32", 24),
        ipv6_prefix=t.get("ipv6_prefix", _int(1, 128), "an integer from 1 to 128", 56),
    )
    t.finish()
    return limit


def _tcpLimits(path: str, raw: Any) -> TCPLimits:
    t = _Table(path, "[appliance] dns_tcp", raw)
    limits = TCPLimits(
        max_connections=t.get("max_connections", _int(1, 1_000_000), "an integer of connections above 0", 1024),
        max_per_client=t.get("max_per_client", _int(1, 1_000_000), "an integer of connections above 0", 32),
        idle_timeout=t.get("idle_timeout", _number(0, exclusive=True), "a number of seconds above 0", 10.0),
    )
    t.finish()
    if limits.max_per_client > limits.max_connections:
        raise t.error("max_per_client", f"expected at most max_connections ({limits.max_connections})", limits.max_per_client)
    return limits


def _locationPath(configPath: str, value: str) -> str:
    """
    A location DB path as written: absolute, or relative to the working
    directory, else to the topology file's directory, else to where the
    project's own fixtures are (C{"fixtures/locations.csv"} is shipped).
    """
    import sys

    if os.path.isabs(value) or os.path.exists(value):
        return os.path.abspath(value)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(os.path.dirname(os.path.abspath(configPath)), value),
        os.path.join(os.path.dirname(here), value),
        os.path.join(sys.prefix, "share", "gslb-twisted", value),
    ]
    for candidate in candidates:
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    return os.path.abspath(candidates[0])


def _zone(path: str, raw: Any, index: int) -> Zone:
    t = _Table(path, _label("zone", raw, index), raw)
    name = t.get("name", _domain, "a DNS name such as \"demo.gslb\"")
    zone = Zone(
        name=name,
        ns=t.get("ns", _list(_domain), "a non-empty array of DNS names", ("ns1." + name,)),
        soa_minimum=t.get("soa_minimum", _int(0, 2**31 - 1), "an integer of seconds", 5),
        soa_rname=t.get("soa_rname", _domain, "a DNS name (the mailbox)", "hostmaster." + name),
        soa_serial=t.get("soa_serial", _int(0, 2**32 - 1), "an integer from 0 to 4294967295", 100),
        soa_refresh=t.get("soa_refresh", _int(0, 2**31 - 1), "an integer of seconds", 3600),
        soa_retry=t.get("soa_retry", _int(0, 2**31 - 1), "an integer of seconds", 3),
        soa_expire=t.get("soa_expire", _int(0, 2**31 - 1), "an integer of seconds", 3600),
        ttl=t.get("ttl", _int(0, 2**31 - 1), "an integer of seconds", 3600),
    )
    t.finish()
    return zone


def _location(path: str, label: str, raw: Any) -> Location:
    t = _Table(path, label + " location", raw)
    location = Location(
        lat=t.get("lat", _number(-90, 90), "a latitude from -90 to 90"),
        lon=t.get("lon", _number(-180, 180), "a longitude from -180 to 180"),
    )
    t.finish()
    return location


def _emulator(path: str, label: str, raw: Any) -> SiteEmulator:
    t = _Table(path, label + " emulator", raw)
    timeline = t.get("timeline", lambda v: v, "an array of { at, service, ... } tables", [])
    peers = t.get("peers", lambda v: v, "an array of { name, ip, mep_port } tables", [])
    for key, value in (("timeline", timeline), ("peers", peers)):
        if not isinstance(value, list):
            raise t.error(key, "expected an array of tables", value)
    scenarios = t.get("scenarios", lambda v: v, "a table of name = [ { at, service, ... }, ... ]", {})
    if not isinstance(scenarios, dict):
        raise t.error("scenarios", "expected a table of name = [ { at, service, ... }, ... ]", scenarios)
    for name, events in scenarios.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise t.error(
                f"scenarios.{name}", "expected a scenario name of letters, digits, '-', '_' and '.' (one word "
                "for `set scenario NAME`)", name,
            )
        if not isinstance(events, list) or not events:
            raise t.error(f"scenarios.{name}", "expected a non-empty array of { at, service, ... } tables", events)
    emulator = SiteEmulator(
        control=t.get("control", _endpoint, 'an endpoint string such as "unix:east.ctl"', None),
        seed=t.get("seed", _int(0), "a non-negative integer", None),
        timeline=tuple(_timelineEvent(path, f"{t.label} timeline[{i}]", raw) for i, raw in enumerate(timeline)),
        peers=tuple(_peer(path, t.label, raw, i) for i, raw in enumerate(peers)),
        rtt=MappingProxyType(t.get("rtt", _rttTable, 'a table of client network = milliseconds, e.g. { "198.51.100.0/24" = 40.0 }', {})),
        scenarios=MappingProxyType({
            name: tuple(
                _timelineEvent(path, f"{t.label} scenarios.{name}[{i}]", raw, "the scenario's start")
                for i, raw in enumerate(events)
            )
            for name, events in scenarios.items()
        }),
    )
    t.finish()
    return emulator


def _rttTable(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError
    table = {}
    for network, ms in value.items():
        try:
            parsed = ipaddress.ip_network(network, strict=True)
        except ValueError:
            raise ValueError from None
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0:
            raise ValueError
        table[str(parsed)] = float(ms)
    return table


# The metrics a site reports for each service over MEP, with their checkers.
SERVICE_METRICS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "state": (_choice(("UP", "DOWN"), str.upper), '"UP" or "DOWN"'),
    "connections": (_int(0), "a non-negative integer"),
    "response_time": (_number(0), "a non-negative number of milliseconds"),
    "bandwidth": (_number(0), "a non-negative number of kbit/s"),
    "packets": (_int(0), "a non-negative integer of packets/s"),
    "load": (_number(0, 100), "a percentage from 0 to 100"),
}


def _timelineEvent(path: str, label: str, raw: Any, start: str = "the emulator's start") -> TimelineEvent:
    """One event of a timeline or a scenario; C{label} names its table (C{... timeline[2]})."""
    t = _Table(path, label, raw)
    at = t.get("at", _number(0), f"a number of seconds from {start}")
    service = t.get("service", _str, "the name of a [[service]] of this site")
    values = {}
    for metric, (check, expected) in SERVICE_METRICS.items():
        value = t.get(metric, check, expected, None)
        if value is not None:
            values[metric] = value
    t.finish()
    if not values:
        raise ConfigError(path, t.label, None, "expected at least one of " + ", ".join(SERVICE_METRICS), hasFound=False)
    return TimelineEvent(at=at, service=service, values=MappingProxyType(values))


def _peer(path: str, label: str, raw: Any, index: int) -> MEPPeer:
    t = _Table(path, f"{label} emulator peers[{index}]", raw)
    peer = MEPPeer(
        name=t.get("name", _str, "the peer appliance's name"),
        ip=t.get("ip", _ip, "an IPv4 or IPv6 address"),
        mep_port=t.get("mep_port", _int(1, 65535), "a port number from 1 to 65535", 3011),
    )
    t.finish()
    return peer


def _snmp(path: str, label: str, raw: Any) -> SNMPSettings:
    t = _Table(path, label + " snmp", raw)
    settings = SNMPSettings(
        port=t.get("port", _int(1, 65535), "a port number from 1 to 65535", 161),
        version=t.get("version", _choice(SNMP_VERSIONS), 'one of "1", "2c", "3"', "2c"),
        community=t.get("community", _secret(path), SECRET_EXPECTED, "public"),
        table=t.get("table", _str, "the name of a metric table", "linux-host"),
        user=t.get("user", _str, "a non-empty string", None),
        auth_protocol=t.get(
            "auth_protocol", _choice(("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"), str.upper),
            "one of MD5, SHA, SHA224, SHA256, SHA384, SHA512", None,
        ),
        auth_key=t.get("auth_key", _secret(path), SECRET_EXPECTED, None),
        priv_protocol=t.get(
            "priv_protocol", _choice(("DES", "AES", "AES128", "AES192", "AES256"), str.upper),
            "one of DES, AES, AES128, AES192, AES256", None,
        ),
        priv_key=t.get("priv_key", _secret(path), SECRET_EXPECTED, None),
        interface=t.get("interface", _int(1, 2147483647), "an interface index (ifIndex) from 1", 1),
        timeout=t.get("timeout", _number(0.05, 30), "a number of seconds from 0.05 to 30", None),
        retries=t.get("retries", _int(0, 5), "an integer from 0 to 5", 1),
    )
    t.finish()
    if settings.version == "3":
        if not settings.user:
            raise t.error("user", 'expected a user name when version = "3"')
        for protocol, key in (("auth_protocol", "auth_key"), ("priv_protocol", "priv_key")):
            if getattr(settings, protocol) and not getattr(settings, key):
                raise t.error(key, f"expected a key (8 characters or more) with {protocol}")
            value = getattr(settings, key)
            if value is not None and len(value) < 8:
                # RFC 3414 keys from passphrases: net-snmp refuses shorter ones.
                raise t.error(key, "expected at least 8 characters", "(hidden)")
            if value is not None and not getattr(settings, protocol):
                raise t.error(protocol, f"expected a protocol for {key}")
        if settings.priv_protocol and not settings.auth_protocol:
            raise t.error("auth_protocol", "expected authentication when priv_protocol is set (USM has no privacy without it)")
    return settings


def _site(path: str, raw: Any, index: int) -> Site:
    t = _Table(path, _label("site", raw, index), raw)
    name = sys.intern(t.get("name", _str, "a non-empty string"))
    protocol = t.get("protocol", _choice(SITE_PROTOCOLS, str.lower), 'one of "mep", "snmp"', "mep")
    location = t.get("location", lambda v: v, "a table", None)
    emulator = t.get("emulator", lambda v: v, "a table", None)
    snmp = t.get("snmp", lambda v: v, "a table", None)
    site = Site(
        name=name,
        ip=t.get("ip", _ip, "an IPv4 or IPv6 address"),
        mep_port=t.get("mep_port", _int(1, 65535), "a port number from 1 to 65535", 3011),
        protocol=protocol,
        metric_exchange=t.get("metric_exchange", _bool, "true or false", True),
        location=None if location is None else _location(path, t.label, location),
        emulator=None if emulator is None else _emulator(path, t.label, emulator),
        snmp=None if snmp is None else _snmp(path, t.label, snmp),
    )
    t.finish()
    if protocol == "snmp" and site.snmp is None:
        raise t.error("snmp", 'expected a table { port, version, community, table } when protocol = "snmp"')
    return site


def _tableOID(value: Any) -> str:
    """A numeric OID, possibly with L{OID_PLACEHOLDERS} as sub-identifiers."""
    if not isinstance(value, str):
        raise TypeError(value)
    plain = value
    for placeholder in OID_PLACEHOLDERS:
        plain = plain.replace(placeholder, "1")
    _oid(plain)
    if "{" in plain or "}" in plain:
        raise ValueError(value)
    return value.lstrip(".")


def _metricSpec(path: str, label: str, name: str, raw: Any) -> MetricSpec:
    oidExpected = 'a numeric OID such as "1.3.6.1.2.1.6.9.0" ({interface} and {service} may stand for sub-identifiers)'
    if isinstance(raw, str):
        try:
            return MetricSpec(name=name, oid=_tableOID(raw))
        except (TypeError, ValueError):
            raise ConfigError(path, label, f"metrics.{name}", f"expected {oidExpected}", raw) from None
    t = _Table(path, f"{label} metrics.{name}", raw)
    spec = MetricSpec(
        name=name,
        oid=t.get("oid", _tableOID, oidExpected),
        type=t.get("type", _choice(METRIC_TYPES, str.lower), 'one of "gauge", "counter", "ratio"', "gauge"),
        of=t.get("of", _tableOID, "the OID of the denominator (for type = \"ratio\")", None),
        scale=t.get("scale", _number(-1e12, 1e12), "a number", 1.0),
        offset=t.get("offset", _number(-1e12, 1e12), "a number", 0.0),
        ceiling=t.get("ceiling", _number(0, exclusive=True), "a number above 0", None),
    )
    t.finish()
    if (spec.type == "ratio") != (spec.of is not None):
        raise t.error("of", 'expected "of" (the denominator OID) exactly when type = "ratio"', spec.of)
    return spec


def _metricTable(path: str, raw: Any, index: int) -> MetricTable:
    t = _Table(path, _label("metric_table", raw, index), raw)
    name = t.get("name", _str, "a non-empty string")
    description = t.get("description", _str, "a non-empty string", "")
    metrics = t.get("metrics", lambda v: v, "a table of metric = \"OID\" or { oid, type, ... }")
    if not isinstance(metrics, dict) or not metrics:
        raise t.error("metrics", 'expected a non-empty table of metric = "OID" or { oid, type, ... }', metrics)
    checked = {metric: _metricSpec(path, t.label, metric, raw) for metric, raw in metrics.items()}
    t.finish()
    return MetricTable(name=name, metrics=MappingProxyType(checked), origin=path, description=description)


def _monitor(path: str, label: str, raw: Any) -> Monitor:
    t = _Table(path, label + " monitor", raw)
    kind = t.get("type", _choice(MONITOR_TYPES, str.lower), "one of " + ", ".join(MONITOR_TYPES))
    interval = t.get("interval", _number(0, exclusive=True), "a number of seconds above 0", 5.0)
    monitor = Monitor(
        type=kind,
        url=t.get("url", _url, 'a URL such as "http://127.0.0.1:8081/health"', None),
        interval=interval,
        # Default 2 s as on NetScaler, but always below the interval.
        timeout=t.get("timeout", _number(0, exclusive=True), "a number of seconds above 0", min(2.0, interval / 2)),
        trigger=t.get(
            "trigger", _choice(MONITOR_TRIGGERS, str.upper), "one of " + ", ".join(MONITOR_TRIGGERS), "ALWAYS"
        ),
        expect_status=t.get(
            "expect_status", _list(_int(100, 599)), "a non-empty array of HTTP status codes", (200,)
        ),
        expect_content=t.get("expect_content", _str, "a non-empty string", None),
    )
    t.finish()
    if kind in ("http", "https") and monitor.url is None:
        raise t.error("url", f"expected a URL for a monitor of type {kind!r}")
    if monitor.timeout >= monitor.interval:
        raise t.error("timeout", f"expected less than interval ({monitor.interval})", monitor.timeout)
    return monitor


def _service(path: str, raw: Any, index: int) -> Service:
    t = _Table(path, _label("service", raw, index), raw)
    monitor = t.get("monitor", lambda v: v, "a table", None)
    service = Service(
        name=t.get("name", _str, "a non-empty string"),
        # Interned, as the site's own name: one string for 20 services.
        site=sys.intern(t.get("site", _str, "the name of a [[site]]")),
        ip=t.get("ip", _ip, "an IPv4 or IPv6 address"),
        port=t.get("port", _int(1, 65535), "a port number from 1 to 65535", 80),
        type=t.get("type", _choice(SERVICE_TYPES, str.upper), "a service type such as HTTP, SSL, TCP, UDP, DNS, ANY", "HTTP"),
        weight=t.get("weight", _int(1, 100), "an integer from 1 to 100", 1),
        max_clients=t.get("max_clients", _int(0, 4294967294), "a non-negative integer (0: no limit)", 0),
        backend=t.get("backend", _url, 'a URL such as "http://127.0.0.1:8081/health"', None),
        monitor=None if monitor is None else _monitor(path, t.label, monitor),
        snmp_instance=t.get("snmp_instance", _str, 'an OID suffix such as "3" or a name such as "/Common/vs_web"', None),
    )
    t.finish()
    return service


def _binding(path: str, label: str, raw: Any, index: int) -> tuple[str, Optional[int]]:
    if isinstance(raw, str) and raw:
        return raw, None
    t = _Table(path, f"{label} services[{index}]", raw)
    binding = (
        t.get("name", _str, "the name of a [[service]]"),
        t.get("weight", _int(1, 100), "an integer from 1 to 100", None),
    )
    t.finish()
    return binding


def _customLoad(path: str, label: str, raw: Any, index: int) -> CustomLoadMetric:
    t = _Table(path, f"{label} custom_load[{index}]", raw)
    metric = CustomLoadMetric(
        metric=t.get("metric", _str, "a metric name"),
        weight=t.get("weight", _number(0, exclusive=True), "a number above 0", 1.0),
        ceiling=t.get("ceiling", _number(0, exclusive=True), "a number above 0", None),
        threshold=t.get("threshold", _number(0), "a non-negative number", None),
    )
    t.finish()
    return metric


def _spillover(path: str, label: str, raw: Any) -> Spillover:
    t = _Table(path, label + " spillover", raw)
    spillover = Spillover(
        method=t.get(
            "method", _choice(SPILLOVER_METHODS, str.upper), "one of " + ", ".join(SPILLOVER_METHODS), "CONNECTION"
        ),
        threshold=t.get("threshold", _int(0), "a non-negative integer", 0),
        backup_action=t.get("backup_action", _choice(SPILLOVER_ACTIONS, str.upper), 'one of "ACCEPT", "DROP"', "ACCEPT"),
    )
    t.finish()
    return spillover


def _vserver(path: str, raw: Any, index: int, services: Mapping[str, Service]) -> VServer:
    t = _Table(path, _label("vserver", raw, index), raw)
    name = t.get("name", _str, "a non-empty string")
    bindingsRaw = t.get("services", lambda v: v, "an array of service names or { name, weight } tables")
    if not isinstance(bindingsRaw, list) or not bindingsRaw:
        raise t.error("services", "expected a non-empty array of service names or { name, weight } tables", bindingsRaw)
    bindings = []
    seen = set()
    for i, rawBinding in enumerate(bindingsRaw):
        serviceName, weight = _binding(path, t.label, rawBinding, i)
        if serviceName not in services:
            raise t.error(
                f"services[{i}]",
                "expected the name of a [[service]] (known: " + ", ".join(sorted(services)) + ")",
                serviceName,
            )
        if serviceName in seen:
            raise t.error(f"services[{i}]", "expected each service bound once", serviceName)
        seen.add(serviceName)
        bindings.append(
            # The service's own name object: a binding adds no string.
            ServiceBinding(services[serviceName].name, weight if weight is not None else services[serviceName].weight)
        )
    customRaw = t.get("custom_load", lambda v: v, "an array of { metric, weight, ceiling, threshold } tables", [])
    if not isinstance(customRaw, list):
        raise t.error("custom_load", "expected an array of { metric, weight, ceiling, threshold } tables", customRaw)
    spillover = t.get("spillover", lambda v: v, "a table { method, threshold }", None)
    lbMethod = t.get("lb_method", _choice(LB_METHODS, str.upper), "one of " + ", ".join(LB_METHODS), "LEASTCONNECTION")
    vserver = VServer(
        name=name,
        domains=t.get("domains", _list(_domain), "a non-empty array of DNS names"),
        lb_method=lbMethod,
        backup_lb_method=t.get(
            "backup_lb_method", _choice(LB_METHODS, str.upper), "one of " + ", ".join(LB_METHODS), "ROUNDROBIN"
        ),
        down_response=t.get(
            "down_response", _choice(DOWN_RESPONSES, str.lower), 'one of "all", "empty", "servfail"', "all"
        ),
        ttl=t.get("ttl", _int(0, 2**31 - 1), "an integer of seconds", 5),
        answers=t.get("answers", _int(1, 64), "an integer from 1 to 64", 1),
        services=tuple(bindings),
        custom_load=tuple(_customLoad(path, t.label, c, i) for i, c in enumerate(customRaw)),
        persistence=t.get("persistence", _choice(PERSISTENCE_TYPES, str.upper), 'one of "SOURCEIP", "NONE"', "NONE"),
        persistence_timeout=t.get("persistence_timeout", _int(2, 1440 * 60), "an integer of seconds from 2 to 86400", 120),
        backup_vserver=t.get("backup_vserver", _str, "the name of a [[vserver]]", None),
        spillover=None if spillover is None else _spillover(path, t.label, spillover),
        netmask=t.get("netmask", _netmask, "a dotted IPv4 netmask such as \"255.255.255.0\"", "255.255.255.255"),
        v6_netmask_len=t.get("v6_netmask_len", _int(1, 128), "an integer from 1 to 128", 128),
        persist_mask=t.get("persist_mask", _netmask, "a dotted IPv4 netmask such as \"255.255.255.0\"", "255.255.255.255"),
        v6_persist_mask_len=t.get("v6_persist_mask_len", _int(1, 128), "an integer from 1 to 128", 128),
        tolerance=t.get("tolerance", _int(0, 100), "an integer of milliseconds from 0 to 100", 0),
        custom_load_exclude=t.get("custom_load_exclude", _choice(("any", "all"), str.lower), 'one of "any", "all"', "any"),
    )
    t.finish()
    for key in ("lb_method", "backup_lb_method"):
        if getattr(vserver, key) == "CUSTOMLOAD" and not vserver.custom_load:
            raise t.error("custom_load", f"expected at least one metric when {key} = \"CUSTOMLOAD\"")
    return vserver


def _array(path: str, document: dict, key: str) -> list:
    raw = document.get(key, [])
    if not isinstance(raw, list):
        raise ConfigError(path, f"[[{key}]]", None, f"expected an array of tables ([[{key}]])", raw)
    return raw


def _unique(path: str, kind: str, items: tuple) -> dict:
    byName: dict = {}
    for item in items:
        if item.name in byName:
            raise ConfigError(path, f"[[{kind}]] {item.name!r}", "name", "expected a name not used by another [[" + kind + "]]", item.name)
        byName[item.name] = item
    return byName


def _inZone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def parseTopology(document: dict, path: str) -> Topology:
    """
    Validate a parsed TOML document into a L{Topology}.

    @raise ConfigError: on the first problem found.
    """
    top = _Table(path, "top level", document)
    for key in ("appliance", "zone", "site", "metric_table", "service", "vserver"):
        top.taken.add(key)
    top.finish()
    if "appliance" not in document:
        raise ConfigError(path, "[appliance]", None, "expected an [appliance] table", hasFound=False)
    appliance = _appliance(path, document["appliance"])
    zones = tuple(_zone(path, raw, i) for i, raw in enumerate(_array(path, document, "zone")))
    sites = tuple(_site(path, raw, i) for i, raw in enumerate(_array(path, document, "site")))
    tables = tuple(_metricTable(path, raw, i) for i, raw in enumerate(_array(path, document, "metric_table")))
    services = tuple(_service(path, raw, i) for i, raw in enumerate(_array(path, document, "service")))

    zoneByName = _unique(path, "zone", zones)
    siteByName = _unique(path, "site", sites)
    _unique(path, "metric_table", tables)
    serviceByName = _unique(path, "service", services)
    vservers = tuple(
        _vserver(path, raw, i, serviceByName) for i, raw in enumerate(_array(path, document, "vserver"))
    )
    vserverByName = _unique(path, "vserver", vservers)

    if not zones and vservers:
        raise ConfigError(path, "[[zone]]", None, "expected at least one [[zone]] to hold the vserver domains", hasFound=False)
    for zone in zones:
        for other in zones:
            if zone is not other and _inZone(zone.name, other.name):
                raise ConfigError(
                    path, f"[[zone]] {zone.name!r}", "name",
                    f"expected a zone not inside another zone ({other.name!r})", zone.name,
                )
    for service in services:
        if service.site not in siteByName:
            raise ConfigError(
                path, f"[[service]] {service.name!r}", "site",
                "expected the name of a [[site]] (known: " + ", ".join(sorted(siteByName)) + ")",
                service.site,
            )
    for site in sites:
        if site.emulator is None:
            continue
        scripted = [(f"timeline[{i}]", event) for i, event in enumerate(site.emulator.timeline)]
        for name, events in site.emulator.scenarios.items():
            scripted += [(f"scenarios.{name}[{i}]", event) for i, event in enumerate(events)]
        for where, event in scripted:
            owner = serviceByName.get(event.service)
            if owner is None or owner.site != site.name:
                ownServices = sorted(s.name for s in services if s.site == site.name)
                raise ConfigError(
                    path, f"[[site]] {site.name!r} emulator {where}", "service",
                    "expected a [[service]] of this site (" + ", ".join(ownServices) + ")",
                    event.service,
                )
    domainOwner: dict[str, str] = {}
    for vserver in vservers:
        label = f"[[vserver]] {vserver.name!r}"
        for domain in vserver.domains:
            if domain in domainOwner:
                raise ConfigError(
                    path, label, "domains",
                    "expected each domain listed once"
                    if domainOwner[domain] == vserver.name
                    else f"expected domains not served by another vserver ({domainOwner[domain]!r} has it)",
                    domain,
                )
            domainOwner[domain] = vserver.name
            if not any(_inZone(domain, z) for z in zoneByName):
                raise ConfigError(
                    path, label, "domains",
                    "expected a name inside a [[zone]] (zones: " + ", ".join(sorted(zoneByName)) + ")",
                    domain,
                )
        if vserver.backup_vserver is not None:
            if vserver.backup_vserver not in vserverByName:
                raise ConfigError(
                    path, label, "backup_vserver",
                    "expected the name of a [[vserver]] (known: " + ", ".join(sorted(vserverByName)) + ")",
                    vserver.backup_vserver,
                )
            # Follow the chain: a backup of a backup must never lead back here.
            seen = [vserver.name]
            current = vserverByName[vserver.backup_vserver]
            while current is not None:
                if current.name in seen:
                    raise ConfigError(
                        path, label, "backup_vserver",
                        "expected a chain of backup vservers without a loop (" + " -> ".join(seen + [current.name]) + ")",
                        vserver.backup_vserver,
                    )
                seen.append(current.name)
                current = vserverByName.get(current.backup_vserver) if current.backup_vserver else None
    tableByName = dict(shippedMetricTables())
    tableByName.update((table.name, table) for table in tables)
    _checkSNMPSites(path, sites, services, tableByName)
    topology = Topology(
        path=path,
        appliance=appliance,
        zones=zones,
        sites=sites,
        metric_tables=tables,
        services=services,
        vservers=vservers,
        siteByName=MappingProxyType(siteByName),
        serviceByName=MappingProxyType(serviceByName),
        vserverByName=MappingProxyType(vserverByName),
        tableByName=MappingProxyType(tableByName),
    )
    for vserver in vservers:
        _checkCustomLoad(path, topology, vserver)
    return topology


def _checkSNMPSites(path: str, sites, services, tableByName: Mapping[str, MetricTable]) -> None:
    """Every SNMP site names a known table whose placeholders its services fill."""
    users: dict[str, tuple] = {}
    for site in sites:
        if site.snmp is None:
            continue
        label = f"[[site]] {site.name!r} snmp"
        table = tableByName.get(site.snmp.table)
        if table is None:
            raise ConfigError(
                path, label, "table",
                "expected a [[metric_table]] name or a shipped table (" + ", ".join(sorted(tableByName)) + ")",
                site.snmp.table,
            )
        if any(spec.perService for spec in table.metrics.values()):
            for service in services:
                if service.site == site.name and service.snmp_instance is None:
                    raise ConfigError(
                        path, f"[[service]] {service.name!r}", "snmp_instance",
                        f"expected this service's index in table {table.name!r} (its OIDs hold {{service}})",
                        hasFound=False,
                    )
        if site.snmp.version == "3":
            # One engine per core holds every v3 user by name: two sites may
            # share a user only with the same keys.
            keys = (site.snmp.auth_protocol, site.snmp.auth_key, site.snmp.priv_protocol, site.snmp.priv_key)
            other = users.setdefault(site.snmp.user, (site.name, keys))
            if other[1] != keys:
                raise ConfigError(
                    path, label, "user",
                    f"expected the same protocols and keys as site {other[0]!r}, which uses this v3 user too",
                    site.snmp.user,
                )


def _checkCustomLoad(path: str, topology: Topology, vserver: VServer) -> None:
    """
    Each CUSTOMLOAD metric is one some bound service's source reports (a
    typo would otherwise silently mean "backup method forever"), with a
    ceiling from the vserver or from every such source.
    """
    if not vserver.custom_load:
        return
    sources = []
    for binding in vserver.services:
        service = topology.serviceByName[binding.name]
        site = topology.siteByName.get(service.site)
        if site is not None:
            sources.append((service, site) + topology.metricsOf(site))
    for index, spec in enumerate(vserver.custom_load):
        providers = [(service, site, ceilings) for service, site, provides, ceilings in sources if spec.metric in provides]
        label = f"[[vserver]] {vserver.name!r} custom_load[{index}]"
        known = sorted({metric for _, _, provides, _ in sources for metric in provides})
        if not providers and known:
            # (Static sites report nothing: such a vserver answers with its
            # backup method, as the engine says at run time.)
            raise ConfigError(
                path, label, "metric",
                "expected a metric a bound service's site reports (" + ", ".join(known) + ")", spec.metric,
            )
        if spec.ceiling is None:
            for service, site, ceilings in providers:
                if spec.metric not in ceilings:
                    source = f"table {site.snmp.table!r}" if site.protocol == "snmp" else "MEP"
                    raise ConfigError(
                        path, label, "ceiling",
                        f"expected a ceiling: {source} (site {site.name!r}) gives {spec.metric!r} none",
                        hasFound=False,
                    )


_shippedTables: Optional[dict] = None


def shippedFixture(*parts: str) -> str:
    """
    A file or directory shipped in fixtures/: the checkout's, or the copy a
    non-editable install puts under C{share/gslb-twisted} (the checkout's
    path when neither exists).
    """
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(os.path.dirname(here), "fixtures", *parts),
        os.path.join(sys.prefix, "share", "gslb-twisted", "fixtures", *parts),
    ]
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return candidates[0]


def metricTablesDirectory() -> str:
    """The shipped metric tables (fixtures/metric_tables)."""
    return shippedFixture("metric_tables")


def shippedMetricTables() -> Mapping[str, MetricTable]:
    """
    The metric tables shipped in fixtures/metric_tables/*.toml (each file
    holds C{[[metric_table]]} entries as a topology would), read once.

    @raise ConfigError: a shipped file is broken (named, as any config file).
    """
    global _shippedTables
    if _shippedTables is None:
        tables: dict[str, MetricTable] = {}
        directory = metricTablesDirectory()
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        for name in names:
            if not name.endswith(".toml"):
                continue
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    document = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(path, "file", None, f"is not a readable TOML file ({e})", hasFound=False) from None
            for i, raw in enumerate(_array(path, document, "metric_table")):
                table = _metricTable(path, raw, i)
                tables[table.name] = table
        _shippedTables = tables
    return MappingProxyType(_shippedTables)


def loadTopology(path: str) -> Topology:
    """
    Read and validate the topology file at C{path}.

    @raise ConfigError: the file cannot be read, is not TOML, or is invalid.
    """
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, "file", None, f"cannot be read ({e.strerror})", hasFound=False) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "file", None, f"is not valid TOML ({e})", hasFound=False) from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "file", None, f"is not valid TOML (not UTF-8 text: {e})", hasFound=False) from None
    return parseTopology(document, path)


# --- the compiled topology: what a supervisor hands its cores -------------------
#
# Parsing and validating a large topology costs a second (1,000 sites x 20
# services); a core that unpickles the supervisor's already validated model
# starts in a tenth of that, keeps none of the parser's garbage, and -- a core
# respawned hours later included -- runs exactly the topology its peers run,
# whatever happened to the file since.  The bytes only ever go from a process
# to its own children, through an inherited descriptor of an unlinked file.

COMPILED_MAGIC = b"gslb-twisted compiled topology 1 "


@functools.lru_cache(maxsize=None)
def _modelFingerprint() -> bytes:
    """
    The shape of the model (every dataclass here and its fields): a core
    whose code changed under a running supervisor must not unpickle objects
    of another shape.
    """
    shape = sorted(
        (name, tuple(f.name for f in dataclasses.fields(value)))
        for name, value in globals().items()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == __name__
    )
    return COMPILED_MAGIC + hashlib.sha256(repr(shape).encode()).hexdigest().encode() + b"\n"


class CompiledTopologyError(Exception):
    """The compiled topology cannot be read (another version wrote it, say)."""


def _readOnly(mapping: dict) -> Mapping:
    return MappingProxyType(mapping)


class _TopologyPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # mappingproxy does not pickle; the model uses it for read-only maps.
        if type(obj) is MappingProxyType:
            return _readOnly, (dict(obj),)
        return NotImplemented


def writeCompiledTopology(topology: Topology):
    """
    An unlinked temporary file holding C{topology}, compiled, for children
    to inherit (L{readCompiledTopology}); it lives as long as it is open.
    """
    compiled = tempfile.TemporaryFile(prefix="gslb-topology-")
    compiled.write(_modelFingerprint())
    _TopologyPickler(compiled, protocol=pickle.HIGHEST_PROTOCOL).dump(topology)
    compiled.flush()
    return compiled


def readCompiledTopology(fd: int) -> Topology:
    """
    The topology a parent compiled into descriptor C{fd}.  Read with
    C{pread}: the descriptor's offset is shared with every other child.

    @raise CompiledTopologyError: not a compiled topology of this version.
    """
    try:
        size = os.fstat(fd).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(size - offset, 1 << 20), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
    except OSError as e:
        raise CompiledTopologyError(f"cannot read descriptor {fd}: {e.strerror}") from None
    data = b"".join(chunks)
    header = _modelFingerprint()
    if not data.startswith(header):
        raise CompiledTopologyError(f"descriptor {fd} holds no compiled topology of this version")
    try:
        topology = pickle.loads(memoryview(data)[len(header):])
    except Exception as e:
        # A model changed under a running supervisor (an upgrade in place).
        raise CompiledTopologyError(f"descriptor {fd}: {type(e).__name__}: {e}") from None
    if not isinstance(topology, Topology):
        raise CompiledTopologyError(f"descriptor {fd} holds a {type(topology).__name__}, not a topology")
    return topology


def demoTopologyPath() -> str:
    """
    Where the built-in demo topology is: the checkout's C{fixtures/demo.toml},
    or the copy a non-editable install puts under C{share/gslb-twisted}.
    """
    return shippedFixture("demo.toml")
