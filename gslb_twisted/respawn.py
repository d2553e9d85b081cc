"""
The respawn policy for core processes, as a pure function.

It follows L{twisted.runner.procmon}: a process that ran for at least
C{threshold} seconds is restarted at once and its delay reset; one that died
sooner waits its current delay, which then doubles up to C{maxDelay}.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RespawnPolicy:
    minDelay: float = 1.0
    maxDelay: float = 30.0
    threshold: float = 5.0
    killTime: float = 5.0

    def afterExit(self, currentDelay: float, lifetime: float) -> tuple[float, float]:
        """
        A process that had C{currentDelay} as its restart delay ended after
        running C{lifetime} seconds.

        @return: (seconds to wait before restarting it, its next delay)
        """
        if lifetime >= self.threshold:
            return 0.0, self.minDelay
        return currentDelay, min(max(currentDelay, self.minDelay) * 2, self.maxDelay)
