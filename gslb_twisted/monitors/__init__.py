"""
Appliance-side service monitors (SPEC section 3, the C{monitor} key of a
C{[[service]]}), run by the master core of the service's site.

  - L{probes}: one check of one service (tcp, http, https, dns, udp) behind the
    L{IProbe} seam, and L{probeFor} choosing one from the configuration;
  - L{runner}: L{MonitorRunner}, a service probing periodically and reporting
    state transitions, with NetScaler-like hysteresis;
  - L{trigger}: when a monitor runs (NetScaler's C{triggerMonitor}) and the
    resulting state of a GSLB service.
"""

import importlib
from typing import TYPE_CHECKING

# Each name from the submodule that defines it, imported when first asked
# for: the decision engine needs only the trigger table, and a core that
# runs no monitor never loads the probes' HTTP client (treq, twisted.web).
_SOURCES = {
    "DNSProbe": "probes",
    "HTTPProbe": "probes",
    "IProbe": "probes",
    "ProbeResult": "probes",
    "TCPProbe": "probes",
    "UDPProbe": "probes",
    "UnverifiedTLSPolicy": "probes",
    "makeHTTPClient": "probes",
    "probeFor": "probes",
    "DEFAULT_RETRIES": "runner",
    "DEFAULT_SUCCESS_RETRIES": "runner",
    "Hysteresis": "runner",
    "MonitorRunner": "runner",
    "advance": "runner",
    "TRIGGERS": "trigger",
    "effectiveState": "trigger",
    "monitorActive": "trigger",
}


def __getattr__(name: str):
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{source}"), name)


if TYPE_CHECKING:
    from .probes import (  # noqa: F401
        DNSProbe,
        HTTPProbe,
        IProbe,
        ProbeResult,
        TCPProbe,
        UDPProbe,
        UnverifiedTLSPolicy,
        makeHTTPClient,
        probeFor,
    )
    from .runner import DEFAULT_RETRIES, DEFAULT_SUCCESS_RETRIES, Hysteresis, MonitorRunner, advance  # noqa: F401
    from .trigger import TRIGGERS, effectiveState, monitorActive  # noqa: F401

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_SUCCESS_RETRIES",
    "DNSProbe",
    "HTTPProbe",
    "Hysteresis",
    "IProbe",
    "MonitorRunner",
    "ProbeResult",
    "TCPProbe",
    "TRIGGERS",
    "UDPProbe",
    "UnverifiedTLSPolicy",
    "advance",
    "effectiveState",
    "makeHTTPClient",
    "monitorActive",
    "probeFor",
]
