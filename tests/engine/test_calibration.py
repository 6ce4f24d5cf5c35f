"""Calibrated bounce probability: fitted on generated history whose true rates are known."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from engine.calibration import (
    MODEL_SCHEMA,
    PRIOR_OBSERVATIONS,
    bounce_probability,
    fit_bounce_model,
    observed_outcomes,
)
from engine.feedback import FEEDBACK_SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICT_SCHEMA = {
    "dedup_key": pl.String(),
    "checked_at": pl.Datetime("us", "UTC"),
    "status": pl.String(),
    "sub_status": pl.String(),
    "smtp_provider": pl.String(),
}
STATUS_OF = {"mailbox_confirmed": "valid", "accept_all": "catch_all", "greylisted": "unknown"}


def _history(
    groups: list[tuple[str | None, str, int, float]], seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Verdicts, and one send a day later that hard-bounces with each group's true rate."""
    rng = random.Random(seed)
    verdicts, events = [], []
    for provider, sub_status, size, rate in groups:
        for number in range(size):
            key = f"{provider}.{sub_status}.{number}@example.com"
            verdicts.append((key, T0, STATUS_OF[sub_status], sub_status, provider))
            outcome = "hard_bounce" if rng.random() < rate else "delivered"
            events.append(_event(key, outcome, T0 + timedelta(days=1)))
    return (
        pl.DataFrame(verdicts, schema=VERDICT_SCHEMA, orient="row"),
        pl.DataFrame(events, schema=FEEDBACK_SCHEMA, orient="row"),
    )


def _event(key: str, event_type: str, at: datetime | None) -> tuple:
    return (key, key, event_type, None, None, at, "generic", "generated.csv")


def _rate(model: pl.DataFrame, level: str, sub_status: str | None, provider: str | None) -> float:
    row = model.filter(
        (pl.col("level") == level)
        & pl.col("sub_status").eq_missing(sub_status)
        & pl.col("smtp_provider").eq_missing(provider)
    )
    return row.get_column("bounce_probability").item()


def _decided(*groups: tuple[str | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [(provider, sub_status) for provider, sub_status in groups],
        schema={"smtp_provider": pl.String(), "sub_status": pl.String()},
        orient="row",
    )


def test_fitted_rates_recover_the_true_rates_of_large_groups():
    verdicts, events = _history(
        [
            ("provider_a", "mailbox_confirmed", 5_000, 0.02),
            ("provider_b", "accept_all", 3_000, 0.30),
        ]
    )
    model = fit_bounce_model(verdicts, events)
    assert model.schema == pl.Schema(MODEL_SCHEMA)
    valid_a = _rate(model, "provider_sub_status", "mailbox_confirmed", "provider_a")
    catch_all_b = _rate(model, "provider_sub_status", "accept_all", "provider_b")
    assert valid_a == pytest.approx(0.02, abs=0.006)  # 3 standard errors at n = 5,000
    assert catch_all_b == pytest.approx(0.30, abs=0.025)  # 3 standard errors at n = 3,000
    overall = model.filter(pl.col("level") == "global")
    assert overall.get_column("observations").item() == 8_000


def test_a_tiny_group_is_shrunk_toward_its_sub_status():
    verdicts, events = _history(
        [
            ("provider_a", "mailbox_confirmed", 5_000, 0.02),
            ("provider_c", "mailbox_confirmed", 4, 1.0),  # 4 of 4 bounced
            ("provider_d", "mailbox_confirmed", 3, 0.0),  # 0 of 3 bounced
        ]
    )
    model = fit_bounce_model(verdicts, events)
    parent = _rate(model, "sub_status", "mailbox_confirmed", None)
    always = _rate(model, "provider_sub_status", "mailbox_confirmed", "provider_c")
    never = _rate(model, "provider_sub_status", "mailbox_confirmed", "provider_d")
    assert always == pytest.approx((4 + PRIOR_OBSERVATIONS * parent) / (4 + PRIOR_OBSERVATIONS))
    assert parent < always < 0.25  # far from the 100 % its own four sends say
    assert 0 < never < parent  # and never 0 %


def test_a_tiny_sub_status_is_shrunk_toward_the_global_rate():
    verdicts, events = _history(
        [("provider_a", "mailbox_confirmed", 2_000, 0.02), ("provider_a", "greylisted", 2, 1.0)]
    )
    model = fit_bounce_model(verdicts, events)
    overall = _rate(model, "global", None, None)
    greylisted = _rate(model, "sub_status", "greylisted", None)
    assert overall < greylisted < 0.2


def test_groups_never_seen_get_their_parent_rate_or_the_global_one():
    verdicts, events = _history(
        [("provider_a", "mailbox_confirmed", 1_000, 0.02), ("provider_b", "accept_all", 1_000, 0.3)]
    )
    model = fit_bounce_model(verdicts, events)
    decided = _decided(
        ("provider_b", "accept_all"),  # seen
        ("provider_z", "accept_all"),  # provider never seen with this sub_status
        ("provider_a", "mailbox_disabled"),  # sub_status never seen
        (None, None),
    )
    probabilities = bounce_probability(decided, model)
    assert probabilities.dtype == pl.Float64
    assert probabilities.name == "bounce_probability"
    assert probabilities.to_list() == [
        _rate(model, "provider_sub_status", "accept_all", "provider_b"),
        _rate(model, "sub_status", "accept_all", None),
        _rate(model, "global", None, None),
        _rate(model, "global", None, None),
    ]


def test_an_unknown_provider_is_a_group_of_its_own():
    verdicts, events = _history(
        [(None, "accept_all", 500, 0.3), ("provider_b", "accept_all", 500, 0.0)]
    )
    model = fit_bounce_model(verdicts, events)
    unknown_provider, provider_b = bounce_probability(
        _decided((None, "accept_all"), ("provider_b", "accept_all")), model
    ).to_list()
    assert unknown_provider > 0.2 > 0.05 > provider_b


def test_without_any_observation_the_probability_is_null():
    verdicts, _ = _history([("provider_a", "mailbox_confirmed", 10, 0.0)])
    soft_only = pl.DataFrame(
        [_event("provider_a.mailbox_confirmed.0@example.com", "soft_bounce", T0)],
        schema=FEEDBACK_SCHEMA,
        orient="row",
    )
    model = fit_bounce_model(verdicts, soft_only)
    assert model.is_empty()
    assert bounce_probability(_decided(("provider_a", "mailbox_confirmed")), model).to_list() == [
        None
    ]


def test_each_outcome_counts_for_the_verdict_in_force_and_only_the_first_after_it():
    key = "ann@example.com"
    day = timedelta(days=1)
    verdicts = pl.DataFrame(
        [
            (key, T0, "catch_all", "accept_all", "provider_b"),
            (key, T0 + 10 * day, "valid", "mailbox_confirmed", "provider_b"),
            ("never.sent@example.com", T0, "valid", "mailbox_confirmed", "provider_b"),
        ],
        schema=VERDICT_SCHEMA,
        orient="row",
    )
    events = pl.DataFrame(
        [
            _event(key, "hard_bounce", T0 - day),  # before any verdict: no verdict to judge
            _event(key, "soft_bounce", T0 + day),  # not an outcome
            _event(key, "delivered", T0 + 2 * day),  # the first verdict's outcome
            _event(key, "hard_bounce", T0 + 3 * day),  # later, same verdict: not the first
            _event(key, "hard_bounce", T0 + 12 * day),  # the second verdict's outcome
            _event(key, "delivered", T0 + 13 * day),
            _event(key, "delivered", None),  # no time: cannot be placed
        ],
        schema=FEEDBACK_SCHEMA,
        orient="row",
    )
    assert observed_outcomes(verdicts, events).rows() == [
        ("provider_b", "accept_all", False),
        ("provider_b", "mailbox_confirmed", True),
    ]


def test_the_model_counts_observations_and_bounces_at_every_level():
    verdicts, events = _history(
        [
            ("provider_a", "mailbox_confirmed", 300, 0.1),
            ("provider_b", "mailbox_confirmed", 200, 0.1),
        ]
    )
    model = fit_bounce_model(verdicts, events)
    by_level = model.group_by("level").agg(pl.col("observations", "bounces").sum())
    totals = {level: (n, b) for level, n, b in by_level.rows()}
    assert totals["provider_sub_status"] == totals["sub_status"] == totals["global"]
    assert totals["global"][0] == 500
