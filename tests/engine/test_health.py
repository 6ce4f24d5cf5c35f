"""Unknown-rate spikes are judged per domain against that domain's own history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from engine.health import unknown_rate_spikes
from engine.history import HISTORY_DIR_NAME, VERDICT_HISTORY_SCHEMA, VERDICTS, append_part


def _run(data_dir, run_id: str, days_ago: int, statuses: dict[str, list[str]]) -> None:
    rows = [
        {"run_id": run_id, "domain": domain, "dedup_key": f"u{i}@{domain}", "status": status,
         "checked_at": datetime.now(UTC) - timedelta(days=days_ago), "cached": False}
        for domain, domain_statuses in statuses.items()
        for i, status in enumerate(domain_statuses)
    ]  # fmt: skip
    frame = pl.DataFrame(rows).select(
        pl.col(name).cast(dtype) if name in rows[0] else pl.lit(None, dtype).alias(name)
        for name, dtype in VERDICT_HISTORY_SCHEMA.items()
    )
    append_part(frame, data_dir / HISTORY_DIR_NAME, VERDICTS, run_id)


def test_a_domain_that_suddenly_answers_unknown_is_flagged(tmp_path):
    _run(tmp_path, "old", 10, {"blocked.net": ["valid"] * 38 + ["unknown"] * 2,
                               "steady.net": ["valid"] * 30 + ["unknown"] * 10})  # fmt: skip
    _run(tmp_path, "new", 0, {"blocked.net": ["valid"] * 10 + ["unknown"] * 30,
                              "steady.net": ["valid"] * 28 + ["unknown"] * 12})  # fmt: skip

    spikes = unknown_rate_spikes(tmp_path, "new")

    assert spikes.get_column("domain").to_list() == ["blocked.net"]
    assert spikes.item(0, "run_unknown_rate") == 0.75


def test_no_history_or_too_few_rows_is_no_spike(tmp_path):
    _run(tmp_path, "new", 0, {"fresh.net": ["unknown"] * 40})
    assert unknown_rate_spikes(tmp_path, "new").is_empty()
    _run(tmp_path, "old", 5, {"fresh.net": ["valid"] * 5})
    assert unknown_rate_spikes(tmp_path, "new").is_empty()
