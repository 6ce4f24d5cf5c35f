"""How likely a verdict is to hard-bounce, learnt from what the user's own sends did.

Method: an observation is a verdict followed by its outcome, the first `delivered` or
`hard_bounce` event for that address at or after the verdict's `checked_at` and before the
address's next verdict (each send is judged against the verdict it was sent on, and a
re-verified address is not counted twice). The observed hard-bounce rate is estimated per
(smtp_provider, sub_status), shrunk toward its sub_status's rate, which is shrunk toward the
global rate (empirical Bayes: each prior is a Beta centred on the parent's estimated rate, with a
fixed strength of PRIOR_OBSERVATIONS = 20 pseudo-observations):
    global              p_g = (bounces + 1/2) / (observations + 1)   (Jeffreys prior, never 0 or 1)
    sub_status          p_s = (bounces_s + 20 p_g) / (observations_s + 20)
    provider+sub_status p   = (bounces + 20 p_s) / (observations + 20)
So a group of 20 observations counts half its own rate and half its parent's, one of 1,000 its
own for 98 %. A verdict whose group was never observed gets its sub_status's rate, else the
global rate; with no observations at all the probability is null (nothing to calibrate on).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.feedback import DELIVERED, HARD_BOUNCE
from engine.schema import DEDUP_KEY

# Prior strength, in observations, of each level's Beta prior around its parent's rate: enough
# that a handful of sends cannot claim 0 % or 100 %, small next to the 1,000s a list yields.
PRIOR_OBSERVATIONS: Final = 20.0
# Jeffreys prior Beta(1/2, 1/2) for the global rate, which has no parent.
GLOBAL_PRIOR_BOUNCES: Final = 0.5
GLOBAL_PRIOR_OBSERVATIONS: Final = 1.0

PROVIDER: Final = "smtp_provider"
SUB_STATUS: Final = "sub_status"
LEVEL: Final = "level"  # which rows of the model: one of LEVELS
LEVELS: Final = ("provider_sub_status", "sub_status", "global")
BOUNCE_PROBABILITY: Final = "bounce_probability"
MODEL_SCHEMA: Final[dict[str, pl.DataType]] = {
    LEVEL: pl.String(),
    PROVIDER: pl.String(),  # null on the sub_status and global rows
    SUB_STATUS: pl.String(),  # null on the global row
    "observations": pl.UInt32(),
    "bounces": pl.UInt32(),
    BOUNCE_PROBABILITY: pl.Float64(),
}
_TIME: Final = pl.Datetime("us", "UTC")


def observed_outcomes(verdicts: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """One row per verdict with an outcome: smtp_provider, sub_status, bounced (bool).

    `verdicts`: dedup_key, checked_at, sub_status, smtp_provider (status is not needed: the
    sub_status names it). `events`: feedback.FEEDBACK_SCHEMA; events without a time are skipped.
    """
    verdict = (
        verdicts.lazy()
        .select(DEDUP_KEY, pl.col("checked_at").cast(_TIME), SUB_STATUS, PROVIDER)
        .with_row_index("_verdict")
        .drop_nulls([DEDUP_KEY, "checked_at"])
        .sort("checked_at")
    )
    outcome = (
        events.lazy()
        .filter(pl.col("event_type").is_in([DELIVERED, HARD_BOUNCE]))
        .select(
            DEDUP_KEY,
            pl.col("occurred_at").cast(_TIME),
            (pl.col("event_type") == HARD_BOUNCE).alias("bounced"),
        )
        .drop_nulls([DEDUP_KEY, "occurred_at"])
        .sort("occurred_at")
    )
    # The verdict in force when each event happened: the address's latest one at or before it.
    first_outcomes = (
        outcome.join_asof(
            verdict.select("_verdict", DEDUP_KEY, "checked_at"),
            left_on="occurred_at",
            right_on="checked_at",
            by=DEDUP_KEY,
            strategy="backward",
            check_sortedness=False,  # sorted by time above, so sorted within every address
        )
        .drop_nulls("_verdict")
        .group_by("_verdict")
        .agg(pl.col("bounced").sort_by("occurred_at").first())
    )
    return (
        verdict.join(first_outcomes, on="_verdict")
        .sort("_verdict")
        .select(PROVIDER, SUB_STATUS, "bounced")
        .collect()
    )


def fit_bounce_model(verdicts: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The shrunk hard-bounce rate per (smtp_provider, sub_status), per sub_status and overall.

    MODEL_SCHEMA; empty when no verdict has an outcome yet.
    """
    observed = observed_outcomes(verdicts, events)
    if observed.is_empty():
        return pl.DataFrame(schema=MODEL_SCHEMA)
    counts = [pl.len().alias("observations"), pl.col("bounces").sum()]
    observed = observed.with_columns(pl.col("bounced").cast(pl.UInt32).alias("bounces"))
    total, bounced = observed.height, int(observed.get_column("bounces").sum())
    global_rate = (bounced + GLOBAL_PRIOR_BOUNCES) / (total + GLOBAL_PRIOR_OBSERVATIONS)
    by_sub_status = (
        observed.group_by(SUB_STATUS)
        .agg(counts)
        .with_columns(_shrunk(pl.lit(global_rate)).alias(BOUNCE_PROBABILITY))
    )
    by_group = (
        observed.group_by(PROVIDER, SUB_STATUS)
        .agg(counts)
        .join(
            by_sub_status.select(SUB_STATUS, pl.col(BOUNCE_PROBABILITY).alias("_parent")),
            on=SUB_STATUS,
            nulls_equal=True,
        )
        .with_columns(_shrunk(pl.col("_parent")).alias(BOUNCE_PROBABILITY))
    )
    overall = pl.DataFrame(
        {"observations": [total], "bounces": [bounced], BOUNCE_PROBABILITY: [global_rate]}
    )
    levels = zip(LEVELS, (by_group, by_sub_status, overall), strict=True)
    return pl.concat(
        frame.select(
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in MODEL_SCHEMA.items()
        ).sort(SUB_STATUS, PROVIDER, nulls_last=True)
        for frame in (frame.with_columns(pl.lit(level).alias(LEVEL)) for level, frame in levels)
    )


def _shrunk(parent_rate: pl.Expr) -> pl.Expr:
    """The posterior mean of a Beta(PRIOR_OBSERVATIONS x parent) prior after the group's counts."""
    return (pl.col("bounces") + PRIOR_OBSERVATIONS * parent_rate) / (
        pl.col("observations") + PRIOR_OBSERVATIONS
    )


def bounce_probability(decided: pl.DataFrame, model: pl.DataFrame) -> pl.Series:
    """Each row's calibrated hard-bounce probability, by its (smtp_provider, sub_status).

    Falls back to the sub_status's rate, then the global rate, for groups the model never saw;
    null throughout when the model has no observations at all.
    """
    level = pl.col(LEVEL)
    by_group = model.filter(level == LEVELS[0]).select(
        PROVIDER, SUB_STATUS, pl.col(BOUNCE_PROBABILITY).alias("_group")
    )
    by_sub_status = model.filter(level == LEVELS[1]).select(
        SUB_STATUS, pl.col(BOUNCE_PROBABILITY).alias("_sub_status")
    )
    overall = model.filter(level == LEVELS[2]).get_column(BOUNCE_PROBABILITY)
    global_rate = overall.item(0) if overall.len() else None
    keys = decided.select(pl.col(PROVIDER).cast(pl.String), pl.col(SUB_STATUS).cast(pl.String))
    return (
        keys.join(
            by_group, on=[PROVIDER, SUB_STATUS], how="left", nulls_equal=True, maintain_order="left"
        )
        .join(by_sub_status, on=SUB_STATUS, how="left", nulls_equal=True, maintain_order="left")
        .select(
            pl.coalesce("_group", "_sub_status", pl.lit(global_rate, dtype=pl.Float64)).alias(
                BOUNCE_PROBABILITY
            )
        )
        .to_series()
    )
