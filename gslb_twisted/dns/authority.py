"""
The DNS answering engine of one core: bytes of a query in, bytes of a reply
out (or C{None} to drop), no reactor.

L{Authority.fromTopology} precomputes everything a query can need: the
names of every zone (vserver domains, in-zone name servers, the empty
non-terminals above them), SOA and NS records, and, for the fast path
(L{gslb_twisted.dns.wire.answerFast}), the answer-section bytes of every
answer a vserver can give.  L{Authority.respond} tries the fast path, then
the slow path, which reads the query with the strict scanner of
L{gslb_twisted.dns.wire} and builds the reply with dnslib.

How a vserver's answer is chosen lives in L{VServerAnswers}: the set of
answers it can give is fixed when it is built (so the bytes can be
prebuilt), and L{VServerAnswers.choose} picks one per query.

ANY queries get every record the name has (SOA and NS at an apex, the
chosen A and AAAA of a vserver, a name server's address), not the RFC 8482
minimal answer: the sets are tiny and GSLB operators use ANY to look.
"""

from __future__ import annotations

import time
from typing import Mapping, Optional, Sequence

from dnslib import AAAA, EDNS0, NS, RR, SOA, A, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNSOption

from gslb_twisted.config import Service, Topology, VServer, Zone
from gslb_twisted.dns.wire import (
    CLASS_IN,
    CLASSIC_PAYLOAD,
    COPIED_FLAGS,
    FLAG_AA,
    FLAG_QR,
    FLAG_TC,
    HEADER,
    OPCODE_MASK,
    OPTION_CLIENT_SUBNET,
    QTYPE_A,
    QTYPE_AAAA,
    QTYPE_ANY,
    QTYPE_AXFR,
    QTYPE_IXFR,
    QTYPE_NS,
    QTYPE_OPT,
    QTYPE_SOA,
    SERVER_PAYLOAD,
    TCP_LIMIT,
    ClientSubnet,
    FastPlan,
    MalformedMessage,
    Question,
    ScannedMessage,
    addressRdata,
    answerFast,
    answerSection,
    fastKey,
    parseClientSubnet,
    scanMessage,
    wireLabels,
    wireName,
)
from gslb_twisted.dns.rrl import DROP as RRL_DROP, SLIP as RRL_SLIP, questionBytes, truncated as truncatedReply
from gslb_twisted.lb.choosers import Rotating
from gslb_twisted.lb.roundrobin import answerSets, smoothWeightedOrder

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16  # an extended RCODE: 0 in the header, 1 in the OPT record


class AnswerBook:
    """
    Every answer one vserver has given for one record type: the services,
    their addresses and the prebuilt answer-section bytes, by index.  A
    chooser returns an index; L{indexOf} adds an answer the first time it is
    chosen.  Addresses never change at run time, so a book only grows (and
    starts over past C{limit} answers, its chooser being rebuilt).
    """

    __slots__ = (
        "rdtype", "ttl", "addressOf", "services", "addresses", "templates", "counts", "hits", "_index", "limit",
        "retired", "retiredHits",
    )

    # Two per vserver, a thousand vservers: no instance dict.
    __slots__ = ("rdtype", "ttl", "addressOf", "limit", "services", "templates", "counts", "hits", "retired",
                 "retiredHits", "_index")

    def __init__(self, rdtype: int, ttl: int, addressOf: Mapping[str, str], limit: int = 4096) -> None:
        self.rdtype = rdtype
        self.ttl = ttl
        self.addressOf = addressOf
        self.limit = limit
        self.services: list[tuple[str, ...]] = []
        self.templates: list[bytes] = []
        self.counts: list[int] = []
        # How often each answer was given (the hot path adds 1), and what
        # answers a cleared book had given: per service.
        self.hits: list[int] = []
        self.retired: dict[str, int] = {}
        self.retiredHits = 0
        self._index: dict[tuple[str, ...], int] = {}

    def indexOf(self, services: tuple[str, ...]) -> int:
        index = self._index.get(services)
        if index is not None:
            return index
        addresses = tuple(self.addressOf[name] for name in services)
        index = len(self.services)
        self.services.append(services)
        self.templates.append(answerSection(self.rdtype, self.ttl, addresses))
        self.counts.append(len(addresses))
        self.hits.append(0)
        self._index[services] = index
        return index

    def addressesAt(self, index: int) -> tuple[str, ...]:
        """The addresses of answer C{index} (the slow path's; the fast path has its template)."""
        return tuple(self.addressOf[name] for name in self.services[index])

    def answersPerService(self) -> dict[str, int]:
        """How often each service was in an answer (cumulative)."""
        answers = dict(self.retired)
        for services, hits in zip(self.services, self.hits):
            if hits:
                for name in services:
                    answers[name] = answers.get(name, 0) + hits
        return answers

    def totalHits(self) -> int:
        return sum(self.hits) + self.retiredHits

    def full(self) -> bool:
        return len(self.services) > self.limit

    def clear(self) -> None:
        # New lists: a fast plan still holding the old ones stays valid.
        self.retired = self.answersPerService()
        self.retiredHits = self.totalHits()
        self.services, self.templates, self.counts, self.hits = [], [], [], []
        self._index = {}


def servicesByFamily(serviceByName: Mapping[str, Service]) -> dict[int, dict[str, str]]:
    """Every service's address, by address family (4 or 6)."""
    byFamily: dict[int, dict[str, str]] = {4: {}, 6: {}}
    for service in serviceByName.values():
        byFamily[service.family][service.name] = service.ip
    return byFamily


class VServerAnswers:
    """
    The answers one vserver can give, per record type (A, AAAA), and the
    choice among them.

    Per record type there is an L{AnswerBook} and a chooser (see
    L{gslb_twisted.lb.choosers}) picking an index into it per query; or an
    RCODE to answer instead (SERVFAIL as a down response); or neither: NODATA.
    Until a plan is applied, a vserver answers weighted round robin over
    its bound services of the asked family.

    @ivar name: the vserver's name.
    @ivar ttl: the TTL of its address records.
    @ivar books: per record type, its L{AnswerBook}.
    @ivar choosers: per record type with addresses to give, its chooser.
    """

    __slots__ = ("name", "ttl", "answersPerReply", "domains", "failures", "books", "choosers", "_plainSets")

    def __init__(
        self,
        name: str,
        ttl: int,
        answersPerReply: int,
        candidates: Mapping[int, Sequence[tuple[str, str, int]]],
    ) -> None:
        """
        @param candidates: per record type, C{(service name, address,
            weight)} of each bound service of that family, in binding order.
        """
        self.name = name
        self.ttl = ttl
        self.answersPerReply = answersPerReply
        self.domains: tuple[str, ...] = ()
        self.failures: dict[int, int] = {}
        self.books: dict[int, AnswerBook] = {}
        self.choosers: dict[int, object] = {}
        self._plainSets: dict[int, tuple] = {}
        for rdtype, bound in candidates.items():
            addressOf = {service: address for service, address, _ in bound}
            self.books[rdtype] = AnswerBook(rdtype, ttl, addressOf)
            if not bound:
                continue
            order = smoothWeightedOrder([weight for _, _, weight in bound])
            sets = tuple(tuple(bound[i][0] for i in chosen) for chosen in answerSets(order, answersPerReply))
            self.choosers[rdtype] = Rotating(sets, self.books[rdtype].indexOf)
            self._plainSets[rdtype] = sets

    @classmethod
    def fromVServer(
        cls,
        vserver: VServer,
        serviceByName: Mapping[str, Service],
        addressByFamily: Optional[Mapping[int, Mapping[str, str]]] = None,
    ) -> "VServerAnswers":
        """
        @param addressByFamily: every service's address by family (4, 6),
            shared read-only by every vserver's books; made here if not given.
        """
        if addressByFamily is None:
            addressByFamily = servicesByFamily(serviceByName)
        candidates: dict[int, list[tuple[str, str, int]]] = {QTYPE_A: [], QTYPE_AAAA: []}
        for binding in vserver.services:
            service = serviceByName[binding.name]
            rdtype = QTYPE_A if service.family == 4 else QTYPE_AAAA
            candidates[rdtype].append((service.name, service.ip, binding.weight))
        answers = cls(vserver.name, vserver.ttl, vserver.answers, candidates)
        answers.domains = vserver.domains
        # A backup vserver's services answer for this one too: the books
        # know every service of their family.
        for rdtype, book in answers.books.items():
            book.addressOf = addressByFamily[4 if rdtype == QTYPE_A else 6]
        return answers

    @property
    def addressSets(self) -> dict[int, tuple[tuple[str, ...], ...]]:
        """Per record type, the answers of a rotating chooser (tests, inspection)."""
        result = {}
        for rdtype, chooser in self.choosers.items():
            sets = getattr(chooser, "sets", None)
            if sets is not None:
                book = self.books[rdtype]
                result[rdtype] = tuple(tuple(book.addressOf[name] for name in chosen) for chosen in sets)
        return result

    @property
    def serviceSets(self) -> dict[int, tuple[tuple[str, ...], ...]]:
        return {rdtype: chooser.sets for rdtype, chooser in self.choosers.items() if hasattr(chooser, "sets")}

    def setChooser(self, rdtype: int, chooser, failure: Optional[int]) -> None:
        """
        Answer C{rdtype} from now on through C{chooser} (built on this
        vserver's book for the type); or, with C{failure}, that RCODE; with
        neither, NODATA.
        """
        self._plainSets.pop(rdtype, None)
        if failure is None:
            self.failures.pop(rdtype, None)
        else:
            self.failures[rdtype] = failure
        if chooser is not None and failure is None:
            self.choosers[rdtype] = chooser
        else:
            self.choosers.pop(rdtype, None)

    def applyPlan(self, rdtype: int, sets: Sequence[tuple[str, ...]], addressOf: Mapping[str, str], failure: Optional[int]) -> bool:
        """
        Answer C{rdtype} from now on with these sets of services (rotating),
        or, with C{failure} (an RCODE), with that RCODE and no answer.
        An empty C{sets} without C{failure} answers NODATA.

        @return: whether anything changed.
        """
        serviceSets = tuple(tuple(s) for s in sets)
        if self._plainSets.get(rdtype, ()) == serviceSets and self.failures.get(rdtype) == failure and (
            serviceSets or rdtype not in self.choosers
        ):
            return False
        book = self.books.setdefault(rdtype, AnswerBook(rdtype, self.ttl, addressOf))
        chooser = Rotating(serviceSets, book.indexOf) if serviceSets and failure is None else None
        self.setChooser(rdtype, chooser, failure)
        if chooser is not None:
            self._plainSets[rdtype] = serviceSets
        return True

    def tailored(self, qtype: int) -> bool:
        """Whether the answer to C{qtype} depends on the client."""
        return any(
            chooser.tailored for rdtype, chooser in self.choosers.items() if qtype == rdtype or qtype == QTYPE_ANY
        )

    def choose(self, rdtype: int, clientAddress: str) -> int:
        """
        Which of C{books[rdtype]} to answer with now.

        @param clientAddress: the effective client: the EDNS Client Subnet
            address when the query carried one with a nonzero prefix, else
            the query's source address.
        """
        return self.choosers[rdtype].choose(rdtype, clientAddress)

    def __repr__(self) -> str:
        return f"<VServerAnswers {self.name}>"


class _ZoneRecords:
    """A zone's prebuilt records (owner names lower case)."""

    __slots__ = ("zone", "apex", "soa", "negativeSOA", "ns", "glue")

    def __init__(self, zone: Zone, glue: Sequence[RR]) -> None:
        self.zone = zone
        self.apex = DNSLabel(wireLabels(zone.name))
        self.soa = SOA(
            DNSLabel(wireLabels(zone.ns[0])),
            DNSLabel(wireLabels(zone.soa_rname)),
            (zone.soa_serial, zone.soa_refresh, zone.soa_retry, zone.soa_expire, zone.soa_minimum),
        )
        # RFC 2308 3: a negative answer's SOA lives no longer than MINIMUM.
        self.negativeSOA = RR(self.apex, QTYPE_SOA, CLASS_IN, min(zone.ttl, zone.soa_minimum), self.soa)
        self.ns = tuple(NS(DNSLabel(wireLabels(name))) for name in zone.ns)
        self.glue = tuple(glue)


class _Node:
    """
    A name that exists in a zone.  With no vserver, no host address and not
    the apex, it is an empty non-terminal: it exists, with no records.

    @ivar host: C{(rdtype, rdata)} of an in-zone name server's address.
    """

    __slots__ = ("zone", "isApex", "vserver", "host")

    def __init__(self, zone: _ZoneRecords) -> None:
        self.zone = zone
        self.isApex = False
        self.vserver: Optional[VServerAnswers] = None
        self.host: Optional[tuple[int, object]] = None


def _rdata(rdtype: int, packed: bytes):
    return A(tuple(packed)) if rdtype == QTYPE_A else AAAA(tuple(packed))


def _apexOf(name: bytes, apexes: Mapping[bytes, object]) -> Optional[bytes]:
    """
    The apex among C{apexes} (wire names) that wire name C{name} is in, or
    C{None}.  Zones do not nest (the loader refuses it), so there is one.
    """
    offset = 0
    while name[offset]:
        if name[offset:] in apexes:
            return name[offset:]
        offset += name[offset] + 1
    return None


def _ancestors(name: bytes, apex: bytes) -> list[bytes]:
    """The wire names strictly between C{name} and its zone's C{apex}."""
    found = []
    offset = name[0] + 1
    while len(name) - offset > len(apex):
        found.append(name[offset:])
        offset += name[offset] + 1
    return found


class Authority:
    """
    Answers DNS queries for the zones of a topology.

    @ivar queries: every query received, answered or not.
    @ivar fastAnswers: queries the fast path answered.
    @ivar fastTable: the fast path's plans by question bytes (see
        L{gslb_twisted.dns.wire.answerFast}), or C{None} without a fast path.
    @ivar vservers: L{VServerAnswers} by vserver name.
    """

    def __init__(
        self,
        zones: Mapping[bytes, _ZoneRecords],
        names: Mapping[bytes, _Node],
        vservers: Mapping[str, VServerAnswers],
        fastTable: Optional[Mapping[bytes, FastPlan]],
    ) -> None:
        self._zones = zones
        self._names = names
        self.vservers = vservers
        self.fastTable = fastTable
        self.queries = 0
        # Fast-path replies are all NOERROR; counting them apart keeps a
        # dictionary update off the hot path.
        self.fastAnswers = 0
        self._slowRcodes = {NOERROR: 0, FORMERR: 0, SERVFAIL: 0, NXDOMAIN: 0, NOTIMP: 0, REFUSED: 0, BADVERS: 0}
        self.bytesIn = 0
        self.bytesOut = 0
        self.dropped = 0  # queries given no reply (unreadable header, a response)
        self.truncated = 0  # replies sent with TC set
        self.tcpRefused = 0  # TCP connections closed for being over a limit
        # Slow-path queries by QTYPE (the fast path's are its answer books' hits).
        self.slowTypes: dict[int, int] = {}
        # Slow-path answers also counted in an answer book (per record type).
        self.slowBookHits: dict[int, int] = {}
        # Response rate limiting (L{gslb_twisted.dns.rrl}), off by default;
        # C{clock} is what it measures time with.
        self.rrl = None
        self.clock = time.monotonic

    @property
    def rcodes(self) -> dict[int, int]:
        """Replies sent, by RCODE (BADVERS as 16)."""
        counts = dict(self._slowRcodes)
        counts[NOERROR] += self.fastAnswers
        return counts

    @classmethod
    def fromTopology(cls, topology: Topology, fastPath: bool = True) -> "Authority":
        """
        Precompute the answers for C{topology}.  C{fastPath=False} answers
        everything through the slow path (to compare the two).
        """
        hostType, hostPacked = addressRdata(topology.appliance.ip)
        zoneNames = {wireName(zone.name): zone for zone in topology.zones}
        # One map per family for all the books (a copy per vserver was
        # services x vservers entries: 4 M and 40 MB at 20,000 x 100).
        addressByFamily = servicesByFamily(topology.serviceByName)
        vservers = {
            vserver.name: VServerAnswers.fromVServer(vserver, topology.serviceByName, addressByFamily)
            for vserver in topology.vservers
        }
        # A vserver may answer with its backup chain's answers: bound the
        # fast path's reply size by the largest answer count in the chain.
        for vserver in topology.vservers:
            seen, current = set(), vserver
            while current is not None and current.name not in seen:
                seen.add(current.name)
                vservers[vserver.name].answersPerReply = max(vservers[vserver.name].answersPerReply, current.answers)
                current = topology.vserverByName.get(current.backup_vserver) if current.backup_vserver else None
        vserverOf = {wireName(domain): vservers[v.name] for v in topology.vservers for domain in v.domains}
        # In-zone name servers get the appliance's address, unless a vserver
        # already answers for that name.
        hosts = {}
        for zone in topology.zones:
            for nsName in zone.ns:
                key = wireName(nsName)
                if _apexOf(key, zoneNames) is not None and key not in vserverOf:
                    hosts[key] = nsName
        zones = {}
        for key, zone in zoneNames.items():
            glue = [
                RR(DNSLabel(wireLabels(nsName)), hostType, CLASS_IN, zone.ttl, _rdata(hostType, hostPacked))
                for nsName in zone.ns
                if wireName(nsName) in hosts
            ]
            zones[key] = _ZoneRecords(zone, glue)

        # Every name that exists: apexes, vserver domains, in-zone name
        # servers, and the empty non-terminals between them and their apex.
        # (The loader guarantees every vserver domain is inside a zone.)
        names: dict[bytes, _Node] = {key: _Node(zone) for key, zone in zones.items()}
        for key in zones:
            names[key].isApex = True
        for key in list(vserverOf) + list(hosts):
            zone = zones[_apexOf(key, zoneNames)]
            names.setdefault(key, _Node(zone))
            for ancestor in _ancestors(key, wireName(zone.zone.name)):
                names.setdefault(ancestor, _Node(zone))
        for key, answers in vserverOf.items():
            names[key].vserver = answers
        for key in hosts:
            names[key].host = (hostType, _rdata(hostType, hostPacked))

        authority = cls(zones, names, vservers, {} if fastPath else None)
        for answers in vservers.values():
            authority._rebuildFastPlans(answers)
        return authority

    def _rebuildFastPlans(self, answers: VServerAnswers) -> None:
        """Point the fast path at one vserver's current choosers."""
        if self.fastTable is None:
            return
        for rdtype in (QTYPE_A, QTYPE_AAAA):
            chooser = answers.choosers.get(rdtype)
            plan = None
            if chooser is not None:
                book = answers.books[rdtype]
                size = 16 if rdtype == QTYPE_A else 28
                plan = FastPlan(
                    chooser.choose,
                    rdtype,
                    book.templates,
                    book.counts,
                    longest=size * answers.answersPerReply,
                    hits=book.hits,
                    tailored=chooser.tailored,
                )
            for domain in answers.domains:
                key = fastKey(domain, rdtype)
                if plan is None:
                    self.fastTable.pop(key, None)
                else:
                    self.fastTable[key] = plan

    def applyPlan(
        self,
        vserver: str,
        rdtype: int,
        sets: Sequence[tuple[str, ...]],
        addressOf: Mapping[str, str],
        failure: Optional[int] = None,
    ) -> bool:
        """
        Change what C{vserver} answers for C{rdtype} to a rotation over
        C{sets} (see L{VServerAnswers.applyPlan}), fast path included.
        """
        answers = self.vservers[vserver]
        changed = answers.applyPlan(rdtype, sets, addressOf, failure)
        if changed:
            self._rebuildFastPlans(answers)
        return changed

    def setChooser(self, vserver: str, rdtype: int, chooser, failure: Optional[int] = None) -> None:
        """Change how C{vserver} chooses its C{rdtype} answers (or fails them)."""
        answers = self.vservers[vserver]
        answers.setChooser(rdtype, chooser, failure)
        self._rebuildFastPlans(answers)

    def book(self, vserver: str, rdtype: int) -> AnswerBook:
        """The answer book choosers of C{vserver} index, for C{rdtype}."""
        answers = self.vservers[vserver]
        book = answers.books[rdtype]
        if book.full():
            book.clear()
        return book

    # -----------------------------------------------------------------------

    def respond(self, data: bytes, client: tuple, tcp: bool) -> Optional[bytes]:
        """
        The reply to the query C{data} from C{client} (C{(host, port, ...)}),
        received over TCP if C{tcp}; C{None} to send nothing.
        """
        self.queries += 1
        self.bytesIn += len(data)
        if self.fastTable is not None:
            reply = answerFast(self.fastTable, data, client[0], tcp)
            if reply is not None:
                self.fastAnswers += 1
                if self.rrl is not None and not tcp:
                    return self._limited(data, client[0], reply)
                self.bytesOut += len(reply)
                return reply
        reply = self.respondSlow(data, client, tcp)
        if reply is None:
            self.dropped += 1
            return None
        if self.rrl is not None and not tcp:
            return self._limited(data, client[0], reply)
        self.bytesOut += len(reply)
        return reply

    def _limited(self, data: bytes, address: str, reply: bytes) -> Optional[bytes]:
        """Response rate limiting (UDP): the reply, a truncated one, or none."""
        question = questionBytes(data)
        if question is not None:
            verdict = self.rrl.check(address, question, self.clock())
            if verdict == RRL_DROP:
                return None
            if verdict == RRL_SLIP:
                reply = truncatedReply(reply, len(question))
        self.bytesOut += len(reply)
        return reply

    def respondSlow(self, data: bytes, client: tuple, tcp: bool) -> Optional[bytes]:
        """L{respond} without the fast path (nor the query count)."""
        if len(data) < 12:
            return None
        ident, flags = HEADER.unpack_from(data)[:2]
        if flags & FLAG_QR:
            return None
        if flags & OPCODE_MASK:
            return self._notImplemented(data, ident, flags)
        try:
            message = scanMessage(data)
        except MalformedMessage as e:
            return self._reply(ident, flags, e.question, FORMERR, limit=TCP_LIMIT)
        question = message.question
        if message.qdcount != 1 or question is None:
            return self._reply(ident, flags, None, FORMERR, limit=TCP_LIMIT)
        self.slowTypes[question.qtype] = self.slowTypes.get(question.qtype, 0) + 1
        opt = message.opt
        limit = TCP_LIMIT if tcp else CLASSIC_PAYLOAD
        if opt is None:
            return self._resolve(message, question, client[0], None, limit)
        if not tcp:
            limit = min(max(opt.payload, CLASSIC_PAYLOAD), SERVER_PAYLOAD)
        if opt.version != 0:
            return self._reply(ident, flags, question, BADVERS, opt=self._opt(opt, BADVERS), limit=limit)
        subnets = [value for code, value in opt.options if code == OPTION_CLIENT_SUBNET]
        subnet = None
        try:
            if len(subnets) > 1:
                raise MalformedMessage("more than one client subnet option")
            if subnets:
                subnet = parseClientSubnet(subnets[0])
        except MalformedMessage:
            return self._reply(ident, flags, question, FORMERR, opt=self._opt(opt, FORMERR), limit=limit)
        clientAddress = subnet.network if subnet is not None and subnet.sourcePrefix else client[0]
        scope = 0
        if subnet is not None and subnet.sourcePrefix:
            # An answer chosen for this client subnet is valid for it only
            # (RFC 7871 7.2.1): say so, or resolvers would share it.
            node = self._names.get(question.key) if question.qclass == CLASS_IN else None
            if node is not None and node.vserver is not None and node.vserver.tailored(question.qtype):
                scope = subnet.sourcePrefix
        return self._resolve(message, question, clientAddress, self._opt(opt, NOERROR, subnet, scope), limit)

    # -----------------------------------------------------------------------

    def _resolve(
        self,
        message: ScannedMessage,
        question: Question,
        clientAddress: str,
        opt: Optional[RR],
        limit: int,
    ) -> bytes:
        ident, flags, qtype = message.ident, message.flags, question.qtype
        if qtype == QTYPE_OPT:
            return self._reply(ident, flags, question, FORMERR, opt=opt, limit=limit)
        node = self._names.get(question.key) if question.qclass == CLASS_IN else None
        if node is None:
            zone = self._zoneOf(question.key) if question.qclass == CLASS_IN else None
            if zone is None:
                return self._reply(ident, flags, question, REFUSED, opt=opt, limit=limit)
            return self._reply(
                ident, flags, question, NXDOMAIN, True, authority=[zone.negativeSOA], opt=opt, limit=limit
            )
        if qtype in (QTYPE_AXFR, QTYPE_IXFR):
            # No zone transfers from a GSLB appliance.
            return self._reply(ident, flags, question, REFUSED, opt=opt, limit=limit)
        owner = DNSLabel(question.labels)
        answer: list[RR] = []
        additional: list[RR] = []
        zone = node.zone
        ttl = zone.zone.ttl
        isAny = qtype == QTYPE_ANY
        if node.isApex and (qtype == QTYPE_SOA or isAny):
            answer.append(RR(owner, QTYPE_SOA, CLASS_IN, ttl, zone.soa))
        if node.isApex and (qtype == QTYPE_NS or isAny):
            answer.extend(RR(owner, QTYPE_NS, CLASS_IN, ttl, ns) for ns in zone.ns)
            if not isAny:
                additional.extend(zone.glue)
        vserver = node.vserver
        if vserver is not None:
            failure = vserver.failures.get(qtype)
            if failure is not None:
                return self._reply(ident, flags, question, failure, opt=opt, limit=limit)
            for rdtype in (QTYPE_A, QTYPE_AAAA):
                if (qtype == rdtype or isAny) and rdtype in vserver.choosers:
                    book = vserver.books[rdtype]
                    index = vserver.choose(rdtype, clientAddress)
                    book.hits[index] += 1
                    self.slowBookHits[rdtype] = self.slowBookHits.get(rdtype, 0) + 1
                    chosen = book.addressesAt(index)
                    answer.extend(
                        RR(owner, rdtype, CLASS_IN, vserver.ttl, _rdata(*addressRdata(address)))
                        for address in chosen
                    )
        if node.host is not None:
            hostType, hostRdata = node.host
            if qtype == hostType or isAny:
                answer.append(RR(owner, hostType, CLASS_IN, ttl, hostRdata))
        if not answer:
            return self._reply(
                ident, flags, question, NOERROR, True, authority=[zone.negativeSOA], opt=opt, limit=limit
            )
        return self._reply(
            ident, flags, question, NOERROR, True, answer=answer, additional=additional, opt=opt, limit=limit
        )

    def _zoneOf(self, key: bytes) -> Optional[_ZoneRecords]:
        apex = _apexOf(key, self._zones)
        return None if apex is None else self._zones[apex]

    def _opt(self, queryOpt, rcode: int, subnet: Optional[ClientSubnet] = None, scope: int = 0) -> RR:
        """
        Our OPT record for a reply: our payload, version 0, DO copied
        (RFC 3225), the upper bits of an extended RCODE, the client subnet
        echoed with C{scope} (RFC 7871 7.2.1: 0 when the answer is the same
        for every client); unknown options are not echoed.
        """
        options = [] if subnet is None else [EDNSOption(OPTION_CLIENT_SUBNET, subnet.replyOption(scope))]
        return EDNS0(
            udp_len=SERVER_PAYLOAD,
            version=0,
            ext_rcode=rcode >> 4,
            flags="do" if queryOpt.do else "",
            opts=options,
        )

    def _notImplemented(self, data: bytes, ident: int, flags: int) -> bytes:
        """NOTIMP, echoing the question and OPT when the message is sound."""
        try:
            message = scanMessage(data)
        except MalformedMessage:
            return self._reply(ident, flags, None, NOTIMP, limit=CLASSIC_PAYLOAD)
        question = message.question if message.qdcount == 1 else None
        opt = None
        if message.opt is not None and message.opt.version == 0:
            opt = self._opt(message.opt, NOTIMP)
        return self._reply(ident, flags, question, NOTIMP, opt=opt, limit=CLASSIC_PAYLOAD)

    def _reply(
        self,
        ident: int,
        flags: int,
        question: Optional[Question],
        rcode: int,
        authoritative: bool = False,
        answer: Sequence[RR] = (),
        authority: Sequence[RR] = (),
        additional: Sequence[RR] = (),
        opt: Optional[RR] = None,
        limit: int = CLASSIC_PAYLOAD,
    ) -> bytes:
        """
        Pack a reply; if it exceeds C{limit}, send it truncated instead: TC
        set, only the question and OPT kept (RFC 2181 9, RFC 6891 7).
        """
        self._slowRcodes[rcode] = self._slowRcodes.get(rcode, 0) + 1
        bitmap = FLAG_QR | (flags & (OPCODE_MASK | COPIED_FLAGS)) | (rcode & 0xF)
        if authoritative:
            bitmap |= FLAG_AA
        questions = []
        if question is not None:
            questions.append(DNSQuestion(DNSLabel(question.labels), question.qtype, question.qclass))
        tail = [opt] if opt is not None else []
        record = DNSRecord(
            DNSHeader(id=ident, bitmap=bitmap),
            questions=questions,
            rr=list(answer),
            auth=list(authority),
            ar=list(additional) + tail,
        )
        packed = record.pack()
        if len(packed) > limit:
            record = DNSRecord(DNSHeader(id=ident, bitmap=bitmap | FLAG_TC), questions=questions, ar=tail)
            packed = record.pack()
            self.truncated += 1
        return bytes(packed)
