"""The run ledger: what each run did and what it cost, one row per run (the seeds' credits).

The seeds charge per definitive answer and give the rest away: duplicates, syntax failures, cached
verdicts and unknowns are free (seed 003). The ledger keeps both sides, so a team can see where its
probes went, and a per-day probe budget can be enforced from it. Rows are appended to
`history/ledger/` as immutable parts like the rest of the history.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Final

import polars as pl

from engine.history import LEDGER, append_part, scan_parts

_UTC_TIME: Final = pl.Datetime("us", "UTC")

LEDGER_SCHEMA: Final[dict[str, pl.DataType]] = {
    "run_id": pl.String(),
    "list_id": pl.String(),
    "started_at": _UTC_TIME,
    "finished_at": _UTC_TIME,
    "depth": pl.String(),  # syntax | dns | smtp
    "rows": pl.Int64(),  # input rows
    "duplicates": pl.Int64(),  # free: inherit their first occurrence's verdict
    "syntax_invalid": pl.Int64(),  # free: decided without the network
    "cached": pl.Int64(),  # free: a fresh verdict from history was reused
    "dns_lookups": pl.Int64(),  # unique domains looked up
    "smtp_probes": pl.Int64(),  # spent: RCPT probes sent (catch-all tests included)
    "unknowns": pl.Int64(),  # free: no answer we can trust
    "charged": pl.Int64(),  # probes that gave a definitive answer
    "reserved": pl.Int64(),  # probes planned before probing started
    "budget": pl.Int64(),  # the probe budget of the run; null when unlimited
    "budget_exhausted": pl.Boolean(),  # probing stopped at the budget; the rest are not_probed
}
_COUNTS: Final = tuple(name for name, dtype in LEDGER_SCHEMA.items() if dtype == pl.Int64())


def ledger_row(
    *,
    run_id: str,
    list_id: str | None,
    started_at: datetime,
    finished_at: datetime,
    depth: str,
    rows: int,
    duplicates: int = 0,
    syntax_invalid: int = 0,
    cached: int = 0,
    dns_lookups: int = 0,
    smtp_probes: int = 0,
    unknowns: int = 0,
    charged: int = 0,
    reserved: int = 0,
    budget: int | None = None,
    budget_exhausted: bool = False,
) -> pl.DataFrame:
    """One ledger row, typed; raises ValueError for a negative count or a naive timestamp."""
    values = {
        "run_id": run_id,
        "list_id": list_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "depth": depth,
        "rows": rows,
        "duplicates": duplicates,
        "syntax_invalid": syntax_invalid,
        "cached": cached,
        "dns_lookups": dns_lookups,
        "smtp_probes": smtp_probes,
        "unknowns": unknowns,
        "charged": charged,
        "reserved": reserved,
        "budget": budget,
        "budget_exhausted": budget_exhausted,
    }
    negative = [name for name in _COUNTS if values[name] is not None and values[name] < 0]
    if negative:
        raise ValueError(f"ledger counts must not be negative: {', '.join(negative)}")
    for name in ("started_at", "finished_at"):
        moment = values[name]
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware (UTC)")
    return pl.DataFrame({name: [values[name]] for name in LEDGER_SCHEMA}, schema=LEDGER_SCHEMA)


def record_run(row: pl.DataFrame, history_dir: Path) -> Path:
    """Append a run's ledger row(s) as a new part; returns the part's path."""
    run_ids = row.get_column("run_id").unique().to_list()
    return append_part(
        row.select(list(LEDGER_SCHEMA)), history_dir, LEDGER, run_ids[0] if run_ids else "run"
    )


def scan_ledger(history_dir: Path) -> pl.LazyFrame:
    """Every ledger row recorded, in `LEDGER_SCHEMA`."""
    return scan_parts(history_dir, LEDGER, LEDGER_SCHEMA)


def probes_spent_since(history_dir: Path, since: datetime) -> int:
    """SMTP probes spent by runs that finished at or after `since` (for a per-day budget).

    A run records its row when it finishes, so runs still going are not counted: two runs that
    start together can each spend up to the remaining budget.
    """
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be timezone-aware (UTC)")
    spent = (
        scan_ledger(history_dir)
        .filter(pl.col("finished_at") >= since)
        .select(pl.col("smtp_probes").sum())
        .collect()
        .item()
    )
    return int(spent or 0)
