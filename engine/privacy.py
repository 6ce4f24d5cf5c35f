"""What logs and Dagster metadata may show of an address (config option `log_addresses`).

Run logs and asset metadata are read by more people, and kept longer, than a list's results.
With `log_addresses = "hashed"` an address shown there becomes `h:<first 12 hex digits of
sha256(lower(address))>`: stable across runs and machines, so support given `h:…` from a log
can still find the row by hashing the addresses of the list it came from, and nobody can read
the mailbox back. Results files, report.html and summary.json are the user's own deliverables
and stay plain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final, Literal

import polars as pl
import polars.selectors as cs

from engine import schema

AddressDisplay = Literal["plain", "hashed"]
HASH_PREFIX: Final = "h:"
# 48 bits: a collision within one list stays unlikely (odds ~2 in 10^5 for 100k addresses), and the
# short form still fits in a log line or a preview cell.
HASH_HEX_DIGITS: Final = 12
# Columns that hold an address or a piece of one, whatever their cells look like.
ADDRESS_COLUMNS: Final = frozenset(
    {
        schema.EMAIL_RAW,
        schema.EMAIL_NORMALIZED,
        schema.DEDUP_KEY,
        schema.LOCAL_PART,
        schema.DEFAULT_EMAIL_COLUMN,
        "did_you_mean",
    }
)
# Any other text cell holding one of these may be an address (a second email column, a note).
ADDRESS_MARK: Final = "@"


def hash_address(address: str) -> str:
    """`h:<12 hex>` of one address; case does not matter, so `Ann@X.com` and `ann@x.com` match."""
    return _digest(address.lower())


def hashed_addresses(addresses: pl.Expr) -> pl.Expr:
    """`addresses` (String) as `h:<12 hex>`, nulls kept.

    Polars has no SHA-256 expression; its own `hash()` is not stable across versions, which a
    value handed to support must be. Each batch is lower-cased natively and hashed per unique
    value, which is cheap at the sizes shown in logs and previews.
    """
    return addresses.str.to_lowercase().map_batches(
        _hash_lowercased, return_dtype=pl.String, is_elementwise=True
    )


def _hash_lowercased(lowered: pl.Series) -> pl.Series:
    digests = {value: _digest(value) for value in lowered.drop_nulls().unique().to_list()}
    return lowered.replace_strict(digests, default=None, return_dtype=pl.String)


def _digest(lowered: str) -> str:
    # surrogatepass: a CLI argument may carry undecodable bytes as surrogates; hash, never crash.
    digest = hashlib.sha256(lowered.encode("utf-8", "surrogatepass")).hexdigest()
    return HASH_PREFIX + digest[:HASH_HEX_DIGITS]


def addresses_shown(
    frame: pl.DataFrame, display: AddressDisplay, address_columns: Iterable[str] = ()
) -> pl.DataFrame:
    """`frame` as logs and metadata may show it: unchanged for "plain".

    For "hashed", every cell of an address column (`ADDRESS_COLUMNS`, plus `address_columns`,
    e.g. the list's own email column) is hashed, and so is every other text cell holding an `@`.
    """
    if display == "plain":
        return frame
    known = (ADDRESS_COLUMNS | set(address_columns)) & set(frame.columns)
    text = [name for name in frame.select(cs.string()).columns if name not in known]
    return frame.with_columns(
        *(hashed_addresses(pl.col(name).cast(pl.String)) for name in known),
        *(
            pl.when(pl.col(name).str.contains(ADDRESS_MARK, literal=True))
            .then(hashed_addresses(pl.col(name)))
            .otherwise(pl.col(name))
            .alias(name)
            for name in text
        ),
    )


__all__ = [
    "HASH_PREFIX",
    "addresses_shown",
    "hash_address",
    "hashed_addresses",
]
