"""The one place that lists everything Dagster loads (`dagster dev -w workspace.yaml`, `dg dev`)."""

from __future__ import annotations

import dagster as dg

from assets.lists import list_rows, prepared_list, prepared_rows_conserved
from pipelines.jobs import ingest_list_job
from pipelines.resources import MailsiftSettings
from pipelines.sensors import inbox_sensor

defs = dg.Definitions(
    assets=[list_rows, prepared_list],
    asset_checks=[prepared_rows_conserved],
    jobs=[ingest_list_job],
    sensors=[inbox_sensor],
    resources={"mailsift": MailsiftSettings()},
)
