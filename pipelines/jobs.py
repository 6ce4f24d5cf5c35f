"""Jobs that sensors and schedules target; the UI can materialise any asset without them."""

import dagster as dg

from assets.lists import list_rows, prepared_list

# Ingest only: later per-list stages follow their upstream by declarative automation, so a
# sensor run never has to know the whole chain.
ingest_list_job = dg.define_asset_job(
    name="ingest_list",
    selection=dg.AssetSelection.assets(list_rows, prepared_list),
    description="Read one landed list into rows and prepare it (with its blocking checks).",
)

# The whole per-list chain in one run: what backfills, schedules and re-verification request
# (the inbox runs ingest_list and lets automation carry the rest).
verify_list_job = dg.define_asset_job(
    name="verify_list",
    selection=dg.AssetSelection.groups("lists"),
    description="Verify one list end to end: rows, prepared, domains, probes, verdicts, results.",
)

# Declarative automation needs a sensor; this one runs from the start, so a dropped list flows
# through every stage with nobody toggling anything in the UI.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "mailsift_automation",
    target=dg.AssetSelection.groups("lists", "history"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
