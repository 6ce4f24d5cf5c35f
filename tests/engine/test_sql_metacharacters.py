"""SQL metacharacters through every user-controlled field (issue 6 §5): nothing breaks, nothing is
interpreted, and every value comes back exactly through `run_sql` with bound parameters.

The fields: the list id, the data dir's path, email local parts (quoted and plain), the list's
own column names and values, suppression list file names and entries, feedback event fields and
the feedback file's name. `{parts:verdicts}` is the catalog's own view-template placeholder: a
value holding it must never be expanded.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from engine.catalog import CATALOG_FILE_NAME, VIEWS, build_catalog, run_sql
from engine.config import Config, load_config
from engine.errors import InputError
from engine.feedback_store import record_feedback
from engine.verify import verify_file

HOSTILE = (
    "'; DROP TABLE x; --",
    '" OR 1=1 --',
    "\\",
    "%",
    "_",
    "ünïcødé ✉ 日本",
    "{parts:verdicts}",
)
LIST_ID = "list '; DROP TABLE x; --\" OR 1=1 -- \\ % _ ü {parts:verdicts}"
# Syntax-valid local parts (RFC 5322 atext allows ' % _ { } -): they reach suppression and feedback.
PLAIN_ADDRESSES = (
    "o'drop--x@example.com",
    "100%_sure@example.com",
    "{parts}@example.com",
    "ünï@example.com",
)
# The file-name part of the hostile values (a file name cannot hold "/").
FILE_PART = "'; DROP TABLE x; --\" OR 1=1 -- % _ ü {parts:verdicts}"


def _quoted(local: str) -> str:
    """`local` as an RFC 5322 quoted local part at example.com (mailsift calls these invalid)."""
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"@example.com'


QUOTED_ADDRESSES = tuple(_quoted(value) for value in HOSTILE)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data dir whose own path holds quotes, LIKE and glob wildcards and the placeholder."""
    return tmp_path / "home '; DROP TABLE x; -- % _ [x]*? ü {parts:verdicts}"


def _config(home: Path) -> Config:
    return load_config({"data_dir": home, "depth": "syntax"}, env={})


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _hostile_list(folder: Path) -> tuple[Path, pl.DataFrame]:
    """A list named with metacharacters, one column per hostile value as name and as cells."""
    addresses = [*QUOTED_ADDRESSES, *PLAIN_ADDRESSES]
    cells = [[HOSTILE[i % len(HOSTILE)] for i in range(n, n + len(HOSTILE))] for n in range(11)]
    header = ["email", *HOSTILE]
    rows = [[address, *cells[n]] for n, address in enumerate(addresses)]
    folder.mkdir(parents=True, exist_ok=True)
    path = _write_csv(folder / f"list {FILE_PART}.csv", header, rows)
    return path, pl.DataFrame(rows, schema=header, orient="row")


def _suppress(home: Path) -> None:
    folder = home / "suppression"
    folder.mkdir(parents=True)
    (folder / f"spamtraps.{FILE_PART}.txt").write_text(f"{PLAIN_ADDRESSES[0]}\n", "utf-8")
    (folder / f"global_suppression.{FILE_PART}.txt").write_text(
        f"{PLAIN_ADDRESSES[1]}\n{QUOTED_ADDRESSES[0]}\n", "utf-8"
    )


def _feedback_file(folder: Path) -> Path:
    """Events whose type, code and message are hostile values; one is a real hard bounce."""
    header = ["email", "event_type", "bounce_code", "bounce_message", "timestamp"]
    rows = [
        [address, "hard_bounce", value, value, "2026-01-02T03:04:05Z"]
        for address, value in zip(PLAIN_ADDRESSES, HOSTILE, strict=False)
    ]
    rows += [[PLAIN_ADDRESSES[3], value, "", "", "2026-01-02T03:04:06Z"] for value in HOSTILE]
    return _write_csv(folder / f"events {FILE_PART}.csv", header, rows)


def test_hostile_values_run_through_verify_suppression_feedback_and_views_unharmed(tmp_path, home):
    source, originals = _hostile_list(tmp_path / "in")
    _suppress(home)
    feedback = record_feedback(_feedback_file(tmp_path / "in"), home)
    run = verify_file(source, _config(home), list_id=LIST_ID)
    build_catalog(home)

    # The list's own columns come out as they went in, names and cells.
    assert run.results.select(originals.columns).equals(originals)
    # Each address's verdict is in the history under the hostile list id, found by binding it.
    recorded = run_sql(
        home,
        "SELECT email_normalized, status, sub_status FROM verdicts WHERE list_id = ? "
        "ORDER BY email_normalized",
        [LIST_ID],
    )
    assert sorted(recorded.get_column("email_normalized")) == sorted(
        [*QUOTED_ADDRESSES, *PLAIN_ADDRESSES]
    )
    for address in [*QUOTED_ADDRESSES, *PLAIN_ADDRESSES]:
        found = run_sql(
            home, "SELECT email_normalized FROM verdicts WHERE email_normalized = ?", [address]
        )
        assert found.get_column("email_normalized").to_list() == [address]
    # Suppression file names and entries matched literally; the spam-trap list's name is the
    # sub_status, and binds back.
    by_address = {row[0]: row[1:] for row in recorded.iter_rows()}
    assert by_address[PLAIN_ADDRESSES[0]] == ("spamtrap", f"spamtraps.{FILE_PART}.txt")
    assert by_address[PLAIN_ADDRESSES[1]] == ("do_not_mail", "global_suppression")
    spamtrap_list = f"spamtraps.{FILE_PART}.txt"
    assert (
        run_sql(
            home, "SELECT count(*) AS n FROM verdicts WHERE sub_status = ?", [spamtrap_list]
        ).item()
        == 1
    )
    # Feedback fields and the file's name round-trip; hostile event types are counted (in lower
    # case, as event names match in any case), never run.
    assert feedback["unknown_event_types"] == {value.lower(): 1 for value in HOSTILE}
    events = run_sql(
        home,
        "SELECT email, bounce_code, bounce_message, source_file FROM feedback "
        "WHERE bounce_message = ? AND bounce_code = ?",
        [HOSTILE[0], HOSTILE[0]],
    )
    assert events.rows() == [
        (PLAIN_ADDRESSES[0], HOSTILE[0], HOSTILE[0], f"events {FILE_PART}.csv")
    ]
    for value in HOSTILE[: len(PLAIN_ADDRESSES)]:
        kept = run_sql(
            home, "SELECT bounce_message FROM feedback WHERE bounce_message = ?", [value]
        )
        assert kept.get_column("bounce_message").to_list() == [value]
    # Every view answers, and the named-parameter form binds too.
    for view in VIEWS:
        run_sql(home, f"SELECT * FROM {view}")
    ledger = run_sql(home, "SELECT list_id, rows FROM ledger WHERE list_id = $id", {"id": LIST_ID})
    assert ledger.rows() == [(LIST_ID, len(originals))]
    summaries = run_sql(home, "SELECT list_id FROM list_summaries WHERE list_id = ?", [LIST_ID])
    assert summaries.get_column("list_id").to_list() == [LIST_ID]
    health_query = "SELECT domain, hard_bounces FROM domain_health WHERE domain = ?"
    health = run_sql(home, health_query, ["example.com"])
    assert health.rows() == [("example.com", len(PLAIN_ADDRESSES))]


@pytest.mark.parametrize("value", [*HOSTILE, LIST_ID])
def test_a_hostile_parameter_is_a_value_never_sql(tmp_path, home, value):
    source, _ = _hostile_list(tmp_path / "in")
    verify_file(source, _config(home), list_id=LIST_ID)

    query = "SELECT ? AS value, count(*) AS n FROM verdicts WHERE list_id = ?"
    echoed = run_sql(home, query, [value, value])

    matching = len(QUOTED_ADDRESSES) + len(PLAIN_ADDRESSES) if value == LIST_ID else 0
    assert echoed.rows() == [(value, matching)]


def test_the_catalog_file_under_a_hostile_data_dir_opens_read_only_with_every_view(tmp_path, home):
    source, _ = _hostile_list(tmp_path / "in")
    verify_file(source, _config(home), list_id=LIST_ID)

    with duckdb.connect(str(home / CATALOG_FILE_NAME), read_only=True) as catalog:
        counts = {
            view: catalog.execute(f"SELECT count(*) FROM {view}").fetchone()[0] for view in VIEWS
        }
        found = catalog.execute("SELECT list_id FROM ledger WHERE list_id = ?", [LIST_ID])
        assert found.fetchall() == [(LIST_ID,)]

    assert counts["verdicts"] == len(QUOTED_ADDRESSES) + len(PLAIN_ADDRESSES)


def test_a_history_under_a_backslash_path_is_refused_not_read_from_elsewhere(tmp_path):
    # DuckDB's glob reads `a\\b/history/...` as `a/b/history/...`, past allowed_directories:
    # without the guard this query answered with someone else's list.
    source, _ = _hostile_list(tmp_path / "in")
    verify_file(source, _config(tmp_path / "a" / "b"), list_id="someone else's list")
    verify_file(source, _config(tmp_path / "mine"), list_id="my list")
    shutil.copytree(tmp_path / "mine" / "history", tmp_path / "a\\b" / "history")

    with pytest.raises(InputError, match="backslash"):
        run_sql(tmp_path / "a\\b", "SELECT list_id FROM ledger")
