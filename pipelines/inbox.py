"""The inbox hand-off (DESIGN §5, §6): when a dropped file is finished, and where it goes next.

Plain file operations, no Dagster: the inbox sensor decides when to call them and turns landed
lists into partitions and runs. A file is landed by an atomic rename into `landing/<key>/`, so
an asset never reads a half-moved list and a re-upload of the same bytes finds its key taken.
"""

from __future__ import annotations

import enum
import errno
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine.ingest import FORMAT_OF_NAME
from pipelines.layout import DataDirLayout
from pipelines.partitions import list_key_for

LIST_SUFFIXES: Final = frozenset(f".{name}" for name in FORMAT_OF_NAME)
# What uploaders, browsers and editors call a file while they are still writing it.
IN_PROGRESS_SUFFIXES: Final = frozenset(
    {".tmp", ".part", ".partial", ".crdownload", ".download", ".filepart", ".swp", ".lock"}
)
IN_PROGRESS_PREFIXES: Final = (".", "~")  # hidden files, rsync/scp temps, Office lock files
REASON_SUFFIX: Final = ".reason.txt"

FileState = tuple[int, int]  # (size in bytes, mtime in ns) as one tick saw it


class Outcome(enum.Enum):
    LANDED = "landed"
    DUPLICATE = "duplicate"  # the same name and bytes landed before: the re-upload is removed
    REJECTED = "rejected"  # moved to inbox/rejected/ beside a one-line reason
    VANISHED = "vanished"  # someone took the file away between two looks
    STUCK = "stuck"  # could not be moved (permissions, disk full): left for the next tick


@dataclass(frozen=True)
class Taken:
    name: str
    outcome: Outcome
    key: str | None = None
    detail: str = ""


def is_in_progress_name(name: str) -> bool:
    """Names that say "not finished yet"; they are never taken, however old."""
    return name.startswith(IN_PROGRESS_PREFIXES) or Path(name).suffix.lower() in (
        IN_PROGRESS_SUFFIXES
    )


def snapshot(inbox: Path) -> dict[str, FileState]:
    """Visible regular files at the inbox's top level (so not `rejected/`), with size and mtime."""
    states: dict[str, FileState] = {}
    if not inbox.is_dir():
        return states
    with os.scandir(inbox) as entries:
        for entry in entries:
            if is_in_progress_name(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            states[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return states


def settled(now: Mapping[str, FileState], before: Mapping[str, FileState]) -> list[str]:
    """Files whose size and mtime are exactly what the previous tick saw: nobody is writing them.

    A copy in progress grows or touches its mtime between two ticks. A minimum age alone would
    take a slow upload that merely paused, and needs a clock shared with the writer (network
    shares); comparing with the last tick costs one poll interval of latency and nothing else.
    """
    return sorted(name for name, state in now.items() if before.get(name) == state)


def landed_files(landing_dir: Path) -> list[Path]:
    """The visible list file(s) in one `landing/<key>/` (hidden names are moves in progress)."""
    if not landing_dir.is_dir():
        return []
    return sorted(
        path
        for path in landing_dir.iterdir()
        if path.is_file() and not path.name.startswith(IN_PROGRESS_PREFIXES)
    )


def landed_keys(layout: DataDirLayout) -> list[str]:
    """Every key with a list file in `landing/`, the sensor's source of truth for what exists."""
    return keys_landed_in(layout.landing)


def keys_landed_in(landing: Path) -> list[str]:
    """Every `<landing>/<key>/` holding a visible file (lists and feedback exports alike)."""
    if not landing.is_dir():
        return []
    return sorted(
        entry.name for entry in landing.iterdir() if entry.is_dir() and landed_files(entry)
    )


def take(source: Path, layout: DataDirLayout) -> Taken:
    """Land a finished inbox file under its key, drop it as a re-upload, or reject it."""
    return land(source, layout.landing, layout.rejected)


def land(source: Path, landing: Path, rejected: Path, what: str = "list file") -> Taken:
    """`take` for any drop folder: land into `<landing>/<key>/` or set aside in `rejected`.

    The feedback inbox hands off ESP exports by the same rules, so both share one implementation.
    """
    name = source.name
    if source.suffix.lower() not in LIST_SUFFIXES:
        return _reject(source, rejected, f"not a {what}; use one of {_suffix_listing()}")
    try:
        if source.stat().st_size == 0:
            return _reject(source, rejected, "the file is empty")
        key = list_key_for(source)
    except FileNotFoundError:
        return Taken(name, Outcome.VANISHED)
    except OSError as error:
        return _reject(source, rejected, f"cannot read the file: {error.strerror or error}")
    try:
        landing_dir = landing / key
        already = landed_files(landing_dir)
        if already:
            source.unlink(missing_ok=True)
            return Taken(name, Outcome.DUPLICATE, key, str(already[0]))
        landing_dir.mkdir(parents=True, exist_ok=True)
        target = landing_dir / name
        _move(source, target)
    except FileNotFoundError:
        return Taken(name, Outcome.VANISHED, key)
    except OSError as error:
        return Taken(name, Outcome.STUCK, key, f"cannot move to landing: {error}")
    return Taken(name, Outcome.LANDED, key, str(target))


def _move(source: Path, target: Path) -> None:
    """Atomic rename; across file systems (an inbox mount), copy to a hidden temp, then rename."""
    try:
        os.rename(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    temp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    source.unlink()


def _reject(source: Path, rejected: Path, reason: str) -> Taken:
    """Move the file out of the way with a reason a person can act on; never raise."""
    try:
        rejected.mkdir(parents=True, exist_ok=True)
        target = rejected / source.name
        if target.exists():
            target = rejected / f"{source.stem}-{time.time_ns()}{source.suffix}"
        _move(source, target)
        one_line = " ".join(reason.split())
        target.with_name(target.name + REASON_SUFFIX).write_text(one_line + "\n")
    except FileNotFoundError:
        return Taken(source.name, Outcome.VANISHED)
    except OSError as error:
        return Taken(source.name, Outcome.STUCK, detail=f"{reason}; cannot move it: {error}")
    return Taken(source.name, Outcome.REJECTED, detail=reason)


def _suffix_listing() -> str:
    return ", ".join(sorted(LIST_SUFFIXES))
