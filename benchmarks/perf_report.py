"""
The pure parts of L{benchmarks.perf}: the targets and their evaluation, the
ratios, the comparison with the previous run, the printed report and the
SVG chart.  Everything here works on plain dicts (one per case, as stored in
the JSON result), so that it can be tested without running anything.

A case row (L{benchmarks.perf.caseRow}) holds: C{key}, C{title}, C{short}
(for the chart), C{placement} (C{"pinned"} or C{"floating"}), C{qps} (None
when not measured), C{qpsRuns}, C{latencyMean}, C{latencyP99} (seconds),
C{lost}, C{serverCpu}, C{sitesCpu}, C{dnsperfCpu}, C{otherCpu},
C{coreShares} (core id -> fraction, of the median run), C{coreSharesRuns}
(those of every run, by QPS), C{skipped} and C{error} (None or why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence
from xml.sax.saxutils import escape

from benchmarks.dns_qps import renderTable

PASS = "PASS"
FAIL = "FAIL"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Target:
    """
    One target of the issue.

    @ivar kind: C{"ratio"}: C{qps(numerator) / qps(denominator) >=
        threshold}; C{"share"}: every core of case C{numerator} served at
        least C{threshold} of its queries.
    """

    key: str
    what: str
    numerator: str
    denominator: Optional[str]
    threshold: float
    kind: str = "ratio"

    @property
    def rule(self) -> str:
        if self.kind == "share":
            return f"min core share of {self.numerator} >= {self.threshold:.0%}"
        return f"{self.numerator} >= {self.threshold:g} x {self.denominator}"


TARGETS = [
    Target("c/a", "gslb 1 core ROUNDROBIN vs the ceiling (both pinned)", "c", "a", 0.5),
    Target("d/a", "gslb LEASTCONNECTION + SOURCEIP, 100 services at MEP sites, vs the ceiling (both pinned)",
           "d", "a", 0.35),
    Target("c/b", "gslb 1 core vs twisted.names (both pinned)", "c", "b", 4.0),
    Target("c/f", "gslb 1 core vs PowerDNS, LUA ifportup() (both pinned)", "c", "f", 1.5),
    Target("e/c-floating", "gslb 2 cores vs gslb 1 core, both floating", "e", "c-floating", 1.1),
    Target("e core share", "no core of e serves less than 35 % of its queries", "e", None, 0.35, kind="share"),
]

# (key, what): printed for information, no target.
OTHER_RATIOS = [
    ("b/a", "twisted.names vs the ceiling"),
    ("f/a", "PowerDNS vs the ceiling"),
    ("d/c", "LEASTCONNECTION + SOURCEIP, 100 services vs ROUNDROBIN, 2 services"),
    ("c-floating/c", "gslb 1 core floating vs pinned"),
    ("e/c", "gslb 2 cores (floating) vs 1 core pinned"),
]


def qpsOf(rows: Sequence[Mapping]) -> Dict[str, float]:
    """The measured QPS of each case, by key (cases not measured are left out)."""
    return {row["key"]: row["qps"] for row in rows if row.get("qps")}


def capacityOf(rows: Sequence[Mapping]) -> Dict[str, float]:
    """
    Queries per second per CPU the server used (QPS / server CPU share), by
    key.  When dnsperf, not the server, is the limit (this 2-vCPU machine:
    dnsperf tops out near 120k q/s on its CPU), QPS only says "as fast as
    dnsperf"; what a query costs the server still compares servers.
    """
    return {row["key"]: row["qps"] * 100.0 / row["serverCpu"]
            for row in rows if row.get("qps") and row.get("serverCpu")}


def ratio(qps: Mapping[str, float], key: str) -> Optional[float]:
    """C{"x/y"} -> qps[x] / qps[y], or None when either is missing."""
    numerator, _, denominator = key.partition("/")
    if numerator in qps and qps.get(denominator):
        return qps[numerator] / qps[denominator]
    return None


def _why(rows: Sequence[Mapping], keys: Sequence[str]) -> str:
    byKey = {row["key"]: row for row in rows}
    reasons = []
    for key in keys:
        row = byKey.get(key)
        if row is None:
            reasons.append(f"{key} not run")
        elif row.get("skipped"):
            reasons.append(f"{key} skipped: {row['skipped']}")
        elif row.get("error"):
            reasons.append(f"{key} failed: {str(row['error']).splitlines()[0]}")
        elif not row.get("qps"):
            reasons.append(f"{key} has no QPS")
    return "; ".join(reasons)


def evaluate(target: Target, rows: Sequence[Mapping]) -> dict:
    """
    The target's value and status (L{PASS}, L{FAIL}, or L{NOT_MEASURED}
    with C{why}) for the case rows of one run.
    """
    out = {"key": target.key, "rule": target.rule, "what": target.what, "threshold": target.threshold,
           "value": None, "status": NOT_MEASURED, "why": None, "capacity": None}
    if target.kind == "share":
        byKey = {row["key"]: row for row in rows}
        row = byKey.get(target.numerator)
        shares = (row or {}).get("coreShares")
        if not row or not row.get("qps") or not shares:
            out["why"] = _why(rows, [target.numerator]) or f"no core shares for {target.numerator}"
            return out
        value = min(shares.values())
    else:
        value = ratio(qpsOf(rows), target.key)
        if value is None:
            out["why"] = _why(rows, [target.numerator, target.denominator])
            return out
        capacity = ratio(capacityOf(rows), target.key)
        out["capacity"] = None if capacity is None else round(capacity, 4)
    out["value"] = round(value, 4)
    out["status"] = PASS if value >= target.threshold else FAIL
    return out


def evaluateAll(rows: Sequence[Mapping], targets: Sequence[Target] = TARGETS) -> List[dict]:
    return [evaluate(target, rows) for target in targets]


def otherRatios(rows: Sequence[Mapping]) -> List[dict]:
    qps = qpsOf(rows)
    out = []
    for key, what in OTHER_RATIOS:
        value = ratio(qps, key)
        if value is not None:
            out.append({"key": key, "what": what, "value": round(value, 4)})
    return out


# ---------------------------------------------------------------------------
# The comparison with the previous run.


def change(before: Optional[float], after: Optional[float]) -> Optional[float]:
    """The relative change from C{before} to C{after} (0.1 = +10 %), or None."""
    if not before or after is None:
        return None
    return after / before - 1.0


SETTINGS = ("duration", "repeat", "clients", "threads", "outstanding", "timeout")


def compare(previous: Mapping, current: Mapping, noise: float = 0.15) -> dict:
    """
    Each case's QPS and each target's and ratio's value in C{current}
    against C{previous} (two result documents), with the relative change.
    A case whose QPS fell by more than C{noise} is flagged C{"worse"}, rose
    by more C{"better"}; a target that passed and now fails C{"REGRESSED"},
    the reverse C{"now passes"}.  Settings that differ between the runs are
    listed: their figures are not comparable.
    """
    before = {row["key"]: row for row in previous.get("cases", [])}
    cases = []
    for row in current.get("cases", []):
        old = before.get(row["key"], {})
        delta = change(old.get("qps"), row.get("qps"))
        flag = None
        if delta is not None and delta < -noise:
            flag = "worse"
        elif delta is not None and delta > noise:
            flag = "better"
        cases.append({"key": row["key"], "before": old.get("qps"), "after": row.get("qps"),
                      "change": None if delta is None else round(delta, 4), "flag": flag})
    oldTargets = {t["key"]: t for t in previous.get("targets", [])}
    targets = []
    for target in current.get("targets", []):
        old = oldTargets.get(target["key"], {})
        delta = change(old.get("value"), target.get("value"))
        flag = None
        if old.get("status") == PASS and target["status"] == FAIL:
            flag = "REGRESSED"
        elif old.get("status") == FAIL and target["status"] == PASS:
            flag = "now passes"
        targets.append({"key": target["key"], "before": old.get("value"), "after": target.get("value"),
                        "change": None if delta is None else round(delta, 4),
                        "statusBefore": old.get("status"), "statusAfter": target["status"], "flag": flag})
    oldRatios = {r["key"]: r for r in previous.get("ratios", [])}
    ratios = []
    for r in current.get("ratios", []):
        old = oldRatios.get(r["key"], {})
        delta = change(old.get("value"), r.get("value"))
        ratios.append({"key": r["key"], "before": old.get("value"), "after": r["value"],
                       "change": None if delta is None else round(delta, 4)})
    oldSettings, newSettings = previous.get("settings", {}), current.get("settings", {})
    differ = [f"{name}: {oldSettings.get(name)} -> {newSettings.get(name)}"
              for name in SETTINGS if oldSettings.get(name) != newSettings.get(name)]
    return {"previous": previous.get("file"), "previousStarted": previous.get("started"),
            "cases": cases, "targets": targets, "ratios": ratios, "settingsDiffer": differ}


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def renderComparison(comparison: Mapping) -> str:
    parts = [f"Change against the previous run ({comparison.get('previous')}, "
             f"started {comparison.get('previousStarted')}):"]
    rows = [[c["key"], _num(c["before"], 0), _num(c["after"], 0), _pct(c["change"]), c["flag"] or ""]
            for c in comparison["cases"]]
    parts.append(renderTable(["case", "QPS before", "QPS now", "change", ""], rows))
    rows = [[t["key"], _num(t["before"]), _num(t["after"]), _pct(t["change"]),
             f"{t['statusBefore'] or '-'} -> {t['statusAfter']}", t["flag"] or ""]
            for t in comparison["targets"]]
    rows += [[r["key"], _num(r["before"]), _num(r["after"]), _pct(r["change"]), "(no target)", ""]
             for r in comparison["ratios"]]
    parts.append("")
    parts.append(renderTable(["ratio", "before", "now", "change", "target", ""], rows))
    if comparison["settingsDiffer"]:
        parts.append("  NOTE: the runs differ in " + "; ".join(comparison["settingsDiffer"])
                     + ": the figures are not comparable.")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# The printed report.


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _cpu(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f}"


def formatShares(shares: Optional[Mapping[str, float]]) -> str:
    """C{{"0": 0.29, "1": 0.71}} -> C{"29/71"}."""
    if not shares:
        return "-"
    return "/".join(f"{100 * share:.0f}" for share in shares.values())


_shares = formatShares


def renderCases(rows: Sequence[Mapping], repeat: int) -> str:
    table = []
    for row in rows:
        where = "CPU 0" if row.get("placement") == "pinned" else "floating"
        if row.get("qps") is None:
            status = "SKIPPED" if row.get("skipped") else "FAILED"
            table.append([row["key"], row["title"], where, status] + ["-"] * 8)
            continue
        runs = row.get("qpsRuns") or []
        server = _cpu(row.get("serverCpu"))
        if row.get("sitesCpu") is not None:
            server += f" (+{row['sitesCpu']:.0f} sites)"
        table.append([
            row["key"], row["title"], where, f"{row['qps']:.0f}",
            f"{min(runs):.0f}-{max(runs):.0f}" if len(runs) > 1 else "-",
            _ms(row.get("latencyMean")), _ms(row.get("latencyP99")), str(row.get("lost", "-")),
            server, _cpu(row.get("dnsperfCpu")), _cpu(row.get("otherCpu")), _shares(row.get("coreShares")),
        ])
    headers = ["case", "server", "server on", "QPS", f"range ({repeat} runs)", "mean ms", "p99 ms", "lost",
               "server CPU%", "dnsperf CPU%", "other CPU%", "core shares %"]
    return renderTable(headers, table)


def renderTargets(targets: Sequence[Mapping], others: Sequence[Mapping]) -> str:
    rows = []
    for t in targets:
        if t["key"] == "e core share":
            value = "-" if t["value"] is None else f"{t['value']:.0%}"
        else:
            value = _num(t["value"])
        perCpu = "-" if t.get("capacity") is None else _num(t["capacity"])
        rows.append([t["rule"], t["key"], value, perCpu, t["status"], t["what"] if t["status"] != NOT_MEASURED
                     else f"{t['what']} -- {t['why']}"])
    parts = [renderTable(["target", "measure", "value", "per server CPU", "result", ""], rows)]
    parts.append("(per server CPU: the same ratio of QPS per CPU each server used -- what a query costs it; "
                 "results are judged on QPS)")
    if others:
        parts.append("Other ratios (no target): " + ", ".join(f"{r['key']} {r['value']:.2f}" for r in others))
    return "\n".join(parts)


DNSPERF_BOUND = 95.0
SERVER_IDLE = 90.0


def dnsperfBound(rows: Sequence[Mapping]) -> List[str]:
    """
    The pinned cases in which dnsperf, not the server, was the limit: dnsperf
    used at least C{DNSPERF_BOUND} % of its CPU while the server, which has
    a CPU of its own, used less than C{SERVER_IDLE} % of it.  Their QPS
    is a lower bound of what the server can do.
    """
    out = []
    for row in rows:
        if (row.get("qps") and row.get("placement") == "pinned" and row.get("dnsperfCpu") is not None
                and row.get("serverCpu") is not None and row["dnsperfCpu"] >= DNSPERF_BOUND
                and row["serverCpu"] < SERVER_IDLE):
            out.append(row["key"])
    return out


def summaryLine(targets: Sequence[Mapping]) -> str:
    counts = {status: sum(1 for t in targets if t["status"] == status) for status in (PASS, FAIL, NOT_MEASURED)}
    return f"targets: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_MEASURED]} not measured"


# ---------------------------------------------------------------------------
# The chart.

BAR_COLOURS = {"pinned": "#3b6ea8", "floating": "#8fb4d9"}


def _kilo(qps: float) -> str:
    return f"{qps / 1000:.1f}k"


def svgChart(rows: Sequence[Mapping], title: str, subtitle: str = "", width: int = 760,
             height: int = 420) -> str:
    """
    A bar chart of the QPS of each case, as an SVG document written by hand:
    one bar per case (dark: server pinned to one CPU, light: floating) with
    its QPS above it and its key and short name below; a case not measured
    has no bar and says so.  Gridlines every round step of QPS.
    """
    left, right, top, bottom = 70, 20, 64, 84
    plotWidth, plotHeight = width - left - right, height - top - bottom
    measured = [row["qps"] for row in rows if row.get("qps")]
    peak = max(measured) if measured else 1.0
    step = _niceStep(peak / 5)
    ceiling = step * max(1, -(-peak // step))
    slot = plotWidth / max(1, len(rows))
    barWidth = slot * 0.6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{escape(title)}</text>',
    ]
    if subtitle:
        out.append(f'<text x="{width / 2:.1f}" y="42" text-anchor="middle" fill="#555">{escape(subtitle)}</text>')
    value = 0.0
    while value <= ceiling + 1e-9:
        y = top + plotHeight * (1 - value / ceiling)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        tick = f"{value / 1000:g}k" if value else "0"
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{tick}</text>')
        value += step
    out.append(f'<text x="16" y="{top + plotHeight / 2:.1f}" text-anchor="middle" fill="#555" '
               f'transform="rotate(-90 16 {top + plotHeight / 2:.1f})">queries per second</text>')
    for index, row in enumerate(rows):
        x = left + slot * index + (slot - barWidth) / 2
        middle = x + barWidth / 2
        qps = row.get("qps")
        if qps:
            barHeight = plotHeight * qps / ceiling
            y = top + plotHeight - barHeight
            colour = BAR_COLOURS.get(row.get("placement"), BAR_COLOURS["pinned"])
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{barWidth:.1f}" height="{barHeight:.1f}" '
                       f'fill="{colour}"><title>{escape(row["key"])}: {qps:.0f} QPS</title></rect>')
            out.append(f'<text x="{middle:.1f}" y="{y - 5:.1f}" text-anchor="middle">{_kilo(qps)}</text>')
        else:
            out.append(f'<text x="{middle:.1f}" y="{top + plotHeight - 8:.1f}" text-anchor="middle" '
                       f'fill="#a33">not measured</text>')
        base = top + plotHeight
        out.append(f'<text x="{middle:.1f}" y="{base + 18:.1f}" text-anchor="middle" '
                   f'font-weight="bold">{escape(row["key"])}</text>')
        for line, text in enumerate(_wrap(row.get("short") or row.get("title", ""), 16)[:3]):
            out.append(f'<text x="{middle:.1f}" y="{base + 34 + 14 * line:.1f}" text-anchor="middle" '
                       f'font-size="11" fill="#333">{escape(text)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plotHeight}" x2="{width - right}" y2="{top + plotHeight}" '
               f'stroke="#333"/>')
    legendY = height - 10
    out.append(f'<rect x="{left}" y="{legendY - 10}" width="12" height="12" fill="{BAR_COLOURS["pinned"]}"/>')
    out.append(f'<text x="{left + 18}" y="{legendY}">server pinned to CPU 0</text>')
    out.append(f'<rect x="{left + 190}" y="{legendY - 10}" width="12" height="12" fill="{BAR_COLOURS["floating"]}"/>')
    out.append(f'<text x="{left + 208}" y="{legendY}">server floating</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _niceStep(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least C{raw}."""
    if raw <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _wrap(text: str, width: int) -> List[str]:
    lines: List[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
