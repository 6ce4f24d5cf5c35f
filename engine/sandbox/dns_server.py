"""The sandbox's DNS server: answers a world's zone over UDP and TCP on one loopback address.

Built on asyncio rather than dnslib's `DNSServer`: dnslib's server spends a thread per query, so
injected latency costs a sleeping thread each, and it parses and packs every message in Python.
Here every answer is packed once with dnslib when the server is built, each query only patches
the message ID, RD bit and question bytes into it, and latency is a timer on the event loop, so
thousands of delayed answers are in flight at once. Measured on the 2-core VM, server in its own
process, raw UDP load, 30 ms latency: ~7,000-9,000 answers/s (dnslib's server: ~1,150/s);
~7 µs of Python per query, the rest is the socket system calls."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, cast

from dnslib import (
    AAAA,
    CNAME,
    MX,
    PTR,
    QTYPE,
    RCODE,
    RR,
    TXT,
    A,
    DNSHeader,
    DNSQuestion,
    DNSRecord,
)

from engine.sandbox.counters import DnsLedger
from engine.sandbox.world import NULL_MX_HOST, DnsFault, Domain

HEADER: Final = struct.Struct("!HHHHHH")  # RFC 1035 §4.1.1: ID, flags, QD/AN/NS/AR counts
QR: Final = 0x8000
AA: Final = 0x0400
TC: Final = 0x0200
RD: Final = 0x0100
RA: Final = 0x0080
OPCODE_MASK: Final = 0x7800
CLASS_IN: Final = 1
TYPE_OPT: Final = 41  # RFC 6891 §6.1.1: the EDNS pseudo-record; its CLASS is the UDP size
# RFC 1035 §4.2.1: without EDNS a UDP answer is at most 512 octets, longer ones set TC.
CLASSIC_UDP_LIMIT: Final = 512
TCP_MESSAGE_LIMIT: Final = 65535  # RFC 1035 §4.2.2: two-octet length prefix
TXT_STRING_LIMIT: Final = 255  # RFC 1035 §3.3.14: one <character-string> is at most 255 octets
MAX_CNAME_CHAIN: Final = 8  # how far an answer chases aliases inside the world (loops end here)
ANSWER_TTL: Final = 300
MAX_CACHED_ANSWERS: Final = 100_000
ANSWERED_TYPES: Final = (QTYPE.A, QTYPE.AAAA, QTYPE.MX, QTYPE.TXT, QTYPE.PTR, QTYPE.CNAME)
EMPTY_COUNTS: Final = struct.pack("!HHHH", 1, 0, 0, 0)  # the question, no records
BIND_ATTEMPTS: Final = 20

# How a forged or wrong answer's message ID differs from the query's: never equal to it.
FORGED_ID_MASK: Final = 0x5A5A

_Question = tuple[str, int]  # (lower-case dotted name, QTYPE)


class Response(NamedTuple):
    """What goes back for one query: `reply` (None: dropped), a `forged` message sent just
    before it, and whether the reply leaves from another port than the one asked."""

    reply: bytes | None
    forged: bytes | None = None
    from_another_port: bool = False


DROPPED: Final = Response(None)


class ZoneAnswers:
    """Turns one DNS query message into the answer bytes, or None to drop it (timeouts)."""

    def __init__(self, zone: Mapping[str, Domain], ledger: DnsLedger | None = None) -> None:
        self._zone = zone
        self._ledger = ledger or DnsLedger()
        # Ancestors of declared names exist as empty non-terminals (RFC 8020): NODATA there.
        self._existing = {
            ".".join(name.split(".")[index:])
            for name in zone
            for index in range(name.count(".") + 1)
        }
        self._cache: dict[_Question, tuple[int, bytes, bytes]] = {}
        # Packing with dnslib costs ~100 µs an answer and a lookup ~6 µs: pack every answer that
        # holds records now, so a run over unique domains never pays dnslib in its hot path.
        for name, domain in zone.items():
            for qtype in ANSWERED_TYPES:
                if domain.cname or _records_of(domain, qtype):
                    self._packed_answer(name, qtype)

    def answer(self, query: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one query, or None to drop it (what a well-placed observer sees)."""
        return self.respond(query, tcp=tcp).reply

    def respond(self, query: bytes, *, tcp: bool) -> Response:
        """Everything that goes back for one query: the reply, and what a fault adds to it."""
        if len(query) < HEADER.size:
            return DROPPED
        message_id, flags, qdcount, _, _, arcount = HEADER.unpack_from(query)
        if flags & QR:
            return DROPPED  # a response sent to us; answering it could start a reflection loop
        if flags & OPCODE_MASK:
            return Response(_bare(message_id, flags, RCODE.NOTIMP))
        parsed = _parse_question(query) if qdcount == 1 else None
        if parsed is None:
            return Response(_bare(message_id, flags, RCODE.FORMERR))
        name, qtype, question_end = parsed
        question = query[HEADER.size : question_end]
        self._ledger.query(name, QTYPE.get(qtype, f"TYPE{qtype}"), tcp=tcp)
        if int.from_bytes(query[question_end - 2 : question_end], "big") != CLASS_IN:
            return Response(_bare(message_id, flags, RCODE.NOTIMP, question))

        fault = self._zone[name].fault if name in self._zone else None
        if fault is DnsFault.TIMEOUT or (fault is DnsFault.TRUNCATED_NO_TCP and tcp):
            return DROPPED
        if fault is DnsFault.SERVFAIL:
            return Response(_bare(message_id, flags, RCODE.SERVFAIL, question))
        if fault is DnsFault.REFUSED:
            return Response(_bare(message_id, flags, RCODE.REFUSED, question))
        if fault is DnsFault.TRUNCATED_NO_TCP or (fault is DnsFault.TRUNCATED and not tcp):
            return Response(_bare(message_id, flags, RCODE.NOERROR, question, truncated=True))
        if fault is DnsFault.WRONG_ID:
            message_id ^= FORGED_ID_MASK

        answer_flags, counts, records = self._packed_answer(name, qtype)
        reply_header = struct.pack("!HH", message_id, answer_flags | (flags & RD)) + counts
        reply = reply_header + question + records
        limit = TCP_MESSAGE_LIMIT if tcp else _udp_limit(query, question_end, arcount)
        if len(reply) > limit:
            # RFC 2181 §9: what does not fit is marked truncated, over TCP too (past 64 KiB).
            reply = _bare(message_id, flags, RCODE.NOERROR, question, truncated=True)
        if fault is DnsFault.SPOOFED_NXDOMAIN and not tcp:
            forged = _bare(message_id ^ FORGED_ID_MASK, flags, RCODE.NXDOMAIN, question)
            return Response(reply, forged=forged)
        if fault is DnsFault.WRONG_SOURCE and not tcp:
            return Response(reply, from_another_port=True)
        return Response(reply)

    def _packed_answer(self, name: str, qtype: int) -> tuple[int, bytes, bytes]:
        """The flags, section counts and record bytes after the question, packed once per question.

        Name compression in the packed records points at offset 12, the question name, which
        keeps its length whatever case the asker used, so the tail is valid after any question.
        """
        key = (name, qtype)
        cached = self._cache.get(key)
        if cached is None:
            domain = self._zone.get(name)
            if domain is None or not (domain.cname or _records_of(domain, qtype)):
                # NXDOMAIN or NODATA (RFC 2308): nothing to pack.
                rcode = RCODE.NOERROR if name in self._existing else RCODE.NXDOMAIN
                return QR | AA | RA | rcode, EMPTY_COUNTS, b""
            if len(self._cache) >= MAX_CACHED_ANSWERS:
                self._cache.clear()
            rcode, records = self._records(name, qtype)
            message = DNSRecord(
                DNSHeader(qr=1, aa=1, ra=1, rcode=rcode), q=DNSQuestion(name or ".", qtype)
            )
            for record in records:
                message.add_answer(record)
            packed = message.pack()
            question_length = len(_wire_name(name)) + 4
            flags = HEADER.unpack_from(packed)[1]
            cached = (flags, packed[4 : HEADER.size], packed[HEADER.size + question_length :])
            self._cache[key] = cached
        return cached

    def _records(self, name: str, qtype: int) -> tuple[int, list[RR]]:
        records: list[RR] = []
        owner = name
        for _ in range(MAX_CNAME_CHAIN):
            domain = self._zone.get(owner)
            if domain is None:
                exists = owner in self._existing
                return (RCODE.NOERROR if exists else RCODE.NXDOMAIN), records
            if domain.cname and qtype != QTYPE.CNAME:
                records.append(RR(owner, QTYPE.CNAME, rdata=CNAME(domain.cname), ttl=ANSWER_TTL))
                owner = domain.cname
                continue
            records.extend(_domain_records(domain, qtype))
            break
        return RCODE.NOERROR, records


def _records_of(domain: Domain, qtype: int) -> Sequence[object]:
    """The declared data of one type at a name (empty: NODATA)."""
    if qtype == QTYPE.A:
        return domain.a
    if qtype == QTYPE.AAAA:
        return domain.aaaa
    if qtype == QTYPE.MX:
        return domain.mx
    if qtype == QTYPE.TXT:
        return domain.txt_records
    if qtype == QTYPE.PTR:
        return domain.ptr
    if qtype == QTYPE.CNAME and domain.cname:
        return (domain.cname,)
    return ()


def _domain_records(domain: Domain, qtype: int) -> list[RR]:
    def rr(rdata: object) -> RR:
        return RR(domain.name, qtype, rdata=rdata, ttl=ANSWER_TTL)

    if qtype == QTYPE.A:
        return [rr(A(address)) for address in domain.a]
    if qtype == QTYPE.AAAA:
        return [rr(AAAA(address)) for address in domain.aaaa]
    if qtype == QTYPE.MX:
        return [
            rr(MX(mx.host if mx.host != NULL_MX_HOST else ".", mx.preference)) for mx in domain.mx
        ]
    if qtype == QTYPE.TXT:
        return [rr(TXT(_character_strings(text))) for text in domain.txt_records]
    if qtype == QTYPE.PTR:
        return [rr(PTR(host)) for host in domain.ptr]
    if qtype == QTYPE.CNAME and domain.cname:
        return [rr(CNAME(domain.cname))]
    return []


def _character_strings(text: str) -> list[bytes]:
    """A long TXT value (SPF, a hostile huge record) as consecutive 255-octet strings."""
    data = text.encode()
    return [data[i : i + TXT_STRING_LIMIT] for i in range(0, len(data), TXT_STRING_LIMIT)] or [b""]


def _parse_question(query: bytes) -> tuple[str, int, int] | None:
    """The question's lower-case name, QTYPE and end offset; None if it is malformed."""
    offset = HEADER.size
    labels: list[bytes] = []
    while True:
        if offset >= len(query):
            return None
        length = query[offset]
        if length == 0:
            offset += 1
            break
        if length > 63:  # RFC 1035 §4.1.4: compression has nothing to point at in a question
            return None
        labels.append(query[offset + 1 : offset + 1 + length])
        offset += 1 + length
    if offset + 4 > len(query):
        return None
    try:
        name = b".".join(labels).decode("ascii").lower()
    except UnicodeDecodeError:
        return None
    qtype = int.from_bytes(query[offset : offset + 2], "big")
    return name, qtype, offset + 4


def _udp_limit(query: bytes, question_end: int, arcount: int) -> int:
    """512 octets, or the payload size an EDNS OPT record right after the question offers."""
    if arcount and len(query) >= question_end + 5 and query[question_end] == 0:
        rtype, payload = struct.unpack_from("!HH", query, question_end + 1)
        if rtype == TYPE_OPT:
            return max(CLASSIC_UDP_LIMIT, payload)
    return CLASSIC_UDP_LIMIT


def _bare(
    message_id: int, flags: int, rcode: int, question: bytes = b"", *, truncated: bool = False
) -> bytes:
    """A reply with no records: an error, NXDOMAIN, or the empty TC answer of truncation."""
    reply_flags = QR | AA | RA | (flags & RD) | (TC if truncated else 0) | rcode
    return HEADER.pack(message_id, reply_flags, 1 if question else 0, 0, 0, 0) + question


def _wire_name(name: str) -> bytes:
    if not name:
        return b"\x00"
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(
        self, answers: ZoneAnswers, latency_s: float, stray: asyncio.DatagramTransport
    ) -> None:
        self._answers = answers
        self._latency_s = latency_s
        self._stray = stray  # another port on the same address, for WRONG_SOURCE answers
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport in 3.11.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply, forged, from_another_port = self._answers.respond(data, tcp=False)
        if reply is None:
            return
        if forged is not None:
            self._send(self._transport, forged, addr)  # a forger is not slowed by our latency
        transport = self._stray if from_another_port else self._transport
        if self._latency_s:
            # A timer, not a sleep: the delay of one answer never holds up another.
            asyncio.get_running_loop().call_later(
                self._latency_s, self._send, transport, reply, addr
            )
        else:
            self._send(transport, reply, addr)

    @staticmethod
    def _send(
        transport: asyncio.DatagramTransport | None, reply: bytes, addr: tuple[str, int]
    ) -> None:
        if transport is not None and not transport.is_closing():
            transport.sendto(reply, addr)


class _TcpProtocol(asyncio.Protocol):
    """RFC 1035 §4.2.2 / RFC 7766: length-prefixed messages, several per connection."""

    def __init__(
        self, answers: ZoneAnswers, latency_s: float, connections: set[_TcpProtocol]
    ) -> None:
        self._answers = answers
        self._latency_s = latency_s
        self._connections = connections
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            length = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + length:
                return
            query = bytes(self._buffer[2 : 2 + length])
            del self._buffer[: 2 + length]
            reply = self._answers.answer(query, tcp=True)
            if reply is not None:
                framed = len(reply).to_bytes(2, "big") + reply
                if self._latency_s:
                    asyncio.get_running_loop().call_later(self._latency_s, self._send, framed)
                else:
                    self._send(framed)

    def _send(self, framed: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(framed)


class DnsServer:
    """A world's DNS on `host`, UDP and TCP on one port; `latency_s` delays every answer."""

    def __init__(
        self,
        zone: Mapping[str, Domain],
        *,
        latency_s: float = 0.0,
        ledger: DnsLedger | None = None,
    ) -> None:
        self.ledger = ledger or DnsLedger()
        self._answers = ZoneAnswers(zone, self.ledger)
        self._latency_s = latency_s
        self._udp: asyncio.DatagramTransport | None = None
        self._stray: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_connections: set[_TcpProtocol] = set()
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        """The `HOST:PORT` form the `--dns` option takes."""
        return f"{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        udp_socket, tcp_socket = _bind_pair(host, port)
        stray, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(host, 0)
        )
        self._stray = stray
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self._answers, self._latency_s, stray), sock=udp_socket
        )
        self._tcp = await loop.create_server(
            lambda: _TcpProtocol(self._answers, self._latency_s, self._tcp_connections),
            sock=tcp_socket,
        )
        self.host, self.port = udp_socket.getsockname()[:2]

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._stray is not None:
            self._stray.close()
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self._tcp_connections):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._tcp.wait_closed()
        self._udp = self._stray = self._tcp = None


UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port: the kernel picks the UDP one, TCP must follow."""
    attempts = 1 if port else BIND_ATTEMPTS
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # The kernel's default buffer holds ~200 queries; a client with more in flight would
            # see drops that look like timeouts (measured by the DNS bench at ~250 in flight).
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as error:
            udp.close()
            tcp.close()
            if error.errno != errno.EADDRINUSE or port:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port for UDP and TCP together on {host}")
