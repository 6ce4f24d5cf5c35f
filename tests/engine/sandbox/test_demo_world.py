"""Specification of the demo world and its list: deterministic, complete, and truthful.

"Truthful" is checked end to end: a tiny probe (DNS through the sandbox resolver, then raw SMTP)
asks the running world about addresses of every truth and gets the answer the truth promises.
"""

from __future__ import annotations

import socket
from collections import Counter

import dns.resolver
import polars as pl
import pytest

from engine.sandbox.demo_world import LIST_MIX, Truth, demo_list, demo_world, write_demo_list
from engine.sandbox.world import NULL_MX_HOST, Behaviour, DnsFault

FAST = {"server_latency_s": (0.0, 0.0), "dns_latency_s": 0.0}
PROBE_TIMEOUT_S = 0.4

# What a single RCPT probe of an address of each truth meets first.
EXPECTED_FIRST_ANSWER: dict[Truth, set[str]] = {
    Truth.MAILBOX_EXISTS: {"rcpt 250"},
    Truth.NO_SUCH_USER: {"rcpt 550 5.1.1"},
    Truth.ROLE_MAILBOX: {"rcpt 250"},
    Truth.CATCH_ALL: {"rcpt 250"},
    Truth.ACCEPTS_ALL_PROVIDER: {"rcpt 250"},
    Truth.DISPOSABLE: {"rcpt 250"},
    Truth.GREYLISTED_MAILBOX: {"rcpt 450 4.7.1", "rcpt 451 4.7.1"},
    Truth.GREYLISTED_NO_SUCH_USER: {"rcpt 450 4.7.1", "rcpt 451 4.7.1"},
    Truth.MAILBOX_FULL_TEMPORARY: {"rcpt 452 4.2.2"},
    Truth.MAILBOX_FULL_PERMANENT: {"rcpt 552 5.2.2"},
    Truth.MAILBOX_DISABLED: {"rcpt 550 5.2.1"},
    Truth.POLICY_BLOCK: {"rcpt 550 5.7.1"},
    Truth.IP_BLAMED: {"banner 554", "rcpt 554 5.7.1"},
    Truth.RATE_LIMITED_MAILBOX: {"rcpt 250"},
    Truth.NO_PIPELINING_MAILBOX: {"rcpt 250"},
    Truth.FEW_RCPTS_MAILBOX: {"rcpt 250"},
    Truth.FAILOVER_MAILBOX: {"rcpt 250"},
    Truth.IMPLICIT_MX_MAILBOX: {"rcpt 250"},
    Truth.SLOW_MAILBOX: {"rcpt 250"},
    Truth.SERVER_BUSY: {"banner 421"},
    Truth.TARPIT: {"silence"},
    Truth.CONNECTION_REFUSED: {"refused"},
    Truth.CONNECTION_RESET: {"reset"},
    Truth.GARBAGE_REPLY: {"garbage"},
    Truth.ACCEPT_THEN_CLOSE: {"closed"},
    Truth.HOSTILE_REPLY: {"garbage"},
    Truth.NULL_MX: {"null mx"},
    Truth.MX_UNRESOLVABLE: {"mx host nxdomain"},
    Truth.MX_PRIVATE_ADDRESS: {"unroutable mx"},
    Truth.NO_SUCH_DOMAIN: {"nxdomain"},
    Truth.DNS_SERVFAIL: {"servfail"},
    Truth.DNS_TIMEOUT: {"dns timeout"},
}


def test_the_demo_world_is_the_same_for_a_seed_and_differs_across_seeds():
    assert demo_world(7, **FAST) == demo_world(7, **FAST)
    assert demo_world(7) != demo_world(8)


def test_the_demo_world_has_hundreds_of_domains_and_every_behaviour():
    calm, hostile = demo_world(), demo_world(hostile=True)

    assert 250 <= len(calm.domains) <= 400
    assert set(calm.domains) <= set(hostile.domains)  # hostile only adds
    assert {server.behaviour for server in hostile.servers} == set(Behaviour)
    assert {server.behaviour for server in calm.servers} == set(Behaviour) - {
        Behaviour.ENDLESS_MULTILINE,
        Behaviour.HUGE_LINE,
        Behaviour.TRICKLE,
    }


def test_the_demo_world_covers_every_server_option_and_dns_kind():
    world = demo_world()
    servers = world.servers

    assert any(s.greylist and s.greylist.code == 450 for s in servers)
    assert any(s.greylist and s.greylist.code == 451 for s in servers)
    assert any(s.rate_limit for s in servers)
    assert any(s.full_temporary for s in servers) and any(s.full_permanent for s in servers)
    assert any(s.disabled for s in servers)
    assert any(not s.pipelining for s in servers) and any(not s.smtputf8 for s in servers)
    assert any(s.multiline for s in servers) and any(s.max_rcpt for s in servers)
    assert all(0.02 <= s.latency_s <= 0.1 for s in servers if s.name != "mx.slow.example")
    domains = list(world.domains)
    assert any(d.mx and d.mx[0].host == NULL_MX_HOST for d in domains)
    assert any(not d.mx and d.name in world.addresses for d in domains)  # implicit MX
    assert any(d.mx and d.mx[0].host not in world.zone for d in domains)  # dangling MX host
    assert any(d.a and not d.a[0].startswith("127.") for d in domains)  # unroutable MX address
    assert {DnsFault.SERVFAIL, DnsFault.TIMEOUT} <= {d.fault for d in domains}
    assert any(d.spf for d in domains) and any(not d.spf for d in domains if d.mx)
    assert world.dns_latency_s > 0


def test_the_demo_list_is_deterministic_and_has_the_promised_mix():
    frame = demo_list()
    assert frame.equals(demo_list())
    assert not frame.equals(demo_list(seed=8))

    assert frame.columns == ["email", "first_name", "last_name", "sandbox_truth"]
    assert frame.height == 20_000
    truths = Counter(frame["sandbox_truth"])
    assert set(truths) == {str(t) for t in LIST_MIX if t is not Truth.HOSTILE_REPLY} | {
        Truth.BROKEN_SYNTAX
    }
    assert 0.015 <= truths[Truth.BROKEN_SYNTAX] / frame.height <= 0.03
    addresses = frame.filter(pl.col("sandbox_truth") != Truth.BROKEN_SYNTAX)["email"]
    repeats = addresses.len() - addresses.str.to_lowercase().n_unique()
    assert 0.04 <= repeats / frame.height <= 0.08  # the duplicate share, some re-cased
    assert (addresses != addresses.str.to_lowercase()).sum() > 0


def test_the_hostile_demo_list_reaches_the_hostile_servers():
    assert Truth.HOSTILE_REPLY in set(demo_list(5_000, hostile=True)["sandbox_truth"])


def test_write_demo_list_leaves_the_truth_out_unless_asked(tmp_path):
    plain = pl.read_csv(write_demo_list(tmp_path / "list.csv", rows=100))
    with_truth = pl.read_csv(write_demo_list(tmp_path / "truth.csv", rows=100, with_truth=True))

    assert plain.columns == ["email", "first_name", "last_name"]
    assert with_truth["email"].to_list() == plain["email"].to_list()
    assert "sandbox_truth" in with_truth.columns


def first_answer(
    running, resolver: dns.resolver.Resolver, address: str, timeout_s: float = PROBE_TIMEOUT_S
) -> str:
    """What one probe of `address` meets first: a DNS outcome, a connection fate or a reply."""
    domain = address.rpartition("@")[2]
    try:
        answer = resolver.resolve(domain, "MX")
        hosts = [
            r.exchange.to_text(omit_final_dot=True)
            for r in sorted(answer, key=lambda r: r.preference)
        ]
    except dns.resolver.NXDOMAIN:
        return "nxdomain"
    except dns.resolver.NoNameservers:
        return "servfail"
    except dns.resolver.LifetimeTimeout:
        return "dns timeout"
    except dns.resolver.NoAnswer:
        hosts = [domain]  # implicit MX (RFC 5321 §5.1)
    if hosts == ["."]:  # RFC 7505 null MX
        return "null mx"
    fate = "refused"
    for host in hosts:
        try:
            ip = resolver.resolve(host, "A")[0].address
        except dns.resolver.NXDOMAIN:
            return "mx host nxdomain"
        if not ip.startswith("127."):
            return "unroutable mx"  # never contacted
        fate = smtp_fate(ip, running.smtp_port, address, timeout_s)
        if fate != "refused":
            return fate
    return fate


def smtp_fate(ip: str, port: int, address: str, timeout_s: float) -> str:
    try:
        sock = socket.create_connection((ip, port), timeout=timeout_s)
    except ConnectionRefusedError:
        return "refused"
    with sock, sock.makefile("rb") as replies:

        def reply() -> str:
            lines = []
            while True:
                line = replies.readline()
                if not line:
                    raise EOFError
                lines.append(line)
                if line[3:4] != b"-":
                    break
            text = lines[-1].decode("ascii")
            if not text[:3].isdigit():
                raise ValueError(text)  # not an SMTP reply
            return f"{text[:3]} {text[4:9]}" if text[4:5].isdigit() else text[:3]

        try:
            banner = reply()
            if not banner.startswith("220"):
                return f"banner {banner[:3]}"
            for command in ("EHLO prober.test", "MAIL FROM:<probe@prober.test>"):
                sock.sendall(command.encode() + b"\r\n")
                reply()
            sock.sendall(f"RCPT TO:<{address}>\r\n".encode())
            rcpt = reply()
            sock.sendall(b"QUIT\r\n")
            return f"rcpt {rcpt.rstrip()}" if rcpt[:1] != "2" else "rcpt 250"
        except TimeoutError:
            return "silence"
        except ConnectionResetError:
            return "reset"
        except EOFError:
            return "closed"
        except (UnicodeDecodeError, ValueError):
            return "garbage"


def test_every_truth_in_the_demo_list_is_what_the_running_world_answers(start_world, resolver_for):
    world = demo_world(**FAST)
    running = start_world(world)
    resolver = resolver_for(running, lifetime_s=PROBE_TIMEOUT_S)
    frame = demo_list(4_000).unique("email", keep="first", maintain_order=True)

    answers: dict[str, set[str]] = {}
    for truth, expected in EXPECTED_FIRST_ANSWER.items():
        if truth is Truth.HOSTILE_REPLY:
            continue  # the calm world has none; the hostile servers have their own tests
        slow = truth is Truth.SLOW_MAILBOX  # 0.8 s a reply, whatever the world's latency
        sample = frame.filter(pl.col("sandbox_truth") == truth)["email"].head(1 if slow else 3)
        assert len(sample) > 0, truth
        timeout_s = 2.0 if slow else PROBE_TIMEOUT_S
        answers[truth] = {first_answer(running, resolver, address, timeout_s) for address in sample}
        assert answers[truth] <= expected, (truth, answers[truth])
    assert running.counters().smtp.data_commands == 0


@pytest.mark.parametrize("truth", [Truth.MAILBOX_EXISTS, Truth.NO_SUCH_USER, Truth.CATCH_ALL])
def test_the_list_and_the_world_agree_for_every_row_of_the_common_truths(truth):
    """The cheap check for all rows: the address's server holds (or lacks) the mailbox."""
    from engine.sandbox.world import holds

    world = demo_world(**FAST)
    mx_of = {d.name: d.mx[0].host for d in world.domains if d.mx}
    servers = {s.name: s for s in world.servers}
    frame = demo_list().filter(pl.col("sandbox_truth") == truth)
    for address in frame["email"].str.to_lowercase():
        server = servers[mx_of[address.rpartition("@")[2]]]
        if truth is Truth.CATCH_ALL:
            assert server.behaviour is Behaviour.CATCH_ALL
        else:
            assert server.behaviour is Behaviour.STRICT
            assert holds(server.mailboxes, address) == (truth is Truth.MAILBOX_EXISTS)
