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
