"""The SQL face of the history: `mailsift.duckdb`, a file of views over the Parquet parts.

The catalog holds views only (one per `sql/*.sql` file), never data, so any number of readers can
open it read-only while runs append parts, and it is replaced whole (written under a temporary name,
then renamed): a reader of the old file is never blocked and two runs rebuilding it at once both
succeed. The views read the parts through a glob, so a new part shows up without a rebuild; a kind
that had no part at build time gets a typed empty view until the next build.

User queries (`run_sql`) run on an in-memory connection that creates the same views, so they never
take a lock on `mailsift.duckdb`. Values come in as bound parameters, never formatted into SQL.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import polars as pl

from engine.errors import InputError
from engine.export import atomic_output
from engine.history import (
    FEEDBACK,
    FEEDBACK_PART_SCHEMA,
    HISTORY_DIR_NAME,
    LEDGER,
    PART_SUFFIX,
    VERDICT_PART_SCHEMA,
    VERDICTS,
    list_parts,
)
from engine.ledger import LEDGER_SCHEMA

SQL_DIR: Final = Path(__file__).resolve().parent.parent / "sql"
CATALOG_FILE_NAME: Final = "mailsift.duckdb"
# Creation order: a view may use the ones before it.
VIEWS: Final = (
    "verdicts",
    "feedback",
    "ledger",
    "latest_verdicts",
    "list_summaries",
    "domain_health",
)

PART_SCHEMAS: Final[dict[str, dict[str, pl.DataType]]] = {
    VERDICTS: VERDICT_PART_SCHEMA,
    FEEDBACK: FEEDBACK_PART_SCHEMA,
    LEDGER: LEDGER_SCHEMA,
}

_PARTS_PLACEHOLDER: Final = re.compile(r"\{parts:([a-z_]+)\}")
_COMMENT_LINE: Final = re.compile(r"^\s*--.*$", re.MULTILINE)
_DUCKDB_TYPES: Final[dict[type[pl.DataType], str]] = {
    pl.String: "VARCHAR",
    pl.Boolean: "BOOLEAN",
    pl.Int16: "SMALLINT",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.UInt32: "UINTEGER",
    pl.UInt64: "UBIGINT",
    pl.Float64: "DOUBLE",
    pl.Date: "DATE",
}
_READ_STATEMENTS: Final = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
# DuckDB's glob treats these as patterns; a one-character class matches each literally.
_GLOB_ESCAPES: Final = {"[": "[[]", "*": "[*]", "?": "[?]"}


def build_catalog(data_dir: Path, sql_dir: Path = SQL_DIR) -> Path:
    """Write `<data_dir>/mailsift.duckdb` holding only the views, and return its path.

    The new file is renamed over the old one (never written in place), so readers of the old file
    keep reading it and concurrent builds never wait for each other.
    """
    data_dir = Path(data_dir)
    target = data_dir / CATALOG_FILE_NAME
    # Built under the system's temporary directory and copied: DuckDB cannot open a database
    # whose path holds `?` or `*` (it misplaces the write-ahead log), and a data dir may.
    with tempfile.TemporaryDirectory(prefix="mailsift-catalog-") as scratch:
        built = Path(scratch) / CATALOG_FILE_NAME
        with duckdb.connect(str(built)) as connection:
            create_views(connection, data_dir / HISTORY_DIR_NAME, sql_dir)
            connection.execute("CHECKPOINT")
        with atomic_output(target) as temporary:
            shutil.copyfile(built, temporary)
    return target


def run_sql(
    data_dir: Path,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    sql_dir: Path = SQL_DIR,
) -> pl.DataFrame:
    """Run a user's query over the views and return the result (empty for a statement).

    Parameters are bound (`?` with a sequence, `$name` with a mapping). Only reading statements
    run, on an in-memory connection that may open nothing but the history directory: a query can
    neither lock the catalog nor write, nor read other files. Any SQL error is a one-line
    InputError.
    """
    history_dir = Path(data_dir) / HISTORY_DIR_NAME
    with duckdb.connect(":memory:") as connection:
        connection.execute("SET TimeZone = 'UTC'")
        create_views(connection, history_dir, sql_dir)
        _confine_to(connection, history_dir)
        try:
            _require_queries_only(connection, query)
            relation = connection.sql(query, params=params)
            return pl.DataFrame() if relation is None else relation.pl()
        except duckdb.Error as error:
            raise InputError(f"SQL: {_first_line(error)}") from error


def create_views(connection: duckdb.DuckDBPyConnection, history_dir: Path, sql_dir: Path) -> None:
    """Create every view of `sql_dir` on `connection`, over the parts under `history_dir`."""
    for name, statement in view_statements(connection, history_dir, sql_dir):
        try:
            connection.execute(statement)
        except duckdb.Error as error:
            raise RuntimeError(f"{sql_dir / (name + '.sql')}: {_first_line(error)}") from error


def view_statements(
    connection: duckdb.DuckDBPyConnection, history_dir: Path, sql_dir: Path = SQL_DIR
) -> list[tuple[str, str]]:
    """(view name, CREATE statement) for each view file, placeholders replaced, in `VIEWS` order.

    `{parts:<kind>}` becomes the typed relation of that kind's parts (see `parts_relation`).
    """
    files = {path.stem: path for path in sorted(Path(sql_dir).glob("*.sql"))}
    unknown = sorted(set(files) - set(VIEWS))
    if unknown:
        raise ValueError(f"{sql_dir}: no creation order for view file(s) {', '.join(unknown)}")
    relations: dict[str, str] = {}

    def relation(match: re.Match[str]) -> str:
        kind = match.group(1)
        if kind not in relations:
            relations[kind] = parts_relation(connection, history_dir, kind)
        return relations[kind]

    statements = []
    for name in VIEWS:
        if name in files:
            text = _COMMENT_LINE.sub("", files[name].read_text(encoding="utf-8")).strip()
            statements.append((name, _PARTS_PLACEHOLDER.sub(relation, text)))
    return statements


def parts_relation(connection: duckdb.DuckDBPyConnection, history_dir: Path, kind: str) -> str:
    """A parenthesised SQL relation over the parts of `kind`, with at least its typed columns.

    Readable parts are read by a glob (`union_by_name`, so parts of older layouts mix with newer
    ones); columns that no part has yet are added as typed nulls. With no part at all it is a typed
    relation with no rows, since DuckDB refuses a glob that matches nothing. Unreadable parts are
    quarantined first (see `engine.history.list_parts`).
    """
    if kind not in PART_SCHEMAS:
        raise ValueError(f"no schema for history kind {kind!r}")
    typed = PART_SCHEMAS[kind]
    if not list_parts(history_dir, kind).parts:
        return f"(SELECT {_typed_nulls(typed)} WHERE false)"
    source = f"read_parquet({_sql_string(_parts_glob(history_dir, kind))}, union_by_name = true)"
    present = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    missing = {name: dtype for name, dtype in typed.items() if name not in present}
    added = f", {_typed_nulls(missing)}" if missing else ""
    return f"(SELECT *{added} FROM {source})"


def _parts_glob(history_dir: Path, kind: str) -> str:
    require_globbable(history_dir)
    return f"{_glob_escaped(str((Path(history_dir) / kind).resolve()))}/*{PART_SUFFIX}"


def require_globbable(directory: Path) -> None:
    """Refuse a directory whose path holds `\\`: DuckDB's glob cannot read it safely.

    DuckDB reads `\\` in a glob as a path separator, even on POSIX, and has no escape for it:
    under a data dir `a\\b` the history glob listed `a/b/`, another directory, and
    `allowed_directories` did not stop it (measured, DuckDB 2.0). Naming parts one by one fails
    too once the path also holds `[`, `*` or `?`, so such a path is refused with the fix.
    """
    if "\\" in str(Path(directory).resolve()):
        raise InputError(
            "the data dir path holds a backslash, which DuckDB reads as a path separator; "
            "choose a data dir without one",
            path=directory,
        )


def _glob_escaped(path: str) -> str:
    return "".join(_GLOB_ESCAPES.get(char, char) for char in path)


def _typed_nulls(columns: Mapping[str, pl.DataType]) -> str:
    return ", ".join(
        f"CAST(NULL AS {_duckdb_type(dtype)}) AS {_sql_identifier(name)}"
        for name, dtype in columns.items()
    )


def _duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    try:
        return _DUCKDB_TYPES[type(dtype)]
    except KeyError:
        raise ValueError(f"no DuckDB type for {dtype}") from None


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _confine_to(connection: duckdb.DuckDBPyConnection, history_dir: Path) -> None:
    """Let the connection read the history and nothing else, and keep it that way."""
    directory = str(Path(history_dir).resolve())
    # DuckDB checks the pattern as written too, so the escaped form of the glob is allowed as well.
    allowed = sorted({directory + "/", _glob_escaped(directory) + "/"})
    connection.execute("SET allowed_directories = ?", [allowed])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")


def _require_queries_only(connection: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but reads: COPY into the history directory would pass the confinement."""
    for statement in connection.extract_statements(query):
        if statement.type not in _READ_STATEMENTS:
            kind = statement.type.name.replace("_", " ")
            raise InputError(
                f"SQL: only queries run here (SELECT, WITH, FROM, DESCRIBE, SHOW, EXPLAIN), "
                f"not {kind}"
            )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
