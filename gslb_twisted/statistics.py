"""
What the C{stat} commands show, computed from one core's view of the
consolidated counters (C{CoreGSLB.statsView}, C{CoreInspect(what="stats")}).

Pure functions over plain data: the view is a dict of

  - C{totals}: counter key (L{gslb_twisted.consolidator.counterKey}) ->
    appliance-wide cumulative value;
  - C{previous}: the same at the previous round, and C{interval}: seconds
    between the two rounds (None before two rounds), so that a rate is
    C{(totals - previous) / interval};
  - C{cores}: core id (a string) -> {key: that core's share of the totals};
  - C{vservers}, C{services}: what is a state, not a count.
"""

from __future__ import annotations

from typing import Mapping, Optional

from gslb_twisted.consolidator import counterKey, splitKey
from gslb_twisted.protocol.commands import NoSuchEntity

DNS = ("dns", "-")

# The counters of a vserver, as C{stat gslb vserver} names them.
VSERVER_COUNTERS = (
    "hits",
    "persistence_hits",
    "persistence_misses",
    "backup_method_hits",
    "spillovers",
    "backup_vserver_hits",
    "down_responses",
)


def total(view: Mapping, scope: str, name: str, counter: str) -> int:
    """The appliance-wide value of one counter (0 when never counted)."""
    return int(view.get("totals", {}).get(counterKey(scope, name, counter), 0))


def rate(view: Mapping, scope: str, name: str, counter: str) -> Optional[float]:
    """Per second between the last two rounds; None before two rounds."""
    interval = view.get("interval")
    if not interval or interval <= 0:
        return None
    key = counterKey(scope, name, counter)
    grown = view.get("totals", {}).get(key, 0) - view.get("previous", {}).get(key, 0)
    return round(max(grown, 0) / interval, 3)


def _named(rows: list[dict], name: Optional[str], kind: str) -> list[dict]:
    if name is None:
        return rows
    rows = [row for row in rows if row["name"] == name]
    if not rows:
        raise NoSuchEntity(f"no such {kind} {name}")
    return rows


def statVServerRows(view: Mapping, name: Optional[str] = None) -> list[dict]:
    """
    C{stat gslb vserver [NAME]}: one row per vserver, in the topology's
    order, with its counters, hit rate and per-service answers.

    @raise NoSuchEntity: no vserver C{name}.
    """
    rows = []
    for vserver, state in view.get("vservers", {}).items():
        row = {
            "name": vserver,
            "state": state.get("state"),
            "health": state.get("health"),
            "active_services": state.get("active_services"),
            "inactive_services": state.get("inactive_services"),
            "lb_method": state.get("lb_method"),
            "persistence_sessions": state.get("persistence_sessions"),
        }
        for counter in VSERVER_COUNTERS:
            row[counter] = total(view, "vserver", vserver, counter)
        row["hit_rate"] = rate(view, "vserver", vserver, "hits")
        row["services"] = [
            {
                "name": service,
                "answers": total(view, "vserver_service", f"{vserver}/{service}", "answers"),
                "answer_rate": rate(view, "vserver_service", f"{vserver}/{service}", "answers"),
            }
            for service in state.get("services", [])
        ]
        rows.append(row)
    return _named(rows, name, "vserver")


def statServiceRows(view: Mapping, name: Optional[str] = None) -> list[dict]:
    """
    C{stat gslb service [NAME]}: answers per service, whichever vserver
    gave them.

    @raise NoSuchEntity: no service C{name}.
    """
    rows = [
        {
            "name": service,
            "site": state.get("site"),
            "state": state.get("state"),
            "answers": total(view, "service", service, "answers"),
            "answer_rate": rate(view, "service", service, "answers"),
        }
        for service, state in view.get("services", {}).items()
    ]
    return _named(rows, name, "service")


def _coreOrder(core: str):
    return (0, int(core)) if core.lstrip("-").isdigit() else (1, core)


def statCoreRows(view: Mapping) -> list[dict]:
    """
    C{stat cores}: each core's share of the consolidated counters (every
    incarnation of a core id summed, so a respawned core's counts add to
    those its predecessor reported).  C{query_rate} needs the shares at the
    previous round (C{cores_previous}), null when the view lacks them.
    """
    cores = view.get("cores", {})
    before = view.get("cores_previous")
    interval = view.get("interval")
    queries = counterKey(*DNS, "queries")
    rows = []
    for core in sorted(cores, key=_coreOrder):
        values = cores[core]
        queryRate = None
        if before is not None and interval and interval > 0:
            grown = values.get(queries, 0) - before.get(core, {}).get(queries, 0)
            queryRate = round(max(grown, 0) / interval, 3)
        rows.append({
            "core": int(core) if core.lstrip("-").isdigit() else core,
            "queries": values.get(queries, 0),
            "query_rate": queryRate,
            "bytes_in": values.get(counterKey(*DNS, "bytes_in"), 0),
            "bytes_out": values.get(counterKey(*DNS, "bytes_out"), 0),
            # The core's own stale-update rejections (counted under its id).
            "stale_rejected": values.get(counterKey("core", core, "stale_rejected"), 0),
        })
    return rows


def statDNS(view: Mapping) -> dict:
    """C{stat dns}: queries by type and rcode, bytes, drops, rate limiting."""
    byType: dict[str, int] = {}
    byRcode: dict[str, int] = {}
    for key, value in view.get("totals", {}).items():
        scope, name, counter = splitKey(key)
        if (scope, name) != DNS:
            continue
        if counter.startswith("qtype_"):
            byType[counter[len("qtype_"):]] = int(value)
        elif counter.startswith("rcode_"):
            byRcode[counter[len("rcode_"):]] = int(value)
    result = {
        counter: total(view, *DNS, counter)
        for counter in ("queries", "bytes_in", "bytes_out", "dropped", "truncated", "tcp_refused", "rrl_dropped", "rrl_slipped")
    }
    result["query_rate"] = rate(view, *DNS, "queries")
    result["by_type"] = dict(sorted(byType.items()))
    result["by_rcode"] = dict(sorted(byRcode.items()))
    result["round"] = view.get("round")
    result["control"] = view.get("control")
    result["interval"] = view.get("interval")
    return result
