-- list_summaries: one row per list and run: the ledger's figures beside the count of unique
-- addresses per status and tier recorded in verdicts (rows of the input are in the ledger; a
-- duplicate row shares its first occurrence's verdict and is not counted again here).
CREATE VIEW list_summaries AS
WITH per_status AS (
    SELECT
        list_id,
        run_id,
        count(*) AS addresses,
        count(*) FILTER (WHERE status = 'valid') AS valid,
        count(*) FILTER (WHERE status = 'invalid') AS invalid,
        count(*) FILTER (WHERE status = 'catch_all') AS catch_all,
        count(*) FILTER (WHERE status = 'unknown') AS unknown,
        count(*) FILTER (WHERE status = 'do_not_mail') AS do_not_mail,
        count(*) FILTER (WHERE status = 'spamtrap') AS spamtrap,
        count(*) FILTER (WHERE status = 'abuse') AS abuse,
        count(*) FILTER (WHERE tier = 'deliverable') AS deliverable,
        count(*) FILTER (WHERE tier = 'risky') AS risky,
        count(*) FILTER (WHERE tier = 'undeliverable') AS undeliverable,
        count(*) FILTER (WHERE cached) AS served_from_cache,
        min(checked_at) AS checked_at
    FROM verdicts
    GROUP BY list_id, run_id
)
SELECT
    list_id,
    run_id,
    coalesce(ledger.started_at, per_status.checked_at) AS started_at,
    ledger.finished_at,
    ledger.depth,
    ledger.rows,
    ledger.duplicates,
    ledger.syntax_invalid,
    ledger.cached,
    ledger.dns_lookups,
    ledger.smtp_probes,
    ledger.unknowns,
    ledger.charged,
    ledger.budget,
    ledger.budget_exhausted,
    coalesce(per_status.addresses, 0) AS addresses,
    coalesce(per_status.valid, 0) AS valid,
    coalesce(per_status.invalid, 0) AS invalid,
    coalesce(per_status.catch_all, 0) AS catch_all,
    coalesce(per_status.unknown, 0) AS unknown,
    coalesce(per_status.do_not_mail, 0) AS do_not_mail,
    coalesce(per_status.spamtrap, 0) AS spamtrap,
    coalesce(per_status.abuse, 0) AS abuse,
    coalesce(per_status.deliverable, 0) AS deliverable,
    coalesce(per_status.risky, 0) AS risky,
    coalesce(per_status.undeliverable, 0) AS undeliverable,
    coalesce(per_status.served_from_cache, 0) AS served_from_cache
FROM ledger
FULL OUTER JOIN per_status USING (list_id, run_id);
