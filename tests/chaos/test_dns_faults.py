"""
The appliance's shared DNS socket flooded far beyond its receive buffer,
under a steady load: the kernel drops what does not fit; the appliance must
come out of it answering everything, correctly, with no core lost.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from gslb_twisted.chaos import faults
from tests.chaos.rig import ChaosLab


class DNSSocketFaultTests(TestCase):
    timeout = 180

    async def test_receiveBufferFlooded(self):
        """
        30,000 queries as fast as another process sends them, far beyond
        what the shared DNS socket's receive buffer holds: the kernel drops
        what does not fit, no core falls over, and the steady load is
        answered in full, correctly, once the flood has passed.
        """
        lab = ChaosLab(self, keptDown=["west"])
        await lab.start()
        run = await lab.inject(faults.floodUDP, 30000)
        self.assertEqual(run.details["flood_result"]["sent"], 30000)
        self.assertGreater(run.details["dropped_at_appliance"], 0, "the flood did not fill the buffer")
        lost = lab.load.totals.lost
        await faults.holdLoad(lab, 300, 30)
        rows = await lab.control.cores()
        self.assertEqual([(row["state"], row["restarts"]) for row in rows], [("up", 0), ("up", 0)])
        report = await lab.finish()
        counts = report["counts"]
        self.assertEqual(counts["lost"], lost, "steady queries lost after the burst had passed")
        self.assertEqual((counts["wrong"], counts["failed"], counts["empty"]), (0, 0, 0), report)
