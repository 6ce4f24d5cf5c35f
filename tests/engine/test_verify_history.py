"""Verification that remembers (issue 4), against a small sandbox world and a real history dir:
the cache saves probes, feedback and suppression lists change verdicts, budgets stop probing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.catalog import CATALOG_FILE_NAME, run_sql
from engine.feedback_store import record_feedback
from engine.history import HISTORY_DIR_NAME, LEDGER, VERDICTS, list_parts, run_parts
from engine.ledger import ledger_row, record_run
from engine.sandbox.world import Behaviour, Domain, MailServer, World
from engine.verify import verify_file
from tests.engine.test_smtp_support import probe_config, running_worlds

STRICT = [
    "alice@strict-mail.net",
    "bob@strict-mail.net",
    "carol@strict-mail.net",
    "nobody@strict-mail.net",
]
CATCH_ALL = ["dave@any-mail.net", "erin@any-mail.net"]
LIST = [*STRICT, *CATCH_ALL, "Alice@strict-mail.net", "x@gone-mail.net", "broken@@strict-mail.net"]


def _world() -> World:
    return World(
        servers=[
            MailServer("mx.strict-mail.net", mailboxes={"alice", "bob", "carol"}),
            MailServer("mx.any-mail.net", behaviour=Behaviour.CATCH_ALL),
        ],
        domains=[
            Domain("strict-mail.net", mx=["mx.strict-mail.net"]),
            Domain("any-mail.net", mx=["mx.any-mail.net"]),
        ],
    )


@pytest.fixture(scope="module")
def world():
    with running_worlds() as start:
        yield start(_world())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def list_file(tmp_path: Path) -> Path:
    path = tmp_path / "list.csv"
    path.write_text("email\n" + "\n".join(LIST) + "\n")
    return path


def _run(world, home: Path, list_file: Path, **overrides):
    settings = {"data_dir": home, "depth": "smtp", "allow_loopback_mx": True}
    config = probe_config(world, **(settings | overrides))
    before = world.counters().smtp.rcpts
    run = verify_file([list_file], config, list_id="list-1")
    after = world.counters().smtp.rcpts
    sent = {address: after.get(address, 0) - before.get(address, 0) for address in after}
    return run, {address: count for address, count in sent.items() if count}


def _verdicts(run) -> dict[str, tuple[str, str]]:
    return {
        row["email"]: (row["status"], row["sub_status"])
        for row in run.results.select("email", "status", "sub_status").iter_rows(named=True)
    }


def _column(run, name: str) -> dict[str, object]:
    return dict(run.results.select("email", name).iter_rows())


def _feedback(tmp_path: Path, home: Path, events: list[tuple[str, str, str]]) -> None:
    path = tmp_path / "events.csv"
    lines = ["email,event_type,bounce_code,bounce_message,timestamp"]
    lines += [f"{email},{event},,,{at}" for email, event, at in events]
    path.write_text("\n".join(lines) + "\n")
    record_feedback(path, home)


def test_a_second_run_reuses_fresh_verdicts_without_probing(world, home, list_file):
    first, first_rcpts = _run(world, home, list_file)
    second, second_rcpts = _run(world, home, list_file)

    assert first_rcpts and set(first_rcpts) >= {a.lower() for a in STRICT}
    # Every answer of the first run was definitive, so nothing is asked again.
    assert second_rcpts == {}
    assert _verdicts(second) == _verdicts(first)
    cached = _column(second, "cached")
    assert cached["alice@strict-mail.net"] is True and cached["dave@any-mail.net"] is True
    assert cached["broken@@strict-mail.net"] is False  # syntax needs no cache
    assert _column(second, "times_verified")["alice@strict-mail.net"] == 2
    assert (
        _column(second, "checked_at")["alice@strict-mail.net"]
        == (_column(first, "checked_at")["alice@strict-mail.net"])
    )
    ledger = second.summary["ledger"]
    assert ledger["smtp_probes"] == 0 and ledger["charged"] == 0
    assert ledger["cached"] == 7  # 4 strict + 2 catch-all + x@gone-mail.net (no_dns_entries)


def test_the_ledger_partitions_every_row(world, home, list_file):
    run, _ = _run(world, home, list_file)
    ledger = run.summary["ledger"]
    unique = ledger["syntax_invalid"] + ledger["cached"] + ledger["unknowns"] + ledger["charged"]
    assert ledger["rows"] == len(LIST) == ledger["duplicates"] + unique
    assert ledger["duplicates"] == 1 and ledger["syntax_invalid"] == 1
    rows = run_sql(home, "SELECT rows, smtp_probes FROM ledger WHERE list_id = ?", ["list-1"])
    assert rows.rows() == [(len(LIST), ledger["smtp_probes"])]
    assert (home / CATALOG_FILE_NAME).is_file()


def test_refresh_and_max_age_bypass_the_cache(world, home, list_file):
    _run(world, home, list_file)
    _, refreshed = _run(world, home, list_file, refresh=True)
    assert refreshed.get("alice@strict-mail.net") == 1
    _, expired = _run(world, home, list_file, max_age_days=0)
    assert expired.get("alice@strict-mail.net") == 1


def test_unknowns_are_never_reused(world, home, tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("email\nalice@strict-mail.net\n")
    first, _ = _run(world, home, path, depth="dns")
    assert _verdicts(first)["alice@strict-mail.net"] == ("unknown", "not_probed")
    second, rcpts = _run(world, home, path)
    assert _verdicts(second)["alice@strict-mail.net"] == ("valid", "mailbox_confirmed")
    assert _column(second, "cached")["alice@strict-mail.net"] is False
    assert rcpts.get("alice@strict-mail.net") == 1


def test_feedback_changes_verdicts_and_a_hard_bounce_invalidates_the_cache(
    world, home, list_file, tmp_path
):
    first, _ = _run(world, home, list_file)
    assert _verdicts(first)["dave@any-mail.net"] == ("catch_all", "accept_all")
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    _feedback(
        tmp_path,
        home,
        [
            ("bob@strict-mail.net", "hard_bounce", later),
            ("carol@strict-mail.net", "complaint", later),
            ("alice@strict-mail.net", "unsubscribe", later),
            ("dave@any-mail.net", "delivered", later),
        ],
    )
    second, rcpts = _run(world, home, list_file)

    verdicts = _verdicts(second)
    assert verdicts["bob@strict-mail.net"] == ("invalid", "historical_hard_bounce")
    assert verdicts["carol@strict-mail.net"] == ("do_not_mail", "historical_complaint")
    assert verdicts["alice@strict-mail.net"] == ("do_not_mail", "unsubscribed")
    assert verdicts["Alice@strict-mail.net"] == ("do_not_mail", "unsubscribed")  # its duplicate
    assert verdicts["dave@any-mail.net"] == ("valid", "historical_delivery_confirmed")
    assert verdicts["erin@any-mail.net"] == ("catch_all", "accept_all")
    # The bounce took bob out of the cache, but what the user knows decides: no probe for him.
    assert "bob@strict-mail.net" not in rcpts
    assert _column(second, "cached")["bob@strict-mail.net"] is False
    assert _column(second, "status_changed")["bob@strict-mail.net"] is True
    assert _column(second, "status_changed")["erin@any-mail.net"] is False
    assert "history_hard_bounce" in _column(second, "factors")["bob@strict-mail.net"]


def test_a_probe_newer_than_the_bounce_wins(world, home, list_file, tmp_path):
    first, _ = _run(world, home, list_file)
    assert _verdicts(first)["alice@strict-mail.net"] == ("valid", "mailbox_confirmed")
    # A bounce reported now, but from before that probe (an old campaign's export).
    earlier = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    _feedback(tmp_path, home, [("alice@strict-mail.net", "hard_bounce", earlier)])

    second, _ = _run(world, home, list_file)

    assert _verdicts(second)["alice@strict-mail.net"] == ("valid", "mailbox_confirmed")
    assert _column(second, "cached")["alice@strict-mail.net"] is True


def test_a_bounce_with_no_probe_after_it_stands(world, home, list_file, tmp_path):
    earlier = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    _feedback(tmp_path, home, [("alice@strict-mail.net", "hard_bounce", earlier)])

    run, rcpts = _run(world, home, list_file)

    assert _verdicts(run)["alice@strict-mail.net"] == ("invalid", "historical_hard_bounce")
    assert "alice@strict-mail.net" not in rcpts  # no probe can overrule what the user saw


def test_suppression_lists_decide_without_probing(world, home, list_file):
    suppression = home / "suppression"
    suppression.mkdir(parents=True)
    (suppression / "spamtraps.txt").write_text("nobody@strict-mail.net\n")
    (suppression / "global_suppression.txt").write_text("@any-mail.net\n")

    run, rcpts = _run(world, home, list_file)

    verdicts = _verdicts(run)
    assert verdicts["nobody@strict-mail.net"] == ("spamtrap", "spamtraps.txt")
    assert verdicts["dave@any-mail.net"] == ("do_not_mail", "global_suppression")
    assert "nobody@strict-mail.net" not in rcpts and "dave@any-mail.net" not in rcpts


def test_the_run_budget_stops_probing_and_says_so(world, home, list_file):
    run, rcpts = _run(world, home, list_file, probe_budget=2)

    smtp = run.summary["smtp"]
    assert smtp["reserved"] == 2 and smtp["budget_exhausted"] is True
    assert smtp["not_probed_over_budget"] == 4
    not_probed = run.results.filter(pl.col("sub_status") == "not_probed")
    # The plan keeps list order: alice and bob (and Alice@, alice's duplicate) are probed.
    assert not_probed.get_column("email").to_list() == [*STRICT[2:], *CATCH_ALL]
    listed = {address.lower() for address in LIST}  # not the domain's random catch-all test
    assert {a for a in rcpts if a in listed} == {
        "alice@strict-mail.net",
        "bob@strict-mail.net",
    }
    assert all("budget" in reason for reason in not_probed.get_column("reason"))
    assert run.summary["ledger"]["budget_exhausted"] is True


def test_the_daily_budget_counts_earlier_runs_of_the_day(world, home, list_file):
    now = datetime.now(UTC)
    spent = ledger_row(run_id="earlier", list_id="other", started_at=now, finished_at=now,
                       depth="smtp", rows=10, smtp_probes=9)  # fmt: skip
    record_run(spent, home / HISTORY_DIR_NAME)

    run, _ = _run(world, home, list_file, probe_budget_per_day=10)

    assert run.summary["smtp"]["reserved"] == 1
    assert run.summary["smtp"]["budget_exhausted"] is True


def test_a_corrupt_history_part_is_quarantined_and_reported(world, home, list_file):
    _run(world, home, list_file)
    part = list_parts(home / HISTORY_DIR_NAME, VERDICTS).parts[0]
    part.write_bytes(part.read_bytes()[:100])  # truncated: no footer

    run, rcpts = _run(world, home, list_file)

    assert any("quarantined" in warning for warning in run.warnings)
    assert rcpts  # the lost verdicts are checked again; the run itself goes on
    assert (home / HISTORY_DIR_NAME / "quarantine" / VERDICTS).is_dir()


def test_bounce_probability_is_learnt_from_the_users_feedback(world, home, list_file, tmp_path):
    first, _ = _run(world, home, list_file)
    assert first.results.get_column("bounce_probability").null_count() == len(LIST)
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    _feedback(tmp_path, home, [("dave@any-mail.net", "hard_bounce", later),
                               ("erin@any-mail.net", "delivered", later)])  # fmt: skip

    second, _ = _run(world, home, list_file)

    probability = _column(second, "bounce_probability")
    assert all(0.0 < p < 1.0 for p in probability.values())


def test_a_run_resumed_after_a_kill_during_its_history_append_counts_once(
    world, home, list_file, tmp_path
):
    config = probe_config(world, data_dir=home, depth="smtp", allow_loopback_mx=True)
    checkpoint = tmp_path / "probes"
    first = verify_file([list_file], config, list_id="list-1", checkpoint_dir=checkpoint)
    run_id = first.summary["run_id"]
    history = home / HISTORY_DIR_NAME
    # Killed after its verdicts went in, before its ledger row: the checkpoint stays.
    for part in run_parts(history, LEDGER, run_id):
        part.unlink()

    again = verify_file([list_file], config, list_id="list-1", checkpoint_dir=checkpoint)

    assert again.summary["run_id"] == run_id
    # Not its own cache, not its own past: the same results as the run that was not killed.
    shown = ["email", "status", "sub_status", "cached", "times_verified", "status_changed"]
    assert again.results.select(shown).equals(first.results.select(shown))
    assert first.results.get_column("times_verified").max() == 1
    assert len(run_parts(history, VERDICTS, run_id)) == 1
    assert run_sql(home, "SELECT run_id FROM ledger").get_column("run_id").to_list() == [run_id]
