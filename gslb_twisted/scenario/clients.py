"""
A population's DNS clients: the chaos suite's L{LoadGenerator} (one UDP
socket per source address, paced, every query tracked by socket and id),
plus what a scenario needs of it:

  - an EDNS Client Subnet option (RFC 7871) in every query, when the
    population has C{ecs}: the query carries an OPT record (payload 1232,
    version 0) with one option, code 8, family 1 or 2, the subnet's
    prefix as source prefix, scope 0, and the address cut to the prefix's
    bytes -- what resolvers that send ECS send;
  - every outcome handed to the run as it happens: each answer
    (C{onAnswer(answer)}) and each query given up (C{onLost(sentAt)}).

L{LoadGenerator} builds its query templates in its constructor and has no
hook for extra records, nor for lost queries; this subclass replaces the
templates after construction and extends C{_lost}.  (A C{templates=} or
C{ecs=} argument and an C{onLost} callback in the generator itself would
make this subclass two lines; see the report of issue 10.)
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Callable, Optional, Sequence

from gslb_twisted.chaos.load import Answer, LoadGenerator, encodeName

OPTION_CLIENT_SUBNET = 8
OPT = 41
PAYLOAD = 1232


def ecsOption(network: str) -> bytes:
    """The EDNS Client Subnet option (code, length, data) for C{network} (scope 0)."""
    net = ipaddress.ip_network(network, strict=True)
    family = 1 if net.version == 4 else 2
    prefix = net.prefixlen
    address = net.network_address.packed[: (prefix + 7) // 8]
    data = struct.pack("!HBB", family, prefix, 0) + address
    return struct.pack("!HH", OPTION_CLIENT_SUBNET, len(data)) + data


def optRecord(options: bytes = b"") -> bytes:
    """An OPT pseudo-record: root name, type 41, class = UDP payload, TTL 0 (rcode, version 0, no DO), the options."""
    return b"\x00" + struct.pack("!HHIH", OPT, PAYLOAD, 0, len(options)) + options


def encodeQuery(name: str, rdtype: int, ecs: Optional[str] = None, qid: int = 0) -> tuple[bytes, bytes]:
    """
    One query's bytes and its question section (what a reply must echo):
    class IN, no recursion wanted, with an OPT record carrying C{ecs} if set.
    """
    question = encodeName(name) + struct.pack("!HH", rdtype, 1)
    additional = optRecord(ecsOption(ecs)) if ecs else b""
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1 if additional else 0)
    return header + question + additional, question


class ScenarioLoad(LoadGenerator):
    """
    A L{LoadGenerator} for one population.

    @param ecs: a network (C{"127.0.3.0/24"}) sent as EDNS Client Subnet, or None.
    @param onAnswer: called with every L{Answer}.
    @param onLost: called with the send time of every query given up.
    """

    def __init__(self, reactor, target, queries: Sequence, rate: float, sources: Sequence[str], timeout: float,
                 ecs: Optional[str] = None, onAnswer: Optional[Callable[[Answer], None]] = None,
                 onLost: Optional[Callable[[float], None]] = None, **kwargs) -> None:
        self.onAnswer = onAnswer
        self.onLost = onLost
        super().__init__(reactor, target, queries, rate, sources=sources, timeout=timeout, classify=self._answered,
                         **kwargs)
        self.ecs = ecs
        if ecs is not None:
            for attribute in ("_templates", "_questions", "_tails"):
                if not hasattr(self, attribute):
                    raise RuntimeError(f"LoadGenerator has no {attribute}: ECS queries need its query templates")
            built = [encodeQuery(name, rdtype, ecs) for name, rdtype in self.queries]
            self._templates = [query for query, _ in built]
            self._questions = [question for _, question in built]
            self._tails = [query[2:] for query in self._templates]

    def _answered(self, answer: Answer) -> None:
        if self.onAnswer is not None:
            self.onAnswer(answer)
        return None  # (never "wrong": the scenario's expectations judge)

    def _lost(self, sentAt: float) -> None:
        super()._lost(sentAt)
        if self.onLost is not None:
            self.onLost(sentAt)
