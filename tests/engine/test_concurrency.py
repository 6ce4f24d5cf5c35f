"""Concurrency (issue 6): eight list runs at once in one data dir, with SQL readers going all
the time, take no lock, break no reader, and leave exactly one verdict row per unique address of
each run and one ledger row per run (DESIGN §5: readers never block writers, two runs never
fail on a lock).

The runs are `mailsift verify` processes against one sandbox world, half at depth smtp and half
at depth dns, over lists that share most of their addresses with their neighbours. One reader
is a thread in this process calling `run_sql`; the other is a separate process opening
`mailsift.duckdb` read-only over and over, as a notebook or a BI tool would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import pytest

from engine.catalog import CATALOG_FILE_NAME, run_sql
from engine.sandbox.demo_world import demo_list
from engine.sandbox.running import RunningWorld, run_world
from tests.engine.verify_process_support import REPO, calm_world, start_verify, stderr_of

pytestmark = pytest.mark.slow

RUNS: Final = 8
ROWS_PER_LIST: Final = 400
STRIDE: Final = 150  # neighbouring lists share ROWS_PER_LIST - STRIDE rows
SERVER_LATENCY_S: Final = 0.005
RUN_TIMEOUT_S: Final = 180.0
LEDGER_QUERY: Final = "SELECT * FROM ledger"
READER_QUERIES: Final = (
    "SELECT run_id, count(*) FROM verdicts GROUP BY run_id",
    "SELECT count(*) FROM latest_verdicts",
    LEDGER_QUERY,
    "SELECT * FROM domain_health",
    "SELECT * FROM list_summaries",
)
# Opens the catalog read-only and queries its views in a loop until told to stop (a line on
# stdin), then prints how many times it did, the ledger sizes it saw and every error.
CATALOG_READER: Final = """
import json, os, sys, threading, time, duckdb
catalog, stop, opens, errors, ledgers = sys.argv[1], threading.Event(), 0, [], set()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
while not stop.is_set():
    if not os.path.exists(catalog):  # the first run to finish writes it; it never goes away
        time.sleep(0.01)
        continue
    try:
        with duckdb.connect(catalog, read_only=True) as connection:
            connection.sql("SELECT count(*) FROM verdicts").fetchall()
            ledgers.add(connection.execute("SELECT count(*) FROM ledger").fetchall()[0][0])
            opens += 1
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
print(json.dumps({"opens": opens, "errors": errors, "ledger_sizes": sorted(ledgers)}))
"""


class SqlReader(threading.Thread):
    """Runs the named views' queries through `run_sql` until stopped; keeps every error."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(name="sql-reader", daemon=True)
        self.data_dir = data_dir
        self.stop = threading.Event()
        self.queries = 0
        self.errors: list[str] = []
        self.ledger_sizes: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            for query in READER_QUERIES:
                try:
                    answer = run_sql(self.data_dir, query)
                    self.queries += 1
                    if query == LEDGER_QUERY:
                        self.ledger_sizes.add(answer.height)
                except Exception as error:  # any failure is the finding
                    self.errors.append(f"{query}: {type(error).__name__}: {error}")


@pytest.fixture(scope="module")
def running() -> Iterator[RunningWorld]:
    with run_world(calm_world(SERVER_LATENCY_S)) as world:
        yield world


def _lists(directory: Path) -> list[Path]:
    """RUNS overlapping windows of one demo list, each its own file (so its own list key)."""
    rows = demo_list(rows=STRIDE * (RUNS - 1) + ROWS_PER_LIST).drop("sandbox_truth")
    paths = []
    for index in range(RUNS):
        path = directory / f"list-{index}.csv"
        rows.slice(index * STRIDE, ROWS_PER_LIST).write_csv(path)
        paths.append(path)
    return paths


def test_eight_runs_and_sql_readers_at_once_lose_and_double_nothing(
    running: RunningWorld, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    sources = _lists(tmp_path)
    sql_reader = SqlReader(data_dir)
    catalog_reader = subprocess.Popen(
        [sys.executable, "-c", CATALOG_READER, str(data_dir / CATALOG_FILE_NAME)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    sql_reader.start()
    started = time.monotonic()
    outs = [tmp_path / "out" / f"results-{index}.parquet" for index in range(RUNS)]
    runs = [
        start_verify(running, source, out, data_dir, "--depth", "smtp" if index % 2 else "dns")
        for index, (source, out) in enumerate(zip(sources, outs, strict=True))
    ]
    codes = [run.wait(RUN_TIMEOUT_S) for run in runs]
    elapsed = time.monotonic() - started
    sql_reader.stop.set()
    sql_reader.join(30)
    reader_report, _ = catalog_reader.communicate("stop\n", timeout=30)
    catalog_reads = json.loads(reader_report)

    failed = {
        str(out): stderr_of(out)[-500:] for out, code in zip(outs, codes, strict=True) if code
    }
    assert not failed, failed
    assert not sql_reader.errors, sql_reader.errors[:5]
    assert not catalog_reads["errors"], catalog_reads["errors"][:5]
    print(
        f"\n{RUNS} runs in {elapsed:.1f}s; run_sql: {sql_reader.queries} queries, ledger sizes "
        f"seen {sorted(sql_reader.ledger_sizes)}; read-only catalog: {catalog_reads['opens']} "
        f"opens, ledger sizes seen {catalog_reads['ledger_sizes']}"
    )
    assert sql_reader.queries > 0 and catalog_reads["opens"] > 0  # the readers really read

    summaries = [json.loads(out.with_name(f"{out.stem}.summary.json").read_text()) for out in outs]
    # Duplicates are found case-insensitively: one verdict per address whatever its spelling.
    expected = {
        summary["run_id"]: pl.read_parquet(out)
        .get_column("email_normalized")
        .drop_nulls()
        .str.to_lowercase()
        .n_unique()
        for summary, out in zip(summaries, outs, strict=True)
    }
    per_run = run_sql(
        data_dir,
        "SELECT run_id, count(*) AS verdict_rows, count(DISTINCT dedup_key) AS addresses "
        "FROM verdicts GROUP BY run_id",
    )
    assert dict(per_run.select("run_id", "verdict_rows").iter_rows()) == expected
    assert per_run.get_column("verdict_rows").equals(per_run.get_column("addresses"))
    ledger = run_sql(data_dir, "SELECT run_id, list_id FROM ledger")
    assert ledger.height == RUNS
    assert set(ledger.get_column("run_id")) == set(expected)
    assert ledger.get_column("list_id").n_unique() == RUNS
