"""The verdict rules table: every row walked, precedence held, bands respected."""

from __future__ import annotations

import polars as pl
import pytest

from engine import schema
from engine.taxonomy import TIER_OF_STATUS, Status, Tier
from engine.verdict import RULES, decide

SCORE_BANDS = {
    Tier.DELIVERABLE: range(80, 101),
    Tier.RISKY: range(40, 80),
    Tier.UNDELIVERABLE: range(0, 40),
    Tier.UNKNOWN: range(0, 101),
}

# Evidence that makes exactly one rule the first to match, per rule name.
EVIDENCE_FOR_RULE = {
    "syntax_invalid": {"syntax_valid": False, "is_disposable": True, "is_role_based": True},
    "disposable_domain": {"syntax_valid": True, "is_disposable": True, "is_role_based": True},
    "role_local_part": {"syntax_valid": True, "is_disposable": False, "is_role_based": True},
    "not_probed": {"syntax_valid": True, "is_disposable": False, "is_role_based": False},
}


def _evidence(**flags: object) -> pl.DataFrame:
    row = {
        schema.SYNTAX_VALID: True,
        schema.SYNTAX_REASON: None,
        "is_disposable": False,
        "is_role_based": False,
        "is_free_provider": False,
        "did_you_mean": None,
    }
    row.update(flags)
    return pl.DataFrame(
        [row],
        schema={
            schema.SYNTAX_VALID: pl.Boolean,
            schema.SYNTAX_REASON: pl.String,
            "is_disposable": pl.Boolean,
            "is_role_based": pl.Boolean,
            "is_free_provider": pl.Boolean,
            "did_you_mean": pl.String,
        },
    )


def test_every_rule_has_evidence_in_this_test():
    assert {rule.name for rule in RULES} == set(EVIDENCE_FOR_RULE)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_each_rule_decides_its_evidence(rule):
    decided = decide(_evidence(**EVIDENCE_FOR_RULE[rule.name])).row(0, named=True)
    assert decided["status"] == rule.status.value
    assert decided["sub_status"] == rule.sub_status.value
    assert decided["score"] == rule.score
    assert decided["tier"] == TIER_OF_STATUS[rule.status].value
    assert decided["is_valid"] is (rule.status is Status.VALID)
    assert decided["reason"]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_each_rule_score_sits_in_its_tier_band(rule):
    assert rule.score in SCORE_BANDS[TIER_OF_STATUS[rule.status]]
    assert 0 <= rule.confidence <= 100


def test_syntax_reason_from_evidence_becomes_the_reason():
    decided = decide(
        _evidence(syntax_valid=False, syntax_reason="The part after the @-sign is not valid.")
    )
    assert decided.item(0, "reason") == "The part after the @-sign is not valid."


def test_factors_list_every_piece_of_evidence_not_only_the_deciding_one():
    decided = decide(
        _evidence(is_disposable=True, is_role_based=True, is_free_provider=True, did_you_mean="x")
    )
    assert decided.item(0, "factors").split() == [
        "disposable_domain",
        "role_local_part",
        "free_provider",
        "typo_suggested",
    ]


def test_plain_valid_syntax_with_no_evidence_has_empty_factors():
    assert decide(_evidence()).item(0, "factors") == ""


def test_decide_keeps_row_order_and_count():
    evidence = pl.concat([_evidence(syntax_valid=i % 2 == 0) for i in range(101)])
    decided = decide(evidence)
    assert decided.height == 101
    assert decided.get_column("syntax_valid").to_list() == [i % 2 == 0 for i in range(101)]
