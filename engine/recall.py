"""What mailsift already knows about a run's addresses before any network work (issue 4).

Three sources, all read once per run for its unique addresses:

- the user's suppression lists (`<data dir>/suppression/`, engine.suppression),
- the feedback events recorded by `mailsift feedback` (history/feedback), reduced per address to
  the verdict evidence engine.verdict reads,
- earlier verdicts (history/verdicts): drift (times verified, previous status) and the cache.

A hard bounce counts when it is newer than the address's last SMTP answer (DESIGN §4: bounce
history newer than the last probe outranks SMTP evidence): a bounce holds until a later probe
accepts the mailbox again. A bounce without a time cannot be ordered and always counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import polars as pl

from engine import schema
from engine.feedback import feedback_facts
from engine.history import (
    CACHED_CHECKED_AT,
    FEEDBACK,
    HISTORY_DIR_NAME,
    VERDICTS,
    asked_keys,
    cached_domain_facts,
    cached_verdicts,
    drift,
    feedback_events,
    list_parts,
)
from engine.suppression import SUPPRESSION, SUPPRESSION_LIST, suppression_facts

SUPPRESSION_DIR_NAME: Final = "suppression"  # under the data dir (engine.suppression)
# Per-address evidence for engine.verdict, from the user's own lists and sends.
KNOWLEDGE_COLUMNS: Final = (
    SUPPRESSION,
    SUPPRESSION_LIST,
    "hard_bounce_after_verdict",
    "complained",
    "unsubscribed",
    "delivered",
)
# Drift of each address: runs that saw it before, and what it was the last time.
PAST_VERIFICATIONS: Final = "past_verifications"
PREVIOUS_STATUS: Final = "previous_status"
# Verdict evidence a cached verdict carries, renamed to the names engine.verdict reads.
CACHED_EVIDENCE: Final = {
    "dns_outcome": "dns_outcome",
    "rcpt_class": "rcpt_class",
    "smtp_response_code": "smtp_response_code",
    "smtp_enhanced_code": "smtp_enhanced_code",
    "smtp_message": "smtp_message",
    "mx_record": "mx_record",
    "smtp_provider": "smtp_provider",
    "spf": "spf",
    "dmarc": "dmarc",
    "is_catchall": "domain_catch_all",
}
_FACTS_SCHEMA: Final[dict[str, pl.DataType]] = {
    schema.DEDUP_KEY: pl.String(),
    SUPPRESSION: pl.String(),
    SUPPRESSION_LIST: pl.String(),
    "hard_bounce_after_verdict": pl.Boolean(),
    "complained": pl.Boolean(),
    "unsubscribed": pl.Boolean(),
    "delivered": pl.Boolean(),
    PAST_VERIFICATIONS: pl.Int32(),
    PREVIOUS_STATUS: pl.String(),
}


@dataclass(frozen=True)
class Recall:
    """What the history and the user's lists say about a run's unique addresses."""

    facts: pl.DataFrame  # one row per dedup_key asked for: _FACTS_SCHEMA
    cached: pl.DataFrame  # dedup_key, the evidence of CACHED_EVIDENCE and cached_checked_at
    domain_facts: pl.DataFrame  # history.cached_domain_facts() for the run's domains
    quarantined: tuple[str, ...]  # history parts found unreadable and moved aside now


def recall(
    keys: pl.DataFrame,
    data_dir: Path,
    *,
    now: datetime,
    refresh: bool,
    max_age_days: float,
    domain_max_age_days: float,
    run_id: str | None = None,
) -> Recall:
    """Everything known about `keys` (dedup_key, domain: the run's unique addresses).

    `run_id`, the run being made: what an earlier, killed attempt of it appended is not history.
    """
    history_dir = data_dir / HISTORY_DIR_NAME
    quarantined = tuple(f"{path}: {problem}" for path, problem in _check_parts(history_dir))
    unique_keys = keys.select(schema.DEDUP_KEY, schema.DOMAIN).unique(schema.DEDUP_KEY)
    asked = asked_keys(unique_keys.get_column(schema.DEDUP_KEY))  # hashed once, asked thrice
    past = drift(history_dir, asked, exclude_run=run_id)
    facts = _facts(unique_keys, data_dir, asked, past)
    # --refresh asks the cache nothing (drift and feedback still apply: they are not a cache).
    invalidated = facts.filter(pl.col("hard_bounce_after_verdict")).get_column(schema.DEDUP_KEY)
    found = cached_verdicts(
        history_dir,
        asked.clear() if refresh else asked,
        max_age_days=max_age_days,
        now=now,
        invalidated_keys=invalidated,
        columns=tuple(CACHED_EVIDENCE),
        exclude_run=run_id,
    )
    cached = found.select(
        schema.DEDUP_KEY,
        *(pl.col(stored).alias(name) for stored, name in CACHED_EVIDENCE.items()),
        CACHED_CHECKED_AT,
    )
    domains = keys.get_column(schema.DOMAIN)
    domain_facts = cached_domain_facts(
        history_dir,
        domains.clear() if refresh else domains,
        max_age_days=domain_max_age_days,
        now=now,
        exclude_run=run_id,
    )
    return Recall(facts, cached, domain_facts, quarantined)


def _facts(
    unique_keys: pl.DataFrame, data_dir: Path, hashed: pl.DataFrame, past: pl.DataFrame
) -> pl.DataFrame:
    """KNOWLEDGE_COLUMNS and drift per key: suppression, then feedback against the last probe.

    `unique_keys`: dedup_key, domain, one row per key; `hashed`: the same keys' asked_keys().
    """
    suppressed = suppression_facts(data_dir / SUPPRESSION_DIR_NAME, unique_keys)
    events = feedback_events(data_dir / HISTORY_DIR_NAME, hashed)
    sent = feedback_facts(events)
    bounce_at, probed_at = pl.col("last_hard_bounce_at"), pl.col("last_probed_at")
    bounced_after_probe = (pl.col("hard_bounces").fill_null(0) > 0) & (
        probed_at.is_null() | bounce_at.is_null() | (bounce_at > probed_at)
    )
    return (
        unique_keys.select(schema.DEDUP_KEY)
        .join(suppressed.drop(schema.DOMAIN, strict=False), on=schema.DEDUP_KEY, how="left")
        .join(sent, on=schema.DEDUP_KEY, how="left")
        .join(past, on=schema.DEDUP_KEY, how="left")
        .select(
            schema.DEDUP_KEY,
            SUPPRESSION,
            SUPPRESSION_LIST,
            bounced_after_probe.alias("hard_bounce_after_verdict"),
            pl.col("complained").fill_null(False),
            pl.col("unsubscribed").fill_null(False),
            (pl.col("deliveries").fill_null(0) > 0).alias("delivered"),
            pl.col("times_verified").fill_null(0).alias(PAST_VERIFICATIONS),
            pl.col(PREVIOUS_STATUS),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in _FACTS_SCHEMA.items())
    )


def _check_parts(history_dir: Path) -> list[tuple[Path, str]]:
    """List (and so quarantine) unreadable parts up front, so the run can report them."""
    return [
        moved
        for kind in (VERDICTS, FEEDBACK)
        for moved in list_parts(history_dir, kind).quarantined
    ]
