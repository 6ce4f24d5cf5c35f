"""The quote before any network work (the seeds' "analysis" phase): what a list will cost."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from engine import schema
from engine.config import Config
from engine.ingest import email_cells, read_list
from engine.prepare import prepare


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
    # Until the history store exists every processable address needs one RCPT probe; the
    # domains' catch-all tests come on top, one per domain.
    quote["smtp_probes_estimate"] = quote["processable"] + quote["unique_domains"]
    return quote


def quote_files(paths: Sequence[Path], config: Config) -> dict[str, Any]:
    cells: list[pl.DataFrame] = []
    next_row = 0
    for path in paths:
        ingested = read_list(path, column=config.column)
        cells.append(email_cells(ingested, first_row_id=next_row))
        next_row += ingested.originals.height
    return {"inputs": [str(p) for p in paths], **quote_prepared(prepare(pl.concat(cells)))}
