"""
A UDP flood of DNS queries, from a process of its own: as fast as one
blocking socket sends, C{--count} queries for C{--name} to C{--target},
replies never read.  Its own process, so that the flood does not stall the
reactor of whoever measures the damage (the chaos suite's steady load)::

    python -m gslb_twisted.chaos.flood --target 127.0.0.1:5300 --name www.demo.gslb --count 30000

It prints one JSON line: how many it sent, the errors, and how long it took.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Optional, Sequence

from gslb_twisted.chaos.load import encodeQuery


def flood(target: tuple[str, int], name: str, count: int, source: str = "127.0.0.1") -> dict:
    """
    Send C{count} queries (ids 0, 1, ...); @return: {sent, errors, seconds,
    started_at} (C{started_at}: C{time.time()} of the first send).
    """
    template = encodeQuery(name)
    tail = template[2:]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((source, 0))
        sock.connect(target)
        send = sock.send
        sent = errors = 0
        startedAt = time.time()
        started = time.monotonic()
        for index in range(count):
            try:
                send((index & 0xFFFF).to_bytes(2, "big") + tail)
                sent += 1
            except OSError:
                errors += 1
        return {"sent": sent, "errors": errors, "seconds": round(time.monotonic() - started, 4), "started_at": startedAt}
    finally:
        sock.close()


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gslb_twisted.chaos.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=_target, required=True, help="HOST:PORT of the DNS server")
    parser.add_argument("--name", required=True, help="the name asked (type A)")
    parser.add_argument("--count", type=int, default=30000)
    parser.add_argument("--source", default="127.0.0.1", help="source address")
    options = parser.parse_args(argv)
    if options.count < 1:
        parser.error("--count must be at least 1")
    print(json.dumps(flood(options.target, options.name, options.count, options.source)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
