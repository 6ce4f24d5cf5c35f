"""Finished probe work as immutable Parquet parts, so a killed run resumes without re-probing.

Each flush writes one part per table (e.g. `replies-<id>.parquet`, then `probes-<id>.parquet`):
written to a hidden temporary name and renamed into place (`os.replace` is atomic on POSIX), so a
reader never sees half a part and a kill leaves at worst a temporary file, which is ignored. The
probes part is written last: whatever it lists was finished, and its replies are already there.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import polars as pl

PART_SUFFIX: Final = ".parquet"
TEMPORARY_PREFIX: Final = ".tmp-"


class CheckpointStore:
    """A directory of parts. `write` adds one part per table; `load` reads a table's parts."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.parts_written = 0

    def parts(self, table: str) -> list[Path]:
        return sorted(
            path
            for path in self.directory.glob(f"{table}-*{PART_SUFFIX}")
            if not path.name.startswith(TEMPORARY_PREFIX)
        )

    def load(self, table: str, table_schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        """Every part of `table`, in the order written; an empty frame when there is none."""
        parts = self.parts(table)
        if not parts:
            return pl.DataFrame(schema=dict(table_schema))
        return pl.concat(
            [pl.read_parquet(part).select(list(table_schema)) for part in parts], how="vertical"
        ).cast(dict(table_schema))

    def write(self, tables: Mapping[str, pl.DataFrame]) -> str:
        """Writes one part per non-empty table, in the order given; returns the part's id."""
        # Time first, so parts sort in the order written; the random tail keeps two runs apart.
        part_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        for table, frame in tables.items():
            if frame.height == 0:
                continue
            final = self.directory / f"{table}-{part_id}{PART_SUFFIX}"
            temporary = self.directory / f"{TEMPORARY_PREFIX}{final.name}"
            frame.write_parquet(temporary)
            os.replace(temporary, final)
        self.parts_written += 1
        return part_id
