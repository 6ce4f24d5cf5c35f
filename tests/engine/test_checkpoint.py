"""Specification of checkpointing: finished probes survive a kill and are never probed again."""

from __future__ import annotations

import asyncio
import contextlib

import polars as pl
import pytest

from engine.checkpoint import CheckpointStore
from engine.sandbox.world import Behaviour, Domain, MailServer, World
from engine.smtp import PROBE_SCHEMA, PROBES_TABLE, probe_addresses, probe_addresses_async
from tests.engine.test_smtp_support import plan_for, probe_config, running_worlds

# Five hosts that finish one after another (more addresses, one session each): the small ones
# are checkpointed while the biggest host is still being probed.
SIZES = (8, 20, 40, 80, 160)
WORLD = World(
    servers=[
        MailServer(
            f"mx{i}.resume.test",
            behaviour=Behaviour.CATCH_ALL if i % 2 else Behaviour.STRICT,
            mailboxes={f"user{n}" for n in range(0, size, 2)},
            latency_s=0.03,
        )
        for i, size in enumerate(SIZES)
    ],
    domains=[Domain(f"d{i}.resume.test", mx=[f"mx{i}.resume.test"]) for i in range(len(SIZES))],
)
ADDRESSES = [f"user{n}@d{i}.resume.test" for i, size in enumerate(SIZES) for n in range(size)]
DECIDING = ["email_normalized", "domain", "mx_host", "rcpt_class", "smtp_response_code",
            "smtp_enhanced_code", "failed_step", "domain_catch_all"]  # fmt: skip


@pytest.fixture
def start_world():
    with running_worlds() as start:
        yield start


def test_rows_read_back_in_order_and_a_torn_append_is_ignored(tmp_path):
    store = CheckpointStore(tmp_path)
    store.write({"probes": [{"email_normalized": "a@x.test"}]})
    store.write({"probes": [{"email_normalized": "b@x.test"}], "replies": []})
    store.close()
    torn = CheckpointStore(tmp_path)  # a second run, killed halfway through an append
    torn.write({"probes": [{"email_normalized": "c@x.test"}, {"email_normalized": "d@x.test"}]})
    journal = torn.parts("probes")[-1]
    journal.write_bytes(journal.read_bytes()[:-7])

    loaded = store.load("probes", {"email_normalized": pl.String()})

    assert loaded.get_column("email_normalized").to_list() == ["a@x.test", "b@x.test", "c@x.test"]
    assert store.parts("replies") == []
    assert store.load("replies", {"x": pl.Int16()}).schema == pl.Schema({"x": pl.Int16()})


def test_a_killed_run_resumes_without_probing_finished_addresses_again(start_world, tmp_path):
    running = start_world(WORLD)
    config = probe_config(running, smtp_per_mx_concurrency=1)
    plan = plan_for(WORLD, ADDRESSES)
    store = CheckpointStore(tmp_path)

    async def run_until_parts_exist() -> None:
        task = asyncio.create_task(probe_addresses_async(plan, config, checkpoint_dir=tmp_path))
        while store.load(PROBES_TABLE, PROBE_SCHEMA).height < SIZES[0] + SIZES[1]:
            assert not task.done(), "the run finished before it could be killed"
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_until_parts_exist())
    finished = set(store.load(PROBES_TABLE, PROBE_SCHEMA).get_column("email_normalized"))
    assert 0 < len(finished) < len(ADDRESSES)
    resumed = probe_addresses(plan, config, checkpoint_dir=tmp_path)

    rcpts = running.counters().smtp.rcpts
    assert all(rcpts[address] == 1 for address in finished)
    assert all(rcpts[address] >= 1 for address in ADDRESSES)
    assert resumed.stats["resumed_from_checkpoint"] == len(finished)
    uninterrupted = probe_addresses(
        plan, probe_config(start_world(WORLD), smtp_per_mx_concurrency=1)
    )
    assert resumed.probes.select(DECIDING).equals(uninterrupted.probes.select(DECIDING))
    assert resumed.probes.get_column("email_normalized").to_list() == ADDRESSES


def test_a_finished_run_rerun_with_its_checkpoint_probes_nothing(start_world, tmp_path):
    running = start_world(WORLD)
    config = probe_config(running)
    plan = plan_for(WORLD, ADDRESSES[:30])
    first = probe_addresses(plan, config, checkpoint_dir=tmp_path)
    sessions = running.counters().smtp.sessions

    again = probe_addresses(plan, config, checkpoint_dir=tmp_path)

    assert running.counters().smtp.sessions == sessions
    assert again.probes.select(DECIDING).equals(first.probes.select(DECIDING))
    assert again.replies.height == first.replies.height
