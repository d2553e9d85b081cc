"""
Processes as Linux shows them in C{/proc}: a process tree, and the CPU time
its processes used between two samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """
    The fields of C{/proc/PID/stat} the harness uses.

    @ivar cpuTicks: user + system time, in clock ticks.
    @ivar startTime: when the process started, in ticks after boot; with
        the pid, it names a process even after the pid is reused.
    """

    pid: int
    comm: str
    state: str
    ppid: int
    cpuTicks: int
    startTime: int
    processor: int


def parseStat(text: str) -> ProcStat:
    """
    Parse one C{/proc/PID/stat} line.  The command name is in parentheses
    and may itself hold spaces and parentheses, so the fields are counted
    from the last C{)}.
    """
    head, _, rest = text.rpartition(")")
    pidText, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5).
    return ProcStat(
        pid=int(pidText),
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        cpuTicks=int(fields[11]) + int(fields[12]),
        startTime=int(fields[19]),
        processor=int(fields[36]),
    )


def readStat(pid: int) -> Optional[ProcStat]:
    """
    @return: the process's stat, or None when it is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return parseStat(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def allStats() -> Dict[int, ProcStat]:
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = readStat(int(name))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def descendants(root: int, stats: Optional[Mapping[int, ProcStat]] = None) -> List[int]:
    """
    C{root} and every process below it, parents before children.
    """
    if stats is None:
        stats = allStats()
    children: Dict[int, List[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo = [], [root] if root in stats else []
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(sorted(children.get(pid, ())))
    return tree


def alive(identity: Tuple[int, int]) -> bool:
    """
    Is the process C{(pid, startTime)} still there (a zombie counts as gone)?
    """
    pid, startTime = identity
    stat = readStat(pid)
    return stat is not None and stat.startTime == startTime and stat.state not in ("Z", "X")


def sampleCpu(pids: Iterable[int]) -> Dict[int, ProcStat]:
    """
    The stats of C{pids} that are still alive.
    """
    sample = {}
    for pid in pids:
        stat = readStat(pid)
        if stat is not None:
            sample[pid] = stat
    return sample


def cpuPercent(
    before: Mapping[int, ProcStat], after: Mapping[int, ProcStat], seconds: float
) -> Dict[int, float]:
    """
    CPU used by each process present in both samples, in percent of one CPU
    over C{seconds} of wall time (two busy CPUs make 200).  A process that
    started or died between the samples is left out: its time cannot be
    split.
    """
    usage = {}
    for pid, end in after.items():
        start = before.get(pid)
        if start is None or start.startTime != end.startTime or seconds <= 0:
            continue
        usage[pid] = 100.0 * (end.cpuTicks - start.cpuTicks) / CLOCK_TICKS / seconds
    return usage


def parseCpuLine(line: str) -> Tuple[int, int]:
    """
    The busy and total clock ticks of a C{cpu} line of C{/proc/stat}: busy
    is everything but idle and iowait (steal included: it is time this
    machine wanted and did not get).
    """
    values = [int(v) for v in line.split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    # (guest time is already counted in user and nice).
    values = values[:8]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values)
    return total - idle, total


def hostCpuTicks() -> Tuple[int, int]:
    """
    Busy and total ticks of all CPUs together, from C{/proc/stat}.
    """
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("cpu "):
                return parseCpuLine(line)
    raise OSError("/proc/stat has no cpu line")


def busyPercent(before: Tuple[int, int], after: Tuple[int, int], seconds: float) -> float:
    """
    How many CPUs' worth (in percent, two busy CPUs make 200) the whole
    machine was busy between two L{hostCpuTicks} samples.
    """
    if seconds <= 0:
        return 0.0
    return 100.0 * (after[0] - before[0]) / CLOCK_TICKS / seconds
