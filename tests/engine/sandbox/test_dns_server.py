"""Specification of the sandbox DNS server: every kind of domain answers as its world declares.

Clients are dnspython's resolver and dns.query, pointed at the sandbox, never the system resolver.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from engine.sandbox.counters import DnsLedger
from engine.sandbox.dns_server import ZoneAnswers
from engine.sandbox.world import NULL_MX, DnsFault, Domain, MailServer, Mx, World

SPF = "v=spf1 mx -all"
DMARC = "v=DMARC1; p=reject"
HUGE_TXT = "v=spf1 " + " ".join(f"ip4:10.{i // 250}.{i % 250}.0/24" for i in range(3000))

WORLD = World(
    servers=[
        MailServer("mx1.normal.test"),
        MailServer("mx2.normal.test"),
        MailServer("implicit.test"),
    ],
    domains=[
        Domain(
            "normal.test",
            mx=[Mx("mx2.normal.test", 20), Mx("mx1.normal.test", 10)],
            spf=SPF,
            dmarc=DMARC,
        ),
        Domain("implicit.test", spf=SPF),
        Domain("nullmx.test", mx=NULL_MX),
        Domain("dangling.test", mx=["mx.nowhere.test"]),
        Domain("private.test", mx=["mx.private.test"]),
        Domain("mx.private.test", a=["10.0.0.1"], aaaa=["fd00::1"]),
        Domain("alias.test", cname="normal.test"),
        Domain("loop-a.test", cname="loop-b.test"),
        Domain("loop-b.test", cname="loop-a.test"),
        Domain("servfail.test", fault=DnsFault.SERVFAIL),
        Domain("refused.test", fault=DnsFault.REFUSED),
        Domain("timeout.test", mx=["mx1.normal.test"], fault=DnsFault.TIMEOUT),
        Domain("truncated.test", mx=["mx1.normal.test"], fault=DnsFault.TRUNCATED),
        Domain("truncated-no-tcp.test", mx=["mx1.normal.test"], fault=DnsFault.TRUNCATED_NO_TCP),
        Domain("wrong-id.test", mx=["mx1.normal.test"], fault=DnsFault.WRONG_ID),
        Domain("spoofed.test", mx=["mx1.normal.test"], fault=DnsFault.SPOOFED_NXDOMAIN),
        Domain("wrong-source.test", mx=["mx1.normal.test"], fault=DnsFault.WRONG_SOURCE),
        Domain("beyond-tcp.test", txt=["a" * 40_000, "b" * 40_000]),
        Domain("huge-txt.test", txt=[HUGE_TXT]),
        Domain("deep.sub.parent.test", a=["192.0.2.7"]),
    ],
)


@pytest.fixture
def running(start_world):
    return start_world(WORLD)


@pytest.fixture
def resolver(running, resolver_for):
    return resolver_for(running)


def texts(answer) -> list[str]:
    return [b"".join(record.strings).decode() for record in answer]


def query(running, name: str, qtype: str, *, tcp: bool = False, timeout: float = 2.0):
    message = dns.message.make_query(name, qtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(message, running.dns_host, port=running.dns_port, timeout=timeout)


def test_normal_domain_answers_mx_a_spf_and_dmarc(running, resolver):
    mx = sorted((r.preference, r.exchange.to_text()) for r in resolver.resolve("normal.test", "MX"))
    assert mx == [(10, "mx1.normal.test."), (20, "mx2.normal.test.")]
    assert [r.address for r in resolver.resolve("mx1.normal.test", "A")] == ["127.0.0.2"]
    assert [r.address for r in resolver.resolve("mx2.normal.test", "A")] == ["127.0.0.3"]
    assert texts(resolver.resolve("normal.test", "TXT")) == [SPF]
    assert texts(resolver.resolve("_dmarc.normal.test", "TXT")) == [DMARC]


def test_implicit_mx_domain_has_an_address_and_no_mx(running, resolver):
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("implicit.test", "MX")
    assert [r.address for r in resolver.resolve("implicit.test", "A")] == [
        running.address_of("implicit.test")
    ]


def test_null_mx_is_preference_zero_and_the_root(resolver):
    [record] = resolver.resolve("nullmx.test", "MX")
    assert (record.preference, record.exchange.to_text()) == (0, ".")  # RFC 7505 §3


def test_mx_host_that_does_not_resolve_is_nxdomain(resolver):
    [record] = resolver.resolve("dangling.test", "MX")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(record.exchange, "A")


def test_mx_pointing_at_a_private_address_is_only_answered(resolver):
    [record] = resolver.resolve("private.test", "MX")
    assert [r.address for r in resolver.resolve(record.exchange, "A")] == ["10.0.0.1"]
    assert [r.address for r in resolver.resolve(record.exchange, "AAAA")] == ["fd00::1"]


def test_undeclared_name_is_nxdomain(resolver):
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("undeclared.test", "MX")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("_dmarc.implicit.test", "TXT")  # declared domain, no DMARC


def test_declared_name_without_the_type_is_nodata(running):
    reply = query(running, "normal.test", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []


def test_parent_of_a_declared_name_is_an_empty_non_terminal(running):
    reply = query(running, "parent.test", "A")  # RFC 8020: exists, holds nothing
    assert (reply.rcode(), reply.answer) == (dns.rcode.NOERROR, [])


def test_names_are_case_insensitive(resolver):
    assert texts(resolver.resolve("NoRmAl.TEST", "TXT")) == [SPF]


def test_cname_is_chased_inside_the_world(resolver):
    answer = resolver.resolve("alias.test", "MX")
    assert answer.canonical_name.to_text() == "normal.test."
    assert len(answer) == 2


def test_cname_loop_ends_in_a_bounded_answer(running):
    reply = query(running, "loop-a.test", "A")
    chain = [rrset for rrset in reply.answer if rrset.rdtype == dns.rdatatype.CNAME]
    assert 2 <= len(chain) <= 8
    assert reply.rcode() == dns.rcode.NOERROR


def test_servfail_domain_answers_servfail(running, resolver):
    assert query(running, "servfail.test", "MX").rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("servfail.test", "MX")


def test_refused_domain_answers_refused(running):
    assert query(running, "refused.test", "MX").rcode() == dns.rcode.REFUSED


def test_timeout_domain_drops_its_queries(running, resolver_for):
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver_for(running, lifetime_s=0.3).resolve("timeout.test", "MX")
    assert running.counters().dns.of("timeout.test", "MX") >= 1  # it arrived, and was dropped


def test_truncated_domain_sets_tc_over_udp_and_answers_over_tcp(running, resolver):
    udp = query(running, "truncated.test", "MX")
    assert udp.flags & dns.flags.TC
    assert udp.answer == []

    assert len(resolver.resolve("truncated.test", "MX")) == 1  # dnspython retries over TCP
    assert running.counters().dns.tcp_queries == 1


def test_truncated_no_tcp_domain_drops_the_tcp_retry(running):
    assert query(running, "truncated-no-tcp.test", "MX").flags & dns.flags.TC
    with pytest.raises(dns.exception.Timeout):
        query(running, "truncated-no-tcp.test", "MX", tcp=True, timeout=0.3)


def test_wrong_id_domain_answers_with_another_message_id(running):
    request = dns.message.make_query("wrong-id.test", "MX")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request.to_wire(), (running.dns_host, running.dns_port))
        wire = sock.recv(65535)
    assert int.from_bytes(wire[:2], "big") != request.id
    with pytest.raises(dns.query.BadResponse):  # never taken as the answer (RFC 5452)
        dns.query.udp(request, running.dns_host, port=running.dns_port, timeout=2)
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(
            request, running.dns_host, port=running.dns_port, timeout=0.3, ignore_errors=True
        )


def test_huge_txt_is_truncated_over_udp_and_whole_over_tcp(running, resolver):
    assert query(running, "huge-txt.test", "TXT").flags & dns.flags.TC
    assert texts(resolver.resolve("huge-txt.test", "TXT")) == [HUGE_TXT]


def test_txt_records_beyond_64_kib_are_truncated_over_tcp_too(running):
    reply = query(running, "beyond-tcp.test", "TXT", tcp=True)  # RFC 1035 §4.2.2: 65,535 octets
    assert reply.flags & dns.flags.TC
    assert reply.answer == []


def test_spoofed_domain_races_a_forged_nxdomain_ahead_of_the_real_answer(running):
    request = dns.message.make_query("spoofed.test", "MX")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request.to_wire(), (running.dns_host, running.dns_port))
        forged, real = (dns.message.from_wire(sock.recv(65535)) for _ in range(2))

    assert forged.id != request.id
    assert forged.rcode() == dns.rcode.NXDOMAIN
    assert real.id == request.id
    assert len(real.answer) == 1


def test_wrong_source_domain_answers_from_another_port(running):
    request = dns.message.make_query("wrong-source.test", "MX")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request.to_wire(), (running.dns_host, running.dns_port))
        wire, (host, port) = sock.recvfrom(65535)

    assert (host, dns.message.from_wire(wire).id) == (running.dns_host, request.id)
    assert port != running.dns_port  # a connected socket never sees it (RFC 5452 §9.1)
    assert len(query(running, "wrong-source.test", "MX", tcp=True).answer) == 1


def test_edns_lets_a_udp_answer_grow_past_512_octets():
    long_spf = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60))  # ~1 KB
    answers = ZoneAnswers(World(domains=[Domain("long.test", spf=long_spf)]).zone)
    plain = dns.message.make_query("long.test", "TXT")
    with_edns = dns.message.make_query("long.test", "TXT", use_edns=0, payload=1232)

    assert dns.message.from_wire(answers.answer(plain.to_wire(), tcp=False)).flags & dns.flags.TC
    reply = dns.message.from_wire(answers.answer(with_edns.to_wire(), tcp=False))
    assert not reply.flags & dns.flags.TC
    assert texts(reply.answer[0]) == [long_spf]


def test_cached_answers_echo_each_question_and_id():
    answers = ZoneAnswers(WORLD.zone)
    for name in ("normal.test", "NORMAL.test", "normal.TEST"):
        request = dns.message.make_query(name, "MX")
        reply = dns.message.from_wire(answers.answer(request.to_wire(), tcp=False))
        assert reply.id == request.id
        assert reply.question[0].name.to_text() == f"{name}."  # 0x20 case survives
        assert len(reply.answer[0]) == 2


def test_malformed_queries_get_formerr_or_nothing():
    answers = ZoneAnswers(WORLD.zone)
    assert answers.answer(b"\x01", tcp=False) is None
    header_only = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    reply = dns.message.from_wire(answers.answer(header_only + b"\x05ab", tcp=False))
    assert reply.rcode() == dns.rcode.FORMERR
    response_bit_set = b"\x12\x34\x81\x00" + header_only[4:]
    assert answers.answer(response_bit_set, tcp=False) is None


def test_queries_are_counted_by_question_and_transport(running, resolver):
    ledger_before = running.counters().dns.queries
    resolver.resolve("normal.test", "MX")
    resolver.resolve("normal.test", "MX")
    resolver.resolve("Normal.Test", "TXT")

    counts = running.counters().dns
    assert counts.queries == ledger_before + 3
    assert counts.of("normal.test", "MX") == 2
    assert counts.of("normal.test.", "txt") == 1
    assert counts.tcp_queries == 0


def test_the_ledger_counts_every_parsed_query():
    ledger = DnsLedger()
    answers = ZoneAnswers(WORLD.zone, ledger)
    answers.answer(dns.message.make_query("nowhere.test", "A").to_wire(), tcp=True)
    assert ledger.snapshot().by_question == {("nowhere.test", "A"): 1}
    assert ledger.snapshot().tcp_queries == 1


def test_latency_delays_each_answer_by_about_the_declared_time(start_world, resolver_for):
    running = start_world(World(domains=[Domain("slow.test", a=["192.0.2.1"])], dns_latency_s=0.05))
    resolver = resolver_for(running)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        resolver.resolve("slow.test", "A")
        timings.append(time.perf_counter() - started)
    assert all(0.045 <= elapsed < 0.25 for elapsed in timings)  # never early


def test_latency_does_not_serialise_concurrent_queries(start_world, resolver_for):
    """200 queries with 30 ms each would take 6 s one after the other; in flight together they
    take about one delay plus the client's own work."""
    domains = [Domain(f"d{i}.test", a=["192.0.2.1"]) for i in range(200)]
    running = start_world(World(domains=domains, dns_latency_s=0.03))
    resolver = resolver_for(running)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda d: resolver.resolve(d.name, "A"), domains))
    elapsed = time.perf_counter() - started

    assert len(answers) == 200
    assert elapsed < 3.0  # about 0.3 s here; 6 s if each delay held up the next query
    assert running.counters().dns.queries == 200
