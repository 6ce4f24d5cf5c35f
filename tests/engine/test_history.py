"""Specification of the history store: immutable parts, quarantine, cache, drift, domain facts."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feedback import FEEDBACK_SCHEMA
from engine.history import (
    CACHED_CHECKED_AT,
    CACHED_VERDICT_COLUMNS,
    FEEDBACK,
    KEY_CHECK,
    KEY_HASH,
    QUARANTINE_DIR_NAME,
    STALE_TEMPORARY_S,
    VERDICT_HISTORY_SCHEMA,
    VERDICTS,
    append_part,
    cached_domain_facts,
    cached_verdicts,
    drift,
    feedback_events,
    key_digests,
    list_parts,
    scan_parts,
    verdict_history_rows,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PART_NAME = re.compile(r"^\d{8}T\d{12}Z-[A-Za-z0-9_.=+-]+-[0-9a-f]{8}\.parquet$")


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _decided(**columns: list) -> pl.DataFrame:
    """A decided-verdicts frame; the domain comes from the key unless given."""
    frame = pl.DataFrame(columns)
    if "domain" not in frame.columns:
        frame = frame.with_columns(domain=pl.col("dedup_key").str.split("@").list.last())
    return frame


def _record(history: Path, run_id: str, at: datetime, **columns: list) -> Path:
    rows = verdict_history_rows(_decided(**columns), run_id, "list-1", at)
    return append_part(rows, history, VERDICTS, run_id)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "history"


# --- parts ---


def test_a_part_is_named_by_time_and_run_and_leaves_no_temporary_file(history):
    first = _record(history, "run one/..", _days_ago(1), dedup_key=["a@x.test"], status=["valid"])
    second = _record(history, "run-2", NOW, dedup_key=["a@x.test"], status=["invalid"])

    assert PART_NAME.match(first.name), first.name
    assert first.parent == history / VERDICTS
    assert sorted(p.name for p in (history / VERDICTS).iterdir()) == [first.name, second.name]
    assert list_parts(history, VERDICTS).parts == (first, second)


def test_a_verdict_part_carries_the_key_digest_and_is_sorted_by_it(history):
    keys = [f"user{n}@x.test" for n in range(50)]
    part = _record(history, "run", NOW, dedup_key=keys, status=["valid"] * 50)

    stored = pl.read_parquet(part)

    assert stored.get_column(KEY_HASH).is_sorted()
    digests = key_digests(stored["dedup_key"])
    assert stored.select(KEY_HASH, KEY_CHECK).equals(digests)


def test_the_key_digest_is_md5_in_two_halves_so_any_tool_can_compute_it():
    keys = pl.Series(["a@x.test", "josé@exämple.test", None])

    digests = key_digests(keys).rows()

    for key, (key_hash, key_check) in zip(keys.to_list()[:2], digests[:2], strict=True):
        digest = hashlib.md5(key.encode("utf-8")).digest()
        assert key_hash == int.from_bytes(digest[8:], "little")
        assert key_check == int.from_bytes(digest[:8], "little")
    assert digests[2] == (None, None)


def test_concurrent_appends_never_collide_and_lose_nothing(history):
    rows = verdict_history_rows(
        _decided(dedup_key=["a@x.test", "b@x.test"], status=["valid", "valid"]), "r", "l", NOW
    )
    written: list[Path] = []

    def append_many() -> None:
        for _ in range(10):
            written.append(append_part(rows, history, VERDICTS, "same-run-id"))

    threads = [threading.Thread(target=append_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(written)) == 40
    assert scan_parts(history, VERDICTS).select(pl.len()).collect().item() == 80
    assert not [p for p in (history / VERDICTS).iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_part_behind(history):
    unwritable = pl.DataFrame({"dedup_key": ["a@x.test"], "blob": [object()]})

    with pytest.raises(Exception):  # noqa: B017 - Polars' error type for an Object column varies
        append_part(unwritable, history, VERDICTS, "run")

    assert list((history / VERDICTS).iterdir()) == []


def test_unknown_kinds_are_refused(history):
    with pytest.raises(ValueError, match="unknown history kind"):
        append_part(pl.DataFrame({"a": [1]}), history, "verdict", "run")


# --- corrupt parts ---


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"this is not parquet" * 20, id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_an_unreadable_part_is_quarantined_and_the_rest_still_reads(history, damage, caplog):
    _record(history, "good", _days_ago(2), dedup_key=["a@x.test"], status=["valid"])
    bad = _record(history, "bad", _days_ago(1), dedup_key=["b@x.test"], status=["valid"])
    bad.write_bytes(damage(bad.read_bytes()))

    listing = list_parts(history, VERDICTS)

    quarantined = history / QUARANTINE_DIR_NAME / VERDICTS / bad.name
    assert not bad.exists()
    assert quarantined.exists()
    assert [moved for moved, _ in listing.quarantined] == [quarantined]
    assert len(listing.warnings) == 1
    assert str(quarantined) in listing.warnings[0]
    assert "\n" not in listing.warnings[0]
    assert bad.name in caplog.text
    cached = cached_verdicts(history, pl.Series(["a@x.test", "b@x.test"]), max_age_days=30, now=NOW)
    assert cached.get_column("dedup_key").to_list() == ["a@x.test"]
    assert list_parts(history, VERDICTS).quarantined == ()


def test_an_append_sweeps_temporary_files_of_dead_writes_but_not_of_live_ones(history):
    _record(history, "run-1", NOW, dedup_key=["a@x.test"], status=["valid"])
    dead = history / VERDICTS / ".20260101T000000000000Z-x-00000000.parquet.0123456789abcdef.tmp"
    live = history / VERDICTS / ".20260101T000000000000Z-y-00000000.parquet.fedcba9876543210.tmp"
    for temporary in (dead, live):
        temporary.write_bytes(b"half a part")
    an_hour_and_more_ago = time.time() - STALE_TEMPORARY_S - 60
    os.utime(dead, (an_hour_and_more_ago, an_hour_and_more_ago))

    _record(history, "run-2", NOW, dedup_key=["b@x.test"], status=["valid"])

    assert not dead.exists()
    assert live.exists()
    assert len(list_parts(history, VERDICTS).parts) == 2


def test_temporary_files_are_never_read(history):
    _record(history, "good", NOW, dedup_key=["a@x.test"], status=["valid"])
    (history / VERDICTS / ".20990101T000000000000Z-x-00000000.parquet.0a1b.tmp").write_bytes(b"x")

    assert len(list_parts(history, VERDICTS).parts) == 1
    assert not (history / QUARANTINE_DIR_NAME).exists()


# --- verdict rows ---


def test_history_rows_take_the_schema_with_typed_nulls_for_missing_columns():
    decided = pl.DataFrame(
        {
            "dedup_key": ["a@x.test", "b@x.test"],
            "status": ["valid", "catch_all"],
            "score": pl.Series([95, 60], dtype=pl.Int64),
            "domain_catch_all": [False, True],
            "row_id": [0, 1],
        }
    )

    rows = verdict_history_rows(decided, "run-1", "list-1", NOW)

    assert rows.schema == pl.Schema(VERDICT_HISTORY_SCHEMA)
    assert rows.get_column("run_id").to_list() == ["run-1", "run-1"]
    assert rows.get_column("checked_at").to_list() == [NOW, NOW]
    assert rows.get_column("is_catchall").to_list() == [False, True]
    assert rows.get_column("cached").to_list() == [False, False]
    assert rows.get_column("smtp_message").null_count() == 2


def test_history_rows_keep_one_row_per_key_and_drop_rows_without_one():
    decided = _decided(
        dedup_key=["a@x.test", None, "a@x.test", "b@x.test"],
        status=["valid", "invalid", "invalid", "valid"],
        domain=["x.test", None, "x.test", "x.test"],
    )

    rows = verdict_history_rows(decided, "run", None, NOW)

    assert rows.select("dedup_key", "status").rows() == [
        ("a@x.test", "valid"),
        ("b@x.test", "valid"),
    ]


def test_history_rows_need_an_aware_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        verdict_history_rows(_decided(dedup_key=["a@x.test"]), "r", "l", datetime(2026, 1, 1))


# --- the cache ---


def test_the_cache_serves_the_latest_fresh_verdict_with_its_time(history):
    _record(history, "old", _days_ago(10), dedup_key=["a@x.test"], status=["invalid"])
    _record(history, "new", _days_ago(2), dedup_key=["a@x.test"], status=["valid"], score=[95])

    cached = cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW)

    assert cached.columns == [*CACHED_VERDICT_COLUMNS, CACHED_CHECKED_AT]
    assert cached.select("dedup_key", "status", "score", CACHED_CHECKED_AT).rows() == [
        ("a@x.test", "valid", 95, _days_ago(2))
    ]


def test_a_verdict_older_than_max_age_is_not_reused(history):
    _record(history, "old", _days_ago(31), dedup_key=["a@x.test"], status=["valid"])

    assert cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW).is_empty()
    assert cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=32, now=NOW).height == 1


def test_unknowns_are_never_reused_but_an_older_definitive_verdict_is(history):
    _record(history, "first", _days_ago(5), dedup_key=["a@x.test"], status=["valid"])
    _record(
        history,
        "then",
        _days_ago(1),
        dedup_key=["a@x.test", "b@x.test"],
        status=["unknown", "unknown"],
    )

    cached = cached_verdicts(history, pl.Series(["a@x.test", "b@x.test"]), max_age_days=30, now=NOW)

    assert cached.select("dedup_key", "status").rows() == [("a@x.test", "valid")]


def test_invalidated_keys_are_not_served(history):
    _record(history, "run", _days_ago(1), dedup_key=["a@x.test", "b@x.test"], status=["valid"] * 2)

    cached = cached_verdicts(
        history,
        pl.Series(["a@x.test", "b@x.test"]),
        max_age_days=30,
        now=NOW,
        invalidated_keys=pl.Series(["a@x.test"]),
    )

    assert cached.get_column("dedup_key").to_list() == ["b@x.test"]


def test_a_cached_copy_never_refreshes_the_cache(history):
    _record(history, "probe", _days_ago(29), dedup_key=["a@x.test"], status=["valid"])
    _record(history, "reuse", _days_ago(1), dedup_key=["a@x.test"], status=["valid"], cached=[True])

    cached = cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW)
    later = cached_verdicts(
        history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW + timedelta(days=2)
    )

    assert cached.get_column(CACHED_CHECKED_AT).to_list() == [_days_ago(29)]
    assert later.is_empty()


def test_verdicts_recorded_after_now_are_not_seen(history):
    _record(history, "future", NOW + timedelta(hours=1), dedup_key=["a@x.test"], status=["valid"])

    assert cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW).is_empty()


def test_the_cache_answers_once_per_key_and_ignores_nulls_and_strangers(history):
    _record(history, "run", _days_ago(1), dedup_key=["a@x.test"], status=["valid"])

    cached = cached_verdicts(
        history,
        pl.Series(["a@x.test", "a@x.test", None, "nobody@x.test"]),
        max_age_days=30,
        now=NOW,
    )

    assert cached.get_column("dedup_key").to_list() == ["a@x.test"]


def test_a_large_look_up_agrees_with_one_key_at_a_time(history):
    keys = [f"user{n}@x.test" for n in range(40)]
    statuses = ["valid", "invalid", "unknown", "catch_all"] * 10
    _record(history, "run", _days_ago(1), dedup_key=keys, status=statuses)

    together = cached_verdicts(history, pl.Series(keys), max_age_days=30, now=NOW)
    one_by_one = pl.concat(
        cached_verdicts(history, pl.Series([key]), max_age_days=30, now=NOW) for key in keys
    )

    assert together.height == 30
    assert together.sort("dedup_key").equals(one_by_one.sort("dedup_key"))


def test_an_empty_history_serves_nothing_with_the_right_columns(history):
    cached = cached_verdicts(history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW)

    assert cached.is_empty()
    assert cached.columns == [*CACHED_VERDICT_COLUMNS, CACHED_CHECKED_AT]


def test_the_cache_reads_only_the_columns_asked_for(history):
    _record(history, "run", _days_ago(1), dedup_key=["a@x.test"], status=["valid"],
            rcpt_class=["accepted"])  # fmt: skip

    cached = cached_verdicts(
        history, pl.Series(["a@x.test"]), max_age_days=30, now=NOW, columns=("rcpt_class",)
    )

    assert cached.rows() == [("a@x.test", "accepted", _days_ago(1))]
    assert cached.columns == ["dedup_key", "rcpt_class", CACHED_CHECKED_AT]
    with pytest.raises(ValueError, match="not cached verdict columns: run_id"):
        cached_verdicts(history, pl.Series(["a"]), max_age_days=1, now=NOW, columns=("run_id",))


def _forged(history: Path, impostor: str, victim: str, *, with_check: bool) -> None:
    """A part whose row of `impostor` carries `victim`'s key_hash: a 64-bit digest collision."""
    rows = verdict_history_rows(_decided(dedup_key=[impostor], status=["invalid"]), "f", "l",
                                _days_ago(1))  # fmt: skip
    victim_hash = key_digests(pl.Series([victim])).item(0, KEY_HASH)
    rows = rows.with_columns(pl.lit(victim_hash, dtype=pl.UInt64).alias(KEY_HASH))
    if with_check:
        impostor_check = key_digests(pl.Series([impostor])).item(0, KEY_CHECK)
        rows = rows.with_columns(pl.lit(impostor_check, dtype=pl.UInt64).alias(KEY_CHECK))
        append_part(rows, history, VERDICTS, "forged")
    else:
        _write_older_part(rows, history)


def _write_older_part(rows: pl.DataFrame, history: Path, kind: str = VERDICTS) -> Path:
    """A part as mailsift wrote them before key_check existed: key_hash only."""
    if KEY_HASH not in rows.columns:
        rows = rows.with_columns(key_digests(rows.get_column("dedup_key")).get_column(KEY_HASH))
    path = history / kind / f"20260101T000000000000Z-older-{len(rows):08x}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.drop(KEY_CHECK, strict=False).sort(KEY_HASH).write_parquet(path)
    return path


@pytest.mark.parametrize("with_check", [True, False], ids=["key_check", "older part: key text"])
def test_a_row_sharing_only_the_key_hash_is_someone_else_and_is_never_served(history, with_check):
    _forged(history, "impostor@x.test", "a@x.test", with_check=with_check)

    asked = pl.Series(["a@x.test"])

    assert cached_verdicts(history, asked, max_age_days=30, now=NOW).is_empty()
    assert drift(history, asked).is_empty()


def test_parts_written_before_key_check_still_serve_and_count(history):
    decided = _decided(dedup_key=["a@x.test", "b@x.test"], status=["valid", "invalid"])
    _write_older_part(verdict_history_rows(decided, "old", "l", _days_ago(3)), history)
    _record(history, "new", _days_ago(1), dedup_key=["a@x.test"], status=["catch_all"])

    asked = pl.Series(["a@x.test", "b@x.test"])
    cached = cached_verdicts(history, asked, max_age_days=30, now=NOW)
    drifted = drift(history, asked)

    assert sorted(cached.select("dedup_key", "status").rows()) == [
        ("a@x.test", "catch_all"),
        ("b@x.test", "invalid"),
    ]
    assert sorted(drifted.select("dedup_key", "times_verified").rows()) == [
        ("a@x.test", 2),
        ("b@x.test", 1),
    ]


def _event(key: str, event_type: str) -> dict[str, object]:
    return {"dedup_key": key, "email": key, "event_type": event_type, "occurred_at": NOW}


def test_feedback_events_of_older_and_newer_parts_are_found_once_each(history):
    older = pl.DataFrame([_event("a@x.test", "hard_bounce")], schema=FEEDBACK_SCHEMA)
    _write_older_part(older, history, FEEDBACK)
    newer = pl.DataFrame(
        [_event("a@x.test", "delivered"), _event("b@x.test", "complaint")], schema=FEEDBACK_SCHEMA
    )
    append_part(newer, history, FEEDBACK, "new")

    events = feedback_events(history, pl.Series(["a@x.test", "a@x.test", "c@x.test"]))

    assert sorted(events.select("dedup_key", "event_type").rows()) == [
        ("a@x.test", "delivered"),
        ("a@x.test", "hard_bounce"),
    ]
    assert events.columns == list(FEEDBACK_SCHEMA)


def test_the_cache_needs_an_aware_now_and_a_non_negative_age(history):
    with pytest.raises(ValueError, match="timezone-aware"):
        cached_verdicts(history, pl.Series(["a"]), max_age_days=1, now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        cached_verdicts(history, pl.Series(["a"]), max_age_days=-1, now=NOW)


_STATUSES = st.sampled_from(["valid", "invalid", "catch_all", "unknown", "do_not_mail"])
_VERDICT = st.tuples(
    st.sampled_from(["a@x.test", "b@x.test", "c@y.test"]),
    st.integers(min_value=0, max_value=60),  # days ago
    _STATUSES,
    st.booleans(),  # cached copy
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(st.lists(_VERDICT, min_size=1, max_size=4), min_size=1, max_size=5))
def test_the_cache_agrees_with_the_rule_read_literally(tmp_path_factory, runs):
    history = tmp_path_factory.mktemp("history")
    recorded: list[tuple[str, datetime, str, bool]] = []
    for number, run in enumerate(runs):
        at = _days_ago(run[0][1]) - timedelta(seconds=number)  # one time per run, all distinct
        unique = {key: (status, copy) for key, _, status, copy in run}
        _record(
            history,
            f"run{number}",
            at,
            dedup_key=list(unique),
            status=[status for status, _ in unique.values()],
            cached=[copy for _, copy in unique.values()],
        )
        recorded += [(key, at, status, copy) for key, (status, copy) in unique.items()]

    cached = cached_verdicts(
        history, pl.Series(["a@x.test", "b@x.test", "c@y.test"]), max_age_days=30, now=NOW
    )

    expected = {}
    for key, at, status, copy in sorted(recorded, key=lambda r: r[1]):
        if at >= _days_ago(30) and status != "unknown" and not copy:
            expected[key] = (status, at)
    got = {key: (status, at) for key, status, at in cached.select(
        "dedup_key", "status", CACHED_CHECKED_AT).rows()}  # fmt: skip
    assert got == expected


# --- drift ---


def test_drift_counts_past_verdicts_and_names_the_latest_status(history):
    _record(history, "1", _days_ago(90), dedup_key=["a@x.test", "b@x.test"], status=["valid"] * 2)
    _record(history, "2", _days_ago(40), dedup_key=["a@x.test"], status=["invalid"],
            rcpt_class=["mailbox_not_found"])  # fmt: skip
    _record(history, "3", _days_ago(1), dedup_key=["a@x.test"], status=["invalid"], cached=[True],
            rcpt_class=["mailbox_not_found"])  # fmt: skip

    drifted = drift(history, pl.Series(["a@x.test", "b@x.test", "new@x.test"])).sort("dedup_key")

    # last_probed_at: the latest original verdict with an SMTP answer (a cached copy is none).
    assert drifted.rows() == [
        ("a@x.test", 3, "invalid", _days_ago(1), _days_ago(40)),
        ("b@x.test", 1, "valid", _days_ago(90), None),
    ]
    assert drifted.schema["times_verified"] == pl.Int32


def test_drift_counts_a_key_asked_twice_once(history):
    _record(history, "1", _days_ago(1), dedup_key=["a@x.test"], status=["valid"])

    drifted = drift(history, pl.Series(["a@x.test", "a@x.test"]))

    assert drifted.select("dedup_key", "times_verified").rows() == [("a@x.test", 1)]


def test_drift_on_an_empty_history_knows_no_key(history):
    assert drift(history, pl.Series(["a@x.test"])).is_empty()


# --- domain facts ---


def test_domain_facts_come_from_the_newest_fresh_verdict_that_saw_dns(history):
    _record(
        history,
        "older",
        _days_ago(5),
        dedup_key=["a@x.test", "b@y.test"],
        status=["catch_all", "valid"],
        dns_outcome=["mx", "mx"],
        mx_record=["mx-old.x.test", "mx.y.test"],
        is_catchall=[True, False],
    )
    _record(
        history,
        "newer",
        _days_ago(1),
        dedup_key=["c@x.test", "d@y.test"],
        status=["valid", "unknown"],
        dns_outcome=["mx", "timeout"],
        mx_record=["mx-new.x.test", None],
        is_catchall=[None, None],
    )

    facts = cached_domain_facts(
        history, pl.Series(["x.test", "y.test", "z.test"]), max_age_days=30, now=NOW
    ).sort("domain")

    assert facts.select("domain", "mx_record", "is_catchall", "facts_checked_at").rows() == [
        ("x.test", "mx-new.x.test", True, _days_ago(1)),
        ("y.test", "mx.y.test", False, _days_ago(5)),
    ]


def test_stale_domain_facts_are_not_served(history):
    _record(
        history, "old", _days_ago(10), dedup_key=["a@x.test"], status=["valid"], dns_outcome=["mx"]
    )

    facts = cached_domain_facts(history, pl.Series(["x.test"]), max_age_days=7, now=NOW)

    assert facts.is_empty()
    assert facts.columns == [
        "domain", "dns_outcome", "mx_record", "smtp_provider", "spf", "dmarc", "is_catchall",
        "facts_checked_at",
    ]  # fmt: skip
