"""How one DNS question reaches the configured name servers and what comes back.

UDP first, over one connected socket per server (answers matched by ID and question, RFC 5452
§9.1); TCP when an answer is truncated (RFC 7766 §5); at most `concurrency` messages in flight;
a timeout per message with retries, and an error answer retried on the next server. Every
message sent is counted, so the stage can say what each domain cost.

Why not `dns.asyncresolver`: on the 2-core VM it costs ~0.8 ms of CPU per query (message
objects, a socket opened and registered per query, a task and a timer each), more than the
whole budget at 800 domains/s. Here a question is a small state machine driven by the socket's
callbacks: no task, socket or timer per query (one sweep timer expires them all, since every
message has the same timeout), and answers are read by engine/dns_wire.py. The bench
(tests/bench/bench_dns.py) measures 75-105 µs of client CPU per query, system calls included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Final, NamedTuple, Self

from engine.dns_wire import (
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    MalformedReply,
    Reply,
    answers_question,
    build_query,
    name_text,
    parse_reply,
    question_bytes,
    rcode_name,
    response_id,
    type_name,
)

# Room for a burst of answers to thousands of queries in flight (~100 octets each, ~1 KiB of
# kernel memory), so none is dropped while the loop is busy. Capped by net.core.rmem_max.
UDP_RECEIVE_BUFFER: Final = 4 << 20
TCP_LENGTH_OCTETS: Final = 2  # RFC 1035 §4.2.2: each message is prefixed by its length
# How late a timeout may fire: one sweep serves every message that expired meanwhile.
SWEEP_GRANULARITY_S: Final = 0.02
ID_BLOCK: Final = 4096


class LookupStatus(StrEnum):
    """What a lookup established: three definitive answers, two temporary failures."""

    ANSWER = "answer"
    NODATA = "nodata"  # the name exists without records of the type (RFC 2308 §2.2)
    NXDOMAIN = "nxdomain"  # the name does not exist (RFC 8020)
    SERVFAIL = "servfail"  # an error answer (SERVFAIL, REFUSED, ...), a malformed one, a CNAME loop
    TIMEOUT = "timeout"  # no answer in time from any server


FAILURES: Final = frozenset({LookupStatus.SERVFAIL, LookupStatus.TIMEOUT})


class Lookup(NamedTuple):
    """The outcome of one question: its records (see `Reply`), the messages sent for it, and
    for a failure a short reason a person can act on."""

    status: LookupStatus
    records: tuple[object, ...] = ()
    queries: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILURES


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Question:
    """One lookup in progress: what it asks, where its answer goes, what it has spent."""

    __slots__ = (
        "attempt",
        "errors",
        "future",
        "message_id",
        "qtype",
        "queries",
        "question",
        "server",
        "tcp",
        "timeouts",
    )

    def __init__(self, question: bytes, qtype: int, future: asyncio.Future[Lookup]) -> None:
        self.question = question
        self.qtype = qtype
        self.future = future
        self.queries = 0  # messages sent, UDP and TCP
        self.attempt = 0
        self.timeouts = 0
        self.errors = 0
        self.tcp = False  # the next message goes over TCP (the last answer was truncated)
        self.server = 0
        self.message_id = -1


class _UdpChannel(asyncio.DatagramProtocol):
    """One connected UDP socket to one server. An answer with a waiting ID and the same
    question goes to its question; anything else (late, spoofed, another ID) is dropped."""

    def __init__(self, on_answer: Callable[[_Question, bytes], None]) -> None:
        self.on_answer = on_answer
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Question] = {}
        self._ids: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message_id = response_id(data)
        question = self.pending.get(message_id)
        if question is not None and answers_question(data, question.question):
            del self.pending[message_id]
            self.on_answer(question, data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable) names no query: the queries run into their timeouts.
        pass

    def fresh_id(self) -> int:
        """An unpredictable free message ID (RFC 5452 §4.3), from the OS's CSPRNG read in
        blocks: one `getrandom` call per 4,096 queries instead of one each."""
        while True:
            if not self._ids:
                self._ids = list(struct.unpack(f"!{ID_BLOCK}H", os.urandom(2 * ID_BLOCK)))
            message_id = self._ids.pop()
            if message_id not in self.pending:
                return message_id


class DnsClient:
    """Asks the configured servers, in turn, with a per-message timeout, retries, and a cap
    on messages in flight. Use as `async with DnsClient(...) as client:`."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        *,
        timeout_s: float,
        retries: int,
        concurrency: int,
    ) -> None:
        if not nameservers:
            raise ValueError("no DNS servers to ask")
        self.nameservers = tuple(nameservers)
        self.timeout_s = timeout_s
        self.retries = retries
        # An error answer is retried once, or on each other server when there are several.
        self.error_retries = max(1, len(self.nameservers) - 1)
        self.concurrency = concurrency
        self.queries_sent = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channels: list[_UdpChannel] = []
        self._waiting: deque[_Question] = deque()
        # (deadline, question, attempt): FIFO is deadline order, every message has one timeout.
        self._deadlines: deque[tuple[float, _Question, int]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        for server in self.nameservers:
            _, channel = await self._loop.create_datagram_endpoint(
                lambda: _UdpChannel(self._answered), remote_addr=(server.host, server.port)
            )
            self._channels.append(channel)

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        for task in list(self._tcp_tasks):
            task.cancel()
        for channel in self._channels:
            if channel.transport is not None:
                channel.transport.close()
        closed = Lookup(LookupStatus.TIMEOUT, error="the DNS client was closed")
        for question in [*self._waiting, *(q for c in self._channels for q in c.pending.values())]:
            self._finish(question, closed)
        self._channels.clear()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def ask(self, qname: bytes, qtype: int) -> asyncio.Future[Lookup]:
        """Starts asking for `qtype` records of `qname` (a wire name from `wire_name`) now.

        A timeout is retried `retries` times and an error answer `error_retries` times, each
        retry on the next server; a CNAME loop is final at once. The future never fails.
        """
        assert self._loop is not None, "DnsClient used before open()"
        question = _Question(question_bytes(qname, qtype), qtype, self._loop.create_future())
        self._dispatch(question)
        return question.future

    async def lookup(self, qname: bytes, qtype: int) -> Lookup:
        return await self.ask(qname, qtype)

    def _dispatch(self, question: _Question) -> None:
        if self.in_flight < self.concurrency:
            self._transmit(question)
        else:
            self._waiting.append(question)

    def _transmit(self, question: _Question) -> None:
        assert self._loop is not None
        question.server = question.queries % len(self.nameservers)
        question.queries += 1
        question.attempt += 1
        self.queries_sent += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        if question.tcp:
            task = self._loop.create_task(self._tcp_attempt(question))
            self._tcp_tasks.add(task)
            task.add_done_callback(self._tcp_tasks.discard)
            return
        channel = self._channels[question.server]
        question.message_id = channel.fresh_id()
        channel.pending[question.message_id] = question
        deadline = self._loop.time() + self.timeout_s
        self._deadlines.append((deadline, question, question.attempt))
        if self._sweep is None:
            self._sweep = self._loop.call_at(deadline, self._expire)
        assert channel.transport is not None
        channel.transport.sendto(build_query(question.message_id, question.question))

    def _release(self) -> None:
        self.in_flight -= 1
        while self._waiting and self.in_flight < self.concurrency:
            self._transmit(self._waiting.popleft())

    def _expire(self) -> None:
        """Times out every UDP message past its deadline, then waits for the next one."""
        assert self._loop is not None
        self._sweep = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, question, attempt = deadlines.popleft()
            channel = self._channels[question.server] if self._channels else None
            if (
                channel is not None
                and question.attempt == attempt
                and channel.pending.get(question.message_id) is question
            ):
                del channel.pending[question.message_id]
                self._release()
                self._failed(question, LookupStatus.TIMEOUT, None)
        if deadlines:
            self._sweep = self._loop.call_at(
                max(deadlines[0][0], now + SWEEP_GRANULARITY_S), self._expire
            )

    def _answered(self, question: _Question, data: bytes) -> None:
        self._release()
        try:
            reply = parse_reply(data, question.question, question.qtype)
        except MalformedReply as error:
            server = self.nameservers[question.server]
            problem = f"malformed answer from {server} for {_asked(question.question)} ({error})"
            self._failed(question, LookupStatus.SERVFAIL, problem)
            return
        if reply.truncated:
            question.tcp = True
            self._dispatch(question)
            return
        self._settle(question, reply)

    async def _tcp_attempt(self, question: _Question) -> None:
        """The same question over a fresh TCP connection (RFC 7766 §5: after a TC answer)."""
        server = self.nameservers[question.server]
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await _exchange_tcp(server, question.question, question.qtype)
        except TimeoutError:
            self._release()
            self._failed(question, LookupStatus.TIMEOUT, None)
        except (OSError, asyncio.IncompleteReadError, MalformedReply) as error:
            self._release()
            problem = f"TCP retry of a truncated answer from {server} failed for"
            problem += f" {_asked(question.question)} ({type(error).__name__})"
            self._failed(question, LookupStatus.SERVFAIL, problem)
        else:
            self._release()
            if reply.truncated:
                # TC over TCP: the answer does not fit even 64 KiB (RFC 1035 §4.2.2); the
                # message carries no records, so read as NOERROR it would say "no such
                # records" (NODATA) and make a live domain look like one that takes no mail.
                problem = f"answer from {server} for {_asked(question.question)} is truncated"
                self._failed(question, LookupStatus.SERVFAIL, problem + " even over TCP")
                return
            self._settle(question, reply)

    def _settle(self, question: _Question, reply: Reply) -> None:
        if reply.cname_loop:
            # A loop is the zone's fault and answers the same way every time: not retried.
            problem = f"CNAME loop for {_asked(question.question)}"
            self._finish(question, Lookup(LookupStatus.SERVFAIL, error=problem))
        elif reply.rcode == RCODE_NXDOMAIN:
            self._finish(question, Lookup(LookupStatus.NXDOMAIN))
        elif reply.rcode == RCODE_NOERROR:
            status = LookupStatus.ANSWER if reply.records else LookupStatus.NODATA
            self._finish(question, Lookup(status, reply.records))
        else:
            server = self.nameservers[question.server]
            problem = f"{rcode_name(reply.rcode)} from {server} for {_asked(question.question)}"
            self._failed(question, LookupStatus.SERVFAIL, problem)

    def _failed(self, question: _Question, status: LookupStatus, problem: str | None) -> None:
        """Retries a failed message while its budget lasts, else settles the failure."""
        question.tcp = False
        if status is LookupStatus.TIMEOUT and question.timeouts < self.retries:
            question.timeouts += 1
            self._dispatch(question)
        elif status is LookupStatus.SERVFAIL and question.errors < self.error_retries:
            question.errors += 1
            self._dispatch(question)
        else:
            if status is LookupStatus.TIMEOUT:
                tries = f"{question.queries} tries of {self.timeout_s:g} s"
                servers = ", ".join(str(server) for server in self.nameservers)
                problem = f"no answer from {servers} for {_asked(question.question)} ({tries})"
            self._finish(question, Lookup(status, error=problem))

    def _finish(self, question: _Question, lookup: Lookup) -> None:
        if not question.future.done():
            status, records, _, error = lookup
            question.future.set_result(Lookup(status, records, question.queries, error))


async def _exchange_tcp(server: Nameserver, question: bytes, qtype: int) -> Reply:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        message_id = secrets.randbits(16)
        query = build_query(message_id, question)
        writer.write(len(query).to_bytes(TCP_LENGTH_OCTETS, "big") + query)
        while True:
            size = int.from_bytes(await reader.readexactly(TCP_LENGTH_OCTETS), "big")
            data = await reader.readexactly(size)
            if response_id(data) == message_id and answers_question(data, question):
                return parse_reply(data, question, qtype)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _asked(question: bytes) -> str:
    """`MX example.com`: the question, for the reason a person reads."""
    return f"{type_name(int.from_bytes(question[-4:-2], 'big'))} {name_text(question[:-4])}"
