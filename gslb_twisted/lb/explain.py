"""
The "why" of an answer (C{resolve}) and the vserver view (C{show gslb
vserver}), from a core's current plans and choosers, without changing
anything: no rotation step, no persistence entry, no probe.
"""

from __future__ import annotations

from typing import Optional

from gslb_twisted.lb.clients import addressInt
from gslb_twisted.lb.decision import DOWN_RESPONSE, SERVFAIL, serviceState
from gslb_twisted.metrics import UP

QTYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
RCODE_NAMES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}
METRIC_KEYS = ("connections", "response_time", "bandwidth", "packets", "load")


def _rdtypesOf(qtype: str) -> tuple[int, ...]:
    number = QTYPES.get(qtype.upper()) if not qtype.isdigit() else int(qtype)
    if number == 255:
        return (1, 28)
    if number in (1, 28):
        return (number,)
    return ()


def _inZone(name: str, zones) -> bool:
    return any(name == zone.name or name.endswith("." + zone.name) for zone in zones)


def explainQuery(gslb, name: str, qtype: str, client: str) -> dict:
    """
    What C{gslb} (a L{gslb_twisted.core.gslb.CoreGSLB}) would answer to a
    query for C{name}/C{qtype} from C{client}, and why.
    """
    topology = gslb.topology
    name = name.lower().rstrip(".")
    result: dict = {
        "name": name, "qtype": qtype.upper(), "client": client, "core": gslb.core, "answer": [], "rcode": "NOERROR",
        "vserver": None, "method": None, "fallback": False, "fallback_reason": None, "source": None,
        "persistence": "none", "candidates": [], "excluded": [], "spillover": None,
    }
    if addressInt(client) is None:
        raise ValueError(f"not an IP address: {client!r}")
    vserver = next((v for v in gslb.vservers.values() if name in v.domains), None)
    if vserver is None:
        if not _inZone(name, topology.zones):
            result["rcode"] = "REFUSED"
        elif not any(name == zone.name or name in zone.ns for zone in topology.zones):
            apexes = {zone.name for zone in topology.zones}
            exists = any(d == name or d.endswith("." + name) for v in topology.vservers for d in v.domains)
            result["rcode"] = "NOERROR" if exists or name in apexes else "NXDOMAIN"
        return result
    result["vserver"] = vserver.name
    answers = gslb.authority.vservers[vserver.name]
    for rdtype in _rdtypesOf(qtype):
        plan = gslb.plans.get((vserver.name, rdtype))
        if plan is None:
            continue
        if not plan.everyone:
            continue
        if result["method"] is None:
            result.update(
                method=plan.method, fallback=plan.fallback, fallback_reason=plan.fallbackReason, source=plan.source,
                answering=plan.answering, spillover=None if plan.spill is None else plan.spill.asDict(),
            )
            if plan.persistence != "NONE" and plan.source != DOWN_RESPONSE:
                result["persistence"] = "miss"
        if plan.response == SERVFAIL:
            result["rcode"] = "SERVFAIL"
            continue
        chooser = answers.choosers.get(rdtype)
        details: dict = {}
        services: tuple = ()
        if chooser is not None:
            services, details = chooser.peek(client)
        addressOf = gslb.addressOf
        result["answer"].extend(addressOf[s] for s in services)
        if details.get("fallback"):
            result["fallback"] = True
            result["method"] = plan.backupMethod
            result["fallback_reason"] = "client not placed by " + plan.method
        if "persistence" in details:
            result["persistence"] = details["persistence"]
            if details["persistence"] == "hit":
                result["source"] = "persistence"
        for key in ("client_location", "rtt_network", "hash_network", "persistence_entry", "persistence_network"):
            if key in details:
                result[key] = details[key]
        for candidate in plan.candidates:
            row = {
                "service": candidate.service, "ip": candidate.ip, "site": candidate.site, "weight": candidate.weight,
                "state": UP, "chosen": candidate.service in services,
            }
            metrics = candidate.metrics or {}
            row.update({key: metrics.get(key) for key in METRIC_KEYS})
            if plan.loadMetric is not None and candidate.service in plan.loads:
                row[plan.loadMetric] = plan.loads[candidate.service]
            if "distance_km" in details:
                row["distance_km"] = details["distance_km"].get(candidate.service)
            if "rtt_ms" in details:
                row["rtt_ms"] = details["rtt_ms"].get(candidate.service)
            result["candidates"].append(row)
        result["excluded"].extend({"service": s, "reason": reason} for s, reason in plan.excluded)
    # Services of the family not asked for are not candidates either.
    asked = _rdtypesOf(qtype)
    for binding in vserver.services:
        service = topology.serviceByName[binding.name]
        rdtype = 1 if service.family == 4 else 28
        if asked and rdtype not in asked:
            result["excluded"].append({"service": service.name, "reason": f"other family (IPv{service.family})"})
    return result


def vserverRows(gslb) -> list[dict]:
    """C{show gslb vserver}: every vserver as this core runs it now."""
    topology = gslb.topology
    rows = []
    for configured in topology.vservers:
        vserver = gslb.vservers[configured.name]
        services = []
        for binding in vserver.services:
            service = topology.serviceByName[binding.name]
            state, reason = serviceState(service, topology, gslb.table, gslb.disabled)
            services.append({
                "name": service.name, "site": service.site, "ip": service.ip, "weight": binding.weight,
                "state": state, "reason": reason, "enabled": service.name not in gslb.disabled,
            })
        plans = [gslb.plans.get((vserver.name, rdtype)) for rdtype in (1, 28)]
        plans = [plan for plan in plans if plan is not None and plan.everyone]
        first: Optional[object] = plans[0] if plans else None
        spill = next((plan.spill for plan in plans if plan.spill is not None), None)
        rows.append({
            "name": vserver.name,
            "domains": list(vserver.domains),
            "state": UP if any(s["state"] == UP for s in services) else "DOWN",
            "lb_method": vserver.lb_method,
            "configured_lb_method": configured.lb_method,
            "effective_method": None if first is None else first.method,
            "fallback": any(plan.fallback for plan in plans),
            "source": None if first is None else first.source,
            "backup_lb_method": vserver.backup_lb_method,
            "persistence": vserver.persistence,
            "persistence_timeout": vserver.persistence_timeout,
            "persistence_entries": gslb.persistence.count(vserver.name) + gslb.persistence.count(vserver.name + "/AAAA"),
            "ttl": vserver.ttl,
            "answers": vserver.answers,
            "backup_vserver": vserver.backup_vserver,
            "spillover": None if spill is None else spill.asDict(),
            "down_response": vserver.down_response,
            "services": services,
        })
    return rows
