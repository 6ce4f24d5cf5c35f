"""The embedded Dagster instance: `DAGSTER_HOME` under the data dir, SQLite storage, pool limits.

Written once and never overwritten, so a team that edits `dagster.yaml` (Postgres storage, a Docker
or Kubernetes run launcher, other limits) keeps its edits. The defaults make a laptop install polite
out of the box: one probing step and one catalog writer at a time across all runs, and a few runs in
flight (each run's own executor still runs its steps in separate processes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pipelines.layout import DataDirLayout

MAX_CONCURRENT_RUNS: Final = 4
POOL_LIMIT: Final = 1  # smtp_probes and mailsift_catalog: one step at a time instance-wide

_DAGSTER_YAML: Final = """\
# Written by mailsift for its embedded instance; edit freely, it is never overwritten.
# Scale-out: replace `storage` with postgres and add a run_launcher (see README, "Scaling out").
storage:
  sqlite:
    base_dir: {storage}
concurrency:
  pools:
    default_limit: {pool_limit}
  runs:
    max_concurrent_runs: {max_runs}
telemetry:
  enabled: false
"""


def ensure_dagster_home(layout: DataDirLayout) -> Path:
    """Create `DAGSTER_HOME` with our `dagster.yaml` unless one exists; return the directory."""
    home = layout.dagster_home.resolve()
    config = home / "dagster.yaml"
    if not config.exists():
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(
            _DAGSTER_YAML.format(
                storage=home / "storage", pool_limit=POOL_LIMIT, max_runs=MAX_CONCURRENT_RUNS
            )
        )
    return home
