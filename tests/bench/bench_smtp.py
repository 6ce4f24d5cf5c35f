"""The SMTP prober against its named baseline, side by side in one run (issue 3, "Speed").

The sandbox mail world runs in its own process (`spawn_world`); every reply arrives 25 ms after
its command, like a mail server across the internet. 50k addresses over 500 domains on 50 MX
hosts; one giant host (Gmail's role in real lists) holds 40% of them; 10% of addresses have no
mailbox (550 5.1.1). Every server has Postfix's error penalty, so the rejection budget is real.
Measured in the same run:
- `probe_addresses` with the default politeness knobs and a per-MX cap of 4;
- a one-connection-per-address sequential prober as py3-validate-email works (smtplib:
  connect, EHLO, MAIL, RCPT, QUIT per address) on a sample, reported as addresses/s;
- the lower bound LB = max over hosts of (the round trips that host's probes needed) x RTT /
  per-MX cap, with the round trips counted per host by the prober (banner, EHLO, one per
  pipelined transaction), and the same bound if no session ever had to rotate.

Not a test: nothing asserts a time; the targets are printed next to the measurements.
Run alone with `python -m tests.bench.bench_smtp [ADDRESSES]`.
"""

from __future__ import annotations

import json
import math
import random
import smtplib
import sys
import time
from collections import Counter
from typing import Any, Final

import polars as pl

from engine.config import Config
from engine.probe_plan import PLAN_SCHEMA
from engine.sandbox.running import WorldProcess, spawn_world
from engine.sandbox.world import Domain, MailServer, World
from engine.smtp import ROTATION_SHARE, probe_addresses

LATENCY_S: Final = 0.025
HOSTS: Final = 50
DOMAINS: Final = 500
GIANT_SHARE: Final = 0.40
UNKNOWN_SHARE: Final = 0.10
PER_MX_CAP: Final = 4
BASELINE_SAMPLE: Final = 100
TARGET_SPEEDUP: Final = 200
TARGET_MAKESPAN_OVER_LB: Final = 1.3
SEED: Final = 2026
GIANT: Final = "gmail-smtp-in.giant.bench"
HELO: Final = "prober.mailsift.bench"
MAIL_FROM: Final = "probe@mailsift.bench"


def bench_world(addresses: int, *, seed: int = SEED) -> tuple[World, list[str], dict[str, str]]:
    """The world, the addresses in list order (shuffled) and each one's true answer."""
    rng = random.Random(seed)
    domains_per_host = DOMAINS // HOSTS
    hosts = [GIANT] + [f"mx{i}.host{i}.bench" for i in range(1, HOSTS)]
    giant_count = round(addresses * GIANT_SHARE)
    per_domain = _spread(giant_count, domains_per_host) + _spread(
        addresses - giant_count, DOMAINS - domains_per_host
    )
    mailboxes: dict[str, set[str]] = {host: set() for host in hosts}
    domains: list[Domain] = []
    listed: list[str] = []
    truth: dict[str, str] = {}
    for index, count in enumerate(per_domain):
        host = hosts[index // domains_per_host]
        name = f"d{index}.bench"
        domains.append(Domain(name, mx=[host]))
        for n in range(count):
            address = f"user{n}@{name}"
            exists = rng.random() >= UNKNOWN_SHARE
            if exists:
                mailboxes[host].add(address)
            truth[address] = "accepted" if exists else "mailbox_not_found"
            listed.append(address)
    rng.shuffle(listed)
    servers = [MailServer(host, mailboxes=mailboxes[host], latency_s=LATENCY_S) for host in hosts]
    return World(servers=servers, domains=domains), listed, truth


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (index < total % parts) for index in range(parts)]


def bench_plan(world: World, addresses: list[str]) -> pl.DataFrame:
    """The plan the DNS stage would hand over: one MX host per domain, its loopback address."""
    mx_of = {d.name: d.mx[0].host for d in world.domains}
    domains = [address.rpartition("@")[2] for address in addresses]
    hosts = [
        [
            {
                "preference": 10,
                "host": mx_of[d],
                "addresses": [world.address_of(mx_of[d])],
                "routable": True,
            }
        ]
        for d in domains
    ]
    return pl.DataFrame(
        {
            "email_normalized": addresses,
            "domain": domains,
            "mx_hosts": hosts,
            "smtp_provider": [None] * len(addresses),
            "accepts_all_at_rcpt": [False] * len(addresses),
            "blocks_verification": [False] * len(addresses),
            "dislikes_multi_rcpt": [False] * len(addresses),
        },
        schema=PLAN_SCHEMA,
    )


def bench_config(world: WorldProcess) -> Config:
    return Config(
        dns=[world.dns_address],
        smtp_port=world.smtp_port,
        helo=HELO,
        mail_from=MAIL_FROM,
        smtp_per_mx_concurrency=PER_MX_CAP,
        sandbox=True,
    )


def sequential_baseline(addresses: list[str], world: WorldProcess) -> float:
    """Addresses/s of one connection per address, as py3-validate-email's smtplib check."""
    started = time.perf_counter()
    for address in addresses:
        host = world.world.zone[address.rpartition("@")[2]].mx[0].host
        with smtplib.SMTP(world.address_of(host), world.smtp_port, HELO, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail(MAIL_FROM)
            smtp.rcpt(address)
            smtp.quit()
    return len(addresses) / (time.perf_counter() - started)


def lower_bounds(
    stats: dict[str, Any], config: Config, rcpts_by_host: Counter[str]
) -> dict[str, Any]:
    """LB from the round trips each host's probes needed, and if no session had rotated."""
    full_batch = min(config.smtp_rcpt_per_session, config.smtp_max_rejections_per_session)
    measured = {host: figures["round_trips"] for host, figures in stats["per_mx"].items()}
    # Without rotation: each of the cap's sessions pays banner + EHLO once, then one round
    # trip per full pipelined batch (QUIT rides in the last one).
    ideal = {
        host: math.ceil(rcpts / full_batch) + 2 * PER_MX_CAP
        for host, rcpts in rcpts_by_host.items()
    }
    worst = max(measured, key=measured.__getitem__)
    return {
        "bottleneck_host": worst,
        "bottleneck_round_trips": measured[worst],
        "lb_s": round(measured[worst] * LATENCY_S / PER_MX_CAP, 3),
        "lb_no_rotation_s": round(max(ideal.values()) * LATENCY_S / PER_MX_CAP, 3),
        "full_batch": full_batch,
        "rotation_share": ROTATION_SHARE,
    }


def run(addresses: int = 50_000) -> dict[str, Any]:
    """Every figure of the SMTP bench, as the `make bench` JSON takes it."""
    world_spec, listed, truth = bench_world(addresses)
    plan = bench_plan(world_spec, listed)
    sample = random.Random(SEED).sample(listed, min(BASELINE_SAMPLE, len(listed)))
    with spawn_world(world_spec) as world:
        config = bench_config(world)
        baseline_per_s = sequential_baseline(sample, world)
        before = world.counters()
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        outcome = probe_addresses(plan, config)
        wall_s = time.perf_counter() - wall_started
        cpu_s = time.process_time() - cpu_started
        after = world.counters()
    rcpts_by_host = Counter(
        {
            name: counts.rcpt_total - before.servers[name].rcpt_total
            for name, counts in after.servers.items()
        }
    )
    bounds = lower_bounds(outcome.stats, config, rcpts_by_host)
    probes = outcome.probes
    agreement = sum(
        truth[address] == rcpt_class
        for address, rcpt_class in probes.select("email_normalized", "rcpt_class").iter_rows()
    ) / len(listed)
    started_at = probes.get_column("probed_at").min()
    finished = probes.group_by(pl.col("mx_host") == GIANT).agg(pl.col("probed_at").max())
    finish_s = {
        is_giant: (at - started_at).total_seconds() for is_giant, at in finished.iter_rows()
    }
    per_s = addresses / wall_s
    return {
        "addresses": addresses,
        "domains": DOMAINS,
        "mx_hosts": HOSTS,
        "giant_share": GIANT_SHARE,
        "unknown_share": UNKNOWN_SHARE,
        "reply_latency_s": LATENCY_S,
        "per_mx_cap": PER_MX_CAP,
        "global_cap": config.smtp_global_concurrency,
        "rcpt_per_session": config.smtp_rcpt_per_session,
        "max_rejections_per_session": config.smtp_max_rejections_per_session,
        "mailsift_makespan_s": round(wall_s, 3),
        "mailsift_addresses_per_s": round(per_s),
        "mailsift_cpu_s": round(cpu_s, 3),
        "mailsift_cpu_share": round(cpu_s / wall_s, 3),
        "giant_finished_s": round(finish_s.get(True, 0.0), 3),
        "others_finished_s": round(finish_s.get(False, 0.0), 3),
        "baseline": "smtplib per address: connect, EHLO, MAIL, RCPT, QUIT (py3-validate-email)",
        "baseline_sample": len(sample),
        "baseline_addresses_per_s": round(baseline_per_s, 2),
        "speedup": round(per_s / baseline_per_s, 1),
        "target_speedup": TARGET_SPEEDUP,
        **bounds,
        "makespan_over_lb": round(wall_s / bounds["lb_s"], 3),
        "makespan_over_lb_no_rotation": round(wall_s / bounds["lb_no_rotation_s"], 3),
        "target_makespan_over_lb": TARGET_MAKESPAN_OVER_LB,
        "agreement_with_truth": round(agreement, 5),
        "classes": dict(Counter(probes.get_column("rcpt_class").to_list())),
        "sessions": outcome.stats["sessions"],
        "rcpts_sent": outcome.stats["rcpts_sent"],
        "round_trips": outcome.stats["round_trips"],
        "retries": outcome.stats["retries"],
        "world_data_commands": after.smtp.data_commands,
        "world_improper_pipelining": after.smtp.improper_pipelining,
        "world_max_sessions_per_mx": max(c.max_concurrent_sessions for c in after.servers.values()),
        "world_max_sessions": after.smtp.max_concurrent_sessions,
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000), indent=2))
