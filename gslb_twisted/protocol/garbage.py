"""
AMP peers that send garbage: the conversation ends, logged once.

AMP raises out of C{dataReceived} for a box it cannot take (an empty box,
an answer or error to no question, an undecodable command name), and its
parser is then in no state to go on.  Left to the transport, that
exception is logged as unhandled and the connection dropped -- or, on a
core's pipe, the supervisor simply stops reading the core.  Here the
protocol says what happened, once, ignores anything more, and closes in a
way that suits its peer (L{GarbageClosesAMP.garbageReceived}).
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure


class GarbageClosesAMP(amp.AMP):
    """
    An L{amp.AMP} whose peer's protocol garbage ends the conversation.
    """

    garbageLog = Logger()
    receivedGarbage = False

    def dataReceived(self, data: bytes) -> None:
        if self.receivedGarbage:
            return
        try:
            super().dataReceived(data)
        except Exception:
            self.receivedGarbage = True
            self.garbageLog.failure(
                "{peer}: protocol garbage, conversation ended", Failure(), peer=self.describePeer()
            )
            self.garbageReceived()

    def describePeer(self) -> str:
        """Who sent it, for the log."""
        transport = self.transport
        return "AMP peer" if transport is None else f"AMP peer {transport.getPeer()}"

    def garbageReceived(self) -> None:
        """What to do once the peer sent garbage: close the connection."""
        if self.transport is not None:
            self.transport.loseConnection()
