"""The embedded instance: created under the data dir, polite pool limits, never overwritten."""

from __future__ import annotations

import dagster as dg

from pipelines.instance import MAX_CONCURRENT_RUNS, POOL_LIMIT, ensure_dagster_home
from pipelines.layout import DataDirLayout


def test_the_embedded_instance_limits_pools_and_runs(tmp_path, monkeypatch):
    home = ensure_dagster_home(DataDirLayout(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()

    assert home == (tmp_path / "data" / "dagster_home").resolve()
    assert config.pool_config.default_pool_limit == POOL_LIMIT
    assert config.run_queue_config.max_concurrent_runs == MAX_CONCURRENT_RUNS


def test_a_teams_own_dagster_yaml_is_kept(tmp_path):
    layout = DataDirLayout(tmp_path)
    layout.dagster_home.mkdir(parents=True)
    (layout.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ensure_dagster_home(layout)
    assert (layout.dagster_home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
