"""
A small TOML writer for what the importer emits: tables, arrays of tables,
sub-tables, and values that are strings, integers, floats, booleans, arrays
and inline tables (Python C{dict}s, written in insertion order).

Output is deterministic: the same document always gives the same bytes.
Strings are TOML basic strings with every character TOML requires escaped
(quote, backslash, control characters); comments are kept to one line each
and stripped of control characters, so no input can break the file's
structure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["Entry", "Table", "Document", "render", "formatValue", "formatString", "comment"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


@dataclass(frozen=True)
class Entry:
    """C{key = value}, with an optional comment at the end of the line."""

    key: str
    value: Any
    note: Optional[str] = None


@dataclass
class Table:
    """
    C{[name]} (or C{[[name]]} when C{array}), its entries, comment lines
    written above the header, and sub-tables written right after it (their
    names are full dotted names, e.g. C{site.emulator}).
    """

    name: str
    entries: list[Entry] = field(default_factory=list)
    array: bool = False
    comments: list[str] = field(default_factory=list)
    children: list["Table"] = field(default_factory=list)

    def add(self, key: str, value: Any, note: Optional[str] = None) -> None:
        self.entries.append(Entry(key, value, note))


@dataclass
class Document:
    header: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def formatKey(key: str) -> str:
    return key if _BARE_KEY.match(key) else formatString(key)


def formatString(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def formatFloat(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"a TOML float must be finite, not {value!r}")
    text = repr(float(value))
    if not any(c in text for c in ".eE"):
        text += ".0"
    return text


def formatValue(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return formatFloat(value)
    if isinstance(value, str):
        return formatString(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(formatValue(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{formatKey(k)} = {formatValue(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def comment(text: str) -> str:
    """One comment line: C{# text}, control characters shown as C{\\xNN}."""
    clean = "".join(ch if ch == "\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F) else f"\\x{ord(ch):02x}" for ch in text)
    return ("# " + clean).rstrip()


def _renderTable(table: Table, out: list[str]) -> None:
    for line in table.comments:
        out.append(comment(line))
    bracket = ("[[", "]]") if table.array else ("[", "]")
    out.append(bracket[0] + ".".join(formatKey(part) for part in table.name.split(".")) + bracket[1])
    for entry in table.entries:
        line = f"{formatKey(entry.key)} = {formatValue(entry.value)}"
        if entry.note:
            line += "  " + comment(entry.note)
        out.append(line)
    for child in table.children:
        out.append("")
        _renderTable(child, out)


def render(document: Document) -> str:
    out: list[str] = [comment(line) if line else "#" for line in document.header]
    for table in document.tables:
        if out:
            out.append("")
        _renderTable(table, out)
    return "\n".join(out) + "\n"
