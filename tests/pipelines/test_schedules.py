"""The re-verify schedule: exactly the addresses whose newest verdict outlived the TTL re-run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from engine.history import HISTORY_DIR_NAME, VERDICT_HISTORY_SCHEMA, VERDICTS, append_part
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings
from pipelines.schedules import STALE_LIST_NAME, reverify_stale_verdicts

NOW = datetime(2026, 5, 10, 3, 0, tzinfo=UTC)
TTL_DAYS = 30
OLD = NOW - timedelta(days=TTL_DAYS + 5)
FRESH = NOW - timedelta(days=2)


@pytest.fixture
def layout(monkeypatch: pytest.MonkeyPatch) -> DataDirLayout:
    monkeypatch.setenv("MAILSIFT_MAX_AGE_DAYS", str(TTL_DAYS))
    return DataDirLayout(Path(os.environ["MAILSIFT_HOME"]))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # A schedule context needs an instance it can refer to, which an in-memory one is not.
    with dg.instance_for_test() as instance:
        yield instance


def _seed(layout: DataDirLayout, run_id: str, checked_at: datetime, verdicts: dict[str, str]):
    """One history part: `verdicts` maps address -> status, all checked at `checked_at`."""
    rows = [
        {
            "run_id": run_id,
            "list_id": f"list-{run_id}",
            "checked_at": checked_at,
            "dedup_key": email,
            "email_normalized": email,
            "domain": email.split("@")[1],
            "status": status,
            "cached": False,
        }
        for email, status in verdicts.items()
    ]
    frame = pl.DataFrame(rows, schema=VERDICT_HISTORY_SCHEMA)
    append_part(frame, layout.root / HISTORY_DIR_NAME, VERDICTS, run_id)


def _evaluate(instance: dg.DagsterInstance, when: datetime = NOW):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"mailsift": MailsiftSettings()},
    )
    return reverify_stale_verdicts(context)


def test_only_addresses_whose_latest_verdict_is_older_than_the_ttl_are_landed(layout, instance):
    _seed(
        layout,
        "spring",
        OLD,
        {
            "old.valid@example.com": "valid",
            "old.unknown@example.net": "unknown",
            "rechecked@example.com": "unknown",
        },
    )
    _seed(
        layout,
        "may",
        FRESH,
        {"fresh@example.com": "valid", "rechecked@example.com": "valid"},
    )

    request = _evaluate(instance)

    assert isinstance(request, dg.RunRequest)
    key = request.partition_key
    assert key.startswith("reverify-20260510-") and request.run_key == key
    assert instance.get_dynamic_partitions(lists_partitions.name) == [key]
    landed = layout.landed_file(key)
    assert landed.name == STALE_LIST_NAME
    assert pl.read_csv(landed).get_column("email").to_list() == [
        "old.unknown@example.net",
        "old.valid@example.com",
    ]


def test_a_history_without_stale_verdicts_skips_the_tick(layout, instance):
    _seed(layout, "may", FRESH, {"fresh@example.com": "valid"})

    result = _evaluate(instance)

    assert isinstance(result, dg.SkipReason)
    assert instance.get_dynamic_partitions(lists_partitions.name) == []
    assert not layout.landing.exists()


def test_the_same_tick_evaluated_twice_asks_for_the_same_run(layout, instance):
    _seed(layout, "spring", OLD, {"old@example.com": "valid"})

    first, second = _evaluate(instance), _evaluate(instance)

    assert first.run_key == second.run_key
    assert instance.get_dynamic_partitions(lists_partitions.name) == [first.partition_key]


def test_the_request_resolves_to_a_verify_list_run_of_the_new_partition(layout, instance):
    _seed(layout, "spring", OLD, {"old@example.com": "valid"})
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=NOW,
        resources={"mailsift": MailsiftSettings()},
        repository_def=defs.get_repository_def(),
    )

    [request] = reverify_stale_verdicts.evaluate_tick(context).run_requests

    assert reverify_stale_verdicts.job_name == "verify_list"
    assert request.tags["dagster/partition"] == request.partition_key
