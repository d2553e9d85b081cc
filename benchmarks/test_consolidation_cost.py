"""The consolidation cost benchmark runs, and its rounds add up."""

from twisted.trial.unittest import SynchronousTestCase

from benchmarks.consolidation_cost import run


class ConsolidationCostTests(SynchronousTestCase):
    def test_smallRun(self):
        result = run(cores=3, services=10, rounds=5)
        self.assertEqual(result["consolidated_hits"], result["expected_hits"])
        self.assertGreater(result["bytes_per_round_median"], 0)
        self.assertGreater(result["control_cpu_ms_median"], 0)
