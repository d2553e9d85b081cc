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

from .probes import (
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
from .runner import DEFAULT_RETRIES, DEFAULT_SUCCESS_RETRIES, Hysteresis, MonitorRunner, advance
from .trigger import TRIGGERS, effectiveState, monitorActive

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
