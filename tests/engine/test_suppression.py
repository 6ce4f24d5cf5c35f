"""Suppression lists: the user's spam traps, complainers and global suppressions, by file name."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine.errors import InputError
from engine.suppression import (
    SUPPRESSION_SCHEMA,
    read_suppression_lists,
    suppression_facts,
)


def _keys(*addresses: str) -> pl.DataFrame:
    """dedup_key and domain, as prepare gives them (already normalised here)."""
    return pl.DataFrame(
        {
            "dedup_key": list(addresses),
            "domain": [address.rpartition("@")[2] for address in addresses],
        }
    )


def _facts(folder: Path, *addresses: str) -> dict[str, tuple[str, str]]:
    facts = suppression_facts(folder, _keys(*addresses))
    return {key: (kind, name) for key, kind, name in facts.rows()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "suppression"
    folder.mkdir()
    return folder


def test_a_missing_folder_suppresses_nothing(tmp_path):
    facts = suppression_facts(tmp_path / "absent", _keys("a@example.com"))
    assert facts.is_empty()
    assert facts.schema == pl.Schema(SUPPRESSION_SCHEMA)


def test_each_kind_comes_from_its_file_name(folder):
    (folder / "spamtraps.txt").write_text("trap@example.com\n")
    (folder / "abuse.txt").write_text("angry@example.com\n")
    (folder / "global_suppression.txt").write_text("gone@example.com\n")
    assert _facts(
        folder, "trap@example.com", "angry@example.com", "gone@example.com", "ok@x.com"
    ) == {
        "trap@example.com": ("spamtrap", "spamtraps.txt"),
        "angry@example.com": ("abuse", "abuse.txt"),
        "gone@example.com": ("global_suppression", "global_suppression.txt"),
    }


def test_entries_are_normalised_like_the_list(folder):
    (folder / "spamtraps.txt").write_text(
        "# traps bought from a vendor, 2026-03\n  Trap@EXAMPLE.com \n\nmailto:other@Bücher.de\n"
    )
    assert set(_facts(folder, "trap@example.com", "other@xn--bcher-kva.de")) == {
        "trap@example.com",
        "other@xn--bcher-kva.de",
    }


def test_a_csv_with_an_email_column_is_a_list(folder):
    (folder / "abuse.csv").write_text(
        'reported_on,Email Address,notes\n2026-01-02,angry@example.com,"called us, twice"\n'
    )
    assert _facts(folder, "angry@example.com") == {"angry@example.com": ("abuse", "abuse.csv")}


def test_a_domain_line_suppresses_the_whole_domain_but_not_its_subdomains(folder):
    (folder / "global_suppression.txt").write_text("@competitor.com\n*@Bücher.de\n")
    assert _facts(
        folder, "anyone@competitor.com", "x@xn--bcher-kva.de", "a@mail.competitor.com"
    ) == {
        "anyone@competitor.com": ("global_suppression", "global_suppression.txt"),
        "x@xn--bcher-kva.de": ("global_suppression", "global_suppression.txt"),
    }


def test_spamtrap_wins_over_abuse_over_global_suppression(folder):
    (folder / "global_suppression.txt").write_text("both@example.com\nall@example.com\n")
    (folder / "abuse.txt").write_text("both@example.com\nall@example.com\n")
    (folder / "spamtraps.txt").write_text("@example.com\n")
    (folder / "abuse.2026.txt").write_text("only-abuse@example.org\n")
    assert _facts(folder, "both@example.com", "all@example.com", "only-abuse@example.org") == {
        "both@example.com": ("spamtrap", "spamtraps.txt"),
        "all@example.com": ("spamtrap", "spamtraps.txt"),
        "only-abuse@example.org": ("abuse", "abuse.2026.txt"),
    }


def test_within_a_kind_an_address_entry_wins_over_a_domain_entry(folder):
    (folder / "global_suppression.a.txt").write_text("@example.com\n")
    (folder / "global_suppression.b.txt").write_text("someone@example.com\n")
    assert _facts(folder, "someone@example.com") == {
        "someone@example.com": ("global_suppression", "global_suppression.b.txt")
    }


def test_other_files_and_empty_placeholders_are_ignored(folder):
    (folder / "notes.txt").write_text("a@example.com\n")
    (folder / "spamtraps_old.txt").write_text("a@example.com\n")
    (folder / "spamtraps.txt").write_text("")
    assert _facts(folder, "a@example.com") == {}
    assert [path.name for path in read_suppression_lists(folder).files] == ["spamtraps.txt"]


def test_cells_that_are_neither_address_nor_domain_are_counted_not_fatal(folder):
    (folder / "spamtraps.txt").write_text("trap@example.com\nnot an address\nexample.org\n")
    lists = read_suppression_lists(folder)
    assert lists.skipped == 2
    assert lists.entries.height == 1


def test_duplicate_keys_in_the_input_give_one_row(folder):
    (folder / "spamtraps.txt").write_text("trap@example.com\n")
    facts = suppression_facts(folder, _keys("trap@example.com", "trap@example.com"))
    assert facts.height == 1


def test_a_parquet_list_is_read(folder):
    pl.DataFrame({"email": ["p@example.com"]}).write_parquet(folder / "abuse.parquet")
    assert _facts(folder, "p@example.com") == {"p@example.com": ("abuse", "abuse.parquet")}


def test_an_unreadable_list_is_an_input_error_naming_it(folder):
    (folder / "abuse.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"abuse\.parquet"):
        suppression_facts(folder, _keys("a@example.com"))
