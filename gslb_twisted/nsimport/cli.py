"""
C{gslb-import ns.conf -o topology.toml}: the command.

Reads a NetScaler configuration, writes the topology (to C{-o} or standard
output), and lists on standard error every line that was not imported as
the NetScaler runs it, as C{ns.conf:LINE: unsupported: ...} (the same list
heads the topology file as comments).  The topology is checked with the
project's own loader before anything is written: what gslb-import writes,
C{twistd -n gslb --config} runs.

Exit status: 0 written; 1 the configuration cannot be imported (the message
names the file and line), or C{--strict} and something was not imported
faithfully; 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from typing import Optional, Sequence, TextIO

from .lexer import NSConfigError, decode
from .mapping import ImportOptions, ImportResult, importConfig
from .rebase import parseNetwork
from .tomlwriter import render

PROG = "gslb-import"


def _network(text: str):
    try:
        return parseNetwork(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Import the GSLB part of a NetScaler configuration (ns.conf) as a gslb-twisted topology.",
        epilog="Lines that cannot be imported as the NetScaler runs them are listed on standard error with their "
        "line numbers, and at the head of the output.  docs/IMPORT.md has the mapping.",
    )
    p.add_argument("config", metavar="NS.CONF", help="the NetScaler configuration ('-' reads standard input)")
    p.add_argument("-o", "--output", metavar="TOPOLOGY.TOML", help="where to write the topology (default: standard output)")
    p.add_argument(
        "--rebase", metavar="NETWORK", action="append", type=_network, default=[],
        help="emulate on this machine: move every address into NETWORK (e.g. 127.0.0.0/8; once per address "
        "family), keeping host bits, give the remote sites [site.emulator] tables, and serve DNS on port 5300",
    )
    p.add_argument("--local-site", metavar="NAME", help="the site this NetScaler is, when the file does not say")
    p.add_argument("--dns-port", metavar="PORT", type=_port, help="port of the DNS listeners made from ADNS services")
    p.add_argument("--drop-monitors", action="store_true", help="leave the monitors out (their backends do not exist in a lab)")
    p.add_argument("--location-db", metavar="CSV", help="static-proximity database (cidr,lat,lon lines) to name in [appliance]")
    p.add_argument("--strict", action="store_true", help="write nothing and exit 1 if any line is not imported faithfully")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the options accepted because they have no effect on answers")
    return p


def main(argv: Optional[Sequence[str]] = None, stdout: TextIO = None, stderr: TextIO = None) -> int:
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    args = parser().parse_args(argv)
    path = args.config
    shown = "<stdin>" if path == "-" else path

    def error(message: str) -> int:
        stderr.write(f"{PROG}: {message}\n")
        return 1

    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        return error(f"{shown}: cannot be read ({e.strerror})")
    if args.output is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        return error(f"{args.output}: its directory does not exist")

    options = ImportOptions(
        rebase=tuple(args.rebase),
        localSite=args.local_site,
        dnsPort=args.dns_port,
        dropMonitors=args.drop_monitors,
        locationDB=args.location_db,
        source=os.path.basename(shown),
    )
    try:
        result = importConfig(decode(data), options)
        text = render(result.document)
    except NSConfigError as e:
        return error(e.located(shown))
    except Exception as e:  # a bug: say so plainly rather than with a traceback
        return error(f"{shown}: internal error ({type(e).__name__}: {e}); please report it with the file")

    problem = check(text, args.output or os.path.join(os.getcwd(), "topology.toml"))
    if problem is not None:
        return error(f"{shown}: the imported topology does not load: {problem}")

    for note in result.unsupported:
        stderr.write(f"{shown}:{note.line}: unsupported: {note.describe()}\n")
    if args.verbose:
        for note in result.ignored:
            stderr.write(f"{shown}:{note.line}: ignored: {note.describe()}\n")
    if args.strict and result.unsupported:
        return error(f"{shown}: {len(result.unsupported)} items not imported faithfully (listed above); --strict: nothing written")

    if args.output is None:
        stdout.write(text)
        stdout.flush()
        where = "standard output"
    else:
        try:
            writeAtomically(args.output, text)
        except OSError as e:
            return error(f"{args.output}: cannot be written ({e.strerror})")
        where = args.output
    stderr.write(f"{PROG}: wrote {where}: {summary(result)}\n")
    return 0


def check(text: str, path: str) -> Optional[str]:
    """Why the project's loader refuses C{text} (as if read from C{path}), or None."""
    from gslb_twisted.config import ConfigError, parseTopology

    try:
        parseTopology(tomllib.loads(text), path)
    except tomllib.TOMLDecodeError as e:
        return f"not valid TOML ({e})"
    except ConfigError as e:
        return str(e)
    return None


def summary(result: ImportResult) -> str:
    counts = result.counts
    parts = [
        f"{counts['sites']} sites, {counts['services']} services, {counts['vservers']} vservers, {counts['zones']} zones",
        f"{len(result.unsupported)} items not imported as on the NetScaler (listed)",
        f"{sum(result.nonGSLB.values())} non-GSLB commands ignored",
    ]
    if result.rebased:
        parts.append(f"{len(result.rebased)} addresses rebased")
    return "; ".join(parts)


def writeAtomically(path: str, text: str) -> None:
    """Write through a temporary file renamed into place: never half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".gslb-import-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
