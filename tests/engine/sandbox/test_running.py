"""Specification of running a world: it starts on free loopback ports and stops leaving none."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.resolver
import pytest

from engine.sandbox.running import WorldServers, run_world, spawn_world
from engine.sandbox.world import Behaviour, Domain, MailServer, World

REPO = Path(__file__).resolve().parents[3]
WORLD = World(
    servers=[
        MailServer("mx.a.test", mailboxes={"alice"}),
        MailServer("mx.b.test", behaviour=Behaviour.TARPIT),
        MailServer("mx.c.test", behaviour=Behaviour.REFUSED),
    ],
    domains=[Domain("a.test", mx=["mx.a.test"])],
)


def can_bind(address: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


def test_all_mail_servers_share_one_port_and_dns_has_its_own():
    with run_world(WORLD) as running:
        host, port = running.dns_address.split(":")
        assert (host, int(port)) == ("127.0.0.1", running.dns_port)
        for server in ("mx.a.test", "mx.b.test", "mx.c.test"):
            assert not can_bind(running.address_of(server), running.smtp_port)
        with socket.create_connection(("127.0.0.2", running.smtp_port), timeout=2) as sock:
            assert sock.recv(100).startswith(b"220 mx.a.test")


def test_stopping_releases_every_port_even_with_a_client_still_connected():
    running = run_world(WORLD)
    tarpitted = socket.create_connection(("127.0.0.3", running.smtp_port), timeout=2)
    smtp_port, dns_port = running.smtp_port, running.dns_port

    running.stop()

    with pytest.raises(ConnectionResetError):  # a RST: no TIME_WAIT holds the port afterwards
        tarpitted.recv(1)
    tarpitted.close()
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert can_bind(address, smtp_port)
    assert can_bind("127.0.0.1", dns_port, socket.SOCK_DGRAM)
    assert can_bind("127.0.0.1", dns_port)


def test_stop_is_idempotent_and_counters_outlive_it():
    running = run_world(WORLD)
    with socket.create_connection(("127.0.0.2", running.smtp_port), timeout=2) as sock:
        sock.recv(100)
    running.stop()
    running.stop()

    assert running.counters().servers["mx.a.test"].sessions == 1


def test_two_worlds_run_at_once_on_different_ports(resolver_for):
    with run_world(WORLD) as first, run_world(WORLD) as second:
        assert first.smtp_port != second.smtp_port
        assert first.dns_port != second.dns_port
        for running in (first, second):
            assert [r.address for r in resolver_for(running).resolve("mx.a.test", "A")] == [
                "127.0.0.2"
            ]
        assert first.counters().dns.queries == second.counters().dns.queries == 1


def test_a_fixed_port_that_is_taken_is_an_error():
    with run_world(WORLD) as running, pytest.raises(OSError):
        run_world(WORLD, smtp_port=running.smtp_port)


def test_world_servers_run_on_the_callers_event_loop():
    async def scenario() -> str:
        async with WorldServers(WORLD) as servers:
            reader, writer = await asyncio.open_connection("127.0.0.2", servers.smtp.port)
            banner = await asyncio.wait_for(reader.readline(), 2)
            writer.close()
            return banner.decode()

    assert asyncio.run(scenario()).startswith("220 mx.a.test")


def test_a_world_in_a_child_process_serves_counts_and_stops(resolver_for):
    with spawn_world(WORLD) as child:
        assert [r.address for r in resolver_for(child).resolve("mx.a.test", "A")] == ["127.0.0.2"]
        with socket.create_connection(("127.0.0.2", child.smtp_port), timeout=2) as sock:
            assert sock.recv(100).startswith(b"220 mx.a.test")
        counts = child.counters()
        assert counts.dns.of("mx.a.test", "A") == 1
        assert counts.servers["mx.a.test"].sessions == 1
        smtp_port = child.smtp_port

    assert can_bind("127.0.0.2", smtp_port)


def test_python_m_engine_sandbox_serves_the_demo_world_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.sandbox", "--fast"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        announced = ""
        while "MAILSIFT_DNS=" not in announced:
            line = process.stdout.readline()
            assert line, "the sandbox exited before announcing its addresses"
            announced += line
        dns_address = announced.split("MAILSIFT_DNS=")[1].split()[0]
        host, port = dns_address.split(":")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = [host], int(port), 3
        assert resolver.resolve("gmail.com", "MX")[0].exchange.to_text() == (
            "gmail-smtp-in.l.google.com."
        )

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
