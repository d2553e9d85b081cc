"""
The console's grammar and rendering, free of any I/O: a command line is
parsed into a L{Command} that names the AMP call to make, and the result is
rendered as a table for people or JSON for scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, Callable, Optional

from twisted.protocols import amp

from gslb_twisted.protocol.commands import ShowCores


class CommandError(Exception):
    """The command line is not one the console knows; the message says why."""


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    amp: type[amp.Command]
    resultKey: str
    columns: tuple[str, ...]
    help: str


GRAMMAR: tuple[Command, ...] = (
    Command(
        ("show", "cores"),
        ShowCores,
        "cores",
        ("core", "pid", "state", "queries", "restarts", "uptime"),
        "One row per core process: id, pid, state, queries served, restarts.",
    ),
)


def parse(line: str) -> Command:
    words = tuple(line.split())
    if not words:
        raise CommandError("empty command")
    lowered = tuple(w.lower() for w in words)
    for command in GRAMMAR:
        if lowered == command.words:
            return command
    known = [" ".join(c.words) for c in GRAMMAR]
    close = get_close_matches(" ".join(lowered), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known commands: {', '.join(known)}"
    raise CommandError(f"unknown command {line.strip()!r}{hint}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def renderTable(rows: list[dict], columns: tuple[str, ...]) -> str:
    header = [c.upper() for c in columns]
    body = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r in body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def render(command: Command, result: dict, asJSON: bool) -> str:
    rows = [dict(row) for row in result[command.resultKey]]
    if asJSON:
        return json.dumps(rows, indent=2, sort_keys=True)
    return renderTable(rows, command.columns)


def helpText() -> str:
    return "\n".join(f"{' '.join(c.words):<20} {c.help}" for c in GRAMMAR)
