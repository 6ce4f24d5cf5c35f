-- verdicts: every verdict mailsift has recorded, one row per unique verified address per run.
-- The parts:verdicts placeholder is the typed union of history/verdicts/*.parquet (empty but
-- typed when there are none). Parts are append-only, so a query always sees whole runs.
-- key_hash and key_check are look-up aids (the two halves of MD5(dedup_key)) and are left out.
-- A filter on dedup_key, domain, status or checked_at is pushed into the Parquet scan: to follow
-- one address, query this view rather than latest_verdicts.
CREATE VIEW verdicts AS
SELECT * EXCLUDE (key_hash, key_check)
FROM {parts:verdicts};
