"""Column names shared by every stage: the prepared frame and the results contract (DESIGN §4)."""

from __future__ import annotations

from typing import Final

import polars as pl

# --- The working frame (engine-internal; original input columns live apart, joined at export) ---
ROW_ID: Final = "row_id"  # 0-based position in the input, stable across runs of the same file
EMAIL_RAW: Final = "email_raw"  # the email cell exactly as read (never modified)
EMAIL_NORMALIZED: Final = "email_normalized"
LOCAL_PART: Final = "local_part"
DOMAIN: Final = "domain"  # lower-case IDNA 2008 A-label
DEDUP_KEY: Final = "dedup_key"  # case-insensitive identity of an address
SYNTAX_VALID: Final = "syntax_valid"
SYNTAX_REASON: Final = "syntax_reason"  # a sentence a user can act on; null when valid
IS_DUPLICATE: Final = "is_duplicate"
FIRST_ROW_ID: Final = "first_row_id"  # the row whose verdict a duplicate inherits

# --- The results contract, in order, after the original columns (DESIGN §4, seed 004 layout) ---
RESULT_COLUMNS: Final[dict[str, pl.DataType]] = {
    "email_normalized": pl.String(),
    "domain": pl.String(),
    "is_valid": pl.Boolean(),
    "score": pl.Int16(),
    "status": pl.String(),
    "sub_status": pl.String(),
    "syntax_valid": pl.Boolean(),
    "domain_valid": pl.Boolean(),
    "mx_found": pl.Boolean(),
    "smtp_valid": pl.Boolean(),
    "is_catchall": pl.Boolean(),
    "is_disposable": pl.Boolean(),
    "is_role_based": pl.Boolean(),
    "is_free_provider": pl.Boolean(),
    "smtp_provider": pl.String(),
    "mx_record": pl.String(),
    "smtp_response_code": pl.Int16(),
    "did_you_mean": pl.String(),
    "first_name": pl.String(),
    "last_name": pl.String(),
    "reason": pl.String(),
    "tier": pl.String(),
    "recommendation": pl.String(),
    "confidence": pl.Int16(),
    "smtp_message": pl.String(),
    "spf": pl.Boolean(),
    "dmarc": pl.Boolean(),
    "mx_blacklisted": pl.Boolean(),
    "is_duplicate": pl.Boolean(),
    "cached": pl.Boolean(),
    "checked_at": pl.Datetime("us", "UTC"),
    "times_verified": pl.Int32(),
    "status_changed": pl.Boolean(),
    "factors": pl.String(),  # space-separated evidence tokens, e.g. "smtp_250 free_provider"
}

# Suffix given to an input column whose name collides with a result column (e.g. when a
# previous mailsift export is verified again), so the fresh verdict keeps the contract name.
INPUT_COLLISION_SUFFIX: Final = "_input"

# When an input has no header, its email column is called this (DESIGN §4).
DEFAULT_EMAIL_COLUMN: Final = "email"

# What a prepared list keeps on disk: enough to verify and to join back, nothing recomputable
# (the raw cell lives in the rows file; the dedup key is lower(local)@domain; the local part is
# the address without "@" + domain, prepare.local_part_of()).
PREPARED_FILE_COLUMNS: Final = (
    ROW_ID,
    EMAIL_NORMALIZED,
    DOMAIN,
    SYNTAX_VALID,
    SYNTAX_REASON,
    IS_DUPLICATE,
    FIRST_ROW_ID,
)
