"""
C{gslb-scenario}: run a scenario for real, or check one.

    gslb-scenario run FILE [--report DIR] [--speed N|ci] [--keep] [--quiet]
    gslb-scenario check FILE

C{run} starts the appliance and the emulated sites, drives the load,
applies the timeline, judges the expectations, prints them and writes the
report (C{report.json}, C{report.html}, C{chart.svg} and the processes'
logs) to C{--report DIR}.  A progress line is shown on a terminal (plain
lines every few seconds otherwise, none with C{--quiet}).

Exit status: 0 every expectation held; 1 an expectation failed or an event
could not be applied; 2 a usage error or a bad scenario file (the message
names the file, table and key); 3 the run could not start or broke (a
process died, a deadline passed); 130 interrupted (Ctrl-C: everything is
stopped, and what was recorded is written, marked interrupted).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Optional, Sequence, TextIO

from gslb_twisted.config import ConfigError
from gslb_twisted.scenario.model import Scenario, loadScenario
from gslb_twisted.scenario.report import progressLine

PROG = "gslb-scenario"


def _speed(text: str):
    if text == "ci":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'ci')") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a speed above 0, at most 1000")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run a GSLB scenario for real: the appliance, its emulated sites, client load, a timeline of "
        "events, and expectations checked against every answer.",
        epilog="Exit status: 0 passed, 1 an expectation or event failed, 2 bad usage or scenario file, "
        "3 the run broke, 130 interrupted.  docs/SCENARIOS.md has the file format.",
    )
    commands = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run a scenario and report")
    run.add_argument("file", metavar="FILE", help="the scenario (TOML)")
    run.add_argument("--report", metavar="DIR", help="write report.json, report.html, chart.svg and logs/ there")
    run.add_argument("--speed", metavar="N", type=_speed, default=1.0,
                     help="compress time N times (intervals, events, windows scaled; see docs/SCENARIOS.md); "
                     "'ci': the scenario's ci_speed")
    run.add_argument("--keep", action="store_true", help="keep the work directory (topology copies, sockets, logs)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    run.add_argument("-v", "--verbose", action="store_true", help="log the runner's own events on standard error")
    check = commands.add_parser("check", help="validate a scenario (and its topology) without running it")
    check.add_argument("file", metavar="FILE", help="the scenario (TOML)")
    return p


class Progress:
    """The progress line: redrawn in place on a terminal, a plain line every C{every} seconds otherwise."""

    def __init__(self, stream: TextIO, tty: Optional[bool] = None, every: float = 5.0, clock=time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self.clock = clock
        self._last = -1e9
        self._phase = None
        self._drawn = False

    def __call__(self, status: dict) -> None:
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns - 1
            self.stream.write("\r" + progressLine(status, width).ljust(width))
            self.stream.flush()
            self._drawn = True
            return
        now = self.clock()
        if status.get("phase") != self._phase or now - self._last >= self.every:
            self._phase = status.get("phase")
            self._last = now
            self.stream.write(progressLine(status, 200) + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 24)).columns - 1) + "\r")
            self.stream.flush()
            self._drawn = False


def summary(result, scenario: Scenario) -> str:
    """What the run found, for the terminal."""
    doc = result.document
    run = doc["run"]
    state = "PASSED" if result.passed else ("INTERRUPTED" if run.get("interrupted") else "FAILED")
    lines = [f"scenario {scenario.name}: {state} (speed x{run['speed']:g}, {scenario.duration:g} s scenario, "
             f"{run['wall_seconds']:g} s wall)"]
    if run.get("speed_note"):
        lines.append(f"  {run['speed_note']}")
    for error in run.get("errors", []):
        lines.append(f"  error: {error}")
    for event in doc.get("events", []):
        if event.get("error"):
            lines.append(f"  event failed: {event['label']}: {event['error']}")
    for verdict in doc.get("expectations", []):
        mark = "pass" if verdict["passed"] else "FAIL"
        lines.append(f"  {mark}  {verdict['text']}: {verdict['measured']}")
    for row in doc.get("failovers", []):
        text = f"  failover {row['event']}: last answer naming it {row['last_answer_after']} s after"
        if row.get("appliance_down_after") is not None:
            text += f", appliance DOWN after {row['appliance_down_after']} s"
        if row.get("first_answer_after") is not None:
            text += f"; back {row['first_answer_after']} s after {row['back_event']}"
        lines.append(text)
    cores = doc.get("cores", [])
    if cores:
        lines.append("  queries per core: " + ", ".join(
            f"{c['core']}: {c['share']:.1f} %" if c["share"] is not None else f"{c['core']}: -" for c in cores))
    totals = doc["totals"]
    lines.append(f"  {totals['answered']:,} answered, {totals['unanswered']:,} unanswered; shares: "
                 + (", ".join(f"{site} {share:.1f} %" for site, share in totals["site_share"].items()) or "-"))
    for kind, path in result.files.items():
        lines.append(f"  {kind}: {path}")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None, stdout: TextIO = None, stderr: TextIO = None) -> int:
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if isinstance(e.code, int) else 2
    try:
        scenario = loadScenario(args.file)
    except ConfigError as e:
        stderr.write(f"{PROG}: {e}\n")
        return 2
    if args.command == "check":
        stdout.write(
            f"{args.file}: scenario {scenario.name}: {scenario.duration:g} s, {len(scenario.populations)} populations "
            f"({scenario.rate:g} q/s), {len(scenario.events)} events, {len(scenario.expectations)} expectations; "
            f"emulated sites: {', '.join(scenario.emulated) or 'none'}; ci_speed {scenario.ciSpeed:g}\n")
        return 0
    speed = scenario.ciSpeed if args.speed == "ci" else args.speed
    reportDir = os.path.abspath(args.report) if args.report else None
    return runFromCommandLine(scenario, speed, reportDir, args.keep, args.quiet, args.verbose, stdout, stderr)


def runFromCommandLine(scenario: Scenario, speed: float, reportDir: Optional[str], keep: bool, quiet: bool,
                       verbose: bool, stdout: TextIO, stderr: TextIO) -> int:
    """Run on the global reactor until done or interrupted (Ctrl-C stops everything, then exits 130)."""
    from twisted.internet import defer, reactor

    from gslb_twisted.scenario.runner import ScenarioRun

    if verbose:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(stderr)], redirectStandardIO=False)
    progress = None if quiet else Progress(stderr)
    run = ScenarioRun(reactor, scenario, speed, reportDir, progress, keep)
    outcome: dict = {}

    def finished(result):
        outcome["result"] = result
        if reactor.running:
            reactor.stop()

    def failed(failure):
        outcome["failure"] = failure
        if reactor.running:
            reactor.stop()

    def go():
        defer.ensureDeferred(run.run()).addCallbacks(finished, failed)

    def shuttingDown():
        if "result" not in outcome and "failure" not in outcome:
            return run.abort()
        return None

    reactor.callWhenRunning(go)
    reactor.addSystemEventTrigger("before", "shutdown", shuttingDown)
    reactor.run()
    if progress is not None:
        progress.done()
    result = run.result
    if result is None:
        if "failure" in outcome:
            stderr.write(f"{PROG}: the run broke: {outcome['failure'].getTraceback()}\n")
        else:
            stderr.write(f"{PROG}: interrupted before anything was recorded\n")
        return 3 if "failure" in outcome else 130
    stdout.write(summary(result, scenario))
    stdout.flush()
    return result.exitCode
