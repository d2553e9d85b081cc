"""
When an appliance-side monitor runs, and what state a GSLB service ends up
in.  Pure functions over plain values.

NetScaler's C{set gslb site -triggerMonitor} (NITRO reference
C{setgslbsite_triggermonitor}; "Monitoring GSLB Sites" in the NetScaler
GSLB guide) decides when a monitor bound to a GSLB service probes it:

  - C{ALWAYS} (the default): at all times;
  - C{MEPDOWN}: only while the exchange of metrics with the site through MEP
    is down (or disabled);
  - C{MEPDOWN_SVCDOWN}: while MEP is down, or while MEP is up but the state of
    the service learned through metrics exchange is DOWN.

"In the latter two cases, the NetScaler appliance stops monitoring when MEP
returns to the UP state."  Here "MEP down" (C{mepUp=False}) covers no MEP
session with the site, a session silent past C{dead_interval}, and a site with
C{metric_exchange = false}.

L{monitorActive}(trigger, mepUp, mepServiceState):

    trigger          mepUp  mepServiceState      active
    ALWAYS           any    any                  yes
    MEPDOWN          False  any                  yes
    MEPDOWN          True   any                  no
    MEPDOWN_SVCDOWN  False  any                  yes
    MEPDOWN_SVCDOWN  True   "DOWN" / None        yes   (None: MEP has not
    MEPDOWN_SVCDOWN  True   "UP"                 no     reported the service)

L{effectiveState}(mepUp, mepState, monitorActive, monitorState,
metricExchange), first matching row wins:

    1. monitor active and it has a verdict   -> the monitor's verdict
    2. metricExchange is False (static site) -> UP
    3. mepUp                                 -> mepState if "UP", else DOWN
    4. otherwise (MEP down, no verdict)      -> DOWN

Row 1: a running monitor's result overrides MEP (what C{ALWAYS} means on
NetScaler; under the MEPDOWN triggers the monitor only runs when MEP cannot be
trusted anyway).  An active monitor without a result yet (just triggered) has
no say, so the other rows decide meanwhile.  Row 2 is SPEC section 3's static
site: its services count as UP unless their monitor says otherwise.  NetScaler
itself marks such a service DOWN when no monitor is bound ("if you disable
metrics exchange, you must use a monitor to determine the state of GSLB
services. Otherwise, the service is marked as DOWN"); the SPEC deliberately
differs.  Row 3: a service the site does not report (C{None}) is DOWN.  Row 4:
a site whose MEP session is down has all its services DOWN, as on NetScaler,
unless a monitor vouches for them.
"""

from __future__ import annotations

from typing import Optional

TRIGGERS = ("ALWAYS", "MEPDOWN", "MEPDOWN_SVCDOWN")
UP = "UP"
DOWN = "DOWN"


def monitorActive(trigger: str, mepUp: bool, mepServiceState: Optional[str]) -> bool:
    """
    Whether a service's monitor with this C{trigger} runs now.

    @param mepUp: whether metrics are being exchanged with the service's site
        (False for a site with C{metric_exchange = false}).
    @param mepServiceState: the service's state as reported over MEP
        (C{"UP"}, C{"DOWN"}) or C{None} when not reported.
    @raise ValueError: for an unknown trigger.
    """
    if trigger == "ALWAYS":
        return True
    if trigger == "MEPDOWN":
        return not mepUp
    if trigger == "MEPDOWN_SVCDOWN":
        return not mepUp or mepServiceState != UP
    raise ValueError(f"unknown trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}")


def effectiveState(
    mepUp: bool,
    mepState: Optional[str],
    monitorActive: bool,
    monitorState: Optional[str],
    metricExchange: bool,
) -> str:
    """
    A GSLB service's state, C{"UP"} or C{"DOWN"}, from the table in this
    module's docstring.

    @param monitorActive: a monitor is configured and its trigger is met
        (L{monitorActive}); C{False} when there is no monitor.
    @param monitorState: the monitor's debounced verdict, C{None} before its
        first result.
    """
    if monitorActive and monitorState in (UP, DOWN):
        return monitorState
    if not metricExchange:
        return UP
    if mepUp:
        return UP if mepState == UP else DOWN
    return DOWN
