"""The prepare stage in one process (CSV in -> prepared Parquet out), so its peak RSS is its own."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from engine.export import write_prepared
from engine.ingest import email_cells, read_list
from engine.prepare import prepare


def run_prepare_stage(source: Path, target: Path) -> dict[str, float]:
    started = time.perf_counter()
    ingested = read_list(source)
    read_done = time.perf_counter()
    prepared = prepare(email_cells(ingested))
    prepare_done = time.perf_counter()
    write_prepared(prepared, target)
    finished = time.perf_counter()
    return {
        "rows": prepared.height,
        "read_s": read_done - started,
        "prepare_s": prepare_done - read_done,
        "write_s": finished - prepare_done,
        "total_s": finished - started,
        "syntax_invalid": int((~prepared.get_column("syntax_valid")).sum()),
        "duplicates": int(prepared.get_column("is_duplicate").sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    figures = run_prepare_stage(args.source, args.target)
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(figures, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
