"""Shared helpers of the SMTP prober's tests: a probe plan read off a sandbox world's spec, a
config pointed at the running world, and worlds that always stop.

The plan is what the DNS stage would hand over (MX hosts by preference, the A records the
world's resolver serves, routable or not, provider flags from engine/data/mx_providers.csv),
built from the spec so these tests do not depend on the DNS stage. The helpers are checked
here too, so a broken helper fails loudly rather than making other tests pass vacuously.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import polars as pl

from engine.config import Config
from engine.probe_plan import PLAN_SCHEMA
from engine.reference import provider_of_mx
from engine.sandbox.running import RunningWorld, run_world
from engine.sandbox.world import NULL_MX_HOST, Domain, MailServer, World

HELO = "prober.mailsift.test"
MAIL_FROM = "probe@mailsift.test"


def mx_hosts_of(world: World, domain: str) -> list[dict[str, Any]]:
    """The domain's MX hosts as the DNS stage reports them (RFC 5321 §5.1 implicit MX too)."""
    entry = world.zone.get(domain)
    if entry is None or entry.fault is not None:
        return []
    if entry.mx:
        records = [(mx.preference, mx.host) for mx in entry.mx if mx.host != NULL_MX_HOST]
    else:
        records = [(0, domain)] if entry.a else []
    hosts = []
    for preference, host in sorted(records):
        answer = world.zone.get(host)
        addresses = list(answer.a) if answer is not None and answer.fault is None else []
        routable = bool(addresses) and all(
            ipaddress.ip_address(ip).is_loopback or ipaddress.ip_address(ip).is_global
            for ip in addresses
        )
        hosts.append(
            {"preference": preference, "host": host, "addresses": addresses, "routable": routable}
        )
    return hosts


def plan_for(world: World, addresses: Iterable[str], **policy: bool) -> pl.DataFrame:
    """A probe plan over `addresses`; `policy` overrides the provider flags for every row."""
    emails = list(addresses)
    domains = [email.rpartition("@")[2].lower() for email in emails]
    hosts = {domain: mx_hosts_of(world, domain) for domain in set(domains)}
    primaries = pl.Series([h[0]["host"] for h in hosts.values() if h], dtype=pl.String)
    providers = {row["mx_host"]: row for row in provider_of_mx(primaries).to_dicts()}
    rows = []
    for email, domain in zip(emails, domains, strict=True):
        primary = hosts[domain][0]["host"] if hosts[domain] else None
        provider = providers.get(primary, {})
        rows.append(
            {
                "email_normalized": email,
                "domain": domain,
                "mx_hosts": hosts[domain],
                "smtp_provider": provider.get("provider"),
                "accepts_all_at_rcpt": policy.get(
                    "accepts_all_at_rcpt", bool(provider.get("accepts_all_at_rcpt"))
                ),
                "blocks_verification": policy.get(
                    "blocks_verification", bool(provider.get("blocks_verification"))
                ),
                "dislikes_multi_rcpt": policy.get(
                    "dislikes_multi_rcpt", bool(provider.get("dislikes_multi_rcpt"))
                ),
            }
        )
    return pl.DataFrame(rows, schema=PLAN_SCHEMA)


def probe_config(running: RunningWorld, **overrides: Any) -> Config:
    """Points the prober at the running world, with timeouts and delays short enough for tests."""
    settings: dict[str, Any] = {
        "dns": [running.dns_address],
        "smtp_port": running.smtp_port,
        "helo": HELO,
        "mail_from": MAIL_FROM,
        "smtp_connect_timeout_s": 2.0,
        "smtp_command_timeout_s": 2.0,
        "greylist_retry_s": [0.3, 0.6],
        "smtp_backoff_s": 0.05,
        "sandbox": True,
    }
    return Config(**(settings | overrides))


def one_domain_world(domain: str, *servers: MailServer) -> World:
    """`domain` with the given servers as its MX hosts, in order of preference."""
    return World(servers=servers, domains=[Domain(domain, mx=[s.name for s in servers])])


@contextlib.contextmanager
def running_worlds() -> Iterator[Callable[[World], RunningWorld]]:
    """Starts worlds on free loopback ports; every one of them stops on leaving the block."""
    started: list[RunningWorld] = []

    def start(world: World) -> RunningWorld:
        running = run_world(world)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


def test_plan_lists_mx_hosts_by_preference_with_their_loopback_addresses():
    world = World(
        servers=[MailServer("mx2.pref.test"), MailServer("mx1.pref.test")],
        domains=[Domain("pref.test", mx=["mx2.pref.test", "mx1.pref.test"])],
    )
    plan = plan_for(world, ["a@pref.test"])

    hosts = plan.get_column("mx_hosts")[0].to_list()
    assert [h["host"] for h in hosts] == ["mx2.pref.test", "mx1.pref.test"]
    assert [h["addresses"] for h in hosts] == [["127.0.0.2"], ["127.0.0.3"]]
    assert all(h["routable"] for h in hosts)


def test_plan_marks_private_mx_addresses_unroutable_and_null_mx_empty():
    world = World(
        domains=[
            Domain("private.test", mx=["mx.private.test"]),
            Domain("mx.private.test", a=["10.0.0.1"]),
            Domain("nullmx.test", mx=[]),
        ]
    )
    plan = plan_for(world, ["a@private.test", "b@nullmx.test"])

    assert plan.get_column("mx_hosts")[0].to_list()[0]["routable"] is False
    assert plan.get_column("mx_hosts")[1].to_list() == []
