"""
C{gslb-console}: talk to a running appliance's control endpoint.

C{-c COMMAND} runs one command, prints its result and exits (non-zero on
error); without it, an interactive prompt (prompt-toolkit on asyncio, the
Twisted asyncio reactor bridging the AMP connection).
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
        help="control endpoint (default: %(default)s, or $GSLB_CONTROL)",
    )
    parser.add_argument("-c", dest="command", help="run one command, print its result and exit")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return parser


async def _connect(reactor, description: str):
    from twisted.internet.endpoints import clientFromString, connectProtocol
    from twisted.protocols.amp import AMP

    endpoint = clientFromString(reactor, description)
    return await connectProtocol(endpoint, AMP())


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
        err.write(f"gslb-console: cannot connect to {arguments.connect}: {_reason(e)} (is the appliance running?)\n")
        return EXIT_UNREACHABLE
    try:
        with Interrupt(reactor) as interrupt:
            return await _repeat(reactor, connection, invocation, arguments, out, err, interrupt)
    finally:
        connection.transport.loseConnection()


async def _repeat(reactor, connection, invocation, arguments, out, err, interrupt: "Interrupt") -> int:
    """
    Call the command and print its result: once, C{-ntimes N} times (once
    per consolidation round), or, for C{watch}, every second until
    interrupted (Ctrl-C), which ends it normally.
    """
    from console.commands import render

    settings = invocation.settings
    watch = bool(settings.get("watch"))
    times = settings.get("ntimes", 1)
    clear = watch and not arguments.json and _isTerminal(out)
    done = 0
    while not interrupt.interrupted:
        try:
            result = await connection.callRemote(invocation.command.amp, **invocation.arguments)
        except Exception as e:
            err.write(f"gslb-console: {invocation.command.name}: {_reason(e)}\n")
            return EXIT_COMMAND_ERROR
        text = render(invocation, result, arguments.json)
        if clear:
            stamp = time.strftime("%H:%M:%S")
            text = f"{CLEAR_SCREEN}Every {WATCH_INTERVAL:g}s: {arguments.command.strip()}    {stamp}\n\n{text}"
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


def makeCompleter(entities: Optional[dict[str, list[str]]] = None):
    """
    Tab completion of the grammar's words, entity names, options and their
    values (L{console.commands.completionTree}).  Unlike prompt-toolkit's
    own L{NestedCompleter}, a word is matched whole with its dashes
    (C{--c} completes C{--core}) and in any case (C{-lbmethod} leads on
    to the methods).
    """
    from prompt_toolkit.completion import NestedCompleter, WordCompleter
    from prompt_toolkit.document import Document

    from console.commands import completionTree

    class CommandCompleter(NestedCompleter):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor.lstrip()
            stripped = len(document.text_before_cursor) - len(text)
            if " " not in text:
                words = WordCompleter(list(self.options), ignore_case=self.ignore_case, WORD=True)
                yield from words.get_completions(document, complete_event)
                return
            first = text.split()[0]
            completer = self.options.get(first)
            if completer is None:
                folded = {key.lower(): value for key, value in self.options.items()}
                completer = folded.get(first.lower())
            if completer is not None:
                remaining = text[len(first):].lstrip()
                moved = len(text) - len(remaining) + stripped
                yield from completer.get_completions(
                    Document(remaining, cursor_position=document.cursor_position - moved), complete_event
                )

    return CommandCompleter.from_nested_dict(completionTree(entities))


async def fetchEntities(reactor, description: str) -> dict[str, list[str]]:
    """
    The names of the endpoint's sites, services, vservers and domains, for
    Tab completion; empty when nothing answers (it is tried again later).
    """
    from console.commands import ENTITY_SOURCES, entityNames

    try:
        connection = await _connect(reactor, description)
    except Exception:
        return {}
    rows: dict[str, list[dict]] = {}
    try:
        for kind, command in ENTITY_SOURCES:
            if kind in rows:
                continue
            try:
                result = await connection.callRemote(command)
            except Exception:
                # Not a command of this endpoint, or no core answered.
                continue
            rows[kind] = list(result.get("rows") or [])
    finally:
        connection.transport.loseConnection()
    return entityNames(rows)


async def runInteractive(reactor, arguments) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.patch_stdout import patch_stdout
    from twisted.internet.defer import Deferred

    stateDir = os.path.join(os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "gslb-console")
    os.makedirs(stateDir, exist_ok=True)
    entities = await fetchEntities(reactor, arguments.connect)
    session = PromptSession(
        history=FileHistory(os.path.join(stateDir, "history")),
        completer=makeCompleter(entities),
    )
    with patch_stdout():
        while True:
            try:
                line = await Deferred.fromFuture(_ensureFuture(session.prompt_async("gslb> ")))
            except (EOFError, KeyboardInterrupt):
                return EXIT_OK
            line = line.strip()
            if not line:
                continue
            if line.split()[0].lower() in ("quit", "exit"):
                return EXIT_OK
            arguments.command = line
            await runOnce(reactor, arguments)
            if not entities:
                # The endpoint was not up yet: names complete once it is.
                entities = await fetchEntities(reactor, arguments.connect)
                if entities:
                    session.completer = makeCompleter(entities)


def _ensureFuture(coroutine):
    import asyncio

    return asyncio.ensure_future(coroutine)


def _reason(e: Exception) -> str:
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


def main(argv: Optional[list[str]] = None) -> int:
    arguments = argumentParser().parse_args(argv)
    import asyncio

    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import defer, task

    status: list[int] = []

    def run(reactor):
        coroutine = runOnce(reactor, arguments) if arguments.command else runInteractive(reactor, arguments)
        return defer.Deferred.fromCoroutine(coroutine).addCallback(status.append)

    try:
        task.react(run)
    except SystemExit as e:
        if e.code not in (0, None):
            return int(e.code)
    return status[0] if status else EXIT_COMMAND_ERROR


if __name__ == "__main__":
    sys.exit(main())
