"""Completion webhooks (issue 5 §4): a list's finished or failed run tells the user's endpoint.

Signing, retries, the SSRF guard and the delivery log are `engine.webhooks`; these sensors only
decide whether a run finished (or broke) a list, and find what it wrote. They watch every run of
this code location, not only `verify_list`: a dropped list is ingested by `ingest_list` and
carried to `list_results` by declarative automation, whose runs belong to no named job. They do
nothing until `webhook_url` is set, and never raise on a failed delivery (it is logged).
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import dagster as dg

from engine.webhooks import EventName, send_event
from pipelines.jobs import verify_list_job
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings

LIST_RESULTS_ASSET: Final = dg.AssetKey("list_results")
PARTITION_TAG: Final = "dagster/partition"


def finished_a_list(run: dg.DagsterRun) -> bool:
    """The run wrote a list's results: all of `verify_list`, or any selection with list_results.

    A re-run of earlier steps alone succeeds too but finishes nothing, so it sends no event.
    """
    if run.asset_selection:  # None or empty: the job's whole selection ran
        return LIST_RESULTS_ASSET in run.asset_selection
    return run.job_name == verify_list_job.name


def worked_on_a_list(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """The run was for one list partition (ingest, verify, or one automated step of either)."""
    key = run.tags.get(PARTITION_TAG)
    return key is not None and instance.has_dynamic_partition(lists_partitions.name, key)


def result_locations(layout: DataDirLayout, list_key: str) -> dict[str, Path]:
    """The list's output files that exist: a receiver is never sent a path to nothing."""
    candidates = {
        "results_csv": layout.results_file(list_key, "csv"),
        "results_parquet": layout.results_file(list_key, "parquet"),
        "summary": layout.summary_file(list_key),
        "report": layout.report_file(list_key),
    }
    return {name: path for name, path in candidates.items() if path.is_file()}


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _run_times(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[datetime | None, datetime | None]:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return None, None

    def moment(timestamp: float | None) -> datetime | None:
        return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)

    return moment(record.start_time), moment(record.end_time)


def notify(
    context: dg.RunStatusSensorContext,
    mailsift: MailsiftSettings,
    event: EventName,
    error: str | None = None,
) -> None:
    """Send `event` for the list of the run in `context`, if a webhook is configured.

    Returns None so Dagster goes on to the next finished run in the same tick.
    """
    run = context.dagster_run
    config = mailsift.config()
    if not config.webhook_url:
        return
    list_key = run.tags.get(PARTITION_TAG)
    if list_key is None:
        context.log.warning(f"run {run.run_id} of {run.job_name} names no list; no webhook sent")
        return
    layout = DataDirLayout(config.data_dir)
    completed = event == "list.completed"
    started_at, finished_at = _run_times(context.instance, run.run_id)
    result = send_event(
        event,
        config,
        list_id=list_key,
        run_id=run.run_id,
        # A failed run's summary.json, if any, is an earlier run's: not the figures of this one.
        summary=_read_summary(layout.summary_file(list_key)) if completed else {},
        locations=result_locations(layout, list_key) if completed else {},
        started_at=started_at,
        finished_at=finished_at,
        error=error,
    )
    if result.delivered:
        context.log.info(f"{event} for {list_key} delivered (HTTP {result.status_code})")
    else:
        context.log.warning(f"{event} for {list_key} not delivered: {result.error}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs a signed list.completed webhook when a run writes a list's results.",
)
def list_completed_webhook(context: dg.RunStatusSensorContext, mailsift: MailsiftSettings) -> None:
    if finished_a_list(context.dagster_run):
        notify(context, mailsift, "list.completed")


def _failure_reason(context: dg.RunFailureSensorContext) -> str:
    """The first failed step's own exception, which says more than "Steps failed: [...]"."""
    for step_event in context.get_step_failure_events():
        error = step_event.step_failure_data.error
        if error is not None:
            # Dagster wraps the step's exception ("Error occurred while executing op ..."); the
            # innermost cause is the one a person can act on.
            while error.cause is not None:
                error = error.cause
            return f"{step_event.step_key}: {error.message}"
    return context.failure_event.message or "the run failed"


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs a signed list.failed webhook when a run working on a list fails.",
)
def list_failed_webhook(context: dg.RunFailureSensorContext, mailsift: MailsiftSettings) -> None:
    if worked_on_a_list(context.instance, context.dagster_run):
        notify(context, mailsift, "list.failed", error=_failure_reason(context))
