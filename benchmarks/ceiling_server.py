"""
The ceiling of the DNS benchmark: the least a Twisted UDP server can do per
query.  A L{DatagramProtocol} reads the header and the question with
C{struct}, and answers C{www.bench.gslb A} from a reply prebuilt at start-up
(the same record as C{benchmarks/bench.toml} and L{benchmarks.names_server}:
TTL 5, AA set), copying only the query's id and RD bit into it.  Any other
question gets REFUSED, anything that is not a one-question query is dropped.

No resolver, no C{dns.Message}, no Deferred: what is left is the reactor's
read loop, one C{recvfrom} and one C{sendto} (the socket's own, as the
appliance does) per query.  That is the upper
bound any Twisted-based DNS server, the appliance included, can reach on one
core of this machine; L{benchmarks.perf} compares every other server with it.

Run it as its own process::

    python -m benchmarks.ceiling_server --port 5397 --interface 127.0.0.1

It serves UDP only and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Optional, Sequence, Tuple

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from benchmarks.responder import runResponder

NAME = "www.bench.gslb"
ADDRESS = "192.0.2.10"
TTL = 5

TYPE_A = 1
CLASS_IN = 1

HEADER = struct.Struct("!HHHHHH")
QUESTION_TAIL = struct.Struct("!HH")
# A compressed pointer to the question's name (offset 12), type, class,
# TTL, rdlength.
ANSWER_HEAD = struct.Struct("!HHHIH")

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_RD = 0x0100
OPCODE_MASK = 0x7800
RCODE_REFUSED = 5


def encodeName(name: str) -> bytes:
    """
    The wire form of C{name}: length-prefixed labels, then the root label.
    """
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def questionEnd(data: bytes) -> Optional[int]:
    """
    The offset just past the first question of the message C{data} (its
    name, type and class), or None when the name runs off the end or uses
    compression (a query's first name never needs it).
    """
    offset = HEADER.size
    size = len(data)
    while offset < size:
        length = data[offset]
        if length == 0:
            end = offset + 1 + QUESTION_TAIL.size
            return end if end <= size else None
        if length & 0xC0:
            return None
        offset += 1 + length
    return None


class TemplateAnswers:
    """
    Answers for one name, prebuilt.

    @ivar question: the expected question (name, type A, class IN), lower
        case, as it follows the header.
    @ivar answer: the answer record that follows it.
    """

    def __init__(self, name: str = NAME, address: str = ADDRESS, ttl: int = TTL) -> None:
        self.question = encodeName(name.lower()) + QUESTION_TAIL.pack(TYPE_A, CLASS_IN)
        self.answer = ANSWER_HEAD.pack(0xC000 | HEADER.size, TYPE_A, CLASS_IN, ttl, 4) + socket.inet_aton(address)

    def reply(self, data: bytes) -> Optional[bytes]:
        """
        The reply to the query C{data}, or None when it is not one to answer
        (too short, a response, not a standard query, not one question).
        """
        if len(data) < HEADER.size:
            return None
        ident, flags, qdcount, _, _, _ = HEADER.unpack_from(data)
        if flags & (FLAG_QR | OPCODE_MASK) or qdcount != 1:
            return None
        end = questionEnd(data)
        if end is None:
            return None
        question = data[HEADER.size:end]
        flags = FLAG_QR | FLAG_AA | (flags & FLAG_RD)
        if question == self.question or question.lower() == self.question:
            # The question is echoed as sent (DNS names keep their case).
            return HEADER.pack(ident, flags, 1, 1, 0, 0) + question + self.answer
        return HEADER.pack(ident, flags & ~FLAG_AA | RCODE_REFUSED, 1, 0, 0, 0) + question


class CeilingProtocol(DatagramProtocol):
    """
    Answers every datagram from L{TemplateAnswers}, at once, or drops it.

    As the appliance's L{DNSDatagramProtocol<gslb_twisted.dns.protocol.DNSDatagramProtocol>}
    does, replies go out through the socket's own C{sendto} (the address
    came from C{recvfrom}: C{Port.write}'s checks of it are pure cost); a
    reply the kernel refuses (full send buffer) is lost, as on a router.
    """

    def __init__(self, answers: Optional[TemplateAnswers] = None) -> None:
        self.answers = answers or TemplateAnswers()
        self.sendto = None

    def startProtocol(self) -> None:
        self.sendto = getattr(getattr(self.transport, "socket", None), "sendto", None)

    def datagramReceived(self, data: bytes, addr: Tuple[str, int]) -> None:
        reply = self.answers.reply(data)
        if reply is None:
            return
        if self.sendto is None:
            self.transport.write(reply, addr)
            return
        try:
            self.sendto(reply, addr)
        except OSError:
            pass


def listen(reactor, port: int, interface: str):
    """
    Listen on C{interface}:C{port} (UDP) with a L{CeilingProtocol}.

    @return: the listening port.
    """
    return reactor.listenUDP(port, CeilingProtocol(), interface=interface)


class CeilingServerMain:
    """
    The process: parse the command line, listen, run the reactor.
    """

    log = Logger()

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def run(self, argv: Sequence[str]) -> int:
        return runResponder(
            self.reactor, argv, "python -m benchmarks.ceiling_server",
            "template-answering UDP DNS responder: the ceiling of benchmarks.perf", 5397, listen,
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    from twisted.internet import reactor

    return CeilingServerMain(reactor).run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
