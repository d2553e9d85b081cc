"""
Runtime changes from the console on the real appliance (two cores): an LB
method set on a vserver, a service disabled and enabled again, each applied
by every core before the console hears back, and by a core respawned after
a SIGKILL from its first answer on.  Real processes, real DNS queries, the
real gslb-console, polled with deadlines.
"""

from __future__ import annotations

import json
import os
import signal

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.support import CONSOLE, Appliance, addresses, poll, query

# Sites without metric exchange: their services are UP at once, with no
# site emulator to run.  www is configured SOURCEIPHASH, so that setting
# ROUNDROBIN is a change every core must show.
TOPOLOGY = """
[appliance]
name = "control"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT
metrics_interval = 0.5
dead_interval = 1.5

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"
metric_exchange = false

[[site]]
name = "west"
ip = "127.0.0.3"
metric_exchange = false

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
lb_method = "SOURCEIPHASH"
backup_lb_method = "ROUNDROBIN"
ttl = 5
answers = 1
services = ["east-web", "west-web"]
"""

EAST, WEST = "192.0.2.10", "198.51.100.10"


class ControlDecisionsTests(TestCase):
    timeout = 120

    async def startAppliance(self) -> Appliance:
        appliance = Appliance(self, TOPOLOGY, cores=2)
        appliance.start()
        await appliance.waitUntilServing()
        return appliance

    async def console(self, appliance: Appliance, command: str) -> tuple[int, object, str]:
        """C{gslb-console -c COMMAND --json}: exit code, the JSON printed, stderr."""
        out, err, code = await getProcessOutputAndValue(
            CONSOLE, ["--connect", appliance.control, "-c", command, "--json"], env=dict(os.environ)
        )
        return code, (json.loads(out) if code == 0 else None), err.decode("utf-8", "replace")

    async def ok(self, appliance: Appliance, command: str):
        code, value, err = await self.console(appliance, command)
        self.assertEqual(code, 0, f"gslb-console -c {command!r} exited {code}: {err}")
        return value

    async def resolveOn(self, appliance: Appliance, core: int) -> dict:
        result = await self.ok(appliance, f"resolve www.test.gslb --core {core}")
        self.assertEqual(result["core"], core)
        return result

    async def queriesByCore(self, appliance: Appliance) -> dict[int, int]:
        return {row["core"]: row["queries"] for row in await appliance.console("show cores")}

    async def answersFromBothCores(self, appliance: Appliance, perCore: int = 5) -> list[list[str]]:
        """
        Ask for www until every core has answered at least C{perCore} more
        queries (the cores share the socket: the kernel picks which reads
        each), and return every answer.
        """
        before = await self.queriesByCore(appliance)
        answers: list[list[str]] = []

        async def bothAnswered():
            for _ in range(20):
                answers.append(addresses(await query(appliance.port, "www.test.gslb", timeout=1.0)))
            now = await self.queriesByCore(appliance)
            return all(now[core] - before.get(core, 0) >= perCore for core in now)

        await poll(bothAnswered, 30, interval=0.0, what="both cores to answer queries")
        return answers

    async def test_setMethodOnEveryCoreAndRespawnedCore(self):
        appliance = await self.startAppliance()
        for core in (0, 1):
            self.assertEqual((await self.resolveOn(appliance, core))["method"], "SOURCEIPHASH")

        changed = await self.ok(appliance, "set gslb vserver www -lbMethod roundrobin")
        self.assertEqual(changed["lb_method"], "ROUNDROBIN")
        self.assertEqual(changed["configured_lb_method"], "SOURCEIPHASH")
        self.assertEqual(changed["cores"], [0, 1])
        self.assertEqual(changed["runtime"], {"lb_method": {"www": "ROUNDROBIN"}, "disabled": []})

        # The console heard back once every core applied it: no waiting.
        for core in (0, 1):
            result = await self.resolveOn(appliance, core)
            self.assertEqual((result["method"], result["fallback"]), ("ROUNDROBIN", False))
            self.assertEqual(result["rcode"], "NOERROR")
            self.assertEqual(len(result["answer"]), 1)
            self.assertEqual({c["service"] for c in result["candidates"]}, {"east-web", "west-web"})
        [row] = await self.ok(appliance, "show gslb vserver www")
        self.assertEqual((row["lb_method"], row["configured_lb_method"]), ("ROUNDROBIN", "SOURCEIPHASH"))

        # Round robin over both services, from both cores.
        answers = await self.answersFromBothCores(appliance)
        self.assertEqual({a for answer in answers for a in answer}, {EAST, WEST})

        # A core killed with SIGKILL comes back with the runtime state.
        cores = await appliance.console("show cores")
        victim = next(row for row in cores if row["core"] == 1)

        os.kill(victim["pid"], signal.SIGKILL)

        async def respawned():
            rows = await appliance.console("show cores")
            row = next(r for r in rows if r["core"] == 1)
            return row["state"] == "up" and row.get("pid") not in (None, victim["pid"])

        await poll(respawned, 30, what="core 1 to be respawned and serving")
        result = await self.resolveOn(appliance, 1)
        self.assertEqual((result["method"], result["fallback"]), ("ROUNDROBIN", False))

        # Setting the configured method back undoes the change everywhere.
        undone = await self.ok(appliance, "set gslb vserver www -lbMethod SOURCEIPHASH")
        self.assertEqual(undone["runtime"], {"lb_method": {}, "disabled": []})
        for core in (0, 1):
            self.assertEqual((await self.resolveOn(appliance, core))["method"], "SOURCEIPHASH")
        self.assertNotIn("Traceback", appliance.output)

    async def test_disableAndEnableService(self):
        appliance = await self.startAppliance()
        await self.ok(appliance, "set gslb vserver www -lbMethod ROUNDROBIN")

        disabled = await self.ok(appliance, "disable gslb service east-web")
        self.assertEqual((disabled["name"], disabled["enabled"], disabled["cores"]), ("east-web", False, [0, 1]))
        for core in (0, 1):
            result = await self.resolveOn(appliance, core)
            self.assertEqual(result["answer"], [WEST])
            self.assertEqual([c["service"] for c in result["candidates"]], ["west-web"])
            self.assertIn("east-web", [e["service"] for e in result["excluded"]])
        [row] = await self.ok(appliance, "show gslb vserver www")
        enabled = {s["name"]: s["enabled"] for s in row["services"]}
        self.assertEqual(enabled, {"east-web": False, "west-web": True})

        # While west-web is up, no core ever answers east-web's address.
        answers = await self.answersFromBothCores(appliance)
        self.assertEqual({a for answer in answers for a in answer}, {WEST})

        back = await self.ok(appliance, "enable gslb service east-web")
        self.assertEqual((back["enabled"], back["runtime"]["disabled"]), (True, []))
        for core in (0, 1):
            result = await self.resolveOn(appliance, core)
            self.assertNotIn("east-web", [e["service"] for e in result["excluded"]])
        answers = await self.answersFromBothCores(appliance)
        self.assertEqual({a for answer in answers for a in answer}, {EAST, WEST})
        self.assertNotIn("Traceback", appliance.output)

    async def test_errorsAreOneLineAndNonZero(self):
        appliance = await self.startAppliance()
        cases = [
            ("set gslb vserver nope -lbMethod ROUNDROBIN", 1, "gslb-console: set gslb vserver: no such vserver nope\n"),
            ("set gslb vserver www -lbMethod CUSTOMLOAD", 1,
             "gslb-console: set gslb vserver: vserver www has no custom_load metrics: "
             "CUSTOMLOAD needs them in its topology\n"),
            ("set gslb vserver www -lbMethod FASTEST", 2, None),
            ("disable gslb service nope", 1, "gslb-console: disable gslb service: no such service nope\n"),
            ("enable gslb service nope", 1, "gslb-console: enable gslb service: no such service nope\n"),
            ("show gslb vserver nope", 1, "gslb-console: show gslb vserver: no such vserver nope\n"),
            ("resolve www.test.gslb --core 7", 1, "gslb-console: resolve: no core 7 (cores 0 to 1)\n"),
            ("resolve www.test.gslb BOGUS", 2, None),
            ("resolve www.test.gslb --client 10.0.0", 2, None),
        ]
        for command, expectedCode, expectedError in cases:
            code, value, err = await self.console(appliance, command)
            self.assertEqual(code, expectedCode, f"{command!r}: {err}")
            self.assertEqual(len(err.splitlines()), 1, f"{command!r}: {err}")
            if expectedError is not None:
                self.assertEqual(err, expectedError)
        # Nothing was changed by the refused commands.
        for core in (0, 1):
            self.assertEqual((await self.resolveOn(appliance, core))["method"], "SOURCEIPHASH")
        # The AAAA of a name with no IPv6 service, from another client, on the default core.
        result = await self.ok(appliance, "resolve www.test.gslb aaaa --client 2001:db8::1")
        self.assertEqual((result["qtype"], result["client"], result["core"], result["answer"]),
                         ("AAAA", "2001:db8::1", 0, []))
        outside = await self.ok(appliance, "resolve www.example.com")
        self.assertEqual((outside["rcode"], outside["answer"]), ("REFUSED", []))
        self.assertNotIn("Traceback", appliance.output)
