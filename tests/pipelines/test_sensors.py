"""The inbox sensor: finished lists become one partition and one ingest run, junk is set aside."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines import inbox
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import list_key_for, lists_partitions
from pipelines.resources import MailsiftSettings
from pipelines.sensors import LIST_FILE_TAG, inbox_sensor, parse_cursor

CUSTOMERS = "Email,Name\na@example.com,A\nA@example.com,B\nbroken,C\n"


class Daemon:
    """Ticks the sensor the way the sensor daemon does: cursor carried, partitions added."""

    def __init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"mailsift": MailsiftSettings()},
        )
        result = inbox_sensor(context)
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        self.cursor = result.cursor
        return result


@pytest.fixture
def layout() -> DataDirLayout:
    layout = DataDirLayout(Path(os.environ["MAILSIFT_HOME"]))
    layout.inbox.mkdir(parents=True)
    return layout


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _drop(layout: DataDirLayout, name: str, text: str = CUSTOMERS) -> Path:
    path = layout.inbox / name
    path.write_text(text)
    return path


def _added_keys(result: dg.SensorResult) -> list[str]:
    return [key for r in result.dynamic_partitions_requests or [] for key in r.partition_keys]


def test_a_finished_list_is_landed_with_one_partition_and_one_keyed_run(layout, daemon):
    dropped = _drop(layout, "customers.csv")
    key = list_key_for(dropped)

    first = daemon.tick()
    assert not first.run_requests and not _added_keys(first)
    assert dropped.exists(), "a file seen once may still be growing"

    second = daemon.tick()
    [request] = second.run_requests
    assert (request.run_key, request.partition_key) == (key, key)
    assert request.tags[LIST_FILE_TAG] == "customers.csv"
    [add] = second.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == (lists_partitions.name, [key])
    assert not dropped.exists()
    assert (layout.landing_dir(key) / "customers.csv").read_text() == CUSTOMERS
    assert layout.landed_file(key).name == "customers.csv"

    assert not daemon.tick().run_requests


def test_the_same_bytes_dropped_again_request_nothing(layout, daemon):
    _drop(layout, "customers.csv")
    daemon.tick()
    [request] = daemon.tick().run_requests

    again = _drop(layout, "customers.csv")
    for _ in range(3):
        result = daemon.tick()
        assert not result.run_requests and not _added_keys(result)
    assert not again.exists(), "the re-upload is removed, not left to be seen forever"
    assert inbox.landed_files(layout.landing_dir(request.partition_key)) == [
        layout.landing_dir(request.partition_key) / "customers.csv"
    ]
    assert daemon.instance.get_dynamic_partitions("lists") == [request.partition_key]


def test_a_different_list_gets_its_own_key_and_run(layout, daemon):
    _drop(layout, "customers.csv")
    daemon.tick()
    [first] = daemon.tick().run_requests
    _drop(layout, "customers.csv", CUSTOMERS + "d@example.com,D\n")
    daemon.tick()
    [second] = daemon.tick().run_requests
    assert second.run_key != first.run_key
    assert second.run_key.startswith("customers.csv-")
    assert sorted(daemon.instance.get_dynamic_partitions("lists")) == sorted(
        [first.run_key, second.run_key]
    )


def test_a_file_still_being_written_waits_until_it_stops_changing(layout, daemon):
    growing = _drop(layout, "big.csv", "email\n")
    daemon.tick()
    with growing.open("a") as handle:
        handle.write("a@example.com\n")
    assert not daemon.tick().run_requests, "changed since the last tick: still being written"
    assert growing.exists()
    [request] = daemon.tick().run_requests
    assert layout.landed_file(request.partition_key).read_text() == "email\na@example.com\n"


def test_hidden_and_partial_files_are_never_taken(layout, daemon):
    names = [".customers.csv.tmp", ".hidden.csv", "upload.csv.part", "~$list.csv", "x.crdownload"]
    for name in names:
        _drop(layout, name)
    for _ in range(3):
        result = daemon.tick()
        assert not result.run_requests and not _added_keys(result)
    assert sorted(p.name for p in layout.inbox.iterdir()) == sorted(names)
    assert not layout.landing.exists()


def test_a_file_that_is_not_a_list_is_rejected_with_a_one_line_reason(layout, daemon):
    _drop(layout, "notes.docx", "PK\x03\x04 not a list")
    _drop(layout, "empty.csv", "")
    _drop(layout, "customers.csv")
    daemon.tick()
    [request] = daemon.tick().run_requests
    assert request.tags[LIST_FILE_TAG] == "customers.csv"
    for name, reason in (("notes.docx", "not a list file"), ("empty.csv", "empty")):
        assert (layout.rejected / name).exists()
        lines = (layout.rejected / f"{name}.reason.txt").read_text().splitlines()
        assert len(lines) == 1 and reason in lines[0]
    assert sorted(p.name for p in layout.inbox.iterdir()) == ["rejected"]


def test_an_unreadable_file_is_rejected_without_stopping_the_sensor(layout, daemon, monkeypatch):
    real_key_for = inbox.list_key_for

    def key_for(path: Path) -> str:
        if path.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real_key_for(path)

    monkeypatch.setattr(inbox, "list_key_for", key_for)
    _drop(layout, "locked.csv")
    _drop(layout, "customers.csv")
    daemon.tick()
    [request] = daemon.tick().run_requests
    assert request.tags[LIST_FILE_TAG] == "customers.csv"
    reason = (layout.rejected / "locked.csv.reason.txt").read_text()
    assert reason == "cannot read the file: Permission denied\n"


def test_a_second_rejection_of_the_same_name_keeps_both(layout, daemon):
    for _ in range(2):
        _drop(layout, "notes.docx")
        daemon.tick()
        daemon.tick()
    rejected = sorted(p.name for p in layout.rejected.iterdir())
    assert len([name for name in rejected if name.endswith(".docx")]) == 2
    assert len([name for name in rejected if name.endswith(".reason.txt")]) == 2


def test_a_landed_list_without_a_partition_is_requested_by_the_next_tick(layout, daemon):
    # A tick that moved the file but died before its result was stored must not lose the list.
    key = "customers.csv-0123456789"
    layout.landing_dir(key).mkdir(parents=True)
    (layout.landing_dir(key) / "customers.csv").write_text(CUSTOMERS)
    [request] = daemon.tick().run_requests
    assert request.run_key == key
    assert not daemon.tick().run_requests


def test_a_garbled_cursor_only_delays_by_one_tick():
    assert parse_cursor("not json") == {}
    assert parse_cursor('{"inbox": {"a.csv": "x"}}') == {}
    assert parse_cursor(None) == {}


def test_the_requested_run_writes_rows_and_prepared_parquet(layout, daemon):
    _drop(layout, "customers.csv")
    daemon.tick()
    [request] = daemon.tick().run_requests

    job = defs.resolve_job_def(request.job_name or "ingest_list")
    result = job.execute_in_process(
        instance=daemon.instance, partition_key=request.partition_key, tags=request.tags
    )
    assert result.success
    key = request.partition_key
    assert pl.read_parquet(layout.rows_file(key)).height == 3
    prepared = pl.read_parquet(layout.prepared_file(key))
    assert prepared.height == 3
    checks = {check.check_name: check.passed for check in result.get_asset_check_evaluations()}
    assert checks["prepared_rows_conserved"] is True
    materialized = {
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    }
    assert materialized == {"list_rows", "prepared_list"}
