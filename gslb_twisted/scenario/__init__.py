"""
Scenarios: a topology, a client population and a timeline of events, run
for real (the appliance, its emulated sites, MEP, DNS load), with
expectations checked against every answer and a report (JSON, HTML and an
SVG chart).  C{gslb-scenario run FILE}; the schema is in docs/SCENARIOS.md.

  - L{gslb_twisted.scenario.model}: the file -> a validated L{Scenario} (pure);
  - L{gslb_twisted.scenario.series}: answers -> per-bucket counts (pure);
  - L{gslb_twisted.scenario.expect}: expectations against the series (pure);
  - L{gslb_twisted.scenario.plan}: --speed, ports and proxies -> the files
    the processes get (pure);
  - L{gslb_twisted.scenario.report}: JSON, HTML, SVG (pure);
  - L{gslb_twisted.scenario.runner}: the processes, the load, the timeline;
  - L{gslb_twisted.scenario.cli}: the command.
"""
