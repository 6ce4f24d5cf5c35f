"""Issue 5: a backfill over several lists works — `dagster job backfill` of `verify_list` over
three landed lists, executed by the daemon of a running `mailsift ui`, verifies each of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from engine.sandbox.demo_world import write_demo_list
from pipelines.instance import ensure_dagster_home
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from tests.assets.test_lists import _land
from tests.pipelines.test_inbox_flow import _mailsift_ui
from tests.pipelines.test_ui_smoke import _free_port

pytestmark = pytest.mark.slow
LISTS = 3
ROWS = 120
BACKFILL_SECONDS = 360


def test_a_backfill_over_several_lists_verifies_each(tmp_path):
    data_dir = (tmp_path / "data").resolve()
    layout = DataDirLayout(data_dir)
    keys = [
        _land(
            data_dir,
            f"list{i}.csv",
            write_demo_list(tmp_path / f"l{i}.csv", ROWS, seed=i + 1).read_text(),
        )
        for i in range(LISTS)
    ]
    dagster_home = ensure_dagster_home(layout)
    env = {**os.environ, "MAILSIFT_HOME": str(data_dir), "DAGSTER_HOME": str(dagster_home)}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(lists_partitions.name, keys)
    log = tmp_path / "ui.log"
    process = _mailsift_ui(data_dir, _free_port(), log, hook=None)
    try:
        dagster = Path(sys.executable).with_name("dagster")
        submitted = subprocess.run(
            [str(dagster), "job", "backfill", "-m", "pipelines.definitions", "-j", "verify_list",
             "--partitions", ",".join(keys), "--noprompt"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        deadline = time.monotonic() + BACKFILL_SECONDS
        while not all(layout.summary_file(key).is_file() for key in keys):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"backfill unfinished: {log.read_text()[-3000:]}"
            time.sleep(2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        backfilled = {
            run.tags.get("dagster/partition")
            for run in instance.get_runs()
            if run.job_name == "verify_list" and "dagster/backfill" in run.tags
        }
    assert backfilled == set(keys)
    for key in keys:
        summary = json.loads(layout.summary_file(key).read_text())
        assert summary["total_rows"] == ROWS and summary["list_id"] == key
