"""
The interactive console: prompt-toolkit on asyncio (C{prompt_async} under
C{patch_stdout}), over one control connection that L{console.link.Link}
keeps up.

The prompt completes the grammar and the names the endpoint knows; the
bottom toolbar shows the endpoint's live state (cores up, sites up and
down, queries per second, the control endpoint; "disconnected — retrying"
while it is away); the events the endpoint pushes are printed above the
prompt as they come, without disturbing the line being typed; C{watch}
redraws its command's result in place until Ctrl-C (or q).

Twisted runs on the asyncio reactor (installed by L{console.main.main});
this module awaits Twisted's Deferreds through C{Deferred.asFuture}.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any, Callable, Optional, Union

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.filters import is_done
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style
from twisted.internet import defer

from console.commands import (
    ENTITY_SOURCES,
    RED,
    YELLOW,
    CommandError,
    Invocation,
    completions,
    entityNames,
    helpText,
    paint,
    parse,
    render,
)
from console.link import Link
from console.live import TOOLBAR, eventLine, toolbar, toolbarFields
from console.main import EXIT_OK, EXIT_UNREACHABLE, WATCH_INTERVAL, reason, unreachable
# The toolbar is redrawn this often (and whenever an event changes it).
TOOLBAR_REFRESH = 0.5
# The names to complete are asked again this often while none came.
NAMES_RETRY = 5.0

STYLE = Style.from_dict({
    "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
    "toolbar.good": "#5fd75f bold",
    "toolbar.bad": "#ff5f5f bold",
    "toolbar.warn": "#ffd75f bold",
    "toolbar.separator": "#808080",
    "toolbar.endpoint": "#87afd7",
    "watch.header": "bold",
})

# What `help` adds at the prompt.
KEYS = ("Keys: Tab completes (commands, names, options, values); Ctrl-R searches the history; "
        "Ctrl-C clears the line; q or Ctrl-C ends a watch; Ctrl-D or quit leaves.")

# What L{Console.execute} returns for `quit`.
QUIT = object()


def historyPath(environ: Optional[dict] = None) -> str:
    """
    Where the prompt's history is kept: C{$XDG_STATE_HOME/gslb-twisted/history},
    by default C{~/.local/state/gslb-twisted/history} (a relative
    C{XDG_STATE_HOME} is ignored, as the XDG specification says).
    """
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = environ.get("HOME") or os.path.expanduser("~")
        state = os.path.join(home, ".local", "state")
    return os.path.join(state, "gslb-twisted", "history")


def openHistory(path: str) -> History:
    """The history file at C{path} (its directory made, private); in memory when it cannot be written."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


class GrammarCompleter(Completer):
    """
    Tab completion read off the grammar (L{console.commands.completions}),
    with the names the endpoint knows now: C{entities} is a table of names
    by kind, or a function returning the current one.
    """

    def __init__(self, entities: Union[dict, Callable[[], dict], None] = None) -> None:
        self.entities = entities

    def get_completions(self, document, complete_event):
        entities = self.entities() if callable(self.entities) else self.entities
        for suggestion in completions(document.text_before_cursor, entities or {}):
            yield Completion(suggestion.text, -suggestion.replace, display_meta=suggestion.meta or None)


async def collectEntities(call: Callable[..., defer.Deferred]) -> dict[str, list[str]]:
    """
    The names of the endpoint's sites, services, vservers, domains,
    networks and scenarios, for Tab completion, asked with C{call(command)}
    (a Twisted coroutine: it awaits Deferreds).  A command the endpoint
    does not know is skipped.
    """
    rows: dict[str, list[dict]] = {}
    for kind, command in ENTITY_SOURCES:
        if kind in rows:
            continue
        try:
            result = await call(command)
        except Exception:
            # Not a command of this endpoint, or no core answered.
            continue
        rows[kind] = list(result.get("rows") or [])
    return entityNames(rows)


def useColour(setting: str, asJSON: bool, stream) -> bool:
    """
    Colour the states? C{always}, C{never}, or (C{auto}) only for a human at
    a terminal: never with --json, into a pipe or a file, or with C{NO_COLOR} set.
    """
    if asJSON or setting == "never":
        return False
    if setting == "always":
        return True
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Console:
    """
    One interactive session with a control endpoint.

    @ivar link: the connection (a L{Link}, or a test's fake with C{start},
        C{stop} and C{call}); this console is its listener.
    @ivar out: where results and events are printed (default: the
        C{sys.stdout} of the moment, which C{patch_stdout} redirects above
        the prompt).
    """

    def __init__(self, reactor, arguments, link=None, input=None, output=None, history: Optional[History] = None,
                 out=None, err=None, colour: Optional[bool] = None, handleSignals: bool = True) -> None:
        self.reactor = reactor
        self.control = arguments.connect
        self.asJSON = bool(getattr(arguments, "json", False))
        self.wait = bool(getattr(arguments, "wait", False))
        self.link = link if link is not None else Link(reactor, arguments.connect, self)
        self.input, self.output = input, output
        self.history = history
        self._out, self._err = out, err
        if colour is None:
            colour = useColour(getattr(arguments, "color", "auto"), self.asJSON, out or sys.stdout)
        self.colour = colour
        self.handleSignals = handleSignals
        self.online = False
        self.everConnected = False
        self.state: Optional[dict] = None
        self.entities: dict[str, list[str]] = {}
        self.session: Optional[PromptSession] = None
        self.watching: Optional[Application] = None
        self._refreshing: Optional[asyncio.Future] = None
        self.namesWanted = False
        self._askedAt: Optional[float] = None

    # -- output -----------------------------------------------------------------------

    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def err(self):
        return self._err or sys.stderr

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """An error, in one line (red for a human)."""
        self.say(paint(text, RED if self.colour else None))

    def invalidate(self) -> None:
        for app in (self.session.app if self.session else None, self.watching):
            if app is not None and app.is_running:
                app.invalidate()

    # -- the link's listener ----------------------------------------------------------

    def connected(self, state: Optional[dict]) -> None:
        again = self.everConnected
        self.online = True
        self.everConnected = True
        self.state = dict(state) if isinstance(state, dict) else None
        if again:
            self.say(paint(f"reconnected to {self.control}", YELLOW if self.colour else None))
        self.invalidate()
        self.namesWanted, self._askedAt = True, None
        self.askNames()

    def askNames(self) -> None:
        """
        Ask the endpoint for the names to complete, once it can tell: an
        appliance whose cores are all still starting cannot (it is asked
        again when the toolbar says a core is up).
        """
        if not self.namesWanted or (self._refreshing is not None and not self._refreshing.done()):
            return
        if (self.state or {}).get("cores_up") == 0:
            return
        now = asyncio.get_running_loop().time()
        if self._askedAt is not None and now - self._askedAt < NAMES_RETRY:
            return
        self._askedAt = now
        self._refreshing = asyncio.ensure_future(self.refreshEntities())

    def disconnected(self) -> None:
        self.online = False
        self.say(paint(f"connection to {self.control} lost — retrying", RED if self.colour else None))
        self.invalidate()

    def event(self, event: dict) -> None:
        if not isinstance(event, dict):
            return
        if event.get("kind") == TOOLBAR:
            self.state = {**(self.state or {}), **toolbarFields(event)}
            self.invalidate()
            self.askNames()
            return
        self.say(eventLine(event, self.colour))

    async def refreshEntities(self) -> None:
        """The names to complete, asked again (after each connection)."""
        try:
            names = await self.wait_(defer.Deferred.fromCoroutine(collectEntities(self.link.call)))
        except Exception:
            return
        if names:
            self.entities = names
            self.namesWanted = False

    # -- what the prompt shows --------------------------------------------------------

    def toolbar(self):
        return toolbar(self.state, self.online, self.control)

    def prompt(self) -> str:
        state = self.state or {}
        return "site> " if "services_up" in state or "appliances_connected" in state else "gslb> "

    def makeSession(self) -> PromptSession:
        """
        The prompt: history in a file (Ctrl-R searches it: prompt-toolkit's
        Emacs bindings), Tab completion, the live toolbar.
        """
        return PromptSession(
            history=self.history if self.history is not None else openHistory(historyPath()),
            completer=GrammarCompleter(lambda: self.entities),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            refresh_interval=TOOLBAR_REFRESH,
            style=STYLE,
            input=self.input,
            output=self.output,
        )

    # -- running ----------------------------------------------------------------------

    @staticmethod
    def wait_(d: defer.Deferred):
        """A Deferred, as something asyncio can await."""
        return d.asFuture(asyncio.get_running_loop())

    async def run(self) -> int:
        if self.wait:
            self.say(f"waiting for {self.control} to answer (Ctrl-C gives up)")
        try:
            await self.wait_(self.link.start(self.wait))
        except Exception as e:
            self.err.write(unreachable(self.control, e))
            return EXIT_UNREACHABLE
        self.session = self.makeSession()
        try:
            if self._out is None:
                # Output (results, events) goes above the prompt, colours intact.
                with patch_stdout(raw=True):
                    return await self.loop()
            return await self.loop()
        finally:
            await self.wait_(self.link.stop())

    async def loop(self) -> int:
        while True:
            try:
                line = await self.session.prompt_async(self.prompt)
            except KeyboardInterrupt:
                # Ctrl-C forgets the line, as a shell does; Ctrl-D leaves.
                continue
            except EOFError:
                return EXIT_OK
            if await self.execute(line) is QUIT:
                return EXIT_OK

    async def execute(self, line: str):
        """Run one line: a command of the endpoint, help, watch or quit."""
        if not line.strip():
            return None
        try:
            invocation = parse(line)
            command = invocation.command
            if command.amp is None:
                if command.words == ("quit",):
                    return QUIT
                if command.words == ("help",):
                    topic = invocation.arguments.get("topic", "")
                    self.say(helpText(topic) + ("" if topic else "\n" + KEYS))
                return None
        except CommandError as e:
            self.error(str(e))
            return None
        if invocation.settings.get("watch"):
            await self.watch(invocation, line)
        else:
            await self.interruptible(self.call(invocation))
        return None

    async def interruptible(self, coroutine) -> None:
        """Run C{coroutine}; Ctrl-C (SIGINT) while it runs ends it, not the console."""
        task = asyncio.ensure_future(coroutine)
        loop = asyncio.get_running_loop()
        installed = False
        previous = signal.getsignal(signal.SIGINT)
        if self.handleSignals:
            try:
                loop.add_signal_handler(signal.SIGINT, task.cancel)
                installed = True
            except (ValueError, RuntimeError, NotImplementedError):
                # Not the main thread, or a loop without signal support
                # (Windows): Ctrl-C then stops the console, not the command.
                pass
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            self.say("interrupted")
        finally:
            if installed:
                # As prompt-toolkit does: the handler before ours (the reactor's) again.
                loop.remove_signal_handler(signal.SIGINT)
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)

    async def call(self, invocation: Invocation) -> None:
        """Call the command (C{-ntimes N}: N times, once per consolidation round) and print each result."""
        command = invocation.command
        times = invocation.settings.get("ntimes", 1)
        for done in range(times):
            try:
                result = await self.wait_(self.link.call(command.amp, **invocation.arguments))
            except Exception as e:
                self.error(f"{command.name}: {reason(e)}")
                return
            text = render(invocation, result, self.asJSON, self.colour)
            self.say(("\n" if done and not self.asJSON else "") + text)
            if done + 1 < times:
                await asyncio.sleep(result.get("interval") or WATCH_INTERVAL)

    async def watch(self, invocation: Invocation, line: str) -> None:
        """
        C{watch COMMAND}: the command's result, redrawn in place every
        second (a prompt-toolkit application under the prompt's place, the
        toolbar below it) until Ctrl-C, q or Escape.  Events still print
        above it.
        """
        frame: dict[str, Any] = {"text": "", "stamp": "", "error": None}
        command = invocation.command

        def header():
            hint = "" if app.is_done else "    (q or Ctrl-C to stop)"
            return [("class:watch.header", f"Every {WATCH_INTERVAL:g}s: {line.strip()}"),
                    ("", f"    {frame['stamp']}{hint}")]

        bindings = KeyBindings()

        @bindings.add("c-c")
        @bindings.add("q")
        @bindings.add("escape", eager=True)
        def stop(event) -> None:
            event.app.exit()

        app: Application = Application(
            layout=Layout(HSplit([
                Window(FormattedTextControl(header), height=1),
                Window(FormattedTextControl(lambda: ANSI(frame["text"])), wrap_lines=False),
                # The toolbar, as under the prompt; gone once the watch ends.
                ConditionalContainer(
                    Window(FormattedTextControl(self.toolbar), height=1, style="class:bottom-toolbar"),
                    filter=~is_done,
                ),
            ])),
            key_bindings=bindings,
            style=STYLE,
            input=self.input,
            output=self.output,
            refresh_interval=TOOLBAR_REFRESH,
        )

        async def refresh() -> None:
            while True:
                try:
                    result = await self.wait_(self.link.call(command.amp, **invocation.arguments))
                except Exception as e:
                    frame["error"] = f"{command.name}: {reason(e)}"
                    app.exit()
                    return
                frame["text"] = render(invocation, result, self.asJSON, self.colour)
                frame["stamp"] = time.strftime("%H:%M:%S")
                app.invalidate()
                await asyncio.sleep(WATCH_INTERVAL)

        refreshing: list[asyncio.Future] = []
        self.watching = app
        try:
            await app.run_async(pre_run=lambda: refreshing.append(asyncio.ensure_future(refresh())))
        finally:
            self.watching = None
            for task in refreshing:
                task.cancel()
        if frame["error"]:
            self.error(frame["error"])
