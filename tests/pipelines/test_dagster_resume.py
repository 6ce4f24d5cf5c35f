"""A Dagster run killed in the middle of probing, marked failed and re-executed from failure,
ends with the verdicts of an uninterrupted run and re-probes at most the batches in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from engine.config import load_config
from engine.sandbox.demo_world import demo_world, write_demo_list
from engine.sandbox.running import spawn_world
from engine.verify import verify_file
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from tests.assets.test_lists import _land
from tests.assets.test_verification import _sandbox_env

pytestmark = pytest.mark.slow
ROWS = 800
KILL_WAIT_S = 120

_CHILD = """
import sys
import dagster as dg
from tests.pipelines.test_dagster_resume import verify_list_job
with dg.DagsterInstance.get() as instance:
    dg.execute_job(dg.reconstructable(verify_list_job), instance=instance,
                   tags={"dagster/partition": sys.argv[1]})
"""


def verify_list_job() -> dg.JobDefinition:
    """Module-level, so the run's worker processes can rebuild the job."""
    return defs.resolve_job_def("verify_list")


def _probing_started(checkpoints: Path) -> bool:
    return checkpoints.is_dir() and any(
        path.stat().st_size > 0 for path in checkpoints.rglob("*") if path.is_file()
    )


def test_a_killed_run_re_executed_from_failure_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    world = demo_world(server_latency_s=(0.02, 0.06), dns_latency_s=0.0)
    with spawn_world(world) as running:
        overrides = _sandbox_env(running, monkeypatch)
        home = tmp_path / "home"
        monkeypatch.setenv("MAILSIFT_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        (tmp_path / "dagster").mkdir()
        source = write_demo_list(tmp_path / "demo.csv", rows=ROWS)
        key = _land(home, "demo.csv", source.read_text())
        layout = DataDirLayout(home)
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(lists_partitions.name, [key])

        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, key],
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + KILL_WAIT_S
        while not _probing_started(layout.checkpoint_dir(key)):
            assert child.poll() is None, "the run ended before probing could be interrupted"
            assert time.monotonic() < deadline, "probing never started"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        before_resume = Counter(running.counters().smtp.rcpts)

        with dg.DagsterInstance.get() as instance:
            [killed] = instance.get_runs()
            instance.report_run_failed(killed, message="killed by the test (SIGKILL)")
            options = dg.ReexecutionOptions.from_failure(killed.run_id, instance)
            with dg.execute_job(
                dg.reconstructable(verify_list_job),
                instance=instance,
                reexecution_options=options,
                tags={"dagster/partition": key},  # not carried over by execute_job itself
            ) as resumed:
                assert resumed.success
        rcpts = Counter(running.counters().smtp.rcpts)

    results = pl.read_parquet(layout.results_file(key, "parquet"))
    with spawn_world(world) as fresh_world:
        reference_config = {**overrides, "data_dir": tmp_path / "ref", "depth": "smtp"}
        reference_config.update(
            {"dns": [fresh_world.dns_address], "smtp_port": fresh_world.smtp_port}
        )
        reference = verify_file([source], load_config(reference_config)).results
        uninterrupted = Counter(fresh_world.counters().smtp.rcpts)
    shown = ["email", "status", "sub_status"]
    assert results.select(shown).equals(reference.select(shown))
    listed = {address.lower() for address in results.get_column("email_normalized").drop_nulls()}
    # RCPTs beyond what the uninterrupted run needed (greylisting retries count in both): only the
    # batches in flight at the kill may be asked again.
    again = {a: rcpts[a] - uninterrupted[a] for a in listed if rcpts[a] > uninterrupted[a]}
    config = load_config(reference_config)
    in_flight = config.smtp_global_concurrency * config.smtp_rcpt_per_session
    probed_before = sum(before_resume[a] for a in listed)
    print(f"RCPTs before the kill: {probed_before}, addresses asked again: {len(again)}")
    assert 0 < probed_before < sum(uninterrupted[a] for a in listed)
    assert len(again) <= in_flight and max(again.values(), default=0) <= 1
