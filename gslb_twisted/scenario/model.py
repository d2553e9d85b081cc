"""
A scenario file (TOML) read into a frozen, validated L{Scenario}.

A scenario is a topology (a path to a topology file, or an inline
C{[topology]} table with the same tables), a client population (C{[load]}
and C{[[population]]}), a timeline of C{[[event]]}s and the
C{[[expect]]}ations to check (docs/SCENARIOS.md is the reference).

Every error names the file, the table (C{[[event]] #3 'outage'}) and the
key, says what was expected and what was found, like the topology loader
(L{gslb_twisted.config.ConfigError}); unknown keys are errors.  Names are
checked against the topology: a site, service, vserver, population or
event id that does not exist is refused before anything starts.

Times are scenario seconds from t=0 (the moment the load starts), before
any C{--speed}.  Nothing here touches a reactor; L{loadScenario} reads the
files (the scenario and its topology), L{parseScenario} only checks.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Union

from gslb_twisted.config import LB_METHODS, SERVICE_METRICS, ConfigError, Topology, parseTopology
from gslb_twisted.mep.rules import initiates

# --- limits and defaults --------------------------------------------------------------

DEFAULT_RATE = 200.0  # queries per second in all, when [load] says nothing
DEFAULT_TIMEOUT = 1.0  # seconds without a reply: the query is unanswered
DEFAULT_SOURCES = 4  # source addresses (sockets) per population
MAX_SOURCES = 64
MAX_RATE = 20000.0
# Populations with no `source` get 127.77.N.0/24 (N = 1, 2, ...): a /16 no
# site of a loopback topology uses, and one the shipped location database
# places at its 127.0.0.0/8 default.
AUTO_SOURCE_NETWORK = "127.77.0.0/16"
MAX_BUCKETS = 2000
TARGET_BUCKETS = 200
NICE_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)

QUERY_TYPES = ("A", "AAAA")
RCODE_CLASSES = ("NOERROR", "EMPTY", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "OTHER")
SITE_DOWN_HOW = ("kill", "stop", "services")

# --- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSpec:
    """
    A time as written (C{"outage+2"}) and what it means in scenario
    seconds; C{event} and C{offset} when it names an event (its nominal
    time + offset = C{at}).
    """

    text: str
    at: float
    event: Optional[str] = None
    offset: float = 0.0

    def actual(self, applied: Mapping[str, float]) -> float:
        """The time with the named event's time as it was applied (C{applied}: event id -> time), if known."""
        if self.event is not None and self.event in applied:
            return applied[self.event] + self.offset
        return self.at


@dataclass(frozen=True)
class Population:
    """
    Clients: C{sources} source addresses taken from C{network} (one UDP
    socket each), asking C{queries} in turn at C{rate} queries per second,
    with an EDNS Client Subnet option when C{ecs} is set.
    """

    name: str
    rate: float
    network: str
    sources: tuple[str, ...]
    ecs: Optional[str]
    queries: tuple[tuple[str, str], ...]  # (name, "A" | "AAAA")


@dataclass(frozen=True)
class Event:
    """
    One event of the timeline: C{action} at C{at} seconds, with the keys
    that action takes (the others stay None).  C{label} is how reports name
    it (C{"t=10 site-down east"}).
    """

    index: int
    at: float
    action: str
    id: Optional[str] = None
    site: Optional[str] = None
    service: Optional[str] = None
    vserver: Optional[str] = None
    core: Optional[Union[int, str]] = None  # a core id, "control" or "master:SITE"
    how: Optional[str] = None  # site-down: kill | stop | services
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # set-metric
    metrics: tuple[str, ...] = ()  # release-metric
    metric: Optional[str] = None  # ramp
    start: Optional[float] = None  # ramp: from
    end: Optional[float] = None  # ramp: to
    over: Optional[float] = None  # ramp: seconds
    step: Optional[float] = None  # ramp: seconds between two values
    delay_ms: Optional[float] = None  # link-delay
    method: Optional[str] = None  # set-lb-method
    population: Optional[str] = None  # set-rate (None: every population)
    rate: Optional[float] = None  # set-rate: queries per second
    factor: Optional[float] = None  # set-rate: times the population's configured rate
    scenario: Optional[str] = None  # site-scenario
    note: Optional[str] = None

    @property
    def target(self) -> Optional[str]:
        return self.site or self.service or self.vserver or (None if self.core is None else f"core {self.core}") or self.population

    @property
    def label(self) -> str:
        words = [f"t={self.at:g}", self.action]
        if self.core is not None:
            words.append(str(self.core))
        elif self.target:
            words.append(str(self.target))
        if self.action == "set-metric":
            words.append(" ".join(f"{k}={v}" for k, v in self.values.items()))
        elif self.action == "ramp":
            words.append(f"{self.metric} {self.start:g}->{self.end:g} over {self.over:g} s")
        elif self.action == "link-delay":
            words.append(f"{self.delay_ms:g} ms")
        elif self.action == "set-lb-method":
            words.append(self.method)
        elif self.action == "set-rate":
            words.append(f"{self.rate:g} q/s" if self.rate is not None else f"x{self.factor:g}")
        elif self.action == "site-scenario":
            words.append(self.scenario)
        return " ".join(words)

    @property
    def span(self) -> float:
        """How long the event lasts (a ramp's C{over}; 0 for the others)."""
        return self.over or 0.0


@dataclass(frozen=True)
class Expectation:
    """
    One expectation (docs/SCENARIOS.md, "Expectations"): C{kind} with its
    keys; C{start}/C{end} bound the window it looks at.
    """

    index: int
    kind: str
    start: TimeSpec
    end: TimeSpec
    site: Optional[str] = None
    service: Optional[str] = None
    address: Optional[str] = None
    population: Optional[str] = None
    grace: float = 0.0
    min: Optional[float] = None  # percent
    max: Optional[float] = None  # percent
    percentile: Optional[float] = None
    below_ms: Optional[float] = None
    max_gap: Optional[float] = None  # seconds
    max_percent: Optional[float] = None
    rcode: Optional[str] = None
    after: Optional[TimeSpec] = None
    within: Optional[float] = None
    note: Optional[str] = None

    @property
    def target(self) -> Optional[str]:
        if self.site:
            return f"site {self.site}"
        if self.service:
            return f"service {self.service}"
        if self.address:
            return f"address {self.address}"
        return None


@dataclass(frozen=True)
class Scenario:
    """
    A validated scenario.  C{topologyDocument} is the topology's TOML as a
    dict (to be rewritten for a run), C{topology} its validated model;
    C{topologyPath} the file it came from (None: inline).
    """

    path: str
    name: str
    description: str
    duration: float
    bucket: float
    ciSpeed: float
    maxSpeed: Optional[float]
    startupTimeout: float
    topologyPath: Optional[str]
    topologyDocument: Mapping[str, Any]
    topology: Topology
    rate: float
    timeout: float
    populations: tuple[Population, ...]
    events: tuple[Event, ...]
    expectations: tuple[Expectation, ...]

    @property
    def emulated(self) -> tuple[str, ...]:
        """The sites run as C{twistd -n gslb-site} (every MEP site that exchanges metrics)."""
        return emulatedSites(self.topology)

    @property
    def linkSites(self) -> tuple[str, ...]:
        """The sites whose MEP link the timeline touches: each gets a proxy."""
        seen: list[str] = []
        for event in self.events:
            if event.action in LINK_ACTIONS and event.site not in seen:
                seen.append(event.site)
        return tuple(seen)

    def eventById(self, eventId: str) -> Optional[Event]:
        for event in self.events:
            if event.id == eventId:
                return event
        return None

    def addressesOf(self) -> dict[str, str]:
        """Every service address -> its site (the first service's, when shared)."""
        out: dict[str, str] = {}
        for service in self.topology.services:
            out.setdefault(service.ip, service.site)
        return out


def emulatedSites(topology: Topology) -> tuple[str, ...]:
    return tuple(site.name for site in topology.sites if site.protocol == "mep" and site.metric_exchange)


class ScenarioError(ConfigError):
    """The scenario file is wrong: C{str()} is the whole message (file, table, key, expected, found)."""


_MISSING = object()
_MISSING_TIME = object()  # (a time key without a default)
_MISSING_SCENARIO: dict = {}  # (no [scenario] table: its keys are reported missing)


# --- reading tables against a whitelist of keys -------------------------------------------


class _Reader:
    """One TOML table being read; L{finish} refuses the keys nobody asked for."""

    def __init__(self, path: str, label: str, raw: Any) -> None:
        self.path = path
        self.label = label
        if not isinstance(raw, dict):
            raise ScenarioError(path, label, None, "expected a table", raw)
        self.raw = raw
        self.taken: set[str] = set()

    def error(self, key: Optional[str], expected: str, found: Any = _MISSING) -> ScenarioError:
        if found is _MISSING:
            return ScenarioError(self.path, self.label, key, expected, hasFound=False)
        return ScenarioError(self.path, self.label, key, expected, found)

    def has(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, check: Callable[[Any], Any], expected: str, default: Any = _MISSING) -> Any:
        self.taken.add(key)
        if key not in self.raw:
            if default is _MISSING:
                raise ScenarioError(self.path, self.label, key, f"expected {expected}", hasFound=False)
            return default
        value = self.raw[key]
        try:
            return check(value)
        except (ValueError, TypeError):
            raise self.error(key, f"expected {expected}", value) from None

    def take(self, *keys: str) -> None:
        """Keys read by someone else (not unknown)."""
        self.taken.update(keys)

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.taken)
        if unknown:
            key = unknown[0]
            known = ", ".join(sorted(self.taken))
            raise self.error(key, f"unknown key (known keys: {known})", self.raw[key])


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(value)
    return value


def _number(low: float = -math.inf, high: float = math.inf, exclusive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(value)
        value = float(value)
        if not math.isfinite(value) or value < low or value > high or (exclusive and value == low):
            raise ValueError(value)
        return value

    return check


def _int(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(value)
        return value

    return check


def _choice(choices: tuple[str, ...], fold: Callable[[str], str] = str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or fold(value) not in choices:
            raise ValueError(value)
        return fold(value)

    return check


def _network(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return str(ipaddress.ip_network(value.strip(), strict=True))


_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value) or value in ("start", "end"):
        raise ValueError(value)
    return value


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    name = value.lower().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(value)
    return name


def _query(value: Any) -> tuple[str, str]:
    """C{"www.x.gslb"} (type A) or C{["www.x.gslb", "AAAA"]}."""
    if isinstance(value, str):
        return _domain(value), "A"
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str) and value[1].upper() in QUERY_TYPES:
        return _domain(value[0]), value[1].upper()
    raise ValueError(value)


def _queries(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise TypeError(value)
    return tuple(_query(item) for item in value)


QUERIES_EXPECTED = 'a non-empty array of names ("www.x.gslb") or [name, "A" | "AAAA"] pairs'


def _label(kind: str, raw: Any, index: int) -> str:
    if isinstance(raw, dict):
        for key in ("id", "name"):
            if isinstance(raw.get(key), str):
                return f"[[{kind}]] #{index + 1} {raw[key]!r}"
    return f"[[{kind}]] #{index + 1}"


# --- time specs -----------------------------------------------------------------------


def parseTime(text: Any, anchors: Mapping[str, float]) -> TimeSpec:
    """
    A time: a number of seconds, or C{"start"}, C{"end"} or an event id,
    optionally followed by C{+ N} or C{- N} seconds (C{"outage+2"},
    C{"end - 5"}).  C{anchors}: name -> seconds (start, end, event ids).

    @raise ValueError: none of these (the message says why).
    """
    if isinstance(text, bool):
        raise ValueError("a number of seconds or a name")
    if isinstance(text, (int, float)):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("a finite number")
        return TimeSpec(f"{value:g}", value)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a number of seconds or a name")
    written = text.strip()
    if written in anchors:
        return TimeSpec(written, anchors[written], None if written in ("start", "end") else written)
    match = re.match(r"^(?P<base>.+?)\s*(?P<sign>[+-])\s*(?P<offset>\d+(?:\.\d+)?)$", written)
    if match and match.group("base").strip() in anchors:
        name = match.group("base").strip()
        offset = float(match.group("offset")) * (1 if match.group("sign") == "+" else -1)
        return TimeSpec(written, anchors[name] + offset, None if name in ("start", "end") else name, offset)
    names = ", ".join(sorted(anchors))
    raise ValueError(f"a number, or one of {names}, optionally + or - seconds")


# --- events -----------------------------------------------------------------------------

LINK_ACTIONS = ("link-cut", "link-delay", "link-blackhole", "link-restore")
SITE_PROCESS_ACTIONS = ("site-down", "site-up", "site-freeze", "site-thaw", "site-scenario")
SITE_SERVICE_ACTIONS = ("set-metric", "release-metric", "ramp", "service-down", "service-up")

# action -> (what it does, for docs and errors)
ACTIONS: Mapping[str, str] = MappingProxyType({
    "site-down": "take a site out: how = \"kill\" (SIGKILL its emulator: connections reset, the default), "
                 "\"stop\" (SIGTERM: MEP closed cleanly) or \"services\" (every service of the site reports DOWN)",
    "site-up": "bring it back (restart the emulator, or release the services' state)",
    "site-freeze": "SIGSTOP the site emulator: silent, sockets open (detected after dead_interval)",
    "site-thaw": "SIGCONT it",
    "set-metric": "pin metric values of a service at its site (state, connections, response_time, bandwidth, packets, load)",
    "release-metric": "release pinned metrics of a service (metrics = [...], default all)",
    "ramp": "move one metric of a service from `from` to `to` over `over` seconds, a value every `step`",
    "service-down": "the site reports the service DOWN",
    "service-up": "release that (the service's state is the site's own again)",
    "disable-service": "disable gslb service NAME on the appliance",
    "enable-service": "enable gslb service NAME on the appliance",
    "kill-core": "SIGKILL a core process: core = N, \"control\" (the consolidating core) or \"master:SITE\"",
    "link-cut": "cut the site's MEP link (connections reset, reconnections refused)",
    "link-delay": "delay the site's MEP link by ms each way",
    "link-blackhole": "blackhole the site's MEP link (open, nothing gets through)",
    "link-restore": "restore the site's MEP link",
    "set-lb-method": "set gslb vserver NAME -lbMethod METHOD",
    "set-rate": "change a population's query rate (rate = q/s, or factor = times its configured rate; no population: all)",
    "site-scenario": "start one of the site's [site.emulator] scenarios (set scenario NAME)",
})

_METRIC_KEYS = tuple(SERVICE_METRICS)
# Metrics a ramp can move (numbers).
RAMP_METRICS = tuple(m for m in SERVICE_METRICS if m != "state")
INTEGER_METRICS = ("connections", "packets")


def _core(value: Any) -> Union[int, str]:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int) and 0 <= value < 256:
        return value
    if isinstance(value, str) and (value == "control" or re.match(r"^master:\S+$", value)):
        return value
    raise ValueError(value)


def _event(path: str, raw: Any, index: int) -> Event:
    r = _Reader(path, _label("event", raw, index), raw)
    at = r.get("at", _number(0), "a number of seconds from t=0 (>= 0)")
    action = r.get("action", _choice(tuple(ACTIONS)), "one of " + ", ".join(ACTIONS))
    eventId = r.get("id", _identifier, 'an identifier (a letter, then letters, digits, "_" or "-"; not start or end)', None)
    note = r.get("note", _str, "a string", None)
    fields: dict[str, Any] = {"index": index, "at": at, "action": action, "id": eventId, "note": note}
    site = lambda: r.get("site", _str, "the name of a [[site]] of the topology")  # noqa: E731
    service = lambda: r.get("service", _str, "the name of a [[service]] of the topology")  # noqa: E731
    if action in ("site-down",):
        fields["site"] = site()
        fields["how"] = r.get("how", _choice(SITE_DOWN_HOW), 'one of "kill", "stop", "services"', "kill")
    elif action in ("site-up", "site-freeze", "site-thaw", "link-cut", "link-blackhole", "link-restore"):
        fields["site"] = site()
    elif action == "link-delay":
        fields["site"] = site()
        fields["delay_ms"] = r.get("ms", _number(0, 60000), "a number of milliseconds from 0 to 60000")
    elif action == "site-scenario":
        fields["site"] = site()
        fields["scenario"] = r.get("scenario", _str, "the name of one of the site's [site.emulator] scenarios")
    elif action == "set-metric":
        fields["service"] = service()
        values = {}
        for metric, (check, expected) in SERVICE_METRICS.items():
            value = r.get(metric, check, expected, None)
            if value is not None:
                values[metric] = value
        if not values:
            raise r.error(None, "expected at least one of " + ", ".join(_METRIC_KEYS))
        fields["values"] = MappingProxyType(values)
    elif action == "release-metric":
        fields["service"] = service()
        fields["metrics"] = r.get(
            "metrics", lambda v: tuple(_choice(_METRIC_KEYS)(m) for m in v) if isinstance(v, list) and v else _fail(v),
            "a non-empty array of metric names (" + ", ".join(_METRIC_KEYS) + ")", _METRIC_KEYS,
        )
    elif action == "ramp":
        fields["service"] = service()
        metric = r.get("metric", _choice(RAMP_METRICS), "one of " + ", ".join(RAMP_METRICS))
        check, expected = SERVICE_METRICS[metric]
        fields["metric"] = metric
        fields["start"] = float(r.get("from", check, expected))
        fields["end"] = float(r.get("to", check, expected))
        fields["over"] = r.get("over", _number(0, exclusive=True), "a number of seconds above 0")
        fields["step"] = r.get("step", _number(0, exclusive=True), "a number of seconds above 0", 1.0)
    elif action in ("service-down", "service-up", "disable-service", "enable-service"):
        fields["service"] = service()
    elif action == "kill-core":
        fields["core"] = r.get("core", _core, 'a core number, "control" or "master:SITE"')
    elif action == "set-lb-method":
        fields["vserver"] = r.get("vserver", _str, "the name of a [[vserver]] of the topology")
        fields["method"] = r.get("method", _choice(LB_METHODS, str.upper), "one of " + ", ".join(LB_METHODS))
    elif action == "set-rate":
        fields["population"] = r.get("population", _str, "the name of a [[population]]", None)
        fields["rate"] = r.get("rate", _number(0, MAX_RATE), f"a number of queries per second from 0 to {MAX_RATE:g}", None)
        fields["factor"] = r.get("factor", _number(0, 100), "a number from 0 to 100", None)
        if (fields["rate"] is None) == (fields["factor"] is None):
            raise r.error("rate", "expected exactly one of rate (queries per second) and factor")
    r.finish()
    return Event(**fields)


def _fail(value: Any):
    raise ValueError(value)


def rampPoints(event: Event) -> list[tuple[float, Any]]:
    """
    The values a ramp pins and when (scenario seconds): one every C{step}
    from C{at} (the C{from} value) to C{at + over} (the C{to} value),
    integers for counts.
    """
    steps = max(1, int(math.ceil(event.over / event.step - 1e-9)))
    points = []
    for i in range(steps + 1):
        fraction = min(1.0, i * event.step / event.over) if i < steps else 1.0
        value = event.start + (event.end - event.start) * fraction
        if event.metric in INTEGER_METRICS:
            value = int(round(value))
        else:
            value = round(value, 3)
        points.append((event.at + fraction * event.over, value))
    return points


# --- expectations --------------------------------------------------------------------------

EXPECT_KINDS: Mapping[str, str] = MappingProxyType({
    "no-answer": "no answer names the target (site, service or address) in the window (after an optional grace)",
    "share": "the target's share of the answers in the window is between min and max percent",
    "unanswered": "no stretch of unanswered queries longer than max_gap seconds, and/or at most max_percent unanswered",
    "latency": "the percentile (default 99) of answer latency in the window is below below_ms",
    "rcode": "at most max_percent (default 0) of the answers in the window have this rcode (EMPTY: NOERROR without an address)",
    "failover": "after the event `after`, answers stop naming the target within `within` seconds",
    "recovery": "after the event `after`, an answer names the target again within `within` seconds",
})

_TARGET_KEYS = ("site", "service", "address")


def _expectation(path: str, raw: Any, index: int, anchors: Mapping[str, float], duration: float) -> Expectation:
    r = _Reader(path, _label("expect", raw, index), raw)
    kind = r.get("kind", _choice(tuple(EXPECT_KINDS)), "one of " + ", ".join(EXPECT_KINDS))

    def time(key: str, default: Any) -> TimeSpec:
        r.taken.add(key)
        written = r.raw.get(key, default)
        if written is _MISSING_TIME:
            raise r.error(key, "expected an event id or a time (seconds), optionally + or - seconds")
        try:
            return parseTime(written, anchors)
        except ValueError as e:
            raise r.error(key, f"expected {e}", written) from None

    fields: dict[str, Any] = {"index": index, "kind": kind}
    fields["note"] = r.get("note", _str, "a string", None)
    fields["population"] = r.get("population", _str, "the name of a [[population]]", None)
    targets = {key: r.get(key, _str, "a name" if key != "address" else "an IP address", None) for key in _TARGET_KEYS}
    if targets["address"] is not None:
        try:
            targets["address"] = str(ipaddress.ip_address(targets["address"].strip()))
        except ValueError:
            raise r.error("address", "expected an IP address", targets["address"]) from None
    given = [key for key, value in targets.items() if value is not None]
    if kind in ("no-answer", "share", "failover", "recovery"):
        if len(given) != 1:
            raise r.error(given[1] if len(given) > 1 else "site", "expected exactly one of site, service, address")
        fields.update(targets)
    elif given:
        raise r.error(given[0], f"expected no target for kind {kind!r}", targets[given[0]])
    if kind in ("failover", "recovery"):
        fields["after"] = time("after", _MISSING_TIME)
        fields["within"] = r.get("within", _number(0, exclusive=True), "a number of seconds above 0")
        fields["start"] = fields["after"]
        fields["end"] = time("until", "end")
    else:
        fields["start"] = time("from", "start")
        fields["end"] = time("to", "end")
    if kind == "no-answer":
        fields["grace"] = r.get("grace", _number(0), "a number of seconds >= 0", 0.0)
    elif kind == "share":
        fields["min"] = r.get("min", _number(0, 100), "a percentage from 0 to 100", 0.0)
        fields["max"] = r.get("max", _number(0, 100), "a percentage from 0 to 100", 100.0)
        if fields["min"] > fields["max"]:
            raise r.error("min", f"expected at most max ({fields['max']:g})", fields["min"])
    elif kind == "unanswered":
        fields["max_gap"] = r.get("max_gap", _number(0), "a number of seconds >= 0", None)
        fields["max_percent"] = r.get("max_percent", _number(0, 100), "a percentage from 0 to 100", None)
        if fields["max_gap"] is None and fields["max_percent"] is None:
            raise r.error("max_gap", "expected max_gap (seconds) and/or max_percent")
    elif kind == "latency":
        fields["percentile"] = r.get("percentile", _number(0, 100, exclusive=True), "a percentile above 0, at most 100", 99.0)
        fields["below_ms"] = r.get("below_ms", _number(0, exclusive=True), "a number of milliseconds above 0")
    elif kind == "rcode":
        fields["rcode"] = r.get("rcode", _choice(RCODE_CLASSES, str.upper), "one of " + ", ".join(RCODE_CLASSES))
        fields["max_percent"] = r.get("max_percent", _number(0, 100), "a percentage from 0 to 100", 0.0)
    r.finish()
    start, end = fields["start"], fields["end"]
    for key, spec in (("from" if kind not in ("failover", "recovery") else "after", start),
                      ("to" if kind not in ("failover", "recovery") else "until", end)):
        if not 0 <= spec.at <= duration:
            raise r.error(key, f"expected a time within the scenario (0 to {duration:g} s)", spec.text)
    if end.at <= start.at + fields.get("grace", 0.0):
        raise r.error("to" if kind not in ("failover", "recovery") else "until",
                      f"expected a time after {start.text}" + (f" + grace {fields['grace']:g}" if fields.get("grace") else ""),
                      end.text)
    return Expectation(**fields)


# --- the whole file ---------------------------------------------------------------------------


def niceBucket(duration: float) -> float:
    """About L{TARGET_BUCKETS} buckets over C{duration}, in a round number of seconds."""
    want = duration / TARGET_BUCKETS
    for width in NICE_WIDTHS:
        if width >= want:
            return width
    return float(math.ceil(want))


def _sources(network: str, count: int) -> tuple[str, ...]:
    net = ipaddress.ip_network(network)
    hosts = []
    for address in net.hosts() if net.num_addresses > 2 else net:
        hosts.append(str(address))
        if len(hosts) == count:
            break
    return tuple(hosts)


def _population(path: str, raw: Any, index: int, load: dict, autoIndex: int) -> tuple[Population, Optional[float]]:
    r = _Reader(path, _label("population", raw, index), raw)
    name = r.get("name", _identifier, "a name (a letter, then letters, digits, \"_\" or \"-\")")
    rate = r.get("rate", _number(0, MAX_RATE), f"a number of queries per second from 0 to {MAX_RATE:g}", None)
    share = r.get("share", _number(0, 100), "a percentage of [load] rate, from 0 to 100", None)
    if (rate is None) == (share is None):
        raise r.error("share", "expected exactly one of share (percent of [load] rate) and rate (queries per second)")
    network = r.get("source", _network, 'a network such as "127.0.3.0/24" (the clients\' source addresses)', None)
    if network is None:
        network = str(list(ipaddress.ip_network(AUTO_SOURCE_NETWORK).subnets(new_prefix=24))[autoIndex + 1])
    count = r.get("sources", _int(1, MAX_SOURCES), f"a number of source addresses from 1 to {MAX_SOURCES}", DEFAULT_SOURCES)
    sources = _sources(network, count)
    if len(sources) < count:
        raise r.error("sources", f"expected at most the {len(sources)} addresses of {network}", count)
    if any(ipaddress.ip_address(s).version != 4 or not ipaddress.ip_address(s).is_loopback for s in sources):
        raise r.error("source", "expected an IPv4 loopback network (127.0.0.0/8): the clients run on this machine", network)
    ecs = r.get("ecs", _network, 'a network such as "127.0.3.0/24" (sent as EDNS Client Subnet)', None)
    queries = r.get("queries", _queries, QUERIES_EXPECTED, load.get("queries"))
    if queries is None:
        raise r.error("queries", "expected " + QUERIES_EXPECTED + " (here or in [load])")
    r.finish()
    population = Population(name=name, rate=rate if rate is not None else 0.0, network=network, sources=sources,
                            ecs=ecs, queries=tuple(queries))
    return population, share


def loadScenario(path: str) -> Scenario:
    """
    Read the scenario at C{path} (and the topology file it names).

    @raise ScenarioError: the file cannot be read, is not TOML, or is invalid
        (a bad topology's error is a L{ConfigError} naming the topology).
    """
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ScenarioError(path, "file", None, f"cannot be read ({e.strerror})", hasFound=False) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, "file", None, f"is not valid TOML ({e})", hasFound=False) from None
    except UnicodeDecodeError as e:
        raise ScenarioError(path, "file", None, f"is not valid TOML (not UTF-8 text: {e})", hasFound=False) from None
    return parseScenario(document, path)


def _readTopology(path: str, topologyPath: str) -> dict:
    try:
        with open(topologyPath, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ScenarioError(path, "[scenario]", "topology", f"expected a readable topology file: {topologyPath}: {e.strerror}",
                            hasFound=False) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(topologyPath, "file", None, f"is not valid TOML ({e})", hasFound=False) from None


def parseScenario(document: dict, path: str) -> Scenario:
    """
    Validate a parsed scenario document (C{path} names it in errors and
    anchors a relative topology path).

    @raise ScenarioError: on the first problem found.
    @raise ConfigError: the topology is invalid (naming its file, or the
        scenario's C{[topology]} for an inline one).
    """
    top = _Reader(path, "top level", document)
    top.take("scenario", "topology", "load", "population", "event", "expect")
    top.finish()
    s = _Reader(path, "[scenario]", document.get("scenario", _MISSING_SCENARIO))
    name = s.get("name", _str, "a non-empty string")
    description = s.get("description", _str, "a string", "")
    duration = s.get("duration", _number(0, 86400, exclusive=True), "a number of seconds above 0 (at most 86400)")
    bucket = s.get("bucket", _number(0.01, 3600), "a number of seconds from 0.01", None)
    if bucket is None:
        bucket = niceBucket(duration)
    if duration / bucket > MAX_BUCKETS:
        raise s.error("bucket", f"expected at most {MAX_BUCKETS} buckets over the duration (at least {duration / MAX_BUCKETS:g} s)", bucket)
    ciSpeed = s.get("ci_speed", _number(0.01, 1000), "a speed from 0.01 to 1000", 1.0)
    maxSpeed = s.get("max_speed", _number(0.01, 1000), "a speed from 0.01 to 1000", None)
    if maxSpeed is not None and ciSpeed > maxSpeed:
        raise s.error("ci_speed", f"expected at most max_speed ({maxSpeed:g})", ciSpeed)
    startup = s.get("startup_timeout", _number(1, 3600), "a number of seconds from 1 to 3600", 60.0)
    topologyRef = s.get("topology", _str, "a topology file path (relative to this file)", None)
    s.finish()

    # The topology: a file, or the [topology] table.
    inline = document.get("topology")
    if (topologyRef is None) == (inline is None):
        raise ScenarioError(path, "[scenario]", "topology",
                            "expected either topology = \"PATH\" or a [topology] table (not both)", hasFound=False)
    if topologyRef is not None:
        topologyPath = topologyRef if os.path.isabs(topologyRef) else os.path.join(os.path.dirname(os.path.abspath(path)), topologyRef)
        topologyPath = os.path.normpath(topologyPath)
        topologyDocument = _readTopology(path, topologyPath)
        topology = parseTopology(topologyDocument, topologyPath)
    else:
        if not isinstance(inline, dict):
            raise ScenarioError(path, "[topology]", None, "expected a table holding [topology.appliance], [[topology.site]], ...", inline)
        topologyPath = None
        topologyDocument = inline
        # Errors name the scenario file's [topology]; relative paths in it
        # (location_db) are anchored at the scenario file's directory.
        topology = parseTopology(inline, os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(path)) + " [topology]")
    _checkRunnable(path, topology)

    # The load.
    loadRaw = document.get("load", {})
    l = _Reader(path, "[load]", loadRaw)
    rate = l.get("rate", _number(0, MAX_RATE), f"a number of queries per second from 0 to {MAX_RATE:g}", DEFAULT_RATE)
    timeout = l.get("timeout", _number(0.05, 30), "a number of seconds from 0.05 to 30", DEFAULT_TIMEOUT)
    queries = l.get("queries", _queries, QUERIES_EXPECTED, None)
    l.finish()
    rawPopulations = document.get("population", [])
    if not isinstance(rawPopulations, list):
        raise ScenarioError(path, "[[population]]", None, "expected an array of tables ([[population]])", rawPopulations)
    if not rawPopulations:
        rawPopulations = [{"name": "clients", "share": 100.0}]
    populations: list[Population] = []
    shares: list[Optional[float]] = []
    auto = 0
    for index, raw in enumerate(rawPopulations):
        population, share = _population(path, raw, index, {"queries": queries}, auto)
        if isinstance(raw, dict) and "source" not in raw:
            auto += 1
        if population.name in {p.name for p in populations}:
            raise ScenarioError(path, _label("population", raw, index), "name", "expected a name used by no other population", population.name)
        populations.append(population)
        shares.append(share)
    if any(share is not None for share in shares):
        total = sum(share for share in shares if share is not None)
        if abs(total - 100.0) > 0.5 and all(share is not None for share in shares):
            raise ScenarioError(path, "[[population]]", "share", "expected shares that add up to 100 (percent of [load] rate)", total)
        populations = [
            p if share is None else _replaceRate(p, rate * share / 100.0) for p, share in zip(populations, shares)
        ]
    _checkSources(path, populations, topology)

    # The timeline.
    rawEvents = document.get("event", [])
    if not isinstance(rawEvents, list):
        raise ScenarioError(path, "[[event]]", None, "expected an array of tables ([[event]])", rawEvents)
    events = [_event(path, raw, i) for i, raw in enumerate(rawEvents)]
    anchors = {"start": 0.0, "end": duration}
    for raw, event in zip(rawEvents, events):
        label = _label("event", raw, event.index)
        if event.at >= duration:
            raise ScenarioError(path, label, "at", f"expected a time before the end ({duration:g} s)", event.at)
        if event.id is not None:
            if event.id in anchors:
                raise ScenarioError(path, label, "id", "expected an id used by no other event", event.id)
            anchors[event.id] = event.at
        _checkEvent(path, label, event, topology, populations, duration)
    _checkSequence(path, rawEvents, events)
    ordered = tuple(sorted(events, key=lambda e: (e.at, e.index)))

    rawExpect = document.get("expect", [])
    if not isinstance(rawExpect, list):
        raise ScenarioError(path, "[[expect]]", None, "expected an array of tables ([[expect]])", rawExpect)
    expectations = tuple(_expectation(path, raw, i, anchors, duration) for i, raw in enumerate(rawExpect))
    for raw, expectation in zip(rawExpect, expectations):
        _checkExpectation(path, _label("expect", raw, expectation.index), expectation, topology, populations)

    return Scenario(
        path=os.path.abspath(path), name=name, description=description, duration=duration, bucket=bucket,
        ciSpeed=ciSpeed, maxSpeed=maxSpeed, startupTimeout=startup, topologyPath=topologyPath,
        topologyDocument=topologyDocument, topology=topology, rate=sum(p.rate for p in populations), timeout=timeout,
        populations=tuple(populations), events=ordered, expectations=expectations,
    )



def _replaceRate(population: Population, rate: float) -> Population:
    return Population(population.name, rate, population.network, population.sources, population.ecs, population.queries)


def _checkRunnable(path: str, topology: Topology) -> None:
    appliance = topology.appliance
    if ipaddress.ip_address(appliance.ip).version != 4 or not ipaddress.ip_address(appliance.ip).is_loopback:
        raise ConfigError(topology.path, "[appliance]", "ip", "expected a loopback address (127.0.0.0/8) to run the scenario here",
                          appliance.ip)
    for site in topology.sites:
        if site.name in emulatedSites(topology) and not ipaddress.ip_address(site.ip).is_loopback:
            raise ConfigError(topology.path, f"[[site]] {site.name!r}", "ip",
                              "expected a loopback address (127.0.0.0/8): the scenario runs this site's emulator here", site.ip)
        if site.name in emulatedSites(topology):
            try:
                initiates(site.ip, site.name, appliance.ip, appliance.name)
            except ValueError as e:
                raise ConfigError(topology.path, f"[[site]] {site.name!r}", "ip", f"expected another address ({e})", site.ip) from None


def _checkSources(path: str, populations: list[Population], topology: Topology) -> None:
    """Client addresses must not be an address the appliance or a site uses (they bind there)."""
    taken = {topology.appliance.ip: "the appliance"}
    taken.update((site.ip, f"site {site.name}") for site in topology.sites)
    for index, population in enumerate(populations):
        for source in population.sources:
            if source in taken:
                raise ScenarioError(path, f"[[population]] #{index + 1} {population.name!r}", "source",
                                    f"expected client addresses apart from the topology's ({source} is {taken[source]})",
                                    population.network)


def _checkEvent(path: str, label: str, event: Event, topology: Topology, populations: list[Population], duration: float) -> None:
    emulated = emulatedSites(topology)

    def fail(key: str, expected: str, found: Any) -> None:
        raise ScenarioError(path, label, key, expected, found)

    if event.site is not None:
        if event.site not in topology.siteByName:
            fail("site", "expected the name of a [[site]] (known: " + ", ".join(sorted(topology.siteByName)) + ")", event.site)
        if event.site not in emulated:
            fail("site", "expected a site the scenario emulates (a MEP site: " + (", ".join(emulated) or "none") + ")", event.site)
    if event.service is not None:
        service = topology.serviceByName.get(event.service)
        if service is None:
            fail("service", "expected the name of a [[service]] (known: " + ", ".join(sorted(topology.serviceByName)) + ")",
                 event.service)
        if event.action in SITE_SERVICE_ACTIONS and service.site not in emulated:
            fail("service", f"expected a service of an emulated site (site {service.site!r} is not one)", event.service)
    if event.action == "site-scenario":
        emulator = topology.siteByName[event.site].emulator
        known = sorted(emulator.scenarios) if emulator else []
        if event.scenario not in known:
            fail("scenario", "expected one of the site's [site.emulator] scenarios (" + (", ".join(known) or "none") + ")",
                 event.scenario)
    if event.vserver is not None:
        vserver = topology.vserverByName.get(event.vserver)
        if vserver is None:
            fail("vserver", "expected the name of a [[vserver]] (known: " + ", ".join(sorted(topology.vserverByName)) + ")",
                 event.vserver)
        if event.method == "CUSTOMLOAD" and not vserver.custom_load:
            fail("method", "expected a method other than CUSTOMLOAD (the vserver has no custom_load)", event.method)
    if isinstance(event.core, int):
        cores = topology.appliance.cores
        if isinstance(cores, int) and event.core >= cores:
            fail("core", f"expected a core from 0 to {cores - 1} (the appliance runs {cores})", event.core)
    elif isinstance(event.core, str) and event.core.startswith("master:"):
        site = event.core.split(":", 1)[1]
        if site not in emulated:
            fail("core", "expected master:SITE of an emulated site (" + ", ".join(emulated) + ")", event.core)
    if event.population is not None and event.population not in {p.name for p in populations}:
        fail("population", "expected the name of a [[population]] (known: " + ", ".join(p.name for p in populations) + ")",
             event.population)
    if event.action == "ramp":
        if event.at + event.over > duration:
            fail("over", f"expected the ramp to end by the end ({duration:g} s)", event.over)
        if event.step > event.over:
            fail("step", f"expected at most over ({event.over:g})", event.step)


def _checkSequence(path: str, rawEvents: list, events: list[Event]) -> None:
    """
    A site's emulator must be there for what an event does to it: no
    site-up of a site that is up, no freeze of a site that is down...
    """
    state: dict[str, str] = {}
    for event in sorted(events, key=lambda e: (e.at, e.index)):
        label = _label("event", rawEvents[event.index], event.index)
        site = event.site
        now = state.get(site, "up")
        if event.action == "site-down":
            if now != "up":
                raise ScenarioError(path, label, "action", f"expected site {site} up at t={event.at:g} (it is {now})", event.action)
            state[site] = "services-down" if event.how == "services" else "down"
        elif event.action == "site-up":
            if now not in ("down", "services-down"):
                raise ScenarioError(path, label, "action", f"expected site {site} down at t={event.at:g} (it is {now})", event.action)
            state[site] = "up"
        elif event.action == "site-freeze":
            if now == "down" or now == "frozen":
                raise ScenarioError(path, label, "action", f"expected site {site} running at t={event.at:g} (it is {now})", event.action)
            state[site] = "frozen"
        elif event.action == "site-thaw":
            if now != "frozen":
                raise ScenarioError(path, label, "action", f"expected site {site} frozen at t={event.at:g} (it is {now})", event.action)
            state[site] = "up"
        elif event.action == "site-scenario" and now in ("down", "frozen"):
            raise ScenarioError(path, label, "action", f"expected site {site} running at t={event.at:g} (it is {now})", event.action)
        elif event.action in SITE_SERVICE_ACTIONS and event.service is not None:
            pass  # (a pin sent to a site that is down fails at run time, and says so)


def _checkExpectation(path: str, label: str, expectation: Expectation, topology: Topology, populations: list[Population]) -> None:
    def fail(key: str, expected: str, found: Any) -> None:
        raise ScenarioError(path, label, key, expected, found)

    if expectation.site is not None and expectation.site not in topology.siteByName:
        fail("site", "expected the name of a [[site]] (known: " + ", ".join(sorted(topology.siteByName)) + ")", expectation.site)
    if expectation.service is not None and expectation.service not in topology.serviceByName:
        fail("service", "expected the name of a [[service]] (known: " + ", ".join(sorted(topology.serviceByName)) + ")",
             expectation.service)
    if expectation.address is not None:
        known = sorted({s.ip for s in topology.services})
        if expectation.address not in known:
            fail("address", "expected the address of a [[service]] (" + ", ".join(known) + ")", expectation.address)
    if expectation.population is not None and expectation.population not in {p.name for p in populations}:
        fail("population", "expected the name of a [[population]] (known: " + ", ".join(p.name for p in populations) + ")",
             expectation.population)
