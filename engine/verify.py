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
from engine.history import (
    CACHED_CHECKED_AT,
    FEEDBACK,
    FEEDBACK_PART_SCHEMA,
    HISTORY_DIR_NAME,
    VERDICT_PART_SCHEMA,
    VERDICTS,
    list_parts,
    scan_parts,
)
from engine.ingest import IngestedList, email_cells, read_list
from engine.prepare import prepare
from engine.progress import ProgressListener, SilentProgress
from engine.recall import PAST_VERIFICATIONS, PREVIOUS_STATUS, Recall, recall
from engine.reference import classify_domains, role_local_part
from engine.remember import Remembered, new_run_id, remember_run
from engine.taxonomy import Status
from engine.verdict import PROBE_SKIPPED, decide

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

# DNS outcomes whose domain has a mail server to probe.
_MAIL_SERVER = ("mx", "implicit_mx")
# The user's own knowledge outranks SMTP evidence (DESIGN §4): no probe can change these verdicts.
_KNOWLEDGE_DECIDES = (
    pl.col("suppression").is_not_null()
    | pl.col("hard_bounce_after_verdict").fill_null(False)
    | pl.col("complained").fill_null(False)
    | pl.col("unsubscribed").fill_null(False)
)
BOUNCE_PROBABILITY = "bounce_probability"
_QUARANTINED = "history_parts_quarantined"  # an extra after the contract columns (issue 4)

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


def lookup_dns(
    unique: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    known_domains: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Attach DNS facts, once per unique domain of a syntax-valid address.

    Domains with fresh facts in `known_domains` (history.cached_domain_facts) are not asked
    again when those facts are all the run needs: at depth dns always, at depth smtp only when
    the domain has no mail server (a probe needs today's MX addresses).
    """
    from engine.dns import lookup_domains

    domains = (
        unique.filter(pl.col(schema.SYNTAX_VALID) & pl.col(schema.DOMAIN).is_not_null())
        .get_column(schema.DOMAIN)
        .unique(maintain_order=True)
    )
    reused = pl.DataFrame(schema={schema.DOMAIN: pl.String()})
    if known_domains is not None and known_domains.height:
        enough = (
            pl.lit(True) if config.depth == "dns" else ~pl.col("dns_outcome").is_in(_MAIL_SERVER)
        )
        reused = known_domains.filter(
            pl.col(schema.DOMAIN).is_in(domains.implode()) & enough
        ).select(schema.DOMAIN, *(c for c in _DOMAIN_EVIDENCE if c in known_domains.columns))
    asked = domains.filter(~domains.is_in(reused.get_column(schema.DOMAIN).implode()))
    looked_up = lookup_domains(asked.to_list(), config, progress)
    wanted = [schema.DOMAIN, *_DOMAIN_EVIDENCE, *_PROVIDER_POLICY, "dns_queries"]
    facts = pl.concat(
        [looked_up.select(c for c in wanted if c in looked_up.columns), reused],
        how="diagonal_relaxed",
    )
    joined = unique.join(facts, on=schema.DOMAIN, how="left", maintain_order="left")
    return joined, {"dns_domains": asked.len(), "dns_domains_from_history": reused.height}


def probe_budget(config: Config, now: datetime) -> int | None:
    """How many addresses this run may probe: the run's budget and what is left of today's.

    A day is the UTC calendar day; probes of runs still going are not yet in the ledger.
    """
    from engine.ledger import probes_spent_since

    limits = [] if config.probe_budget is None else [config.probe_budget]
    if config.probe_budget_per_day is not None:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        spent = probes_spent_since(config.data_dir / HISTORY_DIR_NAME, midnight)
        limits.append(max(config.probe_budget_per_day - spent, 0))
    return min(limits) if limits else None


def probe_smtp(
    unique: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    checkpoint_dir: Path | None,
    budget: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Probe every unique address whose domain has a mail server; join the evidence back.

    Addresses the user's own knowledge already decides are not probed. With a `budget`, the
    first `budget` addresses of the plan (in list order) are probed and the rest are marked
    PROBE_SKIPPED = "budget", so the verdict says why they were not checked.
    """
    from engine.smtp import probe_addresses

    reachable = pl.col(schema.SYNTAX_VALID) & pl.col("dns_outcome").is_in(_MAIL_SERVER)
    wanted = unique.filter(reachable & ~_KNOWLEDGE_DECIDES.fill_null(False))
    plan = wanted.head(budget) if budget is not None else wanted
    over_budget = wanted.get_column(schema.EMAIL_NORMALIZED).slice(plan.height)
    outcome = probe_addresses(
        plan.select(
            schema.EMAIL_NORMALIZED, schema.DOMAIN, "mx_hosts", "smtp_provider", *_PROVIDER_POLICY
        ),
        config,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )
    probes = outcome.probes.select(schema.EMAIL_NORMALIZED, *_PROBE_EVIDENCE)
    joined = unique.join(
        probes, on=schema.EMAIL_NORMALIZED, how="left", maintain_order="left"
    ).with_columns(
        pl.when(pl.col(schema.EMAIL_NORMALIZED).is_in(over_budget.implode()))
        .then(pl.lit("budget"))
        .alias(PROBE_SKIPPED)
    )
    stats = {
        **outcome.stats,
        "planned": wanted.height,
        "reserved": plan.height,
        "budget": budget,
        "not_probed_over_budget": over_budget.len(),
        "budget_exhausted": over_budget.len() > 0,
    }
    return joined, outcome.replies, stats


def reuse_cached(
    unique: pl.DataFrame, cached: pl.DataFrame, depth: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cached rows decided anew, rows still to check) of the unique syntax-valid addresses.

    A cached verdict is re-decided from its stored evidence with today's rules and today's
    knowledge (a new suppression or bounce still wins), and reused only when that gives an answer
    (never unknown) from evidence as deep as this run asks for.
    """
    candidates = unique.filter(pl.col(schema.SYNTAX_VALID)).join(
        cached, on=schema.DEDUP_KEY, how="inner", maintain_order="left"
    )
    if candidates.is_empty():
        return candidates.clear().pipe(decide), unique
    outcome = pl.col("dns_outcome")
    deep_enough = {
        "syntax": pl.lit(True),
        "dns": outcome.is_not_null(),
        "smtp": pl.col("rcpt_class").is_not_null()
        | (outcome.is_not_null() & ~outcome.is_in(_MAIL_SERVER)),
    }[depth]
    reused = (
        decide(candidates)
        .filter((pl.col("status") != Status.UNKNOWN.value) & deep_enough)
        .with_columns(cached=pl.lit(True))
    )
    taken = reused.get_column(schema.DEDUP_KEY).implode()
    return reused, unique.filter(~pl.col(schema.DEDUP_KEY).is_in(taken).fill_null(False))


def _calibrated(decided: pl.DataFrame, config: Config) -> pl.Series:
    """bounce_probability per row, fitted on the user's own verdicts and feedback (calibration)."""
    from engine.calibration import bounce_probability, fit_bounce_model

    history_dir = config.data_dir / HISTORY_DIR_NAME
    if not list_parts(history_dir, FEEDBACK).parts:
        return pl.Series(BOUNCE_PROBABILITY, [None] * decided.height, dtype=pl.Float64)
    verdicts = (
        scan_parts(history_dir, VERDICTS, VERDICT_PART_SCHEMA)
        .filter(~pl.col("cached").fill_null(False))
        .select(schema.DEDUP_KEY, "checked_at", "sub_status", "smtp_provider")
        .collect()
    )
    events = scan_parts(history_dir, FEEDBACK, FEEDBACK_PART_SCHEMA).collect()
    model = fit_bounce_model(verdicts, events)
    return bounce_probability(decided, model).alias(BOUNCE_PROBABILITY)


def verify_prepared(
    prepared: pl.DataFrame,
    config: Config,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressListener | None = None,
    now: datetime | None = None,
) -> Verdicts:
    """Decide every row of a prepared frame at the configured depth, remembering the history.

    Fresh cached verdicts skip DNS and SMTP; addresses the user's lists or sends decide skip
    SMTP; the probe budget bounds the rest.
    """
    require_probe_identity(config)
    progress = progress or SilentProgress()
    now = now or datetime.now(UTC)
    unique = classify_addresses(prepared)
    known: Recall = recall(
        unique.select(schema.DEDUP_KEY, schema.DOMAIN),
        config.data_dir,
        now=now,
        refresh=config.refresh,
        max_age_days=config.max_age_days,
        domain_max_age_days=config.domain_max_age_days,
    )
    unique = unique.join(known.facts, on=schema.DEDUP_KEY, how="left", maintain_order="left")
    cached, fresh = reuse_cached(unique, known.cached, config.depth)
    replies: pl.DataFrame | None = None
    stats: dict[str, Any] = {_QUARANTINED: list(known.quarantined)}
    if config.depth in ("dns", "smtp"):
        fresh, stats["dns"] = lookup_dns(fresh, config, progress, known.domain_facts)
    if config.depth == "smtp":
        budget = probe_budget(config, now)
        fresh, replies, stats["smtp"] = probe_smtp(fresh, config, progress, checkpoint_dir, budget)
    decided = pl.concat(
        [decide(fresh).with_columns(cached=pl.lit(False)), cached], how="diagonal_relaxed"
    )
    changed = pl.col(PREVIOUS_STATUS).is_not_null() & (pl.col(PREVIOUS_STATUS) != pl.col("status"))
    decided = decided.with_columns(
        pl.coalesce(CACHED_CHECKED_AT, pl.lit(now))
        .cast(schema.RESULT_COLUMNS["checked_at"])
        .alias("checked_at"),
        (pl.col(PAST_VERIFICATIONS).fill_null(0) + 1).cast(pl.Int32).alias("times_verified"),
        changed.alias("status_changed"),
    )
    decided = decided.with_columns(_calibrated(decided, config))
    rows = verdicts_for_rows(prepared, decided)
    contract = [c for c in schema.RESULT_COLUMNS if c in rows.columns]
    return Verdicts(
        rows=rows.select(schema.ROW_ID, *contract, BOUNCE_PROBABILITY),
        replies=replies,
        stats=stats,
        unique=decided,
        checked_at=now,
    )


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

    With `checkpoint_dir`, finished probe batches are kept there and a rerun skips them. The run
    is appended to the history under `config.data_dir` (its verdicts, replies and ledger row).
    """
    require_probe_identity(config)
    progress = progress or SilentProgress()
    started_at = datetime.now(UTC)
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
    with _timed(timings, "history", progress):
        remembered = _remember(decided, config, list_id, results.height, started_at)
    warnings.extend(f"history part quarantined: {q}" for q in decided.stats.get(_QUARANTINED, []))
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
    decided: Verdicts, config: Config, list_id: str | None, rows: int, started_at: datetime
) -> Remembered:
    if decided.unique is None:
        raise ValueError("verdicts without their unique rows cannot be remembered")
    return remember_run(
        decided.unique,
        decided.replies,
        decided.stats,
        data_dir=config.data_dir,
        run_id=new_run_id(started_at),
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
    _remember(decided, config, None, len(addresses), started_at)
    originals = pl.DataFrame(
        {schema.DEFAULT_EMAIL_COLUMN: pl.Series(list(addresses), dtype=pl.String)}
    )
    return assemble_results(originals, decided.rows)
