"""Where things live under the data dir (DESIGN §5). The engine never sees this layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDirLayout:
    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def rejected(self) -> Path:
        """Inbox files that could not be taken, each beside a one-line `.reason.txt`."""
        return self.inbox / "rejected"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def landing_dir(self, list_key: str) -> Path:
        return self.landing / list_key

    def list_dir(self, list_key: str) -> Path:
        return self.root / "lists" / list_key

    def rows_file(self, list_key: str) -> Path:
        return self.list_dir(list_key) / "rows.parquet"

    def prepared_file(self, list_key: str) -> Path:
        return self.list_dir(list_key) / "prepared.parquet"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def landed_file(self, list_key: str) -> Path:
        """The one list file the inbox sensor moved into `landing/<key>/`."""
        files = sorted(p for p in self.landing_dir(list_key).iterdir() if p.is_file())
        if len(files) != 1:
            raise FileNotFoundError(
                f"expected one list file in {self.landing_dir(list_key)}, found {len(files)}"
            )
        return files[0]
