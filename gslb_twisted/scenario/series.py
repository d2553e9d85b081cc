"""
What the scenario's clients got, counted by time: pure, and bounded in
memory whatever the load (counts, never the answers themselves).

Every query lands in a bin by the time it was sent (scenario seconds from
t=0), twice:

  - in a I{bucket} of the uniform grid (C{width} seconds): the chart, the
    per-bucket JSON and the unanswered gaps;
  - in a I{segment} between two I{marks}: the times the scenario names
    (0, the end, every event, every expectation's window edges).  Windows
    are made of whole segments, so an expectation's counts are exact, not
    rounded to buckets.

Each bin keeps, per key, C{[count, first sent, last sent]} (sparse: only
keys seen), and a latency histogram (geometric bins, 12 per decade from
10 us to 10 s).  Keys are tuples C{(kind, name, population)}; the
population is None for the total over every population:

  - C{("answered", None, P)}, C{("lost", None, P)}: queries answered / not
    answered within the load's timeout;
  - C{("rcode", CLASS, P)}: answers by class (NOERROR with an address,
    EMPTY: NOERROR without one, NXDOMAIN, SERVFAIL, REFUSED, ...);
  - C{("site", SITE, P)}, C{("address", IP, P)}: the addresses given, by
    the site they belong to (C{"?"}: none of the topology's) and by
    address (an answer with two addresses counts twice).
"""

from __future__ import annotations

import bisect
import math
from typing import Iterable, Mapping, Optional, Sequence

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
UNKNOWN_SITE = "?"

# Latency histogram: geometric bins, as the chaos load's.
PER_DECADE = 12
LOW = 1e-5
LATENCY_BINS = 6 * PER_DECADE + 1


def rcodeClass(rcode: int, addresses: Sequence[str]) -> str:
    """NOERROR (with an address), EMPTY (NOERROR without), or the rcode's name (OTHER if unnamed)."""
    if rcode == 0:
        return "NOERROR" if addresses else "EMPTY"
    return RCODE_NAMES.get(rcode, "OTHER")


def latencyBin(seconds: float) -> int:
    if seconds <= LOW:
        return 0
    return min(LATENCY_BINS - 1, int(math.log10(seconds / LOW) * PER_DECADE))


def binUpper(index: int) -> float:
    """The upper edge of latency bin C{index}, seconds."""
    return LOW * 10 ** ((index + 1) / PER_DECADE)


def percentile(histogram: Mapping[int, int], p: float) -> Optional[float]:
    """The upper edge (seconds) of the bin holding the C{p}th percentile; None if empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(total * p / 100.0))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return binUpper(index)
    return binUpper(max(histogram))


class Bins:
    """
    Consecutive bins between C{edges} (ascending; times before the first
    edge go to the first bin, after the last to the last).
    """

    def __init__(self, edges: Sequence[float]) -> None:
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("bins need at least two ascending edges")
        self.edges = list(edges)
        self.stats: list[dict[tuple, list]] = [{} for _ in range(len(edges) - 1)]
        self.latency: list[dict[tuple, int]] = [{} for _ in range(len(edges) - 1)]

    def __len__(self) -> int:
        return len(self.stats)

    def index(self, t: float) -> int:
        return min(len(self.stats) - 1, max(0, bisect.bisect_right(self.edges, t) - 1))

    def bounds(self, index: int) -> tuple[float, float]:
        return self.edges[index], self.edges[index + 1]

    def note(self, index: int, key: tuple, t: float, n: int = 1) -> None:
        stats = self.stats[index]
        entry = stats.get(key)
        if entry is None:
            stats[key] = [n, t, t]
        else:
            entry[0] += n
            if t < entry[1]:
                entry[1] = t
            if t > entry[2]:
                entry[2] = t

    def within(self, start: float, end: float) -> list[int]:
        """The bins whose middle lies in [start, end) (a bin of the window's edges counts if mostly inside)."""
        out = []
        for index in range(len(self.stats)):
            low, high = self.bounds(index)
            middle = (low + high) / 2
            if start <= middle < end:
                out.append(index)
        return out


class Summary:
    """C{count}, C{first} and C{last} send times of one key over some bins."""

    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = 0
        self.first: Optional[float] = None
        self.last: Optional[float] = None

    def add(self, entry: Optional[list]) -> None:
        if not entry:
            return
        n, first, last = entry
        self.count += n
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def __repr__(self) -> str:
        return f"Summary(count={self.count}, first={self.first}, last={self.last})"


class Series:
    """
    The scenario's answers by time.

    @param duration: scenario seconds (the last bin ends there).
    @param width: bucket width, scenario seconds.
    @param marks: the times expectations and events name (0 and
        C{duration} are added).
    @param siteOf: service address -> site.
    @param populations: population names (for the per-population rows).
    """

    def __init__(self, duration: float, width: float, marks: Iterable[float], siteOf: Mapping[str, str],
                 populations: Sequence[str] = ()) -> None:
        if duration <= 0 or width <= 0:
            raise ValueError("a series needs a positive duration and bucket width")
        self.duration = duration
        self.width = width
        count = max(1, int(math.ceil(duration / width - 1e-9)))
        edges = [round(i * width, 9) for i in range(count)] + [duration]
        self.buckets = Bins(edges)
        cuts = sorted({0.0, float(duration)} | {float(m) for m in marks if 0 < m < duration})
        self.segments = Bins(cuts)
        self.siteOf = dict(siteOf)
        self.sites: list[str] = list(dict.fromkeys(siteOf.values()))
        self.populations = list(populations)
        self.answeredTotal = 0
        self.lostTotal = 0
        self.lastSent: Optional[float] = None

    # --- recording ----------------------------------------------------------------

    def answered(self, t: float, population: Optional[str], rcode: int, addresses: Sequence[str], latency: float) -> None:
        """One answered query, sent at C{t}, answered C{latency} seconds later (real seconds)."""
        cls = rcodeClass(rcode, addresses)
        keys = [("answered", None), ("rcode", cls)]
        for address in addresses:
            site = self.siteOf.get(address, UNKNOWN_SITE)
            if site == UNKNOWN_SITE and UNKNOWN_SITE not in self.sites:
                self.sites.append(UNKNOWN_SITE)
            keys.append(("site", site))
            keys.append(("address", address))
        binned = latencyBin(latency)
        for bins in (self.buckets, self.segments):
            index = bins.index(t)
            histogram = bins.latency[index]
            for pop in (None, population) if population is not None else (None,):
                for kind, name in keys:
                    bins.note(index, (kind, name, pop), t)
                histogram[(pop, binned)] = histogram.get((pop, binned), 0) + 1
        self.answeredTotal += 1
        self._sent(t)

    def lost(self, t: float, population: Optional[str] = None) -> None:
        """One query sent at C{t} that got no answer in time."""
        for bins in (self.buckets, self.segments):
            index = bins.index(t)
            for pop in (None, population) if population is not None else (None,):
                bins.note(index, ("lost", None, pop), t)
        self.lostTotal += 1
        self._sent(t)

    def _sent(self, t: float) -> None:
        if self.lastSent is None or t > self.lastSent:
            self.lastSent = t

    # --- reading ------------------------------------------------------------------

    def summary(self, kind: str, name: Optional[str], start: float, end: float,
                population: Optional[str] = None, bins: Optional[Bins] = None) -> Summary:
        """One key over the window [start, end) (whole segments: exact when both are marks)."""
        bins = bins if bins is not None else self.segments
        total = Summary()
        for index in bins.within(start, end):
            total.add(bins.stats[index].get((kind, name, population)))
        return total

    def names(self, kind: str, start: float, end: float, population: Optional[str] = None) -> dict[str, int]:
        """C{name -> count} of every key of C{kind} (sites, addresses, rcode classes) in the window."""
        out: dict[str, int] = {}
        for index in self.segments.within(start, end):
            for (k, name, pop), entry in self.segments.stats[index].items():
                if k == kind and pop == population:
                    out[name] = out.get(name, 0) + entry[0]
        return out

    def histogram(self, start: float, end: float, population: Optional[str] = None,
                  bins: Optional[Bins] = None) -> dict[int, int]:
        bins = bins if bins is not None else self.segments
        out: dict[int, int] = {}
        for index in bins.within(start, end):
            for (pop, binned), n in bins.latency[index].items():
                if pop == population:
                    out[binned] = out.get(binned, 0) + n
        return out

    def latencyPercentile(self, p: float, start: float, end: float, population: Optional[str] = None) -> Optional[float]:
        """Seconds (the upper edge of its histogram bin), or None without answers."""
        return percentile(self.histogram(start, end, population), p)

    def longestGap(self, start: float, end: float, population: Optional[str] = None) -> tuple[float, Optional[float]]:
        """
        The longest stretch during which no query sent got an answer, in
        scenario seconds, and when it began (None: no unanswered query):
        from the send time of the last answered query before a run of
        unanswered ones to that of the first answered after it (or of the
        last unanswered one, when none was answered after).  Found on the
        bucket grid: unanswered queries sent between two answered ones of
        the same bucket (a gap shorter than a bucket) are not seen.
        """
        gap, at = 0.0, None
        previous: Optional[float] = None  # the last answered send time so far
        pending = False  # unanswered queries since previous
        firstLost: Optional[float] = None
        lastLost: Optional[float] = None
        for index in self.buckets.within(start, end):
            stats = self.buckets.stats[index]
            answered = stats.get(("answered", None, population))
            lost = stats.get(("lost", None, population))
            if lost:
                lastLost = lost[2] if lastLost is None else max(lastLost, lost[2])
                if firstLost is None:
                    firstLost = lost[1]
            if not answered:
                if lost:
                    pending = True
                continue
            if pending or (lost and lost[1] < answered[1]):
                since = previous if previous is not None else firstLost
                if since is not None and answered[1] - since > gap:
                    gap, at = answered[1] - since, since
            pending = bool(lost) and lost[2] > answered[2]
            previous = answered[2]
            if not pending:
                firstLost = None
        if pending and lastLost is not None:
            since = previous if previous is not None else firstLost
            if since is not None and lastLost - since >= gap:
                gap, at = lastLost - since, since
        if at is None and self.summary("lost", None, start, end, population, self.buckets).count:
            at = start  # unanswered queries, all between answered ones of their bucket
        return gap, at

    # --- export -------------------------------------------------------------------

    def rows(self) -> dict:
        """
        The bucket grid, column by column: C{t} (bucket starts), C{answered},
        C{unanswered}, C{rcodes} {class: [...]}, C{sites} {site: [...]},
        C{addresses}, C{populations} {population: {answered, unanswered,
        sites}}, C{latency_p50_ms}, C{latency_p99_ms}.
        """
        bins = self.buckets
        count = len(bins)

        def column(kind: str, name: Optional[str], pop: Optional[str] = None) -> list[int]:
            return [bins.stats[i].get((kind, name, pop), (0,))[0] for i in range(count)]

        def names(kind: str) -> list[str]:
            seen: dict[str, None] = {}
            for stats in bins.stats:
                for (k, name, _pop) in stats:
                    if k == kind:
                        seen[name] = None
            return list(seen)

        sites = [site for site in self.sites if any(column("site", site))] or []
        ordered = [site for site in self.sites if site in sites]
        p50, p99 = [], []
        for i in range(count):
            histogram = {b: n for (pop, b), n in bins.latency[i].items() if pop is None}
            for column_, p in ((p50, 50), (p99, 99)):
                value = percentile(histogram, p)
                column_.append(None if value is None else round(value * 1000, 3))
        return {
            "bucket": self.width,
            "t": [round(bins.edges[i], 6) for i in range(count)],
            "answered": column("answered", None),
            "unanswered": column("lost", None),
            "rcodes": {name: column("rcode", name) for name in sorted(names("rcode"))},
            "sites": {site: column("site", site) for site in ordered},
            "addresses": {address: column("address", address) for address in sorted(names("address"))},
            "populations": {
                pop: {
                    "answered": column("answered", None, pop),
                    "unanswered": column("lost", None, pop),
                    "sites": {site: column("site", site, pop) for site in ordered if any(column("site", site, pop))},
                }
                for pop in self.populations
            },
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
        }
