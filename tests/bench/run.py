"""`make bench`: the prepare stage against its named baseline, side by side in one run.

Writes every figure to a JSON file (default build/bench.json). Not a test: nothing asserts a
time; the targets (issue 2) are printed next to the measurements so a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
from email_validator import EmailNotValidError, validate_email

from engine.ingest import email_cells, read_list
from engine.prepare import prepare
from tests.bench import bench_dns, bench_history, bench_smtp
from tests.bench.generate import generate_list
from tests.bench.prepare_stage import run_prepare_stage

SECTIONS = ("prepare", "dns", "smtp", "history")
TARGET_ROWS_PER_S = 1_500_000
TARGET_SPEEDUP = 40
TARGET_AGREEMENT = 0.9999
TARGET_PEAK_RSS_MIB_10M = 3 * 1024


def _baseline_verdicts(addresses: list[str]) -> tuple[list[bool], float]:
    """email-validator per row, the way a script without mailsift would do it."""
    verdicts: list[bool] = []
    started = time.perf_counter()
    for address in addresses:
        try:
            validate_email(address, check_deliverability=False, strict=True)
            verdicts.append(True)
        except EmailNotValidError:
            verdicts.append(False)
    return verdicts, time.perf_counter() - started


def bench_prepare(data_dir: Path, rows: int, repeats: int) -> dict[str, Any]:
    source = generate_list(rows, seed=2026, path=data_dir / f"list-{rows}.csv")
    runs = [run_prepare_stage(source, data_dir / "prepared.parquet") for _ in range(repeats)]
    best = min(runs, key=lambda r: r["total_s"])
    mailsift_rows_per_s = rows / best["total_s"]

    prepared = prepare(email_cells(read_list(source)))
    cells = prepared.get_column("email_raw").fill_null("").str.strip_chars().to_list()
    baseline, baseline_s = _baseline_verdicts(cells)
    baseline_rows_per_s = rows / baseline_s

    ours = prepared.get_column("syntax_valid").to_list()
    disagreements = [
        {"cell": cells[i][:200], "mailsift": ours[i], "email_validator": baseline[i]}
        for i in range(rows)
        if ours[i] != baseline[i]
    ]
    return {
        "rows": rows,
        "repeats": repeats,
        "stage_seconds": {k: round(v, 4) for k, v in best.items() if k.endswith("_s")},
        "stage_total_s_all_runs": [round(r["total_s"], 4) for r in runs],
        "stage_total_s_median": round(statistics.median(r["total_s"] for r in runs), 4),
        "mailsift_rows_per_s": round(mailsift_rows_per_s),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "baseline": "email_validator.validate_email(cell.strip(), check_deliverability=False, "
        "strict=True) per row",
        "baseline_s": round(baseline_s, 3),
        "baseline_rows_per_s": round(baseline_rows_per_s),
        "speedup": round(mailsift_rows_per_s / baseline_rows_per_s, 1),
        "target_speedup": TARGET_SPEEDUP,
        "agreement": round(1 - len(disagreements) / rows, 6),
        "target_agreement": TARGET_AGREEMENT,
        "disagreements": len(disagreements),
        "disagreement_examples": disagreements[:50],
        "syntax_invalid": best["syntax_invalid"],
        "duplicates": best["duplicates"],
    }


def bench_peak_rss(data_dir: Path, rows: int) -> dict[str, Any]:
    source = generate_list(rows, seed=2027, path=data_dir / f"list-{rows}.csv")
    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench.prepare_stage", str(source), str(data_dir / "big.pq")],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(completed.stdout)
    return {
        "rows": rows,
        "input_mib": round(source.stat().st_size / 2**20, 1),
        "peak_rss_mib": round(figures["peak_rss_mib"], 1),
        "target_peak_rss_mib": TARGET_PEAK_RSS_MIB_10M,
        "total_s": round(figures["total_s"], 3),
        "rows_per_s": round(rows / figures["total_s"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench.json"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("build/bench-data"))
    parser.add_argument("--dns-domains", type=int, default=2000)
    parser.add_argument("--smtp-addresses", type=int, default=50_000)
    parser.add_argument("--history-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)"
    )
    args = parser.parse_args()
    sections = args.only or SECTIONS
    args.data_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "polars": pl.__version__,
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        }
    }
    if "prepare" in sections:
        report["prepare"] = bench_prepare(args.data_dir, args.rows, args.repeats)
        if args.big_rows:
            report["prepare_peak_rss"] = bench_peak_rss(args.data_dir, args.big_rows)
    if "dns" in sections:
        report["dns"] = bench_dns.run(args.dns_domains)
    if "smtp" in sections:
        report["smtp"] = bench_smtp.run(args.smtp_addresses)
    if "history" in sections:
        report["history"] = bench_history.run(args.rows, args.history_rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    shown = {
        name: {k: v for k, v in part.items() if k not in ("disagreement_examples", "profile")}
        if isinstance(part, dict)
        else part
        for name, part in report.items()
    }
    print(json.dumps(shown, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
