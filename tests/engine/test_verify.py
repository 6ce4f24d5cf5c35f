"""The whole engine against the sandbox demo world: every truth the world holds ends in the
verdict a careful verifier would give, with no DATA ever sent and no MX over its session cap."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine.config import load_config
from engine.errors import InputError
from engine.sandbox.demo_world import demo_world, write_demo_list
from engine.sandbox.probe_settings import sandbox_overrides
from engine.sandbox.running import spawn_world
from engine.verify import verify_addresses, verify_file

INVALID, UNKNOWN, VALID = "invalid", "unknown", "valid"
# What each truth of the demo world must become (a set where two answers are both right).
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "mailbox_exists": {(VALID, "mailbox_confirmed")},
    "no_such_user": {(INVALID, "mailbox_not_found")},
    "role_mailbox": {("do_not_mail", "role_based")},
    "catch_all": {("catch_all", "accept_all"), ("do_not_mail", "role_based_catch_all")},
    "accepts_all_provider": {("catch_all", "accept_all")},
    "disposable": {("do_not_mail", "disposable"), (INVALID, "mailbox_not_found")},
    "greylisted_mailbox": {(VALID, "mailbox_confirmed")},
    "greylisted_no_such_user": {(INVALID, "mailbox_not_found")},
    "mailbox_full_temporary": {(UNKNOWN, "mailbox_quota_exceeded")},
    "mailbox_full_permanent": {(INVALID, "mailbox_quota_exceeded")},
    "mailbox_disabled": {(INVALID, "mailbox_disabled")},
    "policy_block": {(UNKNOWN, "antispam_system")},
    "ip_blamed": {(UNKNOWN, "antispam_system")},
    "rate_limited_mailbox": {(VALID, "mailbox_confirmed")},
    "no_pipelining_mailbox": {(VALID, "mailbox_confirmed")},
    "few_rcpts_mailbox": {(VALID, "mailbox_confirmed")},
    "failover_mailbox": {(VALID, "mailbox_confirmed")},
    "implicit_mx_mailbox": {(VALID, "mailbox_confirmed")},
    "slow_mailbox": {(VALID, "mailbox_confirmed")},
    "server_busy": {(UNKNOWN, "mail_server_temporary_error")},
    "tarpit": {(UNKNOWN, "timeout_exceeded")},
    "connection_refused": {(UNKNOWN, "failed_smtp_connection")},
    "connection_reset": {(UNKNOWN, "forcible_disconnect")},
    "garbage_reply": {(UNKNOWN, "mail_server_did_not_respond")},
    "accept_then_close": {(UNKNOWN, "forcible_disconnect")},
    "hostile_reply": {(UNKNOWN, "mail_server_did_not_respond")},
    "null_mx": {(INVALID, "does_not_accept_mail")},
    "mx_unresolvable": {(INVALID, "no_mx_records")},
    "mx_private_address": {(INVALID, "unroutable_ip_address")},
    "no_such_domain": {(INVALID, "no_dns_entries"), (INVALID, "possible_typo")},
    "dns_servfail": {(UNKNOWN, "mail_server_temporary_error")},
    "dns_timeout": {(UNKNOWN, "timeout_exceeded")},
    "broken_syntax": {(INVALID, "failed_syntax_check")},
}
PER_MX_CAP = 2


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """One smtp-depth run over a hostile demo world (fast replies), shared by the tests below."""
    workdir = tmp_path_factory.mktemp("demo")
    world = demo_world(hostile=True, server_latency_s=(0.0, 0.0), dns_latency_s=0.0)
    source = write_demo_list(workdir / "list.csv", rows=3000, hostile=True, with_truth=True)
    with spawn_world(world) as running:
        config = load_config(
            {
                **sandbox_overrides(running.dns_address, running.smtp_port),
                "depth": "smtp",
                "smtp_per_mx_concurrency": PER_MX_CAP,
                "data_dir": str(workdir / "home"),
            },
            env={},
        )
        run = verify_file([source], config, checkpoint_dir=workdir / "probes")
        counters = running.counters()
    return run, counters


def test_every_truth_of_the_world_gets_the_right_verdict(demo_run):
    run, _ = demo_run
    seen = run.results.group_by("sandbox_truth", "status", "sub_status").len()
    wrong = [
        row
        for row in seen.iter_rows(named=True)
        if (row["status"], row["sub_status"]) not in EXPECTED[row["sandbox_truth"]]
    ]
    assert wrong == []
    assert set(seen.get_column("sandbox_truth")) == set(EXPECTED)


def test_no_existing_mailbox_is_ever_called_invalid(demo_run):
    run, _ = demo_run
    exists = run.results.filter(
        pl.col("sandbox_truth").is_in(
            ["mailbox_exists", "greylisted_mailbox", "rate_limited_mailbox", "policy_block",
             "ip_blamed", "mailbox_full_temporary", "slow_mailbox", "tarpit", "connection_reset"]
        )
    )  # fmt: skip
    assert exists.filter(pl.col("status") == "invalid").height == 0


def test_the_prober_never_sends_data(demo_run):
    _, counters = demo_run
    assert counters.smtp.data_commands == 0
    assert "DATA" not in counters.smtp.commands and "BDAT" not in counters.smtp.commands


def test_no_mail_server_ever_sees_more_sessions_than_the_cap(demo_run):
    _, counters = demo_run
    busiest = max(server.max_concurrent_sessions for server in counters.servers.values())
    assert 1 <= busiest <= PER_MX_CAP


def test_pipelining_is_only_used_where_offered(demo_run):
    _, counters = demo_run
    assert counters.smtp.improper_pipelining == 0


def test_every_row_comes_out_once_in_order(demo_run, tmp_path):
    run, _ = demo_run
    source = pl.read_csv(run.summary["inputs"][0], infer_schema=False)
    assert run.results.height == source.height
    assert run.results.get_column("email").to_list() == source.get_column("email").to_list()


def test_every_raw_reply_is_kept(demo_run):
    run, _ = demo_run
    assert run.replies is not None
    rcpt = run.replies.filter(pl.col("step") == "rcpt")
    assert rcpt.height > 0
    assert {"code", "enhanced_code", "text", "step"} <= set(run.replies.columns)


def test_a_real_smtp_run_needs_an_honest_identity(tmp_path):
    config = load_config({"depth": "smtp"}, env={})
    with pytest.raises(InputError, match="--helo and --mail-from"):
        verify_addresses(["alice@example.com"], config)


def test_depth_dns_decides_domains_without_probing(tmp_path: Path):
    world = demo_world(server_latency_s=(0.0, 0.0), dns_latency_s=0.0)
    with spawn_world(world) as running:
        config = load_config(
            {**sandbox_overrides(running.dns_address, running.smtp_port), "depth": "dns"}, env={}
        )
        results = verify_addresses(["someone@gmail.com", "x@no-such-domain-here.example"], config)
        assert running.counters().smtp.sessions == 0
    assert results.get_column("sub_status").to_list() == ["not_probed", "no_dns_entries"]
    assert results.get_column("mx_found").to_list() == [True, False]
