"""
Entry point of a core process: C{python -m gslb_twisted.core --core K ...},
spawned by the supervisor, never by hand.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys

from twisted.logger import Logger
from twisted.python import usage

from gslb_twisted.config import CompiledTopologyError, ConfigError, Topology, loadTopology, readCompiledTopology

# Nothing here imports twisted.internet.tcp (nor the reactor) before the
# topology is read: see withoutTLS.

log = Logger()


class CoreOptions(usage.Options):
    optParameters = [
        ["core", None, None, "This core's id.", int],
        ["config", None, None, "The topology file."],
        ["topology-fd", None, None, "The topology the supervisor compiled, at this descriptor.", int],
    ]

    def __init__(self) -> None:
        super().__init__()
        # (option, spec) as given: made DNSSockets once the TLS question is
        # settled (gslb_twisted.core.service imports the reactor's TCP).
        self["socketSpecs"] = []
        self["mepSpec"] = None

    def opt_inherit(self, spec: str) -> None:
        """A DNS socket inherited as a descriptor: TRANSPORT:FD:FAMILY."""
        self["socketSpecs"].append(("inherit", spec))

    def opt_inherit_mep(self, spec: str) -> None:
        """The MEP listening socket, inherited: tcp:FD:FAMILY."""
        self["mepSpec"] = spec

    def opt_reuseport(self, spec: str) -> None:
        """A DNS socket to bind with SO_REUSEPORT: TRANSPORT:PORT:ADDRESS."""
        self["socketSpecs"].append(("reuseport", spec))

    def postOptions(self) -> None:
        if self["core"] is None or self["config"] is None:
            raise usage.UsageError("--core and --config are required")


def main(argv: list[str]) -> int:
    options = CoreOptions()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"gslb core: {e}\n")
        return 2
    topology = None
    if options["topology-fd"] is not None:
        try:
            topology = readCompiledTopology(options["topology-fd"])
        except CompiledTopologyError as e:
            sys.stderr.write(f"gslb core {options['core']}: {e}; reading {options['config']} instead\n")
        finally:
            with contextlib.suppress(OSError):
                os.close(options["topology-fd"])
    if topology is None:
        try:
            topology = loadTopology(options["config"])
        except ConfigError as e:
            sys.stderr.write(f"gslb core {options['core']}: {e}\n")
            return 1

    if not topology.usesTLS():
        withoutTLS()
    return serve(options, topology)


def freezeLongLived() -> None:
    """
    Once serving, move everything allocated so far (modules, the topology,
    the answer books, the first plans) out of the cyclic garbage collector's
    reach: a full collection walked all of it, 65-70 ms of blocked reactor
    with a core's state at 1,000 sites x 20 services (DNS answers and metric
    propagation wait meanwhile).  These objects live as long as the core;
    what is allocated later is still collected as usual.
    """
    gc.collect()
    gc.freeze()


def withoutTLS() -> None:
    """
    Run as if pyOpenSSL were not installed.  Twisted's TCP transport imports
    it (and cryptography) whenever it can, for startTLS: 12 MiB of every
    core, which a core whose topology has no MEP TLS and no HTTPS monitor
    never uses.  (A None in sys.modules makes an import fail, as Python
    documents; Twisted treats TLS as optional.)  Must run before anything
    imports twisted.internet.tcp.
    """
    if "twisted.internet.tcp" not in sys.modules:
        sys.modules.setdefault("OpenSSL", None)


def serve(options: CoreOptions, topology: Topology) -> int:
    """Serve C{topology} as core C{options["core"]} until the supervisor goes."""
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO
    from twisted.logger import globalLogBeginner
    from twisted.python.failure import Failure

    from gslb_twisted.core.gslb import CoreGSLB, mepClientTLS
    from gslb_twisted.core.service import CoreService, DNSSocket, SupervisorLink
    from gslb_twisted.dns.authority import Authority
    from gslb_twisted.logs import CoreLogForwarder
    from gslb_twisted.protocol.descriptors import CHILD_AMP_IN, CHILD_AMP_OUT

    sockets = []
    for kind, spec in options["socketSpecs"]:
        try:
            sockets.append(DNSSocket.inherited(spec) if kind == "inherit" else DNSSocket.reusePort(spec))
        except ValueError:
            expected = "TRANSPORT:FD:FAMILY" if kind == "inherit" else "TRANSPORT:PORT:ADDRESS"
            sys.stderr.write(f"gslb core: --{kind} {spec!r}: expected {expected}\n")
            return 2
    mep = None
    if options["mepSpec"] is not None:
        try:
            mep = DNSSocket.inherited(options["mepSpec"])
        except ValueError:
            sys.stderr.write(f"gslb core: --inherit-mep {options['mepSpec']!r}: expected tcp:FD:FAMILY\n")
            return 2

    forwarder = CoreLogForwarder()
    globalLogBeginner.beginLoggingTo([forwarder], redirectStandardIO=False)

    authority = Authority.fromTopology(topology)
    secret = topology.appliance.mep_secret
    core = CoreService(
        reactor,
        options["core"],
        authority,
        sockets,
        mep,
        tcpLimits=topology.appliance.dns_tcp,
        gslbFactory=lambda service: CoreGSLB(
            reactor,
            options["core"],
            topology,
            authority,
            publish=service.publish,
            callHub=lambda command, **arguments: service.link.callRemote(command, **arguments),
            secret=secret.encode("utf-8") if secret else None,
            clientTLS=mepClientTLS(topology),
        ),
    )

    def supervisorGone() -> None:
        if reactor.running:
            reactor.stop()

    link = SupervisorLink(core, forwarder, supervisorGone, sites=len(topology.sites))
    StandardIO(link, CHILD_AMP_IN, CHILD_AMP_OUT, reactor=reactor)

    def start() -> None:
        # Ctrl-C at a terminal reaches the whole process group: a core is
        # stopped by its supervisor (TERM), not by the keyboard.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        def cannotStart(failure) -> None:
            # Without its sockets a core is useless: exit, and let the
            # supervisor respawn it with backoff.
            log.failure("core {core} cannot start", failure, core=options["core"])
            exitCode.append(1)
            if reactor.running:
                reactor.stop()

        try:
            core.startService()
        except Exception:
            cannotStart(Failure())
            return
        if core.ready is not None:
            core.ready.addCallbacks(lambda _: freezeLongLived(), cannotStart)
        else:
            freezeLongLived()

    exitCode: list[int] = []
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", core.stopService)
    profileDirectory = os.environ.get("GSLB_CORE_PROFILE")
    if profileDirectory:
        # Where a core's time goes under load (benchmarks/PERF.md): the
        # reactor runs under cProfile, stats dumped as core-N.prof at exit.
        import cProfile

        profiler = cProfile.Profile()
        try:
            profiler.runcall(reactor.run)
        finally:
            profiler.dump_stats(os.path.join(profileDirectory, f"core-{options['core']}.prof"))
    else:
        reactor.run()
    return exitCode[0] if exitCode else 0
