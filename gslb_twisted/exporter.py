"""
Prometheus metrics of the appliance (C{twistd -n gslb --metrics ENDPOINT}):
C{/metrics} in the text exposition format, served by prometheus_client's
Twisted resource from a registry of its own.

The resource answers from a thread of the reactor's pool, so it never asks
the cores anything: L{MetricsExporter} refreshes a cache of metric families
every consolidation interval, in the reactor thread, from

  - the consolidated counters as the lowest serving core holds them
    (C{CoreInspect(what="stats")}: see C{CoreGSLB.statsView});
  - every serving core's view of the sites (C{CoreInspect(what="sites")}):
    state, metrics age, and how far each core's copy lags the master's;
  - the supervisor's own knowledge: who masters each site, in which epoch
    (the hub's claims), and the core processes.

L{metricFamilies} turns those into metric families: a pure function.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from gslb_twisted.consolidator import counterKey, splitKey

UP = "UP"


# --- the pure part -----------------------------------------------------------------


def _counter(name: str, documentation: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=list(labels) if labels else None)


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels) if labels else None)


def _add(family, labels: Sequence[str], value) -> None:
    if labels:
        family.add_metric(list(labels), value)
    else:
        family.add_metric([], value)


# Unlabelled DNS counters: (metric, counter key's counter, help).
DNS_COUNTERS = (
    ("gslb_dns_bytes_received_total", "bytes_in", "Bytes of DNS queries received."),
    ("gslb_dns_bytes_sent_total", "bytes_out", "Bytes of DNS responses sent."),
    ("gslb_dns_dropped_total", "dropped", "DNS queries dropped unanswered."),
    ("gslb_dns_truncated_total", "truncated", "DNS responses sent truncated (TC)."),
    ("gslb_dns_tcp_refused_total", "tcp_refused", "DNS TCP connections refused: over the per-core or per-client limit."),
    ("gslb_rrl_dropped_total", "rrl_dropped", "Responses dropped by response rate limiting."),
    ("gslb_rrl_slipped_total", "rrl_slipped", "Responses sent truncated by response rate limiting (slip)."),
)

# Per-vserver counters: (metric, counter, help).
VSERVER_COUNTERS = (
    ("gslb_vserver_hits_total", "hits", "Queries answered by the vserver."),
    ("gslb_vserver_persistence_hits_total", "persistence_hits", "Answers given from a persistence entry."),
    ("gslb_vserver_persistence_misses_total", "persistence_misses", "Persistent answers that made a new entry."),
    ("gslb_vserver_backup_method_hits_total", "backup_method_hits",
     "Answers chosen by the backup LB method (metrics missing or stale, client not placed)."),
    ("gslb_vserver_spillovers_total", "spillovers", "Answers sent to the backup vserver on spillover."),
    ("gslb_vserver_backup_vserver_hits_total", "backup_vserver_hits", "Answers given by the backup vserver chain."),
    ("gslb_vserver_down_responses_total", "down_responses", "Answers given by the down response (nothing up)."),
)


def metricFamilies(
    view: Optional[Mapping],
    sitesByCore: Mapping[int, Sequence[Mapping]],
    masters: Sequence[Sequence],
    cores: Sequence[Mapping] = (),
) -> list[Metric]:
    """
    The appliance's metric families.

    @param view: the consolidated counters as a core holds them
        (C{statsView}); None when no core could tell (the counters are
        then left out, the rest is still reported).
    @param sitesByCore: C{{core: [site rows]}} of C{CoreInspect("sites")}
        (name, state, epoch, seq, metrics_age) for the cores that answered.
    @param masters: the hub's C{[[site, core or None, epoch], ...]}.
    @param cores: the supervisor's core rows (core, state, restarts).
    """
    families: list[Metric] = []
    if view is not None:
        families += _counterFamilies(view)
    families += _siteFamilies(sitesByCore, masters)
    up = _gauge("gslb_core_up", "1 while the core process serves DNS.", ["core"])
    restarts = _counter("gslb_core_restarts_total", "Times the core process was respawned.", ["core"])
    for row in cores:
        up.add_metric([str(row["core"])], 1.0 if row.get("state") == "up" else 0.0)
        restarts.add_metric([str(row["core"])], row.get("restarts", 0))
    families += [up, restarts]
    return families


def _counterFamilies(view: Mapping) -> list[Metric]:
    totals: Mapping[str, int] = view.get("totals", {})

    def value(scope: str, name: str, counter: str) -> int:
        return totals.get(counterKey(scope, name, counter), 0)

    queries = _counter("gslb_dns_queries_total", "DNS queries received, by query type.", ["qtype"])
    responses = _counter("gslb_dns_responses_total", "DNS responses sent, by response code.", ["rcode"])
    # Every core that ever reported, at 0 until it rejects one.
    rejected = {str(core): 0 for core in view.get("cores", {})}
    for key, n in sorted(totals.items()):
        scope, name, counter = splitKey(key)
        if (scope, name) == ("dns", "-") and counter.startswith("qtype_"):
            queries.add_metric([counter[len("qtype_"):]], n)
        elif (scope, name) == ("dns", "-") and counter.startswith("rcode_"):
            responses.add_metric([counter[len("rcode_"):]], n)
        elif scope == "core" and counter == "stale_rejected":
            rejected[name] = n
    families: list[Metric] = [queries, responses]
    for metric, counter, documentation in DNS_COUNTERS:
        family = _counter(metric, documentation)
        family.add_metric([], value("dns", "-", counter))
        families.append(family)

    vservers: Mapping[str, Mapping] = view.get("vservers", {})
    for metric, counter, documentation in VSERVER_COUNTERS:
        family = _counter(metric, documentation, ["vserver"])
        for name in vservers:
            family.add_metric([name], value("vserver", name, counter))
        families.append(family)
    health = _gauge("gslb_vserver_health_ratio", "Share of the vserver's bound services that are up (0 to 1).",
                    ["vserver"])
    up = _gauge("gslb_vserver_up", "1 while the vserver is UP.", ["vserver"])
    sessions = _gauge("gslb_vserver_persistence_sessions", "Persistence entries the vserver holds.", ["vserver"])
    for name, state in vservers.items():
        health.add_metric([name], (state.get("health") or 0.0) / 100.0)
        up.add_metric([name], 1.0 if state.get("state") == UP else 0.0)
        if state.get("persistence_sessions") is not None:
            sessions.add_metric([name], state["persistence_sessions"])
    families += [health, up, sessions]

    services: Mapping[str, Mapping] = view.get("services", {})
    answers = _counter("gslb_service_answers_total", "Answers that gave the service's address.", ["service", "site"])
    serviceUp = _gauge("gslb_service_up", "1 while the service is UP (and may be answered).", ["service", "site"])
    for name, state in services.items():
        labels = [name, str(state.get("site"))]
        answers.add_metric(labels, value("service", name, "answers"))
        serviceUp.add_metric(labels, 1.0 if state.get("state") == UP else 0.0)
    families += [answers, serviceUp]

    coreQueries = _counter("gslb_core_queries_total", "DNS queries each core received (all its incarnations).",
                           ["core"])
    for core, values in sorted(view.get("cores", {}).items(), key=lambda item: _coreOrder(item[0])):
        coreQueries.add_metric([str(core)], values.get(counterKey("dns", "-", "queries"), 0))
    stale = _counter(
        "gslb_stale_updates_rejected_total",
        "Metric updates a core rejected as stale (not from the master and epoch it knows).", ["core"],
    )
    for core in sorted(rejected, key=_coreOrder):
        stale.add_metric([core], rejected[core])
    families += [coreQueries, stale]

    round_ = _gauge("gslb_consolidation_round", "The last consolidation round the counters come from.")
    round_.add_metric([], view.get("round") or 0)
    families.append(round_)
    if view.get("control") is not None:
        control = _gauge("gslb_consolidation_control_core", "The core that leads the consolidation rounds.")
        control.add_metric([], view["control"])
        families.append(control)
    return families


def _coreOrder(core) -> tuple:
    text = str(core)
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def _siteFamilies(sitesByCore: Mapping[int, Sequence[Mapping]], masters: Sequence[Sequence]) -> list[Metric]:
    byCore = {int(core): {row["name"]: row for row in rows} for core, rows in sitesByCore.items()}
    mastersOf = {site: (core, epoch) for site, core, epoch in masters}
    names: list[str] = []
    for rows in sitesByCore.values():
        for row in rows:
            if row["name"] not in names:
                names.append(row["name"])
    for site in mastersOf:
        if site not in names:
            names.append(site)

    up = _gauge("gslb_site_up", "1 while the site is UP, as its master core holds it.", ["site"])
    master = _gauge("gslb_site_master_core", "The core that masters the site (-1: none).", ["site"])
    epoch = _gauge("gslb_site_master_epoch", "The site's mastership epoch (fencing token).", ["site"])
    age = _gauge("gslb_site_metrics_age_seconds",
                 "Seconds since the site's master last heard from it, as the master holds it.", ["site"])
    lagSeconds = _gauge(
        "gslb_site_propagation_lag_seconds",
        "How much older a core's copy of the site's metrics is than the master's (seconds, approximate: "
        "each core measures at its own instant).", ["site", "core"],
    )
    lagUpdates = _gauge(
        "gslb_site_propagation_lag_updates",
        "Metric updates of the master's current epoch a core has not applied yet.", ["site", "core"],
    )
    for site in names:
        masterCore, masterEpoch = mastersOf.get(site, (None, None))
        master.add_metric([site], -1 if masterCore is None else masterCore)
        if masterEpoch is not None:
            epoch.add_metric([site], masterEpoch)
        # As the master holds it; the lowest core that answered otherwise.
        held = [core for core in sorted(byCore) if site in byCore[core]]
        if not held:
            continue
        source = masterCore if masterCore in held else held[0]
        row = byCore[source][site]
        up.add_metric([site], 1.0 if row.get("state") == UP else 0.0)
        if row.get("metrics_age") is not None:
            age.add_metric([site], row["metrics_age"])
        if masterCore is None or masterCore not in held:
            continue
        for core in held:
            if core == masterCore:
                continue
            other = byCore[core][site]
            if other.get("metrics_age") is not None and row.get("metrics_age") is not None:
                lagSeconds.add_metric([site, str(core)], max(0.0, other["metrics_age"] - row["metrics_age"]))
            if other.get("epoch") == row.get("epoch") and other.get("seq") is not None and row.get("seq") is not None:
                lagUpdates.add_metric([site, str(core)], max(0, row["seq"] - other["seq"]))
    return [up, master, epoch, age, lagSeconds, lagUpdates]


# --- the collector and its cache ---------------------------------------------------------


class CachedCollector:
    """
    A prometheus_client collector answering from the families last
    refreshed (replaced whole, so a scrape in another thread reads one
    consistent set).
    """

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class MetricsExporter(Service):
    """
    Refreshes L{CachedCollector}'s families every C{interval} seconds from
    the cores and the supervisor (see the module docstring).

    @param monitor: the supervisor's L{gslb_twisted.supervisor.CoreMonitor}.
    @ivar registry: the registry to serve (holds only this collector).
    """

    log = Logger()

    def __init__(self, monitor, clock, interval: float) -> None:
        self.monitor = monitor
        self.clock = clock
        self.interval = interval
        self.collector = CachedCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.lastView: Optional[dict] = None
        self._loop = task.LoopingCall(self.refresh)
        self._loop.clock = clock
        self._looping: Optional[defer.Deferred] = None
        self._failing = False

    def startService(self) -> None:
        super().startService()
        self._looping = self._loop.start(self.interval, now=True)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        looping, self._looping = self._looping, None
        return looping if looping is not None else defer.succeed(None)

    def refresh(self) -> defer.Deferred:
        """Ask the cores, then replace the cache; never fails (a failure is logged once)."""
        stats = self.monitor.statsView()
        sites = self.monitor.inspectCores("sites")

        def noStats(failure):
            if not self._failing:
                self._failing = True
                self.log.warn("metrics: no consolidated counters ({reason}); serving the last known",
                              reason=failure.getErrorMessage())
            return self.lastView

        def gotStats(view):
            if view is not self.lastView:
                self._failing = False
            self.lastView = view
            return view

        stats.addCallbacks(gotStats, noStats)
        sites.addErrback(lambda failure: {})

        def build(results):
            (_, view), (_, sitesByCore) = results
            self.collector.families = metricFamilies(
                view, sitesByCore, self.monitor.hub.masters(), self.monitor.coreRows()
            )

        d = defer.DeferredList([stats, sites], consumeErrors=True).addCallback(build)
        return d.addErrback(lambda failure: self.log.failure("metrics: cannot refresh", failure))


class _QuietSite(Site):
    """A scrape every few seconds is no event worth a line of the appliance's log."""

    noisy = False

    def log(self, request) -> None:
        pass


def metricsSite(registry: CollectorRegistry) -> Site:
    """
    C{/metrics} from C{registry}: prometheus_client's Twisted resource (a
    WSGI resource answering in a thread of the reactor's pool).
    """
    from prometheus_client.twisted import MetricsResource

    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    return _QuietSite(root)
