"""The feedback sensor (DESIGN §6): an ESP export dropped into `feedback_inbox/` gets recorded.

Same hand-off as the inbox sensor (pipelines/inbox.py): a file is taken once two ticks saw the
same size and mtime, landed in `feedback_landing/<key>/` (or set aside in
`feedback_inbox/rejected/`), and every landed key that `feedback_events` has not recorded yet gets
a run keyed by it. Reading `feedback_landing/` rather than this tick's moves lets the next tick
repair a crashed one.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
from typing import Final

import dagster as dg

from assets.feedback import FeedbackFiles, feedback_events, pending_keys
from pipelines.inbox import Outcome, land, landed_files, settled, snapshot
from pipelines.resources import MailsiftSettings
from pipelines.sensors import dump_cursor, parse_cursor

# Bounces act on the next run of a list, not within seconds: a slower poll than the list inbox.
FEEDBACK_POLL_SECONDS: Final = 30
FEEDBACK_FILE_TAG: Final = "mailsift/feedback_file"


def feedback_run_request(key: str, file_name: str) -> dg.RunRequest:
    """One run per export; its config names the key, so concurrent runs never share a file."""
    return dg.RunRequest(
        run_key=key,
        run_config=dg.RunConfig(ops={feedback_events.op.name: FeedbackFiles(export_keys=[key])}),
        tags={FEEDBACK_FILE_TAG: file_name},
    )


@dg.sensor(
    target=feedback_events,
    minimum_interval_seconds=FEEDBACK_POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lands finished ESP exports from feedback_inbox/ and records each one once.",
)
def feedback_sensor(
    context: dg.SensorEvaluationContext, mailsift: MailsiftSettings
) -> dg.SensorResult:
    layout = mailsift.layout()
    layout.feedback_inbox.mkdir(parents=True, exist_ok=True)
    seen = snapshot(layout.feedback_inbox)
    for name in settled(seen, parse_cursor(context.cursor)):
        taken = land(
            layout.feedback_inbox / name,
            layout.feedback_landing,
            layout.feedback_rejected,
            what="feedback export",
        )
        if taken.outcome in (Outcome.REJECTED, Outcome.STUCK):
            context.log.warning(f"feedback inbox: {name} {taken.outcome.value}: {taken.detail}")
        else:
            message = f"feedback inbox: {name} {taken.outcome.value} {taken.key or ''}"
            context.log.info(message.rstrip())

    cursor = dump_cursor(snapshot(layout.feedback_inbox))
    pending = pending_keys(layout.feedback_landing)
    if not pending:
        return dg.SensorResult(skip_reason="no new feedback export", cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            feedback_run_request(key, landed_files(layout.feedback_landing / key)[0].name)
            for key in pending
        ],
        cursor=cursor,
    )
