"""The history join and the SQL views on a large history (issue 4, "Speed").

Builds a verdict history of `history_rows` rows as 10 parts (10 past runs, 1 to 10 days old, each
overlapping the next by a fifth, so a fifth of the addresses have two verdicts; 1 verdict in 50 is
`unknown`), and a list of `rows` addresses spread over all of it. Then, in a fresh process so the
peak RSS is the look-ups' own:
- `cached_verdicts` for the whole list, asking for the evidence columns a run re-decides from, as
  engine.recall does, and hashing the keys first (rows/s of the list; target >= 2M/s), and the
  share of its addresses served from the cache (target >= 95%);
- the floor under that look-up in this stack: hashing the list's keys (MD5 alone) plus one
  Parquet scan of the history that decodes the columns the look-up needs and keeps the rows whose
  key_hash is asked (Polars decodes every row of the columns it reads: at 1M keys every row group
  holds some), with nothing after it;
- `drift` and `cached_domain_facts` for the same list;
- `latest_verdicts` through `run_sql`: a count per status over the whole view (target < 2 s),
  and one address looked up in `verdicts`.

Not a test: nothing asserts a time; the targets are printed next to the measurements.
Run alone with `python -m tests.bench.bench_history [ROWS [HISTORY_ROWS]]`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl

from engine import schema
from engine.catalog import run_sql
from engine.config import load_config
from engine.history import (
    HISTORY_DIR_NAME,
    VERDICT_HISTORY_SCHEMA,
    VERDICTS,
    append_part,
    asked_keys,
    cached_domain_facts,
    cached_verdicts,
    drift,
    key_digests,
    list_parts,
)
from engine.recall import CACHED_EVIDENCE
from engine.verify import verify_file
from tests.bench.memory import peak_rss_mib

BUILD_DIR: Final = Path("build/bench-history")
PARTS: Final = 10
OVERLAP: Final = 0.2  # share of a part's addresses also in the next part
DOMAINS: Final = 50_000
UNKNOWN_EVERY: Final = 50  # 2% of verdicts are unknown (never reused): a clean list
MAX_AGE_DAYS: Final = 30.0
LIST_MULTIPLIER: Final = 7_919_993
REPEATS: Final = 3
TARGET_JOIN_ROWS_PER_S: Final = 2_000_000
TARGET_SERVED_SHARE: Final = 0.95
TARGET_LATEST_S: Final = 2.0
TARGET_WHOLE_RUN_S: Final = 15.0  # issue 4: re-verifying 1M fresh rows, whole run
LATEST_QUERY: Final = "SELECT status, count(*) AS addresses FROM latest_verdicts GROUP BY status"
ONE_ADDRESS_QUERY: Final = (
    "SELECT * FROM verdicts WHERE dedup_key = ? ORDER BY checked_at DESC LIMIT 1"
)

T = TypeVar("T")


def _address(key: pl.Expr) -> pl.Expr:
    return pl.format("user{}@dom{}.example", key, key % DOMAINS)


def _history_part(first_key: int, rows: int, universe: int, checked_at: datetime) -> pl.DataFrame:
    """One past run's verdicts, all columns of the history schema, built with expressions."""
    key = (pl.int_range(first_key, first_key + rows, dtype=pl.Int64) % universe).alias("k")
    # Scrambled (multiply, drop low bits) so that unknowns fall on every domain and stride alike.
    unknown = ((pl.col("k") * 2_654_435_761) // 128 % UNKNOWN_EVERY) == 7
    frame = pl.select(key).select(
        run_id=pl.lit(f"bench-{first_key}"),
        list_id=pl.lit("bench"),
        checked_at=pl.lit(checked_at, dtype=pl.Datetime("us", "UTC")),
        dedup_key=_address(pl.col("k")),
        email_normalized=_address(pl.col("k")),
        domain=pl.format("dom{}.example", pl.col("k") % DOMAINS),
        status=pl.when(unknown).then(pl.lit("unknown")).otherwise(pl.lit("valid")),
        sub_status=pl.when(unknown)
        .then(pl.lit("greylisted"))
        .otherwise(pl.lit("mailbox_confirmed")),
        score=pl.when(unknown).then(50).otherwise(95),
        confidence=pl.when(unknown).then(20).otherwise(95),
        tier=pl.when(unknown).then(pl.lit("unknown")).otherwise(pl.lit("deliverable")),
        recommendation=pl.when(unknown).then(pl.lit("retry_later")).otherwise(pl.lit("send")),
        reason=pl.lit("The mail server accepted this recipient and rejects made-up ones."),
        factors=pl.lit("dns_mx rcpt_accepted smtp_250_2.1.5"),
        rcpt_class=pl.lit("accepted"),
        smtp_response_code=pl.lit(250),
        smtp_enhanced_code=pl.lit("2.1.5"),
        smtp_message=pl.format("2.1.5 Ok queue {}", pl.col("k") % 997),
        dns_outcome=pl.lit("mx"),
        mx_record=pl.format("mx{}.dom{}.example", pl.col("k") % 2, pl.col("k") % DOMAINS),
        smtp_provider=pl.lit(None, dtype=pl.String),
        is_catchall=pl.lit(False),
        is_disposable=pl.lit(False),
        is_role_based=pl.lit(False),
        is_free_provider=(pl.col("k") % 3) == 0,
        did_you_mean=pl.lit(None, dtype=pl.String),
        spf=pl.lit(True),
        dmarc=pl.lit(True),
        cached=pl.lit(False),
    )
    return frame.cast(VERDICT_HISTORY_SCHEMA)


def build_history(data_dir: Path, history_rows: int, now: datetime) -> int:
    """Write the history parts under `data_dir`; returns how many distinct addresses it has."""
    per_part = history_rows // PARTS
    step = int(per_part * (1 - OVERLAP))
    universe = step * (PARTS - 1) + per_part
    history_dir = data_dir / HISTORY_DIR_NAME
    for part in range(PARTS):
        checked_at = now - timedelta(days=PARTS - part)
        frame = _history_part(part * step, per_part, universe, checked_at)
        append_part(frame, history_dir, VERDICTS, f"bench-{part}")
    return universe


def list_keys(rows: int, universe: int) -> pl.Series:
    """`rows` distinct addresses spread over the history's (a multiplier prime to its size)."""
    multiplier = next(m for m in range(LIST_MULTIPLIER, 2**31) if math.gcd(m, universe) == 1)
    position = pl.int_range(0, min(rows, universe), dtype=pl.Int64)
    keys = pl.select(_address(position * multiplier % universe))
    return keys.to_series().alias(schema.DEDUP_KEY)


def _best(repeats: int, call: Callable[[], T]) -> tuple[float, T]:
    best = float("inf")
    result: T | None = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def measure(data_dir: Path, rows: int, universe: int, now: datetime) -> dict[str, Any]:
    """The look-ups and queries, timed (best of `REPEATS`), in this process."""
    history_dir = data_dir / HISTORY_DIR_NAME
    keys = list_keys(rows, universe)
    evidence = tuple(CACHED_EVIDENCE)
    hash_s, _ = _best(REPEATS, lambda: asked_keys(keys))
    cache_s, cached = _best(
        REPEATS,
        lambda: cached_verdicts(
            history_dir, keys, max_age_days=MAX_AGE_DAYS, now=now, columns=evidence
        ),
    )
    needed = ("key_hash", "key_check", "checked_at", "status", "cached", *evidence)
    parts = list(list_parts(history_dir, VERDICTS).parts)
    asked_hashes = key_digests(keys).get_column("key_hash").implode()
    scan_s, _ = _best(
        REPEATS,
        lambda: (
            pl.scan_parquet(parts)
            .filter(pl.col("key_hash").is_in(asked_hashes))
            .select(needed)
            .collect()
        ),
    )
    md5_s, _ = _best(REPEATS, lambda: key_digests(keys))
    every_column_s, _ = _best(
        REPEATS,
        lambda: cached_verdicts(history_dir, keys, max_age_days=MAX_AGE_DAYS, now=now),
    )
    drift_s, drifted = _best(REPEATS, lambda: drift(history_dir, keys))
    domains = keys.str.split("@").list.last()
    facts_s, facts = _best(
        REPEATS,
        lambda: cached_domain_facts(history_dir, domains, max_age_days=MAX_AGE_DAYS, now=now),
    )
    latest_s, latest = _best(REPEATS, lambda: run_sql(data_dir, LATEST_QUERY))
    one_s, _ = _best(REPEATS, lambda: run_sql(data_dir, ONE_ADDRESS_QUERY, [keys[0]]))
    return {
        "list_rows": rows,
        "cached_verdicts_s": round(cache_s, 3),
        "cached_verdicts_rows_per_s": round(rows / cache_s),
        "target_rows_per_s": TARGET_JOIN_ROWS_PER_S,
        "of_which_hashing_keys_s": round(hash_s, 3),
        "floor_scan_s": round(scan_s, 3),
        "floor_md5_of_keys_s": round(md5_s, 3),
        "floor_rows_per_s": round(rows / (scan_s + md5_s)),
        "cached_verdicts_every_column_s": round(every_column_s, 3),
        "served_from_cache": cached.height,
        "served_share": round(cached.height / rows, 4),
        "target_served_share": TARGET_SERVED_SHARE,
        "drift_s": round(drift_s, 3),
        "drift_rows_per_s": round(rows / drift_s),
        "drift_keys_seen": drifted.height,
        "domain_facts_s": round(facts_s, 3),
        "domain_facts_domains": facts.height,
        "latest_verdicts_query": LATEST_QUERY,
        "latest_verdicts_s": round(latest_s, 3),
        "latest_verdicts_addresses": int(latest.get_column("addresses").sum()),
        "target_latest_s": TARGET_LATEST_S,
        "one_address_in_verdicts_s": round(one_s, 3),
        **whole_run(data_dir, keys),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def whole_run(data_dir: Path, keys: pl.Series) -> dict[str, Any]:
    """`verify_file` over the list as a CSV, at depth syntax against this history (last: it
    appends the run). The few addresses the cache cannot serve need no network at this depth,
    so this is the run's own cost: read, prepare, recall, re-decide, write, remember."""
    source = data_dir / "relist.csv"
    pl.DataFrame({"email": keys}).write_csv(source)
    config = load_config({"data_dir": str(data_dir), "depth": "syntax"}, env={})
    started = time.perf_counter()
    run = verify_file([source], config, list_id="bench-relist")
    elapsed = time.perf_counter() - started
    ledger = run.summary["ledger"]
    return {
        "whole_run_s": round(elapsed, 2),
        "target_whole_run_s": TARGET_WHOLE_RUN_S,
        "whole_run_cached_share": round(ledger["cached"] / ledger["rows"], 4),
        "whole_run_timings_s": run.timings_s,
    }


def run(rows: int = 1_000_000, history_rows: int = 10_000_000) -> dict[str, Any]:
    """Build the history in `build/`, then measure in a child process; returns the figures."""
    data_dir = BUILD_DIR / f"h{history_rows}"
    shutil.rmtree(data_dir, ignore_errors=True)
    load_at_start = os.getloadavg()
    now = datetime.now(UTC)
    started = time.perf_counter()
    universe = build_history(data_dir, history_rows, now)
    build_s = time.perf_counter() - started
    parts = sorted((data_dir / HISTORY_DIR_NAME / VERDICTS).glob("*.parquet"))
    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_history", "--measure", str(data_dir),
         str(rows), str(universe), now.isoformat()],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    figures = json.loads(completed.stdout)
    return {
        "history_rows": history_rows,
        "history_parts": len(parts),
        "history_addresses": universe,
        "history_mib": round(sum(p.stat().st_size for p in parts) / 2**20, 1),
        "build_s": round(build_s, 2),
        "load_average_at_start": [round(load, 2) for load in load_at_start],
        **figures,
        # The same time per history row: the look-up reads every fresh part whatever the list.
        "cached_verdicts_history_rows_per_s": round(history_rows / figures["cached_verdicts_s"]),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--measure"]:
        data_dir, rows, universe, now = argv[1:5]
        figures = measure(Path(data_dir), int(rows), int(universe), datetime.fromisoformat(now))
        print(json.dumps(figures))
        return 0
    sizes = [int(arg) for arg in argv[:2]]
    print(json.dumps(run(*sizes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
