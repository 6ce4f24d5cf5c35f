"""`mailsift doctor`: the preflight table, its JSON, and its exit code (1 only when a check fails).

Each test points the command at a small sandbox world with `--dns` and `--smtp-port`; loopback
mail servers are allowed through the environment, as `mailsift sandbox` tells users to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine.sandbox.running import RunningWorld
from engine.sandbox.world import Domain, MailServer, World, reverse_name
from pipelines.cli import EXIT_FAILURE, EXIT_OK, main
from tests.engine.test_smtp_support import HELO, MAIL_FROM, running_worlds

OURS = "127.0.0.1"
MX_HOST = "mx.mailsift.test"
LISTING_ZONE = "bl.sandbox.test"


def world(*, ptr: bool = True, dmarc: bool = True) -> World:
    domains = [
        Domain(
            "mailsift.test",
            mx=[MX_HOST],
            spf=f"v=spf1 ip4:{OURS} -all",
            dmarc="v=DMARC1; p=reject" if dmarc else None,
        ),
        Domain(HELO, a=[OURS]),
        Domain("1.0.0.127." + LISTING_ZONE, a=["127.0.0.2"]),
    ]
    if ptr:
        domains.append(Domain(reverse_name(OURS), ptr=[HELO]))
    return World(servers=[MailServer(MX_HOST)], domains=domains)


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("MAILSIFT_ALLOW_LOOPBACK_MX", "true")
    monkeypatch.setenv("MAILSIFT_DNS_TIMEOUT_S", "0.5")
    monkeypatch.setenv("MAILSIFT_DNS_RETRIES", "0")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps a piped table at 80 columns
    with running_worlds() as start_world:
        yield start_world


def doctor(running: RunningWorld, *extra: str, identity: bool = True) -> int:
    args = ["doctor", "--dns", running.dns_address, "--smtp-port", str(running.smtp_port)]
    if identity:
        args += ["--helo", HELO, "--mail-from", MAIL_FROM]
    return main([*args, *extra])


def test_healthy_setup_prints_a_passing_table_and_exits_0(start, capsys):
    running = start(world())

    assert doctor(running) == EXIT_OK

    out = capsys.readouterr().out
    for check in ("DNS servers", "outbound SMTP port", "HELO name and reverse DNS"):
        assert check in out
    assert "pass" in out and "fail" not in out
    assert "skip" in out  # blocklists are off unless --dnsbl is given


def test_a_failing_check_exits_1_and_json_carries_the_fix(start, capsys):
    running = start(world(ptr=False))

    assert doctor(running, "--json") == EXIT_FAILURE

    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    helo = results["HELO name and reverse DNS"]
    assert helo["outcome"] == "fail"
    assert "no reverse DNS" in helo["detail"]
    assert HELO in helo["fix"]
    assert results["outbound SMTP port"]["outcome"] == "pass"


def test_warnings_alone_exit_0(start, capsys):
    running = start(world(dmarc=False))

    assert doctor(running, "--json") == EXIT_OK

    results = {r["name"]: r["outcome"] for r in json.loads(capsys.readouterr().out)}
    assert results["MAIL FROM domain SPF / DMARC"] == "warn"


def test_dnsbl_zone_listing_our_address_fails(start, capsys):
    running = start(world())

    assert doctor(running, "--dnsbl", LISTING_ZONE, "--json") == EXIT_FAILURE

    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert results["DNS blocklists"]["outcome"] == "fail"
    assert f"listed on {LISTING_ZONE}" in results["DNS blocklists"]["detail"]


def test_missing_identity_fails_with_the_flags_to_set(start, capsys):
    running = start(world())

    assert doctor(running, identity=False) == EXIT_FAILURE

    assert "set --helo / --mail-from" in capsys.readouterr().out


def test_sandbox_world_publishes_a_healthy_verifier_identity(capsys):
    assert main(["doctor", "--sandbox", "--json"]) == EXIT_OK

    outcomes = {r["name"]: r["outcome"] for r in json.loads(capsys.readouterr().out)}
    assert set(outcomes.values()) == {"pass", "skip"}


def test_a_probe_domain_no_zone_can_hold_is_a_usage_error(capsys):
    assert main(["doctor", "--probe-domain", "not a domain", "--dns", "127.0.0.1:9"]) == 2

    assert "--probe-domain 'not a domain'" in capsys.readouterr().err
