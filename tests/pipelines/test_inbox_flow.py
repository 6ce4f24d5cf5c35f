"""Issue 5's "done when": a CSV dropped into the inbox of a running `mailsift ui` (dagster dev on
the embedded instance, sandbox world) becomes results, summary, report and a signed webhook with no
other action."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from engine.sandbox.demo_world import write_demo_list
from engine.webhooks import verify_signature
from tests.pipelines.test_ui_smoke import _free_port
from tests.pipelines.test_webhook_sensors import SECRET, receiver  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

FLOW_SECONDS = 300  # two sensor ticks, then five steps each started by the automation sensor
ROWS = 200


def _mailsift_ui(data_dir: Path, port: int, log: Path, hook: str | None) -> subprocess.Popen[bytes]:
    webhook = (
        {}
        if hook is None
        else {
            "MAILSIFT_WEBHOOK_URL": hook,
            "MAILSIFT_WEBHOOK_SECRET": SECRET,
            "MAILSIFT_WEBHOOK_ALLOW_PRIVATE": "true",
        }
    )
    mailsift = Path(sys.executable).with_name("mailsift")
    with log.open("wb") as sink:
        return subprocess.Popen(
            [str(mailsift), "ui", "--sandbox", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MAILSIFT_HOME": str(data_dir), **webhook},
        )


def _wait_for(path_glob: str, root: Path, process: subprocess.Popen[bytes], log: Path) -> Path:
    deadline = time.monotonic() + FLOW_SECONDS
    while time.monotonic() < deadline:
        found = sorted(root.glob(path_glob))
        if found:
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"mailsift ui exited early: {log.read_text()[-3000:]}")
        time.sleep(2)
    pytest.fail(f"no {path_glob} after {FLOW_SECONDS} s: {log.read_text()[-3000:]}")


def test_a_list_dropped_in_the_inbox_comes_out_verified(tmp_path, receiver):  # noqa: F811
    data_dir = tmp_path / "data"
    log = tmp_path / "ui.log"
    process = _mailsift_ui(data_dir, _free_port(), log, receiver.url)
    try:
        staged = write_demo_list(tmp_path / "customers.csv", rows=ROWS)
        inbox = data_dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        staged.replace(inbox / "customers.csv")

        summary_path = _wait_for("lists/*/summary.json", data_dir, process, log)
        deadline = time.monotonic() + 60  # the run-status sensor ticks after the run ends
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # dagster dev ignores SIGTERM (see test_ui_smoke)
        process.wait(timeout=30)

    list_dir = summary_path.parent
    summary = json.loads(summary_path.read_text())
    assert summary["total_rows"] == ROWS and summary["smtp"]["data_commands"] == 0
    assert pl.read_parquet(list_dir / "results.parquet").height == ROWS
    assert (list_dir / "report.html").stat().st_size > 1000
    assert not (inbox / "customers.csv").exists()
    [body] = receiver.bodies
    assert verify_signature(body, receiver.signatures[0], SECRET)
    event = json.loads(body)
    assert event["event"] == "list.completed" and event["list_id"] == list_dir.name
