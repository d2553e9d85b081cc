"""
Baseline for the DNS benchmark: the stock twisted.names authoritative server
answering the benchmark zone from memory.

It holds the records that C{benchmarks/bench.toml} gives the gslb appliance:
zone C{bench.gslb} (SOA, NS) and C{www.bench.gslb A} with TTL 5, answered
with AA set.  (gslb rotates between two addresses; a static authority has
no such choice to make, so it holds one.)

Run it as its own process::

    python -m benchmarks.names_server --port 5399 --interface 127.0.0.1

It serves UDP only and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from twisted.logger import Logger

from benchmarks.responder import runResponder
from twisted.names import authority, dns, server

ZONE = b"bench.gslb"
NAME = b"www.bench.gslb"
ADDRESS = "192.0.2.10"
TTL = 5


class BenchAuthority(authority.FileAuthority):
    """
    An in-memory authority for the benchmark zone.  L{FileAuthority} does the
    record search (answers, NODATA/NXDOMAIN with the SOA, AA); this subclass
    only fills in the records instead of reading a file.
    """

    def __init__(self) -> None:
        authority.FileAuthority.__init__(self, None)

    def loadFile(self, filename: Optional[str]) -> None:
        soa = dns.Record_SOA(
            mname=b"ns1." + ZONE,
            rname=b"hostmaster." + ZONE,
            serial=1,
            refresh=3600,
            retry=3,
            expire=3600,
            minimum=30,
            ttl=30,
        )
        self.soa = (ZONE, soa)
        self.records = {
            ZONE: [soa, dns.Record_NS(b"ns1." + ZONE, ttl=3600)],
            NAME: [dns.Record_A(ADDRESS, ttl=TTL)],
        }


def listen(reactor, port: int, interface: str):
    """
    Listen for DNS over UDP on C{interface}:C{port} with a
    L{server.DNSServerFactory} over L{BenchAuthority}.

    @return: the listening port.
    """
    factory = server.DNSServerFactory(authorities=[BenchAuthority()], verbose=0)
    protocol = dns.DNSDatagramProtocol(controller=factory)
    return reactor.listenUDP(port, protocol, interface=interface)


class NamesServerMain:
    """
    The process: parse the command line, listen, run the reactor.
    """

    log = Logger()

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def run(self, argv: Sequence[str]) -> int:
        return runResponder(
            self.reactor, argv, "python -m benchmarks.names_server",
            "twisted.names authoritative baseline for benchmarks.dns_qps", 5399, listen,
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    from twisted.internet import reactor

    return NamesServerMain(reactor).run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
