"""Result rows for the playground: a generated statement run read-only on a sqlite database
synthesized from the schema (sql.synthdb + sql.execute), and whether two answers agree."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlfoundry.sql.execute import results_match, run_query
from sqlfoundry.sql.schema import SchemaError, parse_schema
from sqlfoundry.sql.synthdb import build_databases

SEED = 0  # one fixed synthetic database per schema + SQL, so the same answer shows the same rows
MAX_ROWS = 200
NOT_RUN = "not run: the statement did not pass the checks"


@dataclass
class Rows:
    columns: list[str] = field(default_factory=list)
    rows: list[list] | None = None  # None: nothing was run (see note)
    note: str = ""

    @property
    def ran(self) -> bool:
        return self.rows is not None


def column_names(sql: str, width: int | None) -> list[str]:
    """Header names from the SELECT list (run_query returns bare rows); `col N` where unnamed.
    `width`: the rows' width when there are rows (a `*` expands to more columns than it names)."""
    try:
        parsed = sqlglot.parse_one(sql, read="sqlite")
        # An unnamed expression (COUNT(*)) is headed by its own text, as sqlite's cursor would.
        names = [e.alias or (e.name if isinstance(e, exp.Column) else e.sql(dialect="sqlite"))
                 for e in getattr(parsed, "selects", [])]
    except SqlglotError:
        names = []
    if width is not None and len(names) != width:
        names = [""] * width
    return [name or f"col {i + 1}" for i, name in enumerate(names)]


def run_on_synthetic(schema: str, sqls: list[str | None]) -> list[Rows]:
    """Each of `sqls` (SQLite, already checked read-only by the API; None: an answer that did not
    pass the checks, not run) on ONE database synthesized from `schema`, whose values come from the
    literals of all of them, so filters find rows.

    One database for all: build_databases draws its values in the order of the statements, so two
    answers of a comparison each run on a database built from its own order ([mine, other]) would
    see different rows, and equivalent queries could "disagree"."""
    try:
        tables = parse_schema(schema)
    except SchemaError as err:
        return [Rows(note=f"schema: {err}" if sql is not None else NOT_RUN) for sql in sqls]
    conn = build_databases(tables, [sql for sql in sqls if sql is not None], k=1, seed=SEED)[0]
    try:
        return [_rows(conn, sql) if sql is not None else Rows(note=NOT_RUN) for sql in sqls]
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, sql: str) -> Rows:
    result = run_query(conn, sql, max_rows=MAX_ROWS)  # read-only connection: one run cannot change the next
    if not result.ok:
        return Rows(note=f"{result.error}: {result.detail}")
    return Rows(column_names(sql, len(result.rows[0]) if result.rows else None), [list(row) for row in result.rows],
                f"{len(result.rows)} row(s) on a database synthesized from the schema")


def agreement(left: Rows, right: Rows, sql_left: str, sql_right: str) -> str:
    """Whether two answers return the same rows (order counts only when a statement orders)."""
    if not (left.ran and right.ran):
        return "cannot compare: at least one answer did not run"
    ordered = "order by" in sql_left.lower() or "order by" in sql_right.lower()
    same = results_match([tuple(r) for r in left.rows], [tuple(r) for r in right.rows], ordered)
    return "agree: same result rows" if same else "disagree: different result rows"
