"""
Lexing a NetScaler configuration (C{ns.conf}): lines into commands.

The NetScaler CLI separates arguments with spaces and tabs.  An argument
may be double-quoted, with backslash escapes inside (C{\\"}, C{\\\\}, and
C{\\r}, C{\\n}, C{\\t} as in monitor send strings), or single-quoted, taken
literally (the command reference offers single quotes to avoid escaping
double quotes).  Quoted and unquoted pieces next to each other make one
argument, as in a shell.  A line whose first non-blank character is C{#}
is a comment.  Options (C{-lbMethod}) are matched without regard to case;
a quoted argument is never an option, whatever it starts with.

Everything here is pure: text in, L{Command}s out, L{NSConfigError} on a
line that cannot be read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

__all__ = [
    "NSConfigError",
    "Token",
    "Option",
    "Command",
    "tokenize",
    "splitArguments",
    "readCommands",
    "decode",
]


class NSConfigError(Exception):
    """
    The configuration cannot be imported.  C{str()} is the message a user
    reads, without the file name (the command line adds it with the line
    number: C{ns.conf:12: ...}).
    """

    def __init__(self, line: Optional[int], message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return self.message

    def located(self, path: str) -> str:
        """C{path:line: message} (C{path: message} when no line applies)."""
        if self.line is None:
            return f"{path}: {self.message}"
        return f"{path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Token:
    """One argument: its text after unquoting, and whether any of it was quoted."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Option:
    """
    C{-name value...}: C{key} is the name folded to lower case (for
    matching), C{name} as written (for messages).
    """

    name: str
    values: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.name[1:].lower()

    def show(self) -> str:
        """The option as a user would type it back: C{-lbMethod RTT}."""
        return " ".join([self.name] + [_showValue(v) for v in self.values])


@dataclass(frozen=True)
class Command:
    """
    One configuration line: its number (from 1), the command words folded
    to lower case (C{("add", "gslb", "vserver")}), the positional arguments
    after them, and the options in the order written.
    """

    line: int
    words: tuple[str, ...]
    positionals: tuple[str, ...]
    options: tuple[Option, ...]
    text: str = field(compare=False, default="")
    spelled: tuple[str, ...] = field(compare=False, default=())  # the command words as written

    @property
    def name(self) -> Optional[str]:
        """The entity the command is about: its first positional argument."""
        return self.positionals[0] if self.positionals else None

    def summary(self) -> str:
        """C{add gslb vserver vs-www}: what a listing names the line by."""
        head = " ".join(self.spelled or self.words)
        return f"{head} {_showValue(self.name)}" if self.name is not None else head


def _showValue(value: str) -> str:
    if value == "" or re.search(r"[\s\"'\\]", value) or not value.isprintable():
        escaped = (
            value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
        )
        return '"' + "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in escaped) + '"'
    return value


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "'": "'"}
_OPTION = re.compile(r"^-[A-Za-z][A-Za-z0-9_]*$")


def tokenize(text: str, line: int = 1) -> list[Token]:
    """
    The arguments of one line (without its end-of-line characters).

    @raise NSConfigError: a quote is not closed.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        pieces: list[str] = []
        quoted = False
        while i < n and text[i] not in " \t":
            ch = text[i]
            if ch == '"':
                quoted = True
                start = i
                i += 1
                while True:
                    if i >= n:
                        raise NSConfigError(line, f"unterminated double quote (opened at column {start + 1})")
                    ch = text[i]
                    if ch == '"':
                        i += 1
                        break
                    if ch == "\\" and i + 1 < n:
                        following = text[i + 1]
                        # Unknown escapes keep their backslash: a regular
                        # expression in a quoted argument survives intact.
                        pieces.append(_ESCAPES.get(following, "\\" + following))
                        i += 2
                        continue
                    pieces.append(ch)
                    i += 1
            elif ch == "'":
                quoted = True
                end = text.find("'", i + 1)
                if end < 0:
                    raise NSConfigError(line, f"unterminated single quote (opened at column {i + 1})")
                pieces.append(text[i + 1:end])
                i = end + 1
            else:
                pieces.append(ch)
                i += 1
        tokens.append(Token("".join(pieces), quoted))
    return tokens


# How many values an option takes: (fewest, most); most None means "every
# value up to the next option".  Options not listed take every value up to
# the next option too, which is right for the unknown ones (they are listed
# as unsupported with all their values).
Arity = Callable[[str], Optional[tuple[int, Optional[int]]]]


def splitArguments(tokens: list[Token], arity: Optional[Arity] = None) -> tuple[list[str], list[Option]]:
    """
    Positional arguments and options.  A value an option does not take
    (past its arity) is positional, so that C{-siteType LOCAL 10.0.0.1}
    leaves the address positional as the CLI does.
    """
    positionals: list[str] = []
    options: list[Option] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.quoted or not _OPTION.match(token.text):
            positionals.append(token.text)
            i += 1
            continue
        most = None
        if arity is not None:
            known = arity(token.text[1:].lower())
            if known is not None:
                most = known[1]
        values: list[str] = []
        i += 1
        while i < len(tokens) and (tokens[i].quoted or not _OPTION.match(tokens[i].text)):
            if most is not None and len(values) >= most:
                break
            values.append(tokens[i].text)
            i += 1
        options.append(Option(token.text, tuple(values)))
    return positionals, options


def decode(data: bytes) -> str:
    """
    The text of a configuration file: UTF-8 (a byte-order mark dropped).

    @raise NSConfigError: the bytes are not UTF-8, naming the line.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise NSConfigError(line, f"not UTF-8 text (byte 0x{data[e.start]:02x})") from None
    return text[1:] if text.startswith("\ufeff") else text


def physicalLines(text: str) -> Iterator[tuple[int, str]]:
    """(number, text) of every line, CR LF or LF ended."""
    for number, raw in enumerate(text.split("\n"), start=1):
        yield number, raw[:-1] if raw.endswith("\r") else raw


def readCommands(
    text: str,
    commandLength: Callable[[list[str]], int],
    arity: Callable[[tuple[str, ...]], Optional[Arity]],
) -> Iterator[Command]:
    """
    Every command of a configuration, comments and blank lines skipped.

    @param commandLength: how many leading words name the command, given
        the line's words folded to lower case (C{add gslb vserver} is 3).
    @param arity: the option arity function for a command's words.
    @raise NSConfigError: on the first line that cannot be lexed.
    """
    for number, line in physicalLines(text):
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        tokens = tokenize(line, number)
        if not tokens:
            continue
        folded = [t.text.lower() if not t.quoted else "\0" for t in tokens]
        count = max(1, min(commandLength(folded), len(tokens)))
        words = tuple(folded[:count])
        positionals, options = splitArguments(tokens[count:], arity(words))
        spelled = tuple(t.text for t in tokens[:count])
        yield Command(number, words, tuple(positionals), tuple(options), stripped, spelled)
