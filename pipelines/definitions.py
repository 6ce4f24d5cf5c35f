"""The one place that lists everything Dagster loads (`dagster dev -w workspace.yaml`, `dg dev`)."""

from __future__ import annotations

import dagster as dg

from assets.lists import list_rows, prepared_list, prepared_rows_conserved
from pipelines.resources import MailsiftSettings

defs = dg.Definitions(
    assets=[list_rows, prepared_list],
    asset_checks=[prepared_rows_conserved],
    resources={"mailsift": MailsiftSettings()},
)
