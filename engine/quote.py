"""The quote before any network work (the seeds' "analysis" phase): what a list will cost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine import schema
from engine.config import Config
from engine.ingest import email_cells, read_list
from engine.prepare import prepare
from engine.recall import recall


def quote_prepared(prepared: pl.DataFrame) -> dict[str, Any]:
    """Counts from a prepared frame: rows, duplicates, invalid syntax, and the work left to do."""
    figures = prepared.select(
        total_rows=pl.len(),
        duplicates=pl.col(schema.IS_DUPLICATE).sum(),
        syntax_invalid=(~pl.col(schema.SYNTAX_VALID) & ~pl.col(schema.IS_DUPLICATE)).sum(),
        processable=(pl.col(schema.SYNTAX_VALID) & ~pl.col(schema.IS_DUPLICATE)).sum(),
        unique_domains=pl.col(schema.DOMAIN).filter(pl.col(schema.SYNTAX_VALID)).n_unique(),
    ).row(0, named=True)
    quote = {name: int(value) for name, value in figures.items()}
    # Without a history every processable address needs one RCPT probe; the domains'
    # catch-all tests come on top, one per domain.
    quote["smtp_probes_estimate"] = quote["processable"] + quote["unique_domains"]
    return quote


def quote_with_history(
    prepared: pl.DataFrame, config: Config, now: datetime | None = None
) -> dict[str, Any]:
    """quote_prepared() less what the history already answers: cached verdicts (free) and
    addresses the user's suppression lists or sends decide (never probed).

    An estimate: a cached verdict that today's rules find unknown is probed after all.
    """
    from engine.stages import probe_budget

    now = now or datetime.now(UTC)
    quote = quote_prepared(prepared)
    unique = prepared.filter(pl.col(schema.SYNTAX_VALID) & ~pl.col(schema.IS_DUPLICATE)).select(
        schema.DEDUP_KEY, schema.DOMAIN
    )
    known = recall(
        unique,
        config.data_dir,
        now=now,
        refresh=config.refresh,
        max_age_days=config.max_age_days,
        domain_max_age_days=config.domain_max_age_days,
    )
    cached = known.cached.get_column(schema.DEDUP_KEY)
    decided = known.facts.filter(
        pl.col("suppression").is_not_null()
        | pl.col("hard_bounce_after_verdict")
        | pl.col("complained")
        | pl.col("unsubscribed")
    ).get_column(schema.DEDUP_KEY)
    to_probe = unique.filter(
        ~pl.col(schema.DEDUP_KEY).is_in(cached.implode())
        & ~pl.col(schema.DEDUP_KEY).is_in(decided.implode())
    )
    probes = to_probe.height + to_probe.get_column(schema.DOMAIN).n_unique()
    budget = probe_budget(config, now) if config.depth == "smtp" else None
    quote.update(
        cached=cached.len(),
        decided_by_your_lists=int(
            unique.filter(pl.col(schema.DEDUP_KEY).is_in(decided.implode())).height
        ),
        smtp_probes_estimate=probes if config.depth == "smtp" else 0,
        probe_budget_left=budget,
    )
    return quote


def quote_files(paths: Sequence[Path], config: Config) -> dict[str, Any]:
    cells: list[pl.DataFrame] = []
    next_row = 0
    for path in paths:
        ingested = read_list(path, column=config.column)
        cells.append(email_cells(ingested, first_row_id=next_row))
        next_row += ingested.originals.height
    prepared = prepare(pl.concat(cells))
    return {"inputs": [str(p) for p in paths], **quote_with_history(prepared, config)}
