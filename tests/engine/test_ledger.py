"""Specification of the run ledger: one typed row per run, and the probes spent for a budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from engine.ledger import LEDGER_SCHEMA, ledger_row, probes_spent_since, record_run, scan_ledger

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(run_id: str, finished_at: datetime, smtp_probes: int) -> pl.DataFrame:
    return ledger_row(
        run_id=run_id,
        list_id="crm",
        started_at=finished_at - timedelta(minutes=10),
        finished_at=finished_at,
        depth="smtp",
        rows=100,
        smtp_probes=smtp_probes,
    )


def test_a_ledger_row_is_one_typed_row_with_free_counts_defaulting_to_zero():
    row = ledger_row(
        run_id="r1",
        list_id="crm",
        started_at=NOW,
        finished_at=NOW,
        depth="dns",
        rows=10,
        duplicates=2,
        budget=500,
    )

    assert row.schema == pl.Schema(LEDGER_SCHEMA)
    values = row.to_dicts()[0]
    assert (values["rows"], values["duplicates"], values["cached"], values["charged"]) == (
        10,
        2,
        0,
        0,
    )
    assert (values["budget"], values["budget_exhausted"]) == (500, False)


def test_an_unlimited_run_has_no_budget():
    row = ledger_row(
        run_id="r", list_id=None, started_at=NOW, finished_at=NOW, depth="smtp", rows=0
    )

    assert row.get_column("budget").to_list() == [None]


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="smtp_probes"):
        ledger_row(
            run_id="r", list_id="l", started_at=NOW, finished_at=NOW, depth="smtp", rows=1,
            smtp_probes=-1,
        )  # fmt: skip


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger_row(
            run_id="r", list_id="l", started_at=datetime(2026, 1, 1), finished_at=NOW,
            depth="smtp", rows=1,
        )  # fmt: skip


def test_recorded_runs_read_back_in_the_ledger_schema(tmp_path):
    record_run(_run("r1", NOW, 5), tmp_path)
    record_run(_run("r2", NOW, 7), tmp_path)

    ledger = scan_ledger(tmp_path).collect().sort("run_id")

    assert ledger.schema == pl.Schema(LEDGER_SCHEMA)
    assert ledger.get_column("smtp_probes").to_list() == [5, 7]


def test_probes_spent_since_counts_runs_finished_since_then(tmp_path):
    record_run(_run("yesterday", NOW - timedelta(days=1), 1_000), tmp_path)
    record_run(_run("this-morning", NOW - timedelta(hours=3), 40), tmp_path)
    record_run(_run("just-now", NOW, 2), tmp_path)

    midnight = NOW.replace(hour=0)

    assert probes_spent_since(tmp_path, midnight) == 42
    assert probes_spent_since(tmp_path, NOW + timedelta(seconds=1)) == 0


def test_probes_spent_since_on_an_empty_history_is_zero(tmp_path):
    assert probes_spent_since(tmp_path, NOW) == 0
