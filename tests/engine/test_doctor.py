"""Specification of the preflight (`mailsift doctor`): each check passes in a healthy sandbox
world and fails (or warns) in a world that plays the one fault it looks for.

The prober's identity is the test helpers' (HELO prober.mailsift.test, MAIL FROM
probe@mailsift.test); its address is 127.0.0.1, the source of every loopback connection.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import dns.resolver
import pytest

from engine.config import Config
from engine.doctor import CheckResult, Outcome, has_failures, run_doctor
from engine.sandbox.running import RunningWorld
from engine.sandbox.world import Behaviour, DnsFault, Domain, MailServer, Mx, World, reverse_name
from tests.engine.test_smtp_support import HELO, probe_config, running_worlds

OURS = "127.0.0.1"
SENDER_DOMAIN = "mailsift.test"
MX_HOST = "mx.mailsift.test"
SPF = f"v=spf1 ip4:{OURS} -all"
DMARC = "v=DMARC1; p=reject"
LISTING_ZONE = "bl.sandbox.test"
REFUSING_ZONE = "refusing.sandbox.test"
CLEAN_ZONE = "clean.sandbox.test"


def dnsbl_name(address: str, zone: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + zone


def identity(
    *,
    mx: MailServer | None = None,
    sender: Domain | None = None,
    helo_addresses: tuple[str, ...] = (OURS,),
    ptr: tuple[str, ...] = (HELO,),
    extra: tuple[Domain, ...] = (),
    extra_servers: tuple[MailServer, ...] = (),
) -> World:
    """The prober's own corner of DNS, healthy unless a part is replaced."""
    server = mx or MailServer(MX_HOST)
    domains = [
        sender or Domain(SENDER_DOMAIN, mx=[server.name], spf=SPF, dmarc=DMARC),
        Domain(HELO, a=helo_addresses),
        *extra,
    ]
    if ptr:
        domains.append(Domain(reverse_name(OURS), ptr=ptr))
    return World(servers=[server, *extra_servers], domains=domains)


@pytest.fixture
def start() -> Iterator[Any]:
    with running_worlds() as start_world:
        yield start_world


def doctor_config(running: RunningWorld, **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "allow_loopback_mx": True,
        "dns_timeout_s": 0.5,
        "dns_retries": 0,
        "smtp_connect_timeout_s": 1.0,
        "smtp_command_timeout_s": 1.0,
    }
    return probe_config(running, **(settings | overrides))


def check(results: list[CheckResult], name: str) -> CheckResult:
    [found] = [result for result in results if result.name == name]
    return found


DNS, PORT, HELO_CHECK, SENDER, BLOCKLISTS = (
    "DNS servers",
    "outbound SMTP port",
    "HELO name and reverse DNS",
    "MAIL FROM domain SPF / DMARC",
    "DNS blocklists",
)


# --- the healthy world ---


def test_healthy_setup_passes_every_check_and_skips_blocklists(start):
    running = start(identity())

    results = run_doctor(doctor_config(running))

    assert [result.name for result in results] == [DNS, PORT, HELO_CHECK, SENDER, BLOCKLISTS]
    assert {r.name: r.outcome for r in results} == {
        DNS: Outcome.PASS,
        PORT: Outcome.PASS,
        HELO_CHECK: Outcome.PASS,
        SENDER: Outcome.PASS,
        BLOCKLISTS: Outcome.SKIP,
    }
    assert not has_failures(results)
    assert f"{HELO} -> {OURS} -> {HELO}" in check(results, HELO_CHECK).detail


def test_every_result_has_a_one_line_detail_and_every_problem_a_fix(start):
    running = start(identity(ptr=(), sender=Domain(SENDER_DOMAIN, mx=[MX_HOST])))

    results = run_doctor(doctor_config(running))

    for result in results:
        assert result.detail and "\n" not in result.detail and "\n" not in result.fix
        if result.outcome in (Outcome.FAIL, Outcome.WARN):
            assert result.fix


# --- (1) outbound port 25 ---


def test_port_check_reads_the_banner_and_quits_without_mail_or_rcpt(start):
    running = start(identity())

    run_doctor(doctor_config(running))

    counts = running.counters().servers[MX_HOST]
    assert counts.sessions == 1
    assert dict(counts.commands) == {"QUIT": 1}
    assert counts.data_commands == 0 and counts.rcpt_total == 0


def test_refused_port_25_fails_with_the_blocked_port_fix(start):
    running = start(identity(mx=MailServer(MX_HOST, Behaviour.REFUSED)))

    results = run_doctor(doctor_config(running))

    port = check(results, PORT)
    assert port.outcome is Outcome.FAIL
    assert "connection refused" in port.detail
    assert "blocked" in port.fix
    assert has_failures(results)


def test_tarpit_fails_within_the_banner_timeout(start):
    running = start(identity(mx=MailServer(MX_HOST, Behaviour.TARPIT)))

    started = time.monotonic()
    results = run_doctor(doctor_config(running, smtp_command_timeout_s=0.5))

    port = check(results, PORT)
    assert port.outcome is Outcome.FAIL
    assert "no greeting within 0.5 s" in port.detail
    assert time.monotonic() - started < 5


def test_a_check_past_its_time_budget_fails_and_the_rest_still_run(start, monkeypatch):
    monkeypatch.setattr("engine.doctor.check_budget_s", lambda config: 0.3)
    running = start(identity(mx=MailServer(MX_HOST, Behaviour.TARPIT)))

    started = time.monotonic()
    results = run_doctor(doctor_config(running, smtp_command_timeout_s=5.0))

    assert check(results, PORT).outcome is Outcome.FAIL
    assert check(results, PORT).detail == "did not finish within 0.3 s"
    assert check(results, SENDER).outcome is Outcome.PASS
    assert time.monotonic() - started < 3


def test_greeting_that_blames_our_address_warns(start):
    running = start(identity(mx=MailServer(MX_HOST, Behaviour.BLAME_IP_AT_BANNER)))

    port = check(run_doctor(doctor_config(running)), PORT)

    assert port.outcome is Outcome.WARN
    assert "554" in port.detail
    assert running.counters().servers[MX_HOST].commands == {"QUIT": 1}


def test_a_refusing_primary_mx_is_passed_over_for_the_next_one(start):
    primary = MailServer("mx0.mailsift.test", Behaviour.REFUSED)
    world = identity(
        mx=primary,
        sender=Domain(SENDER_DOMAIN, mx=[Mx(primary.name, 10), Mx(MX_HOST, 20)], spf=SPF),
        extra_servers=(MailServer(MX_HOST),),
    )
    running = start(world)

    port = check(run_doctor(doctor_config(running)), PORT)

    assert port.outcome is Outcome.PASS
    assert MX_HOST in port.detail


def test_probe_domain_option_dials_another_domain(start):
    other = MailServer("mx.elsewhere.test")
    running = start(
        identity(
            mx=MailServer(MX_HOST, Behaviour.REFUSED),
            extra=(Domain("elsewhere.test", mx=[other.name]),),
            extra_servers=(other,),
        )
    )

    port = check(run_doctor(doctor_config(running), probe_domain="elsewhere.test"), PORT)

    assert port.outcome is Outcome.PASS
    assert "mx.elsewhere.test" in port.detail


def test_loopback_mx_is_not_dialled_unless_the_config_allows_it(start):
    running = start(identity())
    config = doctor_config(running, allow_loopback_mx=False, sandbox=False)

    port = check(run_doctor(config), PORT)

    assert port.outcome is Outcome.FAIL
    assert "no MX host" in port.detail
    assert running.counters().smtp.sessions == 0


# --- (2) HELO name and forward-confirmed reverse DNS ---


def test_helo_without_reverse_dns_fails(start):
    running = start(identity(ptr=()))

    helo = check(run_doctor(doctor_config(running)), HELO_CHECK)

    assert helo.outcome is Outcome.FAIL
    assert f"{OURS} has no reverse DNS" in helo.detail
    assert f"PTR to {HELO}" in helo.fix


def test_ptr_naming_another_host_fails(start):
    running = start(identity(ptr=("somebody-else.test",)))

    helo = check(run_doctor(doctor_config(running)), HELO_CHECK)

    assert helo.outcome is Outcome.FAIL
    assert "is somebody-else.test, not prober.mailsift.test" in helo.detail


def test_helo_resolving_to_another_address_fails(start):
    running = start(identity(helo_addresses=("127.0.0.9",)))

    helo = check(run_doctor(doctor_config(running)), HELO_CHECK)

    assert helo.outcome is Outcome.FAIL
    assert "resolves to 127.0.0.9, not to our address 127.0.0.1" in helo.detail


def test_helo_that_does_not_resolve_fails(start):
    running = start(identity())

    helo = check(run_doctor(doctor_config(running, helo="nowhere.mailsift.test")), HELO_CHECK)

    assert helo.outcome is Outcome.FAIL
    assert "does not resolve" in helo.detail


def test_source_address_is_the_address_checked(start):
    running = start(identity(helo_addresses=("127.0.0.9",)))

    results = run_doctor(doctor_config(running, source_address="127.0.0.9"))

    assert check(results, PORT).outcome is Outcome.PASS
    helo = check(results, HELO_CHECK)
    assert helo.outcome is Outcome.FAIL
    assert "our address 127.0.0.9 has no reverse DNS" in helo.detail


def test_unknown_own_address_with_forward_confirmed_helo_warns(start):
    running = start(identity(mx=MailServer(MX_HOST, Behaviour.REFUSED)))

    helo = check(run_doctor(doctor_config(running)), HELO_CHECK)

    assert helo.outcome is Outcome.WARN
    assert "our own address is unknown" in helo.detail


def test_missing_helo_and_mail_from_fail_with_the_identity_fix(start):
    running = start(identity())

    results = run_doctor(doctor_config(running, helo=None, mail_from=None))

    for name in (DNS, PORT, HELO_CHECK, SENDER):
        assert check(results, name).outcome is Outcome.FAIL
        assert "set --helo / --mail-from" in check(results, name).fix


# --- (3) SPF and DMARC of the MAIL FROM domain ---


def test_sender_domain_without_spf_fails(start):
    running = start(identity(sender=Domain(SENDER_DOMAIN, mx=[MX_HOST], dmarc=DMARC)))

    sender = check(run_doctor(doctor_config(running)), SENDER)

    assert sender.outcome is Outcome.FAIL
    assert "no SPF record" in sender.detail
    assert f'"v=spf1 ip4:{OURS} -all"' in sender.fix


def test_spf_without_dmarc_warns(start):
    running = start(identity(sender=Domain(SENDER_DOMAIN, mx=[MX_HOST], spf=SPF)))

    sender = check(run_doctor(doctor_config(running)), SENDER)

    assert sender.outcome is Outcome.WARN
    assert "no DMARC record at _dmarc.mailsift.test" in sender.detail


def test_dmarc_of_the_organisational_domain_counts(start):
    world = identity(extra=(Domain("bounce.mailsift.test", spf=SPF),))
    running = start(world)

    sender = check(
        run_doctor(doctor_config(running, mail_from="probe@bounce.mailsift.test")), SENDER
    )

    assert sender.outcome is Outcome.PASS


def test_two_spf_records_fail(start):
    domain = Domain(SENDER_DOMAIN, mx=[MX_HOST], spf=SPF, txt=["v=spf1 -all"], dmarc=DMARC)
    running = start(identity(sender=domain))

    sender = check(run_doctor(doctor_config(running)), SENDER)

    assert sender.outcome is Outcome.FAIL
    assert "2 SPF records" in sender.detail


# --- (4) DNS blocklists ---


def blocklist_world() -> World:
    return identity(
        extra=(
            Domain(dnsbl_name(OURS, LISTING_ZONE), a=["127.0.0.2"], txt=["listed for testing"]),
            Domain(dnsbl_name(OURS, REFUSING_ZONE), a=["127.255.255.254"]),
            Domain(CLEAN_ZONE, txt=["a zone that lists nobody"]),
        )
    )


def test_blocklists_are_skipped_unless_zones_are_named(start):
    running = start(blocklist_world())

    results = run_doctor(doctor_config(running))

    assert check(results, BLOCKLISTS).outcome is Outcome.SKIP
    assert running.counters().dns.of(dnsbl_name(OURS, LISTING_ZONE), "A") == 0


def test_address_listed_on_a_zone_fails_with_its_reason(start):
    running = start(blocklist_world())

    blocklists = check(
        run_doctor(doctor_config(running), dnsbl_zones=[CLEAN_ZONE, LISTING_ZONE]), BLOCKLISTS
    )

    assert blocklists.outcome is Outcome.FAIL
    assert f"listed on {LISTING_ZONE} (127.0.0.2): listed for testing" in blocklists.detail
    assert f"not on {CLEAN_ZONE}" in blocklists.detail


def test_address_not_on_the_zone_passes(start):
    running = start(blocklist_world())

    blocklists = check(run_doctor(doctor_config(running), dnsbl_zones=[CLEAN_ZONE]), BLOCKLISTS)

    assert blocklists.outcome is Outcome.PASS


def test_a_zone_refusing_the_query_warns(start):
    running = start(blocklist_world())

    blocklists = check(run_doctor(doctor_config(running), dnsbl_zones=[REFUSING_ZONE]), BLOCKLISTS)

    assert blocklists.outcome is Outcome.WARN
    assert "blocklist refused the query" in blocklists.fix


# --- (5) the DNS servers ---


def test_dns_server_that_times_out_fails(start):
    running = start(identity(sender=Domain(SENDER_DOMAIN, fault=DnsFault.TIMEOUT)))

    started = time.monotonic()
    results = run_doctor(doctor_config(running, dns_timeout_s=0.3))

    dns = check(results, DNS)
    assert dns.outcome is Outcome.FAIL
    assert "no answer" in dns.detail
    assert time.monotonic() - started < 10


def test_dns_server_answering_servfail_fails(start):
    running = start(identity(sender=Domain(SENDER_DOMAIN, fault=DnsFault.SERVFAIL)))

    dns = check(run_doctor(doctor_config(running)), DNS)

    assert dns.outcome is Outcome.FAIL
    assert "SERVFAIL" in dns.detail


def test_one_silent_server_among_several_warns(start):
    healthy = start(identity())
    broken = start(identity(sender=Domain(SENDER_DOMAIN, fault=DnsFault.TIMEOUT)))
    config = doctor_config(healthy, dns=[healthy.dns_address, broken.dns_address])

    dns = check(run_doctor(config), DNS)

    assert dns.outcome is Outcome.WARN
    assert broken.dns_address in dns.detail
    assert healthy.dns_address not in dns.detail


# --- the sandbox's reverse DNS ---


def test_sandbox_serves_ptr_records_as_dnspython_reads_them(start):
    running = start(identity())
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [running.dns_host], running.dns_port

    answer = resolver.resolve(reverse_name(OURS), "PTR", lifetime=2.0)

    assert reverse_name(OURS) == "1.0.0.127.in-addr.arpa"
    assert [record.target.to_text() for record in answer] == [f"{HELO}."]


def test_results_are_plain_frozen_data():
    result = CheckResult("x", Outcome.PASS, "fine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.outcome = Outcome.FAIL  # type: ignore[misc]
