"""Re-verification (DESIGN §6): addresses whose latest verdict outlived the TTL become a list again.

Once a day the stale addresses, and only those, are written as one list file into
`landing/reverify-<YYYYMMDD>-<hash>/stale.csv`, registered as a `lists` partition and run like any
dropped list, so they get the same stages, checks, report and webhook. The key carries a content
hash: a tick evaluated twice asks for the same run and `run_key` makes the repeat a no-op.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import dagster as dg
import polars as pl

from engine.catalog import run_sql
from pipelines.jobs import verify_list_job
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings
from pipelines.sensors import LIST_FILE_TAG

REVERIFY_CRON: Final = "0 3 * * *"  # 03:00 UTC, after a working day's lists have finished
STALE_LIST_NAME: Final = "stale.csv"
EMAIL_COLUMN: Final = "email"
_HASH_CHARACTERS: Final = 10

# Status is deliberately not filtered: an old unknown deserves a new try as much as an old valid.
# A verdict without a normalised address (syntax-invalid input) has nothing to re-probe.
STALE_ADDRESSES_SQL: Final = """
SELECT email_normalized AS email
FROM latest_verdicts
WHERE checked_at < ? AND email_normalized IS NOT NULL
ORDER BY email_normalized
"""


def stale_addresses(data_dir: Path, max_age_days: float, now: datetime) -> pl.DataFrame:
    """One `email` row per address whose newest verdict is older than `max_age_days`."""
    cutoff = now.astimezone(UTC) - timedelta(days=max_age_days)
    return run_sql(data_dir, STALE_ADDRESSES_SQL, [cutoff])


def reverify_key(csv_bytes: bytes, day: datetime) -> str:
    """`reverify-<YYYYMMDD>-<sha256 prefix>`: one key per day and content, safe as a partition."""
    digest = hashlib.sha256(csv_bytes).hexdigest()[:_HASH_CHARACTERS]
    return f"reverify-{day.astimezone(UTC):%Y%m%d}-{digest}"


def land_stale_list(layout: DataDirLayout, key: str, csv_bytes: bytes) -> Path:
    """Write the list where the list assets read it; a hidden temp name until complete."""
    target = layout.landing_dir(key) / STALE_LIST_NAME
    if target.is_file():  # the same key means the same bytes
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_bytes(csv_bytes)
    os.replace(temp, target)
    return target


@dg.schedule(
    cron_schedule=REVERIFY_CRON,
    execution_timezone="UTC",
    job=verify_list_job,
    # Stopped until someone turns it on: it spends SMTP probes (and the sending IP's reputation)
    # on addresses nobody asked about today, which an operator should choose to do.
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-verifies addresses whose latest verdict is older than max_age_days.",
)
def reverify_stale_verdicts(
    context: dg.ScheduleEvaluationContext, mailsift: MailsiftSettings
) -> dg.RunRequest | dg.SkipReason:
    config = mailsift.config()
    now = context.scheduled_execution_time or datetime.now(UTC)
    stale = stale_addresses(config.data_dir, config.max_age_days, now)
    if stale.is_empty():
        return dg.SkipReason(f"no verdict older than {config.max_age_days:g} days")
    # Not formula-neutralised, unlike the CSV written for people: mailsift reads this file back as
    # the list, and a `'` before `=a@x.example` (a valid address) would make it another address.
    # The re-verify run's results.csv, which people open, is neutralised like every result.
    csv_bytes = stale.select(EMAIL_COLUMN).write_csv().encode("utf-8")
    key = reverify_key(csv_bytes, now)
    # Schedules cannot return partition requests, so the partition is added here, and before
    # the file lands: the inbox sensor then sees a known key and does not start a second run.
    if not context.instance.has_dynamic_partition(lists_partitions.name, key):
        context.instance.add_dynamic_partitions(lists_partitions.name, [key])
    land_stale_list(DataDirLayout(config.data_dir), key, csv_bytes)
    context.log.info(f"re-verifying {stale.height} stale addresses as list {key}")
    return dg.RunRequest(run_key=key, partition_key=key, tags={LIST_FILE_TAG: STALE_LIST_NAME})
