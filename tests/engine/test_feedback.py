"""Feedback events: every supported export read into one table, and the per-address facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.feedback import (
    EVENT_TYPES,
    FEEDBACK_SCHEMA,
    feedback_facts,
    feedback_formats,
    read_feedback,
)


def _at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(batch, *columns: str) -> list[tuple]:
    return batch.events.select(columns).rows()


# --- the generic format (seed 003's field names) ---


def test_generic_csv_reads_every_event_type_with_code_message_and_time(tmp_path):
    path = _write(
        tmp_path,
        "bounces.csv",
        "email,event_type,bounce_code,bounce_message,timestamp\n"
        "user@example.com,hard_bounce,550,User unknown,2026-03-14T10:30:00Z\n"
        "ann@example.com,delivered,,,2026-03-14T10:31:00Z\n"
        'bob@example.com,soft_bounce,452,"Mailbox full, try later",2026-03-14T10:32:00Z\n'
        "cat@example.com,complaint,,,2026-03-14T10:33:00Z\n"
        "dan@example.com,unsubscribe,,,2026-03-14T10:34:00Z\n",
    )
    batch = read_feedback(path)
    assert batch.format == "generic"
    assert batch.events.schema == pl.Schema(FEEDBACK_SCHEMA)
    assert _rows(batch, "email", "event_type", "bounce_code", "bounce_message") == [
        ("user@example.com", "hard_bounce", "550", "User unknown"),
        ("ann@example.com", "delivered", None, None),
        ("bob@example.com", "soft_bounce", "452", "Mailbox full, try later"),
        ("cat@example.com", "complaint", None, None),
        ("dan@example.com", "unsubscribe", None, None),
    ]
    assert batch.events.get_column("occurred_at").to_list()[0] == _at(2026, 3, 14, 10, 30)
    assert set(batch.events.get_column("source_file")) == {"bounces.csv"}
    assert batch.report.rows_read == batch.report.events_kept == 5


def test_generic_json_body_of_the_bounce_webhook_is_read(tmp_path):
    body = {
        "events": [
            {
                "email": "user@example.com",
                "event_type": "hard_bounce",
                "bounce_code": "550",
                "bounce_message": "User unknown",
                "timestamp": "2026-03-14T10:30:00Z",
            },
            {"email": "valid@example.com", "event_type": "delivered"},
        ]
    }
    batch = read_feedback(_write(tmp_path, "webhook.json", json.dumps(body, indent=2)))
    assert batch.format == "generic"
    assert _rows(batch, "email", "event_type", "occurred_at") == [
        ("user@example.com", "hard_bounce", _at(2026, 3, 14, 10, 30)),
        ("valid@example.com", "delivered", None),
    ]
    assert batch.report.timestamps_missing == 1


def test_headers_are_matched_without_case_or_separators(tmp_path):
    path = _write(tmp_path, "export.csv", "Email,Event Type,Timestamp\nA@example.com,delivered,\n")
    assert _rows(read_feedback(path), "dedup_key", "event_type") == [("a@example.com", "delivered")]


def test_dedup_key_is_the_one_prepare_gives(tmp_path):
    path = _write(
        tmp_path,
        "feedback.csv",
        'email,event_type\n"Ann Example <Ann.Example@Bücher.DE>",hard_bounce\n',
    )
    assert _rows(read_feedback(path), "dedup_key", "email") == [
        ("ann.example@xn--bcher-kva.de", "Ann Example <Ann.Example@Bücher.DE>")
    ]


def test_parquet_with_typed_columns_is_read(tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "event_type": ["delivered", "hard_bounce"],
            "bounce_code": [None, 550],
            "timestamp": [datetime(2026, 3, 14, 12), datetime(2026, 3, 14, 13)],
        }
    ).write_parquet(path)
    batch = read_feedback(path)
    assert _rows(batch, "dedup_key", "event_type", "bounce_code", "occurred_at") == [
        ("a@example.com", "delivered", None, _at(2026, 3, 14, 12)),
        ("b@example.com", "hard_bounce", "550", _at(2026, 3, 14, 13)),
    ]


def test_events_read_back_from_their_own_table(tmp_path):
    first = read_feedback(
        _write(
            tmp_path, "a.csv", "email,event_type,timestamp\nx@example.com,delivered,1773484200\n"
        )
    )
    path = tmp_path / "history.parquet"
    first.events.write_parquet(path)
    again = read_feedback(path)
    assert again.format == "generic"
    assert again.events.drop("source_file").equals(first.events.drop("source_file"))


# --- SendGrid Event Webhook ---

SENDGRID = [
    {
        "email": "Ann@Example.com",
        "timestamp": 1773484200,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "delivered",
        "category": "newsletter",
        "sg_event_id": "sg_event_id",
        "sg_message_id": "sg_message_id",
        "response": "250 OK",
    },
    {
        "email": "bob@example.com",
        "timestamp": 1773484201,
        "event": "bounce",
        "category": ["newsletter", "march"],  # a string above, an array here
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "type": "bounce",
    },
    {
        "email": "cat@example.com",
        "timestamp": 1773484202,
        "event": "bounce",
        "reason": "550 5.7.1 Blocked by policy",
        "status": "5.7.1",
        "type": "blocked",
    },
    {"email": "dan@example.com", "timestamp": 1773484203, "event": "deferred",
     "response": "400 try again later", "attempt": "5"},
    {"email": "eve@example.com", "timestamp": 1773484204, "event": "spamreport"},
    {"email": "fay@example.com", "timestamp": 1773484205, "event": "group_unsubscribe",
     "asm_group_id": 10},
    {"email": "gus@example.com", "timestamp": 1773484206, "event": "dropped",
     "reason": "Bounced Address", "status": "5.0.0"},
    {"email": "hal@example.com", "timestamp": 1773484207, "event": "open",
     "useragent": "Mozilla/5.0", "ip": "255.255.255.255"},
    {"email": "ivy@example.com", "timestamp": 1773484208, "event": "processed"},
]  # fmt: skip


def test_sendgrid_event_webhook_maps_its_events(tmp_path):
    batch = read_feedback(_write(tmp_path, "sendgrid.json", json.dumps(SENDGRID)))
    assert batch.format == "sendgrid"
    assert _rows(batch, "dedup_key", "event_type", "bounce_code") == [
        ("ann@example.com", "delivered", None),
        ("bob@example.com", "hard_bounce", "5.1.1"),
        ("cat@example.com", "soft_bounce", "5.7.1"),  # "blocked" is SendGrid's soft bounce
        ("dan@example.com", "soft_bounce", None),
        ("eve@example.com", "complaint", None),
        ("fay@example.com", "unsubscribe", None),
        ("gus@example.com", "hard_bounce", "5.0.0"),  # dropped: on SendGrid's bounce list
    ]
    messages = batch.events.get_column("bounce_message").to_list()
    assert messages[1].startswith("550 5.1.1") and messages[3] == "400 try again later"
    assert batch.events.get_column("occurred_at").to_list()[0] == _at(2026, 3, 14, 10, 30)
    assert batch.report.ignored_event_types == {"open": 1, "processed": 1}
    assert batch.report.unknown_event_types == {}


def test_sendgrid_as_json_lines_is_the_same(tmp_path):
    lines = "\n".join(json.dumps(event) for event in SENDGRID) + "\n"
    from_lines = read_feedback(_write(tmp_path, "sendgrid.jsonl", lines))
    from_array = read_feedback(_write(tmp_path, "sendgrid.json", json.dumps(SENDGRID)))
    assert from_lines.events.drop("source_file").equals(from_array.events.drop("source_file"))


# --- Mailgun ---

MAILGUN_FAILED = {
    "id": "CPgfbmQMTCKtHW6uIWtuVe",
    "event": "failed",
    "severity": "permanent",
    "reason": "bounce",
    "recipient": "alice@example.org",
    "timestamp": 1521233123.501324,
    "log-level": "error",
    "delivery-status": {
        "attempt-no": 1,
        "code": 550,
        "message": "",
        "description": "No such user here",
        "session-seconds": 0.2,
    },
    "message": {"headers": {"to": "Alice <alice@example.org>", "subject": "Test"}},
}
MAILGUN_DELIVERED = {
    "event": "delivered",
    "recipient": "bob@example.org",
    "timestamp": 1521243339.873676,
    "delivery-status": {"code": 250, "message": "OK", "description": ""},
}
MAILGUN_TEMPORARY = {
    "event": "failed",
    "severity": "temporary",
    "reason": "generic",
    "recipient": "carol@example.org",
    "timestamp": 1521243340,
    "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"},
}


def test_mailgun_events_api_page_is_read(tmp_path):
    page = {
        "items": [MAILGUN_FAILED, MAILGUN_DELIVERED, MAILGUN_TEMPORARY],
        "paging": {"next": "https://api.mailgun.net/v3/example.org/events/W3siY"},
    }
    batch = read_feedback(_write(tmp_path, "page.json", json.dumps(page)))
    assert batch.format == "mailgun"
    assert _rows(batch, "dedup_key", "event_type", "bounce_code", "bounce_message") == [
        ("alice@example.org", "hard_bounce", "550", "No such user here"),
        ("bob@example.org", "delivered", "250", "OK"),
        ("carol@example.org", "soft_bounce", "452", "4.2.2 Mailbox full"),
    ]
    # float seconds keep their microseconds
    first = batch.events.get_column("occurred_at").to_list()[0]
    assert first == datetime(2018, 3, 16, 20, 45, 23, 501324, tzinfo=UTC)


def test_mailgun_webhook_bodies_unwrap_event_data(tmp_path):
    signature = {"timestamp": "1529006854", "token": "a8ce0edb2dd8", "signature": "d2271d12"}
    bodies = [
        {"signature": signature, "event-data": MAILGUN_FAILED},
        {"signature": signature, "event-data": {**MAILGUN_DELIVERED, "event": "complained"}},
        {
            "signature": signature,
            "event-data": {**MAILGUN_FAILED, "recipient": "dave@example.org",
                           "reason": "suppress-unsubscribe"},
        },
        {"signature": signature, "event-data": {**MAILGUN_DELIVERED, "event": "opened"}},
    ]  # fmt: skip
    lines = "\n".join(json.dumps(body) for body in bodies)
    batch = read_feedback(_write(tmp_path, "webhooks.jsonl", lines))
    assert batch.format == "mailgun"
    assert _rows(batch, "dedup_key", "event_type") == [
        ("alice@example.org", "hard_bounce"),
        ("dave@example.org", "unsubscribe"),  # Mailgun's unsubscribe list, not a bounce
        ("bob@example.org", "complaint"),
    ]
    assert batch.report.ignored_event_types == {"opened": 1}


def test_a_single_webhook_body_is_one_event(tmp_path):
    body = {"signature": {}, "event-data": MAILGUN_DELIVERED}
    batch = read_feedback(_write(tmp_path, "one.json", json.dumps(body, indent=2)))
    assert _rows(batch, "dedup_key", "event_type") == [("bob@example.org", "delivered")]


# --- Amazon SES ---

SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "feedbackId": "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "jane@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            },
            {"emailAddress": "richard@example.com", "action": "failed", "status": "5.1.1"},
        ],
        "timestamp": "2016-01-27T14:59:38.237Z",
        "reportingMTA": "dsn; a27-23.smtp-out.us-west-2.amazonses.com",
    },
    "mail": {
        "timestamp": "2016-01-27T14:59:37.000Z",
        "source": "john@example.com",
        "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination": ["jane@example.com", "richard@example.com"],
    },
}
SES_COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": "richard@example.com"}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2016-01-27T14:59:38.237Z",
    },
    "mail": {"timestamp": "2016-01-27T14:59:37.000Z", "source": "john@example.com"},
}
SES_DELIVERY = {
    "eventType": "Delivery",  # event publishing spells it eventType
    "mail": {"timestamp": "2016-01-27T14:59:37.000Z"},
    "delivery": {
        "timestamp": "2016-01-27T14:59:40.000Z",
        "processingTimeMillis": 546,
        "recipients": ["ann@example.com", "bob@example.com"],
        "smtpResponse": "250 ok:  Message 64111812 accepted",
    },
}
SES_TRANSIENT = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Transient",
        "bounceSubType": "MailboxFull",
        "bouncedRecipients": [{"emailAddress": "full@example.com", "status": "4.2.2"}],
        "timestamp": "2016-01-27T15:00:00Z",
    },
    "mail": {"timestamp": "2016-01-27T14:59:37.000Z"},
}


def test_ses_notifications_name_several_recipients(tmp_path):
    notes = [SES_BOUNCE, SES_COMPLAINT, SES_DELIVERY, SES_TRANSIENT]
    batch = read_feedback(_write(tmp_path, "ses.json", json.dumps(notes)))
    assert batch.format == "ses"
    assert batch.report.rows_read == 4
    assert batch.report.events_found == 6
    assert _rows(batch, "dedup_key", "event_type", "bounce_code", "bounce_message") == [
        ("jane@example.com", "hard_bounce", "5.1.1", "smtp; 550 5.1.1 user unknown"),
        ("richard@example.com", "hard_bounce", "5.1.1", None),
        ("richard@example.com", "complaint", None, None),
        ("ann@example.com", "delivered", None, "250 ok:  Message 64111812 accepted"),
        ("bob@example.com", "delivered", None, "250 ok:  Message 64111812 accepted"),
        ("full@example.com", "soft_bounce", "4.2.2", None),
    ]
    assert batch.events.get_column("occurred_at").to_list()[0] == datetime(
        2016, 1, 27, 14, 59, 38, 237000, tzinfo=UTC
    )


def test_ses_notifications_inside_sns_envelopes(tmp_path):
    envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Message": json.dumps(SES_BOUNCE),
        "Timestamp": "2016-01-27T14:59:38.300Z",
    }
    batch = read_feedback(_write(tmp_path, "sns.json", json.dumps(envelope)))
    assert batch.format == "ses"
    assert _rows(batch, "dedup_key", "event_type") == [
        ("jane@example.com", "hard_bounce"),
        ("richard@example.com", "hard_bounce"),
    ]


def test_ses_complaint_marked_not_spam_is_ignored_and_time_falls_back_to_the_mail(tmp_path):
    not_spam = {
        **SES_COMPLAINT,
        "complaint": {
            "complainedRecipients": [{"emailAddress": "x@example.com"}],
            "complaintFeedbackType": "not-spam",
        },
    }
    untimed = {
        **SES_COMPLAINT,
        "complaint": {"complainedRecipients": [{"emailAddress": "y@example.com"}]},
    }
    lines = f"{json.dumps(not_spam)}\n{json.dumps(untimed)}\n"
    batch = read_feedback(_write(tmp_path, "ses.jsonl", lines))
    assert _rows(batch, "dedup_key", "event_type", "occurred_at") == [
        ("y@example.com", "complaint", _at(2016, 1, 27, 14, 59, 37))
    ]
    assert batch.report.ignored_event_types == {"complaint": 1}


# --- bad and awkward input ---


def test_unknown_event_types_are_counted_per_type_not_fatal(tmp_path):
    path = _write(
        tmp_path,
        "odd.csv",
        "email,event_type\na@example.com,delivered\nb@example.com,opened\n"
        "c@example.com,opened\nd@example.com,Bounced\ne@example.com,\n",
    )
    batch = read_feedback(path)
    assert _rows(batch, "dedup_key") == [("a@example.com",)]
    assert batch.report.unknown_event_types == {"(missing)": 1, "bounced": 1, "opened": 2}


def test_a_known_event_with_an_unknown_qualifier_is_reported_with_it(tmp_path):
    event = {**MAILGUN_FAILED}
    del event["severity"]
    batch = read_feedback(_write(tmp_path, "mg.json", json.dumps([event])))
    assert batch.report.unknown_event_types == {"failed (/bounce)": 1}


def test_events_for_addresses_never_verified_are_kept(tmp_path):
    # Reading knows nothing of history: an address is joined to verdicts later, or not at all.
    path = _write(tmp_path, "f.csv", "email,event_type\nnever.seen@example.com,hard_bounce\n")
    facts = feedback_facts(read_feedback(path).events)
    verdicts = pl.DataFrame({"dedup_key": ["known@example.com"], "status": ["valid"]})
    joined = verdicts.join(facts, on="dedup_key", how="left")
    assert facts.get_column("dedup_key").to_list() == ["never.seen@example.com"]
    assert joined.get_column("hard_bounces").to_list() == [None]


def test_rows_without_a_usable_address_are_counted(tmp_path):
    path = _write(
        tmp_path,
        "f.csv",
        "email,event_type\n,delivered\nnot an address,delivered\n@example.com,delivered\n"
        "ok@example.com,delivered\n",
    )
    batch = read_feedback(path)
    assert _rows(batch, "dedup_key") == [("ok@example.com",)]
    assert batch.report.rows_without_address == 3


def test_duplicate_events_are_dropped_once_per_key_type_and_time(tmp_path):
    path = _write(
        tmp_path,
        "f.csv",
        "email,event_type,timestamp\n"
        "ann@example.com,hard_bounce,2026-03-14T10:00:00Z\n"
        "ANN@example.com,hard_bounce,2026-03-14T11:00:00+01:00\n"  # same key, same instant
        "ann@example.com,hard_bounce,2026-03-15T10:00:00Z\n"  # another bounce
        "ann@example.com,delivered,2026-03-14T10:00:00Z\n",  # another type
    )
    batch = read_feedback(path)
    assert batch.report.duplicates_dropped == 1
    assert _rows(batch, "email", "event_type") == [
        ("ann@example.com", "hard_bounce"),
        ("ann@example.com", "delivered"),
        ("ann@example.com", "hard_bounce"),
    ]


def test_events_out_of_order_come_out_sorted_with_untimed_last(tmp_path):
    path = _write(
        tmp_path,
        "f.csv",
        "email,event_type,timestamp\nc@example.com,delivered,\n"
        "b@example.com,delivered,2026-03-15T00:00:00Z\na@example.com,delivered,2026-03-14T00:00:00Z\n",
    )
    assert _rows(read_feedback(path), "dedup_key") == [
        ("a@example.com",),
        ("b@example.com",),
        ("c@example.com",),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-14T10:30:00Z", _at(2026, 3, 14, 10, 30)),
        ("2026-03-14T10:30:00.250Z", datetime(2026, 3, 14, 10, 30, 0, 250000, tzinfo=UTC)),
        ("2026-03-14T11:30:00+01:00", _at(2026, 3, 14, 10, 30)),
        ("2026-03-14T05:30:00-0500", _at(2026, 3, 14, 10, 30)),
        ("2026-03-14T10:30:00", _at(2026, 3, 14, 10, 30)),  # no zone: UTC
        ("2026-03-14 10:30:00", _at(2026, 3, 14, 10, 30)),
        ("2026-03-14", _at(2026, 3, 14)),
        ("1773484200", _at(2026, 3, 14, 10, 30)),  # unix seconds
        ("1773484200.5", datetime(2026, 3, 14, 10, 30, 0, 500000, tzinfo=UTC)),
        ("1773484200000", _at(2026, 3, 14, 10, 30)),  # unix milliseconds
        ("Sat, 14 Mar 2026 10:30:00 +0000", _at(2026, 3, 14, 10, 30)),  # RFC 2822
        ("Mon, 14 Mar 2026 10:30:00 +0000", _at(2026, 3, 14, 10, 30)),  # wrong day name
        ("14 Mar 2026 05:30:00 EST", _at(2026, 3, 14, 10, 30)),
        ("Sat, 14 Mar 2026 10:30:00 +0000 (UTC)", _at(2026, 3, 14, 10, 30)),
        ("14 Mar 2026 10:30 GMT", _at(2026, 3, 14, 10, 30)),
    ],
)
def test_timestamp_formats(tmp_path, text, expected):
    path = _write(
        tmp_path, "f.csv", f'email,event_type,timestamp\na@example.com,delivered,"{text}"\n'
    )
    batch = read_feedback(path)
    assert batch.events.get_column("occurred_at").to_list() == [expected]
    assert batch.report.timestamps_unparsable == 0


def test_missing_and_unparsable_timestamps_keep_the_event_and_are_counted(tmp_path):
    path = _write(
        tmp_path,
        "f.csv",
        "email,event_type,timestamp\na@example.com,delivered,\nb@example.com,delivered,yesterday\n"
        "c@example.com,delivered,2026-13-45T99:00:00Z\n",
    )
    batch = read_feedback(path)
    assert batch.events.get_column("occurred_at").to_list() == [None, None, None]
    assert batch.report.timestamps_missing == 1
    assert batch.report.timestamps_unparsable == 2


def test_numeric_json_timestamps_in_seconds_and_milliseconds(tmp_path):
    events = [
        {"email": "a@example.com", "event_type": "delivered", "timestamp": 1773484200},
        {"email": "b@example.com", "event_type": "delivered", "timestamp": 1773484200123},
    ]
    batch = read_feedback(_write(tmp_path, "f.json", json.dumps(events)))
    assert batch.events.get_column("occurred_at").to_list() == [
        _at(2026, 3, 14, 10, 30),
        datetime(2026, 3, 14, 10, 30, 0, 123000, tzinfo=UTC),
    ]


@pytest.mark.parametrize("content", ["", "\n", "[]", '{"events": []}'])
def test_a_file_without_records_gives_no_events(tmp_path, content):
    batch = read_feedback(_write(tmp_path, "empty.json", content))
    assert batch.events.is_empty()
    assert batch.events.schema == pl.Schema(FEEDBACK_SCHEMA)
    assert batch.report.rows_read == batch.report.events_kept == 0


def test_a_header_only_csv_gives_no_events_and_its_format(tmp_path):
    batch = read_feedback(_write(tmp_path, "h.csv", "email,event_type,timestamp\n"))
    assert batch.format == "generic" and batch.events.is_empty()


def test_a_file_without_an_address_column_is_a_one_line_error_naming_it(tmp_path):
    path = _write(tmp_path, "no-address.csv", "event_type,timestamp\ndelivered,1773484200\n")
    with pytest.raises(InputError) as caught:
        read_feedback(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "address" in message


def test_a_forced_format_whose_address_column_is_missing_says_so(tmp_path):
    path = _write(tmp_path, "f.csv", "email,event\na@example.com,delivered\n")
    with pytest.raises(InputError, match="no address column"):
        read_feedback(path, format="mailgun")


def test_a_forced_format_overrides_detection(tmp_path):
    path = _write(tmp_path, "f.csv", "email,event,event_type\na@example.com,bounce,delivered\n")
    assert _rows(read_feedback(path), "event_type") == [("hard_bounce",)]  # as SendGrid
    assert _rows(read_feedback(path, format="generic"), "event_type") == [("delivered",)]


def test_a_mailgun_csv_without_the_reason_column_still_maps_severity(tmp_path):
    path = _write(tmp_path, "f.csv", "recipient,event,severity\na@example.com,failed,permanent\n")
    batch = read_feedback(path)
    assert batch.format == "mailgun"
    assert _rows(batch, "event_type") == [("hard_bounce",)]


def test_an_unknown_format_name_is_an_input_error(tmp_path):
    path = _write(tmp_path, "f.csv", "email,event_type\n")
    with pytest.raises(InputError, match="unknown feedback format 'postmark'"):
        read_feedback(path, format="postmark")


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_feedback(tmp_path / "absent.csv")


def test_invalid_json_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not valid JSON"):
        read_feedback(_write(tmp_path, "bad.json", '[{"email": "a@example.com", '))


def test_a_latin1_csv_is_read_through_ingests_encoding_handling(tmp_path):
    path = tmp_path / "latin1.csv"
    header = "email,event_type,bounce_message\n"
    row = "a@example.com,hard_bounce,Adresse inconnue à ce domaine\n"
    path.write_bytes((header + row).encode("latin-1"))
    batch = read_feedback(path)
    assert _rows(batch, "bounce_message") == [("Adresse inconnue à ce domaine",)]
    assert batch.report.warnings  # says which line was read as Latin-1


def test_the_formats_table_maps_only_to_our_event_types():
    for feedback_format in feedback_formats():
        assert feedback_format.detect and "email" in feedback_format.fields
        for _, _, ours in feedback_format.events:
            assert ours is None or ours in EVENT_TYPES


def test_every_event_found_is_kept_or_counted_once(tmp_path):
    batch = read_feedback(_write(tmp_path, "sendgrid.json", json.dumps(SENDGRID * 2)))
    report = batch.report
    assert report.events_found == (
        report.events_kept
        + sum(report.unknown_event_types.values())
        + sum(report.ignored_event_types.values())
        + report.rows_without_address
        + report.duplicates_dropped
    )


# --- per-address facts ---


def test_feedback_facts_summarise_each_address():
    events = pl.DataFrame(
        {
            "dedup_key": ["a@x.com"] * 5 + ["b@x.com"] * 2,
            "event_type": [
                "delivered",
                "hard_bounce",
                "hard_bounce",
                "soft_bounce",
                "complaint",
                "delivered",
                "unsubscribe",
            ],
            "occurred_at": [
                _at(2026, 1, 1),
                _at(2026, 2, 1),
                _at(2026, 3, 1),
                _at(2026, 1, 5),
                _at(2026, 1, 6),
                None,
                _at(2026, 1, 7),
            ],
        },
        schema_overrides={"occurred_at": pl.Datetime("us", "UTC")},
    )
    facts = feedback_facts(events).sort("dedup_key")
    assert facts.to_dicts() == [
        {
            "dedup_key": "a@x.com",
            "last_hard_bounce_at": _at(2026, 3, 1),
            "last_delivered_at": _at(2026, 1, 1),
            "last_soft_bounce_at": _at(2026, 1, 5),
            "complained": True,
            "unsubscribed": False,
            "hard_bounces": 2,
            "deliveries": 1,
        },
        {
            "dedup_key": "b@x.com",
            "last_hard_bounce_at": None,
            "last_delivered_at": None,  # delivered, but when is unknown
            "last_soft_bounce_at": None,
            "complained": False,
            "unsubscribed": True,
            "hard_bounces": 0,
            "deliveries": 1,
        },
    ]


def test_feedback_facts_of_no_events_is_empty_with_its_columns():
    facts = feedback_facts(pl.DataFrame(schema=FEEDBACK_SCHEMA))
    assert facts.is_empty()
    assert facts.columns == [
        "dedup_key", "last_hard_bounce_at", "last_delivered_at", "last_soft_bounce_at",
        "complained", "unsubscribed", "hard_bounces", "deliveries",
    ]  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda moment: moment.replace(microsecond=0)),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
)
def test_every_timestamp_spelling_of_one_instant_parses_to_it(
    tmp_path_factory, moment, offset_minutes
):
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    spellings = [
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        local.isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        str(int(moment.timestamp())),
        str(int(moment.timestamp()) * 1000),
        format_datetime(local),  # RFC 2822, as email.utils writes it
    ]
    rows = "".join(f'a{n}@example.com,delivered,"{text}"\n' for n, text in enumerate(spellings))
    path = tmp_path_factory.mktemp("t") / "f.csv"
    path.write_text("email,event_type,timestamp\n" + rows)
    assert set(read_feedback(path).events.get_column("occurred_at").to_list()) == {moment}
