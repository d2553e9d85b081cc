"""
DNS wire format by hand, with C{struct} and slicing: the fast path for the
common query, the strict scanner that every other query goes through, and
EDNS Client Subnet (RFC 7871) option bytes.

The fast path (L{answerFast}) answers a plain A/AAAA query for a vserver
domain from prebuilt answer-section bytes and declines (returns C{None})
anything else, so that the slow path decides.  The scanner (L{scanMessage})
is hand-written rather than dnslib's parser because dnslib accepts trailing
bytes, over-long names and truncated option lists, and rejects labels that
are not UTF-8, all of which RFC 1035/6891 see differently.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Callable, Mapping, Optional, Sequence

QTYPE_A = 1
QTYPE_NS = 2
QTYPE_SOA = 6
QTYPE_AAAA = 28
QTYPE_OPT = 41
QTYPE_IXFR = 251
QTYPE_AXFR = 252
QTYPE_ANY = 255
CLASS_IN = 1

OPTION_CLIENT_SUBNET = 8

# Our EDNS UDP payload size: the DNS flag day 2020 value, small enough never
# to need IP fragmentation.
SERVER_PAYLOAD = 1232
# The limit for a UDP reply without EDNS (RFC 1035), and the floor for a
# client's advertised payload size (RFC 6891 6.2.5).
CLASSIC_PAYLOAD = 512
TCP_LIMIT = 65535

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800
# What a reply copies from its query: RD and CD (RFC 1035, RFC 6840 5.9).
COPIED_FLAGS = FLAG_RD | FLAG_CD
EDNS_DO = 0x8000

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
_QUESTION_FIXED = struct.Struct("!HH")
_OPTION_HEAD = struct.Struct("!HH")
# A plain OPT record: root name, TYPE, CLASS (payload), extended RCODE,
# VERSION, flags, RDLENGTH.
_PLAIN_OPT = struct.Struct("!BHHBBHH")
_PLAIN_OPT_SIZE = _PLAIN_OPT.size
# The same, read in fewer fields: ANCOUNT and NSCOUNT as one (both must be
# 0), the OPT TTL whole (VERSION is its second byte, DO its bit 15).
_FAST_HEADER = struct.Struct("!HHHIH")
_FAST_OPT = struct.Struct("!BHHIH")
_SUBNET_HEAD = struct.Struct("!HBB")

MAX_NAME = 255
MAX_LABEL = 63

# Our OPT record in a fast-path reply: payload 1232, version 0, DO copied.
_REPLY_OPT = _PLAIN_OPT.pack(0, QTYPE_OPT, SERVER_PAYLOAD, 0, 0, 0, 0)
_REPLY_OPT_DO = _PLAIN_OPT.pack(0, QTYPE_OPT, SERVER_PAYLOAD, 0, 0, EDNS_DO, 0)


def wireName(name: str) -> bytes:
    """
    The lower-cased, uncompressed wire form of a dotted name
    (C{"www.demo.gslb"} or C{"www.demo.gslb."}; C{""} or C{"."} is the root).
    """
    labels = [label for label in name.lower().rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\x00"


def wireLabels(name: str) -> tuple[bytes, ...]:
    """The labels of a dotted name, lower-cased, as bytes."""
    return tuple(label.encode("ascii") for label in name.lower().rstrip(".").split(".") if label)


def addressRdata(address: str) -> tuple[int, bytes]:
    """The record type (A or AAAA) and RDATA for an IPv4 or IPv6 address."""
    parsed = ipaddress.ip_address(address)
    return (QTYPE_A if parsed.version == 4 else QTYPE_AAAA), parsed.packed


def answerSection(rdtype: int, ttl: int, addresses: Sequence[str]) -> bytes:
    """
    Answer records for the question's name, as they follow the question in a
    reply: owner a compression pointer to the question name (offset 12),
    class IN, the given TTL, one record per address.
    """
    records = []
    for address in addresses:
        kind, rdata = addressRdata(address)
        if kind != rdtype:
            raise ValueError(f"{address!r} is not an address for record type {rdtype}")
        records.append(b"\xc0\x0c" + _RR_FIXED.pack(rdtype, CLASS_IN, ttl, len(rdata)) + rdata)
    return b"".join(records)


# ---------------------------------------------------------------------------
# The fast path.


class FastPlan:
    """
    What the fast path needs to answer one (name, type) question: the
    prebuilt answer sections, one per answer the vserver can give, and the
    function choosing which one to give now.

    @ivar choose: C{choose(rdtype, clientAddress) -> int}, an index into
        C{templates}.
    @ivar counts: the number of records in each template.
    @ivar longest: the length of the longest template, to decide before
        choosing whether a reply can fit.
    """

    __slots__ = ("choose", "rdtype", "templates", "counts", "longest", "hits", "tailored")

    def __init__(
        self,
        choose: Callable[[int, str], int],
        rdtype: int,
        templates: Sequence[bytes],
        counts: Sequence[int],
        longest: Optional[int] = None,
        hits: Optional[list] = None,
        tailored: bool = False,
    ) -> None:
        """
        @param templates: may be a list that grows as new answers are first
            chosen (see L{gslb_twisted.dns.authority.AnswerBook}); then
            C{longest} must bound every template it will hold.
        """
        self.choose = choose
        self.rdtype = rdtype
        self.templates = templates
        self.counts = counts
        self.longest = max(len(t) for t in templates) if longest is None else longest
        # How often each template was sent (statistics); grows with templates.
        self.hits = [0] * len(templates) if hits is None else hits
        # Whether the answer depends on the client: an echoed client subnet
        # then has scope = its source prefix (RFC 7871 7.2.1), else 0.
        self.tailored = tailored


def fastKey(name: str, rdtype: int) -> bytes:
    """
    The fast-path table key for a question: the lower-cased wire name, TYPE
    and CLASS IN, exactly the question bytes of a query for it (modulo case).
    """
    return wireName(name) + _QUESTION_FIXED.pack(rdtype, CLASS_IN)


def answerFast(
    table: Mapping[bytes, FastPlan], data: bytes, clientAddress: str, tcp: bool
) -> Optional[bytes]:
    """
    The reply to a plain A/AAAA query for a name in C{table}, or C{None} for
    anything else (which then goes to the slow path).

    A query is plain when: QR=0, opcode QUERY, one question, no answer or
    authority records, and either no additional record or exactly one OPT
    with the root name, version 0 and no options.  The question bytes are
    used as the table key after lower-casing, so a hit also proves the
    question well formed; they are echoed as sent, case and all.  Declines
    a reply that would not fit the client's limit, so that the slow path
    truncates it.
    """
    size = len(data)
    if size < 17:
        return None
    ident, flags, qdcount, otherRecords, arcount = _FAST_HEADER.unpack_from(data)
    if flags & (FLAG_QR | OPCODE_MASK) or qdcount != 1 or otherRecords:
        return None
    if arcount == 0:
        question = data[12:]
        opt = b""
        limit = CLASSIC_PAYLOAD
    elif arcount == 1 and size >= 28:
        root, rtype, payload, ttl, rdlength = _FAST_OPT.unpack_from(data, size - _PLAIN_OPT_SIZE)
        if root or rtype != QTYPE_OPT or ttl & 0x00FF0000 or rdlength:
            return _answerWithSubnet(table, data, clientAddress, tcp, ident, flags)
        question = data[12:-_PLAIN_OPT_SIZE]
        opt = _REPLY_OPT_DO if ttl & EDNS_DO else _REPLY_OPT
        if payload >= SERVER_PAYLOAD:
            limit = SERVER_PAYLOAD
        elif payload > CLASSIC_PAYLOAD:
            limit = payload
        else:
            limit = CLASSIC_PAYLOAD
    else:
        return None
    plan = table.get(question.lower())
    if plan is None:
        return None
    if tcp:
        limit = TCP_LIMIT
    if 12 + len(question) + plan.longest + len(opt) > limit:
        return None
    index = plan.choose(plan.rdtype, clientAddress)
    plan.hits[index] += 1
    return (
        HEADER.pack(ident, FLAG_QR | FLAG_AA | (flags & COPIED_FLAGS), 1, plan.counts[index], 0, arcount)
        + question
        + plan.templates[index]
        + opt
    )


_ECS_FIXED = struct.Struct("!HHHBB")  # option code, length, family, source, scope
def _ipv6Text(packed: bytes) -> str:
    # inet_ntop is fast and agrees with ipaddress except where it writes an
    # embedded IPv4 address (::ffff:192.0.2.1): the text must be the slow
    # path's, since choosers key on it.
    text = socket.inet_ntop(socket.AF_INET6, packed)
    return text if "." not in text else str(ipaddress.IPv6Address(packed))


# IANA address family -> (address bytes, text of the packed address).
_NETWORK_TEXT = {1: (4, socket.inet_ntoa), 2: (16, _ipv6Text)}


def _answerWithSubnet(
    table: Mapping[bytes, FastPlan], data: bytes, clientAddress: str, tcp: bool, ident: int, flags: int
) -> Optional[bytes]:
    """
    The fast path for a query whose OPT carries exactly one option, a well
    formed EDNS Client Subnet (what resolvers that send ECS send): the
    subnet is the client, and is echoed with our scope.  Anything else --
    other options, a malformed subnet (FORMERR is the slow path's) -- is
    declined.
    """
    size = len(data)
    # The question name's end: walk its labels (a few, bounded by size).
    offset = 12
    while True:
        if offset >= size:
            return None
        length = data[offset]
        if not length:
            break
        if length > MAX_LABEL or offset - 12 > MAX_NAME:
            return None  # (the slow path says FORMERR)
        offset += length + 1
    optStart = offset + 5
    if optStart + _PLAIN_OPT_SIZE + 8 > size:
        return None
    root, rtype, payload, ttl, rdlength = _FAST_OPT.unpack_from(data, optStart)
    rdata = optStart + _PLAIN_OPT_SIZE
    if root or rtype != QTYPE_OPT or ttl & 0x00FF0000 or rdata + rdlength != size:
        return None
    code, optionLength, family, source, scope = _ECS_FIXED.unpack_from(data, rdata)
    known = _NETWORK_TEXT.get(family)
    if code != OPTION_CLIENT_SUBNET or optionLength != rdlength - 4 or known is None or scope:
        return None
    width, text = known
    octets = (source + 7) // 8
    if source > width * 8 or optionLength != 4 + octets:
        return None
    address = data[rdata + 8 : size]
    spare = -source % 8
    if address and address[-1] & ((1 << spare) - 1):
        return None
    question = data[12:optStart]
    plan = table.get(question.lower())
    if plan is None:
        return None
    if payload >= SERVER_PAYLOAD:
        limit = SERVER_PAYLOAD
    elif payload > CLASSIC_PAYLOAD:
        limit = payload
    else:
        limit = CLASSIC_PAYLOAD
    if tcp:
        limit = TCP_LIMIT
    # Our OPT: payload, version 0, DO copied, the subnet echoed.
    echoed = data[rdata + 4 : rdata + 7] + bytes((source if plan.tailored and source else 0,)) + address
    opt = (
        _PLAIN_OPT.pack(0, QTYPE_OPT, SERVER_PAYLOAD, 0, 0, ttl & EDNS_DO, 4 + len(echoed))
        + _OPTION_HEAD.pack(OPTION_CLIENT_SUBNET, len(echoed))
        + echoed
    )
    if 12 + len(question) + plan.longest + len(opt) > limit:
        return None
    if source:
        clientAddress = text(address + bytes(width - octets))
    index = plan.choose(plan.rdtype, clientAddress)
    plan.hits[index] += 1
    return (
        HEADER.pack(ident, FLAG_QR | FLAG_AA | (flags & COPIED_FLAGS), 1, plan.counts[index], 0, 1)
        + question
        + plan.templates[index]
        + opt
    )


# ---------------------------------------------------------------------------
# The strict scanner.


class Question:
    """
    A parsed question.

    @ivar labels: the name's labels as sent (case preserved).
    @ivar key: the lower-cased wire form of the name, for lookups.
    """

    __slots__ = ("labels", "key", "qtype", "qclass")

    def __init__(self, labels: tuple[bytes, ...], key: bytes, qtype: int, qclass: int) -> None:
        self.labels = labels
        self.key = key
        self.qtype = qtype
        self.qclass = qclass

    def __repr__(self) -> str:
        name = b".".join(self.labels).decode("ascii", "backslashreplace") + "."
        return f"<Question {name} type={self.qtype} class={self.qclass}>"


class OptRecord:
    """The query's OPT pseudo-record (RFC 6891)."""

    __slots__ = ("payload", "extendedRcode", "version", "flags", "options")

    def __init__(
        self,
        payload: int,
        extendedRcode: int,
        version: int,
        flags: int,
        options: tuple[tuple[int, bytes], ...],
    ) -> None:
        self.payload = payload
        self.extendedRcode = extendedRcode
        self.version = version
        self.flags = flags
        self.options = options

    @property
    def do(self) -> bool:
        return bool(self.flags & EDNS_DO)


class ScannedMessage:
    """
    A message that passed L{scanMessage}: its header fields, its first
    question (if any) and its OPT record (if any).
    """

    __slots__ = ("ident", "flags", "qdcount", "question", "opt")

    def __init__(
        self,
        ident: int,
        flags: int,
        qdcount: int,
        question: Optional[Question],
        opt: Optional[OptRecord],
    ) -> None:
        self.ident = ident
        self.flags = flags
        self.qdcount = qdcount
        self.question = question
        self.opt = opt


class MalformedMessage(Exception):
    """
    The message breaks the wire format; it deserves FORMERR.

    @ivar question: the first question, when it was read before the fault.
    """

    def __init__(self, reason: str, question: Optional[Question] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.question = question


def _readQuestionName(data: bytes, offset: int) -> tuple[tuple[bytes, ...], bytes, int]:
    """
    Read an uncompressed name at C{offset}: its labels as sent, its
    lower-cased wire form, and the offset after it.  A question is the first
    name in a message, so a compression pointer there can only point into
    the header or loop: it is refused along with reserved label types.
    """
    labels = []
    start = offset
    size = len(data)
    while True:
        if offset >= size:
            raise MalformedMessage("question name runs past the end of the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length > MAX_LABEL:
            raise MalformedMessage("compression pointer or reserved label type in the question name")
        end = offset + 1 + length
        if end > size:
            raise MalformedMessage("question label runs past the end of the message")
        labels.append(data[offset + 1 : end])
        offset = end
    if offset - start > MAX_NAME:
        raise MalformedMessage("question name longer than 255 bytes")
    return tuple(labels), data[start:offset].lower(), offset


def _skipName(data: bytes, offset: int) -> tuple[bool, int]:
    """
    Step over a possibly compressed name at C{offset}: whether it is the
    root name (a single zero byte), and the offset after it.  A pointer must
    point backwards, past the header.
    """
    start = offset
    size = len(data)
    while True:
        if offset >= size:
            raise MalformedMessage("record name runs past the end of the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            if offset + 2 > size:
                raise MalformedMessage("compression pointer runs past the end of the message")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if target < 12 or target >= start:
                raise MalformedMessage("compression pointer does not point backwards")
            offset += 2
            break
        if length > MAX_LABEL:
            raise MalformedMessage("reserved label type in a record name")
        offset += 1 + length
        if offset > size:
            raise MalformedMessage("record label runs past the end of the message")
    if offset - start > MAX_NAME:
        raise MalformedMessage("record name longer than 255 bytes")
    return offset - start == 1, offset


def _readOptions(rdata: bytes) -> tuple[tuple[int, bytes], ...]:
    options = []
    offset = 0
    size = len(rdata)
    while offset < size:
        if offset + 4 > size:
            raise MalformedMessage("EDNS option header runs past the OPT record")
        code, length = _OPTION_HEAD.unpack_from(rdata, offset)
        offset += 4
        if offset + length > size:
            raise MalformedMessage("EDNS option data runs past the OPT record")
        options.append((code, rdata[offset : offset + length]))
        offset += length
    return tuple(options)


def scanMessage(data: bytes) -> ScannedMessage:
    """
    Walk a whole message (at least 12 bytes) and check its structure: names
    well formed, every record inside the message, no bytes after the last
    one, at most one OPT record, in the additional section, owned by the
    root, its options exactly filling its RDATA.

    @raise MalformedMessage: on the first fault.
    """
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    offset = 12
    size = len(data)
    first: Optional[Question] = None
    for _ in range(qdcount):
        labels, key, offset = _readQuestionName(data, offset)
        if offset + 4 > size:
            raise MalformedMessage("question type and class run past the end of the message", first)
        qtype, qclass = _QUESTION_FIXED.unpack_from(data, offset)
        offset += 4
        if first is None:
            first = Question(labels, key, qtype, qclass)
    opt: Optional[OptRecord] = None
    additionalFrom = ancount + nscount
    for index in range(ancount + nscount + arcount):
        isRoot, offset = _skipName(data, offset)
        if offset + 10 > size:
            raise MalformedMessage("record header runs past the end of the message", first)
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += 10
        if offset + rdlength > size:
            raise MalformedMessage("record data runs past the end of the message", first)
        if rtype == QTYPE_OPT:
            if index < additionalFrom:
                raise MalformedMessage("OPT record outside the additional section", first)
            if opt is not None:
                raise MalformedMessage("more than one OPT record", first)
            if not isRoot:
                raise MalformedMessage("OPT record not owned by the root name", first)
            try:
                options = _readOptions(data[offset : offset + rdlength])
            except MalformedMessage as e:
                raise MalformedMessage(e.reason, first) from None
            opt = OptRecord(rclass, ttl >> 24, (ttl >> 16) & 0xFF, ttl & 0xFFFF, options)
        offset += rdlength
    if offset != size:
        raise MalformedMessage("bytes after the last record", first)
    return ScannedMessage(ident, flags, qdcount, first, opt)


# ---------------------------------------------------------------------------
# EDNS Client Subnet (RFC 7871).


class ClientSubnet:
    """
    A query's ECS option.

    @ivar family: 1 (IPv4) or 2 (IPv6), as IANA address family numbers.
    @ivar sourcePrefix: how many leading bits of the address are given.
    @ivar address: the address bytes as sent (only the prefix's octets).
    @ivar network: the subnet's address in text, the rest zero-filled.
    """

    __slots__ = ("family", "sourcePrefix", "address", "network")

    def __init__(self, family: int, sourcePrefix: int, address: bytes, network: str) -> None:
        self.family = family
        self.sourcePrefix = sourcePrefix
        self.address = address
        self.network = network

    def replyOption(self, scopePrefix: int = 0) -> bytes:
        """The option data echoed in a reply: same subnet, our scope."""
        return _SUBNET_HEAD.pack(self.family, self.sourcePrefix, scopePrefix) + self.address

    def __repr__(self) -> str:
        return f"<ClientSubnet {self.network}/{self.sourcePrefix}>"


_FAMILY_BYTES = {1: 4, 2: 16}


def parseClientSubnet(data: bytes) -> ClientSubnet:
    """
    Read an ECS option's data, refusing what RFC 7871 6 forbids: an unknown
    family, a source prefix longer than the address, address octets beyond
    the prefix, bits set past the prefix, a nonzero scope in a query.

    @raise MalformedMessage: the option is malformed.
    """
    if len(data) < 4:
        raise MalformedMessage("client subnet option shorter than 4 bytes")
    family, sourcePrefix, scopePrefix = _SUBNET_HEAD.unpack_from(data)
    width = _FAMILY_BYTES.get(family)
    if width is None:
        raise MalformedMessage(f"client subnet family {family} is neither 1 (IPv4) nor 2 (IPv6)")
    if sourcePrefix > width * 8:
        raise MalformedMessage("client subnet source prefix longer than the address")
    if scopePrefix:
        raise MalformedMessage("client subnet scope prefix is not 0 in a query")
    address = data[4:]
    if len(address) != (sourcePrefix + 7) // 8:
        raise MalformedMessage("client subnet address length does not match its source prefix")
    spare = -sourcePrefix % 8
    if address and address[-1] & ((1 << spare) - 1):
        raise MalformedMessage("client subnet address has bits set past its source prefix")
    network = str(ipaddress.ip_address(address + bytes(width - len(address))))
    return ClientSubnet(family, sourcePrefix, address, network)
