"""
C{twistd gslb}: options and the assembly of the supervisor's service tree.
"""

from __future__ import annotations

import os
import sys

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage
from twisted.runner.procmon import ProcessMonitor

from gslb_twisted.config import (
    LOG_FORMATS,
    ConfigError,
    Topology,
    demoTopologyPath,
    loadTopology,
    writeCompiledTopology,
)
from gslb_twisted.mastership import hubAssigns
from gslb_twisted.endpoints import DNSEndpoint, parseDNSEndpoint, unixPathProblem
from gslb_twisted.protocol.descriptors import CHILD_TOPOLOGY
from gslb_twisted.supervisor import (
    ControlFactory,
    CoreMonitor,
    SharedSockets,
    SupervisorService,
    coreCommand,
    resolvePorts,
    unixModeControl,
)

SOCKET_SHARING = ("inherit", "reuseport")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the GSLB appliance: a supervisor and one core process per CPU "
        "core, answering DNS for the topology's GSLB domains.  With no "
        "--config it runs the built-in demo topology."
    )
    optFlags = [
        ["start-sites", None, "Also run a gslb-site emulator for every site with an [site.emulator] table (the default for the demo)."],
        ["no-sites", None, "Run no site emulators, not even for the demo."],
    ]
    optParameters = [
        ["config", "c", None, "Topology file (TOML). Default: the built-in demo (fixtures/demo.toml)."],
        ["cores", None, None, "Core processes: a number or 'auto' (default: the topology's)."],
        ["control", None, None, "Control endpoint for gslb-console (default: the topology's)."],
        ["log-format", None, "text", "Log format: text or json (one JSON object per line)."],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics on /metrics at this endpoint, e.g. tcp:9153:interface=127.0.0.1 (default: none).",
        ],
        [
            "socket-sharing",
            None,
            "inherit",
            "How cores share the DNS sockets: inherit (bound once by the "
            "supervisor, adopted by every core) or reuseport (SO_REUSEPORT, one per core).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["dns"] = []

    def opt_dns(self, endpoint: str) -> None:
        """
        DNS endpoint, repeatable: udp:PORT[:interface=ADDR] or
        tcp:PORT[:interface=ADDR] (default: the topology's).
        """
        try:
            self["dns"].append(parseDNSEndpoint(endpoint))
        except ValueError as e:
            raise usage.UsageError(f"--dns: {e}") from None

    def postOptions(self) -> None:
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError("--log-format must be text or json")
        if self["socket-sharing"] not in SOCKET_SHARING:
            raise usage.UsageError("--socket-sharing must be inherit or reuseport")
        cores = self["cores"]
        if cores is not None and cores != "auto":
            try:
                cores = int(cores)
                if cores < 1:
                    raise ValueError(cores)
            except ValueError:
                raise usage.UsageError("--cores must be a positive integer or 'auto'") from None
        self["cores"] = cores
        # The demo brings its own sites; a real topology's sites are elsewhere.
        self["sites"] = (self["start-sites"] or not self["config"]) and not self["no-sites"]
        path = self["config"] or demoTopologyPath()
        self["config"] = os.path.abspath(path)
        try:
            self["topology"] = loadTopology(self["config"])
        except ConfigError as e:
            # Not a usage problem: say exactly what is wrong, start nothing.
            raise SystemExit(f"twistd gslb: {e}") from None
        if not self["dns"]:
            try:
                self["dns"] = [parseDNSEndpoint(d) for d in self["topology"].appliance.dns]
            except ValueError as e:
                raise SystemExit(f"twistd gslb: {self['config']}: [appliance]: key 'dns': {e}") from None
        if self["log-format"] == "json" and self.parent is not None:
            # twistd resolves its logger option by name, after this runs.
            self.parent["logger"] = "gslb_twisted.logs.jsonStdoutLogObserver"


def siteEmulators(reactor, configPath: str, topology: Topology) -> ProcessMonitor:
    """
    One C{twistd -n gslb-site} child per site that has an emulator table,
    kept running (and stopped) by procmon: the demo's remote sites.
    """
    monitor = ProcessMonitor(reactor=reactor)
    for site in topology.sites:
        if site.emulator is None:
            continue
        monitor.addProcess(
            f"site-{site.name}",
            [sys.executable, "-m", "gslb_twisted.site", "--pidfile=", "-n", "gslb-site",
             "--config", configPath, "--site", site.name],
            env=dict(os.environ),
        )
    return monitor


def makeService(options: Options):
    from twisted.internet import reactor

    topology: Topology = options["topology"]
    if options["cores"] is None:
        count = topology.appliance.coreCount()
    elif options["cores"] == "auto":
        count = max(1, os.cpu_count() or 1)
    else:
        count = options["cores"]

    assignable = [site.name for site in topology.sites if hubAssigns(topology, site)]
    mep = None
    if len(assignable) < len(topology.sites):
        # Some sites dial us (lower-IP rule): listen for MEP.
        appliance = topology.appliance
        mep = DNSEndpoint("tcp", appliance.mep_port, appliance.ip)
    try:
        if options["socket-sharing"] == "inherit":
            shared = SharedSockets.bind(options["dns"], mep)
            socketArguments = shared.coreArguments
        else:
            shared = SharedSockets.bind([], mep)
            endpoints = resolvePorts(options["dns"])
            reuseArguments = []
            for endpoint in endpoints:
                reuseArguments += ["--reuseport", f"{endpoint.transport}:{endpoint.port}:{endpoint.interface}"]

            def socketArguments():
                return reuseArguments + shared.coreArguments()

    except OSError as e:
        raise SystemExit(f"twistd gslb: cannot listen: {e.strerror or e}") from None
    # Validated once, here: every core (a respawned one too) inherits it.
    compiled = writeCompiledTopology(topology)

    def extraFDs() -> dict[int, int]:
        return {CHILD_TOPOLOGY: compiled.fileno(), **shared.childFDs()}

    monitor = CoreMonitor(
        reactor,
        count,
        coreCommand(options["config"], socketArguments, sys.executable, compiled=True),
        extraFDs=extraFDs,
        assignable=assignable,
        sites=[site.name for site in topology.sites],
        topology=topology,
    )
    root = SupervisorService(monitor, shared)
    if options["sites"]:
        siteEmulators(reactor, options["config"], topology).setServiceParent(root)
    control = options["control"] or topology.appliance.control
    problem = unixPathProblem(control)
    if problem is not None:
        raise SystemExit(f"twistd gslb: control endpoint {control!r}: {problem}")
    if not control.lower().startswith("unix:") and topology.appliance.control_token is None:
        # Anyone who reaches a TCP port could steer the appliance.
        raise SystemExit(
            f"twistd gslb: control endpoint {control!r}: a control endpoint that is not a unix socket needs"
            ' [appliance] control_token (a secret: a string, { file = "PATH" } or { env = "NAME" })'
        )
    endpoint = serverFromString(reactor, unixModeControl(control))
    StreamServerEndpointService(
        endpoint, ControlFactory(monitor, token=topology.appliance.control_token)
    ).setServiceParent(root)
    if options["metrics"]:
        metricsService(reactor, options["metrics"], monitor, topology).setServiceParent(root)
    return root


def metricsService(reactor, description: str, monitor: CoreMonitor, topology: Topology) -> MultiService:
    """
    C{/metrics} at C{description}: prometheus_client's Twisted resource
    over a registry of our own, whose collector answers from a cache the
    exporter refreshes every consolidation interval.
    """
    from gslb_twisted.exporter import MetricsExporter, metricsSite

    try:
        endpoint = serverFromString(reactor, description)
    except ValueError as e:
        raise SystemExit(f"twistd gslb: --metrics {description!r}: {e}") from None
    service = MultiService()
    exporter = MetricsExporter(monitor, reactor, topology.appliance.consolidation_interval)
    exporter.setServiceParent(service)
    StreamServerEndpointService(endpoint, metricsSite(exporter.registry)).setServiceParent(service)
    return service
