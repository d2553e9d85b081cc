"""
Faults of a MEP link under a steady load, through the chaos proxy on it:
cut (connections reset, reconnections refused), blackhole (open but
silent), delay (slow but alive), each then restored.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from gslb_twisted.chaos import faults
from gslb_twisted.chaos.lab import ADDRESSES, SERVICE
from tests.chaos.rig import ChaosLab


class LinkFaultTests(TestCase):
    timeout = 180

    def assertAnsweredRight(self, report: dict) -> None:
        counts = report["counts"]
        self.assertEqual(counts["wrong"], 0, report["wrong_sample"])
        self.assertEqual((counts["lost"], counts["failed"], counts["empty"], counts["mismatched"]), (0, 0, 0, 0),
                         report)

    async def test_linkCut(self):
        """
        Cut east's MEP link (east dials the appliance): the session is reset,
        east is DOWN on every core and not answered; its redials are refused
        until the link is restored, then it reconnects and is answered again.
        """
        lab = ChaosLab(self)
        await lab.start()
        run = await lab.inject(faults.cutLink, "east")
        self.assertGreater(run.details["proxy"]["refused"], 0, "east never redialled during the cut")
        self.assertGreater(run.details["proxy"]["aborted"], 0)
        await faults.holdLoad(lab, 100, 30)
        log = lab.appliance.output
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertIn("site east is DOWN (closed)", log)

    async def test_linkBlackholed(self):
        """
        Blackhole north's MEP link (the appliance dials north): nothing gets
        through and nothing closes, so only the silence tells; north is DOWN
        on every core after dead_interval, not answered while DOWN, and back
        once the link is restored.
        """
        lab = ChaosLab(self)
        await lab.start()
        run = await lab.inject(faults.blackholeLink, "north")
        self.assertGreater(run.details["proxy"]["swallowed"], 0)
        await faults.holdLoad(lab, 100, 30)
        log = lab.appliance.output
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertIn("site north is DOWN (silent)", log)

    async def test_linkDelayed(self):
        """
        Delay east's MEP link by 200 ms each way (well under dead_interval):
        the appliance measures the longer round trip, a metric change still
        reaches every core, east never goes DOWN, and the round trip is
        short again once restored.
        """
        lab = ChaosLab(self)
        await lab.start()
        run = await lab.inject(faults.delayLink, "east", SERVICE["east"], milliseconds=200)
        self.assertGreaterEqual(run.details["rtt_delayed_ms"], 400.0)
        self.assertLess(run.details["rtt_after_ms"], 200.0)
        self.assertFalse(run.details["down_seen"])
        await faults.holdLoad(lab, 100, 30)
        log = lab.appliance.output
        report = await lab.finish()
        self.assertAnsweredRight(report)
        self.assertNotIn("site east is DOWN", log)
        self.assertEqual(set(report["addresses"]), set(ADDRESSES.values()))
