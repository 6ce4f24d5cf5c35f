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
from engine.sharding import merge_shards, merge_stats, shard_config, split_into_shards
from engine.stages import check_dns, conclude, probe_budget, probe_smtp, screen, within_budget
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
_SHARD, _PROBED = "shard", "probed"  # per-shard input and output: shard-<i>, probed-<i>


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
    # The run's id from here to list_verdicts: a step re-executed after a failure belongs to the
    # run that began here, so its history is appended once (engine.remember).
    run_id = context.run.run_id
    prepared = read_prepared(layout.prepared_file(key))
    screened = screen(prepared, config, now, run_id)
    for part in screened.stats.get("history_parts_quarantined", []):
        context.log.warning(f"history part quarantined: {part}")
    fresh, dns_stats = check_dns(screened.fresh, config, SilentProgress(), screened.known_domains)
    _write(fresh, layout.stage_file(key, _DOMAINS))
    _write(screened.cached, layout.stage_file(key, _CACHED))
    _save_run_state(
        mailsift,
        key,
        {
            "started_at": now.isoformat(),
            "run_id": run_id,
            "stats": {**screened.stats, "dns": dns_stats},
        },
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


@dg.op(
    ins={"domains_ready": dg.In(dg.Nothing)},
    out=dg.DynamicOut(int),
    description="Apply the run's probe budget, then split the plan by MX host into shards.",
)
def plan_probe_shards(context: dg.OpExecutionContext, mailsift: MailsiftSettings):  # noqa: ANN201
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    state = _run_state(mailsift, key)
    fresh = pl.read_parquet(layout.stage_file(key, _DOMAINS))
    budget_stats: dict[str, Any] = {}
    if config.depth == "smtp":
        now = datetime.fromisoformat(state["started_at"])
        fresh, budget_stats = within_budget(fresh, probe_budget(config, now))
    state["stats"]["smtp_budget"] = budget_stats
    _save_run_state(mailsift, key, state)
    for index, shard in enumerate(split_into_shards(fresh, config.probe_shards)):
        _write(shard, layout.stage_file(key, f"{_SHARD}-{index}"))
        yield dg.DynamicOutput(index, mapping_key=f"shard_{index}")


@dg.op(pool=SMTP_POOL, description="Probe one shard (RCPT only, never DATA); checkpointed.")
def probe_shard(context: dg.OpExecutionContext, mailsift: MailsiftSettings, shard: int) -> int:
    config, layout, key = mailsift.config(), mailsift.layout(), context.partition_key
    frame = pl.read_parquet(layout.stage_file(key, f"{_SHARD}-{shard}"))
    probed, replies, stats = frame, pl.DataFrame(), {}
    if config.depth == "smtp":
        probed, found, stats = probe_smtp(
            frame,
            shard_config(config, config.probe_shards),
            SilentProgress(),
            layout.checkpoint_dir(key) / f"{_SHARD}-{shard}",
        )
        replies = found if found is not None else replies
    _write(probed, layout.stage_file(key, f"{_PROBED}-{shard}"))
    _write(replies, layout.stage_file(key, f"{_REPLIES}-{shard}"))
    with atomic_output(layout.list_dir(key) / f"{_PROBED}-{shard}.json") as temporary:
        temporary.write_text(json.dumps(stats, default=str))
    context.log.info(f"shard {shard}: {frame.height} addresses, {stats.get('rcpts_sent', 0)} RCPTs")
    return shard


@dg.op(out=dg.Out(dg.Nothing), description="Merge the shards back into list order.")
def merge_probe_shards(
    context: dg.OpExecutionContext, mailsift: MailsiftSettings, shards: list[int]
) -> None:
    layout, key = mailsift.layout(), context.partition_key
    state = _run_state(mailsift, key)
    order = sorted(shards)
    probed = merge_shards(
        [pl.read_parquet(layout.stage_file(key, f"{_PROBED}-{i}")) for i in order]
    )
    replies = pl.concat(
        [pl.read_parquet(layout.stage_file(key, f"{_REPLIES}-{i}")) for i in order],
        how="diagonal_relaxed",
    )
    stats = merge_stats(
        [json.loads((layout.list_dir(key) / f"{_PROBED}-{i}.json").read_text()) for i in order]
    )
    smtp_stats = {**stats, **state["stats"].pop("smtp_budget", {}), "shards": len(order)}
    if smtp_stats.get("data_commands", 0):
        raise RuntimeError("the prober sent DATA: this must never happen")
    _write(probed, layout.stage_file(key, _PROBES))
    _write(replies, layout.stage_file(key, _REPLIES))
    if stats:
        state["stats"]["smtp"] = smtp_stats
    _save_run_state(mailsift, key, state)
    keys = ("addresses", "sessions", "rcpts_sent", "reserved", "not_probed_over_budget", "shards")
    metadata: dict[str, Any] = {name: int(smtp_stats.get(name) or 0) for name in keys}
    metadata["budget_exhausted"] = bool(smtp_stats.get("budget_exhausted", False))
    metadata["makespan_s"] = float(smtp_stats.get("makespan_s") or 0.0)
    if "rcpt_class" in probed.columns:
        metadata["rcpt_classes"] = _counts_markdown(probed.drop_nulls("rcpt_class"), "rcpt_class")
    context.add_output_metadata(metadata)


@dg.graph_asset(
    partitions_def=lists_partitions,
    ins={"list_domains": dg.AssetIn(dagster_type=dg.Nothing)},
    group_name="lists",
    kinds={"smtp", "parquet"},
    automation_condition=FOLLOW_UPSTREAM,
    description="SMTP evidence per address (RCPT only, never DATA), within the probe budget, "
    "probed in `probe_shards` shards split by MX host; each shard checkpoints, so a retry "
    "resumes.",
)
def list_probes(list_domains: None) -> None:
    shards = plan_probe_shards(list_domains)
    return merge_probe_shards(shards.map(probe_shard).collect())


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
        run_id=state.get("run_id", context.run.run_id),
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
