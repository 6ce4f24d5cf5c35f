"""One SMTP session with one MX address: connect, greet, ask about recipients, quit. Never DATA.

A small asyncio client instead of aiosmtplib (read in the venv, 5.1.3): its protocol expects one
read per written command and drops replies that arrive while no command waits
(`SMTPProtocol.data_received`), so the replies to a pipelined group of RCPTs (RFC 2920) would be
lost; and its `SMTP` class carries `data()`/`sendmail()`, a code path to DATA. Here the only
verbs that exist are a probe's (`Verb` has no DATA or BDAT member, and every line is built from
it), replies are read in order however they arrive, and every read is bounded in size and time.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from engine.smtp_reply import RcptClass, Reply, Step, classify_session, split_enhanced

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF. Four times that for
# sloppy servers; beyond it the "reply" is garbage (the sandbox's 10 MB banner line ends here).
MAX_REPLY_LINE: Final = 2048
# A multi-line reply is an EHLO list or a wrapped rejection: a few lines. An endless one is not.
MAX_REPLY_LINES: Final = 64
MAX_REPLY_OCTETS: Final = 16 * 1024
# Complete replies read ahead of the prober; a pipelined group never has more outstanding.
MAX_QUEUED_REPLIES: Final = 512
# Control characters would let an address smuggle a second command into its line (CRLF
# injection); such a line is never written. Angle brackets would end the path early.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
UNSAFE_ADDRESS = re.compile(r"[\x00-\x1f\x7f<>\s]")
SERVICE_READY: Final = 220  # RFC 5321 §4.2.3
SERVICE_CLOSING: Final = 421  # RFC 5321 §3.8
EXTENSION_PIPELINING: Final = "PIPELINING"  # RFC 2920
EXTENSION_SMTPUTF8: Final = "SMTPUTF8"  # RFC 6531
EXTENSION_STARTTLS: Final = "STARTTLS"  # RFC 3207


class Verb(StrEnum):
    """Every command a probe may send. DATA and BDAT are not among them, by construction."""

    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    MAIL = "MAIL"
    RCPT = "RCPT"
    RSET = "RSET"
    QUIT = "QUIT"


def is_sendable(address: str) -> bool:
    """Whether an address can go into `RCPT TO:<...>` without changing the command."""
    return bool(address) and UNSAFE_ADDRESS.search(address) is None


def command_line(verb: Verb, argument: str = "") -> bytes:
    if CONTROL_CHARACTER.search(argument):
        raise ValueError(f"refusing to send a control character in {verb} {argument!r}")
    return (f"{verb.value} {argument}\r\n" if argument else f"{verb.value}\r\n").encode()


class SessionFailure(Exception):
    """The session cannot go on: what happened, where, and the reply that said so (if any)."""

    def __init__(
        self, rcpt_class: RcptClass, step: Step, message: str, reply: Reply | None = None
    ) -> None:
        super().__init__(message)
        self.rcpt_class = rcpt_class
        self.step = step
        self.message = message
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Transaction:
    """The answers to one MAIL + RCPT group: `rcpts[i]` is None when no reply came for it."""

    rcpts: list[Reply | None]
    failure: SessionFailure | None


# Called for every reply and every failure: (step, recipient or None, reply or None, note).
ReplyRecorder = Callable[[Step, str | None, Reply | None, str], None]


class _ReplyReader(asyncio.Protocol):
    """Cuts the byte stream into replies (RFC 5321 §4.2.1), bounded in every dimension."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies: deque[tuple[int, list[str]]] = deque()
        self.failure: SessionFailure | None = None
        self._buffer = bytearray()
        self._code = 0
        self._lines: list[str] = []
        self._octets = 0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failure is None:
            how = "reset by the server" if exc else "closed by the server"
            self.failure = SessionFailure(RcptClass.DISCONNECTED, Step.CONNECT, f"connection {how}")
        self.transport = None
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self.failure is not None:
            return
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            if end - start > MAX_REPLY_LINE:
                self._garbage(f"a reply line longer than {MAX_REPLY_LINE} octets")
                return
            if not self._take_line(bytes(self._buffer[start:end])):
                return
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > MAX_REPLY_LINE:
            self._garbage(f"a reply line longer than {MAX_REPLY_LINE} octets")
            return
        if self.replies:
            self._wake()

    def _take_line(self, line: bytes) -> bool:
        if line.endswith(b"\r"):
            line = line[:-1]
        separator = line[3:4]
        if (
            len(line) < 3
            or not line[:3].isdigit()
            or line[0] not in b"2345"
            or separator not in (b"", b" ", b"-")
        ):
            self._garbage(f"not an SMTP reply: {line[:60]!r}")
            return False
        code = int(line[:3])
        if self._lines and code != self._code:
            self._garbage("a multi-line reply changed its code mid-way")
            return False
        self._code = code
        self._lines.append(line[4:].decode("utf-8", errors="replace"))
        self._octets += len(line)
        if len(self._lines) > MAX_REPLY_LINES or self._octets > MAX_REPLY_OCTETS:
            self._garbage(
                f"a reply longer than {MAX_REPLY_LINES} lines or {MAX_REPLY_OCTETS} octets"
            )
            return False
        if separator != b"-":
            self.replies.append((code, self._lines))
            self._lines, self._octets = [], 0
            if len(self.replies) > MAX_QUEUED_REPLIES:
                self._garbage("more replies than commands")
                return False
        return True

    def _garbage(self, what: str) -> None:
        """Ends the connection at once: nothing more is read, so memory stays bounded."""
        self.failure = SessionFailure(RcptClass.PROTOCOL_ERROR, Step.CONNECT, f"server sent {what}")
        self._buffer.clear()
        self._lines = []
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_reply(self, timeout_s: float) -> tuple[int, list[str]]:
        """The next complete reply; raises the connection's failure once none is left."""
        while not self.replies:
            if self.failure is not None:
                raise self.failure
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._waiter
            except TimeoutError:
                raise SessionFailure(
                    RcptClass.TIMEOUT, Step.CONNECT, f"no reply within {timeout_s:g} s"
                ) from None
            finally:
                self._waiter = None
        return self.replies.popleft()


def reply_of(code: int, lines: Sequence[str]) -> Reply:
    """A reply's code, enhanced code (RFC 3463, from its first line) and one line of text."""
    enhanced, first = split_enhanced(lines[0]) if lines else (None, "")
    texts = [first]
    for line in lines[1:]:
        again, rest = split_enhanced(line) if enhanced else (None, line)
        texts.append(rest if again == enhanced else line)
    return Reply(code, enhanced, " ".join(text for text in texts if text))


class SmtpSession:
    """A session with one MX address. `open`, then `transaction` as often as wanted, then `quit`.

    `errors` counts every 4xx/5xx reply the server sent in this session, as Postfix does for its
    smtpd_soft_error_limit; `round_trips` counts waits for the server (what latency costs).
    """

    def __init__(
        self,
        *,
        host: str,
        ip: str,
        port: int,
        helo: str,
        mail_from: str,
        source_address: str | None,
        connect_timeout_s: float,
        command_timeout_s: float,
        want_pipelining: bool,
        want_starttls: bool,
        record: ReplyRecorder,
    ) -> None:
        self.host = host
        self.ip = ip
        self._port = port
        self._helo = helo
        self._mail_from = mail_from
        self._source_address = source_address
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = command_timeout_s
        self._want_pipelining = want_pipelining
        self._want_starttls = want_starttls
        self._record = record
        self._reader = _ReplyReader()
        self._in_transaction = False
        self.extensions: frozenset[str] = frozenset()
        self.errors = 0
        self.round_trips = 0
        self.transactions = 0
        self.commands: Counter[str] = Counter()
        self.closed = False

    @property
    def pipelining(self) -> bool:
        return self._want_pipelining and EXTENSION_PIPELINING in self.extensions

    @property
    def smtputf8(self) -> bool:
        return EXTENSION_SMTPUTF8 in self.extensions

    # --- opening ---

    async def open(self) -> None:
        """Connects to the IP (never a name), reads the greeting, says EHLO (or HELO)."""
        await self._connect()
        banner = await self._read(Step.BANNER, None)
        if banner.code != SERVICE_READY:
            failure = SessionFailure(
                classify_session(banner, Step.BANNER), Step.BANNER, banner.text, banner
            )
            if banner.code >= 500:
                await self.quit()  # RFC 5321 §3.1: after a 554 greeting the client sends QUIT
            self.close()
            raise failure
        await self._greet()
        if self._want_starttls and EXTENSION_STARTTLS in self.extensions:
            await self._start_tls()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        local = (self._source_address, 0) if self._source_address else None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                # AI_NUMERICHOST: the address is an IP literal from the configured resolver;
                # a name here would go to the system resolver (DESIGN §7), so it fails instead.
                await loop.create_connection(
                    lambda: self._reader,
                    self.ip,
                    self._port,
                    local_addr=local,
                    flags=socket.AI_NUMERICHOST,
                )
        except TimeoutError:
            self._fail_open(
                RcptClass.TIMEOUT, f"no TCP connection within {self._connect_timeout_s:g} s"
            )
        except ConnectionRefusedError:
            self._fail_open(RcptClass.CONNECTION_FAILED, "connection refused")
        except OSError as error:
            self._fail_open(RcptClass.CONNECTION_FAILED, error.strerror or str(error))

    def _fail_open(self, rcpt_class: RcptClass, message: str) -> None:
        self.closed = True
        self._record(Step.CONNECT, None, None, message)
        raise SessionFailure(rcpt_class, Step.CONNECT, message)

    async def _greet(self) -> None:
        self._send([self._line(Verb.EHLO, self._helo)])
        code, lines = await self._read_raw(Step.EHLO, None)
        reply = reply_of(code, lines)
        self._record(Step.EHLO, None, reply, "")
        if code >= 500:
            # RFC 5321 §4.1.4: a server that does not know EHLO gets HELO (no extensions then).
            self._send([self._line(Verb.HELO, self._helo)])
            self._expect_positive(await self._read(Step.EHLO, None), Step.EHLO)
            return
        self._expect_positive(reply, Step.EHLO)
        # RFC 5321 §4.1.1.1: the lines after the first name one extension (keyword, params).
        self.extensions = frozenset(
            line.split(" ", 1)[0].upper() for line in lines[1:] if line.strip()
        )

    async def _start_tls(self) -> None:
        """RFC 3207, opportunistic (RFC 7435): encrypt when offered, without authenticating."""
        self._send([self._line(Verb.STARTTLS)])
        reply = await self._read(Step.STARTTLS, None)
        if reply.code != SERVICE_READY:
            return  # stay in plain text, as opportunistic TLS does
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        transport = self._reader.transport
        if transport is None:
            raise self._lost(Step.STARTTLS)
        try:
            async with asyncio.timeout(self._timeout_s):
                tls = await asyncio.get_running_loop().start_tls(
                    transport, self._reader, context, server_hostname=self.host
                )
        except (TimeoutError, OSError, ssl.SSLError) as error:
            self.close()
            message = f"TLS handshake failed: {error or 'timeout'}"
            self._record(Step.STARTTLS, None, None, message)
            raise SessionFailure(RcptClass.PROTOCOL_ERROR, Step.STARTTLS, message) from None
        self._reader.transport = tls  # type: ignore[assignment]
        self.extensions = frozenset()
        await self._greet()  # RFC 3207 §4.2: forget what was learnt before TLS

    # --- probing ---

    async def transaction(self, rcpts: Sequence[str], *, then_quit: bool) -> Transaction:
        """RSET (after an earlier transaction), MAIL FROM once, one RCPT per address, and QUIT
        when asked, as one pipelined group (RFC 2920 §3.1: QUIT may end a group) when the
        server offers PIPELINING, one command at a time otherwise."""
        params = ""
        if self.smtputf8 and not all(rcpt.isascii() for rcpt in rcpts):
            params = " SMTPUTF8"  # RFC 6531 §3.4: a UTF-8 address needs it on MAIL
        steps: list[tuple[Step, str | None, bytes]] = []
        if self._in_transaction:
            steps.append((Step.RSET, None, self._line(Verb.RSET)))
        steps.append((Step.MAIL, None, self._line(Verb.MAIL, f"FROM:<{self._mail_from}>{params}")))
        steps += [(Step.RCPT, rcpt, self._line(Verb.RCPT, f"TO:<{rcpt}>")) for rcpt in rcpts]
        if then_quit:
            steps.append((Step.QUIT, None, self._line(Verb.QUIT)))
        self._in_transaction = True
        self.transactions += 1
        answers: dict[str, Reply] = {}
        failure: SessionFailure | None = None
        try:
            if self.pipelining:
                self._send([line for _, _, line in steps])
                self.round_trips += 1
            for step, rcpt, line in steps:
                if not self.pipelining:
                    self._send([line])
                reply = await self._read(step, rcpt, count_round_trip=not self.pipelining)
                if failure is None:
                    # After a failed RSET or MAIL, RCPT replies (503s) say nothing of mailboxes.
                    failure = self._judge(step, rcpt, reply, answers)
                if reply.code == SERVICE_CLOSING:
                    self.close()  # RFC 5321 §3.8: the server is closing; nothing more will come
                    break
                if failure is not None and not self.pipelining:
                    break  # nothing was sent ahead: stop right here
        except SessionFailure as lost:
            failure = failure or lost
        if then_quit or (failure is not None and failure.reply is None):
            self.close()
        return Transaction([answers.get(rcpt) for rcpt in rcpts], failure)

    def _judge(
        self, step: Step, rcpt: str | None, reply: Reply, answers: dict[str, Reply]
    ) -> SessionFailure | None:
        if step is Step.RCPT and rcpt is not None:
            answers[rcpt] = reply
            if reply.code == SERVICE_CLOSING:
                return SessionFailure(RcptClass.RATE_LIMITED, step, reply.text, reply)
            return None
        if step in (Step.RSET, Step.MAIL) and not reply.is_positive:
            return SessionFailure(classify_session(reply, step), step, reply.text, reply)
        return None

    async def quit(self) -> None:
        """RFC 5321 §4.1.1.10: QUIT, wait for the 221, close. Failures here change nothing."""
        if self.closed or self._reader.transport is None:
            self.close()
            return
        try:
            self._send([self._line(Verb.QUIT)])
            await self._read(Step.QUIT, None)
        except SessionFailure:
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        transport = self._reader.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def abort(self) -> None:
        """Drops the connection without a word (cancellation): nothing is left open."""
        self.closed = True
        transport = self._reader.transport
        if transport is not None:
            transport.abort()

    # --- plumbing ---

    def _line(self, verb: Verb, argument: str = "") -> bytes:
        self.commands[verb.value] += 1
        return command_line(verb, argument)

    def _send(self, lines: list[bytes]) -> None:
        transport = self._reader.transport
        if transport is None or transport.is_closing():
            raise self._lost(Step.CONNECT)
        transport.write(b"".join(lines))

    def _lost(self, step: Step) -> SessionFailure:
        failure = self._reader.failure
        message = failure.message if failure else "connection closed"
        rcpt_class = failure.rcpt_class if failure else RcptClass.DISCONNECTED
        return SessionFailure(rcpt_class, step, message)

    async def _read_raw(
        self, step: Step, rcpt: str | None, *, count_round_trip: bool = True
    ) -> tuple[int, list[str]]:
        if count_round_trip:
            self.round_trips += 1
        try:
            code, lines = await self._reader.next_reply(self._timeout_s)
        except SessionFailure as failure:
            self._record(step, rcpt, None, failure.message)
            self.closed = True
            if failure.rcpt_class is not RcptClass.DISCONNECTED:
                self.abort()  # a tarpit or a garbage stream gets no QUIT
            raise SessionFailure(failure.rcpt_class, step, failure.message) from None
        if code >= 400:
            self.errors += 1
        return code, lines

    async def _read(self, step: Step, rcpt: str | None, *, count_round_trip: bool = True) -> Reply:
        code, lines = await self._read_raw(step, rcpt, count_round_trip=count_round_trip)
        reply = reply_of(code, lines)
        self._record(step, rcpt, reply, "")
        return reply

    def _expect_positive(self, reply: Reply, step: Step) -> None:
        if not reply.is_positive:
            failure = SessionFailure(classify_session(reply, step), step, reply.text, reply)
            self.close()
            raise failure
