"""Ingest: every input record becomes one row, in order, with its original cells untouched."""

from __future__ import annotations

import random
import string
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.ingest import email_cells, find_email_column, read_list
from engine.schema import DEFAULT_EMAIL_COLUMN, EMAIL_RAW, ROW_ID


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _emails(ingested) -> list[str | None]:
    return ingested.originals.get_column(ingested.email_column).to_list()


# --- formats ---


def test_csv_with_header_keeps_every_column_as_text_in_input_order(tmp_path):
    path = _write(tmp_path, "list.csv", "id,email,zip\n1,a@x.com,00501\n2,b@y.org,02134\n")
    ingested = read_list(path)
    assert ingested.format == "csv" and ingested.has_header
    assert ingested.originals.to_dict(as_series=False) == {
        "id": ["1", "2"],
        "email": ["a@x.com", "b@y.org"],
        "zip": ["00501", "02134"],  # no type inference: leading zeros survive
    }


def test_csv_without_header_names_the_email_column_email_and_the_others_by_position(tmp_path):
    path = _write(tmp_path, "list.csv", "Ann,a@x.com,1\nBob,b@y.org,2\n")
    ingested = read_list(path)
    assert not ingested.has_header
    assert ingested.originals.columns == ["column_1", DEFAULT_EMAIL_COLUMN, "column_3"]
    assert _emails(ingested) == ["a@x.com", "b@y.org"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed(tmp_path, delimiter):
    rows = ["email", "name", "amount"], ["a@x.com", "Ann", "1,5"], ["b@y.org", "Bob", "2,5"]
    text = "".join(delimiter.join(row) + "\n" for row in rows)
    if delimiter == ",":
        text = text.replace("1,5", '"1,5"').replace("2,5", '"2,5"')
    ingested = read_list(_write(tmp_path, "list.csv", text))
    assert ingested.originals.columns == ["email", "name", "amount"]
    assert ingested.originals.get_column("amount").to_list() == ["1,5", "2,5"]


def test_tsv_extension_means_tab_separated(tmp_path):
    ingested = read_list(_write(tmp_path, "list.tsv", "email\tname\na@x.com\tAnn, Jr\n"))
    assert ingested.format == "csv"
    assert ingested.originals.row(0) == ("a@x.com", "Ann, Jr")


def test_quoted_cell_spanning_lines_is_one_record(tmp_path):
    path = _write(tmp_path, "list.csv", 'email,note\na@x.com,"line one\nline two"\nb@y.org,x\n')
    ingested = read_list(path)
    assert ingested.originals.get_column("note").to_list() == ["line one\nline two", "x"]


def test_txt_is_one_cell_per_line_with_crlf_handled(tmp_path):
    path = _write(tmp_path, "list.txt", "a@x.com\r\n b@y.org \r\nc,d@z.net\r\n")
    ingested = read_list(path)
    assert ingested.format == "txt" and not ingested.has_header
    assert ingested.originals.columns == [DEFAULT_EMAIL_COLUMN]
    assert _emails(ingested) == ["a@x.com", " b@y.org ", "c,d@z.net"]


def test_txt_blank_lines_are_rows_but_the_final_newline_is_not(tmp_path):
    ingested = read_list(_write(tmp_path, "list.txt", "a@x.com\n\nb@y.org\n"))
    assert _emails(ingested) == ["a@x.com", "", "b@y.org"]


def test_csv_blank_lines_are_rows_too(tmp_path):
    ingested = read_list(_write(tmp_path, "list.csv", "email,name\na@x.com,Ann\n\nb@y.org,Bob\n"))
    assert _emails(ingested) == ["a@x.com", None, "b@y.org"]


def test_txt_first_line_naming_an_email_column_is_a_header(tmp_path):
    ingested = read_list(_write(tmp_path, "list.txt", "E-mail Address\na@x.com\n"))
    assert ingested.has_header and ingested.email_column == "E-mail Address"
    assert _emails(ingested) == ["a@x.com"]


def test_json_array_of_strings(tmp_path):
    ingested = read_list(_write(tmp_path, "list.json", '["a@x.com", null, "b@y.org"]'))
    assert ingested.format == "json" and ingested.email_column == DEFAULT_EMAIL_COLUMN
    assert _emails(ingested) == ["a@x.com", None, "b@y.org"]


def test_json_array_of_objects_keeps_fields_and_finds_the_email_key(tmp_path):
    text = '[{"id": 1, "Mail": "a@x.com"}, {"id": 2, "Mail": "b@y.org", "tags": ["vip"]}]'
    ingested = read_list(_write(tmp_path, "list.json", text))
    assert ingested.email_column == "Mail" and ingested.has_header
    assert ingested.originals.get_column("id").to_list() == [1, 2]
    assert ingested.originals.get_column("tags").to_list() == [None, ["vip"]]


def test_json_lines_of_objects(tmp_path):
    text = '{"contact": "a@x.com"}\n{"contact": "b@y.org", "late_key": 1}\n'
    ingested = read_list(_write(tmp_path, "list.jsonl", text))
    assert _emails(ingested) == ["a@x.com", "b@y.org"]
    assert "late_key" in ingested.originals.columns


def test_empty_json_array_is_an_empty_list(tmp_path):
    ingested = read_list(_write(tmp_path, "list.json", " [ ] "))
    assert ingested.originals.height == 0 and ingested.email_column == DEFAULT_EMAIL_COLUMN


def test_parquet_keeps_its_dtypes(tmp_path):
    path = tmp_path / "list.parquet"
    pl.DataFrame({"email": ["a@x.com"], "age": [41], "vip": [True]}).write_parquet(path)
    ingested = read_list(path)
    assert ingested.format == "parquet"
    assert ingested.originals.schema == pl.Schema(
        {"email": pl.String, "age": pl.Int64, "vip": pl.Boolean}
    )


def test_format_argument_overrides_the_extension(tmp_path):
    ingested = read_list(_write(tmp_path, "export.dat", "email;name\na@x.com;Ann\n"), format="csv")
    assert ingested.originals.columns == ["email", "name"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[{"email": "a@x.com"}]', "json"),
        (b"email,name\na@x.com,Ann\n", "csv"),
        (b"a@x.com\nb@y.org\n", "txt"),
    ],
)
def test_unknown_extension_is_sniffed(tmp_path, content, expected):
    assert read_list(_write(tmp_path, "list.export", content)).format == expected


def test_unknown_extension_with_parquet_magic_is_parquet(tmp_path):
    path = tmp_path / "list.bin"
    pl.DataFrame({"email": ["a@x.com"]}).write_parquet(path)
    assert read_list(path).format == "parquet"


# --- the email column ---


@pytest.mark.parametrize(
    "header", ["Email", "E-mail", "Email Address", "email_address", "MAIL", "Courriel", "correo"]
)
def test_email_column_is_found_by_name(tmp_path, header):
    path = _write(tmp_path, "list.csv", f"notes,{header}\nsee a@x.com,not-an-address\n")
    assert read_list(path).email_column == header


def test_email_column_is_found_by_content_when_no_name_matches(tmp_path):
    path = _write(tmp_path, "list.csv", "who,contact\nAnn,a@x.com\nBob,b@y.org\nCy,none\n")
    assert read_list(path).email_column == "contact"


def test_explicit_column_wins_and_is_matched_case_insensitively(tmp_path):
    path = _write(tmp_path, "list.csv", "email,Backup Email\na@x.com,b@y.org\n")
    assert read_list(path, column="backup email").email_column == "Backup Email"


def test_explicit_column_that_is_missing_is_an_input_error_listing_the_columns(tmp_path):
    path = _write(tmp_path, "list.csv", "email,name\na@x.com,Ann\n")
    with pytest.raises(
        InputError, match=r"list\.csv: column 'mail2' not found \(columns: email, name\)"
    ):
        read_list(path, column="mail2")


def test_no_email_column_is_an_input_error_naming_file_and_columns(tmp_path):
    path = _write(tmp_path, "list.csv", "id,name,phone\n1,Ann,555\n")
    with pytest.raises(InputError) as error:
        read_list(path)
    assert (
        str(error.value)
        == f"{path}: no email column found (columns: id, name, phone); pass --column NAME"
    )


def test_content_detection_needs_more_than_half_the_cells_to_hold_an_at_sign():
    frame = pl.DataFrame({"note": ["a@x", "b@y", "c", "d"]})
    with pytest.raises(InputError, match="no email column"):
        find_email_column(frame)


def test_email_cells_numbers_rows_from_the_given_offset_and_keeps_cells_verbatim(tmp_path):
    ingested = read_list(_write(tmp_path, "list.txt", " A@X.com \nb@y.org\n"))
    cells = email_cells(ingested, first_row_id=10)
    assert cells.schema == pl.Schema({ROW_ID: pl.UInt64, EMAIL_RAW: pl.String})
    assert cells.rows() == [(10, " A@X.com "), (11, "b@y.org")]


# --- encodings ---


def test_utf8_bom_does_not_reach_the_first_column_name(tmp_path):
    ingested = read_list(_write(tmp_path, "list.csv", b"\xef\xbb\xbfemail,name\na@x.com,Ann\n"))
    assert ingested.originals.columns == ["email", "name"]
    assert ingested.encoding == "utf-8-sig"


def test_utf8_bom_does_not_reach_the_first_txt_cell(tmp_path):
    ingested = read_list(_write(tmp_path, "list.txt", b"\xef\xbb\xbfa@x.com\nb@y.org\n"))
    assert _emails(ingested) == ["a@x.com", "b@y.org"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_transcoded(tmp_path, codec):
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(codec, b"")
    data = bom + "email,name\r\na@x.com,Zoë\r\n".encode(codec)
    ingested = read_list(_write(tmp_path, "list.csv", data))
    assert ingested.encoding == "utf-16"
    assert ingested.originals.row(0) == ("a@x.com", "Zoë")


def test_latin1_file_is_decoded_with_one_warning_naming_the_first_bad_line(tmp_path):
    path = _write(tmp_path, "list.csv", "email,name\na@x.com,José\nb@y.org,Zoë\n".encode("latin-1"))
    ingested = read_list(path)
    assert ingested.encoding == "latin-1"
    assert ingested.originals.get_column("name").to_list() == ["José", "Zoë"]
    assert ingested.warnings == (
        f"{path}: line 2 is not valid UTF-8; 2 such lines read as Latin-1",
    )


def test_mixed_encodings_are_decoded_line_by_line(tmp_path):
    data = "email,name\na@x.com,Zoë\n".encode() + "b@y.org,José\n".encode("latin-1")
    ingested = read_list(_write(tmp_path, "list.csv", data))
    assert ingested.encoding == "mixed"
    assert ingested.originals.get_column("name").to_list() == ["Zoë", "José"]
    assert len(ingested.warnings) == 1 and "line 3" in ingested.warnings[0]


@pytest.mark.parametrize("name", ["list.txt", "list.csv"])
def test_latin1_bytes_far_beyond_the_sniffed_head_are_still_caught(tmp_path, name):
    lines = [f"user{i}@example.com" for i in range(20_000)] + ["zoë@example.com"]
    data = "\n".join(lines).encode("latin-1") + b"\n"
    ingested = read_list(_write(tmp_path, name, data))
    assert ingested.originals.height == 20_001
    assert _emails(ingested)[-1] == "zoë@example.com"
    assert "line 20001" in ingested.warnings[0]


def test_classic_mac_cr_line_ends_are_line_ends(tmp_path):
    ingested = read_list(_write(tmp_path, "list.csv", b"email,name\ra@x.com,Ann\rb@y.org,Bob\r"))
    assert _emails(ingested) == ["a@x.com", "b@y.org"]


# --- bad input: no crash, no lost rows ---


def test_empty_file_is_an_input_error(tmp_path):
    path = _write(tmp_path, "list.csv", b"")
    with pytest.raises(InputError, match=r"list\.csv: the file is empty$"):
        read_list(path)


def test_header_only_is_an_empty_list(tmp_path):
    ingested = read_list(_write(tmp_path, "list.csv", "email,name\n"))
    assert ingested.originals.height == 0 and ingested.email_column == "email"


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        read_list(tmp_path / "nope.csv")


def test_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_list(tmp_path)


def test_rows_with_more_fields_than_the_header_keep_their_row_and_warn_once(tmp_path):
    text = "email,name\na@x.com,Ann,EXTRA\nb@y.org,Bob\nc@z.net,Cy,MORE,STILL\nd@w.io,Di,\n"
    path = _write(tmp_path, "list.csv", text)
    ingested = read_list(path)
    assert ingested.originals.rows() == [
        ("a@x.com", "Ann"),
        ("b@y.org", "Bob"),
        ("c@z.net", "Cy"),
        ("d@w.io", "Di"),  # a trailing empty field loses nothing and is not reported
    ]
    dropped = "more fields than the header; the extra fields were dropped (and 1 later row)"
    assert ingested.warnings == (f"{path}:row 2: {dropped}",)


def test_rows_with_fewer_fields_than_the_header_get_nulls(tmp_path):
    ingested = read_list(_write(tmp_path, "list.csv", "email,name,city\na@x.com\nb@y.org,Bob\n"))
    assert ingested.originals.rows() == [("a@x.com", None, None), ("b@y.org", "Bob", None)]
    assert ingested.warnings == ()


def test_stray_quotes_cost_one_record_its_quoting_not_the_following_rows(tmp_path):
    text = 'email,name\na@x.com,"Ann"y\n"b@y.org,unclosed\nc@z.net,Cy\nd@w.io,5" screen\n'
    path = _write(tmp_path, "list.csv", text)
    ingested = read_list(path)
    assert ingested.originals.rows() == [
        ("a@x.com", "Anny"),
        ('"b@y.org', "unclosed"),
        ("c@z.net", "Cy"),
        ("d@w.io", '5" screen'),
    ]
    assert len(ingested.warnings) == 1 and ingested.warnings[0].startswith(
        f"{path}:row 2: malformed quoting"
    )


def test_nul_bytes_inside_csv_cells_are_kept(tmp_path):
    ingested = read_list(
        _write(tmp_path, "list.csv", b"email,name\na@x.com,A\x00nn\nb@y.org,Bob\n")
    )
    assert ingested.originals.get_column("name").to_list() == ["A\x00nn", "Bob"]


@pytest.mark.parametrize("name", ["junk.txt", "junk.csv"])
def test_binary_junk_lines_are_each_one_row(tmp_path, name):
    generator = random.Random(7)
    cell_bytes = bytes(b for b in range(256) if b not in b'\r\n"')
    lines = [bytes(generator.choices(cell_bytes, k=generator.randrange(0, 80))) for _ in range(500)]
    lines[0] = b"email@example.com"  # headerless, so every line is data
    ingested = read_list(_write(tmp_path, name, b"\n".join(lines) + b"\n"), column="email")
    assert ingested.originals.height == 500
    assert ingested.encoding in ("latin-1", "mixed")


def test_binary_junk_with_quotes_and_crs_does_not_crash(tmp_path):
    junk = random.Random(11).randbytes(200_000)
    path = _write(tmp_path, "junk.csv", b"email,name\n" + junk)
    try:
        ingested = read_list(path, column="email")
    except InputError as error:  # allowed: a clean one-line error, never a traceback
        assert "\n" not in str(error)
    else:
        assert ingested.originals.height >= junk.count(b"\n") // 2
        assert all("\n" not in warning for warning in ingested.warnings)


def test_a_100_mb_line_survives_as_one_cell(tmp_path):
    cell = "x" * 100_000_000 + "@example.com"
    path = _write(tmp_path, "big.txt", cell)
    ingested = read_list(path)
    assert ingested.originals.height == 1
    assert ingested.originals.get_column("email").str.len_bytes()[0] == len(cell)


def test_truncated_parquet_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "list.parquet"
    pl.DataFrame({"email": [f"u{i}@x.com" for i in range(1000)]}).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"list\.parquet: not a readable Parquet file"):
        read_list(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[1, 2, 3]", "holds neither addresses nor objects"),
        ('{\n  "data": [{"email": "a@x.com"}]\n}', r"a single JSON object \(keys: data\)"),
        ('[{"email": "a@x.com"},', "not valid JSON"),
        ('"a@x.com"', "expected a JSON array"),
    ],
)
def test_json_of_the_wrong_shape_is_an_input_error_naming_the_problem(tmp_path, content, problem):
    with pytest.raises(InputError, match=problem):
        read_list(_write(tmp_path, "list.json", content))


def test_unknown_format_argument_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown format 'xlsx'"):
        read_list(_write(tmp_path, "list.csv", "email\na@x.com\n"), format="xlsx")


# --- row conservation, for any content ---

_CELL = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufeff"), max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cells=st.lists(_CELL, min_size=1, max_size=30), names=st.data())
def test_csv_round_trips_every_record_in_order(tmp_path, cells, names):
    other = names.draw(st.lists(_CELL, min_size=len(cells), max_size=len(cells)))
    frame = pl.DataFrame({"email": cells, "name": other})
    path = tmp_path / "list.csv"
    frame.write_csv(path)
    # Polars writes "" for an empty string and nothing for null, so even that survives.
    assert read_list(path).originals.to_dict(as_series=False) == frame.to_dict(as_series=False)


_LINE = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\ufeff"), max_size=12
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINE, min_size=1, max_size=30))
def test_txt_round_trips_every_line_in_order(tmp_path, lines):
    lines[0] = "first@example.com"  # a first line naming a column would be a header
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    assert _emails(read_list(path)) == lines


def test_large_list_keeps_row_order(tmp_path):
    addresses = [
        f"{''.join(random.Random(i).choices(string.ascii_lowercase, k=8))}{i}@x.com"
        for i in range(50_000)
    ]
    path = _write(tmp_path, "list.csv", "email\n" + "\n".join(addresses) + "\n")
    cells = email_cells(read_list(path))
    assert cells.get_column(EMAIL_RAW).to_list() == addresses
    assert cells.get_column(ROW_ID).to_list() == list(range(50_000))
