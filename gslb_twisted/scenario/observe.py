"""
What the run sees of the appliance by polling its control endpoint, kept
as plain data (pure: the runner hands in each poll's rows and its time).

  - L{CoreShares}: C{show cores} -> the queries each core answered during
    the run.  A core slot's count restarts from 0 when the core is
    respawned (a new pid), so counts are kept per (core, pid): the first
    poll (at t=0) is the baseline of the pids then alive, a pid seen later
    counts from 0.  Only rows of cores C{up} are read: the supervisor asks
    those for their count, while a slot still starting shows its new pid
    beside the count its previous process last reported.
  - L{SiteStates}: C{show gslb site} -> each site's state and master core
    over time, as transitions.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional


class CoreShares:
    def __init__(self, maxSamples: int = 4000) -> None:
        self.base: dict[tuple[int, int], int] = {}
        self.last: dict[tuple[int, int], int] = {}
        self.pids: dict[int, list[int]] = {}
        self.restarts: dict[int, int] = {}
        self.polls = 0
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.maxSamples = maxSamples

    def observe(self, t: float, rows: Iterable[Mapping]) -> None:
        first = self.polls == 0
        self.polls += 1
        for row in rows:
            core, pid, queries = row.get("core"), row.get("pid"), row.get("queries")
            if core is None or pid is None or queries is None or row.get("state") != "up":
                continue
            key = (int(core), int(pid))
            if key not in self.base:
                self.base[key] = int(queries) if first else 0
                pids = self.pids.setdefault(int(core), [])
                if pid not in pids:
                    pids.append(int(pid))
            self.last[key] = int(queries)
            self.restarts[int(core)] = int(row.get("restarts", 0) or 0)
        if len(self.samples) < self.maxSamples:
            self.samples.append((round(t, 3), self.perCore()))

    def perCore(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for (core, pid), last in self.last.items():
            out[core] = out.get(core, 0) + max(0, last - self.base[(core, pid)])
        return dict(sorted(out.items()))

    def table(self) -> list[dict]:
        """One row per core: queries during the run, share %, pids, restarts."""
        counts = self.perCore()
        total = sum(counts.values())
        return [
            {
                "core": core,
                "queries": count,
                "share": round(100.0 * count / total, 2) if total else None,
                "pids": self.pids.get(core, []),
                "restarts": self.restarts.get(core, 0),
            }
            for core, count in counts.items()
        ]

    def allPids(self) -> set[int]:
        return {pid for _, pid in self.base}


class SiteStates:
    def __init__(self) -> None:
        self.transitions: dict[str, list[list]] = {}
        self.polls = 0

    def observe(self, t: float, rows: Mapping[str, Mapping]) -> None:
        self.polls += 1
        for name, row in rows.items():
            state, master = row.get("state"), row.get("master_core")
            history = self.transitions.setdefault(name, [])
            if not history or history[-1][1] != state or history[-1][2] != master:
                history.append([round(t, 4), state, master])

    def stateAt(self, site: str, t: float) -> Optional[str]:
        state = None
        for at, value, _ in self.transitions.get(site, ()):
            if at > t:
                break
            state = value
        return state
