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

    def stage_file(self, list_key: str, stage: str) -> Path:
        """A per-list stage's intermediate (`domains`, `probes`, `verdicts`, ...) as Parquet."""
        return self.list_dir(list_key) / f"{stage}.parquet"

    def results_file(self, list_key: str, format: str = "csv") -> Path:
        return self.list_dir(list_key) / f"results.{format}"

    def summary_file(self, list_key: str) -> Path:
        return self.list_dir(list_key) / "summary.json"

    def report_file(self, list_key: str) -> Path:
        return self.list_dir(list_key) / "report.html"

    def checkpoint_dir(self, list_key: str) -> Path:
        """Finished probe batches of a run in progress (engine.checkpoint)."""
        return self.list_dir(list_key) / "probes"

    @property
    def feedback_inbox(self) -> Path:
        """ESP event exports dropped here are recorded by the feedback sensor."""
        return self.root / "feedback_inbox"

    @property
    def feedback_rejected(self) -> Path:
        """Feedback inbox files that could not be taken, each beside a one-line `.reason.txt`."""
        return self.feedback_inbox / "rejected"

    @property
    def feedback_landing(self) -> Path:
        """`<key>/<file>` per taken ESP export; the `feedback_events` asset records from here."""
        return self.root / "feedback_landing"

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
