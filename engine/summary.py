"""The run's figures: what a finished results frame says, in the seeds' "analysis" vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import polars as pl

from engine.taxonomy import Status, SubStatus, Tier

# Key under which rows with a null status / sub_status / tier are counted (JSON keys are strings).
NO_VALUE_KEY: Final = "none"


def build_summary(
    results: pl.DataFrame, *, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The run's figures in the seeds' "analysis" vocabulary, as plain JSON-ready values.

    Keys: total_rows, by_status, by_sub_status ({status: {sub_status: rows}}), by_tier,
    duplicates, syntax_invalid, disposable, role_based, free_provider, typo_suggestions, cached,
    unique_domains, then `extra` (run id, inputs, timings...). Every status and tier of the
    taxonomy is listed, with 0 when absent, so pivots over several runs line up.
    """
    missing = [name for name in _SUMMARY_COLUMNS if name not in results.columns]
    if missing:
        raise ValueError(f"results lack contract column(s) {', '.join(missing)}")
    figures = results.select(
        pl.len().alias("total_rows"),
        _true_count("is_duplicate").alias("duplicates"),
        (pl.col("sub_status") == SubStatus.FAILED_SYNTAX_CHECK.value).sum().alias("syntax_invalid"),
        _true_count("is_disposable").alias("disposable"),
        _true_count("is_role_based").alias("role_based"),
        _true_count("is_free_provider").alias("free_provider"),
        pl.col("did_you_mean").is_not_null().sum().alias("typo_suggestions"),
        _true_count("cached").alias("cached"),
        pl.col("domain").drop_nulls().n_unique().alias("unique_domains"),
    ).row(0, named=True)
    pairs = (
        results.group_by("status", "sub_status")
        .len()
        .with_columns(pl.col("status", "sub_status").fill_null(NO_VALUE_KEY))
        .iter_rows()
    )
    tiers = results.group_by("tier").len().with_columns(pl.col("tier").fill_null(NO_VALUE_KEY))

    by_status = dict.fromkeys((s.value for s in Status), 0)
    by_sub_status: dict[str, dict[str, int]] = {}
    for status, sub_status, rows in pairs:
        by_status[status] = by_status.get(status, 0) + int(rows)
        by_sub_status.setdefault(status, {})[sub_status] = int(rows)
    by_tier = dict.fromkeys((t.value for t in Tier), 0)
    by_tier.update({tier: int(rows) for tier, rows in tiers.iter_rows()})

    summary: dict[str, Any] = {
        "total_rows": int(figures["total_rows"]),
        "by_status": by_status,
        "by_sub_status": {
            status: dict(sorted(subs.items(), key=_taxonomy_order))
            for status, subs in sorted(by_sub_status.items(), key=_taxonomy_order)
        },
        "by_tier": by_tier,
        **{name: int(figures[name]) for name in figures if name != "total_rows"},
    }
    overlap = summary.keys() & (extra or {}).keys()
    if overlap:
        raise ValueError(
            f"extra summary keys would overwrite figures: {', '.join(sorted(overlap))}"
        )
    summary.update(extra or {})
    return summary


_SUMMARY_COLUMNS: Final = (
    "status",
    "sub_status",
    "tier",
    "is_duplicate",
    "is_disposable",
    "is_role_based",
    "is_free_provider",
    "did_you_mean",
    "cached",
    "domain",
)
_TAXONOMY_POSITION: Final = {
    value: position
    for position, value in enumerate([*(s.value for s in Status), *(s.value for s in SubStatus)])
}


def _true_count(name: str) -> pl.Expr:
    # Cast first: a column that is all nulls may arrive as the Null dtype, whose sum is null.
    return pl.col(name).cast(pl.Boolean).sum()


def _taxonomy_order(item: tuple[str, Any]) -> tuple[int, str]:
    """Taxonomy order (DESIGN §4 table), then anything unexpected alphabetically after it."""
    return (_TAXONOMY_POSITION.get(item[0], len(_TAXONOMY_POSITION)), item[0])
