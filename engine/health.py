"""Signals that a run went wrong outside the list itself: e.g. a mail host started refusing us.

A sudden jump in a domain's unknown rate, against that domain's own history, usually means our
IP or HELO got blocked or rate-limited there, not that its mailboxes changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from engine.catalog import run_sql

SPIKE_FACTOR: Final = 3.0  # this run's unknown rate above 3x the domain's history
SPIKE_MARGIN: Final = 0.2  # ... and at least 20 points above it (3 x 1 % is not news)
MIN_ROWS: Final = 20  # per domain, in this run and in its history

_SPIKES: Final = """
WITH rates AS (
    SELECT
        domain,
        count(*) FILTER (WHERE run_id = $run) AS run_rows,
        avg(CASE WHEN status = 'unknown' THEN 1.0 ELSE 0.0 END) FILTER (WHERE run_id = $run)
            AS run_unknown_rate,
        count(*) FILTER (WHERE run_id <> $run) AS past_rows,
        avg(CASE WHEN status = 'unknown' THEN 1.0 ELSE 0.0 END) FILTER (WHERE run_id <> $run)
            AS past_unknown_rate
    FROM verdicts
    WHERE NOT coalesce(cached, false) AND domain IS NOT NULL
    GROUP BY domain
)
SELECT *
FROM rates
WHERE run_rows >= $min_rows
  AND past_rows >= $min_rows
  AND run_unknown_rate > $factor * past_unknown_rate
  AND run_unknown_rate >= past_unknown_rate + $margin
ORDER BY run_rows DESC, domain
"""


def unknown_rate_spikes(
    data_dir: Path,
    run_id: str,
    *,
    factor: float = SPIKE_FACTOR,
    margin: float = SPIKE_MARGIN,
    min_rows: int = MIN_ROWS,
) -> pl.DataFrame:
    """Domains whose unknown rate in `run_id` jumped against their earlier original checks."""
    params = {"run": run_id, "factor": factor, "margin": margin, "min_rows": min_rows}
    return run_sql(data_dir, _SPIKES, params)
