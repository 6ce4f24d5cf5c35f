"""Per-list assets materialised for real on an ephemeral instance over a landed file."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from assets.lists import list_rows, prepared_list, prepared_rows_conserved
from pipelines.layout import DataDirLayout
from pipelines.partitions import list_key_for, lists_partitions
from pipelines.resources import MailsiftSettings


def _land(home: Path, name: str, text: str) -> str:
    staged = home / "staging" / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(text)
    key = list_key_for(staged)
    target = DataDirLayout(home).landing_dir(key)
    target.mkdir(parents=True)
    staged.rename(target / name)
    return key


def test_list_key_is_safe_and_stable_for_the_same_bytes(tmp_path):
    first = tmp_path / "My List, [2026] | final.csv"
    first.write_text("email\na@example.com\n")
    second = tmp_path / "copy.csv"
    second.write_text("email\na@example.com\n")
    key = list_key_for(first)
    assert not set(key) & set("|,[] ")
    assert key == list_key_for(first)
    assert key.split("-")[-1] == list_key_for(second).split("-")[-1]


def test_rows_and_prepared_materialise_with_counts_and_conserve_rows(tmp_path):
    home = tmp_path / "home"
    key = _land(home, "customers.csv", "Email,Name\na@example.com,A\nA@example.com,B\nbroken,C\n")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(lists_partitions.name, [key])
    result = dg.materialize(
        [list_rows, prepared_list, prepared_rows_conserved],
        partition_key=key,
        instance=instance,
        resources={"mailsift": MailsiftSettings(data_dir=str(home))},
    )
    assert result.success
    prepared = pl.read_parquet(DataDirLayout(home).prepared_file(key))
    assert prepared.height == 3
    materialization = result.asset_materializations_for_node("prepared_list")[0]
    assert materialization.metadata["duplicates"].value == 1
    assert materialization.metadata["syntax_invalid"].value == 1
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]


def test_prepared_list_equals_prepare_over_the_rows_for_awkward_files(tmp_path):
    from engine.prepare import prepare, read_prepared

    home = tmp_path / "home"
    files = {
        "plain.txt": "b@example.com\n Bob <B@Example.com>\nbroken\n",
        "semi.csv": 'id;E-Mail\n1;mailto:c@example.org\n2;"d"@example.org\n3;c@EXAMPLE.org\n',
    }
    instance = dg.DagsterInstance.ephemeral()
    for name, text in files.items():
        key = _land(home, name, text)
        instance.add_dynamic_partitions(lists_partitions.name, [key])
        assert dg.materialize(
            [list_rows, prepared_list],
            partition_key=key,
            instance=instance,
            resources={"mailsift": MailsiftSettings(data_dir=str(home))},
        ).success
        layout = DataDirLayout(home)
        manifest = json.loads((layout.list_dir(key) / "manifest.json").read_text())
        originals = pl.read_parquet(layout.rows_file(key))
        cells = pl.DataFrame(
            {
                "row_id": pl.int_range(originals.height, dtype=pl.UInt64, eager=True),
                "email_raw": originals.get_column(manifest["email_column"]).cast(pl.String),
            }
        )
        expected = prepare(cells).drop("email_raw")
        read = read_prepared(layout.prepared_file(key))
        assert read.select(expected.columns).equals(expected), name
