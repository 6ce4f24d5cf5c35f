"""Input fuzzing (issue 6, item 3): hostile list, suppression and feedback files, built as bytes.

The bad-input rule (DESIGN §4): a file the engine cannot read gets one `InputError`, one line,
naming the file; a file it can read loses nothing, since every record comes out exactly once, in
order, through ingest, prepare (eager and streamed), verify_file and the CSV export. Hypothesis
builds files from what real exports contain (encodings, BOMs, delimiters, quoting, line ends,
NULs, formula cells, huge lines, truncated or mistyped JSON) and mutates them into junk.

Files whose record count is known by construction (well-formed quoting, whatever the encoding)
check it exactly; mutated junk has no oracle but its own, so for it every stage must at least
agree with the reader on the row count.

Not atheris: its coverage guidance sees Python bytecode only, and the parsing happens in Polars'
Rust, so it would mutate nearly blind where these strategies know the formats; a crash of the
native code (as deep JSON was) is covered here by a test that runs the reader in a child process.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from polars.exceptions import PolarsError

from engine.config import load_config
from engine.encoding import holds_no_text
from engine.errors import InputError
from engine.export import write_prepared, write_results
from engine.feedback import FEEDBACK_SCHEMA, FeedbackBatch, read_feedback
from engine.ingest import IngestedList, _json_deeper_than, email_cells, read_list, scan_list
from engine.prepare import prepare, prepare_file
from engine.schema import DEDUP_KEY, DOMAIN, EMAIL_RAW, FIRST_ROW_ID, ROW_ID
from engine.suppression import LIST_STEMS, read_suppression_lists
from engine.verify import verify_file

Result = TypeVar("Result")

# `MAILSIFT_FUZZ_SCALE=20 pytest tests/engine/test_fuzz_inputs.py` hunts 20 times longer; the
# default keeps the file well inside `make test`'s budget (under 90 s on two cores).
FUZZ_SCALE: Final = float(os.environ.get("MAILSIFT_FUZZ_SCALE", "1"))


def _examples(count: int) -> int:
    return max(1, round(count * FUZZ_SCALE))


# Health checks that large generated files trip on purpose (huge lines, many records).
SLOW_DATA: Final = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]

# --- pieces of hostile files ---

DELIMITERS: Final = (",", ";", "\t", "|")
LINE_ENDS: Final = ("\n", "\r\n", "\r")
FORMULA_CELLS: Final = (
    "=cmd|' /C calc'!A0", "+1+1", "-1", "@SUM(1+1)", '=HYPERLINK("http://x","y")', "\t=1", "\r=1",
    "=a@x.com", "+a@x.com", "-a@x.com", "@x.com",
)  # fmt: skip
ADDRESS_CELLS: Final = (
    "a@x.com", "B@X.COM", " c@y.org\u00a0", "mailto:d@z.net?subject=hi", "Ann <e@x.com>",
    "me@bücher.de", "a@b@c.com", '"q r"@x.com', "a@", "x" * 300 + "@x.com", "\ufeffa@x.com",
)  # fmt: skip
# A private-use character that `_encode` turns into bytes that are not UTF-8.
BAD_BYTES_MARK: Final = "\ue000"
BAD_UTF8: Final = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82")
PIECES: Final = (
    '"', "'", ",", ";", "\t", "|", "\n", "\r", "\r\n", "\x00", "\ufeff", "\u2028", "\x85", "é",
    "€", "😀", "@", " ", "{", "[", "]", "}", "a", ".com", "\\", BAD_BYTES_MARK,
)  # fmt: skip
HEADER_NAMES: Final = (
    "email", "Email", "E-Mail Address", "mail", "name", "id", "", "=cmd", "email_normalized",
    "status", "\x00", "naïve", '"', "a b", "\x00surplus", "email_duplicated_0", "row_id",
)  # fmt: skip
ENCODINGS: Final = ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "latin-1", "broken-utf-8")
# A line longer than the 64 KiB head that ingest sniffs formats and headers from.
HUGE_CELL: Final = st.integers(70_000, 150_000).map(lambda n: "h" * n + "@x.com")

_TEXT: Final = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
CELLS: Final = st.one_of(
    st.sampled_from(FORMULA_CELLS + ADDRESS_CELLS + ("", " ")),
    st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
    _TEXT,
)
EMAIL_CELLS: Final = st.sampled_from(ADDRESS_CELLS) | CELLS


@dataclass(frozen=True, repr=False)
class HostileFile:
    """File bytes, the name they are saved under, and the records they hold when known."""

    content: bytes
    name: str
    records: int | None  # a CSV or TXT header line included; None when nothing is known
    cells: tuple[tuple[str | None, ...], ...] | None = None  # every record's cells, if known

    def __repr__(self) -> str:
        shown = self.content if len(self.content) <= 400 else self.content[:400] + b"..."
        return f"HostileFile({shown!r}, name={self.name!r}, records={self.records})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis prints a failing example: huge lines cut short."""
        printer.text(repr(self))


def _encode(text: str, encoding: str, bad: bytes) -> bytes:
    """`text` as bytes in one of ENCODINGS; BAD_BYTES_MARK becomes `bad` in broken UTF-8."""
    if encoding == "utf-8-sig":
        return codecs.BOM_UTF8 + text.encode()
    if encoding == "utf-16-le":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if encoding == "utf-16-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    if encoding == "latin-1":
        return text.encode("latin-1", errors="replace")
    if encoding == "broken-utf-8":
        return text.encode().replace(BAD_BYTES_MARK.encode(), bad)
    return text.encode()


def _quoted(cell: str, delimiter: str) -> str:
    """RFC 4180 §2.6-2.7: quote a field holding the delimiter, a quote or a line break."""
    if any(special in cell for special in (delimiter, '"', "\r", "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _records(lines: list[str], line_end: str, trailing: bool) -> tuple[str, int]:
    """The text of `lines` and its record count: only a final line end starts no record."""
    text = line_end.join(lines) + (line_end if trailing and lines else "")
    count = len(lines) - (1 if lines and lines[-1] == "" and not trailing else 0)
    return text, count


@st.composite
def csv_files(draw: st.DrawFn) -> HostileFile:
    """CSV in any encoding, delimiter and line end; well-formed (records known) or raw.

    Well-formed files are rectangular (blank lines aside) and quoted as RFC 4180 says, with no
    other candidate delimiter in their cells: a ragged file, or one where `;` and `,` both
    recur, leaves the delimiter to a guess, and a wrong guess changes what a record is.
    """
    delimiter = draw(st.sampled_from(DELIMITERS))
    line_end = draw(st.sampled_from(LINE_ENDS))
    well_formed = draw(st.booleans())
    cell = CELLS | HUGE_CELL if draw(st.integers(0, 9)) == 0 else CELLS
    if well_formed:
        width = draw(st.integers(1, 4))
        header = draw(
            st.none() | st.lists(st.sampled_from(HEADER_NAMES), min_size=width, max_size=width)
        )
        # One column mostly of addresses, as in a real list, so that most files get read.
        email_at = draw(st.integers(0, width - 1))
        row = st.tuples(*(EMAIL_CELLS if at == email_at else cell for at in range(width))).map(
            list
        ) | st.just([])
        others = {ord(d): None for d in DELIMITERS if d != delimiter}
        table = [
            [c.translate(others) for c in r]
            for r in ([header] if header else []) + draw(st.lists(row, max_size=12))
        ]
        lines = [delimiter.join(_quoted(c, delimiter) for c in r) for r in table]
    else:
        header = draw(st.none() | st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=5))
        rows = draw(st.lists(st.lists(cell, max_size=5), max_size=12))
        lines = [delimiter.join(r) for r in ([header] if header else []) + rows]
        table, width = [], 0
    text, count = _records(lines, line_end, draw(st.booleans()))
    # A CR-only file with an LF inside a quoted cell reads as an LF file (encoding.read_as_utf8
    # decides line ends from the head): a guess the file makes ambiguous, so no oracle.
    known = well_formed and not (line_end == "\r" and "\n" in text)
    encoding = draw(st.sampled_from(ENCODINGS))
    content = _encode(text, encoding, draw(st.sampled_from(BAD_UTF8)))
    name = draw(st.sampled_from(("list.csv", "list.csv", "list.tsv", "list.dat", "list")))
    known = known and (name.endswith(".csv") or (name.endswith(".tsv") and delimiter == "\t"))
    # Cells come back exactly where no byte was rewritten (Latin-1 replaced, CRs made LFs), no
    # leading U+FEFF reads as a byte-order mark, and a first record names the columns.
    exact = (
        known
        and encoding in ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be")
        and line_end != "\r"
        and not text.startswith("\ufeff")
        and any(table[:1] and table[0])
    )
    cells = tuple(tuple(c or None for c in row) or (None,) * width for row in table[:count])
    return HostileFile(content, name, count if known else None, cells if exact else None)


@st.composite
def txt_files(draw: st.DrawFn) -> HostileFile:
    """One cell a line, in any encoding and line end; records are the lines."""
    line_end = draw(st.sampled_from(LINE_ENDS))
    header = draw(st.sampled_from(((), ("email",), ("E-Mail",), ("name",))))
    cells = draw(st.lists(CELLS | HUGE_CELL if draw(st.booleans()) else CELLS, max_size=15))
    lines = [*header, *(c.replace("\r", "").replace("\n", "") for c in cells)]
    text, count = _records(lines, line_end, draw(st.booleans()))
    encoding = draw(st.sampled_from(ENCODINGS))
    content = _encode(text, encoding, draw(st.sampled_from(BAD_UTF8)))
    return HostileFile(content, "list.txt", count)


# JSON values, from addresses to what no list holds.
_JSON_LEAVES: Final = st.one_of(
    CELLS, st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.booleans(), st.none()
)
_JSON_VALUES: Final = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_JSON_KEYS: Final = st.sampled_from(("email", "Email", "name", "e-mail", "id", "")) | _TEXT


@st.composite
def json_files(draw: st.DrawFn) -> HostileFile:
    """Arrays of addresses or objects, JSON Lines, and the same mistyped, nested or cut short."""
    shape = draw(st.sampled_from(("addresses", "objects", "lines", "mistyped", "deep")))
    records: int | None
    if shape == "addresses":
        values = draw(st.lists(CELLS, max_size=10))
        text, records = json.dumps(values, ensure_ascii=draw(st.booleans())), len(values)
    elif shape in ("objects", "lines"):
        keys = draw(st.lists(_JSON_KEYS, min_size=1, max_size=4, unique=True))
        value = CELLS | _JSON_VALUES if draw(st.booleans()) else CELLS
        objects = draw(st.lists(st.fixed_dictionaries({k: value for k in keys}), max_size=10))
        if shape == "objects":
            text, records = json.dumps(objects), len(objects)
        else:
            text = "\n".join(json.dumps(o) for o in objects) + draw(st.sampled_from(("", "\n")))
            records = len(objects)
    elif shape == "mistyped":
        text, records = json.dumps(draw(_JSON_VALUES)), None
    else:  # deep: arrays past Python's recursion limit, objects past where Polars crashed
        depth = draw(st.integers(1, 100_000) | st.integers(400, 2_000))
        opening, closing = draw(st.sampled_from((("[", "]"), ('{"a":', "}"))))
        inner = opening * depth + '"a@x.com"' + closing * depth
        record = '{"email":"a@x.com","x":' + inner + "}"
        text, records = draw(st.sampled_from((inner, record))), None
    if draw(st.booleans()):  # cut short
        text, records = text[: draw(st.integers(0, max(len(text) - 1, 0)))], None
    content = _encode(text, draw(st.sampled_from(ENCODINGS)), draw(st.sampled_from(BAD_UTF8)))
    name = draw(st.sampled_from(("list.json", "list.jsonl", "list.ndjson", "list")))
    if not text.strip():
        records = None  # JSON Lines of no records: without a suffix, a text file of blank lines
    return HostileFile(content, name, records)


@st.composite
def parquet_files(draw: st.DrawFn) -> HostileFile:
    """Parquet of text and non-text columns, possibly cut short."""
    height = draw(st.integers(0, 8))
    columns = {
        "email": pl.Series(
            draw(st.lists(CELLS, min_size=height, max_size=height)), dtype=pl.String
        ),
        "n": pl.Series(range(height), dtype=pl.Int64),
    }
    if draw(st.booleans()):
        columns = {"id": columns["n"], "mail": columns["email"].cast(pl.Binary)}
    sink = io.BytesIO()
    pl.DataFrame(columns).write_parquet(sink)
    content = sink.getvalue()
    if draw(st.booleans()):
        return HostileFile(content[: draw(st.integers(0, len(content) - 1))], "list.parquet", None)
    return HostileFile(content, "list.parquet", height)


@st.composite
def junk_files(draw: st.DrawFn) -> HostileFile:
    """Binary junk behind the prefixes that steer format detection."""
    prefix = draw(st.sampled_from((b"", b"PAR1", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b"[", b"{")))
    body = draw(st.binary(max_size=600))
    name = draw(st.sampled_from(("list.csv", "list.txt", "list.json", "list.parquet", "list")))
    return HostileFile(prefix + body, name, None)


@st.composite
def mutated(draw: st.DrawFn, files: st.SearchStrategy[HostileFile]) -> HostileFile:
    """A file with bytes cut, NULs or junk inserted: no record count survives that."""
    original = draw(files)
    content = bytearray(original.content)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(content)))
        action = draw(st.sampled_from(("cut", "nul", "junk", "quote")))
        if action == "cut":
            del content[at:]
        elif action == "nul":
            content[at:at] = b"\x00"
        elif action == "quote":
            content[at:at] = b'"'
        else:
            content[at:at] = draw(st.binary(min_size=1, max_size=4))
    return HostileFile(bytes(content), original.name, None)


_WELL_FORMED: Final = st.one_of(csv_files(), txt_files(), json_files(), parquet_files())
LIST_FILES: Final = st.one_of(_WELL_FORMED, mutated(_WELL_FORMED), junk_files())
# Empty and header-only files, always among the examples.
EDGE_FILES: Final = (
    HostileFile(b"", "list.csv", None),
    HostileFile(b"email\n", "list.csv", 1),
    HostileFile(b"email,email,name\n", "list.csv", 1),
    HostileFile(b"name,id\n", "list.csv", None),
    HostileFile(codecs.BOM_UTF8, "list.txt", None),
    HostileFile(b"[]", "list.json", 0),
    HostileFile(b"\n", "list.txt", 1),
)


# --- checks shared by the properties ---


@contextmanager
def _saved(hostile: HostileFile) -> Iterator[Path]:
    """The file on disk in a fresh directory (function-scoped fixtures and @given don't mix)."""
    with tempfile.TemporaryDirectory(prefix="mailsift-fuzz-") as directory:
        path = Path(directory) / (hostile.name or "list")
        path.write_bytes(hostile.content)
        yield path


def _assert_one_line_naming(message: str, path: Path) -> None:
    """What DESIGN §4 promises of an error or a warning: one line, naming the file."""
    assert len(message.splitlines()) == 1, message
    assert str(path) in message, message


def _or_input_error(read: Callable[[], Result], path: Path) -> Result | None:
    """`read()`, or None when it raised the one documented error (checked for its form)."""
    try:
        return read()
    except InputError as error:
        _assert_one_line_naming(str(error), path)
        if currently_in_test_context():
            event(f"InputError: {error.problem.split('(')[0][:40]}")
        return None


def _read(path: Path) -> IngestedList | None:
    ingested = _or_input_error(lambda: read_list(path), path)
    if ingested is not None:
        for warning in ingested.warnings:
            _assert_one_line_naming(warning, path)
    return ingested


def _assert_conserved(hostile: HostileFile, ingested: IngestedList) -> None:
    """One row per record after the header, and the email cells taken as they were read."""
    originals = ingested.originals
    if hostile.records is not None:
        header_line = ingested.has_header and ingested.format in ("csv", "txt")
        assert originals.height == hostile.records - int(header_line)
    if hostile.cells is not None:  # the original columns, untouched
        assert originals.rows() == list(hostile.cells[int(ingested.has_header) :])
    assert ingested.email_column in originals.columns
    cells = email_cells(ingested)
    assert cells.get_column(ROW_ID).to_list() == list(range(originals.height))
    assert cells.get_column(EMAIL_RAW).equals(
        originals.get_column(ingested.email_column).cast(pl.String), check_names=False
    )


# --- ingest and prepare ---


@settings(max_examples=_examples(800), deadline=None, suppress_health_check=SLOW_DATA)
@given(hostile=LIST_FILES)
def test_a_list_file_reads_into_one_row_per_record_or_one_input_error(
    hostile: HostileFile,
) -> None:
    """read_list -> email_cells -> prepare never loses, adds or reorders a row."""
    with _saved(hostile) as path:
        ingested = _read(path)
        if ingested is None:
            return
        _assert_conserved(hostile, ingested)
        event(f"read {ingested.format}, records {'known' if hostile.records else 'unknown'}")
        prepared = prepare(email_cells(ingested))
        assert prepared.get_column(ROW_ID).to_list() == list(range(ingested.originals.height))
        assert (prepared.get_column(FIRST_ROW_ID) <= prepared.get_column(ROW_ID)).all()


@pytest.mark.parametrize("hostile", EDGE_FILES, ids=repr)
def test_empty_and_header_only_files_read_or_fail_in_one_line(hostile: HostileFile) -> None:
    with _saved(hostile) as path:
        ingested = _read(path)
        if ingested is not None:
            _assert_conserved(hostile, ingested)


def _prepared_eagerly(path: Path, target: Path) -> pl.DataFrame:
    write_prepared(prepare(email_cells(read_list(path))), target)
    return pl.read_parquet(target)


@settings(max_examples=_examples(300), deadline=None, suppress_health_check=SLOW_DATA)
@given(hostile=st.one_of(csv_files(), txt_files(), mutated(csv_files() | txt_files())))
def test_the_streamed_prepare_file_equals_prepare_on_any_list(hostile: HostileFile) -> None:
    """prepare_file's native scan must give read_list's cells, or step aside for read_list."""
    with _saved(hostile) as path:
        eager = _or_input_error(lambda: _prepared_eagerly(path, path.with_suffix(".eager")), path)
        streamed = _or_input_error(lambda: prepare_file(path, path.with_suffix(".pq")), path)
        assert (streamed is None) == (eager is None)
        if streamed is not None and eager is not None:
            assert pl.read_parquet(streamed.path).equals(eager)
            assert streamed.rows == eager.height


@settings(max_examples=_examples(300), deadline=None, suppress_health_check=SLOW_DATA)
@given(hostile=st.one_of(csv_files(), txt_files(), mutated(csv_files() | txt_files())))
def test_scan_list_gives_read_lists_cells_or_a_polars_error(hostile: HostileFile) -> None:
    """scan_list's documented contract: the same cells, None, or PolarsError when collected."""
    with _saved(hostile) as path:
        try:
            scan = _or_input_error(lambda: scan_list(path), path)
            scanned = None if scan is None else scan.collect()
        except PolarsError:
            return  # read_list repairs what the native scan rejects
        if scanned is None:
            return
        ingested = read_list(path)
        expected = email_cells(ingested).get_column(EMAIL_RAW)
        assert scanned.get_column(EMAIL_RAW).equals(expected)


# --- the whole run at depth syntax, and the CSV people open ---

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_records(path: Path) -> list[list[str]]:
    """The file as Python's own CSV reader sees it, a reader independent of the writer."""
    limit = csv.field_size_limit(2**31 - 1)  # cells may be as long as a huge input line
    try:
        with path.open(encoding="utf-8", newline="") as file:
            return list(csv.reader(file))
    finally:
        csv.field_size_limit(limit)


@settings(max_examples=_examples(60), deadline=None, suppress_health_check=SLOW_DATA)
@given(hostile=LIST_FILES)
def test_verify_file_keeps_every_row_in_order_and_the_csv_export_is_inert(
    hostile: HostileFile,
) -> None:
    """End to end at depth syntax: one result per record, in order, and a CSV that is inert."""
    with _saved(hostile) as path:
        config = load_config({"depth": "syntax", "data_dir": str(path.parent / "data")}, env={})
        run = _or_input_error(lambda: verify_file(path, config), path)
        ingested = _or_input_error(lambda: read_list(path), path)
        assert (run is None) == (ingested is None)
        if run is None or ingested is None:
            return
        _assert_conserved(hostile, ingested)
        results, originals = run.results, ingested.originals
        assert results.height == originals.height
        # The original columns come first, untouched (a name taken by an output column renamed).
        kept = results.select(results.columns[: originals.width])
        names = dict(zip(kept.columns, originals.columns, strict=True))
        assert kept.rename(names).equals(originals)
        exported = write_results(results, path.parent / "results.csv")
        rows = _csv_records(exported)
        assert len(rows) == results.height + 1
        for row in rows:
            assert len(row) == results.width
            for cell in row:
                assert not cell.startswith(FORMULA_TRIGGERS), cell


# --- suppression lists ---


@settings(max_examples=_examples(100), deadline=None, suppress_health_check=SLOW_DATA)
@given(
    files=st.lists(st.tuples(st.sampled_from(list(LIST_STEMS.values())), LIST_FILES), max_size=3)
)
def test_suppression_lists_read_or_fail_in_one_line(
    files: list[tuple[str, HostileFile]],
) -> None:
    """A hostile list in the suppression folder is an InputError, never a crash of the run."""
    with tempfile.TemporaryDirectory(prefix="mailsift-fuzz-") as directory:
        folder = Path(directory)
        paths = []
        for number, (stem, hostile) in enumerate(files):
            paths.append(folder / f"{stem}.{number}{Path(hostile.name).suffix}")
            paths[-1].write_bytes(hostile.content)
        try:
            lists = read_suppression_lists(folder)
        except InputError as error:
            assert error.path in paths
            _assert_one_line_naming(str(error), error.path)
            return
        assert sorted(lists.files) == sorted(paths)
        entries = lists.entries
        assert entries.filter(pl.col(DOMAIN).is_null() & pl.col(DEDUP_KEY).is_null()).is_empty()
        # Each cell is an entry, a duplicate entry or skipped: never more than the cells read.
        read = [read_list(path) for path in paths if not holds_no_text(path.read_bytes())]
        cells = sum(ingested.originals.height for ingested in read)
        assert lists.skipped >= 0 and entries.height + lists.skipped <= cells


# --- feedback files ---

FEEDBACK_KEYS: Final = (
    "email", "event_type", "bounce_code", "bounce_message", "timestamp", "occurred_at", "event",
    "type", "reason", "status", "response", "recipient", "severity", "notificationType", "mail",
)  # fmt: skip
EVENT_NAMES: Final = (
    "delivered", "hard_bounce", "soft_bounce", "complaint", "unsubscribe", "bounce", "dropped",
    "failed", "spamreport", "open", "Bounce", "Delivery", "", "weird",
)  # fmt: skip
TIMESTAMPS: Final = st.one_of(
    st.sampled_from(
        (
            "2026-03-14T10:30:00Z", "2026-03-14 10:30", "Sat, 14 Mar 2026 10:30:00 GMT",
            "1773484200", "1773484200000", "1e300", "-1e300", "nan", "inf", "-inf", "",
            "9999999999999999999999", "2026-13-45T99:99:99Z", "0", "-0.5",
        )
    ),
    st.integers(-(2**64), 2**64).map(str),
    st.floats().map(str),
    _TEXT,
)  # fmt: skip
_FEEDBACK_VALUES: Final = st.one_of(
    st.sampled_from(EVENT_NAMES), CELLS, TIMESTAMPS, st.sampled_from(ADDRESS_CELLS)
)


# Each provider's keys (feedback_formats.csv), so that most files get past format detection.
FEEDBACK_TEMPLATES: Final = (
    ("email", "event_type", "bounce_code", "bounce_message", "timestamp", "occurred_at"),
    ("email", "event", "type", "reason", "status", "response", "timestamp"),
    ("recipient", "event", "severity", "reason", "timestamp", "delivery-status"),
    FEEDBACK_KEYS,
)
_NUMBERS: Final = st.integers(-(2**70), 2**70) | st.floats()


@st.composite
def feedback_records(draw: st.DrawFn) -> list[dict[str, object]]:
    """Generic, SendGrid or Mailgun records (perhaps as Mailgun webhooks), hostile values."""
    template = draw(st.sampled_from(FEEDBACK_TEMPLATES))
    keys = draw(st.lists(st.sampled_from(template), min_size=1, max_size=7, unique=True))
    keys = list(dict.fromkeys([*template[:2], *keys])) if draw(st.integers(0, 4)) else keys
    leaf = _FEEDBACK_VALUES | _JSON_VALUES if draw(st.booleans()) else _FEEDBACK_VALUES
    special = {
        "email": st.sampled_from(ADDRESS_CELLS) | CELLS,
        "recipient": st.sampled_from(ADDRESS_CELLS) | CELLS,
        "event": st.sampled_from(EVENT_NAMES),
        "event_type": st.sampled_from(EVENT_NAMES),
        "timestamp": TIMESTAMPS | _NUMBERS,
        "occurred_at": TIMESTAMPS | _NUMBERS,
        "delivery-status": st.fixed_dictionaries({}, optional={"code": leaf, "message": leaf}),
    }
    mistyped = draw(st.integers(0, 4)) == 0
    record = st.fixed_dictionaries(
        {key: special.get(key, leaf) | leaf if mistyped else special.get(key, leaf) for key in keys}
    )
    records = draw(st.lists(record, max_size=10))
    if template[0] == "recipient" and draw(st.booleans()):
        return [{"event-data": record} for record in records]
    return records


@st.composite
def ses_records(draw: st.DrawFn) -> list[dict[str, object]]:
    """Amazon SES notifications, bare or inside SNS envelopes, with hostile recipient lists."""
    recipient = st.fixed_dictionaries(
        {"emailAddress": st.sampled_from(ADDRESS_CELLS) | CELLS},
        optional={"status": _TEXT, "diagnosticCode": _TEXT},
    )
    recipients = st.lists(recipient | _JSON_VALUES, max_size=3) | _JSON_VALUES
    notification = st.fixed_dictionaries(
        {
            "notificationType": st.sampled_from(("Bounce", "Complaint", "Delivery", "X")),
            "mail": st.fixed_dictionaries({"timestamp": TIMESTAMPS}) | _JSON_VALUES,
        },
        optional={
            "bounce": st.fixed_dictionaries(
                {"bounceType": st.sampled_from(("Permanent", "Transient")) | _TEXT},
                optional={"bouncedRecipients": recipients, "timestamp": TIMESTAMPS},
            ),
            "delivery": st.fixed_dictionaries({}, optional={"recipients": recipients}),
        },
    )
    records = draw(st.lists(notification, max_size=5))
    if draw(st.booleans()):
        message = st.just(json.dumps(records[0]) if records else "{}") | _TEXT
        return [{"Type": "Notification", "Message": draw(message)} for _ in records]
    return records


@st.composite
def feedback_files(draw: st.DrawFn) -> HostileFile:
    """Provider exports as CSV, JSON, JSON Lines or an envelope; then perhaps cut or junked."""
    records = draw(feedback_records() | ses_records())
    shape = draw(st.sampled_from(("csv", "array", "lines", "envelope", "single", "deep")))
    if shape == "csv":
        keys = list(dict.fromkeys(k for record in records for k in record)) or ["email"]
        delimiter = draw(st.sampled_from(DELIMITERS))
        lines = [delimiter.join(_quoted(k, delimiter) for k in keys)]
        lines += [
            delimiter.join(_quoted(str(record.get(k, "")), delimiter) for k in keys)
            for record in records
        ]
        text, name = "\n".join(lines) + "\n", "events.csv"
    elif shape == "array":
        text, name = json.dumps(records), "events.json"
    elif shape == "lines":
        text, name = "\n".join(json.dumps(r) for r in records), "events.jsonl"
    elif shape == "envelope":
        key = draw(st.sampled_from(("events", "items", "other")))
        text, name = json.dumps({key: records}), "events.json"
    elif shape == "single":
        text, name = json.dumps(records[0] if records else {}), "events.json"
    else:  # a record nested past Python's recursion limit, perhaps cut short
        depth = draw(st.integers(500, 5_000))
        closing = "]" * depth + "}]" if draw(st.booleans()) else ""
        text, name = '[{"email":"a@x.com","event":' + "[" * depth + closing, "e.json"
    content = _encode(text, draw(st.sampled_from(ENCODINGS)), draw(st.sampled_from(BAD_UTF8)))
    return HostileFile(content, name, None)


FEEDBACK_FILES: Final = st.one_of(feedback_files(), mutated(feedback_files()), junk_files())


def _assert_counts_add_up(batch: FeedbackBatch) -> None:
    """Every event found is kept or counted once (FeedbackReport's docstring)."""
    report = batch.report
    assert batch.events.schema == pl.Schema(FEEDBACK_SCHEMA)
    assert batch.events.height == report.events_kept
    assert report.events_found == (
        report.events_kept
        + report.duplicates_dropped
        + report.rows_without_address
        + sum(report.unknown_event_types.values())
        + sum(report.ignored_event_types.values())
    )
    assert report.timestamps_unparsable + report.timestamps_missing <= report.events_kept
    assert report.events_found >= report.rows_read or batch.format == "ses"
    assert (
        min(report.duplicates_dropped, report.rows_without_address, report.timestamps_missing) >= 0
    )


@settings(max_examples=_examples(600), deadline=None, suppress_health_check=SLOW_DATA)
@given(hostile=FEEDBACK_FILES)
def test_a_feedback_file_reads_into_events_whose_counts_add_up_or_one_input_error(
    hostile: HostileFile,
) -> None:
    with _saved(hostile) as path:
        batch = _or_input_error(lambda: read_feedback(path), path)
        if batch is None:
            return
        for warning in batch.report.warnings:
            _assert_one_line_naming(warning, path)
        _assert_counts_add_up(batch)
        event(f"read {batch.format}, {'some' if batch.report.events_kept else 'no'} events kept")


# --- _json_deeper_than, the guard that keeps deep JSON away from Polars ---


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_BRACKETY_TEXT: Final = st.lists(
    st.sampled_from(('"', "\\", "[", "]", "{", "}", "a")), max_size=6
).map("".join)


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(inner, max_size=3) | st.dictionaries(_BRACKETY_TEXT, inner, max_size=3)


@settings(max_examples=_examples(300), deadline=None)
@given(
    value=st.recursive(_BRACKETY_TEXT | st.integers() | st.none(), _nested, max_leaves=12),
    limit=st.integers(0, 8),
)
def test_json_depth_guard_counts_brackets_outside_strings_only(value: object, limit: int) -> None:
    """Brackets, quotes and backslashes inside strings must not count as nesting."""
    data = json.dumps(value, ensure_ascii=False).encode()
    assert _json_deeper_than(data, limit) == (_depth(value) > limit)


# --- regressions: the minimal examples the properties above found, fixed in the engine ---


def _path_of(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("bom", [codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
@pytest.mark.parametrize("name", ["list.txt", "list.csv", "list"])
def test_a_file_holding_only_a_byte_order_mark_is_empty(
    tmp_path: Path, name: str, bom: bytes
) -> None:
    # Was: the UTF-8 BOM alone read as a TXT record of its own (one row out of none).
    with pytest.raises(InputError, match=r"the file is empty$"):
        read_list(_path_of(tmp_path, name, bom))


def test_an_unclosed_quote_in_another_column_costs_the_streamed_prepare_no_row(
    tmp_path: Path,
) -> None:
    # Was: the scan projected to `email` let the quote left open in `name` swallow row 3.
    source = _path_of(tmp_path, "list.csv", b'email,name\na@x.com,Ann,4"\nb@x.com,"Bob\n')
    streamed = prepare_file(source, tmp_path / "streamed.parquet")
    assert streamed.rows == 2
    eager = _prepared_eagerly(source, tmp_path / "eager.parquet")
    assert pl.read_parquet(streamed.path).equals(eager)


def test_the_streamed_prepare_finds_the_email_column_past_bad_quoting(tmp_path: Path) -> None:
    # Was: Polars' head() sample came back empty, so prepare_file said "no email column found"
    # of a file read_list reads.
    source = _path_of(tmp_path, "list.csv", b"=cmd|' /C calc'!A0\n@SUM(1+1),\",\n")
    written = prepare_file(source, tmp_path / "streamed.parquet")
    assert pl.read_parquet(written.path).equals(_prepared_eagerly(source, tmp_path / "e.pq"))


@pytest.mark.parametrize("name", ["list.txt", "list.csv"])
def test_cr_line_ends_after_a_first_line_longer_than_the_head_are_line_ends(
    tmp_path: Path, name: str
) -> None:
    # Was: no CR in the 64 KiB head, so the whole classic-Mac file read as one record.
    long_address = "h" * 70_000 + "@x.com"
    source = _path_of(tmp_path, name, f"{long_address}\rb@x.com\rc@x.com".encode())
    ingested = read_list(source)
    assert email_cells(ingested).get_column(EMAIL_RAW).to_list() == [
        long_address, "b@x.com", "c@x.com",
    ]  # fmt: skip
    assert prepare_file(source, tmp_path / "out.parquet").rows == 3


def test_a_header_holding_the_surplus_columns_name_keeps_its_column(tmp_path: Path) -> None:
    # Was: the column named "\x00surplus" was dropped as if it held the fields past the header.
    source = _path_of(tmp_path, "list.csv", b"email,\x00surplus\na@x.com,1\n")
    ingested = read_list(source)
    assert ingested.originals.rows() == [("a@x.com", "1")]
    assert ingested.warnings == ()


def test_json_nested_past_the_limit_is_an_input_error_not_a_crash(tmp_path: Path) -> None:
    # Was: Polars' JSON Lines reader crashed the interpreter (SIGSEGV) on objects ~510 deep,
    # so the check runs in a child process: a crash must fail this test, not end the session.
    source = _path_of(tmp_path, "list.jsonl", b'{"a":' * 600 + b"1" + b"}" * 600)
    child = subprocess.run(
        [sys.executable, "-c", f"from engine.ingest import read_list; read_list({str(source)!r})"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 1, child.stderr  # an exception, not a signal
    assert f"InputError: {source}: JSON nested more than" in child.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[" * 5_000 + b"]" * 5_000, "nested more than"),
        (b'[{"email":"a@x.com","event":' + b"[" * 3_000, "not valid JSON"),  # cut short
    ],
)
def test_feedback_json_nested_past_the_limit_is_an_input_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    # Was: RecursionError out of Python's JSON decoder.
    with pytest.raises(InputError, match=problem):
        read_feedback(_path_of(tmp_path, "events.json", content))


def test_a_feedback_column_name_with_a_line_break_keeps_the_error_on_one_line(
    tmp_path: Path,
) -> None:
    source = _path_of(tmp_path, "events.csv", b'"email\n')
    with pytest.raises(InputError) as raised:
        read_feedback(source)
    _assert_one_line_naming(str(raised.value), source)


def test_unix_times_past_any_calendar_are_unparsable_not_an_error(tmp_path: Path) -> None:
    # Was: InvalidOperationError from a strict cast of 1e300 seconds to Int64 microseconds.
    times = ["1e300", "-1e300", "inf", "nan", "99999999999999999999", "1773484200"]
    rows = "".join(f"a{n}@example.com,delivered,{t}\n" for n, t in enumerate(times))
    source = _path_of(tmp_path, "events.csv", ("email,event_type,timestamp\n" + rows).encode())
    batch = read_feedback(source)
    assert batch.report.events_kept == len(times)
    assert batch.report.timestamps_unparsable == len(times) - 1
    _assert_counts_add_up(batch)


def test_a_suppression_list_holding_only_a_byte_order_mark_suppresses_nothing(
    tmp_path: Path,
) -> None:
    # An empty placeholder list, as Notepad saves one; the fix above must not make it an error.
    _path_of(tmp_path, "spamtraps.txt", codecs.BOM_UTF8)
    lists = read_suppression_lists(tmp_path)
    assert lists.entries.is_empty() and lists.skipped == 0


def test_deep_json_cut_short_is_an_input_error(tmp_path: Path) -> None:
    # Was: RecursionError from the decoder naming the problem. Unbalanced, it passes the depth
    # guard, and only whole documents can crash Polars.
    source = _path_of(tmp_path, "list.jsonl", b'{"a":' * 2_000)
    with pytest.raises(InputError, match="not valid JSON"):
        read_list(source)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_header_wider_than_the_head_still_names_every_column(
    tmp_path: Path, delimiter: str
) -> None:
    # Was: cut at 64 KiB, the header was taken for data and the columns past the cut (the email
    # column among them) were dropped: "no email column found".
    names = [f"question_{number:05d}" for number in range(5_000)] + ["email"]
    rows = [names, ["x"] * 5_000 + ["a@x.com"], ["y"] * 5_000 + ["b@x.com"]]
    source = _path_of(
        tmp_path, "wide.csv", "".join(delimiter.join(row) + "\n" for row in rows).encode()
    )
    ingested = read_list(source)
    assert ingested.has_header and ingested.originals.columns == names
    assert email_cells(ingested).get_column(EMAIL_RAW).to_list() == ["a@x.com", "b@x.com"]
    assert prepare_file(source, tmp_path / "out.parquet").rows == 2


def test_a_first_cell_longer_than_the_csv_modules_field_limit_is_read(tmp_path: Path) -> None:
    # Was: with the head read on to the end of the first line, csv's 128 KiB field limit raised.
    long_address = "h" * 140_000 + "@x.com"
    source = _path_of(tmp_path, "list.csv", f"{long_address};a\nb@x.com;c\n".encode())
    assert read_list(source).originals.rows() == [(long_address, "a"), ("b@x.com", "c")]
