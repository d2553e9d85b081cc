"""
The real appliance: C{twistd -n gslb} as a subprocess with two cores, real
DNS queries over real sockets, real processes killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from twisted.internet import defer, reactor, threads
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from tests.support import CONSOLE, TOPOLOGY, TWISTD, Appliance, addresses, alive, freePort, poll, query


class ApplianceTests(TestCase):
    timeout = 120

    async def _started(self, **kwargs) -> Appliance:
        appliance = Appliance(self, **kwargs)
        appliance.start()
        await appliance.waitUntilServing()
        return appliance

    async def test_answersOverUDPAndTCP(self):
        appliance = await self._started()
        udp = await query(appliance.port, "www.test.gslb", "A")
        tcp = await query(appliance.port, "www.test.gslb", "A", tcp=True)
        aaaa = await query(appliance.port, "www.test.gslb", "AAAA")
        for response in (udp, tcp):
            self.assertTrue(response.flags & 0x0400, "AA must be set")
            self.assertIn(addresses(response)[0], {"192.0.2.10", "198.51.100.10"})
            self.assertEqual(response.answer[0].ttl, 5)
        self.assertEqual(addresses(aaaa), ["2001:db8::10"])
        outside = await query(appliance.port, "www.example.com", "A")
        self.assertEqual(outside.rcode(), 5)  # REFUSED

    async def test_killedCoreRespawnedWhileDNSKeepsAnswering(self):
        appliance = await self._started()
        before = await appliance.console("show cores")
        self.assertEqual([c["core"] for c in before], [0, 1])
        self.assertEqual(len({c["pid"] for c in before}), 2)
        victim = before[0]["pid"]

        answered, unanswered = [], []
        stopLoad = []

        async def load():
            # A resolver's behaviour: each query retried a few times.
            while not stopLoad:
                for attempt in range(4):
                    try:
                        response = await query(appliance.port, "www.test.gslb", timeout=0.5)
                    except Exception:
                        continue
                    answered.append(addresses(response))
                    break
                else:
                    unanswered.append(reactor.seconds())

        loading = defer.Deferred.fromCoroutine(load())
        await poll(lambda: len(answered) >= 20, what="load before the kill")
        os.kill(victim, signal.SIGKILL)

        async def respawned():
            cores = await appliance.console("show cores")
            core0 = cores[0]
            return core0.get("pid") not in (None, victim) and core0["state"] == "up" and core0["restarts"] == 1

        await poll(respawned, what="core 0 to come back with a new pid")
        countAtRespawn = len(answered)
        await poll(lambda: len(answered) >= countAtRespawn + 20, what="load after the respawn")
        stopLoad.append(True)
        await loading
        self.assertEqual(unanswered, [])
        self.assertTrue(all(a and a[0] in {"192.0.2.10", "198.51.100.10"} for a in answered))
        self.assertFalse(alive(victim))

        cores = await appliance.console("show cores")
        self.assertEqual({c["state"] for c in cores}, {"up"})
        await appliance.stop()
        appliance.assertCleanExit()
        await appliance.assertNothingLeft()

    async def test_respawnedCoreRunsTheTopologyItsPeersRun(self):
        """
        The supervisor hands its cores the topology it validated at start:
        a core respawned after the file was edited (here: broken) still
        comes up, serving what its peer serves, not what the file says now.
        """
        appliance = await self._started()
        victim = (await appliance.console("show cores"))[0]["pid"]
        with open(appliance.config, "a") as f:
            f.write("\n[[vserver]\nthis is no longer TOML\n")
        os.kill(victim, signal.SIGKILL)

        async def respawned():
            core0 = (await appliance.console("show cores"))[0]
            return core0.get("pid") not in (None, victim) and core0["state"] == "up"

        await poll(respawned, what="core 0 back with a new pid")
        self.assertEqual((await appliance.console("show cores"))[0]["restarts"], 1)
        explained = await appliance.console("resolve www.test.gslb --core 0")
        self.assertIn(explained["answer"][0], {"192.0.2.10", "198.51.100.10"})
        self.assertNotIn("instead", appliance.output)

    async def test_tcpClientsCannotStarveOthers(self):
        """
        DNS over TCP: one address holding its limit of connections open by
        trickling bytes (a slowloris) has its next connection closed at
        once, another address is still answered, and the trickled ones are
        closed after idle_timeout however often they send.
        """
        topology = TOPOLOGY.replace(
            "mep_port = MEP_PORT", "mep_port = MEP_PORT\ndns_tcp = { max_per_client = 3, idle_timeout = 2.0 }"
        )
        appliance = await self._started(topology=topology, cores=1)

        def connect(source: str) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", appliance.port), timeout=5, source_address=(source, 0))
            return sock

        def closedByServer(sock: socket.socket, trickle: bool) -> bool:
            # EOF (or a reset) within the deadline: the server closed it.
            sock.settimeout(0.2)
            for _ in range(40):
                if trickle:
                    try:
                        sock.send(b"\x00")
                    except OSError:
                        return True
                try:
                    if sock.recv(1) == b"":
                        return True
                except socket.timeout:
                    continue
                except OSError:
                    return True
            return False

        held = [await threads.deferToThread(connect, "127.0.0.1") for _ in range(3)]
        for sock in held:
            self.addCleanup(sock.close)
            sock.send(b"\x00")  # half a length prefix: a query never completed
        extra = await threads.deferToThread(connect, "127.0.0.1")
        self.addCleanup(extra.close)
        self.assertTrue(await threads.deferToThread(closedByServer, extra, False), "the 4th connection stayed open")

        other = await query(appliance.port, "www.test.gslb", tcp=True, source="127.0.0.7", timeout=2.0)
        self.assertIn(addresses(other)[0], {"192.0.2.10", "198.51.100.10"})

        for sock in held:
            self.assertTrue(await threads.deferToThread(closedByServer, sock, True), "a trickling connection stayed open")

        async def refusalCounted():
            # Consolidated at the next round.
            return (await appliance.console("stat dns"))["tcp_refused"] >= 1

        await poll(refusalCounted, what="the refused connection in stat dns")
        self.assertIn("Refusing DNS TCP connections from 127.0.0.1", appliance.output)

    async def test_mepListenerAdmitsOnlyConfiguredSites(self):
        """
        Only a configured site's address may open a MEP session: a
        connection from any other address is closed before a byte is sent
        (not even a HELLO with a nonce), and logged once; the site's own
        address gets its HELLO.
        """
        appliance = await self._started(cores=1)

        def firstBytes(source: str) -> bytes:
            sock = socket.create_connection(("127.0.0.5", appliance.mepPort), timeout=5, source_address=(source, 0))
            try:
                sock.settimeout(5)
                try:
                    return sock.recv(4096)
                except (ConnectionResetError, BrokenPipeError):
                    return b""
            finally:
                sock.close()

        self.assertEqual(await threads.deferToThread(firstBytes, "127.0.0.66"), b"")
        self.assertEqual(await threads.deferToThread(firstBytes, "127.0.0.66"), b"")
        hello = await threads.deferToThread(firstBytes, "127.0.0.2")  # site east's address
        self.assertGreater(len(hello), 5)
        self.assertEqual(hello[4], 1)  # a HELLO frame
        await poll(lambda: "MEP connection from 127.0.0.66 refused" in appliance.output, what="the refusal logged")
        self.assertEqual(appliance.output.count("MEP connection from 127.0.0.66 refused"), 1)

    async def test_controlRefusesOtherUsers(self):
        """
        Even on a control socket any user may open (mode 666 here), a
        process of another uid is disconnected unanswered; its owner is
        served.
        """
        if os.getuid() != 0:
            raise SkipTest("needs root, to connect as another user (CI runs as root)")
        appliance = Appliance(self)
        index = appliance.args.index(appliance.control)
        appliance.args[index] = appliance.control + ":mode=666"
        path = appliance.control[len("unix:"):]
        os.chmod(os.path.dirname(path), 0o755)
        appliance.start()
        await appliance.waitUntilServing()
        probe = (
            "import os, socket, sys\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
            "try:\n"
            "    s.sendall(bytes.fromhex(sys.argv[2]))\n"
            "    print('closed' if s.recv(4096) == b'' else 'answered')\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "    print('closed')  # closed before or while it asked\n"
        )
        # An AMP box asking ShowCores: what a console sends first.
        box = b"\x00\x08_command\x00\x09ShowCores\x00\x04_ask\x00\x011\x00\x00".hex()
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-c", probe, path, box], env=os.environ)
        self.assertEqual((out.strip(), code), (b"closed", 0), err)
        self.assertIn("Refusing a control connection from uid 65534", appliance.output)
        cores = await appliance.console("show cores")
        self.assertEqual({c["state"] for c in cores}, {"up"})

    async def test_killedSupervisorLeavesNoCoreBehind(self):
        appliance = await self._started()
        cores = await appliance.console("show cores")
        pids = [c["pid"] for c in cores]
        self.assertTrue(all(alive(p) for p in pids))
        await appliance.stop(signal.SIGKILL)
        # The cores notice their AMP pipe closing and exit by themselves.
        await appliance.assertNothingLeft()

    async def test_showCoresCountsQueries(self):
        appliance = await self._started()
        first = await appliance.console("show cores")
        for _ in range(30):
            await query(appliance.port, "www.test.gslb")
        after = await appliance.console("show cores")
        served = sum(c["queries"] for c in after) - sum(c["queries"] for c in first)
        self.assertGreaterEqual(served, 30)
        for row in after:
            self.assertTrue(set(row).issuperset({"core", "pid", "state", "queries"}), row)

    async def test_consoleTableAndErrors(self):
        appliance = await self._started()
        out, err, code = await getProcessOutputAndValue(
            os.path.join(os.path.dirname(TWISTD), "gslb-console"),
            ["--connect", appliance.control, "-c", "show cores"],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err)
        header = out.decode().splitlines()[0].split()
        self.assertEqual(header[:4], ["CORE", "PID", "STATE", "QUERIES"])
        out, err, code = await getProcessOutputAndValue(
            os.path.join(os.path.dirname(TWISTD), "gslb-console"),
            ["--connect", appliance.control, "-c", "show core"],
            env=dict(os.environ),
        )
        self.assertNotEqual(code, 0)
        self.assertIn("show cores", err.decode())

    async def test_tcpControlNeedsTheToken(self):
        """
        A TCP control endpoint needs [appliance] control_token: twistd
        refuses to start without one; with one, a console with the token
        ($GSLB_CONTROL_TOKEN) is served and one without it is not.
        """
        port = freePort()
        control = f"tcp:{port}:interface=127.0.0.1"
        refused = Appliance(self, extra=("--control", control))
        refused.start()
        await poll(lambda: refused.collector.ended.called, what="twistd to refuse the TCP control endpoint")
        self.assertIn("needs [appliance] control_token", refused.output)

        self.patch(os, "environ", dict(os.environ, GSLB_TEST_CONTROL_TOKEN="s3cret-t0ken",
                                       GSLB_CONTROL_TOKEN="s3cret-t0ken"))
        topology = TOPOLOGY.replace(
            "mep_port = MEP_PORT", 'mep_port = MEP_PORT\ncontrol_token = { env = "GSLB_TEST_CONTROL_TOKEN" }'
        )
        appliance = Appliance(self, topology, extra=("--control", control))
        appliance.control = "tcp:127.0.0.1:" + str(port)
        appliance.start()
        await appliance.waitUntilServing()
        self.assertEqual(len(await appliance.console("show cores")), 2)
        for token in (None, "guess"):
            env = {k: v for k, v in os.environ.items() if k != "GSLB_CONTROL_TOKEN"}
            if token is not None:
                env["GSLB_CONTROL_TOKEN"] = token
            out, err, code = await getProcessOutputAndValue(CONSOLE, ["--connect", appliance.control, "-c", "show cores"], env=env)
            self.assertNotEqual(code, 0, (token, out))
            self.assertNotIn(b"CORE", out)

    async def test_controlSocketIsPrivate(self):
        appliance = await self._started()
        path = appliance.control.split(":", 1)[1]
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    async def test_reusePortSharing(self):
        appliance = await self._started(extra=("--socket-sharing", "reuseport")
        )
        response = await query(appliance.port, "www.test.gslb", tcp=True)
        self.assertTrue(addresses(response))
        await appliance.stop()
        appliance.assertCleanExit()

    async def test_twoUDPEndpoints(self):
        """
        Every UDP endpoint answers, each from its own socket (dnspython
        refuses a reply from another address or port).
        """
        second = freePort("127.0.0.1")
        appliance = await self._started(extra=("--dns", f"udp:{second}:interface=127.0.0.1"))
        for port in (appliance.port, second):
            for _ in range(4):  # both cores, whichever reads the query
                self.assertTrue(addresses(await query(port, "www.test.gslb")), port)
        await appliance.stop()
        appliance.assertCleanExit()

    async def test_jsonLogsCarryCoreEvents(self):
        appliance = await self._started(extra=("--log-format", "json"))
        await appliance.stop()
        events = []
        for line in appliance.output.splitlines():
            line = line.strip()
            if line:
                events.append(json.loads(line))  # every line is one JSON object
        fromCores = {e.get("core") for e in events if "serving DNS" in e.get("log_format", "")}
        self.assertEqual(fromCores, {0, 1})


class BadConfigTests(TestCase):
    timeout = 60

    async def test_badConfigStartsNothing(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "bad.toml")
        with open(path, "w") as f:
            f.write(TOPOLOGY.replace("MEP_PORT", "3011").replace('ip = "198.51.100.10"', 'ip = "198.51.100.10"\nport = "80"'))
        port = freePort()
        out, err, code = await getProcessOutputAndValue(
            TWISTD,
            ["--pidfile=", "-n", "gslb", "--config", path, "--dns", f"udp:{port}:interface=127.0.0.1",
             "--control", "unix:/tmp/gslb-bad-config-test.ctl"],
            env=dict(os.environ),
            path=directory,
        )
        self.assertNotEqual(code, 0)
        message = err.decode()
        self.assertIn(path, message)
        self.assertIn("[[service]] 'west-web'", message)
        self.assertIn("'port'", message)
        self.assertIn("found '80' (string)", message)
        self.assertFalse(os.path.exists("/tmp/gslb-bad-config-test.ctl"))
