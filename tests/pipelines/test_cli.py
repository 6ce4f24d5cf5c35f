"""The `mailsift` command line: contracts of DESIGN §4 (outputs, exit codes, one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from pipelines.cli import EXIT_OK, EXIT_USAGE, main


def _csv(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_verify_writes_one_result_row_per_input_row_in_order(tmp_path, capsys):
    source = _csv(
        tmp_path,
        "email,name\nalice@example.com,Alice\nnot-an-address,Bob\nALICE@example.com,Al\n"
        "info@mailinator.com,Inf\n",
    )
    out = tmp_path / "out" / "results.csv"
    code = main(["verify", str(source), "--out", str(out), "--depth", "syntax", "--no-progress"])
    assert code == EXIT_OK
    results = pl.read_csv(out, infer_schema=False)
    assert results.get_column("name").to_list() == ["Alice", "Bob", "Al", "Inf"]
    assert results.columns[:3] == ["email", "name", "email_normalized"]
    assert results.get_column("status").to_list() == [
        "unknown",
        "invalid",
        "unknown",
        "do_not_mail",
    ]
    assert results.get_column("is_duplicate").to_list() == ["false", "false", "true", "false"]
    summary = json.loads((out.parent / "results.summary.json").read_text())
    assert summary["total_rows"] == 4
    assert "results.csv" in capsys.readouterr().out


def test_verify_parquet_output_by_extension(tmp_path):
    source = _csv(tmp_path, "email\nbob@example.org\n")
    out = tmp_path / "results.parquet"
    assert main(["verify", str(source), "--out", str(out), "--depth", "syntax"]) == EXIT_OK
    assert pl.read_parquet(out).get_column("syntax_valid").to_list() == [True]


def test_several_inputs_are_verified_as_one_list_with_their_source(tmp_path):
    first = _csv(tmp_path, "email\nbob@example.org\n", "a.csv")
    second = _csv(tmp_path, "bob@example.org\ncarol@example.org\n", "b.txt")
    out = tmp_path / "merged.parquet"
    assert main(["verify", str(first), str(second), "--out", str(out), "--depth", "syntax"]) == 0
    results = pl.read_parquet(out)
    assert results.height == 3
    assert results.get_column("is_duplicate").to_list() == [False, True, False]
    assert results.get_column("source_file").to_list() == [str(first), str(second), str(second)]


def test_missing_email_column_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    source = _csv(tmp_path, "id,name\n1,Alice\n2,Bob\n")
    code = main(["verify", str(source), "--out", str(tmp_path / "r.csv"), "--depth", "syntax"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "list.csv" in err and "id" in err and "name" in err


def test_missing_input_file_is_exit_2(tmp_path, capsys):
    code = main(
        [
            "verify",
            str(tmp_path / "nope.csv"),
            "--out",
            str(tmp_path / "r.csv"),
            "--depth",
            "syntax",
        ]
    )
    assert code == EXIT_USAGE
    assert "nope.csv" in capsys.readouterr().err


def test_real_smtp_run_without_own_helo_is_refused_before_any_work(tmp_path, capsys):
    source = _csv(tmp_path, "email\nbob@example.org\n")
    code = main(["verify", str(source), "--out", str(tmp_path / "r.csv"), "--depth", "smtp"])
    assert code == EXIT_USAGE
    assert "--helo and --mail-from" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_analyze_prints_the_quote_as_json(tmp_path, capsys):
    source = _csv(
        tmp_path, "email\na@example.com\nA@example.com\nbroken\nb@example.org\nc@example.org\n"
    )
    assert main(["analyze", str(source), "--json"]) == EXIT_OK
    quote = json.loads(capsys.readouterr().out)
    assert quote["total_rows"] == 5
    assert quote["duplicates"] == 1
    assert quote["syntax_invalid"] == 1
    assert quote["processable"] == 3
    assert quote["unique_domains"] == 2


def test_check_prints_verdicts_as_json(capsys):
    code = main(["check", "alice@gmial.com", "info@example.org", "--json", "--depth", "syntax"])
    assert code == EXIT_OK
    verdicts = json.loads(capsys.readouterr().out)
    assert verdicts[0]["did_you_mean"] == "gmail.com"
    assert verdicts[1]["sub_status"] == "role_based"


def test_usage_error_exits_2(capsys):
    assert _run_console(["verify"]).returncode == EXIT_USAGE


def test_demo_probes_the_sandbox_end_to_end_and_prints_where_results_are(tmp_path):
    completed = _run_console(["demo", "--rows", "600", "--data-dir", str(tmp_path / "home")])
    assert completed.returncode == EXIT_OK, completed.stderr
    assert "results:" in completed.stdout
    assert "sandbox_truth" in completed.stdout
    results = pl.read_csv(tmp_path / "home" / "demo" / "results.csv", infer_schema=False)
    assert results.height == 600
    assert set(results.get_column("status").unique()) >= {"valid", "invalid", "unknown"}
    replies = tmp_path / "home" / "lists"
    assert list(replies.glob("*/replies.parquet"))


def _run_console(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_feedback_records_events_and_sql_reads_them_with_bound_parameters(tmp_path, capsys):
    events = _csv(
        tmp_path,
        "email,event_type,bounce_code,bounce_message,timestamp\n"
        "a@example.com,hard_bounce,550,5.1.1 unknown,2026-01-02T03:04:05Z\n"
        "b@example.com,delivered,,,1767225600\n"
        "c@example.com,opened,,,2026-01-02\n",
        name="events.csv",
    )
    assert main(["feedback", str(events), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)[0]
    assert report["format"] == "generic" and report["events_kept"] == 2
    assert report["events_by_type"] == {"hard_bounce": 1, "delivered": 1}

    hostile = "a@example.com' OR '1'='1"
    for value, expected in (("a@example.com", 1), (hostile, 0)):
        query = "SELECT count(*) AS n FROM feedback WHERE dedup_key = ?"
        assert main(["sql", query, "--param", value, "--json"]) == EXIT_OK
        assert json.loads(capsys.readouterr().out) == [{"n": expected}]


def test_sql_refuses_writes_and_neutralises_formulas_in_csv(tmp_path, capsys):
    assert main(["sql", "CREATE TABLE t AS SELECT 1"]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("mailsift: error: SQL") and error.count("\n") == 1
    assert main(["sql", "SELECT '=cmd|calc' AS cell", "--csv"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["cell", "'=cmd|calc"]


def test_analyze_quotes_fewer_probes_once_the_history_knows_the_list(tmp_path, capsys):
    source = _csv(tmp_path, "email\nalice@example.com\nbob@example.com\n")
    assert main(["analyze", str(source), "--json"]) == EXIT_OK
    before = json.loads(capsys.readouterr().out)
    assert (before["cached"], before["smtp_probes_estimate"]) == (0, 3)
    suppression = tmp_path / "mailsift-home" / "suppression"
    suppression.mkdir(parents=True)
    (suppression / "global_suppression.txt").write_text("bob@example.com\n")
    assert main(["analyze", str(source), "--json"]) == EXIT_OK
    after = json.loads(capsys.readouterr().out)
    assert (after["decided_by_your_lists"], after["smtp_probes_estimate"]) == (1, 2)
