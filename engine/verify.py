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
from engine.reference import classify_domains, role_local_part
from engine.verdict import decide

SOURCE_FILE_COLUMN = "source_file"
# DNS facts a verdict or the results contract uses, joined per domain.
_DOMAIN_EVIDENCE = ("dns_outcome", "mx_hosts", "mx_record", "spf", "dmarc", "smtp_provider")
_PROVIDER_POLICY = ("accepts_all_at_rcpt", "blocks_verification", "dislikes_multi_rcpt")
# Probe evidence joined per address.
_PROBE_EVIDENCE = (
    "rcpt_class",
    "smtp_response_code",
    "smtp_enhanced_code",
    "smtp_message",
    "domain_catch_all",
)

# Verdict columns a duplicate copies from its first occurrence; the rest stay its own.
_ROW_OWN_COLUMNS = (schema.ROW_ID, schema.EMAIL_NORMALIZED, schema.IS_DUPLICATE)


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
    """Per-row verdict columns (row_id + results contract) and the evidence behind them."""

    rows: pl.DataFrame
    replies: pl.DataFrame | None = None
    stats: dict[str, Any] = field(default_factory=dict)


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


def classify_addresses(prepared: pl.DataFrame) -> pl.DataFrame:
    """Attach the local-class evidence (disposable, free, role, typo) to unique addresses."""
    unique = prepared.filter(~pl.col(schema.IS_DUPLICATE))
    domains = classify_domains(unique.get_column(schema.DOMAIN))
    return unique.join(domains, on=schema.DOMAIN, how="left", maintain_order="left").with_columns(
        is_role_based=role_local_part(pl.col(schema.LOCAL_PART)).fill_null(False),
        is_disposable=pl.col("is_disposable").fill_null(False),
        is_free_provider=pl.col("is_free_provider").fill_null(False),
    )


def verdicts_for_rows(prepared: pl.DataFrame, decided_unique: pl.DataFrame) -> pl.DataFrame:
    """Give every row its verdict: unique rows their own, duplicates their first occurrence's."""
    own = [c for c in _ROW_OWN_COLUMNS if c != schema.ROW_ID]
    inherited = decided_unique.drop(*own, schema.FIRST_ROW_ID, schema.EMAIL_RAW, strict=False)
    return (
        prepared.select(*_ROW_OWN_COLUMNS, schema.FIRST_ROW_ID)
        .join(
            inherited.rename({schema.ROW_ID: schema.FIRST_ROW_ID}),
            on=schema.FIRST_ROW_ID,
            how="left",
            maintain_order="left",
        )
        .drop(schema.FIRST_ROW_ID)
    )


def lookup_dns(unique: pl.DataFrame, config: Config, progress: ProgressListener) -> pl.DataFrame:
    """Attach DNS facts, looked up once per unique domain of a syntax-valid address."""
    from engine.dns import lookup_domains

    domains = (
        unique.filter(pl.col(schema.SYNTAX_VALID) & pl.col(schema.DOMAIN).is_not_null())
        .get_column(schema.DOMAIN)
        .unique(maintain_order=True)
    )
    facts = lookup_domains(domains.to_list(), config, progress)
    wanted = [schema.DOMAIN, *_DOMAIN_EVIDENCE, *_PROVIDER_POLICY, "dns_queries"]
    return unique.join(
        facts.select(c for c in wanted if c in facts.columns),
        on=schema.DOMAIN,
        how="left",
        maintain_order="left",
    )


def probe_smtp(
    unique: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    checkpoint_dir: Path | None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Probe every unique address whose domain has a mail server; join the evidence back."""
    from engine.smtp import probe_addresses

    reachable = pl.col(schema.SYNTAX_VALID) & pl.col("dns_outcome").is_in(["mx", "implicit_mx"])
    plan = unique.filter(reachable).select(
        schema.EMAIL_NORMALIZED, schema.DOMAIN, "mx_hosts", "smtp_provider", *_PROVIDER_POLICY
    )
    outcome = probe_addresses(plan, config, checkpoint_dir=checkpoint_dir, progress=progress)
    probes = outcome.probes.select(schema.EMAIL_NORMALIZED, *_PROBE_EVIDENCE)
    joined = unique.join(probes, on=schema.EMAIL_NORMALIZED, how="left", maintain_order="left")
    return joined, outcome.replies, outcome.stats


def verify_prepared(
    prepared: pl.DataFrame,
    config: Config,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressListener | None = None,
) -> Verdicts:
    """Decide every row of a prepared frame at the configured depth."""
    require_probe_identity(config)
    progress = progress or SilentProgress()
    unique = classify_addresses(prepared)
    replies: pl.DataFrame | None = None
    stats: dict[str, Any] = {}
    if config.depth in ("dns", "smtp"):
        unique = lookup_dns(unique, config, progress)
        stats["dns_domains"] = int(unique.get_column("dns_outcome").drop_nulls().len())
    if config.depth == "smtp":
        unique, replies, stats["smtp"] = probe_smtp(unique, config, progress, checkpoint_dir)
    decided = decide(unique)
    rows = verdicts_for_rows(prepared, decided).with_columns(
        checked_at=pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")),
        cached=pl.lit(False),
        times_verified=pl.lit(1, dtype=pl.Int32),
    )
    contract = [c for c in schema.RESULT_COLUMNS if c in rows.columns]
    return Verdicts(rows=rows.select(schema.ROW_ID, *contract), replies=replies, stats=stats)


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
) -> VerificationRun:
    """Verify one or more list files; rows of several files are verified (and deduped) as one.

    With `checkpoint_dir`, finished probe batches are kept there and a rerun skips them.
    """
    require_probe_identity(config)
    progress = progress or SilentProgress()
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    timings: dict[str, float] = {}
    with _timed(timings, "ingest", progress):
        originals, cells, warnings = _ingest_all(path_list, config)
    with _timed(timings, "prepare", progress):
        prepared = prepare(cells)
    with _timed(timings, "verify", progress):
        decided = verify_prepared(
            prepared, config, checkpoint_dir=checkpoint_dir, progress=progress
        )
        verdicts = decided.rows
    with _timed(timings, "assemble", progress):
        extras = originals.select(SOURCE_FILE_COLUMN) if SOURCE_FILE_COLUMN in originals else None
        if extras is not None:
            originals = originals.drop(SOURCE_FILE_COLUMN)
            verdicts = verdicts.with_columns(extras.get_column(SOURCE_FILE_COLUMN))
        results = assemble_results(originals, verdicts)
    summary = build_summary(
        results,
        extra={
            "inputs": [str(p) for p in path_list],
            "depth": config.depth,
            "timings_s": timings,
            **decided.stats,
        },
    )
    return VerificationRun(
        results=results,
        summary=summary,
        warnings=warnings,
        timings_s=timings,
        replies=decided.replies,
    )


def verify_addresses(addresses: Sequence[str], config: Config) -> pl.DataFrame:
    """Verify a few addresses given in memory (the seeds' single and batch endpoints)."""
    cells = pl.DataFrame(
        {
            schema.ROW_ID: pl.Series(range(len(addresses)), dtype=pl.UInt64),
            schema.EMAIL_RAW: pl.Series(list(addresses), dtype=pl.String),
        }
    )
    verdicts = verify_prepared(prepare(cells), config).rows
    originals = pl.DataFrame(
        {schema.DEFAULT_EMAIL_COLUMN: pl.Series(list(addresses), dtype=pl.String)}
    )
    return assemble_results(originals, verdicts)
