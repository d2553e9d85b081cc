"""
The real interactive console in a pseudo-terminal (pexpect), against a
real 2-core appliance with one emulated site: Tab completion, tables with
coloured states, a change seen in C{resolve}, a pushed "site DOWN" event
printed above the prompt without losing the line being typed, and the
reconnection after the appliance restarts.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Optional

from twisted.internet import threads
from twisted.trial.unittest import SkipTest, TestCase

from tests.support import CONSOLE, Appliance, SiteProcess, freePort, poll

try:
    import pexpect
except ImportError:  # pragma: no cover - the test extra installs it
    pexpect = None

# The site (127.0.0.2) has the lower address: it dials the appliance.
TOPOLOGY = """
[appliance]
name = "consoletest"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
mep_secret = "s3cret"
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
mep_port = EAST_PORT
  [site.emulator]

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "east-api"
site = "east"
ip = "192.0.2.11"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
lb_method = "ROUNDROBIN"
answers = 2
services = ["east-web", "east-api"]
"""

# Escape sequences a terminal acts on (colours, cursor moves, modes), and
# the carriage returns: what is left is the text a person reads.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\r")


def readable(raw: str) -> str:
    return _ESCAPES.sub("", raw)


class Terminal:
    """
    gslb-console in a pseudo-terminal: what it wrote (raw, and as text),
    waiting for text with a deadline.  Runs in a thread of its own.
    """

    def __init__(self, control: str, home: str) -> None:
        environment = dict(os.environ)
        environment.update(TERM="xterm-256color", XDG_STATE_HOME=home, COLUMNS="160", LINES="50")
        environment.pop("NO_COLOR", None)
        self.child = pexpect.spawn(CONSOLE, ["--connect", control], env=environment, dimensions=(50, 160),
                                   encoding="utf-8", codec_errors="replace", timeout=30)
        self.raw = ""
        self.mark = 0

    def read(self) -> None:
        try:
            while True:
                data = self.child.read_nonblocking(65536, timeout=0.05)
                self.raw += data
                # Answer its cursor position requests as a terminal does
                # (prompt-toolkit draws the bottom toolbar once it knows
                # how much room there is): at the top of an empty screen.
                for _ in range(data.count("\x1b[6n")):
                    self.child.send("\x1b[1;1R")
        except pexpect.TIMEOUT:
            pass

    def text(self, since: Optional[int] = None) -> str:
        return readable(self.raw[self.mark if since is None else since:])

    def waitFor(self, pattern: str, deadline: float = 30.0, what: str = "") -> re.Match:
        """Wait until the text written since the last L{send} matches C{pattern}."""
        end = time.monotonic() + deadline
        while True:
            self.read()
            found = re.search(pattern, self.text())
            if found:
                return found
            if time.monotonic() > end or not self.child.isalive():
                raise AssertionError(f"timed out waiting for {what or pattern!r}; the console wrote:\n{self.text()}")

    def send(self, keys: str) -> None:
        self.read()
        self.mark = len(self.raw)
        self.child.send(keys)

    def save(self, path: str) -> None:
        """What it wrote, raw, for whoever reads a failure (C{less -R} shows it)."""
        with open(path, "w") as f:
            f.write(self.raw)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


class ConsoleEndToEndTests(TestCase):
    timeout = 180

    def setUp(self):
        if pexpect is None:
            if os.environ.get("CI") == "true":
                self.fail("pexpect is missing: CI installs the test extra (pip install -e '.[test]')")
            raise SkipTest("pexpect is not installed (pip install -e '.[test]'): the console's end-to-end test needs it")

    async def test_aSessionWithTheAppliance(self):
        text = TOPOLOGY.replace("EAST_PORT", str(freePort("127.0.0.2")))
        appliance = Appliance(self, text, cores=2)
        site = SiteProcess(self, appliance.config, "east")
        site.start()
        appliance.start()
        await appliance.waitUntilServing()

        async def siteUp():
            rows = await appliance.console("show gslb site")
            return rows[0]["state"] == "UP"

        await poll(siteUp, 30, what="site east to be UP")
        home = os.path.abspath(self.mktemp())
        terminal = Terminal(appliance.control, home)
        self.addCleanup(terminal.close)
        self.addCleanup(terminal.save, os.path.join(appliance.directory, "console.typescript"))
        restarted: list[Appliance] = []

        def session():
            # The prompt, and the toolbar the appliance feeds.
            terminal.waitFor(r"gslb>", what="the prompt")
            terminal.waitFor(r"cores 2/2 up \| sites 1 up, 0 down \| [-0-9.]+ q/s", what="the toolbar")

            # Tab completes the command, then the service's name.
            # (The terminal is sent what changes on the screen: "te" after
            # the Tab; the whole line once it is entered.)
            terminal.send("show gslb si")
            terminal.waitFor(r"show gslb si")
            terminal.send("\t")
            terminal.waitFor(r"^te", what="the completion of 'show gslb si'")
            terminal.send("\r")
            terminal.waitFor(r"gslb> show gslb site\n", what="the line completed")
            table = terminal.waitFor(r"NAME +IP +STATE.*MASTER_CORE[^\n]*\n(east[^\n]*)\n", what="show gslb site")
            self.assertEqual(table.group(1).split()[:3], ["east", "127.0.0.2", "UP"])
            # UP in green: a person at a terminal.
            self.assertIn("\x1b[32mUP\x1b[0m", terminal.raw[terminal.mark:])

            terminal.send("resolve www.test.gslb\r")
            answer = terminal.waitFor(r"www\.test\.gslb A(?: from \S+)?, core \d: NOERROR ([0-9. ]+)\n", what="the answer")
            self.assertEqual(sorted(answer.group(1).split()), ["192.0.2.10", "192.0.2.11"])

            terminal.send("disable gslb service east-w")
            terminal.waitFor(r"east-w")
            terminal.send("\t")
            terminal.waitFor(r"^eb", what="the completion of the service's name")
            terminal.send("\r")
            terminal.waitFor(r"gslb> disable gslb service east-web\n", what="the line completed")
            terminal.waitFor(r"service east-web: disabled; applied by cores 0, 1")

            terminal.send("resolve www.test.gslb\r")
            answer = terminal.waitFor(r"www\.test\.gslb A(?: from \S+)?, core \d: NOERROR ([0-9. ]+)\n(?:.*\n)*?excluded:\n(?:.*\n)*?"
                                      r"east-web +disabled", what="the answer without east-web")
            self.assertEqual(answer.group(1).split(), ["192.0.2.11"])

            # Half a command typed, the site dies: the event prints above
            # the prompt, and the line typed is still there to finish.
            terminal.send("show co")
            terminal.waitFor(r"show co")
            os.kill(site.pid, signal.SIGKILL)
            event = terminal.waitFor(r"(\d\d:\d\d:\d\d) site east is DOWN \(([^)]*)\)", what="the pushed site DOWN event")
            terminal.waitFor(r"DOWN[^\n]*\n(?:.*\n)*.*gslb> show co", what="the prompt and the line typed, again")
            terminal.send("res\r")
            terminal.waitFor(r"CORE +PID +STATE", what="show cores, typed across the event")
            # (Only the figures that changed are redrawn.)
            terminal.waitFor(r"sites 0 up, 1 down|0 up,? ?1 down", what="the toolbar with the site down")
            return event.group(0)

        await threads.deferToThread(session)

        # The appliance restarts: the console says so, retries, and is back.
        await appliance.stop()
        await threads.deferToThread(terminal.waitFor, r"connection to unix:\S+ lost — retrying")
        await threads.deferToThread(terminal.waitFor, r"disconnected — retrying")
        again = Appliance(self, text, cores=2)
        # The same appliance (its topology, ports and control socket); its log in a directory of its own.
        again.args = appliance.args
        again.port, again.control, again.config = appliance.port, appliance.control, appliance.config
        again.start()
        restarted.append(again)
        await threads.deferToThread(terminal.waitFor, r"reconnected to unix:\S+", 60)

        def afterwards():
            # Until its cores are up, the new appliance may not answer (it
            # may even drop the connection): as a person would, try again.
            for attempt in range(20):
                terminal.send("show cores\r")
                found = terminal.waitFor(r"CORE +PID +STATE[^\n]*\n(.*)\n(.*)\n|show cores: [^\n]*\n", what="show cores")
                if found.group(1) and found.group(2) and " up " in found.group(1) + " " + found.group(2) + " ":
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"show cores never answered after the restart:\n{terminal.text()}")
            terminal.send("quit\r")
            terminal.child.expect(pexpect.EOF, timeout=15)
            terminal.child.close()
            return terminal.child.exitstatus

        self.assertEqual(await threads.deferToThread(afterwards), 0)
        # The session's lines are in the history file, under the state directory.
        with open(os.path.join(home, "gslb-twisted", "history")) as f:
            history = f.read()
        self.assertIn("+disable gslb service east-web\n", history)
        self.assertIn("+show gslb site\n", history)
        self.assertNotIn("Traceback", terminal.text(0))
