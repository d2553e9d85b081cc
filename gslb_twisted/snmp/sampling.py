"""
From a metric table to the OIDs one site is polled for, and from the
agent's answers to the metric values of its services.

Pure data and arithmetic: no reactor, no SNMP library.  A L{PollPlan} is
made once per site (placeholders filled); a L{Sampler} keeps what counters
need between polls (the previous reading and its time) and turns each poll's
answers into the per-service metric dictionaries MEP sites report too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from gslb_twisted.config import MetricSpec, MetricTable, Service, SNMPSettings

UP = "UP"
DOWN = "DOWN"

# The value kinds an agent's answer may have (pysnmp's type names); a
# Counter32 wraps at 2**32, a Counter64 going down is a restart.
COUNTER32 = "Counter32"
COUNTER64 = "Counter64"
# Answers that are not a value (SNMPv2 exceptions, and SNMPv1's error for
# an OID the agent does not have).
EXCEPTIONS = ("noSuchObject", "noSuchInstance", "endOfMibView", "noSuchName")

_NUMERIC_INSTANCE = re.compile(r"^\d+(\.\d+)*$")


def encodeInstance(instance: str) -> str:
    """
    A service's index in a table: an OID suffix as written ("3", "1.7"),
    else a name as an SNMP string index -- its length, then its bytes (how
    F5's ltmVirtualServStatTable indexes "/Common/vs_web").

    >>> encodeInstance("/C")
    '2.47.67'
    """
    if _NUMERIC_INSTANCE.match(instance):
        return instance
    data = instance.encode("utf-8")
    return ".".join([str(len(data))] + [str(byte) for byte in data])


def _fill(oid: str, settings: SNMPSettings, instance: Optional[str]) -> str:
    oid = oid.replace("{interface}", str(settings.interface))
    if "{service}" in oid:
        oid = oid.replace("{service}", encodeInstance(instance or ""))
    return oid


@dataclass(frozen=True)
class Reading:
    """One metric to read: for C{services} (one per-service, or all of the site)."""

    metric: str
    spec: MetricSpec
    oid: str
    of: Optional[str]
    services: tuple[str, ...]


@dataclass(frozen=True)
class PollPlan:
    """What one site's poll asks for: every OID once, in a stable order."""

    site: str
    table: str
    services: tuple[str, ...]
    readings: tuple[Reading, ...]
    oids: tuple[str, ...]
    metrics: tuple[str, ...] = ()  # every metric of the table
    # The OIDs that exist only if a service does (a virtual server the
    # device no longer has is DOWN).
    serviceOIDs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def pollPlan(site: str, table: MetricTable, settings: SNMPSettings, services: Sequence[Service]) -> PollPlan:
    """The plan of C{site}, polled with C{table}, for its C{services}."""
    readings: list[Reading] = []
    serviceOIDs: dict[str, list[str]] = {}
    names = tuple(service.name for service in services)
    for metric, spec in table.metrics.items():
        if spec.perService:
            for service in services:
                oid = _fill(spec.oid, settings, service.snmp_instance)
                of = None if spec.of is None else _fill(spec.of, settings, service.snmp_instance)
                readings.append(Reading(metric, spec, oid, of, (service.name,)))
                serviceOIDs.setdefault(service.name, []).extend(o for o in (oid, of) if o)
        else:
            oid = _fill(spec.oid, settings, None)
            of = None if spec.of is None else _fill(spec.of, settings, None)
            readings.append(Reading(metric, spec, oid, of, names))
    oids: dict[str, None] = {}
    for reading in readings:
        oids[reading.oid] = None
        if reading.of is not None:
            oids[reading.of] = None
    return PollPlan(
        site=site,
        table=table.name,
        services=names,
        readings=tuple(readings),
        oids=tuple(oids),
        metrics=tuple(table.metrics),
        serviceOIDs={name: tuple(dict.fromkeys(found)) for name, found in serviceOIDs.items()},
    )


@dataclass(frozen=True)
class Answer:
    """One OID as the agent answered: a number (or None) and its SNMP type."""

    value: Optional[float]
    kind: str


@dataclass
class Sample:
    """
    One poll, made into metrics: per service its values (and state), the
    metrics that could not be computed this time and why, and for values
    not refreshed by this poll, when they last were.
    """

    services: dict[str, dict[str, object]]
    problems: list[str]
    lagging: dict[str, dict[str, float]]


class Sampler:
    """
    The arithmetic of one site's polls (counters need the previous one).

    @param deadInterval: a value no poll has refreshed for this long is
        withdrawn (reported C{None}: missing, so that a method needing it
        falls back) rather than kept looking current.
    """

    def __init__(self, plan: PollPlan, deadInterval: Optional[float] = None) -> None:
        self.plan = plan
        self.deadInterval = deadInterval
        self._previous: dict[str, tuple[float, str, float]] = {}
        self._reportedAt: dict[str, dict[str, float]] = {name: {} for name in plan.services}

    def reset(self) -> None:
        """Forget counters and times (a new master starts afresh)."""
        self._previous.clear()
        for times in self._reportedAt.values():
            times.clear()

    def _rate(self, oid: str, answer: Answer, now: float, read: dict) -> tuple[Optional[float], Optional[str]]:
        # The previous poll's reading; this one's is kept only once every
        # metric has been computed (two metrics may rate one OID).
        previous = self._previous.get(oid)
        read[oid] = (answer.value, answer.kind, now)
        if previous is None:
            return None, "first reading of a counter (a rate needs two)"
        value, _, then = previous
        elapsed = now - then
        if elapsed <= 0:
            return None, "two readings at the same time"
        delta = answer.value - value
        if delta < 0:
            # A 32-bit counter wraps; but one that went back by more than
            # half its range was reset (an agent restart), as a 64-bit one
            # always was: no rate this time, rather than a wild one.
            if answer.kind == COUNTER32 and delta + 2**32 < 2**31:
                delta += 2**32
            else:
                return None, "counter went back (the agent restarted or reset it)"
        return delta / elapsed, None

    def sample(self, answers: Mapping[str, Answer], now: float) -> Sample:
        values: dict[str, dict[str, object]] = {name: {} for name in self.plan.services}
        problems: list[str] = []
        read: dict[str, tuple[float, str, float]] = {}
        for reading in self.plan.readings:
            answer = answers.get(reading.oid)
            value: Optional[float] = None
            why: Optional[str] = None
            if answer is None or answer.value is None:
                why = answer.kind if answer is not None else "no answer"
            elif reading.spec.type == "counter":
                value, why = self._rate(reading.oid, answer, now, read)
            elif reading.spec.type == "ratio":
                denominator = answers.get(reading.of)
                if denominator is None or not denominator.value:
                    why = f"denominator {reading.of}: " + (
                        "zero" if denominator is not None and denominator.value == 0
                        else (denominator.kind if denominator is not None else "no answer")
                    )
                else:
                    value = answer.value / denominator.value
            else:
                value = answer.value
            if value is None:
                problems.append(f"{reading.metric} ({reading.oid}): {why}")
                continue
            value = round(value * reading.spec.scale + reading.spec.offset, 3)
            for service in reading.services:
                values[service][reading.metric] = value
                self._reportedAt[service][reading.metric] = now
        self._previous.update(read)
        lagging: dict[str, dict[str, float]] = {}
        for service in self.plan.services:
            gone = self.plan.serviceOIDs.get(service)
            exists = not gone or any(
                answers.get(oid) is not None and answers[oid].kind not in EXCEPTIONS for oid in gone
            )
            values[service]["state"] = UP if exists else DOWN
            reported = self._reportedAt[service]
            stale = {}
            for metric in self.plan.metrics:
                if metric in values[service]:
                    continue
                at = reported.get(metric)
                if at is None or (self.deadInterval is not None and now - at > self.deadInterval):
                    # Never read since (re)starting, or too long ago: no
                    # value at all, not an old one looking current.
                    values[service][metric] = None
                    reported.pop(metric, None)
                else:
                    stale[metric] = at
            if stale:
                lagging[service] = stale
        return Sample(values, problems, lagging)
