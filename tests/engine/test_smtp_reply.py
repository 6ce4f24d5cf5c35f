"""Specification of reply classification, on replies worded as real servers word them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.smtp_reply import (
    PHRASES,
    RcptClass,
    Reply,
    Step,
    classify_rcpt,
    classify_session,
    is_recipient_limit,
    says,
    split_enhanced,
)
from engine.smtp_session import Verb, command_line, is_sendable, reply_of

PROOF_OF_ABSENCE = {RcptClass.MAILBOX_NOT_FOUND, RcptClass.MAILBOX_DISABLED}


def rcpt(line: str) -> RcptClass:
    code, _, text = line.partition(" ")
    enhanced, rest = split_enhanced(text)
    return classify_rcpt(Reply(int(code), enhanced, rest))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("250 2.1.5 Ok", RcptClass.ACCEPTED),
        ("251 2.1.5 User not local; will forward", RcptClass.ACCEPTED),
        # Postfix, Gmail, Exchange, Exim, qmail: the mailbox is not there.
        (
            "550 5.1.1 <x@a.test>: Recipient address rejected: User unknown",
            RcptClass.MAILBOX_NOT_FOUND,
        ),
        (
            "550 5.1.1 The email account that you tried to reach does not exist.",
            RcptClass.MAILBOX_NOT_FOUND,
        ),
        (
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
            RcptClass.MAILBOX_NOT_FOUND,
        ),
        ("550 5.1.0 Address rejected", RcptClass.MAILBOX_NOT_FOUND),
        ("550 Unrouteable address", RcptClass.MAILBOX_NOT_FOUND),
        ("553 sorry, no mailbox here by that name. (#5.1.1)", RcptClass.MAILBOX_NOT_FOUND),
        ("550 No such user here", RcptClass.MAILBOX_NOT_FOUND),
        # Disabled and full.
        (
            "550 5.2.1 The email account that you tried to reach is disabled.",
            RcptClass.MAILBOX_DISABLED,
        ),
        ("550 Account inactive", RcptClass.MAILBOX_DISABLED),
        ("552 5.2.2 <x@a.test>: Mailbox full, quota exceeded", RcptClass.MAILBOX_FULL_PERMANENT),
        (
            "552 Requested mail action aborted: exceeded storage allocation",
            RcptClass.MAILBOX_FULL_PERMANENT,
        ),
        (
            "452 4.2.2 The email account that you tried to reach is over quota.",
            RcptClass.MAILBOX_FULL_TEMPORARY,
        ),
        # Deferrals: never an answer about the mailbox.
        (
            "450 4.7.1 <x@a.test>: Recipient address rejected: Greylisted, see RFC 6647",
            RcptClass.GREYLISTED,
        ),
        ("451 4.7.1 Please try again later", RcptClass.GREYLISTED),
        ("450 Requested mail action not taken: mailbox unavailable", RcptClass.GREYLISTED),
        ("451 4.3.0 Temporary lookup failure", RcptClass.TEMPORARY_ERROR),
        (
            "450 4.1.1 <x@a.test>: Recipient address rejected: unverified address",
            RcptClass.TEMPORARY_ERROR,
        ),
        ("450 4.7.1 Error: too many recipients from [192.0.2.1]", RcptClass.RATE_LIMITED),
        ("421 4.7.0 mx.a.test Error: too many errors", RcptClass.RATE_LIMITED),
        (
            "450 4.2.1 The user you are trying to contact is receiving mail at a rate that "
            "prevents additional messages from being delivered.",
            RcptClass.RATE_LIMITED,
        ),
        # Policy and IP blame: about us, not the mailbox.
        (
            "550 5.7.1 <x@a.test>: Recipient address rejected: verification refused by policy",
            RcptClass.POLICY_BLOCK,
        ),
        ("554 5.7.1 <x@a.test>: Relay access denied", RcptClass.POLICY_BLOCK),
        ("550 Access denied", RcptClass.POLICY_BLOCK),
        ("550 User unknown; relaying denied", RcptClass.POLICY_BLOCK),
        (
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            RcptClass.IP_BLAMED,
        ),
        ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", RcptClass.IP_BLAMED),
        (
            "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]",
            RcptClass.IP_BLAMED,
        ),
        ("550 5.7.1 Your IP 192.0.2.1 is listed at bl.spamcop.net", RcptClass.IP_BLAMED),
        ("554 Rejected: reverse DNS (PTR) does not match", RcptClass.IP_BLAMED),
        (
            "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to user "
            "complaints; see Barracuda",
            RcptClass.IP_BLAMED,
        ),
        # A 5xx that names nothing: not proof.
        ("550 Requested action not taken: mailbox unavailable", RcptClass.REJECTED_UNSPECIFIED),
        ("554 5.4.1 Recipient address rejected", RcptClass.REJECTED_UNSPECIFIED),
        (
            "553 5.6.7 <jörg@a.test>: Non-ASCII address needs SMTPUTF8",
            RcptClass.REJECTED_UNSPECIFIED,
        ),
    ],
)
def test_rcpt_replies_are_classified_by_enhanced_code_then_code_then_wording(line, expected):
    assert rcpt(line) is expected


def test_not_listed_in_a_directory_is_a_missing_mailbox_not_an_ip_blocklist():
    assert rcpt("550 5.1.1 Recipient not listed in public directory") is RcptClass.MAILBOX_NOT_FOUND


@given(
    code=st.integers(400, 499),
    enhanced=st.none() | st.from_regex(r"\A[245]\.[0-9]{1,3}\.[0-9]{1,3}\Z"),
    text=st.text(max_size=80),
)
def test_no_4xx_is_ever_proof_about_the_mailbox(code, enhanced, text):
    assert classify_rcpt(Reply(code, enhanced, text)) not in PROOF_OF_ABSENCE | {
        RcptClass.ACCEPTED,
        RcptClass.MAILBOX_FULL_PERMANENT,
        RcptClass.REJECTED_UNSPECIFIED,
    }


@given(
    code=st.integers(500, 599), text=st.sampled_from(PHRASES["policy_block"] + PHRASES["ip_blamed"])
)
def test_policy_or_ip_wording_is_never_a_missing_mailbox(code, text):
    assert classify_rcpt(Reply(code, None, f"User unknown: {text}")) not in PROOF_OF_ABSENCE


@pytest.mark.parametrize("step", [Step.BANNER, Step.EHLO, Step.MAIL, Step.RSET])
def test_a_session_level_5_1_x_names_our_sender_never_a_missing_mailbox(step):
    reply = Reply(550, "5.1.0", "<probe@mailsift.test>: Sender address rejected: Domain not found")
    assert classify_session(reply, step) is RcptClass.POLICY_BLOCK


def test_421_at_the_banner_is_a_busy_server_and_later_a_pace_problem():
    busy = Reply(421, "4.3.2", "mx.a.test Service not available, closing transmission channel")
    crowded = Reply(421, "4.7.0", "mx.a.test Error: too many connections from [127.0.0.1]")
    assert classify_session(busy, Step.BANNER) is RcptClass.SERVER_BUSY
    assert classify_session(crowded, Step.BANNER) is RcptClass.RATE_LIMITED
    assert classify_session(busy, Step.MAIL) is RcptClass.RATE_LIMITED


def test_a_per_message_recipient_limit_is_told_from_a_rate_limit():
    assert is_recipient_limit(Reply(452, "4.5.3", "Error: too many recipients"))
    assert is_recipient_limit(Reply(452, None, "Too many recipients"))
    assert not is_recipient_limit(
        Reply(450, "4.7.1", "Error: too many recipients from [192.0.2.1]")
    )


def test_phrases_match_whole_words_only():
    assert says("ip_blamed", "Listed at zen.spamhaus.org")
    assert not says("ip_blamed", "superblocklistedness")
    assert not says("rate_limited", "deliberately")


def test_enhanced_codes_are_split_off_each_line_of_a_multi_line_reply():
    reply = reply_of(
        550, ["5.1.1 The email account that you tried to reach does", "5.1.1 not exist."]
    )

    assert reply == Reply(550, "5.1.1", "The email account that you tried to reach does not exist.")
    assert split_enhanced("2.1.5 Ok") == ("2.1.5", "Ok")
    assert split_enhanced("Ok 2.1.5") == (None, "Ok 2.1.5")


def test_data_and_bdat_cannot_be_written_and_no_line_carries_a_second_command():
    assert {verb.value for verb in Verb}.isdisjoint({"DATA", "BDAT"})
    with pytest.raises(ValueError):
        command_line(Verb.RCPT, "TO:<a@b.test>\r\nDATA")
    assert not is_sendable("a@b.test>\r\nDATA")
    assert not is_sendable("a b@c.test")
    assert is_sendable("jörg@b.test")
