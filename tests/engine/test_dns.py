"""Specification of the DNS stage: each test states a small sandbox world and what DNS says
about its domains. Every query goes to the sandbox DNS server on 127.0.0.1, never the system
resolver (an autouse guard makes reading resolv.conf fail)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from typing import Any

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import Config
from engine.dns import (
    DNS_SCHEMA,
    TEMPORARY_OUTCOMES,
    DnsOutcome,
    is_dmarc_record,
    is_spf_record,
    lookup_domains,
    lookup_domains_async,
)
from engine.dns_client import DnsClient, LookupStatus, Nameserver
from engine.dns_servers import loopback_mx_allowed, nameservers_of, parse_nameserver
from engine.dns_wire import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_MX,
    TYPE_TXT,
    MalformedReply,
    parse_reply,
    question_bytes,
    wire_name,
)
from engine.errors import InputError
from engine.mx_address import is_routable
from engine.sandbox.counters import DnsCounts
from engine.sandbox.running import run_world
from engine.sandbox.world import NULL_MX, DnsFault, Domain, MailServer, Mx, World

SPF = "v=spf1 mx -all"
DMARC = "v=DMARC1; p=reject"
FAST = {"dns_timeout_s": 0.25, "dns_retries": 1}


@pytest.fixture(autouse=True)
def _never_the_system_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test asked for the system resolver")

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", refuse)


def look_up(
    world: World, *domains: str, **config: Any
) -> tuple[dict[str, dict[str, Any]], DnsCounts]:
    """Runs the world, looks `domains` up through it; rows by domain, and what the server saw."""
    with run_world(world) as running:
        frame = lookup_domains(
            domains, Config(dns=[running.dns_address], **{"allow_loopback_mx": True, **config})
        )
        counts = running.counters().dns
    return {row["domain"]: row for row in frame.to_dicts()}, counts


def outcome_of(world: World, domain: str, **config: Any) -> dict[str, Any]:
    rows, _ = look_up(world, domain, **config)
    return rows[domain]


def hosts(row: dict[str, Any]) -> list[tuple[int, str]]:
    return [(entry["preference"], entry["host"]) for entry in row["mx_hosts"]]


# --- what each kind of domain is -------------------------------------------------------------


def test_mx_hosts_are_sorted_by_preference_then_host():
    world = World(
        servers=[MailServer("mx-b.test"), MailServer("mx-c.test"), MailServer("mx-a.test")],
        domains=[
            Domain(
                "sorted.test",
                mx=[Mx("mx-b.test", 20), Mx("mx-c.test", 10), Mx("mx-a.test", 10)],
            )
        ],
    )
    row = outcome_of(world, "sorted.test")

    assert row["dns_outcome"] == "mx"
    assert hosts(row) == [(10, "mx-a.test"), (10, "mx-c.test"), (20, "mx-b.test")]
    assert row["mx_record"] == "mx-a.test"


def test_failover_list_keeps_every_host_with_a_addresses_before_aaaa():
    world = World(
        servers=[MailServer("mx1.dual.test"), MailServer("mx2.dual.test")],
        domains=[
            Domain("dual.test", mx=["mx1.dual.test", "mx2.dual.test"]),
            Domain("mx1.dual.test", aaaa=["::1"]),
        ],
    )
    row = outcome_of(world, "dual.test")

    assert row["mx_hosts"] == [
        {
            "preference": 10,
            "host": "mx1.dual.test",
            "addresses": ["127.0.0.2", "::1"],
            "routable": True,
        },
        {"preference": 20, "host": "mx2.dual.test", "addresses": ["127.0.0.3"], "routable": True},
    ]


def test_failover_hosts_are_looked_up_together_not_one_after_another():
    """MX, then the three hosts' A/AAAA at once: two round trips of 0.2 s, not four."""
    servers = [MailServer(f"mx{i}.many.test") for i in range(3)]
    world = World(
        servers=servers,
        domains=[Domain("many.test", mx=[server.name for server in servers])],
        dns_latency_s=0.2,
    )
    with run_world(world) as running:
        started = time.perf_counter()
        frame = lookup_domains(
            ["many.test"], Config(dns=[running.dns_address], allow_loopback_mx=True)
        )
        elapsed = time.perf_counter() - started

    assert len(frame.row(0, named=True)["mx_hosts"]) == 3
    assert 0.4 <= elapsed < 0.7


def test_primary_mx_is_the_first_routable_host():
    world = World(
        servers=[MailServer("mx2.half.test")],
        domains=[
            Domain("half.test", mx=[Mx("mx1.half.test", 10), Mx("mx2.half.test", 20)]),
            Domain("mx1.half.test", a=["10.1.2.3"]),
        ],
    )
    row = outcome_of(world, "half.test")

    assert row["dns_outcome"] == "mx"
    assert [entry["routable"] for entry in row["mx_hosts"]] == [False, True]
    assert row["mx_record"] == "mx2.half.test"


def test_domain_without_mx_is_its_own_mail_host_at_preference_zero():
    world = World(servers=[MailServer("implicit.test")], domains=[Domain("implicit.test")])
    row = outcome_of(world, "implicit.test")

    assert row["dns_outcome"] == "implicit_mx"  # RFC 5321 §5.1
    assert row["mx_hosts"] == [
        {"preference": 0, "host": "implicit.test", "addresses": ["127.0.0.2"], "routable": True}
    ]
    assert row["mx_record"] == "implicit.test"


def test_null_mx_accepts_no_mail():
    row = outcome_of(World(domains=[Domain("nullmx.test", mx=NULL_MX)]), "nullmx.test")

    assert row["dns_outcome"] == "null_mx"  # RFC 7505
    assert (row["mx_hosts"], row["mx_record"]) == ([], None)


def test_null_mx_beside_real_mx_records_is_ignored():
    world = World(
        servers=[MailServer("mx.mixed.test")],
        domains=[Domain("mixed.test", mx=[Mx(".", 0), Mx("mx.mixed.test", 10)])],
    )
    row = outcome_of(world, "mixed.test")

    assert row["dns_outcome"] == "mx"
    assert hosts(row) == [(10, "mx.mixed.test")]


def test_undeclared_domain_does_not_exist():
    row = outcome_of(World(), "nowhere.test")

    assert row["dns_outcome"] == "nxdomain"
    assert (row["spf"], row["dmarc"], row["dns_error"]) == (False, False, None)


def test_domain_with_neither_mx_nor_address_has_no_mail_records():
    row = outcome_of(World(domains=[Domain("bare.test", spf=SPF)]), "bare.test")

    assert row["dns_outcome"] == "no_mail_records"
    assert row["mx_hosts"] == []
    assert row["spf"] is True


def test_mx_host_that_does_not_resolve_is_unresolvable():
    row = outcome_of(
        World(domains=[Domain("dangling.test", mx=["mx.nowhere.test"])]), "dangling.test"
    )

    assert row["dns_outcome"] == "mx_unresolvable"
    assert row["mx_hosts"] == [
        {"preference": 10, "host": "mx.nowhere.test", "addresses": [], "routable": False}
    ]
    assert row["mx_record"] == "mx.nowhere.test"


@pytest.mark.parametrize(
    ("a", "aaaa"),
    [(["10.0.0.1"], ["fd00::1"]), (["192.168.1.1"], []), (["192.0.2.1"], ["2001:db8::1"])],
)
def test_mx_on_private_or_documentation_addresses_is_unroutable(a, aaaa):
    world = World(
        domains=[
            Domain("private.test", mx=["mx.private.test"]),
            Domain("mx.private.test", a=a, aaaa=aaaa),
        ]
    )
    row = outcome_of(world, "private.test", sandbox=True)

    assert row["dns_outcome"] == "mx_unroutable"
    assert row["mx_hosts"][0]["addresses"] == a + aaaa
    assert row["mx_hosts"][0]["routable"] is False


def test_implicit_mx_on_a_documentation_address_is_unroutable():
    row = outcome_of(World(domains=[Domain("doc.test", a=["192.0.2.7"])]), "doc.test")

    assert row["dns_outcome"] == "mx_unroutable"
    assert hosts(row) == [(0, "doc.test")]


def test_loopback_mx_is_routable_in_the_sandbox():
    world = World(
        servers=[MailServer("mx.loop.test")], domains=[Domain("loop.test", mx=["mx.loop.test"])]
    )
    row = outcome_of(world, "loop.test", sandbox=True)

    assert row["dns_outcome"] == "mx"
    assert row["mx_hosts"][0]["addresses"] == ["127.0.0.2"]


# --- the loopback rule and address classes ---------------------------------------------------


@pytest.mark.parametrize(
    ("config", "allowed"),
    [
        (Config(sandbox=True), True),
        (Config(allow_loopback_mx=True), True),
        (Config(dns=["127.0.0.1:5399"]), False),  # may be a local resolver for the internet
        (Config(dns=["[::1]:5353", "127.0.0.2"]), False),
        (Config(dns=["192.0.2.53"]), False),
        (Config(), False),  # the system resolver, even on 127.0.0.53, is a real run
    ],
)
def test_loopback_mx_is_allowed_only_when_asked_for(config, allowed):
    assert loopback_mx_allowed(config) is allowed


@pytest.mark.parametrize(
    "address",
    [
        "0.1.2.3", "10.0.0.1", "100.64.0.1", "169.254.1.1", "172.16.0.1", "172.31.255.255",
        "192.0.0.8", "192.0.2.1", "192.168.0.1", "198.18.0.1", "198.51.100.1", "203.0.113.9",
        "224.0.0.1", "240.0.0.1", "255.255.255.255", "::", "fc00::1", "fd12::1", "fe80::1",
        "ff02::1", "2001:db8::25", "3fff::1", "100::1", "::ffff:10.0.0.1", "not-an-address",
    ],
)  # fmt: skip
def test_special_purpose_addresses_stay_unroutable_even_where_loopback_is_allowed(address):
    assert not is_routable(address, allow_loopback=True)  # RFC 6890
    assert not is_routable(address, allow_loopback=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_routable_only_when_allowed(address):
    assert is_routable(address, allow_loopback=True)
    assert not is_routable(address, allow_loopback=False)


@pytest.mark.parametrize(
    "address", ["203.0.114.1", "142.250.1.26", "2a00:1450:4001::1b", "64:ff9b::1"]
)
def test_public_addresses_are_routable(address):
    assert is_routable(address, allow_loopback=False)


# --- SPF, DMARC, provider ---------------------------------------------------------------------


def test_spf_and_dmarc_are_found_when_published():
    world = World(
        servers=[MailServer("mx.pub.test")],
        domains=[
            Domain("pub.test", mx=["mx.pub.test"], spf=SPF, dmarc=DMARC, txt=["site-verify=1"]),
            Domain("none.test", mx=["mx.pub.test"], txt=["site-verify=2"]),
        ],
    )
    rows, _ = look_up(world, "pub.test", "none.test")

    assert (rows["pub.test"]["spf"], rows["pub.test"]["dmarc"]) == (True, True)
    assert (rows["none.test"]["spf"], rows["none.test"]["dmarc"]) == (False, False)


@pytest.mark.parametrize(
    ("text", "spf"),
    [("v=spf1", True), ("v=spf1 -all", True), ("V=SPF1 mx ~all", True), ("v=spf10 -all", False),
     (" v=spf1 -all", False), ("spf1", False), ("", False)],
)  # fmt: skip
def test_spf_record_is_recognised_by_its_version_section(text, spf):
    assert is_spf_record(text) is spf  # RFC 7208 §4.5


@pytest.mark.parametrize(
    ("text", "dmarc"),
    [("v=DMARC1; p=none", True), ("v = DMARC1;p=reject", True), ("v=DMARC1", True),
     ("v=dmarc1; p=none", False), ("p=none; v=DMARC1", False), ("v=DMARC10; p=none", False)],
)  # fmt: skip
def test_dmarc_record_is_recognised_by_its_first_tag(text, dmarc):
    assert is_dmarc_record(text) is dmarc  # RFC 7489 §6.3, §6.4


def test_provider_and_its_policy_come_from_the_primary_mx():
    world = World(
        servers=[
            MailServer("gmail-smtp-in.l.google.com"),
            MailServer("mta7.am0.yahoodns.net"),
            MailServer("mx.own.test"),
        ],
        domains=[
            Domain("gmail.com", mx=["gmail-smtp-in.l.google.com"]),
            Domain("yahoo.com", mx=["mta7.am0.yahoodns.net"]),
            Domain("own.test", mx=["mx.own.test"]),
        ],
    )
    rows, _ = look_up(world, "gmail.com", "yahoo.com", "own.test", "nowhere.test")

    assert rows["gmail.com"]["smtp_provider"] == "google"
    assert rows["yahoo.com"]["smtp_provider"] == "yahoo"
    assert rows["yahoo.com"]["accepts_all_at_rcpt"] is True
    assert rows["own.test"]["smtp_provider"] is None
    assert rows["own.test"]["accepts_all_at_rcpt"] is False
    assert rows["nowhere.test"]["blocks_verification"] is False


# --- temporary failures are never final -------------------------------------------------------


def test_servfail_is_temporary_and_retried_once():
    world = World(domains=[Domain("broken.test", fault=DnsFault.SERVFAIL)])
    rows, counts = look_up(world, "broken.test", **FAST)
    row = rows["broken.test"]

    assert row["dns_outcome"] == "servfail"
    assert row["dns_error"].startswith("SERVFAIL from 127.0.0.1:")
    assert "for MX broken.test" in row["dns_error"]
    assert row["spf"] is None  # unknown, not absent
    assert counts.of("broken.test", "MX") == 2


def test_refused_answer_is_temporary():
    row = outcome_of(
        World(domains=[Domain("refused.test", fault=DnsFault.REFUSED)]), "refused.test"
    )

    assert row["dns_outcome"] == "servfail"
    assert row["dns_error"].startswith("REFUSED from")


def test_silent_server_ends_as_timeout_after_its_retries():
    world = World(domains=[Domain("silent.test", mx=["mx.silent.test"], fault=DnsFault.TIMEOUT)])
    started = time.perf_counter()
    rows, counts = look_up(world, "silent.test", dns_timeout_s=0.2, dns_retries=2)
    elapsed = time.perf_counter() - started
    row = rows["silent.test"]

    assert row["dns_outcome"] == "timeout"
    assert (
        "no answer from 127.0.0.1:" in row["dns_error"] and "3 tries of 0.2 s" in row["dns_error"]
    )
    assert (row["spf"], row["mx_hosts"]) == (None, [])
    assert counts.of("silent.test", "MX") == 3
    assert 0.6 <= elapsed < 3.0


def test_answer_with_another_message_id_is_never_taken():
    world = World(domains=[Domain("spoofed.test", mx=["mx.x.test"], fault=DnsFault.WRONG_ID)])
    row = outcome_of(world, "spoofed.test", **FAST)

    assert row["dns_outcome"] == "timeout"  # RFC 5452 §9.1


@pytest.mark.parametrize(
    ("fault", "outcome"), [(DnsFault.SERVFAIL, "servfail"), (DnsFault.TIMEOUT, "timeout")]
)
def test_mx_host_lookup_failure_is_temporary_never_unresolvable(fault, outcome):
    world = World(
        domains=[
            Domain("shaky.test", mx=["mx.gone.test", "mx.shaky.test"]),
            Domain("mx.shaky.test", fault=fault),
        ]
    )
    row = outcome_of(world, "shaky.test", **FAST)

    assert row["dns_outcome"] == outcome
    assert "mx.shaky.test" in row["dns_error"]
    assert hosts(row) == [(10, "mx.gone.test"), (20, "mx.shaky.test")]


def test_one_routable_host_is_enough_when_another_fails():
    world = World(
        servers=[MailServer("mx.ok.test")],
        domains=[
            Domain("partly.test", mx=["mx.broken.test", "mx.ok.test"]),
            Domain("mx.broken.test", fault=DnsFault.SERVFAIL),
        ],
    )
    row = outcome_of(world, "partly.test", **FAST)

    assert row["dns_outcome"] == "mx"
    assert row["mx_record"] == "mx.ok.test"


def test_temporary_outcomes_are_exactly_servfail_and_timeout():
    assert {outcome.value for outcome in TEMPORARY_OUTCOMES} == {"servfail", "timeout"}
    assert {outcome.value for outcome in DnsOutcome} == {
        "mx", "implicit_mx", "null_mx", "nxdomain", "no_mail_records", "mx_unresolvable",
        "mx_unroutable", "servfail", "timeout",
    }  # fmt: skip


# --- transport: TCP, CNAME, servers ------------------------------------------------------------


def test_truncated_answer_is_asked_again_over_tcp():
    world = World(
        servers=[MailServer("mx.big.test")],
        domains=[Domain("big.test", mx=["mx.big.test"], fault=DnsFault.TRUNCATED)],
    )
    rows, counts = look_up(world, "big.test")

    assert rows["big.test"]["dns_outcome"] == "mx"
    assert counts.tcp_queries == 2  # MX and TXT; both were truncated over UDP
    assert rows["big.test"]["dns_queries"] == counts.queries


def test_truncated_answer_with_no_tcp_ends_as_timeout():
    world = World(domains=[Domain("tc.test", mx=["mx.tc.test"], fault=DnsFault.TRUNCATED_NO_TCP)])
    row = outcome_of(world, "tc.test", **FAST)

    assert row["dns_outcome"] == "timeout"


def test_long_spf_record_arrives_over_udp_with_edns():
    long_spf = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60))  # ~1 KB
    rows, counts = look_up(World(domains=[Domain("long.test", spf=long_spf)]), "long.test")

    assert rows["long.test"]["spf"] is True
    assert counts.tcp_queries == 0  # RFC 6891: the 1232-octet payload holds it


def test_alias_domain_follows_its_cname():
    world = World(
        servers=[MailServer("mx.target.test")],
        domains=[
            Domain("target.test", mx=["mx.target.test"], spf=SPF),
            Domain("alias.test", cname="target.test"),
        ],
    )
    row = outcome_of(world, "alias.test")

    assert row["dns_outcome"] == "mx"
    assert hosts(row) == [(10, "mx.target.test")]
    assert row["spf"] is True


def test_cname_loop_ends_at_once_as_servfail():
    world = World(
        domains=[
            Domain("loop-a.test", cname="loop-b.test"),
            Domain("loop-b.test", cname="loop-a.test"),
        ]
    )
    started = time.perf_counter()
    rows, counts = look_up(world, "loop-a.test", dns_timeout_s=2.0, dns_retries=2)

    assert rows["loop-a.test"]["dns_outcome"] == "servfail"
    assert "CNAME loop" in rows["loop-a.test"]["dns_error"]
    assert counts.of("loop-a.test", "MX") == 1  # not retried: the loop answers alike each time
    assert time.perf_counter() - started < 1.5


def test_a_silent_server_is_passed_over_for_the_next():
    world = World(
        servers=[MailServer("mx.up.test")], domains=[Domain("up.test", mx=["mx.up.test"])]
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, run_world(world) as running:
        silent.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{silent.getsockname()[1]}"
        frame = lookup_domains(
            ["up.test"], Config(dns=[dead, running.dns_address], allow_loopback_mx=True, **FAST)
        )

    assert frame.row(0, named=True)["dns_outcome"] == "mx"


@pytest.mark.parametrize(
    ("entry", "server"),
    [("127.0.0.1", Nameserver("127.0.0.1", 53)), ("127.0.0.1:5399", Nameserver("127.0.0.1", 5399)),
     ("::1", Nameserver("::1", 53)), ("[::1]:5353", Nameserver("::1", 5353))],
)  # fmt: skip
def test_dns_servers_are_host_and_optional_port(entry, server):
    assert parse_nameserver(entry) == server


@pytest.mark.parametrize("entry", ["dns.google", "127.0.0.1:0", "127.0.0.1:dns", "[::1]x"])
def test_a_dns_server_that_is_not_an_address_and_port_is_refused(entry):
    with pytest.raises(InputError, match="--dns"):
        parse_nameserver(entry)


def test_resolv_conf_style_servers_keep_their_ports():
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1", "::1"]
    resolver.nameserver_ports = {"::1": 5353}

    assert nameservers_of(resolver) == [Nameserver("127.0.0.1", 53), Nameserver("::1", 5353)]


# --- work done once, the cap, the frame ----------------------------------------------------------


def test_mx_host_shared_by_many_domains_is_looked_up_once():
    names = [f"shop{i}.test" for i in range(60)]
    world = World(
        servers=[MailServer("mx.shared.test")],
        domains=[Domain(name, mx=["mx.shared.test"]) for name in names],
    )
    rows, counts = look_up(world, *names)

    assert {row["dns_outcome"] for row in rows.values()} == {"mx"}
    assert counts.of("mx.shared.test", "A") == 1
    assert counts.of("mx.shared.test", "AAAA") == 1
    # The ledger: every query is charged to exactly one domain (the first to need the host).
    assert sum(row["dns_queries"] for row in rows.values()) == counts.queries == 60 * 3 + 2


def test_a_domain_that_is_also_an_mx_host_is_resolved_once():
    world = World(
        servers=[MailServer("mail.test")],
        domains=[Domain("mail.test"), Domain("user.test", mx=["mail.test"])],
    )
    rows, counts = look_up(world, "mail.test", "user.test")

    assert rows["mail.test"]["dns_outcome"] == "implicit_mx"
    assert rows["user.test"]["dns_outcome"] == "mx"
    assert counts.of("mail.test", "A") == 1


def test_queries_in_flight_never_exceed_the_cap():
    """16 domains x 3 questions + one host's 2 at 0.1 s each: with at most 4 in flight they
    need >= 1.25 s (the server never answers early); with the default cap about 0.2 s."""
    names = [f"d{i}.test" for i in range(16)]
    world = World(
        servers=[MailServer("mx.slow.test")],
        domains=[Domain(name, mx=["mx.slow.test"]) for name in names],
        dns_latency_s=0.1,
    )
    with run_world(world) as running:
        config = Config(dns=[running.dns_address], dns_concurrency=4, allow_loopback_mx=True)
        started = time.perf_counter()
        frame = lookup_domains(names, config)
        elapsed = time.perf_counter() - started

    assert frame.get_column("dns_outcome").unique().to_list() == ["mx"]
    assert elapsed >= (16 * 3 + 2) / 4 * 0.1 * 0.95


def test_client_counts_its_peak_in_flight_within_the_cap():
    world = World(
        domains=[Domain(f"d{i}.test", a=["192.0.2.1"]) for i in range(40)], dns_latency_s=0.02
    )

    async def ask_all(address: str) -> DnsClient:
        host, port = address.split(":")
        async with DnsClient(
            [Nameserver(host, int(port))], timeout_s=1, retries=0, concurrency=5
        ) as client:
            futures = [client.ask(wire_name(f"d{i}.test"), TYPE_A) for i in range(40)]
            answers = [await future for future in futures]
        assert {answer.status for answer in answers} == {LookupStatus.ANSWER}
        return client

    with run_world(world) as running:
        client = asyncio.run(ask_all(running.dns_address))

    assert client.peak_in_flight == 5
    assert client.queries_sent == 40


def test_duplicates_and_nulls_are_dropped_and_first_seen_order_kept():
    world = World(domains=[Domain("b.test", a=["192.0.2.1"]), Domain("a.test", a=["192.0.2.1"])])
    with run_world(world) as running:
        frame = lookup_domains(
            ["b.test", None, "a.test", "b.test"],
            Config(dns=[running.dns_address], allow_loopback_mx=True),
        )  # type: ignore[list-item]

    assert frame.get_column("domain").to_list() == ["b.test", "a.test"]


def test_frame_has_the_contract_columns_and_types():
    world = World(servers=[MailServer("mx.t.test")], domains=[Domain("t.test", mx=["mx.t.test"])])
    with run_world(world) as running:
        frame = lookup_domains(
            ["t.test", "nowhere.test"], Config(dns=[running.dns_address], allow_loopback_mx=True)
        )

    assert frame.schema == DNS_SCHEMA
    assert list(frame.columns) == [
        "domain", "dns_outcome", "mx_hosts", "mx_record", "spf", "dmarc", "smtp_provider",
        "accepts_all_at_rcpt", "blocks_verification", "dislikes_multi_rcpt", "dns_queries",
        "dns_error",
    ]  # fmt: skip


def test_no_domains_asks_nothing_and_returns_the_empty_frame():
    frame = lookup_domains([], Config())  # the guard fails the test if resolv.conf is read

    assert frame.schema == DNS_SCHEMA
    assert frame.is_empty()


def test_a_name_no_zone_can_hold_is_not_asked():
    rows, counts = look_up(World(), "bad..name", "x" * 64 + ".test")

    assert {row["dns_outcome"] for row in rows.values()} == {"nxdomain"}
    assert counts.queries == 0
    assert all(row["dns_queries"] == 0 for row in rows.values())


def test_async_stage_runs_on_the_callers_loop():
    world = World(servers=[MailServer("mx.a.test")], domains=[Domain("a.test", mx=["mx.a.test"])])
    with run_world(world) as running:

        async def caller() -> pl.DataFrame:
            return await lookup_domains_async(
                ["a.test"], Config(dns=[running.dns_address], allow_loopback_mx=True)
            )

        frame = asyncio.run(caller())

    assert frame.row(0, named=True)["dns_outcome"] == "mx"


def test_progress_advances_once_per_domain():
    class Recorder:
        def __init__(self) -> None:
            self.events: list[tuple[str, Any]] = []

        def start(self, stage: str, total: int | None) -> None:
            self.events.append(("start", total))

        def advance(self, stage: str, amount: int = 1) -> None:
            self.events.append(("advance", amount))

        def finish(self, stage: str) -> None:
            self.events.append(("finish", None))

    recorder = Recorder()
    world = World(domains=[Domain("a.test", a=["192.0.2.1"])])
    with run_world(world) as running:
        lookup_domains(
            ["a.test", "b.test"],
            Config(dns=[running.dns_address], allow_loopback_mx=True),
            recorder,
        )

    assert recorder.events == [("start", 2), ("advance", 1), ("advance", 1), ("finish", None)]


# --- the wire reader against dnspython's -------------------------------------------------------

LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
NAMES = st.lists(LABEL, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + ".test")
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
TXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=600)


def _answer(qname: str, qtype: str, rdatas: Sequence[str], alias: str | None, upper: bool) -> bytes:
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    owner = (qname.upper() if upper else qname) + "."  # RFC 4343: answers may change the case
    if alias:
        response.answer.append(dns.rrset.from_text(owner, 300, "IN", "CNAME", alias + "."))
        owner = alias + "."
    if rdatas:
        response.answer.append(dns.rrset.from_text_list(owner, 300, "IN", qtype, list(rdatas)))
    return response.to_wire()


def _texts_of(strings: Sequence[str]) -> str:
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)


@settings(max_examples=150, deadline=None)
@given(
    qname=NAMES,
    kind=st.sampled_from(["A", "AAAA", "MX", "TXT"]),
    data=st.data(),
    alias=st.one_of(st.none(), NAMES),
    upper=st.booleans(),
)
def test_wire_reader_agrees_with_dnspython(qname, kind, data, alias, upper):
    if kind == "A":
        records = data.draw(st.lists(IPV4, max_size=4, unique=True))
        rdatas, expected = (
            records,
            [str(dns.rdata.from_text("IN", "A", r).address) for r in records],
        )
    elif kind == "AAAA":
        records = data.draw(st.lists(IPV6, max_size=4, unique=True))
        rdatas, expected = records, [dns.rdata.from_text("IN", "AAAA", r).address for r in records]
    elif kind == "MX":
        records = data.draw(
            st.lists(st.tuples(st.integers(0, 65535), NAMES), max_size=4, unique=True)
        )
        rdatas = [f"{preference} {host}." for preference, host in records]
        expected = [(preference, host) for preference, host in records]
    else:
        records = data.draw(
            st.lists(
                st.lists(TXT.map(lambda t: t[:255]), min_size=1, max_size=3),
                max_size=3,
                unique_by=tuple,
            )
        )
        rdatas = [_texts_of(strings) for strings in records]
        expected = ["".join(strings) for strings in records]
    if alias == qname:
        alias = None
    wire = _answer(qname, kind, rdatas, alias, upper)
    rdtype = {"A": TYPE_A, "AAAA": TYPE_AAAA, "MX": TYPE_MX, "TXT": TYPE_TXT}[kind]
    reply = parse_reply(wire, question_bytes(wire_name(qname), rdtype), rdtype)

    parsed = dns.message.from_wire(wire)
    assert reply.rcode == parsed.rcode()
    assert sorted(reply.records) == sorted(expected)


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300), qname=NAMES)
def test_wire_reader_refuses_garbage_with_one_error_type(garbage, qname):
    question = question_bytes(wire_name(qname), TYPE_MX)
    header = b"\x12\x34\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00"
    with contextlib.suppress(MalformedReply):  # any other exception fails the test
        parse_reply(header + question + garbage, question, TYPE_MX)


@pytest.mark.parametrize(
    "owner",
    [
        lambda at: bytes([0xC0, at]),  # points at itself
        lambda at: b"\x01a" + bytes([0xC0, at]),  # back to its own first label, and again
        lambda at: bytes([0xC0, at + 2, 0x01]) + b"b" + bytes([0xC0, at]),  # forward, then back
    ],
)
def test_compression_pointers_that_could_loop_are_refused(owner):
    question = question_bytes(wire_name("a.test"), TYPE_MX)
    header = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    at = len(header) + len(question)
    with pytest.raises(MalformedReply, match="backwards"):
        parse_reply(header + question + owner(at) + b"\x00" * 10, question, TYPE_MX)


@pytest.mark.parametrize("servers", [[], ["198.51.100.53"], ["127.0.0.1:5353", "192.0.2.53"]])
def test_a_sandbox_run_refuses_any_dns_server_off_loopback(servers):
    from engine.config import Config
    from engine.dns_servers import configured_resolver
    from engine.errors import InputError

    with pytest.raises(InputError, match="sandbox"):
        configured_resolver(Config(sandbox=True, dns=servers))
    configured_resolver(Config(sandbox=True, dns=["127.0.0.9:5353"]))
