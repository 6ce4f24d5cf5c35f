"""Split the probe stage into shards by MX host, and put the shards' answers back together.

A shard holds every address whose preferred MX host hashes to it, so one MX host is only ever
probed from one shard: the per-MX session cap and back-off hold across shards by construction,
which a split by row would break (two shards would each open their full quota on the same host).
Each shard checkpoints on its own, so a failed shard is retried alone and resumes.

Sharding changes where the probes run, never the verdicts: merge_shards() returns the rows in
their original order, and a test holds a sharded run equal to a single one.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import polars as pl

from engine.config import Config

POSITION: Final = "_shard_position"  # original row order, restored by merge_shards()
SHARD: Final = "_shard"
# Figures of a shard's stats that are not summed when shards merge.
_MAXIMUM: Final = frozenset({"makespan_s"})


def shard_of_host(host: str | None, shards: int) -> int:
    """A stable shard for an MX host (CRC-32: the same in every process and version)."""
    if host is None or shards <= 1:
        return 0
    return zlib.crc32(host.lower().encode()) % shards


def split_into_shards(fresh: pl.DataFrame, shards: int) -> list[pl.DataFrame]:
    """`shards` frames partitioning `fresh` by preferred MX host (rows without one go to 0)."""
    hosts = (
        fresh.get_column("mx_hosts").list.first().struct.field("host")
        if "mx_hosts" in fresh.columns
        else pl.Series([None] * fresh.height, dtype=pl.String)
    )
    unique_hosts = hosts.unique().to_list()
    mapping = {host: shard_of_host(host, shards) for host in unique_hosts}
    numbered = fresh.with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(POSITION),
        hosts.replace_strict(mapping, return_dtype=pl.UInt16, default=0).alias(SHARD),
    )
    return [numbered.filter(pl.col(SHARD) == index).drop(SHARD) for index in range(max(shards, 1))]


def shard_config(config: Config, shards: int) -> Config:
    """Each shard gets its share of the global session cap, so all shards together keep it."""
    share = max(config.smtp_global_concurrency // max(shards, 1), 1)
    return config.model_copy(update={"smtp_global_concurrency": share})


def merge_shards(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The shards' probed frames as one, in the original row order."""
    return pl.concat(frames, how="diagonal_relaxed").sort(POSITION).drop(POSITION)


def merge_stats(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the shards' counts (maximum for elapsed times), merge nested tables by key."""
    merged: dict[str, Any] = {}
    for part in stats:
        for name, value in part.items():
            if name not in merged:
                merged[name] = dict(value) if isinstance(value, Mapping) else value
            elif isinstance(value, Mapping):
                merged[name] = merge_stats([merged[name], value])
            elif isinstance(value, bool):
                merged[name] = merged[name] or value
            elif isinstance(value, int | float) and isinstance(merged[name], int | float):
                combine = max if name in _MAXIMUM else sum
                merged[name] = combine([merged[name], value])
    return merged
