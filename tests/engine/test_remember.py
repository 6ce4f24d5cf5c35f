"""Specification of engine.remember: a run's id is claimed once, and its history appended once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from engine.history import HISTORY_DIR_NAME, LEDGER, REPLIES, VERDICTS, list_parts
from engine.remember import claimed_run_id, remember_run

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_without_a_checkpoint_every_run_is_new():
    with claimed_run_id(None, NOW) as first, claimed_run_id(None, NOW) as second:
        assert first != second


def test_a_run_that_did_not_finish_is_resumed_under_its_own_id(tmp_path):
    with claimed_run_id(tmp_path / "probes", NOW) as first:
        pass  # the process ends here without retiring the checkpoint: as a kill leaves it

    with claimed_run_id(tmp_path / "probes", NOW) as again:
        assert again == first


def test_a_second_run_of_the_same_list_at_the_same_time_gets_its_own_id(tmp_path):
    probes = tmp_path / "probes"
    with claimed_run_id(probes, NOW) as first, claimed_run_id(probes, NOW) as second:
        assert second != first


def test_the_id_of_a_killed_process_is_taken_over(tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, sys
        from datetime import UTC, datetime
        from pathlib import Path
        from engine.remember import claimed_run_id
        with claimed_run_id(Path(sys.argv[1]), datetime.now(UTC)) as run_id:
            print(run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "probes")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr

    with claimed_run_id(tmp_path / "probes", NOW) as resumed:
        assert resumed == killed.stdout.strip()


def _remember(data_dir: Path, run_id: str) -> None:
    unique = pl.DataFrame(
        {
            "dedup_key": ["a@x.test", "b@x.test"],
            "status": ["valid", "invalid"],
            "syntax_valid": [True, True],
            "cached": [False, False],
        }
    )
    replies = pl.DataFrame({"dedup_key": ["a@x.test"], "smtp_response_code": [250]})
    remember_run(
        unique,
        replies,
        {},
        data_dir=data_dir,
        run_id=run_id,
        list_id="list-1",
        depth="smtp",
        rows=2,
        started_at=NOW,
        checked_at=NOW,
        rebuild_catalog=False,
    )


def test_a_run_remembered_again_appends_only_what_is_missing(tmp_path):
    history = tmp_path / HISTORY_DIR_NAME
    _remember(tmp_path, "run-1")
    ledger = list_parts(history, LEDGER).parts
    ledger[0].unlink()  # killed after its verdicts and replies, before its ledger row

    _remember(tmp_path, "run-1")
    _remember(tmp_path, "run-2")

    for kind in (VERDICTS, REPLIES, LEDGER):
        runs = [pl.read_parquet(p).get_column("run_id").unique().item() for p in
                list_parts(history, kind).parts]  # fmt: skip
        assert sorted(runs) == ["run-1", "run-2"], kind
