"""One dynamic partition per list (DESIGN §6): key = file name + short content hash."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dagster as dg

lists_partitions = dg.DynamicPartitionsDefinition(name="lists")

# Dagster partition keys may not contain these; file names often do.
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_CHARACTERS = 10


def list_key_for(path: Path, chunk_size: int = 1 << 20) -> str:
    """`<safe file name>-<sha256 prefix>`: a re-upload of the same bytes gets the same key."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    safe_name = _UNSAFE_KEY_CHARACTERS.sub("_", path.name).strip("_") or "list"
    return f"{safe_name}-{digest.hexdigest()[:_HASH_CHARACTERS]}"
