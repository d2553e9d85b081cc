"""
Faults of a remote site under a steady load: a site emulator killed,
frozen (SIGSTOP: connected but silent) and restarted with its metric
sequence starting over.  The site must go DOWN on every core, its
addresses must never be answered while it is, the answers fail over to the
other sites, and it comes back once repaired.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from gslb_twisted.chaos import faults
from gslb_twisted.chaos.lab import ADDRESSES, SERVICE
from tests.chaos.rig import ChaosLab


class SiteFaultTests(TestCase):
    timeout = 180

    def assertAnsweredRight(self, report: dict) -> None:
        """Every query answered (no core fault here), none wrong, every answer NOERROR with addresses."""
        counts = report["counts"]
        self.assertEqual(counts["wrong"], 0, report["wrong_sample"])
        self.assertEqual((counts["lost"], counts["failed"], counts["empty"], counts["mismatched"]), (0, 0, 0, 0),
                         report)
        self.assertEqual(counts["answered"], counts["sent"])

    def assertLoggedDownOnce(self, log: str, site: str, reason: str) -> None:
        """The master logged the transition once, with why (the log of the fault, before the stop)."""
        self.assertEqual(log.count(f"site {site} is DOWN ("), 1, log[-3000:])
        self.assertIn(f"site {site} is DOWN ({reason})", log)

    async def test_siteKilled(self):
        """
        SIGKILL the east emulator (it dials the appliance): DOWN on every
        core, answers carry west and north only until it is restarted, then
        east is UP and answered again.
        """
        lab = ChaosLab(self)
        await lab.start()
        run = await lab.inject(faults.killSite, "east")
        self.assertLess(run.detectedAt, run.repairedAt)
        await faults.holdLoad(lab, 100, 30)
        log = lab.appliance.output
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertGreater(report["addresses"][ADDRESSES["west"]], report["addresses"][ADDRESSES["east"]])
        self.assertLoggedDownOnce(log, "east", "closed")

    async def test_siteFrozen(self):
        """
        SIGSTOP the north emulator (the appliance dials it): its connection
        stays open but silent, so it is DOWN on every core only once
        dead_interval has passed (logged once, as silent), and never
        answered while DOWN; SIGCONT brings it back.
        """
        lab = ChaosLab(self)
        await lab.start()
        run = await lab.inject(faults.freezeSite, "north")
        self.assertIsNotNone(run.recoveredAt)
        await faults.holdLoad(lab, 100, 30)
        log = lab.appliance.output
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertLoggedDownOnce(log, "north", "silent")

    async def test_siteRestartedWithItsSequenceReset(self):
        """
        Restart a site emulator at once, in each MEP direction: the new
        process numbers its metric versions from 1 again, far below what the
        appliance had from the old one, and every core takes its snapshot
        and deltas (a value set in the new process reaches every core)
        rather than refusing them as stale.
        """
        lab = ChaosLab(self)
        await lab.start()
        for site, marker in (("east", 4321), ("north", 4322)):
            await faults.until(lab.reactor, lambda site=site: _seqAbove(lab, site, 8), 30,
                               f"site {site}'s seq to climb")
            run = await lab.inject(faults.restartSite, site, SERVICE[site], marker=marker)
            self.assertLess(run.details["seq_after"], run.details["seq_before"], run.details)
            self.assertNotEqual(run.details["new_pid"], run.details["pid"])
        await faults.holdLoad(lab, 100, 30)
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertEqual(set(report["addresses"]), set(ADDRESSES.values()))


async def _seqAbove(lab: ChaosLab, site: str, seq: int) -> bool:
    value = await faults.siteSeq(lab.reactor, lab.site(site).control)
    return value is not None and value > seq
