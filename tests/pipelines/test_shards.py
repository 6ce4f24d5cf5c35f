"""Scale-out: the probe stage split by MX host into shards that Dagster's multiprocess executor
runs in separate processes gives exactly the single-process verdicts, and no MX host is ever
probed from two shards."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl
import pytest

from engine.config import load_config
from engine.sandbox.demo_world import demo_world, write_demo_list
from engine.sandbox.running import spawn_world
from engine.sharding import merge_shards, merge_stats, shard_of_host, split_into_shards
from engine.verify import verify_file
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from tests.assets.test_lists import _land
from tests.assets.test_verification import _sandbox_env

pytestmark = pytest.mark.slow
SHARDS = 3
ROWS = 400


def verify_list_job() -> dg.JobDefinition:
    """Module-level, so the multiprocess executor's children can rebuild the job."""
    return defs.resolve_job_def("verify_list")


@pytest.fixture(scope="module")
def world():
    with spawn_world(demo_world(server_latency_s=(0.0, 0.0), dns_latency_s=0.0)) as running:
        yield running


def test_split_and_merge_keep_every_row_in_order_and_each_host_in_one_shard():
    hosts = [f"mx{i % 7}.example" for i in range(50)]
    frame = pl.DataFrame(
        {
            "email_normalized": [f"u{i}@d{i % 7}.example" for i in range(50)],
            "mx_hosts": [[{"host": host}] for host in hosts],
        }
    )
    shards = split_into_shards(frame, SHARDS)
    seen = [set(shard.get_column("mx_hosts").list.first().struct.field("host")) for shard in shards]
    assert sum(len(s) for s in seen) == 7 and all(
        a.isdisjoint(b) for a in seen for b in seen if a is not b
    )
    assert merge_shards(shards).equals(frame)
    assert shard_of_host("MX1.example", SHARDS) == shard_of_host("mx1.example", SHARDS)
    first = {"rcpts": 2, "makespan_s": 1.0, "per_mx": {"a": {"rcpts": 2}}}
    second = {"rcpts": 3, "makespan_s": 4.0, "per_mx": {"b": {"rcpts": 3}}}
    merged = {"rcpts": 5, "makespan_s": 4.0, "per_mx": {"a": {"rcpts": 2}, "b": {"rcpts": 3}}}
    assert merge_stats([first, second]) == merged


def test_sharded_multiprocess_run_equals_the_single_process_run(world, tmp_path, monkeypatch):
    overrides = _sandbox_env(world, monkeypatch)
    home = tmp_path / "home"
    monkeypatch.setenv("MAILSIFT_HOME", str(home))
    monkeypatch.setenv("MAILSIFT_PROBE_SHARDS", str(SHARDS))
    source = write_demo_list(tmp_path / "demo.csv", rows=ROWS)
    key = _land(home, "demo.csv", source.read_text())
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(lists_partitions.name, [key])
        with dg.execute_job(
            dg.reconstructable(verify_list_job), instance=instance, tags={"dagster/partition": key}
        ) as result:
            assert result.success
            shard_pids = {
                event.pid
                for event in result.all_events
                if event.is_step_start and "probe_shard[" in (event.step_key or "")
            }

    assert len(shard_pids) == SHARDS and os.getpid() not in shard_pids
    sharded = pl.read_parquet(DataDirLayout(home).results_file(key, "parquet"))
    single = verify_file(
        [source], load_config({**overrides, "data_dir": tmp_path / "single", "depth": "smtp"})
    ).results
    shown = ["email", "status", "sub_status", "smtp_response_code"]
    assert sharded.select(shown).equals(single.select(shown))
