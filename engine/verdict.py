"""The rules table that turns evidence into status, sub_status, score, tier, confidence and advice.

One row per rule, in precedence order (DESIGN §4: syntax > DNS > suppression > history > SMTP >
local classes); the first rule whose condition holds decides. Disposable and role are flags that
always show, and decide only when nothing says invalid. Factors are reported separately: every
piece of evidence present is listed, not only the one that decided, so a user sees *why*.

A 4xx, a 5.7.x policy rejection or a reply that blames our IP is never proof that a mailbox does
not exist: those end `unknown`. Only a recipient-level rejection (5.1.x, 5.2.1, 552) is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from engine import schema
from engine.taxonomy import TIER_OF_STATUS, Recommendation, Status, SubStatus

# Evidence a verdict may use beyond the prepared frame; absent stages leave them null.
EVIDENCE_COLUMNS: dict[str, pl.DataType] = {
    "is_disposable": pl.Boolean(),
    "is_role_based": pl.Boolean(),
    "is_free_provider": pl.Boolean(),
    "did_you_mean": pl.String(),
    "dns_outcome": pl.String(),
    "rcpt_class": pl.String(),
    "domain_catch_all": pl.Boolean(),
    "smtp_response_code": pl.Int16(),
    "smtp_enhanced_code": pl.String(),
    # The user's own knowledge: suppression lists and what happened to past sends.
    "suppression": pl.String(),
    "suppression_list": pl.String(),
    "hard_bounce_after_verdict": pl.Boolean(),
    "complained": pl.Boolean(),
    "unsubscribed": pl.Boolean(),
    "delivered": pl.Boolean(),
    # Why a probe-worthy address was not probed (e.g. "budget": the run's probe budget ran out).
    "probe_skipped": pl.String(),
}
PROBE_SKIPPED = "probe_skipped"


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
    sub_status_column: str | None = None  # e.g. the suppression list's name for spamtrap


@dataclass(frozen=True)
class Factor:
    """A piece of evidence worth showing, whatever rule decided."""

    token: str | pl.Expr
    present: pl.Expr


def _dns(*outcomes: str) -> pl.Expr:
    return pl.col("dns_outcome").is_in(outcomes).fill_null(False)


def _rcpt(*classes: str) -> pl.Expr:
    return pl.col("rcpt_class").is_in(classes).fill_null(False)


_syntax_invalid = ~pl.col(schema.SYNTAX_VALID)
_disposable = pl.col("is_disposable").fill_null(False)
_role = pl.col("is_role_based").fill_null(False)
_typo = pl.col("did_you_mean").is_not_null()
_no_domain = _dns("nxdomain", "no_mail_records")
_catch_all = pl.col("domain_catch_all").fill_null(False)
_accepted = _rcpt("accepted")
_suppressed = pl.col("suppression")
_delivered = pl.col("delivered").fill_null(False)
# SMTP could tell: the server accepted this recipient and rejects made-up ones.
_smtp_confirmed = _accepted & (pl.col("domain_catch_all") == False)  # noqa: E712

_INVALID, _UNKNOWN, _DNM = Status.INVALID, Status.UNKNOWN, Status.DO_NOT_MAIL
_NO, _RETRY = Recommendation.DO_NOT_SEND, Recommendation.RETRY_LATER
_CAUTION = Recommendation.SEND_WITH_CAUTION


def _unknown(name: str, when: pl.Expr, sub: SubStatus, score: int, reason: str) -> Rule:
    return Rule(name, when, _UNKNOWN, sub, score, 20, _RETRY, reason)


# Score bands (DESIGN §4): deliverable 80-100, risky 40-79, undeliverable 0-39, unknown by evidence.
RULES: tuple[Rule, ...] = (
    # --- syntax ---
    Rule("syntax_invalid", _syntax_invalid, _INVALID, SubStatus.FAILED_SYNTAX_CHECK, 0, 99, _NO,
         "The address is not valid syntax.", reason_column=schema.SYNTAX_REASON),
    # --- DNS: the domain cannot receive mail ---
    Rule("possible_typo", _no_domain & _typo, _INVALID, SubStatus.POSSIBLE_TYPO, 5, 95, _NO,
         "The domain does not exist and looks like a typo of a popular one (see did_you_mean)."),
    Rule("no_dns_entries", _no_domain, _INVALID, SubStatus.NO_DNS_ENTRIES, 5, 95, _NO,
         "The domain does not exist or publishes no mail server (no MX, A or AAAA record)."),
    Rule("null_mx", _dns("null_mx"), _INVALID, SubStatus.DOES_NOT_ACCEPT_MAIL, 5, 99, _NO,
         "The domain declares that it accepts no mail (null MX, RFC 7505)."),
    Rule("mx_unresolvable", _dns("mx_unresolvable"), _INVALID, SubStatus.NO_MX_RECORDS, 10, 90,
         _NO, "The domain's mail servers have no address (their names do not resolve)."),
    Rule("mx_unroutable", _dns("mx_unroutable"), _INVALID, SubStatus.UNROUTABLE_IP_ADDRESS, 10, 90,
         _NO, "The domain's mail servers point at private or reserved addresses."),
    # --- the user's suppression lists, then what happened to past sends (newer than our probe) ---
    Rule("spamtrap", _suppressed == "spamtrap", Status.SPAMTRAP, SubStatus.GLOBAL_SUPPRESSION, 0,
         99, _NO, "The address is on your spam-trap list.", sub_status_column="suppression_list"),
    Rule("abuse", _suppressed == "abuse", Status.ABUSE, SubStatus.GLOBAL_SUPPRESSION, 0, 99, _NO,
         "The address is on your list of known complainers.", sub_status_column="suppression_list"),
    Rule("global_suppression", _suppressed == "global_suppression", _DNM,
         SubStatus.GLOBAL_SUPPRESSION, 40, 99, _NO,
         "The address is on your global suppression list."),
    Rule("historical_hard_bounce", pl.col("hard_bounce_after_verdict").fill_null(False), _INVALID,
         SubStatus.HISTORICAL_HARD_BOUNCE, 5, 95, _NO,
         "Mail to this address hard-bounced after it was last verified."),
    Rule("historical_complaint", pl.col("complained").fill_null(False), _DNM,
         SubStatus.HISTORICAL_COMPLAINT, 40, 95, _NO, "This recipient reported your mail as spam."),
    Rule("unsubscribed", pl.col("unsubscribed").fill_null(False), _DNM, SubStatus.UNSUBSCRIBED, 40,
         99, _NO, "This recipient unsubscribed."),
    # --- SMTP: the recipient itself was refused (the only proof a mailbox does not exist) ---
    Rule("mailbox_not_found", _rcpt("mailbox_not_found"), _INVALID, SubStatus.MAILBOX_NOT_FOUND,
         5, 95, _NO, "The mail server says this mailbox does not exist."),
    Rule("mailbox_disabled", _rcpt("mailbox_disabled"), _INVALID, SubStatus.MAILBOX_DISABLED,
         10, 90, _NO, "The mail server says this mailbox is disabled."),
    Rule("mailbox_full_permanent", _rcpt("mailbox_full_permanent"), _INVALID,
         SubStatus.MAILBOX_QUOTA_EXCEEDED, 15, 80, _NO,
         "The mailbox is over quota and the server refuses mail permanently (552)."),
    # --- a delivery the user saw settles what SMTP could not tell (catch-all, unknown, blocked) ---
    Rule("historical_delivery_confirmed", _delivered & ~_smtp_confirmed, Status.VALID,
         SubStatus.HISTORICAL_DELIVERY_CONFIRMED, 90, 90, Recommendation.SEND,
         "Mail you sent to this address was delivered."),
    # --- local classes: flags that decide once nothing says invalid ---
    Rule("role_catch_all", _role & _accepted & _catch_all, _DNM, SubStatus.ROLE_BASED_CATCH_ALL,
         45, 70, _NO, "A role address (info@, support@…) on a domain that accepts every address."),
    Rule("disposable_domain", _disposable, _DNM, SubStatus.DISPOSABLE, 40, 90, _NO,
         "The domain hands out temporary (disposable) mailboxes."),
    Rule("role_local_part", _role, _DNM, SubStatus.ROLE_BASED, 55, 80, _CAUTION,
         "The address belongs to a role or team (e.g. info@, support@), not a person."),
    # --- SMTP: accepted ---
    Rule("catch_all_domain", _accepted & _catch_all, Status.CATCH_ALL, SubStatus.ACCEPT_ALL, 60,
         50, _CAUTION, "The domain accepts every address, so this one cannot be confirmed."),
    Rule("mailbox_confirmed_catch_all_untested", _accepted & pl.col("domain_catch_all").is_null(),
         Status.VALID, SubStatus.MAILBOX_CONFIRMED, 85, 75, Recommendation.SEND,
         "The mail server accepted this recipient (the domain's catch-all test gave no answer)."),
    Rule("mailbox_confirmed", _accepted, Status.VALID, SubStatus.MAILBOX_CONFIRMED, 95, 95,
         Recommendation.SEND, "The mail server accepted this recipient and rejects made-up ones."),
    # --- no answer we can trust now: unknown, never charged, re-checked next run ---
    _unknown("dns_timeout", _dns("timeout"), SubStatus.TIMEOUT_EXCEEDED, 40,
             "The domain's DNS did not answer in time."),
    _unknown("dns_servfail", _dns("servfail"), SubStatus.MAIL_SERVER_TEMPORARY_ERROR, 40,
             "The domain's DNS failed temporarily (SERVFAIL)."),
    _unknown("mailbox_full_temporary", _rcpt("mailbox_full_temporary"),
             SubStatus.MAILBOX_QUOTA_EXCEEDED, 50,
             "The mailbox is over quota for now (452); it exists but cannot take mail today."),
    _unknown("greylisted", _rcpt("greylisted"), SubStatus.GREYLISTED, 50,
             "The server greylisted us through every retry; try again later."),
    _unknown("temporary_error", _rcpt("temporary_error", "rate_limited", "server_busy"),
             SubStatus.MAIL_SERVER_TEMPORARY_ERROR, 45,
             "The mail server answered with a temporary error (4xx) or asked us to slow down."),
    _unknown("provider_blocks_verification", _rcpt("provider_blocks_verification"),
             SubStatus.PROVIDER_BLOCKS_VERIFICATION, 50,
             "This provider does not let anyone verify mailboxes; not probed."),
    _unknown("antispam_system", _rcpt("policy_block", "ip_blamed", "rejected_unspecified"),
             SubStatus.ANTISPAM_SYSTEM, 45,
             "The server refused us by policy or blamed our IP; that is not proof of a mailbox."),
    _unknown("failed_smtp_connection", _rcpt("connection_failed"),
             SubStatus.FAILED_SMTP_CONNECTION, 40,
             "No mail server of the domain took a connection."),
    _unknown("timeout_exceeded", _rcpt("timeout"), SubStatus.TIMEOUT_EXCEEDED, 40,
             "The mail server stopped answering within our time limits."),
    _unknown("forcible_disconnect", _rcpt("disconnected"), SubStatus.FORCIBLE_DISCONNECT, 40,
             "The mail server dropped the connection before answering."),
    _unknown("protocol_error", _rcpt("protocol_error"), SubStatus.MAIL_SERVER_DID_NOT_RESPOND, 40,
             "The server's replies were not SMTP (garbage, oversized or endless)."),
    Rule("probe_budget_spent", (pl.col(PROBE_SKIPPED) == "budget").fill_null(False), _UNKNOWN,
         SubStatus.NOT_PROBED,
         50, 0, _RETRY, "The probe budget ran out before this address; it is checked next run."),
    Rule("not_probed", pl.lit(True), _UNKNOWN, SubStatus.NOT_PROBED, 50, 0, _RETRY,
         "Syntax is valid; the mailbox was not checked at this depth."),
)  # fmt: skip

_smtp_token = pl.concat_str(
    pl.lit("smtp_"),
    pl.col("smtp_response_code").cast(pl.String),
    pl.when(pl.col("smtp_enhanced_code").is_not_null()).then(
        pl.concat_str(pl.lit("_"), pl.col("smtp_enhanced_code"))
    ),
    ignore_nulls=True,
)

FACTORS: tuple[Factor, ...] = (
    Factor("syntax_invalid", _syntax_invalid),
    Factor(
        pl.concat_str(pl.lit("dns_"), pl.col("dns_outcome")), pl.col("dns_outcome").is_not_null()
    ),
    Factor(
        pl.concat_str(pl.lit("rcpt_"), pl.col("rcpt_class")), pl.col("rcpt_class").is_not_null()
    ),
    Factor(_smtp_token, pl.col("smtp_response_code").is_not_null()),
    Factor("catch_all_domain", pl.col("domain_catch_all").fill_null(False)),
    Factor(pl.concat_str(pl.lit("suppressed_"), _suppressed), _suppressed.is_not_null()),
    Factor("history_hard_bounce", pl.col("hard_bounce_after_verdict").fill_null(False)),
    Factor("history_complaint", pl.col("complained").fill_null(False)),
    Factor("history_unsubscribe", pl.col("unsubscribed").fill_null(False)),
    Factor("history_delivered", _delivered),
    Factor("disposable_domain", _disposable),
    Factor("role_local_part", _role),
    Factor("free_provider", pl.col("is_free_provider").fill_null(False)),
    Factor("typo_suggested", _typo),
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


def _overridden(rules: Sequence[Rule], target: str, fallback: str, field: str) -> pl.Expr:
    """`fallback` from the rules table, unless the deciding rule names an evidence column."""
    value = pl.col(fallback)
    for index, rule in enumerate(rules):
        column = getattr(rule, field)
        if column is not None:
            value = (
                pl.when(pl.col(_RULE_INDEX) == index)
                .then(pl.coalesce(pl.col(column), pl.col(fallback)))
                .otherwise(value)
            )
    return value.alias(target)


def _factors(factors: Sequence[Factor]) -> pl.Expr:
    tokens = [
        pl.when(f.present).then(pl.lit(f.token) if isinstance(f.token, str) else f.token)
        for f in factors
    ]
    return pl.concat_str(tokens, separator=" ", ignore_nulls=True).alias("factors")


def _verdict_flags() -> list[pl.Expr]:
    """The contract's yes/no columns, null where the stage that answers them did not run."""
    outcome = pl.col("dns_outcome")
    domain_answered = outcome.is_not_null() & ~outcome.is_in(["timeout", "servfail"])
    rcpt = pl.col("rcpt_class")
    return [
        pl.when(domain_answered).then(outcome.is_in(["mx", "implicit_mx"])).alias("domain_valid"),
        pl.when(domain_answered).then(outcome == "mx").alias("mx_found"),
        pl.when(rcpt == "accepted")
        .then(~pl.col("domain_catch_all").fill_null(False))
        .when(rcpt.is_in(["mailbox_not_found", "mailbox_disabled", "mailbox_full_permanent"]))
        .then(False)
        .alias("smtp_valid"),
        pl.col("domain_catch_all").alias("is_catchall"),
    ]


def with_missing_evidence(evidence: pl.DataFrame) -> pl.DataFrame:
    """Add the evidence columns a shallower depth did not produce, as typed nulls."""
    missing = [
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in EVIDENCE_COLUMNS.items()
        if name not in evidence.columns
    ]
    return evidence.with_columns(missing) if missing else evidence


def decide(evidence: pl.DataFrame, rules: Sequence[Rule] = RULES) -> pl.DataFrame:
    """Add the verdict columns to `evidence` (one row per address), vectorised."""
    table = _rules_frame(rules)
    return (
        with_missing_evidence(evidence)
        .lazy()
        .with_columns(_first_matching_rule(rules), _factors(FACTORS), *_verdict_flags())
        .join(table.lazy(), on=_RULE_INDEX, how="left", maintain_order="left")
        .with_columns(
            _overridden(rules, "reason", "_rule_reason", "reason_column"),
            _overridden(rules, "sub_status", "sub_status", "sub_status_column"),
            is_valid=pl.col("status") == Status.VALID.value,
        )
        .drop(_RULE_INDEX, "_rule_reason")
        .collect()
    )
