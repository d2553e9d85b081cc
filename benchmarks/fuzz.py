"""
Fuzzing of everything the appliance reads from outside (issue 9, part 2):
the DNS parser and fast path, MEP frames, the AMP a core speaks to its
supervisor, and the console's control protocol.

    .venv/bin/python -m benchmarks.fuzz                   # every part, default counts
    .venv/bin/python -m benchmarks.fuzz --skip wire --dns-packets 20000

Parts (see benchmarks/FUZZ.md):

  dns      mutated and random queries through L{Authority.respond}, in process
  wire     the same over real UDP and TCP sockets to a real C{twistd -n gslb}
  mep      mutated MEP frames into a L{MEPSession} on a StringTransport
  amp      garbage and mutated AMP boxes from a "core" into the supervisor
  control  the same into L{ControlProtocol}, the console's endpoint

The mutators and the oracles are pure functions of their inputs (and of a
C{random.Random} for the mutators): C{benchmarks/test_fuzz.py} tests them,
and runs every in-process part with small counts.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import select
import socket
import struct
import sys
import tempfile
import time
import tomllib
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
from twisted.internet import error as netError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogBeginner, globalLogPublisher
from twisted.protocols import amp
from twisted.python.failure import Failure

from gslb_twisted.config import parseTopology
from gslb_twisted.dns.authority import SERVFAIL as RCODE_SERVFAIL, Authority
from gslb_twisted.lb.choosers import ChoiceContext, buildChooser
from gslb_twisted.lb.decision import SERVFAIL as RESPONSE_SERVFAIL, planVServer
from gslb_twisted.lb.persistence import PersistenceTable
from gslb_twisted.metrics import DOWN, UP, MetricTable
from gslb_twisted.mep import auth, frames
from gslb_twisted.mep.session import CLOSED, MEPSession
from gslb_twisted.protocol import commands
from gslb_twisted.respawn import RespawnPolicy
from gslb_twisted.supervisor import CHILD_AMP_IN, CHILD_AMP_OUT, ControlProtocol, CoreMonitor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
PARTS = ("dns", "wire", "mep", "amp", "control")

# ---------------------------------------------------------------------------
# The topology every DNS part answers: vservers of several methods (some
# answering per client, so ECS matters), IPv4 and IPv6 services, two zones,
# a vserver whose services are all DOWN (down_response SERVFAIL), and one
# with many answers (truncation).

ZONE = "fuzz.gslb"
TOPOLOGY = """
[appliance]
name = "fuzz"
ip = "127.0.0.5"
cores = 2

[[zone]]
name = "fuzz.gslb"
ns = ["ns1.fuzz.gslb", "ns.elsewhere.net"]
soa_minimum = 30

[[zone]]
name = "other.test"
ns = ["ns1.fuzz.gslb"]

[[site]]
name = "east"
ip = "127.0.0.2"
metric_exchange = false

[[site]]
name = "west"
ip = "127.0.0.3"
metric_exchange = false

[[site]]
name = "dark"
ip = "127.0.0.4"
metric_exchange = false

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[service]]
name = "east-web6"
site = "east"
ip = "2001:db8::10"

[[service]]
name = "west-web6"
site = "west"
ip = "2001:db8:1::10"

[[service]]
name = "dark-web"
site = "dark"
ip = "203.0.113.9"
""" + "".join(
    f'\n[[service]]\nname = "many{i}"\nsite = "west"\nip = "2001:db8:2::{i:x}"\n' for i in range(1, 41)
) + """
[[vserver]]
name = "www"
domains = ["www.fuzz.gslb", "alias.fuzz.gslb"]
lb_method = "ROUNDROBIN"
ttl = 5
services = ["east-web", "west-web", "east-web6", "west-web6"]

[[vserver]]
name = "least"
domains = ["least.fuzz.gslb"]
lb_method = "LEASTCONNECTION"
services = ["east-web", "west-web"]

[[vserver]]
name = "hash"
domains = ["hash.fuzz.gslb"]
lb_method = "SOURCEIPHASH"
services = ["east-web", "west-web", "east-web6", "west-web6"]

[[vserver]]
name = "sticky"
domains = ["sticky.a.b.fuzz.gslb"]
lb_method = "LEASTRESPONSETIME"
persistence = "SOURCEIP"
services = ["east-web", "west-web"]

[[vserver]]
name = "dark"
domains = ["dark.fuzz.gslb"]
down_response = "servfail"
services = ["dark-web"]

[[vserver]]
name = "many"
domains = ["many.fuzz.gslb"]
lb_method = "ROUNDROBIN"
answers = 40
services = [""" + ", ".join(f'"many{i}"' for i in range(1, 41)) + """]

[[vserver]]
name = "apex"
domains = ["other.test"]
services = ["west-web"]
"""

# Names whose vserver answers SERVFAIL (all its services DOWN): the only
# SERVFAIL the authority may give.
DISABLED = frozenset({"dark-web"})
SERVFAIL_NAMES = frozenset({"dark.fuzz.gslb."})
QUERY_NAMES = (
    "www.fuzz.gslb", "ALIAS.Fuzz.gslb", "least.fuzz.gslb", "hash.fuzz.gslb", "sticky.a.b.fuzz.gslb",
    "dark.fuzz.gslb", "many.fuzz.gslb", "other.test", "fuzz.gslb", "a.b.fuzz.gslb", "ns1.fuzz.gslb",
    "nothing.fuzz.gslb", "x.www.fuzz.gslb", "example.com", ".",
)
CLIENT = ("198.51.100.7", 53000)


def fuzzTopology():
    return parseTopology(tomllib.loads(TOPOLOGY), "fuzz.toml")


def buildAuthority(topology=None) -> Authority:
    """
    An authority as a core holds it once serving: every vserver planned by
    its method over fresh metrics (service C{dark-web} disabled, as the
    console does, so vserver C{dark} answers SERVFAIL), with the core's
    choosers (per-client hashing, persistence) in place.
    """
    topology = topology or fuzzTopology()
    authority = Authority.fromTopology(topology)
    now = 1000.0
    table = MetricTable(site.name for site in topology.sites)
    rng = random.Random(0)
    for site in topology.sites:
        services = {
            service.name: {
                "state": DOWN if site.name == "dark" else UP,
                "connections": rng.randrange(1000), "response_time": rng.uniform(1, 50),
                "bandwidth": rng.uniform(0, 1e5), "packets": rng.randrange(10000), "load": rng.uniform(0, 90),
            }
            for service in topology.services if service.site == site.name
        }
        table.recordAsMaster(site.name, state=DOWN if site.name == "dark" else UP, rtt=0.01,
                             services=services, replace=True, now=now)
    context = ChoiceContext(persistence=PersistenceTable("fuzz"), clock=lambda: now)
    for vserver in topology.vservers:
        for rdtype in (1, 28):
            plan = planVServer(vserver, topology, table, rdtype, now, 60.0, disabled=DISABLED)
            failure = RCODE_SERVFAIL if plan.response == RESPONSE_SERVFAIL else None
            chooser = buildChooser(plan, context, authority.book(vserver.name, rdtype).indexOf)
            authority.setChooser(vserver.name, rdtype, chooser, failure)
    return authority


# ---------------------------------------------------------------------------
# DNS seeds and mutators (pure: bytes and a random.Random in, bytes out).

HEADER = struct.Struct("!HHHHHH")


def seedQueries() -> List[bytes]:
    """Valid queries of every shape the appliance answers, built by dnspython."""
    seeds = []
    for index, name in enumerate(QUERY_NAMES):
        for rdtype in ("A", "AAAA", "ANY", "SOA", "NS", "MX", "AXFR"):
            seeds.append(dns.message.make_query(name, rdtype, use_edns=False, id=index).to_wire())
        seeds.append(dns.message.make_query(name, "A", use_edns=0, payload=4096, want_dnssec=True).to_wire())
    ecs = [dns.edns.ECSOption("192.0.2.0", 24), dns.edns.ECSOption("2001:db8::", 48),
           dns.edns.ECSOption("0.0.0.0", 0), dns.edns.ECSOption("203.0.113.77", 32)]
    for option in ecs:
        for name in ("hash.fuzz.gslb", "sticky.a.b.fuzz.gslb", "www.fuzz.gslb", "nothing.fuzz.gslb"):
            seeds.append(dns.message.make_query(name, "A", use_edns=0, options=[option]).to_wire())
            seeds.append(dns.message.make_query(name, "AAAA", use_edns=0, payload=600, options=[option]).to_wire())
    seeds.append(dns.message.make_query("many.fuzz.gslb", "AAAA", use_edns=0, payload=512).to_wire())
    seeds.append(dns.message.make_query("many.fuzz.gslb", "AAAA", use_edns=False).to_wire())
    seeds.append(dns.message.make_query("www.fuzz.gslb", "A", use_edns=1).to_wire())
    seeds.append(dns.message.make_query("www.fuzz.gslb", "A", use_edns=0,
                                        options=[dns.edns.GenericOption(65001, b"\x01\x02")]).to_wire())
    notify = dns.message.make_query("fuzz.gslb", "SOA", use_edns=False)
    notify.set_opcode(dns.opcode.NOTIFY)
    seeds.append(notify.to_wire())
    # A query with a record in the answer section, owner compressed.
    seeds.append(HEADER.pack(7, 0x0100, 1, 1, 0, 0) + b"\x03www\x04fuzz\x04gslb\x00\x00\x01\x00\x01"
                 + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\xc0\x00\x02\x01")
    return seeds


def _questionEnd(wire: bytes) -> int:
    """The offset after the first question (or the end, if it runs out)."""
    offset = 12
    while offset < len(wire):
        length = wire[offset]
        if length == 0:
            return min(offset + 5, len(wire))
        if length & 0xC0:
            return min(offset + 6, len(wire))
        offset += length + 1
    return len(wire)


def _optRecord(rng: random.Random) -> bytes:
    """An OPT record: sometimes sound, sometimes with a wrong version, owner, length or options."""
    options = b""
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        if rng.random() < 0.6:
            options += _ecsOption(rng)
        else:
            data = rng.randbytes(rng.choice((0, 1, 4, 17)))
            options += struct.pack("!HH", rng.choice((3, 8, 10, 12, 15, 65001, rng.randrange(65536))), len(data)) + data
    owner = b"\x00" if rng.random() < 0.9 else rng.choice((b"\x01a\x00", b"\xc0\x0c"))
    version = 0 if rng.random() < 0.8 else rng.randrange(256)
    payload = rng.choice((0, 1, 511, 512, 513, 1231, 1232, 1233, 4096, 65535))
    flags = rng.choice((0, 0x8000, rng.randrange(65536)))
    rdlength = len(options)
    if rng.random() < 0.1:
        rdlength = rng.choice((0, rdlength + 1, max(0, rdlength - 1), 65535))
    return owner + struct.pack("!HHBBHH", 41, payload, rng.choice((0, 0, 1, 255)), version, flags, rdlength) + options


def _ecsOption(rng: random.Random) -> bytes:
    """An ECS option, valid or broken in one of the ways RFC 7871 6 names."""
    family = rng.choice((1, 1, 2, 2, 0, 3, rng.randrange(65536)))
    width = 16 if family == 2 else 4
    source = rng.choice((0, 8, 24, 32, 48, 56, 64, 128, 129, 255, rng.randrange(width * 8 + 1)))
    scope = 0 if rng.random() < 0.8 else rng.randrange(256)
    octets = (source + 7) // 8
    address = bytearray(rng.randbytes(min(octets, 16)))
    spare = -source % 8
    if address and rng.random() < 0.7:
        address[-1] &= 0xFF ^ ((1 << spare) - 1)  # usually a clean prefix
    if rng.random() < 0.15:
        address += rng.randbytes(rng.choice((1, 2)))  # longer than the prefix
    if rng.random() < 0.1 and address:
        del address[-1]
    data = struct.pack("!HBB", family, source, scope) + bytes(address)
    return struct.pack("!HH", 8, len(data)) + data


def mutateDNS(wire: bytes, rng: random.Random, kind: Optional[str] = None) -> bytes:
    """One mutation of a DNS message (of kind C{kind}, or one drawn from L{DNS_MUTATIONS})."""
    data = bytearray(wire)
    kind = kind or rng.choice(DNS_MUTATIONS)
    size = len(data)
    position = rng.randrange(size) if size else 0
    if kind == "flip" and size:
        data[position] ^= 1 << rng.randrange(8)
    elif kind == "set" and size:
        data[position] = rng.choice((0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF, rng.randrange(256)))
    elif kind == "cut":
        del data[position:]
    elif kind == "insert":
        data[position:position] = rng.randbytes(rng.randint(1, 8))
    elif kind == "delete" and size:
        del data[position : position + rng.randint(1, 4)]
    elif kind == "counts" and size >= 12:
        # A header count field set to a telling value.
        field = rng.randrange(2, 6)
        value = rng.choice((0, 1, 2, 3, 0x7FFF, 0xFFFF, rng.randrange(65536)))
        struct.pack_into("!H", data, field * 2, value)
    elif kind == "flags" and size >= 4:
        struct.pack_into("!H", data, 2, rng.choice((0x8000, 0x7800, 0x2800, 0x0400, 0x0200, 0x0040, rng.randrange(65536))))
    elif kind == "opt" and size >= 12:
        # Append an OPT record (ARCOUNT + 1), sound or not.
        data += _optRecord(rng)
        struct.pack_into("!H", data, 10, (struct.unpack_from("!H", data, 10)[0] + 1) & 0xFFFF)
    elif kind == "ecs" and size >= 12:
        # Replace whatever follows the question with one OPT carrying ECS.
        end = _questionEnd(bytes(data))
        option = _ecsOption(rng)
        del data[end:]
        data += b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, len(option)) + option
        struct.pack_into("!HHH", data, 6, 0, 0, 1)
    elif kind == "pointer" and size >= 12:
        # A compression pointer: to itself (a loop), forward, into the header, or back to the question.
        at = rng.randrange(12, size + 1)
        target = rng.choice((at, at + 2, rng.randrange(12), 12, rng.randrange(0x4000)))
        data[at:at] = struct.pack("!H", 0xC000 | (target & 0x3FFF))
    elif kind == "loop" and size >= 12:
        # A record whose owner points at itself, in the answer section.
        end = _questionEnd(bytes(data))
        data[end:end] = struct.pack("!HHHIH", 0xC000 | end, 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
        struct.pack_into("!H", data, 6, (struct.unpack_from("!H", data, 6)[0] + 1) & 0xFFFF)
    elif kind == "label" and size > 12:
        # A label length pointing past the end, or over 63.
        data[rng.randrange(12, size)] = rng.choice((63, 64, 0xBF, size, 255))
    elif kind == "duplicate" and size > 12:
        # A second question (or any slice of the message repeated).
        start = rng.randrange(12, size)
        data[start:start] = data[start : start + rng.randint(1, 40)]
    return bytes(data)


DNS_MUTATIONS = ("flip", "set", "cut", "insert", "delete", "counts", "flags", "opt", "ecs", "pointer", "loop",
                 "label", "duplicate")


def dnsInput(seeds: Sequence[bytes], rng: random.Random) -> Tuple[str, bytes]:
    """
    One fuzz input: C{("random", bytes)} about one time in seven, else
    C{("mutated", bytes)}: a seed with one to four mutations.
    """
    if rng.random() < 0.15:
        return "random", rng.randbytes(rng.choice((rng.randrange(12), rng.randrange(12, 64), rng.randrange(600))))
    wire = rng.choice(seeds)
    for _ in range(rng.randint(1, 4)):
        wire = mutateDNS(wire, rng)
    return "mutated", wire


# ---------------------------------------------------------------------------
# The DNS oracle (pure).

ALLOWED_RCODES = frozenset({dns.rcode.NOERROR, dns.rcode.FORMERR, dns.rcode.NXDOMAIN, dns.rcode.NOTIMP,
                            dns.rcode.REFUSED, dns.rcode.BADVERS})
CLASSIC_PAYLOAD = 512
SERVER_PAYLOAD = 1232


def _ecsProblem(data: bytes) -> Optional[str]:
    """Why an ECS option's data breaks RFC 7871 6 (C{None}: it does not)."""
    if len(data) < 4:
        return "short"
    family, source, scope = struct.unpack_from("!HBB", data)
    width = {1: 4, 2: 16}.get(family)
    if width is None:
        return "family"
    if source > width * 8 or scope:
        return "prefix"
    address = data[4:]
    if len(address) != (source + 7) // 8:
        return "length"
    if address and address[-1] & ((1 << (-source % 8)) - 1):
        return "bits"
    return None


def recordOwners(wire: bytes) -> List[Tuple[int, bytes]]:
    """
    C{(type, owner-name bytes as on the wire)} of every record of a message
    that dnspython read (so names and records are in bounds).
    """
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)

    def skipName(offset: int) -> int:
        while wire[offset]:
            if wire[offset] & 0xC0:
                return offset + 2
            offset += wire[offset] + 1
        return offset + 1

    offset = 12
    for _ in range(qdcount):
        offset = skipName(offset) + 4
    owners = []
    for _ in range(ancount + nscount + arcount):
        start = offset
        offset = skipName(offset)
        rtype, rdlength = struct.unpack_from("!H", wire, offset)[0], struct.unpack_from("!H", wire, offset + 8)[0]
        owners.append((rtype, wire[start:offset]))
        offset += 10 + rdlength
    return owners


def _intoHeader(name: bytes) -> bool:
    """Whether a name ends in a compression pointer into the 12-byte header (where no name is)."""
    return len(name) >= 2 and name[-2] & 0xC0 == 0xC0 and ((name[-2] & 0x3F) << 8 | name[-1]) < 12


def wellFormedQuery(wire: bytes) -> Optional[dns.message.Message]:
    """
    The query parsed by dnspython if it is a well formed single-question
    QUERY that SPEC section 4 gives no reason to refuse with FORMERR; else
    C{None}.  Beyond what dnspython checks (names, record bounds, trailing
    bytes, OPT placement): the question name is not compressed (there is
    nothing before it to point to), its type is not OPT, the OPT owner is
    the single byte 0 (RFC 6891 6.1.2: "MUST be 0"; not a pointer to the
    root), no record owner points into the header (there is no name
    there: dnspython reads one from the header bytes), and an ECS option is sound (RFC 7871 6) and alone.
    """
    if len(wire) < 12:
        return None
    try:
        message = dns.message.from_wire(wire, ignore_trailing=False)
    except Exception:
        return None
    if message.flags & dns.flags.QR or message.opcode() != dns.opcode.QUERY or len(message.question) != 1:
        return None
    if message.question[0].rdtype == dns.rdatatype.OPT:
        return None
    offset = 12
    while wire[offset]:
        if wire[offset] & 0xC0:
            return None
        offset += wire[offset] + 1
    owners = recordOwners(wire)
    if any(_intoHeader(name) for _, name in owners):
        return None
    if message.edns >= 0:
        if [name for rtype, name in owners if rtype == dns.rdatatype.OPT] != [b"\x00"]:
            return None
        subnets = [option for option in message.options if option.otype == dns.edns.ECS]
        if len(subnets) > 1:
            return None
        if subnets and message.edns == 0 and _ecsProblem(subnets[0].to_wire()) is not None:
            return None
    return message


def replyAsQuery(reply: bytes) -> bytes:
    """
    C{reply} with opcode QUERY: dnspython reads the sections of an UPDATE
    (opcode 5) as zone and prerequisites and refuses a NOTIMP that echoes
    any other question, though the message is sound.
    """
    if len(reply) < 4 or not reply[2] & 0x78:
        return reply
    return reply[:2] + bytes((reply[2] & 0x87,)) + reply[3:]


def udpLimit(query: Optional[dns.message.Message]) -> int:
    """The largest UDP reply a query allows (RFC 6891 6.2.5; our payload caps it)."""
    if query is None or query.edns < 0:
        return CLASSIC_PAYLOAD
    return min(max(query.payload, CLASSIC_PAYLOAD), SERVER_PAYLOAD)


def checkReply(wire: bytes, reply: Optional[bytes], tcp: bool, servfailNames=SERVFAIL_NAMES) -> List[str]:
    """What is wrong with C{reply} as the answer to C{wire} (see L{examineReply})."""
    return examineReply(wire, reply, tcp, servfailNames)[1]


def examineReply(wire: bytes, reply: Optional[bytes], tcp: bool,
                 servfailNames=SERVFAIL_NAMES) -> Tuple[str, List[str]]:
    """
    The outcome of C{reply} (its RCODE name, C{dropped}, C{unparseable})
    and what is wrong with it as the answer to C{wire} (empty: nothing).

    SPEC section 4: drop only when the header is unreadable (under 12
    bytes) or the message is a response (QR); otherwise answer with the
    query's ID, QR set, an RCODE we may give, a message dnspython can read,
    NOTIMP for other opcodes, within the UDP size the query allows, and
    never FORMERR for a well formed query.
    """
    droppable = len(wire) < 12 or bool(wire[2] & 0x80)
    if reply is None:
        return "dropped", ([] if droppable else ["dropped a query whose header is readable"])
    if droppable:
        return "answered", ["answered a message that must be dropped"]
    problems = []
    if reply[:2] != wire[:2]:
        problems.append(f"reply ID {reply[:2].hex()} is not the query's {wire[:2].hex()}")
    if len(reply) < 4 or not reply[2] & 0x80:
        problems.append("QR not set in the reply")
    try:
        message = dns.message.from_wire(replyAsQuery(reply))
    except Exception as e:
        problems.append(f"dnspython cannot parse the reply: {type(e).__name__}: {e}")
        return "unparseable", problems
    query = wellFormedQuery(wire)
    rcode = message.rcode()
    name = message.question[0].name.to_text().lower() if message.question else None
    if rcode not in ALLOWED_RCODES and not (rcode == dns.rcode.SERVFAIL and name in servfailNames):
        problems.append(f"rcode {dns.rcode.to_text(rcode)} not allowed here")
    opcode = (struct.unpack_from("!H", wire, 2)[0] >> 11) & 0xF
    if opcode != dns.opcode.QUERY and rcode != dns.rcode.NOTIMP:
        problems.append(f"opcode {opcode} answered {dns.rcode.to_text(rcode)}, not NOTIMP")
    if query is not None and rcode == dns.rcode.FORMERR:
        problems.append("FORMERR for a well formed query")
    if not tcp:
        limit = udpLimit(query) if query is not None else SERVER_PAYLOAD
        if len(reply) > limit:
            problems.append(f"UDP reply of {len(reply)} bytes exceeds {limit}")
    return dns.rcode.to_text(rcode), problems


# ---------------------------------------------------------------------------
# Results.


@dataclass
class PartResult:
    part: str
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Dict[str, int] = field(default_factory=dict)
    failures: int = 0
    signatures: Dict[str, int] = field(default_factory=dict)
    examples: List[dict] = field(default_factory=list)
    notes: Dict[str, object] = field(default_factory=dict)
    skipped: bool = False
    error: Optional[str] = None

    @property
    def passed(self) -> bool:
        return not self.skipped and self.error is None and self.failures == 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def fail(self, signature: str, data: bytes, detail: str, maxExamples: int, **extra) -> None:
        """Record one failing input: counted by signature, its hex kept for the first few."""
        self.failures += 1
        self.signatures[signature] = self.signatures.get(signature, 0) + 1
        if len(self.examples) < maxExamples:
            example = {"signature": signature, "detail": detail, "hex": data.hex()}
            example.update(extra)
            self.examples.append(example)

    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def rssKiB() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def failureSignature(error: BaseException, tb) -> str:
    """C{Type at file:line} of the innermost frame of a traceback, as a grouping key."""
    frame = None
    while tb is not None:
        frame = tb
        tb = tb.tb_next
    where = "?" if frame is None else f"{os.path.relpath(frame.tb_frame.f_code.co_filename, REPO)}:{frame.tb_lineno}"
    return f"{type(error).__name__} at {where}"


# ---------------------------------------------------------------------------
# Part a: DNS in process.


def runDNS(count: int, seed: int, maxFailures: int, tracePackets: int = 20000, maxGrowthKiB: int = 4096,
           authority: Optional[Authority] = None) -> PartResult:
    """
    C{count} inputs through L{Authority.respond}, UDP and TCP, every reply
    checked by L{checkReply}; then a traced stretch to show memory does not
    grow without bound.
    """
    result = PartResult("dns")
    authority = authority or buildAuthority()
    seeds = seedQueries()
    rng = random.Random(seed)
    clients = [CLIENT, ("2001:db8:77::1", 5353), ("203.0.113.200", 1)]
    gc.collect()
    rssBefore = rssKiB()

    def one(kind: str, wire: bytes, tcp: bool) -> None:
        client = clients[len(wire) % 3]
        try:
            reply = authority.respond(wire, client, tcp)
        except Exception as e:
            result.fail(failureSignature(e, e.__traceback__), wire, f"{type(e).__name__}: {e}", maxFailures,
                        tcp=tcp)
            return
        outcome, problems = examineReply(wire, reply, tcp)
        result.count(f"{kind} {outcome}")
        if problems:
            result.fail(problems[0].split(":")[0], wire, "; ".join(problems), maxFailures, tcp=tcp,
                        reply=None if reply is None else reply.hex())

    started = time.perf_counter()
    for _ in range(count):
        kind, wire = dnsInput(seeds, rng)
        one(kind, wire, rng.random() < 0.3)
        result.inputs += 1
        if result.failures >= maxFailures:
            result.notes["stopped"] = f"after {maxFailures} failures"
            break
    result.seconds = time.perf_counter() - started
    gc.collect()
    result.notes["rss_kib_before"] = rssBefore
    result.notes["rss_kib_after"] = rssKiB()
    # Memory: after a warm-up, a further stretch of inputs must not keep
    # what it allocates (tracemalloc is slow, so only over a stretch).
    if tracePackets and result.failures < maxFailures:
        tracemalloc.start()
        for _ in range(tracePackets // 4):
            kind, wire = dnsInput(seeds, rng)
            authority.respond(wire, CLIENT, rng.random() < 0.3)
        gc.collect()
        warm = tracemalloc.get_traced_memory()[0]
        for _ in range(tracePackets):
            kind, wire = dnsInput(seeds, rng)
            authority.respond(wire, CLIENT, rng.random() < 0.3)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        growth = (after - warm) // 1024
        result.notes["traced_packets"] = tracePackets
        result.notes["traced_kib_warm"] = warm // 1024
        result.notes["traced_kib_after"] = after // 1024
        if growth > maxGrowthKiB:
            result.fail("memory growth", b"", f"{growth} KiB kept over {tracePackets} packets", maxFailures)
    result.notes["authority_queries"] = authority.queries
    result.notes["fast_path_answers"] = authority.fastAnswers
    return result


# ---------------------------------------------------------------------------
# Part b: DNS over real sockets.


def answerable(wire: bytes) -> bool:
    """Whether SPEC section 4 wants a reply to C{wire} (its header is readable and it is no response)."""
    return len(wire) >= 12 and not wire[2] & 0x80


def sendUDP(port: int, packets: Sequence[bytes], batch: int = 64, quiet: float = 0.2) -> Tuple[List[Tuple[int, bytes]], int]:
    """
    Send C{packets} to 127.0.0.1:C{port} in batches, collecting replies
    after each batch until every answerable query of it has one, or the
    socket stays quiet C{quiet} seconds.

    @return: C{(batch index, reply)} pairs, and the datagrams that could not be sent.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.connect(("127.0.0.1", port))
    replies: List[Tuple[int, bytes]] = []
    unsent = 0
    try:
        for start in range(0, len(packets), batch):
            sent = packets[start : start + batch]
            for wire in sent:
                try:
                    sock.send(wire)
                except OSError:
                    unsent += 1  # an empty datagram may be refused; ICMP errors surface here
            want = len(replies) + sum(1 for wire in sent if answerable(wire))
            while len(replies) < want and select.select([sock], [], [], quiet)[0]:
                try:
                    replies.append((start // batch, sock.recv(65535)))
                except OSError:
                    break
    finally:
        sock.close()
    return replies, unsent


def tcpExchange(port: int, stream: bytes, expected: int, timeout: float = 2.0) -> bytes:
    """
    Write C{stream} on a fresh TCP connection and read until C{expected}
    replies came, the server closed, or C{timeout}; then close.  (No
    half-close first: a server need not answer a client that did.)
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    received = b""
    try:
        sock.sendall(stream)
        deadline = time.monotonic() + timeout
        while len(splitFrames(received)) < expected and time.monotonic() < deadline:
            chunk = sock.recv(65535)
            if not chunk:
                break
            received += chunk
    except OSError:
        pass  # reset by the server (a bad frame) or timed out: what came counts
    finally:
        sock.close()
    return received


def tcpStream(rng: random.Random, messages: Sequence[bytes]) -> Tuple[bytes, str]:
    """
    Frame C{messages} for DNS over TCP; sometimes end the stream with a bad
    length prefix (zero, longer than what follows, or one lone byte).
    """
    stream = b"".join(struct.pack("!H", len(m) & 0xFFFF) + m for m in messages)
    ending = rng.choice(("clean", "clean", "zero", "long", "odd"))
    if ending == "zero":
        stream += b"\x00\x00" + rng.randbytes(rng.randrange(8))
    elif ending == "long":
        stream += struct.pack("!H", rng.randrange(20, 65536)) + rng.randbytes(rng.randrange(16))
    elif ending == "odd":
        stream += rng.randbytes(1)
    return stream, ending


def splitFrames(data: bytes) -> List[bytes]:
    """The messages of a DNS-over-TCP byte stream (an incomplete last frame is left out)."""
    out, offset = [], 0
    while offset + 2 <= len(data):
        (length,) = struct.unpack_from("!H", data, offset)
        if offset + 2 + length > len(data):
            break
        out.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return out


def matchReply(reply: bytes, candidates: Sequence[bytes], tcp: bool) -> Tuple[str, List[str]]:
    """
    L{examineReply} against the queries C{reply} may answer (those with its
    ID): its outcome, and no problem if one of them fits.
    """
    same = [wire for wire in candidates if wire[:2] == reply[:2] and len(wire) >= 12]
    if not same:
        return "unmatched", [f"reply ID {reply[:2].hex()} answers no query sent"]
    best = None
    for wire in same:
        outcome, problems = examineReply(wire, reply, tcp)
        if not problems:
            return outcome, []
        best = best or (outcome, problems)
    return best


def logProblems(text: str) -> List[str]:
    """Lines of an appliance's log that show a traceback or an unhandled error."""
    return [line for line in text.splitlines() if "Traceback" in line or "Unhandled" in line
            or "Unhandled Error" in line]


def freePort() -> int:
    """A loopback port free for both UDP and TCP (the appliance listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise OSError("no free port")


def runWire(count: int, tcpCount: int, seed: int, maxFailures: int, resultsDir: str) -> PartResult:
    """
    A real appliance (two cores) on a free port: C{count} fuzz inputs over
    UDP and C{tcpCount} over TCP; then it must answer a valid query
    correctly, with no core restarted and no traceback in its log.
    """
    from benchmarks.servers import GslbServer, ServerError

    result = PartResult("wire")
    rng = random.Random(seed)
    seeds = seedQueries()
    workDir = tempfile.mkdtemp(prefix="gslb-fuzz-")
    config = os.path.join(workDir, "fuzz.toml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(TOPOLOGY)
    port = freePort()
    logPath = os.path.join(resultsDir, f"fuzz-wire-{time.strftime('%Y%m%d-%H%M%S')}.log")
    server = GslbServer.build(port, 2, None, "unix:" + os.path.join(workDir, "gslb.ctl"), logPath, config=config)
    server.command += ["--dns", f"tcp:{port}:interface=127.0.0.1"]
    result.notes["server_command"] = " ".join(server.command)
    result.notes["log"] = os.path.relpath(logPath, REPO)
    started = time.perf_counter()
    try:
        server.start()
        server.waitReady(30.0, "www.fuzz.gslb")
        before = server.showCores()
        # UDP: batches paired by ID with what was sent in them.
        packets = [dnsInput(seeds, rng)[1] for _ in range(count)]
        batch = 64
        replies, unsent = sendUDP(port, packets, batch)
        expected = sum(1 for wire in packets if answerable(wire))
        for index, reply in replies:
            sent = packets[max(0, index - 1) * batch : (index + 1) * batch]  # a late reply may cross a batch
            outcome, problems = matchReply(reply, sent, False)
            result.count("udp " + outcome)
            if problems:
                result.fail("udp: " + problems[0].split(":")[0], reply, "; ".join(problems), maxFailures)
        result.inputs += len(packets)
        result.notes["udp_sent"] = len(packets)
        result.notes["udp_unsent"] = unsent
        result.notes["udp_answerable"] = expected
        result.notes["udp_replies"] = len(replies)
        # TCP: a few messages per connection, pipelined, some streams
        # ending in a bad length prefix.
        sentTCP = connections = answerableTCP = 0
        tcpReplies = 0
        while sentTCP < tcpCount:
            messages = [dnsInput(seeds, rng)[1] for _ in range(rng.randint(1, 8))]
            # Over TCP a zero-length message ends the stream: keep such for the ending.
            messages = [m for m in messages if m]
            stream, ending = tcpStream(rng, messages)
            wanted = sum(1 for m in messages if answerable(m))
            data = tcpExchange(port, stream, wanted)
            connections += 1
            sentTCP += len(messages)
            answerableTCP += wanted
            result.count("tcp stream " + ending)
            for reply in splitFrames(data):
                tcpReplies += 1
                outcome, problems = matchReply(reply, messages, True)
                result.count("tcp " + outcome)
                if problems:
                    result.fail("tcp: " + problems[0].split(":")[0], stream, "; ".join(problems), maxFailures)
        result.inputs += sentTCP
        result.notes.update(tcp_messages=sentTCP, tcp_connections=connections, tcp_replies=tcpReplies,
                            tcp_answerable=answerableTCP)
        # Still answering, correctly, over both transports.
        for tcp in (False, True):
            query = dns.message.make_query("www.fuzz.gslb", "A")
            ask = dns.query.tcp if tcp else dns.query.udp
            try:
                answer = ask(query, "127.0.0.1", port=port, timeout=2.0)
                addresses = sorted(item.address for rrset in answer.answer for item in rrset)
                good = answer.rcode() == dns.rcode.NOERROR and addresses and set(addresses) <= {"192.0.2.10", "198.51.100.10"}
            except (dns.exception.DNSException, OSError) as e:
                good, addresses = False, [str(e)]
            result.notes["final_" + ("tcp" if tcp else "udp")] = addresses
            if not good:
                result.fail("no valid answer after fuzzing", query.to_wire(), f"got {addresses}", maxFailures)
        after = server.showCores()
        result.notes["cores_before"] = before
        result.notes["cores_after"] = after
        restarted = [c["core"] for c in after if c.get("restarts") or c.get("pid") not in {b.get("pid") for b in before}]
        if restarted:
            result.fail("core restarted", b"", f"cores {restarted} restarted", maxFailures)
    except (ServerError, OSError) as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        result.seconds = time.perf_counter() - started
        problems = server.stop()
        for problem in problems:
            result.fail("stop", b"", problem, maxFailures)
        with open(logPath, encoding="utf-8", errors="replace") as f:
            bad = logProblems(f.read())
        result.notes["log_tracebacks"] = len(bad)
        if bad:
            result.fail("traceback in the appliance log", b"", bad[0][:300], maxFailures)
    return result


# ---------------------------------------------------------------------------
# Part c: MEP.


class _Handler:
    """An owner that accepts every peer; a site hands its first SNAPSHOT over."""

    def __init__(self) -> None:
        self.lost: List[str] = []

    def authenticated(self, session):
        if session.role == "site":
            session.sendSnapshot(1, {"svc": dict(_METRICS)})
        return True

    def snapshotReceived(self, session, seq, services):
        pass

    def deltaReceived(self, session, seq, baseSeq, changes):
        pass

    def resyncRequested(self, session):
        session.sendSnapshot(2, {"svc": dict(_METRICS)})

    def rttMeasured(self, session, rtt):
        pass

    def probeReceived(self, session, networks):
        session.sendRTT({network: 3.0 for network in networks[:4]})

    def rttReported(self, session, rtts):
        pass

    def sessionsReceived(self, session, entries):
        pass

    def sessionLost(self, session, reason):
        self.lost.append(reason)


_METRICS = {"state": "UP", "connections": 3, "response_time": 1.5, "bandwidth": 10.0, "packets": 4, "load": 5.0}


def peerKey(role: str, peerName: str, localName: str, secret: Optional[bytes], sessionNonce: bytes,
            peerNonce: bytes) -> Optional[bytes]:
    """The key that seals what the peer of a C{role} session sends after its AUTH (MEP version 2)."""
    if not secret:
        return None
    peerRole = "site" if role == "appliance" else "appliance"
    return auth.sessionKey(secret, 2, peerRole, peerName, localName, peerNonce, sessionNonce)


def peerFrames(rng: random.Random, role: str, peerName: str, localName: str, secret: Optional[bytes],
               sessionNonce: bytes, peerNonce: bytes) -> List[bytes]:
    """
    What a well-behaved version-2 peer of a C{role} session sends: HELLO,
    AUTH (with a secret; every later frame then sealed), then a few frames
    of the kinds that role accepts.
    """
    peerRole = "site" if role == "appliance" else "appliance"
    out = [frames.encodeFrame(frames.HELLO, {"versions": [2], "name": peerName, "role": peerRole,
                                             "nonce": peerNonce.hex(), "auth": "hmac-sha256" if secret else "none"})]
    mac = None
    if secret:
        proof = auth.proof(secret, 2, peerRole, peerName, localName, sessionNonce, peerNonce, (2,), (2,))
        out.append(frames.encodeFrame(frames.AUTH, {"proof": proof.hex()}))
        mac = auth.FrameMAC(peerKey(role, peerName, localName, secret, sessionNonce, peerNonce))
    def seal(frameType: int, message: dict) -> bytes:
        return frames.encodeFrame(frameType, message, mac=mac)

    for seq in range(1, rng.randint(1, 6)):
        kind = rng.choice(("keepalive", "echo", "sessions", "data", "data"))
        if kind == "keepalive":
            out.append(seal(frames.KEEPALIVE, {"ts": rng.uniform(0, 100)}))
        elif kind == "echo":
            out.append(seal(frames.KEEPALIVE_ECHO, {"ts": rng.uniform(0, 100)}))
        elif kind == "sessions":
            out.append(seal(frames.SESSIONS, {"sessions": [
                {"vserver": "www", "network": "192.0.2.0/24", "service": "svc", "version": seq, "origin": peerName,
                 "ttl": 30.0}]}))
        elif role == "appliance":
            out.append(seal(*rng.choice((
                (frames.SNAPSHOT, {"seq": seq, "services": {"svc": dict(_METRICS)}}),
                (frames.DELTA, {"seq": seq + 1, "base_seq": seq, "changes": {"svc": {"load": 7.5}}}),
                (frames.RTT, {"rtt": {"192.0.2.0/24": 4.0, "2001:db8::/48": 9.5}}),
            ))))
        else:
            out.append(seal(*rng.choice((
                (frames.RESYNC, {"seq": seq}),
                (frames.PROBE, {"networks": ["192.0.2.0/24", "2001:db8::/48"]}),
            ))))
    return out


def mutateFrames(frameList: Sequence[bytes], rng: random.Random, maxFrameSize: int) -> Tuple[str, bytes]:
    """
    A byte stream from a peer's frames: as sent, or with one frame mutated
    (bytes, its length, its type, its JSON), replaced by random bytes, or
    followed by an oversize length prefix; or random bytes alone.
    """
    kind = rng.choice(("clean", "bytes", "bytes", "bytes", "length", "type", "json", "random", "oversize", "garbage"))
    stream = list(frameList)
    at = rng.randrange(len(stream))
    frame = bytearray(stream[at])
    if kind == "bytes":
        for _ in range(rng.randint(1, 3)):
            wire = mutateDNS(bytes(frame), rng) if rng.random() < 0.5 else bytes(frame)
            frame = bytearray(wire)
            if frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
    elif kind == "length" and len(frame) >= 4:
        struct.pack_into("!I", frame, 0, rng.choice((0, 1, len(frame) - 5, len(frame) - 3, maxFrameSize,
                                                     maxFrameSize + 1, 0xFFFFFFFF)))
    elif kind == "type" and len(frame) >= 5:
        frame[4] = rng.choice((0, 12, 255, rng.randrange(1, 12)))
    elif kind == "json":
        payload = rng.choice((b"[]", b"{", b"null", b'{"seq": 1e999}', b'{"seq": NaN}', b"\xff\xfe",
                              b'{"versions": [1], "name": "' + b"x" * 300 + b'"}', b"[" * 5000 + b"]" * 5000,
                              b'{"seq": ' + b"9" * 5000 + b"}", json.dumps({"services": {"a": {"load": 101}}}).encode()))
        frame = bytearray(struct.pack("!IB", len(payload) + 1, frame[4] if len(frame) > 4 else 6) + payload)
    elif kind == "random":
        frame = bytearray(rng.randbytes(rng.randrange(64)))
    elif kind == "oversize":
        frame = bytearray(struct.pack("!IB", rng.randrange(maxFrameSize + 1, 1 << 32), 6) + rng.randbytes(16))
    elif kind == "garbage":
        return kind, rng.randbytes(rng.randrange(1, 300))
    stream[at] = bytes(frame)
    return kind, b"".join(stream)


def decoderVerdict(stream: bytes, maxFrameSize: int, key: Optional[bytes] = None) -> Optional[str]:
    """
    The ProtocolError code a reference decoder finds in C{stream} (C{None}:
    every frame sound); with C{key}, frames after the first AUTH must be
    sealed with it.
    """
    decoder = frames.FrameDecoder(maxFrameSize)
    try:
        for frameType, _ in decoder.feed(stream):
            if frameType == frames.AUTH and key is not None and decoder.mac is None:
                decoder.mac = auth.FrameMAC(key)
    except frames.ProtocolError as e:
        return e.code
    return None


def checkMEPSession(verdict: Optional[str], state: str, disconnecting: bool, warnings: int, lost: Sequence[str],
                    delayedCalls: int) -> List[str]:
    """
    The oracle of one fuzzed session, after its input and the end of its
    connection: a malformed frame closes it (ERROR sent, connection
    closing), every close is logged exactly once and an open session not
    at all, the owner hears of the end once, and no timer is left.
    """
    problems = []
    if verdict is not None and state != CLOSED:
        problems.append(f"malformed frame ({verdict}) left the session {state}")
    if state == CLOSED and not disconnecting and verdict is not None:
        problems.append("closed session did not drop its connection")
    if state == CLOSED and warnings != 1:
        problems.append(f"a closed session logged {warnings} warnings, not 1")
    if state != CLOSED and warnings:
        problems.append(f"an open session logged {warnings} warnings")
    if len(lost) != 1:
        problems.append(f"sessionLost called {len(lost)} times")
    if delayedCalls:
        problems.append(f"{delayedCalls} timers left after the connection ended")
    return problems


class LevelCounter:
    """A log observer counting warnings (and worse) per log source."""

    def __init__(self) -> None:
        self.bySource: Dict[int, int] = {}
        self.failures: List[dict] = []

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        if level is None or level < LogLevel.warn:
            return
        source = id(event.get("log_source"))
        self.bySource[source] = self.bySource.get(source, 0) + 1
        if "log_failure" in event and len(self.failures) < 1000:
            self.failures.append(event)

    def take(self, source: object) -> int:
        return self.bySource.pop(id(source), 0)


def runMEP(count: int, seed: int, maxFailures: int) -> PartResult:
    """
    C{count} sessions, each fed one peer's stream (mutated or not) in
    random chunks over a StringTransport, time on a Clock.
    """
    result = PartResult("mep")
    rng = random.Random(seed)
    counter = LevelCounter()
    globalLogPublisher.addObserver(counter)
    started = time.perf_counter()
    slowest = 0.0
    try:
        for _ in range(count):
            role = rng.choice(("appliance", "site"))
            secret = rng.choice((None, b"fuzz-secret"))
            maxFrameSize = rng.choice((frames.DEFAULT_MAX_FRAME_SIZE, 4096))
            clock = Clock()
            handler = _Handler()
            localName = "gslb1" if role == "appliance" else "east"
            peerName = "east" if role == "appliance" else "gslb1"
            session = MEPSession(role=role, localName=localName, secret=secret, clock=clock,
                                 keepaliveInterval=1.0, deadInterval=3.0, handler=handler, maxFrameSize=maxFrameSize)
            transport = StringTransport()
            session.makeConnection(transport)
            sessionNonce = list(frames.FrameDecoder().feed(transport.value()))[0][1]["nonce"]
            peerNonce = auth.newNonce()
            frameList = peerFrames(rng, role, peerName, localName, secret, sessionNonce, peerNonce)
            kind, stream = mutateFrames(frameList, rng, maxFrameSize)
            verdict = decoderVerdict(stream, maxFrameSize, peerKey(role, peerName, localName, secret, sessionNonce, peerNonce))
            began = time.perf_counter()
            escaped = None
            try:
                offset = 0
                while offset < len(stream):
                    step = rng.choice((1, 3, 7, 64, len(stream)))
                    session.dataReceived(stream[offset : offset + step])
                    offset += step
                    clock.advance(rng.choice((0, 0, 0.5)))
            except Exception as e:
                escaped = e
            slowest = max(slowest, time.perf_counter() - began)
            result.inputs += 1
            if escaped is not None:
                result.fail(failureSignature(escaped, escaped.__traceback__), stream,
                            f"{type(escaped).__name__}: {escaped}", maxFailures, role=role)
                continue
            state, disconnecting = session.state, transport.disconnecting
            warnings = counter.take(session)
            session.connectionLost(Failure(netError.ConnectionDone()))
            problems = checkMEPSession(verdict, state, disconnecting, warnings, handler.lost,
                                       len(clock.getDelayedCalls()))
            result.count(f"{kind} " + ("closed: " + (session.reason or "?") if state == CLOSED else state))
            if problems:
                result.fail(problems[0].split("(")[0].strip(), stream, "; ".join(problems), maxFailures,
                            role=role, verdict=verdict)
            if result.failures >= maxFailures:
                result.notes["stopped"] = f"after {maxFailures} failures"
                break
    finally:
        globalLogPublisher.removeObserver(counter)
    result.seconds = time.perf_counter() - started
    result.notes["slowest_session_ms"] = round(slowest * 1000, 2)
    result.notes["internal_errors_logged"] = len(counter.failures)
    if counter.failures:
        result.fail("internal error logged", b"", str(counter.failures[0].get("log_failure"))[:300], maxFailures)
    return result


# ---------------------------------------------------------------------------
# AMP: boxes, mutated (shared by parts d and e).


def boxBytes(command, **arguments) -> bytes:
    """The bytes a peer writes to call C{command} (a fresh ask tag each time)."""
    client = amp.AMP()
    transport = StringTransport()
    client.makeConnection(transport)
    asked = client.callRemote(command, **arguments)
    if asked is not None:  # (None: a command that wants no answer)
        asked.addErrback(lambda _: None)
    data = transport.value()
    client.connectionLost(Failure(netError.ConnectionDone()))
    return data


def rawBox(pairs: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """An AMP box from raw key/value pairs, lengths as given (keys or values may be too long)."""
    out = b"".join(struct.pack("!H", len(k) & 0xFFFF) + k + struct.pack("!H", len(v) & 0xFFFF) + v for k, v in pairs)
    return out + b"\x00\x00"


def mutateBox(box: bytes, rng: random.Random) -> bytes:
    """One mutation of an AMP byte stream: a byte, a length, a value, a key, or a cut."""
    data = bytearray(box)
    kind = rng.choice(("flip", "set", "cut", "insert", "delete", "length", "value"))
    size = len(data)
    position = rng.randrange(size) if size else 0
    if kind == "flip" and size:
        data[position] ^= 1 << rng.randrange(8)
    elif kind == "set" and size:
        data[position] = rng.choice((0, 0xFF, rng.randrange(256)))
    elif kind == "cut":
        del data[position:]
    elif kind == "insert":
        data[position:position] = rng.randbytes(rng.randint(1, 6))
    elif kind == "delete" and size:
        del data[position : position + rng.randint(1, 3)]
    elif kind == "length" and size >= 2:
        struct.pack_into("!H", data, min(position, size - 2), rng.choice((0, 1, 255, 256, 0xFFFF)))
    elif kind == "value":
        data[position:position] = rng.choice((b"-1", b"1e999", b"\xff\xfe", b"True", b"x" * 300, b"99999999999999999999999"))
    return bytes(data)


def ampInput(valid: Sequence[bytes], extra: Sequence[bytes], rng: random.Random) -> Tuple[str, bytes]:
    """
    One AMP input: a valid box mutated (one to three times), a hand-made
    box (unknown command, bad types, huge values, stray answers), or random
    bytes; sometimes a valid box first.
    """
    roll = rng.random()
    if roll < 0.55:
        data = rng.choice(valid)
        for _ in range(rng.randint(1, 3)):
            data = mutateBox(data, rng)
        kind = "mutated"
    elif roll < 0.85:
        data = rng.choice(extra)
        kind = "crafted"
    else:
        data = rng.randbytes(rng.randrange(1, 200))
        kind = "random"
    if rng.random() < 0.2:
        data = rng.choice(valid) + data
    return kind, data


def craftedBoxes(commandNames: Sequence[bytes]) -> List[bytes]:
    """Boxes no honest peer sends: unknown commands, bad argument types, huge values, stray answers."""
    huge = b"x" * 0xFFFF
    boxes = [
        rawBox([(b"_command", b"NoSuchCommand"), (b"_ask", b"1")]),
        rawBox([(b"_command", b"NoSuchCommand")]),
        rawBox([(b"_answer", b"424242")]),
        rawBox([(b"_error", b"424242"), (b"_error_code", b"X"), (b"_error_description", b"y")]),
        rawBox([(b"_error", b"1")]),
        rawBox([(b"_ask", b"7")]),
        rawBox([]),
        rawBox([(b"k" * 256, b"v")]),
        rawBox([(b"_command", huge[:255]), (b"_ask", b"2")]),
    ]
    for name in commandNames:
        for ask in (b"", b"9"):
            prefix = [(b"_command", name)] + ([(b"_ask", ask)] if ask else [])
            boxes += [
                rawBox(prefix),
                rawBox(prefix + [(b"core", b"zero"), (b"pid", b"-"), (b"topic", b"\xff"), (b"body", huge)]),
                rawBox(prefix + [(b"core", b"99999999999999999999"), (b"site", b"x" * 1000), (b"takeover", b"maybe")]),
                rawBox(prefix + [(b"event", b"{not json"), (b"epoch", b"1.5"), (b"target", b"-7")]),
                rawBox(prefix + [(b"name", b"\xff\xfe"), (b"lbMethod", b""), (b"qtype", b"A" * 70000)]),
                rawBox(prefix + [(b"event", json.dumps({"log_format": "{", "log_level": 5, "log_time": "now"}).encode())]),
                rawBox(prefix + [(b"event", b"[1, 2]"), (b"body.1", b"orphan chunk")]),
            ]
    return boxes


# ---------------------------------------------------------------------------
# Part d: AMP from a misbehaving core.


class _FakeProcess:
    """A spawned core as the supervisor sees it: writes to its pipes are kept."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written: List[Tuple[int, bytes]] = []

    def signalProcess(self, name: str) -> None:
        pass

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def closeChildFD(self, fd: int) -> None:
        pass


class _FakeProcessReactor(MemoryReactorClock):
    """A reactor whose spawnProcess makes L{_FakeProcess}es: no real process runs."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: List[Tuple[object, _FakeProcess]] = []

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, uid=None, gid=None, usePTY=0,
                     childFDs=None):
        process = _FakeProcess(10000 + len(self.spawned))
        self.spawned.append((protocol, process))
        protocol.makeConnection(process)
        return process


def makeMonitor(cores: int = 3):
    """A supervisor of fake cores, every one ready (as the unit tests of the supervisor build it)."""
    reactor = _FakeProcessReactor()
    monitor = CoreMonitor(reactor, cores, lambda core: ["python", "core", str(core)], extraFDs=dict,
                          policy=RespawnPolicy(minDelay=0.1, maxDelay=0.5, threshold=0.01, killTime=1.0), env={},
                          sites=("east", "west"), topology=fuzzTopology())
    monitor.startService()
    for slot in monitor.slots:
        slot.protocol.childDataReceived(CHILD_AMP_OUT, boxBytes(commands.CoreReady, core=slot.core, pid=slot.pid))
    return reactor, monitor


def boxesWritten(process: _FakeProcess) -> List[amp.AmpBox]:
    data = b"".join(chunk for fd, chunk in process.written if fd == CHILD_AMP_IN)
    return amp.parse(io.BytesIO(data))


def supervisorServes(reactor: _FakeProcessReactor, monitor: CoreMonitor, sender: int, receiver: int) -> List[str]:
    """
    The supervisor still serves its healthy cores: a Publish of C{sender}
    reaches C{receiver}, and C{show cores} gets its answer.
    """
    problems = []
    senderSlot, receiverSlot = monitor.slots[sender], monitor.slots[receiver]
    if senderSlot.protocol is None or receiverSlot.protocol is None:
        return [f"core {sender} or {receiver} is gone"]
    process = receiverSlot.process
    process.written.clear()
    body = b"still-relayed-%d" % reactor.seconds()
    senderSlot.protocol.childDataReceived(CHILD_AMP_OUT, boxBytes(commands.Publish, topic="probe", body=body))
    if not any(box.get(b"body") == body for box in boxesWritten(process)):
        problems.append(f"core {sender}'s Publish did not reach core {receiver}")
    rows = monitor.describeCores(timeout=1.0)
    reactor.advance(1.5)
    got = []
    rows.addBoth(got.append)
    if not got or not isinstance(got[0], list) or len(got[0]) != len(monitor.slots):
        problems.append(f"show cores gave {got!r}")
    for slot in monitor.slots:
        if slot.process is not None:
            slot.process.written.clear()
    return problems


def runAMP(count: int, seed: int, maxFailures: int, checkEvery: int = 200) -> PartResult:
    """
    C{count} inputs on core 0's AMP pipe; core 0 is respawned after each
    (what a real supervisor would do after the core crashed or was
    killed), and every C{checkEvery} inputs cores 1 and 2 must still be
    served.
    """
    result = PartResult("amp")
    rng = random.Random(seed)
    reactor, monitor = makeMonitor(3)
    names = [c.commandName for c in (commands.CoreReady, commands.Publish, commands.Hello, commands.ClaimSite,
                                     commands.ReleaseSite, commands.LogEvent)]
    valid = [
        boxBytes(commands.CoreReady, core=0, pid=1234),
        boxBytes(commands.Publish, topic="metrics.delta", body=b'{"site":"east","seq":2}'),
        boxBytes(commands.Publish, topic="t", body=b"b", target=1),
        boxBytes(commands.Publish, topic="big", body=b"z" * 130000),
        boxBytes(commands.Hello, core=0),
        boxBytes(commands.ClaimSite, site="east", takeover=True),
        boxBytes(commands.ClaimSite, site="nowhere", takeover=False),
        boxBytes(commands.ReleaseSite, site="east", epoch=1),
        boxBytes(commands.LogEvent, event=json.dumps({"log_format": "hello {who}", "who": "x", "log_namespace": "c"})),
        boxBytes(commands.LogEvent, event=json.dumps({"log_format": "site {site} is DOWN ({reason})", "site": "east",
                                                      "reason": "r", "log_level": {"__class_uuid__": "x"}})),
    ]
    extra = craftedBoxes(names)
    counter = LevelCounter()
    globalLogPublisher.addObserver(counter)
    started = time.perf_counter()
    try:
        for index in range(count):
            kind, data = ampInput(valid, extra, rng)
            slot = monitor.slots[0]
            protocol = slot.protocol
            try:
                offset = 0
                while offset < len(data):
                    step = rng.choice((1, 5, 64, len(data)))
                    protocol.childDataReceived(CHILD_AMP_OUT, data[offset : offset + step])
                    offset += step
                reactor.advance(0)
                result.count(kind + " absorbed")
            except Exception as e:
                result.count(kind + " raised")
                result.fail(failureSignature(e, e.__traceback__), data, f"{type(e).__name__}: {e}", maxFailures)
            result.inputs += 1
            # Core 0 ends (as the real one would, its pipe garbled) and is respawned.
            protocol.processEnded(Failure(netError.ProcessTerminated(signal=9)))
            reactor.advance(1.0)
            if monitor.slots[0].protocol is None:
                result.fail("core 0 not respawned", data, "no new core 0 after its end", maxFailures)
                break
            monitor.slots[0].protocol.childDataReceived(
                CHILD_AMP_OUT, boxBytes(commands.CoreReady, core=0, pid=monitor.slots[0].pid))
            if index % checkEvery == checkEvery - 1 or index == count - 1:
                for problem in supervisorServes(reactor, monitor, 1, 2):
                    result.fail("supervisor stopped serving", data, problem, maxFailures)
            if result.failures >= maxFailures:
                result.notes["stopped"] = f"after {maxFailures} failures"
                break
    finally:
        globalLogPublisher.removeObserver(counter)
    result.seconds = time.perf_counter() - started
    result.notes["errors_logged"] = len(counter.failures)
    result.notes["restarts_of_core_0"] = monitor.slots[0].restarts
    monitor.stopService()
    return result


# ---------------------------------------------------------------------------
# Part e: the control protocol.


def controlBoxes() -> List[bytes]:
    """A valid call of every console command, as gslb-console sends it."""
    return [
        boxBytes(commands.ShowCores), boxBytes(commands.Subscribe), boxBytes(commands.Unsubscribe),
        boxBytes(commands.ShowSites), boxBytes(commands.ShowSites, name="east"),
        boxBytes(commands.ShowServices, name="east-web"), boxBytes(commands.ShowMEP),
        boxBytes(commands.ShowMetrics, site="east", core=0), boxBytes(commands.ShowConsistency),
        boxBytes(commands.ShowVServers, name="www"), boxBytes(commands.StatVServers),
        boxBytes(commands.StatServices, name="east-web"), boxBytes(commands.StatCores), boxBytes(commands.StatDNS),
        boxBytes(commands.Resolve, name="www.fuzz.gslb", qtype="AAAA", client="192.0.2.1", core=1),
        boxBytes(commands.SetVServer, name="www", lbMethod="LEASTCONNECTION"),
        boxBytes(commands.EnableService, name="east-web"), boxBytes(commands.DisableService, name="west-web"),
    ]


def unanswered(sent: bytes, written: bytes) -> Optional[List[bytes]]:
    """
    The ask tags of the commands in C{sent} that C{written} does not
    answer; C{None} when C{sent} does not parse as whole boxes (then
    nothing can be said of it).
    """
    try:
        asked = [box[b"_ask"] for box in amp.parse(io.BytesIO(sent)) if b"_ask" in box and b"_command" in box]
    except Exception:
        return None
    try:
        answers = {box.get(b"_answer", box.get(b"_error")) for box in amp.parse(io.BytesIO(written))}
    except Exception:
        return asked
    return [tag for tag in asked if tag not in answers]


def runControl(count: int, seed: int, maxFailures: int, checkEvery: int = 200) -> PartResult:
    """
    C{count} console connections, each sending one (mutated) input; time
    is advanced past every timeout; each must end with every sound command
    answered or the connection dropped, and the endpoint still answers
    C{show cores}.
    """
    result = PartResult("control")
    rng = random.Random(seed)
    reactor, monitor = makeMonitor(2)
    valid = controlBoxes()
    commandNames = [c.commandName for c in (commands.ShowCores, commands.ShowSites, commands.Resolve,
                                            commands.SetVServer, commands.EnableService, commands.ShowMetrics,
                                            commands.Subscribe, commands.StatDNS)]
    extra = craftedBoxes(commandNames)
    counter = LevelCounter()
    globalLogPublisher.addObserver(counter)
    started = time.perf_counter()
    try:
        for index in range(count):
            kind, data = ampInput(valid, extra, rng)
            protocol = ControlProtocol(monitor)
            transport = StringTransport()
            protocol.makeConnection(transport)
            escaped = None
            try:
                protocol.dataReceived(data)
                reactor.advance(6.0)  # past every timeout of a command (cores never answer here)
            except Exception as e:
                escaped = e
            result.inputs += 1
            if escaped is not None:
                result.count(kind + " raised")
                result.fail(failureSignature(escaped, escaped.__traceback__), data,
                            f"{type(escaped).__name__}: {escaped}", maxFailures)
            else:
                missing = unanswered(data, transport.value())
                result.count(kind + (" dropped" if transport.disconnecting else " answered"))
                if missing and not transport.disconnecting:
                    result.fail("command never answered", data, f"asks {missing} unanswered", maxFailures)
            try:
                protocol.connectionLost(Failure(netError.ConnectionDone()))
            except Exception as e:
                result.fail(failureSignature(e, e.__traceback__), data, f"connectionLost: {type(e).__name__}: {e}",
                            maxFailures)
            for slot in monitor.slots:
                if slot.process is not None:
                    slot.process.written.clear()
            if index % checkEvery == checkEvery - 1 or index == count - 1:
                for problem in controlServes(reactor, monitor):
                    result.fail("control endpoint stopped serving", data, problem, maxFailures)
            if result.failures >= maxFailures:
                result.notes["stopped"] = f"after {maxFailures} failures"
                break
    finally:
        globalLogPublisher.removeObserver(counter)
    result.seconds = time.perf_counter() - started
    result.notes["errors_logged"] = len(counter.failures)
    result.notes["subscribers_left"] = len(getattr(monitor.events, "_subscribers", ()) or ())
    monitor.stopService()
    return result


def controlServes(reactor: _FakeProcessReactor, monitor: CoreMonitor) -> List[str]:
    """A fresh console connection still gets C{show cores} answered."""
    protocol = ControlProtocol(monitor)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(boxBytes(commands.ShowCores))
    reactor.advance(2.0)
    protocol.connectionLost(Failure(netError.ConnectionDone()))
    boxes = amp.parse(io.BytesIO(transport.value()))
    if not boxes or b"cores" not in boxes[0]:
        return [f"show cores got {boxes!r}"[:200]]
    return []


# ---------------------------------------------------------------------------
# The command.


def parseArguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dns-packets", type=int, default=1_000_000, help="inputs through Authority.respond")
    parser.add_argument("--wire-packets", type=int, default=100_000, help="inputs over UDP to a real appliance")
    parser.add_argument("--wire-tcp", type=int, default=3000, help="inputs over TCP to a real appliance")
    parser.add_argument("--mep-frames", type=int, default=100_000, help="fuzzed MEP sessions (streams)")
    parser.add_argument("--amp-boxes", type=int, default=20_000, help="inputs on a core's AMP pipe")
    parser.add_argument("--control-boxes", type=int, default=20_000, help="inputs on console connections")
    parser.add_argument("--trace-packets", type=int, default=40_000,
                        help="DNS inputs traced with tracemalloc after the run (0: no trace)")
    parser.add_argument("--max-growth-kib", type=int, default=4096,
                        help="traced memory the DNS part may keep over --trace-packets")
    parser.add_argument("--seed", type=int, default=1, help="makes a run reproducible")
    parser.add_argument("--max-failures", type=int, default=25, help="stop a part after this many failing inputs")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: " + ",".join(PARTS))
    parser.add_argument("--results", default=RESULTS, help="directory for the JSON and the appliance log")
    options = parser.parse_args(argv)
    options.skip = {part.strip() for part in options.skip.split(",") if part.strip()}
    unknown = options.skip - set(PARTS)
    if unknown:
        parser.error(f"--skip: unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")
    for name in ("dns_packets", "wire_packets", "wire_tcp", "mep_frames", "amp_boxes", "control_boxes",
                 "max_failures"):
        if getattr(options, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    return options


def summaryTable(results: Sequence[PartResult]) -> str:
    from benchmarks.dns_qps import renderTable

    rows = []
    for r in results:
        verdict = "skipped" if r.skipped else ("ERROR" if r.error else ("PASS" if r.passed else "FAIL"))
        rows.append([r.part, verdict, f"{r.inputs:,}", f"{r.seconds:.1f}", f"{r.rate():,.0f}", str(r.failures)])
    return renderTable(["part", "result", "inputs", "seconds", "inputs/s", "failures"], rows)


def describe(r: PartResult) -> str:
    """The counts, notes and failures of one part, as text."""
    lines = [f"[{r.part}]"]
    if r.error:
        lines.append(f"  error: {r.error}")
    for outcome, n in sorted(r.outcomes.items(), key=lambda item: -item[1]):
        lines.append(f"  {outcome:<40} {n:>10,}")
    for key, value in r.notes.items():
        if key not in ("cores_before", "cores_after"):
            lines.append(f"  {key}: {value}")
    for signature, n in sorted(r.signatures.items(), key=lambda item: -item[1]):
        lines.append(f"  FAILURE x{n}: {signature}")
    for example in r.examples[:5]:
        lines.append(f"    {example['detail'][:200]}")
        lines.append(f"    input: {example['hex'][:400]}")
    return "\n".join(lines)


def run(options: argparse.Namespace, argv: Sequence[str]) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(options.results, exist_ok=True)
    # The parts' log events are counted by their own observers; nothing is
    # written anywhere else (the fuzzed sessions log by the thousand).
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False, discardBuffer=True)
    command = f"{sys.executable} -m benchmarks.fuzz {' '.join(argv)}".rstrip()
    started = time.time()
    results: List[PartResult] = []
    plan = [
        ("dns", lambda: runDNS(options.dns_packets, options.seed, options.max_failures, options.trace_packets,
                               options.max_growth_kib)),
        ("wire", lambda: runWire(options.wire_packets, options.wire_tcp, options.seed, options.max_failures,
                                 options.results)),
        ("mep", lambda: runMEP(options.mep_frames, options.seed, options.max_failures)),
        ("amp", lambda: runAMP(options.amp_boxes, options.seed, options.max_failures)),
        ("control", lambda: runControl(options.control_boxes, options.seed, options.max_failures)),
    ]
    for part, go in plan:
        if part in options.skip:
            results.append(PartResult(part, skipped=True))
            continue
        print(f"{part}: running", flush=True)
        try:
            result = go()
        except Exception as e:  # a harness bug: reported as the part's error, the other parts still run
            result = PartResult(part, error=f"{failureSignature(e, e.__traceback__)}: {e}")
        results.append(result)
        print(describe(result), flush=True)
    text = summaryTable(results)
    revision = os.popen(f"git -C {REPO} rev-parse --short HEAD 2>/dev/null").read().strip() or None
    text += f"\n\ncommand: {command}\ncommit: {revision}\nseed: {options.seed}"
    print("\n" + text)
    from benchmarks.dns_qps import machine

    document = {
        "benchmark": "fuzz",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "command": command,
        "commit": revision,
        "machine": machine(),
        "options": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(options).items()},
        "parts": [dict(asdict(r), passed=r.passed) for r in results],
        "report": text,
    }
    path = os.path.join(options.results, f"fuzz-{stamp}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, default=str)
        f.write("\n")
    print(f"results: {os.path.relpath(path, os.getcwd())}")
    failed = any(not r.passed for r in results if not r.skipped)
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    raise SystemExit(run(parseArguments(argv), argv))


if __name__ == "__main__":
    main()
