"""
Expectations judged against the recorded L{Series}: pure.

Each gives a L{Verdict}: passed or not, and what was measured, in words
and as a number.  Semantics (docs/SCENARIOS.md, "Expectations"), with
every time in scenario seconds and windows [from, to) by send time:

  - C{no-answer}: no address of the target (a site's, a service's, or one
    address) in any answer to a query sent in [from + grace, to).  A window
    with no answer at all fails: there is nothing to judge.
  - C{share}: the target's addresses / all addresses given in the window,
    in percent, within [min, max].
  - C{unanswered}: the longest stretch without an answered query
    (L{Series.longestGap}) at most C{max_gap} real seconds (like latency,
    a client's experience: not scaled by --speed), and/or unanswered /
    sent at most C{max_percent}.
  - C{latency}: the C{percentile} of answer latency (real milliseconds,
    to the upper edge of its histogram bin) below C{below_ms}.
  - C{rcode}: answers of that class / all answers at most C{max_percent}.
  - C{failover}: the last query sent in [after, until) whose answer named
    the target was sent at most C{within} seconds after C{after} (none at
    all: 0).  There must be answers after that point (else nothing shows
    that answers stopped naming it).
  - C{recovery}: the first query sent in [after, until) whose answer named
    the target was sent at most C{within} seconds after C{after}.

When C{after} names an event, the time is measured from when the runner
applied it (C{applied}: a loaded machine may apply it a little late), not
from when it was due: the appliance is judged, not the scheduler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

from gslb_twisted.scenario.model import Event, Expectation, Scenario
from gslb_twisted.scenario.series import Series


@dataclass(frozen=True)
class Verdict:
    index: int
    kind: str
    text: str  # the expectation, in words
    passed: bool
    measured: str  # what was measured, in words
    value: Optional[float]  # the number compared (percent, seconds, ms, count)
    note: Optional[str] = None

    def asDict(self) -> dict:
        return asdict(self)


def _target(expectation: Expectation, scenario: Scenario) -> tuple[str, list[str]]:
    """(key kind, names): the keys of the series that name the target."""
    if expectation.site is not None:
        return "site", [expectation.site]
    if expectation.service is not None:
        return "address", [scenario.topology.serviceByName[expectation.service].ip]
    return "address", [expectation.address]


def _window(expectation: Expectation) -> str:
    start, end = expectation.start.text, expectation.end.text
    if expectation.kind == "no-answer" and expectation.grace:
        start = f"{start} + {expectation.grace:g} s grace"
    who = f" for population {expectation.population}" if expectation.population else ""
    return f"from {start} to {end}{who}"


def describe(expectation: Expectation) -> str:
    """The expectation in words."""
    kind = expectation.kind
    target = expectation.target
    if kind == "no-answer":
        return f"no answer names {target} {_window(expectation)}"
    if kind == "share":
        return f"{target} gets {expectation.min:g}-{expectation.max:g} % of the answers {_window(expectation)}"
    if kind == "unanswered":
        parts = []
        if expectation.max_gap is not None:
            parts.append(f"no query unanswered for more than {expectation.max_gap:g} s")
        if expectation.max_percent is not None:
            parts.append(f"at most {expectation.max_percent:g} % unanswered")
        return " and ".join(parts) + " " + _window(expectation)
    if kind == "latency":
        return f"p{expectation.percentile:g} answer latency below {expectation.below_ms:g} ms {_window(expectation)}"
    if kind == "rcode":
        return f"at most {expectation.max_percent:g} % {expectation.rcode} answers {_window(expectation)}"
    until = "" if expectation.end.text == "end" else f" (looking until {expectation.end.text})"
    who = f" for population {expectation.population}" if expectation.population else ""
    if kind == "failover":
        return f"answers stop naming {target} within {expectation.within:g} s of {expectation.start.text}{until}{who}"
    return f"an answer names {target} again within {expectation.within:g} s of {expectation.start.text}{until}{who}"


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3g} s"


def evaluate(scenario: Scenario, series: Series, speed: float = 1.0,
             applied: Optional[Mapping[str, float]] = None) -> list[Verdict]:
    """
    Every expectation of C{scenario}, judged; C{speed}: the run's (gaps
    are real seconds); C{applied}: event id -> when it was applied.
    """
    return [judge(expectation, scenario, series, speed, applied) for expectation in scenario.expectations]


def judge(expectation: Expectation, scenario: Scenario, series: Series, speed: float = 1.0,
          applied: Optional[Mapping[str, float]] = None) -> Verdict:
    kind = expectation.kind
    start, end = expectation.start.at, expectation.end.at
    pop = expectation.population
    text = describe(expectation)

    def verdict(passed: bool, measured: str, value: Optional[float]) -> Verdict:
        return Verdict(expectation.index, kind, text, bool(passed), measured, value, expectation.note)

    if kind in ("no-answer", "share", "failover", "recovery"):
        keyKind, names = _target(expectation, scenario)
    if kind == "no-answer":
        start += expectation.grace
        answered = series.summary("answered", None, start, end, pop)
        if not answered.count:
            return verdict(False, "no answer at all in the window: nothing to judge", None)
        hits = _combined(series, keyKind, names, start, end, pop)
        if not hits.count:
            return verdict(True, f"0 of {answered.count} answers", 0)
        return verdict(False, f"{hits.count} of {answered.count} answers named it, the last sent at t={hits.last:.3f}",
                       hits.count)
    if kind == "share":
        given = series.names(keyKind if keyKind == "address" else "site", start, end, pop)
        total = sum(given.values())
        if not total:
            return verdict(False, "no address given at all in the window: nothing to judge", None)
        mine = sum(given.get(name, 0) for name in names)
        share = 100.0 * mine / total
        ok = expectation.min - 1e-9 <= share <= expectation.max + 1e-9
        return verdict(ok, f"{share:.1f} % ({mine} of {total} addresses given)", round(share, 3))
    if kind == "unanswered":
        answered = series.summary("answered", None, start, end, pop).count
        lost = series.summary("lost", None, start, end, pop).count
        sent = answered + lost
        if not sent:
            return verdict(False, "no query sent in the window: nothing to judge", None)
        parts, ok, value = [], True, None
        if expectation.max_gap is not None:
            gap, at = series.longestGap(start, end, pop)
            real = gap / speed
            value = round(real, 4)
            ok = ok and real <= expectation.max_gap + 1e-9
            where = "" if at is None else f" from t={at:.3f}"
            parts.append(f"longest gap {real:.3f} s{where}" + (f" ({gap:.3f} scenario s)" if speed != 1 else ""))
        percent = 100.0 * lost / sent
        if expectation.max_percent is not None:
            ok = ok and percent <= expectation.max_percent + 1e-9
            if value is None:
                value = round(percent, 4)
        parts.append(f"{lost} of {sent} unanswered ({percent:.2f} %)")
        return verdict(ok, "; ".join(parts), value)
    if kind == "latency":
        seconds = series.latencyPercentile(expectation.percentile, start, end, pop)
        if seconds is None:
            return verdict(False, "no answer at all in the window: nothing to judge", None)
        ms = seconds * 1000
        return verdict(ms < expectation.below_ms, f"p{expectation.percentile:g} <= {ms:.2f} ms", round(ms, 3))
    if kind == "rcode":
        answered = series.summary("answered", None, start, end, pop).count
        if not answered:
            return verdict(False, "no answer at all in the window: nothing to judge", None)
        count = series.summary("rcode", expectation.rcode, start, end, pop).count
        percent = 100.0 * count / answered
        return verdict(percent <= expectation.max_percent + 1e-9,
                       f"{count} of {answered} answers ({percent:.2f} %)", round(percent, 4))
    hits = _combined(series, keyKind, names, start, end, pop)
    # Measured from the event as applied.
    anchor = expectation.start.actual(applied or {})
    since = "" if abs(anchor - start) < 0.01 else f"; the event was applied at t={anchor:.3f}"
    if kind == "failover":
        took = 0.0 if hits.last is None else max(0.0, hits.last - anchor)
        answered = series.summary("answered", None, start, end, pop)
        if not answered.count:
            return verdict(False, "no answer at all in the window: nothing to judge", None)
        if hits.last is not None and answered.last <= hits.last:
            return verdict(False, f"answers named it until t={hits.last:.3f}, and no answer came after to show it stopped",
                           round(took, 4))
        if hits.last is None:
            return verdict(took <= expectation.within, f"no answer named it after the event (0 s){since}", 0.0)
        return verdict(took <= expectation.within,
                       f"{took:.3f} s (the last answer naming it was sent at t={hits.last:.3f}{since})", round(took, 4))
    # recovery
    if hits.first is None:
        return verdict(False, f"no answer named it between {expectation.start.text} and {expectation.end.text}", None)
    took = max(0.0, hits.first - anchor)
    return verdict(took <= expectation.within,
                   f"{took:.3f} s (first answer naming it sent at t={hits.first:.3f}{since})", round(took, 4))


def _combined(series: Series, kind: str, names: Sequence[str], start: float, end: float, pop: Optional[str]):
    from gslb_twisted.scenario.series import Summary

    total = Summary()
    for name in names:
        one = series.summary(kind, name, start, end, pop)
        if one.count:
            total.add([one.count, one.first, one.last])
    return total


# --- the failover table ----------------------------------------------------------------

# Events that take a target out of the answers, and those that put it back.
OUT = {
    "site-down": "site", "site-freeze": "site", "link-cut": "site", "link-blackhole": "site",
    "service-down": "service", "disable-service": "service",
}
BACK = {
    "site-up": "site-down", "site-thaw": "site-freeze", "link-restore": ("link-cut", "link-blackhole"),
    "service-up": "service-down", "enable-service": "disable-service",
}


def marks(scenario: Scenario) -> list[float]:
    """The times the series must cut its segments at: events and expectation windows."""
    out = {0.0, scenario.duration}
    for event in scenario.events:
        out.add(event.at)
        if event.span:
            out.add(min(scenario.duration, event.at + event.span))
    for expectation in scenario.expectations:
        out.update((expectation.start.at, expectation.end.at))
        if expectation.grace:
            out.add(expectation.start.at + expectation.grace)
    return sorted(t for t in out if 0 <= t <= scenario.duration)


def _stateAfter(transitions: Sequence[Sequence], at: float, state: str) -> Optional[float]:
    """When the appliance first showed C{state} at or after C{at} (scenario seconds)."""
    for row in transitions:
        if row[0] >= at and row[1] == state:
            return row[0]
    return None


def failovers(scenario: Scenario, series: Series, siteStates: Mapping[str, Sequence[Sequence]],
              applied: Optional[Mapping[int, float]] = None) -> list[dict]:
    """
    For each event that takes a site or service out of the answers: when
    the appliance showed the site DOWN (C{show gslb site}, polled), when
    the last answer naming it was sent, and, for the event that puts it
    back, when the appliance showed it UP and the first answer named it
    again.  Times in scenario seconds, relative to their event as applied
    (C{applied}: event index -> time; else as due).
    """
    rows = []
    events = list(scenario.events)
    applied = applied or {}

    def when(event: Event) -> float:
        return applied.get(event.index, event.at)

    for i, event in enumerate(events):
        if event.action not in OUT:
            continue
        service = scenario.topology.serviceByName.get(event.service) if event.service else None
        site = event.site or (service.site if service else None)
        keyKind, names = ("site", [site]) if event.site else ("address", [service.ip])
        back = None
        for later in events[i + 1:]:
            wanted = BACK.get(later.action)
            if wanted and (event.action == wanted or (isinstance(wanted, tuple) and event.action in wanted)) \
                    and later.site == event.site and later.service == event.service:
                back = later
                break
        until = back.at if back is not None else scenario.duration
        hits = _combined(series, keyKind, names, event.at, until, None)
        at = when(event)
        down = _stateAfter(siteStates.get(site, ()), at, "DOWN") if event.site else None
        row = {
            "event": event.label,
            "target": event.site or event.service,
            "at": event.at,
            "applied_at": round(at, 4),
            "appliance_down_after": None if down is None or down > until else round(down - at, 3),
            "last_answer_after": 0.0 if hits.last is None else round(max(0.0, hits.last - at), 3),
            "answers_naming_it": hits.count,
            "back_event": back.label if back else None,
        }
        if back is not None:
            nextOut = next((e.at for e in events if e.at > back.at and e.action in OUT
                            and e.site == event.site and e.service == event.service), scenario.duration)
            again = _combined(series, keyKind, names, back.at, nextOut, None)
            backAt = when(back)
            up = _stateAfter(siteStates.get(site, ()), backAt, "UP") if event.site else None
            row["appliance_up_after"] = None if up is None else round(up - backAt, 3)
            row["first_answer_after"] = None if again.first is None else round(max(0.0, again.first - backAt), 3)
        rows.append(row)
    return rows
