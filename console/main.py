"""
C{gslb-console}: talk to a running appliance's (or site emulator's)
control endpoint.

C{-c COMMAND} runs one command, prints its result and exits (non-zero on
error); C{-f FILE} runs a script of commands, stopping at the first error
(or not, with C{--keep-going}); without either, an interactive prompt
(L{console.app}: prompt-toolkit on asyncio, the Twisted asyncio reactor
bridging the AMP connection).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Optional

DEFAULT_CONTROL = "unix:gslb.ctl"

EXIT_OK = 0
EXIT_COMMAND_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

# How often `watch` runs its command; `-ntimes` repeats once per
# consolidation round (the endpoint says how long one is), or this often.
WATCH_INTERVAL = 1.0

# Clears a terminal and puts the cursor home, before each `watch` refresh.
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def argumentParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gslb-console", description="Inspect and steer a running gslb appliance."
    )
    parser.add_argument(
        "--connect",
        default=os.environ.get("GSLB_CONTROL", DEFAULT_CONTROL),
        help="control endpoint (default: %(default)s, or $GSLB_CONTROL); a TCP endpoint wants the appliance's "
             "control_token in $GSLB_CONTROL_TOKEN",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-c", dest="command", help="run one command, print its result and exit")
    mode.add_argument("-f", dest="file", metavar="FILE",
                      help="run the commands of FILE (one a line, # starts a comment; - reads standard input), "
                           "stopping at the first error")
    parser.add_argument("--keep-going", action="store_true",
                        help="with -f: run every command even after errors (the exit status is still non-zero)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--color", "--colour", dest="color", choices=("auto", "always", "never"), default="auto",
                        help="colour the states in tables: auto (on a terminal, without --json or NO_COLOR), "
                             "always or never (default: %(default)s)")
    parser.add_argument("--wait", action="store_true",
                        help="interactive: wait for the endpoint to come up instead of exiting when nothing listens")
    return parser


async def _connect(reactor, description: str):
    from twisted.internet.endpoints import clientFromString, connectProtocol
    from twisted.protocols.amp import AMP

    from console.link import authenticate

    endpoint = clientFromString(reactor, description)
    protocol = await connectProtocol(endpoint, AMP())
    try:
        await authenticate(protocol)
    except BaseException:
        protocol.transport.loseConnection()
        raise
    return protocol


async def runOnce(reactor, arguments, out=sys.stdout, err=sys.stderr) -> int:
    """Run C{arguments.command}: parse it, call the endpoint, print the result."""
    from console.commands import CommandError, helpText, parse

    try:
        invocation = parse(arguments.command)
        if invocation.command.amp is None:
            # Local: help (quit means nothing in one-shot mode).
            if invocation.command.words == ("help",):
                out.write(helpText(invocation.arguments.get("topic", "")) + "\n")
            return EXIT_OK
    except CommandError as e:
        err.write(f"gslb-console: {e}\n")
        return EXIT_USAGE
    try:
        connection = await _connect(reactor, arguments.connect)
    except Exception as e:
        err.write(unreachable(arguments.connect, e))
        return EXIT_UNREACHABLE
    try:
        with Interrupt(reactor) as interrupt:
            return await _repeat(reactor, connection, invocation, arguments, out, err, interrupt)
    finally:
        connection.transport.loseConnection()


def unreachable(description: str, e: BaseException) -> str:
    """The one line that says nothing answers at C{description}."""
    return f"gslb-console: cannot connect to {description}: {connectReason(e)} (is the appliance running?)\n"


async def _repeat(reactor, connection, invocation, arguments, out, err, interrupt: "Interrupt",
                  line: Optional[str] = None, where: str = "") -> int:
    """
    Call the command and print its result: once, C{-ntimes N} times (once
    per consolidation round), or, for C{watch}, every second until
    interrupted (Ctrl-C), which ends it normally.
    """
    from console.app import useColour
    from console.commands import render

    settings = invocation.settings
    watch = bool(settings.get("watch"))
    times = settings.get("ntimes", 1)
    clear = watch and not arguments.json and _isTerminal(out)
    colour = useColour(getattr(arguments, "color", "auto"), arguments.json, out)
    line = arguments.command if line is None else line
    done = 0
    while not interrupt.interrupted:
        try:
            result = await connection.callRemote(invocation.command.amp, **invocation.arguments)
        except Exception as e:
            err.write(f"gslb-console: {where}{invocation.command.name}: {reason(e)}\n")
            return EXIT_COMMAND_ERROR
        text = render(invocation, result, arguments.json, colour)
        if clear:
            stamp = time.strftime("%H:%M:%S")
            text = f"{CLEAR_SCREEN}Every {WATCH_INTERVAL:g}s: {line.strip()}    {stamp}\n\n{text}"
        elif done and invocation.repeats and not arguments.json:
            text = "\n" + text
        out.write(text + "\n")
        _flush(out)
        done += 1
        if not watch and done >= times:
            break
        await interrupt.sleep(WATCH_INTERVAL if watch else (result.get("interval") or WATCH_INTERVAL))
    return EXIT_OK


class Interrupt:
    """
    While a command repeats, Ctrl-C (SIGINT) ends the repetition, not the
    console: the handler is the process's only while it lasts, and only
    with a real reactor in the main thread (a test's Clock gets none).
    """

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.interrupted = False
        self._previous = None
        self._waiting = None

    def __enter__(self) -> "Interrupt":
        if hasattr(self.reactor, "callFromThread") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._signalled)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _signalled(self, signum, frame) -> None:
        # Signal-safe: the reactor runs it in its own time.
        self.reactor.callFromThread(self.interrupt)

    def interrupt(self) -> None:
        self.interrupted = True
        if self._waiting is not None and not self._waiting.called:
            self._waiting.cancel()

    async def sleep(self, seconds: float) -> None:
        """Wait C{seconds}, or until interrupted."""
        from twisted.internet import defer, task

        self._waiting = task.deferLater(self.reactor, seconds, lambda: None)
        try:
            await self._waiting
        except defer.CancelledError:
            pass
        finally:
            self._waiting = None


def _isTerminal(out) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _flush(out) -> None:
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()


def makeCompleter(entities=None):
    """
    Tab completion of the grammar's words, entity names, options and their
    values (L{console.commands.completions}); C{entities}: the names by
    kind, or a function returning them.  A word is matched whole with its
    dashes (C{--c} completes C{--core}) and in any case (C{-lbmethod} leads
    on to the methods).
    """
    from console.app import GrammarCompleter

    return GrammarCompleter(entities)


async def fetchEntities(reactor, description: str) -> dict[str, list[str]]:
    """
    The names of the endpoint's sites, services, vservers, domains,
    networks and scenarios, for Tab completion; empty when nothing answers.
    """
    from console.app import collectEntities

    try:
        connection = await _connect(reactor, description)
    except Exception:
        return {}
    try:
        return await collectEntities(connection.callRemote)
    finally:
        connection.transport.loseConnection()


async def runInteractive(reactor, arguments) -> int:
    """The interactive console (L{console.app.Console}), until quit or Ctrl-D."""
    import asyncio

    from twisted.internet.defer import Deferred

    from console.app import Console

    return await Deferred.fromFuture(asyncio.ensure_future(Console(reactor, arguments).run()))


# --- -f FILE -----------------------------------------------------------------------


def readScript(name: str, stdin=None) -> list[tuple[int, str]]:
    """
    The commands of a script, with their line numbers: one a line, blank
    lines and comments (from C{#} to the end of the line) left out.
    C{-}: standard input.

    @raise OSError: it cannot be read.
    """
    if name == "-":
        text = (stdin or sys.stdin).read()
    else:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append((number, line))
    return lines


async def runBatch(reactor, arguments, out=sys.stdout, err=sys.stderr, stdin=None) -> int:
    """
    C{-f FILE}: every line is checked first (a script with a mistake in it
    changes nothing: exit 2, naming the line), then run in order over one
    connection, each result after an echo of its command (not with
    --json: then one JSON document per command).  The first command that
    fails stops the script with its status (1); with C{--keep-going} the
    others still run (bad lines are skipped) and the status is that of the
    first failure.  C{quit} ends the script there.
    """
    from console.commands import CommandError, helpText, parse

    name = "<stdin>" if arguments.file == "-" else arguments.file
    try:
        script = readScript(arguments.file, stdin)
    except OSError as e:
        err.write(f"gslb-console: cannot read {name}: {e.strerror or e}\n")
        return EXIT_USAGE
    keepGoing = bool(getattr(arguments, "keep_going", False))
    status = EXIT_OK
    parsed = []
    for number, line in script:
        try:
            invocation = parse(line)
            if invocation.command.words == ("help",):
                helpText(invocation.arguments.get("topic", ""))
        except CommandError as e:
            err.write(f"gslb-console: {name}:{number}: {e}\n")
            status = status or EXIT_USAGE
            continue
        parsed.append((number, line, invocation))
    if status and not keepGoing:
        return status
    connection = None
    if any(invocation.command.amp is not None for _, _, invocation in parsed):
        try:
            connection = await _connect(reactor, arguments.connect)
        except Exception as e:
            err.write(unreachable(arguments.connect, e))
            return EXIT_UNREACHABLE
    try:
        for index, (number, line, invocation) in enumerate(parsed):
            command = invocation.command
            if command.words == ("quit",):
                break
            if not arguments.json:
                out.write(("\n" if index else "") + f"> {line}\n")
            if command.amp is None:
                out.write(helpText(invocation.arguments.get("topic", "")) + "\n")
                continue
            with Interrupt(reactor) as interrupt:
                code = await _repeat(reactor, connection, invocation, arguments, out, err, interrupt,
                                     line=line, where=f"{name}:{number}: ")
            _flush(out)
            if code != EXIT_OK:
                status = status or code
                if not keepGoing:
                    break
    finally:
        if connection is not None:
            connection.transport.loseConnection()
    return status


# --- errors ------------------------------------------------------------------------


def connectReason(e: BaseException) -> str:
    """Why a connection could not be made, in a few words (C{no such file or directory})."""
    from twisted.internet import error
    from twisted.python.failure import Failure

    if isinstance(e, Failure):
        e = e.value
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, error.ConnectError):
        os_error = getattr(e, "osError", None)
        if isinstance(os_error, int):
            return os.strerror(os_error).lower()
        if e.args and isinstance(e.args[0], str) and e.args[0].strip():
            # Twisted's ("2", "No such file or directory") or ("ENOENT: ...").
            return e.args[0].split(": ", 1)[-1].strip().rstrip(".").lower()
        message = str(e).split(": ", 1)[-1].rstrip(".")
        return message.split(": ")[-1].lower() or type(e).__name__
    return reason(e)


def reason(e: BaseException) -> str:
    """One line for an error: the remote message, without AMP's wrapping."""
    from twisted.protocols import amp
    from twisted.python.failure import Failure

    if isinstance(e, Failure):
        e = e.value
    if isinstance(e, amp.UnhandledCommand):
        return "not a command of this endpoint (an appliance and a site emulator know different commands)"
    if isinstance(e, amp.RemoteAmpError):
        description = e.description
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        if e.errorCode == amp.UNHANDLED_ERROR_CODE or "Unhandled Command" in str(description):
            return "not a command of this endpoint (an appliance and a site emulator know different commands)"
        return str(description)
    if isinstance(e, (KeyError, ValueError)) and e.args:
        # A known error of the command: its message as the remote side wrote it.
        message = e.args[0]
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        return str(message)
    return str(e) or type(e).__name__


_reason = reason  # the name other modules' tests use


def main(argv: Optional[list[str]] = None) -> int:
    arguments = argumentParser().parse_args(argv)
    import asyncio

    from twisted.internet import asyncioreactor

    # The reactor's loop is asyncio's loop of this thread, from the start
    # (prompt-toolkit's tasks are created before the reactor runs it).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import defer, task
    from twisted.internet.endpoints import clientFromString

    try:
        clientFromString(task.Clock(), arguments.connect)
    except (ValueError, TypeError, KeyError) as e:
        sys.stderr.write(f"gslb-console: --connect {arguments.connect}: not a client endpoint ({e}); "
                         "for example unix:gslb.ctl or tcp:127.0.0.1:PORT\n")
        return EXIT_USAGE
    from gslb_twisted.endpoints import unixPathProblem

    problem = unixPathProblem(arguments.connect)
    if problem is not None:
        sys.stderr.write(f"gslb-console: --connect {arguments.connect}: {problem}\n")
        return EXIT_USAGE

    status: list[int] = []

    def run(reactor):
        if arguments.command is not None:
            coroutine = runOnce(reactor, arguments)
        elif arguments.file is not None:
            coroutine = runBatch(reactor, arguments)
        else:
            coroutine = runInteractive(reactor, arguments)
        return defer.Deferred.fromCoroutine(coroutine).addCallback(status.append)

    try:
        task.react(run)
    except SystemExit as e:
        if e.code not in (0, None):
            return int(e.code)
    return status[0] if status else EXIT_COMMAND_ERROR


if __name__ == "__main__":
    sys.exit(main())
