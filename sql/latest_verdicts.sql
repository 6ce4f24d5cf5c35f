-- latest_verdicts: one row per address (dedup_key), its newest verdict.
-- Newest by checked_at; at the same instant an original check wins over a cached copy.
-- Partitioned by key_hash rather than by the key text: the window then never decodes the key
-- column, which halves the time on a 10M-row history (1.4 s against 2.9 s measured). Two
-- different addresses share a 64-bit digest with odds of about 3 in a million over 10M
-- addresses; if they ever did, only the newer of the two would show here (verdicts is
-- unaffected, and the cache and drift confirm all 128 bits of the digest, or the key itself).
-- Filters on other columns apply after the window: to follow a few addresses, use verdicts.
CREATE VIEW latest_verdicts AS
SELECT * EXCLUDE (key_hash, key_check)
FROM {parts:verdicts}
QUALIFY row_number() OVER (
    PARTITION BY key_hash
    ORDER BY checked_at DESC, cached ASC NULLS LAST
) = 1;
