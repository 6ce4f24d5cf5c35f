"""Security checks of issue 6 §5 at the engine: formula-safe CSV, secrets kept out of files, and
addresses hashed where logs show them.

Already proven elsewhere and not repeated: no DATA ever (test_verify.py, test_hostile_network.py),
webhook signatures and the SSRF guard (test_webhooks.py), read-only SQL (test_catalog.py). The
CLI and Dagster ends of these checks are in tests/pipelines/test_security_end_to_end.py; SQL
metacharacters through every field are in test_sql_metacharacters.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import polars as pl
import pytest

from engine.config import load_config
from engine.errors import InputError
from engine.export import FORMULA_ESCAPE, csv_text, write_results
from engine.ingest import read_list
from engine.privacy import addresses_shown, hash_address, hashed_addresses
from engine.sandbox.demo_world import write_demo_list
from engine.verify import verify_file

# OWASP CSV Injection: each starts a formula (or, for tab and CR, a cell Excel may re-parse).
PAYLOADS = ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\tTAB=1+1", "\rCR=1+1")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _hostile_list(path: Path) -> Path:
    """A list whose header and cells are all payloads, quoted so tab and CR survive as data."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_ALL)
        writer.writerow(["email", *PAYLOADS])
        for payload in PAYLOADS:
            writer.writerow([payload, *PAYLOADS])
        writer.writerow(["ann@example.com", *PAYLOADS])
    return path


def _csv_records(path_or_text: Path | str) -> list[list[str]]:
    """The records as a spreadsheet parses them (newline="": a CR inside a cell stays a CR)."""
    text = path_or_text.read_bytes().decode() if isinstance(path_or_text, Path) else path_or_text
    return list(csv.reader(io.StringIO(text, newline="")))


def _assert_no_cell_starts_a_formula(records: list[list[str]]) -> None:
    for record in records:
        for cell in record:
            assert not cell.startswith(FORMULA_TRIGGERS), f"{cell!r} would run as a formula"


# --- every CSV we write is neutralised ---


def test_results_csv_neutralises_every_payload_in_header_cells_and_verdict_columns(tmp_path):
    source = _hostile_list(tmp_path / "hostile.csv")
    config = load_config({"data_dir": tmp_path / "home", "depth": "syntax"}, env={})
    out = write_results(verify_file(source, config).results, tmp_path / "results.csv")

    header, *rows = _csv_records(out)

    _assert_no_cell_starts_a_formula([header, *rows])
    escaped = [FORMULA_ESCAPE + payload for payload in PAYLOADS]
    assert header[1 : 1 + len(PAYLOADS)] == escaped
    assert [row[0] for row in rows] == [*escaped, "ann@example.com"]
    assert all(row[1 : 1 + len(PAYLOADS)] == escaped for row in rows)


def test_results_parquet_keeps_the_payloads_verbatim(tmp_path):
    source = _hostile_list(tmp_path / "hostile.csv")
    config = load_config({"data_dir": tmp_path / "home", "depth": "syntax"}, env={})
    out = write_results(verify_file(source, config).results, tmp_path / "results.parquet")

    results = pl.read_parquet(out)

    assert results.columns[1 : 1 + len(PAYLOADS)] == list(PAYLOADS)
    assert results.get_column("email").to_list() == [*PAYLOADS, "ann@example.com"]


def test_csv_text_for_stdout_neutralises_its_header_and_cells():
    frame = pl.DataFrame({payload: [payload, None] for payload in PAYLOADS})

    header, *rows = _csv_records(csv_text(frame))

    _assert_no_cell_starts_a_formula([header, *rows])
    assert header == rows[0] == [FORMULA_ESCAPE + payload for payload in PAYLOADS]
    assert rows[1] == [""] * len(PAYLOADS)


def test_demo_list_is_an_input_and_keeps_its_formula_cell_for_the_results_to_neutralise(
    tmp_path,
):
    # The demo list is read back by mailsift, so it holds what a hostile list would; the file a
    # person opens is the results CSV.
    demo = write_demo_list(tmp_path / "demo.csv", rows=2_000)
    cells = read_list(demo).originals.get_column("email").to_list()
    assert "=cmd|' /C calc'!A0" in cells

    config = load_config({"data_dir": tmp_path / "home", "depth": "syntax"}, env={})
    out = write_results(verify_file(demo, config).results, tmp_path / "results.csv")

    records = _csv_records(out)
    _assert_no_cell_starts_a_formula(records)
    assert "'=cmd|' /C calc'!A0" in [record[0] for record in records]


# --- secrets only from the environment ---


@pytest.mark.parametrize(
    "toml",
    [
        'webhook_secret = "from-a-file"\n',
        '[mailsift]\nwebhook_secret = "from-a-file"\n',
        # Top level beside a [mailsift] table: was ignored without a word, yet sat in the file.
        'webhook_secret = "from-a-file"\n[mailsift]\ndepth = "dns"\n',
    ],
)
def test_a_secret_anywhere_in_mailsift_toml_is_refused_without_echoing_it(tmp_path, toml):
    (tmp_path / "mailsift.toml").write_text(toml, encoding="utf-8")

    with pytest.raises(InputError) as refused:
        load_config({"data_dir": tmp_path}, env={})

    assert "MAILSIFT_WEBHOOK_SECRET" in str(refused.value)
    assert "from-a-file" not in str(refused.value)


def test_the_secret_from_the_environment_is_masked_in_every_dump_of_the_config(tmp_path):
    marker = "whsec-marker-7c1e9"
    config = load_config({"data_dir": tmp_path}, env={"MAILSIFT_WEBHOOK_SECRET": marker})

    assert config.webhook_secret is not None
    assert config.webhook_secret.get_secret_value() == marker
    for dumped in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        assert marker not in dumped


def test_a_data_dir_with_a_backslash_is_refused_before_any_run(tmp_path):
    # DuckDB's glob reads `\` as a separator: `a\b/history` would be read from `a/b/history`.
    with pytest.raises(InputError, match="backslash"):
        load_config({"data_dir": tmp_path / "a\\b"}, env={})


# --- hashed addresses for logs and metadata ---


def test_an_address_hashes_to_h_and_the_first_12_hex_digits_of_sha256_of_its_lower_case():
    expected = "h:" + hashlib.sha256(b"ann.lee@example.com").hexdigest()[:12]

    assert hash_address("Ann.Lee@Example.COM") == expected
    assert hash_address("ann.lee@example.com") == expected


def test_the_expression_hashes_like_the_function_and_keeps_nulls():
    addresses = ["Ann@example.com", None, "bob@example.org", "ann@EXAMPLE.com"]
    frame = pl.DataFrame({"email": pl.Series(addresses, dtype=pl.String)})

    hashed = frame.select(hashed_addresses(pl.col("email"))).to_series()

    assert hashed.to_list() == [
        hash_address("ann@example.com"),
        None,
        hash_address("bob@example.org"),
        hash_address("ann@example.com"),
    ]


def test_plain_display_shows_the_frame_unchanged():
    frame = pl.DataFrame({"email": ["ann@example.com"], "name": ["Ann"]})

    assert addresses_shown(frame, "plain").equals(frame)


def test_hashed_display_hides_address_columns_and_any_cell_holding_an_at_sign():
    frame = pl.DataFrame(
        {
            "Work E-mail": ["ann@example.com", "not an address"],
            "email_normalized": ["ann@example.com", None],
            "note": ["cc bob@example.org", "call after 5"],
            "name": ["Ann", "Bob"],
            "score": [90, 10],
        }
    )

    shown = addresses_shown(frame, "hashed", ["Work E-mail"])

    assert shown.to_dict(as_series=False) == {
        "Work E-mail": [hash_address("ann@example.com"), hash_address("not an address")],
        "email_normalized": [hash_address("ann@example.com"), None],
        "note": [hash_address("cc bob@example.org"), "call after 5"],
        "name": ["Ann", "Bob"],
        "score": [90, 10],
    }
