"""The verification history: immutable Parquet parts, and what a run asks of them before probing.

Storage (DESIGN §5): every run appends parts under `history/<kind>/`, written to a hidden temporary
name and renamed into place, so readers never block writers, a reader never sees half a part and
two runs never collide. Nothing is ever rewritten. A part whose footer cannot be read is moved to
`history/quarantine/<kind>/` and reported; the rest of the history keeps working.

What a run asks (issue 4): the latest fresh verdict of each address (the cache: no DNS, no probe,
not charged), how often an address was verified and what it was last time (drift, seed 004), and
the latest DNS facts of each domain.

Parts that hold addresses carry the MD5 digest of `dedup_key` as two 64-bit integers and are sorted
by the first: look-ups compare integers instead of decoding strings (measured on a 10M-row history:
the key column read in 0.15 s as text, `key_hash` with `checked_at` in 0.03 s). `key_hash` is the
low half of MD5(utf-8 dedup_key), `(md5_number(dedup_key) >> 64)::UBIGINT` in DuckDB, and narrows
the search; `key_check`, the other half, confirms a row: two keys sharing all 128 bits is as
unlikely as anything a computer does (about 1 in 10^25 for 1M keys against 10M). MD5 is the same
in every version of every library, so SQL and Python agree forever. Parts written before
`key_check` existed are confirmed by comparing the key text instead.

A run appends each kind at most once (engine.remember), and a run resumed after a kill keeps its
run id; its look-ups leave that run's parts out (`exclude_run`), or it would serve its own first
attempt's verdicts back as cached and count itself among its past verifications.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import duckdb
import polars as pl

from engine import schema
from engine.export import atomic_output
from engine.feedback import FEEDBACK_SCHEMA
from engine.taxonomy import Status

LOG = logging.getLogger(__name__)

HISTORY_DIR_NAME: Final = "history"  # under the data dir (DESIGN §5)
VERDICTS: Final = "verdicts"
FEEDBACK: Final = "feedback"
REPLIES: Final = "replies"
LEDGER: Final = "ledger"
KINDS: Final = (VERDICTS, FEEDBACK, REPLIES, LEDGER)
QUARANTINE_DIR_NAME: Final = "quarantine"
PART_SUFFIX: Final = ".parquet"
KEY_HASH: Final = "key_hash"
KEY_CHECK: Final = "key_check"
# Both halves of MD5(utf-8 key), computed once: md5_number reads the digest as a little-endian
# 128-bit integer, so `>> 64` is digest[8:] and the mask is digest[:8].
_KEY_DIGEST_SQL: Final = (
    f"SELECT (digest >> 64)::UBIGINT AS {KEY_HASH}, "
    f"(digest & 18446744073709551615::UHUGEINT)::UBIGINT AS {KEY_CHECK} "
    "FROM (SELECT md5_number(key) AS digest FROM keys_to_hash)"
)
KEY_DIGEST: Final = (KEY_HASH, KEY_CHECK)

# lz4 rather than Polars' default zstd: on a 10M-row verdict history the cache look-up read its
# columns in 0.35 s against 0.59 s, for 1.5x the bytes on disk (44 against 28 bytes per row).
PART_COMPRESSION: Final = "lz4"
# Small enough that a look-up of a few addresses reads one row group per part (parts are sorted
# by key_hash, so min/max statistics prune the rest); the 1M-key look-up took the same time with
# 65k-, 262k- and 1M-row groups.
PART_ROW_GROUP_ROWS: Final = 65_536
# Polars prunes row groups with statistics for `==` but not for `is_in`: on a 10M-row history a
# look-up of 3 keys took 0.055 s as equalities and 0.25 s as `is_in`; at 10 keys `is_in` wins.
FEW_KEYS: Final = 4
# A run id goes into a file name: keep it readable, short and free of path separators.
_UNSAFE_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9_.=+-]+")
_RUN_ID_NAME_CHARS: Final = 48
_STAMP_CHARS: Final = len("20260101T000000000000Z")
# A part's write lasts well under a second; a temporary file an hour old belongs to a dead write.
STALE_TEMPORARY_S: Final = 3600.0
_TEMPORARY_SUFFIX: Final = ".tmp"  # engine.export.atomic_output's
_RANDOM_NAME_CHARS: Final = 8  # secrets.token_hex(4)

# One row per unique verified address per run: the verdict, the evidence it was decided on and the
# raw SMTP reply, so a rule change can be re-applied to history with SQL.
VERDICT_HISTORY_SCHEMA: Final[dict[str, pl.DataType]] = {
    "run_id": pl.String(),
    "list_id": pl.String(),
    "checked_at": pl.Datetime("us", "UTC"),
    schema.DEDUP_KEY: pl.String(),
    schema.EMAIL_NORMALIZED: pl.String(),
    schema.DOMAIN: pl.String(),
    "status": pl.String(),
    "sub_status": pl.String(),
    "score": pl.Int16(),
    "confidence": pl.Int16(),
    "tier": pl.String(),
    "recommendation": pl.String(),
    "reason": pl.String(),
    "factors": pl.String(),
    "rcpt_class": pl.String(),
    "smtp_response_code": pl.Int16(),
    "smtp_enhanced_code": pl.String(),
    "smtp_message": pl.String(),
    "dns_outcome": pl.String(),
    "mx_record": pl.String(),
    "smtp_provider": pl.String(),
    "is_catchall": pl.Boolean(),  # the domain accepted a made-up address
    "is_disposable": pl.Boolean(),
    "is_role_based": pl.Boolean(),
    "is_free_provider": pl.Boolean(),
    "did_you_mean": pl.String(),
    "spf": pl.Boolean(),
    "dmarc": pl.Boolean(),
    "cached": pl.Boolean(),  # this row repeats an earlier verdict instead of a new check
}
# What a stored verdict part holds: the history columns plus the look-up digest.
_DIGEST_SCHEMA: Final[dict[str, pl.DataType]] = {KEY_HASH: pl.UInt64(), KEY_CHECK: pl.UInt64()}
VERDICT_PART_SCHEMA: Final[dict[str, pl.DataType]] = {**VERDICT_HISTORY_SCHEMA, **_DIGEST_SCHEMA}
# A feedback part as `append_part` stores engine.feedback's events (with the look-up digest).
FEEDBACK_PART_SCHEMA: Final[dict[str, pl.DataType]] = {**FEEDBACK_SCHEMA, **_DIGEST_SCHEMA}
# What a cache hit gives back: the verdict and its evidence, not the run that found it.
CACHED_VERDICT_COLUMNS: Final = tuple(
    name
    for name in VERDICT_HISTORY_SCHEMA
    if name
    not in ("run_id", "list_id", "checked_at", "cached", schema.EMAIL_NORMALIZED, schema.DOMAIN)
)
CACHED_CHECKED_AT: Final = "cached_checked_at"
# Facts about a domain that do not depend on the mailbox.
DOMAIN_FACT_COLUMNS: Final = ("dns_outcome", "mx_record", "smtp_provider", "spf", "dmarc")
DOMAIN_CATCH_ALL: Final = "is_catchall"
FACTS_CHECKED_AT: Final = "facts_checked_at"
_ASKED: Final = "_asked_key"
_ROW: Final = "_row"


# --- parts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartListing:
    """The readable parts of one kind, oldest first, and the parts moved to quarantine now."""

    parts: tuple[Path, ...]
    quarantined: tuple[tuple[Path, str], ...] = ()

    @property
    def warnings(self) -> list[str]:
        """One line per quarantined part, naming the file, the problem and where it went."""
        return [
            f"{moved}: unreadable history part quarantined ({problem})"
            for moved, problem in self.quarantined
        ]


# Parts are immutable, so a footer read once is good for as long as name, size and mtime agree:
# each readable part's identity, with the names of its columns.
_READABLE_PARTS: dict[tuple[str, int, int], frozenset[str]] = {}


def part_name(run_id: str, now: datetime | None = None) -> str:
    """`<UTC time to the µs>-<run id>-<random>.parquet`: sorts by time, never collides."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{_name_of_run(run_id)}-{secrets.token_hex(4)}{PART_SUFFIX}"


def run_parts(history_dir: Path, kind: str, run_id: str) -> tuple[Path, ...]:
    """The readable parts of `kind` that run `run_id` wrote (known by their names)."""
    own = _name_of_run(run_id)
    return tuple(
        part for part in list_parts(history_dir, kind).parts if _run_in_name(part.name) == own
    )


def _name_of_run(run_id: str) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", run_id).strip("._")[:_RUN_ID_NAME_CHARS] or "run"


def _run_in_name(name: str) -> str:
    """The run part of a part's name, as `_name_of_run` wrote it."""
    return name[_STAMP_CHARS + 1 : -len(PART_SUFFIX) - _RANDOM_NAME_CHARS - 1]


def _parts_but(history_dir: Path, kind: str, run_id: str | None) -> tuple[Path, ...]:
    """The readable parts of `kind`, without those of run `run_id` (see `exclude_run`)."""
    parts = list_parts(history_dir, kind).parts
    if run_id is None:
        return parts
    own = _name_of_run(run_id)
    return tuple(part for part in parts if _run_in_name(part.name) != own)


def key_digests(keys: pl.Series) -> pl.DataFrame:
    """`key_hash` and `key_check` of each key (nulls for a null key), in the keys' order.

    DuckDB hashes 1M keys in ~0.07 s (Python's hashlib takes ~1.1 s).
    """
    with duckdb.connect() as connection:
        connection.register("keys_to_hash", pl.DataFrame({"key": keys.cast(pl.String)}))
        digests = connection.sql(_KEY_DIGEST_SQL).pl()
    return digests.cast(_DIGEST_SCHEMA)


def append_part(frame: pl.DataFrame, history_dir: Path, kind: str, run_id: str) -> Path:
    """Write `frame` as a new immutable part of `kind` and return its path.

    A frame with a `dedup_key` column gets its digest and is stored sorted by it. The part is
    written beside its final name (`.<name>.<random>.tmp`, which no reader lists), fsynced and
    renamed into place, so concurrent runs and readers never see each other's half-written files.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown history kind {kind!r}; expected one of {', '.join(KINDS)}")
    if schema.DEDUP_KEY in frame.columns:
        if not set(KEY_DIGEST) <= set(frame.columns):
            digests = key_digests(frame.get_column(schema.DEDUP_KEY))
            frame = frame.drop(KEY_DIGEST, strict=False).hstack(digests)
        frame = frame.sort(KEY_DIGEST, nulls_last=True)
    path = Path(history_dir) / kind / part_name(run_id)
    _sweep_stale_temporaries(path.parent)
    with atomic_output(path) as temporary:
        frame.write_parquet(
            temporary, compression=PART_COMPRESSION, row_group_size=PART_ROW_GROUP_ROWS
        )
    return path


def _sweep_stale_temporaries(directory: Path) -> None:
    """Remove the temporary files of writes killed before their rename (readers never list them,
    but they would pile up). Only old ones: a younger one may be a concurrent run's, mid-write."""
    cutoff = time.time() - STALE_TEMPORARY_S
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(_TEMPORARY_SUFFIX)):
            continue
        with contextlib.suppress(FileNotFoundError):  # a concurrent sweep got there first
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)


def list_parts(history_dir: Path, kind: str) -> PartListing:
    """The readable parts of `kind`, oldest first; unreadable ones are moved to quarantine.

    A part is readable when its Parquet footer parses (a truncated or foreign file fails
    there). Each part is checked once per process: parts are immutable, so name, size and mtime
    identify what was checked.
    """
    directory = Path(history_dir) / kind
    try:
        entries = sorted(
            (entry for entry in os.scandir(directory) if _is_part_name(entry.name)),
            key=lambda entry: entry.name,
        )
    except FileNotFoundError:
        return PartListing(parts=())
    parts: list[Path] = []
    quarantined: list[tuple[Path, str]] = []
    for entry in entries:
        path = Path(entry.path)
        problem = _footer_problem(path)
        if problem is None:
            parts.append(path)
            continue
        moved = _quarantine(path, Path(history_dir) / QUARANTINE_DIR_NAME / kind)
        if moved is not None:
            quarantined.append((moved, problem))
            LOG.warning("%s: unreadable history part quarantined (%s)", moved, problem)
    return PartListing(parts=tuple(parts), quarantined=tuple(quarantined))


def scan_parts(
    history_dir: Path, kind: str, part_schema: Mapping[str, pl.DataType] | None = None
) -> pl.LazyFrame:
    """A lazy scan over the readable parts of `kind`, columns united by name.

    With `part_schema`, the scan has exactly those columns (missing ones as nulls, others
    dropped), so parts written before a column existed still read; an empty history gives an
    empty frame of that schema. Unreadable parts are quarantined and logged (see `list_parts`).
    """
    listing = list_parts(history_dir, kind)
    if not listing.parts:
        return pl.LazyFrame(schema=dict(part_schema or {}))
    if part_schema is None:
        return pl.scan_parquet(list(listing.parts), glob=False, missing_columns="insert")
    return pl.scan_parquet(
        list(listing.parts),
        glob=False,
        schema=dict(part_schema),
        missing_columns="insert",
        extra_columns="ignore",
    )


def _is_part_name(name: str) -> bool:
    return name.endswith(PART_SUFFIX) and not name.startswith(".")


def _footer_problem(path: Path) -> str | None:
    """None when the part's footer reads, else what went wrong, in one line."""
    try:
        _part_columns(path)
    except FileNotFoundError:
        return None  # moved away by a concurrent reader; the scan will not list it again
    except OSError:
        raise  # the disk or the permissions, not the part: nothing to quarantine
    except Exception as error:  # what a bad footer raises varies (ComputeError, PanicException)
        return " ".join(str(error).split())[:200] or type(error).__name__
    return None


def _part_columns(path: Path) -> frozenset[str]:
    """The column names in a part's footer, read once per part and process."""
    status = path.stat()
    identity = (str(path), status.st_size, status.st_mtime_ns)
    columns = _READABLE_PARTS.get(identity)
    if columns is None:
        # An open file, not the path: Polars would read `[`, `*` or `?` in a path as a glob.
        with path.open("rb") as part:
            columns = frozenset(pl.read_parquet_schema(part))
        _READABLE_PARTS[identity] = columns
    return columns


def _columns_if_present(path: Path) -> frozenset[str] | None:
    """`_part_columns`, or None for a part moved away since it was listed (quarantined by a
    concurrent reader)."""
    try:
        return _part_columns(path)
    except FileNotFoundError:
        return None


def _quarantine(path: Path, quarantine_dir: Path) -> Path | None:
    """Move a bad part aside (never delete: it may be someone's only copy); None if gone."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / path.name
    if target.exists():
        target = quarantine_dir / f"{path.stem}-{secrets.token_hex(4)}{path.suffix}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None  # a concurrent reader quarantined it first
    return target


# --- verdict rows ---------------------------------------------------------------------------


def verdict_history_rows(
    decided: pl.DataFrame, run_id: str, list_id: str | None, checked_at: datetime
) -> pl.DataFrame:
    """The rows a run appends to `history/verdicts`, in `VERDICT_HISTORY_SCHEMA`.

    `decided` holds one row per unique address with the verdict columns; columns it lacks come out
    as typed nulls (`is_catchall` falls back to `domain_catch_all`, `cached` to false). Every row
    gets this run's `checked_at`: a cached row records that this run served the verdict, while the
    check itself stays in the part that first recorded it. Rows without a key are dropped: nothing
    could ever look them up.
    """
    if schema.DEDUP_KEY not in decided.columns:
        if decided.height:
            raise ValueError(f"decided verdicts have no {schema.DEDUP_KEY!r} column")
        decided = decided.with_columns(pl.lit(None, dtype=pl.String).alias(schema.DEDUP_KEY))
    _require_aware(checked_at, "checked_at")
    run_columns = {
        "run_id": pl.lit(run_id, dtype=pl.String),
        "list_id": pl.lit(list_id, dtype=pl.String),
        "checked_at": pl.lit(checked_at, dtype=VERDICT_HISTORY_SCHEMA["checked_at"]),
    }
    fallbacks = {"cached": pl.lit(False)}
    if "domain_catch_all" in decided.columns:
        fallbacks["is_catchall"] = pl.col("domain_catch_all")

    def column(name: str, dtype: pl.DataType) -> pl.Expr:
        if name in run_columns:
            return run_columns[name].alias(name)
        source = pl.col(name) if name in decided.columns else fallbacks.get(name, pl.lit(None))
        return source.cast(dtype).alias(name)

    return (
        decided.lazy()
        .filter(pl.col(schema.DEDUP_KEY).is_not_null())
        .select(column(name, dtype) for name, dtype in VERDICT_HISTORY_SCHEMA.items())
        .unique(schema.DEDUP_KEY, keep="first", maintain_order=True)
        .collect()
    )


# --- look-ups -------------------------------------------------------------------------------


def cached_verdicts(
    history_dir: Path,
    keys: pl.Series | pl.DataFrame,
    *,
    max_age_days: float,
    now: datetime,
    invalidated_keys: pl.Series | None = None,
    columns: Sequence[str] = CACHED_VERDICT_COLUMNS,
    exclude_run: str | None = None,
) -> pl.DataFrame:
    """For each of `keys` with a reusable verdict, the latest one (one row per dedup_key).

    Reusable: checked at most `max_age_days` before `now` (and not after it), not `unknown` (an
    unknown is never reused: it is free and re-checked next run), an original check rather than a
    cached copy, and the key not in `invalidated_keys` (the caller's keys with a hard bounce newer
    than their last verdict). Returns `dedup_key`, `columns` (some of `CACHED_VERDICT_COLUMNS`:
    every column read costs, ~0.03 s per 10M history rows for a short one) and `cached_checked_at`,
    the time of that check. The parts of run `exclude_run` are not read (see the module docstring).
    """
    if max_age_days < 0:
        raise ValueError("max_age_days must not be negative")
    unknown_columns = sorted(set(columns) - set(CACHED_VERDICT_COLUMNS))
    if unknown_columns:
        raise ValueError(f"not cached verdict columns: {', '.join(unknown_columns)}")
    _require_aware(now, "now")
    columns = tuple(name for name in columns if name != schema.DEDUP_KEY)  # the asked key's
    asked = asked_keys(keys, exclude=invalidated_keys)
    if asked.is_empty():
        return _empty_cached(columns)
    found = _rows_of_keys(
        _parts_but(history_dir, VERDICTS, exclude_run),
        VERDICT_PART_SCHEMA,
        asked,
        [
            pl.col("checked_at").is_between(now - timedelta(days=max_age_days), now),
            pl.col("status") != Status.UNKNOWN.value,
            ~pl.col("cached").fill_null(False),
        ],
        ("checked_at", *columns),
    )
    # The newest row of each digest, chosen on integer columns and applied as a mask: gathering
    # rows by index from a scan's many chunks took 1.9 s for 1M rows, the mask 0.05 s.
    newest = _newest_of_each_digest(found.select(*KEY_DIGEST, "checked_at").with_row_index(_ROW))
    chosen = _keep_asked(newest, asked).select(_ROW, schema.DEDUP_KEY).sort(_ROW)
    mask = pl.repeat(False, found.height, dtype=pl.Boolean, eager=True)
    return (
        found.filter(mask.scatter(chosen.get_column(_ROW), True))
        .select(*columns, pl.col("checked_at").alias(CACHED_CHECKED_AT))
        .insert_column(0, chosen.get_column(schema.DEDUP_KEY))
    )


def drift(
    history_dir: Path, keys: pl.Series | pl.DataFrame, *, exclude_run: str | None = None
) -> pl.DataFrame:
    """Per key seen before: `times_verified`, `previous_status`, `previous_checked_at` and
    `last_probed_at`.

    `times_verified` counts the key's past verdict rows (one per run that included it, cached or
    not); the caller adds this run and compares its status with `previous_status`, the status of
    the latest past row, to set `status_changed`. `last_probed_at` is the time of the latest
    original (not cached) verdict that got an SMTP answer: feedback older than it is superseded
    by that answer (DESIGN §4 precedence). Keys never seen are absent. The parts of run
    `exclude_run` are not read (see the module docstring).
    """
    asked = asked_keys(keys)
    found = _rows_of_keys(
        _parts_but(history_dir, VERDICTS, exclude_run),
        VERDICT_PART_SCHEMA,
        asked,
        [],
        ("checked_at", "cached", "status", "rcpt_class"),
    )
    probed = ~pl.col("cached").fill_null(False) & pl.col("rcpt_class").is_not_null()
    per_digest = (
        found.sort("checked_at", "cached", descending=[True, False], nulls_last=True)
        .group_by(KEY_DIGEST)
        .agg(
            pl.len().cast(pl.Int32).alias("times_verified"),
            pl.col("status").first().alias("previous_status"),
            pl.col("checked_at").first().alias("previous_checked_at"),
            pl.col("checked_at").filter(probed).max().alias("last_probed_at"),
        )
        .sort(KEY_DIGEST)
    )
    return _keep_asked(per_digest, asked).select(
        schema.DEDUP_KEY,
        "times_verified",
        "previous_status",
        "previous_checked_at",
        "last_probed_at",
    )


def feedback_events(history_dir: Path, keys: pl.Series | pl.DataFrame) -> pl.DataFrame:
    """Every recorded feedback event of `keys` (FEEDBACK_SCHEMA), in no particular order."""
    asked = asked_keys(keys)
    if asked.is_empty():
        return pl.DataFrame(schema=FEEDBACK_SCHEMA)
    event_columns = tuple(name for name in FEEDBACK_SCHEMA if name != schema.DEDUP_KEY)
    found = _rows_of_keys(
        list_parts(history_dir, FEEDBACK).parts, FEEDBACK_PART_SCHEMA, asked, [], event_columns
    )
    return _keep_asked(found.sort(KEY_DIGEST), asked).select(list(FEEDBACK_SCHEMA))


def cached_domain_facts(
    history_dir: Path,
    domains: pl.Series,
    *,
    max_age_days: float,
    now: datetime | None = None,
    exclude_run: str | None = None,
) -> pl.DataFrame:
    """The latest DNS facts and catch-all answer per domain, from fresh non-unknown verdicts.

    One row per domain found: `DOMAIN_FACT_COLUMNS` and `facts_checked_at` from its latest
    verdict that saw DNS, and `is_catchall` from its latest verdict that tested it (a DNS-depth
    run leaves it null). `mx_record` is the preferred MX host, not its addresses.

    Latest means: from the newest part (by time written) that has the domain. Parts are read
    newest first and reading stops once every domain is answered, since grouping a whole 10M-row
    history by domain took 2.4 s and the newest part usually answers all but a few. The parts of
    run `exclude_run` are not read (see the module docstring).
    """
    if max_age_days < 0:
        raise ValueError("max_age_days must not be negative")
    now = now or datetime.now(UTC)
    _require_aware(now, "now")
    unanswered = domains.cast(pl.String).drop_nulls().unique()
    untested = unanswered
    checked_at = pl.col("checked_at")
    usable = [
        checked_at.is_between(now - timedelta(days=max_age_days), now),
        pl.col("status") != Status.UNKNOWN.value,
        pl.col("dns_outcome").is_not_null(),
    ]
    facts: list[pl.DataFrame] = [_empty_domain_facts().drop(DOMAIN_CATCH_ALL)]
    catch_all: list[pl.DataFrame] = [
        pl.DataFrame(schema={schema.DOMAIN: pl.String(), DOMAIN_CATCH_ALL: pl.Boolean()})
    ]
    for part in reversed(_parts_but(history_dir, VERDICTS, exclude_run)):
        if unanswered.is_empty() and untested.is_empty():
            break
        asked = pl.concat([unanswered, untested]).unique()
        newest_first = (
            _scan_part(part)
            .filter(*usable, pl.col(schema.DOMAIN).is_in(asked.implode()))
            .select(schema.DOMAIN, "checked_at", *DOMAIN_FACT_COLUMNS, DOMAIN_CATCH_ALL)
            .sort("checked_at", descending=True)
            .collect()
        )
        if newest_first.is_empty():
            continue
        found = newest_first.filter(pl.col(schema.DOMAIN).is_in(unanswered.implode())).unique(
            schema.DOMAIN, keep="first"
        )
        tested = newest_first.filter(
            pl.col(DOMAIN_CATCH_ALL).is_not_null() & pl.col(schema.DOMAIN).is_in(untested.implode())
        ).unique(schema.DOMAIN, keep="first")
        facts.append(
            found.select(schema.DOMAIN, *DOMAIN_FACT_COLUMNS, checked_at.alias(FACTS_CHECKED_AT))
        )
        catch_all.append(tested.select(schema.DOMAIN, DOMAIN_CATCH_ALL))
        unanswered = unanswered.filter(~unanswered.is_in(found.get_column(schema.DOMAIN).implode()))
        untested = untested.filter(~untested.is_in(tested.get_column(schema.DOMAIN).implode()))
    return (
        pl.concat(facts)
        .join(pl.concat(catch_all), on=schema.DOMAIN, how="left")
        .select(_empty_domain_facts().columns)
    )


def _scan_part(part: Path) -> pl.LazyFrame:
    return pl.scan_parquet(
        part,
        glob=False,
        schema=VERDICT_PART_SCHEMA,
        missing_columns="insert",
        extra_columns="ignore",
    )


def _empty_domain_facts() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            schema.DOMAIN: pl.String(),
            **{c: VERDICT_HISTORY_SCHEMA[c] for c in DOMAIN_FACT_COLUMNS},
            DOMAIN_CATCH_ALL: pl.Boolean(),
            FACTS_CHECKED_AT: VERDICT_HISTORY_SCHEMA["checked_at"],
        }
    )


def asked_keys(keys: pl.Series | pl.DataFrame, exclude: pl.Series | None = None) -> pl.DataFrame:
    """The distinct non-null keys asked for, minus `exclude`, with their digest, sorted by it.

    A frame this function returned is taken as it is, so a caller with several look-ups about
    the same keys (engine.recall: drift, cache, feedback) hashes them once (~0.07 s per 1M).
    Made distinct by digest, not by text: sorting integers and comparing neighbours takes a
    fraction of `unique` on the text (0.2 s for 1M keys).
    """
    if (
        isinstance(keys, pl.DataFrame)
        and set(KEY_DIGEST) <= set(keys.columns)
        and keys.get_column(KEY_HASH).is_sorted()
    ):
        asked = keys.select(schema.DEDUP_KEY, *KEY_DIGEST)
    else:
        texts = keys if isinstance(keys, pl.Series) else keys.get_column(schema.DEDUP_KEY)
        texts = texts.cast(pl.String).drop_nulls().alias(schema.DEDUP_KEY)
        asked = key_digests(texts).insert_column(0, texts).sort(KEY_HASH)
        if asked.select(_same_hash_as_a_neighbour().any()).item():  # a key twice, or a collision
            asked = asked.sort(KEY_DIGEST).filter(~_same_digest_as(shift=1))
    if exclude is not None and exclude.len():
        excluded = exclude.cast(pl.String).drop_nulls().implode()
        asked = asked.filter(~pl.col(schema.DEDUP_KEY).is_in(excluded))
    return asked.with_columns(pl.col(KEY_HASH).set_sorted())


def _rows_of_keys(
    parts: Sequence[Path],
    part_schema: Mapping[str, pl.DataType],
    asked: pl.DataFrame,
    predicates: Sequence[pl.Expr],
    columns: Sequence[str],
) -> pl.DataFrame:
    """The rows of `parts` matching `predicates` whose `key_hash` is asked: `KEY_DIGEST` and
    `columns`. Not yet confirmed: `_keep_asked` does that, by the whole digest.

    A part written before `key_check` existed has its rows confirmed here by the key text (its
    only way), and takes the asked key's `key_check`, so that every row can be treated alike.
    Newer parts never read the key text: it was the widest column of a look-up (0.15 s of decoding
    per 10M history rows, a third of the cache look-up).
    """
    columns = tuple(name for name in columns if name != schema.DEDUP_KEY)
    layouts = {part: _columns_if_present(part) for part in parts}
    current = [part for part, names in layouts.items() if names and KEY_CHECK in names]
    older = [part for part, names in layouts.items() if names and KEY_CHECK not in names]
    asked_hash = _has_key_hash(asked.get_column(KEY_HASH))
    found = [pl.DataFrame(schema={**_DIGEST_SCHEMA, **{c: part_schema[c] for c in columns}})]
    if current:
        found.append(
            _scan(current, part_schema)
            .filter(*predicates, asked_hash)
            .select(*KEY_DIGEST, *columns)
            .collect()
        )
    if older:
        by_text = (
            _scan(older, part_schema)
            .filter(*predicates, asked_hash)
            .select(KEY_HASH, schema.DEDUP_KEY, *columns)
            .collect()
            .join(asked.rename({schema.DEDUP_KEY: _ASKED}), on=KEY_HASH, how="inner")
        )
        found.append(
            by_text.filter(pl.col(schema.DEDUP_KEY) == pl.col(_ASKED)).select(*KEY_DIGEST, *columns)
        )
    return pl.concat(found, how="vertical_relaxed") if len(found) > 1 else found[0]


def _keep_asked(frame: pl.DataFrame, asked: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` (sorted by digest) whose digest is an asked key's, with that
    `dedup_key`: both sides sorted, so the join is a merge (0.01 s for 1M against 1M keys)."""
    return (
        frame.with_columns(pl.col(KEY_HASH).set_sorted())
        .join(asked.rename({KEY_CHECK: _ASKED}), on=KEY_HASH, how="inner")
        .filter(pl.col(KEY_CHECK) == pl.col(_ASKED))
        .drop(_ASKED)
    )


def _newest_of_each_digest(rows: pl.DataFrame) -> pl.DataFrame:
    """The row with the latest `checked_at` of each digest, sorted by `key_hash`.

    Most digests have one row; only rows sharing a `key_hash` with a neighbour are sorted on all
    three columns: on 1.2M rows, sorting by `key_hash` alone took 0.025 s, by all three 0.069 s.
    """
    by_hash = rows.sort(KEY_HASH)
    shared = _same_hash_as_a_neighbour()
    several = by_hash.filter(shared).sort(*KEY_DIGEST, "checked_at").filter(_last_of_its_digest())
    return by_hash.filter(~shared).merge_sorted(several, key=KEY_HASH)


def _same_hash_as_a_neighbour() -> pl.Expr:
    hashed = pl.col(KEY_HASH)
    return (hashed == hashed.shift(1)).fill_null(False) | (hashed == hashed.shift(-1)).fill_null(
        False
    )


def _same_digest_as(shift: int) -> pl.Expr:
    """Whether a row of a digest-sorted frame has the digest of the row `shift` rows away."""
    return pl.all_horizontal(
        (pl.col(name) == pl.col(name).shift(shift)).fill_null(False) for name in KEY_DIGEST
    )


def _last_of_its_digest() -> pl.Expr:
    return ~_same_digest_as(shift=-1)


def _scan(parts: Sequence[Path], part_schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    return pl.scan_parquet(
        list(parts),
        glob=False,
        schema=dict(part_schema),
        missing_columns="insert",
        extra_columns="ignore",
    )


def _has_key_hash(hashes: pl.Series) -> pl.Expr:
    """Rows whose `key_hash` is one of `hashes`, written so the scan can skip row groups.

    Tried and dropped for many keys: a bitmap indexed by `key_hash` (a one-hash Bloom filter).
    Alone it filtered 10M hashes in 0.06 s against 0.16 s for `is_in`, but in the real scan,
    with the evidence columns, it took 0.41-0.45 s against 0.34 s.
    """
    if hashes.len() > FEW_KEYS:
        return pl.col(KEY_HASH).is_in(hashes.implode())
    distinct = hashes.unique()
    if distinct.is_empty():
        return pl.lit(False)
    return pl.any_horizontal(pl.col(KEY_HASH) == value for value in distinct.to_list())


def _empty_cached(columns: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            schema.DEDUP_KEY: pl.String(),
            **{c: VERDICT_HISTORY_SCHEMA[c] for c in columns},
            CACHED_CHECKED_AT: VERDICT_HISTORY_SCHEMA["checked_at"],
        }
    )


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
