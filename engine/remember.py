"""After a run: append its verdicts, raw replies and ledger row to the history, rebuild the catalog.

The ledger's counts partition the run's rows, so a team can check where every row went:
`rows = duplicates + unique`, and each unique address is exactly one of `syntax_invalid`,
`cached`, `unknowns` or `charged` (a definitive answer found this run). Only `smtp_probes` costs
anything; the rest is free, as in the seeds' credit rules.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine import schema
from engine.catalog import build_catalog
from engine.history import HISTORY_DIR_NAME, REPLIES, VERDICTS, append_part, verdict_history_rows
from engine.ledger import ledger_row, record_run
from engine.taxonomy import Status


def new_run_id(now: datetime | None = None) -> str:
    """`<UTC time to the second>-<8 hex>`: sorts by start time and never collides."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Remembered:
    """Where a run's history went and what its ledger row says."""

    run_id: str
    parts: tuple[Path, ...]
    catalog: Path | None  # None when the caller rebuilds the catalog itself (Dagster's asset)
    ledger: dict[str, Any]


def ledger_counts(unique: pl.DataFrame, rows: int, stats: dict[str, Any]) -> dict[str, Any]:
    """The ledger's counts for a run whose unique addresses were decided as `unique`."""
    valid = pl.col(schema.SYNTAX_VALID).fill_null(False)
    cached = pl.col("cached").fill_null(False)
    unknown = pl.col("status") == Status.UNKNOWN.value
    counts = unique.select(
        (~valid).sum().alias("syntax_invalid"),
        (valid & cached).sum().alias("cached"),
        (valid & ~cached & unknown).sum().alias("unknowns"),
        (valid & ~cached & ~unknown).sum().alias("charged"),
    ).row(0, named=True)
    smtp = stats.get("smtp", {})
    return {
        "rows": rows,
        "duplicates": rows - unique.height,
        **{name: int(value) for name, value in counts.items()},
        "dns_lookups": int(stats.get("dns", {}).get("dns_domains", 0)),
        "smtp_probes": int(smtp.get("rcpts_sent", 0)),
        "reserved": int(smtp.get("reserved", 0)),
        "budget": smtp.get("budget"),
        "budget_exhausted": bool(smtp.get("budget_exhausted", False)),
    }


def remember_run(
    unique: pl.DataFrame,
    replies: pl.DataFrame | None,
    stats: dict[str, Any],
    *,
    data_dir: Path,
    run_id: str,
    list_id: str | None,
    depth: str,
    rows: int,
    started_at: datetime,
    checked_at: datetime,
    rebuild_catalog: bool = True,
) -> Remembered:
    """Append the run to `<data_dir>/history` and (by default) rebuild `mailsift.duckdb`."""
    history_dir = data_dir / HISTORY_DIR_NAME
    parts = [
        append_part(
            verdict_history_rows(unique, run_id, list_id, checked_at), history_dir, VERDICTS, run_id
        )
    ]
    if replies is not None and replies.height:
        stamped = replies.with_columns(
            pl.lit(run_id).alias("run_id"), pl.lit(list_id, dtype=pl.String).alias("list_id")
        )
        parts.append(append_part(stamped, history_dir, REPLIES, run_id))
    counts = ledger_counts(unique, rows, stats)
    row = ledger_row(
        run_id=run_id,
        list_id=list_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        depth=depth,
        **counts,
    )
    parts.append(record_run(row, history_dir))
    catalog = build_catalog(data_dir) if rebuild_catalog else None
    return Remembered(run_id, tuple(parts), catalog, counts)
