"""
A site's services and their metrics, as the site reports them over MEP.

Pure: no reactor, no I/O.  Time is a number handed in by the caller.

Each metric of each service (L{METRICS}: state, connections, response_time,
bandwidth, packets, load) is the value of the highest layer that has one:

    1. a console pin (C{set service NAME -connections 500}), until released
       with C{unset service NAME -connections};
    2. the running scenario (C{set scenario NAME}: one of C{[site.emulator]
       scenarios}, its times counting from when it was set): its values hold
       until the scenario is stopped or replaced by another;
    3. the scripted timeline (C{[site.emulator] timeline}): an event's values
       hold from the moment it is due until the next event for that metric;
    4. the backend health check (state, and the measured response_time);
    5. the seeded random walk, when C{[site.emulator] seed} is set; without a
       seed the walk does not move and every metric keeps its initial value
       (L{INITIAL}: state UP, connections 0, response_time 10.0,
       bandwidth 0.0, packets 0, load 0.0).

What has been published is versioned: L{SiteModel.collect} compares the
current values with the last published ones and, when something changed,
returns a L{Delta} carrying only the changed values and a new C{seq}
(C{base_seq} being the previous one).  L{SiteModel.snapshot} is the
published state at the current C{seq}.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from gslb_twisted.config import SERVICE_METRICS, Service, TimelineEvent
from gslb_twisted.site.sources import Timeline

METRICS: tuple[str, ...] = tuple(SERVICE_METRICS)

INITIAL: Mapping[str, Any] = {
    "state": "UP",
    "connections": 0,
    "response_time": 10.0,
    "bandwidth": 0.0,
    "packets": 0,
    "load": 0.0,
}

# The walk's ceiling on connections when the service sets no max_clients.
DEFAULT_CONNECTION_CEILING = 1000

# Layer names, highest precedence first (what `show services` calls the source).
PIN, SCENARIO, TIMELINE, BACKEND, WALK, INITIAL_SOURCE = "pin", "scenario", "timeline", "backend", "walk", "initial"

Values = dict[str, Any]


@dataclass(frozen=True)
class Delta:
    """The values that changed between publication C{baseSeq} and C{seq}."""

    seq: int
    baseSeq: int
    changes: Mapping[str, Mapping[str, Any]]  # service -> metric -> value


@dataclass
class RunningScenario:
    """A scenario set from the console: its events, and when it started."""

    name: str
    timeline: Timeline
    start: float

    def finished(self) -> bool:
        return self.timeline.pending() == 0


def scenarioRow(name: str, events: int, running: Optional[RunningScenario], now: float) -> dict[str, Any]:
    """
    One scenario for C{show scenarios}: {name, events, running, elapsed,
    pending, finished, started_at}; C{running} is the scenario in force, if
    any (this one or another).
    """
    mine = running is not None and running.name == name
    return {
        "name": name,
        "events": events,
        "running": mine,
        "elapsed": round(now - running.start, 3) if mine else None,
        "pending": running.timeline.pending() if mine else None,
        "finished": running.finished() if mine else None,
        "started_at": running.start if mine else None,
    }


def diff(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> dict[str, Values]:
    """
    The values of C{new} that differ from C{old}, per service: a service or
    metric missing from C{old} counts as changed, one missing from C{new} is
    not reported.  Services with nothing changed are left out.
    """
    changes: dict[str, Values] = {}
    for name, values in new.items():
        before = old.get(name, {})
        changed = {m: v for m, v in values.items() if m not in before or before[m] != v}
        if changed:
            changes[name] = changed
    return changes


def checkValue(metric: str, value: Any) -> Any:
    """
    C{value} converted for C{metric}, as the topology's timeline would take it.

    @raise ValueError: unknown metric, or a value it cannot take.
    """
    if metric not in SERVICE_METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    check, expected = SERVICE_METRICS[metric]
    try:
        return check(value)
    except (TypeError, ValueError):
        raise ValueError(f"{metric}: expected {expected}, found {value!r}") from None


class RandomWalk:
    """
    Small bounded steps from the initial values, reproducible for a seed:
    the n-th step of a given seed over the same services is always the same.
    The walk never changes C{state}.
    """

    def __init__(self, services: Sequence[Service], seed: int) -> None:
        self.random = random.Random(seed)
        self.ceilings = {s.name: s.max_clients or DEFAULT_CONNECTION_CEILING for s in services}

    def step(self, name: str, values: Values) -> Values:
        """C{values} one step further; the same number of draws every time."""
        r = self.random
        ceiling = self.ceilings[name]
        stride = max(1, ceiling // 50)
        return {
            "state": values["state"],
            "connections": _clamp(values["connections"] + r.randint(-stride, stride), 0, ceiling),
            "response_time": round(_clamp(values["response_time"] + r.uniform(-2.0, 2.0), 1.0, 10000.0), 1),
            "bandwidth": round(_clamp(values["bandwidth"] + r.uniform(-50.0, 50.0), 0.0, 10_000_000.0), 1),
            "packets": _clamp(values["packets"] + r.randint(-20, 20), 0, 10_000_000),
            "load": round(_clamp(values["load"] + r.uniform(-2.0, 2.0), 0.0, 100.0), 1),
        }


def _clamp(value, low, high):
    return max(low, min(high, value))


class SiteModel:
    """
    The services of one site and the layered sources of their metrics.

    @ivar seq: the version of the published state (starts at 1).
    """

    def __init__(
        self,
        services: Sequence[Service],
        seed: Optional[int] = None,
        timeline: Sequence[TimelineEvent] = (),
    ) -> None:
        self.services: dict[str, Service] = {s.name: s for s in services}
        self.walk = RandomWalk(services, seed) if seed is not None else None
        self.timeline = Timeline(timeline)
        self.start: Optional[float] = None
        self.base: dict[str, Values] = {name: dict(INITIAL) for name in self.services}
        self.backend: dict[str, Values] = {name: {} for name in self.services}
        self.scripted: dict[str, Values] = {name: {} for name in self.services}
        self.pins: dict[str, Values] = {name: {} for name in self.services}
        self.scenarioValues: dict[str, Values] = {name: {} for name in self.services}
        self.scenario: Optional[RunningScenario] = None
        self.seq = 1
        self.published: dict[str, Values] = self.current()

    # --- time --------------------------------------------------------------

    def begin(self, now: float) -> Optional[Delta]:
        """
        The emulator starts at C{now}: timeline times count from here, and
        the events due at once apply (without a walk step).
        """
        self.start = now
        self._applyTimeline(now)
        return self.collect()

    def advance(self, now: float) -> None:
        """One step of the walk, and the timeline events now due."""
        if self.start is None:
            self.start = now
        if self.walk is not None:
            for name in self.services:
                self.base[name] = self.walk.step(name, self.base[name])
        self._applyTimeline(now)
        self.applyScenario(now)

    def tick(self, now: float) -> Optional[Delta]:
        """L{advance}, then L{collect}: what to push to the peers, if anything."""
        self.advance(now)
        return self.collect()

    def _applyTimeline(self, now: float) -> None:
        for event in self.timeline.due(now - self.start):
            self.scripted[event.service].update(event.values)

    # --- scenarios --------------------------------------------------------------

    def startScenario(self, name: str, events: Sequence[TimelineEvent], now: float) -> Optional[str]:
        """
        Play C{events} from C{now} on (those due at once apply now),
        releasing the values of the scenario in force.

        @raise KeyError: an event names a service of another site.
        @return: the name of the scenario it replaced, if any.
        """
        for event in events:
            self._service(event.service)
        replaced = None if self.scenario is None else self.scenario.name
        for values in self.scenarioValues.values():
            values.clear()
        self.scenario = RunningScenario(name, Timeline(events), now)
        self.applyScenario(now)
        return replaced

    def stopScenario(self) -> Optional[RunningScenario]:
        """Drop the scenario in force and release its values; the scenario stopped, if any."""
        stopped, self.scenario = self.scenario, None
        for values in self.scenarioValues.values():
            values.clear()
        return stopped

    def applyScenario(self, now: float) -> int:
        """Apply the running scenario's events now due; how many were."""
        if self.scenario is None:
            return 0
        due = self.scenario.timeline.due(now - self.scenario.start)
        for event in due:
            self.scenarioValues[event.service].update(event.values)
        return len(due)

    def nextScenarioEvent(self) -> Optional[float]:
        """When (absolute time) the running scenario's next event falls due; C{None}: none."""
        if self.scenario is None:
            return None
        at = self.scenario.timeline.nextAt()
        return None if at is None else self.scenario.start + at

    # --- publication ----------------------------------------------------------

    def collect(self) -> Optional[Delta]:
        """
        Publish what changed since the last publication: a L{Delta} with the
        next C{seq}, or C{None} (and C{seq} unchanged) when nothing did.
        """
        current = self.current()
        changes = diff(self.published, current)
        if not changes:
            return None
        delta = Delta(seq=self.seq + 1, baseSeq=self.seq, changes=changes)
        self.seq = delta.seq
        self.published = current
        return delta

    def snapshot(self) -> tuple[int, dict[str, Values]]:
        """The published state and its C{seq} (a copy)."""
        return self.seq, {name: dict(values) for name, values in self.published.items()}

    def current(self) -> dict[str, Values]:
        """Every service's effective values now (published or not)."""
        return {name: self.effective(name) for name in self.services}

    def effective(self, name: str) -> Values:
        values = dict(self.base[name])
        for layer in (self.backend, self.scripted, self.scenarioValues, self.pins):
            values.update(layer[name])
        return values

    def source(self, name: str, metric: str) -> str:
        """Which layer C{metric} of service C{name} comes from."""
        layers = ((PIN, self.pins), (SCENARIO, self.scenarioValues), (TIMELINE, self.scripted), (BACKEND, self.backend))
        for label, layer in layers:
            if metric in layer[name]:
                return label
        return WALK if self.walk is not None and metric != "state" else INITIAL_SOURCE

    # --- the layers -----------------------------------------------------------

    def _service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(name) from None

    def pin(self, name: str, values: Mapping[str, Any]) -> Values:
        """
        Pin C{values} of service C{name} (all or nothing).

        @raise KeyError: no such service at this site.
        @raise ValueError: an unknown metric or a value it cannot take.
        @return: the pinned values, converted.
        """
        self._service(name)
        if not values:
            raise ValueError("expected at least one metric to set")
        checked = {metric: checkValue(metric, value) for metric, value in values.items()}
        self.pins[name].update(checked)
        return checked

    def unpin(self, name: str, metrics: Iterable[str]) -> None:
        """
        Release pins of service C{name}; releasing a metric that is not
        pinned is harmless.

        @raise KeyError: no such service at this site.
        @raise ValueError: an unknown metric.
        """
        self._service(name)
        metrics = list(metrics)
        for metric in metrics:
            if metric not in SERVICE_METRICS:
                raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
        for metric in metrics:
            self.pins[name].pop(metric, None)

    def setBackend(self, name: str, state: str, responseTime: Optional[float] = None) -> None:
        """
        The backend check's verdict: C{state}, and the measured response
        time in milliseconds when it answered (a DOWN backend keeps nothing
        but its state).
        """
        self._service(name)
        values: Values = {"state": checkValue("state", state)}
        if responseTime is not None:
            values["response_time"] = round(max(1.0, float(responseTime)), 1)
        self.backend[name] = values

    # --- views -------------------------------------------------------------------

    def row(self, name: str) -> dict[str, Any]:
        """One service for C{show services}: its published values, and which are pinned."""
        service = self._service(name)
        values = self.effective(name)
        row: dict[str, Any] = {"name": name, "ip": service.ip, "port": service.port}
        row.update(values)
        row["pinned"] = sorted(self.pins[name], key=METRICS.index)
        row["sources"] = {metric: self.source(name, metric) for metric in METRICS}
        row["backend"] = service.backend
        return row

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(name) for name in self.services]
