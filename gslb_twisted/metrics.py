"""
The GSLB metric table: every site's metrics as one core holds them, with
the version (epoch, seq) that says which master wrote them and how far.

Pure data and decisions, no reactor: the master applies what its MEP
session receives and propagates the difference; every other core applies
snapshots and deltas only from the master it knows, in sequence.
"""

from __future__ import annotations

import collections.abc
import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

UP = "UP"
DOWN = "DOWN"

# Outcomes of applying a delta.
APPLIED = "applied"
GAP = "gap"  # base_seq is not our seq: ask the master for a snapshot
STALE = "stale"  # not from the master and epoch we know: ignored, counted

Services = dict[str, dict[str, Any]]

# Client networks whose RTT a site's table keeps; past that, the oldest
# measured are forgotten (re-probed if their clients come back).
MAX_PROBES = 4096


def _capProbes(probes: dict) -> None:
    """Forget the oldest measurements past L{MAX_PROBES} (dicts keep insertion order)."""
    excess = len(probes) - MAX_PROBES
    if excess > 0:
        for network in list(probes)[:excess]:
            del probes[network]


def diffServices(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> Services:
    """
    What changed from C{old} to C{new}: per service, only the metrics whose
    value differs (a service that appears carries all its metrics).
    """
    changes: Services = {}
    for name, metrics in new.items():
        before = old.get(name)
        if before is None:
            changes[name] = dict(metrics)
            continue
        changed = {key: value for key, value in metrics.items() if before.get(key) != value}
        if changed:
            changes[name] = changed
    return changes


def _sameName(name: str) -> str:
    return name


def ownServices(
    services: Mapping[str, Mapping[str, Any]], canonical: Callable[[str], str] = _sameName
) -> Services:
    """
    A table's own copy of C{services} (as decoded from a message): one dict
    per service, keyed by C{canonical(name)} -- on a core, the topology's
    own string, so that 20,000 services do not hold a second copy of their
    names -- with one string object per state.
    """
    return {canonical(name): _own(values) for name, values in services.items()}


# One string object for each state, whatever message a value came from.
_STATES = {UP: UP, DOWN: DOWN}


class ServiceReport:
    """
    What a site reported of one service (its metrics, and the appliance's
    own monitor verdict), as a core keeps it: a mapping of metric name to
    value, in slots.  A core keeps one per service of every site -- 20,000
    at 1,000 sites -- and a dict of six values costs three times the
    memory.  The usual names have slots; any other (a metric an SNMP
    metric table defines) goes to a dict made when first needed.
    """

    __slots__ = ("state", "connections", "response_time", "bandwidth", "packets", "load", "monitor", "_others")
    _slotted = ("state", "connections", "response_time", "bandwidth", "packets", "load", "monitor")
    _names = frozenset(_slotted)

    def __init__(self, values: Mapping[str, Any] = ()) -> None:
        self._others: Optional[dict[str, Any]] = None
        self.update(values)

    # Reading.

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._names:
            return getattr(self, key, default)
        others = self._others
        return default if others is None else others.get(key, default)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT  # type: ignore[arg-type]

    def keys(self) -> list[str]:
        names = [name for name in self._slotted if hasattr(self, name)]
        if self._others:
            names.extend(self._others)
        return names

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def values(self) -> list[Any]:
        return [self[name] for name in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self[name]) for name in self.keys()]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, collections.abc.Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    # Writing.

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._names:
            if key == "state":
                value = _STATES.get(value, value)
            setattr(self, key, value)
        else:
            if self._others is None:
                self._others = {}
            self._others[key] = value

    def update(self, values: Mapping[str, Any] = ()) -> None:
        for key, value in (values.items() if hasattr(values, "items") else values):
            self[key] = value

    def pop(self, key: str, *default: Any) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            if default:
                return default[0]
            raise KeyError(key)
        del self[key]
        return value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        if key in self._names:
            delattr(self, key)
        else:
            del self._others[key]

    def copy(self) -> dict[str, Any]:
        """A plain dict of the values (for a message or a console)."""
        return dict(self.items())


_ABSENT = object()


collections.abc.Mapping.register(ServiceReport)


def _own(values: Mapping[str, Any]) -> ServiceReport:
    return ServiceReport(values)


def wireServices(services: Mapping[str, Mapping[str, Any]]) -> Services:
    """C{services} as plain dicts, for a message."""
    return {name: dict(values.items()) for name, values in services.items()}


def applyServiceChanges(
    services: Services, changes: Mapping[str, Mapping[str, Any]], canonical: Callable[[str], str] = _sameName
) -> None:
    """Apply C{changes} (as L{diffServices} makes them) to C{services} in place."""
    for name, metrics in changes.items():
        known = services.get(name)
        if known is None:
            services[canonical(name)] = _own(metrics)
        else:
            known.update(metrics)


@dataclass(slots=True)
class SiteMetrics:
    """
    One site as a core holds it.

    @ivar state: UP while the master has a live, authenticated MEP session
        that delivered a snapshot (or the site exchanges no metrics); DOWN
        otherwise; C{None} before anything is known.
    @ivar updatedAt: when (core clock) the master last heard from the site.
    """

    site: str
    epoch: int = 0
    seq: int = 0
    state: Optional[str] = None
    rtt: Optional[float] = None
    services: Services = field(default_factory=dict)
    # RTT (ms) from the site to client networks, as the site measured them,
    # oldest first; probesVersion counts their changes.
    probes: dict[str, float] = field(default_factory=dict)
    probesVersion: int = 0
    updatedAt: Optional[float] = None
    hasSnapshot: bool = False
    # Values the last report did not refresh (an SNMP OID that failed this
    # poll), with when they were last reported: service -> metric -> time.
    # Every other value is as fresh as updatedAt.
    lagging: dict[str, dict[str, float]] = field(default_factory=dict)
    # When this core took the current version (time.monotonic, the same
    # clock in every process of the machine): propagation is measured from
    # it (benchmarks.propagation), exactly, not by polling.
    appliedAt: Optional[float] = None

    def ageOf(self, service: str, metric: str, now: float) -> Optional[float]:
        """How old one value is (seconds), C{None} if never reported."""
        at = self.lagging.get(service, {}).get(metric, self.updatedAt)
        return None if at is None else max(0.0, now - at)

    def version(self) -> tuple[int, int]:
        return (self.epoch, self.seq)

    def snapshot(self) -> dict:
        """The wire form of a full snapshot."""
        return {
            "site": self.site,
            "epoch": self.epoch,
            "seq": self.seq,
            "state": self.state,
            "rtt": self.rtt,
            "services": wireServices(self.services),
            "probes": dict(self.probes),
            "updated_at": self.updatedAt,
            "lagging": copy.deepcopy(self.lagging),
        }


def _updateProbes(metrics: SiteMetrics, moved: Mapping[str, float]) -> None:
    for network, ms in moved.items():
        # A new measurement is the newest: move it to the end.
        metrics.probes.pop(network, None)
        metrics.probes[network] = ms
    _capProbes(metrics.probes)
    metrics.probesVersion += 1


class MetricTable:
    """
    Every site's metrics on one core.

    @ivar staleRejected: updates ignored because they did not come from the
        site's current master and epoch.
    @ivar gaps: deltas that did not follow on from our seq.
    """

    def __init__(
        self,
        sites: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
        canonical: Callable[[str], str] = _sameName,
    ) -> None:
        """
        @param canonical: the string object to keep for a service's name
            (the topology's, on a core).
        """
        self.canonical = canonical
        self.sites: dict[str, SiteMetrics] = {name: SiteMetrics(name) for name in sites}
        self.clock = clock
        self.staleRejected = 0
        self.gaps = 0

    def __getitem__(self, site: str) -> SiteMetrics:
        return self.sites[site]

    def versions(self) -> dict[str, tuple[int, int]]:
        return {name: metrics.version() for name, metrics in self.sites.items()}

    # --- on the master -------------------------------------------------------

    def beginEpoch(self, site: str, epoch: int) -> None:
        """This core became master of C{site} with C{epoch}: its seq restarts."""
        metrics = self.sites[site]
        metrics.epoch = epoch
        metrics.seq = 0

    def recordAsMaster(
        self,
        site: str,
        *,
        state: Optional[str] = None,
        rtt: Optional[float] = None,
        services: Optional[Mapping[str, Mapping[str, Any]]] = None,
        replace: bool = False,
        probes: Optional[Mapping[str, float]] = None,
        now: Optional[float] = None,
        lagging: Optional[Mapping[str, Mapping[str, float]]] = None,
    ) -> Optional[dict]:
        """
        The master records what its site told it (C{services} replacing all
        when C{replace}, else merged) and gets back the delta to propagate,
        or C{None} when nothing changed.
        """
        metrics = self.sites[site]
        change: dict = {}
        if state is not None and state != metrics.state:
            metrics.state = change["state"] = state
        if rtt is not None and rtt != metrics.rtt:
            metrics.rtt = change["rtt"] = rtt
        if probes:
            moved = {network: ms for network, ms in probes.items() if metrics.probes.get(network) != ms}
            if moved:
                _updateProbes(metrics, moved)
                change["probes"] = moved
        if services is not None:
            if replace:
                serviceChanges = diffServices(metrics.services, services)
                removed = [name for name in metrics.services if name not in services]
                for name in removed:
                    del metrics.services[name]
                if removed:
                    change["removed"] = removed
            else:
                serviceChanges = {}
                for name, values in services.items():
                    before = metrics.services.get(name, {})
                    changed = {key: value for key, value in values.items() if before.get(key) != value}
                    if changed or name not in metrics.services:
                        serviceChanges[name] = changed
            applyServiceChanges(metrics.services, serviceChanges, self.canonical)
            if serviceChanges:
                change["services"] = serviceChanges
        if lagging is not None and lagging != metrics.lagging:
            metrics.lagging = {name: dict(times) for name, times in lagging.items()}
            change["lagging"] = copy.deepcopy(metrics.lagging)
        if now is not None:
            metrics.updatedAt = now
        metrics.hasSnapshot = True
        if not change:
            return None
        baseSeq = metrics.seq
        metrics.seq += 1
        metrics.appliedAt = self.clock()
        return {
            "site": site,
            "epoch": metrics.epoch,
            "seq": metrics.seq,
            "base_seq": baseSeq,
            "changes": change,
            "updated_at": metrics.updatedAt,
        }

    # --- on every other core -----------------------------------------------------

    def applySnapshot(self, snapshot: Mapping[str, Any], master: Optional[tuple[int, int]], sender: int) -> bool:
        """
        Replace a site's metrics with a master's snapshot; C{master} is the
        (core, epoch) this core knows for the site.  Anything else is stale.
        """
        site = snapshot["site"]
        if site not in self.sites or master is None or master != (sender, snapshot["epoch"]):
            self.staleRejected += 1
            return False
        metrics = self.sites[site]
        metrics.epoch = snapshot["epoch"]
        metrics.seq = snapshot["seq"]
        metrics.state = snapshot["state"]
        metrics.rtt = snapshot["rtt"]
        metrics.services = ownServices(snapshot["services"], self.canonical)
        metrics.probes = dict(snapshot.get("probes") or {})
        metrics.probesVersion += 1
        metrics.updatedAt = snapshot.get("updated_at")
        metrics.lagging = copy.deepcopy(snapshot.get("lagging") or {})
        metrics.hasSnapshot = True
        metrics.appliedAt = self.clock()
        return True

    def applyDelta(self, delta: Mapping[str, Any], master: Optional[tuple[int, int]], sender: int) -> str:
        site = delta["site"]
        if site not in self.sites or master is None or master != (sender, delta["epoch"]):
            self.staleRejected += 1
            return STALE
        metrics = self.sites[site]
        if not metrics.hasSnapshot or metrics.epoch != delta["epoch"] or metrics.seq != delta["base_seq"]:
            self.gaps += 1
            return GAP
        change = delta["changes"]
        if "state" in change:
            metrics.state = change["state"]
        if "rtt" in change:
            metrics.rtt = change["rtt"]
        if "probes" in change:
            _updateProbes(metrics, change["probes"])
        for name in change.get("removed", ()):
            metrics.services.pop(name, None)
        applyServiceChanges(metrics.services, change.get("services", {}), self.canonical)
        if "lagging" in change:
            metrics.lagging = copy.deepcopy(change["lagging"])
        metrics.seq = delta["seq"]
        metrics.updatedAt = delta.get("updated_at", metrics.updatedAt)
        metrics.appliedAt = self.clock()
        return APPLIED

    def touch(self, fresh: Mapping[str, Any], master: Optional[tuple[int, int]], sender: int) -> bool:
        """
        The master says the site spoke at C{updated_at} with nothing new:
        our metrics, if at its version, are that fresh.
        """
        site = fresh["site"]
        if site not in self.sites or master is None or master != (sender, fresh["epoch"]):
            self.staleRejected += 1
            return False
        metrics = self.sites[site]
        if metrics.version() != (fresh["epoch"], fresh["seq"]):
            return False
        metrics.updatedAt = fresh["updated_at"]
        return True
