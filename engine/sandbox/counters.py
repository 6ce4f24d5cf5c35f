"""What the sandbox servers saw, counted so tests can check the prober's manners.

The servers update the ledgers from their event-loop thread while tests read snapshots from
another thread, so every update and every snapshot holds the ledger's lock. Snapshots are
copies (plain, picklable data): a test can keep one and compare it with a later one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

# A hostile or broken client can send any word as a verb; only this much of it is kept.
MAX_VERB_LENGTH: Final = 16
DATA_VERBS: Final = frozenset({"DATA", "BDAT"})  # RFC 5321 §4.1.1.4 and RFC 3030 §2


@dataclass(frozen=True)
class SmtpCounts:
    """A snapshot of one mail server's (or the whole world's) SMTP traffic."""

    sessions: int = 0
    active_sessions: int = 0
    max_concurrent_sessions: int = 0
    commands: Mapping[str, int] = field(default_factory=dict)  # by verb, upper case
    rcpts: Mapping[str, int] = field(default_factory=dict)  # by address, lower case
    data_commands: int = 0  # DATA and BDAT: must stay 0, the prober never sends mail
    improper_pipelining: int = 0  # commands sent ahead of a reply to a non-PIPELINING server

    @property
    def rcpt_total(self) -> int:
        return sum(self.rcpts.values())

    def rcpts_to(self, address: str) -> int:
        return self.rcpts.get(address.lower(), 0)


@dataclass(frozen=True)
class DnsCounts:
    """A snapshot of the queries the sandbox DNS server received."""

    queries: int = 0
    tcp_queries: int = 0
    by_question: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (name, type)

    def of(self, name: str, qtype: str) -> int:
        return self.by_question.get((name.lower().rstrip("."), qtype.upper()), 0)


@dataclass(frozen=True)
class WorldCounts:
    """Everything a running world counted: DNS, the whole world's SMTP, each mail server's."""

    dns: DnsCounts
    smtp: SmtpCounts
    servers: Mapping[str, SmtpCounts]


class _SmtpTally:
    """Mutable counts of one scope (a server or the world); guarded by the ledger's lock."""

    __slots__ = ("active", "commands", "data", "improper", "max_active", "rcpts", "sessions")

    def __init__(self) -> None:
        self.sessions = 0
        self.active = 0
        self.max_active = 0
        self.commands: Counter[str] = Counter()
        self.rcpts: Counter[str] = Counter()
        self.data = 0
        self.improper = 0

    def snapshot(self) -> SmtpCounts:
        return SmtpCounts(
            sessions=self.sessions,
            active_sessions=self.active,
            max_concurrent_sessions=self.max_active,
            commands=dict(self.commands),
            rcpts=dict(self.rcpts),
            data_commands=self.data,
            improper_pipelining=self.improper,
        )


class SmtpLedger:
    """Counts per mail server and for the world at once, so world-wide concurrency is exact."""

    def __init__(self, server_names: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._world = _SmtpTally()
        self._servers = {name: _SmtpTally() for name in server_names}

    def session_opened(self, server: str) -> None:
        with self._lock:
            for tally in (self._servers[server], self._world):
                tally.sessions += 1
                tally.active += 1
                tally.max_active = max(tally.max_active, tally.active)

    def session_closed(self, server: str) -> None:
        with self._lock:
            self._servers[server].active -= 1
            self._world.active -= 1

    def command(self, server: str, verb: str, *, pipelined_improperly: bool = False) -> None:
        verb = verb[:MAX_VERB_LENGTH]
        with self._lock:
            for tally in (self._servers[server], self._world):
                tally.commands[verb] += 1
                tally.data += verb in DATA_VERBS
                tally.improper += pipelined_improperly

    def rcpt(self, server: str, address: str) -> None:
        address = address.lower()
        with self._lock:
            self._servers[server].rcpts[address] += 1
            self._world.rcpts[address] += 1

    def snapshot(self) -> tuple[SmtpCounts, dict[str, SmtpCounts]]:
        with self._lock:
            servers = {name: tally.snapshot() for name, tally in self._servers.items()}
            return self._world.snapshot(), servers


class DnsLedger:
    """Counts DNS queries by question (lower-case name without the final dot, type mnemonic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queries = 0
        self._tcp_queries = 0
        self._by_question: Counter[tuple[str, str]] = Counter()

    def query(self, name: str, qtype: str, *, tcp: bool) -> None:
        with self._lock:
            self._queries += 1
            self._tcp_queries += tcp
            self._by_question[(name, qtype)] += 1

    def snapshot(self) -> DnsCounts:
        with self._lock:
            return DnsCounts(
                queries=self._queries,
                tcp_queries=self._tcp_queries,
                by_question=dict(self._by_question),
            )
