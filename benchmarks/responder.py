"""
The command line both baseline DNS servers of the benchmarks share
(L{benchmarks.names_server}, L{benchmarks.ceiling_server}): a port and an
interface, listen, run the reactor.
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence


def runResponder(
    reactor, argv: Sequence[str], prog: str, description: str, defaultPort: int, listen: Callable
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, default=defaultPort)
    parser.add_argument("--interface", default="127.0.0.1")
    options = parser.parse_args(argv)
    listen(reactor, options.port, options.interface)
    reactor.run()
    return 0
