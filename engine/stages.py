"""The stages between a prepared list and its verdicts, each a function of frames in and out.

`verify_prepared` (engine.verify) runs them in one process; the Dagster assets run one per step
and keep each stage's frame as Parquet in the list's folder, so any step can be re-run alone:

    screen()       unique addresses, what history and the user's lists know, cache reuse
    check_dns()    DNS facts once per unique domain (fresh domain facts from history reused)
    check_smtp()   SMTP evidence per address, within the probe budget
    conclude()     verdicts per unique address, drift and calibration, then one per row
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine import schema
from engine.config import Config
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
from engine.progress import ProgressListener
from engine.recall import PAST_VERIFICATIONS, PREVIOUS_STATUS, recall
from engine.reference import classify_domains, role_local_part
from engine.taxonomy import Status
from engine.verdict import PROBE_SKIPPED, decide

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
BOUNCE_PROBABILITY = "bounce_probability"  # an extra after the contract columns (issue 4)
QUARANTINED = "history_parts_quarantined"

# Verdict columns a duplicate copies from its first occurrence; the rest stay its own.
_ROW_OWN_COLUMNS = (schema.ROW_ID, schema.EMAIL_NORMALIZED, schema.IS_DUPLICATE)


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


def within_budget(unique: pl.DataFrame, budget: int | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Mark the probe-worthy addresses beyond `budget` (in list order) PROBE_SKIPPED="budget".

    Probe-worthy: syntax-valid, on a domain with a mail server, not already decided by the user's
    own knowledge (those are never probed). Applied before any sharding, so the budget is the
    run's, whatever the number of shards.
    """
    reachable = pl.col(schema.SYNTAX_VALID) & pl.col("dns_outcome").is_in(_MAIL_SERVER)
    worthy = (reachable & ~_KNOWLEDGE_DECIDES.fill_null(False)).fill_null(False)
    rank = worthy.cast(pl.UInt32).cum_sum()
    over = worthy & (rank > budget) if budget is not None else pl.lit(False)
    marked = unique.with_columns(
        pl.when(over).then(pl.lit("budget")).otherwise(pl.lit(None, pl.String)).alias(PROBE_SKIPPED)
    )
    planned = int(unique.select(worthy.sum()).item())
    skipped = int(marked.get_column(PROBE_SKIPPED).is_not_null().sum())
    return marked, {
        "planned": planned,
        "reserved": planned - skipped,
        "budget": budget,
        "not_probed_over_budget": skipped,
        "budget_exhausted": skipped > 0,
    }


def probe_smtp(
    unique: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    checkpoint_dir: Path | None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Probe every probe-worthy address not over the budget; join the evidence back."""
    from engine.smtp import probe_addresses

    reachable = pl.col(schema.SYNTAX_VALID) & pl.col("dns_outcome").is_in(_MAIL_SERVER)
    skipped = (
        pl.col(PROBE_SKIPPED).is_not_null() if PROBE_SKIPPED in unique.columns else pl.lit(False)
    )
    plan = unique.filter(reachable & ~_KNOWLEDGE_DECIDES.fill_null(False) & ~skipped)
    outcome = probe_addresses(
        plan.select(
            schema.EMAIL_NORMALIZED, schema.DOMAIN, "mx_hosts", "smtp_provider", *_PROVIDER_POLICY
        ),
        config,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )
    probes = outcome.probes.select(schema.EMAIL_NORMALIZED, *_PROBE_EVIDENCE)
    joined = unique.join(probes, on=schema.EMAIL_NORMALIZED, how="left", maintain_order="left")
    return joined, outcome.replies, outcome.stats


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


@dataclass
class Screened:
    """The unique addresses split by what is already known: `cached` rows are decided."""

    fresh: pl.DataFrame  # still to check (with knowledge and drift columns)
    cached: pl.DataFrame  # decided from a fresh cached verdict
    known_domains: pl.DataFrame  # history.cached_domain_facts() of the run's domains
    stats: dict[str, Any] = field(default_factory=dict)


def screen(
    prepared: pl.DataFrame, config: Config, now: datetime, run_id: str | None = None
) -> Screened:
    """Classify the unique addresses and apply what history and the user's lists know.

    `run_id`: the run being made, whose own parts (a killed attempt's) are not history.
    """
    unique = classify_addresses(prepared)
    known = recall(
        unique.select(schema.DEDUP_KEY, schema.DOMAIN),
        config.data_dir,
        now=now,
        refresh=config.refresh,
        max_age_days=config.max_age_days,
        domain_max_age_days=config.domain_max_age_days,
        run_id=run_id,
    )
    unique = unique.join(known.facts, on=schema.DEDUP_KEY, how="left", maintain_order="left")
    cached, fresh = reuse_cached(unique, known.cached, config.depth)
    stats = {QUARANTINED: list(known.quarantined), "unique_addresses": unique.height}
    return Screened(fresh, cached, known.domain_facts, stats)


def check_dns(
    fresh: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    known_domains: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """lookup_dns() when the depth asks for DNS; the frame unchanged otherwise."""
    if config.depth not in ("dns", "smtp"):
        return fresh, {}
    return lookup_dns(fresh, config, progress, known_domains)


def check_smtp(
    fresh: pl.DataFrame,
    config: Config,
    progress: ProgressListener,
    checkpoint_dir: Path | None,
    now: datetime,
) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, Any]]:
    """probe_smtp() within today's budget when the depth asks for SMTP."""
    if config.depth != "smtp":
        return fresh, None, {}
    budgeted, budget_stats = within_budget(fresh, probe_budget(config, now))
    probed, replies, stats = probe_smtp(budgeted, config, progress, checkpoint_dir)
    return probed, replies, {**stats, **budget_stats}


def conclude(
    prepared: pl.DataFrame,
    fresh: pl.DataFrame,
    cached: pl.DataFrame,
    config: Config,
    now: datetime,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one verdict row per input row: row_id + contract + extras, decided unique addresses)."""
    decided = pl.concat(
        [decide(fresh).with_columns(cached=pl.lit(False)), cached], how="diagonal_relaxed"
    )
    previous = pl.col(PREVIOUS_STATUS)
    decided = decided.with_columns(
        pl.coalesce(CACHED_CHECKED_AT, pl.lit(now))
        .cast(schema.RESULT_COLUMNS["checked_at"])
        .alias("checked_at"),
        (pl.col(PAST_VERIFICATIONS).fill_null(0) + 1).cast(pl.Int32).alias("times_verified"),
        (previous.is_not_null() & (previous != pl.col("status"))).alias("status_changed"),
    )
    decided = decided.with_columns(_calibrated(decided, config))
    rows = verdicts_for_rows(prepared, decided)
    contract = [c for c in schema.RESULT_COLUMNS if c in rows.columns]
    return rows.select(schema.ROW_ID, *contract, BOUNCE_PROBABILITY), decided
