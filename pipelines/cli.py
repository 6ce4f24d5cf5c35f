"""The `mailsift` command line (DESIGN §4). One-line errors; exit 0 done, 2 bad input, 1 failure."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
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

    demo = commands.add_parser("demo", help="run the whole job on a generated list")
    demo.add_argument("--rows", type=int, default=20_000)
    _add_run_options(demo)
    return parser


_NON_CONFIG_ARGS = {"command", "inputs", "out", "format", "json", "addresses", "rows"}


def config_from_args(args: argparse.Namespace, **forced: Any) -> Config:
    overrides = {k: v for k, v in vars(args).items() if k not in _NON_CONFIG_ARGS}
    overrides.update(forced)
    return load_config(overrides)


def _progress_for(config: Config) -> RichProgress | None:
    return RichProgress(stderr_console()) if config.progress and sys.stderr.isatty() else None


def _summary_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.summary.json")


def _run_verify(args: argparse.Namespace) -> int:
    from engine.export import write_results, write_summary
    from engine.verify import verify_file

    config = config_from_args(args)
    progress = _progress_for(config)
    if progress is not None:
        with progress:
            run = verify_file(args.inputs, config, progress=progress)
    else:
        run = verify_file(args.inputs, config)
    for warning in run.warnings:
        stderr_console().print(f"mailsift: warning: {warning}", highlight=False, markup=False)
    written = write_results(run.results, args.out, args.format)
    summary_file = write_summary(run.summary, _summary_path(written))
    print_summary(stdout_console(), run.summary, results=written, summary_file=summary_file)
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

    config = config_from_args(args)
    results = verify_addresses(args.addresses, config)
    shown = results.select(
        "email", "status", "sub_status", "score", "did_you_mean", "factors", "reason"
    )
    if args.json:
        print(json.dumps(shown.to_dicts(), indent=2, default=str))
    else:
        with pl.Config(tbl_rows=len(args.addresses), fmt_str_lengths=60, tbl_width_chars=160):
            print(shown)
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from engine.export import write_results, write_summary
    from engine.sandbox.sample_list import write_sample_list
    from engine.verify import verify_file

    config = config_from_args(args, depth=args.depth or "syntax")
    demo_dir = config.data_dir / "demo"
    sample = write_sample_list(demo_dir / "sample_list.csv", rows=args.rows)
    progress = _progress_for(config)
    if progress is not None:
        with progress:
            run = verify_file([sample], config, progress=progress)
    else:
        run = verify_file([sample], config)
    written = write_results(run.results, demo_dir / "results.csv")
    write_results(run.results, demo_dir / "results.parquet")
    summary_file = write_summary(run.summary, demo_dir / "summary.json")
    print_summary(stdout_console(), run.summary, results=written, summary_file=summary_file)
    return EXIT_OK


_COMMANDS = {"verify": _run_verify, "analyze": _run_analyze, "check": _run_check, "demo": _run_demo}


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
