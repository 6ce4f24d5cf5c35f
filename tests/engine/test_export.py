"""Specification of the results contract, its files and the run summary (DESIGN §4, §5)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine import schema
from engine.errors import InputError
from engine.export import (
    JSON_BATCH_ROWS,
    assemble_results,
    atomic_output,
    build_summary,
    write_results,
    write_summary,
)

CHECKED_AT = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
FORMULA_TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]


def crm_export() -> pl.DataFrame:
    """A CRM export as users drop them: it has its own `status` and `first_name` columns."""
    return pl.DataFrame(
        {
            "email": ["Alice@Example.com", "bob@gmial.com", "alice@example.com"],
            "first_name": ["Alice", "Bob", None],
            "status": ["customer", "lead", "customer"],
            "lifetime_value": [1200, -5, 0],
            "signed_up": [datetime(2021, 1, 2), None, datetime(2022, 6, 30)],
        }
    )


def verdicts_for_crm_export() -> pl.DataFrame:
    """What the verdict stage hands over: row_id, a subset of contract columns, one extra."""
    return pl.DataFrame(
        {
            schema.ROW_ID: [0, 1, 2],
            "status": ["valid", "invalid", "valid"],
            "sub_status": ["mailbox_confirmed", "possible_typo", "mailbox_confirmed"],
            "email_normalized": ["alice@example.com", "bob@gmial.com", "alice@example.com"],
            "domain": ["example.com", "gmial.com", "example.com"],
            "score": [97, 5, 97],  # Int64 here; the contract says Int16
            "is_valid": [True, False, True],
            "did_you_mean": [None, "bob@gmail.com", None],
            "is_duplicate": [False, False, True],
            "checked_at": [CHECKED_AT, CHECKED_AT, CHECKED_AT],
            "factors": ["smtp_250", "typo_domain", "smtp_250 duplicate"],
            "source_file": ["crm.csv", "crm.csv", "crm.csv"],
        }
    )


def crm_results() -> pl.DataFrame:
    return assemble_results(crm_export(), verdicts_for_crm_export())


def read_csv_cells(path: Path) -> list[list[str]]:
    """The CSV exactly as a spreadsheet receives it: header and cells as raw text."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- assemble_results: the contract's shape ---


def test_results_are_originals_then_contract_columns_then_extras():
    results = crm_results()

    assert results.columns == [
        "email",
        "first_name_input",
        "status_input",
        "lifetime_value",
        "signed_up",
        *schema.RESULT_COLUMNS,
        "source_file",
    ]


def test_every_contract_column_has_its_contract_dtype():
    results = crm_results()

    assert {name: results.schema[name] for name in schema.RESULT_COLUMNS} == dict(
        schema.RESULT_COLUMNS
    )


def test_original_columns_keep_their_values_and_dtypes():
    originals = crm_export()
    results = crm_results()

    kept = results.select("email", "first_name_input", "status_input").rename(
        {"first_name_input": "first_name", "status_input": "status"}
    )
    assert_frame_equal(kept, originals.select("email", "first_name", "status"))
    assert_frame_equal(
        results.select("lifetime_value", "signed_up"),
        originals.select("lifetime_value", "signed_up"),
    )


def test_colliding_original_column_gives_its_name_to_the_fresh_verdict():
    results = crm_results()

    assert results["status"].to_list() == ["valid", "invalid", "valid"]
    assert results["status_input"].to_list() == ["customer", "lead", "customer"]


def test_an_existing_suffixed_column_is_not_overwritten_by_a_collision_rename():
    originals = pl.DataFrame({"status": ["old"], "status_input": ["older"]})
    verdicts = pl.DataFrame({schema.ROW_ID: [0], "status": ["valid"]})

    results = assemble_results(originals, verdicts)

    assert results["status_input"].to_list() == ["older"]
    assert results["status_input_input"].to_list() == ["old"]
    assert results["status"].to_list() == ["valid"]


def test_contract_columns_missing_from_verdicts_are_typed_nulls():
    results = assemble_results(
        pl.DataFrame({"email": ["a@b.co", "c@d.co"]}), pl.DataFrame({schema.ROW_ID: [0, 1]})
    )

    assert results.height == 2
    assert results.select(list(schema.RESULT_COLUMNS)).null_count().row(0) == (2,) * len(
        schema.RESULT_COLUMNS
    )
    assert results.schema["checked_at"] == pl.Datetime("us", "UTC")


def test_row_id_is_not_part_of_the_results():
    assert schema.ROW_ID not in crm_results().columns


def test_height_mismatch_raises():
    verdicts = verdicts_for_crm_export().head(2)

    with pytest.raises(ValueError, match="row conservation"):
        assemble_results(crm_export(), verdicts)


def test_verdicts_out_of_row_order_raise():
    verdicts = verdicts_for_crm_export().reverse()

    with pytest.raises(ValueError, match="not ordered"):
        assemble_results(crm_export(), verdicts)


def test_zero_rows_give_an_empty_frame_with_the_full_contract():
    results = assemble_results(
        pl.DataFrame({"email": []}, schema={"email": pl.String}),
        pl.DataFrame({schema.ROW_ID: []}, schema={schema.ROW_ID: pl.Int64}),
    )

    assert results.height == 0
    assert results.columns == ["email", *schema.RESULT_COLUMNS]


# --- CSV: formula injection (OWASP CSV Injection) ---


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS, ids=repr)
def test_csv_cell_starting_with_a_formula_trigger_gets_a_leading_quote(tmp_path, trigger):
    originals = pl.DataFrame({"email": ["a@b.co"], "notes": [f"{trigger}HYPERLINK(1)"]})
    verdicts = pl.DataFrame({schema.ROW_ID: [0], "smtp_message": [f"{trigger}cmd|' /C calc'!A0"]})

    path = write_results(assemble_results(originals, verdicts), tmp_path / "out.csv")

    header, row = read_csv_cells(path)
    assert row[header.index("notes")] == f"'{trigger}HYPERLINK(1)"
    assert row[header.index("smtp_message")] == f"'{trigger}cmd|' /C calc'!A0"


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS, ids=repr)
def test_csv_header_starting_with_a_formula_trigger_gets_a_leading_quote(tmp_path, trigger):
    results = assemble_results(
        pl.DataFrame({f"{trigger}cmd": ["x"]}), pl.DataFrame({schema.ROW_ID: [0]})
    )

    header, _ = read_csv_cells(write_results(results, tmp_path / "out.csv"))

    assert header[0] == f"'{trigger}cmd"


def test_ordinary_csv_cells_are_written_untouched(tmp_path):
    originals = pl.DataFrame(
        {"email": ["alice@example.com", "x@y.co", "z@y.co"], "name": ["O'Brien", "", None]}
    )
    results = assemble_results(originals, pl.DataFrame({schema.ROW_ID: [0, 1, 2]}))

    text = (write_results(results, tmp_path / "out.csv")).read_text(encoding="utf-8")

    lines = text.splitlines()
    assert lines[1].startswith("alice@example.com,O'Brien,")
    assert lines[2].startswith('x@y.co,"",')  # an empty string stays distinguishable from null
    assert lines[3].startswith("z@y.co,,")


def test_text_that_looks_numeric_is_quoted_but_numeric_columns_are_not(tmp_path):
    originals = pl.DataFrame({"phone": ["+44 20 7946 0000"], "balance": [-5]})
    results = assemble_results(originals, pl.DataFrame({schema.ROW_ID: [0]}))

    header, row = read_csv_cells(write_results(results, tmp_path / "out.csv"))

    assert row[header.index("phone")] == "'+44 20 7946 0000"
    assert row[header.index("balance")] == "-5"


# Lone surrogates (category Cs) cannot be UTF-8 and so never reach a Polars string column.
_CELL_CHARACTERS = st.sampled_from(FORMULA_TRIGGERS) | st.characters(exclude_categories=("Cs",))


@settings(max_examples=150, deadline=None)
@given(st.lists(_CELL_CHARACTERS, max_size=12).map("".join))
def test_any_csv_text_reads_back_as_itself_or_quoted_when_it_starts_with_a_trigger(cell):
    results = assemble_results(pl.DataFrame({"notes": [cell]}), pl.DataFrame({schema.ROW_ID: [0]}))
    with tempfile.TemporaryDirectory() as directory:
        header, row = read_csv_cells(write_results(results, Path(directory) / "out.csv"))

    expected = "'" + cell if cell[:1] in FORMULA_TRIGGERS and cell else cell
    assert row[header.index("notes")] == expected


# --- CSV: how values are spelled ---


def test_csv_spells_booleans_nulls_and_utc_datetimes_for_people(tmp_path):
    header, alice, _, _ = read_csv_cells(write_results(crm_results(), tmp_path / "out.csv"))
    cell = dict(zip(header, alice, strict=True))

    assert cell["is_valid"] == "true"
    assert cell["is_duplicate"] == "false"
    assert cell["smtp_valid"] == ""
    assert cell["checked_at"] == "2025-03-14T09:26:53.589793Z"


def test_time_zone_aware_original_datetimes_are_written_in_utc(tmp_path):
    paris = pl.DataFrame({"seen": [datetime(2024, 7, 1, 12, 0)]}).with_columns(
        pl.col("seen").dt.replace_time_zone("Europe/Paris")
    )
    results = assemble_results(paris, pl.DataFrame({schema.ROW_ID: [0]}))

    header, row = read_csv_cells(write_results(results, tmp_path / "out.csv"))

    assert row[header.index("seen")] == "2024-07-01T10:00:00Z"


def test_nested_binary_and_duration_columns_are_written_to_csv_as_text(tmp_path):
    originals = pl.DataFrame(
        {
            "tags": [["vip", "=x"], None],
            "address": [{"city": "Zürich", "zip": 8001}, None],
            "avatar": [b"\x00\xff", None],
            "tenure": [timedelta(days=3, hours=4), None],
        }
    )
    results = assemble_results(originals, pl.DataFrame({schema.ROW_ID: [0, 1]}))

    header, full, empty = read_csv_cells(write_results(results, tmp_path / "out.csv"))
    cell = dict(zip(header, full, strict=True))

    assert json.loads(cell["tags"]) == ["vip", "=x"]
    assert json.loads(cell["address"]) == {"city": "Zürich", "zip": 8001}
    assert cell["avatar"] == "AP8="  # base64
    assert cell["tenure"] == "P3DT4H"  # ISO 8601 duration
    assert empty[:4] == ["", "", "", ""]


def test_csv_has_no_byte_order_mark_unless_asked(tmp_path):
    plain = write_results(crm_results(), tmp_path / "plain.csv")
    excel = write_results(crm_results(), tmp_path / "excel.csv", include_bom=True)

    assert plain.read_bytes().startswith(b"email,")
    assert excel.read_bytes().startswith(b"\xef\xbb\xbfemail,")


# --- Round trips ---


def test_csv_round_trips_through_polars(tmp_path):
    results = crm_results()

    path = write_results(results, tmp_path / "out.csv")

    back = pl.read_csv(path, schema=results.schema)
    assert_frame_equal(back, results)


def test_parquet_round_trips_with_contract_dtypes(tmp_path):
    results = crm_results()

    back = pl.read_parquet(write_results(results, tmp_path / "out.parquet"))

    assert_frame_equal(back, results)


def test_parquet_is_zstd_compressed(tmp_path):
    import pyarrow.parquet as pq

    path = write_results(crm_results(), tmp_path / "out.parquet")

    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_json_is_an_array_of_objects_that_round_trips(tmp_path):
    results = crm_results()

    path = write_results(results, tmp_path / "out.json")

    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, list)
    assert document[1]["did_you_mean"] == "bob@gmail.com"
    assert document[1]["status_input"] == "lead"
    assert_frame_equal(pl.read_json(path, schema=results.schema), results)


def test_json_array_spanning_several_write_batches_is_one_valid_document(tmp_path):
    rows = JSON_BATCH_ROWS * 2 + 1
    frame = pl.DataFrame({"n": range(rows)}).with_columns(
        note=pl.when(pl.col("n") % 2 == 0).then(pl.lit("line one\nline two")).otherwise(None)
    )

    path = write_results(frame, tmp_path / "big.json")

    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(document) == rows
    assert document[-1] == {"n": rows - 1, "note": "line one\nline two"}
    assert [row["n"] for row in document] == list(range(rows))


def test_json_array_of_no_rows_is_an_empty_array(tmp_path):
    path = write_results(crm_results().head(0), tmp_path / "empty.json")

    assert json.loads(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_has_one_object_per_row_and_round_trips(tmp_path, suffix):
    results = crm_results()

    path = write_results(results, tmp_path / f"out{suffix}")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == results.height
    assert json.loads(lines[0])["email"] == "Alice@Example.com"
    # Polars 2.1's NDJSON reader panics on an Int16 schema, so Int16 columns are read as Int64.
    wide = {n: pl.Int64 if d == pl.Int16 else d for n, d in results.schema.items()}
    assert_frame_equal(pl.read_ndjson(path, schema=wide).cast(results.schema), results)


def test_parquet_and_json_keep_formula_like_values_verbatim(tmp_path):
    results = assemble_results(pl.DataFrame({"=c": ["=1+1"]}), pl.DataFrame({schema.ROW_ID: [0]}))

    parquet = pl.read_parquet(write_results(results, tmp_path / "out.parquet"))
    lines = pl.read_ndjson(write_results(results, tmp_path / "out.jsonl"))

    assert parquet["=c"].to_list() == ["=1+1"]
    assert lines["=c"].to_list() == ["=1+1"]


# --- Formats and atomic writing ---


def test_explicit_format_wins_over_the_extension(tmp_path):
    path = write_results(crm_results(), tmp_path / "results.txt", "parquet")

    assert pl.read_parquet(path).height == 3


def test_unknown_extension_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError, match=r"results\.xlsx.*\.csv, \.parquet, \.json or \.jsonl"):
        write_results(crm_results(), tmp_path / "results.xlsx")


def test_write_creates_missing_parent_directories(tmp_path):
    path = write_results(crm_results(), tmp_path / "lists" / "abc" / "results.csv")

    assert path.is_file()


@pytest.mark.parametrize("name", ["out.csv", "out.parquet", "out.json", "out.jsonl"])
def test_atomic_write_leaves_only_the_final_file(tmp_path, name):
    write_results(crm_results(), tmp_path / name)
    write_summary(build_summary(crm_results()), tmp_path / "summary.json")

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "summary.json"])


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("previous run\n", encoding="utf-8")

    with pytest.raises(RuntimeError), atomic_output(path) as temp:
        temp.write_text("half a fi", encoding="utf-8")
        raise RuntimeError("disk full")

    assert path.read_text(encoding="utf-8") == "previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_written_file_gets_the_umask_mode_not_a_private_temp_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_results(crm_results(), tmp_path / "out.csv")
    finally:
        os.umask(previous)

    assert path.stat().st_mode & 0o777 == 0o644


# --- Summary file ---


def test_summary_file_is_pretty_json_that_reads_back_equal(tmp_path):
    summary = build_summary(
        crm_results(), extra={"finished_at": datetime(2025, 1, 1, tzinfo=UTC), "by": "Zoë"}
    )

    path = write_summary(summary, tmp_path / "lists" / "summary.json")

    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "total_rows": 3,')
    assert "Zoë" in text
    assert json.loads(text) == {**summary, "finished_at": "2025-01-01T00:00:00+00:00"}


def test_summary_with_a_value_json_cannot_spell_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="set"):
        write_summary({"files": {"a"}}, tmp_path / "summary.json")

    assert list(tmp_path.iterdir()) == []


def test_csv_reader_sees_one_record_per_row_even_with_newlines_in_cells(tmp_path):
    originals = pl.DataFrame({"notes": ["line one\nline two", 'say "hi", ok']})
    results = assemble_results(originals, pl.DataFrame({schema.ROW_ID: [0, 1]}))

    rows = read_csv_cells(write_results(results, tmp_path / "out.csv"))

    assert [r[0] for r in rows] == ["notes", "line one\nline two", 'say "hi", ok']
