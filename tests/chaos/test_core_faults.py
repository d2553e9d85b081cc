"""
Faults of a core process under load: a real 2-core appliance, a resolver-like
client (each query retried), real signals.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.support import Appliance, addresses, alive, poll, query

GOOD = {"192.0.2.10", "198.51.100.10"}


class Load:
    """Queries one after another, each retried 4 times (0.5 s apart) as a resolver would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered: list[list[str]] = []
        self.unanswered: list[float] = []
        self._stop = False
        self.running = defer.Deferred.fromCoroutine(self._run())

    async def _run(self) -> None:
        while not self._stop:
            for _ in range(4):
                try:
                    response = await query(self.port, "www.test.gslb", timeout=0.5)
                except Exception:
                    continue
                self.answered.append(addresses(response))
                break
            else:
                self.unanswered.append(reactor.seconds())

    async def stop(self) -> None:
        self._stop = True
        await self.running

    def wrong(self) -> list[list[str]]:
        return [a for a in self.answered if not a or not set(a) <= GOOD]


class CoreFaultTests(TestCase):
    timeout = 120

    async def test_stoppedCoreRiddenOut(self):
        """
        SIGSTOP a core for 5 s, then SIGCONT: the other core answers
        meanwhile (both read the inherited socket), nothing is lost or
        wrong, and the stopped core is not restarted (it is ended only
        after 30 s without reading its pipe).
        """
        appliance = Appliance(self)
        appliance.start()
        await appliance.waitUntilServing()
        cores = await appliance.console("show cores")
        victim = cores[0]["pid"]
        load = Load(appliance.port)
        self.addCleanup(lambda: os.kill(victim, signal.SIGCONT) if alive(victim) else None)
        await poll(lambda: len(load.answered) >= 20, what="load before the fault")

        os.kill(victim, signal.SIGSTOP)
        during = len(load.answered)
        await task.deferLater(reactor, 5.0, lambda: None)
        answeredWhileStopped = len(load.answered) - during
        os.kill(victim, signal.SIGCONT)

        async def bothServe():
            rows = await appliance.console("show cores")
            return [(c["pid"], c["state"], c["restarts"]) for c in rows] == [
                (victim, "up", 0), (cores[1]["pid"], "up", 0)]

        await poll(bothServe, what="both cores up again, neither restarted")
        after = len(load.answered)
        await poll(lambda: len(load.answered) >= after + 20, what="load after the fault")
        await load.stop()
        self.assertGreater(answeredWhileStopped, 0)
        self.assertEqual(load.unanswered, [])
        self.assertEqual(load.wrong(), [])
        explained = await appliance.console("resolve www.test.gslb --core 0")
        self.assertIn(explained["answer"][0], GOOD)
        await appliance.stop()
        appliance.assertCleanExit()
        await appliance.assertNothingLeft()
