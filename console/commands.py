"""
The console's grammar and rendering, free of any I/O.

One table, L{GRAMMAR}, drives everything: each L{Command} row gives the
words that name it, its positional L{Argument}s, its NetScaler-style
L{Option}s (C{-state DOWN}; C{--core 1} works as well), the AMP command it
becomes and how its result is shown.  L{parse} turns a line into an
L{Invocation} (the AMP command and its keyword arguments), L{render} turns
the AMP result into an aligned table (states coloured for a terminal) or
JSON, and L{helpText}, L{completions} (Tab, at the prompt) and
L{completionTree} are read off the same table.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher, get_close_matches
from typing import Any, Callable, Optional

from twisted.protocols import amp

from gslb_twisted.config import LB_METHODS
from gslb_twisted.protocol.commands import (
    DisableService,
    EnableService,
    Resolve,
    SetScenario,
    SetSiteRTT,
    SetSiteService,
    SetVServer,
    ShowConsistency,
    ShowCores,
    ShowMEP,
    ShowMetrics,
    ShowScenarios,
    ShowServices,
    ShowSiteRTT,
    ShowSites,
    ShowSiteServices,
    ShowSiteSessions,
    ShowVServers,
    StatCores,
    StatDNS,
    StatServices,
    StatVServers,
    StopScenario,
    UnsetSiteRTT,
    UnsetSiteService,
    normaliseQType,
)

APPLIANCE, SITE, LOCAL = "appliance", "site emulator", "local"


class CommandError(Exception):
    """The command line is not one the console knows; the message says why."""


@dataclass(frozen=True)
class Argument:
    """A positional argument: C{NAME} in C{show gslb site NAME}."""

    metavar: str
    key: str  # the AMP argument it fills
    required: bool = True
    entity: Optional[str] = None  # what it names, for completion: "site", "service", "vserver", "domain", "network"
    choices: tuple[str, ...] = ()  # completed when no entity names it
    convert: Optional[Callable[[str], Any]] = None  # raises ValueError, with a message, on a bad value


@dataclass(frozen=True)
class Option:
    """
    A named option: C{-connections 500}.  C{name} is how it is typed
    (matched case-insensitively, with one dash or two, and also under its
    C{key}); C{key} is the AMP argument or metric it sets.
    """

    name: str
    key: str
    kind: str  # "int", "float", "choice" or "ip"
    metavar: str
    help: str
    choices: tuple[str, ...] = ()
    low: Optional[float] = None
    high: Optional[float] = None
    dashes: str = "-"  # how help and errors spell it: NetScaler's -name, or --name
    local: bool = False  # the console's own (-ntimes): not sent to the endpoint

    @property
    def spelled(self) -> str:
        return self.dashes + self.name

    def expected(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "ip":
            return "an IPv4 or IPv6 address"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} from {self.low:g} to {self.high:g}"
        if self.low == 0:
            return f"a non-negative {noun.split(' ', 1)[1]}"
        if self.low is not None:
            return f"{noun} of at least {self.low:g}"
        return noun

    def convert(self, raw: str) -> Any:
        """C{raw} as the AMP command wants it. @raise CommandError: it cannot be."""
        def bad() -> CommandError:
            return CommandError(f"{self.spelled} expects {self.expected()}, found {raw!r}")

        if self.kind == "choice":
            for choice in self.choices:
                if raw.upper() == choice.upper():
                    return choice
            raise bad()
        if self.kind == "ip":
            try:
                return str(ipaddress.ip_address(raw))
            except ValueError:
                raise bad() from None
        try:
            value: Any = int(raw, 10) if self.kind == "int" else float(raw)
        except ValueError:
            raise bad() from None
        if isinstance(value, float) and not math.isfinite(value):
            raise bad()
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise bad()
        return value

    def synopsis(self, flag: bool = False) -> str:
        if flag:
            return self.spelled
        # A long list of choices is named by its metavar (errors list them).
        value = "|".join(self.choices) if self.kind == "choice" and len(self.choices) <= 4 else self.metavar
        return f"{self.spelled} {value}"


@dataclass(frozen=True)
class Command:
    """
    One row of the grammar.

    @ivar optionsInto: C{None}: each option is an AMP argument of its own;
        else the name of the one AMP argument that carries them all, as a
        C{{key: value}} table, or (with C{flags}) as a list of keys.
    @ivar flags: the options take no value (C{unset service NAME -load}).
    @ivar shape: how the result renders: C{"rows"} (a list of rows),
        C{"row"} (one row), C{"metrics"} (one site as a core holds it),
        C{"consistency"}, C{"vservers"} (a table, or one vserver in
        detail), C{"resolve"} (an answer and why), C{"change"} (what a
        runtime change did), or C{"local"} (no AMP call).
    """

    words: tuple[str, ...]
    amp: Optional[type[amp.Command]]
    help: str
    target: str
    arguments: tuple[Argument, ...] = ()
    options: tuple[Option, ...] = ()
    optionsInto: Optional[str] = None
    flags: bool = False
    needsOption: bool = False
    resultKey: str = "rows"
    shape: str = "rows"
    columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return " ".join(self.words)

    def synopsis(self) -> str:
        parts = list(self.words)
        for argument in self.arguments:
            parts.append(argument.metavar if argument.required else f"[{argument.metavar}]")
        for option in self.options:
            parts.append(f"[{option.synopsis(self.flags)}]")
        return " ".join(parts)

    def option(self, typed: str) -> Optional[Option]:
        folded = typed.lower()
        for option in self.options:
            if folded in (option.name.lower(), option.key.lower()):
                return option
        return None


@dataclass(frozen=True)
class Invocation:
    """
    A parsed line: the command and the AMP keyword arguments to call it
    with; C{settings}: how the console runs it (C{ntimes}: how many times;
    C{watch}: again every second until interrupted).
    """

    command: Command
    arguments: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def repeats(self) -> bool:
        return bool(self.settings.get("watch")) or self.settings.get("ntimes", 1) > 1


# --- the table ---------------------------------------------------------------------

# The metrics a site reports, as `set service` spells them (key: SERVICE_METRICS name).
METRIC_OPTIONS: tuple[Option, ...] = (
    Option("state", "state", "choice", "STATE", "UP or DOWN", choices=("UP", "DOWN")),
    Option("connections", "connections", "int", "N", "current client connections", low=0),
    Option("responseTime", "response_time", "float", "MS", "response time in milliseconds", low=0),
    Option("bandwidth", "bandwidth", "float", "KBPS", "bandwidth in kbit/s", low=0),
    Option("packets", "packets", "int", "N", "packets per second", low=0),
    Option("load", "load", "float", "PCT", "load in percent", low=0, high=100),
)

SERVICE_COLUMNS = ("name", "site", "ip", "port", "state", "connections", "response_time", "bandwidth", "packets", "load")
METRIC_COLUMNS = ("name", "state", "connections", "response_time", "bandwidth", "packets", "load")
SITE_SERVICE_COLUMNS = ("name", "ip", "port") + METRIC_COLUMNS[1:] + ("pinned",)
VSERVER_COLUMNS = ("name", "state", "method", "persistence", "services", "backup")
VSERVER_SERVICE_COLUMNS = ("name", "site", "ip", "weight", "state", "reason", "enabled")
# A candidate's columns, in this order; any other value it carries follows.
CANDIDATE_COLUMNS = ("service", "ip", "site", "weight", "state", "chosen", "connections", "response_time", "bandwidth",
                     "packets", "load", "distance_km", "rtt_ms")
# The query types `resolve` completes (any other name or number is accepted).
QUERY_TYPES = ("A", "AAAA", "ANY", "CNAME", "MX", "NS", "SOA", "SRV", "TXT")
# The consolidated statistics (`stat ...`).
STAT_VSERVER_COLUMNS = ("name", "state", "health", "active_services", "inactive_services", "hits", "hit_rate",
                        "persistence_sessions", "persistence_hits", "backup_method_hits", "spillovers",
                        "backup_vserver_hits", "down_responses")
STAT_VSERVER_SERVICE_COLUMNS = ("name", "answers", "answer_rate")
STAT_SERVICE_COLUMNS = ("name", "site", "state", "answers", "answer_rate")
STAT_CORE_COLUMNS = ("core", "queries", "query_rate", "bytes_in", "bytes_out", "stale_rejected")
# `-ntimes N` on every stat command: the console repeats it.
NTIMES = Option("ntimes", "ntimes", "int", "N", "show it N times, once per consolidation round", low=1, local=True)
# A site emulator's persistence sessions and the RTTs it reports (`show sessions`, `show rtt`).
SESSION_COLUMNS = ("vserver", "network", "service", "version", "origin", "expires_in")
RTT_COLUMNS = ("network", "rtt", "source", "probes", "age", "peer")
# A site emulator's scenarios (`show scenarios`).
SCENARIO_COLUMNS = ("name", "events", "running", "elapsed", "pending", "finished")


def clientNetwork(raw: str) -> str:
    """
    C{raw} as the canonical text of a client network, as the site emulator
    takes it: CIDR with no host bits set (a bare address is a /32 or /128).

    @raise ValueError: it is not one; the message says why, in one line.
    """
    expected = "NETWORK expects a network in CIDR notation such as 198.51.100.0/24"
    if "%" in raw:
        raise ValueError(f"{expected}, found {raw!r} (no IPv6 zone)")
    try:
        return str(ipaddress.ip_network(raw, strict=True))
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ValueError(f"{expected}, found {raw!r}") from None
    raise ValueError(f"{expected}, found {raw!r} (host bits set; did you mean {loose}?)")


def milliseconds(raw: str) -> float:
    """
    C{raw} as an RTT in milliseconds: a finite number >= 0.

    @raise ValueError: it is not one.
    """
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"MS expects a non-negative number of milliseconds, found {raw!r}")
    return value


GRAMMAR: tuple[Command, ...] = (
    Command(
        ("show", "cores"), ShowCores,
        "One row per core process: id, pid, state, queries served, restarts.",
        APPLIANCE, resultKey="cores",
        columns=("core", "pid", "state", "queries", "restarts", "uptime"),
    ),
    Command(
        ("show", "gslb", "site"), ShowSites,
        "GSLB sites: state, metric source (MEP, SNMP and its table, STATIC), master core, epoch, seq, "
        "metrics age, RTT; with NAME, an SNMP site's polling (polls, failures, latency, last error).",
        APPLIANCE, arguments=(Argument("NAME", "name", required=False, entity="site"),),
        shape="sites",
        columns=("name", "ip", "state", "source", "table", "direction", "master_core", "epoch", "seq",
                 "metrics_age", "rtt_ms"),
    ),
    Command(
        ("show", "gslb", "service"), ShowServices,
        "GSLB services and their current metrics.",
        APPLIANCE, arguments=(Argument("NAME", "name", required=False, entity="service"),),
        columns=SERVICE_COLUMNS,
    ),
    Command(
        ("show", "mep"), ShowMEP,
        "MEP sessions: peer, direction, state, frames, bytes, authentication failures, RTT.",
        APPLIANCE,
        columns=("site", "peer", "core", "direction", "state", "frames_in", "frames_out",
                 "bytes_in", "bytes_out", "auth_failures", "rtt_ms"),
    ),
    Command(
        ("show", "metrics"), ShowMetrics,
        "A site's metric table as one core holds it (--core N, default its master): each value's "
        "source (MEP, SNMP, MONITOR) and age; * marks values the last report did not refresh.",
        APPLIANCE, arguments=(Argument("SITE", "site", entity="site"),),
        options=(Option("core", "core", "int", "N", "the core whose table to show", low=0, dashes="--"),),
        resultKey="result", shape="metrics", columns=METRIC_COLUMNS,
    ),
    Command(
        ("show", "consistency"), ShowConsistency,
        "Does every core hold the same (epoch, seq) of every site?",
        APPLIANCE, resultKey="result", shape="consistency",
    ),
    Command(
        ("show", "gslb", "vserver"), ShowVServers,
        "GSLB vservers: state, LB method in effect, persistence, services up, backup; with NAME, its services.",
        APPLIANCE, arguments=(Argument("NAME", "name", required=False, entity="vserver"),),
        shape="vservers", columns=VSERVER_COLUMNS,
    ),
    Command(
        ("resolve",), Resolve,
        "The answer a core would give now (--core N, default the lowest serving), and why: "
        "method, candidates with their metrics, excluded services and the reason.",
        APPLIANCE,
        arguments=(
            Argument("NAME", "name", entity="domain"),
            Argument("TYPE", "qtype", required=False, choices=QUERY_TYPES, convert=normaliseQType),
        ),
        options=(
            Option("client", "client", "ip", "IP", "the client address the answer is for", dashes="--"),
            Option("core", "core", "int", "N", "the core that answers", low=0, dashes="--"),
        ),
        resultKey="result", shape="resolve",
    ),
    Command(
        ("set", "gslb", "vserver"), SetVServer,
        "Answer with another LB method, on every core, until set again (set the configured one to undo): "
        + ", ".join(LB_METHODS) + ".",
        APPLIANCE, arguments=(Argument("NAME", "name", entity="vserver"),),
        options=(Option("lbMethod", "lbMethod", "choice", "METHOD", "the LB method", choices=LB_METHODS),),
        needsOption=True, resultKey="result", shape="change",
    ),
    Command(
        ("enable", "gslb", "service"), EnableService,
        "Answer with the service again (when it is up), on every core.",
        APPLIANCE, arguments=(Argument("NAME", "name", entity="service"),),
        resultKey="result", shape="change",
    ),
    Command(
        ("disable", "gslb", "service"), DisableService,
        "Never answer with the service, whatever its state, on every core, until enabled.",
        APPLIANCE, arguments=(Argument("NAME", "name", entity="service"),),
        resultKey="result", shape="change",
    ),
    Command(
        ("stat", "gslb", "vserver"), StatVServers,
        "Consolidated counters of the vservers (every core's): state, health % (services up), hits and hits/s, "
        "persistence, backup method, spillover, backup vserver; with NAME, answers per service.",
        APPLIANCE, arguments=(Argument("NAME", "name", required=False, entity="vserver"),), options=(NTIMES,),
        shape="statvservers", columns=STAT_VSERVER_COLUMNS,
    ),
    Command(
        ("stat", "gslb", "service"), StatServices,
        "Consolidated answers per service (by every vserver, on every core), and answers/s.",
        APPLIANCE, arguments=(Argument("NAME", "name", required=False, entity="service"),), options=(NTIMES,),
        columns=STAT_SERVICE_COLUMNS,
    ),
    Command(
        ("stat", "cores"), StatCores,
        "Each core's share of the consolidated counters: queries, queries/s, bytes, stale updates rejected.",
        APPLIANCE, options=(NTIMES,), columns=STAT_CORE_COLUMNS,
    ),
    Command(
        ("stat", "dns"), StatDNS,
        "Consolidated DNS counters: queries and queries/s, by type and response code, bytes, drops, truncation, "
        "rate limiting.",
        APPLIANCE, options=(NTIMES,), resultKey="result", shape="dns",
    ),
    Command(
        ("show", "services"), ShowSiteServices,
        "The site emulator's services, their metrics, and which are pinned.",
        SITE, columns=SITE_SERVICE_COLUMNS,
    ),
    Command(
        ("set", "service"), SetSiteService,
        "Pin metrics of a site emulator's service (they hold until unset).",
        SITE, arguments=(Argument("NAME", "name", entity="service"),),
        options=METRIC_OPTIONS, optionsInto="values", needsOption=True,
        resultKey="row", shape="row", columns=SITE_SERVICE_COLUMNS,
    ),
    Command(
        ("unset", "service"), UnsetSiteService,
        "Release pinned metrics: the walk, timeline or backend take over again.",
        SITE, arguments=(Argument("NAME", "name", entity="service"),),
        options=METRIC_OPTIONS, optionsInto="metrics", flags=True, needsOption=True,
        resultKey="row", shape="row", columns=SITE_SERVICE_COLUMNS,
    ),
    Command(
        ("show", "sessions"), ShowSiteSessions,
        "The SOURCEIP persistence sessions the site emulator holds and shares between the appliances it "
        "serves: vserver, client network, service, version, origin, seconds until it expires.",
        SITE, columns=SESSION_COLUMNS,
    ),
    Command(
        ("show", "rtt"), ShowSiteRTT,
        "The client networks probed and the pinned ones: the RTT (ms) the site emulator reports, its source "
        "(pinned, config or location; - when it has none), probes, seconds since the last, and who probed.",
        SITE, columns=RTT_COLUMNS,
    ),
    Command(
        ("set", "rtt"), SetSiteRTT,
        "Pin the RTT (ms) the site emulator reports for NETWORK and the networks inside it "
        "(it overrides the rtt table and locations until unset).",
        SITE,
        arguments=(
            Argument("NETWORK", "network", entity="network", convert=clientNetwork),
            Argument("MS", "rtt", convert=milliseconds),
        ),
        resultKey="row", shape="row", columns=RTT_COLUMNS,
    ),
    Command(
        ("unset", "rtt"), UnsetSiteRTT,
        "Release the RTT pin of exactly NETWORK: the rtt table or the location answers again.",
        SITE, arguments=(Argument("NETWORK", "network", entity="network", convert=clientNetwork),),
        resultKey="row", shape="row", columns=RTT_COLUMNS,
    ),
    Command(
        ("show", "scenarios"), ShowScenarios,
        "The scenarios of the site emulator's topology: events, whether it runs now, seconds since it started.",
        SITE, columns=SCENARIO_COLUMNS,
    ),
    Command(
        ("set", "scenario"), SetScenario,
        "Play scenario NAME from now on (its times count from now), replacing the one running: its events "
        "change the services' metrics on schedule, above the timeline; values pinned from the console still win.",
        SITE, arguments=(Argument("NAME", "name", entity="scenario"),),
        resultKey="row", shape="scenario",
    ),
    Command(
        ("stop", "scenario"), StopScenario,
        "Stop the scenario running (also: unset scenario): its pending events are dropped and the values it "
        "set released, to the timeline, backend or random walk.",
        SITE, resultKey="row", shape="scenario",
    ),
    Command(
        ("help",), None, "This list, or the synopsis of the commands starting with the words given.",
        LOCAL, arguments=(Argument("COMMAND", "topic", required=False),), shape="local",
    ),
    Command(
        ("watch",), None,
        "Run a show or stat command every second, redrawn in place, until q or Ctrl-C "
        "(with --json outside the prompt: one JSON document per line).",
        LOCAL, arguments=(Argument("COMMAND", "line"),), shape="local",
    ),
    Command(("quit",), None, "Leave the console (also: exit).", LOCAL, shape="local"),
)

# The commands `watch` may repeat: those that change nothing.
WATCHABLE = ("show", "stat")

_ALIASES = {("exit",): ("quit",), ("?",): ("help",), ("unset", "scenario"): ("stop", "scenario")}

_OPTION = re.compile(r"^--?([A-Za-z][A-Za-z0-9_]*)$")


def _find(words: tuple[str, ...]) -> Optional[Command]:
    """The command named by the longest prefix of C{words}."""
    lowered = tuple(w.lower() for w in words)
    for alias, target in _ALIASES.items():
        if lowered[: len(alias)] == alias:
            lowered = target + lowered[len(alias):]
    best = None
    for command in GRAMMAR:
        if lowered[: len(command.words)] == command.words:
            if best is None or len(command.words) > len(best.words):
                best = command
    return best


def closest(line: str) -> Optional[Command]:
    """
    The command that C{line} most resembles, if any is close: its words
    are compared with as many typed words, or one fewer or one more (a
    word left out, C{disable service x}, or one too many); a command of the
    verb typed wins a tie.
    """
    words = tuple(w.lower() for w in line.split() if not _OPTION.match(w))
    options = [m.group(1) for m in map(_OPTION.match, line.split()) if m]
    best, score = None, 0.0
    for command in GRAMMAR:
        size = len(command.words)
        ratio = max(
            SequenceMatcher(None, " ".join(words[:k]), command.name).ratio()
            for k in {max(1, size - 1), size, size + 1}
        )
        if words[:1] == command.words[:1]:
            ratio += 0.01
        if options and all(command.option(o) is not None for o in options):
            # The options typed are this command's (-lbMethod: set gslb vserver).
            ratio += 0.1
        if ratio > score:
            best, score = command, ratio
    return best if score >= 0.6 else None


def _unknown(line: str, tokens: list[str]) -> CommandError:
    """Why C{line} names no command: it stops short of one, or which one it most resembles."""
    lowered = tuple(t.lower() for t in tokens)
    following = [c for c in GRAMMAR if len(c.words) > len(lowered) and c.words[: len(lowered)] == lowered]
    if following:
        if len(following) == 1:
            return CommandError(f"incomplete command {line.strip()!r}; did you mean {following[0].name!r}?")
        nexts = ", ".join(dict.fromkeys(c.words[len(lowered)] for c in following))
        return CommandError(f"incomplete command {line.strip()!r}; {' '.join(lowered)!r} goes on with one of: {nexts}")
    near = closest(line)
    hint = (
        f"; did you mean {near.name!r}?"
        if near is not None
        else "; commands start with " + ", ".join(sorted({c.words[0] for c in GRAMMAR}))
    )
    return CommandError(f"unknown command {line.strip()!r}{hint}")


def parse(line: str) -> Invocation:
    """
    @raise CommandError: unknown command, missing or extra argument, unknown
        option, or a value an option cannot take; the message is one line.
    """
    tokens = line.split()
    if not tokens:
        raise CommandError("empty command")
    command = _find(tuple(tokens))
    if command is None:
        raise _unknown(line, tokens)
    rest = tokens[len(command.words):]
    if command.words == ("help",):
        return Invocation(command, {"topic": " ".join(rest)})
    if command.words == ("watch",):
        return _watch(rest)

    positional: list[str] = []
    options: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    index = 0
    while index < len(rest):
        token = rest[index]
        match = _OPTION.match(token)
        if match is None:
            positional.append(token)
            index += 1
            continue
        option = command.option(match.group(1))
        if option is None:
            byName = {o.name: o for o in command.options}
            near = get_close_matches(match.group(1), list(byName), n=1, cutoff=0.5)
            if near:
                hint = f"; did you mean {byName[near[0]].spelled}?"
            elif byName:
                hint = "; options: " + ", ".join(o.spelled for o in command.options)
            else:
                hint = f"; {command.name!r} takes no options"
            raise CommandError(f"{command.name}: unknown option {token!r}{hint}")
        if option.key in options or option.key in settings:
            raise CommandError(f"{command.name}: {option.spelled} given twice")
        if command.flags:
            options[option.key] = True
            index += 1
            continue
        if index + 1 >= len(rest):
            raise CommandError(f"{command.name}: {option.spelled} expects {option.expected()}")
        try:
            (settings if option.local else options)[option.key] = option.convert(rest[index + 1])
        except CommandError as e:
            raise CommandError(f"{command.name}: {e}") from None
        index += 2

    arguments: dict[str, Any] = {}
    for argument in command.arguments:
        if positional:
            raw = positional.pop(0)
            try:
                arguments[argument.key] = argument.convert(raw) if argument.convert is not None else raw
            except ValueError as e:
                raise CommandError(f"{command.name}: {e}") from None
        elif argument.required:
            raise CommandError(f"{command.name}: expected {argument.metavar} (usage: {command.synopsis()})")
    if positional:
        raise CommandError(f"{command.name}: unexpected {positional[0]!r} (usage: {command.synopsis()})")
    if command.needsOption and not options:
        raise CommandError(f"{command.name}: expected at least one option (usage: {command.synopsis()})")
    if command.optionsInto is None:
        arguments.update(options)
    elif command.flags:
        arguments[command.optionsInto] = [o.key for o in command.options if o.key in options]
    else:
        arguments[command.optionsInto] = options
    return Invocation(command, arguments, settings)


def _watch(rest: list[str]) -> Invocation:
    """C{watch COMMAND}: the command, to run every second until interrupted."""
    if not rest:
        raise CommandError("watch: expected a command (usage: watch COMMAND, e.g. watch stat gslb vserver)")
    inner = parse(" ".join(rest))
    if inner.command.amp is None or inner.command.words[0] not in WATCHABLE or inner.settings.get("watch"):
        name = "watch" if inner.settings.get("watch") else inner.command.name
        raise CommandError(f"watch: {name!r} cannot be watched (only show and stat commands)")
    if "ntimes" in inner.settings:
        raise CommandError("watch: -ntimes repeats already; use one or the other")
    return Invocation(inner.command, inner.arguments, {"watch": True})


# --- rendering ---------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# Colours for humans on a terminal (never with --json, never into a pipe).
GREEN, RED, YELLOW = "\x1b[32m", "\x1b[31m", "\x1b[33m"
RESET = "\x1b[0m"
# A state, as any endpoint spells it (case aside), and its colour: working,
# broken, or in between (stale metrics, a fallback, a core starting).
STATE_COLOURS = {
    **{word: GREEN for word in ("up", "established", "serving", "running", "connected")},
    **{word: RED for word in ("down", "dead", "closed", "failed", "disconnected", "stopped")},
    **{word: YELLOW for word in ("stale", "fallback", "starting", "stopping", "handshake", "respawning",
                                 "connecting", "unknown", "replaced", "disabled", "partial", "out of service",
                                 "finished")},
}
# The columns whose values are states, and those that say yes or no: the
# colours of yes and no (a disabled service is a choice, not a failure).
STATE_COLUMNS = ("state", "method")
YES_NO_COLUMNS = {"enabled": (GREEN, YELLOW), "running": (GREEN, None), "consistent": (GREEN, RED)}


def stateColour(value: Any, column: str = "state") -> Optional[str]:
    """The colour of a state's text (in C{column}), if it is one."""
    if column in YES_NO_COLUMNS:
        yes, no = YES_NO_COLUMNS[column]
        text = _cell(value) if isinstance(value, bool) else str(value).lower()
        return yes if text == "yes" else no if text == "no" else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.endswith("(fallback)"):
        return YELLOW
    return STATE_COLOURS.get(text)


def paint(text: str, colour: Optional[str]) -> str:
    return f"{colour}{text}{RESET}" if colour else text


def renderTable(rows: list[dict], columns: tuple[str, ...], colour: bool = False) -> str:
    """
    An aligned table.  A column no row has is left out (the same command
    may be answered by an appliance or a site emulator).  With C{colour},
    states are green (working), red (broken) or yellow (in between); the
    alignment is the same.
    """
    if rows:
        columns = tuple(c for c in columns if any(c in row for row in rows)) or columns
    header = [c.upper() for c in columns]
    body = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    painted = [colour and (c in STATE_COLUMNS or c in YES_NO_COLUMNS or c.endswith("_state")) for c in columns]
    for r in body:
        cells = [
            paint(v, stateColour(v, c) if p else None) + " " * (w - len(v))
            for v, w, p, c in zip(r, widths, painted, columns)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    # AmpList rows are dicts already; this only makes tuples lists.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def render(invocation: Invocation, result: dict, asJSON: bool, colour: bool = False) -> str:
    """
    The AMP C{result} of C{invocation} as a table, or as JSON (the value,
    exactly); C{colour}: states coloured, for a human at a terminal.
    """
    command = invocation.command
    value = _jsonable(result[command.resultKey])
    if asJSON:
        if invocation.repeats:
            # One document per line, one line per repetition.
            return json.dumps(value, sort_keys=True)
        return json.dumps(value, indent=2, sort_keys=True)
    if command.shape == "rows":
        return renderTable(list(value), command.columns, colour)
    if command.shape == "row":
        return renderTable([value], command.columns, colour)
    if command.shape == "sites":
        rows = list(value)
        text = renderTable(rows, command.columns, colour)
        if invocation.arguments.get("name") is not None:
            for row in rows:
                if row.get("snmp_version") is not None:
                    text += "\n" + renderSNMPStatus(row)
        return text
    if command.shape == "metrics":
        return renderMetrics(value, command.columns, colour)
    if command.shape == "consistency":
        sites = value.get("sites", [])
        cores = sorted({str(core) for site in sites for core in site.get("versions", {})}, key=_coreOrder)
        rows = []
        for site in sites:
            row = {"site": site.get("site")}
            for core in cores:
                version = site.get("versions", {}).get(core)
                row[f"core {core}"] = "-" if version is None else "/".join(str(v) for v in version)
            rows.append(row)
        verdict = "consistent: " + _painted(bool(value.get("consistent")), colour, "consistent")
        return verdict + "\n" + renderTable(rows, ("site",) + tuple(f"core {c}" for c in cores))
    if command.shape == "vservers":
        rows = list(value)
        if invocation.arguments.get("name") is not None and len(rows) == 1:
            return renderVServer(rows[0], colour)
        return renderTable([_vserverLine(row) for row in rows], command.columns, colour)
    if command.shape == "resolve":
        return renderResolve(value, colour)
    if command.shape == "statvservers":
        rows = list(value)
        if invocation.arguments.get("name") is not None and len(rows) == 1:
            return renderStatVServer(rows[0], colour)
        return renderTable(rows, command.columns, colour)
    if command.shape == "dns":
        return renderStatDNS(value)
    if command.shape == "change":
        return renderChange(value)
    if command.shape == "scenario":
        return renderScenario(value, colour)
    raise ValueError(f"no rendering for {command.name!r}")


def renderSNMPStatus(row: dict) -> str:
    """An SNMP site's polling, as its master core reports it."""
    security = f" user {row['snmp_user']} ({row.get('snmp_security')})" if row.get("snmp_user") else ""
    lines = [f"snmp v{row['snmp_version']} port {row.get('snmp_port')}{security}, table {row.get('table')}"]
    if row.get("snmp_polls") is not None:
        lines.append(
            f"  polls {row['snmp_polls']}  failures {row.get('snmp_failures')}  skipped {row.get('snmp_skipped')}"
            f"  oids {row.get('snmp_oids')}  latency {_cell(row.get('snmp_latency_ms'))} ms"
            f"  last answer {_cell(row.get('snmp_last_success_age'))} s ago"
        )
        lines.append(f"  last error: {row.get('snmp_last_error') or '-'}")
    return "\n".join(lines)


def renderMetrics(value: dict, columns: tuple, colour: bool = False) -> str:
    """
    One site's metrics as one core holds them: the head says where they
    come from; the columns are the metrics the services carry (MEP's, or
    an SNMP table's); AGE is the oldest value's; a value the last report
    did not refresh is marked with *.
    """
    head = "  ".join(
        f"{key} {_painted(value.get(key), colour) if key == 'state' else _cell(value.get(key))}"
        for key in ("site", "core", "epoch", "seq", "state") if key in value
    )
    if value.get("source"):
        head += f"  source {value['source']}" + (f" (table {value['table']})" if value.get("table") else "")
    services = list(value.get("services", []))
    present = []
    for service in services:
        for key in service:
            if key not in ("name", "sources", "ages") and key not in present:
                present.append(key)
    known = [c for c in columns if c in present]
    metricColumns = tuple(known + sorted(k for k in present if k not in known))
    rows, lagging = [], False
    for service in services:
        ages = service.get("ages") or {}
        freshest = min((a for a in ages.values() if a is not None), default=None)
        row = {"name": service.get("name")}
        for key in metricColumns:
            cell = service.get(key)
            age = ages.get(key)
            if key != "state" and key in service and age is not None and freshest is not None and age > freshest + 0.5:
                cell = f"{_cell(cell)}*"
                lagging = True
            row[key] = cell
        if ages:
            row["age"] = max((a for a in ages.values() if a is not None), default=None)
        rows.append(row)
    text = head + "\n" + renderTable(rows, ("name",) + metricColumns + ("age",), colour)
    if lagging:
        text += "\n* not refreshed by the last report: older than the rest (ages in --json)"
    return text


def _painted(value: Any, colour: bool, column: str = "state") -> str:
    """One value as a cell, coloured as a state when C{colour}."""
    text = _cell(value)
    return paint(text, stateColour(value, column)) if colour else text


def _method(method: Any, fallback: Any) -> str:
    return f"{_cell(method)} (fallback)" if fallback else _cell(method)


def _persistence(row: dict) -> str:
    persistence = row.get("persistence") or "NONE"
    if persistence != "NONE" and row.get("persistence_timeout") is not None:
        return f"{persistence} {row['persistence_timeout']}s"
    return persistence


def _servicesUp(row: dict) -> str:
    services = row.get("services") or []
    up = sum(1 for s in services if s.get("state") == "UP" and s.get("enabled", True))
    return f"{up}/{len(services)}"


def _vserverLine(row: dict) -> dict:
    """One vserver as a line of C{show gslb vserver}: the method it answers with now."""
    return {
        "name": row.get("name"),
        "state": row.get("state"),
        "method": _method(row.get("effective_method") or row.get("lb_method"), row.get("fallback")),
        "persistence": _persistence(row),
        "services": _servicesUp(row),
        "backup": row.get("backup_vserver"),
    }


def _spillover(spillover: Optional[dict]) -> str:
    if not spillover:
        return "-"
    text = f"{_cell(spillover.get('method'))} threshold {_cell(spillover.get('threshold'))}"
    if spillover.get("value") is not None:
        text += f", now {_cell(spillover.get('value'))}"
    return text + (" (spilled over)" if spillover.get("spilled") else "")


def renderVServer(row: dict, colour: bool = False) -> str:
    """C{show gslb vserver NAME}: its settings, then its services with their state, reason and whether enabled."""
    method = _cell(row.get("lb_method"))
    configured = row.get("configured_lb_method")
    if configured is not None and configured != row.get("lb_method"):
        method += f" (set at run time; configured {configured})"
    effective = row.get("effective_method")
    answering = None
    if row.get("fallback") or (effective is not None and effective != row.get("lb_method")):
        answering = _method(effective, row.get("fallback"))
    persistence = _persistence(row)
    if row.get("persistence_entries") is not None and (row.get("persistence") or "NONE") != "NONE":
        persistence += f", {row['persistence_entries']} entries"
    fields = (
        ("domains", _cell(row.get("domains"))),
        ("state", _painted(row.get("state"), colour)),
        ("method", method),
    ) + ((("answering with", _painted(answering, colour)),) if answering is not None else ()) + (
        ("backup method", _cell(row.get("backup_lb_method"))),
        ("persistence", persistence),
        ("ttl", _cell(row.get("ttl"))),
        ("answers", _cell(row.get("answers"))),
        ("backup vserver", _cell(row.get("backup_vserver"))),
        ("spillover", _spillover(row.get("spillover"))),
    )
    width = max(len(label) for label, _ in fields)
    lines = [f"vserver {_cell(row.get('name'))}"]
    lines += [f"  {label.ljust(width)}  {text}" for label, text in fields]
    services = renderTable(list(row.get("services") or []), VSERVER_SERVICE_COLUMNS, colour)
    return "\n".join(lines) + "\n" + services


def _fields(pairs: list[tuple[str, Any]]) -> list[str]:
    width = max(len(label) for label, _ in pairs)
    return [f"  {label.ljust(width)}  {_cell(value)}" for label, value in pairs]


def renderStatVServer(row: dict, colour: bool = False) -> str:
    """C{stat gslb vserver NAME}: its counters, then answers per service."""
    pairs = [(key.replace("_", " "), row.get(key)) for key in STAT_VSERVER_COLUMNS[1:] if key in row]
    pairs = [(label, f"{value:.1f}%" if label == "health" and isinstance(value, (int, float)) else
              _painted(value, colour) if label == "state" else value)
             for label, value in pairs]
    lines = [f"vserver {_cell(row.get('name'))}"] + _fields(pairs)
    return "\n".join(lines) + "\n" + renderTable(list(row.get("services") or []), STAT_VSERVER_SERVICE_COLUMNS)


def renderStatDNS(result: dict) -> str:
    """C{stat dns}: the totals, then queries by type and responses by code."""
    keys = ("queries", "query_rate", "bytes_in", "bytes_out", "dropped", "truncated", "tcp_refused", "rrl_dropped",
            "rrl_slipped", "round", "control")
    lines = ["dns"] + _fields([(key.replace("_", " "), result.get(key)) for key in keys if key in result])
    for title, column, key in (("by type", "qtype", "by_type"), ("by rcode", "rcode", "by_rcode")):
        counts = result.get(key) or {}
        lines.append(f"{title}:")
        lines.append(renderTable([{column: name, "count": n} for name, n in counts.items()], (column, "count")))
    return "\n".join(lines)


def renderResolve(result: dict, colour: bool = False) -> str:
    """
    C{resolve}: the answer, then why: the vserver, its method, whether it
    fell back, persistence, the candidates with their metric values and
    load, and the services left out with the reason.
    """
    client = f" from {result['client']}" if result.get("client") else ""
    answer = " ".join(str(a) for a in result.get("answer") or []) or "(no address)"
    lines = [
        f"{_cell(result.get('name'))} {_cell(result.get('qtype'))}{client}, core {_cell(result.get('core'))}: "
        f"{_cell(result.get('rcode'))} {answer}",
        "  ".join((
            f"vserver {_cell(result.get('vserver'))}",
            f"method {_painted(_method(result.get('method'), result.get('fallback')), colour)}",
            f"source {_cell(result.get('source'))}",
            f"persistence {_cell(result.get('persistence'))}",
        )),
    ]
    if result.get("fallback_reason"):
        lines.append(paint(f"fallback: {result['fallback_reason']}", YELLOW if colour else None))
    if result.get("spillover"):
        lines.append(f"spillover {_spillover(result['spillover'])}")
    candidates = list(result.get("candidates") or [])
    if candidates:
        extra = sorted({key for c in candidates for key in c} - set(CANDIDATE_COLUMNS))
        # A metric no candidate has a value for says nothing.
        columns = tuple(
            c for c in CANDIDATE_COLUMNS + tuple(extra)
            if c == "service" or any(candidate.get(c) is not None for candidate in candidates)
        )
        lines.append("candidates:")
        lines.append(renderTable(candidates, columns, colour))
    else:
        lines.append("candidates: none")
    excluded = list(result.get("excluded") or [])
    if excluded:
        lines.append("excluded:")
        lines.append(renderTable(excluded, ("service", "reason")))
    return "\n".join(lines)


def renderScenario(row: dict, colour: bool = False) -> str:
    """
    What C{set scenario} / C{stop scenario} did: the scenario, whether it
    runs now, its events (still to come) and the one it replaced.
    """
    state = "finished" if row.get("finished") else "running" if row.get("running") else "stopped"
    details = []
    if row.get("events") is not None:
        pending = f", {row['pending']} to come" if row.get("running") and row.get("pending") is not None else ""
        details.append(f"{row['events']} events{pending}")
    if row.get("replaced"):
        details.append(f"replaced {row['replaced']}")
    text = f"scenario {_cell(row.get('name'))}: {_painted(state, colour)}"
    return text + (f" ({'; '.join(details)})" if details else "")


def renderChange(result: dict) -> str:
    """What C{set gslb vserver} / C{enable|disable gslb service} did, and on which cores."""
    applied = list(result.get("cores") or [])
    cores = ("core " if len(applied) == 1 else "cores ") + ", ".join(str(c) for c in applied) if applied else "no core (none is running)"
    if "lb_method" in result:
        text = f"vserver {result.get('name')}: lbMethod {result['lb_method']}"
        configured = result.get("configured_lb_method")
        if configured is not None and configured != result["lb_method"]:
            text += f" (configured {configured})"
    else:
        text = f"service {result.get('name')}: {'enabled' if result.get('enabled') else 'disabled'}"
    return f"{text}; applied by {cores}"


def _coreOrder(core: str):
    return (0, int(core)) if core.isdigit() else (1, core)


def helpText(topic: str = "") -> str:
    """
    Every command's synopsis and description, grouped by what answers it,
    or only those whose name starts with C{topic}.
    """
    words = tuple(topic.lower().split())
    for alias, target in _ALIASES.items():
        if words[: len(alias)] == alias and alias != ("?",):
            words = target + words[len(alias):]
    chosen = [c for c in GRAMMAR if c.words[: len(words)] == words or words[: len(c.words)] == c.words]
    if not chosen:
        near = closest(topic)
        hint = f"; did you mean {near.name!r}?" if near else ""
        raise CommandError(f"help: no command {topic!r}{hint}")
    lines = []
    for target in (APPLIANCE, SITE, LOCAL):
        group = [c for c in chosen if c.target == target]
        if not group:
            continue
        if len(chosen) > 1:
            lines.append(f"{'On an appliance' if target == APPLIANCE else 'On a site emulator' if target == SITE else 'In the console'}:")
        for command in group:
            lines.append(f"  {command.synopsis()}")
            lines.append(f"      {command.help}")
    return "\n".join(lines)


# Where the names Tab completes come from, by kind (the first command an
# endpoint knows wins: a site emulator names its services another way).
ENTITY_SOURCES: tuple[tuple[str, type[amp.Command]], ...] = (
    ("site", ShowSites),
    ("service", ShowServices),
    ("service", ShowSiteServices),
    ("vserver", ShowVServers),
    ("network", ShowSiteRTT),
    ("scenario", ShowScenarios),
)


def entityNames(rows: dict[str, list[dict]]) -> dict[str, list[str]]:
    """
    The names to complete, by kind, from the rows of L{ENTITY_SOURCES}'
    commands; a vserver's domains complete C{resolve}; the networks of
    C{show rtt} (in the address order it lists them) complete C{set rtt}
    and C{unset rtt}.
    """
    names = {
        kind: sorted({str(row["name"]) for row in found if "name" in row})
        for kind, found in rows.items() if kind != "network"
    }
    networks = list(dict.fromkeys(str(row["network"]) for row in rows.get("network", []) if row.get("network")))
    if networks:
        names["network"] = networks
    domains = {str(d) for row in rows.get("vserver", []) for d in row.get("domains") or []}
    if domains:
        names["domain"] = sorted(domains)
    return names


def completionTree(entities: Optional[dict[str, list[str]]] = None) -> dict:
    """
    The grammar as nested words for prompt-toolkit's C{NestedCompleter}:
    command words, then entity names (from C{entities}, by kind) where an
    argument names one, then the option names.
    """
    entities = entities or {}
    tree: dict = {}
    for command in GRAMMAR:
        node = tree
        for word in command.words[:-1]:
            node = node.setdefault(word, {})
        # An option completes its values (-lbMethod ROUNDROBIN).
        options = {
            o.spelled: {c: None for c in o.choices} if o.kind == "choice" and not command.flags else None
            for o in command.options
        }
        tail: Optional[dict] = dict(options) or None
        # Each argument's names lead to the next argument's, then to the
        # options (which an optional argument may also be skipped for).
        for argument in reversed(command.arguments):
            names = list(entities.get(argument.entity or "", [])) or list(argument.choices)
            if not names:
                continue
            level = {name: dict(tail) if tail else None for name in names}
            if not argument.required:
                level = {**options, **level}
            tail = level
        node[command.words[-1]] = tail
    # `watch` completes the commands it may repeat.
    tree["watch"] = {word: node for word, node in tree.items() if word in WATCHABLE}
    return tree


# --- completion ---------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """
    One completion: C{text} replaces the last C{replace} characters typed
    (the word under the cursor); C{meta} says what it is.
    """

    text: str
    replace: int
    meta: str = ""


def _summary(text: str) -> str:
    """The first sentence of a command's help, for the completion menu."""
    first = text.split(". ")[0].split(": ")[0]
    return first if len(first) <= 60 else first[:57] + "..."


def _matching(words, partial: str, meta="") -> list[Suggestion]:
    """The words (in order, once each) that start with C{partial}, case aside."""
    folded = partial.lower()
    seen, found = set(), []
    for word in words:
        text, note = (word if isinstance(word, tuple) else (word, meta))
        if text.lower().startswith(folded) and text not in seen:
            seen.add(text)
            found.append(Suggestion(text, len(partial), note))
    return found


def completions(text: str, entities: Optional[dict[str, list[str]]] = None) -> list[Suggestion]:
    """
    What may come next where the cursor is (at the end of C{text}), read
    off L{GRAMMAR}: the next word of a command, then its arguments (the
    names the endpoint knows, from C{entities} by kind, or the argument's
    own choices), its options (the ones not given yet, with their dashes:
    C{--c} offers C{--client} and C{--core}) and an option's values (LB
    methods, UP/DOWN).  Words match whatever their case.
    """
    entities = entities or {}
    tokens = text.split()
    partial = "" if not text or text[-1].isspace() else tokens.pop()
    return _complete(tokens, partial, entities, GRAMMAR)


def _complete(tokens: list[str], partial: str, entities: dict, commands) -> list[Suggestion]:
    lowered = [t.lower() for t in tokens]
    for alias, target in _ALIASES.items():
        if tuple(lowered[: len(alias)]) == alias:
            lowered = list(target) + lowered[len(alias):]
    if lowered[:1] == ["watch"] and any(c.words == ("watch",) for c in commands):
        return _complete(tokens[1:], partial, entities, [c for c in GRAMMAR if c.amp and c.words[0] in WATCHABLE])
    if lowered[:1] == ["help"] and any(c.words == ("help",) for c in commands):
        # The words of the commands, and nothing after them.
        nested = [c for c in GRAMMAR if c.words[: len(lowered) - 1] == tuple(lowered[1:]) and len(c.words) > len(lowered) - 1]
        return _matching([(c.words[len(lowered) - 1], _summary(c.help) if len(c.words) == len(lowered) else "")
                          for c in nested], partial)
    # The next word of every command these words begin.
    following = [
        (c.words[len(lowered)], _summary(c.help) if len(c.words) == len(lowered) + 1 else "")
        for c in commands if len(c.words) > len(lowered) and c.words[: len(lowered)] == tuple(lowered)
    ]
    if following:
        return _matching(following, partial)
    command = next(
        (c for c in sorted(commands, key=lambda c: -len(c.words)) if tuple(lowered[: len(c.words)]) == c.words),
        None,
    )
    if command is None:
        return []
    return _completeArguments(command, tokens[len(command.words):], partial, entities)


def _completeArguments(command: Command, rest: list[str], partial: str, entities: dict) -> list[Suggestion]:
    given, used, pending = 0, set(), None
    for token in rest:
        if pending is not None:
            pending = None
            continue
        match = _OPTION.match(token)
        option = command.option(match.group(1)) if match else None
        if option is not None:
            used.add(option.key)
            pending = None if command.flags else option
            continue
        given += 1
    if pending is not None:
        return _matching(pending.choices, partial, pending.metavar.lower()) if pending.kind == "choice" else []
    unused = [(o.spelled, o.help) for o in command.options if o.key not in used]
    if partial.startswith("-"):
        # One dash or two: `-co` offers `--core` as well.
        bare = partial.lstrip("-").lower()
        return [
            Suggestion(name, len(partial), note) for name, note in unused if name.lstrip("-").lower().startswith(bare)
        ]
    if given < len(command.arguments):
        argument = command.arguments[given]
        names = list(entities.get(argument.entity or "", [])) or list(argument.choices)
        found = _matching(names, partial, argument.entity or argument.metavar.lower())
        if not argument.required and not partial:
            found += [Suggestion(name, 0, note) for name, note in unused]
        return found
    return [Suggestion(name, 0, note) for name, note in unused] if not partial else []
