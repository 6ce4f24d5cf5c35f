"""The Dagster code location loads, with the assets, partitions and checks users expect."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_list_assets_are_partitioned_by_list():
    graph = defs.resolve_asset_graph()
    for key in (dg.AssetKey("list_rows"), dg.AssetKey("prepared_list")):
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "lists"


def test_prepared_list_has_a_blocking_row_conservation_check():
    graph = defs.resolve_asset_graph()
    key = dg.AssetCheckKey(dg.AssetKey("prepared_list"), "prepared_rows_conserved")
    assert key in graph.asset_check_keys
    assert graph.get_check_spec(key).blocking
