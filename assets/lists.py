"""Per-list assets: the landed file read into rows, then prepared (normalised, deduped, syntax).

Thin wrappers over engine functions; each writes its own Parquet and reports counts and a preview.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from engine import schema
from engine.ingest import read_list
from engine.prepare import prepare_file, read_prepared
from engine.privacy import AddressDisplay, addresses_shown
from engine.quote import quote_prepared
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings

PREVIEW_ROWS = 10
MANIFEST_NAME = "manifest.json"


def _write_parquet_atomically(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(temp, compression="zstd")
    os.replace(temp, path)
    return path


def _preview(
    frame: pl.DataFrame, display: AddressDisplay, email_column: str | None = None
) -> dg.MetadataValue:
    """The first rows as markdown, addresses hashed if `log_addresses` says so.

    Metadata is a log: kept in the instance and shown to everyone with access to the UI.
    """
    email_columns = [email_column] if email_column else []
    shown = addresses_shown(frame.head(PREVIEW_ROWS), display, email_columns)
    # No width limit: Polars wraps long cells onto extra lines, which a markdown table shows as
    # broken rows (and which split a hashed address in two, so nobody could search for it).
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_dataframe_shape=True,
        fmt_str_lengths=60,
        tbl_width_chars=-1,
        tbl_cols=-1,
    ):
        return dg.MetadataValue.md(str(shown))


@dg.asset(
    partitions_def=lists_partitions,
    group_name="lists",
    kinds={"polars", "parquet"},
    description="The landed list file as-is: original columns, input order, email column found.",
)
def list_rows(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    layout = mailsift.layout()
    key = context.partition_key
    source = layout.landed_file(key)
    config = mailsift.config()
    ingested = read_list(source, column=config.column)
    for warning in ingested.warnings:
        context.log.warning(warning)
    rows_path = _write_parquet_atomically(ingested.originals, layout.rows_file(key))
    manifest = {
        "source": str(source),
        "format": ingested.format,
        "email_column": ingested.email_column,
        "encoding": ingested.encoding,
        "has_header": ingested.has_header,
        "rows": ingested.originals.height,
        "warnings": list(ingested.warnings),
    }
    (layout.list_dir(key) / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": ingested.originals.height,
            "path": dg.MetadataValue.path(str(rows_path)),
            "email_column": ingested.email_column,
            "encoding": ingested.encoding,
            "warnings": len(ingested.warnings),
            "preview": _preview(ingested.originals, config.log_addresses, ingested.email_column),
        }
    )


def _manifest(mailsift: MailsiftSettings, key: str) -> dict[str, Any]:
    return json.loads((mailsift.layout().list_dir(key) / MANIFEST_NAME).read_text())


@dg.asset(
    partitions_def=lists_partitions,
    deps=[list_rows],
    group_name="lists",
    kinds={"polars", "parquet"},
    description="Normalised, deduplicated and syntax-checked addresses, one row per input row.",
)
def prepared_list(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    config, layout = mailsift.config(), mailsift.layout()
    key = context.partition_key
    # The streamed path from the landed file, read as list_rows read it (tests hold it equal to
    # prepare() over list_rows' cells).
    written = prepare_file(layout.landed_file(key), layout.prepared_file(key), column=config.column)
    path = written.path
    prepared = read_prepared(path)
    quote = quote_prepared(prepared)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": prepared.height,
            "path": dg.MetadataValue.path(str(path)),
            **{name: dg.MetadataValue.int(value) for name, value in quote.items()},
            "preview": _preview(prepared, config.log_addresses),
        }
    )


@dg.asset_check(asset=prepared_list, blocking=True, description="Rows out == rows in, same order.")
def prepared_rows_conserved(
    context: dg.AssetCheckExecutionContext, mailsift: MailsiftSettings
) -> dg.AssetCheckResult:
    layout = mailsift.layout()
    key = context.partition_key if context.has_partition_key else None
    if key is None:
        return dg.AssetCheckResult(passed=False, description="run per list partition")
    rows_in = pl.scan_parquet(layout.rows_file(key)).select(pl.len()).collect().item()
    prepared = pl.scan_parquet(layout.prepared_file(key))
    ids = prepared.select(
        rows=pl.len(), in_order=(pl.col(schema.ROW_ID).diff().fill_null(1) == 1).all()
    ).collect()
    rows_out, in_order = ids.item(0, "rows"), ids.item(0, "in_order")
    return dg.AssetCheckResult(
        passed=bool(rows_in == rows_out and in_order),
        metadata={"rows_in": rows_in, "rows_out": rows_out, "in_order": bool(in_order)},
    )
