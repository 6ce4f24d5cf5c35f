"""Prepare: one normalised, checked, deduplicated row per cell, in input order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.prepare
from engine.export import write_prepared
from engine.ingest import email_cells, read_list
from engine.prepare import (
    _first_positions,
    check_syntax,
    dedup,
    local_part_of,
    normalise,
    prepare,
    prepare_file,
    read_prepared,
    reference_syntax_check,
)
from engine.schema import (
    DEDUP_KEY,
    DOMAIN,
    EMAIL_NORMALIZED,
    EMAIL_RAW,
    FIRST_ROW_ID,
    IS_DUPLICATE,
    LOCAL_PART,
    PREPARED_FILE_COLUMNS,
    ROW_ID,
    SYNTAX_REASON,
    SYNTAX_VALID,
)
from tests.bench.generate import generate_list

# Cells that take every path through prepare_file: plain, trimmed or re-cased (duplicates of each
# other across the paths), longer than the short quick test, over a limit, special-use, IDN,
# internationalised, quoted, wrapped, padded past the cell limit, empty, and plain garbage.
TRICKY_CELLS = [
    "plain@example.com",
    "Plain@Example.COM",
    "  plain@example.com\u00a0",
    "PLAIN@EXAMPLE.COM",
    "a" * 40 + "@" + "b" * 30 + ".com",
    "A" * 40 + "@" + "b" * 30 + ".com",
    "x" * 65 + "@example.com",
    "x@" + "y" * 64 + ".com",
    "a@" + ".".join(["label"] * 50) + ".com",
    " " * 1_000 + "a@b.com",
    "a@b.local",
    "a@B.TEST",
    "a@x.onion",
    "me@bücher.de",
    "me@xn--bcher-kva.de",
    "me@Bücher.DE",
    "josé@example.com",
    "\u212a@example.com",
    '"quoted"@example.com',
    '"a@b"@example.com',
    "John Smith <John@Example.com>",
    "mailto:Ann@X.com?subject=hi",
    "a@@b.com",
    "a@b@c.com",
    "no-at-sign",
    "NO-AT-SIGN",
    "",
    None,
    "a@b.com.",
    "a..b@c.com",
    "@x.com",
    "x@",
    "ab--cd@x.com",
    "a@ab--cd.com",
    "a@b.c0m",
    "a@123.45",
    "a b@c.com",
    "a@b_c.com",
]


def _cells(cells: list[str | None], row_ids: list[int] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW_ID: pl.Series(row_ids or range(len(cells)), dtype=pl.UInt64),
            EMAIL_RAW: pl.Series(cells, dtype=pl.String),
        }
    )


def _normalised(cells: list[str | None]) -> list[str | None]:
    return normalise(_cells(cells)).get_column(EMAIL_NORMALIZED).to_list()


def _parts(cell: str | None) -> dict[str, str | None]:
    return (
        normalise(_cells([cell]))
        .select(EMAIL_NORMALIZED, LOCAL_PART, DOMAIN, DEDUP_KEY)
        .row(0, named=True)
    )


@pytest.fixture(scope="module")
def generated_cells(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = generate_list(30_000, seed=7, path=tmp_path_factory.mktemp("bench") / "list.csv")
    emails = pl.read_csv(path, infer_schema=False).get_column("email")
    return _cells(emails.to_list())


# --- normalise ---


def test_whitespace_around_a_cell_is_trimmed_including_unicode_spaces():
    cells = [" a@b.com\t", "\u00a0a@b.com\u3000", "\ufeffa@b.com\u200b", "\r\na@b.com\n"]
    assert _normalised(cells) == ["a@b.com"] * 4


def test_mailto_prefix_and_its_query_are_stripped():
    cells = ["mailto:a@b.com", "MailTo:a@b.com?subject=Hi&body=there", "<mailto:a@b.com>"]
    assert _normalised(cells) == ["a@b.com"] * 3


def test_display_name_and_angle_brackets_are_unwrapped():
    cells = [
        "John Smith <john@b.com>",
        '"Smith, John" <john@b.com>',
        "<john@b.com>",
        "J < john@b.com >",
    ]
    assert _normalised(cells) == ["john@b.com"] * 4


def test_a_cell_with_two_addresses_is_not_cut_down_to_one():
    cells = ["Ann <ann@x.com>, Bob <bob@y.com>"]
    assert _normalised(cells) == cells
    assert prepare(_cells(cells)).get_column(SYNTAX_VALID).to_list() == [False]


def test_domain_is_lower_cased_and_the_local_part_keeps_its_case():
    assert _parts("John.Smith@Example.COM") == {
        EMAIL_NORMALIZED: "John.Smith@example.com",
        LOCAL_PART: "John.Smith",
        DOMAIN: "example.com",
        DEDUP_KEY: "john.smith@example.com",
    }


def test_idn_domain_becomes_its_idna_2008_a_label():
    assert _normalised(["anna@Bücher.DE", "x@例え。jp", "x@straße.de"]) == [
        "anna@xn--bcher-kva.de",
        "x@xn--r8jz45g.jp",
        "x@xn--strae-oqa.de",  # IDNA 2008 keeps ß (IDNA 2003 would have made it "strasse")
    ]


def test_domain_that_cannot_be_converted_keeps_its_lower_cased_text():
    assert _parts("x@Bü..de")[DOMAIN] == "bü..de"


def test_trailing_dot_of_the_domain_is_kept_for_the_syntax_check_to_reject():
    assert _parts("a@b.com.")[DOMAIN] == "b.com."
    assert prepare(_cells(["a@b.com."])).get_column(SYNTAX_VALID).to_list() == [False]


def test_cell_without_an_at_sign_keeps_its_trimmed_text_and_has_no_parts():
    assert _parts("  Not An Address ") == {
        EMAIL_NORMALIZED: "Not An Address",
        LOCAL_PART: None,
        DOMAIN: None,
        DEDUP_KEY: "not an address",
    }


def test_address_is_split_at_its_last_at_sign():
    parts = _parts('"a@b"@Example.com')
    assert (parts[LOCAL_PART], parts[DOMAIN]) == ('"a@b"', "example.com")


def test_empty_and_blank_cells_have_no_normalised_form():
    frame = normalise(_cells([None, "", "  \u00a0", "<>", "mailto:"]))
    assert frame.select(EMAIL_NORMALIZED, LOCAL_PART, DOMAIN, DEDUP_KEY).null_count().row(0) == (
        5,
        5,
        5,
        5,
    )


def test_a_cell_longer_than_any_address_is_not_parsed():
    parts = _parts("x" * 5_000 + "@example.com")
    assert parts == {EMAIL_NORMALIZED: None, LOCAL_PART: None, DOMAIN: None, DEDUP_KEY: None}


def test_normalise_keeps_the_input_rows_and_columns_untouched():
    cells = _cells([" B@X.com", None, "c@y.org"], row_ids=[10, 11, 12]).with_columns(
        pl.Series("extra", ["p", "q", "r"])
    )
    frame = normalise(cells)
    assert frame.select(ROW_ID, EMAIL_RAW, "extra").equals(cells)


# --- dedup ---


def test_first_occurrence_wins_and_later_copies_point_to_it():
    frame = prepare(_cells(["a@x.com", "b@x.com", "a@x.com", "a@x.com"]))
    assert frame.get_column(IS_DUPLICATE).to_list() == [False, False, True, True]
    assert frame.get_column(FIRST_ROW_ID).to_list() == [0, 1, 0, 0]


def test_duplicates_are_found_case_insensitively_and_after_trimming():
    frame = prepare(_cells(["Ann.Lee@Example.com", " ann.lee@EXAMPLE.COM ", "ANN.LEE@example.com"]))
    assert frame.get_column(IS_DUPLICATE).to_list() == [False, True, True]
    assert frame.get_column(FIRST_ROW_ID).to_list() == [0, 0, 0]


def test_unicode_and_a_label_forms_of_a_domain_are_duplicates():
    frame = prepare(_cells(["me@bücher.de", "me@xn--bcher-kva.de"]))
    assert frame.get_column(IS_DUPLICATE).to_list() == [False, True]


def test_empty_cells_are_never_duplicates_of_each_other():
    frame = prepare(_cells([None, "", "   ", None]))
    assert frame.get_column(IS_DUPLICATE).to_list() == [False] * 4
    assert frame.get_column(FIRST_ROW_ID).to_list() == [0, 1, 2, 3]


def test_invalid_rows_are_deduplicated_on_their_normalised_text():
    frame = prepare(_cells(["not an email", " NOT AN EMAIL "]))
    assert frame.get_column(IS_DUPLICATE).to_list() == [False, True]


def test_lowest_row_id_wins_when_rows_arrive_out_of_order():
    frame = dedup(normalise(_cells(["a@x.com", "a@x.com", "b@x.com", "a@x.com"], [5, 2, 7, 9])))
    assert frame.get_column(ROW_ID).to_list() == [5, 2, 7, 9]
    assert frame.get_column(IS_DUPLICATE).to_list() == [True, False, False, True]
    assert frame.get_column(FIRST_ROW_ID).to_list() == [2, 2, 7, 2]


def test_exact_grouping_points_each_row_to_its_first_equal_row():
    # The path dedup takes on the strings themselves if two keys ever share a 64-bit hash.
    values = pl.Series(["a", "b", None, "a", None, "b", "c", "a"])
    assert _first_positions(values).to_list() == [0, 1, 2, 0, 2, 1, 6, 0]


# --- prepare ---


def test_prepare_adds_the_contract_columns_after_the_input():
    frame = prepare(_cells(["a@x.com"]))
    assert frame.schema == pl.Schema(
        {
            ROW_ID: pl.UInt64,
            EMAIL_RAW: pl.String,
            EMAIL_NORMALIZED: pl.String,
            LOCAL_PART: pl.String,
            DOMAIN: pl.String,
            DEDUP_KEY: pl.String,
            SYNTAX_VALID: pl.Boolean,
            SYNTAX_REASON: pl.String,
            IS_DUPLICATE: pl.Boolean,
            FIRST_ROW_ID: pl.UInt64,
        }
    )


def test_prepare_keeps_one_row_per_cell_in_input_order():
    cells = ["b@x.com", None, "x" * 3_000, "\x00\x01", "a@x.com", "b@x.com", "🙂@🙂", ""]
    frame = prepare(_cells(cells))
    assert frame.get_column(EMAIL_RAW).to_list() == cells
    assert frame.get_column(ROW_ID).to_list() == list(range(len(cells)))


def test_prepare_of_no_rows_is_no_rows():
    assert prepare(_cells([])).height == 0


def test_prepare_equals_the_pipe_of_its_stages(generated_cells):
    tricky = _cells(['"q"@x.com', "A@B.COM", " a@b.com", "me@bücher.de", "x", None, "a..b@x.com"])
    for cells in (generated_cells, tricky):
        piped = cells.pipe(normalise).pipe(check_syntax).pipe(dedup)
        assert prepare(cells).equals(piped)


def test_prepare_agrees_with_email_validator_on_a_generated_list(generated_cells):
    frame = prepare(generated_cells).filter(pl.col(EMAIL_NORMALIZED).is_not_null())
    unique = frame.unique(EMAIL_NORMALIZED).select(EMAIL_NORMALIZED, SYNTAX_VALID, SYNTAX_REASON)
    disagreements = [
        row for row in unique.rows() if (row[1], row[2]) != reference_syntax_check(row[0])
    ]
    assert disagreements == []


# --- the benchmark list ---


def test_generated_list_is_the_same_for_the_same_seed(tmp_path: Path):
    first = generate_list(2_000, seed=3, path=tmp_path / "a.csv").read_bytes()
    again = generate_list(2_000, seed=3, path=tmp_path / "b.csv").read_bytes()
    other = generate_list(2_000, seed=4, path=tmp_path / "c.csv").read_bytes()
    assert hashlib.sha256(first).digest() == hashlib.sha256(again).digest()
    assert first != other


def test_generated_list_has_the_header_and_the_rows_asked_for(tmp_path: Path):
    path = generate_list(1_234, seed=1, path=tmp_path / "list.csv")
    frame = pl.read_csv(path, infer_schema=False)
    assert frame.columns == ["email", "first_name", "last_name"]
    assert frame.height == 1_234


def test_generated_list_has_the_issues_mix(generated_cells):
    frame = prepare(generated_cells)
    share = frame.select(
        duplicates=pl.col(IS_DUPLICATE).mean(),
        invalid=(~pl.col(SYNTAX_VALID)).mean(),
        idn=pl.col(DOMAIN).str.contains("xn--").mean(),
        international_local=pl.col(LOCAL_PART).str.contains(r"[^\x00-\x7f]").mean(),
        quoted=pl.col(LOCAL_PART).str.starts_with('"').mean(),
        giant=(pl.col(DOMAIN) == "gmail.com").mean(),
    ).row(0, named=True)
    assert 0.04 <= share["duplicates"] <= 0.06
    assert 0.015 <= share["invalid"] <= 0.035
    assert share["idn"] > 0 and share["international_local"] > 0 and share["quoted"] > 0
    assert 0.2 <= share["giant"] <= 0.32
    assert frame.get_column(DOMAIN).n_unique() > 5_000


# --- prepare_file: the stage from a list file, streamed ---


def _write_list(path: Path, cells: list[str | None]) -> Path:
    pl.DataFrame({"email": pl.Series(cells, dtype=pl.String)}).write_csv(path)
    return path


def _prepared_eagerly(source: Path, target: Path) -> pl.DataFrame:
    write_prepared(prepare(email_cells(read_list(source))), target)
    return pl.read_parquet(target)


def _prepared_streamed(
    source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, *, streamed: bool = True
) -> pl.DataFrame:
    if streamed:  # the eager fallback must not be what makes the files equal

        def no_fallback(*args: object, **kwargs: object) -> None:
            raise AssertionError("prepare_file fell back to read_list")

        monkeypatch.setattr(engine.prepare, "read_list", no_fallback)
    written = prepare_file(source, target)
    monkeypatch.undo()
    frame = pl.read_parquet(target)
    assert (written.path, written.rows) == (target, frame.height)
    assert written.duplicates == frame.get_column(IS_DUPLICATE).sum()
    assert written.syntax_invalid == (~frame.get_column(SYNTAX_VALID)).sum()
    return frame


def test_prepared_file_has_the_prepared_file_columns(tmp_path, monkeypatch):
    source = _write_list(tmp_path / "list.csv", ["a@x.com", "b@y.org"])
    frame = _prepared_streamed(source, tmp_path / "out.parquet", monkeypatch)
    assert frame.columns == list(PREPARED_FILE_COLUMNS)


def test_prepare_file_writes_what_prepare_writes_for_every_kind_of_row(tmp_path, monkeypatch):
    generated = generate_list(30_000, seed=11, path=tmp_path / "generated.csv")
    emails = pl.read_csv(generated, infer_schema=False).get_column("email").to_list()
    cells = TRICKY_CELLS + emails + TRICKY_CELLS[::-1]
    source = _write_list(tmp_path / "list.csv", cells)
    streamed = _prepared_streamed(source, tmp_path / "streamed.parquet", monkeypatch)
    assert streamed.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.txt", "a@x.com\n B@X.com \n\nnot an address\nme@bücher.de\n"),
        ("list.txt", "\ufeffa@x.com\r\n\ufeffa@x.com\r\nA@x.com\r\n"),
        ("list.txt", "Email\na@x.com\nA@X.COM\n"),
        ("list.csv", "Ann,a@x.com,1\nBob,A@X.com,2\n"),
        ("list.csv", '\ufeffname;E-Mail\nAnn;a@x.com\nBob;"b@y.org"\n'),
        ("list.tsv", "id\tmail\n1\ta@x.com\textra\n2\n3\t \n"),
        ("list.csv", 'id,email,note\n1,a@x.com,"line one\nline two"\n2,b@y.org,x\n'),
        ("list.csv", "email\n"),
        ("list.csv", "email\na@x.com\nb@x.com\n"),
    ],
)
def test_prepare_file_streams_csv_and_txt_lists_as_read_list_reads_them(
    tmp_path, monkeypatch, name, content
):
    source = tmp_path / name
    source.write_text(content)
    streamed = _prepared_streamed(source, tmp_path / "streamed.parquet", monkeypatch)
    assert streamed.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))


def test_prepare_file_falls_back_to_read_list_for_latin1_deep_in_the_file(tmp_path, monkeypatch):
    source = tmp_path / "list.csv"
    source.write_bytes(b"email\n" + b"a@x.com\n" * 20_000 + b"ren\xe9@x.com\nRen\xe9@x.com\n")
    fallback = _prepared_streamed(source, tmp_path / "out.parquet", monkeypatch, streamed=False)
    assert fallback.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))
    assert fallback.get_column(IS_DUPLICATE).tail(2).to_list() == [False, True]


def test_prepare_file_prepares_json_lists_eagerly(tmp_path, monkeypatch):
    source = tmp_path / "list.json"
    source.write_text('["a@x.com", " A@X.com", "x"]')
    fallback = _prepared_streamed(source, tmp_path / "out.parquet", monkeypatch, streamed=False)
    assert fallback.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))


def test_prepare_file_groups_by_the_keys_themselves_when_hashes_collide(tmp_path, monkeypatch):
    def every_row_collides(hashes: pl.Series) -> pl.Series:
        return pl.repeat(0, hashes.len(), dtype=pl.UInt32, eager=True)

    source = _write_list(tmp_path / "list.csv", TRICKY_CELLS * 2)
    monkeypatch.setattr(engine.prepare, "_first_rows", every_row_collides)
    streamed = _prepared_streamed(source, tmp_path / "streamed.parquet", monkeypatch)
    assert streamed.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))


_cell_pieces = st.sampled_from(
    ["a", "B", ".", "@", " ", "-", "+", "é", "\u00a0", "xn--", "com", '"', "<", ">", "mailto:"]
)
_any_cells = st.one_of(
    st.sampled_from(TRICKY_CELLS),
    st.lists(_cell_pieces, max_size=12).map("".join),
    st.text(max_size=20).filter(lambda t: all(not 0xD800 <= ord(c) <= 0xDFFF for c in t)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_any_cells, min_size=1, max_size=30))
def test_prepare_file_writes_what_prepare_writes_for_any_cells(tmp_path, cells):
    source = _write_list(tmp_path / "list.csv", cells)
    written = prepare_file(source, tmp_path / "streamed.parquet")
    streamed = pl.read_parquet(written.path)
    assert streamed.equals(_prepared_eagerly(source, tmp_path / "eager.parquet"))


def test_local_part_is_recomputed_from_the_prepared_files_columns(generated_cells):
    cells = pl.concat([_cells(TRICKY_CELLS), generated_cells.with_columns(pl.col(ROW_ID) + 100)])
    frame = prepare(cells)
    recomputed = frame.select(local_part_of(pl.col(EMAIL_NORMALIZED), pl.col(DOMAIN)))
    assert recomputed.to_series().equals(frame.get_column(LOCAL_PART), check_names=False)


def test_a_prepared_file_reads_back_as_the_prepared_frame(generated_cells, tmp_path):
    for cells in (generated_cells, _cells(TRICKY_CELLS)):
        prepared = prepare(cells)
        read = read_prepared(write_prepared(prepared, tmp_path / "prepared.parquet"))
        assert read.select(prepared.drop(EMAIL_RAW).columns).equals(prepared.drop(EMAIL_RAW))
