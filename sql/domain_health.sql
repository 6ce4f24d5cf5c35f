-- domain_health: one row per domain and MX host: how verification went there and, from the
-- feedback, how mail sent there fared.
-- verified counts original checks (cached copies are left out); the rates are shares of them.
-- Feedback events are placed on the MX host of their address's latest verdict; an address never
-- verified counts under its domain with a null mx_record. bounce_rate = hard bounces / (delivered
-- + hard + soft bounces): an export that holds only bounces makes it 1.0, not a real rate.
CREATE VIEW domain_health AS
WITH checks AS (
    SELECT
        domain,
        mx_record,
        count(*) AS verified,
        count(DISTINCT dedup_key) AS addresses,
        avg(CASE WHEN status = 'unknown' THEN 1.0 ELSE 0.0 END) AS unknown_rate,
        avg(CASE WHEN status = 'invalid' THEN 1.0 ELSE 0.0 END) AS invalid_rate,
        avg(CASE WHEN status = 'catch_all' THEN 1.0 ELSE 0.0 END) AS catch_all_rate,
        max(checked_at) AS last_checked_at
    FROM verdicts
    WHERE NOT coalesce(cached, false)
    GROUP BY domain, mx_record
),
outcomes AS (
    SELECT
        coalesce(latest.domain, split_part(feedback.dedup_key, '@', -1)) AS domain,
        latest.mx_record,
        count(*) FILTER (
            WHERE event_type IN ('delivered', 'hard_bounce', 'soft_bounce')
        ) AS sends,
        count(*) FILTER (WHERE event_type = 'delivered') AS delivered,
        count(*) FILTER (WHERE event_type = 'hard_bounce') AS hard_bounces,
        count(*) FILTER (WHERE event_type = 'soft_bounce') AS soft_bounces,
        count(*) FILTER (WHERE event_type = 'complaint') AS complaints,
        max(occurred_at) AS last_event_at
    FROM feedback
    LEFT JOIN latest_verdicts AS latest USING (dedup_key)
    GROUP BY ALL
)
SELECT
    coalesce(checks.domain, outcomes.domain) AS domain,
    coalesce(checks.mx_record, outcomes.mx_record) AS mx_record,
    coalesce(checks.verified, 0) AS verified,
    coalesce(checks.addresses, 0) AS addresses,
    checks.unknown_rate,
    checks.invalid_rate,
    checks.catch_all_rate,
    coalesce(outcomes.sends, 0) AS sends,
    coalesce(outcomes.delivered, 0) AS delivered,
    coalesce(outcomes.hard_bounces, 0) AS hard_bounces,
    coalesce(outcomes.soft_bounces, 0) AS soft_bounces,
    coalesce(outcomes.complaints, 0) AS complaints,
    outcomes.hard_bounces / nullif(outcomes.sends, 0) AS bounce_rate,
    checks.last_checked_at,
    outcomes.last_event_at
FROM checks
FULL OUTER JOIN outcomes
    ON checks.domain = outcomes.domain
    AND checks.mx_record IS NOT DISTINCT FROM outcomes.mx_record;
