"""The one place that lists everything Dagster loads (`dagster dev -w workspace.yaml`, `dg dev`)."""

from __future__ import annotations

import dagster as dg

from assets.checks import (
    prepared_rates_plausible,
    result_rows_conserved,
    unknown_rate_spike,
    verdict_rows_conserved,
)
from assets.feedback import feedback_events
from assets.history import history_catalog
from assets.lists import list_rows, prepared_list, prepared_rows_conserved
from assets.verification import list_domains, list_probes, list_results, list_verdicts
from pipelines.feedback_sensor import feedback_sensor
from pipelines.jobs import automation_sensor, ingest_list_job, verify_list_job
from pipelines.resources import MailsiftSettings
from pipelines.schedules import reverify_stale_verdicts
from pipelines.sensors import inbox_sensor
from pipelines.webhook_sensors import list_completed_webhook, list_failed_webhook

defs = dg.Definitions(
    assets=[
        list_rows,
        prepared_list,
        list_domains,
        list_probes,
        list_verdicts,
        list_results,
        history_catalog,
        feedback_events,
    ],
    asset_checks=[
        prepared_rows_conserved,
        prepared_rates_plausible,
        verdict_rows_conserved,
        unknown_rate_spike,
        result_rows_conserved,
    ],
    jobs=[ingest_list_job, verify_list_job],
    schedules=[reverify_stale_verdicts],
    sensors=[
        inbox_sensor,
        automation_sensor,
        feedback_sensor,
        list_completed_webhook,
        list_failed_webhook,
    ],
    resources={"mailsift": MailsiftSettings()},
)
