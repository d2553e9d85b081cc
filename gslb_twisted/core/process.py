"""
Entry point of a core process: C{python -m gslb_twisted.core --core K ...},
spawned by the supervisor, never by hand.
"""

from __future__ import annotations

import signal
import sys

from twisted.internet.stdio import StandardIO
from twisted.logger import Logger, globalLogBeginner
from twisted.python import usage

from gslb_twisted.config import ConfigError, loadTopology
from gslb_twisted.core.service import CoreService, DNSSocket, SupervisorLink
from gslb_twisted.dns.authority import Authority
from gslb_twisted.logs import CoreLogForwarder
from gslb_twisted.supervisor import CHILD_AMP_IN, CHILD_AMP_OUT

log = Logger()


class CoreOptions(usage.Options):
    optParameters = [
        ["core", None, None, "This core's id.", int],
        ["config", None, None, "The topology file."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["sockets"] = []

    def opt_inherit(self, spec: str) -> None:
        """A DNS socket inherited as a descriptor: TRANSPORT:FD:FAMILY."""
        try:
            self["sockets"].append(DNSSocket.inherited(spec))
        except ValueError:
            raise usage.UsageError(f"--inherit {spec!r}: expected TRANSPORT:FD:FAMILY") from None

    def opt_reuseport(self, spec: str) -> None:
        """A DNS socket to bind with SO_REUSEPORT: TRANSPORT:PORT:ADDRESS."""
        try:
            self["sockets"].append(DNSSocket.reusePort(spec))
        except ValueError:
            raise usage.UsageError(f"--reuseport {spec!r}: expected TRANSPORT:PORT:ADDRESS") from None

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
    try:
        topology = loadTopology(options["config"])
    except ConfigError as e:
        sys.stderr.write(f"gslb core {options['core']}: {e}\n")
        return 1

    from twisted.internet import reactor

    forwarder = CoreLogForwarder()
    globalLogBeginner.beginLoggingTo([forwarder], redirectStandardIO=False)

    core = CoreService(reactor, options["core"], Authority.fromTopology(topology), options["sockets"])

    def supervisorGone() -> None:
        if reactor.running:
            reactor.stop()

    StandardIO(SupervisorLink(core, forwarder, supervisorGone), CHILD_AMP_IN, CHILD_AMP_OUT, reactor=reactor)

    def start() -> None:
        # Ctrl-C at a terminal reaches the whole process group: a core is
        # stopped by its supervisor (TERM), not by the keyboard.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            core.startService()
        except Exception:
            # Without its sockets a core is useless: exit, and let the
            # supervisor respawn it with backoff.
            log.failure("core {core} cannot start", core=options["core"])
            exitCode.append(1)
            reactor.stop()

    exitCode: list[int] = []
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", core.stopService)
    reactor.run()
    return exitCode[0] if exitCode else 0
