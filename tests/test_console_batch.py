"""
C{gslb-console -f FILE}: a script of commands, over one connection, with a
fake endpoint; and the real command's exits when nothing listens.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from argparse import Namespace

from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from console import main
from gslb_twisted.protocol.commands import (
    DisableService,
    NoSuchEntity,
    Resolve,
    ShowCores,
    ShowSites,
)
from tests.support import CONSOLE
from tests.test_console_site import _Endpoint

SITES = [{"name": "east", "ip": "127.0.0.2", "state": "UP"}]
CORES = [{"core": 0, "pid": 10, "state": "up", "queries": 5, "restarts": 0}]
ANSWERS = {
    ShowSites: {"rows": SITES},
    ShowCores: {"cores": CORES},
    DisableService: {"result": {"name": "east-web", "enabled": False, "cores": [0, 1]}},
    Resolve: {"result": {"name": "www.test.gslb", "qtype": "A", "answer": ["198.51.100.10"], "rcode": "NOERROR",
                         "core": 0, "method": "ROUNDROBIN", "candidates": [], "excluded": []}},
}

SCRIPT = """\
# Take east-web out and look at the answer.
show gslb site
disable gslb service east-web   # on every core

resolve www.test.gslb
"""


class BatchTests(SynchronousTestCase):
    def run_(self, script, answers=ANSWERS, keepGoing=False, asJSON=False, connect=None):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(script)
        self.endpoint = _Endpoint(answers)
        self.connections = 0

        async def connected(reactor, description):
            self.connections += 1
            if connect is not None:
                raise connect
            return self.endpoint

        self.patch(main, "_connect", connected)
        out, err = io.StringIO(), io.StringIO()
        arguments = Namespace(file=path, connect="unix:x", json=asJSON, keep_going=keepGoing, command=None)
        code = self.successResultOf(defer.Deferred.fromCoroutine(main.runBatch(None, arguments, out, err)))
        self.path = path
        return code, out.getvalue(), err.getvalue()

    def test_runsEveryCommandInOrderOverOneConnection(self):
        code, out, err = self.run_(SCRIPT)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual([c for c, _ in self.endpoint.calls], [ShowSites, DisableService, Resolve])
        self.assertEqual(self.endpoint.calls[1][1], {"name": "east-web"})
        self.assertEqual(self.connections, 1)
        # Each result after its command, as NetScaler's batch shows them.
        blocks = out.split("\n\n")
        self.assertEqual(len(blocks), 3)
        self.assertTrue(blocks[0].startswith("> show gslb site\nNAME"))
        self.assertEqual(blocks[1], "> disable gslb service east-web\nservice east-web: disabled; applied by cores 0, 1")
        self.assertTrue(blocks[2].startswith("> resolve www.test.gslb\nwww.test.gslb A"))

    def test_jsonOneDocumentPerCommand(self):
        code, out, err = self.run_(SCRIPT, asJSON=True)
        self.assertEqual(code, 0)
        decoder, documents, text = json.JSONDecoder(), [], out.strip()
        while text:
            document, end = decoder.raw_decode(text)
            documents.append(document)
            text = text[end:].strip()
        self.assertEqual(documents[0], SITES)
        self.assertEqual(documents[2]["answer"], ["198.51.100.10"])

    def test_stopsAtTheFirstError(self):
        answers = {**ANSWERS, DisableService: NoSuchEntity("no such service east-web")}
        code, out, err = self.run_(SCRIPT, answers)
        self.assertEqual(code, main.EXIT_COMMAND_ERROR)
        self.assertEqual(err, f"gslb-console: {self.path}:3: disable gslb service: no such service east-web\n")
        self.assertEqual([c for c, _ in self.endpoint.calls], [ShowSites, DisableService])

    def test_keepGoing(self):
        answers = {**ANSWERS, DisableService: NoSuchEntity("no such service east-web")}
        code, out, err = self.run_(SCRIPT, answers, keepGoing=True)
        self.assertEqual(code, main.EXIT_COMMAND_ERROR)
        self.assertEqual([c for c, _ in self.endpoint.calls], [ShowSites, DisableService, Resolve])
        self.assertIn("198.51.100.10", out)

    def test_aMistakeAnywhereRunsNothing(self):
        code, out, err = self.run_(SCRIPT + "show gslb sitez\n")
        self.assertEqual((code, out), (main.EXIT_USAGE, ""))
        self.assertEqual(err, f"gslb-console: {self.path}:6: unknown command 'show gslb sitez'; "
                              "did you mean 'show gslb site'?\n")
        self.assertEqual((self.endpoint.calls, self.connections), ([], 0))

    def test_keepGoingSkipsTheMistake(self):
        code, out, err = self.run_("show gslb sitez\nshow cores\n", keepGoing=True)
        self.assertEqual(code, main.EXIT_USAGE)
        self.assertEqual([c for c, _ in self.endpoint.calls], [ShowCores])
        self.assertIn(":1: unknown command", err)

    def test_quitEndsTheScript(self):
        code, out, err = self.run_("show cores\nquit\nshow gslb site\n")
        self.assertEqual(code, 0)
        self.assertEqual([c for c, _ in self.endpoint.calls], [ShowCores])

    def test_helpAndCommentsOnly(self):
        code, out, err = self.run_("# nothing but help\nhelp stop\n")
        self.assertEqual((code, err, self.connections), (0, "", 0))
        self.assertIn("stop scenario", out)

    def test_unreachable(self):
        code, out, err = self.run_(SCRIPT, connect=ConnectionRefusedError())
        self.assertEqual((code, out), (main.EXIT_UNREACHABLE, ""))
        self.assertEqual(err, "gslb-console: cannot connect to unix:x: connection refused (is the appliance running?)\n")

    def test_unreadable(self):
        out, err = io.StringIO(), io.StringIO()
        arguments = Namespace(file="/nonexistent/script", connect="unix:x", json=False, keep_going=False)
        code = self.successResultOf(defer.Deferred.fromCoroutine(main.runBatch(None, arguments, out, err)))
        self.assertEqual(code, main.EXIT_USAGE)
        self.assertEqual(err.getvalue(), "gslb-console: cannot read /nonexistent/script: No such file or directory\n")

    def test_standardInput(self):
        self.patch(main, "_connect", self._connectTo(_Endpoint(ANSWERS)))
        out, err = io.StringIO(), io.StringIO()
        arguments = Namespace(file="-", connect="unix:x", json=True, keep_going=False)
        code = self.successResultOf(defer.Deferred.fromCoroutine(
            main.runBatch(None, arguments, out, err, stdin=io.StringIO("show cores\n"))))
        self.assertEqual((code, json.loads(out.getvalue())), (0, CORES))

    def _connectTo(self, endpoint):
        async def connect(reactor, description):
            return endpoint

        return connect

    def test_readScript(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("  # comment\n\nshow cores  # trailing\n\tstat dns\n")
        self.assertEqual(main.readScript(path), [(3, "show cores"), (4, "stat dns")])


class ConnectReasonTests(SynchronousTestCase):
    def test_oneLine(self):
        self.assertEqual(main.connectReason(ConnectionRefusedError()), "connection refused")
        self.assertEqual(main.connectReason(ConnectError("2", "No such file or directory.")),
                         "no such file or directory")
        self.assertEqual(main.connectReason(ConnectError(osError=13)), "permission denied")


class CommandLineTests(TestCase):
    """The installed command, when nothing listens or the endpoint is not one."""

    timeout = 60

    async def console(self, *arguments, stdin=None):
        out, err, code = await getProcessOutputAndValue(CONSOLE, list(arguments), env=dict(os.environ))
        return code, out.decode(), err.decode()

    async def test_nothingListens(self):
        # A short path: the checkout (and so mktemp) may be deep enough for
        # a unix socket address to overflow, which test_pathTooLong covers.
        directory = tempfile.mkdtemp(prefix="gslb-")
        self.addCleanup(os.rmdir, directory)
        missing = os.path.join(directory, "missing.ctl")
        for mode in (["-c", "show cores"], ["-f", "/dev/null"], []):
            code, out, err = await self.console("--connect", "unix:" + missing, *mode)
            if mode == ["-f", "/dev/null"]:
                # An empty script needs no connection.
                self.assertEqual((code, err), (0, ""))
                continue
            self.assertEqual(code, 3, err)
            self.assertEqual(err, f"gslb-console: cannot connect to unix:{missing}: no such file or directory "
                                  "(is the appliance running?)\n")

    async def test_pathTooLong(self):
        """
        A unix path longer than a socket address holds is refused by name,
        before any connection attempt (Twisted would report a bogus timeout).
        """
        path = "/tmp/" + "d" * 120 + ".ctl"
        code, out, err = await self.console("--connect", "unix:" + path, "-c", "show cores")
        self.assertEqual(code, 2)
        self.assertEqual(err, f"gslb-console: --connect unix:{path}: socket path is 129 bytes, longer than "
                              "the 107 a unix socket address holds; use a shorter (for example relative) path\n")

    async def test_notAnEndpoint(self):
        code, out, err = await self.console("--connect", "bogus:x", "-c", "show cores")
        self.assertEqual(code, 2)
        self.assertEqual(len(err.splitlines()), 1)
        self.assertIn("--connect bogus:x: not a client endpoint", err)

    async def test_cAndFExclusive(self):
        code, out, err = await self.console("-c", "show cores", "-f", "x")
        self.assertEqual(code, 2)
        self.assertIn("not allowed with argument", err)
