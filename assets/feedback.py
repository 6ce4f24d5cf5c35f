"""Feedback events: ESP exports landed by the feedback sensor, appended to the history once each.

The sensor lands each finished export in `feedback_landing/<key>/`; this asset records it with
`engine.feedback_store` and leaves a marker beside it, so a file is recorded once however often
the asset runs. The UI can materialise it without config (every landed, unrecorded file).
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Final

import dagster as dg

from assets.history import CATALOG_POOL
from engine.errors import InputError
from engine.feedback_store import record_feedback
from pipelines.inbox import keys_landed_in, landed_files
from pipelines.resources import MailsiftSettings

# Hidden names: `landed_files` never mistakes a marker for the export itself.
RECORDED_MARKER: Final = ".recorded.json"
REJECTED_MARKER: Final = ".rejected.txt"


class FeedbackFiles(dg.Config):
    """Which landed exports to record (None: every one not yet recorded, as from the UI).

    The sensor names its one key, so two runs started close together never share a file.
    """

    export_keys: list[str] | None = None


def is_settled(folder: Path) -> bool:
    """Recorded, or set aside with a reason: either way no run should read it again."""
    return (folder / RECORDED_MARKER).exists() or (folder / REJECTED_MARKER).exists()


def pending_keys(landing: Path) -> list[str]:
    """Landed exports that no run has recorded or rejected yet."""
    return [key for key in keys_landed_in(landing) if not is_settled(landing / key)]


def _write_marker(path: Path, text: str) -> None:
    temp = path.with_name(f"{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


@dg.asset(
    group_name="history",
    kinds={"parquet"},
    # Recording rebuilds mailsift.duckdb, whose writers share one pool (limit 1): that also keeps
    # a UI run and a sensor run from recording the same landed file at once.
    pool=CATALOG_POOL,
    description="Bounce, delivery and complaint events from ESP exports, in history/feedback.",
)
def feedback_events(
    context: dg.AssetExecutionContext, config: FeedbackFiles, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    settings = mailsift.config()
    landing = mailsift.layout().feedback_landing
    recorded: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    for key in config.export_keys or pending_keys(landing):
        folder = landing / key
        files = landed_files(folder)
        if is_settled(folder) or not files:
            context.log.info(f"feedback {key}: already recorded or not landed; nothing to do")
            continue
        try:
            report = record_feedback(files[0], settings.data_dir)
        except InputError as error:
            # A file no reader understands needs a person, not a retry on every run.
            reason = " ".join(str(error).split())
            _write_marker(folder / REJECTED_MARKER, reason + "\n")
            rejected.append({"file": files[0].name, "reason": reason})
            context.log.warning(f"feedback {files[0].name} rejected: {reason}")
            continue
        for warning in report["warnings"]:
            context.log.warning(warning)
        _write_marker(folder / RECORDED_MARKER, json.dumps(report, indent=2, default=str))
        recorded.append(report)

    kept_by_type: Counter[str] = Counter()
    unknown_types: Counter[str] = Counter()
    for report in recorded:
        kept_by_type.update(report["events_by_type"])
        unknown_types.update(report["unknown_event_types"])
    events_kept = sum(report["events_kept"] for report in recorded)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": events_kept,
            "events_by_type": dg.MetadataValue.json(dict(kept_by_type.most_common())),
            "unknown_event_types": dg.MetadataValue.json(dict(unknown_types.most_common())),
            "files": dg.MetadataValue.json(
                [
                    {
                        "file": Path(report["file"]).name,
                        "format": report["format"],
                        "events_kept": report["events_kept"],
                    }
                    for report in recorded
                ]
            ),
            "files_rejected": dg.MetadataValue.json(rejected),
        }
    )
