"""Specification of the SQL catalog: views over the history, safe queries, no locks, no losses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from engine.catalog import CATALOG_FILE_NAME, SQL_DIR, VIEWS, build_catalog, run_sql
from engine.errors import InputError
from engine.feedback import FEEDBACK_SCHEMA
from engine.history import (
    FEEDBACK,
    HISTORY_DIR_NAME,
    LEDGER,
    QUARANTINE_DIR_NAME,
    VERDICTS,
    append_part,
    verdict_history_rows,
)
from engine.ledger import ledger_row

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _record(data_dir: Path, run_id: str, at: datetime, list_id: str = "list-1", **columns) -> Path:
    frame = pl.DataFrame(columns)
    if "domain" not in frame.columns:
        frame = frame.with_columns(domain=pl.col("dedup_key").str.split("@").list.last())
    rows = verdict_history_rows(frame, run_id, list_id, at)
    return append_part(rows, data_dir / HISTORY_DIR_NAME, VERDICTS, run_id)


def _feedback(data_dir: Path, events: list[tuple[str, str, datetime]]) -> Path:
    frame = pl.DataFrame(
        {
            "dedup_key": [key for key, _, _ in events],
            "email": [key for key, _, _ in events],
            "event_type": [kind for _, kind, _ in events],
            "occurred_at": [at for _, _, at in events],
        }
    ).with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in FEEDBACK_SCHEMA.items()
        if name not in ("dedup_key", "email", "event_type", "occurred_at")
    )
    events = frame.select(list(FEEDBACK_SCHEMA)).cast(FEEDBACK_SCHEMA)
    return append_part(events, data_dir / HISTORY_DIR_NAME, FEEDBACK, "fb")


def _ledger(data_dir: Path, run_id: str, list_id: str, **counts: int) -> Path:
    row = ledger_row(
        run_id=run_id,
        list_id=list_id,
        started_at=_days_ago(1),
        finished_at=_days_ago(1) + timedelta(minutes=5),
        depth="smtp",
        **counts,
    )
    return append_part(row, data_dir / HISTORY_DIR_NAME, LEDGER, run_id)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- the views ---


def test_every_view_file_has_a_place_in_the_creation_order():
    assert sorted(path.stem for path in SQL_DIR.glob("*.sql")) == sorted(VIEWS)


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_answers_with_typed_columns_on_an_empty_history(data_dir, view):
    result = run_sql(data_dir, f"SELECT * FROM {view}")

    assert result.is_empty()
    assert result.width > 0
    assert "key_hash" not in result.columns
    assert pl.Null not in result.schema.dtypes()


def test_verdicts_lists_every_verdict_of_every_run(data_dir):
    _record(data_dir, "r1", _days_ago(2), dedup_key=["a@x.test", "b@x.test"], status=["valid"] * 2)
    _record(data_dir, "r2", _days_ago(1), dedup_key=["a@x.test"], status=["invalid"])

    rows = run_sql(data_dir, "SELECT run_id, dedup_key, status FROM verdicts ORDER BY ALL").rows()

    assert rows == [
        ("r1", "a@x.test", "valid"),
        ("r1", "b@x.test", "valid"),
        ("r2", "a@x.test", "invalid"),
    ]


def test_latest_verdicts_holds_the_newest_verdict_of_each_address(data_dir):
    # The newest run is written first: the view goes by checked_at, not by file order.
    _record(data_dir, "late", _days_ago(1), dedup_key=["a@x.test"], status=["invalid"])
    _record(
        data_dir, "early", _days_ago(9), dedup_key=["a@x.test", "b@x.test"], status=["valid"] * 2
    )
    _record(data_dir, "copy", _days_ago(1), dedup_key=["b@x.test"], status=["valid"], cached=[True])

    latest = run_sql(data_dir, "SELECT dedup_key, run_id, status FROM latest_verdicts ORDER BY 1")

    assert latest.rows() == [("a@x.test", "late", "invalid"), ("b@x.test", "copy", "valid")]


def test_feedback_shows_the_events_as_ingested(data_dir):
    _feedback(data_dir, [("a@x.test", "hard_bounce", _days_ago(1))])

    events = run_sql(data_dir, "SELECT * FROM feedback")

    assert events.columns == list(FEEDBACK_SCHEMA)
    assert events.select("dedup_key", "event_type", "occurred_at").rows() == [
        ("a@x.test", "hard_bounce", _days_ago(1))
    ]


def test_list_summaries_put_the_ledger_beside_the_counts_per_status(data_dir):
    _record(
        data_dir,
        "r1",
        _days_ago(1),
        list_id="crm",
        dedup_key=["a@x.test", "b@x.test", "c@x.test"],
        status=["valid", "catch_all", "unknown"],
        tier=["deliverable", "risky", "unknown"],
        cached=[True, False, False],
    )
    _ledger(data_dir, "r1", "crm", rows=5, duplicates=2, smtp_probes=2, charged=1, unknowns=1)

    summary = run_sql(data_dir, "SELECT * FROM list_summaries").to_dicts()

    assert len(summary) == 1
    row = summary[0]
    assert (row["list_id"], row["run_id"], row["rows"], row["duplicates"]) == ("crm", "r1", 5, 2)
    assert (row["addresses"], row["valid"], row["catch_all"], row["unknown"]) == (3, 1, 1, 1)
    assert (row["risky"], row["served_from_cache"], row["smtp_probes"]) == (1, 1, 2)


def test_domain_health_rates_verification_and_sends_per_domain_and_mx(data_dir):
    _record(
        data_dir,
        "r1",
        _days_ago(2),
        dedup_key=["a@x.test", "b@x.test", "c@x.test", "d@x.test"],
        status=["valid", "invalid", "unknown", "valid"],
        mx_record=["mx.x.test"] * 4,
    )
    _record(
        data_dir,
        "r2",
        _days_ago(1),
        dedup_key=["a@x.test"],
        status=["valid"],
        mx_record=["mx.x.test"],
        cached=[True],
    )
    _feedback(
        data_dir,
        [
            ("a@x.test", "delivered", _days_ago(1)),
            ("d@x.test", "hard_bounce", _days_ago(1)),
            ("d@x.test", "complaint", _days_ago(1)),
            ("new@z.test", "soft_bounce", _days_ago(1)),
        ],
    )

    health = {
        row["domain"]: row for row in run_sql(data_dir, "SELECT * FROM domain_health").to_dicts()
    }

    x = health["x.test"]
    assert (x["mx_record"], x["verified"], x["addresses"]) == ("mx.x.test", 4, 4)
    assert (x["unknown_rate"], x["invalid_rate"]) == (0.25, 0.25)
    assert (x["sends"], x["hard_bounces"], x["complaints"], x["bounce_rate"]) == (2, 1, 1, 0.5)
    z = health["z.test"]
    assert (z["mx_record"], z["verified"], z["sends"], z["bounce_rate"]) == (None, 0, 1, 0.0)


def test_ledger_lists_each_run(data_dir):
    _ledger(data_dir, "r1", "crm", rows=10, smtp_probes=4)

    assert run_sql(data_dir, "SELECT run_id, rows, smtp_probes FROM ledger").rows() == [
        ("r1", 10, 4)
    ]


# --- the catalog file ---


def test_the_catalog_file_holds_only_views(data_dir):
    _record(data_dir, "r1", NOW, dedup_key=["a@x.test"], status=["valid"])

    path = build_catalog(data_dir)

    assert path == data_dir / CATALOG_FILE_NAME
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.sql("SELECT table_name, table_type FROM information_schema.tables")
        assert sorted(tables.fetchall()) == sorted((view, "VIEW") for view in VIEWS)
        assert connection.sql("SELECT count(*) FROM latest_verdicts").fetchall() == [(1,)]
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".")] == []


def test_new_parts_show_in_the_catalog_without_a_rebuild(data_dir):
    _record(data_dir, "r1", NOW, dedup_key=["a@x.test"], status=["valid"])
    path = build_catalog(data_dir)
    _record(data_dir, "r2", NOW, dedup_key=["b@x.test"], status=["valid"])

    with duckdb.connect(str(path), read_only=True) as connection:
        assert connection.sql("SELECT count(*) FROM verdicts").fetchall() == [(2,)]


def test_a_reader_keeps_reading_while_the_catalog_is_rebuilt(data_dir):
    _record(data_dir, "r1", NOW, dedup_key=["a@x.test"], status=["valid"])
    path = build_catalog(data_dir)
    with duckdb.connect(str(path), read_only=True) as reader:
        _feedback(data_dir, [("a@x.test", "delivered", NOW)])
        build_catalog(data_dir)  # would fail on a lock if it wrote the file the reader holds

        assert reader.sql("SELECT count(*) FROM verdicts").fetchall() == [(1,)]
        # The old file's feedback view was built typed-empty; the new one reads the part.
        assert reader.sql("SELECT count(*) FROM feedback").fetchall() == [(0,)]
    with duckdb.connect(str(path), read_only=True) as fresh:
        assert fresh.sql("SELECT count(*) FROM feedback").fetchall() == [(1,)]


def test_queries_during_appends_see_whole_parts_only(data_dir):
    _record(
        data_dir,
        "r0",
        NOW,
        dedup_key=[f"r0-{n}@x.test" for n in range(100)],
        status=["valid"] * 100,
    )
    done = threading.Event()

    def append_runs() -> None:
        for run in range(1, 8):
            keys = [f"r{run}-{n}@x.test" for n in range(100)]
            _record(data_dir, f"r{run}", NOW, dedup_key=keys, status=["valid"] * 100)
        done.set()

    writer = threading.Thread(target=append_runs)
    writer.start()
    counts = []
    while not done.is_set():
        counts.append(run_sql(data_dir, "SELECT count(*) FROM verdicts").item())
    writer.join()

    assert all(count % 100 == 0 for count in counts), counts
    assert run_sql(data_dir, "SELECT count(*) FROM verdicts").item() == 800


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    import polars as pl

    from engine.catalog import build_catalog, run_sql
    from engine.history import HISTORY_DIR_NAME, VERDICTS, append_part, verdict_history_rows

    data_dir, writer = Path(sys.argv[1]), sys.argv[2]
    for run in range(5):
        keys = [f"w{writer}-r{run}-{n}@x.test" for n in range(100)]
        frame = pl.DataFrame({"dedup_key": keys, "status": ["valid"] * 100})
        rows = verdict_history_rows(frame, f"w{writer}-r{run}", "list", datetime.now(UTC))
        append_part(rows, data_dir / HISTORY_DIR_NAME, VERDICTS, f"w{writer}-r{run}")
        build_catalog(data_dir)
        run_sql(data_dir, "SELECT count(*) FROM latest_verdicts")
    """
)


def test_two_writers_at_once_lose_nothing_and_double_nothing(data_dir):
    data_dir.mkdir(parents=True)
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(data_dir), str(writer)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(3)
    ]
    errors = [writer.communicate(timeout=300)[1] for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0, 0], errors
    counts = run_sql(
        data_dir, "SELECT count(*) AS n, count(DISTINCT dedup_key) AS keys FROM verdicts"
    )
    assert counts.row(0) == (1500, 1500)
    leftovers = [p for p in data_dir.rglob(".*") if p.is_file()]
    assert leftovers == []
    with duckdb.connect(str(data_dir / CATALOG_FILE_NAME), read_only=True) as connection:
        assert connection.sql("SELECT count(*) FROM latest_verdicts").fetchall() == [(1500,)]


def test_a_truncated_part_is_quarantined_and_queries_still_answer(data_dir, caplog):
    _record(data_dir, "good", _days_ago(2), dedup_key=["a@x.test"], status=["valid"])
    bad = _record(data_dir, "bad", _days_ago(1), dedup_key=["b@x.test"], status=["valid"])
    bad.write_bytes(bad.read_bytes()[:100])

    result = run_sql(data_dir, "SELECT dedup_key FROM verdicts")
    build_catalog(data_dir)

    assert result.get_column("dedup_key").to_list() == ["a@x.test"]
    assert (data_dir / HISTORY_DIR_NAME / QUARANTINE_DIR_NAME / VERDICTS / bad.name).exists()
    assert "quarantined" in caplog.text


# --- user queries ---


def test_sql_metacharacters_in_values_stay_data(data_dir):
    hostile = "o'brien'); DROP VIEW verdicts; --@x.test"
    _record(data_dir, "r1", NOW, dedup_key=[hostile, "b@x.test"], status=["valid", "invalid"])

    by_position = run_sql(data_dir, "SELECT status FROM verdicts WHERE dedup_key = ?", [hostile])
    by_name = run_sql(
        data_dir, "SELECT status FROM latest_verdicts WHERE dedup_key = $key", {"key": hostile}
    )

    assert by_position.rows() == [("valid",)] == by_name.rows()
    assert run_sql(data_dir, "SELECT count(*) FROM verdicts").item() == 2


def test_a_data_dir_with_quotes_and_glob_characters_works(tmp_path):
    data_dir = tmp_path / "o'brien's [lists] *?"
    _record(data_dir, "r1", NOW, dedup_key=["a@x.test"], status=["valid"])
    (tmp_path / "o'brien's l").mkdir()  # what an unescaped glob would also match

    assert run_sql(data_dir, "SELECT dedup_key FROM latest_verdicts").rows() == [("a@x.test",)]
    with duckdb.connect(str(build_catalog(data_dir)), read_only=True) as connection:
        assert connection.sql("SELECT count(*) FROM verdicts").fetchall() == [(1,)]


def test_a_sql_error_is_a_one_line_input_error(data_dir):
    with pytest.raises(InputError) as raised:
        run_sql(data_dir, "SELEC status FROM verdicts")

    assert str(raised.value).startswith("SQL: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO 'out.csv'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DROP VIEW verdicts",
        "ATTACH 'other.duckdb'",
        "SET threads = 1",
    ],
)
def test_only_queries_run(data_dir, statement):
    with pytest.raises(InputError, match="only queries"):
        run_sql(data_dir, statement)


def test_a_query_cannot_read_files_outside_the_history(data_dir, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")

    with pytest.raises(InputError, match="SQL: "):
        run_sql(data_dir, "SELECT * FROM read_csv(?)", [str(secret)])


def test_a_query_may_read_the_history_parts_directly(data_dir):
    _record(data_dir, "r1", NOW, dedup_key=["a@x.test"], status=["valid"])
    parts = str((data_dir / HISTORY_DIR_NAME / VERDICTS).resolve()) + "/*.parquet"

    assert run_sql(data_dir, "SELECT count(*) FROM read_parquet(?)", [parts]).item() == 1
