"""After a run: append its verdicts, raw replies and ledger row to the history, rebuild the catalog.

The ledger's counts partition the run's rows, so a team can check where every row went:
`rows = duplicates + unique`, and each unique address is exactly one of `syntax_invalid`,
`cached`, `unknowns` or `charged` (a definitive answer found this run). Only `smtp_probes` costs
anything; the rest is free, as in the seeds' credit rules.

Each kind is appended once per run id: a run killed halfway through its append and resumed from
its checkpoint (the same run, `claimed_run_id`) writes only what is missing, so it never counts
twice in drift, the ledger or the views.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import polars as pl

from engine import schema
from engine.catalog import build_catalog
from engine.history import (
    HISTORY_DIR_NAME,
    LEDGER,
    REPLIES,
    VERDICTS,
    append_part,
    run_parts,
    verdict_history_rows,
)
from engine.ledger import ledger_row, record_run
from engine.taxonomy import Status


def new_run_id(now: datetime | None = None) -> str:
    """`<UTC time to the second>-<8 hex>`: sorts by start time and never collides."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


_CLAIM_PREFIX: Final = "run-"
_CLAIM_SUFFIX: Final = ".claim"


@contextmanager
def claimed_run_id(checkpoint_dir: Path | None, now: datetime) -> Iterator[str]:
    """The id this run records its history under, held for as long as the run lasts.

    With a checkpoint, the id of a killed run of it is taken over: the checkpoint resumes that
    run, so it is the same run and its history is appended once. A live run holds its id with
    an flock, which the kernel drops when the process dies, so a second run of the same list at
    the same time gets an id of its own.
    """
    if checkpoint_dir is None:
        yield new_run_id(now)
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    for claim in sorted(checkpoint_dir.glob(f"{_CLAIM_PREFIX}*{_CLAIM_SUFFIX}")):
        handle = _locked(claim)
        if handle is not None:
            with handle:
                yield claim.name[len(_CLAIM_PREFIX) : -len(_CLAIM_SUFFIX)]
            return
    run_id = new_run_id(now)
    claim = checkpoint_dir / f"{_CLAIM_PREFIX}{run_id}{_CLAIM_SUFFIX}"
    hidden = claim.with_name(f".{claim.name}")  # locked before anyone can list it
    with hidden.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.replace(hidden, claim)
        yield run_id


def _locked(claim: Path) -> IO[str] | None:
    """The claim file open and exclusively locked, or None when a live run holds it."""
    try:
        handle = claim.open("a")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@dataclass(frozen=True)
class Remembered:
    """Where a run's history went and what its ledger row says."""

    run_id: str
    parts: tuple[Path, ...]
    catalog: Path | None  # None when the caller rebuilds the catalog itself (Dagster's asset)
    ledger: dict[str, Any]


def ledger_counts(unique: pl.DataFrame, rows: int, stats: dict[str, Any]) -> dict[str, Any]:
    """The ledger's counts for a run whose unique addresses were decided as `unique`."""
    valid = pl.col(schema.SYNTAX_VALID).fill_null(False)
    cached = pl.col("cached").fill_null(False)
    unknown = pl.col("status") == Status.UNKNOWN.value
    counts = unique.select(
        (~valid).sum().alias("syntax_invalid"),
        (valid & cached).sum().alias("cached"),
        (valid & ~cached & unknown).sum().alias("unknowns"),
        (valid & ~cached & ~unknown).sum().alias("charged"),
    ).row(0, named=True)
    smtp = stats.get("smtp", {})
    return {
        "rows": rows,
        "duplicates": rows - unique.height,
        **{name: int(value) for name, value in counts.items()},
        "dns_lookups": int(stats.get("dns", {}).get("dns_domains", 0)),
        "smtp_probes": int(smtp.get("rcpts_sent", 0)),
        "reserved": int(smtp.get("reserved", 0)),
        "budget": smtp.get("budget"),
        "budget_exhausted": bool(smtp.get("budget_exhausted", False)),
    }


def remember_run(
    unique: pl.DataFrame,
    replies: pl.DataFrame | None,
    stats: dict[str, Any],
    *,
    data_dir: Path,
    run_id: str,
    list_id: str | None,
    depth: str,
    rows: int,
    started_at: datetime,
    checked_at: datetime,
    rebuild_catalog: bool = True,
) -> Remembered:
    """Append the run to `<data_dir>/history` and (by default) rebuild `mailsift.duckdb`."""
    history_dir = data_dir / HISTORY_DIR_NAME

    def once(kind: str, write: Callable[[], Path]) -> Path:
        """The part of `kind` this run already wrote (before a kill), else a new one."""
        written = run_parts(history_dir, kind, run_id)
        return written[0] if written else write()

    parts = [
        once(
            VERDICTS,
            lambda: append_part(
                verdict_history_rows(unique, run_id, list_id, checked_at),
                history_dir,
                VERDICTS,
                run_id,
            ),
        )
    ]
    if replies is not None and replies.height:
        stamped = replies.with_columns(
            pl.lit(run_id).alias("run_id"), pl.lit(list_id, dtype=pl.String).alias("list_id")
        )
        parts.append(once(REPLIES, lambda: append_part(stamped, history_dir, REPLIES, run_id)))
    counts = ledger_counts(unique, rows, stats)
    row = ledger_row(
        run_id=run_id,
        list_id=list_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        depth=depth,
        **counts,
    )
    parts.append(once(LEDGER, lambda: record_run(row, history_dir)))
    catalog = build_catalog(data_dir) if rebuild_catalog else None
    return Remembered(run_id, tuple(parts), catalog, counts)
