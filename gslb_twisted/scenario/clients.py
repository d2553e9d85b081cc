"""
A population's DNS clients: the chaos suite's L{LoadGenerator} (one UDP
socket per source address, paced, every query tracked by socket and id),
with an EDNS Client Subnet (RFC 7871) in every query when the population
has C{ecs}, and every outcome handed to the run as it happens: each answer
(C{onAnswer(answer)}) and each query given up (C{onLost(sentAt)}).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from gslb_twisted.chaos import load
from gslb_twisted.chaos.load import Answer, LoadGenerator, ecsOption

__all__ = ["ScenarioLoad", "ecsOption", "encodeQuery"]


def encodeQuery(name: str, rdtype: int, ecs: Optional[str] = None, qid: int = 0) -> tuple[bytes, bytes]:
    """One query's bytes (with C{ecs} as EDNS Client Subnet if set) and its question section."""
    return load.encodeQuery(name, rdtype, qid, ecs), load.encodeQuestion(name, rdtype)


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
        super().__init__(reactor, target, queries, rate, sources=sources, timeout=timeout, classify=self._answered,
                         ecs=ecs, onLost=onLost, **kwargs)

    def _answered(self, answer: Answer) -> None:
        if self.onAnswer is not None:
            self.onAnswer(answer)
        return None  # (never "wrong": the scenario's expectations judge)
