"""Shared helpers of the tests that run `mailsift verify` as a process against a sandbox world.

The world is the demo world with every behaviour whose answer depends on timing taken out
(greylisting, rate limits, 452 "try later" mailboxes, recipient caps) and with the misbehaving
servers that make the prober wait out timeouts and back-offs (tarpit, busy, resets) replaced by
one that is given up at once (an HTTP banner). Every address then gets exactly one RCPT and the
same verdict in every run, so a test can demand equality rather than "close enough".
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from engine.sandbox.demo_world import demo_world
from engine.sandbox.probe_settings import sandbox_overrides
from engine.sandbox.running import RunningWorld
from engine.sandbox.world import Behaviour, DnsFault, World

REPO: Final = Path(__file__).resolve().parents[2]
MAILSIFT: Final = (sys.executable, "-m", "pipelines.cli")
# Behaviours whose answer is the same at every attempt and costs no timeout or back-off; every
# other server (tarpit, busy, resets, ...) becomes an HTTP banner, which is given up at once.
_CALM: Final = frozenset(
    {
        Behaviour.STRICT,
        Behaviour.CATCH_ALL,
        Behaviour.POLICY_BLOCK,
        Behaviour.BLAME_IP_AT_BANNER,
        Behaviour.BLAME_IP_AT_RCPT,
        Behaviour.HTTP_BANNER,
        Behaviour.BINARY_GARBAGE,
    }
)
# The failover domain's primary refuses connections by design and its secondary answers.
_REFUSED_KEPT: Final = "mx0.failover.example"


def calm_world(server_latency_s: float) -> World:
    """The demo world with timing-dependent answers removed; every server replies after
    `server_latency_s`."""
    world = demo_world(server_latency_s=(0.0, 0.0), dns_latency_s=0.0)
    servers = []
    for server in world.servers:
        calm = server.behaviour in _CALM or server.name == _REFUSED_KEPT
        servers.append(
            dataclasses.replace(
                server,
                behaviour=server.behaviour if calm else Behaviour.HTTP_BANNER,
                greylist=None,
                rate_limit=None,
                max_rcpt=None,
                full_temporary=(),  # 452 4.2.2 is retried later: a second RCPT by design
                latency_s=server_latency_s,
            )
        )
    domains = [
        # A dropped query costs every retry's timeout; SERVFAIL is the same unknown, at once.
        dataclasses.replace(domain, fault=DnsFault.SERVFAIL)
        if domain.fault is DnsFault.TIMEOUT
        else domain
        for domain in world.domains
    ]
    return World(servers=servers, domains=domains, dns_latency_s=0.0)


def verify_env(running: RunningWorld) -> dict[str, str]:
    """The environment of a `mailsift verify` process pointed at `running` (and nothing else)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MAILSIFT_")}
    overrides = sandbox_overrides(running.dns_address, running.smtp_port)
    del overrides["sandbox"]  # it would start a world of its own
    for name, value in overrides.items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        env[f"MAILSIFT_{name.upper()}"] = text
    return env


def verify_command(source: Path, out: Path, data_dir: Path, *options: str) -> list[str]:
    return [
        *MAILSIFT,
        "verify",
        str(source),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--no-progress",
        *options,
    ]


def start_verify(
    running: RunningWorld, source: Path, out: Path, data_dir: Path, *options: str
) -> subprocess.Popen[bytes]:
    """Starts `mailsift verify` with its output in files beside `out` (no pipe to fill up)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.with_suffix(".stdout").open("ab") as stdout,
        out.with_suffix(".stderr").open("ab") as stderr,
    ):
        return subprocess.Popen(
            verify_command(source, out, data_dir, *options),
            cwd=REPO,
            env=verify_env(running),
            stdout=stdout,
            stderr=stderr,
        )


def stderr_of(out: Path) -> str:
    path = out.with_suffix(".stderr")
    return path.read_text(errors="replace") if path.exists() else ""
