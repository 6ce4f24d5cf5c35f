"""Fixtures for the sandbox's own tests: running worlds that always stop, and plain clients.

The SMTP client is a raw socket on purpose: the tests must see exactly the bytes a server sends
(multi-line replies, garbage, resets), which a full client library would interpret first.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import dns.resolver
import pytest

from engine.sandbox.running import RunningWorld, run_world
from engine.sandbox.world import World

CLIENT_TIMEOUT_S = 5.0


class SmtpDialogue:
    """A line-level SMTP client over a plain socket."""

    def __init__(self, address: str, port: int, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        self.sock = socket.create_connection((address, port), timeout=timeout_s)
        self._buffer = bytearray()

    def read_line(self) -> bytes:
        searched = 0
        while (end := self._buffer.find(b"\r\n", searched)) < 0:
            searched = max(0, len(self._buffer) - 1)  # a 10 MB line must not cost O(n^2)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionAbortedError("server closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def read_reply(self) -> tuple[int, list[str]]:
        """One reply: its code and the text of each of its lines (RFC 5321 §4.2.1)."""
        lines: list[str] = []
        while True:
            line = self.read_line().decode()
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def command(self, line: str) -> tuple[int, str]:
        self.send(line)
        code, lines = self.read_reply()
        return code, " ".join(lines)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def greet(self, helo: str = "prober.test") -> None:
        """Reads the banner and says EHLO, expecting both to succeed."""
        assert self.read_reply()[0] == 220
        assert self.command(f"EHLO {helo}")[0] == 250

    def is_closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_world() -> Iterator[Callable[[World], RunningWorld]]:
    """Starts worlds on free loopback ports and stops every one of them after the test."""
    started: list[RunningWorld] = []

    def start(world: World) -> RunningWorld:
        running = run_world(world)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def smtp_to() -> Iterator[Callable[[RunningWorld, str], SmtpDialogue]]:
    """Opens raw SMTP connections to a running world's servers; closes them after the test."""
    opened: list[SmtpDialogue] = []

    def connect(running: RunningWorld, server_name: str) -> SmtpDialogue:
        dialogue = SmtpDialogue(running.address_of(server_name), running.smtp_port)
        opened.append(dialogue)
        return dialogue

    yield connect
    for dialogue in opened:
        dialogue.close()


def sandbox_resolver(running: RunningWorld, lifetime_s: float = 3.0) -> dns.resolver.Resolver:
    """dnspython pointed at the world's DNS, never at the system resolver."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [running.dns_host]
    resolver.port = running.dns_port
    resolver.timeout = lifetime_s
    resolver.lifetime = lifetime_s
    return resolver


@pytest.fixture
def resolver_for() -> Callable[..., dns.resolver.Resolver]:
    return sandbox_resolver


def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """Polls a condition the servers' thread makes true a moment later (counters, closes)."""
    return wait_until
