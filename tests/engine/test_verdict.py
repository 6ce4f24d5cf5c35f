"""The verdict rules table: every row walked, precedence held, bands respected."""

from __future__ import annotations

import polars as pl
import pytest

from engine import schema
from engine.taxonomy import TIER_OF_STATUS, Status, Tier
from engine.verdict import EVIDENCE_COLUMNS, RULES, decide

SCORE_BANDS = {
    Tier.DELIVERABLE: range(80, 101),
    Tier.RISKY: range(40, 80),
    Tier.UNDELIVERABLE: range(0, 40),
    Tier.UNKNOWN: range(0, 101),
}

_OK = {"syntax_valid": True, "dns_outcome": "mx"}

# Evidence that makes exactly one rule the first to match, per rule name.
EVIDENCE_FOR_RULE = {
    "syntax_invalid": {"syntax_valid": False, "is_disposable": True, "rcpt_class": "accepted"},
    "possible_typo": {"dns_outcome": "nxdomain", "did_you_mean": "gmail.com"},
    "no_dns_entries": {"dns_outcome": "no_mail_records", "is_disposable": True},
    "null_mx": {"dns_outcome": "null_mx", "is_role_based": True},
    "mx_unresolvable": {"dns_outcome": "mx_unresolvable"},
    "mx_unroutable": {"dns_outcome": "mx_unroutable"},
    "spamtrap": {**_OK, "suppression": "spamtrap", "suppression_list": "traps.txt"},
    "abuse": {**_OK, "suppression": "abuse", "rcpt_class": "accepted"},
    "global_suppression": {**_OK, "suppression": "global_suppression", "complained": True},
    "historical_hard_bounce": {**_OK, "hard_bounce_after_verdict": True, "rcpt_class": "accepted"},
    "historical_complaint": {**_OK, "complained": True, "unsubscribed": True},
    "unsubscribed": {**_OK, "unsubscribed": True, "rcpt_class": "accepted"},
    "historical_delivery_confirmed": {
        **_OK,
        "delivered": True,
        "rcpt_class": "accepted",
        "domain_catch_all": True,
    },
    "mailbox_not_found": {**_OK, "rcpt_class": "mailbox_not_found", "is_disposable": True},
    "mailbox_disabled": {**_OK, "rcpt_class": "mailbox_disabled", "is_role_based": True},
    "mailbox_full_permanent": {**_OK, "rcpt_class": "mailbox_full_permanent"},
    "role_catch_all": {
        **_OK,
        "rcpt_class": "accepted",
        "domain_catch_all": True,
        "is_role_based": True,
    },
    "disposable_domain": {**_OK, "rcpt_class": "greylisted", "is_disposable": True},
    "role_local_part": {**_OK, "rcpt_class": "accepted", "is_role_based": True},
    "catch_all_domain": {**_OK, "rcpt_class": "accepted", "domain_catch_all": True},
    "mailbox_confirmed_catch_all_untested": {**_OK, "rcpt_class": "accepted"},
    "mailbox_confirmed": {**_OK, "rcpt_class": "accepted", "domain_catch_all": False},
    "dns_timeout": {"dns_outcome": "timeout"},
    "dns_servfail": {"dns_outcome": "servfail"},
    "mailbox_full_temporary": {**_OK, "rcpt_class": "mailbox_full_temporary"},
    "greylisted": {**_OK, "rcpt_class": "greylisted"},
    "temporary_error": {**_OK, "rcpt_class": "rate_limited"},
    "provider_blocks_verification": {**_OK, "rcpt_class": "provider_blocks_verification"},
    "antispam_system": {**_OK, "rcpt_class": "ip_blamed"},
    "failed_smtp_connection": {**_OK, "rcpt_class": "connection_failed"},
    "timeout_exceeded": {**_OK, "rcpt_class": "timeout"},
    "forcible_disconnect": {**_OK, "rcpt_class": "disconnected"},
    "protocol_error": {**_OK, "rcpt_class": "protocol_error"},
    "probe_budget_spent": {**_OK, "probe_skipped": "budget"},
    "not_probed": {"syntax_valid": True},
}

# Replies that are never proof that a mailbox does not exist (DESIGN §4).
NOT_PROOF = (
    "greylisted",
    "temporary_error",
    "rate_limited",
    "server_busy",
    "mailbox_full_temporary",
    "policy_block",
    "ip_blamed",
    "rejected_unspecified",
    "provider_blocks_verification",
    "connection_failed",
    "timeout",
    "disconnected",
    "protocol_error",
    "not_probed",
)


def _evidence(**flags: object) -> pl.DataFrame:
    row: dict[str, object] = {name: None for name in EVIDENCE_COLUMNS}
    row.update({schema.SYNTAX_VALID: True, schema.SYNTAX_REASON: None})
    row.update(flags)
    return pl.DataFrame(
        [row],
        schema={
            schema.SYNTAX_VALID: pl.Boolean,
            schema.SYNTAX_REASON: pl.String,
            **{name: dtype for name, dtype in EVIDENCE_COLUMNS.items()},
        },
    )


def test_every_rule_has_evidence_in_this_test():
    assert {rule.name for rule in RULES} == set(EVIDENCE_FOR_RULE)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_each_rule_decides_its_evidence(rule):
    evidence = EVIDENCE_FOR_RULE[rule.name]
    decided = decide(_evidence(**evidence)).row(0, named=True)
    assert decided["status"] == rule.status.value
    expected_sub = evidence.get(rule.sub_status_column or "", None) or rule.sub_status.value
    assert decided["sub_status"] == expected_sub
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


@pytest.mark.parametrize("rcpt_class", NOT_PROOF)
@pytest.mark.parametrize("disposable", [False, True])
@pytest.mark.parametrize("catch_all", [None, False, True])
def test_no_answer_short_of_a_recipient_rejection_makes_an_address_invalid(
    rcpt_class, disposable, catch_all
):
    decided = decide(
        _evidence(
            dns_outcome="mx",
            rcpt_class=rcpt_class,
            is_disposable=disposable,
            domain_catch_all=catch_all,
        )
    )
    assert decided.item(0, "status") != "invalid"


def test_disposable_shows_as_a_flag_even_when_smtp_says_invalid():
    decided = decide(
        _evidence(dns_outcome="mx", rcpt_class="mailbox_not_found", is_disposable=True)
    )
    assert decided.item(0, "sub_status") == "mailbox_not_found"
    assert "disposable_domain" in decided.item(0, "factors").split()


def test_smtp_reply_code_and_enhanced_code_become_a_factor():
    decided = decide(
        _evidence(
            dns_outcome="mx",
            rcpt_class="mailbox_not_found",
            smtp_response_code=550,
            smtp_enhanced_code="5.1.1",
        )
    )
    assert "smtp_550_5.1.1" in decided.item(0, "factors").split()


def test_contract_flags_are_null_when_their_stage_did_not_run():
    decided = decide(_evidence()).row(0, named=True)
    assert decided["domain_valid"] is None
    assert decided["mx_found"] is None
    assert decided["smtp_valid"] is None


def test_contract_flags_follow_dns_and_smtp_evidence():
    confirmed = decide(
        _evidence(dns_outcome="mx", rcpt_class="accepted", domain_catch_all=False)
    ).row(0, named=True)
    assert (confirmed["domain_valid"], confirmed["mx_found"], confirmed["smtp_valid"]) == (
        True,
        True,
        True,
    )
    implicit = decide(_evidence(dns_outcome="implicit_mx", rcpt_class="accepted")).row(
        0, named=True
    )
    assert implicit["mx_found"] is False and implicit["domain_valid"] is True
    catch_all = decide(_evidence(dns_outcome="mx", rcpt_class="accepted", domain_catch_all=True))
    assert catch_all.item(0, "smtp_valid") is False


def test_a_delivery_does_not_override_a_confirmed_mailbox():
    decided = decide(
        _evidence(dns_outcome="mx", rcpt_class="accepted", domain_catch_all=False, delivered=True)
    )
    assert decided.item(0, "sub_status") == "mailbox_confirmed"
    assert "history_delivered" in decided.item(0, "factors").split()


def test_a_delivery_settles_an_unknown():
    decided = decide(_evidence(dns_outcome="mx", rcpt_class="greylisted", delivered=True))
    assert decided.item(0, "sub_status") == "historical_delivery_confirmed"


def test_plain_valid_syntax_with_no_evidence_has_empty_factors():
    assert decide(_evidence()).item(0, "factors") == ""


def test_decide_keeps_row_order_and_count():
    evidence = pl.concat([_evidence(syntax_valid=i % 2 == 0) for i in range(101)])
    decided = decide(evidence)
    assert decided.height == 101
    assert decided.get_column("syntax_valid").to_list() == [i % 2 == 0 for i in range(101)]
