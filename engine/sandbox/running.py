"""Starting and stopping a whole sandbox world: its DNS server and all its mail servers.

`run_world` is for synchronous callers (the CLI, tests): the servers run on a background thread
with their own event loop, so a caller's blocking code or its own event loop never stalls them.
`spawn_world` serves from a child process instead, for benchmarks, where the world's CPU must not
share the prober's GIL (each DNS answer costs ~100 µs of send/receive system calls on this VM).
`WorldServers` is the same world on the caller's running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Final, Self

from engine.sandbox.counters import WorldCounts
from engine.sandbox.dns_server import DnsServer
from engine.sandbox.smtp_server import SmtpServers
from engine.sandbox.world import World

DNS_HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 10.0
CHILD_START_TIMEOUT_S: Final = 60.0  # a fresh interpreter imports polars and dnslib first
STOP_TIMEOUT_S: Final = 10.0


class WorldServers:
    """A world's DNS and SMTP servers on the current event loop."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.dns = DnsServer(world.zone, latency_s=world.dns_latency_s)
        self.smtp = SmtpServers(world)

    async def start(self, *, dns_port: int = 0, smtp_port: int = 0) -> None:
        await self.dns.start(DNS_HOST, dns_port)
        try:
            await self.smtp.start(smtp_port)
        except BaseException:
            await self.dns.stop()
            raise

    async def stop(self) -> None:
        await self.smtp.stop()
        await self.dns.stop()

    def counters(self) -> WorldCounts:
        world, servers = self.smtp.ledger.snapshot()
        return WorldCounts(dns=self.dns.ledger.snapshot(), smtp=world, servers=servers)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class RunningWorld:
    """A world serving from a background thread; stop it (or leave its `with`) to free the ports."""

    def __init__(self, world: World, *, dns_port: int = 0, smtp_port: int = 0) -> None:
        self.world = world
        self._servers = WorldServers(world)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mailsift-sandbox", daemon=True
        )
        self._stopped = False
        self._thread.start()
        try:
            self._call(self._servers.start(dns_port=dns_port, smtp_port=smtp_port), START_TIMEOUT_S)
        except BaseException:
            self._halt_loop()
            raise

    @property
    def dns_host(self) -> str:
        return self._servers.dns.host

    @property
    def dns_port(self) -> int:
        return self._servers.dns.port

    @property
    def dns_address(self) -> str:
        """`127.0.0.1:PORT`, the form `--dns` and `MAILSIFT_DNS` take."""
        return self._servers.dns.address

    @property
    def smtp_port(self) -> int:
        """The one port every mail server of the world listens on (`--smtp-port`)."""
        return self._servers.smtp.port

    def address_of(self, server_name: str) -> str:
        return self.world.address_of(server_name)

    def counters(self) -> WorldCounts:
        """A consistent snapshot; safe from any thread, also after `stop`."""
        return self._servers.counters()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._call(self._servers.stop(), STOP_TIMEOUT_S)
        finally:
            self._halt_loop()

    def _call(self, coroutine: Coroutine[Any, Any, None], timeout_s: float) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _halt_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_world(world: World, *, dns_port: int = 0, smtp_port: int = 0) -> RunningWorld:
    """Starts `world` on loopback (free ports unless given) and returns it running.

    Use as `with run_world(world) as running:`; two worlds can run at once on different ports.
    """
    return RunningWorld(world, dns_port=dns_port, smtp_port=smtp_port)


class WorldProcess:
    """A world served by a child process; the same handle as `RunningWorld`."""

    def __init__(self, world: World, *, dns_port: int = 0, smtp_port: int = 0) -> None:
        self.world = world
        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self._connection, child_end = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve_in_child,
            args=(world, dns_port, smtp_port, child_end),
            name="mailsift-sandbox",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._stopped = False
        try:
            ready = self._connection.poll(CHILD_START_TIMEOUT_S)
            reply = self._connection.recv() if ready else ("error", "did not start in time")
        except EOFError:
            reply = ("error", "the child exited before it was ready (see its traceback)")
        if reply[0] != "ready":
            self._end_child()
            raise RuntimeError(f"sandbox world process failed: {reply[1]}")
        _, self.dns_host, self.dns_port, self.smtp_port = reply

    @property
    def dns_address(self) -> str:
        return f"{self.dns_host}:{self.dns_port}"

    def address_of(self, server_name: str) -> str:
        return self.world.address_of(server_name)

    def counters(self) -> WorldCounts:
        """A snapshot fetched from the child (until `stop`; the child's counts end with it)."""
        with self._lock:
            self._connection.send("counters")
            counts: WorldCounts = self._connection.recv()
            return counts

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with self._lock, contextlib.suppress(OSError):
            self._connection.send("stop")
        self._end_child()

    def _end_child(self) -> None:
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_world(world: World, *, dns_port: int = 0, smtp_port: int = 0) -> WorldProcess:
    """Starts `world` in a child process (~0.3 s to start) and returns its handle.

    The child is spawned, not forked, so a script calling this needs the usual
    `if __name__ == "__main__":` guard (multiprocessing's "safe importing of main module").
    """
    return WorldProcess(world, dns_port=dns_port, smtp_port=smtp_port)


def _serve_in_child(world: World, dns_port: int, smtp_port: int, connection: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        running = run_world(world, dns_port=dns_port, smtp_port=smtp_port)
    except BaseException as error:
        connection.send(("error", repr(error)))
        return
    with running:
        connection.send(("ready", running.dns_host, running.dns_port, running.smtp_port))
        while True:
            try:
                request = connection.recv()
            except EOFError:
                return  # the parent is gone
            if request != "counters":
                return
            connection.send(running.counters())


def serve_forever(
    world: World,
    *,
    dns_port: int = 0,
    smtp_port: int = 0,
    announce: Callable[[str], None] = print,
) -> None:
    """Serves `world` until Ctrl-C or SIGTERM (`mailsift sandbox`), announcing where it listens."""
    stop_requested = threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # signal handlers can only be set there
        previous = signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        _serve_until(world, dns_port, smtp_port, announce, stop_requested)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    announce("sandbox stopped")


def _serve_until(
    world: World,
    dns_port: int,
    smtp_port: int,
    announce: Callable[[str], None],
    stop_requested: threading.Event,
) -> None:
    with run_world(world, dns_port=dns_port, smtp_port=smtp_port) as running:
        announce(
            f"sandbox mail world: {len(world.domains)} domains, {len(world.servers)} mail servers"
        )
        announce(f"DNS  {running.dns_address}  (udp+tcp)")
        announce(f"SMTP port {running.smtp_port} on 127.0.0.2 and up")
        announce(
            f"use: MAILSIFT_DNS={running.dns_address} MAILSIFT_SMTP_PORT={running.smtp_port} "
            "MAILSIFT_ALLOW_LOOPBACK_MX=true MAILSIFT_HELO=verifier.mailsift.test "
            "MAILSIFT_MAIL_FROM=probe@verifier.mailsift.test"
        )
        with contextlib.suppress(KeyboardInterrupt):
            while not stop_requested.wait(timeout=1.0):
                pass
