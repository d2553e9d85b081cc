"""
A steady DNS load that judges every answer: the chaos suite's client.

L{LoadGenerator} sends queries at a fixed rate (queries per second, a small
batch every tick) over UDP from one socket per source address (many
loopback addresses, e.g. C{127.0.1.1} ... C{127.0.1.16}, as many resolvers
would), tracks each query by its socket and id, and classifies it:

  - answered: a reply came within C{timeout}, with its rcode, addresses and
    latency;
  - lost: none came within C{timeout} (a reply after that is counted
    C{late}, and the query stays lost);
  - wrong: answered, but the caller's classifier (C{classify(answer)}, a
    reason or None) says the answer must not be given, e.g. an address of a
    site known DOWN at that time (L{DownWindows}).

Memory stays bounded whatever the run's length: totals, a latency
histogram, per-bucket counts (by send time, the last C{maxBuckets}
buckets), and the first C{sampleSize} wrong answers.

The decisions (ids in flight, pacing, buckets, the DOWN windows, DNS wire
encoding and parsing) are plain objects and functions; L{_QueryClient} only
hands datagrams over.
"""

from __future__ import annotations

import bisect
import errno
import ipaddress
import math
import socket
import struct
from collections import OrderedDict, deque
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from twisted.internet import defer, task
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

A = 1
AAAA = 28
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPES = {"A": A, "AAAA": AAAA}

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_ID = struct.Struct("!H")

ID_SPACE = 65536
# Ids of queries declared lost stay out of use this long (per socket), so a
# late answer is never taken for the answer to a newer query.
QUARANTINE = 8192


# ---------------------------------------------------------------------------
# DNS on the wire (only what a load generator needs).


def encodeName(name: str) -> bytes:
    """C{www.test.gslb} -> its wire form (lower case, ending with the root)."""
    labels = [label for label in name.rstrip(".").lower().split(".") if label]
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label {label!r} in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


OPTION_CLIENT_SUBNET = 8
OPT = 41
EDNS_PAYLOAD = 1232


def ecsOption(network: str) -> bytes:
    """The EDNS Client Subnet option (RFC 7871: code, length, data) for C{network}, scope 0."""
    net = ipaddress.ip_network(network, strict=True)
    prefix = net.prefixlen
    data = struct.pack("!HBB", 1 if net.version == 4 else 2, prefix, 0) + net.network_address.packed[: (prefix + 7) // 8]
    return struct.pack("!HH", OPTION_CLIENT_SUBNET, len(data)) + data


def optRecord(options: bytes = b"") -> bytes:
    """An OPT pseudo-record: root name, type 41, class = UDP payload, TTL 0 (version 0, no DO), the options."""
    return b"\x00" + struct.pack("!HHIH", OPT, EDNS_PAYLOAD, 0, len(options)) + options


def encodeQuestion(name: str, rdtype: int = A) -> bytes:
    """The question section of a query (what a reply must echo): class IN."""
    return encodeName(name) + struct.pack("!HH", rdtype, 1)


def encodeQuery(name: str, rdtype: int = A, qid: int = 0, ecs: Optional[str] = None) -> bytes:
    """
    One question, class IN, no recursion wanted (an authoritative server is
    asked); with C{ecs} (a network) an OPT record carrying it as EDNS Client
    Subnet, as resolvers that send ECS do.
    """
    additional = optRecord(ecsOption(ecs)) if ecs else b""
    return _HEADER.pack(qid, 0, 1, 0, 0, 1 if additional else 0) + encodeQuestion(name, rdtype) + additional


def _skipName(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += length + 1


class Response(NamedTuple):
    qid: int
    rcode: int
    truncated: bool
    question: bytes
    addresses: tuple


def parseResponse(data: bytes) -> Response:
    """
    A reply's id, rcode, TC bit, question section and the A/AAAA addresses of
    its answer section.

    @raise ValueError: not a well-formed reply.
    """
    try:
        qid, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
        if not flags & 0x8000:
            raise ValueError("not a reply (QR clear)")
        offset = 12
        for _ in range(qdcount):
            offset = _skipName(data, offset) + 4
        question = data[12:offset]
        addresses = []
        for _ in range(ancount):
            offset = _skipName(data, offset)
            rtype, _, _, length = _RR.unpack_from(data, offset)
            offset += 10
            if offset + length > len(data):
                raise ValueError("truncated record")
            if rtype == A and length == 4:
                addresses.append(socket.inet_ntop(socket.AF_INET, data[offset:offset + 4]))
            elif rtype == AAAA and length == 16:
                addresses.append(socket.inet_ntop(socket.AF_INET6, data[offset:offset + 16]))
            offset += length
        if offset > len(data):
            raise ValueError("truncated message")
    except (struct.error, IndexError) as e:
        raise ValueError(f"malformed reply: {e}") from None
    return Response(qid, flags & 0xF, bool(flags & 0x0200), question, tuple(addresses))


# ---------------------------------------------------------------------------
# Plain parts.


class Answer(NamedTuple):
    """An answered query, as a classifier sees it (times on the generator's clock)."""

    name: str
    rdtype: int
    rcode: int
    addresses: tuple
    sentAt: float
    receivedAt: float
    source: str

    @property
    def latency(self) -> float:
        return self.receivedAt - self.sentAt

    @property
    def rcodeText(self) -> str:
        return RCODES.get(self.rcode, str(self.rcode))


class Flight:
    """
    The queries in flight on one socket, by id, oldest first.

    Ids are handed out in turn, skipping those in flight and those of
    queries recently declared lost (a late answer must not match a newer
    query).
    """

    def __init__(self, start: int = 0) -> None:
        self._pending: dict[int, tuple[float, int]] = {}
        self._quarantine: OrderedDict[int, None] = OrderedDict()
        self._next = start % ID_SPACE

    def __len__(self) -> int:
        return len(self._pending)

    def allocate(self, sentAt: float, query: int) -> Optional[int]:
        """An id for query number C{query} sent at C{sentAt} (None: every id is taken)."""
        if len(self._pending) + len(self._quarantine) >= ID_SPACE:
            if not self._quarantine:
                return None
            self._quarantine.popitem(last=False)
        qid = self._next
        while qid in self._pending or qid in self._quarantine:
            qid = (qid + 1) % ID_SPACE
        self._next = (qid + 1) % ID_SPACE
        self._pending[qid] = (sentAt, query)
        return qid

    def settle(self, qid: int) -> Optional[tuple[float, int]]:
        """The answer to C{qid} came: (sent at, query), or None if it is not in flight."""
        return self._pending.pop(qid, None)

    def release(self, qid: int) -> None:
        """The query was never sent: its id is free again."""
        self._pending.pop(qid, None)

    def quarantine(self, qid: int) -> None:
        """Keep C{qid} out of use for a while (its query was given up)."""
        self._pending.pop(qid, None)
        self._quarantine[qid] = None
        while len(self._quarantine) > QUARANTINE:
            self._quarantine.popitem(last=False)

    def wasLost(self, qid: int) -> bool:
        """Was C{qid} declared lost recently (so this answer is late)?  Forgets it."""
        if qid in self._quarantine:
            del self._quarantine[qid]
            return True
        return False

    def expire(self, before: float) -> list[tuple[float, int]]:
        """The queries sent before C{before}, now lost: (sent at, query), oldest first."""
        lost = []
        for qid, (sentAt, query) in self._pending.items():
            if sentAt >= before:
                break
            lost.append((qid, sentAt, query))
        for qid, sentAt, query in lost:
            del self._pending[qid]
            self._quarantine[qid] = None
        while len(self._quarantine) > QUARANTINE:
            self._quarantine.popitem(last=False)
        return [(sentAt, query) for _, sentAt, query in lost]

    def clear(self) -> list[tuple[float, int]]:
        """Everything in flight, as lost."""
        return self.expire(math.inf)


class Pacer:
    """
    How many queries are due at each tick for a steady C{rate} per second.
    A tick that comes late catches up at most C{maxCatchUp} seconds' worth;
    the rest is skipped (and counted), so a stalled generator does not burst.
    """

    def __init__(self, rate: float, maxCatchUp: float = 0.1) -> None:
        self.rate = rate
        self.maxCatchUp = maxCatchUp
        self.skipped = 0
        self._credit = 0.0
        self._last: Optional[float] = None

    def due(self, now: float) -> int:
        if self._last is None:
            self._last = now
            return 0
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._credit += self.rate * elapsed
        cap = max(1.0, self.rate * self.maxCatchUp)
        if self._credit > cap:
            self.skipped += int(self._credit - cap)
            self._credit = cap
        # (A hair of slack: rate x elapsed in floating point may fall just
        # short of a whole query.)
        count = int(self._credit + 1e-9)
        self._credit -= count
        return count


class LatencyHistogram:
    """Latencies in geometric bins (12 per decade, 10 us to 10 s), plus exact min, max and mean."""

    PER_DECADE = 12
    LOW = 1e-5
    BINS = 6 * PER_DECADE + 1  # the last bin holds everything at or over 10 s

    def __init__(self) -> None:
        self.counts = [0] * self.BINS
        self.count = 0
        self.total = 0.0
        self.min: Optional[float] = None
        self.max: Optional[float] = None

    def add(self, seconds: float) -> None:
        index = 0 if seconds <= self.LOW else min(self.BINS - 1, int(math.log10(seconds / self.LOW) * self.PER_DECADE))
        self.counts[index] += 1
        self.count += 1
        self.total += seconds
        if self.min is None or seconds < self.min:
            self.min = seconds
        if self.max is None or seconds > self.max:
            self.max = seconds

    def upperEdge(self, index: int) -> float:
        return self.LOW * 10 ** ((index + 1) / self.PER_DECADE)

    def percentile(self, p: float) -> Optional[float]:
        """The upper edge of the bin holding the C{p}th percentile (never above the max)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * p / 100.0))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.upperEdge(index), self.max)
        return self.max

    def summary(self) -> dict:
        """In milliseconds."""
        def ms(value):
            return None if value is None else round(value * 1000, 3)

        return {
            "n": self.count,
            "mean": ms(self.total / self.count) if self.count else None,
            "min": ms(self.min),
            "p50": ms(self.percentile(50)),
            "p90": ms(self.percentile(90)),
            "p99": ms(self.percentile(99)),
            "max": ms(self.max),
        }


class Bucket:
    """What happened to the queries sent in one time bucket."""

    __slots__ = ("start", "sent", "answered", "lost", "wrong", "failed", "empty", "latencySum", "latencyMax")

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent = self.answered = self.lost = self.wrong = self.failed = self.empty = 0
        self.latencySum = 0.0
        self.latencyMax = 0.0

    def asDict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "sent": self.sent,
            "answered": self.answered,
            "lost": self.lost,
            "wrong": self.wrong,
            "failed": self.failed,
            "empty": self.empty,
            "latency_mean_ms": round(1000 * self.latencySum / self.answered, 3) if self.answered else None,
            "latency_max_ms": round(1000 * self.latencyMax, 3) if self.answered else None,
        }


class Timeline:
    """
    Buckets of C{width} seconds from C{origin}, by send time; only the last
    C{maxBuckets} are kept.
    """

    def __init__(self, origin: float, width: float, maxBuckets: int) -> None:
        if width <= 0 or maxBuckets < 1:
            raise ValueError("a timeline needs a positive width and at least one bucket")
        self.origin = origin
        self.width = width
        self.buckets: deque[Bucket] = deque(maxlen=maxBuckets)
        self._first = 0  # index of buckets[0]

    def at(self, when: float) -> Optional[Bucket]:
        """The bucket of time C{when} (None: before the oldest kept)."""
        index = int((when - self.origin) // self.width)
        if not self.buckets:
            self._first = index
        last = self._first + len(self.buckets) - 1
        if index > last:
            missing = index - last
            if missing > self.buckets.maxlen:
                self.buckets.clear()
                self._first = index
                missing = 1
            for _ in range(missing):
                newIndex = self._first + len(self.buckets)
                if len(self.buckets) == self.buckets.maxlen:
                    self._first += 1
                self.buckets.append(Bucket(self.origin + newIndex * self.width))
        if index < self._first:
            return None
        return self.buckets[index - self._first]

    def rows(self, relativeTo: Optional[float] = None) -> list[dict]:
        base = self.origin if relativeTo is None else relativeTo
        out = []
        for bucket in self.buckets:
            row = bucket.asDict()
            row["start"] = round(bucket.start - base, 3)
            out.append(row)
        return out


class Tally:
    """
    The counts of a whole run (and the first wrong answers).

    @ivar addresses: answers per address (at most C{maxAddresses} distinct
        ones; the others are counted under C{"other"}).
    """

    COUNTS = ("sent", "answered", "lost", "wrong", "late", "failed", "empty", "truncated",
              "unexpected", "mismatched", "malformed", "unsent", "skipped")

    def __init__(self, sampleSize: int = 20, maxAddresses: int = 256) -> None:
        for name in self.COUNTS:
            setattr(self, name, 0)
        self.sampleSize = sampleSize
        self.maxAddresses = maxAddresses
        self.rcodes: dict[str, int] = {}
        self.addresses: dict[str, int] = {}
        self.unsentBy: dict[str, int] = {}
        self.latency = LatencyHistogram()
        self.wrongSample: list[dict] = []
        self.firstLostSent: Optional[float] = None
        self.lastLostSent: Optional[float] = None
        self.firstWrongSent: Optional[float] = None
        self.lastWrongSent: Optional[float] = None

    def counts(self) -> dict[str, int]:
        """The plain counts now (subtract two of these for an interval)."""
        return {name: getattr(self, name) for name in self.COUNTS}

    def countAddress(self, address: str) -> None:
        if address in self.addresses or len(self.addresses) < self.maxAddresses:
            self.addresses[address] = self.addresses.get(address, 0) + 1
        else:
            self.addresses["other"] = self.addresses.get("other", 0) + 1

    def noteLost(self, sentAt: float) -> None:
        self.lost += 1
        if self.firstLostSent is None:
            self.firstLostSent = sentAt
        if self.lastLostSent is None or sentAt > self.lastLostSent:
            self.lastLostSent = sentAt

    def noteWrong(self, answer: Answer, reason: str, origin: float) -> None:
        self.wrong += 1
        if self.firstWrongSent is None:
            self.firstWrongSent = answer.sentAt
        self.lastWrongSent = max(answer.sentAt, self.lastWrongSent or answer.sentAt)
        if len(self.wrongSample) < self.sampleSize:
            self.wrongSample.append({
                "name": answer.name,
                "type": answer.rdtype,
                "rcode": answer.rcodeText,
                "addresses": list(answer.addresses),
                "sent": round(answer.sentAt - origin, 4),
                "latency_ms": round(answer.latency * 1000, 3),
                "source": answer.source,
                "reason": reason,
            })


class DownWindows:
    """
    When each site was known DOWN, and the classifier built on it: an
    answer is wrong when it names an address of a site known DOWN for the
    whole time its query was out (from before it was sent until after the
    answer came), so a site coming back meanwhile never makes it wrong.

    The caller opens a window (L{down}) once it knows the site is DOWN
    everywhere (e.g. every core's table says so), and closes it (L{up}) as
    it lets the site come back (before resuming a frozen process, say).

    @param siteOf: address -> site name.
    """

    def __init__(self, siteOf: Mapping[str, str], maxWindows: int = 1024) -> None:
        self.siteOf = dict(siteOf)
        self.maxWindows = maxWindows
        self.windows: dict[str, list[list[Optional[float]]]] = {}

    def down(self, site: str, at: float) -> None:
        """C{site} is known DOWN from C{at} on (no-op while a window is open)."""
        windows = self.windows.setdefault(site, [])
        if windows and windows[-1][1] is None:
            return
        windows.append([at, None])
        del windows[:-self.maxWindows]

    def up(self, site: str, at: float) -> None:
        """From C{at} on, C{site} may be UP again."""
        windows = self.windows.get(site)
        if windows and windows[-1][1] is None:
            windows[-1][1] = max(at, windows[-1][0])

    def isDown(self, site: str, start: float, end: float) -> bool:
        """Was C{site} known DOWN for all of [C{start}, C{end}]?"""
        windows = self.windows.get(site)
        if not windows:
            return False
        index = bisect.bisect_right([w[0] for w in windows], start) - 1
        if index < 0:
            return False
        opened, closed = windows[index]
        return closed is None or end <= closed

    def __call__(self, answer: Answer) -> Optional[str]:
        for address in answer.addresses:
            site = self.siteOf.get(address)
            if site is not None and self.isDown(site, answer.sentAt, answer.receivedAt):
                return f"{address} is an address of site {site}, known DOWN"
        return None


def udpDrops(text: str, ports) -> Optional[int]:
    """
    From C{/proc/net/udp} (or C{udp6}) text: the datagrams the kernel
    dropped at the sockets bound to any of C{ports} (a full receive
    buffer), summed; None when no socket is bound there.
    """
    ports = {ports} if isinstance(ports, int) else set(ports)
    total = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13 or ":" not in fields[1]:
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) not in ports:
            continue
        total = (total or 0) + int(fields[-1])
    return total


def readUDPDrops(ports) -> Optional[int]:
    """L{udpDrops} of this machine (Linux), IPv4 and IPv6; None without /proc or socket."""
    total = None
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                drops = udpDrops(f.read(), ports)
        except OSError:
            continue
        if drops is not None:
            total = (total or 0) + drops
    return total


def loopbackSources(count: int, network: str = "127.0.1") -> list[str]:
    """C{count} source addresses C{127.0.1.1}, C{127.0.1.2}, ... (at most 254)."""
    if not 1 <= count <= 254:
        raise ValueError(f"between 1 and 254 source addresses, not {count}")
    return [f"{network}.{index}" for index in range(1, count + 1)]


def normaliseQueries(queries: Iterable) -> list[tuple[str, int]]:
    """C{["www.test.gslb", ("www.test.gslb", "AAAA")]} -> [(name, rdtype)]."""
    out = []
    for query in queries:
        name, rdtype = (query, A) if isinstance(query, str) else query
        if isinstance(rdtype, str):
            if rdtype.upper() not in TYPES:
                raise ValueError(f"query type {rdtype!r}: expected one of {', '.join(TYPES)}")
            rdtype = TYPES[rdtype.upper()]
        out.append((name, int(rdtype)))
    if not out:
        raise ValueError("at least one query")
    return out


# ---------------------------------------------------------------------------
# Twisted.


class _QueryClient(DatagramProtocol):
    """One socket (one source address): replies go to the generator."""

    def __init__(self, generator: "LoadGenerator", source: str, index: int) -> None:
        self.generator = generator
        self.source = source
        self.flight = Flight(start=index * 4099)
        self._send: Optional[Callable[[bytes], object]] = None

    def startProtocol(self) -> None:
        host, port = self.generator.target
        self.transport.connect(host, port)
        # The socket's own send: Port.write checks its argument on every call.
        sock = getattr(self.transport, "socket", None)
        self._send = sock.send if sock is not None else self.transport.write
        if sock is not None and self.generator.receiveBuffer:
            # Replies that arrive while this process is busy sending must
            # wait here, not be dropped and blamed on the server (the
            # kernel caps the size at net.core.rmem_max).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.generator.receiveBuffer)

    @property
    def port(self) -> Optional[int]:
        host = self.transport.getHost() if hasattr(self.transport, "getHost") else None
        return getattr(host, "port", None)

    def send(self, data: bytes) -> Optional[str]:
        """Send one datagram: None, or why it was not sent."""
        try:
            self._send(data)
        except BlockingIOError:
            return "buffer full"
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
        return None

    def datagramReceived(self, data: bytes, address) -> None:
        self.generator.received(self, data)

    def connectionRefused(self) -> None:
        self.generator.refusedNoticed += 1


class LoadGenerator:
    """
    Steady DNS load on C{target} from C{sources}, every answer judged.

    @param reactor: provides C{listenUDP} (and is the clock unless C{clock}).
    @param target: (host, port) of the DNS server.
    @param queries: names (type A) or (name, type) pairs, asked in turn.
    @param rate: queries per second (0: only what L{burst} sends).
    @param sources: one UDP socket per source address.
    @param timeout: seconds after which a query without answer is lost.
    @param classify: C{classify(answer) -> reason or None}: a reason makes
        the answer wrong.
    @param tick: seconds between two batches (default: batches of about 25
        queries, ticks between 2 and 10 ms: a burst of a few hundred
        datagrams at once would overflow a server's receive buffer, and the
        load would measure that instead).
    @param bucketWidth: seconds per bucket of the timeline.
    @param receiveBuffer: SO_RCVBUF of each socket, bytes (0: the system's).
    @param ecs: a network every query carries as EDNS Client Subnet, or None.
    @param onLost: called with the send time of every query given up.

    @ivar totals: the L{Tally} of the run.
    @ivar timeline: the L{Timeline} of buckets, by send time.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        target: tuple[str, int],
        queries: Sequence,
        rate: float,
        sources: Sequence[str] = ("127.0.0.1",),
        timeout: float = 1.0,
        classify: Optional[Callable[[Answer], Optional[str]]] = None,
        tick: Optional[float] = None,
        bucketWidth: float = 1.0,
        maxBuckets: int = 3600,
        sampleSize: int = 20,
        receiveBuffer: int = 4 * 1024 * 1024,
        clock=None,
        ecs: Optional[str] = None,
        onLost: Optional[Callable[[float], None]] = None,
    ) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"a rate is a number of queries per second >= 0, not {rate!r}")
        if not sources:
            raise ValueError("at least one source address")
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.target = target
        self.queries = normaliseQueries(queries)
        self.ecs = ecs
        self.onLost = onLost
        self._templates = [encodeQuery(name, rdtype, ecs=ecs) for name, rdtype in self.queries]
        self._questions = [encodeQuestion(name, rdtype) for name, rdtype in self.queries]
        self._tails = [template[2:] for template in self._templates]
        self.sources = list(sources)
        self.timeout = timeout
        self.classify = classify
        if tick is None:
            tick = 0.01 if rate <= 0 else min(0.01, max(0.002, 25.0 / rate))
        self.tickInterval = tick
        # A late tick catches up at most two ticks' worth (or 0.1 s).
        self.pacer = Pacer(rate, maxCatchUp=max(0.1, 2 * tick))
        self.totals = Tally(sampleSize)
        self.bucketWidth = bucketWidth
        self.maxBuckets = maxBuckets
        self.timeline: Optional[Timeline] = None
        self.clients: list[_QueryClient] = []
        self.ports: list = []
        self.startedAt: Optional[float] = None
        self.stoppedAt: Optional[float] = None
        self.refusedNoticed = 0
        self.receiveBuffer = receiveBuffer
        self.droppedHere: Optional[int] = None
        self._sending = False
        self._next = 0  # next query number
        self._turn = 0  # next client
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._drained: Optional[defer.Deferred] = None

    @property
    def rate(self) -> float:
        return self.pacer.rate

    def setRate(self, rate: float) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"a rate is a number of queries per second >= 0, not {rate!r}")
        self.pacer.rate = rate

    @property
    def inFlight(self) -> int:
        return sum(len(client.flight) for client in self.clients)

    # --- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind a socket per source address and start sending."""
        if self.startedAt is not None:
            raise RuntimeError("a load generator starts once")
        for index, source in enumerate(self.sources):
            client = _QueryClient(self, source, index)
            self.ports.append(self.reactor.listenUDP(0, client, interface=source))
            self.clients.append(client)
        now = self.clock.seconds()
        self.startedAt = now
        self.timeline = Timeline(now, self.bucketWidth, self.maxBuckets)
        self._sending = True
        self._loop.start(self.tickInterval, now=True)

    def tick(self) -> None:
        now = self.clock.seconds()
        self.timeline.at(now)  # idle buckets too: the timeline has no holes
        self._expire(now)
        if self._sending:
            self._sendMany(self.pacer.due(now), now)
            self.totals.skipped = self.pacer.skipped
        if self._drained is not None and not self.inFlight:
            self._finish()

    def burst(self, count: int) -> int:
        """Send C{count} queries at once (spread over the sockets); returns how many left."""
        if self.startedAt is None:
            raise RuntimeError("start the load generator first")
        return self._sendMany(count, self.clock.seconds())

    def stop(self) -> defer.Deferred:
        """
        Stop sending; fires (with L{report}) once every query in flight is
        answered or lost, and the sockets are closed.
        """
        if self._drained is not None:
            return self._drained
        if self.stoppedAt is not None:
            return defer.succeed(self.report())
        self._sending = False
        self._drained = defer.Deferred()
        d = self._drained
        if not self._loop.running:
            self._finish()
        elif not self.inFlight:
            self._finish()
        return d

    def _finish(self) -> None:
        if self._loop.running:
            self._loop.stop()
        now = self.clock.seconds()
        for client in self.clients:
            for sentAt, _ in client.flight.clear():
                self._lost(sentAt)
        self.stoppedAt = now
        self.droppedHere = self._droppedHere()
        closing = [defer.maybeDeferred(port.stopListening) for port in self.ports]
        drained, self._drained = self._drained, None
        defer.DeferredList(closing).addCallback(lambda _: drained.callback(self.report()))

    # --- queries -------------------------------------------------------------------------

    def _sendMany(self, count: int, now: float) -> int:
        clients = self.clients
        if not clients or count <= 0:
            return 0
        sent = 0
        totals = self.totals
        bucket = self.timeline.at(now)
        templates = len(self._templates)
        tails = self._tails
        for _ in range(count):
            client = clients[self._turn]
            self._turn = (self._turn + 1) % len(clients)
            query = self._next
            self._next = (query + 1) % templates
            qid = client.flight.allocate(now, query)
            if qid is None:
                self._unsent("no free id")
                continue
            why = client.send(_ID.pack(qid) + tails[query])
            if why is not None:
                client.flight.release(qid)
                self._unsent(why)
                continue
            sent += 1
        totals.sent += sent
        if bucket is not None:
            bucket.sent += sent
        return sent

    def _unsent(self, why: str) -> None:
        self.totals.unsent += 1
        self.totals.unsentBy[why] = self.totals.unsentBy.get(why, 0) + 1

    def _expire(self, now: float) -> None:
        before = now - self.timeout
        for client in self.clients:
            for sentAt, _ in client.flight.expire(before):
                self._lost(sentAt)

    def _lost(self, sentAt: float) -> None:
        self.totals.noteLost(sentAt)
        bucket = self.timeline.at(sentAt)
        if bucket is not None:
            bucket.lost += 1
        if self.onLost is not None:
            self.onLost(sentAt)

    def received(self, client: _QueryClient, data: bytes) -> None:
        now = self.clock.seconds()
        totals = self.totals
        try:
            response = parseResponse(data)
        except ValueError:
            totals.malformed += 1
            return
        held = client.flight.settle(response.qid)
        if held is None:
            if client.flight.wasLost(response.qid):
                totals.late += 1
            else:
                totals.unexpected += 1
            return
        sentAt, query = held
        if response.question != self._questions[query] and response.question.lower() != self._questions[query]:
            # A reply to our id about another question: a broken server.
            # The query got no answer.
            client.flight.quarantine(response.qid)
            totals.mismatched += 1
            self._lost(sentAt)
            return
        name, rdtype = self.queries[query]
        answer = Answer(name, rdtype, response.rcode, response.addresses, sentAt, now, client.source)
        latency = now - sentAt
        totals.answered += 1
        totals.latency.add(latency)
        rcode = answer.rcodeText
        totals.rcodes[rcode] = totals.rcodes.get(rcode, 0) + 1
        for address in response.addresses:
            totals.countAddress(address)
        if response.truncated:
            totals.truncated += 1
        bucket = self.timeline.at(sentAt)
        failed = response.rcode != 0
        empty = not failed and not response.addresses
        if failed:
            totals.failed += 1
        elif empty:
            totals.empty += 1
        reason = self.classify(answer) if self.classify is not None else None
        if reason is not None:
            totals.noteWrong(answer, reason, self.startedAt)
        if bucket is not None:
            bucket.answered += 1
            bucket.latencySum += latency
            if latency > bucket.latencyMax:
                bucket.latencyMax = latency
            if failed:
                bucket.failed += 1
            elif empty:
                bucket.empty += 1
            if reason is not None:
                bucket.wrong += 1

    # --- results -------------------------------------------------------------------------

    def _droppedHere(self) -> Optional[int]:
        """Replies the kernel dropped at our own sockets (this process was too busy to read)."""
        ports = [client.port for client in self.clients if client.port]
        return readUDPDrops(ports) if ports else None

    def report(self) -> dict:
        """The run as JSON-able data (times relative to the start)."""
        totals = self.totals
        origin = self.startedAt if self.startedAt is not None else 0.0
        end = self.stoppedAt if self.stoppedAt is not None else self.clock.seconds()

        def relative(value):
            return None if value is None else round(value - origin, 4)

        return {
            "target": f"{self.target[0]}:{self.target[1]}",
            "sources": len(self.sources),
            "rate": self.rate,
            "timeout": self.timeout,
            "seconds": round(end - origin, 3),
            "counts": totals.counts(),
            "rcodes": dict(sorted(totals.rcodes.items())),
            "addresses": dict(sorted(totals.addresses.items())),
            "unsent_by": dict(totals.unsentBy),
            "refused_noticed": self.refusedNoticed,
            "dropped_here": self.droppedHere if self.stoppedAt is not None else self._droppedHere(),
            "latency_ms": totals.latency.summary(),
            "first_lost_sent": relative(totals.firstLostSent),
            "last_lost_sent": relative(totals.lastLostSent),
            "first_wrong_sent": relative(totals.firstWrongSent),
            "last_wrong_sent": relative(totals.lastWrongSent),
            "wrong_sample": list(totals.wrongSample),
            "bucket_seconds": self.bucketWidth,
            "buckets": self.timeline.rows() if self.timeline is not None else [],
        }
