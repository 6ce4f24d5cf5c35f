"""What one SMTP reply says: about a recipient, about the session, or about us.

Evidence is read in the order of its precision: wording that blames our IP or our pace first
(it is about the client whatever code carries it, DESIGN §4), then the RFC 3463 enhanced status
code, then the RFC 5321 reply code, then the wording real servers use. Every phrase list lives
in `PHRASES`, one table, so a reviewer sees the whole vocabulary on one screen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class RcptClass(StrEnum):
    """The prober's answer per address; the verdict rules map each one (keep these names)."""

    ACCEPTED = "accepted"
    MAILBOX_NOT_FOUND = "mailbox_not_found"
    MAILBOX_DISABLED = "mailbox_disabled"
    MAILBOX_FULL_PERMANENT = "mailbox_full_permanent"
    MAILBOX_FULL_TEMPORARY = "mailbox_full_temporary"
    GREYLISTED = "greylisted"
    TEMPORARY_ERROR = "temporary_error"
    POLICY_BLOCK = "policy_block"
    IP_BLAMED = "ip_blamed"
    RATE_LIMITED = "rate_limited"
    SERVER_BUSY = "server_busy"
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    PROTOCOL_ERROR = "protocol_error"
    REJECTED_UNSPECIFIED = "rejected_unspecified"
    PROVIDER_BLOCKS_VERIFICATION = "provider_blocks_verification"
    NOT_PROBED = "not_probed"


class Step(StrEnum):
    """Where in a session a reply (or its absence) happened."""

    CONNECT = "connect"
    BANNER = "banner"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    MAIL = "mail"
    RCPT = "rcpt"
    RSET = "rset"
    QUIT = "quit"


# Wording, lower-case, matched as whole words. Each list answers one question about a reply.
PHRASES: Final[Mapping[str, tuple[str, ...]]] = {
    # The reply blames our client IP or host name (blocklists, reputation, reverse DNS): it says
    # nothing about the mailbox (DESIGN §4). Kept specific: "not listed in the directory" is a
    # missing mailbox, so bare "listed" is not here.
    "ip_blamed": (
        "spamhaus", "barracuda", "barracudacentral", "sorbs", "spamcop", "uceprotect",
        "blocked using", "listed at", "listed on", "listed by", "blocklist", "blocklisted",
        "blacklist", "blacklisted", "dnsbl", "rbl", "rdns", "reverse dns", "ptr record",
        "ptr", "client host", "your ip", "sending ip", "ip address", "ip reputation",
        "poor reputation", "bad reputation", "cannot find your hostname", "banned sending ip",
    ),
    # The server limits our pace (RFC 5321 §4.5.3.1.10 aside, which `RECIPIENT_LIMIT` covers).
    "rate_limited": (
        "too many", "rate limit", "rate limited", "rate-limited", "ratelimit", "ratelimited",
        "throttled", "throttling", "too fast", "slow down", "receiving mail at a rate",
        "exceeded the rate",
    ),
    # RFC 6647 greylisting, in the words of postgrey, Postfix policy servers, Exim, Gmail.
    "greylisted": (
        "greylist", "greylisted", "greylisting", "graylist", "graylisted", "graylisting",
        "grey-listed", "gray-listed", "try again in",
    ),
    "mailbox_not_found": (
        "user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient",
        "no such account", "does not exist", "doesn't exist", "unknown recipient",
        "recipient unknown", "address unknown", "unknown address", "unknown local part",
        "mailbox not found", "user not found", "recipient not found", "address not found",
        "invalid recipient", "invalid mailbox", "not a valid mailbox", "unrouteable address",
        "no mailbox here by that name", "mailbox unknown", "undeliverable address",
    ),
    "mailbox_disabled": (
        "disabled", "inactive", "deactivated", "suspended", "account closed",
        "no longer active", "not accepting messages", "mailbox closed",
    ),
    "mailbox_full": (
        "over quota", "quota exceeded", "exceeded quota", "mailbox full", "mailbox is full",
        "exceeded storage", "out of storage", "storage allocation", "insufficient quota",
    ),
    # The server refuses to answer us, or to relay, by policy: not evidence about the mailbox.
    "policy_block": (
        "verification refused", "relay denied", "relaying denied", "relay access denied",
        "relay not permitted", "relaying", "access denied", "policy", "not permitted", "prohibited",
        "refused", "administratively", "spam", "authentication required", "not allowed",
    ),
}  # fmt: skip

# RFC 3463 §3.2: X.1.1 bad destination mailbox, X.1.0 other address status; RFC 7505 §4.2:
# 5.1.10 recipient address has null MX. Only the permanent forms prove a mailbox is missing.
NOT_FOUND_CODES: Final = frozenset({"5.1.1", "5.1.0", "5.1.10"})
DISABLED_CODE: Final = "5.2.1"  # RFC 3463 §3.3: mailbox disabled, not accepting messages
FULL_PERMANENT_CODE: Final = "5.2.2"  # RFC 3463 §3.3: mailbox full
FULL_TEMPORARY_CODE: Final = "4.2.2"
POLICY_SUBJECT: Final = "7"  # RFC 3463 §3.8: X.7.x security or policy status
# RFC 3463 §3.6 X.5.3 "too many recipients"; RFC 5321 §4.5.3.1.10: the client sends the rest in
# another transaction. A per-message limit, not a rate: no back-off, a smaller batch.
RECIPIENT_LIMIT_CODES: Final = frozenset({"4.5.3", "5.5.3"})
RECIPIENT_LIMIT_PHRASE: Final = "too many recipients"
GREYLIST_CODES: Final = frozenset({450, 451})  # RFC 6647 §2.1: what greylisters answer
NOT_FOUND_REPLY_CODES: Final = frozenset({550, 553})  # RFC 5321 §4.2.2: mailbox unavailable
FULL_REPLY_CODE: Final = 552  # RFC 5321 §4.2.2: exceeded storage allocation
SERVICE_CLOSING: Final = 421  # RFC 5321 §3.8: the server closes the channel
# RFC 3463 §2: class.subject.detail, class 2/4/5, subject and detail up to three digits.
ENHANCED_CODE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(sorted((re.escape(p) for p in phrases), key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{words})(?![\w-])")


_PATTERNS: Final = {question: _phrase_pattern(phrases) for question, phrases in PHRASES.items()}


def says(question: str, text: str) -> bool:
    """Whether a reply's text uses the wording of one `PHRASES` entry."""
    return _PATTERNS[question].search(text.lower()) is not None


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete SMTP reply (RFC 5321 §4.2): its code, enhanced code and text.

    `text` holds every line's text after the code and the enhanced code, joined by spaces.
    """

    code: int
    enhanced: str | None
    text: str

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def detail(self) -> str | None:
        """The enhanced code when its class agrees with the reply code's (RFC 3463 §2)."""
        if self.enhanced is not None and self.enhanced[0] == str(self.code)[0]:
            return self.enhanced
        return None


def split_enhanced(text: str) -> tuple[str | None, str]:
    """`"5.1.1 User unknown"` -> `("5.1.1", "User unknown")`; text without one is unchanged."""
    match = ENHANCED_CODE.match(text)
    if match is None:
        return None, text
    return match.group(0), text[match.end() :].lstrip()


def is_recipient_limit(reply: Reply) -> bool:
    """452 4.5.3 "too many recipients": this transaction is full, the next one is not."""
    detail = reply.detail()
    if detail is not None:
        return detail in RECIPIENT_LIMIT_CODES
    return reply.code == 452 and RECIPIENT_LIMIT_PHRASE in reply.text.lower()


def classify_rcpt(reply: Reply) -> RcptClass:
    """The class of a reply to RCPT TO."""
    if 200 <= reply.code < 300:
        return RcptClass.ACCEPTED
    if not 400 <= reply.code < 600:
        return RcptClass.PROTOCOL_ERROR  # 1xx and 3xx are no answer to RCPT
    text = reply.text.lower()
    if says("ip_blamed", text):
        return RcptClass.IP_BLAMED
    if reply.code < 500:
        return _classify_deferral(reply, text)
    return _classify_rejection(reply, text)


def _classify_deferral(reply: Reply, text: str) -> RcptClass:
    """A 4xx at RCPT: never proof of anything about the mailbox."""
    detail = reply.detail()
    if reply.code == SERVICE_CLOSING or says("rate_limited", text):
        return RcptClass.RATE_LIMITED
    if detail == FULL_TEMPORARY_CODE or says("mailbox_full", text):
        return RcptClass.MAILBOX_FULL_TEMPORARY
    if says("greylisted", text):
        return RcptClass.GREYLISTED
    greylist_detail = detail is None or detail.split(".")[1] == POLICY_SUBJECT
    if reply.code in GREYLIST_CODES and greylist_detail:
        return RcptClass.GREYLISTED
    return RcptClass.TEMPORARY_ERROR


def _classify_rejection(reply: Reply, text: str) -> RcptClass:
    """A 5xx at RCPT: proof of a missing mailbox only when it says so, and not by policy."""
    detail = reply.detail()
    if detail in NOT_FOUND_CODES:
        return RcptClass.MAILBOX_NOT_FOUND
    if detail == DISABLED_CODE:
        return RcptClass.MAILBOX_DISABLED
    if detail == FULL_PERMANENT_CODE:
        return RcptClass.MAILBOX_FULL_PERMANENT
    if detail is not None and detail.split(".")[1] == POLICY_SUBJECT:
        return RcptClass.POLICY_BLOCK
    if reply.code == FULL_REPLY_CODE and (detail is None or says("mailbox_full", text)):
        return RcptClass.MAILBOX_FULL_PERMANENT
    if says("policy_block", text):
        return RcptClass.POLICY_BLOCK
    if reply.code in NOT_FOUND_REPLY_CODES and says("mailbox_not_found", text):
        return RcptClass.MAILBOX_NOT_FOUND
    if says("mailbox_disabled", text):
        return RcptClass.MAILBOX_DISABLED
    if says("mailbox_full", text):
        return RcptClass.MAILBOX_FULL_PERMANENT
    return RcptClass.REJECTED_UNSPECIFIED


def classify_session(reply: Reply, step: Step) -> RcptClass:
    """The class of a failed reply before RCPT (banner, EHLO/HELO, STARTTLS, MAIL, RSET).

    Such a reply is about the session or our sender, never about a mailbox: a 5.1.x at MAIL
    FROM names our sender's address, so nothing here can say mailbox_not_found.
    """
    text = reply.text.lower()
    if says("ip_blamed", text):
        return RcptClass.IP_BLAMED
    if says("rate_limited", text):
        return RcptClass.RATE_LIMITED
    if reply.code == SERVICE_CLOSING:
        # RFC 5321 §3.1/§3.8: 421 at the greeting is a busy server; later, it ends our session.
        return RcptClass.SERVER_BUSY if step is Step.BANNER else RcptClass.RATE_LIMITED
    if 400 <= reply.code < 500:
        return RcptClass.TEMPORARY_ERROR
    if 500 <= reply.code < 600:
        return RcptClass.POLICY_BLOCK  # RFC 5321 §3.1: a 554 greeting refuses us, not a mailbox
    return RcptClass.PROTOCOL_ERROR


# What the catch-all probe's final class says about its domain (None: the probe cannot tell).
CATCH_ALL_EVIDENCE: Final[Mapping[RcptClass, bool]] = {
    RcptClass.ACCEPTED: True,
    RcptClass.MAILBOX_NOT_FOUND: False,
    RcptClass.MAILBOX_DISABLED: False,
    RcptClass.REJECTED_UNSPECIFIED: False,
}
