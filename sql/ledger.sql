-- ledger: one row per run: rows, what was free (duplicates, syntax-invalid, cached, unknowns),
-- DNS look-ups, SMTP probes spent and charged (definitive answers), the budget and whether it ran
-- out. The parts:ledger placeholder is the typed union of history/ledger/*.parquet.
CREATE VIEW ledger AS
SELECT *
FROM {parts:ledger};
