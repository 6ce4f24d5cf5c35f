"""The status vocabulary of DESIGN §4 (ZeroBounce's, with `catch_all` as in seed 003)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    CATCH_ALL = "catch_all"
    UNKNOWN = "unknown"
    DO_NOT_MAIL = "do_not_mail"
    SPAMTRAP = "spamtrap"
    ABUSE = "abuse"


class SubStatus(StrEnum):
    # valid
    MAILBOX_CONFIRMED = "mailbox_confirmed"
    HISTORICAL_DELIVERY_CONFIRMED = "historical_delivery_confirmed"
    ALIAS_ADDRESS = "alias_address"
    # invalid
    FAILED_SYNTAX_CHECK = "failed_syntax_check"
    POSSIBLE_TYPO = "possible_typo"
    NO_DNS_ENTRIES = "no_dns_entries"
    DOES_NOT_ACCEPT_MAIL = "does_not_accept_mail"
    NO_MX_RECORDS = "no_mx_records"
    UNROUTABLE_IP_ADDRESS = "unroutable_ip_address"
    MAILBOX_NOT_FOUND = "mailbox_not_found"
    MAILBOX_DISABLED = "mailbox_disabled"
    MAILBOX_QUOTA_EXCEEDED = "mailbox_quota_exceeded"
    HISTORICAL_HARD_BOUNCE = "historical_hard_bounce"
    # catch_all
    ACCEPT_ALL = "accept_all"
    # unknown
    GREYLISTED = "greylisted"
    MAIL_SERVER_TEMPORARY_ERROR = "mail_server_temporary_error"
    FAILED_SMTP_CONNECTION = "failed_smtp_connection"
    MAIL_SERVER_DID_NOT_RESPOND = "mail_server_did_not_respond"
    TIMEOUT_EXCEEDED = "timeout_exceeded"
    FORCIBLE_DISCONNECT = "forcible_disconnect"
    ANTISPAM_SYSTEM = "antispam_system"
    PROVIDER_BLOCKS_VERIFICATION = "provider_blocks_verification"
    EXCEPTION_OCCURRED = "exception_occurred"
    NOT_PROBED = "not_probed"
    # do_not_mail
    DISPOSABLE = "disposable"
    ROLE_BASED = "role_based"
    ROLE_BASED_CATCH_ALL = "role_based_catch_all"
    HISTORICAL_COMPLAINT = "historical_complaint"
    UNSUBSCRIBED = "unsubscribed"
    GLOBAL_SUPPRESSION = "global_suppression"


class Tier(StrEnum):
    DELIVERABLE = "deliverable"
    RISKY = "risky"
    UNDELIVERABLE = "undeliverable"
    UNKNOWN = "unknown"


class Recommendation(StrEnum):
    SEND = "send"
    SEND_WITH_CAUTION = "send_with_caution"
    DO_NOT_SEND = "do_not_send"
    RETRY_LATER = "retry_later"


TIER_OF_STATUS: dict[Status, Tier] = {
    Status.VALID: Tier.DELIVERABLE,
    Status.CATCH_ALL: Tier.RISKY,
    Status.DO_NOT_MAIL: Tier.RISKY,
    Status.INVALID: Tier.UNDELIVERABLE,
    Status.SPAMTRAP: Tier.UNDELIVERABLE,
    Status.ABUSE: Tier.UNDELIVERABLE,
    Status.UNKNOWN: Tier.UNKNOWN,
}
