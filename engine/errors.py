"""The one error type users see: one line naming the file, the row (when known) and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A bad input file or option. The CLI prints `str(error)` alone and exits with status 2."""

    def __init__(
        self, problem: str, *, path: Path | str | None = None, row: int | None = None
    ) -> None:
        self.problem = problem
        self.path = Path(path) if path is not None else None
        self.row = row
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if row is not None:
            where.append(f"row {row}")
        prefix = ":".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)
