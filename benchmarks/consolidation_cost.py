"""
The cost of one consolidation round: CPU time and bytes, in-process.

N cores (CoreStats, as the cores run them) are wired through an in-memory
hub that delivers every message at once, JSON and all; each core's counters
are those of a vserver bound to S services (per-service and per
vserver/service answers, DNS counters), and every counter changes every
round (the worst case: a busy appliance).  Measured per round: the control
core's CPU (merge reports, close and open the round), one other core's CPU
(report, apply the round), and the bytes published.

    python -m benchmarks.consolidation_cost [--cores 4] [--services 1000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Optional, Sequence

from twisted.internet.task import Clock

from benchmarks.dns_qps import machine
from benchmarks.propagation import writeResults
from gslb_twisted.consolidator import counterKey
from gslb_twisted.core.stats import TOPIC_CONTROL, CoreStats

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class Hub:
    """Delivers each publication to its target, or to every other core, at once."""

    def __init__(self) -> None:
        self.cores: dict[int, CoreStats] = {}
        self.bytes = 0
        self.messages = 0
        self.cpu: dict[int, float] = {}

    def publisher(self, sender: int):
        def publish(topic: str, body: bytes, target: Optional[int] = None) -> None:
            self.bytes += len(body)
            self.messages += 1
            for core, stats in list(self.cores.items()):
                if core == sender or (target is not None and core != target):
                    continue
                started = time.process_time()
                stats.delivered(sender, topic, json.loads(body))
                self.cpu[core] = self.cpu.get(core, 0.0) + time.process_time() - started

        return publish


def counterSet(core: int, services: int, tick: int) -> dict:
    """A busy core's cumulative counters after C{tick} rounds."""
    base = (tick + 1) * 1000 + core
    counters = {counterKey("dns", "-", name): base * 3 for name in ("queries", "bytes_in", "bytes_out", "rcode_NOERROR", "qtype_A")}
    counters[counterKey("vserver", "www", "hits")] = base * 2
    for i in range(services):
        counters[counterKey("service", f"svc{i}", "answers")] = base + i
        counters[counterKey("vserver_service", f"www/svc{i}", "answers")] = base + i
    return counters


def run(cores: int, services: int, rounds: int, interval: float = 0.5) -> dict:
    clock = Clock()
    hub = Hub()
    ticks = {core: 0 for core in range(cores)}
    for core in range(cores):
        stats = CoreStats(
            clock, core, f"{core}/1", interval,
            lambda core=core: counterSet(core, services, ticks[core]), hub.publisher(core),
        )
        hub.cores[core] = stats
    serving = json.dumps({"serving": list(range(cores))}).encode()
    for stats in hub.cores.values():
        stats.delivered(-1, TOPIC_CONTROL, json.loads(serving))
    control = hub.cores[0]
    perRound = []
    for _ in range(rounds):
        for core in ticks:
            ticks[core] += 1
        hub.cpu.clear()
        bytesBefore = hub.bytes
        started = time.process_time()
        clock.advance(interval)
        total = time.process_time() - started
        # The control core's own work is what is not another core's.
        others = sum(cpu for core, cpu in hub.cpu.items() if core != 0)
        perRound.append({
            "control_cpu_ms": (total - others + hub.cpu.get(0, 0.0)) * 1000,
            "core_cpu_ms": hub.cpu.get(1, 0.0) * 1000,
            "bytes": hub.bytes - bytesBefore,
        })
    steady = perRound[2:]  # the first rounds carry the first reports' full sets
    expected = sum(counterSet(core, services, ticks[core])[counterKey("vserver", "www", "hits")] for core in range(cores))
    return {
        "cores": cores,
        "services": services,
        "rounds": rounds,
        "counters_per_core": len(counterSet(0, services, 0)),
        "control_cpu_ms_median": statistics.median(r["control_cpu_ms"] for r in steady),
        "core_cpu_ms_median": statistics.median(r["core_cpu_ms"] for r in steady),
        "bytes_per_round_median": statistics.median(r["bytes"] for r in steady),
        "consolidated_hits": control.consolidation.total(counterKey("vserver", "www", "hits")),
        "expected_hits": expected,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    options = parser.parse_args(argv)
    result = run(options.cores, options.services, options.rounds)
    print(
        f"{result['cores']} cores x {result['services']} services ({result['counters_per_core']} counters per core, "
        f"all changing every round), median of {result['rounds'] - 2} rounds:\n"
        f"  control core CPU per round: {result['control_cpu_ms_median']:.2f} ms\n"
        f"  another core's CPU per round: {result['core_cpu_ms_median']:.2f} ms\n"
        f"  bytes published per round: {result['bytes_per_round_median']:,.0f}"
    )
    writeResults(RESULTS, time.strftime("consolidation_cost-%Y%m%d-%H%M%S.json"), {
        "benchmark": "consolidation_cost", "machine": machine(), "result": result,
        "command": "python -m benchmarks.consolidation_cost " + " ".join(argv or []),
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
