"""The prober over the whole demo world (every sandbox behaviour, hostile servers included):
no DATA ever, no improper pipelining, and each truth gets the answer the world can give.

Run with `-s` to see the per-truth agreement table.
"""

from __future__ import annotations

import polars as pl
import pytest

from engine.sandbox.demo_world import Truth, demo_list, demo_world
from engine.smtp import probe_addresses
from tests.engine.test_smtp_support import plan_for, probe_config, running_worlds

FAST = {"server_latency_s": (0.0, 0.0), "dns_latency_s": 0.0}

# What the best possible prober can learn for each truth (DNS truths never reach a session).
EXPECTED: dict[Truth, set[str]] = {
    Truth.MAILBOX_EXISTS: {"accepted"},
    Truth.NO_SUCH_USER: {"mailbox_not_found"},
    Truth.ROLE_MAILBOX: {"accepted"},
    Truth.CATCH_ALL: {"accepted"},
    Truth.ACCEPTS_ALL_PROVIDER: {"accepted"},
    Truth.DISPOSABLE: {"accepted"},
    Truth.GREYLISTED_MAILBOX: {"accepted"},
    Truth.GREYLISTED_NO_SUCH_USER: {"mailbox_not_found"},
    Truth.MAILBOX_FULL_TEMPORARY: {"mailbox_full_temporary"},
    Truth.MAILBOX_FULL_PERMANENT: {"mailbox_full_permanent"},
    Truth.MAILBOX_DISABLED: {"mailbox_disabled"},
    Truth.POLICY_BLOCK: {"policy_block"},
    Truth.IP_BLAMED: {"ip_blamed"},
    # 120 RCPTs a minute: the rest of the host's addresses wait out the back-off, then give up.
    Truth.RATE_LIMITED_MAILBOX: {"accepted", "rate_limited"},
    Truth.NO_PIPELINING_MAILBOX: {"accepted"},
    Truth.FEW_RCPTS_MAILBOX: {"accepted"},
    Truth.FAILOVER_MAILBOX: {"accepted"},
    Truth.IMPLICIT_MX_MAILBOX: {"accepted"},
    Truth.SLOW_MAILBOX: {"accepted"},
    Truth.SERVER_BUSY: {"server_busy"},
    Truth.TARPIT: {"timeout"},
    Truth.CONNECTION_REFUSED: {"connection_failed"},
    Truth.CONNECTION_RESET: {"disconnected"},
    Truth.GARBAGE_REPLY: {"protocol_error"},
    Truth.ACCEPT_THEN_CLOSE: {"disconnected"},
    Truth.HOSTILE_REPLY: {"protocol_error"},
    Truth.NULL_MX: {"not_probed"},
    Truth.MX_UNRESOLVABLE: {"not_probed"},
    Truth.MX_PRIVATE_ADDRESS: {"not_probed"},
    Truth.NO_SUCH_DOMAIN: {"not_probed"},
    Truth.DNS_SERVFAIL: {"not_probed"},
    Truth.DNS_TIMEOUT: {"not_probed"},
}
# Truths whose mailbox exists: none of them may ever come out as proof of absence.
EXISTING = {
    Truth.MAILBOX_EXISTS, Truth.ROLE_MAILBOX, Truth.GREYLISTED_MAILBOX,
    Truth.RATE_LIMITED_MAILBOX, Truth.NO_PIPELINING_MAILBOX, Truth.FEW_RCPTS_MAILBOX,
    Truth.FAILOVER_MAILBOX, Truth.IMPLICIT_MX_MAILBOX, Truth.SLOW_MAILBOX,
}  # fmt: skip


@pytest.fixture
def start_world():
    with running_worlds() as start:
        yield start


@pytest.mark.slow
def test_a_full_demo_world_run_sends_no_data_and_agrees_with_the_truth(start_world):
    world = demo_world(hostile=True, **FAST)
    listed = (
        demo_list(hostile=True)
        .filter(pl.col("sandbox_truth") != Truth.BROKEN_SYNTAX)
        .with_columns(pl.col("email").str.to_lowercase())
        .unique("email", keep="first", maintain_order=True)
    )
    running = start_world(world)
    config = probe_config(
        running,
        greylist_retry_s=[1.5, 2.0],  # the demo greylists for 3 s
        smtp_connect_timeout_s=1.5,
        smtp_command_timeout_s=1.5,  # the slow server answers in 0.8 s
        smtp_backoff_s=0.3,
    )

    outcome = probe_addresses(plan_for(world, listed.get_column("email")), config)

    counts = running.counters()
    assert counts.smtp.data_commands == 0
    assert outcome.stats["data_commands"] == 0
    assert counts.smtp.improper_pipelining == 0
    judged = listed.join(
        outcome.probes, left_on="email", right_on="email_normalized", maintain_order="left"
    )
    table = (
        judged.group_by("sandbox_truth")
        .agg(
            pl.len().alias("addresses"),
            pl.struct("sandbox_truth", "rcpt_class")
            .map_elements(
                lambda r: r["rcpt_class"] in EXPECTED[Truth(r["sandbox_truth"])],
                return_dtype=pl.Boolean,
            )
            .mean()
            .alias("agreement"),
            pl.col("rcpt_class").unique().sort().str.join(", ").alias("classes"),
        )
        .sort("sandbox_truth")
    )
    with pl.Config(tbl_rows=-1, fmt_str_lengths=60):
        print(table)
    assert table.get_column("agreement").min() == 1.0
    existing = judged.filter(pl.col("sandbox_truth").is_in(list(EXISTING)))
    assert existing.get_column("rcpt_class").is_in(["mailbox_not_found"]).sum() == 0
    assert set(table.get_column("sandbox_truth")) == {t.value for t in EXPECTED}
