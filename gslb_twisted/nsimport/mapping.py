"""
A NetScaler configuration's GSLB part, mapped to a gslb-twisted topology.

L{importConfig} reads the text of an C{ns.conf} and returns the topology as
a TOML L{Document} with everything a user must know about the mapping:
the lines and options that could not be imported as the NetScaler runs
them (L{ImportResult.unsupported}, each with its line number and the
fallback taken), the options accepted because they have no bearing on DNS
answers (L{ImportResult.ignored}), and a count of the non-GSLB commands
(interfaces, load balancing, SSL...) that were skipped.

The mapping follows the NetScaler command reference: every option of
C{add/set gslb site|service|vserver}, C{bind gslb vserver|service},
C{add lb monitor} (for the monitors bound to GSLB services), C{set gslb
parameter}, C{add dns soaRec|nsRec|zone} and the ADNS services.  Where a
NetScaler default differs from gslb-twisted's, the NetScaler value is
written out.  docs/IMPORT.md has the whole table.

Pure: no file, network or clock is touched.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from urllib.parse import quote

from ..config import LB_METHODS, SERVICE_TYPES
from .lexer import Command, NSConfigError, Option, readCommands
from .rebase import Network, planRebase
from .tomlwriter import Document, Table

__all__ = ["ImportOptions", "ImportResult", "Note", "importConfig", "NSConfigError"]

# --- NetScaler defaults (command reference) --------------------------------

MEP_PORT = 3011  # NetScaler's MEP port (3009 is MEP over TLS)
METRICS_INTERVAL = 1.0  # "the appliances exchange health information once every second"
MEP_KEEPALIVE_TIMEOUT = 10  # set gslb parameter -MEPKeepAliveTimeout default (4..120)
DOMAIN_TTL = 5  # bind gslb vserver -domainName -TTL default
PERSISTENCE_TIMEOUT_MINUTES = 2  # add gslb vserver -timeout default (2..1440 minutes)
MONITOR_INTERVAL = 5.0  # add lb monitor -interval default (seconds)
MONITOR_RESPTIMEOUT = 2.0  # -resptimeout default
MONITOR_DOWNTIME = 30.0  # -downTime default
MONITOR_RETRIES = 3  # -retries default: probes failed in a row before DOWN (ours too)
MONITOR_SUCCESS_RETRIES = 1  # -successRetries default (ours too)
EMULATION_DNS_PORT = 5300  # under --rebase: answer DNS without root

# The GSLB methods the NetScaler offers that gslb-twisted implements (API,
# policy-driven, is the one it does not).
NETSCALER_METHODS = tuple(m for m in LB_METHODS if m not in ("NONE", "STATIC"))

# Service types gslb-twisted does not know, and the nearest it does.  The
# type labels a service; answers do not depend on it.
SERVICE_TYPE_FALLBACK = {"FTP": "TCP", "SIP_TCP": "TCP", "SIP_SSL": "SSL_TCP", "RDP": "TCP", "ORACLE": "TCP"}

# Monitor types: NetScaler's -> ours, with how faithful the probe is.
MONITOR_TYPES = {"HTTP": "http", "HTTP-ECV": "http", "TCP": "tcp", "TCP-ECV": "tcp", "DNS": "dns", "DNS-TCP": "dns", "UDP-ECV": "udp"}
# Application monitors over TCP (or UDP) that gslb-twisted does not speak:
# the closest probe it has is a connection (or datagram) to the service.
TCP_APPLICATION_MONITORS = frozenset((
    "LDAP", "MYSQL", "MYSQL-ECV", "MSSQL-ECV", "ORACLE-ECV", "POSTGRESQL-ECV", "SMTP", "FTP", "FTP-EXTENDED",
    "POP3", "IMAP", "NNTP", "RTSP", "SIP-TCP", "CITRIX-XML-SERVICE", "STOREFRONT",
))
UDP_APPLICATION_MONITORS = frozenset(("RADIUS", "RADIUS_ACCOUNTING", "SIP-UDP", "SNMP"))
# NetScaler's built-in monitors (usable without `add lb monitor`).
BUILTIN_MONITORS = {"ping": "PING", "ping-default": "PING", "tcp": "TCP", "tcp-default": "TCP", "http": "HTTP", "https": "HTTP"}

# Command groups of the NetScaler CLI: `add lb vserver` is named by three
# words, `add server` by two.
GROUPS = frozenset((
    "gslb", "lb", "ns", "dns", "cs", "ssl", "system", "snmp", "audit", "policy", "responder", "rewrite", "cache",
    "cmp", "aaa", "vpn", "appfw", "ha", "cluster", "authentication", "authorization", "appflow", "tm", "cr", "db",
    "lsn", "stream", "transform", "subscriber", "feo", "bot", "ica", "rdp", "analytics", "contentinspection",
    "reputation", "urlfiltering", "network", "spillover", "filter", "ipsec", "tunnel", "user", "smpp", "api",
))
DNS_RECORDS = frozenset((
    "addrec", "aaaarec", "cnamerec", "mxrec", "txtrec", "srvrec", "ptrrec", "naptrrec", "caarec",
))

_MULTI = frozenset(("respcode", "ldnsprobeorder", "backupparentlist"))
_UNIT_VALUED = frozenset(("interval", "resptimeout", "downtime", "deviation"))
_UNITS = {"SEC": 1.0, "MSEC": 0.001, "MIN": 60.0}


def commandLength(words: list[str]) -> int:
    """How many leading words name the command (C{add gslb vserver}: 3)."""
    if len(words) >= 3 and words[1] in GROUPS:
        return 3
    return 2


def arityFor(words: tuple[str, ...]):
    """
    Option arities for a command: most options take one value (so that an
    address after C{-siteType LOCAL} stays positional); a few take a list,
    a value and a unit, or nothing.
    """
    if len(words) < 2 or words[1] not in ("gslb", "lb", "dns", "ns", "service", "server"):
        return None

    def arity(key: str) -> tuple[int, Optional[int]]:
        if key in _MULTI:
            return (1, None)
        if key in _UNIT_VALUED or key in ("cip", "viewname"):
            return (1, 2)
        if key == "encrypted":
            return (0, 0)
        return (1, 1)

    return arity


# --- results -----------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    """
    @ivar rebase: networks (C{127.0.0.0/8}, at most one per family) to move
        every address into, for emulation on one machine.
    @ivar localSite: the site this NetScaler is (when the file does not say).
    @ivar dnsPort: the port of the DNS listeners made from ADNS services.
    @ivar dropMonitors: leave monitors out (emulated backends do not exist).
    @ivar locationDB: the static-proximity CSV to name in C{[appliance]}.
    @ivar source: the configuration's name, for the output's comments.
    """

    rebase: tuple[Network, ...] = ()
    localSite: Optional[str] = None
    dnsPort: Optional[int] = None
    dropMonitors: bool = False
    locationDB: Optional[str] = None
    source: str = "ns.conf"


@dataclass(frozen=True)
class Note:
    """
    One thing about one line: C{subject} names the command (C{add gslb
    vserver vs-www}), C{item} the option as written (empty when the note is
    about the whole line), C{reason} what happens instead.
    """

    line: int
    subject: str
    item: str
    reason: str

    def describe(self) -> str:
        return ": ".join(part for part in (self.subject, self.item, self.reason) if part)


@dataclass
class ImportResult:
    document: Document
    unsupported: list[Note]
    ignored: list[Note]
    nonGSLB: dict[str, int]
    rebased: dict[str, str]
    counts: dict[str, int]


# --- what the configuration says, before mapping -------------------------------


@dataclass
class _Site:
    name: str
    command: Command
    ip: str
    publicIP: Optional[str] = None
    siteType: Optional[str] = None
    metricExchange: bool = True
    trigger: str = "ALWAYS"
    comments: list[str] = field(default_factory=list)


@dataclass
class _Service:
    name: str
    command: Command
    ip: Optional[str]
    port: Optional[int]
    type: Optional[str]
    site: Optional[str] = None
    publicIP: Optional[str] = None
    publicPort: Optional[int] = None
    maxClient: Optional[int] = None
    skip: Optional[str] = None  # why it is not imported
    monitors: list[tuple[str, Command]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


@dataclass
class _Monitor:
    name: str
    type: str
    commands: list[Command] = field(default_factory=list)
    builtin: bool = False


@dataclass
class _Setting:
    value: Any
    command: Command
    option: Option


@dataclass
class _VServer:
    name: str
    command: Command
    settings: dict[str, _Setting] = field(default_factory=dict)
    bindings: list[tuple[str, Optional[int], Command]] = field(default_factory=list)
    domains: list[tuple[str, Optional[int], Command]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        setting = self.settings.get(key)
        return default if setting is None else setting.value


@dataclass
class _Zone:
    name: str
    command: Command
    ns: list[str] = field(default_factory=list)
    soa: dict[str, Any] = field(default_factory=dict)
    origin: Optional[str] = None


# --- value checks: a wrong value is an error naming the line ---------------------


def _fail(command: Command, message: str) -> NSConfigError:
    return NSConfigError(command.line, f"{command.summary()}: {message}")


def _single(command: Command, option: Option) -> str:
    if len(option.values) != 1:
        raise _fail(command, f"{option.name}: expected one value, found {len(option.values)}")
    return option.values[0]


def _integer(command: Command, option: Option, low: int, high: int, value: Optional[str] = None) -> int:
    text = _single(command, option) if value is None else value
    if not re.fullmatch(r"[0-9]+", text):
        raise _fail(command, f"{option.name}: expected an integer from {low} to {high}, found {text!r}")
    number = int(text)
    if not low <= number <= high:
        raise _fail(command, f"{option.name}: expected an integer from {low} to {high}, found {number}")
    return number


def _choice(command: Command, option: Option, choices: Sequence[str]) -> str:
    value = _single(command, option).upper()
    if value not in choices:
        raise _fail(command, f"{option.name}: expected one of {', '.join(choices)}, found {option.values[0]!r}")
    return value


def _address(command: Command, what: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _fail(command, f"{what}: expected an IPv4 or IPv6 address, found {text!r}") from None


def _netmask(command: Command, option: Option) -> str:
    text = _single(command, option)
    try:
        if text.lower().startswith("0x"):
            text = str(ipaddress.IPv4Address(int(text, 16)))
        network = ipaddress.IPv4Network("0.0.0.0/" + text)
    except ValueError:
        raise _fail(command, f"{option.name}: expected a netmask such as 255.255.255.0, found {option.values[0]!r}") from None
    if network.prefixlen == 0:
        raise _fail(command, f"{option.name}: expected a netmask with at least one bit set, found {option.values[0]!r}")
    return str(network.netmask)


def _port(command: Command, text: str, what: str = "port") -> Optional[int]:
    if text == "*":
        return None
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= 65535:
        raise _fail(command, f"{what}: expected a port from 1 to 65535 or *, found {text!r}")
    return int(text)


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _domainName(text: str) -> Optional[str]:
    """The name as the topology spells it (lower case, no final dot), or None."""
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def _inZone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _interval(command: Command, option: Option) -> float:
    """A monitor time: C{-interval 5}, C{-interval 500 MSEC}, in seconds."""
    if not option.values:
        raise _fail(command, f"{option.name}: expected a value")
    number = _integer(command, option, 1, 20940000, option.values[0])
    unit = option.values[1].upper() if len(option.values) > 1 else "SEC"
    if unit not in _UNITS:
        raise _fail(command, f"{option.name}: expected a unit SEC, MSEC or MIN after the value, found {option.values[1]!r}")
    return round(number * _UNITS[unit], 6)


def _wrap(items: list[str], width: int = 96, indent: str = "  ") -> list[str]:
    """C{items} joined with commas into lines of about C{width} characters, never splitting one."""
    lines: list[str] = []
    current = ""
    for index, item in enumerate(items):
        item += "," if index < len(items) - 1 else "."
        if current and len(current) + 1 + len(item) > width:
            lines.append(indent + current)
            current = item
        else:
            current = f"{current} {item}" if current else item
    if current:
        lines.append(indent + current)
    return lines


def _safeFileName(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) or "site"


# --- the import ----------------------------------------------------------------------


def importConfig(text: str, options: ImportOptions = ImportOptions()) -> ImportResult:
    """
    Map a NetScaler configuration's GSLB part to a topology.

    @raise NSConfigError: the configuration cannot be imported (a line that
        does not lex, a GSLB command missing what it needs, a value the
        NetScaler would refuse, a reference to an entity never defined).
    """
    return _Importer(options).run(text)


class _Importer:
    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.unsupported: list[Note] = []
        self.ignored: list[Note] = []
        self.nonGSLB: dict[str, int] = {}
        self.nonGSLBSpelling: dict[str, str] = {}
        self.gslbCommands = 0
        self.nsAddresses: set[str] = set()
        self.hostName: Optional[tuple[str, Command]] = None
        self.servers: dict[str, tuple[str, Command]] = {}
        self.sites: dict[str, _Site] = {}
        self.services: dict[str, _Service] = {}
        self.monitors: dict[str, _Monitor] = {}
        self.vservers: dict[str, _VServer] = {}
        self.zones: dict[str, _Zone] = {}
        self.adns: list[tuple[str, str, int, Command]] = []  # transport, ip, port, line
        self.keepalive: Optional[tuple[int, Command]] = None
        self.local: Optional[_Site] = None
        self.plan: dict[str, str] = {}

    # notes

    def _note(self, sink: list[Note], command: Command, option: Optional[Option], reason: str) -> None:
        sink.append(Note(command.line, command.summary(), option.show() if option is not None else "", reason))

    def unsupportedOption(self, command: Command, option: Optional[Option], reason: str) -> None:
        self._note(self.unsupported, command, option, reason)

    def ignoredOption(self, command: Command, option: Option, reason: str) -> None:
        self._note(self.ignored, command, option, reason)

    def acceptDefault(self, command: Command, option: Option, default: str, reason: str) -> None:
        """Accept the option at its NetScaler default (our behaviour); list any other value."""
        if _single(command, option).upper() == default:
            self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
        else:
            self.unsupportedOption(command, option, reason)

    def unknownOption(self, command: Command, option: Option) -> None:
        self.unsupportedOption(command, option, "not an option gslb-import knows for this command: not imported")

    def extraArguments(self, command: Command, expected: int) -> None:
        for extra in command.positionals[expected:]:
            self.unsupportedOption(command, None, f"unexpected argument {extra!r}: not imported")

    # ------------------------------------------------------------------ run

    def run(self, text: str) -> ImportResult:
        commands = list(readCommands(text, commandLength, arityFor))
        buckets: dict[str, list[Command]] = {}
        for command in commands:
            buckets.setdefault(self._kind(command), []).append(command)
        for command in buckets.get("context", []):
            self._context(command)
        for command in buckets.get("site", []):
            self._site(command)
        if not self.sites:
            raise NSConfigError(None, "no GSLB site in the configuration (add gslb site): nothing to import")
        self._chooseLocal()
        for command in buckets.get("server", []):
            self._server(command)
        for command in buckets.get("service", []):
            self._service(command)
        for command in buckets.get("monitor", []):
            self._monitorDefinition(command)
        for command in buckets.get("monitor-bind", []):
            self._monitorBinding(command)
        for command in buckets.get("vserver", []):
            self._vserver(command)
        for command in buckets.get("parameter", []):
            self._parameter(command)
        for command in buckets.get("zone", []):
            self._zone(command)
        for command in buckets.get("adns", []):
            self._adnsService(command)
        for command in buckets.get("rpcnode", []):
            self._rpcNode(command)
        for command in buckets.get("location", []):
            self.gslbCommands += 1
            self.unsupportedOption(
                command, None,
                "the NetScaler location database is not imported (its formats differ): convert it to a CSV of "
                "`cidr,lat,lon` lines and give it with --location-db",
            )
        for command in buckets.get("gslb-other", []):
            self._otherGSLB(command)
        for command in buckets.get("other", []):
            self._countNonGSLB(command)
        document = self._build(buckets.get("dns-record", []))
        return ImportResult(
            document=document,
            unsupported=sorted(self.unsupported, key=lambda n: n.line),
            ignored=sorted(self.ignored, key=lambda n: n.line),
            nonGSLB=dict(sorted(self.nonGSLB.items())),
            rebased=dict(self.plan),
            counts=self.counts,
        )

    def _kind(self, command: Command) -> str:
        words = command.words
        verb = words[0]
        group = words[1] if len(words) > 1 else ""
        entity = words[2] if len(words) > 2 else ""
        if group == "gslb":
            if entity == "site" and verb in ("add", "set"):
                return "site"
            if entity == "service" and verb in ("add", "set", "enable", "disable"):
                return "service"
            if entity == "service" and verb == "bind":
                return "monitor-bind"
            if entity == "vserver" and verb in ("add", "set", "bind", "enable", "disable"):
                return "vserver"
            if entity == "parameter" and verb == "set":
                return "parameter"
            return "gslb-other"
        if group == "lb" and entity == "monitor" and verb in ("add", "set"):
            return "monitor"
        if group == "lb" and entity == "monitor" and verb == "bind":
            return "monitor-bind"
        if group == "dns" and verb == "add" and entity in ("soarec", "nsrec", "zone"):
            return "zone"
        if group == "dns" and verb == "add" and entity in DNS_RECORDS:
            return "dns-record"
        if group == "ns" and verb == "set" and entity == "rpcnode":
            return "rpcnode"
        if (group == "ns" and ((verb == "add" and entity in ("ip", "ip6")) or (verb == "set" and entity in ("config", "hostname")))):
            return "context"
        if verb == "add" and group == "server":
            return "server"
        if verb == "add" and group == "service" and len(command.positionals) >= 3 and command.positionals[2].upper().startswith("ADNS"):
            return "adns"
        if verb == "add" and group in ("location", "locationfile", "locationfile6"):
            return "location"
        return "other"

    def _countNonGSLB(self, command: Command) -> None:
        # Counted per command, shown as first written (`set ns rpcNode`).
        key = " ".join(command.words)
        shown = self.nonGSLBSpelling.setdefault(key, " ".join(command.spelled or command.words))
        self.nonGSLB[shown] = self.nonGSLB.get(shown, 0) + 1

    # ------------------------------------------------------- context (not GSLB)

    def _context(self, command: Command) -> None:
        self._countNonGSLB(command)
        words = command.words
        if words[2] in ("ip", "ip6") and command.positionals:
            self.nsAddresses.add(self._looseAddress(command.positionals[0].split("/")[0]))
        elif words[2] == "config":
            for option in command.options:
                if option.key == "ipaddress" and option.values:
                    self.nsAddresses.add(self._looseAddress(option.values[0]))
        elif words[2] == "hostname" and command.positionals:
            self.hostName = (command.positionals[0], command)

    @staticmethod
    def _looseAddress(text: str) -> str:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text

    def _server(self, command: Command) -> None:
        self._countNonGSLB(command)
        if len(command.positionals) >= 2:
            self.servers[command.positionals[0]] = (command.positionals[1], command)

    # ------------------------------------------------------------------ sites

    def _site(self, command: Command) -> None:
        self.gslbCommands += 1
        name = command.name
        if name is None:
            raise _fail(command, "expected a site name and its IP address")
        if command.words[0] == "add":
            if name in self.sites:
                raise _fail(command, f"site {name!r} is already defined at line {self.sites[name].command.line}")
            rest = list(command.positionals[1:])
            siteType = None
            if rest and rest[0].upper() in ("LOCAL", "REMOTE"):
                siteType = rest.pop(0).upper()
            if not rest:
                raise _fail(command, "expected the site's IP address")
            site = _Site(name, command, _address(command, "site IP address", rest[0]), siteType=siteType)
            self.sites[name] = site
            self.extraArguments(command, 2 + (siteType is not None))
        else:
            site = self.sites.get(name)
            if site is None:
                raise _fail(command, f"no site {name!r} is defined before this line (add gslb site)")
            self.extraArguments(command, 1)
        for option in command.options:
            self._siteOption(command, option, site)

    def _siteOption(self, command: Command, option: Option, site: _Site) -> None:
        key = option.key
        if key == "sitetype":
            site.siteType = _choice(command, option, ("LOCAL", "REMOTE"))
        elif key == "publicip":
            site.publicIP = _address(command, option.name, _single(command, option))
        elif key == "metricexchange":
            site.metricExchange = _choice(command, option, ("ENABLED", "DISABLED")) == "ENABLED"
        elif key == "nwmetricexchange":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "ENABLED", "network metrics (RTT) are always exchanged with MEP sites here")
        elif key == "sessionexchange":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "ENABLED", "persistence sessions are always shared with MEP sites here")
        elif key == "triggermonitor":
            site.trigger = _choice(command, option, ("ALWAYS", "MEPDOWN", "MEPDOWN_SVCDOWN"))
        elif key in ("parentsite", "clip", "publicclip", "backupparentlist"):
            self.unsupportedOption(command, option, "parent-child and cluster GSLB sites are not emulated: imported as an ordinary site")
        elif key == "naptrreplacementsuffix":
            self.unsupportedOption(command, option, "NAPTR records are not served")
        else:
            self.unknownOption(command, option)

    def _chooseLocal(self) -> None:
        wanted = self.options.localSite
        if wanted is not None:
            if wanted not in self.sites:
                raise NSConfigError(None, f"--local-site {wanted!r}: no such site (sites: {', '.join(self.sites)})")
            self.local = self.sites[wanted]
            return
        explicit = [s for s in self.sites.values() if s.siteType == "LOCAL"]
        if len(explicit) > 1:
            raise _fail(
                explicit[1].command,
                f"a second local site (the first is {explicit[0].name!r} at line {explicit[0].command.line}); "
                "choose this appliance's with --local-site NAME",
            )
        if explicit:
            self.local = explicit[0]
            return
        owned = [s for s in self.sites.values() if s.siteType != "REMOTE" and s.ip in self.nsAddresses]
        if len(owned) > 1:
            raise _fail(
                owned[1].command,
                f"two sites on this NetScaler's own addresses ({owned[0].name!r} and {owned[1].name!r}); "
                "choose this appliance's with --local-site NAME",
            )
        if owned:
            self.local = owned[0]
            return
        raise NSConfigError(
            None,
            "no local site: none has -siteType LOCAL or an address of this NetScaler (add ns ip, set ns config "
            "-IPAddress); name it with --local-site NAME (sites: " + ", ".join(self.sites) + ")",
        )

    # --------------------------------------------------------------- services

    def _service(self, command: Command) -> None:
        self.gslbCommands += 1
        name = command.name
        if name is None:
            raise _fail(command, "expected a service name")
        verb = command.words[0]
        if verb in ("enable", "disable"):
            service = self._knownService(command, name)
            if verb == "disable":
                self.unsupportedOption(
                    command, None,
                    "imported enabled: disable it at run time with `disable gslb service NAME` in gslb-console",
                )
            self.extraArguments(command, 1)
            return
        if verb == "add":
            if name in self.services:
                raise _fail(command, f"service {name!r} is already defined at line {self.services[name].command.line}")
            cname = any(o.key == "cnameentry" for o in command.options)
            if cname:
                service = _Service(name, command, None, None, None)
                self.extraArguments(command, 1)
            else:
                if len(command.positionals) < 4:
                    raise _fail(command, "expected the service's IP address (or server name), type and port")
                target, kind, portText = command.positionals[1:4]
                service = _Service(name, command, None, _port(command, portText), kind.upper())
                if portText == "*":
                    self.unsupportedOption(command, None, "port * (any): recorded as 65535, as NITRO shows it")
                    service.port = 65535
                self._resolveTarget(command, service, target)
                self.extraArguments(command, 4)
            self.services[name] = service
        else:
            service = self._knownService(command, name)
            self.extraArguments(command, 1)
        for option in command.options:
            self._serviceOption(command, option, service)
        if verb == "add" and service.site is None:
            raise _fail(command, "expected -siteName (every GSLB service belongs to a site)")

    def _knownService(self, command: Command, name: str) -> _Service:
        service = self.services.get(name)
        if service is None:
            raise _fail(command, f"no GSLB service {name!r} is defined (add gslb service)")
        return service

    def _resolveTarget(self, command: Command, service: _Service, target: str) -> None:
        try:
            service.ip = str(ipaddress.ip_address(target))
            return
        except ValueError:
            pass
        server = self.servers.get(target)
        if server is None:
            raise _fail(command, f"{target!r} is neither an IP address nor a server defined with `add server`")
        address, serverCommand = server
        try:
            service.ip = str(ipaddress.ip_address(address))
            service.comments.append(f"server {target} (line {serverCommand.line})")
        except ValueError:
            service.skip = f"its server {target!r} is the domain name {address!r} (line {serverCommand.line}), and domain-based services are not emulated"

    def _serviceOption(self, command: Command, option: Option, service: _Service) -> None:
        key = option.key
        if key == "cnameentry":
            service.skip = "CNAME-based GSLB (-cnameEntry) is not emulated: answers are addresses"
        elif key == "publicip":
            value = _single(command, option)
            if value not in ("*", "0.0.0.0"):
                service.publicIP = _address(command, option.name, value)
        elif key == "publicport":
            service.publicPort = _port(command, _single(command, option), option.name)
        elif key == "maxclient":
            service.maxClient = _integer(command, option, 0, 4294967294)
        elif key == "sitename":
            site = _single(command, option)
            if site not in self.sites:
                raise _fail(command, f"{option.name}: no site {site!r} is defined (sites: {', '.join(self.sites)})")
            service.site = site
        elif key == "state":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(
                command, option, "ENABLED",
                "imported enabled: disable it at run time with `disable gslb service NAME` in gslb-console",
            )
        elif key == "healthmonitor":
            _choice(command, option, ("YES", "NO"))
            self.acceptDefault(command, option, "YES", "the service's state follows its monitor here whenever one is bound")
        elif key == "cip":
            if not option.values or option.values[0].upper() not in ("ENABLED", "DISABLED"):
                raise _fail(command, f"{option.name}: expected ENABLED or DISABLED")
            if option.values[0].upper() == "ENABLED":
                self.unsupportedOption(
                    command, option,
                    "client IP header insertion serves connection-proxy site persistence, which is not emulated (answers are DNS only)",
                )
            else:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
        elif key == "sitepersistence":
            value = _single(command, option)
            if value.upper() == "NONE":
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "site persistence (HTTP redirect, connection proxy) is not emulated: answers are DNS only")
        elif key in ("siteprefix", "cookietimeout"):
            self.unsupportedOption(command, option, "site persistence (HTTP redirect, connection proxy) is not emulated: answers are DNS only")
        elif key in ("clttimeout", "svrtimeout", "downstateflush", "appflowlog", "maxaaausers"):
            self.ignoredOption(command, option, "connection handling on the NetScaler itself: no bearing on DNS answers")
        elif key == "maxbandwidth":
            self.unsupportedOption(command, option, "a per-service bandwidth ceiling is not emulated (a vserver's BANDWIDTH spillover is)")
        elif key == "monthreshold":
            self.unsupportedOption(command, option, "one monitor per service here: a monitor threshold has no equivalent")
        elif key == "hashid":
            self.unsupportedOption(command, option, "SOURCEIPHASH places services by name here: hash ids are not used")
        elif key == "comment":
            service.comments.append("comment: " + _single(command, option))
        elif key.startswith("naptr"):
            self.unsupportedOption(command, option, "NAPTR records are not served")
        else:
            self.unknownOption(command, option)

    # --------------------------------------------------------------- monitors

    def _monitorDefinition(self, command: Command) -> None:
        name = command.name
        if name is None:
            raise _fail(command, "expected a monitor name")
        if command.words[0] == "add":
            if len(command.positionals) < 2:
                raise _fail(command, "expected the monitor's name and type")
            if name in self.monitors and not self.monitors[name].builtin:
                raise _fail(command, f"monitor {name!r} is already defined at line {self.monitors[name].commands[0].line}")
            self.monitors[name] = _Monitor(name, command.positionals[1].upper(), [command])
        else:
            monitor = self.monitors.get(name)
            if monitor is None:
                # `set lb monitor` of a monitor never added: the NetScaler's
                # own (built-in) monitors, or an error the NetScaler reports.
                monitor = self._builtinMonitor(name)
                if monitor is None:
                    raise _fail(command, f"no monitor {name!r} is defined (add lb monitor)")
            monitor.commands.append(command)

    def _builtinMonitor(self, name: str) -> Optional[_Monitor]:
        kind = BUILTIN_MONITORS.get(name.lower())
        if kind is None:
            return None
        monitor = self.monitors[name] = _Monitor(name, kind, [], builtin=True)
        return monitor

    def _monitorBinding(self, command: Command) -> None:
        if command.words[1] == "lb":
            # bind lb monitor MONITOR SERVICE: GSLB only for a GSLB service.
            if len(command.positionals) < 2 or command.positionals[1] not in self.services:
                self._countNonGSLB(command)
                return
            self.gslbCommands += 1
            monitorName, serviceName = command.positionals[0], command.positionals[1]
            options = command.options
            self.extraArguments(command, 2)
        else:
            self.gslbCommands += 1
            serviceName = command.name
            if serviceName is None:
                raise _fail(command, "expected a service name")
            self.extraArguments(command, 1)
            monitorName = None
            options = []
            for option in command.options:
                if option.key == "monitorname":
                    monitorName = _single(command, option)
                elif option.key == "viewname":
                    self.unsupportedOption(command, option, "DNS views are not emulated: every client gets the same addresses")
                else:
                    options.append(option)
            if monitorName is None:
                for option in options:
                    self.unknownOption(command, option)
                return
        service = self._knownService(command, serviceName)
        enabled = True
        for option in options:
            if option.key in ("monstate", "state"):
                enabled = _choice(command, option, ("ENABLED", "DISABLED")) == "ENABLED"
                if not enabled:
                    self.unsupportedOption(command, option, "a disabled monitor binding is left out: the service is imported without this monitor")
            elif option.key == "weight":
                _integer(command, option, 1, 100)
                self.ignoredOption(command, option, "monitor weights count only toward -monThreshold, which is not emulated")
            else:
                self.unknownOption(command, option)
        if monitorName not in self.monitors and self._builtinMonitor(monitorName) is None:
            self.unsupportedOption(
                command, None,
                f"monitor {monitorName!r} is neither defined in this file (add lb monitor) nor a built-in one gslb-import "
                "knows: the service is imported without it",
            )
            return
        if enabled:
            service.monitors.append((monitorName, command))

    def _evaluateMonitor(self, monitor: _Monitor) -> Optional[dict]:
        """
        The probe a monitor describes, as C{{kind, path, method, status,
        content, interval, timeout, secure, destIP, destPort}}, or None when
        it has no equivalent.  Notes go to the monitor's own lines, once.
        """
        first = monitor.commands[0] if monitor.commands else None
        kind = monitor.type
        spec: dict[str, Any] = {
            "type": None, "path": "/", "status": None, "content": None, "interval": MONITOR_INTERVAL,
            "timeout": MONITOR_RESPTIMEOUT, "secure": monitor.builtin and monitor.name.lower() == "https",
            "destIP": None, "destPort": None,
        }
        for command in monitor.commands:
            self.gslbCommands += 1
            self.extraArguments(command, 2 if command.words[0] == "add" else 1)
            for option in command.options:
                if self._monitorOption(command, option, kind, spec) is False:
                    return None
        if spec["timeout"] >= spec["interval"]:
            where = monitor.commands[-1] if monitor.commands else None
            if where is None:
                return None
            raise _fail(where, f"-resptimeout ({spec['timeout']} s) must be less than -interval ({spec['interval']} s)")
        if kind in MONITOR_TYPES:
            spec["type"] = MONITOR_TYPES[kind]
            if kind == "DNS-TCP" and first is not None:
                self.unsupportedOption(first, None, "DNS-TCP: the DNS probe here asks over UDP")
        elif kind == "PING":
            spec["type"] = "tcp"
            if first is not None:
                self.unsupportedOption(
                    first, None,
                    "PING: no ICMP probe here; the closest is a TCP connection to the service's port (imported as type tcp)",
                )
            else:
                spec["builtinNote"] = "PING: no ICMP probe here; the closest is a TCP connection to the service's port (imported as type tcp)"
        elif kind in TCP_APPLICATION_MONITORS or kind in UDP_APPLICATION_MONITORS:
            spec["type"] = "tcp" if kind in TCP_APPLICATION_MONITORS else "udp"
            if first is not None:
                self.unsupportedOption(
                    first, None,
                    f"{kind}: the protocol's own check is not emulated; the closest probe is "
                    f"{'a TCP connection' if spec['type'] == 'tcp' else 'a UDP datagram'} to the service (type {spec['type']})",
                )
        else:
            if first is not None:
                reason = (
                    "LOAD monitors (SNMP metric tables) are not imported: CUSTOMLOAD uses the load the sites report"
                    if kind == "LOAD" else f"monitor type {kind} has no equivalent here"
                )
                self.unsupportedOption(first, None, reason + ": the services are imported without this monitor")
            return None
        if spec["secure"] and spec["type"] == "http":
            spec["type"] = "https"
        elif spec["secure"] and first is not None:
            self.unsupportedOption(first, None, f"-secure YES: the {spec['type']} probe here does not use TLS")
        if spec["type"] in ("http", "https") and spec["status"] is None:
            spec["status"] = [200]
        if kind == "HTTP-ECV" and first is not None:
            self.unsupportedOption(
                first, None,
                "HTTP-ECV: the response must also have status 200 here (NetScaler checks only the receive string)",
            )
        return spec

    def _monitorOption(self, command: Command, option: Option, kind: str, spec: dict) -> Optional[bool]:
        key = option.key
        http = kind in ("HTTP", "HTTP-ECV")
        if key == "respcode" and kind == "HTTP":
            if not option.values:
                raise _fail(command, f"{option.name}: expected HTTP codes such as 200 or 200-299")
            codes: list[int] = []
            for value in option.values:
                match = re.fullmatch(r"([0-9]{3})(?:-([0-9]{3}))?", value)
                if not match:
                    raise _fail(command, f"{option.name}: expected HTTP codes such as 200 or 200-299, found {value!r}")
                low, high = int(match.group(1)), int(match.group(2) or match.group(1))
                if not 100 <= low <= high <= 599:
                    raise _fail(command, f"{option.name}: expected HTTP codes from 100 to 599, found {value!r}")
                codes.extend(c for c in range(low, high + 1) if c not in codes)
            spec["status"] = codes
        elif (key == "httprequest" and kind == "HTTP") or (key == "send" and kind == "HTTP-ECV"):
            request = _single(command, option).split("\r\n")[0].split("\n")[0]
            parts = request.split()
            method = parts[0].upper() if parts else "GET"
            if method not in ("GET", "HEAD"):
                self.unsupportedOption(command, option, f"the HTTP probe here always sends GET, not {method}")
            path = parts[1] if len(parts) > 1 else "/"
            if path.lower().startswith(("http://", "https://")):
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            if not path.startswith("/"):
                path = "/" + path
            spec["path"] = quote(path, safe="/?&=%:@!$'()*+,;~-._")
            if len(request) < len(_single(command, option).rstrip("\r\n")):
                self.unsupportedOption(command, option, "only the request line is used: the probe sends its own headers")
        elif key == "recv" and kind == "HTTP-ECV":
            spec["content"] = _single(command, option)
        elif key in ("send", "recv"):
            self.unsupportedOption(command, option, f"the {MONITOR_TYPES.get(kind, kind.lower())} probe here checks reachability only, not a send/receive exchange")
        elif key == "customheaders" and http:
            self.unsupportedOption(command, option, "the HTTP probe here sends no custom headers")
        elif key == "interval":
            spec["interval"] = _interval(command, option)
        elif key == "resptimeout":
            spec["timeout"] = _interval(command, option)
        elif key == "downtime":
            if _interval(command, option) == MONITOR_DOWNTIME:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "a DOWN service is probed every -interval here; the down time is not emulated")
        elif key == "retries":
            if _integer(command, option, 1, 127) == MONITOR_RETRIES:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "a service goes DOWN after 3 failed probes in a row here (NetScaler's default)")
        elif key == "successretries":
            if _integer(command, option, 1, 32) == MONITOR_SUCCESS_RETRIES:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "a service comes UP after 1 successful probe here (NetScaler's default)")
        elif key == "failureretries":
            if _integer(command, option, 0, 32) == 0:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "a service goes DOWN after 3 failed probes in a row here")
        elif key in ("alertretries", "lrtm", "resptimeoutthresh", "action", "deviation"):
            if key == "deviation":
                self.unsupportedOption(command, option, "dynamic response-time thresholds are not emulated")
            else:
                self.ignoredOption(command, option, "alerts and response-time learning on the NetScaler: no bearing on the service's state here")
        elif key == "destip":
            address = _address(command, option.name, _single(command, option))
            if http:
                spec["destIP"] = address
            else:
                self.unsupportedOption(command, option, "the probe here targets the service's own address")
        elif key == "destport":
            port = _port(command, _single(command, option), option.name)
            if http and port is not None:
                spec["destPort"] = port
            else:
                self.unsupportedOption(command, option, "the probe here targets the service's own port")
        elif key == "secure":
            spec["secure"] = _choice(command, option, ("YES", "NO")) == "YES"
        elif key == "reverse":
            if _choice(command, option, ("YES", "NO")) == "YES":
                self.unsupportedOption(command, option, "a reverse monitor has no equivalent: the services are imported without this monitor")
                return False
            self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
        elif key == "state":
            if _choice(command, option, ("ENABLED", "DISABLED")) == "DISABLED":
                self.unsupportedOption(command, option, "a disabled monitor is left out: the services are imported without it")
                return False
            self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
        elif key in ("query", "querytype", "ipaddress") and kind in ("DNS", "DNS-TCP"):
            self.unsupportedOption(command, option, "the DNS probe here asks for '.' and takes any well-formed response as UP")
        elif key in ("transparent", "iptunnel", "tos", "tosid"):
            self.unsupportedOption(command, option, "probe encapsulation is not emulated: the probe goes straight to the service")
        else:
            self.unknownOption(command, option)
        return None

    # ---------------------------------------------------------------- vservers

    def _vserver(self, command: Command) -> None:
        self.gslbCommands += 1
        name = command.name
        if name is None:
            raise _fail(command, "expected a vserver name")
        verb = command.words[0]
        if verb == "add":
            if name in self.vservers:
                raise _fail(command, f"vserver {name!r} is already defined at line {self.vservers[name].command.line}")
            if len(command.positionals) < 2:
                raise _fail(command, "expected the vserver's name and service type")
            vserver = self.vservers[name] = _VServer(name, command)
            self.extraArguments(command, 2)
        else:
            vserver = self.vservers.get(name)
            if vserver is None:
                raise _fail(command, f"no GSLB vserver {name!r} is defined before this line (add gslb vserver)")
            self.extraArguments(command, 1)
        if verb == "bind":
            self._vserverBinding(command, vserver)
            return
        if verb in ("enable", "disable"):
            if verb == "disable":
                self.unsupportedOption(command, None, "a disabled vserver is imported enabled: its domains are answered")
            return
        for option in command.options:
            self._vserverOption(command, option, vserver)

    def _set(self, vserver: _VServer, key: str, value: Any, command: Command, option: Option) -> None:
        vserver.settings[key] = _Setting(value, command, option)

    def _vserverOption(self, command: Command, option: Option, vserver: _VServer) -> None:
        key = option.key
        if key == "dnsrecordtype":
            value = _choice(command, option, ("A", "AAAA", "CNAME", "NAPTR"))
            if value in ("A", "AAAA"):
                self.ignoredOption(command, option, "a vserver answers A and AAAA queries from its services' address families")
            else:
                self.unsupportedOption(command, option, f"{value} records are not served: only A and AAAA")
        elif key in ("lbmethod", "backuplbmethod"):
            self._set(vserver, key, _single(command, option).upper(), command, option)
        elif key == "netmask":
            self._set(vserver, "netmask", _netmask(command, option), command, option)
        elif key == "v6netmasklen":
            self._set(vserver, "v6_netmask_len", _integer(command, option, 1, 128), command, option)
        elif key == "tolerance":
            self._set(vserver, "tolerance", _integer(command, option, 0, 100), command, option)
        elif key == "persistencetype":
            self._set(vserver, "persistence", _choice(command, option, ("SOURCEIP", "NONE")), command, option)
        elif key == "persistenceid":
            _integer(command, option, 0, 65535)
            self.ignoredOption(command, option, "the id matches the vserver across sites; vservers are matched by name here")
        elif key == "persistmask":
            self._set(vserver, "persist_mask", _netmask(command, option), command, option)
        elif key == "v6persistmasklen":
            self._set(vserver, "v6_persist_mask_len", _integer(command, option, 1, 128), command, option)
        elif key == "timeout":
            self._set(vserver, "timeout", _integer(command, option, 2, 1440), command, option)
        elif key == "edr":
            self._set(vserver, "edr", _choice(command, option, ("ENABLED", "DISABLED")) == "ENABLED", command, option)
        elif key == "mir":
            self._set(vserver, "mir", _choice(command, option, ("ENABLED", "DISABLED")) == "ENABLED", command, option)
        elif key == "ecs":
            if _choice(command, option, ("ENABLED", "DISABLED")) == "ENABLED":
                self.ignoredOption(command, option, "EDNS Client Subnet is used here whenever a query carries it")
            else:
                self.unsupportedOption(command, option, "EDNS Client Subnet is always used here when a query carries it")
        elif key == "ecsaddrvalidation":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "DISABLED", "client subnets are not validated here")
        elif key == "disableprimaryondown":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "DISABLED", "answers return to the primary vserver as soon as it is UP again here")
        elif key == "dynamicweight":
            value = _single(command, option).upper()
            if value == "DISABLED":
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "dynamic weights are not emulated: the binding weights are used as they are")
        elif key == "state":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "ENABLED", "a disabled vserver is imported enabled: its domains are answered")
        elif key == "considereffectivestate":
            _choice(command, option, ("NONE", "STATE_ONLY"))
            self.acceptDefault(command, option, "NONE", "effective states are not used: a vserver with no service UP gives its down response")
        elif key == "comment":
            vserver.comments.append("comment: " + _single(command, option))
        elif key == "somethod":
            self._set(vserver, "soMethod", _choice(command, option, ("CONNECTION", "DYNAMICCONNECTION", "BANDWIDTH", "HEALTH", "NONE")), command, option)
        elif key == "sothreshold":
            self._set(vserver, "soThreshold", _integer(command, option, 1, 4294967287), command, option)
        elif key == "sobackupaction":
            self._set(vserver, "soBackupAction", _choice(command, option, ("DROP", "ACCEPT", "REDIRECT")), command, option)
        elif key == "sopersistence":
            _choice(command, option, ("ENABLED", "DISABLED"))
            self.acceptDefault(command, option, "DISABLED", "spillover persistence is not emulated")
        elif key == "sopersistencetimeout":
            _integer(command, option, 2, 1440)
            self.ignoredOption(command, option, "used only with -soPersistence ENABLED, which is not emulated")
        elif key == "backupvserver":
            self._set(vserver, "backup_vserver", _single(command, option), command, option)
        elif key == "backupsessiontimeout":
            if _integer(command, option, 0, 1440) == 0:
                self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            else:
                self.unsupportedOption(command, option, "backup session persistence is not emulated")
        elif key in ("appflowlog", "iptype"):
            self.ignoredOption(command, option, "no bearing on DNS answers")
        elif key == "rule":
            self.unsupportedOption(command, option, "the API method's policy rules are not evaluated")
        elif key in ("toggleorder", "orderthreshold"):
            self.unsupportedOption(command, option, "order-based service selection is not emulated")
        else:
            self.unknownOption(command, option)

    def _vserverBinding(self, command: Command, vserver: _VServer) -> None:
        keys = [option.key for option in command.options]
        if "servicename" in keys:
            service, weight = None, None
            for option in command.options:
                if option.key == "servicename":
                    service = _single(command, option)
                elif option.key == "weight":
                    weight = _integer(command, option, 1, 100)
                elif option.key == "order":
                    self.unsupportedOption(command, option, "order-based service selection is not emulated")
                else:
                    self.unknownOption(command, option)
            self._knownService(command, service)
            if any(b[0] == service for b in vserver.bindings):
                raise _fail(command, f"service {service!r} is already bound to {vserver.name!r}")
            vserver.bindings.append((service, weight, command))
        elif "domainname" in keys:
            domain, ttl = None, None
            for option in command.options:
                if option.key == "domainname":
                    domain = _single(command, option)
                elif option.key == "ttl":
                    ttl = _integer(command, option, 1, 2147483647)
                elif option.key == "backupip":
                    self.unsupportedOption(command, option, "no backup IP here: a vserver with no service UP gives its backup vserver, else its down response")
                elif option.key in ("cookiedomain", "cookietimeout"):
                    self.unsupportedOption(command, option, "site cookies (HTTP redirect persistence) are not emulated")
                elif option.key == "sitedomainttl":
                    self.ignoredOption(command, option, "site domains (-sitePrefix) are not emulated")
                else:
                    self.unknownOption(command, option)
            vserver.domains.append((domain, ttl, command))
        elif "servicegroupname" in keys:
            self.unsupportedOption(command, None, "GSLB service groups are not imported: bind their members as GSLB services")
        elif "policyname" in keys:
            self.unsupportedOption(command, None, "DNS policies (the API method) are not evaluated")
        else:
            self.unsupportedOption(command, None, "a binding gslb-import does not know: not imported")

    # -------------------------------------------------------- gslb parameter

    def _parameter(self, command: Command) -> None:
        self.gslbCommands += 1
        self.extraArguments(command, 0)
        for option in command.options:
            key = option.key
            if key == "mepkeepalivetimeout":
                self.keepalive = (_integer(command, option, 4, 120), command)
            elif key in ("ldnsentrytimeout", "rtttolerance", "ldnsmask", "v6ldnsmasklen", "ldnsprobeorder"):
                self.unsupportedOption(
                    command, option,
                    "RTT measurements here: per client /24 (IPv6 /48), the 4,096 most recent networks, re-measured every 60 s",
                )
            elif key == "dropldnsreq":
                _choice(command, option, ("ENABLED", "DISABLED"))
                self.acceptDefault(command, option, "DISABLED", "a client network without an RTT is answered with the backup method here")
            elif key == "gslbsvcstatedelaytime":
                if _integer(command, option, 0, 3600) == 0:
                    self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
                else:
                    self.unsupportedOption(command, option, "a site's services go DOWN as soon as its MEP session does (after dead_interval)")
            elif key == "svcstatelearningtime":
                if _integer(command, option, 0, 3600) == 0:
                    self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
                else:
                    self.unsupportedOption(command, option, "no learning phase: services take their state from the first metrics received")
            elif key in ("automaticconfigsync", "gslbsyncinterval", "gslbsyncmode", "gslbsynclocfiles", "gslbconfigsyncmonitor", "gslbsyncsaveconfigcommand"):
                self.ignoredOption(command, option, "configuration sync between NetScalers: no bearing on DNS answers")
            elif key == "undefaction":
                self.unsupportedOption(command, option, "DNS policies are not evaluated")
            else:
                self.unknownOption(command, option)

    # ------------------------------------------------------------------- DNS

    def _zone(self, command: Command) -> None:
        self.gslbCommands += 1
        entity = command.words[2]
        if command.name is None:
            raise _fail(command, "expected a domain name")
        name = _domainName(command.name)
        if name is None:
            self.unsupportedOption(command, None, f"{command.name!r} is not a domain name gslb-twisted can serve: not imported")
            return
        zone = self.zones.get(name)
        if zone is None:
            zone = self.zones[name] = _Zone(name, command)
        if entity == "soarec":
            self.extraArguments(command, 1)
            keys = {"serial": ("soa_serial", 0, 4294967295), "refresh": ("soa_refresh", 0, 2147483647),
                    "retry": ("soa_retry", 0, 2147483647), "expire": ("soa_expire", 0, 2147483647),
                    "minimum": ("soa_minimum", 0, 2147483647), "ttl": ("ttl", 0, 2147483647)}
            for option in command.options:
                if option.key in keys:
                    target, low, high = keys[option.key]
                    zone.soa[target] = _integer(command, option, low, high)
                elif option.key == "contact":
                    contact = _domainName(_single(command, option))
                    if contact is None:
                        self.unsupportedOption(command, option, "not a mailbox name the SOA can carry: the default hostmaster.ZONE is used")
                    else:
                        zone.soa["soa_rname"] = contact
                elif option.key == "originserver":
                    zone.origin = _domainName(_single(command, option))
                    if zone.origin is None:
                        self.unsupportedOption(command, option, "not a host name: the zone's name servers come from its NS records")
                elif option.key in ("ecssubnet", "nodeid", "type"):
                    self.ignoredOption(command, option, "no bearing on the zone's answers here")
                else:
                    self.unknownOption(command, option)
        elif entity == "nsrec":
            if len(command.positionals) < 2:
                raise _fail(command, "expected the domain and its name server")
            server = _domainName(command.positionals[1])
            if server is None:
                self.unsupportedOption(command, None, f"{command.positionals[1]!r} is not a host name: not imported")
            elif server not in zone.ns:
                zone.ns.append(server)
            self.extraArguments(command, 2)
            for option in command.options:
                if option.key == "ttl":
                    _integer(command, option, 0, 2147483647)
                    self.ignoredOption(command, option, "NS records take the zone's TTL here")
                else:
                    self.unknownOption(command, option)
        else:
            self.extraArguments(command, 1)
            proxy = "YES"
            for option in command.options:
                if option.key == "proxymode":
                    proxy = _choice(command, option, ("YES", "NO"))
                elif option.key in ("dnssecoffload", "nsec"):
                    self.unsupportedOption(command, option, "DNSSEC is not emulated")
                else:
                    self.unknownOption(command, option)
            if proxy == "YES":
                self.unsupportedOption(
                    command, None,
                    "proxy mode (the default) is not emulated: names the zone does not hold get NXDOMAIN instead of going to a back-end server",
                )

    def _adnsService(self, command: Command) -> None:
        self.gslbCommands += 1
        name, target, kind, portText = command.positionals[:4] if len(command.positionals) >= 4 else (None,) * 4
        if portText is None:
            raise _fail(command, "expected the ADNS service's IP address, type and port")
        kind = kind.upper()
        transport = {"ADNS": "udp", "ADNS_TCP": "tcp"}.get(kind)
        if transport is None:
            self.unsupportedOption(command, None, f"{kind} (encrypted DNS) is not served: only UDP and TCP")
            return
        try:
            address = str(ipaddress.ip_address(target))
        except ValueError:
            server = self.servers.get(target)
            if server is None:
                raise _fail(command, f"{target!r} is neither an IP address nor a server defined with `add server`") from None
            address = _address(command, "server address", server[0])
        port = _port(command, portText)
        if port is None:
            raise _fail(command, "an ADNS service needs a port (53)")
        self.adns.append((transport, address, port, command))
        for option in command.options:
            self.ignoredOption(command, option, "an ADNS service's settings have no bearing on DNS answers here")

    def _rpcNode(self, command: Command) -> None:
        address = self._looseAddress(command.name or "")
        siteAddresses = {s.ip for s in self.sites.values()} | {s.publicIP for s in self.sites.values() if s.publicIP}
        if address not in siteAddresses:
            self._countNonGSLB(command)
            return
        self.gslbCommands += 1
        for option in command.options:
            key = option.key
            if key == "password":
                self.unsupportedOption(
                    command, Option(option.name, ("...",)),
                    "the MEP password is stored encrypted: set the shared secret as [appliance] mep_secret "
                    "(every site must use the same)",
                )
            elif key == "secure":
                if _choice(command, option, ("YES", "NO")) == "YES":
                    self.unsupportedOption(
                        command, option, "MEP over TLS needs certificates: set mep_tls, mep_tls_cert and mep_tls_key in [appliance]",
                    )
                else:
                    self.ignoredOption(command, option, "the NetScaler default, which is how gslb-twisted works")
            elif key in ("encrypted", "encryptmethod", "srcip", "validatecert", "kek", "suffix"):
                self.ignoredOption(command, option, "how the NetScaler stores or sources MEP: no bearing here")
            else:
                self.unknownOption(command, option)

    def _otherGSLB(self, command: Command) -> None:
        self.gslbCommands += 1
        verb, entity = command.words[0], command.words[2] if len(command.words) > 2 else ""
        if verb not in ("add", "set", "bind", "enable", "disable"):
            reason = f"`{verb}` commands are not read (a saved ns.conf holds add, set, bind, enable and disable)"
        elif entity == "servicegroup":
            reason = "GSLB service groups are not imported: bind their members as GSLB services"
        elif entity in ("policy", "action", "policylabel"):
            reason = "DNS policies (the API method) are not evaluated"
        elif entity in ("syncconfig", "config"):
            reason = "configuration sync between NetScalers is not emulated"
        elif entity == "location":
            reason = "the location database is not imported: give a CSV of `cidr,lat,lon` lines with --location-db"
        else:
            reason = "not emulated"
        self.unsupportedOption(command, None, reason)

    # ================================================================== build

    def _build(self, dnsRecords: list[Command]) -> Document:
        local = self.local
        assert local is not None
        if not self.vservers:
            raise NSConfigError(None, "no GSLB vserver in the configuration (add gslb vserver): nothing to answer")
        specs = self._monitorSpecs()
        vservers = self._resolveVServers()
        zones = self._resolveZones(vservers)
        for command in dnsRecords:
            name = _domainName(command.name or "")
            if name is not None and any(_inZone(name, z.name) for z in zones):
                self.gslbCommands += 1
                self.unsupportedOption(
                    command, None,
                    "static DNS records are not served: only the zone's SOA and NS, and the GSLB domains",
                )
            else:
                self._countNonGSLB(command)
        self._planAddresses()

        document = Document()
        document.tables.append(self._applianceTable())
        for zone in zones:
            document.tables.append(self._zoneTable(zone))
        for site in self.sites.values():
            document.tables.append(self._siteTable(site))
        serviceTables = []
        for service in self.services.values():
            if service.skip is not None:
                self.unsupportedOption(service.command, None, f"not imported: {service.skip}")
                continue
            serviceTables.append(self._serviceTable(service, specs))
        document.tables.extend(serviceTables)
        for vserver in vservers:
            document.tables.append(self._vserverTable(vserver))
        self.counts = {
            "sites": len(self.sites),
            "services": len(serviceTables),
            "vservers": len(vservers),
            "zones": len(zones),
            "gslb commands": self.gslbCommands,
        }
        document.header = self._header()
        return document

    # monitors ---------------------------------------------------------------

    def _monitorSpecs(self) -> dict[str, Optional[dict]]:
        """Each monitor bound to an imported service, evaluated once."""
        specs: dict[str, Optional[dict]] = {}
        for service in self.services.values():
            if service.skip is not None:
                continue
            for name, _ in service.monitors:
                if name not in specs:
                    specs[name] = self._evaluateMonitor(self.monitors[name])
        for name, monitor in self.monitors.items():
            if name not in specs:
                for command in monitor.commands:
                    self._countNonGSLB(command)
        return specs

    # vservers ---------------------------------------------------------------

    def _resolveVServers(self) -> list[dict]:
        """
        Each vserver that can be imported, as a dict of its topology keys,
        in file order; the others are listed and references to them dropped.
        """
        resolved: dict[str, dict] = {}
        domainOwner: dict[str, tuple[str, Command]] = {}
        for vserver in self.vservers.values():
            services = []
            for serviceName, weight, command in vserver.bindings:
                service = self.services[serviceName]
                if service.skip is not None:
                    self.unsupportedOption(command, None, f"service {serviceName!r} is not imported ({service.skip}): the binding is left out")
                    continue
                services.append((serviceName, weight))
            domains: list[str] = []
            ttls: list[tuple[int, Command]] = []
            for domain, ttl, command in vserver.domains:
                name = _domainName(domain)
                if name is None:
                    self.unsupportedOption(command, None, f"{domain!r} is not a domain name gslb-twisted can serve (wildcards are not): left out")
                    continue
                if name in domainOwner:
                    owner, ownerCommand = domainOwner[name]
                    raise _fail(command, f"domain {name!r} is already bound to vserver {owner!r} at line {ownerCommand.line}")
                domainOwner[name] = (vserver.name, command)
                domains.append(name)
                ttls.append((ttl if ttl is not None else DOMAIN_TTL, command))
            if not services:
                self.unsupportedOption(vserver.command, None, "no service of this vserver can be imported: the vserver is left out")
                continue
            ttl = ttls[0][0] if ttls else DOMAIN_TTL
            for other, command in ttls[1:]:
                if other != ttl:
                    self.unsupportedOption(
                        command, Option("-TTL", (str(other),)),
                        f"one TTL per vserver here: its domains are answered with {ttl} s (its first domain's)",
                    )
            resolved[vserver.name] = {"source": vserver, "services": services, "domains": domains, "ttl": ttl}
        self._backupChains(resolved)
        return list(resolved.values())

    def _backupChains(self, resolved: dict[str, dict]) -> None:
        for entry in resolved.values():
            setting = entry["source"].settings.get("backup_vserver")
            if setting is None:
                continue
            if setting.value not in self.vservers:
                raise _fail(setting.command, f"{setting.option.name}: no GSLB vserver {setting.value!r} is defined")
            if setting.value not in resolved:
                self.unsupportedOption(setting.command, setting.option, "the backup vserver is not imported: left out")
                continue
            entry["backup"] = setting.value
        for name, entry in resolved.items():
            seen = [name]
            current = entry.get("backup")
            while current is not None:
                if current in seen:
                    setting = entry["source"].settings["backup_vserver"]
                    raise _fail(setting.command, "backup vservers in a loop: " + " -> ".join(seen + [current]))
                seen.append(current)
                current = resolved[current].get("backup")
        # A vserver with no domain answers only as a backup on the NetScaler;
        # here every vserver has a name of its own: one under its primary's.
        changed = True
        while changed:
            changed = False
            for name, entry in resolved.items():
                if entry["domains"]:
                    continue
                primaries = [p for p in resolved.values() if p.get("backup") == name and p["domains"]]
                if primaries:
                    label = re.sub(r"[^a-z0-9_-]", "-", name.lower()).strip("-")[:60] or "backup"
                    domain = f"_{label}.{primaries[0]['domains'][0]}"
                    entry["domains"] = [domain]
                    entry["synthetic"] = domain
                    self.unsupportedOption(
                        entry["source"].command, None,
                        f"no domain: on the NetScaler it answers only as the backup of vserver {primaries[0]['source'].name}; "
                        f"here every vserver needs a name, so it also answers {domain}",
                    )
                    changed = True
        for name in [n for n, e in resolved.items() if not e["domains"]]:
            self.unsupportedOption(resolved[name]["source"].command, None, "no domain is bound to this vserver (bind gslb vserver -domainName): left out")
            del resolved[name]
        for entry in resolved.values():
            if entry.get("backup") is not None and entry["backup"] not in resolved:
                setting = entry["source"].settings["backup_vserver"]
                self.unsupportedOption(setting.command, setting.option, "the backup vserver is not imported: left out")
                del entry["backup"]

    # zones ------------------------------------------------------------------

    def _resolveZones(self, vservers: list[dict]) -> list[_Zone]:
        kept: list[_Zone] = []
        for zone in sorted(self.zones.values(), key=lambda z: (z.name.count("."), z.command.line)):
            outer = next((k for k in kept if _inZone(zone.name, k.name)), None)
            if outer is not None:
                self.unsupportedOption(zone.command, None, f"zones do not nest here: {zone.name} is served as part of {outer.name}")
                continue
            kept.append(zone)
        domains = [
            (domain, entry["source"].command)
            for entry in vservers for domain in entry["domains"] if entry.get("synthetic") != domain
        ]
        for domain, command in sorted(domains, key=lambda d: d[0].count(".")):
            if any(_inZone(domain, z.name) for z in kept):
                continue
            inner = [z for z in kept if _inZone(z.name, domain)]
            for zone in inner:
                self.unsupportedOption(zone.command, None, f"zones do not nest here: {zone.name} is served as part of {domain}")
                kept.remove(zone)
            zone = _Zone(domain, command)
            zone.soa["derived"] = True
            kept.append(zone)
        return sorted(kept, key=lambda z: z.command.line)

    # addresses --------------------------------------------------------------

    def _planAddresses(self) -> None:
        if not self.options.rebase:
            return
        addresses = {self.local.ip}
        for site in self.sites.values():
            addresses.add(site.publicIP if site is not self.local and site.publicIP else site.ip)
        for service in self.services.values():
            if service.skip is None:
                addresses.add(service.publicIP or service.ip)
        for _, address, _, _ in self.adns:
            addresses.add(address)
        for monitor in self.monitors.values():
            for command in monitor.commands:
                for option in command.options:
                    if option.key == "destip" and option.values:
                        addresses.add(self._looseAddress(option.values[0]))
        try:
            self.plan = planRebase((a for a in addresses if self._isAddress(a)), self.options.rebase)
        except ValueError as e:
            raise NSConfigError(None, str(e)) from None

    @staticmethod
    def _isAddress(text: str) -> bool:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True

    def addr(self, address: str) -> str:
        return self.plan.get(address, address)

    def _rebasedNote(self, address: str) -> Optional[str]:
        return f"NetScaler: {address}" if self.plan.get(address, address) != address else None

    # tables -----------------------------------------------------------------

    def _applianceTable(self) -> Table:
        local = self.local
        table = Table("appliance")
        name = self.hostName[0] if self.hostName else f"{local.name}-appliance"
        if name == local.name:
            name += "-appliance"  # the local site shares the address: names must differ
        table.add("name", name, f"set ns hostName (line {self.hostName[1].line})" if self.hostName else None)
        table.add("ip", self.addr(local.ip), f"local site {local.name}" + (f", NetScaler: {local.ip}" if self.addr(local.ip) != local.ip else ""))
        if self.adns:
            endpoints = []
            for transport, address, port, _ in self.adns:
                if self.options.dnsPort is not None:
                    port = self.options.dnsPort
                elif self.options.rebase:
                    port = EMULATION_DNS_PORT
                host = self.addr(address).replace(":", "\\:")
                endpoint = f"{transport}:{port}:interface={host}"
                if endpoint not in endpoints:
                    endpoints.append(endpoint)
            table.add("dns", endpoints, "the ADNS services (lines " + ", ".join(str(a[3].line) for a in self.adns) + ")")
        table.add("mep_port", MEP_PORT, "NetScaler's MEP port")
        table.comments.append("mep_secret: the NetScaler keeps its MEP (rpcNode) password encrypted; set a shared secret here")
        table.add("metrics_interval", METRICS_INTERVAL, "MEP exchanges metrics every second")
        if self.keepalive is not None:
            table.add("dead_interval", float(self.keepalive[0]), f"set gslb parameter -MEPKeepAliveTimeout (line {self.keepalive[1].line})")
        else:
            table.add("dead_interval", float(MEP_KEEPALIVE_TIMEOUT), "NetScaler's default -MEPKeepAliveTimeout")
        if self.options.locationDB is not None:
            table.add("location_db", self.options.locationDB, "--location-db")
        return table

    def _zoneTable(self, zone: _Zone) -> Table:
        table = Table("zone", array=True)
        if zone.soa.get("derived"):
            table.comments.append("no SOA record (add dns soaRec) for this GSLB domain in the configuration: it is a zone of its own")
        else:
            table.comments.append(f"add dns {zone.command.words[2]} (line {zone.command.line})")
        table.add("name", zone.name)
        ns = zone.ns or ([zone.origin] if zone.origin else [])
        if ns:
            table.add("ns", ns)
        for key in ("soa_minimum", "soa_rname", "soa_serial", "soa_refresh", "soa_retry", "soa_expire", "ttl"):
            if key in zone.soa:
                table.add(key, zone.soa[key])
        return table

    def _siteTable(self, site: _Site) -> Table:
        table = Table("site", array=True)
        isLocal = site is self.local
        if isLocal:
            table.comments.append(
                f"line {site.command.line}: the local site (this appliance). Its services are answered as a static site's: "
                "UP unless their monitor says otherwise, and metric methods use the backup method for them",
            )
            address = site.ip
        else:
            table.comments.append(f"line {site.command.line}: a remote site" + (" (-metricExchange DISABLED)" if not site.metricExchange else ""))
            address = site.publicIP or site.ip
            if site.publicIP and site.publicIP != site.ip:
                table.comments.append(f"MEP goes to its public address {site.publicIP} (site address {site.ip})")
        table.comments.extend(site.comments)
        table.add("name", site.name)
        table.add("ip", self.addr(address), self._rebasedNote(address))
        exchanges = site.metricExchange and not isLocal
        if exchanges:
            table.add("mep_port", MEP_PORT)
        else:
            table.add("metric_exchange", False)
        if self.options.rebase and exchanges:
            emulator = Table("site.emulator")
            emulator.comments.append("emulated for the lab (--rebase): `twistd -n gslb --config FILE --start-sites` runs it")
            emulator.add("control", f"unix:{_safeFileName(site.name)}.ctl")
            table.children.append(emulator)
        return table

    def _serviceTable(self, service: _Service, specs: dict[str, Optional[dict]]) -> Table:
        table = Table("service", array=True)
        address = service.publicIP or service.ip
        port = service.publicPort or service.port
        where = f"line {service.command.line}"
        if service.publicIP and (service.publicIP != service.ip or (service.publicPort and service.publicPort != service.port)):
            where += f"; answered with its public address, the private one is {service.ip}:{service.port}"
        table.comments.append(where)
        table.comments.extend(service.comments)
        kind = service.type or "HTTP"
        if kind not in SERVICE_TYPES:
            fallback = SERVICE_TYPE_FALLBACK.get(kind, "ANY")
            self.unsupportedOption(
                service.command, None,
                f"service type {kind} is not known here: recorded as {fallback} (the type labels the service; answers do not depend on it)",
            )
            kind = fallback
        table.add("name", service.name)
        table.add("site", service.site)
        table.add("ip", self.addr(address), self._rebasedNote(address))
        if port is not None:
            table.add("port", port)
        table.add("type", kind)
        if service.maxClient:
            table.add("max_clients", service.maxClient)
        monitor = self._serviceMonitor(service, specs, address, port, table)
        if monitor is not None:
            table.add("monitor", monitor)
        return table

    def _serviceMonitor(self, service: _Service, specs, address: str, port: Optional[int], table: Table) -> Optional[dict]:
        usable = [(name, command) for name, command in service.monitors if specs.get(name) is not None]
        if not usable:
            return None
        (name, command), others = usable[0], usable[1:]
        for otherName, otherCommand in others:
            self.unsupportedOption(
                otherCommand, None,
                f"one monitor per service here: {service.name!r} keeps {name!r} (line {command.line}), not {otherName!r}",
            )
        spec = specs[name]
        if spec.get("builtinNote"):
            self.unsupportedOption(command, None, spec["builtinNote"])
        if self.options.dropMonitors:
            table.comments.append(f"monitor {name} (line {command.line}) left out (--drop-monitors)")
            return None
        table.comments.append(f"monitor {name} (bound at line {command.line})")
        monitor: dict[str, Any] = {"type": spec["type"]}
        if spec["type"] in ("http", "https"):
            host = self.addr(spec["destIP"]) if spec["destIP"] else self.addr(address)
            if ":" in host:
                host = f"[{host}]"
            probePort = spec["destPort"] or port or (443 if spec["type"] == "https" else 80)
            monitor["url"] = f"{spec['type']}://{host}:{probePort}{spec['path']}"
        monitor["interval"] = float(spec["interval"])
        monitor["timeout"] = float(spec["timeout"])
        trigger = self.sites[service.site].trigger
        if trigger != "ALWAYS":
            monitor["trigger"] = trigger
        if spec["status"] is not None:
            monitor["expect_status"] = list(spec["status"])
        if spec["content"] is not None:
            monitor["expect_content"] = spec["content"]
        return monitor

    def _vserverTable(self, entry: dict) -> Table:
        vserver: _VServer = entry["source"]
        table = Table("vserver", array=True)
        table.comments.append(f"line {vserver.command.line}")
        table.comments.extend(vserver.comments)
        table.add("name", vserver.name)
        table.add("domains", entry["domains"])
        backup = self._method(vserver, "backuplbmethod")
        if "lbmethod" not in vserver.settings:
            primary = "LEASTCONNECTION"  # NetScaler's default (and ours), written out
        else:
            primary = self._method(vserver, "lbmethod") or backup or "ROUNDROBIN"
        table.add("lb_method", primary)
        if backup is not None:
            table.add("backup_lb_method", backup)
        if vserver.get("edr"):
            table.add("down_response", "empty", "-EDR ENABLED")
        table.add("ttl", entry["ttl"])
        if vserver.get("mir"):
            table.add("answers", min(64, len(entry["services"])), "-MIR ENABLED: every bound service")
        table.add("services", [name if weight is None else {"name": name, "weight": weight} for name, weight in entry["services"]])
        if "CUSTOMLOAD" in (primary, backup):
            table.add("custom_load", [{"metric": "load", "weight": 1}])
            setting = vserver.settings.get("lbmethod") if primary == "CUSTOMLOAD" else vserver.settings.get("backuplbmethod")
            self.unsupportedOption(
                setting.command, setting.option,
                "NetScaler computes CUSTOMLOAD from SNMP load monitors (not imported); here it ranks services by the "
                "load percentage their sites report (custom_load = [{ metric = \"load\" }])",
            )
        if vserver.get("persistence") == "SOURCEIP":
            table.add("persistence", "SOURCEIP")
            table.add("persistence_timeout", 60 * vserver.get("timeout", PERSISTENCE_TIMEOUT_MINUTES), "-timeout, in minutes on the NetScaler")
        if entry.get("backup") is not None:
            table.add("backup_vserver", entry["backup"])
        spillover = self._spillover(vserver)
        if spillover is not None:
            table.add("spillover", spillover)
        for key in ("netmask", "v6_netmask_len", "persist_mask", "v6_persist_mask_len", "tolerance"):
            if key in vserver.settings:
                table.add(key, vserver.settings[key].value)
        return table

    def _method(self, vserver: _VServer, key: str) -> Optional[str]:
        setting = vserver.settings.get(key)
        if setting is None:
            return None
        if setting.value in NETSCALER_METHODS:
            return setting.value
        if key == "lbmethod":
            backup = vserver.settings.get("backuplbmethod")
            if backup is not None and backup.value in NETSCALER_METHODS:
                fallback = f"answered with the backup method {backup.value}, which the NetScaler uses when the primary cannot decide"
            else:
                fallback = "answered with ROUNDROBIN, NetScaler's last resort when no method can decide"
        else:
            fallback = "the backup method is ROUNDROBIN, NetScaler's last resort"
        what = "the API method's policies are not evaluated" if setting.value == "API" else f"{setting.value} is not a GSLB method gslb-twisted knows"
        self.unsupportedOption(setting.command, setting.option, f"{what}: {fallback}")
        return None

    def _spillover(self, vserver: _VServer) -> Optional[dict]:
        method = vserver.settings.get("soMethod")
        threshold = vserver.settings.get("soThreshold")
        action = vserver.settings.get("soBackupAction")
        if method is None or method.value == "NONE":
            for setting in (threshold, action):
                if setting is not None:
                    self.ignoredOption(setting.command, setting.option, "no effect without -soMethod")
            return None
        spill: dict[str, Any] = {"method": method.value}
        if threshold is not None:
            spill["threshold"] = threshold.value
        elif method.value != "DYNAMICCONNECTION":
            self.unsupportedOption(method.command, method.option, "no -soThreshold: spillover is not imported")
            return None
        if action is not None:
            if action.value == "REDIRECT":
                self.unsupportedOption(action.command, action.option, "no redirect URL here: spilled over with no usable backup vserver, answers keep coming from this vserver (ACCEPT)")
            else:
                spill["backup_action"] = action.value
        return spill

    # header -----------------------------------------------------------------

    def _header(self) -> list[str]:
        source = self.options.source
        counts = self.counts
        lines = [
            f"gslb-twisted topology imported from {source} by gslb-import.",
            "Run it:  twistd -n gslb --config THIS_FILE" + ("   (add --start-sites to run the emulated sites)" if self.options.rebase else ""),
            "",
            f"{source}: {counts['gslb commands']} GSLB commands read: {counts['sites']} sites, {counts['services']} services, "
            f"{counts['vservers']} vservers, {counts['zones']} zones imported.",
        ]
        nonGSLB = sum(self.nonGSLB.values())
        if nonGSLB:
            lines.append(f"{nonGSLB} non-GSLB commands ignored:")
            lines += _wrap([f"{k} ({v})" for k, v in sorted(self.nonGSLB.items(), key=lambda kv: kv[0].lower())])
        lines.append("Where NetScaler's default differs from gslb-twisted's, the NetScaler value is written out.")
        lines.append(f"{len(self.ignored)} options accepted without effect on DNS answers (gslb-import --verbose lists them).")
        lines.append("")
        if self.unsupported:
            lines.append(f"Not imported as the NetScaler runs it ({len(self.unsupported)}, by line of {source}):")
            for note in sorted(self.unsupported, key=lambda n: n.line):
                lines.append(f"  line {note.line}: {note.describe()}")
        else:
            lines.append("Every GSLB line was imported as the NetScaler runs it.")
        if self.options.dropMonitors:
            lines += ["", "Monitors are left out (--drop-monitors): services take their state from MEP, or are UP on static sites."]
        if self.plan:
            networks = ", ".join(str(n) for n in self.options.rebase)
            lines += ["", f"Addresses rebased for emulation on one machine (--rebase {networks}), host bits kept:"]
            for old, new in sorted(self.plan.items(), key=lambda kv: (ipaddress.ip_address(kv[0]).version, int(ipaddress.ip_address(kv[0])))):
                lines.append(f"  {old} -> {new}")
            if self.adns and self.options.dnsPort is None:
                lines.append(f"DNS listens on port {EMULATION_DNS_PORT} instead of the ADNS port (no root needed; --dns-port changes it).")
        return lines
