"""The Dagster face of the one config object: assets read the same `Config` the CLI does."""

from __future__ import annotations

from typing import Any

import dagster as dg

from engine.config import Config, load_config
from pipelines.layout import DataDirLayout


class MailsiftSettings(dg.ConfigurableResource):
    """Explicit overrides on top of defaults, `mailsift.toml` and `MAILSIFT_*` variables.

    Left empty, a `dagster dev` started with `MAILSIFT_DNS=...` verifies exactly like the CLI.
    """

    data_dir: str | None = None
    depth: str | None = None
    column: str | None = None

    def config(self) -> Config:
        overrides: dict[str, Any] = {
            "data_dir": self.data_dir,
            "depth": self.depth,
            "column": self.column,
        }
        return load_config(overrides)

    def layout(self) -> DataDirLayout:
        return DataDirLayout(self.config().data_dir)
