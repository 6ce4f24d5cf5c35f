"""Global history assets: the SQL catalog over every list's verdicts and the feedback.

`history_catalog` is the only writer of `mailsift.duckdb` in Dagster (pool limit 1): the file is
views only, rebuilt whole and renamed into place, so readers never wait for it.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import dagster as dg

from assets.verification import list_verdicts
from engine.catalog import VIEWS, build_catalog
from pipelines.resources import MailsiftSettings

CATALOG_POOL = "mailsift_catalog"


@dg.asset(
    deps=[list_verdicts],
    group_name="history",
    kinds={"duckdb", "sql"},
    pool=CATALOG_POOL,
    automation_condition=dg.AutomationCondition.eager(),
    description="mailsift.duckdb: one view per sql/*.sql file over the Parquet history "
    "(verdicts, latest_verdicts, feedback, list_summaries, domain_health, ledger).",
)
def history_catalog(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    path = build_catalog(mailsift.config().data_dir)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "views": ", ".join(VIEWS)}
    )
