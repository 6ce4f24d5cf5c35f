"""Security checks of issue 6 §5 through the CLI and the Dagster chain (depth syntax: no network).

Every CSV written for people is formula-neutralised, the machine-read stale list is not; the
webhook secret never reaches a file, an event, metadata or the terminal; `log_addresses=hashed`
keeps addresses out of Dagster metadata; hostile list names and partition keys bind as values.
"""

# No `from __future__ import annotations`: kept like the other Dagster test modules.
import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from engine.catalog import run_sql
from engine.export import FORMULA_ESCAPE
from engine.history import HISTORY_DIR_NAME, VERDICT_HISTORY_SCHEMA, VERDICTS, append_part
from engine.ingest import read_list
from engine.privacy import hash_address
from engine.webhooks import SIGNATURE_HEADER, delivery_log_path, verify_signature
from pipelines.cli import EXIT_OK, main
from pipelines.definitions import defs
from pipelines.layout import DataDirLayout
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings
from pipelines.schedules import reverify_stale_verdicts
from pipelines.webhook_sensors import list_completed_webhook

PAYLOADS = ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\tTAB=1+1", "\rCR=1+1")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
SECRET_MARKER = "whsec-MARKER-3b9f0c2e71d4"
ADDRESSES = ("Ann.Lee@example.com", "bob@example.org", "carol+news@example.net")
HOSTILE_KEY = "list '; DROP TABLE x; --\" OR 1=1 -- % _ ü {parts:verdicts}"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _customer_list(path: Path) -> Path:
    """Real-looking addresses, a second address column, and a payload column of formulas."""
    rows = [
        [address, f"cc {address.lower()}", PAYLOADS[n % len(PAYLOADS)]]
        for n, address in enumerate(ADDRESSES)
    ]
    return _write_csv(path, ["Work Email", "note", PAYLOADS[0]], rows)


def _records(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _assert_no_cell_starts_a_formula(records: list[list[str]]) -> None:
    for record in records:
        for cell in record:
            assert not cell.startswith(FORMULA_TRIGGERS), f"{cell!r} would run as a formula"


def _home() -> Path:
    return Path(os.environ["MAILSIFT_HOME"])


def _run_chain(instance: dg.DagsterInstance, key: str, source: Path) -> dg.ExecuteInProcessResult:
    """Land `source` under partition `key` as the inbox sensor would, then run verify_list."""
    landed = DataDirLayout(_home()).landing_dir(key) / source.name
    landed.parent.mkdir(parents=True)
    landed.write_bytes(source.read_bytes())
    instance.add_dynamic_partitions(lists_partitions.name, [key])
    return defs.resolve_job_def("verify_list").execute_in_process(
        instance=instance,
        partition_key=key,
        resources={"mailsift": MailsiftSettings(depth="syntax")},
    )


def _event_texts(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of the run, serialised as Dagster stores it (messages, metadata, tags)."""
    return "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(run_id))


def _files_holding(root: Path, marker: str) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and marker.encode() in path.read_bytes():
            found.append(path)
    return found


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[bytes, str | None]]]:
    """A webhook endpoint on 127.0.0.1, configured through MAILSIFT_* as in production."""
    received: list[tuple[bytes, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers.get(SIGNATURE_HEADER)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MAILSIFT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    monkeypatch.setenv("MAILSIFT_WEBHOOK_SECRET", SECRET_MARKER)
    monkeypatch.setenv("MAILSIFT_WEBHOOK_ALLOW_PRIVATE", "true")
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


# --- every CSV we write is neutralised (and the one mailsift reads back is not) ---


def test_cli_verify_results_csv_neutralises_header_and_cells(tmp_path):
    source = _write_csv(
        tmp_path / "hostile.csv", ["email", *PAYLOADS], [[p, *PAYLOADS] for p in PAYLOADS]
    )
    out = tmp_path / "results.csv"

    assert main(["verify", str(source), "--out", str(out), "--depth", "syntax"]) == EXIT_OK

    header, *rows = _records(out.read_bytes().decode())
    _assert_no_cell_starts_a_formula([header, *rows])
    assert header[1 : 1 + len(PAYLOADS)] == [FORMULA_ESCAPE + p for p in PAYLOADS]


def test_cli_sql_csv_neutralises_its_header_and_the_cells_of_the_history(tmp_path, capsys):
    source = _write_csv(tmp_path / "hostile.csv", ["email"], [[p] for p in PAYLOADS])
    out = str(tmp_path / "r.parquet")
    assert main(["verify", str(source), "--out", out, "--depth", "syntax"]) == EXIT_OK
    capsys.readouterr()
    aliases = ", ".join(f'? AS "{p}"' for p in PAYLOADS)
    query = f"SELECT email_normalized, {aliases} FROM verdicts ORDER BY email_normalized"

    params = [arg for p in PAYLOADS for arg in ("--param", p)]
    assert main(["sql", query, *params, "--csv"]) == EXIT_OK

    header, *rows = _records(capsys.readouterr().out)
    _assert_no_cell_starts_a_formula([header, *rows])
    assert header[1:] == [FORMULA_ESCAPE + p for p in PAYLOADS]
    assert rows and all(row[1:] == [FORMULA_ESCAPE + p for p in PAYLOADS] for row in rows)


def test_the_stale_list_is_read_back_by_mailsift_so_it_keeps_addresses_verbatim(monkeypatch):
    # `=cmd@example.com` is a valid address: a `'` before it would re-verify another one. The
    # re-verify run's results.csv (the file people open) is neutralised as usual.
    formula_like = ["=cmd@example.com", "+1@example.com", "-1@example.com", "@SUM(1)@example.com"]
    checked_at = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        [
            {"run_id": "old", "list_id": "l", "checked_at": checked_at, "dedup_key": address,
             "email_normalized": address, "domain": "example.com", "status": "valid"}
            for address in formula_like
        ],
        schema=VERDICT_HISTORY_SCHEMA,
    )  # fmt: skip
    append_part(frame, _home() / HISTORY_DIR_NAME, VERDICTS, "old")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=checked_at + timedelta(days=60),
            resources={"mailsift": MailsiftSettings()},
        )
        request = reverify_stale_verdicts(context)

    landed = DataDirLayout(_home()).landed_file(request.partition_key)
    assert read_list(landed).originals.get_column("email").to_list() == sorted(formula_like)


def test_the_dagster_results_csv_is_neutralised(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    key = "customers.csv-0123456789"

    assert _run_chain(instance, key, _customer_list(tmp_path / "customers.csv")).success

    text = DataDirLayout(_home()).results_file(key, "csv").read_bytes().decode()
    header, *rows = _records(text)
    _assert_no_cell_starts_a_formula([header, *rows])
    assert header[2] == FORMULA_ESCAPE + PAYLOADS[0]


# --- secrets only from the environment, never in files, events, metadata or the terminal ---


def test_the_cli_never_writes_or_prints_the_webhook_secret(tmp_path, receiver, capfd, caplog):
    source = _customer_list(tmp_path / "in" / "customers.csv")
    out = tmp_path / "out" / "results.csv"
    url = os.environ["MAILSIFT_WEBHOOK_URL"]

    verify = ["verify", str(source), "--out", str(out), "--depth", "syntax", "--webhook", url]
    assert main(verify) == EXIT_OK
    assert main(["analyze", str(source), "--json"]) == EXIT_OK
    assert main(["sql", "SELECT * FROM ledger", "--json"]) == EXIT_OK

    captured = capfd.readouterr()
    assert SECRET_MARKER not in captured.out + captured.err + caplog.text
    assert _files_holding(_home(), SECRET_MARKER) == []
    assert _files_holding(tmp_path, SECRET_MARKER) == []


def test_the_dagster_chain_and_its_webhook_use_the_secret_but_never_record_it(
    tmp_path, receiver, capfd, caplog
):
    instance = dg.DagsterInstance.ephemeral()
    key = "customers.csv-0123456789"
    result = _run_chain(instance, key, _customer_list(tmp_path / "customers.csv"))
    assert result.success
    context = dg.build_run_status_sensor_context(
        sensor_name=list_completed_webhook.name,
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"mailsift": MailsiftSettings()},
    )

    list_completed_webhook(context)

    # The secret was live: the receiver could check the signature with it.
    [(body, signature)] = receiver
    assert verify_signature(body, signature, SECRET_MARKER)
    assert delivery_log_path(_home()).is_file()
    captured = capfd.readouterr()
    assert SECRET_MARKER not in captured.out + captured.err + caplog.text
    assert SECRET_MARKER not in _event_texts(instance, result.run_id)
    assert _files_holding(_home(), SECRET_MARKER) == []
    assert _files_holding(Path(os.environ["DAGSTER_HOME"]).parent, SECRET_MARKER) == []


# --- hashed addresses in Dagster metadata ---


def test_hashed_log_addresses_keep_every_address_out_of_dagster_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILSIFT_LOG_ADDRESSES", "hashed")
    instance = dg.DagsterInstance.ephemeral()
    key = "customers.csv-0123456789"

    result = _run_chain(instance, key, _customer_list(tmp_path / "customers.csv"))

    assert result.success
    events = _event_texts(instance, result.run_id)
    previews = [
        str(m.metadata["preview"].value)
        for node in ("list_rows", "prepared_list")
        for m in result.asset_materializations_for_node(node)
    ]
    for address in ADDRESSES:
        for shown in (address, address.lower()):
            assert shown not in events
        assert hash_address(address) in previews[0]  # the list's own email column
        assert hash_address(address) in previews[1]  # email_normalized
    # The deliverables stay plain.
    results = pl.read_parquet(DataDirLayout(_home()).results_file(key, "parquet"))
    assert results.get_column("Work Email").to_list() == list(ADDRESSES)


def test_plain_log_addresses_is_the_default_and_shows_the_addresses(tmp_path):
    instance = dg.DagsterInstance.ephemeral()

    result = _run_chain(instance, "customers.csv-0123456789", _customer_list(tmp_path / "c.csv"))

    [materialisation] = result.asset_materializations_for_node("list_rows")
    assert ADDRESSES[0] in str(materialisation.metadata["preview"].value)


def test_cli_warnings_name_the_row_never_the_cell(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("MAILSIFT_LOG_ADDRESSES", "hashed")
    source = tmp_path / "ragged.csv"
    source.write_text("email,name\nann@example.com,Ann,extra\nbob@example.org,Bob\n", "utf-8")

    assert main(["verify", str(source), "--out", str(tmp_path / "r.csv"), "--depth", "syntax"]) == 0

    err = capfd.readouterr().err
    assert "row 2" in err and "warning" in err
    assert "ann@example.com" not in err and "bob@example.org" not in err


# --- hostile list names and partition keys are values, never SQL ---


def test_a_hostile_file_name_through_the_cli_binds_back_from_sql(tmp_path, capsys):
    source = _customer_list(tmp_path / f"{HOSTILE_KEY}.csv")
    assert main(["verify", str(source), "--out", str(tmp_path / "r.csv"), "--depth", "syntax"]) == 0
    capsys.readouterr()
    [list_id] = run_sql(_home(), "SELECT list_id FROM ledger").get_column("list_id").to_list()

    query = "SELECT list_id, count(*) AS n FROM verdicts WHERE list_id = ? GROUP BY list_id"
    assert main(["sql", query, "--param", list_id, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [{"list_id": list_id, "n": len(ADDRESSES)}]
    for hostile in (HOSTILE_KEY, "' OR '1'='1", "%", "_", "{parts:verdicts}"):
        assert main(["sql", query, "--param", hostile, "--json"]) == EXIT_OK
        assert json.loads(capsys.readouterr().out) == []


def test_a_hostile_partition_key_runs_the_dagster_chain_and_binds_back(tmp_path):
    instance = dg.DagsterInstance.ephemeral()

    result = _run_chain(instance, HOSTILE_KEY, _customer_list(tmp_path / "customers.csv"))

    assert result.success
    ledger = run_sql(_home(), "SELECT list_id, rows FROM ledger WHERE list_id = ?", [HOSTILE_KEY])
    assert ledger.rows() == [(HOSTILE_KEY, len(ADDRESSES))]
