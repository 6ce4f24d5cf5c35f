"""`mailsift feedback FILE`: read an ESP's event export and append it to history/feedback.

The events then act on the next run of every list (engine.recall): a hard bounce newer than the
address's last probe makes it invalid and takes it out of the cache, a complaint or unsubscribe
makes it do_not_mail, a delivery confirms what SMTP could not.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.catalog import build_catalog
from engine.feedback import read_feedback
from engine.history import FEEDBACK, HISTORY_DIR_NAME, append_part
from engine.remember import new_run_id


def record_feedback(path: Path, data_dir: Path, format: str | None = None) -> dict[str, Any]:
    """Append one file's events to the history; returns what reading it found (JSON-ready)."""
    batch = read_feedback(path, format)
    part = None
    if batch.events.height:
        part = append_part(batch.events, data_dir / HISTORY_DIR_NAME, FEEDBACK, new_run_id())
        build_catalog(data_dir)
    report = asdict(batch.report)
    by_type = batch.events.get_column("event_type").value_counts(sort=True).rows()
    return {
        "file": str(path),
        "format": batch.format,
        **{name: value for name, value in report.items() if name != "warnings"},
        "events_by_type": dict(by_type),
        "history_part": str(part) if part else None,
        "warnings": list(report["warnings"]),
    }
