"""The rules table that turns evidence into status, sub_status, score, tier, confidence and advice.

One row per rule, in precedence order (DESIGN §4: syntax > DNS > suppression > history > SMTP >
local classes); the first rule whose condition holds decides. Factors are reported separately: every
piece of evidence present is listed, not only the one that decided, so a user sees *why*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from engine import schema
from engine.taxonomy import TIER_OF_STATUS, Recommendation, Status, SubStatus


@dataclass(frozen=True)
class Rule:
    """Evidence → verdict. `reason` is for people; `reason_column` takes it from evidence."""

    name: str
    when: pl.Expr
    status: Status
    sub_status: SubStatus
    score: int
    confidence: int
    recommendation: Recommendation
    reason: str
    reason_column: str | None = None


@dataclass(frozen=True)
class Factor:
    """A piece of evidence worth showing, whatever rule decided."""

    token: str
    present: pl.Expr


_syntax_invalid = ~pl.col(schema.SYNTAX_VALID)
_disposable = pl.col("is_disposable").fill_null(False)
_role = pl.col("is_role_based").fill_null(False)

# Score bands (DESIGN §4): deliverable 80-100, risky 40-79, undeliverable 0-39, unknown by evidence.
RULES: tuple[Rule, ...] = (
    Rule(
        name="syntax_invalid",
        when=_syntax_invalid,
        status=Status.INVALID,
        sub_status=SubStatus.FAILED_SYNTAX_CHECK,
        score=0,
        confidence=99,
        recommendation=Recommendation.DO_NOT_SEND,
        reason="The address is not valid syntax.",
        reason_column=schema.SYNTAX_REASON,
    ),
    Rule(
        name="disposable_domain",
        when=_disposable,
        status=Status.DO_NOT_MAIL,
        sub_status=SubStatus.DISPOSABLE,
        score=40,
        confidence=90,
        recommendation=Recommendation.DO_NOT_SEND,
        reason="The domain hands out temporary (disposable) mailboxes.",
    ),
    Rule(
        name="role_local_part",
        when=_role,
        status=Status.DO_NOT_MAIL,
        sub_status=SubStatus.ROLE_BASED,
        score=55,
        confidence=80,
        recommendation=Recommendation.SEND_WITH_CAUTION,
        reason="The address belongs to a role or team (e.g. info@, support@), not a person.",
    ),
    Rule(
        name="not_probed",
        when=pl.lit(True),
        status=Status.UNKNOWN,
        sub_status=SubStatus.NOT_PROBED,
        score=50,
        confidence=0,
        recommendation=Recommendation.RETRY_LATER,
        reason="Syntax is valid; the mailbox was not checked at this depth.",
    ),
)

FACTORS: tuple[Factor, ...] = (
    Factor("syntax_invalid", _syntax_invalid),
    Factor("disposable_domain", _disposable),
    Factor("role_local_part", _role),
    Factor("free_provider", pl.col("is_free_provider").fill_null(False)),
    Factor("typo_suggested", pl.col("did_you_mean").is_not_null()),
)

_RULE_INDEX = "_rule"


def _rules_frame(rules: Sequence[Rule]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            _RULE_INDEX: pl.Series(range(len(rules)), dtype=pl.UInt16),
            "status": [r.status.value for r in rules],
            "sub_status": [r.sub_status.value for r in rules],
            "score": pl.Series([r.score for r in rules], dtype=pl.Int16),
            "confidence": pl.Series([r.confidence for r in rules], dtype=pl.Int16),
            "recommendation": [r.recommendation.value for r in rules],
            "tier": [TIER_OF_STATUS[r.status].value for r in rules],
            "_rule_reason": [r.reason for r in rules],
        }
    )


def _first_matching_rule(rules: Sequence[Rule]) -> pl.Expr:
    chain = pl.when(rules[0].when).then(pl.lit(0, dtype=pl.UInt16))
    for index, rule in enumerate(rules[1:], start=1):
        chain = chain.when(rule.when).then(pl.lit(index, dtype=pl.UInt16))
    return chain.otherwise(pl.lit(None, dtype=pl.UInt16)).alias(_RULE_INDEX)


def _reason(rules: Sequence[Rule]) -> pl.Expr:
    reason = pl.col("_rule_reason")
    for index, rule in enumerate(rules):
        if rule.reason_column is not None:
            reason = (
                pl.when(pl.col(_RULE_INDEX) == index)
                .then(pl.coalesce(pl.col(rule.reason_column), pl.col("_rule_reason")))
                .otherwise(reason)
            )
    return reason.alias("reason")


def _factors(factors: Sequence[Factor]) -> pl.Expr:
    tokens = [pl.when(f.present).then(pl.lit(f.token)) for f in factors]
    return pl.concat_str(tokens, separator=" ", ignore_nulls=True).alias("factors")


def decide(evidence: pl.DataFrame, rules: Sequence[Rule] = RULES) -> pl.DataFrame:
    """Add the verdict columns to `evidence` (one row per address), vectorised."""
    table = _rules_frame(rules)
    decided = (
        evidence.lazy()
        .with_columns(_first_matching_rule(rules), _factors(FACTORS))
        .join(table.lazy(), on=_RULE_INDEX, how="left", maintain_order="left")
        .with_columns(
            _reason(rules),
            is_valid=pl.col("status") == Status.VALID.value,
        )
        .drop(_RULE_INDEX, "_rule_reason")
        .collect()
    )
    return decided
