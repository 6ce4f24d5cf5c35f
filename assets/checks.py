"""Asset checks per list: nothing lost (blocking), nothing suspicious (warnings).

Row conservation blocks: a verdict or result file that lost or reordered rows must never reach a
user. Rates only warn: a list with many duplicates or a domain answering unknown is worth a look,
not a stopped pipeline.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json

import dagster as dg
import polars as pl

from assets.lists import prepared_list
from assets.verification import list_results, list_verdicts
from engine import schema
from engine.health import unknown_rate_spikes
from pipelines.resources import MailsiftSettings

# A list above these shares is unusual enough to look at before sending (warn only).
MAX_DUPLICATE_SHARE = 0.5
MAX_SYNTAX_INVALID_SHARE = 0.2


def _rows_in(mailsift: MailsiftSettings, key: str) -> int:
    return pl.scan_parquet(mailsift.layout().rows_file(key)).select(pl.len()).collect().item()


def _conservation(rows_in: int, out: pl.LazyFrame) -> dg.AssetCheckResult:
    """Rows out == rows in; with a row_id column, also 0..n-1 in order."""
    figures = out.select(
        pl.len().alias("rows_out"),
        (pl.col(schema.ROW_ID).diff().fill_null(1) == 1).all().alias("in_order")
        if schema.ROW_ID in out.collect_schema()
        else pl.lit(True).alias("in_order"),
    ).collect()
    rows_out, in_order = figures.item(0, "rows_out"), bool(figures.item(0, "in_order"))
    return dg.AssetCheckResult(
        passed=rows_in == rows_out and in_order,
        metadata={"rows_in": rows_in, "rows_out": rows_out, "in_order": in_order},
    )


@dg.asset_check(asset=list_verdicts, blocking=True, description="One verdict per input row.")
def verdict_rows_conserved(
    context: dg.AssetCheckExecutionContext, mailsift: MailsiftSettings
) -> dg.AssetCheckResult:
    key = context.partition_key
    path = mailsift.layout().stage_file(key, "verdicts")
    return _conservation(_rows_in(mailsift, key), pl.scan_parquet(path))


@dg.asset_check(asset=list_results, blocking=True, description="One result row per input row.")
def result_rows_conserved(
    context: dg.AssetCheckExecutionContext, mailsift: MailsiftSettings
) -> dg.AssetCheckResult:
    key = context.partition_key
    path = mailsift.layout().results_file(key, "parquet")
    return _conservation(_rows_in(mailsift, key), pl.scan_parquet(path))


@dg.asset_check(
    asset=list_verdicts,
    description="No domain's unknown rate jumped above 3x its own history (our IP blocked?).",
)
def unknown_rate_spike(
    context: dg.AssetCheckExecutionContext, mailsift: MailsiftSettings
) -> dg.AssetCheckResult:
    key = context.partition_key
    state = json.loads((mailsift.layout().list_dir(key) / "run.json").read_text())
    spikes = unknown_rate_spikes(mailsift.config().data_dir, state["run_id"])
    domains = spikes.get_column("domain").to_list()
    return dg.AssetCheckResult(
        passed=not domains,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"domains": ", ".join(domains[:20]) or "none", "spiking_domains": len(domains)},
    )


@dg.asset_check(
    asset=prepared_list,
    description=f"Duplicates at most {MAX_DUPLICATE_SHARE:.0%} and syntax-invalid at most "
    f"{MAX_SYNTAX_INVALID_SHARE:.0%} of the rows (warn: a wrong column or a scraped list?).",
)
def prepared_rates_plausible(
    context: dg.AssetCheckExecutionContext, mailsift: MailsiftSettings
) -> dg.AssetCheckResult:
    prepared = pl.scan_parquet(mailsift.layout().prepared_file(context.partition_key))
    figures = prepared.select(
        pl.len().alias("rows"),
        pl.col(schema.IS_DUPLICATE).mean().fill_null(0.0).alias("duplicate_share"),
        (~pl.col(schema.SYNTAX_VALID)).mean().fill_null(0.0).alias("syntax_invalid_share"),
    ).collect()
    duplicates, invalid = (
        figures.item(0, "duplicate_share"),
        figures.item(0, "syntax_invalid_share"),
    )
    return dg.AssetCheckResult(
        passed=duplicates <= MAX_DUPLICATE_SHARE and invalid <= MAX_SYNTAX_INVALID_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "duplicate_share": round(float(duplicates), 4),
            "syntax_invalid_share": round(float(invalid), 4),
        },
    )
