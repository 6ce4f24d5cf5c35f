"""Specification of the run summary: the seeds' "analysis" figures of a results frame."""

from __future__ import annotations

import polars as pl
import pytest

from engine import schema
from engine.export import assemble_results
from engine.summary import build_summary


def summary_frame() -> pl.DataFrame:
    """Eight rows chosen so that every summary figure has a different, checkable value."""
    rows = {
        "status": [
            "valid",
            "valid",
            "invalid",
            "invalid",
            "invalid",
            "do_not_mail",
            "unknown",
            None,
        ],
        "sub_status": [
            "mailbox_confirmed",
            "mailbox_confirmed",
            "failed_syntax_check",
            "failed_syntax_check",
            "mailbox_not_found",
            "disposable",
            "greylisted",
            None,
        ],
        "tier": [
            "deliverable",
            "deliverable",
            "undeliverable",
            "undeliverable",
            "undeliverable",
            "risky",
            "unknown",
            None,
        ],
        "domain": ["a.com", "a.com", None, None, "b.com", "tmp.io", "C.com", "c.com"],
        "is_duplicate": [False, True, False, True, False, False, False, None],
        "is_disposable": [False, False, None, None, False, True, False, None],
        "is_role_based": [True, True, None, None, False, False, False, None],
        "is_free_provider": [False, False, None, None, True, False, True, None],
        "did_you_mean": [None, None, "x@gmail.com", None, None, None, None, None],
        "cached": [True, True, False, False, True, False, False, None],
    }
    return assemble_results(
        pl.DataFrame({"email": [f"row{i}" for i in range(8)]}),
        pl.DataFrame(rows).with_row_index(schema.ROW_ID),
    )


def test_summary_counts_rows_by_status_sub_status_and_tier():
    summary = build_summary(summary_frame())

    assert summary["total_rows"] == 8
    assert summary["by_status"] == {
        "valid": 2,
        "invalid": 3,
        "catch_all": 0,
        "unknown": 1,
        "do_not_mail": 1,
        "spamtrap": 0,
        "abuse": 0,
        "none": 1,
    }
    assert summary["by_sub_status"] == {
        "valid": {"mailbox_confirmed": 2},
        "invalid": {"failed_syntax_check": 2, "mailbox_not_found": 1},
        "unknown": {"greylisted": 1},
        "do_not_mail": {"disposable": 1},
        "none": {"none": 1},
    }
    assert summary["by_tier"] == {
        "deliverable": 2,
        "risky": 1,
        "undeliverable": 3,
        "unknown": 1,
        "none": 1,
    }


def test_summary_counts_the_seed_analysis_figures():
    summary = build_summary(summary_frame())

    assert {
        name: summary[name]
        for name in (
            "duplicates",
            "syntax_invalid",
            "disposable",
            "role_based",
            "free_provider",
            "typo_suggestions",
            "cached",
            "unique_domains",
        )
    } == {
        "duplicates": 2,
        "syntax_invalid": 2,
        "disposable": 1,
        "role_based": 2,
        "free_provider": 2,
        "typo_suggestions": 1,
        "cached": 3,
        "unique_domains": 5,  # domains are compared as given; nulls are not a domain
    }


def test_summary_figures_are_plain_ints():
    summary = build_summary(summary_frame())
    counts = [v for k, v in summary.items() if k not in {"by_status", "by_sub_status", "by_tier"}]
    nested = [
        *summary["by_status"].values(),
        *summary["by_tier"].values(),
        *(n for subs in summary["by_sub_status"].values() for n in subs.values()),
    ]

    assert all(type(n) is int for n in [*counts, *nested])


def test_summary_of_no_rows_is_all_zeros():
    summary = build_summary(summary_frame().head(0))

    assert summary["total_rows"] == 0
    assert set(summary["by_status"].values()) == {0}
    assert summary["by_sub_status"] == {}
    assert summary["unique_domains"] == 0


def test_summary_merges_extra_after_the_figures():
    summary = build_summary(summary_frame(), extra={"run_id": "r1", "timings_s": {"dns": 1.5}})

    assert list(summary)[-2:] == ["run_id", "timings_s"]
    assert summary["timings_s"] == {"dns": 1.5}


def test_summary_extra_may_not_overwrite_a_figure():
    with pytest.raises(ValueError, match="total_rows"):
        build_summary(summary_frame(), extra={"total_rows": 1})


def test_summary_needs_the_contract_columns():
    with pytest.raises(ValueError, match="status"):
        build_summary(pl.DataFrame({"email": ["a@b.co"]}))
