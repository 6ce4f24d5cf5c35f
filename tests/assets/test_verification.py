"""The whole per-list chain materialised on a real instance against the sandbox world: the same
verdicts as `verify_file`, checks passing, every stage's file written, history appended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import polars as pl
import pytest

from engine.catalog import run_sql
from engine.config import load_config
from engine.history import HISTORY_DIR_NAME, LEDGER, VERDICTS, list_parts, run_parts
from engine.sandbox.demo_world import demo_world, write_demo_list
from engine.sandbox.probe_settings import sandbox_overrides
from engine.sandbox.running import spawn_world
from engine.verify import verify_file
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings
from tests.assets.test_lists import _land

ROWS = 600


@pytest.fixture(scope="module")
def world():
    running = spawn_world(demo_world(server_latency_s=(0.0, 0.0), dns_latency_s=0.0))
    with running as started:
        yield started


def _sandbox_env(world, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    overrides = sandbox_overrides(world.dns_address, world.smtp_port)
    for name, value in overrides.items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        monkeypatch.setenv(f"MAILSIFT_{name.upper()}", text)
    return overrides


def test_the_chain_gives_the_verdicts_of_verify_file(world, tmp_path, monkeypatch):
    overrides = _sandbox_env(world, monkeypatch)
    source = write_demo_list(tmp_path / "demo.csv", rows=ROWS)
    home = tmp_path / "home"
    key = _land(home, "demo.csv", source.read_text())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(lists_partitions.name, [key])

    job = defs.resolve_job_def("verify_list")
    result = job.execute_in_process(
        instance=instance,
        partition_key=key,
        resources={"mailsift": MailsiftSettings(data_dir=str(home), depth="smtp")},
    )

    assert result.success
    layout = DataDirLayout(home)
    results = pl.read_parquet(layout.results_file(key, "parquet"))
    reference = verify_file(
        [source], load_config({**overrides, "data_dir": tmp_path / "ref", "depth": "smtp"})
    ).results
    assert results.height == ROWS
    shown = ["email", "status", "sub_status"]
    assert results.select(shown).equals(reference.select(shown))
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "prepared_rows_conserved": True,
        "prepared_rates_plausible": True,
        "verdict_rows_conserved": True,
        "unknown_rate_spike": True,
        "result_rows_conserved": True,
    }
    summary = json.loads(layout.summary_file(key).read_text())
    assert summary["total_rows"] == ROWS and summary["list_id"] == key
    assert summary["smtp"]["data_commands"] == 0
    assert "<svg" in layout.report_file(key).read_text()
    ledger = run_sql(home, "SELECT list_id, rows FROM ledger").rows()
    assert ledger == [(key, ROWS)]
    chart = result.asset_materializations_for_node("list_results")[0].metadata["status_chart"]
    assert "data:image/png;base64," in chart.value


class _LandedList(NamedTuple):
    home: Path
    key: str
    instance: dg.DagsterInstance

    def verify(self, **options: object) -> dg.ExecuteInProcessResult:
        """Run `verify_list` for this list on its instance (options: e.g. op_selection)."""
        resources = {"mailsift": MailsiftSettings(data_dir=str(self.home), depth="smtp")}
        return defs.resolve_job_def("verify_list").execute_in_process(
            instance=self.instance, partition_key=self.key, resources=resources, **options
        )


def _landed(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _LandedList:
    """A 200-row demo list landed and registered as a partition of a fresh instance."""
    _sandbox_env(world, monkeypatch)
    source = write_demo_list(tmp_path / "demo.csv", rows=200)
    home = tmp_path / "home"
    key = _land(home, "demo.csv", source.read_text())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(lists_partitions.name, [key])
    return _LandedList(home, key, instance)


def test_a_second_materialisation_serves_the_list_from_the_cache(world, tmp_path, monkeypatch):
    landed = _landed(world, tmp_path, monkeypatch)

    for _ in range(2):
        assert landed.verify().success

    runs = run_sql(landed.home, "SELECT cached, charged FROM ledger ORDER BY started_at").rows()
    assert runs[0][0] == 0 and runs[1][0] > 0 and runs[1][1] == 0


def test_list_verdicts_re_executed_after_a_kill_appends_its_run_once(world, tmp_path, monkeypatch):
    landed = _landed(world, tmp_path, monkeypatch)
    first = landed.verify()
    history = landed.home / HISTORY_DIR_NAME
    # Killed after its verdicts went in, before its ledger row.
    for part in run_parts(history, LEDGER, first.run_id):
        part.unlink()

    again = landed.verify(op_selection=["list_verdicts"])

    assert again.success and again.run_id != first.run_id
    assert len(run_parts(history, VERDICTS, first.run_id)) == 1
    assert not run_parts(history, VERDICTS, again.run_id)
    assert [p.name for p in run_parts(history, LEDGER, first.run_id)]
    ledger = [pl.read_parquet(p) for p in list_parts(history, LEDGER).parts]
    assert pl.concat(ledger).get_column("run_id").to_list() == [first.run_id]
