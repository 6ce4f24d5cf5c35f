"""Read what happened to mail the user sent (bounces, deliveries, complaints) as one event table.

Every provider reports the same few facts under its own names, so the mapping of each export
format is data (`engine/data/feedback_formats.csv`); code is only for shapes a mapping cannot
express: Amazon SES names several recipients in one notification, in a list that depends on its
type, and may arrive inside an SNS envelope. Formats read (detected from the columns when not
given):

- `generic`: seed 003's bounce webhook fields `email, event_type, bounce_code, bounce_message,
  timestamp` (event types spelled as ours), also as the body `{"events": [...]}`.
- `sendgrid`: SendGrid's Event Webhook POST body (an array of events: `email`, `event`, `type`,
  `status`, `reason`/`response`, `timestamp`).
- `mailgun`: Mailgun's events API items (`event`, `severity`, `recipient`, `timestamp`,
  `delivery-status`), a whole API page `{"items": [...]}`, or webhook bodies (`event-data`).
- `ses`: Amazon SES notifications (`notificationType`) or event publishing records
  (`eventType`), bare or as the `Message` of an SNS notification.

Any of them as CSV, a JSON array or single object, JSON Lines or Parquet. Timestamps may be ISO
8601 (a time without a zone is taken as UTC), unix seconds or milliseconds (numbers below 1e11
are seconds, year 5138 being far enough), or RFC 2822 dates. Events come out sorted by time.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import polars as pl
from polars.exceptions import PanicException, PolarsError

from engine.encoding import HEAD_BYTES, UTF8_BOM, NotUtf8Error, read_as_utf8
from engine.errors import InputError
from engine.ingest import (  # private helpers: see _read_records
    JSON_MAX_DEPTH,
    _choose_format,
    _json_deeper_than,
    _listing,
    _read_csv,
    _read_parquet,
)
from engine.prepare import normalise
from engine.schema import DEDUP_KEY, DOMAIN, EMAIL_RAW, LOCAL_PART

EVENT_TYPES: Final = ("delivered", "hard_bounce", "soft_bounce", "complaint", "unsubscribe")
DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT, UNSUBSCRIBE = EVENT_TYPES

FEEDBACK_SCHEMA: Final[dict[str, pl.DataType]] = {
    DEDUP_KEY: pl.String(),  # engine.prepare's key, so events join verdicts
    "email": pl.String(),  # the address as the provider gave it
    "event_type": pl.String(),  # one of EVENT_TYPES
    "bounce_code": pl.String(),  # "550" or "5.1.1", as given
    "bounce_message": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),  # null when missing or unparsable
    "source_format": pl.String(),  # a format name of feedback_formats.csv
    "source_file": pl.String(),  # the file's name
}

FORMATS_FILE: Final = "feedback_formats.csv"
FIELDS: Final = ("email", "event", "qualifier", "bounce_code", "bounce_message", "timestamp")
QUALIFIER_SEPARATOR: Final = "/"
# JSON bodies that wrap their records in one object: seed 003's bounce webhook ({"events": [...]})
# and a page of Mailgun's events API ({"items": [...], "paging": {...}}).
ENVELOPE_KEYS: Final = ("events", "items")
# An SNS notification (Amazon SNS message format) carries the SES notification as a JSON string.
SNS_KEYS: Final = ("Type", "Message")

# Unix time: below 1e11 it is seconds (until year 5138), below 1e14 milliseconds, else micro.
EPOCH_SECONDS_BELOW: Final = 1e11
EPOCH_MILLISECONDS_BELOW: Final = 1e14
# ISO 8601 / RFC 3339 after _iso_text(): "T" between date and time, "Z" as "+00:00".
ISO_ZONED_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")
ISO_NAIVE_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
# RFC 2822 §3.3 after _rfc2822_text(): the day name is dropped (chrono rejects a wrong one, and it
# carries nothing the date does not), seconds are optional.
RFC2822_FORMATS: Final = ("%d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M %z")
# RFC 2822 §4.3 obsolete zone names.
RFC2822_ZONES: Final = {
    "UT": "+0000", "GMT": "+0000", "UTC": "+0000", "Z": "+0000",
    "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
    "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}  # fmt: skip

_KEEP, _IGNORED, _UNKNOWN = "keep", "ignored", "unknown"
_UTC: Final = pl.Datetime("us", "UTC")
_NO_EVENT_LABEL: Final = "(missing)"


# --- the formats table ---


@dataclass(frozen=True)
class FeedbackFormat:
    """One export format: how to recognise it and where each of our fields lives in it."""

    name: str
    title: str
    detect: tuple[tuple[str, ...], ...]  # alternatives, each a set of keys that must all exist
    unwrap: str | None  # an object whose fields win over the top-level ones
    fields: dict[str, tuple[str, ...]]  # ours -> the provider's paths, in preference order
    events: tuple[tuple[str, str, str | None], ...]  # (event, qualifier pattern, our type)


@functools.cache
def feedback_formats() -> tuple[FeedbackFormat, ...]:
    """The formats of feedback_formats.csv, in detection order."""
    text = resources.files("engine.data").joinpath(FORMATS_FILE).read_text(encoding="utf-8")
    table = pl.read_csv(
        io.StringIO(text),
        comment_prefix="#",
        schema={name: pl.String() for name in ("format", "entry", "name", "value", "event_type")},
    )
    formats = []
    for (name,), rows in table.group_by("format", maintain_order=True):
        entries = rows.to_dicts()

        def values(entry: str, rows: list[dict[str, Any]] = entries) -> list[dict[str, Any]]:
            return [row for row in rows if row["entry"] == entry]

        unwraps = [row["value"] for row in values("unwrap")]
        fields = {row["name"]: tuple(row["value"].split()) for row in values("field")}
        if unknown := set(fields) - set(FIELDS):
            raise ValueError(f"{FORMATS_FILE}: {name} maps unknown fields {sorted(unknown)}")
        formats.append(
            FeedbackFormat(
                name=str(name),
                title=next((row["value"] for row in values("title")), str(name)),
                detect=tuple(tuple(row["value"].split()) for row in values("detect")),
                unwrap=unwraps[0] if unwraps else None,
                fields=fields,
                events=tuple(
                    (row["name"].lower(), (row["value"] or "*").lower(), row["event_type"])
                    for row in values("event")
                ),
            )
        )
    return tuple(formats)


def _format_named(name: str, path: Path) -> FeedbackFormat:
    for candidate in feedback_formats():
        if candidate.name == name.lower():
            return candidate
    names = ", ".join(f.name for f in feedback_formats())
    raise InputError(f"unknown feedback format {name!r} (expected one of: {names})", path=path)


def _key(name: str) -> str:
    """`Event Type`, `event_type` and `eventType` name the same field (as ingest compares)."""
    return name.replace(" ", "").replace("_", "").replace("-", "").casefold()


def _find_key(keys: Iterable[str], wanted: str) -> str | None:
    if wanted in keys:
        return wanted
    return next((key for key in keys if _key(key) == _key(wanted)), None)


def _detect(keys: Sequence[str], path: Path) -> FeedbackFormat:
    for candidate in feedback_formats():
        for required in candidate.detect:
            if all(_find_key(keys, key) is not None for key in required):
                return candidate
    expected = "; ".join(
        f"{f.name}: {' or '.join(' + '.join(required) for required in f.detect)}"
        for f in feedback_formats()
    )
    shown = _listing(list(keys))  # a name may hold a line break: the error stays one line
    raise InputError(
        f"no address column with an event column of a known feedback export (columns: {shown};"
        f" expected {expected})",
        path=path,
    )


# --- reading a file into records ---


@dataclass(frozen=True)
class FeedbackReport:
    """What reading a feedback file found; every event found is kept or counted once below."""

    rows_read: int  # records in the file (an SES notification may name several recipients)
    events_found: int  # one per recipient of a record
    events_kept: int
    unknown_event_types: dict[str, int]  # raw type -> count: not in the mapping (a mapping gap?)
    ignored_event_types: dict[str, int]  # raw type -> count: known, not about deliverability
    rows_without_address: int
    duplicates_dropped: int  # same dedup_key, event_type and occurred_at as an earlier event
    timestamps_unparsable: int  # kept, with occurred_at null
    timestamps_missing: int  # kept, with occurred_at null
    warnings: tuple[str, ...] = field(default=())  # e.g. lines read as Latin-1


@dataclass(frozen=True)
class FeedbackBatch:
    """One file's events, ready to append to history/feedback/, and what reading them found."""

    source: Path
    format: str | None  # None only for a file without records
    events: pl.DataFrame  # FEEDBACK_SCHEMA, sorted by occurred_at (nulls last)
    report: FeedbackReport


def read_feedback(path: Path | str, format: str | None = None) -> FeedbackBatch:
    """Read a provider's event export; `format` (a name of feedback_formats.csv) skips detection."""
    source = Path(path)
    chosen = _format_named(format, source) if format is not None else None
    if source.is_dir():
        raise InputError("is a directory, not a feedback file", path=source)
    try:
        size = source.stat().st_size
    except FileNotFoundError as error:
        raise InputError("no such file", path=source) from error
    with source.open("rb") as file:
        head = file.read(HEAD_BYTES)
    if size <= HEAD_BYTES and not head.removeprefix(UTF8_BOM).strip():
        return _empty_batch(source, chosen, (f"{source}: the file is empty: no events",))
    records, detected, warnings = _read_records(source, head, chosen)
    if detected is None:
        return _empty_batch(source, chosen, warnings)
    rows_read = records.height
    if detected.name == "ses":
        records = _flatten_ses(records)
    return _events(records, rows_read, detected, source, warnings)


def _empty_batch(
    source: Path, chosen: FeedbackFormat | None, warnings: tuple[str, ...]
) -> FeedbackBatch:
    report = FeedbackReport(0, 0, 0, {}, {}, 0, 0, 0, 0, warnings)
    name = chosen.name if chosen else None
    return FeedbackBatch(source, name, pl.DataFrame(schema=FEEDBACK_SCHEMA), report)


def _read_records(
    source: Path, head: bytes, chosen: FeedbackFormat | None
) -> tuple[pl.DataFrame, FeedbackFormat | None, tuple[str, ...]]:
    """The file's records and their format; (empty, None, ...) for JSON without records.

    CSV and Parquet go through ingest's readers as they are (encodings, CSV quoting repair);
    they are private there only because a list file must have an email column chosen, which
    a feedback file does not. JSON needs a reader of its own (see _read_json).
    """
    kind, delimiter = _choose_format(source, head, None)
    if kind == "parquet":
        frame = _unwrap_sns(_read_parquet(source), source)
        return frame, chosen or _detect(frame.columns, source), ()
    if kind in ("csv", "txt"):
        (frame, _, read_warnings), encoding = read_as_utf8(
            source, lambda text: _read_csv(text, source, delimiter)
        )
        frame = _unwrap_sns(frame, source)
        return frame, chosen or _detect(frame.columns, source), encoding.warnings + read_warnings
    (frame, detected), encoding = read_as_utf8(
        source, lambda text: _read_json(text, source, chosen)
    )
    return frame, detected, encoding.warnings


def _read_json(
    text: Path, source: Path, chosen: FeedbackFormat | None
) -> tuple[pl.DataFrame, FeedbackFormat | None]:
    """Records of a JSON array, a single object, an envelope object, or JSON Lines.

    Providers add fields of their own that change type between events (SendGrid's `category`
    is a string or an array), so records are read with a schema of only the fields the format
    uses, all text, which Polars fills from whatever type the JSON holds.
    """
    data = text.read_bytes().removeprefix(UTF8_BOM)
    try:
        document = data.decode()
    except UnicodeDecodeError as error:
        raise NotUtf8Error from error
    # Python's decoder below raised RecursionError on deep nesting, and Polars has crashed on it
    # (see ingest.JSON_MAX_DEPTH; found by tests/engine/test_fuzz_inputs.py).
    if _json_deeper_than(data, JSON_MAX_DEPTH):
        problem = f"JSON nested more than {JSON_MAX_DEPTH} levels deep; no provider's events are"
        raise InputError(problem, path=source)
    body = document.strip()
    decoder = json.JSONDecoder()
    lines = False  # JSON Lines, else an array (a single object is made one)
    try:
        if body.startswith("["):
            rest = body[1:].lstrip()
            if rest.startswith("]"):
                return pl.DataFrame(), None
            first = decoder.raw_decode(rest)[0]
        elif body.startswith("{"):
            first, end = decoder.raw_decode(body)
            lines = bool(body[end:].strip())
            envelope = next((k for k in ENVELOPE_KEYS if isinstance(first.get(k), list)), None)
            if not lines and envelope is not None:
                records = first[envelope]
                if not records:
                    return pl.DataFrame(), None
                first, data = records[0], json.dumps(records).encode()
            elif not lines:
                data = b"[" + data + b"]"
        else:
            raise InputError("expected a JSON array, object or JSON Lines", path=source)
    except (ValueError, RecursionError) as error:  # RecursionError: deep, cut short, so past it
        raise InputError(f"not valid JSON ({error})", path=source) from error
    if not isinstance(first, dict):
        raise InputError("the JSON records are not objects", path=source)
    sns = all(key in first for key in SNS_KEYS)
    detected = chosen or (_format_named("ses", source) if sns else _detect(list(first), source))
    schema = _json_schema(detected, list(first), sns)
    try:
        read = pl.read_ndjson if lines else pl.read_json
        frame = read(data, schema=schema)
    except (PolarsError, PanicException) as error:
        problem = str(error).strip().splitlines()[0][:200] if str(error).strip() else "?"
        raise InputError(f"not readable as JSON records ({problem})", path=source) from error
    return _unwrap_sns(frame, source), detected


def _json_schema(
    chosen: FeedbackFormat, first_keys: list[str], sns: bool
) -> dict[str, pl.DataType]:
    """The fields `chosen` uses, as text, spelled as the first record spells its keys."""
    if sns:
        return {key: pl.String() for key in SNS_KEYS}
    if chosen.name == "ses":
        return dict(SES_SCHEMA)
    tree: dict[str, Any] = {}
    for paths in chosen.fields.values():
        for path in paths:
            node = tree
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node.setdefault(leaf, None)
    if chosen.unwrap is not None:
        tree = {**tree, chosen.unwrap: {k: v for k, v in tree.items() if k != chosen.unwrap}}

    def dtype(node: dict[str, Any] | None) -> pl.DataType:
        if node is None:
            return pl.String()
        return pl.Struct({name: dtype(child) for name, child in node.items()})

    return {_find_key(first_keys, name) or name: dtype(child) for name, child in tree.items()}


# --- Amazon SES: one notification, several recipients ---

_RECIPIENT: Final = pl.Struct(
    {"emailAddress": pl.String(), "status": pl.String(), "diagnosticCode": pl.String()}
)
_TIMESTAMPED: Final = {"timestamp": pl.String()}
# The parts of an SES notification mailsift uses (SES Developer Guide, "Contents of
# notifications" and "Contents of event data"); the rest of it is left unread.
SES_SCHEMA: Final[dict[str, pl.DataType]] = {
    "notificationType": pl.String(),
    "eventType": pl.String(),
    "mail": pl.Struct(_TIMESTAMPED),
    "bounce": pl.Struct(
        {"bounceType": pl.String(), **_TIMESTAMPED, "bouncedRecipients": pl.List(_RECIPIENT)}
    ),
    "complaint": pl.Struct(
        {
            "complaintFeedbackType": pl.String(),
            **_TIMESTAMPED,
            "complainedRecipients": pl.List(_RECIPIENT),
        }
    ),
    "delivery": pl.Struct(
        {**_TIMESTAMPED, "smtpResponse": pl.String(), "recipients": pl.List(pl.String())}
    ),
    "deliveryDelay": pl.Struct({**_TIMESTAMPED, "delayedRecipients": pl.List(_RECIPIENT)}),
}
# notification type (lower case) -> (its object, the list naming its recipients)
SES_RECIPIENT_LISTS: Final = {
    "bounce": ("bounce", "bouncedRecipients"),
    "complaint": ("complaint", "complainedRecipients"),
    "delivery": ("delivery", "recipients"),
    "deliverydelay": ("deliveryDelay", "delayedRecipients"),
}


def _unwrap_sns(frame: pl.DataFrame, source: Path) -> pl.DataFrame:
    """SES notifications delivered through SNS: decode each envelope's `Message`."""
    if not all(key in frame.columns for key in SNS_KEYS) or frame.schema["Message"] != pl.String:
        return frame
    try:
        messages = frame.get_column("Message").str.json_decode(pl.Struct(SES_SCHEMA))
    except (PolarsError, PanicException) as error:
        raise InputError("an SNS Message is not a JSON notification", path=source) from error
    return messages.struct.unnest()


def _flatten_ses(notifications: pl.DataFrame) -> pl.DataFrame:
    """One row per recipient: event, qualifier, recipient, status, message, timestamp.

    A notification without recipients keeps one row (recipient null), so it is counted.
    """
    schema = notifications.schema
    kind = pl.coalesce(_field(schema, "notificationType"), _field(schema, "eventType"))
    recipients = pl.lit(None, dtype=pl.List(_RECIPIENT))
    for name, (part, listing) in SES_RECIPIENT_LISTS.items():
        listed = _recipient_list(schema, f"{part}.{listing}")
        if listed is not None:
            recipients = pl.when(kind.str.to_lowercase() == name).then(listed).otherwise(recipients)
    parts = [part for part, _ in SES_RECIPIENT_LISTS.values()]
    return (
        notifications.select(
            kind.alias("event"),
            pl.coalesce(
                _field(schema, "bounce.bounceType"),
                _field(schema, "complaint.complaintFeedbackType"),
            ).alias("qualifier"),
            pl.coalesce(
                *(_field(schema, f"{part}.timestamp") for part in parts),
                _field(schema, "mail.timestamp"),
            ).alias("timestamp"),
            _field(schema, "delivery.smtpResponse").alias("_response"),
            recipients.alias("_recipient"),
        )
        .explode("_recipient", empty_as_null=True, keep_nulls=True)
        .select(
            "event",
            "qualifier",
            pl.col("_recipient").struct.field("emailAddress").alias("recipient"),
            pl.col("_recipient").struct.field("status").alias("status"),
            pl.coalesce(
                pl.col("_recipient").struct.field("diagnosticCode"), pl.col("_response")
            ).alias("message"),
            "timestamp",
        )
    )


def _recipient_list(schema: pl.Schema, path: str) -> pl.Expr | None:
    """The list at `path` as a list of _RECIPIENT structs, whatever its elements are."""
    dtype = _dtype(schema, path)
    if not isinstance(dtype, pl.List):
        return None
    inner, element = dtype.inner, pl.element()
    if isinstance(inner, pl.Struct):
        present = dict(inner.to_schema())
        parts = [
            element.struct.field(name).cast(pl.String)
            if (name := _find_key(present, wanted)) is not None
            else pl.lit(None, dtype=pl.String)
            for wanted in _RECIPIENT.to_schema()
        ]
    else:  # delivery.recipients lists bare addresses
        parts = [element.cast(pl.String), pl.lit(None, pl.String), pl.lit(None, pl.String)]
    names = list(_RECIPIENT.to_schema())
    return _field(schema, path).list.eval(
        pl.struct(part.alias(name) for part, name in zip(parts, names, strict=True))
    )


# --- from records to events ---


def _dtype(schema: pl.Schema, path: str) -> pl.DataType | None:
    """The type at `path` ("a.b" into structs; keys compared as _key does), None if absent."""
    fields: dict[str, pl.DataType] = dict(schema)
    dtype: pl.DataType | None = None
    for part in path.split("."):
        name = _find_key(fields, part)
        if name is None:
            return None
        dtype = fields[name]
        fields = dict(dtype.to_schema()) if isinstance(dtype, pl.Struct) else {}
    return dtype


def _field(schema: pl.Schema, path: str) -> pl.Expr:
    """The column at `path`, or a typed null when the file has no such field."""
    fields: dict[str, pl.DataType] = dict(schema)
    expr: pl.Expr | None = None
    for part in path.split("."):
        name = _find_key(fields, part)
        if name is None:
            return pl.lit(None, dtype=pl.String)
        expr = pl.col(name) if expr is None else expr.struct.field(name)
        dtype = fields[name]
        fields = dict(dtype.to_schema()) if isinstance(dtype, pl.Struct) else {}
    assert expr is not None
    return expr


def _path(
    schema: pl.Schema, chosen: FeedbackFormat, path: str
) -> tuple[pl.Expr, pl.DataType] | None:
    """One provider path as (expression, type), inside `chosen.unwrap` first; None if absent."""
    candidates = [f"{chosen.unwrap}.{path}", path] if chosen.unwrap else [path]
    present = [
        (_field(schema, candidate), dtype)
        for candidate in candidates
        if (dtype := _dtype(schema, candidate)) is not None
        and not isinstance(dtype, pl.Struct | pl.List)
    ]
    if len(present) == 2 and present[0][1] == present[1][1]:  # records of either shape
        return pl.coalesce(present[0][0], present[1][0]), present[0][1]
    return present[0] if present else None


def _paths(
    schema: pl.Schema, chosen: FeedbackFormat, name: str
) -> list[tuple[pl.Expr, pl.DataType]]:
    """The paths of our field `name` that the file has, in preference order."""
    found = (_path(schema, chosen, path) for path in chosen.fields.get(name, ()))
    return [path for path in found if path is not None]


def _qualifier(schema: pl.Schema, chosen: FeedbackFormat) -> pl.Expr:
    """The qualifier fields joined by "/", lower case; an absent field keeps its place empty."""
    parts = [
        _text(found[0]).fill_null("") if found is not None else pl.lit("")
        for found in (_path(schema, chosen, path) for path in chosen.fields.get("qualifier", ()))
    ]
    if not parts:
        return pl.lit("")
    return pl.concat_str(parts, separator=QUALIFIER_SEPARATOR).str.to_lowercase()


def _text(expr: pl.Expr) -> pl.Expr:
    """As text, trimmed; empty text is no value."""
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text != "").then(text)


def _first_text(schema: pl.Schema, chosen: FeedbackFormat, name: str) -> pl.Expr:
    found = [_text(expr) for expr, _ in _paths(schema, chosen, name)]
    return pl.coalesce(found) if found else pl.lit(None, dtype=pl.String)


def _events(
    records: pl.DataFrame,
    rows_read: int,
    chosen: FeedbackFormat,
    source: Path,
    warnings: tuple[str, ...],
) -> FeedbackBatch:
    """Map, classify, normalise, deduplicate and sort; count what is not kept."""
    schema = records.schema
    if not _paths(schema, chosen, "email"):
        expected = " or ".join(chosen.fields.get("email", ()))
        raise InputError(f"no address column ({expected}) for {chosen.title}", path=source)
    raw_event = _first_text(schema, chosen, "event").str.to_lowercase()
    occurred_at, has_time = _occurred_at(records, _paths(schema, chosen, "timestamp"))
    found = records.select(
        _first_text(schema, chosen, "email").alias("email"),
        raw_event.alias("_raw_event"),
        _qualifier(schema, chosen).alias("_qualifier"),
        _first_text(schema, chosen, "bounce_code").alias("bounce_code"),
        _first_text(schema, chosen, "bounce_message").alias("bounce_message"),
        pl.lit(occurred_at).alias("occurred_at"),
        pl.lit(has_time).alias("_has_time"),
    ).with_columns(_classify(chosen))
    counted = found.filter(pl.col("_fate") != _KEEP)
    unknown = _type_counts(counted, _UNKNOWN, chosen)
    ignored = _type_counts(counted, _IGNORED, chosen)
    wanted = normalise(
        found.filter(pl.col("_fate") == _KEEP).with_columns(pl.col("email").alias(EMAIL_RAW))
    )
    usable = (pl.col(LOCAL_PART).str.len_bytes() > 0) & (pl.col(DOMAIN).str.len_bytes() > 0)
    addressed = wanted.filter(usable.fill_null(False))
    events = (
        addressed.unique(
            [DEDUP_KEY, "event_type", "occurred_at"], keep="first", maintain_order=True
        )
        .sort("occurred_at", nulls_last=True, maintain_order=True)
        .with_columns(
            source_format=pl.lit(chosen.name), source_file=pl.lit(source.name, dtype=pl.String)
        )
    )
    report = FeedbackReport(
        rows_read=rows_read,
        events_found=found.height,
        events_kept=events.height,
        unknown_event_types=unknown,
        ignored_event_types=ignored,
        rows_without_address=wanted.height - addressed.height,
        duplicates_dropped=addressed.height - events.height,
        timestamps_unparsable=events.filter(
            pl.col("_has_time") & pl.col("occurred_at").is_null()
        ).height,
        timestamps_missing=events.filter(~pl.col("_has_time")).height,
        warnings=warnings,
    )
    return FeedbackBatch(
        source,
        chosen.name,
        events.select(pl.col(name).cast(dtype) for name, dtype in FEEDBACK_SCHEMA.items()),
        report,
    )


def _classify(chosen: FeedbackFormat) -> list[pl.Expr]:
    """`event_type` and `_fate` (keep, ignored, unknown) from the format's event rows, in order."""
    event, qualifier = pl.col("_raw_event"), pl.col("_qualifier")
    chain: Any = pl
    for raw, pattern, ours in chosen.events:
        if pattern == "*":
            matches = event == raw
        elif pattern.endswith("*"):
            matches = (event == raw) & qualifier.str.starts_with(pattern[:-1])
        else:
            matches = (event == raw) & (qualifier == pattern)
        chain = chain.when(matches).then(pl.lit(ours or "", dtype=pl.String))
    mapped = chain.otherwise(pl.lit(None, dtype=pl.String)) if chosen.events else pl.lit(None)
    return [
        pl.when(mapped != "").then(mapped).alias("event_type"),
        pl.when(mapped.is_null())
        .then(pl.lit(_UNKNOWN))
        .when(mapped == "")
        .then(pl.lit(_IGNORED))
        .otherwise(pl.lit(_KEEP))
        .alias("_fate"),
    ]


def _type_counts(counted: pl.DataFrame, fate: str, chosen: FeedbackFormat) -> dict[str, int]:
    """Raw event type -> count, for events of this fate.

    An unknown event that the format knows by name, unmatched because of its qualifier, shows
    the qualifier too: Mailgun's `failed` without a severity counts as `failed (/bounce)`.
    """
    rows = counted.filter(pl.col("_fate") == fate)
    if rows.is_empty():
        return {}
    raw, qualifier = pl.col("_raw_event"), pl.col("_qualifier")
    known = (
        pl.lit(fate == _UNKNOWN)
        & raw.is_in([event for event, _, _ in chosen.events])
        & (qualifier.str.replace_all(QUALIFIER_SEPARATOR, "", literal=True) != "")
    )
    label = (
        pl.when(known)
        .then(pl.format("{} ({})", raw, qualifier))
        .otherwise(raw.fill_null(_NO_EVENT_LABEL))
    )
    counts = rows.group_by(label.alias("type")).len().sort("type")
    return dict(
        zip(counts.get_column("type").to_list(), counts.get_column("len").to_list(), strict=True)
    )


# --- timestamps ---


def _occurred_at(
    records: pl.DataFrame, timestamps: list[tuple[pl.Expr, pl.DataType]]
) -> tuple[pl.Series, pl.Series]:
    """Each record's time (UTC, the first path that parses), and whether it gave one at all."""
    occurred_at = pl.repeat(None, records.height, dtype=_UTC, eager=True)
    has_time = pl.repeat(False, records.height, eager=True)
    for expr, dtype in timestamps:
        values = records.select(expr).to_series()
        occurred_at = occurred_at.fill_null(_parse_times(values, dtype))
        has_time = has_time | pl.select(_text(pl.lit(values)).is_not_null()).to_series()
    return occurred_at.alias("occurred_at"), has_time.alias("_has_time")


def _parse_times(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Points in time (UTC) from whatever the file holds; null where a value is not one.

    Text is tried as unix time, then ISO 8601, then RFC 2822, each format only on the values
    still unparsed: a file holds one format, so the first that fits parses nearly every row.
    """
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:  # a time without a zone is UTC (module docstring)
            return values.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return values.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if isinstance(dtype, pl.Date):
        return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return pl.select(_from_epoch(pl.lit(values.cast(pl.Float64)))).to_series()
    text = values.cast(pl.String).str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    parsed = pl.select(
        pl.when(number.is_finite()).then(_from_epoch(pl.lit(number))).cast(_UTC)
    ).to_series()
    # (rewrite into the format's spelling, strptime format, whether it has a zone), in order
    parsers = [
        *((_iso_text, f, True) for f in ISO_ZONED_FORMATS),
        *((_iso_text, f, False) for f in ISO_NAIVE_FORMATS),
        *((_rfc2822_text, f, True) for f in RFC2822_FORMATS),
    ]
    for spelled, format, zoned in parsers:
        unparsed = (parsed.is_null() & text.is_not_null() & (text != "")).arg_true()
        if unparsed.is_empty():
            break
        times = spelled(pl.col("text")).str.to_datetime(format, time_unit="us", strict=False)
        times = times if zoned else times.dt.replace_time_zone("UTC")
        subset = text.gather(unparsed).to_frame("text")
        parsed = parsed.scatter(unparsed, subset.select(times).to_series())
    return parsed


def _from_epoch(number: pl.Expr) -> pl.Expr:
    magnitude = number.abs()
    micros = (
        pl.when(magnitude < EPOCH_SECONDS_BELOW)
        .then(number * 1_000_000)
        .when(magnitude < EPOCH_MILLISECONDS_BELOW)
        .then(number * 1_000)
        .otherwise(number)
    )
    # Past Int64 microseconds (|t| > ~292,000 years, inf, NaN) a number is no point in time: null,
    # counted as unparsable, where a strict cast raised out of read_feedback (found by
    # tests/engine/test_fuzz_inputs.py).
    micros = micros.round().cast(pl.Int64, strict=False)
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")


def _iso_text(text: pl.Expr) -> pl.Expr:
    """ISO 8601 as the formats expect it: "T" between date and time, "Z" spelled "+00:00"."""
    return text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ t]", "${1}T").str.replace(r"[Zz]$", "+00:00")


def _rfc2822_text(text: pl.Expr) -> pl.Expr:
    """RFC 2822 without the day name, the trailing comment (`(UTC)`) or an obsolete zone name."""
    bare = text.str.replace(r"^[A-Za-z]{3},\s*", "").str.replace(r"\s*\([^)]*\)$", "")
    zone = bare.str.extract(r"\s([A-Za-z]{1,3})$", 1).str.to_uppercase()
    offset = zone.replace_strict(RFC2822_ZONES, default=None, return_dtype=pl.String)
    return (
        pl.when(offset.is_not_null())
        .then(pl.concat_str(bare.str.replace(r"[A-Za-z]{1,3}$", ""), offset))
        .otherwise(bare)
    )


# --- per-address facts ---


def feedback_facts(events: pl.DataFrame) -> pl.DataFrame:
    """One row per dedup_key (in no particular order): what the user's sends say about it.

    Times are the latest of each kind (an event without a time counts, but sets no time);
    a complaint or an unsubscribe is never undone by later events.
    """
    event, at = pl.col("event_type"), pl.col("occurred_at")
    # Per-row columns first, plain aggregations after: ~2x faster than filters inside agg().
    return (
        events.lazy()
        .select(
            DEDUP_KEY,
            pl.when(event == HARD_BOUNCE).then(at).alias("last_hard_bounce_at"),
            pl.when(event == DELIVERED).then(at).alias("last_delivered_at"),
            pl.when(event == SOFT_BOUNCE).then(at).alias("last_soft_bounce_at"),
            (event == COMPLAINT).alias("complained"),
            (event == UNSUBSCRIBE).alias("unsubscribed"),
            (event == HARD_BOUNCE).cast(pl.UInt32).alias("hard_bounces"),
            (event == DELIVERED).cast(pl.UInt32).alias("deliveries"),
        )
        .group_by(DEDUP_KEY)
        .agg(
            pl.col("last_hard_bounce_at", "last_delivered_at", "last_soft_bounce_at").max(),
            pl.col("complained", "unsubscribed").any(),
            pl.col("hard_bounces", "deliveries").sum(),
        )
        .collect()
    )
