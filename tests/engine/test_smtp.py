"""Specification of the SMTP prober against sandbox worlds: each test reads as its world.

Every world runs on loopback (engine/sandbox); the plan is read off the world's spec, as the DNS
stage would hand it over (tests/engine/test_smtp_support.py).
"""

from __future__ import annotations

import time
from collections import Counter

import polars as pl
import pytest

from engine.errors import InputError
from engine.sandbox.world import (
    Behaviour,
    Domain,
    Greylist,
    MailServer,
    Mx,
    RateLimit,
    World,
)
from engine.smtp import PROBE_SCHEMA, REPLY_SCHEMA, probe_addresses
from tests.engine.test_smtp_support import (
    one_domain_world,
    plan_for,
    probe_config,
    running_worlds,
)

NOT_PROOF_OF_ABSENCE = {"mailbox_not_found", "mailbox_disabled", "mailbox_full_permanent"}


@pytest.fixture
def start_world():
    with running_worlds() as start:
        yield start


def probe(running, world, addresses, **overrides):
    return probe_addresses(plan_for(world, addresses), probe_config(running, **overrides))


def classes(outcome) -> dict[str, str]:
    return dict(outcome.probes.select("email_normalized", "rcpt_class").iter_rows())


def row(outcome, address: str) -> dict:
    return outcome.probes.filter(pl.col("email_normalized") == address).to_dicts()[0]


# --- Answers a mailbox can get ---


def test_strict_server_confirms_mailboxes_and_rejects_unknown_users_with_5_1_1(start_world):
    world = one_domain_world("strict.test", MailServer("mx.strict.test", mailboxes={"alice"}))
    running = start_world(world)

    outcome = probe(running, world, ["alice@strict.test", "nobody@strict.test"])

    assert classes(outcome) == {
        "alice@strict.test": "accepted",
        "nobody@strict.test": "mailbox_not_found",
    }
    unknown = row(outcome, "nobody@strict.test")
    assert (unknown["smtp_response_code"], unknown["smtp_enhanced_code"]) == (550, "5.1.1")
    assert unknown["failed_step"] == "rcpt"
    assert row(outcome, "alice@strict.test")["failed_step"] is None
    assert outcome.probes.get_column("domain_catch_all").to_list() == [False, False]


def test_catch_all_domain_is_found_by_one_random_rcpt_in_the_same_session(start_world):
    world = one_domain_world("any.test", MailServer("mx.any.test", behaviour=Behaviour.CATCH_ALL))
    running = start_world(world)

    outcome = probe(running, world, ["alice@any.test", "bob@any.test"])

    assert set(classes(outcome).values()) == {"accepted"}
    assert outcome.probes.get_column("domain_catch_all").to_list() == [True, True]
    counts = running.counters().smtp
    assert counts.sessions == 1
    assert counts.rcpt_total == 3  # two addresses and the catch-all probe
    probe_reply = outcome.replies.filter(pl.col("catch_all_probe"))
    local_part = probe_reply.get_column("email_normalized")[0].partition("@")[0]
    assert len(local_part) == 24 and local_part.isalnum() and local_part.islower()


def test_disabled_and_full_mailboxes_are_told_apart(start_world):
    server = MailServer(
        "mx.boxes.test",
        disabled={"gone"},
        full_permanent={"stuffed"},
        full_temporary={"busy"},
    )
    world = one_domain_world("boxes.test", server)
    running = start_world(world)

    outcome = probe(running, world, ["gone@boxes.test", "stuffed@boxes.test", "busy@boxes.test"])

    assert classes(outcome) == {
        "gone@boxes.test": "mailbox_disabled",
        "stuffed@boxes.test": "mailbox_full_permanent",
        "busy@boxes.test": "mailbox_full_temporary",
    }
    assert row(outcome, "busy@boxes.test")["attempts"] == 2  # a 4xx is retried once, later


def test_greylisted_addresses_are_retried_after_the_delay_and_end_with_the_truth(start_world):
    server = MailServer("mx.grey.test", mailboxes={"alice"}, greylist=Greylist(delay_s=0.5))
    world = one_domain_world("grey.test", server)
    running = start_world(world)

    outcome = probe(
        running, world, ["alice@grey.test", "nobody@grey.test"], greylist_retry_s=[0.3, 0.6]
    )

    assert classes(outcome) == {
        "alice@grey.test": "accepted",
        "nobody@grey.test": "mailbox_not_found",
    }
    assert row(outcome, "alice@grey.test")["attempts"] == 3  # 0 s, +0.3 s (still early), +0.6 s
    first_replies = outcome.replies.filter(
        (pl.col("email_normalized") == "alice@grey.test") & (pl.col("attempt") == 1)
    )
    assert first_replies.get_column("code").to_list() == [450]


def test_greylisting_that_outlasts_the_schedule_ends_greylisted(start_world):
    server = MailServer("mx.grey.test", mailboxes={"alice"}, greylist=Greylist(60, code=451))
    world = one_domain_world("grey.test", server)
    running = start_world(world)

    outcome = probe(running, world, ["alice@grey.test"], greylist_retry_s=[0.1, 0.1])

    assert classes(outcome) == {"alice@grey.test": "greylisted"}
    assert row(outcome, "alice@grey.test")["attempts"] == 3


def test_greylist_retries_wait_on_timers_while_other_hosts_go_on(start_world):
    world = World(
        servers=[
            MailServer("mx.grey.test", mailboxes={"alice"}, greylist=Greylist(delay_s=0.8)),
            MailServer("mx.plain.test", mailboxes={"bob"}, latency_s=0.05),
        ],
        domains=[
            Domain("grey.test", mx=["mx.grey.test"]),
            Domain("plain.test", mx=["mx.plain.test"]),
        ],
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@grey.test", "bob@plain.test"], greylist_retry_s=[1.0])

    assert set(classes(outcome).values()) == {"accepted"}
    bob, alice = row(outcome, "bob@plain.test"), row(outcome, "alice@grey.test")
    # Bob's host answered within its three round trips, long before Alice's one-second retry.
    assert (alice["probed_at"] - bob["probed_at"]).total_seconds() > 0.6
    # The greylisted address did not hold a session open while it waited.
    assert running.counters().servers["mx.grey.test"].sessions == 2


# --- Answers that say nothing about the mailbox ---


def test_policy_block_is_not_proof_that_a_mailbox_is_missing(start_world):
    server = MailServer("mx.policy.test", behaviour=Behaviour.POLICY_BLOCK, mailboxes={"alice"})
    world = one_domain_world("policy.test", server)
    running = start_world(world)

    outcome = probe(running, world, ["alice@policy.test", "nobody@policy.test"])

    assert set(classes(outcome).values()) == {"policy_block"}
    assert outcome.probes.get_column("domain_catch_all").to_list() == [None, None]


@pytest.mark.parametrize("behaviour", [Behaviour.BLAME_IP_AT_BANNER, Behaviour.BLAME_IP_AT_RCPT])
def test_a_reply_blaming_our_ip_is_ip_blamed(start_world, behaviour):
    server = MailServer("mx.blamed.test", behaviour=behaviour, mailboxes={"alice"})
    world = one_domain_world("blamed.test", server)
    running = start_world(world)

    outcome = probe(running, world, ["alice@blamed.test", "nobody@blamed.test"])

    assert set(classes(outcome).values()) == {"ip_blamed"}
    assert "spamhaus" in row(outcome, "alice@blamed.test")["smtp_message"]


def test_ip_blamed_at_the_banner_gives_the_host_up_after_one_session(start_world):
    server = MailServer("mx.blamed.test", behaviour=Behaviour.BLAME_IP_AT_BANNER)
    world = one_domain_world("blamed.test", server)
    running = start_world(world)

    outcome = probe(running, world, [f"user{i}@blamed.test" for i in range(30)])

    assert set(classes(outcome).values()) == {"ip_blamed"}
    assert set(outcome.probes.get_column("failed_step")) == {"banner"}
    assert running.counters().servers["mx.blamed.test"].sessions <= 2  # the pool's first wave
    assert running.counters().servers["mx.blamed.test"].commands == {
        "QUIT": running.counters().servers["mx.blamed.test"].sessions
    }


def test_busy_server_ends_server_busy_after_backing_off(start_world):
    world = one_domain_world("busy.test", MailServer("mx.busy.test", behaviour=Behaviour.BUSY))
    running = start_world(world)

    outcome = probe(running, world, ["alice@busy.test"])

    assert classes(outcome) == {"alice@busy.test": "server_busy"}
    assert running.counters().servers["mx.busy.test"].sessions == 3  # three strikes, then out


def test_rate_limited_host_is_backed_off_and_its_pool_shrinks(start_world):
    limit = RateLimit(rcpts=5, window_s=60)
    server = MailServer("mx.limited.test", behaviour=Behaviour.CATCH_ALL, rate_limit=limit)
    world = one_domain_world("limited.test", server)
    running = start_world(world)

    outcome = probe(
        running,
        world,
        [f"user{i}@limited.test" for i in range(30)],
        smtp_per_mx_concurrency=4,
    )

    counted = Counter(classes(outcome).values())
    assert counted["accepted"] == 4  # five RCPTs a minute: four addresses and the catch-all probe
    assert counted["rate_limited"] == 26
    assert outcome.stats["per_mx"]["mx.limited.test"]["concurrency_limit_at_end"] == 1
    assert running.counters().servers["mx.limited.test"].sessions <= 3 + 4


def test_too_many_connections_at_the_banner_lowers_the_pool(start_world):
    limit = RateLimit(concurrent=1)
    server = MailServer(
        "mx.one.test", mailboxes={f"user{i}" for i in range(40)}, latency_s=0.02, rate_limit=limit
    )
    world = one_domain_world("one.test", server)
    running = start_world(world)

    outcome = probe(
        running,
        world,
        [f"user{i}@one.test" for i in range(40)],
        smtp_per_mx_concurrency=3,
        smtp_backoff_s=0.05,
    )

    assert set(classes(outcome).values()) == {"accepted"}
    assert outcome.stats["per_mx"]["mx.one.test"]["concurrency_limit_at_end"] == 1


# --- Servers that misbehave ---


def test_tarpit_times_out(start_world):
    world = one_domain_world(
        "tarpit.test", MailServer("mx.tarpit.test", behaviour=Behaviour.TARPIT)
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@tarpit.test"], smtp_command_timeout_s=0.2)

    assert classes(outcome) == {"alice@tarpit.test": "timeout"}
    assert row(outcome, "alice@tarpit.test")["failed_step"] == "banner"


def test_refused_connection_on_every_mx_is_connection_failed(start_world):
    world = one_domain_world(
        "refused.test", MailServer("mx.refused.test", behaviour=Behaviour.REFUSED)
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@refused.test"])

    assert classes(outcome) == {"alice@refused.test": "connection_failed"}
    assert row(outcome, "alice@refused.test")["failed_step"] == "connect"


@pytest.mark.parametrize(
    ("behaviour", "step"),
    [
        (Behaviour.RESET_AFTER_MAIL, "mail"),
        (Behaviour.RESET_AFTER_RCPT, "rcpt"),
        (Behaviour.ACCEPT_THEN_CLOSE, "banner"),
    ],
)
def test_a_connection_lost_mid_session_is_disconnected_never_a_missing_mailbox(
    start_world, behaviour, step
):
    server = MailServer("mx.reset.test", behaviour=behaviour, mailboxes={"alice"})
    world = one_domain_world("reset.test", server)
    running = start_world(world)

    outcome = probe(running, world, ["alice@reset.test", "nobody@reset.test"])

    assert set(classes(outcome).values()) == {"disconnected"}
    assert set(outcome.probes.get_column("failed_step")) == {step}


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.HTTP_BANNER,
        Behaviour.BINARY_GARBAGE,
        Behaviour.HUGE_LINE,
        Behaviour.ENDLESS_MULTILINE,
    ],
)
def test_garbage_oversized_and_endless_replies_end_quickly_as_protocol_error(
    start_world, behaviour
):
    server = MailServer("mx.hostile.test", behaviour=behaviour)
    world = one_domain_world("hostile.test", server)
    running = start_world(world)

    started = time.perf_counter()
    outcome = probe(running, world, ["alice@hostile.test"])

    assert classes(outcome) == {"alice@hostile.test": "protocol_error"}
    assert time.perf_counter() - started < 1.0
    assert outcome.replies.get_column("text").str.len_chars().max() <= 500


def test_existing_mailboxes_are_never_called_missing_by_a_4xx_block_timeout_or_reset(start_world):
    troubled = {
        "greylist": {"greylist": Greylist(60)},
        "policy": {"behaviour": Behaviour.POLICY_BLOCK},
        "blamed": {"behaviour": Behaviour.BLAME_IP_AT_RCPT},
        "tarpit": {"behaviour": Behaviour.TARPIT},
        "reset": {"behaviour": Behaviour.RESET_AFTER_RCPT},
        "full": {"full_temporary": {"alice"}},
        "limited": {"rate_limit": RateLimit(rcpts=0)},
    }
    servers = [
        MailServer(f"mx.{name}.test", mailboxes={"alice"}, **spec)
        for name, spec in troubled.items()
    ]
    domains = [Domain(f"{name}.test", mx=[f"mx.{name}.test"]) for name in troubled]
    world = World(servers=servers, domains=domains)
    running = start_world(world)

    outcome = probe(
        running,
        world,
        [f"alice@{name}.test" for name in troubled],
        greylist_retry_s=[0.1],
        smtp_command_timeout_s=0.3,
    )

    assert not set(classes(outcome).values()) & NOT_PROOF_OF_ABSENCE
    assert "accepted" not in set(classes(outcome).values())


# --- Routing ---


def test_failover_to_the_second_mx_when_the_first_refuses(start_world):
    world = World(
        servers=[
            MailServer("mx0.failover.test", behaviour=Behaviour.REFUSED),
            MailServer("mx1.failover.test", mailboxes={"alice"}),
        ],
        domains=[
            Domain("failover.test", mx=[Mx("mx0.failover.test", 10), Mx("mx1.failover.test", 20)])
        ],
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@failover.test", "nobody@failover.test"])

    assert classes(outcome) == {
        "alice@failover.test": "accepted",
        "nobody@failover.test": "mailbox_not_found",
    }
    assert row(outcome, "alice@failover.test")["mx_host"] == "mx1.failover.test"


def test_failover_when_the_first_mx_is_busy(start_world):
    world = World(
        servers=[
            MailServer("mx0.busy.test", behaviour=Behaviour.BUSY),
            MailServer("mx1.busy.test", mailboxes={"alice"}),
        ],
        domains=[Domain("busy.test", mx=["mx0.busy.test", "mx1.busy.test"])],
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@busy.test"])

    assert classes(outcome) == {"alice@busy.test": "accepted"}


def test_connects_to_the_ip_the_plan_gives_and_never_resolves_the_mx_name(start_world):
    world = one_domain_world("byip.test", MailServer("mx.byip.test", mailboxes={"alice"}))
    running = start_world(world)
    plan = plan_for(world, ["alice@byip.test"]).with_columns(
        pl.lit(
            [
                {
                    "preference": 10,
                    "host": "mx.never-resolved.invalid",
                    "addresses": ["127.0.0.2"],
                    "routable": True,
                }
            ],
            dtype=plan_for(world, []).schema["mx_hosts"],
        ).alias("mx_hosts")
    )

    outcome = probe_addresses(plan, probe_config(running))

    assert classes(outcome) == {"alice@byip.test": "accepted"}
    assert row(outcome, "alice@byip.test")["mx_host"] == "mx.never-resolved.invalid"
    assert running.counters().dns.queries == 0


def test_domains_without_a_routable_mx_are_not_probed(start_world):
    world = World(
        servers=[MailServer("mx.ok.test")],
        domains=[
            Domain("private.test", mx=["mx.private.test"]),
            Domain("mx.private.test", a=["10.0.0.1"]),
        ],
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@private.test", "bob@nowhere.test"])

    assert set(classes(outcome).values()) == {"not_probed"}
    assert running.counters().smtp.sessions == 0


# --- Manners ---


def test_per_mx_and_global_caps_are_never_exceeded(start_world):
    servers = [
        MailServer(f"mx{i}.cap.test", behaviour=Behaviour.CATCH_ALL, latency_s=0.02)
        for i in range(3)
    ]
    domains = [Domain(f"d{i}.cap.test", mx=[f"mx{i}.cap.test"]) for i in range(3)]
    world = World(servers=servers, domains=domains)
    running = start_world(world)
    addresses = [f"user{n}@d{i}.cap.test" for i in range(3) for n in range(120)]

    outcome = probe(running, world, addresses, smtp_per_mx_concurrency=2, smtp_global_concurrency=5)

    assert set(classes(outcome).values()) == {"accepted"}
    counts = running.counters()
    assert max(counts.servers[s.name].max_concurrent_sessions for s in servers) == 2
    assert counts.smtp.max_concurrent_sessions <= 5


def test_sessions_rotate_before_the_postfix_error_penalty(start_world):
    server = MailServer("mx.strict.test", mailboxes={"alice"})
    world = one_domain_world("strict.test", server)
    running = start_world(world)
    addresses = ["alice@strict.test"] + [f"nobody{i}@strict.test" for i in range(60)]

    outcome = probe(running, world, addresses, smtp_max_rejections_per_session=8)

    assert Counter(classes(outcome).values()) == {"mailbox_not_found": 60, "accepted": 1}
    errors_per_session = (
        outcome.replies.filter(pl.col("code") >= 400).group_by("session_id").len().get_column("len")
    )
    assert errors_per_session.max() <= 8  # Postfix slows down at 10 and hangs up at 20
    assert not outcome.replies.get_column("text").str.contains("too many errors").any()


def test_pipelining_is_used_only_when_advertised(start_world):
    world = World(
        servers=[
            MailServer("mx.old.test", behaviour=Behaviour.CATCH_ALL, pipelining=False),
            MailServer("mx.new.test", behaviour=Behaviour.CATCH_ALL),
        ],
        domains=[Domain("old.test", mx=["mx.old.test"]), Domain("new.test", mx=["mx.new.test"])],
    )
    running = start_world(world)
    # Seven addresses and the catch-all probe: one batch within the default budget of 8.
    addresses = [f"user{i}@{d}" for d in ("old.test", "new.test") for i in range(7)]

    outcome = probe(running, world, addresses, smtp_per_mx_concurrency=1)

    assert set(classes(outcome).values()) == {"accepted"}
    assert running.counters().smtp.improper_pipelining == 0
    per_mx = outcome.stats["per_mx"]
    assert per_mx["mx.new.test"]["pipelining"] is True
    assert per_mx["mx.old.test"]["pipelining"] is False
    # banner, EHLO, one group of MAIL + 8 RCPTs + QUIT  vs  banner, EHLO, MAIL, 8 RCPTs, QUIT
    assert per_mx["mx.new.test"]["round_trips"] == 3
    assert per_mx["mx.old.test"]["round_trips"] == 12


def test_a_per_message_recipient_limit_moves_the_rest_to_the_next_transaction(start_world):
    server = MailServer("mx.few.test", behaviour=Behaviour.CATCH_ALL, max_rcpt=3)
    world = one_domain_world("few.test", server)
    running = start_world(world)

    outcome = probe(running, world, [f"user{i}@few.test" for i in range(12)])

    assert set(classes(outcome).values()) == {"accepted"}
    assert outcome.stats["per_mx"]["mx.few.test"]["batch_limit"] == 3


# --- Provider policy and configuration ---


def test_a_provider_that_blocks_verification_is_answered_by_policy_without_connecting(start_world):
    world = one_domain_world("blocked.test", MailServer("mx.blocked.test"))
    running = start_world(world)
    plan = plan_for(world, ["alice@blocked.test"], blocks_verification=True)

    outcome = probe_addresses(plan, probe_config(running))

    assert classes(outcome) == {"alice@blocked.test": "provider_blocks_verification"}
    assert row(outcome, "alice@blocked.test")["attempts"] == 0
    assert running.counters().smtp.sessions == 0


def test_an_accept_all_provider_is_catch_all_by_policy_without_connecting(start_world):
    world = one_domain_world(
        "yahoo.com", MailServer("mta5.am0.yahoodns.net", behaviour=Behaviour.CATCH_ALL)
    )
    running = start_world(world)

    outcome = probe(running, world, ["alice@yahoo.com"])  # the provider table knows yahoodns.net

    assert row(outcome, "alice@yahoo.com")["rcpt_class"] == "accepted"
    assert row(outcome, "alice@yahoo.com")["domain_catch_all"] is True
    assert running.counters().smtp.sessions == 0


def test_a_provider_that_dislikes_several_rcpts_gets_one_per_session(start_world):
    world = one_domain_world(
        "single.test", MailServer("mx.single.test", behaviour=Behaviour.CATCH_ALL)
    )
    running = start_world(world)
    plan = plan_for(world, [f"user{i}@single.test" for i in range(4)], dislikes_multi_rcpt=True)

    outcome = probe_addresses(plan, probe_config(running))

    assert set(classes(outcome).values()) == {"accepted"}
    counts = running.counters().smtp
    assert counts.sessions == counts.rcpt_total == 4  # and no catch-all probe: it needs an RCPT


def test_catch_all_probe_can_be_switched_off(start_world):
    world = one_domain_world("any.test", MailServer("mx.any.test", behaviour=Behaviour.CATCH_ALL))
    running = start_world(world)

    outcome = probe(running, world, ["alice@any.test"], catch_all_probe=False)

    assert row(outcome, "alice@any.test")["domain_catch_all"] is None
    assert running.counters().smtp.rcpt_total == 1


def test_probing_without_an_honest_helo_and_sender_is_refused(start_world):
    world = one_domain_world("strict.test", MailServer("mx.strict.test"))
    running = start_world(world)

    with pytest.raises(InputError, match="--helo"):
        probe(running, world, ["alice@strict.test"], helo=None)
    assert running.counters().smtp.sessions == 0


def test_every_plan_row_comes_out_once_in_plan_order_with_the_contract_columns(start_world):
    world = one_domain_world("strict.test", MailServer("mx.strict.test", mailboxes={"alice"}))
    running = start_world(world)
    addresses = ["nobody@strict.test", "alice@strict.test", "nobody@strict.test", "x@nowhere.test"]

    outcome = probe(running, world, addresses)

    assert outcome.probes.get_column("email_normalized").to_list() == addresses
    assert outcome.probes.schema == pl.Schema(PROBE_SCHEMA)
    assert outcome.replies.schema == pl.Schema(REPLY_SCHEMA)
    assert running.counters().smtp.rcpts_to("nobody@strict.test") == 1
    assert outcome.stats["data_commands"] == 0


def test_progress_counts_every_plan_address_once(start_world):
    class Recorder:
        def __init__(self):
            self.total, self.done, self.finished = None, 0, False

        def start(self, stage, total):
            self.total = total

        def advance(self, stage, amount=1):
            self.done += amount

        def finish(self, stage):
            self.finished = True

    world = one_domain_world("any.test", MailServer("mx.any.test", behaviour=Behaviour.CATCH_ALL))
    running = start_world(world)
    recorder = Recorder()
    plan = plan_for(world, ["a@any.test", "b@any.test", "c@nowhere.test"])

    probe_addresses(plan, probe_config(running), progress=recorder)

    assert (recorder.total, recorder.done, recorder.finished) == (3, 3, True)
