"""What the CLI shows people: progress bars on a TTY and the summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from engine.doctor import CheckResult


def stdout_console() -> Console:
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


class RichProgress:
    """One bar per stage; stages without a known total show a spinner until they finish."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TextColumn("{task.completed:>9,}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, stage: str, total: int | None) -> None:
        self._tasks[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        self._progress.advance(self._tasks[stage], amount)

    def finish(self, stage: str) -> None:
        task = self._tasks[stage]
        total = self._progress.tasks[task].total or 1
        self._progress.update(task, total=total, completed=total)


def print_summary(
    console: Console, summary: Mapping[str, Any], *, results: Path, summary_file: Path | None = None
) -> None:
    table = Table(title="mailsift summary", show_lines=False)
    table.add_column("status")
    table.add_column("sub_status")
    table.add_column("rows", justify="right")
    for status, subs in sorted(summary.get("by_sub_status", {}).items()):
        for sub_status, count in sorted(subs.items(), key=lambda item: -item[1]):
            table.add_row(status, sub_status, f"{count:,}")
    console.print(table)
    figures = ("total_rows", "duplicates", "syntax_invalid", "disposable", "role_based")
    console.print(
        "  ".join(f"{name}={summary[name]:,}" for name in figures if name in summary), markup=False
    )
    console.print(f"results: {results}", markup=False)
    if summary_file is not None:
        console.print(f"summary: {summary_file}", markup=False)


OUTCOME_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def print_doctor(console: Console, results: Sequence[CheckResult]) -> None:
    """The preflight as a table: each check, its outcome, what it found and, below, the fix."""
    table = Table(title="mailsift doctor", show_lines=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("finding / fix", overflow="fold")
    for result in results:
        # Text, not markup: details quote DNS records and replies, which may hold "[...]".
        finding = Text(result.detail)
        if result.fix:
            finding.append(f"\nfix: {result.fix}", style="italic")
        table.add_row(
            Text(result.name),
            Text(result.outcome.value, style=OUTCOME_STYLES[result.outcome.value]),
            finding,
        )
    console.print(table)
