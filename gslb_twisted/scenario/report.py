"""
The report of a run: pure functions of what was recorded.

  - L{document}: everything as JSON-able data (C{report.json});
  - L{chartSVG}: a stacked-area chart of the addresses given per site over
    time (answers per second, real time), unanswered queries on top, the
    events as labelled vertical lines (a ramp as a band), and under it one
    strip per site: its state as the appliance showed it (C{show gslb
    site}, polled).  Standalone SVG, drawn here: no script, no font or
    stylesheet from elsewhere;
  - L{html}: a self-contained page: the verdict, the chart (inline), the
    expectations and what was measured, failover times, each core's share
    of the queries, the populations, the events as applied, what --speed
    scaled;
  - L{progressLine}: the one-line progress of a running scenario;
  - L{write}: the three files in a directory.
"""

from __future__ import annotations

import html as _html
import json
import math
import os
from typing import Any, Mapping, Optional, Sequence

from gslb_twisted.scenario.model import Scenario
from gslb_twisted.scenario.series import Series

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#8c564b")
UNANSWERED = "#2b2b2b"
NO_ADDRESS = "#c9c9c9"
STATE_COLORS = {"UP": "#59a14f", "DOWN": "#e15759"}
SCHEMA = "gslb-scenario-report/1"


# --- the document ---------------------------------------------------------------------


def _load(report: Mapping) -> dict:
    keep = ("sources", "rate", "timeout", "seconds", "counts", "rcodes", "latency_ms", "unsent_by", "dropped_here")
    return {key: report.get(key) for key in keep}


def document(*, scenario: Scenario, series: Series, verdicts: Sequence, events: Sequence[dict], cores: Sequence[dict],
             coreSamples: Sequence, siteStates: Mapping[str, Sequence], failovers: Sequence[dict],
             loads: Mapping[str, Mapping], run: Mapping[str, Any], passed: bool) -> dict:
    """The whole report as JSON-able data (times in scenario seconds unless the key says otherwise)."""
    populations = []
    loadReports = {name: _load(report) for name, report in loads.items()}
    for population in scenario.populations:
        row = {
            "name": population.name, "rate": round(population.rate, 3), "source": population.network,
            "sources": len(population.sources), "ecs": population.ecs,
            "queries": [f"{name} {qtype}" for name, qtype in population.queries],
        }
        given = series.names("site", 0, scenario.duration, population.name)
        total = sum(given.values())
        row["answered"] = series.summary("answered", None, 0, scenario.duration, population.name).count
        row["unanswered"] = series.summary("lost", None, 0, scenario.duration, population.name).count
        row["site_share"] = {site: round(100.0 * n / total, 2) for site, n in sorted(given.items())} if total else {}
        for p in (50, 99):
            value = series.latencyPercentile(p, 0, scenario.duration, population.name)
            row[f"latency_p{p}_ms"] = None if value is None else round(value * 1000, 3)
        row["load"] = loadReports.get(population.name)
        populations.append(row)
    given = series.names("site", 0, scenario.duration)
    total = sum(given.values())
    latency = {}
    for p in (50, 90, 99):
        value = series.latencyPercentile(p, 0, scenario.duration)
        latency[f"p{p}"] = None if value is None else round(value * 1000, 3)
    topology = scenario.topology
    return {
        "schema": SCHEMA,
        "passed": bool(passed),
        "scenario": {
            "name": scenario.name, "description": scenario.description, "file": scenario.path,
            "topology": scenario.topologyPath or "(inline [topology])", "duration": scenario.duration,
            "bucket": scenario.bucket, "ci_speed": scenario.ciSpeed, "max_speed": scenario.maxSpeed,
            "appliance": {"name": topology.appliance.name, "ip": topology.appliance.ip,
                          "cores": topology.appliance.coreCount()},
            "sites": [{"name": s.name, "ip": s.ip, "emulated": s.name in scenario.emulated} for s in topology.sites],
            "services": [{"name": s.name, "site": s.site, "ip": s.ip} for s in topology.services],
        },
        "run": dict(run),
        "totals": {
            "answered": series.answeredTotal, "unanswered": series.lostTotal,
            "site_share": {site: round(100.0 * n / total, 2) for site, n in sorted(given.items())} if total else {},
            "rcodes": series.names("rcode", 0, scenario.duration),
            "latency_ms": latency,
        },
        "expectations": [v.asDict() for v in verdicts],
        "failovers": list(failovers),
        "cores": list(cores),
        "core_samples": [{"t": t, "queries": {str(k): v for k, v in counts.items()}} for t, counts in coreSamples],
        "populations": populations,
        "events": list(events),
        "site_states": {site: list(rows) for site, rows in siteStates.items()},
        "series": series.rows(),
    }


def write(directory: str, doc: Mapping) -> dict[str, str]:
    """C{report.json}, C{report.html} and C{chart.svg} in C{directory} (made if needed); their paths."""
    os.makedirs(directory, exist_ok=True)
    files = {
        "json": os.path.join(directory, "report.json"),
        "html": os.path.join(directory, "report.html"),
        "svg": os.path.join(directory, "chart.svg"),
    }
    with open(files["json"], "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=str)
        f.write("\n")
    svg = chartSVG(doc)
    with open(files["svg"], "w", encoding="utf-8") as f:
        f.write(svg)
    with open(files["html"], "w", encoding="utf-8") as f:
        f.write(html(doc, svg))
    return files


# --- numbers ---------------------------------------------------------------------------


def niceStep(span: float, ticks: int = 6) -> float:
    """A round step (1, 2, 2.5 or 5 x 10^n) giving about C{ticks} ticks over C{span}."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:g}"


def _esc(value: Any) -> str:
    return _html.escape("" if value is None else str(value), quote=True)


# --- the chart -----------------------------------------------------------------------------


def siteColors(sites: Sequence[str]) -> dict[str, str]:
    return {site: (NO_ADDRESS if site == "?" else PALETTE[i % len(PALETTE)]) for i, site in enumerate(sites)}


MAX_COLUMNS = 150


def columns(count: int, limit: int = MAX_COLUMNS) -> int:
    """How many buckets the chart draws as one column (at most C{limit} columns)."""
    return max(1, math.ceil(count / limit))


def _merged(values: Sequence[float], k: int) -> list[float]:
    return [sum(values[i:i + k]) for i in range(0, len(values), k)]


def layers(doc: Mapping, k: int = 1) -> list[tuple[str, str, list[float]]]:
    """
    (name, colour, rate per column in answers per real second), bottom
    first; a column is C{k} buckets.
    """
    series = doc["series"]
    width = series["bucket"]
    speed = doc["run"].get("speed") or 1.0
    count = len(series["t"])
    # The last column may be short (and the last bucket too: the duration cuts it).
    spans = _merged([min(width, doc["scenario"]["duration"] - t) for t in series["t"]], k) if count else []

    def rates(values: Sequence[float]) -> list[float]:
        return [n / (span / speed) if span > 0 else 0.0 for n, span in zip(_merged(values, k), spans)]

    declared = [s["name"] for s in doc["scenario"]["sites"]]
    sites = [s for s in declared if s in series["sites"]] + [s for s in series["sites"] if s not in declared]
    colors = siteColors(sites)
    out = []
    for site in sites:
        out.append((site, colors[site], rates(series["sites"][site])))
    noError = series["rcodes"].get("NOERROR", [0] * count)
    withoutAddress = [max(0, a - b) for a, b in zip(series["answered"], noError)]
    if any(withoutAddress):
        out.append(("no address (EMPTY, errors)", NO_ADDRESS, rates(withoutAddress)))
    if any(series["unanswered"]):
        out.append(("unanswered", UNANSWERED, rates(series["unanswered"])))
    return out


LANE = 13  # pixels between two rows of event labels
CHAR = 6.0  # pixels per character of a 10 px label (about)
MAX_LANES = 5
MAX_LABEL = 36  # characters


def eventLabels(events: Sequence[Mapping], x, right: float, maxLanes: int = MAX_LANES) -> list[tuple]:
    """
    Where each event's label goes: C{(x, lane, text, error, tooltip,
    leftOfLine)}; the events of one time share a label; each label takes
    the lowest lane where it overlaps no other (the last lane if none is
    free); a label with no room on the right of its line ends at it.
    """
    groups: dict[float, list[Mapping]] = {}
    for event in events:
        groups.setdefault(event["at"], []).append(event)
    placed: list[tuple[float, float, int]] = []  # (from x, to x, lane)
    out = []
    for at in sorted(groups):
        group = groups[at]
        words = [e["label"].split(" ", 1)[1] if " " in e["label"] else e["label"] for e in group]
        suffix = "" if len(words) == 1 else f" (+{len(words) - 1})"
        text = words[0]
        if len(text) + len(suffix) > MAX_LABEL:
            text = text[:MAX_LABEL - len(suffix) - 1] + "…"
        text += suffix
        xx = x(at)
        start = xx
        end = xx + 4 + CHAR * len(text)
        if end > right:  # no room on the right: the label ends at the line
            start, end = xx - 4 - CHAR * len(text), xx
        lane = 0
        while lane < maxLanes - 1 and any(a < end + 4 and start < b + 4 and l == lane for a, b, l in placed):
            lane += 1
        placed.append((start, end, lane))
        out.append((xx, lane, text, any(e.get("error") for e in group), "; ".join(e["label"] for e in group),
                    start < xx))
    return out


def chartSVG(doc: Mapping, width: int = 960) -> str:
    """The stacked-area chart of a report document, as a standalone SVG."""
    series = doc["series"]
    scenario = doc["scenario"]
    duration = float(scenario["duration"])
    k = columns(len(series["t"]))
    bucket = float(series["bucket"]) * k
    starts = series["t"][::k]
    stacks = layers(doc, k)
    events = doc.get("events", [])
    states = doc.get("site_states", {})
    stripSites = [s["name"] for s in scenario["sites"] if s.get("emulated")]
    left, right = 64, 24
    plotWidth = width - left - right

    def x(t: float) -> float:
        return left + plotWidth * max(0.0, min(duration, t)) / duration

    labels = eventLabels(events, x, left + plotWidth)
    lanes = max([label[1] for label in labels], default=-1) + 1
    top = 56 + LANE * lanes
    plotHeight = 300
    stripHeight, stripGap = 10, 6
    stripsTop = top + plotHeight + 34
    legendTop = stripsTop + len(stripSites) * (stripHeight + stripGap) + 16
    legendRows = math.ceil((len(stacks) + 1) / 5)
    height = legendTop + legendRows * 20 + 12

    totals = [sum(layer[2][i] for layer in stacks) for i in range(len(starts))]
    peak = max(totals) if totals else 0.0
    step = niceStep(peak * 1.1 if peak else 1.0, 5)
    yMax = step * max(1, math.ceil((peak * 1.05) / step)) if peak else step * 5

    def y(value: float) -> float:
        return top + plotHeight - plotHeight * value / yMax

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11" role="img">',
        f"<title>{_esc(scenario['name'])}: answers per site over time</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    verdict = "PASSED" if doc.get("passed") else ("INTERRUPTED" if doc["run"].get("interrupted") else "FAILED")
    speed = doc["run"].get("speed") or 1
    subtitle = f"speed x{speed:g}, {duration:g} s scenario, columns of {bucket:g} s"
    out.append(f'<text x="{left}" y="20" font-size="15" font-weight="bold">{_esc(scenario["name"])}</text>')
    out.append(f'<text x="{left}" y="36" fill="#555">{_esc(subtitle)} - {verdict}</text>')
    # Ramps (bands) under everything.
    for event in events:
        if event.get("span"):
            x0, x1 = x(event["at"]), x(event["at"] + event["span"])
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" height="{plotHeight}" '
                       f'fill="#f2c14e" fill-opacity="0.15"><title>{_esc(event["label"])}</title></rect>')
    # Grid and y axis.
    value = 0.0
    while value <= yMax + 1e-9:
        yy = y(value)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plotWidth}" y2="{yy:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{_fmt(round(value, 6))}</text>')
        value += step
    out.append(f'<text x="14" y="{top + plotHeight / 2:.0f}" transform="rotate(-90 14 {top + plotHeight / 2:.0f})" '
               f'text-anchor="middle" fill="#555">answers per second</text>')
    # The stacked areas, as steps (a failover is an edge, not a slope).
    base = [0.0] * len(starts)
    for name, color, rates in stacks:
        upper = [b + r for b, r in zip(base, rates)]
        if any(rates):
            points = []
            for i, t in enumerate(starts):
                end = min(duration, t + bucket)
                points.append(f"{x(t):.1f},{y(upper[i]):.1f}")
                points.append(f"{x(end):.1f},{y(upper[i]):.1f}")
            for i in reversed(range(len(starts))):
                end = min(duration, starts[i] + bucket)
                points.append(f"{x(end):.1f},{y(base[i]):.1f}")
                points.append(f"{x(starts[i]):.1f},{y(base[i]):.1f}")
            out.append(f'<polygon points="{" ".join(points)}" fill="{color}" fill-opacity="0.88" stroke="{color}" '
                       f'stroke-width="0.5"><title>{_esc(name)}</title></polygon>')
        base = upper
    # Axes.
    out.append(f'<line x1="{left}" y1="{top + plotHeight}" x2="{left + plotWidth}" y2="{top + plotHeight}" stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plotHeight}" stroke="#333"/>')
    xStep = niceStep(duration, 10)
    t = 0.0
    while t <= duration + 1e-9:
        xx = x(t)
        out.append(f'<line x1="{xx:.1f}" y1="{top + plotHeight}" x2="{xx:.1f}" y2="{top + plotHeight + 4}" stroke="#333"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + plotHeight + 16}" text-anchor="middle" fill="#555">{_fmt(round(t, 6))}</text>')
        t += xStep
    out.append(f'<text x="{left + plotWidth}" y="{top + plotHeight + 28}" text-anchor="end" fill="#555">'
               f'scenario seconds</text>')
    # Events: a dashed line each, from its label (in the first free lane above the plot) down.
    for xx, lane, text, error, tip, leftOfLine in labels:
        color = "#c0392b" if error else "#333"
        ly = top - 8 - LANE * lane
        out.append(f'<line x1="{xx:.1f}" y1="{ly - 9:.1f}" x2="{xx:.1f}" y2="{top + plotHeight}" stroke="{color}" '
                   f'stroke-dasharray="4 3" stroke-width="1"><title>{_esc(tip)}</title></line>')
        anchor = f'x="{xx - 3:.1f}" text-anchor="end"' if leftOfLine else f'x="{xx + 3:.1f}"'
        out.append(f'<text {anchor} y="{ly:.1f}" fill="{color}" font-size="10">{_esc(text)}<title>{_esc(tip)}'
                   f'</title></text>')
    # Site state strips.
    for i, site in enumerate(stripSites):
        sy = stripsTop + i * (stripHeight + stripGap)
        out.append(f'<text x="{left - 6}" y="{sy + stripHeight - 1}" text-anchor="end" fill="#555" font-size="10">'
                   f'{_esc(site)}</text>')
        out.append(f'<rect x="{left}" y="{sy}" width="{plotWidth}" height="{stripHeight}" fill="#eeeeee"/>')
        rows = [r for r in states.get(site, []) if r[0] <= duration]
        for j, (at, state, master) in enumerate(rows):
            end = rows[j + 1][0] if j + 1 < len(rows) else duration
            x0, x1 = x(at), x(end)
            color = STATE_COLORS.get(state, "#bbbbbb")
            tip = f"{site} {state}, master core {master} from t={at:g}"
            out.append(f'<rect x="{x0:.1f}" y="{sy}" width="{max(0.5, x1 - x0):.1f}" height="{stripHeight}" '
                       f'fill="{color}"><title>{_esc(tip)}</title></rect>')
    if stripSites:
        out.append(f'<text x="{left}" y="{stripsTop - 6}" fill="#555" font-size="10">site state on the appliance '
                   f'(show gslb site): UP green, DOWN red</text>')
    # Legend.
    entries = [(name, color) for name, color, _ in stacks] + [("event", None)]
    for i, (name, color) in enumerate(entries):
        lx = left + (i % 5) * 170
        ly = legendTop + (i // 5) * 20
        if color is None:
            out.append(f'<line x1="{lx}" y1="{ly + 5}" x2="{lx + 12}" y2="{ly + 5}" stroke="#333" stroke-dasharray="4 3"/>')
        else:
            out.append(f'<rect x="{lx}" y="{ly}" width="12" height="10" fill="{color}"/>')
        label = name if name in ("event", "unanswered") or name.startswith("no address") else f"site {name}"
        out.append(f'<text x="{lx + 17}" y="{ly + 9}">{_esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- the page ---------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1e7d32; font-weight: bold; } .fail { color: #b71c1c; font-weight: bold; }
.badge { display: inline-block; padding: 4px 12px; border-radius: 4px; color: #fff; font-weight: bold; }
.badge.pass { background: #2e7d32; color: #fff; } .badge.fail { background: #c62828; color: #fff; }
.bar { background: #4e79a7; height: 10px; display: inline-block; } .muted { color: #777; }
code { background: #f4f4f4; padding: 1px 4px; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            raw = isinstance(cell, _Raw)
            text = cell.text if raw else _esc("" if cell is None else cell)
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class _Raw:
    def __init__(self, text: str) -> None:
        self.text = text


def _verdict(passed: bool) -> _Raw:
    return _Raw('<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>')


def html(doc: Mapping, svg: Optional[str] = None) -> str:
    """The report page (self-contained: inline CSS and SVG, no script)."""
    scenario, run = doc["scenario"], doc["run"]
    svg = svg if svg is not None else chartSVG(doc)
    passed = doc.get("passed")
    state = "PASSED" if passed else ("INTERRUPTED" if run.get("interrupted") else "FAILED")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(scenario['name'])}: {state}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Scenario {_esc(scenario['name'])} "
        f"<span class=\"badge {'pass' if passed else 'fail'}\">{state}</span></h1>",
    ]
    if scenario.get("description"):
        parts.append(f"<p>{_esc(scenario['description'])}</p>")
    speed = run.get("speed") or 1
    facts = [
        ("scenario file", scenario["file"]), ("topology", scenario["topology"]),
        ("appliance", f"{scenario['appliance']['name']} at {scenario['appliance']['ip']}, "
                      f"{scenario['appliance']['cores']} cores"),
        ("duration", f"{scenario['duration']:g} s of scenario time, {scenario['duration'] / speed:g} s real at x{speed:g}"),
        ("started", run.get("started")), ("startup", None if run.get("startup_seconds") is None else f"{run['startup_seconds']} s"),
        ("wall time", f"{run.get('wall_seconds')} s"),
        ("answers", f"{doc['totals']['answered']:,} answered, {doc['totals']['unanswered']:,} unanswered"),
        ("latency", ", ".join(f"{k} {v} ms" for k, v in doc["totals"]["latency_ms"].items() if v is not None)),
    ]
    if run.get("speed_note"):
        facts.append(("speed", run["speed_note"]))
    parts.append(_table(["", ""], facts))
    if run.get("errors"):
        parts.append("<h2>Errors</h2><ul>" + "".join(f"<li class=\"fail\">{_esc(e)}</li>" for e in run["errors"]) + "</ul>")
    parts.append("<h2>Answers per site</h2>")
    parts.append(svg)
    parts.append('<p class="muted">Each address given counts once (a vserver with <code>answers = 2</code> counts two '
                 "per reply), by the time its query was sent; rates are per real second. Dashed lines: the events; "
                 "bands: ramps; strips: each site's state as the appliance showed it.</p>")
    parts.append("<h2>Expectations</h2>")
    verdicts = doc.get("expectations", [])
    if verdicts:
        parts.append(_table(["#", "expectation", "measured", "result"],
                            [(v["index"] + 1, v["text"] + (f" ({v['note']})" if v.get("note") else ""), v["measured"],
                              _verdict(v["passed"])) for v in verdicts]))
    else:
        parts.append('<p class="muted">None judged' + (" (the run did not complete)." if not passed else ".") + "</p>")
    if doc.get("failovers"):
        parts.append("<h2>Failover times</h2>")
        parts.append('<p class="muted">Seconds after the event (scenario time): when the appliance showed the site '
                     "DOWN (polled every 0.2 s real), when the last answer naming it was sent; after the event that "
                     "restores it, when the appliance showed it UP and the first answer named it again.</p>")
        parts.append(_table(
            ["event", "appliance DOWN after", "last answer naming it after", "answers naming it", "restored by",
             "appliance UP after", "first answer after"],
            [(f["event"], f.get("appliance_down_after"), f.get("last_answer_after"), f.get("answers_naming_it"),
              f.get("back_event"), f.get("appliance_up_after"), f.get("first_answer_after")) for f in doc["failovers"]],
            numeric=(1, 2, 3, 5, 6)))
    parts.append("<h2>Queries per core</h2>")
    cores = doc.get("cores", [])
    if cores:
        parts.append(_table(
            ["core", "queries", "share", "", "pids", "restarts"],
            [(c["core"], f"{c['queries']:,}", None if c["share"] is None else f"{c['share']:.1f} %",
              _Raw(f'<span class="bar" style="width:{2 * (c["share"] or 0):.0f}px"></span>'),
              ", ".join(str(p) for p in c["pids"]), c["restarts"]) for c in cores],
            numeric=(1, 2, 5)))
    else:
        parts.append('<p class="muted">No figures from the cores.</p>')
    parts.append("<h2>Clients</h2>")
    parts.append(_table(
        ["population", "rate q/s", "sources", "ECS", "answered", "unanswered", "p50 ms", "p99 ms", "site share"],
        [(p["name"], p["rate"], f"{p['sources']} from {p['source']}", p["ecs"] or "-", f"{p['answered']:,}",
          f"{p['unanswered']:,}", p["latency_p50_ms"], p["latency_p99_ms"],
          ", ".join(f"{site} {share:.1f} %" for site, share in p["site_share"].items())) for p in doc["populations"]],
        numeric=(1, 4, 5, 6, 7)))
    parts.append("<h2>Timeline</h2>")
    parts.append(_table(
        ["at", "event", "applied at", "took ms", "result"],
        [(e["at"], e["label"].split(" ", 1)[1] if " " in e["label"] else e["label"], e["applied_at"], e["took_ms"],
          _Raw(f'<span class="fail">{_esc(e["error"])}</span>') if e.get("error") else (e.get("detail") or "ok"))
         for e in doc.get("events", [])],
        numeric=(0, 2, 3)))
    scaled = run.get("scaled") or []
    parts.append("<h2>Time scaling</h2>")
    if scaled:
        parts.append(f"<p>Run at x{speed:g}: event times, expectation windows and these intervals were divided by "
                     f"{speed:g}, none below its floor (marked). Query rates, timeouts, latencies and the unanswered gaps are "
                     "real time; process start-up, reconnection backoff and core respawn are not scaled.</p>")
        parts.append(_table(["what", "as written", "in this run", ""],
                            [(s["what"], s["nominal"], s["value"], "floor" if s["floored"] else "")
                             for s in scaled], numeric=(1, 2)))
    else:
        parts.append("<p>Run at x1: nothing scaled.</p>")
    parts.append('<p class="muted">report.json holds all of this and the per-bucket series.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- progress ---------------------------------------------------------------------------------


def progressLine(status: Mapping[str, Any], width: int = 100) -> str:
    """
    One line: a bar, scenario time done / total, answers, unanswered, the
    sites' shares of the last second, events applied.
    """
    phase = status.get("phase", "running")
    if phase in ("preparing", "starting"):
        return "starting the appliance and the sites..."[:width]
    duration = float(status.get("duration") or 1.0)
    t = float(status.get("t") or 0.0)
    done = max(0.0, min(1.0, t / duration))
    barWidth = 20
    filled = int(round(done * barWidth))
    bar = "[" + "#" * filled + "-" * (barWidth - filled) + "]"
    shares = status.get("shares") or {}
    total = sum(shares.values())
    shareText = " ".join(f"{site} {100.0 * n / total:.0f}%" for site, n in sorted(shares.items())) if total else "-"
    draining = " (draining)" if phase == "draining" else ""
    line = (f"{bar} {t:5.1f}/{duration:g} s x{float(status.get('speed') or 1):g}{draining}  "
            f"answers {status.get('answered', 0):,}  unanswered {status.get('unanswered', 0):,}  "
            f"events {status.get('events_done', 0)}/{status.get('events', 0)}  {shareText}")
    return line[:width]
