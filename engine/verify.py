"""The engine's entry points: a list (or a few addresses) in, one verdict per row out.

Work is done once per unique address and once per unique domain; duplicates inherit their first
occurrence's verdict and every input row comes out exactly once, in input order (row conservation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine import schema
from engine.config import Config
from engine.errors import InputError
from engine.export import assemble_results, build_summary
from engine.ingest import IngestedList, email_cells, read_list
from engine.prepare import prepare
from engine.progress import ProgressListener, SilentProgress
from engine.remember import Remembered, claimed_run_id, new_run_id, remember_run
from engine.stages import QUARANTINED, check_dns, check_smtp, conclude, screen

SOURCE_FILE_COLUMN = "source_file"


@dataclass
class VerificationRun:
    """The outcome of one run: the results contract frame plus what a summary needs."""

    results: pl.DataFrame
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    replies: pl.DataFrame | None = None  # every raw SMTP reply (the probe table)


@dataclass
class Verdicts:
    """Per-row verdict columns (row_id + results contract) and the evidence behind them.

    `unique` is one row per unique address with every evidence column, as history stores it.
    """

    rows: pl.DataFrame
    replies: pl.DataFrame | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    unique: pl.DataFrame | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@contextmanager
def _timed(timings: dict[str, float], stage: str, progress: ProgressListener) -> Iterator[None]:
    progress.start(stage, None)
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - started, 4)
        progress.finish(stage)


def require_probe_identity(config: Config) -> None:
    """Real SMTP runs must say who they are: no default HELO or sender that impersonates anyone."""
    if config.depth != "smtp" or config.sandbox:
        return
    missing = [
        flag
        for flag, value in (("--helo", config.helo), ("--mail-from", config.mail_from))
        if not value
    ]
    if missing:
        raise InputError(
            f"SMTP probing needs your own identity: set {' and '.join(missing)} (a host name of "
            "yours with matching reverse DNS, an address at your domain), or use --depth dns"
        )


def verify_prepared(
    prepared: pl.DataFrame,
    config: Config,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressListener | None = None,
    now: datetime | None = None,
    run_id: str | None = None,
) -> Verdicts:
    """Decide every row of a prepared frame at the configured depth (engine.stages in order).

    Fresh cached verdicts skip DNS and SMTP; addresses the user's lists or sends decide skip
    SMTP; the probe budget bounds the rest. `run_id`: the run being made (see `screen`).
    """
    require_probe_identity(config)
    progress = progress or SilentProgress()
    now = now or datetime.now(UTC)
    screened = screen(prepared, config, now, run_id)
    stats: dict[str, Any] = dict(screened.stats)
    fresh, dns_stats = check_dns(screened.fresh, config, progress, screened.known_domains)
    if dns_stats:
        stats["dns"] = dns_stats
    fresh, replies, smtp_stats = check_smtp(fresh, config, progress, checkpoint_dir, now)
    if smtp_stats:
        stats["smtp"] = smtp_stats
    rows, decided = conclude(prepared, fresh, screened.cached, config, now)
    return Verdicts(rows=rows, replies=replies, stats=stats, unique=decided, checked_at=now)


def _ingest_all(
    paths: Sequence[Path], config: Config
) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    originals: list[pl.DataFrame] = []
    cells: list[pl.DataFrame] = []
    warnings: list[str] = []
    next_row = 0
    for path in paths:
        ingested: IngestedList = read_list(path, column=config.column)
        warnings.extend(ingested.warnings)
        frame = ingested.originals
        if len(paths) > 1:
            frame = frame.with_columns(pl.lit(str(path)).alias(SOURCE_FILE_COLUMN))
        originals.append(frame)
        cells.append(email_cells(ingested, first_row_id=next_row))
        next_row += ingested.originals.height
    merged = originals[0] if len(originals) == 1 else pl.concat(originals, how="diagonal_relaxed")
    return merged, pl.concat(cells), warnings


def verify_file(
    paths: Path | str | Sequence[Path | str],
    config: Config,
    *,
    progress: ProgressListener | None = None,
    checkpoint_dir: Path | None = None,
    list_id: str | None = None,
) -> VerificationRun:
    """Verify one or more list files; rows of several files are verified (and deduped) as one.

    With `checkpoint_dir`, finished probe batches are kept there and a rerun skips them: it is
    the same run, under the same run id (`claimed_run_id`). The run is appended to the history
    under `config.data_dir` (its verdicts, replies and ledger row), once.
    """
    require_probe_identity(config)
    started_at = datetime.now(UTC)
    with claimed_run_id(checkpoint_dir, started_at) as run_id:
        return _verify_files(
            paths, config, progress or SilentProgress(), checkpoint_dir, list_id, run_id, started_at
        )


def _verify_files(
    paths: Path | str | Sequence[Path | str],
    config: Config,
    progress: ProgressListener,
    checkpoint_dir: Path | None,
    list_id: str | None,
    run_id: str,
    started_at: datetime,
) -> VerificationRun:
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    timings: dict[str, float] = {}
    with _timed(timings, "ingest", progress):
        originals, cells, warnings = _ingest_all(path_list, config)
    with _timed(timings, "prepare", progress):
        prepared = prepare(cells)
    with _timed(timings, "verify", progress):
        decided = verify_prepared(
            prepared, config, checkpoint_dir=checkpoint_dir, progress=progress, run_id=run_id
        )
        verdicts = decided.rows
    with _timed(timings, "assemble", progress):
        extras = originals.select(SOURCE_FILE_COLUMN) if SOURCE_FILE_COLUMN in originals else None
        if extras is not None:
            originals = originals.drop(SOURCE_FILE_COLUMN)
            verdicts = verdicts.with_columns(extras.get_column(SOURCE_FILE_COLUMN))
        results = assemble_results(originals, verdicts)
    with _timed(timings, "history", progress):
        remembered = _remember(decided, config, run_id, list_id, results.height, started_at)
    warnings.extend(f"history part quarantined: {q}" for q in decided.stats.get(QUARANTINED, []))
    summary = build_summary(
        results,
        extra={
            "run_id": remembered.run_id,
            "list_id": list_id,
            "inputs": [str(p) for p in path_list],
            "depth": config.depth,
            "timings_s": timings,
            **decided.stats,
            "ledger": remembered.ledger,
            "catalog": str(remembered.catalog),
        },
    )
    return VerificationRun(
        results=results,
        summary=summary,
        warnings=warnings,
        timings_s=timings,
        replies=decided.replies,
    )


def _remember(
    decided: Verdicts,
    config: Config,
    run_id: str,
    list_id: str | None,
    rows: int,
    started_at: datetime,
) -> Remembered:
    if decided.unique is None:
        raise ValueError("verdicts without their unique rows cannot be remembered")
    return remember_run(
        decided.unique,
        decided.replies,
        decided.stats,
        data_dir=config.data_dir,
        run_id=run_id,
        list_id=list_id,
        depth=config.depth,
        rows=rows,
        started_at=started_at,
        checked_at=decided.checked_at,
    )


def verify_addresses(addresses: Sequence[str], config: Config) -> pl.DataFrame:
    """Verify a few addresses given in memory (the seeds' single and batch endpoints)."""
    started_at = datetime.now(UTC)
    cells = pl.DataFrame(
        {
            schema.ROW_ID: pl.Series(range(len(addresses)), dtype=pl.UInt64),
            schema.EMAIL_RAW: pl.Series(list(addresses), dtype=pl.String),
        }
    )
    decided = verify_prepared(prepare(cells), config)
    _remember(decided, config, new_run_id(started_at), None, len(addresses), started_at)
    originals = pl.DataFrame(
        {schema.DEFAULT_EMAIL_COLUMN: pl.Series(list(addresses), dtype=pl.String)}
    )
    return assemble_results(originals, decided.rows)
