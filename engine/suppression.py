"""Which addresses the user's own lists say never to mail: spam traps, complainers, suppressions.

The caller passes a folder (the data dir's `suppression/`) holding, by file name:

- `spamtraps.*`: known spam traps (status `spamtrap`),
- `abuse.*`: known complainers (status `abuse`),
- `global_suppression.*`: anyone else never to mail (`do_not_mail/global_suppression`),

each in any list format engine.ingest reads (TXT one address a line, CSV/TSV with an email
column, JSON, Parquet). A line `@example.com` suppresses a whole domain (that domain exactly, not
its subdomains; `*@example.com` is the same). TXT lines starting with `#` are comments. Several
files of one kind (`spamtraps.txt`, `spamtraps.2024.csv`) are all read. An address on several
lists gets the first of spamtrap, abuse, global_suppression (DESIGN §4: the worst news wins);
within one kind, an address entry wins over a domain entry, then files in name order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from engine.encoding import holds_no_text, read_head
from engine.ingest import email_cells, read_list
from engine.prepare import normalise
from engine.schema import DEDUP_KEY, DOMAIN, EMAIL_RAW, LOCAL_PART

# Kind -> the file-name stem of its lists; the order is the precedence.
LIST_STEMS: Final = {
    "spamtrap": "spamtraps",
    "abuse": "abuse",
    "global_suppression": "global_suppression",
}
SUPPRESSION: Final = "suppression"  # the kind, as verdict.py's evidence column names it
SUPPRESSION_LIST: Final = "suppression_list"  # the file's name, for the sub_status
SUPPRESSION_SCHEMA: Final[dict[str, pl.DataType]] = {
    DEDUP_KEY: pl.String(),
    SUPPRESSION: pl.String(),
    SUPPRESSION_LIST: pl.String(),
}
# What stands for "any mailbox" in a domain entry.
DOMAIN_WILDCARDS: Final = ("", "*")
COMMENT_PREFIX: Final = "#"

_ENTRY_SCHEMA: Final[dict[str, pl.DataType]] = {
    SUPPRESSION: pl.String(),
    SUPPRESSION_LIST: pl.String(),
    DEDUP_KEY: pl.String(),  # null for a domain entry
    DOMAIN: pl.String(),  # null for an address entry
}


@dataclass(frozen=True)
class SuppressionLists:
    """Every entry of the folder's lists, and what could not be used."""

    entries: pl.DataFrame  # suppression, suppression_list, dedup_key | domain
    files: tuple[Path, ...]
    skipped: int  # cells neither an address nor an @domain (blank, comments excluded)


def read_suppression_lists(folder: Path | str) -> SuppressionLists:
    """The entries of every list file in `folder`; a missing folder has none."""
    folder = Path(folder)
    parts: list[pl.DataFrame] = []
    files: list[Path] = []
    skipped = 0
    for kind, stem in LIST_STEMS.items():
        for path in sorted(folder.glob(f"{stem}.*")) if folder.is_dir() else ():
            if not path.is_file():
                continue
            files.append(path)
            if holds_no_text(read_head(path)):
                continue  # an empty placeholder list (a BOM alone included) suppresses nothing
            entries, unusable = _entries(path, kind)
            parts.append(entries)
            skipped += unusable
    entries = pl.concat(parts) if parts else pl.DataFrame(schema=_ENTRY_SCHEMA)
    return SuppressionLists(entries, tuple(files), skipped)


def _entries(path: Path, kind: str) -> tuple[pl.DataFrame, int]:
    """One list file's address and domain entries, and how many cells were neither."""
    cells = email_cells(read_list(path))
    text = pl.col(EMAIL_RAW).str.strip_chars()
    cells = cells.filter(text.is_not_null() & (text != "") & ~text.str.starts_with(COMMENT_PREFIX))
    parsed = normalise(cells)
    has_domain = pl.col(DOMAIN).str.len_bytes() > 0
    is_domain = has_domain & pl.col(LOCAL_PART).is_in(DOMAIN_WILDCARDS)
    is_address = has_domain & (pl.col(LOCAL_PART).str.len_bytes() > 0) & ~is_domain
    entries = parsed.select(
        pl.lit(kind).alias(SUPPRESSION),
        pl.lit(path.name).alias(SUPPRESSION_LIST),
        pl.when(is_address).then(pl.col(DEDUP_KEY)).alias(DEDUP_KEY),
        pl.when(is_domain).then(pl.col(DOMAIN)).alias(DOMAIN),
    ).filter(pl.col(DEDUP_KEY).is_not_null() | pl.col(DOMAIN).is_not_null())
    return entries.unique(maintain_order=True), parsed.height - entries.height


def suppression_facts(folder: Path | str, keys: pl.DataFrame) -> pl.DataFrame:
    """One row per suppressed dedup_key of `keys` (dedup_key, domain): its kind and list.

    Keys on no list are absent (join it on the left). A missing folder suppresses nothing.
    """
    entries = read_suppression_lists(folder).entries
    return match_suppression(entries, keys)


def match_suppression(entries: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """suppression_facts() on entries already read, for a caller matching several lists."""
    if entries.is_empty():
        return pl.DataFrame(schema=SUPPRESSION_SCHEMA)
    precedence = {kind: rank for rank, kind in enumerate(LIST_STEMS)}
    unique_keys = keys.select(DEDUP_KEY, DOMAIN).unique().lazy()
    listed = entries.lazy().with_columns(
        pl.col(SUPPRESSION).replace_strict(precedence, return_dtype=pl.UInt8).alias("_rank")
    )
    by_address = unique_keys.join(
        listed.filter(pl.col(DEDUP_KEY).is_not_null()).drop(DOMAIN), on=DEDUP_KEY
    ).with_columns(_domain_entry=pl.lit(False))
    by_domain = unique_keys.join(
        listed.filter(pl.col(DOMAIN).is_not_null()).drop(DEDUP_KEY), on=DOMAIN
    ).with_columns(_domain_entry=pl.lit(True))
    return (
        pl.concat([by_address, by_domain], how="diagonal")
        .sort("_rank", "_domain_entry", SUPPRESSION_LIST)
        .group_by(DEDUP_KEY, maintain_order=True)
        .first()
        .select(pl.col(name).cast(dtype) for name, dtype in SUPPRESSION_SCHEMA.items())
        .sort(DEDUP_KEY)
        .collect()
    )
