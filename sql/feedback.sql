-- feedback: every bounce, delivery, complaint and unsubscribe event ingested
-- (event_type in delivered, hard_bounce, soft_bounce, complaint, unsubscribe), as received.
-- The parts:feedback placeholder is the typed union of history/feedback/*.parquet.
CREATE VIEW feedback AS
SELECT * EXCLUDE (key_hash, key_check)
FROM {parts:feedback};
