"""The `mailsift` command line (DESIGN §4). One-line errors; exit 0 done, 2 bad input, 1 failure."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from engine.config import Config, load_config
from engine.errors import InputError
from pipelines.console import RichProgress, print_summary, stderr_console, stdout_console

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
FORMATS = ("csv", "parquet", "json", "jsonl")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; this keeps its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"mailsift: error: {message} (see mailsift --help)\n")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options that become config fields (None = not given, so env and toml still apply)."""
    parser.add_argument("--depth", choices=("syntax", "dns", "smtp"), default=None)
    parser.add_argument("--column", default=None, help="name of the email column")
    parser.add_argument("--dns", action="append", default=None, metavar="HOST[:PORT]")
    parser.add_argument("--smtp-port", type=int, default=None)
    parser.add_argument("--helo", default=None, help="HELO/EHLO name (your own FQDN)")
    parser.add_argument("--mail-from", default=None, help="MAIL FROM address (your own domain)")
    parser.add_argument("--source-address", default=None, metavar="IP")
    parser.add_argument("--refresh", action="store_true", default=None)
    parser.add_argument("--max-age", type=float, default=None, dest="max_age_days", metavar="DAYS")
    parser.add_argument("--sandbox", action="store_true", default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--webhook", default=None, dest="webhook_url", metavar="URL")
    parser.add_argument("--no-progress", action="store_false", default=None, dest="progress")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailsift", description="Email-list hygiene: will mail to it be delivered?"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    verify = commands.add_parser("verify", help="verify list files and write one result per row")
    verify.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    verify.add_argument("--out", type=Path, required=True, metavar="PATH")
    verify.add_argument("--format", choices=FORMATS, default=None)
    _add_run_options(verify)

    analyze = commands.add_parser("analyze", help="quote a list before any network work")
    analyze.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    analyze.add_argument("--json", action="store_true", help="machine-readable output")
    _add_run_options(analyze)

    check = commands.add_parser("check", help="verify a few addresses and print the verdicts")
    check.add_argument("addresses", nargs="+", metavar="ADDRESS")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    _add_run_options(check)

    feedback = commands.add_parser(
        "feedback", help="record bounce / delivery / complaint events from an ESP export"
    )
    feedback.add_argument("inputs", nargs="+", type=Path, metavar="FILE")
    feedback.add_argument(
        "--feedback-format",
        default=None,
        dest="feedback_format",
        metavar="NAME",
        help="generic, sendgrid, mailgun or ses (default: detected from the columns)",
    )
    feedback.add_argument("--json", action="store_true", help="machine-readable report")
    feedback.add_argument("--data-dir", type=Path, default=None)

    sql = commands.add_parser("sql", help="query the history with SQL (read-only)")
    sql.add_argument("query", metavar="QUERY")
    sql.add_argument(
        "--param",
        action="append",
        default=[],
        dest="params",
        metavar="VALUE",
        help="a value for the next ? in QUERY (repeatable; always bound, never pasted in)",
    )
    output = sql.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV on stdout")
    output.add_argument("--json", action="store_true", help="JSON on stdout")
    sql.add_argument("--data-dir", type=Path, default=None)

    doctor = commands.add_parser("doctor", help="preflight: can this host verify mail at all?")
    doctor.add_argument("--probe-domain", default=None, metavar="DOMAIN", help="whose MX to dial")
    doctor.add_argument(
        "--dnsbl", action="append", default=[], metavar="ZONE", help="blocklist zone to query"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    _add_run_options(doctor)

    demo = commands.add_parser("demo", help="run the whole job on a generated list (sandbox)")
    demo.add_argument("--rows", type=int, default=20_000)
    demo.add_argument(
        "--ui", action="store_true", help="drop the list into the inbox of a running Dagster UI"
    )
    demo.add_argument("--host", default="127.0.0.1", help="with --ui: where the UI listens")
    demo.add_argument("--port", type=int, default=3000, help="with --ui: where the UI listens")
    _add_run_options(demo)

    ui = commands.add_parser("ui", help="start Dagster (UI + daemon) on the embedded instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    _add_run_options(ui)

    sandbox = commands.add_parser("sandbox", help="serve the sandbox mail world until Ctrl-C")
    sandbox.add_argument("--dns-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--smtp-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument(
        "--write-list",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write a demo list over the world to PATH",
    )
    sandbox.add_argument("--rows", type=int, default=20_000)
    return parser


_NON_CONFIG_ARGS = {
    "command", "inputs", "out", "format", "json", "addresses", "rows", "dns_port", "write_list",
    "feedback_format", "query", "params", "csv", "ui", "host", "port", "probe_domain", "dnsbl",
}  # fmt: skip


def config_from_args(args: argparse.Namespace, **forced: Any) -> Config:
    overrides = {k: v for k, v in vars(args).items() if k not in _NON_CONFIG_ARGS}
    overrides.update(forced)
    return load_config(overrides)


@contextlib.contextmanager
def _world_for(config: Config) -> Iterator[Config]:
    """With `--sandbox`, run the demo mail world in a child process and point the config at it."""
    if not config.sandbox:
        yield config
        return
    from engine.sandbox.demo_world import demo_world
    from engine.sandbox.probe_settings import sandbox_overrides
    from engine.sandbox.running import spawn_world

    with spawn_world(demo_world()) as world:
        yield config.model_copy(update=sandbox_overrides(world.dns_address, world.smtp_port))


def _list_key(paths: Sequence[Path]) -> str:
    """A run's checkpoint key: the same input bytes resume the same run."""
    from pipelines.partitions import list_key_for

    keys = [list_key_for(path) for path in paths]
    if len(keys) == 1:
        return keys[0]
    return "merged-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:10]


def _progress_for(config: Config) -> RichProgress | None:
    return RichProgress(stderr_console()) if config.progress and sys.stderr.isatty() else None


def _summary_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.summary.json")


def _verify_and_write(
    inputs: Sequence[Path], config: Config, out: Path, fmt: str | None
) -> tuple[dict[str, Any], Path, Path]:
    from engine.export import write_results, write_summary
    from engine.verify import verify_file
    from pipelines.layout import DataDirLayout

    missing = [path for path in inputs if not path.is_file()]
    if missing:
        raise InputError("no such file", path=missing[0])
    list_id = _list_key(inputs)
    list_dir = DataDirLayout(config.data_dir).list_dir(list_id)
    checkpoint_dir = list_dir / "probes"
    progress = _progress_for(config)
    with progress if progress is not None else contextlib.nullcontext():
        run = verify_file(
            inputs, config, progress=progress, checkpoint_dir=checkpoint_dir, list_id=list_id
        )
    for warning in run.warnings:
        stderr_console().print(f"mailsift: warning: {warning}", highlight=False, markup=False)
    written = write_results(run.results, out, fmt)
    if run.replies is not None:
        replies = write_results(run.replies, list_dir / "replies.parquet")
        run.summary["smtp_replies_file"] = str(replies)
    summary_file = write_summary(run.summary, _summary_path(written))
    # The checkpoint resumes a killed run; once this one is written and in the history, the next
    # run of the same file must probe its unknowns again rather than resume them.
    _retire_checkpoint(checkpoint_dir)
    return run.summary, written, summary_file


def _retire_checkpoint(checkpoint_dir: Path) -> None:
    """Remove a finished run's checkpoint, all of it or none of it.

    Renamed away before it is deleted: a run killed halfway through `rmtree` left a checkpoint
    directory with some journals gone, so its rerun neither resumed nor started afresh (seen in
    tests/engine/test_crash_resume.py: the unknowns probed again beside the old run's replies).
    A kill now leaves a hidden directory nobody reads, which the next finished run removes.
    """
    retired = checkpoint_dir.with_name(f".{checkpoint_dir.name}-retired-{secrets.token_hex(4)}")
    with contextlib.suppress(FileNotFoundError):
        os.replace(checkpoint_dir, retired)
    for leftover in checkpoint_dir.parent.glob(f".{checkpoint_dir.name}-retired-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _run_verify(args: argparse.Namespace) -> int:
    with _world_for(config_from_args(args)) as config:
        summary, written, summary_file = _verify_and_write(
            args.inputs, config, args.out, args.format
        )
    print_summary(stdout_console(), summary, results=written, summary_file=summary_file)
    return EXIT_OK


def _run_analyze(args: argparse.Namespace) -> int:
    from engine.quote import quote_files

    config = config_from_args(args)
    quote = quote_files(args.inputs, config)
    if args.json:
        print(json.dumps(quote, indent=2))
    else:
        table = stdout_console()
        for key, value in quote.items():
            table.print(f"{key.replace('_', ' '):>22}  {value}", highlight=False, markup=False)
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    from engine.verify import verify_addresses

    with _world_for(config_from_args(args)) as config:
        results = verify_addresses(args.addresses, config)
    shown = results.select(
        "email", "status", "sub_status", "score", "did_you_mean", "smtp_response_code", "reason"
    )
    if args.json:
        print(json.dumps(results.to_dicts(), indent=2, default=str))
    else:
        with pl.Config(tbl_rows=len(args.addresses), fmt_str_lengths=60, tbl_width_chars=160):
            print(shown)
    return EXIT_OK


def _run_feedback(args: argparse.Namespace) -> int:
    from engine.feedback_store import record_feedback

    config = config_from_args(args)
    missing = [path for path in args.inputs if not path.is_file()]
    if missing:
        raise InputError("no such file", path=missing[0])
    reports = [record_feedback(path, config.data_dir, args.feedback_format) for path in args.inputs]
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
        return EXIT_OK
    console = stdout_console()
    for report in reports:
        for warning in report.pop("warnings"):
            stderr_console().print(f"mailsift: warning: {warning}", markup=False)
        console.print(f"{report.pop('file')} ({report.pop('format')})", markup=False)
        for key, value in report.items():
            console.print(f"{key.replace('_', ' '):>24}  {value}", markup=False)
    return EXIT_OK


def _run_sql(args: argparse.Namespace) -> int:
    from engine.catalog import run_sql
    from engine.export import csv_text

    config = config_from_args(args)
    result = run_sql(config.data_dir, args.query, args.params or None)
    if args.csv:  # history holds list cells: neutralise formulas as every CSV we write does
        sys.stdout.write(csv_text(result))
    elif args.json:
        print(json.dumps(result.to_dicts(), indent=2, default=str))
    else:
        with pl.Config(tbl_rows=200, fmt_str_lengths=80, tbl_width_chars=200):
            print(result)
    return EXIT_OK


def _run_ui(args: argparse.Namespace, drop: Path | None = None) -> int:
    """`dagster dev` on the embedded instance, with the sandbox world when asked for.

    Dagster's processes read the same MAILSIFT_* variables as the CLI, so they verify alike.
    """
    import subprocess

    from pipelines.instance import ensure_dagster_home
    from pipelines.layout import DataDirLayout

    config = config_from_args(args)
    data_dir = config.data_dir.resolve()
    env = {
        **os.environ,
        "MAILSIFT_HOME": str(data_dir),
        "DAGSTER_HOME": str(ensure_dagster_home(DataDirLayout(data_dir))),
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    with contextlib.ExitStack() as stack:
        if config.sandbox:
            env.update(_sandbox_env(stack))
        if drop is not None:
            inbox = DataDirLayout(data_dir).inbox
            inbox.mkdir(parents=True, exist_ok=True)
            drop.replace(inbox / drop.name)
        stderr_console().print(
            f"mailsift: Dagster UI on http://{args.host}:{args.port} (data dir {data_dir}); "
            "lists dropped in its inbox/ are verified; Ctrl-C stops",
            markup=False,
        )
        return subprocess.call(command, env=env)


def _sandbox_env(stack: contextlib.ExitStack) -> dict[str, str]:
    """Start the demo world for the life of `stack`; its config as MAILSIFT_* variables."""
    from engine.sandbox.demo_world import demo_world
    from engine.sandbox.probe_settings import sandbox_overrides
    from engine.sandbox.running import spawn_world

    world = stack.enter_context(spawn_world(demo_world()))
    overrides = sandbox_overrides(world.dns_address, world.smtp_port)
    return {
        f"MAILSIFT_{name.upper()}": ",".join(map(str, value))
        if isinstance(value, list)
        else str(value)
        for name, value in overrides.items()
    }


def _run_demo(args: argparse.Namespace) -> int:
    from engine.sandbox.demo_world import write_demo_list

    if args.ui:
        args.sandbox = True
        staged = config_from_args(args).data_dir / "demo" / "demo_list.csv"
        return _run_ui(args, drop=write_demo_list(staged, rows=args.rows))
    config = config_from_args(args, sandbox=True)
    demo_dir = config.data_dir / "demo"
    sample = write_demo_list(demo_dir / "demo_list.csv", rows=args.rows, with_truth=True)
    with _world_for(config) as sandboxed:
        summary, written, summary_file = _verify_and_write(
            [sample], sandboxed, demo_dir / "results.csv", None
        )
    results = pl.read_csv(written, infer_schema=False)
    _print_truth_table(results)
    print_summary(stdout_console(), summary, results=written, summary_file=summary_file)
    return EXIT_OK


def _print_truth_table(results: pl.DataFrame) -> None:
    """What the sandbox world really holds beside what mailsift concluded, for the demo."""
    table = (
        results.group_by("sandbox_truth", "status", "sub_status")
        .len()
        .sort("sandbox_truth", "len", descending=[False, True])
    )
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, tbl_width_chars=120):
        print(table)


def _run_sandbox(args: argparse.Namespace) -> int:
    from engine.sandbox.demo_world import demo_world, write_demo_list
    from engine.sandbox.running import serve_forever

    if args.write_list is not None:
        write_demo_list(args.write_list, rows=args.rows)
        print(f"demo list: {args.write_list}")
    serve_forever(demo_world(), dns_port=args.dns_port, smtp_port=args.smtp_port)
    return EXIT_OK


def _run_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when no check fails (warnings included), 1 when one does."""
    from dataclasses import asdict

    from engine.doctor import has_failures, run_doctor
    from pipelines.console import print_doctor

    with _world_for(config_from_args(args)) as config:
        results = run_doctor(config, probe_domain=args.probe_domain, dnsbl_zones=args.dnsbl)
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=2))
    else:
        print_doctor(stdout_console(), results)
    return EXIT_FAILURE if has_failures(results) else EXIT_OK


_COMMANDS = {
    "verify": _run_verify,
    "analyze": _run_analyze,
    "check": _run_check,
    "feedback": _run_feedback,
    "sql": _run_sql,
    "demo": _run_demo,
    "ui": _run_ui,
    "sandbox": _run_sandbox,
    "doctor": _run_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except InputError as error:
        print(f"mailsift: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mailsift: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:
        if os.environ.get("MAILSIFT_DEBUG"):
            raise
        first_line = str(error).splitlines()[0] if str(error) else ""
        print(
            f"mailsift: unexpected failure: {type(error).__name__}: {first_line} "
            "(set MAILSIFT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
