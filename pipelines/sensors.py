"""The inbox sensor (DESIGN §6): a list dropped into `inbox/` becomes a partition and a run.

Each tick (1) lands every inbox file that has stopped changing since the previous tick into
`landing/<key>/` (or rejects it), then (2) asks for a partition and an ingest run for every landed
key that is not yet a partition. Step 2 reads `landing/`, not this tick's moves, so a tick that
crashed after moving a file is repaired by the next one; `run_key=key` makes a repeat harmless.
The cursor holds only the inbox snapshot that the completeness test compares against.
"""

# No `from __future__ import annotations` here: Dagster resolves the context type hint at
# definition time and rejects it as a string.
import json
from typing import Final

import dagster as dg

from pipelines.inbox import FileState, Outcome, landed_files, landed_keys, settled, snapshot, take
from pipelines.jobs import ingest_list_job
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings

# A dropped file is taken on the second tick that sees it unchanged: 15-30 s after the copy ends.
INBOX_POLL_SECONDS: Final = 15
LIST_FILE_TAG: Final = "mailsift/list_file"


def parse_cursor(cursor: str | None) -> dict[str, FileState]:
    """The previous tick's inbox snapshot; an unreadable cursor only delays files by one tick."""
    try:
        seen = json.loads(cursor or "{}").get("inbox", {})
        return {str(name): (int(size), int(mtime)) for name, (size, mtime) in seen.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def dump_cursor(states: dict[str, FileState]) -> str:
    return json.dumps({"inbox": {name: list(state) for name, state in sorted(states.items())}})


@dg.sensor(
    job=ingest_list_job,
    minimum_interval_seconds=INBOX_POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lands finished list files from inbox/ and requests one ingest run per list.",
)
def inbox_sensor(
    context: dg.SensorEvaluationContext, mailsift: MailsiftSettings
) -> dg.SensorResult:
    layout = mailsift.layout()
    layout.inbox.mkdir(parents=True, exist_ok=True)
    seen = snapshot(layout.inbox)
    for name in settled(seen, parse_cursor(context.cursor)):
        taken = take(layout.inbox / name, layout)
        if taken.outcome in (Outcome.REJECTED, Outcome.STUCK):
            context.log.warning(f"inbox: {name} {taken.outcome.value}: {taken.detail}")
        else:
            context.log.info(f"inbox: {name} {taken.outcome.value} {taken.key or ''}".rstrip())

    registered = set(context.instance.get_dynamic_partitions(lists_partitions.name))
    new_keys = [key for key in landed_keys(layout) if key not in registered]
    cursor = dump_cursor(snapshot(layout.inbox))
    if not new_keys:
        return dg.SensorResult(skip_reason="no new list in the inbox", cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                partition_key=key,
                tags={LIST_FILE_TAG: landed_files(layout.landing_dir(key))[0].name},
            )
            for key in new_keys
        ],
        dynamic_partitions_requests=[lists_partitions.build_add_request(new_keys)],
        cursor=cursor,
    )
