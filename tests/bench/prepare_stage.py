"""The prepare stage in one process (CSV in -> prepared Parquet out), so its peak RSS is its own."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.prepare import prepare_file
from tests.bench.memory import peak_rss_mib


def run_prepare_stage(source: Path, target: Path) -> dict[str, float]:
    """prepare_file() timed: reading, checking and writing overlap, so only the total is timed."""
    started = time.perf_counter()
    prepared = prepare_file(source, target)
    return {
        "rows": prepared.rows,
        "total_s": time.perf_counter() - started,
        "syntax_invalid": prepared.syntax_invalid,
        "duplicates": prepared.duplicates,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    figures = run_prepare_stage(args.source, args.target)
    figures["peak_rss_mib"] = peak_rss_mib()
    json.dump(figures, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
