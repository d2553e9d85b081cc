"""
Faults of a core process under a steady load: a real 2-core appliance with
three real site emulators (west kept DOWN throughout, so that an answer
naming it is wrong), real signals, every answer judged.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from gslb_twisted.chaos import faults
from gslb_twisted.chaos.lab import ADDRESSES
from tests.chaos.rig import ChaosLab


def _slot(rows, core):
    return [row for row in rows if row["core"] == core][0]


class CoreFaultTests(TestCase):
    timeout = 180

    def assertAtMostOneLost(self, lab: ChaosLab, report: dict) -> None:
        """
        Lost: at most the query the victim was answering when it died, and
        what the kernel dropped at the shared socket while one core served
        alone on a busy machine (its receive buffer full, counted in
        /proc/net/udp): nothing the appliance itself threw away.
        """
        self.assertLessEqual(report["counts"]["lost"], 1 + lab.droppedAtAppliance,
                             (report["counts"], lab.droppedAtAppliance))

    def assertNothingWrong(self, report: dict) -> None:
        counts = report["counts"]
        self.assertEqual(counts["wrong"], 0, report["wrong_sample"])
        self.assertEqual((counts["failed"], counts["empty"], counts["mismatched"], counts["malformed"]),
                         (0, 0, 0, 0), report)
        self.assertNotIn(ADDRESSES["west"], report["addresses"])

    async def test_coreKilled(self):
        """
        SIGKILL a core that is not the control core: the other core answers
        meanwhile (both read the inherited socket, so at most the query the
        victim was answering is lost), the supervisor respawns it, its sites
        get a new master, the new core serves its share, never with the DOWN
        site's address.
        """
        lab = ChaosLab(self, keptDown=["west"])
        await lab.start()
        self.assertEqual((await lab.control.statDNS())["control"], 0)
        run = await lab.inject(faults.killCore, 1)
        self.assertIsNotNone(run.detectedAt)
        self.assertNotEqual(run.details["new_pid"], run.details["pid"])

        async def newCoreServes():
            return _slot(await lab.control.cores(), 1)["queries"] > 0

        await faults.until(lab.reactor, newCoreServes, 30, "the respawned core to answer its share")
        await faults.holdLoad(lab, 200, 30)
        report = await lab.finish()
        self.assertNothingWrong(report)
        self.assertAtMostOneLost(lab, report)
        self.assertIn(run.details["pid"], lab.appliance.seenPids)

    async def test_controlCoreKilled(self):
        """
        SIGKILL the control core (core 0, the lowest serving core: it leads
        the counter consolidation).  The next core leads from its replica,
        the respawned core takes the lead back, and the appliance-wide
        query count (`stat dns`) never goes back nor counts a query twice:
        it ends no higher than what was sent.
        """
        lab = ChaosLab(self, keptDown=["west"])
        await lab.start(load=False)
        before = await lab.control.statDNS()
        self.assertEqual(before["control"], 0)
        await lab.startLoad()
        seen: list[dict] = []
        watching = {"on": True}

        async def watch():
            while watching["on"]:
                try:
                    seen.append(await lab.control.statDNS())
                except Exception:
                    pass  # asked while no core could answer
                await faults.sleep(lab.reactor, 0.05)

        watcher = defer.ensureDeferred(watch())
        run = await lab.inject(faults.killControlCore)
        await faults.holdLoad(lab, 200, 30)
        watching["on"] = False
        await watcher
        self.assertEqual(run.target, "core 0")
        queries = [row["queries"] for row in seen]
        self.assertEqual(queries, sorted(queries), "the consolidated count went back")
        self.assertEqual((seen[-1]["control"], run.details["control_after"]), (0, 0))

        sent = (await lab.load.stop())["counts"]["sent"]
        last = (await lab.control.statDNS())["round"]
        # Two rounds later every live core has reported all it answered.
        await faults.until(lab.reactor, lambda: _roundReached(lab, last + 2), 30, "two more rounds")
        final = await lab.control.statDNS()
        self.assertLessEqual(final["queries"] - before["queries"], sent, "queries counted twice")
        self.assertGreater(final["queries"], queries[-1], "the rounds stopped counting")
        report = await lab.finish()
        self.assertNothingWrong(report)
        self.assertAtMostOneLost(lab, report)

    async def test_stoppedCoreRiddenOut(self):
        """
        SIGSTOP a core for 5 s, then SIGCONT: the other core answers
        meanwhile (both read the inherited socket), the stopped core is not
        restarted (it is ended only after 30 s without reading its pipe),
        and nothing is lost for good: a query the stopped core had already
        read is answered when it resumes, late.
        """
        lab = ChaosLab(self, keptDown=["west"])
        await lab.start()
        run = await lab.inject(faults.stopCore, 0, seconds=5.0)
        self.assertGreater(run.details["answered_while_stopped"], 0)
        await faults.holdLoad(lab, 200, 30)
        rows = await lab.control.cores()
        self.assertEqual([(row["state"], row["restarts"]) for row in rows], [("up", 0), ("up", 0)])
        report = await lab.finish()
        self.assertNothingWrong(report)
        counts = report["counts"]
        self.assertEqual(counts["lost"] - lab.droppedAtAppliance, counts["late"], report)
        self.assertAtMostOneLost(lab, report)


async def _roundReached(lab, number: int) -> bool:
    return (await lab.control.statDNS())["round"] >= number
