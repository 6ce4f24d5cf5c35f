"""The hostile network suite (issue 6): every way a DNS or mail server misbehaves on the wire
ends in bounded time, as `unknown` (never invalid), with no crash and no memory blow-up, and the
rest of the list keeps its right verdicts.

Each test states a small world: the hostile domain or server beside a healthy domain, and runs
the whole engine (`verify_file`, SMTP depth) over a list holding both. Each run must finish
within a bound derived from the configured per-stage timeouts: generous for a loaded 2-core
machine, yet far below what a single timeout that did not hold would cost (a run that overruns
it fails instead of hanging). Where the attack is about size (a 10 MB line, an endless reply, a
64 KiB TXT record), the engine runs in a child process, the world stays in this one, and the
child's peak Python heap and peak RSS growth over a warmed-up run are measured.

Run as a module (`python -m tests.engine.test_hostile_network`), this file is that child.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from engine.config import Config
from engine.sandbox.counters import WorldCounts
from engine.sandbox.running import RunningWorld
from engine.sandbox.smtp_replies import HUGE_LINE_OCTETS
from engine.sandbox.world import Behaviour, DnsFault, Domain, MailServer, RateLimit, World
from engine.smtp import BACKOFF_JITTER, STRIKE_LIMIT
from engine.verify import verify_file
from tests.engine.test_smtp_support import probe_config, running_worlds

INVALID, UNKNOWN, VALID = "invalid", "unknown", "valid"
HEALTHY_MX: Final = MailServer("mx.healthy.example", mailboxes={"alice"})
HEALTHY: Final = Domain("healthy.example", mx=[HEALTHY_MX.name])
HEALTHY_VERDICTS: Final = {"alice@healthy.example": VALID, "nobody@healthy.example": INVALID}
HOSTILE_MX: Final = "mx.hostile.example"
HOSTILE_ADDRESSES: Final = ("alice@hostile.example", "nobody@hostile.example")
# What the hostile domain's own mailboxes are, where a fault must not change the answer.
HOSTILE_TRUTH: Final = {"alice@hostile.example": VALID, "nobody@hostile.example": INVALID}
# Short per-stage timeouts, so a run that waits them out stays quick; loopback answers in ~1 ms.
NETWORK_SETTINGS: Final[dict[str, Any]] = {
    "dns_timeout_s": 0.5,
    "dns_retries": 1,
    "smtp_connect_timeout_s": 2.0,
    "smtp_command_timeout_s": 1.0,
    "smtp_backoff_s": 0.05,
    "smtp_per_mx_concurrency": 2,
}
# Ingest, prepare, verdicts and history around the network stages take ~0.5 s on an idle
# machine; the rest is room for a loaded 2-core CI box.
STAGE_OVERHEAD_S: Final = 10.0
# Replies a session may wait for: the banner, EHLO, its transaction's (one timeout covers a
# pipelined group: the replies arrive together or not at all) and QUIT's.
REPLIES_PER_SESSION: Final = 4
# Memory a hostile run may take beyond a warmed-up healthy run. The Python heap's peak (where
# every network buffer lives) measured 0.45-0.6 MiB whatever the load; a client without the
# reply limits peaked at 7 MiB on the endless reply (in 1 s) and 43 MiB on the 10 MB line.
MAX_HEAP_PEAK_KIB: Final = 2 * 1024
# Peak RSS is a backstop: native allocations (polars, DuckDB) vary by 2-15 MiB from run to run
# on a loaded 2-core machine; the same limitless client grew it by 13-96 MiB.
MAX_RSS_GROWTH_KIB: Final = 4 * HUGE_LINE_OCTETS // 1024
CHILD_START_S: Final = 30.0  # a fresh interpreter imports polars, duckdb and dnslib first
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
# Names and records that make answers bigger than DNS over TCP can carry (RFC 1035 §4.2.2).
HUGE_TXT_OCTETS: Final = 60_000  # one record near the 64 KiB message limit: fits over TCP
BEYOND_TCP_TXT: Final = ("a" * 40_000, "b" * 40_000)  # two records: 80 KB, no message holds both
BEYOND_TCP_MX_HOSTS: Final = 3000


@dataclass(frozen=True)
class Run:
    """One verification of a list against a world: each address's status, and the costs."""

    statuses: dict[str, str]
    spf: dict[str, bool | None]
    elapsed_s: float
    bound_s: float
    counts: WorldCounts
    heap_peak_kib: int | None = None
    rss_growth_kib: int | None = None


def world_with(
    *servers: MailServer, domains: Sequence[Domain] = (), hostile_mx: Behaviour | None = None
) -> World:
    """The healthy domain beside the hostile part; `hostile_mx` gives hostile.example an MX
    server with that behaviour, holding the mailbox `alice`."""
    hostile: list[MailServer] = list(servers)
    hostile_domains = list(domains)
    if hostile_mx is not None:
        hostile.append(MailServer(HOSTILE_MX, behaviour=hostile_mx, mailboxes={"alice"}))
        hostile_domains.append(Domain("hostile.example", mx=[HOSTILE_MX]))
    return World(servers=[HEALTHY_MX, *hostile], domains=[HEALTHY, *hostile_domains])


def time_bound(config: Config) -> float:
    """The longest a run over these worlds may take when every per-stage timeout holds."""
    # DNS: a domain's MX question, then its hosts' A/AAAA; each question tried (retries + 1)
    # times plus one retry of an error answer, each try a UDP message and perhaps its TCP retry.
    question = (config.dns_retries + 2) * 2 * config.dns_timeout_s
    dns = 2 * question
    # SMTP: a route is given up at its third strike; a session waits for its connection and
    # for each reply at most one timeout; between sessions a back-off with jitter.
    session = config.smtp_connect_timeout_s + REPLIES_PER_SESSION * config.smtp_command_timeout_s
    backoffs = config.smtp_backoff_s * (2**STRIKE_LIMIT - 1) * BACKOFF_JITTER[1]
    return dns + STRIKE_LIMIT * session + backoffs + STAGE_OVERHEAD_S


def write_list(path: Path, addresses: Iterable[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email"])
        writer.writerows([address] for address in addresses)
    return path


def config_for(running: RunningWorld, data_dir: Path, **overrides: Any) -> Config:
    settings = {"data_dir": data_dir, "depth": "smtp", "allow_loopback_mx": True}
    return probe_config(running, **(settings | NETWORK_SETTINGS | overrides))


def verify_in(
    world: World,
    tmp_path: Path,
    hostile: Iterable[str],
    *,
    dns_ahead: Sequence[str] = (),
    **overrides: Any,
) -> Run:
    """Verifies the healthy addresses and `hostile` against `world`, within the time bound;
    `dns_ahead` are DNS servers asked before the world's own."""
    source = write_list(tmp_path / "list.csv", [*HEALTHY_VERDICTS, *hostile])
    with running_worlds() as start:
        running = start(world)
        dns = [*dns_ahead, running.dns_address]
        config = config_for(running, tmp_path / "home", dns=dns, **overrides)
        bound = time_bound(config)
        # In a thread, so a run that overruns fails the test; stopping the world then resets
        # whatever it still waits on, and the thread ends by itself.
        pool = ThreadPoolExecutor(max_workers=1)
        started = time.monotonic()
        try:
            verified = pool.submit(verify_file, source, config).result(timeout=bound)
        except TimeoutError:
            pytest.fail(f"the run was still going after {bound:.1f} s: a timeout did not hold")
        finally:
            pool.shutdown(wait=False)
        elapsed = time.monotonic() - started
        counts = running.counters()
    results = verified.results
    return Run(
        dict(zip(results["email"], results["status"], strict=True)),
        dict(zip(results["email"], results["spf"], strict=True)),
        elapsed,
        bound,
        counts,
    )


def verify_in_child(world: World, tmp_path: Path, hostile: Iterable[str], **overrides: Any) -> Run:
    """Like `verify_in`, with the engine in a child process whose memory is measured: first a
    warm-up run over the healthy addresses alone, then the run over the whole list."""
    warmup = write_list(tmp_path / "warmup.csv", HEALTHY_VERDICTS)
    source = write_list(tmp_path / "list.csv", [*HEALTHY_VERDICTS, *hostile])
    with running_worlds() as start:
        running = start(world)
        config = config_for(running, tmp_path / "home", **overrides)
        bound = time_bound(config)
        request = {
            "config": config.model_dump(mode="json"),
            "warmup": str(warmup),
            "warmup_data_dir": str(tmp_path / "warmup-home"),
            "list": str(source),
        }
        try:
            child = subprocess.run(
                [sys.executable, "-m", "tests.engine.test_hostile_network"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                timeout=CHILD_START_S + 2 * bound,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the child run was still going after {bound:.1f} s: a timeout did not hold"
            )
        counts = running.counters()
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])
    return Run(
        report["statuses"],
        report["spf"],
        report["elapsed_s"],
        bound,
        counts,
        report["heap_peak_kib"],
        report["rss_growth_kib"],
    )


def assert_contained(run: Run, expected: dict[str, str]) -> None:
    """The contract of the suite: `expected` verdicts for the hostile addresses, the healthy
    domain's own verdicts, the time bound, and not one DATA (DESIGN §7)."""
    assert {address: run.statuses[address] for address in expected} == expected
    assert {address: run.statuses[address] for address in HEALTHY_VERDICTS} == HEALTHY_VERDICTS
    assert run.elapsed_s < run.bound_s
    assert run.counts.smtp.data_commands == 0


def assert_memory_bounded(run: Run) -> None:
    """No buffer grew with what the hostile server sent (see MAX_HEAP_PEAK_KIB)."""
    assert run.heap_peak_kib is not None and run.heap_peak_kib < MAX_HEAP_PEAK_KIB
    assert run.rss_growth_kib is not None and run.rss_growth_kib < MAX_RSS_GROWTH_KIB


def unknown(addresses: Iterable[str] = HOSTILE_ADDRESSES) -> dict[str, str]:
    return dict.fromkeys(addresses, UNKNOWN)


# --- Mail servers that misbehave ---


def test_tarpit_that_never_speaks_is_given_up_after_its_command_timeouts(tmp_path: Path) -> None:
    run = verify_in(world_with(hostile_mx=Behaviour.TARPIT), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert run.counts.servers[HOSTILE_MX].sessions == STRIKE_LIMIT


def test_greeting_trickled_one_octet_at_a_time_times_out_as_a_whole(tmp_path: Path) -> None:
    # Bytes keep coming, so only a deadline on the whole reply ends it, not an idle timeout.
    run = verify_in(world_with(hostile_mx=Behaviour.TRICKLE), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert run.counts.servers[HOSTILE_MX].sessions == STRIKE_LIMIT


@pytest.mark.parametrize("behaviour", [Behaviour.RESET_AFTER_MAIL, Behaviour.RESET_AFTER_RCPT])
def test_connection_reset_mid_session_is_unknown(tmp_path: Path, behaviour: Behaviour) -> None:
    run = verify_in(world_with(hostile_mx=behaviour), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())


@pytest.mark.parametrize("behaviour", [Behaviour.BINARY_GARBAGE, Behaviour.HTTP_BANNER])
def test_garbage_replies_are_unknown_and_the_server_is_dropped(
    tmp_path: Path, behaviour: Behaviour
) -> None:
    run = verify_in(world_with(hostile_mx=behaviour), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert run.counts.servers[HOSTILE_MX].sessions == 1  # garbage gives the route up at once


@pytest.mark.parametrize(
    "storm",
    [
        {"behaviour": Behaviour.BUSY},  # 421 at every greeting
        {"behaviour": Behaviour.CATCH_ALL, "rate_limit": RateLimit(rcpts=0, rcpt_code=421)},
    ],
    ids=["421_at_banner", "421_at_every_rcpt"],
)
def test_421_storm_over_many_domains_costs_a_few_sessions_not_one_per_address(
    tmp_path: Path, storm: dict[str, Any]
) -> None:
    stormy = [f"storm{n}.example" for n in range(4)]
    world = world_with(
        MailServer("mx.storm.example", **storm),
        domains=[Domain(name, mx=["mx.storm.example"]) for name in stormy],
    )
    addresses = [f"{local}@{domain}" for domain in stormy for local in ("alice", "bob", "carol")]

    run = verify_in(world, tmp_path, addresses)

    assert_contained(run, unknown(addresses))
    # Each 421 strikes the host's pace and halves its pool; the third strike ends it. Sessions
    # already open when a strike lands are the same incident and count once.
    pool = NETWORK_SETTINGS["smtp_per_mx_concurrency"]
    assert run.counts.servers["mx.storm.example"].sessions <= STRIKE_LIMIT + pool - 1


def test_endless_multiline_reply_is_cut_off_without_growing_memory(tmp_path: Path) -> None:
    world = world_with(hostile_mx=Behaviour.ENDLESS_MULTILINE)
    run = verify_in_child(world, tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert_memory_bounded(run)


def test_ten_megabyte_reply_line_is_cut_off_without_growing_memory(tmp_path: Path) -> None:
    run = verify_in_child(world_with(hostile_mx=Behaviour.HUGE_LINE), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert_memory_bounded(run)


def test_server_that_accepts_then_closes_is_unknown(tmp_path: Path) -> None:
    run = verify_in(world_with(hostile_mx=Behaviour.ACCEPT_THEN_CLOSE), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert run.counts.servers[HOSTILE_MX].sessions == STRIKE_LIMIT


# --- DNS that misbehaves ---


def hostile_domain(**records: Any) -> World:
    """hostile.example declared with `records` (a fault, huge records), its MX a strict server."""
    records.setdefault("mx", [HOSTILE_MX])
    return world_with(
        MailServer(HOSTILE_MX, mailboxes={"alice"}), domains=[Domain("hostile.example", **records)]
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (DnsFault.TRUNCATED_NO_TCP, unknown()),  # TC over UDP, TCP dropped: no answer at all
        (DnsFault.TRUNCATED, HOSTILE_TRUTH),  # TC over UDP, whole over TCP: the truth
    ],
    ids=["tcp_dropped", "tcp_answers"],
)
def test_truncated_dns_answer_is_asked_over_tcp_or_ends_unknown(
    tmp_path: Path, fault: DnsFault, expected: dict[str, str]
) -> None:
    run = verify_in(hostile_domain(fault=fault), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, expected)
    assert run.counts.dns.tcp_queries >= 1


def test_mx_answer_too_big_even_for_tcp_is_unknown_never_a_domain_without_mail(
    tmp_path: Path,
) -> None:
    # Past 64 KiB the server sets TC over TCP too, with no records: read as a plain NOERROR
    # that would be "no MX", and the domain, with no address either, "accepts no mail".
    hosts = [f"mx{n:04d}.a-rather-long-exchanger-name.example" for n in range(BEYOND_TCP_MX_HOSTS)]
    world = World(servers=[HEALTHY_MX], domains=[HEALTHY, Domain("hostile.example", mx=hosts)])

    run = verify_in(world, tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())


def test_answers_with_a_wrong_message_id_are_never_taken(tmp_path: Path) -> None:
    run = verify_in(hostile_domain(fault=DnsFault.WRONG_ID), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())


def test_forged_nxdomain_racing_the_real_answer_is_ignored(tmp_path: Path) -> None:
    # RFC 5452: taken by question alone, the forgery would make a live domain invalid.
    run = verify_in(hostile_domain(fault=DnsFault.SPOOFED_NXDOMAIN), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, HOSTILE_TRUTH)


def test_answers_from_another_port_are_never_taken(tmp_path: Path) -> None:
    run = verify_in(hostile_domain(fault=DnsFault.WRONG_SOURCE), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())


def test_dns_that_never_answers_for_a_domain_is_unknown(tmp_path: Path) -> None:
    run = verify_in(hostile_domain(fault=DnsFault.TIMEOUT), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    tries = NETWORK_SETTINGS["dns_retries"] + 1
    assert run.counts.dns.of("hostile.example", "MX") == tries


def test_a_dead_first_dns_server_costs_time_not_verdicts(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
        dead.bind(("127.0.0.1", 0))  # bound and never read: queries vanish as into a dead host
        dead_server = f"127.0.0.1:{dead.getsockname()[1]}"
        run = verify_in(hostile_domain(), tmp_path, HOSTILE_ADDRESSES, dns_ahead=[dead_server])

    assert_contained(run, HOSTILE_TRUTH)


@pytest.mark.parametrize(
    ("looping", "question"),
    [("domain", ("hostile.example", "MX")), ("mx_host", ("mx.loop.example", "A"))],
)
def test_cname_loop_is_unknown_at_once(
    tmp_path: Path, looping: str, question: tuple[str, str]
) -> None:
    if looping == "domain":
        loop = [Domain("hostile.example", cname="loop.example")]
    else:
        loop = [Domain("hostile.example", mx=["mx.loop.example"])]
        loop.append(Domain("mx.loop.example", cname="loop.example"))
    loop.append(Domain("loop.example", cname=loop[-1].name))
    world = World(servers=[HEALTHY_MX], domains=[HEALTHY, *loop])

    run = verify_in(world, tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, unknown())
    assert run.counts.dns.of(*question) == 1  # a loop answers alike each time: never retried


def test_txt_record_near_64_kib_arrives_over_tcp_without_growing_memory(tmp_path: Path) -> None:
    huge_spf = "v=spf1 " + "x" * HUGE_TXT_OCTETS
    run = verify_in_child(hostile_domain(spf=huge_spf), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, HOSTILE_TRUTH)
    assert run.spf["alice@hostile.example"] is True
    assert run.counts.dns.tcp_queries >= 1
    assert_memory_bounded(run)


def test_txt_records_beyond_64_kib_leave_spf_unknown_and_the_mailbox_verdict_alone(
    tmp_path: Path,
) -> None:
    run = verify_in(hostile_domain(txt=BEYOND_TCP_TXT), tmp_path, HOSTILE_ADDRESSES)

    assert_contained(run, HOSTILE_TRUTH)  # TXT says nothing about where mail goes
    assert run.spf["alice@hostile.example"] is None  # unknown, not "publishes no SPF"


# --- The child process of `verify_in_child` ---


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _measure_in_child() -> None:
    """Runs the request on stdin: a warm-up, then the measured run; the report on stdout."""
    request = json.loads(sys.stdin.read())
    config = Config.model_validate(request["config"])
    warmup = config.model_copy(update={"data_dir": Path(request["warmup_data_dir"])})
    verify_file(Path(request["warmup"]), warmup)
    # Resets the peak (VmHWM) to the resident set now (proc(5), clear_refs): the warm-up's own
    # peak would otherwise hide any growth below it.
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = _status_kib("VmRSS")
    tracemalloc.start()
    started = time.monotonic()
    results = verify_file(Path(request["list"]), config).results
    elapsed = time.monotonic() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report = {
        "statuses": dict(zip(results["email"], results["status"], strict=True)),
        "spf": dict(zip(results["email"], results["spf"], strict=True)),
        "elapsed_s": elapsed,
        "heap_peak_kib": heap_peak // 1024,
        "rss_growth_kib": _status_kib("VmHWM") - rss_before,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    _measure_in_child()
