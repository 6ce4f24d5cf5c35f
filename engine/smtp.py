"""The SMTP probe stage: each planned address asked at its MX with RCPT TO, as fast as each
server allows and never faster (DESIGN §7).

Mechanics, in one place:
- Work is grouped by MX route (engine/probe_plan.py); the biggest group starts first. Each MX
  host has a pool of at most `smtp_per_mx_concurrency` sessions, all hosts together at most
  `smtp_global_concurrency`; a waiting session of a bigger backlog is served first, so the small
  hosts finish in the giant's shadow.
- A session (engine/smtp_session.py) greets once and then runs transactions: RSET, MAIL FROM,
  up to `smtp_rcpt_per_session` RCPTs (one pipelined write when PIPELINING is offered). Before
  each transaction the batch shrinks to the rejections the session may still take, so a session
  never collects more than `smtp_max_rejections_per_session` error replies (Postfix slows every
  reply after 10 and drops the session at 20); when little of that budget is left, the batch is
  the session's last and QUIT rides along in the same write.
- One random never-existing local part per domain rides as an extra RCPT in the first batch of
  that domain: the catch-all test costs no connection.
- Greylisting (RFC 6647) is retried after `greylist_retry_s` delays, other 4xx once after the
  first delay: timers put the address back in its queue, no session waits for them.
- 421 / "too many" strike the MX host: back off `smtp_backoff_s` x 2^(strike-1) with jitter and
  halve its concurrency (never below 1). Connection failures, timeouts and resets before RCPT
  strike the route (host, IP): the next route takes over (next IP, then next MX by preference),
  and a route is given up at the third strike in a row. A banner or sender rejection that blames
  our IP or refuses us by policy, and garbage, give the route up at once.
- Finished addresses are checkpointed after every transaction (engine/checkpoint.py); a rerun
  skips them, so a killed run repeats only the batches that were in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import secrets
import string
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine import schema
from engine.checkpoint import CheckpointStore
from engine.config import Config
from engine.errors import InputError
from engine.probe_plan import MxGroup, ProbePlan, Route, plan_probes
from engine.progress import ProgressListener, SilentProgress
from engine.smtp_reply import (
    CATCH_ALL_EVIDENCE,
    RcptClass,
    Reply,
    Step,
    classify_rcpt,
    is_recipient_limit,
)
from engine.smtp_session import SessionFailure, SmtpSession, Transaction

STAGE: Final = "smtp"
PROBE_SCHEMA: Final[dict[str, pl.DataType]] = {
    schema.EMAIL_NORMALIZED: pl.String(),
    schema.DOMAIN: pl.String(),
    "mx_host": pl.String(),
    "mx_ip": pl.String(),
    "rcpt_class": pl.String(),
    "smtp_response_code": pl.Int16(),
    "smtp_enhanced_code": pl.String(),
    "smtp_message": pl.String(),
    "failed_step": pl.String(),
    "attempts": pl.Int16(),
    "domain_catch_all": pl.Boolean(),
    "probed_at": pl.Datetime("us", "UTC"),
}
REPLY_SCHEMA: Final[dict[str, pl.DataType]] = {
    schema.EMAIL_NORMALIZED: pl.String(),
    schema.DOMAIN: pl.String(),
    "mx_host": pl.String(),
    "mx_ip": pl.String(),
    "session_id": pl.String(),
    "step": pl.String(),
    "code": pl.Int16(),
    "enhanced_code": pl.String(),
    "text": pl.String(),
    "attempt": pl.Int16(),
    "catch_all_probe": pl.Boolean(),
    "at": pl.Datetime("us", "UTC"),
}
PROBES_TABLE: Final = "probes"
REPLIES_TABLE: Final = "replies"

# A route (or a host's pace) gets this many strikes in a row; the third gives it up.
STRIKE_LIMIT: Final = 3
# Back-off jitter keeps the sessions of several hosts from retrying in lock-step.
BACKOFF_JITTER: Final = (0.75, 1.25)
# A session ends early once fewer rejections than this share of a full batch remain: a
# simulation of 20k RCPTs with 5-20% unknown users found 0.5-0.75 cheapest in round trips
# (a fresh session costs two: banner and EHLO).
ROTATION_SHARE: Final = 0.6
# Transactions per session: bounds how long one session holds a server process.
MAX_TRANSACTIONS_PER_SESSION: Final = 50
# 452 4.5.3 (RFC 5321 §4.5.3.1.10) moves an address to the next transaction at most this often.
RECIPIENT_LIMIT_RETRIES: Final = 3
# A session-level loss (reset, timeout, garbage) while an RCPT awaited its reply is retried once.
LOST_REPLY_RETRIES: Final = 1
CATCH_ALL_LOCAL_PART_LENGTH: Final = 24
CATCH_ALL_ALPHABET: Final = string.ascii_lowercase + string.digits
# Checkpoint whenever this many finished addresses wait (addresses a group's verdict decides
# outside any transaction), as well as after every transaction and when an MX group finishes.
CHECKPOINT_ROWS: Final = 1000
MAX_MESSAGE_CHARS: Final = 200
MAX_REPLY_TEXT_CHARS: Final = 500
# Which failure speaks for a group when every route failed differently: the most telling first.
FAILURE_RANK: Final = (
    RcptClass.IP_BLAMED,
    RcptClass.POLICY_BLOCK,
    RcptClass.RATE_LIMITED,
    RcptClass.SERVER_BUSY,
    RcptClass.PROTOCOL_ERROR,
    RcptClass.TEMPORARY_ERROR,
    RcptClass.DISCONNECTED,
    RcptClass.TIMEOUT,
    RcptClass.CONNECTION_FAILED,
)
GIVE_UP_AT_ONCE: Final = frozenset(
    {RcptClass.IP_BLAMED, RcptClass.POLICY_BLOCK, RcptClass.PROTOCOL_ERROR}
)
PACE_FAILURES: Final = frozenset({RcptClass.RATE_LIMITED, RcptClass.SERVER_BUSY})
DEFERRED_ONCE: Final = frozenset({RcptClass.MAILBOX_FULL_TEMPORARY, RcptClass.TEMPORARY_ERROR})


@dataclass
class ProbeOutcome:
    """`probes`: one row per plan row (PROBE_SCHEMA); `replies`: every raw reply and failure
    (REPLY_SCHEMA); `stats`: sessions, rcpts_sent, retries, per_mx, makespan_s, data_commands."""

    probes: pl.DataFrame
    replies: pl.DataFrame
    stats: dict[str, Any]


def probe_addresses(
    plan: pl.DataFrame,
    config: Config,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressListener | None = None,
) -> ProbeOutcome:
    """The stage's one event-loop entry point for synchronous callers."""
    return asyncio.run(
        probe_addresses_async(plan, config, checkpoint_dir=checkpoint_dir, progress=progress)
    )


async def probe_addresses_async(
    plan: pl.DataFrame,
    config: Config,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressListener | None = None,
) -> ProbeOutcome:
    """Probes every planned address on the running loop (see the module docstring)."""
    store = CheckpointStore(checkpoint_dir) if checkpoint_dir is not None else None
    prober = _Prober(config, store, progress or SilentProgress())
    try:
        return await prober.run(plan)
    finally:
        if store is not None:
            store.close()


# --- State ---


@dataclass(eq=False, slots=True)
class _Item:
    """One RCPT to get an answer for: an address of the plan or a domain's catch-all probe."""

    address: str
    domain: str
    group: _Group
    catch_all_probe: bool = False
    attempts: int = 0
    greylist_round: int = 0
    deferred: bool = False
    lost: int = 0
    limit_retries: int = 0


@dataclass(eq=False)
class _Group:
    plan: MxGroup
    ready: deque[_Item] = field(default_factory=deque)
    remaining: int = 0  # items not final yet
    workers: int = 0
    rounds: int = 0  # sessions started for this group
    verdict: _Failure | None = None
    wake: asyncio.TimerHandle | None = None
    domains: set[str] = field(default_factory=set)

    @property
    def routes(self) -> tuple[Route, ...]:
        return self.plan.routes


@dataclass(frozen=True, slots=True)
class _Failure:
    rcpt_class: RcptClass
    step: Step
    message: str
    reply: Reply | None
    route: Route


@dataclass(eq=False)
class _Health:
    """Strikes in a row against a route (connection trouble) or a host (pace trouble)."""

    strikes: int = 0
    last_strike: float = -math.inf
    paused_until: float = 0.0
    gave_up: _Failure | None = None


class _Slots:
    """A counting semaphore whose limit can drop, serving waiters by priority (lowest first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.peak = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: float = 0.0) -> None:
        if self.active < self.limit and not self._waiters:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled in the same breath: give it back
            raise

    def release(self) -> None:
        self.active -= 1
        while self._waiters and self.active < self.limit:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._take()
                future.set_result(None)

    def _take(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)


@dataclass(eq=False)
class _Host:
    """An MX host's pool and pace, learnt from its answers during the run."""

    name: str
    slots: _Slots
    pace: _Health = field(default_factory=_Health)
    batch_limit: int = 10_000  # lowered by 452 4.5.3 (too many recipients per message)
    figures: Counter[str] = field(default_factory=Counter)
    pipelining: bool | None = None


@dataclass(eq=False)
class _Domain:
    catch_all: bool | None = None
    final: bool = True  # False while the catch-all probe is owed or out
    probe_owed: bool = False
    held: list[tuple[Any, ...]] = field(default_factory=list)  # finished rows awaiting `final`


class _ReplyLog:
    """Every reply and failure, column by column (cheap to append, one frame at the end)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in REPLY_SCHEMA}
        self.flushed = 0

    def add(self, *values: Any) -> None:
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self.columns[schema.EMAIL_NORMALIZED])

    def frame(self, start: int = 0) -> pl.DataFrame:
        data = {name: values[start:] for name, values in self.columns.items()}
        return _typed(data, REPLY_SCHEMA, "at")

    def rows(self, start: int = 0) -> list[dict[str, Any]]:
        """Replies from `start` on as rows for the checkpoint (cheaper than a frame)."""
        names = list(self.columns)
        values = (column[start:] for column in self.columns.values())
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _typed(
    data: dict[str, list[Any]], target: dict[str, pl.DataType], time_column: str
) -> pl.DataFrame:
    """A frame from columns, the time column given in epoch microseconds."""
    loose = {**target, time_column: pl.Int64()}
    frame = pl.DataFrame(data, schema=loose)
    return frame.with_columns(
        pl.col(time_column).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )


def _now_us() -> int:
    return time.time_ns() // 1000


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- The prober ---


class _Prober:
    def __init__(
        self, config: Config, store: CheckpointStore | None, progress: ProgressListener
    ) -> None:
        self.config = config
        self.store = store
        self.progress = progress
        self.loop = asyncio.get_running_loop()
        self.replies = _ReplyLog()
        self.rows: list[tuple[Any, ...]] = []  # finished, domain final, in finishing order
        self.flushed_rows = 0
        self.groups: list[_Group] = []
        self.hosts: dict[str, _Host] = {}
        self.routes: dict[Route, _Health] = {}
        self.domains: dict[str, _Domain] = {}
        self.global_slots = _Slots(config.smtp_global_concurrency)
        self.timers: list[asyncio.TimerHandle] = []  # cancelled at the end, fired or not
        self.open_groups = 0
        self.all_done = asyncio.Event()
        self.task_group: asyncio.TaskGroup | None = None
        self.session_serial = itertools.count(1)
        self.run_token = secrets.token_hex(3)
        self.rng = random.Random()
        self.figures: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()

    # --- run ---

    async def run(self, plan: pl.DataFrame) -> ProbeOutcome:
        started = time.perf_counter()
        resumed = (
            self.store.load(PROBES_TABLE, PROBE_SCHEMA)
            if self.store
            else pl.DataFrame(schema=PROBE_SCHEMA)
        )
        planned = plan_probes(plan, skip=resumed.get_column(schema.EMAIL_NORMALIZED))
        if planned.groups and not (self.config.helo and self.config.mail_from):
            raise InputError(
                "SMTP probing needs an honest identity: set --helo to this host's FQDN and "
                "--mail-from to an address on your own domain"
            )
        total = (
            resumed.height + len(planned.decisions) + sum(len(g.addresses) for g in planned.groups)
        )
        self.progress.start(STAGE, total)
        self.progress.advance(STAGE, resumed.height + len(planned.decisions))
        self._prepare(planned, resumed)
        try:
            if self.open_groups:
                async with asyncio.TaskGroup() as task_group:
                    self.task_group = task_group
                    for group in self.groups:
                        self._staff(group)
                    await self.all_done.wait()
        finally:
            for timer in self.timers:
                timer.cancel()
            for group in self.groups:
                if group.wake is not None:
                    group.wake.cancel()
        self._checkpoint()
        self.progress.finish(STAGE)
        return self._outcome(plan, planned, resumed, time.perf_counter() - started)

    def _prepare(self, planned: ProbePlan, resumed: pl.DataFrame) -> None:
        known = dict(
            resumed.group_by(schema.DOMAIN).agg(pl.col("domain_catch_all").first()).iter_rows()
        )
        for plan_group in planned.groups:
            group = _Group(plan_group)
            for address, domain in plan_group.addresses:
                group.ready.append(_Item(address, domain, group))
                if domain not in self.domains:
                    owed = (
                        self.config.catch_all_probe
                        and not plan_group.one_rcpt_per_session
                        and domain not in known
                    )
                    self.domains[domain] = _Domain(
                        catch_all=known.get(domain), final=not owed, probe_owed=owed
                    )
                group.domains.add(domain)
            group.remaining = len(group.ready)
            self.groups.append(group)
            for route in group.routes:
                self.routes.setdefault(route, _Health())
                if route.host not in self.hosts:
                    self.hosts[route.host] = _Host(
                        route.host, _Slots(self.config.smtp_per_mx_concurrency)
                    )
        self.open_groups = len(self.groups)

    # --- staffing: workers per group ---

    def _staff(self, group: _Group) -> None:
        """Starts as many workers as the group's ready work and its host's pool can use."""
        if not group.ready or self.task_group is None:
            return
        route = self._usable_route(group)
        if route is None:
            return
        batch = max(1, min(self.config.smtp_rcpt_per_session, self.hosts[route.host].batch_limit))
        wanted = min(math.ceil(len(group.ready) / batch), self.hosts[route.host].slots.limit)
        for _ in range(wanted - group.workers):
            group.workers += 1
            self.task_group.create_task(self._worker(group))

    def _usable_route(self, group: _Group) -> Route | None:
        """The first route neither given up nor paused. When all are paused, wakes the group
        when the first pause ends; when all are given up, the group's verdict decides."""
        now = self.loop.time()
        resume_at = math.inf
        for route in group.routes:
            health, pace = self.routes[route], self.hosts[route.host].pace
            if health.gave_up or pace.gave_up:
                continue
            paused_until = max(health.paused_until, pace.paused_until)
            if paused_until <= now:
                return route
            resume_at = min(resume_at, paused_until)
        if resume_at < math.inf:
            if group.wake is None or group.wake.when() > resume_at:
                if group.wake is not None:
                    group.wake.cancel()
                group.wake = self.loop.call_at(resume_at, self._wake, group)
            return None
        self._fail_group(group)
        return None

    def _wake(self, group: _Group) -> None:
        group.wake = None
        self._staff(group)

    def _fail_group(self, group: _Group) -> None:
        failures = [
            failure
            for route in group.routes
            if (failure := self.routes[route].gave_up or self.hosts[route.host].pace.gave_up)
        ]
        group.verdict = min(failures, key=lambda f: FAILURE_RANK.index(f.rcpt_class))
        while group.ready:
            self._decide_by_verdict(group.ready.popleft())

    async def _worker(self, group: _Group) -> None:
        try:
            while group.ready:
                route = self._usable_route(group)
                if route is None:
                    return
                host = self.hosts[route.host]
                await host.slots.acquire()
                try:
                    await self.global_slots.acquire(-len(group.ready))
                    try:
                        if group.ready and self._usable_route(group) == route:
                            await self._session(group, route, host)
                    finally:
                        self.global_slots.release()
                finally:
                    host.slots.release()
        finally:
            group.workers -= 1

    # --- one session ---

    async def _session(self, group: _Group, route: Route, host: _Host) -> None:
        config = self.config
        group.rounds += 1
        session_id = f"{self.run_token}-{next(self.session_serial)}"
        started = self.loop.time()
        in_flight: dict[str, _Item] = {}
        session_round = group.rounds

        def record(step: Step, rcpt: str | None, reply: Reply | None, note: str) -> None:
            item = in_flight.get(rcpt) if rcpt is not None else None
            self.replies.add(
                rcpt,
                item.domain if item else None,
                route.host,
                route.ip,
                session_id,
                step.value,
                reply.code if reply else None,
                reply.enhanced if reply else None,
                _short(reply.text if reply else note, MAX_REPLY_TEXT_CHARS),
                item.attempts if item else session_round,
                item.catch_all_probe if item else False,
                _now_us(),
            )

        session = SmtpSession(
            host=route.host,
            ip=route.ip,
            port=config.smtp_port,
            helo=config.helo or "",
            mail_from=config.mail_from or "",
            source_address=config.source_address,
            connect_timeout_s=config.smtp_connect_timeout_s,
            command_timeout_s=config.smtp_command_timeout_s,
            want_pipelining=config.smtp_pipelining,
            want_starttls=config.smtp_starttls,
            record=record,
        )
        host.figures["sessions"] += 1
        self.figures["sessions"] += 1
        try:
            try:
                await session.open()
            except SessionFailure as failure:
                self.figures["failed_sessions"] += 1
                self._session_failed(route, failure, started)
                return
            host.pipelining = session.pipelining
            await self._transactions(group, route, host, session, in_flight, started)
            if not session.closed:
                await session.quit()
        finally:
            if not session.closed:
                session.abort()  # cancelled mid-session: leave nothing open
            host.figures["round_trips"] += session.round_trips
            host.figures["errors"] += session.errors
            host.figures["transactions"] += session.transactions
            self.figures["round_trips"] += session.round_trips
            self.commands.update(session.commands)
            for item in in_flight.values():  # cancelled with RCPTs out: back to the queue
                group.ready.appendleft(item)

    async def _transactions(
        self,
        group: _Group,
        route: Route,
        host: _Host,
        session: SmtpSession,
        in_flight: dict[str, _Item],
        started: float,
    ) -> None:
        config = self.config
        budget = config.smtp_max_rejections_per_session
        full_batch = 1 if group.plan.one_rcpt_per_session else config.smtp_rcpt_per_session
        rotation_floor = math.ceil(ROTATION_SHARE * min(full_batch, budget))
        while not session.closed and group.ready and self._usable_route(group) == route:
            remaining = budget - session.errors
            size = min(full_batch, host.batch_limit, remaining)
            if size <= 0:
                if session.transactions:
                    return
                size = 1  # greeting errors (EHLO refused, HELO used) must not stall the queue
            batch = self._take_batch(group, size, session)
            if not batch:
                continue
            last = (
                group.plan.one_rcpt_per_session
                or remaining < rotation_floor
                or session.transactions + 1 >= MAX_TRANSACTIONS_PER_SESSION
                or not group.ready
            )
            for item in batch:
                item.attempts += 1
                in_flight[item.address] = item
            host.figures["rcpts"] += len(batch)
            self.figures["rcpts_sent"] += len(batch)
            result = await session.transaction([item.address for item in batch], then_quit=last)
            in_flight.clear()
            settled = self._settle(group, route, host, batch, result, started)
            # Every transaction, not every CHECKPOINT_ROWS: a kill must repeat only the batches in
            # flight (DESIGN §7). With 1000-row flushes a SIGKILL re-probed up to 70 finished
            # addresses per MX host (tests/engine/test_crash_resume.py).
            self._checkpoint()
            if not settled or last:
                return

    def _take_batch(self, group: _Group, size: int, session: SmtpSession) -> list[_Item]:
        """Up to `size` items; a domain's first batch also carries its catch-all probe."""
        batch: list[_Item] = []
        while group.ready and len(batch) < size:
            item = group.ready.popleft()
            if not item.address.isascii() and not session.smtputf8:
                self._decide(
                    item,
                    RcptClass.NOT_PROBED,
                    None,
                    "not probed: the server offers no SMTPUTF8 for this address (RFC 6531)",
                    None,
                    Route(session.host, session.ip),
                )
                continue
            domain = self.domains[item.domain]
            if domain.probe_owed:
                domain.probe_owed = False
                probe = _Item(_catch_all_address(item.domain), item.domain, group, True)
                group.remaining += 1
                batch.append(probe)
                self.figures["catch_all_probes"] += 1
                if len(batch) >= size:
                    group.ready.appendleft(item)
                    break
            batch.append(item)
        return batch

    # --- what the answers mean ---

    def _settle(
        self,
        group: _Group,
        route: Route,
        host: _Host,
        batch: list[_Item],
        result: Transaction,
        started: float,
    ) -> bool:
        """Decides or re-queues each item of a transaction; False when the session must end."""
        schedule = self.config.greylist_retry_s
        answered = False
        rate_limited: Reply | None = None
        accepted_before_limit = 0
        limit_seen = False
        unanswered: list[_Item] = []
        for item, reply in zip(batch, result.rcpts, strict=True):
            if reply is None:
                unanswered.append(item)
                continue
            if is_recipient_limit(reply):
                limit_seen = True
                item.limit_retries += 1
                if item.limit_retries > RECIPIENT_LIMIT_RETRIES:
                    self._decide(item, RcptClass.TEMPORARY_ERROR, reply, "", Step.RCPT, route)
                else:
                    self._retry(item, 0.0)
                continue
            if not limit_seen and 200 <= reply.code < 300:
                accepted_before_limit += 1
            rcpt_class = classify_rcpt(reply)
            if rcpt_class is RcptClass.RATE_LIMITED:
                rate_limited = reply
                self._retry(item, 0.0)
                continue
            answered = True
            if rcpt_class is RcptClass.GREYLISTED and item.greylist_round < len(schedule):
                item.greylist_round += 1
                self._retry(item, schedule[item.greylist_round - 1])
            elif rcpt_class in DEFERRED_ONCE and not item.deferred and schedule:
                item.deferred = True
                self._retry(item, schedule[0])
            else:
                self._decide(item, rcpt_class, reply, "", Step.RCPT, route)
        if limit_seen:
            host.batch_limit = max(1, accepted_before_limit)
        if answered:
            self.routes[route].strikes = 0
            host.pace.strikes = 0
        failure = result.failure
        if rate_limited is not None:  # the pace explains whatever else went wrong after it
            failure = SessionFailure(
                RcptClass.RATE_LIMITED, Step.RCPT, rate_limited.text, rate_limited
            )
        if failure is None:
            return True
        self._session_failed(route, failure, started)
        before_rcpt = failure.step in (Step.RSET, Step.MAIL)
        for item in unanswered:
            if before_rcpt or failure.rcpt_class in PACE_FAILURES:
                if before_rcpt:
                    item.attempts -= 1  # its RCPT was never really asked
                self._retry(item, 0.0)
            elif item.lost < LOST_REPLY_RETRIES:
                item.lost += 1
                self._retry(item, 0.0)
            else:
                self._decide(item, failure.rcpt_class, None, failure.message, failure.step, route)
        return False

    def _session_failed(self, route: Route, failure: SessionFailure, started: float) -> None:
        """Counts a failed session against its route or its host's pace."""
        record = _Failure(failure.rcpt_class, failure.step, failure.message, failure.reply, route)
        host = self.hosts[route.host]
        if failure.rcpt_class in PACE_FAILURES:
            host.figures["pace_strikes"] += 1
            host.slots.limit = max(1, host.slots.limit // 2)  # multiplicative decrease
            self._strike(host.pace, record, started)
        elif failure.rcpt_class in GIVE_UP_AT_ONCE and failure.step is not Step.RCPT:
            self.routes[route].gave_up = record
        else:
            self._strike(self.routes[route], record, started)

    def _strike(self, health: _Health, failure: _Failure, started: float) -> None:
        if started < health.last_strike:
            return  # began before the last strike: the same incident, seen by a sibling
        now = self.loop.time()
        health.strikes += 1
        health.last_strike = now
        if health.strikes >= STRIKE_LIMIT:
            health.gave_up = failure
            return
        backoff = self.config.smtp_backoff_s * 2 ** (health.strikes - 1)
        health.paused_until = now + backoff * self.rng.uniform(*BACKOFF_JITTER)

    def _retry(self, item: _Item, delay_s: float) -> None:
        """Puts an item back in its queue now or after `delay_s`, on a timer, not in a session."""
        self.figures["retries"] += 1
        if delay_s <= 0:
            self._release(item)
            return
        self.timers.append(self.loop.call_later(delay_s, self._release, item))

    def _release(self, item: _Item) -> None:
        group = item.group
        if group.verdict is not None:
            self._decide_by_verdict(item)
            return
        group.ready.append(item)
        self._staff(group)

    # --- decisions ---

    def _decide_by_verdict(self, item: _Item) -> None:
        verdict = item.group.verdict
        assert verdict is not None
        item.attempts = max(item.attempts, item.group.rounds)
        self._decide(
            item, verdict.rcpt_class, verdict.reply, verdict.message, verdict.step, verdict.route
        )

    def _decide(
        self,
        item: _Item,
        rcpt_class: RcptClass,
        reply: Reply | None,
        note: str,
        step: Step | None,
        route: Route | None,
    ) -> None:
        domain = self.domains[item.domain]
        group = item.group
        group.remaining -= 1
        if item.catch_all_probe:
            domain.catch_all = CATCH_ALL_EVIDENCE.get(rcpt_class)
            self._settle_domain(domain)
        else:
            row = (
                item.address,
                item.domain,
                route.host if route else group.plan.primary_host,
                route.ip if route else None,
                rcpt_class.value,
                reply.code if reply else None,
                reply.enhanced if reply else None,
                _short(reply.text if reply else note, MAX_MESSAGE_CHARS),
                None if rcpt_class is RcptClass.ACCEPTED else (step.value if step else None),
                item.attempts,
                _now_us(),
            )
            if domain.final:
                self.rows.append(row)
            else:
                domain.held.append(row)
            self.progress.advance(STAGE)
        if group.remaining == 0:
            self._group_finished(group)
        elif self.store is not None and len(self.rows) - self.flushed_rows >= CHECKPOINT_ROWS:
            self._checkpoint()

    def _settle_domain(self, domain: _Domain) -> None:
        domain.final = True
        domain.probe_owed = False
        self.rows.extend(domain.held)
        domain.held.clear()

    def _group_finished(self, group: _Group) -> None:
        for name in group.domains:  # a domain's addresses all share one group
            if not self.domains[name].final:
                self._settle_domain(self.domains[name])  # its probe never went out: unknown
        self.open_groups -= 1
        self._checkpoint()
        if self.open_groups == 0:
            self.all_done.set()

    def _checkpoint(self) -> None:
        if self.store is None or (
            len(self.rows) == self.flushed_rows and len(self.replies) == self.replies.flushed
        ):
            return
        names = [name for name in PROBE_SCHEMA if name != "domain_catch_all"]
        probes = [
            {
                **dict(zip(names, row, strict=True)),
                "domain_catch_all": self.domains[row[1]].catch_all,
            }
            for row in self.rows[self.flushed_rows :]
        ]
        self.store.write(
            {REPLIES_TABLE: self.replies.rows(self.replies.flushed), PROBES_TABLE: probes}
        )
        self.flushed_rows = len(self.rows)
        self.replies.flushed = len(self.replies)

    def _probe_frame(self, rows: Iterable[tuple[Any, ...]]) -> pl.DataFrame:
        names = [name for name in PROBE_SCHEMA if name != "domain_catch_all"]
        data: dict[str, list[Any]] = {name: [] for name in names}
        for row in rows:
            for column, value in zip(data.values(), row, strict=True):
                column.append(value)
        catch_all = [self.domains[domain].catch_all for domain in data[schema.DOMAIN]]
        frame = _typed(data, {n: PROBE_SCHEMA[n] for n in names}, "probed_at")
        return frame.with_columns(
            pl.Series("domain_catch_all", catch_all, dtype=pl.Boolean)
        ).select(list(PROBE_SCHEMA))

    # --- the outcome ---

    def _outcome(
        self, plan: pl.DataFrame, planned: ProbePlan, resumed: pl.DataFrame, elapsed_s: float
    ) -> ProbeOutcome:
        decided_at = _now_us()
        policy = _typed(
            {
                schema.EMAIL_NORMALIZED: [d.email for d in planned.decisions],
                schema.DOMAIN: [d.domain for d in planned.decisions],
                "mx_host": [d.mx_host for d in planned.decisions],
                "mx_ip": [None] * len(planned.decisions),
                "rcpt_class": [d.rcpt_class.value for d in planned.decisions],
                "smtp_response_code": [None] * len(planned.decisions),
                "smtp_enhanced_code": [None] * len(planned.decisions),
                "smtp_message": [d.message for d in planned.decisions],
                "failed_step": [None] * len(planned.decisions),
                "attempts": [0] * len(planned.decisions),
                "domain_catch_all": [d.domain_catch_all for d in planned.decisions],
                "probed_at": [decided_at] * len(planned.decisions),
            },
            PROBE_SCHEMA,
            "probed_at",
        )
        probed = self._probe_frame(self.rows)
        found = pl.concat([resumed, policy, probed], how="vertical")
        probes = plan.select(schema.EMAIL_NORMALIZED).join(
            found.unique(subset=schema.EMAIL_NORMALIZED, keep="first", maintain_order=True),
            on=schema.EMAIL_NORMALIZED,
            how="left",
            maintain_order="left",
        )
        if probes.get_column("rcpt_class").null_count():
            raise RuntimeError("the prober lost addresses of its plan (row conservation)")
        replies = self.replies.frame()
        if self.store is not None:
            replies = self.store.load(REPLIES_TABLE, REPLY_SCHEMA)
        return ProbeOutcome(probes, replies, self._stats(planned, resumed, elapsed_s))

    def _stats(self, planned: ProbePlan, resumed: pl.DataFrame, elapsed_s: float) -> dict[str, Any]:
        per_mx = {
            name: {
                "sessions": host.figures["sessions"],
                "transactions": host.figures["transactions"],
                "rcpts": host.figures["rcpts"],
                "round_trips": host.figures["round_trips"],
                "error_replies": host.figures["errors"],
                "max_concurrent_sessions": host.slots.peak,
                "concurrency_limit_at_end": host.slots.limit,
                "pace_strikes": host.figures["pace_strikes"],
                "batch_limit": min(host.batch_limit, self.config.smtp_rcpt_per_session),
                "pipelining": host.pipelining,
                "gave_up": _gave_up(self.hosts[name].pace, self.routes, name),
            }
            for name, host in self.hosts.items()
        }
        return {
            "addresses": sum(len(g.addresses) for g in planned.groups),
            "decided_by_policy": len(planned.decisions),
            "resumed_from_checkpoint": resumed.height,
            "mx_groups": len(planned.groups),
            "sessions": self.figures["sessions"],
            "failed_sessions": self.figures["failed_sessions"],
            "rcpts_sent": self.figures["rcpts_sent"],
            "catch_all_probes": self.figures["catch_all_probes"],
            "retries": self.figures["retries"],
            "round_trips": self.figures["round_trips"],
            "commands": dict(self.commands),
            "data_commands": self.commands["DATA"] + self.commands["BDAT"],
            "max_concurrent_sessions": self.global_slots.peak,
            "checkpoint_parts_written": self.store.parts_written if self.store else 0,
            "makespan_s": round(elapsed_s, 4),
            "per_mx": per_mx,
        }


def _gave_up(pace: _Health, routes: dict[Route, _Health], host: str) -> str | None:
    if pace.gave_up:
        return pace.gave_up.rcpt_class.value
    given_up = [h.gave_up for r, h in routes.items() if r.host == host and h.gave_up]
    return given_up[0].rcpt_class.value if given_up else None


def _catch_all_address(domain: str) -> str:
    """A local part no person picks: 24 random lower-case letters and digits (~124 bits)."""
    local = "".join(secrets.choice(CATCH_ALL_ALPHABET) for _ in range(CATCH_ALL_LOCAL_PART_LENGTH))
    return f"{local}@{domain}"
