"""The feedback sensor and `feedback_events`: each finished ESP export is recorded exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from assets.feedback import RECORDED_MARKER, REJECTED_MARKER, feedback_events
from engine.history import FEEDBACK, HISTORY_DIR_NAME
from pipelines.feedback_sensor import FEEDBACK_FILE_TAG, feedback_sensor
from pipelines.inbox import REASON_SUFFIX
from pipelines.layout import DataDirLayout
from pipelines.partitions import list_key_for
from pipelines.resources import MailsiftSettings

BOUNCES = (
    "email,event_type,bounce_code,bounce_message,timestamp\n"
    "gone@example.com,hard_bounce,550,User unknown,2026-03-14T10:30:00Z\n"
    "ann@example.com,delivered,,,2026-03-14T10:31:00Z\n"
    "bob@example.com,opened,,,2026-03-14T10:32:00Z\n"
)


class Daemon:
    """Ticks the sensor as the daemon does (cursor carried) and runs what it requests."""

    def __init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"mailsift": MailsiftSettings()}
        )
        result = feedback_sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result

    def materialize(self, run_config: dict | None = None) -> dg.MaterializeResult:
        result = dg.materialize(
            [feedback_events],
            run_config=run_config or {},
            resources={"mailsift": MailsiftSettings()},
            instance=self.instance,
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("feedback_events")
        return materialization


@pytest.fixture
def layout() -> DataDirLayout:
    layout = DataDirLayout(Path(os.environ["MAILSIFT_HOME"]))
    layout.feedback_inbox.mkdir(parents=True)
    return layout


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _drop(layout: DataDirLayout, name: str, text: str = BOUNCES) -> Path:
    path = layout.feedback_inbox / name
    path.write_text(text)
    return path


def _feedback_parts(layout: DataDirLayout) -> list[Path]:
    folder = layout.root / HISTORY_DIR_NAME / FEEDBACK
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def test_a_finished_export_gets_one_keyed_run_that_records_its_events(layout, daemon):
    dropped = _drop(layout, "bounces.csv")
    key = list_key_for(dropped)

    assert not daemon.tick().run_requests, "a file seen once may still be growing"
    [request] = daemon.tick().run_requests
    assert request.run_key == key
    assert request.tags[FEEDBACK_FILE_TAG] == "bounces.csv"
    assert not dropped.exists()

    metadata = daemon.materialize(request.run_config).metadata
    assert metadata["events_by_type"].data == {"hard_bounce": 1, "delivered": 1}
    assert metadata["unknown_event_types"].data == {"opened": 1}
    assert [row["file"] for row in metadata["files"].data] == ["bounces.csv"]
    assert metadata["dagster/row_count"].value == 2
    assert len(_feedback_parts(layout)) == 1
    assert (layout.feedback_landing / key / RECORDED_MARKER).is_file()

    assert not daemon.tick().run_requests, "a recorded export asks for nothing more"


def test_the_same_export_dropped_again_is_not_recorded_twice(layout, daemon):
    _drop(layout, "bounces.csv")
    daemon.tick()
    [request] = daemon.tick().run_requests
    daemon.materialize(request.run_config)

    again = _drop(layout, "bounces.csv")
    for _ in range(3):
        assert not daemon.tick().run_requests
    assert not again.exists(), "the re-upload is removed, not left to be seen forever"
    rerun = daemon.materialize(request.run_config).metadata
    assert rerun["dagster/row_count"].value == 0
    assert len(_feedback_parts(layout)) == 1


def test_a_ui_materialisation_without_config_records_every_pending_export(layout, daemon):
    _drop(layout, "bounces.csv")
    _drop(layout, "more.csv", BOUNCES.replace("gone@", "lost@"))
    daemon.tick()
    assert len(daemon.tick().run_requests) == 2

    metadata = daemon.materialize().metadata
    assert sorted(row["file"] for row in metadata["files"].data) == ["bounces.csv", "more.csv"]
    assert metadata["events_by_type"].data == {"hard_bounce": 2, "delivered": 2}
    assert len(_feedback_parts(layout)) == 2
    assert not daemon.tick().run_requests


def test_an_export_no_reader_understands_is_set_aside_with_its_reason(layout, daemon):
    _drop(layout, "odd.csv", "foo,bar\n1,2\n")
    daemon.tick()
    [request] = daemon.tick().run_requests

    metadata = daemon.materialize(request.run_config).metadata
    [rejected] = metadata["files_rejected"].data
    assert rejected["file"] == "odd.csv"
    assert "no address column" in rejected["reason"]
    assert (layout.feedback_landing / request.run_key / REJECTED_MARKER).is_file()
    assert not _feedback_parts(layout)
    assert not daemon.tick().run_requests, "a rejected export is not retried every tick"


def test_a_file_that_is_not_an_export_is_rejected_in_the_feedback_inbox(layout, daemon):
    _drop(layout, "notes.docx")
    daemon.tick()
    assert not daemon.tick().run_requests
    reason = layout.feedback_rejected / ("notes.docx" + REASON_SUFFIX)
    assert "not a feedback export" in reason.read_text()
    assert (layout.feedback_rejected / "notes.docx").is_file()
    assert not layout.feedback_landing.exists()


def test_the_sensor_and_the_asset_are_loaded_with_the_history_group():
    from pipelines.definitions import defs

    assert defs.resolve_sensor_def("feedback_sensor").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )
    spec = defs.resolve_assets_def("feedback_events").specs_by_key[dg.AssetKey("feedback_events")]
    assert spec.group_name == "history" and "parquet" in spec.kinds
