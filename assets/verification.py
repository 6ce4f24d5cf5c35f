"""Per-list verification assets: prepared -> domains -> probes -> verdicts -> results.

Each asset runs one engine.stages function and keeps its frame as Parquet in the list's folder, so
a step can be re-run alone from the UI (a failed probe step resumes from its checkpoint). The run's
clock starts at `list_domains` (its `run.json`), so every later step stamps the same check time.
Downstream steps follow their upstream by declarative automation; probing is in the
`smtp_probes` pool, so a backfill of many lists cannot multiply the load on one MX (the engine's
per-MX caps hold inside each run, the pool bounds how many runs probe at once).
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from assets.lists import PREVIEW_ROWS, list_rows, prepared_list
from engine.export import assemble_results, atomic_output, build_summary, write_results
from engine.export import write_summary as write_summary_file
from engine.prepare import read_prepared
from engine.progress import SilentProgress
from engine.remember import remember_run
from engine.report import status_markdown, write_report
from engine.stages import check_dns, check_smtp, conclude, screen
from engine.taxonomy import Status
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings

SMTP_POOL = "smtp_probes"
# Every per-list step after ingest runs once its upstream has new data.
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()
_RUN_FILE = "run.json"
_DOMAINS, _CACHED, _PROBES, _REPLIES, _VERDICTS = (
    "domains",
    "cached",
    "probes",
    "replies",
    "verdicts",
)


def _write(frame: pl.DataFrame, path: Path) -> Path:
    with atomic_output(path) as temporary:
        frame.write_parquet(temporary, compression="lz4")
    return path


def _run_state(mailsift: MailsiftSettings, key: str) -> dict[str, Any]:
    return json.loads((mailsift.layout().list_dir(key) / _RUN_FILE).read_text())


def _save_run_state(mailsift: MailsiftSettings, key: str, state: dict[str, Any]) -> None:
    with atomic_output(mailsift.layout().list_dir(key) / _RUN_FILE) as temporary:
        temporary.write_text(json.dumps(state, indent=2, default=str))


def _counts_markdown(frame: pl.DataFrame, column: str) -> dg.MetadataValue:
    counts = frame.group_by(column).len().sort("len", descending=True).head(PREVIEW_ROWS * 3)
    lines = [f"| {column} | rows |", "|---|---:|"]
    lines += [f"| {value} | {rows:,} |" for value, rows in counts.iter_rows()]
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    partitions_def=lists_partitions,
    deps=[prepared_list],
    group_name="lists",
    kinds={"polars", "dns", "parquet"},
    automation_condition=FOLLOW_UPSTREAM,
    description="Unique addresses after what history and your lists know, with DNS facts per "
    "unique domain; fresh cached verdicts are set aside (no DNS, no probe).",
)
def list_domains(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    now = datetime.now(UTC)
    prepared = read_prepared(layout.prepared_file(key))
    screened = screen(prepared, config, now)
    for part in screened.stats.get("history_parts_quarantined", []):
        context.log.warning(f"history part quarantined: {part}")
    fresh, dns_stats = check_dns(screened.fresh, config, SilentProgress(), screened.known_domains)
    _write(fresh, layout.stage_file(key, _DOMAINS))
    _write(screened.cached, layout.stage_file(key, _CACHED))
    _save_run_state(
        mailsift,
        key,
        {"started_at": now.isoformat(), "stats": {**screened.stats, "dns": dns_stats}},
    )
    metadata: dict[str, Any] = {
        "dagster/row_count": fresh.height + screened.cached.height,
        "unique_addresses": screened.stats["unique_addresses"],
        "cached_verdicts": screened.cached.height,
        "domains_looked_up": dns_stats.get("dns_domains", 0),
        "domains_from_history": dns_stats.get("dns_domains_from_history", 0),
        "depth": config.depth,
    }
    if "dns_outcome" in fresh.columns:
        metadata["dns_outcomes"] = _counts_markdown(fresh.drop_nulls("dns_outcome"), "dns_outcome")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=lists_partitions,
    deps=[list_domains],
    group_name="lists",
    kinds={"smtp", "parquet"},
    pool=SMTP_POOL,
    automation_condition=FOLLOW_UPSTREAM,
    description="SMTP evidence per address (RCPT only, never DATA), within the probe budget; "
    "finished MX batches are checkpointed, so a retry resumes.",
)
def list_probes(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    state = _run_state(mailsift, key)
    fresh = pl.read_parquet(layout.stage_file(key, _DOMAINS))
    now = datetime.fromisoformat(state["started_at"])
    probed, replies, smtp_stats = check_smtp(
        fresh, config, SilentProgress(), layout.checkpoint_dir(key), now
    )
    _write(probed, layout.stage_file(key, _PROBES))
    _write(replies if replies is not None else pl.DataFrame(), layout.stage_file(key, _REPLIES))
    state["stats"]["smtp"] = smtp_stats
    _save_run_state(mailsift, key, state)
    if smtp_stats.get("data_commands", 0):
        raise RuntimeError("the prober sent DATA: this must never happen")
    keys = ("addresses", "sessions", "rcpts_sent", "reserved", "not_probed_over_budget")
    metadata: dict[str, Any] = {name: int(smtp_stats.get(name) or 0) for name in keys}
    metadata["budget_exhausted"] = bool(smtp_stats.get("budget_exhausted", False))
    metadata["makespan_s"] = float(smtp_stats.get("makespan_s") or 0.0)
    if "rcpt_class" in probed.columns:
        metadata["rcpt_classes"] = _counts_markdown(probed.drop_nulls("rcpt_class"), "rcpt_class")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=lists_partitions,
    deps=[list_probes],
    group_name="lists",
    kinds={"polars", "parquet", "duckdb"},
    automation_condition=FOLLOW_UPSTREAM,
    description="One verdict per input row (status, sub_status, score, evidence), appended to "
    "the history with the run's ledger row.",
)
def list_verdicts(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    state = _run_state(mailsift, key)
    started_at = datetime.fromisoformat(state["started_at"])
    prepared = read_prepared(layout.prepared_file(key))
    probed = pl.read_parquet(layout.stage_file(key, _PROBES))
    cached = pl.read_parquet(layout.stage_file(key, _CACHED))
    rows, decided = conclude(prepared, probed, cached, config, started_at)
    _write(rows, layout.stage_file(key, _VERDICTS))
    replies = pl.read_parquet(layout.stage_file(key, _REPLIES))
    remembered = remember_run(
        decided,
        replies if replies.height else None,
        state["stats"],
        data_dir=config.data_dir,
        run_id=context.run.run_id,
        list_id=key,
        depth=config.depth,
        rows=rows.height,
        started_at=started_at,
        checked_at=started_at,
        rebuild_catalog=False,
    )
    state.update(run_id=remembered.run_id, ledger=remembered.ledger)
    _save_run_state(mailsift, key, state)
    # The probe checkpoint resumes a failed probe step; once its answers are in the history, the
    # next materialisation must probe the unknowns again (probes.parquet keeps this run's).
    shutil.rmtree(layout.checkpoint_dir(key), ignore_errors=True)
    unknown = rows.filter(pl.col("status") == Status.UNKNOWN.value).height
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.height,
            "statuses": _counts_markdown(rows, "status"),
            "unknown_rate": round(unknown / rows.height, 4) if rows.height else 0.0,
            **{f"ledger_{name}": value for name, value in remembered.ledger.items()},
        }
    )


@dg.asset(
    partitions_def=lists_partitions,
    deps=[list_verdicts, list_rows],
    group_name="lists",
    kinds={"csv", "parquet", "html"},
    automation_condition=FOLLOW_UPSTREAM,
    description="The results contract (original columns first) as CSV and Parquet, "
    "summary.json and a self-contained report.html.",
)
def list_results(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    state = _run_state(mailsift, key)
    originals = pl.read_parquet(layout.rows_file(key))
    verdicts = pl.read_parquet(layout.stage_file(key, _VERDICTS))
    results = assemble_results(originals, verdicts)
    csv_path = write_results(results, layout.results_file(key, "csv"))
    parquet_path = write_results(results, layout.results_file(key, "parquet"))
    summary = build_summary(
        results,
        extra={
            "list_id": key,
            "run_id": state.get("run_id"),
            "depth": config.depth,
            **state["stats"],
            "ledger": state.get("ledger"),
            "results": {"csv": str(csv_path), "parquet": str(parquet_path)},
        },
    )
    summary_path = write_summary_file(summary, layout.summary_file(key))
    report_path = write_report(
        results, summary, layout.report_file(key), ledger=state.get("ledger")
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": results.height,
            "status_chart": dg.MetadataValue.md(status_markdown(summary)),
            "results_csv": dg.MetadataValue.path(str(csv_path)),
            "results_parquet": dg.MetadataValue.path(str(parquet_path)),
            "summary": dg.MetadataValue.path(str(summary_path)),
            "report": dg.MetadataValue.path(str(report_path)),
        }
    )
