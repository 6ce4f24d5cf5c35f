"""The sandbox's SMTP servers: one per declared mail server, all on one port, each on its own
loopback address, answering as the world's spec says.

A small asyncio protocol rather than aiosmtpd: the behaviours that matter here live below
aiosmtpd's handler hooks (the banner, the EHLO extension list, refusing DATA before its 354,
pipelined replies delayed like a network rather than one after the other, RST mid-session,
counting every verb), and aiosmtpd costs ~220 µs per command against ~27 µs here (20,000
pipelined RCPTs through one session, same harness), which matters when the prober's benchmark
shares a process, and its GIL, with the world.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import struct
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Final

from engine.sandbox import smtp_replies as replies
from engine.sandbox.counters import SmtpLedger
from engine.sandbox.smtp_replies import Reply
from engine.sandbox.world import Behaviour, MailServer, World, holds

# Longer than RFC 5321's 512-octet command line so SMTPUTF8 and sloppy clients still fit; past
# this a line is answered 500 and dropped instead of buffered without end.
MAX_COMMAND_LINE: Final = 4096
LISTEN_BACKLOG: Final = 256
BIND_ATTEMPTS: Final = 20
WRITE_CHUNK: Final = 64 * 1024
# SO_LINGER on with a zero timeout makes close() abortive: a RST instead of a FIN.
LINGER_ZERO: Final = struct.pack("ii", 1, 0)
# Keeps replies that share a due time in order: timers with equal deadlines may fire in any order.
DELAY_LINE_STEP_S: Final = 1e-6
# TRICKLE's pace: one octet this often, so a whole line takes seconds and the reply never ends.
TRICKLE_INTERVAL_S: Final = 0.05
# Replies produced this close together share a write; a reply produced later waits its own
# latency (a later reply must never ride an earlier one's timer and arrive early).
COALESCE_WINDOW_S: Final = 0.001
PATH_ARGUMENT = re.compile(r"^(?:FROM|TO):\s*(<[^>]*>|\S+)\s*(.*)$", re.IGNORECASE)

LOG = logging.getLogger(__name__)
# Stands in the line queue for a line that grew past MAX_COMMAND_LINE (compared by identity).
_OVERLONG_LINE: Final = b"\0overlong"


class _ServerState:
    """What one mail server remembers across sessions: greylist triplets and client pace."""

    def __init__(self, spec: MailServer, ledger: SmtpLedger) -> None:
        self.spec = spec
        self.ledger = ledger
        self.greylist_first_seen: dict[tuple[str, str, str], float] = {}
        self.session_times: defaultdict[str, deque[float]] = defaultdict(deque)
        self.rcpt_times: defaultdict[str, deque[float]] = defaultdict(deque)
        self.active_by_client: defaultdict[str, int] = defaultdict(int)
        self.sessions: set[_Session] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # sessions' dialogues: cancelled at stop
        self.hand_overs: set[asyncio.Task[None]] = set()  # awaited at stop, never cancelled
        self.stopping = False


def _within_rate(times: deque[float], now: float, window_s: float, limit: int | None) -> bool:
    """Records one event in a sliding window; False once the window holds more than `limit`."""
    times.append(now)
    while times and times[0] <= now - window_s:
        times.popleft()
    return limit is None or len(times) <= limit


class _Session(asyncio.Protocol):
    """One client connection to one mail server."""

    def __init__(self, state: _ServerState) -> None:
        self._state = state
        self._spec = state.spec
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._client_ip = ""
        self._buffer = bytearray()
        self._lines: deque[bytes] = deque()
        self._line_waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._closed = False
        self._last_due = 0.0
        self._outbox: list[bytes] | None = None  # replies waiting for the same write
        self._outbox_due = 0.0
        # Dialogue state.
        self._greeted = False
        self._sender: str | None = None
        self._sender_smtputf8 = False
        self._accepted_in_message = 0
        self._rcpts_in_session = 0
        self._errors = 0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client_ip = peer[0] if peer else "0.0.0.0"
        self._state.sessions.add(self)
        self._state.active_by_client[self._client_ip] += 1
        self._state.ledger.session_opened(self._spec.name)
        if self._state.stopping:
            self.abort()  # handed over while the world was stopping
            return
        task = self._loop.create_task(self._serve())
        self._state.tasks.add(task)
        task.add_done_callback(self._state.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._state.sessions.discard(self)
        self._state.active_by_client[self._client_ip] -= 1
        self._state.ledger.session_closed(self._spec.name)
        for waiter in (self._line_waiter, self._writable):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._spec.behaviour is Behaviour.TARPIT:
            return
        self._buffer += data
        *complete, rest = self._buffer.split(b"\n")
        self._lines.extend(
            bytes(line) if len(line) <= MAX_COMMAND_LINE else _OVERLONG_LINE for line in complete
        )
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_COMMAND_LINE:
            self._buffer.clear()
            self._lines.append(_OVERLONG_LINE)
        if self._lines and self._line_waiter is not None and not self._line_waiter.done():
            self._line_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def abort(self) -> None:
        """Ends the session with a RST, which leaves no TIME_WAIT behind on the server's port."""
        if self._transport is not None and not self._transport.is_closing():
            _linger_zero(self._transport)
            self._transport.abort()

    # --- I/O helpers ---

    async def _next_line(self) -> bytes | None:
        while not self._lines:
            if self._closed:
                return None
            self._line_waiter = self._loop.create_future()
            await self._line_waiter
        return self._lines.popleft()

    def _later(self, action: Callable[[], None]) -> None:
        """Runs `action` after the server's latency, in order: a delay line, like a network path.

        Pipelined replies each arrive one latency after they were produced, not one latency
        after the previous reply, so a pipelined batch costs one round trip as on the internet.
        """
        due = max(self._loop.time() + self._spec.latency_s, self._last_due + DELAY_LINE_STEP_S)
        self._last_due = due
        self._loop.call_at(due, action)

    def _send(self, data: bytes) -> None:
        """Queues a reply; replies produced together leave in one write, as Postfix flushes a
        pipelined group's replies at once (one system call instead of one per reply)."""
        natural_due = self._loop.time() + self._spec.latency_s
        if (
            self._outbox is not None
            and self._last_due == self._outbox_due  # nothing (a hang-up) queued behind it
            and natural_due - self._outbox_due <= COALESCE_WINDOW_S
        ):
            self._outbox.append(data)
            return
        outbox = self._outbox = [data]

        def write() -> None:
            if self._outbox is outbox:
                self._outbox = None
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(b"".join(outbox))

        self._later(write)
        self._outbox_due = self._last_due

    def _hang_up(self) -> None:
        self._later(lambda: self._transport.close() if self._transport else None)

    def _reset(self) -> None:
        """A TCP RST mid-session, after the replies already on their way."""
        self._later(self.abort)

    async def _write_steadily(self, chunks: Iterable[bytes]) -> None:
        """Writes with flow control, so an endless or huge reply never piles up in memory."""
        for chunk in chunks:
            if self._closed or self._transport is None or self._transport.is_closing():
                return
            self._transport.write(chunk)
            if self._writable is not None:
                await self._writable
            else:
                await asyncio.sleep(0)  # yield, so a stop or a lost connection gets its turn

    async def _trickle(self, greeting: bytes) -> None:
        """Sends the greeting's continuation lines one octet at a time, forever: a client that
        only times out when the line goes quiet waits without end."""
        continuation = greeting.replace(b"220 ", b"220-")
        transport = self._transport
        while transport is not None:
            for octet in continuation:
                if self._closed or transport.is_closing():
                    return
                transport.write(bytes((octet,)))
                await asyncio.sleep(TRICKLE_INTERVAL_S)

    # --- The dialogue ---

    async def _serve(self) -> None:
        behaviour = self._spec.behaviour
        try:
            if behaviour is Behaviour.ACCEPT_THEN_CLOSE:
                self._hang_up()
            elif behaviour is Behaviour.TARPIT:
                await self._next_line()  # returns only when the client gives up
            elif behaviour is Behaviour.HTTP_BANNER:
                self._send(replies.HTTP_PAGE)
                self._hang_up()
            elif behaviour is Behaviour.TRICKLE:
                await self._trickle(replies.greeting(self._spec.name, multiline=True))
            elif behaviour is Behaviour.HUGE_LINE:
                await asyncio.sleep(self._spec.latency_s)
                await self._write_steadily(_huge_line())
                self._hang_up()
            else:
                await self._converse()
        except ConnectionError:
            self.abort()
        except Exception:
            # A bug here must show, not hide as a client timeout.
            LOG.exception("sandbox mail server %s failed a session", self._spec.name)
            self.abort()

    async def _converse(self) -> None:
        spec, state = self._spec, self._state
        refusal = self._greeting_refusal()
        if refusal is not None:
            self._send(refusal.render())
            self._hang_up()
            return
        if spec.behaviour is Behaviour.BLAME_IP_AT_BANNER:
            await self._refuse_service()
            return
        self._send(replies.greeting(spec.name, multiline=spec.multiline))
        while True:
            if spec.penalty is not None and self._errors >= spec.penalty.hard_limit:
                await self._reply(replies.too_many_errors(spec.name))
                self._hang_up()
                return
            line = await self._next_line()
            if line is None:
                return
            if line is _OVERLONG_LINE:
                await self._reply(replies.LINE_TOO_LONG)
                continue
            verb, argument = _split_command(line)
            # Without PIPELINING a client must wait for each reply (RFC 2920); a command
            # already queued behind this one was sent ahead of it.
            improper = not spec.pipelining and bool(self._lines)
            state.ledger.command(spec.name, verb, pipelined_improperly=improper)
            if verb == "QUIT":
                await self._reply(replies.BYE)
                self._hang_up()
                return
            if not await self._answer(verb, argument):
                return

    def _greeting_refusal(self) -> Reply | None:
        spec, state = self._spec, self._state
        limit = spec.rate_limit
        if limit is not None:
            now = self._loop.time()
            times = state.session_times[self._client_ip]
            within = _within_rate(times, now, limit.window_s, limit.sessions)
            crowded = (
                limit.concurrent is not None
                and state.active_by_client[self._client_ip] > limit.concurrent
            )
            if not within or crowded:
                return replies.too_many_connections(spec.name, self._client_ip)
        if spec.behaviour is Behaviour.BUSY:
            return replies.busy(spec.name)
        return None

    async def _refuse_service(self) -> None:
        """RFC 5321 §3.1: a 554 greeting, then 503 to everything until QUIT."""
        self._send(
            replies.blocklisted_client(self._client_ip).render(multiline=self._spec.multiline)
        )
        while (line := await self._next_line()) is not None:
            verb, _ = _split_command(line)
            self._state.ledger.command(self._spec.name, verb)
            if verb == "QUIT":
                self._send(replies.BYE.render())
                self._hang_up()
                return
            self._send(replies.NO_SERVICE.render())

    async def _reply(self, reply: Reply | bytes) -> None:
        penalty = self._spec.penalty
        if penalty is not None and self._errors >= penalty.soft_limit:
            # Postfix sleeps before every reply once the soft limit is reached: serially, so
            # pipelined commands pay it one after the other.
            await asyncio.sleep(penalty.sleep_s)
        if isinstance(reply, bytes):
            self._send(reply)
            return
        self._send(reply.render(multiline=self._spec.multiline and reply.is_error))
        self._errors += reply.is_error

    async def _answer(self, verb: str, argument: str) -> bool:
        """Answers one command; False once the session is over (reset, hung up)."""
        spec = self._spec
        if verb in ("EHLO", "HELO"):
            if not argument:
                await self._reply(replies.HELO_SYNTAX)
                return True
            self._greeted = True
            self._sender = None
            if verb == "HELO":
                await self._reply(replies.helo(spec.name))
            elif spec.behaviour is Behaviour.ENDLESS_MULTILINE:
                await asyncio.sleep(spec.latency_s)
                await self._write_steadily(_endless_lines())
                return False
            elif spec.behaviour is Behaviour.BINARY_GARBAGE:
                self._send(replies.BINARY_GARBAGE)
            else:
                offer = {"pipelining": spec.pipelining, "smtputf8": spec.smtputf8}
                await self._reply(replies.ehlo(spec.name, self._client_ip, **offer))
            return True
        if spec.behaviour is Behaviour.BINARY_GARBAGE:
            self._send(replies.BINARY_GARBAGE)
            return True
        if verb == "MAIL":
            return await self._mail(argument)
        if verb == "RCPT":
            return await self._rcpt(argument)
        if verb in ("DATA", "BDAT"):
            await self._reply(replies.DATA_REFUSED)
        elif verb == "RSET":
            self._sender = None
            await self._reply(replies.OK)
        elif verb == "NOOP":
            await self._reply(replies.OK)
        elif verb == "VRFY":
            await self._reply(replies.CANNOT_VRFY)
        else:
            await self._reply(replies.UNRECOGNISED)
        return True

    async def _mail(self, argument: str) -> bool:
        if self._spec.behaviour is Behaviour.RESET_AFTER_MAIL:
            self._reset()
            return False
        match = PATH_ARGUMENT.match(argument)
        if not self._greeted:
            await self._reply(replies.NEED_HELO)
        elif self._sender is not None:
            await self._reply(replies.NESTED_MAIL)
        elif match is None or not argument.upper().startswith("FROM:"):
            await self._reply(replies.MAIL_SYNTAX)
        elif "SMTPUTF8" in match.group(2).upper().split() and not self._spec.smtputf8:
            await self._reply(replies.SMTPUTF8_UNSUPPORTED)
        else:
            self._sender = match.group(1).strip("<>").lower()
            self._sender_smtputf8 = "SMTPUTF8" in match.group(2).upper().split()
            self._accepted_in_message = 0
            await self._reply(replies.SENDER_OK)
        return True

    async def _rcpt(self, argument: str) -> bool:
        match = PATH_ARGUMENT.match(argument)
        if self._sender is None:
            await self._reply(replies.NEED_MAIL)
            return True
        if match is None or not argument.upper().startswith("TO:") or match.group(1) == "<>":
            await self._reply(replies.RCPT_SYNTAX)
            return True
        rcpt = match.group(1).strip("<>")
        self._state.ledger.rcpt(self._spec.name, rcpt)
        self._rcpts_in_session += 1
        if (
            self._spec.behaviour is Behaviour.RESET_AFTER_RCPT
            and self._rcpts_in_session >= self._spec.reset_after_rcpts
        ):
            self._reset()
            return False
        reply = self._rcpt_reply(rcpt)
        await self._reply(reply)
        if reply.code == 421:
            self._hang_up()
            return False
        self._accepted_in_message += reply.code == 250
        return True

    def _rcpt_reply(self, rcpt: str) -> Reply:
        """The answer to one RCPT, in the order a Postfix set-up checks it."""
        spec, state = self._spec, self._state
        if not rcpt.isascii() and not self._sender_smtputf8:
            return replies.non_ascii_without_smtputf8(rcpt)
        if spec.max_rcpt is not None and self._accepted_in_message >= spec.max_rcpt:
            return replies.TOO_MANY_RECIPIENTS
        now = self._loop.time()
        limit = spec.rate_limit
        if limit is not None and not _within_rate(
            state.rcpt_times[self._client_ip], now, limit.window_s, limit.rcpts
        ):
            return replies.too_many_recipients_from(self._client_ip, limit.rcpt_code)
        if spec.greylist is not None:
            triplet = (self._client_ip, self._sender or "", rcpt.lower())
            first_seen = state.greylist_first_seen.setdefault(triplet, now)
            waited = now - first_seen
            if waited < spec.greylist.delay_s:
                return replies.greylisted(rcpt, spec.greylist.code, spec.greylist.delay_s - waited)
        if spec.behaviour is Behaviour.POLICY_BLOCK:
            return replies.verification_refused(rcpt)
        if spec.behaviour is Behaviour.BLAME_IP_AT_RCPT:
            return replies.blocklisted_client(self._client_ip)
        if holds(spec.disabled, rcpt):
            return replies.mailbox_disabled(rcpt)
        if holds(spec.full_permanent, rcpt):
            return replies.mailbox_full_permanent(rcpt)
        if holds(spec.full_temporary, rcpt):
            return replies.mailbox_full_temporary(rcpt)
        if spec.behaviour is Behaviour.CATCH_ALL or holds(spec.mailboxes, rcpt):
            return replies.RECIPIENT_OK
        return replies.user_unknown(rcpt)


def _linger_zero(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)


def _split_command(line: bytes) -> tuple[str, str]:
    text = line.rstrip(b"\r").decode("utf-8", errors="surrogateescape")
    verb, _, argument = text.strip().partition(" ")
    return verb.upper(), argument.strip()


def _huge_line() -> Iterable[bytes]:
    yield b"220 "
    remaining = replies.HUGE_LINE_OCTETS
    while remaining > 0:
        size = min(WRITE_CHUNK, remaining)
        yield b"x" * size
        remaining -= size
    yield b"\r\n"


def _endless_lines() -> Iterable[bytes]:
    chunk = replies.ENDLESS_LINE * (WRITE_CHUNK // len(replies.ENDLESS_LINE))
    while True:
        yield chunk


class SmtpServers:
    """Every mail server of a world, listening on one shared port at its own loopback address.

    The prober connects to whatever address the DNS answered at one configured port (DESIGN §7,
    `--smtp-port`), so all servers must share the port. A REFUSED server's address:port is bound
    without listening, which both refuses connections and keeps anyone else from listening there.

    Connections are accepted by a reader callback of our own rather than `loop.create_server`:
    Python 3.11's Server leaks a connection accepted in the same loop iteration as its close
    (the transport set-up fails an assertion and the socket stays open), and a stop must leave
    no socket behind.
    """

    def __init__(self, world: World, ledger: SmtpLedger | None = None) -> None:
        self.world = world
        self.ledger = ledger or SmtpLedger(server.name for server in world.servers)
        self._states = {server.name: _ServerState(server, self.ledger) for server in world.servers}
        self._sockets: list[socket.socket] = []
        self._listening: list[socket.socket] = []
        self.port = 0

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        listening = [(self.world.address_of(s.name), s.listens) for s in self.world.servers]
        self.port, self._sockets = _bind_same_port(listening, port)
        for server, sock in zip(self.world.servers, self._sockets, strict=True):
            if server.listens:
                loop.add_reader(sock.fileno(), _accept_waiting, sock, self._states[server.name])
                self._listening.append(sock)

    async def stop(self) -> None:
        """Stops accepting, resets every open session and waits for their tasks to end."""
        loop = asyncio.get_running_loop()
        for state in self._states.values():
            state.stopping = True
        for sock in self._listening:
            loop.remove_reader(sock.fileno())
        for sock in self._sockets:
            sock.close()  # the kernel resets connections still waiting in the backlog
        # A cancelled hand-over would leave its socket to the garbage collector; let them finish
        # instead: their sessions see `stopping` and reset at once.
        await asyncio.gather(*(t for s in self._states.values() for t in s.hand_overs))
        for state in self._states.values():
            for session in list(state.sessions):
                session.abort()
        tasks = [task for state in self._states.values() for task in state.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listening.clear()
        self._sockets.clear()


def _accept_waiting(sock: socket.socket, state: _ServerState) -> None:
    """Accepts every connection waiting on a listening socket and hands each to a session."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            connection, _ = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        connection.setblocking(False)
        task = loop.create_task(_hand_over(connection, state))
        state.hand_overs.add(task)
        task.add_done_callback(state.hand_overs.discard)


async def _hand_over(connection: socket.socket, state: _ServerState) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(lambda: _Session(state), connection)
    except OSError:
        connection.close()  # the client left during the hand-over


def _bind_same_port(
    addresses: list[tuple[str, bool]], port: int
) -> tuple[int, list[socket.socket]]:
    """Binds `port` (or one free port) on every address; listens where the flag says so."""
    if not addresses:
        return port, []
    attempts = 1 if port else BIND_ATTEMPTS
    for _ in range(attempts):
        candidate = port or _free_port(addresses[0][0])
        sockets: list[socket.socket] = []
        try:
            for address, listens in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                if listens:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, candidate))
                if listens:
                    sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
            return candidate, sockets
        except OSError as error:
            for sock in sockets:
                sock.close()
            if error.errno != errno.EADDRINUSE or port:
                raise
    raise OSError(errno.EADDRINUSE, "no port free on every mail server address")


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
